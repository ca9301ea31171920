//! The model API over real HTTP against the mock upstream: statuses, streaming,
//! limits, credits and settlement.

use std::time::Duration;

use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::support::{
    Browser, TestApp, mock_upstream::MockUpstream, read_until, spawn_app_in, spawn_app_with,
    status_and_json,
};

/// A model table with the mock as `mock` (1 credit per 1k tokens each way) and
/// an instant `demo`.
fn models_file(dir: &TempDir, mock: &MockUpstream) -> String {
    let path = dir.path().join("models.toml");
    std::fs::write(
        &path,
        format!(
            "[[model]]\nname = \"mock\"\nprovider = \"openai\"\nbase_url = \"{}\"\nupstream_model = \"mock-small\"\ninput_price = \"1\"\noutput_price = \"1\"\nsystem_prompt = \"Be brief.\"\n\n[[model]]\nname = \"demo\"\nprovider = \"demo\"\ninput_price = \"0\"\noutput_price = \"0\"\nword_delay_ms = 0\n",
            mock.base_url()
        ),
    )
    .unwrap();
    path.display().to_string()
}

pub(crate) struct Setup {
    pub app: TestApp,
    pub mock: MockUpstream,
    _models: TempDir,
}

pub(crate) async fn setup(extra: &[(&str, &str)]) -> Setup {
    let mock = MockUpstream::start().await;
    let models = tempfile::tempdir().unwrap();
    let path = models_file(&models, &mock);
    let mut env = vec![
        ("TOLLGATE_MODELS", path.as_str()),
        ("TOLLGATE_SIGNUP_CREDITS", "5"),
        ("TOLLGATE_IP_REQUESTS_PER_MINUTE", "1000"),
        ("TOLLGATE_IP_REQUESTS_PER_DAY", "10000"),
        ("TOLLGATE_UPSTREAM_IDLE_TIMEOUT_MS", "1500"),
        ("TOLLGATE_UPSTREAM_FIRST_BYTE_TIMEOUT_MS", "1500"),
    ];
    env.extend_from_slice(extra);
    let app = spawn_app_in(tempfile::tempdir().unwrap(), &env).await;
    Setup {
        app,
        mock,
        _models: models,
    }
}

/// Registers a user, moves them to a private plan with these limits and no
/// monthly grant, and returns a chat key.
pub(crate) async fn user_with_plan(
    app: &TestApp,
    email: &str,
    per_minute: i64,
    per_day: i64,
    parallel: Option<i64>,
) -> String {
    user_with_plan_signed_in(app, email, per_minute, per_day, parallel)
        .await
        .0
}

/// [`user_with_plan`], with the browser the user is signed in on, for
/// making more keys.
pub(crate) async fn user_with_plan_signed_in(
    app: &TestApp,
    email: &str,
    per_minute: i64,
    per_day: i64,
    parallel: Option<i64>,
) -> (String, Browser) {
    let b = app.browser();
    app.register(&b, email, "Caller").await;
    let db = app.db().await;
    let plan_id: i64 = sqlx::query_scalar(
        "INSERT INTO plans (slug, name, requests_per_minute, requests_per_hour, requests_per_day, max_parallel, monthly_credits, max_active_keys, is_public)
         VALUES (?, 'Test', ?, ?, ?, ?, 0, 10, 0) RETURNING id",
    )
    .bind(format!("test-{email}"))
    .bind(per_minute)
    .bind(per_day.max(1000))
    .bind(per_day)
    .bind(parallel)
    .fetch_one(&db)
    .await
    .unwrap();
    sqlx::query("UPDATE users SET plan_id = ? WHERE email = ?")
        .bind(plan_id)
        .bind(email)
        .execute(&db)
        .await
        .unwrap();
    (app.create_key(&b, json!({ "name": "gateway" })).await, b)
}

async fn chat(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    chat_at(app, "/v1/chat/completions", key, body).await
}

/// `POST /response` with the key in `x-api-key`.
async fn simple_call(app: &TestApp, key: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/response"))
        .header("x-api-key", key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn chat_at(app: &TestApp, path: &str, key: &str, body: Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// A GET of the model API with `key`.
async fn get_with_key(app: &TestApp, key: &str, path: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
}

fn hello(model: &str) -> Value {
    json!({ "model": model, "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 100 })
}

pub(crate) async fn balance_and_ledger(app: &TestApp, email: &str) -> (i64, i64) {
    sqlx::query_as(
        "SELECT u.balance_micros, COALESCE((SELECT SUM(amount_micros) FROM credit_ledger l WHERE l.user_id = u.id), 0)
         FROM users u WHERE email = ?",
    )
    .bind(email)
    .fetch_one(&app.db().await)
    .await
    .unwrap()
}

/// Checks that `response` is an OpenAI-shaped refusal with `status` and `code`.
pub(crate) async fn assert_refused(response: reqwest::Response, status: u16, code: &str) {
    assert_eq!(response.status(), status, "{code}");
    assert_openai_error(&response.json().await.unwrap(), code);
}

fn assert_openai_error(body: &Value, code: &str) {
    let error = &body["error"];
    assert!(
        error["message"].is_string() && error["type"].is_string(),
        "{body}"
    );
    assert!(error.get("param").is_some(), "{body}");
    assert_eq!(error["code"], code, "{body}");
}

#[tokio::test]
async fn a_json_call_is_forwarded_charged_exactly_and_carries_rate_headers() {
    let s = setup(&[]).await;
    let key = user_with_plan(&s.app, "json@example.com", 10, 100, None).await;
    let response = chat(&s.app, &key, json!({ "model": "mock", "messages": [{ "role": "user", "content": "hi" }], "temperature": 0.3 })).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-ratelimit-limit-requests"], "10");
    assert_eq!(response.headers()["x-ratelimit-remaining-requests"], "9");
    assert!(
        response.headers()["x-ratelimit-reset-requests"]
            .to_str()
            .unwrap()
            .ends_with('s')
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "mock");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from the mock upstream."
    );

    // Forwarded with the upstream name, the default system prompt and unknown fields.
    let sent = &s.mock.requests()[0].body;
    assert_eq!(sent["model"], "mock-small");
    assert_eq!(sent["temperature"], 0.3);
    assert_eq!(
        sent["messages"][0],
        json!({ "role": "system", "content": "Be brief." })
    );

    // Charged the upstream's usage at 1 credit per 1k tokens; the ledger explains it.
    let usage = &body["usage"];
    let tokens =
        usage["prompt_tokens"].as_i64().unwrap() + usage["completion_tokens"].as_i64().unwrap();
    let (balance, ledger) = balance_and_ledger(&s.app, "json@example.com").await;
    assert_eq!(balance, 5_000_000 - tokens * 1000);
    assert_eq!(balance, ledger);
    let kinds: Vec<String> = sqlx::query_scalar("SELECT kind FROM credit_ledger ORDER BY id")
        .fetch_all(&s.app.db().await)
        .await
        .unwrap();
    assert_eq!(kinds, ["grant", "reserve", "refund", "settle"]);
}

async fn read_stream(response: reqwest::Response) -> (Vec<Value>, bool) {
    let mut events = response.bytes_stream().eventsource();
    let mut chunks = Vec::new();
    let mut done = false;
    while let Some(event) = events.next().await {
        let Ok(event) = event else { break };
        if event.data == "[DONE]" {
            done = true;
            break;
        }
        chunks.push(serde_json::from_str(&event.data).unwrap());
    }
    (chunks, done)
}

/// The events of a stream as they came over the wire (the text between blank
/// lines, comments included), the last of which must be `[DONE]`.
fn wire_events(text: &str) -> Vec<&str> {
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.last(), Some(&"data: [DONE]"), "{text:?}");
    events
}

/// The chunks among a stream's wire events, parsed (comments and `[DONE]` left out).
fn wire_chunks(events: &[&str]) -> Vec<Value> {
    events
        .iter()
        .filter_map(|e| e.strip_prefix("data: "))
        .filter(|data| *data != "[DONE]")
        .map(|data| serde_json::from_str(data).unwrap())
        .collect()
}

/// The reply text of a stream's chunks.
fn delta_text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

#[tokio::test]
async fn streams_arrive_in_order_with_done_and_the_usage_chunk_when_asked() {
    let s = setup(&[]).await;
    let key = user_with_plan(&s.app, "stream@example.com", 10, 100, None).await;
    let mut body = hello("mock");
    body["stream"] = json!(true);
    body["stream_options"] = json!({ "include_usage": true });
    let response = chat(&s.app, &key, body.clone()).await;
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let (chunks, done) = read_stream(response).await;
    assert!(done);
    assert_eq!(delta_text(&chunks), "Hello from the mock upstream.");
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk" && c["model"] == "mock")
    );
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"], json!([]));
    let tokens = last["usage"]["total_tokens"].as_i64().unwrap();
    assert!(tokens > 0);

    // Without include_usage the caller gets no usage chunk, but the charge is
    // still exact: the same tokens (one credit a thousand) as the call above.
    usage_records(&s.app, 1).await;
    let (before, _) = balance_and_ledger(&s.app, "stream@example.com").await;
    body["stream_options"] = json!(null);
    let (chunks, done) = read_stream(chat(&s.app, &key, body).await).await;
    assert!(done);
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "{chunks:?}"
    );
    assert_eq!(
        s.mock.requests()[1].body["stream_options"]["include_usage"],
        true
    );
    usage_records(&s.app, 2).await;
    let (balance, ledger) = balance_and_ledger(&s.app, "stream@example.com").await;
    assert_eq!(before - balance, tokens * 1_000);
    assert_eq!(balance, ledger);
}

/// The reply's cap reaches the upstream under the name the model table gives
/// (`max_tokens` unless it says `max_completion_tokens`, which reasoning models
/// need), whatever the caller called it; the caller's other stream options go
/// through, and usage is asked for unless the table says not to; and the hold
/// covers every one of `n` choices.
#[tokio::test]
async fn the_cap_and_stream_options_go_through_as_sent_and_n_is_held_for() {
    let mock = MockUpstream::start().await;
    let models = tempfile::tempdir().unwrap();
    let table = models.path().join("reasoning.toml");
    std::fs::write(
        &table,
        format!(
            "[[model]]\nname = \"mock\"\nprovider = \"openai\"\nbase_url = \"{}\"\ninput_price = \"1\"\noutput_price = \"1\"\n\n[[model]]\nname = \"thinker\"\nprovider = \"openai\"\nbase_url = \"{0}\"\nmax_tokens_field = \"max_completion_tokens\"\nstream_usage = false\ninput_price = \"0\"\noutput_price = \"0\"\n",
            mock.base_url()
        ),
    )
    .unwrap();
    let table = table.display().to_string();
    let s = setup(&[("TOLLGATE_MODELS", table.as_str())]).await;
    let s = Setup { mock, ..s };
    let key = user_with_plan(&s.app, "cap@example.com", 10, 100, None).await;
    let mut body = json!({
        "model": "mock",
        "messages": [{ "role": "user", "content": "hi" }],
        "max_completion_tokens": 50,
        "stream": true,
        "stream_options": { "include_usage": false, "continuous_usage_stats": true },
    });
    let (_, done) = read_stream(chat(&s.app, &key, body.clone()).await).await;
    assert!(done);
    let sent = &s.mock.requests()[0].body;
    assert_eq!(sent["max_tokens"], 50, "{sent}");
    assert!(sent.get("max_completion_tokens").is_none(), "{sent}");
    assert_eq!(
        sent["stream_options"],
        json!({ "include_usage": true, "continuous_usage_stats": true })
    );
    body["model"] = json!("thinker");
    body["max_tokens"] = json!(40);
    body["max_completion_tokens"] = json!(null);
    let (_, done) = read_stream(chat(&s.app, &key, body.clone()).await).await;
    assert!(done);
    let sent = &s.mock.requests()[1].body;
    assert_eq!(sent["max_completion_tokens"], 40, "{sent}");
    assert!(sent.get("max_tokens").is_none(), "{sent}");
    // A model set not to ask for usage (`stream_usage = false`, for servers
    // that refuse the option) is not asked, even when the caller asks; the
    // caller still gets a usage chunk, the gateway's.
    assert_eq!(
        sent["stream_options"],
        json!({ "continuous_usage_stats": true })
    );
    body["stream_options"] = json!({ "include_usage": true });
    let (chunks, done) = read_stream(chat(&s.app, &key, body.clone()).await).await;
    assert!(done);
    let sent = &s.mock.requests()[2].body;
    assert!(sent.get("stream_options").is_none(), "{sent}");
    let usage = &chunks.last().unwrap()["usage"];
    assert!(
        usage["completion_tokens"].as_u64().unwrap() > 0,
        "{chunks:?}"
    );

    // 5 credits: four choices of up to 1,000 tokens fit in the hold, six do not.
    body = hello("mock");
    body["max_tokens"] = json!(1000);
    body["n"] = json!(6);
    let response = chat(&s.app, &key, body.clone()).await;
    assert_refused(response, 402, "insufficient_credits").await;
    body["n"] = json!(4);
    assert_eq!(chat(&s.app, &key, body.clone()).await.status(), 200);
    assert_eq!(s.mock.requests()[3].body["n"], 4);
    body["n"] = json!(0);
    let response = chat(&s.app, &key, body).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["param"], "n", "{error}");
}

/// An upstream that reports more tokens than the hold covered (an estimate
/// that missed images or tools) is charged in full while the balance allows.
#[tokio::test]
async fn usage_beyond_the_hold_is_charged_in_full() {
    let s = setup(&[]).await;
    let key = user_with_plan(&s.app, "beyond@example.com", 10, 100, None).await;
    s.mock.set(|k| k.reply = ["word"; 30].join(" "));
    // The hold: about 14 prompt tokens and 2 of reply; the upstream reports 33.
    let mut body = hello("mock");
    body["max_tokens"] = json!(2);
    let response = chat(&s.app, &key, body).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["usage"]["completion_tokens"], 30);
    let tokens = answer["usage"]["total_tokens"].as_i64().unwrap();
    let (balance, ledger) = balance_and_ledger(&s.app, "beyond@example.com").await;
    assert_eq!(balance, 5_000_000 - tokens * 1000);
    assert_eq!(balance, ledger);
    let cost: i64 = s
        .app
        .db_number("SELECT cost_micros FROM usage_records")
        .await;
    assert_eq!(cost, tokens * 1000);
}

/// The hold counts text wherever a request puts it: 40,000 bytes in a
/// message's `name` (about 10,000 tokens, 10 credits at this model's price)
/// do not fit a balance of 5, though the content is one word.
#[tokio::test]
async fn text_outside_the_content_is_held_for_too() {
    let s = setup(&[]).await;
    let key = user_with_plan(&s.app, "named@example.com", 10, 100, None).await;
    for (field, place) in [("name", "message"), ("documents", "body")] {
        let mut body = hello("mock");
        let big = json!("x".repeat(40_000));
        if place == "message" {
            body["messages"][0][field] = big;
        } else {
            body[field] = json!([{ "text": big }]);
        }
        let response = chat(&s.app, &key, body).await;
        assert_refused(response, 402, "insufficient_credits").await;
    }
    assert_eq!(chat(&s.app, &key, hello("mock")).await.status(), 200);
}

