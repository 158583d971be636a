//! The keys efs-iam writes to memcached (a session's record, a subject's session list;
//! see the module above), and how the session keys on a server are listed.

use std::time::Duration;

use async_memcached::{Client, ErrorKind, Status};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::connections::{McResult, Server, Servers};
use crate::storage::session_tokens::TokenStoreResult;

/// The key names under one prefix (`EFS_IAM_MEMCACHED_KEY_PREFIX`).
pub(super) struct Keys {
    prefix: String,
}

/// The crawler's answer while another crawl runs.
fn is_busy(e: &async_memcached::Error) -> bool {
    matches!(e, async_memcached::Error::Protocol(Status::Error(ErrorKind::Generic(m))) if m.starts_with("BUSY"))
}

impl Keys {
    pub(super) fn new(prefix: String) -> Self {
        Self { prefix }
    }

    /// One session's sealed record.
    pub(super) fn session(&self, hashed: &[u8]) -> String {
        format!("{}t:{}", self.prefix, URL_SAFE_NO_PAD.encode(hashed))
    }

    /// A subject's session list.
    pub(super) fn subject(&self, subject: &[u8]) -> String {
        format!("{}u:{}", self.prefix, URL_SAFE_NO_PAD.encode(subject))
    }

    /// The hashed session id a session key was made from, when `key` is one of ours.
    pub(super) fn hashed_id_of(&self, key: &str) -> Option<Vec<u8>> {
        let encoded = key.strip_prefix(self.prefix.as_str())?.strip_prefix("t:")?;
        URL_SAFE_NO_PAD.decode(encoded).ok()
    }

    /// The hashed id of every session on one server, from the client's `dump_keys`
    /// (`lru_crawler metadump all`, memcached 1.4.31+; the crawler must not be
    /// disabled). memcached runs one crawl at a time and answers `BUSY` to a second:
    /// retried with backoff.
    pub(super) async fn dump_session_ids(
        &self,
        servers: &Servers,
        server: &Server,
        timeout: Duration,
    ) -> TokenStoreResult<Vec<Vec<u8>>> {
        use backon::Retryable;
        let attempt = || async {
            let mut conn = servers.checkout(server).await.map_err(|e| (false, e))?;
            self.list_session_ids(&mut conn)
                .await
                .map_err(|e| (is_busy(&e), Servers::unavailable(server, e)))
        };
        let schedule = backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(20))
            .with_max_delay(Duration::from_millis(500))
            .with_max_times(12)
            .with_jitter();
        // A dump of a large server takes longer than one command: ten timeouts.
        tokio::time::timeout(
            timeout * 10,
            attempt
                .retry(schedule)
                .sleep(tokio::time::sleep)
                .when(|(busy, _)| *busy),
        )
        .await
        .map_err(|_| Servers::unavailable(server, "the key dump did not finish in time"))?
        .map_err(|(_, e)| e)
    }

    async fn list_session_ids(&self, client: &mut Client) -> McResult<Vec<Vec<u8>>> {
        let mut dump = client.dump_keys().await?;
        let mut ids = Vec::new();
        while let Some(entry) = dump.next().await {
            // memcached URI-encodes the keys it dumps (our prefix's `:` is `%3A`).
            let key = percent_encoding::percent_decode(&entry?.key)
                .decode_utf8_lossy()
                .into_owned();
            ids.extend(self.hashed_id_of(&key));
        }
        Ok(ids)
    }

    /// A cursor position for a session key: 63 bits of its (already uniformly
    /// distributed) HMAC, so pages need no server-side order.
    pub(super) fn scan_position(hashed: &[u8]) -> i64 {
        let mut bytes = [0u8; 8];
        let tail = hashed.get(1..9).unwrap_or(&[]);
        bytes[..tail.len()].copy_from_slice(tail);
        ((u64::from_be_bytes(bytes) >> 1) as i64).max(1)
    }
}
