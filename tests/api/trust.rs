//! Trust boundaries: no caller can steer where efs-iam fetches keys from, and the
//! settings that decide identities and group memberships need their own scope, are
//! checked, and are audited.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use fake_okta::{FakeOkta, FakeOktaConfig, Fault, FaultKind};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::{Method, Url};
use serde_json::{json, Value};

use crate::auth::{call_with, claims, hs256, spawn_secured_with};
use crate::common::{
    assert_problem, spawn_app_on, use_keys, Api, LogCapture, TestApp, TestDb, KEY_1,
};

const PORTAL: &str = "/api/v1/portals/31/settings";

fn bearer(scope: &str) -> String {
    format!("Bearer {}", hs256(&claims(scope)))
}

async fn put_as(app: &TestApp, scope: &str, path: &str, body: Value) -> (StatusCode, Value) {
    let res = app
        .client
        .put(app.url(path))
        .header("authorization", bearer(scope))
        .json(&body)
        .send()
        .await
        .unwrap();
    crate::common::read(res).await
}

// ---- 2. settings that steer trust need iam:admin ------------------------------------

#[tokio::test]
async fn trust_settings_need_the_admin_scope_under_every_spelling_and_route() {
    let okta = FakeOkta::start(FakeOktaConfig::default()).await;
    let group = okta.create_group("portal 31");
    let org = Url::parse(&okta.base_url()).unwrap();
    let app = spawn_secured_with(move |s| s.tokens.oidc_allowed_issuers = vec![org]).await;
    let issuer = okta.base_url();
    let writes: Vec<(&str, Value)> = vec![
        ("okta_issuer", json!(issuer)),
        ("OKTA_ISSUER", json!(issuer)),
        ("okta_client_id", json!("0oaABC")),
        ("Okta_Client_Id", json!("0oaABC")),
        ("okta_group_id", json!(group)),
        ("okta_GROUP_id", json!(group)),
    ];
    for (key, value) in &writes {
        let single = format!("{PORTAL}/{key}");
        let got = put_as(&app, "iam:write", &single, json!({ "value": value })).await;
        assert_problem(&got, 403, "forbidden");
        assert!(
            got.1["detail"].as_str().unwrap().contains("iam:admin"),
            "{key}"
        );
        let got = put_as(
            &app,
            "iam:write",
            PORTAL,
            json!({"settings": {*key: value}}),
        )
        .await;
        assert_problem(&got, 403, "forbidden");
        let (status, _, _) =
            call_with(&app, Method::DELETE, &single, Some(&bearer("iam:write"))).await;
        assert_eq!(status, 403, "DELETE {key}");
    }
    // Nothing of it landed.
    let (_, all) = app_get(&app, PORTAL).await;
    assert_eq!(all["settings"], json!({}));

    // With iam:admin (next to iam:write) they are written and deleted.
    for (key, value) in &writes[..2] {
        let got = put_as(
            &app,
            "iam:write iam:admin",
            &format!("{PORTAL}/{key}"),
            json!({ "value": value }),
        )
        .await;
        assert!(got.0.is_success(), "{key}: {got:?}");
    }
    let got = put_as(
        &app,
        "iam:write iam:admin",
        PORTAL,
        json!({"settings": {"okta_client_id": "0oaABC", "okta_group_id": group}}),
    )
    .await;
    assert_eq!(got.0, 200, "{got:?}");
    let (status, _, _) = call_with(
        &app,
        Method::DELETE,
        &format!("{PORTAL}/okta_client_id"),
        Some(&bearer("iam:write iam:admin")),
    )
    .await;
    assert_eq!(status, 204);
    // iam:admin alone is not iam:write.
    let got = put_as(
        &app,
        "iam:admin",
        &format!("{PORTAL}/okta_client_id"),
        json!({"value": "x"}),
    )
    .await;
    assert_problem(&got, 403, "forbidden");
    // Everyday settings stay with iam:write.
    let got = put_as(
        &app,
        "iam:write",
        &format!("{PORTAL}/theme"),
        json!({"value": "dark"}),
    )
    .await;
    assert_eq!(got.0, 201, "{got:?}");
}

