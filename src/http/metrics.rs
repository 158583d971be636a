//! Prometheus metrics at `/metrics`: requests by route and status, latency, and the
//! database pool. The `metrics` facade has one global recorder per process, so it is
//! installed once and shared (tests start several apps in one process).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, Method, StatusCode};
use axum::response::IntoResponse;
use metrics::SharedString;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::AppState;

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
                .set_buckets_for_metric(
                    Matcher::Full("http_request_duration_seconds".into()),
                    &[
                        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                        5.0, 10.0,
                    ],
                )
                .expect("static bucket list is not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another library may have installed a recorder first (only in tests);
            // then our handle renders an empty page rather than failing start-up.
            let _ = metrics::set_global_recorder(recorder);
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

    pub fn record_request(&self, method: &Method, route: &str, status: StatusCode, took: Duration) {
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
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.handle.render(),
    )
}
