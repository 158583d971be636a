//! The workers of one instance, registered once each: their loops (started once,
//! stopped at shutdown within a grace period), triggers, health and the metrics
//! exported for them.
//!
//! HTTP requests never do the workers' work: a trigger wakes this instance's loop of
//! that worker, or, where the loops are switched off (`EFS_IAM_SYNC_WORKER=false`),
//! starts one background drain in this instance (one per worker at a time), and
//! answers at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use utoipa::ToSchema;

use super::supervision::{run_loop, LoopConfig, LoopSet, WorkerExit, WorkerHealth};
use super::{Step, Worker, WorkerHealthSnapshot};
use crate::storage::StorageError;
use crate::sync::SyncError;

/// Steps a background drain started by a trigger takes at most when no loop runs here
/// (it then stops; the next trigger goes on).
pub const ON_DEMAND_MAX_STEPS: usize = 1_000;

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

/// What any step reports to the loop.
struct StepSummary {
    more_to_do: bool,
    blocked: Option<String>,
}

impl Step for StepSummary {
    fn more_to_do(&self) -> bool {
        self.more_to_do
    }
    fn blocked(&self) -> Option<&str> {
        self.blocked.as_deref()
    }
}

type StepFn = Arc<dyn Fn() -> BoxFuture<'static, Result<StepSummary, StorageError>> + Send + Sync>;

/// One registered worker.
struct Registered {
    name: &'static str,
    status_key: &'static str,
    needs_okta: bool,
    /// `None` when the worker needs Okta and none is configured.
    step: Option<StepFn>,
    wake: Arc<Notify>,
    health: Arc<WorkerHealth>,
    /// A background drain started by a trigger is going.
    draining: Arc<AtomicBool>,
    /// A trigger came while a drain was going: it passes once more before it ends, so
    /// work stored just after its last claim is not left waiting.
    again: Arc<AtomicBool>,
}

/// The workers of an instance.
pub struct WorkerRegistry {
    workers: Vec<Registered>,
    /// `EFS_IAM_SYNC_WORKER`: whether the loops run in this instance.
    loops_wanted: bool,
    okta_configured: bool,
    poll_interval: Duration,
    cancel: CancellationToken,
    /// The loops, once started.
    loops: Mutex<Option<LoopSet>>,
    /// Background drains started by triggers.
    drains: TaskTracker,
}

