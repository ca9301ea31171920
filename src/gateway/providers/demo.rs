//! The built-in `demo` model: a deterministic reply about the request, streamed
//! one word at a time with realistic usage numbers, so a fresh install serves
//! real requests without any upstream.

use std::time::Duration;

use futures::{FutureExt, StreamExt};
use serde_json::{Value, json};

use super::{Reply, estimate_prompt_tokens, message_text};

/// The longest word the reply quotes, in characters: it counts one token a
/// word, so a quoted word of any length would be a reply of megabytes sold as
/// a dozen tokens (and held in memory once for each of `n` choices).
const QUOTED_WORD_CHARS: usize = 24;

/// The reply's words for these messages: always the same for the same input.
pub fn reply_words(messages: &[Value]) -> Vec<String> {
    let last = messages
        .iter()
        .rev()
        .find(|m| m["role"] == "user")
        .map(message_text)
        .unwrap_or_default();
    let words: Vec<&str> = last.split_whitespace().collect();
    let quoted = words
        .iter()
        .take(12)
        .map(|word| match word.char_indices().nth(QUOTED_WORD_CHARS) {
            Some((cut, _)) => format!("{}…", &word[..cut]),
            None => (*word).to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ");
    let ellipsis = if words.len() > 12 { "…" } else { "" };
    let count = match words.len() {
        1 => "1 word".to_owned(),
        n => format!("{n} words"),
    };
    let text = format!(
        "Hello! This is Tollgate's demo model. Your message had {count}: \"{quoted}{ellipsis}\". \
         Add a real model to the model table to get real answers."
    );
    text.split(' ').map(str::to_owned).collect()
}

/// Answers like an OpenAI server would: `choices` choices (`n`), the same
/// reply in each, `max_tokens` words at most (one token per word).
pub fn complete(
    model: &str,
    messages: &[Value],
    max_tokens: u64,
    choices: u64,
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
    let completion_tokens = words.len() as u64 * choices;
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
            "choices": (0..choices).map(|index| json!({
                "index": index,
                "message": { "role": "assistant", "content": words.join(" ") },
                "finish_reason": finish,
            })).collect::<Vec<_>>(),
            "usage": usage,
        });
        return Reply::Whole(futures::future::ready(Ok(whole.to_string().into())).boxed());
    }
    let chunk = move |index: u64, delta: Value, finish: Option<&str>| {
        json!({
            "id": id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{ "index": index, "delta": delta, "finish_reason": finish }],
        })
    };
    // The choices take turns, word by word, as OpenAI's do.
    let each = |delta: &Value, finish: Option<&str>| {
        (0..choices)
            .map(|index| chunk(index, delta.clone(), finish))
            .collect::<Vec<_>>()
    };
    let mut chunks = vec![each(&json!({ "role": "assistant", "content": "" }), None)];
    let count = words.len();
    for (i, word) in words.into_iter().enumerate() {
        let text = if i + 1 < count {
            format!("{word} ")
        } else {
            word
        };
        chunks.push(each(&json!({ "content": text }), None));
    }
    chunks.push(each(&json!({}), Some(finish)));
    let mut usage_chunk = chunk(0, json!({}), None);
    usage_chunk["choices"] = json!([]);
    usage_chunk["usage"] = usage;
    chunks.push(vec![usage_chunk]);

    let stream = futures::stream::iter(chunks.into_iter().enumerate())
        .then(move |(i, turn)| async move {
            // The first turn (the roles) comes at once; each word after a pause.
            if i > 0 && !word_delay.is_zero() {
                tokio::time::sleep(word_delay).await;
            }
            futures::stream::iter(turn.into_iter().map(|c| Ok(c.to_string())))
        })
        .flatten();
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
        // A long word is quoted in part: the reply stays short whatever is sent.
        let long =
            vec![json!({ "role": "user", "content": format!("{} end", "é".repeat(66_000)) })];
        let reply = reply_words(&long).join(" ");
        assert!(
            reply.contains(&format!("\"{}… end\"", "é".repeat(24))),
            "{reply}"
        );
        assert!(reply.chars().count() < 300, "{reply}");
    }

    #[tokio::test]
    async fn max_tokens_cuts_the_reply() {
        let messages = [json!({ "role": "user", "content": "hi" })];
        match complete("demo", &messages, 3, 1, false, Duration::ZERO) {
            Reply::Whole(body) => {
                let body: Value = serde_json::from_slice(&body.await.unwrap()).unwrap();
                assert_eq!(body["choices"][0]["finish_reason"], "length");
                assert_eq!(body["usage"]["completion_tokens"], 3);
            }
            Reply::Chunks(_) => panic!("asked for JSON"),
        }
    }

    /// `n` choices, each the whole reply, charged as `n` replies; streamed,
    /// each choice's words arrive in order under its own index.
    #[tokio::test]
    async fn each_choice_is_a_whole_reply() {
        let messages = [json!({ "role": "user", "content": "hi" })];
        let words = reply_words(&messages).len() as u64;
        let Reply::Whole(body) = complete("demo", &messages, 1000, 3, false, Duration::ZERO) else {
            panic!("asked for JSON");
        };
        let body: Value = serde_json::from_slice(&body.await.unwrap()).unwrap();
        let choices = body["choices"].as_array().unwrap();
        assert_eq!(choices.len(), 3);
        assert_eq!(choices[2]["index"], 2);
        assert_eq!(choices[1]["message"], choices[0]["message"]);
        assert_eq!(body["usage"]["completion_tokens"], words * 3);

        let Reply::Chunks(chunks) = complete("demo", &messages, 1000, 2, true, Duration::ZERO)
        else {
            panic!("asked for a stream");
        };
        let chunks: Vec<Value> = chunks
            .map(|c| serde_json::from_str(&c.unwrap()).unwrap())
            .collect()
            .await;
        let mut texts = [String::new(), String::new()];
        for chunk in &chunks {
            if let Some(choice) = chunk["choices"].get(0) {
                let index = choice["index"].as_u64().unwrap() as usize;
                texts[index] += choice["delta"]["content"].as_str().unwrap_or_default();
            }
        }
        assert_eq!(texts[0], texts[1]);
        assert_eq!(texts[0], reply_words(&messages).join(" "));
        let usage = &chunks.last().unwrap()["usage"];
        assert_eq!(usage["completion_tokens"], words * 2);
    }
}