#[tokio::test]
async fn every_refusal_is_openai_shaped_with_its_status() {
    let s = setup(&[]).await;
    let key = user_with_plan(&s.app, "errors@example.com", 10, 100, None).await;
    let post = |key: Option<String>, body: String| {
        let mut request = s
            .app
            .client
            .post(s.app.url("/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send()
    };
    let ok = hello("mock").to_string();
    // The key with its last character changed (to one it is not already).
    let (kept, last) = key.split_at(key.len() - 1);
    let altered = format!("{kept}{}", if last == "x" { "y" } else { "x" });
    let cases: Vec<(Option<String>, String, u16, &str)> = vec![
        (Some(key.clone()), "{not json".into(), 400, "invalid_request"),
        (Some(key.clone()), json!({ "model": "mock" }).to_string(), 400, "invalid_request"),
        (None, ok.clone(), 401, "missing_api_key"),
        (Some(altered), ok.clone(), 401, "invalid_api_key"),
        (Some(key.clone()), hello("no-such-model").to_string(), 404, "model_not_found"),
        (Some(key.clone()), hello(" mock\n").to_string(), 404, "model_not_found"),
        (Some(key.clone()), json!({ "model": "mock", "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 900_000 }).to_string(), 402, "insufficient_credits"),
    ];
    for (key, body, status, code) in cases {
        let response = post(key, body.clone()).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{body}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json")
        );
        assert_openai_error(&response.json().await.unwrap(), code);
    }
    // Two keys in two headers of one name: neither is used (a proxy may
    // read the last where Tollgate read the first).
    let response = s
        .app
        .client
        .post(s.app.url("/v1/chat/completions"))
        .header("authorization", format!("Bearer {key}"))
        .header("authorization", "Bearer tg_live_someone_else")
        .json(&hello("mock"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_openai_error(&body, "invalid_api_key");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("More than one"),
        "{body}"
    );
    // A key without the chat scope, and one limited to another address.
    let b = s.app.browser();
    s.app
        .login(&b, "errors@example.com", crate::support::PASSWORD)
        .await;
    let reader = s
        .app
        .create_key(&b, json!({ "name": "r", "scopes": ["keys:read"] }))
        .await;
    let response = chat(&s.app, &reader, hello("mock")).await;
    assert_refused(response, 403, "missing_scope").await;
    let elsewhere = s
        .app
        .create_key(&b, json!({ "name": "ip", "ip_allowlist": ["10.1.2.3"] }))
        .await;
    let response = chat(&s.app, &elsewhere, hello("mock")).await;
    assert_refused(response, 403, "ip_not_allowed").await;
    // A key presented from where it may not be used was not used.
    let sql = "SELECT COUNT(*) FROM api_keys WHERE name = 'ip' AND last_used_at IS NULL";
    assert_eq!(s.app.db_number(sql).await, 1, "the refused key's last use");
    // Unknown routes under /v1 answer JSON, never a page, and so do
    // OpenAI's paths without /v1 (a client's base URL without it).
    let response = s.app.get("/v1/nothing").await;
    assert_refused(response, 404, "unknown_url").await;
    let response = chat_at(&s.app, "/chat/completions", &key, hello("mock")).await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_openai_error(&body, "unknown_url");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("/v1"),
        "{body}"
    );
    assert_refused(s.app.get("/models").await, 404, "unknown_url").await;

    // Upstream failures: 502, and 504 on a timeout.
    s.mock
        .set(|k| k.error_status = Some(reqwest::StatusCode::INTERNAL_SERVER_ERROR));
    let response = chat(&s.app, &key, hello("mock")).await;
    // A failing upstream may answer the next try.
    assert!(response.headers().get("x-should-retry").is_none());
    assert_refused(response, 502, "upstream_error").await;
    // One refusing the gateway's own key will not: the SDKs are told so.
    s.mock
        .set(|k| k.error_status = Some(reqwest::StatusCode::UNAUTHORIZED));
    let response = chat(&s.app, &key, hello("mock")).await;
    assert_eq!(response.headers()["x-should-retry"], "false");
    let (status, body) = status_and_json(response).await;
    assert_eq!(status, 502);
    assert_openai_error(&body, "upstream_error");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("not set up right"), "{message}");
    // Nor will a used-up quota (OpenAI's 429 `insufficient_quota`, or
    // OpenRouter's 402 for an account out of credit), nor a 404, which a base
    // URL without its `/v1` gets for every model.
    for (status, code, said) in [
        (429, Some("insufficient_quota"), "no quota left"),
        (402, None, "no credit left"),
        (404, None, "an address that is not its API"),
    ] {
        s.mock.set(|k| {
            k.error_status = Some(reqwest::StatusCode::from_u16(status).unwrap());
            k.error_code = code;
        });
        let response = chat(&s.app, &key, hello("mock")).await;
        assert_eq!(response.headers()["x-should-retry"], "false", "{status}");
        assert!(response.headers().get("retry-after").is_none(), "{status}");
        let (answered, body) = status_and_json(response).await;
        assert_eq!(answered, 502, "{status}");
        assert_openai_error(&body, "upstream_error");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(said), "{message}");
    }
    s.mock.set(|k| k.error_code = None);
    // A proxy's timeout in front of the upstream is a timeout; a request too
    // large for it is the caller's to shorten, not to retry.
    for (status, answer, code) in [
        (504, 504, "upstream_timeout"),
        (524, 504, "upstream_timeout"),
        (413, 413, "upstream_rejected_request"),
    ] {
        s.mock
            .set(|k| k.error_status = Some(reqwest::StatusCode::from_u16(status).unwrap()));
        let response = chat(&s.app, &key, hello("mock")).await;
        assert_refused(response, answer, code).await;
    }
    // Input an upstream's moderation flagged (OpenRouter's 403 with its
    // reasons) is the caller's to change, not retried as the gateway's
    // failure; a 403 for the operator's key stays a 502.
    s.mock.set(|k| {
        k.error_status = Some(reqwest::StatusCode::FORBIDDEN);
        k.error_metadata = Some(json!({ "reasons": ["violence"], "flagged_input": "…" }));
    });
    let response = chat(&s.app, &key, hello("mock")).await;
    assert_refused(response, 400, "content_policy_violation").await;
    s.mock.set(|k| k.error_metadata = None);
    let response = chat(&s.app, &key, hello("mock")).await;
    assert_refused(response, 502, "upstream_error").await;
    s.mock
        .set(|k| k.error_status = Some(reqwest::StatusCode::INTERNAL_SERVER_ERROR));
    // A redirect is not followed: the prompt goes only where the table says.
    let elsewhere = MockUpstream::start().await;
    s.mock.set(|k| {
        k.error_status = None;
        k.redirect_to = Some(format!("{}/chat/completions", elsewhere.base_url()));
    });
    let response = chat(&s.app, &key, hello("mock")).await;
    // The table's address is wrong: a retry goes the same way.
    assert_eq!(response.headers()["x-should-retry"], "false");
    assert_refused(response, 502, "upstream_error").await;
    assert!(elsewhere.requests().is_empty());
    s.mock.set(|k| {
        k.redirect_to = None;
        k.latency = Duration::from_secs(3);
    });
    // A stream's first byte is late (a JSON answer has until the total
    // timeout: `a_json_answer_has_until_the_total_timeout`).
    let mut streamed = hello("mock");
    streamed["stream"] = json!(true);
    let response = chat(&s.app, &key, streamed).await;
    assert_refused(response, 504, "upstream_timeout").await;
    // Failed calls cost nothing.
    let (balance, ledger) = balance_and_ledger(&s.app, "errors@example.com").await;
    assert_eq!((balance, ledger), (5_000_000, 5_000_000));

    // An IPv4-mapped entry names the IPv4 address the caller is seen from.
    let mapped = s
        .app
        .create_key(
            &b,
            json!({ "name": "mapped", "ip_allowlist": ["::ffff:127.0.0.1"] }),
        )
        .await;
    assert_eq!(chat(&s.app, &mapped, hello("demo")).await.status(), 200);
    let sql = "SELECT COUNT(*) FROM api_keys WHERE name = 'mapped' AND last_used_at IS NOT NULL";
    assert_eq!(s.app.db_number(sql).await, 1, "the used key's last use");
}

#[tokio::test]
async fn the_minute_limit_answers_429_with_retry_after_and_consumes_nothing_else() {
    let s = setup(&[]).await;
    let key = user_with_plan(&s.app, "minute@example.com", 2, 100, None).await;
    for _ in 0..2 {
        assert_eq!(chat(&s.app, &key, hello("demo")).await.status(), 200);
    }
    let response = chat(&s.app, &key, hello("demo")).await;
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(response.headers()["x-ratelimit-remaining-requests"], "0");
    // Retry-After is when one call may pass; the reset, when both may: the
    // second cell frees half a minute after the first.
    let reset = response.headers()["x-ratelimit-reset-requests"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(reset, format!("{}s", retry + 30));
    assert_openai_error(&response.json().await.unwrap(), "requests_per_minute");
    // The refused call took nothing from the day window or the balance.
    let day: i64 = s
        .app
        .db_number("SELECT count FROM limit_windows WHERE window = 'day' AND subject LIKE 'user:%'")
        .await;
    assert_eq!(day, 2);
    let reserves: i64 = s
        .app
        .db_number("SELECT COUNT(*) FROM credit_ledger WHERE kind = 'reserve'")
        .await;
    assert_eq!(reserves, 2);
}

/// Switching plans keeps what the old limits counted: the calls still
/// running and the requests made this minute count against the new plan, so
/// switching back and forth gives no fresh burst.
/// A call the upstream refuses or fails before answering costs nothing from
/// the user's windows either (minute requests and tokens, hour, day): the
/// OpenAI SDKs retry an upstream's 429 or 5xx twice by themselves, which
/// spent a plan of two a minute and answered the plan's own 429.
#[tokio::test]
async fn calls_the_upstream_refused_give_back_the_users_windows() {
    let s = setup(&[]).await;
    let email = "refused-upstream@example.com";
    let key = user_with_plan(&s.app, email, 2, 10, None).await;
    // Two calls' tokens a minute: 1,000 of max_tokens and the prompt each.
    sqlx::query("UPDATE plans SET tokens_per_minute = 2100 WHERE slug = ?")
        .bind(format!("test-{email}"))
        .execute(&s.app.db().await)
        .await
        .unwrap();
    let mut body = hello("mock");
    body["max_tokens"] = json!(1000);
    s.mock.set(|k| {
        k.error_status = Some(reqwest::StatusCode::TOO_MANY_REQUESTS);
        k.retry_after = Some("1");
    });
    for _ in 0..3 {
        let response = chat(&s.app, &key, body.clone()).await;
        assert_eq!(response.headers()["x-ratelimit-remaining-requests"], "2");
        // Whole again: nothing to wait for.
        assert_eq!(response.headers()["x-ratelimit-reset-requests"], "0s");
        assert_eq!(response.headers()["x-ratelimit-remaining-tokens"], "2100");
        assert_refused(response, 429, "upstream_rate_limited").await;
    }
    s.mock
        .set(|k| k.error_status = Some(reqwest::StatusCode::INTERNAL_SERVER_ERROR));
    let response = chat(&s.app, &key, body.clone()).await;
    assert_eq!(response.headers()["x-ratelimit-remaining-requests"], "2");
    assert_refused(response, 502, "upstream_error").await;
    let day = "SELECT COALESCE(SUM(count), 0) FROM limit_windows WHERE subject LIKE 'user:%'";
    assert_eq!(s.app.db_number(day).await, 0, "hour and day");

    // The plan's windows are whole: two answered calls, then its own 429.
    s.mock.set(|k| k.error_status = None);
    for left in ["1", "0"] {
        let response = chat(&s.app, &key, body.clone()).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-ratelimit-remaining-requests"], left);
    }
    let response = chat(&s.app, &key, body.clone()).await;
    assert_eq!(response.status(), 429);
    let code = response.json::<Value>().await.unwrap()["error"]["code"].clone();
    assert!(
        code == "tokens_per_minute" || code == "requests_per_minute",
        "{code}"
    );
    assert_eq!(s.mock.requests().len(), 6);
    assert_eq!(s.app.db_number(day).await, 4, "two calls, hour and day");
}

#[tokio::test]
async fn a_plan_switch_keeps_the_running_calls_and_the_minute_used() {
    let s = setup(&[]).await;
    let b = s.app.browser();
    s.app.register(&b, "switch@example.com", "Caller").await;
    let key = s.app.create_key(&b, json!({ "name": "gateway" })).await;
    let switch = |plan: &'static str| {
        let (client, url) = (b.client.clone(), s.app.url("/api/v1/me/plan"));
        async move {
            let switched = client
                .put(url)
                .json(&json!({ "plan": plan }))
                .send()
                .await
                .unwrap();
            assert_eq!(switched.status(), 200, "to {plan}");
        }
    };
    let refused_by = |response: reqwest::Response, code: &'static str| async move {
        assert_refused(response, 429, code).await;
    };

    // Pro (6 a minute, 3 at a time): three slow calls running.
    switch("pro").await;
    s.mock.set(|k| k.latency = Duration::from_millis(800));
    let running = futures::future::join_all((0..3).map(|_| chat(&s.app, &key, hello("mock"))));
    let during = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Standard allows 2 at a time, and 3 are running.
        switch("standard").await;
        chat(&s.app, &key, hello("mock")).await
    };
    let (answers, during) = tokio::join!(running, during);
    assert!(answers.iter().all(|r| r.status() == 200));
    refused_by(during, "parallel_requests").await;
    s.mock.set(|k| k.latency = Duration::ZERO);

    // Standard allows 4 a minute; 3 are made.
    assert_eq!(chat(&s.app, &key, hello("demo")).await.status(), 200);
    refused_by(
        chat(&s.app, &key, hello("demo")).await,
        "requests_per_minute",
    )
    .await;
    // Back on Pro, the 4 made leave 2 of its 6.
    switch("pro").await;
    for _ in 0..2 {
        assert_eq!(chat(&s.app, &key, hello("demo")).await.status(), 200);
    }
    refused_by(
        chat(&s.app, &key, hello("demo")).await,
        "requests_per_minute",
    )
    .await;
    // Starter allows 2 a minute, all used; back on Pro, all 6 still count.
    for plan in ["starter", "pro"] {
        switch(plan).await;
        refused_by(
            chat(&s.app, &key, hello("demo")).await,
            "requests_per_minute",
        )
        .await;
    }
}

/// Refused by one limit, a call takes nothing from the others: not from the
/// tokens a minute when the requests a minute refuse it, and not from its
/// address's windows, which calls with a bad key still use up.
#[tokio::test]
async fn a_refused_call_takes_nothing_from_the_tokens_or_the_address_windows() {
    let s = setup(&[
        ("TOLLGATE_IP_REQUESTS_PER_MINUTE", "4"),
        ("TOLLGATE_IP_REQUESTS_PER_DAY", "5"),
    ])
    .await;
    let key = user_with_plan(&s.app, "refused@example.com", 1, 100, None).await;
    let db = s.app.db().await;
    let set_plan = |sql: &'static str| {
        let db = db.clone();
        async move {
            sqlx::query(sql)
                .bind("test-refused@example.com")
                .execute(&db)
                .await
                .unwrap();
            // Past the read cache's second.
            tokio::time::sleep(Duration::from_millis(1100)).await;
        }
    };
    set_plan("UPDATE plans SET tokens_per_minute = 250 WHERE slug = ?").await;

    // 7 prompt tokens (estimated) and max_tokens 100: 107 of the 250, shown
    // as OpenAI shows its tokens window (whole again in 26 s).
    let response = chat(&s.app, &key, hello("demo")).await;
    assert_eq!(response.status(), 200);
    let header = |name: &str| response.headers()[name].to_str().unwrap().to_owned();
    assert_eq!(
        [
            header("x-ratelimit-limit-tokens"),
            header("x-ratelimit-remaining-tokens"),
            header("x-ratelimit-reset-tokens"),
        ],
        ["250", "143", "26s"]
    );
    for _ in 0..5 {
        let response = chat(&s.app, &key, hello("demo")).await;
        // A minute's wait is the SDKs' to retry after.
        assert!(response.headers().get("x-should-retry").is_none());
        assert_refused(response, 429, "requests_per_minute").await;
    }
    let ip_day: i64 = s
        .app
        .db_number("SELECT count FROM limit_windows WHERE subject LIKE 'ip:%'")
        .await;
    assert_eq!(ip_day, 1);

    // With requests to spare, the 143 tokens left are all there: 117 fit.
    set_plan("UPDATE plans SET requests_per_minute = 10 WHERE slug = ?").await;
    let mut body = hello("demo");
    body["max_tokens"] = json!(110);
    let response = chat(&s.app, &key, body).await;
    assert_eq!(response.status(), 200, "{:?}", response.text().await);

    // A call the tokens limit refuses gives the address's windows back, and
    // its headers show them given back: the address's minute, the tightest
    // window, has two of its four left (the user's minute has nine).
    let mut body = hello("demo");
    body["max_tokens"] = json!(500);
    let response = chat(&s.app, &key, body).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["x-ratelimit-limit-requests"], "4");
    assert_eq!(response.headers()["x-ratelimit-remaining-requests"], "2");
    // 500 tokens never fit a minute of 250: the SDKs are told not to retry.
    assert_eq!(response.headers()["x-should-retry"], "false");
    // How many tokens the window has left is not known here: not guessed.
    assert!(
        response
            .headers()
            .get("x-ratelimit-remaining-tokens")
            .is_none()
    );
    assert_eq!(response.headers()["retry-after"], "60");
    assert_openai_error(&response.json().await.unwrap(), "tokens_per_minute");

    // Two calls of four so far; bad keys take the other two.
    let bogus = format!("tg_live_{}", "x".repeat(50));
    for _ in 0..2 {
        assert_eq!(chat(&s.app, &bogus, hello("demo")).await.status(), 401);
    }
    let response = chat(&s.app, &key, hello("demo")).await;
    assert_refused(response, 429, "ip_requests_per_minute").await;
}

