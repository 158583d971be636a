//! What the edge knows of each client connection, so that a client that stops taking
//! part cannot hold a connection (and at the cap, everyone else) hostage:
//!
//! - [`WatchedIo`] wraps the socket: a response whose bytes the client does not take
//!   for `write_timeout` fails the write, and hyper closes the connection (the request
//!   timeout ends when the handler returns; writing the body to the client comes after
//!   and had no bound). Every read or write that moves bytes is *progress*.
//! - [`Registry`] lists the open connections with their last progress and whether a
//!   request is in the service. At the cap, a new connection takes the place of the
//!   connection that has been stalled longest (no request in the service, no bytes
//!   either way for [`EVICTABLE_AFTER`]): idle keep-alive connections, clients that
//!   stopped reading their answers, slow-header clients. Connections with a request in
//!   the handler are never closed this way; when every connection is busy, the new one
//!   waits.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;

/// How long a connection must have been without progress, and without a request in
/// the service, before a new connection may take its place at the cap.
pub const EVICTABLE_AFTER: Duration = Duration::from_millis(500);

/// One connection as the registry sees it.
pub struct Connection {
    id: u64,
    epoch: Instant,
    /// Milliseconds since `epoch` of the last read or write that moved bytes.
    last_progress: AtomicU64,
    in_service: AtomicUsize,
    evicted: AtomicBool,
    /// Cancelled to close the connection.
    pub close: CancellationToken,
}

impl Connection {
    fn progress(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_progress.store(ms, Ordering::Relaxed);
    }

    /// How long the connection has been stalled, if it may be closed for a newcomer.
    fn stalled_for(&self) -> Option<Duration> {
        if self.in_service.load(Ordering::Relaxed) > 0 || self.evicted.load(Ordering::Relaxed) {
            return None;
        }
        let since = Duration::from_millis(self.last_progress.load(Ordering::Relaxed));
        Some(self.epoch.elapsed().saturating_sub(since))
    }

    /// Marks a request as in the service until the guard drops (the handler answered,
    /// or the request was abandoned).
    pub fn in_service(self: &Arc<Self>) -> InService {
        self.in_service.fetch_add(1, Ordering::Relaxed);
        InService(self.clone())
    }
}

/// A request in the service.
pub struct InService(Arc<Connection>);

impl Drop for InService {
    fn drop(&mut self) {
        self.0.in_service.fetch_sub(1, Ordering::Relaxed);
        self.0.progress();
    }
}

/// The open connections and the slots they hold.
pub struct Registry {
    slots: Arc<Semaphore>,
    live: Mutex<HashMap<u64, Arc<Connection>>>,
    next_id: AtomicU64,
    epoch: Instant,
}

impl Registry {
    pub fn new(max_connections: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_connections.max(1))),
            live: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            epoch: Instant::now(),
        }
    }

    /// A slot for a connection just accepted: a free one, else the slot of the
    /// connection stalled longest (closed for it), else the next one to come free.
    pub async fn admit(self: &Arc<Self>) -> (OwnedSemaphorePermit, Arc<Connection>) {
        let permit = loop {
            if let Ok(p) = self.slots.clone().try_acquire_owned() {
                break p;
            }
            if let Some(victim) = self.most_stalled() {
                victim.evicted.store(true, Ordering::Relaxed);
                victim.close.cancel();
                metrics::counter!("efs_iam_http_connections_evicted_total").increment(1);
                tracing::debug!(
                    connection = victim.id,
                    "closed a stalled connection for a new one"
                );
            }
            tokio::select! {
                p = self.slots.clone().acquire_owned() => break p.expect("the semaphore is never closed"),
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection {
            id,
            epoch: self.epoch,
            last_progress: AtomicU64::new(0),
            in_service: AtomicUsize::new(0),
            evicted: AtomicBool::new(false),
            close: CancellationToken::new(),
        });
        connection.progress();
        self.live.lock().unwrap().insert(id, connection.clone());
        (permit, connection)
    }

    /// Forgets a closed connection.
    pub fn closed(&self, connection: &Connection) {
        self.live.lock().unwrap().remove(&connection.id);
    }

    fn most_stalled(&self) -> Option<Arc<Connection>> {
        self.live
            .lock()
            .unwrap()
            .values()
            .filter_map(|c| c.stalled_for().map(|d| (d, c)))
            .filter(|(d, _)| *d >= EVICTABLE_AFTER)
            .max_by_key(|(d, _)| *d)
            .map(|(_, c)| c.clone())
    }
}

/// A client socket whose progress is recorded and whose writes have a deadline.
pub struct WatchedIo<T> {
    inner: T,
    connection: Arc<Connection>,
    write_timeout: Duration,
    /// Running while a write waits for the client to take bytes.
    write_stall: Option<Pin<Box<Sleep>>>,
}

impl<T> WatchedIo<T> {
    pub fn new(inner: T, connection: Arc<Connection>, write_timeout: Duration) -> Self {
        Self {
            inner,
            connection,
            write_timeout,
            write_stall: None,
        }
    }

    /// After a write came back `Pending`: an error once the client has taken nothing
    /// for `write_timeout`.
    fn stalled(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let timeout = self.write_timeout;
        let stall = self
            .write_stall
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match stall.as_mut().poll(cx) {
            Poll::Ready(()) => {
                metrics::counter!("efs_iam_http_write_timeouts_total").increment(1);
                Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client took no bytes of the answer within the write timeout",
                )))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn wrote(
        &mut self,
        result: Poll<io::Result<usize>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<usize>> {
        match result {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.write_stall = None;
                    self.connection.progress();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending => self.stalled(cx),
            other => other,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WatchedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.connection.progress();
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WatchedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(result, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(result, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Pending => self.stalled(cx).map_ok(drop),
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
