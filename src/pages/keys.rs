//! `/keys`: the user's API keys. Create (with every restriction), see a new
//! secret exactly once, revoke with confirmation, rotate with a grace period,
//! and act on several keys at once.

use std::collections::BTreeSet;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;
use serde::{Deserialize, Serialize};

use super::{
    forms::{
        BUTTON, CARD, FormAlert, FormStatus, LastError, LastOutcome, NeedsScript, ScrollRegion,
        SecretToCopy, Submit, focus_by_id, focus_first_invalid, hydrated, last_error,
        record_outcome,
    },
    nav::SignedInOnly,
    playground::RecentKey,
};
use crate::{
    accounts::types::FormError,
    keys::types::{ADMIN_SCOPE, CreateKey, IssuedKey, KeyView, PlanView, SCOPES},
};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeysOverview {
    pub keys: Vec<KeyView>,
    pub plan: PlanView,
    pub base_url: String,
    /// The model the empty page's sample calls: the first the plan allows.
    pub sample_model: String,
}

#[cfg(feature = "ssr")]
fn key_failure(error: crate::keys::service::KeyError) -> FormError {
    use crate::{keys::service::KeyError, server_ctx};
    use axum::http::StatusCode;
    let message = error.message();
    match error {
        KeyError::Invalid(fields) => {
            server_ctx::set_status(StatusCode::UNPROCESSABLE_ENTITY, None);
            FormError {
                fields,
                ..FormError::new("Some fields need attention.")
            }
        }
        KeyError::DailyLimit { .. } => {
            server_ctx::set_status(StatusCode::TOO_MANY_REQUESTS, None);
            FormError::new(message)
        }
        KeyError::ActiveLimit { .. } => {
            server_ctx::set_status(StatusCode::CONFLICT, None);
            FormError::new(message)
        }
        KeyError::NotFound => {
            server_ctx::set_status(StatusCode::NOT_FOUND, None);
            FormError::new(message)
        }
        KeyError::BeyondCaller { .. } => {
            server_ctx::set_status(StatusCode::FORBIDDEN, None);
            FormError::new(message)
        }
        KeyError::Internal(detail) => server_ctx::internal(detail),
    }
}

#[server(endpoint = "keys")]
pub async fn get_keys_overview() -> Result<KeysOverview, FormError> {
    use crate::{keys::service, server_ctx};
    let (state, _, user) = server_ctx::signed_in_user().await?;
    let keys = service::list(&state.store, user.id)
        .await
        .map_err(key_failure)?;
    let plan = state
        .store
        .plan_of_user(user.id)
        .await
        .map_err(server_ctx::internal)?;
    let models = &state.gateway.models;
    let allowed = plan.allowed_models();
    let sample_model = models
        .iter()
        .find(|m| allowed.as_ref().is_none_or(|names| names.contains(&m.name)))
        .unwrap_or(models.default_model())
        .name
        .clone();
    Ok(KeysOverview {
        keys,
        plan: service::plan_view(&plan, plan.id),
        base_url: state.public_url.to_string(),
        sample_model,
    })
}

#[server(endpoint = "keys/create", input = server_fn::codec::Json)]
pub async fn create_api_key(input: CreateKey) -> Result<IssuedKey, FormError> {
    use crate::{keys::service, request_meta::RequestMeta, server_ctx};
    let (state, _, user) = server_ctx::signed_in_user().await?;
    service::create(
        &state.store,
        &state.key_hasher,
        &RequestMeta::current(),
        &state.gateway.models,
        user.id,
        &input,
        None,
    )
    .await
    .map_err(key_failure)
}

#[server(endpoint = "keys/revoke", input = server_fn::codec::Json)]
pub async fn revoke_api_keys(ids: Vec<i64>) -> Result<u64, FormError> {
    use crate::{keys::service, request_meta::RequestMeta, server_ctx};
    let (state, _, user) = server_ctx::signed_in_user().await?;
    service::revoke(&state.store, &RequestMeta::current(), user.id, &ids)
        .await
        .map_err(key_failure)
}

