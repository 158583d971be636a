//! The connection pool both SQL dialects use: deadpool holding sqlx connections.
//!
//! sqlx's own pool pings every connection when it comes back (sqlx 0.8, not
//! configurable), so a one-statement lookup costs two round trips to the database and
//! a spawned task. This pool checks a connection only when it may be unsound:
//!
//! - a connection is marked *clean* only when its last statement or transaction is
//!   known to have finished (the [`Executor`] impl does this, and
//!   [`PoolConnection::release_clean`]); a connection given back after an error, a
//!   cancelled future or a plain `acquire()` is *reset* before its next use — a
//!   `ROLLBACK`, which drains what a cancelled statement left on the wire, ends any
//!   transaction it may have opened, and proves the connection alive — and one that
//!   fails the reset is replaced;
//! - a connection idle for more than [`RESET_WHEN_IDLE_FOR`] is reset before use
//!   (`wait_timeout` or a server restart may have closed it);
//! - a transaction dropped without `commit` or `rollback` — also one cancelled while
//!   its `BEGIN` was still waiting for a lock — is rolled back at once in a spawned
//!   task, so its locks do not wait for the connection's next user;
//! - connections are replaced after [`MAX_LIFETIME`], as sqlx does, less a random part
//!   of [`LIFETIME_SPREAD`] each, so that they are not all replaced at once.
//!
//! Nothing waits on the database without a bound: the wait for a connection (a free
//! one, a new one, or the reset of one) is one total `acquire_timeout`; a statement run
//! on the pool, and a whole transaction (`in_transaction!`), has `statement_timeout`,
//! after which its connection is dropped rather than reused; the rollback of an
//! abandoned transaction has `acquire_timeout`; and MariaDB stops any statement after
//! `statement_timeout` itself (`max_statement_time`), so the locks of a statement whose
//! client gave up do not linger. A frozen or unreachable database answers every
//! operation with an error within `statement_timeout`.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::{self, Metrics, Object, PoolError, RecycleError, RecycleResult};
use deadpool::Runtime;
use futures_util::future::BoxFuture;
use futures_util::stream::{self, BoxStream, StreamExt, TryStreamExt};
use sqlx::{Connection, Database, Describe, Either, Execute, Executor};
use tokio::sync::{Mutex, OwnedMutexGuard};

pub use super::dialect::{bounded, timed_out, Dialect, STATEMENT_LIMIT};

/// A connection idle longer than this is reset before it is handed out.
pub const RESET_WHEN_IDLE_FOR: Duration = Duration::from_secs(5);
/// sqlx's default: long-lived connections are recycled so server-side state and
/// memory do not grow without bound.
pub const MAX_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// Each connection's lifetime is [`MAX_LIFETIME`] less a random part of this, so the
/// connections a pool opened together (at start-up, after a database restart) are not
/// all replaced in the same moment: in the one-hour soak every instance's pool fell
/// from 10 connections to 4 at minute 30 and 60 when they were (BENCHMARKS.md, issue
/// 24). HikariCP does the same (a variance on `maxLifetime`).
pub const LIFETIME_SPREAD: Duration = Duration::from_secs(3 * 60);

/// A lifetime between `MAX_LIFETIME - LIFETIME_SPREAD` and `MAX_LIFETIME`.
fn spread_lifetime() -> Duration {
    MAX_LIFETIME - LIFETIME_SPREAD.mul_f64(fastrand::f64())
}

pub struct Manager<DB: Database> {
    options: <DB::Connection as Connection>::Options,
    statement_timeout: Duration,
}

pub struct Tracked<C> {
    conn: C,
    /// True only while the connection is known to be between statements.
    clean: bool,
    /// When it is replaced, counted from its creation ([`spread_lifetime`]).
    lifetime: Duration,
}

impl<DB: Dialect> managed::Manager for Manager<DB> {
    type Type = Tracked<DB::Connection>;
    type Error = sqlx::Error;

    async fn create(&self) -> Result<Self::Type, sqlx::Error> {
        let mut conn = DB::Connection::connect_with(&self.options).await?;
        DB::on_connect(&mut conn, self.statement_timeout).await?;
        Ok(Tracked {
            conn,
            clean: true,
            lifetime: spread_lifetime(),
        })
    }

