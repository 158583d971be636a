//! Builds the service: storage, the token vault, the Okta adapter, the sync engine, the
//! router and a bound listener. Tests bind port 0 and pass their own shutdown signal.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::auth::Authenticator;
use crate::config::Settings;
use crate::http::metrics::Metrics;
use crate::http::server::EdgeLimits;
use crate::http::{self, AppState, Cors, HttpConfig};
use crate::okta::{self, OktaClient};
use crate::storage::{self, ConnectOptions, SqlStore};
use crate::sync::SyncService;
use crate::tokens::{self, Clock, IssuerPolicy, SystemClock, TokenVault};
use crate::trust::SettingsGuard;

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    okta: Option<OktaClient>,
    /// Background purge of expired session tokens (SQL token store only).
    purger: Option<tokio::task::JoinHandle<()>>,
    metrics: Metrics,
    sync: Arc<SyncService>,
    edge: EdgeLimits,
}

impl Application {
    /// Connects (and by setting migrates) the database, then binds the listener.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        // Refuse an open API on a public address before touching the database.
        settings.auth.check_listen(settings.listen)?;
        let store = connect_storage(settings, settings.migrate_on_start).await?;
        Self::with_storage(settings, store).await
    }

    pub async fn with_storage(settings: &Settings, store: Arc<SqlStore>) -> anyhow::Result<Self> {
        Self::with_clock(settings, store, Arc::new(SystemClock)).await
    }

    /// Like [`Self::with_storage`], with the clock the token vault judges expiry by
    /// (tests move a [`crate::tokens::ManualClock`] instead of sleeping).
    pub async fn with_clock(
        settings: &Settings,
        store: Arc<SqlStore>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        // Caller authentication's rule first, then the token vault's (both refuse a
        // non-loopback address without keys).
        settings.auth.check_listen(settings.listen)?;
        let vault = Arc::new(build_vault(settings, &store, clock)?);
        Self::assemble(settings, store, vault).await
    }

    async fn assemble(
        settings: &Settings,
        store: Arc<SqlStore>,
        vault: Arc<TokenVault>,
    ) -> anyhow::Result<Self> {
        // First: what the parts register (the workers' series) must reach the recorder.
        let metrics = Metrics::install();
        let auth = Authenticator::from_settings(&settings.auth, settings.tokens.jwks_options())?
            .map(Arc::new);
        if let Some(auth) = &auth {
            auth.prefetch_keys().await;
        }
        let cors = cors_policy(&settings.cors_origins)?;
        // Built (and so checked) at start-up: bad Okta settings stop the service rather
        // than surfacing at the first sync.
        let okta = okta::client_from_settings(&settings.okta, Some(store.clone()))
            .map_err(|e| anyhow::anyhow!("Okta settings: {e}"))?;
        match &okta {
            Some(client) => tracing::info!(org = %client.org_url(), "Okta adapter configured"),
            None => tracing::info!("Okta not configured (EFS_IAM_OKTA_ORG_URL unset)"),
        }
        let purger = tokens::spawn_purger(&vault, settings.tokens.token_purge_interval);
        let sync = Arc::new(SyncService::new(
            store.clone(),
            okta.clone(),
            settings.sync.clone(),
        ));
        // What Okta makes of a service app's credentials (a token, the scopes granted) is
        // logged and shown from the start, not at the first sync.
        if let Some(client) = okta.clone() {
            tokio::spawn(async move { client.check_credentials().await });
        }
        let settings_guard = Arc::new(SettingsGuard::new(
            store.clone(),
            vault.issuer_policy().clone(),
            okta.clone(),
        ));
        let state = AppState::new(http::Services {
            portal_settings: store.clone(),
            references: store.clone(),
            error_log: store.clone(),
            error_log_purges: store.clone(),
            queue: store.clone(),
            jobs: store.clone(),
            reconcile_runs: store.clone(),
            managed: store.clone(),
            adoptions: store.clone(),
            database: store,
            vault,
            settings_guard,
            sync: sync.clone(),
            config: Arc::new(HttpConfig {
                request_timeout: settings.request_timeout,
                max_body_bytes: settings.max_body_bytes as usize,
                ready_timeout: settings.ready_timeout,
                max_concurrent_requests: settings.max_concurrent_requests as usize,
                metrics_require_auth: settings.auth.metrics_require_auth,
                cors,
                okta_event_hook: event_hook_auth(settings)?,
                okta_required: settings.okta.required,
            }),
            ready_cache: Default::default(),
            auth,
        });
        let listener = TcpListener::bind(settings.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
        Ok(Self {
            listener,
            router: http::router(state),
            okta,
            purger,
            metrics,
            sync,
            edge: EdgeLimits {
                header_read_timeout: settings.header_read_timeout,
                write_timeout: settings.write_timeout,
                max_connections: EdgeLimits::fit_connection_cap(
                    settings.max_connections,
                    u64::from(settings.database_max_connections)
                        + u64::from(settings.okta.max_concurrency),
                ),
                shutdown_timeout: settings.shutdown_timeout,
            },
        })
    }

    /// The sync engine and workers of this instance.
    pub fn sync(&self) -> &Arc<SyncService> {
        &self.sync
    }

    /// The Okta adapter, when an org is configured (for the sync engine to use).
    pub fn okta(&self) -> Option<&OktaClient> {
        self.okta.as_ref()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    /// Serves (and runs the sync workers) until `shutdown` resolves, then shuts down
    /// within `EFS_IAM_SHUTDOWN_TIMEOUT` in all: the workers stop taking new work at
    /// once, requests in flight finish, then the workers' steps in progress get what is
    /// left of the deadline; how each worker ended is logged.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        tracing::info!(
            addr = %self.local_addr(),
            max_connections = self.edge.max_connections,
            "efs-iam listening"
        );
        self.sync.start_workers();
        let metrics_upkeep = self.metrics.spawn_upkeep();
        let stop = self.sync.stop_token();
        let signalled_at = Arc::new(std::sync::OnceLock::new());
        let on_signal = signalled_at.clone();
        let deadline = self.edge.shutdown_timeout;
        let served =
            crate::http::server::serve(self.listener, self.router, self.edge, async move {
                shutdown.await;
                on_signal.get_or_init(std::time::Instant::now);
                // Workers stop taking new work while requests finish.
                stop.cancel();
            })
            .await;
        if let Some(purger) = self.purger {
            purger.abort();
        }
        metrics_upkeep.abort();
        let left = signalled_at
            .get()
            .map_or(deadline, |at| deadline.saturating_sub(at.elapsed()));
        let exits = self
            .sync
            .shutdown(left.max(std::time::Duration::from_secs(1)))
            .await;
        crate::sync::supervision::report_exits(&exits);
        // Counts of coalesced Okta errors still in memory go to the error log.
        if let Some(okta) = &self.okta {
            okta.flush_error_log().await;
        }
        served
    }
}

