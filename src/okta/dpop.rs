//! DPoP (RFC 9449) for the service-app path: Okta turns "Require Demonstrating Proof
//! of Possession" on by default for API Services apps created since February 2024, and
//! then binds each access token to a key efs-iam holds and asks for a signed proof with
//! every request.
//!
//! - **The proof key** is an ES256 (P-256) key generated at start-up, or read from
//!   `EFS_IAM_OKTA_DPOP_KEY_FILE` (so several instances, or a restart, may share one).
//!   It never leaves the process: only its public half goes out, in each proof's `jwk`
//!   header, and `Debug` leaves it out.
//! - **A proof per request**, made right before the request is sent: a new `jti` and
//!   `iat` each time, so a retry after a 429 or a 5xx, a next page or a nonce retry
//!   never replays one (Okta refuses a used `jti`: terraform-provider-okta #2392,
//!   okta-sdk-golang #554).
//! - **`htu`** is the request URL without query and fragment, its path percent-decoded
//!   and only `%`, space, `"` and `#` encoded again: what Okta compares against
//!   (okta-sdk-java PR #1526, tried against a live org; okta-sdk-python #541 and
//!   okta-sdk-nodejs #521 are the failures with a login's `%40`).
//! - **`ath`** (base64url SHA-256 of the access token) on Management API requests;
//!   **`nonce`** only on token requests, the last `DPoP-Nonce` the token endpoint sent.
//!
//! Whether DPoP is used is [`DpopMode`]'s: `auto` follows what Okta asks for (the
//! first token request goes without a proof; Okta's `invalid_dpop_proof` "header is
//! missing" answer turns proofs on for the process, so the failed grant happens once,
//! not once per token), `on` always sends a proof, `off` never does.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Url;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

/// When efs-iam sends DPoP proofs (`EFS_IAM_OKTA_DPOP`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum DpopMode {
    /// Only once Okta asks for it (`invalid_dpop_proof` from the token endpoint).
    #[default]
    Auto,
    /// From the first token request.
    On,
    /// Never; an app that requires DPoP then refuses every token request.
    Off,
}

/// Why a DPoP key file was refused (the text never includes key material).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a P-256 (ES256) private key in PKCS#8 PEM (BEGIN PRIVATE KEY)")]
pub struct InvalidDpopKey;

/// The proof key: a P-256 private key (for jsonwebtoken) and its public JWK.
#[derive(Clone)]
pub struct DpopKey {
    key: EncodingKey,
    jwk: Jwk,
}

impl fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DpopKey([redacted])")
    }
}

impl DpopKey {
    /// A new key from the operating system's randomness.
    pub fn generate() -> Self {
        let secret = p256::SecretKey::random(&mut rsa::rand_core::OsRng);
        Self::from_secret(&secret).expect("a fresh P-256 key encodes")
    }

    /// A key from PKCS#8 PEM (`openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`).
    pub fn from_pem(pem: &str) -> Result<Self, InvalidDpopKey> {
        use p256::pkcs8::DecodePrivateKey;
        let secret = p256::SecretKey::from_pkcs8_pem(pem).map_err(|_| InvalidDpopKey)?;
        Self::from_secret(&secret)
    }

