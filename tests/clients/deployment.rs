//! The efs-iam a client library is tested against: several instances in this process,
//! on MariaDB, with fake Okta orgs, each configured so that one family of failures can
//! be provoked from outside. What each instance is for:
//!
//! | instance | database | what is special |
//! |---|---|---|
//! | `main` | `main` | Okta (the fake `okta`), workers on, id_tokens from the fake's issuer (and one that answers nothing), token key k1: every operation and most problem types |
//! | `peer` | `main` | no Okta, no allowed issuer, token key k2 only, 4 KiB bodies: okta-not-configured, issuer-not-allowed, token-unreadable, payload-too-large |
//! | `tight` | its own | one database connection (0.5 s acquire timeout), one request in flight, 2 s request timeout, its own fake Okta (`slow_okta`): database-unavailable, overloaded, timeout, internal (a table renamed) |
//! | `jwks` | `main` | caller tokens checked against the JWKS of the fake `caller_idp`, refetched on every unknown kid: the token callback, service-unavailable |
//! | `cache` | `main` | session tokens in memcached through a proxy that can be cut, 4 KiB items: token-store-unavailable, token-too-large |
//! | `restartable` | `main` | stopped and started again on its own address by the control server: a rolling restart of efs-iam |

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use efs_iam::config::Settings;
use efs_iam::startup::Application;
use efs_iam::storage::{ConnectOptions, SqlStore};
use fake_okta::{FakeOkta, FakeOktaConfig};
use reqwest::Url;

use crate::common::{
    memcached_servers, test_settings, use_keys, use_memcached, CuttableProxy, Running, TestDb,
    KEY_1, KEY_2,
};

/// The caller-token settings every HS256 instance shares with the PHP side.
pub const SECRET: &str = "an-hs256-secret-of-at-least-32-bytes!";
pub const ISSUER: &str = "efs-admin";
pub const AUDIENCE: &str = "efs-iam";

/// The `tight` instance's pool: one connection, given up on quickly.
const TIGHT_ACQUIRE_TIMEOUT: Duration = Duration::from_millis(500);
/// Longer than the acquire timeout, so a held connection answers 503
/// database-unavailable rather than 503 timeout.
const TIGHT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// An origin nothing serves OIDC metadata on (the discard port): a portal issuer on the
/// allow-list that is down.
pub const DEAD_ISSUER: &str = "http://127.0.0.1:9";

pub struct Deployment {
    pub okta: FakeOkta,
    pub slow_okta: FakeOkta,
    pub caller_idp: FakeOkta,
    pub main_db: TestDb,
    pub tight_db: TestDb,
    /// The `tight` instance's own store (one connection), for holding that connection.
    pub tight_store: Arc<SqlStore>,
    /// In front of memcached, for the `cache` instance; `None` without memcached.
    pub memcached_proxy: Option<Arc<CuttableProxy>>,
    pub main: Running,
    pub peer: Running,
    pub tight: Running,
    pub jwks: Running,
    pub cache: Option<Running>,
    pub restartable: Arc<Restartable>,
}

