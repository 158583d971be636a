//! `efs_iam_adoption_run` and `efs_iam_adoption_item` (migration 0008): bulk adoption
//! of the Okta users EFS's tables already reference. A run first collects its items
//! (one statement: every distinct Okta user id of the admin and portal user references
//! and the unassignment queue), then each item is checked and adopted by the adoption
//! worker. Runs and items are leased queues (`leases.rs`): a run survives a restart,
//! and instances share it.

use std::collections::BTreeMap;

use async_trait::async_trait;
use chrono::NaiveDateTime;
use sqlx::FromRow;

use super::leases::{LeasedQueue, ReadClaimed, Value, PENDING_AND_DUE};
use super::sql::{in_transaction, on_dialect, push_page, SqlStore};
use super::StorageResult;
use crate::domain::okta_user_id::STORED_WIDTH;
use crate::domain::OktaUserId;

/// Run states: `collecting`, `checking`, `succeeded`.
pub mod run_state {
    pub const COLLECTING: &str = "collecting";
    pub const CHECKING: &str = "checking";
    pub const SUCCEEDED: &str = "succeeded";
}

/// An item's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemVerdict {
    /// Brought under management by this run.
    Adopted,
    /// efs-iam managed it already.
    AlreadyManaged,
    /// A dry run: would be adopted.
    WouldAdopt,
    /// Not adoptable (no such Okta user, deactivated, admin roles, not an Okta id).
    Refused,
    /// Okta could not be asked, after the retries.
    Failed,
}

impl ItemVerdict {
    pub const ALL: [Self; 5] = [
        Self::Adopted,
        Self::AlreadyManaged,
        Self::WouldAdopt,
        Self::Refused,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Adopted => "adopted",
            Self::AlreadyManaged => "already_managed",
            Self::WouldAdopt => "would_adopt",
            Self::Refused => "refused",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct AdoptionRun {
    pub id: String,
    pub dry_run: bool,
    pub state: String,
    pub requested_by: String,
    pub created_at: NaiveDateTime,
    pub collected_at: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
}

/// Items of a run by state (`pending` and every [`ItemVerdict`]).
pub type AdoptionCounts = BTreeMap<String, i64>;

/// An item as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdoptionItem {
    pub id: i64,
    pub okta_user_id: String,
    pub state: String,
    pub reason: Option<String>,
    pub login: Option<String>,
    pub attempts: i32,
    pub finished_at: Option<NaiveDateTime>,
}

#[derive(FromRow)]
struct ItemRow {
    id: i64,
    okta_user_id: Vec<u8>,
    state: String,
    reason: Option<String>,
    login: Option<String>,
    attempts: i32,
    finished_at: Option<NaiveDateTime>,
}

/// An item a worker holds, with what its run asks.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ClaimedAdoptionItem {
    pub id: i64,
    pub run_id: String,
    /// As stored (the legacy column's bytes).
    pub okta_user_id: Vec<u8>,
    pub attempts: i32,
    pub dry_run: bool,
    pub requested_by: String,
}

#[async_trait]
pub trait AdoptionStore: Send + Sync + 'static {
    async fn create_adoption_run(
        &self,
        id: &str,
        dry_run: bool,
        requested_by: &str,
        now: NaiveDateTime,
    ) -> StorageResult<()>;
    async fn adoption_run(&self, id: &str) -> StorageResult<Option<(AdoptionRun, AdoptionCounts)>>;
    /// One page of a run's items in id order, of one state or all.
    async fn adoption_items(
        &self,
        run_id: &str,
        state: Option<&str>,
        after_id: Option<i32>,
        limit: u32,
    ) -> StorageResult<Vec<AdoptionItem>>;
    /// Leases one run whose items are still to be collected.
    async fn claim_adoption_collection(
        &self,
        owner: &str,
        now: NaiveDateTime,
        lease_until: NaiveDateTime,
    ) -> StorageResult<Option<AdoptionRun>>;
    /// Lists the run's items, every distinct Okta user id the references and the
    /// unassignment queue hold, and moves the run on to `checking`; one transaction,
    /// only by the run's holder. How many items, `None` when the lease was lost.
    async fn collect_adoption_items(
        &self,
        run_id: &str,
        owner: &str,
        now: NaiveDateTime,
    ) -> StorageResult<Option<u64>>;
    async fn claim_adoption_items(
        &self,
        owner: &str,
        now: NaiveDateTime,
        lease_until: NaiveDateTime,
        limit: u32,
    ) -> StorageResult<Vec<ClaimedAdoptionItem>>;
    async fn renew_adoption_items(
        &self,
        ids: &[i64],
        owner: &str,
        until: NaiveDateTime,
    ) -> StorageResult<u64>;
    /// Records an item's outcome; `false` when the lease was lost.
    async fn finish_adoption_item(
        &self,
        id: i64,
        owner: &str,
        verdict: ItemVerdict,
        reason: Option<&str>,
        login: Option<&str>,
        now: NaiveDateTime,
    ) -> StorageResult<bool>;
    /// A failed attempt to be retried at `next_attempt_at`.
    async fn retry_adoption_item(
        &self,
        id: i64,
        owner: &str,
        reason: &str,
        next_attempt_at: NaiveDateTime,
    ) -> StorageResult<bool>;
    async fn release_adoption_items(&self, ids: &[i64], owner: &str) -> StorageResult<u64>;
    /// Marks runs whose items are all checked `succeeded`; their ids.
    async fn finish_adoption_runs(&self, now: NaiveDateTime) -> StorageResult<Vec<String>>;
}

