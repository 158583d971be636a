//! id_token verification against the issuer's JWKS (`jsonwebtoken`), modelled on
//! crates.io's `OidcKeyStore`: keys are found through the issuer's
//! `/.well-known/openid-configuration` and cached by the shared [`JwksCache`], which
//! refetches once when a token names an unknown `kid` (Okta rotates keys), at most once
//! per cool-down.
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
use std::time::Instant;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;
use utoipa::ToSchema;

use crate::jwks::{JwksCache, JwksError, JwksOptions};

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

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    /// The token is not acceptable; the reason is safe to return to the caller.
    #[error("{0}")]
    Invalid(String),
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
    /// issuer → (jwks_uri, when discovered)
    discovered: RwLock<HashMap<String, (String, Instant)>>,
}

impl OidcVerifier {
    pub fn new(options: JwksOptions) -> anyhow::Result<Self> {
        Ok(Self {
            jwks: JwksCache::new(options)?,
            discovered: RwLock::new(HashMap::new()),
        })
    }

    /// Verifies `token` for `issuer` and `client_id` at `now`.
    pub async fn verify(
        &self,
        token: &str,
        issuer: &str,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<VerifiedClaims, IdTokenError> {
        let (alg, kid) = header_alg_and_kid(token)?;
        if alg != "RS256" {
            return Err(invalid(format!("alg `{alg}` is not accepted (only RS256)")));
        }
        let kid = kid.ok_or_else(|| invalid("the header names no kid"))?;
        let key = self.key(issuer, &kid).await?;

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
    async fn key(&self, issuer: &str, kid: &str) -> Result<DecodingKey, IdTokenError> {
        let jwks_uri = self.jwks_uri(issuer).await?;
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

    async fn jwks_uri(&self, issuer: &str) -> Result<String, IdTokenError> {
        let ttl = self.jwks.options().cache_ttl;
        if let Some((uri, at)) = self.discovered.read().await.get(issuer) {
            if at.elapsed() < ttl {
                return Ok(uri.clone());
            }
        }
        let unavailable = |e: &dyn std::fmt::Display| {
            IdTokenError::Unavailable(format!("issuer {issuer}: discovery: {e}"))
        };
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let discovery: Discovery = self
            .jwks
            .http()
            .get(&url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| unavailable(&e))?
            .json()
            .await
            .map_err(|e| unavailable(&e))?;
        if discovery.issuer != issuer {
            return Err(IdTokenError::Unavailable(format!(
                "issuer {issuer}: its discovery document names issuer {}",
                discovery.issuer
            )));
        }
        self.discovered.write().await.insert(
            issuer.to_owned(),
            (discovery.jwks_uri.clone(), Instant::now()),
        );
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
