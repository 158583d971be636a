//! MySQL/MariaDB: production, the EFS database itself.

use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::mysql::{MySql, MySqlConnectOptions, MySqlQueryResult};

use super::pool::{ConnPool, PoolTransaction};
use super::{ConnectOptions, StorageResult};

pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("./migrations/mysql");

pub struct MySqlStore {
    pool: ConnPool<MySql>,
}

impl MySqlStore {
    /// InnoDB row (and gap) locks serialise writers of one logical key, which the
    /// legacy schema has no unique index for.
    const LOCK: &'static str = " FOR UPDATE";

    pub async fn connect(url: &str, options: &ConnectOptions) -> anyhow::Result<Self> {
        let connect = MySqlConnectOptions::from_str(url)?;
        // Our own pool, not sqlx's: sqlx pings every connection on release, a second
        // round trip per lookup (see `storage::pool`; BENCHMARKS.md).
        let pool =
            ConnPool::connect(connect, options.max_connections, options.acquire_timeout).await?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &ConnPool<MySql> {
        &self.pool
    }

    /// Safe with several instances starting at once: sqlx takes a database lock.
    pub async fn migrate(&self) -> StorageResult<()> {
        let mut conn = self.pool.acquire().await?;
        MIGRATOR.run(&mut *conn).await?;
        conn.release_clean();
        Ok(())
    }

    async fn begin_write(&self) -> StorageResult<PoolTransaction<MySql>> {
        Ok(self.pool.begin().await?)
    }

    fn last_id(res: &MySqlQueryResult) -> i32 {
        res.last_insert_id() as i32
    }
}

super::sql::sql_store!(MySqlStore, sqlx::MySql, "mysql");
super::sync_sql::sync_sql_store!(
    MySqlStore,
    sqlx::MySql,
    claim_begin = "SET TRANSACTION ISOLATION LEVEL READ COMMITTED; BEGIN",
    skip_locked = " FOR UPDATE SKIP LOCKED",
    efs_core = true
);
