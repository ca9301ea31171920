//! Any OpenAI-compatible server (OpenAI, Ollama's /v1, Hugging Face router,
//! vLLM, OpenRouter): one shared reqwest client and pool, SSE parsed with
//! eventsource-stream, and the first-byte, idle and total timeouts and the
//! answer's size limit applied here.
//!
//! The idle timeout counts from the last bytes of any kind, so the keep-alives
//! some upstreams send while a model thinks (SSE comments such as
//! OpenRouter's `: OPENROUTER PROCESSING`, or whitespace before a JSON
//! answer) keep a call alive, though they carry no event; the total timeout
//! ends even such a call.

use std::{fmt, time::Duration};

use tokio::time::Instant;

use axum::body::Bytes;
use eventsource_stream::{EventStreamError, Eventsource};
use futures::{FutureExt, StreamExt, stream::BoxStream};
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

/// The most of an error answer's body read for its message.
const ERROR_BODY_BYTES: usize = 64 * 1024;

/// Sends `body` (already carrying the upstream model and stream options) to
/// the model's `{base_url}/chat/completions`; returns once a success status
/// has come, before the body is read. The answer fails once it passes
/// `max_body_bytes`, whole or streamed: an upstream cannot fill the memory.
/// Neither a refusal's message nor the answer carries the upstream key: some
/// servers repeat the key they refused, and the message reaches the log (a
/// 400's, the caller too); an answer goes to the caller.
pub async fn complete(
    client: &reqwest::Client,
    limits: (UpstreamTimeouts, usize),
    url: &reqwest::Url,
    api_key: Option<&Secret>,
    body: &Value,
    stream: bool,
) -> Result<Reply, UpstreamError> {
    let answer = send(client, limits, url, api_key, body, stream).await;
    match (answer, api_key) {
        (Err(error), Some(key)) => Err(error.without(key.expose())),
        (Ok(reply), Some(key)) => Ok(reply.without(key.clone())),
        (answer, None) => answer,
    }
}

