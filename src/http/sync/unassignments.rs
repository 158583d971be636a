//! `/sync/unassignments/*`: the unassignment worker's side of the queue (`iam:sync`): a
//! drain on demand, dead letters across portals, requeueing.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::domain::PortalId;
use crate::http::extract::{
    cursor_position, integral, integral_number, keyset_page, page_limit, AppJson, AppQuery,
};
use crate::http::problem::{ApiError, ApiResult, Problem};
use crate::http::reply::utc;
use crate::http::unassignment_queue::UnassignmentBody;
use crate::http::AppState;
use crate::storage::{QueueStats, RequeueSkip};
use crate::sync::Triggered;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(run_unassignments))
        .routes(routes!(requeue_unassignments))
        .routes(routes!(list_dead_letters))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QueueBody {
    /// Rows not dead: waiting, backing off or in progress.
    pub pending: i64,
    /// Pending rows due now.
    pub due: i64,
    /// Rows an instance is working on (leased).
    pub in_progress: i64,
    /// Dead letters (retries exhausted, or legacy rows that can never be processed).
    pub dead: i64,
    /// Dead letters without a portal (legacy rows; requeue them with one).
    pub dead_without_portal: i64,
    pub oldest_pending_at: Option<DateTime<Utc>>,
}

impl From<QueueStats> for QueueBody {
    fn from(q: QueueStats) -> Self {
        Self {
            pending: q.pending,
            due: q.due,
            in_progress: q.in_progress,
            dead: q.dead,
            dead_without_portal: q.dead_without_portal,
            oldest_pending_at: q.oldest_pending_at.map(utc),
        }
    }
}

const MAX_REQUEUE_IDS: usize = 10_000;
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    /// Ignored since the run became a trigger (the workers take the whole queue);
    /// still accepted, 1 to 100,000, so that older callers keep working.
    #[param(minimum = 1, maximum = 100000)]
    #[deprecated = "the run is a trigger; the workers take the whole queue"]
    pub max_rows: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"triggered": "woken", "queue": {"pending": 1200, "due": 1200, "in_progress": 100, "dead": 0, "dead_without_portal": 0, "oldest_due_at": "2026-11-29T10:00:00Z"}}))]
pub struct RunAccepted {
    /// `woken`: this instance's worker looks for work now. `started`: no worker loop
    /// runs in this instance (`EFS_IAM_SYNC_WORKER=false`), so a background drain was
    /// started here. `already_running`: such a drain is going and takes the new rows too.
    pub triggered: Triggered,
    /// The queue when the trigger was given; follow progress in `GET /sync/status`
    /// or the portal's queue list.
    pub queue: QueueBody,
}

/// Has the unassignment worker drain the queue now, and answers at once (202): the
/// work never runs inside the request, so a caller that gives up early leaves nothing
/// behind. The worker removes each due user from the portal's Okta group, deletes the
/// row once Okta has confirmed it, retries failures with backoff and keeps dead letters.
#[utoipa::path(
    post, path = "/sync/unassignments/run", tag = "unassignment queue",
    params(RunQuery),
    responses(
        (status = 202, description = "The worker was triggered; the queue at that moment", body = RunAccepted),
        (status = 400, description = "Invalid max_rows", body = Problem),
        (status = 503, description = "Okta not configured, or the database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn run_unassignments(
    State(state): State<AppState>,
    AppQuery(query): AppQuery<RunQuery>,
) -> ApiResult<(StatusCode, Json<RunAccepted>)> {
    #[allow(deprecated)]
    if query.max_rows.is_some_and(|n| !(1..=100_000).contains(&n)) {
        return Err(ApiError::invalid_parameter(
            "max_rows",
            "must be from 1 to 100000",
        ));
    }
    let (triggered, queue) = state.sync.run_unassignments().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(RunAccepted {
            triggered,
            queue: queue.into(),
        }),
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"portal_id": 12, "ids": [101, 102]}))]
pub struct RequeueRequest {
    /// The portal whose dead letters to requeue. Listed legacy rows without a portal are
    /// given this one.
    #[serde(deserialize_with = "integral")]
    #[schema(minimum = 1, maximum = 2147483647)]
    pub portal_id: i64,
    /// Only these rows (ids from the dead-letter lists); without it, every dead letter
    /// of the portal. Ids that name no dead letter are reported under `skipped`.
    #[schema(min_items = 1, max_items = 10000, value_type = Option<Vec<i64>>)]
    #[serde(default, deserialize_with = "integral_list")]
    pub ids: Option<Vec<i64>>,
}

