//! A mock OpenAI-compatible upstream: a real HTTP server on port 0.
//!
//! It answers `GET /v1/models` and `POST /v1/chat/completions` in JSON or, with
//! `stream: true`, in SSE (`chat.completion.chunk` events, an optional usage chunk
//! when `stream_options.include_usage` is set, then `data: [DONE]`). Knobs set
//! latency, error statuses, a redirect and dropping the connection mid-stream, and every
//! request is recorded for assertions.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{
        IntoResponse, Response,
        sse::{Event, Sse},
    },
    routing::{get, post},
};
use futures::{Stream, StreamExt};
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// How the mock behaves; change it at any time with [`MockUpstream::set`].
#[derive(Clone, Debug)]
pub struct Knobs {
    /// Delay before the response starts (headers included).
    pub latency: Duration,
    /// Delay between streamed chunks.
    pub chunk_delay: Duration,
    /// Answer every chat request with this status and an OpenAI-shaped error.
    pub error_status: Option<StatusCode>,
    /// The error's `code` (and then `param` is `messages`).
    pub error_code: Option<&'static str>,
    /// The error answer's `Retry-After` header.
    pub retry_after: Option<&'static str>,
    /// The error's `metadata` (OpenRouter puts a moderation refusal's
    /// reasons there).
    pub error_metadata: Option<serde_json::Value>,
    /// In a stream, cut the connection after this many content chunks.
    pub drop_after_chunks: Option<usize>,
    /// The assistant's reply; streamed one word per chunk.
    pub reply: String,
    /// Include `usage` in answers (JSON always; streams when the client asks).
    pub send_usage: bool,
    /// Answer every chat request with `307 Temporary Redirect` to this URL.
    pub redirect_to: Option<String>,
    /// In a stream, send an SSE comment (a keep-alive) this often.
    pub keep_alive: Option<Duration>,
    /// For a JSON answer: send the status and headers at once and the body
    /// after this delay.
    pub body_delay: Duration,
    /// For a JSON answer: send this text, with status 200, instead.
    pub raw_answer: Option<String>,
    /// For a stream: send this text as the SSE body, with status 200, instead.
    pub raw_stream: Option<String>,
    /// The content type of `raw_answer` and `raw_stream`, instead of
    /// `application/json` and `text/event-stream`.
    pub content_type: Option<&'static str>,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            error_status: None,
            error_code: None,
            retry_after: None,
            error_metadata: None,
            drop_after_chunks: None,
            reply: "Hello from the mock upstream.".into(),
            send_usage: true,
            redirect_to: None,
            keep_alive: None,
            body_delay: Duration::ZERO,
            raw_answer: None,
            raw_stream: None,
            content_type: None,
        }
    }
}

/// A request the mock received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
}

#[derive(Clone, Default)]
struct Shared {
    knobs: Arc<Mutex<Knobs>>,
    recorded: Arc<Mutex<Vec<Recorded>>>,
}

pub struct MockUpstream {
    pub addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

impl MockUpstream {
    pub async fn start() -> Self {
        Self::start_with(Knobs::default()).await
    }

    pub async fn start_with(knobs: Knobs) -> Self {
        let shared = Shared {
            knobs: Arc::new(Mutex::new(knobs)),
            recorded: Arc::default(),
        };
        let router = Router::new()
            .route("/v1/models", get(models))
            .route("/v1/chat/completions", post(chat_completions))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("mock upstream binds");
        let addr = listener.local_addr().expect("bound address");
        let task = tokio::spawn(async move {
            let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                let _ = tcp.set_nodelay(true);
            });
            let _ = axum::serve(listener, router).await;
        });
        Self { addr, shared, task }
    }

    /// The base URL as a gateway's model table names it, e.g. `http://127.0.0.1:1234/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn set(&self, change: impl FnOnce(&mut Knobs)) {
        change(&mut self.shared.knobs.lock().expect("knobs lock"));
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.recorded.lock().expect("recorded lock").clone()
    }
}

impl Drop for MockUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn models() -> Json<Value> {
    Json(json!({
        "object": "list",
        "data": [
            { "id": "mock-small", "object": "model", "created": 1_700_000_000, "owned_by": "mock" },
            { "id": "mock-large", "object": "model", "created": 1_700_000_000, "owned_by": "mock" },
        ],
    }))
}

