//! `iam_portal_settings`: per-portal key/value settings (`okta_client_id`,
//! `okta_group_id`, …).
//!
//! The legacy table has no unique index on (portal, key): reads return the newest row,
//! writes set every duplicate, deletes remove them all. Keys compare case-insensitively
//! (the column's `utf8_general_ci` collation; `COLLATE NOCASE` on SQLite).

use async_trait::async_trait;
use sqlx::FromRow;

use super::sql::{in_transaction, on_dialect, SqlStore};
use super::StorageResult;
use crate::domain::{OktaGroupId, PortalId, SettingKey, OKTA_GROUP_ID};

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct PortalSetting {
    pub id: i32,
    pub key: Option<String>,
    pub value: Option<String>,
}

/// A portal's Okta group, as its `okta_group_id` setting names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortalGroup {
    Linked(OktaGroupId),
    /// No `okta_group_id` (or an empty one).
    NotLinked,
    /// A value that is no Okta group id (written before efs-iam checked it).
    Malformed(String),
}

impl PortalGroup {
    fn of(value: Option<&str>) -> Self {
        match value.map(str::trim).filter(|v| !v.is_empty()) {
            None => Self::NotLinked,
            Some(v) => {
                OktaGroupId::parse(v).map_or_else(|_| Self::Malformed(v.to_owned()), Self::Linked)
            }
        }
    }
}

/// What writing one key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingWrite {
    /// The portal had no row for the key.
    pub created: bool,
    /// The value before (of the newest row), for the audit log.
    pub previous: Option<String>,
}

#[async_trait]
pub trait PortalSettingsStore: Send + Sync + 'static {
    /// Every row of the portal, oldest first (callers let newer rows win).
    async fn portal_settings(&self, portal: PortalId) -> StorageResult<Vec<PortalSetting>>;
    /// The newest row of `key` (legacy data may hold several).
    async fn portal_setting(
        &self,
        portal: PortalId,
        key: &SettingKey,
    ) -> StorageResult<Option<PortalSetting>>;
    /// Sets every given key in one transaction; returns per key what it replaced.
    async fn put_portal_settings(
        &self,
        portal: PortalId,
        entries: &[(SettingKey, Option<String>)],
    ) -> StorageResult<Vec<SettingWrite>>;
    /// `key`'s value in every portal that has it (the newest row of each), by portal
    /// id: which portal an Okta group belongs to, which portals are linked.
    async fn settings_with_key(
        &self,
        key: &SettingKey,
    ) -> StorageResult<Vec<(i32, Option<String>)>>;
    /// Removes every row of `key`; `None` when there was none, else the value removed
    /// (of the newest row).
    async fn delete_portal_setting(
        &self,
        portal: PortalId,
        key: &SettingKey,
    ) -> StorageResult<Option<Option<String>>>;

    /// The portal's Okta group: the one place its `okta_group_id` is read.
    async fn portal_group(&self, portal: PortalId) -> StorageResult<PortalGroup> {
        let key = SettingKey::parse(OKTA_GROUP_ID).expect("a valid key");
        let setting = self.portal_setting(portal, &key).await?;
        Ok(PortalGroup::of(setting.and_then(|s| s.value).as_deref()))
    }

    /// Every linked portal (one with an `okta_group_id`) and its group, by portal id.
    async fn linked_portals(&self) -> StorageResult<Vec<(i32, PortalGroup)>> {
        let key = SettingKey::parse(OKTA_GROUP_ID).expect("a valid key");
        Ok(self
            .settings_with_key(&key)
            .await?
            .into_iter()
            .map(|(portal, value)| (portal, PortalGroup::of(value.as_deref())))
            .filter(|(_, group)| *group != PortalGroup::NotLinked)
            .collect())
    }

    /// The ids of every linked portal.
    async fn linked_portal_ids(&self) -> StorageResult<Vec<i32>> {
        Ok(self
            .linked_portals()
            .await?
            .into_iter()
            .map(|(p, _)| p)
            .collect())
    }
}

const COLS: &str = "id, `key`, value";

