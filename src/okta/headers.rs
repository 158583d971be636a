//! What the headers of Okta's answers say, read defensively: the rate-limit figures,
//! the server's `Date`, the `rel="next"` link of a listing page, and the error a
//! `WWW-Authenticate` challenge names. Nothing here trusts
//! a value to be sane: a header that does not parse is absent.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::DateTime;
use reqwest::header::{HeaderMap, LINK, WWW_AUTHENTICATE};

/// The rate-limit headers of one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateHeaders {
    pub limit: u32,
    pub remaining: u32,
    /// UTC epoch seconds.
    pub reset: u64,
}

impl RateHeaders {
    /// Reads the three headers; a header repeated (or a comma list) counts by its
    /// smallest value, as okta-sdk-python does. What the values mean is the governor's
    /// to judge (it believes no `Reset` beyond its horizon).
    pub(crate) fn parse(headers: &HeaderMap) -> Option<Self> {
        Some(Self {
            limit: min_value(headers, "x-rate-limit-limit")?,
            remaining: min_value(headers, "x-rate-limit-remaining")?,
            reset: min_value(headers, "x-rate-limit-reset")?,
        })
    }

    /// Okta's concurrency 429 carries `Limit: 0` and `Remaining: 0`.
    pub(crate) fn is_concurrency(&self) -> bool {
        self.limit == 0 && self.remaining == 0
    }

    /// Time until the reset, by the server's clock (`Date`) when the answer had one.
    pub(crate) fn until_reset(&self, server_date: Option<u64>) -> Duration {
        let now = server_date.unwrap_or_else(|| epoch_secs(SystemTime::now()));
        Duration::from_secs(self.reset.saturating_sub(now))
    }
}

fn min_value<T: std::str::FromStr + Ord>(headers: &HeaderMap, name: &str) -> Option<T> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|v| v.trim().parse::<T>().ok())
        .min()
}

/// The answer's `Date` header as epoch seconds.
pub(crate) fn server_date(headers: &HeaderMap) -> Option<u64> {
    let raw = headers.get(reqwest::header::DATE)?.to_str().ok()?;
    let parsed = DateTime::parse_from_rfc2822(raw).ok()?;
    u64::try_from(parsed.timestamp()).ok()
}

fn epoch_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

/// The `rel="next"` target among all `Link` header lines (Okta sends `self` and `next`
/// as separate lines; a single line with both is handled too).
pub(crate) fn next_link(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(parse_link_header)
        .find(|(_, rels)| rels.iter().any(|r| r.eq_ignore_ascii_case("next")))
        .map(|(url, _)| url)
}

/// `<url>; rel="a b", <url2>; rel=c` → `[(url, [a, b]), (url2, [c])]`. Commas inside
/// `<…>` or quotes do not split links.
fn parse_link_header(value: &str) -> Vec<(String, Vec<String>)> {
    let mut links = Vec::new();
    let mut rest = value;
    loop {
        rest = rest.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        let Some(after_open) = rest.strip_prefix('<') else {
            break;
        };
        let Some(close) = after_open.find('>') else {
            break;
        };
        let url = after_open[..close].trim().to_owned();
        rest = &after_open[close + 1..];
        // Parameters run to the next comma outside quotes.
        let mut in_quotes = false;
        let end = rest
            .char_indices()
            .find(|(_, c)| {
                if *c == '"' {
                    in_quotes = !in_quotes;
                }
                *c == ',' && !in_quotes
            })
            .map_or(rest.len(), |(i, _)| i);
        let params = &rest[..end];
        rest = &rest[end..];
        let mut rels = Vec::new();
        for param in params.split(';') {
            if let Some((name, val)) = param.split_once('=') {
                if name.trim().eq_ignore_ascii_case("rel") {
                    rels.extend(
                        val.trim()
                            .trim_matches('"')
                            .split_whitespace()
                            .map(str::to_owned),
                    );
                }
            }
        }
        links.push((url, rels));
    }
    links
}

