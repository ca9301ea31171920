//! The model API in the OpenAPI document: what `/docs` shows developers of
//! `/v1/chat/completions`, `/v1/models` and `/response`. The handlers (in
//! `gateway`) read bodies as raw JSON and pass unknown fields through, so the
//! shapes here describe them rather than parse them; the HTTP tests hold them
//! to what the routes answer.

// Described, never built: the types exist for their schemas.
#![allow(dead_code)]

use serde_json::Value;
use utoipa::ToSchema;

use crate::api_error::ErrorResponse;

/// A chat request in OpenAI's shape. Fields not listed here (tools,
/// response_format, temperature, …) pass through to the upstream unchanged.
#[derive(ToSchema)]
pub struct ChatCompletionRequest {
    /// A model from `GET /v1/models`.
    #[schema(example = "demo")]
    model: String,
    /// The conversation, oldest first; `content` is text or an array of parts.
    #[schema(value_type = Vec<Object>, min_items = 1)]
    messages: Vec<Value>,
    /// Answer as server-sent events (`chat.completion.chunk`, then `[DONE]`).
    stream: Option<bool>,
    /// With `stream`: `{"include_usage": true}` adds a last chunk with the usage.
    #[schema(value_type = Option<Object>)]
    stream_options: Option<Value>,
    /// The longest reply, in tokens; the model's own cap when left out. The
    /// credit hold is counted from it.
    #[schema(minimum = 1, maximum = 1_000_000)]
    max_tokens: Option<u32>,
    /// The same as `max_tokens` (the newer name); send one of the two.
    #[schema(minimum = 1, maximum = 1_000_000)]
    max_completion_tokens: Option<u32>,
    /// Replies to make; each is held and charged.
    #[schema(minimum = 1, maximum = 128)]
    n: Option<u32>,
}

/// A whole answer (`stream` false or left out), as the upstream sent it with
/// the public model name.
#[derive(ToSchema)]
pub struct ChatCompletion {
    id: String,
    /// Always `chat.completion`.
    #[schema(example = "chat.completion")]
    object: String,
    /// Unix seconds.
    created: i64,
    model: String,
    /// Each with `index`, `message` (`role`, `content`) and `finish_reason`.
    #[schema(value_type = Vec<Object>)]
    choices: Vec<Value>,
    usage: ChatUsage,
}

/// The tokens a call used, as charged.
#[derive(ToSchema)]
pub struct ChatUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
}

/// `{"object":"list","data":[…]}`: the models this key may call.
#[derive(ToSchema)]
pub struct ModelList {
    /// Always `list`.
    #[schema(example = "list")]
    object: String,
    data: Vec<ModelEntry>,
}

/// One model, in OpenAI's shape.
#[derive(ToSchema)]
pub struct ModelEntry {
    /// The name to send as `model`.
    id: String,
    /// Always `model`.
    #[schema(example = "model")]
    object: String,
    /// When the model table was read, in Unix seconds.
    created: i64,
    /// `tollgate` for the built-in demo, `upstream` for the rest.
    owned_by: String,
}

/// The simple endpoint's request.
#[derive(ToSchema)]
pub struct SimpleRequest {
    /// Sent as the system message; the model's default when left out.
    system_prompt: Option<String>,
    /// The user's message.
    message: String,
    /// The longest reply, in tokens (`max_tokens`).
    #[schema(minimum = 1, maximum = 1_000_000)]
    tokens: Option<u32>,
}

/// The simple endpoint's answer: the reply's text.
#[derive(ToSchema)]
pub struct SimpleReply {
    /// Always `assistant`.
    #[schema(example = "assistant")]
    role: String,
    content: String,
}

