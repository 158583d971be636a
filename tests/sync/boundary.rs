//! The managed-user boundary in the workers and the sync engine, over HTTP against the
//! fake Okta: someone else's user and an Okta administrator are never changed, grouped
//! or ungrouped; users efs-iam creates are its own, also when a create's answer was
//! lost; a bulk adoption brings an existing installation's users under management.

use std::time::Duration;

use efs_iam::domain::{EfsUserId, OktaUserId, PortalId};
use efs_iam::storage::prelude::*;
use efs_iam::sync::{AdoptionWorker, Worker};
use fake_okta::{FakeOkta, FakeOktaConfig, Fault, FaultKind, RateLimitBucket, UserStatus};
use serde_json::{json, Value};

use crate::common::TestDb;
use crate::helpers::*;

/// A legacy admin reference (written straight into the database, as EFS's PHP did).
async fn legacy_admin_reference(db: &TestDb, user: i32, okta_id: &str) {
    db.store
        .put_admin_user_reference(
            EfsUserId::new(user).unwrap(),
            &OktaUserId::parse(okta_id).unwrap(),
        )
        .await
        .unwrap();
}

async fn enqueue(app: &SyncApp, portal: i32, okta_ids: &[&str]) {
    let users: Vec<Value> = okta_ids
        .iter()
        .enumerate()
        .map(|(i, id)| json!({"user_id": i + 1, "okta_user_id": id}))
        .collect();
    app.enqueue_unassignments(portal, users).await;
}

/// An Okta administrator, even one efs-iam manages, is never updated, grouped,
/// removed from a group or deactivated: not even an anonymous development caller,
/// which holds every scope, gets that.
#[tokio::test]
async fn an_okta_administrator_is_never_touched() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let group = okta.create_group("Portal 4");
    let app = spawn(&db, Some(&okta), |_| {}).await;
    app.link_portal(4, &group).await;
    let boss = seed_efs_user(&db, &okta, "boss@example.com", UserStatus::Active).await;
    okta.grant_admin_role(&boss, "SUPER_ADMIN");
    okta.add_group_member(&group, &boss);
    let before = okta.user(&boss).unwrap();

    legacy_admin_reference(&db, 5, &boss).await;
    let got = app
        .post("/api/v1/sync/users/5", profile("renamed@example.com"))
        .await;
    assert_problem(&got, 409, "okta-user-privileged");
    assert!(got.1["detail"].as_str().unwrap().contains("SUPER_ADMIN"));
    let got = app.delete("/api/v1/sync/users/5").await;
    assert_problem(&got, 409, "okta-user-privileged");

    enqueue(&app, 4, &[&boss]).await;
    let run = drain_unassignments(&app).await;
    assert_eq!(run["dead_lettered"], 1, "{run}");
    let (_, dead) = app.get("/api/v1/portals/4/unassignments?state=dead").await;
    assert!(dead["items"][0]["last_error"]
        .as_str()
        .unwrap()
        .contains("okta-user-privileged"));

    let run = reconcile_and_wait(&app, 4).await;
    assert_eq!(run["report"]["repaired"]["removed"], 0, "{run}");
    assert!(run["report"]["errors"][0]["error"]
        .as_str()
        .unwrap()
        .contains("admin roles"));

    let after = okta.user(&boss).unwrap();
    assert_eq!(after["profile"], before["profile"]);
    assert_eq!(after["status"], "ACTIVE");
    assert_eq!(okta.group_members(&group), vec![boss]);
}

/// Someone else's user in a portal's group is neither removed by the queue nor by a
/// repair; a user Okta no longer has is gone as before.
#[tokio::test]
async fn someone_else_s_user_keeps_its_group_membership() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let group = okta.create_group("Portal 5");
    let app = spawn(&db, Some(&okta), |_| {}).await;
    app.link_portal(5, &group).await;
    let stranger = seed_user(&okta, "stranger@example.com", UserStatus::Active);
    okta.add_group_member(&group, &stranger);

    enqueue(&app, 5, &[&stranger, "00uNOBODYATALL000000"]).await;
    let run = drain_unassignments(&app).await;
    assert_eq!(
        (run["dead_lettered"].as_u64(), run["already_gone"].as_u64()),
        (Some(1), Some(1)),
        "{run}"
    );
    let (_, dead) = app.get("/api/v1/portals/5/unassignments?state=dead").await;
    assert!(dead["items"][0]["last_error"]
        .as_str()
        .unwrap()
        .contains("okta-user-not-managed"));

    let run = reconcile_and_wait(&app, 5).await;
    assert_eq!(run["report"]["counts"]["extra_members"], 1, "{run}");
    assert_eq!(run["report"]["repaired"]["removed"], 0);
    assert_eq!(okta.group_members(&group), vec![stranger.clone()]);
    assert_eq!(
        okta.request_count("DELETE", "/api/v1/groups/{groupId}/users/{userId}"),
        1,
        "only the user Okta does not have"
    );
}

