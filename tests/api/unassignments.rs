use serde_json::json;

use crate::common::spawn_app;
use crate::common::{assert_problem, Api};

fn users(n: usize) -> Vec<serde_json::Value> {
    (1..=n)
        .map(|i| json!({"user_id": i, "okta_user_id": format!("00u{i:017}"), "email": format!("p{i}@example.com")}))
        .collect()
}

#[tokio::test]
async fn mass_delete_of_ten_thousand_in_one_call() {
    let app = spawn_app().await;
    let (status, body) = app
        .post(
            "/api/v1/portals/77/unassignments",
            json!({"users": users(10_000)}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["enqueued"], 10_000);
    assert_eq!(
        body["counts"],
        json!({"pending": 10_000, "dead": 0, "pending_capped": false, "dead_capped": false})
    );

    let (status, page) = app
        .get("/api/v1/portals/77/unassignments?limit=1000&state=pending")
        .await;
    assert_eq!(status, 200);
    assert_eq!(page["items"].as_array().unwrap().len(), 1000);
    assert_eq!(page["items"][0]["okta_user_id"], "00u00000000000000001");
    assert_eq!(page["items"][0]["attempts"], 0);
    assert!(page["next_cursor"].is_string());
    let (_, dead) = app.get("/api/v1/portals/77/unassignments?state=dead").await;
    assert_eq!(dead["items"], json!([]));
    let (_, other) = app.get("/api/v1/portals/78/unassignments").await;
    assert_eq!(
        other["counts"],
        json!({"pending": 0, "dead": 0, "pending_capped": false, "dead_capped": false})
    );

    // One more: the count stops at 10,000 and says it is a lower bound.
    let one_more = json!({"users": [{"user_id": 10_001, "okta_user_id": "00u10001000000000000"}]});
    let (status, body) = app.post("/api/v1/portals/77/unassignments", one_more).await;
    assert_eq!(status, 202, "{body}");
    let capped =
        json!({"pending": 10_000, "dead": 0, "pending_capped": true, "dead_capped": false});
    assert_eq!(body["counts"], capped);
    let (_, page) = app.get("/api/v1/portals/77/unassignments").await;
    assert_eq!(page["counts"], capped);
}

#[tokio::test]
async fn one_bad_user_queues_nobody() {
    let app = spawn_app().await;
    let mut list = users(10_000);
    list[9_999]["okta_user_id"] = json!("00u-not-valid");
    list[17]["user_id"] = json!(0);
    list[18]["email"] = json!("e".repeat(256));
    let got = app
        .post("/api/v1/portals/77/unassignments", json!({"users": list}))
        .await;
    let fields = assert_problem(&got, 422, "validation-failed");
    assert_eq!(
        fields,
        vec![
            "users[17].user_id",
            "users[18].email",
            "users[9999].okta_user_id"
        ]
    );
    let (_, page) = app.get("/api/v1/portals/77/unassignments").await;
    assert_eq!(page["counts"]["pending"], 0);

    let got = app
        .post(
            "/api/v1/portals/77/unassignments",
            json!({"users": users(10_001)}),
        )
        .await;
    assert_eq!(
        assert_problem(&got, 422, "validation-failed"),
        vec!["users"]
    );
    let got = app
        .post("/api/v1/portals/77/unassignments", json!({"users": []}))
        .await;
    assert_eq!(
        assert_problem(&got, 422, "validation-failed"),
        vec!["users"]
    );
    let got = app
        .post(
            "/api/v1/portals/77/unassignments",
            json!({"users": [{"user_id": 1}]}),
        )
        .await;
    assert_eq!(
        assert_problem(&got, 422, "validation-failed"),
        vec!["users[0].okta_user_id"]
    );
}