async fn send(
    client: &reqwest::Client,
    (timeouts, max_body_bytes): (UpstreamTimeouts, usize),
    url: &reqwest::Url,
    api_key: Option<&Secret>,
    body: &Value,
    stream: bool,
) -> Result<Reply, UpstreamError> {
    let mut request = client.post(url.clone()).json(body);
    if let Some(key) = api_key {
        request = request.bearer_auth(key.expose());
    }
    let sent = Instant::now();
    let deadline = sent + timeouts.total;
    // A JSON answer's headers come only once it is whole: it has until the
    // total timeout. Cut off sooner, the upstream would finish it anyway,
    // unpaid, and the SDKs would ask again.
    let (first_byte_at, which) = if stream && timeouts.first_byte < timeouts.total {
        (sent + timeouts.first_byte, "first byte")
    } else {
        (deadline, "total")
    };
    let response = tokio::time::timeout_at(first_byte_at, request.send())
        .await
        .map_err(|_| UpstreamError::Timeout(which))?
        .map_err(transport)?;
    let status = response.status();
    // An API does not redirect: a redirect is a `base_url` that is not the
    // API's (http for https, a path without `/v1`). Where it pointed is for
    // the operator's log.
    if status.is_redirection() {
        let to = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|to| to.to_str().ok())
            .unwrap_or("nowhere given");
        let to: String = to.chars().take(200).collect();
        return Err(UpstreamError::set_up(
            status.as_u16(),
            format!("a redirect to {to}, which Tollgate does not follow: check base_url"),
        ));
    }
    if !status.is_success() {
        let retry_after_secs = retry_after(response.headers());
        // As much of the message as came in time and within the limit.
        let mut body = until_quiet(response, timeouts.idle, deadline, ERROR_BODY_BYTES);
        let mut text = Vec::new();
        while let Some(Ok(bytes)) = body.next().await {
            text.extend_from_slice(&bytes);
        }
        return Err(refusal(
            status.as_u16(),
            &String::from_utf8_lossy(&text),
            retry_after_secs,
        ));
    }
    let media = media_type(response.headers());
    let mut body = until_quiet(response, timeouts.idle, deadline, max_body_bytes);
    // A success that is a web page (a `base_url` pointing at a site, a login
    // portal), or anything but events to a stream (JSON: an error, or a
    // server that cannot stream; text: an error page in words), is no
    // answer: refused before anything is charged. The type alone does not
    // tell (a small server may label its JSON or its events text/html, or
    // its events JSON), so how the body opens decides.
    if media == "text/html" || (stream && media != "text/event-stream") {
        // The bytes read to see how the body opens: past any white space,
        // its first line or enough of it to hold an event's field name.
        let mut head = Vec::new();
        let start = loop {
            let start = head.iter().position(|b: &u8| !b.is_ascii_whitespace());
            if let Some(at) = start
                && (head.len() - at >= OPENING_BYTES || head[at..].contains(&b'\n'))
            {
                break start;
            }
            match body.next().await {
                Some(Ok(bytes)) => head.extend_from_slice(&bytes),
                Some(Err(error)) => return Err(error.into_upstream()),
                None => break start,
            }
        };
        // An empty body so labelled is no answer either.
        let refused = match start.map(|at| &head[at..]) {
            None | Some([b'<', ..]) => true,
            Some(opening) if stream => !opens_as_events(opening),
            Some(_) => false,
        };
        if refused {
            while head.len() < ERROR_BODY_BYTES
                && let Some(Ok(bytes)) = body.next().await
            {
                head.extend_from_slice(&bytes);
            }
            return Err(wrong_kind(
                status.as_u16(),
                &media,
                &String::from_utf8_lossy(&head),
            ));
        }
        body = futures::stream::once(std::future::ready(Ok(Bytes::from(head))))
            .chain(body)
            .boxed();
    }
    if !stream {
        // Most answers come in one piece, kept as it is; more are joined.
        return Ok(Reply::Whole(
            async move {
                let mut first: Option<Bytes> = None;
                let mut joined = Vec::new();
                while let Some(bytes) = body.next().await {
                    let bytes = bytes.map_err(BodyError::into_upstream)?;
                    if first.is_none() && joined.is_empty() {
                        first = Some(bytes);
                    } else {
                        if let Some(first) = first.take() {
                            joined.extend_from_slice(&first);
                        }
                        joined.extend_from_slice(&bytes);
                    }
                }
                Ok(first.unwrap_or_else(|| joined.into()))
            }
            .boxed(),
        ));
    }
    let events = whole_lines(utf8_checked(without_bom(body))).eventsource();
    // Ends after `[DONE]`, after an error, or when the upstream goes quiet too long.
    let chunks = futures::stream::unfold(Some(events), move |state| async move {
        let mut events = state?;
        loop {
            let next = match events.next().await {
                None => return Some((Err(UpstreamError::EndedEarly), None)),
                Some(next) => next,
            };
            let event = match next {
                Ok(event) => event,
                Err(EventStreamError::Transport(e)) => return Some((Err(e.into_upstream()), None)),
                Err(e) => return Some((Err(UpstreamError::Transport(e.to_string())), None)),
            };
            let data = event.data.trim();
            // An `error` event is the upstream's failure, whatever its data's
            // shape (passed on as a chunk, it read as part of the answer).
            if event.event == "error" {
                return Some((Err(event_error(data)), None));
            }
            if data.is_empty() {
                continue;
            }
            if data == "[DONE]" {
                return None;
            }
            // Read (and checked for `error`) as it is relayed: `gateway::reply`.
            // An event's data lines come joined by newlines, which in JSON can
            // only be whitespace (strings escape them); relayed as they are,
            // they would end the caller's event early.
            let data = if data.contains('\n') || data.contains('\r') {
                data.replace(['\n', '\r'], " ")
            } else if data.len() == event.data.len() {
                event.data
            } else {
                data.to_owned()
            };
            return Some((Ok(data), Some(events)));
        }
    });
    Ok(Reply::Chunks(chunks.fuse().boxed()))
}

/// The failure an `event: error` reports: its message when its data is an
/// error in one of the shapes [`refusal`] reads, else the start of its data.
fn event_error(data: &str) -> UpstreamError {
    if data.is_empty() {
        return UpstreamError::status(502, "an error event with no message".to_owned())
            .answered_with(200);
    }
    refusal(502, data, None).answered_with(200)
}

/// Enough of a body's opening to tell events: a byte order mark and the
/// longest field name with its colon (`retry:`).
const OPENING_BYTES: usize = 9;

