use std::time::{Duration, Instant};

use efs_iam::storage::ConnectOptions;

use crate::common::{assert_problem, Api};
use crate::common::{spawn_app, spawn_app_on, TestApp, TestDb};

/// A little longer than a readiness answer is reused.
const READY_TTL: Duration = Duration::from_millis(1100);

#[tokio::test]
async fn live_and_ready() {
    let app = spawn_app().await;
    let (status, body) = app.get("/health/live").await;
    assert_eq!(
        (status.as_u16(), body["status"].as_str()),
        (200, Some("ok"))
    );
    let (status, body) = app.get("/health/ready").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["components"]["database"]["status"], "up");
}

#[tokio::test]
async fn ready_is_red_on_an_unmigrated_database() {
    let db = TestDb::sqlite_with(crate::common::options(), false).await;
    let app = spawn_app_on(db, |_| {}).await;
    let (status, body) = app.get("/health/ready").await;
    assert_eq!(status, 503);
    assert_eq!(body["status"], "unavailable");
    assert_eq!(body["components"]["database"]["status"], "down");
    assert!(body["components"]["database"]["detail"].is_string());
}

/// A database that does not answer (every connection held) turns readiness red within
/// the readiness timeout, and data calls into 503 problems, not hangs or 500s.
#[tokio::test]
async fn hanging_database_gives_bounded_503s() {
    let (app, store) = app_on_a_one_connection_pool().await;
    assert_eq!(app.get("/health/ready").await.0, 200);

    let held = store.acquire().await.unwrap();
    // Past the one second a readiness answer is reused.
    tokio::time::sleep(READY_TTL).await;
    let started = Instant::now();
    let (status, body) = app.get("/health/ready").await;
    let took = started.elapsed();
    assert_eq!(status, 503, "{body}");
    assert!(body["components"]["database"]["detail"]
        .as_str()
        .unwrap()
        .contains("no answer"));
    assert!(took < Duration::from_millis(690), "answered after {took:?}");
    assert_eq!(app.get("/health/live").await.0, 200, "liveness does no I/O");

    let got = app.get("/api/v1/portals/1/settings").await;
    assert_problem(&got, 503, "database-unavailable");
    drop(held);
    tokio::time::sleep(READY_TTL).await;
    assert_eq!(app.get("/health/ready").await.0, 200, "recovers");
}

