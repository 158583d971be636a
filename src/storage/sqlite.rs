//! SQLite: the embedded zero-setup default, one file next to the service.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteQueryResult, SqliteSynchronous,
};
use sqlx::Transaction;

use super::{ConnectOptions, StorageResult};

pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// SQLite has no row locks; `begin_write` takes the write lock up front instead.
    const LOCK: &'static str = "";

    pub async fn connect(url: &str, options: &ConnectOptions) -> anyhow::Result<Self> {
        let connect = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        // An embedded file's connections do not drop; pinging one before every acquire
        // only costs a round trip to its worker thread.
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .test_before_acquire(false)
            .connect_with(connect)
            .await?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    pub async fn migrate(&self) -> StorageResult<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// `BEGIN IMMEDIATE` takes the write lock at once, so two writers never both read
    /// "no row yet" and then both insert; the loser waits on the busy timeout.
    async fn begin_write(&self) -> StorageResult<Transaction<'static, Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    fn last_id(res: &SqliteQueryResult) -> i32 {
        res.last_insert_rowid() as i32
    }
}

super::sql::sql_store!(SqliteStore, sqlx::Sqlite, "sqlite");
super::sync_sql::sync_sql_store!(
    SqliteStore,
    sqlx::Sqlite,
    claim_begin = "BEGIN IMMEDIATE",
    skip_locked = "",
    efs_core = false
);