/// Whether a body opens as server-sent events do: with a field (`data:`,
/// `event:`, `id:`, `retry:`) or a comment, after any byte order mark.
fn opens_as_events(opening: &[u8]) -> bool {
    let opening = opening.strip_prefix(BOM).unwrap_or(opening);
    [&b"data:"[..], b"event:", b"id:", b"retry:", b":"]
        .iter()
        .any(|field| opening.starts_with(field))
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

/// Why an upstream body stopped early.
#[derive(Debug)]
enum BodyError {
    /// Nothing arrived for the idle timeout.
    Quiet,
    /// The total timeout passed.
    Overtime,
    /// The answer passed this many bytes.
    TooLarge(usize),
    /// A byte that cannot be UTF-8, which SSE text must be.
    NotUtf8,
    Transport(reqwest::Error),
}

impl BodyError {
    fn into_upstream(self) -> UpstreamError {
        match self {
            Self::Quiet => UpstreamError::Timeout("idle"),
            Self::Overtime => UpstreamError::Timeout("total"),
            Self::TooLarge(_) | Self::NotUtf8 => UpstreamError::Protocol(self.to_string()),
            Self::Transport(error) => transport(error),
        }
    }
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Quiet => f.write_str("the upstream went quiet"),
            Self::Overtime => f.write_str("the upstream took too long in all"),
            Self::TooLarge(most) => write!(f, "the answer passed the limit of {most} bytes"),
            Self::NotUtf8 => f.write_str("the stream is not UTF-8"),
            Self::Transport(error) => error.fmt(f),
        }
    }
}

/// The response body as it arrives, failing once nothing has come for `idle`,
/// at `deadline`, or once more than `most` bytes have come.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A stream's body without the UTF-8 byte order marks at its start (SSE
/// allows one): eventsource-stream (0.2.3) means to skip one but slices into
/// its three bytes and panics, so none may reach it, a second one either.
fn without_bom(
    body: BoxStream<'static, Result<Bytes, BodyError>>,
) -> impl futures::Stream<Item = Result<Bytes, BodyError>> + Send + 'static {
    // The body's first bytes, until they are known to be marks or not.
    let mut head = Some(Vec::new());
    body.filter_map(move |item| {
        std::future::ready(match item {
            Ok(bytes) => past_bom(&mut head, bytes).map(Ok),
            Err(error) => Some(Err(error)),
        })
    })
}

/// A stream's body that fails at its first byte that cannot be UTF-8:
/// eventsource-stream (0.2.3) holds such a byte and everything after it
/// without a word, so the stream would hang, keeping all that came, until
/// the upstream ended it or the total timeout passed.
fn utf8_checked(
    body: impl futures::Stream<Item = Result<Bytes, BodyError>> + Send + 'static,
) -> impl futures::Stream<Item = Result<Bytes, BodyError>> + Send + 'static {
    let mut text = Utf8Check::default();
    body.flat_map(move |item| {
        let items = match item {
            // What came before the bad byte goes on first: its whole events
            // reach the caller before the error does.
            Ok(bytes) => match text.valid_up_to(&bytes) {
                None => vec![Ok(bytes)],
                Some(0) => vec![Err(BodyError::NotUtf8)],
                Some(valid) => vec![Ok(bytes.slice(..valid)), Err(BodyError::NotUtf8)],
            },
            item => vec![item],
        };
        futures::stream::iter(items)
    })
}

/// A stream's body passed on in whole lines: eventsource-stream (0.2.3)
/// reads its whole buffer again each time a piece arrives, so a long line
/// (an image in base64) in many pieces cost time growing with the square of
/// its length. What follows a piece's last line end waits for the next piece,
/// within the body's size limit; most pieces end with a line and pass as
/// they are.
fn whole_lines(
    body: impl futures::Stream<Item = Result<Bytes, BodyError>> + Send + 'static,
) -> impl futures::Stream<Item = Result<Bytes, BodyError>> + Send + 'static {
    let mut pending: Vec<u8> = Vec::new();
    body.map(Some)
        .chain(futures::stream::once(std::future::ready(None)))
        .filter_map(move |item| {
            std::future::ready(match item {
                Some(Ok(bytes)) => match bytes.iter().rposition(|b| matches!(b, b'\n' | b'\r')) {
                    Some(end) if pending.is_empty() && end + 1 == bytes.len() => Some(Ok(bytes)),
                    Some(end) => {
                        pending.extend_from_slice(&bytes[..=end]);
                        let lines = Bytes::from(std::mem::take(&mut pending));
                        pending.extend_from_slice(&bytes[end + 1..]);
                        Some(Ok(lines))
                    }
                    None => {
                        pending.extend_from_slice(&bytes);
                        None
                    }
                },
                Some(Err(error)) => Some(Err(error)),
                // The body ended: the rest, a line never ended, as it is.
                None => {
                    (!pending.is_empty()).then(|| Ok(Bytes::from(std::mem::take(&mut pending))))
                }
            })
        })
}