#[async_trait]
impl PortalSettingsStore for SqlStore {
    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn portal_settings(&self, portal: PortalId) -> StorageResult<Vec<PortalSetting>> {
        let sql = format!("SELECT {COLS} FROM iam_portal_settings WHERE portal_id = ? ORDER BY id");
        Ok(on_dialect!(self, pool => {
            sqlx::query_as(&sql).bind(portal.get()).fetch_all(pool).await?
        }))
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn portal_setting(
        &self,
        portal: PortalId,
        key: &SettingKey,
    ) -> StorageResult<Option<PortalSetting>> {
        let sql = format!(
            "SELECT {COLS} FROM iam_portal_settings WHERE portal_id = ? AND `key` = ? \
             ORDER BY id DESC LIMIT 1"
        );
        Ok(on_dialect!(self, pool => {
            sqlx::query_as(&sql)
                .bind(portal.get())
                .bind(key.as_str())
                .fetch_optional(pool)
                .await?
        }))
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn settings_with_key(
        &self,
        key: &SettingKey,
    ) -> StorageResult<Vec<(i32, Option<String>)>> {
        let sql = "SELECT portal_id, value FROM iam_portal_settings WHERE `key` = ? \
                   ORDER BY portal_id, id";
        let rows: Vec<(i32, Option<String>)> = on_dialect!(self, pool => {
            sqlx::query_as(sql).bind(key.as_str()).fetch_all(pool).await?
        });
        // Legacy duplicates: the newest row of a portal wins.
        let mut newest: Vec<(i32, Option<String>)> = Vec::new();
        for (portal, value) in rows {
            match newest.last_mut() {
                Some(last) if last.0 == portal => last.1 = value,
                _ => newest.push((portal, value)),
            }
        }
        Ok(newest)
    }

    #[tracing::instrument(skip(self, entries), fields(keys = entries.len()), err(level = "debug"))]
    async fn put_portal_settings(
        &self,
        portal: PortalId,
        entries: &[(SettingKey, Option<String>)],
    ) -> StorageResult<Vec<SettingWrite>> {
        in_transaction!(self, begin_write, pool, tx => {
            let select = format!(
                "SELECT id, value FROM iam_portal_settings WHERE portal_id = ? AND `key` = ? \
                 ORDER BY id DESC{}",
                pool.row_lock()
            );
            let mut writes = Vec::with_capacity(entries.len());
            for (key, value) in entries {
                let existing: Vec<(i32, Option<String>)> = sqlx::query_as(&select)
                    .bind(portal.get())
                    .bind(key.as_str())
                    .fetch_all(&mut *tx)
                    .await?;
                let write = if existing.is_empty() {
                    "INSERT INTO iam_portal_settings (value, portal_id, `key`) VALUES (?, ?, ?)"
                } else {
                    // Legacy duplicates all get the value, so whichever row an old
                    // reader picks, it sees the same thing.
                    "UPDATE iam_portal_settings SET value = ? WHERE portal_id = ? AND `key` = ?"
                };
                sqlx::query(write)
                    .bind(value.as_deref())
                    .bind(portal.get())
                    .bind(key.as_str())
                    .execute(&mut *tx)
                    .await?;
                writes.push(SettingWrite {
                    created: existing.is_empty(),
                    previous: existing.into_iter().next().and_then(|(_, v)| v),
                });
            }
            writes
        })
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn delete_portal_setting(
        &self,
        portal: PortalId,
        key: &SettingKey,
    ) -> StorageResult<Option<Option<String>>> {
        in_transaction!(self, begin_write, pool, tx => {
            let newest: Option<(i32, Option<String>)> = sqlx::query_as(&format!(
                "SELECT id, value FROM iam_portal_settings WHERE portal_id = ? AND `key` = ? \
                 ORDER BY id DESC LIMIT 1{}",
                pool.row_lock()
            ))
            .bind(portal.get())
            .bind(key.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM iam_portal_settings WHERE portal_id = ? AND `key` = ?")
                .bind(portal.get())
                .bind(key.as_str())
                .execute(&mut *tx)
                .await?;
            newest.map(|(_, value)| value)
        })
    }
}
