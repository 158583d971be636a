//! The log of errors received from Okta (`iam_error_log`): written by efs-iam's Okta
//! adapter and by EFS, read by operators.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, FixedOffset, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{
    cursor_position, integral, keyset_page, page_limit, AppJson, AppPath, AppQuery, ResourceId,
};
use super::problem::{ApiError, ApiResult, FieldError, Problem};
use super::reply::{accepted, utc};
use super::state::AppState;
use super::sync::RunState;
use crate::auth::Caller;
use crate::domain::{check_text, parse_row_id, Invalid, TEXT_MAX_CHARS};
use crate::storage::{now, ErrorLogEntry, ErrorLogPurge, ErrorLogQuery, NewErrorLogEntry};
use crate::sync::{ErrorLogPurgeWorker, Worker};

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;
/// `message TEXT` holds 65,535 bytes: this many characters of up to three bytes (utf8).
const MESSAGE_LIMIT: usize = TEXT_MAX_CHARS;
/// `trace LONGTEXT` could hold 4 GiB; a trace beyond 262,144 characters (1 MiB) is
/// refused as a mistake.
const TRACE_LIMIT: usize = 262_144;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(record_error, query_error_log, purge_error_log))
        .routes(routes!(get_error_log_entry))
        .routes(routes!(get_error_log_purge))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"id": 17, "created_at": "2026-11-27T09:00:00Z", "message": "Api validation failed: login", "status_code": 400, "trace": "POST /api/v1/users X-Okta-Request-Id=reqVy8wsvmBQN27h4soUE3ZEnA", "error_code": "E0000001"}))]
pub struct ErrorLogEntryBody {
    pub id: i32,
    pub created_at: DateTime<Utc>,
    pub message: Option<String>,
    /// HTTP status Okta answered with (0 when there was no answer).
    pub status_code: i16,
    pub trace: Option<String>,
    /// Okta's `errorCode`, e.g. `E0000047`; empty when there was none.
    pub error_code: String,
}

impl From<ErrorLogEntry> for ErrorLogEntryBody {
    fn from(e: ErrorLogEntry) -> Self {
        Self {
            id: e.id,
            created_at: utc(e.created_at),
            message: e.message,
            status_code: e.status_code,
            trace: e.trace,
            error_code: e.error_code,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"message": "Api validation failed: login", "status_code": 400, "error_code": "E0000001", "trace": "POST /api/v1/users"}))]
