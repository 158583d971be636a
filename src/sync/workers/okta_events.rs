//! Applies Okta Event Hook deliveries (stored by `POST /hooks/okta/events`, see
//! `storage::okta_events`) to the portal user references, outside any request.
//!
//! | Okta event | effect on the Okta user's portal user references |
//! |---|---|
//! | `user.lifecycle.deactivate`, `.suspend`, `.delete.initiated`, `.delete.completed` | `deprovisioned` |
//! | `user.lifecycle.reactivate`, `.unsuspend`, `.activate` | `has_data_changes`; `deprovisioned` ones back to `pending` |
//! | `user.account.update_profile` | `has_data_changes` (EFS pushes its data again) |
//! | `group.user_membership.remove` from a portal's group | that portal's `synced` reference → `pending` |
//! | `group.user_membership.add` to a portal's group | that portal's `pending` reference without data changes → `synced` |
//! | anything else, or a group that is no portal's | `ignored` (recorded and counted) |
//!
//! Admin user references (`iam_user_reference`) have no status; events about their
//! Okta users are recorded with a note. Events of one step are applied one after the
//! other in `published` order; an older event that arrives after a newer one about the
//! same user and subject is `superseded` (see the storage module). An event that
//! cannot be applied is retried with backoff and then recorded `failed`, written to
//! the error log and counted; it stays listed, never dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use super::{Step, Worker};
use crate::domain::{storable_text, OktaUserId, TEXT_MAX_CHARS};
use crate::storage::okta_events::event_state;
use crate::storage::{
    now, Applied, ErrorLogStore, ManagedUserStore, NewErrorLogEntry, OktaEvent, OktaEventStore,
    OktaEventUpkeep, PortalGroup, PortalSettingsStore, ReferenceChange, StorageError,
};
use crate::sync::heartbeat::Heartbeat;
use crate::sync::{SyncSettings, SyncStorage};

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EventStep {
    pub claimed: usize,
    pub processed: usize,
    pub superseded: usize,
    pub ignored: usize,
    pub retrying: usize,
    pub failed: usize,
    /// Handed over: the lease was lost, or shutdown.
    pub released: usize,
    #[serde(skip)]
    #[schema(ignore)]
    pub batch_full: bool,
}

impl Step for EventStep {
    fn more_to_do(&self) -> bool {
        self.batch_full && self.released == 0
    }
    fn blocked(&self) -> Option<&str> {
        None
    }
}

/// What an event means for efs-iam.
enum Meaning {
    Change {
        user: OktaUserId,
        subject: String,
        change: ReferenceChange,
    },
    Ignore(String),
}

pub struct OktaEventWorker {
    events: Arc<dyn OktaEventStore>,
    upkeep: Arc<dyn OktaEventUpkeep>,
    managed: Arc<dyn ManagedUserStore>,
    portal_settings: Arc<dyn PortalSettingsStore>,
    error_log: Arc<dyn ErrorLogStore>,
    settings: SyncSettings,
    owner: String,
    cancel: CancellationToken,
    /// When this instance last purged old events (Unix seconds; 0: not yet).
    last_purge: AtomicI64,
}

/// Events deleted per purge statement.
const PURGE_BATCH: u32 = 1000;

impl Worker for OktaEventWorker {
    const NAME: &'static str = "okta-events";
    const STATUS_KEY: &'static str = "okta_events";
    /// It only reads what Okta sent and changes references.
    const NEEDS_OKTA: bool = false;
    type Step = EventStep;

    async fn step(&self) -> Result<EventStep, StorageError> {
        self.run_once().await
    }
}

