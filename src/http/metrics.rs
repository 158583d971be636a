//! Prometheus metrics at `/metrics`. The `metrics` facade has one global recorder per
//! process, so it is installed once and shared (tests start several apps in one
//! process).
//!
//! Two kinds: events counted where they happen (requests, Okta calls, token store
//! operations, worker outcomes; every label set known in advance is exported at zero
//! from start-up, so alerts on rare events can be tested and dashboards show 0, not "no
//! data"), and state read at each scrape (database pool, readiness, the unassignment
//! queue and batch jobs, Okta's rate-limit buckets and reachability). The catalogue
//! of every metric is [`CATALOGUE`]; `deploy/` holds the alert rules and the dashboard
//! built on them, and a test checks that every name they use is exported.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, Method, StatusCode};
use axum::response::IntoResponse;
use metrics::SharedString;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::state::AppState;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// The exporter's own default upkeep interval.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Metrics {
    handle: Arc<PrometheusHandle>,
}

impl Metrics {
    pub fn install() -> Self {
        let handle = HANDLE.get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                // Every latency is a histogram (summaries cannot be aggregated across
                // instances); the buckets span a cached lookup to an Okta timeout.
                .set_buckets_for_metric(
                    Matcher::Suffix("_duration_seconds".into()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0, 10.0, 30.0,
                    ],
                )
                .expect("static bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another library may have installed a recorder first (only in tests);
            // then our handle renders an empty page rather than failing start-up.
            let _ = metrics::set_global_recorder(recorder);
            export_at_zero();
            handle
        });
        Self {
            handle: Arc::new(handle.clone()),
        }
    }

    /// Histogram samples wait in the recorder until they are folded into their buckets:
    /// by a scrape, or by this upkeep. Without it, an instance nobody scrapes would
    /// keep every request's latency sample in memory.
    pub fn spawn_upkeep(&self) -> tokio::task::JoinHandle<()> {
        let handle = self.handle.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(UPKEEP_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        })
    }
}

/// Counts an answered request and its latency.
pub fn record_request(method: &Method, route: &str, status: StatusCode, took: Duration) {
    {
        let method = static_method(method);
        let route = SharedString::from_owned(route.to_owned());
        metrics::counter!(
            "http_requests_total",
            "method" => method,
            "route" => route.clone(),
            "status" => status.as_u16().to_string()
        )
        .increment(1);
        metrics::histogram!(
            "http_request_duration_seconds",
            "method" => method,
            "route" => route
        )
        .record(took.as_secs_f64());
    }
}

fn static_method(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::PUT => "PUT",
        Method::POST => "POST",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        // Any other method is refused by routing; one label keeps the series bounded
        // whatever method names clients send.
        _ => "other",
    }
}

pub async fn render(State(state): State<AppState>) -> impl IntoResponse {
    let pool = state.database.pool_stats();
    metrics::gauge!("db_pool_connections", "backend" => state.database.backend())
        .set(f64::from(pool.size));
    metrics::gauge!("db_pool_idle_connections", "backend" => state.database.backend())
        .set(f64::from(pool.idle));
    read_state(&state).await;
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        HANDLE
            .get()
            .map(PrometheusHandle::render)
            .unwrap_or_default(),
    )
}

