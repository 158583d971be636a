//! What a failed Okta call leaves behind: rows in `iam_error_log`, one per error answer,
//! identical ones coalesced ([`ErrorLog`], the sink the adapter owns).
//!
//! **Error log.** The table is "every error received from Okta", so every error answer
//! becomes a row, also when a retry then succeeds: any non-2xx answer except a 404 the
//! call takes as its answer (`Call::not_found_ok`), timeouts and dropped connections
//! (status 0), and answers efs-iam cannot use. A row holds the status, Okta's
//! `errorCode`, `errorSummary` plus every cause verbatim, whether the call went on
//! (`[retried (attempt 1 of 4)]`) or ended with it (`[final]`), and a trace with
//! method, path, route, `X-Okta-Request-Id`, attempt, rate-limit figures and the first
//! 4 KB of the body. Never request headers, and any known secret that somehow shows up
//! is replaced before the row is written. A failing log write is logged as a warning
//! and never fails the Okta call.
//!
//! **Coalescing.** An Okta incident answers hundreds of requests alike; a row each
//! would bury everything else and load the database while it is needed. Identical
//! answers (method, route template, status, error code, retried or final, and text)
//! within a window (60 s) make one series: its first answer is written at once, the
//! others are counted, and when the window closes the count is added to the first
//! row (`[retried; ×24 within 60 s from 10:00:00 UTC]`), or written as a row of its own
//! when the first could not be written. So a series costs at most two writes per
//! window. Pending counts are written when the window ends, when the next identical answer
//! comes after it, and by
//! [`OktaClient::flush_error_log`](super::OktaClient::flush_error_log) (shutdown).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::error::OktaError;
use super::exchange::{path_and_query, Call, Exchange};
use crate::domain::truncate_bytes;
use crate::storage::{ErrorLogStore, NewErrorLogEntry};

/// The row an error answer (or a missing answer) of `call` leaves, before
/// coalescing: `scrub` takes out any secret in its texts; `max_retries` is what the
/// trace reports as allowed.
pub(crate) fn occurrence(
    call: &Call,
    err: &OktaError,
    ex: Option<&Exchange>,
    disposition: Disposition,
    max_retries: u32,
    scrub: &dyn Fn(String) -> String,
) -> Occurrence {
    let (error_code, base) = match (err, err.api_error()) {
        (_, Some(api)) => {
            let mut m = api.summary.clone();
            if !api.causes.is_empty() {
                m.push_str(&format!(" ({})", api.causes.join("; ")));
            }
            (api.error_code.clone(), m)
        }
        // Without the attempt count of the error's Display: it is not part of what
        // makes two missing answers alike.
        (OktaError::Timeout { method, route, .. }, _) => (
            "timeout".to_owned(),
            format!("Okta did not answer {method} {route} in time"),
        ),
        (
            OktaError::Connection {
                method,
                route,
                reason,
                ..
            },
            _,
        ) => (
            "connection".to_owned(),
            format!("could not reach Okta for {method} {route}: {reason}"),
        ),
        (OktaError::InvalidResponse { .. }, _) => ("invalid_response".to_owned(), err.to_string()),
        _ => (String::new(), err.to_string()),
    };
    let (label, detail) = match disposition {
        Disposition::Retried { label, detail } => (label, Some(detail)),
        Disposition::Final => (
            "final".to_owned(),
            (err.attempts() > 1).then(|| format!("gave up after {} attempts", err.attempts())),
        ),
    };
    let base = scrub(base);
    let message = match &detail {
        Some(detail) => format!("{base} [{label} ({detail})]"),
        None => format!("{base} [{label}]"),
    };

    let mut trace = String::new();
    let (method, path, route) = match ex {
        Some(ex) => (ex.method.clone(), ex.path.clone(), ex.route),
        None => (
            call.method.to_string(),
            path_and_query(&call.url),
            call.route.template,
        ),
    };
    trace.push_str(&format!("{method} {path}\nroute: {route}\n"));
    if let Some(what) = CallContext::current_task() {
        trace.push_str(&format!("while: {what}\n"));
    }
    if route != call.route.template {
        trace.push_str(&format!(
            "while calling: {} {}\n",
            call.method, call.route.template
        ));
    }
    let request_id = ex
        .and_then(|e| e.request_id.as_deref())
        .or_else(|| err.request_id());
    trace.push_str(&format!(
        "X-Okta-Request-Id: {}\n",
        request_id.unwrap_or("-")
    ));
    let attempt = ex.map_or(err.attempts(), |e| e.attempt);
    trace.push_str(&format!(
        "attempt: {attempt} (retries allowed: {max_retries})\n"
    ));
    if let Some(r) = ex.and_then(|e| e.rate) {
        trace.push_str(&format!(
            "rate limit: limit={} remaining={} reset={}\n",
            r.limit, r.remaining, r.reset
        ));
    }
    if let Some(ex) = ex {
        if !ex.body.is_empty() {
            let body = String::from_utf8_lossy(&ex.body);
            let cut = truncate_bytes(&body, BODY_MAX_BYTES);
            let shown = if cut.len() < body.len() {
                format!("response body (first {} bytes):\n{cut}", cut.len())
            } else {
                format!("response body:\n{cut}")
            };
            trace.push_str(&shown);
        }
    }

    let message = scrub(message);
    let trace = scrub(trace);
    let status = ex.map_or(err.status(), |e| e.status);
    let entry = NewErrorLogEntry::new(status, &error_code, &message, Some(&trace));
    Occurrence {
        key: SeriesKey {
            method,
            route,
            status_code: entry.status_code,
            error_code: entry.error_code.clone(),
            label,
            base,
        },
        entry,
    }
}

