//! `efs_iam_error_log_purge` (migration 0010): purges of the error log asked for
//! through the API, done by a worker (`sync::workers::error_log_purges`) in paced
//! batches outside any request. Purges are claimed with leases like queue rows (see
//! `leases`): a purge whose holder died is claimed again once its lease runs out, and
//! goes on with what is still there.

use async_trait::async_trait;
use chrono::NaiveDateTime;
use sqlx::FromRow;

use super::leases::{run_state as purge_state, LeasedQueue, Value};
use super::sql::{on_dialect, SqlStore};
use super::StorageResult;

/// A purge as stored.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ErrorLogPurge {
    pub id: String,
    /// Every entry created before this time goes.
    pub purge_before: NaiveDateTime,
    /// The `sub` of the caller who asked.
    pub requested_by: String,
    /// `pending`, `running`, `succeeded`, `failed`.
    pub state: String,
    pub created_at: NaiveDateTime,
    pub started_at: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
    pub attempts: i32,
    /// Entries deleted so far, by every holder.
    pub deleted: i64,
    /// Why it failed (failed), or the last failure of a purge to be retried.
    pub error: Option<String>,
}

#[async_trait]
pub trait ErrorLogPurgeStore: Send + Sync + 'static {
    /// Stores a pending purge; the purge as stored.
    async fn create_error_log_purge(
        &self,
        id: &str,
        before: NaiveDateTime,
        requested_by: &str,
        now: NaiveDateTime,
    ) -> StorageResult<ErrorLogPurge>;
    async fn error_log_purge(&self, id: &str) -> StorageResult<Option<ErrorLogPurge>>;
    /// Leases the oldest purge that is pending, or running under a lease that ran out;
    /// it becomes `running` with one more attempt.
    async fn claim_error_log_purge(
        &self,
        owner: &str,
        now: NaiveDateTime,
        lease_until: NaiveDateTime,
    ) -> StorageResult<Option<ErrorLogPurge>>;
    /// Extends the lease of a purge `owner` holds; `false` when it is no longer theirs.
    async fn renew_error_log_purge(
        &self,
        id: &str,
        owner: &str,
        until: NaiveDateTime,
    ) -> StorageResult<bool>;
    /// Adds `deleted` entries to the purge's count; only its holder can. `false` when
    /// the lease was lost.
    async fn count_error_log_purge_progress(
        &self,
        id: &str,
        owner: &str,
        deleted: u64,
    ) -> StorageResult<bool>;
    /// Records a purge's end (`error`: it failed, and why); only its holder can.
    /// `false` when the lease was lost.
    async fn finish_error_log_purge(
        &self,
        id: &str,
        owner: &str,
        error: Option<&str>,
        now: NaiveDateTime,
    ) -> StorageResult<bool>;
    /// Hands a purge back as pending, to be claimed again at once (shutdown: `None`) or
    /// from `not_before` (a failure to retry).
    async fn release_error_log_purge(
        &self,
        id: &str,
        owner: &str,
        error: Option<&str>,
        not_before: Option<NaiveDateTime>,
    ) -> StorageResult<bool>;
    /// Forgets purges that ended before `before`; how many.
    async fn forget_error_log_purges(&self, before: NaiveDateTime) -> StorageResult<u64>;
}

const PURGES: &str = "efs_iam_error_log_purge";
const COLS: &str = "id, purge_before, requested_by, state, created_at, started_at, \
                    finished_at, attempts, deleted, error";
/// The purges as the leased-queue statements see them: runs ([`LeasedQueue::runs`]).
const LEASES: LeasedQueue = LeasedQueue::runs(PURGES, COLS);

