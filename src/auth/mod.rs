//! Caller authentication and authorization. Every `/api/v1` operation needs a bearer
//! JWT signed with a configured key; what it may do comes from its `scope` claim.
//!
//! Keys come from three settings, usable together: an HS256 shared secret, public-key
//! PEM files, and a JWKS URL (the caller's identity provider; cached, refetched on an
//! unknown `kid`, see [`crate::jwks`]). A JWKS key is found only by the token's `kid`;
//! a token without `kid` is checked against the secret and the PEM keys. Each key is
//! pinned to one algorithm (HS256 for the shared secret, RS256 or ES256 for a public
//! key), so `alg: none`, HS/RS confusion and unlisted algorithms can never select a
//! key. A token that passed is remembered, by its exact text, for at most
//! [`VERIFIED_FOR`] (see [`Authenticator::verify`]). The operation → scope mapping is one function
//! ([`required_scope`]) used both by the middleware and by the OpenAPI document, so
//! the spec shows exactly what is enforced, and a new endpoint gets a scope by rule.

mod settings;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

pub use settings::AuthSettings;

use crate::jwks::{JwksCache, JwksError, JwksOptions};

/// What a caller may do. Tokens carry them space-separated in `scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Lookups and the error log.
    Read,
    /// Settings, references, error-log writes, enqueueing unassignments.
    Write,
    /// Okta sync triggers, jobs, reconciliation.
    Sync,
    /// The session-token endpoints, and only those.
    Tokens,
    /// The decisions about trust and about whose Okta identity efs-iam manages:
    /// writing and deleting the trust settings (`okta_issuer`, `okta_client_id`,
    /// `okta_group_id`, `reconcile_mode`; with `iam:write`), adopting Okta users, and
    /// repairing a reconciliation (with `iam:sync`).
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 5] = [
        Scope::Read,
        Scope::Write,
        Scope::Sync,
        Scope::Tokens,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "iam:read",
            Scope::Write => "iam:write",
            Scope::Sync => "iam:sync",
            Scope::Tokens => "iam:tokens",
            Scope::Admin => "iam:admin",
        }
    }
}

/// The scope an operation needs, from its method and route template (as matched,
/// e.g. `/api/v1/sessions/{session_id}/token`). Session tokens are kept apart so a
/// token-only caller (the login flow) can touch nothing else, and nothing else can
/// read tokens without `iam:tokens`.
pub fn required_scope(method: &axum::http::Method, route: &str) -> Scope {
    let path = route.strip_prefix("/api/v1").unwrap_or(route);
    if path.starts_with("/sessions/")
        || (path.starts_with("/okta-users/") && path.ends_with("/sessions"))
    {
        Scope::Tokens
    } else if path.starts_with("/sync/") {
        Scope::Sync
    } else if method == axum::http::Method::GET || method == axum::http::Method::HEAD {
        Scope::Read
    } else if path.starts_with("/adoptions")
        || path.ends_with("/management")
        || path.ends_with("/event-watermarks")
    {
        // Bringing an Okta user under efs-iam's management is an admin's decision, and
        // so is overriding which of its Okta events count as newest.
        Scope::Admin
    } else {
        Scope::Write
    }
}

/// The route of a reconciliation; a repair (`dry_run=false`) may remove members from
/// the portal's group, and needs [`Scope::Admin`] on top of [`required_scope`].
pub const RECONCILE_ROUTE: &str = "/api/v1/sync/portals/{portal_id}/reconcile";

/// The scope a reconciliation with this query needs beyond `iam:sync`: `iam:admin`
/// for a repair (`dry_run=false`), whatever the portal's `reconcile_mode`.
pub fn reconcile_scope(query: Option<&str>) -> Option<Scope> {
    let repair = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .any(|(k, v)| k == "dry_run" && v.eq_ignore_ascii_case("false"));
    repair.then_some(Scope::Admin)
}

/// The route of one portal setting; writing or deleting it may need [`Scope::Admin`]
/// on top of [`required_scope`] (see [`setting_scope`]).
pub const SETTING_ROUTE: &str = "/api/v1/portals/{portal_id}/settings/{key}";

/// The operations that write or delete portal settings, where the keys decide whether
/// [`setting_scope`] applies: the single-key PUT and DELETE, and the bulk PUT.
pub fn writes_portal_settings(method: &axum::http::Method, route: &str) -> bool {
    use axum::http::Method;
    (route == SETTING_ROUTE && (method == Method::PUT || method == Method::DELETE))
        || (route == "/api/v1/portals/{portal_id}/settings" && method == Method::PUT)
}

