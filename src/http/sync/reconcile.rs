//! Reconciliation of a portal's Okta group with its references: a dry run answered
//! in the request, or a run queued for the reconciliation worker
//! (`POST /sync/portals/{portal_id}/reconcile`), and the runs
//! (`GET /sync/reconcile-runs[/{run_id}]`).

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::domain::PortalId;
use crate::http::extract::{
    cursor_position, keyset_page, page_limit, AppPath, AppQuery, PortalPath, ResourceId,
};
use crate::http::problem::{ApiError, ApiResult, Problem};
use crate::http::reply::{accepted, utc};
use crate::http::AppState;
use crate::storage::ReconcileRun;
use crate::sync::reconcile::ReconcileReport;

const DEFAULT_PAGE: u32 = 50;
const MAX_PAGE: u32 = 500;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(reconcile_portal))
        .routes(routes!(list_reconcile_runs))
        .routes(routes!(get_reconcile_run))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ReconcileQuery {
    /// `true` (the default): report only, within the request. `false`: repair, as a
    /// run of the reconciliation worker (202).
    pub dry_run: Option<bool>,
}

/// The state of work a worker does for a request: a reconciliation run, an error-log
/// purge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    /// Waiting for a worker (also after a failure that is retried).
    Pending,
    Running,
    Succeeded,
    Failed,
}

