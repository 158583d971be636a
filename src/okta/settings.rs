//! The Okta adapter's settings (`EFS_IAM_OKTA_*`), flattened into
//! the service's settings (`config.rs`).
//!
//! Everything is optional so that efs-iam runs (serving its tables to EFS) before an
//! Okta org is connected; without `EFS_IAM_OKTA_ORG_URL` the adapter is simply absent
//! and Okta operations report [`super::OktaError::NotConfigured`]. But a half-done
//! configuration (a token without an org, an org without credentials, both kinds of
//! credentials, an unreadable key) stops start-up: a sync that silently runs with the
//! wrong credentials, or not at all, is worse than one that refuses to start.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use reqwest::Url;
use secrecy::SecretString;

use super::{
    DpopKey, DpopMode, OktaAuth, OktaClient, OktaClientConfig, OktaConfigError, PrivateKeyJwt,
};
use crate::domain::parse_duration;
use crate::storage::ErrorLogStore;

#[derive(Debug, Clone, Args)]
pub struct OktaSettings {
    /// Okta org URL, e.g. https://example.okta.com. Unset: efs-iam runs without Okta and
    /// Okta operations report "not configured".
    #[arg(long = "okta-org-url", env = "EFS_IAM_OKTA_ORG_URL", value_parser = parse_org_url, global = true)]
    pub org_url: Option<Url>,

    /// Okta API token, sent as `Authorization: SSWS <token>`. Use this or the OAuth
    /// client (EFS_IAM_OKTA_CLIENT_ID), not both.
    #[arg(long = "okta-api-token", env = "EFS_IAM_OKTA_API_TOKEN", value_parser = parse_secret,
          hide_env_values = true, global = true)]
    pub api_token: Option<SecretString>,

    /// Client id of the Okta API service app, for OAuth 2.0 client credentials with a
    /// private_key_jwt client assertion (needs EFS_IAM_OKTA_PRIVATE_KEY_FILE).
    #[arg(long = "okta-client-id", env = "EFS_IAM_OKTA_CLIENT_ID", global = true)]
    pub client_id: Option<String>,

    /// PEM file with the service app's RSA private key (PKCS#8 or PKCS#1); its public
    /// key must be registered on the app.
    #[arg(
        long = "okta-private-key-file",
        env = "EFS_IAM_OKTA_PRIVATE_KEY_FILE",
        global = true
    )]
    pub private_key_file: Option<PathBuf>,

    /// Key id (`kid`) of that key in the app's JWKS, sent in the client assertion.
    #[arg(long = "okta-key-id", env = "EFS_IAM_OKTA_KEY_ID", global = true)]
    pub key_id: Option<String>,

    /// OAuth scopes to request, separated by spaces (the `.manage` scopes include
    /// reading).
    #[arg(
        long = "okta-scopes",
        env = "EFS_IAM_OKTA_SCOPES",
        default_value = "okta.users.manage okta.groups.manage okta.roles.read",
        global = true
    )]
    pub scopes: String,

    /// DPoP for the service app's tokens: `auto` (when Okta asks for it, as it does for
    /// API Services apps created since 2024), `on` (always), `off` (never).
    #[arg(long = "okta-dpop", env = "EFS_IAM_OKTA_DPOP", value_enum, default_value_t = DpopMode::Auto,
          global = true)]
    pub dpop: DpopMode,

    /// PEM file (PKCS#8) with a P-256 key for DPoP proofs. Unset: a key generated at
    /// start-up, which never leaves the process.
    #[arg(
        long = "okta-dpop-key-file",
        env = "EFS_IAM_OKTA_DPOP_KEY_FILE",
        global = true
    )]
    pub dpop_key_file: Option<PathBuf>,

    /// Readiness (`/health/ready`) fails while Okta does not answer, refuses efs-iam's
    /// credentials or lacks a needed scope. Off: Okta shows as `degraded` and the data
    /// API keeps serving.
    #[arg(long = "okta-required", env = "EFS_IAM_OKTA_REQUIRED", default_value_t = false,
          action = clap::ArgAction::Set, global = true)]
    pub required: bool,

    /// Fraction of each Okta rate-limit bucket that efs-iam (all instances together) may
    /// use per window, more than 0 and at most 1; the rest is left to the org's other
    /// clients.
    #[arg(long = "okta-rate-share", env = "EFS_IAM_OKTA_RATE_SHARE", default_value_t = 0.5,
          value_parser = parse_share, global = true)]
    pub rate_share: f64,

    /// Most Okta requests one instance has in flight at once (Okta's org-wide limit is 75,
    /// 35 on the Integrator Free Plan, shared with every other client).
    #[arg(long = "okta-max-concurrency", env = "EFS_IAM_OKTA_MAX_CONCURRENCY", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=75), global = true)]
    pub max_concurrency: u32,

    /// Longest one Okta request may take before it is abandoned (and retried), e.g. 30s.
    #[arg(long = "okta-timeout", env = "EFS_IAM_OKTA_TIMEOUT", default_value = "30s",
          value_parser = parse_duration, global = true)]
    pub timeout: Duration,

    /// Retries per Okta call after a 429, a 5xx, a timeout or a dropped connection
    /// (other errors are never retried).
    #[arg(long = "okta-max-retries", env = "EFS_IAM_OKTA_MAX_RETRIES", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(0..=10), global = true)]
    pub max_retries: u32,

    /// The secret Okta's event hook sends (its "Authentication secret"), at least 16
    /// characters. Unset: `/hooks/okta/events` answers 404.
    #[arg(long = "okta-event-hook-secret", env = "EFS_IAM_OKTA_EVENT_HOOK_SECRET",
          value_parser = parse_hook_secret, hide_env_values = true, global = true)]
    pub event_hook_secret: Option<SecretString>,

    /// The header the event hook's secret comes in (its "Authentication field").
    #[arg(long = "okta-event-hook-header", env = "EFS_IAM_OKTA_EVENT_HOOK_HEADER",
          default_value = "Authorization", value_parser = parse_header_name, global = true)]
    pub event_hook_header: String,
}

