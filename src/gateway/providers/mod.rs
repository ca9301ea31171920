//! The model table: each public model name maps to a provider (the built-in
//! `demo` or any OpenAI-compatible server), an upstream model, prices and an
//! optional default system prompt. Read from the TOML file in `TOLLGATE_MODELS`;
//! without one, only `demo` is served, which needs no network.

pub mod demo;
pub mod openai;

use std::{path::Path, time::Duration};

use futures::{FutureExt, StreamExt, future::BoxFuture, stream::BoxStream};
use serde::Deserialize;
use serde_json::Value;
use toml::Spanned;

use crate::credits::{Prices, parse_credits};

/// The table used when `TOLLGATE_MODELS` is unset.
pub const BUILT_IN: &str = r#"
[[model]]
name = "demo"
provider = "demo"
input_price = "0.5"
output_price = "1.5"
max_output_tokens = 256
"#;

#[derive(Debug, Clone)]
pub enum Provider {
    /// Deterministic replies, streamed word by word after `word_delay`.
    Demo { word_delay: Duration },
    /// Any server speaking OpenAI's chat completions API.
    OpenAi {
        base_url: String,
        /// `{base_url}/chat/completions`, parsed once at load.
        completions_url: reqwest::Url,
        upstream_model: String,
        /// Read from the environment variable the table names; never from the file.
        api_key: Option<crate::config::Secret>,
        /// The name the upstream takes the reply's cap under: `max_tokens`
        /// (every OpenAI-compatible server; Ollama knows no other) or
        /// `max_completion_tokens` (OpenAI's reasoning models refuse
        /// `max_tokens`). The cap is what bounds the hold, so it is always sent.
        max_tokens_field: &'static str,
        /// Whether a stream asks the upstream for its usage chunk
        /// (`stream_options.include_usage`): off for servers that refuse the
        /// option, whose streams are then charged by the gateway's own count.
        stream_usage: bool,
    },
}

#[derive(Debug, Clone)]
pub struct Model {
    pub name: String,
    pub provider: Provider,
    pub prices: Prices,
    /// Inserted when a request has no system message.
    pub system_prompt: Option<String>,
    /// Used for the credit hold when a request sets no `max_tokens`.
    pub max_output_tokens: u32,
}

