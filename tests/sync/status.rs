//! `/sync/status`.

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
    app.post("/sync/users/1", profile("s@example.com")).await;
    let (status, body) = app.get("/sync/status").await;
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

    // The probe is cached: a second status call does not call Okta again.
    let probes = okta.request_count("GET", "/api/v1/users/{id}");
    app.get("/sync/status").await;
    assert_eq!(okta.request_count("GET", "/api/v1/users/{id}"), probes);

    okta.shutdown();
}
