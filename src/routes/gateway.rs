//! The model API for developers: `POST /v1/chat/completions` (JSON or SSE),
//! `GET /v1/models` (and `/v1/models/{model}`) and the simple `POST /response`.
//! Each handler runs the pipeline stages of `crate::gateway` top to bottom.

use std::{sync::Arc, time::Instant};

use axum::{
    Json,
    body::{Body, Bytes},
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::Utc;
use futures::{FutureExt, StreamExt, stream::BoxStream};
use serde_json::{Value, json};

use crate::{
    gateway::{
        Gateway, StopSignal,
        error::GatewayError,
        hold::Hold,
        limits::{AddressTaken, Buckets, RateHeaders, Running},
        parse::ChatRequest,
        providers::{Reply, UpstreamError, estimate_body_tokens},
        refusals,
        reply::{self, Relayed},
        restrictions,
        settle::{Bill, Meter, StreamBill},
        upstream,
    },
    keys::auth::{self, KeyHolder},
    request_meta::RequestMeta,
    startup::AppState,
    store::PlanRecord,
};

/// `POST /v1/chat/completions`
pub async fn chat_completions(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut rate = RateHeaders::default();
    let outcome = async {
        let admitted = admit_address(&state, &meta, &mut rate).await?;
        let request = ChatRequest::parse(&body)?;
        Ok(
            match chat(
                &state, &meta, &headers, request, false, &admitted, &mut rate,
            )
            .await?
            {
                Answer::Json(body) => json_response(body),
                Answer::Stream(response) => response,
            },
        )
    }
    .await;
    respond(&state, &meta, &headers, outcome, rate)
}

/// Every model API answer, body or error, with the rate-limit headers of the
/// windows the call passed; refusals are recorded, and rate-limit refusals
/// counted by limit.
fn respond(
    state: &AppState,
    meta: &RequestMeta,
    headers: &HeaderMap,
    outcome: Result<Response, GatewayError>,
    rate: RateHeaders,
) -> Response {
    if let Err(error) = &outcome {
        if let GatewayError::Limited { code, .. } | GatewayError::NeverFits { code, .. } = error {
            state.instruments.limit_rejection(code);
        }
        refusals::record(&state.store, meta, headers, error);
    }
    let mut response = outcome.unwrap_or_else(IntoResponse::into_response);
    rate.apply(response.headers_mut());
    response
}

/// `POST /response`: `{system_prompt, message, tokens}` → `{role, content}`,
/// on the first model in the table that the key may use.
pub async fn simple_response(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut rate = RateHeaders::default();
    let outcome = async {
        let admitted = admit_address(&state, &meta, &mut rate).await?;
        let request = simple_request(&state, &body)?;
        match chat(&state, &meta, &headers, request, true, &admitted, &mut rate).await? {
            Answer::Json(body) => {
                let body: Value = serde_json::from_slice(&body)
                    .map_err(|e| GatewayError::Internal(format!("a relayed answer: {e}")))?;
                Ok(Json(json!({
                    "role": "assistant",
                    "content": simple_content(&body["choices"][0]["message"]),
                }))
                .into_response())
            }
            Answer::Stream(_) => Err(GatewayError::Internal("a stream for /response".into())),
        }
    }
    .await;
    respond(&state, &meta, &headers, outcome, rate)
}

/// What `/response` answers as the reply's `content`: the message's text,
/// also when the upstream sent it as an array of parts (their `text`
/// joined), or else the model's refusal, so that no reply the caller paid
/// for comes back empty.
fn simple_content(message: &Value) -> String {
    let text = match &message["content"] {
        Value::String(text) => text.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|part| part["text"].as_str())
            .collect(),
        _ => String::new(),
    };
    match message["refusal"].as_str() {
        Some(refusal) if text.is_empty() => refusal.to_owned(),
        _ => text,
    }
}

