//! The vault: what the session-token endpoints call. It owns every rule about a
//! stored token response (lifetime, encryption, keyed ids, id_token verification),
//! so the backends ([`TokenStore`]) only move opaque records and all of them run the
//! same contract.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::clock::Clock;
use super::crypto::{is_hashed_id, KeyRing, OpenError, SessionHasher};
use super::oidc::{IdTokenError, OidcVerifier, VerifiedClaims};
use crate::domain::{OktaUserId, PortalId, SessionId, SettingKey};
use crate::storage::{
    NewTokenRecord, PortalSettingsStore, StorageError, StoredToken, TokenKey, TokenStore,
    TokenStoreError,
};

pub use crate::domain::{OKTA_CLIENT_ID as CLIENT_ID_SETTING, OKTA_ISSUER as ISSUER_SETTING};

#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// The token store (or, for issuer settings, the database).
    #[error(transparent)]
    Store(#[from] TokenStoreError),
    /// A stored value failed to decrypt (tampered, or its key was removed).
    #[error("the stored token response cannot be read: {0}")]
    Unreadable(OpenError),
    /// The response's id_token was refused.
    #[error("invalid id_token: {0}")]
    InvalidIdToken(String),
    /// The portal's issuer is not one efs-iam may fetch keys from.
    #[error("the portal's okta_issuer is not allowed: {0}")]
    IssuerNotAllowed(String),
    /// The issuer could not be asked for its keys.
    #[error("identity provider unavailable: {0}")]
    IdpUnavailable(String),
    /// A field of the request (not of the stored secret) is unacceptable.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The operation needs something this configuration lacks.
    #[error("{0}")]
    Unsupported(String),
}

/// How long responses live.
impl From<StorageError> for VaultError {
    fn from(e: StorageError) -> Self {
        Self::Store(e.into())
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// For a response without `expires_in`.
    pub default: Duration,
    /// For a response with a refresh token, and the cap on `expires_in`.
    pub max: Duration,
}

/// What is sealed: the response and everything the vault decides about it, so that
/// none of it can be changed in the database without breaking the seal.
#[derive(Serialize, Deserialize)]
struct Sealed {
    idp_response: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stored_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    portal_id: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    claims: Option<VerifiedClaims>,
}

/// A stored response, opened.
#[derive(Clone)]
pub struct OpenedToken {
    pub idp_response: Value,
    /// `None` for legacy rows.
    pub stored_at: Option<DateTime<Utc>>,
    /// `None` for legacy rows the purge has not seen yet.
    pub expires_at: Option<DateTime<Utc>>,
    pub portal_id: Option<i32>,
    pub claims: Option<VerifiedClaims>,
}

impl std::fmt::Debug for OpenedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedToken")
            .field("stored_at", &self.stored_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What a PUT stored.
#[derive(Debug, Clone)]
pub struct Stored {
    pub stored_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub claims: Option<VerifiedClaims>,
}

/// Counts of `tokens re-encrypt`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ReencryptReport {
    /// Expired rows deleted first.
    pub purged: u64,
    /// Rows looked at.
    pub scanned: u64,
    /// Rewritten under the current key (legacy plaintext and raw ids included).
    pub rewritten: u64,
    /// Already sealed with the current key under a hashed id.
    pub current: u64,
    /// Changed by a concurrent write while being rewritten (the new value is current).
    pub changed: u64,
    /// Could not be opened (unknown key or corrupt): left as they are.
    pub failed: u64,
}

/// Built by [`super::build_vault`].
pub struct TokenVault {
    pub(super) store: Arc<dyn TokenStore>,
    /// Where a portal's issuer and client id are read.
    pub(super) settings: Arc<dyn PortalSettingsStore>,
    pub(super) keys: KeyRing,
    pub(super) hasher: SessionHasher,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) lifetimes: Lifetimes,
    pub(super) oidc: OidcVerifier,
    /// Serve values not in the sealed format (legacy plaintext rows of the SQL store).
    pub(super) accept_plaintext: bool,
}

