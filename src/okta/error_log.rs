//! What a failed Okta call leaves behind: Okta's error body read leniently into an
//! [`OktaApiError`], and a row in `iam_error_log`.
//!
//! **Error log.** Every call that finally fails, and every 429 even when a retry then
//! succeeds, becomes an `iam_error_log` row: status (0 without an answer), Okta's
//! `errorCode`, `errorSummary` plus causes, and a trace with method, path, route,
//! `X-Okta-Request-Id`, attempt, rate-limit figures and the first 4 KB of the body.
//! Never request headers, and any known secret that somehow shows up is replaced
//! before the row is written. A failing log write is logged as a warning and never
//! fails the Okta call.

use std::time::Duration;

use chrono::Utc;
use serde::Deserialize;

use super::auth::AuthFailure;
use super::call::{Call, Exchange, Inner};
use super::error::{OktaApiError, OktaError};
use super::exchange::path_and_query;
use crate::domain::storable_text;
use crate::storage::NewErrorLogEntry;

/// Okta's error object, or the token endpoint's OAuth error; read leniently.
#[derive(Debug, Default, Deserialize)]
pub(super) struct ErrorBody {
    #[serde(rename = "errorCode")]
    pub(super) error_code: Option<String>,
    #[serde(rename = "errorSummary")]
    error_summary: Option<String>,
    #[serde(rename = "errorId")]
    error_id: Option<String>,
    #[serde(rename = "errorCauses", default)]
    error_causes: Vec<ErrorCause>,
    error: Option<String>,
    error_description: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct ErrorCause {
    #[serde(rename = "errorSummary")]
    error_summary: Option<String>,
}

pub(super) fn error_body(body: &[u8]) -> ErrorBody {
    serde_json::from_slice(body).unwrap_or_default()
}

impl Inner {
    pub(super) fn api_error(&self, call: &Call, ex: &Exchange) -> Box<OktaApiError> {
        Box::new(self.api_error_from(ex, call.method.as_str(), call.route.template))
    }

    pub(super) fn api_error_from(
        &self,
        ex: &Exchange,
        method: &str,
        route: &'static str,
    ) -> OktaApiError {
        let body = error_body(&ex.body);
        let summary = body
            .error_summary
            .or(body.error_description)
            .unwrap_or_else(|| {
                // Not Okta's JSON (a proxy's HTML page, say): a short piece of it.
                let text = String::from_utf8_lossy(&ex.body);
                let text = text.trim();
                if text.is_empty() {
                    reqwest::StatusCode::from_u16(ex.status)
                        .ok()
                        .and_then(|s| s.canonical_reason())
                        .unwrap_or("no error details")
                        .to_owned()
                } else {
                    truncate_chars(text, 200).to_owned()
                }
            });
        OktaApiError {
            status: ex.status,
            error_code: body.error_code.or(body.error).unwrap_or_default(),
            summary: self.auth.scrub(summary),
            causes: body
                .error_causes
                .into_iter()
                .filter_map(|c| c.error_summary)
                .map(|c| self.auth.scrub(c))
                .collect(),
            error_id: body.error_id,
            request_id: ex.request_id.clone(),
            method: method.to_owned(),
            route,
            attempts: ex.attempt,
        }
    }

    /// A call's final failure: remember auth failures, write the error log row, log.
    pub(super) async fn fail(
        &self,
        call: &Call,
        err: OktaError,
        ex: Option<&Exchange>,
    ) -> OktaError {
        if let OktaError::Auth(api) = &err {
            metrics::counter!("efs_iam_okta_auth_failures_total").increment(1);
            *self.auth.last_failure.lock().unwrap() = Some(AuthFailure {
                at: Utc::now(),
                status: api.status,
                error_code: api.error_code.clone(),
                message: api.summary.clone(),
            });
        }
        tracing::warn!(error = %err, "Okta call failed");
        let note = if err.attempts() > 1 {
            format!("gave up after {} attempts", err.attempts())
        } else {
            String::new()
        };
        self.write_row(call, &err, ex, &note).await;
        err
    }

    /// Writes one `iam_error_log` row (a no-op without a store).
    pub(super) async fn write_row(
        &self,
        call: &Call,
        err: &OktaError,
        ex: Option<&Exchange>,
        note: &str,
    ) {
        let Some(store) = &self.error_log else {
            return;
        };
        let entry = self.error_row(call, err, ex, note);
        match tokio::time::timeout(LOG_WRITE_TIMEOUT, store.record_error(&entry)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not write the Okta failure to iam_error_log")
            }
            Err(_) => tracing::warn!("writing the Okta failure to iam_error_log timed out"),
        }
    }

    pub(super) fn error_row(
        &self,
        call: &Call,
        err: &OktaError,
        ex: Option<&Exchange>,
        note: &str,
    ) -> NewErrorLogEntry {
        let api = err.api_error();
        let (error_code, mut message) = match (err, api) {
            (_, Some(api)) => {
                let mut m = api.summary.clone();
                if !api.causes.is_empty() {
                    m.push_str(&format!(" ({})", api.causes.join("; ")));
                }
                (api.error_code.clone(), m)
            }
            (OktaError::Timeout { .. }, _) => ("timeout".to_owned(), err.to_string()),
            (OktaError::Connection { .. }, _) => ("connection".to_owned(), err.to_string()),
            (OktaError::InvalidResponse { .. }, _) => {
                ("invalid_response".to_owned(), err.to_string())
            }
            _ => (String::new(), err.to_string()),
        };
        if !note.is_empty() {
            message.push_str(&format!(" [{note}]"));
        }

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
            "attempt: {attempt} (retries allowed: {})\n",
            self.tunables.max_retries
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

        let message = self.auth.scrub(message);
        let trace = self.auth.scrub(trace);
        // The legacy `utf8` (utf8mb3) columns cannot hold characters outside the Basic
        // Multilingual Plane: Okta's texts are stored with them replaced.
        let storable = |s: &str, max_bytes: usize| {
            truncate_bytes(&storable_text(s, usize::MAX), max_bytes).to_owned()
        };
        NewErrorLogEntry {
            message: Some(storable(&message, MESSAGE_MAX_BYTES)),
            status_code: ex.map_or(err.status(), |e| e.status) as i16,
            trace: Some(storable(&trace, TRACE_MAX_BYTES)),
            error_code: storable_text(&error_code, ERROR_CODE_MAX_CHARS),
        }
    }
}

const LOG_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// `iam_error_log.message` is a MySQL TEXT.
const MESSAGE_MAX_BYTES: usize = 65_535;
/// `iam_error_log.error_code` is VARCHAR(36).
const ERROR_CODE_MAX_CHARS: usize = 36;
/// How much of a response body a row keeps; Okta's error bodies are far smaller.
const BODY_MAX_BYTES: usize = 4096;
/// `trace` is LONGTEXT, but a row is for people to read.
const TRACE_MAX_BYTES: usize = 16 * 1024;

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
pub(crate) fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

pub(crate) fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_respects_char_boundaries() {
        let s = "aé€😀";
        assert_eq!(truncate_bytes(s, 100), s);
        assert_eq!(truncate_bytes(s, 2), "a");
        assert_eq!(truncate_bytes(s, 3), "aé");
        assert_eq!(truncate_bytes(s, 7), "aé€");
        assert_eq!(truncate_chars("E0000001", 36), "E0000001");
        assert_eq!(truncate_chars(&"é".repeat(40), 36).chars().count(), 36);
    }
}
