//! The session token vault: IdP token responses (access, refresh and id tokens, the
//! most sensitive data efs-iam keeps) stored per EFS login session.
//!
//! * **Backends** (`storage::TokenStore`): `sql` (`iam_token_data` in the
//!   service's MariaDB or SQLite, the default) or `memcached` (one or several servers,
//!   consistent hashing, native expiry), chosen by `EFS_IAM_TOKEN_STORE`. Both run one
//!   contract (`tests/token_vault.rs`). Switching backends does not move stored
//!   sessions: their users log in again.
//! * **Expiry:** `expires_in` after storing (capped by `EFS_IAM_TOKEN_MAX_LIFETIME`),
//!   `EFS_IAM_TOKEN_DEFAULT_LIFETIME` without it, the maximum lifetime when the response
//!   holds a refresh token. Expired entries are never returned; the SQL backend purges
//!   them every `EFS_IAM_TOKEN_PURGE_INTERVAL`. Legacy rows get an expiry (maximum
//!   lifetime from the first purge that sees them).
//! * **Encryption at rest:** AES-256-GCM with a key ring, see [`crypto`]. Legacy
//!   plaintext rows stay readable and are sealed when rewritten; `efs-iam tokens
//!   re-encrypt` rewrites every SQL row and every memcached entry under the newest key.
//! * **Keyed session ids:** only an HMAC of the session id is stored; lookups fall
//!   back to the raw id for legacy rows, and a write removes the raw row.
//! * **id_token verification** ([`oidc`]) for portals with an `okta_issuer`, which
//!   also records the Okta user (`sub`) for "log out everywhere".
//! * **No secret in logs:** session ids, keys and token values have redacting `Debug`
//!   impls, spans record route templates only, and handlers skip their arguments.
//!   `tests/log_secrecy.rs` checks a full cycle's logs at TRACE level.
//!
//! # Running without keys
//!
//! Without `EFS_IAM_TOKEN_KEYS` the service seals with a random per-process key (and
//! hashes with a random per-process hash key): stored sessions do not survive a
//! restart, and a database dump still reveals no token. That is only allowed while
//! listening on a loopback address (development), with a warning; on any other
//! address start-up fails naming `EFS_IAM_TOKEN_KEYS`.

pub mod clock;
pub mod crypto;
pub mod oidc;
pub mod settings;
mod vault;

use std::sync::{Arc, Weak};

pub use clock::{Clock, ManualClock, SystemClock};
pub use crypto::{KeyRing, SessionHasher};
pub use oidc::{IssuerPolicy, OidcVerifier, VerifiedClaims};
pub use settings::{TokenBackendKind, TokenSettings, TokensCommand};
pub use vault::{
    Lifetimes, OpenedToken, ReencryptReport, Stored, TokenVault, VaultError, CLIENT_ID_SETTING,
    ISSUER_SETTING, TOKEN_OUTCOMES,
};

use crate::storage::memcached::{MemcachedOptions, MemcachedStore};
use crate::storage::{PortalSettingsStore, TokenStore};

/// The token store the settings choose: `sql` (the service's database) or memcached.
pub fn token_store(
    t: &TokenSettings,
    sql: Arc<dyn TokenStore>,
) -> anyhow::Result<Arc<dyn TokenStore>> {
    Ok(match t.token_store {
        TokenBackendKind::Sql => sql,
        TokenBackendKind::Memcached => {
            let servers = t
                .memcached_servers
                .clone()
                .ok_or_else(|| {
                    anyhow::anyhow!(
                        "bad setting EFS_IAM_MEMCACHED_SERVERS: required when EFS_IAM_TOKEN_STORE=memcached"
                    )
                })?
                .0;
            Arc::new(MemcachedStore::new(MemcachedOptions {
                servers,
                timeout: t.memcached_timeout,
                pool_size: t.memcached_pool_size,
                max_item_bytes: t.memcached_max_item_bytes as usize,
                key_prefix: t.memcached_key_prefix.clone(),
                max_lifetime: t.token_max_lifetime,
            })?)
        }
    })
}

/// Builds the vault from its settings (validated against the listen address) on the
/// token store [`token_store`] chose; issuer settings are read from `portal_settings`.
pub fn build_vault(
    t: &TokenSettings,
    listen: std::net::SocketAddr,
    store: Arc<dyn TokenStore>,
    portal_settings: Arc<dyn PortalSettingsStore>,
    clock: Arc<dyn Clock>,
    issuers: IssuerPolicy,
) -> anyhow::Result<TokenVault> {
    t.validate(listen)?;
    let (keys, hasher) = match (&t.token_keys, &t.session_hash_key) {
        (Some(keys), Some(hasher)) => (keys.clone(), hasher.clone()),
        _ => {
            tracing::warn!(
                "EFS_IAM_TOKEN_KEYS is not set: session tokens are encrypted with a random \
                 per-process key and do not survive a restart (allowed on loopback only)"
            );
            (KeyRing::ephemeral(), SessionHasher::ephemeral())
        }
    };
    tracing::info!(
        backend = store.token_backend(),
        encrypting_key = keys.current_id(),
        keys = keys.ids().len(),
        "token vault ready"
    );
    Ok(TokenVault {
        store,
        settings: portal_settings,
        keys,
        hasher,
        clock,
        lifetimes: Lifetimes {
            default: t.token_default_lifetime,
            max: t.token_max_lifetime,
        },
        oidc: OidcVerifier::new(t.jwks_options(), issuers)?,
        accept_plaintext: t.token_accept_legacy_plaintext,
    })
}

/// Purges expired records every `interval` for as long as the vault is in use (SQL
/// backends; memcached expires entries itself).
pub fn spawn_purger(
    vault: &Arc<TokenVault>,
    interval: std::time::Duration,
) -> Option<tokio::task::JoinHandle<()>> {
    if !vault.backend().starts_with("sql") {
        return None;
    }
    let weak: Weak<TokenVault> = Arc::downgrade(vault);
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(vault) = weak.upgrade() else { return };
            match vault.purge_expired().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "expired session tokens purged"),
                Err(e) => tracing::warn!(error = %e, "purging expired session tokens failed"),
            }
        }
    }))
}
