//! The token vault over HTTP: expiry, id_token verification against the fake Okta
//! (discovery + JWKS), logout everywhere, memcached outages and limits, start-up rules
//! and the `tokens re-encrypt` command.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use efs_iam::tokens::ManualClock;
use fake_okta::{FakeOkta, FakeOktaConfig};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::common::{assert_problem, read, Api};
use crate::common::{
    memcached_servers, spawn_app_on, spawn_app_with_clock, test_settings, use_keys, use_memcached,
    CuttableProxy, TestApp, TestDb, HASH_KEY, KEY_1, KEY_2,
};

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn get_reports_when_stored_and_when_it_expires_and_then_404() {
    let clock = ManualClock::new();
    let app = spawn_app_with_clock(TestDb::sqlite().await, clock.clone(), |s| {
        use_keys(s, KEY_1)
    })
    .await;
    let path = "/api/v1/sessions/clocked/token";
    let body = json!({"access_token": "a", "expires_in": 120});
    assert_eq!(app.put(path, body.clone()).await.0, 204);
    let (status, got) = app.get(path).await;
    assert_eq!(status, 200, "{got}");
    assert_eq!(got["idp_response"], body);
    let stored = chrono::DateTime::parse_from_rfc3339(got["stored_at"].as_str().unwrap()).unwrap();
    let expires =
        chrono::DateTime::parse_from_rfc3339(got["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!((expires - stored).num_seconds(), 120);
    assert!(got.get("claims").is_none());
    clock.advance(Duration::from_secs(120));
    assert_problem(&app.get(path).await, 404, "not-found");
    let got = app
        .put(path, json!({"access_token": "a", "expires_in": -1}))
        .await;
    assert_eq!(
        assert_problem(&got, 422, "validation-failed"),
        vec!["expires_in"]
    );
}

struct Oidc {
    app: TestApp,
    okta: FakeOkta,
}

const PORTAL: &str = "/api/v1/portals/9/settings";

async fn oidc_app(adjust: impl FnOnce(&mut efs_iam::config::Settings)) -> Oidc {
    let okta = FakeOkta::start(FakeOktaConfig::default()).await;
    let issuer = reqwest::Url::parse(&okta.base_url()).unwrap();
    let app = spawn_app_on(TestDb::sqlite().await, |s| {
        use_keys(s, KEY_1);
        s.tokens.oidc_allowed_issuers = vec![issuer];
        adjust(s);
    })
    .await;
    let (status, body) = app.put(PORTAL,
        json!({"settings": {"okta_issuer": okta.base_url(), "okta_client_id": FakeOkta::DEFAULT_ID_TOKEN_AUDIENCE}}),
    )
    .await;
    assert!(status.is_success(), "{status} {body}");
    Oidc { app, okta }
}

async fn put_with_id_token(
    app: &TestApp,
    session: &str,
    id_token: &str,
) -> (reqwest::StatusCode, Value) {
    app.put(
        &format!("/api/v1/sessions/{session}/token?portal_id=9"),
        json!({"access_token": "at", "id_token": id_token, "expires_in": 3600}),
    )
    .await
}

/// Signs `claims` with the fake's signing key under any header.
fn forge(header: Header, claims: Value) -> String {
    let pem = FakeOkta::test_signing_key_pem();
    let key = {
        use rsa::pkcs1::EncodeRsaPrivateKey;
        use rsa::pkcs8::DecodePrivateKey;
        let k = rsa::RsaPrivateKey::from_pkcs8_pem(pem)
            .or_else(|_| {
                use rsa::pkcs1::DecodeRsaPrivateKey;
                rsa::RsaPrivateKey::from_pkcs1_pem(pem)
            })
            .unwrap();
        EncodingKey::from_rsa_der(k.to_pkcs1_der().unwrap().as_bytes())
    };
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn base_claims(okta: &FakeOkta) -> Value {
    json!({"iss": okta.base_url(), "aud": FakeOkta::DEFAULT_ID_TOKEN_AUDIENCE, "sub": "00uFORGED", "iat": now(), "exp": now() + 3600})
}

#[tokio::test]
async fn valid_id_tokens_are_verified_and_their_claims_returned() {
    let Oidc { app, okta } = oidc_app(|_| {}).await;
    let token = okta.mint_id_token(json!({"sub": "00uVALID", "email": "v@example.com"}));
    assert_eq!(put_with_id_token(&app, "valid-1", &token).await.0, 204);
    let (_, got) = app.get("/api/v1/sessions/valid-1/token").await;
    assert_eq!(got["claims"]["sub"], "00uVALID");
    assert_eq!(got["claims"]["email"], "v@example.com");
    assert!(got["claims"]["exp"].as_i64().unwrap() > now());
    assert_eq!(got["portal_id"], 9);
    // The second JWKS key is selected by kid.
    let token = okta.mint_id_token_with_second_key(json!({"sub": "00uVALID"}));
    assert_eq!(put_with_id_token(&app, "valid-2", &token).await.0, 204);
    // Without a portal, or for a portal without an issuer, nothing is verified.
    let (status, _) = app
        .put(
            "/api/v1/sessions/unverified/token?portal_id=10",
            json!({"id_token": "not even a JWT"}),
        )
        .await;
    assert_eq!(status, 204);
    assert!(app
        .get("/api/v1/sessions/unverified/token")
        .await
        .1
        .get("claims")
        .is_none());
}

#[tokio::test]
async fn every_invalid_id_token_is_refused_with_its_reason() {
    let Oidc { app, okta } = oidc_app(|_| {}).await;
    let valid = okta.mint_id_token(json!({"sub": "00uX"}));
    let (head, rest) = valid.split_once('.').unwrap();
    let (payload, sig) = rest.split_once('.').unwrap();
    let mut bad_sig = sig.to_owned().into_bytes();
    bad_sig[5] = if bad_sig[5] == b'A' { b'B' } else { b'A' };
    let bad_signature = format!("{head}.{payload}.{}", String::from_utf8(bad_sig).unwrap());
    let other_payload = URL_SAFE_NO_PAD.encode(
        serde_json::to_vec(&json!({"iss": okta.base_url(), "aud": FakeOkta::DEFAULT_ID_TOKEN_AUDIENCE, "sub": "00uADMIN", "iat": now(), "exp": now() + 3600})).unwrap(),
    );
    let swapped_payload = format!("{head}.{other_payload}.{sig}");

    let mut unknown_kid = Header::new(Algorithm::RS256);
    unknown_kid.kid = Some("no-such-kid".into());
    let mut kid1 = Header::new(Algorithm::RS256);
    kid1.kid = Some(FakeOkta::SIGNING_KEY_ID.into());
    let mut no_kid = Header::new(Algorithm::RS256);
    no_kid.kid = None;
    let mut c = base_claims(&okta);
    c["iss"] = json!("https://evil.example.com");
    let wrong_iss = forge(kid1.clone(), c);
    let mut c = base_claims(&okta);
    c["aud"] = json!("0oaSOMEONEELSE");
    let wrong_aud = forge(kid1.clone(), c);
    let mut c = base_claims(&okta);
    c["exp"] = json!(now() - 3600);
    c["iat"] = json!(now() - 7200);
    let expired = forge(kid1.clone(), c);
    let mut c = base_claims(&okta);
    c["iat"] = json!(now() + 3600);
    c["exp"] = json!(now() + 7200);
    let issued_in_future = forge(kid1.clone(), c);

    // alg none: no signature at all.
    let none_header = URL_SAFE_NO_PAD.encode(format!(
        r#"{{"alg":"none","kid":"{}"}}"#,
        FakeOkta::SIGNING_KEY_ID
    ));
    let none_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&base_claims(&okta)).unwrap());
    let alg_none = format!("{none_header}.{none_payload}.");
    // HS256 keyed with the RSA public key (the classic algorithm-confusion attack),
    // both as PEM and as the JWKS's raw modulus.
    let public_pem = {
        use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
        let k = rsa::RsaPrivateKey::from_pkcs8_pem(FakeOkta::test_signing_key_pem())
            .or_else(|_| {
                use rsa::pkcs1::DecodeRsaPrivateKey;
                rsa::RsaPrivateKey::from_pkcs1_pem(FakeOkta::test_signing_key_pem())
            })
            .unwrap();
        k.to_public_key()
            .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
            .unwrap()
    };
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some(FakeOkta::SIGNING_KEY_ID.into());
    let hs256 = jsonwebtoken::encode(
        &hs,
        &base_claims(&okta),
        &EncodingKey::from_secret(public_pem.as_bytes()),
    )
    .unwrap();

    let cases: Vec<(&str, String, &str)> = vec![
        ("bad signature", bad_signature, "signature"),
        ("payload swapped", swapped_payload, "signature"),
        ("unknown kid", forge(unknown_kid, base_claims(&okta)), "kid"),
        ("no kid", forge(no_kid, base_claims(&okta)), "kid"),
        ("wrong iss", wrong_iss, "iss"),
        ("wrong aud", wrong_aud, "aud"),
        ("expired", expired, "expired"),
        ("iat in the future", issued_in_future, "iat"),
        ("alg none", alg_none, "none"),
        ("HS256 with the public key", hs256, "HS256"),
        ("not a JWT", "abc.def".into(), "well-formed"),
    ];
    for (i, (name, token, reason)) in cases.into_iter().enumerate() {
        let session = format!("refused-{i}");
        let got = put_with_id_token(&app, &session, &token).await;
        assert_eq!(
            assert_problem(&got, 422, "invalid-id-token"),
            vec!["id_token"],
            "{name}: {}",
            got.1
        );
        let detail = got.1["detail"].as_str().unwrap();
        assert!(detail.contains(reason), "{name}: {detail}");
        assert!(!detail.contains(&token), "{name}: the token is not echoed");
        assert_problem(
            &app.get(&format!("/api/v1/sessions/{session}/token")).await,
            404,
            "not-found",
        );
    }
    let got = app
        .put(
            "/api/v1/sessions/s/token?portal_id=9",
            json!({"id_token": 42}),
        )
        .await;
    assert_problem(&got, 422, "invalid-id-token");
}

#[tokio::test]
async fn jwks_is_cached_and_refetched_once_per_cooldown_on_unknown_kids() {
    let Oidc { app, okta } = oidc_app(|s| {
        s.tokens.jwks_refetch_cooldown = Duration::from_secs(1);
    })
    .await;
    let keys = || okta.request_count("GET", "/oauth2/v1/keys");
    let valid = |i: usize| {
        let token = okta.mint_id_token(json!({"sub": "00uCACHE"}));
        let app = &app;
        async move { put_with_id_token(app, &format!("c{i}"), &token).await.0 }
    };
    let mut unknown = Header::new(Algorithm::RS256);
    unknown.kid = Some("rotated-away".into());
    let bogus = forge(unknown, base_claims(&okta));

    assert_eq!(valid(0).await, 204);
    assert_eq!(keys(), 1);
    // Within the cool-down after that fetch: refused from the cache, no fetch.
    assert_eq!(put_with_id_token(&app, "u0", &bogus).await.0, 422);
    assert_eq!(keys(), 1);
    for i in 1..3 {
        assert_eq!(valid(i).await, 204);
    }
    assert_eq!(keys(), 1, "fetched once, then cached");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // After it: one refetch, then the cool-down again.
    assert_eq!(put_with_id_token(&app, "u1", &bogus).await.0, 422);
    assert_eq!(keys(), 2);
    for i in 2..5 {
        assert_eq!(
            put_with_id_token(&app, &format!("u{i}"), &bogus).await.0,
            422
        );
    }
    assert_eq!(keys(), 2, "no fetch storm");
    assert_eq!(valid(9).await, 204);
    assert_eq!(keys(), 2);
}

#[tokio::test]
async fn unreachable_issuer_and_incomplete_portal_settings() {
    let okta = FakeOkta::start(FakeOktaConfig::default()).await;
    let app = spawn_app_on(TestDb::sqlite().await, |s| {
        use_keys(s, KEY_1);
        s.tokens.oidc_allowed_issuers = ["http://127.0.0.1:9".to_owned(), okta.base_url()]
            .iter()
            .map(|u| reqwest::Url::parse(u).unwrap())
            .collect();
    })
    .await;
    app.put(
        "/api/v1/portals/4/settings",
        json!({"settings": {"okta_issuer": "http://127.0.0.1:9", "okta_client_id": "0oa1"}}),
    )
    .await;
    let got = app
        .put(
            "/api/v1/sessions/s/token?portal_id=4",
            json!({"id_token": "a.b.c"}),
        )
        .await;
    // Not even a header: refused before any fetch.
    assert_problem(&got, 422, "invalid-id-token");
    let token = okta.mint_id_token(json!({"sub": "00uX"}));
    let got = app
        .put(
            "/api/v1/sessions/s/token?portal_id=4",
            json!({"id_token": token}),
        )
        .await;
    assert_problem(&got, 503, "idp-unavailable");
    app.put(
        "/api/v1/portals/5/settings",
        json!({"settings": {"okta_issuer": okta.base_url()}}),
    )
    .await;
    let got = app
        .put(
            "/api/v1/sessions/s/token?portal_id=5",
            json!({"id_token": token}),
        )
        .await;
    assert_eq!(
        assert_problem(&got, 422, "validation-failed"),
        vec!["portal_id"]
    );
    for bad in ["0", "-1", "x", "99999999999"] {
        let got = app
            .put(
                &format!("/api/v1/sessions/s/token?portal_id={bad}"),
                json!({"a": 1}),
            )
            .await;
        assert_eq!(
            assert_problem(&got, 400, "invalid-parameter"),
            vec!["portal_id"],
            "{bad}"
        );
    }
    let got = app
        .put("/api/v1/sessions/s/token?portal=4", json!({"a": 1}))
        .await;
    assert_problem(&got, 400, "invalid-parameter");
}

#[tokio::test]
async fn logout_everywhere_over_http() {
    let Oidc { app, okta } = oidc_app(|_| {}).await;
    for (s, sub) in [("l1", "00uLOGOUT"), ("l2", "00uLOGOUT"), ("l3", "00uSTAYS")] {
        let token = okta.mint_id_token(json!({"sub": sub}));
        assert_eq!(put_with_id_token(&app, s, &token).await.0, 204);
    }
    let (status, body) = app.delete("/api/v1/okta-users/00uLOGOUT/sessions").await;
    assert_eq!((status.as_u16(), body), (200, json!({"deleted": 2})));
    assert_problem(
        &app.get("/api/v1/sessions/l1/token").await,
        404,
        "not-found",
    );
    assert_eq!(app.get("/api/v1/sessions/l3/token").await.0, 200);
    let (_, body) = app.delete("/api/v1/okta-users/00uLOGOUT/sessions").await;
    assert_eq!(body, json!({"deleted": 0}));
    let got = app
        .delete("/api/v1/okta-users/not-an-okta-id!/sessions")
        .await;
    assert_eq!(
        assert_problem(&got, 400, "invalid-parameter"),
        vec!["okta_user_id"]
    );
}

/// The vault on the first of `servers`, reached through a proxy the test can cut or
/// freeze.
async fn behind_a_proxy(servers: &str) -> (TestApp, CuttableProxy) {
    let proxy = CuttableProxy::start(servers.split(',').next().unwrap().trim()).await;
    let app = spawn_app_on(TestDb::sqlite().await, |s| {
        use_keys(s, KEY_1);
        use_memcached(s, &proxy.addr);
        s.ready_timeout = Duration::from_secs(2);
    })
    .await;
    (app, proxy)
}

#[tokio::test]
async fn memcached_down_is_503_and_red_readiness_until_it_returns() {
    let Some(servers) = memcached_servers() else {
        return;
    };
    let (app, proxy) = behind_a_proxy(&servers).await;
    let path = "/api/v1/sessions/mc-outage/token";
    assert_eq!(app.put(path, json!({"access_token": "a"})).await.0, 204);
    let (status, body) = app.get("/health/ready").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["components"]["token_store"]["status"], "up");

    proxy.cut();
    // Past the one second a readiness answer is reused.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let res = app.client.get(app.url(path)).send().await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    let got = read(res).await;
    assert_problem(&got, 503, "token-store-unavailable");
    assert_problem(
        &app.put(path, json!({"access_token": "b"})).await,
        503,
        "token-store-unavailable",
    );
    let (status, body) = app.get("/health/ready").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["components"]["token_store"]["status"], "down");
    assert_eq!(body["components"]["database"]["status"], "up");
    let detail = body["components"]["token_store"]["detail"]
        .as_str()
        .unwrap();
    assert!(
        detail.contains("1 of 1 memcached servers"),
        "names the failing server by position: {detail}"
    );
    let (_, port) = proxy.addr.rsplit_once(':').unwrap();
    assert!(
        !body.to_string().contains(port),
        "a public answer names no internal address: {body}"
    );

    proxy.restore();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = app.get("/health/ready").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.get(path).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["idp_response"]["access_token"], "a",
        "kept across the outage"
    );
    assert_eq!(app.put(path, json!({"access_token": "c"})).await.0, 204);
}

