//! One instance's sync machinery and what the HTTP layer calls: the engine, the
//! workers (`workers.rs`: loops, triggers, shutdown), job, run and event submission,
//! and the status (`status.rs`). Built at start-up whether or not Okta is configured,
//! so `/sync/status` always answers; without Okta, everything that needs it reports
//! [`SyncError::OktaNotConfigured`].

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::jobs::JobWorker;
use super::okta_events::OktaEventWorker;
use super::reconcile_runs::ReconcileWorker;
use super::runtime::Workers;
use super::status::ProbeResult;
use super::unassignments::UnassignmentWorker;
use super::workers::{Loop, Triggered, WorkerKind};
use super::{SyncEngine, SyncError, SyncSettings, SyncStorage};
use crate::domain::PortalId;
use crate::okta::OktaClient;
use crate::storage::{
    now, NewOktaEvent, NewReconcileRun, NewSyncJob, NewSyncJobItem, NewUnassignment,
    OktaEventStore, PortalSettingsStore, QueueStats, ReconcileRunStore, RequeueOutcome,
    StorageError, SyncJobStore, UnassignmentCounts, UnassignmentQueueStore,
};

/// A batch job as submitted.
pub struct SubmittedJob {
    pub id: String,
    pub total: usize,
}

pub struct SyncService {
    pub settings: SyncSettings,
    pub instance_id: String,
    pub(super) queue: Arc<dyn UnassignmentQueueStore>,
    pub(super) jobs_store: Arc<dyn SyncJobStore>,
    pub(super) runs: Arc<dyn ReconcileRunStore>,
    pub(super) events_store: Arc<dyn OktaEventStore>,
    pub(super) portal_settings: Arc<dyn PortalSettingsStore>,
    pub(super) okta: Option<OktaClient>,
    pub(super) engine: Option<Arc<SyncEngine>>,
    pub(super) unassignments: Option<Arc<UnassignmentWorker>>,
    pub(super) jobs: Option<Arc<JobWorker>>,
    pub(super) reconciles: Option<Arc<ReconcileWorker>>,
    pub(super) okta_events: Arc<OktaEventWorker>,
    pub(super) loops: [Loop; 4],
    pub(super) cancel: CancellationToken,
    pub(super) probe: tokio::sync::Mutex<Option<(Instant, ProbeResult)>>,
    /// The loops, once started.
    pub(super) workers: Mutex<Option<Workers>>,
    /// Background drains started by triggers.
    pub(super) drains: TaskTracker,
}

impl SyncService {
    pub fn new<S: SyncStorage>(
        store: Arc<S>,
        okta: Option<OktaClient>,
        settings: SyncSettings,
    ) -> Self {
        let instance_id = settings.resolve_instance_id();
        let cancel = CancellationToken::new();
        let engine = okta.clone().map(|client| {
            Arc::new(SyncEngine::new(
                &store,
                client,
                &settings,
                instance_id.clone(),
            ))
        });
        let unassignments = okta.clone().map(|client| {
            Arc::new(UnassignmentWorker::new(
                &store,
                client,
                settings.clone(),
                instance_id.clone(),
                cancel.clone(),
            ))
        });
        let jobs = engine.clone().map(|engine| {
            Arc::new(JobWorker::new(
                engine,
                store.clone(),
                settings.clone(),
                instance_id.clone(),
                cancel.clone(),
            ))
        });
        let reconciles = engine.clone().map(|engine| {
            Arc::new(ReconcileWorker::new(
                &store,
                engine,
                settings.clone(),
                instance_id.clone(),
                cancel.clone(),
            ))
        });
        let okta_events = Arc::new(OktaEventWorker::new(
            &store,
            settings.clone(),
            instance_id.clone(),
            cancel.clone(),
        ));
        Self {
            settings,
            instance_id,
            okta_events,
            queue: store.clone(),
            jobs_store: store.clone(),
            runs: store.clone(),
            portal_settings: store.clone(),
            events_store: store,
            okta,
            engine,
            unassignments,
            jobs,
            reconciles,
            loops: Default::default(),
            cancel,
            probe: tokio::sync::Mutex::new(None),
            workers: Mutex::new(None),
            drains: TaskTracker::new(),
        }
    }

    pub fn okta(&self) -> Option<&OktaClient> {
        self.okta.as_ref()
    }

    pub fn engine(&self) -> Result<&Arc<SyncEngine>, SyncError> {
        self.engine.as_ref().ok_or(SyncError::OktaNotConfigured)
    }

    pub fn unassignment_worker(&self) -> Result<&Arc<UnassignmentWorker>, SyncError> {
        self.unassignments
            .as_ref()
            .ok_or(SyncError::OktaNotConfigured)
    }