/// Whitespace-separated words: a stand-in tokenizer that makes usage predictable.
pub fn count_tokens(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

fn prompt_tokens(body: &Value) -> u64 {
    body["messages"]
        .as_array()
        .map(|messages| {
            messages
                .iter()
                .filter_map(|m| m["content"].as_str())
                .map(count_tokens)
                .sum()
        })
        .unwrap_or(0)
}

async fn chat_completions(
    State(shared): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    shared
        .recorded
        .lock()
        .expect("recorded lock")
        .push(Recorded {
            path: "/v1/chat/completions".into(),
            authorization: headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
            body: body.clone(),
        });
    let knobs = shared.knobs.lock().expect("knobs lock").clone();
    // Even a zero sleep waits for the timer's next millisecond tick, which
    // made every call wait up to a millisecond and answered them in bunches.
    if !knobs.latency.is_zero() {
        tokio::time::sleep(knobs.latency).await;
    }

    if let Some(location) = &knobs.redirect_to {
        return (
            StatusCode::TEMPORARY_REDIRECT,
            [(axum::http::header::LOCATION, location.clone())],
        )
            .into_response();
    }

    if let Some(status) = knobs.error_status {
        let error = json!({ "error": {
            "message": format!("mock upstream error {}", status.as_u16()),
            "type": "server_error",
            "param": knobs.error_code.map(|_| "messages"),
            "code": knobs.error_code,
            "metadata": knobs.error_metadata,
        }});
        let mut answer = (status, Json(error)).into_response();
        if let Some(wait) = knobs.retry_after {
            answer.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static(wait),
            );
        }
        return answer;
    }

    let model = body["model"].as_str().unwrap_or("mock-small").to_owned();
    let prompt = prompt_tokens(&body);
    let completion = count_tokens(&knobs.reply);
    let usage = json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    });

    if body["stream"].as_bool() == Some(true) {
        if let Some(text) = knobs.raw_stream {
            let kind = knobs.content_type.unwrap_or("text/event-stream");
            return ([(axum::http::header::CONTENT_TYPE, kind)], text).into_response();
        }
        let include_usage =
            knobs.send_usage && body["stream_options"]["include_usage"].as_bool() == Some(true);
        let keep_alive = knobs.keep_alive;
        let sse = Sse::new(stream_reply(knobs, model, include_usage.then_some(usage)));
        match keep_alive {
            Some(every) => sse
                .keep_alive(axum::response::sse::KeepAlive::new().interval(every))
                .into_response(),
            None => sse.into_response(),
        }
    } else {
        let mut answer = json!({
            "id": "chatcmpl-mock",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": model,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": knobs.reply },
                "finish_reason": "stop",
            }],
        });
        if knobs.send_usage {
            answer["usage"] = usage;
        }
        if knobs.body_delay.is_zero() && knobs.raw_answer.is_none() {
            return Json(answer).into_response();
        }
        let text = knobs.raw_answer.unwrap_or_else(|| answer.to_string());
        let kind = knobs.content_type.unwrap_or("application/json");
        let delay = knobs.body_delay;
        let body = futures::stream::once(async move {
            tokio::time::sleep(delay).await;
            Ok::<_, std::io::Error>(text)
        });
        (
            [(axum::http::header::CONTENT_TYPE, kind)],
            axum::body::Body::from_stream(body),
        )
            .into_response()
    }
}

fn chunk(model: &str, delta: Value, finish_reason: Option<&str>) -> Value {
    json!({
        "id": "chatcmpl-mock",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "choices": [{ "index": 0, "delta": delta, "finish_reason": finish_reason }],
    })
}

/// The SSE body: role chunk, one chunk per word, a finish chunk, the optional usage
/// chunk and `[DONE]`. With `drop_after_chunks`, the stream errors instead, which
/// makes the server abort the connection without a clean end.
fn stream_reply(
    knobs: Knobs,
    model: String,
    usage: Option<Value>,
) -> impl Stream<Item = Result<Event, std::io::Error>> {
    let mut events: Vec<Value> = vec![chunk(
        &model,
        json!({ "role": "assistant", "content": "" }),
        None,
    )];
    let words: Vec<String> = knobs
        .reply
        .split_inclusive(' ')
        .map(str::to_owned)
        .collect();
    events.extend(
        words
            .iter()
            .map(|w| chunk(&model, json!({ "content": w }), None)),
    );
    events.push(chunk(&model, json!({}), Some("stop")));
    if let Some(usage) = usage {
        let mut last = json!({
            "id": "chatcmpl-mock", "object": "chat.completion.chunk",
            "created": 1_700_000_000, "model": model, "choices": [],
        });
        last["usage"] = usage;
        events.push(last);
    }

    let drop_at = knobs.drop_after_chunks.map(|n| n + 1); // +1 for the role chunk
    let delay = knobs.chunk_delay;
    let items: Vec<Result<Event, std::io::Error>> = events
        .into_iter()
        .enumerate()
        .map(|(i, value)| {
            if drop_at.is_some_and(|n| i >= n) {
                Err(std::io::Error::other(
                    "mock upstream dropped the connection",
                ))
            } else {
                Ok(Event::default().data(value.to_string()))
            }
        })
        .chain(std::iter::once(Ok(Event::default().data("[DONE]"))))
        .collect();
    // Stop after the first error: the connection is gone by then.
    let mut failed = false;
    futures::stream::iter(items)
        .take_while(move |item| {
            let keep = !failed;
            failed |= item.is_err();
            std::future::ready(keep)
        })
        .then(move |item| async move {
            // Even a zero sleep waits for the timer's next millisecond tick, so
            // chunks only sleep when asked to; a drop waits a little so the
            // chunks before it reach the client first.
            let pause = if item.is_err() {
                delay.max(Duration::from_millis(20))
            } else {
                delay
            };
            if !pause.is_zero() {
                tokio::time::sleep(pause).await;
            }
            item
        })
}
