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
    db: &TestDb,
    app: &SyncApp,
    okta: &FakeOkta,
    group: &str,
    portal: i32,
    n: i32,
) -> Vec<String> {
    let mut ids = Vec::new();
    let mut users = Vec::new();
    for i in 1..=n {
        let id = seed_efs_user(
            db,
            okta,
            &format!("q{portal}-{i}@example.com"),
            UserStatus::Active,
        )
        .await;
        okta.add_group_member(group, &id);
        users.push(json!({"user_id": i, "okta_user_id": id, "email": format!("q{i}@example.com")}));
        ids.push(id);
    }
    app.enqueue_unassignments(portal, users).await;
    ids
}

crate::backend_matrix!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)] sqlite, mysql;
    the_queue_is_drained_on_demand,
    two_workers_share_one_queue_without_duplicate_work,
    a_missing_group_keeps_the_rows_and_says_so,
);

async fn the_queue_is_drained_on_demand(db: TestDb) {
    let okta = fake_okta().await;
    let group = okta.create_group("Drained portal");
    let app = spawn(&db, Some(&okta), |s| s.sync.batch_size = 7).await;
    app.link_portal(1, &group).await;
    let mut ids = queue_members(&db, &app, &okta, &group, 1, 20).await;
    // One user Okta no longer has (404): gone already, row deleted all the same.
    let (status, _) = app
        .post(
            "/api/v1/portals/1/unassignments",
            json!({"users": [{"user_id": 99, "okta_user_id": "00uDELETEDLONGAGO000"}]}),
        )
        .await;
    assert_eq!(status, 202);
    let stranger = seed_efs_user(&db, &okta, "stays@example.com", UserStatus::Active).await;
    okta.add_group_member(&group, &stranger);

    let run = drain_unassignments(&app).await;
    assert_eq!(run["claimed"], 21);
    assert_eq!(run["removed"], 20);
    assert_eq!(run["already_gone"], 1);
    assert!(run["steps"].as_u64().unwrap() >= 4, "batches of 7: {run}");
    assert_eq!(okta.group_members(&group), vec![stranger]);
    let (_, listed) = app.get("/api/v1/portals/1/unassignments").await;
    assert_eq!(
        listed["counts"],
        json!({"pending": 0, "dead": 0, "pending_capped": false, "dead_capped": false})
    );
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
    queue_members(&db, &a, &okta, &group, 2, 150).await;
    let (ra, rb) = tokio::join!(drain_unassignments(&a), drain_unassignments(&b));
    let removed = ra["removed"].as_u64().unwrap() + rb["removed"].as_u64().unwrap();
    assert_eq!(removed, 150, "a: {ra} b: {rb}");
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
    let ids = queue_members(&db, &app, &okta, &group, 3, 2).await;
    let path = format!("/api/v1/groups/{group}/users/{}", ids[0]);
    okta.inject(Fault::new("DELETE", &path, FaultKind::InternalServerError).times(10));

    let run = drain_unassignments(&app).await;
    assert_eq!(
        (run["removed"].as_u64(), run["retrying"].as_u64()),
        (Some(1), Some(1))
    );
    let (_, pending) = app
        .get("/api/v1/portals/3/unassignments?state=pending")
        .await;
    let row = &pending["items"][0];
    assert_eq!(row["attempts"], 1);
    assert!(row["last_error"].as_str().unwrap().contains("500"), "{row}");
    assert!(row["next_attempt_at"].is_string());
    let run = drain_unassignments(&app).await;
    assert_eq!(run["claimed"], 0, "backing off");

    tokio::time::sleep(Duration::from_millis(2100)).await;
    let run = drain_unassignments(&app).await;
    assert_eq!(run["dead_lettered"], 1, "{run}");
    let (_, dead) = app.get("/api/v1/portals/3/unassignments?state=dead").await;
    assert_eq!(
        dead["counts"],
        json!({"pending": 0, "dead": 1, "pending_capped": false, "dead_capped": false})
    );
    let row = dead["items"][0].clone();
    assert_eq!(row["attempts"], 2);
    assert!(row["dead_at"].is_string());
    assert_eq!(row["okta_user_id"], ids[0].as_str());
    let (_, status) = app.get("/api/v1/sync/status").await;
    assert_eq!(status["unassignments"]["dead"], 1);

    // Kept, not retried, until someone requeues it.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let run = drain_unassignments(&app).await;
    assert_eq!(run["claimed"], 0);
    okta.clear_faults();
    let (status, requeued) = app
        .post(
            "/api/v1/sync/unassignments/requeue",
            json!({"portal_id": 3, "ids": [row["id"], 123456]}),
        )
        .await;
    assert_eq!(status, 200, "{requeued}");
    assert_eq!(requeued["requeued"], 1);
    assert_eq!(
        requeued["skipped"],
        json!([{"id": 123456, "reason": "not_found"}])
    );
    let run = drain_unassignments(&app).await;
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
    let id = seed_efs_user(&db, &okta, "legacy@example.com", UserStatus::Active).await;
    okta.add_group_member(&group, &id);
    db.execute(&format!(
        "INSERT INTO iam_portal_user_group_unassignment_queue (user_id, uuid, email, created_at) \
             VALUES (5, CAST('{id}' AS BLOB), 'legacy@example.com', '2024-01-01 00:00:00')"
    ))
    .await;
    let run = drain_unassignments(&app).await;
    assert_eq!(run["unroutable"], 1, "{run}");
    let (_, dead) = app
        .get("/api/v1/sync/unassignments/dead?without_portal=true")
        .await;
    let row = &dead["items"][0];
    assert_eq!(row["portal_id"], Value::Null);
    assert!(row["last_error"].as_str().unwrap().contains("portal_id"));
    let (_, status) = app.get("/api/v1/sync/status").await;
    assert_eq!(status["unassignments"]["dead_without_portal"], 1);

    let (_, requeued) = app
        .post(
            "/api/v1/sync/unassignments/requeue",
            json!({"portal_id": 4, "ids": [row["id"]]}),
        )
        .await;
    assert_eq!(requeued["requeued"], 1, "{requeued}");
    let run = drain_unassignments(&app).await;
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
    queue_members(&db, &app, &okta, &group, 5, 3).await;
    okta.set_api_token(Some("rotated-token"));
    let run = drain_unassignments(&app).await;
    assert!(run["blocked"].as_str().unwrap().contains("Okta"), "{run}");
    assert_eq!(run["released"], 3);
    let (_, pending) = app
        .get("/api/v1/portals/5/unassignments?state=pending")
        .await;
    for row in pending["items"].as_array().unwrap() {
        assert_eq!(row["attempts"], 0, "not the rows' fault");
    }
    let (_, status) = app.get("/api/v1/sync/status").await;
    assert_eq!(status["okta"]["last_auth_failure"]["status"], 401);
    okta.set_api_token(Some("test-token"));
    let run = drain_unassignments(&app).await;
    assert_eq!(run["removed"], 3);
}

