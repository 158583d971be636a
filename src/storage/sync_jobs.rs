//! `efs_iam_sync_job` and `efs_iam_sync_job_item`: batch syncs of portal users
//! (migration 0004). Items are a leased queue (the statements of `leases.rs`), so
//! several instances share a job and a job survives a restart.

use async_trait::async_trait;
use chrono::NaiveDateTime;
use sqlx::FromRow;

use super::leases::{LeasedQueue, ReadClaimed, Value, PENDING_AND_DUE};
use super::sql::{in_transaction, on_dialect, push_page, SqlStore, CHUNK};
use super::StorageResult;
use crate::domain::{EfsUserId, PortalId};

/// A new batch job and its users.
#[derive(Debug, Clone)]
pub struct NewSyncJob {
    pub id: String,
    pub portal: PortalId,
    pub items: Vec<NewSyncJobItem>,
}

#[derive(Debug, Clone)]
pub struct NewSyncJobItem {
    pub user_id: EfsUserId,
    /// The profile as JSON (what the worker sends to Okta).
    pub profile: String,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct SyncJob {
    pub id: String,
    pub portal_id: i32,
    pub total: i32,
    pub created_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
}

/// Item counts of one job.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncJobCounts {
    pub pending: i64,
    pub succeeded: i64,
    pub failed: i64,
    /// Pending items that failed at least once and wait for another attempt.
    pub retrying: i64,
}

/// `pending`, `succeeded`, `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemState {
    Pending,
    Succeeded,
    Failed,
}

impl ItemState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Succeeded, Self::Failed]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct SyncJobItem {
    pub seq: i32,
    pub user_id: i32,
    pub state: String,
    pub outcome: Option<String>,
    pub okta_user_id: Option<String>,
    pub error_type: Option<String>,
    pub error: Option<String>,
    pub error_field: Option<String>,
    pub attempts: i32,
    pub next_attempt_at: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Default)]
pub struct SyncJobItemQuery {
    pub state: Option<ItemState>,
    /// Keyset position: only items with a larger `seq`.
    pub after_seq: Option<i32>,
    pub limit: u32,
}

/// An item an instance holds a lease on.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ClaimedSyncItem {
    pub id: i64,
    pub job_id: String,
    pub portal_id: i32,
    pub user_id: i32,
    pub profile: String,
    pub attempts: i32,
}

/// The final outcome of an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemResult {
    Succeeded {
        outcome: String,
        okta_user_id: String,
    },
    Failed {
        error_type: String,
        error: String,
        field: Option<String>,
        okta_user_id: Option<String>,
    },
}

/// Jobs and items for `/sync/status`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobStats {
    pub unfinished_jobs: i64,
    pub pending_items: i64,
    pub in_progress_items: i64,
}

#[async_trait]
pub trait SyncJobStore: Send + Sync + 'static {
    /// Stores a job and all its items in one transaction.
    async fn create_sync_job(&self, job: &NewSyncJob, now: NaiveDateTime) -> StorageResult<()>;
    async fn sync_job(&self, id: &str) -> StorageResult<Option<(SyncJob, SyncJobCounts)>>;
    async fn sync_job_items(
        &self,
        id: &str,
        query: &SyncJobItemQuery,
    ) -> StorageResult<Vec<SyncJobItem>>;
    /// Leases up to `limit` due items of unfinished jobs, oldest job first.
    async fn claim_sync_items(
        &self,
        owner: &str,
        now: NaiveDateTime,
        lease_until: NaiveDateTime,
        limit: u32,
    ) -> StorageResult<Vec<ClaimedSyncItem>>;
    /// Records an item's final outcome; `false` when the lease was lost.
    async fn finish_sync_item(
        &self,
        id: i64,
        owner: &str,
        result: &ItemResult,
        now: NaiveDateTime,
    ) -> StorageResult<bool>;
    /// Records a failed attempt to be retried at `next_attempt_at`.
    async fn retry_sync_item(
        &self,
        id: i64,
        owner: &str,
        attempts: i32,
        error: &str,
        next_attempt_at: NaiveDateTime,
    ) -> StorageResult<bool>;
    async fn release_sync_items(&self, ids: &[i64], owner: &str) -> StorageResult<u64>;
    /// The heartbeat of a step: extends the leases `owner` still holds among `ids`.
    async fn renew_sync_item_leases(
        &self,
        ids: &[i64],
        owner: &str,
        until: NaiveDateTime,
    ) -> StorageResult<u64>;
    /// Marks jobs without pending items finished; returns their ids.
    async fn finish_sync_jobs(&self, now: NaiveDateTime) -> StorageResult<Vec<String>>;
    /// Deletes jobs (and items) finished before `before`.
    async fn purge_sync_jobs(&self, before: NaiveDateTime) -> StorageResult<u64>;
    async fn sync_job_stats(&self, now: NaiveDateTime) -> StorageResult<JobStats>;
}

