//! Access tokens for OAuth 2.0 client credentials (`private_key_jwt`, see `auth.rs`):
//! fetched from the org authorization server, cached until shortly before they expire,
//! fetched by one caller at a time, dropped when Okta refuses one. Also what every
//! stored or logged text is scrubbed of.

use std::sync::Mutex;
use std::time::Instant;

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use secrecy::{ExposeSecret, SecretString};
use tracing::field::Empty;
use tracing::Instrument;

use super::auth::{AuthFailure, CachedToken, Credential, OktaAuth, PrivateKeyJwt, TokenResponse};
use super::call::{Exchange, Inner, TOKEN};
use super::error::OktaError;

pub(crate) struct AuthState {
    pub auth: OktaAuth,
    pub(super) token: tokio::sync::Mutex<Option<CachedToken>>,
    /// The access token in use, for scrubbing (the async cache may be locked).
    pub(super) current_bearer: Mutex<Option<SecretString>>,
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

    pub(super) fn is_oauth(&self) -> bool {
        matches!(self.auth, OktaAuth::PrivateKeyJwt(_))
    }

    /// Replaces any known secret in text that is about to be stored or logged.
    pub(super) fn scrub(&self, mut text: String) -> String {
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

impl Inner {
    pub(super) async fn credential(&self) -> Result<Credential, (OktaError, Option<Exchange>)> {
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

    pub(super) async fn invalidate_token(&self, used: &SecretString) {
        let mut cache = self.auth.token.lock().await;
        if cache
            .as_ref()
            .is_some_and(|c| c.token.expose_secret() == used.expose_secret())
        {
            *cache = None;
        }
    }

    /// Client credentials with a `private_key_jwt` assertion.
    pub(super) async fn fetch_token(
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
}
