//! The sync engine: brings EFS users into Okta and keeps portal group memberships in
//! step. The HTTP handlers and the batch job worker both go through [`SyncEngine`], so
//! a user synced by a single call and one synced as part of a batch job take exactly
//! the same path.
//!
//! **Never a duplicate Okta user.** For one EFS user, concurrent or retried calls end
//! with one Okta user:
//!
//! 1. every sync of a user holds that user's lock and the lock of its login
//!    ([`UserLocks`], across instances);
//! 2. the user is found by its stored reference first (references to an Okta user that
//!    no longer exists are stale and skipped), then by login, and created only when
//!    neither finds it;
//! 3. Okta's "login already exists" answer to a create (another client, or our own
//!    earlier attempt that timed out after Okta created the user) is resolved by looking
//!    the user up by login and linking it.
//!
//! A deprovisioned (deactivated) Okta user is reported, not reactivated: reactivation
//! sends the person an email and is an operator's decision.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::boundary::Boundary;
use super::lock::{self, UserLocks};
use super::profile::{update_fields, UserProfile};
use super::{SyncError, SyncSettings, SyncStorage};
use crate::domain::{EfsUserId, OktaUserId, PortalId, PortalUserStatus};
use crate::okta::{Activation, CallContext, OktaClient, OktaError, OktaUser, OktaUserStatus};
use crate::storage::{
    EfsUserKind, ErrorLogStore, NewErrorLogEntry, PortalGroup, PortalSettingsStore,
    PortalUserReferenceUpsert, StorageError, UserReferenceStore,
};

/// What a sync did with the Okta user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// No Okta user was found; one was created.
    Created,
    /// An existing Okta user with this login was linked (and updated where it differed).
    Linked,
    /// The referenced Okta user's profile was updated.
    Updated,
    /// The referenced Okta user already had this profile.
    Unchanged,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
            Self::Linked => "linked",
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
        }
    }
}

/// The result of syncing one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSync {
    pub okta_user_id: String,
    pub outcome: Outcome,
    /// Request fields whose values were written to Okta by an update.
    pub updated_fields: Vec<String>,
    /// The Okta user's status (`ACTIVE`, `PROVISIONED`, `STAGED`…).
    pub okta_status: String,
}

/// Syncs users into Okta. Cheap to share (`Arc`); one per process.
pub struct SyncEngine {
    settings: Arc<dyn PortalSettingsStore>,
    pub(super) references: Arc<dyn UserReferenceStore>,
    error_log: Arc<dyn ErrorLogStore>,
    pub(super) okta: OktaClient,
    pub(super) locks: UserLocks,
    pub(super) boundary: Boundary,
    activation: Activation,
    /// Members read beyond twice the references, and the read's deadline.
    pub(super) reconcile_bound: (usize, std::time::Duration),
}

fn login_lock(login: &str) -> String {
    format!("login:{}", login.to_lowercase())
}

impl SyncEngine {
    pub fn new<S: SyncStorage>(
        store: &Arc<S>,
        okta: OktaClient,
        settings: &SyncSettings,
        instance_id: String,
    ) -> Self {
        Self {
            locks: UserLocks::new(store.clone(), instance_id, settings.lease),
            boundary: Boundary::new(store.clone(), okta.clone()),
            settings: store.clone(),
            references: store.clone(),
            error_log: store.clone(),
            okta,
            activation: if settings.activate_users {
                Activation::Activate
            } else {
                Activation::Stage
            },
            reconcile_bound: (
                settings.reconcile_member_headroom,
                settings.reconcile_read_timeout,
            ),
        }
    }

    pub fn okta(&self) -> &OktaClient {
        &self.okta
    }

    /// The managed-user boundary every change of an Okta user passes.
    pub fn boundary(&self) -> &Boundary {
        &self.boundary
    }

    pub fn references(&self) -> &Arc<dyn UserReferenceStore> {
        &self.references
    }

