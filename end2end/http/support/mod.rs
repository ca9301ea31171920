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
    /// The server's own database handle, to write its queued records first.
    store: tollgate::store::Store,
    stop: Option<oneshot::Sender<()>>,
    pub server: Option<JoinHandle<std::io::Result<()>>>,
    _dir: TempDir,
}

/// A JSON answer's status and body (the body must be JSON).
pub async fn status_and_json(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Reads `read` until what it gives is `done`, at most `tries` times `every`
/// apart, and returns the last reading: the server writes some records a few
/// milliseconds behind its answers.
pub async fn read_until<T, F: std::future::Future<Output = T>>(
    mut read: impl FnMut() -> F,
    done: impl Fn(&T) -> bool,
    tries: usize,
    every: std::time::Duration,
) -> T {
    let mut value = read().await;
    for _ in 1..tries {
        if done(&value) {
            break;
        }
        tokio::time::sleep(every).await;
        value = read().await;
    }
    value
}

/// The `Set-Cookie` value an answer gives the cookie `name`, if any.
pub fn set_cookie(headers: &reqwest::header::HeaderMap, name: &str) -> Option<String> {
    let prefix = format!("{name}=");
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with(&prefix))
        .map(str::to_owned)
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts the app with the test defaults plus `overrides` (environment-style names).
pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    spawn_app_in(tempfile::tempdir().expect("temp dir"), overrides).await
}

/// Starts the app on the database in `dir` (a restart when it was used before).
pub async fn spawn_app_in(dir: TempDir, overrides: &[(&str, &str)]) -> TestApp {
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
    let store = app.store();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        base_url: format!("http://{addr}"),
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("client"),
        db_path,
        store,
        stop: Some(stop),
        server: Some(server),
        _dir: dir,
    }
}

/// A strong password that is not on the common-password list.
pub const PASSWORD: &str = "violet-harbour-lantern-42";

/// A request the server never answers fails the test with its URL instead of
/// hanging the run.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// What a server function answered.
pub struct Answer {
    pub status: reqwest::StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: serde_json::Value,
}

impl Answer {
    pub fn location(&self) -> Option<&str> {
        self.headers.get("location").and_then(|v| v.to_str().ok())
    }
}

/// A cookie-keeping client that sends this site's Origin, as a browser on the
/// dashboard does.
pub struct Browser {
    pub client: reqwest::Client,
    pub jar: std::sync::Arc<reqwest::cookie::Jar>,
    pub base_url: reqwest::Url,
}

impl Browser {
    /// The session cookie it holds, as `name=value`.
    pub fn session_cookie(&self) -> Option<String> {
        use reqwest::cookie::CookieStore;
        let cookies = self.jar.cookies(&self.base_url)?;
        cookies
            .to_str()
            .ok()?
            .split("; ")
            .find(|c| c.starts_with("tollgate_session="))
            .map(str::to_owned)
    }
}

impl TestApp {
    pub fn browser(&self) -> Browser {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("origin", self.base_url.parse().unwrap());
        let jar = std::sync::Arc::new(reqwest::cookie::Jar::default());
        let client = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .build()
            .expect("client");
        Browser {
            client,
            jar,
            base_url: self.base_url.parse().unwrap(),
        }
    }

    /// A browser that presents `cookie` (taken from another one).
    pub fn browser_with_cookie(&self, cookie: &str) -> Browser {
        let browser = self.browser();
        browser.jar.add_cookie_str(cookie, &browser.base_url);
        browser
    }

