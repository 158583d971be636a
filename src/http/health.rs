//! Load-balancer probes: unauthenticated, cheap, and bounded in time. Readiness
//! answers are public, so they name components, never internal hosts or ports.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::readiness::{component, workers_component, ComponentHealth, Readiness};
use super::state::AppState;
use crate::sync::WorkerHealthSnapshot;

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

/// The process is running. No I/O.
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "Alive", body = Liveness)))]
async fn live() -> Json<Liveness> {
    Json(Liveness {
        status: "ok".into(),
    })
}

/// The service can serve: its database answers and carries every migration this build
/// needs, and the session token store (`token_store`: the same database, or every
/// memcached server) answers. `sync_workers` is `degraded` (without failing readiness:
/// the instance still serves, and other instances' workers share the work) while a
/// worker loop was recently restarted after a panic; details in `/api/v1/sync/status`.
///
/// Answers within the readiness timeout even when a component hangs; an answer is
/// reused for one second and checks run one at a time.
#[utoipa::path(get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready; names the failing component", body = Readiness),
    ))]
async fn ready(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let (code, body) = readiness(&state).await;
    (code, Json(body))
}

/// The readiness answer, from the cache while it is fresh (probes and `/metrics`).
pub(super) async fn readiness(state: &AppState) -> (StatusCode, Readiness) {
    state.ready_cache.answer(check_readiness(state)).await
}

async fn check_readiness(state: &AppState) -> (StatusCode, Readiness) {
    let timeout = state.config.ready_timeout;
    let (database, token_store) = tokio::join!(
        component(timeout, state.database.check_ready()),
        component(timeout, state.vault.check_ready()),
    );
    let mut components = BTreeMap::from([
        ("database".to_owned(), database),
        ("token_store".to_owned(), token_store),
        ("sync_workers".to_owned(), sync_workers(state)),
    ]);
    if let Some(okta) = okta(state) {
        components.insert("okta".to_owned(), okta);
    }
    let up = components.values().all(|c| c.status != "down");
    let (code, status) = if up {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unavailable")
    };
    (
        code,
        Readiness {
            status: status.into(),
            components,
        },
    )
}

/// The worker loops of this instance.
fn sync_workers(state: &AppState) -> ComponentHealth {
    let workers: Vec<(&str, WorkerHealthSnapshot)> = state
        .sync
        .workers()
        .statuses()
        .into_iter()
        .map(|(name, _, health)| (name, health))
        .collect();
    workers_component(state.sync.workers_enabled(), &workers, chrono::Utc::now())
}

/// Okta, when configured: does it answer, accept efs-iam's credentials, grant the
/// scopes the features need? From the last probe (30 s old at most; a new one runs in
/// the background), so readiness never waits for Okta. `degraded` unless
/// `EFS_IAM_OKTA_REQUIRED` makes it `down`. The detail names Okta's error code and the
/// missing scopes, never more (the answer is public); `/sync/status` has the rest.
fn okta(state: &AppState) -> Option<ComponentHealth> {
    let client = state.sync.okta()?;
    let probe = state.sync.okta_probe_now();
    let status = client.status();
    let mut problems = Vec::new();
    match &probe {
        None => problems.push("not probed yet".to_owned()),
        Some(p) if !p.reachable => problems.push("Okta does not answer".to_owned()),
        Some(p) if !p.credentials_accepted => problems.push(format!(
            "Okta refuses efs-iam's credentials ({})",
            status
                .last_auth_failure
                .as_ref()
                .map(|f| f.error_code.as_str())
                .filter(|c| !c.is_empty())
                .unwrap_or("no error code")
        )),
        Some(_) => {}
    }
    if let Some(scopes) = status.scopes.filter(|s| !s.missing.is_empty()) {
        let names: Vec<&str> = scopes.missing.iter().map(|m| m.scope.as_str()).collect();
        problems.push(format!("scopes not granted: {}", names.join(" ")));
    }
    let health = match (problems.is_empty(), state.config.okta_required) {
        (true, _) => "up",
        (false, false) => "degraded",
        (false, true) => "down",
    };
    Some(ComponentHealth {
        status: health.into(),
        detail: (!problems.is_empty()).then(|| problems.join("; ")),
    })
}