/// Checks a text that arrives in pieces, a character split between two
/// pieces included.
#[derive(Debug, Default)]
struct Utf8Check {
    /// The start of a character the last piece ended in.
    partial: Vec<u8>,
}

impl Utf8Check {
    /// Whether `piece`, after the pieces before it, can still be UTF-8.
    #[cfg(test)]
    fn is_valid(&mut self, piece: &[u8]) -> bool {
        self.valid_up_to(piece).is_none()
    }

    /// `None` while `piece`, after the pieces before it, can still be UTF-8;
    /// else how many of its bytes came before the first that cannot be.
    fn valid_up_to(&mut self, piece: &[u8]) -> Option<usize> {
        let mut taken = 0;
        if let Some(&lead) = self.partial.first() {
            let width = match lead {
                0xF0.. => 4,
                0xE0.. => 3,
                _ => 2,
            };
            taken = (width - self.partial.len()).min(piece.len());
            self.partial.extend_from_slice(&piece[..taken]);
            if self.partial.len() < width {
                // Still short of a whole character, and valid so far.
                let valid =
                    std::str::from_utf8(&self.partial).is_err_and(|e| e.error_len().is_none());
                return (!valid).then_some(0);
            }
            if std::str::from_utf8(&self.partial).is_err() {
                return Some(0);
            }
            self.partial.clear();
        }
        let rest = &piece[taken..];
        match std::str::from_utf8(rest) {
            Ok(_) => None,
            // Cut off inside a character: the next piece must finish it.
            Err(e) if e.error_len().is_none() => {
                self.partial.extend_from_slice(&rest[e.valid_up_to()..]);
                None
            }
            Err(e) => Some(taken + e.valid_up_to()),
        }
    }
}

/// What to pass on of `bytes`, the next piece of a body whose start so far
/// is `head` (`None` once the start is passed).
fn past_bom(head: &mut Option<Vec<u8>>, bytes: Bytes) -> Option<Bytes> {
    let Some(seen) = head.as_mut() else {
        return Some(bytes);
    };
    // Usually the first piece starts with the first event.
    if seen.is_empty() && bytes.first().is_some_and(|b| *b != BOM[0]) {
        *head = None;
        return Some(bytes);
    }
    seen.extend_from_slice(&bytes);
    let mut start = 0;
    while seen[start..].starts_with(BOM) {
        start += BOM.len();
    }
    let rest = &seen[start..];
    if rest.len() < BOM.len() && BOM.starts_with(rest) {
        // Nothing yet, or what may still be the start of another mark.
        seen.drain(..start);
        return None;
    }
    let rest = Bytes::copy_from_slice(rest);
    *head = None;
    Some(rest)
}

fn until_quiet(
    response: reqwest::Response,
    idle: Duration,
    deadline: Instant,
    most: usize,
) -> BoxStream<'static, Result<Bytes, BodyError>> {
    let bytes = response.bytes_stream().boxed();
    futures::stream::unfold(Some((bytes, 0)), move |state| async move {
        let (mut bytes, seen) = state?;
        let quiet_at = Instant::now() + idle;
        let (at, why) = if deadline < quiet_at {
            (deadline, BodyError::Overtime)
        } else {
            (quiet_at, BodyError::Quiet)
        };
        match tokio::time::timeout_at(at, bytes.next()).await {
            Err(_) => Some((Err(why), None)),
            Ok(None) => None,
            Ok(Some(Ok(chunk))) => {
                let seen = seen + chunk.len();
                if seen > most {
                    return Some((Err(BodyError::TooLarge(most)), None));
                }
                Some((Ok(chunk), Some((bytes, seen))))
            }
            Ok(Some(Err(error))) => Some((Err(BodyError::Transport(error)), None)),
        }
    })
    // Read again once ended (an empty body's first read decides, then the
    // answer's reader reads on), an unfold panics; fused, it ends again.
    .fuse()
    .boxed()
}