const ITEMS: &str = "efs_iam_sync_job_item";
/// The items as the leased-queue statements see them.
const LEASES: LeasedQueue = LeasedQueue {
    table: ITEMS,
    key: "id",
    due: PENDING_AND_DUE,
    order: "id",
    held: " AND state = 'pending'",
    on_claim: "",
    read: ReadClaimed {
        columns: "i.id, i.job_id, j.portal_id, i.user_id, i.profile, i.attempts",
        from: "efs_iam_sync_job_item i JOIN efs_iam_sync_job j ON j.id = i.job_id",
        key: "i.id",
        order: "i.id",
    },
};
const ITEM_COLS: &str = "seq, user_id, state, outcome, okta_user_id, error_type, error, \
                         error_field, attempts, next_attempt_at, finished_at";

#[async_trait]
impl SyncJobStore for SqlStore {
    #[tracing::instrument(skip(self, job), fields(job = %job.id, items = job.items.len()), err(level = "debug"))]
    async fn create_sync_job(&self, job: &NewSyncJob, now: NaiveDateTime) -> StorageResult<()> {
        in_transaction!(self, begin_write, pool, tx => {
            sqlx::query(
                "INSERT INTO efs_iam_sync_job (id, portal_id, total, created_at) \
                 VALUES (?, ?, ?, ?)",
            )
            .bind(&job.id)
            .bind(job.portal.get())
            .bind(job.items.len() as i32)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            for (n, chunk) in job.items.chunks(CHUNK).enumerate() {
                let mut q = pool.builder(
                    "INSERT INTO efs_iam_sync_job_item \
                     (job_id, seq, user_id, profile, state, attempts) ",
                );
                q.push_values(chunk.iter().enumerate(), |mut row, (i, item)| {
                    row.push_bind(job.id.clone())
                        .push_bind((n * CHUNK + i) as i32)
                        .push_bind(item.user_id.get())
                        .push_bind(item.profile.clone())
                        .push_bind("pending")
                        .push_bind(0i32);
                });
                q.build().execute(&mut *tx).await?;
            }
        })
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn sync_job(&self, id: &str) -> StorageResult<Option<(SyncJob, SyncJobCounts)>> {
        let job_sql = "SELECT id, portal_id, total, created_at, finished_at \
                       FROM efs_iam_sync_job WHERE id = ?";
        // Only the pending and failed items are counted, from the (job_id, state, seq,
        // attempts) index alone (migration 0007); the rest of the job's `total` items
        // (every item is pending, succeeded or failed) succeeded. A finished job of
        // 10,000 users reads its few failed entries, not all 10,000.
        let counts_sql = |hint: String| {
            format!(
                "SELECT COUNT(CASE WHEN state = 'pending' THEN 1 END), \
                 COUNT(CASE WHEN state = 'failed' THEN 1 END), \
                 COUNT(CASE WHEN state = 'pending' AND attempts > 0 THEN 1 END) \
                 FROM efs_iam_sync_job_item{hint} \
                 WHERE job_id = ? AND state IN ('pending', 'failed')"
            )
        };
        on_dialect!(self, pool => {
            let counts_sql = counts_sql(pool.force_index("job_state_seq"));
            let job: Option<SyncJob> =
                sqlx::query_as(job_sql).bind(id).fetch_optional(pool).await?;
            let Some(job) = job else { return Ok(None) };
            let (pending, failed, retrying): (i64, i64, i64) =
                sqlx::query_as(&counts_sql).bind(id).fetch_one(pool).await?;
            let succeeded = (i64::from(job.total) - pending - failed).max(0);
            Ok(Some((
                job,
                SyncJobCounts {
                    pending,
                    succeeded,
                    failed,
                    retrying,
                },
            )))
        })
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn sync_job_items(
        &self,
        id: &str,
        query: &SyncJobItemQuery,
    ) -> StorageResult<Vec<SyncJobItem>> {
        // (job_id, seq), or (job_id, state, seq, …) for one state (migration 0007).
        let index = if query.state.is_some() {
            "job_state_seq"
        } else {
            "job_seq"
        };
        Ok(on_dialect!(self, pool => {
            let mut q = pool.builder(format!(
                "SELECT {ITEM_COLS} FROM efs_iam_sync_job_item{} WHERE job_id = ",
                pool.force_index(index)
            ));
            q.push_bind(id.to_owned());
            if let Some(state) = query.state {
                q.push(" AND state = ").push_bind(state.as_str());
            }
            push_page(&mut q, "seq", query.after_seq, query.limit);
            q.build_query_as().fetch_all(pool).await?
        }))
    }

    #[tracing::instrument(skip(self, owner), err(level = "debug"))]
    async fn claim_sync_items(
        &self,
        owner: &str,
        now: NaiveDateTime,
        lease_until: NaiveDateTime,
        limit: u32,
    ) -> StorageResult<Vec<ClaimedSyncItem>> {
        self.claim::<i64, _>(&LEASES, owner, now, lease_until, limit)
            .await
    }

    #[tracing::instrument(skip(self, owner, result), level = "debug", err(level = "debug"))]
    async fn finish_sync_item(
        &self,
        id: i64,
        owner: &str,
        result: &ItemResult,
        now: NaiveDateTime,
    ) -> StorageResult<bool> {
        let (state, outcome, okta, error_type, error, field) = match result {
            ItemResult::Succeeded {
                outcome,
                okta_user_id,
            } => (
                ItemState::Succeeded,
                Some(outcome.as_str()),
                Some(okta_user_id.as_str()),
                None,
                None,
                None,
            ),
            ItemResult::Failed {
                error_type,
                error,
                field,
                okta_user_id,
            } => (
                ItemState::Failed,
                None,
                okta_user_id.as_deref(),
                Some(error_type.as_str()),
                Some(error.as_str()),
                field.as_deref(),
            ),
        };
        let set = [
            ("state", Value::Text(Some(state.as_str()))),
            ("outcome", Value::Text(outcome)),
            ("okta_user_id", Value::Text(okta)),
            ("error_type", Value::Text(error_type)),
            ("error", Value::Text(error)),
            ("error_field", Value::Text(field)),
            ("finished_at", Value::Time(Some(now))),
            ("next_attempt_at", Value::Time(None)),
            ("attempts", Value::Sql("attempts + 1")),
        ];
        self.finish(&LEASES, id, owner, &set).await
    }

    #[tracing::instrument(skip(self, owner, error), level = "debug", err(level = "debug"))]
    async fn retry_sync_item(
        &self,
        id: i64,
        owner: &str,
        attempts: i32,
        error: &str,
        next_attempt_at: NaiveDateTime,
    ) -> StorageResult<bool> {
        let set = [
            ("attempts", Value::Int(Some(attempts))),
            ("error", Value::Text(Some(error))),
            ("next_attempt_at", Value::Time(Some(next_attempt_at))),
        ];
        self.finish(&LEASES, id, owner, &set).await
    }

    #[tracing::instrument(skip(self, ids, owner), fields(items = ids.len()), err(level = "debug"))]
    async fn release_sync_items(&self, ids: &[i64], owner: &str) -> StorageResult<u64> {
        self.release(&LEASES, ids, owner).await
    }

    #[tracing::instrument(skip(self, ids, owner), level = "debug", fields(items = ids.len()), err(level = "debug"))]
    async fn renew_sync_item_leases(
        &self,
        ids: &[i64],
        owner: &str,
        until: NaiveDateTime,
    ) -> StorageResult<u64> {
        self.renew(&LEASES, ids, owner, until).await
    }

    #[tracing::instrument(skip(self), level = "debug", err(level = "debug"))]
    async fn finish_sync_jobs(&self, now: NaiveDateTime) -> StorageResult<Vec<String>> {
        let done_sql = "SELECT j.id FROM efs_iam_sync_job j WHERE j.finished_at IS NULL \
                        AND NOT EXISTS (SELECT 1 FROM efs_iam_sync_job_item i \
                                        WHERE i.job_id = j.id AND i.state = 'pending')";
        let finish_sql =
            "UPDATE efs_iam_sync_job SET finished_at = ? WHERE id = ? AND finished_at IS NULL";
        on_dialect!(self, pool => {
            let done: Vec<String> = sqlx::query_scalar(done_sql).fetch_all(pool).await?;
            for id in &done {
                sqlx::query(finish_sql).bind(now).bind(id).execute(pool).await?;
            }
            Ok(done)
        })
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn purge_sync_jobs(&self, before: NaiveDateTime) -> StorageResult<u64> {
        // Items first: SQLite enforces the cascade only with foreign keys on, and an
        // explicit delete does not depend on it.
        let items = "DELETE FROM efs_iam_sync_job_item WHERE job_id IN \
                     (SELECT id FROM efs_iam_sync_job WHERE finished_at < ?)";
        let jobs = "DELETE FROM efs_iam_sync_job WHERE finished_at < ?";
        Ok(on_dialect!(self, pool => {
            sqlx::query(items).bind(before).execute(pool).await?;
            sqlx::query(jobs).bind(before).execute(pool).await?.rows_affected()
        }))
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn sync_job_stats(&self, now: NaiveDateTime) -> StorageResult<JobStats> {
        let jobs_sql = "SELECT COUNT(*) FROM efs_iam_sync_job WHERE finished_at IS NULL";
        let items_sql = "SELECT COUNT(*), COUNT(CASE WHEN locked_until >= ? THEN 1 END) \
                         FROM efs_iam_sync_job_item WHERE state = 'pending'";
        let (unfinished, (pending, in_progress)): (i64, (i64, i64)) = on_dialect!(self, pool => (
            sqlx::query_scalar(jobs_sql).fetch_one(pool).await?,
            sqlx::query_as(items_sql).bind(now).fetch_one(pool).await?,
        ));
        Ok(JobStats {
            unfinished_jobs: unfinished,
            pending_items: pending,
            in_progress_items: in_progress,
        })
    }
}
