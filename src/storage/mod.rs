//! Storage of efs-iam's tables: EFS's six `iam_*` tables and efs-iam's own sync tables.
//!
//! One narrow contract per table group, each in its own file beside the SQL that
//! implements it:
//!
//! | contract | tables |
//! |---|---|
//! | [`PortalSettingsStore`] | `iam_portal_settings` |
//! | [`UserReferenceStore`] | `iam_user_reference`, `iam_portal_user_reference` (and EFS's `users`/`panelists`) |
//! | [`ErrorLogStore`] | `iam_error_log` |
//! | [`ErrorLogPurgeStore`] | `efs_iam_error_log_purge` |
//! | [`UnassignmentQueueStore`] | `iam_portal_user_group_unassignment_queue` |
//! | [`SyncJobStore`] | `efs_iam_sync_job`, `efs_iam_sync_job_item` |
//! | [`LeaseStore`] | `efs_iam_sync_lock` |
//! | [`ReconcileRunStore`] | `efs_iam_reconcile_run` |
//! | [`OktaEventStore`] | `efs_iam_okta_event`, `efs_iam_okta_event_watermark` |
//! | [`ManagedUserStore`] | `efs_iam_managed_okta_user`, `efs_iam_okta_user_creation` |
//! | [`AdoptionStore`] | `efs_iam_adoption_run`, `efs_iam_adoption_item` |
//! | [`TokenStore`] | `iam_token_data`, or memcached ([`memcached`]) |
//!
//! [`SqlStore`] implements them all for MySQL/MariaDB and SQLite (see [`sql`]).
//! Consumers take the narrowest contract they need as an `Arc<dyn …>`.

pub mod adoptions;
pub mod database;
pub mod error;
pub mod error_log;
pub mod error_log_purges;
pub mod leases;
pub mod managed_users;
pub mod memcached;
pub mod okta_event_upkeep;
pub mod okta_events;
pub mod portal_settings;
pub mod reconcile_runs;
pub mod session_tokens;
pub mod sql;
pub mod sync_jobs;
pub mod unassignment_queue;
pub mod user_references;

pub use adoptions::{
    AdoptionCounts, AdoptionItem, AdoptionRun, AdoptionStore, ClaimedAdoptionItem, ItemVerdict,
};
pub use database::{now, scheme, Backend, ConnectOptions, DatabaseStatus, PoolStats};
pub use error::{StorageError, StorageResult};
pub use error_log::{ErrorLogEntry, ErrorLogQuery, ErrorLogStore, NewErrorLogEntry};
pub use error_log_purges::{ErrorLogPurge, ErrorLogPurgeStore};
pub use leases::LeaseStore;
pub use managed_users::{ManagedOktaUser, ManagedOrigin, ManagedUserStore};
pub use okta_event_upkeep::{EventWatermark, OktaEventUpkeep};
pub use okta_events::{
    Applied, NewOktaEvent, OktaEvent, OktaEventStats, OktaEventStore, ReferenceChange, FUTURE_SKEW,
};
pub use portal_settings::{PortalGroup, PortalSetting, PortalSettingsStore, SettingWrite};
pub use reconcile_runs::{NewReconcileRun, ReconcileRun, ReconcileRunStore, RunOutcome};
pub use session_tokens::{
    NewTokenRecord, StoredToken, TokenKey, TokenRow, TokenStore, TokenStoreError,
};
pub use sql::{connect, PurgePosition, SqlStore};
pub use sync_jobs::{
    ClaimedSyncItem, ItemResult, ItemState, JobStats, NewSyncJob, NewSyncJobItem, SyncJob,
    SyncJobCounts, SyncJobItem, SyncJobItemQuery, SyncJobStore,
};
pub use unassignment_queue::{
    NewUnassignment, QueueStats, RequeueOutcome, RequeueSkip, Unassignment, UnassignmentCounts,
    UnassignmentQuery, UnassignmentQueueStore, UnassignmentState,
};
pub use user_references::{
    AdminUserReference, EfsUserKind, PortalUserReference, PortalUserReferencePatch,
    PortalUserReferenceQuery, PortalUserReferenceUpsert, UserReferenceStore,
};

/// Every contract at once, for code that works on the whole store (tests, tools).
pub mod prelude {
    pub use super::{
        AdoptionStore, DatabaseStatus, ErrorLogPurgeStore, ErrorLogStore, LeaseStore,
        ManagedUserStore, OktaEventStore, OktaEventUpkeep, PortalSettingsStore, ReconcileRunStore,
        SyncJobStore, TokenStore, UnassignmentQueueStore, UserReferenceStore,
    };
}
