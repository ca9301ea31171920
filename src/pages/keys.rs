//! `/keys`: the user's API keys. Create (with every restriction), see a new
//! secret exactly once, edit a key's name and restrictions, revoke with
//! confirmation, rotate with a grace period, and act on several keys at once.

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
    keys::types::{ADMIN_SCOPE, CreateKey, IssuedKey, KeyView, PlanView, SCOPES, UpdateKey},
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
    let sample_model = models
        .iter()
        .find(|m| plan.includes_model(&m.name))
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

#[server(endpoint = "keys/update", input = server_fn::codec::Json)]
pub async fn update_api_key(id: i64, changes: UpdateKey) -> Result<KeyView, FormError> {
    use crate::{keys::service, request_meta::RequestMeta, server_ctx};
    let (state, _, user) = server_ctx::signed_in_user().await?;
    service::update(
        &state.store,
        &RequestMeta::current(),
        &state.gateway.models,
        user.id,
        id,
        &changes,
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
    let update = ServerAction::<UpdateApiKey>::new();
    let done = [
        super::forms::completions(update.value()),
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
    // The key being edited. Its form shows its own refusals, the banner
    // none: a save closes the form (when it is still that key's) and says so.
    let editing = RwSignal::new(None::<KeyView>);
    Effect::watch(
        move || update.value().get(),
        move |result, _, _| match result {
            Some(Ok(saved)) => {
                if editing
                    .get_untracked()
                    .is_some_and(|key| key.id == saved.id)
                {
                    editing.set(None);
                    focus_by_id("keys-title");
                }
                outcome.set(Some(Ok("Saved.")));
            }
            // An earlier success is not left standing beside the refusal.
            Some(Err(_)) => outcome.set(None),
            None => {}
        },
        false,
    );
    // A key revoked meanwhile, here or in another tab, can no longer be
    // edited: its form closes once the table shows it, saying why when a
    // save found it gone. Called as the table is drawn: an effect that read
    // the key list would tie the whole page to its reloads.
    let close_if_gone = move |keys: &[KeyView]| {
        let Some(key) = editing.get_untracked() else {
            return;
        };
        if !keys.iter().any(|k| k.id == key.id && k.status != "revoked") {
            editing.set(None);
            if let Some(Err(refusal)) = update.value().get_untracked() {
                outcome.set(Some(Err(refusal)));
            }
            focus_by_id("keys-title");
        }
    };
    let action_error = Signal::derive(move || outcome.get().and_then(Result::err));
    let action_done = move || outcome.get().and_then(Result::ok);

    view! {
        // Focus comes back here when a dialog above the table closes.
        <h1 id="keys-title" tabindex="-1" class="mb-2 text-3xl font-bold text-slate-900">"API keys"</h1>
        <NeedsScript what="Managing keys" />
        <NewKeyDialog fresh />
        <FormAlert error=action_error />
        <FormStatus message=Signal::derive(action_done) />
        <EditKeyForm editing update />
        <Transition fallback=|| view! { <p class="text-slate-500">"Loading keys…"</p> }>
            {move || Suspend::new(async move {
                match overview.await {
                    Ok(data) => {
                        close_if_gone(&data.keys);
                        view! {
                        <p class="mb-6 text-slate-600">
                            "Your plan, " <A href="/plans" attr:class="font-medium underline">{data.plan.name.clone()}</A>
                            {format!(", allows {} active keys.", data.plan.max_active_keys)}
                        </p>
                        <KeyTable keys=data.keys.clone() base_url=data.base_url.clone() sample_model=data.sample_model.clone() revoke rotate end_grace grace editing />
                        }.into_any()
                    }
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
    editing: RwSignal<Option<KeyView>>,
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
                // Wraps on a phone: the longest choice is wider than 320 px
                // beside its label, and the card scrolled sideways.
                <label class="flex flex-wrap items-center gap-x-2 gap-y-1">
                    "Rotation grace period"
                    <select class="max-w-full rounded border border-slate-300 px-2 py-1" on:change=move |ev| grace.set(event_target_value(&ev)) prop:value=move || grace.get()>
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
                        // A used-up or expired key's cap or expiry can be
                        // raised to bring it back; a revoked one is over.
                        let editable = k.status != "revoked";
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
                                    {editable.then(|| view! {
                                        <button id=format!("edit-key-{id}") class="mr-2 rounded border border-slate-300 px-2 py-1 disabled:opacity-50" disabled=move || !ready()
                                            aria-label=format!("Edit {}", k.name)
                                            on:click={
                                                let key = k.clone();
                                                move |_| editing.set(Some(key.clone()))
                                            }>"Edit"</button>
                                    })}
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

/// A usage cap as typed: empty is none; what is not a number is sent as one
/// the server refuses, so the refusal says what a cap may be.
fn typed_cap(text: &str) -> Option<i64> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.parse().unwrap_or(-1))
}

/// What a key form's fields hold, as typed. The create form starts from a new
/// key's defaults; the edit form from the key's settings.
#[derive(Clone, Copy)]
struct KeyFieldValues {
    name: RwSignal<String>,
    scopes: RwSignal<BTreeSet<String>>,
    models: RwSignal<String>,
    expires: RwSignal<String>,
    cap: RwSignal<String>,
    ips: RwSignal<String>,
    referrers: RwSignal<String>,
}

/// The text of each field of a key form, to compare what was typed with
/// what the form started from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct KeyFieldText {
    name: String,
    scopes: BTreeSet<String>,
    models: String,
    expires: String,
    cap: String,
    ips: String,
    referrers: String,
}

impl KeyFieldText {
    fn new_key() -> Self {
        Self {
            name: "My key".to_owned(),
            scopes: BTreeSet::from(["chat".to_owned()]),
            ..Self::default()
        }
    }

    fn of(key: &KeyView) -> Self {
        let joined = |items: &Option<Vec<String>>| items.as_deref().unwrap_or_default().join("\n");
        Self {
            name: key.name.clone(),
            scopes: key.scopes.iter().cloned().collect(),
            models: key.allowed_models.as_deref().unwrap_or_default().join(", "),
            // The date field shows the day; an expiry set to the second
            // through the API is sent back only when this is changed.
            expires: key
                .expires_at
                .as_deref()
                .and_then(|t| t.get(..10))
                .unwrap_or_default()
                .to_owned(),
            cap: key.usage_cap.map(|cap| cap.to_string()).unwrap_or_default(),
            ips: joined(&key.ip_allowlist),
            referrers: joined(&key.referrer_domains),
        }
    }
}

impl KeyFieldText {
    /// What an edit form compares its fields with: the key's settings, but
    /// for an expired key, whose day shown as it is counts as a change, so
    /// a save makes it work until that day ends (it may be today).
    fn started_from(key: &KeyView) -> Self {
        let text = Self::of(key);
        if key.status == "expired" {
            Self {
                expires: key.expires_at.clone().unwrap_or_default(),
                ..text
            }
        } else {
            text
        }
    }
}

impl KeyFieldValues {
    fn new(text: KeyFieldText) -> Self {
        Self {
            name: RwSignal::new(text.name),
            scopes: RwSignal::new(text.scopes),
            models: RwSignal::new(text.models),
            expires: RwSignal::new(text.expires),
            cap: RwSignal::new(text.cap),
            ips: RwSignal::new(text.ips),
            referrers: RwSignal::new(text.referrers),
        }
    }

    fn set(&self, text: KeyFieldText) {
        self.name.set(text.name);
        self.scopes.set(text.scopes);
        self.models.set(text.models);
        self.expires.set(text.expires);
        self.cap.set(text.cap);
        self.ips.set(text.ips);
        self.referrers.set(text.referrers);
    }

    fn text(&self) -> KeyFieldText {
        KeyFieldText {
            name: self.name.get(),
            scopes: self.scopes.get(),
            models: self.models.get(),
            expires: self.expires.get(),
            cap: self.cap.get(),
            ips: self.ips.get(),
            referrers: self.referrers.get(),
        }
    }
}

/// The fields a key's settings are typed in, for creating a key and for
/// editing one. Ids start with `prefix`, so both forms can be on the page.
#[component]
fn KeyFields(
    values: KeyFieldValues,
    error: LastError,
    prefix: &'static str,
    /// What the usage cap's hint says: a new key's cap differs from a set one.
    cap_hint: &'static str,
    /// Whether the cap must be filled in: once a key has one, it can be
    /// raised, not removed.
    cap_required: bool,
    /// Fields only the create form has, after the name.
    #[prop(optional)]
    children: Option<Children>,
) -> impl IntoView {
    let KeyFieldValues {
        name,
        scopes,
        models,
        expires,
        cap,
        ips,
        referrers,
    } = values;
    let me = expect_context::<super::nav::UserResource>();
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
    let id = move |field: &str| format!("{prefix}-{field}");
    let described = move |field: &str| format!("{prefix}-{field}-hint {prefix}-{field}-error");
    let input = "block w-full rounded-md border border-slate-300 px-3 py-2 text-sm";
    let label = "mb-1 block text-sm font-medium text-slate-700";

    view! {
        <div>
            <label class=label for=id("name")>"Name"</label>
            <input id=id("name") aria-describedby=id("name-error") aria-invalid=invalid("name") class=input bind:value=name />
            <p id=id("name-error") class="mt-1 text-sm text-red-700">{field_error("name")}</p>
        </div>
        {children.map(|children| children())}
        <fieldset class="sm:col-span-2">
            <legend class=label>"Scopes"</legend>
            <div class="flex flex-wrap gap-x-4 gap-y-2 text-sm">
                {SCOPES.into_iter().map(|scope| view! {
                    <label class="flex items-center gap-1">
                        <input type="checkbox" aria-describedby=id("scopes-error") aria-invalid=invalid("scopes")
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
            <p id=id("scopes-error") class="mt-1 text-sm text-red-700">{field_error("scopes")}</p>
        </fieldset>
        <div>
            <label class=label for=id("models")>"Allowed models"</label>
            <input id=id("models") aria-describedby=described("models") aria-invalid=invalid("allowed_models") class=input placeholder="all models on your plan" bind:value=models />
            <p id=id("models-hint") class="mt-1 text-xs text-slate-500">"Comma-separated. Empty allows every model your plan has."</p>
            <p id=id("models-error") class="mt-1 text-sm text-red-700">{field_error("allowed_models")}</p>
        </div>
        <div>
            <label class=label for=id("expires")>"Expires"</label>
            <input id=id("expires") aria-describedby=described("expires") aria-invalid=invalid("expires_at") type="date" class=input bind:value=expires />
            <p id=id("expires-hint") class="mt-1 text-xs text-slate-500">"Empty: never. The key works until that day ends (UTC)."</p>
            <p id=id("expires-error") class="mt-1 text-sm text-red-700">{field_error("expires_at")}</p>
        </div>
        <div>
            <label class=label for=id("cap")>"Usage cap (requests)"</label>
            <input id=id("cap") aria-describedby=described("cap") aria-invalid=invalid("usage_cap") type="number" min="1" required=cap_required class=input placeholder="unlimited" bind:value=cap />
            <p id=id("cap-hint") class="mt-1 text-xs text-slate-500">{cap_hint}</p>
            <p id=id("cap-error") class="mt-1 text-sm text-red-700">{field_error("usage_cap")}</p>
        </div>
        <div>
            <label class=label for=id("ips")>"IP allowlist"</label>
            <textarea id=id("ips") aria-describedby=described("ips") aria-invalid=invalid("ip_allowlist") rows="2" class=input placeholder="any address" bind:value=ips></textarea>
            <p id=id("ips-hint") class="mt-1 text-xs text-slate-500">"Addresses or CIDR ranges, one per line (IPv4 or IPv6)."</p>
            <p id=id("ips-error") class="mt-1 text-sm text-red-700">{field_error("ip_allowlist")}</p>
        </div>
        <div class="sm:col-span-2">
            <label class=label for=id("referrers")>"Allowed referrer domains"</label>
            <textarea id=id("referrers") aria-describedby=described("referrers") aria-invalid=invalid("referrer_domains") rows="2" class=input placeholder="any site" bind:value=referrers></textarea>
            <p id=id("referrers-hint") class="mt-1 text-xs text-slate-500">"For browser callers: app.example.com or *.example.com, one per line."</p>
            <p id=id("referrers-error") class="mt-1 text-sm text-red-700">{field_error("referrer_domains")}</p>
        </div>
    }
}

#[component]
fn CreateKeyForm(create: ServerAction<CreateApiKey>) -> impl IntoView {
    let error: LastError = last_error(create.value());
    focus_first_invalid(create.value(), "create-key");
    let values = KeyFieldValues::new(KeyFieldText::new_key());
    let env = RwSignal::new("live".to_owned());
    // A key made, the form starts over: a second key made at once took the
    // first one's environment and restrictions without a word.
    Effect::watch(
        move || matches!(create.value().get(), Some(Ok(_))),
        move |made, _, _| {
            if *made {
                values.set(KeyFieldText::new_key());
                env.set("live".to_owned());
            }
        },
        false,
    );
    let input = "block w-full rounded-md border border-slate-300 px-3 py-2 text-sm";
    let label = "mb-1 block text-sm font-medium text-slate-700";

    let ready = hydrated();
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let typed = values.text();
        create.dispatch(CreateApiKey {
            input: CreateKey {
                name: typed.name,
                env: Some(env.get()),
                scopes: Some(typed.scopes.into_iter().collect()),
                allowed_models: lines(&typed.models),
                expires_at: Some(typed.expires).filter(|s| !s.is_empty()),
                ttl_seconds: None,
                usage_cap: typed_cap(&typed.cap),
                ip_allowlist: lines(&typed.ips),
                referrer_domains: lines(&typed.referrers),
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
                <KeyFields values error prefix="key" cap_hint="1 makes a one-time key." cap_required=false>
                    <div>
                        <label class=label for="key-env">"Environment"</label>
                        <select id="key-env" class=input on:change=move |ev| env.set(event_target_value(&ev)) prop:value=move || env.get()>
                            <option value="live">"live"</option>
                            <option value="test">"test"</option>
                            <option value="staging">"staging"</option>
                            <option value="dev">"dev"</option>
                        </select>
                    </div>
                </KeyFields>
                <div class="sm:col-span-2">
                    <Submit class=BUTTON busy=create.pending()>"Create key"</Submit>
                </div>
                </fieldset>
            </form>
        </section>
    }
}

/// The changes between what an edit form started from and what it holds:
/// only the fields typed in are sent, so an edit made meanwhile elsewhere to
/// another field is kept, and an expiry set to the second is not cut to
/// its day.
fn key_changes(from: &KeyFieldText, to: &KeyFieldText) -> UpdateKey {
    let changed = |old: &String, new: &String| (old != new).then(|| new.clone());
    let list = |old: &String, new: &String| (old != new).then(|| lines(new).unwrap_or_default());
    UpdateKey {
        name: changed(&from.name, &to.name),
        scopes: (from.scopes != to.scopes).then(|| to.scopes.iter().cloned().collect()),
        allowed_models: list(&from.models, &to.models),
        expires_at: changed(&from.expires, &to.expires),
        usage_cap: changed(&from.cap, &to.cap).and_then(|cap| typed_cap(&cap)),
        ip_allowlist: list(&from.ips, &to.ips),
        referrer_domains: list(&from.referrers, &to.referrers),
    }
}

/// Edits one key's name and restrictions, opened from its row. Its
/// environment and secret stay; its cap can be raised, not removed.
#[component]
fn EditKeyForm(
    editing: RwSignal<Option<KeyView>>,
    update: ServerAction<UpdateApiKey>,
) -> impl IntoView {
    let error: LastError = last_error(update.value());
    focus_first_invalid(update.value(), "edit-key");
    // A refusal about no one field (the plan's active keys, say) is read
    // from the form's title: the save had taken the focus from its button.
    Effect::watch(
        move || {
            update
                .value()
                .get()
                .is_some_and(|result| result.is_err_and(|e| e.fields.is_empty()))
        },
        |refused, _, _| {
            if *refused {
                focus_by_id("edit-key-title");
            }
        },
        false,
    );
    let values = KeyFieldValues::new(KeyFieldText::default());
    // What the form started from, to send only what changed.
    let started = StoredValue::new(KeyFieldText::default());
    Effect::watch(
        move || editing.get(),
        move |key, _, _| {
            if let Some(key) = key {
                started.set_value(KeyFieldText::started_from(key));
                values.set(KeyFieldText::of(key));
                // Another key's refusal is not this one's.
                update.value().set(None);
                focus_by_id("edit-key-name");
            }
        },
        false,
    );
    let close = move || {
        let id = editing.get_untracked().map(|key| key.id);
        editing.set(None);
        match id {
            Some(id) => focus_by_id(format!("edit-key-{id}")),
            None => focus_by_id("keys-title"),
        }
    };
    let submit = move |ev: leptos::ev::SubmitEvent| {
        ev.prevent_default();
        let Some(key) = editing.get_untracked() else {
            return;
        };
        let changes = started.with_value(|from| key_changes(from, &values.text()));
        if changes == UpdateKey::default() {
            close();
            return;
        }
        update.dispatch(UpdateApiKey {
            id: key.id,
            changes,
        });
    };

    move || {
        editing.get().map(|key| {
            let cap_hint = if key.usage_cap.is_some() {
                "Can be raised, not removed. At or below the uses made, the key stops until it is raised again."
            } else {
                "Empty: unlimited. Once set, it can be raised, not removed."
            };
            view! {
                <section id="edit-key" class=format!("{CARD} mb-6") aria-labelledby="edit-key-title"
                    on:keydown=move |ev| if ev.key() == "Escape" { close() }>
                    <h2 id="edit-key-title" tabindex="-1" class="mb-1 text-lg font-semibold">{format!("Edit \u{201c}{}\u{201d}", key.name)}</h2>
                    <p class="mb-4 text-sm text-slate-600">
                        <code class="text-xs">{key.display.clone()}</code>
                        " keeps its secret and its environment. Changes apply from the key's next request."
                    </p>
                    <FormAlert error />
                    <form on:submit=submit>
                        <fieldset class="grid gap-4 sm:grid-cols-2" disabled=move || update.pending().get()>
                        <KeyFields values error prefix="edit-key" cap_hint cap_required=key.usage_cap.is_some() />
                        <div class="flex gap-3 sm:col-span-2">
                            <Submit class=BUTTON busy=update.pending()>"Save changes"</Submit>
                            <button type="button" class="rounded-md border border-slate-300 px-4 py-2 text-sm" on:click=move |_| close()>"Cancel"</button>
                        </div>
                        </fieldset>
                    </form>
                </section>
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{KeyFieldText, KeyView, UpdateKey, key_changes};

    fn started() -> KeyFieldText {
        KeyFieldText {
            name: "deploy".into(),
            scopes: ["chat".to_owned()].into(),
            models: "demo, echo".into(),
            expires: "2099-12-31".into(),
            cap: "5".into(),
            ips: "10.0.0.0/8".into(),
            referrers: String::new(),
        }
    }

    #[test]
    fn an_expired_keys_day_is_sent_when_saved_as_shown() {
        let key: KeyView = serde_json::from_value(serde_json::json!({
            "id": 1, "name": "old", "env": "live", "display": "tg_live_abcd…wxyz",
            "scopes": ["chat"], "allowed_models": null, "expires_at": "2026-12-08T09:00:00.000Z",
            "usage_cap": null, "usage_count": 0, "ip_allowlist": null, "referrer_domains": null,
            "created_at": "2026-12-01T00:00:00.000Z", "last_used_at": null,
            "status": "expired", "grace_until": null
        }))
        .unwrap();
        let shown = KeyFieldText::of(&key);
        assert_eq!(shown.expires, "2026-12-08");
        let sent = key_changes(&KeyFieldText::started_from(&key), &shown);
        assert_eq!(sent.expires_at.as_deref(), Some("2026-12-08"));
        assert_eq!(sent.name, None);
        // An active key's untouched day is not sent.
        let active = KeyView {
            status: "active".into(),
            ..key
        };
        assert_eq!(
            key_changes(
                &KeyFieldText::started_from(&active),
                &KeyFieldText::of(&active)
            ),
            UpdateKey::default()
        );
    }

    #[test]
    fn an_untouched_form_changes_nothing() {
        assert_eq!(key_changes(&started(), &started()), UpdateKey::default());
    }

    #[test]
    fn only_the_fields_typed_in_are_sent() {
        let typed = KeyFieldText {
            name: "deploy-2".into(),
            ips: String::new(),
            referrers: "*.example.com\napp.test".into(),
            ..started()
        };
        assert_eq!(
            key_changes(&started(), &typed),
            UpdateKey {
                name: Some("deploy-2".into()),
                // An emptied list is sent empty: the restriction is removed.
                ip_allowlist: Some(Vec::new()),
                referrer_domains: Some(vec!["*.example.com".into(), "app.test".into()]),
                ..UpdateKey::default()
            }
        );
    }

    #[test]
    fn scopes_expiry_and_cap_are_sent_as_typed() {
        let typed = KeyFieldText {
            scopes: ["chat".to_owned(), "keys:read".to_owned()].into(),
            expires: String::new(),
            cap: "not a number".into(),
            ..started()
        };
        let changes = key_changes(&started(), &typed);
        assert_eq!(
            changes.scopes,
            Some(vec!["chat".to_owned(), "keys:read".to_owned()])
        );
        // Emptied, the expiry is removed.
        assert_eq!(changes.expires_at.as_deref(), Some(""));
        // What is not a number goes as one the server refuses, with its words.
        assert_eq!(changes.usage_cap, Some(-1));
        let raised = KeyFieldText {
            cap: " 9 ".into(),
            ..started()
        };
        assert_eq!(key_changes(&started(), &raised).usage_cap, Some(9));
    }
}
