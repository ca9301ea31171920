//! Any OpenAI-compatible server (OpenAI, Ollama's /v1, Hugging Face router,
//! vLLM, OpenRouter): one shared reqwest client and pool, SSE parsed with
//! eventsource-stream, and the first-byte and idle timeouts applied here.

use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::Value;

use super::{Reply, UpstreamError};
use crate::config::{Secret, UpstreamTimeouts};

/// The shared HTTP client for every upstream. Building it fails only when the
/// TLS backend cannot start; start-up stops then, rather than falling back to
/// a client with other settings (one that follows redirects).
pub fn client(timeouts: UpstreamTimeouts) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .connect_timeout(timeouts.connect)
        .pool_idle_timeout(std::time::Duration::from_secs(90))
        // An API endpoint does not redirect; a redirect answers 502 rather than
        // sending the caller's prompt (and a key) somewhere not configured.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tollgate/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Sends `body` (already carrying the upstream model and stream options) to
/// the model's `{base_url}/chat/completions`.
pub async fn complete(
    client: &reqwest::Client,
    timeouts: UpstreamTimeouts,
    url: &reqwest::Url,
    api_key: Option<&Secret>,
    body: &Value,
    stream: bool,
) -> Result<Reply, UpstreamError> {
    let mut request = client.post(url.clone()).json(body);
    if let Some(key) = api_key {
        request = request.bearer_auth(key.expose());
    }
    let response = tokio::time::timeout(timeouts.first_byte, request.send())
        .await
        .map_err(|_| UpstreamError::Timeout("first byte"))?
        .map_err(transport)?;
    let status = response.status();
    if !status.is_success() {
        let text = tokio::time::timeout(timeouts.idle, response.text())
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
        return Err(UpstreamError::Status {
            status: status.as_u16(),
            message: error_message(&text),
        });
    }
    if !stream {
        let bytes = tokio::time::timeout(timeouts.idle, response.bytes())
            .await
            .map_err(|_| UpstreamError::Timeout("idle"))?
            .map_err(transport)?;
        return Ok(Reply::Whole(bytes));
    }
    let events = response.bytes_stream().eventsource();
    let idle = timeouts.idle;
    // Ends after `[DONE]`, after an error, or when the upstream goes quiet too long.
    let chunks = futures::stream::unfold(Some(events), move |state| async move {
        let mut events = state?;
        loop {
            let next = match tokio::time::timeout(idle, events.next()).await {
                Err(_) => return Some((Err(UpstreamError::Timeout("idle")), None)),
                Ok(None) => {
                    return Some((
                        Err(UpstreamError::Transport(
                            "the stream ended before [DONE]".into(),
                        )),
                        None,
                    ));
                }
                Ok(Some(next)) => next,
            };
            let event = match next {
                Ok(event) => event,
                Err(e) => return Some((Err(UpstreamError::Transport(e.to_string())), None)),
            };
            let data = event.data.trim();
            if data.is_empty() {
                continue;
            }
            if data == "[DONE]" {
                return None;
            }
            // Read (and checked for `error`) as it is relayed: `gateway::reply`.
            let data = if data.len() == event.data.len() {
                event.data
            } else {
                data.to_owned()
            };
            return Some((Ok(data), Some(events)));
        }
    });
    Ok(Reply::Chunks(chunks.boxed()))
}

fn transport(error: reqwest::Error) -> UpstreamError {
    if error.is_timeout() {
        UpstreamError::Timeout("connect")
    } else {
        UpstreamError::Transport(without_url(&error))
    }
}

/// reqwest's message without the URL, which may carry credentials.
fn without_url(error: &reqwest::Error) -> String {
    let kind = if error.is_connect() {
        "connection failed"
    } else if error.is_body() || error.is_decode() {
        "the answer was cut off"
    } else {
        "request failed"
    };
    kind.to_owned()
}

/// The `error.message` of an OpenAI-shaped body, or a short prefix of the text.
fn error_message(text: &str) -> String {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| text.chars().take(200).collect())
}
