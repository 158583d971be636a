//! The HTTP API: `/api/v1` for EFS-Admin, health probes for the load balancer, the
//! OpenAPI document and Swagger UI for developers, `/metrics` for Prometheus.

mod error_log;
pub mod extract;
mod health;
mod middleware;
mod portal_settings;
mod sessions;
mod unassignments;
mod user_references;

use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::Router;
use chrono::{DateTime, NaiveDateTime, Utc};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::{FieldError, Problem};
use crate::metrics::Metrics;
use crate::storage::Store;
use crate::tokens::TokenVault;

/// Limits and timeouts the HTTP layer applies.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    pub ready_timeout: Duration,
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub vault: Arc<TokenVault>,
    pub config: Arc<HttpConfig>,
    pub metrics: Metrics,
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "efs-iam",
        description = "EFS's Okta integration service: portal settings, references from EFS users \
                       to Okta users, session token storage, the Okta error log and the unassignment \
                       queue. Errors are RFC 9457 problem documents (`application/problem+json`) \
                       whose `type` is a stable `urn:efs-iam:problem:<slug>`."
    ),
    servers((url = "/api/v1", description = "This instance")),
    components(schemas(Problem, FieldError)),
    tags(
        (name = "portal settings", description = "Per-portal settings such as okta_client_id"),
        (name = "user references", description = "EFS users and panelists ↔ Okta user ids"),
        (name = "session tokens", description = "IdP token responses per login session"),
        (name = "error log", description = "Errors received from Okta"),
        (name = "unassignment queue", description = "Portal users to remove from Okta groups"),
        (name = "health", description = "Load-balancer probes (outside /api/v1)"),
    )
)]
struct ApiDoc;

fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(portal_settings::router())
        .merge(user_references::router())
        .merge(sessions::router())
        .merge(error_log::router())
        .merge(unassignments::router())
}

/// The router and the OpenAPI document it serves, built from the same handlers.
fn parts() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, mut api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", api_routes())
        .merge(health::router())
        .split_for_parts();
    // `servers` says /api/v1 so Swagger UI's "try it out" works; the paths are listed
    // relative to it and the health probes get their own server entry.
    let mut paths = utoipa::openapi::path::Paths::new();
    for (path, item) in std::mem::take(&mut api.paths.paths) {
        match path.strip_prefix("/api/v1") {
            Some(rest) => {
                paths.paths.insert(rest.to_owned(), item);
            }
            None => {
                let mut item = item;
                item.servers = Some(vec![utoipa::openapi::Server::new("/")]);
                paths.paths.insert(path, item);
            }
        }
    }
    api.paths = paths;
    (router, api)
}

/// The OpenAPI document, as served at `/api-docs/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    parts().1
}

pub fn router(state: AppState) -> Router {
    let (api_router, api) = parts();
    let max_body = state.config.max_body_bytes;
    let timeout = state.config.request_timeout;
    api_router
        .merge(SwaggerUi::new("/swagger-ui").url("/api-docs/openapi.json", api))
        .route("/metrics", axum::routing::get(crate::metrics::render))
        .fallback(middleware::not_found)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(
            middleware::problem_for_bare_errors,
        ))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::record_metrics,
        ))
        .layer(PropagateRequestIdLayer::new(middleware::REQUEST_ID_HEADER))
        .layer(TraceLayer::new_for_http().make_span_with(middleware::make_span))
        .layer(SetRequestIdLayer::new(
            middleware::REQUEST_ID_HEADER,
            MakeRequestUuid,
        ))
        .with_state(state)
}

pub(crate) fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}