#[tokio::test]
async fn the_day_limit_survives_a_restart_and_a_one_time_key_works_once() {
    let s = setup(&[]).await;
    let key = user_with_plan(&s.app, "day@example.com", 100, 2, None).await;
    for _ in 0..2 {
        assert_eq!(chat(&s.app, &key, hello("demo")).await.status(), 200);
    }
    let models = s._models;
    let models_path = models_file(&models, &s.mock);
    let app = s
        .app
        .restart(&[
            ("TOLLGATE_MODELS", models_path.as_str()),
            ("TOLLGATE_IP_REQUESTS_PER_MINUTE", "1000"),
        ])
        .await;
    let response = chat(&app, &key, hello("demo")).await;
    // Hours to wait: the SDKs are told not to sleep through them.
    assert_eq!(response.headers()["x-should-retry"], "false");
    assert_refused(response, 429, "requests_per_day").await;

    // A one-time key: exactly one call.
    let b = app.browser();
    app.login(&b, "day@example.com", crate::support::PASSWORD)
        .await;
    sqlx::query("UPDATE plans SET requests_per_day = 100 WHERE slug = 'test-day@example.com'")
        .execute(&app.db().await)
        .await
        .unwrap();
    let once = app
        .create_key(&b, json!({ "name": "once", "usage_cap": 1 }))
        .await;
    assert_eq!(chat(&app, &once, hello("demo")).await.status(), 200);
    let response = chat(&app, &once, hello("demo")).await;
    assert_refused(response, 401, "api_key_used_up").await;
}

/// A user as [`user_with_plan`] makes them (100 calls a day), and a key named
/// `once` with a usage cap of 1.
async fn one_time_key(app: &TestApp, email: &str, per_minute: i64) -> String {
    let (_, b) = user_with_plan_signed_in(app, email, per_minute, 100, None).await;
    app.create_key(&b, json!({ "name": "once", "usage_cap": 1 }))
        .await
}

/// A one-time key's call that cost nothing (the upstream failed before it
/// answered, or the client left before it did) leaves the key its one use.
#[tokio::test]
async fn a_one_time_key_keeps_its_use_through_calls_that_cost_nothing() {
    let s = setup(&[]).await;
    let once = one_time_key(&s.app, "spare@example.com", 100).await;
    let uses = || async {
        s.app
            .db_number("SELECT usage_count FROM api_keys WHERE name = 'once'")
            .await
    };

    // The upstream fails: a 502, and the use is back before it is answered.
    s.mock
        .set(|k| k.error_status = Some(reqwest::StatusCode::INTERNAL_SERVER_ERROR));
    let response = chat(&s.app, &once, hello("mock")).await;
    assert_eq!(response.status(), 502);
    assert_eq!(uses().await, 0);

    // The client leaves before the upstream answers.
    s.mock.set(|k| {
        k.error_status = None;
        k.latency = Duration::from_millis(1200);
    });
    give_up_after_300_ms(&s.app, &once, &hello("mock")).await;
    let left = (499, Some("client_disconnected".to_owned()), 0);
    let failed = (502, Some("upstream_error".to_owned()), 0);
    assert_eq!(usage_records(&s.app, 2).await, [failed, left]);
    let count = read_until(uses, |n| *n == 0, 30, Duration::from_millis(100)).await;
    assert_eq!(count, 0, "the abandoned call kept the key's use");

    // The one call that is answered uses it.
    s.mock.set(|k| k.latency = Duration::ZERO);
    assert_eq!(chat(&s.app, &once, hello("mock")).await.status(), 200);
    assert_eq!(uses().await, 1);
    let response = chat(&s.app, &once, hello("mock")).await;
    assert_refused(response, 401, "api_key_used_up").await;
}

/// A key without a cap counts the same calls a cap would, those the upstream
/// answered, so a cap set on it later counts on from the calls that used
/// it: failed calls and calls the client left before an answer are not uses.
#[tokio::test]
async fn a_key_without_a_cap_counts_only_answered_calls_as_uses() {
    let s = setup(&[]).await;
    let (_, b) = user_with_plan_signed_in(&s.app, "open@example.com", 100, 100, None).await;
    let open = s.app.create_key(&b, json!({ "name": "open" })).await;
    let uses = || async {
        s.app
            .db_number("SELECT usage_count FROM api_keys WHERE name = 'open'")
            .await
    };
    s.mock
        .set(|k| k.error_status = Some(reqwest::StatusCode::INTERNAL_SERVER_ERROR));
    for _ in 0..2 {
        assert_eq!(chat(&s.app, &open, hello("mock")).await.status(), 502);
    }
    s.mock.set(|k| {
        k.error_status = None;
        k.latency = Duration::from_millis(1200);
    });
    give_up_after_300_ms(&s.app, &open, &hello("mock")).await;
    s.mock.set(|k| k.latency = Duration::ZERO);
    assert_eq!(chat(&s.app, &open, hello("mock")).await.status(), 200);
    assert_eq!(chat(&s.app, &open, hello("demo")).await.status(), 200);
    assert_eq!(usage_records(&s.app, 5).await.len(), 5);
    let count = read_until(uses, |n| *n == 2, 30, Duration::from_millis(100)).await;
    assert_eq!(count, 2, "only the two answered calls are uses");

    // A cap of 3 set now leaves one more call.
    let id = s.app.key_id_named(&b, "open").await;
    let patched = b
        .client
        .patch(s.app.url(&format!("/api/v1/keys/{id}")))
        .json(&json!({ "usage_cap": 3 }))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    assert_eq!(chat(&s.app, &open, hello("demo")).await.status(), 200);
    let response = chat(&s.app, &open, hello("demo")).await;
    assert_refused(response, 401, "api_key_used_up").await;
}

/// The playground asks what a call it stopped was charged, by the call's
/// `x-request-id`: its owner is told the settled tokens and credits; another
/// account, or an id that is no call, learns nothing.
#[tokio::test]
async fn the_charge_of_a_call_is_told_to_its_owner_only() {
    let s = setup(&[]).await;
    let (key, owner) = user_with_plan_signed_in(&s.app, "payer@example.com", 100, 100, None).await;
    let (_, other) = user_with_plan_signed_in(&s.app, "other@example.com", 100, 100, None).await;
    let response = chat(&s.app, &key, hello("mock")).await;
    assert_eq!(response.status(), 200);
    let request_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let usage = response.json::<Value>().await.unwrap()["usage"].clone();

    let asked = s
        .app
        .call(&owner, "playground/charge", &[("request_id", &request_id)])
        .await;
    assert_eq!(asked.status, 200);
    let (prompt, completion) = (
        usage["prompt_tokens"].as_i64().unwrap(),
        usage["completion_tokens"].as_i64().unwrap(),
    );
    // At 1 credit per 1,000 tokens each way.
    let credits = format!("0.{:03}", prompt + completion);
    assert_eq!(
        asked.body,
        json!({ "prompt_tokens": prompt, "completion_tokens": completion, "credits": credits })
    );
    for (browser, id) in [(&other, request_id.as_str()), (&owner, "no-such-call")] {
        let asked = s
            .app
            .call(browser, "playground/charge", &[("request_id", id)])
            .await;
        assert_eq!(
            (asked.status.as_u16(), asked.body.clone()),
            (200, Value::Null)
        );
    }
    let signed_out = s.app.browser();
    let asked = s
        .app
        .call(
            &signed_out,
            "playground/charge",
            &[("request_id", &request_id)],
        )
        .await;
    assert_eq!(asked.status, 401);
}

/// Calls sent at once on a one-time key, all refused by another limit, are
/// each answered with that limit: none is told the key is used up because
/// another call had taken its use for a moment before being refused, and the
/// key keeps its use.
#[tokio::test]
async fn parallel_calls_on_a_one_time_key_that_a_limit_refuses_never_see_it_used_up() {
    let s = setup(&[]).await;
    let email = "turns@example.com";
    let (key, b) = user_with_plan_signed_in(&s.app, email, 1, 100, None).await;
    let once = s
        .app
        .create_key(&b, json!({ "name": "once", "usage_cap": 1 }))
        .await;
    // Another key of the user's takes the minute's one call.
    assert_eq!(chat(&s.app, &key, hello("demo")).await.status(), 200);

    let calls = (0..16).map(|_| chat(&s.app, &once, hello("demo")));
    for response in futures::future::join_all(calls).await {
        assert_refused(response, 429, "requests_per_minute").await;
    }
    let uses: i64 = s
        .app
        .db_number("SELECT usage_count FROM api_keys WHERE name = 'once'")
        .await;
    assert_eq!(uses, 0);
}

/// A call that comes while a one-time key's use is taken is refused as used
/// up, counting the call still running; once the use is given back (the upstream failed), the key works at
/// once, as the key check keeps no used-up count in its read cache. The
/// used-up refusal takes nothing from the address's windows.
#[tokio::test]
async fn a_one_time_key_works_again_as_soon_as_its_use_is_given_back() {
    let s = setup(&[("TOLLGATE_UPSTREAM_FIRST_BYTE_TIMEOUT_MS", "5000")]).await;
    let once = one_time_key(&s.app, "returned@example.com", 100).await;
    s.mock.set(|k| {
        k.latency = Duration::from_millis(1500);
        k.error_status = Some(reqwest::StatusCode::INTERNAL_SERVER_ERROR);
    });
    let (first, second) = tokio::join!(chat(&s.app, &once, hello("mock")), async {
        // Past the read cache's second, while the first call holds the use.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        chat(&s.app, &once, hello("mock")).await
    });
    // Told that its use may come back: a call still running holds it.
    assert_eq!(second.status(), 401);
    let refusal: Value = second.json().await.unwrap();
    assert_openai_error(&refusal, "api_key_used_up");
    let message = refusal["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("counting calls still running"),
        "{message}"
    );
    assert_eq!(first.status(), 502);
    s.mock.set(|k| {
        k.latency = Duration::ZERO;
        k.error_status = None;
    });
    let third = chat(&s.app, &once, hello("mock")).await;
    assert_eq!(third.status(), 200, "{:?}", third.text().await);
    // Used (its use kept, and written as such before the refusal is worded),
    // it is just used up, even at once.
    let fourth = chat(&s.app, &once, hello("mock")).await;
    assert_eq!(fourth.status(), 401);
    let refusal: Value = fourth.json().await.unwrap();
    assert_eq!(
        refusal["error"]["message"],
        "The API key has reached its usage cap."
    );

    // The failed call and the answered one count; the refused one does not.
    let ip_day: i64 = s
        .app
        .db_number("SELECT count FROM limit_windows WHERE subject LIKE 'ip:%' AND window = 'day'")
        .await;
    assert_eq!(ip_day, 2);
}

#[tokio::test]
async fn fifty_parallel_calls_against_a_balance_for_ten_let_exactly_ten_through() {
    // Each call holds 1 credit for max_tokens 1000 plus 0.014 for its prompt
    // (14 tokens estimated: "hi" and the model's system prompt, 4 per message, 2 more).
    let s = setup(&[("TOLLGATE_SIGNUP_CREDITS", "10.14")]).await;
    let key = user_with_plan(&s.app, "race@example.com", 1000, 1000, None).await;
    s.mock.set(|k| k.latency = Duration::from_millis(800));
    let body = json!({ "model": "mock", "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 1000 });
    let calls = (0..50).map(|_| chat(&s.app, &key, body.clone()));
    let statuses: Vec<u16> = futures::future::join_all(calls)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        10,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 402).count(),
        40,
        "{statuses:?}"
    );
    let (balance, ledger) = balance_and_ledger(&s.app, "race@example.com").await;
    assert!(balance >= 0);
    assert_eq!(balance, ledger);
}

#[tokio::test]
async fn a_client_that_leaves_mid_stream_is_charged_for_what_was_sent() {
    let s = setup(&[]).await;
    let key = user_with_plan(&s.app, "leave@example.com", 10, 100, None).await;
    s.mock.set(|k| {
        k.reply = "one two three four five six seven eight nine ten".into();
        k.chunk_delay = Duration::from_millis(150);
    });
    let mut body = hello("mock");
    body["stream"] = json!(true);
    let response = chat(&s.app, &key, body).await;
    let mut events = response.bytes_stream().eventsource();
    // Read two chunks, then hang up.
    for _ in 0..2 {
        events.next().await.unwrap().unwrap();
    }
    drop(events);
    let records = usage_records(&s.app, 1).await;
    let Some((status, code, cost)) = records.first().cloned() else {
        panic!("the abandoned stream was not settled");
    };
    assert_eq!(
        (status, code.as_deref()),
        (499, Some("client_disconnected"))
    );
    // The words sent, not only the prompt (14 tokens, 14,000 micro-credits).
    let completion = completion_tokens(&s.app).await;
    assert!(completion[0] > 0, "{completion:?}");
    assert!(cost > 14_000, "{cost}");
    let (balance, ledger) = balance_and_ledger(&s.app, "leave@example.com").await;
    assert_eq!(balance, 5_000_000 - cost);
    assert_eq!(balance, ledger);
}

/// Sends a chat call whose client gives up after 0.3 s, before any answer.
async fn give_up_after_300_ms(app: &TestApp, key: &str, body: &Value) {
    let gone = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(key)
        .timeout(Duration::from_millis(300))
        .json(body)
        .send()
        .await;
    assert!(gone.unwrap_err().is_timeout());
}

