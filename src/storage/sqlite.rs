//! SQLite: the embedded zero-setup default, one file next to the service.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqliteQueryResult, SqliteSynchronous,
};

use super::pool::{ConnPool, PoolTransaction};
use super::{ConnectOptions, StorageResult};

pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

pub struct SqliteStore {
    pool: ConnPool<Sqlite>,
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
        // An embedded file's connections do not drop; sqlx's pool would still ping each
        // one on release, a round trip to its worker thread (see `storage::pool`).
        let pool = ConnPool::connect(connect, options.max_connections, options.acquire_timeout)
            .await?
            .serialize_transactions();
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &ConnPool<Sqlite> {
        &self.pool
    }

    pub async fn migrate(&self) -> StorageResult<()> {
        let mut conn = self.pool.acquire().await?;
        MIGRATOR.run(&mut *conn).await?;
        conn.release_clean();
        Ok(())
    }

    /// `BEGIN IMMEDIATE` takes the write lock at once, so two writers never both read
    /// "no row yet" and then both insert; the loser waits on the busy timeout.
    async fn begin_write(&self) -> StorageResult<PoolTransaction<Sqlite>> {
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
