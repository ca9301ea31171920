//! Stage 2: the body is a chat request in OpenAI's shape. Only the fields the
//! gateway needs are checked; every other field passes through to the upstream.

use serde_json::{Map, Value};

use super::error::GatewayError;

const ROLES: [&str; 6] = [
    "system",
    "developer",
    "user",
    "assistant",
    "tool",
    "function",
];

pub use crate::model_api::MAX_TOKENS_CEILING;

/// The most choices (`n`) one call may ask for, as OpenAI allows.
pub const MAX_CHOICES: u64 = 128;

#[derive(Debug, Clone)]
pub struct ChatRequest {
    /// The body without `messages` (kept apart below, not copied), forwarded
    /// with the gateway's changes.
    pub body: Map<String, Value>,
    pub model: String,
    pub messages: Vec<Value>,
    pub stream: bool,
    /// Whether the caller asked for the usage chunk.
    pub include_usage: bool,
    /// `max_completion_tokens`, or else `max_tokens`.
    pub max_tokens: Option<u64>,
    /// `n`: how many choices the reply has, each up to the cap.
    pub choices: u64,
    /// The body's size as sent: no prompt in it can be more tokens than
    /// bytes (see `Hold::prompt_most`).
    pub body_bytes: u64,
}

/// A body as JSON, or its refusal in the parser's words (the chat API's and
/// `/response`'s alike).
pub fn json_body(bytes: &[u8]) -> Result<Value, GatewayError> {
    serde_json::from_slice(bytes)
        .map_err(|e| GatewayError::invalid(format!("The body is not valid JSON: {e}."), None))
}