#[server(endpoint = "keys/rotate", input = server_fn::codec::Json)]
pub async fn rotate_api_keys(
    ids: Vec<i64>,
    grace_seconds: i64,
) -> Result<Vec<IssuedKey>, FormError> {
    use crate::{keys::service, request_meta::RequestMeta, server_ctx};
    let (state, _, user) = server_ctx::signed_in_user().await?;
    service::rotate_many(
        &state.store,
        &state.key_hasher,
        &RequestMeta::current(),
        user.id,
        &ids,
        grace_seconds,
    )
    .await
    .map_err(key_failure)
}

#[server(endpoint = "keys/end-grace", input = server_fn::codec::Json)]
pub async fn end_key_grace(id: i64) -> Result<KeyView, FormError> {
    use crate::{keys::service, request_meta::RequestMeta, server_ctx};
    let (state, _, user) = server_ctx::signed_in_user().await?;
    service::end_grace(&state.store, &RequestMeta::current(), user.id, id)
        .await
        .map_err(key_failure)
}

#[component]
pub fn KeysPage() -> impl IntoView {
    view! {
        <Title text="API keys" />
        <SignedInOnly><KeysManager /></SignedInOnly>
    }
}

#[component]
fn KeysManager() -> impl IntoView {
    let create = ServerAction::<CreateApiKey>::new();
    let revoke = ServerAction::<RevokeApiKeys>::new();
    let rotate = ServerAction::<RotateApiKeys>::new();
    let end_grace = ServerAction::<EndKeyGrace>::new();
    let done = [
        super::forms::completions(create.value()),
        super::forms::completions(revoke.value()),
        super::forms::completions(rotate.value()),
        super::forms::completions(end_grace.value()),
    ];
    let overview = Resource::new(move || done.map(|d| d.get()), |_| get_keys_overview());
    // Secrets to show once; cleared when the dialog is closed. A new secret
    // joins those not yet saved, replacing only its own key's earlier one.
    let fresh = RwSignal::new(Vec::<IssuedKey>::new());
    let show = move |issued: Vec<IssuedKey>| {
        fresh.update(|shown| {
            shown.retain(|old| issued.iter().all(|new| new.key.id != old.key.id));
            shown.extend(issued);
        });
    };
    let recent = expect_context::<RecentKey>();
    Effect::new(move |_| {
        if let Some(Ok(issued)) = create.value().get() {
            show(vec![issued]);
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(issued)) = rotate.value().get() {
            show(issued);
        }
    });
    // Outlives the key table, which is built again after every action.
    let grace = RwSignal::new("0".to_owned());
    Effect::new(move |_| fresh.with(|issued| recent.remember(issued)));
    // Only the last to finish: a refused rotation's message would otherwise
    // stay on after a later revoke went through.
    let outcome = LastOutcome::new(None);
    record_outcome(outcome, revoke.value(), "Revoked.");
    record_outcome(outcome, rotate.value(), "Rotated.");
    record_outcome(
        outcome,
        end_grace.value(),
        "The old secret no longer works.",
    );
    let action_error = Signal::derive(move || outcome.get().and_then(Result::err));
    let action_done = move || outcome.get().and_then(Result::ok);

    view! {
        // Focus comes back here when a dialog above the table closes.
        <h1 id="keys-title" tabindex="-1" class="mb-2 text-3xl font-bold text-slate-900">"API keys"</h1>
        <NeedsScript what="Managing keys" />
        <NewKeyDialog fresh />
        <FormAlert error=action_error />
        <FormStatus message=Signal::derive(action_done) />
        <Transition fallback=|| view! { <p class="text-slate-500">"Loading keys…"</p> }>
            {move || Suspend::new(async move {
                match overview.await {
                    Ok(data) => view! {
                        <p class="mb-6 text-slate-600">
                            "Your plan, " <A href="/plans" attr:class="font-medium underline">{data.plan.name.clone()}</A>
                            {format!(", allows {} active keys.", data.plan.max_active_keys)}
                        </p>
                        <KeyTable keys=data.keys.clone() base_url=data.base_url.clone() sample_model=data.sample_model.clone() revoke rotate end_grace grace />
                    }.into_any(),
                    Err(e) => view! { <p role="alert" class="text-red-700">{e.message}</p> }.into_any(),
                }
            })}
        </Transition>
        <CreateKeyForm create />
    }
}

