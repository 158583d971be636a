//! Batch sync jobs: accepted at once, run by the workers, per-user results, resumed
//! after a crash.

use std::time::Duration;

use efs_iam::storage::now;
use efs_iam::storage::prelude::*;
use fake_okta::{Fault, FaultKind};
use serde_json::{json, Value};

use crate::common::TestDb;
use crate::helpers::*;

fn batch(n: std::ops::RangeInclusive<i32>) -> Value {
    let users: Vec<Value> = n
        .map(|i| {
            json!({"user_id": i, "login": format!("p{i}@example.com"), "email": format!("p{i}@example.com"),
                   "first_name": "P", "last_name": format!("{i}")})
        })
        .collect();
    json!({ "users": users })
}

crate::backend_matrix!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)] sqlite, mysql;a_batch_runs_in_the_background_with_per_user_results);

async fn a_batch_runs_in_the_background_with_per_user_results(db: TestDb) {
    db.seed_efs_users(&[], &(1..=60).collect::<Vec<_>>()).await;
    let okta = fake_okta().await;
    let group = okta.create_group("Batch portal");
    let app = spawn(&db, Some(&okta), |s| {
        s.sync.batch_size = 25;
    })
    .await;
    app.link_portal(3, &group).await;
    let mut body = batch(1..=60);
    body["users"][7]["email"] = json!("p8@nodot");
    body["users"][9]["attributes"] = json!({"countryCode": "DEU"});

    let (location, accepted) = post_accepted(&app, "/api/v1/sync/portals/3/users", &body).await;
    assert_eq!(accepted["total"], 60);
    assert_eq!(accepted["state"], "running");
    let job = accepted["job_id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v1/sync/jobs/{job}"));

    let (_, progress) = app.get(&format!("/api/v1/sync/jobs/{job}")).await;
    assert_eq!(progress["counts"]["pending"], 60);

    drain_jobs(&app, 10).await;
    let (status, done) = app.get(&format!("/api/v1/sync/jobs/{job}")).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["state"], "finished");
    assert!(done["finished_at"].is_string());
    assert_eq!(
        done["counts"],
        json!({"pending": 0, "succeeded": 58, "failed": 2, "retrying": 0})
    );
    let items = done["items"].as_array().unwrap();
    assert_eq!(items.len(), 60);
    assert_eq!(items[0]["index"], 0);
    assert_eq!(items[0]["user_id"], 1);
    assert_eq!(items[0]["outcome"], "created");
    assert!(items[0]["okta_user_id"].is_string());
    assert_eq!(items[7]["state"], "failed");
    assert_eq!(items[7]["error"]["type"], "okta-validation-failed");
    assert_eq!(items[7]["error"]["field"], "email");
    assert_eq!(items[9]["error"]["field"], "attributes.countryCode");
    assert_eq!(okta.group_members(&group).len(), 58);

    let (_, failed) = app
        .get(&format!("/api/v1/sync/jobs/{job}?state=failed&limit=1"))
        .await;
    assert_eq!(failed["items"].as_array().unwrap().len(), 1);
    assert_eq!(failed["items"][0]["index"], 7);
    let cursor = failed["next_cursor"].as_str().unwrap();
    let (_, next) = app
        .get(&format!(
            "/api/v1/sync/jobs/{job}?state=failed&limit=1&cursor={cursor}"
        ))
        .await;
    assert_eq!(next["items"][0]["index"], 9);
    assert!(next.get("next_cursor").is_none());
    let (_, reference) = app.get("/api/v1/portals/3/user-references/8").await;
    assert_eq!(reference["status"], "failed");
}

#[tokio::test]
async fn transient_failures_are_retried_with_backoff() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let group = okta.create_group("Flaky portal");
    let app = spawn(&db, Some(&okta), |s| {
        s.okta.max_retries = 0;
        s.sync.max_attempts = 3;
        s.sync.backoff_base = Duration::from_secs(1);
    })
    .await;
    app.link_portal(4, &group).await;
    let (_, accepted) = app.post("/api/v1/sync/portals/4/users", batch(1..=1)).await;
    let job = accepted["job_id"].as_str().unwrap().to_owned();
    okta.inject(Fault::new("POST", "/api/v1/users", FaultKind::ServiceUnavailable).times(1));
    let worker = app.sync.job_worker().unwrap();
    let step = worker.run_once().await.unwrap();
    assert_eq!((step.claimed, step.retrying), (1, 1));
    let (_, progress) = app.get(&format!("/api/v1/sync/jobs/{job}")).await;
    assert_eq!(progress["counts"]["retrying"], 1);
    assert_eq!(progress["items"][0]["error"]["type"], "retrying");
    assert!(progress["items"][0]["next_attempt_at"].is_string());
    assert_eq!(worker.run_once().await.unwrap().claimed, 0, "backing off");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let step = worker.run_once().await.unwrap();
    assert_eq!((step.claimed, step.succeeded), (1, 1));
    let (_, done) = app.get(&format!("/api/v1/sync/jobs/{job}")).await;
    assert_eq!(done["state"], "finished");
    assert_eq!(done["items"][0]["attempts"], 2);
}