impl RunState {
    pub(crate) fn of(stored: &str) -> Self {
        match stored {
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            _ => Self::Pending,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"run_id": "0b8e0f63-3f5e-4d47-9c0a-5c8d8f1a2b3c", "portal_id": 12, "state": "pending", "status_url": "/api/v1/sync/reconcile-runs/0b8e0f63-3f5e-4d47-9c0a-5c8d8f1a2b3c"}))]
pub struct ReconcileRunAccepted {
    pub run_id: String,
    pub portal_id: i32,
    pub state: RunState,
    /// Where the run's state and report are (also the `Location` header).
    pub status_url: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReconcileRunBody {
    pub run_id: String,
    pub portal_id: i32,
    pub dry_run: bool,
    /// `manual` (asked through the API) or `scheduled`.
    pub kind: String,
    pub state: RunState,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Times a worker took the run up (more than one after a retried failure or a
    /// worker's crash).
    pub attempts: i32,
    /// The problem type slug of the failure (failed runs), e.g. `okta-group-not-found`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// Why it failed (failed runs), or the last failure of a run waiting for a retry.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What was found and repaired (succeeded runs; not in lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<ReconcileReport>,
}

impl ReconcileRunBody {
    fn new(run: ReconcileRun, with_report: bool) -> Self {
        let report = with_report
            .then_some(run.report.as_deref())
            .flatten()
            .and_then(|r| serde_json::from_str(r).ok());
        Self {
            run_id: run.id,
            portal_id: run.portal_id,
            dry_run: run.dry_run,
            kind: run.kind,
            state: RunState::of(&run.state),
            created_at: utc(run.created_at),
            started_at: run.started_at.map(utc),
            finished_at: run.finished_at.map(utc),
            attempts: run.attempts,
            error_type: run.error_type,
            error: run.error,
            report,
        }
    }
}

/// Compares the portal's Okta group with its references and reports (dry run) or
/// repairs the differences: missing members are added, extra members removed, stale
/// references (Okta user gone or deprovisioned) set to `deprovisioned`.
///
/// A dry run is answered within the request (it changes nothing, so a caller that
/// gives up leaves nothing behind; it is bounded by the request timeout). A repair is
/// queued as a run for the reconciliation worker of any instance and answered at once
/// (202, with the run's status URL); one portal is reconciled by one instance at a time.
///
/// Nothing is changed unless the group's member list and the references were read in
/// full; a user whose own lookup fails is reported under `errors` and left alone. Lists
/// in the report hold at most 1000 entries each, `counts` are complete.
///
/// A repair (`dry_run=false`) may remove members: it needs `iam:admin` as well as
/// `iam:sync`, whatever the portal's `reconcile_mode`. It adds and removes only Okta
/// users efs-iam manages and that hold no admin role; others are reported under
/// `errors` and left as they are.
#[utoipa::path(
    post, path = "/sync/portals/{portal_id}/reconcile", tag = "sync",
    params(
        ("portal_id" = i32, Path, description = "EFS portal id", minimum = 1, maximum = 2147483647),
        ReconcileQuery,
    ),
    responses(
        (status = 200, description = "Dry run: the differences found", body = ReconcileReport),
        (status = 202, description = "Repair queued", body = ReconcileRunAccepted,
         headers(("Location" = String, description = "The run's status URL"))),
        (status = 400, description = "Invalid portal id or dry_run", body = Problem),
        (status = 409, description = "The portal has no `okta_group_id` setting, or (dry run) it names no Okta group", body = Problem),
        (status = 502, description = "Dry run: Okta refused efs-iam's credentials or the listing", body = Problem),
        (status = 503, description = "Okta not configured or (dry run) unavailable, or the database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn reconcile_portal(
    State(state): State<AppState>,
    AppPath(PortalPath { portal_id: portal }): AppPath<PortalPath>,
    AppQuery(query): AppQuery<ReconcileQuery>,
) -> ApiResult<Response> {
    if query.dry_run.unwrap_or(true) {
        let report = state.sync.engine()?.reconcile(portal, true).await?;
        return Ok(Json(report).into_response());
    }
    let run_id = state.sync.submit_reconcile_run(portal, false).await?;
    let status_url = format!("/api/v1/sync/reconcile-runs/{run_id}");
    let location = status_url.clone();
    Ok(accepted(
        &location,
        ReconcileRunAccepted {
            run_id,
            portal_id: portal.get(),
            state: RunState::Pending,
            status_url,
        },
    ))
}

/// `{run_id}`.
#[derive(Debug, Deserialize)]
struct RunPath {
    run_id: ResourceId,
}

/// A reconciliation run: its state and, once it succeeded, its report.
#[utoipa::path(
    get, path = "/sync/reconcile-runs/{run_id}", tag = "sync",
    params(
        ("run_id" = String, Path, description = "Run id from the submission", min_length = 36, max_length = 36,
         pattern = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"),
    ),
    responses(
        (status = 200, description = "The run", body = ReconcileRunBody),
        (status = 400, description = "Invalid run id", body = Problem),
        (status = 404, description = "No such run", body = Problem),
        (status = 503, description = "Database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn get_reconcile_run(
    State(state): State<AppState>,
    AppPath(RunPath {
        run_id: ResourceId(id),
    }): AppPath<RunPath>,
) -> ApiResult<Json<ReconcileRunBody>> {
    let run = state
        .reconcile_runs
        .reconcile_run(&id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no reconciliation run {id}")))?;
    Ok(Json(ReconcileRunBody::new(run, true)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RunListQuery {
    /// Only this portal's runs.
    #[param(minimum = 1, maximum = 2147483647, value_type = Option<i32>)]
    pub portal_id: Option<PortalId>,
    /// Runs per page, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<u32>,
    /// `next_cursor` of the previous page.
    #[param(min_length = 1, pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RunList {
    /// Newest first, without their reports.
    pub items: Vec<ReconcileRunBody>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Reconciliation runs, newest first (the reports are in the single run).
#[utoipa::path(
    get, path = "/sync/reconcile-runs", tag = "sync",
    params(RunListQuery),
    responses(
        (status = 200, description = "One page of runs", body = RunList),
        (status = 400, description = "Invalid portal id, limit or cursor", body = Problem),
        (status = 503, description = "Database unavailable", body = Problem),
    )
)]
#[tracing::instrument(skip_all)]
async fn list_reconcile_runs(
    State(state): State<AppState>,
    AppQuery(query): AppQuery<RunListQuery>,
) -> ApiResult<Json<RunList>> {
    let limit = page_limit(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let before: Option<(NaiveDateTime, String)> = cursor_position(query.cursor.as_deref())?;
    let runs = state
        .reconcile_runs
        .list_reconcile_runs(query.portal_id, before, limit + 1)
        .await?;
    let (runs, next_cursor) = keyset_page(runs, limit, |r| (r.created_at, r.id.clone()));
    Ok(Json(RunList {
        items: runs
            .into_iter()
            .map(|r| ReconcileRunBody::new(r, false))
            .collect(),
        next_cursor,
    }))
}
