//! Drains `iam_portal_user_group_unassignment_queue`: removes each user from the
//! portal's Okta group and deletes the row only once Okta has confirmed it for that
//! group: a 204, or a 404 for a group that exists (the user is gone already).
//!
//! - **Claims** are short leases (see `storage::unassignment_queue`) that a heartbeat
//!   renews while the step runs, so instances share the queue and a crashed instance's
//!   rows come back soon. Only the lease holder completes, fails or releases a row.
//!   Removing a member twice is harmless (Okta answers 204 for a non-member), so "at
//!   least once" is safe.
//! - **A 404** from `DELETE /groups/{gid}/users/{uid}` means no such user *or* no such
//!   group. Only the first is "already removed": on a 404 the worker asks whether the
//!   group exists (the answer cached per group for [`GROUP_CHECK_TTL`]). A missing group
//!   fails the row with `okta-group-not-found` (retried, then dead-lettered, requeueable
//!   once the portal's `okta_group_id` is corrected), is written to the error log once
//!   per portal and step, and shows in `/sync/status` and the metrics.
//! - **Failures** (Okta's 5xx/429/timeouts after the adapter's own retries, a 403 for a
//!   group efs-iam may not change, a portal without `okta_group_id`) count an attempt,
//!   keep the error in `last_error` and wait with exponential backoff; after
//!   `EFS_IAM_SYNC_MAX_ATTEMPTS` the row becomes a dead letter (`dead_at`), kept and
//!   re-queueable.
//! - **Systemic failures** (Okta refuses efs-iam's credentials, or Okta is not
//!   configured) are not the rows' fault: the rows are handed back without counting an
//!   attempt and the loop backs off until an operator fixes the credentials.
//! - **Legacy rows** without `portal_id` (or without an Okta user id) can never be
//!   processed; each step dead-letters them with an explanation.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use super::unassignment_groups::PortalGroups;
pub use super::unassignment_groups::{MissingGroup, GROUP_CHECK_TTL};
use super::{Step, Worker};
use crate::domain::{storable_text, TEXT_MAX_CHARS};
use crate::okta::{OktaClient, OktaError, OnMissing, Removal};
use crate::storage::{now, StorageError, Unassignment, UnassignmentQueueStore};
use crate::sync::heartbeat::{Heartbeat, LeaseLost};
use crate::sync::{Boundary, SyncError, SyncSettings, SyncStorage};

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UnassignmentStep {
    /// Rows leased by this step.
    pub claimed: usize,
    /// Okta removed the user from the group (204); row deleted.
    pub removed: usize,
    /// Okta had no such user in an existing group (404); row deleted.
    pub already_gone: usize,
    /// Failed; will be retried after a backoff.
    pub retrying: usize,
    /// Failed for the last allowed time; kept as dead letters.
    pub dead_lettered: usize,
    /// Of the failed rows, those whose portal's `okta_group_id` names no group Okta has.
    pub group_missing: usize,
    /// Legacy rows dead-lettered because they can never be processed.
    pub unroutable: usize,
    /// Handed back unprocessed (shutdown, or Okta refusing efs-iam's credentials), or
    /// whose lease another instance holds now.
    pub released: usize,
    /// Why nothing could be done, when the whole step was blocked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
    /// A full batch was claimed (there is probably more).
    #[serde(skip)]
    #[schema(ignore)]
    pub batch_full: bool,
}

impl UnassignmentStep {
    fn add(&mut self, outcome: RowOutcome) {
        match outcome {
            RowOutcome::Removed => {
                metrics::counter!("efs_iam_unassignments_completed_total", "result" => "removed")
                    .increment(1);
                self.removed += 1
            }
            RowOutcome::AlreadyGone => {
                metrics::counter!("efs_iam_unassignments_completed_total", "result" => "already_gone")
                    .increment(1);
                self.already_gone += 1
            }
            RowOutcome::Failed {
                dead,
                group_missing,
            } => {
                if dead {
                    self.dead_lettered += 1;
                } else {
                    self.retrying += 1;
                }
                if group_missing.is_some() {
                    self.group_missing += 1;
                }
            }
            RowOutcome::Released => self.released += 1,
            RowOutcome::Blocked(why) => {
                self.released += 1;
                self.blocked.get_or_insert(why);
            }
        }
    }

    /// Adds another step's counts (for a drain of several steps).
    pub fn absorb(&mut self, step: UnassignmentStep) {
        self.claimed += step.claimed;
        self.removed += step.removed;
        self.already_gone += step.already_gone;
        self.retrying += step.retrying;
        self.dead_lettered += step.dead_lettered;
        self.group_missing += step.group_missing;
        self.unroutable += step.unroutable;
        self.released += step.released;
        if step.blocked.is_some() {
            self.blocked = step.blocked;
        }
    }
}

#[derive(Debug)]
enum RowOutcome {
    Removed,
    AlreadyGone,
    Failed {
        dead: bool,
        /// The portal and the group id Okta does not have, when that was the failure.
        group_missing: Option<(i32, String)>,
    },
    Released,
    Blocked(String),
}