/// memcached frozen (SIGSTOP, a partition: connections open, no bytes back): token
/// calls answer 503 within the memcached timeout (500 ms by default; the test allows
/// scheduling slack), and the vault works again once it thaws.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memcached_frozen_is_503_within_its_timeout_and_recovers() {
    let Some(servers) = memcached_servers() else {
        return;
    };
    let (app, proxy) = behind_a_proxy(&servers).await;
    let path = "/api/v1/sessions/mc-frozen/token";
    assert_eq!(app.put(path, json!({"access_token": "a"})).await.0, 204);
    proxy.freeze();
    for _ in 0..5 {
        let started = std::time::Instant::now();
        let got = app.get(path).await;
        assert_problem(&got, 503, "token-store-unavailable");
        let write = app.put(path, json!({"access_token": "b"})).await;
        assert_problem(&write, 503, "token-store-unavailable");
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "a lookup and a write took {:?}",
            started.elapsed()
        );
    }
    proxy.thaw();
    let mut back = false;
    for _ in 0..50 {
        if app.get(path).await.0 == 200 {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "the vault did not come back within 5 s of the thaw");
    // A write answered 503 may still land when the bytes flow again (its outcome is
    // unknown to the caller, as after any timeout); a new one is read back.
    assert_eq!(app.put(path, json!({"access_token": "c"})).await.0, 204);
    assert_eq!(app.get(path).await.1["idp_response"]["access_token"], "c");
}

