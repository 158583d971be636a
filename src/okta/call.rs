//! How one Okta call is made, top to bottom: [`Caller::execute`] takes the
//! `Authorization` (`access_token.rs`), admission by the governor (`governor.rs`), one
//! exchange (`exchange.rs`), reads what the answer means (`error.rs`), writes the error
//! row of a failed answer (`error_log.rs`) and decides whether to try again. The
//! [`Caller`] holds what every call shares; each part keeps its own state behind its
//! own methods.
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
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::BackoffBuilder;
use chrono::{DateTime, Utc};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use reqwest::Url;
use secrecy::SecretString;
use tracing::field::Empty;
use tracing::Instrument;

use super::access_token::AccessTokens;
use super::error::{classify, ErrorBody, OktaApiError, OktaError};
use super::error_log::{occurrence, CallContext, Disposition, ErrorLog};
use super::exchange::{Call, Exchange, Transport};
use super::governor::Governor;
use super::headers::next_link;
use super::retry_policy::{jitter, RetryPolicy};

/// What every call shares: the transport, the credentials and access tokens, the
/// governor, the error-log sink and the retry policy.
pub(crate) struct Caller {
    transport: Transport,
    tokens: AccessTokens,
    governor: Arc<Governor>,
    error_log: Option<Arc<ErrorLog>>,
    retry: RetryPolicy,
    last_success: Mutex<Option<DateTime<Utc>>>,
}

/// How one attempt ended.
enum Attempt {
    /// An answer, and the bearer token it was sent with (to drop exactly that one if
    /// Okta refuses it).
    Answer(Exchange, Option<SecretString>),
    NoAnswer {
        timeout: bool,
        reason: String,
    },
    /// Getting an access token failed.
    CredentialFailed(OktaError, Option<Exchange>),
}

impl Caller {
    pub(crate) fn new(
        transport: Transport,
        tokens: AccessTokens,
        governor: Arc<Governor>,
        error_log: Option<Arc<ErrorLog>>,
        retry: RetryPolicy,
    ) -> Self {
        Self {
            transport,
            tokens,
            governor,
            error_log,
            retry,
            last_success: Mutex::new(None),
        }
    }

    pub(crate) fn org(&self) -> &Url {
        self.transport.org()
    }

    pub(crate) fn governor(&self) -> &Governor {
        &self.governor
    }

    pub(crate) fn tokens(&self) -> &AccessTokens {
        &self.tokens
    }

    /// Last time Okta answered a call successfully.
    pub(crate) fn last_success(&self) -> Option<DateTime<Utc>> {
        *self.last_success.lock().unwrap()
    }

    /// Fetches an access token (service apps; see `OktaClient::check_credentials`).
    pub(crate) async fn check_credentials(&self) {
        if !self.tokens.is_oauth() {
            return;
        }
        match self
            .tokens
            .authorization(&self.transport, &self.governor)
            .await
        {
            Ok(_) => {}
            Err((OktaError::Auth(api), _)) => {
                tracing::warn!(error = %api, "Okta refuses efs-iam's credentials");
                self.tokens.record_refusal(&api);
            }
            Err((e, _)) => tracing::warn!(error = %e, "could not check the Okta credentials"),
        }
    }

