//! The managed-user boundary: efs-iam acts only on EFS's own Okta users.
//!
//! **EFS's Okta users** are the users efs-iam *manages*: the ones it created (for an
//! EFS-Admin user or a panelist), and the ones an `iam:admin` adopted, one by one or in
//! a bulk adoption run; `efs_iam_managed_okta_user` records each, with who brought it
//! under management and when. An Okta user holding an admin role (any assignment in
//! `GET /api/v1/users/{id}/roles`) is never EFS's, managed or not.
//!
//! efs-iam creates, updates, deactivates, changes the group memberships of, or links a
//! reference to an Okta user only if it is EFS's:
//!
//! - a reference written through the API must name a managed user (checked against the
//!   record; no Okta call);
//! - before a sync, a deprovisioning, an unassignment or a reconciliation changes an
//!   existing Okta user, the user must be managed, and Okta is asked for its admin
//!   roles, every time (a role can be granted at any moment);
//! - a sync whose login belongs to an existing Okta user that efs-iam does not manage
//!   is refused, naming the login; the user is never linked, renamed or grouped;
//! - events about users efs-iam does not manage are recorded as ignored.
//!
//! A user efs-iam creates is recorded as managed right after Okta confirms it. So that
//! a create whose answer was lost (a timeout, a crash before the record) does not leave
//! an Okta user efs-iam made but refuses, the login is marked before the create is
//! sent; a user found later under that login, created after the mark, is efs-iam's.

use std::sync::Arc;

use super::SyncError;
use crate::domain::OktaUserId;
use crate::okta::{OktaClient, OktaError, OktaUser, OktaUserStatus};
use crate::storage::{now, ManagedOktaUser, ManagedOrigin, ManagedUserStore, StorageError};

/// Who brought the users it created under management.
pub const CREATED_BY: &str = "efs-iam";

/// How far before the creation mark an Okta user's `created` time may be and still
/// be the user that create made: the two clocks are the database's and Okta's.
const CLOCK_SKEW: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// The boundary's checks and records.
#[derive(Clone)]
pub struct Boundary {
    store: Arc<dyn ManagedUserStore>,
    okta: OktaClient,
}

impl Boundary {
    pub fn new(store: Arc<dyn ManagedUserStore>, okta: OktaClient) -> Self {
        Self { store, okta }
    }

    /// Whether efs-iam manages the Okta user (its record; no Okta call). An id that is
    /// no Okta user id is not managed.
    pub async fn is_managed(&self, id: &str) -> Result<bool, StorageError> {
        match OktaUserId::parse(id) {
            Ok(id) => Ok(self.store.managed_okta_user(&id).await?.is_some()),
            Err(_) => Ok(false),
        }
    }

    /// Before efs-iam changes an existing Okta user (profile, lifecycle, a group
    /// membership): the user must be managed and hold no admin role.
    pub async fn check_may_change(&self, user: &OktaUser) -> Result<(), SyncError> {
        if !self.is_managed(&user.id).await? {
            return Err(not_managed(user, None));
        }
        self.check_no_admin_role(&user.id).await
    }

    /// As [`Self::check_may_change`] for a user known by id only.
    pub async fn check_may_change_id(&self, id: &str) -> Result<(), SyncError> {
        if !self.is_managed(id).await? {
            return Err(SyncError::NotManaged {
                okta_user_id: id.to_owned(),
                login: None,
                field: None,
            });
        }
        self.check_no_admin_role(id).await
    }

    /// Okta's admin role assignments of the user: none, or [`SyncError::Privileged`].
    pub async fn check_no_admin_role(&self, id: &str) -> Result<(), SyncError> {
        let roles = self
            .okta
            .list_user_roles(id)
            .await
            .map_err(SyncError::from_okta)?;
        if roles.is_empty() {
            return Ok(());
        }
        Err(SyncError::Privileged {
            okta_user_id: id.to_owned(),
            roles: roles.into_iter().map(|r| r.role_type).collect(),
        })
    }

    /// A user a sync found by `login` rather than through a reference: efs-iam's if it
    /// manages it, or if efs-iam was creating this very login when Okta created the
    /// user (its earlier create's answer was lost), which is then recorded. Anything
    /// else is someone else's user: refused, naming the login.
    pub async fn claim_found(&self, user: &OktaUser, login: &str) -> Result<(), SyncError> {
        if self.is_managed(&user.id).await? {
            return Ok(());
        }
        let ours = match (self.store.creation_started(login).await?, user.created) {
            (Some(started), Some(created)) => created.naive_utc() >= started - CLOCK_SKEW,
            _ => false,
        };
        if !ours {
            return Err(not_managed(user, Some("login")));
        }
        tracing::info!(okta_user_id = %user.id, "an Okta user efs-iam created earlier (its answer was lost) is recorded as managed");
        self.record_created(user, login).await
    }