    /// The portal's Okta group (`okta_group_id` setting), or why there is none.
    pub async fn portal_group(&self, portal: PortalId) -> Result<String, SyncError> {
        match self.settings.portal_group(portal).await? {
            PortalGroup::Linked(group) => Ok(group.as_str().to_owned()),
            PortalGroup::NotLinked => Err(SyncError::PortalNotLinked {
                portal: portal.get(),
            }),
            PortalGroup::Malformed(value) => Err(SyncError::GroupNotFound {
                portal: portal.get(),
                group_id: value,
            }),
        }
    }

    /// Syncs an EFS-Admin user: reference, else login, else create; profile updated
    /// where it differs; `iam_user_reference` stored.
    #[tracing::instrument(skip(self, profile), fields(user = user.get()), err(level = "info"))]
    pub async fn sync_admin_user(
        &self,
        user: EfsUserId,
        profile: &UserProfile,
    ) -> Result<UserSync, SyncError> {
        if !self
            .references
            .efs_user_exists(EfsUserKind::Admin, user)
            .await?
        {
            return Err(StorageError::UnknownEfsUser.into());
        }
        let guard = self
            .locks
            .acquire(
                &[format!("admin:{user}"), login_lock(&profile.login)],
                lock::MAX_WAIT,
            )
            .await?;
        let result = async {
            let reference = self.references.admin_user_reference(user).await?;
            let stored = reference.and_then(|r| r.okta_user_id);
            let candidates: Vec<String> =
                stored.iter().filter(|s| !s.is_empty()).cloned().collect();
            let (okta_user, outcome, updated_fields) =
                self.ensure_user(&candidates, profile).await?;
            let id = stored_id(&okta_user.id)?;
            if stored.as_deref() != Some(okta_user.id.as_str()) {
                self.references.put_admin_user_reference(user, &id).await?;
            }
            Ok(UserSync {
                okta_status: okta_user.status.as_str().to_owned(),
                okta_user_id: okta_user.id,
                outcome,
                updated_fields,
            })
        }
        .await;
        guard.release().await;
        result
    }

    /// Syncs a portal user: as an admin user, plus membership of the portal's Okta
    /// group. Stores the reference as synced (clearing `has_data_changes`) or, when the
    /// sync fails, as failed, with the error in `iam_error_log`.
    #[tracing::instrument(skip(self, profile), fields(portal = portal.get(), user = user.get()), err(level = "info"))]
    pub async fn sync_portal_user(
        &self,
        portal: PortalId,
        user: EfsUserId,
        profile: &UserProfile,
    ) -> Result<(UserSync, String), SyncError> {
        let group = self.portal_group(portal).await?;
        if !self
            .references
            .efs_user_exists(EfsUserKind::Panelist, user)
            .await?
        {
            return Err(StorageError::UnknownEfsUser.into());
        }
        let guard = self
            .locks
            .acquire(
                &[format!("panelist:{user}"), login_lock(&profile.login)],
                lock::MAX_WAIT,
            )
            .await?;
        let mut linked: Option<String> = None;
        let context = CallContext::new(format!("sync of portal user {user} (portal {portal})"));
        let result = context
            .scope(self.sync_portal_user_locked(portal, user, profile, &group, &mut linked))
            .await;
        if let Err(e) = &result {
            self.record_portal_failure(portal, user, e, linked.as_deref(), &context)
                .await;
        }
        guard.release().await;
        result.map(|s| (s, group))
    }

