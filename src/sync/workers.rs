//! The workers of one instance, as the service runs them: which there are, their
//! loops (started once, stopped at shutdown within a grace period), and triggers.
//!
//! HTTP requests never do the workers' work: a trigger wakes this instance's loop of
//! that worker, or, where the loops are switched off (`EFS_IAM_SYNC_WORKER=false`),
//! starts one background drain in this instance (one per worker at a time), and
//! answers at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use super::runtime::{
    run_loop, LoopConfig, Step, WorkerExit, WorkerHealth, WorkerHealthSnapshot, Workers,
};
use super::{SyncError, SyncService};
use crate::storage::StorageError;

/// Rows a background drain started by a trigger takes at most when no loop runs here.
pub const ON_DEMAND_MAX_ROWS: usize = 100_000;

/// The background workers of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerKind {
    /// Drains the unassignment queue.
    Unassignments,
    /// Runs batch sync jobs.
    Jobs,
    /// Runs reconciliations.
    Reconciliations,
    /// Applies Okta Event Hook deliveries (needs no Okta credentials: it only reads
    /// what Okta sent and changes references).
    OktaEvents,
}

impl WorkerKind {
    pub const ALL: [WorkerKind; 4] = [
        Self::Unassignments,
        Self::Jobs,
        Self::Reconciliations,
        Self::OktaEvents,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Unassignments => "unassignments",
            Self::Jobs => "sync-jobs",
            Self::Reconciliations => "reconciliations",
            Self::OktaEvents => "okta-events",
        }
    }
}

/// What a trigger did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Triggered {
    /// This instance's worker loop was woken.
    Woken,
    /// No loop runs here: a background drain was started in this instance.
    Started,
    /// No loop runs here and a background drain is already going; it takes the new
    /// work too.
    AlreadyRunning,
}

/// One worker's loop plumbing.
#[derive(Default)]
pub(super) struct Loop {
    pub(super) wake: Arc<Notify>,
    pub(super) health: Arc<WorkerHealth>,
    /// A background drain started by a trigger is going.
    draining: Arc<AtomicBool>,
    /// A trigger came while a drain was going: it passes once more before it ends, so
    /// work stored just after its last claim is not left waiting.
    again: Arc<AtomicBool>,
}

impl SyncService {
    pub(super) fn plumbing(&self, kind: WorkerKind) -> &Loop {
        &self.loops[kind as usize]
    }

    /// A worker's recent history.
    pub fn health(&self, kind: WorkerKind) -> WorkerHealthSnapshot {
        self.plumbing(kind).health.snapshot()
    }

    /// Whether the background loops run in this instance.
    pub fn workers_enabled(&self) -> bool {
        self.settings.worker && self.okta.is_some()
    }

    /// Starts the background loops (once); nothing when they are switched off or Okta
    /// is not configured.
    pub fn start_workers(&self) {
        let mut slot = self.workers.lock().unwrap();
        if slot.is_some() {
            return;
        }
        let mut workers = Workers::new(self.cancel.clone());
        if self.settings.worker {
            let e = self.okta_events.clone();
            self.spawn_loop(&mut workers, WorkerKind::OktaEvents, move || {
                let w = e.clone();
                async move { w.run_once().await }
            });
        }
        if !self.settings.worker {
            tracing::info!("sync workers switched off (EFS_IAM_SYNC_WORKER=false)");
        } else if let (Some(u), Some(j), Some(r)) = (
            self.unassignments.clone(),
            self.jobs.clone(),
            self.reconciles.clone(),
        ) {
            self.spawn_loop(&mut workers, WorkerKind::Unassignments, move || {
                let w = u.clone();
                async move { w.run_once().await }
            });
            self.spawn_loop(&mut workers, WorkerKind::Jobs, move || {
                let w = j.clone();
                async move { w.run_once().await }
            });
            self.spawn_loop(&mut workers, WorkerKind::Reconciliations, move || {
                let w = r.clone();
                async move { w.run_once().await }
            });
            tracing::info!(instance = %self.instance_id, "sync workers started");
        } else {
            tracing::info!("sync workers not started: Okta is not configured");
        }
        metrics::gauge!("efs_iam_worker_enabled").set(if workers.is_empty() { 0.0 } else { 1.0 });
        *slot = Some(workers);
    }