pub struct NewErrorLogEntryBody {
    /// At most 21,845 characters (the TEXT column's 65,535 bytes).
    #[schema(max_length = 21845, pattern = "^[\\u0000-\\uFFFF]*$")]
    pub message: Option<String>,
    /// HTTP status, 0 to 999 (default 0: no answer).
    #[serde(default, deserialize_with = "integral")]
    #[schema(minimum = 0, maximum = 999)]
    pub status_code: i64,
    /// At most 262,144 characters.
    #[schema(max_length = 262144, pattern = "^[\\u0000-\\uFFFF]*$")]
    pub trace: Option<String>,
    /// Okta error code, at most 36 characters (default empty).
    #[serde(default)]
    #[schema(max_length = 36, pattern = "^[\\u0000-\\uFFFF]*$")]
    pub error_code: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ErrorLogPage {
    pub items: Vec<ErrorLogEntryBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ErrorLogListQuery {
    /// Entries at or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub since: Option<String>,
    /// Entries before this time (RFC 3339).
    #[param(format = DateTime)]
    pub until: Option<String>,
    #[param(minimum = 0, maximum = 999)]
    pub status_code: Option<i64>,
    #[param(max_length = 36, pattern = "^[\\u0000-\\uFFFF]*$")]
    pub error_code: Option<String>,
    /// Text contained in the message. No index answers "contains": every entry in the
    /// range is read, so on a large log combine it with `since`/`until`.
    #[param(max_length = 200, pattern = "^[\\u0000-\\uFFFF]*$")]
    pub q: Option<String>,
    /// Page size, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    #[param(min_length = 1, pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PurgeQuery {
    /// Deletes every entry created before this time (RFC 3339). Required.
    #[param(format = DateTime)]
    pub before: String,
}

/// A purge of the error log, done by a worker outside the request that asked for it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"purge_id": "0b6d1c8e-53a5-4a59-9a77-6f2c6c1d2e10", "before": "2026-11-01T00:00:00Z", "state": "succeeded", "requested_by": "efs-admin", "created_at": "2026-12-01T03:00:00Z", "started_at": "2026-12-01T03:00:00Z", "finished_at": "2026-12-01T03:00:07Z", "deleted": 61834, "attempts": 1, "error": null, "status_url": "/api/v1/errors/purges/0b6d1c8e-53a5-4a59-9a77-6f2c6c1d2e10"}))]
pub struct ErrorLogPurgeBody {
    pub purge_id: String,
    /// Every entry created before this time is deleted.
    pub before: DateTime<Utc>,
    pub state: RunState,
    /// The `sub` of the caller who asked.
    pub requested_by: String,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Entries deleted so far.
    pub deleted: i64,
    pub attempts: i32,
    /// Why it failed (`failed`), or the last failure of a purge waiting for a retry.
    pub error: Option<String>,
    pub status_url: String,
}

impl From<ErrorLogPurge> for ErrorLogPurgeBody {
    fn from(p: ErrorLogPurge) -> Self {
        Self {
            status_url: format!("/api/v1/errors/purges/{}", p.id),
            purge_id: p.id,
            before: utc(p.purge_before),
            state: RunState::of(&p.state),
            requested_by: p.requested_by,
            created_at: utc(p.created_at),
            started_at: p.started_at.map(utc),
            finished_at: p.finished_at.map(utc),
            deleted: p.deleted,
            attempts: p.attempts,
            error: p.error,
        }
    }
}

/// Position of the last entry of a page: newest first means (created_at, id) desc.
#[derive(Serialize, Deserialize)]
struct Position(NaiveDateTime, i32);

fn timestamp(field: &str, raw: &str) -> ApiResult<NaiveDateTime> {
    DateTime::<FixedOffset>::parse_from_rfc3339(raw)
        .map(|t| t.naive_utc())
        .map_err(|_| {
            ApiError::invalid_parameter(
                field,
                "must be an RFC 3339 time, e.g. 2026-11-27T09:00:00Z",
            )
        })
}

fn status_code(value: i64) -> Result<i16, Invalid> {
    if (0..=999).contains(&value) {
        Ok(value as i16)
    } else {
        Err(Invalid::new("must be from 0 to 999"))
    }
}

/// Records an error.
#[utoipa::path(
    post, path = "/errors", tag = "error log",
    request_body = NewErrorLogEntryBody,
    responses(
        (status = 201, description = "Recorded", body = ErrorLogEntryBody, headers(("Location" = String, description = "The entry's URL"))),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 413, description = "Body too large", body = Problem),
        (status = 415, description = "Not JSON", body = Problem),
        (status = 422, description = "A field is invalid", body = Problem),
        (status = 503, description = "Database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn record_error(
    State(state): State<AppState>,
    AppJson(body): AppJson<NewErrorLogEntryBody>,
) -> ApiResult<Response> {
    let mut errors = Vec::new();
    let status = status_code(body.status_code);
    if let Err(e) = &status {
        errors.push(FieldError::new("status_code", e));
    }
    let checks = [
        ("message", body.message.as_deref(), MESSAGE_LIMIT),
        ("trace", body.trace.as_deref(), TRACE_LIMIT),
        ("error_code", Some(body.error_code.as_str()), 36),
    ];
    for (field, value, limit) in checks {
        if let Some(Err(e)) = value.map(|v| check_text(v, limit)) {
            errors.push(FieldError::new(field, e));
        }
    }
    let (Ok(status_code), true) = (status, errors.is_empty()) else {
        return Err(ApiError::Validation(errors));
    };
    let entry = state
        .error_log
        .record_error(&NewErrorLogEntry {
            message: body.message,
            status_code,
            trace: body.trace,
            error_code: body.error_code,
        })
        .await?;
    let location = format!("/api/v1/errors/{}", entry.id);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(ErrorLogEntryBody::from(entry)),
    )
        .into_response())
}