/// Chat with a model
///
/// OpenAI's chat completions: the official SDKs call it with only their base
/// URL (`…/v1`) and key changed. The call passes the client address's limits,
/// the key's checks and restrictions, the plan's limits and a credit hold for
/// its worst case, then is settled at the tokens it used. With `stream` the
/// answer is `text/event-stream`; a failure after the first chunk ends the
/// stream with an `error` event. Every answer carries the
/// `x-ratelimit-*-requests` headers of the tightest window; a 429 carries
/// `Retry-After` and names the limit in `code`.
#[utoipa::path(post, path = "/v1/chat/completions", tag = "models",
    request_body = ChatCompletionRequest,
    security(("api_key" = ["chat"]), ("x_api_key" = ["chat"])),
    responses(
        (status = 200, description = "The answer; with `stream`, server-sent `chat.completion.chunk` events and `data: [DONE]`", body = ChatCompletion),
        (status = 400, description = "The body is not a chat request", body = ErrorResponse),
        (status = 401, description = "No key, or one that is not valid, revoked, expired or used up", body = ErrorResponse),
        (status = 402, description = "Too few credits for the call's worst case", body = ErrorResponse),
        (status = 403, description = "The key's restrictions (address, referrer, scope, models) or a disabled account", body = ErrorResponse),
        (status = 404, description = "No such model for this key", body = ErrorResponse),
        (status = 413, description = "The body is too large", body = ErrorResponse),
        (status = 415, description = "The body is compressed (`Content-Encoding`), which is not read", body = ErrorResponse),
        (status = 429, description = "A limit was reached; `code` names it", body = ErrorResponse),
        (status = 502, description = "The upstream failed", body = ErrorResponse),
        (status = 504, description = "The upstream did not answer in time", body = ErrorResponse),
    ))]
pub fn chat_completions() {}

/// List the models
///
/// The models this key may call (its own and its plan's allowed models).
/// `GET /v1/models/{model}` answers one of them.
#[utoipa::path(get, path = "/v1/models", tag = "models",
    security(("api_key" = ["chat"]), ("x_api_key" = ["chat"])),
    responses(
        (status = 200, description = "The models", body = ModelList),
        (status = 401, description = "No key, or one that is not valid", body = ErrorResponse),
        (status = 403, description = "The key's restrictions or a disabled account", body = ErrorResponse),
        (status = 429, description = "The client address's limit was reached", body = ErrorResponse),
    ))]
pub fn list_models() {}

/// Get one model
///
/// One model this key may call, as the list has it (the OpenAI SDKs'
/// `models.retrieve`); the name may hold slashes.
#[utoipa::path(get, path = "/v1/models/{model}", tag = "models",
    params(("model" = String, Path, description = "The model's name")),
    security(("api_key" = ["chat"]), ("x_api_key" = ["chat"])),
    responses(
        (status = 200, description = "The model", body = ModelEntry),
        (status = 401, description = "No key, or one that is not valid", body = ErrorResponse),
        (status = 403, description = "The key's restrictions or a disabled account", body = ErrorResponse),
        (status = 404, description = "No such model for this key", body = ErrorResponse),
        (status = 429, description = "The client address's limit was reached", body = ErrorResponse),
    ))]
pub fn get_model() {}

/// Ask for a reply, simply
///
/// For callers that want only text: the message (and optional system prompt)
/// goes to the first model in the table that the key and its plan allow,
/// through the same limits and credits as a chat call. The key goes in
/// `x-api-key` (or `Authorization: Bearer`).
#[utoipa::path(post, path = "/response", tag = "models",
    request_body = SimpleRequest,
    security(("x_api_key" = ["chat"]), ("api_key" = ["chat"])),
    responses(
        (status = 200, description = "The reply's text", body = SimpleReply),
        (status = 400, description = "The body is not `{system_prompt, message, tokens}`", body = ErrorResponse),
        (status = 401, description = "No key, or one that is not valid", body = ErrorResponse),
        (status = 402, description = "Too few credits", body = ErrorResponse),
        (status = 403, description = "The key's restrictions or a disabled account", body = ErrorResponse),
        (status = 404, description = "No model in the table that the key and its plan allow", body = ErrorResponse),
        (status = 413, description = "The body is too large", body = ErrorResponse),
        (status = 415, description = "The body is compressed (`Content-Encoding`), which is not read", body = ErrorResponse),
        (status = 429, description = "A limit was reached", body = ErrorResponse),
        (status = 502, description = "The upstream failed", body = ErrorResponse),
        (status = 504, description = "The upstream did not answer in time", body = ErrorResponse),
    ))]
pub fn simple_response() {}
