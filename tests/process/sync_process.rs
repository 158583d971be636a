//! The unassignment worker as operators run it: the real `efs-iam` binary as child
//! processes against MariaDB and a fake Okta (served by this test process over HTTP).
//!
//! - `kill -9` of one of two instances mid-drain: the other finishes every row within
//!   60 s (the dead instance's short leases run out unrenewed), none is lost, only the
//!   rows in flight at the kill are done twice;
//! - two processes draining one queue together: each user handled once (leases keep
//!   them apart), both do part of the work;
//! - a bulk adoption run with one of two instances killed mid-run: the other finishes
//!   it, every referenced Okta user adopted once.
//!
//! Needs MariaDB (`TEST_MYSQL_URL`); skipped without it unless `EFS_IAM_REQUIRE_MYSQL=1`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::TestDb;
use efs_iam::domain::{EfsUserId, OktaUserId, PortalId};
use efs_iam::storage::prelude::*;
use efs_iam::storage::{NewUnassignment, SqlStore, UnassignmentQueueStore};
use fake_okta::{FakeOkta, FakeOktaConfig, UserStatus};

const BIN: &str = env!("CARGO_BIN_EXE_efs-iam");
const PORTAL: i32 = 21;

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("a bound listener").port()
}

struct Instance {
    child: Child,
    log: PathBuf,
}

impl Instance {
    /// `lease`: `EFS_IAM_SYNC_LEASE`, or the default.
    fn start(db_url: &str, okta: &FakeOkta, name: &str, dir: &Path, lease: Option<&str>) -> Self {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(BIN);
        if let Some(lease) = lease {
            command.env("EFS_IAM_SYNC_LEASE", lease);
        }
        let child = command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("EFS_IAM_DATABASE_URL", db_url)
            .env("EFS_IAM_LISTEN", format!("127.0.0.1:{}", free_port()))
            .env("EFS_IAM_OKTA_ORG_URL", okta.base_url())
            .env("EFS_IAM_OKTA_API_TOKEN", "test-token")
            .env("EFS_IAM_SYNC_INSTANCE_ID", name)
            .env("EFS_IAM_SYNC_POLL_INTERVAL", "100ms")
            .env("EFS_IAM_SYNC_BATCH_SIZE", "20")
            .env("EFS_IAM_SYNC_CONCURRENCY", "8")
            .env("EFS_IAM_LOG", "info,efs_iam::okta=warn")
            .env("EFS_IAM_LOG_FORMAT", "json")
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start efs-iam");
        Self { child, log }
    }

    async fn wait_started(&self) {
        wait_until(
            "the instance to start",
            Duration::from_secs(30),
            async || {
                self.log_lines()
                    .iter()
                    .any(|l| l["message"] == "sync workers started")
            },
        )
        .await;
    }

    fn kill_9(&mut self) {
        // `Child::kill` is SIGKILL on Unix: no shutdown hook, no lease given back.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().unwrap()
    }

    /// Rows this instance reports as removed (its "unassignment step" log lines).
    fn removed(&self) -> u64 {
        self.log_lines()
            .iter()
            .filter(|l| l["message"] == "unassignment step")
            .filter_map(|l| l["removed"].as_u64())
            .sum()
    }

