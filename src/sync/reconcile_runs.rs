//! Runs reconciliations outside any request: `POST /sync/portals/{id}/reconcile` with
//! `dry_run=false` stores a run (`efs_iam_reconcile_run`) and answers at once; this
//! worker claims it with a lease, reconciles the portal ([`SyncEngine::reconcile`]) and
//! keeps the report.
//!
//! One portal is reconciled by one instance at a time: besides the run's own lease,
//! the worker holds the named lease `reconcile:<portal>` while it works (a second run
//! of the same portal waits). Both leases are renewed by a heartbeat. A run that fails
//! for a reason that passes (Okta unavailable, the database) is retried with backoff
//! up to `EFS_IAM_SYNC_MAX_ATTEMPTS`; any other failure ends it as `failed`, with the
//! reason.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use super::runtime::{Heartbeat, Step};
use super::{SyncEngine, SyncSettings, SyncStorage};
use crate::domain::{storable_text, PortalId};
use crate::storage::{now, LeaseStore, ReconcileRun, ReconcileRunStore, RunOutcome, StorageError};

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReconcileStep {
    pub claimed: usize,
    pub succeeded: usize,
    pub failed: usize,
    /// Handed back: the portal busy in another instance, shutdown, or a failure to retry.
    pub released: usize,
}

impl Step for ReconcileStep {
    fn more_to_do(&self) -> bool {
        self.claimed > 0 && self.released == 0
    }
    fn blocked(&self) -> Option<&str> {
        None
    }
}

pub struct ReconcileWorker {
    runs: Arc<dyn ReconcileRunStore>,
    leases: Arc<dyn LeaseStore>,
    engine: Arc<SyncEngine>,
    settings: SyncSettings,
    owner: String,
    cancel: CancellationToken,
}

impl ReconcileWorker {
    pub fn new<S: SyncStorage>(
        store: &Arc<S>,
        engine: Arc<SyncEngine>,
        settings: SyncSettings,
        owner: String,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            runs: store.clone(),
            leases: store.clone(),
            engine,
            settings,
            owner,
            cancel,
        }
    }

    /// One round: claim the oldest due run and carry it out. Reconciling reads a whole
    /// group from Okta, so runs are taken one at a time.
    #[tracing::instrument(name = "reconcile.step", skip(self), err(level = "warn"))]
    pub async fn run_once(&self) -> Result<ReconcileStep, StorageError> {
        let mut step = ReconcileStep::default();
        let lease = chrono::Duration::from_std(self.settings.lease).unwrap_or_default();
        let t = now();
        let runs = self
            .runs
            .claim_reconcile_runs(&self.owner, t, t + lease, 1)
            .await?;
        step.claimed = runs.len();
        for run in runs {
            match self.carry_out(&run, lease).await? {
                Some(true) => step.succeeded += 1,
                Some(false) => step.failed += 1,
                None => step.released += 1,
            }
        }
        for (outcome, n) in [("succeeded", step.succeeded), ("failed", step.failed)] {
            metrics::counter!("efs_iam_reconcile_runs_finished_total", "outcome" => outcome)
                .increment(n as u64);
        }
        Ok(step)
    }

    /// `Some(succeeded)` when the run ended, `None` when it was handed back.
    async fn carry_out(
        &self,
        run: &ReconcileRun,
        lease: chrono::Duration,
    ) -> Result<Option<bool>, StorageError> {
        let lock = format!("reconcile:{}", run.portal_id);
        let t = now();
        if self.cancel.is_cancelled() {
            self.release(run, None, t).await?;
            return Ok(None);
        }
        if !self
            .leases
            .try_lock(&lock, &self.owner, t, t + lease)
            .await?
        {
            let why = "another instance is reconciling this portal; waiting for it";
            self.release(run, Some(why), t + lease).await?;
            return Ok(None);
        }
        let _heartbeat = self.heartbeat(run.id.clone(), lock.clone());
        let outcome = match PortalId::new(run.portal_id) {
            Ok(portal) => self.engine.reconcile(portal, run.dry_run).await,
            Err(_) => {
                self.finish(
                    run,
                    RunOutcome::Failed {
                        error_type: "internal".into(),
                        error: "the stored portal id is not valid".into(),
                    },
                )
                .await?;
                self.leases.unlock(&lock, &self.owner).await?;
                return Ok(Some(false));
            }
        };
        let ended = match outcome {
            Ok(report) => {
                let report = serde_json::to_string(&report).expect("a report serialises");
                self.finish(run, RunOutcome::Succeeded { report }).await?;
                Some(true)
            }
            Err(e) if e.is_transient() && (run.attempts as u32) < self.settings.max_attempts => {
                let wait = self.settings.backoff(run.attempts.max(1) as u32);
                let at = now() + chrono::Duration::from_std(wait).unwrap_or_default();
                tracing::info!(run = %run.id, error = %e, "reconciliation failed; will retry");
                self.release(run, Some(&storable_text(&e.to_string(), 21_845)), at)
                    .await?;
                None
            }
            Err(e) => {
                tracing::warn!(run = %run.id, error = %e, "reconciliation failed");
                self.finish(
                    run,
                    RunOutcome::Failed {
                        error_type: e.slug().into(),
                        error: storable_text(&e.to_string(), 21_845),
                    },
                )
                .await?;
                Some(false)
            }
        };
        self.leases.unlock(&lock, &self.owner).await?;
        Ok(ended)
    }

    /// Renews the run's lease and the portal's while it runs.
    fn heartbeat(&self, run: String, lock: String) -> Heartbeat {
        let (runs, leases, owner) = (self.runs.clone(), self.leases.clone(), self.owner.clone());
        Heartbeat::start("reconciliation", self.settings.lease, move |until| {
            let (runs, leases, owner, run, lock) = (
                runs.clone(),
                leases.clone(),
                owner.clone(),
                run.clone(),
                lock.clone(),
            );
            async move {
                let held: bool = runs.renew_reconcile_run(&run, &owner, until).await?
                    && leases.renew_lock(&lock, &owner, until).await?;
                anyhow::ensure!(held, "the run or the portal's lease was lost");
                Ok(())
            }
        })
    }

    async fn finish(&self, run: &ReconcileRun, outcome: RunOutcome) -> Result<(), StorageError> {
        if !self
            .runs
            .finish_reconcile_run(&run.id, &self.owner, &outcome, now())
            .await?
        {
            tracing::warn!(run = %run.id, "lease lost before the reconciliation was recorded");
        }
        Ok(())
    }

    async fn release(
        &self,
        run: &ReconcileRun,
        why: Option<&str>,
        not_before: chrono::NaiveDateTime,
    ) -> Result<(), StorageError> {
        self.runs
            .release_reconcile_run(&run.id, &self.owner, why, not_before)
            .await?;
        Ok(())
    }
}
