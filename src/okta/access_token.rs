//! The `Authorization` of each Management API request: the API token as it is, or
//! (with a service app's `private_key_jwt` credential, `credentials.rs`) an OAuth 2.0
//! access token from the org authorization server, fetched with a fresh client
//! assertion, cached until shortly before it expires (a quarter of its lifetime, at most
//! a minute, early), fetched by one caller at a time (the others wait for its result
//! instead of stampeding the token endpoint), and dropped when Okta refuses it.
//! [`AccessTokens`] also remembers the last refusal (for `/sync/status`), the scopes
//! Okta granted (`scopes.rs`), and scrubs every secret it knows from text about to be
//! stored or logged.
//!
//! With DPoP (`dpop.rs`) a token request carries a proof, and Okta's `use_dpop_nonce`
//! challenge (400 with a `DPoP-Nonce` header: the first request of a process, and after
//! Okta rotates its nonce) is answered once with a new proof and a new client
//! assertion; it is routine, not a refusal. A token Okta issues as `DPoP` is sent as
//! `Authorization: DPoP <token>` with a proof per request.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::Method;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use tracing::field::Empty;
use tracing::Instrument;

use super::credentials::{Credential, OktaAuth, PrivateKeyJwt, Scheme};
use super::dpop::{Dpop, DpopMode};
use super::error::{OktaApiError, OktaError};
use super::exchange::{Exchange, Transport, TOKEN};
use super::governor::Governor;
use super::scopes::ScopeCheck;

/// Why no `Authorization` could be had, and the token endpoint's answer if there was one.
pub(crate) type AuthorizationError = (OktaError, Option<Exchange>);

/// The credential in use and the access token it brought.
pub(crate) struct AccessTokens {
    auth: OktaAuth,
    /// With a service app: its DPoP state.
    dpop: Option<Dpop>,
    cache: tokio::sync::Mutex<Option<CachedToken>>,
    /// The access token in use, for scrubbing (the async cache may be locked).
    current: Mutex<Option<SecretString>>,
    last_failure: Mutex<Option<AuthFailure>>,
    /// With a service app: the scopes asked for, granted and missing.
    scopes: Mutex<Option<ScopeCheck>>,
}

impl AccessTokens {
    pub(crate) fn new(auth: OktaAuth) -> Self {
        let (dpop, scopes) = match &auth {
            OktaAuth::PrivateKeyJwt(jwt) => {
                let check = ScopeCheck::new(&jwt.scopes, None);
                check.publish();
                (
                    Some(Dpop::new(jwt.dpop_mode, jwt.dpop_key.clone())),
                    Some(check),
                )
            }
            OktaAuth::ApiToken(_) => (None, None),
        };
        Self {
            auth,
            dpop,
            cache: tokio::sync::Mutex::new(None),
            current: Mutex::new(None),
            last_failure: Mutex::new(None),
            scopes: Mutex::new(scopes),
        }
    }

    /// The DPoP mode and whether proofs are on now (service apps only).
    pub(crate) fn dpop_state(&self) -> Option<(DpopMode, bool)> {
        self.dpop.as_ref().map(|d| (d.mode(), d.active()))
    }

    /// The scopes asked for, granted and missing (service apps only).
    pub(crate) fn scope_check(&self) -> Option<ScopeCheck> {
        self.scopes.lock().unwrap().clone()
    }

    /// The `DPoP` header for a Management API request sent with `credential`, made
    /// now (a new one for every attempt); `None` unless the token is DPoP-bound.
    pub(crate) fn api_proof(
        &self,
        method: &str,
        url: &reqwest::Url,
        credential: &Credential,
    ) -> Option<Result<reqwest::header::HeaderValue, String>> {
        let (Some(dpop), Scheme::Dpop, Some(token)) =
            (&self.dpop, credential.scheme, &credential.access_token)
        else {
            return None;
        };
        Some(
            dpop.api_proof(method, url, token.expose_secret())
                .and_then(|p| sensitive(&p)),
        )
    }

