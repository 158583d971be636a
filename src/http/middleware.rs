//! Cross-cutting layers: request ids and spans, metrics, and problem+json for errors
//! produced outside our handlers (unknown routes, wrong methods, timeouts).

use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderName, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::problem::ProblemType;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub const REQUEST_ID_HEADER: HeaderName = REQUEST_ID;

/// The span of one request. `x-request-id` is taken from the caller (EFS-Admin passes
/// its own) or made by the outer layer. It records the route template, never the raw
/// path: paths carry session ids, which are secrets.
pub fn make_span(req: &Request) -> tracing::Span {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let request_id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        method = %req.method(),
        route,
        request_id,
        error = tracing::field::Empty
    )
}

/// The access log: one line per request when its answer is ready, with status and
/// latency; a failed request's cause is on the same line (the span's `error`, set by
/// `ApiError`), at WARN for a 503 (something efs-iam depends on is down) and ERROR for
/// any other 5xx. No other line is written for a failed request, and never a backtrace.
pub fn access_log(
    res: &axum::http::Response<axum::body::Body>,
    latency: std::time::Duration,
    _span: &tracing::Span,
) {
    let status = res.status().as_u16();
    let latency_ms = latency.as_millis() as u64;
    match status {
        503 => tracing::warn!(status, latency_ms, "answered"),
        500..=599 => tracing::error!(status, latency_ms, "answered"),
        _ => tracing::info!(status, latency_ms, "answered"),
    }
}

pub async fn record_metrics(req: Request, next: Next) -> Response {
    // MatchedPath is a reference-counted string: cloning it does not copy the route.
    let route = req.extensions().get::<MatchedPath>().cloned();
    let method = req.method().clone();
    let started = Instant::now();
    let res = next.run(req).await;
    super::metrics::record_request(
        &method,
        route.as_ref().map_or("unmatched", MatchedPath::as_str),
        res.status(),
        started.elapsed(),
    );
    res
}

/// Error answers that carry no body of ours (a 405 from routing, a timeout, a body
/// limit hit before an extractor ran) become problem documents too.
pub async fn problem_for_bare_errors(req: Request, next: Next) -> Response {
    let res = next.run(req).await;
    let status = res.status();
    let has_own_body = res.headers().get(header::CONTENT_TYPE).is_some_and(|ct| {
        ct.to_str()
            .is_ok_and(|ct| ct.starts_with("application/") && ct.contains("json"))
    });
    if !(status.is_client_error() || status.is_server_error()) || has_own_body {
        return res;
    }
    let (parts, body) = res.into_parts();
    let text = axum::body::to_bytes(body, 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let problem = match status {
        StatusCode::METHOD_NOT_ALLOWED => ProblemType::METHOD_NOT_ALLOWED,
        StatusCode::SERVICE_UNAVAILABLE => ProblemType::TIMEOUT,
        StatusCode::PAYLOAD_TOO_LARGE => ProblemType::PAYLOAD_TOO_LARGE,
        StatusCode::NOT_FOUND => ProblemType::NOT_FOUND,
        _ if status.is_client_error() => ProblemType::BAD_REQUEST,
        _ => ProblemType::INTERNAL,
    };
    let detail = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    // The status stays what it was (a 4xx other than those named keeps its own code).
    let mut problem = ProblemType { status, ..problem }.response(detail, vec![]);
    // Keep routing's headers (`Allow` on a 405).
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            problem.headers_mut().insert(name.clone(), value.clone());
        }
    }
    problem
}

pub async fn not_found(req: Request<Body>) -> impl IntoResponse {
    let _ = req;
    ProblemType::NOT_FOUND.response(
        "no such endpoint; the API is described at /api-docs/openapi.json".into(),
        vec![],
    )
}