#[tokio::test]
async fn over_large_responses_are_413_on_memcached() {
    let Some(servers) = memcached_servers() else {
        return;
    };
    let app = spawn_app_on(TestDb::sqlite().await, |s| {
        use_keys(s, KEY_1);
        use_memcached(s, &servers);
        s.tokens.memcached_max_item_bytes = 64 * 1024;
    })
    .await;
    let path = "/api/v1/sessions/huge/token";
    let got = app
        .put(path, json!({"access_token": "x".repeat(100_000)}))
        .await;
    assert_problem(&got, 413, "token-too-large");
    assert!(got.1["detail"].as_str().unwrap().contains("65536"));
    assert_problem(&app.get(path).await, 404, "not-found");
}

#[tokio::test]
async fn start_up_rules_for_keys() {
    let db = TestDb::sqlite().await;
    let storage = db.store.clone();
    // No keys on a non-loopback address: refused, naming the variable.
    let mut settings = test_settings(&db.url);
    settings.listen = "0.0.0.0:0".parse().unwrap();
    // (Caller authentication has its own loopback rule, checked first: satisfy it.)
    settings.auth.hs256_secret = Some("an-hs256-secret-of-at-least-32-bytes".to_owned().into());
    settings.auth.issuer = Some("efs".into());
    settings.auth.audience = Some("efs-iam".into());
    let err = efs_iam::startup::Application::with_storage(&settings, storage.clone())
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("EFS_IAM_TOKEN_KEYS"), "{err}");
    // Keys without the hash key: refused.
    settings.tokens.token_keys = Some(efs_iam::tokens::KeyRing::parse(KEY_1).unwrap());
    let err = efs_iam::startup::Application::with_storage(&settings, storage.clone())
        .await
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("EFS_IAM_SESSION_HASH_KEY"),
        "{err}"
    );
    use_keys(&mut settings, KEY_1);
    assert!(
        efs_iam::startup::Application::with_storage(&settings, storage.clone())
            .await
            .is_ok()
    );
    // memcached without servers.
    settings.tokens.token_store = efs_iam::tokens::TokenBackendKind::Memcached;
    let err = efs_iam::startup::Application::with_storage(&settings, storage)
        .await
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("EFS_IAM_MEMCACHED_SERVERS"),
        "{err}"
    );
}

