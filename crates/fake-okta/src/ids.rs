//! Okta-shaped identifiers and timestamps.

use chrono::{DateTime, SubsecRound, Utc};

const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// `n` random alphanumerics. Uses uuid's v4 generator (OS randomness) so no extra crate
/// is needed; the modulo bias is irrelevant for test ids.
pub(crate) fn random_alnum(n: usize) -> String {
    let mut out = String::with_capacity(n);
    while out.len() < n {
        for b in uuid::Uuid::new_v4().as_bytes() {
            if out.len() == n {
                break;
            }
            out.push(ALPHABET[(*b as usize) % ALPHABET.len()] as char);
        }
    }
    out
}

/// Okta ids are 20 characters: a 3-character type prefix and 17 alphanumerics.
fn okta_id(prefix: &str) -> String {
    format!("{prefix}{}", random_alnum(20 - prefix.len()))
}

pub(crate) fn user_id() -> String {
    okta_id("00u")
}

pub(crate) fn group_id() -> String {
    okta_id("00g")
}

pub(crate) fn user_type_id() -> String {
    okta_id("oty")
}

pub(crate) fn idp_id() -> String {
    okta_id("00o")
}

/// 27 characters, like `XyA1THFnmflJ3upXTv5zJwAABBA` in recorded Okta traffic.
pub(crate) fn request_id() -> String {
    random_alnum(27)
}

/// Like `oaeXxuZgXBySvqi1FvtkwoYCA`.
pub(crate) fn error_id() -> String {
    format!("oae{}", random_alnum(22))
}

/// Okta's timestamps have millisecond precision; truncating here keeps stored values
/// equal to what was rendered.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(3)
}

/// `2013-07-02T21:36:25.344Z`.
pub(crate) fn timestamp(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// The HTTP `Date` header format (IMF-fixdate).
pub(crate) fn http_date(t: std::time::SystemTime) -> String {
    let t: DateTime<Utc> = t.into();
    t.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_okta_shape() {
        let id = user_id();
        assert_eq!(id.len(), 20);
        assert!(id.starts_with("00u"));
        assert!(id.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_eq!(group_id().len(), 20);
        assert!(error_id().starts_with("oae"));
    }

    #[test]
    fn timestamps_have_milliseconds() {
        let t = DateTime::parse_from_rfc3339("2013-07-02T21:36:25.344123Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(timestamp(&t), "2013-07-02T21:36:25.344Z");
    }
}
