//! The connection pool (`storage::sql::pool`) on both dialects: what it promises instead of
//! sqlx's ping on every release — abandoned transactions rolled back at once, a
//! cancelled statement never bleeding into the next user, and no extra round trip for
//! a connection given back clean.

use std::str::FromStr;
use std::time::{Duration, Instant};

use efs_iam::storage::sql::pool::ConnPool;
use sqlx::mysql::{MySql, MySqlConnectOptions};
use sqlx::sqlite::{Sqlite, SqliteConnectOptions};
use sqlx::{Executor, Row};

async fn mysql_pool(max: u32) -> Option<(ConnPool<MySql>, crate::common::TestDb)> {
    let db = crate::common::TestDb::mysql().await?;
    let options = MySqlConnectOptions::from_str(&db.url).unwrap();
    let pool = ConnPool::connect(options, &limits(max)).await.unwrap();
    (&pool)
        .execute("CREATE TABLE scratch (id INT PRIMARY KEY) ENGINE=InnoDB")
        .await
        .unwrap();
    Some((pool, db))
}

async fn sqlite_pool(max: u32) -> (ConnPool<Sqlite>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("pool.db"))
        .create_if_missing(true)
        .busy_timeout(Duration::from_secs(5));
    let pool = ConnPool::connect(options, &limits(max)).await.unwrap();
    (&pool)
        .execute("CREATE TABLE scratch (id INTEGER PRIMARY KEY)")
        .await
        .unwrap();
    (pool, dir)
}

/// One row into `scratch` through a transaction of either dialect.
async fn insert<DB: efs_iam::storage::sql::pool::Dialect>(
    tx: &mut efs_iam::storage::sql::pool::PoolTransaction<DB>,
    id: i32,
) where
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> i32: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
    sqlx::query("INSERT INTO scratch VALUES (?)")
        .bind(id)
        .execute(&mut **tx)
        .await
        .unwrap();
}

async fn mysql_scratch_ids(pool: &ConnPool<MySql>) -> Vec<i32> {
    sqlx::query_scalar("SELECT id FROM scratch ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

/// Drops `slow` after `ms` milliseconds, then asks the pool (one connection) for
/// something else: the answer must be this question's, whatever the cancelled one
/// left on the connection.
macro_rules! cancel_then_ask {
    ($pool:expr, $slow:expr, $ms:expr) => {{
        let slow = sqlx::query_scalar::<_, String>($slow).fetch_one(&$pool);
        assert!(tokio::time::timeout(Duration::from_millis($ms), slow)
            .await
            .is_err());
        let second: String = sqlx::query_scalar("SELECT 'second'")
            .fetch_one(&$pool)
            .await
            .unwrap();
        assert_eq!(second, "second");
    }};
}

/// A counter of the pool's own session (the pool has one connection in these tests).
async fn session_status(pool: &ConnPool<MySql>, name: &str) -> i64 {
    let row = sqlx::query(&format!("SHOW SESSION STATUS LIKE '{name}'"))
        .fetch_one(pool)
        .await
        .unwrap();
    row.get::<String, _>(1).parse().unwrap()
}

#[tokio::test]
async fn mysql_a_connection_given_back_clean_is_not_checked() {
    let Some((pool, _db)) = mysql_pool(1).await else {
        return;
    };
    // COM_PING counts among MariaDB's admin commands; the reset is a ROLLBACK.
    let pings = session_status(&pool, "Com_admin_commands").await;
    let resets = session_status(&pool, "Com_rollback").await;
    for i in 0..20 {
        let n: i32 = sqlx::query_scalar("SELECT ?")
            .bind(i)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(n, i);
    }
    // sqlx's pool would have pinged 20 times.
    assert_eq!(session_status(&pool, "Com_admin_commands").await, pings);
    assert_eq!(session_status(&pool, "Com_rollback").await, resets);

    // A connection handed out raw and dropped may be mid-statement: reset once.
    drop(pool.acquire().await.unwrap());
    assert_eq!(session_status(&pool, "Com_rollback").await, resets + 1);
    assert_eq!(session_status(&pool, "Com_admin_commands").await, pings);
}

#[tokio::test]
async fn mysql_a_transaction_cancelled_during_its_begin_does_not_stay_open() {
    let Some((pool, _db)) = mysql_pool(1).await else {
        return;
    };
    // A BEGIN that takes a while to answer, dropped before it does.
    let begin = pool.begin_with("DO SLEEP(0.3); BEGIN");
    assert!(tokio::time::timeout(Duration::from_millis(50), begin)
        .await
        .is_err());
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The pool's only connection: outside any transaction, so this insert commits.
    sqlx::query("INSERT INTO scratch VALUES (7)")
        .execute(&pool)
        .await
        .unwrap();
    let in_tx: u64 = sqlx::query_scalar("SELECT @@in_transaction")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(in_tx, 0);
    let mut tx = pool.begin().await.unwrap();
    insert(&mut tx, 8).await;
    tx.rollback().await.unwrap();
    assert_eq!(mysql_scratch_ids(&pool).await, vec![7]);
}

#[tokio::test]
async fn mysql_an_abandoned_transaction_releases_its_locks_at_once() {
    let Some((pool, db)) = mysql_pool(4).await else {
        return;
    };
    let mut tx = pool.begin().await.unwrap();
    insert(&mut tx, 1).await;
    drop(tx);

    // Another session wants the same row. With the rollback left to the connection's
    // next user (it sits idle in the pool), it would wait out its lock timeout.
    let mut other = <sqlx::MySqlConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    other
        .execute("SET SESSION innodb_lock_wait_timeout = 1")
        .await
        .unwrap();
    let started = Instant::now();
    sqlx::query("INSERT INTO scratch VALUES (1)")
        .execute(&mut other)
        .await
        .expect("the abandoned insert was rolled back and its lock released");
    assert!(started.elapsed() < Duration::from_secs(1));
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM scratch")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1, "only the second session's row");
}

#[tokio::test]
async fn mysql_a_cancelled_statement_does_not_reach_the_next_user() {
    let Some((pool, _db)) = mysql_pool(1).await else {
        return;
    };
    cancel_then_ask!(pool, "SELECT CONCAT('first', SLEEP(1))", 100);
}

#[tokio::test]
async fn mysql_commit_and_rollback_end_the_transaction() {
    let Some((pool, _db)) = mysql_pool(1).await else {
        return;
    };
    let mut tx = pool.begin().await.unwrap();
    insert(&mut tx, 1).await;
    tx.commit().await.unwrap();
    let mut tx = pool.begin().await.unwrap();
    insert(&mut tx, 2).await;
    tx.rollback().await.unwrap();
    assert_eq!(mysql_scratch_ids(&pool).await, vec![1]);
}

#[tokio::test]
async fn sqlite_an_abandoned_transaction_releases_the_write_lock_at_once() {
    let (pool, _dir) = sqlite_pool(2).await;
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
    insert(&mut tx, 1).await;
    drop(tx);
    // The other connection: it would wait the 5 s busy timeout for the write lock if
    // the abandoned transaction stayed open until its connection's next use.
    let started = Instant::now();
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM scratch")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(n, 0);
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn sqlite_a_transaction_cancelled_while_waiting_for_the_write_lock_does_not_stay_open() {
    let (pool, dir) = sqlite_pool(1).await;
    // Another process holds the write lock.
    let mut other = <sqlx::SqliteConnection as sqlx::Connection>::connect_with(
        &SqliteConnectOptions::new().filename(dir.path().join("pool.db")),
    )
    .await
    .unwrap();
    other.execute("BEGIN IMMEDIATE").await.unwrap();
    let begin = pool.begin_with("BEGIN IMMEDIATE");
    assert!(tokio::time::timeout(Duration::from_millis(100), begin)
        .await
        .is_err());
    // The lock is freed; the abandoned BEGIN then succeeds on the pool's connection.
    other.execute("COMMIT").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut tx = pool
        .begin_with("BEGIN IMMEDIATE")
        .await
        .expect("the pool's connection is outside any transaction");
    insert(&mut tx, 1).await;
    tx.commit().await.unwrap();
    // Committed for real: another connection sees it.
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM scratch")
        .fetch_one(&mut other)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn sqlite_a_cancelled_statement_does_not_reach_the_next_user() {
    let (pool, _dir) = sqlite_pool(1).await;
    cancel_then_ask!(
        pool,
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000) \
         SELECT CAST(COUNT(*) AS TEXT) FROM c",
        20
    );
}

#[tokio::test]
async fn sqlite_writers_queue_for_their_turn_instead_of_meeting_the_file_lock() {
    let dir = tempfile::tempdir().unwrap();
    // No busy timeout: a writer that met another's lock would fail at once.
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("pool.db"))
        .create_if_missing(true)
        .busy_timeout(Duration::ZERO);
    let pool: ConnPool<Sqlite> = ConnPool::connect(options, &limits(8))
        .await
        .unwrap()
        .serialize_transactions();
    (&pool)
        .execute("CREATE TABLE scratch (id INTEGER PRIMARY KEY)")
        .await
        .unwrap();
    let writers = (0..32).map(|id| {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
            insert(&mut tx, id).await;
            tokio::task::yield_now().await;
            tx.commit().await
        })
    });
    for w in futures::future::join_all(writers).await {
        w.unwrap().expect("no writer met the write lock");
    }
    let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM scratch")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 32);
}

