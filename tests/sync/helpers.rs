//! The service with a fake Okta, over real HTTP, with handles on its sync machinery
//! (so tests can drive the workers' steps) and on the fake (to seed, break and inspect
//! Okta).

use std::sync::Arc;
use std::time::Duration;

use efs_iam::config::Settings;
use efs_iam::startup::Application;
use efs_iam::sync::SyncService;
use fake_okta::{FakeOkta, FakeOktaConfig, UserStatus};
use reqwest::Url;
use serde_json::{json, Value};

pub use crate::common::Api;
use crate::common::{test_settings, CuttableProxy, Running, TestDb};

pub struct SyncApp {
    pub client: reqwest::Client,
    pub sync: Arc<SyncService>,
    running: Running,
}

impl Api for SyncApp {
    fn client(&self) -> &reqwest::Client {
        &self.client
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.running.address, path)
    }
}

impl SyncApp {
    /// Sets the portal's Okta group.
    pub async fn link_portal(&self, portal: i32, group: &str) {
        let (status, body) = self
            .put(
                &format!("/api/v1/portals/{portal}/settings/okta_group_id"),
                json!({"value": group}),
            )
            .await;
        assert!(status.is_success(), "{status} {body}");
    }

    /// Queues `users` (the API's unassignment entries) for removal from the portal's
    /// group, as EFS-Admin does after a mass delete.
    pub async fn enqueue_unassignments(&self, portal: i32, users: Vec<Value>) {
        let (status, body) = self
            .post(
                &format!("/api/v1/portals/{portal}/unassignments"),
                json!({ "users": users }),
            )
            .await;
        assert_eq!(status, 202, "{body}");
    }

    pub async fn stop(&mut self) {
        self.running.stop().await;
    }
}

/// Sets the portal's Okta group in the database, past the API's check that Okta has
/// it: a group deleted in Okta since, or a setting from before efs-iam checked them.
pub async fn link_portal_unchecked(db: &TestDb, portal: i32, group: &str) {
    db.link_portal_unchecked(portal, group).await;
}

/// A portal user reference of `user` in `portal` naming `okta_id`, `synced`.
pub async fn link_reference(app: &SyncApp, portal: i32, user: i32, okta_id: &str) {
    let (status, body) = app
        .put(
            &format!("/api/v1/portals/{portal}/user-references/{user}"),
            json!({"okta_user_id": okta_id, "status": "synced"}),
        )
        .await;
    assert!(status.is_success(), "{body}");
}

/// A fake Okta with test-sized limits.
pub async fn fake_okta() -> FakeOkta {
    FakeOkta::start(FakeOktaConfig::default()).await
}

/// Settings for the service against `okta` (or without Okta), workers off so tests
/// drive the steps, short leases and backoffs.
pub fn settings(db: &TestDb, okta: Option<&FakeOkta>) -> Settings {
    let mut s = test_settings(&db.url);
    if let Some(okta) = okta {
        s.okta.org_url = Some(Url::parse(&okta.base_url()).unwrap());
        s.okta.api_token = Some("test-token".to_owned().into());
        s.okta.timeout = Duration::from_secs(5);
    }
    s.sync.worker = false;
    s.sync.poll_interval = Duration::from_millis(100);
    // Long enough that a loaded CI machine does not lose a lease mid-step; tests of
    // expiry set their own.
    s.sync.lease = Duration::from_secs(10);
    s.sync.backoff_base = Duration::from_secs(1);
    s.sync.backoff_max = Duration::from_secs(2);
    s
}

pub async fn spawn(
    db: &TestDb,
    okta: Option<&FakeOkta>,
    adjust: impl FnOnce(&mut Settings),
) -> SyncApp {
    let mut s = settings(db, okta);
    adjust(&mut s);
    let app = Application::with_storage(&s, db.store.clone())
        .await
        .expect("build app");
    SyncApp {
        client: reqwest::Client::new(),
        sync: app.sync().clone(),
        running: Running::start(app),
    }
}

pub fn profile(login: &str) -> Value {
    json!({"login": login, "email": login, "first_name": "Ada", "last_name": "Lovelace"})
}

/// Seeds an Okta user directly in the fake.
/// An Okta user of an EFS installation: in Okta, and managed by efs-iam (as if adopted
/// when the installation took efs-iam on).
pub async fn seed_efs_user(
    db: &TestDb,
    okta: &FakeOkta,
    login: &str,
    status: UserStatus,
) -> String {
    let id = seed_user(okta, login, status);
    adopted(db, &id).await;
    id
}

