//! Runs batch sync jobs (`efs_iam_sync_job_item`): leases pending items, syncs each
//! user through [`SyncEngine::sync_portal_user`] (the same path as a single sync call)
//! and records the per-user result. Jobs are submitted through
//! [`super::SyncService::submit_sync_job`].
//!
//! Items are leased like queue rows, so several instances work on one job and a job
//! survives a restart: an item whose instance died comes back when its lease runs out.
//! A user synced twice that way ends the same (the engine links instead of creating).
//! Transient failures (Okta unavailable, the user's lock busy, the database) are retried
//! with backoff up to `EFS_IAM_SYNC_MAX_ATTEMPTS`; data errors (Okta refusing the
//! profile, a deprovisioned user, a portal without group) fail the item at once.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use super::{work_through, LeasedItems, Step, Worker};
use crate::domain::{EfsUserId, PortalId};
use crate::storage::{now, ClaimedSyncItem, ItemResult, StorageError, SyncJobStore};
use crate::sync::heartbeat::Heartbeat;
use crate::sync::{SyncEngine, SyncError, SyncSettings, UserProfile};

/// Finished jobs are kept this long for `GET /sync/jobs/{job_id}`, then deleted.
pub const JOB_RETENTION_DAYS: i64 = 7;

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobStep {
    pub claimed: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub retrying: usize,
    pub released: usize,
    /// Jobs that finished with this step.
    pub jobs_finished: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
    #[serde(skip)]
    #[schema(ignore)]
    pub batch_full: bool,
}

impl Step for JobStep {
    fn more_to_do(&self) -> bool {
        self.blocked.is_none() && self.batch_full && self.released == 0
    }
    fn blocked(&self) -> Option<&str> {
        self.blocked.as_deref()
    }
}

pub(super) enum ItemOutcome {
    Succeeded,
    Failed,
    Retrying,
    Released,
    Blocked(String),
}

pub struct JobWorker {
    engine: Arc<SyncEngine>,
    jobs: Arc<dyn SyncJobStore>,
    settings: SyncSettings,
    owner: String,
    cancel: CancellationToken,
    last_purge: AtomicI64,
}

impl Worker for JobWorker {
    const NAME: &'static str = "sync-jobs";
    const STATUS_KEY: &'static str = "jobs";
    type Step = JobStep;

    async fn step(&self) -> Result<JobStep, StorageError> {
        self.run_once().await
    }
}

impl JobWorker {
    pub fn new(
        engine: Arc<SyncEngine>,
        jobs: Arc<dyn SyncJobStore>,
        settings: SyncSettings,
        owner: String,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            engine,
            jobs,
            settings,
            owner,
            cancel,
            last_purge: AtomicI64::new(0),
        }
    }

    /// One round: lease a batch of due items, sync each user, record the results, mark
    /// jobs without pending items finished.
    #[tracing::instrument(name = "jobs.step", skip(self), err(level = "debug"))]
    pub async fn run_once(&self) -> Result<JobStep, StorageError> {
        let store = &self.jobs;
        let mut step = JobStep::default();
        let t = now();
        let lease_until = t + chrono::Duration::from_std(self.settings.lease).unwrap_or_default();
        let items = store
            .claim_sync_items(&self.owner, t, lease_until, self.settings.batch_size)
            .await?;
        step.claimed = items.len();
        step.batch_full = items.len() as u32 >= self.settings.batch_size;
        for outcome in work_through(self, items, self.settings.concurrency).await {
            match outcome {
                ItemOutcome::Succeeded => step.succeeded += 1,
                ItemOutcome::Failed => step.failed += 1,
                ItemOutcome::Retrying => step.retrying += 1,
                ItemOutcome::Released => step.released += 1,
                ItemOutcome::Blocked(why) => {
                    step.released += 1;
                    step.blocked.get_or_insert(why);
                }
            }
        }
        for (result, n) in [("succeeded", step.succeeded), ("failed", step.failed)] {
            metrics::counter!("efs_iam_sync_job_items_finished_total", "result" => result)
                .increment(n as u64);
        }
        let finished = store.finish_sync_jobs(now()).await?;
        for job in &finished {
            tracing::info!(job = %job, "sync job finished");
        }
        step.jobs_finished = finished.len();
        self.purge_old_jobs().await;
        if step.claimed > 0 {
            tracing::info!(
                claimed = step.claimed,
                succeeded = step.succeeded,
                failed = step.failed,
                retrying = step.retrying,
                released = step.released,
                "sync job step"
            );
        }
        Ok(step)
    }

    async fn purge_old_jobs(&self) {
        let t = now();
        let last = self.last_purge.load(Ordering::Relaxed);
        if t.and_utc().timestamp() - last < 3600 {
            return;
        }
        self.last_purge
            .store(t.and_utc().timestamp(), Ordering::Relaxed);
        let before = t - chrono::Duration::days(JOB_RETENTION_DAYS);
        match self.jobs.purge_sync_jobs(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(jobs = n, "finished sync jobs purged"),
            Err(e) => tracing::warn!(error = %e, "could not purge finished sync jobs"),
        }
    }

    async fn finish(&self, item: &ClaimedSyncItem, result: ItemResult) -> ItemOutcome {
        let ok = matches!(result, ItemResult::Succeeded { .. });
        match self
            .jobs
            .finish_sync_item(item.id, &self.owner, &result, now())
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(item = item.id, "lease lost before the result was recorded")
            }
            Err(e) => {
                tracing::warn!(item = item.id, error = %e, "could not record an item's result; the lease will run out");
                return ItemOutcome::Released;
            }
        }
        if ok {
            ItemOutcome::Succeeded
        } else {
            ItemOutcome::Failed
        }
    }
}