/// The scope writing or deleting the portal setting `key` needs beyond `iam:write`:
/// `iam:admin` for the trust settings, in whatever case the key is spelled.
pub fn setting_scope(key: &crate::domain::SettingKey) -> Option<Scope> {
    key.is_trust_setting().then_some(Scope::Admin)
}

/// The verified caller, attached to the request for handlers and the audit log.
#[derive(Debug, Clone)]
pub struct Caller {
    pub subject: String,
    pub scopes: Vec<String>,
}

impl Caller {
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.iter().any(|s| s == scope.as_str())
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    iss: String,
    aud: serde_json::Value,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nbf: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    iat: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jti: Option<String>,
}

/// Why a token was refused. Shown to the caller in the problem detail and in
/// `WWW-Authenticate`; never contains the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("the Authorization header is not a Bearer token")]
    WrongScheme,
    #[error("malformed token")]
    Malformed,
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    #[error("the token names an unknown key (kid)")]
    UnknownKey,
    #[error("invalid signature")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("wrong issuer")]
    Issuer,
    #[error("wrong audience")]
    Audience,
    #[error("token invalid: {0}")]
    Invalid(String),
    /// The JWKS could not be fetched: not the caller's fault, answered with 503.
    #[error("the caller keys (JWKS) cannot be fetched right now")]
    KeysUnavailable,
}

struct VerifyingKey {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// The longest caller `sub` accepted: it is stored as who asked for a purge or an
/// adoption (`VARCHAR(255)` columns), and a longer one would be cut or refused there.
pub const SUBJECT_MAX_CHARS: usize = 255;

/// How long a verified token is taken on trust before its signature is checked again:
/// bounds how long a key removed from the caller JWKS keeps being honoured for tokens
/// already seen.
pub const VERIFIED_FOR: Duration = Duration::from_secs(60);
/// Distinct tokens remembered. Callers reuse one token per process; only tokens that
/// passed are kept, so bad tokens cannot crowd out good ones.
const VERIFIED_CAPACITY: usize = 1024;

/// A token that passed: who it names, until when it is valid, when it was checked.
#[derive(Clone)]
struct Verified {
    caller: Arc<Caller>,
    exp: u64,
    checked: Instant,
}

/// The keys and rules a token is checked against. `None` keys = development mode
/// (see [`AuthSettings::check_listen`]).
pub struct Authenticator {
    keys: Vec<VerifyingKey>,
    jwks: Option<(String, JwksCache)>,
    issuer: String,
    audience: String,
    leeway: Duration,
    verified: quick_cache::sync::Cache<Box<str>, Verified>,
}

impl Authenticator {
    /// `Ok(None)` when no key is configured.
    pub fn from_settings(
        s: &AuthSettings,
        jwks_options: JwksOptions,
    ) -> anyhow::Result<Option<Self>> {
        let mut keys = Vec::new();
        if let Some(secret) = &s.hs256_secret {
            keys.push(VerifyingKey {
                kid: None,
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(secret.expose_secret().as_bytes()),
            });
        }
        for entry in &s.public_keys {
            let (kid, path) = match entry.split_once('=') {
                Some((kid, path)) => (Some(kid.to_owned()), path),
                None => (None, entry.as_str()),
            };
            let pem = std::fs::read(path).map_err(|e| {
                anyhow::anyhow!("EFS_IAM_AUTH_PUBLIC_KEYS: cannot read {path}: {e}")
            })?;
            let (algorithm, key) = if let Ok(k) = DecodingKey::from_rsa_pem(&pem) {
                (Algorithm::RS256, k)
            } else if let Ok(k) = DecodingKey::from_ec_pem(&pem) {
                (Algorithm::ES256, k)
            } else {
                anyhow::bail!(
                    "EFS_IAM_AUTH_PUBLIC_KEYS: {path} is not an RSA or EC public key in PEM"
                );
            };
            keys.push(VerifyingKey {
                kid,
                algorithm,
                key,
            });
        }
        let jwks = match s.jwks_url.as_deref().filter(|u| !u.is_empty()) {
            Some(url) => Some((url.to_owned(), JwksCache::new(jwks_options)?)),
            None => None,
        };
        if keys.is_empty() && jwks.is_none() {
            return Ok(None);
        }
        let issuer = s.issuer.clone().ok_or_else(|| {
            anyhow::anyhow!("EFS_IAM_AUTH_ISSUER is required when auth keys are set")
        })?;
        let audience = s.audience.clone().ok_or_else(|| {
            anyhow::anyhow!("EFS_IAM_AUTH_AUDIENCE is required when auth keys are set")
        })?;
        Ok(Some(Self {
            keys,
            jwks,
            issuer,
            audience,
            leeway: s.leeway,
            verified: quick_cache::sync::Cache::new(VERIFIED_CAPACITY),
        }))
    }

