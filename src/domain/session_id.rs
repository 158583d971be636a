use super::Invalid;

/// Width of `iam_token_data.session_id VARBINARY(50)`.
pub const MAX_LEN: usize = 50;

/// A login session id as EFS hands it over (PHP session ids are letters, digits, `,`
/// and `-`). It travels in a URL path, so only visible ASCII is accepted.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SessionId(String);

impl SessionId {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if raw.is_empty() || raw.len() > MAX_LEN {
            return Err(Invalid::new(format!("must be 1 to {MAX_LEN} bytes")));
        }
        if !raw.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Invalid::new("may contain only visible ASCII characters"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

/// Session ids grant access to a login: never print them.
impl std::fmt::Debug for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionId(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_redaction() {
        assert!(SessionId::parse(&"a".repeat(50)).is_ok());
        assert!(SessionId::parse(&"a".repeat(51)).is_err());
        assert!(SessionId::parse("").is_err());
        assert!(SessionId::parse("a b").is_err());
        let s = SessionId::parse("secret-session").unwrap();
        assert!(!format!("{s:?}").contains("secret"));
    }
}
