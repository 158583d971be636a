use serde_json::json;

use crate::common::spawn_app;
use crate::common::{assert_problem, Api};

#[tokio::test]
async fn put_get_update_delete_one_setting() {
    let app = spawn_app().await;
    let path = "/api/v1/portals/12/settings/okta_client_id";
    assert_problem(&app.get(path).await, 404, "not-found");

    let (status, body) = app.put(path, json!({"value": "0oa1"})).await;
    assert_eq!(status, 201);
    assert_eq!(
        body,
        json!({"portal_id": 12, "key": "okta_client_id", "value": "0oa1"})
    );
    let (status, _) = app.put(path, json!({"value": "0oa2"})).await;
    assert_eq!(status, 200);
    let (status, body) = app.get("/api/v1/portals/12/settings/OKTA_CLIENT_ID").await;
    assert_eq!(status, 200);
    assert_eq!(body["value"], "0oa2");

    let (status, body) = app.put(path, json!({"value": null})).await;
    assert_eq!(status, 200);
    assert_eq!(body["value"], serde_json::Value::Null);

    let (status, _) = app.delete(path).await;
    assert_eq!(status, 204);
    assert_problem(&app.delete(path).await, 404, "not-found");
    assert_problem(&app.get(path).await, 404, "not-found");
}

#[tokio::test]
async fn bulk_put_and_map() {
    let app = spawn_app().await;
    let (status, body) = app.get("/api/v1/portals/3/settings").await;
    assert_eq!(status, 200);
    assert_eq!(body, json!({"portal_id": 3, "settings": {}}));

    let (status, body) = app.put("/api/v1/portals/3/settings",
        json!({"settings": {"okta_client_id": "0oa3", "okta_group_id": "00g3", "okta_issuer": null}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["settings"],
        json!({"okta_client_id": "0oa3", "okta_group_id": "00g3", "okta_issuer": null})
    );
    // Keys not named keep their values.
    let (_, body) = app
        .put(
            "/api/v1/portals/3/settings",
            json!({"settings": {"okta_group_id": "00gX"}}),
        )
        .await;
    assert_eq!(body["settings"]["okta_client_id"], "0oa3");
    assert_eq!(body["settings"]["okta_group_id"], "00gX");
    // Other portals are separate.
    let (_, body) = app.get("/api/v1/portals/4/settings").await;
    assert_eq!(body["settings"], json!({}));
}

#[tokio::test]
async fn bulk_put_with_one_bad_entry_writes_nothing() {
    let app = spawn_app().await;
    let got = app
        .put(
            "/api/v1/portals/3/settings",
            json!({"settings": {"good": "1", "bad/key": "2", "long": "x".repeat(256)}}),
        )
        .await;
    let fields = assert_problem(&got, 422, "validation-failed");
    assert_eq!(fields, vec!["settings.bad/key", "settings.long"]);
    let (_, body) = app.get("/api/v1/portals/3/settings").await;
    assert_eq!(body["settings"], json!({}), "nothing half-written");

    let got = app
        .put(
            "/api/v1/portals/3/settings",
            json!({"settings": {"a": "1", "A": "2"}}),
        )
        .await;
    assert_problem(&got, 422, "validation-failed");
    let got = app
        .put("/api/v1/portals/3/settings", json!({"settings": {}}))
        .await;
    assert_eq!(
        assert_problem(&got, 422, "validation-failed"),
        vec!["settings"]
    );
}