/// The show-once panel for new secrets.
#[component]
fn NewKeyDialog(fresh: RwSignal<Vec<IssuedKey>>) -> impl IntoView {
    // A secret shown once must not be missed: focus goes to it as it opens
    // (or gains a key).
    Effect::watch(
        move || fresh.with(Vec::len),
        |shown, before, _| {
            if *shown > before.copied().unwrap_or(0) {
                focus_by_id("new-key-dialog");
            }
        },
        false,
    );
    move || {
        let issued = fresh.get();
        (!issued.is_empty()).then(|| {
            view! {
                <div id="new-key-dialog" tabindex="-1" role="dialog" aria-label="Your new key" class="mb-6 rounded-lg border-2 border-amber-400 bg-amber-50 p-5">
                    <h2 class="text-lg font-semibold">"Copy your new key now"</h2>
                    <p class="mt-1 text-sm text-slate-700">"It is shown only this once. Tollgate keeps only a hash of it."</p>
                    {issued.into_iter().map(|k| view! {
                        <div class="mt-3">
                            <p class="text-sm font-medium">{k.key.name.clone()}</p>
                            <SecretToCopy secret=k.secret testid="new-key-secret" />
                        </div>
                    }).collect_view()}
                    <button class=format!("{BUTTON} mt-4") on:click=move |_| {
                        fresh.set(Vec::new());
                        focus_by_id("keys-title");
                    }>"I have saved it"</button>
                </div>
            }
        })
    }
}

