//! id_token verification against the issuer's JWKS (`jsonwebtoken`), modelled on
//! crates.io's `OidcKeyStore`: keys are found through the issuer's
//! `/.well-known/openid-configuration` and cached by the shared [`JwksCache`], which
//! refetches once when a token names an unknown `kid` (Okta rotates keys), at most once
//! per cool-down.
//!
//! Where keys may come from is the operator's decision, never a caller's: the issuer (a
//! portal's `okta_issuer` setting) must be on an allowed origin ([`IssuerPolicy`],
//! `EFS_IAM_OIDC_ALLOWED_ISSUERS`, by default the Okta org's), over HTTPS (plain HTTP
//! for loopback only), and the `jwks_uri` its discovery document names must be on the
//! issuer's own origin. Discovery follows no redirect, reads at most
//! [`crate::jwks::MAX_DOCUMENT_BYTES`], remembers a failure for the JWKS cool-down, runs
//! one fetch per issuer at a time, and keeps using a known `jwks_uri` when renewing it
//! fails.
//!
//! Rules (Okta's "validate id tokens" guide):
//! * `alg` must be RS256: anything else, `none` and `HS256` included, is refused
//!   before a key is even looked up, and the key is only ever used as an RSA key;
//! * the key is the JWKS entry named by the header's `kid`;
//! * `iss` equals the portal's `okta_issuer` exactly, `aud` its `okta_client_id`;
//! * `exp` is in the future and `iat` not in the future, both with [`LEEWAY_SECS`],
//!   judged by the vault's clock.
//!
//! `nonce` and `at_hash` are not checked: the nonce lives in EFS's PHP session (the
//! caller did the login), and efs-iam stores what the caller got from Okta's token
//! endpoint over TLS.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, RwLock};
use utoipa::ToSchema;

use crate::jwks::{fetch_document, JwksCache, JwksError, JwksOptions};

/// Clock skew tolerated on `exp` and `iat`.
pub const LEEWAY_SECS: i64 = 60;

/// The claims efs-iam keeps from a verified id_token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"sub": "00ub0oNGTSWTBKOLGLNR", "email": "jane@example.com", "exp": 1795689600}))]
pub struct VerifiedClaims {
    /// The Okta user id.
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// Expiry of the id_token, seconds since the epoch.
    pub exp: i64,
}

/// Personal data: printed without values.
impl std::fmt::Debug for VerifiedClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedClaims")
            .field("exp", &self.exp)
            .finish_non_exhaustive()
    }
}

/// The origins (`https://host[:port]`) whose issuers efs-iam may verify id_tokens
/// for and fetch keys from. Empty: none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IssuerPolicy {
    origins: Vec<String>,
}

impl IssuerPolicy {
    pub fn new(origins: impl IntoIterator<Item = Url>) -> Self {
        let mut origins: Vec<String> = origins
            .into_iter()
            .map(|u| u.origin().ascii_serialization())
            .collect();
        origins.sort();
        origins.dedup();
        Self { origins }
    }

    pub fn origins(&self) -> &[String] {
        &self.origins
    }

    /// The issuer as a URL, when efs-iam may use it: HTTPS (plain HTTP only on a
    /// loopback host), no credentials, query or fragment, on an allowed origin.
    pub fn check(&self, issuer: &str) -> Result<Url, String> {
        let url = checked_url(issuer)?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err("must not have a query or fragment".into());
        }
        let origin = url.origin().ascii_serialization();
        if self.origins.is_empty() {
            return Err(
                "no issuer is allowed: set EFS_IAM_OIDC_ALLOWED_ISSUERS (or EFS_IAM_OKTA_ORG_URL, \
                 whose origin is allowed by default)"
                    .into(),
            );
        }
        if !self.origins.contains(&origin) {
            return Err(format!(
                "{origin} is not an allowed issuer origin (EFS_IAM_OIDC_ALLOWED_ISSUERS: {})",
                self.origins.join(", ")
            ));
        }
        Ok(url)
    }
}