/// Every metric efs-iam exports, with its help text.
pub const CATALOGUE: &[(&str, &str)] = &[
    ("http_requests_total", "API requests answered, by method, route template and status"),
    ("http_request_duration_seconds", "Time to answer an API request, by method and route template"),
    ("efs_iam_http_connections_open", "Client connections open"),
    ("efs_iam_http_connection_limit", "Most client connections open at once (EFS_IAM_MAX_CONNECTIONS, fitted to the open-file limit)"),
    ("efs_iam_http_connections_evicted_total", "Stalled connections closed at the cap to make room for a new one"),
    ("efs_iam_http_write_timeouts_total", "Connections closed because the client took no bytes of an answer within EFS_IAM_WRITE_TIMEOUT"),
    ("db_pool_connections", "Database connections open"),
    ("db_pool_idle_connections", "Database connections idle"),
    ("efs_iam_component_up", "Readiness of a component (database, token_store): 1 up, 0 down"),
    ("efs_iam_token_store_operations_total", "Session token store operations, by op (put, get, delete) and outcome (ok, not_found, refused, error)"),
    ("efs_iam_token_store_duration_seconds", "Time of a session token store operation, by op"),
    ("efs_iam_okta_configured", "1 when an Okta org is configured in this instance"),
    ("efs_iam_okta_up", "1 when Okta answered the last reachability probe (cached 30 s)"),
    ("efs_iam_okta_credentials_ok", "1 when Okta accepted efs-iam's credentials in the last probe"),
    ("efs_iam_okta_scopes_missing", "OAuth scopes efs-iam's features need that the service app was not granted (or not asked for)"),
    ("efs_iam_okta_requests_total", "Requests sent to Okta (each attempt), by rate-limit bucket and outcome"),
    ("efs_iam_okta_request_duration_seconds", "Time of an Okta request, by rate-limit bucket"),
    ("efs_iam_okta_auth_failures_total", "Okta calls that failed because Okta refused efs-iam's credentials"),
    ("efs_iam_okta_rate_limit_limit", "X-Rate-Limit-Limit last seen, by bucket (0 until Okta has answered)"),
    ("efs_iam_okta_rate_limit_remaining", "Org-wide requests left in the bucket's window, by bucket"),
    ("efs_iam_okta_allowance", "Requests this instance may send per window (share x limit), by bucket"),
    ("efs_iam_okta_used_in_window", "Requests this instance sent in the bucket's current window"),
    ("efs_iam_okta_rate_limited_total", "429 answers from Okta, by bucket and kind (rate, concurrency)"),
    ("efs_iam_okta_paced_total", "Okta calls held back to stay within the share, by bucket"),
    ("efs_iam_unassignment_queue_rows", "Unassignment queue rows (all instances), by state: pending, due, in_progress, dead, dead_without_portal"),
    ("efs_iam_unassignment_queue_oldest_pending_age_seconds", "Age of the oldest pending unassignment row (0 when none)"),
    ("efs_iam_unassignments_completed_total", "Unassignment rows Okta confirmed, by result (removed, already_gone)"),
    ("efs_iam_unassignment_failures_total", "Failed unassignment attempts, by reason (okta-group-not-found, other)"),
    ("efs_iam_unassignments_dead_lettered_total", "Unassignment rows that became dead letters"),
    ("efs_iam_portals_missing_okta_group", "Portals whose okta_group_id names no group Okta has, as this instance last saw"),
    ("efs_iam_sync_jobs_running", "Batch sync jobs with users still pending (all instances)"),
    ("efs_iam_sync_job_items", "Batch job users not finished (all instances), by state: pending, in_progress"),
    ("efs_iam_sync_job_items_finished_total", "Batch job users finished by this instance, by result (succeeded, failed)"),
    ("efs_iam_reconcile_runs_finished_total", "Reconciliation runs finished by this instance, by outcome"),
    ("efs_iam_reconcile_drift_total", "Differences found by reconciliations of this instance, by kind (missing_member, extra_member, stale_reference)"),
    ("efs_iam_reconcile_portals_with_drift", "Linked portals whose latest reconciliation found drift (all instances)"),
    ("efs_iam_reconcile_portals_failing", "Linked portals whose latest reconciliation failed (all instances)"),
    ("efs_iam_okta_event_deliveries_total", "Okta Event Hook deliveries stored by this instance"),
    ("efs_iam_okta_event_deliveries_refused_total", "Okta Event Hook requests refused for a missing or wrong secret"),
    ("efs_iam_okta_events_received_total", "Okta events received, by new (true, or false for a redelivery)"),
    ("efs_iam_okta_events_total", "Okta events applied by this instance, by outcome (processed, superseded, ignored, failed, retrying, released)"),
    ("efs_iam_okta_events_pending", "Okta events stored and not applied yet (all instances)"),
    ("efs_iam_okta_events_failed", "Okta events that could not be applied (all instances)"),
    ("efs_iam_okta_events_oldest_pending_age_seconds", "Age of the oldest pending Okta event by its published time (0 when none)"),
    ("efs_iam_okta_events_future_dated_total", "Okta events published more than 5 minutes ahead of their receipt, stored as published at receipt"),
    ("efs_iam_okta_events_purged_total", "Processed, ignored and superseded Okta events purged past EFS_IAM_OKTA_EVENT_RETENTION by this instance"),
    ("efs_iam_lease_renewals_failed_total", "Lease renewals that failed; the worker starts nothing more of that batch (the log line names the work)"),
    ("efs_iam_worker_enabled", "1 when the worker loops run in this instance"),
    ("efs_iam_worker_running", "1 while a worker loop runs, by worker"),
    ("efs_iam_worker_panics_total", "Worker steps that panicked (the loop was restarted), by worker"),
];

/// `http_requests_total` at zero for every operation of the document and every status
/// it documents, so that a route's panel shows 0 before its first request.
pub fn export_routes_at_zero(api: &utoipa::openapi::OpenApi) {
    for (path, item) in &api.paths.paths {
        // Paths are relative to the document's server (/api/v1) unless their own
        // `servers` say otherwise (the health probes).
        let route = match &item.servers {
            Some(_) => path.clone(),
            None => format!("/api/v1{path}"),
        };
        let operations = [
            (Method::GET, &item.get),
            (Method::PUT, &item.put),
            (Method::POST, &item.post),
            (Method::DELETE, &item.delete),
            (Method::PATCH, &item.patch),
        ];
        for (method, op) in operations {
            let Some(op) = op else { continue };
            for status in op.responses.responses.keys() {
                metrics::counter!(
                    "http_requests_total",
                    "method" => static_method(&method),
                    "route" => route.clone(),
                    "status" => status.clone()
                )
                .absolute(0);
            }
        }
    }
}

