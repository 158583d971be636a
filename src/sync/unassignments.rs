//! Drains `iam_portal_user_group_unassignment_queue`: removes each user from the
//! portal's Okta group and deletes the row only once Okta has confirmed (204, or 404:
//! already gone).
//!
//! - **Claims** are leases (see `storage::unassignment_queue`), so instances share the queue and a
//!   crashed instance's rows come back when its lease runs out. Removing a member twice
//!   is harmless (Okta answers 204 for a non-member), so "at least once" is safe.
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

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use super::runtime::Step;
use super::{SyncSettings, SyncStorage, GROUP_SETTING};
use crate::domain::{storable_text, PortalId, SettingKey};
use crate::okta::{OktaClient, OktaError, OnMissing, Removal};
use crate::storage::{
    now, PortalSettingsStore, StorageError, Unassignment, UnassignmentQueueStore,
};

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct UnassignmentStep {
    /// Rows leased by this step.
    pub claimed: usize,
    /// Okta removed the user from the group (204); row deleted.
    pub removed: usize,
    /// Okta had no such user or group any more (404); row deleted.
    pub already_gone: usize,
    /// Failed; will be retried after a backoff.
    pub retrying: usize,
    /// Failed for the last allowed time; kept as dead letters.
    pub dead_lettered: usize,
    /// Legacy rows dead-lettered because they can never be processed.
    pub unroutable: usize,
    /// Handed back unprocessed (shutdown, or Okta refusing efs-iam's credentials).
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
            RowOutcome::Removed => self.removed += 1,
            RowOutcome::AlreadyGone => self.already_gone += 1,
            RowOutcome::Retrying => self.retrying += 1,
            RowOutcome::Dead => self.dead_lettered += 1,
            RowOutcome::Released => self.released += 1,
            RowOutcome::Blocked(why) => {
                self.released += 1;
                self.blocked.get_or_insert(why);
            }
        }
    }
}

#[derive(Debug)]
enum RowOutcome {
    Removed,
    AlreadyGone,
    Retrying,
    Dead,
    Released,
    Blocked(String),
}