/// An `https://` URL with a host and no credentials, or `http://` on a loopback host.
pub fn checked_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw.trim()).map_err(|e| format!("not a URL: {e}"))?;
    let host = url.host_str().unwrap_or_default();
    match url.scheme() {
        "https" if !host.is_empty() => {}
        "http" if is_loopback(host) => {}
        "http" => return Err("must be https:// (plain http only on a loopback host)".into()),
        _ => return Err("must be an https:// URL".into()),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials".into());
    }
    Ok(url)
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// `EFS_IAM_OIDC_ALLOWED_ISSUERS` entries: origins only.
pub fn parse_origin(raw: &str) -> Result<Url, String> {
    let url = checked_url(raw)?;
    if (url.path() != "/" && !url.path().is_empty()) || url.query().is_some() {
        return Err("must be an origin such as https://example.okta.com (no path)".into());
    }
    Ok(url)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    /// The token is not acceptable; the reason is safe to return to the caller.
    #[error("{0}")]
    Invalid(String),
    /// The portal's issuer is not one efs-iam may use.
    #[error("{0}")]
    IssuerNotAllowed(String),
    /// The issuer's discovery document or JWKS could not be fetched.
    #[error("{0}")]
    Unavailable(String),
}

fn invalid(reason: impl Into<String>) -> IdTokenError {
    IdTokenError::Invalid(reason.into())
}

#[derive(Deserialize)]
struct RawClaims {
    sub: String,
    #[serde(default)]
    email: Option<String>,
    exp: i64,
    iat: i64,
}

#[derive(Deserialize)]
struct Discovery {
    issuer: String,
    jwks_uri: String,
}

