//! MySQL/MariaDB: production, the EFS database itself.

use std::str::FromStr;

use futures_util::future::BoxFuture;
use sqlx::mysql::{MySql, MySqlConnectOptions, MySqlQueryResult};
use sqlx::Executor;

use super::pool::{run_statement, ConnPool, Dialect};
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
}

pub(super) async fn connect(
    url: &str,
    options: &ConnectOptions,
) -> Result<ConnPool<MySql>, sqlx::Error> {
    let connect = MySqlConnectOptions::from_str(url)?;
    // Our own pool, not sqlx's: sqlx pings every connection on release, a second round
    // trip per lookup (see `pool`).
    ConnPool::connect(connect, options.max_connections, options.acquire_timeout).await
}