fn simple_request(state: &AppState, body: &[u8]) -> Result<ChatRequest, GatewayError> {
    // Each field is checked below, so a wrong one is named (`param`) with
    // what it must be, rather than in serde's words.
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Simple {
        #[serde(default)]
        system_prompt: Value,
        #[serde(default)]
        message: Value,
        #[serde(default)]
        tokens: Value,
    }
    // JSON that does not parse is said in the parser's words, as on the
    // chat API; then an object only: serde would also take the fields as an
    // array, in order.
    let Value::Object(object) = crate::gateway::parse::json_body(body)? else {
        return Err(GatewayError::invalid(
            "The body must be a JSON object: {\"system_prompt\", \"message\", \"tokens\"}.",
            None,
        ));
    };
    let simple: Simple = serde_json::from_value(Value::Object(object)).map_err(|e| {
        GatewayError::invalid(
            format!("The body must be {{\"system_prompt\", \"message\", \"tokens\"}}: {e}."),
            None,
        )
    })?;
    let message = match simple.message {
        Value::String(message) => message,
        Value::Null => {
            return Err(GatewayError::invalid(
                "`message` is required: the user's message, as a string.",
                Some("message"),
            ));
        }
        _ => {
            return Err(GatewayError::invalid(
                "`message` must be a string: the user's message.",
                Some("message"),
            ));
        }
    };
    let system_prompt = match simple.system_prompt {
        Value::String(system) => Some(system),
        Value::Null => None,
        _ => {
            return Err(GatewayError::invalid(
                "`system_prompt` must be a string, or left out.",
                Some("system_prompt"),
            ));
        }
    };
    let mut messages = Vec::new();
    if let Some(system) = system_prompt.filter(|s| !s.trim().is_empty()) {
        messages.push(json!({ "role": "system", "content": system }));
    }
    messages.push(json!({ "role": "user", "content": message }));
    let mut chat = json!({
        "model": state.gateway.models.default_model().name,
        "messages": messages,
    });
    // Checked as `max_tokens` is, and named `tokens` in what is said.
    if !simple.tokens.is_null() {
        chat["max_tokens"] = simple.tokens;
    }
    ChatRequest::parse(chat.to_string().as_bytes()).map_err(|e| match e {
        GatewayError::Invalid {
            message,
            param: Some("max_tokens"),
        } => GatewayError::Invalid {
            message: message.replace("`max_tokens`", "`tokens`"),
            param: Some("tokens"),
        },
        other => other,
    })
}

/// `GET /v1/models`: the models this key may call.
pub async fn list_models(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
) -> Response {
    let mut rate = RateHeaders::default();
    let outcome = async {
        let data = models_for_key(&state, &meta, &headers, &mut rate).await?;
        Ok(Json(json!({ "object": "list", "data": data })).into_response())
    }
    .await;
    respond(&state, &meta, &headers, outcome, rate)
}

/// `GET /v1/models/{model}` (the SDKs' `models.retrieve`): one model this key
/// may call; any other name is 404, as it is missing from the list. So is a
/// name that does not decode to UTF-8, which no model has (axum's own answer
/// to it would be plain text).
pub async fn get_model(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    uri: axum::http::Uri,
    name: Result<axum::extract::Path<String>, axum::extract::rejection::PathRejection>,
) -> Response {
    let name = match name {
        Ok(axum::extract::Path(name)) => name,
        Err(_) => uri
            .path()
            .strip_prefix("/v1/models/")
            .unwrap_or(uri.path())
            .to_owned(),
    };
    let mut rate = RateHeaders::default();
    let outcome = async {
        let data = models_for_key(&state, &meta, &headers, &mut rate).await?;
        data.into_iter()
            .find(|m| m["id"] == name.as_str())
            .map(|m| Json(m).into_response())
            .ok_or(GatewayError::UnknownModel(name))
    }
    .await;
    respond(&state, &meta, &headers, outcome, rate)
}

/// The models the presented key may call, in OpenAI's `model` shape, after
/// the address's windows and the key's checks.
async fn models_for_key(
    state: &AppState,
    meta: &RequestMeta,
    headers: &HeaderMap,
    rate: &mut RateHeaders,
) -> Result<Vec<Value>, GatewayError> {
    let admitted = admit_address(state, meta, rate).await?;
    let (holder, plan) = verify(
        state,
        meta,
        headers,
        &admitted,
        rate,
        auth::UsesCounted::Refuse,
    )
    .await?;
    state.store.touch_key(holder.key.id);
    peek_user(state, holder.user.id, &plan, &admitted.buckets, rate).await;
    let names = state.gateway.models.iter().map(|m| m.name.as_str());
    let created = state.gateway.models.loaded_at;
    Ok(restrictions::allowed_models(&holder.key, &plan, names)
        .into_iter()
        .filter_map(|name| state.gateway.models.get(name))
        .map(|m| json!({ "id": m.name, "object": "model", "created": created, "owned_by": m.owned_by() }))
        .collect())
}

