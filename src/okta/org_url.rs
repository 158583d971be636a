//! The one rule for an Okta org's base URL, shared by the settings (which parse it) and
//! the client (which is also built from code).

use reqwest::Url;

/// Checks an org URL: http(s), a host, no path, query, fragment or credentials.
pub(crate) fn validate_org_url(url: &Url) -> Result<Url, String> {
    match url.scheme() {
        "https" => {}
        "http" => {
            let host = url.host_str().unwrap_or_default();
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let loopback = host.eq_ignore_ascii_case("localhost")
                || host
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if !loopback {
                return Err("must be https:// (plain http is only accepted for localhost)".into());
            }
        }
        _ => return Err("must be an https:// URL such as https://example.okta.com".into()),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not contain credentials".into());
    }
    if url.path() != "/" && !url.path().is_empty() {
        return Err("must be the org's base URL, without a path".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or fragment".into());
    }
    let mut clean = url.clone();
    clean.set_path("/");
    Ok(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_urls_must_be_bare_https_or_loopback_http() {
        let ok = |s: &str| validate_org_url(&Url::parse(s).unwrap());
        assert_eq!(
            ok("https://acme.okta.com").unwrap().as_str(),
            "https://acme.okta.com/"
        );
        assert!(ok("https://acme.okta.com/").is_ok());
        assert!(ok("http://127.0.0.1:4010").is_ok());
        assert!(ok("http://localhost:4010").is_ok());
        assert!(ok("http://acme.okta.com").is_err());
        assert!(ok("https://acme.okta.com/oauth2/default").is_err());
        assert!(ok("https://u:p@acme.okta.com").is_err());
        assert!(ok("https://acme.okta.com/?x=1").is_err());
        assert!(ok("ftp://acme.okta.com").is_err());
    }
}
