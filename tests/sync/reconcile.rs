//! Reconciliation: a dry run reports, a repair run fixes, a failed read changes nothing.

use std::time::Duration;

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
                .put(&format!("/api/v1/portals/12/user-references/{user}"), body)
                .await;
            assert!(s.is_success(), "{b}");
        }
    };
    // in step
    let fine = seed_efs_user(&db, &okta, "fine@example.com", UserStatus::Active).await;
    okta.add_group_member(&group, &fine);
    reference(1, &fine, "synced").await;
    // referenced, not a member
    let missing = seed_efs_user(&db, &okta, "missing@example.com", UserStatus::Active).await;
    reference(2, &missing, "synced").await;
    // a member nobody references
    let extra = seed_efs_user(&db, &okta, "extra@example.com", UserStatus::Active).await;
    okta.add_group_member(&group, &extra);
    // a member whose reference is deprovisioned
    let leaver = seed_efs_user(&db, &okta, "leaver@example.com", UserStatus::Active).await;
    okta.add_group_member(&group, &leaver);
    reference(3, &leaver, "deprovisioned").await;
    // referenced Okta user gone (efs-iam managed it before it was deleted)
    adopted(&db, "00uGONEGONEGONEGONE0").await;
    reference(4, "00uGONEGONEGONEGONE0", "synced").await;
    // referenced Okta user deprovisioned, still a member
    let deact = seed_efs_user(&db, &okta, "deact@example.com", UserStatus::Deprovisioned).await;
    okta.add_group_member(&group, &deact);
    reference(5, &deact, "synced").await;
    // never linked
    app.post(
        "/api/v1/sync/portals/12/users/6",
        json!({"login": "bad", "email": "bad@x", "first_name": "B", "last_name": "C"}),
    )
    .await;

    let (status, report) = app
        .post(
            "/api/v1/sync/portals/12/reconcile?dry_run=true",
            Value::Null,
        )
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
    let (_, r5) = app.get("/api/v1/portals/12/user-references/5").await;
    assert_eq!(r5["status"], "synced");
    let (_, default) = app
        .post("/api/v1/sync/portals/12/reconcile", Value::Null)
        .await;
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
    let (_, r4) = app.get("/api/v1/portals/12/user-references/4").await;
    assert_eq!(r4["status"], "deprovisioned");

    let (_, again) = app
        .post(
            "/api/v1/sync/portals/12/reconcile?dry_run=true",
            Value::Null,
        )
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
    let extra = seed_efs_user(&db, &okta, "keep@example.com", UserStatus::Active).await;
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
    let elsewhere = seed_efs_user(&db, &okta, "elsewhere@example.com", UserStatus::Active).await;
    app.put(
        "/api/v1/portals/13/user-references/2",
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
    let (_, r) = app.get("/api/v1/portals/13/user-references/2").await;
    assert_eq!(r["status"], "synced");

    let got = app
        .post(
            "/api/v1/sync/portals/13/reconcile?dry_run=maybe",
            Value::Null,
        )
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

    let (status, list) = app.get("/api/v1/sync/reconcile-runs?portal_id=15").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["run_id"], run["run_id"]);
    assert_eq!(
        list["items"][0].get("report"),
        None,
        "reports only in the single run"
    );
    let (_, other) = app.get("/api/v1/sync/reconcile-runs?portal_id=16").await;
    assert_eq!(other["items"], json!([]));

    let got = app.get("/api/v1/sync/reconcile-runs/not-a-run").await;
    assert_problem(&got, 400, "invalid-parameter");
    let got = app
        .get("/api/v1/sync/reconcile-runs/00000000-0000-4000-8000-000000000000")
        .await;
    assert_problem(&got, 404, "not-found");
    let got = app.get("/api/v1/sync/reconcile-runs?limit=0").await;
    assert_problem(&got, 400, "invalid-parameter");
    let got = app
        .post(
            "/api/v1/sync/portals/16/reconcile?dry_run=false",
            Value::Null,
        )
        .await;
    assert_problem(&got, 409, "portal-not-linked");
}

