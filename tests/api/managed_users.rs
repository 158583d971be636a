//! The managed-user boundary as an attacker with EFS-Admin's everyday scopes meets it
//! (issue #20's reproductions), and adoption as an audited `iam:admin` act, over real
//! HTTP against the fake Okta with caller authentication on.

use axum::http::Method;
use efs_iam::domain::{EfsUserId, OktaUserId, PortalId};
use efs_iam::storage::prelude::*;
use fake_okta::{FakeOkta, FakeOktaConfig, UserStatus};
use reqwest::{StatusCode, Url};
use serde_json::{json, Value};

use crate::auth::{call_with, claims, hs256, spawn_secured_with};
use crate::common::{assert_problem, LogCapture, TestApp};

fn bearer(scope: &str) -> String {
    format!("Bearer {}", hs256(&claims(scope)))
}

async fn as_caller(
    app: &TestApp,
    scope: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = app
        .client
        .request(method, app.url(path))
        .header("authorization", bearer(scope));
    if let Some(body) = body {
        req = req.json(&body);
    }
    crate::common::read(req.send().await.unwrap()).await
}

/// A secured efs-iam against a fake Okta (API token), on SQLite.
async fn secured_with_okta(okta: &FakeOkta) -> TestApp {
    let org = okta.base_url();
    spawn_secured_with(move |s| {
        s.okta.org_url = Some(Url::parse(&org).unwrap());
        s.okta.api_token = Some("test-token".to_owned().into());
        s.sync.worker = false;
    })
    .await
}

fn profile(login: &str) -> Value {
    json!({"login": login, "email": login, "first_name": "Mallory", "last_name": "Attacker"})
}

/// The reproduction of issue #20, step by step: an `iam:write`/`iam:sync` caller points
/// efs-iam at an Okta super admin that EFS never created. Every step is refused and the
/// victim is untouched.
#[tokio::test]
async fn everyday_scopes_take_over_no_okta_user() {
    let okta = FakeOkta::start(FakeOktaConfig::default()).await;
    let victim = okta.create_user(
        "boss@example.com",
        "boss@example.com",
        "Bo",
        "Ss",
        UserStatus::Active,
    );
    okta.grant_admin_role(&victim, "SUPER_ADMIN");
    let bystander = okta.create_user(
        "someone@example.com",
        "someone@example.com",
        "So",
        "Meone",
        UserStatus::Active,
    );
    let group = okta.create_group("Portal 7");
    let app = secured_with_okta(&okta).await;
    let write = "iam:read iam:write iam:sync";
    as_caller(
        &app,
        "iam:write iam:admin",
        Method::PUT,
        "/api/v1/portals/7/settings/okta_group_id",
        Some(json!({ "value": group })),
    )
    .await;
    let before = okta.user(&victim).unwrap();

    // 1. A reference naming someone else's Okta user: refused, nothing stored.
    for (path, body) in [
        (
            "/api/v1/user-references/42",
            json!({ "okta_user_id": victim }),
        ),
        (
            "/api/v1/portals/7/user-references/42",
            json!({ "okta_user_id": bystander, "status": "synced" }),
        ),
    ] {
        let got = as_caller(&app, write, Method::PUT, path, Some(body)).await;
        assert_problem(&got, 409, "okta-user-not-managed");
        assert_eq!(
            as_caller(&app, write, Method::GET, path, None).await.0,
            404,
            "nothing stored at {path}"
        );
    }

    // 2. A sync whose login is someone else's user: refused naming the login; never
    //    linked, renamed or grouped.
    let got = as_caller(
        &app,
        write,
        Method::POST,
        "/api/v1/sync/users/42",
        Some(profile("boss@example.com")),
    )
    .await;
    assert_problem(&got, 409, "okta-user-not-managed");
    assert!(got.1["detail"]
        .as_str()
        .unwrap()
        .contains("boss@example.com"));
    let got = as_caller(
        &app,
        write,
        Method::POST,
        "/api/v1/sync/portals/7/users/43",
        Some(profile("SOMEONE@example.com")),
    )
    .await;
    assert_problem(&got, 409, "okta-user-not-managed");
    assert!(okta.group_members(&group).is_empty());
    assert_eq!(
        as_caller(&app, write, Method::GET, "/api/v1/user-references/42", None)
            .await
            .0,
        404
    );

    // 3. A legacy reference row written straight into the database: sync and
    //    deprovisioning refuse it too.
    app.db
        .store
        .put_admin_user_reference(
            EfsUserId::new(44).unwrap(),
            &OktaUserId::parse(&victim).unwrap(),
        )
        .await
        .unwrap();
    let got = as_caller(
        &app,
        write,
        Method::POST,
        "/api/v1/sync/users/44",
        Some(profile("attacker@evil.example")),
    )
    .await;
    assert_problem(&got, 409, "okta-user-not-managed");
    let got = as_caller(&app, write, Method::DELETE, "/api/v1/sync/users/44", None).await;
    assert_problem(&got, 409, "okta-user-not-managed");

    let after = okta.user(&victim).unwrap();
    assert_eq!(after["profile"], before["profile"], "profile untouched");
    assert_eq!(after["status"], "ACTIVE", "not deactivated");
    assert_eq!(
        okta.request_count("POST", "/api/v1/users/{id}"),
        0,
        "no profile write"
    );
    assert_eq!(
        okta.request_count("POST", "/api/v1/users/{id}/lifecycle/deactivate"),
        0
    );
}

