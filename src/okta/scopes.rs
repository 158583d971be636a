//! The OAuth scopes efs-iam's features need from a service app, and what Okta granted:
//! a missing grant shows at start-up, in `/sync/status`, in the metric
//! `efs_iam_okta_scopes_missing` and its alert, not first as a failed sync.
//!
//! Okta answers a token request for a scope the app was not granted with 400
//! `invalid_scope` (an authentication failure, shown as such); a scope efs-iam was not
//! configured to ask for (`EFS_IAM_OKTA_SCOPES`) is simply absent from the token's
//! `scope`. Both end here as "missing".

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Each scope efs-iam's features need, and what for. System Log access
/// (`okta.logs.read`) is not among them: Okta's changes arrive by event hook.
pub const NEEDED: [(&str, &str); 3] = [
    (
        "okta.users.manage",
        "creating, updating and deactivating users",
    ),
    (
        "okta.groups.manage",
        "portal group memberships and reconciliation",
    ),
    (
        "okta.roles.read",
        "the managed-user boundary: Okta admins are never changed",
    ),
];

/// A needed scope Okta did not grant (or efs-iam was not configured to ask for).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MissingScope {
    pub scope: String,
    /// The feature that fails without it.
    pub needed_for: String,
}

/// The scopes asked for, granted (from the last token Okta issued; `None` before the
/// first), and the needed ones missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ScopeCheck {
    pub requested: Vec<String>,
    pub granted: Option<Vec<String>>,
    pub missing: Vec<MissingScope>,
}

impl ScopeCheck {
    /// Before a token: what was not even asked for. After: what was not granted.
    pub(crate) fn new(requested: &[String], granted: Option<&[String]>) -> Self {
        let have = granted.unwrap_or(requested);
        let missing = NEEDED
            .iter()
            .filter(|(scope, _)| !covers(have, scope))
            .map(|(scope, why)| MissingScope {
                scope: (*scope).to_owned(),
                needed_for: (*why).to_owned(),
            })
            .collect();
        Self {
            requested: requested.to_vec(),
            granted: granted.map(<[String]>::to_vec),
            missing,
        }
    }

    /// Sets `efs_iam_okta_scopes_missing` and logs what is missing.
    pub(crate) fn publish(&self) {
        metrics::gauge!("efs_iam_okta_scopes_missing").set(self.missing.len() as f64);
        if !self.missing.is_empty() {
            let names: Vec<&str> = self.missing.iter().map(|m| m.scope.as_str()).collect();
            tracing::warn!(
                missing = %names.join(" "),
                requested = %self.requested.join(" "),
                granted = %self.granted.as_deref().map(|g| g.join(" ")).unwrap_or_else(|| "(no token yet)".into()),
                "the Okta service app lacks scopes efs-iam needs; grant them in Okta (Okta API Scopes tab) and list them in EFS_IAM_OKTA_SCOPES"
            );
        }
    }
}

/// Whether `have` covers `needed`: the scope itself, or its `.manage` for a `.read`.
fn covers(have: &[String], needed: &str) -> bool {
    let manage = needed.strip_suffix(".read").map(|s| format!("{s}.manage"));
    have.iter()
        .any(|h| h == needed || manage.as_deref() == Some(h.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn what_is_not_granted_is_missing_and_manage_covers_read() {
        let requested = strings("okta.users.manage okta.groups.manage okta.roles.read");
        assert!(ScopeCheck::new(&requested, None).missing.is_empty());
        let granted = strings("okta.users.manage okta.groups.manage");
        let check = ScopeCheck::new(&requested, Some(&granted));
        assert_eq!(check.missing.len(), 1);
        assert_eq!(check.missing[0].scope, "okta.roles.read");
        let manage = strings("okta.users.manage okta.groups.manage okta.roles.manage");
        assert!(ScopeCheck::new(&requested, Some(&manage))
            .missing
            .is_empty());
        let reads = strings("okta.users.read okta.groups.manage okta.roles.read");
        let check = ScopeCheck::new(&reads, None);
        assert_eq!(
            check.missing[0].scope, "okta.users.manage",
            "read does not cover manage"
        );
    }
}