#[async_trait]
impl ErrorLogPurgeStore for SqlStore {
    #[tracing::instrument(skip(self, requested_by), err(level = "debug"))]
    async fn create_error_log_purge(
        &self,
        id: &str,
        before: NaiveDateTime,
        requested_by: &str,
        now: NaiveDateTime,
    ) -> StorageResult<ErrorLogPurge> {
        let sql = format!(
            "INSERT INTO {PURGES} (id, purge_before, requested_by, state, created_at, \
             attempts, deleted) VALUES (?, ?, ?, ?, ?, 0, 0)"
        );
        on_dialect!(self, pool => {
            sqlx::query(&sql)
                .bind(id)
                .bind(before)
                .bind(requested_by)
                .bind(purge_state::PENDING)
                .bind(now)
                .execute(pool)
                .await?;
        });
        Ok(ErrorLogPurge {
            id: id.to_owned(),
            purge_before: before,
            requested_by: requested_by.to_owned(),
            state: purge_state::PENDING.to_owned(),
            created_at: now,
            started_at: None,
            finished_at: None,
            attempts: 0,
            deleted: 0,
            error: None,
        })
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn error_log_purge(&self, id: &str) -> StorageResult<Option<ErrorLogPurge>> {
        let sql = format!("SELECT {COLS} FROM {PURGES} WHERE id = ?");
        Ok(on_dialect!(self, pool => {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        }))
    }

    #[tracing::instrument(skip(self, owner), level = "debug", err(level = "debug"))]
    async fn claim_error_log_purge(
        &self,
        owner: &str,
        now: NaiveDateTime,
        lease_until: NaiveDateTime,
    ) -> StorageResult<Option<ErrorLogPurge>> {
        let claimed: Vec<ErrorLogPurge> = self
            .claim::<String, _>(&LEASES, owner, now, lease_until, 1)
            .await?;
        Ok(claimed.into_iter().next())
    }

    #[tracing::instrument(skip(self, owner), level = "debug", err(level = "debug"))]
    async fn renew_error_log_purge(
        &self,
        id: &str,
        owner: &str,
        until: NaiveDateTime,
    ) -> StorageResult<bool> {
        Ok(self.renew(&LEASES, &[id.to_owned()], owner, until).await? > 0)
    }

    #[tracing::instrument(skip(self, owner), level = "debug", err(level = "debug"))]
    async fn count_error_log_purge_progress(
        &self,
        id: &str,
        owner: &str,
        deleted: u64,
    ) -> StorageResult<bool> {
        let deleted = i64::try_from(deleted).unwrap_or(i64::MAX);
        self.record_progress(&LEASES, id.to_owned(), owner, "deleted", deleted)
            .await
    }

    #[tracing::instrument(skip(self, owner, error), err(level = "debug"))]
    async fn finish_error_log_purge(
        &self,
        id: &str,
        owner: &str,
        error: Option<&str>,
        now: NaiveDateTime,
    ) -> StorageResult<bool> {
        let state = match error {
            None => purge_state::SUCCEEDED,
            Some(_) => purge_state::FAILED,
        };
        let set = [
            ("state", Value::Text(Some(state))),
            ("error", Value::TextOrKept(error)),
            ("finished_at", Value::Time(Some(now))),
        ];
        self.finish(&LEASES, id.to_owned(), owner, &set).await
    }

    #[tracing::instrument(skip(self, owner, error), err(level = "debug"))]
    async fn release_error_log_purge(
        &self,
        id: &str,
        owner: &str,
        error: Option<&str>,
        not_before: Option<NaiveDateTime>,
    ) -> StorageResult<bool> {
        let mut set = vec![
            ("state", Value::Text(Some(purge_state::PENDING))),
            ("error", Value::TextOrKept(error)),
        ];
        if let Some(at) = not_before {
            // Held back by a lease no instance holds, until then.
            set.push(("locked_until", Value::Time(Some(at))));
        }
        self.finish(&LEASES, id.to_owned(), owner, &set).await
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn forget_error_log_purges(&self, before: NaiveDateTime) -> StorageResult<u64> {
        let sql = format!(
            "DELETE FROM {PURGES} WHERE state IN ('succeeded', 'failed') AND finished_at < ?"
        );
        Ok(on_dialect!(self, pool => {
            sqlx::query(&sql).bind(before).execute(pool).await?.rows_affected()
        }))
    }
}
