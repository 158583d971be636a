//! The IdP token records stored per login session: `iam_token_data` (here), or
//! memcached (`memcached.rs`). Backends store opaque values; encryption, hashing and
//! expiry rules live in the token vault (`tokens`), so every backend runs the same
//! contract.

use async_trait::async_trait;
use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::FromRow;

use super::sql::PURGE_BATCH;
use super::sql::{in_transaction, on_dialect, push_ids, PurgeRange, SqlStore};
use super::{DatabaseStatus, StorageError};

/// Why a token store call failed.
#[derive(Debug, thiserror::Error)]
pub enum TokenStoreError {
    /// The SQL store's database.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A memcached server did not answer (or answered garbage).
    #[error("token store unavailable: {0}")]
    Unavailable(String),
    /// The value does not fit the backend's item size limit.
    #[error("{size} bytes exceed the token store's item limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
}

impl From<sqlx::Error> for TokenStoreError {
    fn from(e: sqlx::Error) -> Self {
        Self::Storage(e.into())
    }
}

pub type TokenStoreResult<T> = Result<T, TokenStoreError>;

/// Where one session's token record is stored: the keyed hash efs-iam writes, and the
/// raw session id that legacy rows were written under.
#[derive(Clone, Copy)]
pub struct TokenKey<'a> {
    pub hashed: &'a [u8],
    /// Looked up when nothing is stored under `hashed`; removed by every write.
    pub legacy: Option<&'a [u8]>,
}

/// Key bytes are secrets: never printed.
impl std::fmt::Debug for TokenKey<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

/// A record to store. `value` is already sealed by the vault.
pub struct NewTokenRecord<'a> {
    pub value: &'a str,
    pub stored_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Keyed hash of the verified Okta subject, for "log out everywhere".
    pub subject: Option<&'a [u8]>,
}

/// One session's token record as a backend returns it.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredToken {
    /// The sealed value, or a legacy plaintext response (`None` for a NULL column).
    pub idp_response: Option<String>,
    /// `None` on legacy rows and on memcached (the sealed value carries it there).
    pub stored_at: Option<NaiveDateTime>,
    pub expires_at: Option<NaiveDateTime>,
    /// Found under the legacy raw session id rather than the keyed hash.
    pub legacy_key: bool,
}

/// May hold a legacy plaintext response: never printed.
impl std::fmt::Debug for StoredToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredToken")
            .field("stored_at", &self.stored_at)
            .field("expires_at", &self.expires_at)
            .field("legacy_key", &self.legacy_key)
            .finish_non_exhaustive()
    }
}

/// One `iam_token_data` row, for `tokens re-encrypt`.
#[derive(Clone, FromRow)]
pub struct TokenRow {
    pub id: i64,
    pub session_id: Vec<u8>,
    pub idp_response: Option<String>,
    pub stored_at: Option<NaiveDateTime>,
    pub expires_at: Option<NaiveDateTime>,
}

