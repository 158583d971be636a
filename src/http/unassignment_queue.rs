//! The queue of portal users to remove from their portal's Okta group after a mass
//! delete in EFS (`iam_portal_user_group_unassignment_queue`): enqueueing and listing
//! (EFS-Admin, `iam:write`/`iam:read`). The worker's side under `/sync/unassignments`
//! (a drain on demand, dead letters across portals, requeueing) is
//! `http/sync/unassignments.rs`; the worker itself `sync::workers::unassignments`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{
    cursor_position, integral, keyset_page, page_limit, AppJson, AppPath, AppQuery, PortalPath,
};
use super::problem::{ApiError, ApiResult, FieldError, Problem};
use super::reply::utc;
use super::state::AppState;
use crate::domain::{check_text, EfsUserId, OktaUserId};
use crate::storage::{
    NewUnassignment, Unassignment, UnassignmentCounts, UnassignmentQuery, UnassignmentState,
};

/// One call may enqueue a whole mass delete.
pub const MAX_ENQUEUE: usize = 10_000;
const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(enqueue_unassignments, list_unassignments))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"users": [{"user_id": 4711, "okta_user_id": "00ub0oNGTSWTBKOLGLNR", "email": "panelist@example.com"}]}))]
pub struct EnqueueUnassignments {
    /// 1 to 10,000 portal users; all are queued or none.
    #[schema(min_items = 1, max_items = 10000)]
    pub users: Vec<UnassignmentUser>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UnassignmentUser {
    /// The deleted panelist's id.
    #[serde(deserialize_with = "integral")]
    #[schema(minimum = 1, maximum = 2147483647)]
    pub user_id: i64,
    #[schema(max_length = 20, min_length = 1, pattern = "^[A-Za-z0-9]{1,20}$")]
    pub okta_user_id: String,
    /// For operators reading the queue; at most 255 characters.
    #[schema(max_length = 255, pattern = "^[\\u0000-\\uFFFF]*$")]
    pub email: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EnqueueResult {
    pub portal_id: i32,
    pub enqueued: u64,
    pub counts: UnassignmentCountsBody,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UnassignmentCountsBody {
    /// Waiting for (another) attempt. Exact up to 10,000; beyond that 10,000 and
    /// `pending_capped` is true.
    pub pending: i64,
    /// Retries exhausted; kept until re-queued. Exact up to 10,000; beyond that 10,000
    /// and `dead_capped` is true.
    pub dead: i64,
    /// More than 10,000 are pending: `pending` is a lower bound ("10,000 or more").
    pub pending_capped: bool,
    /// More than 10,000 are dead: `dead` is a lower bound ("10,000 or more").
    pub dead_capped: bool,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UnassignmentBody {
    pub id: i32,
    /// `null` for legacy rows without a portal (dead letters): requeue them with one.
    pub portal_id: Option<i32>,
    pub user_id: Option<i32>,
    pub okta_user_id: Option<String>,
    pub email: Option<String>,
    pub created_at: DateTime<Utc>,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub dead_at: Option<DateTime<Utc>>,
}

impl From<Unassignment> for UnassignmentBody {
    fn from(u: Unassignment) -> Self {
        Self {
            id: u.id,
            portal_id: u.portal_id,
            user_id: u.user_id,
            okta_user_id: u.okta_user_id,
            email: u.email,
            created_at: utc(u.created_at),
            attempts: u.attempts,
            last_error: u.last_error,
            next_attempt_at: u.next_attempt_at.map(utc),
            dead_at: u.dead_at.map(utc),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UnassignmentPage {
    pub portal_id: i32,
    /// Counts over the whole portal queue, not just this page.
    pub counts: UnassignmentCountsBody,
    pub items: Vec<UnassignmentBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum QueueState {
    Pending,
    Dead,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UnassignmentListQuery {
    /// Only pending entries or only dead letters (default: both).
    #[param(inline)]
    pub state: Option<QueueState>,
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    #[param(min_length = 1, pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

fn validate(users: Vec<UnassignmentUser>) -> ApiResult<Vec<NewUnassignment>> {
    if users.is_empty() || users.len() > MAX_ENQUEUE {
        return Err(ApiError::invalid_field(
            "users",
            format!("must hold 1 to {MAX_ENQUEUE} users"),
        ));
    }
    let mut errors = Vec::new();
    let mut valid = Vec::with_capacity(users.len());
    for (i, u) in users.into_iter().enumerate() {
        let user_id = EfsUserId::parse(&u.user_id.to_string())
            .map_err(|e| errors.push(FieldError::new(format!("users[{i}].user_id"), e)));
        let okta_user_id = OktaUserId::parse(&u.okta_user_id)
            .map_err(|e| errors.push(FieldError::new(format!("users[{i}].okta_user_id"), e)));
        if let Some(email) = &u.email {
            if let Err(e) = check_text(email, 255) {
                errors.push(FieldError::new(format!("users[{i}].email"), e));
            }
        }
        // Reports stay readable for a 10,000-user call with a systematic mistake.
        if errors.len() >= 100 {
            break;
        }
        if let (Ok(user_id), Ok(okta_user_id)) = (user_id, okta_user_id) {
            valid.push(NewUnassignment {
                user_id,
                okta_user_id,
                email: u.email,
            });
        }
    }
    if errors.is_empty() {
        Ok(valid)
    } else {
        Err(ApiError::Validation(errors))
    }
}

impl From<UnassignmentCounts> for UnassignmentCountsBody {
    fn from(c: UnassignmentCounts) -> Self {
        Self {
            pending: c.pending,
            dead: c.dead,
            pending_capped: c.pending_capped,
            dead_capped: c.dead_capped,
        }
    }
}

/// Queues portal users for removal from the portal's Okta group, all in one
/// transaction: either every user is queued or none.
#[utoipa::path(
    post, path = "/portals/{portal_id}/unassignments", tag = "unassignment queue",
    params(("portal_id" = i32, Path, description = "EFS portal id", minimum = 1, maximum = 2147483647)),
    request_body = EnqueueUnassignments,
    responses(
        (status = 202, description = "Queued; the worker removes them from the Okta group", body = EnqueueResult),
        (status = 400, description = "Invalid portal id or malformed JSON", body = Problem),
        (status = 413, description = "Body too large", body = Problem),
        (status = 415, description = "Not JSON", body = Problem),
        (status = 422, description = "A user entry is invalid; nothing was queued", body = Problem),
        (status = 503, description = "Database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn enqueue_unassignments(
    State(state): State<AppState>,
    AppPath(PortalPath { portal_id: portal }): AppPath<PortalPath>,
    AppJson(body): AppJson<EnqueueUnassignments>,
) -> ApiResult<(StatusCode, Json<EnqueueResult>)> {
    let users = validate(body.users)?;
    let (enqueued, counts) = state.sync.enqueue_unassignments(portal, &users).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(EnqueueResult {
            portal_id: portal.get(),
            enqueued,
            counts: counts.into(),
        }),
    ))
}

/// What is queued for a portal, oldest first, with counts.
#[utoipa::path(
    get, path = "/portals/{portal_id}/unassignments", tag = "unassignment queue",
    params(("portal_id" = i32, Path, description = "EFS portal id", minimum = 1, maximum = 2147483647), UnassignmentListQuery),
    responses(
        (status = 200, description = "One page of the portal's queue", body = UnassignmentPage),
        (status = 400, description = "Invalid portal id, state, limit or cursor", body = Problem),
        (status = 503, description = "Database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn list_unassignments(
    State(state): State<AppState>,
    AppPath(PortalPath { portal_id: portal }): AppPath<PortalPath>,
    AppQuery(query): AppQuery<UnassignmentListQuery>,
) -> ApiResult<Json<UnassignmentPage>> {
    let limit = page_limit(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let after_id = cursor_position(query.cursor.as_deref())?;
    let rows = state
        .queue
        .list_unassignments(
            portal,
            &UnassignmentQuery {
                state: query.state.map(|s| match s {
                    QueueState::Pending => UnassignmentState::Pending,
                    QueueState::Dead => UnassignmentState::Dead,
                }),
                after_id,
                limit: limit + 1,
            },
        )
        .await?;
    let (rows, next_cursor) = keyset_page(rows, limit, |r| r.id);
    Ok(Json(UnassignmentPage {
        portal_id: portal.get(),
        counts: state.queue.unassignment_counts(portal).await?.into(),
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}
