//! Okta's cursor pagination: the `rel="next"` link of a page's `Link` headers, and
//! the rule for following it.

use std::collections::HashSet;

use reqwest::header::{HeaderMap, LINK};
use reqwest::Url;

use super::call::{Call, Exchange, Inner};
use super::error::OktaError;

impl Inner {
    /// The `rel="next"` link of a page, which must point at the org itself (following a
    /// link elsewhere would send the org's credentials to another host) and at a page
    /// not fetched yet (a loop would never end).
    pub(super) async fn next_page(
        &self,
        call: &Call,
        ex: &Exchange,
        seen: &HashSet<Url>,
    ) -> Result<Option<Url>, OktaError> {
        let Some(next) = next_link(&ex.headers) else {
            return Ok(None);
        };
        let url = match self.org.join(&next) {
            Ok(u) if u.origin() == self.org.origin() && !seen.contains(&u) => u,
            _ => {
                let err = OktaError::InvalidResponse {
                    method: call.method.to_string(),
                    route: call.route.template,
                    status: ex.status,
                    request_id: ex.request_id.clone(),
                    reason:
                        "the next-page link points outside the Okta org or back at the same page"
                            .into(),
                };
                return Err(self.fail(call, err, Some(ex)).await);
            }
        };
        Ok(Some(url))
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

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
}
