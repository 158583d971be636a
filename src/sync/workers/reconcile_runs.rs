//! Runs reconciliations outside any request: `POST /sync/portals/{id}/reconcile` with
//! `dry_run=false` stores a run (`efs_iam_reconcile_run`) and answers at once; this
//! worker claims it with a lease, reconciles the portal ([`SyncEngine::reconcile`]) and
//! keeps the report.
//!
//! **The schedule** (`EFS_IAM_RECONCILE_INTERVAL`): the worker also stores a
//! `scheduled` run for every linked portal (one with `okta_group_id`) whose last run is
//! older than the interval, under a named lease (`reconcile-schedule`) so that one
//! instance at a time does it. A scheduled run reports drift (a dry run), or repairs it
//! where the portal's `reconcile_mode` is `repair`. Drift found by a scheduled run is
//! written to the error log (`efs-iam:reconcile-drift`) and counted; `/sync/status`
//! lists the portals whose latest run found drift. Reconciliations call Okta with
//! background priority (`okta::in_background`): half of the instance's share of each
//! bucket, so they never starve the syncs EFS-Admin waits for.
//!
//! One portal is reconciled by one instance at a time: besides the run's own lease,
//! the worker holds the named lease `reconcile:<portal>` while it works (a second run
//! of the same portal waits). Both leases are renewed by a heartbeat. A run that fails
//! for a reason that passes (Okta unavailable, the database) is retried with backoff
//! up to `EFS_IAM_SYNC_MAX_ATTEMPTS`; any other failure ends it as `failed`, with the
//! reason.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use super::{Step, Worker};
use crate::domain::{storable_text, PortalId, SettingKey, RECONCILE_MODE, TEXT_MAX_CHARS};
use crate::storage::{
    now, ErrorLogStore, LeaseStore, NewErrorLogEntry, NewReconcileRun, PortalSettingsStore,
    ReconcileRun, ReconcileRunStore, RunOutcome, StorageError,
};
use crate::sync::heartbeat::Heartbeat;
use crate::sync::reconcile::ReconcileReport;
use crate::sync::{SyncEngine, SyncSettings, SyncStorage};

/// The named lease of the one instance storing scheduled runs.
const SCHEDULE_LOCK: &str = "reconcile-schedule";

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ReconcileStep {
    pub claimed: usize,
    pub succeeded: usize,
    pub failed: usize,
    /// Handed back: the portal busy in another instance, shutdown, or a failure to retry.
    pub released: usize,
    /// Scheduled runs stored by this step.
    pub scheduled: usize,
}

impl Step for ReconcileStep {
    fn more_to_do(&self) -> bool {
        (self.claimed > 0 && self.released == 0) || self.scheduled > 0
    }
    fn blocked(&self) -> Option<&str> {
        None
    }
}

pub struct ReconcileWorker {
    runs: Arc<dyn ReconcileRunStore>,
    leases: Arc<dyn LeaseStore>,
    portal_settings: Arc<dyn PortalSettingsStore>,
    error_log: Arc<dyn ErrorLogStore>,
    engine: Arc<SyncEngine>,
    /// When this instance looks at the schedule next.
    next_schedule_check: Mutex<Instant>,
    settings: SyncSettings,
    owner: String,
    cancel: CancellationToken,
}

impl Worker for ReconcileWorker {
    const NAME: &'static str = "reconciliations";
    const STATUS_KEY: &'static str = "reconciliations";
    type Step = ReconcileStep;

