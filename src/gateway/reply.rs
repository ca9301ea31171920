//! What the caller gets back from an upstream: each JSON object (a whole
//! completion or one stream chunk) as the upstream sent it, except that
//! `model` names the public model and `usage` is left out where the caller did
//! not ask for it. Only the top level is parsed, plus the two parts metering
//! reads (`usage` and the choices' text): a chunk's other fields are copied
//! through as text, never built into values and written out again.

use std::{borrow::Cow, fmt};

use serde::{Deserialize, Deserializer, de};
use serde_json::value::RawValue;

use super::{providers::UpstreamError, settle::Meter};

/// What became of one upstream object.
#[derive(Debug, PartialEq, Eq)]
pub enum Relayed {
    /// The caller's copy was appended.
    Sent,
    /// Nothing for the caller: a usage-only chunk it did not ask for.
    Skipped,
    /// The caller's copy was appended, but it is an object of usage alone
    /// whose usage did not read as counts and was left out. A stream drops
    /// it: the gateway's own usage chunk takes its place, and OpenAI's
    /// streams have one object without choices, the usage. A whole answer
    /// keeps it: its object is the answer.
    UsageDropped,
}

/// [`relay`] for a whole answer as it came off the wire: its bytes must be
/// UTF-8, as JSON is.
pub fn relay_bytes(
    body: &[u8],
    model: &str,
    keep_usage: bool,
    meter: &mut Meter,
    out: &mut Vec<u8>,
) -> Result<Relayed, UpstreamError> {
    let text = std::str::from_utf8(body)
        .map_err(|e| UpstreamError::Protocol(format!("the answer is not UTF-8: {e}")))?;
    relay(text, model, keep_usage, meter, out)
}

