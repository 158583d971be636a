//! The real service on port 0, and its settings.

use std::sync::Arc;

use clap::Parser;
use efs_iam::config::{Cli, Settings};
use efs_iam::startup::Application;

use super::http::Api;
use super::TestDb;

/// Settings as the service's defaults, listening on an ephemeral port.
pub fn test_settings(database_url: &str) -> Settings {
    let mut settings = Cli::try_parse_from(["efs-iam"])
        .expect("defaults parse")
        .settings;
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.database_url = database_url.to_owned().into();
    settings
}

/// A built application running in the background until stopped or dropped.
pub struct Running {
    pub address: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Running {
    pub fn start(app: Application) -> Self {
        let address = format!("http://{}", app.local_addr());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until_stopped(async move {
            let _ = rx.await;
        }));
        Self {
            address,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// Stops the server gracefully (workers included) and waits for it.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server result");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The service on its own database, as the API tests use it.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db: TestDb,
    running: Running,
}

impl Api for TestApp {
    fn client(&self) -> &reqwest::Client {
        &self.client
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        Api::url(self, path)
    }

    pub async fn stop(&mut self) {
        self.running.stop().await;
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_on(TestDb::sqlite().await, |_| {}).await
}

pub async fn spawn_app_on(db: TestDb, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = test_settings(&db.url);
    adjust(&mut settings);
    let app = Application::with_storage(&settings, db.store.clone())
        .await
        .expect("build app");
    serve(app, db)
}

/// Runs a built application in the background until the `TestApp` is stopped or dropped.
fn serve(app: Application, db: TestDb) -> TestApp {
    let running = Running::start(app);
    TestApp {
        address: running.address.clone(),
        client: reqwest::Client::new(),
        db,
        running,
    }
}

/// Like [`spawn_app_on`], with the clock the token vault judges expiry by.
pub async fn spawn_app_with_clock(
    db: TestDb,
    clock: efs_iam::tokens::ManualClock,
    adjust: impl FnOnce(&mut Settings),
) -> TestApp {
    let mut settings = test_settings(&db.url);
    adjust(&mut settings);
    let app = Application::with_clock(&settings, db.store.clone(), Arc::new(clock))
        .await
        .expect("build app");
    serve(app, db)
}