#[tokio::test]
async fn metrics_count_requests_by_route() {
    let app = spawn_app().await;
    app.get("/api/v1/portals/31337/settings").await;
    // Made-up methods share one label, so clients cannot grow the series without bound.
    let odd = reqwest::Method::from_bytes(b"PURGEALL").unwrap();
    let res = app
        .client
        .request(odd, app.url("/api/v1/portals/31337/settings"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(text.contains(r#"http_requests_total{method="GET",route="/api/v1/portals/{portal_id}/settings",status="200"}"#), "{text}");
    assert!(text.contains(r#"http_requests_total{method="other",route="/api/v1/portals/{portal_id}/settings",status="405"}"#), "{text}");
    assert!(!text.contains("PURGEALL"), "{text}");
    assert!(text.contains("http_request_duration_seconds_bucket"));
    assert!(text.contains("db_pool_connections"));
}

#[tokio::test]
async fn request_ids_are_made_or_propagated() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/health/live"))
        .send()
        .await
        .unwrap();
    let made = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(made.len(), 36, "a UUID: {made}");
    let res = app
        .client
        .get(app.url("/health/live"))
        .header("x-request-id", "efs-admin-req-1")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "efs-admin-req-1");
}

/// In-flight requests finish when shutdown is signalled: the request below is inside
/// its handler, waiting for the only database connection, when shutdown starts.
#[tokio::test]
async fn graceful_shutdown_lets_in_flight_requests_finish() {
    let options = ConnectOptions {
        max_connections: 1,
        acquire_timeout: Duration::from_secs(10),
        ..ConnectOptions::default()
    };
    let db = TestDb::sqlite_with(options, true).await;
    let efs_iam::storage::sql::Db::Sqlite(store) = db.store.db() else {
        unreachable!()
    };
    let store = store.clone();
    let mut app = spawn_app_on(db, |_| {}).await;
    let held = store.acquire().await.unwrap();
    let client = app.client.clone();
    let url = app.url("/api/v1/portals/1/unassignments");
    let in_flight = tokio::spawn(async move {
        client
            .post(url)
            .json(&serde_json::json!({"users": [{"user_id": 1, "okta_user_id": "00uX"}]}))
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let address = app.url("/health/live");
    let stopping = tokio::spawn(async move {
        app.stop().await;
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !stopping.is_finished(),
        "shutdown waits for the in-flight request"
    );
    drop(held);
    let res = in_flight.await.unwrap().expect("answered, not cut off");
    assert_eq!(res.status(), 202);
    stopping.await.unwrap();
    assert!(reqwest::get(address).await.is_err(), "no longer listening");
}

/// MariaDB closing busy pooled connections (a restart or failover under load) costs at
/// most one call per connection: the pool checks a connection only after an error, a
/// cancellation or idleness (see `storage::pool`), so this proves dead connections are
/// replaced.
#[tokio::test]
async fn mysql_connections_killed_by_the_server_are_replaced() {
    let Some(db) = TestDb::mysql().await else {
        return;
    };
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    let admin = std::env::var("TEST_MYSQL_URL").unwrap();
    let app = spawn_app_on(db, |_| {}).await;
    for _ in 0..5 {
        let (status, body) = app.get("/api/v1/portals/1/settings").await;
        assert_eq!(status, 200, "{body}");
    }
    let admin_pool = sqlx::MySqlPool::connect(&admin).await.unwrap();
    let ids: Vec<(i64,)> =
        sqlx::query_as("SELECT id FROM information_schema.processlist WHERE db = ?")
            .bind(&name)
            .fetch_all(&admin_pool)
            .await
            .unwrap();
    assert!(!ids.is_empty(), "the app holds pooled connections");
    for (id,) in &ids {
        let _ = sqlx::query(&format!("KILL CONNECTION {id}"))
            .execute(&admin_pool)
            .await;
    }
    let mut statuses = Vec::new();
    for _ in 0..(ids.len() + 5) {
        statuses.push(app.get("/api/v1/portals/1/settings").await.0.as_u16());
    }
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 503),
        "only 200s, and 503s while a dead connection is found: {statuses:?}"
    );
    assert!(
        statuses[ids.len()..].iter().all(|s| *s == 200),
        "every dead connection was replaced: {statuses:?}"
    );
}

/// A flood of readiness probes runs at most one check at a time and reuses its answer,
/// so it cannot take the database pool (here: one connection) from real requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_of_ready_probes_leaves_the_pool_to_requests() {
    let options = ConnectOptions {
        max_connections: 1,
        acquire_timeout: Duration::from_millis(500),
        ..ConnectOptions::default()
    };
    let db = TestDb::sqlite_with(options, true).await;
    let app = spawn_app_on(db, |s| s.max_concurrent_requests = 10_000).await;
    let url = app.url("/health/ready");
    let stop = tokio_util::sync::CancellationToken::new();
    let mut flood = Vec::new();
    for _ in 0..64 {
        let (client, url, stop) = (app.client.clone(), url.clone(), stop.clone());
        flood.push(tokio::spawn(async move {
            let mut probes = 0u32;
            while !stop.is_cancelled() {
                let res = client.get(&url).send().await.unwrap();
                assert_eq!(res.status(), 200);
                probes += 1;
            }
            probes
        }));
    }
    for _ in 0..40 {
        let (status, body) = app.get("/api/v1/portals/1/settings").await;
        assert_eq!(status, 200, "a lookup during the flood: {body}");
    }
    stop.cancel();
    let mut probes = 0;
    for f in flood {
        probes += f.await.unwrap();
    }
    assert!(probes > 200, "a flood: {probes} probes");
}

/// A readiness answer is reused for a second: a probe right after one does not touch
/// the database (here: held by someone else) and answers at once.
#[tokio::test]
async fn a_readiness_answer_is_reused_for_a_second() {
    let (app, store) = app_on_a_one_connection_pool().await;
    let (status, fresh) = app.get("/health/ready").await;
    assert_eq!(status, 200);
    let held = store.acquire().await.unwrap();
    let started = Instant::now();
    let (status, reused) = app.get("/health/ready").await;
    assert_eq!(status, 200, "{reused}");
    assert_eq!(reused, fresh);
    assert!(
        started.elapsed() < Duration::from_millis(250),
        "no check was run"
    );
    tokio::time::sleep(READY_TTL).await;
    assert_eq!(app.get("/health/ready").await.0, 503, "checked again");
    drop(held);
}

/// The service on a SQLite database whose pool holds one connection (700 ms to wait for
/// it), readiness bounded at 300 ms; and that pool, for a test to hold its connection.
async fn app_on_a_one_connection_pool(
) -> (TestApp, efs_iam::storage::sql::pool::ConnPool<sqlx::Sqlite>) {
    let options = ConnectOptions {
        max_connections: 1,
        acquire_timeout: Duration::from_millis(700),
        ..ConnectOptions::default()
    };
    let db = TestDb::sqlite_with(options, true).await;
    let efs_iam::storage::sql::Db::Sqlite(store) = db.store.db() else {
        unreachable!()
    };
    let store = store.clone();
    let app = spawn_app_on(db, |s| s.ready_timeout = Duration::from_millis(300)).await;
    (app, store)
}
