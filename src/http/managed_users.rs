//! The managed-user boundary over HTTP: which Okta users efs-iam manages, adopting one
//! (`iam:admin`), and bulk adoption runs of every Okta user the EFS tables already
//! reference (`iam:admin` to start, `iam:read` to follow). The rules are
//! `sync::boundary`'s.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{
    cursor_position, keyset_page, page_limit, AppJson, AppPath, AppQuery, OktaUserPath, ResourceId,
};
use super::problem::{ApiError, ApiResult, Problem};
use super::reply::{accepted, utc};
use super::state::AppState;
use crate::auth::Caller;
use crate::domain::OktaUserId;
use crate::storage::{AdoptionItem, ItemVerdict, ManagedOktaUser};
use crate::sync::SyncError;

const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(get_okta_user_management, adopt_okta_user))
        .routes(routes!(submit_adoption))
        .routes(routes!(get_adoption))
        .routes(routes!(clear_okta_event_watermarks))
}

/// An Okta user efs-iam manages.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"okta_user_id": "00ub0oNGTSWTBKOLGLNR", "origin": "adopted", "managed_by": "admin@efs.example", "managed_at": "2026-12-01T09:00:00Z", "login": "ada@example.com"}))]
pub struct ManagedOktaUserBody {
    pub okta_user_id: String,
    /// `created` (efs-iam created it) or `adopted` (an `iam:admin` adopted it).
    pub origin: String,
    /// `efs-iam`, or the adopting caller's `sub`.
    pub managed_by: String,
    pub managed_at: DateTime<Utc>,
    /// The Okta login when it came under management.
    pub login: Option<String>,
}

impl From<ManagedOktaUser> for ManagedOktaUserBody {
    fn from(m: ManagedOktaUser) -> Self {
        Self {
            okta_user_id: m.okta_user_id,
            origin: m.origin,
            managed_by: m.managed_by,
            managed_at: utc(m.managed_at),
            login: m.login,
        }
    }
}

/// Whether efs-iam manages the Okta user: created it, or adopted it.
#[utoipa::path(
    get, path = "/okta-users/{okta_user_id}/management", tag = "managed okta users",
    params(("okta_user_id" = String, Path, description = "Okta user id", max_length = 20, pattern = "^[A-Za-z0-9]{1,20}$")),
    responses(
        (status = 200, description = "efs-iam manages the user", body = ManagedOktaUserBody),
        (status = 400, description = "Not an Okta user id", body = Problem),
        (status = 404, description = "efs-iam does not manage the user", body = Problem),
        (status = 503, description = "Database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn get_okta_user_management(
    State(state): State<AppState>,
    AppPath(OktaUserPath { okta_user_id: id }): AppPath<OktaUserPath>,
) -> ApiResult<Json<ManagedOktaUserBody>> {
    let managed = state
        .managed
        .managed_okta_user(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("efs-iam does not manage Okta user {id}")))?;
    Ok(Json(managed.into()))
}

/// Adopts an Okta user: from now on efs-iam manages it (syncs may link, update, group
/// and deactivate it; references may name it). Okta is asked first: the user must
/// exist, not be deactivated, and hold no Okta admin role. Audited with the caller's
/// `sub`. Idempotent: adopting a managed user answers 200 with its record.
#[utoipa::path(
    put, path = "/okta-users/{okta_user_id}/management", tag = "managed okta users",
    params(("okta_user_id" = String, Path, description = "Okta user id", max_length = 20, pattern = "^[A-Za-z0-9]{1,20}$")),
    responses(
        (status = 200, description = "Already managed; nothing changed", body = ManagedOktaUserBody),
        (status = 201, description = "Adopted", body = ManagedOktaUserBody),
        (status = 400, description = "Not an Okta user id", body = Problem),
        (status = 409, description = "Deactivated in Okta (`okta-user-deprovisioned`), or holding Okta admin roles (`okta-user-privileged`); nothing stored", body = Problem),
        (status = 422, description = "Okta has no such user (`okta-user-not-found`); nothing stored", body = Problem),
        (status = 502, description = "Okta refused efs-iam's credentials or the call", body = Problem),
        (status = 503, description = "Okta not configured or unavailable, or the database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn adopt_okta_user(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    AppPath(OktaUserPath { okta_user_id: id }): AppPath<OktaUserPath>,
) -> ApiResult<(StatusCode, Json<ManagedOktaUserBody>)> {
    let (record, adopted) = state
        .sync
        .engine()?
        .boundary()
        .adopt(&id, &caller.subject)
        .await?;
    let status = if adopted {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(record.into())))
}

