//! `/playground`: chat with a model through the public model API, from the
//! browser, with one of the user's own keys. The page calls
//! `POST /v1/chat/completions` exactly as a developer's client would, so what it
//! shows (the stream, the rate-limit headers, every refusal) is what the API does.
//!
//! The key lives only in this tab's memory: it is never stored, and is sent only
//! to the model API. A key just shown on `/welcome` or `/keys` is offered here
//! through [`RecentKey`] when the user navigates without reloading.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

use super::{
    forms::{BUTTON, CARD, NeedsScript},
    nav::SignedInOnly,
};
use crate::{accounts::types::FormError, keys::types::IssuedKey};

/// The last key shown to the user in this tab, kept in memory only.
#[derive(Clone, Copy)]
pub struct RecentKey(pub RwSignal<Option<String>>);

/// Provides the [`RecentKey`], forgotten when the signed-in account changes
/// (a logout, or another account signing in): the app is not reloaded then,
/// and the next account on this tab must not be offered the last one's key.
pub fn provide_recent_key() {
    let recent = RwSignal::new(None);
    provide_context(RecentKey(recent));
    if let Some(user) = use_context::<super::nav::UserResource>() {
        let signed_in = StoredValue::new(None::<i64>);
        Effect::new(move |_| {
            // Only a known answer counts, not a refetch in flight.
            let Some(Ok(now)) = user.get() else {
                return;
            };
            let now = now.map(|me| me.id);
            if signed_in.get_value().is_some_and(|was| Some(was) != now) {
                recent.set(None);
            }
            signed_in.set_value(now);
        });
    }
}

impl RecentKey {
    /// Remembers a key just shown to the user, when it may call the models.
    /// The newest of them: the keys page lists secrets in the order made.
    pub fn remember(&self, issued: &[IssuedKey]) {
        if let Some(key) = issued
            .iter()
            .rev()
            .find(|k| k.key.scopes.iter().any(|s| s == "chat"))
        {
            self.0.set(Some(key.secret.clone()));
        }
    }

    /// Forgets the key remembered when it is one of these being revoked,
    /// known by their `display` (`tg_live_AbCd…wxyz`: the secret's start
    /// and end), so the playground does not offer a dead key.
    pub fn forget_revoked<'a>(&self, displays: impl IntoIterator<Item = &'a str>) {
        let shows = |secret: &str, display: &str| {
            display
                .split_once('…')
                .is_some_and(|(start, end)| secret.starts_with(start) && secret.ends_with(end))
        };
        let displays: Vec<&str> = displays.into_iter().collect();
        let revoked = self.0.with_untracked(|key| {
            key.as_deref()
                .is_some_and(|secret| displays.iter().any(|display| shows(secret, display)))
        });
        if revoked {
            self.0.set(None);
        }
    }
}

/// What a call the user stopped was charged, as settled.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CallCharge {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    /// Credits, exact, as a decimal.
    pub credits: String,
}

/// What the signed-in user's call `request_id` (its `x-request-id`) was
/// charged: for a reply they stopped, which no usage chunk ends. A stopped
/// call is settled once the server sees the client leave, so this waits a
/// little for its record; `None` when none comes (another account's key).
#[server(endpoint = "playground/charge")]
pub async fn charge_of_call(request_id: String) -> Result<Option<CallCharge>, FormError> {
    use crate::server_ctx;
    let (state, _, user) = server_ctx::signed_in_user().await?;
    if request_id.is_empty() || request_id.len() > 64 {
        return Ok(None);
    }
    for _ in 0..30 {
        let charge = state
            .store
            .charge_of_call(user.id, &request_id)
            .await
            .map_err(server_ctx::internal)?;
        if let Some((prompt, completion, micros)) = charge {
            return Ok(Some(CallCharge {
                prompt_tokens: prompt.max(0) as u64,
                completion_tokens: completion.max(0) as u64,
                credits: crate::credits::format_credits(micros),
            }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok(None)
}

/// One message of the conversation as the page shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Turn {
    pub role: &'static str,
    pub content: String,
    /// A message whose call was refused, or stopped before any answer: it
    /// stays on screen but is not sent again with the next message.
    pub left_out: bool,
    /// Stopped by the user: the reply, or the message it answers when
    /// nothing came, says so.
    pub stopped: bool,
    /// The call failed after part of its reply came: the reply and its
    /// message say so, and neither is sent again (a model given a broken
    /// reply as the conversation so far would build on it).
    pub cut_off: bool,
    /// The reply ended at its longest (`finish_reason: "length"`): the
    /// longest reply the user set, or the model's own.
    pub at_longest: bool,
    /// A reply's prompt and completion tokens, from the stream's usage chunk
    /// (or, once stopped, from its settlement).
    pub usage: Option<(u64, u64)>,
    /// A reply's `x-request-id`, to look its charge up once stopped.
    pub request_id: Option<String>,
    /// What a stopped reply was charged, in credits.
    pub charged: Option<String>,
}

impl Turn {
    fn new(role: &'static str, content: String) -> Self {
        Self {
            role,
            content,
            left_out: false,
            stopped: false,
            cut_off: false,
            at_longest: false,
            usage: None,
            request_id: None,
            charged: None,
        }
    }
}

/// The request window the last answer reported in its `x-ratelimit-*` headers.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RateInfo {
    pub limit: Option<u64>,
    pub remaining: Option<u64>,
    /// When the window is whole again, in ms since the epoch.
    pub reset_at: Option<f64>,
}

/// Seconds in an `x-ratelimit-reset-*` value: Tollgate's `30s`, or OpenAI's
/// `1m30s`, `6m0s`, `1.5s`, `20ms`.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
fn reset_seconds(text: &str) -> Option<f64> {
    let mut rest = text.trim();
    let mut total = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&at| at > 0)?;
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(rest.len());
        total += number
            * match &rest[..unit] {
                "h" => 3600.0,
                "m" => 60.0,
                "s" => 1.0,
                "ms" => 0.001,
                _ => return None,
            };
        rest = &rest[unit..];
    }
    Some(total)
}

/// A refused or failed call, from its OpenAI-shaped error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status; 0 when Tollgate could not be reached at all.
    pub status: u16,
    pub code: Option<String>,
    pub message: String,
    pub retry_after_secs: Option<u64>,
    /// The answer said waiting will not help (`x-should-retry: false`).
    pub no_retry: bool,
}

impl Refusal {
    /// A refusal that no countdown ends: more tokens than the plan's minute
    /// holds (a tokens window is whole again within a minute, so only such
    /// a call is told not to retry), or a model set up wrongly upstream.
    pub fn never_passes(&self) -> bool {
        self.no_retry
            && matches!(
                (self.status, self.code.as_deref()),
                (429, Some("tokens_per_minute")) | (502, _)
            )
    }

    /// A heading that says what happened, in the user's words.
    pub fn title(&self) -> String {
        match (self.status, self.code.as_deref()) {
            (0, Some("no_key")) => return "No key yet".into(),
            (0, Some("connection_lost")) => return "The connection to Tollgate broke".into(),
            _ => {}
        }
        match self.status {
            0 => "Tollgate could not be reached".into(),
            400 => "The request was refused as invalid".into(),
            401 => "The key was not accepted".into(),
            402 => "Not enough credits".into(),
            403 => "This key may not make this call".into(),
            404 => "Unknown model".into(),
            413 => "The message is too long".into(),
            429 => format!(
                "Rate limit reached: {}",
                self.code.as_deref().map_or("too many requests", limit_name)
            ),
            502 => "The model's server failed".into(),
            503 => "Tollgate is restarting".into(),
            504 => "The model's server did not answer in time".into(),
            status => format!("The call failed ({status})"),
        }
    }

