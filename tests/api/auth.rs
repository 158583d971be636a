//! Caller authentication: a table of attacks, scope enforcement, every operation in
//! the spec refusing anonymous calls, and the secure default.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use fake_okta::{FakeOkta, FakeOktaConfig, Fault, FaultKind};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::{read, Api};
use crate::common::{spawn_app_on, test_settings, TestApp, TestDb};

pub const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes!";
pub const ISSUER: &str = "efs-admin";
pub const AUDIENCE: &str = "efs-iam";
const KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/keys");

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn claims(scope: &str) -> Value {
    json!({"sub": "efs-admin-php", "scope": scope, "iss": ISSUER, "aud": AUDIENCE, "exp": now() + 300, "iat": now()})
}

pub fn hs256(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn rs256(claims: &Value, kid: Option<&str>) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = kid.map(str::to_owned);
    let pem = std::fs::read(format!("{KEYS}/rsa_private.pem")).unwrap();
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_rsa_pem(&pem).unwrap()).unwrap()
}

fn es256(claims: &Value) -> String {
    let pem = std::fs::read(format!("{KEYS}/ec_private.pem")).unwrap();
    jsonwebtoken::encode(
        &Header::new(Algorithm::ES256),
        claims,
        &EncodingKey::from_ec_pem(&pem).unwrap(),
    )
    .unwrap()
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

pub async fn spawn_secured() -> TestApp {
    spawn_secured_with(|_| {}).await
}

pub async fn spawn_secured_with(
    adjust: impl FnOnce(&mut efs_iam::config::Settings) + Send + 'static,
) -> TestApp {
    spawn_app_on(TestDb::sqlite().await, |s| {
        s.auth.hs256_secret = Some(SECRET.to_owned().into());
        s.auth.public_keys = vec![
            format!("rs1={KEYS}/rsa_public.pem"),
            format!("{KEYS}/ec_public.pem"),
        ];
        s.auth.issuer = Some(ISSUER.into());
        s.auth.audience = Some(AUDIENCE.into());
        adjust(s);
    })
    .await
}

pub async fn call_with(
    app: &TestApp,
    method: Method,
    path: &str,
    auth: Option<&str>,
) -> (StatusCode, Value, Option<String>) {
    let mut req = app.client.request(method.clone(), app.url(path));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    if method == Method::PUT {
        req = req.json(&json!({"value": "v"}));
    }
    let res = req.send().await.unwrap();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    let (status, body) = read(res).await;
    (status, body, challenge)
}

#[tokio::test]
async fn attacks_are_refused() {
    let app = spawn_secured().await;
    let path = "/api/v1/portals/1/settings";
    let rsa_public = std::fs::read(format!("{KEYS}/rsa_public.pem")).unwrap();
    let good = hs256(&claims("iam:read"));
    let (h, p, _sig) = {
        let parts: Vec<&str> = good.split('.').collect();
        (
            parts[0].to_owned(),
            parts[1].to_owned(),
            parts[2].to_owned(),
        )
    };
    let mut tampered = good.clone();
    tampered.replace_range(tampered.len() - 4.., "AAAA");
    let none = format!("{}.{}.", b64(br#"{"alg":"none","typ":"JWT"}"#), p);
    let other_key = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims("iam:read"),
        &EncodingKey::from_secret(b"another-secret-another-secret-123456"),
    )
    .unwrap();
    let mut confused = Header::new(Algorithm::HS256);
    confused.kid = Some("rs1".into());
    let hs_with_rsa_public_kid = jsonwebtoken::encode(
        &confused,
        &claims("iam:read"),
        &EncodingKey::from_secret(&rsa_public),
    )
    .unwrap();
    let hs_with_rsa_public = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims("iam:read"),
        &EncodingKey::from_secret(&rsa_public),
    )
    .unwrap();
    let mut c = claims("iam:read");
    c["exp"] = json!(now() - 120);
    let expired = hs256(&c);
    let mut c = claims("iam:read");
    c["nbf"] = json!(now() + 300);
    let not_yet = hs256(&c);
    let mut c = claims("iam:read");
    c["aud"] = json!("someone-else");
    let wrong_aud = hs256(&c);
    let mut c = claims("iam:read");
    c["iss"] = json!("evil");
    let wrong_iss = hs256(&c);
    let mut c = claims("iam:read");
    c.as_object_mut().unwrap().remove("exp");
    let no_exp = hs256(&c);
    // Audit lines name the caller: a token without `sub` names nobody.
    let mut c = claims("iam:read");
    c.as_object_mut().unwrap().remove("sub");
    let no_sub = hs256(&c);
    let mut c = claims("iam:read");
    c["sub"] = json!(" ");
    let blank_sub = hs256(&c);
    // Who asked is stored (VARCHAR(255)): a longer name is refused, never cut.
    c["sub"] = json!("s".repeat(256));
    let long_sub = hs256(&c);
    let unknown_kid = rs256(&claims("iam:read"), Some("rs-unknown"));
    let huge = format!("Bearer {}", "a".repeat(100 * 1024));
    let _ = h;

    let cases: Vec<(&str, Option<String>)> = vec![
        ("no header", None),
        ("wrong scheme", Some(format!("Basic {}", b64(b"user:pass")))),
        ("empty bearer", Some("Bearer ".into())),
        ("garbage", Some("Bearer not.a.jwt".into())),
        ("expired", Some(format!("Bearer {expired}"))),
        ("not yet valid", Some(format!("Bearer {not_yet}"))),
        ("wrong audience", Some(format!("Bearer {wrong_aud}"))),
        ("wrong issuer", Some(format!("Bearer {wrong_iss}"))),
        ("no exp", Some(format!("Bearer {no_exp}"))),
        ("no sub", Some(format!("Bearer {no_sub}"))),
        ("blank sub", Some(format!("Bearer {blank_sub}"))),
        ("sub of 256 characters", Some(format!("Bearer {long_sub}"))),
        ("bad signature", Some(format!("Bearer {tampered}"))),
        ("another key", Some(format!("Bearer {other_key}"))),
        ("alg none", Some(format!("Bearer {none}"))),
        (
            "HS256 signed with the RS256 public key (kid)",
            Some(format!("Bearer {hs_with_rsa_public_kid}")),
        ),
        (
            "HS256 signed with the RS256 public key",
            Some(format!("Bearer {hs_with_rsa_public}")),
        ),
        ("unknown kid", Some(format!("Bearer {unknown_kid}"))),
    ];
    for (name, header) in cases {
        let (status, body, challenge) = call_with(&app, Method::GET, path, header.as_deref()).await;
        assert_eq!(status, 401, "{name}: {body}");
        assert_eq!(body["type"], "urn:efs-iam:problem:unauthorized", "{name}");
        assert!(
            challenge.unwrap().starts_with("Bearer realm=\"efs-iam\""),
            "{name}"
        );
        // The refusal never echoes the token.
        if let Some(h) = &header {
            let token = h.trim_start_matches("Bearer ");
            assert!(
                token.len() < 8 || !body.to_string().contains(token),
                "{name}"
            );
        }
    }
    let (status, _, _) = call_with(&app, Method::GET, path, Some(&huge)).await;
    assert!(status.is_client_error(), "100 KB header: {status}");

    // The keys that are configured work, each for its own algorithm.
    for token in [
        good.clone(),
        rs256(&claims("iam:read"), Some("rs1")),
        es256(&claims("iam:read")),
    ] {
        let (status, body, _) =
            call_with(&app, Method::GET, path, Some(&format!("Bearer {token}"))).await;
        assert_eq!(status, 200, "{body}");
    }
}

#[tokio::test]
async fn scopes_are_enforced() {
    let app = spawn_secured().await;
    let read = format!("Bearer {}", hs256(&claims("iam:read")));
    let tokens = format!("Bearer {}", hs256(&claims("iam:tokens")));
    let write = format!("Bearer {}", hs256(&claims("iam:write")));

    let (status, body, challenge) = call_with(
        &app,
        Method::PUT,
        "/api/v1/portals/1/settings/k",
        Some(&read),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["type"], "urn:efs-iam:problem:forbidden");
    assert!(challenge.unwrap().contains(r#"scope="iam:write""#));
    assert_eq!(
        call_with(
            &app,
            Method::PUT,
            "/api/v1/portals/1/settings/k",
            Some(&write)
        )
        .await
        .0,
        201
    );
    // A token-only caller can reach the session tokens and nothing else.
    assert_eq!(
        call_with(
            &app,
            Method::GET,
            "/api/v1/portals/1/settings",
            Some(&tokens)
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call_with(
            &app,
            Method::GET,
            "/api/v1/sessions/s1/token",
            Some(&tokens)
        )
        .await
        .0,
        404
    );
    // Without iam:tokens, no session token is readable.
    let all_but_tokens = format!("Bearer {}", hs256(&claims("iam:read iam:write iam:sync")));
    assert_eq!(
        call_with(
            &app,
            Method::GET,
            "/api/v1/sessions/s1/token",
            Some(&all_but_tokens)
        )
        .await
        .0,
        403
    );
    // Health, docs and metrics stay open.
    for open in [
        "/health/live",
        "/health/ready",
        "/api-docs/openapi.json",
        "/swagger-ui/",
        "/metrics",
    ] {
        assert_eq!(
            call_with(&app, Method::GET, open, None).await.0,
            200,
            "{open}"
        );
    }
}

/// Walks the served spec: every operation outside health refuses an anonymous call,
/// so a new endpoint cannot slip through unprotected, and declares its scope.
#[tokio::test]
async fn every_operation_in_the_spec_refuses_anonymous_calls() {
    let app = spawn_secured().await;
    let (_, spec) = app.get("/api-docs/openapi.json").await;
    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        let is_health = item.get("servers").is_some();
        for (method, op) in item.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            if method == Method::OPTIONS {
                continue;
            }
            let concrete = path
                .replace("{portal_id}", "1")
                .replace("{user_id}", "1")
                .replace("{id}", "1")
                .replace("{key}", "okta_client_id")
                .replace("{session_id}", "s1")
                .replace("{okta_user_id}", "00u1")
                .replace("{job_id}", "1");
            let url = if is_health {
                concrete
            } else {
                format!("/api/v1{concrete}")
            };
            let (status, body, _) = call_with(&app, method.clone(), &url, None).await;
            if is_health {
                assert_ne!(status, 401, "{method} {url}");
                continue;
            }
            checked += 1;
            assert_eq!(
                status, 401,
                "{method} {url} answered an anonymous call: {body}"
            );
            let security = &op["security"][0]["bearer"];
            assert!(
                security.as_array().is_some_and(|s| s.len() == 1),
                "{method} {path} declares no scope"
            );
        }
    }
    assert!(checked >= 20, "only {checked} operations walked");
}

#[tokio::test]
async fn no_keys_means_loopback_only() {
    let db = TestDb::sqlite().await;
    let mut settings = test_settings(&db.url);
    settings.listen = "0.0.0.0:0".parse().unwrap();
    // A public address needs the token vault's keys too (see tokens::start_up_rules_for_keys).
    crate::common::use_keys(&mut settings, crate::common::KEY_1);
    let err = efs_iam::startup::Application::with_storage(&settings, db.store.clone())
        .await
        .err()
        .expect("refused to start");
    assert!(
        err.to_string().contains("EFS_IAM_AUTH_HS256_SECRET"),
        "{err}"
    );
    // With a key it may listen anywhere; keys without issuer/audience are refused.
    settings.auth.hs256_secret = Some(SECRET.to_owned().into());
    let err = efs_iam::startup::Application::with_storage(&settings, db.store.clone())
        .await
        .err()
        .expect("issuer required");
    assert!(err.to_string().contains("EFS_IAM_AUTH_ISSUER"), "{err}");
    settings.auth.issuer = Some(ISSUER.into());
    settings.auth.audience = Some(AUDIENCE.into());
    assert!(
        efs_iam::startup::Application::with_storage(&settings, db.store.clone())
            .await
            .is_ok()
    );
    // A JWKS URL alone is a key source too.
    let okta = FakeOkta::start(FakeOktaConfig::default()).await;
    settings.auth.hs256_secret = None;
    settings.auth.jwks_url = Some(format!("{}/oauth2/v1/keys", okta.base_url()));
    assert!(
        efs_iam::startup::Application::with_storage(&settings, db.store.clone())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn metrics_can_require_a_token() {
    let app = spawn_app_on(TestDb::sqlite().await, |s| {
        s.auth.hs256_secret = Some(SECRET.to_owned().into());
        s.auth.issuer = Some(ISSUER.into());
        s.auth.audience = Some(AUDIENCE.into());
        s.auth.metrics_require_auth = true;
    })
    .await;
    assert_eq!(call_with(&app, Method::GET, "/metrics", None).await.0, 401);
    let read = format!("Bearer {}", hs256(&claims("iam:read")));
    assert_eq!(
        call_with(&app, Method::GET, "/metrics", Some(&read))
            .await
            .0,
        200
    );
}

/// The `Access-Control-Allow-Origin` a request from `origin` is answered with.
async fn allowed_origin(app: &TestApp, origin: &str) -> Option<String> {
    let res = app
        .client
        .get(app.url("/health/live"))
        .header("origin", origin)
        .send()
        .await
        .unwrap();
    let allowed = res.headers().get("access-control-allow-origin")?;
    Some(allowed.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn cors_is_off_unless_configured() {
    let app = spawn_secured().await;
    assert_eq!(
        allowed_origin(&app, "https://admin.efs.example").await,
        None
    );
    let app = spawn_app_on(TestDb::sqlite().await, |s| {
        s.cors_origins = vec!["https://admin.efs.example".into()]
    })
    .await;
    assert_eq!(
        allowed_origin(&app, "https://admin.efs.example")
            .await
            .as_deref(),
        Some("https://admin.efs.example")
    );
    assert_eq!(allowed_origin(&app, "https://evil.example").await, None);
}

/// `*` is a deliberate wildcard on its own, and a start-up error (never a panic) among
/// named origins or next to something that is no origin.
#[tokio::test]
async fn cors_wildcard_is_deliberate_or_refused() {
    let app = spawn_app_on(TestDb::sqlite().await, |s| {
        s.cors_origins = vec!["*".into()]
    })
    .await;
    assert_eq!(
        allowed_origin(&app, "https://anywhere.example")
            .await
            .as_deref(),
        Some("*")
    );
    for origins in [
        vec!["*", "https://admin.efs.example"],
        vec!["https://admin.efs.example/path"],
        vec!["not an origin"],
    ] {
        let db = TestDb::sqlite().await;
        let mut settings = test_settings(&db.url);
        settings.cors_origins = origins.iter().map(|o| o.to_string()).collect();
        let err = efs_iam::startup::Application::with_storage(&settings, db.store.clone())
            .await
            .err()
            .expect("refused");
        assert!(
            err.to_string().contains("EFS_IAM_CORS_ORIGINS"),
            "{origins:?}: {err}"
        );
    }
}

/// Past the concurrency limit requests are shed at once with 503 + Retry-After; a
/// request slower than the request timeout is answered 503 too, never left hanging.
#[tokio::test]
async fn overload_and_timeouts_answer_503_problems() {
    use crate::common::options;
    use std::time::{Duration, Instant};
    let mut opts = options();
    opts.max_connections = 1;
    opts.acquire_timeout = Duration::from_secs(10);
    let db = TestDb::sqlite_with(opts, true).await;
    let efs_iam::storage::sql::Db::Sqlite(store) = db.store.db() else {
        unreachable!()
    };
    let store = store.clone();
    let app = spawn_app_on(db, |s| {
        s.max_concurrent_requests = 1;
        s.request_timeout = Duration::from_millis(400);
    })
    .await;
    let held = store.acquire().await.unwrap();
    let client = app.client.clone();
    let url = app.url("/api/v1/portals/1/settings");
    let slow = tokio::spawn(async move { client.get(url).send().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(100)).await;

    let res = app
        .client
        .get(app.url("/api/v1/portals/2/settings"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
    let (_, body) = read(res).await;
    assert_eq!(body["type"], "urn:efs-iam:problem:overloaded");
    assert_eq!(app.get("/health/live").await.0, 200, "probes are not shed");

    let started = Instant::now();
    let res = slow.await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(res.status(), 503);
    let (_, body) = read(res).await;
    assert_eq!(body["type"], "urn:efs-iam:problem:timeout");
    drop(held);
    assert_eq!(app.get("/api/v1/portals/1/settings").await.0, 200);
}

/// Every authorized call leaves an audit line (request id, caller, operation, outcome)
/// at info, without payloads or the token.
#[tokio::test]
async fn calls_are_audited_without_payloads_or_tokens() {
    let logs = crate::common::LogCapture::start();
    let app = spawn_secured().await;
    let token = hs256(&claims("iam:write iam:read"));
    let res = app
        .client
        .put(app.url("/api/v1/portals/9/settings/theme"))
        .header("authorization", format!("Bearer {token}"))
        .header("x-request-id", "audit-req-1")
        .json(&json!({"value": "secret-looking-payload"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let (status, _, _) = call_with(&app, Method::GET, "/api/v1/portals/9/settings", None).await;
    assert_eq!(status, 401);
    let text = logs.text();
    let audit: Vec<&str> = text.lines().filter(|l| l.contains("audit")).collect();
    assert!(
        audit.iter().any(|l| l.contains("audit-req-1")
            && l.contains("sub=efs-admin-php")
            && l.contains("PUT /api/v1/portals/{portal_id}/settings/{key}")
            && l.contains("outcome=201")),
        "{text}"
    );
    assert!(
        audit
            .iter()
            .any(|l| l.contains("outcome=\"unauthenticated\"")
                || l.contains("outcome=unauthenticated")),
        "{text}"
    );
    assert!(!text.contains(&token), "token logged");
    assert!(!text.contains("secret-looking-payload"), "payload logged");
}

// ---- keys from a JWKS URL (the fake Okta's /oauth2/v1/keys) ---------------------------

async fn spawn_with_jwks(okta: &FakeOkta, cooldown: Duration) -> TestApp {
    let url = format!("{}/oauth2/v1/keys", okta.base_url());
    spawn_app_on(TestDb::sqlite().await, move |s| {
        s.auth.jwks_url = Some(url);
        s.auth.issuer = Some(ISSUER.into());
        s.auth.audience = Some(AUDIENCE.into());
        s.tokens.jwks_refetch_cooldown = cooldown;
    })
    .await
}

/// GET a portal's settings with `token`: (status, body, WWW-Authenticate).
async fn get_settings_as(app: &TestApp, token: &str) -> (StatusCode, Value, Option<String>) {
    call_with(
        app,
        Method::GET,
        "/api/v1/portals/1/settings",
        Some(&format!("Bearer {token}")),
    )
    .await
}

/// Signed with the fake Okta's first JWKS key, naming `kid`.
fn signed_by_fake_okta_key(claims: &Value, kid: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    let key = EncodingKey::from_rsa_pem(FakeOkta::test_signing_key_pem().as_bytes()).unwrap();
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

#[tokio::test]
async fn jwks_keys_verify_by_kid_and_stay_pinned() {
    let okta = FakeOkta::start(FakeOktaConfig::default()).await;
    let app = spawn_with_jwks(&okta, Duration::from_secs(3600)).await;
    let fetches = || okta.request_count("GET", "/oauth2/v1/keys");
    assert_eq!(fetches(), 1, "the set is fetched at start-up");

    let good = signed_by_fake_okta_key(&claims("iam:read"), FakeOkta::SIGNING_KEY_ID);
    let (status, _, _) = get_settings_as(&app, &good).await;
    assert_eq!(status, StatusCode::OK);

    // The same key's signature under the other kid: the kid selects the key.
    let wrong_kid = signed_by_fake_okta_key(&claims("iam:read"), FakeOkta::SECOND_SIGNING_KEY_ID);
    let (status, body, _) = get_settings_as(&app, &wrong_kid).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["detail"], "invalid signature");

    // HS256 with the JWKS key's public modulus as the "secret": the kid's key is RS256.
    let mut confused = Header::new(Algorithm::HS256);
    confused.kid = Some(FakeOkta::SIGNING_KEY_ID.into());
    let hs = jsonwebtoken::encode(
        &confused,
        &claims("iam:read"),
        &EncodingKey::from_secret(FakeOkta::test_signing_key_pem().as_bytes()),
    )
    .unwrap();
    let (status, body, _) = get_settings_as(&app, &hs).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["detail"], "the token's algorithm is not accepted");

    // Without a kid a JWKS key is never tried (there is no secret or PEM key here).
    let mut no_kid = Header::new(Algorithm::RS256);
    no_kid.kid = None;
    let key = EncodingKey::from_rsa_pem(FakeOkta::test_signing_key_pem().as_bytes()).unwrap();
    let anonymous_key = jsonwebtoken::encode(&no_kid, &claims("iam:read"), &key).unwrap();
    let (status, _, _) = get_settings_as(&app, &anonymous_key).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Scopes and claims are checked as for any other key.
    let (status, _, _) = call_with(
        &app,
        Method::PUT,
        "/api/v1/portals/1/settings/k",
        Some(&format!("Bearer {good}")),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let mut wrong_aud = claims("iam:read");
    wrong_aud["aud"] = json!("someone-else");
    let t = signed_by_fake_okta_key(&wrong_aud, FakeOkta::SIGNING_KEY_ID);
    let (status, _, _) = get_settings_as(&app, &t).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(fetches(), 1, "known kids are served from the cache");
}

#[tokio::test]
async fn unknown_kids_refetch_the_jwks_at_most_once_per_cooldown() {
    let okta = FakeOkta::start(FakeOktaConfig::default()).await;
    let app = spawn_with_jwks(&okta, Duration::from_secs(3600)).await;
    let fetches = || okta.request_count("GET", "/oauth2/v1/keys");
    assert_eq!(fetches(), 1);
    for i in 0..5 {
        let t = signed_by_fake_okta_key(&claims("iam:read"), &format!("rotated-{i}"));
        let (status, body, _) = get_settings_as(&app, &t).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["detail"], "the token names an unknown key (kid)");
    }
    assert_eq!(
        fetches(),
        1,
        "inside the cool-down, bogus kids cause no fetch"
    );

    // With no cool-down, an unknown kid refetches (a key rotated in at the provider).
    let okta = FakeOkta::start(FakeOktaConfig::default()).await;
    let app = spawn_with_jwks(&okta, Duration::ZERO).await;
    let t = signed_by_fake_okta_key(&claims("iam:read"), "rotated-in-later");
    let (status, _, _) = get_settings_as(&app, &t).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(okta.request_count("GET", "/oauth2/v1/keys"), 2);
}

#[tokio::test]
async fn an_unreachable_jwks_answers_503_not_401() {
    let okta = FakeOkta::start(FakeOktaConfig::default()).await;
    okta.inject(Fault::any_method("/oauth2/v1/keys", FaultKind::InternalServerError).times(2));
    let app = spawn_with_jwks(&okta, Duration::ZERO).await;
    let good = signed_by_fake_okta_key(&claims("iam:read"), FakeOkta::SIGNING_KEY_ID);
    let res = app
        .client
        .get(app.url("/api/v1/portals/1/settings"))
        .bearer_auth(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["retry-after"], "5");
    let (status, body) = read(res).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["type"], "urn:efs-iam:problem:service-unavailable");
    assert!(!body.to_string().contains(&good));

    // The provider is back: the next call fetches the set and passes.
    let (status, _, _) = get_settings_as(&app, &good).await;
    assert_eq!(status, StatusCode::OK);
}
