//! A fresh database per test: an SQLite file in a temp dir, or a MariaDB database
//! created for the test and dropped afterwards; and the backend matrix that runs a test
//! on both.

use std::sync::Arc;
use std::time::Duration;

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
        // Generous: a loaded CI machine must not turn a slow statement into a failure.
        statement_timeout: Duration::from_secs(30),
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

    /// A fresh, migrated MariaDB database reached through a [`CuttableProxy`] that the
    /// test can cut (the database is down) or freeze (it hangs), with these pool
    /// limits; `None` as [`Self::mysql`].
    pub async fn mysql_behind_proxy(
        options: ConnectOptions,
    ) -> Option<(Self, crate::common::CuttableProxy)> {
        let (url, admin, name) = Self::empty_mysql().await?;
        let direct = SqlStore::connect(&url, &self::options())
            .await
            .expect("mysql");
        direct.migrate().await.expect("mysql migrations");
        let mut proxied = reqwest::Url::parse(&url).expect("a URL");
        let target = format!(
            "{}:{}",
            proxied.host_str().unwrap_or("127.0.0.1"),
            proxied.port().unwrap_or(3306)
        );
        let proxy = crate::common::CuttableProxy::start(&target).await;
        let (host, port) = proxy.addr.rsplit_once(':').expect("host:port");
        proxied.set_host(Some(host)).unwrap();
        proxied.set_port(Some(port.parse().unwrap())).unwrap();
        let url = proxied.to_string();
        let store = Arc::new(
            SqlStore::connect(&url, &options)
                .await
                .expect("mysql via proxy"),
        );
        Some((Self::from_mysql((url, admin, name), store), proxy))
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

/// The backend matrix: each named `async fn name(arg)` becomes a test in module
/// `$sqlite`, on a fresh SQLite database, and one in module `$mysql`, on a fresh
/// MariaDB database (skipped without `TEST_MYSQL_URL`, a failure under
/// `EFS_IAM_REQUIRE_MYSQL=1`). `$prepare`, an async closure written as seen from inside
/// those modules (`|db| super::env_on(db)`), makes the test's argument; without it the
/// test gets the [`TestDb`].
#[macro_export]
macro_rules! backend_matrix {
    (#[$test:meta] $sqlite:ident, $mysql:ident, $prepare:expr; $($name:ident),* $(,)?) => {
        mod $sqlite {
            $(
                #[$test]
                async fn $name() {
                    let db = $crate::common::TestDb::sqlite().await;
                    super::$name(($prepare)(db).await).await;
                }
            )*
        }
        mod $mysql {
            $(
                #[$test]
                async fn $name() {
                    if let Some(db) = $crate::common::TestDb::mysql().await {
                        super::$name(($prepare)(db).await).await;
                    }
                }
            )*
        }
    };
    (#[$test:meta] $sqlite:ident, $mysql:ident; $($name:ident),* $(,)?) => {
        $crate::backend_matrix!(
            #[$test] $sqlite, $mysql, |db| async move { db }; $($name),*
        );
    };
}

impl TestDb {
    /// Records Okta users as managed by efs-iam (as an adoption does), so references
    /// may name them.
    pub async fn manage_okta_users(&self, ids: &[&str]) {
        use efs_iam::storage::{ManagedOrigin, ManagedUserStore};
        for id in ids {
            self.store
                .manage_okta_user(
                    &efs_iam::domain::OktaUserId::parse(id).unwrap(),
                    ManagedOrigin::Adopted,
                    "test-admin",
                    None,
                    efs_iam::storage::now(),
                )
                .await
                .unwrap();
        }
    }

    /// Sets the portal's Okta group in the database, past the API's check that Okta
    /// has it: a group deleted in Okta since, or a setting from before efs-iam checked
    /// them.
    pub async fn link_portal_unchecked(&self, portal: i32, group: &str) {
        use efs_iam::storage::PortalSettingsStore;
        self.store
            .put_portal_settings(
                efs_iam::domain::PortalId::new(portal).unwrap(),
                &[(
                    efs_iam::domain::SettingKey::parse("okta_group_id").unwrap(),
                    Some(group.to_owned()),
                )],
            )
            .await
            .unwrap();
    }
}

/// How many migrations `migrations/<dialect>` holds: what `_sqlx_migrations` must list
/// once a database is migrated.
pub fn migration_files(dialect: &str) -> i64 {
    let dir = format!("{}/migrations/{dialect}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_dir(dir)
        .expect("the migrations folder")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "sql"))
        })
        .count() as i64
}
