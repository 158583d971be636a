//! EFS-sized benchmark (issue 15; a benchmark, not a test): every list, filter and
//! lookup of the API on an EFS-sized MariaDB database, beside the same on a small one,
//! and the purges under a lookup load. Run it through `bench/scale`.
//!
//! For each size (portal user references; the other tables follow, see
//! `bench/scale_seed.sql`) a fresh database is built: the release `efs-iam migrate`,
//! then the seed SQL (MariaDB's SEQUENCE engine, INSERT … SELECT) and the stored
//! sessions, written by this program as efs-iam writes them (keyed hash of the session
//! id, AES-GCM envelope under the key ring the service is started with) plus legacy raw
//! rows. The release `efs-iam` serves it with caller authentication, as `bench/run`
//! does, and then:
//!
//! 1. **Pages:** every list and filter, first page and the page `--deep-page` (100)
//!    reached by following `next_cursor` (or the last page, when there are fewer),
//!    `--reps` requests each from `--concurrency` clients: median and p99.
//! 2. **Lookups:** the same for single lookups with random keys over the whole table,
//!    and their throughput with `wrk` at `--load-connections`, beside the lookup's own
//!    `SELECT`s run by `mariadb-slap` at the same concurrency with the same random keys
//!    (the database ceiling, measured in the same run).
//! 3. **Before:** the listings that were slow before migration 0007, as plain SQL with
//!    the statements and indexes of before, for comparison.
//! 4. **Purges** (largest size): a lookup load runs while 1,000,000 expired sessions
//!    and half a year of error-log rows are purged — first with the one-statement
//!    purges of before, then with efs-iam's batched purges (the token store's
//!    `purge_expired_tokens`; `DELETE /api/v1/errors?before=` through the API, until
//!    its worker ends the purge) — with each lookup's latency recorded: p99 and max
//!    during each purge against before it.
//!    Also: migration 0007's index build on the full tables.
//!
//! Results: Markdown tables on stdout, everything as JSON with `--json`.

#[path = "bench_common/mod.rs"]
mod bench_common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bench_common::percentile;
use chrono::{NaiveDateTime, SubsecRound, Utc};
use clap::Parser;
use efs_iam::storage::{ConnectOptions, SqlStore, TokenStore};
use efs_iam::tokens::{KeyRing, SessionHasher};
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::{Connection, MySqlConnection, MySqlPool};

#[derive(Parser, Debug)]
struct Args {
    /// Sizes to build, as numbers of portal user references (the other tables follow:
    /// sessions and error-log rows the same number, admin references and queued
    /// unassignments a tenth, job items the same number in jobs of 10,000).
    #[arg(long, value_delimiter = ',', default_value = "10000,1000000")]
    scales: Vec<u64>,
    /// Requests per page or lookup measured.
    #[arg(long, default_value_t = 200)]
    reps: usize,
    /// Clients sending them at once.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// `limit` of every listing.
    #[arg(long, default_value_t = 100)]
    page_size: u32,
    /// The deep page measured besides the first.
    #[arg(long, default_value_t = 100)]
    deep_page: usize,
    /// wrk and mariadb-slap connections for the lookups' throughput.
    #[arg(long, default_value_t = 32)]
    load_connections: usize,
    /// Seconds of each wrk run.
    #[arg(long, default_value_t = 8)]
    load_seconds: u64,
    /// wrk and mariadb-slap runs per lookup (medians).
    #[arg(long, default_value_t = 3)]
    load_runs: usize,
    /// Clients of the lookup load during the purges.
    #[arg(long, default_value_t = 8)]
    purge_load_clients: usize,
    #[arg(long)]
    skip_purge: bool,
    /// Sets MariaDB's innodb_buffer_pool_size (MiB) for the run and puts the old size
    /// back afterwards (a global setting of the server: other users see it meanwhile).
    #[arg(long)]
    buffer_pool_mib: Option<u64>,
    #[arg(long)]
    skip_load: bool,
    /// Measure only the listings whose path contains one of these (comma-separated,
    /// e.g. `/unassignments,/sync/jobs`), and no lookups.
    #[arg(long, value_delimiter = ',')]
    only_paths: Vec<String>,
    /// Keep the databases (for a look afterwards).
    #[arg(long)]
    keep: bool,
    /// `mysql://` admin URL (default: TEST_MYSQL_URL, else root@127.0.0.1).
    #[arg(long)]
    mysql_admin_url: Option<String>,
    #[arg(long, default_value = "target/release/efs-iam")]
    bin: PathBuf,
    #[arg(long, default_value = "bench/scale_seed.sql")]
    seed_sql: PathBuf,
    #[arg(long)]
    json: Option<PathBuf>,
}

const SECRET: &str = "bench-scale-hs256-secret-0123456789abcdef";
const ISSUER: &str = "bench";
const AUDIENCE: &str = "efs-iam";
/// Share of the stored sessions that are legacy raw rows (EFS's, before efs-iam).
const LEGACY_SHARE: u64 = 5;
/// Items per seeded batch job.
const JOB_ITEMS: u64 = 10_000;

// ---------------------------------------------------------------------------------
// The data set

/// What a size's database holds, for building requests.
#[derive(Debug, Clone, Serialize)]
struct Layout {
    refs: u64,
    admins: u64,
    errors: u64,
    queue: u64,
    jobs: u64,
    hashed_sessions: u64,
    legacy_sessions: u64,
    /// Sessions that stay valid through the purge measurement.
    live_sessions: u64,
}

/// The portal of seed row `seq` (bench/scale_seed.sql): portal 1 holds 20 %, portal 2
/// 10 %, portals 3-10 5 % each, portals 11-100 the rest.
const PORTAL_OF_SEQ: &str = "CASE WHEN seq % 1000 < 200 THEN 1 \
    WHEN seq % 1000 < 300 THEN 2 \
    WHEN seq % 1000 < 700 THEN 3 + (seq % 1000 - 300) DIV 50 \
    ELSE 11 + (seq % 1000 - 700) % 90 END";

impl Layout {
    fn new(refs: u64) -> Self {
        let legacy = refs / LEGACY_SHARE;
        Self {
            refs,
            admins: refs / 10,
            errors: refs,
            queue: refs / 10,
            jobs: (refs / JOB_ITEMS).max(1),
            hashed_sessions: refs - legacy,
            legacy_sessions: legacy,
            live_sessions: (refs / 100).max(100),
        }
    }

    fn job_id(n: u64) -> String {
        format!("0e5c1f7a-7a0e-4c38-9f5e-{n:012x}")
    }

    fn okta_id(n: u64) -> String {
        format!("00u{n:017}")
    }

    /// The portal of reference `n`: [`PORTAL_OF_SEQ`] in Rust.
    fn portal_of(n: u64) -> u64 {
        match n % 1000 {
            r if r < 200 => 1,
            r if r < 300 => 2,
            r if r < 700 => 3 + (r - 300) / 50,
            r => 11 + (r - 700) % 90,
        }
    }

    fn seed_sql(&self, template: &str) -> String {
        template
            .replace("{REFS}", &self.refs.to_string())
            .replace("{ADMINS}", &self.admins.to_string())
            .replace("{ERRORS}", &self.errors.to_string())
            .replace("{QUEUE}", &self.queue.to_string())
            .replace("{JOBS}", &self.jobs.to_string())
            .replace("{PORTAL_OF_SEQ}", PORTAL_OF_SEQ)
    }
}

