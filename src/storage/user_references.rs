//! References from EFS users to their Okta user ids: EFS-Admin users
//! (`iam_user_reference`) and portal users, i.e. panelists
//! (`iam_portal_user_reference`, with a sync status and a "data changed" flag).
//!
//! Legacy duplicates of one (portal, user) or one admin user: reads return the newest
//! row, writes update every duplicate, deletes remove all of them. Nullable legacy
//! columns stay `Option`, so a legacy row is served as it is rather than refused.

use async_trait::async_trait;
use chrono::NaiveDateTime;
use sqlx::FromRow;

use super::sql::{in_transaction, on_dialect, push_page, SqlStore};
use super::{now, StorageResult};
use crate::domain::{EfsUserId, OktaUserId, PortalId, PortalUserStatus};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminUserReference {
    pub id: i32,
    pub user_id: Option<i32>,
    pub okta_user_id: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalUserReference {
    pub id: i32,
    pub portal_id: Option<i32>,
    pub user_id: Option<i32>,
    pub okta_user_id: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// The raw `status` column; see [`PortalUserStatus`] for its meaning.
    pub status_code: Option<i8>,
    pub has_data_changes: Option<bool>,
}

impl PortalUserReference {
    pub fn status(&self) -> Option<PortalUserStatus> {
        self.status_code.and_then(PortalUserStatus::from_code)
    }
}

#[derive(Debug, Clone)]
pub struct PortalUserReferenceUpsert {
    pub okta_user_id: OktaUserId,
    pub status: PortalUserStatus,
    pub has_data_changes: bool,
}

#[derive(Debug, Clone, Default)]
pub struct PortalUserReferencePatch {
    pub okta_user_id: Option<OktaUserId>,
    pub status: Option<PortalUserStatus>,
    pub has_data_changes: Option<bool>,
}

impl PortalUserReferencePatch {
    pub fn is_empty(&self) -> bool {
        self.okta_user_id.is_none() && self.status.is_none() && self.has_data_changes.is_none()
    }
}

#[derive(Debug, Clone, Default)]
pub struct PortalUserReferenceQuery {
    pub status: Option<PortalUserStatus>,
    /// Legacy `NULL` counts as `false`.
    pub has_data_changes: Option<bool>,
    /// Keyset position: only rows with a larger `id`.
    pub after_id: Option<i32>,
    pub limit: u32,
}

/// Which EFS core table a user id belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EfsUserKind {
    /// An EFS-Admin user (`users.uid`).
    Admin,
    /// A portal user (`panelists.uid`).
    Panelist,
}

#[async_trait]
pub trait UserReferenceStore: Send + Sync + 'static {
    // --- iam_user_reference ---
    async fn admin_user_reference(
        &self,
        user: EfsUserId,
    ) -> StorageResult<Option<AdminUserReference>>;
    /// Upsert; `true` when a row was created.
    async fn put_admin_user_reference(
        &self,
        user: EfsUserId,
        okta_user_id: &OktaUserId,
    ) -> StorageResult<(AdminUserReference, bool)>;
    async fn delete_admin_user_reference(&self, user: EfsUserId) -> StorageResult<u64>;

    // --- iam_portal_user_reference ---
    async fn list_portal_user_references(
        &self,
        portal: PortalId,
        query: &PortalUserReferenceQuery,
    ) -> StorageResult<Vec<PortalUserReference>>;
    async fn portal_user_reference(
        &self,
        portal: PortalId,
        user: EfsUserId,
    ) -> StorageResult<Option<PortalUserReference>>;
    /// The panelist's references in every portal, newest first.
    async fn portal_references_of_user(
        &self,
        user: EfsUserId,
    ) -> StorageResult<Vec<PortalUserReference>>;
    async fn put_portal_user_reference(
        &self,
        portal: PortalId,
        user: EfsUserId,
        upsert: &PortalUserReferenceUpsert,
    ) -> StorageResult<(PortalUserReference, bool)>;
    /// `None` when there is no such reference.
    async fn patch_portal_user_reference(
        &self,
        portal: PortalId,
        user: EfsUserId,
        patch: &PortalUserReferencePatch,
    ) -> StorageResult<Option<PortalUserReference>>;
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
    async fn delete_portal_user_reference(
        &self,
        portal: PortalId,
        user: EfsUserId,
    ) -> StorageResult<u64>;

    // --- both ---
    async fn references_to_okta_user(
        &self,
        okta_user_id: &OktaUserId,
    ) -> StorageResult<(Vec<AdminUserReference>, Vec<PortalUserReference>)>;
    /// Whether EFS has the user. Always `true` on SQLite, which has no EFS core tables.
    async fn efs_user_exists(&self, kind: EfsUserKind, user: EfsUserId) -> StorageResult<bool>;
}