    /// What to do about it.
    pub fn advice(&self) -> &'static str {
        if self.never_passes() {
            return if self.status == 429 {
                "This conversation and its longest reply need more tokens than your limits allow in a minute, so waiting will not help: set a shorter longest reply, clear the conversation, or send a shorter message."
            } else {
                "Trying again will not help: pick another model, or tell the operator."
            };
        }
        match (self.status, self.code.as_deref()) {
            (0, Some("connection_lost")) => {
                "What came before the break is kept above; Usage shows what the call was charged. Check the connection, then send again."
            }
            (401, Some("api_key_used_up")) => {
                "This key has made all the calls its usage cap allows. Create a new key on the Keys page."
            }
            (401, Some("revoked_api_key" | "expired_api_key")) => {
                "This key no longer works. Create a new one on the Keys page."
            }
            (401, _) => {
                "Paste the whole key (it starts with tg_). Revoked or expired keys stop working, as does a rotated key's old secret once its grace period ends; create a new key on the Keys page."
            }
            (402, _) => {
                "Your balance does not cover this call's worst case: the conversation and the longest reply at the model's prices. Set a shorter longest reply, pick a cheaper model, or get credits from your plan's monthly grant or an admin."
            }
            (403, Some("account_disabled")) => {
                "Your account is disabled, so its keys do not work. Ask an admin."
            }
            (403, _) => {
                "Check the key's scopes (it needs chat), allowed models, IP allowlist and referrer domains on the Keys page."
            }
            (413, _) => {
                "The conversation is larger than this server takes in one request. Clear it, or send a shorter message."
            }
            (400, Some("context_length_exceeded")) => {
                "The conversation is too long for the model. Clear it, or send a shorter message."
            }
            (429, Some("parallel_requests")) => {
                "Another call with your account is still running: wait for it to end, or stop it."
            }
            (503, _) => "Try again in a moment: only what was produced is charged.",
            (429, Some("upstream_rate_limited")) => {
                "The model's server is busy, not your plan: try again when the countdown ends."
            }
            (429, _) => {
                "Wait for the window to reset, or pick a plan with higher limits on the Plans page."
            }
            (502 | 504, _) => "Try again in a moment.",
            _ => "",
        }
    }
}

/// The status a stream's error event stands for: the stream answered 200
/// before it failed.
pub fn status_of_stream_error(code: Option<&str>) -> u16 {
    match code {
        Some("upstream_timeout") => 504,
        Some("server_stopping") => 503,
        Some("upstream_rejected_request") => 400,
        _ => 502,
    }
}

/// The human name of a limit code from a 429.
pub fn limit_name(code: &str) -> &'static str {
    match code {
        "requests_per_minute" => "requests per minute",
        "requests_per_hour" => "requests per hour",
        "requests_per_day" => "requests per day",
        "tokens_per_minute" => "tokens per minute",
        "parallel_requests" => "parallel requests",
        "ip_requests_per_minute" => "requests per minute from your IP address",
        "ip_requests_per_day" => "requests per day from your IP address",
        "upstream_rate_limited" => "the model server's own limit",
        _ => "too many requests",
    }
}

/// Whether `text` has a whole key's shape (`tg_<env>_` and 50 letters or
/// digits), so the page asks the API for that key's models only once it does.
/// The longest reply the user asked for (`max_tokens`): none when the field is
/// empty, a message when it is not a whole number of tokens.
pub fn parse_longest_reply(text: &str) -> Result<Option<u32>, &'static str> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<u32>() {
        Ok(tokens) if tokens > 0 && u64::from(tokens) <= crate::model_api::MAX_TOKENS_CEILING => {
            Ok(Some(tokens))
        }
        _ => Err("Enter a whole number of tokens from 1 to 1,000,000, or leave it empty."),
    }
}

