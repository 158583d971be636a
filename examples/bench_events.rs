//! Benchmark of the Okta Event Hooks receiver (not a test): the `efs-iam` binary as a
//! child process on MariaDB (or SQLite), fed by this process.
//!
//! 1. **Accepted events per second:** `--posters` concurrent clients post deliveries of
//!    `--batch` events each to `/hooks/okta/events` for `--seconds`; beside it, the
//!    ceiling: the same events inserted straight into `efs_iam_okta_event` by this
//!    process, one transaction per delivery, at the same concurrency.
//! 2. **Okta-side deactivation → reference deprovisioned:** `--samples` times, a user is
//!    deactivated in the fake Okta's "Admin Console"; the fake delivers the event to the
//!    hook as Okta would; the time until the portal user reference shows
//!    `deprovisioned` (polled in the database every millisecond) is recorded. Beside
//!    it, the floor: one reference lookup through the API.
//!
//! Run it through `scripts/bench-events`.

#[path = "bench_common/mod.rs"]
mod bench_common;

use std::path::PathBuf;
use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bench_common::percentile;
use clap::Parser;
use fake_okta::{events, EventHook, FakeOkta, FakeOktaConfig, UserStatus};
use serde_json::{json, Value};

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value_t = 16)]
    posters: usize,
    #[arg(long, default_value_t = 10)]
    batch: usize,
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 200)]
    samples: usize,
    #[arg(long)]
    mysql_admin_url: Option<String>,
    #[arg(long, default_value = "target/release/efs-iam")]
    bin: PathBuf,
}

const SECRET: &str = "bench-event-hook-secret-0123456789";
const PORTAL: i32 = 1;

