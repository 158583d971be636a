//! One Okta call from start to finish: credentials, the governor, the HTTP exchange,
//! retries, the error log and tracing.
//!
//! Retry policy, and why:
//!
//! - **429**: wait `X-Rate-Limit-Reset − Date + 1 s` plus jitter, as all three official
//!   SDKs do (README §4.3), then retry. The bucket is closed for every caller until
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
//!
//! **Error log.** Every call that finally fails, and every 429 even when a retry then
//! succeeds, becomes an `iam_error_log` row: status (0 without an answer), Okta's
//! `errorCode`, `errorSummary` plus causes, and a trace with method, path, route,
//! `X-Okta-Request-Id`, attempt, rate-limit figures and the first 4 KB of the body.
//! Never request headers, and any known secret that somehow shows up is replaced
//! before the row is written. A failing log write is logged as a warning and never
//! fails the Okta call.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE, LINK};
use reqwest::{Method, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use tracing::field::Empty;
use tracing::Instrument;

use super::auth::{AuthFailure, CachedToken, Credential, OktaAuth, PrivateKeyJwt, TokenResponse};
use super::error::{OktaApiError, OktaError};
use super::governor::{server_date, Bucket, Governor, RateHeaders};
use crate::storage::{NewErrorLogEntry, Store};

/// A route template and the bucket Okta counts it in.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Route {
    pub template: &'static str,
    pub bucket: Bucket,
}

pub(crate) const USERS: Route = Route {
    template: "/api/v1/users",
    bucket: Bucket::UsersCreateList,
};
pub(crate) const USER_GET: Route = Route {
    template: "/api/v1/users/{id}",
    bucket: Bucket::UserGet,
};
pub(crate) const USER_UPDATE: Route = Route {
    template: "/api/v1/users/{id}",
    bucket: Bucket::UserWrite,
};
pub(crate) const USER_DEACTIVATE: Route = Route {
    template: "/api/v1/users/{id}/lifecycle/deactivate",
    bucket: Bucket::UserWrite,
};
pub(crate) const USER_GROUPS: Route = Route {
    template: "/api/v1/users/{id}/groups",
    bucket: Bucket::OtherApi,
};
pub(crate) const GROUP_MEMBERS: Route = Route {
    template: "/api/v1/groups/{groupId}/users",
    bucket: Bucket::Groups,
};
pub(crate) const GROUP_MEMBER: Route = Route {
    template: "/api/v1/groups/{groupId}/users/{userId}",
    bucket: Bucket::Groups,
};
const TOKEN: Route = Route {
    template: "/oauth2/v1/token",
    bucket: Bucket::OAuthToken,
};

/// One logical call (retries included).
pub(crate) struct Call {
    pub method: Method,
    pub route: Route,
    pub url: Url,
    pub body: Option<Vec<u8>>,
    /// A 404 `E0000007` (resource not found) is an answer, not a failure.
    pub not_found_ok: bool,
}

impl Call {
    pub(crate) fn new(method: Method, route: Route, url: Url) -> Self {
        Self {
            method,
            route,
            url,
            body: None,
            not_found_ok: false,
        }
    }

    pub(crate) fn json(mut self, body: &serde_json::Value) -> Self {
        self.body = Some(body.to_string().into_bytes());
        self
    }

    pub(crate) fn not_found_ok(mut self, yes: bool) -> Self {
        self.not_found_ok = yes;
        self
    }
}

/// One HTTP answer.
pub(crate) struct Exchange {
    pub method: String,
    /// Path and query of the request (never the host or headers).
    pub path: String,
    pub route: &'static str,
    pub status: u16,
    pub headers: HeaderMap,
    pub request_id: Option<String>,
    pub rate: Option<RateHeaders>,
    pub date: Option<u64>,
    pub body: Vec<u8>,
    pub attempt: u32,
}

enum Attempt {
    Answer(Exchange, Option<SecretString>),
    NoAnswer {
        timeout: bool,
        reason: String,
    },
    /// Getting an access token failed.
    CredentialFailed(OktaError, Option<Exchange>),
}

/// Retry knobs.
#[derive(Debug, Clone)]
pub(crate) struct Tunables {
    pub max_retries: u32,
    pub backoff: ExponentialBuilder,
    pub rate_limit_jitter: Duration,
    pub max_rate_limit_wait: Duration,
}