async fn app_get(app: &TestApp, path: &str) -> (StatusCode, Value) {
    let (status, body, _) = call_with(app, Method::GET, path, Some(&bearer("iam:read"))).await;
    (status, body)
}

#[tokio::test]
async fn the_openapi_document_shows_the_admin_rule() {
    let spec = serde_json::to_value(efs_iam::http::openapi()).unwrap();
    for (path, method) in [
        ("/portals/{portal_id}/settings/{key}", "put"),
        ("/portals/{portal_id}/settings/{key}", "delete"),
        ("/portals/{portal_id}/settings", "put"),
    ] {
        let op = &spec["paths"][path][method];
        assert!(
            op["description"]
                .as_str()
                .unwrap_or("")
                .contains("iam:admin"),
            "{method} {path}"
        );
        assert!(
            op["responses"]["403"]["description"]
                .as_str()
                .unwrap()
                .contains("iam:admin"),
            "{method} {path}"
        );
    }
    let get = &spec["paths"]["/portals/{portal_id}/settings"]["get"];
    assert!(!get["description"]
        .as_str()
        .unwrap_or("")
        .contains("iam:admin"));
}

#[tokio::test]
async fn a_group_id_okta_does_not_have_is_refused_when_okta_is_configured() {
    let okta = FakeOkta::start(FakeOktaConfig::default()).await;
    let group = okta.create_group("portal 32");
    let org = okta.base_url();
    let app = spawn_app_on(TestDb::sqlite().await, |s| {
        s.okta.org_url = Some(Url::parse(&org).unwrap());
        s.okta.api_token = Some("test-token".to_owned().into());
    })
    .await;
    let path = "/api/v1/portals/32/settings/okta_group_id";
    let got = app
        .put(path, json!({"value": "00gNOSUCHGROUP000001"}))
        .await;
    assert_eq!(
        assert_problem(&got, 422, "okta-group-not-found"),
        vec!["value"]
    );
    let got = app
        .put(
            "/api/v1/portals/32/settings",
            json!({"settings": {"okta_group_id": "00gNOSUCHGROUP000001"}}),
        )
        .await;
    assert_eq!(
        assert_problem(&got, 422, "okta-group-not-found"),
        vec!["settings.okta_group_id"]
    );
    let got = app.put(path, json!({"value": "not a group id!"})).await;
    assert_eq!(
        assert_problem(&got, 422, "validation-failed"),
        vec!["value"]
    );
    assert!(app.get(path).await.0 == 404, "nothing was stored");
    assert_eq!(okta.request_count("GET", "/api/v1/groups/{groupId}"), 2);
    let got = app.put(path, json!({"value": group})).await;
    assert_eq!(got.0, 201, "{got:?}");
    // Okta down: the check cannot be made, nothing is written.
    okta.inject(Fault::new("GET", "/api/v1/groups/", FaultKind::ServiceUnavailable).times(10));
    let got = app
        .put(path, json!({"value": "00gANOTHERGROUP00001"}))
        .await;
    assert_problem(&got, 503, "okta-unavailable");
    assert_eq!(app.get(path).await.1["value"], json!(group));
    // Clearing it needs no check.
    assert_eq!(app.put(path, json!({"value": null})).await.0, 200);
}