impl OktaEventWorker {
    pub fn new<S: SyncStorage>(
        store: &Arc<S>,
        settings: SyncSettings,
        owner: String,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            events: store.clone(),
            upkeep: store.clone(),
            managed: store.clone(),
            portal_settings: store.clone(),
            error_log: store.clone(),
            settings,
            owner,
            cancel,
            last_purge: AtomicI64::new(0),
        }
    }

    /// Deletes the events past the retention, at most hourly per instance, in batches
    /// (each its own statement, so live deliveries are not held up); `None` when not due.
    pub async fn purge_old_events(&self) -> Option<Result<u64, StorageError>> {
        let t = now();
        let last = self.last_purge.load(Ordering::Relaxed);
        if t.and_utc().timestamp() - last < 3600 {
            return None;
        }
        self.last_purge
            .store(t.and_utc().timestamp(), Ordering::Relaxed);
        let retention = chrono::Duration::from_std(self.settings.okta_event_retention)
            .unwrap_or(chrono::Duration::MAX);
        let Some(before) = t.checked_sub_signed(retention) else {
            return Some(Ok(0));
        };
        let mut purged = 0;
        loop {
            match self.upkeep.purge_okta_events(before, PURGE_BATCH).await {
                Ok(n) => {
                    purged += n;
                    if n < u64::from(PURGE_BATCH) || self.cancel.is_cancelled() {
                        break;
                    }
                }
                Err(e) => return Some(Err(e)),
            }
        }
        if purged > 0 {
            tracing::info!(events = purged, "Okta events past their retention purged");
            metrics::counter!("efs_iam_okta_events_purged_total").increment(purged);
        }
        Some(Ok(purged))
    }

    /// One round: lease a batch of due events and apply them in `published` order.
    #[tracing::instrument(name = "okta_events.step", skip(self), err(level = "debug"))]
    pub async fn run_once(&self) -> Result<EventStep, StorageError> {
        let mut step = EventStep::default();
        if let Some(Err(e)) = self.purge_old_events().await {
            tracing::warn!(error = %e, "could not purge old Okta events");
        }
        let t = now();
        let lease = chrono::Duration::from_std(self.settings.lease).unwrap_or_default();
        let events = self
            .events
            .claim_okta_events(&self.owner, t, t + lease, self.settings.batch_size)
            .await?;
        step.claimed = events.len();
        step.batch_full = events.len() as u32 >= self.settings.batch_size;
        if events.is_empty() {
            return Ok(step);
        }
        let _heartbeat = self.heartbeat(events.iter().map(|e| e.uuid.clone()).collect());
        // Which portal a group belongs to, read once per step.
        let groups = self.portals_by_group().await?;
        for event in events {
            if self.cancel.is_cancelled() {
                // Its lease runs out and another instance (or this one later) takes it.
                step.released += 1;
                continue;
            }
            let outcome = self.process(&event, &groups).await;
            metrics::counter!("efs_iam_okta_events_total", "outcome" => outcome).increment(1);
            match outcome {
                event_state::PROCESSED => step.processed += 1,
                event_state::SUPERSEDED => step.superseded += 1,
                event_state::IGNORED => step.ignored += 1,
                event_state::FAILED => step.failed += 1,
                "retrying" => step.retrying += 1,
                _ => step.released += 1,
            }
        }
        tracing::info!(
            claimed = step.claimed,
            processed = step.processed,
            superseded = step.superseded,
            ignored = step.ignored,
            failed = step.failed,
            "Okta event step"
        );
        Ok(step)
    }

    fn heartbeat(&self, uuids: Vec<String>) -> Heartbeat {
        let (events, owner) = (self.events.clone(), self.owner.clone());
        Heartbeat::start("Okta events", self.settings.lease, move |until| {
            let (events, owner, uuids) = (events.clone(), owner.clone(), uuids.clone());
            async move { events.renew_okta_event_leases(&uuids, &owner, until).await }
        })
    }

    /// Group id → the portals whose `okta_group_id` it is.
    async fn portals_by_group(&self) -> Result<HashMap<String, Vec<i32>>, StorageError> {
        let mut groups: HashMap<String, Vec<i32>> = HashMap::new();
        for (portal, group) in self.portal_settings.linked_portals().await? {
            if let PortalGroup::Linked(group) = group {
                groups
                    .entry(group.as_str().to_owned())
                    .or_default()
                    .push(portal);
            }
        }
        Ok(groups)
    }

    /// Applies one event; the state it ended in (`retrying` when it waits for another
    /// attempt, `released` when the lease was lost).
    async fn process(&self, event: &OktaEvent, groups: &HashMap<String, Vec<i32>>) -> &'static str {
        let meaning = match serde_json::from_str::<Value>(&event.payload) {
            Ok(payload) => meaning(&event.event_type, &payload, groups),
            Err(e) => Err(format!("the stored event is not JSON: {e}")),
        };
        // Events about someone else's Okta user change nothing efs-iam keeps.
        let meaning = match meaning {
            Ok(Meaning::Change {
                user,
                subject,
                change,
            }) => match self.managed.managed_okta_user(&user).await {
                Ok(Some(_)) => Ok(Meaning::Change {
                    user,
                    subject,
                    change,
                }),
                Ok(None) => Ok(Meaning::Ignore(format!(
                    "Okta user {user} is not managed by efs-iam; no reference changed"
                ))),
                Err(e) => return self.retry(event, &e.to_string()).await,
            },
            other => other,
        };
        let result = match meaning {
            Err(why) => return self.fail(event, &why).await,
            Ok(Meaning::Ignore(why)) => self
                .events
                .finish_okta_event(&event.uuid, &self.owner, event_state::IGNORED, &why, now())
                .await
                .map(|held| if held { event_state::IGNORED } else { "released" }),
            Ok(Meaning::Change {
                user,
                subject,
                change,
            }) => self
                .events
                .apply_okta_event(event, &self.owner, &user, &subject, &change, now())
                .await
                .map(|applied| match applied {
                    Applied::Changed { references, .. } => {
                        tracing::info!(event = %event.uuid, event_type = %event.event_type, okta_user = %user, references, "Okta event applied");
                        event_state::PROCESSED
                    }
                    Applied::Superseded => event_state::SUPERSEDED,
                    Applied::LeaseLost => "released",
                }),
        };
        match result {
            Ok(state) => state,
            Err(e) if e.is_transient() => self.retry(event, &e.to_string()).await,
            Err(e) => self.fail(event, &e.to_string()).await,
        }
    }

    async fn retry(&self, event: &OktaEvent, error: &str) -> &'static str {
        let attempts = event.attempts.saturating_add(1);
        if attempts as u32 >= self.settings.max_attempts {
            return self.fail(event, error).await;
        }
        let next = self.settings.retry_at(attempts as u32);
        match self
            .events
            .retry_okta_event(
                &event.uuid,
                &self.owner,
                attempts,
                &storable_text(error, TEXT_MAX_CHARS),
                next,
            )
            .await
        {
            Ok(true) => "retrying",
            _ => "released",
        }
    }

    /// Records the event failed, for good, and says so in the error log.
    async fn fail(&self, event: &OktaEvent, why: &str) -> &'static str {
        tracing::warn!(event = %event.uuid, event_type = %event.event_type, error = why, "Okta event could not be applied");
        let text = storable_text(why, TEXT_MAX_CHARS);
        let held = self
            .events
            .finish_okta_event(&event.uuid, &self.owner, event_state::FAILED, &text, now())
            .await;
        if !matches!(held, Ok(true)) {
            return "released";
        }
        let message = format!(
            "Okta event {} ({}) could not be applied: {why}",
            event.uuid, event.event_type
        );
        let entry = NewErrorLogEntry::new(0, "efs-iam:okta-event-failed", &message, None);
        if let Err(e) = self.error_log.record_error(&entry).await {
            tracing::warn!(error = %e, "could not write a failed Okta event to the error log");
        }
        event_state::FAILED
    }
}

