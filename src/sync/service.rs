//! One instance's sync machinery and what the HTTP layer calls: the engine, the
//! workers (their loops, wake-up signals, health and shutdown), job and run
//! submission, and a cached Okta reachability probe. Built at start-up whether or not
//! Okta is configured, so `/sync/status` always answers; without Okta, everything that
//! needs it reports [`SyncError::OktaNotConfigured`].
//!
//! HTTP requests never do the workers' work: a trigger wakes this instance's loop of
//! that worker, or, where the loops are switched off (`EFS_IAM_SYNC_WORKER=false`),
//! starts one background drain in this instance (one per worker at a time), and
//! answers at once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use utoipa::ToSchema;

use super::jobs::JobWorker;
use super::okta_events::OktaEventWorker;
use super::reconcile::ReconcileReport;
use super::reconcile_runs::ReconcileWorker;
use super::runtime::{
    run_loop, LoopConfig, Step, WorkerExit, WorkerHealth, WorkerHealthSnapshot, Workers,
};
use super::unassignments::{MissingGroup, UnassignmentWorker};
use super::{SyncEngine, SyncError, SyncSettings, SyncStorage};
use crate::domain::{PortalId, SettingKey};
use crate::okta::{OktaClient, OktaStatus};
use crate::storage::{
    now, JobStats, NewOktaEvent, NewReconcileRun, NewSyncJob, NewSyncJobItem, NewUnassignment,
    OktaEventStats, OktaEventStore, PortalSettingsStore, QueueStats, ReconcileRun,
    ReconcileRunStore, RequeueOutcome, StorageError, SyncJobStore, UnassignmentCounts,
    UnassignmentQueueStore,
};

/// How long a reachability probe's answer is reused (monitoring may poll the status
/// often; each probe is an Okta call from the org's rate limit).
const PROBE_TTL: Duration = Duration::from_secs(30);

/// Rows a background drain started by a trigger takes at most when no loop runs here.
pub const ON_DEMAND_MAX_ROWS: usize = 100_000;

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProbeResult {
    /// Okta answered (any answer but a 5xx, timeout or connection failure counts).
    pub reachable: bool,
    pub checked_at: DateTime<Utc>,
    pub latency_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The background workers of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerKind {
    /// Drains the unassignment queue.
    Unassignments,
    /// Runs batch sync jobs.
    Jobs,
    /// Runs reconciliations.
    Reconciliations,
    /// Applies Okta Event Hook deliveries (needs no Okta credentials: it only reads
    /// what Okta sent and changes references).
    OktaEvents,
}

impl WorkerKind {
    pub const ALL: [WorkerKind; 4] = [
        Self::Unassignments,
        Self::Jobs,
        Self::Reconciliations,
        Self::OktaEvents,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Unassignments => "unassignments",
            Self::Jobs => "sync-jobs",
            Self::Reconciliations => "reconciliations",
            Self::OktaEvents => "okta-events",
        }
    }
}

/// What a trigger did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Triggered {
    /// This instance's worker loop was woken.
    Woken,
    /// No loop runs here: a background drain was started in this instance.
    Started,
    /// No loop runs here and a background drain is already going; it takes the new
    /// work too.
    AlreadyRunning,
}

/// One worker's loop plumbing.
#[derive(Default)]
struct Loop {
    wake: Arc<Notify>,
    health: Arc<WorkerHealth>,
    /// A background drain started by a trigger is going.
    draining: Arc<AtomicBool>,
    /// A trigger came while a drain was going: it passes once more before it ends, so
    /// work stored just after its last claim is not left waiting.
    again: Arc<AtomicBool>,
}

/// `/sync/status` in one piece.
pub struct SyncStatusReport {
    pub queue: QueueStats,
    pub jobs: JobStats,
    /// `None` when Okta is not configured.
    pub okta: Option<(OktaStatus, Option<ProbeResult>)>,
    pub workers_enabled: bool,
    pub instance_id: String,
    pub unassignment_worker: WorkerHealthSnapshot,
    pub job_worker: WorkerHealthSnapshot,
    pub reconcile_worker: WorkerHealthSnapshot,
    pub okta_event_worker: WorkerHealthSnapshot,
    pub okta_events: OktaEventStats,
    pub reconciliation: ReconciliationStatus,
    /// Portals whose `okta_group_id` names no group Okta has, as this instance last saw.
    pub missing_groups: Vec<MissingGroup>,
}

