//! A JSON Web Key Set cache, shared by caller authentication (`EFS_IAM_AUTH_JWKS_URL`)
//! and id_token verification (each portal issuer's `jwks_uri`). Modelled on crates.io's
//! `OidcKeyStore`: a set is cached per URL for a TTL and refetched once when a token
//! names an unknown `kid` (identity providers rotate keys), at most once per cool-down,
//! so that a stream of bogus `kid`s cannot turn efs-iam into a load generator against
//! the provider. One fetch runs at a time; waiters re-check the cache afterwards.
//!
//! Each key is pinned to one algorithm when the set is read: its JWK `alg` when given
//! (only RS256 and ES256 are taken), otherwise RS256 for an RSA key and ES256 for a
//! P-256 key. Keys marked for encryption (`use: enc`) and every other kind are dropped,
//! so a token can never choose how its key is used.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::sync::{Mutex, RwLock};

#[derive(Clone, Copy, Debug)]
pub struct JwksOptions {
    /// How long a fetched set is trusted before it is fetched again.
    pub cache_ttl: Duration,
    /// The least time between two fetches caused by unknown `kid`s.
    pub refetch_cooldown: Duration,
    /// Bound on each HTTP request to the provider.
    pub timeout: Duration,
}

/// A verification key and the one algorithm it may be used with.
#[derive(Clone)]
pub struct JwkKey {
    pub algorithm: Algorithm,
    pub key: DecodingKey,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// The set has no such key. `refetched` is false when the set was fetched too
    /// recently to be fetched again for this `kid`.
    #[error("kid is not in the key set")]
    UnknownKid { refetched: bool },
    /// The set could not be fetched or read; says which URL and why, never a token.
    #[error("{0}")]
    Unavailable(String),
}

struct KeySet {
    keys: HashMap<String, JwkKey>,
    fetched_at: Instant,
}

pub struct JwksCache {
    http: reqwest::Client,
    options: JwksOptions,
    cache: RwLock<HashMap<String, Arc<KeySet>>>,
    fetching: Mutex<()>,
}

impl JwksCache {
    pub fn new(options: JwksOptions) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .user_agent(concat!("efs-iam/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            http,
            options,
            cache: RwLock::new(HashMap::new()),
            fetching: Mutex::new(()),
        })
    }

    /// The HTTP client the cache fetches with, for related documents (OIDC discovery).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    pub fn options(&self) -> JwksOptions {
        self.options
    }

    /// The key named `kid` in the set at `url`, from the cache or, when allowed, a
    /// fresh fetch.
    pub async fn key(&self, url: &str, kid: &str) -> Result<JwkKey, JwksError> {
        if let Some(k) = self.cached(url, kid).await {
            return Ok(k);
        }
        let _one_fetch = self.fetching.lock().await;
        let cached = self.cache.read().await.get(url).cloned();
        if let Some(cached) = &cached {
            let age = cached.fetched_at.elapsed();
            if age < self.options.cache_ttl {
                if let Some(k) = cached.keys.get(kid) {
                    return Ok(k.clone());
                }
                if age < self.options.refetch_cooldown {
                    return Err(JwksError::UnknownKid { refetched: false });
                }
            }
        }
        let fresh = self.refresh(url).await?;
        fresh
            .keys
            .get(kid)
            .cloned()
            .ok_or(JwksError::UnknownKid { refetched: true })
    }

    /// Fetches the set at `url` now unless a fresh copy is cached; for start-up, so the
    /// first request does not pay for the fetch and a wrong URL shows in the log early.
    pub async fn prefetch(&self, url: &str) -> Result<usize, JwksError> {
        let _one_fetch = self.fetching.lock().await;
        if let Some(c) = self.cache.read().await.get(url) {
            if c.fetched_at.elapsed() < self.options.cache_ttl {
                return Ok(c.keys.len());
            }
        }
        Ok(self.refresh(url).await?.keys.len())
    }

    /// Fetches the set and caches it; the caller holds `fetching`.
    async fn refresh(&self, url: &str) -> Result<Arc<KeySet>, JwksError> {
        let fresh = Arc::new(self.fetch(url).await?);
        self.cache
            .write()
            .await
            .insert(url.to_owned(), fresh.clone());
        Ok(fresh)
    }

    async fn cached(&self, url: &str, kid: &str) -> Option<JwkKey> {
        let cache = self.cache.read().await;
        let set = cache.get(url)?;
        if set.fetched_at.elapsed() >= self.options.cache_ttl {
            return None;
        }
        set.keys.get(kid).cloned()
    }

    #[tracing::instrument(name = "jwks.fetch", skip(self))]
    async fn fetch(&self, url: &str) -> Result<KeySet, JwksError> {
        let set: JwkSet = self
            .http
            .get(url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|e| JwksError::Unavailable(format!("JWKS {url}: {e}")))?
            .json()
            .await
            .map_err(|e| JwksError::Unavailable(format!("JWKS {url}: {e}")))?;
        let keys: HashMap<String, JwkKey> = set
            .keys
            .iter()
            .filter_map(|k| {
                let algorithm = pinned_algorithm(k)?;
                let kid = k.common.key_id.clone()?;
                let key = DecodingKey::from_jwk(k).ok()?;
                Some((kid, JwkKey { algorithm, key }))
            })
            .collect();
        tracing::info!(url, keys = keys.len(), "fetched a JWKS");
        Ok(KeySet {
            keys,
            fetched_at: Instant::now(),
        })
    }
}

