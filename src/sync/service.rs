//! One instance's sync, as the HTTP layer calls it: the engine, the workers (their
//! registry: loops, triggers, shutdown), job, run and event submission, and the status
//! report. Built at start-up whether or not Okta is configured, so `/sync/status`
//! always answers; without Okta, everything that needs it reports
//! [`SyncError::OktaNotConfigured`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::reconcile::ReconcileReport;
use super::status::{ProbeResult, ReconciliationStatus, SyncStatusReport};
use super::workers::adoptions::AdoptionWorker;
use super::workers::error_log_purges::ErrorLogPurgeWorker;
use super::workers::jobs::JobWorker;
use super::workers::okta_events::OktaEventWorker;
use super::workers::reconcile_runs::ReconcileWorker;
use super::workers::unassignments::UnassignmentWorker;
use super::workers::{Triggered, Worker, WorkerExit, WorkerHealthSnapshot, WorkerRegistry};
use super::{SyncEngine, SyncError, SyncSettings, SyncStorage};
use crate::domain::{OktaUserId, PortalId};
use crate::okta::OktaClient;
use crate::storage::{
    now, AdoptionStore, EventWatermark, NewOktaEvent, NewReconcileRun, NewSyncJob, NewSyncJobItem,
    NewUnassignment, OktaEventStore, OktaEventUpkeep, PortalSettingsStore, QueueStats,
    ReconcileRunStore, RequeueOutcome, StorageError, SyncJobStore, UnassignmentCounts,
    UnassignmentQueueStore, FUTURE_SKEW,
};

/// How long a reachability probe's answer is reused (monitoring may poll the status
/// often; each probe is an Okta call from the org's rate limit).
const PROBE_TTL: Duration = Duration::from_secs(30);

/// A batch job as submitted.
pub struct SubmittedJob {
    pub id: String,
    pub total: usize,
}