#[tokio::test]
async fn a_portal_without_group_setting_fails_its_rows_clearly() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let app = spawn(&db, Some(&okta), |s| s.sync.max_attempts = 1).await;
    app.post(
        "/api/v1/portals/6/unassignments",
        json!({"users": [{"user_id": 1, "okta_user_id": "00u1"}]}),
    )
    .await;
    let run = drain_unassignments(&app).await;
    assert_eq!(run["dead_lettered"], 1);
    let (_, dead) = app.get("/api/v1/portals/6/unassignments?state=dead").await;
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
    queue_members(&db, &app, &okta, &group, 7, 60).await;
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

/// A mistyped `okta_group_id`: Okta answers 404 to every removal, which must not count
/// as "already removed". The rows stay (retried, then dead letters), the error log has
/// one line per portal and step, status and metrics name the portal, and once the
/// setting is corrected a requeue removes the users from the real group.
async fn a_missing_group_keeps_the_rows_and_says_so(db: TestDb) {
    let okta = fake_okta().await;
    let real = okta.create_group("Real portal group");
    let app = spawn(&db, Some(&okta), |s| s.sync.max_attempts = 2).await;
    link_portal_unchecked(&db, 8, "00gMISTYPED000000000").await;
    let members = queue_members(&db, &app, &okta, &real, 8, 5).await;

    let run = drain_unassignments(&app).await;
    assert_eq!(
        (
            run["removed"].as_u64(),
            run["already_gone"].as_u64(),
            run["group_missing"].as_u64(),
            run["retrying"].as_u64()
        ),
        (Some(0), Some(0), Some(5), Some(5)),
        "{run}"
    );
    let (_, pending) = app
        .get("/api/v1/portals/8/unassignments?state=pending")
        .await;
    assert_eq!(
        pending["counts"],
        json!({"pending": 5, "dead": 0, "pending_capped": false, "dead_capped": false})
    );
    assert!(pending["items"][0]["last_error"]
        .as_str()
        .unwrap()
        .contains("okta-group-not-found"));
    assert_eq!(
        okta.group_members(&real).len(),
        5,
        "still members of the real group"
    );
    assert_eq!(
        okta.request_count("GET", "/api/v1/groups/{groupId}"),
        1,
        "one group check for the step, not one per row"
    );
    let (_, log) = app
        .get("/api/v1/errors?error_code=efs-iam:okta-group-not-found")
        .await;
    assert_eq!(log["items"].as_array().unwrap().len(), 1, "{log}");
    assert!(log["items"][0]["message"]
        .as_str()
        .unwrap()
        .contains("portal 8"));
    let (_, status) = app.get("/api/v1/sync/status").await;
    assert_eq!(
        status["missing_okta_groups"][0]["group_id"], "00gMISTYPED000000000",
        "{status}"
    );
    assert_eq!(status["missing_okta_groups"][0]["portal_id"], 8);

    // Second and last attempt after the backoff: dead letters, still kept.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let run = drain_unassignments(&app).await;
    assert_eq!(run["dead_lettered"], 5, "{run}");
    let (_, dead) = app.get("/api/v1/portals/8/unassignments?state=dead").await;
    assert_eq!(
        dead["counts"],
        json!({"pending": 0, "dead": 5, "pending_capped": false, "dead_capped": false})
    );

    app.link_portal(8, &real).await;
    let (status, requeued) = app
        .post(
            "/api/v1/sync/unassignments/requeue",
            json!({"portal_id": 8}),
        )
        .await;
    assert_eq!(status, 200, "{requeued}");
    let run = drain_unassignments(&app).await;
    assert_eq!(run["removed"], 5, "{run}");
    assert!(okta.group_members(&real).is_empty());
    let (_, status) = app.get("/api/v1/sync/status").await;
    assert_eq!(status["missing_okta_groups"], json!([]));
    drop(members);
}

