//! What can go wrong in storage, in terms a caller can act on.

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
