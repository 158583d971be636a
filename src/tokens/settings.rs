//! Settings of the token vault, flattened into the service's settings (`config.rs`). Like the
//! others, each is an `EFS_IAM_*` variable with a matching flag, and a bad value stops
//! start-up naming the variable. Secrets (`EFS_IAM_TOKEN_KEYS`,
//! `EFS_IAM_SESSION_HASH_KEY`) are parsed into types whose `Debug` prints no key
//! material, and `--help` does not show their values.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use super::crypto::{KeyRing, SessionHasher};
use crate::domain::parse_duration;

/// Where token responses live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenBackendKind {
    /// `iam_token_data` in the service's database (MariaDB or SQLite).
    Sql,
    /// One or several memcached servers, keys spread by consistent hashing.
    Memcached,
}

/// `host:port[,host:port…]`, in the order given (the order does not matter for the
/// hash ring, the names do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemcachedServers(pub Vec<String>);

fn parse_servers(raw: &str) -> Result<MemcachedServers, String> {
    let mut out: Vec<String> = Vec::new();
    for (i, entry) in raw.split(',').enumerate() {
        let entry = entry.trim();
        let (host, port) = entry
            .rsplit_once(':')
            .ok_or_else(|| format!("entry {}: expected host:port", i + 1))?;
        if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("entry {}: expected host:port", i + 1));
        }
        // Refused here rather than failing on every connect: the client crate
        // (async-memcached 0.9) opens IPv4 sockets only.
        if host.starts_with('[') || host.contains(':') {
            return Err(format!(
                "entry {}: IPv6 addresses are not supported (the memcached client connects \
                 over IPv4 only); use an IPv4 address or a host name with an IPv4 address",
                i + 1
            ));
        }
        if out.iter().any(|s| s == entry) {
            return Err(format!("entry {}: {entry} appears twice", i + 1));
        }
        out.push(entry.to_owned());
    }
    Ok(MemcachedServers(out))
}

fn parse_key_ring(raw: &str) -> Result<KeyRing, String> {
    KeyRing::parse(raw)
}

fn parse_hash_key(raw: &str) -> Result<SessionHasher, String> {
    SessionHasher::parse(raw)
}

#[derive(Debug, Clone, Args)]
pub struct TokenSettings {
    /// Where session token responses are kept: `sql` (iam_token_data) or `memcached`.
    #[arg(long, env = "EFS_IAM_TOKEN_STORE", value_enum, default_value_t = TokenBackendKind::Sql, global = true)]
    pub token_store: TokenBackendKind,

    /// memcached servers, `host:port[,host:port…]` (required with EFS_IAM_TOKEN_STORE=memcached).
    #[arg(long, env = "EFS_IAM_MEMCACHED_SERVERS", value_parser = parse_servers, global = true)]
    pub memcached_servers: Option<MemcachedServers>,

    /// Longest a memcached connect or command may take before the server counts as down.
    #[arg(long, env = "EFS_IAM_MEMCACHED_TIMEOUT", default_value = "500ms",
          value_parser = parse_duration, global = true)]
    pub memcached_timeout: Duration,

    /// Most connections kept open to each memcached server.
    #[arg(long, env = "EFS_IAM_MEMCACHED_POOL_SIZE", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=1024), global = true)]
    pub memcached_pool_size: u32,

    /// memcached's item size limit (its `-I`, 1 MiB by default). Larger token responses
    /// are refused with 413 rather than cut.
    #[arg(long, env = "EFS_IAM_MEMCACHED_MAX_ITEM_BYTES", default_value_t = 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1024..=(1024 * 1024 * 1024)), global = true)]
    pub memcached_max_item_bytes: u64,

    /// Prefix of every memcached key efs-iam writes (memcached may be shared with EFS).
    #[arg(long, env = "EFS_IAM_MEMCACHED_KEY_PREFIX", default_value = "efs-iam:",
          value_parser = parse_key_prefix, global = true)]
    pub memcached_key_prefix: String,

    /// Encryption keys, `id:base64-of-32-bytes[,…]`: the first encrypts, all decrypt.
    /// A secret. Without it the service uses a random per-process key, and only when
    /// listening on a loopback address.
    #[arg(long, env = "EFS_IAM_TOKEN_KEYS", value_parser = parse_key_ring,
          hide_env_values = true, global = true)]
    pub token_keys: Option<KeyRing>,

    /// Key of the keyed hash of session ids, base64 of 32 bytes. A secret, required
    /// with EFS_IAM_TOKEN_KEYS; changing it orphans every stored session.
    #[arg(long, env = "EFS_IAM_SESSION_HASH_KEY", value_parser = parse_hash_key,
          hide_env_values = true, global = true)]
    pub session_hash_key: Option<SessionHasher>,

    /// Lifetime of a token response that carries no usable `expires_in`.
    #[arg(long, env = "EFS_IAM_TOKEN_DEFAULT_LIFETIME", default_value = "1h",
          value_parser = parse_duration, global = true)]
    pub token_default_lifetime: Duration,

    /// Longest a token response is kept: the lifetime of one holding a refresh token,
    /// and the cap on `expires_in`.
    #[arg(long, env = "EFS_IAM_TOKEN_MAX_LIFETIME", default_value = "24h",
          value_parser = parse_duration, global = true)]
    pub token_max_lifetime: Duration,

    /// Serve token responses stored as plaintext by EFS before efs-iam (SQL store only;
    /// never from memcached). Off by default: a value not in efs-iam's sealed format is
    /// not served. Switch on while adopting an EFS database, until `efs-iam tokens
    /// re-encrypt` has sealed every legacy row.
    #[arg(long, env = "EFS_IAM_TOKEN_ACCEPT_LEGACY_PLAINTEXT", default_value_t = false,
          action = clap::ArgAction::Set, global = true)]
    pub token_accept_legacy_plaintext: bool,

    /// How often expired rows are deleted from iam_token_data (SQL backend).
    #[arg(long, env = "EFS_IAM_TOKEN_PURGE_INTERVAL", default_value = "5m",
          value_parser = parse_duration, global = true)]
    pub token_purge_interval: Duration,

    /// How long an issuer's JWKS is used before it is fetched again.
    #[arg(long, env = "EFS_IAM_JWKS_CACHE_TTL", default_value = "1h",
          value_parser = parse_duration, global = true)]
    pub jwks_cache_ttl: Duration,

    /// Least time between two JWKS fetches caused by unknown `kid`s; also how long a
    /// failed discovery or JWKS fetch is remembered before it is tried again.
    #[arg(long, env = "EFS_IAM_JWKS_REFETCH_COOLDOWN", default_value = "30s",
          value_parser = parse_duration, global = true)]
    pub jwks_refetch_cooldown: Duration,

    /// Longest an OIDC discovery or JWKS request may take.
    #[arg(long, env = "EFS_IAM_OIDC_TIMEOUT", default_value = "5s",
          value_parser = parse_duration, global = true)]
    pub oidc_timeout: Duration,

    /// Origins whose issuers a portal's `okta_issuer` may name (comma-separated, e.g.
    /// `https://acme.okta.com`; its `/oauth2/{server}` authorization servers are
    /// included). Default: the origin of EFS_IAM_OKTA_ORG_URL; with neither, no issuer.
    #[arg(long, env = "EFS_IAM_OIDC_ALLOWED_ISSUERS", value_delimiter = ',',
          value_parser = crate::tokens::oidc::parse_origin, global = true)]
    pub oidc_allowed_issuers: Vec<reqwest::Url>,
}

