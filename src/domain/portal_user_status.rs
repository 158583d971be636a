use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Sync state of a portal user's Okta account, stored as the `status TINYINT(4)` of
/// `iam_portal_user_reference`. The numbers are efs-iam's definition (the legacy PHP
/// did not document any); a row holding another number is served with `status: null`
/// and its raw `status_code`, so nothing legacy is hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PortalUserStatus {
    /// 0: known to EFS, not yet in step with Okta.
    Pending,
    /// 1: the Okta user exists and is a member of the portal's group.
    Synced,
    /// 2: the last sync failed; the error log has the details.
    Failed,
    /// 3: removed from the portal's group or deactivated in Okta.
    Deprovisioned,
}

impl PortalUserStatus {
    pub const ALL: [PortalUserStatus; 4] = [
        Self::Pending,
        Self::Synced,
        Self::Failed,
        Self::Deprovisioned,
    ];

    pub fn code(self) -> i8 {
        match self {
            Self::Pending => 0,
            Self::Synced => 1,
            Self::Failed => 2,
            Self::Deprovisioned => 3,
        }
    }

    pub fn from_code(code: i8) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.code() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_codes_are_none() {
        for s in PortalUserStatus::ALL {
            assert_eq!(PortalUserStatus::from_code(s.code()), Some(s));
        }
        assert_eq!(PortalUserStatus::from_code(7), None);
    }
}
