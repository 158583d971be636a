//! The org authorization server: Management API authentication (SSWS and Bearer),
//! `POST /oauth2/v1/token` (client credentials with a `private_key_jwt` client
//! assertion), OIDC discovery, the JWKS, and id_token minting.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{json, Value};

use super::dpop::{unverified_jwt_part, Dpop};
use super::errors::{json_body, OktaError};
use super::{ids, FakeOkta, FakeOktaConfig, Shared};

pub(crate) const KID_1: &str = "fake-okta-test-key-1";
pub(crate) const KID_2: &str = "fake-okta-test-key-2";
pub(crate) const SIGNING_KEY_1_PEM: &str = include_str!("../keys/signing-key-1.private.pem");
const SIGNING_KEY_2_PEM: &str = include_str!("../keys/signing-key-2.private.pem");
pub(crate) const CLIENT_PRIVATE_PEM: &str = include_str!("../keys/client-key.private.pem");
pub(crate) const CLIENT_PUBLIC_PEM: &str = include_str!("../keys/client-key.public.pem");

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// An RSA private key from PKCS#8 or PKCS#1 PEM. jsonwebtoken's own PEM support sits
/// behind a feature this crate doesn't enable; the `rsa` crate it already depends on
/// reads PEM.
pub(crate) fn encoding_key_from_pem(pem: &str) -> Result<EncodingKey, String> {
    use rsa::pkcs1::{DecodeRsaPrivateKey, EncodeRsaPrivateKey};
    use rsa::pkcs8::DecodePrivateKey;
    let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
        .or_else(|_| rsa::RsaPrivateKey::from_pkcs1_pem(pem))
        .map_err(|e| format!("not an RSA private key PEM: {e}"))?;
    let der = key.to_pkcs1_der().map_err(|e| e.to_string())?;
    Ok(EncodingKey::from_rsa_der(der.as_bytes()))
}

/// An RSA public key from SPKI (`BEGIN PUBLIC KEY`) or PKCS#1 PEM.
pub(crate) fn decoding_key_from_pem(pem: &str) -> Result<DecodingKey, String> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::pkcs8::DecodePublicKey;
    use rsa::traits::PublicKeyParts;
    let key = rsa::RsaPublicKey::from_public_key_pem(pem)
        .or_else(|_| rsa::RsaPublicKey::from_pkcs1_pem(pem))
        .map_err(|e| format!("not an RSA public key PEM: {e}"))?;
    Ok(DecodingKey::from_rsa_raw_components(
        &key.n().to_bytes_be(),
        &key.e().to_bytes_be(),
    ))
}

/// An issued access token: its scopes, expiry and DPoP binding (`cnf.jkt`).
struct Issued {
    scopes: Vec<String>,
    expiry: SystemTime,
    jkt: Option<String>,
}

