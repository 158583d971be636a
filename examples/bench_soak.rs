//! The soak (issue 24; not a test): EFS's mixed workload for an hour against three
//! release `efs-iam` processes behind one nginx address, on MariaDB with the session
//! tokens in memcached, with a fake Okta served by this process (Okta's 60 s windows).
//!
//! 1. **Capacity probe:** `--probe-seconds` of the API mix (below) from 32 closed-loop
//!    clients through nginx; the soak then sends half of what they reached (or `--rate`).
//! 2. **Soak:** for `--minutes`, open loop (each request sent on its schedule, whether
//!    or not earlier ones answered): the API mix at that rate (portal user reference
//!    lookups 50 %, admin reference lookups 10 %, session token reads 20 % and writes
//!    10 %, error-log pages 5 %, error-log writes 5 %), and beside it portal-user syncs
//!    through the fake Okta (`--syncs-per-second`), Okta event-hook deliveries
//!    (`--hooks-per-second`, 10 events each), a mass delete of `--mass-delete` synced
//!    users every `--mass-delete-every` minutes (queued, and the panelists deleted as
//!    EFS-Admin does, their references with them; the queue drained through the fake
//!    Okta), the error-log purge every 5 minutes (answered 202; the driver follows
//!    each purge to its end and prints its time and entries), the scheduled reconciliation of the
//!    linked portal (`EFS_IAM_RECONCILE_INTERVAL`) and the Okta-event retention purge.
//! 3. **Samples** every 10 s: each instance's RSS and open files, database connections
//!    (each pool's `db_pool_connections` and MariaDB's `Threads_connected`), the fake's
//!    429s.
//!
//! Reported: requests by operation and outcome, p50/p99 per operation in
//! `--bucket-minutes` buckets, RSS, open files and connections over time, Okta calls
//! and 429s; CSV files and gnuplot PNGs in `--out`. Run it through `bench/soak`.

#[path = "bench_common/mod.rs"]
mod bench_common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bench_common::percentile;
use clap::Parser;
use fake_okta::{events, FakeOkta, FakeOktaConfig};
use serde::Serialize;
use serde_json::{json, Value};

#[derive(Parser, Debug)]
struct Args {
    #[arg(long, default_value_t = 60)]
    minutes: u64,
    #[arg(long, default_value_t = 3)]
    instances: usize,
    /// API requests per second of the mix; default: half the probed capacity.
    #[arg(long)]
    rate: Option<f64>,
    #[arg(long, default_value_t = 20)]
    probe_seconds: u64,
    #[arg(long, default_value_t = 5)]
    bucket_minutes: u64,
    #[arg(long, default_value_t = 2.0)]
    syncs_per_second: f64,
    #[arg(long, default_value_t = 1.0)]
    hooks_per_second: f64,
    #[arg(long, default_value_t = 500)]
    mass_delete: usize,
    #[arg(long, default_value_t = 10)]
    mass_delete_every: u64,
    /// Requests per bucket per 60 s window at the fake Okta.
    #[arg(long, default_value_t = 1200)]
    okta_rate_limit: u32,
    #[arg(long, default_value_t = 50)]
    okta_latency_ms: u64,
    #[arg(long, default_value = "5m")]
    reconcile_interval: String,
    #[arg(long, default_value = "127.0.0.1:11211")]
    memcached: String,
    #[arg(long)]
    mysql_admin_url: Option<String>,
    #[arg(long, default_value = "target/release/efs-iam")]
    bin: PathBuf,
    #[arg(long, default_value = "target/soak")]
    out: PathBuf,
}

const SECRET: &str = "bench-soak-hs256-secret-0123456789abcdef";
const ISSUER: &str = "bench";
const AUDIENCE: &str = "efs-iam";
const HOOK_SECRET: &str = "bench-soak-event-hook-secret-0123";
const OKTA_TOKEN: &str = "soak-okta-token";
/// The portal linked to an Okta group: syncs, the mass deletes and the reconciliation.
const LINKED: i32 = 1;
/// The portal whose references the lookups read (seeded in SQL).
const LOOKED_UP: i32 = 2;
const SEEDED_REFERENCES: i64 = 100_000;
const SEEDED_ADMINS: i64 = 10_000;
const SESSIONS: u64 = 10_000;
/// Panelists the syncs draw from (user ids above the seeded references).
const SYNC_USERS: u64 = 20_000;
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// Requests in flight at most; beyond it a request is counted `driver_overrun`.
const MAX_IN_FLIGHT: usize = 512;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
enum Op {
    PortalLookup,
    AdminLookup,
    TokenGet,
    TokenPut,
    ErrorLogPage,
    ErrorLogWrite,
    PortalUserSync,
    HookDelivery,
    MassDelete,
    ErrorLogPurge,
}

