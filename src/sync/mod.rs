//! The sync engine and its workers: everything efs-iam does on Okta's side of EFS's
//! user management.
//!
//! - [`engine`]: syncing one user (an EFS-Admin user, or a portal user and its portal
//!   group membership) and deprovisioning; [`profile`] compares profiles, [`lock`]
//!   serialises the syncs of one person across instances;
//! - [`reconcile`]: a portal's Okta group against its references;
//! - [`unassignments`]: the worker draining the unassignment queue;
//! - [`jobs`]: the worker running batch sync jobs;
//! - [`reconcile_runs`]: the worker running reconciliations;
//! - [`okta_events`]: the worker applying Okta Event Hook deliveries;
//! - [`runtime`]: the loop, health and shutdown of those workers;
//! - [`service`]: one instance's sync machinery, and what the HTTP layer calls; its
//!   [`workers`] (loops and triggers) and its [`status`].

pub mod engine;
pub mod error;
pub mod jobs;
pub mod lock;
pub mod okta_events;
pub mod profile;
pub mod reconcile;
pub mod reconcile_runs;
pub mod runtime;
pub mod service;
pub mod settings;
pub mod status;
pub mod unassignments;
pub mod workers;

pub use engine::{Deprovision, DeprovisionOutcome, Outcome, SyncEngine, UserSync};
pub use error::{SyncError, SyncErrorKind};
pub use jobs::{JobStep, JobWorker};
pub use okta_events::{EventStep, OktaEventWorker};
pub use profile::UserProfile;
pub use reconcile_runs::{ReconcileStep, ReconcileWorker};
pub use runtime::{WorkerExit, WorkerHealthSnapshot};
pub use service::{SubmittedJob, SyncService};
pub use settings::SyncSettings;
pub use status::{ProbeResult, ReconciliationStatus, SyncStatusReport};
pub use unassignments::{MissingGroup, UnassignmentStep, UnassignmentWorker};
pub use workers::{Triggered, WorkerKind};

use crate::storage::{
    ErrorLogStore, LeaseStore, OktaEventStore, PortalSettingsStore, ReconcileRunStore,
    SyncJobStore, UnassignmentQueueStore, UserReferenceStore,
};

pub use crate::domain::OKTA_GROUP_ID as GROUP_SETTING;

/// The storage the sync engine and its workers use; each part takes its own narrow
/// contract from it.
pub trait SyncStorage:
    PortalSettingsStore
    + UserReferenceStore
    + ErrorLogStore
    + LeaseStore
    + UnassignmentQueueStore
    + SyncJobStore
    + ReconcileRunStore
    + OktaEventStore
{
}

impl<S> SyncStorage for S where
    S: PortalSettingsStore
        + UserReferenceStore
        + ErrorLogStore
        + LeaseStore
        + UnassignmentQueueStore
        + SyncJobStore
        + ReconcileRunStore
        + OktaEventStore
{
}