fn parse_key_prefix(raw: &str) -> Result<String, String> {
    if raw.len() > 64 || !raw.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("must be at most 64 visible ASCII characters".into());
    }
    Ok(raw.to_owned())
}

impl TokenSettings {
    /// The JWKS cache settings, shared by id_token verification and caller keys.
    pub fn jwks_options(&self) -> crate::jwks::JwksOptions {
        crate::jwks::JwksOptions {
            cache_ttl: self.jwks_cache_ttl,
            refetch_cooldown: self.jwks_refetch_cooldown,
            timeout: self.oidc_timeout,
        }
    }

    /// Checks the combinations a single value parser cannot see. `listen` decides
    /// whether running without keys is allowed.
    pub fn validate(&self, listen: SocketAddr) -> anyhow::Result<()> {
        match (&self.token_keys, &self.session_hash_key) {
            (Some(_), None) => anyhow::bail!(
                "bad setting EFS_IAM_SESSION_HASH_KEY: required when EFS_IAM_TOKEN_KEYS is set"
            ),
            (None, Some(_)) => anyhow::bail!(
                "bad setting EFS_IAM_TOKEN_KEYS: required when EFS_IAM_SESSION_HASH_KEY is set"
            ),
            (None, None) if !listen.ip().is_loopback() => anyhow::bail!(
                "bad setting EFS_IAM_TOKEN_KEYS: required when listening on {listen} (a non-loopback \
                 address); without it session tokens would be encrypted with a throw-away key"
            ),
            _ => {}
        }
        if self.token_store == TokenBackendKind::Memcached && self.memcached_servers.is_none() {
            anyhow::bail!(
                "bad setting EFS_IAM_MEMCACHED_SERVERS: required when EFS_IAM_TOKEN_STORE=memcached"
            );
        }
        if self.token_max_lifetime < self.token_default_lifetime {
            anyhow::bail!(
                "bad setting EFS_IAM_TOKEN_MAX_LIFETIME: shorter than EFS_IAM_TOKEN_DEFAULT_LIFETIME"
            );
        }
        Ok(())
    }
}

/// `efs-iam tokens …`
#[derive(Debug, Clone, Subcommand)]
pub enum TokensCommand {
    /// Rewrite every stored token response under the first key of EFS_IAM_TOKEN_KEYS,
    /// encrypting legacy plaintext rows and hashing legacy raw session ids. Safe to run
    /// while the service serves; run it before removing an old key.
    ReEncrypt,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes() {
        assert_eq!(parse_duration("12h").unwrap(), Duration::from_secs(43_200));
        assert_eq!(parse_duration("7d").unwrap(), Duration::from_secs(604_800));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("0h").is_err());
        assert!(parse_duration("1w").is_err());
        assert!(parse_duration("99999999999999999999d").is_err());
    }

    #[test]
    fn servers() {
        assert_eq!(
            parse_servers("10.0.0.1:11211, cache-b:11212").unwrap().0,
            vec!["10.0.0.1:11211", "cache-b:11212"]
        );
        assert!(parse_servers("cache").is_err());
        assert!(parse_servers("cache:0").is_err());
        assert!(parse_servers("a:1,a:1").is_err());
        assert!(parse_servers("").is_err());
        let ipv6 = parse_servers("10.0.0.1:11211,[::1]:11211").unwrap_err();
        assert!(ipv6.starts_with("entry 2: IPv6"), "{ipv6}");
        assert!(parse_servers("::1:11211").unwrap_err().contains("IPv6"));
    }
}
