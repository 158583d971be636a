//! Every lease efs-iam takes in the database, written once:
//!
//! - **Named leases** (`efs_iam_sync_lock`, [`LeaseStore`]): the sync engine takes one
//!   per EFS user and one per login, so concurrent or retried syncs of one person run
//!   one after the other in every instance (see `sync::lock`); the reconciliation
//!   schedule and each reconciled portal take one too.
//! - **Leased queues** ([`LeasedQueue`]): the unassignment queue, sync job items,
//!   reconciliation runs, Okta events, adoption runs and items, and error-log purges
//!   are claimed, renewed, completed, failed (with backoff, or for good as dead
//!   letters) and released by the same statements; each table's file says only what
//!   is its own (which rows are due, their order, what a claim or an outcome also
//!   sets).
//!
//! Every claim follows one pattern, so several instances share a table and a crash
//! loses nothing:
//!
//! 1. a short transaction picks due rows nobody holds ([`Dialect::BEGIN_CLAIM`] and
//!    [`Dialect::SKIP_LOCKED`]) and stamps them with a lease (`locked_by` = the
//!    holder, `locked_until`);
//! 2. the work (Okta calls) happens outside any transaction, while a heartbeat renews
//!    the lease;
//! 3. the outcome is written afterwards, only by the holder: every statement after the
//!    claim says `locked_by = ?`. A row whose lease ran out (its holder crashed or hung)
//!    is due again, so work is done at least once; everything efs-iam does in Okta for
//!    a row is idempotent, which makes "at least once" safe.
//!
//! [`Dialect::BEGIN_CLAIM`]: super::sql::pool::Dialect::BEGIN_CLAIM
//! [`Dialect::SKIP_LOCKED`]: super::sql::pool::Dialect::SKIP_LOCKED

use async_trait::async_trait;
use chrono::NaiveDateTime;
use sqlx::{MySql, Sqlite};

use super::error::StorageResult;
use super::sql::{in_transaction, is_unique_violation, on_dialect, SqlStore, CHUNK};

#[async_trait]
pub trait LeaseStore: Send + Sync + 'static {
    /// Takes the lease `name` for `owner` until `until`, if it is free or its holder's
    /// lease ran out before `now`. `true` when taken.
    async fn try_lock(
        &self,
        name: &str,
        owner: &str,
        now: NaiveDateTime,
        until: NaiveDateTime,
    ) -> StorageResult<bool>;
    /// Extends a lease `owner` holds; `false` when it is no longer theirs.
    async fn renew_lock(
        &self,
        name: &str,
        owner: &str,
        until: NaiveDateTime,
    ) -> StorageResult<bool>;
    /// Gives a lease back (no-op when `owner` no longer holds it).
    async fn unlock(&self, name: &str, owner: &str) -> StorageResult<()>;
}

#[async_trait]
impl LeaseStore for SqlStore {
    #[tracing::instrument(skip(self, owner), level = "debug", err(level = "debug"))]
    async fn try_lock(
        &self,
        name: &str,
        owner: &str,
        now: NaiveDateTime,
        until: NaiveDateTime,
    ) -> StorageResult<bool> {
        let insert =
            "INSERT INTO efs_iam_sync_lock (locked_by, locked_until, name) VALUES (?, ?, ?)";
        // Held: take it over only from a holder whose lease ran out.
        let take_over = "UPDATE efs_iam_sync_lock SET locked_by = ?, locked_until = ? \
                         WHERE name = ? AND locked_until < ?";
        on_dialect!(self, pool => {
            let inserted = sqlx::query(insert)
                .bind(owner)
                .bind(until)
                .bind(name)
                .execute(pool)
                .await;
            match inserted {
                Ok(_) => return Ok(true),
                Err(e) if is_unique_violation(&e) => {}
                Err(e) => return Err(e.into()),
            }
            let taken = sqlx::query(take_over)
                .bind(owner)
                .bind(until)
                .bind(name)
                .bind(now)
                .execute(pool)
                .await?;
            Ok(taken.rows_affected() > 0)
        })
    }

