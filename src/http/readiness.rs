//! What `/health/ready` answers, and the answer reused for a second: components by
//! role (never a host or port), each up, down or degraded.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::sync::WorkerHealthSnapshot;

/// How long a readiness answer is reused: a flood of probes costs one check per second
/// (and at most one check at a time), so probes cannot take the database pool from
/// the requests they are meant to protect.
pub const READY_TTL: Duration = Duration::from_secs(1);

/// A worker restart after a panic this recent makes `sync_workers` `degraded`.
const RECENT_PANIC: chrono::TimeDelta = chrono::TimeDelta::minutes(15);

/// The last readiness answer; its lock is also what runs one check at a time.
#[derive(Default)]
pub struct ReadyCache(tokio::sync::Mutex<Option<(Instant, StatusCode, Readiness)>>);

impl ReadyCache {
    /// The answer while it is fresh, else `check`'s (kept for the next second). The
    /// lock is held across the check: one check at a time.
    pub(crate) async fn answer<F>(&self, check: F) -> (StatusCode, Readiness)
    where
        F: std::future::Future<Output = (StatusCode, Readiness)>,
    {
        let mut cached = self.0.lock().await;
        if let Some((at, code, body)) = cached.as_ref() {
            if at.elapsed() < READY_TTL {
                return (*code, body.clone());
            }
        }
        let (code, body) = check.await;
        *cached = Some((Instant::now(), code, body.clone()));
        (code, body)
    }
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

/// Runs one readiness check within the readiness timeout.
pub(crate) async fn component<E: std::fmt::Display>(
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

/// The worker loops of this instance: restarts after panics, and loops that should
/// run but do not.
pub(crate) fn workers_component(
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
