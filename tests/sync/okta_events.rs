//! Okta Event Hooks end to end: the fake Okta delivers real envelopes for changes made
//! in its Admin Console to `/hooks/okta/events`, and the references follow.

use std::time::{Duration, Instant};

use efs_iam::storage::{OktaEventStore, UserReferenceStore};
use fake_okta::{events, EventHook, FakeOkta, UserStatus};
use serde_json::{json, Value};

use crate::common::TestDb;
use crate::helpers::*;

const SECRET: &str = "an-event-hook-secret-of-32-chars";

async fn hooked(db: &TestDb, okta: &FakeOkta) -> SyncApp {
    // EFS's users and panelists, where the database has them (MariaDB).
    db.seed_efs_users(&[42], &(1..=20).collect::<Vec<_>>())
        .await;
    let app = spawn(db, Some(okta), |s| {
        s.okta.event_hook_secret = Some(SECRET.to_owned().into());
    })
    .await;
    okta.set_event_hook(EventHook::new(
        app.url("/hooks/okta/events"),
        "Authorization",
        SECRET,
    ));
    app
}

async fn reference_state(app: &SyncApp, portal: i32, user: i32) -> (String, bool) {
    let (_, r) = app
        .get(&format!("/api/v1/portals/{portal}/user-references/{user}"))
        .await;
    (
        r["status"].as_str().unwrap_or_default().to_owned(),
        r["has_data_changes"].as_bool().unwrap_or_default(),
    )
}

/// Waits until the fake has delivered everything and no event is pending.
async fn settled(okta: &FakeOkta, db: &TestDb) {
    assert!(okta.wait_for_deliveries(Duration::from_secs(10)).await);
    for _ in 0..200 {
        if db.store.okta_event_stats().await.unwrap().pending == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("events still pending");
}

#[tokio::test]
async fn the_hook_is_verified_and_refuses_a_wrong_or_missing_secret() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let app = hooked(&db, &okta).await;
    okta.verify_event_hook().await.expect("verified");

    let url = app.url("/hooks/okta/events");
    let envelope =
        json!({"data": {"events": [events::event("user.lifecycle.deactivate", vec![])]}});
    for auth in [
        None,
        Some("not the secret"),
        Some("Bearer an-event-hook-secret-of-32-chars"),
    ] {
        let mut req = app.client.post(&url).json(&envelope);
        if let Some(auth) = auth {
            req = req.header("Authorization", auth);
        }
        let res = req.send().await.unwrap();
        assert_eq!(res.status(), 401, "{auth:?}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
        let body = res.text().await.unwrap();
        assert!(!body.contains(SECRET), "{body}");
    }
    assert_eq!(
        db.store.okta_event_stats().await.unwrap().pending,
        0,
        "nothing stored"
    );
    let res = app
        .client
        .get(&url)
        .header("Authorization", SECRET)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400, "a verification without challenge");

    // Without a secret the endpoint is off.
    let off = spawn(&db, Some(&okta), |_| {}).await;
    let res = off
        .client
        .get(off.url("/hooks/okta/events"))
        .header("Authorization", SECRET)
        .header("X-Okta-Verification-Challenge", "x")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

crate::backend_matrix!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)] sqlite, mysql;
    changes_made_in_okta_reach_the_references,
    redelivered_and_reordered_events_change_nothing,
    an_event_from_the_future_holds_nothing_back,
);