#[component]
fn KeyTable(
    keys: Vec<KeyView>,
    base_url: String,
    sample_model: String,
    revoke: ServerAction<RevokeApiKeys>,
    rotate: ServerAction<RotateApiKeys>,
    end_grace: ServerAction<EndKeyGrace>,
    grace: RwSignal<String>,
) -> impl IntoView {
    if keys.is_empty() {
        return view! {
            <div class=CARD data-testid="keys-empty">
                <h2 class="text-lg font-semibold">"No keys yet"</h2>
                <p class="mt-2 text-sm text-slate-600">
                    "A key lets a program call the models through Tollgate, counted against your plan. "
                    "Create one below, then call the API with it:"
                </p>
                <pre tabindex="0" class="mt-3 overflow-x-auto rounded bg-slate-900 p-3 text-sm text-slate-100">{
                    super::home::curl_sample(&base_url, &sample_model)
                }</pre>
            </div>
        }
        .into_any();
    }
    let hydrated = hydrated();
    // The playground stops offering a key once it is revoked.
    let recent = expect_context::<RecentKey>();
    // Each key's id, name and display, for the revoked ones the playground
    // forgets and the keys a confirmation names.
    let displays = StoredValue::new(
        keys.iter()
            .map(|key| (key.id, key.name.clone(), key.display.clone()))
            .collect::<Vec<_>>(),
    );
    // One key action at a time: a second Rotate sent before the first answers
    // would put the never-seen secret in the grace slot, and the deployed one
    // would stop at once.
    let busy =
        move || rotate.pending().get() || revoke.pending().get() || end_grace.pending().get();
    let ready = move || hydrated.get() && !busy();
    let selected = RwSignal::new(BTreeSet::<i64>::new());
    // The keys a revocation, or a rotation without grace (the old secrets
    // stop at once), waits for a second click on.
    let confirming = RwSignal::new(None::<(Confirm, Vec<i64>)>);
    // The id of the button that asked, for focus to go back to on Cancel.
    let asked_from = StoredValue::new(String::new());
    let ask = move |what: Confirm, ids: Vec<i64>, from: String| {
        asked_from.set_value(from);
        confirming.set(Some((what, ids)));
        focus_by_id("confirm-cancel");
    };
    let cancel = move || {
        confirming.set(None);
        focus_by_id(asked_from.get_value());
    };
    let grace_secs = move || grace.get().parse::<i64>().unwrap_or(0);
    let rotate_now = move |ids: Vec<i64>| {
        rotate.dispatch(RotateApiKeys {
            ids,
            grace_seconds: grace_secs(),
        });
        selected.set(BTreeSet::new());
    };
    let ask_to_rotate = move |ids: Vec<i64>, from: String| {
        if grace_secs() == 0 {
            ask(Confirm::Rotate, ids, from);
        } else {
            rotate_now(ids);
        }
    };
    let active_ids: Vec<i64> = keys
        .iter()
        .filter(|k| k.status == "active")
        .map(|k| k.id)
        .collect();
    let (active_count, every_active) = (active_ids.len(), !active_ids.is_empty());

    view! {
        <div class=CARD>
            <div class="mb-3 flex flex-wrap items-center gap-3 text-sm">
                <label class="flex items-center gap-2">
                    "Rotation grace period"
                    <select class="rounded border border-slate-300 px-2 py-1" on:change=move |ev| grace.set(event_target_value(&ev)) prop:value=move || grace.get()>
                        <option value="0">"none: the old secret stops now"</option>
                        <option value="3600">"1 hour"</option>
                        <option value="86400">"24 hours"</option>
                    </select>
                </label>
                <span class="flex-1"></span>
                <button id="rotate-selected"
                    class="rounded-md border border-slate-300 px-3 py-1 disabled:opacity-50"
                    disabled=move || selected.with(BTreeSet::is_empty) || busy()
                    on:click=move |_| ask_to_rotate(selected.get().into_iter().collect(), "rotate-selected".into())
                >
                    {move || format!("Rotate selected ({})", selected.with(BTreeSet::len))}
                </button>
                <button id="revoke-selected"
                    class="rounded-md border border-red-300 px-3 py-1 text-red-700 disabled:opacity-50"
                    disabled=move || selected.with(BTreeSet::is_empty) || busy()
                    on:click=move |_| ask(Confirm::Revoke, selected.get().into_iter().collect(), "revoke-selected".into())
                >
                    {move || format!("Revoke selected ({})", selected.with(BTreeSet::len))}
                </button>
            </div>
            {move || confirming.get().map(|(what, ids)| {
                // The keys asked about by name, so the question is not read
                // away from the row that asked it.
                let named = displays.with_value(|all| {
                    all.iter()
                        .filter(|(id, ..)| ids.contains(id))
                        .map(|(_, name, display)| format!("\u{201c}{name}\u{201d} ({display})"))
                        .collect::<Vec<_>>()
                        .join(", ")
                });
                let (keys, them, old_secrets) = if ids.len() == 1 {
                    (format!("the key {named}"), "it", "Its old secret stops")
                } else {
                    (format!("{} keys: {named}", ids.len()), "them", "Their old secrets stop")
                };
                let (label, question, verb) = match what {
                    Confirm::Revoke => (
                        "Confirm revocation",
                        format!("Revoke {keys}? Programs using {them} stop working on their next request."),
                        "Revoke",
                    ),
                    Confirm::Rotate => (
                        "Confirm rotation",
                        format!("Rotate {keys} with no grace period? {old_secrets} working at once, so programs using {them} fail until they get the new one."),
                        "Rotate",
                    ),
                    Confirm::EndGrace => (
                        "Confirm ending the grace period",
                        "Stop the old secret now? Programs still using it fail until they get the new one.".to_owned(),
                        "End now",
                    ),
                };
                view! {
                    <div role="alertdialog" aria-label=label aria-describedby="confirm-question"
                        class="mb-3 flex flex-wrap items-center gap-3 rounded-md border border-red-200 bg-red-50 p-3 text-sm text-red-800"
                        on:keydown=move |ev| if ev.key() == "Escape" { cancel() }>
                        <span id="confirm-question" class="flex-1">{question}</span>
                        <button class="rounded-md bg-red-700 px-3 py-1 text-white" on:click=move |_| {
                            match what {
                                Confirm::Revoke => {
                                    displays.with_value(|all| {
                                        recent.forget_revoked(all.iter().filter(|(id, ..)| ids.contains(id)).map(|(.., display)| display.as_str()));
                                    });
                                    revoke.dispatch(RevokeApiKeys { ids: ids.clone() });
                                    selected.set(BTreeSet::new());
                                }
                                Confirm::Rotate => rotate_now(ids.clone()),
                                Confirm::EndGrace => {
                                    for &id in &ids {
                                        end_grace.dispatch(EndKeyGrace { id });
                                    }
                                }
                            }
                            confirming.set(None);
                            focus_by_id("keys-title");
                        }>{verb}</button>
                        <button id="confirm-cancel" class="rounded-md border border-slate-300 bg-white px-3 py-1 text-slate-700" on:click=move |_| cancel()>"Cancel"</button>
                    </div>
                }
            })}
            <ScrollRegion label="Your keys">
            <table class="w-full text-left text-sm">
                <thead class="text-slate-500">
                    <tr>
                        <th class="py-2">
                            <input type="checkbox" aria-label="Select all active keys"
                                // Follows the selection, which an action empties.
                                prop:checked=move || every_active && selected.with(|s| s.len() == active_count)
                                on:change=move |ev| {
                                    let all = event_target_checked(&ev);
                                    selected.set(if all { active_ids.iter().copied().collect() } else { BTreeSet::new() });
                                } />
                        </th>
                        <th>"Name"</th><th>"Key"</th><th>"Scopes"</th><th>"Limits"</th><th>"Created"</th><th>"Last used"</th><th>"Expires"</th><th>"Status"</th><th class="relative"><span class="sr-only">"Actions"</span></th>
                    </tr>
                </thead>
                <tbody>
                    {keys.into_iter().map(|k| {
                        let id = k.id;
                        let active = k.status == "active";
                        let date = |t: &Option<String>| t.as_deref().and_then(|t| t.get(..10)).unwrap_or("—").to_owned();
                        view! {
                            <tr class="border-t border-slate-100" data-testid=format!("key-row-{}", k.name)>
                                <td class="py-2">
                                    <input type="checkbox" aria-label=format!("Select {}", k.name) disabled=!active
                                        prop:checked=move || selected.with(|s| s.contains(&id))
                                        on:change=move |ev| {
                                            let on = event_target_checked(&ev);
                                            selected.update(|s| { if on { s.insert(id); } else { s.remove(&id); } });
                                        } />
                                </td>
                                <td>{k.name.clone()} <span class="ml-1 rounded bg-slate-100 px-1.5 text-xs text-slate-600">{k.env.clone()}</span></td>
                                <td><code class="text-xs">{k.display.clone()}</code></td>
                                <td>{k.scopes.join(", ")}</td>
                                <td class="text-xs text-slate-600" data-testid="key-limits">{key_limits(&k)}</td>
                                <td class="whitespace-nowrap pr-3">{date(&Some(k.created_at.clone()))}</td>
                                <td class="whitespace-nowrap pr-3">{date(&k.last_used_at)}</td>
                                <td class="whitespace-nowrap pr-3">{date(&k.expires_at)}</td>
                                <td data-testid="key-status">
                                    {k.status.clone()}
                                    {k.grace_until.clone().map(|until| view! {
                                        <span class="block min-w-40 text-xs text-amber-700" data-testid="key-grace">
                                            {format!("old secret works until {}", utc_minute(&until))}
                                            " "
                                            <button id=format!("end-grace-{id}") class="underline disabled:opacity-50" disabled=move || !ready()
                                                aria-label=format!("End now: the old secret of {}", k.name)
                                                on:click=move |_| ask(Confirm::EndGrace, vec![id], format!("end-grace-{id}"))>"End now"</button>
                                        </span>
                                    })}
                                </td>
                                <td class="whitespace-nowrap text-right">
                                    {active.then(|| view! {
                                        <button id=format!("rotate-key-{id}") class="mr-2 rounded border border-slate-300 px-2 py-1 disabled:opacity-50" disabled=move || !ready()
                                            aria-label=format!("Rotate {}", k.name)
                                            on:click=move |_| ask_to_rotate(vec![id], format!("rotate-key-{id}"))>"Rotate"</button>
                                        <button id=format!("revoke-key-{id}") class="rounded border border-red-300 px-2 py-1 text-red-700 disabled:opacity-50" disabled=move || !ready()
                                            aria-label=format!("Revoke {}", k.name)
                                            on:click=move |_| ask(Confirm::Revoke, vec![id], format!("revoke-key-{id}"))>"Revoke"</button>
                                    })}
                                </td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
            </ScrollRegion>
        </div>
    }
    .into_any()
}

/// `2026-12-07T02:15:09.123Z` as `2026-12-07 02:15 UTC`.
fn utc_minute(stamp: &str) -> String {
    match (stamp.get(..10), stamp.get(11..16)) {
        (Some(day), Some(time)) => format!("{day} {time} UTC"),
        _ => stamp.to_owned(),
    }
}

/// A key's restrictions in a few words: what it may call, from where, and
/// how many uses it has had of how many; "none" for an unrestricted key.
fn key_limits(key: &KeyView) -> String {
    let list = |label: &str, items: &Option<Vec<String>>| {
        items
            .as_ref()
            .filter(|items| !items.is_empty())
            .map(|items| format!("{label} {}", items.join(", ")))
    };
    let parts: Vec<String> = [
        list("models:", &key.allowed_models),
        list("from:", &key.ip_allowlist),
        list("sites:", &key.referrer_domains),
        key.usage_cap
            .map(|cap| format!("{} of {cap} uses", key.usage_count)),
    ]
    .into_iter()
    .flatten()
    .collect();
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(" · ")
    }
}

/// What the confirmation bar asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Confirm {
    Revoke,
    Rotate,
    EndGrace,
}

fn lines(text: &str) -> Option<Vec<String>> {
    let items: Vec<String> = text
        .split(['\n', ','])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    (!items.is_empty()).then_some(items)
}

#[component]
fn CreateKeyForm(create: ServerAction<CreateApiKey>) -> impl IntoView {
    let error: LastError = last_error(create.value());
    focus_first_invalid(create.value(), "create-key");
    let name = RwSignal::new("My key".to_owned());
    let env = RwSignal::new("live".to_owned());
    let scopes = RwSignal::new(BTreeSet::from(["chat".to_owned()]));
    let me = expect_context::<super::nav::UserResource>();
    let models = RwSignal::new(String::new());
    let expires = RwSignal::new(String::new());
    let cap = RwSignal::new(String::new());
    let ips = RwSignal::new(String::new());
    let referrers = RwSignal::new(String::new());
    // A key made, the form starts over: a second key made at once took the
    // first one's environment and restrictions without a word.
    Effect::watch(
        move || matches!(create.value().get(), Some(Ok(_))),
        move |made, _, _| {
            if *made {
                name.set("My key".to_owned());
                env.set("live".to_owned());
                scopes.set(BTreeSet::from(["chat".to_owned()]));
                for text in [models, expires, cap, ips, referrers] {
                    text.set(String::new());
                }
            }
        },
        false,
    );
    let field_error =
        move |field: &'static str| move || error.get().and_then(|e| e.field_error(field));
    // Set on a field the last refusal named, so it is read with its message.
    let invalid = move |field: &'static str| {
        move || {
            error
                .get()
                .and_then(|e| e.field_error(field))
                .map(|_| "true")
        }
    };
    let input = "block w-full rounded-md border border-slate-300 px-3 py-2 text-sm";
    let label = "mb-1 block text-sm font-medium text-slate-700";

    let ready = hydrated();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let cap_value = cap.get();
        create.dispatch(CreateApiKey {
            input: CreateKey {
                name: name.get(),
                env: Some(env.get()),
                scopes: Some(scopes.get().into_iter().collect()),
                allowed_models: lines(&models.get()),
                expires_at: Some(expires.get()).filter(|s| !s.is_empty()),
                ttl_seconds: None,
                usage_cap: if cap_value.trim().is_empty() {
                    None
                } else {
                    Some(cap_value.trim().parse().unwrap_or(-1))
                },
                ip_allowlist: lines(&ips.get()),
                referrer_domains: lines(&referrers.get()),
            },
        });
    };

    view! {
        <section id="create-key" class=format!("{CARD} mt-8")>
            <h2 class="mb-4 text-lg font-semibold">"Create a key"</h2>
            <FormAlert error />
            <form on:submit=submit>
                // Disabled until the page's code has loaded (see `hydrated`).
                <fieldset class="grid gap-4 sm:grid-cols-2" disabled=move || !ready.get()>
                <div>
                    <label class=label for="key-name">"Name"</label>
                    <input id="key-name" aria-describedby="key-name-error" aria-invalid=invalid("name") class=input bind:value=name />
                    <p id="key-name-error" class="mt-1 text-sm text-red-700">{field_error("name")}</p>
                </div>
                <div>
                    <label class=label for="key-env">"Environment"</label>
                    <select id="key-env" class=input on:change=move |ev| env.set(event_target_value(&ev)) prop:value=move || env.get()>
                        <option value="live">"live"</option>
                        <option value="test">"test"</option>
                        <option value="staging">"staging"</option>
                        <option value="dev">"dev"</option>
                    </select>
                </div>
                <fieldset class="sm:col-span-2">
                    <legend class=label>"Scopes"</legend>
                    <div class="flex flex-wrap gap-x-4 gap-y-2 text-sm">
                        {SCOPES.into_iter().map(|scope| view! {
                            <label class="flex items-center gap-1">
                                <input type="checkbox" aria-describedby="key-scopes-error" aria-invalid=invalid("scopes")
                                    prop:checked=move || scopes.with(|s| s.contains(scope))
                                    on:change=move |ev| {
                                        let on = event_target_checked(&ev);
                                        scopes.update(|s| { if on { s.insert(scope.to_owned()); } else { s.remove(scope); } });
                                    } />
                                {scope}
                            </label>
                        }).collect_view()}
                        <Transition fallback=|| ()>
                            {move || Suspend::new(async move {
                                let me = me.await;
                                me.ok().flatten().is_some_and(|u| u.is_admin).then(|| view! {
                                    <label class="flex items-center gap-1" title="Lets the key call the admin API">
                                        <input type="checkbox"
                                            prop:checked=move || scopes.with(|s| s.contains(ADMIN_SCOPE))
                                            on:change=move |ev| {
                                                let on = event_target_checked(&ev);
                                                scopes.update(|s| { if on { s.insert(ADMIN_SCOPE.to_owned()); } else { s.remove(ADMIN_SCOPE); } });
                                            } />
                                        {ADMIN_SCOPE}
                                    </label>
                                }.into_any())
                            })}
                        </Transition>
                    </div>
                    <p id="key-scopes-error" class="mt-1 text-sm text-red-700">{field_error("scopes")}</p>
                </fieldset>
                <div>
                    <label class=label for="key-models">"Allowed models"</label>
                    <input id="key-models" aria-describedby="key-models-hint key-models-error" aria-invalid=invalid("allowed_models") class=input placeholder="all models on your plan" bind:value=models />
                    <p id="key-models-hint" class="mt-1 text-xs text-slate-500">"Comma-separated. Empty allows every model your plan has."</p>
                    <p id="key-models-error" class="mt-1 text-sm text-red-700">{field_error("allowed_models")}</p>
                </div>
                <div>
                    <label class=label for="key-expires">"Expires"</label>
                    <input id="key-expires" aria-describedby="key-expires-hint key-expires-error" aria-invalid=invalid("expires_at") type="date" class=input bind:value=expires />
                    <p id="key-expires-hint" class="mt-1 text-xs text-slate-500">"Empty: never. The key works until that day ends (UTC)."</p>
                    <p id="key-expires-error" class="mt-1 text-sm text-red-700">{field_error("expires_at")}</p>
                </div>
                <div>
                    <label class=label for="key-cap">"Usage cap (requests)"</label>
                    <input id="key-cap" aria-describedby="key-cap-hint key-cap-error" aria-invalid=invalid("usage_cap") type="number" min="1" class=input placeholder="unlimited" bind:value=cap />
                    <p id="key-cap-hint" class="mt-1 text-xs text-slate-500">"1 makes a one-time key."</p>
                    <p id="key-cap-error" class="mt-1 text-sm text-red-700">{field_error("usage_cap")}</p>
                </div>
                <div>
                    <label class=label for="key-ips">"IP allowlist"</label>
                    <textarea id="key-ips" aria-describedby="key-ips-hint key-ips-error" aria-invalid=invalid("ip_allowlist") rows="2" class=input placeholder="any address" bind:value=ips></textarea>
                    <p id="key-ips-hint" class="mt-1 text-xs text-slate-500">"Addresses or CIDR ranges, one per line (IPv4 or IPv6)."</p>
                    <p id="key-ips-error" class="mt-1 text-sm text-red-700">{field_error("ip_allowlist")}</p>
                </div>
                <div class="sm:col-span-2">
                    <label class=label for="key-referrers">"Allowed referrer domains"</label>
                    <textarea id="key-referrers" aria-describedby="key-referrers-hint key-referrers-error" aria-invalid=invalid("referrer_domains") rows="2" class=input placeholder="any site" bind:value=referrers></textarea>
                    <p id="key-referrers-hint" class="mt-1 text-xs text-slate-500">"For browser callers: app.example.com or *.example.com, one per line."</p>
                    <p id="key-referrers-error" class="mt-1 text-sm text-red-700">{field_error("referrer_domains")}</p>
                </div>
                <div class="sm:col-span-2">
                    <Submit class=BUTTON busy=create.pending()>"Create key"</Submit>
                </div>
                </fieldset>
            </form>
        </section>
    }
}
