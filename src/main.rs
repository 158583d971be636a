use anyhow::Context;
use efs_iam::config::{self, Command};
use efs_iam::startup::{self, Application};

/// jemalloc rather than glibc's malloc. A reconciliation holds a portal's whole group
/// for a moment; glibc kept each such peak as resident memory between runs (the heap of
/// an instance grew in steps through the soak), jemalloc returns freed pages to the
/// system after its decay time (10 s). Only the binary sets it: the library and its
/// tests keep the system allocator.
#[cfg(target_os = "linux")]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Failures end as one line on stderr (`efs-iam: what: why`) and exit status 1,
/// whatever RUST_BACKTRACE says: operators read these in container logs.
#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(config::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("efs-iam: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: config::Cli) -> anyhow::Result<()> {
    let settings = cli.settings;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Openapi => {
            println!("{}", efs_iam::http::openapi().to_pretty_json()?);
        }
        Command::Token { scope, ttl, sub } => {
            let auth = &settings.auth;
            let (Some(secret), Some(issuer), Some(audience)) =
                (&auth.hs256_secret, &auth.issuer, &auth.audience)
            else {
                anyhow::bail!(
                    "efs-iam token needs EFS_IAM_AUTH_HS256_SECRET, EFS_IAM_AUTH_ISSUER and EFS_IAM_AUTH_AUDIENCE"
                );
            };
            let scopes: Vec<&str> = scope.split_whitespace().collect();
            for s in &scopes {
                if !efs_iam::auth::Scope::ALL.iter().any(|k| k.as_str() == *s) {
                    anyhow::bail!(
                        "unknown scope {s:?}: use iam:read, iam:write, iam:sync, iam:tokens, iam:admin"
                    );
                }
            }
            let token = efs_iam::auth::mint_hs256(secret, issuer, audience, &sub, &scopes, ttl)?;
            println!("{token}");
        }
        Command::Healthcheck => {
            let mut addr = settings.listen;
            if addr.ip().is_unspecified() {
                addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
            }
            let res = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(3))
                .build()?
                .get(format!("http://{addr}/health/live"))
                .send()
                .await
                .and_then(|r| r.error_for_status());
            res.context("unhealthy")?;
        }
        Command::Migrate => {
            efs_iam::telemetry::init(settings.log_format, &settings.log);
            startup::connect_storage(&settings, true)
                .await
                .context("migration failed")?;
            tracing::info!("migrations applied");
        }
        Command::Tokens { command } => {
            efs_iam::telemetry::init_stderr(settings.log_format, &settings.log);
            match command {
                efs_iam::tokens::TokensCommand::ReEncrypt => {
                    startup::reencrypt_tokens(&settings).await?
                }
            }
        }
        Command::Serve => {
            efs_iam::telemetry::init(settings.log_format, &settings.log);
            let app = Application::build(&settings)
                .await
                .context("efs-iam could not start")?;
            // Stops the sync workers with the server and logs how each one ended.
            app.run_until_stopped(startup::shutdown_signal()).await?;
            tracing::info!("efs-iam stopped");
        }
    }
    Ok(())
}
