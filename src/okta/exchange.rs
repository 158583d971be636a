//! One HTTP exchange with Okta: credentials, admission by the governor, the request,
//! the whole answer read, its rate-limit headers fed back to the governor.

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Url;
use secrecy::SecretString;

use super::call::{Call, Exchange, Inner, Route};
use super::error::OktaError;
use super::governor::{server_date, RateHeaders};

/// How one attempt ended.
pub(super) enum Attempt {
    Answer(Exchange, Option<SecretString>),
    NoAnswer {
        timeout: bool,
        reason: String,
    },
    /// Getting an access token failed.
    CredentialFailed(OktaError, Option<Exchange>),
}

pub(super) fn path_and_query(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

/// An answer's status as the `outcome` label of `efs_iam_okta_requests_total`.
pub(crate) fn status_class(status: u16) -> &'static str {
    match status {
        200..=299 => "2xx",
        401 | 403 => "auth_refused",
        429 => "rate_limited",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// Every `outcome` of `efs_iam_okta_requests_total`.
pub const OKTA_OUTCOMES: [&str; 7] = [
    "2xx",
    "4xx",
    "auth_refused",
    "rate_limited",
    "5xx",
    "timeout",
    "no_answer",
];

/// A reqwest error as text, without the URL (which may name a user's login).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl Inner {
    /// One request: credentials, admission, the exchange.
    pub(super) async fn attempt(
        &self,
        call: &Call,
        attempt: u32,
        retry_for: Option<&str>,
    ) -> Attempt {
        let credential = match self.credential().await {
            Ok(c) => c,
            Err((err, ex)) => return Attempt::CredentialFailed(err, ex),
        };
        let _admission = self.governor.admit(call.route.bucket).await;
        let mut request = self
            .http
            .request(call.method.clone(), call.url.clone())
            .header(AUTHORIZATION, credential.header)
            .header(ACCEPT, "application/json");
        if let Some(body) = &call.body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        if attempt > 1 {
            request = request.header("X-Okta-Retry-Count", (attempt - 1).to_string());
            if let Some(id) = retry_for {
                request = request.header("X-Okta-Retry-For", id);
            }
        }
        match self
            .exchange(
                request,
                call.method.as_str(),
                &call.url,
                call.route,
                attempt,
            )
            .await
        {
            Ok(ex) => Attempt::Answer(ex, credential.bearer),
            Err((timeout, reason)) => Attempt::NoAnswer { timeout, reason },
        }
    }

    /// Sends a request and reads the whole answer, feeding its rate-limit headers to the
    /// governor.
    pub(super) async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
        method: &str,
        url: &Url,
        route: Route,
        attempt: u32,
    ) -> Result<Exchange, (bool, String)> {
        let started = std::time::Instant::now();
        let bucket = route.bucket.as_str();
        let response = request.send().await.map_err(|e| {
            let outcome = if e.is_timeout() { "timeout" } else { "no_answer" };
            metrics::counter!("efs_iam_okta_requests_total", "bucket" => bucket, "outcome" => outcome)
                .increment(1);
            (e.is_timeout(), describe(e))
        })?;
        let status = response.status().as_u16();
        metrics::counter!(
            "efs_iam_okta_requests_total",
            "bucket" => bucket,
            "outcome" => status_class(status)
        )
        .increment(1);
        metrics::histogram!("efs_iam_okta_request_duration_seconds", "bucket" => bucket)
            .record(started.elapsed().as_secs_f64());
        let headers = response.headers().clone();
        let rate = RateHeaders::parse(&headers);
        let date = server_date(&headers);
        self.governor.observe(route.bucket, rate.as_ref(), date);
        let request_id = headers
            .get("x-okta-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .bytes()
            .await
            .map_err(|e| (e.is_timeout(), describe(e)))?
            .to_vec();
        Ok(Exchange {
            method: method.to_owned(),
            path: path_and_query(url),
            route: route.template,
            status,
            headers,
            request_id,
            rate,
            date,
            body,
            attempt,
        })
    }

    /// Decodes a JSON answer; an undecodable one is a logged failure.
    pub(super) async fn decode<T: serde::de::DeserializeOwned>(
        &self,
        call: &Call,
        ex: &Exchange,
    ) -> Result<T, OktaError> {
        match serde_json::from_slice(&ex.body) {
            Ok(v) => Ok(v),
            Err(e) => {
                let err = OktaError::InvalidResponse {
                    method: call.method.to_string(),
                    route: call.route.template,
                    status: ex.status,
                    request_id: ex.request_id.clone(),
                    reason: format!("body is not the expected JSON: {e}"),
                };
                Err(self.fail(call, err, Some(ex)).await)
            }
        }
    }
}