/// Rows carry raw legacy session ids and plaintext responses: never printed.
impl std::fmt::Debug for TokenRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRow")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// `sql:mysql`, `sql:sqlite` or `memcached`, for logs and health answers.
    fn token_backend(&self) -> &'static str;
    /// The backend answers (for `/health/ready`).
    async fn check_token_store(&self) -> TokenStoreResult<()>;
    /// Replaces whatever is stored for the session, under either key (legacy
    /// duplicates included).
    async fn put_token(
        &self,
        key: TokenKey<'_>,
        record: &NewTokenRecord<'_>,
    ) -> TokenStoreResult<()>;
    /// The newest record under `key.hashed`, else the newest under `key.legacy`.
    async fn get_token(&self, key: TokenKey<'_>) -> TokenStoreResult<Option<StoredToken>>;
    /// Removes the session under both keys; `true` when something was deleted.
    async fn delete_token(&self, key: TokenKey<'_>) -> TokenStoreResult<bool>;
    /// Removes every record stored with this subject hash; returns how many.
    async fn delete_subject_tokens(&self, subject: &[u8]) -> TokenStoreResult<u64>;
    /// Deletes records that expired at or before `now`, and gives legacy rows without
    /// an expiry `legacy_expiry`. Backends with native expiry do nothing.
    async fn purge_expired_tokens(
        &self,
        now: DateTime<Utc>,
        legacy_expiry: DateTime<Utc>,
    ) -> TokenStoreResult<u64>;
    /// Up to `limit` records with a row id above `after`, in id order; `None` when the
    /// backend cannot list its records by row id. For `tokens re-encrypt`.
    async fn scan_tokens(&self, after: i64, limit: u32) -> TokenStoreResult<Option<Vec<TokenRow>>>;
    /// Rewrites one row in place, only if it still holds `expected`; `false` when a
    /// concurrent write changed it first.
    async fn rewrite_token(
        &self,
        row: &TokenRow,
        session_id: &[u8],
        value: &str,
        expires_at: DateTime<Utc>,
    ) -> TokenStoreResult<bool>;
}

/// Both keys of a session, bound to `session_id = ? OR session_id = ?`.
fn either(key: TokenKey<'_>) -> (&[u8], &[u8]) {
    (key.hashed, key.legacy.unwrap_or(key.hashed))
}

const DELETE_SESSION: &str = "DELETE FROM iam_token_data WHERE session_id = ? OR session_id = ?";

#[async_trait]
impl TokenStore for SqlStore {
    fn token_backend(&self) -> &'static str {
        match self.backend() {
            "mysql" => "sql:mysql",
            _ => "sql:sqlite",
        }
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn check_token_store(&self) -> TokenStoreResult<()> {
        // Same database as everything else: reachable and migrated.
        Ok(self.check_ready().await?)
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn put_token(&self, key: TokenKey<'_>, new: &NewTokenRecord<'_>) -> TokenStoreResult<()> {
        let (hashed, legacy) = either(key);
        Ok(in_transaction!(self, begin_write, pool, tx => {
            sqlx::query(DELETE_SESSION)
                .bind(hashed)
                .bind(legacy)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO iam_token_data \
                 (session_id, idp_response, stored_at, expires_at, subject_hash) \
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(hashed)
            .bind(new.value)
            .bind(new.stored_at.naive_utc())
            .bind(new.expires_at.naive_utc())
            .bind(new.subject)
            .execute(&mut *tx)
            .await?;
        })?)
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn get_token(&self, key: TokenKey<'_>) -> TokenStoreResult<Option<StoredToken>> {
        type Row = (
            Vec<u8>,
            Option<String>,
            Option<NaiveDateTime>,
            Option<NaiveDateTime>,
        );
        // The hashed key first, then the newest legacy duplicate.
        let sql = "SELECT session_id, idp_response, stored_at, expires_at FROM iam_token_data \
                   WHERE session_id = ? OR session_id = ? \
                   ORDER BY CASE WHEN session_id = ? THEN 0 ELSE 1 END, id DESC LIMIT 1";
        let (hashed, legacy) = either(key);
        let row: Option<Row> = on_dialect!(self, pool => {
            sqlx::query_as(sql)
                .bind(hashed)
                .bind(legacy)
                .bind(hashed)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.map(
            |(session_id, idp_response, stored_at, expires_at)| StoredToken {
                legacy_key: session_id.as_slice() != key.hashed,
                idp_response,
                stored_at,
                expires_at,
            },
        ))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn delete_token(&self, key: TokenKey<'_>) -> TokenStoreResult<bool> {
        let (hashed, legacy) = either(key);
        Ok(on_dialect!(self, pool => {
            sqlx::query(DELETE_SESSION)
                .bind(hashed)
                .bind(legacy)
                .execute(pool)
                .await?
                .rows_affected()
                > 0
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn delete_subject_tokens(&self, subject: &[u8]) -> TokenStoreResult<u64> {
        let sql = "DELETE FROM iam_token_data WHERE subject_hash = ?";
        Ok(on_dialect!(self, pool => {
            sqlx::query(sql).bind(subject).execute(pool).await?.rows_affected()
        }))
    }

    /// In batches of [`PURGE_BATCH`] rows, each read from an index after the previous
    /// batch's last row and written by a statement of its own, so that at a million
    /// sessions no statement holds its locks for long ([`SqlStore::purge_in_batches`]).
    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn purge_expired_tokens(
        &self,
        now: DateTime<Utc>,
        legacy_expiry: DateTime<Utc>,
    ) -> TokenStoreResult<u64> {
        let (now, legacy_expiry) = (now.naive_utc(), legacy_expiry.naive_utc());
        // Legacy rows without an expiry get one, in id order.
        let mut after = 0i64;
        loop {
            let ids: Vec<i64> = on_dialect!(self, pool => {
                sqlx::query_scalar(&format!(
                    "SELECT id FROM iam_token_data{} WHERE expires_at IS NULL AND id > ? \
                     ORDER BY id LIMIT ?",
                    pool.force_index("expires_at")
                ))
                .bind(after)
                .bind(PURGE_BATCH as i64)
                .fetch_all(pool)
                .await?
            });
            let Some(&last) = ids.last() else { break };
            after = last;
            on_dialect!(self, pool => {
                let mut q = pool.builder("UPDATE iam_token_data SET expires_at = ");
                q.push_bind(legacy_expiry)
                    .push(" WHERE expires_at IS NULL AND id");
                push_ids(&mut q, &ids);
                q.build().execute(pool).await?;
            });
            if ids.len() < PURGE_BATCH {
                break;
            }
        }
        // Expired rows go, oldest expiry first.
        let range = PurgeRange {
            table: "iam_token_data",
            column: "expires_at",
            op: "<=",
            index: "expires_at",
        };
        Ok(self.purge_in_batches(&range, now).await?)
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn scan_tokens(&self, after: i64, limit: u32) -> TokenStoreResult<Option<Vec<TokenRow>>> {
        let sql = "SELECT id, session_id, idp_response, stored_at, expires_at \
                   FROM iam_token_data WHERE id > ? ORDER BY id LIMIT ?";
        Ok(Some(on_dialect!(self, pool => {
            sqlx::query_as(sql)
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        })))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn rewrite_token(
        &self,
        row: &TokenRow,
        session_id: &[u8],
        value: &str,
        expires_at: DateTime<Utc>,
    ) -> TokenStoreResult<bool> {
        // NULL-safe comparison of the old value: `<=>` is MySQL-only and `IS` is
        // SQLite-only, so spell it out.
        let sql = "UPDATE iam_token_data SET session_id = ?, idp_response = ?, expires_at = ? \
                   WHERE id = ? AND session_id = ? \
                   AND ((idp_response IS NULL AND ? IS NULL) OR idp_response = ?)";
        Ok(on_dialect!(self, pool => {
            sqlx::query(sql)
                .bind(session_id)
                .bind(value)
                .bind(expires_at.naive_utc())
                .bind(row.id)
                .bind(row.session_id.as_slice())
                .bind(row.idp_response.as_deref())
                .bind(row.idp_response.as_deref())
                .execute(pool)
                .await?
                .rows_affected()
                == 1
        }))
    }
}
