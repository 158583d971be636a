//! `efs_iam_okta_event` and `efs_iam_okta_event_watermark` (migration 0006): Okta
//! Event Hook deliveries, stored before the delivery is answered and applied to the
//! portal user references by a worker.
//!
//! - **Once per event:** Okta's `uuid` is the key; a redelivered event is not stored
//!   again (Okta delivers at least once).
//! - **Claims** are the leased-queue statements of `leases.rs`, in `published` order;
//!   only the holder records the outcome.
//! - **Newest wins:** per Okta user and *subject* (`user` for lifecycle and profile
//!   events, the group id for membership events) the watermark keeps the newest event
//!   applied; an older one that arrives later is `superseded` and changes nothing.
//!   Checking the watermark, changing the references, moving the watermark and
//!   recording the outcome are one transaction. A watermark more than [`FUTURE_SKEW`]
//!   ahead of the time it is compared at is not believed (the service clamps
//!   `published` at receipt, so only a row written before that rule can be one).
//!
//! Retention and clearing watermarks are `okta_event_upkeep.rs`'s.

use async_trait::async_trait;
use chrono::NaiveDateTime;
use sqlx::FromRow;

use super::leases::{LeasedQueue, ReadClaimed, Value, PENDING_AND_DUE};
use super::sql::{in_transaction, is_unique_violation, on_dialect, push_ids, ExactText, SqlStore};
use super::{StorageError, StorageResult};
use crate::domain::{OktaUserId, PortalUserStatus};

/// How far ahead of the receiving clock an event's `published` is believed: Okta's
/// clock and this host's may differ a little, by minutes only if one of them is wrong.
pub const FUTURE_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// `pending`, `processed`, `ignored`, `superseded`, `failed`.
pub mod event_state {
    pub const PENDING: &str = "pending";
    pub const PROCESSED: &str = "processed";
    pub const IGNORED: &str = "ignored";
    pub const SUPERSEDED: &str = "superseded";
    pub const FAILED: &str = "failed";
}

/// An event as delivered.
#[derive(Debug, Clone)]
pub struct NewOktaEvent {
    pub uuid: String,
    pub event_type: String,
    pub published: NaiveDateTime,
    /// The event's JSON.
    pub payload: String,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct OktaEvent {
    #[sqlx(try_from = "ExactText")]
    pub uuid: String,
    pub event_type: String,
    pub published: NaiveDateTime,
    pub received_at: NaiveDateTime,
    pub payload: String,
    pub state: String,
    pub attempts: i32,
    pub processed_at: Option<NaiveDateTime>,
    pub outcome: Option<String>,
}

/// What an event does to the portal user references of one Okta user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReferenceChange {
    /// Deactivated, suspended or deleted in Okta: every reference `deprovisioned`.
    Deprovision,
    /// Reactivated or unsuspended: `deprovisioned` references back to `pending`, and
    /// every reference flagged `has_data_changes` (EFS pushes its data again).
    Reactivate,
    /// Profile changed in Okta (login, email, …): EFS's data must be pushed again.
    FlagDataChanges,
    /// Removed from these portals' group: `synced` references become `pending`.
    LeftPortals(Vec<i32>),
    /// Added to these portals' group: `pending` references without data changes become
    /// `synced` again (undoing an earlier removal's effect).
    JoinedPortals(Vec<i32>),
}

/// How applying an event ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Applied: portal references changed, and admin user references seen (these
    /// have no status column to change).
    Changed {
        references: u64,
        admin_references: u64,
    },
    /// A newer event about the same user and subject was applied already.
    Superseded,
    /// The lease was lost (another instance holds the event now).
    LeaseLost,
}

/// Counts for `/sync/status` and the metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OktaEventStats {
    pub pending: i64,
    pub failed: i64,
    pub oldest_pending_published: Option<NaiveDateTime>,
}