/// Meters one upstream object and appends the caller's copy to `out`: `model`
/// set to `model`, and `usage` dropped unless `keep_usage`. An object that
/// carries `error`, says it is an error (`"object": "error"`), or is not a
/// JSON object, is the upstream's failure.
///
/// It takes text, not bytes: parsing from a `str`, serde_json checks no
/// key or raw value for UTF-8 again (once per field, about 2% of a call's work).
pub fn relay(
    text: &str,
    model: &str,
    keep_usage: bool,
    meter: &mut Meter,
    out: &mut Vec<u8>,
) -> Result<Relayed, UpstreamError> {
    let Fields(fields) =
        serde_json::from_str(text).map_err(|e| UpstreamError::Protocol(e.to_string()))?;
    let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
    // Some servers (Foundry Local) send `"error": null` on every object.
    if let Some(error) = field("error").filter(|e| e.get() != "null") {
        // It came in a success (a body or a stream's event).
        return Err(UpstreamError::status(502, error_message(error)).answered_with(200));
    }
    // vLLM and servers like it send `{"object": "error", "message": …}`.
    if field("object").is_some_and(|object| object.get() == r#""error""#) {
        let message = field("message").map_or_else(
            || "an error object with no message".to_owned(),
            error_message,
        );
        return Err(UpstreamError::status(502, message).answered_with(200));
    }
    meter.answered = true;
    let usage = field("usage").filter(|u| u.get() != "null");
    // A usage whose counts are not whole numbers (strings, negatives,
    // fractions) is dropped like a `null` one: the gateway's own count,
    // which is what is charged, goes in its place.
    let counts = match usage.map(|u| serde_json::from_str::<Usage>(u.get())) {
        Some(Ok(Usage {
            prompt_tokens: Some(prompt),
            completion_tokens: Some(completion),
        })) => Some((prompt, completion)),
        _ => None,
    };
    meter.usage_sent |= counts.is_some();
    let with_usage = counts.is_some();
    if counts.is_some() {
        meter.usage = counts;
    }
    let mut text_bytes = 0;
    // Choices that do not parse are passed on unmetered, as sent.
    let choices = match field("choices") {
        None => Some(Vec::new()),
        Some(raw) => serde_json::from_str::<Vec<Choice>>(raw.get()).ok(),
    };
    for (position, choice) in choices.iter().flatten().enumerate() {
        // A reason is a non-empty string; some servers send `""` on every chunk.
        if choice
            .finish_reason
            .is_some_and(|reason| reason.get().len() > 2 && reason.get().starts_with('"'))
        {
            meter.choice_finished(choice.index.unwrap_or(position as u64));
        }
        for part in [&choice.delta, &choice.message].into_iter().flatten() {
            let text = |field: &Option<Text>| field.as_ref().map_or(0, |Text(bytes)| *bytes);
            // Some servers send the same thoughts under both names.
            text_bytes += text(&part.content)
                + text(&part.refusal)
                + text(&part.reasoning_content).max(text(&part.reasoning));
            // Tool calls are counted by what the model wrote: names and
            // arguments, not the JSON around them.
            if let Some(calls) = part.tool_calls {
                let calls = serde_json::from_str::<Vec<&RawValue>>(calls.get()).unwrap_or_default();
                text_bytes += calls
                    .iter()
                    .map(|call| written::<ToolCall>(call))
                    .sum::<u64>();
            }
            if let Some(call) = part.function_call {
                text_bytes += written::<Function>(call);
            }
        }
    }
    meter.reply_text(text_bytes, with_usage);
    // A usage saying other than what is charged (a prompt count past what the
    // request could hold, zero beside text) is passed on as charged.
    let charged = counts.and_then(|reported| meter.charged().filter(|c| *c != reported));
    if keep_usage && let Some(reported) = counts {
        meter.usage_shown = Some(charged.unwrap_or(reported));
    }
    // A chunk of usage alone is skipped when the caller did not ask for
    // usage (a whole answer always keeps it: its object is the answer).
    let usage_alone = usage.is_some() && choices.as_ref().is_some_and(Vec::is_empty);
    if !keep_usage && usage_alone {
        return Ok(Relayed::Skipped);
    }
    let usage_kept = keep_usage && counts.is_some();

    out.push(b'{');
    let mut first = true;
    let mut model_written = false;
    for (key, value) in &fields {
        // A `null` (or unreadable) usage is left out: the gateway writes
        // its count there.
        if key == "usage" && !usage_kept {
            continue;
        }
        if !std::mem::take(&mut first) {
            out.push(b',');
        }
        write_str(out, key);
        out.push(b':');
        if key == "model" {
            write_str(out, model);
            model_written = true;
        } else if let (true, Some((prompt, completion))) = (key == "usage", charged) {
            recount_usage(out, value.get(), prompt, completion);
        } else {
            out.extend_from_slice(value.get().as_bytes());
        }
    }
    if !model_written {
        if !first {
            out.push(b',');
        }
        out.extend_from_slice(b"\"model\":");
        write_str(out, model);
    }
    out.push(b'}');
    if usage_alone && !usage_kept {
        return Ok(Relayed::UsageDropped);
    }
    Ok(Relayed::Sent)
}

/// Adds the counted `usage` to a whole answer written by [`relay`] whose
/// upstream sent none: OpenAI's answers always have one, and the SDKs read it.
pub fn add_usage(out: &mut Vec<u8>, prompt: u64, completion: u64) {
    if out.last() != Some(&b'}') {
        return;
    }
    out.pop();
    out.extend_from_slice(b",\"usage\":");
    write_usage(out, prompt, completion);
    out.push(b'}');
}

/// The upstream's `usage` object (`raw`) with these counts in place of its
/// own, its other fields (cached and reasoning tokens) kept.
fn recount_usage(out: &mut Vec<u8>, raw: &str, prompt: u64, completion: u64) {
    let Ok(mut usage) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(raw)
    else {
        return write_usage(out, prompt, completion);
    };
    usage.insert("prompt_tokens".into(), prompt.into());
    usage.insert("completion_tokens".into(), completion.into());
    usage.insert("total_tokens".into(), (prompt + completion).into());
    out.extend_from_slice(serde_json::Value::Object(usage).to_string().as_bytes());
}

/// A `usage` object of these counts.
fn write_usage(out: &mut Vec<u8>, prompt: u64, completion: u64) {
    let usage = serde_json::json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    });
    out.extend_from_slice(usage.to_string().as_bytes());
}

/// What every chunk of an answer repeats: its `id` and `created`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AnswerHead {
    pub id: Option<String>,
    pub created: Option<i64>,
}

impl AnswerHead {
    /// Whether both are known.
    pub fn is_whole(&self) -> bool {
        self.id.is_some() && self.created.is_some()
    }