/// Waits until `n` usage records are written (settlement happens when the
/// server notices), and returns every record as `(status, error_code,
/// cost_micros)`, oldest first.
async fn usage_records(app: &TestApp, n: usize) -> Vec<(i64, Option<String>, i64)> {
    let mut records = Vec::new();
    for _ in 0..50 {
        records =
            sqlx::query_as("SELECT status, error_code, cost_micros FROM usage_records ORDER BY id")
                .fetch_all(&app.db().await)
                .await
                .unwrap();
        if records.len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    records
}

/// The completion tokens of every usage record, oldest first: what a call
/// that ended early was charged for beside its prompt.
async fn completion_tokens(app: &TestApp) -> Vec<i64> {
    sqlx::query_scalar("SELECT completion_tokens FROM usage_records ORDER BY id")
        .fetch_all(&app.db().await)
        .await
        .unwrap()
}

/// A client that gives up while the upstream is still working, before any
/// answer, gets its whole hold back: the call is settled as left, free.
#[tokio::test]
async fn a_client_that_leaves_before_the_answer_gets_its_hold_back() {
    let s = setup(&[]).await;
    let key = user_with_plan(&s.app, "early@example.com", 10, 100, None).await;
    s.mock.set(|k| k.latency = Duration::from_millis(1200));
    for stream in [false, true] {
        let mut body = hello("mock");
        body["max_tokens"] = json!(2000);
        body["stream"] = json!(stream);
        give_up_after_300_ms(&s.app, &key, &body).await;
    }
    let left = (499, Some("client_disconnected".to_owned()), 0);
    assert_eq!(usage_records(&s.app, 2).await, [left.clone(), left]);
    let (balance, ledger) = balance_and_ledger(&s.app, "early@example.com").await;
    assert_eq!((balance, ledger), (5_000_000, 5_000_000));

    // Once a stream's upstream has answered, leaving costs the prompt at least:
    // 14 tokens estimated ("Be brief." and "hi"), at 1 credit per 1,000.
    s.mock.set(|k| {
        k.latency = Duration::ZERO;
        k.chunk_delay = Duration::from_millis(1000);
    });
    let mut body = hello("mock");
    body["stream"] = json!(true);
    let response = chat(&s.app, &key, body).await;
    assert_eq!(response.status(), 200);
    drop(response);
    let records = usage_records(&s.app, 3).await;
    assert_eq!(
        records.get(2),
        Some(&(499, Some("client_disconnected".to_owned()), 14_000))
    );
    let (balance, ledger) = balance_and_ledger(&s.app, "early@example.com").await;
    assert_eq!((balance, ledger), (5_000_000 - 14_000, 5_000_000 - 14_000));
}

/// An upstream failure's message says the prompt was charged.
fn assert_charged_note(error: &Value) {
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.ends_with("The prompt was charged, as the model server had read it: each new try is charged again."),
        "{message}"
    );
}

/// A JSON answer whose status and headers came but whose body had not: the
/// upstream has read the prompt, so a client that leaves then, or a body that
/// never comes, costs the prompt, as a stream's does.
#[tokio::test]
async fn a_json_call_costs_its_prompt_once_the_upstream_has_answered() {
    let s = setup(&[]).await;
    let key = user_with_plan(&s.app, "headers@example.com", 10, 100, None).await;
    // The client gives up at 0.3 s; the body would come at 1.2 s.
    s.mock.set(|k| k.body_delay = Duration::from_millis(1200));
    let mut body = hello("mock");
    body["max_tokens"] = json!(2000);
    give_up_after_300_ms(&s.app, &key, &body).await;
    // 14 tokens estimated ("Be brief." and "hi"), at 1 credit per 1,000.
    let left = (499, Some("client_disconnected".to_owned()), 14_000);
    assert_eq!(usage_records(&s.app, 1).await, std::slice::from_ref(&left));

    // The body comes after the 1.5 s idle timeout: 504, and the prompt is charged.
    s.mock.set(|k| k.body_delay = Duration::from_millis(2500));
    let response = chat(&s.app, &key, body).await;
    assert_eq!(response.status(), 504);
    // Charged, so the SDKs are told not to retry by themselves (each retry
    // would be charged too), and the caller is told why.
    assert_eq!(response.headers()["x-should-retry"], "false");
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "upstream_timeout");
    assert_charged_note(&error);
    let quiet = (504, Some("upstream_timeout".to_owned()), 14_000);
    assert_eq!(usage_records(&s.app, 2).await, [left, quiet]);

    // A 200 whose body is an error, or not JSON at all: 502, and the prompt
    // is charged, as for a stream that ends in an error.
    for raw in [r#"{"error":{"message":"overloaded"}}"#, "<html>oops</html>"] {
        s.mock.set(|k| {
            k.body_delay = Duration::ZERO;
            k.raw_answer = Some(raw.into());
        });
        let response = chat(&s.app, &key, hello("mock")).await;
        assert_eq!(response.status(), 502, "{raw}");
        assert_eq!(response.headers()["x-should-retry"], "false", "{raw}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["type"], "api_error", "{raw}");
        assert_charged_note(&error);
    }
    let records = usage_records(&s.app, 4).await;
    assert_eq!(
        records[2..].iter().map(|r| (r.0, r.2)).collect::<Vec<_>>(),
        [(502, 14_000), (502, 14_000)]
    );
    let (balance, ledger) = balance_and_ledger(&s.app, "headers@example.com").await;
    assert_eq!((balance, ledger), (5_000_000 - 56_000, 5_000_000 - 56_000));
}

