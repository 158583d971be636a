//! `POST /sync/portals/{portal_id}/reconcile`.

use axum::extract::State;
use axum::Json;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::http::extract::{AppPath, AppQuery, PortalPath};
use crate::http::problem::{ApiResult, Problem};
use crate::http::AppState;
use crate::sync::reconcile::ReconcileReport;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(reconcile_portal))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReconcileQuery {
    /// `true` (the default): report only. `false`: repair.
    pub dry_run: Option<bool>,
}

/// Compares the portal's Okta group with its references and reports (dry run) or
/// repairs the differences: missing members are added, extra members removed, stale
/// references (Okta user gone or deprovisioned) set to `deprovisioned`.
///
/// Nothing is changed unless the group's member list and the references were read in
/// full; a user whose own lookup fails is reported under `errors` and left alone. The
/// work happens within the request (bounded by the request timeout); lists in the
/// report hold at most 1000 entries each, `counts` are complete.
#[utoipa::path(
    post, path = "/sync/portals/{portal_id}/reconcile", tag = "sync",
    params(
        ("portal_id" = i32, Path, description = "EFS portal id", minimum = 1, maximum = 2147483647),
        ReconcileQuery,
    ),
    responses(
        (status = 200, description = "The differences found and, unless a dry run, what was repaired", body = ReconcileReport),
        (status = 400, description = "Invalid portal id or dry_run", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The portal has no `okta_group_id` setting, or names no Okta group", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "Okta refused efs-iam's credentials or the listing; nothing was changed", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Okta not configured or unavailable (nothing was changed), or the database unavailable", body = Problem, content_type = "application/problem+json"),
    )
)]
#[tracing::instrument(skip_all)]
async fn reconcile_portal(
    State(state): State<AppState>,
    AppPath(PortalPath { portal_id: portal }): AppPath<PortalPath>,
    AppQuery(query): AppQuery<ReconcileQuery>,
) -> ApiResult<Json<ReconcileReport>> {
    let report = state
        .sync
        .engine()?
        .reconcile(portal, query.dry_run.unwrap_or(true))
        .await?;
    Ok(Json(report))
}