    /// `api_token` or `private_key_jwt`.
    pub(crate) fn kind(&self) -> &'static str {
        self.auth.kind()
    }

    pub(crate) fn is_oauth(&self) -> bool {
        matches!(self.auth, OktaAuth::PrivateKeyJwt(_))
    }

    /// The `Authorization` for the next request: the API token, the cached access
    /// token, or a new one (one caller fetches; the others then find its token).
    pub(crate) async fn authorization(
        &self,
        transport: &Transport,
        governor: &std::sync::Arc<Governor>,
    ) -> Result<Credential, AuthorizationError> {
        let invalid = |e: String| (OktaError::InvalidInput(e), None);
        let jwt = match &self.auth {
            OktaAuth::ApiToken(token) => {
                return Credential::new(Scheme::Ssws, token).map_err(invalid)
            }
            OktaAuth::PrivateKeyJwt(jwt) => jwt,
        };
        // Held across the fetch: one caller fetches, the others then find its token.
        let mut cache = self.cache.lock().await;
        if let Some(cached) = cache.as_ref().filter(|c| Instant::now() < c.refresh_at) {
            return Credential::new(cached.scheme, &cached.token).map_err(invalid);
        }
        let fresh = self.fetch(jwt, transport, governor).await?;
        *self.current.lock().unwrap() = Some(fresh.token.clone());
        let credential = Credential::new(fresh.scheme, &fresh.token).map_err(invalid)?;
        *cache = Some(fresh);
        Ok(credential)
    }

    /// Drops `used` from the cache (Okta refused it), unless another caller has
    /// replaced it already.
    pub(crate) async fn drop_token(&self, used: &SecretString) {
        let mut cache = self.cache.lock().await;
        if cache
            .as_ref()
            .is_some_and(|c| c.token.expose_secret() == used.expose_secret())
        {
            *cache = None;
        }
    }

    /// Remembers that Okta refused efs-iam's credentials (for `/sync/status`).
    pub(crate) fn record_refusal(&self, api: &OktaApiError) {
        metrics::counter!("efs_iam_okta_auth_failures_total").increment(1);
        *self.last_failure.lock().unwrap() = Some(AuthFailure {
            at: Utc::now(),
            status: api.status,
            error_code: api.error_code.clone(),
            message: api.summary.clone(),
        });
    }

    /// The last time Okta refused the credentials, if ever.
    pub(crate) fn last_failure(&self) -> Option<AuthFailure> {
        self.last_failure.lock().unwrap().clone()
    }

    /// Replaces any known secret in text that is about to be stored or logged: the
    /// credentials in use, and the values of token fields an answer may carry.
    pub(crate) fn scrub(&self, text: String) -> String {
        let mut text = redact_token_fields(&text);
        let mut secrets: Vec<SecretString> = Vec::new();
        if let OktaAuth::ApiToken(t) = &self.auth {
            secrets.push(t.clone());
        }
        if let Some(b) = self.current.lock().unwrap().clone() {
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

    /// Client credentials with a `private_key_jwt` assertion (and a DPoP proof when
    /// proofs are on). At most three exchanges: one, a second after Okta asks for DPoP
    /// (`auto`), a third after a nonce challenge; each with a new assertion and proof.
    async fn fetch(
        &self,
        jwt: &PrivateKeyJwt,
        transport: &Transport,
        governor: &std::sync::Arc<Governor>,
    ) -> Result<CachedToken, AuthorizationError> {
        let span = tracing::info_span!(
            "okta.token",
            status = Empty,
            request_id = Empty,
            dpop = Empty
        );
        async {
            let mut url = transport.org().clone();
            url.set_path(TOKEN.template);
            let mut nonce_retried = false;
            loop {
                let dpop = self.dpop.as_ref().filter(|d| d.active());
                let (ex, started) = self.token_exchange(jwt, dpop, &url, transport, governor).await?;
                let span = tracing::Span::current();
                span.record("status", ex.status);
                span.record("dpop", dpop.is_some());
                if let Some(id) = &ex.request_id {
                    span.record("request_id", id.as_str());
                }
                let nonce = ex
                    .headers
                    .get("dpop-nonce")
                    .and_then(|v| v.to_str().ok())
                    .filter(|n| !n.is_empty() && n.len() <= 512);
                if let (Some(d), Some(n)) = (&self.dpop, nonce) {
                    d.remember_nonce(n);
                }
                if (200..300).contains(&ex.status) {
                    return self.accept(ex, dpop.is_some(), started);
                }
                let mut api = self.api_error(&ex, "POST");
                if ex.status == 400 && api.error_code == "use_dpop_nonce" {
                    if dpop.is_some() && nonce.is_some() && !nonce_retried {
                        nonce_retried = true;
                        tracing::debug!("Okta asked for a DPoP nonce; asking again with it");
                        continue;
                    }
                } else if ex.status == 400 && api.error_code == "invalid_dpop_proof" {
                    if dpop.is_none() && self.dpop.as_ref().is_some_and(Dpop::turn_on) {
                        tracing::info!(
                            "the Okta service app requires DPoP; efs-iam sends proofs from now on"
                        );
                        continue;
                    }
                    if self.dpop.as_ref().is_some_and(|d| d.mode() == DpopMode::Off) {
                        api.summary.push_str(
                            " (EFS_IAM_OKTA_DPOP=off, but the Okta app requires DPoP: set auto or on)",
                        );
                    }
                }
                let err = match ex.status {
                    429 => OktaError::RateLimited(Box::new(api)),
                    s if s >= 500 => OktaError::Server(Box::new(api)),
                    _ => OktaError::Auth(Box::new(api)),
                };
                return Err((err, Some(ex)));
            }
        }
        .instrument(span)
        .await
    }

    /// One token request: a fresh client assertion, and a fresh proof with `dpop`.
    async fn token_exchange(
        &self,
        jwt: &PrivateKeyJwt,
        dpop: Option<&Dpop>,
        url: &reqwest::Url,
        transport: &Transport,
        governor: &std::sync::Arc<Governor>,
    ) -> Result<(Exchange, Instant), AuthorizationError> {
        let invalid = |reason: String| (OktaError::InvalidInput(reason), None::<Exchange>);
        let method = "POST".to_owned();
        let assertion = jwt.client_assertion(url.as_str()).map_err(invalid)?;
        let proof = dpop
            .map(|d| d.token_proof(url))
            .transpose()
            .map_err(invalid)?;
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
        let _admission = governor.admit(TOKEN.bucket).await;
        let mut request = transport
            .request(Method::POST, url.clone())
            .header(ACCEPT, "application/json")
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form);
        if let Some(proof) = proof {
            request = request.header("DPoP", sensitive(&proof).map_err(invalid)?);
        }
        match transport
            .send(governor, request, &method, url, TOKEN, 1)
            .await
        {
            Ok(ex) => Ok((ex, started)),
            Err(no) => {
                let err = OktaError::no_answer(method, TOKEN.template, 1, no.timeout, no.reason);
                Err((err, None))
            }
        }
    }

    /// A token answer: the token, how to present it, and the scopes Okta granted.
    // The error is `fetch`'s own, which every one of its paths returns.
    #[allow(clippy::result_large_err)]
    fn accept(
        &self,
        ex: Exchange,
        proof_sent: bool,
        started: Instant,
    ) -> Result<CachedToken, AuthorizationError> {
        let parsed: TokenResponse = match serde_json::from_slice(&ex.body) {
            Ok(t) => t,
            Err(e) => {
                let err = OktaError::InvalidResponse {
                    method: "POST".into(),
                    route: TOKEN.template,
                    status: ex.status,
                    request_id: ex.request_id.clone(),
                    reason: format!("token response is not the expected JSON: {e}"),
                };
                return Err((err, Some(ex)));
            }
        };
        let token_type = parsed.token_type.as_deref().unwrap_or("Bearer");
        let scheme = if token_type.eq_ignore_ascii_case("Bearer") {
            Scheme::Bearer
        } else if token_type.eq_ignore_ascii_case("DPoP") && proof_sent {
            Scheme::Dpop
        } else {
            let mut api = self.api_error(&ex, "POST");
            api.error_code = "unsupported_token_type".into();
            api.summary = format!(
                "the Okta app issued a {token_type:?} token, which efs-iam cannot present (Bearer, or DPoP after a proof)"
            );
            return Err((OktaError::Auth(Box::new(api)), Some(ex)));
        };
        if let (Some(granted), Some(jwt)) = (&parsed.scope, self.jwt()) {
            let granted: Vec<String> = granted.split_whitespace().map(str::to_owned).collect();
            let check = ScopeCheck::new(&jwt.scopes, Some(&granted));
            let mut current = self.scopes.lock().unwrap();
            if current.as_ref().and_then(|c| c.granted.as_ref()) != Some(&granted) {
                tracing::info!(granted = %granted.join(" "), "Okta granted scopes");
                check.publish();
            }
            *current = Some(check);
        }
        tracing::debug!(
            expires_in = parsed.expires_in,
            token_type,
            "fetched an Okta access token"
        );
        Ok(CachedToken::new(
            parsed.access_token,
            scheme,
            parsed.expires_in,
            started,
        ))
    }

    fn jwt(&self) -> Option<&PrivateKeyJwt> {
        match &self.auth {
            OktaAuth::PrivateKeyJwt(jwt) => Some(jwt),
            OktaAuth::ApiToken(_) => None,
        }
    }

    fn api_error(&self, ex: &Exchange, method: &str) -> OktaApiError {
        OktaApiError::from_answer(ex, method, TOKEN.template, &|t| self.scrub(t))
    }
}