    /// Fetches the JWKS (when configured) so the first call does not wait for it; a
    /// failure is logged, not fatal: the provider may be back before the first call.
    pub async fn prefetch_keys(&self) {
        if let Some((url, cache)) = &self.jwks {
            match cache.prefetch(url).await {
                Ok(n) => tracing::info!(keys = n, "caller JWKS loaded"),
                Err(e) => {
                    tracing::warn!(error = %e, "caller JWKS not loaded; retried on first use")
                }
            }
        }
    }

    /// Checks a bearer token. EFS-Admin sends the same token with many calls, and the
    /// full check (signature, base64 and JSON of header and claims) is a visible part
    /// of a reference lookup's cost (BENCHMARKS.md), so a token that passed is
    /// remembered by its exact text: a hit re-checks only `exp`, which is all that can
    /// change for the same bytes; any other text, even one byte off, is checked in
    /// full. Entries are checked again after [`VERIFIED_FOR`].
    pub async fn verify(&self, token: &str) -> Result<Arc<Caller>, AuthError> {
        self.verify_at(token, unix_now(), Instant::now()).await
    }

    async fn verify_at(
        &self,
        token: &str,
        now: u64,
        now_instant: Instant,
    ) -> Result<Arc<Caller>, AuthError> {
        if let Some(hit) = self.verified.get(token) {
            if now > hit.exp.saturating_add(self.leeway.as_secs()) {
                self.verified.remove(token);
                return Err(AuthError::Expired);
            }
            if now_instant.saturating_duration_since(hit.checked) < VERIFIED_FOR {
                return Ok(hit.caller);
            }
        }
        let (caller, exp) = self.verify_in_full(token).await?;
        let caller = Arc::new(caller);
        self.verified.insert(
            token.into(),
            Verified {
                caller: caller.clone(),
                exp,
                checked: now_instant,
            },
        );
        Ok(caller)
    }

    /// The full check; on success the caller and the token's `exp`.
    async fn verify_in_full(&self, token: &str) -> Result<(Caller, u64), AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Malformed)?;
        let from_jwks;
        let candidates: Vec<&VerifyingKey> = match &header.kid {
            Some(kid) => {
                let by_kid: Vec<_> = self
                    .keys
                    .iter()
                    .filter(|k| k.kid.as_deref() == Some(kid.as_str()))
                    .collect();
                if !by_kid.is_empty() {
                    by_kid
                } else {
                    let Some((url, cache)) = &self.jwks else {
                        return Err(AuthError::UnknownKey);
                    };
                    let k = cache.key(url, kid).await.map_err(|e| match e {
                        JwksError::UnknownKid { .. } => AuthError::UnknownKey,
                        JwksError::Unavailable(reason) => {
                            tracing::warn!(%reason, "caller JWKS unavailable");
                            AuthError::KeysUnavailable
                        }
                    })?;
                    from_jwks = VerifyingKey {
                        kid: Some(kid.clone()),
                        algorithm: k.algorithm,
                        key: k.key,
                    };
                    vec![&from_jwks]
                }
            }
            None => self.keys.iter().filter(|k| k.kid.is_none()).collect(),
        };
        let pinned: Vec<_> = candidates
            .into_iter()
            .filter(|k| k.algorithm == header.alg)
            .collect();
        if pinned.is_empty() {
            return Err(AuthError::Algorithm);
        }
        let mut last = AuthError::Signature;
        for key in pinned {
            let mut validation = Validation::new(key.algorithm);
            validation.set_issuer(&[&self.issuer]);
            validation.set_audience(&[&self.audience]);
            // Every call is audited under its caller's `sub`: a token without one
            // names nobody and is refused.
            validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
            validation.validate_nbf = true;
            validation.leeway = self.leeway.as_secs();
            match jsonwebtoken::decode::<Claims>(token, &key.key, &validation) {
                Ok(data) => {
                    let claims = data.claims;
                    let subject = claims.sub.unwrap_or_default();
                    if subject.trim().is_empty() {
                        return Err(AuthError::Invalid("the sub claim is empty".into()));
                    }
                    if subject.chars().count() > SUBJECT_MAX_CHARS {
                        return Err(AuthError::Invalid(format!(
                            "the sub claim is longer than {SUBJECT_MAX_CHARS} characters"
                        )));
                    }
                    let caller = Caller {
                        subject,
                        scopes: claims
                            .scope
                            .unwrap_or_default()
                            .split_whitespace()
                            .map(str::to_owned)
                            .collect(),
                    };
                    return Ok((caller, claims.exp));
                }
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind as K;
                    last = match e.kind() {
                        K::InvalidSignature => AuthError::Signature,
                        K::ExpiredSignature => return Err(AuthError::Expired),
                        K::ImmatureSignature => return Err(AuthError::NotYetValid),
                        K::InvalidIssuer => return Err(AuthError::Issuer),
                        K::InvalidAudience => return Err(AuthError::Audience),
                        K::InvalidAlgorithm => AuthError::Algorithm,
                        K::MissingRequiredClaim(c) => {
                            return Err(AuthError::Invalid(format!("missing claim {c}")))
                        }
                        K::Json(_) | K::Base64(_) | K::InvalidToken | K::Utf8(_) => {
                            return Err(AuthError::Malformed)
                        }
                        _ => AuthError::Invalid("rejected".into()),
                    };
                }
            }
        }
        Err(last)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Mints an HS256 token for operators and tests (`efs-iam token`).
