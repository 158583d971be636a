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

    /// Replaces any known secret in text that is about to be stored or logged: the
    /// credentials in use, and the values of token fields an answer may carry.
    pub(super) fn scrub(&self, text: String) -> String {
        let mut text = redact_token_fields(&text);
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
pub(super) fn redact_token_fields(text: &str) -> String {
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
