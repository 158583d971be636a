//! The router and the OpenAPI document it serves, built from the same handlers: each
//! resource's `router()`, the caller authentication and concurrency limit around
//! `/api/v1`, and the layers every request passes (body limit, CORS, timeout, problem
//! bodies, metrics, request ids, the access log).

use axum::extract::DefaultBodyLimit;
use axum::http::{Method, StatusCode};
use axum::Router;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use super::state::{AppState, Cors};
use super::{
    auth, error_log, health, managed_users, metrics, middleware, okta_hooks, portal_settings,
    sessions, sync, unassignment_queue, user_references,
};

fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(portal_settings::router())
        .merge(user_references::router())
        .merge(sessions::router())
        .merge(error_log::router())
        .merge(unassignment_queue::router())
        .merge(managed_users::router())
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
    let (router, mut api) = OpenApiRouter::with_openapi(super::openapi::ApiDoc::openapi())
        .nest("/api/v1", api_routes)
        .merge(health::router())
        .merge(okta_hooks::router(state))
        .split_for_parts();
    super::openapi::complete(&mut api);
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
        .merge(super::docs::router(&api))
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
        .layer(axum::middleware::from_fn(middleware::record_metrics))
        .layer(PropagateRequestIdLayer::new(middleware::REQUEST_ID_HEADER))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(middleware::make_span)
                // One line per request: the access log (status, latency, the cause of
                // a failure); tower-http's own failure line would repeat it.
                .on_response(middleware::access_log)
                .on_failure(()),
        )
        .layer(SetRequestIdLayer::new(
            middleware::REQUEST_ID_HEADER,
            MakeRequestUuid,
        ))
        .with_state(state)
}