pub fn mint_hs256(
    secret: &SecretString,
    issuer: &str,
    audience: &str,
    subject: &str,
    scopes: &[&str],
    ttl: Duration,
) -> anyhow::Result<String> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let claims = Claims {
        sub: Some(subject.to_owned()),
        scope: Some(scopes.join(" ")),
        iss: issuer.to_owned(),
        aud: serde_json::Value::String(audience.to_owned()),
        exp: now + ttl.as_secs(),
        nbf: None,
        iat: Some(now),
        jti: Some(uuid::Uuid::new_v4().to_string()),
    };
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret.expose_secret().as_bytes()),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Method;

    const SECRET: &str = "a-test-secret-of-at-least-32-bytes-long";

    fn hs256(secret: &str) -> Authenticator {
        Authenticator {
            keys: vec![VerifyingKey {
                kid: None,
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(secret.as_bytes()),
            }],
            jwks: None,
            issuer: "iss".into(),
            audience: "aud".into(),
            leeway: Duration::from_secs(5),
            verified: quick_cache::sync::Cache::new(VERIFIED_CAPACITY),
        }
    }

    fn token(ttl: Duration) -> String {
        let secret = SecretString::from(SECRET);
        mint_hs256(&secret, "iss", "aud", "efs-admin", &["iam:read"], ttl).unwrap()
    }

    #[tokio::test]
    async fn a_remembered_token_still_expires() {
        let auth = hs256(SECRET);
        let t = token(Duration::from_secs(100));
        let (now, at) = (unix_now(), Instant::now());
        let caller = auth.verify_at(&t, now, at).await.unwrap();
        assert_eq!(caller.subject, "efs-admin");
        assert!(caller.has(Scope::Read) && !caller.has(Scope::Write));
        // Within the leeway after exp: still valid; past it: expired, though the
        // signature is not checked again.
        assert!(auth.verify_at(&t, now + 104, at).await.is_ok());
        assert_eq!(
            auth.verify_at(&t, now + 106, at).await.unwrap_err(),
            AuthError::Expired
        );
    }

    #[tokio::test]
    async fn only_the_exact_text_is_remembered_and_only_for_a_while() {
        let mut auth = hs256(SECRET);
        let t = token(Duration::from_secs(600));
        let (now, at) = (unix_now(), Instant::now());
        auth.verify_at(&t, now, at).await.unwrap();
        // One character of the signature changed: checked in full, refused.
        let mut forged = t.clone().into_bytes();
        let i = forged.len() - 10;
        forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        assert_eq!(
            auth.verify_at(&forged, now, at).await.unwrap_err(),
            AuthError::Signature
        );

        // The key is replaced: the remembered token is honoured until VERIFIED_FOR
        // has passed, then checked again, against the new key, and refused.
        auth.keys = hs256("another-secret-of-at-least-32-bytes-long").keys;
        let soon = at + VERIFIED_FOR - Duration::from_secs(1);
        assert!(auth.verify_at(&t, now, soon).await.is_ok());
        let later = at + VERIFIED_FOR + Duration::from_secs(1);
        assert_eq!(
            auth.verify_at(&t, now, later).await.unwrap_err(),
            AuthError::Signature
        );
    }

    #[test]
    fn scopes_by_rule() {
        assert_eq!(
            required_scope(&Method::GET, "/api/v1/portals/{portal_id}/settings"),
            Scope::Read
        );
        assert_eq!(
            required_scope(&Method::PUT, "/api/v1/portals/{portal_id}/settings"),
            Scope::Write
        );
        assert_eq!(
            required_scope(&Method::POST, "/api/v1/errors"),
            Scope::Write
        );
        assert_eq!(
            required_scope(&Method::GET, "/api/v1/sessions/{session_id}/token"),
            Scope::Tokens
        );
        assert_eq!(
            required_scope(
                &Method::DELETE,
                "/api/v1/okta-users/{okta_user_id}/sessions"
            ),
            Scope::Tokens
        );
        assert_eq!(
            required_scope(&Method::GET, "/api/v1/okta-users/{okta_user_id}/references"),
            Scope::Read
        );
        assert_eq!(
            required_scope(&Method::POST, "/api/v1/sync/users/{user_id}"),
            Scope::Sync
        );
        assert_eq!(
            required_scope(&Method::GET, "/api/v1/sync/status"),
            Scope::Sync
        );
        assert_eq!(
            required_scope(
                &Method::DELETE,
                "/api/v1/okta-users/{okta_user_id}/event-watermarks"
            ),
            Scope::Admin
        );
    }
}

