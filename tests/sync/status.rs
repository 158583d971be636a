//! `/sync/status`.

use std::time::Duration;

use serde_json::Value;

use crate::common::TestDb;
use crate::helpers::*;

#[tokio::test]
async fn status_shows_okta_the_governor_the_queue_and_the_workers() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    okta.set_rate_limit(50);
    let app = spawn(&db, Some(&okta), |s| {
        s.sync.instance_id = Some("efs-iam-test-1".into());
    })
    .await;
    app.post("/api/v1/sync/users/1", profile("s@example.com"))
        .await;
    let (status, body) = app.get("/api/v1/sync/status").await;
    assert_eq!(status, 200, "{body}");
    let o = &body["okta"];
    assert_eq!(o["configured"], true);
    assert_eq!(o["org_url"], okta.base_url());
    assert_eq!(o["auth_method"], "api_token");
    assert_eq!(o["reachability"]["reachable"], true, "{o}");
    assert!(o["last_success_at"].is_string());
    assert_eq!(o["last_auth_failure"], Value::Null);
    let buckets: Vec<&str> = o["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["bucket"].as_str().unwrap())
        .collect();
    assert!(buckets.contains(&"users_create_list"), "{buckets:?}");
    let create = o["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["bucket"] == "users_create_list")
        .unwrap();
    assert_eq!(create["limit"], 50);
    assert_eq!(create["allowance"], 25, "half of the bucket by default");
    assert_eq!(body["unassignments"]["pending"], 0);
    assert_eq!(body["jobs"]["running"], 0);
    assert_eq!(body["workers"]["instance_id"], "efs-iam-test-1");
    assert_eq!(body["workers"]["enabled"], false, "switched off in tests");
    for worker in ["unassignments", "jobs", "reconciliations"] {
        assert_eq!(body["workers"][worker]["restarts"], 0, "{body}");
    }
    assert_eq!(body["missing_okta_groups"], serde_json::json!([]));

    // The probe is cached: a second status call does not call Okta again.
    let probes = okta.request_count("GET", "/api/v1/users/{id}");
    app.get("/api/v1/sync/status").await;
    assert_eq!(okta.request_count("GET", "/api/v1/users/{id}"), probes);

    okta.shutdown();
}

/// A worker step that panics does not end its loop: the loop goes on after a pause,
/// and the restart is counted in the worker's health.
#[tokio::test]
async fn a_panicking_step_is_restarted_and_counted() {
    use efs_iam::sync::supervision::{run_loop, LoopConfig, WorkerHealth};
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Arc;

    let calls = Arc::new(AtomicU32::new(0));
    let health = Arc::new(WorkerHealth::default());
    let cancel = tokio_util::sync::CancellationToken::new();
    let counted = calls.clone();
    let looping = tokio::spawn(run_loop(
        "test-worker",
        move || {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            async move {
                if n == 0 {
                    panic!("a poisoned piece of work");
                }
                Ok::<_, std::io::Error>(efs_iam::sync::UnassignmentStep::default())
            }
        },
        LoopConfig {
            poll_interval: Duration::from_millis(20),
            max_error_backoff: Duration::from_secs(1),
        },
        Arc::new(tokio::sync::Notify::new()),
        health.clone(),
        cancel.clone(),
    ));
    for _ in 0..100 {
        if calls.load(Ordering::SeqCst) >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let h = health.snapshot();
    assert!(calls.load(Ordering::SeqCst) >= 3, "the loop went on");
    assert_eq!(h.restarts, 1);
    assert_eq!(h.last_panic.as_deref(), Some("a poisoned piece of work"));
    assert!(h.running);
    assert!(h.steps >= 2);
    cancel.cancel();
    looping.await.unwrap().unwrap();
    assert!(!health.snapshot().running);
}

/// The service configured with the fake's test service app (`client_id`, `scopes`),
/// its key in a file of its own.
fn service_app(s: &mut efs_iam::config::Settings, client_id: &str, scopes: &str) {
    let key = std::env::temp_dir().join(format!("efs-iam-test-key-{}.pem", uuid::Uuid::new_v4()));
    std::fs::write(&key, fake_okta::FakeOkta::test_client_private_key_pem()).unwrap();
    s.okta.api_token = None;
    s.okta.client_id = Some(client_id.to_owned());
    s.okta.private_key_file = Some(key);
    s.okta.scopes = scopes.to_owned();
}

const ALL_SCOPES: &str = "okta.users.manage okta.groups.manage okta.roles.read";

/// Polls readiness until its `okta` component says what `wanted` looks for (the first
/// probe runs in the background from start-up).
async fn okta_readiness(app: &SyncApp, wanted: &str) -> (u16, Value) {
    for _ in 0..100 {
        let (status, body) = app.get("/health/ready").await;
        let detail = body["components"]["okta"]["detail"]
            .as_str()
            .unwrap_or_default();
        if detail.contains(wanted)
            || (wanted.is_empty() && body["components"]["okta"]["status"] == "up")
        {
            return (status.as_u16(), body);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "readiness never said {wanted:?}: {:?}",
        app.get("/health/ready").await.1
    );
}

#[tokio::test]
async fn a_refused_credential_shows_at_once_in_status_and_readiness() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let app = spawn(&db, Some(&okta), |s| {
        service_app(s, "0oaNOTREGISTERED", ALL_SCOPES)
    })
    .await;
    // The very first status call: the probe runs before the status is read.
    let (_, body) = app.get("/api/v1/sync/status").await;
    let o = &body["okta"];
    assert_eq!(o["auth_method"], "private_key_jwt");
    assert_eq!(o["reachability"]["reachable"], true, "{o}");
    assert_eq!(o["reachability"]["credentials_accepted"], false, "{o}");
    assert_eq!(
        o["last_auth_failure"]["error_code"], "invalid_client",
        "{o}"
    );
    assert_eq!(o["last_auth_failure"]["status"], 401);
    let shown = o.to_string();
    assert!(
        !shown.contains("eyJ"),
        "no assertion or token in the status: {shown}"
    );
    let (status, ready) = okta_readiness(&app, "invalid_client").await;
    assert_eq!(
        status, 200,
        "Okta is not required: the data API keeps serving"
    );
    assert_eq!(ready["components"]["okta"]["status"], "degraded", "{ready}");
    let (_, metrics) = app.get("/metrics").await;
    let failures = metrics
        .as_str()
        .unwrap()
        .lines()
        .find(|l| l.starts_with("efs_iam_okta_auth_failures_total"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap();
    assert!(failures >= 1.0);

    let required = spawn(&db, Some(&okta), |s| {
        service_app(s, "0oaNOTREGISTERED", ALL_SCOPES);
        s.okta.required = true;
    })
    .await;
    let (status, ready) = okta_readiness(&required, "invalid_client").await;
    assert_eq!(status, 503, "{ready}");
    assert_eq!(ready["components"]["okta"]["status"], "down");
}

#[tokio::test]
async fn a_missing_scope_shows_in_status_and_readiness_before_any_sync() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    // Not asked for: efs-iam gets a token, without the roles scope.
    let app = spawn(&db, Some(&okta), |s| {
        service_app(
            s,
            fake_okta::FakeOkta::TEST_CLIENT_ID,
            "okta.users.manage okta.groups.manage",
        )
    })
    .await;
    let (_, body) = app.get("/api/v1/sync/status").await;
    let scopes = &body["okta"]["scopes"];
    assert_eq!(scopes["missing"][0]["scope"], "okta.roles.read", "{body}");
    assert!(scopes["missing"][0]["needed_for"]
        .as_str()
        .unwrap()
        .contains("boundary"));
    assert_eq!(scopes["granted"].as_array().unwrap().len(), 2, "{scopes}");
    assert_eq!(body["okta"]["reachability"]["credentials_accepted"], true);
    let (_, ready) = okta_readiness(&app, "scopes not granted: okta.roles.read").await;
    assert_eq!(ready["components"]["okta"]["status"], "degraded");

    // Asked for but not granted to the app: Okta refuses the token request.
    let stingy = fake_okta::FakeOkta::start(fake_okta::FakeOktaConfig {
        oauth_scopes: vec!["okta.users.manage".into(), "okta.groups.manage".into()],
        ..fake_okta::FakeOktaConfig::default()
    })
    .await;
    let app = spawn(&db, Some(&stingy), |s| {
        service_app(s, fake_okta::FakeOkta::TEST_CLIENT_ID, ALL_SCOPES)
    })
    .await;
    let (_, body) = app.get("/api/v1/sync/status").await;
    assert_eq!(
        body["okta"]["last_auth_failure"]["error_code"], "invalid_scope",
        "{body}"
    );
    assert_eq!(body["okta"]["reachability"]["credentials_accepted"], false);
}

#[tokio::test]
async fn a_service_app_created_with_today_s_defaults_syncs() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta::FakeOkta::start(fake_okta::FakeOktaConfig {
        api_token: None,
        require_dpop: true,
        ..fake_okta::FakeOktaConfig::default()
    })
    .await;
    let app = spawn(&db, Some(&okta), |s| {
        service_app(s, fake_okta::FakeOkta::TEST_CLIENT_ID, ALL_SCOPES)
    })
    .await;
    db.seed_efs_users(&[42], &[]).await;
    let (status, body) = app
        .post("/api/v1/sync/users/42", profile("today@example.com"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "created");
    let (_, status) = app.get("/api/v1/sync/status").await;
    assert_eq!(
        status["okta"]["dpop"],
        serde_json::json!({"mode": "auto", "active": true})
    );
    assert_eq!(status["okta"]["last_auth_failure"], Value::Null, "{status}");
    assert!(status["okta"]["scopes"]["missing"]
        .as_array()
        .unwrap()
        .is_empty());
    okta_readiness(&app, "").await;
}
