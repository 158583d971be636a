//! `GET /sync/status`: what an operator (or a monitoring probe) needs at a glance.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::unassignments::QueueBody;
use crate::http::problem::{ApiResult, Problem};
use crate::http::AppState;
use crate::okta::{BucketStatus, DpopMode, ScopeCheck};
use crate::sync::{ProbeResult, WorkerHealthSnapshot};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(sync_status))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobsBody {
    /// Batch jobs with pending users.
    pub running: i64,
    pub pending_items: i64,
    pub in_progress_items: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuthFailureBody {
    pub at: DateTime<Utc>,
    pub status: u16,
    /// `E0000011`, or the OAuth `error` such as `invalid_client`.
    pub error_code: String,
    pub message: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OktaBody {
    /// An Okta org is configured in this instance.
    pub configured: bool,
    pub org_url: Option<String>,
    /// `api_token` or `private_key_jwt`.
    pub auth_method: Option<String>,
    /// A live check (cached for 30 s): does Okta answer?
    pub reachability: Option<ProbeResult>,
    /// Last time Okta answered a call successfully.
    pub last_success_at: Option<DateTime<Utc>>,
    /// Last time Okta refused the credentials (kept after later successes; compare
    /// with `last_success_at`).
    pub last_auth_failure: Option<AuthFailureBody>,
    /// Service apps: DPoP (`mode` `auto`/`on`/`off`; `active`: proofs are sent now).
    pub dpop: Option<DpopBody>,
    /// Service apps: the scopes asked for, granted (by the last token) and missing
    /// (needed by a feature, not granted or not asked for).
    pub scopes: Option<ScopeCheck>,
    pub rate_share: Option<f64>,
    pub max_concurrency: Option<usize>,
    pub in_flight: Option<usize>,
    /// The governor's state per rate-limit bucket used since start.
    pub buckets: Vec<BucketStatus>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DpopBody {
    pub mode: DpopMode,
    pub active: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct WorkersBody {
    /// The background loops run in this instance (EFS_IAM_SYNC_WORKER and Okta
    /// configured).
    pub enabled: bool,
    /// This instance's name in leases.
    pub instance_id: String,
    /// Each worker's recent history, by its key: `unassignments`, `jobs`,
    /// `reconciliations`, `okta_events`, `adoptions`, `error_log_purges`.
    #[serde(flatten)]
    pub loops: BTreeMap<String, WorkerHealthSnapshot>,
}

/// Okta Event Hook deliveries waiting or failed (all instances).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OktaEventsBody {
    /// Stored, not applied yet.
    pub pending: i64,
    /// Could not be applied; listed in the error log (`efs-iam:okta-event-failed`).
    pub failed: i64,
    /// `published` of the oldest pending event.
    pub oldest_pending_published: Option<DateTime<Utc>>,
}

/// A portal whose `okta_group_id` names no group Okta has.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MissingGroupBody {
    pub portal_id: i32,
    pub group_id: String,
    /// When this instance last found the group missing.
    pub checked_at: DateTime<Utc>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SyncStatus {
    pub okta: OktaBody,
    pub unassignments: QueueBody,
    pub jobs: JobsBody,
    pub workers: WorkersBody,
    /// Portals whose `okta_group_id` names no group Okta has, as this instance's
    /// unassignment worker last found (their rows fail and wait until the setting is
    /// corrected and they are requeued).
    pub missing_okta_groups: Vec<MissingGroupBody>,
    pub okta_events: OktaEventsBody,
    pub reconciliation: ReconciliationBody,
}

/// The scheduled reconciliation and what the latest run of each linked portal found.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReconciliationBody {
    /// `EFS_IAM_RECONCILE_INTERVAL` in seconds; 0 when the schedule is off.
    pub interval_seconds: u64,
    /// Portals with an `okta_group_id`.
    pub linked_portals: usize,
    /// Linked portals whose latest run found drift.
    pub portals_with_drift: usize,
    /// Those latest runs (at most 100).
    pub drift: Vec<DriftBody>,
    /// Linked portals whose latest run failed (at most 100).
    pub failed: Vec<FailedRunBody>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DriftBody {
    pub portal_id: i32,
    pub run_id: String,
    /// `manual` or `scheduled`.
    pub kind: String,
    pub finished_at: Option<DateTime<Utc>>,
    /// `true`: only reported (`reconcile_mode` is not `repair`).
    pub dry_run: bool,
    pub missing_members: usize,
    pub extra_members: usize,
    pub stale_references: usize,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct FailedRunBody {
    pub portal_id: i32,
    pub run_id: String,
    pub finished_at: Option<DateTime<Utc>>,
    pub error_type: Option<String>,
    pub error: Option<String>,
}

/// The sync engine's state: unassignment queue depth and dead letters, running batch
/// jobs, the rate-limit governor per bucket, Okta reachability and the last
/// authentication failure, this instance's workers (restarts after a panic included),
/// and portals whose Okta group is missing.
#[utoipa::path(
    get, path = "/sync/status", tag = "sync",
    responses(
        (status = 200, description = "The state (also without Okta settings: `okta.configured` is false)", body = SyncStatus),
        (status = 503, description = "Database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn sync_status(State(state): State<AppState>) -> ApiResult<Json<SyncStatus>> {
    let report = state.sync.status().await?;
    let okta = match report.okta {
        None => OktaBody {
            configured: false,
            org_url: None,
            auth_method: None,
            reachability: None,
            last_success_at: None,
            last_auth_failure: None,
            dpop: None,
            scopes: None,
            rate_share: None,
            max_concurrency: None,
            in_flight: None,
            buckets: Vec::new(),
        },
        Some((s, probe)) => OktaBody {
            configured: true,
            org_url: Some(s.org_url),
            auth_method: Some(s.auth_method.to_owned()),
            reachability: probe,
            last_success_at: s.last_success_at,
            last_auth_failure: s.last_auth_failure.map(|f| AuthFailureBody {
                at: f.at,
                status: f.status,
                error_code: f.error_code,
                message: f.message,
            }),
            dpop: s.dpop.map(|(mode, active)| DpopBody { mode, active }),
            scopes: s.scopes,
            rate_share: Some(s.rate_share),
            max_concurrency: Some(s.max_concurrency),
            in_flight: Some(s.in_flight),
            buckets: s.buckets,
        },
    };
    let j = report.jobs;
    Ok(Json(SyncStatus {
        okta,
        unassignments: report.queue.into(),
        jobs: JobsBody {
            running: j.unfinished_jobs,
            pending_items: j.pending_items,
            in_progress_items: j.in_progress_items,
        },
        workers: WorkersBody {
            enabled: report.workers_enabled,
            instance_id: report.instance_id,
            loops: report
                .workers
                .into_iter()
                .map(|(key, health)| (key.to_owned(), health))
                .collect(),
        },
        reconciliation: ReconciliationBody {
            interval_seconds: report.reconciliation.interval.as_secs(),
            linked_portals: report.reconciliation.linked_portals,
            portals_with_drift: report.reconciliation.portals_with_drift,
            drift: report
                .reconciliation
                .drift
                .into_iter()
                .map(|(run, r)| DriftBody {
                    portal_id: run.portal_id,
                    run_id: run.id,
                    kind: run.kind,
                    finished_at: run.finished_at.map(|t| t.and_utc()),
                    dry_run: r.dry_run,
                    missing_members: r.counts.missing_members,
                    extra_members: r.counts.extra_members,
                    stale_references: r.counts.stale_references,
                })
                .collect(),
            failed: report
                .reconciliation
                .failed
                .into_iter()
                .map(|run| FailedRunBody {
                    portal_id: run.portal_id,
                    run_id: run.id,
                    finished_at: run.finished_at.map(|t| t.and_utc()),
                    error_type: run.error_type,
                    error: run.error,
                })
                .collect(),
        },
        okta_events: OktaEventsBody {
            pending: report.okta_events.pending,
            failed: report.okta_events.failed,
            oldest_pending_published: report
                .okta_events
                .oldest_pending_published
                .map(|t| t.and_utc()),
        },
        missing_okta_groups: report
            .missing_groups
            .into_iter()
            .map(|m| MissingGroupBody {
                portal_id: m.portal_id,
                group_id: m.group_id,
                checked_at: m.checked_at,
            })
            .collect(),
    }))
}
