//! Test support shared by the integration test binaries: a fresh database per test
//! (SQLite file in a temp dir, or a MariaDB database created for the test and dropped
//! afterwards) and the real service on port 0.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use efs_iam::config::{Cli, Settings};
use efs_iam::startup::Application;
use efs_iam::storage::mysql::MySqlStore;
use efs_iam::storage::sqlite::SqliteStore;
use efs_iam::storage::{ConnectOptions, Storage};

pub const REQUIRE_MYSQL: &str = "EFS_IAM_REQUIRE_MYSQL";

pub enum Backend {
    Sqlite(Arc<SqliteStore>),
    MySql(Arc<MySqlStore>),
}

/// A database that exists for one test.
pub struct TestDb {
    pub url: String,
    pub storage: Storage,
    pub backend: Backend,
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
        let store = Arc::new(SqliteStore::connect(&url, &options).await.expect("sqlite"));
        if migrate {
            store.migrate().await.expect("sqlite migrations");
        }
        Self {
            url,
            storage: Storage {
                store: store.clone(),
                tokens: store.clone(),
            },
            backend: Backend::Sqlite(store),
            _dir: Some(dir),
            drop_mysql: None,
        }
    }

    /// A fresh MariaDB database, or `None` when `TEST_MYSQL_URL` is unset. Under
    /// `EFS_IAM_REQUIRE_MYSQL=1` (set by scripts/test and CI) a missing URL fails the
    /// test instead, so the MySQL half of the suite can never be skipped silently.
    pub async fn mysql() -> Option<Self> {
        let db = Self::empty_mysql().await?;
        let store = Arc::new(MySqlStore::connect(&db.0, &options()).await.expect("mysql"));
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

    pub fn from_mysql(db: (String, String, String), store: Arc<MySqlStore>) -> Self {
        let (url, admin_url, name) = db;
        Self {
            url,
            storage: Storage {
                store: store.clone(),
                tokens: store.clone(),
            },
            backend: Backend::MySql(store),
            _dir: None,
            drop_mysql: Some((admin_url, name)),
        }
    }

    /// EFS core rows the MySQL foreign keys point at (SQLite has no EFS core).
    pub async fn seed_efs_users(&self, admin_users: &[i32], panelists: &[i32]) {
        let Backend::MySql(store) = &self.backend else {
            return;
        };
        for (table, ids) in [("users", admin_users), ("panelists", panelists)] {
            for id in ids {
                sqlx::query(&format!("INSERT IGNORE INTO {table} (uid) VALUES (?)"))
                    .bind(id)
                    .execute(store.pool())
                    .await
                    .expect("seed EFS core row");
            }
        }
    }

    pub fn is_mysql(&self) -> bool {
        matches!(self.backend, Backend::MySql(_))
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
    let app = Application::with_storage(&settings, db.storage.clone())
        .await
        .expect("build app");
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

/// Captures every log line (all levels) emitted on this thread while the guard lives.
/// `#[tokio::test]` runs the server's tasks on the test's thread, so this sees the
/// service's own logs too.
pub struct LogCapture {
    buffer: Arc<std::sync::Mutex<Vec<u8>>>,
    _guard: tracing::dispatcher::DefaultGuard,
}

impl LogCapture {
    pub fn start() -> Self {
        let buffer = Arc::new(std::sync::Mutex::new(Vec::new()));
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || CaptureWriter(writer.clone()))
            .finish();
        Self {
            buffer,
            _guard: tracing::dispatcher::set_default(&tracing::Dispatch::new(subscriber)),
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.buffer.lock().unwrap()).into_owned()
    }
}

struct CaptureWriter(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