/// `EFS_IAM_OKTA_EVENT_HOOK_SECRET`/`_HEADER`: Okta Event Hooks on, or off.
fn event_hook_auth(settings: &Settings) -> anyhow::Result<Option<http::EventHookAuth>> {
    use secrecy::ExposeSecret;
    let Some(secret) = &settings.okta.event_hook_secret else {
        return Ok(None);
    };
    tracing::info!(
        header = %settings.okta.event_hook_header,
        "Okta event hooks accepted at /hooks/okta/events"
    );
    Ok(Some(http::EventHookAuth::new(
        &settings.okta.event_hook_header,
        secret.expose_secret(),
    )?))
}

/// `EFS_IAM_CORS_ORIGINS`: nothing (CORS off), named origins, or `*` alone, a
/// deliberate wildcard (safe for a bearer-token API: browsers send no credentials
/// with it). `*` among named origins is a mistake and stops start-up.
fn cors_policy(origins: &[String]) -> anyhow::Result<Cors> {
    let origins: Vec<&str> = origins
        .iter()
        .map(|o| o.trim())
        .filter(|o| !o.is_empty())
        .collect();
    if origins.contains(&"*") {
        anyhow::ensure!(
            origins.len() == 1,
            "bad setting EFS_IAM_CORS_ORIGINS: `*` allows every origin and cannot be combined \
             with named origins"
        );
        tracing::warn!("CORS allows every origin (EFS_IAM_CORS_ORIGINS=*)");
        return Ok(Cors::AnyOrigin);
    }
    if origins.is_empty() {
        return Ok(Cors::Off);
    }
    let list = origins
        .iter()
        .map(|o| {
            let valid = reqwest::Url::parse(o).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some()
                    && u.origin().ascii_serialization() == *o
            });
            anyhow::ensure!(
                valid,
                "bad setting EFS_IAM_CORS_ORIGINS: {o:?} is not an origin such as \
                 https://admin.efs.example (scheme, host and port only)"
            );
            Ok(axum::http::HeaderValue::from_str(o)?)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Cors::Origins(list))
}

