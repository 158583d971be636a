//! The upkeep of `efs_iam_okta_event` and its watermarks (migration 0006), apart from
//! storing and applying events (`okta_events.rs`): the retention purge, and clearing an
//! Okta user's watermarks (an `iam:admin` act).
//!
//! - **Retention:** processed, ignored and superseded events are purged once older
//!   than the retention; pending and failed ones stay until handled.

use async_trait::async_trait;
use chrono::NaiveDateTime;
use sqlx::FromRow;

use super::sql::{in_transaction, on_dialect, ExactText, SqlStore};
use super::StorageResult;
use crate::domain::OktaUserId;

const EVENTS: &str = "efs_iam_okta_event";

/// The newest event applied about an Okta user and subject.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct EventWatermark {
    /// `user`, or a group id.
    pub subject: String,
    pub published: NaiveDateTime,
    #[sqlx(try_from = "ExactText")]
    pub event_uuid: String,
}

#[async_trait]
pub trait OktaEventUpkeep: Send + Sync + 'static {
    /// Deletes the user's watermarks (all subjects) and returns them: the next event
    /// about the user applies whatever its `published`.
    async fn clear_okta_event_watermarks(
        &self,
        user: &OktaUserId,
    ) -> StorageResult<Vec<EventWatermark>>;
    /// Deletes up to `limit` processed, ignored or superseded events received before
    /// `before`, oldest first; how many. Pending and failed events are kept.
    async fn purge_okta_events(&self, before: NaiveDateTime, limit: u32) -> StorageResult<u64>;
}

#[async_trait]
impl OktaEventUpkeep for SqlStore {
    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn clear_okta_event_watermarks(
        &self,
        user: &OktaUserId,
    ) -> StorageResult<Vec<EventWatermark>> {
        in_transaction!(self, begin_write, pool, tx => {
            let marks: Vec<EventWatermark> = sqlx::query_as(&format!(
                "SELECT subject, published, event_uuid FROM efs_iam_okta_event_watermark \
                 WHERE okta_user_id = ? ORDER BY subject{}",
                pool.row_lock()
            ))
            .bind(user.as_str())
            .fetch_all(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM efs_iam_okta_event_watermark WHERE okta_user_id = ?")
                .bind(user.as_str())
                .execute(&mut *tx)
                .await?;
            marks
        })
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn purge_okta_events(&self, before: NaiveDateTime, limit: u32) -> StorageResult<u64> {
        // The keys first, then a DELETE by key (MariaDB refuses LIMIT in an IN
        // subquery); the caller repeats while batches come back full, so each statement
        // stays short beside live traffic. The state again in the DELETE: an event
        // changed since it was read is left alone.
        let pick = format!(
            "SELECT uuid FROM {EVENTS} WHERE state IN ('processed', 'ignored', 'superseded') \
             AND received_at < ? LIMIT ?"
        );
        Ok(on_dialect!(self, pool => {
            let uuids: Vec<ExactText> = sqlx::query_scalar(&pick)
                .bind(before)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?;
            if uuids.is_empty() {
                0
            } else {
                let mut q = pool.builder(format!(
                    "DELETE FROM {EVENTS} WHERE state IN ('processed', 'ignored', 'superseded') AND uuid"
                ));
                let mut list = q.push(" IN (").separated(", ");
                for uuid in &uuids {
                    list.push_bind(uuid.clone());
                }
                list.push_unseparated(")");
                q.build().execute(pool).await?.rows_affected()
            }
        }))
    }
}
