//! JSON Web Key Sets and the documents that lead to them, fetched from identity
//! providers: the cache shared by caller authentication (`EFS_IAM_AUTH_JWKS_URL`) and
//! id_token verification (each portal issuer's `jwks_uri`). Modelled on crates.io's
//! `OidcKeyStore`.
//!
//! * A set is trusted for `cache_ttl`. After that it is still served (stale) while one
//!   background fetch renews it, so an identity provider's outage or slowness does not
//!   stall calls whose keys are known.
//! * A token naming an unknown `kid` refetches the set at most once per
//!   `refetch_cooldown` (providers rotate keys), so a stream of bogus `kid`s cannot
//!   turn efs-iam into a load generator against the provider.
//! * A failed fetch is remembered for the same cool-down (a negative cache): calls in
//!   that time fail at once instead of each trying the provider again.
//! * Fetches are serialised per URL, never across URLs: a slow issuer does not hold up
//!   another portal's.
//! * No redirect is followed and an answer is read to at most [`MAX_DOCUMENT_BYTES`].
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
use tokio::sync::{Mutex, OwnedMutexGuard, RwLock};

/// The largest discovery document or key set read; a real one is a few KiB.
pub const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

#[derive(Clone, Copy, Debug)]
pub struct JwksOptions {
    /// How long a fetched set is trusted before it is fetched again.
    pub cache_ttl: Duration,
    /// The least time between two fetches caused by unknown `kid`s, and how long a
    /// failed fetch is remembered.
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

/// The key sets, failures and fetch locks that the cache's clones and its background
/// renewals all use.
struct KeySets {
    http: reqwest::Client,
    options: JwksOptions,
    by_url: RwLock<HashMap<String, Arc<KeySet>>>,
    /// URL → when a fetch failed, and why.
    failures: RwLock<HashMap<String, (Instant, String)>>,
    /// One fetch at a time per URL.
    locks: std::sync::Mutex<HashMap<String, Arc<Mutex<()>>>>,
}

/// Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct JwksCache {
    sets: Arc<KeySets>,
}

impl JwksCache {
    pub fn new(options: JwksOptions) -> anyhow::Result<Self> {
        Ok(Self {
            sets: Arc::new(KeySets {
                http: http_client(options.timeout)?,
                options,
                by_url: RwLock::new(HashMap::new()),
                failures: RwLock::new(HashMap::new()),
                locks: std::sync::Mutex::new(HashMap::new()),
            }),
        })
    }

    pub fn options(&self) -> JwksOptions {
        self.sets.options
    }

    /// The client the cache fetches with, for related documents (OIDC discovery): no
    /// redirects, the configured time limit.
    pub fn http(&self) -> &reqwest::Client {
        &self.sets.http
    }

    /// The key named `kid` in the set at `url`, from the cache or, when allowed, a
    /// fresh fetch.
    pub async fn key(&self, url: &str, kid: &str) -> Result<JwkKey, JwksError> {
        let cached = self.sets.by_url.read().await.get(url).cloned();
        if let Some(set) = &cached {
            if let Some(k) = set.keys.get(kid) {
                if set.fetched_at.elapsed() >= self.sets.options.cache_ttl {
                    self.renew_in_background(url);
                }
                return Ok(k.clone());
            }
        }
        self.sets.recent_failure(url).await?;
        let _turn = self.sets.lock(url).lock_owned().await;
        // Another caller may have fetched while this one waited.
        let cached = self.sets.by_url.read().await.get(url).cloned();
        if let Some(set) = &cached {
            if let Some(k) = set.keys.get(kid) {
                return Ok(k.clone());
            }
            if set.fetched_at.elapsed() < self.sets.options.refetch_cooldown {
                return Err(JwksError::UnknownKid { refetched: false });
            }
        }
        self.sets.recent_failure(url).await?;
        let fresh = self.sets.refresh(url).await?;
        fresh
            .keys
            .get(kid)
            .cloned()
            .ok_or(JwksError::UnknownKid { refetched: true })
    }

    /// Fetches the set at `url` now unless a fresh copy is cached; for start-up, so the
    /// first request does not pay for the fetch and a wrong URL shows in the log early.
    pub async fn prefetch(&self, url: &str) -> Result<usize, JwksError> {
        let _turn = self.sets.lock(url).lock_owned().await;
        if let Some(c) = self.sets.by_url.read().await.get(url) {
            if c.fetched_at.elapsed() < self.sets.options.cache_ttl {
                return Ok(c.keys.len());
            }
        }
        Ok(self.sets.refresh(url).await?.keys.len())
    }

    /// Renews a stale set unless a fetch of it is already running.
    fn renew_in_background(&self, url: &str) {
        let Ok(turn) = self.sets.lock(url).try_lock_owned() else {
            return;
        };
        let sets = self.sets.clone();
        let url = url.to_owned();
        tokio::spawn(async move {
            let _turn: OwnedMutexGuard<()> = turn;
            if sets.recent_failure(&url).await.is_ok() {
                if let Err(e) = sets.refresh(&url).await {
                    tracing::warn!(error = %e, "renewing a JWKS failed; the cached set is kept");
                }
            }
        });
    }
}

impl KeySets {
    fn lock(&self, url: &str) -> Arc<Mutex<()>> {
        let mut locks = self.locks.lock().expect("lock map");
        locks.entry(url.to_owned()).or_default().clone()
    }

    /// The failure of a fetch of `url` within the cool-down, if there was one.
    async fn recent_failure(&self, url: &str) -> Result<(), JwksError> {
        match self.failures.read().await.get(url) {
            Some((at, why)) if at.elapsed() < self.options.refetch_cooldown => {
                Err(JwksError::Unavailable(why.clone()))
            }
            _ => Ok(()),
        }
    }

    /// Fetches the set and caches it, or remembers why it could not; the caller holds
    /// the URL's lock.
    async fn refresh(&self, url: &str) -> Result<Arc<KeySet>, JwksError> {
        match self.fetch(url).await {
            Ok(set) => {
                let set = Arc::new(set);
                self.failures.write().await.remove(url);
                self.by_url
                    .write()
                    .await
                    .insert(url.to_owned(), set.clone());
                Ok(set)
            }
            Err(why) => {
                self.failures
                    .write()
                    .await
                    .insert(url.to_owned(), (Instant::now(), why.clone()));
                Err(JwksError::Unavailable(why))
            }
        }
    }

    #[tracing::instrument(name = "jwks.fetch", skip(self))]
    async fn fetch(&self, url: &str) -> Result<KeySet, String> {
        let bytes = fetch_document(&self.http, url)
            .await
            .map_err(|e| format!("JWKS {url}: {e}"))?;
        let set: JwkSet = serde_json::from_slice(&bytes)
            .map_err(|e| format!("JWKS {url}: not a key set: {e}"))?;
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

/// The client for identity providers: no redirects (a redirect could lead anywhere),
/// a time limit per request.
pub fn http_client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("efs-iam/", env!("CARGO_PKG_VERSION")))
        .build()?)
}

/// GETs a JSON document: a 2xx answer of at most [`MAX_DOCUMENT_BYTES`].
pub async fn fetch_document(http: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let mut res = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?;
    let status = res.status();
    if !status.is_success() {
        return Err(if status.is_redirection() {
            format!("answered {status}; redirects are not followed")
        } else {
            format!("answered {status}")
        });
    }
    let too_large = || format!("answer larger than {MAX_DOCUMENT_BYTES} bytes");
    if res
        .content_length()
        .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(|e| e.without_url().to_string())? {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
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