#[tokio::test]
async fn every_change_of_a_trust_setting_is_audited_with_old_and_new_value() {
    let logs = LogCapture::start();
    let app = spawn_secured_with(|_| {}).await;
    let admin = "iam:write iam:admin";
    put_as(
        &app,
        admin,
        &format!("{PORTAL}/okta_client_id"),
        json!({"value": "0oaOLD"}),
    )
    .await;
    put_as(
        &app,
        admin,
        PORTAL,
        json!({"settings": {"OKTA_CLIENT_ID": "0oaNEW"}}),
    )
    .await;
    call_with(
        &app,
        Method::DELETE,
        &format!("{PORTAL}/okta_client_id"),
        Some(&bearer(admin)),
    )
    .await;
    put_as(
        &app,
        "iam:write",
        &format!("{PORTAL}/theme"),
        json!({"value": "dark"}),
    )
    .await;
    let text = logs.text();
    let changes: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("trust setting changed"))
        .collect();
    assert_eq!(changes.len(), 3, "{text}");
    for (line, (old, new)) in changes.iter().zip([
        ("None", "Some(\"0oaOLD\")"),
        ("Some(\"0oaOLD\")", "Some(\"0oaNEW\")"),
        ("Some(\"0oaNEW\")", "None"),
    ]) {
        assert!(line.contains("audit"), "{line}");
        assert!(line.contains("sub=efs-admin-php"), "{line}");
        assert!(line.contains("portal=31"), "{line}");
        assert!(
            line.to_lowercase().contains("key=\"okta_client_id\""),
            "{line}"
        );
        assert!(line.contains(&format!("old={old}")), "{line}");
        assert!(line.contains(&format!("new={new}")), "{line}");
    }
}

// ---- 1. outbound URLs come from the operator ------------------------------------------

/// An app with token keys, allowing the given issuer origins.
async fn oidc_app(allowed: &[String]) -> TestApp {
    let allowed: Vec<Url> = allowed.iter().map(|u| Url::parse(u).unwrap()).collect();
    spawn_app_on(TestDb::sqlite().await, move |s| {
        use_keys(s, KEY_1);
        s.tokens.oidc_allowed_issuers = allowed;
        s.tokens.jwks_cache_ttl = Duration::from_secs(3600);
    })
    .await
}

#[tokio::test]
async fn an_issuer_outside_the_allow_list_is_refused_when_written() {
    let okta = FakeOkta::start(FakeOktaConfig::default()).await;
    let app = oidc_app(&["https://acme.okta.com".into()]).await;
    for bad in [
        "http://169.254.169.254/latest/meta-data",
        "https://evil.example",
        "https://acme.okta.com.evil.example/oauth2/default",
        "http://acme.okta.com/oauth2/default",
        "https://user:pass@acme.okta.com",
        &okta.base_url(),
        "ftp://acme.okta.com",
        // Fine once trimmed, but stored as sent: refused, not trimmed.
        "https://acme.okta.com\n",
        " https://acme.okta.com",
    ] {
        let got = app
            .put(&format!("{PORTAL}/okta_issuer"), json!({"value": bad}))
            .await;
        assert_eq!(
            assert_problem(&got, 422, "validation-failed"),
            vec!["value"],
            "{bad}"
        );
        assert!(
            got.1["detail"].as_str().unwrap().contains("okta_issuer"),
            "{bad}: {}",
            got.1
        );
        let got = app
            .put(PORTAL, json!({"settings": {"Okta_Issuer": bad}}))
            .await;
        assert_eq!(
            assert_problem(&got, 422, "validation-failed"),
            vec!["settings.Okta_Issuer"],
            "{bad}"
        );
    }
    for good in [
        "https://acme.okta.com",
        "https://acme.okta.com/oauth2/default",
    ] {
        let got = app
            .put(&format!("{PORTAL}/okta_issuer"), json!({"value": good}))
            .await;
        assert!(got.0.is_success(), "{good}: {got:?}");
        let (_, stored) = app.get(&format!("{PORTAL}/okta_issuer")).await;
        assert_eq!(stored["value"], good, "stored exactly as checked");
    }
    assert_eq!(okta.requests().len(), 0, "nothing fetched from anywhere");
}