/// Sets a portal setting (the test service runs without caller auth).
async fn set(app: &SyncApp, portal: i32, key: &str, value: &str) {
    let (status, body) = app
        .put(
            &format!("/api/v1/portals/{portal}/settings/{key}"),
            json!({"value": value}),
        )
        .await;
    assert!(status.is_success(), "{body}");
}

/// Waits until the portal has a scheduled run that ended; that run.
async fn scheduled_run(app: &SyncApp, portal: i32, after: Option<&str>) -> Value {
    for _ in 0..200 {
        let (_, list) = app
            .get(&format!("/api/v1/sync/reconcile-runs?portal_id={portal}"))
            .await;
        let ended = list["items"].as_array().unwrap().iter().find(|r| {
            r["kind"] == "scheduled"
                && (r["state"] == "succeeded" || r["state"] == "failed")
                && after.is_none_or(|a| r["run_id"] != a)
        });
        if let Some(run) = ended {
            let id = run["run_id"].as_str().unwrap();
            return app
                .get(&format!("/api/v1/sync/reconcile-runs/{id}"))
                .await
                .1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no scheduled run of portal {portal} ended");
}

crate::backend_matrix!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)] sqlite, mysql;
    the_schedule_reports_drift_and_repairs_where_asked,
);

/// Every linked portal is reconciled on the schedule: drift is reported (status, error
/// log) unless the portal's `reconcile_mode` is `repair`, which repairs it.
async fn the_schedule_reports_drift_and_repairs_where_asked(db: TestDb) {
    let okta = fake_okta().await;
    let (g1, g2) = (okta.create_group("Reported"), okta.create_group("Repaired"));
    let stray1 = seed_efs_user(&db, &okta, "stray1@example.com", UserStatus::Active).await;
    let stray2 = seed_efs_user(&db, &okta, "stray2@example.com", UserStatus::Active).await;
    okta.add_group_member(&g1, &stray1);
    okta.add_group_member(&g2, &stray2);
    let app = spawn(&db, Some(&okta), |s| {
        s.sync.worker = true;
        s.sync.reconcile_interval = Duration::from_secs(1);
    })
    .await;
    // The mode before the group: the schedule may look at portal 32 the moment it is
    // linked.
    set(&app, 32, "reconcile_mode", "repair").await;
    app.link_portal(31, &g1).await;
    app.link_portal(32, &g2).await;
    let got = app
        .put(
            "/api/v1/portals/32/settings/reconcile_mode",
            json!({"value": "sometimes"}),
        )
        .await;
    assert_problem(&got, 422, "validation-failed");

    let reported = scheduled_run(&app, 31, None).await;
    assert_eq!(reported["state"], "succeeded", "{reported}");
    assert_eq!(reported["dry_run"], true);
    assert_eq!(reported["report"]["counts"]["extra_members"], 1);
    assert_eq!(
        okta.group_members(&g1),
        vec![stray1.clone()],
        "only reported"
    );
    let repaired = scheduled_run(&app, 32, None).await;
    assert_eq!(repaired["dry_run"], false, "{repaired}");
    assert_eq!(repaired["report"]["repaired"]["removed"], 1);
    assert!(okta.group_members(&g2).is_empty());

    let (_, log) = app
        .get("/api/v1/errors?error_code=efs-iam:reconcile-drift")
        .await;
    let messages: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("portal 31") && m.contains("1 extra member")),
        "{messages:?}"
    );
    // The repaired portal's next run finds nothing; the reported one still drifts.
    let next = scheduled_run(&app, 32, repaired["run_id"].as_str()).await;
    assert_eq!(next["report"]["counts"]["extra_members"], 0, "{next}");
    let (_, status) = app.get("/api/v1/sync/status").await;
    let r = &status["reconciliation"];
    assert_eq!(r["interval_seconds"], 1);
    assert_eq!(r["linked_portals"], 2);
    let drifting: Vec<i64> = r["drift"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["portal_id"].as_i64().unwrap())
        .collect();
    assert_eq!(drifting, vec![31], "{status}");
}

