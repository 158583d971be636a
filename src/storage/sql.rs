//! The SQL both dialects share. Each dialect module provides, on its store type:
//! `pool`, `LOCK` (the row-lock suffix of a `SELECT`), `begin_write()` (a transaction
//! that serialises writers), `last_id()` and `MIGRATOR`.

use std::future::Future;
use std::time::Duration;

use super::{StorageError, StorageResult};

/// Rows inserted per statement in a bulk insert: far below MySQL's 65,535 and
/// SQLite's 32,766 bound parameters.
pub(crate) const INSERT_CHUNK: usize = 500;

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

macro_rules! sql_store {
    ($store:ty, $db:ty, $backend:literal) => {
        use $crate::domain::{EfsUserId, OktaUserId, PortalId, SettingKey};
        use $crate::storage::model::{
            AdminUserReferenceRow, PortalUserReferenceRow, UnassignmentRow,
        };
        use $crate::storage::sql::{retry_conflicts, INSERT_CHUNK};
        use $crate::storage::*;

        const ADMIN_REF_COLS: &str = "id, user_id, uuid, created_at, updated_at";
        const PORTAL_REF_COLS: &str =
            "id, portal_id, user_id, uuid, created_at, updated_at, status, has_data_changes";
        const ERROR_COLS: &str = "id, created_at, message, status_code, trace, error_code";
        const QUEUE_COLS: &str = "id, portal_id, user_id, uuid, email, created_at, attempts, \
                                  last_error, next_attempt_at, dead_at";

        impl $store {
            async fn put_settings_once(
                &self,
                portal: PortalId,
                entries: &[(SettingKey, Option<String>)],
            ) -> StorageResult<Vec<bool>> {
                let mut tx = self.begin_write().await?;
                let mut created = Vec::with_capacity(entries.len());
                for (key, value) in entries {
                    let existing: Vec<i32> = sqlx::query_scalar(&format!(
                        "SELECT id FROM iam_portal_settings WHERE portal_id = ? AND `key` = ?{}",
                        Self::LOCK
                    ))
                    .bind(portal.get())
                    .bind(key.as_str())
                    .fetch_all(&mut *tx)
                    .await?;
                    if existing.is_empty() {
                        sqlx::query(
                            "INSERT INTO iam_portal_settings (portal_id, `key`, value) VALUES (?, ?, ?)",
                        )
                        .bind(portal.get())
                        .bind(key.as_str())
                        .bind(value.as_deref())
                        .execute(&mut *tx)
                        .await?;
                    } else {
                        // Legacy duplicates all get the value, so whichever row an old
                        // reader picks, it sees the same thing.
                        sqlx::query(
                            "UPDATE iam_portal_settings SET value = ? WHERE portal_id = ? AND `key` = ?",
                        )
                        .bind(value.as_deref())
                        .bind(portal.get())
                        .bind(key.as_str())
                        .execute(&mut *tx)
                        .await?;
                    }
                    created.push(existing.is_empty());
                }
                tx.commit().await?;
                Ok(created)
            }

            async fn put_admin_ref_once(
                &self,
                user: EfsUserId,
                okta_user_id: &OktaUserId,
            ) -> StorageResult<(AdminUserReference, bool)> {
                let now = now();
                let mut tx = self.begin_write().await?;
                let existing: Vec<i32> = sqlx::query_scalar(&format!(
                    "SELECT id FROM iam_user_reference WHERE user_id = ?{}",
                    Self::LOCK
                ))
                .bind(user.get())
                .fetch_all(&mut *tx)
                .await?;
                if existing.is_empty() {
                    sqlx::query(
                        "INSERT INTO iam_user_reference (user_id, uuid, created_at, updated_at) \
                         VALUES (?, ?, ?, ?)",
                    )
                    .bind(user.get())
                    .bind(okta_user_id.to_stored())
                    .bind(now)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                } else {
                    sqlx::query(
                        "UPDATE iam_user_reference SET uuid = ?, updated_at = ? WHERE user_id = ?",
                    )
                    .bind(okta_user_id.to_stored())
                    .bind(now)
                    .bind(user.get())
                    .execute(&mut *tx)
                    .await?;
                }
                let row: AdminUserReferenceRow = sqlx::query_as(&format!(
                    "SELECT {ADMIN_REF_COLS} FROM iam_user_reference WHERE user_id = ? \
                     ORDER BY id DESC LIMIT 1"
                ))
                .bind(user.get())
                .fetch_one(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok((row.into(), existing.is_empty()))
            }

            async fn put_portal_ref_once(
                &self,
                portal: PortalId,
                user: EfsUserId,
                upsert: &PortalUserReferenceUpsert,
            ) -> StorageResult<(PortalUserReference, bool)> {
                let now = now();
                let mut tx = self.begin_write().await?;
                let existing: Vec<i32> = sqlx::query_scalar(&format!(
                    "SELECT id FROM iam_portal_user_reference WHERE portal_id = ? AND user_id = ?{}",
                    Self::LOCK
                ))
                .bind(portal.get())
                .bind(user.get())
                .fetch_all(&mut *tx)
                .await?;
                if existing.is_empty() {
                    sqlx::query(
                        "INSERT INTO iam_portal_user_reference \
                         (portal_id, user_id, uuid, created_at, updated_at, status, has_data_changes) \
                         VALUES (?, ?, ?, ?, ?, ?, ?)",
                    )
                    .bind(portal.get())
                    .bind(user.get())
                    .bind(upsert.okta_user_id.to_stored())
                    .bind(now)
                    .bind(now)
                    .bind(upsert.status.code())
                    .bind(upsert.has_data_changes as i8)
                    .execute(&mut *tx)
                    .await?;
                } else {
                    sqlx::query(
                        "UPDATE iam_portal_user_reference \
                         SET uuid = ?, updated_at = ?, status = ?, has_data_changes = ? \
                         WHERE portal_id = ? AND user_id = ?",
                    )
                    .bind(upsert.okta_user_id.to_stored())
                    .bind(now)
                    .bind(upsert.status.code())
                    .bind(upsert.has_data_changes as i8)
                    .bind(portal.get())
                    .bind(user.get())
                    .execute(&mut *tx)
                    .await?;
                }
                let row = Self::newest_portal_ref(&mut tx, portal, user).await?;
                tx.commit().await?;
                Ok((row.expect("row written in this transaction"), existing.is_empty()))
            }

            async fn patch_portal_ref_once(
                &self,
                portal: PortalId,
                user: EfsUserId,
                patch: &PortalUserReferencePatch,
            ) -> StorageResult<Option<PortalUserReference>> {
                let mut tx = self.begin_write().await?;
                let existing: Vec<i32> = sqlx::query_scalar(&format!(
                    "SELECT id FROM iam_portal_user_reference WHERE portal_id = ? AND user_id = ?{}",
                    Self::LOCK
                ))
                .bind(portal.get())
                .bind(user.get())
                .fetch_all(&mut *tx)
                .await?;
                if existing.is_empty() {
                    tx.rollback().await?;
                    return Ok(None);
                }
                let mut q = sqlx::QueryBuilder::<$db>::new(
                    "UPDATE iam_portal_user_reference SET updated_at = ",
                );
                q.push_bind(now());
                if let Some(okta) = &patch.okta_user_id {
                    q.push(", uuid = ").push_bind(okta.to_stored());
                }
                if let Some(status) = patch.status {
                    q.push(", status = ").push_bind(status.code());
                }
                if let Some(changed) = patch.has_data_changes {
                    q.push(", has_data_changes = ").push_bind(changed as i8);
                }
                q.push(" WHERE portal_id = ")
                    .push_bind(portal.get())
                    .push(" AND user_id = ")
                    .push_bind(user.get());
                q.build().execute(&mut *tx).await?;
                let row = Self::newest_portal_ref(&mut tx, portal, user).await?;
                tx.commit().await?;
                Ok(row)
            }

            async fn newest_portal_ref(
                conn: &mut <$db as sqlx::Database>::Connection,
                portal: PortalId,
                user: EfsUserId,
            ) -> StorageResult<Option<PortalUserReference>> {
                let row: Option<PortalUserReferenceRow> = sqlx::query_as(&format!(
                    "SELECT {PORTAL_REF_COLS} FROM iam_portal_user_reference \
                     WHERE portal_id = ? AND user_id = ? ORDER BY id DESC LIMIT 1"
                ))
                .bind(portal.get())
                .bind(user.get())
                .fetch_optional(&mut *conn)
                .await?;
                Ok(row.map(Into::into))
            }

            async fn enqueue_once(
                &self,
                portal: PortalId,
                users: &[NewUnassignment],
            ) -> StorageResult<u64> {
                let now = now();
                let mut tx = self.begin_write().await?;
                let mut inserted = 0;
                for chunk in users.chunks(INSERT_CHUNK) {
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "INSERT INTO iam_portal_user_group_unassignment_queue \
                         (portal_id, user_id, uuid, email, created_at, attempts) ",
                    );
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
                tx.commit().await?;
                Ok(inserted)
            }

            async fn put_token_once(
                &self,
                key: TokenKey<'_>,
                record: &NewTokenRecord<'_>,
            ) -> StorageResult<()> {
                let mut tx = self.begin_write().await?;
                sqlx::query("DELETE FROM iam_token_data WHERE session_id = ? OR session_id = ?")
                    .bind(key.hashed)
                    .bind(key.legacy.unwrap_or(key.hashed))
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO iam_token_data \
                     (session_id, idp_response, stored_at, expires_at, subject_hash) \
                     VALUES (?, ?, ?, ?, ?)",
                )
                .bind(key.hashed)
                .bind(record.value)
                .bind(record.stored_at.naive_utc())
                .bind(record.expires_at.naive_utc())
                .bind(record.subject)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl Store for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            #[tracing::instrument(skip_all, err(level = "warn"))]
            async fn check_ready(&self) -> StorageResult<()> {
                let expected = MIGRATOR
                    .iter()
                    .map(|m| m.version)
                    .max()
                    .unwrap_or(0);
                let applied: Option<i64> = sqlx::query_scalar(
                    "SELECT MAX(version) FROM _sqlx_migrations WHERE success = 1",
                )
                .fetch_one(&self.pool)
                .await?;
                let applied = applied.unwrap_or(0);
                if applied < expected {
                    return Err(StorageError::NotMigrated { applied, expected });
                }
                Ok(())
            }

            fn pool_stats(&self) -> PoolStats {
                PoolStats {
                    size: self.pool.size(),
                    idle: self.pool.num_idle() as u32,
                }
            }

            #[tracing::instrument(skip(self), err(level = "warn"))]
            async fn portal_settings(&self, portal: PortalId) -> StorageResult<Vec<PortalSetting>> {
                Ok(sqlx::query_as(
                    "SELECT id, `key`, value FROM iam_portal_settings WHERE portal_id = ? ORDER BY id",
                )
                .bind(portal.get())
                .fetch_all(&self.pool)
                .await?)
            }

            #[tracing::instrument(skip(self), err(level = "warn"))]
            async fn portal_setting(
                &self,
                portal: PortalId,
                key: &SettingKey,
            ) -> StorageResult<Option<PortalSetting>> {
                Ok(sqlx::query_as(
                    "SELECT id, `key`, value FROM iam_portal_settings \
                     WHERE portal_id = ? AND `key` = ? ORDER BY id DESC LIMIT 1",
                )
                .bind(portal.get())
                .bind(key.as_str())
                .fetch_optional(&self.pool)
                .await?)
            }

            #[tracing::instrument(skip(self, entries), fields(keys = entries.len()), err(level = "warn"))]
            async fn put_portal_settings(
                &self,
                portal: PortalId,
                entries: &[(SettingKey, Option<String>)],
            ) -> StorageResult<Vec<bool>> {
                retry_conflicts(|| self.put_settings_once(portal, entries)).await
            }

            #[tracing::instrument(skip(self), err(level = "warn"))]
            async fn delete_portal_setting(
                &self,
                portal: PortalId,
                key: &SettingKey,
            ) -> StorageResult<u64> {
                Ok(sqlx::query("DELETE FROM iam_portal_settings WHERE portal_id = ? AND `key` = ?")
                    .bind(portal.get())
                    .bind(key.as_str())
                    .execute(&self.pool)
                    .await?
                    .rows_affected())
            }

            #[tracing::instrument(skip(self), err(level = "warn"))]
            async fn admin_user_reference(
                &self,
                user: EfsUserId,
            ) -> StorageResult<Option<AdminUserReference>> {
                let row: Option<AdminUserReferenceRow> = sqlx::query_as(&format!(
                    "SELECT {ADMIN_REF_COLS} FROM iam_user_reference WHERE user_id = ? \
                     ORDER BY id DESC LIMIT 1"
                ))
                .bind(user.get())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(Into::into))
            }

            #[tracing::instrument(skip(self), err(level = "warn"))]
            async fn put_admin_user_reference(
                &self,
                user: EfsUserId,
                okta_user_id: &OktaUserId,
            ) -> StorageResult<(AdminUserReference, bool)> {
                retry_conflicts(|| self.put_admin_ref_once(user, okta_user_id)).await
            }

            #[tracing::instrument(skip(self), err(level = "warn"))]
            async fn delete_admin_user_reference(&self, user: EfsUserId) -> StorageResult<u64> {
                Ok(sqlx::query("DELETE FROM iam_user_reference WHERE user_id = ?")
                    .bind(user.get())
                    .execute(&self.pool)
                    .await?
                    .rows_affected())
            }

            #[tracing::instrument(skip(self), err(level = "warn"))]
            async fn list_portal_user_references(
                &self,
                portal: PortalId,
                query: &PortalUserReferenceQuery,
            ) -> StorageResult<Vec<PortalUserReference>> {
                let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {PORTAL_REF_COLS} FROM iam_portal_user_reference WHERE portal_id = "
                ));
                q.push_bind(portal.get());
                if let Some(status) = query.status {
                    q.push(" AND status = ").push_bind(status.code());
                }
                match query.has_data_changes {
                    Some(true) => {
                        q.push(" AND has_data_changes <> 0");
                    }
                    Some(false) => {
                        q.push(" AND (has_data_changes = 0 OR has_data_changes IS NULL)");
                    }
                    None => {}
                }
                if let Some(after) = query.after_id {
                    q.push(" AND id > ").push_bind(after);
                }
                q.push(" ORDER BY id LIMIT ").push_bind(i64::from(query.limit));
                let rows: Vec<PortalUserReferenceRow> =
                    q.build_query_as().fetch_all(&self.pool).await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            #[tracing::instrument(skip(self), err(level = "warn"))]
            async fn portal_user_reference(
                &self,
                portal: PortalId,
                user: EfsUserId,
            ) -> StorageResult<Option<PortalUserReference>> {
                let mut conn = self.pool.acquire().await?;
                let found = Self::newest_portal_ref(&mut conn, portal, user).await?;
                conn.release_clean();
                Ok(found)
            }

            #[tracing::instrument(skip(self), err(level = "warn"))]
            async fn put_portal_user_reference(
                &self,
                portal: PortalId,
                user: EfsUserId,
                upsert: &PortalUserReferenceUpsert,
            ) -> StorageResult<(PortalUserReference, bool)> {
                retry_conflicts(|| self.put_portal_ref_once(portal, user, upsert)).await
            }

            #[tracing::instrument(skip(self), err(level = "warn"))]
            async fn patch_portal_user_reference(
                &self,
                portal: PortalId,
                user: EfsUserId,
                patch: &PortalUserReferencePatch,
            ) -> StorageResult<Option<PortalUserReference>> {
                retry_conflicts(|| self.patch_portal_ref_once(portal, user, patch)).await
            }

            #[tracing::instrument(skip(self), err(level = "warn"))]
            async fn delete_portal_user_reference(
                &self,
                portal: PortalId,
                user: EfsUserId,
            ) -> StorageResult<u64> {
                Ok(sqlx::query(
                    "DELETE FROM iam_portal_user_reference WHERE portal_id = ? AND user_id = ?",
                )
                .bind(portal.get())
                .bind(user.get())
                .execute(&self.pool)
                .await?
                .rows_affected())
            }

            #[tracing::instrument(skip(self), err(level = "warn"))]
            async fn references_to_okta_user(
                &self,
                okta_user_id: &OktaUserId,
            ) -> StorageResult<(Vec<AdminUserReference>, Vec<PortalUserReference>)> {
                let stored = okta_user_id.to_stored();
                let admins: Vec<AdminUserReferenceRow> = sqlx::query_as(&format!(
                    "SELECT {ADMIN_REF_COLS} FROM iam_user_reference WHERE uuid = ? ORDER BY id"
                ))
                .bind(&stored)
                .fetch_all(&self.pool)
                .await?;
                let portal_users: Vec<PortalUserReferenceRow> = sqlx::query_as(&format!(
                    "SELECT {PORTAL_REF_COLS} FROM iam_portal_user_reference WHERE uuid = ? ORDER BY id"
                ))
                .bind(&stored)
                .fetch_all(&self.pool)
                .await?;
                Ok((
                    admins.into_iter().map(Into::into).collect(),
                    portal_users.into_iter().map(Into::into).collect(),
                ))
            }

            #[tracing::instrument(skip_all, fields(status_code = entry.status_code), err(level = "warn"))]
            async fn record_error(&self, entry: &NewErrorLogEntry) -> StorageResult<ErrorLogEntry> {
                let res = sqlx::query(
                    "INSERT INTO iam_error_log (created_at, message, status_code, trace, error_code) \
                     VALUES (?, ?, ?, ?, ?)",
                )
                .bind(now())
                .bind(entry.message.as_deref())
                .bind(entry.status_code)
                .bind(entry.trace.as_deref())
                .bind(entry.error_code.as_str())
                .execute(&self.pool)
                .await?;
                let id = Self::last_id(&res);
                Ok(sqlx::query_as(&format!(
                    "SELECT {ERROR_COLS} FROM iam_error_log WHERE id = ?"
                ))
                .bind(id)
                .fetch_one(&self.pool)
                .await?)
            }

            #[tracing::instrument(skip(self), err(level = "warn"))]
            async fn error_log_entry(&self, id: i32) -> StorageResult<Option<ErrorLogEntry>> {
                Ok(sqlx::query_as(&format!(
                    "SELECT {ERROR_COLS} FROM iam_error_log WHERE id = ?"
                ))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?)
            }

            #[tracing::instrument(skip(self), err(level = "warn"))]
            async fn query_error_log(
                &self,
                query: &ErrorLogQuery,
            ) -> StorageResult<Vec<ErrorLogEntry>> {
                let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {ERROR_COLS} FROM iam_error_log WHERE 1 = 1"
                ));
                if let Some(since) = query.since {
                    q.push(" AND created_at >= ").push_bind(since);
                }
                if let Some(until) = query.until {
                    q.push(" AND created_at < ").push_bind(until);
                }
                if let Some(status) = query.status_code {
                    q.push(" AND status_code = ").push_bind(status);
                }
                if let Some(code) = &query.error_code {
                    q.push(" AND error_code = ").push_bind(code.clone());
                }
                if let Some(text) = &query.text {
                    // `!` escapes: it means the same in both dialects, unlike `\`.
                    let pattern = format!(
                        "%{}%",
                        text.replace('!', "!!").replace('%', "!%").replace('_', "!_")
                    );
                    q.push(" AND message LIKE ").push_bind(pattern).push(" ESCAPE '!'");
                }
                if let Some((at, id)) = query.before {
                    q.push(" AND (created_at < ")
                        .push_bind(at)
                        .push(" OR (created_at = ")
                        .push_bind(at)
                        .push(" AND id < ")
                        .push_bind(id)
                        .push("))");
                }
                q.push(" ORDER BY created_at DESC, id DESC LIMIT ")
                    .push_bind(i64::from(query.limit));
                Ok(q.build_query_as().fetch_all(&self.pool).await?)
            }

            #[tracing::instrument(skip(self), err(level = "warn"))]
            async fn purge_error_log(&self, before: chrono::NaiveDateTime) -> StorageResult<u64> {
                Ok(sqlx::query("DELETE FROM iam_error_log WHERE created_at < ?")
                    .bind(before)
                    .execute(&self.pool)
                    .await?
                    .rows_affected())
            }

            #[tracing::instrument(skip(self, users), fields(users = users.len()), err(level = "warn"))]
            async fn enqueue_unassignments(
                &self,
                portal: PortalId,
                users: &[NewUnassignment],
            ) -> StorageResult<u64> {
                retry_conflicts(|| self.enqueue_once(portal, users)).await
            }

            #[tracing::instrument(skip(self), err(level = "warn"))]
            async fn list_unassignments(
                &self,
                portal: PortalId,
                query: &UnassignmentQuery,
            ) -> StorageResult<Vec<Unassignment>> {
                let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {QUEUE_COLS} FROM iam_portal_user_group_unassignment_queue WHERE portal_id = "
                ));
                q.push_bind(portal.get());
                match query.state {
                    Some(UnassignmentState::Pending) => {
                        q.push(" AND dead_at IS NULL");
                    }
                    Some(UnassignmentState::Dead) => {
                        q.push(" AND dead_at IS NOT NULL");
                    }
                    None => {}
                }
                if let Some(after) = query.after_id {
                    q.push(" AND id > ").push_bind(after);
                }
                q.push(" ORDER BY id LIMIT ").push_bind(i64::from(query.limit));
                let rows: Vec<UnassignmentRow> = q.build_query_as().fetch_all(&self.pool).await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            #[tracing::instrument(skip(self), err(level = "warn"))]
            async fn unassignment_counts(&self, portal: PortalId) -> StorageResult<UnassignmentCounts> {
                let (pending, dead): (i64, i64) = sqlx::query_as(
                    "SELECT COUNT(CASE WHEN dead_at IS NULL THEN 1 END), \
                            COUNT(CASE WHEN dead_at IS NOT NULL THEN 1 END) \
                     FROM iam_portal_user_group_unassignment_queue WHERE portal_id = ?",
                )
                .bind(portal.get())
                .fetch_one(&self.pool)
                .await?;
                Ok(UnassignmentCounts { pending, dead })
            }
        }

        #[async_trait::async_trait]
        impl TokenStore for $store {
            fn token_backend(&self) -> &'static str {
                concat!("sql:", $backend)
            }

            #[tracing::instrument(skip_all, err(level = "warn"))]
            async fn check_token_store(&self) -> StorageResult<()> {
                // Same database as everything else: reachable and migrated.
                Store::check_ready(self).await
            }

            #[tracing::instrument(skip_all, err(level = "warn"))]
            async fn put_token(
                &self,
                key: TokenKey<'_>,
                record: &NewTokenRecord<'_>,
            ) -> StorageResult<()> {
                retry_conflicts(|| self.put_token_once(key, record)).await
            }

            #[tracing::instrument(skip_all, err(level = "warn"))]
            async fn get_token(&self, key: TokenKey<'_>) -> StorageResult<Option<StoredToken>> {
                // The hashed key first, then the newest legacy duplicate.
                let row: Option<(Vec<u8>, Option<String>, Option<chrono::NaiveDateTime>, Option<chrono::NaiveDateTime>)> =
                    sqlx::query_as(
                        "SELECT session_id, idp_response, stored_at, expires_at FROM iam_token_data \
                         WHERE session_id = ? OR session_id = ? \
                         ORDER BY CASE WHEN session_id = ? THEN 0 ELSE 1 END, id DESC LIMIT 1",
                    )
                    .bind(key.hashed)
                    .bind(key.legacy.unwrap_or(key.hashed))
                    .bind(key.hashed)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(row.map(|(session_id, idp_response, stored_at, expires_at)| StoredToken {
                    legacy_key: session_id.as_slice() != key.hashed,
                    idp_response,
                    stored_at,
                    expires_at,
                }))
            }

            #[tracing::instrument(skip_all, err(level = "warn"))]
            async fn delete_token(&self, key: TokenKey<'_>) -> StorageResult<bool> {
                Ok(sqlx::query("DELETE FROM iam_token_data WHERE session_id = ? OR session_id = ?")
                    .bind(key.hashed)
                    .bind(key.legacy.unwrap_or(key.hashed))
                    .execute(&self.pool)
                    .await?
                    .rows_affected()
                    > 0)
            }

            #[tracing::instrument(skip_all, err(level = "warn"))]
            async fn delete_subject_tokens(&self, subject: &[u8]) -> StorageResult<u64> {
                Ok(sqlx::query("DELETE FROM iam_token_data WHERE subject_hash = ?")
                    .bind(subject)
                    .execute(&self.pool)
                    .await?
                    .rows_affected())
            }

            #[tracing::instrument(skip_all, err(level = "warn"))]
            async fn purge_expired_tokens(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                legacy_expiry: chrono::DateTime<chrono::Utc>,
            ) -> StorageResult<u64> {
                sqlx::query("UPDATE iam_token_data SET expires_at = ? WHERE expires_at IS NULL")
                    .bind(legacy_expiry.naive_utc())
                    .execute(&self.pool)
                    .await?;
                Ok(sqlx::query("DELETE FROM iam_token_data WHERE expires_at <= ?")
                    .bind(now.naive_utc())
                    .execute(&self.pool)
                    .await?
                    .rows_affected())
            }

            #[tracing::instrument(skip_all, err(level = "warn"))]
            async fn scan_tokens(&self, after: i64, limit: u32) -> StorageResult<Option<Vec<TokenRow>>> {
                Ok(Some(
                    sqlx::query_as(
                        "SELECT id, session_id, idp_response, stored_at, expires_at \
                         FROM iam_token_data WHERE id > ? ORDER BY id LIMIT ?",
                    )
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?,
                ))
            }

            #[tracing::instrument(skip_all, err(level = "warn"))]
            async fn rewrite_token(
                &self,
                row: &TokenRow,
                session_id: &[u8],
                value: &str,
                expires_at: chrono::DateTime<chrono::Utc>,
            ) -> StorageResult<bool> {
                // NULL-safe comparison of the old value: `<=>` is MySQL-only and `IS` is
                // SQLite-only, so spell it out.
                let res = sqlx::query(
                    "UPDATE iam_token_data SET session_id = ?, idp_response = ?, expires_at = ? \
                     WHERE id = ? AND session_id = ? \
                     AND ((idp_response IS NULL AND ? IS NULL) OR idp_response = ?)",
                )
                .bind(session_id)
                .bind(value)
                .bind(expires_at.naive_utc())
                .bind(row.id)
                .bind(row.session_id.as_slice())
                .bind(row.idp_response.as_deref())
                .bind(row.idp_response.as_deref())
                .execute(&self.pool)
                .await?;
                Ok(res.rows_affected() == 1)
            }
        }
    };
}

pub(crate) use sql_store;
