//! The OpenAPI document at `/openapi.json` and the `/docs` page rendered from it.

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::support::spawn_app;

const OPERATIONS: [(&str, &str); 29] = [
    ("post", "/v1/chat/completions"),
    ("get", "/v1/models"),
    ("get", "/v1/models/{model}"),
    ("post", "/response"),
    ("get", "/api/v1/plans"),
    ("get", "/api/v1/me"),
    ("put", "/api/v1/me/plan"),
    ("get", "/api/v1/keys"),
    ("post", "/api/v1/keys"),
    ("get", "/api/v1/keys/{id}"),
    ("patch", "/api/v1/keys/{id}"),
    ("delete", "/api/v1/keys/{id}"),
    ("post", "/api/v1/keys/{id}/rotate"),
    ("post", "/api/v1/keys/{id}/end-grace"),
    ("get", "/api/v1/usage/export"),
    ("get", "/api/v1/admin/users"),
    ("post", "/api/v1/admin/users/{id}/disable"),
    ("post", "/api/v1/admin/users/{id}/enable"),
    ("post", "/api/v1/admin/users/{id}/password-reset"),
    ("get", "/api/v1/admin/balances"),
    ("post", "/api/v1/admin/users/{id}/credits"),
    ("put", "/api/v1/admin/users/{id}/plan"),
    ("put", "/api/v1/admin/users/{id}/limits"),
    ("post", "/api/v1/admin/users/{id}/keys/revoke"),
    ("post", "/api/v1/admin/users/{id}/keys/{key_id}/revoke"),
    ("post", "/api/v1/admin/users/{id}/keys/rotate"),
    ("get", "/api/v1/admin/users/{id}/usage/export"),
    ("get", "/api/v1/admin/audit"),
    ("get", "/api/v1/admin/monitor"),
];

async fn document(app: &crate::support::TestApp) -> Value {
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    response.json().await.unwrap()
}

fn property_names(doc: &Value, schema: &str) -> BTreeSet<String> {
    doc["components"]["schemas"][schema]["properties"]
        .as_object()
        .unwrap_or_else(|| panic!("no schema {schema}"))
        .keys()
        .cloned()
        .collect()
}

#[tokio::test]
async fn every_management_route_is_documented_with_auth_and_errors() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let mut documented = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            documented += 1;
            assert!(
                OPERATIONS.contains(&(method.as_str(), path.as_str())),
                "{method} {path} is documented but not expected here"
            );
            assert!(op["summary"].is_string(), "{method} {path} has no summary");
            assert!(op["security"].is_array(), "{method} {path} names no auth");
            let responses = op["responses"].as_object().unwrap();
            assert!(responses.keys().any(|s| s.starts_with('2')));
            assert_eq!(
                responses["403"]["content"]["application/json"]["schema"]["$ref"],
                "#/components/schemas/ErrorResponse",
                "{method} {path}"
            );
        }
    }
    assert_eq!(documented, OPERATIONS.len());
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["api_key"]["scheme"], "bearer");
    assert_eq!(schemes["session"]["name"], "tollgate_session");

    // Every documented route exists: none answers 404 or 405 for its method.
    for (method, path) in OPERATIONS {
        let url = app.url(&path.replace("{id}", "1").replace("{model}", "demo"));
        let request = app
            .client
            .request(method.to_uppercase().parse().unwrap(), url);
        let status = request.send().await.unwrap().status().as_u16();
        assert!(
            ![404, 405].contains(&status),
            "{method} {path} answered {status}"
        );
    }
}