pub async fn connect_storage(settings: &Settings, migrate: bool) -> anyhow::Result<Arc<SqlStore>> {
    let options = ConnectOptions {
        max_connections: settings.database_max_connections,
        acquire_timeout: settings.database_acquire_timeout,
        statement_timeout: settings.database_statement_timeout,
    };
    storage::connect(settings.database_url(), &options, migrate).await
}

/// The token vault on the token store the settings choose (the SQL store, or
/// memcached), reading portal issuer settings from `store`.
pub fn build_vault(
    settings: &Settings,
    store: &Arc<SqlStore>,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<TokenVault> {
    let token_store = tokens::token_store(&settings.tokens, store.clone())?;
    tokens::build_vault(
        &settings.tokens,
        settings.listen,
        token_store,
        store.clone(),
        clock,
        issuer_policy(settings),
    )
}

/// The issuers a portal's `okta_issuer` may name: EFS_IAM_OIDC_ALLOWED_ISSUERS, else the
/// Okta org's origin, else none (id_token verification then fails closed).
pub fn issuer_policy(settings: &Settings) -> IssuerPolicy {
    let explicit = &settings.tokens.oidc_allowed_issuers;
    let policy = if !explicit.is_empty() {
        IssuerPolicy::new(explicit.iter().cloned())
    } else {
        IssuerPolicy::new(settings.okta.org_url.iter().cloned())
    };
    if policy.origins().is_empty() {
        tracing::warn!(
            "no OIDC issuer is allowed (neither EFS_IAM_OIDC_ALLOWED_ISSUERS nor \
             EFS_IAM_OKTA_ORG_URL is set): portals cannot have an okta_issuer, and id_tokens \
             are not verified"
        );
    } else {
        tracing::info!(origins = %policy.origins().join(","), "allowed OIDC issuer origins");
    }
    policy
}

/// `efs-iam tokens re-encrypt`: every stored token response under the newest key.
pub async fn reencrypt_tokens(settings: &Settings) -> anyhow::Result<()> {
    anyhow::ensure!(
        settings.tokens.token_keys.is_some(),
        "bad setting EFS_IAM_TOKEN_KEYS: re-encrypt needs the key ring (the first key encrypts)"
    );
    let store = connect_storage(settings, true).await?;
    let vault = build_vault(settings, &store, Arc::new(SystemClock))?;
    let report = vault.reencrypt().await?;
    println!("{}", serde_json::to_string(&report)?);
    anyhow::ensure!(
        report.failed == 0,
        "{} token rows could not be opened with the configured keys and were left as they are",
        report.failed
    );
    Ok(())
}

/// Resolves on SIGINT (ctrl-c) or SIGTERM (what orchestrators send).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received, finishing in-flight requests");
}
