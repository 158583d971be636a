//! `efs_iam_sync_lock`: named leases across instances. The sync engine takes one per
//! EFS user and one per login, so concurrent or retried syncs of one person run one
//! after the other in every instance (see `sync::lock`).

use async_trait::async_trait;
use chrono::NaiveDateTime;

use super::sql::{is_unique_violation, on_dialect, SqlStore};
use super::StorageResult;

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
    #[tracing::instrument(skip(self, owner), level = "debug", err(level = "warn"))]
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

    #[tracing::instrument(skip(self, owner), level = "debug", err(level = "warn"))]
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

    #[tracing::instrument(skip(self, owner), level = "debug", err(level = "warn"))]
    async fn unlock(&self, name: &str, owner: &str) -> StorageResult<()> {
        let sql = "DELETE FROM efs_iam_sync_lock WHERE name = ? AND locked_by = ?";
        on_dialect!(self, pool => {
            sqlx::query(sql).bind(name).bind(owner).execute(pool).await?;
        });
        Ok(())
    }
}
