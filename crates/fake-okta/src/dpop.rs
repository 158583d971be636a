//! DPoP (RFC 9449) as an Okta API Services app with "Require Demonstrating Proof of
//! Possession" checks it (the default for such apps since February 2024):
//!
//! - at `/oauth2/v1/token`: a proof is required (`invalid_dpop_proof`, "The DPoP proof
//!   JWT header is missing."), then a nonce (`use_dpop_nonce` with a `DPoP-Nonce`
//!   header); the token is issued as `token_type: DPoP`, bound to the proof key's
//!   thumbprint (`cnf.jkt`);
//! - on the Management API: a bound token must come as `Authorization: DPoP`, with a
//!   proof signed by the bound key, for this method and URL, fresh (`iat`), never seen
//!   before (`jti`), naming the token (`ath`). Refusals are Okta's: 400, empty body, the
//!   reason only in `WWW-Authenticate: DPoP … error="invalid_dpop_proof"`.
//!
//! What a proof is checked for: `typ: dpop+jwt`; an asymmetric `alg`; a public `jwk`
//! (private members refused) whose key verifies the signature; `htm` equal to the
//! method; `htu` equal to the request URL without query, its path percent-decoded and
//! `%`, space, `"` and `#` encoded again (what Okta compares; okta-sdk-java PR #1526);
//! `iat` within [`IAT_WINDOW`]; a `jti` not used before. See ASSUMPTIONS.md for what is
//! not verified against a live org.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::ids;

/// How far a proof's `iat` may be from the fake's clock. Okta does not document its
/// window; a minute either way is what RFC 9449 §11.1 suggests as "relatively short".
pub const IAT_WINDOW: Duration = Duration::from_secs(60);

pub(crate) const MISSING: &str = "The DPoP proof JWT header is missing.";
pub(crate) const REUSED: &str = "The DPoP proof JWT has already been used.";
const NONCE_NEEDED: &str = "Authorization server requires nonce in DPoP proof.";

/// What the fake saw of one proof, for tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopProofSeen {
    /// `token` or `api`.
    pub endpoint: &'static str,
    pub jti: String,
    pub htm: String,
    pub htu: String,
    pub nonce: Option<String>,
    /// `accepted`, or the refusal's description.
    pub outcome: String,
    /// The proof itself, for tests that look for it where it must not be (logs).
    pub proof: String,
}

#[derive(Default)]
struct State {
    nonce: String,
    /// The nonce before the last rotation, still accepted (Okta keeps one for three
    /// days) unless [`Dpop::expire_nonce`] made it stale.
    previous: Option<String>,
    used_jtis: HashSet<String>,
    seen: Vec<DpopProofSeen>,
}

pub(crate) struct Dpop {
    state: Mutex<State>,
}

/// A checked proof's key thumbprint (`jkt`) and claims.
pub(crate) struct Proof {
    pub jkt: String,
    claims: Value,
}

