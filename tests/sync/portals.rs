//! Syncing portal users: membership of the portal's Okta group, the reference's status
//! and `has_data_changes`, one person in several portals, failures recorded.

use efs_iam::storage::prelude::*;
use efs_iam::storage::ErrorLogQuery;
use fake_okta::{Fault, FaultKind, UserStatus};
use serde_json::json;

use crate::common::TestDb;
use crate::helpers::*;

crate::backend_matrix!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)] sqlite, mysql;portal_user_joins_the_group_and_the_reference_is_synced);

async fn portal_user_joins_the_group_and_the_reference_is_synced(db: TestDb) {
    db.seed_efs_users(&[], &[4711]).await;
    let okta = fake_okta().await;
    let group = okta.create_group("EFS portal 12");
    let app = spawn(&db, Some(&okta), |_| {}).await;
    app.link_portal(12, &group).await;
    app.put(
        "/api/v1/portals/12/user-references/4711",
        json!({"okta_user_id": "00uOLDOLDOLDOLDOLDOL", "status": "pending", "has_data_changes": true}),
    )
    .await;

    let (status, body) = app
        .post(
            "/api/v1/sync/portals/12/users/4711",
            profile("pan@example.com"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["outcome"], "created", "the old reference was stale");
    assert_eq!(body["group_id"], group.as_str());
    assert_eq!(body["status"], "synced");
    let id = body["okta_user_id"].as_str().unwrap().to_owned();
    assert_eq!(okta.group_members(&group), vec![id.clone()]);
    let (_, reference) = app.get("/api/v1/portals/12/user-references/4711").await;
    assert_eq!(reference["okta_user_id"], id.as_str());
    assert_eq!(reference["status"], "synced");
    assert_eq!(reference["has_data_changes"], false);

    // Again: nothing changes, membership stays one.
    let (_, body) = app
        .post(
            "/api/v1/sync/portals/12/users/4711",
            profile("pan@example.com"),
        )
        .await;
    assert_eq!(body["outcome"], "unchanged");
    assert_eq!(okta.group_members(&group).len(), 1);

    // A panelist EFS does not have (MariaDB's foreign key): refused before Okta.
    if db.is_mysql() {
        let before = okta.requests().len();
        let got = app
            .post(
                "/api/v1/sync/portals/12/users/999",
                profile("ghost@example.com"),
            )
            .await;
        assert_problem(&got, 422, "unknown-efs-user");
        assert_eq!(okta.requests().len(), before);
    }
}

#[tokio::test]
async fn one_person_in_two_portals_is_one_okta_user_in_two_groups() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let g1 = okta.create_group("Portal 1");
    let g2 = okta.create_group("Portal 2");
    let app = spawn(&db, Some(&okta), |_| {}).await;
    app.link_portal(1, &g1).await;
    app.link_portal(2, &g2).await;
    let (_, a) = app
        .post(
            "/api/v1/sync/portals/1/users/77",
            profile("multi@example.com"),
        )
        .await;
    // The second portal knows the person under a new login: the other portal's
    // reference still finds the same Okta user.
    let (_, b) = app
        .post(
            "/api/v1/sync/portals/2/users/77",
            profile("multi.new@example.com"),
        )
        .await;
    assert_eq!(a["outcome"], "created");
    assert_eq!(b["outcome"], "updated", "{b}");
    assert_eq!(a["okta_user_id"], b["okta_user_id"]);
    let id = a["okta_user_id"].as_str().unwrap();
    assert_eq!(okta.group_members(&g1), vec![id.to_owned()]);
    assert_eq!(okta.group_members(&g2), vec![id.to_owned()]);
    assert_eq!(okta.user_ids().len(), 1);
}

