//! Storage for the sync engine: named leases that serialise the sync of one user,
//! claims on the unassignment queue, and batch sync jobs.
//!
//! Every claim follows one pattern, so several instances can share one database and a
//! crash loses nothing:
//!
//! 1. a short transaction picks due rows nobody holds (MySQL `FOR UPDATE SKIP LOCKED`
//!    under READ COMMITTED, SQLite `BEGIN IMMEDIATE`) and stamps them with a lease
//!    (`locked_by` = instance id, `locked_until`);
//! 2. the work (Okta calls) happens outside any transaction;
//! 3. the outcome is written afterwards. A row whose lease ran out (its holder crashed
//!    or hung) is due again, so work is done at least once; every Okta call involved is
//!    idempotent, which makes "at least once" safe.
//!
//! Times are the instances' clocks in UTC, whole seconds, like every other timestamp
//! efs-iam writes; leases are minutes long, so ordinary NTP skew does not matter.

use async_trait::async_trait;
use chrono::NaiveDateTime;
use sqlx::FromRow;

use super::{PortalUserReference, StorageResult, Unassignment};
use crate::domain::{EfsUserId, OktaUserId, PortalId, PortalUserStatus};

/// Which EFS core table a user id belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EfsUserKind {
    /// An EFS-Admin user (`users.uid`).
    Admin,
    /// A portal user (`panelists.uid`).
    Panelist,
}

/// Unassignment queue figures for `/sync/status`, over all portals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Not dead: waiting, backing off or in progress.
    pub pending: i64,
    /// Pending and due now (not backing off, not leased).
    pub due: i64,
    /// Leased by an instance right now.
    pub in_progress: i64,
    pub dead: i64,
    /// Dead letters without a portal (legacy rows).
    pub dead_without_portal: i64,
    pub oldest_pending_at: Option<NaiveDateTime>,
}

/// What a requeue call did, per requested row.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequeueOutcome {
    /// Rows made pending again.
    pub requeued: u64,
    /// Rows left as they were, with the reason.
    pub skipped: Vec<(i32, RequeueSkip)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequeueSkip {
    NotFound,
    NotDead,
    OtherPortal,
    /// A legacy row without an Okta user id cannot be processed, requeued or not.
    NoOktaUserId,
}

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

/// What the sync engine keeps in the database besides the `iam_*` rows it shares with
/// the data API.
#[async_trait]
pub trait SyncStore: Send + Sync + 'static {
    // --- named leases (efs_iam_sync_lock) ---
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

    // --- EFS core and references ---
    /// Whether EFS has the user. Always `true` on SQLite, which has no EFS core tables.
    async fn efs_user_exists(&self, kind: EfsUserKind, user: EfsUserId) -> StorageResult<bool>;
    /// The panelist's references in every portal, newest first.
    async fn portal_references_of_user(
        &self,
        user: EfsUserId,
    ) -> StorageResult<Vec<PortalUserReference>>;
    /// Sets the reference's status to `status` (failed, or deprovisioned when the Okta
    /// user is); creates it (with `has_data_changes`) when there is none. The Okta id is
    /// set when one is given and kept otherwise; `has_data_changes` of an existing row is
    /// kept: the user still needs a sync.
    async fn mark_portal_sync_failed(
        &self,
        portal: PortalId,
        user: EfsUserId,
        okta_user_id: Option<&OktaUserId>,
        status: PortalUserStatus,
    ) -> StorageResult<()>;

    // --- iam_portal_user_group_unassignment_queue ---
    /// Dead-letters pending rows that can never be processed: no portal (legacy rows)
    /// or no Okta user id. Returns how many.
    async fn dead_letter_unroutable_unassignments(&self, now: NaiveDateTime) -> StorageResult<u64>;
    /// Leases up to `limit` due rows, oldest first.
    async fn claim_unassignments(
        &self,
        owner: &str,
        now: NaiveDateTime,
        lease_until: NaiveDateTime,
        limit: u32,
    ) -> StorageResult<Vec<Unassignment>>;
    /// Okta confirmed the removal: the row goes. `false` when it was already gone.
    async fn complete_unassignment(&self, id: i32) -> StorageResult<bool>;
    /// Records a failed attempt of a row `owner` holds: `attempts`, `last_error`, the
    /// next attempt (or `dead_at` for a dead letter); the lease is given back. `false`
    /// when the lease was lost to another instance (which then owns the outcome).
    async fn fail_unassignment(
        &self,
        id: i32,
        owner: &str,
        attempts: i32,
        last_error: &str,
        next_attempt_at: Option<NaiveDateTime>,
        dead_at: Option<NaiveDateTime>,
    ) -> StorageResult<bool>;
    /// Gives leases back without counting an attempt (shutdown, systemic failures).
    async fn release_unassignments(&self, ids: &[i32], owner: &str) -> StorageResult<u64>;
    /// Makes dead letters pending again (attempts reset; `last_error` kept for the
    /// record). `ids: None` = every dead letter of the portal; listed rows without a
    /// portal are given this one.
    async fn requeue_unassignments(
        &self,
        portal: PortalId,
        ids: Option<&[i32]>,
    ) -> StorageResult<RequeueOutcome>;
    /// Dead letters of every portal (legacy rows without one included), oldest first.
    async fn list_dead_unassignments(
        &self,
        without_portal_only: bool,
        after_id: Option<i32>,
        limit: u32,
    ) -> StorageResult<Vec<Unassignment>>;
    async fn unassignment_queue_stats(&self, now: NaiveDateTime) -> StorageResult<QueueStats>;

    // --- efs_iam_sync_job(_item) ---
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
    /// Marks jobs without pending items finished; returns their ids.
    async fn finish_sync_jobs(&self, now: NaiveDateTime) -> StorageResult<Vec<String>>;
    /// Deletes jobs (and items) finished before `before`.
    async fn purge_sync_jobs(&self, before: NaiveDateTime) -> StorageResult<u64>;
    async fn sync_job_stats(&self, now: NaiveDateTime) -> StorageResult<JobStats>;
}