    async fn sync_portal_user_locked(
        &self,
        portal: PortalId,
        user: EfsUserId,
        profile: &UserProfile,
        group: &str,
        linked: &mut Option<String>,
    ) -> Result<UserSync, SyncError> {
        let mut candidates: Vec<String> = Vec::new();
        if let Some(r) = self.references.portal_user_reference(portal, user).await? {
            candidates.extend(r.okta_user_id);
        }
        // One person, several portals: one Okta user.
        for r in self.references.portal_references_of_user(user).await? {
            candidates.extend(r.okta_user_id);
        }
        candidates.retain(|c| !c.is_empty());
        let mut seen = std::collections::HashSet::new();
        candidates.retain(|c| seen.insert(c.clone()));

        let (okta_user, outcome, updated_fields) = self.ensure_user(&candidates, profile).await?;
        *linked = Some(okta_user.id.clone());
        let id = stored_id(&okta_user.id)?;
        match self
            .okta
            .add_group_member_or_404(group, &okta_user.id)
            .await
        {
            Ok(None) => {}
            // No such group, or no such user (deleted in Okta a moment ago): Okta's 404
            // says which only through another question.
            Ok(Some(not_found)) => {
                return Err(match self.okta.get_group(group).await {
                    Ok(None) => SyncError::GroupNotFound {
                        portal: portal.get(),
                        group_id: group.to_owned(),
                    },
                    Ok(Some(_)) => SyncError::OktaRefused(not_found),
                    Err(check) => SyncError::from_okta(check),
                })
            }
            Err(e) => return Err(SyncError::from_okta(e)),
        }
        self.references
            .put_portal_user_reference(
                portal,
                user,
                &PortalUserReferenceUpsert {
                    okta_user_id: id,
                    status: PortalUserStatus::Synced,
                    has_data_changes: false,
                },
            )
            .await?;
        Ok(UserSync {
            okta_status: okta_user.status.as_str().to_owned(),
            okta_user_id: okta_user.id,
            outcome,
            updated_fields,
        })
    }

