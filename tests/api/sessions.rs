use serde_json::json;

use crate::common::spawn_app;
use crate::common::{assert_problem, Api};

#[tokio::test]
async fn token_put_get_replace_delete() {
    let app = spawn_app().await;
    let path = "/api/v1/sessions/abc123,-def/token";
    assert_problem(&app.get(path).await, 404, "not-found");
    let first = json!({"token_type": "Bearer", "expires_in": 3600, "access_token": "at-1", "x_unknown": {"kept": true}});
    let (status, body) = app.put(path, first.clone()).await;
    assert_eq!(status, 204, "{body}");
    let (status, body) = app.get(path).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["idp_response"], first,
        "stored as given, unknown fields kept"
    );

    let second = json!({"access_token": "at-2", "refresh_token": "rt-2"});
    assert_eq!(app.put(path, second.clone()).await.0, 204);
    assert_eq!(app.get(path).await.1["idp_response"], second);

    assert_eq!(app.delete(path).await.0, 204);
    assert_problem(&app.get(path).await, 404, "not-found");
    assert_problem(&app.delete(path).await, 404, "not-found");
}

#[tokio::test]
async fn session_ids_and_bodies_are_checked() {
    let app = spawn_app().await;
    let long = "s".repeat(51);
    let got = app
        .put(
            &format!("/api/v1/sessions/{long}/token"),
            json!({"access_token": "x"}),
        )
        .await;
    assert_eq!(
        assert_problem(&got, 400, "invalid-parameter"),
        vec!["session_id"]
    );
    let ok = "s".repeat(50);
    assert_eq!(
        app.put(&format!("/api/v1/sessions/{ok}/token"), json!({"a": 1}))
            .await
            .0,
        204
    );
    let got = app
        .put("/api/v1/sessions/abc/token", json!(["not", "an", "object"]))
        .await;
    assert_problem(&got, 422, "validation-failed");
    let got = app.put("/api/v1/sessions/abc/token", json!({})).await;
    assert_problem(&got, 422, "validation-failed");
    let got = app
        .put("/api/v1/sessions/a%20b/token", json!({"a": 1}))
        .await;
    assert_problem(&got, 400, "invalid-parameter");
}