pub struct UnassignmentWorker {
    queue: Arc<dyn UnassignmentQueueStore>,
    portal_settings: Arc<dyn PortalSettingsStore>,
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
            portal_settings: store.clone(),
            okta,
            settings,
            owner,
            cancel,
        }
    }

    /// One round: dead-letter unroutable rows, lease a batch of due rows, remove each
    /// from its portal's Okta group and record the outcome.
    #[tracing::instrument(name = "unassignments.step", skip(self), err(level = "warn"))]
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
        let lease_until = t + chrono::Duration::from_std(self.settings.lease).unwrap_or_default();
        let rows = self
            .queue
            .claim_unassignments(&self.owner, t, lease_until, self.settings.batch_size)
            .await?;
        step.claimed = rows.len();
        step.batch_full = rows.len() as u32 >= self.settings.batch_size;
        if rows.is_empty() {
            return Ok(step);
        }
        let groups = self.groups_of(&rows).await?;
        let outcomes: Vec<RowOutcome> = stream::iter(rows)
            .map(|row| {
                let groups = &groups;
                async move { self.process(row, groups).await }
            })
            .buffer_unordered(self.settings.concurrency as usize)
            .collect()
            .await;
        for o in outcomes {
            step.add(o);
        }
        tracing::info!(
            claimed = step.claimed,
            removed = step.removed,
            already_gone = step.already_gone,
            retrying = step.retrying,
            dead_lettered = step.dead_lettered,
            released = step.released,
            "unassignment step"
        );
        Ok(step)
    }

    /// Steps until the queue has nothing due, a step is blocked, `max_rows` were
    /// claimed or `budget` has passed (no new step starts after it). Returns the steps
    /// run and their summed counts.
    pub async fn drain(
        &self,
        max_rows: usize,
        budget: std::time::Duration,
    ) -> Result<(u32, UnassignmentStep), StorageError> {
        let started = std::time::Instant::now();
        let mut steps = 0;
        let mut totals = UnassignmentStep::default();
        loop {
            let step = self.run_once().await?;
            steps += 1;
            totals.claimed += step.claimed;
            totals.removed += step.removed;
            totals.already_gone += step.already_gone;
            totals.retrying += step.retrying;
            totals.dead_lettered += step.dead_lettered;
            totals.unroutable += step.unroutable;
            totals.released += step.released;
            if step.blocked.is_some() {
                totals.blocked = step.blocked;
                break;
            }
            if step.claimed == 0
                || step.released > 0
                || totals.claimed >= max_rows
                || started.elapsed() >= budget
            {
                break;
            }
        }
        Ok((steps, totals))
    }

    /// Each claimed portal's Okta group, or why there is none.
    async fn groups_of(
        &self,
        rows: &[Unassignment],
    ) -> Result<HashMap<i32, Result<String, String>>, StorageError> {
        let key = SettingKey::parse(GROUP_SETTING).expect("a valid key");
        let mut groups = HashMap::new();
        for portal in rows.iter().filter_map(|r| r.portal_id) {
            if groups.contains_key(&portal) {
                continue;
            }
            let group = match PortalId::new(portal) {
                Ok(p) => self
                    .portal_settings
                    .portal_setting(p, &key)
                    .await?
                    .and_then(|s| s.value)
                    .map(|v| v.trim().to_owned())
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| {
                        format!(
                            "portal {portal} has no okta_group_id setting; set it, then requeue"
                        )
                    }),
                Err(_) => Err(format!("portal id {portal} is not valid")),
            };
            groups.insert(portal, group);
        }
        Ok(groups)
    }

    async fn process(
        &self,
        row: Unassignment,
        groups: &HashMap<i32, Result<String, String>>,
    ) -> RowOutcome {
        if self.cancel.is_cancelled() {
            return self.release(&row).await;
        }
        let okta_id = row.okta_user_id.clone().unwrap_or_default();
        let group = row
            .portal_id
            .and_then(|p| groups.get(&p))
            .cloned()
            .unwrap_or_else(|| Err("row without portal".into()));
        let group = match group {
            Ok(g) => g,
            Err(why) => return self.fail(&row, &why).await,
        };
        match self
            .okta
            .remove_group_member(&group, &okta_id, OnMissing::TreatAsRemoved)
            .await
        {
            Ok(removal) => {
                if let Err(e) = self.queue.complete_unassignment(row.id).await {
                    // Okta has done it; the row comes back when the lease runs out and
                    // the repeat is harmless.
                    tracing::warn!(row = row.id, error = %e, "removed in Okta, but the row could not be deleted");
                    return RowOutcome::Released;
                }
                match removal {
                    Removal::Removed => RowOutcome::Removed,
                    Removal::AlreadyGone => RowOutcome::AlreadyGone,
                }
            }
            Err(e @ (OktaError::Auth(_) | OktaError::NotConfigured)) => {
                let why = format!("Okta refuses efs-iam: {e}");
                match self.release(&row).await {
                    RowOutcome::Released => RowOutcome::Blocked(why),
                    other => other,
                }
            }
            Err(e) => self.fail(&row, &e.to_string()).await,
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

    async fn fail(&self, row: &Unassignment, error: &str) -> RowOutcome {
        let attempts = row.attempts.saturating_add(1);
        let t = now();
        let dead = attempts as u32 >= self.settings.max_attempts;
        let (next, dead_at) = if dead {
            (None, Some(t))
        } else {
            let wait = self.settings.backoff(attempts as u32);
            (
                Some(t + chrono::Duration::from_std(wait).unwrap_or_default()),
                None,
            )
        };
        let text = storable_text(error, 21_845);
        match self
            .queue
            .fail_unassignment(row.id, &self.owner, attempts, &text, next, dead_at)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(row = row.id, "lease lost before the failure was recorded");
            }
            Err(e) => {
                tracing::warn!(row = row.id, error = %e, "could not record a failed attempt");
            }
        }
        if dead {
            tracing::warn!(row = row.id, attempts, error, "unassignment dead-lettered");
            RowOutcome::Dead
        } else {
            tracing::info!(
                row = row.id,
                attempts,
                error,
                "unassignment failed; will retry"
            );
            RowOutcome::Retrying
        }
    }
}