/// `POST /sync/unassignments/run` is a trigger: it answers 202 at once, even when Okta
/// takes seconds per call and the caller gives up after one; the work goes on in the
/// background and nothing stays leased to a request.
#[tokio::test]
async fn a_run_trigger_answers_at_once_and_the_work_goes_on() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let group = okta.create_group("Slow Okta");
    let app = spawn(&db, Some(&okta), |s| s.sync.concurrency = 1).await;
    app.link_portal(9, &group).await;
    queue_members(&db, &app, &okta, &group, 9, 3).await;
    okta.set_latency(Duration::from_millis(700));

    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let res = impatient
        .post(app.url("/api/v1/sync/unassignments/run"))
        .send()
        .await
        .expect("answered before the client gave up");
    assert_eq!(res.status(), 202);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["triggered"], "started",
        "no worker loop in this instance"
    );
    assert_eq!(body["queue"]["pending"], 3);
    let (status, again) = app
        .post("/api/v1/sync/unassignments/run", Value::Null)
        .await;
    assert_eq!(status, 202);
    assert_eq!(again["triggered"], "already_running");

    let mut counts = Value::Null;
    for _ in 0..100 {
        counts = app.get("/api/v1/portals/9/unassignments").await.1["counts"].clone();
        if counts["pending"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        counts,
        json!({"pending": 0, "dead": 0, "pending_capped": false, "dead_capped": false})
    );
    assert!(okta.group_members(&group).is_empty());
    let got = app
        .post("/api/v1/sync/unassignments/run?max_rows=0", Value::Null)
        .await;
    assert_problem(&got, 400, "invalid-parameter");
}

