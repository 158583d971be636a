//! Runs bulk adoptions (`POST /api/v1/adoptions`): lists the Okta users EFS's tables
//! already reference (one statement per run, `storage::adoptions`), then checks each
//! with Okta (the user exists, is not deactivated, holds no admin role) and, unless the
//! run is a dry run, brings it under management (`sync::boundary`), with an audit line
//! naming the admin who asked for the run. What is refused is kept with its reason.
//!
//! Runs and items are leased like queue rows, so a run survives a restart (a run
//! killed while listing lists again; an item killed mid-check is checked again, which
//! records nothing twice) and instances share it. Okta is asked at background priority,
//! so an adoption of a large installation never holds up the syncs EFS-Admin waits for.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use super::{work_through, LeasedItems, Step, Worker};
use crate::domain::OktaUserId;
use crate::okta::OktaClient;
use crate::storage::{now, AdoptionStore, ClaimedAdoptionItem, ItemVerdict, StorageError};
use crate::sync::heartbeat::Heartbeat;
use crate::sync::{Boundary, SyncError, SyncSettings, SyncStorage, Verdict};

/// What one step did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct AdoptionStep {
    /// Items a run's collection listed in this step.
    pub collected: u64,
    pub claimed: usize,
    pub adopted: usize,
    pub already_managed: usize,
    pub would_adopt: usize,
    pub refused: usize,
    pub failed: usize,
    pub retrying: usize,
    pub released: usize,
    pub runs_finished: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
    #[serde(skip)]
    #[schema(ignore)]
    pub batch_full: bool,
}

impl Step for AdoptionStep {
    fn more_to_do(&self) -> bool {
        self.blocked.is_none() && (self.collected > 0 || (self.batch_full && self.released == 0))
    }
    fn blocked(&self) -> Option<&str> {
        self.blocked.as_deref()
    }
}

pub(super) enum ItemOutcome {
    Done(ItemVerdict),
    Retrying,
    Released,
    Blocked(String),
}

pub struct AdoptionWorker {
    store: Arc<dyn AdoptionStore>,
    boundary: Boundary,
    settings: SyncSettings,
    owner: String,
    cancel: CancellationToken,
}

impl Worker for AdoptionWorker {
    const NAME: &'static str = "adoptions";
    const STATUS_KEY: &'static str = "adoptions";
    type Step = AdoptionStep;

    async fn step(&self) -> Result<AdoptionStep, StorageError> {
        self.run_once().await
    }
}