    fn from_secret(secret: &p256::SecretKey) -> Result<Self, InvalidDpopKey> {
        use p256::pkcs8::EncodePrivateKey;
        // A zeroizing document: the DER copy is wiped once jsonwebtoken has its own.
        let der = secret.to_pkcs8_der().map_err(|_| InvalidDpopKey)?;
        let key = EncodingKey::from_ec_der(der.as_bytes());
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::ES256).map_err(|_| InvalidDpopKey)?;
        jwk.common.key_algorithm = None;
        Ok(Self { key, jwk })
    }

    /// The public key as it goes out in every proof (`kty`, `crv`, `x`, `y`).
    pub fn public_jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// A proof for one request: `method` and `url` as sent, the token endpoint's
    /// `nonce`, and the access token it accompanies (for `ath`).
    pub fn proof(
        &self,
        method: &str,
        url: &Url,
        nonce: Option<&str>,
        access_token: Option<&str>,
    ) -> Result<String, String> {
        #[derive(Serialize)]
        struct Claims<'a> {
            jti: String,
            htm: &'a str,
            htu: String,
            iat: u64,
            #[serde(skip_serializing_if = "Option::is_none")]
            nonce: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            ath: Option<String>,
        }
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("dpop+jwt".into());
        header.jwk = Some(self.jwk.clone());
        let claims = Claims {
            jti: uuid::Uuid::new_v4().to_string(),
            htm: method,
            htu: htu(url),
            iat: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs(),
            nonce,
            ath: access_token.map(access_token_hash),
        };
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| format!("cannot sign the DPoP proof: {e}"))
    }
}

/// `ath`: base64url (no padding) of the SHA-256 of the token's ASCII bytes.
pub fn access_token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// The `htu` of a request to `url`: scheme, host, port (if not the default) and the
/// percent-decoded path with `%`, space, `"` and `#` encoded again; no query, no
/// fragment.
pub fn htu(url: &Url) -> String {
    let decoded = percent_encoding::percent_decode_str(url.path()).decode_utf8_lossy();
    let mut path = String::with_capacity(decoded.len());
    for c in decoded.chars() {
        match c {
            '%' => path.push_str("%25"),
            ' ' => path.push_str("%20"),
            '"' => path.push_str("%22"),
            '#' => path.push_str("%23"),
            c => path.push(c),
        }
    }
    format!("{}{path}", url.origin().ascii_serialization())
}

/// The DPoP state of one Okta client: the mode, the key, whether proofs are on, and the
/// token endpoint's last nonce.
pub(crate) struct Dpop {
    mode: DpopMode,
    key: std::sync::Arc<DpopKey>,
    active: AtomicBool,
    nonce: Mutex<Option<String>>,
}

impl Dpop {
    pub(crate) fn new(mode: DpopMode, key: std::sync::Arc<DpopKey>) -> Self {
        Self {
            mode,
            key,
            active: AtomicBool::new(mode == DpopMode::On),
            nonce: Mutex::new(None),
        }
    }

    pub(crate) fn mode(&self) -> DpopMode {
        self.mode
    }

    /// Proofs go with token requests now.
    pub(crate) fn active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// Okta asked for a proof: in `auto`, proofs are on from now; `false` when the mode
    /// does not allow it (or they were on already, so asking again would not help).
    pub(crate) fn turn_on(&self) -> bool {
        self.mode == DpopMode::Auto && !self.active.swap(true, Ordering::Relaxed)
    }

    /// Remembers the nonce the token endpoint sent (on a `use_dpop_nonce` challenge or
    /// with any other answer); `true` if it is new.
    pub(crate) fn remember_nonce(&self, nonce: &str) -> bool {
        let mut current = self.nonce.lock().unwrap();
        if current.as_deref() == Some(nonce) {
            return false;
        }
        *current = Some(nonce.to_owned());
        true
    }

    /// A proof for a token request to `url`, with the current nonce.
    pub(crate) fn token_proof(&self, url: &Url) -> Result<String, String> {
        let nonce = self.nonce.lock().unwrap().clone();
        self.key.proof("POST", url, nonce.as_deref(), None)
    }

    /// A proof for a Management API request carrying `access_token`.
    pub(crate) fn api_proof(
        &self,
        method: &str,
        url: &Url,
        access_token: &str,
    ) -> Result<String, String> {
        self.key.proof(method, url, None, Some(access_token))
    }
}

