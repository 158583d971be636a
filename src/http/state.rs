//! What every handler shares: the services and contracts they call ([`AppState`]) and
//! the HTTP layer's own configuration ([`HttpConfig`]).

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::readiness::ReadyCache;
use crate::auth::Authenticator;
use crate::storage::{
    AdoptionStore, DatabaseStatus, ErrorLogPurgeStore, ErrorLogStore, ManagedUserStore,
    PortalSettingsStore, ReconcileRunStore, SyncJobStore, UnassignmentQueueStore,
    UserReferenceStore,
};
use crate::sync::SyncService;
use crate::tokens::TokenVault;
use crate::trust::SettingsGuard;

/// Limits and timeouts the HTTP layer applies.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub request_timeout: Duration,
    pub max_body_bytes: usize,
    pub ready_timeout: Duration,
    pub max_concurrent_requests: usize,
    pub metrics_require_auth: bool,
    pub cors: Cors,
    /// Okta Event Hooks (`/hooks/okta/events`), when a secret is configured.
    pub okta_event_hook: Option<EventHookAuth>,
    /// `EFS_IAM_OKTA_REQUIRED`: readiness fails while Okta does not work for efs-iam.
    pub okta_required: bool,
}

/// Which browser origins may call the API.
#[derive(Debug, Clone)]
pub enum Cors {
    /// No CORS headers: server-to-server only.
    Off,
    /// Every origin (`EFS_IAM_CORS_ORIGINS=*`).
    AnyOrigin,
    Origins(Vec<HeaderValue>),
}

/// What every handler shares. One `Arc` around it all: axum clones the state for each
/// extractor and middleware of every request, and one reference count is cheaper
/// than eight.
#[derive(Clone)]
pub struct AppState(Arc<Services>);

impl AppState {
    pub fn new(services: Services) -> Self {
        Self(Arc::new(services))
    }
}

impl std::ops::Deref for AppState {
    type Target = Services;
    fn deref(&self) -> &Services {
        &self.0
    }
}

/// The contracts and services the handlers call, each by the narrowest interface.
pub struct Services {
    pub portal_settings: Arc<dyn PortalSettingsStore>,
    pub references: Arc<dyn UserReferenceStore>,
    pub error_log: Arc<dyn ErrorLogStore>,
    /// Purges of the error log (stored by the handler, done by their worker).
    pub error_log_purges: Arc<dyn ErrorLogPurgeStore>,
    pub queue: Arc<dyn UnassignmentQueueStore>,
    pub jobs: Arc<dyn SyncJobStore>,
    pub reconcile_runs: Arc<dyn ReconcileRunStore>,
    /// The Okta users efs-iam manages (reference writes must name one).
    pub managed: Arc<dyn ManagedUserStore>,
    pub adoptions: Arc<dyn AdoptionStore>,
    pub database: Arc<dyn DatabaseStatus>,
    pub vault: Arc<TokenVault>,
    /// Writes portal settings, checking and auditing the trust settings.
    pub settings_guard: Arc<SettingsGuard>,
    /// The sync engine and its workers (`/sync/*`, the unassignment queue's worker).
    pub sync: Arc<SyncService>,
    pub config: Arc<HttpConfig>,
    /// The last `/health/ready` answer.
    pub ready_cache: ReadyCache,
    /// `None` only in development on loopback (see `AuthSettings::check_listen`).
    pub auth: Option<Arc<Authenticator>>,
}

/// How the hook's requests are authenticated.
#[derive(Clone)]
pub struct EventHookAuth {
    pub(crate) header: HeaderName,
    /// SHA-256 of the secret: compared by digest, so neither the secret's length nor
    /// its bytes leak through timing.
    digest: [u8; 32],
}

impl std::fmt::Debug for EventHookAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventHookAuth")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl EventHookAuth {
    pub fn new(header: &str, secret: &str) -> anyhow::Result<Self> {
        Ok(Self {
            header: HeaderName::from_bytes(header.as_bytes())?,
            digest: Sha256::digest(secret.as_bytes()).into(),
        })
    }

    pub(crate) fn accepts(&self, headers: &HeaderMap) -> bool {
        let Some(given) = headers.get(&self.header) else {
            return false;
        };
        let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        given.ct_eq(&self.digest).into()
    }
}
