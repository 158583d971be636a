//! The memcached token store ("V2" of the seed): one or several servers, keys spread
//! across them by consistent hashing, native expiry.
//!
//! Client: Shopify's `async-memcached` (tokio, cancellation-safe: a command cut short
//! by our timeout closes its connection instead of leaving an unread reply behind).
//! It speaks to one server per connection, so routing and pooling are ours:
//!
//! * **Routing:** a ketama-style hash ring ([`Ring`]): each server owns 160 points
//!   (SHA-256 of `"<host:port>-<n>"`), a key goes to the first point at or after
//!   SHA-256 of the key. Adding or removing one of N servers moves about 1/N of the
//!   keys. A server that is down is **not** skipped: its keys answer 503 until it is
//!   back. Re-routing them would hand out "not found" for live sessions and, worse,
//!   resurrect logged-out ones when the server returns.
//! * **Pool:** per server, idle connections are reused, at most
//!   `EFS_IAM_MEMCACHED_POOL_SIZE` are open at once, and every connect or command is
//!   bounded by `EFS_IAM_MEMCACHED_TIMEOUT`.
//!
//! Keys (`<prefix>` is `EFS_IAM_MEMCACHED_KEY_PREFIX`, values are the vault's sealed
//! envelopes, so a dump shows neither a session id nor a token):
//!
//! * `<prefix>t:<base64url(HMAC of the session id)>`: one session's sealed record,
//!   with the record's expiry as memcached's own expiry.
//! * `<prefix>u:<base64url(HMAC of the Okta subject)>`: the subject's session keys,
//!   space-separated, appended atomically (`ms … MA N<ttl>`), kept for the maximum
//!   token lifetime. "Log out everywhere" deletes each listed key, then the list.
//!
//! `tokens re-encrypt` lists the session keys with `lru_crawler metadump all` (the
//! crawler must be enabled, as it is by default) and rewrites each entry by
//! compare-and-swap, keeping its remaining TTL.
//!
//! Addresses are IPv4 or host names: the client crate connects over IPv4 only, so an
//! IPv6 literal is refused at start-up.
//!
//! memcached is a cache: under memory pressure it evicts, and an evicted subject list
//! means "log out everywhere" misses sessions. Run the token store's memcached with
//! `-M` (refuse writes rather than evict) and enough memory.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_memcached::{AsciiProtocol, ErrorKind, MetaProtocol, Status};
use async_trait::async_trait;
use chrono::{DateTime, Utc};

mod connections;
mod keys;
mod ring;

use connections::Servers;
use keys::Keys;
pub use ring::Ring;

use super::session_tokens::{
    NewTokenRecord, StoredToken, TokenKey, TokenRow, TokenStore, TokenStoreError, TokenStoreResult,
};

/// memcached's own per-item overhead (item header, key, suffix and CAS) is below this;
/// a value must fit the item limit together with it.
const ITEM_OVERHEAD: usize = 128;
/// Relative expiry times above this are read by memcached as absolute Unix times.
const MAX_RELATIVE_EXPIRY: i64 = 30 * 24 * 3600;

#[derive(Debug, Clone)]
pub struct MemcachedOptions {
    pub servers: Vec<String>,
    pub timeout: Duration,
    pub pool_size: u32,
    pub max_item_bytes: usize,
    pub key_prefix: String,
    /// How long a subject's session list is kept: the longest a session can live.
    pub max_lifetime: Duration,
}

pub struct MemcachedStore {
    servers: Servers,
    keys: Keys,
    options: MemcachedOptions,
    /// The hashed session ids listed by the scan that started last (`scan_tokens`
    /// from 0), by cursor: later pages are served from it instead of dumping every
    /// server again for each page.
    scan: Mutex<Vec<(i64, Vec<u8>)>>,
}

fn is_too_large(e: &async_memcached::Error) -> bool {
    matches!(e, async_memcached::Error::Protocol(Status::Error(ErrorKind::Server(m))) if m.contains("too large"))
}

impl MemcachedStore {
    /// Sets up the pools; connections open on first use, so a server that is down at
    /// start-up only makes readiness red.
    pub fn new(options: MemcachedOptions) -> anyhow::Result<Self> {
        anyhow::ensure!(!options.servers.is_empty(), "no memcached servers");
        Ok(Self {
            servers: Servers::new(&options.servers, options.pool_size, options.timeout),
            keys: Keys::new(options.key_prefix.clone()),
            options,
            scan: Mutex::new(Vec::new()),
        })
    }

