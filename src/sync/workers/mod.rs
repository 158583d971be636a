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
//! `SyncService::new` (one line).

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
