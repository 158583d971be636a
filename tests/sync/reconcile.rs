//! Reconciliation: a dry run reports, a repair run fixes, a failed read changes nothing.

use fake_okta::{Fault, FaultKind, UserStatus};
use serde_json::{json, Value};

use crate::common::TestDb;
use crate::helpers::*;

#[tokio::test]
async fn dry_run_reports_and_repair_fixes_every_kind_of_drift() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let group = okta.create_group("Drifting portal");
    let app = spawn(&db, Some(&okta), |_| {}).await;
    app.link_portal(12, &group).await;
    let reference = |user: i32, id: &str, status: &str| {
        let app = &app;
        let body = json!({"okta_user_id": id, "status": status});
        async move {
            let (s, b) = app
                .put(&format!("/portals/12/user-references/{user}"), body)
                .await;
            assert!(s.is_success(), "{b}");
        }
    };
    // in step
    let fine = seed_user(&okta, "fine@example.com", UserStatus::Active);
    okta.add_group_member(&group, &fine);
    reference(1, &fine, "synced").await;
    // referenced, not a member
    let missing = seed_user(&okta, "missing@example.com", UserStatus::Active);
    reference(2, &missing, "synced").await;
    // a member nobody references
    let extra = seed_user(&okta, "extra@example.com", UserStatus::Active);
    okta.add_group_member(&group, &extra);
    // a member whose reference is deprovisioned
    let leaver = seed_user(&okta, "leaver@example.com", UserStatus::Active);
    okta.add_group_member(&group, &leaver);
    reference(3, &leaver, "deprovisioned").await;
    // referenced Okta user gone
    reference(4, "00uGONEGONEGONEGONE0", "synced").await;
    // referenced Okta user deprovisioned, still a member
    let deact = seed_user(&okta, "deact@example.com", UserStatus::Deprovisioned);
    okta.add_group_member(&group, &deact);
    reference(5, &deact, "synced").await;
    // never linked
    app.post(
        "/sync/portals/12/users/6",
        json!({"login": "bad", "email": "bad@x", "first_name": "B", "last_name": "C"}),
    )
    .await;

    let (status, report) = app
        .post("/sync/portals/12/reconcile?dry_run=true", Value::Null)
        .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["okta_members"], 4);
    assert_eq!(report["references"], 6);
    assert_eq!(report["unlinked_references"], 1);
    assert_eq!(
        report["counts"],
        json!({"missing_members": 1, "extra_members": 3, "stale_references": 2, "errors": 0})
    );
    assert_eq!(
        report["missing_members"],
        json!([{"user_id": 2, "okta_user_id": missing}])
    );
    let stale: Vec<(i64, String)> = report["stale_references"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["user_id"].as_i64().unwrap(),
                s["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        stale,
        vec![
            (4, "okta_user_gone".into()),
            (5, "okta_user_deprovisioned".into())
        ]
    );
    let mut extras: Vec<(String, String)> = report["extra_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["login"].as_str().unwrap().to_owned(),
                e["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    extras.sort();
    assert_eq!(
        extras,
        vec![
            ("deact@example.com".into(), "okta_user_deprovisioned".into()),
            ("extra@example.com".into(), "no_reference".into()),
            (
                "leaver@example.com".into(),
                "reference_deprovisioned".into()
            ),
        ]
    );
    assert_eq!(
        report["repaired"],
        json!({"added": 0, "removed": 0, "marked_deprovisioned": 0})
    );
    assert_eq!(
        okta.group_members(&group).len(),
        4,
        "a dry run changes nothing"
    );
    let (_, r5) = app.get("/portals/12/user-references/5").await;
    assert_eq!(r5["status"], "synced");
    let (_, default) = app.post("/sync/portals/12/reconcile", Value::Null).await;
    assert_eq!(default["dry_run"], true, "dry run unless asked otherwise");

    let run = reconcile_and_wait(&app, 12).await;
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(
        (run["kind"].as_str(), run["attempts"].as_i64()),
        (Some("manual"), Some(1))
    );
    let repair = &run["report"];
    assert_eq!(repair["dry_run"], false);
    assert_eq!(
        repair["repaired"],
        json!({"added": 1, "removed": 3, "marked_deprovisioned": 2})
    );
    let mut members = okta.group_members(&group);
    members.sort();
    let mut expected = vec![fine.clone(), missing.clone()];
    expected.sort();
    assert_eq!(members, expected);
    let (_, r4) = app.get("/portals/12/user-references/4").await;
    assert_eq!(r4["status"], "deprovisioned");

    let (_, again) = app
        .post("/sync/portals/12/reconcile?dry_run=true", Value::Null)
        .await;
    assert_eq!(
        again["counts"],
        json!({"missing_members": 0, "extra_members": 0, "stale_references": 0, "errors": 0}),
        "{again}"
    );
}

#[tokio::test]
async fn nothing_is_removed_on_a_failed_read() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let group = okta.create_group("Unreadable portal");
    let app = spawn(&db, Some(&okta), |s| {
        s.okta.max_retries = 1;
        s.sync.max_attempts = 1;
    })
    .await;
    app.link_portal(13, &group).await;
    let extra = seed_user(&okta, "keep@example.com", UserStatus::Active);
    okta.add_group_member(&group, &extra);
    okta.inject(
        Fault::new(
            "GET",
            &format!("/api/v1/groups/{group}/users"),
            FaultKind::InternalServerError,
        )
        .times(5),
    );
    let run = reconcile_and_wait(&app, 13).await;
    assert_eq!(
        (run["state"].as_str(), run["error_type"].as_str()),
        (Some("failed"), Some("okta-unavailable")),
        "{run}"
    );
    assert_eq!(run["report"], Value::Null);
    assert_eq!(okta.group_members(&group), vec![extra]);
    assert_eq!(
        okta.request_count("DELETE", "/api/v1/groups/{groupId}/users/{userId}"),
        0
    );
    okta.clear_faults();

    // A user whose own lookup fails is reported and left alone.
    let elsewhere = seed_user(&okta, "elsewhere@example.com", UserStatus::Active);
    app.put(
        "/portals/13/user-references/2",
        json!({"okta_user_id": elsewhere, "status": "synced"}),
    )
    .await;
    okta.inject(
        Fault::new(
            "GET",
            &format!("/api/v1/users/{elsewhere}"),
            FaultKind::InternalServerError,
        )
        .times(5),
    );
    let run = reconcile_and_wait(&app, 13).await;
    let report = &run["report"];
    assert_eq!(run["state"], "succeeded", "{run}");
    assert_eq!(report["counts"]["errors"], 1);
    assert_eq!(report["errors"][0]["user_id"], 2);
    assert_eq!(report["repaired"]["added"], 0);
    let (_, r) = app.get("/portals/13/user-references/2").await;
    assert_eq!(r["status"], "synced");

    let got = app
        .post("/sync/portals/13/reconcile?dry_run=maybe", Value::Null)
        .await;
    assert_problem(&got, 400, "invalid-parameter");
}

/// A repair of a portal whose group Okta does not have fails as such, changes nothing,
/// and stays listed with the reason.
#[tokio::test]
async fn a_repair_run_of_a_missing_group_fails_and_is_listed() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let app = spawn(&db, Some(&okta), |_| {}).await;
    link_portal_unchecked(&db, 15, "00gGONE0000000000000").await;
    let run = reconcile_and_wait(&app, 15).await;
    assert_eq!(
        (run["state"].as_str(), run["error_type"].as_str()),
        (Some("failed"), Some("okta-group-not-found")),
        "{run}"
    );
    assert!(run["error"]
        .as_str()
        .unwrap()
        .contains("00gGONE0000000000000"));

    let (status, list) = app.get("/sync/reconcile-runs?portal_id=15").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["run_id"], run["run_id"]);
    assert_eq!(
        list["items"][0].get("report"),
        None,
        "reports only in the single run"
    );
    let (_, other) = app.get("/sync/reconcile-runs?portal_id=16").await;
    assert_eq!(other["items"], json!([]));

    let got = app.get("/sync/reconcile-runs/not-a-run").await;
    assert_problem(&got, 400, "invalid-parameter");
    let got = app
        .get("/sync/reconcile-runs/00000000-0000-4000-8000-000000000000")
        .await;
    assert_problem(&got, 404, "not-found");
    let got = app.get("/sync/reconcile-runs?limit=0").await;
    assert_problem(&got, 400, "invalid-parameter");
    let got = app
        .post("/sync/portals/16/reconcile?dry_run=false", Value::Null)
        .await;
    assert_problem(&got, 409, "portal-not-linked");
}
