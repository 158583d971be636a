//! MySQL/MariaDB: production, the EFS database itself.

use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::mysql::{MySql, MySqlConnectOptions, MySqlPool, MySqlPoolOptions, MySqlQueryResult};
use sqlx::Transaction;

use super::{ConnectOptions, StorageResult};

pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("./migrations/mysql");

pub struct MySqlStore {
    pool: MySqlPool,
}

/// A pooled connection idle longer than this is pinged before use.
const PING_WHEN_IDLE_FOR: Duration = Duration::from_secs(5);

impl MySqlStore {
    /// InnoDB row (and gap) locks serialise writers of one logical key, which the
    /// legacy schema has no unique index for.
    const LOCK: &'static str = " FOR UPDATE";

    pub async fn connect(url: &str, options: &ConnectOptions) -> anyhow::Result<Self> {
        let connect = MySqlConnectOptions::from_str(url)?;
        // sqlx pings a connection before handing it out and again when it comes back:
        // three round trips per lookup. Only a connection idle for a while is pinged
        // first (that is when `wait_timeout` or a restart will have closed it); a busy
        // one that broke fails its one call with 503, and the ping on release keeps it
        // out of the pool (BENCHMARKS.md: +40-70% lookups per second).
        let pool = MySqlPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout)
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > PING_WHEN_IDLE_FOR {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(connect)
            .await?;
        Ok(Self { pool })
    }

    pub fn from_pool(pool: MySqlPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &MySqlPool {
        &self.pool
    }

    /// Safe with several instances starting at once: sqlx takes a database lock.
    pub async fn migrate(&self) -> StorageResult<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    async fn begin_write(&self) -> StorageResult<Transaction<'static, MySql>> {
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
