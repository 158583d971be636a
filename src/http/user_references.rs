//! References from EFS users to their Okta user ids: EFS-Admin users
//! (`iam_user_reference`), portal users/panelists (`iam_portal_user_reference`), and
//! the reverse lookup from an Okta user id.
//!
//! Legacy duplicates of one (portal, user) or one admin user: reads return the newest
//! row, writes update every duplicate, deletes remove all of them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use super::extract::{
    cursor_position, keyset_page, page_limit, present, AdminUserPath, AppJson, AppPath, AppQuery,
    OktaUserPath, PortalPath, PortalUserPath,
};
use super::problem::{ApiError, ApiResult, FieldError, Problem};
use super::reply::utc;
use super::state::AppState;
use crate::domain::{EfsUserId, OktaUserId, PortalId, PortalUserStatus};
use crate::storage::{
    AdminUserReference, PortalUserReference, PortalUserReferencePatch, PortalUserReferenceQuery,
    PortalUserReferenceUpsert,
};

const DEFAULT_PAGE: u32 = 100;
const MAX_PAGE: u32 = 1000;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(
            get_admin_user_reference,
            put_admin_user_reference,
            delete_admin_user_reference
        ))
        .routes(routes!(list_portal_user_references))
        .routes(routes!(
            get_portal_user_reference,
            put_portal_user_reference,
            patch_portal_user_reference,
            delete_portal_user_reference
        ))
        .routes(routes!(references_to_okta_user))
}

/// An EFS-Admin user's link to Okta.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"user_id": 42, "okta_user_id": "00ub0oNGTSWTBKOLGLNR", "created_at": "2026-11-27T09:00:00Z", "updated_at": "2026-11-27T09:00:00Z"}))]
pub struct AdminUserReferenceBody {
    /// `users.uid` in EFS (NULL only in legacy rows).
    pub user_id: Option<i32>,
    pub okta_user_id: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<AdminUserReference> for AdminUserReferenceBody {
    fn from(r: AdminUserReference) -> Self {
        Self {
            user_id: r.user_id,
            okta_user_id: r.okta_user_id,
            created_at: utc(r.created_at),
            updated_at: utc(r.updated_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"okta_user_id": "00ub0oNGTSWTBKOLGLNR"}))]
pub struct PutAdminUserReference {
    /// Okta user id: 1 to 20 ASCII letters and digits.
    #[schema(max_length = 20, min_length = 1, pattern = "^[A-Za-z0-9]{1,20}$")]
    pub okta_user_id: String,
}

/// A portal user's (panelist's) link to Okta and its sync state.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"portal_id": 12, "user_id": 4711, "okta_user_id": "00ub0oNGTSWTBKOLGLNR", "status": "synced", "status_code": 1, "has_data_changes": false, "created_at": "2026-11-27T09:00:00Z", "updated_at": "2026-11-27T09:00:00Z"}))]
pub struct PortalUserReferenceBody {
    pub portal_id: Option<i32>,
    /// `panelists.uid` in EFS.
    pub user_id: Option<i32>,
    pub okta_user_id: Option<String>,
    /// The sync state; `null` when the stored code is NULL or not one efs-iam defines
    /// (see `status_code`).
    pub status: Option<PortalUserStatus>,
    /// The raw stored `status` (0 pending, 1 synced, 2 failed, 3 deprovisioned).
    pub status_code: Option<i8>,
    /// EFS changed the panelist's data since the last sync.
    pub has_data_changes: Option<bool>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<PortalUserReference> for PortalUserReferenceBody {
    fn from(r: PortalUserReference) -> Self {
        Self {
            status: r.status(),
            portal_id: r.portal_id,
            user_id: r.user_id,
            okta_user_id: r.okta_user_id,
            status_code: r.status_code,
            has_data_changes: r.has_data_changes,
            created_at: utc(r.created_at),
            updated_at: utc(r.updated_at),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PortalUserReferencePage {
    pub items: Vec<PortalUserReferenceBody>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PortalUserReferenceListQuery {
    /// Only references in this state.
    pub status: Option<PortalUserStatus>,
    /// Only references whose data changed (`true`) or not (`false`; NULL counts as false).
    pub has_data_changes: Option<bool>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1, pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"okta_user_id": "00ub0oNGTSWTBKOLGLNR", "status": "synced", "has_data_changes": false}))]
pub struct PutPortalUserReference {
    #[schema(max_length = 20, min_length = 1, pattern = "^[A-Za-z0-9]{1,20}$")]
    pub okta_user_id: String,
    pub status: PortalUserStatus,
    /// Defaults to `false`.
    #[serde(default)]
    pub has_data_changes: bool,
}

/// Only the fields present change (at least one).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"has_data_changes": true}))]
pub struct PatchPortalUserReference {
    #[serde(default, deserialize_with = "present")]
    #[schema(
        max_length = 20,
        min_length = 1,
        pattern = "^[A-Za-z0-9]{1,20}$",
        nullable = false
    )]
    pub okta_user_id: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false)]
    pub status: Option<PortalUserStatus>,
    #[serde(default, deserialize_with = "present")]
    #[schema(nullable = false)]
    pub has_data_changes: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OktaUserReferences {
    pub okta_user_id: String,
    pub admin_users: Vec<AdminUserReferenceBody>,
    pub portal_users: Vec<PortalUserReferenceBody>,
}