/// The media type of an answer, lowercase, without its parameters.
fn media_type(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// A success (`answered`) whose body is not the kind asked for (`media`):
/// the upstream's failure, with its error's message when it sent one. A web
/// page, or no body, is the model's set-up (a `base_url` that is a site, a
/// login portal, a server that cannot stream), which no retry changes.
fn wrong_kind(answered: u16, media: &str, text: &str) -> UpstreamError {
    let error = serde_json::from_str::<Value>(text)
        .ok()
        .filter(|answer| !answer["error"].is_null() || answer["object"] == "error");
    let media = if media.is_empty() {
        "no content type"
    } else {
        media
    };
    match error {
        Some(_) => refusal(502, text, None).answered_with(answered),
        None if text.trim().is_empty() => UpstreamError::set_up(
            answered,
            format!("it answered an empty body ({media}), not a chat completion"),
        ),
        None => UpstreamError::set_up(
            answered,
            format!("it answered {media}, not a chat completion"),
        ),
    }
}

/// An upstream's error answer: its message (or the start of its text), and
/// its code and param when the code is one of OpenAI's, which callers branch
/// on (`context_length_exceeded` above all); any other code is the upstream's
/// own and is not passed on.
fn refusal(status: u16, text: &str, retry_after_secs: Option<u64>) -> UpstreamError {
    // A proxy in front of the model server gave up waiting for it (504,
    // Cloudflare's 524), or the server for the request (408): a timeout.
    if matches!(status, 408 | 504 | 524) {
        return UpstreamError::Timeout("its own");
    }
    let answered = status;
    let parsed: Option<Value> = serde_json::from_str(text).ok();
    let error = parsed.as_ref().map(|answer| &answer["error"]);
    let field = |name: &str| error.and_then(|e| e[name].as_str());
    // OpenAI's shape first, then the others servers use: a string `error`
    // (TGI), a top-level `message` (older vLLM), FastAPI's `detail`.
    let message = field("message").or_else(|| {
        let answer = parsed.as_ref()?;
        [
            &answer["error"],
            &answer["message"],
            &answer["detail"],
            &answer["detail"][0]["msg"],
        ]
        .into_iter()
        .find_map(Value::as_str)
    });
    // OpenAI answers a used-up account 429 too, with no Retry-After: no
    // wait helps, so it is the operator's set-up (502, logged), not a rate
    // limit for the caller to retry.
    if status == 429 && field("code") == Some("insufficient_quota") {
        let message = message.unwrap_or("no message");
        return UpstreamError::set_up(
            status,
            format!(
                "the account behind Tollgate's key has no quota left (insufficient_quota): {message}"
            ),
        );
    }
    // OpenRouter refuses input its moderation flags with a 403 that names the
    // reasons: the caller's to change, as OpenAI's own 400
    // `content_policy_violation` is, not the gateway's failure (502) for the
    // SDKs to send again. Any other 403 (the operator's key lacks access)
    // stays the upstream's failure.
    let flagged = status == 403 && error.is_some_and(|e| e["metadata"]["reasons"].is_array());
    let (status, code) = if flagged {
        (400, Some("content_policy_violation"))
    } else {
        (status, field("code").and_then(openai_code))
    };
    UpstreamError::Status {
        status,
        answered,
        // Enough for any server's explanation, not a page of its body.
        message: message.unwrap_or(text).chars().take(500).collect(),
        code,
        param: field("param")
            .filter(|param| param.len() <= 100)
            .map(str::to_owned),
        retry_after_secs,
        // The upstream refusing the gateway's own key or model name, or the
        // operator's account there having no credit left (OpenRouter's 402).
        set_up: matches!(status, 401..=404),
    }
}

/// OpenAI's codes for a request it refuses.
fn openai_code(code: &str) -> Option<&'static str> {
    [
        "context_length_exceeded",
        "string_above_max_length",
        "invalid_value",
        "invalid_type",
        "missing_required_parameter",
        "unsupported_parameter",
        "unsupported_value",
        "invalid_image_url",
        "invalid_image_format",
        "image_too_large",
        "content_policy_violation",
        "content_filter",
        "invalid_prompt",
    ]
    .into_iter()
    .find(|known| *known == code)
}

/// How long an upstream asked to wait: `retry-after-ms` (OpenAI's), else
/// `retry-after` in seconds or as an HTTP date, in whole seconds (at most a
/// day).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<u64> {
    retry_after_from(headers, chrono::Utc::now())
}