/// The API mix: operation and share of the rate.
const MIX: [(Op, f64); 6] = [
    (Op::PortalLookup, 0.50),
    (Op::AdminLookup, 0.10),
    (Op::TokenGet, 0.20),
    (Op::TokenPut, 0.10),
    (Op::ErrorLogPage, 0.05),
    (Op::ErrorLogWrite, 0.05),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
enum Outcome {
    Ok,
    /// 404 where it is an answer (a session token expired from memcached).
    NotFound,
    ClientError,
    ServerError,
    Transport,
    DriverOverrun,
}

impl Outcome {
    fn failed(self) -> bool {
        !matches!(self, Self::Ok | Self::NotFound)
    }
}

struct Record {
    op: Op,
    bucket: usize,
    outcome: Outcome,
    ms: f32,
}

#[derive(Default)]
struct Records(Mutex<Vec<Record>>);

impl Records {
    fn push(&self, op: Op, bucket: usize, outcome: Outcome, ms: f32) {
        self.0.lock().unwrap().push(Record {
            op,
            bucket,
            outcome,
            ms,
        });
    }
}

struct Instance {
    child: Child,
    base: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the master stops its workers only when it is asked to.
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// One sample of the processes and the database.
#[derive(Debug, Clone, Serialize)]
struct Sample {
    at_s: f64,
    rss_mib: Vec<f64>,
    /// The anonymous part of the RSS (the heap; the rest is the binary's and the
    /// libraries' pages, which only grow as more of the code runs).
    rss_anon_mib: Vec<f64>,
    open_files: Vec<usize>,
    pool_connections: Vec<f64>,
    mariadb_threads_connected: i64,
    okta_calls: usize,
    okta_429: usize,
}

/// A `/proc/{pid}/status` figure in KiB (`VmRSS:`, `RssAnon:`), as MiB.
fn proc_status_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// `db_pool_connections` from an instance's `/metrics`.
async fn pool_connections(http: &reqwest::Client, base: &str) -> f64 {
    let Ok(res) = http.get(format!("{base}/metrics")).send().await else {
        return f64::NAN;
    };
    let text = res.text().await.unwrap_or_default();
    text.lines()
        .filter(|l| l.starts_with("db_pool_connections{"))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

fn start_instance(
    args: &Args,
    db_url: &str,
    okta: &FakeOkta,
    n: usize,
    keys: &(String, String),
) -> Instance {
    std::fs::create_dir_all(&args.out).unwrap();
    let (mut command, base) = bench_common::efs_iam_serve(
        &args.bin,
        db_url,
        &args.out.join(format!("efs-iam-{n}.log")),
    );
    let child = command
        .env("EFS_IAM_DATABASE_MAX_CONNECTIONS", "10")
        .env("EFS_IAM_AUTH_HS256_SECRET", SECRET)
        .env("EFS_IAM_AUTH_ISSUER", ISSUER)
        .env("EFS_IAM_AUTH_AUDIENCE", AUDIENCE)
        .env("EFS_IAM_TOKEN_KEYS", &keys.0)
        .env("EFS_IAM_SESSION_HASH_KEY", &keys.1)
        .env("EFS_IAM_TOKEN_STORE", "memcached")
        .env("EFS_IAM_MEMCACHED_SERVERS", &args.memcached)
        .env(
            "EFS_IAM_MEMCACHED_KEY_PREFIX",
            format!("efs-iam-soak-{}:", std::process::id()),
        )
        .env("EFS_IAM_TOKEN_DEFAULT_LIFETIME", "10m")
        .env("EFS_IAM_TOKEN_MAX_LIFETIME", "10m")
        .env("EFS_IAM_OKTA_ORG_URL", okta.base_url())
        .env("EFS_IAM_OKTA_API_TOKEN", OKTA_TOKEN)
        .env("EFS_IAM_OKTA_RATE_SHARE", "0.5")
        .env("EFS_IAM_OKTA_EVENT_HOOK_SECRET", HOOK_SECRET)
        .env("EFS_IAM_OKTA_EVENT_RETENTION", "10m")
        .env("EFS_IAM_RECONCILE_INTERVAL", &args.reconcile_interval)
        .env("EFS_IAM_SYNC_POLL_INTERVAL", "500ms")
        .env("EFS_IAM_SYNC_INSTANCE_ID", format!("soak-{n}"))
        .spawn()
        .expect("start efs-iam (bench/soak builds it)");
    Instance { child, base }
}

/// nginx in front of the instances (round robin, keep-alive to them), on a free port.
fn start_nginx(out: &std::path::Path, instances: &[Instance]) -> (Nginx, String) {
    let dir = std::fs::canonicalize(out).unwrap().join("nginx");
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    let port = bench_common::free_port();
    let upstreams: String = instances
        .iter()
        .map(|i| format!("        server {};\n", i.base.trim_start_matches("http://")))
        .collect();
    let d = dir.display();
    let conf = format!(
        "daemon off;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n    access_log off;\n    client_body_temp_path {d}/tmp/body;\n    proxy_temp_path {d}/tmp/proxy;\n\
             fastcgi_temp_path {d}/tmp/fastcgi;\n    uwsgi_temp_path {d}/tmp/uwsgi;\n    scgi_temp_path {d}/tmp/scgi;\n\
             client_max_body_size 4m;\n    upstream efs_iam {{\n{upstreams}        keepalive 64;\n    }}\n\
             server {{\n        listen 127.0.0.1:{port};\n        location / {{\n            proxy_pass http://efs_iam;\n\
                     proxy_http_version 1.1;\n            proxy_set_header Connection \"\";\n            proxy_set_header Host $host;\n\
                     proxy_read_timeout 60s;\n        }}\n    }}\n}}\n"
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let child = Command::new("nginx")
        .args(["-p", &d.to_string(), "-c", &format!("{d}/nginx.conf")])
        .stdin(Stdio::null())
        .spawn()
        .expect("start nginx (bench/soak installs it)");
    (Nginx(child), format!("http://127.0.0.1:{port}"))
}

fn token_response(n: u64) -> Value {
    let blob = |len: usize, seed: u64| -> String {
        (0..len)
            .map(|i| (b'a' + ((i as u64 * 7 + seed) % 26) as u8) as char)
            .collect()
    };
    json!({
        "token_type": "Bearer", "expires_in": 3600, "scope": "openid email offline_access",
        "access_token": format!("eyJraWQiOiJ{}", blob(800, n)),
        "id_token": format!("eyJraWQiOiJ{}", blob(900, n + 1)),
        "refresh_token": blob(40, n + 2),
    })
}

fn profile(user: u64, generation: u64) -> Value {
    json!({"login": format!("soak{user}@example.com"), "email": format!("soak{user}@example.com"),
           "first_name": "Soak", "last_name": format!("User {user} {}", generation % 3)})
}

/// What the driver shares between its tasks.
struct Driver {
    http: reqwest::Client,
    base: String,
    records: Records,
    started: Instant,
    bucket: Duration,
    in_flight: tokio::sync::Semaphore,
    /// Okta user ids of the synced panelists: (user id, Okta user id).
    synced: Mutex<BTreeMap<u64, String>>,
    /// Users per mass delete.
    mass_delete: usize,
    /// The soak's database as EFS-Admin reaches it (its own tables: `panelists`).
    efs_db: sqlx::MySqlPool,
    /// Panelists the mass deletes deleted.
    deleted: Mutex<std::collections::HashSet<u64>>,
    /// Driver overruns by the second of the soak they happened in, to line a stall up
    /// with what ran then.
    overruns_at: Mutex<BTreeMap<u64, usize>>,
}

impl Driver {
    fn bucket_now(&self) -> usize {
        (self.started.elapsed().as_secs_f64() / self.bucket.as_secs_f64()) as usize
    }

    /// Sends one request of `op` and records its outcome and latency.
    async fn send(&self, op: Op, bucket: usize) -> Option<Value> {
        let synced_user = self.pick_panelist();
        let request = match op {
            Op::PortalLookup => self.http.get(format!(
                "{}/api/v1/portals/{LOOKED_UP}/user-references/{}",
                self.base,
                fastrand::i64(1..=SEEDED_REFERENCES)
            )),
            Op::AdminLookup => self.http.get(format!(
                "{}/api/v1/user-references/{}",
                self.base,
                fastrand::i64(1..=SEEDED_ADMINS)
            )),
            Op::TokenGet => self.http.get(format!(
                "{}/api/v1/sessions/soak-{}/token",
                self.base,
                fastrand::u64(0..SESSIONS)
            )),
            Op::TokenPut => {
                let n = fastrand::u64(0..SESSIONS);
                self.http
                    .put(format!("{}/api/v1/sessions/soak-{n}/token", self.base))
                    .json(&token_response(n))
            }
            Op::ErrorLogPage => self
                .http
                .get(format!("{}/api/v1/errors?limit=20", self.base)),
            Op::ErrorLogWrite => self.http.post(format!("{}/api/v1/errors", self.base)).json(
                &json!({"message": "Api validation failed: login", "status_code": 400,
                        "error_code": "E0000001", "trace": "POST /api/v1/users"}),
            ),
            Op::PortalUserSync => {
                let user = synced_user;
                self.http
                    .post(format!(
                        "{}/api/v1/sync/portals/{LINKED}/users/{}",
                        self.base,
                        SEEDED_REFERENCES as u64 + user
                    ))
                    .json(&profile(user, fastrand::u64(..)))
            }
            Op::HookDelivery => {
                let events: Vec<Value> = (0..10)
                    .map(|_| {
                        events::event(
                            "application.lifecycle.update",
                            vec![events::user_target(
                                "00uSOAK0000000000000",
                                "s@example.com",
                                "S",
                            )],
                        )
                    })
                    .collect();
                self.http
                    .post(format!("{}/hooks/okta/events", self.base))
                    .header("Authorization", HOOK_SECRET)
                    .json(
                        &json!({"eventType": "com.okta.event_hook", "cloudEventsVersion": "0.1",
                                  "data": {"events": events}}),
                    )
            }
            Op::MassDelete => unreachable!("sent by mass_delete with its users"),
            Op::ErrorLogPurge => {
                let before = (chrono::Utc::now() - chrono::Duration::minutes(2))
                    .format("%Y-%m-%dT%H:%M:%SZ")
                    .to_string();
                self.http
                    .delete(format!("{}/api/v1/errors", self.base))
                    .query(&[("before", before)])
            }
        };
        let body = self.exchange(op, bucket, request).await;
        if let (Op::ErrorLogPurge, Some(url)) =
            (op, body.as_ref().and_then(|b| b["status_url"].as_str()))
        {
            self.follow_purge(url.to_owned());
        }
        if let (Op::PortalUserSync, Some(id)) =
            (op, body.as_ref().and_then(|b| b["okta_user_id"].as_str()))
        {
            if self.deleted.lock().unwrap().contains(&synced_user) {
                return body;
            }
            self.synced
                .lock()
                .unwrap()
                .insert(synced_user, id.to_owned());
        }
        body
    }

    /// A panelist the mass deletes have not deleted (a deleted one never comes back).
    fn pick_panelist(&self) -> u64 {
        let deleted = self.deleted.lock().unwrap();
        loop {
            let user = fastrand::u64(1..=SYNC_USERS);
            if !deleted.contains(&user) {
                return user;
            }
        }
    }

    /// A mass delete as EFS-Admin makes one: the lowest synced panelists are queued
    /// for removal from the group, then deleted.
    async fn mass_delete(&self, bucket: usize) {
        let users: Vec<(u64, String)> = {
            let mut synced = self.synced.lock().unwrap();
            let users: Vec<(u64, String)> = synced
                .iter()
                .take(self.mass_delete)
                .map(|(u, id)| (*u, id.clone()))
                .collect();
            for (u, _) in &users {
                synced.remove(u);
            }
            users
        };
        if users.is_empty() {
            return;
        }
        self.deleted
            .lock()
            .unwrap()
            .extend(users.iter().map(|(u, _)| *u));
        let body: Vec<Value> = users
            .iter()
            .map(|(u, id)| json!({"user_id": SEEDED_REFERENCES as u64 + u, "okta_user_id": id}))
            .collect();
        let request = self
            .http
            .post(format!(
                "{}/api/v1/portals/{LINKED}/unassignments",
                self.base
            ))
            .json(&json!({ "users": body }));
        self.exchange(Op::MassDelete, bucket, request).await;
        // A sync of one of them sent just before they were marked is let finish.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let uids: Vec<u64> = users.iter().map(|(u, _)| *u).collect();
        self.delete_panelists(&uids).await;
    }

    /// What EFS-Admin does in a mass delete beside queueing the unassignments: it
    /// deletes the panelists in its own database, and their references go with them
    /// (the seed's `ON DELETE CASCADE`). Without it the linked portal kept every deleted
    /// panelist's reference, and each reconciliation looked up more and more of them in
    /// Okta as "missing members".
    async fn delete_panelists(&self, users: &[u64]) {
        if users.is_empty() {
            return;
        }
        let uids: Vec<String> = users
            .iter()
            .map(|u| (SEEDED_REFERENCES as u64 + u).to_string())
            .collect();
        let sql = format!("DELETE FROM panelists WHERE uid IN ({})", uids.join(","));
        if let Err(e) = sqlx::query(&sql).execute(&self.efs_db).await {
            eprintln!("  deleting the mass delete's panelists: {e}");
        }
    }

    /// Sends `request` and records its outcome and latency under `op`.
    /// A purge answers 202 and a worker does it: follows it to its end and prints how
    /// long it took and what it deleted (driver.log lines it up with the host trace).
    fn follow_purge(&self, status_url: String) {
        let (http, url) = (self.http.clone(), format!("{}{status_url}", self.base));
        let asked = Instant::now();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let Ok(res) = http.get(&url).send().await else {
                    continue;
                };
                let Ok(purge) = res.json::<Value>().await else {
                    continue;
                };
                if let Some(end @ ("succeeded" | "failed")) = purge["state"].as_str() {
                    eprintln!(
                        "  error-log purge {end}: {} entries in {:.1} s ({url})",
                        purge["deleted"],
                        asked.elapsed().as_secs_f64()
                    );
                    return;
                }
            }
        });
    }

    async fn exchange(
        &self,
        op: Op,
        bucket: usize,
        request: reqwest::RequestBuilder,
    ) -> Option<Value> {
        let Ok(_permit) = self.in_flight.try_acquire() else {
            self.records.push(op, bucket, Outcome::DriverOverrun, 0.0);
            let second = self.started.elapsed().as_secs();
            *self.overruns_at.lock().unwrap().entry(second).or_default() += 1;
            return None;
        };
        let sent = Instant::now();
        let answer = request.send().await;
        let (outcome, body) = match answer {
            Err(_) => (Outcome::Transport, None),
            Ok(res) => {
                let status = res.status().as_u16();
                let body = res.json::<Value>().await.ok();
                let outcome = match status {
                    200..=299 => Outcome::Ok,
                    404 if op == Op::TokenGet => Outcome::NotFound,
                    400..=499 => Outcome::ClientError,
                    _ => Outcome::ServerError,
                };
                if outcome.failed() {
                    eprintln!("  {op:?}: {status} {}", body.clone().unwrap_or(Value::Null));
                }
                (outcome, body)
            }
        };
        let ms = sent.elapsed().as_secs_f32() * 1000.0;
        self.records.push(op, bucket, outcome, ms);
        body
    }
}

/// Sends `op` every `every` until `until`, open loop (a task per request).
fn schedule(
    driver: Arc<Driver>,
    op: Op,
    every: Duration,
    until: Instant,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let end = tokio::time::Instant::from_std(until);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = tokio::time::sleep_until(end) => break,
            }
            let d = driver.clone();
            let bucket = d.bucket_now();
            tokio::spawn(async move {
                d.send(op, bucket).await;
            });
        }
    })
}

