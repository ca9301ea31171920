//! Shared test helpers: spawning the app, and the mock upstream.

#![allow(dead_code)] // each test module uses its own subset

pub mod mock_upstream;

use std::{collections::HashMap, net::SocketAddr, path::PathBuf};

use tempfile::TempDir;
use tokio::{sync::oneshot, task::JoinHandle};
use tollgate::{config::Config, startup::Application};

/// A running server with its own database, stopped when dropped.
pub struct TestApp {
    pub addr: SocketAddr,
    pub base_url: String,
    pub client: reqwest::Client,
    pub db_path: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    pub server: Option<JoinHandle<std::io::Result<()>>>,
    _dir: TempDir,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts the app with the test defaults plus `overrides` (environment-style names).
pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let db_path = dir.path().join("data").join("tollgate.db");
    let mut env: HashMap<String, String> = HashMap::from([
        ("TOLLGATE_ADDR".into(), "127.0.0.1:0".into()),
        (
            "DATABASE_URL".into(),
            format!("sqlite://{}", db_path.display()),
        ),
        (
            "TOLLGATE_LOG_DIR".into(),
            dir.path().join("logs").display().to_string(),
        ),
        (
            "LEPTOS_SITE_ROOT".into(),
            concat!(env!("CARGO_MANIFEST_DIR"), "/target/site").into(),
        ),
    ]);
    for (k, v) in overrides {
        env.insert((*k).into(), (*v).into());
    }
    let config = Config::from_lookup(|k| env.get(k).cloned()).expect("test config is valid");
    let app = Application::build(config).await.expect("app builds");
    let addr = app.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        base_url: format!("http://{addr}"),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client"),
        db_path,
        stop: Some(stop),
        server: Some(server),
        _dir: dir,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    /// Asks the server to shut down gracefully (as SIGTERM does in the binary).
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// A direct connection to the test database, for checks the HTTP API does not expose.
    pub async fn db(&self) -> sqlx::SqlitePool {
        sqlx::SqlitePool::connect(&format!("sqlite://{}", self.db_path.display()))
            .await
            .expect("test database opens")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.begin_shutdown();
    }
}
