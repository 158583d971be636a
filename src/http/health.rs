//! Load-balancer probes: unauthenticated, cheap, and bounded in time.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(live))
        .routes(routes!(ready))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct Liveness {
    pub status: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"status": "unavailable", "components": {"database": {"status": "up"}, "token_store": {"status": "down", "detail": "memcached 10.0.0.7:11211: connect: Connection refused (os error 111)"}}}))]
pub struct Readiness {
    /// `ready` or `unavailable`.
    pub status: String,
    pub components: BTreeMap<String, ComponentHealth>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ComponentHealth {
    /// `up` or `down`.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The process is running. No I/O.
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "Alive", body = Liveness)))]
async fn live() -> Json<Liveness> {
    Json(Liveness {
        status: "ok".into(),
    })
}

/// Runs one readiness check within the readiness timeout.
async fn component<E: std::fmt::Display>(
    timeout: std::time::Duration,
    check: impl std::future::Future<Output = Result<(), E>>,
) -> ComponentHealth {
    match tokio::time::timeout(timeout, check).await {
        Ok(Ok(())) => ComponentHealth {
            status: "up".into(),
            detail: None,
        },
        Ok(Err(e)) => ComponentHealth {
            status: "down".into(),
            detail: Some(e.to_string()),
        },
        Err(_) => ComponentHealth {
            status: "down".into(),
            detail: Some(format!("no answer within {timeout:?}")),
        },
    }
}

/// The service can serve: its database answers and carries every migration this build
/// needs, and the session token store (`token_store`: the same database, or every
/// memcached server) answers. Answers within the readiness timeout even when a
/// component hangs.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready; names the failing component", body = Readiness),
    ))]
async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let timeout = state.config.ready_timeout;
    let (database, token_store) = tokio::join!(
        component(timeout, state.database.check_ready()),
        component(timeout, state.vault.check_ready()),
    );
    let components = BTreeMap::from([
        ("database".to_owned(), database),
        ("token_store".to_owned(), token_store),
    ]);
    let up = components.values().all(|c| c.status == "up");
    let (code, status) = if up {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    (
        code,
        Json(Readiness {
            status: status.into(),
            components,
        }),
    )
}
