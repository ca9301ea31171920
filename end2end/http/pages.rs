use serde_json::Value;

use crate::support::{spawn_app, spawn_app_in};

#[tokio::test]
async fn home_page_renders_on_the_server_with_hydration_scripts() {
    let app = spawn_app().await;
    let response = app.get("/").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = response.text().await.unwrap();
    assert!(html.contains("One gateway in front of your language models"));
    assert!(html.contains("How to get a key"));
    assert!(html.contains(r#"aria-label="Main""#), "nav bar");
    assert!(html.contains("/pkg/tollgate.css"), "stylesheet link");
    assert!(html.contains("/pkg/tollgate.js"), "hydration script");
    // The status resource resolved during SSR, showing this server's base URL.
    assert!(html.contains(&format!("{}/v1", app.base_url)), "{html}");
}

/// The code samples call a model the table has, its first, rather than
/// `demo`, which a table of real upstreams may leave out.
#[tokio::test]
async fn the_home_pages_samples_call_the_tables_first_model() {
    let dir = tempfile::tempdir().unwrap();
    let table = dir.path().join("models.toml");
    std::fs::write(
        &table,
        "[[model]]\nname = \"house-model\"\nprovider = \"demo\"\n\
         input_price = \"1\"\noutput_price = \"1\"\n",
    )
    .unwrap();
    let table = table.to_str().unwrap().to_owned();
    let app = spawn_app_in(dir, &[("TOLLGATE_MODELS", &table)]).await;
    let html = app.get("/").await.text().await.unwrap();
    let said = html.replace("&quot;", "\"");
    assert!(said.contains(r#""model": "house-model""#), "{html}");
    assert!(!said.contains(r#""model": "demo""#), "{html}");
}

/// The dashboard cannot be framed (clicks on its admin buttons steered from
/// a sibling subdomain) nor sniffed, its addresses (a form's kept values)
/// are not sent to other sites, and its pages, which show new keys and
/// balances, stay in no cache; its static files may.
#[tokio::test]
async fn dashboard_answers_refuse_framing_and_pages_are_not_cached() {
    let app = spawn_app().await;
    let header = |response: &reqwest::Response, name: &str| {
        response
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    };
    for path in ["/", "/keys", "/no/such/page", "/favicon.svg", "/api/v1/me"] {
        let response = app.get(path).await;
        assert_eq!(
            header(&response, "x-frame-options").as_deref(),
            Some("DENY"),
            "{path}"
        );
        let policy = header(&response, "content-security-policy").unwrap_or_default();
        assert!(
            policy.ends_with("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
        assert_eq!(
            header(&response, "x-content-type-options").as_deref(),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            header(&response, "referrer-policy").as_deref(),
            Some("same-origin"),
            "{path}"
        );
        // Pages and JSON answers are kept in no cache; static files are.
        let private = header(&response, "content-type").is_some_and(|kind| {
            kind.starts_with("text/html") || kind.starts_with("application/json")
        });
        let cache = header(&response, "cache-control");
        assert_eq!(
            private,
            cache.as_deref() == Some("no-store"),
            "{path}: {cache:?}"
        );
    }
    // The model API is for programs, not frames: it is left as it was.
    let response = app.get("/v1/models").await;
    assert!(header(&response, "x-frame-options").is_none());
}

/// Pages run only the scripts they were sent with: every inline script
/// carries the response's own nonce, which the policy names, and the next
/// response has another. JSON answers get no script policy at all.
#[tokio::test]
async fn pages_allow_only_their_own_scripts() {
    let app = spawn_app().await;
    let mut seen = Vec::new();
    for path in ["/", "/login", "/no/such/page", "/"] {
        let response = app.get(path).await;
        let policy = response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        let html = response.text().await.unwrap();
        let nonce = policy
            .split("'nonce-")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .unwrap_or_else(|| panic!("{path}: no nonce in {policy}"));
        assert!(nonce.len() >= 16, "{nonce}");
        for part in ["object-src 'none'", "base-uri 'none'", "connect-src 'self'"] {
            assert!(policy.contains(part), "{path}: {policy}");
        }
        let scripts_from = policy
            .split(';')
            .find(|directive| directive.trim().starts_with("script-src"))
            .unwrap();
        assert!(
            !scripts_from.contains("'unsafe-inline'") && !scripts_from.contains("'unsafe-eval'"),
            "{scripts_from}"
        );
        let scripts: Vec<&str> = html.split("<script").skip(1).collect();
        assert!(!scripts.is_empty(), "{path}: the hydration script");
        for script in scripts {
            let tag = &script[..script.find('>').unwrap()];
            assert!(
                tag.contains(&format!(r#"nonce="{nonce}""#)),
                "{path}: {tag}"
            );
        }
        assert!(
            !html.contains(" onsubmit=") && !html.contains(" onclick="),
            "{path}"
        );
        seen.push(nonce.to_owned());
    }
    assert_ne!(seen[0], seen[3], "a new nonce for each response");
    let policy = app.get("/api/v1/me").await.headers()["content-security-policy"].clone();
    assert_eq!(policy, "frame-ancestors 'none'");
}

#[tokio::test]
async fn unknown_page_is_a_friendly_404() {
    let app = spawn_app().await;
    let response = app.get("/no/such/page").await;
    assert_eq!(response.status(), 404);
    let html = response.text().await.unwrap();
    assert!(html.contains("This page does not exist"));
    assert!(html.contains("Back to the home page"));
}

#[tokio::test]
async fn status_server_function_answers_json() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/api/status"))
        .header("origin", &app.base_url)
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(body["database_ready"], true);
    assert_eq!(body["public_url"], app.base_url);
}

#[tokio::test]
async fn signed_in_pages_send_visitors_to_login_whatever_they_accept() {
    let app = spawn_app().await;
    for (path, accept) in [
        ("/keys", "*/*"),
        ("/usage", "*/*"),
        ("/account", "*/*"),
        ("/admin", "application/json"),
        ("/keys", "text/html"),
    ] {
        let response = app
            .client
            .get(app.url(path))
            .header("accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 302, "{path} with Accept {accept}");
        assert_eq!(
            response.headers()["location"],
            format!("/login?next={}", path.replace('/', "%2F")).as_str()
        );
    }
}

/// Controls that act only through the page's code are disabled in the page
/// as served, so nothing typed or clicked before it loads is lost.
#[tokio::test]
async fn script_only_controls_are_disabled_until_the_page_hydrates() {
    let app = spawn_app().await;
    let b = app.browser();
    app.register(&b, "early@example.com", "Early").await;
    let html = |path: &'static str| {
        let b = &b;
        let app = &app;
        async move {
            let response = b.client.get(app.url(path)).send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            response.text().await.unwrap()
        }
    };
    let keys = html("/keys").await;
    assert!(
        keys.contains(r#"<fieldset disabled class="grid gap-4 sm:grid-cols-2">"#),
        "{keys}"
    );
    for label in [">Rotate</button>", ">Revoke</button>"] {
        let button = keys.split(label).next().unwrap();
        let button = &button[button.rfind("<button").unwrap()..];
        assert!(button.contains("disabled"), "{button}");
    }
    let playground = html("/playground").await;
    for id in ["pg-key", "pg-system", "pg-message"] {
        let tag = playground.split(&format!(r#"id="{id}""#)).nth(1).unwrap();
        let tag = &tag[..tag.find('>').unwrap()];
        assert!(tag.contains("disabled"), "{id}: {tag}");
    }
    let plans = html("/plans").await;
    let button = plans.split(">Switch to Standard</button>").next().unwrap();
    let button = &button[button.rfind("<button").unwrap()..];
    assert!(button.contains("disabled"), "{button}");

    // A browser running no scripts is told why they stay disabled.
    for (page, what) in [
        (&keys, "Managing keys"),
        (&playground, "The playground"),
        (&plans, "Switching plans"),
    ] {
        let note = page
            .split("<noscript>")
            .nth(1)
            .and_then(|rest| rest.split("</noscript>").next())
            .unwrap_or_default();
        assert!(
            note.contains(&format!("{what} needs JavaScript")),
            "{what}: {note:?}"
        );
    }
}