/// A batch item refused by Okta reads like the single sync: its detail has Okta's cause
/// verbatim, and its `field` is there only when the cause names a field the item sent.
#[tokio::test]
async fn okta_s_causes_reach_job_items_naming_only_fields_the_item_sent() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let group = okta.create_group("Schema portal");
    let app = spawn(&db, Some(&okta), |_| {}).await;
    app.link_portal(5, &group).await;
    let cause = "Property name 'notValid' is not defined in profile";
    let item_error = |attributes: Value| {
        let app = &app;
        async move {
            let mut body = batch(1..=1);
            body["users"][0]["attributes"] = attributes;
            let (status, accepted) = app.post("/api/v1/sync/portals/5/users", body).await;
            assert_eq!(status, 202, "{accepted}");
            drain_jobs(app, 5).await;
            let job = accepted["job_id"].as_str().unwrap();
            let (_, done) = app.get(&format!("/api/v1/sync/jobs/{job}")).await;
            assert_eq!(done["items"][0]["state"], "failed", "{done}");
            done["items"][0]["error"].clone()
        }
    };

    let sent = item_error(json!({"notValid": "x"})).await;
    assert_eq!(
        sent,
        json!({
            "type": "okta-validation-failed",
            "detail": format!("Okta refused the profile: {cause}"),
            "field": "attributes.notValid",
        })
    );

    // Okta's recorded answer to an item that sent no such attribute: no field.
    okta.inject(Fault::new(
        "POST",
        "/api/v1/users",
        FaultKind::Response {
            status: 400,
            body: json!({"errorCode": "E0000001", "errorSummary": "Api validation failed: newUser",
                         "errorCauses": [{"errorSummary": cause}]}),
        },
    ));
    let not_sent = item_error(json!({"department": "R&D"})).await;
    assert_eq!(
        not_sent,
        json!({
            "type": "okta-validation-failed",
            "detail": format!("Okta refused the profile: {cause}"),
        })
    );
}

/// An instance claims part of a job and dies; after a restart (another instance on the
/// same database) the job resumes and completes, each user synced once.
#[tokio::test]
async fn a_job_survives_a_crash_and_resumes() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let group = okta.create_group("Resumed portal");
    let mut first = spawn(&db, Some(&okta), |s| {
        s.sync.lease = Duration::from_secs(1);
    })
    .await;
    first.link_portal(5, &group).await;
    let (status, accepted) = first
        .post("/api/v1/sync/portals/5/users", batch(1..=30))
        .await;
    assert_eq!(status, 202);
    let job = accepted["job_id"].as_str().unwrap().to_owned();
    // The "crashed" instance leased ten items and never finished them.
    let t = now();
    let leased = db
        .store
        .claim_sync_items("crashed-instance", t, t + chrono::Duration::seconds(3), 10)
        .await
        .unwrap();
    assert_eq!(leased.len(), 10);
    first.stop().await;

    let second = spawn(&db, Some(&okta), |s| {
        s.sync.lease = Duration::from_secs(1);
    })
    .await;
    let worker = second.sync.job_worker().unwrap();
    let step = worker.run_once().await.unwrap();
    assert_eq!(step.claimed, 20, "the leased items wait for their lease");
    tokio::time::sleep(Duration::from_millis(4100)).await;
    drain_jobs(&second, 5).await;
    let (_, done) = second.get(&format!("/api/v1/sync/jobs/{job}")).await;
    assert_eq!(done["state"], "finished", "{done}");
    assert_eq!(done["counts"]["succeeded"], 30);
    assert_eq!(okta.group_members(&group).len(), 30);
    assert_eq!(okta.request_count("POST", "/api/v1/users"), 30);
}

