//! What differs between the two SQL dialects ([`Dialect`]), and the deadline every
//! database operation runs under ([`bounded`]).

use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::Database;

/// What the statement deadline is called in errors and logs.
pub const STATEMENT_LIMIT: &str = "EFS_IAM_DATABASE_STATEMENT_TIMEOUT";

/// What differs between the two SQL dialects, as data: the statements that open
/// transactions, the locking clauses, and how the last insert id is read. Concrete
/// impls (in `mysql.rs` and `sqlite.rs`), so generic code needs no higher-ranked
/// `Executor` bound.
pub trait Dialect: Database {
    /// `mysql` or `sqlite`, for logs and health answers.
    const NAME: &'static str;
    /// Opens a transaction that serialises writers of one logical key.
    const BEGIN_WRITE: &'static str;
    /// The row-lock suffix of a `SELECT` inside such a transaction.
    const ROW_LOCK: &'static str;
    /// Opens a claim transaction (leases on queue rows and job items).
    const BEGIN_CLAIM: &'static str;
    /// The locking clause of a claim's `SELECT`: rows another instance holds are skipped.
    const SKIP_LOCKED: &'static str;
    /// Whether the EFS core tables (`users`, `panelists`) exist in this database.
    const HAS_EFS_CORE: bool;

    fn last_insert_id(result: &Self::QueryResult) -> i64;

    /// Runs a statement without arguments.
    fn run<'c>(
        conn: &'c mut Self::Connection,
        sql: &'static str,
    ) -> BoxFuture<'c, Result<(), sqlx::Error>>;

    /// Leaves the connection outside any transaction, with nothing pending.
    fn reset(conn: &mut Self::Connection) -> BoxFuture<'_, Result<(), sqlx::Error>>;

    /// Sets up a new connection (MariaDB: its server-side statement time limit).
    fn on_connect(
        conn: &mut Self::Connection,
        statement_timeout: Duration,
    ) -> BoxFuture<'_, Result<(), sqlx::Error>>;
}

/// The error of an operation that passed its deadline: the database is as good as
/// unavailable.
pub fn timed_out(what: &str) -> sqlx::Error {
    sqlx::Error::Io(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("the database did not answer within {what}"),
    ))
}

/// `work`, or [`timed_out`] once `limit` has passed (the work is dropped).
pub async fn bounded<T, F>(limit: Duration, what: &str, work: F) -> Result<T, sqlx::Error>
where
    F: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result,
        Err(_) => Err(timed_out(what)),
    }
}

/// `Dialect::run`, the same for both (a macro: a generic body would need the
/// higher-ranked bound the trait exists to avoid).
macro_rules! run_statement {
    () => {
        fn run<'c>(
            conn: &'c mut Self::Connection,
            sql: &'static str,
        ) -> BoxFuture<'c, Result<(), sqlx::Error>> {
            let done = conn.execute(sql);
            Box::pin(async move { done.await.map(|_| ()) })
        }
    };
}
pub(super) use run_statement;
