//! Syncing EFS-Admin users: create, link, update, unchanged, never a duplicate, Okta
//! failing in every way it does, bad profiles, deprovisioning.

use std::time::Duration;

use efs_iam::storage::prelude::*;
use efs_iam::storage::ErrorLogQuery;
use fake_okta::{Fault, FaultKind, UserStatus};
use serde_json::json;

use crate::common::TestDb;
use crate::helpers::*;

crate::backend_matrix!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)] sqlite, mysql;
    create_then_unchanged_then_updated,
    twenty_concurrent_identical_calls_make_one_okta_user,
    two_instances_racing_make_one_okta_user,
    okta_s_causes_reach_efs_admin_verbatim,
    an_okta_incident_leaves_a_few_counted_rows_in_the_error_log,
);

async fn create_then_unchanged_then_updated(db: TestDb) {
    db.seed_efs_users(&[42], &[]).await;
    let okta = fake_okta().await;
    let app = spawn(&db, Some(&okta), |_| {}).await;

    let first = app
        .post("/api/v1/sync/users/42", profile("ada@example.com"))
        .await;
    assert_eq!(first.0, 200, "{}", first.1);
    assert_eq!(first.1["outcome"], "created");
    assert_eq!(first.1["user_id"], 42);
    let id = first.1["okta_user_id"].as_str().unwrap().to_owned();
    assert_eq!(
        first.1["okta_status"], "PROVISIONED",
        "activated by default"
    );
    let reference = app.get("/api/v1/user-references/42").await;
    assert_eq!(reference.1["okta_user_id"], id.as_str());

    let again = app
        .post("/api/v1/sync/users/42", profile("ada@example.com"))
        .await;
    assert_eq!(again.1["outcome"], "unchanged");
    assert_eq!(again.1["okta_user_id"], id.as_str());
    assert_eq!(again.1["updated_fields"], json!([]));

    let mut changed = profile("ada@example.com");
    changed["last_name"] = json!("King");
    changed["attributes"] = json!({"department": "Analytical Engines"});
    let updated = app.post("/api/v1/sync/users/42", changed).await;
    assert_eq!(updated.1["outcome"], "updated", "{}", updated.1);
    assert_eq!(
        updated.1["updated_fields"],
        json!(["last_name", "attributes.department"])
    );
    let user = okta.user(&id).unwrap();
    assert_eq!(user["profile"]["lastName"], "King");
    assert_eq!(user["profile"]["department"], "Analytical Engines");
    assert_eq!(user["profile"]["firstName"], "Ada");

    // A login change follows the stored reference, not the login.
    let moved = app
        .post("/api/v1/sync/users/42", profile("ada.king@example.com"))
        .await;
    assert_eq!(moved.1["outcome"], "updated");
    assert_eq!(moved.1["okta_user_id"], id.as_str());
    assert_eq!(
        okta.user(&id).unwrap()["profile"]["login"],
        "ada.king@example.com"
    );
    assert_eq!(
        okta.request_count("POST", "/api/v1/users"),
        1,
        "created once"
    );
    assert_eq!(okta.user_ids().len(), 1);
}

async fn twenty_concurrent_identical_calls_make_one_okta_user(db: TestDb) {
    db.seed_efs_users(&[7], &[]).await;
    let okta = fake_okta().await;
    okta.set_latency(Duration::from_millis(20));
    let app = std::sync::Arc::new(spawn(&db, Some(&okta), |_| {}).await);
    let mut calls = Vec::new();
    for _ in 0..20 {
        let app = app.clone();
        calls.push(tokio::spawn(async move {
            app.post("/api/v1/sync/users/7", profile("grace@example.com"))
                .await
        }));
    }
    let mut ids = std::collections::HashSet::new();
    let mut created = 0;
    for c in calls {
        let (status, body) = c.await.unwrap();
        assert_eq!(status, 200, "{body}");
        ids.insert(body["okta_user_id"].as_str().unwrap().to_owned());
        created += (body["outcome"] == "created") as usize;
    }
    assert_eq!(ids.len(), 1, "every call answered the same Okta user");
    assert_eq!(created, 1);
    assert_eq!(users_with_login(&okta, "grace@example.com").len(), 1);
    assert_eq!(
        okta.request_count("POST", "/api/v1/users"),
        1,
        "serialised: nobody else even tried to create"
    );
}

