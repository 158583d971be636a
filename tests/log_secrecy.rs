//! No part of a token response, nor a session id, appears in logs, traces or metrics:
//! every log line and span of full put/get/delete cycles (SQL, and memcached when
//! available), at TRACE level for every crate, is captured and searched for them. The
//! cycles include the error paths (a refused id_token, a tampered row, an outage).
//! Its own test binary, because the tracing subscriber is process-wide.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{memcached_servers, spawn_app_on, use_keys, use_memcached, TestApp, TestDb, KEY_1};
use fake_okta::{FakeOkta, FakeOktaConfig};
use serde_json::json;
use tracing_subscriber::fmt::format::FmtSpan;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

const SESSION: &str = "PHPSESSID-s3cr3t-5e55i0n";
const ACCESS: &str = "eyACCESS-TOKEN-VALUE-9f8e7d";
const REFRESH: &str = "REFRESH-TOKEN-VALUE-a1b2c3";
const DEVICE: &str = "DEVICE-SECRET-VALUE-d4e5f6";

async fn cycle(app: &TestApp, okta: &FakeOkta) -> Vec<String> {
    let client = &app.client;
    let id_token = okta
        .mint_id_token(json!({"sub": "00uLOGSECRET00000000", "email": "log-secret@example.com"}));
    let path = app.url(&format!("/api/v1/sessions/{SESSION}/token"));
    let body = json!({"token_type": "Bearer", "expires_in": 3600, "access_token": ACCESS, "refresh_token": REFRESH, "device_secret": DEVICE, "id_token": id_token, "scope": "openid email offline_access"});
    let res = client
        .put(format!("{path}?portal_id=1"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = client.get(&path).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let got: serde_json::Value = res.json().await.unwrap();
    assert_eq!(got["idp_response"]["access_token"], ACCESS);
    // A refused id_token (its reason is returned, never the token).
    let mut forged = id_token.clone();
    forged.push('x');
    let res = client
        .put(format!("{path}?portal_id=1"))
        .json(&json!({"access_token": ACCESS, "id_token": forged}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let res = client.delete(&path).send().await.unwrap();
    assert_eq!(res.status(), 204);
    let res = client
        .delete(app.url("/api/v1/okta-users/00uLOGSECRET00000000/sessions"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let metrics = client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sig = id_token.rsplit('.').next().unwrap().to_owned();
    let payload = id_token.split('.').nth(1).unwrap().to_owned();
    assert!(!metrics.contains(SESSION) && !metrics.contains(ACCESS));
    vec![sig, payload, id_token]
}

async fn portal(app: &TestApp, okta: &FakeOkta) {
    let res = app
        .client
        .put(app.url("/api/v1/portals/1/settings"))
        .json(&json!({"settings": {"okta_issuer": okta.base_url(), "okta_client_id": FakeOkta::DEFAULT_ID_TOKEN_AUDIENCE}}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success());
}

#[tokio::test]
async fn a_full_cycle_logs_no_token_and_no_session_id() {
    let captured = Captured::default();
    tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_current_span(true)
        .with_span_list(true)
        .with_span_events(FmtSpan::FULL)
        .with_writer(captured.clone())
        .init();

    let okta = FakeOkta::start(FakeOktaConfig::default()).await;
    let mut secrets: Vec<String> = [SESSION, ACCESS, REFRESH, DEVICE, "log-secret@example.com"]
        .map(str::to_owned)
        .to_vec();

    // SQL (SQLite), including a tampered row (500) on the way.
    let issuer = reqwest::Url::parse(&okta.base_url()).unwrap();
    let allow =
        |s: &mut efs_iam::config::Settings| s.tokens.oidc_allowed_issuers = vec![issuer.clone()];
    let app = spawn_app_on(TestDb::sqlite().await, |s| {
        use_keys(s, KEY_1);
        allow(s);
    })
    .await;
    portal(&app, &okta).await;
    secrets.extend(cycle(&app, &okta).await);
    let path = app.url(&format!("/api/v1/sessions/{SESSION}/token"));
    let res = app
        .client
        .put(&path)
        .json(&json!({"access_token": ACCESS}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    if let efs_iam::storage::sql::Db::Sqlite(s) = app.db.store.db() {
        sqlx::query("UPDATE iam_token_data SET idp_response = substr(idp_response, 1, length(idp_response) - 4) || 'AAAA'")
            .execute(s)
            .await
            .unwrap();
    }
    let res = app.client.get(&path).send().await.unwrap();
    assert_eq!(res.status(), 500);

    // memcached, including an outage.
    if let Some(servers) = memcached_servers() {
        let proxy = common::CuttableProxy::start(servers.split(',').next().unwrap()).await;
        let app = spawn_app_on(TestDb::sqlite().await, |s| {
            use_keys(s, KEY_1);
            use_memcached(s, &proxy.addr);
            allow(s);
        })
        .await;
        portal(&app, &okta).await;
        secrets.extend(cycle(&app, &okta).await);
        proxy.cut();
        let res = app
            .client
            .put(app.url(&format!("/api/v1/sessions/{SESSION}/token")))
            .json(&json!({"access_token": ACCESS}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 503);
    }

    // The Okta service app with DPoP: client assertions, DPoP proofs, the proof key and
    // DPoP-bound access tokens, through syncs, a nonce change and a refused proof.
    secrets.extend(dpop_sync_secrets().await);

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.lines().count() > 50,
        "the capture works: {} lines",
        logs.lines().count()
    );
    assert!(
        logs.contains("/api/v1/sessions/{session_id}/token"),
        "route templates are logged"
    );
    assert!(
        logs.contains("token-unreadable") || logs.contains("cannot be read"),
        "the 500 was logged"
    );
    assert!(
        logs.contains("the Okta service app requires DPoP"),
        "the DPoP path ran under the capture"
    );
    for secret in &secrets {
        if let Some(line) = logs.lines().find(|l| l.contains(secret.as_str())) {
            panic!("a secret is in the logs:\n{line}");
        }
    }
}

/// Syncs users through a service app against an Okta that requires DPoP, with a
/// configured proof key; the secrets that went by: the keys (PEM lines and the private
/// scalar), and the signature and payload of every proof, client assertion and access
/// token.
async fn dpop_sync_secrets() -> Vec<String> {
    use base64::Engine;
    use p256::pkcs8::EncodePrivateKey;
    let okta = FakeOkta::start(FakeOktaConfig {
        api_token: None,
        require_dpop: true,
        access_token_lifetime: std::time::Duration::from_secs(2),
        ..FakeOktaConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let client_key = dir.path().join("client.pem");
    std::fs::write(&client_key, FakeOkta::test_client_private_key_pem()).unwrap();
    let secret = p256::SecretKey::random(&mut rsa::rand_core::OsRng);
    let dpop_pem = secret.to_pkcs8_pem(p256::pkcs8::LineEnding::LF).unwrap();
    let dpop_key = dir.path().join("dpop.pem");
    std::fs::write(&dpop_key, dpop_pem.as_bytes()).unwrap();
    let db = TestDb::sqlite().await;
    db.seed_efs_users(&[1, 2], &[]).await;
    let app = spawn_app_on(db, |s| {
        s.okta.org_url = Some(reqwest::Url::parse(&okta.base_url()).unwrap());
        s.okta.client_id = Some(FakeOkta::TEST_CLIENT_ID.into());
        s.okta.private_key_file = Some(client_key.clone());
        s.okta.dpop_key_file = Some(dpop_key.clone());
        s.okta.timeout = std::time::Duration::from_secs(5);
    })
    .await;
    let sync = |user: u32, login: &str| {
        app.client
            .post(app.url(&format!("/api/v1/sync/users/{user}")))
            .json(&json!({"login": login, "email": login, "first_name": "D", "last_name": "P"}))
            .send()
    };
    assert_eq!(sync(1, "dpop-1@example.com").await.unwrap().status(), 200);
    okta.expire_dpop_nonce();
    tokio::time::sleep(std::time::Duration::from_millis(1600)).await;
    assert_eq!(sync(2, "dpop-2@example.com").await.unwrap().status(), 200);
    // A refused credential on the way (Okta stops accepting the app's tokens).
    okta.revoke_access_tokens();
    okta.set_require_dpop(false);
    let _ = app.client.get(app.url("/api/v1/sync/status")).send().await;

    let proofs = okta.dpop_proofs();
    assert!(proofs.len() >= 4, "proofs went by: {}", proofs.len());
    let mut secrets: Vec<String> = Vec::new();
    for jwt in proofs
        .iter()
        .map(|p| p.proof.clone())
        .chain(okta.oauth_secrets_seen())
    {
        secrets.extend(jwt.split('.').skip(1).map(str::to_owned));
        secrets.push(jwt);
    }
    secrets.push(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(secret.to_bytes()));
    for pem in [dpop_pem.as_str(), FakeOkta::test_client_private_key_pem()] {
        secrets.extend(
            pem.lines()
                .filter(|l| !l.starts_with("-----") && l.len() > 20)
                .map(str::to_owned),
        );
    }
    secrets
}