/// The one algorithm a key may verify, or `None` for a key that must not be used.
fn pinned_algorithm(jwk: &jsonwebtoken::jwk::Jwk) -> Option<Algorithm> {
    if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) if ec.curve == EllipticCurve::P256 => {
            Algorithm::ES256
        }
        _ => return None,
    };
    match jwk.common.key_algorithm {
        None => Some(by_type),
        Some(KeyAlgorithm::RS256) if by_type == Algorithm::RS256 => Some(Algorithm::RS256),
        Some(KeyAlgorithm::ES256) if by_type == Algorithm::ES256 => Some(Algorithm::ES256),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwk(v: serde_json::Value) -> jsonwebtoken::jwk::Jwk {
        serde_json::from_value(v).expect("a JWK")
    }

    const N: &str = "sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw";
    const X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

    #[test]
    fn keys_are_pinned_to_one_algorithm() {
        let rsa = jwk(serde_json::json!({"kty": "RSA", "kid": "r", "n": N, "e": "AQAB"}));
        assert_eq!(pinned_algorithm(&rsa), Some(Algorithm::RS256));
        let p256 =
            jwk(serde_json::json!({"kty": "EC", "kid": "e", "crv": "P-256", "x": X, "y": Y}));
        assert_eq!(pinned_algorithm(&p256), Some(Algorithm::ES256));
        // An `alg` the key type cannot have, or one not on the list, drops the key.
        let mislabelled =
            jwk(serde_json::json!({"kty": "RSA", "kid": "r", "alg": "ES256", "n": N, "e": "AQAB"}));
        assert_eq!(pinned_algorithm(&mislabelled), None);
        let rs512 =
            jwk(serde_json::json!({"kty": "RSA", "kid": "r", "alg": "RS512", "n": N, "e": "AQAB"}));
        assert_eq!(pinned_algorithm(&rs512), None);
        let p384 = jwk(serde_json::json!({"kty": "EC", "kid": "e", "crv": "P-384",
            "x": "iA7lWQLzVrKGEFjfGMfMHfTEZ2KnLiKU7JuNT3E7ygsfE7ygs_k2gmnG8wQzsv1l",
            "y": "_V2Q7g6dk-L5W0TO7N1sY6B6-Yyhf8fb2F3v3DYGmNNvRnuzRnEw1RrJd7qlIy8r"}));
        assert_eq!(pinned_algorithm(&p384), None);
        let for_encryption =
            jwk(serde_json::json!({"kty": "RSA", "kid": "r", "use": "enc", "n": N, "e": "AQAB"}));
        assert_eq!(pinned_algorithm(&for_encryption), None);
        let secret = jwk(serde_json::json!({"kty": "oct", "kid": "s", "k": "c2VjcmV0"}));
        assert_eq!(pinned_algorithm(&secret), None);
    }
}
