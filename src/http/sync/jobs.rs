//! Batch sync jobs: up to 10,000 portal users in one call, run in the background.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::domain::EfsUserId;
use crate::http::extract::{
    cursor_position, integral, keyset_page, page_limit, AppJson, AppPath, AppQuery, PortalPath,
    ResourceId,
};
use crate::http::problem::{ApiError, ApiResult, FieldError, Problem};
use crate::http::reply::{accepted, utc};
use crate::http::AppState;
use crate::storage::{ItemState, NewSyncJobItem, SyncJobItem, SyncJobItemQuery};
use crate::sync::profile::{profile_body, validate_profile};

pub const MAX_USERS: usize = 10_000;
const DEFAULT_PAGE: u32 = 1000;
const MAX_PAGE: u32 = 10_000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(submit_sync_job))
        .routes(routes!(get_sync_job))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"users": [{"user_id": 4711, "login": "ada@example.com", "email": "ada@example.com", "first_name": "Ada", "last_name": "Lovelace"}]}))]
pub struct BatchSyncRequest {
    /// 1 to 10,000 portal users. A user named twice is synced twice, in order (the
    /// later profile wins).
    #[schema(min_items = 1, max_items = 10000)]
    pub users: Vec<BatchUser>,
}

profile_body! {
    /// One portal user of a batch: the panelist id and the profile fields of a single sync.
    #[derive(Debug, Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct BatchUser {
        /// Panelist id (`panelists.uid`).
        #[serde(deserialize_with = "integral")]
        #[schema(minimum = 1, maximum = 2147483647)]
        pub user_id: i64,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Items are pending.
    Running,
    /// Every item succeeded or failed.
    Finished,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"job_id": "7d9f1c2e-4b1a-4c7e-9a51-0d6f2f9a1b23", "portal_id": 12, "state": "running", "total": 2500, "status_url": "/api/v1/sync/jobs/7d9f1c2e-4b1a-4c7e-9a51-0d6f2f9a1b23"}))]
