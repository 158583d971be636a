//! The HTTP edge under abuse: slow-header clients, more connections than the cap, and a
//! shutdown that cannot be held up.

use std::time::{Duration, Instant};

use efs_iam::http::server::EdgeLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::auth::{claims, hs256, spawn_secured, spawn_secured_with};
use crate::common::TestApp;

fn host_port(app: &TestApp) -> String {
    app.address.trim_start_matches("http://").to_owned()
}

/// Opens a connection that starts a request and then sends one more header byte every
/// half second, never finishing the head; resolves to how long the server kept it open.
async fn slowloris(addr: String) -> Duration {
    let started = Instant::now();
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(b"GET /api/v1/portals/1/settings HTTP/1.1\r\nHost: efs-iam\r\nX-Slow: ")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                // Closed (or answered, then closed): either way the server let go.
                Ok(0) | Err(_) => return started.elapsed(),
                Ok(_) => continue,
            },
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                if stream.write_all(b"a").await.is_err() {
                    return started.elapsed();
                }
            }
        }
        if started.elapsed() > Duration::from_secs(40) {
            return started.elapsed();
        }
    }
}

/// 1,000 connections trickling header bytes: a normal authenticated lookup is still
/// answered within a second, and the server closes every slow connection within 20 s
/// (the header read timeout is 10 s by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_header_clients_are_cut_off_and_do_not_block_others() {
    let app = spawn_secured().await;
    let addr = host_port(&app);
    let slow: Vec<_> = (0..1000)
        .map(|_| tokio::spawn(slowloris(addr.clone())))
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;

    let (status, took) = timed_lookup(&app).await;
    assert_eq!(status, 200);
    assert!(took < Duration::from_secs(1), "lookup took {took:?}");

    let mut longest = Duration::ZERO;
    for s in slow {
        longest = longest.max(s.await.unwrap());
    }
    assert!(
        longest < Duration::from_secs(20),
        "a slow connection stayed open {longest:?}"
    );
    assert!(
        longest >= Duration::from_secs(9),
        "closed by the header timeout, not earlier: {longest:?}"
    );
}

/// At the connection cap, a new client takes the place of the connection stalled
/// longest: twenty idle connections hold every slot, and a lookup is still answered at
/// once (the oldest idle connection is closed for it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_the_cap_an_idle_connection_makes_room_for_a_new_client() {
    let app = spawn_secured_with(|s| {
        s.max_connections = 20;
        s.header_read_timeout = Duration::from_secs(30);
    })
    .await;
    let addr = host_port(&app);
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (status, waited) = timed_lookup(&app).await;
    assert_eq!(status, 200);
    assert!(waited < Duration::from_secs(1), "{waited:?}");
    // One of the idle twenty was closed for it.
    let mut closed = 0;
    for stream in &mut idle {
        let mut buf = [0u8; 1];
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await
        {
            closed += 1;
        }
    }
    assert!(closed >= 1, "no idle connection was closed");
}

/// Connections whose requests are in the handler are never closed for a newcomer: with
/// every slot busy (bodies that never finish), the next client waits until the request
/// timeout frees one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_the_cap_busy_connections_keep_their_slots() {
    let app = spawn_secured_with(|s| {
        s.max_connections = 10;
        s.request_timeout = Duration::from_secs(2);
    })
    .await;
    let addr = host_port(&app);
    let token = hs256(&claims("iam:write"));
    let mut busy = Vec::new();
    for _ in 0..10 {
        let mut stream = TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /api/v1/errors HTTP/1.1\r\nHost: efs-iam\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        busy.push(stream);
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (status, waited) = timed_lookup(&app).await;
    assert_eq!(status, 200);
    assert!(
        waited >= Duration::from_millis(1000),
        "served only once a busy request timed out: {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}

/// Opens a connection, pipelines `requests` fetches of the OpenAPI document (~200 KB
/// each) and reads nothing; after `hold`, drains it and says whether the server had
/// closed it (end of stream or reset within 3 s of draining).
async fn non_reader(addr: String, requests: usize, hold: Duration) -> bool {
    let Ok(mut stream) = TcpStream::connect(&addr).await else {
        return true;
    };
    let one = "GET /api-docs/openapi.json HTTP/1.1\r\nHost: efs-iam\r\n\r\n";
    let _ = stream.write_all(one.repeat(requests).as_bytes()).await;
    tokio::time::sleep(hold).await;
    let mut buf = vec![0u8; 256 * 1024];
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) | Err(_) => continue,
        }
    }
    false
}

/// Twice the connection cap of clients that pipeline 200 document fetches each and
/// never read: `/health/live` and an authenticated lookup from new clients are answered
/// within a second throughout (p99), and the server closes every stalled connection
/// within 20 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_that_never_read_block_no_one() {
    let cap = 32;
    let app = spawn_secured_with(move |s| s.max_connections = cap as u64).await;
    let addr = host_port(&app);
    let attackers: Vec<_> = (0..cap * 2)
        .map(|_| tokio::spawn(non_reader(addr.clone(), 200, Duration::from_secs(20))))
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut took = Vec::new();
    let until = Instant::now() + Duration::from_secs(15);
    while Instant::now() < until {
        let started = Instant::now();
        let live = reqwest::Client::new()
            .get(app.url("/health/live"))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0);
        assert_eq!(live, 200);
        took.push(started.elapsed());
        let (status, lookup) = timed_lookup(&app).await;
        assert_eq!(status, 200);
        took.push(lookup);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    took.sort();
    let p99 = took[(took.len() * 99 / 100).min(took.len() - 1)];
    assert!(
        p99 < Duration::from_secs(1),
        "p99 {p99:?} over {} calls",
        took.len()
    );
    let mut still_open = 0;
    for a in attackers {
        if !a.await.unwrap() {
            still_open += 1;
        }
    }
    assert_eq!(
        still_open, 0,
        "stalled connections the server kept open past 20 s"
    );
}

/// The cap is lowered at start-up to leave the process room under its open-file limit.
#[test]
fn the_cap_fits_under_the_open_file_limit() {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let soft: u64 = line["Max open files".len()..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let cap = EdgeLimits::fit_connection_cap(1_000_000, 100) as u64;
    assert!(cap + 100 < soft, "cap {cap} with limit {soft}");
    assert_eq!(
        EdgeLimits::fit_connection_cap(64, 100),
        64,
        "a small cap stays"
    );
}

/// A shutdown is not held up by a client that never finishes its request.
#[tokio::test]
async fn shutdown_has_a_deadline() {
    let mut app = spawn_secured_with(|s| {
        s.shutdown_timeout = Duration::from_secs(1);
        s.header_read_timeout = Duration::from_secs(60);
    })
    .await;
    let addr = host_port(&app);
    let token = hs256(&claims("iam:write"));
    let mut stuck = TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /api/v1/errors HTTP/1.1\r\nHost: efs-iam\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    stuck.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    app.stop().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
}

/// An authenticated lookup from a new client: its status and how long it took.
async fn timed_lookup(app: &TestApp) -> (reqwest::StatusCode, Duration) {
    let token = hs256(&claims("iam:read"));
    let started = Instant::now();
    let res = reqwest::Client::new()
        .get(app.url("/api/v1/portals/1/settings"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    (res.status(), started.elapsed())
}
