//! [`SqlStore`]: every storage contract on MySQL/MariaDB or SQLite.
//!
//! Each contract's SQL sits next to its trait (`storage/portal_settings.rs`, …) and is
//! written once, to the subset both dialects speak: `?` placeholders, no `RETURNING`,
//! backtick-quoted `key`. What differs is data on [`Dialect`] (transaction openers,
//! locking clauses, the last insert id). [`on_dialect!`] runs a method's body with the
//! concrete pool of the connected dialect, so each body is compiled once per dialect
//! without the trait bounds a generic-over-`sqlx::Database` function would need.

mod dialect;
mod exact_text;
mod mysql;
pub mod pool;
mod sqlite;

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{MySql, Sqlite};

use self::pool::ConnPool;
use super::database::{scheme, Backend, ConnectOptions, DatabaseStatus, PoolStats};
use super::error::{StorageError, StorageResult};

/// The connected database: the pool of one dialect.
pub enum Db {
    MySql(ConnPool<MySql>),
    Sqlite(ConnPool<Sqlite>),
}

/// Both dialects' storage: one type, the dialect chosen by the URL's scheme.
pub struct SqlStore {
    db: Db,
    /// SQLite: the file locked while migrations run (`None` in memory).
    migration_lock: Option<std::path::PathBuf>,
}

/// Evaluates `$body` with `$pool` bound to the store's pool, once per dialect.
macro_rules! on_dialect {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store.db() {
            $crate::storage::sql::Db::MySql($pool) => $body,
            $crate::storage::sql::Db::Sqlite($pool) => $body,
        }
    };
}
pub(crate) use on_dialect;

pub(crate) use exact_text::ExactText;

/// Evaluates `$body` in a transaction opened by `$begin` (`begin_write` or
/// `begin_claim`) on the store's dialect, with `$pool` and `$tx` bound, and commits it;
/// the whole runs again when the database rolled it back for a lock conflict
/// ([`retry_conflicts`]). A `return` from `$body` leaves without committing: the
/// transaction is rolled back.
macro_rules! in_transaction {
    ($store:expr, $begin:ident, $pool:ident, $tx:ident => $body:expr) => {
        $crate::storage::sql::within_deadline(
            $store.statement_timeout(),
            $crate::storage::sql::retry_conflicts(|| async {
                $crate::storage::sql::on_dialect!($store, $pool => {
                    let mut $tx = $pool.$begin().await?;
                    let value = $body;
                    $tx.commit().await?;
                    Ok(value)
                })
            }),
        )
        .await
    };
}

/// A whole storage operation, bounded: its error once `limit` has passed (the work,
/// its connection and any open transaction are dropped and rolled back).
pub(crate) async fn within_deadline<T>(
    limit: Duration,
    work: impl Future<Output = StorageResult<T>>,
) -> StorageResult<T> {
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result,
        Err(_) => Err(StorageError::Unavailable(pool::timed_out(
            pool::STATEMENT_LIMIT,
        ))),
    }
}
pub(crate) use in_transaction;

/// Rows inserted or listed per statement: far below MySQL's 65,535 and SQLite's 32,766
/// bound parameters.
pub(crate) const CHUNK: usize = 500;

/// Rows one purge statement deletes (or gives an expiry): a purge of a million rows is
/// a thousand short statements, each its own transaction on an index, so no lock is
/// held for the whole purge and other statements run between the batches.
pub(crate) const PURGE_BATCH: usize = 1_000;

/// Connects by URL scheme (`mysql://` or `sqlite:`) and, when asked, applies the
/// migrations.
pub async fn connect(
    url: &str,
    options: &ConnectOptions,
    migrate: bool,
) -> anyhow::Result<std::sync::Arc<SqlStore>> {
    let store = SqlStore::connect(url, options).await?;
    if migrate {
        store.migrate().await?;
    }
    Ok(std::sync::Arc::new(store))
}