/// JWKS cache and verifier, shared by all requests. The issuer's discovery document
/// is read for its `jwks_uri`, kept as long as a key set is trusted, and the keys come
/// from the shared [`JwksCache`].
pub struct OidcVerifier {
    jwks: JwksCache,
    policy: IssuerPolicy,
    /// issuer → (jwks_uri, when discovered)
    discovered: RwLock<HashMap<String, (String, Instant)>>,
    /// issuer → when discovery failed, and why
    failures: RwLock<HashMap<String, (Instant, String)>>,
    /// One discovery at a time per issuer.
    locks: std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

impl OidcVerifier {
    pub fn new(options: JwksOptions, policy: IssuerPolicy) -> anyhow::Result<Self> {
        Ok(Self {
            jwks: JwksCache::new(options)?,
            policy,
            discovered: RwLock::new(HashMap::new()),
            failures: RwLock::new(HashMap::new()),
            locks: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// Which issuers may be used.
    pub fn policy(&self) -> &IssuerPolicy {
        &self.policy
    }

    /// Verifies `token` for `issuer` and `client_id` at `now`.
    pub async fn verify(
        &self,
        token: &str,
        issuer: &str,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<VerifiedClaims, IdTokenError> {
        let issuer_url = self
            .policy
            .check(issuer)
            .map_err(IdTokenError::IssuerNotAllowed)?;
        let (alg, kid) = header_alg_and_kid(token)?;
        if alg != "RS256" {
            return Err(invalid(format!("alg `{alg}` is not accepted (only RS256)")));
        }
        let kid = kid.ok_or_else(|| invalid("the header names no kid"))?;
        let key = self.key(issuer, &issuer_url, &kid).await?;

        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[client_id]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        // Time is judged below against the vault's clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let data = jsonwebtoken::decode::<RawClaims>(token, &key, &validation).map_err(|e| {
            invalid(match e.kind() {
                ErrorKind::InvalidSignature => "the signature does not verify".to_owned(),
                ErrorKind::InvalidIssuer => "iss is not the portal's okta_issuer".to_owned(),
                ErrorKind::InvalidAudience => "aud is not the portal's okta_client_id".to_owned(),
                ErrorKind::InvalidAlgorithm => "alg is not accepted (only RS256)".to_owned(),
                ErrorKind::MissingRequiredClaim(c) => format!("the {c} claim is missing"),
                ErrorKind::InvalidClaimFormat(c) => format!("the {c} claim is malformed"),
                ErrorKind::Json(_) => {
                    "the claims are malformed (sub, exp and iat are required)".to_owned()
                }
                _ => "not a well-formed signed JWT".to_owned(),
            })
        })?;
        let claims = data.claims;
        let now = now.timestamp();
        if claims.exp + LEEWAY_SECS <= now {
            return Err(invalid("expired (exp is in the past)"));
        }
        if claims.iat - LEEWAY_SECS > now {
            return Err(invalid("iat is in the future"));
        }
        if claims.sub.is_empty() {
            return Err(invalid("sub is empty"));
        }
        Ok(VerifiedClaims {
            sub: claims.sub,
            email: claims.email,
            exp: claims.exp,
        })
    }

    /// The RSA key named `kid` in the issuer's JWKS.
    async fn key(
        &self,
        issuer: &str,
        issuer_url: &Url,
        kid: &str,
    ) -> Result<DecodingKey, IdTokenError> {
        let jwks_uri = self.jwks_uri(issuer, issuer_url).await?;
        match self.jwks.key(&jwks_uri, kid).await {
            Ok(k) if k.algorithm == Algorithm::RS256 => Ok(k.key),
            Ok(_) => Err(invalid("kid names a key that is not an RS256 key")),
            Err(JwksError::UnknownKid { refetched: true }) => {
                Err(invalid("kid is not in the issuer's JWKS"))
            }
            Err(JwksError::UnknownKid { refetched: false }) => Err(invalid(
                "kid is not in the issuer's JWKS (fetched recently; not refetched)",
            )),
            Err(JwksError::Unavailable(e)) => {
                Err(IdTokenError::Unavailable(format!("issuer {issuer}: {e}")))
            }
        }
    }

    async fn jwks_uri(&self, issuer: &str, issuer_url: &Url) -> Result<String, IdTokenError> {
        let ttl = self.jwks.options().cache_ttl;
        let known = self.discovered.read().await.get(issuer).cloned();
        if let Some((uri, at)) = &known {
            if at.elapsed() < ttl {
                return Ok(uri.clone());
            }
        }
        let lock = {
            let mut locks = self.locks.lock().expect("lock map");
            locks.entry(issuer.to_owned()).or_default().clone()
        };
        let _turn = lock.lock().await;
        if let Some((uri, at)) = self.discovered.read().await.get(issuer) {
            if at.elapsed() < ttl {
                return Ok(uri.clone());
            }
        }
        let cooldown = self.jwks.options().refetch_cooldown;
        let failed = match self.failures.read().await.get(issuer) {
            Some((at, why)) if at.elapsed() < cooldown => Some(why.clone()),
            _ => None,
        };
        let fetched = failed.is_none();
        let result = match failed {
            Some(why) => Err(why),
            None => self.discover(issuer, issuer_url).await,
        };
        match (result, known) {
            (Ok(uri), _) => {
                self.failures.write().await.remove(issuer);
                self.discovered
                    .write()
                    .await
                    .insert(issuer.to_owned(), (uri.clone(), Instant::now()));
                Ok(uri)
            }
            (Err(why), known) => {
                if fetched {
                    self.failures
                        .write()
                        .await
                        .insert(issuer.to_owned(), (Instant::now(), why.clone()));
                }
                match known {
                    // Keys rotate; the place they are published hardly ever moves.
                    Some((uri, _)) => {
                        tracing::warn!(issuer, reason = %why, "OIDC discovery failed; keeping the known jwks_uri");
                        Ok(uri)
                    }
                    None => Err(IdTokenError::Unavailable(format!("issuer {issuer}: {why}"))),
                }
            }
        }
    }

    /// Reads the issuer's discovery document for its `jwks_uri`, which must be on the
    /// issuer's own origin.
    async fn discover(&self, issuer: &str, issuer_url: &Url) -> Result<String, String> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let bytes = fetch_document(self.jwks.http(), &url)
            .await
            .map_err(|e| format!("discovery: {e}"))?;
        let discovery: Discovery = serde_json::from_slice(&bytes)
            .map_err(|e| format!("discovery: not a discovery document: {e}"))?;
        if discovery.issuer != issuer {
            return Err(format!(
                "its discovery document names issuer {}",
                discovery.issuer
            ));
        }
        let jwks_uri = Url::parse(&discovery.jwks_uri)
            .map_err(|e| format!("discovery: jwks_uri is not a URL: {e}"))?;
        if jwks_uri.origin() != issuer_url.origin() {
            return Err(format!(
                "discovery: jwks_uri {} is not on the issuer's origin {}",
                jwks_uri.origin().ascii_serialization(),
                issuer_url.origin().ascii_serialization()
            ));
        }
        Ok(discovery.jwks_uri)
    }
}

/// Reads `alg` and `kid` from the JOSE header without trusting anything else, so that
/// `none` and unknown algorithms get a precise reason.
fn header_alg_and_kid(token: &str) -> Result<(String, Option<String>), IdTokenError> {
    #[derive(Deserialize)]
    struct Header {
        alg: String,
        #[serde(default)]
        kid: Option<String>,
    }
    let malformed = || invalid("not a well-formed JWT");
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(malformed());
    };
    let bytes = URL_SAFE_NO_PAD.decode(header).map_err(|_| malformed())?;
    let header: Header = serde_json::from_slice(&bytes).map_err(|_| malformed())?;
    Ok((header.alg, header.kid))
}