    async fn step(&self) -> Result<ReconcileStep, StorageError> {
        self.run_once().await
    }
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
            portal_settings: store.clone(),
            error_log: store.clone(),
            next_schedule_check: Mutex::new(Instant::now()),
            engine,
            settings,
            owner,
            cancel,
        }
    }

    /// One round: claim the oldest due run and carry it out. Reconciling reads a whole
    /// group from Okta, so runs are taken one at a time.
    #[tracing::instrument(name = "reconcile.step", skip(self), err(level = "debug"))]
    pub async fn run_once(&self) -> Result<ReconcileStep, StorageError> {
        let mut step = ReconcileStep {
            scheduled: self.schedule().await?,
            ..ReconcileStep::default()
        };
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
            Ok(portal) => {
                crate::okta::in_background(self.engine.reconcile(portal, run.dry_run)).await
            }
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
                self.report_drift(run, &report).await;
                let report = serde_json::to_string(&report).expect("a report serialises");
                self.finish(run, RunOutcome::Succeeded { report }).await?;
                Some(true)
            }
            Err(e) if e.is_transient() && (run.attempts as u32) < self.settings.max_attempts => {
                let at = self.settings.retry_at(run.attempts.max(1) as u32);
                tracing::info!(run = %run.id, error = %e, "reconciliation failed; will retry");
                self.release(
                    run,
                    Some(&storable_text(&e.to_string(), TEXT_MAX_CHARS)),
                    at,
                )
                .await?;
                None
            }
            Err(e) => {
                tracing::warn!(run = %run.id, error = %e, "reconciliation failed");
                self.finish(
                    run,
                    RunOutcome::Failed {
                        error_type: e.slug().into(),
                        error: storable_text(&e.to_string(), TEXT_MAX_CHARS),
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

    /// Stores a scheduled run for every linked portal whose last run is older than the
    /// interval; how many. Looked at every quarter of the interval (at most every
    /// minute), by one instance at a time.
    async fn schedule(&self) -> Result<usize, StorageError> {
        let interval = self.settings.reconcile_interval;
        if interval.is_zero() {
            return Ok(0);
        }
        {
            let mut next = self.next_schedule_check.lock().unwrap();
            if Instant::now() < *next {
                return Ok(0);
            }
            let every = (interval / 4).clamp(Duration::from_millis(250), Duration::from_secs(60));
            *next = Instant::now() + every;
        }
        let t = now();
        let lease = chrono::Duration::from_std(self.settings.lease).unwrap_or_default();
        if !self
            .leases
            .try_lock(SCHEDULE_LOCK, &self.owner, t, t + lease)
            .await?
        {
            return Ok(0);
        }
        let scheduled = self.store_due_runs(interval).await;
        self.leases.unlock(SCHEDULE_LOCK, &self.owner).await?;
        let scheduled = scheduled?;
        if scheduled > 0 {
            tracing::info!(runs = scheduled, "scheduled reconciliations stored");
        }
        Ok(scheduled)
    }

    async fn store_due_runs(&self, interval: Duration) -> Result<usize, StorageError> {
        let mode_key = SettingKey::parse(RECONCILE_MODE).expect("a valid key");
        let linked = self.portal_settings.linked_portal_ids().await?;
        if linked.is_empty() {
            return Ok(0);
        }
        let repair: HashMap<i32, bool> = self
            .portal_settings
            .settings_with_key(&mode_key)
            .await?
            .into_iter()
            .map(|(p, v)| (p, v.as_deref().map(str::trim) == Some("repair")))
            .collect();
        let latest: HashMap<i32, ReconcileRun> = self
            .runs
            .latest_reconcile_runs(&linked, false)
            .await?
            .into_iter()
            .map(|r| (r.portal_id, r))
            .collect();
        let t = now();
        let due_before = t - chrono::Duration::from_std(interval).unwrap_or_default();
        let mut stored = 0;
        for portal in linked {
            let due = match latest.get(&portal) {
                None => true,
                // Waiting or running: the next one comes after it.
                Some(r) if matches!(r.state.as_str(), "pending" | "running") => false,
                Some(r) => r.created_at <= due_before,
            };
            let Ok(id) = PortalId::new(portal) else {
                continue;
            };
            if !due {
                continue;
            }
            let run = NewReconcileRun {
                id: uuid::Uuid::new_v4().hyphenated().to_string(),
                portal: id,
                dry_run: !repair.get(&portal).copied().unwrap_or(false),
                kind: "scheduled",
            };
            self.runs.create_reconcile_run(&run, t).await?;
            stored += 1;
        }
        Ok(stored)
    }

    /// Drift found by a scheduled run goes to the error log and the metrics (a manual
    /// run's caller reads its report).
    async fn report_drift(&self, run: &ReconcileRun, report: &ReconcileReport) {
        let c = &report.counts;
        for (kind, n) in [
            ("missing_member", c.missing_members),
            ("extra_member", c.extra_members),
            ("stale_reference", c.stale_references),
        ] {
            metrics::counter!("efs_iam_reconcile_drift_total", "kind" => kind).increment(n as u64);
        }
        let drift = c.missing_members + c.extra_members + c.stale_references;
        if run.kind != "scheduled" || drift == 0 {
            return;
        }
        let done = if report.dry_run {
            "reported only (reconcile_mode is not repair)".to_owned()
        } else {
            format!(
                "repaired: {} added, {} removed, {} marked deprovisioned",
                report.repaired.added,
                report.repaired.removed,
                report.repaired.marked_deprovisioned
            )
        };
        let message = format!(
            "portal {}: the scheduled reconciliation {} found drift with Okta group {}: \
             {} missing member(s), {} extra member(s), {} stale reference(s); {done}",
            report.portal_id,
            run.id,
            report.group_id,
            c.missing_members,
            c.extra_members,
            c.stale_references
        );
        let trace = format!("GET /api/v1/sync/reconcile-runs/{}", run.id);
        let entry = NewErrorLogEntry::new(0, "efs-iam:reconcile-drift", &message, Some(&trace));
        if let Err(e) = self.error_log.record_error(&entry).await {
            tracing::warn!(error = %e, "could not write the drift to the error log");
        }
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