/// Never echoes the value.
fn parse_hook_secret(raw: &str) -> Result<SecretString, String> {
    if raw.trim().chars().count() < 16 {
        return Err("must be at least 16 characters (Okta sends it verbatim in a header)".into());
    }
    Ok(SecretString::from(raw.to_owned()))
}

fn parse_header_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    axum::http::HeaderName::from_bytes(name.as_bytes())
        .map(|_| name.to_ascii_lowercase())
        .map_err(|_| "not an HTTP header name".into())
}

fn parse_org_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw.trim()).map_err(|e| format!("not a URL: {e}"))?;
    super::org_url::validate_org_url(&url)
}

/// Never echoes the value.
fn parse_secret(raw: &str) -> Result<SecretString, String> {
    if raw.trim().is_empty() {
        return Err("must not be empty".into());
    }
    Ok(SecretString::from(raw.to_owned()))
}

fn parse_share(raw: &str) -> Result<f64, String> {
    let share: f64 = raw
        .trim()
        .parse()
        .map_err(|_| "expected a fraction such as 0.5".to_string())?;
    if share > 0.0 && share <= 1.0 {
        Ok(share)
    } else {
        Err("must be more than 0 and at most 1".into())
    }
}

/// RFC 6749 scope tokens, separated by spaces (or commas, a common slip).
fn parse_scopes(raw: &str) -> Result<Vec<String>, OktaConfigError> {
    let scopes: Vec<String> = raw
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if scopes.is_empty() {
        return Err(OktaConfigError::Scopes(
            "at least one scope is needed".into(),
        ));
    }
    if let Some(bad) = scopes.iter().find(|s| {
        !s.chars()
            .all(|c| c.is_ascii_graphic() && c != '"' && c != '\\')
    }) {
        return Err(OktaConfigError::Scopes(format!(
            "{bad:?} is not a valid scope"
        )));
    }
    Ok(scopes)
}

fn read_dpop_key(path: &std::path::Path) -> Result<DpopKey, OktaConfigError> {
    use secrecy::ExposeSecret;
    let shown = path.display().to_string();
    let pem = SecretString::from(std::fs::read_to_string(path).map_err(|source| {
        OktaConfigError::KeyFile {
            variable: "EFS_IAM_OKTA_DPOP_KEY_FILE",
            path: shown.clone(),
            source,
        }
    })?);
    DpopKey::from_pem(pem.expose_secret())
        .map_err(|_| OktaConfigError::InvalidDpopKey { path: shown })
}