/// Two instances on one database: the lock is the database's, not a process's.
async fn two_instances_racing_make_one_okta_user(db: TestDb) {
    db.seed_efs_users(&[8], &[]).await;
    let okta = fake_okta().await;
    okta.set_latency(Duration::from_millis(20));
    let a = std::sync::Arc::new(spawn(&db, Some(&okta), |_| {}).await);
    let b = std::sync::Arc::new(spawn(&db, Some(&okta), |_| {}).await);
    let mut calls = Vec::new();
    for i in 0..16 {
        let app = if i % 2 == 0 { a.clone() } else { b.clone() };
        calls.push(tokio::spawn(async move {
            app.post("/api/v1/sync/users/8", profile("hedy@example.com"))
                .await
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for c in calls {
        let (status, body) = c.await.unwrap();
        assert_eq!(status, 200, "{body}");
        ids.insert(body["okta_user_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(users_with_login(&okta, "hedy@example.com").len(), 1);
    assert_eq!(okta.request_count("POST", "/api/v1/users"), 1);
}

/// Real Okta's answer to a create with a property its profile schema lacks, as
/// recorded (issue #14).
fn recorded_undefined_property_answer() -> FaultKind {
    FaultKind::Response {
        status: 400,
        body: json!({
            "errorCode": "E0000001",
            "errorSummary": "Api validation failed: newUser",
            "errorLink": "E0000001",
            "errorId": "oaeRECORDEDanswer0001",
            "errorCauses": [{"errorSummary": "Property name 'notValid' is not defined in profile"}]
        }),
    }
}

/// Every Okta cause reaches EFS-Admin as Okta wrote it; a request field is named only
/// when the cause names one the request sent, never guessed from the summary.
async fn okta_s_causes_reach_efs_admin_verbatim(db: TestDb) {
    db.seed_efs_users(&[51, 52, 53, 54, 55], &[]).await;
    let okta = fake_okta().await;
    let app = spawn(&db, Some(&okta), |_| {}).await;
    let cause = "Property name 'notValid' is not defined in profile";

    // The request sent `notValid` as an attribute: the quoted name is its field.
    let mut unknown = profile("schema@example.com");
    unknown["attributes"] = json!({"notValid": "x", "department": "R&D"});
    let got = app.post("/api/v1/sync/users/51", unknown).await;
    assert_problem(&got, 422, "okta-validation-failed");
    assert_eq!(
        got.1["errors"],
        json!([{"field": "attributes.notValid", "message": cause}])
    );
    assert_eq!(
        got.1["detail"],
        format!("Okta refused the profile: {cause}")
    );
    assert!(okta.user_ids().is_empty(), "nothing created");

    // The same through a profile update (Okta's summary says `user` there).
    let (status, body) = app
        .post("/api/v1/sync/users/52", profile("upd@example.com"))
        .await;
    assert_eq!(status, 200, "{body}");
    let mut update = profile("upd@example.com");
    update["attributes"] = json!({"notValid": "x"});
    let got = app.post("/api/v1/sync/users/52", update).await;
    assert_problem(&got, 422, "okta-validation-failed");
    assert_eq!(
        got.1["errors"],
        json!([{"field": "attributes.notValid", "message": cause}])
    );

    // The recorded answer to a request that sent no such attribute: no field at all.
    okta.inject(Fault::new(
        "POST",
        "/api/v1/users",
        recorded_undefined_property_answer(),
    ));
    let mut other = profile("other@example.com");
    other["attributes"] = json!({"department": "R&D"});
    let got = app.post("/api/v1/sync/users/53", other).await;
    assert_eq!(
        assert_problem(&got, 422, "okta-validation-failed"),
        [""],
        "{}",
        got.1
    );
    assert_eq!(got.1["errors"], json!([{"message": cause}]));
    assert_eq!(
        got.1["detail"],
        format!("Okta refused the profile: {cause}")
    );

    // `login: …` and `email: …` name the request's fields.
    let got = app
        .post("/api/v1/sync/users/54", profile("not-a-login@x"))
        .await;
    assert_problem(&got, 422, "okta-validation-failed");
    assert_eq!(
        got.1["errors"],
        json!([
            {"field": "login", "message": "login: Username must be in the form of an email address"},
            {"field": "email", "message": "email: Does not match required pattern"},
        ])
    );

    // A cause about a property the request did not send names no field.
    okta.inject(Fault::new(
        "POST",
        "/api/v1/users",
        FaultKind::Response {
            status: 400,
            body: json!({
                "errorCode": "E0000001",
                "errorSummary": "Api validation failed: city",
                "errorCauses": [{"errorSummary": "city: The field is too long"}]
            }),
        },
    ));
    let got = app
        .post("/api/v1/sync/users/55", profile("city@example.com"))
        .await;
    assert_eq!(
        got.1["errors"],
        json!([{"message": "city: The field is too long"}])
    );

    // The error log has every cause verbatim, each row marked final.
    let (status, log) = app
        .get("/api/v1/errors?error_code=E0000001&q=notValid")
        .await;
    assert_eq!(status, 200, "{log}");
    let messages: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["message"].as_str().unwrap())
        .collect();
    assert!(
        messages.contains(&format!("Api validation failed: newUser ({cause}) [final]").as_str()),
        "{messages:?}"
    );
    assert!(
        messages.contains(&format!("Api validation failed: user ({cause}) [final]").as_str()),
        "{messages:?}"
    );
}

/// Okta failing 24 requests during work, every one overcome by a retry: the error log
/// shows it (it is "every error received from Okta") in a few rows that carry the
/// count, not in 24 rows and not in none; a call that fails for good is marked final.
/// The API's filters find those rows.
async fn an_okta_incident_leaves_a_few_counted_rows_in_the_error_log(db: TestDb) {
    let users: Vec<i32> = (101..=125).collect();
    db.seed_efs_users(&users, &[]).await;
    let okta = fake_okta().await;
    let app = std::sync::Arc::new(spawn(&db, Some(&okta), |_| {}).await);
    let started = chrono::Utc::now() - chrono::Duration::seconds(2);
    okta.inject(Fault::new("POST", "/api/v1/users", FaultKind::InternalServerError).times(24));
    // Concurrent, so that no one call meets more of the 24 than it may retry.
    let calls: Vec<_> = users[..24]
        .iter()
        .map(|&u| {
            let app = app.clone();
            tokio::spawn(async move {
                app.post(
                    &format!("/api/v1/sync/users/{u}"),
                    profile(&format!("u{u}@example.com")),
                )
                .await
            })
        })
        .collect();
    for call in calls {
        let (status, body) = call.await.unwrap();
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(okta.pending_faults(), 0, "all 24 were answered");

    let rows = |query: String| {
        let app = app.clone();
        async move {
            let (status, page) = app.get(&format!("/api/v1/errors?{query}")).await;
            assert_eq!(status, 200, "{page}");
            page["items"].as_array().unwrap().clone()
        }
    };
    let logged = rows("status_code=500".into()).await;
    assert_eq!(logged.len(), 1, "{logged:?}");
    assert_eq!(
        logged[0]["message"],
        "Internal Server Error [retried (attempt 1 of 4)]"
    );
    // The count goes onto that row when the window closes; at shutdown, by the flush.
    app.sync.okta().unwrap().flush_error_log().await;
    let logged = rows("status_code=500".into()).await;
    assert_eq!(logged.len(), 1, "{logged:?}");
    let count = logged[0]["message"].as_str().unwrap();
    assert!(
        count.starts_with("Internal Server Error [retried; ×24 within 60 s from "),
        "{count}"
    );

    // The filters work on these rows.
    let since = started.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    assert_eq!(rows("error_code=E0000009".into()).await.len(), 1);
    assert_eq!(rows("q=%C3%9724".into()).await.len(), 1, "q=×24");
    assert_eq!(rows("q=retried&status_code=500".into()).await.len(), 1);
    assert_eq!(
        rows(format!("since={since}&error_code=E0000009"))
            .await
            .len(),
        1
    );
    assert_eq!(
        rows(format!("until={since}&error_code=E0000009"))
            .await
            .len(),
        0
    );
    assert_eq!(
        rows("status_code=500&error_code=E0000047".into())
            .await
            .len(),
        0
    );

    // A call that fails for good: its last answer is marked final.
    okta.inject(Fault::new("POST", "/api/v1/users", FaultKind::InternalServerError).times(4));
    let got = app
        .post("/api/v1/sync/users/125", profile("u125@example.com"))
        .await;
    assert_problem(&got, 503, "okta-unavailable");
    let finals = rows("status_code=500&q=%5Bfinal".into()).await;
    assert_eq!(finals.len(), 1, "{finals:?}");
    assert_eq!(
        finals[0]["message"],
        "Internal Server Error [final (gave up after 4 attempts)]"
    );
    assert_eq!(finals[0]["error_code"], "E0000009");
}

#[tokio::test]
async fn an_existing_okta_user_is_linked_by_login() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let existing = seed_efs_user(&db, &okta, "Alan.Turing@example.com", UserStatus::Active).await;
    let app = spawn(&db, Some(&okta), |_| {}).await;
    let (status, body) = app
        .post("/api/v1/sync/users/5", profile("alan.turing@example.com"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "linked");
    assert_eq!(body["okta_user_id"], existing.as_str());
    // The fake was seeded as Grace Hopper: the profile was brought up to date, the
    // case of login and email included.
    assert_eq!(
        body["updated_fields"],
        json!(["login", "email", "first_name", "last_name"])
    );
    assert_eq!(okta.request_count("POST", "/api/v1/users"), 0);
    let reference = app.get("/api/v1/user-references/5").await;
    assert_eq!(reference.1["okta_user_id"], existing.as_str());
}

#[tokio::test]
async fn a_login_already_taken_is_resolved_by_linking() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let existing = seed_efs_user(&db, &okta, "late@example.com", UserStatus::Active).await;
    // The first lookup misses (another client created the user a moment ago, or
    // Okta's search lags), so efs-iam tries to create and Okta says "taken".
    okta.inject(Fault::new(
        "GET",
        "/api/v1/users/late@example.com",
        FaultKind::Response {
            status: 404,
            body: user_not_found_body("late@example.com"),
        },
    ));
    let app = spawn(&db, Some(&okta), |_| {}).await;
    let (status, body) = app
        .post("/api/v1/sync/users/6", profile("late@example.com"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "linked");
    assert_eq!(body["okta_user_id"], existing.as_str());
    assert_eq!(okta.request_count("POST", "/api/v1/users"), 1, "tried once");
    assert_eq!(users_with_login(&okta, "late@example.com").len(), 1);
}

#[tokio::test]
async fn a_stale_reference_is_replaced() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let app = spawn(&db, Some(&okta), |_| {}).await;
    app.put(
        "/api/v1/user-references/9",
        json!({"okta_user_id": "00uGONE0000000000000"}),
    )
    .await;
    let (status, body) = app
        .post("/api/v1/sync/users/9", profile("new@example.com"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "created");
    let reference = app.get("/api/v1/user-references/9").await;
    assert_eq!(reference.1["okta_user_id"], body["okta_user_id"]);
}

#[tokio::test]
async fn rate_limit_storms_are_waited_out() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let app = spawn(&db, Some(&okta), |_| {}).await;
    // Three 429s in a row on every kind of call, then Okta recovers: the adapter waits
    // for each reset and the sync succeeds.
    okta.inject(
        Fault::any_method(
            "/api/v1/",
            FaultKind::RateLimited {
                reset_after: Duration::from_secs(1),
            },
        )
        .times(3),
    );
    let (status, body) = app
        .post("/api/v1/sync/users/11", profile("storm@example.com"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "created");
    // Three identical 429s: the first one's row, and (at the latest when flushed) one
    // with the count.
    app.sync.okta().unwrap().flush_error_log().await;
    let errors = db
        .store
        .query_error_log(&ErrorLogQuery {
            status_code: Some(429),
            limit: 50,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0]
            .message
            .as_deref()
            .unwrap()
            .contains("[rate limit; retried; ×3 within 60 s"),
        "every 429 is in the error log: {errors:?}"
    );

    // A storm longer than the retries (an instance configured not to retry, to keep
    // the test short): 503 okta-unavailable, nothing created.
    let impatient = spawn(&db, Some(&okta), |s| s.okta.max_retries = 0).await;
    okta.inject(
        Fault::any_method(
            "/api/v1/",
            FaultKind::RateLimited {
                reset_after: Duration::from_secs(1),
            },
        )
        .times(20),
    );
    let got = impatient
        .post("/api/v1/sync/users/12", profile("storm2@example.com"))
        .await;
    assert_problem(&got, 503, "okta-unavailable");
    assert!(users_with_login(&okta, "storm2@example.com").is_empty());
    okta.clear_faults();
    let (status, body) = app
        .post("/api/v1/sync/users/12", profile("storm2@example.com"))
        .await;
    assert_eq!(
        (status.as_u16(), body["outcome"].as_str()),
        (200, Some("created"))
    );
}

#[tokio::test]
async fn server_errors_and_timeouts_are_retried_then_reported() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let app = spawn(&db, Some(&okta), |s| {
        s.okta.timeout = Duration::from_millis(500);
    })
    .await;
    okta.inject(Fault::new("POST", "/api/v1/users", FaultKind::ServiceUnavailable).times(2));
    let (status, body) = app
        .post("/api/v1/sync/users/21", profile("five@example.com"))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(okta.request_count("POST", "/api/v1/users"), 3);

    okta.inject(
        Fault::new(
            "GET",
            "/api/v1/users/slow@example.com",
            FaultKind::Hang(Duration::from_secs(2)),
        )
        .times(1),
    );
    let (status, body) = app
        .post("/api/v1/sync/users/22", profile("slow@example.com"))
        .await;
    assert_eq!(status, 200, "one timeout, then an answer: {body}");

    okta.inject(Fault::any_method("/api/v1/", FaultKind::InternalServerError).times(10));
    let got = app
        .post("/api/v1/sync/users/23", profile("down@example.com"))
        .await;
    assert_problem(&got, 503, "okta-unavailable");
    assert!(
        got.1["detail"].as_str().unwrap().contains("500"),
        "{}",
        got.1
    );
    okta.clear_faults();

    okta.inject(Fault::any_method("/api/v1/", FaultKind::Hang(Duration::from_secs(2))).times(10));
    let got = app
        .post("/api/v1/sync/users/24", profile("hung@example.com"))
        .await;
    assert_problem(&got, 503, "okta-unavailable");
    okta.clear_faults();
    assert!(users_with_login(&okta, "down@example.com").is_empty());
}

#[tokio::test]
async fn a_deprovisioned_okta_user_is_reported_not_reactivated() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let gone = seed_efs_user(&db, &okta, "left@example.com", UserStatus::Deprovisioned).await;
    let app = spawn(&db, Some(&okta), |_| {}).await;
    let got = app
        .post("/api/v1/sync/users/31", profile("left@example.com"))
        .await;
    assert_problem(&got, 409, "okta-user-deprovisioned");
    assert!(got.1["detail"].as_str().unwrap().contains(&gone));
    assert_eq!(okta.user(&gone).unwrap()["status"], "DEPROVISIONED");
    assert_eq!(
        okta.request_count("POST", "/api/v1/users"),
        0,
        "no second user"
    );
}

#[tokio::test]
async fn bad_profiles_are_refused_naming_the_field() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let app = spawn(&db, Some(&okta), |_| {}).await;

    // efs-iam's own checks.
    let mut blank = profile("a@example.com");
    blank["first_name"] = json!("  ");
    let got = app.post("/api/v1/sync/users/41", blank).await;
    assert_eq!(
        assert_problem(&got, 422, "validation-failed"),
        ["first_name"]
    );
    let mut extra = profile("a@example.com");
    extra["password"] = json!("hunter2");
    let got = app.post("/api/v1/sync/users/41", extra).await;
    assert_eq!(assert_problem(&got, 422, "validation-failed"), ["password"]);
    assert_eq!(okta.requests().len(), 0, "nothing reached Okta");

    // Okta's: its 400 becomes a 422 that names the request's field.
    let mut email = profile("b@example.com");
    email["email"] = json!("b@nodot");
    let got = app.post("/api/v1/sync/users/42", email).await;
    assert_eq!(
        assert_problem(&got, 422, "okta-validation-failed"),
        ["email"]
    );
    assert!(got.1["detail"]
        .as_str()
        .unwrap()
        .contains("Does not match required pattern"));
    let got = app
        .post("/api/v1/sync/users/43", profile("not-a-login@x"))
        .await;
    let fields = assert_problem(&got, 422, "okta-validation-failed");
    assert!(fields.contains(&"login".to_owned()), "{fields:?}");
    let mut attribute = profile("c@example.com");
    attribute["attributes"] = json!({"countryCode": "DEU"});
    let got = app.post("/api/v1/sync/users/44", attribute).await;
    assert_eq!(
        assert_problem(&got, 422, "okta-validation-failed"),
        ["attributes.countryCode"]
    );
    let got = app.get("/api/v1/user-references/44").await;
    assert_eq!(got.0, 404, "no reference for a refused user");
}

#[tokio::test]
async fn without_okta_settings_sync_answers_503_and_the_data_api_works() {
    let db = TestDb::sqlite().await;
    let app = spawn(&db, None, |_| {}).await;
    let got = app
        .post("/api/v1/sync/users/1", profile("a@example.com"))
        .await;
    assert_problem(&got, 503, "okta-not-configured");
    assert!(got.1["detail"]
        .as_str()
        .unwrap()
        .contains("EFS_IAM_OKTA_ORG_URL"));
    for (method, path) in [
        (reqwest::Method::DELETE, "/api/v1/sync/users/1"),
        (reqwest::Method::POST, "/api/v1/sync/portals/1/reconcile"),
        (reqwest::Method::POST, "/api/v1/sync/unassignments/run"),
    ] {
        let got = app.call(method, path, None).await;
        assert_problem(&got, 503, "okta-not-configured");
    }
    let got = app
        .post(
            "/api/v1/sync/portals/1/users",
            json!({"users": [{"user_id": 1, "login": "a@x.io", "email": "a@x.io", "first_name": "A", "last_name": "B"}]}),
        )
        .await;
    assert_problem(&got, 503, "okta-not-configured");
    let (status, body) = app.get("/api/v1/sync/status").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["okta"]["configured"], false);
    assert_eq!(body["workers"]["enabled"], false);
    adopted(&db, "00u1").await;
    let (status, _) = app
        .put("/api/v1/user-references/1", json!({"okta_user_id": "00u1"}))
        .await;
    assert!(status.is_success());
}

#[tokio::test]
async fn deprovisioning_deactivates_and_removes_the_reference() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let app = spawn(&db, Some(&okta), |_| {}).await;
    let (_, synced) = app
        .post("/api/v1/sync/users/51", profile("bye@example.com"))
        .await;
    let id = synced["okta_user_id"].as_str().unwrap().to_owned();

    let (status, body) = app.delete("/api/v1/sync/users/51").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "deactivated");
    assert_eq!(body["okta_user_id"], id.as_str());
    assert_eq!(okta.user(&id).unwrap()["status"], "DEPROVISIONED");
    assert_eq!(app.get("/api/v1/user-references/51").await.0, 404);
    assert_problem(&app.delete("/api/v1/sync/users/51").await, 404, "not-found");

    // Deactivated already (in Okta's admin console): still a success.
    let (_, synced) = app
        .post("/api/v1/sync/users/52", profile("twice@example.com"))
        .await;
    let id = synced["okta_user_id"].as_str().unwrap().to_owned();
    okta.set_user_status(&id, UserStatus::Deprovisioned);
    let (status, body) = app.delete("/api/v1/sync/users/52").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "already_deactivated");

    // The same person is also a panelist: the Okta user stays active.
    okta.create_group("Portal 3");
    let (_, synced) = app
        .post("/api/v1/sync/users/53", profile("both@example.com"))
        .await;
    let id = synced["okta_user_id"].as_str().unwrap().to_owned();
    app.put(
        "/api/v1/portals/3/user-references/530",
        json!({"okta_user_id": id, "status": "synced"}),
    )
    .await;
    let (status, body) = app.delete("/api/v1/sync/users/53").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "still_referenced");
    assert_eq!(body["other_references"], 1);
    assert_ne!(okta.user(&id).unwrap()["status"], "DEPROVISIONED");
    assert_eq!(app.get("/api/v1/user-references/53").await.0, 404);
}