    /// One item with the given meta flags (`v` value, `t` remaining TTL, `c` CAS);
    /// `None` when it is not there.
    async fn meta_item(
        &self,
        key: &str,
        flags: &'static [&'static str],
    ) -> TokenStoreResult<Option<async_memcached::MetaValue>> {
        let k = key.to_owned();
        match self
            .servers
            .on(key, move |c| {
                Box::pin(async move { c.meta_get(k, false, None, Some(flags)).await })
            })
            .await?
        {
            Ok(found) => Ok(found),
            Err(async_memcached::Error::Protocol(Status::NotFound)) => Ok(None),
            Err(e) => Err(Servers::protocol_error(self.servers.server(key), e)),
        }
    }

    /// memcached's exptime: seconds from now up to 30 days, an absolute Unix time
    /// beyond (which then relies on synchronised clocks).
    fn exptime(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
        let secs = (expires_at - now).num_seconds().max(1);
        if secs > MAX_RELATIVE_EXPIRY {
            expires_at.timestamp()
        } else {
            secs
        }
    }

    async fn delete_key(&self, key: &str) -> TokenStoreResult<bool> {
        let k = key.to_owned();
        match self
            .servers
            .on(key, move |c| Box::pin(async move { c.delete(k).await }))
            .await?
        {
            Ok(()) => Ok(true),
            Err(async_memcached::Error::Protocol(Status::NotFound)) => Ok(false),
            Err(e) => Err(Servers::protocol_error(self.servers.server(key), e)),
        }
    }

    async fn add_to_subject(&self, subject: &[u8], session_key: &str) -> TokenStoreResult<()> {
        let list_key = self.keys.subject(subject);
        let ttl = self.options.max_lifetime.as_secs().max(1) as i64;
        let ttl_flag = if ttl > MAX_RELATIVE_EXPIRY {
            (Utc::now().timestamp() + ttl).to_string()
        } else {
            ttl.to_string()
        };
        // Append; on a miss, create the list (`add`, so a concurrent creator wins and
        // we append again). memcached's `N` (autovivify on append) is not relied on:
        // 1.6.18 answers NS to it.
        let mut created = false;
        for mode in ["MA", "ME", "MA"] {
            let (k, v) = (list_key.clone(), format!("{session_key} "));
            let flags = [mode.to_owned(), format!("T{ttl_flag}")];
            let res = self
                .servers
                .on(&list_key, move |c| {
                    Box::pin(async move {
                        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
                        c.meta_set(k, v.as_bytes(), false, None, Some(&flags)).await
                    })
                })
                .await?;
            match res {
                Ok(_) => {
                    created = mode == "ME";
                    break;
                }
                Err(async_memcached::Error::Protocol(Status::NotStored)) => continue,
                Err(e) if is_too_large(&e) => {
                    // Thousands of sessions of one user: start the list afresh with
                    // this one. Older sessions then expire on their own.
                    tracing::warn!("subject session list full; restarting it");
                    let (k, v) = (list_key.clone(), format!("{session_key} "));
                    let flags = [format!("T{ttl_flag}")];
                    if let Err(e) = self
                        .servers
                        .on(&list_key, move |c| {
                            Box::pin(async move {
                                let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
                                c.meta_set(k, v.as_bytes(), false, None, Some(&flags)).await
                            })
                        })
                        .await?
                    {
                        return Err(Servers::protocol_error(self.servers.server(&list_key), e));
                    }
                    created = true;
                    break;
                }
                Err(e) => return Err(Servers::protocol_error(self.servers.server(&list_key), e)),
            }
        }
        if created {
            return Ok(());
        }
        // Appending keeps the list's old expiry: push it out to cover this session.
        let (k, flag) = (list_key.clone(), format!("T{ttl_flag}"));
        match self
            .servers
            .on(&list_key, move |c| {
                Box::pin(async move { c.meta_get(k, false, None, Some(&[flag.as_str()])).await })
            })
            .await?
        {
            Ok(_) | Err(async_memcached::Error::Protocol(Status::Exists)) => Ok(()),
            Err(e) => Err(Servers::protocol_error(self.servers.server(&list_key), e)),
        }
    }
}