const ADMIN_COLS: &str = "id, user_id, uuid, created_at, updated_at";
const PORTAL_COLS: &str =
    "id, portal_id, user_id, uuid, created_at, updated_at, status, has_data_changes";

#[derive(FromRow)]
struct AdminUserReferenceRow {
    id: i32,
    user_id: Option<i32>,
    uuid: Option<Vec<u8>>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl From<AdminUserReferenceRow> for AdminUserReference {
    fn from(r: AdminUserReferenceRow) -> Self {
        Self {
            id: r.id,
            user_id: r.user_id,
            okta_user_id: r.uuid.as_deref().map(OktaUserId::from_stored),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(FromRow)]
struct PortalUserReferenceRow {
    id: i32,
    portal_id: Option<i32>,
    user_id: Option<i32>,
    uuid: Option<Vec<u8>>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    status: Option<i8>,
    has_data_changes: Option<i8>,
}

impl From<PortalUserReferenceRow> for PortalUserReference {
    fn from(r: PortalUserReferenceRow) -> Self {
        Self {
            id: r.id,
            portal_id: r.portal_id,
            user_id: r.user_id,
            okta_user_id: r.uuid.as_deref().map(OktaUserId::from_stored),
            created_at: r.created_at,
            updated_at: r.updated_at,
            status_code: r.status,
            has_data_changes: r.has_data_changes.map(|v| v != 0),
        }
    }
}

fn newest_admin_sql() -> String {
    format!(
        "SELECT {ADMIN_COLS} FROM iam_user_reference WHERE user_id = ? ORDER BY id DESC LIMIT 1"
    )
}

fn newest_portal_sql() -> String {
    format!(
        "SELECT {PORTAL_COLS} FROM iam_portal_user_reference \
         WHERE portal_id = ? AND user_id = ? ORDER BY id DESC LIMIT 1"
    )
}

/// Locks the portal's references of the user (legacy data may hold several) in a
/// write transaction of either dialect; their ids, as `Vec<i32>`.
macro_rules! lock_portal_refs {
    ($pool:expr, $tx:expr, $portal:expr, $user:expr) => {{
        let ids: Vec<i32> = sqlx::query_scalar(&format!(
            "SELECT id FROM iam_portal_user_reference WHERE portal_id = ? AND user_id = ?{}",
            $pool.row_lock()
        ))
        .bind($portal.get())
        .bind($user.get())
        .fetch_all(&mut *$tx)
        .await?;
        ids
    }};
}

#[async_trait]
impl UserReferenceStore for SqlStore {
    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn admin_user_reference(
        &self,
        user: EfsUserId,
    ) -> StorageResult<Option<AdminUserReference>> {
        let sql = newest_admin_sql();
        let row: Option<AdminUserReferenceRow> = on_dialect!(self, pool => {
            sqlx::query_as(&sql).bind(user.get()).fetch_optional(pool).await?
        });
        Ok(row.map(Into::into))
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn put_admin_user_reference(
        &self,
        user: EfsUserId,
        okta_user_id: &OktaUserId,
    ) -> StorageResult<(AdminUserReference, bool)> {
        let now = now();
        in_transaction!(self, begin_write, pool, tx => {
            let existing: Vec<i32> = sqlx::query_scalar(&format!(
                "SELECT id FROM iam_user_reference WHERE user_id = ?{}",
                pool.row_lock()
            ))
            .bind(user.get())
            .fetch_all(&mut *tx)
            .await?;
            // One bind order for both statements; an insert also sets created_at.
            let write = if existing.is_empty() {
                "INSERT INTO iam_user_reference (uuid, updated_at, user_id, created_at) \
                 VALUES (?, ?, ?, ?)"
            } else {
                "UPDATE iam_user_reference SET uuid = ?, updated_at = ? WHERE user_id = ?"
            };
            let mut q = sqlx::query(write)
                .bind(okta_user_id.to_stored())
                .bind(now)
                .bind(user.get());
            if existing.is_empty() {
                q = q.bind(now);
            }
            q.execute(&mut *tx).await?;
            let row: AdminUserReferenceRow = sqlx::query_as(&newest_admin_sql())
                .bind(user.get())
                .fetch_one(&mut *tx)
                .await?;
            (row.into(), existing.is_empty())
        })
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn delete_admin_user_reference(&self, user: EfsUserId) -> StorageResult<u64> {
        let sql = "DELETE FROM iam_user_reference WHERE user_id = ?";
        Ok(on_dialect!(self, pool => {
            sqlx::query(sql).bind(user.get()).execute(pool).await?.rows_affected()
        }))
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn list_portal_user_references(
        &self,
        portal: PortalId,
        query: &PortalUserReferenceQuery,
    ) -> StorageResult<Vec<PortalUserReference>> {
        // Each filter reads one index in keyset order (migration 0007): an equality on
        // `has_data_changes` keeps the pages in `id` order, a range would not. So a
        // filter on it is a union of equalities and (for legacy values other than 0
        // and 1, normally none) small ranges, each part a page of its own; the union's
        // first `limit` rows by id are the page.
        let changes: &[&str] = match query.has_data_changes {
            None => &[""],
            Some(true) => &[
                " AND has_data_changes = 1",
                " AND has_data_changes > 1",
                " AND has_data_changes < 0",
            ],
            Some(false) => &[" AND has_data_changes = 0", " AND has_data_changes IS NULL"],
        };
        let indexes = match (query.status.is_some(), query.has_data_changes.is_some()) {
            (false, false) => "portal_id",
            (true, false) => "portal_status_id",
            (false, true) => "portal_changes_id",
            (true, true) => "portal_status_id, portal_changes_id",
        };
        let union = changes.len() > 1;
        let rows: Vec<PortalUserReferenceRow> = on_dialect!(self, pool => {
            let hint = pool.force_index(indexes);
            let mut q = pool.builder("");
            for (n, changed) in changes.iter().enumerate() {
                if union {
                    q.push(if n == 0 { "SELECT * FROM (" } else { " UNION ALL SELECT * FROM (" });
                }
                q.push(format!(
                    "SELECT {PORTAL_COLS} FROM iam_portal_user_reference{hint} WHERE portal_id = "
                ));
                q.push_bind(portal.get());
                if let Some(status) = query.status {
                    q.push(" AND status = ").push_bind(status.code());
                }
                q.push(*changed);
                push_page(&mut q, "id", query.after_id, query.limit);
                if union {
                    q.push(format!(") part{n}"));
                }
            }
            if union {
                q.push(" ORDER BY id LIMIT ").push_bind(i64::from(query.limit));
            }
            q.build_query_as().fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(Into::into).collect())
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn portal_user_reference(
        &self,
        portal: PortalId,
        user: EfsUserId,
    ) -> StorageResult<Option<PortalUserReference>> {
        let sql = newest_portal_sql();
        let row: Option<PortalUserReferenceRow> = on_dialect!(self, pool => {
            sqlx::query_as(&sql)
                .bind(portal.get())
                .bind(user.get())
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(Into::into))
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn portal_references_of_user(
        &self,
        user: EfsUserId,
    ) -> StorageResult<Vec<PortalUserReference>> {
        let sql = format!(
            "SELECT {PORTAL_COLS} FROM iam_portal_user_reference WHERE user_id = ? ORDER BY id DESC"
        );
        let rows: Vec<PortalUserReferenceRow> = on_dialect!(self, pool => {
            sqlx::query_as(&sql).bind(user.get()).fetch_all(pool).await?
        });
        Ok(rows.into_iter().map(Into::into).collect())
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn put_portal_user_reference(
        &self,
        portal: PortalId,
        user: EfsUserId,
        upsert: &PortalUserReferenceUpsert,
    ) -> StorageResult<(PortalUserReference, bool)> {
        let now = now();
        in_transaction!(self, begin_write, pool, tx => {
            let existing = lock_portal_refs!(pool, tx, portal, user);
            // One bind order for both statements; an insert also sets created_at.
            let write = if existing.is_empty() {
                "INSERT INTO iam_portal_user_reference \
                 (uuid, updated_at, status, has_data_changes, portal_id, user_id, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)"
            } else {
                "UPDATE iam_portal_user_reference \
                 SET uuid = ?, updated_at = ?, status = ?, has_data_changes = ? \
                 WHERE portal_id = ? AND user_id = ?"
            };
            let mut q = sqlx::query(write)
                .bind(upsert.okta_user_id.to_stored())
                .bind(now)
                .bind(upsert.status.code())
                .bind(upsert.has_data_changes as i8)
                .bind(portal.get())
                .bind(user.get());
            if existing.is_empty() {
                q = q.bind(now);
            }
            q.execute(&mut *tx).await?;
            let row: PortalUserReferenceRow = sqlx::query_as(&newest_portal_sql())
                .bind(portal.get())
                .bind(user.get())
                .fetch_one(&mut *tx)
                .await?;
            (row.into(), existing.is_empty())
        })
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn patch_portal_user_reference(
        &self,
        portal: PortalId,
        user: EfsUserId,
        patch: &PortalUserReferencePatch,
    ) -> StorageResult<Option<PortalUserReference>> {
        in_transaction!(self, begin_write, pool, tx => {
            let existing = lock_portal_refs!(pool, tx, portal, user);
            if existing.is_empty() {
                None
            } else {
                let mut q = pool.builder("UPDATE iam_portal_user_reference SET updated_at = ");
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
                let row: Option<PortalUserReferenceRow> = sqlx::query_as(&newest_portal_sql())
                    .bind(portal.get())
                    .bind(user.get())
                    .fetch_optional(&mut *tx)
                    .await?;
                row.map(Into::into)
            }
        })
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn mark_portal_sync_failed(
        &self,
        portal: PortalId,
        user: EfsUserId,
        okta_user_id: Option<&OktaUserId>,
        status: PortalUserStatus,
    ) -> StorageResult<()> {
        let uuid = okta_user_id.map(|o| o.to_stored());
        let now = now();
        in_transaction!(self, begin_write, pool, tx => {
            let existing = lock_portal_refs!(pool, tx, portal, user);
            // One bind order for both statements; an insert also sets created_at and
            // flags the data as changed (the user still needs a sync).
            let write = if existing.is_empty() {
                "INSERT INTO iam_portal_user_reference \
                 (status, updated_at, uuid, portal_id, user_id, created_at, has_data_changes) \
                 VALUES (?, ?, ?, ?, ?, ?, 1)"
            } else {
                "UPDATE iam_portal_user_reference SET status = ?, updated_at = ?, \
                 uuid = COALESCE(?, uuid) WHERE portal_id = ? AND user_id = ?"
            };
            let mut q = sqlx::query(write)
                .bind(status.code())
                .bind(now)
                .bind(uuid.clone())
                .bind(portal.get())
                .bind(user.get());
            if existing.is_empty() {
                q = q.bind(now);
            }
            q.execute(&mut *tx).await?;
        })
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn delete_portal_user_reference(
        &self,
        portal: PortalId,
        user: EfsUserId,
    ) -> StorageResult<u64> {
        let sql = "DELETE FROM iam_portal_user_reference WHERE portal_id = ? AND user_id = ?";
        Ok(on_dialect!(self, pool => {
            sqlx::query(sql)
                .bind(portal.get())
                .bind(user.get())
                .execute(pool)
                .await?
                .rows_affected()
        }))
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn references_to_okta_user(
        &self,
        okta_user_id: &OktaUserId,
    ) -> StorageResult<(Vec<AdminUserReference>, Vec<PortalUserReference>)> {
        let stored = okta_user_id.to_stored();
        let admin_sql =
            format!("SELECT {ADMIN_COLS} FROM iam_user_reference WHERE uuid = ? ORDER BY id");
        let portal_sql = format!(
            "SELECT {PORTAL_COLS} FROM iam_portal_user_reference WHERE uuid = ? ORDER BY id"
        );
        let (admins, portal_users): (Vec<AdminUserReferenceRow>, Vec<PortalUserReferenceRow>) = on_dialect!(self, pool => (
            sqlx::query_as(&admin_sql).bind(&stored).fetch_all(pool).await?,
            sqlx::query_as(&portal_sql).bind(&stored).fetch_all(pool).await?,
        ));
        Ok((
            admins.into_iter().map(Into::into).collect(),
            portal_users.into_iter().map(Into::into).collect(),
        ))
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn efs_user_exists(&self, kind: EfsUserKind, user: EfsUserId) -> StorageResult<bool> {
        let table = match kind {
            EfsUserKind::Admin => "users",
            EfsUserKind::Panelist => "panelists",
        };
        let sql = format!("SELECT COUNT(*) FROM {table} WHERE uid = ?");
        on_dialect!(self, pool => {
            if !pool.has_efs_core() {
                return Ok(true);
            }
            let n: i64 = sqlx::query_scalar(&sql).bind(user.get()).fetch_one(pool).await?;
            Ok(n > 0)
        })
    }
}