impl Dpop {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State {
                nonce: ids::random_alnum(32),
                ..State::default()
            }),
        }
    }

    /// Okta renews its nonce; the previous one keeps working.
    pub(crate) fn rotate_nonce(&self) {
        let mut s = self.state.lock().unwrap();
        let old = std::mem::replace(&mut s.nonce, ids::random_alnum(32));
        s.previous = Some(old);
    }

    /// Okta renews its nonce and the previous one is no longer accepted (its three days
    /// are over).
    pub(crate) fn expire_nonce(&self) {
        let mut s = self.state.lock().unwrap();
        s.nonce = ids::random_alnum(32);
        s.previous = None;
    }

    /// A request answered before its proof was checked (a 429, an injected fault):
    /// Okta had it, so its `jti` is used (terraform-provider-okta #2392: a replay after
    /// a 429 is refused).
    pub(crate) fn burn(&self, headers: &HeaderMap) {
        let Some(proof) = headers.get("dpop").and_then(|v| v.to_str().ok()) else {
            return;
        };
        let jti = unverified_jwt_part(proof, 1).and_then(|c| c["jti"].as_str().map(str::to_owned));
        if let Some(jti) = jti {
            self.state.lock().unwrap().used_jtis.insert(jti);
        }
    }

    pub(crate) fn seen(&self) -> Vec<DpopProofSeen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// Checks the proof of a token request; the proof, or the OAuth error answer.
    pub(crate) fn check_token_request(
        &self,
        headers: &HeaderMap,
        token_url: &str,
    ) -> Result<Proof, Box<Response>> {
        let oauth = |error: &str, description: &str, nonce: Option<String>| {
            let mut r = (
                StatusCode::BAD_REQUEST,
                [(header::CONTENT_TYPE, "application/json")],
                serde_json::json!({"error": error, "error_description": description}).to_string(),
            )
                .into_response();
            if let Some(n) = nonce {
                r.headers_mut()
                    .insert("dpop-nonce", n.parse().expect("alphanumeric nonce"));
            }
            r
        };
        let proof = match self.verify(headers, "POST", token_url, None, "token") {
            Ok(p) => p,
            Err(description) => {
                return Err(Box::new(oauth("invalid_dpop_proof", &description, None)))
            }
        };
        let nonce = proof.claims["nonce"].as_str().map(str::to_owned);
        let mut s = self.state.lock().unwrap();
        let fresh = nonce
            .as_deref()
            .is_some_and(|n| n == s.nonce || s.previous.as_deref() == Some(n));
        let outcome = if fresh { "accepted" } else { NONCE_NEEDED };
        if let Some(last) = s.seen.last_mut() {
            last.outcome = outcome.to_owned();
        }
        if !fresh {
            let current = s.nonce.clone();
            return Err(Box::new(oauth(
                "use_dpop_nonce",
                NONCE_NEEDED,
                Some(current),
            )));
        }
        Ok(proof)
    }

    /// Checks the proof of a Management API request made with a token bound to `jkt`;
    /// the refusal's description otherwise.
    pub(crate) fn check_api_request(
        &self,
        headers: &HeaderMap,
        method: &str,
        url: &str,
        token: &str,
        jkt: &str,
    ) -> Result<(), String> {
        let proof = self.verify(headers, method, url, Some(token), "api")?;
        let outcome = if proof.jkt == jkt {
            Ok(())
        } else {
            Err("The DPoP proof JWT key does not match the access token's binding.".to_owned())
        };
        if let (Err(why), Some(last)) = (&outcome, self.state.lock().unwrap().seen.last_mut()) {
            last.outcome = why.clone();
        }
        outcome
    }

    /// The checks every proof passes; records what was seen.
    fn verify(
        &self,
        headers: &HeaderMap,
        method: &str,
        url: &str,
        token: Option<&str>,
        endpoint: &'static str,
    ) -> Result<Proof, String> {
        let values: Vec<&str> = headers
            .get_all("dpop")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let proof = match values.as_slice() {
            [] => return Err(MISSING.to_owned()),
            [one] => *one,
            _ => return Err("Only one DPoP proof JWT header is allowed.".to_owned()),
        };
        let (jkt, claims) = decode(proof)?;
        let text = |k: &str| claims[k].as_str().unwrap_or_default().to_owned();
        let mut s = self.state.lock().unwrap();
        s.seen.push(DpopProofSeen {
            endpoint,
            jti: text("jti"),
            htm: text("htm"),
            htu: text("htu"),
            nonce: claims["nonce"].as_str().map(str::to_owned),
            outcome: "accepted".into(),
            proof: proof.to_owned(),
        });
        let problem = claims_problem(&claims, method, url, token)
            .or_else(|| (!s.used_jtis.insert(text("jti"))).then_some(REUSED));
        if let Some(why) = problem {
            if let Some(last) = s.seen.last_mut() {
                last.outcome = why.to_owned();
            }
            return Err(why.to_owned());
        }
        Ok(Proof { jkt, claims })
    }
}

/// What is wrong with a proof's claims for this request, if anything.
fn claims_problem(
    claims: &Value,
    method: &str,
    url: &str,
    token: Option<&str>,
) -> Option<&'static str> {
    if claims["htm"].as_str() != Some(method) {
        return Some("'htm' claim in the DPoP proof JWT is invalid.");
    }
    if claims["htu"].as_str() != Some(expected_htu(url).as_str()) {
        return Some("'htu' claim in the DPoP proof JWT is invalid.");
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    match claims["iat"].as_u64() {
        Some(iat) if iat.abs_diff(now) <= IAT_WINDOW.as_secs() => {}
        _ => return Some("'iat' claim in the DPoP proof JWT is invalid."),
    }
    if let Some(token) = token {
        let ath = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Sha256::digest(token.as_bytes()));
        if claims["ath"].as_str() != Some(ath.as_str()) {
            return Some("'ath' claim in the DPoP proof JWT is invalid.");
        }
    }
    let jti = claims["jti"].as_str().unwrap_or_default();
    if jti.is_empty() || jti.len() > 256 {
        return Some("'jti' claim in the DPoP proof JWT is invalid.");
    }
    None
}

