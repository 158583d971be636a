//! The HTTP API: `/api/v1` for EFS-Admin, health probes for the load balancer, the
//! OpenAPI document and Swagger UI for developers, `/metrics` for Prometheus.
//!
//! Handlers parse and validate their input (typed extractors in [`extract`]), call one
//! function of a storage contract or a service (`sync`, the token vault), and map the
//! result; every failure becomes a problem document in one place ([`problem`]).

mod auth;
mod error_log;
pub mod extract;
mod health;
pub mod metrics;
mod middleware;
mod okta_hooks;
mod openapi;
mod portal_settings;
pub mod problem;
pub mod server;
mod sessions;
mod sync;
pub(crate) mod unassignment_queue;
mod user_references;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::Router;
use chrono::{DateTime, NaiveDateTime, Utc};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::auth::Authenticator;
use crate::storage::{
    DatabaseStatus, ErrorLogStore, PortalSettingsStore, ReconcileRunStore, SyncJobStore,
    UnassignmentQueueStore, UserReferenceStore,
};
use crate::sync::SyncService;
use crate::tokens::TokenVault;
use crate::trust::SettingsGuard;
use metrics::Metrics;

/// Limits and timeouts the HTTP layer applies.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    pub ready_timeout: Duration,
    pub max_concurrent_requests: usize,
    pub metrics_require_auth: bool,
    pub cors: Cors,
    /// Okta Event Hooks (`/hooks/okta/events`), when a secret is configured.
    pub okta_event_hook: Option<okta_hooks::EventHookAuth>,
}

pub use okta_hooks::EventHookAuth;

/// Which browser origins may call the API.
#[derive(Debug, Clone)]
pub enum Cors {
    /// No CORS headers: server-to-server only.
    Off,
    /// Every origin (`EFS_IAM_CORS_ORIGINS=*`).
    AnyOrigin,
    Origins(Vec<HeaderValue>),
}

/// What every handler shares. One `Arc` around it all: axum clones the state for each
/// extractor and middleware of every request, and one reference count is cheaper
/// than eight.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The contracts and services the handlers call, each by the narrowest interface.
pub struct Shared {
    pub portal_settings: Arc<dyn PortalSettingsStore>,
    pub references: Arc<dyn UserReferenceStore>,
    pub error_log: Arc<dyn ErrorLogStore>,
    pub queue: Arc<dyn UnassignmentQueueStore>,
    pub jobs: Arc<dyn SyncJobStore>,
    pub reconcile_runs: Arc<dyn ReconcileRunStore>,
    pub database: Arc<dyn DatabaseStatus>,
    pub vault: Arc<TokenVault>,
    /// Writes portal settings, checking and auditing the trust settings.
    pub settings_guard: Arc<SettingsGuard>,
    /// The sync engine and its workers (`/sync/*`, the unassignment queue's worker).
    pub sync: Arc<SyncService>,
    pub config: Arc<HttpConfig>,
    pub metrics: Metrics,
    /// The last `/health/ready` answer.
    pub ready_cache: health::ReadyCache,
    /// `None` only in development on loopback (see `AuthSettings::check_listen`).
    pub auth: Option<Arc<Authenticator>>,
}

fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(portal_settings::router())
        .merge(user_references::router())
        .merge(sessions::router())
        .merge(error_log::router())
        .merge(unassignment_queue::router())
        .merge(sync::router())
}

/// The router and the OpenAPI document it serves, built from the same handlers. The
/// document alone (no state) is what `efs-iam openapi` prints.
fn parts(state: Option<&AppState>) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let mut api_routes = api_routes();
    if let Some(state) = state {
        api_routes = api_routes
            .route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                auth::authorize,
            ))
            // One semaphore shared by every API route (probes are not counted).
            .route_layer(
                tower::ServiceBuilder::new()
                    .layer(axum::error_handling::HandleErrorLayer::new(
                        auth::overloaded,
                    ))
                    .layer(tower::load_shed::LoadShedLayer::new())
                    .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
                        state.config.max_concurrent_requests,
                    )),
            );
    }
    let (router, mut api) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .nest("/api/v1", api_routes)
        .merge(health::router())
        .merge(okta_hooks::router(state))
        .split_for_parts();
    openapi::complete(&mut api);
    (router, api)
}

/// The OpenAPI document, as served at `/api-docs/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    parts(None).1
}

pub fn router(state: AppState) -> Router {
    let (api_router, api) = parts(Some(&state));
    metrics::export_routes_at_zero(&api);
    let max_body = state.config.max_body_bytes;
    let timeout = state.config.request_timeout;
    let allow_origin = match &state.config.cors {
        Cors::Off => None,
        Cors::AnyOrigin => Some(tower_http::cors::AllowOrigin::any()),
        Cors::Origins(list) => Some(tower_http::cors::AllowOrigin::list(list.clone())),
    };
    let cors = allow_origin.map(|origin| {
        tower_http::cors::CorsLayer::new()
            .allow_origin(origin)
            .allow_methods([
                Method::GET,
                Method::PUT,
                Method::POST,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                axum::http::header::AUTHORIZATION,
                axum::http::header::CONTENT_TYPE,
            ])
    });
    api_router
        .merge(SwaggerUi::new("/swagger-ui").url("/api-docs/openapi.json", api))
        .route(
            "/metrics",
            axum::routing::get(metrics::render).route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                auth::authorize,
            )),
        )
        .fallback(middleware::not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(tower::util::option_layer(cors))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        // Outside the timeout, so a timed-out request also gets a problem body.
        .layer(axum::middleware::from_fn(
            middleware::problem_for_bare_errors,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::record_metrics,
        ))
        .layer(PropagateRequestIdLayer::new(middleware::REQUEST_ID_HEADER))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(middleware::make_span)
                // One line per request at info: the access log (status, latency).
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(SetRequestIdLayer::new(
            middleware::REQUEST_ID_HEADER,
            MakeRequestUuid,
        ))
        .with_state(state)
}

/// 202 Accepted for work left to a worker: the body, and its status URL also as the
/// `Location` header.
pub(crate) fn accepted<T: serde::Serialize>(status_url: &str, body: T) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut response = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(status_url) {
        response
            .headers_mut()
            .insert(axum::http::header::LOCATION, v);
    }
    response
}

pub(crate) fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}