/// Reproduction #2: with `reconcile_mode=report`, an `iam:sync` caller asks for a
/// repair that would empty the group. Refused without `iam:admin`; nobody removed.
#[tokio::test]
async fn iam_sync_alone_removes_no_member() {
    let okta = FakeOkta::start(FakeOktaConfig::default()).await;
    let group = okta.create_group("Reported portal");
    let app = secured_with_okta(&okta).await;
    let mut members = Vec::new();
    for n in 1..=2 {
        let id = okta.create_user(
            &format!("m{n}@example.com"),
            &format!("m{n}@example.com"),
            "M",
            "N",
            UserStatus::Active,
        );
        okta.add_group_member(&group, &id);
        app.db.manage_okta_users(&[&id]).await;
        members.push(id);
    }
    let admin = "iam:write iam:admin";
    as_caller(
        &app,
        admin,
        Method::PUT,
        "/api/v1/portals/9/settings",
        Some(json!({"settings": {"okta_group_id": group, "reconcile_mode": "report"}})),
    )
    .await;
    let repair = "/api/v1/sync/portals/9/reconcile?dry_run=false";
    let got = as_caller(&app, "iam:sync", Method::POST, repair, None).await;
    assert_problem(&got, 403, "forbidden");
    assert!(got.1["detail"].as_str().unwrap().contains("iam:admin"));
    assert_eq!(okta.group_members(&group).len(), 2, "nobody removed");
    // A dry run stays everyday work.
    let (status, report) = as_caller(
        &app,
        "iam:sync",
        Method::POST,
        "/api/v1/sync/portals/9/reconcile?dry_run=true",
        None,
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["counts"]["extra_members"], 2);
    // With iam:admin the repair is queued.
    let (status, _) = as_caller(&app, "iam:sync iam:admin", Method::POST, repair, None).await;
    assert_eq!(status, 202);
}