pub fn looks_like_key(text: &str) -> bool {
    text.strip_prefix("tg_")
        .and_then(|rest| rest.split_once('_'))
        .is_some_and(|(env, body)| {
            !env.is_empty() && body.len() == 50 && body.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

#[component]
pub fn PlaygroundPage() -> impl IntoView {
    view! {
        <Title text="Playground" />
        <SignedInOnly><Playground /></SignedInOnly>
    }
}

const INPUT: &str = "block w-full rounded-md border border-slate-300 px-3 py-2 text-sm shadow-sm focus:border-slate-500 focus:outline-none focus:ring-1 focus:ring-slate-500";
const LABEL: &str = "mb-1 block text-sm font-medium text-slate-700";

#[component]
fn Playground() -> impl IntoView {
    // Each model with its prices, which its option shows.
    let models = Resource::new(|| (), |_| super::plans::list_model_prices());
    let recent = use_context::<RecentKey>().and_then(|RecentKey(k)| k.get_untracked());
    let key = RwSignal::new(recent.unwrap_or_default());
    let model = RwSignal::new(String::new());
    let system = RwSignal::new(String::new());
    // The longest reply, as typed, and why it cannot be sent.
    let longest = RwSignal::new(String::new());
    let longest_error = RwSignal::new(None::<&'static str>);
    let draft = RwSignal::new(String::new());
    let turns = RwSignal::new(Vec::<Turn>::new());
    let streaming = RwSignal::new(false);
    let refusal = RwSignal::new(None::<Refusal>);
    // When the call may be tried again, and the time the page last looked,
    // both in ms since the epoch.
    let countdown = RwSignal::new(None::<f64>);
    let clock = RwSignal::new(0.0);
    let rate = RwSignal::new(RateInfo::default());
    let answered = RwSignal::new(false);
    // The models the pasted key may call, from `GET /v1/models` with that key;
    // until it answers, every model in the table.
    let key_models = RwSignal::new(None::<Vec<String>>);
    // Why Tollgate refused the pasted key when the models were asked for
    // with it (unknown, revoked, expired): said before the first Send.
    let key_refused = RwSignal::new(None::<String>);
    let stop = chat::Stop::new();
    // Leaving the page ends the call in flight: it would otherwise run on,
    // charged in full and holding one of the plan's parallel calls.
    on_cleanup(move || stop.stop());
    // Sending needs the browser code: Send and the fields stay disabled until
    // the page hydrates, which would otherwise empty what was typed before.
    let hydrated = super::forms::hydrated();

    tick_clock(clock);
    chat::follow_key_models(key, key_models, key_refused);
    // A new key's windows are not the last key's.
    Effect::new(move |_| {
        key.track();
        rate.set(RateInfo::default());
    });

    let send = move || {
        let message = draft.get_untracked().trim().to_owned();
        let secret = key.get_untracked().trim().to_owned();
        if message.is_empty() || streaming.get_untracked() {
            return;
        }
        let max_tokens = match parse_longest_reply(&longest.get_untracked()) {
            Ok(max_tokens) => max_tokens,
            Err(problem) => {
                longest_error.set(Some(problem));
                super::forms::focus_by_id("pg-max-tokens");
                return;
            }
        };
        if secret.is_empty() {
            refusal.set(Some(Refusal {
                status: 0,
                code: Some("no_key".into()),
                message: "Paste one of your keys, or create one on the Keys page.".into(),
                retry_after_secs: None,
                no_retry: false,
            }));
            super::forms::focus_by_id("pg-key");
            return;
        }
        refusal.set(None);
        countdown.set(None);
        answered.set(false);
        draft.set(String::new());
        turns.update(|t| t.push(Turn::new("user", message)));
        let request = chat::Request {
            key: secret,
            model: model.get_untracked(),
            system: system.get_untracked(),
            max_tokens,
            history: turns.get_untracked(),
        };
        turns.update(|t| t.push(Turn::new("assistant", String::new())));
        streaming.set(true);
        chat::start(
            request,
            stop,
            chat::Sink {
                turns,
                refusal,
                countdown,
                clock,
                rate,
                streaming,
                answered,
            },
        );
    };

    view! {
        <h1 class="mb-2 text-3xl font-bold text-slate-900">"Playground"</h1>
        <NeedsScript what="The playground" />
        <p class="mb-6 text-slate-600">
            "Chat with a model through the same API your code calls. Your key is never stored: it stays in this page while it is open; "
            <A href="/keys" attr:class="underline">"create one on the Keys page"</A>
            " if you need it."
        </p>
        <div class="grid gap-6 md:grid-cols-3">
            <section class=format!("{CARD} md:col-span-1") aria-label="Settings">
                <div class="mb-4">
                    <label for="pg-key" class=LABEL>"API key"</label>
                    <input id="pg-key" type="password" autocomplete="off" spellcheck="false" placeholder="tg_live_…"
                        class=INPUT
                        disabled=move || !hydrated.get()
                        prop:value=move || key.get()
                        aria-invalid=move || key_refused.with(Option::is_some).then_some("true")
                        aria-describedby=move || key_refused.with(Option::is_some).then_some("pg-key-refused")
                        on:input=move |ev| key.set(event_target_value(&ev)) />
                    <p id="pg-key-refused" class="mt-1 text-sm text-red-700" role="status" data-testid="key-refused">
                        {move || key_refused.get()}
                    </p>
                </div>
                <div class="mb-4">
                    <label for="pg-model" class=LABEL>"Model"</label>
                    <Transition fallback=|| view! { <p class="text-sm text-slate-500">"Loading models…"</p> }>
                        {move || {
                            let for_key = key_models.get();
                            Suspend::new(async move {
                            if for_key.as_ref().is_some_and(Vec::is_empty) {
                                return view! {
                                    <p class="text-sm text-red-700" data-testid="no-models">
                                        "This key may call none of the models. Check its allowed models on the Keys page."
                                    </p>
                                }.into_any();
                            }
                            let priced = models.await.unwrap_or_default();
                            let names = for_key.unwrap_or_else(|| priced.iter().map(|m| m.name.clone()).collect());
                            let current = model.get_untracked();
                            if !names.contains(&current)
                                && let Some(first) = names.first()
                            {
                                model.set(first.clone());
                            }
                            view! {
                                <select id="pg-model" class=INPUT
                                    disabled=move || !hydrated.get()
                                    prop:value=move || model.get()
                                    on:change=move |ev| model.set(event_target_value(&ev))>
                                    {names.into_iter().map(|n| {
                                        // Each option follows the model, so the list can
                                        // change under a chosen model and still show it.
                                        let chosen = n.clone();
                                        let label = match priced.iter().find(|m| m.name == n) {
                                            Some(m) => format!("{n} ({} in, {} out credits per 1k tokens)", m.input_per_1k, m.output_per_1k),
                                            None => n.clone(),
                                        };
                                        view! { <option value=n prop:selected=move || model.get() == chosen>{label}</option> }
                                    }).collect_view()}
                                </select>
                            }.into_any()
                        })}}
                    </Transition>
                </div>
                <div class="mb-4">
                    <label for="pg-system" class=LABEL>"System prompt (optional)"</label>
                    <textarea id="pg-system" rows="4" class=INPUT
                        disabled=move || !hydrated.get()
                        prop:value=move || system.get()
                        on:input=move |ev| system.set(event_target_value(&ev))></textarea>
                </div>
                <div>
                    <label for="pg-max-tokens" class=LABEL>"Longest reply, in tokens (optional)"</label>
                    <input id="pg-max-tokens" type="text" inputmode="numeric" autocomplete="off" class=INPUT
                        placeholder="the model's longest"
                        disabled=move || !hydrated.get()
                        aria-describedby="pg-max-tokens-hint pg-max-tokens-error"
                        aria-invalid=move || longest_error.get().is_some().to_string()
                        prop:value=move || longest.get()
                        on:input=move |ev| {
                            longest.set(event_target_value(&ev));
                            longest_error.set(None);
                        } />
                    <p id="pg-max-tokens-hint" class="mt-1 text-xs text-slate-500">
                        "Sent as max_tokens. Credits are held for the longest reply until the call ends, so a shorter one needs fewer credits and fewer of your tokens a minute."
                    </p>
                    <p id="pg-max-tokens-error" class="mt-1 text-sm text-red-700" data-testid="max-tokens-error">
                        {move || longest_error.get()}
                    </p>
                </div>
            </section>
            <section class=format!("{CARD} md:col-span-2 flex flex-col") aria-label="Conversation">
                <Transcript turns streaming />
                <RefusalPanel refusal countdown clock />
                <form class="mt-4 flex flex-col gap-2" on:submit=move |ev| { ev.prevent_default(); send(); }>
                    <label for="pg-message" class="sr-only">"Message"</label>
                    <textarea id="pg-message" rows="3" placeholder="Ask something…" class=INPUT
                        disabled=move || !hydrated.get()
                        prop:value=move || draft.get()
                        on:input=move |ev| draft.set(event_target_value(&ev))
                        on:keydown=move |ev| {
                            // Not while an input method composes: its Enter picks a word.
                            if ev.key() == "Enter" && !ev.shift_key() && !ev.is_composing() {
                                ev.prevent_default();
                                send();
                            }
                        }></textarea>
                    <div class="flex items-center gap-3">
                        // Each says it cannot be pressed (`aria-disabled`) rather than
                        // being disabled, which would drop the keyboard's focus as a
                        // reply starts or ends; `send` does nothing while one streams.
                        <button type="submit" class=BUTTON
                            disabled=move || !hydrated.get()
                            aria-disabled=move || streaming.get().then_some("true")>"Send"</button>
                        <button type="button"
                            class="rounded-md border border-slate-300 px-4 py-2 text-sm hover:bg-slate-100 disabled:opacity-50 aria-disabled:opacity-50"
                            aria-disabled=move || (!streaming.get()).then_some("true")
                            on:click=move |_| {
                                if streaming.get_untracked() {
                                    stop.stop();
                                }
                            }>"Stop"</button>
                        <RateLine rate clock countdown />
                        <button type="button" class="ml-auto text-sm text-slate-500 underline"
                            on:click=move |_| { stop.stop(); turns.set(Vec::new()); refusal.set(None); countdown.set(None); }>"Clear"</button>
                    </div>
                </form>
            </section>
        </div>
    }
}

/// What the last answer said was left, counting down to the window's reset
/// (when every request is back); after it, the count is history until the
/// next answer. With none left and a refusal's countdown running, it counts
/// to the next request instead, as the countdown does.
#[component]
fn RateLine(
    rate: RwSignal<RateInfo>,
    clock: RwSignal<f64>,
    countdown: RwSignal<Option<f64>>,
) -> impl IntoView {
    move || {
        let r = rate.get();
        r.remaining.map(|remaining| {
            let of = r.limit.map(|l| format!(" of {l}")).unwrap_or_default();
            let now = clock.get();
            let secs = r.reset_at.map(|at| seconds_left(at, now));
            let next = countdown.get().map(|at| seconds_left(at, now));
            let (was, after) = match (remaining, next, secs) {
                (0, Some(0), _) => ("requests were left; one has come back since", String::new()),
                (0, Some(next), _) => (
                    "requests left",
                    format!("; one comes back in {}", wait_text(next)),
                ),
                (_, _, None) => ("requests left", String::new()),
                (_, _, Some(0)) => (
                    "requests were left; the window has reset since",
                    String::new(),
                ),
                (_, _, Some(secs)) => (
                    "requests left",
                    format!(", the window resets in {}", wait_text(secs)),
                ),
            };
            view! {
                <p class="text-sm text-slate-600" data-testid="requests-remaining">
                    <span class="font-semibold">{format!("{remaining}{of}")}</span>
                    {format!(" {was}{after}.")}
                </p>
            }
        })
    }
}

#[component]
fn Transcript(turns: RwSignal<Vec<Turn>>, streaming: RwSignal<bool>) -> impl IntoView {
    view! {
        // Busy while a reply streams in, so a screen reader reads it once, whole.
        <ol class="flex min-h-48 flex-col gap-3" aria-live="polite" aria-busy=move || streaming.get().to_string() data-testid="transcript">
            {move || {
                let all = turns.get();
                if all.is_empty() {
                    return view! { <li class="text-sm text-slate-500">"Send a message to start."</li> }.into_any();
                }
                let last = all.len() - 1;
                all.into_iter().enumerate().map(|(i, turn)| {
                    let mine = turn.role == "user";
                    let typing = !mine && i == last && streaming.get();
                    let left_out = turn.left_out;
                    let note = match (mine, turn.stopped, left_out) {
                        _ if turn.cut_off && mine => Some("(its reply was cut off; not sent again)"),
                        _ if turn.cut_off && turn.charged.is_some() => {
                            Some("(cut off when the call failed; what came is charged; not sent again)")
                        }
                        // No settlement found (yet): a server that died
                        // mid-call gives the hold back whole at its restart.
                        _ if turn.cut_off => {
                            Some("(cut off when the call failed; not sent again; Usage shows its charge)")
                        }
                        (true, true, _) => Some("(stopped before an answer; not sent again)"),
                        (true, false, true) => Some("(not answered; not sent again)"),
                        (false, true, _) if turn.charged.is_some() => Some("(stopped; what came is charged)"),
                        (false, true, _) => Some("(stopped; what came is charged, see Usage)"),
                        (false, false, true) => Some("(no text in the reply)"),
                        (false, false, false) if turn.at_longest => {
                            Some("(cut short at the longest reply)")
                        }
                        (_, false, false) => None,
                    };
                    view! {
                        // As typed: line breaks kept, a long word or address wrapped.
                        <li class=if mine { "self-end max-w-[85%] whitespace-pre-wrap wrap-anywhere rounded-lg bg-slate-900 px-3 py-2 text-sm text-white" } else { "self-start max-w-[85%] whitespace-pre-wrap wrap-anywhere rounded-lg bg-slate-100 px-3 py-2 text-sm text-slate-800" }
                            class:opacity-60=left_out
                            data-role=turn.role
                            data-left-out=left_out.then_some("true")
                            data-stopped=turn.stopped.then_some("true")
                            data-cut-off=turn.cut_off.then_some("true")>
                            {turn.content}
                            {note.map(|note| view! { <span class="ml-2 inline-block whitespace-normal text-xs italic">{note}</span> })}
                            {turn.usage.map(|(prompt, completion)| view! {
                                <span class=if mine { "mt-1 block text-xs text-slate-300" } else { "mt-1 block text-xs text-slate-600" } data-testid="reply-usage">
                                    {format!("{prompt} prompt + {completion} completion tokens")}
                                    {turn.charged.map(|credits| format!(", {credits} credits"))}
                                </span>
                            })}
                            {typing.then(|| view! { <span class="ml-1 motion-safe:animate-pulse" aria-hidden="true">"▍"</span> })}
                        </li>
                    }
                }).collect_view().into_any()
            }}
        </ol>
    }
}

#[component]
fn RefusalPanel(
    refusal: RwSignal<Option<Refusal>>,
    countdown: RwSignal<Option<f64>>,
    clock: RwSignal<f64>,
) -> impl IntoView {
    move || {
        refusal.get().map(|r| {
            let advice = r.advice();
            view! {
                <div class="mt-4 rounded-md border border-red-200 bg-red-50 p-3 text-sm text-red-800" data-testid="refusal">
                    // The alert is read once; the countdown below it changes
                    // every second and is not.
                    <div role="alert">
                        <p class="font-semibold">
                            {r.title()}
                            {(r.status != 0).then(|| format!(" ({})", r.status))}
                        </p>
                        <p class="mt-1">{r.message.clone()}</p>
                        {(!advice.is_empty()).then(|| view! { <p class="mt-1">{advice}</p> })}
                    </div>
                    {move || countdown.get().map(|until| {
                        let secs = seconds_left(until, clock.get());
                        view! {
                            <p class="mt-1 font-semibold" data-testid="retry-countdown">
                                {if secs > 0 { format!("Try again in {}.", wait_text(secs)) } else { "You can try again now.".to_owned() }}
                            </p>
                        }
                    })}
                    // Said once, when the wait is over (the countdown itself is not read).
                    <p class="sr-only" aria-live="polite">
                        {move || countdown.get().is_some_and(|until| seconds_left(until, clock.get()) == 0)
                            .then_some("You can try again now.")}
                    </p>
                </div>
            }
        })
    }
}

/// A wait in words: seconds up to two minutes, then minutes and seconds,
/// then hours and minutes (a day's window can be 15 hours off).
pub fn wait_text(secs: u64) -> String {
    match secs {
        0..=120 => format!("{secs} s"),
        121..=3599 => match secs % 60 {
            0 => format!("{} min", secs / 60),
            rest => format!("{} min {rest} s", secs / 60),
        },
        _ => {
            let minutes = secs.div_ceil(60);
            match minutes % 60 {
                0 => format!("{} h", minutes / 60),
                rest => format!("{} h {rest} min", minutes / 60),
            }
        }
    }
}

/// Whole seconds from `now` until `until` (both ms since the epoch), rounded up.
fn seconds_left(until: f64, now: f64) -> u64 {
    ((until - now) / 1000.0).ceil().max(0.0) as u64
}

/// The time now, in ms since the epoch (0 on the server, which never counts).
fn now_ms() -> f64 {
    #[cfg(feature = "hydrate")]
    return js_sys::Date::now();
    #[cfg(not(feature = "hydrate"))]
    0.0
}

/// Moves `clock` to the time now once a second while the page is open: the
/// countdown is worked out from it, so a tab whose timers the browser slowed
/// shows the right time as soon as it ticks again.
fn tick_clock(clock: RwSignal<f64>) {
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        let tick = move || clock.set(now_ms());
        if let Ok(handle) = set_interval_with_handle(tick, std::time::Duration::from_secs(1)) {
            on_cleanup(move || handle.clear());
        }
    });
    #[cfg(not(feature = "hydrate"))]
    let _ = clock;
}

/// The call itself. It runs only in the browser; on the server the page is
/// rendered without ever sending.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
mod chat {
    use super::{RateInfo, Refusal, Turn};
    use leptos::prelude::*;

    /// Whether a stream chunk answers anything: text, reasoning or tool
    /// calls, or a finish. The first chunk, which only names the role, does
    /// not: a reply stopped after it is stopped before any answer.
    pub fn answers(chunk: &serde_json::Value) -> bool {
        let said = |v: &serde_json::Value| v.as_str().is_some_and(|t| !t.is_empty());
        chunk["choices"].as_array().is_some_and(|choices| {
            choices.iter().any(|choice| {
                let delta = &choice["delta"];
                said(&delta["content"])
                    || said(&delta["reasoning_content"])
                    || said(&delta["reasoning"])
                    || delta["tool_calls"]
                        .as_array()
                        .is_some_and(|t| !t.is_empty())
                    || !choice["finish_reason"].is_null()
            })
        })
    }

    pub struct Request {
        pub key: String,
        pub model: String,
        pub system: String,
        /// The longest reply, when the user set one.
        pub max_tokens: Option<u32>,
        pub history: Vec<Turn>,
    }

    impl Request {
        pub fn body(&self) -> serde_json::Value {
            let mut messages = Vec::new();
            if !self.system.trim().is_empty() {
                messages.push(serde_json::json!({ "role": "system", "content": self.system }));
            }
            messages.extend(
                self.history
                    .iter()
                    .filter(|t| !t.left_out)
                    .map(|t| serde_json::json!({ "role": t.role, "content": t.content })),
            );
            let mut body = serde_json::json!({
                "model": self.model,
                "messages": messages,
                "stream": true,
                "stream_options": { "include_usage": true },
            });
            if let Some(max_tokens) = self.max_tokens {
                body["max_tokens"] = max_tokens.into();
            }
            body
        }
    }

    /// Where a call's progress goes.
    #[derive(Clone, Copy)]
    pub struct Sink {
        pub turns: RwSignal<Vec<Turn>>,
        pub refusal: RwSignal<Option<Refusal>>,
        /// When the call may be tried again, in ms since the epoch.
        pub countdown: RwSignal<Option<f64>>,
        pub clock: RwSignal<f64>,
        pub rate: RwSignal<RateInfo>,
        pub streaming: RwSignal<bool>,
        /// Whether the model has answered anything (a chunk with choices).
        pub answered: RwSignal<bool>,
    }

    impl Sink {
        /// Notes the usage chunk's counts on the reply.
        pub fn counted(&self, usage: &serde_json::Value) {
            let tokens = |name: &str| usage[name].as_u64();
            if let (Some(prompt), Some(completion)) =
                (tokens("prompt_tokens"), tokens("completion_tokens"))
            {
                self.turns.try_update(|t| {
                    if let Some(last) = t.last_mut().filter(|l| l.role == "assistant") {
                        last.usage = Some((prompt, completion));
                    }
                });
            }
        }

        /// Notes the call's `x-request-id` on its reply.
        fn named(&self, request_id: &str) {
            self.turns.try_update(|t| {
                if let Some(last) = t.last_mut().filter(|l| l.role == "assistant") {
                    last.request_id = Some(request_id.to_owned());
                }
            });
        }

        /// Looks up what the last call was charged, as settled, and shows it
        /// on its turn: a whole reply's credits, which its usage chunk does
        /// not say, and a reply stopped or cut off (or its message, when no
        /// answer came: the turn last), which has no usage chunk at all.
        pub fn charge_of_last_call(&self) {
            let Some(request_id) = self
                .turns
                .try_with_untracked(|t| {
                    t.last()
                        .filter(|l| {
                            l.stopped || l.cut_off || (l.role == "assistant" && !l.left_out)
                        })
                        .and_then(|l| l.request_id.clone())
                })
                .flatten()
            else {
                return;
            };
            let turns = self.turns;
            leptos::task::spawn_local(async move {
                let Ok(Some(charge)) = super::charge_of_call(request_id.clone()).await else {
                    return;
                };
                turns.try_update(|t| {
                    if let Some(reply) = t
                        .iter_mut()
                        .find(|l| l.request_id.as_ref() == Some(&request_id))
                    {
                        reply.usage = Some((charge.prompt_tokens, charge.completion_tokens));
                        reply.charged = Some(charge.credits);
                    }
                });
            });
        }

        /// Notes a reply that ended at its longest.
        fn finished(&self, reason: &str) {
            if reason == "length" {
                self.turns.try_update(|t| {
                    if let Some(last) = t.last_mut().filter(|l| l.role == "assistant") {
                        last.at_longest = true;
                    }
                });
            }
        }

        fn append(&self, delta: &str) {
            self.turns.try_update(|t| {
                if let Some(last) = t.last_mut() {
                    last.content.push_str(delta);
                }
            });
        }

        /// The call has ended. With no answer at all (refused, or stopped or
        /// failed before any), its empty reply goes and the message is left
        /// out of later calls; an answer with no text (only reasoning or tool
        /// calls) stays, itself left out. What the user `stopped` is marked.
        pub fn ended(&self, stopped: bool) {
            // `try_`: a call ends after the page is left too, its signals gone.
            let Some(answered) = self.answered.try_get_untracked() else {
                return;
            };
            self.turns.try_update(|t| {
                let Some(reply) = t.last_mut().filter(|l| l.role == "assistant") else {
                    return;
                };
                if answered || !reply.content.is_empty() {
                    reply.left_out |= reply.content.is_empty();
                    reply.stopped |= stopped;
                    return;
                }
                let request_id = t.pop().and_then(|reply| reply.request_id);
                if let Some(asked) = t.last_mut().filter(|l| l.role == "user") {
                    asked.left_out = true;
                    asked.stopped = stopped;
                    // A call stopped once the upstream answered is charged
                    // its prompt: shown on the message, as there is no reply.
                    asked.request_id = request_id;
                }
            });
        }

        fn refuse(&self, refusal: Refusal) {
            self.ended(false);
            self.cut_off();
            // A deadline, not a count: timers in a background tab slow down.
            let now = super::now_ms();
            self.clock.try_set(now);
            self.countdown.try_set(
                refusal
                    .retry_after_secs
                    .filter(|_| !refusal.never_passes())
                    .map(|secs| now + secs as f64 * 1000.0),
            );
            self.refusal.try_set(Some(refusal));
        }

        /// A call that failed with part of its reply on screen: the reply
        /// and its message are marked and left out of later calls.
        pub fn cut_off(&self) {
            self.turns.try_update(|t| {
                let Some(reply) = t
                    .last_mut()
                    .filter(|l| l.role == "assistant" && !l.content.is_empty())
                else {
                    return;
                };
                reply.cut_off = true;
                reply.left_out = true;
                let asked = t.len().checked_sub(2);
                if let Some(asked) = asked
                    .and_then(|i| t.get_mut(i))
                    .filter(|l| l.role == "user")
                {
                    asked.cut_off = true;
                    asked.left_out = true;
                }
            });
        }
    }

    /// Cancels the call in flight: the browser aborts the fetch, so Tollgate
    /// sees the client leave and settles what was streamed.
    #[derive(Clone, Copy)]
    pub struct Stop(StoredValue<u64>);

    impl Stop {
        pub fn new() -> Self {
            Self(StoredValue::new(0))
        }

        pub fn stop(&self) {
            // `try_`: called as the page is torn down too, when the value
            // may already be gone.
            self.0.try_update_value(|generation| *generation += 1);
            #[cfg(feature = "hydrate")]
            browser::abort_current();
        }

        /// Counts the stops so far: a call remembers it as it starts.
        fn generation(&self) -> u64 {
            self.0.get_value()
        }

        /// Whether Stop was pressed (or the page left) since `generation`.
        fn since(&self, generation: u64) -> bool {
            self.0.try_get_value() != Some(generation)
        }
    }

    /// Asks the model API which models `key` may call whenever it changes to
    /// something shaped like a key; an unknown answer leaves every model.
    /// Keeps `models` to what `GET /v1/models` lists for the key in the
    /// field, and `refused` to Tollgate's message when it refuses the key.
    pub fn follow_key_models(
        key: RwSignal<String>,
        models: RwSignal<Option<Vec<String>>>,
        refused: RwSignal<Option<String>>,
    ) {
        #[cfg(feature = "hydrate")]
        Effect::new(move |_| {
            let secret = key.get().trim().to_owned();
            if !super::looks_like_key(&secret) {
                if models.with_untracked(Option::is_some) {
                    models.set(None);
                }
                if refused.with_untracked(Option::is_some) {
                    refused.set(None);
                }
                return;
            }
            leptos::task::spawn_local(async move {
                let answer = browser::models_for(&secret).await;
                // Only for the key still in the field, and the page still open.
                if key
                    .try_get_untracked()
                    .is_some_and(|now| now.trim() == secret)
                {
                    let (names, refusal) = match answer {
                        Ok(names) => (names, None),
                        Err(message) => (None, Some(message)),
                    };
                    models.try_set(names);
                    refused.try_set(refusal);
                }
            });
        });
        #[cfg(not(feature = "hydrate"))]
        let _ = (key, models, refused);
    }

    pub fn start(request: Request, stop: Stop, sink: Sink) {
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            let generation = stop.generation();
            browser::run(request, stop, generation, sink).await;
            let stopped = stop.since(generation);
            sink.ended(stopped);
            sink.streaming.try_set(false);
            // What the call was charged, from its settlement: a usage chunk
            // says tokens only, and a reply stopped or cut off has none.
            sink.charge_of_last_call();
        });
        #[cfg(not(feature = "hydrate"))]
        {
            let _ = (request, stop);
            sink.streaming.set(false);
        }
    }

    #[cfg(feature = "hydrate")]
    mod browser {
        use std::cell::{Cell, RefCell};

        use eventsource_stream::Eventsource;
        use futures::StreamExt;
        use gloo_net::http::{Request as Fetch, Response};
        use leptos::prelude::*;
        use serde_json::Value;
        use wasm_bindgen::JsCast;
        use web_sys::AbortController;

        use super::{Refusal, Request, Sink, Stop};
        use crate::pages::playground::RateInfo;

        thread_local! {
            // The browser is single-threaded: one call in flight per tab,
            // by its number, so that a call ending late (one left running by
            // an earlier visit to the page) never takes a newer call's handle.
            static CURRENT: RefCell<Option<(u64, AbortController)>> = const { RefCell::new(None) };
            static CALLS: Cell<u64> = const { Cell::new(0) };
        }

        /// Clears the handle of call `.0` when the call ends, however it ends,
        /// unless a newer call has taken the slot.
        struct Current(u64);

        impl Drop for Current {
            fn drop(&mut self) {
                CURRENT.with(|c| {
                    let mut current = c.borrow_mut();
                    if current.as_ref().is_some_and(|(id, _)| *id == self.0) {
                        current.take();
                    }
                });
            }
        }

        pub fn abort_current() {
            CURRENT.with(|c| {
                if let Some((_, controller)) = c.borrow_mut().take() {
                    controller.abort();
                }
            });
        }

        fn unreachable(message: impl std::fmt::Display) -> Refusal {
            Refusal {
                status: 0,
                code: None,
                message: message.to_string(),
                retry_after_secs: None,
                no_retry: false,
            }
        }

        fn rate_of(response: &Response, now: f64) -> Option<RateInfo> {
            let headers = response.headers();
            let number = |name: &str| headers.get(name).and_then(|v| v.trim().parse().ok());
            let info = RateInfo {
                limit: number("x-ratelimit-limit-requests"),
                remaining: number("x-ratelimit-remaining-requests"),
                // `0s`: the window is whole (a call refused before it was
                // counted), so there is nothing to count down to.
                reset_at: headers
                    .get("x-ratelimit-reset-requests")
                    .and_then(|v| crate::pages::playground::reset_seconds(&v))
                    .filter(|secs| *secs > 0.0)
                    .map(|secs| now + secs * 1000.0),
            };
            info.remaining.is_some().then_some(info)
        }

        /// Reads `{"error":{…}}` from a refused call.
        async fn refusal_of(response: &Response) -> Refusal {
            let status = response.status();
            let retry_after_secs = response
                .headers()
                .get("retry-after")
                .and_then(|v| v.trim().parse().ok());
            let no_retry = response
                .headers()
                .get("x-should-retry")
                .is_some_and(|v| v.trim() == "false");
            let body: Value = response.json().await.unwrap_or(Value::Null);
            Refusal {
                status,
                code: body["error"]["code"].as_str().map(str::to_owned),
                message: body["error"]["message"]
                    .as_str()
                    .map_or_else(|| response.status_text(), str::to_owned),
                retry_after_secs,
                no_retry,
            }
        }

        /// The model names `GET /v1/models` lists for `key`; `None` when it
        /// cannot be reached or answers otherwise; Tollgate's message when
        /// it refuses the key itself (401, 403).
        pub async fn models_for(key: &str) -> Result<Option<Vec<String>>, String> {
            let Ok(response) = Fetch::get("/v1/models")
                .header("authorization", &format!("Bearer {key}"))
                .send()
                .await
            else {
                return Ok(None);
            };
            let status = response.status();
            let Ok(answer) = response.json::<Value>().await else {
                return Ok(None);
            };
            if matches!(status, 401 | 403) {
                return match answer["error"]["message"].as_str() {
                    Some(message) => Err(message.to_owned()),
                    None => Ok(None),
                };
            }
            if status != 200 {
                return Ok(None);
            }
            Ok(answer["data"].as_array().map(|models| {
                models
                    .iter()
                    .filter_map(|m| m["id"].as_str().map(str::to_owned))
                    .collect()
            }))
        }

        pub async fn run(request: Request, stop: Stop, generation: u64, sink: Sink) {
            let stopped = move || stop.since(generation);
            let controller = AbortController::new().ok();
            let signal = controller.as_ref().map(AbortController::signal);
            let call = CALLS.with(|n| {
                n.set(n.get() + 1);
                n.get()
            });
            CURRENT.with(|c| *c.borrow_mut() = controller.map(|c| (call, c)));
            let _current = Current(call);

            let fetch = Fetch::post("/v1/chat/completions")
                .header("authorization", &format!("Bearer {}", request.key))
                .header("content-type", "application/json")
                .abort_signal(signal.as_ref())
                .body(request.body().to_string());
            let response = match fetch {
                Ok(fetch) => fetch.send().await,
                Err(e) => return sink.refuse(unreachable(e)),
            };
            let response = match response {
                Ok(response) => response,
                Err(_) if stopped() => return,
                Err(e) => return sink.refuse(unreachable(e)),
            };
            let now = crate::pages::playground::now_ms();
            // A call refused before its key was known (a bad key or body)
            // carries the client address's windows, not the plan's the line
            // stands for: the line keeps what it had.
            let key_known = !matches!(response.status(), 400 | 401 | 413);
            if let Some(rate) = rate_of(&response, now).filter(|_| key_known) {
                sink.clock.try_set(now);
                sink.rate.try_set(rate);
            }
            if response.status() == 200
                && let Some(request_id) = response.headers().get("x-request-id")
            {
                sink.named(&request_id);
            }
            if response.status() != 200 {
                let refusal = refusal_of(&response).await;
                // Stopped or cleared while the refusal was read: not shown.
                if stopped() {
                    return;
                }
                return sink.refuse(refusal);
            }
            let Some(body) = response.body() else {
                return sink.refuse(unreachable("the answer had no body"));
            };
            let mut events = wasm_streams::ReadableStream::from_raw(body)
                .into_stream()
                .map(|chunk| {
                    chunk
                        .map(|c| c.unchecked_into::<js_sys::Uint8Array>().to_vec())
                        .map_err(|e| {
                            e.as_string()
                                .unwrap_or_else(|| "the connection closed".into())
                        })
                })
                .eventsource();
            while let Some(event) = events.next().await {
                if stopped() {
                    return;
                }
                let event = match event {
                    Ok(event) => event,
                    Err(_) if stopped() => return,
                    Err(e) => {
                        return sink.refuse(Refusal {
                            code: Some("connection_lost".into()),
                            ..unreachable(format!("The stream broke: {e}."))
                        });
                    }
                };
                if event.data == "[DONE]" {
                    break;
                }
                let Ok(chunk) = serde_json::from_str::<Value>(&event.data) else {
                    continue;
                };
                if let Some(error) = chunk.get("error") {
                    return sink.refuse(Refusal {
                        // A stream has already answered 200; its error event
                        // names the failure, whose status it would have had.
                        status: super::super::status_of_stream_error(error["code"].as_str()),
                        code: error["code"].as_str().map(str::to_owned),
                        message: error["message"]
                            .as_str()
                            .unwrap_or("the stream ended with an error")
                            .to_owned(),
                        retry_after_secs: None,
                        no_retry: false,
                    });
                }
                if super::answers(&chunk) {
                    sink.answered.try_set(true);
                }
                if let Some(delta) = chunk["choices"][0]["delta"]["content"].as_str() {
                    sink.append(delta);
                }
                if let Some(reason) = chunk["choices"][0]["finish_reason"].as_str() {
                    sink.finished(reason);
                }
                if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
                    sink.counted(usage);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_headers_are_read_in_tollgates_and_openais_forms() {
        assert_eq!(reset_seconds("30s"), Some(30.0));
        assert_eq!(reset_seconds("1m30s"), Some(90.0));
        assert_eq!(reset_seconds("6m0s"), Some(360.0));
        assert_eq!(reset_seconds("1h2m"), Some(3720.0));
        assert_eq!(reset_seconds("1.5s"), Some(1.5));
        assert_eq!(reset_seconds("20ms"), Some(0.02));
        for bad in ["", "s", "30", "30x", "-1s", "1m 30s"] {
            assert_eq!(reset_seconds(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_whole_key_is_recognised_and_a_partial_one_is_not() {
        use crate::keys::format::{ApiKey, KeyEnv};
        for env in KeyEnv::ALL {
            let key = ApiKey::generate(env).unwrap();
            assert!(looks_like_key(key.expose()), "{}", key.expose());
            let partial = &key.expose()[..key.expose().len() - 1];
            assert!(!looks_like_key(partial));
        }
        for text in [
            "",
            "tg_",
            "tg_live_",
            "sk-abc",
            "tg_live_!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
        ] {
            assert!(!looks_like_key(text), "{text}");
        }
    }

    #[test]
    fn the_request_streams_with_usage_and_the_system_prompt_first() {
        let request = chat::Request {
            key: "tg_live_x".into(),
            model: "demo".into(),
            system: "Be brief.".into(),
            max_tokens: None,
            history: vec![
                Turn::new("user", "Hi".into()),
                Turn::new("assistant", "Hello".into()),
                Turn::new("user", "Again".into()),
            ],
        };
        let body = request.body();
        assert_eq!(body["model"], "demo");
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"]["include_usage"], true);
        let roles: Vec<&str> = body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["role"].as_str().unwrap())
            .collect();
        assert_eq!(roles, ["system", "user", "assistant", "user"]);
        assert!(body.get("max_tokens").is_none(), "the model's own longest");
        assert!(
            !body.to_string().contains("tg_live_x"),
            "the key goes in a header only"
        );

        let blank = chat::Request {
            system: "  ".into(),
            max_tokens: Some(64),
            ..request
        };
        assert_eq!(blank.body()["messages"][0]["role"], "user");
        assert_eq!(blank.body()["max_tokens"], 64);
    }

    #[test]
    fn the_longest_reply_is_a_whole_number_or_nothing() {
        assert_eq!(parse_longest_reply(""), Ok(None));
        assert_eq!(parse_longest_reply("  "), Ok(None));
        assert_eq!(parse_longest_reply(" 256 "), Ok(Some(256)));
        assert_eq!(parse_longest_reply("1000000"), Ok(Some(1_000_000)));
        for wrong in ["0", "-5", "1.5", "lots", "1000001", "99999999999"] {
            assert!(parse_longest_reply(wrong).is_err(), "{wrong}");
        }
    }

    #[test]
    fn refusals_name_the_limit_and_what_to_do() {
        let refusal = |status, code: Option<&str>| Refusal {
            status,
            code: code.map(str::to_owned),
            message: String::new(),
            retry_after_secs: None,
            no_retry: false,
        };
        assert_eq!(
            refusal(429, Some("requests_per_day")).title(),
            "Rate limit reached: requests per day"
        );
        assert_eq!(
            refusal(429, Some("ip_requests_per_minute")).title(),
            "Rate limit reached: requests per minute from your IP address"
        );
        assert_eq!(
            refusal(429, None).title(),
            "Rate limit reached: too many requests"
        );
        let upstream = refusal(429, Some("upstream_rate_limited"));
        assert_eq!(
            upstream.title(),
            "Rate limit reached: the model server's own limit"
        );
        assert!(upstream.advice().contains("not your plan"));
        assert!(refusal(429, None).advice().contains("Plans page"));
        assert!(
            refusal(402, Some("insufficient_credits"))
                .advice()
                .contains("balance")
        );
        assert!(refusal(403, None).advice().contains("scopes"));
        assert!(
            refusal(403, Some("account_disabled"))
                .advice()
                .contains("admin")
        );
        assert!(
            refusal(401, Some("api_key_used_up"))
                .advice()
                .contains("usage cap")
        );
        assert!(refusal(413, None).advice().contains("Clear"));
        assert_eq!(refusal(0, None).title(), "Tollgate could not be reached");
        assert_eq!(
            refusal(0, Some("connection_lost")).title(),
            "The connection to Tollgate broke"
        );
        assert_eq!(refusal(0, Some("no_key")).title(), "No key yet");
        assert!(
            refusal(413, None)
                .advice()
                .contains("larger than this server takes")
        );
        assert!(
            refusal(429, Some("parallel_requests"))
                .advice()
                .contains("still running")
        );
        // Told not to retry: no wait ends a call over the plan's tokens a
        // minute, nor fixes a model set up wrongly upstream.
        let never = |status, code| Refusal {
            no_retry: true,
            ..refusal(status, code)
        };
        assert!(never(429, Some("tokens_per_minute")).never_passes());
        assert!(
            never(429, Some("tokens_per_minute"))
                .advice()
                .contains("waiting will not help")
        );
        assert!(
            never(502, Some("upstream_error"))
                .advice()
                .contains("will not help")
        );
        // A day's window is told not to retry too (its wait is hours): it
        // still counts down.
        assert!(!never(429, Some("requests_per_day")).never_passes());
        assert!(!refusal(429, Some("tokens_per_minute")).never_passes());
        assert_eq!(status_of_stream_error(Some("server_stopping")), 503);
        assert_eq!(status_of_stream_error(Some("upstream_timeout")), 504);
        assert_eq!(status_of_stream_error(Some("upstream_error")), 502);
    }

    /// Messages whose calls were refused or stopped unanswered stay on
    /// screen but are not sent again.
    #[test]
    fn messages_left_out_are_not_sent_again() {
        let mut refused = Turn::new("user", "Hi".into());
        refused.left_out = true;
        let request = chat::Request {
            key: String::new(),
            model: "demo".into(),
            system: String::new(),
            max_tokens: None,
            history: vec![refused, Turn::new("user", "Hi again".into())],
        };
        let body = request.body();
        assert_eq!(body["messages"].as_array().unwrap().len(), 1);
        assert_eq!(body["messages"][0]["content"], "Hi again");
    }

    fn sink(turns: Vec<Turn>, answered: bool) -> chat::Sink {
        chat::Sink {
            turns: RwSignal::new(turns),
            refusal: RwSignal::new(None),
            countdown: RwSignal::new(None),
            clock: RwSignal::new(0.0),
            rate: RwSignal::new(RateInfo::default()),
            streaming: RwSignal::new(false),
            answered: RwSignal::new(answered),
        }
    }

    /// Stop keeps what came and says so; stopped before anything came, the
    /// message says it was stopped and is not sent again.
    #[test]
    fn what_the_user_stopped_is_marked() {
        let owner = Owner::new();
        owner.set();
        let asked = || Turn::new("user", "Hi".into());

        let part = sink(
            vec![asked(), Turn::new("assistant", "Hello wo".into())],
            true,
        );
        part.ended(true);
        let turns = part.turns.get_untracked();
        assert_eq!(turns.len(), 2);
        assert!(turns[1].stopped && !turns[1].left_out);
        assert_eq!(turns[1].content, "Hello wo");

        let mut unanswered = Turn::new("assistant", String::new());
        unanswered.request_id = Some("req-1".into());
        let nothing = sink(vec![asked(), unanswered], false);
        nothing.ended(true);
        let turns = nothing.turns.get_untracked();
        assert_eq!(turns.len(), 1);
        assert!(turns[0].stopped && turns[0].left_out);
        // Its charge (the prompt, once the upstream answered) is looked up
        // for the message.
        assert_eq!(turns[0].request_id.as_deref(), Some("req-1"));

        let whole = sink(vec![asked(), Turn::new("assistant", "Hello.".into())], true);
        whole.ended(false);
        let turns = whole.turns.get_untracked();
        assert!(!turns[1].stopped && !turns[1].left_out);
    }

    #[test]
    fn only_a_chunk_with_something_in_it_answers() {
        use serde_json::json;
        let role_only = json!({ "choices": [{ "index": 0, "delta": { "role": "assistant", "content": "" }, "finish_reason": null }] });
        assert!(!chat::answers(&role_only));
        assert!(!chat::answers(
            &json!({ "choices": [], "usage": { "prompt_tokens": 1 } })
        ));
        let word = json!({ "choices": [{ "delta": { "content": "Hi" }, "finish_reason": null }] });
        assert!(chat::answers(&word));
        let thinking = json!({ "choices": [{ "delta": { "reasoning_content": "Hmm" } }] });
        assert!(chat::answers(&thinking));
        let tool = json!({ "choices": [{ "delta": { "tool_calls": [{ "index": 0 }] } }] });
        assert!(chat::answers(&tool));
        let finished = json!({ "choices": [{ "delta": {}, "finish_reason": "content_filter" }] });
        assert!(chat::answers(&finished));
    }

    #[test]
    fn the_usage_chunk_is_noted_on_the_reply() {
        let owner = Owner::new();
        owner.set();
        let call = sink(
            vec![
                Turn::new("user", "Hi".into()),
                Turn::new("assistant", "Hello.".into()),
            ],
            true,
        );
        call.counted(&serde_json::json!({ "prompt_tokens": 9 }));
        assert_eq!(call.turns.get_untracked()[1].usage, None, "half a usage");
        call.counted(
            &serde_json::json!({ "prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12 }),
        );
        assert_eq!(call.turns.get_untracked()[1].usage, Some((9, 3)));
        assert_eq!(call.turns.get_untracked()[0].usage, None);
    }

    /// A call that fails after part of its reply came: the reply and its
    /// message are marked cut off and not sent again; a failure before any
    /// reply marks nothing.
    #[test]
    fn a_reply_cut_off_by_a_failure_is_marked_and_not_sent_again() {
        let owner = Owner::new();
        owner.set();
        let mut reply = Turn::new("assistant", "Hello from".into());
        reply.request_id = Some("req-1".into());
        let turns = vec![
            Turn::new("user", "Earlier".into()),
            Turn::new("assistant", "Answer".into()),
            Turn::new("user", "Hi".into()),
            reply,
        ];
        let failed = sink(turns, true);
        failed.cut_off();
        let turns = failed.turns.get_untracked();
        assert!(turns[3].cut_off && turns[3].left_out);
        assert!(turns[2].cut_off && turns[2].left_out);
        assert!(!turns[1].cut_off && !turns[1].left_out);
        let request = chat::Request {
            key: String::new(),
            model: "demo".into(),
            system: String::new(),
            max_tokens: None,
            history: [turns, vec![Turn::new("user", "Again".into())]].concat(),
        };
        let sent: Vec<String> = request.body()["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(sent, ["Earlier", "Answer", "Again"]);

        let unanswered = sink(
            vec![
                Turn::new("user", "Hi".into()),
                Turn::new("assistant", String::new()),
            ],
            false,
        );
        unanswered.cut_off();
        assert!(unanswered.turns.get_untracked().iter().all(|t| !t.cut_off));
    }

    #[test]
    fn waits_are_said_in_seconds_minutes_or_hours() {
        assert_eq!(wait_text(7), "7 s");
        assert_eq!(wait_text(120), "120 s");
        assert_eq!(wait_text(121), "2 min 1 s");
        assert_eq!(wait_text(600), "10 min");
        assert_eq!(wait_text(3600), "1 h");
        assert_eq!(wait_text(55_277), "15 h 22 min");
    }

    #[test]
    fn the_countdown_is_worked_out_from_its_deadline() {
        assert_eq!(seconds_left(10_000.0, 0.0), 10);
        assert_eq!(seconds_left(10_000.0, 9_001.0), 1);
        assert_eq!(seconds_left(10_000.0, 10_000.0), 0);
        assert_eq!(seconds_left(10_000.0, 99_000.0), 0);
    }
}