#[test]
fn bad_key_settings_stop_the_binary_naming_the_variable_without_echoing_it() {
    let secretish = "k1:c2VjcmV0LWJ1dC10b28tc2hvcnQ=";
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_efs-iam"))
        .arg("openapi")
        .env("EFS_IAM_TOKEN_KEYS", secretish)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("EFS_IAM_TOKEN_KEYS"), "{stderr}");
    assert!(!stderr.contains("c2VjcmV0"), "{stderr}");
}

#[tokio::test]
async fn the_reencrypt_command_rewrites_under_the_newest_key() {
    let db = TestDb::sqlite().await;
    let url = db.url.clone();
    // A legacy plaintext row, and rows sealed with k1 through the API.
    if let efs_iam::storage::sql::Db::Sqlite(s) = db.store.db() {
        sqlx::query("INSERT INTO iam_token_data (session_id, idp_response) VALUES (X'6f6c642d6f6e65', '{\"access_token\":\"plain\"}')")
            .execute(s)
            .await
            .unwrap();
    }
    let app = spawn_app_on(db, |s| use_keys(s, KEY_1)).await;
    for i in 0..3 {
        let (s, _) = app
            .put(
                &format!("/api/v1/sessions/sealed-{i}/token"),
                json!({"access_token": format!("k1-{i}")}),
            )
            .await;
        assert_eq!(s, 204);
    }
    let run = |keys: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_efs-iam"))
            .args(["tokens", "re-encrypt"])
            .env("EFS_IAM_DATABASE_URL", &url)
            .env("EFS_IAM_TOKEN_KEYS", keys)
            .env("EFS_IAM_SESSION_HASH_KEY", HASH_KEY)
            .env("EFS_IAM_LOG", "warn")
            .output()
            .unwrap()
    };
    let out = run(&format!("{KEY_2},{KEY_1}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["rewritten"], 4, "{report}");
    assert_eq!(report["failed"], 0);

    // Only k2 is needed from now on.
    let mut settings = test_settings(&url);
    use_keys(&mut settings, KEY_2);
    let storage = app.db.store.clone();
    let vault = efs_iam::startup::build_vault(
        &settings,
        &storage,
        std::sync::Arc::new(efs_iam::tokens::SystemClock),
    )
    .unwrap();
    for i in 0..3 {
        let s = efs_iam::domain::SessionId::parse(&format!("sealed-{i}")).unwrap();
        assert_eq!(
            vault.get(&s).await.unwrap().unwrap().idp_response["access_token"],
            format!("k1-{i}")
        );
    }
    let old = efs_iam::domain::SessionId::parse("old-one").unwrap();
    assert_eq!(
        vault.get(&old).await.unwrap().unwrap().idp_response["access_token"],
        "plain"
    );
    // Run with a ring that cannot open them: non-zero exit, rows left alone.
    let out = run(KEY_1);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("could not be opened"));
}
