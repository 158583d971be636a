//! The credential efs-iam proves itself with to the Management API: an SSWS API token,
//! or a service app's client id and private key, from which each token request gets a
//! fresh `private_key_jwt` client assertion (Okta's "OAuth 2.0 for Okta service apps"
//! flow). The access tokens those requests bring are `access_token.rs`'s.
//!
//! Secrets live in `SecretString` and in jsonwebtoken's `EncodingKey` only. Every type
//! here that holds one has a hand-written `Debug` that leaves it out, and outgoing
//! `Authorization` header values are marked sensitive so that reqwest/hyper debug
//! output hides them too.
//!
//! The client assertion is valid for 5 minutes (okta-sdk-nodejs' choice): it is used
//! once, right away, so a long `exp` only widens the replay window.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

use super::dpop::{DpopKey, DpopMode};

/// How efs-iam authenticates to Okta.
#[derive(Clone)]
pub enum OktaAuth {
    /// `Authorization: SSWS <token>`.
    ApiToken(SecretString),
    /// OAuth 2.0 client credentials against the org authorization server.
    PrivateKeyJwt(PrivateKeyJwt),
}

impl fmt::Debug for OktaAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ApiToken(_) => f.write_str("ApiToken([redacted])"),
            Self::PrivateKeyJwt(p) => f.debug_tuple("PrivateKeyJwt").field(p).finish(),
        }
    }
}

impl OktaAuth {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::ApiToken(_) => "api_token",
            Self::PrivateKeyJwt(_) => "private_key_jwt",
        }
    }
}

/// A service app's client id and the RSA key its client assertions are signed with,
/// and the DPoP proof key and mode (`dpop.rs`).
#[derive(Clone)]
pub struct PrivateKeyJwt {
    pub client_id: String,
    /// `kid` header of the assertion; Okta matches it against the app's JWKS.
    pub key_id: Option<String>,
    /// Scopes requested with every token, e.g. `okta.users.manage`.
    pub scopes: Vec<String>,
    pub dpop_mode: DpopMode,
    pub dpop_key: std::sync::Arc<DpopKey>,
    key: EncodingKey,
}

impl fmt::Debug for PrivateKeyJwt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKeyJwt")
            .field("client_id", &self.client_id)
            .field("key_id", &self.key_id)
            .field("scopes", &self.scopes)
            .field("dpop_mode", &self.dpop_mode)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// Why a private key PEM was refused (the text never includes key material).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RSA private key in PEM (PKCS#8 or PKCS#1)")]
pub struct InvalidPrivateKey;

impl PrivateKeyJwt {
    /// Reads an RSA private key from PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1
    /// (`BEGIN RSA PRIVATE KEY`) PEM. jsonwebtoken's own PEM reader sits behind a feature
    /// this crate does not enable; the `rsa` crate it already uses reads both forms.
    pub fn from_pem(
        client_id: impl Into<String>,
        pem: &str,
        key_id: Option<String>,
        scopes: Vec<String>,
    ) -> Result<Self, InvalidPrivateKey> {
        use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
        use rsa::pkcs8::DecodePrivateKey;
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
            .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(pem))
            .map_err(|_| InvalidPrivateKey)?;
        let der = key.to_pkcs1_der().map_err(|_| InvalidPrivateKey)?;
        Ok(Self {
            client_id: client_id.into(),
            key_id,
            scopes,
            dpop_mode: DpopMode::default(),
            dpop_key: std::sync::Arc::new(DpopKey::generate()),
            key: EncodingKey::from_rsa_der(der.as_bytes()),
        })
    }

    /// The same credential with this DPoP mode and proof key.
    pub fn with_dpop(mut self, mode: DpopMode, key: Option<DpopKey>) -> Self {
        self.dpop_mode = mode;
        if let Some(key) = key {
            self.dpop_key = std::sync::Arc::new(key);
        }
        self
    }

    /// A fresh client assertion for `token_url` (RS256; `iss` = `sub` = client id).
    pub(crate) fn client_assertion(&self, token_url: &str) -> Result<String, String> {
        #[derive(Serialize)]
        struct Claims<'a> {
            iss: &'a str,
            sub: &'a str,
            aud: &'a str,
            iat: u64,
            exp: u64,
            jti: String,
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = Claims {
            iss: &self.client_id,
            sub: &self.client_id,
            aud: token_url,
            iat: now,
            exp: now + ASSERTION_LIFETIME.as_secs(),
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let mut header = Header::new(Algorithm::RS256);
        header.kid = self.key_id.clone();
        jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| format!("cannot sign the client assertion: {e}"))
    }
}

