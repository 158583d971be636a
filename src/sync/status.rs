//! `/sync/status` in one piece: the queue, jobs, Okta and its reachability, the
//! workers, Okta events and the reconciliation schedule.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::reconcile::ReconcileReport;
use super::runtime::WorkerHealthSnapshot;
use super::unassignments::MissingGroup;
use super::workers::WorkerKind;
use super::SyncService;
use crate::domain::SettingKey;
use crate::okta::OktaStatus;
use crate::storage::{now, JobStats, OktaEventStats, QueueStats, ReconcileRun, StorageError};

/// How long a reachability probe's answer is reused (monitoring may poll the status
/// often; each probe is an Okta call from the org's rate limit).
const PROBE_TTL: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProbeResult {
    /// Okta answered (any answer but a 5xx, timeout or connection failure counts).
    pub reachable: bool,
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
    pub unassignment_worker: WorkerHealthSnapshot,
    pub job_worker: WorkerHealthSnapshot,
    pub reconcile_worker: WorkerHealthSnapshot,
    pub okta_event_worker: WorkerHealthSnapshot,
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

impl SyncService {
    /// Whether Okta answers, by a lookup of a user that does not exist (404 is an
    /// answer). Cached for 30 s.
    pub async fn probe_okta(&self) -> Option<ProbeResult> {
        let okta = self.okta.as_ref()?;
        let mut cached = self.probe.lock().await;
        if let Some((at, result)) = cached.as_ref() {
            if at.elapsed() < PROBE_TTL {
                return Some(result.clone());
            }
        }
        let started = Instant::now();
        let answer = tokio::time::timeout(
            Duration::from_secs(5),
            okta.get_user("efsiamreachabilityprobe"),
        )
        .await;
        let error = match answer {
            Err(_) => Some("no answer within 5 s".to_owned()),
            Ok(Ok(_)) => None,
            Ok(Err(e)) if e.is_transient() => Some(e.to_string()),
            // Okta answered, if only to refuse: it is reachable.
            Ok(Err(_)) => None,
        };
        let result = ProbeResult {
            reachable: error.is_none(),
            checked_at: Utc::now(),
            latency_ms: started.elapsed().as_millis() as u64,
            error,
        };
        *cached = Some((Instant::now(), result.clone()));
        Some(result)
    }

    pub async fn status(&self) -> Result<SyncStatusReport, StorageError> {
        let queue = self.queue.unassignment_queue_stats(now()).await?;
        let jobs = self.jobs_store.sync_job_stats(now()).await?;
        let okta = match &self.okta {
            None => None,
            Some(client) => Some((client.status(), self.probe_okta().await)),
        };
        Ok(SyncStatusReport {
            queue,
            jobs,
            okta,
            workers_enabled: self.workers_enabled(),
            instance_id: self.instance_id.clone(),
            unassignment_worker: self.health(WorkerKind::Unassignments),
            job_worker: self.health(WorkerKind::Jobs),
            reconcile_worker: self.health(WorkerKind::Reconciliations),
            okta_event_worker: self.health(WorkerKind::OktaEvents),
            okta_events: self.events_store.okta_event_stats().await?,
            reconciliation: self.reconciliation_status().await?,
            missing_groups: self
                .unassignments
                .as_ref()
                .map(|w| w.missing_groups())
                .unwrap_or_default(),
        })
    }

    async fn reconciliation_status(&self) -> Result<ReconciliationStatus, StorageError> {
        let key = SettingKey::parse(super::GROUP_SETTING).expect("a valid key");
        let linked: Vec<i32> = self
            .portal_settings
            .settings_with_key(&key)
            .await?
            .into_iter()
            .filter(|(_, v)| v.as_deref().is_some_and(|v| !v.trim().is_empty()))
            .map(|(p, _)| p)
            .collect();
        let mut status = ReconciliationStatus {
            interval: self.settings.reconcile_interval,
            linked_portals: linked.len(),
            ..Default::default()
        };
        for run in self.runs.latest_reconcile_runs(&linked, true).await? {
            match run.state.as_str() {
                "failed" if status.failed.len() < 100 => status.failed.push(run),
                "succeeded" => {
                    let Some(report) = run
                        .report
                        .as_deref()
                        .and_then(|r| serde_json::from_str::<ReconcileReport>(r).ok())
                    else {
                        continue;
                    };
                    let c = &report.counts;
                    if c.missing_members + c.extra_members + c.stale_references > 0 {
                        status.portals_with_drift += 1;
                        if status.drift.len() < 100 {
                            status.drift.push((run, report));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(status)
    }
}
