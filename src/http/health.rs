//! Load-balancer probes: unauthenticated, cheap, and bounded in time. Readiness
//! answers are public, so they name components, never internal hosts or ports.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::AppState;
use crate::sync::{WorkerHealthSnapshot, WorkerKind};

/// How long a readiness answer is reused: a flood of probes costs one check per second
/// (and at most one check at a time), so probes cannot take the database pool from
/// the requests they are meant to protect.
pub const READY_TTL: Duration = Duration::from_secs(1);

/// A worker restart after a panic this recent makes `sync_workers` `degraded`.
const RECENT_PANIC: chrono::TimeDelta = chrono::TimeDelta::minutes(15);

/// The last readiness answer; its lock is also what runs one check at a time.
#[derive(Default)]
pub struct ReadyCache(tokio::sync::Mutex<Option<(Instant, StatusCode, Readiness)>>);

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

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"status": "unavailable", "components": {"database": {"status": "up"}, "token_store": {"status": "down", "detail": "1 of 2 memcached servers do not answer (number 2 in EFS_IAM_MEMCACHED_SERVERS; the log names them)"}, "sync_workers": {"status": "up"}}}))]
pub struct Readiness {
    /// `ready` or `unavailable`.
    pub status: String,
    pub components: BTreeMap<String, ComponentHealth>,
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ComponentHealth {
    /// `up`, `down`, or `degraded` (serving, but see `detail`; does not fail
    /// readiness).
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
    let mut cached = state.ready_cache.0.lock().await;
    if let Some((at, code, body)) = cached.as_ref() {
        if at.elapsed() < READY_TTL {
            return (*code, body.clone());
        }
    }
    let (code, body) = check_readiness(state).await;
    *cached = Some((Instant::now(), code, body.clone()));
    (code, body)
}

async fn check_readiness(state: &AppState) -> (StatusCode, Readiness) {
    let timeout = state.config.ready_timeout;
    let (database, token_store) = tokio::join!(
        component(timeout, state.database.check_ready()),
        component(timeout, state.vault.check_ready()),
    );
    let components = BTreeMap::from([
        ("database".to_owned(), database),
        ("token_store".to_owned(), token_store),
        ("sync_workers".to_owned(), sync_workers(state)),
    ]);
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

/// The worker loops of this instance: restarts after panics, and loops that should run
/// but do not.
fn sync_workers(state: &AppState) -> ComponentHealth {
    let workers: Vec<(&str, WorkerHealthSnapshot)> = WorkerKind::ALL
        .iter()
        .map(|k| (k.name(), state.sync.health(*k)))
        .collect();
    workers_component(state.sync.workers_enabled(), &workers, chrono::Utc::now())
}

fn workers_component(
    enabled: bool,
    workers: &[(&str, WorkerHealthSnapshot)],
    now: chrono::DateTime<chrono::Utc>,
) -> ComponentHealth {
    if !enabled {
        return ComponentHealth {
            status: "up".into(),
            detail: Some("no worker loops in this instance".into()),
        };
    }
    let mut degraded = Vec::new();
    let mut notes = Vec::new();
    for (name, h) in workers {
        if h.restarts > 0 {
            let line = format!(
                "{name} restarted {} time(s) after a panic, the last at {}",
                h.restarts,
                h.last_panic_at.map(|t| t.to_rfc3339()).unwrap_or_default()
            );
            if h.last_panic_at.is_some_and(|at| now - at < RECENT_PANIC) {
                degraded.push(line);
            } else {
                notes.push(line);
            }
        } else if !h.running && h.steps > 0 {
            degraded.push(format!("{name} is not running"));
        }
    }
    let status = if degraded.is_empty() {
        "up"
    } else {
        "degraded"
    };
    degraded.extend(notes);
    ComponentHealth {
        status: status.into(),
        detail: (!degraded.is_empty()).then(|| degraded.join("; ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(restarts: u64, panicked_ago: Option<i64>) -> WorkerHealthSnapshot {
        let now = chrono::Utc::now();
        WorkerHealthSnapshot {
            running: true,
            steps: 5,
            restarts,
            last_panic_at: panicked_ago.map(|m| now - chrono::TimeDelta::minutes(m)),
            last_panic: panicked_ago.map(|_| "index out of bounds".into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_recent_restart_degrades_without_failing_readiness() {
        let now = chrono::Utc::now();
        let healthy = [
            ("unassignments", worker(0, None)),
            ("sync-jobs", worker(0, None)),
        ];
        let c = workers_component(true, &healthy, now);
        assert_eq!((c.status.as_str(), c.detail), ("up", None));

        let recent = [
            ("unassignments", worker(2, Some(1))),
            ("sync-jobs", worker(0, None)),
        ];
        let c = workers_component(true, &recent, now);
        assert_eq!(c.status, "degraded");
        let detail = c.detail.unwrap();
        assert!(
            detail.contains("unassignments restarted 2 time(s)"),
            "{detail}"
        );
        assert!(
            !detail.contains("index out of bounds"),
            "no panic text in a public answer"
        );

        let old = [("unassignments", worker(1, Some(60)))];
        let c = workers_component(true, &old, now);
        assert_eq!(c.status, "up");
        assert!(c.detail.unwrap().contains("restarted 1 time(s)"));
    }
}