/// A header value hidden from debug output (a proof is a credential while it is fresh).
pub(crate) fn sensitive(value: &str) -> Result<reqwest::header::HeaderValue, String> {
    let mut v = reqwest::header::HeaderValue::from_str(value)
        .map_err(|_| "a DPoP proof with characters not allowed in a header".to_owned())?;
    v.set_sensitive(true);
    Ok(v)
}

/// The org authorization server's token answer (`access_token`, `token_type`,
/// `expires_in`, `scope`); unknown fields are ignored.
#[derive(Deserialize)]
struct TokenResponse {
    pub access_token: String,
    #[serde(default)]
    pub token_type: Option<String>,
    #[serde(default)]
    pub expires_in: Option<u64>,
    #[serde(default)]
    pub scope: Option<String>,
}

/// An access token, how it is presented, and when to stop using it.
#[derive(Clone)]
pub(crate) struct CachedToken {
    pub token: SecretString,
    pub scheme: Scheme,
    pub refresh_at: Instant,
}

impl CachedToken {
    pub(crate) fn new(
        token: String,
        scheme: Scheme,
        expires_in: Option<u64>,
        received: Instant,
    ) -> Self {
        // Okta fixes the lifetime at an hour; python's SDK assumes that when it is missing.
        // Whatever the answer says, a token is not kept past a day (and a nonsensical
        // `expires_in` cannot overflow the clock).
        let lifetime = Duration::from_secs(expires_in.unwrap_or(3600).min(MAX_TOKEN_LIFETIME));
        let early = (lifetime / 4).min(Duration::from_secs(60));
        Self {
            token: SecretString::from(token),
            scheme,
            refresh_at: received + lifetime - early,
        }
    }
}

