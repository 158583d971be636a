//! `efs_iam_reconcile_run` (migration 0005): reconciliations of a portal's Okta group
//! with its references, asked for through the API or started by the schedule, run by
//! a worker. Runs are claimed with leases like queue rows (see `unassignment_queue`):
//! a run whose holder died is claimed again once its lease runs out.

use async_trait::async_trait;
use chrono::NaiveDateTime;
use sqlx::FromRow;

use super::leases::{run_state as state, LeasedQueue, Value};
use super::sql::{on_dialect, push_ids, SqlStore, CHUNK};
use super::StorageResult;
use crate::domain::PortalId;

/// A run as stored.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ReconcileRun {
    pub id: String,
    pub portal_id: i32,
    pub dry_run: bool,
    /// `manual` or `scheduled`.
    pub kind: String,
    pub state: String,
    pub created_at: NaiveDateTime,
    pub started_at: Option<NaiveDateTime>,
    pub finished_at: Option<NaiveDateTime>,
    pub attempts: i32,
    /// The report as JSON (succeeded runs).
    pub report: Option<String>,
    /// The problem type slug of the failure (failed runs), e.g. `okta-group-not-found`.
    pub error_type: Option<String>,
    /// Why it failed (failed runs), or the last failure of a run to be retried.
    pub error: Option<String>,
}

#[derive(Debug, Clone)]
pub struct NewReconcileRun {
    pub id: String,
    pub portal: PortalId,
    pub dry_run: bool,
    pub kind: &'static str,
}

/// How a run ended.
#[derive(Debug, Clone)]
pub enum RunOutcome {
    Succeeded { report: String },
    Failed { error_type: String, error: String },
}

#[async_trait]
pub trait ReconcileRunStore: Send + Sync + 'static {
    async fn create_reconcile_run(
        &self,
        run: &NewReconcileRun,
        now: NaiveDateTime,
    ) -> StorageResult<()>;
    async fn reconcile_run(&self, id: &str) -> StorageResult<Option<ReconcileRun>>;
    /// Newest first; `before` is the keyset position `(created_at, id)` of the last
    /// run of the previous page.
    async fn list_reconcile_runs(
        &self,
        portal: Option<PortalId>,
        before: Option<(NaiveDateTime, String)>,
        limit: u32,
    ) -> StorageResult<Vec<ReconcileRun>>;
    /// Leases up to `limit` runs that are pending, or running under a lease that ran
    /// out, oldest first; each becomes `running` with one more attempt.
    async fn claim_reconcile_runs(
        &self,
        owner: &str,
        now: NaiveDateTime,
        lease_until: NaiveDateTime,
        limit: u32,
    ) -> StorageResult<Vec<ReconcileRun>>;
    /// Extends the lease of a run `owner` holds; `false` when it is no longer theirs.
    async fn renew_reconcile_run(
        &self,
        id: &str,
        owner: &str,
        until: NaiveDateTime,
    ) -> StorageResult<bool>;
    /// Records a run's end; only its holder can. `false` when the lease was lost.
    async fn finish_reconcile_run(
        &self,
        id: &str,
        owner: &str,
        outcome: &RunOutcome,
        now: NaiveDateTime,
    ) -> StorageResult<bool>;
    /// Hands a run back as pending without an outcome (shutdown, the portal busy in
    /// another instance), to be claimed again from `not_before`.
    async fn release_reconcile_run(
        &self,
        id: &str,
        owner: &str,
        error: Option<&str>,
        not_before: NaiveDateTime,
    ) -> StorageResult<bool>;
    /// The newest run of each of `portals`: of any state (`finished_only = false`, for
    /// the schedule), or the newest that ended (for what the latest run found).
    async fn latest_reconcile_runs(
        &self,
        portals: &[i32],
        finished_only: bool,
    ) -> StorageResult<Vec<ReconcileRun>>;
}

const RUNS: &str = "efs_iam_reconcile_run";
const COLS: &str = "id, portal_id, dry_run, kind, state, created_at, started_at, finished_at, \
                    attempts, report, error_type, error";
/// The runs as the leased-queue statements see them ([`LeasedQueue::runs`]).
const LEASES: LeasedQueue = LeasedQueue::runs(RUNS, COLS);

