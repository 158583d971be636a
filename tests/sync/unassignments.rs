//! The unassignment worker: drain, retries with backoff, dead letters, requeue, legacy
//! rows, credentials refused, several workers on one queue.

use std::collections::HashSet;
use std::time::Duration;

use efs_iam::sync::UnassignmentWorker;
use fake_okta::{FakeOkta, Fault, FaultKind, UserStatus};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::common::TestDb;
use crate::helpers::*;

/// `n` Okta users, members of `group`, queued for removal in `portal`.
async fn queue_members(
    app: &SyncApp,
    okta: &FakeOkta,
    group: &str,
    portal: i32,
    n: i32,
) -> Vec<String> {
    let mut ids = Vec::new();
    let mut users = Vec::new();
    for i in 1..=n {
        let id = seed_user(
            okta,
            &format!("q{portal}-{i}@example.com"),
            UserStatus::Active,
        );
        okta.add_group_member(group, &id);
        users.push(json!({"user_id": i, "okta_user_id": id, "email": format!("q{i}@example.com")}));
        ids.push(id);
    }
    let (status, body) = app
        .post(
            &format!("/portals/{portal}/unassignments"),
            json!({ "users": users }),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    ids
}

crate::backend_matrix!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)] sqlite, mysql;
    the_queue_is_drained_on_demand,
    two_workers_share_one_queue_without_duplicate_work,
);

async fn the_queue_is_drained_on_demand(db: TestDb) {
    let okta = fake_okta().await;
    let group = okta.create_group("Drained portal");
    let app = spawn(&db, Some(&okta), |s| s.sync.batch_size = 7).await;
    app.link_portal(1, &group).await;
    let mut ids = queue_members(&app, &okta, &group, 1, 20).await;
    // One user Okta no longer has (404): gone already, row deleted all the same.
    let (status, _) = app
        .post(
            "/portals/1/unassignments",
            json!({"users": [{"user_id": 99, "okta_user_id": "00uDELETEDLONGAGO000"}]}),
        )
        .await;
    assert_eq!(status, 202);
    let stranger = seed_user(&okta, "stays@example.com", UserStatus::Active);
    okta.add_group_member(&group, &stranger);

    let (status, run) = app.post("/sync/unassignments/run", Value::Null).await;
    assert_eq!(status, 200, "{run}");
    assert_eq!(run["claimed"], 21);
    assert_eq!(run["removed"], 20);
    assert_eq!(run["already_gone"], 1);
    assert!(run["steps"].as_u64().unwrap() >= 4, "batches of 7: {run}");
    assert_eq!(run["queue"]["pending"], 0);
    assert_eq!(okta.group_members(&group), vec![stranger]);
    let (_, listed) = app.get("/portals/1/unassignments").await;
    assert_eq!(listed["counts"], json!({"pending": 0, "dead": 0}));
    ids.sort();
    assert_eq!(
        okta.request_count("DELETE", "/api/v1/groups/{groupId}/users/{userId}"),
        21
    );
}

async fn two_workers_share_one_queue_without_duplicate_work(db: TestDb) {
    let okta = fake_okta().await;
    okta.set_latency(Duration::from_millis(5));
    let group = okta.create_group("Shared queue");
    let a = spawn(&db, Some(&okta), |s| s.sync.batch_size = 10).await;
    let b = spawn(&db, Some(&okta), |s| s.sync.batch_size = 10).await;
    a.link_portal(2, &group).await;
    queue_members(&a, &okta, &group, 2, 150).await;
    let (ra, rb) = tokio::join!(
        a.post("/sync/unassignments/run", Value::Null),
        b.post("/sync/unassignments/run", Value::Null)
    );
    assert_eq!((ra.0.as_u16(), rb.0.as_u16()), (200, 200));
    let removed = ra.1["removed"].as_u64().unwrap() + rb.1["removed"].as_u64().unwrap();
    assert_eq!(removed, 150, "a: {} b: {}", ra.1, rb.1);
    assert!(okta.group_members(&group).is_empty());
    assert_eq!(
        okta.request_count("DELETE", "/api/v1/groups/{groupId}/users/{userId}"),
        150,
        "each row handled by one worker"
    );
}

#[tokio::test]
async fn failures_back_off_then_become_dead_letters_that_can_be_requeued() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let group = okta.create_group("Flaky");
    let app = spawn(&db, Some(&okta), |s| {
        s.okta.max_retries = 0;
        s.sync.max_attempts = 2;
        s.sync.backoff_base = Duration::from_secs(1);
    })
    .await;
    app.link_portal(3, &group).await;
    let ids = queue_members(&app, &okta, &group, 3, 2).await;
    let path = format!("/api/v1/groups/{group}/users/{}", ids[0]);
    okta.inject(Fault::new("DELETE", &path, FaultKind::InternalServerError).times(10));

    let (_, run) = app.post("/sync/unassignments/run", Value::Null).await;
    assert_eq!(
        (run["removed"].as_u64(), run["retrying"].as_u64()),
        (Some(1), Some(1))
    );
    let (_, pending) = app.get("/portals/3/unassignments?state=pending").await;
    let row = &pending["items"][0];
    assert_eq!(row["attempts"], 1);
    assert!(row["last_error"].as_str().unwrap().contains("500"), "{row}");
    assert!(row["next_attempt_at"].is_string());
    let (_, run) = app.post("/sync/unassignments/run", Value::Null).await;
    assert_eq!(run["claimed"], 0, "backing off");

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (_, run) = app.post("/sync/unassignments/run", Value::Null).await;
    assert_eq!(run["dead_lettered"], 1, "{run}");
    let (_, dead) = app.get("/portals/3/unassignments?state=dead").await;
    assert_eq!(dead["counts"], json!({"pending": 0, "dead": 1}));
    let row = dead["items"][0].clone();
    assert_eq!(row["attempts"], 2);
    assert!(row["dead_at"].is_string());
    assert_eq!(row["okta_user_id"], ids[0].as_str());
    let (_, status) = app.get("/sync/status").await;
    assert_eq!(status["unassignments"]["dead"], 1);

    // Kept, not retried, until someone requeues it.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (_, run) = app.post("/sync/unassignments/run", Value::Null).await;
    assert_eq!(run["claimed"], 0);
    okta.clear_faults();
    let (status, requeued) = app
        .post(
            "/sync/unassignments/requeue",
            json!({"portal_id": 3, "ids": [row["id"], 123456]}),
        )
        .await;
    assert_eq!(status, 200, "{requeued}");
    assert_eq!(requeued["requeued"], 1);
    assert_eq!(
        requeued["skipped"],
        json!([{"id": 123456, "reason": "not_found"}])
    );
    let (_, run) = app.post("/sync/unassignments/run", Value::Null).await;
    assert_eq!(run["removed"], 1);
    assert!(okta.group_members(&group).is_empty());
}