/// What an event means: the change it asks for, or why efs-iam does not act on it.
fn meaning(
    event_type: &str,
    payload: &Value,
    groups: &HashMap<String, Vec<i32>>,
) -> Result<Meaning, String> {
    let targets = payload["target"].as_array().cloned().unwrap_or_default();
    let target = |kind: &str| {
        targets
            .iter()
            .find(|t| t["type"].as_str() == Some(kind))
            .and_then(|t| t["id"].as_str())
            .map(str::to_owned)
    };
    let user = || -> Result<OktaUserId, String> {
        let id = target("User").ok_or("the event names no User target")?;
        OktaUserId::parse(&id).map_err(|e| format!("the event's user id {id:?}: {e}"))
    };
    let per_user = |change| -> Result<Meaning, String> {
        Ok(Meaning::Change {
            user: user()?,
            subject: "user".into(),
            change,
        })
    };
    match event_type {
        "user.lifecycle.deactivate"
        | "user.lifecycle.suspend"
        | "user.lifecycle.delete.initiated"
        | "user.lifecycle.delete.completed" => per_user(ReferenceChange::Deprovision),
        "user.lifecycle.reactivate" | "user.lifecycle.unsuspend" | "user.lifecycle.activate" => {
            per_user(ReferenceChange::Reactivate)
        }
        "user.account.update_profile" => per_user(ReferenceChange::FlagDataChanges),
        "group.user_membership.remove" | "group.user_membership.add" => {
            let group = target("UserGroup").ok_or("the event names no UserGroup target")?;
            let Some(portals) = groups.get(&group) else {
                return Ok(Meaning::Ignore(format!(
                    "group {group} is no portal's okta_group_id"
                )));
            };
            let change = if event_type.ends_with(".remove") {
                ReferenceChange::LeftPortals(portals.clone())
            } else {
                ReferenceChange::JoinedPortals(portals.clone())
            };
            Ok(Meaning::Change {
                user: user()?,
                subject: group,
                change,
            })
        }
        other => Ok(Meaning::Ignore(format!(
            "efs-iam does not act on {other} events"
        ))),
    }
}
