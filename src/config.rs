//! Typed settings from `EFS_IAM_*` environment variables, each with a matching CLI
//! flag (flags win). A bad value stops start-up with one line naming the variable.

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};

use crate::domain::parse_duration;
use crate::telemetry::LogFormat;

#[derive(Debug, Parser)]
#[command(name = "efs-iam", version, about = "EFS's Okta integration service")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run the HTTP service (the default).
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Print the OpenAPI document and exit.
    Openapi,
    /// Manage the session token vault.
    Tokens {
        #[command(subcommand)]
        command: crate::tokens::TokensCommand,
    },
    /// Print a caller token signed with EFS_IAM_AUTH_HS256_SECRET (for operators and
    /// scripts), e.g. `efs-iam token --scope "iam:read iam:sync" --ttl 15m`.
    Token {
        /// Space-separated scopes: iam:read, iam:write, iam:sync, iam:tokens, iam:admin.
        #[arg(long)]
        scope: String,
        /// Lifetime of the token.
        #[arg(long, default_value = "15m", value_parser = parse_duration)]
        ttl: Duration,
        /// The token's subject, shown in the audit log.
        #[arg(long, default_value = "operator")]
        sub: String,
    },
    /// Probe `/health/live` of the instance at `--listen`; exit 0 when it answers.
    /// For container HEALTHCHECKs (the runtime image has no curl).
    Healthcheck,
}

#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address to listen on.
    #[arg(
        long,
        env = "EFS_IAM_LISTEN",
        default_value = "127.0.0.1:8080",
        global = true
    )]
    pub listen: SocketAddr,

    /// `sqlite:FILE` (embedded, created on first start) or `mysql://user:pass@host/db`.
    #[arg(long, env = "EFS_IAM_DATABASE_URL", default_value = "sqlite:efs-iam.db",
          value_parser = parse_database_url, hide_env_values = true, global = true)]
    pub database_url: SecretString,

    /// Most database connections this instance opens.
    #[arg(long, env = "EFS_IAM_DATABASE_MAX_CONNECTIONS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=1000), global = true)]
    pub database_max_connections: u32,

    /// How long a request waits for a free database connection (e.g. 3s, 500ms).
    #[arg(long, env = "EFS_IAM_DATABASE_ACQUIRE_TIMEOUT", default_value = "3s",
          value_parser = parse_duration, global = true)]
    pub database_acquire_timeout: Duration,

    /// Longest one storage operation may take (a statement, or a whole short
    /// transaction), waiting for a connection included: then the request answers 503
    /// and the connection is dropped. MariaDB also stops a statement after this long
    /// (`max_statement_time`), so its locks do not outlive the wait for it.
    #[arg(long, env = "EFS_IAM_DATABASE_STATEMENT_TIMEOUT", default_value = "5s",
          value_parser = parse_duration, global = true)]
    pub database_statement_timeout: Duration,

    /// Apply migrations when `serve` starts.
    #[arg(long, env = "EFS_IAM_MIGRATE_ON_START", default_value_t = true,
          action = clap::ArgAction::Set, global = true)]
    pub migrate_on_start: bool,

    /// Longest a request may take before it is answered 503.
    #[arg(long, env = "EFS_IAM_REQUEST_TIMEOUT", default_value = "30s",
          value_parser = parse_duration, global = true)]
    pub request_timeout: Duration,

    /// Largest request body accepted, in bytes (a 10,000-user enqueue is about 1 MB).
    #[arg(long, env = "EFS_IAM_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024,
          value_parser = clap::value_parser!(u64).range(1024..=(256 * 1024 * 1024)), global = true)]
    pub max_body_bytes: u64,

    /// Longest `/health/ready` waits for the database.
    #[arg(long, env = "EFS_IAM_READY_TIMEOUT", default_value = "2s",
          value_parser = parse_duration, global = true)]
    pub ready_timeout: Duration,

    /// Most API requests in flight; beyond, 503 with Retry-After.
    #[arg(long, env = "EFS_IAM_MAX_CONCURRENT_REQUESTS", default_value_t = 512,
          value_parser = clap::value_parser!(u64).range(1..=100_000), global = true)]
    pub max_concurrent_requests: u64,

    /// Longest a client may take to send a request's head (request line and headers),
    /// also between keep-alive requests; then the connection is closed.
    #[arg(long, env = "EFS_IAM_HEADER_READ_TIMEOUT", default_value = "10s",
          value_parser = parse_duration, global = true)]
    pub header_read_timeout: Duration,

    /// Longest a client may take none of an answer's bytes (it stopped reading); then
    /// the connection is closed.
    #[arg(long, env = "EFS_IAM_WRITE_TIMEOUT", default_value = "10s",
          value_parser = parse_duration, global = true)]
    pub write_timeout: Duration,

    /// Most client connections open at once. At the cap a new connection takes the
    /// place of the one stalled longest (idle or not reading); when all are busy it
    /// waits in the kernel's backlog. Lowered at start-up to fit the open-file limit.
    #[arg(long, env = "EFS_IAM_MAX_CONNECTIONS", default_value_t = 4096,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000), global = true)]
    pub max_connections: u64,

    /// Longest a shutdown waits for requests in flight and busy workers; then what is
    /// left is dropped (claimed work comes back to other instances when its lease ends).
    #[arg(long, env = "EFS_IAM_SHUTDOWN_TIMEOUT", default_value = "30s",
          value_parser = parse_duration, global = true)]
    pub shutdown_timeout: Duration,

    /// Origins allowed to call the API from a browser (comma-separated); empty = CORS off.
    #[arg(
        long,
        env = "EFS_IAM_CORS_ORIGINS",
        value_delimiter = ',',
        global = true
    )]
    pub cors_origins: Vec<String>,

    #[command(flatten)]
    pub auth: crate::auth::AuthSettings,

    /// Log format.
    #[arg(long, env = "EFS_IAM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// Log filter, in `tracing` EnvFilter syntax (e.g. `info,efs_iam=debug`).
    #[arg(long, env = "EFS_IAM_LOG", default_value = "info", global = true)]
    pub log: String,

    #[command(flatten)]
    pub okta: crate::okta::OktaSettings,
    /// The session token vault (`EFS_IAM_TOKEN_*`, `EFS_IAM_MEMCACHED_*`, ...).
    #[command(flatten)]
    pub tokens: crate::tokens::TokenSettings,

    #[command(flatten)]
    pub sync: crate::sync::SyncSettings,
}

