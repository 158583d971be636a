//! `iam_portal_user_group_unassignment_queue`: portal users to remove from their
//! portal's Okta group after a mass delete in EFS. EFS-Admin enqueues; the unassignment
//! worker (`sync::unassignments`) claims, completes or fails rows; dead letters wait to
//! be requeued.
//!
//! Claims, leases and outcomes are the leased-queue statements of `leases.rs`; this
//! file says which rows are due (pending, routable, not backing off) and that a row
//! whose removal Okta confirmed is deleted. Removing a group member is idempotent,
//! which makes "at least once" safe.

use async_trait::async_trait;
use chrono::NaiveDateTime;
use sqlx::FromRow;

use super::leases::{LeasedQueue, ReadClaimed, Value};
use super::sql::{in_transaction, on_dialect, push_ids, push_page, SqlStore, CHUNK};
use super::{now, StorageResult};
use crate::domain::{EfsUserId, OktaUserId, PortalId};

#[derive(Debug, Clone)]
pub struct NewUnassignment {
    pub user_id: EfsUserId,
    pub okta_user_id: OktaUserId,
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unassignment {
    pub id: i32,
    pub portal_id: Option<i32>,
    pub user_id: Option<i32>,
    pub okta_user_id: Option<String>,
    pub email: Option<String>,
    pub created_at: NaiveDateTime,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<NaiveDateTime>,
    /// Set once retries are exhausted: a dead letter, kept until re-queued.
    pub dead_at: Option<NaiveDateTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnassignmentState {
    Pending,
    Dead,
}

#[derive(Debug, Clone)]
pub struct UnassignmentQuery {
    pub state: Option<UnassignmentState>,
    pub after_id: Option<i32>,
    pub limit: u32,
}

/// A portal's queue counts stop at this many rows per state: exact up to it, beyond it
/// the count says this and a flag says it is a lower bound. Reading at most this many
/// index entries keeps the listing flat at EFS's size (issue 24), where an exact count
/// read every queued row of a large portal; a per-portal counter would drift whenever
/// anything else writes the seed's queue table, as EFS's PHP code does.
pub const COUNT_CAP: i64 = 10_000;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnassignmentCounts {
    pub pending: i64,
    pub dead: i64,
    /// More than [`COUNT_CAP`] are pending: `pending` is a lower bound.
    pub pending_capped: bool,
    /// More than [`COUNT_CAP`] are dead: `dead` is a lower bound.
    pub dead_capped: bool,
}

/// Queue figures for `/sync/status`, over all portals.
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

#[async_trait]
pub trait UnassignmentQueueStore: Send + Sync + 'static {
    // --- EFS-Admin's side ---
    /// All or nothing, in one transaction.
    async fn enqueue_unassignments(
        &self,
        portal: PortalId,
        users: &[NewUnassignment],
    ) -> StorageResult<u64>;
    async fn list_unassignments(
        &self,
        portal: PortalId,
        query: &UnassignmentQuery,
    ) -> StorageResult<Vec<Unassignment>>;
    async fn unassignment_counts(&self, portal: PortalId) -> StorageResult<UnassignmentCounts>;

    // --- the worker's side ---
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
    /// Okta confirmed the removal: the row goes, if `owner` still holds its lease.
    /// `false` when it does not (the row is another instance's, or gone).
    async fn complete_unassignment(&self, id: i32, owner: &str) -> StorageResult<bool>;
    /// The heartbeat of a step: extends the leases `owner` still holds among `ids`.
    async fn renew_unassignment_leases(
        &self,
        ids: &[i32],
        owner: &str,
        until: NaiveDateTime,
    ) -> StorageResult<u64>;
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

    // --- dead letters ---
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
}

const QUEUE: &str = "iam_portal_user_group_unassignment_queue";
const COLS: &str = "id, portal_id, user_id, uuid, email, created_at, attempts, last_error, \
                    next_attempt_at, dead_at";
/// Pending rows a worker may take now.
const DUE: &str = "dead_at IS NULL AND portal_id IS NOT NULL AND uuid IS NOT NULL \
                   AND (next_attempt_at IS NULL OR next_attempt_at <= ?) \
                   AND (locked_until IS NULL OR locked_until < ?)";

/// The queue as the leased-queue statements see it.
const LEASES: LeasedQueue = LeasedQueue {
    table: QUEUE,
    key: "id",
    due: DUE,
    order: "id",
    held: "",
    on_claim: "",
    read: ReadClaimed {
        columns: COLS,
        from: QUEUE,
        key: "id",
        order: "id",
    },
};

#[derive(FromRow)]
struct UnassignmentRow {
    id: i32,
    portal_id: Option<i32>,
    user_id: Option<i32>,
    uuid: Option<Vec<u8>>,
    email: Option<String>,
    created_at: NaiveDateTime,
    attempts: i32,
    last_error: Option<String>,
    next_attempt_at: Option<NaiveDateTime>,
    dead_at: Option<NaiveDateTime>,
}

impl From<UnassignmentRow> for Unassignment {
    fn from(r: UnassignmentRow) -> Self {
        Self {
            id: r.id,
            portal_id: r.portal_id,
            user_id: r.user_id,
            okta_user_id: r.uuid.as_deref().map(OktaUserId::from_stored),
            email: r.email,
            created_at: r.created_at,
            attempts: r.attempts,
            last_error: r.last_error,
            next_attempt_at: r.next_attempt_at,
            dead_at: r.dead_at,
        }
    }
}

fn rows(rows: Vec<UnassignmentRow>) -> Vec<Unassignment> {
    rows.into_iter().map(Into::into).collect()
}

/// What a requeue looks at: id, portal_id, uuid, dead_at.
type RequeueRow = (i32, Option<i32>, Option<Vec<u8>>, Option<NaiveDateTime>);

/// Why a row of a requeue request is left as it is, if it is.
fn requeue_skip(row: Option<&RequeueRow>, portal: PortalId) -> Option<RequeueSkip> {
    match row {
        None => Some(RequeueSkip::NotFound),
        Some((_, _, _, None)) => Some(RequeueSkip::NotDead),
        Some((_, Some(p), _, _)) if *p != portal.get() => Some(RequeueSkip::OtherPortal),
        Some((_, _, uuid, _)) if uuid.as_deref().is_none_or(|u| u.iter().all(|b| *b == 0)) => {
            Some(RequeueSkip::NoOktaUserId)
        }
        Some(_) => None,
    }
}

#[async_trait]
impl UnassignmentQueueStore for SqlStore {
    #[tracing::instrument(skip(self, users), fields(users = users.len()), err(level = "debug"))]
    async fn enqueue_unassignments(
        &self,
        portal: PortalId,
        users: &[NewUnassignment],
    ) -> StorageResult<u64> {
        let now = now();
        in_transaction!(self, begin_write, pool, tx => {
            let mut inserted = 0;
            for chunk in users.chunks(CHUNK) {
                let mut q = pool.builder(format!(
                    "INSERT INTO {QUEUE} (portal_id, user_id, uuid, email, created_at, attempts) "
                ));
                q.push_values(chunk, |mut row, u| {
                    row.push_bind(portal.get())
                        .push_bind(u.user_id.get())
                        .push_bind(u.okta_user_id.to_stored())
                        .push_bind(u.email.clone())
                        .push_bind(now)
                        .push_bind(0i32);
                });
                inserted += q.build().execute(&mut *tx).await?.rows_affected();
            }
            inserted
        })
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn list_unassignments(
        &self,
        portal: PortalId,
        query: &UnassignmentQuery,
    ) -> StorageResult<Vec<Unassignment>> {
        // (portal_id, id) orders a portal's rows; (portal_id, dead_at) its pending ones
        // (dead_at IS NULL is an equality, so the index gives them in id order). Dead
        // letters have many dead_at values: their page is chosen from that index alone
        // (it holds the id) and only the page's rows are read, not every dead row of
        // the portal to sort them (migration 0007; issue 24).
        let found: Vec<UnassignmentRow> = on_dialect!(self, pool => {
            let dead = query.state == Some(UnassignmentState::Dead);
            let mut q = if dead {
                pool.builder(format!(
                    "SELECT {COLS} FROM {QUEUE} WHERE id IN (SELECT id FROM (SELECT id FROM {QUEUE}{} \
                     WHERE dead_at IS NOT NULL AND portal_id = ",
                    pool.force_index("portal_id_dead_at")
                ))
            } else {
                let index = match query.state {
                    Some(UnassignmentState::Pending) => "portal_id_dead_at",
                    _ => "portal_id_id",
                };
                pool.builder(format!(
                    "SELECT {COLS} FROM {QUEUE}{} WHERE portal_id = ",
                    pool.force_index(index)
                ))
            };
            q.push_bind(portal.get());
            if query.state == Some(UnassignmentState::Pending) {
                q.push(" AND dead_at IS NULL");
            }
            push_page(&mut q, "id", query.after_id, query.limit);
            if dead {
                q.push(") page) ORDER BY id");
            }
            q.build_query_as().fetch_all(pool).await?
        });
        Ok(rows(found))
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn unassignment_counts(&self, portal: PortalId) -> StorageResult<UnassignmentCounts> {
        // Two counts of ranges of the (portal_id, dead_at) index, each answered from the
        // index alone and stopped after COUNT_CAP + 1 entries, so a portal with 20,000
        // queued reads 10,001 entries at most per state. Two statements, not one
        // snapshot: a row that dies between them can be counted in both or neither.
        // The counts are a display for EFS-Admin and operators; nothing decides on them.
        let count = |hint: String, dead: &str| {
            format!(
                "SELECT COUNT(*) FROM (SELECT 1 FROM {QUEUE}{hint} \
                 WHERE portal_id = ? AND dead_at IS {dead} LIMIT {}) capped",
                COUNT_CAP + 1
            )
        };
        let (pending, dead): (i64, i64) = on_dialect!(self, pool => {
            let hint = pool.force_index("portal_id_dead_at");
            let pending = sqlx::query_scalar(&count(hint.clone(), "NULL"))
                .bind(portal.get())
                .fetch_one(pool)
                .await?;
            let dead = sqlx::query_scalar(&count(hint, "NOT NULL"))
                .bind(portal.get())
                .fetch_one(pool)
                .await?;
            (pending, dead)
        });
        Ok(UnassignmentCounts {
            pending: pending.min(COUNT_CAP),
            dead: dead.min(COUNT_CAP),
            pending_capped: pending > COUNT_CAP,
            dead_capped: dead > COUNT_CAP,
        })
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn dead_letter_unroutable_unassignments(&self, now: NaiveDateTime) -> StorageResult<u64> {
        let dead_letter = format!(
            "UPDATE {QUEUE} SET dead_at = ?, last_error = ?, locked_by = NULL, \
             locked_until = NULL WHERE dead_at IS NULL AND "
        );
        let no_portal = format!("{dead_letter}portal_id IS NULL");
        let no_okta_id = format!("{dead_letter}portal_id IS NOT NULL AND uuid IS NULL");
        let cases = [
            (
                no_portal,
                "legacy row without portal_id: efs-iam cannot tell which Okta group to \
                 remove the user from; requeue it with its portal \
                 (POST /api/v1/sync/unassignments/requeue)",
            ),
            (
                no_okta_id,
                "row without an Okta user id (uuid): there is nobody to remove from the group",
            ),
        ];
        let mut dead = 0;
        for (sql, why) in &cases {
            dead += on_dialect!(self, pool => {
                sqlx::query(sql).bind(now).bind(*why).execute(pool).await?.rows_affected()
            });
        }
        Ok(dead)
    }

    #[tracing::instrument(skip(self, owner), err(level = "debug"))]
    async fn claim_unassignments(
        &self,
        owner: &str,
        now: NaiveDateTime,
        lease_until: NaiveDateTime,
        limit: u32,
    ) -> StorageResult<Vec<Unassignment>> {
        let claimed: Vec<UnassignmentRow> = self
            .claim::<i32, _>(&LEASES, owner, now, lease_until, limit)
            .await?;
        Ok(rows(claimed))
    }

    #[tracing::instrument(skip(self, owner), level = "debug", err(level = "debug"))]
    async fn complete_unassignment(&self, id: i32, owner: &str) -> StorageResult<bool> {
        self.complete(&LEASES, id, owner).await
    }

    #[tracing::instrument(skip(self, ids, owner), level = "debug", fields(rows = ids.len()), err(level = "debug"))]
    async fn renew_unassignment_leases(
        &self,
        ids: &[i32],
        owner: &str,
        until: NaiveDateTime,
    ) -> StorageResult<u64> {
        self.renew(&LEASES, ids, owner, until).await
    }

    #[tracing::instrument(skip(self, owner, last_error), err(level = "debug"))]
    async fn fail_unassignment(
        &self,
        id: i32,
        owner: &str,
        attempts: i32,
        last_error: &str,
        next_attempt_at: Option<NaiveDateTime>,
        dead_at: Option<NaiveDateTime>,
    ) -> StorageResult<bool> {
        let set = [
            ("attempts", Value::Int(Some(attempts))),
            ("last_error", Value::Text(Some(last_error))),
            ("next_attempt_at", Value::Time(next_attempt_at)),
            ("dead_at", Value::Time(dead_at)),
        ];
        self.finish(&LEASES, id, owner, &set).await
    }

    #[tracing::instrument(skip(self, ids, owner), fields(rows = ids.len()), err(level = "debug"))]
    async fn release_unassignments(&self, ids: &[i32], owner: &str) -> StorageResult<u64> {
        self.release(&LEASES, ids, owner).await
    }

    #[tracing::instrument(skip(self, ids), err(level = "debug"))]
    async fn requeue_unassignments(
        &self,
        portal: PortalId,
        ids: Option<&[i32]>,
    ) -> StorageResult<RequeueOutcome> {
        const RESET: &str = "dead_at = NULL, attempts = 0, next_attempt_at = NULL, \
                             locked_by = NULL, locked_until = NULL";
        in_transaction!(self, begin_write, pool, tx => {
            let mut outcome = RequeueOutcome::default();
            let Some(ids) = ids else {
                outcome.requeued = sqlx::query(&format!(
                    "UPDATE {QUEUE} SET portal_id = ?, {RESET} \
                     WHERE portal_id = ? AND dead_at IS NOT NULL AND uuid IS NOT NULL"
                ))
                .bind(portal.get())
                .bind(portal.get())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                tx.commit().await?;
                return Ok(outcome);
            };
            let mut eligible = Vec::new();
            for chunk in ids.chunks(CHUNK) {
                let mut q = pool.builder(format!(
                    "SELECT id, portal_id, uuid, dead_at FROM {QUEUE} WHERE id"
                ));
                push_ids(&mut q, chunk);
                q.push(pool.row_lock());
                let found: Vec<RequeueRow> = q.build_query_as().fetch_all(&mut *tx).await?;
                for id in chunk {
                    match requeue_skip(found.iter().find(|r| r.0 == *id), portal) {
                        Some(reason) => outcome.skipped.push((*id, reason)),
                        None if !eligible.contains(id) => eligible.push(*id),
                        None => {}
                    }
                }
            }
            for chunk in eligible.chunks(CHUNK) {
                let mut q = pool.builder(format!("UPDATE {QUEUE} SET portal_id = "));
                q.push_bind(portal.get()).push(format!(", {RESET} WHERE id"));
                push_ids(&mut q, chunk);
                outcome.requeued += q.build().execute(&mut *tx).await?.rows_affected();
            }
            outcome
        })
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn list_dead_unassignments(
        &self,
        without_portal_only: bool,
        after_id: Option<i32>,
        limit: u32,
    ) -> StorageResult<Vec<Unassignment>> {
        let found: Vec<UnassignmentRow> = on_dialect!(self, pool => {
            // Dead letters without a portal are a (portal_id IS NULL) range of
            // (portal_id, id); all dead letters are read in id order.
            let hint = if without_portal_only {
                pool.force_index("portal_id_id")
            } else {
                String::new()
            };
            let mut q = pool.builder(format!(
                "SELECT {COLS} FROM {QUEUE}{hint} WHERE dead_at IS NOT NULL"
            ));
            if without_portal_only {
                q.push(" AND portal_id IS NULL");
            }
            push_page(&mut q, "id", after_id, limit);
            q.build_query_as().fetch_all(pool).await?
        });
        Ok(rows(found))
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn unassignment_queue_stats(&self, now: NaiveDateTime) -> StorageResult<QueueStats> {
        let sql = format!(
            "SELECT COUNT(CASE WHEN dead_at IS NULL THEN 1 END), \
             COUNT(CASE WHEN {DUE} THEN 1 END), \
             COUNT(CASE WHEN dead_at IS NULL AND locked_until >= ? THEN 1 END), \
             COUNT(CASE WHEN dead_at IS NOT NULL THEN 1 END), \
             COUNT(CASE WHEN dead_at IS NOT NULL AND portal_id IS NULL THEN 1 END), \
             MIN(CASE WHEN dead_at IS NULL THEN created_at END) \
             FROM {QUEUE}"
        );
        let row: (i64, i64, i64, i64, i64, Option<NaiveDateTime>) = on_dialect!(self, pool => {
            sqlx::query_as(&sql)
                .bind(now)
                .bind(now)
                .bind(now)
                .fetch_one(pool)
                .await?
        });
        Ok(QueueStats {
            pending: row.0,
            due: row.1,
            in_progress: row.2,
            dead: row.3,
            dead_without_portal: row.4,
            oldest_pending_at: row.5,
        })
    }
}