    fn spawn_loop<S, F, Fut>(&self, workers: &mut Workers, kind: WorkerKind, step: F)
    where
        S: Step + Send + 'static,
        F: FnMut() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<S, StorageError>> + Send + 'static,
    {
        let config = LoopConfig {
            poll_interval: self.settings.poll_interval,
            max_error_backoff: Duration::from_secs(60),
        };
        let plumbing = self.plumbing(kind);
        workers.spawn(
            kind.name(),
            run_loop(
                kind.name(),
                step,
                config,
                plumbing.wake.clone(),
                plumbing.health.clone(),
                self.cancel.clone(),
            ),
        );
    }

    /// Stops the loops and background drains: no new work is taken, a step in progress
    /// gets `grace` to finish (what it had claimed but not started is handed back).
    /// Reports how each loop ended.
    pub async fn shutdown(&self, grace: Duration) -> Vec<(&'static str, WorkerExit)> {
        self.cancel.cancel();
        self.drains.close();
        let workers = self.workers.lock().unwrap().take();
        let deadline = tokio::time::Instant::now() + grace;
        let exits = match workers {
            Some(w) => w.shutdown(grace).await,
            None => Vec::new(),
        };
        if tokio::time::timeout_at(deadline, self.drains.wait())
            .await
            .is_err()
        {
            tracing::warn!("a background drain was still busy at the end of the grace period; its leases expire and other instances take the work over");
        }
        exits
    }

    /// A cancellation that stops the workers from taking new work (fired first at
    /// shutdown, while requests finish).
    pub fn stop_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Has the worker of `kind` look for work now: wakes this instance's loop, or
    /// where no loop runs here, starts one background drain. Never waits for the work.
    pub fn trigger(&self, kind: WorkerKind) -> Result<Triggered, SyncError> {
        let plumbing = self.plumbing(kind);
        let needs_okta = kind != WorkerKind::OktaEvents;
        if self.settings.worker && (self.okta.is_some() || !needs_okta) {
            plumbing.wake.notify_one();
            return Ok(Triggered::Woken);
        }
        if needs_okta && self.okta.is_none() {
            return Err(SyncError::OktaNotConfigured);
        }
        if self.cancel.is_cancelled() {
            return Ok(Triggered::AlreadyRunning);
        }
        // Set before looking at `draining`: a drain that is ending either sees it and
        // passes again, or has cleared `draining` already and this starts a new one.
        plumbing.again.store(true, Ordering::SeqCst);
        if plumbing
            .draining
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return Ok(Triggered::AlreadyRunning);
        }
        let again = plumbing.again.clone();
        let draining = plumbing.draining.clone();
        let health = plumbing.health.clone();
        let cancel = self.cancel.clone();
        let (u, j, r, e) = (
            self.unassignments.clone(),
            self.jobs.clone(),
            self.reconciles.clone(),
            self.okta_events.clone(),
        );
        self.drains.spawn(async move {
            let _done = ClearOnDrop(draining.clone());
            loop {
                again.store(false, Ordering::SeqCst);
                let outcome = match kind {
                    WorkerKind::Unassignments => match &u {
                        Some(w) => w.drain(ON_DEMAND_MAX_ROWS).await.map(drop),
                        None => Ok(()),
                    },
                    WorkerKind::Jobs => match &j {
                        Some(w) => drain_steps(&cancel, || w.run_once()).await,
                        None => Ok(()),
                    },
                    WorkerKind::Reconciliations => match &r {
                        Some(w) => drain_steps(&cancel, || w.run_once()).await,
                        None => Ok(()),
                    },
                    WorkerKind::OktaEvents => drain_steps(&cancel, || e.run_once()).await,
                };
                health.record(outcome.as_ref().err().map(|e| e.to_string()));
                if let Err(e) = outcome {
                    tracing::warn!(worker = kind.name(), error = %e, "background drain failed");
                }
                draining.store(false, Ordering::SeqCst);
                let rerun = again.load(Ordering::SeqCst)
                    && !cancel.is_cancelled()
                    && draining
                        .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok();
                if !rerun {
                    break;
                }
            }
        });
        Ok(Triggered::Started)
    }

    /// Wakes this instance's loop of `kind`, if it runs (new work for it was stored).
    pub(super) fn wake(&self, kind: WorkerKind) {
        self.plumbing(kind).wake.notify_one();
    }
}

/// Runs a worker's step until it finds nothing more to do (or shutdown).
async fn drain_steps<S, F, Fut>(cancel: &CancellationToken, mut step: F) -> Result<(), StorageError>
where
    S: Step,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<S, StorageError>>,
{
    while !cancel.is_cancelled() {
        let report = step().await?;
        if !report.more_to_do() {
            break;
        }
    }
    Ok(())
}

struct ClearOnDrop(Arc<AtomicBool>);
impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