pub(crate) struct OAuth {
    client: Option<(String, DecodingKey)>,
    scopes: Vec<String>,
    lifetime: Duration,
    static_tokens: Vec<String>,
    /// access token → what it grants
    issued: Mutex<HashMap<String, Issued>>,
    used_jtis: Mutex<HashSet<String>>,
    /// Every client assertion received, for tests that look for it in logs.
    assertions: Mutex<Vec<String>>,
    keys: Vec<(&'static str, EncodingKey)>,
    jwks: Value,
    idp: String,
}

fn epoch(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

impl OAuth {
    pub(crate) fn new(config: &FakeOktaConfig) -> Self {
        let client = config.oauth_client.as_ref().map(|(id, pem)| {
            let key = decoding_key_from_pem(pem)
                .unwrap_or_else(|e| panic!("FakeOktaConfig.oauth_client: {e}"));
            (id.clone(), key)
        });
        let keys: Vec<(&'static str, EncodingKey)> =
            [(KID_1, SIGNING_KEY_1_PEM), (KID_2, SIGNING_KEY_2_PEM)]
                .into_iter()
                .map(|(kid, pem)| (kid, encoding_key_from_pem(pem).expect("bundled test key")))
                .collect();
        let jwks_keys: Vec<Value> = keys
            .iter()
            .map(|(kid, key)| {
                let mut jwk = Jwk::from_encoding_key(key, Algorithm::RS256).expect("RSA JWK");
                jwk.common.key_id = Some((*kid).to_owned());
                jwk.common.public_key_use = Some(PublicKeyUse::Signature);
                serde_json::to_value(jwk).expect("JWK serializes")
            })
            .collect();
        Self {
            client,
            scopes: config.oauth_scopes.clone(),
            lifetime: config.access_token_lifetime,
            static_tokens: config.access_tokens.clone(),
            issued: Mutex::new(HashMap::new()),
            used_jtis: Mutex::new(HashSet::new()),
            assertions: Mutex::new(Vec::new()),
            keys,
            jwks: json!({ "keys": jwks_keys }),
            idp: ids::idp_id(),
        }
    }

    fn key(&self, kid: &str) -> &EncodingKey {
        &self
            .keys
            .iter()
            .find(|(k, _)| *k == kid)
            .expect("known kid")
            .1
    }

    /// Every access token issued, and every client assertion received.
    pub(crate) fn secrets_seen(&self) -> Vec<String> {
        let mut all: Vec<String> = self.issued.lock().unwrap().keys().cloned().collect();
        all.extend(self.assertions.lock().unwrap().iter().cloned());
        all
    }

    pub(crate) fn revoke_all(&self) {
        self.issued.lock().unwrap().clear();
    }

    /// Signs an access token (a JWT like Okta's, though clients must treat it as opaque)
    /// and remembers its scopes and expiry.
    pub(crate) fn issue_access_token(
        &self,
        base_url: &str,
        client_id: &str,
        scopes: &[String],
        jkt: Option<&str>,
    ) -> (String, u64) {
        let now = SystemTime::now();
        let lifetime = self.lifetime.as_secs().max(1);
        let mut claims = json!({
            "ver": 1,
            "jti": format!("AT.{}", ids::random_alnum(43)),
            "iss": base_url,
            "aud": base_url,
            "sub": client_id,
            "cid": client_id,
            "iat": epoch(now),
            "exp": epoch(now) + lifetime,
            "scp": scopes,
        });
        if let Some(jkt) = jkt {
            claims["cnf"] = json!({ "jkt": jkt });
        }
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(KID_1.to_owned());
        let token = jsonwebtoken::encode(&header, &claims, self.key(KID_1)).expect("sign");
        self.issued.lock().unwrap().insert(
            token.clone(),
            Issued {
                scopes: scopes.to_vec(),
                expiry: now + self.lifetime,
                jkt: jkt.map(str::to_owned),
            },
        );
        (token, lifetime)
    }

    pub(crate) fn mint_id_token(&self, base_url: &str, claims: Value, kid: &str) -> String {
        let now = epoch(SystemTime::now());
        let mut all = json!({
            "ver": 1,
            "jti": format!("ID.{}", ids::random_alnum(43)),
            "iss": base_url,
            "aud": FakeOkta::DEFAULT_ID_TOKEN_AUDIENCE,
            "iat": now,
            "exp": now + 3600,
            "auth_time": now,
            "amr": ["pwd"],
            "idp": self.idp,
        });
        if let Value::Object(extra) = claims {
            for (k, v) in extra {
                all[k] = v;
            }
        }
        let mut header = Header::new(Algorithm::RS256);
        header.typ = None;
        header.kid = Some(kid.to_owned());
        jsonwebtoken::encode(&header, &all, self.key(kid)).expect("sign id_token")
    }

    /// Management API authentication. Okta answers 401 E0000011 for a missing or bad
    /// token and 403 E0000006 when an OAuth token lacks the endpoint's scope.
    pub(crate) fn authorize(
        &self,
        request: ApiRequest<'_>,
        api_token: Option<&str>,
        dpop: &Dpop,
    ) -> Result<(), Box<Response>> {
        let ApiRequest {
            base_url,
            method,
            headers,
            scope,
            path,
            url,
        } = request;
        let value = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
        let token = token.trim();
        if scheme.eq_ignore_ascii_case("SSWS") {
            return match api_token {
                Some(expected) if !token.is_empty() && token == expected => Ok(()),
                _ => Err(Box::new(OktaError::invalid_token().into_response())),
            };
        }
        let dpop_scheme = scheme.eq_ignore_ascii_case("DPoP");
        if !scheme.eq_ignore_ascii_case("Bearer") && !dpop_scheme {
            return Err(Box::new(OktaError::invalid_token().into_response()));
        }
        let www = |error: &str, description: &str| {
            format!(
                "{} authorization_uri=\"{base_url}/oauth2/v1/authorize\", realm=\"{base_url}\", scope=\"{}\", error=\"{error}\", error_description=\"{description}\", resource=\"{path}\"",
                if dpop_scheme { "DPoP" } else { "Bearer" },
                scope.unwrap_or_default()
            )
        };
        let refuse = |description: &str| {
            Err(Box::new(
                OktaError::invalid_token()
                    .with_header(header::WWW_AUTHENTICATE, www("invalid_token", description))
                    .into_response(),
            ))
        };
        let (granted, jkt): (Vec<String>, Option<String>) =
            if self.static_tokens.iter().any(|t| t == token) {
                (
                    vec!["okta.users.manage".into(), "okta.groups.manage".into()],
                    None,
                )
            } else {
                let issued = self.issued.lock().unwrap();
                match issued.get(token) {
                    Some(i) if i.expiry > SystemTime::now() => (i.scopes.clone(), i.jkt.clone()),
                    Some(_) => return refuse("The token has expired."),
                    None => return refuse("The access token is invalid."),
                }
            };
        // RFC 9449 §7.1-7.2: a bound token only with its proof, an unbound one never
        // as DPoP. (Okta's exact answer to a bound token sent as Bearer is not on
        // record; this is the RFC's.)
        match (&jkt, dpop_scheme) {
            (Some(_), false) => {
                return refuse(
                    "The access token is DPoP-bound; present it with the DPoP scheme and a proof.",
                )
            }
            (None, true) => return refuse("The access token is not DPoP-bound."),
            (Some(jkt), true) => {
                if let Err(why) = dpop.check_api_request(headers, method, url, token, jkt) {
                    return Err(Box::new(super::dpop::api_refusal(
                        base_url, scope, path, &why,
                    )));
                }
            }
            (None, false) => {}
        }
        match scope {
            None => Ok(()),
            Some(needed) => {
                // A `.manage` scope includes the matching `.read`.
                let manage = needed.replace(".read", ".manage");
                if granted.iter().any(|g| g == needed || *g == manage) {
                    Ok(())
                } else {
                    Err(Box::new(OktaError::forbidden()
                        .with_header(
                            header::WWW_AUTHENTICATE,
                            www(
                                "insufficient_scope",
                                "The access token provided does not contain the required scopes.",
                            ),
                        )
                        .into_response()))
                }
            }
        }
    }

    /// Checks a `private_key_jwt` client assertion and returns the client id, or the
    /// `error_description` of an `invalid_client` answer.
    fn verify_assertion(
        &self,
        assertion: &str,
        token_url: &str,
        form_client_id: Option<&str>,
    ) -> Result<String, &'static str> {
        self.assertions.lock().unwrap().push(assertion.to_owned());
        let header = jsonwebtoken::decode_header(assertion)
            .map_err(|_| "The client_assertion token is malformed.")?;
        if !matches!(
            header.alg,
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512
        ) {
            return Err("The client_assertion token has an unsupported signing algorithm.");
        }
        let unverified =
            unverified_jwt_part(assertion, 1).ok_or("The client_assertion token is malformed.")?;
        let iss = unverified["iss"].as_str().unwrap_or_default();
        let Some((client_id, key)) = self.client.as_ref().filter(|(id, _)| id == iss) else {
            return Err("Invalid value for 'client_id' parameter.");
        };
        if form_client_id.is_some_and(|id| id != client_id) {
            return Err("The client_id parameter must match the client_assertion issuer.");
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = 0;
        validation.set_audience(&[token_url]);
        validation.set_issuer(&[client_id]);
        validation.sub = Some(client_id.clone());
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        let data = jsonwebtoken::decode::<Value>(assertion, key, &validation).map_err(|e| {
            match e.kind() {
                ErrorKind::InvalidSignature => "The client_assertion signature is invalid.",
                ErrorKind::ExpiredSignature => "The client_assertion token is expired.",
                ErrorKind::InvalidAudience => {
                    "The audience claim for client_assertion must be the endpoint invoked for the request."
                }
                ErrorKind::InvalidIssuer | ErrorKind::InvalidSubject => {
                    "The 'iss' and 'sub' claims of the client_assertion must both be the client_id."
                }
                ErrorKind::MissingRequiredClaim(_) => {
                    "The client_assertion token is missing a required claim (iss, sub, aud, exp)."
                }
                ErrorKind::ImmatureSignature => "The client_assertion token is not yet valid.",
                _ => "The client_assertion token is invalid.",
            }
        })?;
        let now = epoch(SystemTime::now());
        if data.claims["exp"].as_u64().unwrap_or(0) > now + 3600 {
            return Err("The client_assertion token has an expiration too far into the future.");
        }
        if let Some(jti) = data.claims["jti"].as_str() {
            if !self.used_jtis.lock().unwrap().insert(jti.to_owned()) {
                return Err("The client_assertion token has already been used.");
            }
        }
        Ok(client_id.clone())
    }
}

/// An OAuth error (`{"error", "error_description"}`), not Okta's E0000 shape.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut r =
        json_body(&json!({"error": error, "error_description": description})).into_response();
    *r.status_mut() = status;
    no_store(&mut r);
    r
}

fn invalid_client(description: &str) -> Response {
    oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", description)
}

fn no_store(r: &mut Response) {
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, "no-cache, no-store".parse().unwrap());
    h.insert(
        HeaderName::from_static("pragma"),
        "no-cache".parse().unwrap(),
    );
}

/// A Management API request, as [`OAuth::authorize`] checks it.
pub(crate) struct ApiRequest<'a> {
    pub base_url: &'a str,
    pub method: &'a str,
    pub headers: &'a HeaderMap,
    /// The OAuth scope the endpoint needs with a Bearer token.
    pub scope: Option<&'a str>,
    /// The raw path, for `resource` in challenges.
    pub path: &'a str,
    /// The request URL as the client addressed it (origin and raw path and query).
    pub url: &'a str,
}