/// The newest Okta event applied about an Okta user and subject.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EventWatermarkBody {
    /// `user` (lifecycle and profile events) or an Okta group id (membership events).
    pub subject: String,
    pub published: DateTime<Utc>,
    pub event_uuid: String,
}

/// The watermarks a clearing removed.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"okta_user_id": "00ub0oNGTSWTBKOLGLNR", "cleared": [{"subject": "user", "published": "2026-12-01T09:00:00Z", "event_uuid": "a6f3c0c2-7f4e-11ef-9f6b-1b2c3d4e5f60"}]}))]
pub struct ClearedWatermarks {
    pub okta_user_id: String,
    pub cleared: Vec<EventWatermarkBody>,
}

/// Clears the Okta user's event watermarks (the newest event applied per subject), so
/// the next event about the user applies whatever its `published`: the way out when a
/// wrong watermark holds genuine events back (`superseded`). Audited with the caller's
/// `sub`. Idempotent: a user without watermarks answers 200 with none cleared.
#[utoipa::path(
    delete, path = "/okta-users/{okta_user_id}/event-watermarks", tag = "managed okta users",
    params(("okta_user_id" = String, Path, description = "Okta user id", max_length = 20, pattern = "^[A-Za-z0-9]{1,20}$")),
    responses(
        (status = 200, description = "The watermarks cleared (none if the user had none)", body = ClearedWatermarks),
        (status = 400, description = "Not an Okta user id", body = Problem),
        (status = 503, description = "Database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn clear_okta_event_watermarks(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    AppPath(OktaUserPath { okta_user_id: id }): AppPath<OktaUserPath>,
) -> ApiResult<Json<ClearedWatermarks>> {
    let cleared = state
        .sync
        .clear_event_watermarks(&id, &caller.subject)
        .await?;
    Ok(Json(ClearedWatermarks {
        okta_user_id: id.to_string(),
        cleared: cleared
            .into_iter()
            .map(|w| EventWatermarkBody {
                subject: w.subject,
                published: utc(w.published),
                event_uuid: w.event_uuid,
            })
            .collect(),
    }))
}

/// A bulk adoption run to start.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitAdoption {
    /// `true` (the default): check every referenced Okta user and report who would be
    /// adopted and who refused, adopting nobody. `false`: adopt.
    #[serde(default)]
    pub dry_run: Option<bool>,
}

/// `202 Accepted`: the run, to be followed at `status_url`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"run_id": "5b0c0c9e-2f8d-4f0e-9a3a-8f1f6f0a9c11", "dry_run": true, "state": "collecting", "status_url": "/api/v1/adoptions/5b0c0c9e-2f8d-4f0e-9a3a-8f1f6f0a9c11"}))]
pub struct AdoptionAccepted {
    pub run_id: String,
    pub dry_run: bool,
    pub state: String,
    pub status_url: String,
}

/// Starts a bulk adoption of every Okta user the EFS tables already reference (admin
/// and portal user references, the unassignment queue), for an installation that
/// predates efs-iam's managed-user boundary. A worker lists the users, then checks
/// each with Okta (at background priority): a user that exists, is not deactivated and
/// holds no admin role is adopted (`dry_run=false`) or reported as adoptable; the rest
/// are refused with the reason. Run the dry run first. The run survives restarts.
#[utoipa::path(
    post, path = "/adoptions", tag = "managed okta users",
    request_body = SubmitAdoption,
    responses(
        (status = 202, description = "Run queued", body = AdoptionAccepted,
         headers(("Location" = String, description = "The run's status URL"))),
        (status = 400, description = "Malformed JSON", body = Problem),
        (status = 415, description = "Not JSON", body = Problem),
        (status = 422, description = "Invalid field", body = Problem),
        (status = 503, description = "Okta not configured, or the database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn submit_adoption(
    State(state): State<AppState>,
    Extension(caller): Extension<Arc<Caller>>,
    AppJson(body): AppJson<SubmitAdoption>,
) -> ApiResult<axum::response::Response> {
    let dry_run = body.dry_run.unwrap_or(true);
    let run_id = state.sync.submit_adoption(dry_run, &caller.subject).await?;
    let status_url = format!("/api/v1/adoptions/{run_id}");
    Ok(accepted(
        &status_url.clone(),
        AdoptionAccepted {
            run_id,
            dry_run,
            state: "collecting".into(),
            status_url,
        },
    ))
}

#[derive(Debug, Deserialize)]
struct RunPath {
    run_id: ResourceId,
}

/// The items of one outcome.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ItemStateParam {
    Pending,
    Adopted,
    AlreadyManaged,
    WouldAdopt,
    Refused,
    Failed,
}

