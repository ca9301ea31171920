//! Stage 7: the call to the model's provider. The caller's body goes through
//! with the upstream model name, the model's default system prompt when the
//! caller sent none, an explicit cap on the reply (the hold's worst case, under
//! the name the model table gives for that upstream) and, for
//! streams, the usage chunk requested so the charge is exact.

use serde_json::{Value, json};

use super::{
    parse::ChatRequest,
    providers::{Model, Provider, Reply, UpstreamError, demo, openai},
};
use crate::config::UpstreamTimeouts;

pub struct Upstreams {
    client: reqwest::Client,
    timeouts: UpstreamTimeouts,
    /// The most bytes an answer may send, whole or streamed.
    max_body_bytes: usize,
}

impl Upstreams {
    pub fn new(timeouts: UpstreamTimeouts, max_body_bytes: usize) -> Result<Self, reqwest::Error> {
        Ok(Self {
            client: openai::client(timeouts)?,
            timeouts,
            max_body_bytes,
        })
    }

    /// Takes the request's body (not copied): nothing reads it after this.
    /// Returns once the upstream has accepted the call, before its answer has
    /// all come.
    pub async fn call(
        &self,
        model: &Model,
        request: &mut ChatRequest,
        messages: Vec<Value>,
        max_tokens: u64,
    ) -> Result<Reply, UpstreamError> {
        match &model.provider {
            Provider::Demo { word_delay } => Ok(demo::complete(
                &model.name,
                &messages,
                max_tokens,
                request.choices,
                request.stream,
                *word_delay,
            )),
            Provider::OpenAi {
                completions_url,
                upstream_model,
                api_key,
                max_tokens_field,
                stream_usage,
                ..
            } => {
                let mut body = std::mem::take(&mut request.body);
                body.insert("model".into(), json!(upstream_model));
                body.insert("messages".into(), Value::Array(messages));
                body.remove("max_tokens");
                body.remove("max_completion_tokens");
                body.insert((*max_tokens_field).into(), json!(max_tokens));
                // The caller's other stream options go through as sent.
                if request.stream && *stream_usage {
                    let options = body.entry("stream_options").or_insert_with(|| json!({}));
                    if !options.is_object() {
                        *options = json!({});
                    }
                    options["include_usage"] = json!(true);
                } else if let Some(Value::Object(options)) = body.get_mut("stream_options") {
                    // A server that refuses the option is not asked; a caller
                    // that asked gets the usage chunk the gateway makes.
                    options.remove("include_usage");
                    if options.is_empty() {
                        body.remove("stream_options");
                    }
                }
                openai::complete(
                    &self.client,
                    (self.timeouts, self.max_body_bytes),
                    completions_url,
                    api_key.as_ref(),
                    &Value::Object(body),
                    request.stream,
                )
                .await
            }
        }
    }
}

/// The request's messages (taken out of it) with the model's default system
/// prompt first when the caller sent no system message.
pub fn messages_for(model: &Model, request: &mut ChatRequest) -> Vec<Value> {
    let add_system = model.system_prompt.is_some() && !request.has_system_message();
    let mut messages = std::mem::take(&mut request.messages);
    if let Some(system) = model.system_prompt.as_ref().filter(|_| add_system) {
        messages.insert(0, json!({ "role": "system", "content": system }));
    }
    messages
}
