//! Benchmark of the sync engine (not a test): the `efs-iam` binary as a child process
//! against a fake Okta with per-call latency and a rate-limited bucket, served by this
//! process over HTTP so it can count what reaches "Okta".
//!
//! Phases:
//!
//! 1. **Sequential baseline**, as EFS's PHP does it today: one call at a time against
//!    the same fake (GET by login, POST user, PUT membership per user; one DELETE per
//!    removal), on a sample, giving users/s and removals/s.
//! 2. **Batch sync**: `POST /sync/portals/{id}/users` with `--users` users, until the
//!    job has finished.
//! 3. **Unassignment drain**: `--unassignments` rows enqueued through the API (10,000
//!    per call), until the queue is empty. The rows name the phase-2 users in turn (the
//!    fake's user store is a linear scan, too slow for 100,000 users of its own), so
//!    every call is a real `DELETE` answered 204.
//!
//! Reported per phase: wall time, throughput, Okta calls and the achieved call rate of
//! the busiest bucket against the governor's budget (`rate share × limit / window`),
//! the share of calls answered 429 (as efs-iam counted them), efs-iam's peak RSS
//! (`VmHWM`), and the speed-up over the sequential baseline.
//!
//! With `--instances N`, N efs-iam processes share the database (MariaDB) and the
//! fake's buckets, and every one runs the workers: the budget is then shared through
//! Okta's `X-Rate-Limit-Remaining` alone. Requests from this driver go to the first
//! instance. Also reported then: each instance's peak RSS, the 429s the fake answered,
//! and the drain's `DELETE`s answered 2xx against the rows enqueued (a row removed
//! twice would show as a surplus).
//!
//! Run it through `scripts/bench-sync` (release build, defaults from the brief: 50 ms
//! latency, 600 requests per 6 s window, 10,000 users, 100,000 removals).

#[path = "bench_common/mod.rs"]
mod bench_common;
#[path = "bench_common/governor_trace.rs"]
mod governor_trace;

use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use clap::Parser;
use fake_okta::{FakeOkta, FakeOktaConfig};
use serde_json::{json, Value};

#[derive(Parser, Debug)]
struct Args {
    /// Portal users synced in one batch job.
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    /// Unassignment rows drained.
    #[arg(long, default_value_t = 100_000)]
    unassignments: usize,
    /// Requests per bucket per window at the fake Okta.
    #[arg(long, default_value_t = 600)]
    rate_limit: u32,
    /// Rate-limit window in seconds (Okta's is 60).
    #[arg(long, default_value_t = 6)]
    window_secs: u64,
    /// Latency the fake adds to every call.
    #[arg(long, default_value_t = 50)]
    latency_ms: u64,
    /// EFS_IAM_OKTA_RATE_SHARE for efs-iam.
    #[arg(long, default_value = "0.5")]
    rate_share: String,
    /// EFS_IAM_SYNC_BATCH_SIZE / EFS_IAM_SYNC_CONCURRENCY / EFS_IAM_OKTA_MAX_CONCURRENCY.
    #[arg(long, default_value_t = 200)]
    batch_size: u32,
    #[arg(long, default_value_t = 32)]
    concurrency: u32,
    #[arg(long, default_value_t = 10)]
    okta_concurrency: u32,
    /// Users (and removals) of the sequential baseline sample.
    #[arg(long, default_value_t = 100)]
    baseline_users: usize,
    /// `mysql://…` admin URL: a fresh database is created there (default:
    /// TEST_MYSQL_URL; without either, SQLite in a temporary directory).
    #[arg(long)]
    mysql_admin_url: Option<String>,
    /// The efs-iam binary to measure.
    #[arg(long, default_value = "target/release/efs-iam")]
    bin: PathBuf,
    /// efs-iam instances sharing the database and Okta's budget (more than one needs
    /// MariaDB).
    #[arg(long, default_value_t = 1)]
    instances: usize,
    /// Write the figures as JSON here too.
    #[arg(long)]
    json: Option<PathBuf>,
}

const TOKEN: &str = "bench-token";
const PORTAL: i32 = 1;
const ROUTES: [(&str, &str, &str); 5] = [
    // The managed-user boundary's privileged-user check, before every write.
    ("GET", "/api/v1/users/{id}/roles", "other_api"),
    ("GET", "/api/v1/users/{id}", "user_get"),
    ("POST", "/api/v1/users", "users_create_list"),
    ("PUT", "/api/v1/groups/{groupId}/users/{userId}", "groups"),
    (
        "DELETE",
        "/api/v1/groups/{groupId}/users/{userId}",
        "groups",
    ),
];