/// The schedule, and what the latest run of each linked portal found.
#[derive(Debug, Clone, Default)]
pub struct ReconciliationStatus {
    /// `EFS_IAM_RECONCILE_INTERVAL`; zero when the schedule is off.
    pub interval: Duration,
    pub linked_portals: usize,
    /// Latest runs (of linked portals) that found drift, at most 100.
    pub drift: Vec<(ReconcileRun, ReconcileReport)>,
    /// Latest runs that failed, at most 100.
    pub failed: Vec<ReconcileRun>,
    /// How many latest runs found drift (the list above may be cut).
    pub portals_with_drift: usize,
}

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
    portal_settings: Arc<dyn PortalSettingsStore>,
    okta: Option<OktaClient>,
    engine: Option<Arc<SyncEngine>>,
    unassignments: Option<Arc<UnassignmentWorker>>,
    jobs: Option<Arc<JobWorker>>,
    reconciles: Option<Arc<ReconcileWorker>>,
    okta_events: Arc<OktaEventWorker>,
    loops: [Loop; 4],
    cancel: CancellationToken,
    probe: tokio::sync::Mutex<Option<(Instant, ProbeResult)>>,
    /// The loops, once started.
    workers: Mutex<Option<Workers>>,
    /// Background drains started by triggers.
    drains: TaskTracker,
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

    fn plumbing(&self, kind: WorkerKind) -> &Loop {
        &self.loops[kind as usize]
    }

    /// A worker's recent history.
    pub fn health(&self, kind: WorkerKind) -> WorkerHealthSnapshot {
        self.plumbing(kind).health.snapshot()
    }

    /// Whether the background loops run in this instance.
    pub fn workers_enabled(&self) -> bool {
        self.settings.worker && self.okta.is_some()
    }

    /// Starts the background loops (once); nothing when they are switched off or Okta
    /// is not configured.
    pub fn start_workers(&self) {
        let mut slot = self.workers.lock().unwrap();
        if slot.is_some() {
            return;
        }
        let mut workers = Workers::new(self.cancel.clone());
        if self.settings.worker {
            let e = self.okta_events.clone();
            self.spawn_loop(&mut workers, WorkerKind::OktaEvents, move || {
                let w = e.clone();
                async move { w.run_once().await }
            });
        }
        if !self.settings.worker {
            tracing::info!("sync workers switched off (EFS_IAM_SYNC_WORKER=false)");
        } else if let (Some(u), Some(j), Some(r)) = (
            self.unassignments.clone(),
            self.jobs.clone(),
            self.reconciles.clone(),
        ) {
            self.spawn_loop(&mut workers, WorkerKind::Unassignments, move || {
                let w = u.clone();
                async move { w.run_once().await }
            });
            self.spawn_loop(&mut workers, WorkerKind::Jobs, move || {
                let w = j.clone();
                async move { w.run_once().await }
            });
            self.spawn_loop(&mut workers, WorkerKind::Reconciliations, move || {
                let w = r.clone();
                async move { w.run_once().await }
            });
            tracing::info!(instance = %self.instance_id, "sync workers started");
        } else {
            tracing::info!("sync workers not started: Okta is not configured");
        }
        metrics::gauge!("efs_iam_worker_enabled").set(if workers.is_empty() { 0.0 } else { 1.0 });
        *slot = Some(workers);
    }

    fn spawn_loop<S, F, Fut>(&self, workers: &mut Workers, kind: WorkerKind, step: F)
    where
        S: Step + Send + 'static,
        F: FnMut() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<S, StorageError>> + Send + 'static,
    {
        let config = LoopConfig {
            poll_interval: self.settings.poll_interval,
            max_error_backoff: Duration::from_secs(60),
        };
        let plumbing = self.plumbing(kind);
        workers.spawn(
            kind.name(),
            run_loop(
                kind.name(),
                step,
                config,
                plumbing.wake.clone(),
                plumbing.health.clone(),
                self.cancel.clone(),
            ),
        );
    }

    /// Stops the loops and background drains: no new work is taken, a step in progress
    /// gets `grace` to finish (what it had claimed but not started is handed back).
    /// Reports how each loop ended.
    pub async fn shutdown(&self, grace: Duration) -> Vec<(&'static str, WorkerExit)> {
        self.cancel.cancel();
        self.drains.close();
        let workers = self.workers.lock().unwrap().take();
        let deadline = tokio::time::Instant::now() + grace;
        let exits = match workers {
            Some(w) => w.shutdown(grace).await,
            None => Vec::new(),
        };
        if tokio::time::timeout_at(deadline, self.drains.wait())
            .await
            .is_err()
        {
            tracing::warn!("a background drain was still busy at the end of the grace period; its leases expire and other instances take the work over");
        }
        exits
    }

    /// A cancellation that stops the workers from taking new work (fired first at
    /// shutdown, while requests finish).
    pub fn stop_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Has the worker of `kind` look for work now: wakes this instance's loop, or
    /// where no loop runs here, starts one background drain. Never waits for the work.
    pub fn trigger(&self, kind: WorkerKind) -> Result<Triggered, SyncError> {
        let plumbing = self.plumbing(kind);
        let needs_okta = kind != WorkerKind::OktaEvents;
        if self.settings.worker && (self.okta.is_some() || !needs_okta) {
            plumbing.wake.notify_one();
            return Ok(Triggered::Woken);
        }
        if needs_okta && self.okta.is_none() {
            return Err(SyncError::OktaNotConfigured);
        }
        if self.cancel.is_cancelled() {
            return Ok(Triggered::AlreadyRunning);
        }
        // Set before looking at `draining`: a drain that is ending either sees it and
        // passes again, or has cleared `draining` already and this starts a new one.
        plumbing.again.store(true, Ordering::SeqCst);
        if plumbing
            .draining
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return Ok(Triggered::AlreadyRunning);
        }
        let again = plumbing.again.clone();
        let draining = plumbing.draining.clone();
        let health = plumbing.health.clone();
        let cancel = self.cancel.clone();
        let (u, j, r, e) = (
            self.unassignments.clone(),
            self.jobs.clone(),
            self.reconciles.clone(),
            self.okta_events.clone(),
        );
        self.drains.spawn(async move {
            let _done = ClearOnDrop(draining.clone());
            loop {
                again.store(false, Ordering::SeqCst);
                let outcome = match kind {
                    WorkerKind::Unassignments => match &u {
                        Some(w) => w.drain(ON_DEMAND_MAX_ROWS).await.map(drop),
                        None => Ok(()),
                    },
                    WorkerKind::Jobs => match &j {
                        Some(w) => drain_steps(&cancel, || w.run_once()).await,
                        None => Ok(()),
                    },
                    WorkerKind::Reconciliations => match &r {
                        Some(w) => drain_steps(&cancel, || w.run_once()).await,
                        None => Ok(()),
                    },
                    WorkerKind::OktaEvents => drain_steps(&cancel, || e.run_once()).await,
                };
                health.record(outcome.as_ref().err().map(|e| e.to_string()));
                if let Err(e) = outcome {
                    tracing::warn!(worker = kind.name(), error = %e, "background drain failed");
                }
                draining.store(false, Ordering::SeqCst);
                let rerun = again.load(Ordering::SeqCst)
                    && !cancel.is_cancelled()
                    && draining
                        .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                        .is_ok();
                if !rerun {
                    break;
                }
            }
        });
        Ok(Triggered::Started)
    }

    /// Whether Okta answers, by a lookup of a user that does not exist (404 is an
    /// answer). Cached for 30 s.
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
        let error = match answer {
            Err(_) => Some("no answer within 5 s".to_owned()),
            Ok(Ok(_)) => None,
            Ok(Err(e)) if e.is_transient() => Some(e.to_string()),
            // Okta answered, if only to refuse: it is reachable.
            Ok(Err(_)) => None,
        };
        let result = ProbeResult {
            reachable: error.is_none(),
            checked_at: Utc::now(),
            latency_ms: started.elapsed().as_millis() as u64,
            error,
        };
        *cached = Some((Instant::now(), result.clone()));
        Some(result)
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

    /// Wakes this instance's loop of `kind`, if it runs (new work for it was stored).
    fn wake(&self, kind: WorkerKind) {
        self.plumbing(kind).wake.notify_one();
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

    pub async fn status(&self) -> Result<SyncStatusReport, StorageError> {
        let queue = self.queue.unassignment_queue_stats(now()).await?;
        let jobs = self.jobs_store.sync_job_stats(now()).await?;
        let okta = match &self.okta {
            None => None,
            Some(client) => Some((client.status(), self.probe_okta().await)),
        };
        Ok(SyncStatusReport {
            queue,
            jobs,
            okta,
            workers_enabled: self.workers_enabled(),
            instance_id: self.instance_id.clone(),
            unassignment_worker: self.health(WorkerKind::Unassignments),
            job_worker: self.health(WorkerKind::Jobs),
            reconcile_worker: self.health(WorkerKind::Reconciliations),
            okta_event_worker: self.health(WorkerKind::OktaEvents),
            okta_events: self.events_store.okta_event_stats().await?,
            reconciliation: self.reconciliation_status().await?,
            missing_groups: self
                .unassignments
                .as_ref()
                .map(|w| w.missing_groups())
                .unwrap_or_default(),
        })
    }
}

impl SyncService {
    async fn reconciliation_status(&self) -> Result<ReconciliationStatus, StorageError> {
        let key = SettingKey::parse(super::GROUP_SETTING).expect("a valid key");
        let linked: Vec<i32> = self
            .portal_settings
            .settings_with_key(&key)
            .await?
            .into_iter()
            .filter(|(_, v)| v.as_deref().is_some_and(|v| !v.trim().is_empty()))
            .map(|(p, _)| p)
            .collect();
        let mut status = ReconciliationStatus {
            interval: self.settings.reconcile_interval,
            linked_portals: linked.len(),
            ..Default::default()
        };
        for run in self.runs.latest_reconcile_runs(&linked).await? {
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

/// Runs a worker's step until it finds nothing more to do (or shutdown).
async fn drain_steps<S, F, Fut>(cancel: &CancellationToken, mut step: F) -> Result<(), StorageError>
where
    S: Step,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<S, StorageError>>,
{
    while !cancel.is_cancelled() {
        let report = step().await?;
        if !report.more_to_do() {
            break;
        }
    }
    Ok(())
}

struct ClearOnDrop(Arc<AtomicBool>);
impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}
