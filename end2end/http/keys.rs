//! The key and plan management API over real HTTP (session-authenticated).

use serde_json::{Value, json};

use crate::support::{Browser, TestApp, spawn_app};

async fn signed_in(app: &TestApp, email: &str) -> Browser {
    let b = app.browser();
    app.register(&b, email, "Key Owner").await;
    b
}

async fn create(app: &TestApp, b: &Browser, body: Value) -> (reqwest::StatusCode, Value) {
    let response = b
        .client
        .post(app.url("/api/v1/keys"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

fn is_key_format(secret: &str) -> bool {
    let rest = secret
        .strip_prefix("tg_live_")
        .or_else(|| secret.strip_prefix("tg_test_"));
    rest.is_some_and(|r| r.len() >= 49 && r.bytes().all(|b| b.is_ascii_alphanumeric()))
}

#[tokio::test]
async fn a_created_key_is_shown_once_and_stored_only_as_a_keyed_hash() {
    let app = spawn_app().await;
    let b = signed_in(&app, "k1@example.com").await;
    let (status, body) = create(
        &app,
        &b,
        json!({
            "name": "ci runner", "env": "test", "scopes": ["chat", "keys:read"],
            "ip_allowlist": ["10.0.0.0/8", "2001:db8::1"], "referrer_domains": ["app.example.com"],
            "usage_cap": 1, "ttl_seconds": 3600
        }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let secret = body["secret"].as_str().unwrap().to_owned();
    assert!(
        is_key_format(&secret) && secret.starts_with("tg_test_"),
        "{secret}"
    );
    let key = &body["key"];
    assert_eq!(key["name"], "ci runner");
    assert_eq!(key["scopes"], json!(["chat", "keys:read"]));
    assert_eq!(key["usage_cap"], 1);
    assert_eq!(key["status"], "active");
    assert!(key["display"].as_str().unwrap().starts_with(&secret[..12]));
    assert!(
        key["display"]
            .as_str()
            .unwrap()
            .ends_with(&secret[secret.len() - 4..])
    );
    assert!(key.get("secret").is_none());

    // Listing and reading never show the secret again.
    let list = b
        .client
        .get(app.url("/api/v1/keys"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!list.contains(&secret) && list.contains("ci runner"));

    // The database holds a 32-byte hash, and the secret is nowhere in the file.
    let db = app.db().await;
    let hash: Vec<u8> = sqlx::query_scalar("SELECT secret_hash FROM api_keys")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(hash.len(), 32);
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&db)
        .await
        .unwrap();
    let file = std::fs::read(&app.db_path).unwrap();
    let needle = &secret.as_bytes()[8..40];
    assert!(
        !file.windows(needle.len()).any(|w| w == needle),
        "secret found in the database file"
    );
    assert!(app.audit_actions().await.contains(&"key.create".to_owned()));
}

#[tokio::test]
async fn invalid_requests_name_each_bad_field() {
    let app = spawn_app().await;
    let b = signed_in(&app, "k2@example.com").await;
    let (status, body) = create(
        &app,
        &b,
        json!({ "name": "", "env": "prod", "scopes": ["root"], "ip_allowlist": ["999.1.1.1"], "usage_cap": 0 }),
    )
    .await;
    assert_eq!(status, 422);
    let fields = body["error"]["fields"].as_object().unwrap();
    for field in ["name", "env", "scopes", "ip_allowlist", "usage_cap"] {
        assert!(fields.contains_key(field), "{field}: {body}");
    }
    assert_eq!(body["error"]["code"], "invalid_fields");

    let response = b
        .client
        .post(app.url("/api/v1/keys"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_json");

    let (status, body) = create(&app, &b, json!({ "name": "x", "surprise": true })).await;
    assert_eq!(status, 400, "unknown fields are refused: {body}");
}

#[tokio::test]
async fn creation_is_limited_by_the_plan_and_by_five_a_day() {
    let app = spawn_app().await;
    let b = signed_in(&app, "k3@example.com").await;
    // The default plan allows 2 active keys.
    let mut ids = Vec::new();
    for n in 0..2 {
        let (status, body) = create(&app, &b, json!({ "name": format!("k{n}") })).await;
        assert_eq!(status, 201);
        ids.push(body["key"]["id"].as_i64().unwrap());
    }
    let (status, body) = create(&app, &b, json!({ "name": "third" })).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], "active_key_limit");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("allows 2 active keys")
    );

    // Revoking frees a slot, but only five keys may be created in 24 hours.
    for _ in 0..3 {
        let id = ids.remove(0);
        let response = b
            .client
            .delete(app.url(&format!("/api/v1/keys/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let (status, body) = create(&app, &b, json!({ "name": "more" })).await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["key"]["id"].as_i64().unwrap());
    }
    let id = ids.remove(0);
    b.client
        .delete(app.url(&format!("/api/v1/keys/{id}")))
        .send()
        .await
        .unwrap();
    let (status, body) = create(&app, &b, json!({ "name": "sixth" })).await;
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], "key_creation_daily_limit");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("can be created after 20"),
        "{body}"
    );
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys")
        .fetch_one(&app.db().await)
        .await
        .unwrap();
    assert_eq!(count, 5);
}

#[tokio::test]
async fn other_peoples_keys_are_404_like_missing_ones() {
    let app = spawn_app().await;
    let owner = signed_in(&app, "owner@example.com").await;
    let other = signed_in(&app, "other@example.com").await;
    let (_, body) = create(&app, &owner, json!({ "name": "mine" })).await;
    let id = body["key"]["id"].as_i64().unwrap();
    for path in [format!("/api/v1/keys/{id}"), "/api/v1/keys/9999".to_owned()] {
        assert_eq!(
            other
                .client
                .get(app.url(&path))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
        assert_eq!(
            other
                .client
                .delete(app.url(&path))
                .send()
                .await
                .unwrap()
                .status(),
            404
        );
        let rotate = other
            .client
            .post(app.url(&format!("{path}/rotate")))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(rotate.status(), 404);
    }
    let mine = owner
        .client
        .get(app.url(&format!("/api/v1/keys/{id}")))
        .send()
        .await
        .unwrap();
    let mine: Value = mine.json().await.unwrap();
    assert_eq!(
        mine["status"], "active",
        "the other user could not revoke it"
    );
}

#[tokio::test]
async fn rotation_issues_a_new_secret_with_an_optional_grace_period() {
    let app = spawn_app().await;
    let b = signed_in(&app, "rotate@example.com").await;
    let (_, body) = create(
        &app,
        &b,
        json!({ "name": "svc", "scopes": ["chat", "keys:read"] }),
    )
    .await;
    let (id, old_secret) = (
        body["key"]["id"].as_i64().unwrap(),
        body["secret"].as_str().unwrap().to_owned(),
    );

    let response = b
        .client
        .post(app.url(&format!("/api/v1/keys/{id}/rotate")))
        .json(&json!({ "grace_seconds": 90000 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 422, "grace is capped at 24 hours");

    let response = b
        .client
        .post(app.url(&format!("/api/v1/keys/{id}/rotate")))
        .json(&json!({ "grace_seconds": 3600 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let rotated: Value = response.json().await.unwrap();
    let new_secret = rotated["secret"].as_str().unwrap();
    assert!(is_key_format(new_secret) && new_secret != old_secret);
    assert_eq!(rotated["key"]["id"], id);
    assert_eq!(
        rotated["key"]["scopes"],
        json!(["chat", "keys:read"]),
        "settings are kept"
    );

    let (grace, until): (Option<Vec<u8>>, Option<String>) =
        sqlx::query_as("SELECT grace_hash, grace_until FROM api_keys WHERE id = ?")
            .bind(id)
            .fetch_one(&app.db().await)
            .await
            .unwrap();
    assert_eq!(
        grace.map(|g| g.len()),
        Some(32),
        "the old secret's hash stays for the grace period"
    );
    assert!(until.is_some());
    let actions = app.audit_actions().await;
    assert!(actions.contains(&"key.rotate".to_owned()));
}

#[tokio::test]
async fn plans_are_listed_and_switched_with_the_key_count_checked() {
    let app = spawn_app().await;
    let b = signed_in(&app, "plans@example.com").await;
    let plans: Value = b
        .client
        .get(app.url("/api/v1/plans"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let data = plans["data"].as_array().unwrap();
    let per_day: Vec<i64> = data
        .iter()
        .map(|p| p["requests_per_day"].as_i64().unwrap())
        .collect();
    assert_eq!(per_day, [10, 20, 30]);
    assert_eq!(
        data[0]["current"], true,
        "new accounts start on the 10-a-day plan"
    );

    let switch = |plan: &str| {
        b.client
            .put(app.url("/api/v1/me/plan"))
            .json(&json!({ "plan": plan }))
            .send()
    };
    let response = switch("pro").await.unwrap();
    assert_eq!(response.status(), 200);
    let me: Value = response.json().await.unwrap();
    assert_eq!(me["plan"]["id"], "pro");
    let me: Value = b
        .client
        .get(app.url("/api/v1/me"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["plan"]["requests_per_day"], 30);

    for n in 0..3 {
        create(&app, &b, json!({ "name": format!("k{n}") })).await;
    }
    let response = switch("starter").await.unwrap();
    assert_eq!(
        response.status(),
        409,
        "3 active keys do not fit a 2-key plan"
    );
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Revoke keys first")
    );
    assert_eq!(switch("platinum").await.unwrap().status(), 422);
    assert!(
        app.audit_actions()
            .await
            .contains(&"plan.change".to_owned())
    );
}

#[tokio::test]
async fn the_management_api_needs_a_same_origin_session() {
    let app = spawn_app().await;
    let anonymous = reqwest::Client::new();
    let response = anonymous.get(app.url("/api/v1/keys")).send().await.unwrap();
    assert_eq!(response.status(), 401);
    let b = signed_in(&app, "csrf@example.com").await;
    let cookie = b.session_cookie().unwrap();
    let response = anonymous
        .post(app.url("/api/v1/keys"))
        .header("cookie", cookie)
        .header("origin", "https://evil.example")
        .json(&json!({ "name": "stolen" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
}