/// Each Admin Console change, delivered by the hook, changes what it should and nothing
/// else.
async fn changes_made_in_okta_reach_the_references(db: TestDb) {
    let okta = fake_okta().await;
    let group = okta.create_group("Portal 1");
    let other_group = okta.create_group("Not a portal");
    let app = hooked(&db, &okta).await;
    app.link_portal(1, &group).await;
    let mut ids = Vec::new();
    for n in 1..=6 {
        let id = seed_efs_user(&db, &okta, &format!("u{n}@example.com"), UserStatus::Active).await;
        okta.add_group_member(&group, &id);
        ids.push(id);
    }
    let [a, b, c, d, e, bystander] = <[String; 6]>::try_from(ids).unwrap();
    for (n, id) in [(1, &a), (2, &b), (3, &c), (4, &d), (5, &e), (6, &bystander)] {
        link_reference(&app, 1, n, id).await;
    }
    // An EFS-Admin user linked to an Okta user (admin references have no status).
    let admin = seed_efs_user(&db, &okta, "admin.user@example.com", UserStatus::Active).await;
    app.put("/api/v1/user-references/42", json!({"okta_user_id": admin}))
        .await;
    settled(&okta, &db).await; // the seeding's own membership events

    okta.set_user_status(&a, UserStatus::Deprovisioned);
    okta.set_user_status(&b, UserStatus::Suspended);
    okta.set_user_status(&c, UserStatus::Deprovisioned);
    okta.delete_user(&c);
    okta.remove_group_member(&group, &d);
    okta.update_user_profile(&e, "email", json!("new.e@example.com"));
    okta.add_group_member(&other_group, &bystander);
    okta.set_user_status(&admin, UserStatus::Deprovisioned);
    settled(&okta, &db).await;

    assert_eq!(
        reference_state(&app, 1, 1).await,
        ("deprovisioned".into(), false)
    );
    assert_eq!(
        reference_state(&app, 1, 2).await,
        ("deprovisioned".into(), false)
    );
    assert_eq!(
        reference_state(&app, 1, 3).await,
        ("deprovisioned".into(), false)
    );
    assert_eq!(reference_state(&app, 1, 4).await, ("pending".into(), false));
    assert_eq!(reference_state(&app, 1, 5).await, ("synced".into(), true));
    assert_eq!(
        reference_state(&app, 1, 6).await,
        ("synced".into(), false),
        "a group that is no portal's changes nothing"
    );
    let (status, admin_ref) = app.get("/api/v1/user-references/42").await;
    assert_eq!(status, 200, "kept: {admin_ref}");

    // Reactivated, added back.
    okta.set_user_status(&a, UserStatus::Active);
    okta.add_group_member(&group, &d);
    settled(&okta, &db).await;
    assert_eq!(reference_state(&app, 1, 1).await, ("pending".into(), true));
    assert_eq!(reference_state(&app, 1, 4).await, ("synced".into(), false));

    // Every delivery was answered at once, and each event is recorded with its outcome.
    let deliveries = okta.deliveries();
    assert!(
        deliveries.iter().all(|d| d.attempts == vec![Some(200)]),
        "{deliveries:?}"
    );
    let processed = db
        .store
        .list_okta_events(Some("processed"), 100)
        .await
        .unwrap();
    let ignored = db
        .store
        .list_okta_events(Some("ignored"), 100)
        .await
        .unwrap();
    assert!(ignored.iter().any(|e| e
        .outcome
        .as_deref()
        .unwrap_or_default()
        .contains("no portal's")));
    let admin_event = processed
        .iter()
        .find(|e| e.payload.contains(&admin) && e.event_type == "user.lifecycle.deactivate")
        .expect("the admin user's deactivation");
    assert!(
        admin_event
            .outcome
            .as_deref()
            .unwrap()
            .contains("1 admin user reference"),
        "{admin_event:?}"
    );
    let (_, status) = app.get("/api/v1/sync/status").await;
    assert_eq!(status["okta_events"]["pending"], 0);
    assert_eq!(status["okta_events"]["failed"], 0);
}