impl LeasedItems for JobWorker {
    type Item = ClaimedSyncItem;
    type Outcome = ItemOutcome;

    fn heartbeat(&self, items: &[ClaimedSyncItem]) -> Heartbeat {
        let ids: Vec<i64> = items.iter().map(|i| i.id).collect();
        let (jobs, owner) = (self.jobs.clone(), self.owner.clone());
        Heartbeat::start("sync job items", self.settings.lease, move |until| {
            let (jobs, owner, ids) = (jobs.clone(), owner.clone(), ids.clone());
            async move { jobs.renew_sync_item_leases(&ids, &owner, until).await }
        })
    }

    fn released(&self) -> ItemOutcome {
        ItemOutcome::Released
    }

    async fn process(&self, item: ClaimedSyncItem) -> ItemOutcome {
        let store = &self.jobs;
        if self.cancel.is_cancelled() {
            let _ = store.release_sync_items(&[item.id], &self.owner).await;
            return ItemOutcome::Released;
        }
        let parsed = (
            PortalId::new(item.portal_id),
            EfsUserId::new(item.user_id),
            serde_json::from_str::<UserProfile>(&item.profile),
        );
        let (Ok(portal), Ok(user), Ok(profile)) = parsed else {
            return self
                .finish(
                    &item,
                    ItemResult::Failed {
                        error_type: "internal".into(),
                        error: "the stored item is unreadable".into(),
                        field: None,
                        okta_user_id: None,
                    },
                )
                .await;
        };
        match self.engine.sync_portal_user(portal, user, &profile).await {
            Ok((sync, _group)) => {
                self.finish(
                    &item,
                    ItemResult::Succeeded {
                        outcome: sync.outcome.as_str().into(),
                        okta_user_id: sync.okta_user_id,
                    },
                )
                .await
            }
            Err(e @ (SyncError::OktaAuth(_) | SyncError::OktaNotConfigured)) => {
                let _ = store.release_sync_items(&[item.id], &self.owner).await;
                ItemOutcome::Blocked(e.to_string())
            }
            Err(e) if e.is_transient() => {
                let attempts = item.attempts.saturating_add(1);
                if attempts as u32 >= self.settings.max_attempts {
                    return self.finish(&item, failed(&e)).await;
                }
                let next = self.settings.retry_at(attempts as u32);
                match store
                    .retry_sync_item(item.id, &self.owner, attempts, &e.to_string(), next)
                    .await
                {
                    Ok(_) => ItemOutcome::Retrying,
                    Err(err) => {
                        tracing::warn!(item = item.id, error = %err, "could not record a retry; the lease will run out");
                        ItemOutcome::Released
                    }
                }
            }
            Err(e) => self.finish(&item, failed(&e)).await,
        }
    }
}

fn failed(e: &SyncError) -> ItemResult {
    let okta_user_id = match e {
        SyncError::Deprovisioned { okta_user_id } => Some(okta_user_id.clone()),
        _ => None,
    };
    ItemResult::Failed {
        error_type: e.slug().into(),
        error: e.to_string().chars().take(4000).collect(),
        field: e.field().map(str::to_owned),
        okta_user_id,
    }
}