/// A user efs-iam creates is its own from the start, and a create whose answer was
/// lost (Okta made the user, efs-iam timed out) is recognised as efs-iam's on the next
/// sync instead of being refused.
#[tokio::test]
async fn users_efs_iam_creates_are_its_own_also_when_the_answer_was_lost() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let app = spawn(&db, Some(&okta), |s| s.okta.max_retries = 0).await;
    let (status, made) = app
        .post("/api/v1/sync/users/61", profile("new@example.com"))
        .await;
    assert_eq!(
        (status.as_u16(), made["outcome"].as_str()),
        (200, Some("created"))
    );
    let id = made["okta_user_id"].as_str().unwrap();
    let (_, managed) = app
        .get(&format!("/api/v1/okta-users/{id}/management"))
        .await;
    assert_eq!(
        (managed["origin"].as_str(), managed["managed_by"].as_str()),
        (Some("created"), Some("efs-iam"))
    );

    okta.inject(Fault::new("POST", "/api/v1/users", FaultKind::AnswerLost).times(1));
    let got = app
        .post("/api/v1/sync/users/62", profile("lost@example.com"))
        .await;
    assert_problem(&got, 503, "okta-unavailable");
    let made = users_with_login(&okta, "lost@example.com");
    assert_eq!(made.len(), 1, "Okta created it after all");
    let (status, linked) = app
        .post("/api/v1/sync/users/62", profile("lost@example.com"))
        .await;
    assert_eq!(status, 200, "{linked}");
    assert_eq!(linked["okta_user_id"], made[0].as_str());
    let (_, managed) = app
        .get(&format!("/api/v1/okta-users/{}/management", made[0]))
        .await;
    assert_eq!(managed["origin"], "created");
}

/// Waits for an adoption run to succeed (`within` at most), nudging its worker; the run.
async fn adoption_finished(app: &SyncApp, run_id: &str, query: &str, within: Duration) -> Value {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        let (status, run) = app.get(&format!("/api/v1/adoptions/{run_id}{query}")).await;
        assert_eq!(status, 200, "{run}");
        if run["state"] == "succeeded" {
            return run;
        }
        app.sync.trigger(AdoptionWorker::NAME).unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("adoption run {run_id} did not finish");
}

