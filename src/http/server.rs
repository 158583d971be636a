//! The HTTP edge: accepts connections and serves HTTP/1.1 on them, with what a public
//! listener needs against slow or greedy clients (axum's own `serve` has neither):
//!
//! - a **header read timeout**: a connection that has not sent a complete request head
//!   within `EFS_IAM_HEADER_READ_TIMEOUT` (also between keep-alive requests) is closed,
//!   so slowloris-style clients cannot hold connections open;
//! - a **write timeout** (`EFS_IAM_WRITE_TIMEOUT`): a client that takes none of an
//!   answer's bytes for that long has its connection closed (`connections.rs`), so a
//!   client that pipelines requests and never reads holds nothing for long; hyper reads
//!   at most [`MAX_BUFFERED_BYTES`] of pipelined requests ahead of the one it answers;
//! - a **connection cap** (`EFS_IAM_MAX_CONNECTIONS`, lowered at start-up to fit the
//!   process's open-file limit), so the process never runs out of file descriptors for
//!   its database and Okta connections. At the cap, a new connection takes the place
//!   of the one stalled longest (idle, or not reading, for half a second, with no
//!   request in the handler); only when every connection is busy does it wait (in the
//!   kernel's backlog);
//! - a **graceful shutdown with a deadline**: on the signal the listener closes,
//!   requests in flight finish, idle keep-alive connections are closed, and whatever is
//!   still open at `EFS_IAM_SHUTDOWN_TIMEOUT` is dropped.
//!
//! HTTP/1.1 only: EFS-Admin (PHP curl), load balancers and browsers all speak it, and
//! one protocol is one set of limits to get right.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use super::connections::{Registry, WatchedIo};

/// How much of the requests a client pipelines hyper reads ahead (its read buffer).
pub const MAX_BUFFERED_BYTES: usize = 64 * 1024;

/// Limits of the HTTP edge.
#[derive(Debug, Clone)]
pub struct EdgeLimits {
    pub header_read_timeout: Duration,
    /// Longest a client may take none of an answer's bytes.
    pub write_timeout: Duration,
    pub max_connections: usize,
    /// Longest the graceful shutdown waits for open connections.
    pub shutdown_timeout: Duration,
}

/// File descriptors kept free of client connections for everything else the process
/// opens (database pool, memcached, Okta, log files, the listener).
const RESERVED_FDS: u64 = 256;

impl EdgeLimits {
    /// `configured`, lowered to fit under the process's open-file limit with room for
    /// `other_connections` and [`RESERVED_FDS`]; the limit is read on Linux only.
    pub fn fit_connection_cap(configured: u64, other_connections: u64) -> usize {
        let Some(limit) = open_file_limit() else {
            return configured as usize;
        };
        let room = limit
            .saturating_sub(other_connections + RESERVED_FDS)
            .max(16);
        if configured > room {
            tracing::warn!(
                configured,
                open_file_limit = limit,
                cap = room,
                "EFS_IAM_MAX_CONNECTIONS lowered to fit the open-file limit"
            );
        }
        configured.min(room) as usize
    }
}

/// The soft `RLIMIT_NOFILE`, from `/proc/self/limits`.
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Serves `router` on `listener` until `shutdown` resolves, then shuts down gracefully
/// within the deadline.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: EdgeLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(MAX_BUFFERED_BYTES)
        .keep_alive(true);
    let registry = Arc::new(Registry::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let service = TowerToHyperService::new(router);
    tokio::pin!(shutdown);
    metrics::gauge!("efs_iam_http_connection_limit").set(limits.max_connections as f64);
    loop {
        // Accept first, then find the newcomer a slot: a stalled connection is closed
        // for it only when someone is actually waiting.
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_error(e).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let (slot, watched) = tokio::select! {
            admitted = registry.admit() => admitted,
            _ = &mut shutdown => break,
        };
        // Small request/response exchanges: send each answer at once.
        let _ = stream.set_nodelay(true);
        let io = WatchedIo::new(stream, watched.clone(), limits.write_timeout);
        let in_service = watched.clone();
        let inner = service.clone();
        let service = hyper::service::service_fn(move |request| {
            let guard = in_service.in_service();
            let answer = hyper::service::Service::call(&inner, request);
            async move {
                let answer = answer.await;
                drop(guard);
                answer
            }
        });
        let connection = builder.serve_connection(TokioIo::new(io), service);
        let connection = graceful.watch(connection);
        metrics::gauge!("efs_iam_http_connections_open").increment(1.0);
        let registry = registry.clone();
        tokio::spawn(async move {
            tokio::select! {
                // Errors here are the client's (reset, timed out, malformed): not ours
                // to log above debug.
                ended = connection => if let Err(e) = ended {
                    tracing::debug!(error = %e, "connection ended with an error");
                },
                _ = watched.close.cancelled() => {}
            }
            registry.closed(&watched);
            metrics::gauge!("efs_iam_http_connections_open").decrement(1.0);
            drop(slot);
        });
    }
    drop(listener);
    tracing::info!("shutting down: no new connections; finishing requests in flight");
    if tokio::time::timeout(limits.shutdown_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            deadline = ?limits.shutdown_timeout,
            "connections still open at the shutdown deadline were dropped"
        );
    }
    Ok(())
}

/// A failed `accept`: per-connection errors (the client went away) are skipped at once;
/// anything else (out of file descriptors) pauses accepting briefly rather than spin.
async fn accept_error(e: std::io::Error) {
    use std::io::ErrorKind::*;
    if matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed; pausing for a second");
    tokio::time::sleep(Duration::from_secs(1)).await;
}