pub struct SyncService {
    pub settings: SyncSettings,
    pub instance_id: String,
    queue: Arc<dyn UnassignmentQueueStore>,
    jobs_store: Arc<dyn SyncJobStore>,
    runs: Arc<dyn ReconcileRunStore>,
    events_store: Arc<dyn OktaEventStore>,
    event_upkeep: Arc<dyn OktaEventUpkeep>,
    adoptions: Arc<dyn AdoptionStore>,
    portal_settings: Arc<dyn PortalSettingsStore>,
    okta: Option<OktaClient>,
    engine: Option<Arc<SyncEngine>>,
    /// Kept for the missing groups it has seen (`/sync/status`) and for tests.
    unassignments: Option<Arc<UnassignmentWorker>>,
    /// Kept for tests that drive it.
    jobs: Option<Arc<JobWorker>>,
    workers: WorkerRegistry,
    probe: tokio::sync::Mutex<Option<(Instant, ProbeResult)>>,
    /// The last probe's result, readable while the next probe runs.
    last_probe: std::sync::Mutex<Option<(Instant, ProbeResult)>>,
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
        let mut workers = WorkerRegistry::new(
            settings.worker,
            okta.is_some(),
            settings.poll_interval,
            cancel,
        );
        workers.register(unassignments.clone());
        workers.register(jobs.clone());
        workers.register(reconciles);
        workers.register(Some(okta_events));
        workers.register(Some(Arc::new(ErrorLogPurgeWorker::new(
            &store,
            settings.clone(),
            instance_id.clone(),
            workers.stop_token(),
        ))));
        workers.register(okta.clone().map(|client| {
            Arc::new(AdoptionWorker::new(
                &store,
                client,
                settings.clone(),
                instance_id.clone(),
                workers.stop_token(),
            ))
        }));
        Self {
            settings,
            instance_id,
            queue: store.clone(),
            jobs_store: store.clone(),
            runs: store.clone(),
            portal_settings: store.clone(),
            adoptions: store.clone(),
            events_store: store.clone(),
            event_upkeep: store,
            okta,
            engine,
            unassignments,
            jobs,
            workers,
            probe: tokio::sync::Mutex::new(None),
            last_probe: std::sync::Mutex::new(None),
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

    /// The workers of this instance.
    pub fn workers(&self) -> &WorkerRegistry {
        &self.workers
    }

    /// A worker's recent history, by its name (`UnassignmentWorker::NAME`, …).
    pub fn health(&self, worker: &str) -> WorkerHealthSnapshot {
        self.workers.health(worker)
    }

    /// Whether the background loops run in this instance.
    pub fn workers_enabled(&self) -> bool {
        self.workers.enabled()
    }

    /// Starts the background loops (once).
    pub fn start_workers(&self) {
        self.workers.start();
    }

    /// A cancellation that stops the workers from taking new work (fired first at
    /// shutdown, while requests finish).
    pub fn stop_token(&self) -> CancellationToken {
        self.workers.stop_token()
    }

    /// Stops the workers within `grace`; how each loop ended.
    pub async fn shutdown(&self, grace: Duration) -> Vec<(&'static str, WorkerExit)> {
        self.workers.shutdown(grace).await
    }

    /// Has the worker named `worker` look for work now (see [`WorkerRegistry::trigger`]).
    pub fn trigger(&self, worker: &str) -> Result<Triggered, SyncError> {
        self.workers.trigger(worker)
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
        self.workers.wake(JobWorker::NAME);
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
        self.trigger(ReconcileWorker::NAME)?;
        tracing::info!(run = %id, portal = portal.get(), dry_run, "reconciliation queued");
        Ok(id)
    }

    /// Stores an Okta Event Hook delivery's events (an event stored before is skipped)
    /// and triggers their worker; how many were new. An event `published` more than
    /// [`FUTURE_SKEW`] ahead of now is stored as published now: a clock that far off is
    /// wrong, and believing it would make the event newer than every genuine later one
    /// about its user (its payload keeps the time Okta sent). Clamped rather than
    /// refused: Okta retries a refused delivery, and the delivery's other events are
    /// genuine.
    pub async fn accept_okta_events(
        &self,
        mut events: Vec<NewOktaEvent>,
    ) -> Result<u64, StorageError> {
        let received = now();
        for e in events
            .iter_mut()
            .filter(|e| e.published > received + FUTURE_SKEW)
        {
            tracing::warn!(event = %e.uuid, published = %e.published, "Okta event published in the future; stored as published now");
            metrics::counter!("efs_iam_okta_events_future_dated_total").increment(1);
            e.published = received;
        }
        let stored = self
            .events_store
            .store_okta_events(&events, received)
            .await?;
        metrics::counter!("efs_iam_okta_event_deliveries_total").increment(1);
        metrics::counter!("efs_iam_okta_events_received_total", "new" => "true").increment(stored);
        metrics::counter!("efs_iam_okta_events_received_total", "new" => "false")
            .increment(events.len() as u64 - stored);
        if let Err(e) = self.trigger(OktaEventWorker::NAME) {
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
        self.workers.wake(UnassignmentWorker::NAME);
        Ok((enqueued, self.queue.unassignment_counts(portal).await?))
    }

    /// Forgets which events about an Okta user were applied last (an `iam:admin` act,
    /// audited with `by`): the user's next event applies whatever its `published`. The
    /// way out when a wrong watermark holds genuine events back. The watermarks cleared.
    pub async fn clear_event_watermarks(
        &self,
        user: &OktaUserId,
        by: &str,
    ) -> Result<Vec<EventWatermark>, StorageError> {
        let cleared = self.event_upkeep.clear_okta_event_watermarks(user).await?;
        tracing::info!(target: "audit", sub = %by, okta_user_id = %user, cleared = cleared.len(), "Okta event watermarks cleared");
        Ok(cleared)
    }

    /// Stores a bulk adoption run asked for by `requested_by` (an `iam:admin` caller's
    /// `sub`) and wakes its worker; the run's id.
    pub async fn submit_adoption(
        &self,
        dry_run: bool,
        requested_by: &str,
    ) -> Result<String, SyncError> {
        self.engine()?;
        let id = uuid::Uuid::new_v4().hyphenated().to_string();
        self.adoptions
            .create_adoption_run(&id, dry_run, requested_by, now())
            .await?;
        self.workers.wake(AdoptionWorker::NAME);
        tracing::info!(target: "audit", sub = %requested_by, run = %id, dry_run, "bulk adoption of the referenced Okta users asked for");
        Ok(id)
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
            self.workers.wake(UnassignmentWorker::NAME);
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
        let triggered = self.trigger(UnassignmentWorker::NAME)?;
        Ok((triggered, self.queue.unassignment_queue_stats(now()).await?))
    }

    // --- the status ---

    /// Whether Okta answers, and accepts efs-iam's credentials, by a lookup of a user
    /// that does not exist (404 is an answer; with a service app, this fetches an
    /// access token first). Cached for 30 s.
    pub async fn probe_okta(&self) -> Option<ProbeResult> {
        let okta = self.okta.as_ref()?;
        let mut cached = self.probe.lock().await;
        if let Some((at, result)) = cached.as_ref() {
            if at.elapsed() < PROBE_TTL {
                return Some(result.clone());
            }
        }
        let started = Instant::now();
        let answer = tokio::time::timeout(
            Duration::from_secs(5),
            okta.get_user("efsiamreachabilityprobe"),
        )
        .await;
        let (reachable, credentials_accepted, error) = match answer {
            Err(_) => (false, false, Some("no answer within 5 s".to_owned())),
            Ok(Ok(_)) => (true, true, None),
            Ok(Err(e)) if e.is_transient() => (false, false, Some(e.to_string())),
            // Okta answered, refusing the credentials: reachable, and a failure.
            Ok(Err(e @ crate::okta::OktaError::Auth(_))) => (true, false, Some(e.to_string())),
            // Any other answer (a 403 for the lookup, say) still says Okta answered
            // with the credentials in hand.
            Ok(Err(_)) => (true, true, None),
        };
        metrics::gauge!("efs_iam_okta_credentials_ok")
            .set(f64::from(u8::from(credentials_accepted)));
        let result = ProbeResult {
            reachable,
            credentials_accepted,
            checked_at: Utc::now(),
            latency_ms: started.elapsed().as_millis() as u64,
            error,
        };
        *cached = Some((Instant::now(), result.clone()));
        *self.last_probe.lock().unwrap() = Some((Instant::now(), result.clone()));
        Some(result)
    }

    /// The last probe's result without waiting for Okta (`None` before the first), and
    /// a new probe started in the background when it is older than 30 s: readiness
    /// must answer within its own timeout whatever Okta does.
    pub fn okta_probe_now(self: &Arc<Self>) -> Option<ProbeResult> {
        self.okta.as_ref()?;
        let (last, stale) = match self.last_probe.lock().unwrap().as_ref() {
            Some((at, result)) => (Some(result.clone()), at.elapsed() >= PROBE_TTL),
            None => (None, true),
        };
        // A probe already running makes this one wait for it and return its result.
        if stale {
            let this = self.clone();
            tokio::spawn(async move { this.probe_okta().await });
        }
        last
    }

    pub async fn status(&self) -> Result<SyncStatusReport, StorageError> {
        let queue = self.queue.unassignment_queue_stats(now()).await?;
        let jobs = self.jobs_store.sync_job_stats(now()).await?;
        let okta = match &self.okta {
            None => None,
            // The probe first: what it learns (a refusal, the granted scopes) is in the
            // status read after it.
            Some(client) => {
                let probe = self.probe_okta().await;
                Some((client.status(), probe))
            }
        };
        Ok(SyncStatusReport {
            queue,
            jobs,
            okta,
            workers_enabled: self.workers_enabled(),
            instance_id: self.instance_id.clone(),
            workers: self
                .workers
                .statuses()
                .into_iter()
                .map(|(_, key, health)| (key, health))
                .collect(),
            okta_events: self.events_store.okta_event_stats().await?,
            reconciliation: self.reconciliation_status().await?,
            missing_groups: self
                .unassignments
                .as_ref()
                .map(|w| w.missing_groups())
                .unwrap_or_default(),
        })
    }

    async fn reconciliation_status(&self) -> Result<ReconciliationStatus, StorageError> {
        let linked = self.portal_settings.linked_portal_ids().await?;
        let mut status = ReconciliationStatus {
            interval: self.settings.reconcile_interval,
            linked_portals: linked.len(),
            ..Default::default()
        };
        for run in self.runs.latest_reconcile_runs(&linked, true).await? {
            match run.state.as_str() {
                "failed" if status.failed.len() < 100 => status.failed.push(run),
                "succeeded" => {
                    let Some(report) = run
                        .report
                        .as_deref()
                        .and_then(|r| serde_json::from_str::<ReconcileReport>(r).ok())
                    else {
                        continue;
                    };
                    let c = &report.counts;
                    if c.missing_members + c.extra_members + c.stale_references > 0 {
                        status.portals_with_drift += 1;
                        if status.drift.len() < 100 {
                            status.drift.push((run, report));
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(status)
    }
}