/// A model API path called with a method it does not take: 405 in the API's
/// shape, naming the one it does.
pub async fn method_not_allowed(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    method: axum::http::Method,
    uri: axum::http::Uri,
    body: axum::body::Body,
) -> Response {
    read_to_the_end(body, &state).await;
    let allowed = if uri.path().starts_with("/v1/models") {
        "GET"
    } else {
        "POST"
    };
    let mut answer = crate::api_error::ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "invalid_request_error",
        "method_not_allowed",
        format!("{} takes {allowed}, not {method}.", uri.path()),
    )
    .into_response();
    answer
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allowed));
    outside_pipeline(&state, &meta, &headers, answer).await
}

/// Unknown paths under `/v1` answer in the API's shape, never with a page.
pub async fn unknown_route(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let message = "No such API route. The model API has POST /v1/chat/completions, GET /v1/models and POST /response.";
    not_found(&state, &meta, &headers, body, message).await
}

/// OpenAI's paths without `/v1` (`/chat/completions`, `/models`): a client
/// whose base URL lacks it. Told so in the API's shape, not with a page.
pub async fn missing_v1(
    State(state): State<AppState>,
    meta: RequestMeta,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let message = "No such API route: the model API is under /v1. Set your client's base URL to this server's address followed by /v1.";
    not_found(&state, &meta, &headers, body, message).await
}

async fn not_found(
    state: &AppState,
    meta: &RequestMeta,
    headers: &HeaderMap,
    body: axum::body::Body,
    message: &'static str,
) -> Response {
    read_to_the_end(body, state).await;
    let answer = crate::api_error::ApiError::new(
        StatusCode::NOT_FOUND,
        "invalid_request_error",
        "unknown_url",
        message,
    )
    .into_response();
    outside_pipeline(state, meta, headers, answer).await
}

/// Reads a body the answer does not need (within the body limit): a body
/// left unread makes the server close the connection after the answer,
/// which a client reusing it (the OpenAI SDKs do) sees as a dropped call.
async fn read_to_the_end(body: axum::body::Body, state: &AppState) {
    let _ = axum::body::to_bytes(body, state.config.max_body_bytes).await;
}

/// The model API's body limit and pause. A body refused still counts in
/// its address's windows, like every call here, and its answer carries them.
pub async fn limit_body(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let rules = crate::body_limit::BodyRules::of(&state.config);
    match crate::body_limit::bounded(request, rules).await {
        Ok(request) => next.run(request).await,
        Err(refused) => {
            let meta = RequestMeta::from_parts(&refused.parts);
            outside_pipeline(&state, &meta, &refused.parts.headers, refused.answer).await
        }
    }
}

/// An answer given without the pipeline (a wrong method or path, a body too
/// large): it counts in the address's windows and carries their rate-limit
/// headers, or becomes their 429.
async fn outside_pipeline(
    state: &AppState,
    meta: &RequestMeta,
    headers: &HeaderMap,
    answer: Response,
) -> Response {
    let mut rate = RateHeaders::default();
    let outcome = admit_address(state, meta, &mut rate).await.map(|_| answer);
    respond(state, meta, headers, outcome, rate)
}

enum Answer {
    /// The caller's copy of a whole completion, already JSON.
    Json(Vec<u8>),
    Stream(Response),
}