    async fn recycle(&self, c: &mut Self::Type, m: &Metrics) -> RecycleResult<sqlx::Error> {
        if m.age() > c.lifetime {
            return Err(RecycleError::message("past its lifetime"));
        }
        if !c.clean || m.last_used() > RESET_WHEN_IDLE_FOR {
            DB::reset(&mut c.conn).await?;
            c.clean = true;
        }
        Ok(())
    }
}

/// A pool of connections to one database; cheap to clone.
pub struct ConnPool<DB: Dialect> {
    inner: managed::Pool<Manager<DB>>,
    /// Set for SQLite: one transaction at a time, in arrival order (see
    /// [`ConnPool::serialize_transactions`]).
    transactions: Option<Arc<Mutex<()>>>,
    acquire_timeout: Duration,
    statement_timeout: Duration,
}

impl<DB: Dialect> std::fmt::Debug for ConnPool<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnPool")
            .field("status", &self.inner.status())
            .finish()
    }
}

impl<DB: Dialect> Clone for ConnPool<DB> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            transactions: self.transactions.clone(),
            acquire_timeout: self.acquire_timeout,
            statement_timeout: self.statement_timeout,
        }
    }
}

impl<DB: Dialect> ConnPool<DB> {
    /// Opens one connection at once, so a wrong URL or an unreachable server stops
    /// start-up instead of the first request.
    pub async fn connect(
        options: <DB::Connection as Connection>::Options,
        limits: &crate::storage::database::ConnectOptions,
    ) -> Result<Self, sqlx::Error> {
        let acquire_timeout = limits.acquire_timeout;
        let statement_timeout = limits.statement_timeout;
        let inner = managed::Pool::builder(Manager {
            options,
            statement_timeout,
        })
        .max_size(limits.max_connections.max(1) as usize)
        .wait_timeout(Some(acquire_timeout))
        .create_timeout(Some(acquire_timeout))
        .recycle_timeout(Some(acquire_timeout))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| sqlx::Error::Configuration(e.to_string().into()))?;
        let pool = Self {
            inner,
            transactions: None,
            acquire_timeout,
            statement_timeout,
        };
        pool.acquire().await?.release_clean();
        Ok(pool)
    }

    /// Transactions wait for each other here, first come first served, before they
    /// take a connection. For SQLite, whose every transaction here is a writer: its
    /// own busy handler makes a waiting writer sleep and poll (up to 100 ms a turn),
    /// so under load some writers waited hundreds of times longer than the median;
    /// queued here, none meets the file lock held by another of this process's
    /// connections (other processes on the same file still meet the busy timeout).
    pub fn serialize_transactions(mut self) -> Self {
        self.transactions = Some(Arc::new(Mutex::new(())));
        self
    }

    pub async fn acquire(&self) -> Result<PoolConnection<DB>, sqlx::Error> {
        Ok(PoolConnection(self.checkout().await?))
    }

    /// A connection marked in use: unclean until its user says otherwise. The wait,
    /// the connect and the reset together take at most `acquire_timeout`.
    async fn checkout(&self) -> Result<Object<Manager<DB>>, sqlx::Error> {
        let get = async { self.inner.get().await.map_err(pool_error) };
        let mut obj = match tokio::time::timeout(self.acquire_timeout, get).await {
            Ok(obj) => obj?,
            Err(_) => return Err(sqlx::Error::PoolTimedOut),
        };
        obj.clean = false;
        Ok(obj)
    }

    /// How long one storage operation may take (`EFS_IAM_DATABASE_STATEMENT_TIMEOUT`).
    pub fn statement_timeout(&self) -> Duration {
        self.statement_timeout
    }

    pub async fn begin(&self) -> Result<PoolTransaction<DB>, sqlx::Error> {
        self.begin_with("BEGIN").await
    }

    /// A transaction opened by `statement` (e.g. `BEGIN IMMEDIATE`, or an isolation
    /// level followed by `BEGIN`).
    pub async fn begin_with(
        &self,
        statement: &'static str,
    ) -> Result<PoolTransaction<DB>, sqlx::Error> {
        let turn = match &self.transactions {
            Some(queue) => Some(
                tokio::time::timeout(self.acquire_timeout, queue.clone().lock_owned())
                    .await
                    .map_err(|_| sqlx::Error::PoolTimedOut)?,
            ),
            None => None,
        };
        let obj = self.checkout().await?;
        // Armed before the BEGIN: if this future is dropped while the BEGIN waits (for
        // SQLite's write lock, say), the BEGIN may still complete on the connection,
        // and the guard's drop rolls it back.
        let mut tx = PoolTransaction {
            obj: Some(obj),
            turn,
        };
        if let Err(e) = DB::run(&mut tx, statement).await {
            // No transaction was opened; the connection is reset before its next use.
            drop(tx.obj.take());
            return Err(e);
        }
        Ok(tx)
    }

    /// A transaction that serialises writers ([`Dialect::BEGIN_WRITE`]).
    pub async fn begin_write(&self) -> Result<PoolTransaction<DB>, sqlx::Error> {
        self.begin_with(DB::BEGIN_WRITE).await
    }

    /// A transaction that leases queue rows or job items ([`Dialect::BEGIN_CLAIM`]).
    pub async fn begin_claim(&self) -> Result<PoolTransaction<DB>, sqlx::Error> {
        self.begin_with(DB::BEGIN_CLAIM).await
    }

    /// [`Dialect::ROW_LOCK`] of this pool's dialect.
    pub fn row_lock(&self) -> &'static str {
        DB::ROW_LOCK
    }

    /// [`Dialect::SKIP_LOCKED`] of this pool's dialect.
    pub fn skip_locked(&self) -> &'static str {
        DB::SKIP_LOCKED
    }

    /// [`Dialect::HAS_EFS_CORE`] of this pool's dialect.
    pub fn has_efs_core(&self) -> bool {
        DB::HAS_EFS_CORE
    }

    pub fn last_insert_id(&self, result: &DB::QueryResult) -> i64 {
        DB::last_insert_id(result)
    }

    /// A statement built piece by piece, in this pool's dialect.
    pub fn builder<'a>(&self, sql: impl Into<String>) -> sqlx::QueryBuilder<'a, DB> {
        sqlx::QueryBuilder::new(sql)
    }

    /// ` FORCE INDEX (…)` on MariaDB, nothing on SQLite, after a table name in a keyset
    /// listing. With `ORDER BY … LIMIT`, MariaDB (10.11) prefers `ref` access on an
    /// index's equality prefix (`portal_id = ? AND status = ?`) to the `range` that also
    /// bounds the keyset column (`AND id > ?`), and then reads every entry before the
    /// cursor again on each page; naming the index makes it take the range (measured in
    /// BENCHMARKS.md, "EFS-sized proof"). SQLite's planner takes the range unaided.
    pub fn force_index(&self, indexes: &str) -> String {
        if <DB as Dialect>::NAME == "mysql" {
            format!(" FORCE INDEX ({indexes})")
        } else {
            String::new()
        }
    }

    /// Open connections (busy or idle).
    pub fn size(&self) -> u32 {
        self.inner.status().size as u32
    }

    pub fn num_idle(&self) -> usize {
        self.inner.status().available
    }

    pub fn close(&self) {
        self.inner.close();
    }
}

