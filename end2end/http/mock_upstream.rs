//! The mock upstream itself behaves as OpenAI's API does; later tests rely on it.

use std::time::Duration;

use axum::http::StatusCode;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::support::mock_upstream::{MockUpstream, count_tokens};

fn chat_body(stream: bool, include_usage: bool) -> Value {
    json!({
        "model": "mock-small",
        "messages": [
            { "role": "system", "content": "Be brief." },
            { "role": "user", "content": "Say hello please" },
        ],
        "stream": stream,
        "stream_options": { "include_usage": include_usage },
    })
}

fn post_chat(mock: &MockUpstream, body: &Value) -> reqwest::RequestBuilder {
    reqwest::Client::new()
        .post(format!("{}/chat/completions", mock.base_url()))
        .json(body)
}

/// Reads an SSE response into its `data:` payloads; `Err` if the stream broke.
async fn read_events(response: reqwest::Response) -> (Vec<String>, Option<String>) {
    let mut events = response.bytes_stream().eventsource();
    let mut data = Vec::new();
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => data.push(event.data),
            Err(error) => return (data, Some(error.to_string())),
        }
    }
    (data, None)
}

#[tokio::test]
async fn answers_chat_completions_in_json_with_usage() {
    let mock = MockUpstream::start().await;
    let response = post_chat(&mock, &chat_body(false, false))
        .bearer_auth("upstream-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello from the mock upstream."
    );
    assert_eq!(body["usage"]["prompt_tokens"], 5);
    assert_eq!(body["usage"]["completion_tokens"], 5);
    assert_eq!(body["usage"]["total_tokens"], 10);

    let recorded = mock.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(
        recorded[0].authorization.as_deref(),
        Some("Bearer upstream-secret")
    );
    assert_eq!(recorded[0].body["model"], "mock-small");
}

#[tokio::test]
async fn streams_chunks_in_order_then_usage_then_done() {
    let mock = MockUpstream::start().await;
    let response = post_chat(&mock, &chat_body(true, true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let (data, error) = read_events(response).await;
    assert_eq!(error, None);
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));

    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Hello from the mock upstream.");
    let usage_chunk = chunks.last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(
        usage_chunk["usage"]["completion_tokens"],
        count_tokens(&text)
    );
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
}

#[tokio::test]
async fn streams_without_usage_unless_asked() {
    let mock = MockUpstream::start().await;
    let response = post_chat(&mock, &chat_body(true, false))
        .send()
        .await
        .unwrap();
    let (data, error) = read_events(response).await;
    assert_eq!(error, None);
    assert!(data.iter().all(|d| !d.contains("\"usage\"")));
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
}

#[tokio::test]
async fn error_status_knob_answers_openai_shaped_errors() {
    let mock = MockUpstream::start().await;
    mock.set(|k| k.error_status = Some(StatusCode::SERVICE_UNAVAILABLE));
    let response = post_chat(&mock, &chat_body(true, true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "server_error");
    assert!(body["error"]["message"].as_str().unwrap().contains("503"));
}

#[tokio::test]
async fn drop_knob_cuts_the_stream_before_done() {
    let mock = MockUpstream::start().await;
    mock.set(|k| k.drop_after_chunks = Some(2));
    let response = post_chat(&mock, &chat_body(true, true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let (data, error) = read_events(response).await;
    assert!(
        error.is_some(),
        "the stream must end with a transport error"
    );
    assert_eq!(data.len(), 3, "role chunk and two content chunks: {data:?}");
    assert!(!data.iter().any(|d| d == "[DONE]"));
}

#[tokio::test]
async fn latency_knob_delays_the_answer() {
    let mock = MockUpstream::start().await;
    mock.set(|k| k.latency = Duration::from_secs(5));
    let result = post_chat(&mock, &chat_body(false, false))
        .timeout(Duration::from_millis(300))
        .send()
        .await;
    assert!(result.unwrap_err().is_timeout());
}

#[tokio::test]
async fn lists_models_in_openai_shape() {
    let mock = MockUpstream::start().await;
    let body: Value = reqwest::get(format!("{}/models", mock.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["object"], "list");
    assert_eq!(body["data"][0]["object"], "model");
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
}
