//! How a worker's loop runs and is kept running. [`run_loop`] wraps a worker's step in
//! the loop: go again at once while there is more to do, otherwise sleep until the
//! poll interval passes or new work wakes it, back off exponentially while steps fail
//! (database down, Okta refusing efs-iam's credentials), and start again after a step
//! that panicked. [`LoopSet`] runs the loops in a `JoinSet` tied to a cancellation
//! token that the server's graceful shutdown cancels; a step in progress is allowed to
//! finish (bounded by a grace period), and work it had claimed but not started is
//! handed back.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use super::Step;

/// A worker's recent history, for `/sync/status`.
#[derive(Debug, Default)]
pub struct WorkerHealth {
    inner: Mutex<WorkerHealthSnapshot>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct WorkerHealthSnapshot {
    /// The loop runs in this instance.
    pub running: bool,
    pub last_step_at: Option<DateTime<Utc>>,
    /// The last step that failed or could not work, and why.
    pub last_error_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Steps since start.
    pub steps: u64,
    /// Steps that panicked; the loop was restarted after each, with backoff.
    pub restarts: u64,
    pub last_panic_at: Option<DateTime<Utc>>,
    pub last_panic: Option<String>,
}

impl WorkerHealth {
    pub fn snapshot(&self) -> WorkerHealthSnapshot {
        self.inner.lock().unwrap().clone()
    }

    fn set_running(&self, running: bool) {
        self.inner.lock().unwrap().running = running;
    }

    fn record_panic(&self, message: String) {
        let mut h = self.inner.lock().unwrap();
        let now = Utc::now();
        h.restarts += 1;
        h.last_panic_at = Some(now);
        h.last_panic = Some(message.clone());
        h.last_error_at = Some(now);
        h.last_error = Some(format!("panicked: {message}"));
    }