pub(crate) struct AuthState {
    pub auth: OktaAuth,
    token: tokio::sync::Mutex<Option<CachedToken>>,
    /// The access token in use, for scrubbing (the async cache may be locked).
    current_bearer: Mutex<Option<SecretString>>,
    pub last_failure: Mutex<Option<AuthFailure>>,
}

impl AuthState {
    pub(crate) fn new(auth: OktaAuth) -> Self {
        Self {
            auth,
            token: tokio::sync::Mutex::new(None),
            current_bearer: Mutex::new(None),
            last_failure: Mutex::new(None),
        }
    }

    fn is_oauth(&self) -> bool {
        matches!(self.auth, OktaAuth::PrivateKeyJwt(_))
    }

    /// Replaces any known secret in text that is about to be stored or logged.
    fn scrub(&self, mut text: String) -> String {
        let mut secrets: Vec<SecretString> = Vec::new();
        if let OktaAuth::ApiToken(t) = &self.auth {
            secrets.push(t.clone());
        }
        if let Some(b) = self.current_bearer.lock().unwrap().clone() {
            secrets.push(b);
        }
        for s in &secrets {
            let s = s.expose_secret();
            if s.len() >= 8 && text.contains(s) {
                text = text.replace(s, "[redacted]");
            }
        }
        text
    }
}

pub(crate) struct Inner {
    pub http: reqwest::Client,
    pub org: Url,
    pub governor: Arc<Governor>,
    pub auth: AuthState,
    pub error_log: Option<Arc<dyn Store>>,
    pub tunables: Tunables,
    pub page_size: u32,
    pub last_success: Mutex<Option<DateTime<Utc>>>,
}

/// Okta's error object, or the token endpoint's OAuth error; read leniently.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    #[serde(rename = "errorCode")]
    error_code: Option<String>,
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

fn error_body(body: &[u8]) -> ErrorBody {
    serde_json::from_slice(body).unwrap_or_default()
}

