//! One instance's sync machinery: the engine, the two workers, their wake-up signals
//! and health, and a cached Okta reachability probe. Built at start-up whether or not
//! Okta is configured, so `/sync/status` always answers; without Okta, everything that
//! needs it reports [`SyncError::OktaNotConfigured`].

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;

use super::{SyncEngine, SyncError, SyncSettings};
use crate::okta::OktaClient;
use crate::storage::Store;
use crate::workers::{run_loop, JobWorker, LoopConfig, UnassignmentWorker, WorkerHealth, Workers};

/// How long a reachability probe's answer is reused (monitoring may poll the status
/// often; each probe is an Okta call from the org's rate limit).
const PROBE_TTL: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProbeResult {
    /// Okta answered (any answer but a 5xx, timeout or connection failure counts).
    pub reachable: bool,
    pub checked_at: DateTime<Utc>,
    pub latency_ms: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub struct SyncService {
    pub settings: SyncSettings,
    pub instance_id: String,
    store: Arc<dyn Store>,
    okta: Option<OktaClient>,
    engine: Option<Arc<SyncEngine>>,
    unassignments: Option<Arc<UnassignmentWorker>>,
    jobs: Option<Arc<JobWorker>>,
    pub wake_unassignments: Arc<Notify>,
    pub wake_jobs: Arc<Notify>,
    pub unassignment_health: Arc<WorkerHealth>,
    pub job_health: Arc<WorkerHealth>,
    cancel: CancellationToken,
    probe: tokio::sync::Mutex<Option<(Instant, ProbeResult)>>,
    workers_spawned: Mutex<bool>,
}

impl SyncService {
    pub fn new(store: Arc<dyn Store>, okta: Option<OktaClient>, settings: SyncSettings) -> Self {
        let instance_id = settings.resolve_instance_id();
        let cancel = CancellationToken::new();
        let engine = okta.clone().map(|client| {
            Arc::new(SyncEngine::new(
                store.clone(),
                client,
                &settings,
                instance_id.clone(),
            ))
        });
        let unassignments = okta.clone().map(|client| {
            Arc::new(UnassignmentWorker::new(
                store.clone(),
                client,
                settings.clone(),
                instance_id.clone(),
                cancel.clone(),
            ))
        });
        let jobs = engine.clone().map(|engine| {
            Arc::new(JobWorker::new(
                engine,
                settings.clone(),
                instance_id.clone(),
                cancel.clone(),
            ))
        });
        Self {
            settings,
            instance_id,
            store,
            okta,
            engine,
            unassignments,
            jobs,
            wake_unassignments: Arc::new(Notify::new()),
            wake_jobs: Arc::new(Notify::new()),
            unassignment_health: Arc::new(WorkerHealth::default()),
            job_health: Arc::new(WorkerHealth::default()),
            cancel,
            probe: tokio::sync::Mutex::new(None),
            workers_spawned: Mutex::new(false),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
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

    /// Whether the background loops run in this instance.
    pub fn workers_enabled(&self) -> bool {
        self.settings.worker && self.okta.is_some()
    }

    /// Starts the background loops (once); an empty set when they are switched off or
    /// Okta is not configured.
    pub fn spawn_workers(&self) -> Workers {
        let mut workers = Workers::new(self.cancel.clone());
        let mut spawned = self.workers_spawned.lock().unwrap();
        if *spawned {
            return workers;
        }
        if !self.settings.worker {
            tracing::info!("sync workers switched off (EFS_IAM_SYNC_WORKER=false)");
            return workers;
        }
        let (Some(unassignments), Some(jobs)) = (self.unassignments.clone(), self.jobs.clone())
        else {
            tracing::info!("sync workers not started: Okta is not configured");
            return workers;
        };
        *spawned = true;
        let config = LoopConfig {
            poll_interval: self.settings.poll_interval,
            max_error_backoff: Duration::from_secs(60),
        };
        workers.spawn(
            "unassignments",
            run_loop(
                "unassignments",
                move || {
                    let w = unassignments.clone();
                    async move { w.run_once().await }
                },
                config.clone(),
                self.wake_unassignments.clone(),
                self.unassignment_health.clone(),
                self.cancel.clone(),
            ),
        );
        workers.spawn(
            "sync-jobs",
            run_loop(
                "sync-jobs",
                move || {
                    let w = jobs.clone();
                    async move { w.run_once().await }
                },
                config,
                self.wake_jobs.clone(),
                self.job_health.clone(),
                self.cancel.clone(),
            ),
        );
        tracing::info!(instance = %self.instance_id, "sync workers started");
        workers
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
}