impl Model {
    pub fn owned_by(&self) -> &'static str {
        match self.provider {
            Provider::Demo { .. } => "tollgate",
            Provider::OpenAi { .. } => "upstream",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ModelTable {
    models: Vec<Model>,
    /// When the table was read (Unix seconds): `created` in the model list,
    /// which is the same on every call, as OpenAI's is.
    pub loaded_at: i64,
}

impl ModelTable {
    pub fn get(&self, name: &str) -> Option<&Model> {
        self.models.iter().find(|m| m.name == name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Model> {
        self.models.iter()
    }

    /// The table's first model: where `POST /response` starts looking for one
    /// the key and plan allow, and what the home page's samples call.
    pub fn default_model(&self) -> &Model {
        &self.models[0]
    }

    /// Loads `path`, or the built-in table when `None`. `env` resolves the
    /// upstream key variables, as `std::env::var` does.
    pub fn load(
        path: Option<&Path>,
        env: impl Fn(&str) -> Result<String, std::env::VarError>,
    ) -> Result<Self, ModelTableError> {
        match path {
            None => Self::parse(BUILT_IN, "built-in model table", env),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| ModelTableError {
                    message: format!("cannot read {}: {e}", path.display()),
                })?;
                Self::parse(&text, &path.display().to_string(), env)
            }
        }
    }

    pub fn parse(
        text: &str,
        source: &str,
        env: impl Fn(&str) -> Result<String, std::env::VarError>,
    ) -> Result<Self, ModelTableError> {
        // Byte counting: a span may point anywhere, even inside a character.
        let line_of = |offset: usize| {
            let before = &text.as_bytes()[..offset.min(text.len())];
            before.iter().filter(|&&b| b == b'\n').count() + 1
        };
        let fail = |offset: usize, message: String| ModelTableError {
            message: format!("{source}, line {}: {message}", line_of(offset)),
        };
        let raw: RawTable = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            fail(offset, e.message().to_owned())
        })?;
        if raw.model.is_empty() {
            return Err(fail(0, "no [[model]] entries".into()));
        }
        let mut models: Vec<Model> = Vec::new();
        for entry in raw.model {
            let at = entry.span().start;
            let raw = entry.into_inner();
            let name = raw.name.trim().to_owned();
            if name.is_empty() || name.len() > 128 || name.chars().any(char::is_whitespace) {
                return Err(fail(
                    at,
                    format!(
                        "model name {:?} must be 1 to 128 characters without spaces",
                        raw.name
                    ),
                ));
            }
            if models.iter().any(|m| m.name == name) {
                return Err(fail(at, format!("model {name:?} is listed twice")));
            }
            // A price left out is refused rather than read as free: a model
            // that forgot its output price would never charge for output.
            let price = |value: &Option<Spanned<PriceValue>>, field: &str| {
                match value {
                None => Err(fail(at, format!("model {name:?}: {field} is missing (write \"0\" for a free model)"))),
                Some(v) => v.get_ref().micros().ok_or_else(|| {
                    fail(
                        v.span().start,
                        format!("{field} must be a number of credits per 1,000 tokens written as a string with at most 6 decimals, such as \"0.15\""),
                    )
                }),
            }
            };
            let prices = Prices {
                input_per_1k: price(&raw.input_price, "input_price")?,
                output_per_1k: price(&raw.output_price, "output_price")?,
            };
            // A field the entry's provider never reads is a mistake in the
            // file (an upstream's settings on a demo entry, say), not a default.
            let stray = match raw.provider.as_str() {
                "demo" => [
                    ("base_url", raw.base_url.is_some()),
                    ("upstream_model", raw.upstream_model.is_some()),
                    ("api_key_env", raw.api_key_env.is_some()),
                    ("max_tokens_field", raw.max_tokens_field.is_some()),
                    ("stream_usage", raw.stream_usage.is_some()),
                ]
                .into_iter()
                .find(|(_, set)| *set),
                "openai" => {
                    Some(("word_delay_ms", raw.word_delay_ms.is_some())).filter(|(_, set)| *set)
                }
                _ => None,
            };
            if let Some((field, _)) = stray {
                return Err(fail(
                    at,
                    format!(
                        "model {name:?}: provider {:?} does not use {field}",
                        raw.provider
                    ),
                ));
            }
            let provider = match raw.provider.as_str() {
                "demo" => Provider::Demo {
                    word_delay: Duration::from_millis(raw.word_delay_ms.unwrap_or(40)),
                },
                "openai" => {
                    let base_url = raw.base_url.as_deref().map(str::trim).ok_or_else(|| {
                        fail(at, format!("model {name:?}: provider \"openai\" needs base_url = \"https://…/v1\""))
                    })?;
                    let completions_url = completions_url(base_url).map_err(|problem| {
                        fail(at, format!("model {name:?}: base_url {problem}"))
                    })?;
                    let base_url = base_url.trim_end_matches('/').to_owned();
                    let api_key =
                        match raw.api_key_env.as_deref() {
                            None => None,
                            Some(var) => Some(upstream_key(var, &env).map_err(|problem| {
                                fail(at, format!("model {name:?}: {problem}"))
                            })?),
                        };
                    let upstream_model = raw.upstream_model.clone().unwrap_or_else(|| name.clone());
                    if upstream_model.trim().is_empty() {
                        return Err(fail(at, format!("model {name:?}: upstream_model is empty")));
                    }
                    let max_tokens_field = match raw.max_tokens_field.as_deref() {
                        None | Some("max_tokens") => "max_tokens",
                        Some("max_completion_tokens") => "max_completion_tokens",
                        Some(other) => {
                            return Err(fail(
                                at,
                                format!(
                                    "model {name:?}: max_tokens_field must be \"max_tokens\" or \"max_completion_tokens\", not {other:?}"
                                ),
                            ));
                        }
                    };
                    Provider::OpenAi {
                        base_url,
                        completions_url,
                        upstream_model,
                        api_key,
                        max_tokens_field,
                        stream_usage: raw.stream_usage.unwrap_or(true),
                    }
                }
                other => {
                    return Err(fail(
                        at,
                        format!(
                            "model {name:?}: unknown provider {other:?} (expected \"demo\" or \"openai\")"
                        ),
                    ));
                }
            };
            let max_output_tokens = raw.max_output_tokens.unwrap_or(1024);
            if max_output_tokens == 0 || max_output_tokens > 1_000_000 {
                return Err(fail(
                    at,
                    format!("model {name:?}: max_output_tokens must be 1 to 1000000"),
                ));
            }
            models.push(Model {
                name,
                provider,
                prices,
                system_prompt: raw.system_prompt.filter(|s| !s.trim().is_empty()),
                max_output_tokens,
            });
        }
        Ok(Self {
            models,
            loaded_at: chrono::Utc::now().timestamp(),
        })
    }
}

/// `{base_url}/chat/completions`, or what is wrong with `base_url`: only a
/// plain http(s) address fits, since a query or fragment would swallow the
/// path added after it, and credentials in it would put a secret in the file
/// (upstream keys come from the environment).
fn completions_url(base_url: &str) -> Result<reqwest::Url, String> {
    let mut url = reqwest::Url::parse(base_url)
        .map_err(|e| format!("is not a valid URL ({e}): write it as \"https://…/v1\""))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("must start with http:// or https://".into());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query (?…) or fragment (#…)".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "must not hold credentials: name the key's environment variable in api_key_env".into(),
        );
    }
    if url
        .path()
        .trim_end_matches('/')
        .ends_with("/chat/completions")
    {
        return Err("must end before /chat/completions, which Tollgate adds".into());
    }
    url.path_segments_mut()
        .map_err(|()| "is not a base URL".to_owned())?
        .pop_if_empty()
        .extend(["chat", "completions"]);
    Ok(url)
}

