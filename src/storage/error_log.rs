//! `iam_error_log`: the errors efs-iam received from Okta (written by the Okta adapter
//! and the sync engine, and by EFS-Admin through the API).

use async_trait::async_trait;
use chrono::NaiveDateTime;
use sqlx::FromRow;

use super::sql::{on_dialect, PurgePosition, PurgeRange, SqlStore};
use super::{now, StorageResult};
use crate::domain::{storable_text, truncate_bytes};

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ErrorLogEntry {
    pub id: i32,
    pub created_at: NaiveDateTime,
    pub message: Option<String>,
    pub status_code: i16,
    pub trace: Option<String>,
    pub error_code: String,
}

#[derive(Debug, Clone, Default)]
pub struct NewErrorLogEntry {
    pub message: Option<String>,
    pub status_code: i16,
    pub trace: Option<String>,
    pub error_code: String,
}

impl NewErrorLogEntry {
    /// A row efs-iam writes itself (the Okta adapter, the sync engine and its workers),
    /// its texts made to fit their columns: characters outside the Basic Multilingual
    /// Plane replaced (the legacy `utf8` columns cannot hold them), `message` cut to
    /// `TEXT`'s 65,535 bytes, `trace` to 16 KiB (it could hold more, but a row is for
    /// people to read), `error_code` to its 36 characters; `status_code` is the HTTP
    /// status Okta answered, 0 for none. What callers send through the API is checked
    /// and refused instead, never cut.
    pub fn new(status_code: u16, error_code: &str, message: &str, trace: Option<&str>) -> Self {
        let fit = |s: &str, max_bytes| {
            truncate_bytes(&storable_text(s, usize::MAX), max_bytes).to_owned()
        };
        Self {
            message: Some(fit(message, MESSAGE_MAX_BYTES)),
            status_code: i16::try_from(status_code).unwrap_or(0),
            trace: trace.map(|t| fit(t, TRACE_MAX_BYTES)),
            error_code: storable_text(error_code, ERROR_CODE_MAX_CHARS),
        }
    }
}

/// `iam_error_log.message` is a `TEXT`.
const MESSAGE_MAX_BYTES: usize = 65_535;
/// `trace` is a `LONGTEXT`; what efs-iam writes there is kept readable.
const TRACE_MAX_BYTES: usize = 16 * 1024;
/// `iam_error_log.error_code` is `VARCHAR(36)`.
const ERROR_CODE_MAX_CHARS: usize = 36;

#[derive(Debug, Clone, Default)]
pub struct ErrorLogQuery {
    /// Inclusive.
    pub since: Option<NaiveDateTime>,
    /// Exclusive.
    pub until: Option<NaiveDateTime>,
    pub status_code: Option<i16>,
    pub error_code: Option<String>,
    /// Substring of `message`.
    pub text: Option<String>,
    /// Keyset position `(created_at, id)`: only older entries.
    pub before: Option<(NaiveDateTime, i32)>,
    pub limit: u32,
}

#[async_trait]
pub trait ErrorLogStore: Send + Sync + 'static {
    async fn record_error(&self, entry: &NewErrorLogEntry) -> StorageResult<ErrorLogEntry>;
    /// Rewrites a row's message and trace (a coalesced series of identical Okta errors
    /// gets its count on its first row). `false` when the row is gone (purged).
    async fn amend_error_log_entry(
        &self,
        id: i32,
        message: &str,
        trace: Option<&str>,
    ) -> StorageResult<bool>;
    async fn error_log_entry(&self, id: i32) -> StorageResult<Option<ErrorLogEntry>>;
    /// Newest first.
    async fn query_error_log(&self, query: &ErrorLogQuery) -> StorageResult<Vec<ErrorLogEntry>>;
    /// Deletes one batch of the entries created before `before`, oldest first, after
    /// `after` (where the previous batch ended): how many went, and where the next batch
    /// starts (`None`: none are left). A purge is these batches one after the other,
    /// done by its worker (`sync::workers::error_log_purges`), never inside a request.
    async fn purge_error_log_batch(
        &self,
        before: NaiveDateTime,
        after: Option<PurgePosition>,
    ) -> StorageResult<(u64, Option<PurgePosition>)>;
}

const COLS: &str = "id, created_at, message, status_code, trace, error_code";

#[async_trait]
impl ErrorLogStore for SqlStore {
    #[tracing::instrument(skip_all, fields(status_code = entry.status_code), err(level = "debug"))]
    async fn record_error(&self, entry: &NewErrorLogEntry) -> StorageResult<ErrorLogEntry> {
        let insert =
            "INSERT INTO iam_error_log (created_at, message, status_code, trace, error_code) \
                      VALUES (?, ?, ?, ?, ?)";
        let select = format!("SELECT {COLS} FROM iam_error_log WHERE id = ?");
        Ok(on_dialect!(self, pool => {
            let res = sqlx::query(insert)
                .bind(now())
                .bind(entry.message.as_deref())
                .bind(entry.status_code)
                .bind(entry.trace.as_deref())
                .bind(entry.error_code.as_str())
                .execute(pool)
                .await?;
            sqlx::query_as(&select)
                .bind(pool.last_insert_id(&res))
                .fetch_one(pool)
                .await?
        }))
    }

    #[tracing::instrument(skip(self, message, trace), err(level = "debug"))]
    async fn amend_error_log_entry(
        &self,
        id: i32,
        message: &str,
        trace: Option<&str>,
    ) -> StorageResult<bool> {
        let sql = "UPDATE iam_error_log SET message = ?, trace = ? WHERE id = ?";
        Ok(on_dialect!(self, pool => {
            sqlx::query(sql)
                .bind(message)
                .bind(trace)
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
                > 0
        }))
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn error_log_entry(&self, id: i32) -> StorageResult<Option<ErrorLogEntry>> {
        let sql = format!("SELECT {COLS} FROM iam_error_log WHERE id = ?");
        Ok(on_dialect!(self, pool => {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        }))
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn query_error_log(&self, query: &ErrorLogQuery) -> StorageResult<Vec<ErrorLogEntry>> {
        // Newest first along the index of the filter's column (migration 0007), else
        // along (created_at, id).
        let indexes = match (query.status_code.is_some(), query.error_code.is_some()) {
            (false, false) => "created_at_id",
            (true, false) => "status_code_created_at_id",
            (false, true) => "error_code_created_at_id",
            (true, true) => "status_code_created_at_id, error_code_created_at_id",
        };
        Ok(on_dialect!(self, pool => {
            let mut q = pool.builder(format!(
                "SELECT {COLS} FROM iam_error_log{} WHERE 1 = 1",
                pool.force_index(indexes)
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
            q.build_query_as().fetch_all(pool).await?
        }))
    }

    /// One batch ([`SqlStore::purge_batch`]).
    #[tracing::instrument(skip(self), level = "debug", err(level = "debug"))]
    async fn purge_error_log_batch(
        &self,
        before: NaiveDateTime,
        after: Option<PurgePosition>,
    ) -> StorageResult<(u64, Option<PurgePosition>)> {
        let range = PurgeRange {
            table: "iam_error_log",
            column: "created_at",
            op: "<",
            index: "created_at_id",
        };
        Ok(self.purge_batch(&range, before, after).await?)
    }
}
