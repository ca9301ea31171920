//! The built-in `demo` model: a deterministic reply about the request, streamed
//! one word at a time with realistic usage numbers, so a fresh install serves
//! real requests without any upstream.

use std::time::Duration;

use futures::{FutureExt, StreamExt};
use serde_json::{Value, json};

use super::{Reply, estimate_prompt_tokens, message_text};

/// The reply's words for these messages: always the same for the same input.
pub fn reply_words(messages: &[Value]) -> Vec<String> {
    let last = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(message_text)
        .unwrap_or_default();
    let words: Vec<&str> = last.split_whitespace().collect();
    let quoted = words.iter().take(12).copied().collect::<Vec<_>>().join(" ");
    let ellipsis = if words.len() > 12 { "…" } else { "" };
    let text = format!(
        "Hello! This is Tollgate's demo model. Your message had {} words: \"{quoted}{ellipsis}\". \
         Add a real model to the model table to get real answers.",
        words.len()
    );
    text.split(' ').map(str::to_owned).collect()
}

/// Answers like an OpenAI server would, `max_tokens` words at most (one token
/// per word).
pub fn complete(
    model: &str,
    messages: &[Value],
    max_tokens: u64,
    stream: bool,
    word_delay: Duration,
) -> Reply {
    let mut words = reply_words(messages);
    let finish = if words.len() as u64 > max_tokens {
        words.truncate(max_tokens as usize);
        "length"
    } else {
        "stop"
    };
    let prompt_tokens = estimate_prompt_tokens(messages);
    let completion_tokens = words.len() as u64;
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    });
    let id = format!("chatcmpl-demo-{}", uuid::Uuid::new_v4().simple());
    let created = chrono::Utc::now().timestamp();
    if !stream {
        let whole = json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [{
                "index": 0,
                "message": { "role": "assistant", "content": words.join(" ") },
                "finish_reason": finish,
            }],
            "usage": usage,
        });
        return Reply::Whole(futures::future::ready(Ok(whole.to_string().into())).boxed());
    }
    let chunk = move |delta: Value, finish: Option<&str>| {
        json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{ "index": 0, "delta": delta, "finish_reason": finish }],
        })
    };
    let mut chunks = vec![chunk(json!({ "role": "assistant", "content": "" }), None)];
    let count = words.len();
    for (i, word) in words.into_iter().enumerate() {
        let text = if i + 1 < count {
            format!("{word} ")
        } else {
            word
        };
        chunks.push(chunk(json!({ "content": text }), None));
    }
    chunks.push(chunk(json!({}), Some(finish)));
    let mut usage_chunk = chunk(json!({}), None);
    usage_chunk["choices"] = json!([]);
    usage_chunk["usage"] = usage;
    chunks.push(usage_chunk);

    let stream =
        futures::stream::iter(chunks.into_iter().enumerate()).then(move |(i, c)| async move {
            // The first chunk (the role) comes at once; each word after a pause.
            if i > 0 && !word_delay.is_zero() {
                tokio::time::sleep(word_delay).await;
            }
            Ok(c.to_string())
        });
    Reply::Chunks(stream.boxed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_deterministic() {
        let messages = [json!({ "role": "user", "content": "hi there" })];
        assert_eq!(reply_words(&messages), reply_words(&messages));
        assert!(reply_words(&messages).join(" ").contains("\"hi there\""));
    }

    #[tokio::test]
    async fn max_tokens_cuts_the_reply() {
        let messages = [json!({ "role": "user", "content": "hi" })];
        match complete("demo", &messages, 3, false, Duration::ZERO) {
            Reply::Whole(body) => {
                let body: Value = serde_json::from_slice(&body.await.unwrap()).unwrap();
                assert_eq!(body["choices"][0]["finish_reason"], "length");
                assert_eq!(body["usage"]["completion_tokens"], 3);
            }
            Reply::Chunks(_) => panic!("asked for JSON"),
        }
    }
}