async fn seed(db_url: &str) {
    let db = sqlx::MySqlPool::connect(db_url).await.unwrap();
    let total = SEEDED_REFERENCES as u64 + SYNC_USERS;
    for statement in [
        format!("INSERT INTO panelists (uid) SELECT seq FROM seq_1_to_{total}"),
        format!("INSERT INTO users (uid) SELECT seq FROM seq_1_to_{SEEDED_ADMINS}"),
        format!(
            "INSERT INTO iam_portal_user_reference (portal_id, user_id, uuid, created_at, updated_at, status, has_data_changes) \
             SELECT {LOOKED_UP}, seq, CONCAT('00u', LPAD(seq, 17, '0')), UTC_TIMESTAMP(), UTC_TIMESTAMP(), 1, 0 \
             FROM seq_1_to_{SEEDED_REFERENCES}"
        ),
        format!(
            "INSERT INTO iam_user_reference (user_id, uuid, created_at, updated_at) \
             SELECT seq, CONCAT('00a', LPAD(seq, 17, '0')), UTC_TIMESTAMP(), UTC_TIMESTAMP() \
             FROM seq_1_to_{SEEDED_ADMINS}"
        ),
    ] {
        sqlx::query(&statement).execute(&db).await.unwrap();
    }
    db.close().await;
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    std::fs::create_dir_all(&args.out).unwrap();
    let admin = bench_common::admin_url(&args.mysql_admin_url)
        .expect("the soak runs on MariaDB: TEST_MYSQL_URL or --mysql-admin-url");
    let okta = FakeOkta::start(FakeOktaConfig {
        api_token: Some(OKTA_TOKEN.into()),
        rate_limit: args.okta_rate_limit,
        window: Duration::from_secs(60),
        latency: Duration::from_millis(args.okta_latency_ms),
        max_recorded_requests: 1_000_000,
        everyone_group: false,
        ..FakeOktaConfig::default()
    })
    .await;
    let name = format!("efs_iam_soak_{}", std::process::id());
    let db_url = bench_common::fresh_database(&admin, &name).await;
    let keys = (format!("soak:{}", base64_key()), base64_key());
    let mut instances = vec![start_instance(&args, &db_url, &okta, 0, &keys)];
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    assert!(
        bench_common::wait_ready(&http, &instances[0].base, 600).await,
        "instance 0 ready"
    );
    seed(&db_url).await;
    for n in 1..args.instances {
        let instance = start_instance(&args, &db_url, &okta, n, &keys);
        assert!(
            bench_common::wait_ready(&http, &instance.base, 600).await,
            "instance {n} ready"
        );
        instances.push(instance);
    }
    let (_nginx, base) = start_nginx(&args.out, &instances);
    assert!(
        bench_common::wait_ready(&http, &base, 100).await,
        "nginx in front"
    );
    let token = efs_iam::auth::mint_hs256(
        &secrecy::SecretString::from(SECRET.to_owned()),
        ISSUER,
        AUDIENCE,
        "bench-soak",
        &[
            "iam:read",
            "iam:write",
            "iam:sync",
            "iam:tokens",
            "iam:admin",
        ],
        Duration::from_secs(args.minutes * 60 + 3600),
    )
    .unwrap();
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    let api = reqwest::Client::builder()
        .default_headers(headers)
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(512)
        .build()
        .unwrap();
    let group = okta.create_group("Soak portal");
    let res = api
        .put(format!(
            "{base}/api/v1/portals/{LINKED}/settings/okta_group_id"
        ))
        .json(&json!({"value": group}))
        .send()
        .await
        .unwrap();
    assert!(
        res.status().is_success(),
        "{}",
        res.text().await.unwrap_or_default()
    );

    let driver = Arc::new(Driver {
        http: api,
        base: base.clone(),
        records: Records::default(),
        started: Instant::now(),
        bucket: Duration::from_secs(args.bucket_minutes * 60),
        in_flight: tokio::sync::Semaphore::new(MAX_IN_FLIGHT),
        synced: Mutex::new(BTreeMap::new()),
        mass_delete: args.mass_delete,
        efs_db: sqlx::MySqlPool::connect(&db_url).await.unwrap(),
        deleted: Mutex::new(Default::default()),
        overruns_at: Mutex::new(BTreeMap::new()),
    });
    // Every session exists before the soak (memcached keeps them up to 10 minutes; the
    // writes of the mix renew them).
    for chunk in (0..SESSIONS).collect::<Vec<_>>().chunks(64) {
        let puts = chunk.iter().map(|n| {
            driver
                .http
                .put(format!("{base}/api/v1/sessions/soak-{n}/token"))
                .json(&token_response(*n))
                .send()
        });
        for res in futures::future::join_all(puts).await {
            assert!(
                res.is_ok_and(|r| r.status().is_success()),
                "a session written"
            );
        }
    }

    // --- capacity probe ---
    let probe_until = Instant::now() + Duration::from_secs(args.probe_seconds);
    let mut probes = Vec::new();
    for _ in 0..32 {
        let d = driver.clone();
        probes.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < probe_until {
                let pick = fastrand::f64();
                let mut acc = 0.0;
                let op = MIX
                    .iter()
                    .find(|(_, share)| {
                        acc += share;
                        pick < acc
                    })
                    .map_or(Op::PortalLookup, |(op, _)| *op);
                d.send(op, usize::MAX).await;
                n += 1;
            }
            n
        }));
    }
    let mut probed = 0;
    for p in probes {
        probed += p.await.unwrap();
    }
    let capacity = probed as f64 / args.probe_seconds as f64;
    let rate = args.rate.unwrap_or(capacity / 2.0);
    driver.records.0.lock().unwrap().clear();
    driver.overruns_at.lock().unwrap().clear();
    eprintln!("capacity of the API mix through nginx: {capacity:.0} req/s; the soak sends {rate:.0} req/s");

    // --- soak ---
    let soak_started = Instant::now();
    let driver = Arc::new(Driver {
        started: soak_started,
        ..Arc::into_inner(driver).expect("the probe's tasks are done")
    });
    let until = soak_started + Duration::from_secs(args.minutes * 60);
    let mut tasks = Vec::new();
    for (op, share) in MIX {
        tasks.push(schedule(
            driver.clone(),
            op,
            Duration::from_secs_f64(1.0 / (rate * share)),
            until,
        ));
    }
    tasks.push(schedule(
        driver.clone(),
        Op::PortalUserSync,
        Duration::from_secs_f64(1.0 / args.syncs_per_second),
        until,
    ));
    tasks.push(schedule(
        driver.clone(),
        Op::HookDelivery,
        Duration::from_secs_f64(1.0 / args.hooks_per_second),
        until,
    ));
    tasks.push(schedule(
        driver.clone(),
        Op::ErrorLogPurge,
        Duration::from_secs(300),
        until,
    ));
    // The first mass delete after the first interval, when syncs have made users.
    {
        let d = driver.clone();
        let every = Duration::from_secs(args.mass_delete_every * 60);
        tasks.push(tokio::spawn(async move {
            let end = tokio::time::Instant::from_std(until);
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = tokio::time::sleep_until(end) => break,
                }
                let bucket = d.bucket_now();
                d.mass_delete(bucket).await;
            }
        }));
    }

    let admin_pool = sqlx::MySqlPool::connect(&admin).await.unwrap();
    let mut samples: Vec<Sample> = Vec::new();
    let (mut okta_calls, mut okta_429) = (0usize, 0usize);
    let sampler_http = reqwest::Client::new();
    while Instant::now() < until {
        tokio::time::sleep(SAMPLE_EVERY).await;
        let records = okta.requests();
        okta.clear_requests();
        okta_calls += records.len();
        okta_429 += records.iter().filter(|r| r.status == Some(429)).count();
        let mut pools = Vec::new();
        for i in &instances {
            pools.push(pool_connections(&sampler_http, &i.base).await);
        }
        let threads: (String, String) =
            sqlx::query_as("SHOW GLOBAL STATUS LIKE 'Threads_connected'")
                .fetch_one(&admin_pool)
                .await
                .unwrap();
        let sample = Sample {
            at_s: soak_started.elapsed().as_secs_f64(),
            rss_mib: instances
                .iter()
                .map(|i| proc_status_mib(i.child.id(), "VmRSS:"))
                .collect(),
            rss_anon_mib: instances
                .iter()
                .map(|i| proc_status_mib(i.child.id(), "RssAnon:"))
                .collect(),
            open_files: instances.iter().map(|i| open_files(i.child.id())).collect(),
            pool_connections: pools,
            mariadb_threads_connected: threads.1.parse().unwrap_or(-1),
            okta_calls,
            okta_429,
        };
        if samples.len().is_multiple_of(30) {
            eprintln!("  {:.0} s: {sample:?}", sample.at_s);
        }
        samples.push(sample);
    }
    for t in tasks {
        let _ = t.await;
    }
    // The last requests answer.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let status: Value = driver
        .http
        .get(format!("{base}/api/v1/sync/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap_or(Value::Null);
    report(
        &args,
        rate,
        capacity,
        &driver.records.0.lock().unwrap(),
        &driver.overruns_at.lock().unwrap(),
        &samples,
        &status,
    );
    drop(instances);
    bench_common::drop_database(&admin, &name).await;
}

fn base64_key() -> String {
    use base64::Engine;
    let bytes: Vec<u8> = (0..32).map(|_| fastrand::u8(..)).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn report(
    args: &Args,
    rate: f64,
    capacity: f64,
    records: &[Record],
    overruns_at: &BTreeMap<u64, usize>,
    samples: &[Sample],
    status: &Value,
) {
    let ops: Vec<Op> = {
        let mut v: Vec<Op> = records.iter().map(|r| r.op).collect();
        v.sort();
        v.dedup();
        v
    };
    // Requests answered after the last full bucket (those in flight at the end) are
    // counted above but make no bucket of their own.
    let buckets = records
        .iter()
        .map(|r| r.bucket + 1)
        .max()
        .unwrap_or(0)
        .min(args.minutes.div_ceil(args.bucket_minutes) as usize);
    println!(
        "Soak of {} minutes: {rate:.0} req/s of the API mix (capacity probed: {capacity:.0} req/s), \
         {} syncs/s, {} hook deliveries/s, a mass delete of {} every {} minutes, {} instances behind nginx.",
        args.minutes, args.syncs_per_second, args.hooks_per_second, args.mass_delete, args.mass_delete_every, args.instances
    );
    println!();
    println!("| operation | requests | ok | 404 (expired token) | 4xx | 5xx | no answer | driver overrun |");
    println!("|---|---|---|---|---|---|---|---|");
    let mut failed = 0;
    for op in &ops {
        let count = |o: Outcome| {
            records
                .iter()
                .filter(|r| r.op == *op && r.outcome == o)
                .count()
        };
        let total = records.iter().filter(|r| r.op == *op).count();
        failed += records
            .iter()
            .filter(|r| r.op == *op && r.outcome.failed())
            .count();
        println!(
            "| {op:?} | {total} | {} | {} | {} | {} | {} | {} |",
            count(Outcome::Ok),
            count(Outcome::NotFound),
            count(Outcome::ClientError),
            count(Outcome::ServerError),
            count(Outcome::Transport),
            count(Outcome::DriverOverrun)
        );
    }
    println!();
    println!("failed requests: {failed} of {}", records.len());
    let overruns: Vec<String> = (0..=records.iter().map(|r| r.bucket).max().unwrap_or(0))
        .filter_map(|b| {
            let n = records
                .iter()
                .filter(|r| r.bucket == b && r.outcome == Outcome::DriverOverrun)
                .count();
            (n > 0).then(|| format!("{n} in bucket {b}"))
        })
        .collect();
    if !overruns.is_empty() {
        println!(
            "driver overruns ({MAX_IN_FLIGHT} requests in flight): {}",
            overruns.join(", ")
        );
        let at: Vec<String> = overruns_at
            .iter()
            .map(|(second, n)| format!("{second} s ({n})"))
            .collect();
        println!("  at (seconds after the soak's start): {}", at.join(", "));
    }
    println!();
    let header: Vec<String> = (0..buckets)
        .map(|b| {
            format!(
                "{}–{} min",
                b as u64 * args.bucket_minutes,
                (b as u64 + 1) * args.bucket_minutes
            )
        })
        .collect();
    println!("p50 / p99 ms per {}-minute bucket:", args.bucket_minutes);
    println!();
    println!(
        "| operation | {} | last p99 / first p99 |",
        header.join(" | ")
    );
    println!("|---|{}---|", "---|".repeat(buckets));
    let mut csv = String::from("bucket_start_min");
    for op in &ops {
        csv.push_str(&format!(",{op:?}_p50,{op:?}_p99"));
    }
    csv.push('\n');
    let mut table: Vec<Vec<(f64, f64)>> = Vec::new();
    for op in &ops {
        let mut row = Vec::new();
        for b in 0..buckets {
            let mut ms: Vec<f32> = records
                .iter()
                .filter(|r| r.op == *op && r.bucket == b && !r.outcome.failed())
                .map(|r| r.ms)
                .collect();
            ms.sort_by(f32::total_cmp);
            row.push((percentile(&ms, 0.5), percentile(&ms, 0.99)));
        }
        let cells: Vec<String> = row
            .iter()
            .map(|(p50, p99)| format!("{p50:.1} / {p99:.1}"))
            .collect();
        let ratio = match (row.first(), row.last()) {
            (Some(f), Some(l)) if buckets > 1 => format!("{:.2}", l.1 / f.1),
            _ => "-".into(),
        };
        println!("| {op:?} | {} | {ratio} |", cells.join(" | "));
        table.push(row);
    }
    for b in 0..buckets {
        csv.push_str(&format!("{}", b as u64 * args.bucket_minutes));
        for row in &table {
            csv.push_str(&format!(",{:.3},{:.3}", row[b].0, row[b].1));
        }
        csv.push('\n');
    }
    std::fs::write(args.out.join("latency.csv"), csv).unwrap();

    let mut csv = String::from("minute");
    for i in 0..args.instances {
        csv.push_str(&format!(",rss_mib_{i},open_files_{i},pool_connections_{i}"));
    }
    csv.push_str(",mariadb_threads_connected,okta_calls,okta_429");
    for i in 0..args.instances {
        csv.push_str(&format!(",rss_anon_mib_{i}"));
    }
    csv.push('\n');
    for s in samples {
        csv.push_str(&format!("{:.2}", s.at_s / 60.0));
        for i in 0..args.instances {
            csv.push_str(&format!(
                ",{:.2},{},{}",
                s.rss_mib[i], s.open_files[i], s.pool_connections[i]
            ));
        }
        csv.push_str(&format!(
            ",{},{},{}",
            s.mariadb_threads_connected, s.okta_calls, s.okta_429
        ));
        for anon in &s.rss_anon_mib {
            csv.push_str(&format!(",{anon:.2}"));
        }
        csv.push('\n');
    }
    std::fs::write(args.out.join("processes.csv"), csv).unwrap();
    println!();
    println!(
        "Processes (every 10 s; min / max after the first {} minutes of warm-up):",
        args.bucket_minutes
    );
    println!();
    let warm: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.at_s >= (args.bucket_minutes * 60) as f64)
        .collect();
    let span = |f: &dyn Fn(&Sample) -> f64| -> (f64, f64) {
        warm.iter()
            .map(|s| f(s))
            .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)))
    };
    println!("| figure | min | max | max / min |");
    println!("|---|---|---|---|");
    for i in 0..args.instances {
        let (lo, hi) = span(&|s| s.rss_mib[i]);
        println!(
            "| RSS MiB, instance {i} | {lo:.1} | {hi:.1} | {:.3} |",
            hi / lo
        );
        let (lo, hi) = span(&|s| s.rss_anon_mib[i]);
        println!(
            "| of it anonymous (heap) MiB, instance {i} | {lo:.1} | {hi:.1} | {:.3} |",
            hi / lo
        );
        let (lo, hi) = span(&|s| s.open_files[i] as f64);
        println!(
            "| open files, instance {i} | {lo:.0} | {hi:.0} | {:.3} |",
            hi / lo
        );
        let (lo, hi) = span(&|s| s.pool_connections[i]);
        println!(
            "| database pool connections, instance {i} | {lo:.0} | {hi:.0} | {:.3} |",
            hi / lo
        );
    }
    let (lo, hi) = span(&|s| s.mariadb_threads_connected as f64);
    println!(
        "| MariaDB Threads_connected | {lo:.0} | {hi:.0} | {:.3} |",
        hi / lo
    );
    if let Some(last) = samples.last() {
        println!();
        println!(
            "Okta: {} calls, {} answered 429.",
            last.okta_calls, last.okta_429
        );
    }
    println!();
    println!(
        "After the soak (/sync/status): unassignments {}, jobs {}, workers {}",
        status["unassignments"], status["jobs"], status["workers"]
    );
    plot(args, &ops);
}

