//! The heartbeat of work in progress: renews its leases, so a lease can be short (a
//! crashed instance's work waits little) however long the work takes.

use std::future::Future;
use std::time::Duration;

use chrono::NaiveDateTime;

/// Renews the leases of work in progress until dropped, so a lease can be short (a
/// crashed instance's work waits little) however long the work takes: every third of
/// `lease`, `renew` is called with the new end of the lease. A renewal that fails is
/// logged; the lease then runs out and another instance takes the work.
pub struct Heartbeat(tokio::task::JoinHandle<()>);

impl Heartbeat {
    pub fn start<F, Fut, T, E>(what: &'static str, lease: Duration, renew: F) -> Self
    where
        F: Fn(NaiveDateTime) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send,
        E: std::fmt::Display,
    {
        let extend = chrono::Duration::from_std(lease).unwrap_or_default();
        Self(tokio::spawn(async move {
            let every = (lease / 3).max(Duration::from_millis(100));
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await; // the first tick is immediate: the lease is fresh
            loop {
                tick.tick().await;
                if let Err(e) = renew(crate::storage::now() + extend).await {
                    tracing::warn!(work = what, error = %e, "could not renew leases");
                }
            }
        }))
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.0.abort();
    }
}