/// Whatever a caller puts in a token's header and claims, verification answers with a
/// caller or an error, never a panic; a caller's scopes are words of its `scope`.
#[cfg(test)]
mod properties {
    use super::*;
    use base64::Engine;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    const SECRET: &str = "a-test-secret-of-at-least-32-bytes-long";

    fn authenticator() -> Authenticator {
        Authenticator {
            keys: vec![VerifyingKey {
                kid: None,
                algorithm: Algorithm::HS256,
                key: DecodingKey::from_secret(SECRET.as_bytes()),
            }],
            jwks: None,
            issuer: "iss".into(),
            audience: "aud".into(),
            leeway: Duration::from_secs(5),
            verified: quick_cache::sync::Cache::new(VERIFIED_CAPACITY),
        }
    }

    fn runtime() -> &'static tokio::runtime::Runtime {
        static RT: std::sync::LazyLock<tokio::runtime::Runtime> = std::sync::LazyLock::new(|| {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap()
        });
        &RT
    }

    fn claim() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(|f| json!(f)),
            ".{0,60}".prop_map(Value::from),
            proptest::collection::vec(".{0,10}", 0..4).prop_map(|v| json!(v)),
        ]
    }

    proptest! {
        #[test]
        fn signed_tokens_with_any_claims(iss in claim(), aud in claim(), sub in claim(), scope in claim(),
                                         exp in claim(), nbf in claim(), iat in claim(), kid in proptest::option::of(".{0,40}")) {
            let claims = json!({"iss": iss, "aud": aud, "sub": sub, "scope": scope, "exp": exp, "nbf": nbf, "iat": iat});
            let mut header = Header::new(Algorithm::HS256);
            header.kid = kid;
            let token = jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(SECRET.as_bytes())).unwrap();
            if let Ok(caller) = runtime().block_on(authenticator().verify(&token)) {
                let words = scope.as_str().unwrap_or_default();
                prop_assert!(caller.scopes.iter().all(|s| words.split_whitespace().any(|w| w == s)));
            }
        }

        #[test]
        fn any_three_parts(header in proptest::collection::vec(any::<u8>(), 0..200),
                           claims in proptest::collection::vec(any::<u8>(), 0..200),
                           signature in proptest::collection::vec(any::<u8>(), 0..80),
                           raw in ".{0,300}") {
            let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
            let token = format!("{}.{}.{}", b64(&header), b64(&claims), b64(&signature));
            let auth = authenticator();
            prop_assert!(runtime().block_on(auth.verify(&token)).is_err());
            prop_assert!(runtime().block_on(auth.verify(&raw)).is_err());
        }
    }
}