/// The `error` and `error_description` of a `WWW-Authenticate` challenge (`Bearer` or
/// `DPoP`): what Okta says about a refused token or DPoP proof, whose body is empty
/// (`invalid_dpop_proof`, `invalid_token`, `insufficient_scope`).
pub(crate) fn challenge_error(headers: &HeaderMap) -> Option<(String, Option<String>)> {
    let value = headers.get(WWW_AUTHENTICATE)?.to_str().ok()?;
    let param = |name: &str| -> Option<String> {
        let mut rest = value;
        while let Some(at) = rest.find(name) {
            let before = rest[..at].chars().last();
            let after = &rest[at + name.len()..];
            rest = after;
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let Some(v) = after.trim_start().strip_prefix('=') else {
                continue;
            };
            let v = v.trim_start();
            let text = match v.strip_prefix('"') {
                Some(q) => q.split('"').next().unwrap_or_default(),
                None => v.split([',', ' ']).next().unwrap_or_default(),
            };
            return Some(text.chars().take(300).collect());
        }
        None
    };
    let error = param("error").filter(|e| !e.is_empty())?;
    Some((error, param("error_description")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn rate_headers_take_the_smallest_repeated_value() {
        let h = headers(&[
            ("x-rate-limit-limit", "600"),
            ("x-rate-limit-remaining", "12"),
            ("x-rate-limit-reset", "1700000060, 1700000050"),
            ("x-rate-limit-reset", "1700000070"),
        ]);
        let r = RateHeaders::parse(&h).unwrap();
        assert_eq!(r.reset, 1_700_000_050);
        assert_eq!(r.until_reset(Some(1_700_000_020)), Duration::from_secs(30));
        assert_eq!(r.until_reset(Some(1_700_000_090)), Duration::ZERO);
        assert!(RateHeaders::parse(&headers(&[("x-rate-limit-limit", "1")])).is_none());
    }

    #[test]
    fn server_date_is_read_as_http_date() {
        let h = headers(&[("date", "Tue, 14 Nov 2023 22:13:20 GMT")]);
        assert_eq!(server_date(&h), Some(1_700_000_000));
    }

    #[test]
    fn next_link_is_found_among_several_link_lines() {
        let mut h = HeaderMap::new();
        h.append(
            LINK,
            HeaderValue::from_static(
                "<https://o.example/api/v1/groups/00g1/users?limit=2>; rel=\"self\"",
            ),
        );
        h.append(
            LINK,
            HeaderValue::from_static(
                "<https://o.example/api/v1/groups/00g1/users?after=MjAwdW53bDA%3D&limit=2>; rel=\"next\"",
            ),
        );
        assert_eq!(
            next_link(&h).as_deref(),
            Some("https://o.example/api/v1/groups/00g1/users?after=MjAwdW53bDA%3D&limit=2")
        );
    }

    #[test]
    fn link_lists_on_one_line_and_odd_spacing() {
        let links = parse_link_header(
            "<https://x/a?q=1,2>; rel=\"self\", <https://x/b>;rel=next ,<https://x/c>; title=\"a, b\"; rel=\"prev last\"",
        );
        assert_eq!(links.len(), 3);
        assert_eq!(links[0].0, "https://x/a?q=1,2");
        assert_eq!(
            links[1],
            ("https://x/b".to_owned(), vec!["next".to_owned()])
        );
        assert_eq!(links[2].1, vec!["prev".to_owned(), "last".to_owned()]);
        let mut h = HeaderMap::new();
        h.append(
            LINK,
            HeaderValue::from_static("<https://x/a>; rel=\"self\""),
        );
        assert_eq!(next_link(&h), None);
    }

    #[test]
    fn a_challenge_names_its_error() {
        let mut h = HeaderMap::new();
        assert_eq!(challenge_error(&h), None);
        h.insert(
            WWW_AUTHENTICATE,
            r#"DPoP algs="RS256 ES256", realm="http://acme", error="invalid_dpop_proof", error_description="'htu' claim in the DPoP proof JWT is invalid.", resource="/api/v1/users""#
                .parse()
                .unwrap(),
        );
        assert_eq!(
            challenge_error(&h),
            Some((
                "invalid_dpop_proof".into(),
                Some("'htu' claim in the DPoP proof JWT is invalid.".into())
            ))
        );
        h.insert(
            WWW_AUTHENTICATE,
            "Bearer error=invalid_token".parse().unwrap(),
        );
        assert_eq!(challenge_error(&h), Some(("invalid_token".into(), None)));
        h.insert(WWW_AUTHENTICATE, r#"Bearer realm="x""#.parse().unwrap());
        assert_eq!(challenge_error(&h), None);
    }
}

/// Whatever Okta (or a proxy in between) sends in these headers, reading them neither
/// panics nor yields more than the header said.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;
    use reqwest::header::HeaderValue;

    /// Header values: visible ASCII and spaces, leaning towards the characters the
    /// parsers split on.
    fn header_text() -> impl Strategy<Value = String> {
        proptest::string::string_regex(r#"[ -~]{0,200}|[0-9, <>;="a-z-]{0,80}"#).unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            if let Ok(v) = HeaderValue::from_str(value) {
                map.append(*name, v);
            }
        }
        map
    }

    proptest! {
        #[test]
        fn rate_headers_parse_or_are_absent(limit in header_text(), remaining in header_text(),
                                            reset in header_text(), date in header_text(),
                                            now in any::<u64>()) {
            let map = headers(&[
                ("x-rate-limit-limit", &limit),
                ("x-rate-limit-remaining", &remaining),
                ("x-rate-limit-reset", &reset),
                ("date", &date),
            ]);
            if let Some(rate) = RateHeaders::parse(&map) {
                prop_assert!(reset.contains(&rate.reset.to_string()));
                let _ = rate.until_reset(server_date(&map));
                let _ = rate.until_reset(Some(now));
            }
        }

        #[test]
        fn any_reset_and_date_give_a_duration(reset in any::<u64>(), date in proptest::option::of(any::<u64>())) {
            let rate = RateHeaders { limit: 1, remaining: 0, reset };
            let wait = rate.until_reset(date);
            prop_assert!(wait.as_secs() <= reset);
        }

        #[test]
        fn a_next_link_comes_from_the_header(lines in proptest::collection::vec(header_text(), 0..4)) {
            let pairs: Vec<(&'static str, &str)> = lines.iter().map(|l| ("link", l.as_str())).collect();
            if let Some(next) = next_link(&headers(&pairs)) {
                prop_assert!(lines.iter().any(|l| l.contains(&next)));
            }
        }

        #[test]
        fn a_challenge_error_comes_from_the_header(value in header_text()) {
            if let Some((error, description)) = challenge_error(&headers(&[("www-authenticate", &value)])) {
                prop_assert!(value.contains(&error));
                if let Some(d) = description {
                    prop_assert!(d.len() <= value.len());
                }
            }
        }
    }
}
