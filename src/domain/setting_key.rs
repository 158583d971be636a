use super::Invalid;

/// Width of `iam_portal_settings.key VARCHAR(50)`.
pub const MAX_LEN: usize = 50;

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
    }
}
