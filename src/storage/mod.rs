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
//! | [`UnassignmentQueueStore`] | `iam_portal_user_group_unassignment_queue` |
//! | [`SyncJobStore`] | `efs_iam_sync_job`, `efs_iam_sync_job_item` |
//! | [`LeaseStore`] | `efs_iam_sync_lock` |
//! | [`ReconcileRunStore`] | `efs_iam_reconcile_run` |
//! | [`OktaEventStore`] | `efs_iam_okta_event`, `efs_iam_okta_event_watermark` |
//! | [`TokenStore`] | `iam_token_data`, or memcached ([`memcached`]) |
//!
//! [`SqlStore`] implements them all for MySQL/MariaDB and SQLite (see [`sql`]).
//! Consumers take the narrowest contract they need as an `Arc<dyn …>`.

pub mod error_log;
pub mod leases;
pub mod memcached;
pub mod okta_events;
pub mod portal_settings;
pub mod reconcile_runs;
pub mod session_tokens;
pub mod sql;
pub mod sync_jobs;
pub mod unassignment_queue;
pub mod user_references;

use async_trait::async_trait;
use chrono::NaiveDateTime;

pub use error_log::{ErrorLogEntry, ErrorLogQuery, ErrorLogStore, NewErrorLogEntry};
pub use leases::LeaseStore;
pub use okta_events::{
    Applied, NewOktaEvent, OktaEvent, OktaEventStats, OktaEventStore, ReferenceChange,
};
pub use portal_settings::{PortalSetting, PortalSettingsStore, SettingWrite};
pub use reconcile_runs::{NewReconcileRun, ReconcileRun, ReconcileRunStore, RunOutcome};
pub use session_tokens::{
    NewTokenRecord, StoredToken, TokenKey, TokenRow, TokenStore, TokenStoreError,
};
pub use sql::SqlStore;
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
        DatabaseStatus, ErrorLogStore, LeaseStore, OktaEventStore, PortalSettingsStore,
        ReconcileRunStore, SyncJobStore, TokenStore, UnassignmentQueueStore, UserReferenceStore,
    };
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A reference names an EFS user or panelist that the EFS core tables do not have
    /// (MySQL foreign keys `user_id_users_uid_idx` / `user_id_panelists_uid_idx`).
    #[error("the referenced EFS user does not exist")]
    UnknownEfsUser,
    /// The database could not be reached in time.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// A lock conflict that a retry resolves (MySQL deadlock, SQLite busy).
    #[error("write conflict")]
    Conflict(#[source] sqlx::Error),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The schema is behind this build (another instance may be migrating it).
    #[error("schema at migration {applied}, this build needs {expected}")]
    NotMigrated { applied: i64, expected: i64 },
}

impl StorageError {
    /// Whether the same call may succeed shortly without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(_) | Self::Conflict(_) | Self::NotMigrated { .. }
        )
    }
}

impl From<sqlx::Error> for StorageError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StorageError::Unavailable(e),
            sqlx::Error::Database(db) => {
                if matches!(db.kind(), ErrorKind::ForeignKeyViolation) {
                    return StorageError::UnknownEfsUser;
                }
                if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
                    // 1213 deadlock, 1205 lock wait timeout: InnoDB rolled back, retry.
                    if matches!(my.number(), 1213 | 1205) {
                        return StorageError::Conflict(e);
                    }
                }
                // SQLITE_BUSY (5) and its extended codes, SQLITE_LOCKED (6).
                if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
                    && db
                        .code()
                        .and_then(|c| c.parse::<i32>().ok())
                        .is_some_and(|c| matches!(c & 0xff, 5 | 6))
                {
                    return StorageError::Conflict(e);
                }
                StorageError::Database(e)
            }
            _ => StorageError::Database(e),
        }
    }
}

pub type StorageResult<T> = Result<T, StorageError>;

/// The database as a whole: what health probes and metrics ask.
#[async_trait]
pub trait DatabaseStatus: Send + Sync + 'static {
    /// `mysql` or `sqlite`, for logs and health answers.
    fn backend(&self) -> &'static str;
    /// Database reachable and every migration this build knows applied.
    async fn check_ready(&self) -> StorageResult<()>;
    /// Connections in use and idle, for `/metrics`.
    fn pool_stats(&self) -> PoolStats;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct PoolStats {
    pub size: u32,
    pub idle: u32,
}

/// Options shared by both backends.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub max_connections: u32,
    pub acquire_timeout: std::time::Duration,
}

/// Connects by URL scheme (`mysql://` or `sqlite:`) and, when asked, applies the
/// migrations.
pub async fn connect(
    url: &str,
    options: &ConnectOptions,
    migrate: bool,
) -> anyhow::Result<std::sync::Arc<SqlStore>> {
    let store = SqlStore::connect(url, options).await?;
    if migrate {
        store.migrate().await?;
    }
    Ok(std::sync::Arc::new(store))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    MySql,
    Sqlite,
}

pub fn scheme(url: &str) -> anyhow::Result<Backend> {
    if url.starts_with("mysql://") {
        Ok(Backend::MySql)
    } else if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else {
        anyhow::bail!("must start with mysql:// or sqlite:")
    }
}

/// Rows one purge statement deletes (or gives an expiry): a purge of a million rows is
/// a thousand short statements, each its own transaction on an index, so no lock is
/// held for the whole purge and other statements run between the batches.
pub(crate) const PURGE_BATCH: usize = 1_000;

/// ` FORCE INDEX (…)` on MariaDB, nothing on SQLite, after a table name in a keyset
/// listing. With `ORDER BY … LIMIT`, MariaDB (10.11) prefers `ref` access on an
/// index's equality prefix (`portal_id = ? AND status = ?`) to the `range` that also
/// bounds the keyset column (`AND id > ?`), and then reads every entry before the
/// cursor again on each page; naming the index makes it take the range (measured in
/// BENCHMARKS.md, "EFS-sized proof"). SQLite's planner takes the range unaided.
pub(crate) fn force_index<DB: sql::pool::Dialect>(
    _pool: &sql::pool::ConnPool<DB>,
    indexes: &str,
) -> String {
    if <DB as sql::pool::Dialect>::NAME == "mysql" {
        format!(" FORCE INDEX ({indexes})")
    } else {
        String::new()
    }
}

/// Timestamps are written by efs-iam in UTC with whole seconds, because `DATETIME`
/// without a fraction would round (MySQL) or cut (MariaDB) anything finer.
pub fn now() -> NaiveDateTime {
    use chrono::{SubsecRound, Utc};
    Utc::now().naive_utc().trunc_subsecs(0)
}