    #[tracing::instrument(skip(self, owner), level = "debug", err(level = "debug"))]
    async fn renew_lock(
        &self,
        name: &str,
        owner: &str,
        until: NaiveDateTime,
    ) -> StorageResult<bool> {
        let sql = "UPDATE efs_iam_sync_lock SET locked_until = ? WHERE name = ? AND locked_by = ?";
        Ok(on_dialect!(self, pool => {
            sqlx::query(sql)
                .bind(until)
                .bind(name)
                .bind(owner)
                .execute(pool)
                .await?
                .rows_affected()
                > 0
        }))
    }

    #[tracing::instrument(skip(self, owner), level = "debug", err(level = "debug"))]
    async fn unlock(&self, name: &str, owner: &str) -> StorageResult<()> {
        let sql = "DELETE FROM efs_iam_sync_lock WHERE name = ? AND locked_by = ?";
        on_dialect!(self, pool => {
            sqlx::query(sql).bind(name).bind(owner).execute(pool).await?;
        });
        Ok(())
    }
}

/// A table of leased work, as the generic statements need it.
pub(crate) struct LeasedQueue {
    pub table: &'static str,
    /// The key column (`id`, `uuid`).
    pub key: &'static str,
    /// The rows a worker may take now; every `?` in it is bound to the claim's `now`.
    pub due: &'static str,
    /// The order work is taken in.
    pub order: &'static str,
    /// What every statement of the holder also requires (` AND state = 'pending'`), or
    /// nothing.
    pub held: &'static str,
    /// More of a claim's `SET` (`, state = 'running'`), or nothing; every `?` in it is
    /// bound to the claim's `now`.
    pub on_claim: &'static str,
    /// How claimed rows are read.
    pub read: ReadClaimed,
}

/// The states a run's holder writes (a run: one row for work asked for by one request,
/// a reconciliation or an error-log purge, claimed whole; a claim makes it `running`,
/// see [`LeasedQueue::runs`]).
pub(crate) mod run_state {
    /// Waiting for a worker (also after a failure that is retried).
    pub const PENDING: &str = "pending";
    pub const SUCCEEDED: &str = "succeeded";
    pub const FAILED: &str = "failed";
}

impl LeasedQueue {
    /// A table of runs ([`run_state`]), keyed by `id`, oldest first: a worker may take a
    /// run that is pending (and not held back), or running under a lease that ran out;
    /// a claim makes it `running` with one more attempt (`started_at` at the first).
    pub(crate) const fn runs(table: &'static str, columns: &'static str) -> Self {
        Self {
            table,
            key: "id",
            due: "(state = 'pending' OR state = 'running') \
                  AND (locked_until IS NULL OR locked_until < ?)",
            order: "created_at, id",
            held: " AND state = 'running'",
            on_claim: ", state = 'running', attempts = attempts + 1, \
                       started_at = COALESCE(started_at, ?)",
            read: ReadClaimed {
                columns,
                from: table,
                key: "id",
                order: "created_at, id",
            },
        }
    }
}

/// `SELECT {columns} FROM {from} WHERE {key} IN (…) ORDER BY {order}`: how a claim reads
/// the rows it took (`from` may join what the rows need).
pub(crate) struct ReadClaimed {
    pub columns: &'static str,
    pub from: &'static str,
    pub key: &'static str,
    pub order: &'static str,
}

crate::trait_alias!(
    /// A queue table's key: `i32`, `i64` or `String`, bound and read on both dialects.
    pub(crate) QueueKey: Clone
        + Send
        + Sync
        + Unpin
        + 'static
        + for<'q> sqlx::Encode<'q, MySql>
        + for<'r> sqlx::Decode<'r, MySql>
        + sqlx::Type<MySql>
        + for<'q> sqlx::Encode<'q, Sqlite>
        + for<'r> sqlx::Decode<'r, Sqlite>
        + sqlx::Type<Sqlite>
);

crate::trait_alias!(
    /// A claimed row as its table reads it, on both dialects.
    pub(crate) QueueRow: Send
        + Unpin
        + for<'r> sqlx::FromRow<'r, sqlx::mysql::MySqlRow>
        + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
);

/// What makes a row of a queue with states due: pending, not backing off, and held by
/// nobody (or by a holder whose lease ran out). Both `?` are the claim's `now`.
pub(crate) const PENDING_AND_DUE: &str = "state = 'pending' \
    AND (next_attempt_at IS NULL OR next_attempt_at <= ?) \
    AND (locked_until IS NULL OR locked_until < ?)";