/// PNGs of the trends with gnuplot (bench/soak installs it).
fn plot(args: &Args, ops: &[Op]) {
    let out = std::fs::canonicalize(&args.out).unwrap();
    let o = out.display();
    let mut latency = format!(
        "set terminal png size 1000,500\nset termoption noenhanced\nset output '{o}/soak-latency-p99.png'\nset datafile separator ','\n\
         set key outside right\nset xlabel 'minute'\nset ylabel 'p99 ms'\nset logscale y\n\
         set title 'efs-iam soak: p99 per operation per {}-minute bucket'\nplot ",
        args.bucket_minutes
    );
    let lines: Vec<String> = ops
        .iter()
        .enumerate()
        .map(|(i, op)| {
            format!(
                "'{o}/latency.csv' using 1:{} with linespoints title '{op:?}'",
                3 + 2 * i
            )
        })
        .collect();
    latency.push_str(&lines.join(", "));
    latency.push('\n');
    let mut processes = format!(
        "set terminal png size 1000,700\nset termoption noenhanced\nset output '{o}/soak-processes.png'\nset datafile separator ','\n\
         set key outside right\nset multiplot layout 2,1 title 'efs-iam soak: processes over time'\n\
         set xlabel 'minute'\nset ylabel 'RSS MiB'\nset yrange [0:*]\nplot "
    );
    let rss: Vec<String> = (0..args.instances)
        .flat_map(|i| {
            [
                format!(
                    "'{o}/processes.csv' every ::1 using 1:{} with lines title 'RSS instance {i}'",
                    2 + 3 * i
                ),
                // After minute, the instances' columns, Threads_connected and the two
                // Okta counts.
                format!(
                    "'{o}/processes.csv' every ::1 using 1:{} with lines dashtype 2 title 'of it heap (RssAnon) {i}'",
                    5 + 3 * args.instances + i
                ),
            ]
        })
        .collect();
    processes.push_str(&rss.join(", "));
    processes.push_str("\nset ylabel 'count'\nplot ");
    let mut counts: Vec<String> = (0..args.instances)
        .flat_map(|i| {
            [
                format!("'{o}/processes.csv' every ::1 using 1:{} with lines title 'open files {i}'", 3 + 3 * i),
                format!("'{o}/processes.csv' every ::1 using 1:{} with lines title 'pool connections {i}'", 4 + 3 * i),
            ]
        })
        .collect();
    counts.push(format!(
        "'{o}/processes.csv' every ::1 using 1:{} with lines title 'MariaDB Threads_connected'",
        2 + 3 * args.instances
    ));
    processes.push_str(&counts.join(", "));
    processes.push_str("\nunset multiplot\n");
    for (name, script) in [("latency", latency), ("processes", processes)] {
        let path = out.join(format!("{name}.gnuplot"));
        std::fs::write(&path, script).unwrap();
        match Command::new("gnuplot").arg(&path).status() {
            Ok(s) if s.success() => eprintln!(
                "plot: {o}/soak-{}.png",
                if name == "latency" {
                    "latency-p99"
                } else {
                    "processes"
                }
            ),
            other => eprintln!("gnuplot failed for {name}: {other:?}"),
        }
    }
}
