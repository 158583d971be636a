//! Syncing single users: EFS-Admin users and portal users.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::domain::EfsUserId;
use crate::http::extract::{AdminUserPath, AppJson, AppPath, PortalUserPath};
use crate::http::problem::{ApiError, ApiResult, Problem};
use crate::http::AppState;
use crate::sync::profile::SyncUserRequest;
use crate::sync::{DeprovisionOutcome, Outcome, UserSync};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(sync_admin_user, deprovision_admin_user))
        .routes(routes!(sync_portal_user))
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"user_id": 42, "okta_user_id": "00ub0oNGTSWTBKOLGLNR", "outcome": "updated", "updated_fields": ["last_name"], "okta_status": "ACTIVE"}))]
pub struct SyncUserResponse {
    pub user_id: i32,
    pub okta_user_id: String,
    pub outcome: Outcome,
    /// Request fields whose values were written to Okta by a profile update.
    pub updated_fields: Vec<String>,
    /// The Okta user's status (`ACTIVE`, `PROVISIONED`, `STAGED`, …).
    pub okta_status: String,
}

impl SyncUserResponse {
    fn new(user: EfsUserId, s: UserSync) -> Self {
        Self {
            user_id: user.get(),
            okta_user_id: s.okta_user_id,
            outcome: s.outcome,
            updated_fields: s.updated_fields,
            okta_status: s.okta_status,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"portal_id": 12, "user_id": 4711, "okta_user_id": "00ub0oNGTSWTBKOLGLNR", "outcome": "created", "updated_fields": [], "okta_status": "PROVISIONED", "group_id": "00g1emaKYZTWRYYRRTSK", "status": "synced"}))]
pub struct SyncPortalUserResponse {
    pub portal_id: i32,
    pub user_id: i32,
    pub okta_user_id: String,
    pub outcome: Outcome,
    pub updated_fields: Vec<String>,
    pub okta_status: String,
    /// The portal's Okta group, of which the user is now a member.
    pub group_id: String,
    /// The reference's new status: always `synced` on success.
    pub status: crate::domain::PortalUserStatus,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"user_id": 42, "okta_user_id": "00ub0oNGTSWTBKOLGLNR", "outcome": "deactivated", "other_references": 0}))]
pub struct DeprovisionResponse {
    pub user_id: i32,
    /// The Okta user the reference named (`null` when it named none).
    pub okta_user_id: Option<String>,
    pub outcome: DeprovisionOutcome,
    /// Other references to the same Okta user (portal memberships, another admin
    /// user); when there are any, the Okta user is left active.
    pub other_references: usize,
}

/// Syncs an EFS-Admin user into Okta.
///
/// Uses the stored reference, else finds the Okta user by login, else creates one;
/// updates the Okta profile where it differs; stores the reference. Concurrent or
/// retried calls for one user end with one Okta user. A profile Okta refuses is a 422
/// naming the field. Only Okta users efs-iam manages (created or adopted) are linked or
/// changed, and never one holding an Okta admin role: an existing Okta user with the
/// login that efs-iam does not manage is refused (`okta-user-not-managed`).
#[utoipa::path(
    post, path = "/sync/users/{user_id}", tag = "sync",
    params(("user_id" = i32, Path, description = "EFS-Admin user id (`users.uid`)", minimum = 1, maximum = 2147483647)),
    request_body = SyncUserRequest,
    responses(
        (status = 200, description = "Synced; `outcome` says what happened in Okta", body = SyncUserResponse),
        (status = 400, description = "Invalid user id or malformed JSON", body = Problem),
        (status = 409, description = "The Okta user is deprovisioned (`okta-user-deprovisioned`), its login is taken by another Okta user (`okta-login-conflict`), it is not managed by efs-iam (`okta-user-not-managed`, naming the login), or it holds Okta admin roles (`okta-user-privileged`); nothing changed in Okta", body = Problem),
        (status = 413, description = "Body too large", body = Problem),
        (status = 415, description = "Not JSON", body = Problem),
        (status = 422, description = "The profile is invalid, or Okta refused it (`okta-validation-failed`; `errors` names the fields), or EFS has no such user (`unknown-efs-user`)", body = Problem),
        (status = 502, description = "Okta refused efs-iam's credentials or the call (`okta-auth-failed`, `okta-refused`)", body = Problem),
        (status = 503, description = "Okta not configured, Okta unavailable, the user busy in another sync, or the database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn sync_admin_user(
    State(state): State<AppState>,
    AppPath(AdminUserPath { user_id: user }): AppPath<AdminUserPath>,
    AppJson(body): AppJson<SyncUserRequest>,
) -> ApiResult<Json<SyncUserResponse>> {
    let profile = body.into_profile().map_err(ApiError::Validation)?;
    let result = state.sync.engine()?.sync_admin_user(user, &profile).await?;
    tracing::info!(
        user = user.get(),
        outcome = result.outcome.as_str(),
        "admin user synced"
    );
    Ok(Json(SyncUserResponse::new(user, result)))
}

/// Deprovisions an EFS-Admin user: deactivates the Okta user and removes the reference.
///
/// When other references (a portal membership of the same person, another admin user)
/// still use the Okta user, it stays active and only this reference is removed
/// (`still_referenced`). Deactivating an already deactivated or deleted Okta user is a
/// success (`already_deactivated`, `already_gone`).
#[utoipa::path(
    delete, path = "/sync/users/{user_id}", tag = "sync",
    params(("user_id" = i32, Path, description = "EFS-Admin user id (`users.uid`)", minimum = 1, maximum = 2147483647)),
    responses(
        (status = 200, description = "Deprovisioned; the reference is gone", body = DeprovisionResponse),
        (status = 400, description = "Invalid user id", body = Problem),
        (status = 404, description = "The user has no Okta reference", body = Problem),
        (status = 409, description = "The referenced Okta user is not managed by efs-iam (`okta-user-not-managed`) or holds Okta admin roles (`okta-user-privileged`); nothing deactivated, the reference is kept", body = Problem),
        (status = 502, description = "Okta refused the deactivation; the reference is kept", body = Problem),
        (status = 503, description = "Okta not configured or unavailable (the reference is kept), or the database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn deprovision_admin_user(
    State(state): State<AppState>,
    AppPath(AdminUserPath { user_id: user }): AppPath<AdminUserPath>,
) -> ApiResult<Json<DeprovisionResponse>> {
    let done = state
        .sync
        .engine()?
        .deprovision_admin_user(user)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("user {user} has no Okta reference")))?;
    tracing::info!(user = user.get(), outcome = ?done.outcome, "admin user deprovisioned");
    Ok(Json(DeprovisionResponse {
        user_id: user.get(),
        okta_user_id: done.okta_user_id,
        outcome: done.outcome,
        other_references: done.other_references,
    }))
}

