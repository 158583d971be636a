//! Storage of the six `iam_*` tables. One interface ([`Store`], plus [`TokenStore`] for
//! the session-token table, which the token-vault work moves to memcached), one module
//! per SQL dialect. Both dialects share their SQL through [`sql_store!`]: the statements
//! are written to the subset MySQL/MariaDB and SQLite both speak (`?` placeholders, no
//! `RETURNING`, backtick-quoted `key`), and the macro keeps them in one place without
//! the unreadable trait bounds a generic-over-`sqlx::Database` version would need.

pub mod memcached;
mod model;
pub mod mysql;
pub mod pool;
mod sql;
pub mod sqlite;
pub mod sync;
mod sync_sql;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};

pub use model::*;
pub use sync::SyncStore;

use crate::domain::{EfsUserId, OktaUserId, PortalId, SettingKey};

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
    /// A memcached server of the token store did not answer (or answered garbage).
    #[error("token store unavailable: {0}")]
    CacheUnavailable(String),
    /// The value does not fit the backend's item size limit.
    #[error("{size} bytes exceed the token store's item limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
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

/// Everything efs-iam keeps in the EFS database except session tokens. The sync
/// engine's part is its own trait ([`SyncStore`]), a supertrait so that one
/// `Arc<dyn Store>` serves both.
#[async_trait]
pub trait Store: SyncStore + Send + Sync + 'static {
    /// Which backend this is, for logs and health answers.
    fn backend(&self) -> &'static str;
    /// Database reachable and every migration this build knows applied.
    async fn check_ready(&self) -> StorageResult<()>;
    /// Connections in use and idle, for `/metrics`.
    fn pool_stats(&self) -> PoolStats;

    // --- iam_portal_settings ---
    /// Every row of the portal, oldest first (callers let newer rows win).
    async fn portal_settings(&self, portal: PortalId) -> StorageResult<Vec<PortalSetting>>;
    /// The newest row of `key` (legacy data may hold several).
    async fn portal_setting(
        &self,
        portal: PortalId,
        key: &SettingKey,
    ) -> StorageResult<Option<PortalSetting>>;
    /// Sets every given key in one transaction; returns per key whether it was new.
    async fn put_portal_settings(
        &self,
        portal: PortalId,
        entries: &[(SettingKey, Option<String>)],
    ) -> StorageResult<Vec<bool>>;
    /// Removes every row of `key`; returns how many there were.
    async fn delete_portal_setting(&self, portal: PortalId, key: &SettingKey)
        -> StorageResult<u64>;

    // --- iam_user_reference ---
    async fn admin_user_reference(
        &self,
        user: EfsUserId,
    ) -> StorageResult<Option<AdminUserReference>>;
    /// Upsert; `true` when a row was created.
    async fn put_admin_user_reference(
        &self,
        user: EfsUserId,
        okta_user_id: &OktaUserId,
    ) -> StorageResult<(AdminUserReference, bool)>;
    async fn delete_admin_user_reference(&self, user: EfsUserId) -> StorageResult<u64>;

    // --- iam_portal_user_reference ---
    async fn list_portal_user_references(
        &self,
        portal: PortalId,
        query: &PortalUserReferenceQuery,
    ) -> StorageResult<Vec<PortalUserReference>>;
    async fn portal_user_reference(
        &self,
        portal: PortalId,
        user: EfsUserId,
    ) -> StorageResult<Option<PortalUserReference>>;
    async fn put_portal_user_reference(
        &self,
        portal: PortalId,
        user: EfsUserId,
        upsert: &PortalUserReferenceUpsert,
    ) -> StorageResult<(PortalUserReference, bool)>;
    /// `None` when there is no such reference.
    async fn patch_portal_user_reference(
        &self,
        portal: PortalId,
        user: EfsUserId,
        patch: &PortalUserReferencePatch,
    ) -> StorageResult<Option<PortalUserReference>>;
    async fn delete_portal_user_reference(
        &self,
        portal: PortalId,
        user: EfsUserId,
    ) -> StorageResult<u64>;
    async fn references_to_okta_user(
        &self,
        okta_user_id: &OktaUserId,
    ) -> StorageResult<(Vec<AdminUserReference>, Vec<PortalUserReference>)>;

    // --- iam_error_log ---
    async fn record_error(&self, entry: &NewErrorLogEntry) -> StorageResult<ErrorLogEntry>;
    async fn error_log_entry(&self, id: i32) -> StorageResult<Option<ErrorLogEntry>>;
    /// Newest first.
    async fn query_error_log(&self, query: &ErrorLogQuery) -> StorageResult<Vec<ErrorLogEntry>>;
    async fn purge_error_log(&self, before: NaiveDateTime) -> StorageResult<u64>;

    // --- iam_portal_user_group_unassignment_queue ---
    /// All or nothing, in one transaction.
    async fn enqueue_unassignments(
        &self,
        portal: PortalId,
        users: &[NewUnassignment],
    ) -> StorageResult<u64>;
    async fn list_unassignments(
        &self,
        portal: PortalId,
        query: &UnassignmentQuery,
    ) -> StorageResult<Vec<Unassignment>>;
    async fn unassignment_counts(&self, portal: PortalId) -> StorageResult<UnassignmentCounts>;
}

