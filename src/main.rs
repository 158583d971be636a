use anyhow::Context;
use efs_iam::config::{self, Command};
use efs_iam::startup::{self, Application};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = config::parse();
    let settings = cli.settings;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Openapi => {
            println!("{}", efs_iam::http::openapi().to_pretty_json()?);
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
            if let Err(e) = res {
                eprintln!("efs-iam: unhealthy: {e}");
                std::process::exit(1);
            }
        }
        Command::Migrate => {
            efs_iam::telemetry::init(settings.log_format, &settings.log);
            startup::connect_storage(&settings, true)
                .await
                .context("migration failed")?;
            tracing::info!("migrations applied");
        }
        Command::Serve => {
            efs_iam::telemetry::init(settings.log_format, &settings.log);
            let app = Application::build(&settings)
                .await
                .context("efs-iam could not start")?;
            app.run_until_stopped(startup::shutdown_signal()).await?;
        }
    }
    Ok(())
}