const ASSERTION_LIFETIME: Duration = Duration::from_secs(300);

/// How a credential is presented: `SSWS`, `Bearer` or `DPoP` (a token bound to the
/// proof key, sent with a proof).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    Ssws,
    Bearer,
    Dpop,
}

impl Scheme {
    fn as_str(self) -> &'static str {
        match self {
            Self::Ssws => "SSWS",
            Self::Bearer => "Bearer",
            Self::Dpop => "DPoP",
        }
    }
}

/// The `Authorization` value for one request, and the access token it carries (to
/// drop exactly that token from the cache if Okta answers 401, and for a DPoP proof's
/// `ath`).
pub(crate) struct Credential {
    pub header: HeaderValue,
    pub scheme: Scheme,
    pub access_token: Option<SecretString>,
}

impl Credential {
    pub(crate) fn new(scheme: Scheme, secret: &SecretString) -> Result<Self, String> {
        let value = format!("{} {}", scheme.as_str(), secret.expose_secret());
        let mut header = HeaderValue::from_str(&value)
            .map_err(|_| "the credential contains characters not allowed in a header")?;
        header.set_sensitive(true);
        Ok(Self {
            header,
            scheme,
            access_token: (scheme != Scheme::Ssws).then(|| secret.clone()),
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A key made for the test run: the service crate carries no key material, not
    /// even test keys. 1024 bits keeps generation fast in debug builds.
    pub(crate) fn test_key_pem() -> &'static str {
        static PEM: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        PEM.get_or_init(|| {
            use rsa::pkcs8::EncodePrivateKey;
            let key = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 1024).unwrap();
            key.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
                .unwrap()
                .to_string()
        })
    }

    #[test]
    fn debug_output_has_no_secrets() {
        let token = OktaAuth::ApiToken(SecretString::from("00aSECRETtoken".to_owned()));
        assert!(!format!("{token:?}").contains("SECRET"));
        let jwt =
            PrivateKeyJwt::from_pem("0oaX", test_key_pem(), Some("kid1".into()), vec![]).unwrap();
        let shown = format!("{:?}", OktaAuth::PrivateKeyJwt(jwt));
        assert!(
            shown.contains("0oaX") && shown.contains("[redacted]"),
            "{shown}"
        );
        assert!(!shown.contains("MII"), "{shown}");
    }

    #[test]
    fn bad_pem_is_refused_without_echoing_it() {
        let err = PrivateKeyJwt::from_pem("x", "-----BEGIN NOPE-----", None, vec![]).unwrap_err();
        assert!(!err.to_string().contains("NOPE"));
    }

    #[test]
    fn assertion_carries_okta_claims() {
        let jwt =
            PrivateKeyJwt::from_pem("0oaX", test_key_pem(), Some("kid1".into()), vec![]).unwrap();
        let a = jwt
            .client_assertion("https://org.example/oauth2/v1/token")
            .unwrap();
        let header = jsonwebtoken::decode_header(&a).unwrap();
        assert_eq!(header.alg, Algorithm::RS256);
        assert_eq!(header.kid.as_deref(), Some("kid1"));
        let payload = a.split('.').nth(1).unwrap();
        use base64::Engine;
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["iss"], "0oaX");
        assert_eq!(claims["sub"], "0oaX");
        assert_eq!(claims["aud"], "https://org.example/oauth2/v1/token");
        let (iat, exp) = (
            claims["iat"].as_u64().unwrap(),
            claims["exp"].as_u64().unwrap(),
        );
        assert_eq!(exp - iat, 300);
        assert_eq!(claims["jti"].as_str().unwrap().len(), 36);
    }
}
