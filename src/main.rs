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
        Command::Migrate => {
            efs_iam::telemetry::init(settings.log_format, &settings.log);
            startup::connect_storage(&settings, true)
                .await
                .context("migration failed")?;
            tracing::info!("migrations applied");
        }
        Command::Tokens { command } => {
            efs_iam::telemetry::init(settings.log_format, &settings.log);
            efs_iam::tokens::run_command(command, &settings).await?;
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