impl SqlStore {
    /// Connects by URL scheme (`mysql://` or `sqlite:`).
    pub async fn connect(url: &str, options: &ConnectOptions) -> anyhow::Result<Self> {
        let (db, migration_lock) = match scheme(url)? {
            Backend::MySql => (Db::MySql(mysql::connect(url, options).await?), None),
            Backend::Sqlite => {
                let (pool, file) = sqlite::connect(url, options).await?;
                let lock = file.map(|f| {
                    let mut name = f.into_os_string();
                    name.push(".migrate-lock");
                    std::path::PathBuf::from(name)
                });
                (Db::Sqlite(pool), lock)
            }
        };
        Ok(Self { db, migration_lock })
    }

    /// The pool, for tests and tools that need a raw statement.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// How long one storage operation may take.
    pub fn statement_timeout(&self) -> Duration {
        on_dialect!(self, pool => pool.statement_timeout())
    }

    /// Applies the dialect's migrations. Safe with several instances starting at once:
    /// one runs them under a lock it has checked it holds (MariaDB: a named lock,
    /// `GET_LOCK` asked again until it answers 1 — sqlx's own lock ignores the answer,
    /// and MariaDB 10.11 answered NULL to its `GET_LOCK(…, -1)` while another session
    /// held it; SQLite: an exclusive lock on `<file>.migrate-lock`); the others wait,
    /// then find nothing left to apply. Migrations have no statement time limit.
    pub async fn migrate(&self) -> StorageResult<()> {
        match &self.db {
            Db::MySql(pool) => mysql::migrate(pool).await?,
            Db::Sqlite(pool) => {
                let _lock = match &self.migration_lock {
                    Some(path) => Some(lock_file(path).await?),
                    None => None,
                };
                let mut conn = pool.acquire().await?;
                sqlite::MIGRATOR.run(&mut *conn).await?;
                conn.release_clean();
            }
        }
        Ok(())
    }

    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        match self.db {
            Db::MySql(_) => &mysql::MIGRATOR,
            Db::Sqlite(_) => &sqlite::MIGRATOR,
        }
    }
}

#[async_trait]
impl DatabaseStatus for SqlStore {
    fn backend(&self) -> &'static str {
        use self::pool::Dialect;
        match self.db {
            Db::MySql(_) => MySql::NAME,
            Db::Sqlite(_) => Sqlite::NAME,
        }
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn check_ready(&self) -> StorageResult<()> {
        let expected = self.migrator().iter().map(|m| m.version).max().unwrap_or(0);
        let applied: Option<i64> = on_dialect!(self, pool => {
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = 1")
                .fetch_one(pool)
                .await?
        });
        let applied = applied.unwrap_or(0);
        if applied < expected {
            return Err(StorageError::NotMigrated { applied, expected });
        }
        Ok(())
    }

    fn pool_stats(&self) -> PoolStats {
        on_dialect!(self, pool => PoolStats {
            size: pool.size(),
            idle: pool.num_idle() as u32,
        })
    }
}

/// Holds an exclusive lock on `path` (created if missing) until the file is dropped;
/// waits for another process's.
async fn lock_file(path: &std::path::Path) -> StorageResult<std::fs::File> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        file.lock()?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(|e| StorageError::Unavailable(sqlx::Error::Io(std::io::Error::other(e))))?
    .map_err(|e| StorageError::Unavailable(sqlx::Error::Io(e)))
}

/// Re-runs a whole write transaction when the database rolled it back for a lock
/// conflict (InnoDB deadlock, SQLite busy). Bounded: the last conflict is returned.
pub(crate) async fn retry_conflicts<T, F, Fut>(mut attempt: F) -> StorageResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StorageResult<T>>,
{
    let mut tries = 0u32;
    loop {
        match attempt().await {
            Err(StorageError::Conflict(e)) if tries < 5 => {
                tries += 1;
                tracing::debug!(error = %e, tries, "write conflict, retrying");
                tokio::time::sleep(Duration::from_millis(5 << tries)).await;
            }
            other => return other,
        }
    }
}

/// Ends a keyset page: rows after `after` in `key` order, at most `limit`.
pub(crate) fn push_page<'a, DB>(
    q: &mut sqlx::QueryBuilder<'a, DB>,
    key: &str,
    after: Option<i32>,
    limit: u32,
) where
    DB: sqlx::Database,
    i32: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
    i64: sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    if let Some(after) = after {
        q.push(format!(" AND {key} > ")).push_bind(after);
    }
    q.push(format!(" ORDER BY {key} LIMIT "))
        .push_bind(i64::from(limit));
}