impl ChatRequest {
    pub fn parse(bytes: &[u8]) -> Result<Self, GatewayError> {
        let value = json_body(bytes)?;
        let Value::Object(mut body) = value else {
            return Err(GatewayError::invalid(
                "The body must be a JSON object.",
                None,
            ));
        };
        let model = match body.get("model") {
            // As sent: a name with spaces is another name, as on OpenAI's
            // API and in GET /v1/models/{model}.
            Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
            _ => {
                return Err(GatewayError::invalid(
                    "`model` is required: the name of a model from GET /v1/models.",
                    Some("model"),
                ));
            }
        };
        let messages = match body.remove("messages") {
            Some(Value::Array(list)) if !list.is_empty() => list,
            _ => {
                return Err(GatewayError::invalid(
                    "`messages` is required: a non-empty array of {role, content} objects.",
                    Some("messages"),
                ));
            }
        };
        for (i, message) in messages.iter().enumerate() {
            let role_ok = message["role"].as_str().is_some_and(|r| ROLES.contains(&r));
            let content_ok = matches!(
                message.get("content"),
                None | Some(Value::Null | Value::String(_) | Value::Array(_))
            );
            if !message.is_object() || !role_ok || !content_ok {
                return Err(GatewayError::invalid(
                    format!(
                        "messages[{i}] must be an object with a role ({}) and a string or array content.",
                        ROLES.join(", ")
                    ),
                    Some("messages"),
                ));
            }
        }
        let stream = match body.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => {
                return Err(GatewayError::invalid(
                    "`stream` must be true or false.",
                    Some("stream"),
                ));
            }
        };
        let include_usage = match body.get("stream_options") {
            None | Some(Value::Null) => false,
            // As OpenAI answers it: the options are for a stream.
            Some(_) if !stream => {
                return Err(GatewayError::invalid(
                    "`stream_options` is only allowed when `stream` is true.",
                    Some("stream_options"),
                ));
            }
            Some(Value::Object(options)) => match options.get("include_usage") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => {
                    return Err(GatewayError::invalid(
                        "`stream_options.include_usage` must be true or false.",
                        Some("stream_options"),
                    ));
                }
            },
            Some(_) => {
                return Err(GatewayError::invalid(
                    "`stream_options` must be an object.",
                    Some("stream_options"),
                ));
            }
        };
        let mut max_tokens = None;
        for field in ["max_tokens", "max_completion_tokens"] {
            match body.get(field) {
                None | Some(Value::Null) => {}
                Some(v) => match v.as_u64().filter(|n| (1..=MAX_TOKENS_CEILING).contains(n)) {
                    Some(n) => max_tokens = Some(n),
                    None => {
                        return Err(GatewayError::invalid(
                            format!(
                                "`{field}` must be a whole number from 1 to {MAX_TOKENS_CEILING}."
                            ),
                            Some(if field == "max_tokens" {
                                "max_tokens"
                            } else {
                                "max_completion_tokens"
                            }),
                        ));
                    }
                },
            }
        }
        let choices = match body.get("n") {
            None | Some(Value::Null) => 1,
            Some(v) => v
                .as_u64()
                .filter(|n| (1..=MAX_CHOICES).contains(n))
                .ok_or_else(|| {
                    GatewayError::invalid(
                        format!("`n` must be a whole number from 1 to {MAX_CHOICES}."),
                        Some("n"),
                    )
                })?,
        };
        Ok(Self {
            body,
            model,
            messages,
            stream,
            include_usage,
            max_tokens,
            choices,
            body_bytes: bytes.len() as u64,
        })
    }

    /// Whether any message is a system (or developer) instruction.
    pub fn has_system_message(&self) -> bool {
        self.messages
            .iter()
            .any(|m| matches!(m["role"].as_str(), Some("system" | "developer")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param_of(body: &str) -> Option<String> {
        match ChatRequest::parse(body.as_bytes()) {
            Err(e) => e.to_api_error().param,
            Ok(_) => Some("accepted".into()),
        }
    }

    #[test]
    fn bad_bodies_name_the_field() {
        assert_eq!(param_of("[]"), None);
        assert_eq!(
            param_of("{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}").as_deref(),
            Some("model")
        );
        assert_eq!(
            param_of("{\"model\":\"demo\",\"messages\":[]}").as_deref(),
            Some("messages")
        );
        assert_eq!(
            param_of("{\"model\":\"demo\",\"messages\":[{\"role\":\"boss\",\"content\":\"x\"}]}")
                .as_deref(),
            Some("messages")
        );
        assert_eq!(
            param_of("{\"model\":\"demo\",\"messages\":[{\"role\":\"user\",\"content\":1}]}")
                .as_deref(),
            Some("messages")
        );
        assert_eq!(param_of("{\"model\":\"demo\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":\"yes\"}").as_deref(), Some("stream"));
        assert_eq!(param_of("{\"model\":\"demo\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":0}").as_deref(), Some("max_tokens"));
        assert_eq!(param_of("{\"model\":\"demo\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":-5}").as_deref(), Some("max_tokens"));
        assert_eq!(
            param_of(
                "{\"model\":\"demo\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":0}"
            )
            .as_deref(),
            Some("n")
        );
        assert_eq!(param_of("{\"model\":\"demo\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":129}").as_deref(), Some("n"));
        assert_eq!(param_of("{\"model\":\"demo\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":2.5}").as_deref(), Some("n"));
    }

    #[test]
    fn the_cap_is_read_under_either_name_and_n_defaults_to_one() {
        let plain = ChatRequest::parse(
            br#"{"model":"demo","messages":[{"role":"user","content":"hi"}],"max_tokens":7}"#,
        )
        .unwrap();
        assert_eq!((plain.max_tokens, plain.choices), (Some(7), 1));
        let reasoning = ChatRequest::parse(
            br#"{"model":"demo","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":9,"n":3}"#,
        )
        .unwrap();
        assert_eq!((reasoning.max_tokens, reasoning.choices), (Some(9), 3));
    }

    #[test]
    fn a_good_body_keeps_unknown_fields() {
        let request = ChatRequest::parse(
            br#"{"model":"demo","messages":[{"role":"user","content":"hi"}],"stream":true,
                "stream_options":{"include_usage":true},"max_tokens":5,"temperature":0.2}"#,
        )
        .unwrap();
        assert!(request.stream && request.include_usage);
        assert_eq!(request.max_tokens, Some(5));
        assert_eq!(request.body["temperature"], 0.2);
    }
}