#[async_trait]
pub trait OktaEventStore: Send + Sync + 'static {
    /// Stores a delivery's events in one transaction; an event already stored (same
    /// `uuid`) is skipped. Returns how many were new.
    async fn store_okta_events(
        &self,
        events: &[NewOktaEvent],
        now: NaiveDateTime,
    ) -> StorageResult<u64>;
    async fn okta_event(&self, uuid: &str) -> StorageResult<Option<OktaEvent>>;
    /// Newest first; `state` filters.
    async fn list_okta_events(
        &self,
        state: Option<&str>,
        limit: u32,
    ) -> StorageResult<Vec<OktaEvent>>;
    /// Leases up to `limit` due pending events, oldest `published` first.
    async fn claim_okta_events(
        &self,
        owner: &str,
        now: NaiveDateTime,
        lease_until: NaiveDateTime,
        limit: u32,
    ) -> StorageResult<Vec<OktaEvent>>;
    async fn renew_okta_event_leases(
        &self,
        uuids: &[String],
        owner: &str,
        until: NaiveDateTime,
    ) -> StorageResult<u64>;
    /// Applies `change` for `user` unless a newer event about (`user`, `subject`) was
    /// applied already, and records the event `processed` (or `superseded`) with
    /// `outcome`; one transaction, only by the event's lease holder.
    #[allow(clippy::too_many_arguments)]
    async fn apply_okta_event(
        &self,
        event: &OktaEvent,
        owner: &str,
        user: &OktaUserId,
        subject: &str,
        change: &ReferenceChange,
        now: NaiveDateTime,
    ) -> StorageResult<Applied>;
    /// Records an event's end without applying anything (`ignored`, `failed`).
    async fn finish_okta_event(
        &self,
        uuid: &str,
        owner: &str,
        state: &str,
        outcome: &str,
        now: NaiveDateTime,
    ) -> StorageResult<bool>;
    /// A failed attempt to be retried at `next_attempt_at`.
    async fn retry_okta_event(
        &self,
        uuid: &str,
        owner: &str,
        attempts: i32,
        error: &str,
        next_attempt_at: NaiveDateTime,
    ) -> StorageResult<bool>;
    async fn okta_event_stats(&self) -> StorageResult<OktaEventStats>;
}

const EVENTS: &str = "efs_iam_okta_event";
const COLS: &str = "uuid, event_type, published, received_at, payload, state, attempts, \
                    processed_at, outcome";
/// The events as the leased-queue statements see them.
const LEASES: LeasedQueue = LeasedQueue {
    table: EVENTS,
    key: "uuid",
    due: PENDING_AND_DUE,
    order: "published, uuid",
    held: " AND state = 'pending'",
    on_claim: "",
    read: ReadClaimed {
        columns: COLS,
        from: EVENTS,
        key: "uuid",
        order: "published, uuid",
    },
};