/// Syncs a portal user (panelist) into Okta and the portal's Okta group.
///
/// As for EFS-Admin users, plus membership of the group named by the portal's
/// `okta_group_id` setting. One person in several portals is one Okta user with one
/// membership per portal group. The reference is stored as `synced` (clearing
/// `has_data_changes`); when the sync fails it is stored as `failed` (or
/// `deprovisioned`) and the error goes to the error log.
#[utoipa::path(
    post, path = "/sync/portals/{portal_id}/users/{user_id}", tag = "sync",
    params(
        ("portal_id" = i32, Path, description = "EFS portal id", minimum = 1, maximum = 2147483647),
        ("user_id" = i32, Path, description = "Panelist id (`panelists.uid`)", minimum = 1, maximum = 2147483647),
    ),
    request_body = SyncUserRequest,
    responses(
        (status = 200, description = "Synced and a member of the portal's group", body = SyncPortalUserResponse),
        (status = 400, description = "Invalid id or malformed JSON", body = Problem),
        (status = 409, description = "The portal has no `okta_group_id` setting (`portal-not-linked`) or names no Okta group (`okta-group-not-found`); the Okta user is deprovisioned; the login is taken; the Okta user is not managed by efs-iam (`okta-user-not-managed`) or holds Okta admin roles (`okta-user-privileged`)", body = Problem),
        (status = 413, description = "Body too large", body = Problem),
        (status = 415, description = "Not JSON", body = Problem),
        (status = 422, description = "The profile is invalid or Okta refused it (`errors` names the fields), or EFS has no such panelist", body = Problem),
        (status = 502, description = "Okta refused efs-iam's credentials or the call", body = Problem),
        (status = 503, description = "Okta not configured or unavailable, the user busy in another sync, or the database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn sync_portal_user(
    State(state): State<AppState>,
    AppPath(PortalUserPath {
        portal_id: portal,
        user_id: user,
    }): AppPath<PortalUserPath>,
    AppJson(body): AppJson<SyncUserRequest>,
) -> ApiResult<Json<SyncPortalUserResponse>> {
    let profile = body.into_profile().map_err(ApiError::Validation)?;
    let (result, group_id) = state
        .sync
        .engine()?
        .sync_portal_user(portal, user, &profile)
        .await?;
    tracing::info!(
        portal = portal.get(),
        user = user.get(),
        outcome = result.outcome.as_str(),
        "portal user synced"
    );
    Ok(Json(SyncPortalUserResponse {
        portal_id: portal.get(),
        user_id: user.get(),
        okta_user_id: result.okta_user_id,
        outcome: result.outcome,
        updated_fields: result.updated_fields,
        okta_status: result.okta_status,
        group_id,
        status: crate::domain::PortalUserStatus::Synced,
    }))
}
