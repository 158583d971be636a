//! [`super::SyncStore`] for both dialects, written to the SQL subset they share (like
//! `sql.rs`). The dialect module passes what differs:
//!
//! - `claim_begin`: the statement that opens a claim transaction. MySQL:
//!   `SET TRANSACTION ISOLATION LEVEL READ COMMITTED; BEGIN`, because under
//!   REPEATABLE READ a locking scan keeps a lock on every row it looked at, and a second
//!   instance's `SKIP LOCKED` would then skip rows the first one did not even take.
//!   SQLite: `BEGIN IMMEDIATE` (the write lock up front).
//! - `skip_locked`: the locking clause of a claim's `SELECT` (`FOR UPDATE SKIP LOCKED`
//!   on MariaDB ≥ 10.6; nothing on SQLite, where the transaction holds the write lock).
//! - `efs_core`: whether the EFS core tables (`users`, `panelists`) exist.

macro_rules! sync_sql_store {
    ($store:ident, $db:ty, claim_begin = $claim_begin:literal, skip_locked = $skip_locked:literal, efs_core = $efs_core:literal) => {
        mod sync_store_impl {
            use chrono::NaiveDateTime;

            use $crate::domain::{EfsUserId, OktaUserId, PortalId, PortalUserStatus};
            use $crate::storage::model::{PortalUserReferenceRow, UnassignmentRow};
            use $crate::storage::sql::{retry_conflicts, INSERT_CHUNK};
            use $crate::storage::sync::*;
            use $crate::storage::{PortalUserReference, StorageResult, Unassignment};

            type Store = super::$store;

            const QUEUE: &str = "iam_portal_user_group_unassignment_queue";
            const Q_COLS: &str = "id, portal_id, user_id, uuid, email, created_at, attempts, \
                                  last_error, next_attempt_at, dead_at";
            const REF_COLS: &str = "id, portal_id, user_id, uuid, created_at, updated_at, \
                                    status, has_data_changes";
            const ITEM_COLS: &str = "seq, user_id, state, outcome, okta_user_id, error_type, \
                                     error, error_field, attempts, next_attempt_at, finished_at";

            fn is_unique_violation(e: &sqlx::Error) -> bool {
                matches!(e, sqlx::Error::Database(db)
                    if matches!(db.kind(), sqlx::error::ErrorKind::UniqueViolation))
            }

            fn push_ids<'a, T>(q: &mut sqlx::QueryBuilder<'a, $db>, ids: &'a [T])
            where
                T: 'a + Copy + Send + sqlx::Encode<'a, $db> + sqlx::Type<$db>,
            {
                q.push(" IN (");
                let mut list = q.separated(", ");
                for id in ids {
                    list.push_bind(*id);
                }
                list.push_unseparated(")");
            }

            impl Store {
                async fn claim_queue_once(
                    &self,
                    owner: &str,
                    now: NaiveDateTime,
                    lease_until: NaiveDateTime,
                    limit: u32,
                ) -> StorageResult<Vec<Unassignment>> {
                    let mut tx = self.pool.begin_with($claim_begin).await?;
                    let ids: Vec<i32> = sqlx::query_scalar(&format!(
                        "SELECT id FROM {QUEUE} WHERE dead_at IS NULL AND portal_id IS NOT NULL \
                         AND uuid IS NOT NULL \
                         AND (next_attempt_at IS NULL OR next_attempt_at <= ?) \
                         AND (locked_until IS NULL OR locked_until < ?) \
                         ORDER BY id LIMIT ?{}",
                        $skip_locked
                    ))
                    .bind(now)
                    .bind(now)
                    .bind(i64::from(limit))
                    .fetch_all(&mut *tx)
                    .await?;
                    if ids.is_empty() {
                        tx.commit().await?;
                        return Ok(Vec::new());
                    }
                    let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                        "UPDATE {QUEUE} SET locked_by = "
                    ));
                    q.push_bind(owner)
                        .push(", locked_until = ")
                        .push_bind(lease_until)
                        .push(" WHERE id");
                    push_ids(&mut q, &ids);
                    q.build().execute(&mut *tx).await?;
                    let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                        "SELECT {Q_COLS} FROM {QUEUE} WHERE id"
                    ));
                    push_ids(&mut q, &ids);
                    q.push(" ORDER BY id");
                    let rows: Vec<UnassignmentRow> =
                        q.build_query_as().fetch_all(&mut *tx).await?;
                    tx.commit().await?;
                    Ok(rows.into_iter().map(Into::into).collect())
                }

                async fn requeue_once(
                    &self,
                    portal: PortalId,
                    ids: Option<&[i32]>,
                ) -> StorageResult<RequeueOutcome> {
                    let mut tx = self.begin_write().await?;
                    let mut outcome = RequeueOutcome::default();
                    let reset = format!(
                        "UPDATE {QUEUE} SET portal_id = ?, dead_at = NULL, attempts = 0, \
                         next_attempt_at = NULL, locked_by = NULL, locked_until = NULL WHERE "
                    );
                    match ids {
                        None => {
                            let res = sqlx::query(&format!(
                                "{reset}portal_id = ? AND dead_at IS NOT NULL AND uuid IS NOT NULL"
                            ))
                            .bind(portal.get())
                            .bind(portal.get())
                            .execute(&mut *tx)
                            .await?;
                            outcome.requeued = res.rows_affected();
                        }
                        Some(ids) => {
                            let mut eligible = Vec::new();
                            for chunk in ids.chunks(INSERT_CHUNK) {
                                let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                                    "SELECT id, portal_id, uuid, dead_at FROM {QUEUE} WHERE id"
                                ));
                                push_ids(&mut q, chunk);
                                q.push(Self::LOCK);
                                let rows: Vec<(
                                    i32,
                                    Option<i32>,
                                    Option<Vec<u8>>,
                                    Option<NaiveDateTime>,
                                )> = q.build_query_as().fetch_all(&mut *tx).await?;
                                for id in chunk {
                                    let skip = match rows.iter().find(|r| r.0 == *id) {
                                        None => Some(RequeueSkip::NotFound),
                                        Some((_, _, _, None)) => Some(RequeueSkip::NotDead),
                                        Some((_, Some(p), _, _)) if *p != portal.get() => {
                                            Some(RequeueSkip::OtherPortal)
                                        }
                                        Some((_, _, uuid, _))
                                            if uuid.as_deref().is_none_or(|u| {
                                                u.iter().all(|b| *b == 0)
                                            }) =>
                                        {
                                            Some(RequeueSkip::NoOktaUserId)
                                        }
                                        Some(_) => None,
                                    };
                                    match skip {
                                        Some(reason) => outcome.skipped.push((*id, reason)),
                                        None if !eligible.contains(id) => eligible.push(*id),
                                        None => {}
                                    }
                                }
                            }
                            for chunk in eligible.chunks(INSERT_CHUNK) {
                                let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                                    "UPDATE {QUEUE} SET portal_id = "
                                ));
                                q.push_bind(portal.get()).push(
                                    ", dead_at = NULL, attempts = 0, next_attempt_at = NULL, \
                                     locked_by = NULL, locked_until = NULL WHERE id",
                                );
                                push_ids(&mut q, chunk);
                                outcome.requeued += q.build().execute(&mut *tx).await?.rows_affected();
                            }
                        }
                    }
                    tx.commit().await?;
                    Ok(outcome)
                }

                async fn mark_failed_once(
                    &self,
                    portal: PortalId,
                    user: EfsUserId,
                    okta_user_id: Option<&OktaUserId>,
                    status: PortalUserStatus,
                ) -> StorageResult<()> {
                    let now = $crate::storage::now();
                    let mut tx = self.begin_write().await?;
                    let existing: Vec<i32> = sqlx::query_scalar(&format!(
                        "SELECT id FROM iam_portal_user_reference WHERE portal_id = ? AND user_id = ?{}",
                        Self::LOCK
                    ))
                    .bind(portal.get())
                    .bind(user.get())
                    .fetch_all(&mut *tx)
                    .await?;
                    let uuid = okta_user_id.map(|o| o.to_stored());
                    if existing.is_empty() {
                        sqlx::query(
                            "INSERT INTO iam_portal_user_reference \
                             (portal_id, user_id, uuid, created_at, updated_at, status, has_data_changes) \
                             VALUES (?, ?, ?, ?, ?, ?, 1)",
                        )
                        .bind(portal.get())
                        .bind(user.get())
                        .bind(uuid)
                        .bind(now)
                        .bind(now)
                        .bind(status.code())
                        .execute(&mut *tx)
                        .await?;
                    } else {
                        sqlx::query(
                            "UPDATE iam_portal_user_reference SET status = ?, updated_at = ?, \
                             uuid = COALESCE(?, uuid) WHERE portal_id = ? AND user_id = ?",
                        )
                        .bind(status.code())
                        .bind(now)
                        .bind(uuid)
                        .bind(portal.get())
                        .bind(user.get())
                        .execute(&mut *tx)
                        .await?;
                    }
                    tx.commit().await?;
                    Ok(())
                }

                async fn create_job_once(
                    &self,
                    job: &NewSyncJob,
                    now: NaiveDateTime,
                ) -> StorageResult<()> {
                    let mut tx = self.begin_write().await?;
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
                    for (n, chunk) in job.items.chunks(INSERT_CHUNK).enumerate() {
                        let mut q = sqlx::QueryBuilder::<$db>::new(
                            "INSERT INTO efs_iam_sync_job_item (job_id, seq, user_id, profile, state, attempts) ",
                        );
                        q.push_values(chunk.iter().enumerate(), |mut row, (i, item)| {
                            row.push_bind(job.id.clone())
                                .push_bind((n * INSERT_CHUNK + i) as i32)
                                .push_bind(item.user_id.get())
                                .push_bind(item.profile.clone())
                                .push_bind("pending")
                                .push_bind(0i32);
                        });
                        q.build().execute(&mut *tx).await?;
                    }
                    tx.commit().await?;
                    Ok(())
                }

                async fn claim_items_once(
                    &self,
                    owner: &str,
                    now: NaiveDateTime,
                    lease_until: NaiveDateTime,
                    limit: u32,
                ) -> StorageResult<Vec<ClaimedSyncItem>> {
                    let mut tx = self.pool.begin_with($claim_begin).await?;
                    let ids: Vec<i64> = sqlx::query_scalar(&format!(
                        "SELECT id FROM efs_iam_sync_job_item WHERE state = 'pending' \
                         AND (next_attempt_at IS NULL OR next_attempt_at <= ?) \
                         AND (locked_until IS NULL OR locked_until < ?) \
                         ORDER BY id LIMIT ?{}",
                        $skip_locked
                    ))
                    .bind(now)
                    .bind(now)
                    .bind(i64::from(limit))
                    .fetch_all(&mut *tx)
                    .await?;
                    if ids.is_empty() {
                        tx.commit().await?;
                        return Ok(Vec::new());
                    }
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "UPDATE efs_iam_sync_job_item SET locked_by = ",
                    );
                    q.push_bind(owner)
                        .push(", locked_until = ")
                        .push_bind(lease_until)
                        .push(" WHERE id");
                    push_ids(&mut q, &ids);
                    q.build().execute(&mut *tx).await?;
                    let mut q = sqlx::QueryBuilder::<$db>::new(
                        "SELECT i.id, i.job_id, j.portal_id, i.user_id, i.profile, i.attempts \
                         FROM efs_iam_sync_job_item i JOIN efs_iam_sync_job j ON j.id = i.job_id \
                         WHERE i.id",
                    );
                    push_ids(&mut q, &ids);
                    q.push(" ORDER BY i.id");
                    let rows: Vec<ClaimedSyncItem> =
                        q.build_query_as().fetch_all(&mut *tx).await?;
                    tx.commit().await?;
                    Ok(rows)
                }
            }

            #[async_trait::async_trait]
            impl SyncStore for Store {
                #[tracing::instrument(skip(self, owner), level = "debug", err(level = "warn"))]
                async fn try_lock(
                    &self,
                    name: &str,
                    owner: &str,
                    now: NaiveDateTime,
                    until: NaiveDateTime,
                ) -> StorageResult<bool> {
                    let inserted = sqlx::query(
                        "INSERT INTO efs_iam_sync_lock (name, locked_by, locked_until) VALUES (?, ?, ?)",
                    )
                    .bind(name)
                    .bind(owner)
                    .bind(until)
                    .execute(&self.pool)
                    .await;
                    match inserted {
                        Ok(_) => return Ok(true),
                        Err(e) if is_unique_violation(&e) => {}
                        Err(e) => return Err(e.into()),
                    }
                    // Held: take it over only from a holder whose lease ran out.
                    let taken = sqlx::query(
                        "UPDATE efs_iam_sync_lock SET locked_by = ?, locked_until = ? \
                         WHERE name = ? AND locked_until < ?",
                    )
                    .bind(owner)
                    .bind(until)
                    .bind(name)
                    .bind(now)
                    .execute(&self.pool)
                    .await?;
                    Ok(taken.rows_affected() > 0)
                }

                #[tracing::instrument(skip(self, owner), level = "debug", err(level = "warn"))]
                async fn renew_lock(
                    &self,
                    name: &str,
                    owner: &str,
                    until: NaiveDateTime,
                ) -> StorageResult<bool> {
                    let res = sqlx::query(
                        "UPDATE efs_iam_sync_lock SET locked_until = ? WHERE name = ? AND locked_by = ?",
                    )
                    .bind(until)
                    .bind(name)
                    .bind(owner)
                    .execute(&self.pool)
                    .await?;
                    Ok(res.rows_affected() > 0)
                }

                #[tracing::instrument(skip(self, owner), level = "debug", err(level = "warn"))]
                async fn unlock(&self, name: &str, owner: &str) -> StorageResult<()> {
                    sqlx::query("DELETE FROM efs_iam_sync_lock WHERE name = ? AND locked_by = ?")
                        .bind(name)
                        .bind(owner)
                        .execute(&self.pool)
                        .await?;
                    Ok(())
                }

                #[tracing::instrument(skip(self), err(level = "warn"))]
                async fn efs_user_exists(
                    &self,
                    kind: EfsUserKind,
                    user: EfsUserId,
                ) -> StorageResult<bool> {
                    if !$efs_core {
                        return Ok(true);
                    }
                    let table = match kind {
                        EfsUserKind::Admin => "users",
                        EfsUserKind::Panelist => "panelists",
                    };
                    let n: i64 = sqlx::query_scalar(&format!(
                        "SELECT COUNT(*) FROM {table} WHERE uid = ?"
                    ))
                    .bind(user.get())
                    .fetch_one(&self.pool)
                    .await?;
                    Ok(n > 0)
                }

                #[tracing::instrument(skip(self), err(level = "warn"))]
                async fn portal_references_of_user(
                    &self,
                    user: EfsUserId,
                ) -> StorageResult<Vec<PortalUserReference>> {
                    let rows: Vec<PortalUserReferenceRow> = sqlx::query_as(&format!(
                        "SELECT {REF_COLS} FROM iam_portal_user_reference WHERE user_id = ? \
                         ORDER BY id DESC"
                    ))
                    .bind(user.get())
                    .fetch_all(&self.pool)
                    .await?;
                    Ok(rows.into_iter().map(Into::into).collect())
                }

                #[tracing::instrument(skip(self), err(level = "warn"))]
                async fn mark_portal_sync_failed(
                    &self,
                    portal: PortalId,
                    user: EfsUserId,
                    okta_user_id: Option<&OktaUserId>,
                    status: PortalUserStatus,
                ) -> StorageResult<()> {
                    retry_conflicts(|| self.mark_failed_once(portal, user, okta_user_id, status)).await
                }

                #[tracing::instrument(skip(self), err(level = "warn"))]
                async fn dead_letter_unroutable_unassignments(
                    &self,
                    now: NaiveDateTime,
                ) -> StorageResult<u64> {
                    let no_portal = sqlx::query(&format!(
                        "UPDATE {QUEUE} SET dead_at = ?, last_error = ?, locked_by = NULL, \
                         locked_until = NULL WHERE dead_at IS NULL AND portal_id IS NULL"
                    ))
                    .bind(now)
                    .bind(
                        "legacy row without portal_id: efs-iam cannot tell which Okta group to \
                         remove the user from; requeue it with its portal \
                         (POST /api/v1/sync/unassignments/requeue)",
                    )
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                    let no_okta_id = sqlx::query(&format!(
                        "UPDATE {QUEUE} SET dead_at = ?, last_error = ?, locked_by = NULL, \
                         locked_until = NULL WHERE dead_at IS NULL AND portal_id IS NOT NULL \
                         AND uuid IS NULL"
                    ))
                    .bind(now)
                    .bind("row without an Okta user id (uuid): there is nobody to remove from the group")
                    .execute(&self.pool)
                    .await?
                    .rows_affected();
                    Ok(no_portal + no_okta_id)
                }

                #[tracing::instrument(skip(self, owner), err(level = "warn"))]
                async fn claim_unassignments(
                    &self,
                    owner: &str,
                    now: NaiveDateTime,
                    lease_until: NaiveDateTime,
                    limit: u32,
                ) -> StorageResult<Vec<Unassignment>> {
                    retry_conflicts(|| self.claim_queue_once(owner, now, lease_until, limit)).await
                }

                #[tracing::instrument(skip(self), level = "debug", err(level = "warn"))]
                async fn complete_unassignment(&self, id: i32) -> StorageResult<bool> {
                    let res = sqlx::query(&format!("DELETE FROM {QUEUE} WHERE id = ?"))
                        .bind(id)
                        .execute(&self.pool)
                        .await?;
                    Ok(res.rows_affected() > 0)
                }

                #[tracing::instrument(skip(self, owner, last_error), err(level = "warn"))]
                async fn fail_unassignment(
                    &self,
                    id: i32,
                    owner: &str,
                    attempts: i32,
                    last_error: &str,
                    next_attempt_at: Option<NaiveDateTime>,
                    dead_at: Option<NaiveDateTime>,
                ) -> StorageResult<bool> {
                    let res = sqlx::query(&format!(
                        "UPDATE {QUEUE} SET attempts = ?, last_error = ?, next_attempt_at = ?, \
                         dead_at = ?, locked_by = NULL, locked_until = NULL \
                         WHERE id = ? AND locked_by = ?"
                    ))
                    .bind(attempts)
                    .bind(last_error)
                    .bind(next_attempt_at)
                    .bind(dead_at)
                    .bind(id)
                    .bind(owner)
                    .execute(&self.pool)
                    .await?;
                    Ok(res.rows_affected() > 0)
                }

                #[tracing::instrument(skip(self, ids, owner), fields(rows = ids.len()), err(level = "warn"))]
                async fn release_unassignments(
                    &self,
                    ids: &[i32],
                    owner: &str,
                ) -> StorageResult<u64> {
                    let mut released = 0;
                    for chunk in ids.chunks(INSERT_CHUNK) {
                        let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                            "UPDATE {QUEUE} SET locked_by = NULL, locked_until = NULL WHERE locked_by = "
                        ));
                        q.push_bind(owner).push(" AND id");
                        push_ids(&mut q, chunk);
                        released += q.build().execute(&self.pool).await?.rows_affected();
                    }
                    Ok(released)
                }

                #[tracing::instrument(skip(self, ids), err(level = "warn"))]
                async fn requeue_unassignments(
                    &self,
                    portal: PortalId,
                    ids: Option<&[i32]>,
                ) -> StorageResult<RequeueOutcome> {
                    retry_conflicts(|| self.requeue_once(portal, ids)).await
                }

                #[tracing::instrument(skip(self), err(level = "warn"))]
                async fn list_dead_unassignments(
                    &self,
                    without_portal_only: bool,
                    after_id: Option<i32>,
                    limit: u32,
                ) -> StorageResult<Vec<Unassignment>> {
                    let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                        "SELECT {Q_COLS} FROM {QUEUE} WHERE dead_at IS NOT NULL"
                    ));
                    if without_portal_only {
                        q.push(" AND portal_id IS NULL");
                    }
                    if let Some(after) = after_id {
                        q.push(" AND id > ").push_bind(after);
                    }
                    q.push(" ORDER BY id LIMIT ").push_bind(i64::from(limit));
                    let rows: Vec<UnassignmentRow> =
                        q.build_query_as().fetch_all(&self.pool).await?;
                    Ok(rows.into_iter().map(Into::into).collect())
                }

                #[tracing::instrument(skip(self), err(level = "warn"))]
                async fn unassignment_queue_stats(
                    &self,
                    now: NaiveDateTime,
                ) -> StorageResult<QueueStats> {
                    let row: (i64, i64, i64, i64, i64, Option<NaiveDateTime>) =
                        sqlx::query_as(&format!(
                            "SELECT COUNT(CASE WHEN dead_at IS NULL THEN 1 END), \
                             COUNT(CASE WHEN dead_at IS NULL AND portal_id IS NOT NULL \
                                   AND uuid IS NOT NULL \
                                   AND (next_attempt_at IS NULL OR next_attempt_at <= ?) \
                                   AND (locked_until IS NULL OR locked_until < ?) THEN 1 END), \
                             COUNT(CASE WHEN dead_at IS NULL AND locked_until >= ? THEN 1 END), \
                             COUNT(CASE WHEN dead_at IS NOT NULL THEN 1 END), \
                             COUNT(CASE WHEN dead_at IS NOT NULL AND portal_id IS NULL THEN 1 END), \
                             MIN(CASE WHEN dead_at IS NULL THEN created_at END) \
                             FROM {QUEUE}"
                        ))
                        .bind(now)
                        .bind(now)
                        .bind(now)
                        .fetch_one(&self.pool)
                        .await?;
                    Ok(QueueStats {
                        pending: row.0,
                        due: row.1,
                        in_progress: row.2,
                        dead: row.3,
                        dead_without_portal: row.4,
                        oldest_pending_at: row.5,
                    })
                }

                #[tracing::instrument(skip(self, job), fields(job = %job.id, items = job.items.len()), err(level = "warn"))]
                async fn create_sync_job(
                    &self,
                    job: &NewSyncJob,
                    now: NaiveDateTime,
                ) -> StorageResult<()> {
                    retry_conflicts(|| self.create_job_once(job, now)).await
                }

                #[tracing::instrument(skip(self), err(level = "warn"))]
                async fn sync_job(
                    &self,
                    id: &str,
                ) -> StorageResult<Option<(SyncJob, SyncJobCounts)>> {
                    let job: Option<SyncJob> = sqlx::query_as(
                        "SELECT id, portal_id, total, created_at, finished_at \
                         FROM efs_iam_sync_job WHERE id = ?",
                    )
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                    let Some(job) = job else { return Ok(None) };
                    let c: (i64, i64, i64, i64) = sqlx::query_as(
                        "SELECT COUNT(CASE WHEN state = 'pending' THEN 1 END), \
                         COUNT(CASE WHEN state = 'succeeded' THEN 1 END), \
                         COUNT(CASE WHEN state = 'failed' THEN 1 END), \
                         COUNT(CASE WHEN state = 'pending' AND attempts > 0 THEN 1 END) \
                         FROM efs_iam_sync_job_item WHERE job_id = ?",
                    )
                    .bind(id)
                    .fetch_one(&self.pool)
                    .await?;
                    Ok(Some((
                        job,
                        SyncJobCounts {
                            pending: c.0,
                            succeeded: c.1,
                            failed: c.2,
                            retrying: c.3,
                        },
                    )))
                }

                #[tracing::instrument(skip(self), err(level = "warn"))]
                async fn sync_job_items(
                    &self,
                    id: &str,
                    query: &SyncJobItemQuery,
                ) -> StorageResult<Vec<SyncJobItem>> {
                    let mut q = sqlx::QueryBuilder::<$db>::new(format!(
                        "SELECT {ITEM_COLS} FROM efs_iam_sync_job_item WHERE job_id = "
                    ));
                    q.push_bind(id.to_owned());
                    if let Some(state) = query.state {
                        q.push(" AND state = ").push_bind(state.as_str());
                    }
                    if let Some(after) = query.after_seq {
                        q.push(" AND seq > ").push_bind(after);
                    }
                    q.push(" ORDER BY seq LIMIT ").push_bind(i64::from(query.limit));
                    Ok(q.build_query_as().fetch_all(&self.pool).await?)
                }

                #[tracing::instrument(skip(self, owner), err(level = "warn"))]
                async fn claim_sync_items(
                    &self,
                    owner: &str,
                    now: NaiveDateTime,
                    lease_until: NaiveDateTime,
                    limit: u32,
                ) -> StorageResult<Vec<ClaimedSyncItem>> {
                    retry_conflicts(|| self.claim_items_once(owner, now, lease_until, limit)).await
                }

                #[tracing::instrument(skip(self, owner, result), level = "debug", err(level = "warn"))]
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
                    let res = sqlx::query(
                        "UPDATE efs_iam_sync_job_item SET state = ?, outcome = ?, okta_user_id = ?, \
                         error_type = ?, error = ?, error_field = ?, finished_at = ?, \
                         next_attempt_at = NULL, locked_by = NULL, locked_until = NULL, \
                         attempts = attempts + 1 \
                         WHERE id = ? AND locked_by = ? AND state = 'pending'",
                    )
                    .bind(state.as_str())
                    .bind(outcome)
                    .bind(okta)
                    .bind(error_type)
                    .bind(error)
                    .bind(field)
                    .bind(now)
                    .bind(id)
                    .bind(owner)
                    .execute(&self.pool)
                    .await?;
                    Ok(res.rows_affected() > 0)
                }

                #[tracing::instrument(skip(self, owner, error), level = "debug", err(level = "warn"))]
                async fn retry_sync_item(
                    &self,
                    id: i64,
                    owner: &str,
                    attempts: i32,
                    error: &str,
                    next_attempt_at: NaiveDateTime,
                ) -> StorageResult<bool> {
                    let res = sqlx::query(
                        "UPDATE efs_iam_sync_job_item SET attempts = ?, error = ?, \
                         next_attempt_at = ?, locked_by = NULL, locked_until = NULL \
                         WHERE id = ? AND locked_by = ? AND state = 'pending'",
                    )
                    .bind(attempts)
                    .bind(error)
                    .bind(next_attempt_at)
                    .bind(id)
                    .bind(owner)
                    .execute(&self.pool)
                    .await?;
                    Ok(res.rows_affected() > 0)
                }

                #[tracing::instrument(skip(self, ids, owner), fields(items = ids.len()), err(level = "warn"))]
                async fn release_sync_items(&self, ids: &[i64], owner: &str) -> StorageResult<u64> {
                    let mut released = 0;
                    for chunk in ids.chunks(INSERT_CHUNK) {
                        let mut q = sqlx::QueryBuilder::<$db>::new(
                            "UPDATE efs_iam_sync_job_item SET locked_by = NULL, locked_until = NULL \
                             WHERE locked_by = ",
                        );
                        q.push_bind(owner).push(" AND id");
                        push_ids(&mut q, chunk);
                        released += q.build().execute(&self.pool).await?.rows_affected();
                    }
                    Ok(released)
                }

                #[tracing::instrument(skip(self), level = "debug", err(level = "warn"))]
                async fn finish_sync_jobs(&self, now: NaiveDateTime) -> StorageResult<Vec<String>> {
                    let done: Vec<String> = sqlx::query_scalar(
                        "SELECT j.id FROM efs_iam_sync_job j WHERE j.finished_at IS NULL \
                         AND NOT EXISTS (SELECT 1 FROM efs_iam_sync_job_item i \
                                         WHERE i.job_id = j.id AND i.state = 'pending')",
                    )
                    .fetch_all(&self.pool)
                    .await?;
                    for id in &done {
                        sqlx::query(
                            "UPDATE efs_iam_sync_job SET finished_at = ? WHERE id = ? AND finished_at IS NULL",
                        )
                        .bind(now)
                        .bind(id)
                        .execute(&self.pool)
                        .await?;
                    }
                    Ok(done)
                }

                #[tracing::instrument(skip(self), err(level = "warn"))]
                async fn purge_sync_jobs(&self, before: NaiveDateTime) -> StorageResult<u64> {
                    // Items first: SQLite enforces the cascade only with foreign keys on,
                    // and an explicit delete does not depend on it.
                    sqlx::query(
                        "DELETE FROM efs_iam_sync_job_item WHERE job_id IN \
                         (SELECT id FROM efs_iam_sync_job WHERE finished_at < ?)",
                    )
                    .bind(before)
                    .execute(&self.pool)
                    .await?;
                    Ok(sqlx::query("DELETE FROM efs_iam_sync_job WHERE finished_at < ?")
                        .bind(before)
                        .execute(&self.pool)
                        .await?
                        .rows_affected())
                }

                #[tracing::instrument(skip(self), err(level = "warn"))]
                async fn sync_job_stats(&self, now: NaiveDateTime) -> StorageResult<JobStats> {
                    let unfinished: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM efs_iam_sync_job WHERE finished_at IS NULL",
                    )
                    .fetch_one(&self.pool)
                    .await?;
                    let (pending, in_progress): (i64, i64) = sqlx::query_as(
                        "SELECT COUNT(*), COUNT(CASE WHEN locked_until >= ? THEN 1 END) \
                         FROM efs_iam_sync_job_item WHERE state = 'pending'",
                    )
                    .bind(now)
                    .fetch_one(&self.pool)
                    .await?;
                    Ok(JobStats {
                        unfinished_jobs: unfinished,
                        pending_items: pending,
                        in_progress_items: in_progress,
                    })
                }
            }
        }
    };
}

pub(crate) use sync_sql_store;