/// A whole answer from an upstream that counts nothing still has its
/// `usage`, as OpenAI's always do: the gateway's count, which it charged.
#[tokio::test]
async fn a_json_answer_without_usage_gets_the_count_charged() {
    let s = setup(&[]).await;
    let key = user_with_plan(&s.app, "uncounted@example.com", 10, 100, None).await;
    let mut totals = Vec::new();
    for usage in [None, Some(Value::Null)] {
        let mut answer = json!({
            "id": "chatcmpl-uncounted", "object": "chat.completion", "model": "mock-small",
            "choices": [{ "index": 0, "message": { "role": "assistant", "content": "eight by" }, "finish_reason": "stop" }],
        });
        if let Some(usage) = usage {
            answer["usage"] = usage;
        }
        s.mock.set(|k| k.raw_answer = Some(answer.to_string()));
        let response = chat(&s.app, &key, hello("mock")).await;
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        assert_eq!(text.matches("\"usage\"").count(), 1, "{text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["usage"]["completion_tokens"], 2, "eight bytes: {body}");
        let prompt = body["usage"]["prompt_tokens"].as_i64().unwrap();
        assert!(prompt > 0);
        assert_eq!(body["usage"]["total_tokens"], prompt + 2);
        totals.push(prompt + 2);
    }
    // Charged as shown: 1 credit per 1,000 tokens.
    let records = usage_records(&s.app, 2).await;
    let charged: Vec<(i64, i64)> = records.iter().map(|r| (r.0, r.2)).collect();
    let shown: Vec<(i64, i64)> = totals.iter().map(|t| (200, t * 1000)).collect();
    assert_eq!(charged, shown);
}

/// An upstream that reports absurd usage (here more than an `i64` holds) is
/// charged and recorded for at most the prompt its request could hold (a
/// token a byte of the body and the model's system prompt, and a few a
/// message), and a reply for at most the call's cap (`max_tokens` 100; two
/// bytes were sent): the counts stored never wrap, the user keeps the rest
/// of the balance, and the usage page can still add the calls up.
#[tokio::test]
async fn absurd_usage_from_an_upstream_is_held_to_a_ceiling() {
    let s = setup(&[("TOLLGATE_SIGNUP_CREDITS", "100000000")]).await;
    let b = s.app.browser();
    s.app.register(&b, "absurd@example.com", "Caller").await;
    let key = s.app.create_key(&b, json!({ "name": "absurd" })).await;
    let answer = json!({
        "id": "chatcmpl-absurd", "object": "chat.completion", "model": "mock-small",
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": "hi" }, "finish_reason": "stop" }],
        "usage": {
            "prompt_tokens": 9_000_000_000_000_000_000_u64,
            "completion_tokens": 12_000_000_000_000_000_000_u64,
            "completion_tokens_details": { "reasoning_tokens": 5 },
        },
    });
    s.mock.set(|k| k.raw_answer = Some(answer.to_string()));
    let mut shown = Vec::new();
    for _ in 0..2 {
        let response = chat(&s.app, &key, hello("mock")).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        shown.push(body["usage"].clone());
    }
    // The body's bytes, "Be brief." and 16 for each of the two messages
    // with 256 for the template and 200,000 the upstream may add, and 100
    // of reply, at 1 credit per 1,000.
    let most_prompt =
        serde_json::to_vec(&hello("mock")).unwrap().len() as i64 + 9 + 2 * 16 + 256 + 200_000;
    // The caller is told the counts charged, not the upstream's, beside the
    // rest of its usage.
    let charged = json!({
        "prompt_tokens": most_prompt,
        "completion_tokens": 100,
        "total_tokens": most_prompt + 100,
        "completion_tokens_details": { "reasoning_tokens": 5 },
    });
    assert_eq!(shown, [charged.clone(), charged]);
    let cost = most_prompt * 1_000 + 100_000;
    let records = usage_records(&s.app, 2).await;
    assert_eq!(records.iter().map(|r| r.2).collect::<Vec<_>>(), [cost; 2]);
    let tokens: Vec<(i64, i64)> =
        sqlx::query_as("SELECT prompt_tokens, completion_tokens FROM usage_records ORDER BY id")
            .fetch_all(&s.app.db().await)
            .await
            .unwrap();
    assert_eq!(tokens, [(most_prompt, 100); 2]);
    // 100,000,000 credits at sign-up and the Starter plan's 100 a month.
    let left = 100_000_000_000_000 + 100_000_000 - 2 * cost;
    let (balance, ledger) = balance_and_ledger(&s.app, "absurd@example.com").await;
    assert_eq!((balance, ledger), (left, left));

    let page = b.client.get(s.app.url("/usage")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(!html.contains(r#"role="alert""#), "{html}");
    assert!(html.contains("chart-tokens"), "{html}");
}

/// A call still running when the server stops after its grace period, the
/// upstream not having answered, is stopped with 503 and gets its hold back
/// before the last write, so the next start sees the full balance, and its
/// one-time key's use back with it.
#[tokio::test]
async fn holds_of_calls_still_running_at_shutdown_are_released() {
    let s = setup(&[
        ("TOLLGATE_SHUTDOWN_GRACE_SECS", "1"),
        ("TOLLGATE_UPSTREAM_FIRST_BYTE_TIMEOUT_MS", "20000"),
    ])
    .await;
    let key = one_time_key(&s.app, "late@example.com", 10).await;
    s.mock.set(|k| k.latency = Duration::from_secs(6));
    let mut body = hello("mock");
    body["max_tokens"] = json!(2000);
    let slow = tokio::spawn({
        let client = s.app.client.clone();
        let url = s.app.url("/v1/chat/completions");
        async move { client.post(url).bearer_auth(&key).json(&body).send().await }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let app = s.app.restart(&[]).await;
    let stopped = slow.await.unwrap().unwrap();
    assert_refused(stopped, 503, "server_stopping").await;
    let (balance, ledger) = balance_and_ledger(&app, "late@example.com").await;
    assert_eq!((balance, ledger), (5_000_000, 5_000_000));
    let kinds: Vec<String> = sqlx::query_scalar("SELECT kind FROM credit_ledger ORDER BY id")
        .fetch_all(&app.db().await)
        .await
        .unwrap();
    assert_eq!(kinds, ["grant", "reserve", "refund"]);
    let uses: i64 = app
        .db_number("SELECT usage_count FROM api_keys WHERE name = 'once'")
        .await;
    assert_eq!(uses, 0);
}

/// A one-time key's use counts once the upstream has answered: it is
/// written then, not when a long stream ends, so a crash mid-stream cannot
/// give it back and the key work again.
#[tokio::test]
async fn a_one_time_keys_use_is_written_as_soon_as_the_upstream_answers() {
    let s = setup(&[]).await;
    let key = one_time_key(&s.app, "kept@example.com", 10).await;
    s.mock.set(|k| {
        k.reply = "one two three four five six seven eight".into();
        k.chunk_delay = Duration::from_millis(300);
    });
    let mut events = long_stream(&s.app, &key).await;
    events.next().await.unwrap().unwrap();
    let in_flight = || async {
        s.app
            .db_number("SELECT COUNT(*) FROM capped_uses_in_flight")
            .await
    };
    let left = read_until(in_flight, |n| *n == 0, 10, Duration::from_millis(100)).await;
    assert_eq!(left, 0, "the use is still in flight mid-stream");
    let uses: i64 = s
        .app
        .db_number("SELECT usage_count FROM api_keys WHERE name = 'once'")
        .await;
    assert_eq!(uses, 1);
    // The stream is still running: this was written before it ended.
    assert!(events.next().await.is_some());
    let mut rest = 0;
    while let Some(event) = events.next().await {
        event.unwrap();
        rest += 1;
    }
    assert!(rest > 0);
    let response = chat(&s.app, &key, hello("mock")).await;
    assert_refused(response, 401, "api_key_used_up").await;
}

/// A stream of the mock's reply for `key`, with room for 2,000 tokens.
async fn long_stream(
    app: &TestApp,
    key: &str,
) -> impl futures::Stream<
    Item = Result<eventsource_stream::Event, eventsource_stream::EventStreamError<reqwest::Error>>,
> + use<> {
    let mut body = hello("mock");
    body["stream"] = json!(true);
    body["max_tokens"] = json!(2000);
    let response = chat(app, key, body).await;
    assert_eq!(response.status(), 200);
    response.bytes_stream().eventsource()
}

/// The one call, a stream, was stopped by the server and charged for what it
/// sent, from the 5 credits `email` started with.
async fn assert_charged_as_stopped(app: &TestApp, email: &str) {
    let (status, code, completion, cost): (i64, String, i64, i64) = sqlx::query_as(
        "SELECT status, error_code, completion_tokens, cost_micros FROM usage_records",
    )
    .fetch_one(&app.db().await)
    .await
    .expect("the stream was settled");
    assert_eq!((status, code.as_str()), (503, "server_stopping"));
    assert!(completion > 0 && cost > 0, "{completion} tokens, {cost}");
    let (balance, ledger) = balance_and_ledger(app, email).await;
    assert_eq!((balance, ledger), (5_000_000 - cost, 5_000_000 - cost));
}

/// A stream still running when the grace period ends is stopped: the caller
/// gets an error event, what was streamed is charged, and the one-time key's
/// use stays spent, as for any call the upstream answered.
#[tokio::test]
async fn a_stream_running_when_the_server_stops_is_charged_for_what_it_sent() {
    let s = setup(&[("TOLLGATE_SHUTDOWN_GRACE_SECS", "1")]).await;
    let key = one_time_key(&s.app, "cut@example.com", 10).await;
    s.mock.set(|k| {
        k.chunk_delay = Duration::from_millis(200);
        k.reply = vec!["word"; 40].join(" ");
    });
    let mut events = long_stream(&s.app, &key).await;
    // The role chunk and two words, then the server is asked to stop.
    for _ in 0..3 {
        events.next().await.unwrap().unwrap();
    }
    let read_rest = async {
        let mut rest = Vec::new();
        while let Some(Ok(event)) = events.next().await {
            rest.push(event.data);
        }
        rest
    };
    let (rest, app) = tokio::join!(read_rest, s.app.restart(&[]));
    let last: Value = serde_json::from_str(rest.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "server_stopping", "{rest:?}");
    assert!(rest.len() < 40, "stopped before the end: {rest:?}");

    assert_charged_as_stopped(&app, "cut@example.com").await;
    let uses: i64 = app
        .db_number("SELECT usage_count FROM api_keys WHERE name = 'once'")
        .await;
    assert_eq!(uses, 1);
}

/// A stream whose client has stopped reading is not polled, so it cannot see
/// the server stop: the server charges it at exit for what it had sent,
/// rather than releasing its hold whole.
#[tokio::test]
async fn a_stream_whose_client_stopped_reading_is_charged_when_the_server_stops() {
    let s = setup(&[("TOLLGATE_SHUTDOWN_GRACE_SECS", "1")]).await;
    let key = user_with_plan(&s.app, "unread@example.com", 10, 100, None).await;
    // 12.5 MiB of words, far more than the sockets on the way can hold.
    let word = "x".repeat(64 * 1024);
    s.mock.set(|k| k.reply = vec![word.as_str(); 200].join(" "));
    let mut events = long_stream(&s.app, &key).await;
    events.next().await.unwrap().unwrap();
    // The client reads no more, and keeps the connection open meanwhile.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let app = s.app.restart(&[]).await;

    assert_charged_as_stopped(&app, "unread@example.com").await;
    drop(events);
}

#[tokio::test]
async fn models_and_the_simple_endpoint_use_the_key() {
    let s = setup(&[]).await;
    let key = user_with_plan(&s.app, "models@example.com", 10, 100, None).await;
    let list: Value = get_with_key(&s.app, &key, "/v1/models")
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["mock", "demo"]);
    // `created` stays put from call to call, as OpenAI's does.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let again: Value = get_with_key(&s.app, &key, "/v1/models/demo")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["created"], list["data"][1]["created"], "{again}");

    let response = simple_call(
        &s.app,
        &key,
        json!({ "system_prompt": "Be kind.", "message": "hello", "tokens": 50 }),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({ "role": "assistant", "content": "Hello from the mock upstream." })
    );
    // What went upstream is the caller's prompt, message and token cap.
    let sent = s
        .mock
        .requests()
        .last()
        .expect("a call upstream")
        .body
        .clone();
    assert_eq!(
        sent["messages"],
        json!([
            { "role": "system", "content": "Be kind." },
            { "role": "user", "content": "hello" }
        ]),
        "{sent}"
    );
    assert_eq!(sent["max_tokens"], 50, "{sent}");
    assert_eq!(sent["model"], "mock-small", "{sent}");
    let response = simple_call(&s.app, &key, json!({ "msg": "x" })).await;
    assert_refused(response, 400, "invalid_request").await;
    // The fields as an array are not the object asked for.
    let response = simple_call(&s.app, &key, json!(["be brief", "hi", 3])).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_openai_error(&body, "invalid_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("JSON object"),
        "{body}"
    );
    // JSON that does not parse is said in the parser's words, not as a
    // body of the wrong shape.
    let response = s
        .app
        .client
        .post(s.app.url("/response"))
        .header("x-api-key", &key)
        .header("content-type", "application/json")
        .body(r#"{"message": "hi"} and more"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("The body is not valid JSON: trailing characters"),
        "{body}"
    );
    // A wrong field is named, with what it must be (a negative, fractional
    // or quoted `tokens` had serde's words and no `param`).
    for (sent, param) in [
        (json!({ "message": "hi", "tokens": -5 }), "tokens"),
        (json!({ "message": "hi", "tokens": 5.5 }), "tokens"),
        (json!({ "message": "hi", "tokens": "5" }), "tokens"),
        (json!({ "message": "hi", "tokens": 0 }), "tokens"),
        (json!({ "message": 3 }), "message"),
        (json!({ "tokens": 5 }), "message"),
        (
            json!({ "message": "hi", "system_prompt": ["x"] }),
            "system_prompt",
        ),
    ] {
        let response = simple_call(&s.app, &key, sent.clone()).await;
        assert_eq!(response.status(), 400, "{sent}");
        let body: Value = response.json().await.unwrap();
        assert_openai_error(&body, "invalid_request");
        assert_eq!(body["error"]["param"], param, "{sent}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(&format!("`{param}`")), "{sent}: {body}");
        assert!(!message.contains("max_tokens"), "{sent}: {body}");
    }

    // Stream options without a stream are refused, as OpenAI refuses them.
    let mut body = hello("mock");
    body["stream_options"] = json!({ "include_usage": true });
    let response = chat(&s.app, &key, body).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_openai_error(&body, "invalid_request");
    assert_eq!(body["error"]["param"], "stream_options");

    // An SDK's placeholder bearer beside the key in x-api-key: the key counts.
    let response = s
        .app
        .client
        .post(s.app.url("/v1/chat/completions"))
        .bearer_auth("sk-placeholder")
        .header("x-api-key", &key)
        .json(&hello("mock"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // CORS preflight for browser callers.
    let response = s
        .app
        .client
        .request(reqwest::Method::OPTIONS, s.app.url("/v1/chat/completions"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,x-stainless-os,openai-organization",
        )
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    // The OpenAI SDKs' own headers are allowed, or a browser would send nothing.
    let allowed = response.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for name in ["authorization", "x-stainless-os", "openai-organization"] {
        assert!(allowed.contains(name), "{allowed}");
    }
}

/// `/response` answers the reply's text however the upstream sent it: a
/// content given as an array of parts, or only a refusal, is not answered as
/// an empty string the caller was charged for.
#[tokio::test]
async fn the_simple_endpoint_answers_text_parts_and_refusals() {
    let s = setup(&[]).await;
    let key = user_with_plan(&s.app, "parts@example.com", 10, 100, None).await;
    let answer = |message: Value| {
        json!({
            "id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{ "index": 0, "message": message, "finish_reason": "stop" }],
            "usage": { "prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9 },
        })
    };
    for (message, content) in [
        (
            json!({ "role": "assistant", "content": [
                { "type": "text", "text": "Hello, " },
                { "type": "text", "text": "parts." },
            ] }),
            "Hello, parts.",
        ),
        (
            json!({ "role": "assistant", "content": null, "refusal": "I can't help with that." }),
            "I can't help with that.",
        ),
        (
            json!({ "role": "assistant", "content": "Plain.", "refusal": null }),
            "Plain.",
        ),
    ] {
        s.mock
            .set(|k| k.raw_answer = Some(answer(message.clone()).to_string()));
        let response = simple_call(&s.app, &key, json!({ "message": "hello" })).await;
        let (status, body) = status_and_json(response).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            body,
            json!({ "role": "assistant", "content": content }),
            "{message}"
        );
    }
}

/// `GET /v1/models/{model}`, the OpenAI SDKs' `models.retrieve`: a model the
/// key may call in OpenAI's shape; any other name, one with slashes too, 404.
#[tokio::test]
async fn one_model_is_retrieved_by_name_if_the_key_may_call_it() {
    let s = setup(&[]).await;
    let b = s.app.browser();
    s.app.register(&b, "retrieve@example.com", "Caller").await;
    let key = s
        .app
        .create_key(
            &b,
            json!({ "name": "demo only", "allowed_models": ["demo"] }),
        )
        .await;
    let get = |path: &'static str| get_with_key(&s.app, &key, path);
    let response = get("/v1/models/demo").await;
    assert_eq!(response.status(), 200);
    let model: Value = response.json().await.unwrap();
    assert_eq!(model["id"], "demo");
    assert_eq!(model["object"], "model");
    assert!(
        model["created"].is_i64() && model["owned_by"].is_string(),
        "{model}"
    );

    // "mock" exists, but this key may not call it; the others do not exist.
    for path in [
        "/v1/models/mock",
        "/v1/models/nope",
        "/v1/models/openai/gpt-4o",
        // Not UTF-8 once decoded: axum alone would answer in plain text.
        "/v1/models/%FF",
    ] {
        let response = get(path).await;
        assert_eq!(response.status(), 404, "{path}");
        assert!(
            response
                .headers()
                .contains_key("x-ratelimit-remaining-requests")
        );
        let error: Value = response.json().await.unwrap();
        assert_openai_error(&error, "model_not_found");
        assert_eq!(error["error"]["param"], "model", "{path}");
    }
    let response = s
        .app
        .client
        .get(s.app.url("/v1/models/demo"))
        .bearer_auth("tg_not_a_key")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = s
        .app
        .client
        .delete(s.app.url("/v1/models/demo"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET");
}

/// Wrong methods and odd paths under the model API still answer in its shape.
#[tokio::test]
async fn wrong_methods_and_odd_paths_answer_in_the_api_shape() {
    let s = setup(&[]).await;
    let client = &s.app.client;
    // Each counts in the address's windows (1,000 a minute here) and says so.
    let mut remaining = 1000;
    for (method, path, status, code, allow) in [
        (
            reqwest::Method::GET,
            "/v1/chat/completions",
            405,
            "method_not_allowed",
            Some("POST"),
        ),
        (
            reqwest::Method::POST,
            "/v1/models",
            405,
            "method_not_allowed",
            Some("GET"),
        ),
        (
            reqwest::Method::GET,
            "/response",
            405,
            "method_not_allowed",
            Some("POST"),
        ),
        (reqwest::Method::GET, "/v1/", 404, "unknown_url", None),
        // Near misses answered in the API's shape, not with the site's page.
        (
            reqwest::Method::POST,
            "/response/",
            404,
            "unknown_url",
            None,
        ),
        (
            reqwest::Method::POST,
            "/V1/chat/completions",
            404,
            "unknown_url",
            None,
        ),
        (
            reqwest::Method::POST,
            "//v1/chat/completions",
            404,
            "unknown_url",
            None,
        ),
        (reqwest::Method::POST, "/Response", 404, "unknown_url", None),
        (
            reqwest::Method::POST,
            "//response",
            404,
            "unknown_url",
            None,
        ),
        (
            reqwest::Method::GET,
            "///v1/models",
            404,
            "unknown_url",
            None,
        ),
        (reqwest::Method::GET, "/V1", 404, "unknown_url", None),
        // OpenAI's Responses API without /v1: told where the API lives.
        (
            reqwest::Method::POST,
            "/responses",
            404,
            "unknown_url",
            None,
        ),
        (
            reqwest::Method::POST,
            "//responses",
            404,
            "unknown_url",
            None,
        ),
        (
            reqwest::Method::POST,
            "/Chat/completions",
            404,
            "unknown_url",
            None,
        ),
        (
            reqwest::Method::DELETE,
            "/v1/files/abc",
            404,
            "unknown_url",
            None,
        ),
    ] {
        let response = client
            .request(method.clone(), s.app.url(path))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{method} {path}");
        assert_eq!(
            response.headers().get("allow").map(|v| v.to_str().unwrap()),
            allow,
            "{method} {path}"
        );
        remaining -= 1;
        assert_eq!(
            response.headers()["x-ratelimit-remaining-requests"],
            remaining.to_string().as_str(),
            "{method} {path}"
        );
        assert_eq!(response.headers()["x-ratelimit-limit-requests"], "1000");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/json"),
            "{method} {path}"
        );
        assert_openai_error(&response.json().await.unwrap(), code);
    }

    // A bad body is answered after the address's windows, with their headers.
    let response = client
        .post(s.app.url("/v1/chat/completions"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert_eq!(response.headers()["x-ratelimit-limit-requests"], "1000");
    assert_eq!(
        response.headers()["x-ratelimit-remaining-requests"],
        (remaining - 1).to_string().as_str()
    );
    assert_openai_error(&response.json().await.unwrap(), "invalid_request");
}

/// A call refused after its key is known (an unknown model, a key's model or
/// address rule, too few credits), and the model list, answer with the
/// user's windows as they stand, not the address's, and take nothing from them.
#[tokio::test]
async fn refusals_after_the_key_show_the_users_windows() {
    let s = setup(&[]).await;
    let (key, b) = user_with_plan_signed_in(&s.app, "windows@example.com", 3, 50, None).await;
    let demo_only = s
        .app
        .create_key(
            &b,
            json!({ "name": "demo-only", "allowed_models": ["demo"] }),
        )
        .await;
    let elsewhere = s
        .app
        .create_key(
            &b,
            json!({ "name": "elsewhere", "ip_allowlist": ["10.9.9.0/24"] }),
        )
        .await;
    let shows = |response: &reqwest::Response, limit: &str, remaining: &str| {
        let headers = response.headers();
        assert_eq!(
            (
                headers["x-ratelimit-limit-requests"].to_str().unwrap(),
                headers["x-ratelimit-remaining-requests"].to_str().unwrap(),
            ),
            (limit, remaining),
            "{}",
            response.status()
        );
        let reset = headers["x-ratelimit-reset-requests"].to_str().unwrap();
        let secs: u64 = reset.trim_end_matches('s').parse().unwrap();
        assert!((1..=60).contains(&secs), "{reset}");
    };

    let response = chat(&s.app, &key, hello("demo")).await;
    assert_eq!(response.status(), 200);
    shows(&response, "3", "2");

    let response = chat(&s.app, &key, hello("no-such-model")).await;
    assert_eq!(response.status(), 404);
    shows(&response, "3", "2");

    let response = chat(&s.app, &demo_only, hello("mock")).await;
    assert_eq!(response.status(), 403);
    shows(&response, "3", "2");

    let response = chat(&s.app, &elsewhere, hello("demo")).await;
    assert_eq!(response.status(), 403);
    shows(&response, "3", "2");

    let mut costly = hello("mock");
    costly["max_tokens"] = json!(900_000);
    let response = chat(&s.app, &key, costly).await;
    assert_eq!(response.status(), 402);
    shows(&response, "3", "2");

    // Listing the models shows them too.
    let response = get_with_key(&s.app, &key, "/v1/models").await;
    assert_eq!(response.status(), 200);
    shows(&response, "3", "2");

    // None of them took from the user's minute: two calls are still left.
    for remaining in ["1", "0"] {
        let response = chat(&s.app, &key, hello("demo")).await;
        assert_eq!(response.status(), 200);
        shows(&response, "3", remaining);
    }
    let response = chat(&s.app, &key, hello("demo")).await;
    assert_eq!(response.status(), 429);
    shows(&response, "3", "0");
}

/// The address limits count an IPv6 caller by its /64, so stepping through
/// the addresses of one's own block gives no fresh windows.
#[tokio::test]
async fn an_ipv6_caller_is_limited_by_its_block() {
    let s = setup(&[
        ("TOLLGATE_TRUSTED_PROXIES", "127.0.0.1"),
        ("TOLLGATE_IP_REQUESTS_PER_MINUTE", "2"),
    ])
    .await;
    let key = user_with_plan(&s.app, "block@example.com", 100, 1000, None).await;
    let from = |ip: &'static str| {
        s.app
            .client
            .post(s.app.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .header("x-forwarded-for", ip)
            .json(&hello("demo"))
            .send()
    };
    for ip in ["2001:db8:1:2::1", "2001:db8:1:2:ffff::9"] {
        assert_eq!(from(ip).await.unwrap().status(), 200, "{ip}");
    }
    let response = from("2001:db8:1:2::3").await.unwrap();
    assert_refused(response, 429, "ip_requests_per_minute").await;
    // The next block over is another caller.
    assert_eq!(from("2001:db8:1:3::1").await.unwrap().status(), 200);
    let day: i64 = s
        .app
        .db_number("SELECT count FROM limit_windows WHERE subject = 'ip:2001:db8:1:2::/64'")
        .await;
    assert_eq!(day, 2);
}

#[tokio::test]
async fn key_rules_apply_on_the_next_request() {
    let s = setup(&[("TOLLGATE_TRUSTED_PROXIES", "127.0.0.1")]).await;
    let (key, b) = user_with_plan_signed_in(&s.app, "rules@example.com", 100, 1000, Some(1)).await;

    // The IP allowlist reads X-Forwarded-For from a trusted proxy.
    let office = s
        .app
        .create_key(
            &b,
            json!({ "name": "office", "ip_allowlist": ["10.1.2.0/24"] }),
        )
        .await;
    let via = |ip: &'static str| {
        s.app
            .client
            .post(s.app.url("/v1/chat/completions"))
            .bearer_auth(&office)
            .header("x-forwarded-for", ip)
            .json(&hello("demo"))
            .send()
    };
    assert_eq!(via("10.1.2.3").await.unwrap().status(), 200);
    assert_eq!(via("10.9.9.9").await.unwrap().status(), 403);

    // Referrer rule: the Origin must be an allowed domain.
    let site = s
        .app
        .create_key(
            &b,
            json!({ "name": "site", "referrer_domains": ["*.example.com"] }),
        )
        .await;
    let from = |origin: Option<&'static str>| {
        let mut request = s
            .app
            .client
            .post(s.app.url("/v1/chat/completions"))
            .bearer_auth(&site)
            .json(&hello("demo"));
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        request.send()
    };
    assert_eq!(
        from(Some("https://app.example.com"))
            .await
            .unwrap()
            .status(),
        200
    );
    let refused = from(Some("https://evil.test")).await.unwrap();
    assert_refused(refused, 403, "referrer_not_allowed").await;
    assert_eq!(from(None).await.unwrap().status(), 403);

    // Allowed models: a key limited to demo cannot call mock.
    let demo_only = s
        .app
        .create_key(
            &b,
            json!({ "name": "demo-only", "allowed_models": ["demo"] }),
        )
        .await;
    let response = chat(&s.app, &demo_only, hello("mock")).await;
    assert_eq!(response.status(), 403);
    let refused: Value = response.json().await.unwrap();
    assert_openai_error(&refused, "model_not_allowed");
    assert_eq!(refused["error"]["param"], "model", "{refused}");
    let list: Value = get_with_key(&s.app, &demo_only, "/v1/models")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    // The simple endpoint names no model: it uses the first this key may call,
    // and the scheme of `Authorization` is read in any case.
    let mocked = s.mock.requests().len();
    let response = s
        .app
        .client
        .post(s.app.url("/response"))
        .header("authorization", format!("BEARER {demo_only}"))
        .json(&json!({ "message": "hello there", "tokens": 20 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["role"], "assistant");
    assert!(!answer["content"].as_str().unwrap().is_empty(), "{answer}");
    assert_eq!(
        s.mock.requests().len(),
        mocked,
        "demo answered, not the mock"
    );

    // One call at a time on this plan: the second concurrent call gets 429.
    s.mock.set(|k| k.latency = Duration::from_millis(600));
    let (first, second) = tokio::join!(chat(&s.app, &key, hello("mock")), async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        chat(&s.app, &key, hello("mock")).await
    });
    assert_eq!(first.status(), 200);
    assert_refused(second, 429, "parallel_requests").await;
    s.mock.set(|k| k.latency = Duration::ZERO);

    // Revocation and a disabled owner take effect on the next request.
    let id: i64 = s
        .app
        .db_number("SELECT id FROM api_keys WHERE name = 'office'")
        .await;
    b.client
        .delete(s.app.url(&format!("/api/v1/keys/{id}")))
        .send()
        .await
        .unwrap();
    let response = via("10.1.2.3").await.unwrap();
    assert_refused(response, 401, "revoked_api_key").await;
    sqlx::query("UPDATE users SET status = 'disabled' WHERE email = 'rules@example.com'")
        .execute(&s.app.db().await)
        .await
        .unwrap();
    let response = chat(&s.app, &key, hello("demo")).await;
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await.unwrap();
    assert_openai_error(&body, "account_disabled");
    assert_eq!(
        body["error"]["type"], "permission_error",
        "as a 403 is typed"
    );
}

#[tokio::test]
async fn the_ip_limit_comes_before_any_key_work_and_bodies_have_a_limit() {
    let s = setup(&[
        ("TOLLGATE_IP_REQUESTS_PER_MINUTE", "3"),
        ("TOLLGATE_MAX_BODY_BYTES", "2048"),
    ])
    .await;
    let bogus = format!("tg_live_{}", "x".repeat(50));
    // A body over the limit is refused, and counts in the address's windows
    // like any call, with their headers.
    let big =
        json!({ "model": "demo", "messages": [{ "role": "user", "content": "x".repeat(4096) }] });
    let response = chat(&s.app, &bogus, big.clone()).await;
    assert_eq!(response.status(), 413);
    assert_eq!(response.headers()["x-ratelimit-limit-requests"], "3");
    assert_eq!(response.headers()["x-ratelimit-remaining-requests"], "2");
    assert_openai_error(&response.json().await.unwrap(), "request_too_large");

    // A browser caller is shown the refusal itself, not a CORS failure.
    let response = s
        .app
        .client
        .post(s.app.url("/v1/chat/completions"))
        .header("origin", "https://app.example.com")
        .bearer_auth(&bogus)
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_eq!(response.headers()["access-control-allow-origin"], "*");
    assert_eq!(response.headers()["x-ratelimit-remaining-requests"], "1");
    // Its script may read the limits and whether to retry, as the SDKs do.
    let exposed = response.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    for name in [
        "retry-after",
        "x-request-id",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-tokens",
        "x-should-retry",
    ] {
        assert!(exposed.split(',').any(|n| n.trim() == name), "{exposed}");
    }

    // A bad key counts too.
    let response = chat(&s.app, &bogus, hello("demo")).await;
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["x-ratelimit-remaining-requests"], "0");

    // The window is full: bad keys and big bodies alike are cut off first.
    for body in [hello("demo"), big] {
        let response = chat(&s.app, &bogus, body).await;
        assert_eq!(response.status(), 429);
        assert!(response.headers().contains_key("retry-after"));
        assert_openai_error(&response.json().await.unwrap(), "ip_requests_per_minute");
    }
}

/// An upstream's own refusals reach the caller as what they are: its 429 as a
/// 429 with the wait it asked for (a second when it named none), a 503's wait
/// with its 502, its 400 with
/// OpenAI's code and param, which callers branch on; a code of its own is not
/// passed on. None of them costs anything.
#[tokio::test]
async fn an_upstreams_rate_limit_and_openai_codes_reach_the_caller() {
    let s = setup(&[]).await;
    let email = "upstream-codes@example.com";
    let key = user_with_plan(&s.app, email, 10, 100, None).await;
    s.mock.set(|k| {
        k.error_status = Some(reqwest::StatusCode::TOO_MANY_REQUESTS);
        k.retry_after = Some("7");
    });
    let mut stream = hello("mock");
    stream["stream"] = json!(true);
    for body in [hello("mock"), stream] {
        let response = chat(&s.app, &key, body).await;
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "7");
        let error: Value = response.json().await.unwrap();
        assert_openai_error(&error, "upstream_rate_limited");
        assert_eq!(error["error"]["type"], "rate_limit_error");
    }
    s.mock.set(|k| k.retry_after = None);
    let response = chat(&s.app, &key, hello("mock")).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
    // A longer wait is passed on up to a day, as README says (it was cut
    // to an hour).
    for (asked, passed) in [("7200", "7200"), ("999999999", "86400")] {
        s.mock.set(|k| k.retry_after = Some(asked));
        let response = chat(&s.app, &key, hello("mock")).await;
        assert_eq!(response.headers()["retry-after"], passed, "{asked}");
    }

    // A failing upstream's wait (a 503 while its model loads) is passed on
    // with its 502, and said; without one, the 502 names none.
    s.mock.set(|k| {
        k.error_status = Some(reqwest::StatusCode::SERVICE_UNAVAILABLE);
        k.retry_after = Some("20");
    });
    let response = chat(&s.app, &key, hello("mock")).await;
    assert_eq!(response.status(), 502);
    assert_eq!(response.headers()["retry-after"], "20");
    assert!(response.headers().get("x-should-retry").is_none());
    let error: Value = response.json().await.unwrap();
    assert_openai_error(&error, "upstream_error");
    assert_eq!(
        error["error"]["message"],
        "The model server failed to answer and asked for a wait of 20 s. Try again then."
    );
    s.mock.set(|k| k.retry_after = None);
    let response = chat(&s.app, &key, hello("mock")).await;
    assert_eq!(response.status(), 502);
    assert!(response.headers().get("retry-after").is_none());

    s.mock.set(|k| {
        k.error_status = Some(reqwest::StatusCode::BAD_REQUEST);
        k.error_code = Some("context_length_exceeded");
    });
    let response = chat(&s.app, &key, hello("mock")).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_openai_error(&error, "context_length_exceeded");
    assert_eq!(error["error"]["param"], "messages");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("mock upstream error 400"),
        "{error}"
    );
    s.mock.set(|k| k.error_code = Some("vendor_specific"));
    let response = chat(&s.app, &key, hello("mock")).await;
    assert_refused(response, 400, "upstream_rejected_request").await;
    // A used-up upstream account is not a limit to wait out: 502, no Retry-After.
    s.mock.set(|k| {
        k.error_status = Some(reqwest::StatusCode::TOO_MANY_REQUESTS);
        k.error_code = Some("insufficient_quota");
    });
    let response = chat(&s.app, &key, hello("mock")).await;
    assert!(response.headers().get("retry-after").is_none());
    assert_refused(response, 502, "upstream_error").await;

    let (balance, ledger) = balance_and_ledger(&s.app, email).await;
    assert_eq!((balance, ledger), (5_000_000, 5_000_000));
    // Admitted calls: each has its usage record, and none is a refusal.
    let codes: Vec<(i64, String)> =
        sqlx::query_as("SELECT status, error_code FROM usage_records ORDER BY id")
            .fetch_all(&s.app.db().await)
            .await
            .unwrap();
    let limited = (429, "upstream_rate_limited".to_owned());
    let too_long = (400, "context_length_exceeded".to_owned());
    let rejected = (400, "upstream_rejected_request".to_owned());
    let failed = (502, "upstream_error".to_owned());
    assert_eq!(
        codes,
        [
            limited.clone(),
            limited.clone(),
            limited.clone(),
            limited.clone(),
            limited,
            failed.clone(),
            failed.clone(),
            too_long,
            rejected,
            failed
        ]
    );
    let refusals: i64 = s
        .app
        .db_number("SELECT COUNT(*) FROM gateway_refusals")
        .await;
    assert_eq!(refusals, 0);
}

/// A stream whose upstream goes quiet (a model thinking) sends the caller an
/// SSE comment each `TOLLGATE_STREAM_KEEPALIVE_MS` or two, which clients skip
/// and proxies on the way count as traffic; the chunks arrive as before.
#[tokio::test]
async fn a_quiet_stream_sends_the_caller_keep_alive_comments() {
    let s = setup(&[("TOLLGATE_STREAM_KEEPALIVE_MS", "100")]).await;
    let key = user_with_plan(&s.app, "quiet@example.com", 10, 100, None).await;
    s.mock.set(|k| {
        k.reply = "slow and steady".into();
        k.chunk_delay = Duration::from_millis(450);
    });
    let mut body = hello("mock");
    body["stream"] = json!(true);
    let response = chat(&s.app, &key, body).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let events = wire_events(&text);
    let comments = events.iter().filter(|e| **e == ": keep-alive").count();
    assert!(comments >= 4, "{text:?}");
    assert_eq!(delta_text(&wire_chunks(&events)), "slow and steady");
    assert!(
        events
            .iter()
            .all(|e| e.starts_with("data: ") || *e == ": keep-alive"),
        "{text:?}"
    );
}

/// Answers in any form SSE and OpenAI's clients allow reach the caller as one
/// JSON object an event: a stream that starts with a byte order mark, an
/// event whose data is split over lines, objects whose `error` is null (as
/// Foundry Local sends on every chunk).
#[tokio::test]
async fn upstream_answers_in_any_form_sse_allows_are_relayed_whole() {
    let s = setup(&[]).await;
    let key = user_with_plan(&s.app, "forms@example.com", 10, 100, None).await;
    let chunk = r#"{"id":"c","object":"chat.completion.chunk","choices":["#;
    let raw = format!(
        "\u{feff}data: {chunk}{{\"index\":0,\"delta\":{{\"content\":\"marked \"}}}}]}}\n\n\
         data: {chunk}\r\ndata: {{\"index\":0,\"delta\":{{\"content\":\"split \"}}}}]}}\n\n\
         data: {chunk}{{\"index\":0,\"delta\":{{\"content\":\"unfailed\"}}}}],\"error\":null}}\n\n\
         data: [DONE]\n\n"
    );
    s.mock.set(|k| k.raw_stream = Some(raw));
    let mut body = hello("mock");
    body["stream"] = json!(true);
    let response = chat(&s.app, &key, body).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let events = wire_events(&text);
    assert!(
        events.iter().all(|e| !e.contains(['\n', '\r'])),
        "one line an event: {text:?}"
    );
    let chunks = wire_chunks(&events);
    assert_eq!(
        chunks.len(),
        events.len() - 1,
        "every event a chunk: {text:?}"
    );
    assert!(chunks.iter().all(|c| c["model"] == "mock"), "{chunks:?}");
    assert_eq!(delta_text(&chunks), "marked split unfailed");

    // A whole answer whose `error` is null is an answer too.
    let answer = json!({
        "id": "c", "object": "chat.completion", "error": null,
        "choices": [{ "index": 0, "message": { "role": "assistant", "content": "fine" }, "finish_reason": "stop" }],
    });
    s.mock.set(|k| k.raw_answer = Some(answer.to_string()));
    let response = chat(&s.app, &key, hello("mock")).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "fine");
    let (balance, ledger) = balance_and_ledger(&s.app, "forms@example.com").await;
    assert_eq!(balance, ledger);
}

/// Some servers close a stream without `[DONE]`: after the answer finished
/// (a choice's `finish_reason`) the caller's stream ends as usual, with the
/// usage chunk it asked for made from the charged counts when the upstream
/// sent none; before that, the answer was cut off and ends with an error.
#[tokio::test]
async fn a_stream_closed_after_its_answer_finished_ends_normally_with_usage() {
    let s = setup(&[]).await;
    let key = user_with_plan(&s.app, "closed@example.com", 10, 100, None).await;
    let chunk =
        r#"{"id":"c9","object":"chat.completion.chunk","created":1,"model":"up","choices":"#;
    let finished = format!(
        "data: {chunk}[{{\"index\":0,\"delta\":{{\"content\":\"Hi\"}},\"finish_reason\":null}}]}}\n\n\
         data: {chunk}[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}]}}\n\n"
    );
    let mut body = hello("mock");
    body["stream"] = json!(true);
    body["stream_options"] = json!({ "include_usage": true });
    // Closed right after the last choice finished, and with a `[DONE]` that
    // lacks its blank line (which SSE parsers drop).
    for raw in [finished.clone(), format!("{finished}data: [DONE]\n")] {
        s.mock.set(|k| k.raw_stream = Some(raw));
        let response = chat(&s.app, &key, body.clone()).await;
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        let chunks = wire_chunks(&wire_events(&text));
        assert_eq!(delta_text(&chunks), "Hi");
        let usage = chunks.last().unwrap();
        assert_eq!(usage["choices"], json!([]), "{text}");
        assert_eq!(usage["id"], "c9");
        assert_eq!(usage["created"], 1, "a chunk of the same answer");
        assert_eq!(usage["model"], "mock");
        assert_eq!(usage["object"], "chat.completion.chunk");
        // "Be brief." and "hi" estimated at 14 tokens; "Hi" counted as 1.
        assert_eq!(
            usage["usage"],
            json!({ "prompt_tokens": 14, "completion_tokens": 1, "total_tokens": 15 })
        );
    }
    // Without usage asked for, none is made.
    s.mock.set(|k| k.raw_stream = Some(finished.clone()));
    let mut plain = hello("mock");
    plain["stream"] = json!(true);
    let text = chat(&s.app, &key, plain).await.text().await.unwrap();
    let chunks = wire_chunks(&wire_events(&text));
    assert!(chunks.iter().all(|c| c.get("usage").is_none()), "{text}");

    // Cut off before any choice finished: an error event, no [DONE].
    let cut = format!("data: {chunk}[{{\"index\":0,\"delta\":{{\"content\":\"Hi\"}}}}]}}\n\n");
    s.mock.set(|k| k.raw_stream = Some(cut));
    let (chunks, done) = read_stream(chat(&s.app, &key, body).await).await;
    assert!(!done, "{chunks:?}");
    assert_eq!(chunks.last().unwrap()["error"]["code"], "upstream_error");

    let records = usage_records(&s.app, 4).await;
    let statuses: Vec<i64> = records.iter().map(|r| r.0).collect();
    assert_eq!(statuses, [200, 200, 200, 502]);
    assert!(records.iter().all(|r| r.2 == 15_000), "{records:?}");
    let (balance, ledger) = balance_and_ledger(&s.app, "closed@example.com").await;
    assert_eq!((balance, ledger), (5_000_000 - 60_000, 5_000_000 - 60_000));
}

/// An upstream's error in a stream, in the shapes servers send besides
/// OpenAI's: an `error` event, and vLLM's `{"object": "error"}` chunk. Each
/// ends the stream with an error event, charged for what was sent; passed
/// on as chunks, the stream ended as if the answer were whole.
#[tokio::test]
async fn an_upstream_error_in_another_shape_ends_the_stream() {
    let s = setup(&[]).await;
    let key = user_with_plan(&s.app, "shapes@example.com", 100, 1000, None).await;
    let mut streamed = hello("mock");
    streamed["stream"] = json!(true);
    let first = r#"data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hi"}}]}"#;
    for error in [
        "event: error\ndata: {\"error\":{\"message\":\"overloaded\"}}",
        "event: error\ndata: plain words",
        r#"data: {"object":"error","message":"The model ran out of KV cache","type":"InternalServerError","code":500}"#,
    ] {
        s.mock.set(|k| {
            k.raw_stream = Some(format!("{first}\n\n{error}\n\ndata: [DONE]\n\n"));
        });
        let text = chat(&s.app, &key, streamed.clone())
            .await
            .text()
            .await
            .unwrap();
        let (chunks, done) = read_stream_text(&text);
        assert!(!done, "{error}: {text}");
        assert_eq!(chunks.len(), 2, "{error}: {text}");
        assert_eq!(chunks[0]["choices"][0]["delta"]["content"], "Hi");
        assert_eq!(
            chunks[1]["error"]["code"], "upstream_error",
            "{error}: {text}"
        );
        let message = chunks[1]["error"]["message"].as_str().unwrap();
        assert!(
            message.ends_with(
                "The prompt and the reply streamed before this were charged: each new try is charged again."
            ),
            "{message}"
        );
    }
    let records = usage_records(&s.app, 3).await;
    assert!(records.iter().all(|r| r.0 == 502), "{records:?}");
    // "Hi" was streamed before each error, and is charged beside the prompt.
    let completion = completion_tokens(&s.app).await;
    assert!(completion.iter().all(|&c| c > 0), "{completion:?}");
    assert!(records.iter().all(|r| r.2 > 0), "{records:?}");

    // An error before any reply was streamed is charged the prompt the
    // upstream read, and the event says that.
    s.mock.set(|k| {
        k.raw_stream =
            Some("event: error\ndata: {\"error\":{\"message\":\"overloaded\"}}\n\n".into());
    });
    let text = chat(&s.app, &key, streamed).await.text().await.unwrap();
    let (chunks, done) = read_stream_text(&text);
    assert!(!done, "{text}");
    assert_eq!(chunks.len(), 1, "{text}");
    assert_eq!(
        chunks[0]["error"]["message"],
        "The model server failed to answer. Try again. The prompt was charged, as the model server had read it: each new try is charged again."
    );
    let records = usage_records(&s.app, 4).await;
    assert_eq!(records.len(), 4, "{records:?}");
    assert!(records.iter().all(|r| r.0 == 502 && r.2 > 0), "{records:?}");
}

/// An upstream's usage chunk whose counts do not read (negative) is dropped
/// whole from a stream that asked for usage: the gateway's own usage chunk is
/// the one object without choices, as in OpenAI's streams (an empty chunk
/// went before it).
#[tokio::test]
async fn a_usage_chunk_that_does_not_read_leaves_one_usage_chunk() {
    let s = setup(&[]).await;
    let key = user_with_plan(&s.app, "negative@example.com", 100, 1000, None).await;
    let mut body = hello("mock");
    body["stream"] = json!(true);
    body["stream_options"] = json!({ "include_usage": true });
    let head = r#""id":"c1","object":"chat.completion.chunk","created":1,"model":"m""#;
    s.mock.set(|k| {
        k.raw_stream = Some(format!(
            "data: {{{head},\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"Hi\"}},\"finish_reason\":\"stop\"}}]}}\n\n\
             data: {{{head},\"choices\":[],\"usage\":{{\"prompt_tokens\":-5,\"completion_tokens\":-1}}}}\n\n\
             data: [DONE]\n\n"
        ));
    });
    let text = chat(&s.app, &key, body).await.text().await.unwrap();
    let chunks = wire_chunks(&wire_events(&text));
    let without_choices: Vec<&Value> = chunks
        .iter()
        .filter(|c| c["choices"] == json!([]))
        .collect();
    assert_eq!(without_choices.len(), 1, "{text}");
    assert_eq!(chunks.last(), without_choices.first().copied(), "{text}");
    assert_eq!(
        without_choices[0]["usage"]["completion_tokens"], 1,
        "{text}"
    );
    assert!(
        without_choices[0]["usage"]["prompt_tokens"]
            .as_u64()
            .unwrap()
            > 0,
        "{text}"
    );
}

/// [`read_stream`] for a stream already read to its end.
pub(crate) fn read_stream_text(text: &str) -> (Vec<Value>, bool) {
    let mut chunks = Vec::new();
    for event in text.split("\n\n").filter(|e| !e.trim().is_empty()) {
        let Some(data) = event.lines().find_map(|line| line.strip_prefix("data: ")) else {
            continue;
        };
        if data == "[DONE]" {
            return (chunks, true);
        }
        chunks.push(serde_json::from_str(data).unwrap());
    }
    (chunks, false)
}

/// A JSON answer's headers come only once it is whole, so the first-byte
/// timeout is for streams: a JSON answer has until the total timeout, rather
/// than being cut off while the upstream finishes it anyway.
#[tokio::test]
async fn a_json_answer_has_until_the_total_timeout() {
    let s = setup(&[
        ("TOLLGATE_UPSTREAM_FIRST_BYTE_TIMEOUT_MS", "300"),
        ("TOLLGATE_UPSTREAM_TOTAL_TIMEOUT_MS", "1500"),
    ])
    .await;
    let key = user_with_plan(&s.app, "slow@example.com", 10, 100, None).await;
    s.mock.set(|k| k.latency = Duration::from_millis(800));
    let response = chat(&s.app, &key, hello("mock")).await;
    assert_eq!(response.status(), 200);
    let mut streamed = hello("mock");
    streamed["stream"] = json!(true);
    let response = chat(&s.app, &key, streamed).await;
    assert_refused(response, 504, "upstream_timeout").await;
    s.mock.set(|k| k.latency = Duration::from_secs(3));
    let response = chat(&s.app, &key, hello("mock")).await;
    let error: Value = {
        assert_eq!(response.status(), 504);
        response.json().await.unwrap()
    };
    assert_eq!(error["error"]["code"], "upstream_timeout");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("total"),
        "{error}"
    );
}

/// A success that is no answer, a web page (a `base_url` pointing at a site
/// or a login portal) or JSON to a stream, is the upstream's failure and
/// costs nothing; an error in it is still read.
#[tokio::test]
async fn a_page_or_json_where_a_stream_was_asked_is_a_free_502() {
    let s = setup(&[]).await;
    let key = user_with_plan(&s.app, "page@example.com", 10, 100, None).await;
    let page = "<!doctype html><title>Sign in</title>";
    s.mock.set(|k| {
        k.raw_answer = Some(page.into());
        k.raw_stream = Some(page.into());
        k.content_type = Some("text/html; charset=utf-8");
    });
    let mut streamed = hello("mock");
    streamed["stream"] = json!(true);
    for body in [hello("mock"), streamed.clone()] {
        let response = chat(&s.app, &key, body).await;
        // The table's address is a site, which a retry reaches again.
        assert_eq!(response.headers()["x-should-retry"], "false");
        assert_refused(response, 502, "upstream_error").await;
    }
    s.mock.set(|k| {
        k.raw_stream = Some(r#"{"error":{"message":"streaming is off"}}"#.into());
        k.content_type = Some("application/json");
    });
    let response = chat(&s.app, &key, streamed.clone()).await;
    // An error the upstream sent may pass: the SDKs may try again.
    assert!(response.headers().get("x-should-retry").is_none());
    assert_refused(response, 502, "upstream_error").await;
    // An empty body so labelled is no answer either: read again once ended,
    // it panicked the server, which dropped the connection (a stream) or
    // answered 500 (JSON) and charged the prompt.
    for (kind, body) in [
        ("text/html; charset=utf-8", hello("mock")),
        ("text/html; charset=utf-8", streamed.clone()),
        ("application/json", streamed.clone()),
    ] {
        s.mock.set(|k| {
            k.raw_answer = Some(String::new());
            k.raw_stream = Some(String::new());
            k.content_type = Some(kind);
        });
        let response = chat(&s.app, &key, body).await;
        assert_refused(response, 502, "upstream_error").await;
    }
    // Text that is not events, to a stream: it passed as events, ended
    // without `[DONE]` and charged the prompt; words that begin as a field
    // name does are no field.
    for (kind, text) in [
        ("application/json", "this is not json"),
        ("application/json", "internal server error"),
        ("application/json", "error: upstream overloaded"),
        ("application/json", "data unavailable"),
        ("text/plain", "this is not json"),
    ] {
        s.mock.set(|k| {
            k.raw_stream = Some(text.into());
            k.content_type = Some(kind);
        });
        let response = chat(&s.app, &key, streamed.clone()).await;
        assert_refused(response, 502, "upstream_error").await;
    }
    let records = usage_records(&s.app, 11).await;
    assert_eq!(records.len(), 11, "{records:?}");
    assert!(
        records.iter().all(|r| r.0 == 502 && r.2 == 0),
        "{records:?}"
    );
    let (balance, ledger) = balance_and_ledger(&s.app, "page@example.com").await;
    assert_eq!((balance, ledger), (5_000_000, 5_000_000));

    // The label alone decides nothing: a small server's JSON answer or
    // events labelled text/html or JSON are answers.
    let answer = r#"{"id":"c1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"fine"},"finish_reason":"stop"}]}"#;
    let events = "data: {\"id\":\"c2\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"fine\"},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";
    for kind in ["text/html; charset=utf-8", "application/json", "text/plain"] {
        s.mock.set(|k| {
            k.raw_answer = Some(answer.into());
            k.raw_stream = Some(events.into());
            k.content_type = Some(kind);
        });
        let response = chat(&s.app, &key, hello("mock")).await;
        assert_eq!(response.status(), 200, "{kind}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["choices"][0]["message"]["content"], "fine");
        let (chunks, done) = read_stream(chat(&s.app, &key, streamed.clone()).await).await;
        assert!(done, "{kind}: {chunks:?}");
        assert_eq!(delta_text(&chunks), "fine");
    }
}

/// Without usage from the upstream, a reply is counted by what the model
/// wrote (a tool call's arguments, not the JSON around each piece), and never
/// past the tokens the upstream was asked to stop at: a count cannot charge
/// more than the hold.
#[tokio::test]
async fn a_reply_counted_without_usage_is_its_text_and_at_most_max_tokens() {
    let s = setup(&[]).await;
    let key = user_with_plan(&s.app, "counted@example.com", 10, 100, None).await;
    let chunk = r#"data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"up","choices":[{"index":0,"#;
    let stream = |pieces: usize| {
        let piece = format!(
            "{chunk}\"delta\":{{\"tool_calls\":[{{\"index\":0,\"function\":{{\"arguments\":\"ab\"}}}}]}},\"finish_reason\":null}}]}}\n\n"
        );
        format!(
            "{}{chunk}\"delta\":{{}},\"finish_reason\":\"tool_calls\"}}]}}\n\ndata: [DONE]\n\n",
            piece.repeat(pieces)
        )
    };
    let mut body = hello("mock");
    body["stream"] = json!(true);
    body["stream_options"] = json!({ "include_usage": true });
    body["max_tokens"] = json!(10);
    // Two bytes a piece: 8 pieces are 4 tokens; 60 would be 30, past the 10.
    for (pieces, counted) in [(8, 4), (60, 10)] {
        s.mock.set(|k| k.raw_stream = Some(stream(pieces)));
        let response = chat(&s.app, &key, body.clone()).await;
        assert_eq!(response.status(), 200);
        let text = response.text().await.unwrap();
        let chunks = wire_chunks(&wire_events(&text));
        let usage = &chunks.last().unwrap()["usage"];
        assert_eq!(usage["completion_tokens"], counted, "{text}");
        assert_eq!(usage["prompt_tokens"], 14, "{text}");
    }
    let records = usage_records(&s.app, 2).await;
    let costs: Vec<i64> = records.iter().map(|r| r.2).collect();
    assert_eq!(costs, [18_000, 24_000]);
    let (balance, ledger) = balance_and_ledger(&s.app, "counted@example.com").await;
    assert_eq!((balance, ledger), (5_000_000 - 42_000, 5_000_000 - 42_000));
}

/// An upstream that reports its usage early and goes on writing (usage on
/// its first chunk, counted before the text): the caller who asked for usage
/// is shown, last, the counts charged, not only the early ones.
#[tokio::test]
async fn a_stream_whose_usage_came_early_ends_with_the_counts_charged() {
    let s = setup(&[]).await;
    let key = user_with_plan(&s.app, "early-usage@example.com", 10, 100, None).await;
    let chunk = |rest: &str| {
        format!(
            "data: {{\"id\":\"c3\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up\",{rest}}}\n\n"
        )
    };
    let events = [
        chunk(
            r#""choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}],"usage":{"prompt_tokens":7,"completion_tokens":0,"total_tokens":7,"prompt_tokens_details":{"cached_tokens":3}}"#,
        ),
        // Eight bytes: two tokens counted.
        chunk(r#""choices":[{"index":0,"delta":{"content":"abcdefgh"},"finish_reason":null}]"#),
        chunk(r#""choices":[{"index":0,"delta":{},"finish_reason":"stop"}]"#),
        "data: [DONE]\n\n".to_owned(),
    ];
    s.mock.set(|k| k.raw_stream = Some(events.concat()));
    let mut body = hello("mock");
    body["stream"] = json!(true);
    body["stream_options"] = json!({ "include_usage": true });
    let response = chat(&s.app, &key, body).await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let usages: Vec<Value> = wire_chunks(&wire_events(&text))
        .into_iter()
        .map(|chunk| chunk["usage"].clone())
        .filter(|usage| !usage.is_null())
        .collect();
    assert_eq!(usages.len(), 2, "{text}");
    assert_eq!(
        usages[0]["prompt_tokens_details"]["cached_tokens"], 3,
        "{text}"
    );
    assert_eq!(
        (
            &usages[1]["prompt_tokens"],
            &usages[1]["completion_tokens"],
            &usages[1]["total_tokens"]
        ),
        (&json!(7), &json!(2), &json!(9)),
        "{text}"
    );
    assert_eq!(usage_records(&s.app, 1).await, [(200, None, 9_000)]);
    let tokens: (i64, i64) =
        sqlx::query_as("SELECT prompt_tokens, completion_tokens FROM usage_records")
            .fetch_one(&s.app.db().await)
            .await
            .unwrap();
    assert_eq!(tokens, (7, 2));
}

/// With `n` choices the answer is whole only once every choice finished: a
/// stream closed after the first did is cut off.
#[tokio::test]
async fn a_stream_of_several_choices_closed_before_all_finished_is_cut_off() {
    let s = setup(&[]).await;
    let key = user_with_plan(&s.app, "choices@example.com", 10, 100, None).await;
    let chunk = r#"{"id":"c2","object":"chat.completion.chunk","model":"up","choices":"#;
    let finish = |index: u8| {
        format!(
            "data: {chunk}[{{\"index\":{index},\"delta\":{{\"content\":\"x\"}},\"finish_reason\":\"stop\"}}]}}\n\n"
        )
    };
    let mut body = hello("mock");
    body["stream"] = json!(true);
    body["n"] = json!(2);

    s.mock.set(|k| k.raw_stream = Some(finish(0)));
    let (chunks, done) = read_stream(chat(&s.app, &key, body.clone()).await).await;
    assert!(!done, "{chunks:?}");
    assert_eq!(chunks.last().unwrap()["error"]["code"], "upstream_error");

    s.mock.set(|k| k.raw_stream = Some(finish(0) + &finish(1)));
    let (chunks, done) = read_stream(chat(&s.app, &key, body).await).await;
    assert!(done, "{chunks:?}");
}

/// The upstream's own usage chunk is relayed as it is, not made again.
#[tokio::test]
async fn the_upstreams_usage_chunk_is_not_doubled() {
    let s = setup(&[]).await;
    let key = user_with_plan(&s.app, "usage-once@example.com", 10, 100, None).await;
    let mut body = hello("mock");
    body["stream"] = json!(true);
    body["stream_options"] = json!({ "include_usage": true });
    let text = chat(&s.app, &key, body).await.text().await.unwrap();
    let chunks = wire_chunks(&wire_events(&text));
    let with_usage: Vec<&Value> = chunks.iter().filter(|c| c.get("usage").is_some()).collect();
    assert_eq!(with_usage.len(), 1, "{text}");
}

#[tokio::test]
async fn an_upstream_failure_mid_stream_ends_with_an_error_event() {
    let s = setup(&[]).await;
    let key = user_with_plan(&s.app, "midway@example.com", 10, 100, None).await;
    s.mock.set(|k| {
        k.reply = "one two three four five six".into();
        k.drop_after_chunks = Some(2);
    });
    let mut body = hello("mock");
    body["stream"] = json!(true);
    let (chunks, done) = read_stream(chat(&s.app, &key, body).await).await;
    assert!(!done, "no [DONE] after a failure");
    let last = chunks.last().unwrap();
    assert_eq!(last["error"]["code"], "upstream_error", "{chunks:?}");
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["delta"]["content"].is_string())
    );
    let (balance, ledger) = balance_and_ledger(&s.app, "midway@example.com").await;
    assert_eq!(balance, ledger);
}

/// An upstream answer larger than `TOLLGATE_UPSTREAM_MAX_BODY_BYTES` is cut
/// off there, not buffered: a JSON call answers 502, a stream ends with an
/// error event, and both are charged the prompt the upstream read.
#[tokio::test]
async fn an_answer_past_the_size_limit_is_cut_off() {
    let s = setup(&[("TOLLGATE_UPSTREAM_MAX_BODY_BYTES", "2048")]).await;
    let key = user_with_plan(&s.app, "large@example.com", 10, 100, None).await;
    s.mock.set(|k| k.reply = "word ".repeat(1000));
    let response = chat(&s.app, &key, hello("mock")).await;
    assert_eq!(response.status(), 502);
    let error: Value = response.json().await.unwrap();
    assert_openai_error(&error, "upstream_error");

    let mut body = hello("mock");
    body["stream"] = json!(true);
    let (chunks, done) = read_stream(chat(&s.app, &key, body).await).await;
    assert!(!done, "no [DONE] after the limit");
    assert_eq!(
        chunks.last().unwrap()["error"]["code"],
        "upstream_error",
        "{chunks:?}"
    );

    // Under the limit, the same calls go through.
    s.mock.set(|k| k.reply = "word ".repeat(100));
    assert_eq!(chat(&s.app, &key, hello("mock")).await.status(), 200);
    let records = usage_records(&s.app, 3).await;
    let cut_off = (502, Some("upstream_error".to_owned()));
    assert_eq!(
        records
            .iter()
            .map(|r| (r.0, r.1.clone()))
            .collect::<Vec<_>>(),
        [cut_off.clone(), cut_off, (200, None)]
    );
    assert!(records.iter().all(|r| r.2 > 0), "{records:?}");
    let (balance, ledger) = balance_and_ledger(&s.app, "large@example.com").await;
    assert_eq!(balance, ledger);
}

#[tokio::test]
async fn the_idle_timeout_counts_from_the_last_chunk_not_the_start() {
    // The idle timeout is 1.5 s: chunks 0.4 s apart keep a 2.8 s stream alive.
    let s = setup(&[]).await;
    let key = user_with_plan(&s.app, "slow@example.com", 10, 100, None).await;
    s.mock.set(|k| {
        k.reply = "one two three".into();
        k.chunk_delay = Duration::from_millis(400);
    });
    let mut body = hello("mock");
    body["stream"] = json!(true);
    let (chunks, done) = read_stream(chat(&s.app, &key, body.clone()).await).await;
    assert!(done, "{chunks:?}");
    assert!(
        chunks.iter().all(|c| c.get("error").is_none()),
        "{chunks:?}"
    );

    // Keep-alive comments count: chunks 2 s apart, with a comment every 0.3 s.
    s.mock.set(|k| {
        k.reply = "one".into();
        k.chunk_delay = Duration::from_secs(2);
        k.keep_alive = Some(Duration::from_millis(300));
    });
    let (chunks, done) = read_stream(chat(&s.app, &key, body.clone()).await).await;
    assert!(done, "{chunks:?}");
    assert!(
        chunks.iter().all(|c| c.get("error").is_none()),
        "{chunks:?}"
    );

    // A gap longer than the timeout ends the stream with a timeout event.
    s.mock.set(|k| k.keep_alive = None);
    let (chunks, done) = read_stream(chat(&s.app, &key, body).await).await;
    assert!(!done, "no [DONE] after a timeout");
    assert_eq!(
        chunks.last().unwrap()["error"]["code"],
        "upstream_timeout",
        "{chunks:?}"
    );
    let (balance, ledger) = balance_and_ledger(&s.app, "slow@example.com").await;
    assert_eq!(balance, ledger);
}

#[tokio::test]
async fn the_total_timeout_ends_a_call_however_steadily_it_arrives() {
    // Chunks 0.6 s apart never trip the 1.5 s idle timeout; the 2.5 s total
    // ends the stream after some of them, and what was sent is charged.
    let s = setup(&[("TOLLGATE_UPSTREAM_TOTAL_TIMEOUT_MS", "2500")]).await;
    let key = user_with_plan(&s.app, "steady@example.com", 10, 100, None).await;
    s.mock.set(|k| {
        k.reply = "one two three four five six seven eight".into();
        k.chunk_delay = Duration::from_millis(600);
    });
    let mut body = hello("mock");
    body["stream"] = json!(true);
    let (chunks, done) = read_stream(chat(&s.app, &key, body).await).await;
    assert!(!done, "{chunks:?}");
    let error = &chunks.last().unwrap()["error"];
    assert_eq!(error["code"], "upstream_timeout", "{chunks:?}");
    assert!(
        error["message"].as_str().unwrap().contains("total"),
        "{error}"
    );
    let words = chunks
        .iter()
        .filter(|c| c["choices"][0]["delta"]["content"].is_string())
        .count();
    assert!((1..8).contains(&words), "{chunks:?}");
    usage_records(&s.app, 1).await;
    let completion = completion_tokens(&s.app).await;
    assert_eq!(completion.len(), 1);
    assert!(
        completion[0] > 0,
        "the words sent are charged: {completion:?}"
    );
    let (balance, ledger) = balance_and_ledger(&s.app, "steady@example.com").await;
    assert_eq!(balance, ledger);
    assert!(balance < 5_000_000 - 14_000, "what was sent is charged");
}

#[tokio::test]
async fn a_fresh_install_serves_the_demo_model_without_configuration() {
    let app = crate::support::spawn_app_with(&[]).await;
    let b = app.browser();
    app.register(&b, "fresh@example.com", "Fresh").await;
    let key = app.create_key(&b, json!({ "name": "k" })).await;
    let response = chat(&app, &key, json!({ "model": "demo", "messages": [{ "role": "user", "content": "tell me a story" }], "stream": true })).await;
    assert_eq!(response.status(), 200);
    let (chunks, done) = read_stream(response).await;
    assert!(done);
    let text = delta_text(&chunks);
    assert!(text.contains("\"tell me a story\""), "{text}");
    assert!(chunks.len() > 10, "streamed word by word");
}

/// The value of the sample `name{…}` whose labels include all of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            let series = l.split_whitespace().next().unwrap_or_default();
            let bare = series.split('{').next() == Some(name);
            bare && labels
                .iter()
                .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_calls_refusals_upstream_latency_and_credits_for_allowed_addresses() {
    let setup_ = setup(&[]).await;
    let app = &setup_.app;
    let key = user_with_plan(app, "metrics@example.com", 2, 100, None).await;

    let response = chat(app, &key, hello("mock")).await;
    assert_eq!(response.status(), 200);
    let mut streaming = hello("mock");
    streaming["stream"] = json!(true);
    let (_, done) = read_stream(chat(app, &key, streaming).await).await;
    assert!(done);
    let response = chat(app, &key, hello("mock")).await;
    assert_eq!(response.status(), 429, "over the plan's 2 a minute");
    // Made-up methods, which the HTTP stack accepts, share one label.
    for method in ["FOO1", "FOO2"] {
        let response = app
            .client
            .request(method.parse().unwrap(), app.url("/v1/chat/completions"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 405);
    }
    // A request no route matches (a scan, a stale link) is counted too.
    assert_eq!(app.get("/wp-login.php").await.status(), 404);
    // So are requests refused before their handler: a body too large, a
    // form posted from another site.
    let too_large = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(vec![b' '; 5 * 1024 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(too_large.status(), 413);
    let foreign = reqwest::Client::new()
        .post(app.url("/api/register"))
        .header("origin", "https://evil.example")
        .form(&[("email", "x@example.com")])
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 403);

    // The stream's guard drops just after its last chunk is sent.
    let mut text = String::new();
    for _ in 0..50 {
        let response = app.get("/metrics").await;
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain; version=0.0.4")
        );
        text = response.text().await.unwrap();
        if sample(&text, "tollgate_active_streams", &[]) == Some(0.0) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let chat_route = [("route", "/v1/chat/completions"), ("method", "POST")];
    let with_status = |status| {
        let mut labels = chat_route.to_vec();
        labels.push(("status", status));
        sample(&text, "tollgate_http_requests_total", &labels)
    };
    assert_eq!(with_status("200"), Some(2.0), "{text}");
    assert_eq!(with_status("429"), Some(1.0), "{text}");
    assert_eq!(with_status("413"), Some(1.0), "{text}");
    let foreign_form = [
        ("route", "/api/register"),
        ("method", "POST"),
        ("status", "403"),
    ];
    assert_eq!(
        sample(&text, "tollgate_http_requests_total", &foreign_form),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "tollgate_limit_rejections_total",
            &[("limit", "requests_per_minute")]
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "tollgate_upstream_duration_seconds_count",
            &[("model", "mock")]
        ),
        Some(2.0),
        "{text}"
    );
    assert!(
        sample(
            &text,
            "tollgate_http_request_duration_seconds_bucket",
            &[("route", "/v1/chat/completions"), ("le", "+Inf")]
        )
        .is_some(),
        "latency is a histogram: {text}"
    );
    assert_eq!(
        sample(&text, "tollgate_active_streams", &[]),
        Some(0.0),
        "{text}"
    );
    // Credits spent are exactly what the ledger charged.
    let charged: i64 = app
        .db_number("SELECT -SUM(amount_micros) FROM credit_ledger WHERE kind = 'settle'")
        .await;
    assert!(charged > 0);
    assert_eq!(
        sample(
            &text,
            "tollgate_credits_spent_micros_total",
            &[("model", "mock")]
        ),
        Some(charged as f64),
        "{text}"
    );
    // Routes are labelled by template, never by raw path.
    assert!(!text.contains("route=\"/api/v1/keys/1\""), "{text}");
    let made_up = [
        ("route", "/v1/chat/completions"),
        ("method", "other"),
        ("status", "405"),
    ];
    assert_eq!(
        sample(&text, "tollgate_http_requests_total", &made_up),
        Some(2.0),
        "{text}"
    );
    assert!(!text.contains("FOO1"), "{text}");
    let unmatched = [("route", "unmatched"), ("method", "GET"), ("status", "404")];
    assert_eq!(
        sample(&text, "tollgate_http_requests_total", &unmatched),
        Some(1.0),
        "{text}"
    );

    // A web page's script or frame gets 403 even from an allowed address
    // (DNS rebinding); an address typed in the browser does not.
    for (site, status) in [("same-origin", 403), ("cross-site", 403), ("none", 200)] {
        let response = reqwest::Client::new()
            .get(app.url("/metrics"))
            .header("sec-fetch-site", site)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "Sec-Fetch-Site: {site}");
    }

    // Addresses outside TOLLGATE_METRICS_ALLOW get 403.
    let refused = setup(&[("TOLLGATE_METRICS_ALLOW", "10.0.0.0/8")]).await;
    let response = refused.app.get("/metrics").await;
    assert_refused(response, 403, "metrics_not_allowed").await;
}

#[tokio::test]
async fn usage_records_keep_the_upstream_latency_apart_from_the_whole_call() {
    let s = setup(&[]).await;
    let key = user_with_plan(&s.app, "latency@example.com", 10, 100, None).await;
    s.mock.set(|k| {
        k.latency = Duration::from_millis(120);
        k.chunk_delay = Duration::from_millis(40);
    });
    assert_eq!(chat(&s.app, &key, hello("mock")).await.status(), 200);
    let mut body = hello("mock");
    body["stream"] = json!(true);
    let (_, done) = read_stream(chat(&s.app, &key, body).await).await;
    assert!(done);
    let rows: Vec<(bool, i64, Option<i64>)> =
        sqlx::query_as("SELECT stream, latency_ms, upstream_ms FROM usage_records ORDER BY id")
            .fetch_all(&s.app.db().await)
            .await
            .unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    for (stream, latency, upstream) in &rows {
        let upstream = upstream.expect("the upstream answered");
        assert!(upstream >= 120, "{rows:?}");
        assert!(*latency >= upstream, "{rows:?}");
        if *stream {
            // A stream's upstream time runs to its first chunk, which came
            // 40 ms after the headers, and the rest took their delays.
            assert!(upstream >= 120 + 40, "{rows:?}");
            assert!(*latency >= upstream + 4 * 40, "{rows:?}");
        }
    }
}

/// While the database refuses the records calls leave (a full disk, say), the
/// gateway takes no call, so none is charged in memory only, and `/readyz`
/// says so; once a write goes through, both come back and nothing is lost.
#[tokio::test]
async fn no_call_is_taken_while_its_records_cannot_be_written() {
    let s = setup(&[]).await;
    let key = user_with_plan(&s.app, "full@example.com", 1000, 1000, None).await;
    let db = s.app.db().await;
    sqlx::query(
        "CREATE TRIGGER disk_full BEFORE INSERT ON usage_records
         BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END",
    )
    .execute(&db)
    .await
    .unwrap();
    // Admitted before the write fails: answered, its records kept queued.
    assert_eq!(chat(&s.app, &key, hello("mock")).await.status(), 200);
    let ready = || async { s.app.get("/readyz").await.status().as_u16() };
    assert_eq!(
        read_until(
            ready,
            |status| *status == 503,
            100,
            Duration::from_millis(50)
        )
        .await,
        503
    );
    let refused = chat(&s.app, &key, hello("mock")).await;
    assert_refused(refused, 503, "records_unavailable").await;

    sqlx::query("DROP TRIGGER disk_full")
        .execute(&db)
        .await
        .unwrap();
    // The failed batch is tried again within a second or so.
    assert_eq!(
        read_until(
            ready,
            |status| *status == 200,
            100,
            Duration::from_millis(50)
        )
        .await,
        200
    );
    assert_eq!(chat(&s.app, &key, hello("mock")).await.status(), 200);
    let usage = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT COUNT(*) FROM usage_records r JOIN users u ON u.id = r.user_id
             WHERE u.email = 'full@example.com'",
        )
        .fetch_one(&db)
        .await
        .unwrap()
    };
    assert_eq!(
        read_until(usage, |n| *n == 2, 100, Duration::from_millis(50)).await,
        2,
        "the two admitted calls, the first written late"
    );
    let (balance, ledger) = balance_and_ledger(&s.app, "full@example.com").await;
    assert_eq!(balance, ledger);
}

/// `TOLLGATE_CORS_ORIGINS=none` lets no other site's page call the model API:
/// a preflight is answered without an allowed origin, so the browser sends
/// nothing; a listed origin is allowed.
#[tokio::test]
async fn cors_origins_none_allows_no_browser_origin_and_a_list_its_own() {
    let preflight = |app: &TestApp, origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/v1/chat/completions"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let closed = spawn_app_with(&[("TOLLGATE_CORS_ORIGINS", "none")]).await;
    let response = preflight(&closed, "https://app.example.com").await.unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none(),
        "{:?}",
        response.headers()
    );
    let listed = spawn_app_with(&[("TOLLGATE_CORS_ORIGINS", "https://app.example.com")]).await;
    let response = preflight(&listed, "https://app.example.com").await.unwrap();
    assert_eq!(
        response.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let response = preflight(&listed, "https://evil.example").await.unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}
