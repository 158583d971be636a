//! How the background workers run: the unassignment worker (`unassignments`) and the
//! batch job worker (`jobs`).
//!
//! Each worker has a public step function (`run_once`) that does one bounded round of
//! work and reports what it did; tests and `POST /sync/unassignments/run` drive it
//! directly. [`run_loop`] wraps a step in the service's loop: go again at once while
//! there is more to do, otherwise sleep until the poll interval passes or new work
//! wakes it, and back off exponentially while steps fail (database down, Okta refusing
//! efs-iam's credentials). [`Workers`] runs the loops in a `JoinSet` tied to a
//! cancellation token that the server's graceful shutdown cancels; a step in progress
//! is allowed to finish (bounded by a grace period), and work it had claimed but not
//! started is handed back.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

/// What a step tells its loop.
pub trait Step {
    /// A full batch was claimed: there is probably more to do right away.
    fn more_to_do(&self) -> bool;
    /// Why work could not be done at all (e.g. Okta refused the credentials); the
    /// loop backs off as after an error.
    fn blocked(&self) -> Option<&str>;
}

/// A worker's recent history, for `/sync/status`.
#[derive(Debug, Default)]
pub struct WorkerHealth {
    inner: Mutex<WorkerHealthSnapshot>,
}

#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct WorkerHealthSnapshot {
    /// The loop runs in this instance.
    pub running: bool,
    pub last_step_at: Option<DateTime<Utc>>,
    /// The last step that failed or could not work, and why.
    pub last_error_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    /// Steps since start.
    pub steps: u64,
}

impl WorkerHealth {
    pub fn snapshot(&self) -> WorkerHealthSnapshot {
        self.inner.lock().unwrap().clone()
    }

    fn set_running(&self, running: bool) {
        self.inner.lock().unwrap().running = running;
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
/// the loop (errors are logged and backed off), so an `Err` cannot happen today but
/// the signature leaves room for fatal conditions.
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
    health.set_running(true);
    let _running = scopeguard(|| health.set_running(false));
    let mut failures = 0u32;
    tracing::info!(worker = name, "worker started");
    loop {
        if cancel.is_cancelled() {
            return Ok(());
        }
        let pause = match step().await {
            Ok(report) => {
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
            Err(e) => {
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
pub struct Workers {
    set: JoinSet<(&'static str, anyhow::Result<()>)>,
    names: Vec<&'static str>,
    cancel: CancellationToken,
}

impl Workers {
    pub fn new(cancel: CancellationToken) -> Self {
        Self {
            set: JoinSet::new(),
            names: Vec::new(),
            cancel,
        }
    }

    pub fn spawn(
        &mut self,
        name: &'static str,
        task: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) {
        self.names.push(name);
        self.set.spawn(async move { (name, task.await) });
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
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