#[tokio::test]
async fn documented_schemas_match_what_the_api_answers() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let b = app.browser();
    app.register(&b, "docs@example.com", "Doc Reader").await;

    let keys: Value = app.get_json(&b, "/api/v1/keys").await;
    let answered: BTreeSet<String> = keys["data"][0]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(answered, property_names(&doc, "KeyView"));

    let me: Value = app.get_json(&b, "/api/v1/me").await;
    let answered: BTreeSet<String> = me.as_object().unwrap().keys().cloned().collect();
    assert_eq!(answered, property_names(&doc, "Me"));

    // The model API's answers, with a key: the model list and its entries,
    // the simple reply, and every field a whole chat answer is documented with.
    let key = app
        .create_key(&b, json!({ "name": "docs", "scopes": ["chat"] }))
        .await;
    let keys_of = |value: &Value| -> BTreeSet<String> {
        value.as_object().unwrap().keys().cloned().collect()
    };
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut request = app.client.request(method, app.url(path)).bearer_auth(&key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };
    let models = call(reqwest::Method::GET, "/v1/models", None).await;
    assert_eq!(keys_of(&models), property_names(&doc, "ModelList"));
    assert_eq!(
        keys_of(&models["data"][0]),
        property_names(&doc, "ModelEntry")
    );
    let reply = call(
        reqwest::Method::POST,
        "/response",
        Some(json!({ "message": "hello", "tokens": 8 })),
    )
    .await;
    assert_eq!(keys_of(&reply), property_names(&doc, "SimpleReply"));
    let answer = call(
        reqwest::Method::POST,
        "/v1/chat/completions",
        Some(json!({ "model": "demo", "messages": [{ "role": "user", "content": "hi" }] })),
    )
    .await;
    assert!(
        property_names(&doc, "ChatCompletion").is_subset(&keys_of(&answer)),
        "{answer}"
    );
    assert_eq!(keys_of(&answer["usage"]), property_names(&doc, "ChatUsage"));
    let request = property_names(&doc, "ChatCompletionRequest");
    assert!(request.contains("model") && request.contains("stream_options"));
    // The bounds documented are the ones the route holds to.
    let max_tokens =
        &doc["components"]["schemas"]["ChatCompletionRequest"]["properties"]["max_tokens"];
    assert_eq!(
        (&max_tokens["minimum"], &max_tokens["maximum"]),
        (&json!(1), &json!(1_000_000))
    );
    for (max_tokens, status) in [(0, 400), (1_000_001, 400)] {
        let response = app
            .client
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&json!({
                "model": "demo",
                "messages": [{ "role": "user", "content": "hi" }],
                "max_tokens": max_tokens,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "max_tokens {max_tokens}");
    }

    // An error answer has the documented shape.
    let error: Value = b
        .client
        .post(app.url("/api/v1/keys"))
        .json(&json!({ "name": "" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let answered: BTreeSet<String> = error["error"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert!(
        answered.is_subset(&property_names(&doc, "ErrorObject")),
        "{error}"
    );

    // Every field CreateKey documents is accepted (unknown fields are refused).
    let fields = property_names(&doc, "CreateKey");
    for field in [
        "name",
        "env",
        "scopes",
        "expires_at",
        "ttl_seconds",
        "usage_cap",
        "ip_allowlist",
        "referrer_domains",
        "allowed_models",
    ] {
        assert!(fields.contains(field), "{field}");
    }
}

#[tokio::test]
async fn the_docs_page_renders_the_reference_on_the_server() {
    let app = spawn_app().await;
    let response = app.get("/docs").await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains("Tollgate API"), "{html}");
    assert!(html.contains("/api/v1/keys/{id}/rotate"));
    assert!(html.contains("/v1/chat/completions"));
    assert!(
        html.contains("Bearer key with chat or key in x-api-key with chat"),
        "{html}"
    );
    // The descriptions' code spans are code, not backticks (which only the
    // page's data for hydration keeps).
    assert!(html.contains(">chat</code> scope"), "{html}");
    assert!(html.contains("Create a key"));
    assert!(html.contains(r#"id="type-KeyView""#));
    // Served from this origin only: no third-party scripts or styles.
    assert!(!html.contains("cdn."), "{html}");
    assert!(!html.contains("unpkg"), "{html}");
}
