//! Connections to the memcached servers: a small pool per server (idle connections
//! reused, at most `EFS_IAM_MEMCACHED_POOL_SIZE` open at once), every connect and command
//! bounded by `EFS_IAM_MEMCACHED_TIMEOUT`, and the server that owns a key.

use std::sync::Mutex;

use async_memcached::Client;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::ring::Ring;
use crate::storage::session_tokens::{TokenStoreError, TokenStoreResult};

pub(super) type McResult<T> = Result<T, async_memcached::Error>;

/// Every configured server, the ring that routes keys to them, and the bound on each
/// connect and command.
pub(super) struct Servers {
    servers: Vec<Server>,
    ring: Ring,
    timeout: std::time::Duration,
}

pub(super) struct Server {
    pub(super) addr: String,
    pub(super) idle: Mutex<Vec<Client>>,
    pub(super) permits: std::sync::Arc<Semaphore>,
}

/// A checked-out connection; goes back to the idle list when dropped unless a cut-off
/// command closed it.
pub(super) struct Conn<'a> {
    server: &'a Server,
    client: Option<Client>,
    _permit: OwnedSemaphorePermit,
}

impl std::ops::Deref for Conn<'_> {
    type Target = Client;
    fn deref(&self) -> &Client {
        self.client.as_ref().expect("present until drop")
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut Client {
        self.client.as_mut().expect("present until drop")
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            if !client.is_closed() {
                self.server.idle.lock().expect("pool lock").push(client);
            }
        }
    }
}

impl Servers {
    /// The pools of `addrs`, `pool_size` connections each at most; connections open on
    /// first use.
    pub(super) fn new(addrs: &[String], pool_size: u32, timeout: std::time::Duration) -> Self {
        Self {
            servers: addrs
                .iter()
                .map(|addr| Server {
                    addr: addr.clone(),
                    idle: Mutex::new(Vec::new()),
                    permits: std::sync::Arc::new(Semaphore::new(pool_size as usize)),
                })
                .collect(),
            ring: Ring::new(addrs),
            timeout,
        }
    }

    /// Every server, in the configured order.
    pub(super) fn all(&self) -> &[Server] {
        &self.servers
    }

    /// The server `key` lives on.
    pub(super) fn server(&self, key: &str) -> &Server {
        &self.servers[self.ring.server_for(key.as_bytes())]
    }

    pub(super) fn unavailable(server: &Server, what: impl std::fmt::Display) -> TokenStoreError {
        TokenStoreError::Unavailable(format!("memcached {}: {what}", server.addr))
    }

    pub(super) async fn checkout<'a>(&self, server: &'a Server) -> TokenStoreResult<Conn<'a>> {
        let timeout = self.timeout;
        let permit = tokio::time::timeout(timeout, server.permits.clone().acquire_owned())
            .await
            .map_err(|_| Self::unavailable(server, "all pooled connections busy"))?
            .expect("semaphore never closed");
        let pooled = server.idle.lock().expect("pool lock").pop();
        let client = match pooled {
            Some(c) => c,
            None => tokio::time::timeout(timeout, Client::new(format!("tcp://{}", server.addr)))
                .await
                .map_err(|_| {
                    Self::unavailable(server, format!("no connection within {timeout:?}"))
                })?
                .map_err(|e| Self::unavailable(server, e))?,
        };
        Ok(Conn {
            server,
            client: Some(client),
            _permit: permit,
        })
    }

    /// Runs one command on the key's server within the timeout.
    pub(super) async fn on<T>(
        &self,
        key: &str,
        op: impl for<'c> FnOnce(
            &'c mut Client,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = McResult<T>> + Send + 'c>,
        >,
    ) -> TokenStoreResult<McResult<T>> {
        let server = self.server(key);
        self.on_server(server, op).await
    }

    pub(super) async fn on_server<T>(
        &self,
        server: &Server,
        op: impl for<'c> FnOnce(
            &'c mut Client,
        ) -> std::pin::Pin<
            Box<dyn std::future::Future<Output = McResult<T>> + Send + 'c>,
        >,
    ) -> TokenStoreResult<McResult<T>> {
        let mut conn = self.checkout(server).await?;
        let timeout = self.timeout;
        let result = tokio::time::timeout(timeout, op(&mut conn))
            .await
            .map_err(|_| Self::unavailable(server, format!("no answer within {timeout:?}")))?;
        match result {
            // Transport failures: the server is down or the connection broke.
            Err(
                e @ (async_memcached::Error::Connect(_)
                | async_memcached::Error::Io(_)
                | async_memcached::Error::ConnectionClosed
                | async_memcached::Error::ParseError(_)),
            ) => Err(Self::unavailable(server, e)),
            other => Ok(other),
        }
    }

    pub(super) fn protocol_error(
        key_server: &Server,
        e: async_memcached::Error,
    ) -> TokenStoreError {
        Self::unavailable(key_server, format!("unexpected answer: {e}"))
    }
}