    fn log_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A migrated MariaDB database with `n` queued users of one portal, each a member of
/// the portal's group in the fake Okta.
#[allow(clippy::type_complexity)]
async fn setup(
    n: i32,
    latency: Duration,
) -> Option<(
    TestDb,
    Arc<SqlStore>,
    FakeOkta,
    String,
    Vec<NewUnassignment>,
)> {
    let db = TestDb::mysql().await?;
    let store = db.store.clone();
    let okta = FakeOkta::start(FakeOktaConfig {
        max_recorded_requests: 100,
        ..FakeOktaConfig::default()
    })
    .await;
    let group = okta.create_group("Killed portal");
    let mut users = Vec::new();
    for i in 1..=n {
        let id = okta.create_user(
            &format!("k{i}@example.com"),
            &format!("k{i}@example.com"),
            "K",
            "L",
            UserStatus::Active,
        );
        okta.add_group_member(&group, &id);
        db.manage_okta_users(&[&id]).await;
        users.push(NewUnassignment {
            user_id: EfsUserId::new(i).unwrap(),
            okta_user_id: OktaUserId::parse(&id).unwrap(),
            email: None,
        });
    }
    db.link_portal_unchecked(PORTAL, &group).await;
    okta.set_latency(latency);
    Some((db, store, okta, group, users))
}

async fn enqueue(store: &SqlStore, users: &[NewUnassignment]) {
    store
        .enqueue_unassignments(PortalId::new(PORTAL).unwrap(), users)
        .await
        .unwrap();
}

async fn queued(store: &SqlStore) -> (i64, i64) {
    let c = store
        .unassignment_counts(PortalId::new(PORTAL).unwrap())
        .await
        .unwrap();
    (c.pending, c.dead)
}

async fn wait_until(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const DELETE_MEMBER: (&str, &str) = ("DELETE", "/api/v1/groups/{groupId}/users/{userId}");

/// Two instances drain one queue with the default (short, heartbeat-renewed) lease;
/// one is killed with rows in flight. The other finishes every row within 60 s of the
/// kill, and only the rows the dead instance held are ever removed twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_one_of_two_instances_its_rows_are_finished_by_the_other() {
    let n = 600;
    let Some((db, store, okta, group, users)) = setup(n, Duration::from_millis(50)).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut victim = Instance::start(&db.url, &okta, "victim", dir.path(), None);
    let mut survivor = Instance::start(&db.url, &okta, "survivor", dir.path(), None);
    for instance in [&victim, &survivor] {
        instance.wait_started().await;
    }
    enqueue(&store, &users).await;
    let held_by_victim = "SELECT COUNT(*) FROM iam_portal_user_group_unassignment_queue \
                          WHERE locked_by = 'victim' AND locked_until > UTC_TIMESTAMP()";
    wait_until(
        "the victim to hold rows",
        Duration::from_secs(60),
        async || queued(&store).await.0 < i64::from(n) - 40 && db.count(held_by_victim).await > 0,
    )
    .await;
    victim.kill_9();
    let killed_at = Instant::now();
    let held = db.count(held_by_victim).await;
    eprintln!("killed holding {held} rows");
    assert!(held > 0);

    wait_until("the queue to drain", Duration::from_secs(90), async || {
        queued(&store).await == (0, 0)
    })
    .await;
    let took = killed_at.elapsed();
    assert!(
        took < Duration::from_secs(60),
        "the survivor needed {took:?}"
    );
    assert!(okta.group_members(&group).is_empty(), "every user removed");
    let deletes = okta.request_count(DELETE_MEMBER.0, DELETE_MEMBER.1);
    assert!(
        (n as usize..=n as usize + held as usize).contains(&deletes),
        "{deletes} removals for {n} users; only the {held} rows in flight at the kill may \
         be done twice"
    );
    assert!(survivor.removed() > 0);
    let status = survivor.terminate();
    assert!(status.success(), "graceful exit on SIGTERM: {status}");
    let mut stopped: Vec<String> = survivor
        .log_lines()
        .iter()
        .filter(|l| l["message"] == "worker stopped")
        .map(|l| l["worker"].as_str().unwrap_or_default().to_owned())
        .collect();
    stopped.sort();
    assert_eq!(
        stopped,
        [
            "adoptions",
            "error-log-purges",
            "okta-events",
            "reconciliations",
            "sync-jobs",
            "unassignments"
        ],
        "each worker's exit is reported"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_drain_one_queue_together() {
    let n = 600;
    let Some((db, store, okta, group, users)) = setup(n, Duration::from_millis(20)).await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut a = Instance::start(&db.url, &okta, "worker-a", dir.path(), Some("60s"));
    let mut b = Instance::start(&db.url, &okta, "worker-b", dir.path(), Some("60s"));
    // Both up (and polling every 100 ms) before there is work, so both get a share.
    for instance in [&a, &b] {
        instance.wait_started().await;
    }
    enqueue(&store, &users).await;
    wait_until("the queue to drain", Duration::from_secs(120), async || {
        queued(&store).await == (0, 0)
    })
    .await;
    assert!(okta.group_members(&group).is_empty());
    assert_eq!(
        okta.request_count(DELETE_MEMBER.0, DELETE_MEMBER.1),
        n as usize,
        "each user handled once"
    );
    // Let the last steps' log lines land.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(a.terminate().success());
    assert!(b.terminate().success());
    let (ra, rb) = (a.removed(), b.removed());
    assert_eq!(ra + rb, n as u64, "a: {ra}, b: {rb}");
    assert!(ra > 0 && rb > 0, "both worked: a {ra}, b {rb}");
}

/// A bulk adoption of 300 referenced Okta users, with the instance working on it killed
/// (`kill -9`) mid-run: the other instance finishes the run, every user is adopted
/// once (one record naming the requester; one audit line, which only an item in flight
/// at the kill may lack), and only the items in flight at the kill are checked with Okta
/// twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bulk_adoption_survives_kill_9() {
    use efs_iam::storage::{AdoptionStore, PortalUserReferenceUpsert};
    let n = 300;
    let Some(db) = TestDb::mysql().await else {
        return;
    };
    let okta = FakeOkta::start(FakeOktaConfig {
        max_recorded_requests: 100,
        ..FakeOktaConfig::default()
    })
    .await;
    db.seed_efs_users(&[], &(1..=n).collect::<Vec<_>>()).await;
    let portal = PortalId::new(PORTAL).unwrap();
    for i in 1..=n {
        let id = okta.create_user(
            &format!("a{i}@example.com"),
            &format!("a{i}@example.com"),
            "A",
            "B",
            UserStatus::Active,
        );
        db.store
            .put_portal_user_reference(
                portal,
                EfsUserId::new(i).unwrap(),
                &PortalUserReferenceUpsert {
                    okta_user_id: OktaUserId::parse(&id).unwrap(),
                    status: efs_iam::domain::PortalUserStatus::Synced,
                    has_data_changes: false,
                },
            )
            .await
            .unwrap();
    }
    okta.set_latency(Duration::from_millis(40));
    let dir = tempfile::tempdir().unwrap();
    let mut victim = Instance::start(&db.url, &okta, "victim", dir.path(), None);
    let survivor = Instance::start(&db.url, &okta, "survivor", dir.path(), None);
    for instance in [&victim, &survivor] {
        instance.wait_started().await;
    }
    let run = "0b9a0a55-6d2c-4f55-9d2e-1f1a5c3b7e01";
    db.store
        .create_adoption_run(run, false, "ops-admin", efs_iam::storage::now())
        .await
        .unwrap();
    let held_by_victim = "SELECT COUNT(*) FROM efs_iam_adoption_item \
                          WHERE locked_by = 'victim' AND locked_until > UTC_TIMESTAMP()";
    let adopted = "SELECT COUNT(*) FROM efs_iam_adoption_item WHERE state = 'adopted'";
    wait_until(
        "the victim to hold items",
        Duration::from_secs(60),
        async || db.count(adopted).await > 20 && db.count(held_by_victim).await > 0,
    )
    .await;
    victim.kill_9();
    let held = db.count(held_by_victim).await;
    eprintln!("killed holding {held} items");
    wait_until("the run to finish", Duration::from_secs(120), async || {
        db.store
            .adoption_run(run)
            .await
            .unwrap()
            .is_some_and(|(r, _)| r.state == "succeeded")
    })
    .await;
    let (_, counts) = db.store.adoption_run(run).await.unwrap().unwrap();
    // An item the victim had adopted but not yet marked when it died is found managed
    // by the survivor: `already_managed`, never adopted twice.
    assert_eq!(
        counts["adopted"] + counts["already_managed"],
        i64::from(n),
        "{counts:?}"
    );
    assert!(
        counts["already_managed"] <= held,
        "{counts:?}, {held} in flight"
    );
    assert_eq!(
        db.count("SELECT COUNT(*) FROM efs_iam_managed_okta_user")
            .await,
        i64::from(n)
    );
    let audits: usize = [&victim, &survivor]
        .iter()
        .map(|i| {
            i.log_lines()
                .iter()
                .filter(|l| {
                    l["message"]
                        .as_str()
                        .is_some_and(|m| m.starts_with("Okta user adopted"))
                })
                .count()
        })
        .sum();
    // The record is the durable trace of an adoption (who, when, how); its audit line
    // follows the record's commit, so the victim may have died between the two for the
    // items it held. Never two lines for one user.
    assert_eq!(
        db.count(
            "SELECT COUNT(*) FROM efs_iam_managed_okta_user \
             WHERE origin = 'adopted' AND managed_by = 'ops-admin'"
        )
        .await,
        i64::from(n),
        "every record names the run's requester"
    );
    assert!(
        (n as usize - held as usize..=n as usize).contains(&audits),
        "{audits} audit lines for {n} users; only the {held} in flight at the kill may lack one"
    );
    let roles = okta.request_count("GET", "/api/v1/users/{id}/roles");
    assert!(
        (n as usize..=n as usize + held as usize).contains(&roles),
        "{roles} role checks for {n} users; only the {held} in flight at the kill twice"
    );
}