#[async_trait]
impl TokenStore for MemcachedStore {
    fn token_backend(&self) -> &'static str {
        "memcached"
    }

    /// Every server answers `version`. One server down makes the store unready: its
    /// share of the sessions cannot be served.
    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn check_token_store(&self) -> TokenStoreResult<()> {
        let checks = self.servers.all().iter().map(|server| async move {
            match self
                .servers
                .on_server(server, |c| Box::pin(async move { c.version().await }))
                .await?
            {
                Ok(_) => Ok(()),
                Err(e) => Err(Servers::protocol_error(server, e)),
            }
        });
        let results = futures::future::join_all(checks).await;
        // The servers' addresses go to the log only: readiness answers are public.
        let mut down = Vec::new();
        for (i, r) in results.into_iter().enumerate() {
            if let Err(e) = r {
                tracing::warn!(server = i + 1, error = %e, "memcached server does not answer");
                down.push((i + 1).to_string());
            }
        }
        if down.is_empty() {
            Ok(())
        } else {
            Err(TokenStoreError::Unavailable(format!(
                "{} of {} memcached servers do not answer (number {} in \
                 EFS_IAM_MEMCACHED_SERVERS; the log names them)",
                down.len(),
                self.servers.all().len(),
                down.join(", ")
            )))
        }
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn put_token(
        &self,
        key: TokenKey<'_>,
        record: &NewTokenRecord<'_>,
    ) -> TokenStoreResult<()> {
        let item_key = self.keys.session(key.hashed);
        let size = record.value.len() + item_key.len() + ITEM_OVERHEAD;
        if size > self.options.max_item_bytes {
            return Err(TokenStoreError::TooLarge {
                size,
                limit: self.options.max_item_bytes,
            });
        }
        let exptime = Self::exptime(record.expires_at, record.stored_at);
        let (k, v) = (item_key.clone(), record.value.to_owned());
        match self
            .servers
            .on(&item_key, move |c| {
                Box::pin(async move { c.set(k, v.as_bytes(), Some(exptime), None).await })
            })
            .await?
        {
            Ok(()) => {}
            Err(e) if is_too_large(&e) => {
                return Err(TokenStoreError::TooLarge {
                    size,
                    limit: self.options.max_item_bytes,
                })
            }
            Err(e) => return Err(Servers::protocol_error(self.servers.server(&item_key), e)),
        }
        if let Some(subject) = record.subject {
            self.add_to_subject(subject, &item_key).await?;
        }
        Ok(())
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn get_token(&self, key: TokenKey<'_>) -> TokenStoreResult<Option<StoredToken>> {
        let item_key = self.keys.session(key.hashed);
        let k = item_key.clone();
        let value = match self
            .servers
            .on(&item_key, move |c| Box::pin(async move { c.get(k).await }))
            .await?
        {
            Ok(v) => v,
            Err(e) => return Err(Servers::protocol_error(self.servers.server(&item_key), e)),
        };
        let Some(data) = value.and_then(|v| v.data) else {
            return Ok(None);
        };
        // Only the vault writes here, and it writes text; anything else is corrupt and
        // is handed on as such (it will fail to open).
        let text = String::from_utf8(data).unwrap_or_default();
        Ok(Some(StoredToken {
            idp_response: Some(text),
            stored_at: None,
            expires_at: None,
            legacy_key: false,
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn delete_token(&self, key: TokenKey<'_>) -> TokenStoreResult<bool> {
        self.delete_key(&self.keys.session(key.hashed)).await
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn delete_subject_tokens(&self, subject: &[u8]) -> TokenStoreResult<u64> {
        let list_key = self.keys.subject(subject);
        let k = list_key.clone();
        let list = match self
            .servers
            .on(&list_key, move |c| Box::pin(async move { c.get(k).await }))
            .await?
        {
            Ok(v) => v.and_then(|v| v.data).unwrap_or_default(),
            Err(e) => return Err(Servers::protocol_error(self.servers.server(&list_key), e)),
        };
        let text = String::from_utf8_lossy(&list);
        // Distinct keys, grouped by nothing: each delete goes to its own server.
        let keys: BTreeMap<&str, ()> = text.split_ascii_whitespace().map(|k| (k, ())).collect();
        let mut deleted = 0;
        for key in keys.keys() {
            if key.starts_with(&self.options.key_prefix) && self.delete_key(key).await? {
                deleted += 1;
            }
        }
        self.delete_key(&list_key).await?;
        Ok(deleted)
    }

    async fn purge_expired_tokens(
        &self,
        _now: DateTime<Utc>,
        _legacy_expiry: DateTime<Utc>,
    ) -> TokenStoreResult<u64> {
        Ok(0)
    }

    /// Session entries in the order of a position taken from their key's HMAC. The
    /// keys are listed with `lru_crawler metadump` when a scan starts (`after` = 0);
    /// an entry written after that is already under the newest key, and one that has
    /// expired or been deleted since is skipped. `id` is the position, `expires_at`
    /// comes from memcached's remaining TTL.
    #[tracing::instrument(skip(self), err(level = "debug"))]
    async fn scan_tokens(&self, after: i64, limit: u32) -> TokenStoreResult<Option<Vec<TokenRow>>> {
        if after == 0 {
            let mut listed = Vec::new();
            for server in self.servers.all() {
                for hashed in self
                    .keys
                    .dump_session_ids(&self.servers, server, self.options.timeout)
                    .await?
                {
                    listed.push((Keys::scan_position(&hashed), hashed));
                }
            }
            listed.sort_unstable();
            *self.scan.lock().expect("scan lock") = listed;
        }
        let mut rows = Vec::with_capacity(limit as usize);
        let mut cursor = after;
        // Entries gone since the listing are skipped, so a page is only short (or
        // empty) at the end of the listing.
        while rows.len() < limit as usize {
            let chunk: Vec<(i64, Vec<u8>)> = {
                let listed = self.scan.lock().expect("scan lock");
                let start = listed.partition_point(|(position, _)| *position <= cursor);
                listed[start..]
                    .iter()
                    .take(limit as usize)
                    .cloned()
                    .collect()
            };
            if chunk.is_empty() {
                break;
            }
            for (position, hashed) in chunk {
                cursor = position;
                let key = self.keys.session(&hashed);
                let Some(found) = self.meta_item(&key, &["v", "t"]).await? else {
                    continue;
                };
                let expires_at = found
                    .ttl_remaining
                    .filter(|ttl| *ttl >= 0)
                    .map(|ttl| (Utc::now() + chrono::Duration::seconds(ttl)).naive_utc());
                rows.push(TokenRow {
                    id: position,
                    session_id: hashed,
                    idp_response: found.data.map(|d| String::from_utf8(d).unwrap_or_default()),
                    stored_at: None,
                    expires_at,
                });
                if rows.len() == limit as usize {
                    break;
                }
            }
        }
        Ok(Some(rows))
    }

    /// Compare-and-swap: the entry is replaced only if it still holds the scanned
    /// value, and keeps its remaining TTL (the sealed record carries its own expiry).
    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn rewrite_token(
        &self,
        row: &TokenRow,
        session_id: &[u8],
        value: &str,
        _expires_at: DateTime<Utc>,
    ) -> TokenStoreResult<bool> {
        let key = self.keys.session(session_id);
        let Some(current) = self.meta_item(&key, &["v", "t", "c"]).await? else {
            return Ok(false);
        };
        if current.data.as_deref() != row.idp_response.as_deref().map(str::as_bytes) {
            return Ok(false);
        }
        let Some(cas) = current.cas else {
            return Err(Servers::unavailable(
                self.servers.server(&key),
                "no CAS value in the answer",
            ));
        };
        let mut flags = vec![format!("C{cas}")];
        match current.ttl_remaining {
            // About to expire: nothing to rewrite.
            Some(0) => return Ok(false),
            Some(ttl) if ttl > 0 => {
                let now = Utc::now();
                let exptime = Self::exptime(now + chrono::Duration::seconds(ttl), now);
                flags.push(format!("T{exptime}"));
            }
            _ => {}
        }
        let (k, v) = (key.clone(), value.to_owned());
        match self
            .servers
            .on(&key, move |c| {
                Box::pin(async move {
                    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
                    c.meta_set(k, v.as_bytes(), false, None, Some(&flags)).await
                })
            })
            .await?
        {
            Ok(_) => Ok(true),
            // Changed or deleted since the read.
            Err(async_memcached::Error::Protocol(Status::Exists | Status::NotFound)) => Ok(false),
            Err(e) => Err(Servers::protocol_error(self.servers.server(&key), e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_relative_up_to_thirty_days() {
        let now = Utc::now();
        assert_eq!(
            MemcachedStore::exptime(now + chrono::Duration::seconds(3600), now),
            3600
        );
        assert_eq!(MemcachedStore::exptime(now, now), 1);
        let far = now + chrono::Duration::days(31);
        assert_eq!(MemcachedStore::exptime(far, now), far.timestamp());
    }
}