impl fmt::Debug for Dpop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dpop")
            .field("mode", &self.mode)
            .field("active", &self.active())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(proof: &str) -> serde_json::Value {
        let payload = proof.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    }

    #[test]
    fn htu_is_the_decoded_path_without_query() {
        let u = |s: &str| Url::parse(s).unwrap();
        assert_eq!(
            htu(&u(
                "https://acme.okta.com/api/v1/users/alice%40example.com?x=1#f"
            )),
            "https://acme.okta.com/api/v1/users/alice@example.com"
        );
        assert_eq!(
            htu(&u("https://acme.okta.com/api/v1/users/a%20b%25c%22d%23e+f")),
            "https://acme.okta.com/api/v1/users/a%20b%25c%22d%23e+f"
        );
        assert_eq!(
            htu(&u("http://127.0.0.1:4010/oauth2/v1/token")),
            "http://127.0.0.1:4010/oauth2/v1/token"
        );
        assert_eq!(
            htu(&u("https://acme.okta.com:443/api/v1/groups")),
            "https://acme.okta.com/api/v1/groups"
        );
    }

    #[test]
    fn a_proof_verifies_with_its_own_public_key_and_carries_the_claims() {
        let key = DpopKey::generate();
        let url = Url::parse("https://acme.okta.com/api/v1/users/00u1?limit=2").unwrap();
        let proof = key.proof("GET", &url, None, Some("the-token")).unwrap();
        let header = jsonwebtoken::decode_header(&proof).unwrap();
        assert_eq!(header.typ.as_deref(), Some("dpop+jwt"));
        assert_eq!(header.alg, Algorithm::ES256);
        let jwk = header.jwk.unwrap();
        let text = serde_json::to_string(&jwk).unwrap();
        assert!(!text.contains("\"d\""), "public members only: {text}");
        let decoding = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
        let mut v = jsonwebtoken::Validation::new(Algorithm::ES256);
        v.required_spec_claims.clear();
        v.validate_exp = false;
        jsonwebtoken::decode::<serde_json::Value>(&proof, &decoding, &v).unwrap();
        let c = claims(&proof);
        assert_eq!(c["htm"], "GET");
        assert_eq!(c["htu"], "https://acme.okta.com/api/v1/users/00u1");
        assert_eq!(c["ath"], access_token_hash("the-token"));
        assert!(c.get("nonce").is_none());
        let again = key.proof("GET", &url, None, Some("the-token")).unwrap();
        assert_ne!(claims(&again)["jti"], c["jti"], "a new jti every time");
    }

    #[test]
    fn token_proofs_carry_the_last_nonce_and_auto_turns_on_once() {
        let dpop = Dpop::new(DpopMode::Auto, DpopKey::generate().into());
        let url = Url::parse("https://acme.okta.com/oauth2/v1/token").unwrap();
        assert!(!dpop.active());
        assert!(claims(&dpop.token_proof(&url).unwrap())
            .get("nonce")
            .is_none());
        assert!(dpop.remember_nonce("n-1"));
        assert!(!dpop.remember_nonce("n-1"));
        assert_eq!(claims(&dpop.token_proof(&url).unwrap())["nonce"], "n-1");
        assert!(dpop.turn_on());
        assert!(!dpop.turn_on(), "asking twice does not help");
        assert!(dpop.active());
        let off = Dpop::new(DpopMode::Off, DpopKey::generate().into());
        assert!(!off.turn_on() && !off.active());
        assert!(Dpop::new(DpopMode::On, DpopKey::generate().into()).active());
    }

    #[test]
    fn keys_are_read_from_pkcs8_and_never_shown() {
        use p256::pkcs8::EncodePrivateKey;
        let secret = p256::SecretKey::random(&mut rsa::rand_core::OsRng);
        let pem = secret.to_pkcs8_pem(p256::pkcs8::LineEnding::LF).unwrap();
        let key = DpopKey::from_pem(&pem).unwrap();
        assert_eq!(format!("{key:?}"), "DpopKey([redacted])");
        assert!(DpopKey::from_pem("-----BEGIN PRIVATE KEY-----\nnope\n").is_err());
    }
}