    pub(crate) fn record(&self, error: Option<String>) {
        let mut h = self.inner.lock().unwrap();
        let now = Utc::now();
        h.steps += 1;
        h.last_step_at = Some(now);
        if let Some(e) = error {
            h.last_error_at = Some(now);
            h.last_error = Some(e);
        }
    }
}

/// Timing of a worker loop.
#[derive(Debug, Clone)]
pub struct LoopConfig {
    pub poll_interval: Duration,
    /// Longest pause after repeated failures.
    pub max_error_backoff: Duration,
}

/// Runs `step` until `cancel` fires. Returns `Ok` on cancellation; a step never ends
/// the loop: errors are logged and backed off, and a step that panics is caught, counted
/// (`efs_iam_worker_panics_total`, the health's `restarts`) and the loop starts again
/// after the same backoff, so one poisoned piece of work cannot stop a worker for good.
pub async fn run_loop<S, F, Fut, E>(
    name: &'static str,
    mut step: F,
    config: LoopConfig,
    wake: Arc<Notify>,
    health: Arc<WorkerHealth>,
    cancel: CancellationToken,
) -> anyhow::Result<()>
where
    S: Step,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<S, E>>,
    E: std::fmt::Display,
{
    use futures_util::FutureExt;
    health.set_running(true);
    metrics::gauge!("efs_iam_worker_running", "worker" => name).set(1.0);
    let _running = scopeguard(|| {
        health.set_running(false);
        metrics::gauge!("efs_iam_worker_running", "worker" => name).set(0.0);
    });
    let mut failures = 0u32;
    tracing::info!(worker = name, "worker started");
    loop {
        if cancel.is_cancelled() {
            return Ok(());
        }
        let outcome = std::panic::AssertUnwindSafe(step()).catch_unwind().await;
        let pause = match outcome {
            Err(panic) => {
                failures += 1;
                let pause = error_backoff(failures, &config);
                let message = panic_message(panic.as_ref());
                tracing::error!(worker = name, panic = %message, pause_ms = pause.as_millis() as u64, "worker step panicked; restarting after a pause");
                metrics::counter!("efs_iam_worker_panics_total", "worker" => name).increment(1);
                health.record_panic(message);
                pause
            }
            Ok(Ok(report)) => {
                if let Some(why) = report.blocked() {
                    failures += 1;
                    let pause = error_backoff(failures, &config);
                    tracing::warn!(
                        worker = name,
                        reason = why,
                        pause_ms = pause.as_millis() as u64,
                        "worker cannot work; backing off"
                    );
                    health.record(Some(why.to_owned()));
                    pause
                } else {
                    failures = 0;
                    health.record(None);
                    if report.more_to_do() {
                        tokio::task::yield_now().await;
                        continue;
                    }
                    config.poll_interval
                }
            }
            Ok(Err(e)) => {
                failures += 1;
                let pause = error_backoff(failures, &config);
                tracing::warn!(worker = name, error = %e, pause_ms = pause.as_millis() as u64, "worker step failed; backing off");
                health.record(Some(e.to_string()));
                pause
            }
        };
        tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            _ = wake.notified() => {}
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

fn error_backoff(failures: u32, config: &LoopConfig) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    let d = Duration::from_secs(1).saturating_mul(1 << exp);
    d.min(config.max_error_backoff.max(Duration::from_secs(1)))
}

struct ScopeGuard<F: FnMut()>(F);
impl<F: FnMut()> Drop for ScopeGuard<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}
fn scopeguard<F: FnMut()>(f: F) -> ScopeGuard<F> {
    ScopeGuard(f)
}

/// How a worker loop ended.
#[derive(Debug)]
pub enum WorkerExit {
    /// Stopped when asked.
    Stopped,
    Failed(anyhow::Error),
    Panicked(String),
    /// Still busy when the grace period ran out; aborted (its leases expire and others
    /// take the work over).
    Aborted,
}

/// The running worker loops of one instance.
pub struct LoopSet {
    set: JoinSet<(&'static str, anyhow::Result<()>)>,
    names: Vec<&'static str>,
    cancel: CancellationToken,
}

impl LoopSet {
    pub fn new(cancel: CancellationToken) -> Self {
        Self {
            set: JoinSet::new(),
            names: Vec::new(),
            cancel,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn spawn(
        &mut self,
        name: &'static str,
        task: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) {
        self.names.push(name);
        self.set.spawn(async move { (name, task.await) });
    }

    /// Stops every loop and waits up to `grace` for them; reports how each ended.
    pub async fn shutdown(mut self, grace: Duration) -> Vec<(&'static str, WorkerExit)> {
        self.cancel.cancel();
        let mut exits = Vec::new();
        let deadline = tokio::time::Instant::now() + grace;
        while !self.set.is_empty() {
            match tokio::time::timeout_at(deadline, self.set.join_next()).await {
                Ok(Some(Ok((name, Ok(()))))) => exits.push((name, WorkerExit::Stopped)),
                Ok(Some(Ok((name, Err(e))))) => exits.push((name, WorkerExit::Failed(e))),
                Ok(Some(Err(e))) => {
                    let what = if e.is_panic() {
                        "panicked"
                    } else {
                        "was cancelled"
                    };
                    exits.push(("worker", WorkerExit::Panicked(format!("{what}: {e}"))));
                }
                Ok(None) => break,
                Err(_) => {
                    self.set.abort_all();
                    let done: Vec<&str> = exits.iter().map(|(n, _)| *n).collect();
                    for name in self.names.iter().filter(|n| !done.contains(n)) {
                        exits.push((name, WorkerExit::Aborted));
                    }
                    break;
                }
            }
        }
        exits
    }
}

/// Logs how each worker ended (what `main` reports at shutdown).
pub fn report_exits(exits: &[(&'static str, WorkerExit)]) {
    for (name, exit) in exits {
        match exit {
            WorkerExit::Stopped => tracing::info!(worker = name, "worker stopped"),
            WorkerExit::Failed(e) => tracing::error!(worker = name, error = ?e, "worker failed"),
            WorkerExit::Panicked(e) => tracing::error!(worker = name, error = %e, "worker panicked"),
            WorkerExit::Aborted => tracing::warn!(
                worker = name,
                "worker still busy at the end of the grace period; aborted (its leases expire and other instances take the work over)"
            ),
        }
    }
}
