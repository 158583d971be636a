//! Purges the error log outside any request: `DELETE /api/v1/errors?before=` stores a
//! purge (`efs_iam_error_log_purge`) and answers at once; this worker claims it with a
//! lease and deletes the entries created before its bound in batches of 1,000, oldest
//! first, pausing [`PAUSE_BETWEEN_BATCHES`] after each, while a heartbeat renews the
//! lease. Paced, a purge of a month of entries does not flood the database's redo log
//! and buffer pool at once (the soak in BENCHMARKS.md §4 saw a purge of ~60,000 rows run
//! back to back inside one request hold up every other request for 0.5–2.5 s).
//!
//! The purge counts its progress after each batch. One that fails for a reason that
//! passes (the database) is handed back and retried with backoff, up to
//! `EFS_IAM_SYNC_MAX_ATTEMPTS` attempts, then ends `failed` with the reason; one whose
//! holder died is taken over when its lease runs out and goes on with what is left
//! (a batch deletes only entries still before the bound: nothing twice, nothing after
//! it). Purges that ended are forgotten after [`PURGE_RETENTION_DAYS`].

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use super::{Step, Worker};
use crate::domain::{storable_text, TEXT_MAX_CHARS};
use crate::storage::{now, ErrorLogPurge, ErrorLogPurgeStore, ErrorLogStore, StorageError};
use crate::sync::heartbeat::Heartbeat;
use crate::sync::{SyncSettings, SyncStorage};

/// The pause after each batch of a purge: at most ten batches (10,000 entries) a
/// second, each a short transaction of its own, leave the database to the requests.
pub const PAUSE_BETWEEN_BATCHES: Duration = Duration::from_millis(100);

/// How long a purge that ended stays readable at its status URL.
pub const PURGE_RETENTION_DAYS: i64 = 7;

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PurgeStep {
    /// A purge was claimed.
    pub claimed: bool,
    /// Entries this step deleted.
    pub deleted: u64,
    pub succeeded: bool,
    pub failed: bool,
    /// Handed back: shutdown, the lease lost, or a failure to retry.
    pub released: bool,
}

impl Step for PurgeStep {
    fn more_to_do(&self) -> bool {
        self.claimed && !self.released
    }
    fn blocked(&self) -> Option<&str> {
        None
    }
}

pub struct ErrorLogPurgeWorker {
    purges: Arc<dyn ErrorLogPurgeStore>,
    error_log: Arc<dyn ErrorLogStore>,
    settings: SyncSettings,
    pause: Duration,
    owner: String,
    cancel: CancellationToken,
}

impl Worker for ErrorLogPurgeWorker {
    const NAME: &'static str = "error-log-purges";
    const STATUS_KEY: &'static str = "error_log_purges";
    /// It only deletes rows of efs-iam's database.
    const NEEDS_OKTA: bool = false;
    type Step = PurgeStep;

    async fn step(&self) -> Result<PurgeStep, StorageError> {
        self.run_once().await
    }
}

impl ErrorLogPurgeWorker {
    pub fn new<S: SyncStorage>(
        store: &Arc<S>,
        settings: SyncSettings,
        owner: String,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            purges: store.clone(),
            error_log: store.clone(),
            settings,
            pause: PAUSE_BETWEEN_BATCHES,
            owner,
            cancel,
        }
    }

    /// The same worker pausing `pause` between batches (tests: none).
    pub fn with_pause(mut self, pause: Duration) -> Self {
        self.pause = pause;
        self
    }

    /// Claims the oldest due purge and works on it to its end, or until shutdown or the
    /// lease is lost.
    pub async fn run_once(&self) -> Result<PurgeStep, StorageError> {
        let mut step = PurgeStep::default();
        let lease = chrono::Duration::from_std(self.settings.lease).unwrap_or_default();
        let t = now();
        let Some(purge) = self
            .purges
            .claim_error_log_purge(&self.owner, t, t + lease)
            .await?
        else {
            return Ok(step);
        };
        step.claimed = true;
        let heartbeat = self.heartbeat(purge.id.clone());
        let lost = heartbeat.lost();
        let mut after = None;
        loop {
            if self.cancel.is_cancelled() || lost.is_lost() {
                self.release(&purge, None, None).await?;
                step.released = true;
                break;
            }
            match self
                .error_log
                .purge_error_log_batch(purge.purge_before, after)
                .await
            {
                Ok((deleted, next)) => {
                    step.deleted += deleted;
                    if !self
                        .purges
                        .count_error_log_purge_progress(&purge.id, &self.owner, deleted)
                        .await?
                    {
                        tracing::warn!(purge = %purge.id, "lease lost during an error-log purge; its new holder goes on");
                        step.released = true;
                        break;
                    }
                    match next {
                        Some(position) => after = Some(position),
                        None => {
                            self.finish(&purge, None).await?;
                            step.succeeded = true;
                            break;
                        }
                    }
                }
                Err(e) if (purge.attempts as u32) < self.settings.max_attempts => {
                    let why = storable_text(&e.to_string(), TEXT_MAX_CHARS);
                    tracing::info!(purge = %purge.id, error = %e, "error-log purge failed; will retry");
                    let at = self.settings.retry_at(purge.attempts.max(1) as u32);
                    self.release(&purge, Some(&why), Some(at)).await?;
                    step.released = true;
                    break;
                }
                Err(e) => {
                    let why = storable_text(&e.to_string(), TEXT_MAX_CHARS);
                    tracing::warn!(purge = %purge.id, error = %e, "error-log purge failed");
                    self.finish(&purge, Some(&why)).await?;
                    step.failed = true;
                    break;
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.pause) => {}
                () = self.cancel.cancelled() => {}
            }
        }
        drop(heartbeat);
        if step.succeeded {
            tracing::info!(purge = %purge.id, deleted = step.deleted, "error log purged");
            let before = now() - chrono::Duration::days(PURGE_RETENTION_DAYS);
            if let Err(e) = self.purges.forget_error_log_purges(before).await {
                tracing::warn!(error = %e, "could not forget old error-log purges");
            }
        }
        Ok(step)
    }

    fn heartbeat(&self, id: String) -> Heartbeat {
        let (purges, owner) = (self.purges.clone(), self.owner.clone());
        Heartbeat::start("error-log purge", self.settings.lease, move |until| {
            let (purges, owner, id) = (purges.clone(), owner.clone(), id.clone());
            async move {
                let held = purges.renew_error_log_purge(&id, &owner, until).await?;
                anyhow::ensure!(held, "the purge's lease was lost");
                Ok(())
            }
        })
    }

    async fn finish(&self, purge: &ErrorLogPurge, error: Option<&str>) -> Result<(), StorageError> {
        if !self
            .purges
            .finish_error_log_purge(&purge.id, &self.owner, error, now())
            .await?
        {
            tracing::warn!(purge = %purge.id, "lease lost before the error-log purge was recorded");
        }
        Ok(())
    }

    async fn release(
        &self,
        purge: &ErrorLogPurge,
        why: Option<&str>,
        not_before: Option<chrono::NaiveDateTime>,
    ) -> Result<(), StorageError> {
        self.purges
            .release_error_log_purge(&purge.id, &self.owner, why, not_before)
            .await?;
        Ok(())
    }
}
