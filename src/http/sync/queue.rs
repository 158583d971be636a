//! The unassignment worker on demand, dead letters across portals, and requeueing.

use std::time::Instant;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::status::{queue_body, QueueBody};
use crate::domain::PortalId;
use crate::error::{ApiError, ApiResult, Problem};
use crate::http::extract::{decode_cursor, encode_cursor, integral, page_limit, AppJson, AppQuery};
use crate::http::unassignments::UnassignmentBody;
use crate::http::AppState;
use crate::storage::sync::RequeueSkip;
use crate::workers::UnassignmentStep;

const MAX_REQUEUE_IDS: usize = 10_000;
/// Longest a run call starts new steps for.
const RUN_BUDGET: std::time::Duration = std::time::Duration::from_secs(5);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(run_unassignments))
        .routes(routes!(requeue_unassignments))
        .routes(routes!(list_dead_letters))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunQuery {
    /// Stop after about this many rows, 1 to 100,000 (default 10,000). The call also
    /// stops starting new batches after 5 seconds; call again for the rest.
    #[param(minimum = 1, maximum = 100000)]
    pub max_rows: Option<u32>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunResult {
    /// Worker steps run by this call.
    pub steps: u32,
    #[serde(flatten)]
    pub totals: UnassignmentStep,
    /// The queue afterwards.
    pub queue: QueueBody,
}

/// Drains the unassignment queue now (the background worker does the same
/// continuously): removes each due user from the portal's Okta group, deletes the row
/// once Okta has confirmed, retries failures with backoff and keeps dead letters.
#[utoipa::path(
    post, path = "/sync/unassignments/run", tag = "sync",
    params(RunQuery),
    responses(
        (status = 200, description = "What was done; rows that failed wait for their backoff", body = RunResult),
        (status = 400, description = "Invalid max_rows", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Okta not configured, or the database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all)]
async fn run_unassignments(
    State(state): State<AppState>,
    AppQuery(query): AppQuery<RunQuery>,
) -> ApiResult<Json<RunResult>> {
    let max_rows = match query.max_rows {
        None => 10_000,
        Some(n) if (1..=100_000).contains(&n) => n as usize,
        Some(_) => {
            return Err(ApiError::invalid_parameter(
                "max_rows",
                "must be from 1 to 100000",
            ))
        }
    };
    let worker = state.sync.unassignment_worker()?;
    // Short enough for an interactive caller; the background worker does the rest.
    let budget = (state.config.request_timeout * 2 / 3).min(RUN_BUDGET);
    let started = Instant::now();
    let mut steps = 0;
    let mut totals = UnassignmentStep::default();
    loop {
        let step = worker.run_once().await?;
        steps += 1;
        totals.claimed += step.claimed;
        totals.removed += step.removed;
        totals.already_gone += step.already_gone;
        totals.retrying += step.retrying;
        totals.dead_lettered += step.dead_lettered;
        totals.unroutable += step.unroutable;
        totals.released += step.released;
        if step.blocked.is_some() {
            totals.blocked = step.blocked;
            break;
        }
        if step.claimed == 0
            || step.released > 0
            || totals.claimed >= max_rows
            || started.elapsed() >= budget
        {
            break;
        }
    }
    let queue = queue_body(&state).await?;
    Ok(Json(RunResult {
        steps,
        totals,
        queue,
    }))
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
    use serde::de::Error;
    let Some(numbers) = Option::<Vec<serde_json::Number>>::deserialize(deserializer)? else {
        return Ok(None);
    };
    numbers
        .into_iter()
        .map(|n| match n.as_i64() {
            Some(v) => Ok(v),
            None => match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
                _ => Err(D::Error::custom(format!(
                    "invalid value: {n}, expected an integer"
                ))),
            },
        })
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
    post, path = "/sync/unassignments/requeue", tag = "sync",
    request_body = RequeueRequest,
    responses(
        (status = 200, description = "Requeued", body = RequeueResult),
        (status = 400, description = "Malformed JSON", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body too large", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid portal id or row ids", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
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
    let mut outcome = match ids.as_deref() {
        Some([]) => Default::default(),
        ids => state.store.requeue_unassignments(portal, ids).await?,
    };
    let skipped_out_of_range: Vec<SkippedRow> = out_of_range
        .iter()
        .map(|id| SkippedRow {
            id: *id,
            reason: SkipReason::NotFound,
        })
        .collect();
    if outcome.requeued > 0 {
        state.sync.wake_unassignments.notify_one();
    }
    tracing::info!(
        portal = portal.get(),
        requeued = outcome.requeued,
        "dead letters requeued"
    );
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
    get, path = "/sync/unassignments/dead", tag = "sync",
    params(DeadLetterQuery),
    responses(
        (status = 200, description = "One page of dead letters", body = DeadLetterPage),
        (status = 400, description = "Invalid limit or cursor", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all)]
async fn list_dead_letters(
    State(state): State<AppState>,
    AppQuery(query): AppQuery<DeadLetterQuery>,
) -> ApiResult<Json<DeadLetterPage>> {
    let limit = page_limit(query.limit, 100, 1000)?;
    let after = query
        .cursor
        .as_deref()
        .map(decode_cursor::<i32>)
        .transpose()?;
    let rows = state
        .store
        .list_dead_unassignments(query.without_portal.unwrap_or(false), after, limit + 1)
        .await?;
    let next_cursor =
        (rows.len() > limit as usize).then(|| encode_cursor(&rows[limit as usize - 1].id));
    Ok(Json(DeadLetterPage {
        items: rows
            .into_iter()
            .take(limit as usize)
            .map(Into::into)
            .collect(),
        next_cursor,
    }))
}
