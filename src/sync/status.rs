//! What `/sync/status` reports, in one piece: the queue, jobs, Okta and its
//! reachability, the workers, Okta events and the reconciliation schedule (gathered by
//! `SyncService::status`).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::reconcile::ReconcileReport;
use super::workers::unassignments::MissingGroup;
use super::workers::WorkerHealthSnapshot;
use crate::okta::OktaStatus;
use crate::storage::{JobStats, OktaEventStats, QueueStats, ReconcileRun};

/// The last reachability probe of Okta.
// `/sync/status` shows it as it is, under the schema name the spec has always had.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = ProbeResultBody)]
pub struct ProbeResult {
    /// Okta answered (any answer but a 5xx, timeout or connection failure counts).
    pub reachable: bool,
    /// Okta accepted efs-iam's credentials (an access token could be had, and the call
    /// was not refused with 401 or an invalid DPoP proof; a refusal also shows in
    /// `last_auth_failure`, with Okta's error code). `false` also when Okta did not
    /// answer.
    pub credentials_accepted: bool,
    pub checked_at: DateTime<Utc>,
    pub latency_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `/sync/status` in one piece.
pub struct SyncStatusReport {
    pub queue: QueueStats,
    pub jobs: JobStats,
    /// `None` when Okta is not configured.
    pub okta: Option<(OktaStatus, Option<ProbeResult>)>,
    pub workers_enabled: bool,
    pub instance_id: String,
    /// Every worker's status key and recent history, in registration order.
    pub workers: Vec<(&'static str, WorkerHealthSnapshot)>,
    pub okta_events: OktaEventStats,
    pub reconciliation: ReconciliationStatus,
    /// Portals whose `okta_group_id` names no group Okta has, as this instance last saw.
    pub missing_groups: Vec<MissingGroup>,
}

/// The schedule, and what the latest run of each linked portal found.
#[derive(Debug, Clone, Default)]
pub struct ReconciliationStatus {
    /// `EFS_IAM_RECONCILE_INTERVAL`; zero when the schedule is off.
    pub interval: Duration,
    pub linked_portals: usize,
    /// Latest runs (of linked portals) that found drift, at most 100.
    pub drift: Vec<(ReconcileRun, ReconcileReport)>,
    /// Latest runs that failed, at most 100.
    pub failed: Vec<ReconcileRun>,
    /// How many latest runs found drift (the list above may be cut).
    pub portals_with_drift: usize,
}