    /// Fills in what is still unknown from an upstream chunk. An empty `id`
    /// and a `created` of 0 (Azure's first chunk, its prompt filter results,
    /// has both) or of another type say nothing and are passed over.
    pub fn learn(&mut self, chunk: &str) {
        #[derive(Deserialize)]
        struct Head<'a> {
            #[serde(borrow)]
            id: Option<&'a RawValue>,
            #[serde(borrow)]
            created: Option<&'a RawValue>,
        }
        let Ok(Head { id, created }) = serde_json::from_str::<Head<'_>>(chunk) else {
            return;
        };
        if self.id.is_none() {
            self.id = id
                .and_then(|raw| serde_json::from_str::<String>(raw.get()).ok())
                .filter(|id| !id.is_empty());
        }
        if self.created.is_none() {
            self.created = created
                .and_then(|raw| raw.get().parse::<i64>().ok())
                .filter(|t| *t > 0);
        }
    }
}

/// Appends the usage chunk OpenAI ends a stream with (no choices, the
/// `usage`), for an upstream that sent none, as a chunk of the same answer.
pub fn write_usage_chunk(
    head: &AnswerHead,
    model: &str,
    prompt: u64,
    completion: u64,
    out: &mut Vec<u8>,
) {
    let chunk = serde_json::json!({
        "id": head.id.as_deref().unwrap_or("chatcmpl-tollgate"),
        "object": "chat.completion.chunk",
        "created": head.created.unwrap_or_else(|| chrono::Utc::now().timestamp()),
        "model": model,
        "choices": [],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    });
    // Writing into memory cannot fail.
    let _ = serde_json::to_writer(&mut *out, &chunk);
}

/// Appends `text` as a JSON string.
fn write_str(out: &mut Vec<u8>, text: &str) {
    // Writing a string into memory cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
}

/// The `message` of an upstream's `error` value, or a short prefix of it.
fn error_message(error: &RawValue) -> String {
    #[derive(Deserialize)]
    struct Error {
        message: String,
    }
    serde_json::from_str::<Error>(error.get())
        .map(|e| e.message)
        // Some servers (TGI) send the message as the `error` itself.
        .or_else(|_| serde_json::from_str::<String>(error.get()))
        .unwrap_or_else(|_| error.get().chars().take(200).collect())
}

#[derive(Deserialize)]
struct Usage {
    prompt_tokens: Option<u64>,
    completion_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(borrow, default)]
    delta: Option<Part<'a>>,
    #[serde(borrow, default)]
    message: Option<Part<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Part<'a> {
    #[serde(default)]
    content: Option<Text>,
    /// A refusal written instead of the content, output all the same.
    #[serde(default)]
    refusal: Option<Text>,
    /// What reasoning models think aloud (vLLM, DeepSeek: `reasoning_content`;
    /// OpenRouter, Ollama: `reasoning`), billed as output.
    #[serde(default)]
    reasoning_content: Option<Text>,
    #[serde(default)]
    reasoning: Option<Text>,
    #[serde(borrow, default)]
    tool_calls: Option<&'a RawValue>,
    #[serde(borrow, default)]
    function_call: Option<&'a RawValue>,
}

/// Bytes the model wrote in `call`, read as a `T`; a call of another shape
/// counts whole, as its JSON text, rather than as nothing.
fn written<'a, T: Deserialize<'a> + Written>(call: &'a RawValue) -> u64 {
    match serde_json::from_str::<T>(call.get()) {
        Ok(call) => call.written(),
        Err(_) if call.get() == "null" => 0,
        Err(_) => call.get().len() as u64,
    }
}

trait Written {
    fn written(&self) -> u64;
}

/// One of a message's `tool_calls`: a function's, or a custom tool's input.
#[derive(Deserialize)]
struct ToolCall<'a> {
    #[serde(borrow, default)]
    function: Option<Function<'a>>,
    #[serde(borrow, default)]
    custom: Option<Custom<'a>>,
}

impl Written for ToolCall<'_> {
    fn written(&self) -> u64 {
        self.function.as_ref().map_or(0, Written::written)
            + self.custom.as_ref().map_or(0, |c| c.input.written())
    }
}

#[derive(Deserialize)]
struct Custom<'a> {
    #[serde(borrow, default)]
    input: Said<'a>,
}