impl Settings {
    pub fn database_url(&self) -> &str {
        self.database_url.expose_secret()
    }
}

/// Never echoes the value: a database URL may carry a password.
fn parse_database_url(raw: &str) -> Result<SecretString, String> {
    crate::storage::scheme(raw).map_err(|e| e.to_string())?;
    Ok(SecretString::from(raw.to_owned()))
}

/// Parses the command line and environment. On a bad value, prints one line naming
/// the environment variable and the flag, and exits with status 2.
pub fn parse() -> Cli {
    use clap::CommandFactory;
    match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::{ContextKind, ContextValue, ErrorKind};
            if !matches!(
                e.kind(),
                ErrorKind::InvalidValue | ErrorKind::ValueValidation
            ) {
                e.exit();
            }
            let arg = match e.get(ContextKind::InvalidArg) {
                Some(ContextValue::String(s)) => s.clone(),
                _ => String::new(),
            };
            let cmd = Cli::command();
            let spec = cmd.get_arguments().find(|a| {
                a.get_long()
                    .is_some_and(|l| arg.starts_with(&format!("--{l} ")))
            });
            let env = spec
                .and_then(|a| a.get_env())
                .map(|v| v.to_string_lossy().into_owned());
            // Secret-bearing settings never have their value echoed.
            let secret = spec.is_none_or(|a| a.is_hide_env_values_set());
            let value = match (secret, e.get(ContextKind::InvalidValue)) {
                (false, Some(ContextValue::String(v))) => format!(" {v:?}"),
                _ => String::new(),
            };
            let reason = match (
                std::error::Error::source(&e),
                e.get(ContextKind::ValidValue),
            ) {
                (Some(source), _) => source.to_string(),
                (None, Some(ContextValue::Strings(valid))) => {
                    format!("expected one of {}", valid.join(", "))
                }
                _ => "invalid value".to_owned(),
            };
            match env {
                Some(env) => eprintln!("efs-iam: bad setting {env} ({arg}){value}: {reason}"),
                None => eprintln!("efs-iam: bad value for {arg}{value}: {reason}"),
            }
            std::process::exit(2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_errors_do_not_echo_the_value() {
        let err = parse_database_url("postgres://u:hunter2@h/db").unwrap_err();
        assert!(!err.contains("hunter2"));
        assert!(parse_database_url("sqlite:x.db").is_ok());
    }
}