    /// Marks that efs-iam is about to create a user with `login`.
    pub async fn before_create(&self, login: &str) -> Result<(), SyncError> {
        self.store.mark_creation(login, now()).await?;
        Ok(())
    }

    /// Records a user efs-iam created as managed.
    pub async fn record_created(&self, user: &OktaUser, login: &str) -> Result<(), SyncError> {
        let id = stored_id(&user.id)?;
        self.store
            .manage_okta_user(&id, ManagedOrigin::Created, CREATED_BY, Some(login), now())
            .await?;
        self.store.clear_creation(login).await?;
        Ok(())
    }

    /// What adopting the Okta user `id` would do. Asks Okta for the user and its admin
    /// roles unless efs-iam manages it already.
    pub async fn adoption_verdict(&self, id: &OktaUserId) -> Result<Verdict, SyncError> {
        if let Some(managed) = self.store.managed_okta_user(id).await? {
            return Ok(Verdict::AlreadyManaged(managed));
        }
        let user = match self.okta.get_user(id.as_str()).await {
            Ok(Some(user)) => user,
            Ok(None) => {
                return Ok(Verdict::Refused(SyncError::OktaUserNotFound {
                    okta_user_id: id.as_str().to_owned(),
                }))
            }
            Err(e) => return Err(SyncError::from_okta(e)),
        };
        if user.status == OktaUserStatus::Deprovisioned {
            return Ok(Verdict::Refused(SyncError::Deprovisioned {
                okta_user_id: user.id,
            }));
        }
        match self.check_no_admin_role(&user.id).await {
            Ok(()) => Ok(Verdict::Adoptable {
                login: user.profile.login,
            }),
            Err(refused @ SyncError::Privileged { .. }) => Ok(Verdict::Refused(refused)),
            Err(e) => Err(e),
        }
    }

    /// Brings an adoptable user under management on `by`'s word (an `iam:admin`
    /// caller's `sub`, or a bulk run's requester), with an audit line; `false` when
    /// another adoption recorded it first.
    pub async fn record_adopted(
        &self,
        id: &OktaUserId,
        by: &str,
        login: &str,
    ) -> Result<bool, SyncError> {
        let adopted = self
            .store
            .manage_okta_user(id, ManagedOrigin::Adopted, by, Some(login), now())
            .await?;
        if adopted {
            tracing::info!(
                target: "audit",
                sub = %by,
                okta_user_id = %id,
                login,
                "Okta user adopted: efs-iam manages it from now on"
            );
        }
        Ok(adopted)
    }

    /// Adopts one Okta user on `by`'s word: refused unless Okta has it, it is not
    /// deactivated and it holds no admin role. The record, and whether this call made
    /// it (`false`: managed already).
    pub async fn adopt(
        &self,
        id: &OktaUserId,
        by: &str,
    ) -> Result<(ManagedOktaUser, bool), SyncError> {
        let adopted = match self.adoption_verdict(id).await? {
            Verdict::AlreadyManaged(record) => return Ok((record, false)),
            Verdict::Refused(why) => return Err(why),
            Verdict::Adoptable { login } => self.record_adopted(id, by, &login).await?,
        };
        match self.store.managed_okta_user(id).await? {
            Some(record) => Ok((record, adopted)),
            None => Err(SyncError::Storage(StorageError::Database(
                sqlx::Error::RowNotFound,
            ))),
        }
    }
}

/// What adopting an Okta user would do.
#[derive(Debug)]
pub enum Verdict {
    AlreadyManaged(ManagedOktaUser),
    /// Okta has it, active or not yet active, with no admin role.
    Adoptable {
        login: String,
    },
    /// Not adoptable, and why: no such user, deactivated, or admin roles.
    Refused(SyncError),
}

fn not_managed(user: &OktaUser, field: Option<&'static str>) -> SyncError {
    SyncError::NotManaged {
        okta_user_id: user.id.clone(),
        login: Some(user.profile.login.clone()),
        field,
    }
}

fn stored_id(id: &str) -> Result<OktaUserId, SyncError> {
    OktaUserId::parse(id).map_err(|e| {
        SyncError::OktaRefused(OktaError::InvalidInput(format!(
            "Okta user id {id:?} cannot be stored in the 20-character reference column: {e}"
        )))
    })
}
