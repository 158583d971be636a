//! The HTTP API: `/api/v1` for EFS-Admin, health probes for the load balancer, the
//! OpenAPI document and Swagger UI for developers, `/metrics` for Prometheus.

mod auth;
mod error_log;
pub mod extract;
mod health;
mod middleware;
mod portal_settings;
mod sessions;
mod sync;
mod unassignments;
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

use crate::auth::{required_scope, Authenticator};
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
    pub max_concurrent_requests: usize,
    pub metrics_require_auth: bool,
    /// Origins allowed by CORS; empty = no CORS headers (server-to-server only).
    pub cors_origins: Vec<HeaderValue>,
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

pub struct Shared {
    pub store: Arc<dyn Store>,
    pub vault: Arc<TokenVault>,
    pub config: Arc<HttpConfig>,
    pub metrics: Metrics,
    /// `None` only in development on loopback (see `AuthSettings::check_listen`).
    pub auth: Option<Arc<Authenticator>>,
    /// The Okta adapter; `None` when no org is configured.
    pub okta: Option<crate::okta::OktaClient>,
    /// The sync engine and its workers (`/sync/*`).
    pub sync: Arc<crate::sync::SyncService>,
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
        (name = "sync", description = "Okta sync: users, portal memberships, batch jobs, the unassignment worker, reconciliation, status"),
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
    let (router, mut api) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", api_routes)
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
    document_security(&mut api);
    require_properties(&mut api, &["PatchPortalUserReference", "TokenResponse"]);
    (router, api)
}

/// `minProperties: 1` on request bodies that must name something. Set here because
/// utoipa-gen 5.5 turns a `min_properties` attribute into `maxProperties`.
fn require_properties(api: &mut utoipa::openapi::OpenApi, names: &[&str]) {
    use utoipa::openapi::{RefOr, Schema};
    let Some(components) = api.components.as_mut() else {
        return;
    };
    for name in names {
        if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(*name) {
            object.min_properties = Some(1);
        }
    }
}

/// Declares the bearer scheme and, on every API operation, the scope
/// [`required_scope`] enforces plus its 401/403 answers.
fn document_security(api: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::{
        HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
    };
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};

    api.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT with `iss`/`aud` as configured and a `scope` claim: iam:read, \
                         iam:write, iam:sync, iam:tokens. Mint one with `efs-iam token`.",
                    ))
                    .build(),
            ),
        );
    let problem = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build()
    };
    for (path, item) in api.paths.paths.iter_mut() {
        if item.servers.is_some() {
            continue; // health probes: open
        }
        let route = format!("/api/v1{path}");
        let operations = [
            (Method::GET, &mut item.get),
            (Method::PUT, &mut item.put),
            (Method::POST, &mut item.post),
            (Method::PATCH, &mut item.patch),
            (Method::DELETE, &mut item.delete),
        ];
        for (method, operation) in operations {
            let Some(operation) = operation else { continue };
            let scope = required_scope(&method, &route);
            operation.security = Some(vec![SecurityRequirement::new("bearer", [scope.as_str()])]);
            let responses = &mut operation.responses.responses;
            responses.insert(
                "401".into(),
                problem("Missing or invalid bearer token").into(),
            );
            responses.insert(
                "403".into(),
                problem(&format!("The token lacks the scope {}", scope.as_str())).into(),
            );
        }
    }
}

/// The OpenAPI document, as served at `/api-docs/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    parts(None).1
}

pub fn router(state: AppState) -> Router {
    let (api_router, api) = parts(Some(&state));
    let max_body = state.config.max_body_bytes;
    let timeout = state.config.request_timeout;
    let cors = (!state.config.cors_origins.is_empty()).then(|| {
        tower_http::cors::CorsLayer::new()
            .allow_origin(state.config.cors_origins.clone())
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
            axum::routing::get(crate::metrics::render).route_layer(
                axum::middleware::from_fn_with_state(state.clone(), auth::authorize),
            ),
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

pub(crate) fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}