#[tokio::test]
async fn with_no_allowed_issuer_id_tokens_fail_closed() {
    let okta = FakeOkta::start(FakeOktaConfig::default()).await;
    let app = oidc_app(&[]).await;
    let got = app
        .put(
            &format!("{PORTAL}/okta_issuer"),
            json!({"value": okta.base_url()}),
        )
        .await;
    assert_problem(&got, 422, "validation-failed");
    assert!(
        got.1["detail"]
            .as_str()
            .unwrap()
            .contains("no issuer is allowed"),
        "{}",
        got.1
    );
    // A setting written before (or straight into the database) is refused when used.
    app.db
        .execute(&format!(
            "INSERT INTO iam_portal_settings (portal_id, `key`, value) VALUES \
             (31, 'okta_issuer', '{}'), (31, 'okta_client_id', '{}')",
            okta.base_url(),
            FakeOkta::DEFAULT_ID_TOKEN_AUDIENCE
        ))
        .await;
    let id_token = okta.mint_id_token(json!({"sub": "00uFORGED00000000001"}));
    let got = app
        .put(
            "/api/v1/sessions/s-1/token?portal_id=31",
            json!({"access_token": "a", "id_token": id_token}),
        )
        .await;
    assert_problem(&got, 409, "issuer-not-allowed");
    assert_eq!(
        app.get("/api/v1/sessions/s-1/token").await.0,
        404,
        "not stored"
    );
    assert_eq!(okta.requests().len(), 0, "no discovery, no JWKS");
}

/// An identity provider of the test's own making, on its own origin: the discovery
/// document and JWKS it serves are what the test says.
struct Idp {
    origin: String,
    hits: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
enum Serve {
    /// Discovery redirects to a second document (same origin) naming a proper jwks_uri.
    RedirectedDiscovery,
    /// Discovery names a jwks_uri on another origin.
    ForeignJwksUri(String),
    /// A valid key set padded past 256 KiB.
    HugeJwks,
}

async fn idp(serve: Serve, jwks: Value) -> Idp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let (o, h) = (origin.clone(), hits.clone());
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let (origin, hits, serve, jwks) = (o.clone(), h.clone(), serve.clone(), jwks.clone());
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            let discovery = |jwks_uri: String| {
                axum::Json(json!({"issuer": origin, "jwks_uri": jwks_uri})).into_response()
            };
            match (req.uri().path(), &serve) {
                ("/.well-known/openid-configuration", Serve::RedirectedDiscovery) => (
                    StatusCode::FOUND,
                    [(header::LOCATION, format!("{origin}/real-discovery"))],
                )
                    .into_response(),
                ("/real-discovery", _) => discovery(format!("{origin}/keys")),
                ("/.well-known/openid-configuration", Serve::ForeignJwksUri(uri)) => {
                    discovery(uri.clone())
                }
                ("/.well-known/openid-configuration", Serve::HugeJwks) => {
                    discovery(format!("{origin}/keys"))
                }
                ("/keys", Serve::HugeJwks) => {
                    let mut padded = jwks.clone();
                    padded["padding"] = json!("x".repeat(300 * 1024));
                    axum::Json(padded).into_response()
                }
                ("/keys", _) => axum::Json(jwks).into_response(),
                _ => StatusCode::NOT_FOUND.into_response(),
            }
        }
    });
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Idp { origin, hits, task }
}

/// An id_token for `issuer`, signed with the fake Okta's key (whose JWKS `idp` serves).
fn id_token_for(issuer: &str) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(FakeOkta::SIGNING_KEY_ID.into());
    let now = chrono::Utc::now().timestamp();
    jsonwebtoken::encode(
        &header,
        &json!({"iss": issuer, "aud": "0oaIDP", "sub": "00uIDPUSER0000000001", "iat": now, "exp": now + 600}),
        &EncodingKey::from_rsa_pem(FakeOkta::test_signing_key_pem().as_bytes()).unwrap(),
    )
    .unwrap()
}