/// Verifies a proof's header and signature; its key thumbprint and claims.
fn decode(proof: &str) -> Result<(String, Value), String> {
    let invalid = || "The DPoP proof JWT is invalid.".to_owned();
    let header = jsonwebtoken::decode_header(proof).map_err(|_| invalid())?;
    if header.typ.as_deref() != Some("dpop+jwt") {
        return Err("The DPoP proof JWT 'typ' header must be 'dpop+jwt'.".into());
    }
    if !matches!(
        header.alg,
        Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::ES256
            | Algorithm::ES384
    ) {
        return Err("The DPoP proof JWT uses an unsupported signing algorithm.".into());
    }
    let jwk: Jwk = header
        .jwk
        .ok_or_else(|| "The DPoP proof JWT 'jwk' header is missing.".to_owned())?;
    // jsonwebtoken drops members it does not know, so look at the raw header too.
    let raw = unverified_jwt_part(proof, 0).ok_or_else(invalid)?;
    if ["d", "p", "q", "dp", "dq", "qi", "k"]
        .iter()
        .any(|m| raw["jwk"].get(m).is_some())
        || matches!(jwk.algorithm, AlgorithmParameters::OctetKey(_))
    {
        return Err("The DPoP proof JWT 'jwk' header must hold a public key only.".into());
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|_| invalid())?;
    let mut validation = Validation::new(header.alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let data = jsonwebtoken::decode::<Value>(proof, &key, &validation)
        .map_err(|_| "The DPoP proof JWT signature is invalid.".to_owned())?;
    Ok((jwk.thumbprint(ThumbprintHash::SHA256), data.claims))
}

/// The `htu` Okta expects for a request to `url` (origin and raw path, no query).
fn expected_htu(url: &str) -> String {
    let without_query = url.split(['?', '#']).next().unwrap_or_default();
    let (origin, path) = match without_query.find("://") {
        Some(i) => match without_query[i + 3..].find('/') {
            Some(j) => without_query.split_at(i + 3 + j),
            None => (without_query, ""),
        },
        None => ("", without_query),
    };
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let mut normalised = String::from(origin);
    for c in decoded.chars() {
        match c {
            '%' => normalised.push_str("%25"),
            ' ' => normalised.push_str("%20"),
            '"' => normalised.push_str("%22"),
            '#' => normalised.push_str("%23"),
            c => normalised.push(c),
        }
    }
    normalised
}

/// The Management API's refusal of a proof: 400, no body, the reason in the challenge.
pub(crate) fn api_refusal(base_url: &str, scope: Option<&str>, path: &str, why: &str) -> Response {
    let challenge = format!(
        "DPoP algs=\"RS256 RS384 RS512 ES256 ES384 ES512\", authorization_uri=\"{base_url}/oauth2/v1/authorize\", realm=\"{base_url}\", scope=\"{}\", error=\"invalid_dpop_proof\", error_description=\"{why}\", resource=\"{path}\"",
        scope.unwrap_or_default()
    );
    let mut r = StatusCode::BAD_REQUEST.into_response();
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        challenge.parse().expect("ASCII challenge"),
    );
    r
}

/// Part `index` of a compact JWT (0 the header, 1 the claims) as JSON, read without
/// verifying anything: for what must be looked at before (or besides) verification.
pub(crate) fn unverified_jwt_part(jwt: &str, index: usize) -> Option<Value> {
    let part = jwt.split('.').nth(index)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn htu_is_compared_on_the_decoded_path() {
        assert_eq!(
            expected_htu("http://127.0.0.1:4010/api/v1/users/a%40b.com?limit=2"),
            "http://127.0.0.1:4010/api/v1/users/a@b.com"
        );
        assert_eq!(
            expected_htu("http://h/api/v1/users/a%20b%25c"),
            "http://h/api/v1/users/a%20b%25c"
        );
    }
}