/// Which rows a batched purge deletes: those of `table` whose `column` compares to the
/// bound with `op` (`<` or `<=`), read along the `index` on (`column`, `id`).
pub(crate) struct PurgeRange {
    pub table: &'static str,
    pub column: &'static str,
    pub op: &'static str,
    /// The MariaDB index on (`column`, `id`); SQLite's planner finds its own.
    pub index: &'static str,
}

/// Where a batched purge stands: `(column, id)` of the last row its previous batch read.
pub type PurgePosition = (chrono::NaiveDateTime, i64);

impl SqlStore {
    /// Deletes the rows of `range` up to `bound` in batches of
    /// [`PURGE_BATCH`](PURGE_BATCH), oldest first ([`SqlStore::purge_batch`]). Returns
    /// how many rows went.
    pub(crate) async fn purge_in_batches(
        &self,
        range: &PurgeRange,
        bound: chrono::NaiveDateTime,
    ) -> Result<u64, sqlx::Error> {
        let (mut deleted, mut after) = (0, None);
        loop {
            let (n, next) = self.purge_batch(range, bound, after).await?;
            deleted += n;
            match next {
                Some(position) => after = Some(position),
                None => return Ok(deleted),
            }
        }
    }

    /// Deletes one batch of at most [`PURGE_BATCH`](PURGE_BATCH) rows of `range` up to
    /// `bound`, oldest first, after `after`: the batch's ids are read from the index
    /// after the previous batch's last row, and deleted by a statement of their own. A
    /// purge of a million rows is then a thousand short transactions: no lock is held for
    /// the whole purge, and the index entries InnoDB has not cleaned up yet are not read
    /// again by the next batch. How many rows went, and where the next batch starts
    /// (`None`: this was the last).
    pub(crate) async fn purge_batch(
        &self,
        range: &PurgeRange,
        bound: chrono::NaiveDateTime,
        after: Option<PurgePosition>,
    ) -> Result<(u64, Option<PurgePosition>), sqlx::Error> {
        let PurgeRange {
            table,
            column,
            op,
            index,
        } = range;
        let limit = PURGE_BATCH;
        let batch: Vec<(i64, chrono::NaiveDateTime)> = on_dialect!(self, pool => {
            let mut q = pool.builder(format!(
                "SELECT id, {column} FROM {table}{} WHERE {column} {op} ",
                pool.force_index(index)
            ));
            q.push_bind(bound);
            if let Some((at, id)) = after {
                q.push(format!(" AND ({column} > "))
                    .push_bind(at)
                    .push(format!(" OR ({column} = "))
                    .push_bind(at)
                    .push(" AND id > ")
                    .push_bind(id)
                    .push("))");
            }
            q.push(format!(" ORDER BY {column}, id LIMIT "))
                .push_bind(limit as i64);
            q.build_query_as().fetch_all(pool).await?
        });
        let Some(&(last_id, last_at)) = batch.last() else {
            return Ok((0, None));
        };
        let ids: Vec<i64> = batch.iter().map(|(id, _)| *id).collect();
        // The bound again: a row changed since it was read is left alone.
        let deleted = on_dialect!(self, pool => {
            let mut q = pool.builder(format!("DELETE FROM {table} WHERE {column} {op} "));
            q.push_bind(bound).push(" AND id");
            push_ids(&mut q, &ids);
            q.build().execute(pool).await?.rows_affected()
        });
        let next = (batch.len() >= limit).then_some((last_at, last_id));
        Ok((deleted, next))
    }
}

/// Appends ` IN (?, ?, …)` binding `ids`.
pub(crate) fn push_ids<'a, DB, T>(q: &mut sqlx::QueryBuilder<'a, DB>, ids: &'a [T])
where
    DB: sqlx::Database,
    T: 'a + Copy + Send + sqlx::Encode<'a, DB> + sqlx::Type<DB>,
{
    q.push(" IN (");
    let mut list = q.separated(", ");
    for id in ids {
        list.push_bind(*id);
    }
    list.push_unseparated(")");
}

pub(crate) fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db)
        if matches!(db.kind(), sqlx::error::ErrorKind::UniqueViolation))
}