/// What efs-iam was doing when it called Okta ("sync of portal user 61 (portal 6)"):
/// the rows its calls leave name it in their trace (not in their message, which would
/// keep identical Okta answers for different users from being counted as one series),
/// and it tells whether a call's failure is in the error log already, so the caller
/// writes no second row for the same failure.
#[derive(Clone)]
pub struct CallContext {
    what: Arc<str>,
    final_rows: Arc<AtomicU64>,
}

tokio::task_local! {
    static CONTEXT: CallContext;
}

impl CallContext {
    pub fn new(what: impl Into<String>) -> Self {
        Self {
            what: what.into().into(),
            final_rows: Arc::default(),
        }
    }

    /// Runs `work` with this context for its Okta calls.
    pub async fn scope<F: std::future::Future>(&self, work: F) -> F::Output {
        CONTEXT.scope(self.clone(), work).await
    }

    /// Whether a call made in this context ended in a failure the error log holds.
    pub fn failure_logged(&self) -> bool {
        self.final_rows.load(Ordering::Relaxed) > 0
    }

    fn current_task() -> Option<Arc<str>> {
        CONTEXT.try_with(|c| c.what.clone()).ok()
    }

    /// Notes (in the current task's context, if any) that a final failure was logged.
    pub(crate) fn note_final_row() {
        let _ = CONTEXT.try_with(|c| c.final_rows.fetch_add(1, Ordering::Relaxed));
    }
}

/// Whether the call went on after an error answer; every row says which.
pub(crate) enum Disposition {
    /// Another attempt follows. `label` is what the row says (`retried`, `rate limit;
    /// retried`…) and identical answers share it; `detail` is this attempt's own
    /// (`attempt 1 of 4`), left out of a series' count row.
    Retried { label: String, detail: String },
    /// The call ended with this answer.
    Final,
}

/// One error answer, ready to be written or counted.
pub(crate) struct Occurrence {
    key: SeriesKey,
    entry: NewErrorLogEntry,
}

/// What makes two error answers the same error. `base` is the message without this
/// attempt's details: for validation errors it carries the causes, so two users
/// refused for different reasons stay two rows.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct SeriesKey {
    method: String,
    route: &'static str,
    status_code: i16,
    error_code: String,
    label: String,
    base: String,
}

/// Identical answers within one window.
struct Series {
    generation: u64,
    closes: Instant,
    first_at: DateTime<Utc>,
    last_at: DateTime<Utc>,
    /// The row of the first answer, once written.
    first_row: Option<i32>,
    /// Answers in the window, the first included.
    count: u32,
    last_trace: Option<String>,
    /// Whether a task will close the window when it ends.
    timer: bool,
}

/// The `iam_error_log` writer of one client, coalescing identical answers.
pub(crate) struct ErrorLog {
    store: Arc<dyn ErrorLogStore>,
    window: Duration,
    series: Mutex<HashMap<SeriesKey, Series>>,
    generations: AtomicU64,
}

impl ErrorLog {
    pub(crate) fn new(store: Arc<dyn ErrorLogStore>, window: Duration) -> Arc<Self> {
        Arc::new(Self {
            store,
            window,
            series: Mutex::new(HashMap::new()),
            generations: AtomicU64::new(0),
        })
    }