#[tokio::test]
async fn an_exhausted_pool_times_out_instead_of_hanging() {
    let dir = tempfile::tempdir().unwrap();
    let options = SqliteConnectOptions::new()
        .filename(dir.path().join("pool.db"))
        .create_if_missing(true);
    let pool: ConnPool<Sqlite> = ConnPool::connect(
        options,
        &efs_iam::storage::ConnectOptions {
            max_connections: 1,
            acquire_timeout: Duration::from_millis(200),
            statement_timeout: Duration::from_secs(30),
        },
    )
    .await
    .unwrap();
    let held = pool.acquire().await.unwrap();
    let err = sqlx::query("SELECT 1").execute(&pool).await.unwrap_err();
    assert!(matches!(err, sqlx::Error::PoolTimedOut), "{err:?}");
    held.release_clean();
    sqlx::query("SELECT 1").execute(&pool).await.unwrap();
}

/// A pool of `max` connections with the tests' timeouts.
fn limits(max: u32) -> efs_iam::storage::ConnectOptions {
    efs_iam::storage::ConnectOptions {
        max_connections: max,
        acquire_timeout: Duration::from_secs(5),
        statement_timeout: Duration::from_secs(30),
    }
}

/// Three stores migrating one new SQLite file at once (as three instances starting
/// together would): all succeed, each migration applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_concurrent_migrations_all_succeed_and_apply_once() {
    use efs_iam::storage::SqlStore;
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("migrated.db").display());
    let expected = crate::common::migration_files("sqlite");
    let runs = (0..3).map(|_| {
        let url = url.clone();
        async move {
            let store = SqlStore::connect(&url, &crate::common::options())
                .await
                .map_err(|e| e.to_string())?;
            store.migrate().await.map_err(|e| e.to_string())
        }
    });
    for run in futures::future::join_all(runs).await {
        assert_eq!(run, Ok(()), "every migration run succeeds");
    }
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    let (applied, ok): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COUNT(CASE WHEN success THEN 1 END) FROM _sqlx_migrations",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((applied, ok), (expected, expected));
}
