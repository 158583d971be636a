//! Small pieces of answers several handlers give.

use axum::http::{HeaderValue, StatusCode};
use chrono::{DateTime, NaiveDateTime, Utc};

/// 202 Accepted for work left to a worker: the body, and its status URL also as the
/// `Location` header.
pub(crate) fn accepted<T: serde::Serialize>(status_url: &str, body: T) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut response = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(status_url) {
        response
            .headers_mut()
            .insert(axum::http::header::LOCATION, v);
    }
    response
}

pub(crate) fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}
