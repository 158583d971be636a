//! `efs_iam_managed_okta_user` and `efs_iam_okta_user_creation` (migration 0008): the
//! Okta users efs-iam manages, and the logins it is creating a user for. The
//! boundary's rules are `sync::boundary`'s; this is their record.

use std::collections::HashSet;

use async_trait::async_trait;
use chrono::NaiveDateTime;
use sqlx::FromRow;

use super::sql::{is_unique_violation, on_dialect, push_ids, SqlStore, CHUNK};
use super::StorageResult;
use crate::domain::OktaUserId;

/// How an Okta user came under efs-iam's management.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManagedOrigin {
    /// efs-iam created it.
    Created,
    /// An `iam:admin` adopted it (one user, or a bulk adoption run).
    Adopted,
}

impl ManagedOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Adopted => "adopted",
        }
    }
}

/// An Okta user efs-iam manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedOktaUser {
    pub okta_user_id: String,
    /// `created` or `adopted`.
    pub origin: String,
    /// `efs-iam`, or the adopting caller's `sub`.
    pub managed_by: String,
    pub managed_at: NaiveDateTime,
    pub login: Option<String>,
}

#[derive(FromRow)]
struct ManagedRow {
    okta_user_id: Vec<u8>,
    origin: String,
    managed_by: String,
    managed_at: NaiveDateTime,
    login: Option<String>,
}

impl From<ManagedRow> for ManagedOktaUser {
    fn from(r: ManagedRow) -> Self {
        Self {
            okta_user_id: OktaUserId::from_stored(&r.okta_user_id),
            origin: r.origin,
            managed_by: r.managed_by,
            managed_at: r.managed_at,
            login: r.login,
        }
    }
}

#[async_trait]
pub trait ManagedUserStore: Send + Sync + 'static {
    async fn managed_okta_user(&self, id: &OktaUserId) -> StorageResult<Option<ManagedOktaUser>>;
    /// Which of `ids` efs-iam manages.
    async fn managed_among(&self, ids: &[OktaUserId]) -> StorageResult<HashSet<String>>;
    /// Records the user as managed; `false` when it was already (the first record
    /// stays).
    async fn manage_okta_user(
        &self,
        id: &OktaUserId,
        origin: ManagedOrigin,
        managed_by: &str,
        login: Option<&str>,
        now: NaiveDateTime,
    ) -> StorageResult<bool>;
    /// Marks that efs-iam is about to create a user with `login` (kept when marked
    /// already: the first attempt's time counts).
    async fn mark_creation(&self, login: &str, now: NaiveDateTime) -> StorageResult<()>;
    /// When efs-iam started creating a user with `login`, if it did and has not
    /// recorded the result yet.
    async fn creation_started(&self, login: &str) -> StorageResult<Option<NaiveDateTime>>;
    async fn clear_creation(&self, login: &str) -> StorageResult<()>;
}

const COLS: &str = "okta_user_id, origin, managed_by, managed_at, login";

/// Logins are compared as Okta compares them: ignoring case.
fn login_key(login: &str) -> String {
    login.to_lowercase()
}

#[async_trait]
impl ManagedUserStore for SqlStore {
    #[tracing::instrument(skip(self), level = "debug", err(level = "debug"))]
    async fn managed_okta_user(&self, id: &OktaUserId) -> StorageResult<Option<ManagedOktaUser>> {
        let sql = format!("SELECT {COLS} FROM efs_iam_managed_okta_user WHERE okta_user_id = ?");
        let row: Option<ManagedRow> = on_dialect!(self, pool => {
            sqlx::query_as(&sql).bind(id.to_stored()).fetch_optional(pool).await?
        });
        Ok(row.map(Into::into))
    }

    #[tracing::instrument(skip(self, ids), level = "debug", fields(ids = ids.len()), err(level = "debug"))]
    async fn managed_among(&self, ids: &[OktaUserId]) -> StorageResult<HashSet<String>> {
        let stored: Vec<Vec<u8>> = ids.iter().map(OktaUserId::to_stored).collect();
        let mut managed = HashSet::new();
        for chunk in stored.chunks(CHUNK) {
            let refs: Vec<&[u8]> = chunk.iter().map(Vec::as_slice).collect();
            let found: Vec<Vec<u8>> = on_dialect!(self, pool => {
                let mut q = pool.builder(
                    "SELECT okta_user_id FROM efs_iam_managed_okta_user WHERE okta_user_id",
                );
                push_ids(&mut q, &refs);
                q.build_query_scalar().fetch_all(pool).await?
            });
            managed.extend(found.iter().map(|b| OktaUserId::from_stored(b)));
        }
        Ok(managed)
    }

    #[tracing::instrument(skip(self, managed_by), err(level = "debug"))]
    async fn manage_okta_user(
        &self,
        id: &OktaUserId,
        origin: ManagedOrigin,
        managed_by: &str,
        login: Option<&str>,
        now: NaiveDateTime,
    ) -> StorageResult<bool> {
        let sql = "INSERT INTO efs_iam_managed_okta_user \
                   (okta_user_id, origin, managed_by, managed_at, login) VALUES (?, ?, ?, ?, ?)";
        let inserted = on_dialect!(self, pool => {
            sqlx::query(sql)
                .bind(id.to_stored())
                .bind(origin.as_str())
                .bind(managed_by)
                .bind(now)
                .bind(login)
                .execute(pool)
                .await
                .map(drop)
        });
        match inserted {
            Ok(()) => Ok(true),
            Err(e) if is_unique_violation(&e) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    #[tracing::instrument(skip(self, login), level = "debug", err(level = "debug"))]
    async fn mark_creation(&self, login: &str, now: NaiveDateTime) -> StorageResult<()> {
        let sql = "INSERT INTO efs_iam_okta_user_creation (login_key, started_at) VALUES (?, ?)";
        let inserted = on_dialect!(self, pool => {
            sqlx::query(sql)
                .bind(login_key(login))
                .bind(now)
                .execute(pool)
                .await
                .map(drop)
        });
        match inserted {
            Err(e) if !is_unique_violation(&e) => Err(e.into()),
            _ => Ok(()),
        }
    }

    #[tracing::instrument(skip(self, login), level = "debug", err(level = "debug"))]
    async fn creation_started(&self, login: &str) -> StorageResult<Option<NaiveDateTime>> {
        let sql = "SELECT started_at FROM efs_iam_okta_user_creation WHERE login_key = ?";
        Ok(on_dialect!(self, pool => {
            sqlx::query_scalar(sql)
                .bind(login_key(login))
                .fetch_optional(pool)
                .await?
        }))
    }

    #[tracing::instrument(skip(self, login), level = "debug", err(level = "debug"))]
    async fn clear_creation(&self, login: &str) -> StorageResult<()> {
        let sql = "DELETE FROM efs_iam_okta_user_creation WHERE login_key = ?";
        on_dialect!(self, pool => {
            sqlx::query(sql).bind(login_key(login)).execute(pool).await?;
        });
        Ok(())
    }
}
