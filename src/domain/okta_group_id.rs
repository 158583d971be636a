use std::fmt;

use super::Invalid;

/// An Okta group id as a portal's `okta_group_id` setting holds it: the one rule for
/// its shape (Okta's ids are short ASCII such as `00g1emaKYZTWRYYRRTSK`; 64 characters
/// leave room), checked where the setting is written and wherever it is read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OktaGroupId(String);

impl OktaGroupId {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if raw.is_empty() || raw.len() > 64 || !raw.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Invalid::new(
                "must be an Okta group id such as 00g1emaKYZTWRYYRRTSK",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OktaGroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_short_ascii_ids() {
        assert!(OktaGroupId::parse("00g1emaKYZTWRYYRRTSK").is_ok());
        assert!(OktaGroupId::parse("").is_err());
        assert!(OktaGroupId::parse(" 00g1").is_err());
        assert!(OktaGroupId::parse("00g/../users").is_err());
        assert!(OktaGroupId::parse(&"a".repeat(65)).is_err());
    }
}