struct Service {
    child: Child,
    base: String,
    http: reqwest::Client,
}

impl Service {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(method, format!("{}/api/v1{path}", self.base));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("efs-iam answers");
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// Peak resident set size so far, in KiB.
    fn peak_rss_kib(&self) -> u64 {
        bench_common::peak_rss_kib(self.child.id())
    }

    /// 429s efs-iam has seen, all buckets (from /sync/status).
    async fn seen_429(&self) -> u64 {
        let status = self.call(reqwest::Method::GET, "/sync/status", None).await;
        status["okta"]["buckets"]
            .as_array()
            .map(|b| {
                b.iter()
                    .map(|b| {
                        b["rate_limited"].as_u64().unwrap_or(0)
                            + b["concurrency_limited"].as_u64().unwrap_or(0)
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn calls(okta: &FakeOkta) -> Vec<usize> {
    ROUTES
        .iter()
        .map(|(m, r, _)| okta.request_count(m, r))
        .collect()
}

#[derive(Debug, serde::Serialize)]
struct Phase {
    name: &'static str,
    instances: usize,
    items: usize,
    seconds: f64,
    per_second: f64,
    okta_calls: usize,
    answered_429: u64,
    share_429: f64,
    busiest_bucket: &'static str,
    busiest_bucket_calls_per_second: f64,
    budget_calls_per_second: f64,
    budget_used: f64,
    /// The largest of the instances' peak RSS.
    peak_rss_mib: f64,
    peak_rss_mib_per_instance: Vec<f64>,
    sequential_per_second: f64,
    speed_up: f64,
    /// What the fake answered in the phase: 429s, and (drain) DELETEs answered 2xx.
    okta_429: usize,
    okta_deletes_2xx: usize,
}

/// The fake's record of the phase (it keeps every request of one phase):
/// (429 answers, DELETEs of a group member answered 2xx).
fn okta_answers(okta: &FakeOkta) -> (usize, usize) {
    let records = okta.requests();
    let answered_429 = records.iter().filter(|r| r.status == Some(429)).count();
    let deletes = records
        .iter()
        .filter(|r| {
            r.method == "DELETE"
                && r.route == "/api/v1/groups/{groupId}/users/{userId}"
                && r.status.is_some_and(|s| (200..300).contains(&s))
        })
        .count();
    (answered_429, deletes)
}

/// Where a phase starts: the fake's call counts and the 429s the instances have seen.
struct PhaseStart {
    calls: Vec<usize>,
    seen_429: u64,
}

impl PhaseStart {
    async fn now(okta: &FakeOkta, svcs: &[Service]) -> Self {
        Self {
            calls: calls(okta),
            seen_429: seen_429_all(svcs).await,
        }
    }
}

/// What a phase of `items` took `elapsed` to do, read from the fake and the instances
/// at its end.
async fn phase(
    (name, items, elapsed): (&'static str, usize, Duration),
    start: &PhaseStart,
    (okta, svcs): (&FakeOkta, &[Service]),
    budget: f64,
    sequential: f64,
) -> Phase {
    let answered_429 = seen_429_all(svcs).await - start.seen_429;
    let rss_kib: Vec<u64> = svcs.iter().map(Service::peak_rss_kib).collect();
    let okta_answers = okta_answers(okta);
    let seconds = elapsed.as_secs_f64();
    let delta: Vec<usize> = calls(okta)
        .iter()
        .zip(&start.calls)
        .map(|(a, b)| a - b)
        .collect();
    let okta_calls: usize = delta.iter().sum();
    let mut per_bucket: Vec<(&'static str, usize)> = Vec::new();
    for (i, (_, _, bucket)) in ROUTES.iter().enumerate() {
        match per_bucket.iter_mut().find(|(b, _)| b == bucket) {
            Some((_, n)) => *n += delta[i],
            None => per_bucket.push((bucket, delta[i])),
        }
    }
    let (busiest_bucket, busiest) = per_bucket
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .unwrap_or(("-", 0));
    let busiest_rate = busiest as f64 / seconds;
    let per_second = items as f64 / seconds;
    let rss: Vec<f64> = rss_kib.iter().map(|k| *k as f64 / 1024.0).collect();
    Phase {
        name,
        instances: rss.len(),
        items,
        seconds,
        per_second,
        okta_calls,
        answered_429,
        share_429: answered_429 as f64 / okta_calls.max(1) as f64,
        busiest_bucket,
        busiest_bucket_calls_per_second: busiest_rate,
        budget_calls_per_second: budget,
        budget_used: busiest_rate / budget,
        peak_rss_mib: rss.iter().copied().fold(0.0, f64::max),
        peak_rss_mib_per_instance: rss,
        sequential_per_second: sequential,
        speed_up: per_second / sequential,
        okta_429: okta_answers.0,
        okta_deletes_2xx: okta_answers.1,
    }
}

async fn sequential_baseline(okta: &FakeOkta, n: usize) -> (f64, f64) {
    let http = reqwest::Client::new();
    let base = okta.base_url();
    let group = okta.create_group("Sequential baseline");
    let auth = format!("SSWS {TOKEN}");
    let send = |request: reqwest::RequestBuilder| {
        let request = request.header("authorization", &auth);
        async move { request.send().await.unwrap() }
    };
    let started = Instant::now();
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let login = format!("seq{i}@example.com");
        let found = send(http.get(format!("{base}/api/v1/users/{login}"))).await;
        assert_eq!(found.status(), 404);
        let profile = json!({"login": login, "email": login, "firstName": "S", "lastName": "Q"});
        let create = http
            .post(format!("{base}/api/v1/users?activate=true"))
            .json(&json!({ "profile": profile }));
        let created: Value = send(create).await.json().await.unwrap();
        let id = created["id"].as_str().expect("created").to_owned();
        let member = format!("{base}/api/v1/groups/{group}/users/{id}");
        assert_eq!(send(http.put(member)).await.status(), 204);
        ids.push(id);
    }
    let users_per_second = n as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for id in &ids {
        let member = format!("{base}/api/v1/groups/{group}/users/{id}");
        assert_eq!(send(http.delete(member)).await.status(), 204);
    }
    let removals_per_second = n as f64 / started.elapsed().as_secs_f64();
    (users_per_second, removals_per_second)
}

async fn database(args: &Args, dir: &std::path::Path) -> (String, Option<sqlx::MySqlPool>) {
    let Some(admin) = bench_common::admin_url(&args.mysql_admin_url) else {
        return (format!("sqlite:{}", dir.join("bench.db").display()), None);
    };
    let name = format!("efs_iam_bench_{}", std::process::id());
    let url = bench_common::fresh_database(&admin, &name).await;
    let db = sqlx::MySqlPool::connect(&url).await.unwrap();
    (url, Some(db))
}

/// 429s all instances have seen.
async fn seen_429_all(svcs: &[Service]) -> u64 {
    let mut n = 0;
    for svc in svcs {
        n += svc.seen_429().await;
    }
    n
}

/// Starts efs-iam instance `n` against the database and the fake Okta.
fn start_instance(
    args: &Args,
    db_url: &str,
    okta: &FakeOkta,
    dir: &std::path::Path,
    n: usize,
) -> Service {
    let (mut command, base) =
        bench_common::efs_iam_serve(&args.bin, db_url, &dir.join(format!("efs-iam-{n}.log")));
    let child = command
        .env("EFS_IAM_DATABASE_MAX_CONNECTIONS", "20")
        .env("EFS_IAM_OKTA_ORG_URL", okta.base_url())
        .env("EFS_IAM_OKTA_API_TOKEN", TOKEN)
        .env("EFS_IAM_OKTA_RATE_SHARE", &args.rate_share)
        .env(
            "EFS_IAM_OKTA_MAX_CONCURRENCY",
            args.okta_concurrency.to_string(),
        )
        .env("EFS_IAM_SYNC_BATCH_SIZE", args.batch_size.to_string())
        .env("EFS_IAM_SYNC_CONCURRENCY", args.concurrency.to_string())
        .env("EFS_IAM_SYNC_POLL_INTERVAL", "200ms")
        .env("EFS_IAM_SYNC_ACTIVATE_USERS", "true")
        .env("EFS_IAM_SYNC_INSTANCE_ID", format!("bench-{n}"))
        .spawn()
        .expect("start efs-iam (build it with cargo build --release first)");
    Service {
        child,
        base,
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .unwrap(),
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let window = Duration::from_secs(args.window_secs);
    let okta = FakeOkta::start(FakeOktaConfig {
        api_token: Some(TOKEN.into()),
        rate_limit: args.rate_limit,
        window,
        latency: Duration::from_millis(args.latency_ms),
        // Every request of a phase, to count 429s and the drain's DELETEs and to
        // rebuild the fake's windows (which need the phase's first request): each
        // removal is two calls (the privileged-user check of the managed-user
        // boundary, then the DELETE), each sync about four.
        max_recorded_requests: (args.unassignments * 2 + args.users * 4) * 11 / 10 + 10_000,
        everyone_group: false,
        ..FakeOktaConfig::default()
    })
    .await;
    let share: f64 = args.rate_share.parse().expect("a rate share");
    let allowance = ((f64::from(args.rate_limit) * share).floor()).max(1.0);
    let budget = allowance / args.window_secs as f64;
    eprintln!(
        "fake Okta at {} ({} ms per call, {} requests per {} s per bucket); efs-iam budget {:.1} calls/s per bucket",
        okta.base_url(),
        args.latency_ms,
        args.rate_limit,
        args.window_secs,
        budget
    );

    let (seq_users, seq_removals) = sequential_baseline(&okta, args.baseline_users).await;
    eprintln!(
        "sequential baseline: {seq_users:.2} users/s, {seq_removals:.2} removals/s ({} users)",
        args.baseline_users
    );
    // Let the baseline's windows end before efs-iam starts.
    tokio::time::sleep(window + Duration::from_secs(2)).await;

    let dir = tempfile::tempdir().unwrap();
    let (db_url, mysql) = database(&args, dir.path()).await;
    assert!(
        args.instances == 1 || mysql.is_some(),
        "--instances above 1 needs MariaDB (TEST_MYSQL_URL or --mysql-admin-url)"
    );
    // The first instance migrates the database; the others start once it is ready.
    let mut svcs: Vec<Service> = Vec::new();
    for n in 0..args.instances.max(1) {
        let svc = start_instance(&args, &db_url, &okta, dir.path(), n);
        bench_common::wait_ready(&svc.http, &svc.base, 300).await;
        svcs.push(svc);
    }
    let svc = &svcs[0];
    if let Some(db) = &mysql {
        // The EFS core rows the portal references point at.
        for chunk in (1..=args.users as i64).collect::<Vec<_>>().chunks(1000) {
            let values = chunk
                .iter()
                .map(|i| format!("({i})"))
                .collect::<Vec<_>>()
                .join(",");
            sqlx::query(&format!(
                "INSERT IGNORE INTO panelists (uid) VALUES {values}"
            ))
            .execute(db)
            .await
            .unwrap();
        }
    }
    let group = okta.create_group("Benchmark portal");
    svc.call(
        reqwest::Method::PUT,
        &format!("/portals/{PORTAL}/settings/okta_group_id"),
        Some(json!({"value": group})),
    )
    .await;

    // --- batch sync ---
    let users: Vec<Value> = (1..=args.users)
        .map(|i| {
            json!({"user_id": i, "login": format!("bench{i}@example.com"), "email": format!("bench{i}@example.com"),
                   "first_name": "Bench", "last_name": format!("User {i}")})
        })
        .collect();
    okta.clear_requests();
    let start = PhaseStart::now(&okta, &svcs).await;
    let started = Instant::now();
    let job = svc
        .call(
            reqwest::Method::POST,
            &format!("/sync/portals/{PORTAL}/users"),
            Some(json!({ "users": users })),
        )
        .await;
    let job_id = job["job_id"].as_str().unwrap().to_owned();
    let mut last_report = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let j = svc
            .call(
                reqwest::Method::GET,
                &format!("/sync/jobs/{job_id}?limit=1"),
                None,
            )
            .await;
        if j["state"] == "finished" {
            assert_eq!(j["counts"]["failed"], 0, "{j}");
            break;
        }
        if last_report.elapsed() > Duration::from_secs(30) {
            eprintln!(
                "  sync: {} of {} done",
                j["counts"]["succeeded"], args.users
            );
            last_report = Instant::now();
        }
    }
    let elapsed = started.elapsed();
    let sync = phase(
        ("sync portal users", args.users, elapsed),
        &start,
        (&okta, &svcs),
        budget,
        seq_users,
    )
    .await;
    eprintln!("{sync:#?}");
    let okta_ids = okta.group_members(&group);
    assert_eq!(okta_ids.len(), args.users);

    // --- unassignment drain ---
    okta.clear_requests();
    let start = PhaseStart::now(&okta, &svcs).await;
    let (stop_sampling, stop_rx) = tokio::sync::watch::channel(false);
    let sampler = governor_trace::spawn_sampler(
        svcs.iter().map(|s| s.base.clone()).collect(),
        "groups",
        stop_rx,
    );
    let started = Instant::now();
    for (chunk_no, chunk) in (0..args.unassignments)
        .collect::<Vec<_>>()
        .chunks(10_000)
        .enumerate()
    {
        let rows: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"user_id": i + 1, "okta_user_id": okta_ids[i % okta_ids.len()]}))
            .collect();
        svc.call(
            reqwest::Method::POST,
            &format!("/portals/{PORTAL}/unassignments"),
            Some(json!({ "users": rows })),
        )
        .await;
        eprintln!("  enqueued {} rows", (chunk_no + 1) * 10_000);
    }
    let mut last_report = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let s = svc.call(reqwest::Method::GET, "/sync/status", None).await;
        let pending = s["unassignments"]["pending"].as_i64().unwrap_or(-1);
        assert_eq!(s["unassignments"]["dead"], 0, "{s}");
        if pending == 0 {
            break;
        }
        if last_report.elapsed() > Duration::from_secs(60) {
            eprintln!("  drain: {pending} rows left");
            last_report = Instant::now();
        }
    }
    let elapsed = started.elapsed();
    let _ = stop_sampling.send(true);
    let samples = sampler.await.expect("the governor sampler");
    let trace = governor_trace::windows(
        &okta.requests(),
        |r| r.route == "/api/v1/groups/{groupId}/users/{userId}",
        window,
        &samples,
        svcs.len(),
    );
    let drain = phase(
        ("drain unassignments", args.unassignments, elapsed),
        &start,
        (&okta, &svcs),
        budget,
        seq_removals,
    )
    .await;
    eprintln!("{drain:#?}");
    // The drain names the synced users in turn: with fewer removals than users, the
    // rest are still members.
    assert_eq!(
        okta.group_members(&group).len(),
        args.users.saturating_sub(args.unassignments),
        "every drained user left the group"
    );

    println!("| phase | items | seconds | items/s | Okta calls | busiest bucket calls/s | budget calls/s | budget used | 429 share | peak RSS MiB | sequential items/s | speed-up |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for p in [&sync, &drain] {
        println!(
            "| {} | {} | {:.1} | {:.1} | {} | {:.1} ({}) | {:.1} | {:.0} % | {:.2} % | {:.1} | {:.2} | {:.1}× |",
            p.name,
            p.items,
            p.seconds,
            p.per_second,
            p.okta_calls,
            p.busiest_bucket_calls_per_second,
            p.busiest_bucket,
            p.budget_calls_per_second,
            p.budget_used * 100.0,
            p.share_429 * 100.0,
            p.peak_rss_mib,
            p.sequential_per_second,
            p.speed_up
        );
    }
    println!();
    println!("| phase | instances | peak RSS MiB per instance | 429s answered by Okta | DELETEs answered 2xx | rows | surplus |");
    println!("|---|---|---|---|---|---|---|");
    for p in [&sync, &drain] {
        let rows = if p.name == "drain unassignments" {
            p.items
        } else {
            0
        };
        println!(
            "| {} | {} | {} | {} of {} calls | {} | {} | {} |",
            p.name,
            p.instances,
            p.peak_rss_mib_per_instance
                .iter()
                .map(|m| format!("{m:.1}"))
                .collect::<Vec<_>>()
                .join(", "),
            p.okta_429,
            p.okta_calls,
            p.okta_deletes_2xx,
            rows,
            p.okta_deletes_2xx as i64 - rows as i64
        );
    }
    println!();
    println!(
        "Governor trace of the drain (bucket `groups`; a window of the fake is {} s and \
         the instances' allowance together {allowance:.0} calls):",
        args.window_secs
    );
    println!();
    governor_trace::print_markdown(&trace, allowance, window);
    if let Some(path) = &args.json {
        let doc = json!({
            "database": if mysql.is_some() { "mariadb" } else { "sqlite" },
            "latency_ms": args.latency_ms, "rate_limit": args.rate_limit,
            "window_secs": args.window_secs, "rate_share": share,
            "phases": [sync, drain],
            "drain_windows": trace,
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    }
    if let (Some(db), Some(admin)) = (
        mysql,
        args.mysql_admin_url
            .or_else(|| std::env::var("TEST_MYSQL_URL").ok()),
    ) {
        db.close().await;
        if let Ok(pool) = sqlx::MySqlPool::connect(&admin).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS `efs_iam_bench_{}`",
                std::process::id()
            ))
            .execute(&pool)
            .await;
        }
    }
}