fn json_response(body: Vec<u8>) -> Response {
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// What stage 1 gives the later stages: the windows' names at the call's
/// start, and what it took from the address's windows.
struct Admitted {
    buckets: Buckets,
    address: Option<AddressTaken>,
}

/// Stage 1, the client IP's windows: first of all, so that a flood of calls
/// is cut off before its bodies are parsed or its keys looked up, and every
/// answer, a bad body's too, carries the rate-limit headers.
async fn admit_address(
    state: &AppState,
    meta: &RequestMeta,
    rate: &mut RateHeaders,
) -> Result<Admitted, GatewayError> {
    // Fail closed: a call admitted now would be charged in memory only, and a
    // restart before the database takes writes again would lose it.
    if state.store.writes_failing() {
        return Err(GatewayError::Unrecordable);
    }
    let buckets = Buckets::at(Utc::now());
    let address = match meta.client_ip {
        Some(ip) => Some(
            state
                .gateway
                .limiters
                .admit_ip(&state.gateway.accounts, ip, &buckets, rate)
                .await?,
        ),
        None => None,
    };
    Ok(Admitted { buckets, address })
}

/// Stages 3 and 4 (the key, the caller restrictions), with the key's plan.
/// Once the key is known, answers show the user's windows: a refusal by the
/// caller restrictions reads them.
async fn verify(
    state: &AppState,
    meta: &RequestMeta,
    headers: &HeaderMap,
    admitted: &Admitted,
    rate: &mut RateHeaders,
    uses_counted: auth::UsesCounted,
) -> Result<(KeyHolder, PlanRecord), GatewayError> {
    let holder = match auth::authenticate(
        &state.store,
        &state.key_hasher,
        auth::presented_key(headers),
        uses_counted,
    )
    .await
    {
        Ok(holder) => holder,
        Err(error) => {
            let error = GatewayError::Key(error);
            // A one-time key used up is a limit refusing the call.
            give_back_address(state, admitted, rate, &error);
            return Err(error);
        }
    };
    let plan = state.store.plan_of_user(holder.user.id).await?;
    if let Err(error) = restrictions::check_caller(&holder, meta.client_ip, headers) {
        peek_user(state, holder.user.id, &plan, &admitted.buckets, rate).await;
        return Err(error);
    }
    Ok((holder, plan))
}

/// A call another limit refused takes nothing from its address's windows.
fn give_back_address(
    state: &AppState,
    admitted: &Admitted,
    rate: &mut RateHeaders,
    error: &GatewayError,
) {
    if let Some(taken) = admitted.address
        && error.is_limit()
    {
        state.gateway.limiters.give_back_ip(
            &state.gateway.accounts,
            taken,
            &admitted.buckets,
            rate,
        );
    }
}

/// The user's windows as they stand, counting nothing, for the headers.
async fn peek_user(
    state: &AppState,
    user_id: i64,
    plan: &PlanRecord,
    buckets: &Buckets,
    rate: &mut RateHeaders,
) {
    state
        .gateway
        .limiters
        .peek_user(&state.gateway.accounts, plan, user_id, buckets, rate)
        .await;
}

/// Stages 3 to 8 for one chat request. With `any_model` (the simple endpoint,
/// whose callers name no model) the request goes to the first model in the
/// table that the key and its plan allow.
async fn chat(
    state: &AppState,
    meta: &RequestMeta,
    headers: &HeaderMap,
    mut request: ChatRequest,
    any_model: bool,
    admitted: &Admitted,
    rate: &mut RateHeaders,
) -> Result<Answer, GatewayError> {
    let started = Instant::now();
    // A one-time key's use is taken, exactly, with the other limits.
    let uses = auth::UsesCounted::LeaveToTheTake;
    let (holder, plan) = verify(state, meta, headers, admitted, rate, uses).await?;
    let admission = async {
        if any_model {
            let names = state.gateway.models.iter().map(|m| m.name.as_str());
            if let Some(name) = restrictions::allowed_models(&holder.key, &plan, names).first() {
                request.model = (*name).to_owned();
            }
        }
        let model = state
            .gateway
            .models
            .get(&request.model)
            .ok_or_else(|| GatewayError::UnknownModel(request.model.clone()))?;
        restrictions::check_model(&holder.key, &plan, &model.name)?;
        state.store.touch_key(holder.key.id);

        let messages = upstream::messages_for(model, &mut request);
        let hold = Hold::worst_case(
            model,
            &messages,
            estimate_body_tokens(&request.body),
            request.body_bytes,
            request.max_tokens,
            request.choices,
        );
        let admit = state
            .gateway
            .limiters
            .admit_user(
                &state.store,
                &state.gateway.accounts,
                &plan,
                &holder.key,
                hold.tokens(),
                hold.micros,
                meta.request_id.as_deref(),
                &admitted.buckets,
                rate,
            )
            .await?;
        Ok::<_, GatewayError>((model, messages, hold, admit))
    }
    .await;
    let (model, messages, hold, admit) = match admission {
        Ok(ready) => ready,
        Err(error) => {
            give_back_address(state, admitted, rate, &error);
            // Its answer shows the user's windows as they stand.
            peek_user(state, holder.user.id, &plan, &admitted.buckets, rate).await;
            return Err(error);
        }
    };
    let mut bill = Bill {
        gateway: state.gateway.clone(),
        hold: admit.hold,
        user_id: holder.user.id,
        key_id: holder.key.id,
        request_id: meta.request_id.clone(),
        model: model.name.clone(),
        prices: model.prices,
        stream: request.stream,
        reserved_micros: hold.micros,
        prompt_estimate: hold.prompt_guess,
        most_prompt: hold.prompt_most,
        most_completion: hold.max_output_tokens.saturating_mul(hold.choices),
        started,
        upstream_ms: None,
        answered: false,
        client_ip: meta.client_ip.map(|ip| ip.to_string()),
        capped_use: admit.capped_use,
        instruments: state.instruments.clone(),
        settled: false,
    };

    let upstream_clock = Instant::now();
    // From here on the call can be stopped by the server stopping, when it
    // settles what it produced (`Bill` and `Forward` know what that was).
    let mut stop = state.gateway.stop_signal();
    let reply = tokio::select! {
        biased;
        reply = state.gateway.upstreams.call(model, &mut request, messages, hold.max_output_tokens) => reply,
        () = stop.raised() => {
            bill.settle_stopped(&Meter::default());
            return Err(GatewayError::Stopping);
        }
    };
    let reply = match reply {
        Ok(reply) => reply,
        Err(error) => {
            bill.upstream_took(upstream_clock.elapsed());
            crate::telemetry::note_model(&model.name);
            let error = GatewayError::Upstream(error);
            // The upstream never answered: the call costs nothing, nor a
            // capped key's use, nor a request from the user's windows (the
            // SDKs retry an upstream's 429 or 5xx, and would spend them).
            if let Some(unused) =
                bill.settle(error.status().as_u16(), error.code(), &Meter::default())
            {
                unused.give_back().await;
            }
            state
                .gateway
                .limiters
                .give_back_user(&state.gateway.accounts, admit.windows, rate);
            return Err(error);
        }
    };
    // The upstream accepted the call and is reading the prompt: from here on
    // the prompt is charged however the call ends, a client leaving too.
    bill.answered = true;
    match bill.capped_use.take() {
        Some(taken) => taken.keep(),
        // A key without a cap counts its use as a cap would, so a cap set
        // later counts on from it.
        None => {
            let key_id = bill.key_id;
            state.store.queue(|batch| batch.key_counted(key_id));
        }
    }
    let mut meter = bill.meter();
    match reply {
        Reply::Whole(body) => {
            let body = tokio::select! {
                biased;
                body = body => body,
                () = stop.raised() => {
                    bill.settle_stopped(&meter);
                    return Err(GatewayError::Stopping);
                }
            };
            let upstream_ms = bill.upstream_took(upstream_clock.elapsed());
            // Even a body cut off or too slow, one that carries an error or
            // does not parse, came after the upstream read the prompt.
            let body = match body {
                Ok(body) => body,
                Err(error) => return Err(bill.fail_after_prompt(error, &meter)),
            };
            bill.upstream_ms = Some(upstream_ms);
            let mut out = Vec::with_capacity(body.len() + 32);
            match reply::relay_bytes(&body, &model.name, true, &mut meter, &mut out) {
                Ok(_) => {
                    if !meter.usage_sent {
                        let (prompt, completion) = bill.counted(&meter);
                        reply::add_usage(&mut out, prompt, completion);
                    }
                    bill.settle(200, None, &meter);
                    Ok(Answer::Json(out))
                }
                Err(error) => Err(bill.fail_after_prompt(error, &meter)),
            }
        }
        Reply::Chunks(chunks) => {
            let hold = bill.hold;
            let billing = StreamBill::new(bill, meter);
            state.gateway.stream_started(hold, billing.clone());
            Ok(Answer::Stream(sse(Forward {
                chunks,
                billing,
                tracked: Some((state.gateway.clone(), hold)),
                include_usage: request.include_usage,
                choices: request.choices,
                answer_head: reply::AnswerHead::default(),
                upstream_clock: Some(upstream_clock),
                model: model.name.clone(),
                done: false,
                stop,
                keep_alive: KeepAlive::every(state.config.stream_keep_alive),
                _running: admit._running,
                _streaming: state.instruments.stream(),
            })))
        }
    }
}

/// A stream being forwarded. Dropped before its end (the client went away),
/// it settles what was produced so far; dropping the upstream stream with it
/// cancels the upstream request.
struct Forward {
    chunks: BoxStream<'static, Result<String, UpstreamError>>,
    /// Shared with the gateway, which settles it if the server stops while
    /// nothing polls this stream.
    billing: Arc<StreamBill>,
    /// The gateway that knows the stream, and the call's hold it knows it
    /// by; `None` in unit tests, which bill nothing.
    tracked: Option<(Arc<Gateway>, u64)>,
    include_usage: bool,
    /// How many choices the caller asked for (`n`).
    choices: u64,
    /// The upstream's id and time for the answer, from its first chunk, for
    /// a usage chunk the gateway must make itself; kept only when usage was
    /// asked for.
    answer_head: reply::AnswerHead,
    /// When the upstream call began, until its first chunk (or end) came:
    /// a stream's upstream latency is the time to its first token, not to
    /// its status, which servers send before they have any.
    upstream_clock: Option<Instant>,
    model: String,
    done: bool,
    stop: StopSignal,
    keep_alive: KeepAlive,
    _running: Running,
    _streaming: crate::instruments::StreamGuard,
}

/// A comment for the caller when the stream sent nothing for a while (a model
/// thinking before it answers, an upstream sending only its own comments),
/// so that proxies on the way do not close a quiet connection. Its timer is
/// set once a period, not at every chunk: a caller waits from one to two
/// periods for a comment.
struct KeepAlive {
    every: std::time::Duration,
    tick: std::pin::Pin<Box<tokio::time::Sleep>>,
    /// Whether anything went to the caller since the last tick.
    sent: bool,
}

impl KeepAlive {
    fn every(every: std::time::Duration) -> Self {
        Self {
            every,
            tick: Box::pin(tokio::time::sleep(every)),
            sent: false,
        }
    }

    /// The tick came: a comment unless something was sent since the last.
    fn due(&mut self, out: &mut Vec<u8>) {
        if !std::mem::take(&mut self.sent) {
            out.extend_from_slice(b": keep-alive\n\n");
        }
        let next = self.tick.deadline() + self.every;
        self.tick.as_mut().reset(next);
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        if let Some((bill, meter)) = self.billing.take() {
            tracing::info!(request_id = ?bill.request_id, "client left mid-stream; settling what was sent");
            bill.settle(499, Some("client_disconnected"), &meter);
        }
        if let Some((gateway, hold)) = &self.tracked {
            gateway.stream_ended(*hold);
        }
    }
}

/// At most this much of a burst of chunks goes out in one write.
const COALESCE_BYTES: usize = 16 * 1024;

/// Turns given up in a row, none bringing a chunk, before what was gathered is
/// written: the upstream connection's task takes two to hand over a chunk it
/// has already read (measured; one turn coalesced nothing).
const IDLE_TURNS: u8 = 2;

impl Forward {
    /// Turns the upstream's next item into frames appended to `out`: a chunk
    /// (without the usage the caller did not ask for), an error event, or
    /// the end. Ending or failing settles the bill. A connection that closed
    /// without `[DONE]` after the answer was whole ends the stream as `[DONE]`
    /// would: some servers close without it.
    fn push(&mut self, item: Option<Result<String, UpstreamError>>, out: &mut Vec<u8>) {
        self.keep_alive.sent = true;
        if let Some(clock) = self.upstream_clock.take() {
            let took = clock.elapsed();
            if let Some(bill) = self.billing.lock().bill.as_mut() {
                bill.upstream_ms = Some(bill.upstream_took(took));
            }
        }
        match item {
            Some(Ok(chunk)) => {
                if self.include_usage && !self.answer_head.is_whole() {
                    self.answer_head.learn(&chunk);
                }
                let start = out.len();
                out.extend_from_slice(b"data: ");
                let relayed = reply::relay(
                    &chunk,
                    &self.model,
                    self.include_usage,
                    &mut self.billing.lock().meter,
                    out,
                );
                match relayed {
                    Ok(Relayed::Sent) => out.extend_from_slice(b"\n\n"),
                    Ok(Relayed::Skipped | Relayed::UsageDropped) => out.truncate(start),
                    Err(error) => {
                        out.truncate(start);
                        self.fail(GatewayError::Upstream(error), out);
                    }
                }
            }
            Some(Err(UpstreamError::EndedEarly))
                if self.billing.lock().meter.finished_choices() >= self.choices =>
            {
                self.finish(out);
            }
            Some(Err(error)) => self.fail(GatewayError::Upstream(error), out),
            None => self.finish(out),
        }
    }

    /// Ends the stream with `[DONE]`, after the usage chunk the caller asked
    /// for if the upstream sent none, or if text came after the last usage
    /// shown (an upstream that reports early): counted as the call is charged.
    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.include_usage {
            let counted = {
                let metered = self.billing.lock();
                metered
                    .bill
                    .as_ref()
                    .map(|bill| bill.counted(&metered.meter))
                    .filter(|charged| metered.meter.usage_shown != Some(*charged))
            };
            if let Some((prompt, completion)) = counted {
                out.extend_from_slice(b"data: ");
                reply::write_usage_chunk(&self.answer_head, &self.model, prompt, completion, out);
                out.extend_from_slice(b"\n\n");
            }
        }
        self.settle(200, None);
        self.done = true;
        out.extend_from_slice(b"data: [DONE]\n\n");
    }

    /// Settles what was sent, unless the server already did.
    fn settle(&self, status: u16, error_code: Option<&str>) {
        if let Some((bill, meter)) = self.billing.take() {
            bill.settle(status, error_code, &meter);
        }
    }

    /// Ends the stream with an error event, settling what was sent. An
    /// upstream's failure says what was charged: the prompt once the
    /// upstream answered, and the reply streamed before it.
    fn fail(&mut self, error: GatewayError, out: &mut Vec<u8>) {
        crate::telemetry::note_model(&self.model);
        let error = match error {
            GatewayError::Upstream(cause) => {
                let (streamed, answered) = {
                    let meter = &self.billing.lock().meter;
                    (meter.reply_bytes > 0, meter.produced())
                };
                if streamed {
                    GatewayError::StreamCut(cause)
                } else if answered {
                    GatewayError::AfterPrompt(cause)
                } else {
                    GatewayError::Upstream(cause)
                }
            }
            other => other,
        };
        error.log();
        let api = error.to_api_error();
        self.settle(api.status.as_u16(), api.code);
        self.done = true;
        out.extend_from_slice(b"data: ");
        // Serialising into memory cannot fail.
        let _ = serde_json::to_writer(&mut *out, &json!({ "error": api }));
        out.extend_from_slice(b"\n\n");
    }
}

