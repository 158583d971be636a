//! The retry loop of one Okta call: each attempt (`exchange.rs`), what its answer
//! means, and when to try again.
//!
//! Retry policy, and why:
//!
//! - **429**: wait `X-Rate-Limit-Reset − Date + 1 s` plus jitter, as all three official
//!   SDKs do, then retry. The bucket is closed for every caller until
//!   then, so concurrent calls do not each collect their own 429. Okta's concurrency
//!   429 (`Limit: 0, Remaining: 0`) waits the same way on its estimated reset.
//! - **5xx, timeouts, dropped connections**: exponential backoff with jitter (`backon`),
//!   because these are the failures that a moment later usually succeed.
//! - **401 with OAuth**: the cached access token is dropped and the request sent once
//!   more with a fresh one (tokens can be revoked before they expire). This re-send does
//!   not use up the retry budget; a second 401 is an auth failure.
//! - **Any other 4xx**: never retried; it would fail the same way.
//!
//! All retries of a call share one budget (`max_retries`). They carry
//! `X-Okta-Retry-Count: n` and, when the failed attempt got an answer,
//! `X-Okta-Retry-For: <its X-Okta-Request-Id>`, as Okta's SDKs send them.
//!
//! The loop is written out rather than wrapped in `backon::Retryable` because each
//! attempt needs the previous attempt's answer (request id, rate-limit headers,
//! bearer token) and 429 waits come from headers, not from the backoff schedule;
//! `backon` supplies the jittered exponential schedule.
//!
//! A retried `POST /api/v1/users` after a timeout or dropped connection may find that
//! the first attempt did create the user: the retry then fails as a duplicate login.
//! Callers that create users must treat a duplicate-login error as "maybe ours" and look
//! the user up by login.
use std::time::Duration;

use backon::BackoffBuilder;
use chrono::Utc;
use tracing::field::Empty;
use tracing::Instrument;

use super::call::{Call, Exchange, Inner};
use super::error::{OktaApiError, OktaError};
use super::error_log::{error_body, Disposition};
use super::exchange::Attempt;

fn jitter(max: Duration) -> Duration {
    let max_ms = max.as_millis() as u64;
    if max_ms == 0 {
        Duration::ZERO
    } else {
        Duration::from_millis(fastrand::u64(0..=max_ms))
    }
}

impl Inner {
    /// Runs a call with the governor, retries and error capture.
    pub(crate) async fn execute(&self, call: &Call) -> Result<Exchange, OktaError> {
        let span = tracing::info_span!(
            "okta.call",
            method = %call.method,
            route = call.route.template,
            attempts = Empty,
            status = Empty,
            request_id = Empty,
        );
        self.run(call).instrument(span).await
    }

