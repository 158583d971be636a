use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;
use secrecy::{ExposeSecret, SecretString};

/// Caller authentication (`EFS_IAM_AUTH_*`).
#[derive(Debug, Clone, Args)]
pub struct AuthSettings {
    /// Shared HS256 secret for caller tokens (at least 32 bytes).
    #[arg(long = "auth-hs256-secret", env = "EFS_IAM_AUTH_HS256_SECRET",
          value_parser = parse_secret, hide_env_values = true, global = true)]
    pub hs256_secret: Option<SecretString>,

    /// RS256/ES256 public keys in PEM files, comma-separated; `kid=path` binds a key id.
    #[arg(
        long = "auth-public-keys",
        env = "EFS_IAM_AUTH_PUBLIC_KEYS",
        value_delimiter = ',',
        global = true
    )]
    pub public_keys: Vec<String>,

    /// JWKS URL of the callers' identity provider: RS256/ES256 keys selected by `kid`,
    /// cached for EFS_IAM_JWKS_CACHE_TTL, refetched on an unknown `kid` at most once per
    /// EFS_IAM_JWKS_REFETCH_COOLDOWN.
    #[arg(long = "auth-jwks-url", env = "EFS_IAM_AUTH_JWKS_URL", value_parser = parse_jwks_url, global = true)]
    pub jwks_url: Option<String>,

    /// Required `iss` of caller tokens.
    #[arg(long = "auth-issuer", env = "EFS_IAM_AUTH_ISSUER", global = true)]
    pub issuer: Option<String>,

    /// Required `aud` of caller tokens.
    #[arg(long = "auth-audience", env = "EFS_IAM_AUTH_AUDIENCE", global = true)]
    pub audience: Option<String>,

    /// Clock leeway for `exp`/`nbf` (at most 60s).
    #[arg(long = "auth-leeway", env = "EFS_IAM_AUTH_LEEWAY", default_value = "30s",
          value_parser = parse_leeway, global = true)]
    pub leeway: Duration,

    /// Require a token with `iam:read` for /metrics (otherwise it is open).
    #[arg(long = "metrics-require-auth", env = "EFS_IAM_METRICS_REQUIRE_AUTH",
          default_value_t = false, action = clap::ArgAction::Set, global = true)]
    pub metrics_require_auth: bool,
}

fn parse_secret(raw: &str) -> Result<SecretString, String> {
    if raw.len() < 32 {
        return Err("must be at least 32 bytes".into());
    }
    Ok(SecretString::from(raw.to_owned()))
}

fn parse_jwks_url(raw: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(raw).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err("must be an https:// (or http:// for local tests) URL".into());
    }
    Ok(raw.to_owned())
}

fn parse_leeway(raw: &str) -> Result<Duration, String> {
    let d = match raw.trim() {
        "0" | "0s" => Duration::ZERO,
        other => crate::domain::parse_duration(other)?,
    };
    if d > Duration::from_secs(60) {
        return Err("must be at most 60s".into());
    }
    Ok(d)
}

impl AuthSettings {
    pub fn has_keys(&self) -> bool {
        self.hs256_secret
            .as_ref()
            .is_some_and(|s| !s.expose_secret().is_empty())
            || !self.public_keys.is_empty()
            || self.jwks_url.as_deref().is_some_and(|u| !u.is_empty())
    }

    /// Without keys efs-iam is open, which is only acceptable on a developer's machine:
    /// refuse any address but loopback.
    pub fn check_listen(&self, listen: SocketAddr) -> anyhow::Result<()> {
        if self.has_keys() {
            return Ok(());
        }
        if listen.ip().is_loopback() {
            tracing::warn!(
                "no caller authentication configured (EFS_IAM_AUTH_HS256_SECRET / \
                 EFS_IAM_AUTH_PUBLIC_KEYS / EFS_IAM_AUTH_JWKS_URL): the API is open; allowed only because \
                 efs-iam listens on loopback ({listen})"
            );
            Ok(())
        } else {
            anyhow::bail!(
                "refusing to listen on {listen} without caller authentication: set \
                 EFS_IAM_AUTH_HS256_SECRET, EFS_IAM_AUTH_PUBLIC_KEYS or EFS_IAM_AUTH_JWKS_URL (with \
                 EFS_IAM_AUTH_ISSUER and EFS_IAM_AUTH_AUDIENCE)"
            )
        }
    }
}