/// A tool call's function (or a legacy `function_call`): in a stream, pieces of
/// its name and arguments.
#[derive(Deserialize)]
struct Function<'a> {
    #[serde(borrow, default)]
    name: Said<'a>,
    #[serde(borrow, default)]
    arguments: Said<'a>,
}

impl Written for Function<'_> {
    fn written(&self) -> u64 {
        self.name.written() + self.arguments.written()
    }
}

/// What a model wrote in a field: a string, by its text, or any other value
/// (arguments sent as an object) by its JSON.
#[derive(Default)]
struct Said<'a>(Option<&'a RawValue>);

impl Said<'_> {
    fn written(&self) -> u64 {
        let Some(raw) = self.0 else { return 0 };
        match serde_json::from_str::<Key>(raw.get()) {
            Ok(Key(text)) => text.len() as u64,
            Err(_) if raw.get() == "null" => 0,
            Err(_) => raw.get().len() as u64,
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Said<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        <&RawValue>::deserialize(deserializer).map(|raw| Said(Some(raw)))
    }
}

/// The bytes of text in a `content` (or a refusal, or reasoning): a string,
/// or an array of parts whose `text` (or `refusal`) is counted; any other
/// value (null, a number) counts as none.
struct Text(u64);

/// One of a `content` array's parts.
#[derive(Deserialize)]
struct ContentPart<'a> {
    #[serde(borrow, default)]
    text: Option<Key<'a>>,
    #[serde(borrow, default)]
    refusal: Option<Key<'a>>,
}

/// A JSON object's top-level fields in the order sent, values unparsed.
struct Fields<'a>(Vec<(Cow<'a, str>, &'a RawValue)>);

/// A string borrowed from the input when it has no escapes.
struct Key<'a>(Cow<'a, str>);

struct StrVisitor;