    /// Writes the counts of coalesced error answers still pending (shutdown).
    pub(crate) async fn flush_error_log(&self) {
        if let Some(log) = &self.error_log {
            log.flush().await;
        }
    }

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
        let max_retries = self.retry.max_retries;
        let mut backoff = self.retry.backoff.build();
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
                    .min(self.retry.max_rate_limit_wait)
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
                        && ErrorBody::read(&ex.body).error_code.as_deref() == Some("E0000007");
                    if (200..300).contains(&ex.status) || not_found_answer {
                        *self.last_success.lock().unwrap() = Some(Utc::now());
                        tracing::debug!(status = ex.status, "Okta call succeeded");
                        return Ok(ex);
                    }
                    if ex.status == 401 && self.tokens.is_oauth() && !renewed_token {
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
                            self.tokens.drop_token(&b).await;
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
                            Some(r) => r
                                .until_reset(ex.date)
                                .saturating_add(Duration::from_secs(1)),
                            None => backoff_delay(),
                        }
                        .min(self.retry.max_rate_limit_wait);
                        self.governor
                            .record_429(call.route.bucket, concurrency, wait);
                        let api = self.api_error(call, &ex);
                        let wait = wait + jitter(self.retry.rate_limit_jitter);
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
                        let err = OktaError::no_answer(method, route, attempt, timeout, reason);
                        let retried = self.retried(attempt, renewed_token);
                        self.record(call, &err, None, retried).await;
                        retries += 1;
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    let err = OktaError::no_answer(method, route, attempt, timeout, reason);
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
                    let err = err.with_attempts(attempt);
                    return Err(self.fail(call, err, ex.as_ref()).await);
                }
            }
        }
    }

    /// `attempt 2 of 4`: which attempt got the answer, of how many the call may make.
    fn attempt_of(&self, attempt: u32, renewed_token: bool) -> String {
        let most = self.retry.max_retries + 1 + u32::from(renewed_token);
        format!("attempt {attempt} of {most}")
    }

    fn retried(&self, attempt: u32, renewed_token: bool) -> Disposition {
        Disposition::Retried {
            label: "retried".into(),
            detail: self.attempt_of(attempt, renewed_token),
        }
    }

    /// One request: the `Authorization`, admission, the exchange.
    async fn attempt(&self, call: &Call, attempt: u32, retry_for: Option<&str>) -> Attempt {
        let credential = match self
            .tokens
            .authorization(&self.transport, &self.governor)
            .await
        {
            Ok(c) => c,
            Err((err, ex)) => return Attempt::CredentialFailed(err, ex),
        };
        // Made here, for this attempt only: a retried request never replays a proof.
        let proof = self
            .tokens
            .api_proof(call.method.as_str(), &call.url, &credential);
        let proof = match proof.transpose() {
            Ok(p) => p,
            Err(e) => return Attempt::CredentialFailed(OktaError::InvalidInput(e), None),
        };
        let _admission = self.governor.admit(call.route.bucket).await;
        let mut request = self
            .transport
            .request(call.method.clone(), call.url.clone())
            .header(AUTHORIZATION, credential.header)
            .header(ACCEPT, "application/json");
        if let Some(proof) = proof {
            request = request.header("DPoP", proof);
        }
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
        let sent = self
            .transport
            .send(
                &self.governor,
                request,
                call.method.as_str(),
                &call.url,
                call.route,
                attempt,
            )
            .await;
        match sent {
            Ok(ex) => Attempt::Answer(ex, credential.access_token),
            Err(no) => Attempt::NoAnswer {
                timeout: no.timeout,
                reason: no.reason,
            },
        }
    }

    /// Decodes a JSON answer; an undecodable one is a logged failure.
    pub(crate) async fn decode<T: serde::de::DeserializeOwned>(
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

    /// The `rel="next"` link of a page, which must point at the org itself (following a
    /// link elsewhere would send the org's credentials to another host) and at a page
    /// not fetched yet (a loop would never end).
    pub(crate) async fn next_page(
        &self,
        call: &Call,
        ex: &Exchange,
        seen: &HashSet<Url>,
    ) -> Result<Option<Url>, OktaError> {
        let Some(next) = next_link(&ex.headers) else {
            return Ok(None);
        };
        let org = self.transport.org();
        match org.join(&next) {
            Ok(u) if u.origin() == org.origin() && !seen.contains(&u) => Ok(Some(u)),
            _ => Err(self
                .invalid_answer(
                    call,
                    ex,
                    "the next-page link points outside the Okta org or back at the same page",
                )
                .await),
        }
    }

    /// An answer efs-iam will not go on with (a listing past its bound, a link it will
    /// not follow): an `InvalidResponse`, logged and recorded like any failure.
    pub(crate) async fn invalid_answer(
        &self,
        call: &Call,
        ex: &Exchange,
        reason: impl Into<String>,
    ) -> OktaError {
        let err = OktaError::InvalidResponse {
            method: call.method.to_string(),
            route: call.route.template,
            status: ex.status,
            request_id: ex.request_id.clone(),
            reason: reason.into(),
        };
        self.fail(call, err, Some(ex)).await
    }

    /// What an error answer that the call took as its answer (`not_found_ok`) means,
    /// as the error it would have been; nothing is logged.
    pub(crate) fn answer_error(&self, call: &Call, ex: &Exchange) -> OktaError {
        classify(ex.status, self.api_error(call, ex))
    }

    fn api_error(&self, call: &Call, ex: &Exchange) -> Box<OktaApiError> {
        Box::new(OktaApiError::from_answer(
            ex,
            call.method.as_str(),
            call.route.template,
            &|t| self.tokens.scrub(t),
        ))
    }

    /// A call's final failure: remember auth failures, write the error log row, log.
    async fn fail(&self, call: &Call, err: OktaError, ex: Option<&Exchange>) -> OktaError {
        if let OktaError::Auth(api) = &err {
            self.tokens.record_refusal(api);
        }
        tracing::warn!(error = %err, "Okta call failed");
        self.record(call, &err, ex, Disposition::Final).await;
        err
    }

    /// Records one error answer (or missing answer) in `iam_error_log`, coalesced with
    /// identical ones (a no-op without a store).
    async fn record(
        &self,
        call: &Call,
        err: &OktaError,
        ex: Option<&Exchange>,
        disposition: Disposition,
    ) {
        if let Some(log) = &self.error_log {
            if matches!(disposition, Disposition::Final) {
                CallContext::note_final_row();
            }
            let scrub = |t| self.tokens.scrub(t);
            log.record(occurrence(
                call,
                err,
                ex,
                disposition,
                self.retry.max_retries,
                &scrub,
            ))
            .await;
        }
    }
}