#[tokio::test]
async fn a_portal_without_group_is_a_clear_409() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let app = spawn(&db, Some(&okta), |_| {}).await;
    let got = app
        .post("/api/v1/sync/portals/5/users/1", profile("x@example.com"))
        .await;
    assert_problem(&got, 409, "portal-not-linked");
    assert!(got.1["detail"].as_str().unwrap().contains("okta_group_id"));
    assert!(okta.requests().is_empty());
    let got = app
        .post(
            "/api/v1/sync/portals/5/users",
            json!({"users": [{"user_id": 1, "login": "x@example.com", "email": "x@example.com", "first_name": "X", "last_name": "Y"}]}),
        )
        .await;
    assert_problem(&got, 409, "portal-not-linked");
    let got = app
        .post("/api/v1/sync/portals/5/reconcile", json!(null))
        .await;
    assert_problem(&got, 409, "portal-not-linked");
}

#[tokio::test]
async fn failures_are_recorded_on_the_reference_and_in_the_error_log() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let app = spawn(&db, Some(&okta), |_| {}).await;
    link_portal_unchecked(&db, 6, "00gNOSUCHGROUP000000").await;
    let got = app
        .post(
            "/api/v1/sync/portals/6/users/61",
            profile("lost@example.com"),
        )
        .await;
    assert_problem(&got, 409, "okta-group-not-found");
    let (_, reference) = app.get("/api/v1/portals/6/user-references/61").await;
    assert_eq!(reference["status"], "failed");
    assert_eq!(reference["has_data_changes"], true);
    let id = users_with_login(&okta, "lost@example.com");
    assert_eq!(
        reference["okta_user_id"],
        id[0].as_str(),
        "the Okta user created before the failure is remembered"
    );
    let log = db
        .store
        .query_error_log(&ErrorLogQuery {
            text: Some("portal user 61".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(log[0].message.as_deref().unwrap().contains("portal 6"));

    // The group exists now: the retry links the user created the first time.
    let group = okta.create_group("Portal 6");
    app.link_portal(6, &group).await;
    let (status, body) = app
        .post(
            "/api/v1/sync/portals/6/users/61",
            profile("lost@example.com"),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["okta_user_id"], id[0].as_str());
    assert_eq!(users_with_login(&okta, "lost@example.com").len(), 1);

    // A deprovisioned Okta user: the reference says so.
    let gone = seed_efs_user(&db, &okta, "gone@example.com", UserStatus::Deprovisioned).await;
    let got = app
        .post(
            "/api/v1/sync/portals/6/users/62",
            profile("gone@example.com"),
        )
        .await;
    assert_problem(&got, 409, "okta-user-deprovisioned");
    let (_, reference) = app.get("/api/v1/portals/6/user-references/62").await;
    assert_eq!(reference["status"], "deprovisioned");
    assert_eq!(reference["okta_user_id"], gone.as_str());

    // Okta refusing the profile: failed, the field named.
    let mut bad = profile("bad@example.com");
    bad["email"] = json!("bad@nodot");
    let got = app.post("/api/v1/sync/portals/6/users/63", bad).await;
    assert_eq!(
        assert_problem(&got, 422, "okta-validation-failed"),
        ["email"]
    );
    let (_, reference) = app.get("/api/v1/portals/6/user-references/63").await;
    assert_eq!(reference["status"], "failed");
    assert_eq!(reference["okta_user_id"], serde_json::Value::Null);
}

/// Okta's 404 to "add this user to the group" is a missing group only if the group is
/// really missing: a user deleted in Okta a moment ago is another failure.
#[tokio::test]
async fn a_404_from_an_existing_group_is_not_a_missing_group() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let group = okta.create_group("Existing");
    let app = spawn(&db, Some(&okta), |s| s.okta.max_retries = 0).await;
    app.link_portal(14, &group).await;
    okta.clear_requests();
    okta.inject(
        Fault::new(
            "PUT",
            &format!("/api/v1/groups/{group}/users/"),
            FaultKind::Response {
                status: 404,
                body: user_not_found_body("00uVANISHED"),
            },
        )
        .times(1),
    );
    let got = app
        .post(
            "/api/v1/sync/portals/14/users/1",
            profile("vanishing@example.com"),
        )
        .await;
    assert_ne!(
        got.1["type"], "urn:efs-iam:problem:okta-group-not-found",
        "{}",
        got.1
    );
    assert_problem(&got, 502, "okta-refused");
    assert_eq!(okta.request_count("GET", "/api/v1/groups/{groupId}"), 1);
}