/// Adopting one Okta user: an `iam:admin` decision, audited; refused (nothing stored)
/// for an unknown, deactivated or administrator user and for a malformed id.
#[tokio::test]
async fn adoption_is_an_audited_admin_act_and_refuses_what_is_not_efs_s() {
    let logs = LogCapture::start();
    let okta = FakeOkta::start(FakeOktaConfig::default()).await;
    let person = okta.create_user(
        "panelist@example.com",
        "panelist@example.com",
        "Pa",
        "Nelist",
        UserStatus::Active,
    );
    let gone = okta.create_user(
        "left@example.com",
        "left@example.com",
        "Le",
        "Ft",
        UserStatus::Deprovisioned,
    );
    let boss = okta.create_user(
        "cio@example.com",
        "cio@example.com",
        "C",
        "Io",
        UserStatus::Active,
    );
    okta.grant_admin_role(&boss, "ORG_ADMIN");
    let app = secured_with_okta(&okta).await;
    let path = |id: &str| format!("/api/v1/okta-users/{id}/management");

    let got = as_caller(
        &app,
        "iam:write iam:sync",
        Method::PUT,
        &path(&person),
        None,
    )
    .await;
    assert_problem(&got, 403, "forbidden");
    assert_eq!(
        as_caller(&app, "iam:read", Method::GET, &path(&person), None)
            .await
            .0,
        404,
        "not managed before"
    );

    let (status, body) = as_caller(&app, "iam:admin", Method::PUT, &path(&person), None).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["origin"], "adopted");
    assert_eq!(body["managed_by"], "efs-admin-php");
    assert_eq!(body["login"], "panelist@example.com");
    let (status, again) = as_caller(&app, "iam:admin", Method::PUT, &path(&person), None).await;
    assert_eq!((status.as_u16(), &again), (200, &body), "idempotent");
    let text = logs.text();
    let audit: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("Okta user adopted"))
        .collect();
    assert_eq!(audit.len(), 1, "{text}");
    assert!(audit[0].contains("sub=efs-admin-php") && audit[0].contains(&person));
    // Now a reference may name it, with the everyday scope.
    let (status, _) = as_caller(
        &app,
        "iam:write",
        Method::PUT,
        "/api/v1/user-references/7",
        Some(json!({ "okta_user_id": person })),
    )
    .await;
    assert_eq!(status, 201);

    for (id, status, problem) in [
        ("00uNOSUCHUSER0000000", 422, "okta-user-not-found"),
        (gone.as_str(), 409, "okta-user-deprovisioned"),
        (boss.as_str(), 409, "okta-user-privileged"),
    ] {
        let got = as_caller(&app, "iam:admin", Method::PUT, &path(id), None).await;
        assert_problem(&got, status, problem);
        assert_eq!(
            as_caller(&app, "iam:read", Method::GET, &path(id), None)
                .await
                .0,
            404,
            "nothing stored for {id}"
        );
    }
    let got = as_caller(&app, "iam:admin", Method::PUT, &path("not-an-id!"), None).await;
    assert_problem(&got, 400, "invalid-parameter");
    let got = call_with(&app, Method::PUT, &path(&person), None).await;
    assert_eq!(got.0, 401);
}

/// A legacy portal reference to someone else's user gets no group membership from a
/// portal sync, and an adopted one syncs as before.
#[tokio::test]
async fn a_legacy_reference_syncs_once_its_user_is_adopted() {
    let okta = FakeOkta::start(FakeOktaConfig::default()).await;
    let group = okta.create_group("Legacy portal");
    let legacy = okta.create_user(
        "old.panelist@example.com",
        "old.panelist@example.com",
        "Old",
        "Panelist",
        UserStatus::Active,
    );
    let app = secured_with_okta(&okta).await;
    let portal = PortalId::new(3).unwrap();
    app.db.link_portal_unchecked(portal.get(), &group).await;
    app.db
        .store
        .put_portal_user_reference(
            portal,
            EfsUserId::new(30).unwrap(),
            &efs_iam::storage::PortalUserReferenceUpsert {
                okta_user_id: OktaUserId::parse(&legacy).unwrap(),
                status: efs_iam::domain::PortalUserStatus::Synced,
                has_data_changes: true,
            },
        )
        .await
        .unwrap();
    let sync = "/api/v1/sync/portals/3/users/30";
    let body = json!({"login": "old.panelist@example.com", "email": "new@example.com", "first_name": "Old", "last_name": "Panelist"});
    let got = as_caller(&app, "iam:sync", Method::POST, sync, Some(body.clone())).await;
    assert_problem(&got, 409, "okta-user-not-managed");
    assert!(okta.group_members(&group).is_empty());
    assert_eq!(
        as_caller(
            &app,
            "iam:admin",
            Method::PUT,
            &format!("/api/v1/okta-users/{legacy}/management"),
            None
        )
        .await
        .0,
        201
    );
    let (status, synced) = as_caller(&app, "iam:sync", Method::POST, sync, Some(body)).await;
    assert_eq!(status, 200, "{synced}");
    assert_eq!(synced["okta_user_id"], legacy.as_str());
    assert_eq!(okta.group_members(&group), vec![legacy.clone()]);
    assert_eq!(
        okta.user(&legacy).unwrap()["profile"]["email"],
        "new@example.com"
    );
}