pub struct UnassignmentWorker {
    queue: Arc<dyn UnassignmentQueueStore>,
    boundary: Boundary,
    groups: PortalGroups,
    okta: OktaClient,
    settings: SyncSettings,
    owner: String,
    cancel: CancellationToken,
}

impl Step for UnassignmentStep {
    fn more_to_do(&self) -> bool {
        self.blocked.is_none() && self.batch_full && self.released == 0
    }
    fn blocked(&self) -> Option<&str> {
        self.blocked.as_deref()
    }
}

impl Worker for UnassignmentWorker {
    const NAME: &'static str = "unassignments";
    const STATUS_KEY: &'static str = "unassignments";
    type Step = UnassignmentStep;

    async fn step(&self) -> Result<UnassignmentStep, StorageError> {
        self.run_once().await
    }
}

impl UnassignmentWorker {
    /// `owner` names this instance in leases; `cancel` stops a step from starting
    /// further rows (the rest are handed back).
    pub fn new<S: SyncStorage>(
        store: &Arc<S>,
        okta: OktaClient,
        settings: SyncSettings,
        owner: String,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            queue: store.clone(),
            boundary: Boundary::new(store.clone(), okta.clone()),
            groups: PortalGroups::new(store, okta.clone()),
            okta,
            settings,
            owner,
            cancel,
        }
    }

    /// Portals whose `okta_group_id` names no group Okta has, as this instance last saw.
    pub fn missing_groups(&self) -> Vec<MissingGroup> {
        self.groups.missing_groups()
    }

    /// One round: dead-letter unroutable rows, lease a batch of due rows, remove each
    /// from its portal's Okta group and record the outcome.
    #[tracing::instrument(name = "unassignments.step", skip(self), err(level = "debug"))]
    pub async fn run_once(&self) -> Result<UnassignmentStep, StorageError> {
        let mut step = UnassignmentStep::default();
        let t = now();
        step.unroutable = self.queue.dead_letter_unroutable_unassignments(t).await? as usize;
        if step.unroutable > 0 {
            tracing::warn!(
                rows = step.unroutable,
                "legacy unassignment rows without portal or Okta id dead-lettered"
            );
        }
        let lease = chrono::Duration::from_std(self.settings.lease).unwrap_or_default();
        let rows = self
            .queue
            .claim_unassignments(&self.owner, t, t + lease, self.settings.batch_size)
            .await?;
        step.claimed = rows.len();
        step.batch_full = rows.len() as u32 >= self.settings.batch_size;
        if rows.is_empty() {
            return Ok(step);
        }
        let heartbeat = self.heartbeat(rows.iter().map(|r| r.id).collect());
        let lost = heartbeat.lost();
        let groups = self.groups.groups_of(&rows).await?;
        let outcomes = lost
            .each_while_held(
                rows,
                self.settings.concurrency as usize,
                || RowOutcome::Released,
                |row| self.process(row, &groups, &lost),
            )
            .await;
        let mut missing: BTreeMap<i32, (String, usize)> = BTreeMap::new();
        for o in outcomes {
            if let RowOutcome::Failed {
                group_missing: Some((portal, group)),
                ..
            } = &o
            {
                missing.entry(*portal).or_insert((group.clone(), 0)).1 += 1;
            }
            step.add(o);
        }
        self.groups.report_missing(missing).await;
        tracing::info!(
            claimed = step.claimed,
            removed = step.removed,
            already_gone = step.already_gone,
            retrying = step.retrying,
            dead_lettered = step.dead_lettered,
            group_missing = step.group_missing,
            released = step.released,
            "unassignment step"
        );
        Ok(step)
    }

    /// Renews the leases of the step's rows while it runs.
    fn heartbeat(&self, ids: Vec<i32>) -> Heartbeat {
        let (queue, owner) = (self.queue.clone(), self.owner.clone());
        Heartbeat::start("unassignment rows", self.settings.lease, move |until| {
            let (queue, owner, ids) = (queue.clone(), owner.clone(), ids.clone());
            async move { queue.renew_unassignment_leases(&ids, &owner, until).await }
        })
    }

    async fn process(
        &self,
        row: Unassignment,
        groups: &HashMap<i32, Result<String, String>>,
        lost: &LeaseLost,
    ) -> RowOutcome {
        if self.cancel.is_cancelled() {
            return self.release(&row).await;
        }
        let okta_id = row.okta_user_id.clone().unwrap_or_default();
        let portal = row.portal_id.unwrap_or_default();
        let group = match groups.get(&portal).cloned() {
            Some(Ok(g)) => g,
            Some(Err(why)) => return self.fail(&row, &why, None).await,
            None => return self.fail(&row, "row without portal", None).await,
        };
        // Only EFS's own users are taken out of a group: someone else's, or an
        // administrator, stays a dead letter until an admin adopts it (and requeues).
        match self.boundary.check_may_change_id(&okta_id).await {
            // Okta has no such user (any more): the removal below finds it gone.
            Ok(()) | Err(SyncError::OktaRefused(OktaError::NotFound(_))) => {}
            // A user Okta does not have is nobody's: removing it changes nothing and
            // ends the row as before (a legacy row about a long deleted user).
            Err(SyncError::NotManaged { .. })
                if matches!(self.okta.get_user(&okta_id).await, Ok(None)) => {}
            Err(refused @ (SyncError::NotManaged { .. } | SyncError::Privileged { .. })) => {
                let why = format!("{}: {refused}", refused.slug());
                return self.dead_letter(&row, &why).await;
            }
            Err(SyncError::OktaAuth(e) | SyncError::OktaRefused(e @ OktaError::NotConfigured)) => {
                let why = format!("Okta refuses efs-iam: {e}");
                return match self.release(&row).await {
                    RowOutcome::Released => RowOutcome::Blocked(why),
                    other => other,
                };
            }
            Err(e) => return self.fail(&row, &e.to_string(), None).await,
        }
        // The boundary check may have taken a while: the leases may be gone by now.
        if lost.is_lost() {
            return RowOutcome::Released;
        }
        let removal = match self
            .okta
            .remove_group_member(&group, &okta_id, OnMissing::TreatAsRemoved)
            .await
        {
            Ok(removal) => removal,
            Err(e @ (OktaError::Auth(_) | OktaError::NotConfigured)) => {
                let why = format!("Okta refuses efs-iam: {e}");
                return match self.release(&row).await {
                    RowOutcome::Released => RowOutcome::Blocked(why),
                    other => other,
                };
            }
            Err(e) => return self.fail(&row, &e.to_string(), None).await,
        };
        if removal == Removal::AlreadyGone {
            // No such user, or no such group: only the first is done.
            match self.groups.exists(&group).await {
                Ok(true) => {}
                Ok(false) => {
                    let why = format!(
                        "okta-group-not-found: the okta_group_id of portal {portal} ({group}) \
                         names no group Okta has; correct the setting, then requeue"
                    );
                    return self.fail(&row, &why, Some((portal, group))).await;
                }
                Err(e) => {
                    let why = format!("Okta answered 404; whether the group exists: {e}");
                    return self.fail(&row, &why, None).await;
                }
            }
        }
        // Okta removed a member from this group, or confirmed the group: it exists.
        self.groups.found(portal);
        match self.queue.complete_unassignment(row.id, &self.owner).await {
            Ok(true) => match removal {
                Removal::Removed => RowOutcome::Removed,
                Removal::AlreadyGone => RowOutcome::AlreadyGone,
            },
            Ok(false) => {
                // The lease ran out and another instance holds the row: its outcome is
                // that instance's to record (and removing twice is harmless).
                tracing::warn!(row = row.id, "lease lost before the removal was recorded");
                RowOutcome::Released
            }
            Err(e) => {
                // Okta has done it; the row comes back when the lease runs out and the
                // repeat is harmless.
                tracing::warn!(row = row.id, error = %e, "removed in Okta, but the row could not be deleted");
                RowOutcome::Released
            }
        }
    }

    async fn release(&self, row: &Unassignment) -> RowOutcome {
        if let Err(e) = self
            .queue
            .release_unassignments(&[row.id], &self.owner)
            .await
        {
            tracing::warn!(row = row.id, error = %e, "could not hand a row back; its lease will run out");
        }
        RowOutcome::Released
    }

    /// A row no retry can help: a dead letter at once.
    async fn dead_letter(&self, row: &Unassignment, error: &str) -> RowOutcome {
        self.failed(row, error, None, true).await
    }

    async fn fail(
        &self,
        row: &Unassignment,
        error: &str,
        group_missing: Option<(i32, String)>,
    ) -> RowOutcome {
        self.failed(row, error, group_missing, false).await
    }

    async fn failed(
        &self,
        row: &Unassignment,
        error: &str,
        group_missing: Option<(i32, String)>,
        for_good: bool,
    ) -> RowOutcome {
        let attempts = row.attempts.saturating_add(1);
        let t = now();
        let dead = for_good || attempts as u32 >= self.settings.max_attempts;
        let (next, dead_at) = if dead {
            (None, Some(t))
        } else {
            (Some(self.settings.retry_at(attempts as u32)), None)
        };
        let reason = if group_missing.is_some() {
            "okta-group-not-found"
        } else {
            "other"
        };
        metrics::counter!("efs_iam_unassignment_failures_total", "reason" => reason).increment(1);
        let text = storable_text(error, TEXT_MAX_CHARS);
        match self
            .queue
            .fail_unassignment(row.id, &self.owner, attempts, &text, next, dead_at)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(row = row.id, "lease lost before the failure was recorded");
                return RowOutcome::Released;
            }
            Err(e) => {
                tracing::warn!(row = row.id, error = %e, "could not record a failed attempt");
            }
        }
        if dead {
            tracing::warn!(row = row.id, attempts, error, "unassignment dead-lettered");
            metrics::counter!("efs_iam_unassignments_dead_lettered_total").increment(1);
        } else {
            tracing::info!(
                row = row.id,
                attempts,
                error,
                "unassignment failed; will retry"
            );
        }
        RowOutcome::Failed {
            dead,
            group_missing,
        }
    }
}