/// The upstream key in environment variable `var`: `var` must be a variable's
/// name (a key pasted there instead is never repeated in the error, which is
/// logged), and the value, trimmed, must fit an HTTP header.
fn upstream_key(
    var: &str,
    env: &impl Fn(&str) -> Result<String, std::env::VarError>,
) -> Result<crate::config::Secret, String> {
    let is_name = !var.is_empty()
        && var.len() <= 128
        && !var.starts_with(|c: char| c.is_ascii_digit())
        && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !is_name {
        return Err("api_key_env must name the environment variable that holds the key, such as OPENAI_API_KEY, not hold the key itself".into());
    }
    // Named only when it reads like a variable's name (OPENAI_API_KEY): many
    // keys (gsk_…, hf_…) pass the check above, and the error is logged.
    let named = if var.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
        && var
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    {
        format!("environment variable {var} (api_key_env)")
    } else {
        "the environment variable api_key_env names".to_owned()
    };
    let value = match env(var) {
        Ok(value) => value.trim().to_owned(),
        Err(std::env::VarError::NotPresent) => String::new(),
        // It would read as unset, and the model be called without its key.
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(format!("{named} is not UTF-8 text"));
        }
    };
    if value.is_empty() {
        return Err(format!("{named} is not set"));
    }
    if reqwest::header::HeaderValue::from_str(&format!("Bearer {value}")).is_err() {
        return Err(format!(
            "{named} holds characters an HTTP header cannot carry"
        ));
    }
    Ok(crate::config::Secret::new(value))
}

/// A model table that cannot be used; names the file and line.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ModelTableError {
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    #[serde(default)]
    model: Vec<Spanned<RawModel>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    name: String,
    provider: String,
    base_url: Option<String>,
    upstream_model: Option<String>,
    api_key_env: Option<String>,
    input_price: Option<Spanned<PriceValue>>,
    output_price: Option<Spanned<PriceValue>>,
    system_prompt: Option<String>,
    max_output_tokens: Option<u32>,
    max_tokens_field: Option<String>,
    stream_usage: Option<bool>,
    word_delay_ms: Option<u64>,
}

/// Prices are exact: a string like "0.15" or a whole number; never a float.
#[derive(Deserialize)]
#[serde(untagged)]
enum PriceValue {
    Whole(i64),
    Text(String),
    /// Anything else (a float, a boolean): refused with a message.
    Other(serde::de::IgnoredAny),
}

impl PriceValue {
    fn micros(&self) -> Option<i64> {
        match self {
            PriceValue::Whole(n) if *n >= 0 => n.checked_mul(crate::credits::MICROS_PER_CREDIT),
            PriceValue::Text(text) => parse_credits(text),
            _ => None,
        }
    }
}

/// What went wrong talking to an upstream.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    #[error("the upstream did not answer in time ({0})")]
    Timeout(&'static str),
    /// An error status, or an error in a success's body (as 502). `status`
    /// is what the caller's answer stands for, `answered` the status the
    /// upstream sent (a used-up quota's 429 is a 502 for the caller; the
    /// operator's log says 429). `code` and `param` are what the upstream's
    /// error named, when the code is one of OpenAI's; `retry_after_secs` is
    /// what a 429 asked the caller to wait. `set_up` says the answer comes
    /// from how the operator set the model up (the gateway's key, the model
    /// name, the address, the account's quota), which no retry changes.
    #[error("the upstream answered {answered}: {message}")]
    Status {
        status: u16,
        answered: u16,
        message: String,
        code: Option<&'static str>,
        param: Option<String>,
        retry_after_secs: Option<u64>,
        set_up: bool,
    },
    #[error("the upstream could not be reached: {0}")]
    Transport(String),
    #[error("the upstream sent something that is not OpenAI's format: {0}")]
    Protocol(String),
    /// A stream's connection closed before its `[DONE]`: a failure unless
    /// the answer was already whole (`Meter::finished`).
    #[error("the stream ended before [DONE]")]
    EndedEarly,
}

impl UpstreamError {
    /// An error status with only a message.
    pub fn status(status: u16, message: String) -> Self {
        Self::Status {
            status,
            answered: status,
            message,
            code: None,
            param: None,
            retry_after_secs: None,
            set_up: false,
        }
    }

    /// The same error, said to have come with the upstream's status
    /// `answered` (an error inside a success's body: the status was 200).
    pub fn answered_with(mut self, status: u16) -> Self {
        if let Self::Status { answered, .. } = &mut self {
            *answered = status;
        }
        self
    }

    /// The same error with `secret` (see [`key_forms`]) blanked out of its
    /// message and its `param`, both of which may reach the caller.
    pub fn without(mut self, secret: &str) -> Self {
        let forms = key_forms(secret);
        if let Self::Status { message, .. } | Self::Transport(message) | Self::Protocol(message) =
            &mut self
        {
            blank_text(message, &forms);
        }
        if let Self::Status {
            param: Some(param), ..
        } = &mut self
        {
            blank_text(param, &forms);
        }
        self
    }

    /// The model's set-up made the upstream refuse the call (see `set_up`):
    /// the caller gets a 502 that says so, whatever `answered` was.
    pub fn set_up(answered: u16, message: String) -> Self {
        Self::Status {
            status: 502,
            answered,
            message,
            code: None,
            param: None,
            retry_after_secs: None,
            set_up: true,
        }
    }
}