/// A value an outcome writes into a column.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Value<'a> {
    Text(Option<&'a str>),
    /// The text, or the column's own value when `None`: `COALESCE(?, column)`.
    TextOrKept(Option<&'a str>),
    Int(Option<i32>),
    Time(Option<NaiveDateTime>),
    /// SQL as it stands, nothing bound (`attempts + 1`).
    Sql(&'static str),
    /// The column's own value plus this: `column + ?` (a count of progress).
    Add(i64),
}

/// `(?, ?, …)` for `n` values.
fn marks(n: usize) -> String {
    let mut s = String::with_capacity(2 + 3 * n);
    s.push('(');
    for i in 0..n {
        s.push_str(if i == 0 { "?" } else { ", ?" });
    }
    s.push(')');
    s
}

macro_rules! bind_values {
    ($query:expr, $set:expr) => {{
        let mut query = $query;
        for (_, value) in $set {
            query = match *value {
                Value::Text(v) | Value::TextOrKept(v) => query.bind(v),
                Value::Int(v) => query.bind(v),
                Value::Time(v) => query.bind(v),
                Value::Add(v) => query.bind(v),
                Value::Sql(_) => query,
            };
        }
        query
    }};
}

impl SqlStore {
    /// Leases up to `limit` due rows of `queue` for `owner` until `until`, in the
    /// queue's order, and reads them.
    pub(crate) async fn claim<K: QueueKey, R: QueueRow>(
        &self,
        queue: &LeasedQueue,
        owner: &str,
        now: NaiveDateTime,
        until: NaiveDateTime,
        limit: u32,
    ) -> StorageResult<Vec<R>> {
        let LeasedQueue {
            table,
            key,
            due,
            order,
            on_claim,
            read,
            ..
        } = queue;
        in_transaction!(self, begin_claim, pool, tx => {
            let pick = format!(
                "SELECT {key} FROM {table} WHERE {due} ORDER BY {order} LIMIT ?{}",
                pool.skip_locked()
            );
            let mut query = sqlx::query_scalar(&pick);
            for _ in 0..due.matches('?').count() {
                query = query.bind(now);
            }
            let keys: Vec<K> = query.bind(i64::from(limit)).fetch_all(&mut *tx).await?;
            if keys.is_empty() {
                Vec::new()
            } else {
                let lease = format!(
                    "UPDATE {table} SET locked_by = ?, locked_until = ?{on_claim} WHERE {key} IN {}",
                    marks(keys.len())
                );
                let mut query = sqlx::query(&lease).bind(owner).bind(until);
                for _ in 0..on_claim.matches('?').count() {
                    query = query.bind(now);
                }
                for k in &keys {
                    query = query.bind(k.clone());
                }
                query.execute(&mut *tx).await?;
                let sql = format!(
                    "SELECT {} FROM {} WHERE {} IN {} ORDER BY {}",
                    read.columns,
                    read.from,
                    read.key,
                    marks(keys.len()),
                    read.order
                );
                let mut query = sqlx::query_as(&sql);
                for k in &keys {
                    query = query.bind(k.clone());
                }
                query.fetch_all(&mut *tx).await?
            }
        })
    }

    /// Extends the leases `owner` still holds among `keys` to `until` (the heartbeat of
    /// work in progress); how many it still held.
    pub(crate) async fn renew<K: QueueKey>(
        &self,
        queue: &LeasedQueue,
        keys: &[K],
        owner: &str,
        until: NaiveDateTime,
    ) -> StorageResult<u64> {
        self.update_held_keys(queue, keys, owner, "locked_until = ?", Some(until))
            .await
    }

    /// Gives the leases `owner` holds among `keys` back to nobody, counting no attempt
    /// (shutdown, systemic failures); how many it held.
    pub(crate) async fn release<K: QueueKey>(
        &self,
        queue: &LeasedQueue,
        keys: &[K],
        owner: &str,
    ) -> StorageResult<u64> {
        self.update_held_keys(
            queue,
            keys,
            owner,
            "locked_by = NULL, locked_until = NULL",
            None,
        )
        .await
    }

    async fn update_held_keys<K: QueueKey>(
        &self,
        queue: &LeasedQueue,
        keys: &[K],
        owner: &str,
        set: &str,
        until: Option<NaiveDateTime>,
    ) -> StorageResult<u64> {
        let LeasedQueue {
            table, key, held, ..
        } = queue;
        let mut changed = 0;
        for chunk in keys.chunks(CHUNK) {
            let sql = format!(
                "UPDATE {table} SET {set} WHERE locked_by = ?{held} AND {key} IN {}",
                marks(chunk.len())
            );
            changed += on_dialect!(self, pool => {
                let mut query = sqlx::query(&sql);
                if let Some(until) = until {
                    query = query.bind(until);
                }
                query = query.bind(owner);
                for k in chunk {
                    query = query.bind(k.clone());
                }
                query.execute(pool).await?.rows_affected()
            });
        }
        Ok(changed)
    }

    /// Deletes a row `owner` holds (its work is done); `false` when the lease was lost.
    pub(crate) async fn complete<K: QueueKey>(
        &self,
        queue: &LeasedQueue,
        id: K,
        owner: &str,
    ) -> StorageResult<bool> {
        let LeasedQueue {
            table, key, held, ..
        } = queue;
        let sql = format!("DELETE FROM {table} WHERE {key} = ? AND locked_by = ?{held}");
        Ok(on_dialect!(self, pool => {
            sqlx::query(&sql)
                .bind(id)
                .bind(owner)
                .execute(pool)
                .await?
                .rows_affected()
                > 0
        }))
    }

    /// Records the outcome of a row `owner` holds — done, failed to be retried at a
    /// later time, or failed for good (a dead letter) — as the values of `set`, and
    /// gives the lease back (`locked_until` stays as `set` gives it, if it does: a row
    /// held back until then). `false` when the lease was lost: the row is another
    /// holder's now, whose outcome counts.
    pub(crate) async fn finish<K: QueueKey>(
        &self,
        queue: &LeasedQueue,
        id: K,
        owner: &str,
        set: &[(&'static str, Value<'_>)],
    ) -> StorageResult<bool> {
        self.update_held(queue, id, owner, set, true).await
    }

    /// Adds `done` to the count in `column` of a row `owner` holds, keeping the lease
    /// (progress of work under way); `false` when the lease was lost.
    pub(crate) async fn record_progress<K: QueueKey>(
        &self,
        queue: &LeasedQueue,
        id: K,
        owner: &str,
        column: &'static str,
        done: i64,
    ) -> StorageResult<bool> {
        let set = [(column, Value::Add(done))];
        self.update_held(queue, id, owner, &set, false).await
    }

    async fn update_held<K: QueueKey>(
        &self,
        queue: &LeasedQueue,
        id: K,
        owner: &str,
        set: &[(&'static str, Value<'_>)],
        give_back: bool,
    ) -> StorageResult<bool> {
        let LeasedQueue {
            table, key, held, ..
        } = queue;
        let mut assignments: Vec<String> = set
            .iter()
            .map(|(column, value)| match value {
                Value::Sql(sql) => format!("{column} = {sql}"),
                Value::TextOrKept(_) => format!("{column} = COALESCE(?, {column})"),
                Value::Add(_) => format!("{column} = {column} + ?"),
                _ => format!("{column} = ?"),
            })
            .collect();
        if give_back {
            assignments.push("locked_by = NULL".into());
            if !set.iter().any(|(column, _)| *column == "locked_until") {
                assignments.push("locked_until = NULL".into());
            }
        }
        let assignments = assignments.join(", ");
        let sql =
            format!("UPDATE {table} SET {assignments} WHERE {key} = ? AND locked_by = ?{held}");
        Ok(on_dialect!(self, pool => {
            bind_values!(sqlx::query(&sql), set)
                .bind(id.clone())
                .bind(owner)
                .execute(pool)
                .await?
                .rows_affected()
                > 0
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::marks;

    #[test]
    fn key_lists_have_one_mark_per_key() {
        assert_eq!(marks(1), "(?)");
        assert_eq!(marks(3), "(?, ?, ?)");
    }
}