/// Okta delivers at least once and in no particular order: a redelivery is stored
/// once, and an older event arriving after a newer one about the same user changes
/// nothing.
async fn redelivered_and_reordered_events_change_nothing(db: TestDb) {
    let okta = fake_okta().await;
    let group = okta.create_group("Portal 2");
    let app = hooked(&db, &okta).await;
    app.link_portal(2, &group).await;
    let id = seed_efs_user(&db, &okta, "ordered@example.com", UserStatus::Active).await;
    link_reference(&app, 2, 7, &id).await;
    let target = vec![events::user_target(&id, "ordered@example.com", "O R")];
    let mut older = events::event("user.lifecycle.reactivate", target.clone());
    older["published"] = json!("2026-11-29T10:00:00.000Z");
    let mut newer = events::event("user.lifecycle.deactivate", target);
    newer["published"] = json!("2026-11-29T10:00:01.500Z");

    okta.deliver_events(vec![newer.clone()]);
    settled(&okta, &db).await;
    assert_eq!(
        reference_state(&app, 2, 7).await,
        ("deprovisioned".into(), false)
    );
    // The same delivery again (Okta's retry), then the older event.
    okta.deliver_events(vec![newer.clone(), older.clone()]);
    settled(&okta, &db).await;
    assert_eq!(
        reference_state(&app, 2, 7).await,
        ("deprovisioned".into(), false),
        "the older reactivation does not undo the newer deactivation"
    );
    let stored_newer = db
        .store
        .okta_event(newer["uuid"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored_newer.state.as_str(), stored_newer.attempts),
        ("processed", 1)
    );
    let stored_older = db
        .store
        .okta_event(older["uuid"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored_older.state, "superseded");

    // Unknown event types are acknowledged and recorded, never an error.
    okta.deliver_events(vec![events::event("application.lifecycle.update", vec![])]);
    settled(&okta, &db).await;
    assert_eq!(
        db.store
            .list_okta_events(Some("ignored"), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(okta
        .deliveries()
        .iter()
        .all(|d| d.attempts == vec![Some(200)]));
}

/// The hook answers once the delivery is stored, not once it is applied: with the
/// references locked by someone else, Okta still gets its 200 well within 3 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_database_does_not_delay_the_answer() {
    let Some(db) = TestDb::mysql().await else {
        return;
    };
    let okta = fake_okta().await;
    let group = okta.create_group("Locked portal");
    let app = hooked(&db, &okta).await;
    app.link_portal(3, &group).await;
    let id = seed_efs_user(&db, &okta, "locked@example.com", UserStatus::Active).await;
    link_reference(&app, 3, 9, &id).await;
    use sqlx::Connection;
    let mut locker = sqlx::MySqlConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut locker).await.unwrap();
    sqlx::query("SELECT * FROM iam_portal_user_reference FOR UPDATE")
        .fetch_all(&mut locker)
        .await
        .unwrap();

    let event = events::event(
        "user.lifecycle.deactivate",
        vec![events::user_target(&id, "locked@example.com", "L")],
    );
    let started = Instant::now();
    let res = app
        .client
        .post(app.url("/hooks/okta/events"))
        .header("Authorization", SECRET)
        .json(&json!({"eventType": "com.okta.event_hook", "data": {"events": [event]}}))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, json!({"received": 1, "new": 1}));
    assert!(took < Duration::from_secs(1), "answered after {took:?}");
    assert_eq!(
        reference_state(&app, 3, 9).await.0,
        "synced",
        "not applied yet"
    );

    sqlx::query("ROLLBACK").execute(&mut locker).await.unwrap();
    for _ in 0..200 {
        if reference_state(&app, 3, 9).await.0 == "deprovisioned" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("applied once the lock was gone");
}

/// An event that cannot be applied is kept as failed, in the error log and the status.
/// An event about an Okta user efs-iam does not manage changes nothing, also when a
/// legacy reference row names that user; it is recorded as ignored, saying why.
#[tokio::test]
async fn events_about_someone_else_s_user_change_nothing() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let app = hooked(&db, &okta).await;
    let stranger = seed_user(&okta, "stranger@example.com", UserStatus::Active);
    db.store
        .put_portal_user_reference(
            efs_iam::domain::PortalId::new(3).unwrap(),
            efs_iam::domain::EfsUserId::new(9).unwrap(),
            &efs_iam::storage::PortalUserReferenceUpsert {
                okta_user_id: efs_iam::domain::OktaUserId::parse(&stranger).unwrap(),
                status: efs_iam::domain::PortalUserStatus::Synced,
                has_data_changes: false,
            },
        )
        .await
        .unwrap();
    let event = events::event(
        "user.lifecycle.deactivate",
        vec![events::user_target(
            &stranger,
            "stranger@example.com",
            "S T",
        )],
    );
    okta.deliver_events(vec![event.clone()]);
    settled(&okta, &db).await;
    assert_eq!(
        reference_state(&app, 3, 9).await,
        ("synced".into(), false),
        "the legacy reference is untouched"
    );
    let stored = db
        .store
        .okta_event(event["uuid"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.state, "ignored");
    assert!(stored.outcome.unwrap().contains("not managed by efs-iam"));
}

#[tokio::test]
async fn an_event_that_cannot_be_applied_stays_visible() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let app = hooked(&db, &okta).await;
    let bad = events::event(
        "user.lifecycle.deactivate",
        vec![events::user_target("not an okta id!", "x@example.com", "X")],
    );
    okta.deliver_events(vec![bad.clone()]);
    settled(&okta, &db).await;
    let stored = db
        .store
        .okta_event(bad["uuid"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.state, "failed");
    let (_, log) = app
        .get("/api/v1/errors?error_code=efs-iam:okta-event-failed")
        .await;
    assert_eq!(log["items"].as_array().unwrap().len(), 1, "{log}");
    let (_, status) = app.get("/api/v1/sync/status").await;
    assert_eq!(status["okta_events"]["failed"], 1);

    // A malformed delivery is refused whole, naming the field.
    let res = app
        .client
        .post(app.url("/hooks/okta/events"))
        .header("Authorization", SECRET)
        .json(&json!({"data": {"events": [{"uuid": "u1", "eventType": "user.lifecycle.deactivate"}]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "data.events[0].published");
    // A time MariaDB's DATETIME cannot hold is refused, not a 500.
    let mut ancient = events::event("user.lifecycle.deactivate", vec![]);
    ancient["published"] = json!("0001-01-01T00:00:00Z");
    let res = app
        .client
        .post(app.url("/hooks/okta/events"))
        .header("Authorization", SECRET)
        .json(&json!({"data": {"events": [ancient]}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
}

/// An event `published` in 9999 is stored as published at receipt: it applies, and the
/// user's next genuine event applies after it rather than ending `superseded`. A
/// watermark from the future written before that rule is not believed, and an
/// `iam:admin` can clear a user's watermarks (`DELETE …/event-watermarks`).
async fn an_event_from_the_future_holds_nothing_back(db: TestDb) {
    let okta = fake_okta().await;
    let group = okta.create_group("Portal 4");
    let app = hooked(&db, &okta).await;
    app.link_portal(4, &group).await;
    let id = seed_efs_user(&db, &okta, "future@example.com", UserStatus::Active).await;
    link_reference(&app, 4, 11, &id).await;
    let target = vec![events::user_target(&id, "future@example.com", "F U")];

    let mut forged = events::event("user.lifecycle.deactivate", target.clone());
    forged["published"] = json!("9999-12-31T23:59:59.000Z");
    okta.deliver_events(vec![forged.clone()]);
    settled(&okta, &db).await;
    assert_eq!(reference_state(&app, 4, 11).await.0, "deprovisioned");
    let stored = db
        .store
        .okta_event(forged["uuid"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(
        stored.published < chrono::Utc::now().naive_utc() + chrono::TimeDelta::minutes(1),
        "stored as published at receipt: {}",
        stored.published
    );

    // The user's next genuine event (published now) applies.
    okta.deliver_events(vec![events::event(
        "user.lifecycle.reactivate",
        target.clone(),
    )]);
    settled(&okta, &db).await;
    assert_eq!(
        reference_state(&app, 4, 11).await,
        ("pending".into(), true),
        "the reactivation after the forged event applied"
    );

    // A watermark from the future written straight into the database (as before the
    // clamp) holds nothing back either.
    let forged_mark = format!(
        "UPDATE efs_iam_okta_event_watermark SET published = '9999-12-31 23:59:59' \
         WHERE okta_user_id = '{id}'"
    );
    db.execute(&forged_mark).await;
    okta.deliver_events(vec![events::event(
        "user.lifecycle.deactivate",
        target.clone(),
    )]);
    settled(&okta, &db).await;
    assert_eq!(reference_state(&app, 4, 11).await.0, "deprovisioned");

    // Clearing: the watermarks are reported and gone; a second clearing finds none.
    let path = format!("/api/v1/okta-users/{id}/event-watermarks");
    let (status, body) = app.delete(&path).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["okta_user_id"], id.as_str());
    let cleared = body["cleared"].as_array().unwrap();
    assert_eq!(cleared.len(), 1, "{body}");
    assert_eq!(cleared[0]["subject"], "user");
    let (status, body) = app.delete(&path).await;
    assert_eq!((status.as_u16(), body["cleared"].clone()), (200, json!([])));
    // With no watermark, an older event applies again (what clearing is for).
    let mut older = events::event("user.lifecycle.reactivate", target);
    older["published"] = json!("2026-01-01T00:00:00.000Z");
    okta.deliver_events(vec![older]);
    settled(&okta, &db).await;
    assert_eq!(reference_state(&app, 4, 11).await.0, "pending");
    let (status, _) = app
        .delete("/api/v1/okta-users/not!an-id/event-watermarks")
        .await;
    assert_eq!(status, 400);
}

/// The event worker purges by EFS_IAM_OKTA_EVENT_RETENTION: an applied event received
/// before the retention goes, one within it stays (the storage contract tests which
/// states go; this, that the worker's setting reaches the purge).
#[tokio::test]
async fn the_event_worker_purges_by_its_retention() {
    use efs_iam::storage::NewOktaEvent;
    let db = TestDb::sqlite().await;
    let now = chrono::Utc::now().naive_utc();
    let event = |uuid: &str| NewOktaEvent {
        uuid: uuid.into(),
        event_type: "application.lifecycle.update".into(),
        published: now,
        payload: "{}".into(),
    };
    let days_ago = |d| now - chrono::TimeDelta::days(d);
    db.store
        .store_okta_events(&[event("received-12-days-ago")], days_ago(12))
        .await
        .unwrap();
    db.store
        .store_okta_events(&[event("received-8-days-ago")], days_ago(8))
        .await
        .unwrap();
    // A new worker per step: each purges at its first step, then hourly.
    let worker = || {
        let mut s = settings(&db, None);
        s.sync.okta_event_retention = Duration::from_secs(10 * 86_400);
        efs_iam::sync::OktaEventWorker::new(
            &db.store,
            s.sync,
            "retention".into(),
            tokio_util::sync::CancellationToken::new(),
        )
    };
    // The first step purges nothing (both are pending) and applies both (a type
    // efs-iam ignores); the next purges what is past the retention.
    assert_eq!(worker().run_once().await.unwrap().claimed, 2);
    worker().run_once().await.unwrap();
    let left: Vec<String> = db
        .store
        .list_okta_events(None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.uuid)
        .collect();
    assert_eq!(left, ["received-8-days-ago"]);
}