/// The longest an access token is cached, in seconds.
const MAX_TOKEN_LIFETIME: u64 = 24 * 3600;

/// The last time Okta refused efs-iam's credentials, for `/sync/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthFailure {
    pub at: DateTime<Utc>,
    /// HTTP status (401 for the Management API; 400/401 from the token endpoint).
    pub status: u16,
    /// `E0000011`, or the OAuth `error` such as `invalid_client`.
    pub error_code: String,
    pub message: String,
}

/// Fields of a token endpoint's answer whose values are credentials.
const TOKEN_FIELDS: [&str; 5] = [
    "access_token",
    "id_token",
    "refresh_token",
    "device_secret",
    "client_assertion",
];

/// `text` with the string value of every [`TOKEN_FIELDS`] member replaced by
/// `[redacted]`, wherever it stands (JSON `"field": "…"` or a form's `field=…`), so an
/// answer from Okta's token endpoint, well-formed or not, can be logged.
fn redact_token_fields(text: &str) -> String {
    let mut out = text.to_owned();
    for field in TOKEN_FIELDS {
        let mut from = 0;
        while let Some(found) = out[from..].find(field) {
            let start = from + found + field.len();
            let rest = &out[start..];
            // JSON: optional closing quote of the name, blanks, a colon, blanks, a quote.
            let after_name = rest.strip_prefix('"').unwrap_or(rest);
            let value_start = if let Some(v) = after_name.trim_start().strip_prefix(':') {
                let v = v.trim_start();
                v.strip_prefix('"')
                    .map(|value| (value, true))
                    .map(|(value, quoted)| (out.len() - value.len(), quoted))
            } else {
                rest.strip_prefix('=')
                    .map(|value| (out.len() - value.len(), false))
            };
            let Some((value_start, quoted)) = value_start else {
                from = start;
                continue;
            };
            let value = &out[value_start..];
            let len = if quoted {
                let mut escaped = false;
                value
                    .char_indices()
                    .find(|&(_, c)| {
                        let end = c == '"' && !escaped;
                        escaped = c == '\\' && !escaped;
                        end
                    })
                    .map_or(value.len(), |(i, _)| i)
            } else {
                value.find(['&', ' ', '\n']).unwrap_or(value.len())
            };
            out.replace_range(value_start..value_start + len, "[redacted]");
            from = value_start + "[redacted]".len();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_renewed_before_they_expire() {
        let now = Instant::now();
        let hour = CachedToken::new("t".into(), Scheme::Bearer, Some(3600), now);
        assert_eq!(hour.refresh_at, now + Duration::from_secs(3540));
        let short = CachedToken::new("t".into(), Scheme::Bearer, Some(2), now);
        assert_eq!(short.refresh_at, now + Duration::from_millis(1500));
        let missing = CachedToken::new("t".into(), Scheme::Bearer, None, now);
        assert_eq!(missing.refresh_at, now + Duration::from_secs(3540));
        let absurd = CachedToken::new("t".into(), Scheme::Bearer, Some(u64::MAX), now);
        assert_eq!(absurd.refresh_at, now + Duration::from_secs(24 * 3600 - 60));
    }

    #[test]
    fn token_values_are_redacted_wherever_they_stand() {
        let json = r#"{"token_type":"Bearer","access_token" : "eyA.b\"c","id_token":"eyID","expires_in":3600}"#;
        let out = redact_token_fields(json);
        assert_eq!(
            out,
            r#"{"token_type":"Bearer","access_token" : "[redacted]","id_token":"[redacted]","expires_in":3600}"#
        );
        let cut = redact_token_fields(r#"{"refresh_token":"unterminated"#);
        assert!(!cut.contains("unterminated"), "{cut}");
        let form = redact_token_fields("grant_type=x&client_assertion=eyJ.secret&scope=a");
        assert_eq!(form, "grant_type=x&client_assertion=[redacted]&scope=a");
        assert_eq!(redact_token_fields("no tokens here"), "no tokens here");
        assert_eq!(redact_token_fields("access_token"), "access_token");
    }
}