    /// The page a plain form post's redirect leads to, fetched as a browser
    /// follows its site's own redirect (the form's error is kept only then).
    pub async fn follow_own_redirect(&self, browser: &Browser, location: &str) -> String {
        browser
            .client
            .get(location)
            .header("accept", "text/html")
            .header("sec-fetch-site", "same-origin")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Calls a server function the way the hydrated page does (form-encoded, JSON back).
    pub async fn call(&self, browser: &Browser, endpoint: &str, form: &[(&str, &str)]) -> Answer {
        let response = browser
            .client
            .post(self.url(&format!("/api/{endpoint}")))
            .header("accept", "application/json")
            .form(form)
            .send()
            .await
            .expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Registers through the server function; `browser` is then signed in.
    pub async fn register(&self, browser: &Browser, email: &str, name: &str) -> Answer {
        self.call(
            browser,
            "register",
            &[
                ("email", email),
                ("display_name", name),
                ("password", PASSWORD),
            ],
        )
        .await
    }

    pub async fn login(&self, browser: &Browser, email: &str, password: &str) -> Answer {
        self.call(
            browser,
            "login",
            &[("email", email), ("password", password)],
        )
        .await
    }

    /// The signed-in user as `/api/me` reports it (`Null` when signed out).
    pub async fn me(&self, browser: &Browser) -> serde_json::Value {
        self.call(browser, "me", &[]).await.body
    }

    /// Audit actions recorded so far, oldest first.
    pub async fn audit_actions(&self) -> Vec<String> {
        sqlx::query_scalar("SELECT action FROM audit_events ORDER BY id")
            .fetch_all(&self.db().await)
            .await
            .unwrap()
    }

    /// Creates a key through the REST API as `browser`'s user; its secret.
    pub async fn create_key(&self, browser: &Browser, body: serde_json::Value) -> String {
        let response = browser
            .client
            .post(self.url("/api/v1/keys"))
            .json(&body)
            .send()
            .await
            .expect("request sent");
        assert_eq!(response.status(), 201);
        // The secret is in no cache on the way.
        assert_eq!(response.headers()["cache-control"], "no-store");
        let body: serde_json::Value = response.json().await.expect("JSON body");
        body["secret"].as_str().expect("a secret").to_owned()
    }

    /// The id of `browser`'s user's key called `name`, from the REST API.
    pub async fn key_id_named(&self, browser: &Browser, name: &str) -> i64 {
        let keys: serde_json::Value = browser
            .client
            .get(self.url("/api/v1/keys"))
            .send()
            .await
            .expect("request sent")
            .json()
            .await
            .expect("JSON body");
        keys["data"]
            .as_array()
            .and_then(|keys| keys.iter().find(|k| k["name"] == name))
            .and_then(|k| k["id"].as_i64())
            .unwrap_or_else(|| panic!("no key called {name}: {keys}"))
    }

    /// Revokes `browser`'s user's key called `name` through the REST API.
    pub async fn revoke_key_named(&self, browser: &Browser, name: &str) {
        let id = self.key_id_named(browser, name).await;
        let response = browser
            .client
            .delete(self.url(&format!("/api/v1/keys/{id}")))
            .send()
            .await
            .expect("request sent");
        assert_eq!(response.status(), 200);
    }

    /// Stops this server and starts another on the same database.
    pub async fn restart(mut self, overrides: &[(&str, &str)]) -> TestApp {
        self.begin_shutdown();
        if let Some(server) = self.server.take() {
            let _ = server.await;
        }
        let dir = std::mem::replace(&mut self._dir, tempfile::tempdir().unwrap());
        spawn_app_in(dir, overrides).await
    }

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

    /// `path`'s JSON answer, fetched as `browser`'s user.
    pub async fn get_json(&self, browser: &Browser, path: &str) -> serde_json::Value {
        let response = browser
            .client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent");
        response.json().await.expect("JSON body")
    }

    /// Asks the server to shut down gracefully (as SIGTERM does in the binary).
    pub fn begin_shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// One whole number read from the database (a count, a sum, an id), as
    /// [`TestApp::db`] reads it.
    pub async fn db_number(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql)
            .fetch_one(&self.db().await)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// A direct connection to the test database, for checks the HTTP API does
    /// not expose, after the server has written what it queued (as any of its
    /// own reads would).
    pub async fn db(&self) -> sqlx::SqlitePool {
        let _ = self.store.flush().await;
        // The test may change rows behind the server's back.
        self.store.forget_cached();
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