const RUNS: &str = "efs_iam_adoption_run";
const ITEMS: &str = "efs_iam_adoption_item";
const RUN_COLS: &str = "id, dry_run, state, requested_by, created_at, collected_at, finished_at";

/// Runs waiting for their items to be listed.
const RUN_LEASES: LeasedQueue = LeasedQueue {
    table: RUNS,
    key: "id",
    due: "state = 'collecting' AND (locked_until IS NULL OR locked_until < ?)",
    order: "created_at, id",
    held: " AND state = 'collecting'",
    on_claim: "",
    read: ReadClaimed {
        columns: RUN_COLS,
        from: RUNS,
        key: "id",
        order: "created_at, id",
    },
};

/// Items waiting to be checked.
const ITEM_LEASES: LeasedQueue = LeasedQueue {
    table: ITEMS,
    key: "id",
    due: PENDING_AND_DUE,
    order: "id",
    held: " AND state = 'pending'",
    on_claim: "",
    read: ReadClaimed {
        columns: "i.id, i.run_id, i.okta_user_id, i.attempts, r.dry_run, r.requested_by",
        from: "efs_iam_adoption_item i JOIN efs_iam_adoption_run r ON r.id = i.run_id",
        key: "i.id",
        order: "i.id",
    },
};

#[async_trait]
impl AdoptionStore for SqlStore {
    #[tracing::instrument(skip(self, requested_by), err(level = "debug"))]
    async fn create_adoption_run(
        &self,
        id: &str,
        dry_run: bool,
        requested_by: &str,
        now: NaiveDateTime,
    ) -> StorageResult<()> {
        let sql = format!(
            "INSERT INTO {RUNS} (id, dry_run, state, requested_by, created_at) \
             VALUES (?, ?, 'collecting', ?, ?)"
        );
        on_dialect!(self, pool => {
            sqlx::query(&sql)
                .bind(id)
                .bind(dry_run)
                .bind(requested_by)
                .bind(now)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn adoption_run(&self, id: &str) -> StorageResult<Option<(AdoptionRun, AdoptionCounts)>> {
        let run_sql = format!("SELECT {RUN_COLS} FROM {RUNS} WHERE id = ?");
        let counts_sql =
            format!("SELECT state, COUNT(*) FROM {ITEMS} WHERE run_id = ? GROUP BY state");
        on_dialect!(self, pool => {
            let run: Option<AdoptionRun> =
                sqlx::query_as(&run_sql).bind(id).fetch_optional(pool).await?;
            let Some(run) = run else { return Ok(None) };
            let rows: Vec<(String, i64)> =
                sqlx::query_as(&counts_sql).bind(id).fetch_all(pool).await?;
            let mut counts: AdoptionCounts = std::iter::once("pending")
                .chain(ItemVerdict::ALL.iter().map(|v| v.as_str()))
                .map(|s| (s.to_owned(), 0))
                .collect();
            counts.extend(rows);
            Ok(Some((run, counts)))
        })
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn adoption_items(
        &self,
        run_id: &str,
        state: Option<&str>,
        after_id: Option<i32>,
        limit: u32,
    ) -> StorageResult<Vec<AdoptionItem>> {
        let rows: Vec<ItemRow> = on_dialect!(self, pool => {
            let mut q = pool.builder(format!(
                "SELECT id, okta_user_id, state, reason, login, attempts, finished_at \
                 FROM {ITEMS} WHERE run_id = "
            ));
            q.push_bind(run_id.to_owned());
            if let Some(state) = state {
                q.push(" AND state = ").push_bind(state.to_owned());
            }
            push_page(&mut q, "id", after_id, limit);
            q.build_query_as().fetch_all(pool).await?
        });
        Ok(rows
            .into_iter()
            .map(|r| AdoptionItem {
                id: r.id,
                okta_user_id: OktaUserId::from_stored(&r.okta_user_id),
                state: r.state,
                reason: r.reason,
                login: r.login,
                attempts: r.attempts,
                finished_at: r.finished_at,
            })
            .collect())
    }

    #[tracing::instrument(skip(self, owner), err(level = "debug"))]
    async fn claim_adoption_collection(
        &self,
        owner: &str,
        now: NaiveDateTime,
        lease_until: NaiveDateTime,
    ) -> StorageResult<Option<AdoptionRun>> {
        let runs: Vec<AdoptionRun> = self
            .claim::<String, _>(&RUN_LEASES, owner, now, lease_until, 1)
            .await?;
        Ok(runs.into_iter().next())
    }

    #[tracing::instrument(skip(self, owner), err(level = "debug"))]
    async fn collect_adoption_items(
        &self,
        run_id: &str,
        owner: &str,
        now: NaiveDateTime,
    ) -> StorageResult<Option<u64>> {
        // Every reference column holds the id as BINARY(20); all-NUL is "no id".
        let insert = format!(
            "INSERT INTO {ITEMS} (run_id, okta_user_id, state, attempts) \
             SELECT ?, s.uuid, 'pending', 0 FROM ( \
               SELECT uuid FROM iam_user_reference WHERE uuid IS NOT NULL \
               UNION SELECT uuid FROM iam_portal_user_reference WHERE uuid IS NOT NULL \
               UNION SELECT uuid FROM iam_portal_user_group_unassignment_queue \
                 WHERE uuid IS NOT NULL \
             ) s WHERE s.uuid <> ? AND NOT EXISTS \
               (SELECT 1 FROM {ITEMS} x WHERE x.run_id = ? AND x.okta_user_id = s.uuid)"
        );
        let none = vec![0u8; STORED_WIDTH];
        in_transaction!(self, begin_write, pool, tx => {
            let held = sqlx::query(&format!(
                "SELECT id FROM {RUNS} WHERE id = ? AND locked_by = ? AND state = 'collecting'{}",
                pool.row_lock()
            ))
            .bind(run_id)
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
            if !held {
                return Ok(None);
            }
            let items = sqlx::query(&insert)
                .bind(run_id)
                .bind(&none)
                .bind(run_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query(&format!(
                "UPDATE {RUNS} SET state = 'checking', collected_at = ?, locked_by = NULL, \
                 locked_until = NULL WHERE id = ?"
            ))
            .bind(now)
            .bind(run_id)
            .execute(&mut *tx)
            .await?;
            Some(items)
        })
    }

    #[tracing::instrument(skip(self, owner), err(level = "debug"))]
    async fn claim_adoption_items(
        &self,
        owner: &str,
        now: NaiveDateTime,
        lease_until: NaiveDateTime,
        limit: u32,
    ) -> StorageResult<Vec<ClaimedAdoptionItem>> {
        self.claim::<i64, _>(&ITEM_LEASES, owner, now, lease_until, limit)
            .await
    }

    #[tracing::instrument(skip(self, ids, owner), level = "debug", fields(items = ids.len()), err(level = "debug"))]
    async fn renew_adoption_items(
        &self,
        ids: &[i64],
        owner: &str,
        until: NaiveDateTime,
    ) -> StorageResult<u64> {
        self.renew(&ITEM_LEASES, ids, owner, until).await
    }

    #[tracing::instrument(
        skip(self, owner, reason, login),
        level = "debug",
        err(level = "debug")
    )]
    async fn finish_adoption_item(
        &self,
        id: i64,
        owner: &str,
        verdict: ItemVerdict,
        reason: Option<&str>,
        login: Option<&str>,
        now: NaiveDateTime,
    ) -> StorageResult<bool> {
        let set = [
            ("state", Value::Text(Some(verdict.as_str()))),
            ("reason", Value::Text(reason)),
            ("login", Value::Text(login)),
            ("finished_at", Value::Time(Some(now))),
            ("next_attempt_at", Value::Time(None)),
            ("attempts", Value::Sql("attempts + 1")),
        ];
        self.finish(&ITEM_LEASES, id, owner, &set).await
    }

    #[tracing::instrument(skip(self, owner, reason), level = "debug", err(level = "debug"))]
    async fn retry_adoption_item(
        &self,
        id: i64,
        owner: &str,
        reason: &str,
        next_attempt_at: NaiveDateTime,
    ) -> StorageResult<bool> {
        let set = [
            ("reason", Value::Text(Some(reason))),
            ("next_attempt_at", Value::Time(Some(next_attempt_at))),
            ("attempts", Value::Sql("attempts + 1")),
        ];
        self.finish(&ITEM_LEASES, id, owner, &set).await
    }

    #[tracing::instrument(skip(self, ids, owner), fields(items = ids.len()), err(level = "debug"))]
    async fn release_adoption_items(&self, ids: &[i64], owner: &str) -> StorageResult<u64> {
        self.release(&ITEM_LEASES, ids, owner).await
    }

    #[tracing::instrument(skip(self), level = "debug", err(level = "debug"))]
    async fn finish_adoption_runs(&self, now: NaiveDateTime) -> StorageResult<Vec<String>> {
        let done = format!(
            "SELECT r.id FROM {RUNS} r WHERE r.state = 'checking' AND NOT EXISTS \
             (SELECT 1 FROM {ITEMS} i WHERE i.run_id = r.id AND i.state = 'pending')"
        );
        let finish = format!(
            "UPDATE {RUNS} SET state = 'succeeded', finished_at = ? \
             WHERE id = ? AND state = 'checking'"
        );
        on_dialect!(self, pool => {
            let ids: Vec<String> = sqlx::query_scalar(&done).fetch_all(pool).await?;
            for id in &ids {
                sqlx::query(&finish).bind(now).bind(id).execute(pool).await?;
            }
            Ok(ids)
        })
    }
}