fn pool_error(e: PoolError<sqlx::Error>) -> sqlx::Error {
    match e {
        PoolError::Backend(e) => e,
        PoolError::Timeout(_) => sqlx::Error::PoolTimedOut,
        PoolError::Closed => sqlx::Error::PoolClosed,
        other => sqlx::Error::Configuration(other.to_string().into()),
    }
}

/// A connection out of the pool. Given back unchecked only through
/// [`release_clean`](Self::release_clean); dropped, it is reset before its next use.
pub struct PoolConnection<DB: Dialect>(Object<Manager<DB>>);

impl<DB: Dialect> PoolConnection<DB> {
    /// Back to the pool as sound: call only after the last statement completed.
    pub fn release_clean(mut self) {
        self.0.clean = true;
    }
}

impl<DB: Dialect> Deref for PoolConnection<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &DB::Connection {
        &self.0.conn
    }
}

impl<DB: Dialect> DerefMut for PoolConnection<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.0.conn
    }
}

/// A transaction on a pooled connection; rolled back if dropped unfinished.
pub struct PoolTransaction<DB: Dialect> {
    obj: Option<Object<Manager<DB>>>,
    /// The transaction queue's turn, when the pool has one: held until the
    /// transaction has ended (after the rollback, for one dropped unfinished).
    turn: Option<OwnedMutexGuard<()>>,
}

impl<DB: Dialect> PoolTransaction<DB> {
    pub async fn commit(mut self) -> Result<(), sqlx::Error> {
        self.finish("COMMIT").await
    }

    pub async fn rollback(mut self) -> Result<(), sqlx::Error> {
        self.finish("ROLLBACK").await
    }

