//! The background workers of an instance, and how they run.
//!
//! A worker does its work in bounded steps: each step claims a batch under a short
//! lease (`storage::leases`), works on it while a heartbeat renews the lease
//! (`sync::heartbeat`), records each outcome and reports what it did. Tests drive a
//! worker's step (`run_once`) directly.
//!
//! - [`Worker`]: what a worker is to the rest of the service: its name, its key in
//!   `/sync/status`, whether it needs Okta, and its step;
//! - [`registry`]: the [`WorkerRegistry`] of an instance: every worker is registered
//!   once, and its loop, triggers, background drains, health, `/sync/status` entry,
//!   readiness and metrics all come from there;
//! - [`supervision`]: one worker's loop (backoff, restart after a panic) and its health;
//! - the workers: [`unassignments`] (the unassignment queue), [`jobs`] (batch syncs),
//!   [`reconcile_runs`] (reconciliations and their schedule), [`okta_events`] (Okta
//!   Event Hook deliveries), [`adoptions`] (bulk adoption runs), [`error_log_purges`]
//!   (purges of the error log).
//!
//! Adding a worker: implement [`Worker`] for it, and register it in
//! `SyncService::new` (one line). A worker of leased items claimed in batches (batch-job
//! items, adoption items) also implements `LeasedItems` and works through each batch
//! with `work_through`.

pub mod adoptions;
pub mod error_log_purges;
pub mod jobs;
pub mod okta_events;
pub mod reconcile_runs;
pub mod registry;
pub mod supervision;
mod unassignment_groups;
pub mod unassignments;

use std::future::Future;

use crate::storage::StorageError;
use crate::sync::heartbeat::Heartbeat;

pub use registry::{Triggered, WorkerRegistry};
pub use supervision::{WorkerExit, WorkerHealthSnapshot};

/// A background worker.
pub trait Worker: Send + Sync + 'static {
    /// Its name in logs, in the `worker` label of metrics, in readiness and triggers.
    const NAME: &'static str;
    /// Its key under `workers` in `/sync/status`.
    const STATUS_KEY: &'static str;
    /// Whether it calls Okta: its loop runs, and it can be triggered, only where Okta
    /// is configured.
    const NEEDS_OKTA: bool = true;
    /// What one step reports.
    type Step: Step + Send;

    /// One bounded round of work.
    fn step(&self) -> impl Future<Output = Result<Self::Step, StorageError>> + Send;
}

/// What a step tells its loop.
pub trait Step {
    /// A full batch was claimed: there is probably more to do right away.
    fn more_to_do(&self) -> bool;
    /// Why work could not be done at all (e.g. Okta refused the credentials); the
    /// loop backs off as after an error.
    fn blocked(&self) -> Option<&str>;
}

/// What a worker of leased items does with one claimed batch, item by item.
trait LeasedItems: Sync {
    type Item: Send;
    type Outcome: Send;

    /// Starts renewing the leases of a claimed batch, for as long as it is worked on.
    fn heartbeat(&self, items: &[Self::Item]) -> Heartbeat;
    /// The outcome of an item not started because the batch's leases were lost.
    fn released(&self) -> Self::Outcome;
    /// Works on one item and records its outcome.
    fn process(&self, item: Self::Item) -> impl Future<Output = Self::Outcome> + Send;
}

/// Works through a claimed batch, `concurrency` items at a time, while a heartbeat
/// renews its leases (none for an empty batch); an item not started before the leases
/// were lost is [released](LeasedItems::released): it may be another instance's by now,
/// so nothing is done with it.
async fn work_through<W: LeasedItems>(
    worker: &W,
    items: Vec<W::Item>,
    concurrency: u32,
) -> Vec<W::Outcome> {
    let heartbeat = (!items.is_empty()).then(|| worker.heartbeat(&items));
    let lost = heartbeat.as_ref().map(Heartbeat::lost).unwrap_or_default();
    lost.each_while_held(
        items,
        concurrency as usize,
        || worker.released(),
        |item| worker.process(item),
    )
    .await
}