impl WorkerRegistry {
    pub fn new(
        loops_wanted: bool,
        okta_configured: bool,
        poll_interval: Duration,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            workers: Vec::new(),
            loops_wanted,
            okta_configured,
            poll_interval,
            cancel,
            loops: Mutex::new(None),
            drains: TaskTracker::new(),
        }
    }

    /// Registers a worker (`None`: one that needs Okta where none is configured; it is
    /// still listed, as not running). Its metrics are exported at zero from now on.
    pub fn register<W: Worker>(&mut self, worker: Option<Arc<W>>) {
        let step: Option<StepFn> = worker.map(|w| {
            let step: StepFn = Arc::new(move || {
                let w = w.clone();
                Box::pin(async move {
                    let report = w.step().await?;
                    Ok(StepSummary {
                        more_to_do: report.more_to_do(),
                        blocked: report.blocked().map(str::to_owned),
                    })
                })
            });
            step
        });
        metrics::gauge!("efs_iam_worker_running", "worker" => W::NAME).set(0.0);
        metrics::counter!("efs_iam_worker_panics_total", "worker" => W::NAME).absolute(0);
        self.workers.push(Registered {
            name: W::NAME,
            status_key: W::STATUS_KEY,
            needs_okta: W::NEEDS_OKTA,
            step,
            wake: Arc::default(),
            health: Arc::default(),
            draining: Arc::default(),
            again: Arc::default(),
        });
    }

    fn get(&self, name: &str) -> Option<&Registered> {
        self.workers.iter().find(|w| w.name == name)
    }

    /// Whether the background loops run in this instance.
    pub fn enabled(&self) -> bool {
        self.loops_wanted && self.okta_configured
    }

    /// A worker's recent history (a default one for a name nobody registered).
    pub fn health(&self, name: &str) -> WorkerHealthSnapshot {
        self.get(name)
            .map(|w| w.health.snapshot())
            .unwrap_or_default()
    }

    /// Every worker's name, status key and recent history, in registration order.
    pub fn statuses(&self) -> Vec<(&'static str, &'static str, WorkerHealthSnapshot)> {
        self.workers
            .iter()
            .map(|w| (w.name, w.status_key, w.health.snapshot()))
            .collect()
    }

    /// Starts the background loops (once); nothing when they are switched off. Workers
    /// that need Okta start only where it is configured.
    pub fn start(&self) {
        let mut slot = self.loops.lock().unwrap();
        if slot.is_some() {
            return;
        }
        let mut loops = LoopSet::new(self.cancel.clone());
        if !self.loops_wanted {
            tracing::info!("sync workers switched off (EFS_IAM_SYNC_WORKER=false)");
        } else {
            for w in &self.workers {
                let Some(step) = w.step.clone().filter(|_| self.runs_here(w)) else {
                    continue;
                };
                let config = LoopConfig {
                    poll_interval: self.poll_interval,
                    max_error_backoff: Duration::from_secs(60),
                };
                loops.spawn(
                    w.name,
                    run_loop(
                        w.name,
                        move || step(),
                        config,
                        w.wake.clone(),
                        w.health.clone(),
                        self.cancel.clone(),
                    ),
                );
            }
            if self.okta_configured {
                tracing::info!("sync workers started");
            } else {
                tracing::info!("sync workers that call Okta not started: Okta is not configured");
            }
        }
        metrics::gauge!("efs_iam_worker_enabled").set(if loops.is_empty() { 0.0 } else { 1.0 });
        *slot = Some(loops);
    }

    fn runs_here(&self, w: &Registered) -> bool {
        self.loops_wanted && (self.okta_configured || !w.needs_okta)
    }

    /// Has the worker named `name` look for work now: wakes this instance's loop, or
    /// where no loop runs here, starts one background drain. Never waits for the work.
    pub fn trigger(&self, name: &str) -> Result<Triggered, SyncError> {
        let Some(w) = self.get(name) else {
            return Ok(Triggered::AlreadyRunning);
        };
        if self.runs_here(w) {
            w.wake.notify_one();
            return Ok(Triggered::Woken);
        }
        let Some(step) = w.step.clone() else {
            return Err(SyncError::OktaNotConfigured);
        };
        if self.cancel.is_cancelled() {
            return Ok(Triggered::AlreadyRunning);
        }
        // Set before looking at `draining`: a drain that is ending either sees it and
        // passes again, or has cleared `draining` already and this starts a new one.
        w.again.store(true, Ordering::SeqCst);
        if w.draining
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return Ok(Triggered::AlreadyRunning);
        }
        let (again, draining, health) = (w.again.clone(), w.draining.clone(), w.health.clone());
        let (cancel, name) = (self.cancel.clone(), w.name);
        self.drains.spawn(async move {
            let _done = ClearOnDrop(draining.clone());
            loop {
                again.store(false, Ordering::SeqCst);
                let outcome = drain(&cancel, &step).await;
                health.record(outcome.as_ref().err().map(|e| e.to_string()));
                if let Err(e) = outcome {
                    tracing::warn!(worker = name, error = %e, "background drain failed");
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

    /// Wakes this instance's loop of the worker named `name`, if it runs (new work for
    /// it was stored).
    pub fn wake(&self, name: &str) {
        if let Some(w) = self.get(name) {
            w.wake.notify_one();
        }
    }

    /// A cancellation that stops the workers from taking new work (fired first at
    /// shutdown, while requests finish).
    pub fn stop_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Stops the loops and background drains: no new work is taken, a step in progress
    /// gets `grace` to finish (what it had claimed but not started is handed back).
    /// Reports how each loop ended.
    pub async fn shutdown(&self, grace: Duration) -> Vec<(&'static str, WorkerExit)> {
        self.cancel.cancel();
        self.drains.close();
        let loops = self.loops.lock().unwrap().take();
        let deadline = tokio::time::Instant::now() + grace;
        let exits = match loops {
            Some(l) => l.shutdown(grace).await,
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
}

/// Steps until nothing more is to be done right away, a step is blocked, shutdown, or
/// [`ON_DEMAND_MAX_STEPS`].
async fn drain(cancel: &CancellationToken, step: &StepFn) -> Result<(), StorageError> {
    for _ in 0..ON_DEMAND_MAX_STEPS {
        if cancel.is_cancelled() {
            break;
        }
        let report = step().await?;
        if !report.more_to_do() || report.blocked().is_some() {
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