#[tokio::test]
async fn legacy_rows_without_portal_are_dead_lettered_and_can_be_requeued_with_one() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let group = okta.create_group("Legacy");
    let app = spawn(&db, Some(&okta), |_| {}).await;
    app.link_portal(4, &group).await;
    let id = seed_user(&okta, "legacy@example.com", UserStatus::Active);
    okta.add_group_member(&group, &id);
    db.execute(&format!(
        "INSERT INTO iam_portal_user_group_unassignment_queue (user_id, uuid, email, created_at) \
             VALUES (5, CAST('{id}' AS BLOB), 'legacy@example.com', '2024-01-01 00:00:00')"
    ))
    .await;
    let (_, run) = app.post("/sync/unassignments/run", Value::Null).await;
    assert_eq!(run["unroutable"], 1, "{run}");
    let (_, dead) = app
        .get("/sync/unassignments/dead?without_portal=true")
        .await;
    let row = &dead["items"][0];
    assert_eq!(row["portal_id"], Value::Null);
    assert!(row["last_error"].as_str().unwrap().contains("portal_id"));
    let (_, status) = app.get("/sync/status").await;
    assert_eq!(status["unassignments"]["dead_without_portal"], 1);

    let (_, requeued) = app
        .post(
            "/sync/unassignments/requeue",
            json!({"portal_id": 4, "ids": [row["id"]]}),
        )
        .await;
    assert_eq!(requeued["requeued"], 1, "{requeued}");
    let (_, run) = app.post("/sync/unassignments/run", Value::Null).await;
    assert_eq!(run["removed"], 1, "{run}");
    assert!(okta.group_members(&group).is_empty());
}

#[tokio::test]
async fn refused_credentials_block_the_worker_without_spending_attempts() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let group = okta.create_group("Locked out");
    let app = spawn(&db, Some(&okta), |_| {}).await;
    app.link_portal(5, &group).await;
    queue_members(&app, &okta, &group, 5, 3).await;
    okta.set_api_token(Some("rotated-token"));
    let (_, run) = app.post("/sync/unassignments/run", Value::Null).await;
    assert!(run["blocked"].as_str().unwrap().contains("Okta"), "{run}");
    assert_eq!(run["released"], 3);
    let (_, pending) = app.get("/portals/5/unassignments?state=pending").await;
    for row in pending["items"].as_array().unwrap() {
        assert_eq!(row["attempts"], 0, "not the rows' fault");
    }
    let (_, status) = app.get("/sync/status").await;
    assert_eq!(status["okta"]["last_auth_failure"]["status"], 401);
    okta.set_api_token(Some("test-token"));
    let (_, run) = app.post("/sync/unassignments/run", Value::Null).await;
    assert_eq!(run["removed"], 3);
}

#[tokio::test]
async fn a_portal_without_group_setting_fails_its_rows_clearly() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let app = spawn(&db, Some(&okta), |s| s.sync.max_attempts = 1).await;
    app.post(
        "/portals/6/unassignments",
        json!({"users": [{"user_id": 1, "okta_user_id": "00u1"}]}),
    )
    .await;
    let (_, run) = app.post("/sync/unassignments/run", Value::Null).await;
    assert_eq!(run["dead_lettered"], 1);
    let (_, dead) = app.get("/portals/6/unassignments?state=dead").await;
    assert!(dead["items"][0]["last_error"]
        .as_str()
        .unwrap()
        .contains("okta_group_id"));
    assert!(okta.requests().is_empty());
}

/// The step function on its own, with several workers of one process racing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_steps_hand_out_every_row_once() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let group = okta.create_group("Steps");
    let app = spawn(&db, Some(&okta), |_| {}).await;
    app.link_portal(7, &group).await;
    queue_members(&app, &okta, &group, 7, 60).await;
    let client = app.sync.okta().unwrap().clone();
    let mut tasks = Vec::new();
    for w in 0..3 {
        let mut settings = app.sync.settings.clone();
        settings.batch_size = 5;
        let worker = UnassignmentWorker::new(
            &db.store,
            client.clone(),
            settings,
            format!("worker-{w}"),
            CancellationToken::new(),
        );
        tasks.push(tokio::spawn(async move {
            let mut removed = 0;
            loop {
                let step = worker.run_once().await.unwrap();
                if step.claimed == 0 {
                    return removed;
                }
                removed += step.removed;
            }
        }));
    }
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap();
    }
    assert_eq!(total, 60);
    let members: HashSet<String> = okta.group_members(&group).into_iter().collect();
    assert!(members.is_empty());
    assert_eq!(
        okta.request_count("DELETE", "/api/v1/groups/{groupId}/users/{userId}"),
        60
    );
}