/// Registers help texts, and every series whose labels are known in advance at zero.
fn export_at_zero() {
    use crate::okta::{Bucket, OKTA_OUTCOMES};
    for (name, help) in CATALOGUE {
        // The exporter keeps the kind of each name from its first use; a description
        // is kind-agnostic in the text format.
        metrics::describe_counter!(*name, *help);
    }
    for op in ["put", "get", "delete"] {
        for outcome in crate::tokens::TOKEN_OUTCOMES {
            metrics::counter!("efs_iam_token_store_operations_total", "op" => op, "outcome" => outcome)
                .absolute(0);
        }
    }
    metrics::counter!("efs_iam_http_connections_evicted_total").absolute(0);
    metrics::counter!("efs_iam_http_write_timeouts_total").absolute(0);
    metrics::counter!("efs_iam_okta_events_future_dated_total").absolute(0);
    metrics::counter!("efs_iam_okta_events_purged_total").absolute(0);
    metrics::counter!("efs_iam_lease_renewals_failed_total").absolute(0);
    metrics::gauge!("efs_iam_okta_configured").set(0.0);
    metrics::gauge!("efs_iam_okta_up").set(0.0);
    metrics::gauge!("efs_iam_okta_credentials_ok").set(0.0);
    metrics::gauge!("efs_iam_okta_scopes_missing").set(0.0);
    metrics::counter!("efs_iam_okta_auth_failures_total").absolute(0);
    for bucket in Bucket::ALL {
        let b = bucket.as_str();
        for outcome in OKTA_OUTCOMES {
            metrics::counter!("efs_iam_okta_requests_total", "bucket" => b, "outcome" => outcome)
                .absolute(0);
        }
        for gauge in [
            "efs_iam_okta_rate_limit_limit",
            "efs_iam_okta_rate_limit_remaining",
            "efs_iam_okta_allowance",
            "efs_iam_okta_used_in_window",
        ] {
            metrics::gauge!(gauge, "bucket" => b).set(0.0);
        }
        for kind in ["rate", "concurrency"] {
            metrics::counter!("efs_iam_okta_rate_limited_total", "bucket" => b, "kind" => kind)
                .absolute(0);
        }
        metrics::counter!("efs_iam_okta_paced_total", "bucket" => b).absolute(0);
    }
    for state in QUEUE_STATES {
        metrics::gauge!("efs_iam_unassignment_queue_rows", "state" => state).set(0.0);
    }
    metrics::gauge!("efs_iam_unassignment_queue_oldest_pending_age_seconds").set(0.0);
    for result in ["removed", "already_gone"] {
        metrics::counter!("efs_iam_unassignments_completed_total", "result" => result).absolute(0);
    }
    for reason in ["okta-group-not-found", "other"] {
        metrics::counter!("efs_iam_unassignment_failures_total", "reason" => reason).absolute(0);
    }
    metrics::counter!("efs_iam_unassignments_dead_lettered_total").absolute(0);
    metrics::gauge!("efs_iam_portals_missing_okta_group").set(0.0);
    metrics::gauge!("efs_iam_sync_jobs_running").set(0.0);
    for state in ["pending", "in_progress"] {
        metrics::gauge!("efs_iam_sync_job_items", "state" => state).set(0.0);
    }
    for result in ["succeeded", "failed"] {
        metrics::counter!("efs_iam_sync_job_items_finished_total", "result" => result).absolute(0);
        metrics::counter!("efs_iam_reconcile_runs_finished_total", "outcome" => result).absolute(0);
    }
    metrics::counter!("efs_iam_okta_event_deliveries_total").absolute(0);
    metrics::counter!("efs_iam_okta_event_deliveries_refused_total").absolute(0);
    for new in ["true", "false"] {
        metrics::counter!("efs_iam_okta_events_received_total", "new" => new).absolute(0);
    }
    for outcome in [
        "processed",
        "superseded",
        "ignored",
        "failed",
        "retrying",
        "released",
    ] {
        metrics::counter!("efs_iam_okta_events_total", "outcome" => outcome).absolute(0);
    }
    for gauge in [
        "efs_iam_okta_events_pending",
        "efs_iam_okta_events_failed",
        "efs_iam_okta_events_oldest_pending_age_seconds",
    ] {
        metrics::gauge!(gauge).set(0.0);
    }
    for kind in ["missing_member", "extra_member", "stale_reference"] {
        metrics::counter!("efs_iam_reconcile_drift_total", "kind" => kind).absolute(0);
    }
    metrics::gauge!("efs_iam_reconcile_portals_with_drift").set(0.0);
    metrics::gauge!("efs_iam_reconcile_portals_failing").set(0.0);
    metrics::gauge!("efs_iam_worker_enabled").set(0.0);
    // Each worker's series are exported at zero when it is registered
    // (`WorkerRegistry::register`).
    for component in ["database", "token_store"] {
        metrics::gauge!("efs_iam_component_up", "component" => component).set(0.0);
    }
    metrics::gauge!("efs_iam_http_connections_open").set(0.0);
}

