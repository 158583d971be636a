//! The sync engine and its workers: everything efs-iam does on Okta's side of EFS's
//! user management.
//!
//! - [`engine`]: syncing one user (an EFS-Admin user, or a portal user and its portal
//!   group membership), [`deprovision`]ing one; [`profile`] compares profiles, [`lock`]
//!   serialises the syncs of one person across instances;
//! - [`reconcile`]: a portal's Okta group against its references;
//! - [`workers`]: the background workers (the unassignment queue, batch sync jobs,
//!   reconciliations, Okta Event Hook deliveries) and their registry; [`heartbeat`]
//!   renews the leases of work in progress;
//! - [`service`]: one instance's sync, as the HTTP layer calls it: the engine, the
//!   workers, submissions and the [`status`] report.

pub mod boundary;
pub mod deprovision;
pub mod engine;
pub mod error;
pub mod heartbeat;
pub mod lock;
pub mod profile;
pub mod reconcile;
pub mod service;
pub mod settings;
pub mod status;
pub mod workers;

pub use boundary::{Boundary, Verdict};
pub use deprovision::{Deprovision, DeprovisionOutcome};
pub use engine::{Outcome, SyncEngine, UserSync};
pub use error::{SyncError, SyncErrorKind};
pub use profile::UserProfile;
pub use service::{SubmittedJob, SyncService};
pub use settings::SyncSettings;
pub use status::{ProbeResult, ReconciliationStatus, SyncStatusReport};
pub use workers::adoptions::{AdoptionStep, AdoptionWorker};
pub use workers::error_log_purges::{ErrorLogPurgeWorker, PurgeStep};
pub use workers::jobs::{JobStep, JobWorker};
pub use workers::okta_events::{EventStep, OktaEventWorker};
pub use workers::reconcile_runs::{ReconcileStep, ReconcileWorker};
pub use workers::unassignments::{MissingGroup, UnassignmentStep, UnassignmentWorker};
pub use workers::{supervision, Triggered, Worker, WorkerExit, WorkerHealthSnapshot};

use crate::storage::{
    AdoptionStore, ErrorLogPurgeStore, ErrorLogStore, LeaseStore, ManagedUserStore, OktaEventStore,
    OktaEventUpkeep, PortalSettingsStore, ReconcileRunStore, SyncJobStore, UnassignmentQueueStore,
    UserReferenceStore,
};

crate::trait_alias!(
    /// The storage the sync engine and its workers use; each part takes its own narrow
    /// contract from it.
    pub SyncStorage: PortalSettingsStore
        + UserReferenceStore
        + ManagedUserStore
        + AdoptionStore
        + ErrorLogStore
        + ErrorLogPurgeStore
        + LeaseStore
        + UnassignmentQueueStore
        + SyncJobStore
        + ReconcileRunStore
        + OktaEventStore
        + OktaEventUpkeep
);