/// An upstream's answer once it has accepted the call (its success status
/// came): one JSON body still to be read, or the JSON text of each
/// `chat.completion.chunk` as it arrives (without the final `[DONE]`). Read
/// and rewritten for the caller by `gateway::reply`.
pub enum Reply {
    Whole(BoxFuture<'static, Result<axum::body::Bytes, UpstreamError>>),
    Chunks(BoxStream<'static, Result<String, UpstreamError>>),
}

/// The longest wait an upstream's 429 may ask of callers (a day): what it
/// asks is passed on up to this.
pub const LONGEST_UPSTREAM_WAIT_SECS: u64 = 86_400;

/// The shortest upstream key blanked out of answers (see [`Reply::without`]).
pub const SHORTEST_KEY_BLANKED: usize = 20;

/// What stands for the upstream key wherever an upstream repeated it.
const KEY_BLANKED: &str = "[the upstream key]";

impl Reply {
    /// The same answer with `secret` blanked out of every body, chunk and
    /// error: an upstream may repeat the key in what it sends (an error event
    /// in a shape the gateway passes on, an echo of the request's headers),
    /// and the caller must never see it.
    ///
    /// Not a key under [`SHORTEST_KEY_BLANKED`] characters: servers that
    /// check no key are given a word (`ollama` in Ollama's guide, `EMPTY` in
    /// vLLM's), which a reply may well contain; no real key is that short.
    pub fn without(self, secret: crate::config::Secret) -> Self {
        let forms = key_forms(secret.expose());
        if forms.is_empty() {
            return self;
        }
        match self {
            Self::Whole(body) => Self::Whole(
                async move {
                    match body.await {
                        Ok(bytes) => Ok(forms
                            .iter()
                            .fold(bytes, |bytes, form| blanked_bytes(bytes, form))),
                        Err(error) => Err(error.without(secret.expose())),
                    }
                }
                .boxed(),
            ),
            Self::Chunks(chunks) => Self::Chunks(
                chunks
                    .map(move |chunk| match chunk {
                        Ok(mut text) => {
                            blank_text(&mut text, &forms);
                            Ok(text)
                        }
                        Err(error) => Err(error.without(secret.expose())),
                    })
                    .boxed(),
            ),
        }
    }
}

/// How the upstream key may be written in what an upstream sends: as it is,
/// and as the usual JSON writers escape it (see [`JSON_ESCAPES`]). None for
/// a key under [`SHORTEST_KEY_BLANKED`] characters (see [`Reply::without`]).
fn key_forms(secret: &str) -> Vec<String> {
    if secret.chars().count() < SHORTEST_KEY_BLANKED {
        return Vec::new();
    }
    let mut forms = vec![secret.to_owned()];
    for escape in JSON_ESCAPES {
        let form = escape(secret);
        if !forms.contains(&form) {
            forms.push(form);
        }
    }
    forms
}

/// What JSON writers escape by default that a key may hold: PHP writes `/`
/// as `\/`; Go `<`, `>` and `&` as `\u003c`-style escapes; Java's Gson those
/// and `=` and `'` (so a base64 key's padding); .NET's System.Text.Json
/// `<`, `>`, `&`, `'`, `+` and `` ` `` with upper-case hex (a base64 key's
/// `+`).
const JSON_ESCAPES: [fn(&str) -> String; 4] = [
    |key| key.replace('/', "\\/"),
    |key| escaped_as_unicode(key, "<>&", false),
    |key| escaped_as_unicode(key, "<>&='", false),
    |key| escaped_as_unicode(key, "<>&'+`", true),
];

/// `key` with each of `chars` written as a JSON `\uXXXX` escape.
fn escaped_as_unicode(key: &str, chars: &str, upper_hex: bool) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        if chars.contains(c) {
            if upper_hex {
                out.push_str(&format!("\\u{:04X}", u32::from(c)));
            } else {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Replaces each of `forms` in `text` by [`KEY_BLANKED`].
fn blank_text(text: &mut String, forms: &[String]) {
    for form in forms {
        if text.contains(form.as_str()) {
            *text = text.replace(form.as_str(), KEY_BLANKED);
        }
    }
}

/// `bytes` with every `secret` replaced by [`KEY_BLANKED`]; untouched (not
/// copied) when it has none, as nearly every answer.
fn blanked_bytes(bytes: axum::body::Bytes, secret: &str) -> axum::body::Bytes {
    let finder = memchr::memmem::Finder::new(secret.as_bytes());
    if finder.find(&bytes).is_none() {
        return bytes;
    }
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = &bytes[..];
    while let Some(at) = finder.find(rest) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(KEY_BLANKED.as_bytes());
        rest = &rest[at + secret.len()..];
    }
    out.extend_from_slice(rest);
    out.into()
}

/// Rough token count for text when an upstream reports none: about four
/// bytes of UTF-8 per token. That is four characters of English, as OpenAI
/// documents, and for scripts of two to four bytes a character (Cyrillic,
/// Chinese, emoji) it stays near what byte-level tokenizers count, where four
/// characters a token would count a fourth or less of a Chinese prompt.
pub fn estimate_tokens(text: &str) -> u64 {
    (text.len() as u64).div_ceil(4)
}

/// Tokens a hold allows for each image, audio or file part of a message:
/// more than one high-detail image costs on OpenAI's vision models.
pub const MEDIA_PART_TOKENS: u64 = 1_500;

/// Tokens charged for each such part when the upstream reports no usage
/// (a client that left early): the least an image costs on OpenAI's vision
/// models, so a guess never charges more than the part could have cost.
pub const MEDIA_PART_MIN_TOKENS: u64 = 85;

/// Rough prompt tokens of a `messages` array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PromptEstimate {
    /// The text, a few tokens a message, and whatever else the messages
    /// carry (names, tool calls and their ids, parts of other shapes).
    pub text_tokens: u64,
    /// Image, audio, video and file parts, whose cost the text does not show.
    pub media_parts: u64,
}

/// The fields of a content part that hold media, whose size is not its cost.
const MEDIA_FIELDS: [&str; 5] = ["image_url", "input_audio", "file", "video_url", "audio_url"];

impl PromptEstimate {
    /// Every message's text is counted, and every other field a message or
    /// its parts carry as its JSON text: what the gateway does not know may
    /// still reach the model, and a hold that skipped it could be gamed
    /// (megabytes in a `name`). A part with a media field, or of a type
    /// other than text, counts as media whatever else it holds.
    pub fn of(messages: &[Value]) -> Self {
        let mut estimate = Self {
            text_tokens: 2,
            media_parts: 0,
        };
        for m in messages {
            let mut other_bytes = 0;
            if let Value::Object(fields) = m {
                for (name, value) in fields {
                    if name != "role" && name != "content" {
                        other_bytes += json_bytes(value);
                    }
                }
            }
            if let Value::Array(parts) = &m["content"] {
                for part in parts {
                    let Value::Object(fields) = part else {
                        other_bytes += json_bytes(part);
                        continue;
                    };
                    // Media: a part with a media field, or of a type other
                    // than text (a `document` some upstreams take), counted
                    // as media whatever it holds: its size is not its cost.
                    let typed = fields.get("type").and_then(Value::as_str);
                    let media = MEDIA_FIELDS.iter().any(|f| fields.contains_key(*f))
                        || typed.is_some_and(|kind| kind != "text");
                    if media {
                        estimate.media_parts += 1;
                        continue;
                    }
                    // A string `text` is the message's text, below.
                    other_bytes += fields
                        .iter()
                        .filter(|(name, value)| {
                            *name != "type" && !(*name == "text" && value.is_string())
                        })
                        .map(|(_, value)| json_bytes(value))
                        .sum::<u64>();
                }
            }
            estimate.text_tokens += 4 + estimate_tokens(&message_text(m)) + other_bytes.div_ceil(4);
        }
        estimate
    }

    /// With `per_part` tokens for each media part.
    pub fn tokens(&self, per_part: u64) -> u64 {
        self.text_tokens
            .saturating_add(self.media_parts.saturating_mul(per_part))
    }
}

/// Rough prompt tokens of a `messages` array, media parts at their least.
pub fn estimate_prompt_tokens(messages: &[Value]) -> u64 {
    PromptEstimate::of(messages).tokens(MEDIA_PART_MIN_TOKENS)
}

/// Fields beside the messages that hold text the model does not read.
const NOT_PROMPT: [&str; 15] = [
    "model",
    "stream_options",
    "stop",
    "user",
    "metadata",
    "logit_bias",
    "service_tier",
    "tool_choice",
    "reasoning_effort",
    "prompt_cache_key",
    "safety_identifier",
    "modalities",
    "audio",
    "verbosity",
    "web_search_options",
];

/// Rough tokens of what a request carries beside its messages: its tools
/// (`tools`, the older `functions`), the schema of its `response_format`,
/// and any other text passed through (a provider's `documents`, a
/// `prediction`), as JSON text. Numbers and flags are settings, not text.
pub fn estimate_body_tokens(body: &serde_json::Map<String, Value>) -> u64 {
    body.iter()
        .filter(|(name, value)| {
            !NOT_PROMPT.contains(&name.as_str())
                && matches!(value, Value::String(_) | Value::Array(_) | Value::Object(_))
        })
        .map(|(_, value)| json_bytes(value))
        .sum::<u64>()
        .div_ceil(4)
}

/// The length of a value written as JSON, without writing it down.
fn json_bytes(value: &Value) -> u64 {
    struct Count(u64);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len() as u64;
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // Writing a `Value` to a sink that takes everything cannot fail.
    let _ = serde_json::to_writer(&mut count, value);
    count.0
}

/// A message's text, whether `content` is a string or an array of parts.
pub fn message_text(message: &Value) -> String {
    match &message["content"] {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upstream_key_is_blanked_wherever_it_is_and_nothing_else_changes() {
        let key = "sk-abc";
        let blanked = |text: &'static str| {
            blanked_bytes(axum::body::Bytes::from_static(text.as_bytes()), key)
        };
        assert_eq!(
            &blanked("sk-abc and sk-abcsk-abc, end sk-abc")[..],
            b"[the upstream key] and [the upstream key][the upstream key], end [the upstream key]"
        );
        let untouched = blanked("no key here: sk-ab");
        assert_eq!(&untouched[..], b"no key here: sk-ab");
        assert_eq!(&blanked("")[..], b"");
    }

    /// A key in an error's `param`, or written with its slashes escaped, is
    /// blanked too; a placeholder key is not, in errors either.
    #[test]
    fn the_upstream_key_is_blanked_from_params_and_escaped_forms() {
        let key = "sk-abc/def/0123456789xyz";
        let error = UpstreamError::Status {
            status: 400,
            answered: 400,
            message: format!("bad key {}", key.replace('/', "\\/")),
            code: None,
            param: Some(key.to_owned()),
            retry_after_secs: None,
            set_up: false,
        }
        .without(key);
        match error {
            UpstreamError::Status { message, param, .. } => {
                assert_eq!(message, "bad key [the upstream key]");
                assert_eq!(param.as_deref(), Some("[the upstream key]"));
            }
            other => panic!("{other:?}"),
        }
        let short =
            UpstreamError::status(400, "model 'ollama/llama3' not found".into()).without("ollama");
        assert_eq!(
            short.to_string(),
            "the upstream answered 400: model 'ollama/llama3' not found"
        );
    }

    /// A base64 key as Go, Gson and .NET write it in JSON (`+`, `=`, `&`
    /// escaped as `\uXXXX`) is blanked too.
    #[test]
    fn the_upstream_key_is_blanked_as_json_writers_escape_it() {
        let key = "tok+abc/def=0123456789&x=";
        let forms = key_forms(key);
        for written in [
            key.to_owned(),
            r"tok+abc\/def=0123456789&x=".to_owned(),
            r"tok+abc/def=0123456789\u0026x=".to_owned(),
            r"tok+abc/def\u003d0123456789\u0026x\u003d".to_owned(),
            r"tok\u002Babc/def=0123456789\u0026x=".to_owned(),
        ] {
            let mut text = format!("{{\"error\":\"bad key {written}\"}}");
            blank_text(&mut text, &forms);
            assert_eq!(
                text, r#"{"error":"bad key [the upstream key]"}"#,
                "{written}"
            );
        }
        assert_eq!(key_forms("sk-proj-0123456789abcdefghij").len(), 1);
    }

    /// A placeholder key (`ollama`, `EMPTY`) is no secret to blank out of
    /// replies that may say the word; a real key is.
    #[tokio::test]
    async fn a_placeholder_key_leaves_answers_alone() {
        let answer = |key: &str| {
            let body = axum::body::Bytes::from(format!("Run ollama with {key}."));
            let reply = Reply::Whole(async move { Ok(body) }.boxed());
            match reply.without(crate::config::Secret::new(key.to_owned())) {
                Reply::Whole(body) => body,
                Reply::Chunks(_) => unreachable!(),
            }
        };
        assert_eq!(
            &answer("ollama").await.unwrap()[..],
            b"Run ollama with ollama."
        );
        let real = "sk-proj-0123456789abcdefghij";
        assert_eq!(
            &answer(real).await.unwrap()[..],
            b"Run ollama with [the upstream key]."
        );
    }

    fn parse(text: &str) -> Result<ModelTable, ModelTableError> {
        ModelTable::parse(text, "models.toml", |v| {
            (v == "SET")
                .then(|| "sk-x".to_owned())
                .ok_or(std::env::VarError::NotPresent)
        })
    }

    #[test]
    fn the_prompt_estimate_counts_media_tool_calls_and_tool_definitions() {
        let text = serde_json::json!({ "role": "user", "content": "12345678" });
        let base = estimate_prompt_tokens(std::slice::from_ref(&text));
        assert_eq!(base, 4 + 2 + 2);

        let with_image = serde_json::json!({ "role": "user", "content": [
            { "type": "text", "text": "12345678" },
            { "type": "image_url", "image_url": { "url": "data:image/png;base64,AAAA" } },
            { "type": "input_audio", "input_audio": { "data": "AAAA", "format": "wav" } },
        ] });
        let estimate = PromptEstimate::of(&[with_image]);
        assert_eq!(estimate.media_parts, 2);
        assert_eq!(
            estimate.tokens(MEDIA_PART_TOKENS),
            base + 2 * MEDIA_PART_TOKENS
        );
        assert_eq!(
            estimate.tokens(MEDIA_PART_MIN_TOKENS),
            base + 2 * MEDIA_PART_MIN_TOKENS
        );

        let call = serde_json::json!([{ "id": "c1", "type": "function",
            "function": { "name": "lookup", "arguments": "{\"city\":\"Oslo\"}" } }]);
        let asked = serde_json::json!({ "role": "assistant", "content": null, "tool_calls": call });
        assert_eq!(
            estimate_prompt_tokens(&[asked]),
            4 + 2 + (call.to_string().len() as u64).div_ceil(4)
        );

        let tools = serde_json::json!([{ "type": "function", "function": {
            "name": "lookup", "description": "The weather in a city.",
            "parameters": { "type": "object", "properties": { "city": { "type": "string" } } } } }]);
        let mut body = serde_json::Map::new();
        assert_eq!(estimate_body_tokens(&body), 0);
        body.insert("tools".into(), tools.clone());
        assert_eq!(
            estimate_body_tokens(&body),
            (tools.to_string().len() as u64).div_ceil(4)
        );
        let schema = serde_json::json!({ "type": "json_schema", "json_schema": {
            "name": "weather", "schema": { "type": "object" } } });
        body.insert("response_format".into(), schema.clone());
        assert_eq!(
            estimate_body_tokens(&body),
            ((tools.to_string().len() + schema.to_string().len()) as u64).div_ceil(4)
        );
    }

    /// What a hold counts cannot be dodged by putting the prompt where the
    /// gateway does not read text: a message's `name` or `tool_call_id`, a
    /// part of another shape, a body field it does not know. A part with a
    /// media field is media whatever else it carries.
    #[test]
    fn the_prompt_estimate_counts_text_wherever_it_is_sent() {
        let plain =
            estimate_prompt_tokens(&[serde_json::json!({ "role": "user", "content": "hi" })]);
        let big = "x".repeat(4_000);
        for message in [
            serde_json::json!({ "role": "user", "content": "hi", "name": big }),
            serde_json::json!({ "role": "tool", "content": "hi", "tool_call_id": big }),
            serde_json::json!({ "role": "user", "content": [
                { "type": "text", "text": "hi" }, { "type": "text", "text": { "nested": big } }] }),
        ] {
            let counted = estimate_prompt_tokens(std::slice::from_ref(&message));
            assert!(counted >= plain + 1_000, "{counted} for {message}");
        }
        let odd_image = serde_json::json!({ "role": "user", "content": [
            { "type": "image_url", "image_url": { "url": "data:image/png;base64,AAAA" }, "text": null }] });
        assert_eq!(PromptEstimate::of(&[odd_image]).media_parts, 1);
        // A part of another type is media too: its size is not its cost.
        let document = serde_json::json!({ "role": "user", "content": [
            { "type": "document", "source": { "data": big } }] });
        let estimate = PromptEstimate::of(&[document]);
        assert_eq!(estimate.media_parts, 1);
        assert!(estimate.text_tokens < 10, "{estimate:?}");

        let mut body = serde_json::Map::new();
        body.insert("model".into(), serde_json::json!(big));
        assert_eq!(
            estimate_body_tokens(&body),
            0,
            "the model's name is not prompt"
        );
        body.insert("documents".into(), serde_json::json!([{ "text": big }]));
        assert!(estimate_body_tokens(&body) >= 1_000);
    }

    #[test]
    fn text_is_estimated_by_its_bytes_so_other_scripts_are_not_undercounted() {
        assert_eq!(estimate_tokens("Hello, world"), 3);
        // Eight Chinese characters are about eight tokens to a byte-level
        // tokenizer; four characters a token would say two.
        assert_eq!(estimate_tokens("你好世界你好世界"), 6);
        assert_eq!(estimate_tokens("🙂🙂"), 2);
        assert_eq!(estimate_tokens(""), 0);
    }

    #[test]
    fn the_built_in_table_serves_demo() {
        let table = ModelTable::load(None, |_| Err(std::env::VarError::NotPresent)).unwrap();
        assert_eq!(table.default_model().name, "demo");
        assert!(matches!(
            table.get("demo").unwrap().provider,
            Provider::Demo { .. }
        ));
    }

    /// An entry's head: its name, provider and prices.
    fn entry(name: &str, provider: &str) -> String {
        format!(
            "[[model]]\nname = \"{name}\"\nprovider = \"{provider}\"\ninput_price = \"1\"\noutput_price = \"1\"\n"
        )
    }

    #[test]
    fn errors_name_the_line() {
        let text = format!("{}\n{}", entry("a", "demo"), entry("b", "carrier-pigeon"));
        let err = parse(&text).unwrap_err().message;
        assert!(err.starts_with("models.toml, line 7:"), "{err}");
        assert!(err.contains("carrier-pigeon"), "{err}");

        let err = parse("[[model]]\nname = \"a\"\nprovider = \"demo\"\ninput_price = 0.5\n")
            .unwrap_err()
            .message;
        assert!(err.starts_with("models.toml, line 4:"), "{err}");

        let upstream = format!("{}base_url = \"http://x/v1\"\n", entry("a", "openai"));
        let err = parse(&format!("{upstream}api_key_env = \"UNSET\"\n"))
            .unwrap_err()
            .message;
        assert!(err.contains("UNSET"), "{err}");
        assert!(!err.contains("sk-"), "{err}");

        let err = parse(&format!("{upstream}max_tokens_field = \"max_length\"\n"))
            .unwrap_err()
            .message;
        assert!(
            err.contains("line 1") && err.contains("max_length"),
            "{err}"
        );

        let err = parse(&format!("{}colour = 1\n", entry("a", "demo")))
            .unwrap_err()
            .message;
        assert!(err.contains("line 6") && err.contains("colour"), "{err}");
    }

    #[test]
    fn entries_that_would_fail_or_mislead_at_run_time_stop_start_up() {
        let refused = |text: String, says: &str| {
            let err = parse(&text).unwrap_err().message;
            assert!(err.contains(says), "{text}: {err}");
            err
        };
        // A price left out is not free.
        refused(
            "[[model]]\nname = \"a\"\nprovider = \"demo\"\ninput_price = \"1\"\n".into(),
            "output_price is missing",
        );
        // Fields the provider never reads.
        refused(
            format!("{}base_url = \"http://x/v1\"\n", entry("a", "demo")),
            "does not use base_url",
        );
        let upstream =
            |base_url: &str| format!("{}base_url = \"{base_url}\"\n", entry("a", "openai"));
        refused(
            format!("{}word_delay_ms = 1\n", upstream("http://x/v1")),
            "does not use word_delay_ms",
        );
        refused(
            format!("{}upstream_model = \" \"\n", upstream("http://x/v1")),
            "upstream_model is empty",
        );
        // Base URLs whose path Tollgate could not extend, or that hold a secret.
        for (base_url, says) in [
            ("ftp://x/v1", "http:// or https://"),
            ("x.example/v1", "not a valid URL"),
            ("https://x/openai?api-version=1", "query"),
            ("https://x/v1#a", "fragment"),
            ("https://user:pass@x/v1", "credentials"),
            ("https://x/v1/chat/completions", "before /chat/completions"),
        ] {
            let err = refused(upstream(base_url), says);
            assert!(!err.contains("pass@"), "{err}");
        }
        // A key pasted where its variable's name belongs is never repeated.
        let err = refused(
            format!(
                "{}api_key_env = \"sk-proj-abc123\"\n",
                upstream("http://x/v1")
            ),
            "must name the environment variable",
        );
        assert!(!err.contains("sk-proj"), "{err}");
        // So is one that reads like a name (Groq's gsk_…, Hugging Face's hf_…)
        // and is, of course, not set; a real name is.
        let err = refused(
            format!(
                "{}api_key_env = \"gsk_abc123XYZ\"\n",
                upstream("http://x/v1")
            ),
            "is not set",
        );
        assert!(!err.contains("gsk_"), "{err}");
        let err = refused(
            format!(
                "{}api_key_env = \"GROQ_API_KEY\"\n",
                upstream("http://x/v1")
            ),
            "is not set",
        );
        assert!(err.contains("GROQ_API_KEY"), "{err}");
        // A key no header can carry stops start-up, without its value.
        let table = |value: &'static str| {
            ModelTable::parse(
                &format!("{}api_key_env = \"KEY\"\n", upstream("http://x/v1")),
                "models.toml",
                move |_| Ok(value.to_owned()),
            )
        };
        // So does one that is not UTF-8, which would read as unset.
        let err = ModelTable::parse(
            &format!("{}api_key_env = \"KEY\"\n", upstream("http://x/v1")),
            "models.toml",
            |_| Err(std::env::VarError::NotUnicode(Default::default())),
        )
        .unwrap_err()
        .message;
        assert!(err.contains("KEY") && err.contains("not UTF-8"), "{err}");
        let err = table("sk-a\u{7f}b").unwrap_err().message;
        assert!(err.contains("KEY") && err.contains("HTTP header"), "{err}");
        assert!(!err.contains("sk-a"), "{err}");
        // A key file's trailing newline is trimmed.
        match &table("sk-abc\n").unwrap().models[0].provider {
            Provider::OpenAi { api_key, .. } => {
                assert_eq!(api_key.as_ref().map(|k| k.expose()), Some("sk-abc"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_completions_url_extends_the_base_path() {
        for (base_url, expected) in [
            ("http://h/v1", "http://h/v1/chat/completions"),
            ("http://h/v1/", "http://h/v1/chat/completions"),
            ("https://h", "https://h/chat/completions"),
            (" http://h:11434/v1 ", "http://h:11434/v1/chat/completions"),
        ] {
            assert_eq!(completions_url(base_url.trim()).unwrap().as_str(), expected);
        }
    }

    #[test]
    fn stream_usage_is_asked_for_unless_an_upstream_model_says_not() {
        let entry = |extra: &str| {
            format!(
                "[[model]]\nname = \"m\"\nprovider = \"openai\"\nbase_url = \"http://h/v1\"\ninput_price = \"1\"\noutput_price = \"1\"\n{extra}"
            )
        };
        let asks = |text: &str| match &parse(text).unwrap().get("m").unwrap().provider {
            Provider::OpenAi { stream_usage, .. } => *stream_usage,
            other => panic!("{other:?}"),
        };
        assert!(asks(&entry("")));
        assert!(!asks(&entry("stream_usage = false\n")));
        let err = parse(&entry("stream_usage = \"no\"\n"))
            .unwrap_err()
            .message;
        assert!(err.contains("line 7") && err.contains("boolean"), "{err}");
        let err = parse("[[model]]\nname = \"d\"\nprovider = \"demo\"\ninput_price = \"1\"\noutput_price = \"1\"\nstream_usage = false\n")
            .unwrap_err()
            .message;
        assert!(err.contains("does not use stream_usage"), "{err}");
    }

    #[test]
    fn prices_are_exact() {
        let table = parse("[[model]]\nname = \"m\"\nprovider = \"openai\"\nbase_url = \"http://h/v1/\"\napi_key_env = \"SET\"\ninput_price = \"0.15\"\noutput_price = 2\n").unwrap();
        let model = table.get("m").unwrap();
        assert_eq!(
            model.prices,
            Prices {
                input_per_1k: 150_000,
                output_per_1k: 2_000_000
            }
        );
        match &model.provider {
            Provider::OpenAi {
                base_url,
                api_key,
                upstream_model,
                ..
            } => {
                assert_eq!(base_url, "http://h/v1");
                assert_eq!(api_key.as_ref().map(|k| k.expose()), Some("sk-x"));
                assert!(!format!("{model:?}").contains("sk-x"));
                assert_eq!(upstream_model, "m");
            }
            other => panic!("{other:?}"),
        }
    }
}
