use super::Invalid;

/// Width of the legacy `uuid BINARY(20)` columns that hold Okta user ids.
pub const STORED_WIDTH: usize = 20;

/// An Okta user id such as `00ub0oNGTSWTBKOLGLNR`. Okta calls ids opaque; real ones are
/// 20 ASCII letters and digits, which is exactly what the legacy `BINARY(20)` column
/// holds. Longer ids are refused rather than cut, and shorter legacy values (which
/// MySQL zero-pads on the way in) are read back without their padding.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OktaUserId(String);

impl OktaUserId {
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if raw.is_empty() || raw.len() > STORED_WIDTH {
            return Err(Invalid::new(format!(
                "must be 1 to {STORED_WIDTH} characters (an Okta user id such as 00ub0oNGTSWTBKOLGLNR)"
            )));
        }
        if !raw.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(Invalid::new("may contain only ASCII letters and digits"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The value as the `BINARY(20)` column stores it: right-padded with NUL bytes.
    pub fn to_stored(&self) -> Vec<u8> {
        let mut v = self.0.as_bytes().to_vec();
        v.resize(STORED_WIDTH, 0);
        v
    }

    /// Reads a stored column value. Legacy rows may hold anything, so this never fails:
    /// trailing NUL padding is dropped and non-UTF-8 bytes are replaced, which keeps the
    /// row visible through the API instead of turning it into a 500.
    pub fn from_stored(bytes: &[u8]) -> String {
        let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
        String::from_utf8_lossy(&bytes[..end]).into_owned()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for OktaUserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_the_padded_column() {
        let id = OktaUserId::parse("00u1short").unwrap();
        let stored = id.to_stored();
        assert_eq!(stored.len(), 20);
        assert_eq!(&stored[9..], &[0u8; 11]);
        assert_eq!(OktaUserId::from_stored(&stored), "00u1short");
        assert_eq!(
            OktaUserId::from_stored(b"00ub0oNGTSWTBKOLGLNR"),
            "00ub0oNGTSWTBKOLGLNR"
        );
    }

    #[test]
    fn refuses_what_the_column_cannot_hold() {
        assert!(OktaUserId::parse("00ub0oNGTSWTBKOLGLNRX").is_err());
        assert!(OktaUserId::parse("").is_err());
        assert!(OktaUserId::parse("00u-0oNG").is_err());
        assert!(OktaUserId::parse("00ub0oNGTSWTBKOLGLNR").is_ok());
    }
}