pub(crate) async fn token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let get = |k: &str| form.get(k).map(String::as_str).filter(|v| !v.is_empty());
    match get("grant_type") {
        None => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "The request is missing a required parameter: 'grant_type'.",
            )
        }
        Some("client_credentials") => {}
        Some(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "The authorization grant type is not supported by the authorization server. Configured grant types: [client_credentials].",
            )
        }
    }
    let (Some(assertion_type), Some(assertion)) =
        (get("client_assertion_type"), get("client_assertion"))
    else {
        return invalid_client(
            "Client authentication failed. Either the client or the client credentials are invalid.",
        );
    };
    if assertion_type != ASSERTION_TYPE {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The client_assertion_type parameter must be 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'.",
        );
    }
    let token_url = format!("{}/oauth2/v1/token", shared.base_url);
    let oauth = &shared.oauth;
    let client_id = match oauth.verify_assertion(assertion, &token_url, get("client_id")) {
        Ok(id) => id,
        Err(description) => return invalid_client(description),
    };
    let requested: Vec<String> = get("scope")
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    if requested.is_empty() {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "The authorization server resource does not have any configured default scopes, 'scope' must be provided.",
        );
    }
    if requested.iter().any(|s| !oauth.scopes.contains(s)) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "One or more scopes are not configured for the authorization server resource.",
        );
    }
    // A DPoP-requiring app: a proof, then the nonce, before a token; a proof sent to an
    // app that does not require DPoP is ignored (see ASSUMPTIONS.md).
    let jkt = if shared.settings().require_dpop {
        match shared.dpop.check_token_request(&headers, &token_url) {
            Ok(proof) => Some(proof.jkt),
            Err(mut refusal) => {
                no_store(&mut refusal);
                return *refusal;
            }
        }
    } else {
        None
    };
    let (access_token, expires_in) =
        oauth.issue_access_token(&shared.base_url, &client_id, &requested, jkt.as_deref());
    let mut r = json_body(&json!({
        "token_type": if jkt.is_some() { "DPoP" } else { "Bearer" },
        "expires_in": expires_in,
        "access_token": access_token,
        "scope": requested.join(" "),
    }))
    .into_response();
    no_store(&mut r);
    r
}

