use serde_json::json;

use crate::common::spawn_app;
use crate::common::{assert_problem, read, Api};

#[tokio::test]
async fn record_get_query_and_purge() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/api/v1/errors"))
        .json(&json!({"message": "Api validation failed: login", "status_code": 400, "error_code": "E0000001", "trace": "POST /api/v1/users"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let (_, created) = read(res).await;
    assert_eq!(location, format!("/api/v1/errors/{}", created["id"]));
    let (status, body) = app.get(&location).await;
    assert_eq!(status, 200);
    assert_eq!(body, created);
    assert_eq!(body["error_code"], "E0000001");

    for i in 0..6 {
        let (s, _) = app.post("/api/v1/errors", json!({"message": format!("rate limited {i}"), "status_code": 429, "error_code": "E0000047"})).await;
        assert_eq!(s, 201);
    }
    // Defaults: status 0, empty code.
    let (_, bare) = app.post("/api/v1/errors", json!({})).await;
    assert_eq!(
        (bare["status_code"].clone(), bare["error_code"].clone()),
        (json!(0), json!(""))
    );

    let (_, page) = app.get("/api/v1/errors?status_code=429&limit=4").await;
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    assert_eq!(items[0]["message"], "rate limited 5", "newest first");
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, page2) = app
        .get(&format!(
            "/api/v1/errors?status_code=429&limit=4&cursor={cursor}"
        ))
        .await;
    assert_eq!(page2["items"].as_array().unwrap().len(), 2);
    assert!(page2.get("next_cursor").is_none());

    let (_, found) = app
        .get("/api/v1/errors?q=validation&error_code=E0000001")
        .await;
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    let (_, none) = app.get("/api/v1/errors?since=2999-01-01T00:00:00Z").await;
    assert_eq!(none["items"], json!([]));
    let (_, all) = app
        .get("/api/v1/errors?until=2999-01-01T00:00:00%2B02:00")
        .await;
    assert_eq!(all["items"].as_array().unwrap().len(), 8);

    assert_problem(&app.get("/api/v1/errors/999999").await, 404, "not-found");
    let none = purge(&app, "2000-01-01T00:00:00Z").await;
    assert_eq!(
        (none["deleted"].as_i64(), none["attempts"].as_i64()),
        (Some(0), Some(1))
    );
    assert_eq!(
        app.get("/api/v1/errors?limit=500").await.1["items"]
            .as_array()
            .unwrap()
            .len(),
        8
    );
    let all = purge(&app, "2999-01-01T00:00:00%2B02:00").await;
    assert_eq!(all["deleted"], 8);
    assert_eq!(all["before"], "2998-12-31T22:00:00Z");
    assert_eq!(all["requested_by"], "anonymous");
    assert_problem(&app.get(&location).await, 404, "not-found");
    assert_eq!(app.get("/api/v1/errors").await.1["items"], json!([]));
}

/// `DELETE /errors?before=` answers at once (202, the purge's status URL) and a worker
/// purges; waits for the purge to end and returns it as its status URL shows it.
async fn purge(app: &crate::common::TestApp, before: &str) -> serde_json::Value {
    let res = app
        .client
        .delete(app.url(&format!("/api/v1/errors?before={before}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    let (_, accepted) = read(res).await;
    assert_eq!(accepted["state"], "pending", "{accepted}");
    assert_eq!(accepted["deleted"], 0);
    assert_eq!(accepted["status_url"], location.as_str());
    assert_eq!(
        location,
        format!(
            "/api/v1/errors/purges/{}",
            accepted["purge_id"].as_str().unwrap()
        )
    );
    for _ in 0..200 {
        let (status, body) = app.get(&location).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["purge_id"], accepted["purge_id"]);
        match body["state"].as_str() {
            Some("succeeded") => {
                assert!(body["finished_at"].is_string(), "{body}");
                return body;
            }
            Some("pending" | "running") => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await
            }
            _ => panic!("purge ended: {body}"),
        }
    }
    panic!("purge {location} did not end within 10 s");
}

#[tokio::test]
async fn a_purge_s_status_url_refuses_what_is_no_purge() {
    let app = spawn_app().await;
    assert_problem(
        &app.get("/api/v1/errors/purges/0b6d1c8e-53a5-4a59-9a77-6f2c6c1d2e10")
            .await,
        404,
        "not-found",
    );
    let got = app
        .get("/api/v1/errors/purges/0B6D1C8E-53A5-4A59-9A77-6F2C6C1D2E10")
        .await;
    assert_eq!(
        assert_problem(&got, 400, "invalid-parameter"),
        vec!["purge_id"]
    );
    let got = app.get("/api/v1/errors/purges/17").await;
    assert_eq!(
        assert_problem(&got, 400, "invalid-parameter"),
        vec!["purge_id"]
    );
}

#[tokio::test]
async fn bad_error_log_input_is_refused_by_field() {
    let app = spawn_app().await;
    let cases = [
        (json!({"status_code": 1000}), "status_code"),
        (json!({"status_code": -1}), "status_code"),
        (json!({"status_code": "400"}), "status_code"),
        (json!({"error_code": "E".repeat(37)}), "error_code"),
        (json!({"message": "x".repeat(65_536)}), "message"),
        (json!({"message": "emoji 😀"}), "message"),
        (json!({"severity": "high"}), "severity"),
    ];
    for (body, field) in cases {
        let got = app.post("/api/v1/errors", body.clone()).await;
        assert_eq!(
            assert_problem(&got, 422, "validation-failed"),
            vec![field],
            "{body}"
        );
    }
    for (query, field) in [
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        ("status_code=abc", "status_code"),
        ("status_code=1000", "status_code"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("cursor=garbage", "cursor"),
        ("sort=asc", "sort"),
    ] {
        let got = app.get(&format!("/api/v1/errors?{query}")).await;
        assert_eq!(
            assert_problem(&got, 400, "invalid-parameter"),
            vec![field],
            "{query}"
        );
    }
    let got = app.delete("/api/v1/errors").await;
    assert_eq!(
        assert_problem(&got, 400, "invalid-parameter"),
        vec!["before"]
    );
    let (_, page) = app.get("/api/v1/errors").await;
    assert_eq!(
        page["items"],
        json!([]),
        "nothing written by refused requests"
    );
}