/// Two instances given a run each for the same portal at the same moment do not
/// reconcile it at once: the second waits for the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_never_reconcile_one_portal_at_once() {
    let Some(db) = TestDb::mysql().await else {
        return;
    };
    let okta = fake_okta().await;
    let group = okta.create_group("Contended");
    let workers = |s: &mut efs_iam::config::Settings| {
        s.sync.worker = true;
        s.sync.reconcile_interval = Duration::ZERO;
        // The waiting run is held back for one lease.
        s.sync.lease = Duration::from_secs(2);
    };
    let a = spawn(&db, Some(&okta), workers).await;
    let b = spawn(&db, Some(&okta), workers).await;
    a.link_portal(33, &group).await;
    // Each listing of the group takes 1.5 s.
    okta.inject(
        Fault::new(
            "GET",
            &format!("/api/v1/groups/{group}/users"),
            FaultKind::Hang(Duration::from_millis(1500)),
        )
        .times(2),
    );
    let started = std::time::Instant::now();
    let (ra, rb) = tokio::join!(
        a.post(
            "/api/v1/sync/portals/33/reconcile?dry_run=false",
            Value::Null
        ),
        b.post(
            "/api/v1/sync/portals/33/reconcile?dry_run=false",
            Value::Null
        )
    );
    assert_eq!((ra.0.as_u16(), rb.0.as_u16()), (202, 202));
    let first = wait_for_run(&a, ra.1["status_url"].as_str().unwrap()).await;
    let second = wait_for_run(&b, rb.1["status_url"].as_str().unwrap()).await;
    let took = started.elapsed();
    assert_eq!(
        (first["state"].as_str(), second["state"].as_str()),
        (Some("succeeded"), Some("succeeded"))
    );
    assert!(
        took >= Duration::from_millis(2900),
        "one after the other, not together: {took:?}"
    );
    let waited: Vec<&Value> = [&first, &second]
        .into_iter()
        .filter(|r| r["attempts"].as_i64() > Some(1))
        .collect();
    assert_eq!(
        waited.len(),
        1,
        "one run was handed back while the other held the portal: {first} {second}"
    );
}

/// A repair Okta keeps refusing (5xx) is reported with its user and left undone; the
/// other repairs of the run still happen.
#[tokio::test]
async fn a_repair_okta_refuses_is_reported_and_the_rest_goes_on() {
    let db = TestDb::sqlite().await;
    let okta = fake_okta().await;
    let group = okta.create_group("Refusing portal");
    let app = spawn(&db, Some(&okta), |s| {
        s.okta.max_retries = 1;
    })
    .await;
    app.link_portal(14, &group).await;
    let refused_add =
        seed_efs_user(&db, &okta, "add-refused@example.com", UserStatus::Active).await;
    link_reference(&app, 14, 1, &refused_add).await;
    let added = seed_efs_user(&db, &okta, "add-ok@example.com", UserStatus::Active).await;
    link_reference(&app, 14, 2, &added).await;
    let refused_remove =
        seed_efs_user(&db, &okta, "remove-refused@example.com", UserStatus::Active).await;
    okta.add_group_member(&group, &refused_remove);
    for (method, user) in [("PUT", &refused_add), ("DELETE", &refused_remove)] {
        okta.inject(
            Fault::new(
                method,
                &format!("/api/v1/groups/{group}/users/{user}"),
                FaultKind::InternalServerError,
            )
            .times(10),
        );
    }

    let run = reconcile_and_wait(&app, 14).await;
    assert_eq!(run["state"], "succeeded", "{run}");
    let report = &run["report"];
    assert_eq!(
        report["repaired"],
        json!({"added": 1, "removed": 0, "marked_deprovisioned": 0})
    );
    assert_eq!(report["counts"]["errors"], 2);
    let mut errors: Vec<(Value, String)> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["user_id"].clone(),
                e["okta_user_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    errors.sort_by_key(|(_, id)| id.clone());
    let mut expected = vec![
        (json!(1), refused_add.clone()),
        (Value::Null, refused_remove.clone()),
    ];
    expected.sort_by_key(|(_, id)| id.clone());
    assert_eq!(errors, expected);
    let mut members = okta.group_members(&group);
    members.sort();
    let mut want = vec![added, refused_remove];
    want.sort();
    assert_eq!(members, want);
}
