//! The model API's failures as the official OpenAI SDKs for Node and Python
//! read them, on the paths the browser test (`end2end/tests/sdk.spec.ts`, with
//! the demo model) cannot reach: an upstream that fails before or in the
//! middle of a stream, times out or refuses the call itself, and too few
//! credits. Each call is one run of `end2end/sdk/call.mjs` (Node.js, with
//! `openai` from `end2end/node_modules`) or `end2end/sdk/call.py` (with
//! `openai` from `end2end/.venv`); `.ci/setup --browser` installs both.

use std::{path::Path, time::Duration};

use serde_json::{Value, json};

use crate::{
    gateway::{balance_and_ledger, setup, user_with_plan},
    support::{TestApp, mock_upstream::Knobs},
};

#[derive(Clone, Copy, Debug)]
enum Sdk {
    Node,
    Python,
}

impl Sdk {
    /// The class each SDK gives a status it has no class of its own for (402).
    fn any_status_class(self) -> &'static str {
        match self {
            Sdk::Node => "APIError",
            Sdk::Python => "APIStatusError",
        }
    }
}

/// Makes one call with `sdk` (`mode`: `json` or `stream` for a chat call,
/// `models` to list the models and retrieve `body`'s) and returns what it
/// printed: `answer`, `text` (a stream's), `models`, `retrieved`, and `error`
/// (as the SDK typed it: class, status, code, param, the `retry-after` it saw).
async fn call(sdk: Sdk, app: &TestApp, key: &str, mode: &str, body: &Value) -> Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (program, script) = match sdk {
        Sdk::Node => ("node".into(), "end2end/sdk/call.mjs"),
        Sdk::Python => (root.join("end2end/.venv/bin/python"), "end2end/sdk/call.py"),
    };
    let output = tokio::process::Command::new(&program)
        .arg(root.join(script))
        .arg(mode)
        .env("TOLLGATE_URL", app.url(""))
        .env("TOLLGATE_KEY", key)
        .env("SDK_BODY", body.to_string())
        .output()
        .await
        .unwrap_or_else(|e| panic!("{program:?} does not run ({e}): run .ci/setup --browser"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the {sdk:?} SDK's script failed (run .ci/setup --browser): {stderr}"
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stdout)))
}

/// A failure before any reply, and what the SDK should make of it.
struct Case {
    what: &'static str,
    knobs: fn(&mut Knobs),
    body: Value,
    /// `None`: the SDK's class for any other status.
    class: Option<&'static str>,
    status: u16,
    code: &'static str,
}

fn hello() -> Value {
    json!({ "model": "mock", "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 100 })
}

#[tokio::test]
async fn the_openai_sdk_for_node_reads_every_failure_as_its_own_typed_error() {
    failures_read_as_typed_errors(Sdk::Node).await;
}

#[tokio::test]
async fn the_openai_sdk_for_python_reads_every_failure_as_its_own_typed_error() {
    failures_read_as_typed_errors(Sdk::Python).await;
}

async fn failures_read_as_typed_errors(sdk: Sdk) {
    // Below the mock's 3 s latency: a JSON answer has until the total timeout.
    let s = setup(&[("TOLLGATE_UPSTREAM_TOTAL_TIMEOUT_MS", "2500")]).await;
    let key = user_with_plan(&s.app, "sdk@example.com", 100, 1000, None).await;

    // The models this key may use, listed and retrieved.
    let models = call(sdk, &s.app, &key, "models", &hello()).await;
    assert_eq!(models["models"], json!(["mock", "demo"]), "{models}");
    assert_eq!(models["retrieved"]["id"], "mock", "{models}");
    assert_eq!(models["retrieved"]["object"], "model", "{models}");

    // Through the mock, as a baseline: a whole answer and a stream.
    let whole = call(sdk, &s.app, &key, "json", &hello()).await;
    assert_eq!(whole["answer"]["model"], "mock", "{whole}");
    assert_eq!(
        whole["answer"]["choices"][0]["message"]["content"],
        "Hello from the mock upstream."
    );
    let streamed = call(sdk, &s.app, &key, "stream", &hello()).await;
    assert_eq!(
        streamed["text"], "Hello from the mock upstream.",
        "{streamed}"
    );
    assert!(streamed["error"].is_null(), "{streamed}");

    // The upstream fails mid-stream: the SDK yields the text so far, then
    // throws an APIError with the error event's code.
    s.mock.set(|k| {
        k.reply = "one two three four five six".into();
        k.drop_after_chunks = Some(2);
    });
    let cut = call(sdk, &s.app, &key, "stream", &hello()).await;
    assert_eq!(cut["text"], "one two ", "{cut}");
    assert_eq!(cut["error"]["is_api_error"], true, "{cut}");
    assert_eq!(cut["error"]["code"], "upstream_error", "{cut}");
    s.mock.set(|k| k.drop_after_chunks = None);

    // Answers before any reply, each with the SDK's own class for its status.
    let cases = [
        Case {
            what: "the upstream fails",
            knobs: |k| k.error_status = Some(reqwest::StatusCode::INTERNAL_SERVER_ERROR),
            body: hello(),
            class: Some("InternalServerError"),
            status: 502,
            code: "upstream_error",
        },
        Case {
            what: "the upstream is slower than the timeouts (first byte for streams, total for JSON)",
            knobs: |k| k.latency = Duration::from_secs(3),
            body: hello(),
            class: Some("InternalServerError"),
            status: 504,
            code: "upstream_timeout",
        },
        Case {
            what: "the upstream's own rate limit",
            knobs: |k| {
                k.error_status = Some(reqwest::StatusCode::TOO_MANY_REQUESTS);
                k.retry_after = Some("7");
            },
            body: hello(),
            class: Some("RateLimitError"),
            status: 429,
            code: "upstream_rate_limited",
        },
        Case {
            what: "the upstream refuses a prompt too long",
            knobs: |k| {
                k.error_status = Some(reqwest::StatusCode::BAD_REQUEST);
                k.error_code = Some("context_length_exceeded");
            },
            body: hello(),
            class: Some("BadRequestError"),
            status: 400,
            code: "context_length_exceeded",
        },
        Case {
            what: "the worst case costs more than the balance",
            knobs: |_| {},
            body: json!({ "model": "mock", "messages": [{ "role": "user", "content": "hi" }], "max_tokens": 100_000 }),
            // Neither SDK has a class of its own for 402.
            class: None,
            status: 402,
            code: "insufficient_credits",
        },
    ];
    for case in cases {
        s.mock.set(|k| *k = Knobs::default());
        s.mock.set(case.knobs);
        for mode in ["json", "stream"] {
            let got = call(sdk, &s.app, &key, mode, &case.body).await;
            let error = &got["error"];
            let what = format!("{sdk:?}, {}, {mode}: {got}", case.what);
            let class = case.class.unwrap_or(sdk.any_status_class());
            assert_eq!(error["class"], class, "{what}");
            assert_eq!(error["status"], case.status, "{what}");
            assert_eq!(error["code"], case.code, "{what}");
            assert!(
                error["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{what}"
            );
            if case.status == 429 {
                assert_eq!(error["retry_after"], "7", "{what}");
            }
            if case.code == "context_length_exceeded" {
                assert_eq!(error["param"], "messages", "{what}");
            }
        }
    }

    let (balance, ledger) = balance_and_ledger(&s.app, "sdk@example.com").await;
    assert_eq!(balance, ledger);
}