/// Where one session's token record is stored: the keyed hash efs-iam writes
/// (see [`crate::tokens`]), and the raw session id that legacy rows were written under.
#[derive(Clone, Copy)]
pub struct TokenKey<'a> {
    pub hashed: &'a [u8],
    /// Looked up when nothing is stored under `hashed`; removed by every write.
    pub legacy: Option<&'a [u8]>,
}

/// Key bytes are secrets: never printed.
impl std::fmt::Debug for TokenKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

/// A record to store. `value` is already sealed by the vault.
pub struct NewTokenRecord<'a> {
    pub value: &'a str,
    pub stored_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Keyed hash of the verified Okta subject, for "log out everywhere".
    pub subject: Option<&'a [u8]>,
}

/// The IdP token records stored per login session (`iam_token_data`, or memcached).
/// Backends store opaque values; encryption, hashing and expiry rules live in
/// [`crate::tokens::TokenVault`], so every backend runs the same contract.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// `sql:mysql`, `sql:sqlite` or `memcached`, for logs and health answers.
    fn token_backend(&self) -> &'static str;
    /// The backend answers (for `/health/ready`).
    async fn check_token_store(&self) -> StorageResult<()>;
    /// Replaces whatever is stored for the session, under either key (legacy
    /// duplicates included).
    async fn put_token(&self, key: TokenKey<'_>, record: &NewTokenRecord<'_>) -> StorageResult<()>;
    /// The newest record under `key.hashed`, else the newest under `key.legacy`.
    async fn get_token(&self, key: TokenKey<'_>) -> StorageResult<Option<StoredToken>>;
    /// Removes the session under both keys; `true` when something was deleted.
    async fn delete_token(&self, key: TokenKey<'_>) -> StorageResult<bool>;
    /// Removes every record stored with this subject hash; returns how many.
    async fn delete_subject_tokens(&self, subject: &[u8]) -> StorageResult<u64>;
    /// Deletes records that expired at or before `now`, and gives legacy rows without
    /// an expiry `legacy_expiry`. Backends with native expiry do nothing.
    async fn purge_expired_tokens(
        &self,
        now: DateTime<Utc>,
        legacy_expiry: DateTime<Utc>,
    ) -> StorageResult<u64>;
    /// Up to `limit` records with a row id above `after`, in id order; `None` when the
    /// backend cannot list its records (memcached). For `tokens re-encrypt`.
    async fn scan_tokens(&self, after: i64, limit: u32) -> StorageResult<Option<Vec<TokenRow>>>;
    /// Rewrites one row in place, only if it still holds `expected`; `false` when a
    /// concurrent write changed it first.
    async fn rewrite_token(
        &self,
        row: &TokenRow,
        session_id: &[u8],
        value: &str,
        expires_at: DateTime<Utc>,
    ) -> StorageResult<bool>;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct PoolStats {
    pub size: u32,
    pub idle: u32,
}

/// A connected backend: both interfaces over one pool.
#[derive(Clone)]
pub struct Storage {
    pub store: Arc<dyn Store>,
    pub tokens: Arc<dyn TokenStore>,
}

/// Options shared by both backends.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub max_connections: u32,
    pub acquire_timeout: std::time::Duration,
}

/// Connects by URL scheme (`mysql://` or `sqlite:`) and, when asked,
/// applies the migrations.
pub async fn connect(
    url: &str,
    options: &ConnectOptions,
    migrate: bool,
) -> anyhow::Result<Storage> {
    match scheme(url)? {
        Backend::MySql => {
            let db = Arc::new(mysql::MySqlStore::connect(url, options).await?);
            if migrate {
                db.migrate().await?;
            }
            Ok(Storage {
                store: db.clone(),
                tokens: db,
            })
        }
        Backend::Sqlite => {
            let db = Arc::new(sqlite::SqliteStore::connect(url, options).await?);
            if migrate {
                db.migrate().await?;
            }
            Ok(Storage {
                store: db.clone(),
                tokens: db,
            })
        }
    }
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

/// Timestamps are written by efs-iam in UTC with whole seconds, because `DATETIME`
/// without a fraction would round (MySQL) or cut (MariaDB) anything finer.
pub fn now() -> NaiveDateTime {
    use chrono::{SubsecRound, Utc};
    Utc::now().naive_utc().trunc_subsecs(0)
}