fn okta_id(field: &str, raw: &str) -> ApiResult<OktaUserId> {
    OktaUserId::parse(raw).map_err(|e| ApiError::Validation(vec![FieldError::new(field, e)]))
}

/// The Okta user an EFS-Admin user is linked to.
#[utoipa::path(
    get, path = "/user-references/{user_id}", tag = "user references",
    params(("user_id" = i32, Path, description = "EFS-Admin user id (users.uid)", minimum = 1, maximum = 2147483647)),
    responses(
        (status = 200, description = "The reference", body = AdminUserReferenceBody),
        (status = 400, description = "Invalid user id", body = Problem),
        (status = 404, description = "The user has no Okta reference", body = Problem),
        (status = 503, description = "Database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn get_admin_user_reference(
    State(state): State<AppState>,
    AppPath(AdminUserPath { user_id: user }): AppPath<AdminUserPath>,
) -> ApiResult<Json<AdminUserReferenceBody>> {
    let reference = state
        .references
        .admin_user_reference(user)
        .await?
        .ok_or_else(|| {
            ApiError::NotFound(format!("EFS-Admin user {user} has no Okta reference"))
        })?;
    Ok(Json(reference.into()))
}

/// Links an EFS-Admin user to an Okta user (created or replaced).
#[utoipa::path(
    put, path = "/user-references/{user_id}", tag = "user references",
    params(("user_id" = i32, Path, description = "EFS-Admin user id (users.uid)", minimum = 1, maximum = 2147483647)),
    request_body = PutAdminUserReference,
    responses(
        (status = 200, description = "Updated", body = AdminUserReferenceBody),
        (status = 201, description = "Created", body = AdminUserReferenceBody),
        (status = 400, description = "Invalid user id or malformed JSON", body = Problem),
        (status = 415, description = "Not JSON", body = Problem),
        (status = 409, description = "The Okta user is not managed by efs-iam (`okta-user-not-managed`): neither created by it nor adopted; nothing stored", body = Problem),
        (status = 422, description = "Invalid Okta user id, or no such EFS user (`unknown-efs-user`)", body = Problem),
        (status = 503, description = "Database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn put_admin_user_reference(
    State(state): State<AppState>,
    AppPath(AdminUserPath { user_id: user }): AppPath<AdminUserPath>,
    AppJson(body): AppJson<PutAdminUserReference>,
) -> ApiResult<(StatusCode, Json<AdminUserReferenceBody>)> {
    let okta = okta_id("okta_user_id", &body.okta_user_id)?;
    super::managed_users::check_managed(&state, &okta).await?;
    let (reference, created) = state
        .references
        .put_admin_user_reference(user, &okta)
        .await?;
    Ok((created_or_ok(created), Json(reference.into())))
}

/// Removes an EFS-Admin user's Okta reference.
#[utoipa::path(
    delete, path = "/user-references/{user_id}", tag = "user references",
    params(("user_id" = i32, Path, description = "EFS-Admin user id (users.uid)", minimum = 1, maximum = 2147483647)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid user id", body = Problem),
        (status = 404, description = "The user has no Okta reference", body = Problem),
        (status = 503, description = "Database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn delete_admin_user_reference(
    State(state): State<AppState>,
    AppPath(AdminUserPath { user_id: user }): AppPath<AdminUserPath>,
) -> ApiResult<StatusCode> {
    match state.references.delete_admin_user_reference(user).await? {
        0 => Err(ApiError::NotFound(format!(
            "EFS-Admin user {user} has no Okta reference"
        ))),
        _ => Ok(StatusCode::NO_CONTENT),
    }
}

/// A portal's user references, oldest first, in pages.
#[utoipa::path(
    get, path = "/portals/{portal_id}/user-references", tag = "user references",
    params(("portal_id" = i32, Path, description = "EFS portal id", minimum = 1, maximum = 2147483647), PortalUserReferenceListQuery),
    responses(
        (status = 200, description = "One page of references", body = PortalUserReferencePage),
        (status = 400, description = "Invalid portal id, filter, limit or cursor", body = Problem),
        (status = 503, description = "Database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn list_portal_user_references(
    State(state): State<AppState>,
    AppPath(PortalPath { portal_id: portal }): AppPath<PortalPath>,
    AppQuery(query): AppQuery<PortalUserReferenceListQuery>,
) -> ApiResult<Json<PortalUserReferencePage>> {
    let limit = page_limit(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let after_id = cursor_position(query.cursor.as_deref())?;
    let rows = state
        .references
        .list_portal_user_references(
            portal,
            &PortalUserReferenceQuery {
                status: query.status,
                has_data_changes: query.has_data_changes,
                after_id,
                // One extra row tells whether another page follows.
                limit: limit + 1,
            },
        )
        .await?;
    let (rows, next_cursor) = keyset_page(rows, limit, |r| r.id);
    Ok(Json(PortalUserReferencePage {
        items: rows.into_iter().map(Into::into).collect(),
        next_cursor,
    }))
}

fn no_portal_reference(portal: PortalId, user: EfsUserId) -> ApiError {
    ApiError::NotFound(format!("portal {portal} has no reference for user {user}"))
}

fn created_or_ok(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

/// One portal user's reference.
#[utoipa::path(
    get, path = "/portals/{portal_id}/user-references/{user_id}", tag = "user references",
    params(
        ("portal_id" = i32, Path, description = "EFS portal id", minimum = 1, maximum = 2147483647),
        ("user_id" = i32, Path, description = "Panelist id (panelists.uid)", minimum = 1, maximum = 2147483647),
    ),
    responses(
        (status = 200, description = "The reference", body = PortalUserReferenceBody),
        (status = 400, description = "Invalid portal or user id", body = Problem),
        (status = 404, description = "No such reference", body = Problem),
        (status = 503, description = "Database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn get_portal_user_reference(
    State(state): State<AppState>,
    AppPath(PortalUserPath {
        portal_id: portal,
        user_id: user,
    }): AppPath<PortalUserPath>,
) -> ApiResult<Json<PortalUserReferenceBody>> {
    let reference = state
        .references
        .portal_user_reference(portal, user)
        .await?
        .ok_or_else(|| no_portal_reference(portal, user))?;
    Ok(Json(reference.into()))
}

/// Creates or replaces a portal user's reference.
#[utoipa::path(
    put, path = "/portals/{portal_id}/user-references/{user_id}", tag = "user references",
    params(
        ("portal_id" = i32, Path, description = "EFS portal id", minimum = 1, maximum = 2147483647),
        ("user_id" = i32, Path, description = "Panelist id (panelists.uid)", minimum = 1, maximum = 2147483647),
    ),
    request_body = PutPortalUserReference,
    responses(
        (status = 200, description = "Updated", body = PortalUserReferenceBody),
        (status = 201, description = "Created", body = PortalUserReferenceBody),
        (status = 400, description = "Invalid ids or malformed JSON", body = Problem),
        (status = 415, description = "Not JSON", body = Problem),
        (status = 409, description = "The Okta user is not managed by efs-iam (`okta-user-not-managed`): neither created by it nor adopted; nothing stored", body = Problem),
        (status = 422, description = "Invalid field, or no such panelist (`unknown-efs-user`)", body = Problem),
        (status = 503, description = "Database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn put_portal_user_reference(
    State(state): State<AppState>,
    AppPath(PortalUserPath {
        portal_id: portal,
        user_id: user,
    }): AppPath<PortalUserPath>,
    AppJson(body): AppJson<PutPortalUserReference>,
) -> ApiResult<(StatusCode, Json<PortalUserReferenceBody>)> {
    let upsert = PortalUserReferenceUpsert {
        okta_user_id: okta_id("okta_user_id", &body.okta_user_id)?,
        status: body.status,
        has_data_changes: body.has_data_changes,
    };
    super::managed_users::check_managed(&state, &upsert.okta_user_id).await?;
    let (reference, created) = state
        .references
        .put_portal_user_reference(portal, user, &upsert)
        .await?;
    Ok((created_or_ok(created), Json(reference.into())))
}

/// Changes some fields of a portal user's reference, e.g. marks its data changed.
#[utoipa::path(
    patch, path = "/portals/{portal_id}/user-references/{user_id}", tag = "user references",
    params(
        ("portal_id" = i32, Path, description = "EFS portal id", minimum = 1, maximum = 2147483647),
        ("user_id" = i32, Path, description = "Panelist id (panelists.uid)", minimum = 1, maximum = 2147483647),
    ),
    request_body(content = PatchPortalUserReference, content_type = "application/json"),
    responses(
        (status = 200, description = "The reference after the change", body = PortalUserReferenceBody),
        (status = 400, description = "Invalid ids or malformed JSON", body = Problem),
        (status = 404, description = "No such reference", body = Problem),
        (status = 409, description = "The new Okta user is not managed by efs-iam (`okta-user-not-managed`); nothing changed", body = Problem),
        (status = 415, description = "Not JSON", body = Problem),
        (status = 422, description = "Invalid or no field", body = Problem),
        (status = 503, description = "Database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn patch_portal_user_reference(
    State(state): State<AppState>,
    AppPath(PortalUserPath {
        portal_id: portal,
        user_id: user,
    }): AppPath<PortalUserPath>,
    AppJson(body): AppJson<PatchPortalUserReference>,
) -> ApiResult<Json<PortalUserReferenceBody>> {
    let patch = PortalUserReferencePatch {
        okta_user_id: body
            .okta_user_id
            .as_deref()
            .map(|id| okta_id("okta_user_id", id))
            .transpose()?,
        status: body.status,
        has_data_changes: body.has_data_changes,
    };
    if patch.is_empty() {
        return Err(ApiError::invalid_field(
            "body",
            "name at least one of okta_user_id, status, has_data_changes",
        ));
    }
    if let Some(okta) = &patch.okta_user_id {
        super::managed_users::check_managed(&state, okta).await?;
    }
    let reference = state
        .references
        .patch_portal_user_reference(portal, user, &patch)
        .await?
        .ok_or_else(|| no_portal_reference(portal, user))?;
    Ok(Json(reference.into()))
}

/// Removes a portal user's reference.
#[utoipa::path(
    delete, path = "/portals/{portal_id}/user-references/{user_id}", tag = "user references",
    params(
        ("portal_id" = i32, Path, description = "EFS portal id", minimum = 1, maximum = 2147483647),
        ("user_id" = i32, Path, description = "Panelist id (panelists.uid)", minimum = 1, maximum = 2147483647),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Invalid portal or user id", body = Problem),
        (status = 404, description = "No such reference", body = Problem),
        (status = 503, description = "Database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn delete_portal_user_reference(
    State(state): State<AppState>,
    AppPath(PortalUserPath {
        portal_id: portal,
        user_id: user,
    }): AppPath<PortalUserPath>,
) -> ApiResult<StatusCode> {
    match state
        .references
        .delete_portal_user_reference(portal, user)
        .await?
    {
        0 => Err(no_portal_reference(portal, user)),
        _ => Ok(StatusCode::NO_CONTENT),
    }
}

/// Every EFS-Admin user and portal user linked to one Okta user (one person may be a
/// user of several portals). Empty lists when nothing points at it.
#[utoipa::path(
    get, path = "/okta-users/{okta_user_id}/references", tag = "user references",
    params(("okta_user_id" = String, Path, description = "Okta user id", max_length = 20, pattern = "^[A-Za-z0-9]{1,20}$")),
    responses(
        (status = 200, description = "The references", body = OktaUserReferences),
        (status = 400, description = "Invalid Okta user id", body = Problem),
        (status = 503, description = "Database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn references_to_okta_user(
    State(state): State<AppState>,
    AppPath(OktaUserPath { okta_user_id: okta }): AppPath<OktaUserPath>,
) -> ApiResult<Json<OktaUserReferences>> {
    let (admins, portal_users) = state.references.references_to_okta_user(&okta).await?;
    Ok(Json(OktaUserReferences {
        okta_user_id: okta.as_str().to_owned(),
        admin_users: admins.into_iter().map(Into::into).collect(),
        portal_users: portal_users.into_iter().map(Into::into).collect(),
    }))
}