impl ItemStateParam {
    fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Adopted => ItemVerdict::Adopted.as_str(),
            Self::AlreadyManaged => ItemVerdict::AlreadyManaged.as_str(),
            Self::WouldAdopt => ItemVerdict::WouldAdopt.as_str(),
            Self::Refused => ItemVerdict::Refused.as_str(),
            Self::Failed => ItemVerdict::Failed.as_str(),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AdoptionQuery {
    /// Only the items of this state.
    #[param(inline)]
    pub state: Option<ItemStateParam>,
    /// Items per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One Okta user of a run.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AdoptionItemBody {
    pub okta_user_id: String,
    /// `pending`, `adopted`, `already_managed`, `would_adopt` (dry run), `refused`,
    /// `failed`.
    pub state: String,
    /// Why it was refused or failed.
    pub reason: Option<String>,
    pub login: Option<String>,
    pub attempts: i32,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<AdoptionItem> for AdoptionItemBody {
    fn from(i: AdoptionItem) -> Self {
        Self {
            okta_user_id: i.okta_user_id,
            state: i.state,
            reason: i.reason,
            login: i.login,
            attempts: i.attempts,
            finished_at: i.finished_at.map(utc),
        }
    }
}

/// A bulk adoption run, with one page of its items.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AdoptionRunBody {
    pub run_id: String,
    pub dry_run: bool,
    /// `collecting` (its Okta users are being listed), `checking`, `succeeded`.
    pub state: String,
    /// The `sub` of the `iam:admin` who started it.
    pub requested_by: String,
    pub created_at: DateTime<Utc>,
    pub collected_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Items by state: `pending`, `adopted`, `already_managed`, `would_adopt`,
    /// `refused`, `failed`.
    pub counts: std::collections::BTreeMap<String, i64>,
    pub items: Vec<AdoptionItemBody>,
    /// The next page of items; absent on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// A bulk adoption run: its state, counts by outcome, and one page of its items (of
/// one state with `state`; e.g. `refused` lists who would be or was refused and why).
#[utoipa::path(
    get, path = "/adoptions/{run_id}", tag = "managed okta users",
    params(
        ("run_id" = String, Path, description = "Run id from the submission", min_length = 36, max_length = 36,
         pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
        AdoptionQuery,
    ),
    responses(
        (status = 200, description = "The run, with one page of its items", body = AdoptionRunBody),
        (status = 400, description = "Invalid run id, state, limit or cursor", body = Problem),
        (status = 404, description = "No such run", body = Problem),
        (status = 503, description = "Database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn get_adoption(
    State(state): State<AppState>,
    AppPath(RunPath {
        run_id: ResourceId(id),
    }): AppPath<RunPath>,
    AppQuery(query): AppQuery<AdoptionQuery>,
) -> ApiResult<Json<AdoptionRunBody>> {
    let limit = page_limit(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let after: Option<i32> = cursor_position(query.cursor.as_deref())?;
    let (run, counts) = state
        .adoptions
        .adoption_run(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no adoption run {id}")))?;
    let items = state
        .adoptions
        .adoption_items(
            &id,
            query.state.map(ItemStateParam::as_str),
            after,
            limit + 1,
        )
        .await?;
    let (items, next_cursor) =
        keyset_page(items, limit, |i| i32::try_from(i.id).unwrap_or(i32::MAX));
    Ok(Json(AdoptionRunBody {
        run_id: run.id,
        dry_run: run.dry_run,
        state: run.state,
        requested_by: run.requested_by,
        created_at: utc(run.created_at),
        collected_at: run.collected_at.map(utc),
        finished_at: run.finished_at.map(utc),
        counts,
        items: items.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

/// A reference may name only an Okta user efs-iam manages (created or adopted): the
/// everyday scopes never decide whose identity an EFS user gets (SECURITY.md).
pub(super) async fn check_managed(state: &AppState, okta: &OktaUserId) -> ApiResult<()> {
    if state.managed.managed_okta_user(okta).await?.is_none() {
        return Err(SyncError::NotManaged {
            okta_user_id: okta.to_string(),
            login: None,
            field: Some("okta_user_id"),
        }
        .into());
    }
    Ok(())
}