impl AdoptionWorker {
    pub fn new<S: SyncStorage>(
        store: &Arc<S>,
        okta: OktaClient,
        settings: SyncSettings,
        owner: String,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            store: store.clone(),
            boundary: Boundary::new(store.clone(), okta),
            settings,
            owner,
            cancel,
        }
    }

    /// One round: list the items of a run waiting for that, check a batch of items,
    /// finish the runs with nothing left to check.
    #[tracing::instrument(name = "adoptions.step", skip(self), err(level = "debug"))]
    pub async fn run_once(&self) -> Result<AdoptionStep, StorageError> {
        let mut step = AdoptionStep::default();
        let lease = chrono::Duration::from_std(self.settings.lease).unwrap_or_default();
        let t = now();
        if let Some(run) = self
            .store
            .claim_adoption_collection(&self.owner, t, t + lease)
            .await?
        {
            if let Some(n) = self
                .store
                .collect_adoption_items(&run.id, &self.owner, now())
                .await?
            {
                tracing::info!(run = %run.id, items = n, dry_run = run.dry_run, "adoption run listed its Okta users");
                step.collected = n.max(1);
            }
        }
        let t = now();
        let items = self
            .store
            .claim_adoption_items(&self.owner, t, t + lease, self.settings.batch_size)
            .await?;
        step.claimed = items.len();
        step.batch_full = items.len() as u32 >= self.settings.batch_size;
        for outcome in work_through(self, items, self.settings.concurrency).await {
            match outcome {
                ItemOutcome::Done(ItemVerdict::Adopted) => step.adopted += 1,
                ItemOutcome::Done(ItemVerdict::AlreadyManaged) => step.already_managed += 1,
                ItemOutcome::Done(ItemVerdict::WouldAdopt) => step.would_adopt += 1,
                ItemOutcome::Done(ItemVerdict::Refused) => step.refused += 1,
                ItemOutcome::Done(ItemVerdict::Failed) => step.failed += 1,
                ItemOutcome::Retrying => step.retrying += 1,
                ItemOutcome::Released => step.released += 1,
                ItemOutcome::Blocked(why) => {
                    step.released += 1;
                    step.blocked.get_or_insert(why);
                }
            }
        }
        for run in self.store.finish_adoption_runs(now()).await? {
            tracing::info!(run = %run, "adoption run finished");
            step.runs_finished += 1;
        }
        Ok(step)
    }

    async fn failed(&self, item: &ClaimedAdoptionItem, e: &SyncError) -> ItemOutcome {
        if matches!(e, SyncError::OktaAuth(_) | SyncError::OktaNotConfigured) {
            return match self.release(item).await {
                ItemOutcome::Released => ItemOutcome::Blocked(e.to_string()),
                other => other,
            };
        }
        let attempts = item.attempts.saturating_add(1);
        if !e.is_transient() || attempts as u32 >= self.settings.max_attempts {
            let why = e.to_string();
            return self
                .finish(item, ItemVerdict::Failed, Some(&why), None)
                .await;
        }
        let next = self.settings.retry_at(attempts as u32);
        match self
            .store
            .retry_adoption_item(item.id, &self.owner, &e.to_string(), next)
            .await
        {
            Ok(true) => ItemOutcome::Retrying,
            _ => ItemOutcome::Released,
        }
    }

    async fn finish(
        &self,
        item: &ClaimedAdoptionItem,
        verdict: ItemVerdict,
        reason: Option<&str>,
        login: Option<&str>,
    ) -> ItemOutcome {
        match self
            .store
            .finish_adoption_item(item.id, &self.owner, verdict, reason, login, now())
            .await
        {
            Ok(true) => ItemOutcome::Done(verdict),
            Ok(false) => ItemOutcome::Released,
            Err(e) => {
                tracing::warn!(item = item.id, error = %e, "could not record an adoption item; its lease will run out");
                ItemOutcome::Released
            }
        }
    }

    async fn release(&self, item: &ClaimedAdoptionItem) -> ItemOutcome {
        if let Err(e) = self
            .store
            .release_adoption_items(&[item.id], &self.owner)
            .await
        {
            tracing::warn!(item = item.id, error = %e, "could not hand an adoption item back; its lease will run out");
        }
        ItemOutcome::Released
    }
}

impl LeasedItems for AdoptionWorker {
    type Item = ClaimedAdoptionItem;
    type Outcome = ItemOutcome;

    fn heartbeat(&self, items: &[ClaimedAdoptionItem]) -> Heartbeat {
        let ids: Vec<i64> = items.iter().map(|i| i.id).collect();
        let (store, owner) = (self.store.clone(), self.owner.clone());
        Heartbeat::start("adoption items", self.settings.lease, move |until| {
            let (store, owner, ids) = (store.clone(), owner.clone(), ids.clone());
            async move { store.renew_adoption_items(&ids, &owner, until).await }
        })
    }

    fn released(&self) -> ItemOutcome {
        ItemOutcome::Released
    }

    async fn process(&self, item: ClaimedAdoptionItem) -> ItemOutcome {
        if self.cancel.is_cancelled() {
            return self.release(&item).await;
        }
        let raw = OktaUserId::from_stored(&item.okta_user_id);
        let Ok(id) = OktaUserId::parse(&raw) else {
            let why = format!("{raw:?} is not an Okta user id");
            return self
                .finish(&item, ItemVerdict::Refused, Some(&why), None)
                .await;
        };
        match crate::okta::in_background(self.boundary.adoption_verdict(&id)).await {
            Ok(Verdict::AlreadyManaged(record)) => {
                let login = record.login.as_deref();
                self.finish(&item, ItemVerdict::AlreadyManaged, None, login)
                    .await
            }
            Ok(Verdict::Refused(why)) => {
                let why = why.to_string();
                self.finish(&item, ItemVerdict::Refused, Some(&why), None)
                    .await
            }
            Ok(Verdict::Adoptable { login }) if item.dry_run => {
                self.finish(&item, ItemVerdict::WouldAdopt, None, Some(&login))
                    .await
            }
            Ok(Verdict::Adoptable { login }) => {
                match self
                    .boundary
                    .record_adopted(&id, &item.requested_by, &login)
                    .await
                {
                    Ok(_) => {
                        self.finish(&item, ItemVerdict::Adopted, None, Some(&login))
                            .await
                    }
                    Err(e) => self.failed(&item, &e).await,
                }
            }
            Err(e) => self.failed(&item, &e).await,
        }
    }
}