/// Forwards each chunk as soon as it arrives, with the chunks that arrived
/// together with it in the same write. hyper hands an upstream body over one
/// chunk per turn of the connection's task, so after each chunk the forwarder
/// gives up its turn (to the back of the run queue, not waiting for the
/// runtime to idle as `tokio::task::yield_now` does) and takes what came
/// meanwhile. One write for a burst instead of one per chunk saves a system
/// call each and the caller a read each.
fn sse(forward: Forward) -> Response {
    let body = futures::stream::unfold(forward, |mut f| async move {
        if f.done {
            return None;
        }
        let mut out = Vec::new();
        while out.is_empty() && !f.done {
            let item = tokio::select! {
                biased;
                item = f.chunks.next() => Some(item),
                () = f.stop.raised() => None,
                () = f.keep_alive.tick.as_mut() => {
                    f.keep_alive.due(&mut out);
                    continue;
                }
            };
            match item {
                Some(item) => f.push(item, &mut out),
                None => f.fail(GatewayError::Stopping, &mut out),
            }
        }
        let mut idle_turns = 0;
        while !f.done && out.len() < COALESCE_BYTES {
            match f.chunks.next().now_or_never() {
                Some(item) => {
                    f.push(item, &mut out);
                    idle_turns = 0;
                }
                None if idle_turns < IDLE_TURNS => {
                    futures_lite::future::yield_now().await;
                    idle_turns += 1;
                }
                None => break,
            }
        }
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(out)), f))
    });
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stream answer relaying what an upstream sends on `rx`, unbilled,
    /// stopped when `stop` goes up.
    fn relayed(
        rx: tokio::sync::mpsc::Receiver<Result<String, UpstreamError>>,
        stop: tokio::sync::watch::Receiver<bool>,
    ) -> Response {
        let chunks = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        sse(Forward {
            chunks: chunks.boxed(),
            billing: Arc::default(),
            tracked: None,
            include_usage: false,
            choices: 1,
            answer_head: reply::AnswerHead::default(),
            upstream_clock: None,
            model: "demo".into(),
            done: false,
            stop: StopSignal(stop),
            keep_alive: KeepAlive::every(std::time::Duration::from_secs(15)),
            _running: Running::alone(),
            _streaming: crate::instruments::Instruments::new().stream(),
        })
    }

    /// Chunks the upstream sent together reach the caller in one write, though
    /// another task hands them over one at a time, as hyper's connection does.
    #[tokio::test(flavor = "current_thread")]
    async fn a_burst_of_chunks_goes_out_in_one_write() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, UpstreamError>>(1);
        tokio::spawn(async move {
            for word in ["Hello", " from", " the", " mock", " upstream", "."] {
                let chunk = json!({ "choices": [{ "delta": { "content": word } }] });
                if tx.send(Ok(chunk.to_string())).await.is_err() {
                    return;
                }
            }
            // Dropping the sender ends the stream, as `[DONE]` does.
        });
        let (_stop, stop) = tokio::sync::watch::channel(false);
        let response = relayed(rx, stop);
        let writes: Vec<Bytes> = response
            .into_body()
            .into_data_stream()
            .map(|frame| frame.unwrap())
            .collect()
            .await;
        let text: String = writes
            .iter()
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect();
        assert_eq!(text.matches("data: ").count(), 7, "{text}");
        assert!(text.ends_with("data: [DONE]\n\n"), "{text}");
        assert!(text.contains(r#""content":" upstream""#), "{text}");
        assert!(writes.len() <= 2, "{} writes: {writes:?}", writes.len());
    }

    /// A stream still running when the server stops its calls ends with an
    /// error event instead of waiting for the upstream.
    #[tokio::test]
    async fn a_stream_stopped_by_the_server_ends_with_an_error_event() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<String, UpstreamError>>(1);
        let chunk = json!({ "choices": [{ "delta": { "content": "Hello" } }] });
        tx.send(Ok(chunk.to_string())).await.unwrap();
        let (stop_tx, stop) = tokio::sync::watch::channel(false);
        let response = relayed(rx, stop);
        let mut body = response.into_body().into_data_stream();
        let first = body.next().await.unwrap().unwrap();
        assert!(String::from_utf8_lossy(&first).contains("Hello"));
        stop_tx.send_replace(true);
        // The upstream stays open (`tx` lives): only the stop can end it.
        let rest: Vec<Bytes> = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            body.map(|frame| frame.unwrap()).collect(),
        )
        .await
        .expect("the stream ends when the server stops");
        let text: String = rest
            .iter()
            .map(|w| String::from_utf8_lossy(w).into_owned())
            .collect();
        assert!(text.contains(r#""code":"server_stopping""#), "{text}");
        assert!(!text.contains("[DONE]"), "{text}");
        drop(tx);
    }
}