/// Records an Okta user as managed by efs-iam, as an adoption does.
pub async fn adopted(db: &TestDb, okta_user_id: &str) {
    db.manage_okta_users(&[okta_user_id]).await;
}

/// An Okta user efs-iam does not manage (someone else's, as in a real org).
pub fn seed_user(okta: &FakeOkta, login: &str, status: UserStatus) -> String {
    okta.create_user(login, login, "Grace", "Hopper", status)
}

/// Okta users with this login (case-insensitive), as the fake has them.
pub fn users_with_login(okta: &FakeOkta, login: &str) -> Vec<String> {
    okta.user_ids()
        .into_iter()
        .filter(|id| {
            okta.user(id).is_some_and(|u| {
                u["profile"]["login"]
                    .as_str()
                    .is_some_and(|l| l.eq_ignore_ascii_case(login))
            })
        })
        .collect()
}

/// Okta's 404 for a user, as a fault body.
pub fn user_not_found_body(what: &str) -> Value {
    json!({
        "errorCode": "E0000007",
        "errorSummary": format!("Not found: Resource not found: {what} (User)"),
        "errorLink": "E0000007",
        "errorId": "oaeFAKE",
        "errorCauses": []
    })
}

pub use crate::common::assert_problem;

/// Runs `step` until it reports nothing claimed (or `max` rounds).
pub async fn drain_jobs(app: &SyncApp, max: usize) {
    let worker = app.sync.job_worker().expect("Okta configured");
    for _ in 0..max {
        let step = worker.run_once().await.expect("job step");
        if step.claimed == 0 {
            return;
        }
    }
    panic!("jobs not drained after {max} steps");
}

/// Drives the unassignment worker's step until the queue has nothing due (as the
/// background loop would); what the steps did, with `steps`.
pub async fn drain_unassignments(app: &SyncApp) -> Value {
    let worker = app.sync.unassignment_worker().expect("Okta configured");
    let (mut steps, mut totals) = (0, efs_iam::sync::UnassignmentStep::default());
    loop {
        let step = worker.run_once().await.expect("unassignment step");
        steps += 1;
        let done = step.claimed == 0 || step.released > 0 || step.blocked.is_some();
        totals.absorb(step);
        if done {
            break;
        }
    }
    let mut report = serde_json::to_value(totals).unwrap();
    report["steps"] = json!(steps);
    report
}

/// POSTs `body` to `path`, expects 202 Accepted; its `Location` and body.
pub async fn post_accepted(app: &SyncApp, path: &str, body: &Value) -> (String, Value) {
    let res = app
        .client
        .post(app.url(path))
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let location = res.headers()["location"].to_str().unwrap().to_owned();
    (location, res.json().await.unwrap())
}

/// Asks for a repairing reconciliation (202 with its status URL) and waits until the
/// run has ended; the run as `GET` answers it.
pub async fn reconcile_and_wait(app: &SyncApp, portal: i32) -> Value {
    let path = format!("/api/v1/sync/portals/{portal}/reconcile?dry_run=false");
    let (location, accepted) = post_accepted(app, &path, &Value::Null).await;
    assert_eq!(accepted["status_url"], location.as_str());
    assert_eq!(accepted["state"], "pending");
    wait_for_run(app, &location).await
}

/// Polls a reconciliation run until it succeeded or failed (10 s at most).
pub async fn wait_for_run(app: &SyncApp, path: &str) -> Value {
    for _ in 0..200 {
        let (status, run) = app.get(path).await;
        assert_eq!(status, 200, "{run}");
        if run["state"] == "succeeded" || run["state"] == "failed" {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("run {path} did not end within 10 s");
}

/// MariaDB behind a proxy, reached with short deadlines (500 ms to get a connection or
/// to run a statement), so that a statement waiting on a row another session holds
/// fails quickly; `None` where no MariaDB is configured.
pub async fn mysql_with_short_deadlines() -> Option<(TestDb, CuttableProxy)> {
    TestDb::mysql_behind_proxy(efs_iam::storage::ConnectOptions {
        max_connections: 5,
        acquire_timeout: Duration::from_millis(500),
        statement_timeout: Duration::from_millis(500),
    })
    .await
}

/// Another session locks every row of `table` until the returned transaction ends: a
/// worker's renewals of those rows' leases time out meanwhile.
pub async fn lock_rows(db: &TestDb, table: &str) -> sqlx::Transaction<'static, sqlx::MySql> {
    let other = sqlx::MySqlPool::connect(&db.url).await.unwrap();
    let mut tx = other.begin().await.unwrap();
    sqlx::query(&format!("SELECT id FROM {table} FOR UPDATE"))
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    tx
}
