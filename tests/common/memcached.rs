//! memcached for the token store's tests: the shared server, a dump of what it holds,
//! and a proxy that can be cut to play an outage.

use std::sync::Arc;

use efs_iam::config::Settings;

pub const REQUIRE_MEMCACHED: &str = "EFS_IAM_REQUIRE_MEMCACHED";

/// Token keys the tests configure (base64 of 32 bytes each). Not used anywhere else.
pub const KEY_1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
pub const KEY_2: &str = "k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
pub const HASH_KEY: &str = "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8=";

/// `TEST_MEMCACHED_SERVERS` (e.g. `127.0.0.1:11211`), or `None` when unset. Under
/// `EFS_IAM_REQUIRE_MEMCACHED=1` (CI) a missing value fails the test instead, so the
/// memcached half can never be skipped silently.
pub fn memcached_servers() -> Option<String> {
    match std::env::var("TEST_MEMCACHED_SERVERS") {
        Ok(v) if !v.trim().is_empty() => Some(v),
        _ => {
            if std::env::var(REQUIRE_MEMCACHED).is_ok_and(|v| v == "1") {
                panic!("TEST_MEMCACHED_SERVERS is not set but {REQUIRE_MEMCACHED}=1: the memcached tests must run");
            }
            eprintln!("TEST_MEMCACHED_SERVERS unset: memcached variant not run");
            None
        }
    }
}

/// Configures the given key ring (`id:base64,…`) and the test hash key.
pub fn use_keys(settings: &mut Settings, ring: &str) {
    settings.tokens.token_keys = Some(efs_iam::tokens::KeyRing::parse(ring).expect("test keys"));
    settings.tokens.session_hash_key =
        Some(efs_iam::tokens::SessionHasher::parse(HASH_KEY).expect("test hash key"));
}

/// Points the token vault at memcached, under a key prefix of its own so that tests
/// sharing one memcached do not see each other's entries.
pub fn use_memcached(settings: &mut Settings, servers: &str) {
    settings.tokens.token_store = efs_iam::tokens::TokenBackendKind::Memcached;
    settings.tokens.memcached_servers = Some(efs_iam::tokens::settings::MemcachedServers(
        servers.split(',').map(|s| s.trim().to_owned()).collect(),
    ));
    settings.tokens.memcached_key_prefix =
        format!("efs-iam-test-{}:", uuid::Uuid::new_v4().simple());
}

/// A TCP forwarder in front of a real server that a test can cut and restore (play
/// "memcached is down" without touching the shared memcached), or freeze and thaw
/// (bytes stop flowing both ways, connections stay open: a server under SIGSTOP, a
/// network partition). Counts the connections it accepted.
pub struct CuttableProxy {
    pub addr: String,
    up: Arc<std::sync::atomic::AtomicBool>,
    pub accepted: Arc<std::sync::atomic::AtomicUsize>,
    generation: Arc<tokio::sync::watch::Sender<u64>>,
    frozen: Arc<tokio::sync::watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
}

/// Copies `from` to `to`, holding the bytes while `frozen` says so.
async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if frozen.wait_for(|f| !*f).await.is_err() {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

impl CuttableProxy {
    pub async fn start(target: &str) -> Self {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let up = Arc::new(AtomicBool::new(true));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (generation, _) = tokio::sync::watch::channel(0u64);
        let generation = Arc::new(generation);
        let (frozen, _) = tokio::sync::watch::channel(false);
        let frozen = Arc::new(frozen);
        let target = target.to_owned();
        let (up2, accepted2, gen2) = (up.clone(), accepted.clone(), generation.clone());
        let frozen2 = frozen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                accepted2.fetch_add(1, Ordering::SeqCst);
                let target = target.clone();
                let mut cut = gen2.subscribe();
                let (up_frozen, down_frozen) = (frozen2.subscribe(), frozen2.subscribe());
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    let (in_read, in_write) = inbound.into_split();
                    let (out_read, out_write) = outbound.into_split();
                    tokio::select! {
                        _ = forward(in_read, out_write, up_frozen) => {}
                        _ = forward(out_read, in_write, down_frozen) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Self {
            addr,
            up,
            accepted,
            generation,
            frozen,
            task,
        }
    }

    /// Stops every byte, both ways, on every connection (new ones too); nothing closes.
    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }

    pub fn thaw(&self) {
        self.frozen.send_replace(false);
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn restore(&self) {
        self.up.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Every key and value a memcached server holds under `prefix`: a "dump", through
/// `lru_crawler metadump` and `get`.
pub async fn memcached_dump(server: &str, prefix: &str) -> Vec<(String, Vec<u8>)> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let stream = tokio::net::TcpStream::connect(server).await.unwrap();
    let mut stream = BufReader::new(stream);
    stream
        .get_mut()
        .write_all(b"lru_crawler metadump all\r\n")
        .await
        .unwrap();
    let mut keys = Vec::new();
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).await.unwrap();
        let line = line.trim_end();
        if line == "END" || line.is_empty() {
            break;
        }
        if let Some(rest) = line.strip_prefix("key=") {
            let key = rest.split(' ').next().unwrap();
            // metadump URL-encodes keys; ours only use `:`, which it escapes as %3A.
            let key = key.replace("%3A", ":").replace("%3a", ":");
            if key.starts_with(prefix) {
                keys.push(key);
            }
        }
    }
    let mut out = Vec::new();
    for key in keys {
        stream
            .get_mut()
            .write_all(format!("get {key}\r\n").as_bytes())
            .await
            .unwrap();
        let mut header = String::new();
        stream.read_line(&mut header).await.unwrap();
        if header.starts_with("END") {
            continue;
        }
        let len: usize = header
            .trim_end()
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let mut data = vec![0u8; len + 2];
        stream.read_exact(&mut data).await.unwrap();
        data.truncate(len);
        let mut end = String::new();
        stream.read_line(&mut end).await.unwrap();
        out.push((key, data));
    }
    out
}