/// Builds the Okta client the settings describe: `Ok(None)` when no org is configured,
/// an error for an incomplete or contradictory configuration. `error_log` receives a
/// row for every failed Okta call and every 429.
pub fn client_from_settings(
    settings: &OktaSettings,
    error_log: Option<Arc<dyn ErrorLogStore>>,
) -> Result<Option<OktaClient>, OktaConfigError> {
    let Some(org_url) = &settings.org_url else {
        for (set, name) in [
            (settings.api_token.is_some(), "EFS_IAM_OKTA_API_TOKEN"),
            (settings.client_id.is_some(), "EFS_IAM_OKTA_CLIENT_ID"),
            (
                settings.private_key_file.is_some(),
                "EFS_IAM_OKTA_PRIVATE_KEY_FILE",
            ),
        ] {
            if set {
                return Err(OktaConfigError::CredentialsWithoutOrgUrl(name));
            }
        }
        return Ok(None);
    };
    let oauth_only = [
        (
            settings.private_key_file.is_some(),
            "EFS_IAM_OKTA_PRIVATE_KEY_FILE",
        ),
        (settings.key_id.is_some(), "EFS_IAM_OKTA_KEY_ID"),
        (
            settings.dpop_key_file.is_some(),
            "EFS_IAM_OKTA_DPOP_KEY_FILE",
        ),
    ];
    let auth = match (&settings.api_token, &settings.client_id) {
        (Some(_), Some(_)) => return Err(OktaConfigError::TokenAndClientId),
        (None, None) => match oauth_only.iter().find(|(set, _)| *set) {
            Some((_, name)) => return Err(OktaConfigError::OAuthSettingWithoutClientId(name)),
            None => return Err(OktaConfigError::MissingCredentials),
        },
        (Some(token), None) => {
            if let Some((_, name)) = oauth_only.iter().find(|(set, _)| *set) {
                return Err(OktaConfigError::OAuthSettingWithoutClientId(name));
            }
            OktaAuth::ApiToken(token.clone())
        }
        (None, Some(client_id)) => {
            let path = settings
                .private_key_file
                .as_ref()
                .ok_or(OktaConfigError::ClientIdWithoutKey)?;
            let shown = path.display().to_string();
            // Wrapped so the key text is wiped from memory once parsed.
            let pem = SecretString::from(std::fs::read_to_string(path).map_err(|source| {
                OktaConfigError::KeyFile {
                    variable: "EFS_IAM_OKTA_PRIVATE_KEY_FILE",
                    path: shown.clone(),
                    source,
                }
            })?);
            let scopes = parse_scopes(&settings.scopes)?;
            let key_id = settings.key_id.clone().filter(|k| !k.trim().is_empty());
            use secrecy::ExposeSecret;
            let jwt =
                PrivateKeyJwt::from_pem(client_id.trim(), pem.expose_secret(), key_id, scopes)
                    .map_err(|_| OktaConfigError::InvalidKey { path: shown })?;
            let dpop_key = match &settings.dpop_key_file {
                None => None,
                Some(path) => Some(read_dpop_key(path)?),
            };
            OktaAuth::PrivateKeyJwt(jwt.with_dpop(settings.dpop, dpop_key))
        }
    };
    let mut config = OktaClientConfig::new(org_url.clone(), auth);
    config.rate_share = settings.rate_share;
    config.max_concurrency = settings.max_concurrency as usize;
    config.timeout = settings.timeout;
    config.max_retries = settings.max_retries;
    OktaClient::new(config, error_log).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use std::io::Write;

    #[derive(Parser)]
    struct TestCli {
        #[command(flatten)]
        okta: OktaSettings,
    }

    fn settings(args: &[&str]) -> OktaSettings {
        TestCli::try_parse_from(std::iter::once("efs-iam").chain(args.iter().copied()))
            .expect("arguments parse")
            .okta
    }

    fn build(args: &[&str]) -> Result<Option<OktaClient>, OktaConfigError> {
        client_from_settings(&settings(args), None)
    }

    const ORG: &str = "--okta-org-url=https://acme.okta.com";

    fn key_file(contents: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(contents.as_bytes()).unwrap();
        f
    }

    #[test]
    fn defaults_mean_not_configured() {
        let s = settings(&[]);
        assert_eq!(s.rate_share, 0.5);
        assert_eq!(s.max_concurrency, 10);
        assert_eq!(s.max_retries, 3);
        assert_eq!(s.timeout, Duration::from_secs(30));
        assert_eq!(
            s.scopes,
            "okta.users.manage okta.groups.manage okta.roles.read"
        );
        assert!(build(&[]).unwrap().is_none());
    }

    #[tokio::test]
    async fn api_token_configures_ssws() {
        let client = build(&[ORG, "--okta-api-token=00abcdefSECRET"])
            .unwrap()
            .unwrap();
        assert_eq!(client.status().auth_method, "api_token");
        assert_eq!(client.status().org_url, "https://acme.okta.com");
        assert!(!format!("{client:?}").contains("SECRET"));
    }

    #[test]
    fn incomplete_or_contradictory_settings_are_errors() {
        let err = |args: &[&str]| build(args).unwrap_err().to_string();
        assert!(err(&["--okta-api-token=00abcdefSECRET"]).contains("EFS_IAM_OKTA_ORG_URL is not"));
        assert!(err(&[ORG]).contains("no credentials"));
        let both = err(&[
            ORG,
            "--okta-api-token=00abcdefSECRET",
            "--okta-client-id=0oa1",
        ]);
        assert!(both.contains("not both"), "{both}");
        assert!(!both.contains("SECRET"));
        assert!(err(&[ORG, "--okta-client-id=0oa1"]).contains("EFS_IAM_OKTA_PRIVATE_KEY_FILE"));
        assert!(err(&[ORG, "--okta-api-token=00abcdef", "--okta-key-id=k1"])
            .contains("EFS_IAM_OKTA_KEY_ID"));
    }

    #[test]
    fn key_file_problems_name_the_file_but_not_the_key() {
        let missing = build(&[
            ORG,
            "--okta-client-id=0oa1",
            "--okta-private-key-file=/nonexistent/okta.pem",
        ])
        .unwrap_err()
        .to_string();
        assert!(missing.contains("/nonexistent/okta.pem") && missing.contains("cannot read"));

        let garbage =
            key_file("-----BEGIN PRIVATE KEY-----\nSECRETSTUFF\n-----END PRIVATE KEY-----\n");
        let path = format!("--okta-private-key-file={}", garbage.path().display());
        let invalid = build(&[ORG, "--okta-client-id=0oa1", &path])
            .unwrap_err()
            .to_string();
        assert!(invalid.contains("not an RSA private key"), "{invalid}");
        assert!(!invalid.contains("SECRETSTUFF"));
    }

    #[tokio::test]
    async fn oauth_with_a_key_file() {
        let key = key_file(crate::okta::credentials::tests::test_key_pem());
        let path = format!("--okta-private-key-file={}", key.path().display());
        let client = build(&[ORG, "--okta-client-id=0oa1", &path, "--okta-key-id=k1"])
            .unwrap()
            .unwrap();
        assert_eq!(client.status().auth_method, "private_key_jwt");
        let bad_scopes = build(&[ORG, "--okta-client-id=0oa1", &path, "--okta-scopes= "])
            .unwrap_err()
            .to_string();
        assert!(bad_scopes.contains("EFS_IAM_OKTA_SCOPES"), "{bad_scopes}");
    }

    #[test]
    fn values_are_checked_by_the_parser() {
        let fails = |args: &[&str]| {
            TestCli::try_parse_from(std::iter::once("efs-iam").chain(args.iter().copied())).is_err()
        };
        assert!(fails(&["--okta-rate-share=0"]));
        assert!(fails(&["--okta-rate-share=1.5"]));
        assert!(!fails(&["--okta-rate-share=1"]));
        assert!(fails(&["--okta-max-concurrency=0"]));
        assert!(fails(&["--okta-org-url=http://acme.okta.com"]));
        assert!(fails(&["--okta-org-url=https://acme.okta.com/api/v1"]));
        assert!(fails(&["--okta-timeout=0s"]));
        assert!(fails(&["--okta-api-token="]));
    }

    #[test]
    fn scopes_split_on_spaces_and_commas() {
        assert_eq!(
            parse_scopes("okta.users.manage, okta.groups.read").unwrap(),
            vec!["okta.users.manage", "okta.groups.read"]
        );
        assert!(parse_scopes("okta.\"users").is_err());
    }
}
