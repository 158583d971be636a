//! `/sync/*`: the sync engine over HTTP (scope `iam:sync`). EFS-Admin calls these with
//! the user's profile; efs-iam does the Okta side.
//!
//! - `users.rs`: sync or deprovision an EFS-Admin user, sync a portal user;
//! - `jobs.rs`: batch syncs of up to 10,000 portal users, and their progress;
//! - `reconcile.rs`, `status.rs`;
//! - `profile.rs`: the profile a sync sends, and its checks.
//!
//! - `unassignments.rs`: the unassignment worker's side of the queue.
//!
//! Without Okta settings every operation that needs Okta answers 503
//! `okta-not-configured`; `/sync/status` and the dead-letter list still work.

mod jobs;
mod reconcile;
mod status;
mod unassignments;
mod users;

pub(crate) use reconcile::RunState;

use utoipa_axum::router::OpenApiRouter;

use crate::http::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(users::router())
        .merge(jobs::router())
        .merge(reconcile::router())
        .merge(status::router())
        .merge(unassignments::router())
}
