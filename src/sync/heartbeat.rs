//! The heartbeat of work in progress: renews its leases, so a lease can be short (a
//! crashed instance's work waits little) however long the work takes.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;

/// Renews the leases of work in progress until dropped, so a lease can be short (a
/// crashed instance's work waits little) however long the work takes: every third of
/// `lease`, `renew` is called with the new end of the lease. A renewal that fails is
/// logged and marks the leases [lost](Heartbeat::lost): the work may belong to another
/// instance by now, so its holder starts nothing more of it (no further Okta call) and
/// lets the lease run out.
pub struct Heartbeat {
    task: tokio::task::JoinHandle<()>,
    lost: LeaseLost,
}

/// Whether a heartbeat's renewal failed; cheap to clone into the work it guards.
#[derive(Clone, Default)]
pub struct LeaseLost(Arc<AtomicBool>);

impl LeaseLost {
    pub fn is_lost(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// `work` on each item, `concurrency` at a time; an item not started before the
    /// leases were lost is `released()` instead: it may be another instance's by now,
    /// so no Okta call is made for it.
    pub async fn each_while_held<I, O, Fut>(
        &self,
        items: Vec<I>,
        concurrency: usize,
        released: impl Fn() -> O,
        work: impl Fn(I) -> Fut,
    ) -> Vec<O>
    where
        Fut: Future<Output = O>,
    {
        use futures_util::stream::{self, StreamExt};
        let (released, work) = (&released, &work);
        stream::iter(items)
            .map(|item| async move {
                if self.is_lost() {
                    released()
                } else {
                    work(item).await
                }
            })
            .buffer_unordered(concurrency)
            .collect()
            .await
    }
}

impl Heartbeat {
    pub fn start<F, Fut, T, E>(what: &'static str, lease: Duration, renew: F) -> Self
    where
        F: Fn(NaiveDateTime) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send,
        E: std::fmt::Display,
    {
        let extend = chrono::Duration::from_std(lease).unwrap_or_default();
        let lost = LeaseLost::default();
        let flag = lost.clone();
        let task = tokio::spawn(async move {
            let every = (lease / 3).max(Duration::from_millis(100));
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await; // the first tick is immediate: the lease is fresh
            loop {
                tick.tick().await;
                if let Err(e) = renew(crate::storage::now() + extend).await {
                    tracing::warn!(work = what, error = %e, "could not renew leases; starting nothing more of this work");
                    metrics::counter!("efs_iam_lease_renewals_failed_total").increment(1);
                    flag.0.store(true, Ordering::Relaxed);
                    return;
                }
            }
        });
        Self { task, lost }
    }

    /// The flag the work checks before each step it starts.
    pub fn lost(&self) -> LeaseLost {
        self.lost.clone()
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}