struct Service(Child);
impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn delivery(batch: usize) -> Value {
    let events: Vec<Value> = (0..batch)
        .map(|_| {
            events::event(
                "application.lifecycle.update",
                vec![events::user_target(
                    "00uBENCH000000000000",
                    "b@example.com",
                    "B",
                )],
            )
        })
        .collect();
    json!({"eventType": "com.okta.event_hook", "cloudEventsVersion": "0.1", "data": {"events": events}})
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let admin = bench_common::admin_url(&args.mysql_admin_url)
        .expect("MariaDB: --mysql-admin-url or TEST_MYSQL_URL");
    let name = format!("efs_iam_bench_events_{}", std::process::id());
    let db_url = bench_common::fresh_database(&admin, &name).await;

    let okta = FakeOkta::start(FakeOktaConfig {
        everyone_group: false,
        ..FakeOktaConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let (mut command, base) =
        bench_common::efs_iam_serve(&args.bin, &db_url, &dir.path().join("efs-iam.log"));
    let _svc = Service(
        command
            .env("EFS_IAM_DATABASE_MAX_CONNECTIONS", "20")
            .env("EFS_IAM_OKTA_ORG_URL", okta.base_url())
            .env("EFS_IAM_OKTA_API_TOKEN", "test-token")
            .env("EFS_IAM_OKTA_EVENT_HOOK_SECRET", SECRET)
            .env("EFS_IAM_RECONCILE_INTERVAL", "0")
            .spawn()
            .expect("start efs-iam (scripts/bench-events builds it)"),
    );
    let http = reqwest::Client::new();
    bench_common::wait_ready(&http, &base, 300).await;
    let db = sqlx::MySqlPool::connect(&db_url).await.unwrap();

    // --- 1. accepted events per second, and the direct-insert ceiling ---
    let hook = format!("{base}/hooks/okta/events");
    let stop_at = Instant::now() + Duration::from_secs(args.seconds);
    let mut posters = Vec::new();
    for _ in 0..args.posters {
        let (http, hook, batch) = (http.clone(), hook.clone(), args.batch);
        posters.push(tokio::spawn(async move {
            let mut accepted = 0usize;
            while Instant::now() < stop_at {
                let res = http
                    .post(&hook)
                    .header("Authorization", SECRET)
                    .json(&delivery(batch))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(res.status(), 200);
                accepted += batch;
            }
            accepted
        }));
    }
    let started = Instant::now();
    let mut accepted = 0;
    for p in posters {
        accepted += p.await.unwrap();
    }
    let hook_rate = accepted as f64 / started.elapsed().as_secs_f64();

    let db = Arc::new(db);
    let stop_at = Instant::now() + Duration::from_secs(args.seconds);
    let mut inserters = Vec::new();
    for _ in 0..args.posters {
        let (db, batch) = (db.clone(), args.batch);
        inserters.push(tokio::spawn(async move {
            let mut inserted = 0usize;
            while Instant::now() < stop_at {
                let events = delivery(batch);
                let mut tx = db.begin().await.unwrap();
                for e in events["data"]["events"].as_array().unwrap() {
                    sqlx::query(
                        "INSERT INTO efs_iam_okta_event (uuid, event_type, published, received_at, \
                         payload, state, attempts) VALUES (?, ?, UTC_TIMESTAMP(3), UTC_TIMESTAMP(), ?, 'ignored', 0)",
                    )
                    .bind(e["uuid"].as_str().unwrap())
                    .bind(e["eventType"].as_str().unwrap())
                    .bind(e.to_string())
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                }
                tx.commit().await.unwrap();
                inserted += batch;
            }
            inserted
        }));
    }
    let started = Instant::now();
    let mut inserted = 0;
    for i in inserters {
        inserted += i.await.unwrap();
    }
    let insert_rate = inserted as f64 / started.elapsed().as_secs_f64();
    // Let the worker finish the backlog before timing single events.
    for _ in 0..600 {
        let pending: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM efs_iam_okta_event WHERE state = 'pending'")
                .fetch_one(&*db)
                .await
                .unwrap();
        if pending == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // --- 2. deactivation in Okta → reference deprovisioned ---
    let group = okta.create_group("Bench portal");
    let put = |path: String, body: Value| {
        let (http, base) = (http.clone(), base.clone());
        async move {
            let res = http
                .put(format!("{base}/api/v1{path}"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert!(res.status().is_success(), "{path}: {}", res.status());
        }
    };
    put(
        format!("/portals/{PORTAL}/settings/okta_group_id"),
        json!({"value": group}),
    )
    .await;
    let values: Vec<String> = (1..=args.samples).map(|i| format!("({i})")).collect();
    sqlx::query(&format!(
        "INSERT IGNORE INTO panelists (uid) VALUES {}",
        values.join(",")
    ))
    .execute(&*db)
    .await
    .unwrap();
    let mut users = Vec::new();
    for i in 1..=args.samples {
        let login = format!("ev{i}@example.com");
        let id = okta.create_user(&login, &login, "E", "V", UserStatus::Active);
        // A user efs-iam did not create is referenced only once adopted (issue 20).
        put(format!("/okta-users/{id}/management"), Value::Null).await;
        put(
            format!("/portals/{PORTAL}/user-references/{i}"),
            json!({"okta_user_id": id, "status": "synced"}),
        )
        .await;
        users.push((i, id));
    }
    okta.set_event_hook(EventHook::new(hook.clone(), "Authorization", SECRET));
    let mut latencies = Vec::new();
    let mut lookups = Vec::new();
    for (user, id) in &users {
        let t = Instant::now();
        let res = http
            .get(format!(
                "{base}/api/v1/portals/{PORTAL}/user-references/{user}"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        lookups.push(t.elapsed().as_secs_f64() * 1000.0);

        let started = Instant::now();
        okta.set_user_status(id, UserStatus::Deprovisioned);
        loop {
            let status: Option<i8> = sqlx::query_scalar(
                "SELECT status FROM iam_portal_user_reference WHERE portal_id = ? AND user_id = ?",
            )
            .bind(PORTAL)
            .bind(*user as i32)
            .fetch_one(&*db)
            .await
            .unwrap();
            if status == Some(3) {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "not applied");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    latencies.sort_by(f64::total_cmp);
    lookups.sort_by(f64::total_cmp);

    println!("| measure | figure | ceiling / floor in the same run | ratio |");
    println!("|---|---|---|---|");
    println!(
        "| events accepted per second ({} posters, {} events per delivery) | {hook_rate:.0} | {insert_rate:.0} (direct inserts) | {:.2} |",
        args.posters,
        args.batch,
        hook_rate / insert_rate
    );
    println!(
        "| deactivation in Okta → reference deprovisioned, median | {:.1} ms | {:.1} ms (one API lookup) | {:.1}× |",
        percentile(&latencies, 0.5),
        percentile(&lookups, 0.5),
        percentile(&latencies, 0.5) / percentile(&lookups, 0.5)
    );
    println!(
        "| same, p99 ({} samples) | {:.1} ms | {:.1} ms | |",
        latencies.len(),
        percentile(&latencies, 0.99),
        percentile(&lookups, 0.99)
    );

    drop(db);
    bench_common::drop_database(&admin, &name).await;
}