#[async_trait]
impl ReconcileRunStore for SqlStore {
    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn create_reconcile_run(
        &self,
        run: &NewReconcileRun,
        now: NaiveDateTime,
    ) -> StorageResult<()> {
        let sql = format!(
            "INSERT INTO {RUNS} (id, portal_id, dry_run, kind, state, created_at, attempts) \
             VALUES (?, ?, ?, ?, 'pending', ?, 0)"
        );
        on_dialect!(self, pool => {
            sqlx::query(&sql)
                .bind(&run.id)
                .bind(run.portal.get())
                .bind(run.dry_run)
                .bind(run.kind)
                .bind(now)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn reconcile_run(&self, id: &str) -> StorageResult<Option<ReconcileRun>> {
        let sql = format!("SELECT {COLS} FROM {RUNS} WHERE id = ?");
        Ok(on_dialect!(self, pool => {
            sqlx::query_as(&sql).bind(id).fetch_optional(pool).await?
        }))
    }

    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn list_reconcile_runs(
        &self,
        portal: Option<PortalId>,
        before: Option<(NaiveDateTime, String)>,
        limit: u32,
    ) -> StorageResult<Vec<ReconcileRun>> {
        Ok(on_dialect!(self, pool => {
            let mut q = pool.builder(format!("SELECT {COLS} FROM {RUNS} WHERE 1 = 1"));
            if let Some(portal) = portal {
                q.push(" AND portal_id = ").push_bind(portal.get());
            }
            if let Some((at, id)) = &before {
                q.push(" AND (created_at < ")
                    .push_bind(*at)
                    .push(" OR (created_at = ")
                    .push_bind(*at)
                    .push(" AND id < ")
                    .push_bind(id.clone())
                    .push("))");
            }
            q.push(" ORDER BY created_at DESC, id DESC LIMIT ")
                .push_bind(i64::from(limit));
            q.build_query_as().fetch_all(pool).await?
        }))
    }

    #[tracing::instrument(skip(self, owner), err(level = "debug"))]
    async fn claim_reconcile_runs(
        &self,
        owner: &str,
        now: NaiveDateTime,
        lease_until: NaiveDateTime,
        limit: u32,
    ) -> StorageResult<Vec<ReconcileRun>> {
        self.claim::<String, _>(&LEASES, owner, now, lease_until, limit)
            .await
    }

    #[tracing::instrument(skip(self, owner), level = "debug", err(level = "debug"))]
    async fn renew_reconcile_run(
        &self,
        id: &str,
        owner: &str,
        until: NaiveDateTime,
    ) -> StorageResult<bool> {
        Ok(self.renew(&LEASES, &[id.to_owned()], owner, until).await? > 0)
    }

    #[tracing::instrument(skip(self, owner, outcome), err(level = "debug"))]
    async fn finish_reconcile_run(
        &self,
        id: &str,
        owner: &str,
        outcome: &RunOutcome,
        now: NaiveDateTime,
    ) -> StorageResult<bool> {
        let (state, report, error_type, error) = match outcome {
            RunOutcome::Succeeded { report } => {
                (state::SUCCEEDED, Some(report.as_str()), None, None)
            }
            RunOutcome::Failed { error_type, error } => (
                state::FAILED,
                None,
                Some(error_type.as_str()),
                Some(error.as_str()),
            ),
        };
        let set = [
            ("state", Value::Text(Some(state))),
            ("report", Value::Text(report)),
            ("error_type", Value::Text(error_type)),
            ("error", Value::Text(error)),
            ("finished_at", Value::Time(Some(now))),
        ];
        self.finish(&LEASES, id.to_owned(), owner, &set).await
    }

    #[tracing::instrument(skip(self, owner, error), err(level = "debug"))]
    async fn release_reconcile_run(
        &self,
        id: &str,
        owner: &str,
        error: Option<&str>,
        not_before: NaiveDateTime,
    ) -> StorageResult<bool> {
        // Held back by a lease no instance holds, until `not_before`.
        let set = [
            ("state", Value::Text(Some(state::PENDING))),
            ("error", Value::TextOrKept(error)),
            ("locked_until", Value::Time(Some(not_before))),
        ];
        self.finish(&LEASES, id.to_owned(), owner, &set).await
    }

    #[tracing::instrument(skip(self, portals), fields(portals = portals.len()), err(level = "debug"))]
    async fn latest_reconcile_runs(
        &self,
        portals: &[i32],
        finished_only: bool,
    ) -> StorageResult<Vec<ReconcileRun>> {
        let mut latest: Vec<ReconcileRun> = Vec::new();
        let finished = if finished_only {
            " AND state IN ('succeeded', 'failed')"
        } else {
            ""
        };
        for chunk in portals.chunks(CHUNK) {
            let rows: Vec<ReconcileRun> = on_dialect!(self, pool => {
                let mut q = pool.builder(format!("SELECT {COLS} FROM {RUNS} r WHERE portal_id"));
                push_ids(&mut q, chunk);
                q.push(format!(
                    "{finished} AND created_at = (SELECT MAX(created_at) FROM {RUNS} x \
                     WHERE x.portal_id = r.portal_id{finished})"
                ));
                q.build_query_as().fetch_all(pool).await?
            });
            latest.extend(rows);
        }
        // Timestamps have whole seconds on MariaDB: of runs created in the same second,
        // the one started (then finished) last is the newest.
        latest.sort_by(|a, b| {
            (
                a.portal_id,
                a.created_at,
                a.started_at,
                a.finished_at,
                &a.id,
            )
                .cmp(&(
                    b.portal_id,
                    b.created_at,
                    b.started_at,
                    b.finished_at,
                    &b.id,
                ))
        });
        let mut newest: Vec<ReconcileRun> = Vec::new();
        for run in latest {
            match newest.last_mut() {
                Some(last) if last.portal_id == run.portal_id => *last = run,
                _ => newest.push(run),
            }
        }
        Ok(newest)
    }
}