    async fn run(&self, call: &Call) -> Result<Exchange, OktaError> {
        let max_retries = self.tunables.max_retries;
        let mut backoff = self.tunables.backoff.build();
        let mut retries = 0u32;
        let mut attempt = 0u32;
        let mut retry_for: Option<String> = None;
        let mut renewed_token = false;
        loop {
            attempt += 1;
            let current = tracing::Span::current();
            current.record("attempts", attempt);
            let attempt_span =
                tracing::info_span!("okta.attempt", attempt, status = Empty, request_id = Empty);
            let outcome = self
                .attempt(call, attempt, retry_for.as_deref())
                .instrument(attempt_span.clone())
                .await;
            let can_retry = retries < max_retries;
            let mut backoff_delay = || {
                backoff
                    .next()
                    .unwrap_or(Duration::from_secs(1))
                    .min(self.tunables.max_rate_limit_wait)
            };
            match outcome {
                Attempt::Answer(ex, bearer) => {
                    attempt_span.record("status", ex.status);
                    current.record("status", ex.status);
                    if let Some(id) = &ex.request_id {
                        attempt_span.record("request_id", id.as_str());
                        current.record("request_id", id.as_str());
                    }
                    let not_found_answer = ex.status == 404
                        && call.not_found_ok
                        && error_body(&ex.body).error_code.as_deref() == Some("E0000007");
                    if (200..300).contains(&ex.status) || not_found_answer {
                        *self.last_success.lock().unwrap() = Some(Utc::now());
                        tracing::debug!(status = ex.status, "Okta call succeeded");
                        return Ok(ex);
                    }
                    if ex.status == 401 && self.auth.is_oauth() && !renewed_token {
                        renewed_token = true;
                        // Before the token is dropped: the row is scrubbed of the
                        // token in use.
                        let refused = OktaError::Auth(self.api_error(call, &ex));
                        let retried = Disposition::Retried {
                            label: "retried with a new access token".into(),
                            detail: format!("attempt {attempt}"),
                        };
                        self.record(call, &refused, Some(&ex), retried).await;
                        if let Some(b) = bearer {
                            self.invalidate_token(&b).await;
                        }
                        tracing::info!(
                            "Okta refused the access token (expired or revoked); fetching a new one"
                        );
                        retry_for = ex.request_id.clone();
                        continue;
                    }
                    if ex.status == 429 {
                        let concurrency = ex.rate.is_some_and(|r| r.is_concurrency());
                        let wait = match ex.rate {
                            Some(r) => r.until_reset(ex.date) + Duration::from_secs(1),
                            None => backoff_delay(),
                        }
                        .min(self.tunables.max_rate_limit_wait);
                        self.governor
                            .record_429(call.route.bucket, concurrency, wait);
                        let api = self.api_error(call, &ex);
                        let wait = wait + jitter(self.tunables.rate_limit_jitter);
                        if can_retry {
                            let kind = if concurrency { "concurrency" } else { "rate" };
                            tracing::warn!(
                                wait_ms = wait.as_millis() as u64,
                                limit = kind,
                                "Okta answered 429; retrying after the reset"
                            );
                            let retried = Disposition::Retried {
                                label: format!("{kind} limit; retried"),
                                detail: format!(
                                    "{}, retrying in {:.1} s",
                                    self.attempt_of(attempt, renewed_token),
                                    wait.as_secs_f64()
                                ),
                            };
                            self.record(call, &OktaError::RateLimited(api), Some(&ex), retried)
                                .await;
                            retries += 1;
                            retry_for = ex.request_id.clone();
                            tokio::time::sleep(wait).await;
                            continue;
                        }
                        return Err(self
                            .fail(call, OktaError::RateLimited(api), Some(&ex))
                            .await);
                    }
                    if ex.status >= 500 && can_retry {
                        let delay = backoff_delay();
                        tracing::warn!(
                            status = ex.status,
                            delay_ms = delay.as_millis() as u64,
                            "Okta server error; retrying"
                        );
                        let err = OktaError::Server(self.api_error(call, &ex));
                        let retried = self.retried(attempt, renewed_token);
                        self.record(call, &err, Some(&ex), retried).await;
                        retries += 1;
                        retry_for = ex.request_id.clone();
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    let err = classify(ex.status, self.api_error(call, &ex));
                    return Err(self.fail(call, err, Some(&ex)).await);
                }
                Attempt::NoAnswer { timeout, reason } => {
                    let method = call.method.to_string();
                    let route = call.route.template;
                    if can_retry {
                        let delay = backoff_delay();
                        tracing::warn!(
                            timeout,
                            reason = %reason,
                            delay_ms = delay.as_millis() as u64,
                            "no answer from Okta; retrying"
                        );
                        let err = if timeout {
                            OktaError::Timeout {
                                method,
                                route,
                                attempts: attempt,
                            }
                        } else {
                            OktaError::Connection {
                                method,
                                route,
                                attempts: attempt,
                                reason,
                            }
                        };
                        let retried = self.retried(attempt, renewed_token);
                        self.record(call, &err, None, retried).await;
                        retries += 1;
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    let err = if timeout {
                        OktaError::Timeout {
                            method,
                            route,
                            attempts: attempt,
                        }
                    } else {
                        OktaError::Connection {
                            method,
                            route,
                            attempts: attempt,
                            reason,
                        }
                    };
                    return Err(self.fail(call, err, None).await);
                }
                Attempt::CredentialFailed(err, ex) => {
                    if err.is_transient() && can_retry {
                        let delay = backoff_delay();
                        tracing::warn!(error = %err, "could not get an Okta access token; retrying");
                        let retried = self.retried(attempt, renewed_token);
                        self.record(call, &err, ex.as_ref(), retried).await;
                        retries += 1;
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    let err = with_attempts(err, attempt);
                    return Err(self.fail(call, err, ex.as_ref()).await);
                }
            }
        }
    }
}

impl Inner {
    /// `attempt 2 of 4`: which attempt got the answer, of how many the call may make.
    fn attempt_of(&self, attempt: u32, renewed_token: bool) -> String {
        let most = self.tunables.max_retries + 1 + u32::from(renewed_token);
        format!("attempt {attempt} of {most}")
    }

    fn retried(&self, attempt: u32, renewed_token: bool) -> Disposition {
        Disposition::Retried {
            label: "retried".into(),
            detail: self.attempt_of(attempt, renewed_token),
        }
    }
}

fn with_attempts(err: OktaError, attempts: u32) -> OktaError {
    match err {
        OktaError::Timeout { method, route, .. } => OktaError::Timeout {
            method,
            route,
            attempts,
        },
        OktaError::Connection {
            method,
            route,
            reason,
            ..
        } => OktaError::Connection {
            method,
            route,
            attempts,
            reason,
        },
        mut other => {
            if let Some(api) = match &mut other {
                OktaError::Auth(a)
                | OktaError::RateLimited(a)
                | OktaError::Server(a)
                | OktaError::Rejected(a) => Some(a),
                _ => None,
            } {
                api.attempts = attempts;
            }
            other
        }
    }
}

/// The variant for a final error answer.
fn classify(status: u16, api: Box<OktaApiError>) -> OktaError {
    match status {
        400 => OktaError::Validation(api),
        401 => OktaError::Auth(api),
        403 if api.error_code == "E0000038" => OktaError::ForbiddenState(api),
        403 => OktaError::Forbidden(api),
        404 => OktaError::NotFound(api),
        429 => OktaError::RateLimited(api),
        s if s >= 500 => OktaError::Server(api),
        _ => OktaError::Rejected(api),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_statuses_map_to_variants() {
        let api = |code: &str| {
            Box::new(OktaApiError {
                status: 0,
                error_code: code.into(),
                summary: String::new(),
                causes: vec![],
                error_id: None,
                request_id: None,
                method: "GET".into(),
                route: "/x",
                attempts: 1,
            })
        };
        assert!(matches!(
            classify(400, api("E0000001")),
            OktaError::Validation(_)
        ));
        assert!(matches!(classify(401, api("E0000011")), OktaError::Auth(_)));
        assert!(matches!(
            classify(403, api("E0000038")),
            OktaError::ForbiddenState(_)
        ));
        assert!(matches!(
            classify(403, api("E0000006")),
            OktaError::Forbidden(_)
        ));
        assert!(matches!(
            classify(404, api("E0000007")),
            OktaError::NotFound(_)
        ));
        assert!(matches!(
            classify(409, api("E0000112")),
            OktaError::Rejected(_)
        ));
        assert!(matches!(
            classify(503, api("E0000010")),
            OktaError::Server(_)
        ));
    }
}