pub struct JobAccepted {
    pub job_id: String,
    pub portal_id: i32,
    pub state: JobState,
    pub total: usize,
    /// Where progress and results are (also the `Location` header).
    pub status_url: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobCounts {
    /// Not done yet (including `retrying`).
    pub pending: i64,
    pub succeeded: i64,
    pub failed: i64,
    /// Pending items that failed transiently and wait for another attempt.
    pub retrying: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ItemError {
    /// Problem type slug, as a single sync would answer it (`okta-validation-failed`,
    /// `okta-user-deprovisioned`, `okta-unavailable`, …).
    #[serde(rename = "type")]
    pub error_type: String,
    pub detail: String,
    /// The request field at fault, when there is one (`email`, `attributes.countryCode`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobItemBody {
    /// Position in the submitted `users` array.
    pub index: i32,
    pub user_id: i32,
    /// `pending`, `succeeded` or `failed`.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub okta_user_id: Option<String>,
    /// Why it failed (failed items), or the last transient failure (pending items
    /// waiting for a retry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ItemError>,
    pub attempts: i32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<SyncJobItem> for JobItemBody {
    fn from(i: SyncJobItem) -> Self {
        let error = match (&i.error_type, &i.error) {
            (Some(t), Some(d)) => Some(ItemError {
                error_type: t.clone(),
                detail: d.clone(),
                field: i.error_field.clone(),
            }),
            (None, Some(d)) => Some(ItemError {
                error_type: "retrying".into(),
                detail: d.clone(),
                field: None,
            }),
            _ => None,
        };
        Self {
            index: i.seq,
            user_id: i.user_id,
            state: i.state,
            outcome: i.outcome,
            okta_user_id: i.okta_user_id,
            error,
            attempts: i.attempts,
            next_attempt_at: i.next_attempt_at.map(utc),
            finished_at: i.finished_at.map(utc),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct JobBody {
    pub job_id: String,
    pub portal_id: i32,
    pub state: JobState,
    pub total: i32,
    pub counts: JobCounts,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Per-user results, in submission order (one page; see `next_cursor`).
    pub items: Vec<JobItemBody>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemStateParam {
    Pending,
    Succeeded,
    Failed,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct JobQuery {
    /// Only items in this state.
    #[param(inline)]
    pub state: Option<ItemStateParam>,
    /// Items per page, 1 to 10,000 (default 1,000).
    #[param(minimum = 1, maximum = 10000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1, pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

/// `{job_id}`: a lower-case hyphenated UUID, as the API hands them out.
#[derive(Debug, Deserialize)]
struct JobPath {
    job_id: ResourceId,
}

/// Queues a batch sync of portal users; answers 202 with the job id at once.
///
/// Every user is synced as by `POST /sync/portals/{portal_id}/users/{user_id}`, by the
/// background workers of any instance. The job is stored in the database: it survives
/// restarts and resumes. Progress and per-user results: `GET /sync/jobs/{job_id}`.
#[utoipa::path(
    post, path = "/sync/portals/{portal_id}/users", tag = "sync",
    params(("portal_id" = i32, Path, description = "EFS portal id", minimum = 1, maximum = 2147483647)),
    request_body = BatchSyncRequest,
    responses(
        (status = 202, description = "Queued", body = JobAccepted,
         headers(("Location" = String, description = "The job's status URL"))),
        (status = 400, description = "Invalid portal id or malformed JSON", body = Problem),
        (status = 409, description = "The portal has no `okta_group_id` setting (`portal-not-linked`)", body = Problem),
        (status = 413, description = "Body too large", body = Problem),
        (status = 415, description = "Not JSON", body = Problem),
        (status = 422, description = "A user entry is invalid or repeated; nothing was queued", body = Problem),
        (status = 503, description = "Okta not configured, or the database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn submit_sync_job(
    State(state): State<AppState>,
    AppPath(PortalPath { portal_id: portal }): AppPath<PortalPath>,
    AppJson(body): AppJson<BatchSyncRequest>,
) -> ApiResult<axum::response::Response> {
    if body.users.is_empty() || body.users.len() > MAX_USERS {
        return Err(ApiError::invalid_field(
            "users",
            format!("must hold 1 to {MAX_USERS} users"),
        ));
    }
    let mut errors: Vec<FieldError> = Vec::new();
    let mut items = Vec::with_capacity(body.users.len());
    for (i, u) in body.users.into_iter().enumerate() {
        // Reports stay readable for a 10,000-user call with a systematic mistake.
        if errors.len() >= 100 {
            break;
        }
        let prefix = format!("users[{i}].");
        let user = match EfsUserId::parse(&u.user_id.to_string()) {
            Ok(id) => Some(id),
            Err(e) => {
                errors.push(FieldError::new(format!("{prefix}user_id"), e));
                None
            }
        };
        let profile = validate_profile(
            &prefix,
            u.login,
            u.email,
            u.first_name,
            u.last_name,
            u.attributes,
            &mut errors,
        );
        if let (Some(user_id), Some(profile)) = (user, profile) {
            items.push(NewSyncJobItem {
                user_id,
                profile: serde_json::to_string(&profile).map_err(anyhow::Error::from)?,
            });
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let job = state.sync.submit_sync_job(portal, items).await?;
    let status_url = format!("/api/v1/sync/jobs/{}", job.id);
    let location = status_url.clone();
    Ok(accepted(
        &location,
        JobAccepted {
            job_id: job.id,
            portal_id: portal.get(),
            state: JobState::Running,
            total: job.total,
            status_url,
        },
    ))
}

/// A batch job's progress and per-user results.
#[utoipa::path(
    get, path = "/sync/jobs/{job_id}", tag = "sync",
    params(
        ("job_id" = String, Path, description = "Job id from the submission", min_length = 36, max_length = 36,
         pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
        JobQuery,
    ),
    responses(
        (status = 200, description = "The job, with one page of its items", body = JobBody),
        (status = 400, description = "Invalid job id, state, limit or cursor", body = Problem),
        (status = 404, description = "No such job (finished jobs are kept 7 days)", body = Problem),
        (status = 503, description = "Database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn get_sync_job(
    State(state): State<AppState>,
    AppPath(JobPath {
        job_id: ResourceId(id),
    }): AppPath<JobPath>,
    AppQuery(query): AppQuery<JobQuery>,
) -> ApiResult<Json<JobBody>> {
    let limit = page_limit(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let after_seq = cursor_position(query.cursor.as_deref())?;
    let (job, counts) = state
        .jobs
        .sync_job(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no sync job {id}")))?;
    let items = state
        .jobs
        .sync_job_items(
            &id,
            &SyncJobItemQuery {
                state: query.state.map(|s| match s {
                    ItemStateParam::Pending => ItemState::Pending,
                    ItemStateParam::Succeeded => ItemState::Succeeded,
                    ItemStateParam::Failed => ItemState::Failed,
                }),
                after_seq,
                limit: limit + 1,
            },
        )
        .await?;
    let (items, next_cursor) = keyset_page(items, limit, |i| i.seq);
    Ok(Json(JobBody {
        job_id: job.id,
        portal_id: job.portal_id,
        state: if job.finished_at.is_some() || counts.pending == 0 {
            JobState::Finished
        } else {
            JobState::Running
        },
        total: job.total,
        counts: JobCounts {
            pending: counts.pending,
            succeeded: counts.succeeded,
            failed: counts.failed,
            retrying: counts.retrying,
        },
        created_at: utc(job.created_at),
        finished_at: job.finished_at.map(utc),
        items: items.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}