/// An existing installation's references: a dry run lists who would be adopted and who
/// refused, and why, adopting nobody; the real run adopts, and the users then sync.
#[tokio::test]
async fn a_bulk_adoption_lists_first_then_adopts() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let group = okta.create_group("Portal 6");
    let app = spawn(&db, Some(&okta), |_| {}).await;
    app.link_portal(6, &group).await;
    let panelist = seed_user(&okta, "panelist@example.com", UserStatus::Active);
    let staff = seed_user(&okta, "staff@example.com", UserStatus::Staged);
    let queued = seed_user(&okta, "queued@example.com", UserStatus::Active);
    let left = seed_user(&okta, "left@example.com", UserStatus::Deprovisioned);
    let boss = seed_user(&okta, "boss@example.com", UserStatus::Active);
    okta.grant_admin_role(&boss, "ORG_ADMIN");
    let ours = seed_efs_user(&db, &okta, "ours@example.com", UserStatus::Active).await;
    let portal = PortalId::new(6).unwrap();
    for (user, id) in [(1, &panelist), (2, &left), (3, &ours)] {
        db.store
            .put_portal_user_reference(
                portal,
                EfsUserId::new(user).unwrap(),
                &efs_iam::storage::PortalUserReferenceUpsert {
                    okta_user_id: OktaUserId::parse(id).unwrap(),
                    status: efs_iam::domain::PortalUserStatus::Synced,
                    has_data_changes: false,
                },
            )
            .await
            .unwrap();
    }
    legacy_admin_reference(&db, 10, &staff).await;
    legacy_admin_reference(&db, 11, &boss).await;
    legacy_admin_reference(&db, 12, "00uDELETEDLONGAGO000").await;
    db.store
        .enqueue_unassignments(
            portal,
            &[efs_iam::storage::NewUnassignment {
                user_id: EfsUserId::new(4).unwrap(),
                okta_user_id: OktaUserId::parse(&queued).unwrap(),
                email: None,
            }],
        )
        .await
        .unwrap();

    let (location, accepted) = post_accepted(&app, "/api/v1/adoptions", &json!({})).await;
    assert_eq!(
        accepted["dry_run"], true,
        "a dry run unless asked otherwise"
    );
    let run_id = accepted["run_id"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/api/v1/adoptions/{run_id}"));
    let dry = adoption_finished(&app, &run_id, "?state=refused", Duration::from_secs(10)).await;
    assert_eq!(
        dry["counts"],
        json!({"pending": 0, "would_adopt": 3, "refused": 3, "already_managed": 1, "adopted": 0, "failed": 0}),
        "{dry}"
    );
    let reasons: Vec<(String, String)> = dry["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["okta_user_id"].as_str().unwrap().to_owned(),
                i["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let reason = |id: &str| &reasons.iter().find(|(i, _)| i == id).unwrap().1;
    assert!(reason(&left).contains("deprovisioned"), "{reasons:?}");
    assert!(reason(&boss).contains("ORG_ADMIN"), "{reasons:?}");
    assert!(
        reason("00uDELETEDLONGAGO000").contains("no user"),
        "{reasons:?}"
    );
    assert_eq!(
        app.get(&format!("/api/v1/okta-users/{panelist}/management"))
            .await
            .0,
        404,
        "a dry run adopts nobody"
    );

    let (_, accepted) = post_accepted(&app, "/api/v1/adoptions", &json!({"dry_run": false})).await;
    let run_id = accepted["run_id"].as_str().unwrap().to_owned();
    let done = adoption_finished(&app, &run_id, "?state=adopted", Duration::from_secs(10)).await;
    assert_eq!(done["counts"]["adopted"], 3, "{done}");
    assert_eq!(done["counts"]["refused"], 3);
    let mut adopted: Vec<&str> = done["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["okta_user_id"].as_str().unwrap())
        .collect();
    adopted.sort();
    let mut expected = vec![panelist.as_str(), staff.as_str(), queued.as_str()];
    expected.sort();
    assert_eq!(adopted, expected);
    let (_, managed) = app
        .get(&format!("/api/v1/okta-users/{panelist}/management"))
        .await;
    assert_eq!(
        (managed["origin"].as_str(), managed["managed_by"].as_str()),
        (Some("adopted"), Some("anonymous"))
    );
    // The adopted panelist now syncs with its portal.
    let (status, synced) = app
        .post(
            "/api/v1/sync/portals/6/users/1",
            profile("panelist@example.com"),
        )
        .await;
    assert_eq!(status, 200, "{synced}");
    assert_eq!(okta.group_members(&group), vec![panelist]);
}

/// A bulk adoption goes through the governor: with a small Okta budget, no 429.
#[tokio::test]
async fn a_bulk_adoption_stays_within_okta_s_budget() {
    let db = TestDb::sqlite().await;
    let okta = FakeOkta::start(FakeOktaConfig {
        bucket_limits: [
            (RateLimitBucket::UserGet, 10),
            (RateLimitBucket::OtherApi, 10),
        ]
        .into_iter()
        .collect(),
        window: Duration::from_secs(1),
        ..FakeOktaConfig::default()
    })
    .await;
    let app = spawn(&db, Some(&okta), |s| s.okta.rate_share = 1.0).await;
    for n in 1..=30 {
        let id = seed_user(&okta, &format!("p{n}@example.com"), UserStatus::Active);
        legacy_admin_reference(&db, n, &id).await;
    }
    let (_, accepted) = post_accepted(&app, "/api/v1/adoptions", &json!({"dry_run": false})).await;
    let run_id = accepted["run_id"].as_str().unwrap().to_owned();
    let done = adoption_finished(&app, &run_id, "", Duration::from_secs(40)).await;
    assert_eq!(done["counts"]["adopted"], 30, "{done}");
    let limited = okta
        .requests()
        .iter()
        .filter(|r| r.status == Some(429))
        .count();
    assert_eq!(limited, 0, "no 429: the governor paced the run");
    assert!(okta.request_count("GET", "/api/v1/users/{id}/roles") >= 30);
}
