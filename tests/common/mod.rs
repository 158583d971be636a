//! Test support shared by the integration test binaries: a fresh database per test
//! (SQLite file in a temp dir, or a MariaDB database created for the test and dropped
//! afterwards) and the real service on port 0.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use efs_iam::config::{Cli, Settings};
use efs_iam::startup::Application;
use efs_iam::storage::sql::Db;
use efs_iam::storage::{ConnectOptions, SqlStore};

pub const REQUIRE_MYSQL: &str = "EFS_IAM_REQUIRE_MYSQL";

/// A database that exists for one test.
pub struct TestDb {
    pub url: String,
    pub store: Arc<SqlStore>,
    _dir: Option<tempfile::TempDir>,
    drop_mysql: Option<(String, String)>,
}

pub fn options() -> ConnectOptions {
    ConnectOptions {
        max_connections: 10,
        acquire_timeout: Duration::from_secs(5),
    }
}

impl TestDb {
    pub async fn sqlite() -> Self {
        Self::sqlite_with(options(), true).await
    }

    pub async fn sqlite_with(options: ConnectOptions, migrate: bool) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite:{}", dir.path().join("efs-iam.db").display());
        let store = Arc::new(SqlStore::connect(&url, &options).await.expect("sqlite"));
        if migrate {
            store.migrate().await.expect("sqlite migrations");
        }
        Self {
            url,
            store,
            _dir: Some(dir),
            drop_mysql: None,
        }
    }

    /// A fresh MariaDB database, or `None` when `TEST_MYSQL_URL` is unset. Under
    /// `EFS_IAM_REQUIRE_MYSQL=1` (set by scripts/test and CI) a missing URL fails the
    /// test instead, so the MySQL half of the suite can never be skipped silently.
    pub async fn mysql() -> Option<Self> {
        let db = Self::empty_mysql().await?;
        let store = Arc::new(SqlStore::connect(&db.0, &options()).await.expect("mysql"));
        store.migrate().await.expect("mysql migrations");
        Some(Self::from_mysql(db, store))
    }

    /// A fresh, empty MariaDB database: `(url, admin url, name)`.
    pub async fn empty_mysql() -> Option<(String, String, String)> {
        let Ok(admin_url) = std::env::var("TEST_MYSQL_URL") else {
            if std::env::var(REQUIRE_MYSQL).is_ok_and(|v| v == "1") {
                panic!("TEST_MYSQL_URL is not set but {REQUIRE_MYSQL}=1: the MySQL tests must run");
            }
            eprintln!("TEST_MYSQL_URL unset: MySQL variant not run");
            return None;
        };
        let name = format!("efs_iam_test_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::MySqlPool::connect(&admin_url)
            .await
            .expect("connect to TEST_MYSQL_URL");
        sqlx::query(&format!("CREATE DATABASE `{name}`"))
            .execute(&admin)
            .await
            .expect("create test database");
        admin.close().await;
        let base = admin_url
            .rsplit_once('/')
            .map(|(b, _)| b)
            .unwrap_or(&admin_url);
        Some((format!("{base}/{name}"), admin_url, name))
    }

    pub fn from_mysql(db: (String, String, String), store: Arc<SqlStore>) -> Self {
        let (url, admin_url, name) = db;
        Self {
            url,
            store,
            _dir: None,
            drop_mysql: Some((admin_url, name)),
        }
    }

    /// Runs one raw statement (test set-up: legacy rows, broken schemas).
    pub async fn execute(&self, sql: &str) -> u64 {
        match self.store.db() {
            Db::MySql(pool) => sqlx::query(sql)
                .execute(pool)
                .await
                .map(|r| r.rows_affected()),
            Db::Sqlite(pool) => sqlx::query(sql)
                .execute(pool)
                .await
                .map(|r| r.rows_affected()),
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// The number one `SELECT COUNT(*) …` answers.
    pub async fn count(&self, sql: &str) -> i64 {
        match self.store.db() {
            Db::MySql(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            Db::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        }
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// EFS core rows the MySQL foreign keys point at (SQLite has no EFS core).
    pub async fn seed_efs_users(&self, admin_users: &[i32], panelists: &[i32]) {
        if !self.is_mysql() {
            return;
        }
        for (table, ids) in [("users", admin_users), ("panelists", panelists)] {
            for id in ids {
                self.execute(&format!("INSERT IGNORE INTO {table} (uid) VALUES ({id})"))
                    .await;
            }
        }
    }

    pub fn is_mysql(&self) -> bool {
        matches!(self.store.db(), Db::MySql(_))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some((admin_url, name)) = self.drop_mysql.take() {
            // Drop runs outside async context; a short-lived runtime on its own thread
            // removes the database even when the test's runtime is shutting down.
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("runtime");
                rt.block_on(async {
                    if let Ok(admin) = sqlx::MySqlPool::connect(&admin_url).await {
                        // The test's own pool may still hold connections (its runtime
                        // is blocked in this drop): end them so DROP gets its lock.
                        let ids: Vec<i64> = sqlx::query_scalar(
                            "SELECT id FROM information_schema.processlist WHERE db = ?",
                        )
                        .bind(&name)
                        .fetch_all(&admin)
                        .await
                        .unwrap_or_default();
                        for id in ids {
                            let _ = sqlx::query(&format!("KILL {id}")).execute(&admin).await;
                        }
                        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS `{name}`"))
                            .execute(&admin)
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

/// Settings as the service's defaults, listening on an ephemeral port.
pub fn test_settings(database_url: &str) -> Settings {
    let mut settings = Cli::try_parse_from(["efs-iam"])
        .expect("defaults parse")
        .settings;
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.database_url = database_url.to_owned().into();
    settings
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db: TestDb,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server result");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_on(TestDb::sqlite().await, |_| {}).await
}

pub async fn spawn_app_on(db: TestDb, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = test_settings(&db.url);
    adjust(&mut settings);
    let app = Application::with_storage(&settings, db.store.clone())
        .await
        .expect("build app");
    serve(app, db)
}

/// Runs a built application in the background until the `TestApp` is stopped or dropped.
fn serve(app: Application, db: TestDb) -> TestApp {
    let address = format!("http://{}", app.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = rx.await;
    }));
    TestApp {
        address,
        client: reqwest::Client::new(),
        db,
        shutdown: Some(tx),
        server: Some(server),
    }
}

pub const REQUIRE_MEMCACHED: &str = "EFS_IAM_REQUIRE_MEMCACHED";

/// Token keys the tests configure (base64 of 32 bytes each). Not used anywhere else.
pub const KEY_1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
pub const KEY_2: &str = "k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
pub const HASH_KEY: &str = "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=";

/// `TEST_MEMCACHED_SERVERS` (e.g. `127.0.0.1:11211`), or `None` when unset. Under
/// `EFS_IAM_REQUIRE_MEMCACHED=1` (CI) a missing value fails the test instead, so the
/// memcached half can never be skipped silently.
pub fn memcached_servers() -> Option<String> {
    match std::env::var("TEST_MEMCACHED_SERVERS") {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ => {
            if std::env::var(REQUIRE_MEMCACHED).is_ok_and(|v| v == "1") {
                panic!("TEST_MEMCACHED_SERVERS is not set but {REQUIRE_MEMCACHED}=1: the memcached tests must run");
            }
            eprintln!("TEST_MEMCACHED_SERVERS unset: memcached variant not run");
            None
        }
    }
}

/// Configures the given key ring (`id:base64,…`) and the test hash key.
pub fn use_keys(settings: &mut Settings, ring: &str) {
    settings.tokens.token_keys = Some(efs_iam::tokens::KeyRing::parse(ring).expect("test keys"));
    settings.tokens.session_hash_key =
        Some(efs_iam::tokens::SessionHasher::parse(HASH_KEY).expect("test hash key"));
}

/// Points the token vault at memcached, under a key prefix of its own so that tests
/// sharing one memcached do not see each other's entries.
pub fn use_memcached(settings: &mut Settings, servers: &str) {
    settings.tokens.token_store = efs_iam::tokens::TokenBackendKind::Memcached;
    settings.tokens.memcached_servers = Some(efs_iam::tokens::settings::MemcachedServers(
        servers.split(',').map(|s| s.trim().to_owned()).collect(),
    ));
    settings.tokens.memcached_key_prefix =
        format!("efs-iam-test-{}:", uuid::Uuid::new_v4().simple());
}

/// Like [`spawn_app_on`], with the clock the token vault judges expiry by.
pub async fn spawn_app_with_clock(
    db: TestDb,
    clock: efs_iam::tokens::ManualClock,
    adjust: impl FnOnce(&mut Settings),
) -> TestApp {
    let mut settings = test_settings(&db.url);
    adjust(&mut settings);
    let app = Application::with_clock(&settings, db.store.clone(), Arc::new(clock))
        .await
        .expect("build app");
    serve(app, db)
}

/// A TCP forwarder in front of a real server that a test can cut and restore, to
/// play "memcached is down" without touching the shared memcached. Counts the
/// connections it accepted.
pub struct CuttableProxy {
    pub addr: String,
    up: Arc<std::sync::atomic::AtomicBool>,
    pub accepted: Arc<std::sync::atomic::AtomicUsize>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
    task: tokio::task::JoinHandle<()>,
}

impl CuttableProxy {
    pub async fn start(target: &str) -> Self {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let up = Arc::new(AtomicBool::new(true));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let generation = Arc::new(generation);
        let target = target.to_owned();
        let (up2, accepted2, gen2) = (up.clone(), accepted.clone(), generation.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                accepted2.fetch_add(1, Ordering::SeqCst);
                let target = target.clone();
                let mut cut = gen2.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self {
            addr,
            up,
            accepted,
            generation,
            task,
        }
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Every key and value a memcached server holds under `prefix`: a "dump", through
/// `lru_crawler metadump` and `get`.
pub async fn memcached_dump(server: &str, prefix: &str) -> Vec<(String, Vec<u8>)> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let stream = tokio::net::TcpStream::connect(server).await.unwrap();
    let mut stream = BufReader::new(stream);
    stream
        .get_mut()
        .write_all(b"lru_crawler metadump all\r\n")
        .await
        .unwrap();
    let mut keys = Vec::new();
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).await.unwrap();
        let line = line.trim_end();
        if line == "END" || line.is_empty() {
            break;
        }
        if let Some(rest) = line.strip_prefix("key=") {
            let key = rest.split(' ').next().unwrap();
            // metadump URL-encodes keys; ours only use `:`, which it escapes as %3A.
            let key = key.replace("%3A", ":").replace("%3a", ":");
            if key.starts_with(prefix) {
                keys.push(key);
            }
        }
    }
    let mut out = Vec::new();
    for key in keys {
        stream
            .get_mut()
            .write_all(format!("get {key}\r\n").as_bytes())
            .await
            .unwrap();
        let mut header = String::new();
        stream.read_line(&mut header).await.unwrap();
        if header.starts_with("END") {
            continue;
        }
        let len: usize = header
            .trim_end()
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let mut data = vec![0u8; len + 2];
        stream.read_exact(&mut data).await.unwrap();
        data.truncate(len);
        let mut end = String::new();
        stream.read_line(&mut end).await.unwrap();
        out.push((key, data));
    }
    out
}

/// Captures every log line (all levels) emitted on this thread while it lives.
/// `#[tokio::test]` runs the server's tasks on the test's thread, so this sees the
/// service's own logs too.
///
/// One global TRACE subscriber is installed for the whole test binary and routes
/// lines to the capturing thread's buffer. Per-test scoped dispatchers were flaky:
/// tracing caches each callsite's interest globally, and a callsite first hit on
/// another test's thread (with no subscriber) can cache "never" while a scoped
/// dispatcher registers, silently dropping its lines.
pub struct LogCapture {
    buffer: Arc<std::sync::Mutex<Vec<u8>>>,
}

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<Arc<std::sync::Mutex<Vec<u8>>>>> =
        const { std::cell::RefCell::new(None) };
}

impl LogCapture {
    pub fn start() -> Self {
        static INSTALL: std::sync::Once = std::sync::Once::new();
        INSTALL.call_once(|| {
            tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_ansi(false)
                .with_writer(|| ThreadCaptureWriter)
                .try_init()
                .expect("LogCapture needs to install the global subscriber");
        });
        let buffer = Arc::new(std::sync::Mutex::new(Vec::new()));
        CAPTURE.with(|c| *c.borrow_mut() = Some(buffer.clone()));
        Self { buffer }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap()).into_owned()
    }
}

impl Drop for LogCapture {
    fn drop(&mut self) {
        CAPTURE.with(|c| *c.borrow_mut() = None);
    }
}

struct ThreadCaptureWriter;

impl std::io::Write for ThreadCaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(buffer) = c.borrow().as_ref() {
                buffer.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Asserts a problem document of the given status and type slug; returns the fields
/// it names.
#[track_caller]
pub fn assert_problem(
    got: &(reqwest::StatusCode, serde_json::Value),
    status: u16,
    slug: &str,
) -> Vec<String> {
    let (code, body) = got;
    assert_eq!(code.as_u16(), status, "unexpected status, body: {body}");
    assert_eq!(
        body["type"],
        format!("urn:efs-iam:problem:{slug}"),
        "body: {body}"
    );
    assert_eq!(body["status"], status, "body: {body}");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "body: {body}"
    );
    body["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["field"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}