async fn fake_jwks(okta: &FakeOkta) -> Value {
    reqwest::get(format!("{}/oauth2/v1/keys", okta.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Links portal 31 to `issuer` and stores a token response with an id_token for it.
async fn put_with_issuer(app: &TestApp, issuer: &str) -> (StatusCode, Value) {
    let got = app
        .put(
            PORTAL,
            json!({"settings": {"okta_issuer": issuer, "okta_client_id": "0oaIDP"}}),
        )
        .await;
    assert_eq!(got.0, 200, "{got:?}");
    app.put(
        "/api/v1/sessions/s-2/token?portal_id=31",
        json!({"access_token": "a", "id_token": id_token_for(issuer)}),
    )
    .await
}

#[tokio::test]
async fn discovery_follows_no_redirect() {
    let okta = FakeOkta::start(FakeOktaConfig::default()).await;
    let provider = idp(Serve::RedirectedDiscovery, fake_jwks(&okta).await).await;
    let app = oidc_app(std::slice::from_ref(&provider.origin)).await;
    let got = put_with_issuer(&app, &provider.origin).await;
    assert_problem(&got, 503, "idp-unavailable");
    assert_eq!(
        provider.hits.load(Ordering::SeqCst),
        1,
        "the redirect was not followed"
    );
}

#[tokio::test]
async fn a_jwks_uri_on_another_origin_is_not_fetched() {
    let okta = FakeOkta::start(FakeOktaConfig::default()).await;
    let elsewhere = format!("{}/oauth2/v1/keys", okta.base_url());
    let provider = idp(Serve::ForeignJwksUri(elsewhere), fake_jwks(&okta).await).await;
    let before = okta.request_count("GET", "/oauth2/v1/keys");
    let app = oidc_app(std::slice::from_ref(&provider.origin)).await;
    let got = put_with_issuer(&app, &provider.origin).await;
    assert_problem(&got, 503, "idp-unavailable");
    assert_eq!(
        okta.request_count("GET", "/oauth2/v1/keys"),
        before,
        "foreign jwks_uri fetched"
    );
}

#[tokio::test]
async fn a_key_set_over_the_size_cap_is_refused() {
    let okta = FakeOkta::start(FakeOktaConfig::default()).await;
    let provider = idp(Serve::HugeJwks, fake_jwks(&okta).await).await;
    let app = oidc_app(std::slice::from_ref(&provider.origin)).await;
    let got = put_with_issuer(&app, &provider.origin).await;
    assert_problem(&got, 503, "idp-unavailable");
}

/// The control for the three above: a provider serving proper documents verifies.
#[tokio::test]
async fn a_well_behaved_provider_on_an_allowed_origin_verifies() {
    let okta = FakeOkta::start(FakeOktaConfig::default()).await;
    let okta_issuer = okta.base_url();
    let app = oidc_app(std::slice::from_ref(&okta_issuer)).await;
    let got = app
        .put(PORTAL, json!({"settings": {"okta_issuer": okta_issuer, "okta_client_id": FakeOkta::DEFAULT_ID_TOKEN_AUDIENCE}}))
        .await;
    assert_eq!(got.0, 200);
    let got = app
        .put(
            "/api/v1/sessions/s-3/token?portal_id=31",
            json!({"access_token": "a", "id_token": okta.mint_id_token(json!({"sub": "00uOK0000000000000001"}))}),
        )
        .await;
    assert_eq!(got.0, 204, "{got:?}");
}

#[tokio::test]
async fn a_failing_provider_is_asked_once_per_cooldown_not_once_per_call() {
    let okta = FakeOkta::start(FakeOktaConfig::default()).await;
    okta.inject(Fault::any_method("/oauth2/v1/keys", FaultKind::InternalServerError).times(1000));
    let issuer = okta.base_url();
    let app = oidc_app(std::slice::from_ref(&issuer)).await;
    app.put(PORTAL, json!({"settings": {"okta_issuer": issuer, "okta_client_id": FakeOkta::DEFAULT_ID_TOKEN_AUDIENCE}}))
        .await;
    let token = okta.mint_id_token(json!({"sub": "00uNEG00000000000001"}));
    for i in 0..10 {
        let got = app
            .put(
                &format!("/api/v1/sessions/neg-{i}/token?portal_id=31"),
                json!({"access_token": "a", "id_token": token}),
            )
            .await;
        assert_problem(&got, 503, "idp-unavailable");
    }
    assert_eq!(
        okta.request_count("GET", "/oauth2/v1/keys"),
        1,
        "negative cache"
    );
    assert_eq!(
        okta.request_count("GET", "/.well-known/openid-configuration"),
        1
    );
}

#[tokio::test]
async fn an_expired_key_set_is_served_while_the_provider_is_down() {
    let okta = FakeOkta::start(FakeOktaConfig::default()).await;
    let issuer = okta.base_url();
    let allowed = vec![Url::parse(&issuer).unwrap()];
    let app = spawn_app_on(TestDb::sqlite().await, move |s| {
        use_keys(s, KEY_1);
        s.tokens.oidc_allowed_issuers = allowed;
        s.tokens.jwks_cache_ttl = Duration::from_secs(1);
    })
    .await;
    app.put(PORTAL, json!({"settings": {"okta_issuer": issuer, "okta_client_id": FakeOkta::DEFAULT_ID_TOKEN_AUDIENCE}}))
        .await;
    let token = okta.mint_id_token(json!({"sub": "00uSTALE000000000001"}));
    let put = |i: usize| {
        let (app, token) = (&app, &token);
        async move {
            app.put(
                &format!("/api/v1/sessions/stale-{i}/token?portal_id=31"),
                json!({"access_token": "a", "id_token": token}),
            )
            .await
        }
    };
    assert_eq!(put(0).await.0, 204);
    okta.inject(Fault::any_method("/oauth2/v1/keys", FaultKind::ServiceUnavailable).times(1000));
    okta.inject(
        Fault::any_method(
            "/.well-known/openid-configuration",
            FaultKind::ServiceUnavailable,
        )
        .times(1000),
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    for i in 1..4 {
        assert_eq!(put(i).await.0, 204, "the stale set still verifies");
    }
}

#[tokio::test]
async fn a_slow_issuer_does_not_hold_up_another_portals() {
    let slow = FakeOkta::start(FakeOktaConfig::default()).await;
    let fast = FakeOkta::start(FakeOktaConfig::default()).await;
    slow.inject(Fault::any_method(
        "/oauth2/v1/keys",
        FaultKind::Hang(Duration::from_secs(4)),
    ));
    let allowed: Vec<Url> = [&slow, &fast]
        .iter()
        .map(|o| Url::parse(&o.base_url()).unwrap())
        .collect();
    let app = Arc::new(
        spawn_app_on(TestDb::sqlite().await, move |s| {
            use_keys(s, KEY_1);
            s.tokens.oidc_allowed_issuers = allowed;
            s.tokens.oidc_timeout = Duration::from_secs(10);
        })
        .await,
    );
    for (portal, okta) in [(41, &slow), (42, &fast)] {
        let got = app
            .put(
                &format!("/api/v1/portals/{portal}/settings"),
                json!({"settings": {"okta_issuer": okta.base_url(), "okta_client_id": FakeOkta::DEFAULT_ID_TOKEN_AUDIENCE}}),
            )
            .await;
        assert_eq!(got.0, 200);
    }
    let slow_token = slow.mint_id_token(json!({"sub": "00uSLOW0000000000001"}));
    let fast_token = fast.mint_id_token(json!({"sub": "00uFAST0000000000001"}));
    let a = app.clone();
    let stuck = tokio::spawn(async move {
        a.put(
            "/api/v1/sessions/slow/token?portal_id=41",
            json!({"access_token": "a", "id_token": slow_token}),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let got = app
        .put(
            "/api/v1/sessions/fast/token?portal_id=42",
            json!({"access_token": "a", "id_token": fast_token}),
        )
        .await;
    assert_eq!(got.0, 204, "{got:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited {:?}",
        started.elapsed()
    );
    assert_eq!(stuck.await.unwrap().0, 204);
}