    /// Writes an occurrence's row, or counts it in its open series.
    pub(crate) async fn record(self: &Arc<Self>, occurrence: Occurrence) {
        let Occurrence { key, entry } = occurrence;
        let now = Instant::now();
        let (ended, generation) = {
            let mut series = self.series.lock().unwrap();
            if let Some(open) = series.get_mut(&key).filter(|s| now < s.closes) {
                open.count += 1;
                open.last_at = Utc::now();
                open.last_trace = entry.trace;
                if !std::mem::replace(&mut open.timer, true) {
                    self.close_when_due(key, open.generation, open.closes);
                }
                return;
            }
            // Every ended window goes now, so the map holds only the last window's
            // errors however many kinds Okta answers with.
            let ended_keys: Vec<SeriesKey> = series
                .iter()
                .filter(|(_, s)| now >= s.closes)
                .map(|(k, _)| k.clone())
                .collect();
            let ended: Vec<(Option<i32>, NewErrorLogEntry)> = ended_keys
                .into_iter()
                .filter_map(|k| {
                    let s = series.remove(&k)?;
                    self.count_row(&k, &s)
                })
                .collect();
            let generation = self.generations.fetch_add(1, Ordering::Relaxed);
            let at = Utc::now();
            series.insert(
                key.clone(),
                Series {
                    generation,
                    closes: now + self.window,
                    first_at: at,
                    last_at: at,
                    first_row: None,
                    count: 1,
                    last_trace: None,
                    timer: false,
                },
            );
            (ended, generation)
        };
        for row in &ended {
            self.write_count(row).await;
        }
        if let Some(id) = self.write(&entry).await {
            if let Some(s) = self.series.lock().unwrap().get_mut(&key) {
                if s.generation == generation {
                    s.first_row = Some(id);
                }
            }
        }
    }

    /// Writes a series' count when its window ends, unless something closed it first.
    fn close_when_due(self: &Arc<Self>, key: SeriesKey, generation: u64, due: Instant) {
        let log = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep_until(due.into()).await;
            let row = {
                let mut series = log.series.lock().unwrap();
                match series.get(&key) {
                    Some(s) if s.generation == generation => {
                        let s = series.remove(&key).expect("just seen");
                        log.count_row(&key, &s)
                    }
                    _ => None,
                }
            };
            if let Some(row) = row {
                log.write_count(&row).await;
            }
        });
    }

    /// Closes every window now, writing the counts not written yet.
    pub(crate) async fn flush(&self) {
        let rows: Vec<(Option<i32>, NewErrorLogEntry)> = {
            let mut series = self.series.lock().unwrap();
            series
                .drain()
                .filter_map(|(k, s)| self.count_row(&k, &s))
                .collect()
        };
        for row in &rows {
            self.write_count(row).await;
        }
    }

    /// The row reporting a series' count; none for a lone answer, whose own row says
    /// everything.
    fn count_row(
        &self,
        key: &SeriesKey,
        series: &Series,
    ) -> Option<(Option<i32>, NewErrorLogEntry)> {
        if series.count < 2 {
            return None;
        }
        let window = if self.window.subsec_millis() == 0 {
            format!("{} s", self.window.as_secs())
        } else {
            format!("{} ms", self.window.as_millis())
        };
        let message = format!(
            "{} [{}; ×{} within {window} from {} UTC]",
            key.base,
            key.label,
            series.count,
            series.first_at.format("%H:%M:%S"),
        );
        let trace = format!(
            "{} identical answers from {} to {} UTC; the last one:\n{}",
            series.count,
            series.first_at.format("%Y-%m-%d %H:%M:%S"),
            series.last_at.format("%Y-%m-%d %H:%M:%S"),
            series.last_trace.as_deref().unwrap_or_default(),
        );
        Some((
            series.first_row,
            NewErrorLogEntry::new(
                u16::try_from(key.status_code).unwrap_or(0),
                &key.error_code,
                &message,
                Some(&trace),
            ),
        ))
    }

    /// A series' count goes onto its first row (one row per series); a new row only
    /// when the first could not be written or is gone.
    async fn write_count(&self, (first_row, entry): &(Option<i32>, NewErrorLogEntry)) {
        if let Some(id) = first_row {
            let amended = tokio::time::timeout(
                LOG_WRITE_TIMEOUT,
                self.store.amend_error_log_entry(
                    *id,
                    entry.message.as_deref().unwrap_or_default(),
                    entry.trace.as_deref(),
                ),
            )
            .await;
            match amended {
                Ok(Ok(true)) => return,
                Ok(Ok(false)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "could not add the count to an iam_error_log row");
                    return;
                }
                Err(_) => {
                    tracing::warn!("adding the count to an iam_error_log row timed out");
                    return;
                }
            }
        }
        self.write(entry).await;
    }

    /// Writes one row; its id, or `None` when the write failed (logged).
    async fn write(&self, entry: &NewErrorLogEntry) -> Option<i32> {
        match tokio::time::timeout(LOG_WRITE_TIMEOUT, self.store.record_error(entry)).await {
            Ok(Ok(row)) => Some(row.id),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not write the Okta failure to iam_error_log");
                None
            }
            Err(_) => {
                tracing::warn!("writing the Okta failure to iam_error_log timed out");
                None
            }
        }
    }
}

const LOG_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How much of a response body a row keeps; Okta's error bodies are far smaller.
const BODY_MAX_BYTES: usize = 4096;
