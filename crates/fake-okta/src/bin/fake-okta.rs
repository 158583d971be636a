//! Runs the fake Okta as a standalone process, e.g. for `scripts/check-fake-okta-against-spec.sh`
//! or for poking at it with curl:
//!
//!     cargo run -p fake-okta -- --port 4011 --api-token test-token
//!
//! Prints the base URL once listening; stops on Ctrl-C / SIGTERM.

use clap::Parser;
use fake_okta::{FakeOkta, FakeOktaConfig};

#[derive(Parser)]
struct Args {
    /// Port to listen on (0 = any free port).
    #[arg(long, default_value_t = 4011)]
    port: u16,
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Accepted `Authorization: SSWS <token>`.
    #[arg(long, default_value = "test-token")]
    api_token: String,
    /// Requests per bucket per window.
    #[arg(long, default_value_t = 10_000)]
    rate_limit: u32,
    /// Rate-limit window in seconds.
    #[arg(long, default_value_t = 60)]
    window_secs: u64,
    /// Answer deactivations with 204 instead of 200 `{}`.
    #[arg(long)]
    deactivate_204: bool,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port)).await?;
    let config = FakeOktaConfig {
        api_token: Some(args.api_token),
        rate_limit: args.rate_limit,
        window: std::time::Duration::from_secs(args.window_secs),
        deactivate_returns_204: args.deactivate_204,
        ..FakeOktaConfig::default()
    };
    println!("fake Okta listening on http://{}", listener.local_addr()?);
    FakeOkta::serve(listener, config, async {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    })
    .await
}