/// Queries the error log, newest first.
#[utoipa::path(
    get, path = "/errors", tag = "error log",
    params(ErrorLogListQuery),
    responses(
        (status = 200, description = "One page of entries", body = ErrorLogPage),
        (status = 400, description = "Invalid filter, limit or cursor", body = Problem),
        (status = 503, description = "Database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn query_error_log(
    State(state): State<AppState>,
    AppQuery(query): AppQuery<ErrorLogListQuery>,
) -> ApiResult<Json<ErrorLogPage>> {
    let limit = page_limit(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let since = query
        .since
        .as_deref()
        .map(|s| timestamp("since", s))
        .transpose()?;
    let until = query
        .until
        .as_deref()
        .map(|s| timestamp("until", s))
        .transpose()?;
    let status_code = query
        .status_code
        .map(status_code)
        .transpose()
        .map_err(|e| ApiError::invalid_parameter("status_code", e))?;
    for (field, value, max) in [("error_code", &query.error_code, 36), ("q", &query.q, 200)] {
        if let Some(Err(e)) = value.as_deref().map(|v| check_text(v, max)) {
            return Err(ApiError::invalid_parameter(field, e));
        }
    }
    let before =
        cursor_position::<Position>(query.cursor.as_deref())?.map(|Position(at, id)| (at, id));
    let rows = state
        .error_log
        .query_error_log(&ErrorLogQuery {
            since,
            until,
            status_code,
            error_code: query.error_code,
            text: query.q,
            before,
            limit: limit + 1,
        })
        .await?;
    let (rows, next_cursor) = keyset_page(rows, limit, |r| Position(r.created_at, r.id));
    Ok(Json(ErrorLogPage {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// `{id}` of an entry.
#[derive(Debug, Deserialize)]
struct EntryPath {
    id: EntryId,
}

#[derive(Debug)]
struct EntryId(i32);

impl<'de> Deserialize<'de> for EntryId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        parse_row_id(&raw)
            .map(EntryId)
            .map_err(serde::de::Error::custom)
    }
}

/// One error log entry.
#[utoipa::path(
    get, path = "/errors/{id}", tag = "error log",
    params(("id" = i32, Path, description = "Entry id", minimum = 1, maximum = 2147483647)),
    responses(
        (status = 200, description = "The entry", body = ErrorLogEntryBody),
        (status = 400, description = "Invalid id", body = Problem),
        (status = 404, description = "No such entry", body = Problem),
        (status = 503, description = "Database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn get_error_log_entry(
    State(state): State<AppState>,
    AppPath(EntryPath { id }): AppPath<EntryPath>,
) -> ApiResult<Json<ErrorLogEntryBody>> {
    let id = id.0;
    let entry = state
        .error_log
        .error_log_entry(id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no error log entry {id}")))?;
    Ok(Json(entry.into()))
}

/// Deletes every entry created before `before`, in the background.
///
/// Stores a purge and answers at once (202, the purge's status URL in `Location`); a
/// worker deletes the entries in paced batches, oldest first, so that a large purge
/// never holds up other requests. Follow it at `status_url`: entries go as the purge
/// goes, the oldest first, and `deleted` counts them.
#[utoipa::path(
    delete, path = "/errors", tag = "error log",
    params(PurgeQuery),
    responses(
        (status = 202, description = "Purge stored; a worker does it", body = ErrorLogPurgeBody,
         headers(("Location" = String, description = "The purge's status URL"))),
        (status = 400, description = "Missing or invalid `before`", body = Problem),
        (status = 503, description = "Database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn purge_error_log(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    AppQuery(query): AppQuery<PurgeQuery>,
) -> ApiResult<Response> {
    let before = timestamp("before", &query.before)?;
    let id = uuid::Uuid::new_v4().hyphenated().to_string();
    let purge = state
        .error_log_purges
        .create_error_log_purge(&id, before, &caller.subject, now())
        .await?;
    state.sync.trigger(ErrorLogPurgeWorker::NAME)?;
    tracing::info!(target: "audit", sub = %caller.subject, purge = %id, %before, "error-log purge asked for");
    let body = ErrorLogPurgeBody::from(purge);
    Ok(accepted(&body.status_url.clone(), body))
}

#[derive(Debug, Deserialize)]
struct PurgePath {
    purge_id: ResourceId,
}

/// A purge of the error log: its state, and how many entries it deleted so far.
///
/// Purges that ended are kept for 7 days.
#[utoipa::path(
    get, path = "/errors/purges/{purge_id}", tag = "error log",
    params(("purge_id" = String, Path, description = "Purge id from `DELETE /errors`", min_length = 36, max_length = 36,
            pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")),
    responses(
        (status = 200, description = "The purge", body = ErrorLogPurgeBody),
        (status = 400, description = "Invalid purge id", body = Problem),
        (status = 404, description = "No such purge (or it ended more than 7 days ago)", body = Problem),
        (status = 503, description = "Database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn get_error_log_purge(
    State(state): State<AppState>,
    AppPath(PurgePath {
        purge_id: ResourceId(id),
    }): AppPath<PurgePath>,
) -> ApiResult<Json<ErrorLogPurgeBody>> {
    let purge = state
        .error_log_purges
        .error_log_purge(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no error-log purge {id}")))?;
    Ok(Json(purge.into()))
}
