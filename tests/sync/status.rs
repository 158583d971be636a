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
