//! Rows as the service sees them. Nullable legacy columns stay `Option` so that a
//! legacy row is served as it is rather than refused.

use chrono::NaiveDateTime;
use sqlx::FromRow;

use crate::domain::{EfsUserId, OktaUserId, PortalUserStatus};

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct PortalSetting {
    pub id: i32,
    pub key: Option<String>,
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminUserReference {
    pub id: i32,
    pub user_id: Option<i32>,
    pub okta_user_id: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(FromRow)]
pub(crate) struct AdminUserReferenceRow {
    id: i32,
    user_id: Option<i32>,
    uuid: Option<Vec<u8>>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
}

impl From<AdminUserReferenceRow> for AdminUserReference {
    fn from(r: AdminUserReferenceRow) -> Self {
        Self {
            id: r.id,
            user_id: r.user_id,
            okta_user_id: r.uuid.as_deref().map(OktaUserId::from_stored),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalUserReference {
    pub id: i32,
    pub portal_id: Option<i32>,
    pub user_id: Option<i32>,
    pub okta_user_id: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// The raw `status` column; see [`PortalUserStatus`] for its meaning.
    pub status_code: Option<i8>,
    pub has_data_changes: Option<bool>,
}

impl PortalUserReference {
    pub fn status(&self) -> Option<PortalUserStatus> {
        self.status_code.and_then(PortalUserStatus::from_code)
    }
}

#[derive(FromRow)]
pub(crate) struct PortalUserReferenceRow {
    id: i32,
    portal_id: Option<i32>,
    user_id: Option<i32>,
    uuid: Option<Vec<u8>>,
    created_at: NaiveDateTime,
    updated_at: NaiveDateTime,
    status: Option<i8>,
    has_data_changes: Option<i8>,
}

impl From<PortalUserReferenceRow> for PortalUserReference {
    fn from(r: PortalUserReferenceRow) -> Self {
        Self {
            id: r.id,
            portal_id: r.portal_id,
            user_id: r.user_id,
            okta_user_id: r.uuid.as_deref().map(OktaUserId::from_stored),
            created_at: r.created_at,
            updated_at: r.updated_at,
            status_code: r.status,
            has_data_changes: r.has_data_changes.map(|v| v != 0),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PortalUserReferenceUpsert {
    pub okta_user_id: OktaUserId,
    pub status: PortalUserStatus,
    pub has_data_changes: bool,
}

#[derive(Debug, Clone, Default)]
pub struct PortalUserReferencePatch {
    pub okta_user_id: Option<OktaUserId>,
    pub status: Option<PortalUserStatus>,
    pub has_data_changes: Option<bool>,
}

impl PortalUserReferencePatch {
    pub fn is_empty(&self) -> bool {
        self.okta_user_id.is_none() && self.status.is_none() && self.has_data_changes.is_none()
    }
}

#[derive(Debug, Clone, Default)]
pub struct PortalUserReferenceQuery {
    pub status: Option<PortalUserStatus>,
    /// Legacy `NULL` counts as `false`.
    pub has_data_changes: Option<bool>,
    /// Keyset position: only rows with a larger `id`.
    pub after_id: Option<i32>,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ErrorLogEntry {
    pub id: i32,
    pub created_at: NaiveDateTime,
    pub message: Option<String>,
    pub status_code: i16,
    pub trace: Option<String>,
    pub error_code: String,
}

#[derive(Debug, Clone, Default)]
pub struct NewErrorLogEntry {
    pub message: Option<String>,
    pub status_code: i16,
    pub trace: Option<String>,
    pub error_code: String,
}

#[derive(Debug, Clone, Default)]
pub struct ErrorLogQuery {
    /// Inclusive.
    pub since: Option<NaiveDateTime>,
    /// Exclusive.
    pub until: Option<NaiveDateTime>,
    pub status_code: Option<i16>,
    pub error_code: Option<String>,
    /// Substring of `message`.
    pub text: Option<String>,
    /// Keyset position `(created_at, id)`: only older entries.
    pub before: Option<(NaiveDateTime, i32)>,
    pub limit: u32,
}

#[derive(Debug, Clone)]
pub struct NewUnassignment {
    pub user_id: EfsUserId,
    pub okta_user_id: OktaUserId,
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unassignment {
    pub id: i32,
    pub portal_id: Option<i32>,
    pub user_id: Option<i32>,
    pub okta_user_id: Option<String>,
    pub email: Option<String>,
    pub created_at: NaiveDateTime,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<NaiveDateTime>,
    /// Set once retries are exhausted: a dead letter, kept until re-queued.
    pub dead_at: Option<NaiveDateTime>,
}

#[derive(FromRow)]
pub(crate) struct UnassignmentRow {
    id: i32,
    portal_id: Option<i32>,
    user_id: Option<i32>,
    uuid: Option<Vec<u8>>,
    email: Option<String>,
    created_at: NaiveDateTime,
    attempts: i32,
    last_error: Option<String>,
    next_attempt_at: Option<NaiveDateTime>,
    dead_at: Option<NaiveDateTime>,
}

impl From<UnassignmentRow> for Unassignment {
    fn from(r: UnassignmentRow) -> Self {
        Self {
            id: r.id,
            portal_id: r.portal_id,
            user_id: r.user_id,
            okta_user_id: r.uuid.as_deref().map(OktaUserId::from_stored),
            email: r.email,
            created_at: r.created_at,
            attempts: r.attempts,
            last_error: r.last_error,
            next_attempt_at: r.next_attempt_at,
            dead_at: r.dead_at,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnassignmentState {
    Pending,
    Dead,
}

#[derive(Debug, Clone)]
pub struct UnassignmentQuery {
    pub state: Option<UnassignmentState>,
    pub after_id: Option<i32>,
    pub limit: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnassignmentCounts {
    pub pending: i64,
    pub dead: i64,
}

/// One session's token record as a backend returns it.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredToken {
    /// The sealed value, or a legacy plaintext response (`None` for a NULL column).
    pub idp_response: Option<String>,
    /// `None` on legacy rows and on memcached (the sealed value carries it there).
    pub stored_at: Option<NaiveDateTime>,
    pub expires_at: Option<NaiveDateTime>,
    /// Found under the legacy raw session id rather than the keyed hash.
    pub legacy_key: bool,
}

/// May hold a legacy plaintext response: never printed.
impl std::fmt::Debug for StoredToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredToken")
            .field("stored_at", &self.stored_at)
            .field("expires_at", &self.expires_at)
            .field("legacy_key", &self.legacy_key)
            .finish_non_exhaustive()
    }
}

/// One `iam_token_data` row, for `tokens re-encrypt`.
#[derive(Clone, FromRow)]
pub struct TokenRow {
    pub id: i64,
    pub session_id: Vec<u8>,
    pub idp_response: Option<String>,
    pub stored_at: Option<NaiveDateTime>,
    pub expires_at: Option<NaiveDateTime>,
}

/// Rows carry raw legacy session ids and plaintext responses: never printed.
impl std::fmt::Debug for TokenRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRow")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}