#[async_trait]
impl OktaEventStore for SqlStore {
    #[tracing::instrument(skip(self, events), fields(events = events.len()), err(level = "debug"))]
    async fn store_okta_events(
        &self,
        events: &[NewOktaEvent],
        now: NaiveDateTime,
    ) -> StorageResult<u64> {
        let sql = format!(
            "INSERT INTO {EVENTS} (uuid, event_type, published, received_at, payload, state, \
             attempts) VALUES (?, ?, ?, ?, ?, 'pending', 0)"
        );
        in_transaction!(self, begin_write, pool, tx => {
            let mut stored = 0;
            for e in events {
                let inserted = sqlx::query(&sql)
                    .bind(&e.uuid)
                    .bind(&e.event_type)
                    .bind(e.published)
                    .bind(now)
                    .bind(&e.payload)
                    .execute(&mut *tx)
                    .await;
                match inserted {
                    Ok(_) => stored += 1,
                    // Delivered before: Okta delivers at least once.
                    Err(e) if is_unique_violation(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            stored
        })
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn okta_event(&self, uuid: &str) -> StorageResult<Option<OktaEvent>> {
        let sql = format!("SELECT {COLS} FROM {EVENTS} WHERE uuid = ?");
        Ok(on_dialect!(self, pool => {
            sqlx::query_as(&sql).bind(uuid).fetch_optional(pool).await?
        }))
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn list_okta_events(
        &self,
        state: Option<&str>,
        limit: u32,
    ) -> StorageResult<Vec<OktaEvent>> {
        Ok(on_dialect!(self, pool => {
            let mut q = pool.builder(format!("SELECT {COLS} FROM {EVENTS} WHERE 1 = 1"));
            if let Some(state) = state {
                q.push(" AND state = ").push_bind(state.to_owned());
            }
            q.push(" ORDER BY published DESC, uuid DESC LIMIT ")
                .push_bind(i64::from(limit));
            q.build_query_as().fetch_all(pool).await?
        }))
    }

    #[tracing::instrument(skip(self, owner), err(level = "debug"))]
    async fn claim_okta_events(
        &self,
        owner: &str,
        now: NaiveDateTime,
        lease_until: NaiveDateTime,
        limit: u32,
    ) -> StorageResult<Vec<OktaEvent>> {
        self.claim::<ExactText, _>(&LEASES, owner, now, lease_until, limit)
            .await
    }

    #[tracing::instrument(skip(self, uuids, owner), level = "debug", fields(events = uuids.len()), err(level = "debug"))]
    async fn renew_okta_event_leases(
        &self,
        uuids: &[String],
        owner: &str,
        until: NaiveDateTime,
    ) -> StorageResult<u64> {
        self.renew(&LEASES, uuids, owner, until).await
    }

    #[tracing::instrument(skip(self, event, owner, user, change), fields(event = %event.uuid, subject), err(level = "debug"))]
    async fn apply_okta_event(
        &self,
        event: &OktaEvent,
        owner: &str,
        user: &OktaUserId,
        subject: &str,
        change: &ReferenceChange,
        now: NaiveDateTime,
    ) -> StorageResult<Applied> {
        let stored = user.to_stored();
        in_transaction!(self, begin_write, pool, tx => {
            // The holder check first: a lost lease changes nothing.
            let held = sqlx::query(&format!(
                "SELECT uuid FROM {EVENTS} WHERE uuid = ? AND locked_by = ? AND state = 'pending'{}",
                pool.row_lock()
            ))
            .bind(&event.uuid)
            .bind(owner)
            .fetch_optional(&mut *tx)
            .await?
            .is_some();
            if !held {
                return Ok(Applied::LeaseLost);
            }
            let mark: Option<(NaiveDateTime, ExactText)> = sqlx::query_as(&format!(
                "SELECT published, event_uuid FROM efs_iam_okta_event_watermark \
                 WHERE okta_user_id = ? AND subject = ?{}",
                pool.row_lock()
            ))
            .bind(user.as_str())
            .bind(subject)
            .fetch_optional(&mut *tx)
            .await?;
            let newer_applied = mark.as_ref().is_some_and(|(published, uuid)| {
                *published <= now + FUTURE_SKEW
                    && (*published, uuid.0.as_str()) > (event.published, event.uuid.as_str())
            });
            let (applied, state, outcome) = if newer_applied {
                let by = mark.as_ref().map(|(_, by)| by.0.as_str()).unwrap_or_default();
                (
                    Applied::Superseded,
                    event_state::SUPERSEDED,
                    format!("superseded by the newer event {by}; nothing changed"),
                )
            } else {
                let references = match change {
                    ReferenceChange::Deprovision => sqlx::query(
                        "UPDATE iam_portal_user_reference SET status = ?, updated_at = ? \
                         WHERE uuid = ? AND (status IS NULL OR status <> ?)",
                    )
                    .bind(PortalUserStatus::Deprovisioned.code())
                    .bind(now)
                    .bind(&stored)
                    .bind(PortalUserStatus::Deprovisioned.code())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected(),
                    ReferenceChange::Reactivate => sqlx::query(
                        "UPDATE iam_portal_user_reference SET has_data_changes = 1, \
                         status = CASE WHEN status = ? THEN ? ELSE status END, updated_at = ? \
                         WHERE uuid = ?",
                    )
                    .bind(PortalUserStatus::Deprovisioned.code())
                    .bind(PortalUserStatus::Pending.code())
                    .bind(now)
                    .bind(&stored)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected(),
                    ReferenceChange::FlagDataChanges => sqlx::query(
                        "UPDATE iam_portal_user_reference SET has_data_changes = 1, updated_at = ? \
                         WHERE uuid = ? AND (has_data_changes IS NULL OR has_data_changes = 0)",
                    )
                    .bind(now)
                    .bind(&stored)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected(),
                    ReferenceChange::LeftPortals(portals) | ReferenceChange::JoinedPortals(portals)
                        if portals.is_empty() => 0,
                    ReferenceChange::LeftPortals(portals) | ReferenceChange::JoinedPortals(portals) => {
                        // Left: synced → pending. Joined: pending → synced, unless EFS's
                        // data still has to be pushed.
                        let (from, to, unchanged) = match change {
                            ReferenceChange::LeftPortals(_) => {
                                (PortalUserStatus::Synced, PortalUserStatus::Pending, "")
                            }
                            _ => (
                                PortalUserStatus::Pending,
                                PortalUserStatus::Synced,
                                " AND (has_data_changes IS NULL OR has_data_changes = 0)",
                            ),
                        };
                        let mut q = pool.builder("UPDATE iam_portal_user_reference SET status = ");
                        q.push_bind(to.code())
                            .push(", updated_at = ")
                            .push_bind(now)
                            .push(" WHERE uuid = ")
                            .push_bind(stored.clone())
                            .push(" AND status = ")
                            .push_bind(from.code())
                            .push(unchanged)
                            .push(" AND portal_id");
                        push_ids(&mut q, portals);
                        q.build().execute(&mut *tx).await?.rows_affected()
                    }
                };
                let admin_references: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM iam_user_reference WHERE uuid = ?",
                )
                .bind(&stored)
                .fetch_one(&mut *tx)
                .await?;
                let moved = match &mark {
                    Some(_) => sqlx::query(
                        "UPDATE efs_iam_okta_event_watermark SET published = ?, event_uuid = ? \
                         WHERE okta_user_id = ? AND subject = ?",
                    )
                    .bind(event.published)
                    .bind(&event.uuid)
                    .bind(user.as_str())
                    .bind(subject)
                    .execute(&mut *tx)
                    .await,
                    None => sqlx::query(
                        "INSERT INTO efs_iam_okta_event_watermark \
                         (okta_user_id, subject, published, event_uuid) VALUES (?, ?, ?, ?)",
                    )
                    .bind(user.as_str())
                    .bind(subject)
                    .bind(event.published)
                    .bind(&event.uuid)
                    .execute(&mut *tx)
                    .await,
                };
                if let Err(e) = moved {
                    // Another instance applied an event about this user and subject in
                    // the meantime: run the whole transaction again, which compares
                    // with its watermark.
                    return Err(if is_unique_violation(&e) {
                        StorageError::Conflict(e)
                    } else {
                        e.into()
                    });
                }
                let admin = admin_references.max(0) as u64;
                (
                    Applied::Changed {
                        references,
                        admin_references: admin,
                    },
                    event_state::PROCESSED,
                    describe(change, references, admin),
                )
            };
            sqlx::query(&format!(
                "UPDATE {EVENTS} SET state = ?, outcome = ?, processed_at = ?, attempts = attempts + 1, \
                 locked_by = NULL, locked_until = NULL WHERE uuid = ?"
            ))
            .bind(state)
            .bind(outcome)
            .bind(now)
            .bind(&event.uuid)
            .execute(&mut *tx)
            .await?;
            applied
        })
    }

    #[tracing::instrument(skip(self, owner, outcome), err(level = "debug"))]
    async fn finish_okta_event(
        &self,
        uuid: &str,
        owner: &str,
        state: &str,
        outcome: &str,
        now: NaiveDateTime,
    ) -> StorageResult<bool> {
        let set = [
            ("state", Value::Text(Some(state))),
            ("outcome", Value::Text(Some(outcome))),
            ("processed_at", Value::Time(Some(now))),
            ("attempts", Value::Sql("attempts + 1")),
        ];
        self.finish(&LEASES, uuid.to_owned(), owner, &set).await
    }

    #[tracing::instrument(skip(self, owner, error), err(level = "debug"))]
    async fn retry_okta_event(
        &self,
        uuid: &str,
        owner: &str,
        attempts: i32,
        error: &str,
        next_attempt_at: NaiveDateTime,
    ) -> StorageResult<bool> {
        let set = [
            ("attempts", Value::Int(Some(attempts))),
            ("outcome", Value::Text(Some(error))),
            ("next_attempt_at", Value::Time(Some(next_attempt_at))),
        ];
        self.finish(&LEASES, uuid.to_owned(), owner, &set).await
    }

    #[tracing::instrument(skip(self), level = "debug", err(level = "debug"))]
    async fn okta_event_stats(&self) -> StorageResult<OktaEventStats> {
        // COUNT, not SUM: MariaDB's SUM is DECIMAL.
        let count =
            |state: &str| format!("(SELECT COUNT(*) FROM {EVENTS} WHERE state = '{state}')");
        let sql = format!(
            "SELECT {}, {}, (SELECT MIN(published) FROM {EVENTS} WHERE state = 'pending')",
            count("pending"),
            count("failed")
        );
        let (pending, failed, oldest): (i64, i64, Option<NaiveDateTime>) =
            on_dialect!(self, pool => { sqlx::query_as(&sql).fetch_one(pool).await? });
        Ok(OktaEventStats {
            pending,
            failed,
            oldest_pending_published: oldest,
        })
    }
}

fn describe(change: &ReferenceChange, references: u64, admin: u64) -> String {
    let what = match change {
        ReferenceChange::Deprovision => "set deprovisioned",
        ReferenceChange::Reactivate => {
            "flagged has_data_changes (deprovisioned ones back to pending)"
        }
        ReferenceChange::FlagDataChanges => "flagged has_data_changes",
        ReferenceChange::LeftPortals(_) => "set pending (removed from the portal's group)",
        ReferenceChange::JoinedPortals(_) => "set synced (added back to the portal's group)",
    };
    let mut text = format!("{references} portal user reference(s) {what}");
    if admin > 0 {
        text.push_str(&format!(
            "; {admin} admin user reference(s) name this Okta user (they have no status to change)"
        ));
    }
    text
}
