//! Deprovisioning an EFS-Admin user: its Okta user deactivated (unless another
//! reference still uses it) and its reference removed. A deprovisioned Okta user is
//! never reactivated by efs-iam: that sends the person an email and is an operator's
//! decision.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::lock;
use super::{SyncEngine, SyncError};
use crate::domain::{EfsUserId, OktaUserId, PortalUserStatus};
use crate::okta::{OktaError, OktaUserStatus};

/// What deprovisioning did in Okta.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeprovisionOutcome {
    /// Okta deactivated the user.
    Deactivated,
    /// The Okta user was already deactivated.
    AlreadyDeactivated,
    /// Okta has no such user any more.
    AlreadyGone,
    /// Other references (another admin user, a portal membership) still use the Okta
    /// user, so it was left active; only this reference was removed.
    StillReferenced,
    /// The reference had no Okta user id; it was removed.
    Unlinked,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deprovision {
    pub okta_user_id: Option<String>,
    pub outcome: DeprovisionOutcome,
    /// References still pointing at the Okta user (when `StillReferenced`).
    pub other_references: usize,
}

impl SyncEngine {
    /// Deprovisions an EFS-Admin user: deactivates the Okta user (unless other
    /// references still use it) and removes the reference. `None` when the user has no
    /// reference.
    #[tracing::instrument(skip(self), fields(user = user.get()), err(level = "info"))]
    pub async fn deprovision_admin_user(
        &self,
        user: EfsUserId,
    ) -> Result<Option<Deprovision>, SyncError> {
        let guard = self
            .locks
            .acquire(&[format!("admin:{user}")], lock::MAX_WAIT)
            .await?;
        let result = self.deprovision_locked(user).await;
        guard.release().await;
        result
    }

    async fn deprovision_locked(&self, user: EfsUserId) -> Result<Option<Deprovision>, SyncError> {
        let Some(reference) = self.references.admin_user_reference(user).await? else {
            return Ok(None);
        };
        let Some(okta_id) = reference.okta_user_id.filter(|s| !s.is_empty()) else {
            self.references.delete_admin_user_reference(user).await?;
            return Ok(Some(Deprovision {
                okta_user_id: None,
                outcome: DeprovisionOutcome::Unlinked,
                other_references: 0,
            }));
        };
        // The same person may be a panelist or another admin user: their Okta user must
        // stay active for those.
        let others = match OktaUserId::parse(&okta_id) {
            Ok(id) => {
                let (admins, portals) = self.references.references_to_okta_user(&id).await?;
                admins
                    .iter()
                    .filter(|r| r.user_id != Some(user.get()))
                    .count()
                    + portals
                        .iter()
                        .filter(|r| r.status() != Some(PortalUserStatus::Deprovisioned))
                        .count()
            }
            Err(_) => 0,
        };
        let outcome = if others > 0 {
            DeprovisionOutcome::StillReferenced
        } else {
            // Only an Okta user efs-iam manages, and no administrator, is deactivated.
            match self.boundary.check_may_change_id(&okta_id).await {
                Ok(()) => self.deactivate(&okta_id).await?,
                Err(SyncError::OktaRefused(OktaError::NotFound(_))) => {
                    DeprovisionOutcome::AlreadyGone
                }
                Err(e) => return Err(e),
            }
        };
        self.references.delete_admin_user_reference(user).await?;
        Ok(Some(Deprovision {
            okta_user_id: Some(okta_id),
            outcome,
            other_references: others,
        }))
    }

    /// Deactivates the Okta user; what Okta's answer means.
    async fn deactivate(&self, okta_id: &str) -> Result<DeprovisionOutcome, SyncError> {
        Ok(match self.okta.deactivate_user(okta_id).await {
            Ok(()) => DeprovisionOutcome::Deactivated,
            Err(OktaError::NotFound(_)) => DeprovisionOutcome::AlreadyGone,
            Err(e @ OktaError::ForbiddenState(_)) => {
                match self
                    .okta
                    .get_user(okta_id)
                    .await
                    .map_err(SyncError::from_okta)?
                {
                    None => DeprovisionOutcome::AlreadyGone,
                    Some(u) if u.status == OktaUserStatus::Deprovisioned => {
                        DeprovisionOutcome::AlreadyDeactivated
                    }
                    Some(_) => return Err(SyncError::OktaRefused(e)),
                }
            }
            Err(e) => return Err(SyncError::from_okta(e)),
        })
    }
}
