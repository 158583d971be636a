//! Logging and tracing: human-readable or JSON lines on stdout.

use tracing_subscriber::{fmt, layer::SubscriberExt, util::SubscriberInitExt, EnvFilter};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber on stdout; `RUST_LOG` overrides the configured filter.
pub fn init(format: LogFormat, filter: &str) {
    init_on(format, filter, std::io::stdout);
}

/// The same, on stderr: for commands whose stdout is their result (`tokens re-encrypt`).
pub fn init_stderr(format: LogFormat, filter: &str) {
    init_on(format, filter, std::io::stderr);
}

fn init_on<W>(format: LogFormat, filter: &str, writer: W)
where
    W: for<'w> fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Text => registry.with(fmt::layer().with_writer(writer)).try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .with_writer(writer)
                    .json()
                    .flatten_event(true)
                    .with_current_span(true),
            )
            .try_init(),
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}