fn retry_after_from(
    headers: &reqwest::header::HeaderMap,
    now: chrono::DateTime<chrono::Utc>,
) -> Option<u64> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let number = |name: &str| {
        text(name)
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|n| n.is_finite() && *n >= 0.0)
    };
    // An HTTP date: RFC 9110 has servers send IMF-fixdate and recipients
    // read the two obsolete forms (RFC 850's and asctime's) as well.
    // Some servers write the zone as a number (`+0000`), as RFC 2822 does.
    let until_date = || {
        let text = text("retry-after")?;
        let date = httpdate::parse_http_date(text)
            .map(chrono::DateTime::<chrono::Utc>::from)
            .ok()
            .or_else(|| {
                let date = chrono::DateTime::parse_from_rfc2822(text).ok()?;
                Some(date.with_timezone(&chrono::Utc))
            })?;
        let millis = (date - now).num_milliseconds();
        Some(millis.max(0) as f64 / 1000.0)
    };
    number("retry-after-ms")
        .map(|ms| ms / 1000.0)
        .or_else(|| number("retry-after"))
        .or_else(until_date)
        .map(|secs| (secs.ceil() as u64).min(super::LONGEST_UPSTREAM_WAIT_SECS))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events that came in the same read as a byte that cannot be UTF-8,
    /// before it, reach the caller; then the stream fails (they were lost
    /// with the read).
    #[tokio::test]
    async fn whole_events_before_a_bad_byte_are_passed_on() {
        let read: &'static [u8] = b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\ndata: \xff\n\n";
        let body = futures::stream::iter([Ok::<_, BodyError>(Bytes::from_static(read))]).boxed();
        let mut events = whole_lines(utf8_checked(without_bom(body))).eventsource();
        for data in [r#"{"a":1}"#, r#"{"b":2}"#] {
            assert_eq!(events.next().await.unwrap().unwrap().data, data);
        }
        assert!(matches!(
            events.next().await,
            Some(Err(EventStreamError::Transport(BodyError::NotUtf8)))
        ));
    }

    #[test]
    fn a_used_up_quota_is_the_upstreams_failure_not_a_rate_limit() {
        let quota = r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#;
        let used_up = refusal(429, quota, None);
        // The operator's log says what the upstream answered.
        assert!(
            used_up
                .to_string()
                .starts_with("the upstream answered 429: "),
            "{used_up}"
        );
        match used_up {
            UpstreamError::Status {
                status,
                answered,
                message,
                set_up,
                ..
            } => {
                assert_eq!((status, answered, set_up), (502, 429, true));
                assert!(message.contains("quota"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let limited = r#"{"error":{"message":"Rate limit reached","code":"rate_limit_exceeded"}}"#;
        assert!(matches!(
            refusal(429, limited, Some(3)),
            UpstreamError::Status {
                status: 429,
                retry_after_secs: Some(3),
                set_up: false,
                ..
            }
        ));
    }

    /// A server that repeats the key it refused, or a page of text, does not
    /// put the key, or the page, in the log.
    #[test]
    fn a_refusal_never_carries_the_upstream_key_nor_a_whole_page() {
        let key = "sk-upstream-SECRET-abc123";
        let answer = format!(r#"{{"error":{{"message":"Incorrect API key provided: {key}"}}}}"#);
        let refused = refusal(401, &answer, None).without(key);
        assert_eq!(
            refused.to_string(),
            "the upstream answered 401: Incorrect API key provided: [the upstream key]"
        );
        let page = "x".repeat(10_000);
        match refusal(500, &page, None) {
            UpstreamError::Status { message, .. } => assert_eq!(message.len(), 500),
            other => panic!("{other:?}"),
        }
    }

    /// OpenRouter's moderation refusal is the caller's to fix; another 403 is not.
    #[test]
    fn flagged_input_is_a_content_policy_refusal() {
        let flagged = r#"{"error":{"code":403,"message":"Your input was flagged for \"violence\"","metadata":{"reasons":["violence"],"flagged_input":"...","provider_name":"x","model_slug":"y"}}}"#;
        match refusal(403, flagged, None) {
            UpstreamError::Status {
                status,
                code,
                message,
                set_up,
                ..
            } => {
                assert_eq!((status, code), (400, Some("content_policy_violation")));
                assert!(!set_up, "the caller's to change");
                assert!(message.contains("flagged"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let no_access = r#"{"error":{"message":"Project does not have access to model","code":"model_not_found"}}"#;
        assert!(matches!(
            refusal(403, no_access, None),
            UpstreamError::Status {
                status: 403,
                set_up: true,
                ..
            }
        ));
    }

    /// The message of each server's error shape, not its JSON; and a
    /// proxy's timeout is a timeout.
    #[test]
    fn an_upstream_refusal_keeps_its_message_whatever_its_shape() {
        let message = |text: &str| match refusal(400, text, None) {
            UpstreamError::Status { message, .. } => message,
            other => panic!("{other:?}"),
        };
        let long = "This model's maximum context length is 4096 tokens";
        for text in [
            format!(r#"{{"error":{{"message":"{long}","code":null}}}}"#),
            format!(r#"{{"object":"error","message":"{long}","type":"BadRequestError"}}"#),
            format!(r#"{{"error":"{long}","error_type":"validation"}}"#),
            format!(r#"{{"detail":"{long}"}}"#),
            format!(r#"{{"detail":[{{"loc":["body"],"msg":"{long}"}}]}}"#),
        ] {
            assert_eq!(message(&text), long, "{text}");
        }
        assert_eq!(
            message("<html>Bad Request</html>"),
            "<html>Bad Request</html>"
        );
        for status in [408, 504, 524] {
            assert!(matches!(
                refusal(status, "<html>timeout</html>", None),
                UpstreamError::Timeout(_)
            ));
        }
    }

    /// The pieces `past_bom` passes on for a body arriving in `pieces`, joined.
    fn passed(pieces: &[&[u8]]) -> Vec<u8> {
        let mut head = Some(Vec::new());
        pieces
            .iter()
            .filter_map(|piece| past_bom(&mut head, Bytes::copy_from_slice(piece)))
            .flatten()
            .collect()
    }

    #[test]
    fn the_wait_an_upstream_asks_for_is_read_in_whole_seconds() {
        let wait = |pairs: &[(&'static str, &'static str)]| {
            let mut headers = reqwest::header::HeaderMap::new();
            for (name, value) in pairs {
                headers.insert(*name, reqwest::header::HeaderValue::from_static(value));
            }
            retry_after(&headers)
        };
        assert_eq!(wait(&[("retry-after", "7")]), Some(7));
        assert_eq!(wait(&[("retry-after", "0.2")]), Some(1));
        // OpenAI's milliseconds come first.
        assert_eq!(
            wait(&[("retry-after", "9"), ("retry-after-ms", "1500")]),
            Some(2)
        );
        // A date, from the time it is read.
        let now = "2026-10-21T07:27:20Z".parse().unwrap();
        let at = |value: &'static str| {
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(
                "retry-after",
                reqwest::header::HeaderValue::from_static(value),
            );
            retry_after_from(&headers, now)
        };
        assert_eq!(at("Wed, 21 Oct 2026 07:28:00 GMT"), Some(40));
        assert_eq!(at("Wed, 21 Oct 2026 07:00:00 GMT"), Some(0));
        assert_eq!(at("Wed, 21 Oct 2037 07:28:00 GMT"), Some(86_400));
        // The obsolete forms a recipient must still read.
        assert_eq!(at("Wednesday, 21-Oct-26 07:28:00 GMT"), Some(40));
        assert_eq!(at("Wed Oct 21 07:28:00 2026"), Some(40));
        assert_eq!(at("Wed, 21 Oct 2026 07:28:00 +0000"), Some(40));
        assert_eq!(at("Wed, 21 Oct 2026 09:28:00 +0200"), Some(40));
        assert_eq!(at("Wednesday soon"), None);
        assert_eq!(wait(&[("retry-after", "-3")]), None);
        assert_eq!(wait(&[("retry-after", "1e300")]), Some(86_400));
        assert_eq!(wait(&[]), None);
    }

    #[test]
    fn a_byte_order_mark_is_dropped_however_the_body_arrives() {
        assert_eq!(passed(&[b"\xEF\xBB\xBFdata: x\n\n"]), b"data: x\n\n");
        assert_eq!(passed(&[b"\xEF", b"\xBB", b"\xBFdata: x"]), b"data: x");
        assert_eq!(passed(&[b"", b"\xEF\xBB", b"\xBF", b"data"]), b"data");
        // Only at the start, and only the whole mark.
        assert_eq!(
            passed(&[b"data: x", b"\xEF\xBB\xBF"]),
            b"data: x\xEF\xBB\xBF"
        );
        assert_eq!(passed(&[b"\xEF", b"\xBBdata"]), b"\xEF\xBBdata");
        assert_eq!(passed(&[b"da", b"ta"]), b"data");
        // Every mark at the start, however the pieces split them.
        assert_eq!(passed(&[b"\xEF\xBB\xBF\xEF\xBB\xBFdata"]), b"data");
        assert_eq!(passed(&[b"\xEF\xBB\xBF\xEF", b"\xBB\xBFdata"]), b"data");
        assert_eq!(
            passed(&[b"\xEF\xBB\xBF", b"\xEF\xBB\xBF", b"data"]),
            b"data"
        );
    }

    #[test]
    fn text_split_anywhere_is_utf8_and_a_bad_byte_is_caught() {
        let text = "data: {\"content\":\"héllo € 𝄞 日本\"}\n\n".as_bytes();
        // Every way of cutting the text in two or three pieces is valid.
        for i in 0..=text.len() {
            for j in i..=text.len() {
                let mut check = Utf8Check::default();
                assert!(
                    [&text[..i], &text[i..j], &text[j..]]
                        .iter()
                        .all(|piece| check.is_valid(piece)),
                    "{i} {j}"
                );
            }
        }
        let bad: [&[&[u8]]; 4] = [
            &[b"data: \xff"],
            &[b"data: \xE2\x82", b"x"],
            &[b"data: \xF0", b"\x9D", b"\x28"],
            &[b"data: \xC3\xA9", b"\x80"],
        ];
        for pieces in bad {
            let mut check = Utf8Check::default();
            assert!(
                !pieces.iter().all(|piece| check.is_valid(piece)),
                "{pieces:?}"
            );
        }
    }

    /// A bad byte fails the stream at once, where the SSE parser alone would
    /// wait for more, silently, until the upstream ended.
    #[tokio::test]
    async fn a_stream_that_is_not_utf8_fails_at_once() {
        let pieces: Vec<Result<Bytes, BodyError>> = vec![
            Ok(Bytes::from_static(b"data: {\"a\":\"\xff\"}\n\n")),
            Ok(Bytes::from_static(b"data: {}\n\n")),
        ];
        let body = futures::stream::iter(pieces).chain(futures::stream::pending());
        let mut events = utf8_checked(without_bom(body.boxed())).eventsource();
        let first = tokio::time::timeout(Duration::from_secs(5), events.next()).await;
        assert!(
            matches!(
                first,
                Ok(Some(Err(EventStreamError::Transport(BodyError::NotUtf8))))
            ),
            "{first:?}"
        );
    }

    /// Lines split across pieces reach the SSE parser whole, and the events
    /// are those of the body however it was split.
    #[tokio::test]
    async fn the_sse_parser_gets_whole_lines() {
        let text: &[u8] = b"data: {\"a\":\"long\"}\r\n\r\n: keep\n\ndata: {}\n\ndata: last";
        for size in [1, 2, 3, 5, 7, text.len()] {
            let body: Vec<Result<Bytes, BodyError>> = text
                .chunks(size)
                .map(|piece| Ok(Bytes::copy_from_slice(piece)))
                .collect();
            let passed: Vec<Bytes> = whole_lines(futures::stream::iter(body))
                .map(|piece| piece.unwrap())
                .collect()
                .await;
            assert_eq!(passed.concat(), text, "pieces of {size}");
            // Every piece but the last ends a line.
            for piece in &passed[..passed.len() - 1] {
                assert!(matches!(piece.last(), Some(b'\n' | b'\r')), "{piece:?}");
            }
            let body: Vec<Result<Bytes, BodyError>> = passed.into_iter().map(Ok).collect();
            let events: Vec<String> = futures::stream::iter(body)
                .eventsource()
                .map(|event| event.unwrap().data)
                .collect()
                .await;
            assert_eq!(events, [r#"{"a":"long"}"#, "{}"], "pieces of {size}");
        }
    }

    /// Marks at the start reach the SSE parser as nothing, whatever the split:
    /// one left over panicked in eventsource-stream.
    #[tokio::test]
    async fn the_sse_parser_reads_the_first_event_after_any_marks() {
        let bodies: [&[&[u8]]; 4] = [
            &[b"\xEF\xBB\xBFdata: x\n\n"],
            &[b"\xEF\xBB\xBF\xEF\xBB\xBFdata: x\n\n"],
            &[b"\xEF\xBB\xBF\xEF", b"\xBB\xBFdata: x\n\n"],
            &[b"\xEF\xBB\xBF", b"", b"\xEF\xBB\xBF", b"data: x\n\n"],
        ];
        for pieces in bodies {
            let body: Vec<Result<Bytes, BodyError>> = pieces
                .iter()
                .map(|piece| Ok(Bytes::copy_from_slice(piece)))
                .collect();
            let mut events = without_bom(futures::stream::iter(body).boxed()).eventsource();
            let first = events.next().await.expect("an event").expect("it parses");
            assert_eq!(first.data, "x", "{pieces:?}");
        }
    }
}