fn epoch(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

fn from_epoch(secs: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(secs, 0).single()
}

fn chrono(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// A legacy plaintext response as the API has always served it: a JSON object as
/// is, anything else as a JSON string, NULL as `null`.
fn legacy_value(text: Option<String>) -> Value {
    match text {
        None => Value::Null,
        Some(text) => match serde_json::from_str::<Value>(&text) {
            Ok(v @ Value::Object(_)) => v,
            _ => Value::String(text),
        },
    }
}

impl TokenVault {
    /// Which issuers a portal's `okta_issuer` may name.
    pub fn issuer_policy(&self) -> &super::IssuerPolicy {
        self.oidc.policy()
    }

    pub fn backend(&self) -> &'static str {
        self.store.token_backend()
    }

    pub fn store(&self) -> &Arc<dyn TokenStore> {
        &self.store
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The backend answers.
    pub async fn check_ready(&self) -> Result<(), TokenStoreError> {
        self.store.check_token_store().await
    }

    /// When a response stored now expires: `expires_in` after now (capped at the
    /// maximum lifetime), the default lifetime without it, and the maximum lifetime
    /// when it holds a refresh token (which lets EFS renew the access token).
    pub fn lifetime_of(&self, response: &Map<String, Value>) -> Result<Duration, VaultError> {
        let has_refresh = response
            .get("refresh_token")
            .is_some_and(|v| !v.is_null() && v.as_str() != Some(""));
        if has_refresh {
            return Ok(self.lifetimes.max);
        }
        let secs = match response.get("expires_in") {
            None | Some(Value::Null) => return Ok(self.lifetimes.default),
            Some(Value::Number(n)) => n.as_u64(),
            Some(Value::String(s)) => s.trim().parse::<u64>().ok(),
            Some(_) => None,
        }
        .ok_or_else(|| VaultError::Invalid {
            field: "expires_in".into(),
            message: "must be a whole number of seconds, 0 or more".into(),
        })?;
        Ok(Duration::from_secs(secs.max(1)).min(self.lifetimes.max))
    }

    fn key<'a>(hashed: &'a [u8], session: &'a SessionId) -> TokenKey<'a> {
        TokenKey {
            hashed,
            legacy: Some(session.as_bytes()),
        }
    }

    async fn setting(&self, portal: PortalId, key: &str) -> Result<Option<String>, VaultError> {
        let key = SettingKey::parse(key).expect("static setting name");
        Ok(self
            .settings
            .portal_setting(portal, &key)
            .await?
            .and_then(|s| s.value)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty()))
    }

    /// Verifies the response's id_token when the portal has an issuer configured.
    async fn verify_for_portal(
        &self,
        response: &Map<String, Value>,
        portal: PortalId,
        now: DateTime<Utc>,
    ) -> Result<Option<VerifiedClaims>, VaultError> {
        let Some(id_token) = response.get("id_token") else {
            return Ok(None);
        };
        let Some(issuer) = self.setting(portal, ISSUER_SETTING).await? else {
            return Ok(None);
        };
        let id_token = id_token
            .as_str()
            .ok_or_else(|| VaultError::InvalidIdToken("not a string".into()))?;
        let client_id = self
            .setting(portal, CLIENT_ID_SETTING)
            .await?
            .ok_or_else(|| VaultError::Invalid {
                field: "portal_id".into(),
                message: format!(
                    "portal {portal} has an {ISSUER_SETTING} but no {CLIENT_ID_SETTING} to check aud against"
                ),
            })?;
        self.oidc
            .verify(id_token, &issuer, &client_id, now)
            .await
            .map(Some)
            .map_err(|e| match e {
                IdTokenError::Invalid(r) => VaultError::InvalidIdToken(r),
                IdTokenError::Unavailable(r) => VaultError::IdpUnavailable(r),
                IdTokenError::IssuerNotAllowed(r) => VaultError::IssuerNotAllowed(r),
            })
    }

    /// Stores a session's token response, replacing any earlier one (and any legacy
    /// row under the raw id). `portal` enables id_token verification.
    pub async fn put(
        &self,
        session: &SessionId,
        response: Map<String, Value>,
        portal: Option<PortalId>,
    ) -> Result<Stored, VaultError> {
        let started = std::time::Instant::now();
        let stored = self.put_inner(session, response, portal).await;
        observe("put", started, stored.as_ref().map(|_| true));
        stored
    }

    async fn put_inner(
        &self,
        session: &SessionId,
        response: Map<String, Value>,
        portal: Option<PortalId>,
    ) -> Result<Stored, VaultError> {
        let now = self.clock.now();
        let expires_at = now + chrono(self.lifetime_of(&response)?);
        let claims = match portal {
            Some(portal) => self.verify_for_portal(&response, portal, now).await?,
            None => None,
        };
        let hashed = self.hasher.session_key(session);
        let subject = claims.as_ref().map(|c| self.hasher.subject_key(&c.sub));
        let sealed = Sealed {
            idp_response: Value::Object(response),
            stored_at: Some(epoch(now)),
            expires_at: Some(epoch(expires_at)),
            portal_id: portal.map(PortalId::get),
            claims: claims.clone(),
        };
        let plaintext = serde_json::to_vec(&sealed).expect("JSON values serialise");
        let value = self.keys.seal(&plaintext, &hashed);
        self.store
            .put_token(
                Self::key(&hashed, session),
                &NewTokenRecord {
                    value: &value,
                    stored_at: now,
                    expires_at,
                    subject: subject.as_deref(),
                },
            )
            .await?;
        Ok(Stored {
            stored_at: now,
            expires_at,
            claims,
        })
    }

    /// Opens a stored record. `bound_to` is the key it is stored under. A value not in
    /// the sealed format is `None` unless `plaintext` allows it.
    fn open(
        &self,
        record: StoredToken,
        bound_to: &[u8],
        plaintext: bool,
    ) -> Result<Option<OpenedToken>, VaultError> {
        let column_stored = record.stored_at.map(|t| t.and_utc());
        let column_expires = record.expires_at.map(|t| t.and_utc());
        match record.idp_response {
            Some(value) if KeyRing::is_sealed(&value) => {
                let plaintext = self
                    .keys
                    .open(&value, bound_to)
                    .map_err(VaultError::Unreadable)?;
                let sealed: Sealed = serde_json::from_slice(&plaintext)
                    .map_err(|_| VaultError::Unreadable(OpenError::Corrupt))?;
                Ok(Some(OpenedToken {
                    idp_response: sealed.idp_response,
                    stored_at: sealed.stored_at.and_then(from_epoch).or(column_stored),
                    expires_at: sealed.expires_at.and_then(from_epoch).or(column_expires),
                    portal_id: sealed.portal_id,
                    claims: sealed.claims,
                }))
            }
            _ if !plaintext => {
                tracing::warn!(
                    backend = self.store.token_backend(),
                    "a stored token value is not in efs-iam's sealed format and is not served \
                     (see EFS_IAM_TOKEN_ACCEPT_LEGACY_PLAINTEXT)"
                );
                Ok(None)
            }
            legacy => Ok(Some(OpenedToken {
                idp_response: legacy_value(legacy),
                stored_at: column_stored,
                expires_at: column_expires,
                portal_id: None,
                claims: None,
            })),
        }
    }

    /// The session's response, unless nothing is stored or it has expired.
    pub async fn get(&self, session: &SessionId) -> Result<Option<OpenedToken>, VaultError> {
        let started = std::time::Instant::now();
        let got = self.get_inner(session).await;
        observe("get", started, got.as_ref().map(Option::is_some));
        got
    }

    async fn get_inner(&self, session: &SessionId) -> Result<Option<OpenedToken>, VaultError> {
        let hashed = self.hasher.session_key(session);
        let Some(record) = self.store.get_token(Self::key(&hashed, session)).await? else {
            return Ok(None);
        };
        let bound: &[u8] = if record.legacy_key {
            session.as_bytes()
        } else {
            &hashed
        };
        // memcached never held EFS's legacy rows: a plaintext value there was put
        // there by someone else.
        let plaintext = self.accept_plaintext && self.store.token_backend().starts_with("sql");
        let Some(opened) = self.open(record, bound, plaintext)? else {
            return Ok(None);
        };
        if opened.expires_at.is_some_and(|e| e <= self.clock.now()) {
            return Ok(None);
        }
        Ok(Some(opened))
    }

    /// Forgets the session (both keys). `true` when something was stored.
    pub async fn delete(&self, session: &SessionId) -> Result<bool, VaultError> {
        let started = std::time::Instant::now();
        let hashed = self.hasher.session_key(session);
        let deleted = self
            .store
            .delete_token(Self::key(&hashed, session))
            .await
            .map_err(VaultError::from);
        observe("delete", started, deleted.as_ref().copied());
        deleted
    }

    /// Forgets every session whose verified id_token named this Okta user.
    pub async fn delete_user_sessions(&self, user: &OktaUserId) -> Result<u64, VaultError> {
        Ok(self
            .store
            .delete_subject_tokens(&self.hasher.subject_key(user.as_str()))
            .await?)
    }

    /// Deletes expired records (SQL); legacy rows get their first expiry.
    pub async fn purge_expired(&self) -> Result<u64, VaultError> {
        let now = self.clock.now();
        Ok(self
            .store
            .purge_expired_tokens(now, now + chrono(self.lifetimes.max))
            .await?)
    }

    /// Rewrites every stored record under the current key and a hashed id.
    pub async fn reencrypt(&self) -> Result<ReencryptReport, VaultError> {
        if self.keys.is_ephemeral() {
            return Err(VaultError::Unsupported(
                "EFS_IAM_TOKEN_KEYS is not set: nothing to re-encrypt with".into(),
            ));
        }
        let mut report = ReencryptReport {
            purged: self.purge_expired().await?,
            ..Default::default()
        };
        let current = self.keys.current_id().to_owned();
        let legacy_store = self.store.token_backend().starts_with("sql");
        let mut after = 0i64;
        loop {
            let Some(rows) = self.store.scan_tokens(after, 500).await? else {
                return Err(VaultError::Unsupported(format!(
                    "the {} token store cannot list its entries; they expire within \
                     EFS_IAM_TOKEN_MAX_LIFETIME, so keep an old key configured that long",
                    self.store.token_backend()
                )));
            };
            let Some(last) = rows.last() else { break };
            after = last.id;
            for row in rows {
                report.scanned += 1;
                let hashed_id = is_hashed_id(&row.session_id);
                let value = row.idp_response.as_deref();
                if hashed_id && value.and_then(KeyRing::key_id_of) == Some(current.as_str()) {
                    report.current += 1;
                    continue;
                }
                let record = StoredToken {
                    idp_response: row.idp_response.clone(),
                    stored_at: row.stored_at,
                    expires_at: row.expires_at,
                    legacy_key: !hashed_id,
                };
                // Sealing legacy rows is what re-encrypt is for: they are read here
                // whatever the switch says, on the SQL store, which alone has them.
                let opened = match self.open(record, &row.session_id, legacy_store) {
                    Ok(Some(o)) => o,
                    Ok(None) => {
                        tracing::warn!(row = row.id, "unsealed token entry left as it is");
                        report.failed += 1;
                        continue;
                    }
                    Err(e) => {
                        tracing::warn!(row = row.id, error = %e, "token row left as it is");
                        report.failed += 1;
                        continue;
                    }
                };
                let new_id = if hashed_id {
                    row.session_id.clone()
                } else {
                    self.hasher.hash_raw_session(&row.session_id)
                };
                let expires_at = opened
                    .expires_at
                    .unwrap_or_else(|| self.clock.now() + chrono(self.lifetimes.max));
                let sealed = Sealed {
                    idp_response: opened.idp_response,
                    stored_at: opened.stored_at.map(epoch),
                    expires_at: Some(epoch(expires_at)),
                    portal_id: opened.portal_id,
                    claims: opened.claims,
                };
                let plaintext = serde_json::to_vec(&sealed).expect("JSON values serialise");
                let value = self.keys.seal(&plaintext, &new_id);
                if self
                    .store
                    .rewrite_token(&row, &new_id, &value, expires_at)
                    .await?
                {
                    report.rewritten += 1;
                } else {
                    report.changed += 1;
                }
            }
        }
        Ok(report)
    }
}

/// Every `outcome` of `efs_iam_token_store_operations_total`.
pub const TOKEN_OUTCOMES: [&str; 4] = ["ok", "not_found", "refused", "error"];

/// Counts a vault operation and its time: `found` is whether there was something to
/// get or delete; refusals of the caller's input are told apart from failures of the
/// store or the identity provider.
fn observe(op: &'static str, started: std::time::Instant, found: Result<bool, &VaultError>) {
    let outcome = match found {
        Ok(true) => "ok",
        Ok(false) => "not_found",
        Err(
            VaultError::Invalid { .. }
            | VaultError::InvalidIdToken(_)
            | VaultError::IssuerNotAllowed(_)
            | VaultError::Store(TokenStoreError::TooLarge { .. }),
        ) => "refused",
        Err(_) => "error",
    };
    metrics::counter!("efs_iam_token_store_operations_total", "op" => op, "outcome" => outcome)
        .increment(1);
    metrics::histogram!("efs_iam_token_store_duration_seconds", "op" => op)
        .record(started.elapsed().as_secs_f64());
}
