//! MySQL/MariaDB: production, the EFS database itself.

use std::str::FromStr;

use futures_util::future::BoxFuture;
use sqlx::mysql::{MySql, MySqlConnectOptions, MySqlQueryResult};
use sqlx::Executor;

use super::dialect::{run_statement, Dialect};
use super::pool::ConnPool;
use crate::storage::database::ConnectOptions;

pub(super) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/mysql");

impl Dialect for MySql {
    const NAME: &'static str = "mysql";
    const BEGIN_WRITE: &'static str = "BEGIN";
    /// InnoDB row (and gap) locks serialise writers of one logical key, which the
    /// legacy schema has no unique index for.
    const ROW_LOCK: &'static str = " FOR UPDATE";
    /// Under REPEATABLE READ a locking scan keeps a lock on every row it looked at, and
    /// a second instance's `SKIP LOCKED` would then skip rows the first one did not
    /// even take; READ COMMITTED locks only the rows taken.
    const BEGIN_CLAIM: &'static str = "SET TRANSACTION ISOLATION LEVEL READ COMMITTED; BEGIN";
    /// MariaDB ≥ 10.6.
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    const HAS_EFS_CORE: bool = true;

    fn last_insert_id(result: &MySqlQueryResult) -> i64 {
        result.last_insert_id() as i64
    }

    run_statement!();

    /// MySQL's `ROLLBACK` outside a transaction is a no-op that succeeds.
    fn reset(conn: &mut Self::Connection) -> BoxFuture<'_, Result<(), sqlx::Error>> {
        Self::run(conn, "ROLLBACK")
    }

    /// MariaDB ends any statement of this session after `statement_timeout`
    /// (`max_statement_time`, seconds): a statement whose client gave up does not hold
    /// its locks on.
    fn on_connect(
        conn: &mut Self::Connection,
        statement_timeout: std::time::Duration,
    ) -> BoxFuture<'_, Result<(), sqlx::Error>> {
        let sql = format!(
            "SET SESSION max_statement_time = {:.3}",
            statement_timeout.as_secs_f64()
        );
        Box::pin(async move { conn.execute(sql.as_str()).await.map(|_| ()) })
    }
}

pub(super) async fn connect(
    url: &str,
    options: &ConnectOptions,
) -> Result<ConnPool<MySql>, sqlx::Error> {
    let connect = MySqlConnectOptions::from_str(url)?;
    // Our own pool, not sqlx's: sqlx pings every connection on release, a second round
    // trip per lookup (see `pool`).
    ConnPool::connect(connect, options).await
}

/// The migrations under a named lock this connection has checked it holds (see
/// `SqlStore::migrate`), without a statement time limit.
/// The migration lock's name: per database, within MariaDB's 64 characters whatever
/// the database's name.
const MIGRATION_LOCK: &str = "CONCAT('efs_iam_migrate:', SHA1(DATABASE()))";

pub(super) async fn migrate(pool: &ConnPool<MySql>) -> Result<(), crate::storage::StorageError> {
    static UNLOCKED: std::sync::LazyLock<sqlx::migrate::Migrator> =
        std::sync::LazyLock::new(|| {
            let mut migrator = sqlx::migrate!("./migrations/mysql");
            migrator.set_locking(false);
            migrator
        });
    let mut conn = pool.acquire().await?;
    conn.execute("SET SESSION max_statement_time = 0").await?;
    let started = std::time::Instant::now();
    loop {
        let held: Option<i64> =
            sqlx::query_scalar(&format!("SELECT GET_LOCK({MIGRATION_LOCK}, 10)"))
                .fetch_one(&mut *conn)
                .await?;
        if held == Some(1) {
            break;
        }
        if held.is_none() {
            // An error rather than a time-out (MariaDB answers NULL then): no busy loop.
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        if started.elapsed() > std::time::Duration::from_secs(600) {
            return Err(sqlx::Error::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "another instance has held the migration lock for 10 minutes",
            ))
            .into());
        }
        tracing::info!("another instance is applying the migrations; waiting for it");
    }
    let applied = UNLOCKED.run(&mut *conn).await;
    let released = sqlx::query(&format!("SELECT RELEASE_LOCK({MIGRATION_LOCK})"))
        .execute(&mut *conn)
        .await;
    applied?;
    released?;
    // Back to the pool's statement time limit for the connection's next user.
    let limit = format!(
        "SET SESSION max_statement_time = {:.3}",
        pool.statement_timeout().as_secs_f64()
    );
    conn.execute(limit.as_str()).await?;
    conn.release_clean();
    Ok(())
}