#[tokio::test]
async fn the_background_worker_runs_jobs_and_stops_with_the_server() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let group = okta.create_group("Background portal");
    let mut app = spawn(&db, Some(&okta), |s| {
        s.sync.worker = true;
        s.sync.poll_interval = Duration::from_secs(30);
    })
    .await;
    app.link_portal(8, &group).await;
    let (_, accepted) = app
        .post("/api/v1/sync/portals/8/users", batch(1..=12))
        .await;
    let job = accepted["job_id"].as_str().unwrap().to_owned();
    // The submission wakes the worker; no need to wait for the poll interval.
    let mut state = Value::Null;
    for _ in 0..100 {
        let (_, body) = app.get(&format!("/api/v1/sync/jobs/{job}")).await;
        state = body["state"].clone();
        if state == "finished" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(state, "finished");
    let (_, status) = app.get("/api/v1/sync/status").await;
    assert_eq!(status["workers"]["enabled"], true);
    assert_eq!(status["workers"]["jobs"]["running"], true);
    app.stop().await;
    assert!(
        !app.sync
            .health(<efs_iam::sync::JobWorker as efs_iam::sync::Worker>::NAME)
            .running,
        "stopped with the server"
    );
}

#[tokio::test]
async fn batches_are_validated_as_a_whole() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let app = spawn(&db, Some(&okta), |_| {}).await;
    app.link_portal(9, &okta.create_group("batch checks")).await;
    let mut body = batch(1..=3);
    body["users"][2]["user_id"] = json!(0);
    body["users"][1]["login"] = json!(" ");
    let got = app.post("/api/v1/sync/portals/9/users", body).await;
    assert_eq!(
        assert_problem(&got, 422, "validation-failed"),
        ["users[1].login", "users[2].user_id"]
    );
    let got = app
        .post("/api/v1/sync/portals/9/users", json!({"users": []}))
        .await;
    assert_eq!(assert_problem(&got, 422, "validation-failed"), ["users"]);
    let got = app
        .post("/api/v1/sync/portals/9/users", batch(1..=10_001))
        .await;
    assert_eq!(assert_problem(&got, 422, "validation-failed"), ["users"]);
    let got = app.get("/api/v1/sync/jobs/not-a-job").await;
    assert_problem(&got, 400, "invalid-parameter");
    let got = app
        .get("/api/v1/sync/jobs/7d9f1c2e-4b1a-4c7e-9a51-0d6f2f9a1b23")
        .await;
    assert_problem(&got, 404, "not-found");
}

/// The batch loop every worker of leased items shares (`work_through`): once a renewal
/// of the batch's leases fails, the items not yet started are released, not synced:
/// they may be another instance's by now. (Another session holds the items' rows, so
/// the heartbeat's renewal times out.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_worker_that_cannot_renew_its_leases_stops_syncing() {
    let Some((db, _proxy)) = mysql_with_short_deadlines().await else {
        return;
    };
    db.seed_efs_users(&[], &(1..=10).collect::<Vec<_>>()).await;
    let okta = fake_okta().await;
    let group = okta.create_group("Lost item leases");
    let app = spawn(&db, Some(&okta), |s| {
        s.sync.lease = Duration::from_secs(1);
        s.sync.concurrency = 1;
    })
    .await;
    app.link_portal(5, &group).await;
    let (_, accepted) = app
        .post("/api/v1/sync/portals/5/users", batch(1..=10))
        .await;
    assert_eq!(accepted["total"], 10, "{accepted}");
    okta.set_latency(Duration::from_millis(400));
    let worker = app.sync.job_worker().unwrap().clone();
    let step = tokio::spawn(async move { worker.run_once().await });
    // After the claim, before the first renewal (a third of the 1 s lease): another
    // session locks the items' rows and keeps them locked.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let tx = lock_rows(&db, "efs_iam_sync_job_item").await;
    let step = tokio::time::timeout(Duration::from_secs(30), step)
        .await
        .expect("the step ends")
        .unwrap()
        .unwrap();
    tx.rollback().await.unwrap();
    let created = okta.request_count("POST", "/api/v1/users");
    assert!(
        (1..=2).contains(&created),
        "{created} users created: the batch must stop once its leases are lost (10 without the check)"
    );
    assert_eq!(step.claimed, 10);
    assert!(step.released >= 8, "{step:?}");
}
