//! SQLite: the embedded zero-setup default, one file next to the service.

use std::str::FromStr;
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqliteQueryResult, SqliteSynchronous,
};
use sqlx::Executor;

use super::dialect::{run_statement, Dialect};
use super::pool::ConnPool;
use crate::storage::database::ConnectOptions;

pub(super) static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

impl Dialect for Sqlite {
    const NAME: &'static str = "sqlite";
    /// Takes the write lock at once, so two writers never both read "no row yet" and
    /// then both insert; the loser waits on the busy timeout.
    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    /// No row locks: the transaction holds the write lock already.
    const ROW_LOCK: &'static str = "";
    const BEGIN_CLAIM: &'static str = "BEGIN IMMEDIATE";
    const SKIP_LOCKED: &'static str = "";
    const HAS_EFS_CORE: bool = false;

    fn last_insert_id(result: &SqliteQueryResult) -> i64 {
        result.last_insert_rowid()
    }

    run_statement!();

    /// SQLite refuses a `ROLLBACK` outside a transaction; that answer means the
    /// connection is already where it should be.
    fn reset(conn: &mut Self::Connection) -> BoxFuture<'_, Result<(), sqlx::Error>> {
        let done = Self::run(conn, "ROLLBACK");
        Box::pin(async move {
            match done.await {
                Err(sqlx::Error::Database(e))
                    if e.message().contains("no transaction is active") =>
                {
                    Ok(())
                }
                other => other,
            }
        })
    }

    /// The client-side deadline is all an embedded file needs.
    fn on_connect(
        _conn: &mut Self::Connection,
        _statement_timeout: Duration,
    ) -> BoxFuture<'_, Result<(), sqlx::Error>> {
        Box::pin(async { Ok(()) })
    }
}

/// The pool, and the database file (`None` in memory).
pub(super) async fn connect(
    url: &str,
    options: &ConnectOptions,
) -> Result<(ConnPool<Sqlite>, Option<std::path::PathBuf>), sqlx::Error> {
    let connect = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true);
    // An embedded file's connections do not drop; sqlx's pool would still ping each one
    // on release, a round trip to its worker thread (see `pool`).
    let file = connect.get_filename();
    let in_memory = file.as_os_str().is_empty()
        || file.to_string_lossy().contains(":memory:")
        || url.contains("mode=memory");
    let file = (!in_memory).then(|| file.to_owned());
    let pool = ConnPool::connect(connect, options)
        .await?
        .serialize_transactions();
    Ok((pool, file))
}