/// Where the worker loops run, the trigger wakes them.
#[tokio::test]
async fn a_run_trigger_wakes_the_running_worker() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let group = okta.create_group("Woken");
    let app = spawn(&db, Some(&okta), |s| {
        s.sync.worker = true;
        s.sync.poll_interval = Duration::from_secs(3600);
    })
    .await;
    app.link_portal(10, &group).await;
    // Queued behind the worker's back: nothing wakes it but the trigger.
    let user = seed_efs_user(&db, &okta, "woken@example.com", UserStatus::Active).await;
    okta.add_group_member(&group, &user);
    use efs_iam::storage::UnassignmentQueueStore;
    db.store
        .enqueue_unassignments(
            efs_iam::domain::PortalId::new(10).unwrap(),
            &[efs_iam::storage::NewUnassignment {
                user_id: efs_iam::domain::EfsUserId::new(1).unwrap(),
                okta_user_id: efs_iam::domain::OktaUserId::parse(&user).unwrap(),
                email: None,
            }],
        )
        .await
        .unwrap();
    let (status, body) = app
        .post("/api/v1/sync/unassignments/run", Value::Null)
        .await;
    assert_eq!(
        (status.as_u16(), body["triggered"].as_str()),
        (202, Some("woken"))
    );
    for _ in 0..100 {
        if okta.group_members(&group).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(okta.group_members(&group).is_empty());
}

/// A step that takes longer than the lease keeps its rows: the heartbeat renews them,
/// so another worker does not take them over and remove the users a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_step_keeps_its_rows_by_heartbeat() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let group = okta.create_group("Slow removals");
    let app = spawn(&db, Some(&okta), |s| s.sync.lease = Duration::from_secs(1)).await;
    app.link_portal(11, &group).await;
    queue_members(&db, &app, &okta, &group, 11, 2).await;
    okta.set_latency(Duration::from_millis(1500));
    let worker = |name: &str| {
        let mut settings = app.sync.settings.clone();
        settings.concurrency = 1;
        UnassignmentWorker::new(
            &db.store,
            app.sync.okta().unwrap().clone(),
            settings,
            name.to_owned(),
            CancellationToken::new(),
        )
    };
    let (a, b) = (worker("a"), worker("b"));
    let slow = tokio::spawn(async move { a.run_once().await.unwrap() });
    // Past a's first lease (1 s), while a is still working on its rows.
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let meanwhile = b.run_once().await.unwrap();
    assert_eq!(meanwhile.claimed, 0, "a's leases were renewed");
    let done = slow.await.unwrap();
    assert_eq!(done.removed, 2, "{done:?}");
    assert_eq!(
        okta.request_count("DELETE", "/api/v1/groups/{groupId}/users/{userId}"),
        2,
        "each user removed once"
    );
}

/// The batch's lease renewal fails mid-batch (another session holds its rows' locks,
/// so the renewal passes the statement limit) while everything else still works: the
/// worker starts no further Okta removal of that batch, since its rows may be another
/// instance's by the time their lease runs out. Without the check all 10 are removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_cannot_renew_its_leases_stops_calling_okta() {
    let Some((db, _proxy)) = mysql_with_short_deadlines().await else {
        return;
    };
    let okta = fake_okta().await;
    let group = okta.create_group("Lost leases");
    let app = spawn(&db, Some(&okta), |s| s.sync.lease = Duration::from_secs(1)).await;
    app.link_portal(12, &group).await;
    queue_members(&db, &app, &okta, &group, 12, 10).await;
    okta.set_latency(Duration::from_millis(400));
    let mut settings = app.sync.settings.clone();
    settings.concurrency = 1;
    let worker = UnassignmentWorker::new(
        &db.store,
        app.sync.okta().unwrap().clone(),
        settings,
        "a".to_owned(),
        CancellationToken::new(),
    );
    let step = tokio::spawn(async move { worker.run_once().await });
    // After the claim, before the first renewal (a third of the 1 s lease): another
    // session locks the queue's rows and keeps them locked.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let tx = lock_rows(&db, "iam_portal_user_group_unassignment_queue").await;
    let _ = tokio::time::timeout(Duration::from_secs(30), step)
        .await
        .expect("the step ends");
    tx.rollback().await.unwrap();
    let removals = okta.request_count("DELETE", "/api/v1/groups/{groupId}/users/{userId}");
    assert!(
        (1..=3).contains(&removals),
        "{removals} removals: the batch must stop once its leases are lost (10 without the check)"
    );
}
