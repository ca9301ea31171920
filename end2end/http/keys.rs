//! The key and plan management API over real HTTP (session-authenticated).

use serde_json::{Value, json};

use crate::{
    gateway::assert_refused,
    support::{Browser, TestApp, spawn_app, status_and_json},
};

async fn signed_in(app: &TestApp, email: &str) -> Browser {
    let b = app.browser();
    app.register(&b, email, "Key Owner").await;
    b
}

/// `POST /api/v1/keys` with `body`, for the whole answer.
async fn post_key(app: &TestApp, b: &Browser, body: Value) -> reqwest::Response {
    b.client
        .post(app.url("/api/v1/keys"))
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn create(app: &TestApp, b: &Browser, body: Value) -> (reqwest::StatusCode, Value) {
    let response = post_key(app, b, body).await;
    (response.status(), response.json().await.unwrap())
}

/// Moves the signed-in user to the Pro plan, for room for more keys than the
/// default plan's two.
async fn switch_to_pro(app: &TestApp, b: &Browser) {
    let switched = b
        .client
        .put(app.url("/api/v1/me/plan"))
        .json(&json!({ "plan": "pro" }))
        .send()
        .await
        .unwrap();
    assert_eq!(switched.status(), 200);
}

/// The keys `GET /api/v1/keys` lists for the signed-in user.
async fn keys_of(app: &TestApp, b: &Browser) -> Vec<Value> {
    let listed: Value = app.get_json(b, "/api/v1/keys").await;
    listed["data"].as_array().unwrap().clone()
}

fn is_key_format(secret: &str) -> bool {
    let rest = secret
        .strip_prefix("tg_live_")
        .or_else(|| secret.strip_prefix("tg_test_"));
    rest.is_some_and(|r| r.len() == 50 && r.bytes().all(|b| b.is_ascii_alphanumeric()))
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
        json!({ "name": "", "env": "prod", "scopes": ["root"], "ip_allowlist": ["999.1.1.1", "10.0.0.0/8", "office"], "usage_cap": 0 }),
    )
    .await;
    assert_eq!(status, 422);
    let fields = body["error"]["fields"].as_object().unwrap();
    for field in ["name", "env", "scopes", "ip_allowlist", "usage_cap"] {
        assert!(fields.contains_key(field), "{field}: {body}");
    }
    // Every entry refused is named, not only the first.
    assert_eq!(
        fields["ip_allowlist"], r#""999.1.1.1" and "office" are not IP addresses or CIDR ranges."#,
        "{body}"
    );
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

    // A model the table does not have could never be called: named, refused.
    let (status, body) = create(
        &app,
        &b,
        json!({ "name": "x", "allowed_models": ["nonexistent", "demo"] }),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let message = body["error"]["fields"]["allowed_models"].as_str().unwrap();
    assert!(message.contains("no model \"nonexistent\""), "{message}");
    let (status, body) = create(&app, &b, json!({ "name": "x", "allowed_models": ["demo"] })).await;
    assert_eq!(status, 201, "{body}");
}

#[tokio::test]
async fn creation_is_limited_by_the_plan_and_by_five_a_day() {
    let app = spawn_app().await;
    let b = signed_in(&app, "k3@example.com").await;
    // The default plan allows 2 active keys; registration made the first.
    let primary: Value = app.get_json(&b, "/api/v1/keys").await;
    assert_eq!(primary["data"].as_array().unwrap().len(), 1);
    let mut ids = vec![primary["data"][0]["id"].as_i64().unwrap()];
    for n in 0..1 {
        let (status, body) = create(&app, &b, json!({ "name": format!("k{n}") })).await;
        assert_eq!(status, 201);
        ids.push(body["key"]["id"].as_i64().unwrap());
    }
    let (status, body) = create(&app, &b, json!({ "name": "third" })).await;
    assert_eq!(status, 409);
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
    let response = post_key(&app, &b, json!({ "name": "sixth" })).await;
    assert_eq!(response.status(), 429);
    // The first of the five leaves the 24 hours in just under a day.
    let wait: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((86_000..=86_401).contains(&wait), "{wait}");
    let body: Value = response.json().await.unwrap();
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
    // The key shows when the old secret stops, and both secrets call models
    // meanwhile; only the new one manages keys, so whoever the rotation
    // shuts out cannot rotate the key again or make keys of their own.
    assert_eq!(rotated["key"]["grace_until"], json!(until), "{rotated}");
    let status_of = |path: &str, secret: String| {
        let url = app.url(path);
        async move {
            let response = reqwest::Client::new()
                .get(url)
                .bearer_auth(secret)
                .send()
                .await
                .unwrap();
            response.status().as_u16()
        }
    };
    let lists_keys = |secret: String| status_of("/api/v1/keys", secret);
    let lists_models = |secret: String| status_of("/v1/models", secret);
    assert_eq!(lists_models(old_secret.clone()).await, 200);
    assert_eq!(lists_models(new_secret.to_owned()).await, 200);
    assert_eq!(lists_keys(new_secret.to_owned()).await, 200);
    let response = reqwest::Client::new()
        .get(app.url("/api/v1/keys"))
        .bearer_auth(&old_secret)
        .send()
        .await
        .unwrap();
    assert_refused(response, 403, "previous_secret").await;
    let response = reqwest::Client::new()
        .post(app.url(&format!("/api/v1/keys/{id}/rotate")))
        .bearer_auth(&old_secret)
        .json(&json!({ "grace_seconds": 60 }))
        .send()
        .await
        .unwrap();
    assert_refused(response, 403, "previous_secret").await;

    // Ending the grace period early: another user's key is not found, the
    // owner's old secret stops at once, the new one works on.
    let end = app.url(&format!("/api/v1/keys/{id}/end-grace"));
    let stranger = signed_in(&app, "stranger@example.com").await;
    let response = stranger.client.post(&end).send().await.unwrap();
    assert_refused(response, 404, "key_not_found").await;
    let response = b.client.post(&end).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let ended: Value = response.json().await.unwrap();
    assert_eq!(ended["grace_until"], Value::Null, "{ended}");
    assert_eq!(ended["status"], "active");
    assert_eq!(lists_models(old_secret.clone()).await, 401);
    assert_eq!(lists_keys(old_secret).await, 401);
    assert_eq!(lists_keys(new_secret.to_owned()).await, 200);
    assert!(
        app.audit_actions()
            .await
            .contains(&"key.end_grace".to_owned())
    );
    // Again, with none running: the key as it is, and no second audit row.
    let response = b.client.post(&end).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let ends = app
        .db_number("SELECT COUNT(*) FROM audit_events WHERE action = 'key.end_grace'")
        .await;
    assert_eq!(ends, 1);

    // A body of JSON `null`, which the documents allow, is a rotation
    // without grace, as no body is.
    let response = b
        .client
        .post(app.url(&format!("/api/v1/keys/{id}/rotate")))
        .header("content-type", "application/json")
        .body("null")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    let (grace,): (Option<Vec<u8>>,) =
        sqlx::query_as("SELECT grace_hash FROM api_keys WHERE id = ?")
            .bind(id)
            .fetch_one(&app.db().await)
            .await
            .unwrap();
    assert_eq!(grace, None);
}

/// Revoking several keys at once (the keys page's selection) writes one
/// audit event for each key revoked, targeting it, and none for an id that is
/// another user's or was revoked already.
#[tokio::test]
async fn a_bulk_revocation_audits_each_key_it_revoked() {
    let app = spawn_app().await;
    let b = signed_in(&app, "bulk@example.com").await;
    let other = signed_in(&app, "bystander@example.com").await;
    let (_, one) = create(&app, &b, json!({ "name": "one" })).await;
    let (_, theirs) = create(&app, &other, json!({ "name": "theirs" })).await;
    let ids: Vec<i64> = [&one, &theirs]
        .iter()
        .map(|k| k["key"]["id"].as_i64().unwrap())
        .collect();
    // The registration's primary key is the user's other one.
    let primary = keys_of(&app, &b)
        .await
        .iter()
        .map(|k| k["id"].as_i64().unwrap())
        .find(|id| *id != ids[0])
        .unwrap();
    let revoke = |ids: Vec<i64>| {
        b.client
            .post(app.url("/api/keys/revoke"))
            .header("accept", "application/json")
            .json(&json!({ "ids": ids }))
            .send()
    };
    let response = revoke(vec![ids[0], ids[1], primary]).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap(), json!(2));
    // Again: nothing left to revoke, nothing audited.
    let response = revoke(vec![ids[0]]).await.unwrap();
    assert_eq!(response.json::<Value>().await.unwrap(), json!(0));
    // Rotating a key revoked meanwhile (another tab) says so.
    let response = b
        .client
        .post(app.url("/api/keys/rotate"))
        .header("accept", "application/json")
        .json(&json!({ "ids": [ids[0]], "grace_seconds": 0 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let error = response.text().await.unwrap();
    assert!(error.contains("revoked meanwhile"), "{error}");
    // A list longer than any plan's keys is refused whole, before any write.
    let response = revoke((0..501).collect()).await.unwrap();
    assert_ne!(response.status(), 200);
    let error = response.text().await.unwrap();
    assert!(error.contains("at most 500 keys"), "{error}");

    let targets: Vec<String> = sqlx::query_scalar(
        "SELECT target FROM audit_events WHERE action = 'key.revoke' ORDER BY id",
    )
    .fetch_all(&app.db().await)
    .await
    .unwrap();
    assert_eq!(
        targets,
        [format!("key:{}", ids[0]), format!("key:{primary}")]
    );
}

/// An id that is not a number and a rotation body that does not parse get
/// the API's JSON error, not axum's plain text; a body in another format is
/// refused, not taken as no body (which would end the old secret at once).
#[tokio::test]
async fn bad_ids_and_bodies_answer_the_apis_json_error() {
    let app = spawn_app().await;
    let b = signed_in(&app, "shapes@example.com").await;
    let (_, body) = create(&app, &b, json!({ "name": "svc" })).await;
    let id = body["key"]["id"].as_i64().unwrap();

    let response = b
        .client
        .get(app.url("/api/v1/keys/abc"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_path", "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");

    // A method a route does not take, and a path under /api/v1 that is no
    // route, answer JSON too, not an empty 405 or the dashboard's 404 page.
    let response = b
        .client
        .delete(app.url("/api/v1/keys"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["allow"], "GET,HEAD,POST");
    assert_refused(response, 405, "method_not_allowed").await;
    for path in ["/api/v1/key", "/api/v1/admin/users/1/nothing"] {
        let response = b.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.headers()["content-type"], "application/json");
        assert_refused(response, 404, "unknown_url").await;
    }

    let rotate = app.url(&format!("/api/v1/keys/{id}/rotate"));
    let bad_bodies = [
        ("application/json", r#"{"grace_seconds":"1h"}"#),
        ("application/x-www-form-urlencoded", "grace_seconds=3600"),
        ("text/plain", "{"),
    ];
    for (content_type, text) in bad_bodies {
        let response = b
            .client
            .post(&rotate)
            .header("content-type", content_type)
            .body(text)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{text}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_json", "{body}");
    }
    let grace_hash: i64 = app
        .db_number("SELECT COUNT(*) FROM api_keys WHERE grace_hash IS NOT NULL")
        .await;
    assert_eq!(grace_hash, 0, "no refused body rotated the key");

    // JSON without its content type still counts, and no body at all is none.
    let response = b
        .client
        .post(&rotate)
        .body(r#"{"grace_seconds":60}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let grace_hash: i64 = app
        .db_number("SELECT COUNT(*) FROM api_keys WHERE grace_hash IS NOT NULL")
        .await;
    assert_eq!(grace_hash, 1, "the grace period asked for was given");
    let response = b.client.post(&rotate).send().await.unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn plans_are_listed_and_switched_with_the_key_count_checked() {
    let app = spawn_app().await;
    let b = signed_in(&app, "plans@example.com").await;
    let plans: Value = app.get_json(&b, "/api/v1/plans").await;
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
    let me: Value = app.get_json(&b, "/api/v1/me").await;
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
    // A script is told a key works here too, not only a session.
    let refusal: serde_json::Value = response.json().await.unwrap();
    let message = refusal["error"]["message"].as_str().unwrap();
    assert!(message.contains("or send an API key"), "{message}");
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

/// Issues a key with `scopes` for a fresh user and returns (browser, key id, secret).
async fn key_with(app: &TestApp, email: &str, scopes: Value) -> (Browser, i64, String) {
    let b = signed_in(app, email).await;
    let (status, body) = create(app, &b, json!({ "name": "script", "scopes": scopes })).await;
    assert_eq!(status, 201, "{body}");
    (
        b,
        body["key"]["id"].as_i64().unwrap(),
        body["secret"].as_str().unwrap().to_owned(),
    )
}

async fn with_key(
    app: &TestApp,
    secret: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, app.url(path))
        .bearer_auth(secret);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn keys_authenticate_the_api_by_scope() {
    let app = spawn_app().await;
    let (_, _, reader) = key_with(&app, "reader@example.com", json!(["keys:read"])).await;
    let (status, body) = with_key(&app, &reader, reqwest::Method::GET, "/api/v1/keys", None).await;
    assert_eq!(status, 200, "{body}");
    // The primary key from registration and this one.
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    let (status, body) = with_key(&app, &reader, reqwest::Method::GET, "/api/v1/me", None).await;
    assert_eq!(
        (status, body["email"].as_str()),
        (200, Some("reader@example.com"))
    );
    let (status, body) = with_key(
        &app,
        &reader,
        reqwest::Method::POST,
        "/api/v1/keys",
        Some(json!({"name": "x"})),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(body["error"]["code"], "missing_scope");

    // x-api-key works as well as Authorization: Bearer.
    let response = reqwest::Client::new()
        .get(app.url("/api/v1/keys"))
        .header("x-api-key", &reader)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let (_, _, chat_only) = key_with(&app, "chatter@example.com", json!(["chat"])).await;
    let (status, _) = with_key(&app, &chat_only, reqwest::Method::GET, "/api/v1/keys", None).await;
    assert_eq!(status, 403);

    let last_used: Option<String> =
        sqlx::query_scalar("SELECT last_used_at FROM api_keys WHERE scopes LIKE '%keys:read%'")
            .fetch_one(&app.db().await)
            .await
            .unwrap();
    assert!(last_used.is_some());
}

/// A key's IP allowlist and referrer rule hold on the management API as on
/// the model API: a leaked key cannot be used from elsewhere to make an
/// unrestricted one.
#[tokio::test]
async fn a_keys_ip_allowlist_and_referrer_rule_hold_on_the_management_api() {
    let app = spawn_app().await;
    let b = signed_in(&app, "fenced@example.com").await;
    switch_to_pro(&app, &b).await;
    let mut secrets = Vec::new();
    for fence in [
        json!({ "ip_allowlist": ["10.0.0.0/8"] }),
        json!({ "referrer_domains": ["app.example.com"] }),
    ] {
        let mut body = json!({ "name": "fenced", "scopes": ["keys:write"] });
        body.as_object_mut()
            .unwrap()
            .extend(fence.as_object().unwrap().clone());
        let (status, created) = create(&app, &b, body).await;
        assert_eq!(status, 201, "{created}");
        secrets.push(created["secret"].as_str().unwrap().to_owned());
    }
    let new_key = Some(json!({ "name": "free", "scopes": ["keys:write"] }));

    // The tests call from 127.0.0.1.
    let (status, body) = with_key(
        &app,
        &secrets[0],
        reqwest::Method::POST,
        "/api/v1/keys",
        new_key.clone(),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "ip_not_allowed");

    let (status, body) = with_key(
        &app,
        &secrets[1],
        reqwest::Method::GET,
        "/api/v1/keys",
        None,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "referrer_not_allowed");
    let from_the_site = reqwest::Client::new()
        .post(app.url("/api/v1/keys"))
        .bearer_auth(&secrets[1])
        .header("origin", "https://app.example.com")
        .json(&new_key)
        .send()
        .await
        .unwrap();
    assert_eq!(from_the_site.status(), 201);
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM api_keys WHERE name = 'free'")
        .fetch_one(&app.db().await)
        .await
        .unwrap();
    assert_eq!(count, 1, "only the call from the allowed site made a key");
}

#[tokio::test]
async fn a_key_cannot_create_or_rotate_a_key_with_scopes_it_lacks() {
    let app = spawn_app().await;
    let (b, _, writer) = key_with(&app, "writer@example.com", json!(["keys:write"])).await;
    switch_to_pro(&app, &b).await;
    let (status, body) = with_key(
        &app,
        &writer,
        reqwest::Method::POST,
        "/api/v1/keys",
        Some(json!({ "name": "child", "scopes": ["chat"] })),
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        body["error"]["fields"]["scopes"]
            .as_str()
            .unwrap()
            .contains("does not have itself")
    );
    let (status, body) = with_key(
        &app,
        &writer,
        reqwest::Method::POST,
        "/api/v1/keys",
        Some(json!({ "name": "child", "scopes": ["keys:write"] })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let child = body["key"]["id"].as_i64().unwrap();

    // Nor rotate one: the new secret would be a key with the scope. The key
    // made at registration has `chat`, which this key lacks.
    let chat_key = keys_of(&app, &b)
        .await
        .into_iter()
        .find(|k| k["scopes"] == json!(["chat"]))
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let rotate = |id: i64| {
        let app = &app;
        let writer = &writer;
        async move {
            let path = format!("/api/v1/keys/{id}/rotate");
            let body = Some(json!({ "grace_seconds": 0 }));
            with_key(app, writer, reqwest::Method::POST, &path, body).await
        }
    };
    let (status, body) = rotate(chat_key).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "scope_not_held");
    let rotations = app
        .db_number("SELECT COUNT(*) FROM audit_events WHERE action = 'key.rotate'")
        .await;
    assert_eq!(rotations, 0, "nothing was rotated");
    let (status, body) = rotate(child).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["secret"].is_string());
}

/// A key gives the keys it makes, changes or rotates no more than it has:
/// what a new key leaves unset is taken from its maker, what goes beyond is
/// refused field by field, and a key cannot lift its own restrictions.
#[tokio::test]
async fn a_key_gives_no_more_than_its_own_restrictions() {
    let app = spawn_app().await;
    let b = signed_in(&app, "bounded@example.com").await;
    switch_to_pro(&app, &b).await;
    let (status, made) = create(
        &app,
        &b,
        json!({
            "name": "fenced writer", "scopes": ["chat", "keys:write"],
            "allowed_models": ["demo"], "ip_allowlist": ["127.0.0.0/8"],
            "referrer_domains": ["*.example.com"], "ttl_seconds": 3600,
        }),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let writer = made["secret"].as_str().unwrap().to_owned();
    let writer_id = made["key"]["id"].as_i64().unwrap();
    let expires = made["key"]["expires_at"].clone();
    let call_with = |key: &String, method: reqwest::Method, path: String, body: Value| {
        let (app, key) = (&app, key.clone());
        async move {
            let response = reqwest::Client::new()
                .request(method, app.url(&path))
                .bearer_auth(key)
                .header("origin", "https://app.example.com")
                .json(&body)
                .send()
                .await
                .unwrap();
            status_and_json(response).await
        }
    };
    let call = |method, path, body| call_with(&writer, method, path, body);

    // Unset restrictions are the maker's.
    let (status, child) = call(
        reqwest::Method::POST,
        "/api/v1/keys".into(),
        json!({ "name": "child", "scopes": ["chat"] }),
    )
    .await;
    assert_eq!(status, 201, "{child}");
    let child = &child["key"];
    assert_eq!(child["allowed_models"], json!(["demo"]));
    assert_eq!(child["ip_allowlist"], json!(["127.0.0.0/8"]));
    assert_eq!(child["referrer_domains"], json!(["*.example.com"]));
    assert_eq!(child["expires_at"], expires);
    let child_id = child["id"].as_i64().unwrap();

    // Narrower is allowed; wider is refused, each field named.
    let (status, body) = call(
        reqwest::Method::POST,
        "/api/v1/keys".into(),
        json!({
            "name": "narrow", "ip_allowlist": ["127.0.0.1"], "usage_cap": 1,
            "referrer_domains": ["app.example.com"], "ttl_seconds": 60,
        }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = call(
        reqwest::Method::POST,
        "/api/v1/keys".into(),
        json!({
            "name": "wide", "ip_allowlist": ["0.0.0.0/0"],
            "referrer_domains": ["example.org"], "ttl_seconds": 7200,
        }),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let fields = body["error"]["fields"].as_object().unwrap();
    let named: Vec<&str> = fields.keys().map(String::as_str).collect();
    assert_eq!(
        named,
        ["expires_at", "ip_allowlist", "referrer_domains"],
        "{body}"
    );
    assert!(
        fields["ip_allowlist"]
            .as_str()
            .unwrap()
            .contains("127.0.0.0/8"),
        "{body}"
    );

    // It cannot lift its own restrictions, nor change or rotate a key that
    // has fewer; narrowing its own is fine.
    let own = format!("/api/v1/keys/{writer_id}");
    for lift in [
        json!({ "ip_allowlist": [] }),
        json!({ "allowed_models": [] }),
        json!({ "expires_at": "" }),
    ] {
        let (status, body) = call(reqwest::Method::PATCH, own.clone(), lift.clone()).await;
        assert_eq!(status, 422, "{lift}: {body}");
    }
    let (status, body) = call(
        reqwest::Method::PATCH,
        own.clone(),
        json!({ "ip_allowlist": ["127.0.0.1"] }),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let unfenced = keys_of(&app, &b)
        .await
        .into_iter()
        .find(|k| k["ip_allowlist"].is_null())
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let (status, body) = call(
        reqwest::Method::PATCH,
        format!("/api/v1/keys/{unfenced}"),
        json!({ "name": "renamed" }),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    let (status, body) = call(
        reqwest::Method::POST,
        format!("/api/v1/keys/{unfenced}/rotate"),
        json!({}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "restriction_not_held");
    let rotations = app
        .db_number("SELECT COUNT(*) FROM audit_events WHERE action = 'key.rotate'")
        .await;
    assert_eq!(rotations, 0, "nothing was rotated");

    // A key with a usage cap makes no keys and raises no cap: each would be
    // uses beside its own. It may lower one.
    let (status, capped) = create(
        &app,
        &b,
        json!({ "name": "capped writer", "scopes": ["chat", "keys:write"], "usage_cap": 5 }),
    )
    .await;
    assert_eq!(status, 201, "{capped}");
    let capped = capped["secret"].as_str().unwrap().to_owned();
    let (status, body) = call_with(
        &capped,
        reqwest::Method::POST,
        "/api/v1/keys".into(),
        json!({ "name": "grandchild", "usage_cap": 1 }),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["fields"]["usage_cap"].is_string(), "{body}");
    let child_path = format!("/api/v1/keys/{child_id}");
    let response = b
        .client
        .patch(app.url(&child_path))
        .json(&json!({ "usage_cap": 3 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "signed in, the owner may");
    for (cap, status) in [(4, 422), (2, 200)] {
        let (got, body) = call_with(
            &capped,
            reqwest::Method::PATCH,
            child_path.clone(),
            json!({ "usage_cap": cap }),
        )
        .await;
        assert_eq!(got, status, "cap {cap}: {body}");
    }
}

#[tokio::test]
async fn mistyped_unknown_revoked_and_expired_keys_are_refused() {
    let app = &spawn_app().await;
    let (b, id, secret) = key_with(app, "refused@example.com", json!(["keys:read"])).await;
    let get = |key: String| async move {
        with_key(app, &key, reqwest::Method::GET, "/api/v1/keys", None).await
    };

    let (status, body) = get("sk-not-ours".into()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("invalid_api_key"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("malformed")
    );

    let mut typo = secret.clone().into_bytes();
    let i = typo.len() / 2;
    typo[i] = if typo[i] == b'a' { b'b' } else { b'a' };
    let (status, body) = get(String::from_utf8(typo).unwrap()).await;
    assert_eq!(status, 401);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("checksum"),
        "{body}"
    );

    let (status, body) = get("Bearer".into()).await;
    assert_eq!(status, 401, "{body}");

    sqlx::query("UPDATE api_keys SET expires_at = '2000-01-01T00:00:00.000Z' WHERE id = ?")
        .bind(id)
        .execute(&app.db().await)
        .await
        .unwrap();
    let (status, body) = get(secret.clone()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("expired_api_key"))
    );
    sqlx::query("UPDATE api_keys SET expires_at = NULL WHERE id = ?")
        .bind(id)
        .execute(&app.db().await)
        .await
        .unwrap();
    assert_eq!(get(secret.clone()).await.0, 200);

    b.client
        .delete(app.url(&format!("/api/v1/keys/{id}")))
        .send()
        .await
        .unwrap();
    let (status, body) = get(secret.clone()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("revoked_api_key")),
        "revocation applies to the next request"
    );
}

#[tokio::test]
async fn a_disabled_owners_keys_stop_working() {
    let app = crate::support::spawn_app_with(&[
        ("TOLLGATE_ADMIN_EMAIL", "root@example.com"),
        ("TOLLGATE_ADMIN_PASSWORD", "admin-passphrase-for-tests"),
    ])
    .await;
    let (b, _, secret) = key_with(&app, "owner2@example.com", json!(["keys:read"])).await;
    let user_id = app.me(&b).await["id"].as_i64().unwrap();
    let admin = app.browser();
    app.login(&admin, "root@example.com", "admin-passphrase-for-tests")
        .await;
    admin
        .client
        .post(app.url(&format!("/api/v1/admin/users/{user_id}/disable")))
        .send()
        .await
        .unwrap();
    let (status, body) = with_key(&app, &secret, reqwest::Method::GET, "/api/v1/keys", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("account_disabled"))
    );
}

#[tokio::test]
async fn rotation_grace_keeps_the_old_secret_working_until_it_ends() {
    let app = &spawn_app().await;
    let (b, id, old) = key_with(app, "grace@example.com", json!(["chat", "keys:read"])).await;
    let rotate = |grace: i64| {
        b.client
            .post(app.url(&format!("/api/v1/keys/{id}/rotate")))
            .json(&json!({ "grace_seconds": grace }))
            .send()
    };
    let rotated: Value = rotate(3600).await.unwrap().json().await.unwrap();
    let new = rotated["secret"].as_str().unwrap().to_owned();
    let call = |key: String, path: &'static str| async move {
        with_key(app, &key, reqwest::Method::GET, path, None)
            .await
            .0
    };
    let models = |key: String| call(key, "/v1/models");
    let keys = |key: String| call(key, "/api/v1/keys");
    assert_eq!(
        models(old.clone()).await,
        200,
        "the old secret calls models during the grace period"
    );
    assert_eq!(keys(old.clone()).await, 403, "but manages no keys");
    assert_eq!(
        (models(new.clone()).await, keys(new.clone()).await),
        (200, 200)
    );

    // End the grace period: the old secret stops.
    sqlx::query("UPDATE api_keys SET grace_until = '2000-01-01T00:00:00.000Z' WHERE id = ?")
        .bind(id)
        .execute(&app.db().await)
        .await
        .unwrap();
    assert_eq!(models(old).await, 401);

    // Without grace, the previous secret stops at once.
    let rotated: Value = rotate(0).await.unwrap().json().await.unwrap();
    let newest = rotated["secret"].as_str().unwrap().to_owned();
    assert_eq!(models(new).await, 401);
    assert_eq!(keys(newest).await, 200);
}

#[tokio::test]
async fn key_settings_can_be_changed_and_are_validated() {
    let app = spawn_app().await;
    let (b, id, _) = key_with(&app, "patch@example.com", json!(["chat"])).await;
    let patch = |body: Value| {
        b.client
            .patch(app.url(&format!("/api/v1/keys/{id}")))
            .json(&body)
            .send()
    };
    let response =
        patch(json!({ "name": "renamed", "ip_allowlist": ["192.0.2.0/24"], "usage_cap": 10 }))
            .await
            .unwrap();
    assert_eq!(response.status(), 200);
    let key: Value = response.json().await.unwrap();
    assert_eq!(key["name"], "renamed");
    assert_eq!(key["ip_allowlist"], json!(["192.0.2.0/24"]));
    assert_eq!(key["usage_cap"], 10);
    assert_eq!(key["scopes"], json!(["chat"]), "untouched settings stay");

    let response = patch(json!({ "ip_allowlist": ["not-an-ip"] }))
        .await
        .unwrap();
    assert_eq!(response.status(), 422);
    let response = patch(json!({ "ip_allowlist": [] })).await.unwrap();
    let key: Value = response.json().await.unwrap();
    assert_eq!(
        key["ip_allowlist"],
        Value::Null,
        "an empty list removes the restriction"
    );
    assert!(app.audit_actions().await.contains(&"key.update".to_owned()));
}

/// Edits sent at once each change their own fields: none is lost to another
/// that read the key before it was written.
#[tokio::test]
async fn edits_sent_at_once_all_stay() {
    let app = spawn_app().await;
    let (b, id, _) = key_with(&app, "edits@example.com", json!(["chat"])).await;
    let edits = [
        json!({ "name": "renamed" }),
        json!({ "allowed_models": ["demo"] }),
        json!({ "ip_allowlist": ["192.0.2.0/24"] }),
        json!({ "referrer_domains": ["app.example.com"] }),
        json!({ "usage_cap": 50 }),
        json!({ "expires_at": "2099-12-31" }),
    ];
    let sent = edits.iter().map(|body| {
        b.client
            .patch(app.url(&format!("/api/v1/keys/{id}")))
            .json(body)
            .send()
    });
    for response in futures::future::join_all(sent).await {
        assert_eq!(response.unwrap().status(), 200);
    }
    let key: Value = app.get_json(&b, &format!("/api/v1/keys/{id}")).await;
    assert_eq!(key["name"], "renamed", "{key}");
    assert_eq!(key["allowed_models"], json!(["demo"]), "{key}");
    assert_eq!(key["ip_allowlist"], json!(["192.0.2.0/24"]), "{key}");
    assert_eq!(key["referrer_domains"], json!(["app.example.com"]), "{key}");
    assert_eq!(key["usage_cap"], 50, "{key}");
    assert!(
        key["expires_at"]
            .as_str()
            .unwrap()
            .starts_with("2099-12-31"),
        "{key}"
    );
}

/// A used-up or expired key does not count against the plan's active keys;
/// an edit that makes it active again counts, as creating one does.
#[tokio::test]
async fn an_edit_that_makes_a_key_active_again_needs_room_on_the_plan() {
    let app = spawn_app().await;
    let b = signed_in(&app, "room@example.com").await;
    // Starter: two active keys, the primary one and this.
    let (status, body) = create(&app, &b, json!({ "name": "once", "usage_cap": 1 })).await;
    assert_eq!(status, 201, "{body}");
    let once = body["key"]["id"].as_i64().unwrap();
    let secret = body["secret"].as_str().unwrap();
    assert_eq!(crate::admin_pages::demo_call(&app, secret).await, 200);
    // Used up, so there is room for another.
    let (status, body) = create(&app, &b, json!({ "name": "third" })).await;
    assert_eq!(status, 201, "{body}");
    let third = body["key"]["id"].as_i64().unwrap();

    let patch = |body: Value| {
        b.client
            .patch(app.url(&format!("/api/v1/keys/{once}")))
            .json(&body)
            .send()
    };
    let refused = patch(json!({ "usage_cap": 5 })).await.unwrap();
    assert_eq!(refused.status(), 409);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["error"]["code"], "active_key_limit", "{refused}");
    let key: Value = app.get_json(&b, &format!("/api/v1/keys/{once}")).await;
    assert_eq!(key["usage_cap"], 1, "nothing changed: {key}");
    // An edit that leaves it used up is fine.
    assert_eq!(
        patch(json!({ "name": "spent" })).await.unwrap().status(),
        200
    );

    let revoked = b
        .client
        .delete(app.url(&format!("/api/v1/keys/{third}")))
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success());
    assert_eq!(
        patch(json!({ "usage_cap": 5 })).await.unwrap().status(),
        200
    );
    assert_eq!(crate::admin_pages::demo_call(&app, secret).await, 200);

    // An account over its plan's active keys (moved to a smaller plan) may
    // still edit a key that stays used up.
    assert_eq!(
        patch(json!({ "usage_cap": 2 })).await.unwrap().status(),
        200
    );
    let (status, body) = create(&app, &b, json!({ "name": "fourth" })).await;
    assert_eq!(status, 201, "{body}");
    sqlx::query("UPDATE plans SET max_active_keys = 1 WHERE slug = 'starter'")
        .execute(&app.db().await)
        .await
        .unwrap();
    let renamed = patch(json!({ "name": "still spent" })).await.unwrap();
    assert_eq!(renamed.status(), 200);
    let refused = patch(json!({ "usage_cap": 9 })).await.unwrap();
    assert_eq!(refused.status(), 409);
}

#[tokio::test]
async fn bulk_rotation_from_the_page_is_all_or_nothing() {
    let app = spawn_app().await;
    let b = signed_in(&app, "bulk@example.com").await;
    // The primary key from registration and one more: the Starter plan's two.
    let (status, second) = create(&app, &b, json!({ "name": "two" })).await;
    assert_eq!(status, 201, "{second}");
    let primary = keys_of(&app, &b)
        .await
        .into_iter()
        .find(|k| k["name"] != "two")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let ids = [primary, second["key"]["id"].as_i64().unwrap()];
    let db = app.db().await;
    let hashes = || async {
        let mut all = Vec::new();
        for id in ids {
            let hash: Vec<u8> = sqlx::query_scalar("SELECT secret_hash FROM api_keys WHERE id = ?")
                .bind(id)
                .fetch_one(&db)
                .await
                .unwrap();
            all.push(hash);
        }
        all
    };
    let rotate = |ids: Vec<i64>| {
        b.client
            .post(app.url("/api/keys/rotate"))
            .header("accept", "application/json")
            .json(&json!({ "ids": ids, "grace_seconds": 0 }))
            .send()
    };
    let before = hashes().await;

    // One id that is not the user's: nothing is rotated, so no secret goes unseen.
    let response = rotate(vec![ids[0], ids[1], 999_999]).await.unwrap();
    assert_eq!(response.status(), 404);
    assert_eq!(hashes().await, before, "no key changed");
    assert!(!app.audit_actions().await.contains(&"key.rotate".to_owned()));

    // All of them: every new secret comes back, in order, and each works.
    let response = rotate(ids.to_vec()).await.unwrap();
    assert_eq!(response.status(), 200);
    let issued: Value = response.json().await.unwrap();
    let issued = issued.as_array().unwrap();
    assert_eq!(issued.len(), 2);
    let listed = keys_of(&app, &b).await;
    for (key, id) in issued.iter().zip(ids) {
        assert_eq!(key["key"]["id"], id);
        let secret = key["secret"].as_str().unwrap();
        assert!(is_key_format(secret));
        // The secret is the one stored for that key, not the other's.
        let shown = listed.iter().find(|k| k["id"] == id).unwrap()["display"]
            .as_str()
            .unwrap();
        let last_four = shown.rsplit('…').next().unwrap();
        assert!(secret.ends_with(last_four), "{secret} is not {shown}");
        let (status, body) = with_key(&app, secret, reqwest::Method::GET, "/v1/models", None).await;
        assert_eq!(status, 200, "{body}");
    }
    let after = hashes().await;
    assert!(
        after.iter().zip(&before).all(|(a, b)| a != b),
        "both secrets changed"
    );
    let rotations = app
        .audit_actions()
        .await
        .into_iter()
        .filter(|a| a == "key.rotate")
        .count();
    assert_eq!(rotations, 2);
}