fn path_and_query(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

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
                            let note =
                                format!("{kind} limit; retrying in {:.1} s", wait.as_secs_f64());
                            self.write_row(call, &OktaError::RateLimited(api), Some(&ex), &note)
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
                        retries += 1;
                        retry_for = ex.request_id.clone();
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    let err = classify(ex.status, self.api_error(call, &ex));
                    return Err(self.fail(call, err, Some(&ex)).await);
                }
                Attempt::NoAnswer { timeout, reason } => {
                    if can_retry {
                        let delay = backoff_delay();
                        tracing::warn!(
                            timeout,
                            reason = %reason,
                            delay_ms = delay.as_millis() as u64,
                            "no answer from Okta; retrying"
                        );
                        retries += 1;
                        tokio::time::sleep(delay).await;
                        continue;
                    }
                    let method = call.method.to_string();
                    let route = call.route.template;
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

    /// One request: credentials, admission, the exchange.
    async fn attempt(&self, call: &Call, attempt: u32, retry_for: Option<&str>) -> Attempt {
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
    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
        method: &str,
        url: &Url,
        route: Route,
        attempt: u32,
    ) -> Result<Exchange, (bool, String)> {
        let response = request
            .send()
            .await
            .map_err(|e| (e.is_timeout(), describe(e)))?;
        let status = response.status().as_u16();
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

    // ---- credentials -------------------------------------------------------------

    async fn credential(&self) -> Result<Credential, (OktaError, Option<Exchange>)> {
        let invalid = |e: String| (OktaError::InvalidInput(e), None);
        let jwt = match &self.auth.auth {
            OktaAuth::ApiToken(token) => return Credential::new("SSWS", token).map_err(invalid),
            OktaAuth::PrivateKeyJwt(jwt) => jwt,
        };
        // Held across the fetch: one caller fetches, the others then find its token.
        let mut cache = self.auth.token.lock().await;
        if let Some(cached) = cache.as_ref().filter(|c| Instant::now() < c.refresh_at) {
            return Credential::new("Bearer", &cached.token).map_err(invalid);
        }
        let fresh = self.fetch_token(jwt).await?;
        *self.auth.current_bearer.lock().unwrap() = Some(fresh.token.clone());
        let credential = Credential::new("Bearer", &fresh.token).map_err(invalid)?;
        *cache = Some(fresh);
        Ok(credential)
    }

    async fn invalidate_token(&self, used: &SecretString) {
        let mut cache = self.auth.token.lock().await;
        if cache
            .as_ref()
            .is_some_and(|c| c.token.expose_secret() == used.expose_secret())
        {
            *cache = None;
        }
    }

    /// Client credentials with a `private_key_jwt` assertion (README §5).
    async fn fetch_token(
        &self,
        jwt: &PrivateKeyJwt,
    ) -> Result<CachedToken, (OktaError, Option<Exchange>)> {
        let span = tracing::info_span!("okta.token", status = Empty, request_id = Empty);
        async {
            let mut url = self.org.clone();
            url.set_path(TOKEN.template);
            let method = "POST".to_owned();
            let assertion = jwt.client_assertion(url.as_str()).map_err(|reason| {
                (
                    OktaError::InvalidInput(reason),
                    None::<Exchange>,
                )
            })?;
            let scopes = jwt.scopes.join(" ");
            let form = serde_urlencoded::to_string([
                ("grant_type", "client_credentials"),
                ("scope", scopes.as_str()),
                (
                    "client_assertion_type",
                    "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                ),
                ("client_assertion", assertion.as_str()),
            ])
            .expect("a form of strings encodes");
            let started = Instant::now();
            let _admission = self.governor.admit(TOKEN.bucket).await;
            let request = self
                .http
                .post(url.clone())
                .header(ACCEPT, "application/json")
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(form);
            let ex = match self.exchange(request, &method, &url, TOKEN, 1).await {
                Ok(ex) => ex,
                Err((timeout, reason)) => {
                    let err = if timeout {
                        OktaError::Timeout {
                            method,
                            route: TOKEN.template,
                            attempts: 1,
                        }
                    } else {
                        OktaError::Connection {
                            method,
                            route: TOKEN.template,
                            attempts: 1,
                            reason,
                        }
                    };
                    return Err((err, None));
                }
            };
            let span = tracing::Span::current();
            span.record("status", ex.status);
            if let Some(id) = &ex.request_id {
                span.record("request_id", id.as_str());
            }
            if (200..300).contains(&ex.status) {
                let parsed: TokenResponse = match serde_json::from_slice(&ex.body) {
                    Ok(t) => t,
                    Err(e) => {
                        let err = OktaError::InvalidResponse {
                            method,
                            route: TOKEN.template,
                            status: ex.status,
                            request_id: ex.request_id.clone(),
                            reason: format!("token response is not the expected JSON: {e}"),
                        };
                        return Err((err, Some(ex)));
                    }
                };
                let token_type = parsed.token_type.as_deref().unwrap_or("Bearer");
                if !token_type.eq_ignore_ascii_case("Bearer") {
                    let mut api = self.api_error_from(&ex, &method, TOKEN.template);
                    api.error_code = "unsupported_token_type".into();
                    api.summary = format!(
                        "the Okta app issues {token_type} tokens (DPoP?); efs-iam supports Bearer tokens only"
                    );
                    return Err((OktaError::Auth(Box::new(api)), Some(ex)));
                }
                tracing::debug!(expires_in = parsed.expires_in, "fetched an Okta access token");
                return Ok(CachedToken::new(
                    parsed.access_token,
                    parsed.expires_in,
                    started,
                ));
            }
            let api = self.api_error_from(&ex, &method, TOKEN.template);
            let err = match ex.status {
                429 => OktaError::RateLimited(Box::new(api)),
                s if s >= 500 => OktaError::Server(Box::new(api)),
                _ => OktaError::Auth(Box::new(api)),
            };
            Err((err, Some(ex)))
        }
        .instrument(span)
        .await
    }

    // ---- errors ------------------------------------------------------------------

    fn api_error(&self, call: &Call, ex: &Exchange) -> Box<OktaApiError> {
        Box::new(self.api_error_from(ex, call.method.as_str(), call.route.template))
    }

    fn api_error_from(&self, ex: &Exchange, method: &str, route: &'static str) -> OktaApiError {
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
    async fn fail(&self, call: &Call, err: OktaError, ex: Option<&Exchange>) -> OktaError {
        if let OktaError::Auth(api) = &err {
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
    pub(crate) async fn write_row(
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

    fn error_row(
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
        NewErrorLogEntry {
            message: Some(truncate_bytes(&message, MESSAGE_MAX_BYTES).to_owned()),
            status_code: ex.map_or(err.status(), |e| e.status) as i16,
            trace: Some(truncate_bytes(&trace, TRACE_MAX_BYTES).to_owned()),
            error_code: truncate_chars(&error_code, ERROR_CODE_MAX_CHARS).to_owned(),
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
        seen: &std::collections::HashSet<Url>,
    ) -> Result<Option<Url>, OktaError> {
        let Some(next) = next_link(&ex.headers) else {
            return Ok(None);
        };
        let url = match self.org.join(&next) {
            Ok(u) if u.origin() == self.org.origin() && !seen.contains(&u) => u,
            _ => {
                let err = OktaError::InvalidResponse {
                    method: call.method.to_string(),
                    route: call.route.template,
                    status: ex.status,
                    request_id: ex.request_id.clone(),
                    reason:
                        "the next-page link points outside the Okta org or back at the same page"
                            .into(),
                };
                return Err(self.fail(call, err, Some(ex)).await);
            }
        };
        Ok(Some(url))
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

fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The `rel="next"` target among all `Link` header lines (Okta sends `self` and `next`
/// as separate lines; a single line with both is handled too).
pub(crate) fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse_link_header)
        .find(|(_, rels)| rels.iter().any(|r| r.eq_ignore_ascii_case("next")))
        .map(|(url, _)| url)
}

/// `<url>; rel="a b", <url2>; rel=c` → `[(url, [a, b]), (url2, [c])]`. Commas inside
/// `<…>` or quotes do not split links.
fn parse_link_header(value: &str) -> Vec<(String, Vec<String>)> {
    let mut links = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        let Some(after_open) = rest.strip_prefix('<') else {
            break;
        };
        let Some(close) = after_open.find('>') else {
            break;
        };
        let url = after_open[..close].trim().to_owned();
        rest = &after_open[close + 1..];
        // Parameters run to the next comma outside quotes.
        let mut in_quotes = false;
        let end = rest
            .char_indices()
            .find(|(_, c)| {
                if *c == '"' {
                    in_quotes = !in_quotes;
                }
                *c == ',' && !in_quotes
            })
            .map_or(rest.len(), |(i, _)| i);
        let params = &rest[..end];
        rest = &rest[end..];
        let mut rels = Vec::new();
        for param in params.split(';') {
            if let Some((name, val)) = param.split_once('=') {
                if name.trim().eq_ignore_ascii_case("rel") {
                    rels.extend(
                        val.trim()
                            .trim_matches('"')
                            .split_whitespace()
                            .map(str::to_owned),
                    );
                }
            }
        }
        links.push((url, rels));
    }
    links
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn next_link_is_found_among_several_link_lines() {
        let mut h = HeaderMap::new();
        h.append(
            LINK,
            HeaderValue::from_static(
                "<https://o.example/api/v1/groups/00g1/users?limit=2>; rel=\"self\"",
            ),
        );
        h.append(
            LINK,
            HeaderValue::from_static(
                "<https://o.example/api/v1/groups/00g1/users?after=MjAwdW53bDA%3D&limit=2>; rel=\"next\"",
            ),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://o.example/api/v1/groups/00g1/users?after=MjAwdW53bDA%3D&limit=2")
        );
    }

    #[test]
    fn link_lists_on_one_line_and_odd_spacing() {
        let links = parse_link_header(
            "<https://x/a?q=1,2>; rel=\"self\", <https://x/b>;rel=next ,<https://x/c>; title=\"a, b\"; rel=\"prev last\"",
        );
        assert_eq!(links.len(), 3);
        assert_eq!(links[0].0, "https://x/a?q=1,2");
        assert_eq!(
            links[1],
            ("https://x/b".to_owned(), vec!["next".to_owned()])
        );
        assert_eq!(links[2].1, vec!["prev".to_owned(), "last".to_owned()]);
        let mut h = HeaderMap::new();
        h.append(
            LINK,
            HeaderValue::from_static("<https://x/a>; rel=\"self\""),
        );
        assert_eq!(next_link(&h), None);
    }

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
