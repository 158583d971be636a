use serde_json::json;

use crate::common::spawn_app;
use crate::common::{assert_problem, Api};

#[tokio::test]
async fn admin_user_reference_lifecycle() {
    let app = spawn_app().await;
    app.db
        .manage_okta_users(&["00ub0oNGTSWTBKOLGLNR", "00uSHORT"])
        .await;
    let path = "/api/v1/user-references/42";
    assert_problem(&app.get(path).await, 404, "not-found");
    let (status, body) = app
        .put(path, json!({"okta_user_id": "00ub0oNGTSWTBKOLGLNR"}))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["user_id"], 42);
    assert_eq!(body["okta_user_id"], "00ub0oNGTSWTBKOLGLNR");
    assert!(body["created_at"].as_str().unwrap().ends_with('Z'));
    let (status, body) = app.put(path, json!({"okta_user_id": "00uSHORT"})).await;
    assert_eq!(status, 200);
    assert_eq!(body["okta_user_id"], "00uSHORT");
    let (status, body) = app.get(path).await;
    assert_eq!(status, 200);
    assert_eq!(body["okta_user_id"], "00uSHORT");
    assert_eq!(app.delete(path).await.0, 204);
    assert_problem(&app.delete(path).await, 404, "not-found");
}

#[tokio::test]
async fn portal_user_reference_lifecycle() {
    let app = spawn_app().await;
    app.db.manage_okta_users(&["00u4711"]).await;
    let path = "/api/v1/portals/7/user-references/4711";
    assert_problem(&app.get(path).await, 404, "not-found");
    assert_problem(
        &app.patch(path, json!({"has_data_changes": true})).await,
        404,
        "not-found",
    );
    let (status, body) = app
        .put(
            path,
            json!({"okta_user_id": "00u4711", "status": "pending"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "pending");
    assert_eq!(body["status_code"], 0);
    assert_eq!(body["has_data_changes"], false);

    let (status, body) = app.patch(path, json!({"has_data_changes": true})).await;
    assert_eq!(status, 200);
    assert_eq!(body["has_data_changes"], true);
    assert_eq!(body["status"], "pending");
    let (status, body) = app
        .patch(path, json!({"status": "synced", "has_data_changes": false}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (body["status"].clone(), body["status_code"].clone()),
        (json!("synced"), json!(1))
    );

    let (status, body) = app
        .put(
            path,
            json!({"okta_user_id": "00u4711", "status": "failed", "has_data_changes": true}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "failed");
    let (_, body) = app.get(path).await;
    assert_eq!(body["has_data_changes"], true);

    assert_eq!(app.delete(path).await.0, 204);
    assert_problem(&app.delete(path).await, 404, "not-found");
}

#[tokio::test]
async fn list_filters_and_paginates() {
    let app = spawn_app().await;
    let ids: Vec<String> = (1..=9).map(|uid| format!("00u{uid}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    app.db.manage_okta_users(&ids).await;
    for uid in 1..=9 {
        let status = if uid % 3 == 0 { "failed" } else { "synced" };
        let (code, _) = app.put(&format!("/api/v1/portals/5/user-references/{uid}"),
            json!({"okta_user_id": format!("00u{uid}"), "status": status, "has_data_changes": uid % 2 == 0}),
        )
        .await;
        assert_eq!(code, 201);
    }
    let mut seen = Vec::new();
    let mut url = "/api/v1/portals/5/user-references?limit=4".to_owned();
    let mut pages = 0;
    loop {
        let (status, body) = app.get(&url).await;
        assert_eq!(status, 200);
        pages += 1;
        seen.extend(
            body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["user_id"].as_i64().unwrap()),
        );
        match body["next_cursor"].as_str() {
            Some(c) => url = format!("/api/v1/portals/5/user-references?limit=4&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, (1..=9).collect::<Vec<_>>());

    let (_, body) = app
        .get("/api/v1/portals/5/user-references?status=failed&has_data_changes=true")
        .await;
    let ids: Vec<i64> = body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["user_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![6]);
    assert!(body.get("next_cursor").is_none());
}

#[tokio::test]
async fn reverse_lookup_finds_every_reference_of_one_person() {
    let app = spawn_app().await;
    app.db.manage_okta_users(&["00uPERSON", "00uOTHER"]).await;
    app.put(
        "/api/v1/user-references/1",
        json!({"okta_user_id": "00uPERSON"}),
    )
    .await;
    app.put(
        "/api/v1/portals/10/user-references/2",
        json!({"okta_user_id": "00uPERSON", "status": "synced"}),
    )
    .await;
    app.put(
        "/api/v1/portals/11/user-references/3",
        json!({"okta_user_id": "00uPERSON", "status": "synced"}),
    )
    .await;
    app.put(
        "/api/v1/portals/11/user-references/4",
        json!({"okta_user_id": "00uOTHER", "status": "synced"}),
    )
    .await;
    let (status, body) = app.get("/api/v1/okta-users/00uPERSON/references").await;
    assert_eq!(status, 200);
    assert_eq!(body["admin_users"].as_array().unwrap().len(), 1);
    let portals: Vec<i64> = body["portal_users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["portal_id"].as_i64().unwrap())
        .collect();
    assert_eq!(portals, vec![10, 11]);
    let (status, body) = app.get("/api/v1/okta-users/00uNOBODY/references").await;
    assert_eq!(status, 200);
    assert_eq!(body["admin_users"], json!([]));
    assert_eq!(body["portal_users"], json!([]));
}