const QUEUE_STATES: [&str; 5] = [
    "pending",
    "due",
    "in_progress",
    "dead",
    "dead_without_portal",
];

/// The state gauges, read at each scrape. Each read is bounded by the readiness
/// timeout; one that fails or takes too long leaves its gauges as they were (and the
/// database shows as down in `efs_iam_component_up`).
async fn read_state(state: &AppState) {
    let timeout = state.config.ready_timeout;
    let readiness = async {
        let (_, ready) = super::health::readiness(state).await;
        for component in ["database", "token_store"] {
            let up = ready
                .components
                .get(component)
                .is_some_and(|c| c.status != "down");
            metrics::gauge!("efs_iam_component_up", "component" => component).set(if up {
                1.0
            } else {
                0.0
            });
        }
    };
    let queue_and_jobs = async {
        let Ok(Ok(report)) = tokio::time::timeout(timeout, state.sync.status()).await else {
            return;
        };
        let q = &report.queue;
        for (s, v) in QUEUE_STATES.iter().zip([
            q.pending,
            q.due,
            q.in_progress,
            q.dead,
            q.dead_without_portal,
        ]) {
            metrics::gauge!("efs_iam_unassignment_queue_rows", "state" => *s).set(v as f64);
        }
        let age = q
            .oldest_pending_at
            .map(|t| (chrono::Utc::now().naive_utc() - t).num_seconds().max(0))
            .unwrap_or(0);
        metrics::gauge!("efs_iam_unassignment_queue_oldest_pending_age_seconds").set(age as f64);
        metrics::gauge!("efs_iam_sync_jobs_running").set(report.jobs.unfinished_jobs as f64);
        metrics::gauge!("efs_iam_reconcile_portals_with_drift")
            .set(report.reconciliation.portals_with_drift as f64);
        metrics::gauge!("efs_iam_reconcile_portals_failing")
            .set(report.reconciliation.failed.len() as f64);
        let events = &report.okta_events;
        metrics::gauge!("efs_iam_okta_events_pending").set(events.pending as f64);
        metrics::gauge!("efs_iam_okta_events_failed").set(events.failed as f64);
        let age = events
            .oldest_pending_published
            .map(|t| (chrono::Utc::now().naive_utc() - t).num_seconds().max(0))
            .unwrap_or(0);
        metrics::gauge!("efs_iam_okta_events_oldest_pending_age_seconds").set(age as f64);
        metrics::gauge!("efs_iam_sync_job_items", "state" => "pending")
            .set(report.jobs.pending_items as f64);
        metrics::gauge!("efs_iam_sync_job_items", "state" => "in_progress")
            .set(report.jobs.in_progress_items as f64);
        let Some((okta, probe)) = report.okta else {
            metrics::gauge!("efs_iam_okta_configured").set(0.0);
            return;
        };
        metrics::gauge!("efs_iam_okta_configured").set(1.0);
        if let Some(probe) = probe {
            metrics::gauge!("efs_iam_okta_up").set(if probe.reachable { 1.0 } else { 0.0 });
        }
        for b in okta.buckets {
            let bucket = b.bucket.as_str();
            let value = |v: Option<u32>| f64::from(v.unwrap_or(0));
            metrics::gauge!("efs_iam_okta_rate_limit_limit", "bucket" => bucket)
                .set(value(b.limit));
            metrics::gauge!("efs_iam_okta_rate_limit_remaining", "bucket" => bucket)
                .set(value(b.remaining));
            metrics::gauge!("efs_iam_okta_allowance", "bucket" => bucket).set(value(b.allowance));
            metrics::gauge!("efs_iam_okta_used_in_window", "bucket" => bucket)
                .set(f64::from(b.used_in_window));
            metrics::counter!("efs_iam_okta_rate_limited_total", "bucket" => bucket, "kind" => "rate")
                .absolute(b.rate_limited);
            metrics::counter!("efs_iam_okta_rate_limited_total", "bucket" => bucket, "kind" => "concurrency")
                .absolute(b.concurrency_limited);
            metrics::counter!("efs_iam_okta_paced_total", "bucket" => bucket).absolute(b.paced);
        }
    };
    tokio::join!(readiness, queue_and_jobs);
}