    pub fn job_worker(&self) -> Result<&Arc<JobWorker>, SyncError> {
        self.jobs.as_ref().ok_or(SyncError::OktaNotConfigured)
    }

    pub fn reconcile_worker(&self) -> Result<&Arc<ReconcileWorker>, SyncError> {
        self.reconciles.as_ref().ok_or(SyncError::OktaNotConfigured)
    }

    pub fn okta_event_worker(&self) -> &Arc<OktaEventWorker> {
        &self.okta_events
    }

    // --- what the HTTP layer calls ---

    /// Stores a batch job (every user would fail the same way on a portal without
    /// group, so that is refused now) and wakes the job worker.
    pub async fn submit_sync_job(
        &self,
        portal: PortalId,
        items: Vec<NewSyncJobItem>,
    ) -> Result<SubmittedJob, SyncError> {
        self.engine()?.portal_group(portal).await?;
        let job = NewSyncJob {
            id: uuid::Uuid::new_v4().hyphenated().to_string(),
            portal,
            items,
        };
        self.jobs_store.create_sync_job(&job, now()).await?;
        self.wake(WorkerKind::Jobs);
        tracing::info!(job = %job.id, portal = portal.get(), users = job.items.len(), "sync job queued");
        Ok(SubmittedJob {
            total: job.items.len(),
            id: job.id,
        })
    }

    /// Stores a reconciliation of the portal (refused now when the portal has no
    /// group) and triggers the reconciliation worker.
    pub async fn submit_reconcile_run(
        &self,
        portal: PortalId,
        dry_run: bool,
    ) -> Result<String, SyncError> {
        self.engine()?.portal_group(portal).await?;
        let id = uuid::Uuid::new_v4().hyphenated().to_string();
        let run = NewReconcileRun {
            id: id.clone(),
            portal,
            dry_run,
            kind: "manual",
        };
        self.runs.create_reconcile_run(&run, now()).await?;
        self.trigger(WorkerKind::Reconciliations)?;
        tracing::info!(run = %id, portal = portal.get(), dry_run, "reconciliation queued");
        Ok(id)
    }

    /// Stores an Okta Event Hook delivery's events (an event stored before is skipped)
    /// and triggers their worker; how many were new.
    pub async fn accept_okta_events(&self, events: &[NewOktaEvent]) -> Result<u64, StorageError> {
        let stored = self.events_store.store_okta_events(events, now()).await?;
        metrics::counter!("efs_iam_okta_event_deliveries_total").increment(1);
        metrics::counter!("efs_iam_okta_events_received_total", "new" => "true").increment(stored);
        metrics::counter!("efs_iam_okta_events_received_total", "new" => "false")
            .increment(events.len() as u64 - stored);
        if let Err(e) = self.trigger(WorkerKind::OktaEvents) {
            tracing::warn!(error = %e, "stored Okta events, but no worker could be triggered");
        }
        Ok(stored)
    }

    /// Queues portal users for removal from the portal's group (all or nothing) and
    /// wakes the unassignment worker; the portal's queue counts afterwards.
    pub async fn enqueue_unassignments(
        &self,
        portal: PortalId,
        users: &[NewUnassignment],
    ) -> Result<(u64, UnassignmentCounts), StorageError> {
        let enqueued = self.queue.enqueue_unassignments(portal, users).await?;
        tracing::info!(portal = portal.get(), enqueued, "unassignments queued");
        self.wake(WorkerKind::Unassignments);
        Ok((enqueued, self.queue.unassignment_counts(portal).await?))
    }

    /// Makes dead letters pending again and wakes the worker.
    pub async fn requeue_unassignments(
        &self,
        portal: PortalId,
        ids: Option<&[i32]>,
    ) -> Result<RequeueOutcome, StorageError> {
        let outcome = match ids {
            Some([]) => RequeueOutcome::default(),
            ids => self.queue.requeue_unassignments(portal, ids).await?,
        };
        if outcome.requeued > 0 {
            self.wake(WorkerKind::Unassignments);
        }
        tracing::info!(
            portal = portal.get(),
            requeued = outcome.requeued,
            "dead letters requeued"
        );
        Ok(outcome)
    }

    /// Triggers the unassignment worker (see [`Self::trigger`]); the queue now.
    pub async fn run_unassignments(&self) -> Result<(Triggered, QueueStats), SyncError> {
        let triggered = self.trigger(WorkerKind::Unassignments)?;
        Ok((triggered, self.queue.unassignment_queue_stats(now()).await?))
    }
}