/// The seed SQL's sections, by name, in order.
fn sections(sql: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in sql.lines() {
        if let Some(name) = line.strip_prefix("-- @section ") {
            out.push((name.trim().to_owned(), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

struct Keys {
    ring: KeyRing,
    hasher: SessionHasher,
    ring_env: String,
    hash_env: String,
}

fn random_key() -> String {
    let bytes: Vec<u8> = (0..32).map(|_| fastrand::u8(..)).collect();
    STANDARD.encode(bytes)
}

impl Keys {
    fn new() -> Self {
        let ring_env = format!("bench:{}", random_key());
        let hash_env = random_key();
        Self {
            ring: KeyRing::parse(&ring_env).unwrap(),
            hasher: SessionHasher::parse(&hash_env).unwrap(),
            ring_env,
            hash_env,
        }
    }
}

fn blob(n: usize, seed: u64) -> String {
    (0..n)
        .map(|i| (b'a' + ((i as u64 * 7 + seed) % 26) as u8) as char)
        .collect()
}

/// An Okta token response of about 1.9 KB, as EFS stores them.
fn idp_response(n: u64) -> Value {
    json!({
        "token_type": "Bearer", "expires_in": 3600, "scope": "openid email offline_access",
        "access_token": format!("eyJraWQiOiJ{}", blob(800, n)),
        "id_token": format!("eyJraWQiOiJ{}", blob(900, n + 1)),
        "refresh_token": blob(40, n + 2),
    })
}

/// The stored form of session `id` as efs-iam's vault writes it: (session_id,
/// idp_response, stored_at, expires_at, subject_hash).
type SessionRow = (
    Vec<u8>,
    String,
    NaiveDateTime,
    NaiveDateTime,
    Option<Vec<u8>>,
);

fn sealed_session(keys: &Keys, id: &str, n: u64, expires_at: NaiveDateTime) -> SessionRow {
    let hashed = keys.hasher.hash_raw_session(id.as_bytes());
    let stored_at = expires_at - chrono::Duration::hours(24);
    let plaintext = serde_json::to_vec(&json!({
        "idp_response": idp_response(n),
        "stored_at": stored_at.and_utc().timestamp(),
        "expires_at": expires_at.and_utc().timestamp(),
    }))
    .unwrap();
    let value = keys.ring.seal(&plaintext, &hashed);
    let subject = n
        .is_multiple_of(2)
        .then(|| keys.hasher.subject_key(&Layout::okta_id(n)));
    (hashed, value, stored_at, expires_at, subject)
}

/// Writes sessions `ids` (`prefix` + number) in multi-row INSERTs on two connections.
async fn write_sessions(
    url: &str,
    keys: &Arc<Keys>,
    prefix: &'static str,
    ids: std::ops::RangeInclusive<u64>,
    expires: impl Fn(u64) -> Option<NaiveDateTime> + Send + Sync + Clone + 'static,
) {
    let (start, end) = (*ids.start(), *ids.end());
    if end < start {
        return;
    }
    let workers = 2u64;
    let per = (end - start + 1).div_ceil(workers);
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (url, keys, expires) = (url.to_owned(), keys.clone(), expires.clone());
        let lo = start + w * per;
        let hi = (lo + per - 1).min(end);
        tasks.push(tokio::spawn(async move {
            let mut conn = MySqlConnection::connect(&url).await.unwrap();
            let mut n = lo;
            while n <= hi {
                let last = (n + 399).min(hi);
                let rows: Vec<SessionRow> = (n..=last)
                    .map(|i| {
                        let id = format!("{prefix}{i}");
                        match expires(i) {
                            Some(at) => sealed_session(&keys, &id, i, at),
                            // A legacy row: the raw id, the response as plain JSON, no
                            // expiry yet (efs-iam's purge gives it one).
                            None => (
                                id.into_bytes(),
                                idp_response(i).to_string(),
                                NaiveDateTime::MIN,
                                NaiveDateTime::MIN,
                                None,
                            ),
                        }
                    })
                    .collect();
                let mut q = sqlx::QueryBuilder::<sqlx::MySql>::new(
                    "INSERT INTO iam_token_data \
                     (session_id, idp_response, stored_at, expires_at, subject_hash) ",
                );
                q.push_values(rows, |mut b, (sid, value, stored, expires, subject)| {
                    let legacy = stored == NaiveDateTime::MIN;
                    b.push_bind(sid)
                        .push_bind(value)
                        .push_bind((!legacy).then_some(stored))
                        .push_bind((!legacy).then_some(expires))
                        .push_bind(subject);
                });
                q.build().execute(&mut conn).await.unwrap();
                n = last + 1;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(0)
}

// ---------------------------------------------------------------------------------
// The service

struct Service {
    child: Child,
    base: String,
    http: reqwest::Client,
    token: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    async fn start(bin: &Path, url: &str, keys: &Keys, log: &Path) -> Self {
        let (mut command, base) = bench_common::efs_iam_serve(bin, url, log);
        let child = command
            .env("EFS_IAM_AUTH_HS256_SECRET", SECRET)
            .env("EFS_IAM_AUTH_ISSUER", ISSUER)
            .env("EFS_IAM_AUTH_AUDIENCE", AUDIENCE)
            .env("EFS_IAM_TOKEN_KEYS", &keys.ring_env)
            .env("EFS_IAM_SESSION_HASH_KEY", &keys.hash_env)
            .env("EFS_IAM_TOKEN_ACCEPT_LEGACY_PLAINTEXT", "true")
            // The purge measured is the benchmark's own call; the background purge
            // runs once, at start-up (giving the legacy rows their expiry).
            .env("EFS_IAM_TOKEN_PURGE_INTERVAL", "1440m")
            // DELETE /errors of half a year in batches may outlast the default 30 s.
            .env("EFS_IAM_REQUEST_TIMEOUT", "600s")
            .spawn()
            .expect("start efs-iam (bench/scale builds it)");
        let token = efs_iam::auth::mint_hs256(
            &secrecy::SecretString::from(SECRET.to_owned()),
            ISSUER,
            AUDIENCE,
            "bench-scale",
            &["iam:read", "iam:write", "iam:sync", "iam:tokens"],
            Duration::from_secs(6 * 3600),
        )
        .unwrap();
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert(
            reqwest::header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .pool_max_idle_per_host(64)
            .timeout(Duration::from_secs(900))
            .build()
            .unwrap();
        let svc = Self {
            child,
            base,
            http,
            token,
        };
        assert!(
            bench_common::wait_ready(&svc.http, &svc.base, 600).await,
            "efs-iam did not become ready"
        );
        svc
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let res = self.http.get(self.url(path)).send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    fn peak_rss_mib(&self) -> f64 {
        bench_common::peak_rss_kib(self.child.id()) as f64 / 1024.0
    }
}

// ---------------------------------------------------------------------------------
// Measuring

#[derive(Debug, Clone, Copy, Serialize)]
struct Latency {
    median_ms: f64,
    p99_ms: f64,
    max_ms: f64,
    n: usize,
}

impl Latency {
    fn of(mut v: Vec<f64>) -> Self {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        Self {
            median_ms: percentile(&v, 0.5),
            p99_ms: percentile(&v, 0.99),
            max_ms: v.last().copied().unwrap_or(f64::NAN),
            n: v.len(),
        }
    }
}

/// `reps` GETs of the paths `next` hands out, from `concurrency` clients, after a
/// warm-up of `concurrency` requests: each request's time in ms. Every answer must be
/// a 200.
async fn timed_gets<F>(svc: &Service, reps: usize, concurrency: usize, next: F) -> Vec<f64>
where
    F: Fn(usize) -> String + Send + Sync + 'static,
{
    let next = Arc::new(next);
    let counter = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let warm = concurrency;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (http, base, next, counter) = (
            svc.http.clone(),
            svc.base.clone(),
            next.clone(),
            counter.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut times = Vec::new();
            loop {
                let i = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= reps + warm {
                    break;
                }
                let path = next(i);
                let started = Instant::now();
                let res = http
                    .get(format!("{base}/api/v1{path}"))
                    .send()
                    .await
                    .unwrap();
                let status = res.status();
                let body = res.bytes().await.unwrap();
                let ms = started.elapsed().as_secs_f64() * 1000.0;
                assert!(
                    status.is_success(),
                    "{path}: {status} {}",
                    String::from_utf8_lossy(&body)
                );
                if i >= warm {
                    times.push(ms);
                }
            }
            times
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// One listing: its path (with `limit`), and where its items and cursor are.
struct Listing {
    name: String,
    path: String,
}

#[derive(Debug, Clone, Serialize)]
struct PageResult {
    name: String,
    path: String,
    first: Latency,
    first_items: usize,
    deep_page: usize,
    /// The deep page is the listing's last (fewer pages than asked for).
    deep_is_last: bool,
    deep: Latency,
    deep_items: usize,
}

fn items_of(body: &Value) -> usize {
    body["items"].as_array().map_or(0, Vec::len)
}

fn with_param(path: &str, key: &str, value: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}{key}={value}")
}

async fn measure_listing(svc: &Service, args: &Args, l: &Listing) -> PageResult {
    // Walk to the deep page (or the last one).
    let (status, mut body) = svc.get(&l.path).await;
    assert_eq!(status, 200, "{}: {body}", l.path);
    let first_items = items_of(&body);
    let mut deep_path = l.path.clone();
    let mut page = 1;
    while page < args.deep_page {
        let Some(cursor) = body["next_cursor"].as_str().map(str::to_owned) else {
            break;
        };
        deep_path = with_param(&l.path, "cursor", &cursor);
        let (status, next) = svc.get(&deep_path).await;
        assert_eq!(status, 200, "{deep_path}: {next}");
        body = next;
        page += 1;
    }
    let deep_items = items_of(&body);
    let deep_is_last = body["next_cursor"].as_str().is_none();
    let first_path = l.path.clone();
    let first = Latency::of(
        timed_gets(svc, args.reps, args.concurrency, move |_| {
            first_path.clone()
        })
        .await,
    );
    let deep_path2 = deep_path.clone();
    let deep = Latency::of(
        timed_gets(svc, args.reps, args.concurrency, move |_| {
            deep_path2.clone()
        })
        .await,
    );
    PageResult {
        name: l.name.clone(),
        path: l.path.clone(),
        first,
        first_items,
        deep_page: page,
        deep_is_last,
        deep,
        deep_items,
    }
}

fn listings(layout: &Layout, limit: u32) -> Vec<Listing> {
    let week_since = (Utc::now() - chrono::Duration::days(180))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let week_until = (Utc::now() - chrono::Duration::days(173))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let day_since = (Utc::now() - chrono::Duration::days(180))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let day_until = (Utc::now() - chrono::Duration::days(179))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let job = Layout::job_id(layout.jobs);
    let l = |name: &str, path: String| Listing {
        name: name.to_owned(),
        path: with_param(&path, "limit", &limit.to_string()),
    };
    let refs = |p: u32, q: &str| {
        if q.is_empty() {
            format!("/portals/{p}/user-references")
        } else {
            format!("/portals/{p}/user-references?{q}")
        }
    };
    let week = format!("since={week_since}&until={week_until}");
    vec![
        l("references of portal 1 (20 % of all)", refs(1, "")),
        l("… status=synced", refs(1, "status=synced")),
        l("… status=pending", refs(1, "status=pending")),
        l("… status=failed", refs(1, "status=failed")),
        l(
            "… has_data_changes=true (many flagged)",
            refs(1, "has_data_changes=true"),
        ),
        l(
            "… has_data_changes=false",
            refs(1, "has_data_changes=false"),
        ),
        l(
            "… status=pending&has_data_changes=true",
            refs(1, "status=pending&has_data_changes=true"),
        ),
        l(
            "… status=synced&has_data_changes=true",
            refs(1, "status=synced&has_data_changes=true"),
        ),
        l(
            "… status=synced&has_data_changes=false",
            refs(1, "status=synced&has_data_changes=false"),
        ),
        l(
            "references of portal 2, has_data_changes=true (none flagged)",
            refs(2, "has_data_changes=true"),
        ),
        l(
            "… portal 2, status=failed&has_data_changes=true (none)",
            refs(2, "status=failed&has_data_changes=true"),
        ),
        l(
            "… portal 2, status=deprovisioned",
            refs(2, "status=deprovisioned"),
        ),
        l(
            "references of portal 50 (0.3 %), has_data_changes=true",
            refs(50, "has_data_changes=true"),
        ),
        l("error log, newest first", "/errors".into()),
        l(
            "… status_code=500 (0.3 %)",
            "/errors?status_code=500".into(),
        ),
        l("… status_code=429 (40 %)", "/errors?status_code=429".into()),
        l(
            "… error_code=E0000112 (0.1 %)",
            "/errors?error_code=E0000112".into(),
        ),
        l(
            "… error_code=E0000047",
            "/errors?error_code=E0000047".into(),
        ),
        l(
            "… status_code=400&error_code=E0000001",
            "/errors?status_code=400&error_code=E0000001".into(),
        ),
        l("… one week (since/until)", format!("/errors?{week}")),
        l(
            "… one week & status_code=500",
            format!("/errors?{week}&status_code=500"),
        ),
        l("… q=rate%20limit (40 %)", "/errors?q=rate%20limit".into()),
        l("… q=deactivated (0.1 %)", "/errors?q=deactivated".into()),
        l(
            "… one week & q=deactivated",
            format!("/errors?{week}&q=deactivated"),
        ),
        l(
            "… one day & q=deactivated",
            format!("/errors?since={day_since}&until={day_until}&q=deactivated"),
        ),
        l(
            "unassignments of portal 1",
            "/portals/1/unassignments".into(),
        ),
        l(
            "… state=pending",
            "/portals/1/unassignments?state=pending".into(),
        ),
        l("… state=dead", "/portals/1/unassignments?state=dead".into()),
        l(
            "unassignments of portal 50, state=dead",
            "/portals/50/unassignments?state=dead".into(),
        ),
        l(
            "dead letters, all portals",
            "/sync/unassignments/dead".into(),
        ),
        l(
            "… without_portal=true",
            "/sync/unassignments/dead?without_portal=true".into(),
        ),
        l("job items (10,000 in the job)", format!("/sync/jobs/{job}")),
        l("… state=failed", format!("/sync/jobs/{job}?state=failed")),
        l(
            "… state=succeeded",
            format!("/sync/jobs/{job}?state=succeeded"),
        ),
    ]
}

/// A single lookup with random keys: its API path and its SQL (for mariadb-slap).
struct Lookup {
    name: &'static str,
    /// `n` → API path.
    path: Arc<dyn Fn(u64) -> String + Send + Sync>,
    /// `n` → the SELECT(s) the API runs for it, `;`-separated.
    sql: Arc<dyn Fn(u64) -> String + Send + Sync>,
    /// Statements per lookup in `sql`.
    statements: u32,
    /// Keys are 1..=keys.
    keys: u64,
    /// The wrk script's request line, in Lua, from a random `n`.
    lua: String,
}

const PORTAL_COLS: &str =
    "id, portal_id, user_id, uuid, created_at, updated_at, status, has_data_changes";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A stored session's token, by session ids `{prefix}1..={keys}`: efs-iam looks for the
/// keyed hash of the id and for the raw id (a legacy row) in one statement.
fn session_lookup(name: &'static str, prefix: &'static str, keys: u64, ring: Arc<Keys>) -> Lookup {
    Lookup {
        name,
        path: Arc::new(move |n| format!("/sessions/{prefix}{n}/token")),
        sql: Arc::new(move |n| {
            let raw = format!("{prefix}{n}");
            let hashed = hex(&ring.hasher.hash_raw_session(raw.as_bytes()));
            let raw = hex(raw.as_bytes());
            format!(
                "SELECT session_id, idp_response, stored_at, expires_at FROM iam_token_data \
                 WHERE session_id = X'{hashed}' OR session_id = X'{raw}' \
                 ORDER BY CASE WHEN session_id = X'{hashed}' THEN 0 ELSE 1 END, id DESC LIMIT 1"
            )
        }),
        statements: 1,
        keys,
        lua: format!(
            "return wrk.format(\"GET\", \"/api/v1/sessions/{prefix}\" .. n .. \"/token\")"
        ),
    }
}

fn lookups(layout: &Layout, keys: &Arc<Keys>) -> Vec<Lookup> {
    let lua_portal = "local r = n % 1000\n  local p\n  if r < 200 then p = 1 elseif r < 300 then p = 2 \
                      elseif r < 700 then p = 3 + math.floor((r - 300) / 50) else p = 11 + (r - 700) % 90 end";
    vec![
        Lookup {
            name: "portal user reference",
            path: Arc::new(|n| format!("/portals/{}/user-references/{n}", Layout::portal_of(n))),
            sql: Arc::new(|n| {
                format!(
                    "SELECT {PORTAL_COLS} FROM iam_portal_user_reference WHERE portal_id = {} \
                     AND user_id = {n} ORDER BY id DESC LIMIT 1",
                    Layout::portal_of(n)
                )
            }),
            statements: 1,
            keys: layout.refs,
            lua: format!("{lua_portal}\n  return wrk.format(\"GET\", \"/api/v1/portals/\" .. p .. \"/user-references/\" .. n)"),
        },
        Lookup {
            name: "admin user reference",
            path: Arc::new(|n| format!("/user-references/{n}")),
            sql: Arc::new(|n| {
                format!(
                    "SELECT id, user_id, uuid, created_at, updated_at FROM iam_user_reference \
                     WHERE user_id = {n} ORDER BY id DESC LIMIT 1"
                )
            }),
            statements: 1,
            keys: layout.admins,
            lua: "return wrk.format(\"GET\", \"/api/v1/user-references/\" .. n)".into(),
        },
        Lookup {
            name: "reverse lookup by Okta user id",
            path: Arc::new(|n| format!("/okta-users/{}/references", Layout::okta_id(n))),
            sql: Arc::new(|n| {
                let okta = Layout::okta_id(n);
                format!(
                    "SELECT id, user_id, uuid, created_at, updated_at FROM iam_user_reference \
                     WHERE uuid = '{okta}' ORDER BY id;\
                     SELECT {PORTAL_COLS} FROM iam_portal_user_reference WHERE uuid = '{okta}' ORDER BY id"
                )
            }),
            statements: 2,
            keys: layout.refs,
            lua: "return wrk.format(\"GET\", string.format(\"/api/v1/okta-users/00u%017d/references\", n))".into(),
        },
        session_lookup(
            "session token (hashed id, sealed)",
            "s",
            layout.hashed_sessions,
            keys.clone(),
        ),
        session_lookup(
            "session token (legacy raw row)",
            "l",
            layout.legacy_sessions,
            keys.clone(),
        ),
        Lookup {
            name: "error-log entry",
            path: Arc::new(|n| format!("/errors/{n}")),
            sql: Arc::new(|n| {
                format!(
                    "SELECT id, created_at, message, status_code, trace, error_code \
                     FROM iam_error_log WHERE id = {n}"
                )
            }),
            statements: 1,
            keys: layout.errors,
            lua: "return wrk.format(\"GET\", \"/api/v1/errors/\" .. n)".into(),
        },
    ]
}

#[derive(Debug, Clone, Serialize)]
struct LookupResult {
    name: String,
    latency: Latency,
    /// wrk at `load_connections`: req/s, p50, p99 (medians of the runs).
    http_rate: f64,
    http_p50_ms: f64,
    http_p99_ms: f64,
    http_errors: u64,
    /// mariadb-slap, same statements, same concurrency: lookups/s.
    select_rate: f64,
    ratio: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    percentile(&v, 0.5)
}

/// Parses `wrk --latency`: (req/s, p50 ms, p99 ms, non-2xx and connect errors).
fn parse_wrk(out: &str) -> (f64, f64, f64, u64) {
    let ms = |v: &str| -> f64 {
        let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap());
        let x: f64 = num.parse().unwrap();
        match unit {
            "us" => x / 1000.0,
            "ms" => x,
            "s" => x * 1000.0,
            _ => f64::NAN,
        }
    };
    let mut rate = f64::NAN;
    let (mut p50, mut p99, mut errors) = (f64::NAN, f64::NAN, 0u64);
    for line in out.lines() {
        let t: Vec<&str> = line.split_whitespace().collect();
        match t.as_slice() {
            ["Requests/sec:", r] => rate = r.parse().unwrap(),
            ["50%", v] => p50 = ms(v),
            ["99%", v] => p99 = ms(v),
            ["Non-2xx", "or", "3xx", "responses:", n] => errors += n.parse::<u64>().unwrap(),
            ["Socket", "errors:", "connect", n, ..] => {
                errors += n.trim_end_matches(',').parse::<u64>().unwrap()
            }
            _ => {}
        }
    }
    (rate, p50, p99, errors)
}

/// `wrk` at `--load-connections`, `--load-runs` times: (req/s, p50, p99, errors) each.
fn run_wrk(
    svc: &Service,
    args: &Args,
    script: Option<&Path>,
    url: &str,
) -> Vec<(f64, f64, f64, u64)> {
    let mut runs = Vec::new();
    for _ in 0..args.load_runs {
        let mut cmd = Command::new("wrk");
        cmd.args([
            "-t2",
            &format!("-c{}", args.load_connections),
            &format!("-d{}s", args.load_seconds),
            "--latency",
            "-H",
            &format!("Authorization: Bearer {}", svc.token),
        ]);
        if let Some(script) = script {
            cmd.args(["-s", script.to_str().unwrap()]);
        }
        let out = cmd
            .arg(url)
            .output()
            .expect("wrk (bench/scale installs it)");
        runs.push(parse_wrk(&String::from_utf8_lossy(&out.stdout)));
    }
    runs
}

async fn measure_lookup(
    svc: &Service,
    args: &Args,
    db: &str,
    dir: &Path,
    l: &Lookup,
) -> LookupResult {
    let keys = l.keys;
    let path = l.path.clone();
    let latency = Latency::of(
        timed_gets(svc, args.reps, args.concurrency, move |_| {
            path(1 + fastrand::u64(..keys))
        })
        .await,
    );
    let (mut http_rate, mut http_p50, mut http_p99, mut http_errors, mut select_rate) =
        (f64::NAN, f64::NAN, f64::NAN, 0, f64::NAN);
    if !args.skip_load {
        let script = dir.join(format!("{}.lua", l.name.replace([' ', '(', ')', ','], "_")));
        std::fs::write(
            &script,
            format!(
                "math.randomseed(os.time())\nrequest = function()\n  local n = math.random(1, {keys})\n  {}\nend\n",
                l.lua
            ),
        )
        .unwrap();
        let runs = run_wrk(svc, args, Some(&script), &svc.base);
        http_rate = median(runs.iter().map(|r| r.0).collect());
        http_p50 = median(runs.iter().map(|r| r.1).collect());
        http_p99 = median(runs.iter().map(|r| r.2).collect());
        http_errors = runs.iter().map(|r| r.3).sum();
        // The same SELECTs with random keys, straight to MariaDB.
        let file = dir.join(format!("{}.sql", l.name.replace([' ', '(', ')', ','], "_")));
        let statements: Vec<String> = (0..20_000)
            .map(|_| (l.sql)(1 + fastrand::u64(..keys)))
            .collect();
        std::fs::write(&file, statements.join(";\n") + ";\n").unwrap();
        let queries = args.load_connections as u64 * 3000 * u64::from(l.statements);
        let mut rates = Vec::new();
        for _ in 0..args.load_runs {
            let out = Command::new("mariadb-slap")
                .args([
                    "-h127.0.0.1",
                    "-uroot",
                    &format!("--create-schema={db}"),
                    &format!("--concurrency={}", args.load_connections),
                    &format!("--number-of-queries={queries}"),
                    "--iterations=1",
                    "--delimiter=;",
                    &format!("--query={}", file.display()),
                ])
                .output()
                .expect("mariadb-slap");
            let text = String::from_utf8_lossy(&out.stdout);
            let secs: f64 = text
                .lines()
                .find(|l| l.contains("Average number of seconds to run all queries"))
                .and_then(|l| l.split_whitespace().nth(8))
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| {
                    panic!(
                        "mariadb-slap: {text} {}",
                        String::from_utf8_lossy(&out.stderr)
                    )
                });
            rates.push(queries as f64 / f64::from(l.statements) / secs);
        }
        select_rate = median(rates);
    }
    LookupResult {
        name: l.name.to_owned(),
        latency,
        http_rate,
        http_p50_ms: http_p50,
        http_p99_ms: http_p99,
        http_errors,
        select_rate,
        ratio: http_rate / select_rate,
    }
}

// ---------------------------------------------------------------------------------
// Before migration 0007: the old statements, as plain SQL

#[derive(Debug, Clone, Serialize)]
struct BeforeResult {
    name: String,
    before: Latency,
    after: Latency,
}

async fn time_sql(pool: &MySqlPool, sql: &str, reps: usize) -> Latency {
    let mut times = Vec::new();
    for i in 0..reps + 2 {
        let started = Instant::now();
        let rows = sqlx::query(sql).fetch_all(pool).await.unwrap();
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        std::hint::black_box(rows);
        if i >= 2 {
            times.push(ms);
        }
    }
    Latency::of(times)
}

/// The slow listings of issue 15, with the statements of before (no 0007 indexes, no
/// hints, `has_data_changes <> 0`) and the ones efs-iam runs now.
async fn before_and_after(pool: &MySqlPool, reps: usize) -> Vec<BeforeResult> {
    let new_ref = "IGNORE INDEX (portal_status_id, portal_changes_id)";
    let new_err = "IGNORE INDEX (status_code_created_at_id, error_code_created_at_id)";
    let err_cols = "id, created_at, message, status_code, trace, error_code";
    let cases: Vec<(&str, String, String)> = vec![
        (
            "worklist of portal 2 (none flagged), first page",
            format!("SELECT {PORTAL_COLS} FROM iam_portal_user_reference {new_ref} WHERE portal_id = 2 AND has_data_changes <> 0 ORDER BY id LIMIT 101"),
            format!("SELECT * FROM (SELECT {PORTAL_COLS} FROM iam_portal_user_reference FORCE INDEX (portal_changes_id) WHERE portal_id = 2 AND has_data_changes = 1 ORDER BY id LIMIT 101) part0 \
                     UNION ALL SELECT * FROM (SELECT {PORTAL_COLS} FROM iam_portal_user_reference FORCE INDEX (portal_changes_id) WHERE portal_id = 2 AND has_data_changes > 1 ORDER BY id LIMIT 101) part1 \
                     UNION ALL SELECT * FROM (SELECT {PORTAL_COLS} FROM iam_portal_user_reference FORCE INDEX (portal_changes_id) WHERE portal_id = 2 AND has_data_changes < 0 ORDER BY id LIMIT 101) part2 ORDER BY id LIMIT 101"),
        ),
        (
            "worklist of portal 1 (many flagged), first page",
            format!("SELECT {PORTAL_COLS} FROM iam_portal_user_reference {new_ref} WHERE portal_id = 1 AND has_data_changes <> 0 ORDER BY id LIMIT 101"),
            format!("SELECT * FROM (SELECT {PORTAL_COLS} FROM iam_portal_user_reference FORCE INDEX (portal_changes_id) WHERE portal_id = 1 AND has_data_changes = 1 ORDER BY id LIMIT 101) part0 \
                     UNION ALL SELECT * FROM (SELECT {PORTAL_COLS} FROM iam_portal_user_reference FORCE INDEX (portal_changes_id) WHERE portal_id = 1 AND has_data_changes > 1 ORDER BY id LIMIT 101) part1 \
                     UNION ALL SELECT * FROM (SELECT {PORTAL_COLS} FROM iam_portal_user_reference FORCE INDEX (portal_changes_id) WHERE portal_id = 1 AND has_data_changes < 0 ORDER BY id LIMIT 101) part2 ORDER BY id LIMIT 101"),
        ),
        (
            "portal 1 status=synced, page past id 500,000",
            format!("SELECT {PORTAL_COLS} FROM iam_portal_user_reference {new_ref} WHERE portal_id = 1 AND status = 1 AND id > 500000 ORDER BY id LIMIT 101"),
            format!("SELECT {PORTAL_COLS} FROM iam_portal_user_reference FORCE INDEX (portal_status_id) WHERE portal_id = 1 AND status = 1 AND id > 500000 ORDER BY id LIMIT 101"),
        ),
        (
            "error log status_code=500, first page",
            format!("SELECT {err_cols} FROM iam_error_log {new_err} WHERE 1 = 1 AND status_code = 500 ORDER BY created_at DESC, id DESC LIMIT 101"),
            format!("SELECT {err_cols} FROM iam_error_log FORCE INDEX (status_code_created_at_id) WHERE 1 = 1 AND status_code = 500 ORDER BY created_at DESC, id DESC LIMIT 101"),
        ),
        (
            "error log error_code=E0000112, first page",
            format!("SELECT {err_cols} FROM iam_error_log {new_err} WHERE 1 = 1 AND error_code = 'E0000112' ORDER BY created_at DESC, id DESC LIMIT 101"),
            format!("SELECT {err_cols} FROM iam_error_log FORCE INDEX (error_code_created_at_id) WHERE 1 = 1 AND error_code = 'E0000112' ORDER BY created_at DESC, id DESC LIMIT 101"),
        ),
    ];
    let mut out = Vec::new();
    for (name, before, after) in cases {
        // The old statements are slow: fewer repetitions.
        let b = time_sql(pool, &before, reps.min(20)).await;
        let a = time_sql(pool, &after, reps).await;
        out.push(BeforeResult {
            name: name.to_owned(),
            before: b,
            after: a,
        });
    }
    out
}

/// The statements of one first page of portal 1's unassignment listing (two capped
/// counts and the page, as efs-iam runs them), sent straight to MariaDB by
/// `concurrency` clients at once, as many as the API measurement uses: the database's
/// share of that listing, the bound the HTTP figures are read against (issue 24).
async fn unassignment_listing_sql_bound(
    pool: &MySqlPool,
    reps: usize,
    concurrency: usize,
) -> Latency {
    const QUEUE: &str = "iam_portal_user_group_unassignment_queue";
    let statements = [
        format!("SELECT COUNT(*) FROM (SELECT 1 FROM {QUEUE} FORCE INDEX (portal_id_dead_at) WHERE portal_id = 1 AND dead_at IS NULL LIMIT 10001) capped"),
        format!("SELECT COUNT(*) FROM (SELECT 1 FROM {QUEUE} FORCE INDEX (portal_id_dead_at) WHERE portal_id = 1 AND dead_at IS NOT NULL LIMIT 10001) capped"),
        format!("SELECT id, portal_id, user_id, uuid, email, created_at, attempts, last_error, next_attempt_at, dead_at FROM {QUEUE} FORCE INDEX (portal_id_id) WHERE portal_id = 1 ORDER BY id LIMIT 101"),
    ];
    let statements = std::sync::Arc::new(statements);
    let mut clients = Vec::new();
    for _ in 0..concurrency {
        let (pool, statements) = (pool.clone(), statements.clone());
        clients.push(tokio::spawn(async move {
            let mut times = Vec::new();
            for _ in 0..reps.div_ceil(concurrency) {
                let started = Instant::now();
                for sql in statements.iter() {
                    std::hint::black_box(sqlx::query(sql).fetch_all(&pool).await.unwrap());
                }
                times.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            times
        }));
    }
    let mut times = Vec::new();
    for c in clients {
        times.extend(c.await.unwrap());
    }
    Latency::of(times)
}

// ---------------------------------------------------------------------------------
// Purges under a lookup load

#[derive(Debug, Clone, Serialize)]
struct PurgeResult {
    name: String,
    rows: u64,
    seconds: f64,
    /// Lookups in the 10 s before the purge, and during it.
    lookups_before: Latency,
    lookups_during: Latency,
    lookups_during_over_50ms: usize,
    /// Token writes during the purge (PUT of a session whose stored row has expired,
    /// i.e. a login again under the same session id: it replaces a row the purge is
    /// deleting), two clients.
    writes_before: Latency,
    writes_during: Latency,
    /// Requests answered other than 2xx (or not at all), reads and writes.
    failed: usize,
}

/// Runs a lookup load (portal reference lookups with random keys and token gets of the
/// sessions that stay valid) from `clients` clients, and two token writers (logins
/// again under expired sessions: each PUT replaces a row the purge wants), while
/// `purge` runs; returns the latencies before and during, and the purge's result.
/// A purge as one statement, as it was done before efs-iam's batches: rows deleted.
async fn one_statement(
    pool: &MySqlPool,
    delete: sqlx::query::Query<'_, sqlx::MySql, sqlx::mysql::MySqlArguments>,
) -> u64 {
    delete.execute(pool).await.unwrap().rows_affected()
}

async fn under_load<F, Fut>(
    svc: &Service,
    layout: &Layout,
    clients: usize,
    name: &str,
    purge: F,
) -> PurgeResult
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    let writers = 2;
    for c in 0..clients + writers {
        let (http, base, stop) = (svc.http.clone(), svc.base.clone(), stop.clone());
        let (refs, live, expired) = (layout.refs, layout.live_sessions, layout.refs);
        let writer = c >= clients;
        tasks.push(tokio::spawn(async move {
            let mut samples: Vec<(f64, f64)> = Vec::new();
            let mut failed = 0usize;
            let body = idp_response(7).to_string();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let start = t0.elapsed().as_secs_f64();
                let req = if writer {
                    http.put(format!(
                        "{base}/api/v1/sessions/s{}/token",
                        1 + fastrand::u64(..expired)
                    ))
                    .header("content-type", "application/json")
                    .body(body.clone())
                } else if fastrand::bool() {
                    let n = 1 + fastrand::u64(..refs);
                    http.get(format!(
                        "{base}/api/v1/portals/{}/user-references/{n}",
                        Layout::portal_of(n)
                    ))
                } else {
                    http.get(format!(
                        "{base}/api/v1/sessions/v{}/token",
                        1 + fastrand::u64(..live)
                    ))
                };
                match req.send().await {
                    Ok(res) => {
                        let ok = res.status().is_success();
                        let _ = res.bytes().await;
                        if !ok {
                            failed += 1;
                        }
                    }
                    Err(_) => failed += 1,
                }
                samples.push((start, (t0.elapsed().as_secs_f64() - start) * 1000.0));
            }
            (writer, samples, failed)
        }));
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let purge_start = t0.elapsed().as_secs_f64();
    let rows = purge().await;
    let purge_end = t0.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut lb, mut ld, mut wb, mut wd) = (vec![], vec![], vec![], vec![]);
    let mut failed = 0;
    for t in tasks {
        let (writer, samples, f) = t.await.unwrap();
        failed += f;
        for (start, ms) in samples {
            let during = start >= purge_start && start < purge_end;
            let before = start >= 1.0 && start < purge_start;
            match (writer, before, during) {
                (false, true, _) => lb.push(ms),
                (false, _, true) => ld.push(ms),
                (true, true, _) => wb.push(ms),
                (true, _, true) => wd.push(ms),
                _ => {}
            }
        }
    }
    let over = ld.iter().filter(|ms| **ms > 50.0).count();
    PurgeResult {
        name: name.to_owned(),
        rows,
        seconds: purge_end - purge_start,
        lookups_before: Latency::of(lb),
        lookups_during: Latency::of(ld),
        lookups_during_over_50ms: over,
        writes_before: Latency::of(wb),
        writes_during: Latency::of(wd),
        failed,
    }
}

/// Gives every stored session but the live ones ("v…", which expire in 48 h; all
/// others within 24 h) an expiry in the past (setup, not measured), and waits for
/// InnoDB to settle.
async fn expire_sessions(pool: &MySqlPool) -> u64 {
    let n = sqlx::query(
        "UPDATE iam_token_data SET expires_at = UTC_TIMESTAMP() - INTERVAL 1 HOUR \
         WHERE expires_at IS NULL OR expires_at < UTC_TIMESTAMP() + INTERVAL 30 HOUR",
    )
    .execute(pool)
    .await
    .unwrap()
    .rows_affected();
    settle(pool).await;
    n
}

/// Waits (up to 10 minutes) until InnoDB is quiet again after a bulk change: its
/// history list (undo not yet purged) short and at most 1 % of the buffer pool dirty.
/// MariaDB's page cleaner leaves dirty pages alone while they stay under
/// `innodb_max_dirty_pages_pct` (90 %), so that is set to 0 while waiting (the server
/// then writes them out at once) and put back afterwards.
async fn settle(pool: &MySqlPool) {
    let max_dirty: f64 =
        sqlx::query_scalar("SELECT CAST(@@GLOBAL.innodb_max_dirty_pages_pct AS DOUBLE)")
            .fetch_one(pool)
            .await
            .unwrap();
    sqlx::query("SET GLOBAL innodb_max_dirty_pages_pct = 0")
        .execute(pool)
        .await
        .unwrap();
    wait_until_quiet(pool).await;
    sqlx::query(&format!(
        "SET GLOBAL innodb_max_dirty_pages_pct = {max_dirty}"
    ))
    .execute(pool)
    .await
    .unwrap();
}

async fn wait_until_quiet(pool: &MySqlPool) {
    let status = |name: &'static str| async move {
        let row: Option<(String, String)> =
            sqlx::query_as(&format!("SHOW GLOBAL STATUS LIKE '{name}'"))
                .fetch_optional(pool)
                .await
                .unwrap();
        row.and_then(|(_, v)| v.parse::<u64>().ok()).unwrap_or(0)
    };
    for _ in 0..600 {
        let history: Option<(String, String)> = sqlx::query_as(
            "SELECT NAME, CAST(COUNT AS CHAR) FROM information_schema.INNODB_METRICS \
             WHERE NAME = 'trx_rseg_history_len'",
        )
        .fetch_optional(pool)
        .await
        .unwrap();
        let history = history.map_or(0, |(_, c)| c.parse::<u64>().unwrap_or(0));
        let dirty = status("Innodb_buffer_pool_pages_dirty").await;
        let total = status("Innodb_buffer_pool_pages_total").await.max(1);
        if history < 1000 && dirty * 100 <= total {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

// ---------------------------------------------------------------------------------

#[derive(Debug, Clone, Serialize)]
struct ScaleResult {
    layout: Layout,
    build_seconds: BTreeMap<String, f64>,
    loadavg_before: String,
    pages: Vec<PageResult>,
    lookups: Vec<LookupResult>,
    before_after: Vec<BeforeResult>,
    /// Portal 1's unassignment listing (first page), its statements alone.
    unassignment_sql_bound: Option<Latency>,
    legacy_adoption_seconds: f64,
    index_build_seconds: Option<f64>,
    purges: Vec<PurgeResult>,
    peak_rss_mib: f64,
    buffer_pool_mib: f64,
    /// wrk on `/health/live` (no I/O, no auth): the HTTP ceiling of this machine.
    http_ceiling: f64,
    /// Error-log rows a `LIKE '%…%'` scan reads per millisecond (SELECT COUNT(*) over
    /// the table): the bound of a text search that matches few rows.
    scan_rows_per_ms: f64,
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

async fn run_scale(args: &Args, admin: &str, refs: u64, purge: bool) -> ScaleResult {
    let layout = Layout::new(refs);
    let name = format!("efs_iam_scale_{refs}_{}", std::process::id());
    let url = bench_common::fresh_database(admin, &name).await;
    let mut build = BTreeMap::new();
    let dir = tempfile::tempdir().unwrap();

    // Schema: efs-iam's own migrations.
    let t = Instant::now();
    let status = Command::new(&args.bin)
        .args(["migrate", "--database-url", &url])
        .env("EFS_IAM_LOG", "warn")
        .status()
        .unwrap();
    assert!(status.success(), "efs-iam migrate");
    build.insert("migrate".into(), t.elapsed().as_secs_f64());

    // Data: the seed SQL, section by section, on one connection.
    let template = std::fs::read_to_string(&args.seed_sql).unwrap();
    let seed = sections(&layout.seed_sql(&template));
    let mut conn = MySqlConnection::connect(&url).await.unwrap();
    for (section, sql) in &seed {
        let t = Instant::now();
        sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
        build.insert(section.clone(), t.elapsed().as_secs_f64());
        eprintln!("  [{refs}] {section}: {:.1} s", t.elapsed().as_secs_f64());
    }
    // Sessions: legacy rows first (EFS's, older), then efs-iam's, then the ones that
    // stay valid through the purge measurement.
    let keys = Arc::new(Keys::new());
    let t = Instant::now();
    let start = now();
    write_sessions(&url, &keys, "l", 1..=layout.legacy_sessions, |_| None).await;
    write_sessions(&url, &keys, "s", 1..=layout.hashed_sessions, move |n| {
        Some(start + chrono::Duration::seconds(3600 + (n % 82_800) as i64))
    })
    .await;
    write_sessions(&url, &keys, "v", 1..=layout.live_sessions, move |_| {
        Some(start + chrono::Duration::hours(48))
    })
    .await;
    build.insert("sessions".into(), t.elapsed().as_secs_f64());
    eprintln!("  [{refs}] sessions: {:.1} s", t.elapsed().as_secs_f64());
    let pool = MySqlPool::connect(&url).await.unwrap();
    let t = Instant::now();
    sqlx::raw_sql(
        "ANALYZE TABLE iam_portal_user_reference, iam_user_reference, iam_token_data, \
         iam_error_log, iam_portal_user_group_unassignment_queue, efs_iam_sync_job, \
         efs_iam_sync_job_item",
    )
    .execute(&pool)
    .await
    .unwrap();
    build.insert("analyze".into(), t.elapsed().as_secs_f64());
    settle(&pool).await;

    // The service; its first background purge gives the legacy rows an expiry.
    let started = Instant::now();
    let svc = Service::start(&args.bin, &url, &keys, &dir.path().join("efs-iam.log")).await;
    loop {
        let left: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM iam_token_data WHERE expires_at IS NULL")
                .fetch_one(&pool)
                .await
                .unwrap();
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let legacy_adoption_seconds = started.elapsed().as_secs_f64();
    settle(&pool).await;
    let buffer_pool_mib: f64 = sqlx::query_scalar::<_, u64>("SELECT @@innodb_buffer_pool_size")
        .fetch_one(&pool)
        .await
        .unwrap() as f64
        / 1048576.0;

    let loadavg_before = loadavg();
    eprintln!("  [{refs}] measuring (load average {loadavg_before})");
    let mut pages = Vec::new();
    let chosen = |l: &Listing| {
        args.only_paths.is_empty() || args.only_paths.iter().any(|p| l.path.contains(p.as_str()))
    };
    for l in listings(&layout, args.page_size).into_iter().filter(chosen) {
        let r = measure_listing(&svc, args, &l).await;
        eprintln!(
            "  [{refs}] {}: p1 {:.2}/{:.2} ms, p{} {:.2}/{:.2} ms",
            r.name, r.first.median_ms, r.first.p99_ms, r.deep_page, r.deep.median_ms, r.deep.p99_ms
        );
        pages.push(r);
    }
    let http_ceiling = if args.skip_load {
        f64::NAN
    } else {
        median(
            run_wrk(&svc, args, None, &format!("{}/health/live", svc.base))
                .iter()
                .map(|r| r.0)
                .collect(),
        )
    };
    let scan_rows_per_ms = {
        let t = Instant::now();
        let _: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM iam_error_log WHERE message LIKE '%deactivated%' ESCAPE '!'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        layout.errors as f64 / (t.elapsed().as_secs_f64() * 1000.0)
    };
    let mut lookup_results = Vec::new();
    let all_lookups = if args.only_paths.is_empty() {
        lookups(&layout, &keys)
    } else {
        Vec::new()
    };
    for l in all_lookups {
        let r = measure_lookup(&svc, args, &name, dir.path(), &l).await;
        eprintln!(
            "  [{refs}] {}: {:.2}/{:.2} ms, {:.0} req/s vs SELECT {:.0}/s = {:.0} %",
            r.name,
            r.latency.median_ms,
            r.latency.p99_ms,
            r.http_rate,
            r.select_rate,
            r.ratio * 100.0
        );
        lookup_results.push(r);
    }
    let before_after = if refs >= 100_000 {
        before_and_after(&pool, args.reps).await
    } else {
        Vec::new()
    };
    let unassignment_sql_bound = if refs >= 100_000 {
        Some(unassignment_listing_sql_bound(&pool, args.reps, args.concurrency).await)
    } else {
        None
    };

    let mut purges = Vec::new();
    let mut index_build_seconds = None;
    if purge {
        // Migration 0007 on tables of this size: drop its indexes, put 0002's back,
        // and time the migration's statements.
        sqlx::raw_sql(
            "ALTER TABLE iam_portal_user_reference DROP INDEX portal_status_id, DROP INDEX portal_changes_id; \
             ALTER TABLE iam_error_log DROP INDEX status_code_created_at_id, DROP INDEX error_code_created_at_id, ADD INDEX error_code (error_code); \
             ALTER TABLE iam_portal_user_group_unassignment_queue DROP INDEX portal_id_id; \
             ALTER TABLE efs_iam_sync_job_item DROP INDEX job_state_seq",
        )
        .execute(&pool)
        .await
        .unwrap();
        let migration = std::fs::read_to_string("migrations/mysql/0007_scale_indexes.sql").unwrap();
        let t = Instant::now();
        sqlx::raw_sql(&migration).execute(&pool).await.unwrap();
        index_build_seconds = Some(t.elapsed().as_secs_f64());
        eprintln!(
            "  [{refs}] migration 0007 on these tables: {:.1} s",
            t.elapsed().as_secs_f64()
        );
        settle(&pool).await;

        let store = SqlStore::connect(
            &url,
            &ConnectOptions {
                max_connections: 4,
                acquire_timeout: Duration::from_secs(30),
                // Seeding a million rows takes statements far longer than a request's.
                statement_timeout: Duration::from_secs(3600),
            },
        )
        .await
        .unwrap();
        let clients = args.purge_load_clients;
        // Sessions, one statement (before).
        expire_sessions(&pool).await;
        let expired = sqlx::query("DELETE FROM iam_token_data WHERE expires_at <= UTC_TIMESTAMP()");
        purges.push(
            under_load(
                &svc,
                &layout,
                clients,
                "sessions: one DELETE (before)",
                || one_statement(&pool, expired),
            )
            .await,
        );
        // Refill and expire again; then efs-iam's batched purge.
        settle(&pool).await;
        let start = now();
        write_sessions(&url, &keys, "s", 1..=layout.refs, move |n| {
            Some(start + chrono::Duration::seconds(3600 + (n % 82_800) as i64))
        })
        .await;
        expire_sessions(&pool).await;
        let store_ref = &store;
        purges.push(
            under_load(
                &svc,
                &layout,
                clients,
                "sessions: efs-iam's purge_expired_tokens (batched)",
                || async move {
                    let now = Utc::now();
                    store_ref
                        .purge_expired_tokens(now, now + chrono::Duration::hours(24))
                        .await
                        .unwrap()
                },
            )
            .await,
        );
        // Error log: half a year, one statement (before) …
        settle(&pool).await;
        let cutoff = Utc::now() - chrono::Duration::days(182);
        let cutoff_sql = cutoff.naive_utc().trunc_subsecs(0);
        let older = sqlx::query("DELETE FROM iam_error_log WHERE created_at < ?").bind(cutoff_sql);
        purges.push(
            under_load(
                &svc,
                &layout,
                clients,
                "error log: one DELETE (before)",
                || one_statement(&pool, older),
            )
            .await,
        );
        // … refilled, then through the API.
        settle(&pool).await;
        sqlx::query("TRUNCATE TABLE iam_error_log")
            .execute(&pool)
            .await
            .unwrap();
        let errors = &seed.iter().find(|(s, _)| s == "errors").unwrap().1;
        let session = &seed.iter().find(|(s, _)| s == "session").unwrap().1;
        sqlx::raw_sql(session).execute(&mut conn).await.unwrap();
        sqlx::raw_sql(errors).execute(&mut conn).await.unwrap();
        sqlx::query("ANALYZE TABLE iam_error_log")
            .execute(&pool)
            .await
            .unwrap();
        settle(&pool).await;
        let before = cutoff.format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let svc_ref = &svc;
        purges.push(
            under_load(
                &svc,
                &layout,
                clients,
                "error log: DELETE /api/v1/errors?before= (its worker, paced)",
                || async move {
                    let res = svc_ref
                        .http
                        .delete(svc_ref.url(&format!("/errors?before={before}")))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(res.status(), 202, "purge");
                    let body: Value = res.json().await.unwrap();
                    // The purge is the worker's: measured until it ends.
                    let status = body["status_url"].as_str().unwrap().to_owned();
                    let status = status.trim_start_matches("/api/v1");
                    loop {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        let (_, purge) = svc_ref.get(status).await;
                        match purge["state"].as_str() {
                            Some("succeeded") => break purge["deleted"].as_u64().unwrap(),
                            Some("failed") => panic!("purge failed: {purge}"),
                            _ => {}
                        }
                    }
                },
            )
            .await,
        );
        for p in &purges {
            eprintln!(
                "  [{refs}] {}: {} rows in {:.1} s; lookups p99 {:.2} → {:.2} ms, max {:.1} → {:.1} ms, {} over 50 ms; writes p99 {:.2} → {:.2} ms, max {:.1}",
                p.name,
                p.rows,
                p.seconds,
                p.lookups_before.p99_ms,
                p.lookups_during.p99_ms,
                p.lookups_before.max_ms,
                p.lookups_during.max_ms,
                p.lookups_during_over_50ms,
                p.writes_before.p99_ms,
                p.writes_during.p99_ms,
                p.writes_during.max_ms
            );
        }
    }

    let peak_rss_mib = svc.peak_rss_mib();
    drop(svc);
    pool.close().await;
    drop(conn);
    if !args.keep {
        bench_common::drop_database(admin, &name).await;
    }
    ScaleResult {
        layout,
        build_seconds: build,
        loadavg_before,
        pages,
        lookups: lookup_results,
        before_after,
        unassignment_sql_bound,
        legacy_adoption_seconds,
        index_build_seconds,
        purges,
        peak_rss_mib,
        buffer_pool_mib,
        http_ceiling,
        scan_rows_per_ms,
    }
}

fn ms(x: f64) -> String {
    if x.is_nan() {
        "–".into()
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.2}")
    }
}

fn print_report(args: &Args, results: &[ScaleResult]) {
    let small = &results[0];
    let large = results.last().unwrap();
    println!(
        "## bench/scale, {} UTC\n",
        Utc::now().format("%Y-%m-%d %H:%M")
    );
    println!(
        "sizes: {} (portal user references); {} requests per page from {} clients, limit={}, deep page {}; buffer pool {:.0} MiB\n",
        results
            .iter()
            .map(|r| r.layout.refs.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        args.reps,
        args.concurrency,
        args.page_size,
        args.deep_page,
        large.buffer_pool_mib
    );
    for r in results {
        println!(
            "- {}: build {}; load average before measuring {}; efs-iam peak RSS {:.1} MiB",
            r.layout.refs,
            r.build_seconds
                .iter()
                .map(|(k, v)| format!("{k} {v:.1} s"))
                .collect::<Vec<_>>()
                .join(", "),
            r.loadavg_before,
            r.peak_rss_mib
        );
    }
    println!();
    println!(
        "| listing | page | {} median / p99 ms | {} median / p99 ms | ratio (median) | p99 < 20 ms | ≤ 2× |",
        small.layout.refs, large.layout.refs
    );
    println!("|---|---|---|---|---|---|---|");
    for (s, l) in small.pages.iter().zip(&large.pages) {
        let label = |page: usize, last: bool| {
            if last {
                format!("{page} (last)")
            } else {
                page.to_string()
            }
        };
        for (deep, a, b) in [(false, &s.first, &l.first), (true, &s.deep, &l.deep)] {
            let ratio = b.median_ms / a.median_ms;
            let page = if !deep {
                "1".to_string()
            } else if s.deep_page == l.deep_page {
                label(l.deep_page, l.deep_is_last)
            } else {
                format!(
                    "{}; {} at {}",
                    label(l.deep_page, l.deep_is_last),
                    label(s.deep_page, s.deep_is_last),
                    small.layout.refs
                )
            };
            println!(
                "| {} | {} | {} / {} | {} / {} | {:.2} | {} | {} |",
                l.name,
                page,
                ms(a.median_ms),
                ms(a.p99_ms),
                ms(b.median_ms),
                ms(b.p99_ms),
                ratio,
                if b.p99_ms < 20.0 { "yes" } else { "**no**" },
                if ratio <= 2.0 { "yes" } else { "**no**" }
            );
        }
    }
    println!();
    println!(
        "| lookup (random keys) | {} median / p99 ms | {} median / p99 ms | {} req/s (wrk, {} conns) | p50 / p99 ms | its SELECTs via mariadb-slap /s | ratio | ≥ 0.5 |",
        small.layout.refs, large.layout.refs, large.layout.refs, args.load_connections
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (s, l) in small.lookups.iter().zip(&large.lookups) {
        println!(
            "| {} | {} / {} | {} / {} | {:.0} | {} / {} | {:.0} | {:.2} | {} |",
            l.name,
            ms(s.latency.median_ms),
            ms(s.latency.p99_ms),
            ms(l.latency.median_ms),
            ms(l.latency.p99_ms),
            l.http_rate,
            ms(l.http_p50_ms),
            ms(l.http_p99_ms),
            l.select_rate,
            l.ratio,
            if l.ratio >= 0.5 { "yes" } else { "**no**" }
        );
    }
    println!();
    println!(
        "HTTP ceiling (wrk on /health/live, {} conns): {:.0} req/s at {}, {:.0} req/s at {}; a LIKE '%…%' scan of the error log reads {:.0} rows/ms at {} ({:.0} at {})",
        args.load_connections,
        small.http_ceiling,
        small.layout.refs,
        large.http_ceiling,
        large.layout.refs,
        large.scan_rows_per_ms,
        large.layout.refs,
        small.scan_rows_per_ms,
        small.layout.refs
    );
    if let Some(bound) = &large.unassignment_sql_bound {
        println!();
        println!(
            "Portal 1's unassignment listing (first page) at {} rows, its statements alone (two capped counts and the page) from {} clients at once: median {} / p99 {} ms",
            large.layout.refs,
            args.concurrency,
            ms(bound.median_ms),
            ms(bound.p99_ms)
        );
    }
    if !large.before_after.is_empty() {
        println!();
        println!(
            "| at {} rows, SQL alone | before 0007 median / p99 ms | now median / p99 ms |",
            large.layout.refs
        );
        println!("|---|---|---|");
        for b in &large.before_after {
            println!(
                "| {} | {} / {} | {} / {} |",
                b.name,
                ms(b.before.median_ms),
                ms(b.before.p99_ms),
                ms(b.after.median_ms),
                ms(b.after.p99_ms)
            );
        }
    }
    if !large.purges.is_empty() {
        println!();
        println!(
            "legacy sessions given an expiry at start-up (batched): {} rows in {:.1} s; migration 0007 on the full tables: {:.1} s\n",
            large.layout.legacy_sessions,
            large.legacy_adoption_seconds,
            large.index_build_seconds.unwrap_or(f64::NAN)
        );
        println!("| purge | rows | seconds | lookups before: p99 / max ms | during: p99 / max ms | lookups > 50 ms | token writes before: p99 / max | during: p99 / max | failed requests |");
        println!("|---|---|---|---|---|---|---|---|---|");
        for p in &large.purges {
            println!(
                "| {} | {} | {:.1} | {} / {} | {} / {} | {} of {} | {} / {} | {} / {} | {} |",
                p.name,
                p.rows,
                p.seconds,
                ms(p.lookups_before.p99_ms),
                ms(p.lookups_before.max_ms),
                ms(p.lookups_during.p99_ms),
                ms(p.lookups_during.max_ms),
                p.lookups_during_over_50ms,
                p.lookups_during.n,
                ms(p.writes_before.p99_ms),
                ms(p.writes_before.max_ms),
                ms(p.writes_during.p99_ms),
                ms(p.writes_during.max_ms),
                p.failed
            );
        }
    }
}

/// Resizes InnoDB's buffer pool (online) and waits for the resize; returns the old size.
async fn set_buffer_pool(admin: &str, bytes: u64) -> u64 {
    let pool = MySqlPool::connect(admin).await.unwrap();
    let old: u64 = sqlx::query_scalar("SELECT @@innodb_buffer_pool_size")
        .fetch_one(&pool)
        .await
        .unwrap();
    sqlx::query(&format!("SET GLOBAL innodb_buffer_pool_size = {bytes}"))
        .execute(&pool)
        .await
        .unwrap();
    for _ in 0..600 {
        let status: Option<(String, String)> =
            sqlx::query_as("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_resize_status'")
                .fetch_optional(&pool)
                .await
                .unwrap();
        let done = status.is_none_or(|(_, s)| s.is_empty() || s.contains("Completed"));
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let now: u64 = sqlx::query_scalar("SELECT @@innodb_buffer_pool_size")
        .fetch_one(&pool)
        .await
        .unwrap();
    eprintln!(
        "innodb_buffer_pool_size {} MiB (was {} MiB)",
        now >> 20,
        old >> 20
    );
    pool.close().await;
    old
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let admin = bench_common::admin_url(&args.mysql_admin_url)
        .unwrap_or_else(|| "mysql://root@127.0.0.1:3306/test".into());
    let largest = args.scales.iter().copied().max().unwrap();
    let previous_pool = match args.buffer_pool_mib {
        Some(mib) => Some(set_buffer_pool(&admin, mib << 20).await),
        None => None,
    };
    // The old buffer pool size goes back even when a measurement panics.
    let run = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(async {
        let mut results = Vec::new();
        for &refs in &args.scales {
            eprintln!("== {refs} references");
            results.push(run_scale(&args, &admin, refs, !args.skip_purge && refs == largest).await);
        }
        results
    }))
    .await;
    if let Some(bytes) = previous_pool {
        set_buffer_pool(&admin, bytes).await;
    }
    let results = run.unwrap_or_else(|e| std::panic::resume_unwind(e));
    print_report(&args, &results);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&results).unwrap()).unwrap();
    }
}