/// A list of integers where, as in JSON Schema, `7.0` counts as one.
fn integral_list<'de, D>(deserializer: D) -> Result<Option<Vec<i64>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let Some(numbers) = Option::<Vec<serde_json::Number>>::deserialize(deserializer)? else {
        return Ok(None);
    };
    numbers
        .into_iter()
        .map(integral_number)
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    NotFound,
    /// Still pending; nothing to requeue.
    NotDead,
    /// Belongs to another portal.
    OtherPortal,
    /// A legacy row without an Okta user id: nothing could ever be removed.
    NoOktaUserId,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SkippedRow {
    pub id: i64,
    pub reason: SkipReason,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RequeueResult {
    pub portal_id: i32,
    /// Rows pending again, with a fresh attempt count.
    pub requeued: u64,
    /// Listed rows left as they were.
    pub skipped: Vec<SkippedRow>,
}

/// Requeues dead letters: they become pending again with a fresh attempt count (their
/// last error is kept for the record) and the worker picks them up.
#[utoipa::path(
    post, path = "/sync/unassignments/requeue", tag = "unassignment queue",
    request_body = RequeueRequest,
    responses(
        (status = 200, description = "Requeued", body = RequeueResult),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 413, description = "Body too large", body = Problem),
        (status = 415, description = "Not JSON", body = Problem),
        (status = 422, description = "Invalid portal id or row ids", body = Problem),
        (status = 503, description = "Database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn requeue_unassignments(
    State(state): State<AppState>,
    AppJson(body): AppJson<RequeueRequest>,
) -> ApiResult<Json<RequeueResult>> {
    let portal = PortalId::parse(&body.portal_id.to_string())
        .map_err(|e| ApiError::invalid_field("portal_id", e))?;
    let ids = match &body.ids {
        None => None,
        Some(ids) if ids.is_empty() || ids.len() > MAX_REQUEUE_IDS => {
            return Err(ApiError::invalid_field(
                "ids",
                format!("must hold 1 to {MAX_REQUEUE_IDS} ids"),
            ))
        }
        Some(ids) => Some(ids.clone()),
    };
    // Ids outside the INT range cannot name a row: reported as not found.
    let (in_range, out_of_range): (Vec<i64>, Vec<i64>) = ids
        .unwrap_or_default()
        .into_iter()
        .partition(|id| (1..=i64::from(i32::MAX)).contains(id));
    let ids: Option<Vec<i32>> = body
        .ids
        .as_ref()
        .map(|_| in_range.iter().map(|id| *id as i32).collect());
    let mut outcome = state
        .sync
        .requeue_unassignments(portal, ids.as_deref())
        .await?;
    let skipped_out_of_range: Vec<SkippedRow> = out_of_range
        .iter()
        .map(|id| SkippedRow {
            id: *id,
            reason: SkipReason::NotFound,
        })
        .collect();
    let requeued = outcome.requeued;
    Ok(Json(RequeueResult {
        portal_id: portal.get(),
        requeued,
        skipped: std::mem::take(&mut outcome.skipped)
            .into_iter()
            .map(|(id, reason)| SkippedRow {
                id: i64::from(id),
                reason: match reason {
                    RequeueSkip::NotFound => SkipReason::NotFound,
                    RequeueSkip::NotDead => SkipReason::NotDead,
                    RequeueSkip::OtherPortal => SkipReason::OtherPortal,
                    RequeueSkip::NoOktaUserId => SkipReason::NoOktaUserId,
                },
            })
            .chain(skipped_out_of_range)
            .collect(),
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterQuery {
    /// Only legacy rows without a portal.
    pub without_portal: Option<bool>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1, pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterPage {
    pub items: Vec<UnassignmentBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Dead letters of every portal, including legacy rows without a portal (which the
/// per-portal list cannot show), oldest first.
#[utoipa::path(
    get, path = "/sync/unassignments/dead", tag = "unassignment queue",
    params(DeadLetterQuery),
    responses(
        (status = 200, description = "One page of dead letters", body = DeadLetterPage),
        (status = 400, description = "Invalid limit or cursor", body = Problem),
        (status = 503, description = "Database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn list_dead_letters(
    State(state): State<AppState>,
    AppQuery(query): AppQuery<DeadLetterQuery>,
) -> ApiResult<Json<DeadLetterPage>> {
    let limit = page_limit(query.limit, 100, 1000)?;
    let after = cursor_position(query.cursor.as_deref())?;
    let rows = state
        .queue
        .list_dead_unassignments(query.without_portal.unwrap_or(false), after, limit + 1)
        .await?;
    let (rows, next_cursor) = keyset_page(rows, limit, |r| r.id);
    Ok(Json(DeadLetterPage {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}
