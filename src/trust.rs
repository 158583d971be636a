//! Writing portal settings, and the ones among them that steer trust
//! ([`crate::domain::TRUST_SETTINGS`]): `okta_issuer` decides whose id_tokens are
//! accepted for the portal, `okta_client_id` the audience they must carry, and
//! `okta_group_id` the Okta group its panelists are put in and taken out of.
//!
//! Writing those needs `iam:admin` (decided in `auth`); here they are checked and
//! audited:
//!
//! * `okta_issuer` must be on an allowed issuer origin ([`IssuerPolicy`]), so no caller
//!   can point efs-iam's key fetching at a host of its choosing;
//! * `okta_group_id` must be an Okta group id and, when Okta is configured, name a
//!   group Okta has (`GET /api/v1/groups/{id}`), so sync and the unassignment queue
//!   cannot be pointed at a group by mistake;
//! * `reconcile_mode` is `report` or `repair`: whether the scheduled reconciliation
//!   may add and remove the group's members by itself;
//! * every change of one leaves an `audit` line with the caller's `sub`, the portal,
//!   the key, and the old and new value (these values are not secret).
//!
//! Clearing a trust setting (null, empty, or DELETE) is always allowed: it turns the
//! portal's Okta features off rather than on.

use std::sync::Arc;

use crate::domain::{
    check_text, OktaGroupId, PortalId, SettingKey, OKTA_CLIENT_ID, OKTA_GROUP_ID, OKTA_ISSUER,
    RECONCILE_MODE,
};
use crate::okta::{OktaClient, OktaError};
use crate::storage::{PortalSettingsStore, SettingWrite, StorageError};
use crate::tokens::IssuerPolicy;

/// `iam_portal_settings.value` is VARCHAR(255).
pub const VALUE_LIMIT: usize = 255;

/// Why a setting was not written. `field` names the request field at fault.
#[derive(Debug, thiserror::Error)]
pub enum SettingError {
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// `okta_group_id` names no group Okta has.
    #[error("{field}: Okta has no group {group:?}")]
    GroupNotFound { field: String, group: String },
    /// Okta could not be asked whether the group exists.
    #[error("the okta_group_id could not be checked with Okta: {0}")]
    Okta(OktaError),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// How the request names a setting's value: the bulk PUT's `settings.<key>`, or the
/// single-key PUT's `value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldNames {
    Bulk,
    Single,
}

impl FieldNames {
    fn of(self, key: &SettingKey) -> String {
        match self {
            Self::Bulk => format!("settings.{}", key.as_str()),
            Self::Single => "value".to_owned(),
        }
    }
}

/// Writes portal settings, checking and auditing the trust settings.
pub struct SettingsGuard {
    store: Arc<dyn PortalSettingsStore>,
    issuers: IssuerPolicy,
    okta: Option<OktaClient>,
}

impl SettingsGuard {
    pub fn new(
        store: Arc<dyn PortalSettingsStore>,
        issuers: IssuerPolicy,
        okta: Option<OktaClient>,
    ) -> Self {
        Self {
            store,
            issuers,
            okta,
        }
    }

    /// Sets every given key in one transaction, after checking each value; `caller` is
    /// the `sub` the audit line names.
    pub async fn put(
        &self,
        caller: &str,
        portal: PortalId,
        entries: &[(SettingKey, Option<String>)],
        names: FieldNames,
    ) -> Result<Vec<SettingWrite>, SettingError> {
        for (key, value) in entries {
            self.check(key, value.as_deref(), names).await?;
        }
        let writes = self.store.put_portal_settings(portal, entries).await?;
        for ((key, value), write) in entries.iter().zip(&writes) {
            if key.is_trust_setting() && write.previous != *value {
                audit(
                    caller,
                    portal,
                    key,
                    write.previous.as_deref(),
                    value.as_deref(),
                );
            }
        }
        Ok(writes)
    }

    /// Removes a setting; `None` when the portal had none, else the value removed.
    pub async fn delete(
        &self,
        caller: &str,
        portal: PortalId,
        key: &SettingKey,
    ) -> Result<Option<Option<String>>, SettingError> {
        let deleted = self.store.delete_portal_setting(portal, key).await?;
        if let Some(previous) = &deleted {
            if key.is_trust_setting() {
                audit(caller, portal, key, previous.as_deref(), None);
            }
        }
        Ok(deleted)
    }

    async fn check(
        &self,
        key: &SettingKey,
        value: Option<&str>,
        names: FieldNames,
    ) -> Result<(), SettingError> {
        let invalid = |message: String| SettingError::Invalid {
            field: names.of(key),
            message,
        };
        let Some(value) = value else { return Ok(()) };
        check_text(value, VALUE_LIMIT).map_err(|e| invalid(e.to_string()))?;
        if !key.is_trust_setting() || value.is_empty() {
            return Ok(());
        }
        // What is checked is what is stored: a trust value is refused, not trimmed, so
        // `"https://org.example.com\n"` never reaches the table next to a check that
        // passed on its trimmed form.
        if value.trim() != value {
            return Err(invalid(format!(
                "{} must not begin or end with white space",
                key.as_str()
            )));
        }
        if key.is(OKTA_ISSUER) {
            self.issuers
                .check(value)
                .map_err(|why| invalid(format!("{OKTA_ISSUER} {why}")))?;
        } else if key.is(OKTA_CLIENT_ID) {
            if !value.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(invalid(format!(
                    "{OKTA_CLIENT_ID} must be an Okta client id (visible ASCII, no spaces)"
                )));
            }
        } else if key.is(RECONCILE_MODE) {
            if !matches!(value, "report" | "repair") {
                return Err(invalid(format!(
                    "{RECONCILE_MODE} must be report (the scheduled reconciliation only \
                     reports drift) or repair"
                )));
            }
        } else if key.is(OKTA_GROUP_ID) {
            if let Err(why) = OktaGroupId::parse(value) {
                return Err(invalid(format!("{OKTA_GROUP_ID} {why}")));
            }
            if let Some(okta) = &self.okta {
                match okta.get_group(value).await {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        return Err(SettingError::GroupNotFound {
                            field: names.of(key),
                            group: value.to_owned(),
                        })
                    }
                    Err(e) => return Err(SettingError::Okta(e)),
                }
            }
        }
        Ok(())
    }
}

fn audit(caller: &str, portal: PortalId, key: &SettingKey, old: Option<&str>, new: Option<&str>) {
    tracing::info!(
        target: "audit",
        sub = %caller,
        portal = portal.get(),
        key = key.as_str(),
        old = ?old,
        new = ?new,
        "trust setting changed"
    );
}