impl Deployment {
    /// Everything started, or `None` without MariaDB (`TestDb::mysql` decides whether
    /// that is a skip or a failure).
    pub async fn start() -> Option<Self> {
        let main_db = TestDb::mysql().await?;
        let tight_db = TestDb::mysql().await?;
        let okta = FakeOkta::start(FakeOktaConfig::default()).await;
        let slow_okta = FakeOkta::start(FakeOktaConfig::default()).await;
        let caller_idp = FakeOkta::start(FakeOktaConfig::default()).await;

        let main = start(&main_db.store, &main_db.url, |s| {
            hs256(s);
            use_okta(s, &okta);
            use_keys(s, KEY_1);
            s.tokens.oidc_allowed_issuers = vec![origin(&okta.base_url()), origin(DEAD_ISSUER)];
            s.okta.max_retries = 1;
            s.sync.worker = true;
            s.sync.poll_interval = Duration::from_millis(200);
            s.sync.backoff_base = Duration::from_secs(1);
            s.sync.backoff_max = Duration::from_secs(2);
            s.sync.max_attempts = 2;
        })
        .await;
        let peer = start(&main_db.store, &main_db.url, |s| {
            hs256(s);
            use_keys(s, KEY_2);
            s.tokens.oidc_allowed_issuers = vec![];
            s.max_body_bytes = 4096;
            s.sync.worker = false;
        })
        .await;
        let tight_store = Arc::new(
            SqlStore::connect(
                &tight_db.url,
                &ConnectOptions {
                    max_connections: 1,
                    acquire_timeout: TIGHT_ACQUIRE_TIMEOUT,
                    ..ConnectOptions::default()
                },
            )
            .await
            .expect("the tight instance's pool"),
        );
        let tight = start(&tight_store, &tight_db.url, |s| {
            hs256(s);
            use_okta(s, &slow_okta);
            use_keys(s, KEY_1);
            s.okta.max_retries = 0;
            s.okta.timeout = Duration::from_secs(10);
            s.request_timeout = TIGHT_REQUEST_TIMEOUT;
            s.max_concurrent_requests = 1;
            // The one connection is for the requests under test.
            s.sync.worker = false;
        })
        .await;
        let jwks_url = format!("{}/oauth2/v1/keys", caller_idp.base_url());
        let jwks = start(&main_db.store, &main_db.url, |s| {
            s.auth.jwks_url = Some(jwks_url);
            s.auth.issuer = Some(ISSUER.into());
            s.auth.audience = Some(AUDIENCE.into());
            s.tokens.jwks_refetch_cooldown = Duration::ZERO;
            use_keys(s, KEY_1);
            s.sync.worker = false;
        })
        .await;
        let (memcached_proxy, cache) = match memcached_servers() {
            Some(servers) => {
                let first = servers.split(',').next().unwrap_or_default().trim();
                let proxy = Arc::new(CuttableProxy::start(first).await);
                let cache = start(&main_db.store, &main_db.url, |s| {
                    hs256(s);
                    use_keys(s, KEY_1);
                    use_memcached(s, &proxy.addr);
                    s.tokens.memcached_max_item_bytes = 4096;
                    s.sync.worker = false;
                })
                .await;
                (Some(proxy), Some(cache))
            }
            None => (None, None),
        };
        let restartable = Arc::new(Restartable::start(&main_db.store, &main_db.url).await);
        Some(Self {
            okta,
            slow_okta,
            caller_idp,
            main_db,
            tight_db,
            tight_store,
            memcached_proxy,
            main,
            peer,
            tight,
            jwks,
            cache,
            restartable,
        })
    }

    pub async fn stop(&mut self) {
        for running in [
            &mut self.main,
            &mut self.peer,
            &mut self.tight,
            &mut self.jwks,
        ] {
            running.stop().await;
        }
        if let Some(cache) = &mut self.cache {
            cache.stop().await;
        }
        self.restartable.stop().await;
    }
}

/// An instance that goes away and comes back on the same address, as one does in a
/// rolling restart behind the load balancer.
pub struct Restartable {
    pub address: String,
    listen: SocketAddr,
    store: Arc<SqlStore>,
    url: String,
    running: tokio::sync::Mutex<Option<Running>>,
}

impl Restartable {
    fn configure(s: &mut Settings) {
        hs256(s);
        use_keys(s, KEY_1);
        s.sync.worker = false;
    }

    async fn start(store: &Arc<SqlStore>, url: &str) -> Self {
        let running = start(store, url, Self::configure).await;
        let listen = running
            .address
            .trim_start_matches("http://")
            .parse()
            .expect("the instance's address");
        Self {
            address: running.address.clone(),
            listen,
            store: store.clone(),
            url: url.to_owned(),
            running: tokio::sync::Mutex::new(Some(running)),
        }
    }

    /// Stops the instance gracefully (its address refuses connections once this
    /// returns) and starts a new one on the same address after `down`, in the
    /// background.
    pub async fn restart(self: &Arc<Self>, down: Duration) {
        self.stop().await;
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(down).await;
            let running = start(&this.store, &this.url, |s| {
                Self::configure(s);
                s.listen = this.listen;
            })
            .await;
            *this.running.lock().await = Some(running);
        });
    }

    pub async fn stop(&self) {
        if let Some(mut running) = self.running.lock().await.take() {
            running.stop().await;
        }
    }
}

async fn start(store: &Arc<SqlStore>, url: &str, adjust: impl FnOnce(&mut Settings)) -> Running {
    let mut settings = test_settings(url);
    adjust(&mut settings);
    let app = Application::with_storage(&settings, store.clone())
        .await
        .expect("build an efs-iam instance");
    Running::start(app)
}

fn hs256(s: &mut Settings) {
    s.auth.hs256_secret = Some(SECRET.to_owned().into());
    s.auth.issuer = Some(ISSUER.into());
    s.auth.audience = Some(AUDIENCE.into());
}

fn use_okta(s: &mut Settings, okta: &FakeOkta) {
    s.okta.org_url = Some(origin(&okta.base_url()));
    s.okta.api_token = Some("test-token".to_owned().into());
    s.okta.timeout = Duration::from_secs(5);
}

fn origin(url: &str) -> Url {
    Url::parse(url).expect("an origin")
}