pub(crate) async fn keys(State(shared): State<Arc<Shared>>) -> Response {
    let mut r = json_body(&shared.oauth.jwks).into_response();
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        "max-age=86400, must-revalidate".parse().unwrap(),
    );
    r
}

pub(crate) async fn discovery(State(shared): State<Arc<Shared>>) -> Response {
    let b = &shared.base_url;
    json_body(&json!({
        "issuer": b,
        "authorization_endpoint": format!("{b}/oauth2/v1/authorize"),
        "token_endpoint": format!("{b}/oauth2/v1/token"),
        "userinfo_endpoint": format!("{b}/oauth2/v1/userinfo"),
        "registration_endpoint": format!("{b}/oauth2/v1/clients"),
        "jwks_uri": format!("{b}/oauth2/v1/keys"),
        "response_types_supported": ["code", "id_token", "code id_token", "code token", "id_token token", "code id_token token"],
        "response_modes_supported": ["query", "fragment", "form_post", "okta_post_message"],
        "grant_types_supported": ["authorization_code", "implicit", "refresh_token", "password", "client_credentials"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "email", "profile", "address", "phone", "offline_access", "groups"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "none"],
        "claims_supported": ["iss", "ver", "sub", "aud", "iat", "exp", "jti", "auth_time", "amr", "idp", "nonce", "name", "nickname", "preferred_username", "given_name", "middle_name", "family_name", "email", "email_verified", "profile", "zoneinfo", "locale", "address", "phone_number", "picture", "website", "gender", "birthdate", "updated_at", "at_hash", "c_hash"],
        "code_challenge_methods_supported": ["S256"],
        "introspection_endpoint": format!("{b}/oauth2/v1/introspect"),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "none"],
        "revocation_endpoint": format!("{b}/oauth2/v1/revoke"),
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "client_secret_jwt", "private_key_jwt", "none"],
        "end_session_endpoint": format!("{b}/oauth2/v1/logout"),
        "request_parameter_supported": true,
        "request_object_signing_alg_values_supported": ["HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "ES256", "ES384", "ES512"],
    }))
    .into_response()
}

/// Builds a client assertion the way Okta's SDKs do (RS256, `iss` = `sub` = client id,
/// `aud` = token URL, UUID `jti`).
pub(crate) fn sign_client_assertion(
    client_id: &str,
    token_url: &str,
    private_key_pem: &str,
    ttl_secs: u64,
) -> String {
    let now = epoch(SystemTime::now());
    let claims = json!({
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "iat": now,
        "exp": now + ttl_secs,
        "jti": uuid::Uuid::new_v4().to_string(),
    });
    let key = encoding_key_from_pem(private_key_pem).unwrap_or_else(|e| panic!("{e}"));
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).expect("sign assertion")
}
