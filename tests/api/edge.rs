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

/// At the connection cap the server accepts nothing more until a connection closes:
/// the next client waits (in the kernel's backlog) rather than costing a descriptor.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let app = spawn_secured_with(|s| {
        s.max_connections = 20;
        s.header_read_timeout = Duration::from_secs(2);
    })
    .await;
    let addr = host_port(&app);
    // Twenty idle connections take every slot.
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(TcpStream::connect(&addr).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let (status, waited) = timed_lookup(&app).await;
    assert_eq!(status, 200);
    assert!(
        waited >= Duration::from_millis(1500),
        "served only once the idle connections were cut off: {waited:?}"
    );
    assert!(waited < Duration::from_secs(5), "{waited:?}");
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