    async fn finish(&mut self, statement: &'static str) -> Result<(), sqlx::Error> {
        let obj = self.obj.as_mut().expect("transaction already finished");
        DB::run(&mut obj.conn, statement).await?;
        // Only now: if the statement failed, Drop rolls back what may still be open.
        let mut obj = self.obj.take().expect("transaction already finished");
        obj.clean = true;
        Ok(())
    }
}

impl<DB: Dialect> Deref for PoolTransaction<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &DB::Connection {
        &self
            .obj
            .as_ref()
            .expect("transaction already finished")
            .conn
    }
}

impl<DB: Dialect> DerefMut for PoolTransaction<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self
            .obj
            .as_mut()
            .expect("transaction already finished")
            .conn
    }
}

impl<DB: Dialect> Drop for PoolTransaction<DB> {
    fn drop(&mut self) {
        let Some(mut obj) = self.obj.take() else {
            return;
        };
        let turn = self.turn.take();
        let limit = Object::pool(&obj)
            .map(|p| p.timeouts().recycle.unwrap_or(Duration::from_secs(3)))
            .unwrap_or(Duration::from_secs(3));
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    let _turn = turn;
                    match tokio::time::timeout(limit, DB::reset(&mut obj.conn)).await {
                        Ok(Ok(())) => obj.clean = true,
                        Ok(Err(e)) => {
                            tracing::warn!(error = %e, "rollback of an abandoned transaction failed; the connection is closed");
                            drop(Object::take(obj));
                        }
                        // A frozen database: the connection goes, the pool stays whole.
                        Err(_) => drop(Object::take(obj)),
                    }
                });
            }
            // No runtime to roll back on: closing the connection makes the server do it.
            Err(_) => drop(Object::take(obj)),
        }
    }
}

/// Statements run on `&pool` take a connection for just that statement and give it
/// back clean once the statement completed. Rows are collected before they are
/// yielded, which is what every caller here does anyway.
impl<'p, DB: Dialect> Executor<'p> for &'_ ConnPool<DB>
where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    type Database = DB;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<DB::QueryResult, DB::Row>, sqlx::Error>>
    where
        E: 'q + Execute<'q, DB>,
    {
        let pool = self.clone();
        stream::once(async move {
            let limit = pool.statement_timeout;
            let items: Vec<_> = bounded(limit, STATEMENT_LIMIT, async {
                let mut conn = pool.acquire().await?;
                let items: Vec<_> = (&mut *conn).fetch_many(query).try_collect().await?;
                conn.release_clean();
                Ok(items)
            })
            .await?;
            Ok::<_, sqlx::Error>(stream::iter(items.into_iter().map(Ok)))
        })
        .try_flatten()
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<DB::Row>, sqlx::Error>>
    where
        E: 'q + Execute<'q, DB>,
    {
        let pool = self.clone();
        Box::pin(async move {
            bounded(pool.statement_timeout, STATEMENT_LIMIT, async {
                let mut conn = pool.acquire().await?;
                let row = (&mut *conn).fetch_optional(query).await?;
                conn.release_clean();
                Ok(row)
            })
            .await
        })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [DB::TypeInfo],
    ) -> BoxFuture<'e, Result<DB::Statement<'q>, sqlx::Error>> {
        let pool = self.clone();
        Box::pin(async move {
            let mut conn = pool.acquire().await?;
            let statement = (&mut *conn).prepare_with(sql, parameters).await?;
            conn.release_clean();
            Ok(statement)
        })
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> BoxFuture<'e, Result<Describe<DB>, sqlx::Error>> {
        let pool = self.clone();
        Box::pin(async move {
            let mut conn = pool.acquire().await?;
            let description = (&mut *conn).describe(sql).await?;
            conn.release_clean();
            Ok(description)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{spread_lifetime, LIFETIME_SPREAD, MAX_LIFETIME};

    #[test]
    fn connections_opened_together_are_not_replaced_together() {
        let lifetimes: Vec<_> = (0..200).map(|_| spread_lifetime()).collect();
        assert!(lifetimes
            .iter()
            .all(|l| *l <= MAX_LIFETIME && *l >= MAX_LIFETIME - LIFETIME_SPREAD));
        let (min, max) = (
            lifetimes.iter().min().unwrap(),
            lifetimes.iter().max().unwrap(),
        );
        // 200 draws from a 3-minute spread land more than two minutes apart.
        assert!(*max - *min > LIFETIME_SPREAD * 2 / 3, "{min:?}..{max:?}");
    }
}
