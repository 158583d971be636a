use super::Invalid;

/// Width of `iam_portal_settings.key VARCHAR(50)`.
pub const MAX_LEN: usize = 50;

/// The portal setting naming the Okta issuer whose id_tokens efs-iam verifies.
pub const OKTA_ISSUER: &str = "okta_issuer";
/// The portal setting naming the `aud` those id_tokens must carry.
pub const OKTA_CLIENT_ID: &str = "okta_client_id";
/// The portal setting naming the portal's Okta group (memberships, unassignments).
pub const OKTA_GROUP_ID: &str = "okta_group_id";

/// The portal setting that lets the scheduled reconciliation repair (`repair`) rather
/// than only report drift (`report`, the default).
pub const RECONCILE_MODE: &str = "reconcile_mode";

/// The settings that steer trust: whose logins are accepted for a portal, which Okta
/// group its panelists are put in and taken out of, and whether efs-iam may change that
/// group's members on its own schedule. Writing them needs `iam:admin`.
pub const TRUST_SETTINGS: [&str; 4] = [OKTA_ISSUER, OKTA_CLIENT_ID, OKTA_GROUP_ID, RECONCILE_MODE];

/// A portal setting name such as `okta_client_id`. Restricted to ASCII letters, digits
/// and `_ . : -` so that it is safe in a URL path and compares the same on both
/// backends: the legacy column's `utf8_general_ci` collation makes lookups
/// case-insensitive, and the SQLite schema mirrors that with `COLLATE NOCASE`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SettingKey(String);

impl SettingKey {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if raw.is_empty() || raw.len() > MAX_LEN {
            return Err(Invalid::new(format!("must be 1 to {MAX_LEN} characters")));
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
        {
            return Err(Invalid::new(
                "may contain only ASCII letters, digits and _ . : -",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// This key is one of [`TRUST_SETTINGS`], in any spelling the store treats as the
    /// same (keys compare case-insensitively).
    pub fn is_trust_setting(&self) -> bool {
        TRUST_SETTINGS
            .iter()
            .any(|t| t.eq_ignore_ascii_case(&self.0))
    }

    /// This key names `setting`, in any case.
    pub fn is(&self, setting: &str) -> bool {
        self.0.eq_ignore_ascii_case(setting)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert!(SettingKey::parse("okta_client_id").is_ok());
        assert!(SettingKey::parse(&"k".repeat(50)).is_ok());
        assert!(SettingKey::parse(&"k".repeat(51)).is_err());
        assert!(SettingKey::parse("a/b").is_err());
        assert!(SettingKey::parse("").is_err());
        assert!(SettingKey::parse("OKTA_Group_Id")
            .unwrap()
            .is_trust_setting());
        assert!(!SettingKey::parse("okta_group_id2")
            .unwrap()
            .is_trust_setting());
    }
}