impl<'de> de::Visitor<'de> for StrVisitor {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(text))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(text.to_owned()))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Key<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(StrVisitor).map(Key)
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Parsed as raw text first, so a content of another shape is
        // skipped, not an error.
        let raw = <&RawValue>::deserialize(deserializer)?.get();
        let len = |key: &Option<Key>| key.as_ref().map_or(0, |Key(text)| text.len() as u64);
        Ok(Text(match raw.as_bytes().first() {
            Some(b'"') => serde_json::from_str::<Key>(raw).map_or(0, |Key(text)| text.len() as u64),
            Some(b'[') => serde_json::from_str::<Vec<&RawValue>>(raw).map_or(0, |parts| {
                parts
                    .iter()
                    .filter_map(|part| serde_json::from_str::<ContentPart>(part.get()).ok())
                    .map(|part| len(&part.text) + len(&part.refusal))
                    .sum()
            }),
            _ => 0,
        }))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Fields<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FieldsVisitor;

        impl<'de> de::Visitor<'de> for FieldsVisitor {
            type Value = Fields<'de>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((Key(key), value)) = map.next_entry::<Key, &RawValue>()? {
                    fields.push((key, value));
                }
                Ok(Fields(fields))
            }
        }

        deserializer.deserialize_map(FieldsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn run(text: &str, keep_usage: bool) -> (Result<Relayed, UpstreamError>, Meter, Value) {
        let mut meter = Meter::default();
        let mut out = Vec::new();
        let result = relay_bytes(text.as_bytes(), "public", keep_usage, &mut meter, &mut out);
        let sent = serde_json::from_slice(&out).unwrap_or(Value::Null);
        (result, meter, sent)
    }

    /// The head is learnt from the chunks that have one: Azure's first
    /// chunk (prompt filter results) has an empty id and a created of 0.
    #[test]
    fn an_answers_head_passes_over_empty_values() {
        let mut head = AnswerHead::default();
        head.learn(r#"{"id":"","created":0,"choices":[],"prompt_filter_results":[]}"#);
        assert_eq!(head, AnswerHead::default());
        head.learn(r#"{"id":"c1","created":"soon","choices":[]}"#);
        assert_eq!(head.id.as_deref(), Some("c1"));
        assert!(!head.is_whole());
        head.learn(r#"{"id":"c2","created":1700000000,"choices":[]}"#);
        assert_eq!(head.id.as_deref(), Some("c1"), "the first id stays");
        assert_eq!(head.created, Some(1_700_000_000));
        assert!(head.is_whole());
        head.learn("not json");
        assert!(head.is_whole());
    }

    #[test]
    fn a_chunk_keeps_its_fields_with_the_public_model() {
        let text = r#"{"id":"c1","object":"chat.completion.chunk","model":"up-\"x\"","choices":[{"index":0,"delta":{"content":"Hé \"you\""},"finish_reason":null}],"extra":{"n":[1,2.5]}}"#;
        let (result, meter, sent) = run(text, false);
        assert_eq!(result.unwrap(), Relayed::Sent);
        let mut expected: Value = serde_json::from_str(text).unwrap();
        expected["model"] = json!("public");
        assert_eq!(sent, expected);
        // Bytes of the unescaped text: `é` is two.
        assert_eq!(meter.reply_bytes, 9);
        assert_eq!(meter.usage, None);
    }

    #[test]
    fn usage_is_metered_and_dropped_unless_asked_for() {
        let usage_only = r#"{"id":"c1","choices":[],"model":"up","usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}"#;
        let (result, meter, _) = run(usage_only, false);
        assert_eq!(result.unwrap(), Relayed::Skipped);
        assert_eq!(meter.usage, Some((5, 7)));

        let (result, _, sent) = run(usage_only, true);
        assert_eq!(result.unwrap(), Relayed::Sent);
        assert_eq!(sent["usage"]["total_tokens"], 12);

        // Usage on a chunk that has text: the text goes, the usage does not.
        let with_text = r#"{"choices":[{"delta":{"content":"hi"}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#;
        let (result, meter, sent) = run(with_text, false);
        assert_eq!(result.unwrap(), Relayed::Sent);
        assert_eq!(meter.reply_bytes, 2);
        assert_eq!(
            sent,
            json!({ "choices": [{ "delta": { "content": "hi" } }], "model": "public" })
        );
    }

    #[test]
    fn whole_answers_and_odd_shapes_are_metered_leniently() {
        let whole = r#"{"choices":[{"message":{"role":"assistant","content":"four"}},{"message":{"content":null}},{"message":{"content":[{"type":"text"}]}}],"usage":null}"#;
        let (result, meter, sent) = run(whole, true);
        assert_eq!(result.unwrap(), Relayed::Sent);
        assert_eq!(meter.reply_bytes, 4);
        assert_eq!(sent["model"], "public");
        assert_eq!(sent["usage"], Value::Null);

        // Choices of another shape are forwarded, not metered.
        let (result, meter, sent) = run(r#"{"choices":"none","\u006dodel":"up"}"#, false);
        assert_eq!(result.unwrap(), Relayed::Sent);
        assert_eq!(meter.reply_bytes, 0);
        assert_eq!(sent, json!({ "choices": "none", "model": "public" }));
    }

    /// Some upstreams send `content` as parts, as requests may.
    #[test]
    fn content_sent_as_parts_counts_its_text() {
        let parts = r#"{"choices":[{"delta":{"content":[{"type":"text","text":"wo\u0072d "},{"type":"refusal","refusal":"no"},{"type":"image_url","image_url":{"url":"x"}},7,{"type":"text","text":5}]}}]}"#;
        let (result, meter, sent) = run(parts, false);
        assert_eq!(result.unwrap(), Relayed::Sent);
        assert_eq!(meter.reply_bytes, 5 + 2);
        assert_eq!(sent["choices"][0]["delta"]["content"][0]["text"], "word ");
        let whole = r#"{"choices":[{"message":{"content":[{"type":"text","text":"four"}]}}]}"#;
        assert_eq!(run(whole, true).1.reply_bytes, 4);
    }

    /// A usage whose counts are not whole numbers is not passed on (nor
    /// read): the gateway's own count, which is charged, takes its place.
    #[test]
    fn a_usage_that_does_not_read_as_counts_is_dropped() {
        for usage in [
            r#"{"prompt_tokens":"5","completion_tokens":1}"#,
            r#"{"prompt_tokens":-5000,"completion_tokens":1}"#,
            r#"{"prompt_tokens":5.5,"completion_tokens":1}"#,
            r#"{"prompt_tokens":1e30,"completion_tokens":1}"#,
            r#"{"completion_tokens":1}"#,
            r#""many""#,
        ] {
            let whole =
                format!(r#"{{"choices":[{{"message":{{"content":"four"}}}}],"usage":{usage}}}"#);
            let (result, meter, sent) = run(&whole, true);
            assert_eq!(result.unwrap(), Relayed::Sent);
            assert_eq!(sent.get("usage"), None, "{usage}");
            assert!(!meter.usage_sent && meter.usage.is_none(), "{usage}");
            // A whole answer of usage alone is still an answer, its usage
            // left out for the gateway's.
            let usage_only = format!(r#"{{"id":"c1","choices":[],"usage":{usage}}}"#);
            let (result, _, sent) = run(&usage_only, true);
            assert_eq!(result.unwrap(), Relayed::UsageDropped, "{usage}");
            assert_eq!(
                sent,
                json!({ "id": "c1", "choices": [], "model": "public" })
            );
            assert_eq!(
                run(&usage_only, false).0.unwrap(),
                Relayed::Skipped,
                "{usage}"
            );
        }
        let (_, meter, sent) = run(
            r#"{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1,"extra":{"cached_tokens":2}}}"#,
            true,
        );
        assert_eq!(sent["usage"]["extra"]["cached_tokens"], 2);
        assert!(meter.usage_sent);
    }

    #[test]
    fn a_refusal_counts_as_output() {
        let refused = r#"{"choices":[{"delta":{"refusal":"I can't help with that."}}]}"#;
        assert_eq!(run(refused, false).1.reply_bytes, 23);
    }

    /// Text after the last usage is what that usage did not count: an
    /// upstream reporting early, or on every chunk, then cut off.
    #[test]
    fn text_after_the_last_usage_is_counted_apart() {
        let mut meter = Meter::default();
        let send = |meter: &mut Meter, text: &str| {
            relay_bytes(text.as_bytes(), "public", false, meter, &mut Vec::new()).unwrap();
        };
        send(
            &mut meter,
            r#"{"choices":[{"delta":{"content":"ab"}}],"usage":{"prompt_tokens":10,"completion_tokens":1}}"#,
        );
        send(
            &mut meter,
            r#"{"choices":[{"delta":{"content":"cdefgh"}}]}"#,
        );
        send(&mut meter, r#"{"choices":[{"delta":{"content":"ij"}}]}"#);
        assert_eq!((meter.reply_bytes, meter.bytes_after_usage), (10, 8));
        assert_eq!(meter.tokens(99, 500, 1_000), (10, 1 + 2));
        send(
            &mut meter,
            r#"{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":4}}"#,
        );
        assert_eq!(meter.bytes_after_usage, 0);
        assert_eq!(meter.tokens(99, 500, 1_000), (10, 4));
    }

    #[test]
    fn reasoning_and_tool_calls_count_as_output_and_any_answer_as_answered() {
        let reasoning = r#"{"choices":[{"delta":{"content":"so","reasoning_content":"hmm"}}]}"#;
        let (result, meter, _) = run(reasoning, false);
        assert_eq!(result.unwrap(), Relayed::Sent);
        assert_eq!(meter.reply_bytes, 5);
        assert!(meter.answered);
        assert_eq!(
            run(r#"{"choices":[{"delta":{"reasoning":"ok"}}]}"#, false)
                .1
                .reply_bytes,
            2
        );

        // The same thoughts under both names (mlx, vLLM during its rename)
        // count once.
        let twice = r#"{"choices":[{"delta":{"reasoning_content":"hmm","reasoning":"hmm"}}]}"#;
        assert_eq!(run(twice, false).1.reply_bytes, 3);

        // Tool calls count what the model wrote, not the JSON around it: a
        // stream's argument pieces are often a few bytes in forty of JSON.
        let tools = r#"{"choices":[{"message":{"content":null,"tool_calls":[{"id":"1","type":"function","function":{"name":"get","arguments":"{\"a\":1}"}},{"id":"2"}]}}]}"#;
        let (_, meter, _) = run(tools, false);
        assert_eq!(meter.reply_bytes, 3 + r#"{"a":1}"#.len() as u64);
        let piece = r#"{"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\""}}]}}]}"#;
        assert_eq!(run(piece, false).1.reply_bytes, 2);
        let legacy = r#"{"choices":[{"message":{"function_call":{"name":"f","arguments":"{}"}}}]}"#;
        assert_eq!(run(legacy, false).1.reply_bytes, 3);
        let odd = r#"{"choices":[{"message":{"tool_calls":"none","function_call":null}}]}"#;
        assert_eq!(run(odd, false).1.reply_bytes, 0);
        // One call of another shape spoils only itself; a custom tool's
        // input and arguments sent as an object count too.
        let mixed = r#"{"choices":[{"message":{"tool_calls":[{"function":null},{"type":"custom","custom":{"input":"abcd"}},{"function":{"name":"f","arguments":{"a":1}}},7]}}]}"#;
        assert_eq!(
            run(mixed, false).1.reply_bytes,
            4 + 1 + r#"{"a":1}"#.len() as u64 + 1
        );

        // The role chunk alone has no text, but the upstream has answered.
        let (_, meter, _) = run(
            r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#,
            false,
        );
        assert_eq!((meter.reply_bytes, meter.answered), (0, true));
        let (_, meter, _) = run(r#"{"error":{"message":"no"}}"#, false);
        assert!(!meter.answered);
    }

    /// A choice is finished once, by a non-empty reason, whatever repeats it.
    #[test]
    fn finished_choices_are_counted_once_each_by_index() {
        let mut meter = Meter::default();
        let mut out = Vec::new();
        for chunk in [
            r#"{"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":""}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"choices":[{"index":1,"delta":{},"finish_reason":null}]}"#,
        ] {
            relay(chunk, "public", false, &mut meter, &mut out).unwrap();
        }
        assert_eq!(meter.finished_choices(), 1);
        relay(
            r#"{"choices":[{"index":1,"finish_reason":"length"}]}"#,
            "public",
            false,
            &mut meter,
            &mut out,
        )
        .unwrap();
        assert_eq!(meter.finished_choices(), 2);
        // A whole answer's choices without indexes count by position.
        let (_, meter, _) = run(
            r#"{"choices":[{"finish_reason":"stop"},{"finish_reason":"stop"}]}"#,
            false,
        );
        assert_eq!(meter.finished_choices(), 2);
    }

    #[test]
    fn errors_and_non_objects_are_upstream_failures() {
        let (result, _, _) = run(
            r#"{"error":{"message":"overloaded","type":"server_error"}}"#,
            false,
        );
        match result {
            // The log says what came: an error in a success.
            Err(UpstreamError::Status {
                status: 502,
                answered: 200,
                message,
                ..
            }) => assert_eq!(message, "overloaded"),
            other => panic!("{other:?}"),
        }
        // A message sent as the `error` itself (TGI).
        match run(r#"{"error":"overloaded"}"#, false).0 {
            Err(UpstreamError::Status { message, .. }) => assert_eq!(message, "overloaded"),
            other => panic!("{other:?}"),
        }
        // An object that says it is an error (vLLM), with or without a message.
        for (text, said) in [
            (
                r#"{"object":"error","message":"The model ran out of KV cache","type":"InternalServerError","code":500}"#,
                "The model ran out of KV cache",
            ),
            (r#"{"object":"error"}"#, "an error object with no message"),
        ] {
            match run(text, false).0 {
                Err(UpstreamError::Status {
                    status: 502,
                    answered: 200,
                    message,
                    ..
                }) => assert_eq!(message, said),
                other => panic!("{text}: {other:?}"),
            }
        }
        for text in ["[1]", "not json", "{\"a\":1", ""] {
            assert!(
                matches!(run(text, false).0, Err(UpstreamError::Protocol(_))),
                "{text}"
            );
        }
        // An `error` that is null is none, as the OpenAI SDKs read it.
        let (result, meter, sent) = run(
            r#"{"choices":[{"delta":{"content":"ok"}}],"error":null}"#,
            false,
        );
        assert_eq!(result.unwrap(), Relayed::Sent);
        assert_eq!(meter.reply_bytes, 2);
        assert_eq!(sent["error"], Value::Null);
        let not_utf8 = b"{\"choices\":[{\"message\":{\"content\":\"\xff\"}}]}";
        let mut out = Vec::new();
        let result = relay_bytes(not_utf8, "public", true, &mut Meter::default(), &mut out);
        assert!(
            matches!(result, Err(UpstreamError::Protocol(_))),
            "{result:?}"
        );
        assert!(out.is_empty());
    }
}