    /// Records a failed portal sync on the reference and, unless an Okta call of the
    /// sync left its row already (`context`), in the error log: one row per failure.
    /// Best effort: the caller reports the sync's own error either way.
    async fn record_portal_failure(
        &self,
        portal: PortalId,
        user: EfsUserId,
        error: &SyncError,
        linked: Option<&str>,
        context: &CallContext,
    ) {
        if matches!(error, SyncError::Busy | SyncError::Storage(_)) {
            return; // nothing was decided; the database may be the problem
        }
        let (status, okta_id) = match error {
            SyncError::Deprovisioned { okta_user_id } => {
                (PortalUserStatus::Deprovisioned, Some(okta_user_id.as_str()))
            }
            _ => (PortalUserStatus::Failed, linked),
        };
        let okta_id = okta_id.and_then(|id| OktaUserId::parse(id).ok());
        if let Err(e) = self
            .references
            .mark_portal_sync_failed(portal, user, okta_id.as_ref(), status)
            .await
        {
            tracing::warn!(error = %e, "could not record the failed sync on the reference");
        }
        if context.failure_logged() {
            return;
        }
        let okta = error.okta_error().and_then(|e| e.api_error());
        // What Okta answered; 0 when efs-iam itself found the problem (as the Okta
        // adapter writes 0 for a call that got no answer).
        let status_code = okta.map_or(
            match error {
                SyncError::OktaValidation { .. } => 400,
                SyncError::GroupNotFound { .. } => 404,
                _ => 0,
            },
            |a| a.status,
        );
        let error_code = okta
            .map(|a| a.error_code.clone())
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| format!("efs-iam:{}", error.slug()));
        let message = format!("sync of portal user {user} (portal {portal}) failed: {error}");
        let entry = NewErrorLogEntry::new(status_code, &error_code, &message, None);
        if let Err(e) = self.error_log.record_error(&entry).await {
            tracing::warn!(error = %e, "could not write the failed sync to the error log");
        }
    }

    /// Finds (by reference, then login) or creates the Okta user for `profile`, and
    /// brings its profile up to date.
    async fn ensure_user(
        &self,
        candidates: &[String],
        profile: &UserProfile,
    ) -> Result<(OktaUser, Outcome, Vec<String>), SyncError> {
        let mut found: Option<(OktaUser, Outcome)> = None;
        for id in candidates {
            match self.okta.get_user(id).await {
                Ok(Some(u)) => {
                    found = Some((u, Outcome::Unchanged));
                    break;
                }
                Ok(None) => {
                    tracing::info!(okta_user_id = %id, "stale reference: Okta has no such user");
                }
                Err(e) => return Err(SyncError::from_okta(e)),
            }
        }
        if found.is_none() {
            if let Some(u) = self.find_by_login(&profile.login).await? {
                found = Some((u, Outcome::Linked));
            }
        }
        let (user, mut outcome) = match found {
            Some((user, Outcome::Linked)) => {
                // Found by login, not through a reference: only if it is efs-iam's.
                self.boundary.claim_found(&user, &profile.login).await?;
                (user, Outcome::Linked)
            }
            Some(f) => f,
            None => {
                self.boundary.before_create(&profile.login).await?;
                match self
                    .okta
                    .create_user(&profile.to_new(), self.activation)
                    .await
                {
                    Ok(u) => {
                        self.boundary.record_created(&u, &profile.login).await?;
                        return Ok((u, Outcome::Created, Vec::new()));
                    }
                    Err(e) if e.is_duplicate_login() => {
                        // Our own earlier attempt created it before its answer was lost
                        // (then it is ours), or someone else did (then it is refused).
                        let u = self.find_after_duplicate(&profile.login).await?;
                        self.boundary.claim_found(&u, &profile.login).await?;
                        (u, Outcome::Linked)
                    }
                    Err(e) => return Err(SyncError::from_profile_write(e, profile)),
                }
            }
        };
        // An existing user: efs-iam's, and no administrator, before anything changes.
        self.boundary.check_may_change(&user).await?;
        if user.status == OktaUserStatus::Deprovisioned {
            return Err(SyncError::Deprovisioned {
                okta_user_id: user.id,
            });
        }
        let update = profile.diff(&user.profile);
        if update.is_empty() {
            return Ok((user, outcome, Vec::new()));
        }
        let fields = update_fields(&update);
        match self.okta.update_user_profile(&user.id, &update).await {
            Ok(updated) => {
                if outcome == Outcome::Unchanged {
                    outcome = Outcome::Updated;
                }
                Ok((updated, outcome, fields))
            }
            Err(e) if e.is_duplicate_login() => Err(SyncError::LoginConflict {
                login: profile.login.clone(),
                reason: format!(
                    "by another Okta user than {} (the one being updated)",
                    user.id
                ),
            }),
            Err(OktaError::ForbiddenState(_)) => Err(SyncError::Deprovisioned {
                okta_user_id: user.id,
            }),
            Err(e) => Err(SyncError::from_profile_write(e, profile)),
        }
    }

    /// The Okta user whose login is `login`. Okta's lookup also answers ids and
    /// unambiguous short logins, so the answer is checked.
    async fn find_by_login(&self, login: &str) -> Result<Option<OktaUser>, SyncError> {
        if matches!(login.trim(), "" | "." | "..") {
            return Ok(None); // cannot name a user in a path; Okta will refuse the login
        }
        let user = self
            .okta
            .get_user_by_login(login)
            .await
            .map_err(SyncError::from_okta)?;
        Ok(user.filter(|u| u.profile.login.to_lowercase() == login.to_lowercase()))
    }

    async fn find_after_duplicate(&self, login: &str) -> Result<OktaUser, SyncError> {
        // Logins with `/` are found through Okta's search index, which may lag behind
        // a create by a moment.
        for pause in [0, 250, 1000] {
            tokio::time::sleep(Duration::from_millis(pause)).await;
            if let Some(u) = self.find_by_login(login).await? {
                return Ok(u);
            }
        }
        Err(SyncError::LoginConflict {
            login: login.to_owned(),
            reason: "no user with exactly that login can be found (a user whose login differs \
                     only in accents, or Okta's search index lagging); check the login in Okta"
                .into(),
        })
    }
}

/// An Okta id as the `BINARY(20)` reference columns hold it.
fn stored_id(id: &str) -> Result<OktaUserId, SyncError> {
    OktaUserId::parse(id).map_err(|e| {
        SyncError::OktaRefused(OktaError::InvalidInput(format!(
            "Okta user id {id:?} cannot be stored in the 20-character reference column: {e}"
        )))
    })
}
