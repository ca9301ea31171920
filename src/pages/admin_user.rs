//! `/admin/users/:id`: one account for administrators: plan, balance, keys,
//! recent calls and audit events, with the actions on it (credits with a
//! reason, plan, limit overrides, disable or enable, revoke one key or all,
//! rotate all keys). Destructive actions ask for confirmation; each writes an
//! audit event (the services do that).

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use serde::{Deserialize, Serialize};

use super::{
    admin::{AdminOnly, AuditRow},
    forms::{
        BUTTON, CARD, DANGER_BUTTON, Field, FormAlert, FormStatus, LastOutcome, NeedsScript,
        Refocus, ScrollRegion, SecretToCopy, Submit, SubmitAskingFirst, last_error, record_outcome,
    },
};
use crate::{
    accounts::types::{FormError, PasswordResetLink},
    keys::types::{IssuedKey, KeyView},
    usage::types::RecentCall,
};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanChoice {
    pub id: String,
    pub name: String,
    pub public: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminUserDetail {
    pub id: i64,
    pub email: String,
    pub display_name: String,
    pub is_admin: bool,
    pub disabled: bool,
    pub created_at: String,
    pub plan: String,
    pub plan_name: String,
    pub balance: String,
    pub keys: Vec<KeyView>,
    pub recent: Vec<RecentCall>,
    pub audit: Vec<AuditRow>,
    pub plans: Vec<PlanChoice>,
    /// The plan's own limits, in the order of [`LIMITS`]; `None`: no limit.
    pub plan_limits: [Option<i64>; 5],
    /// The admin's overrides in the same order; `None`: the plan's.
    pub overrides: [Option<i64>; 5],
    /// The credit form's idempotency key, new each time the page is built.
    pub correction_key: String,
}

/// The limits an admin can override: field name and label.
pub const LIMITS: [(&str, &str); 5] = [
    ("requests_per_minute", "Requests a minute"),
    ("requests_per_hour", "Requests an hour"),
    ("requests_per_day", "Requests a day"),
    ("tokens_per_minute", "Tokens a minute"),
    ("max_parallel", "Parallel requests"),
];

#[cfg(feature = "ssr")]
pub(super) fn admin_refusal(error: crate::admin::service::AdminError) -> FormError {
    use crate::admin::service::AdminError;
    let (status, message) = (error.status(), error.message());
    let form = match error {
        AdminError::Invalid(fields) => fields
            .into_iter()
            .fold(FormError::new(message), |form, (name, why)| {
                form.field(&name, why)
            }),
        AdminError::Insufficient { .. } => {
            FormError::new(message).field("amount", "More than the balance.")
        }
        // The form's own words: the API's speak of idempotency keys.
        AdminError::NotWritten { balance } => FormError::new(format!(
            "The correction is made (the balance is now {balance} credits), but the database \
             refuses writes just now: it is written as soon as it takes them. Applying it \
             again from this form does not make it twice."
        )),
        AdminError::Store(e) => return crate::server_ctx::internal(e),
        _ => FormError::new(message),
    };
    crate::server_ctx::set_status(status, None);
    form
}

#[server(endpoint = "admin/user")]
pub async fn fetch_admin_user(user_id: i64) -> Result<AdminUserDetail, FormError> {
    use crate::admin::service;
    let (state, _) = super::admin::require_admin().await?;
    service::user_detail(&state.store, &state.gateway.accounts, user_id)
        .await
        .map_err(admin_refusal)
}

#[server(endpoint = "admin/user/credits")]
pub async fn admin_adjust_credits(
    user_id: i64,
    amount: String,
    reason: String,
    #[server(default)] idempotency_key: String,
) -> Result<String, FormError> {
    use crate::{admin::service, request_meta::RequestMeta};
    let (state, admin) = super::admin::require_admin().await?;
    service::adjust_credits(
        &state.gateway.accounts,
        &RequestMeta::current(),
        admin.id,
        user_id,
        &amount,
        &reason,
        Some(idempotency_key.as_str()),
    )
    .await
    .map(crate::credits::format_credits)
    .map_err(|e| {
        admin_refusal(e)
            .keep("amount", &amount)
            .keep("reason", &reason)
    })
    .inspect(|_| done_without_script(user_id, "credits"))
}

/// A plain form post on the user page comes back to it saying what it did.
#[cfg(feature = "ssr")]
fn done_without_script(user_id: i64, what: &str) {
    crate::server_ctx::done_without_script(&format!("/admin/users/{user_id}"), what);
}

/// The success message of what a form posted without JavaScript did.
fn done_plainly(what: &str) -> Option<&'static str> {
    match what {
        "credits" => Some(CREDITS_ADJUSTED),
        "plan" => Some(PLAN_CHANGED),
        "limits" => Some(LIMITS_SAVED),
        _ => None,
    }
}

const CREDITS_ADJUSTED: &str = "Credits adjusted.";
const PLAN_CHANGED: &str = "Plan changed.";
const LIMITS_SAVED: &str = "Limits saved. They apply from the account's next request.";

#[server(endpoint = "admin/user/plan")]
pub async fn admin_assign_plan(user_id: i64, plan: String) -> Result<(), FormError> {
    use crate::{admin::service, request_meta::RequestMeta};
    let (state, admin) = super::admin::require_admin().await?;
    service::assign_plan(
        &state.store,
        &RequestMeta::current(),
        admin.id,
        user_id,
        &plan,
    )
    .await
    .map(|_| done_without_script(user_id, "plan"))
    .map_err(admin_refusal)
}

#[server(endpoint = "admin/user/limits")]
pub async fn admin_set_limits(
    user_id: i64,
    #[server(default)] requests_per_minute: String,
    #[server(default)] requests_per_hour: String,
    #[server(default)] requests_per_day: String,
    #[server(default)] tokens_per_minute: String,
    #[server(default)] max_parallel: String,
) -> Result<(), FormError> {
    use crate::{admin::service, request_meta::RequestMeta};
    let (state, admin) = super::admin::require_admin().await?;
    let texts = [
        requests_per_minute.as_str(),
        requests_per_hour.as_str(),
        requests_per_day.as_str(),
        tokens_per_minute.as_str(),
        max_parallel.as_str(),
    ];
    let keep = |e: FormError| {
        LIMITS
            .iter()
            .zip(texts)
            .fold(e, |e, ((name, _), text)| e.keep(name, text))
    };
    let overrides = service::parse_limit_overrides(texts).map_err(|e| keep(admin_refusal(e)))?;
    service::set_limits(
        &state.store,
        &RequestMeta::current(),
        admin.id,
        user_id,
        overrides,
    )
    .await
    .map(|_| done_without_script(user_id, "limits"))
    .map_err(|e| keep(admin_refusal(e)))
}

#[server(endpoint = "admin/user/revoke-keys")]
pub async fn admin_revoke_all_keys(user_id: i64) -> Result<u64, FormError> {
    use crate::{admin::service, request_meta::RequestMeta};
    let (state, admin) = super::admin::require_admin().await?;
    service::revoke_all_keys(&state.store, &RequestMeta::current(), admin.id, user_id)
        .await
        .map_err(admin_refusal)
}

#[server(endpoint = "admin/user/revoke-key")]
pub async fn admin_revoke_key(user_id: i64, key_id: i64) -> Result<(), FormError> {
    use crate::{admin::service, request_meta::RequestMeta};
    let (state, admin) = super::admin::require_admin().await?;
    service::revoke_key(
        &state.store,
        &RequestMeta::current(),
        admin.id,
        user_id,
        key_id,
    )
    .await
    .map_err(admin_refusal)
}

#[server(endpoint = "admin/user/rotate-keys")]
pub async fn admin_rotate_all_keys(user_id: i64) -> Result<Vec<IssuedKey>, FormError> {
    use crate::{admin::service, request_meta::RequestMeta};
    let (state, admin) = super::admin::require_admin().await?;
    // A plain form post's answer is a redirect back to the page, which
    // could not show the secrets: the account would be locked out.
    if crate::server_ctx::is_plain_form_post() {
        return Err(FormError::new(
            "Rotating shows each new secret once, which needs JavaScript: nothing was rotated. Turn JavaScript on and try again.",
        ));
    }
    service::rotate_all_keys(
        &state.store,
        &state.key_hasher,
        &RequestMeta::current(),
        admin.id,
        None,
        user_id,
    )
    .await
    .map_err(admin_refusal)
}

#[server(endpoint = "admin/user/password-reset")]
pub async fn admin_password_reset_link(user_id: i64) -> Result<PasswordResetLink, FormError> {
    use crate::{admin::service, request_meta::RequestMeta};
    let (state, admin) = super::admin::require_admin().await?;
    // Shown once, which a plain form post's redirect back could not do.
    if crate::server_ctx::is_plain_form_post() {
        return Err(FormError::new(
            "The link is shown once, which needs JavaScript: none was made. Turn JavaScript on and try again.",
        ));
    }
    service::password_reset_link(
        &state.store,
        &state.key_hasher,
        &RequestMeta::current(),
        &state.public_url,
        // A page's server function is called with the session only.
        (admin.id, None),
        user_id,
    )
    .await
    .map_err(admin_refusal)
}

#[component]
pub fn AdminUserPage() -> impl IntoView {
    let params = use_params_map();
    let id = Memo::new(move |_| {
        params
            .read()
            .get("id")
            .and_then(|id| id.parse::<i64>().ok())
    });
    view! {
        <Title text="User · Admin" />
        <AdminOnly><UserDetail user_id=id /></AdminOnly>
    }
}

/// One account, `None` when the address names no user id. The page is built
/// once and fetches again when the id changes: a child closure on the id
/// would be called twice on the server, fetching twice.
#[component]
fn UserDetail(user_id: Memo<Option<i64>>) -> impl IntoView {
    let credits = ServerAction::<AdminAdjustCredits>::new();
    let plan = ServerAction::<AdminAssignPlan>::new();
    let revoke = ServerAction::<AdminRevokeAllKeys>::new();
    let revoke_one = ServerAction::<AdminRevokeKey>::new();
    let revoke_one_error = last_error(revoke_one.value());
    let rotate = ServerAction::<AdminRotateAllKeys>::new();
    let rotate_error = last_error(rotate.value());
    let reset = ServerAction::<AdminPasswordResetLink>::new();
    let reset_error = last_error(reset.value());
    let toggle = ServerAction::<super::admin::AdminSetDisabled>::new();
    let limits = ServerAction::<AdminSetLimits>::new();
    let limits_error = last_error(limits.value());
    let credits_error = last_error(credits.value());
    let plan_error = last_error(plan.value());
    let revoke_error = last_error(revoke.value());
    let toggle_error = last_error(toggle.value());
    // Corrections made: the page is built again after each, with a new
    // idempotency key for the form. Not after a refused one, whose fields
    // stay filled in: sent again, it must carry the same key, or one the
    // database was slow to write would be made twice.
    let corrections_made = RwSignal::new(0u32);
    Effect::new(move |_| {
        if matches!(credits.value().get(), Some(Ok(_))) {
            corrections_made.update(|n| *n += 1);
        }
    });
    let done = [
        super::forms::completions(plan.value()),
        super::forms::completions(revoke.value()),
        super::forms::completions(revoke_one.value()),
        super::forms::completions(rotate.value()),
        super::forms::completions(reset.value()),
        super::forms::completions(toggle.value()),
        super::forms::completions(limits.value()),
    ];
    let detail = Resource::new(
        move || (user_id.get(), corrections_made.get(), done.map(|d| d.get())),
        |(id, ..)| async move {
            match id {
                Some(id) => fetch_admin_user(id).await,
                None => {
                    #[cfg(feature = "ssr")]
                    crate::server_ctx::set_status(axum::http::StatusCode::NOT_FOUND, None);
                    Err(FormError::new("That is not a user id."))
                }
            }
        },
    );
    let outcome = LastOutcome::new(
        super::forms::done_without_script()
            .and_then(|what| done_plainly(&what))
            .map(Ok),
    );
    record_outcome(outcome, credits.value(), CREDITS_ADJUSTED);
    record_outcome(outcome, plan.value(), PLAN_CHANGED);
    // An account with no active keys is told so, not "Keys rotated." beside
    // an empty list of new secrets.
    super::forms::record_outcome_by(outcome, revoke.value(), |revoked: &u64| {
        if *revoked == 0 {
            "The account has no active keys: none was revoked."
        } else {
            "Keys revoked."
        }
    });
    record_outcome(outcome, revoke_one.value(), "Key revoked.");
    super::forms::record_outcome_by(outcome, rotate.value(), |issued: &Vec<IssuedKey>| {
        if issued.is_empty() {
            "The account has no active keys: none was rotated."
        } else {
            "Keys rotated: the new secrets are below."
        }
    });
    super::forms::record_outcome_by(
        outcome,
        toggle.value(),
        super::admin::account_status_changed,
    );
    record_outcome(outcome, limits.value(), LIMITS_SAVED);
    record_outcome(outcome, reset.value(), "Reset link made: copy it below.");
    // A success clears the refusals left beside the other forms: a refused
    // deduction stayed red next to a later "Limits saved." and read as
    // standing. (A correction refused keeps its idempotency key all the same.)
    Effect::watch(
        move || matches!(outcome.get(), Some(Ok(_))),
        move |succeeded, _, _| {
            if *succeeded {
                clear_refusal(credits.value());
                clear_refusal(plan.value());
                clear_refusal(revoke.value());
                clear_refusal(revoke_one.value());
                clear_refusal(rotate.value());
                clear_refusal(reset.value());
                clear_refusal(toggle.value());
                clear_refusal(limits.value());
            }
        },
        false,
    );
    let refocus = Refocus::default();
    refocus.after_success(credits.value(), "admin-credits");
    refocus.after(plan.value(), "admin-plan");
    refocus.after(toggle.value(), "admin-account");
    refocus.after(revoke.value(), "admin-account");
    refocus.after(rotate.value(), "admin-account");
    refocus.after(reset.value(), "admin-password");
    refocus.after(limits.value(), "admin-limits");
    refocus.after(revoke_one.value(), "admin-keys");
    let done = move || outcome.get().and_then(Result::ok);
    view! {
        <p class="mb-2 text-sm"><a href="/admin" class="text-amber-700 hover:underline">"← All users"</a></p>
        <Transition fallback=|| view! { <p class="text-slate-500">"Loading the account…"</p> }>
            {move || Suspend::new(async move {
                let d = match detail.await {
                    Ok(d) => d,
                    Err(e) => return view! { <p role="alert" class="text-red-700">{e.message}</p> }.into_any(),
                };
                refocus.drawn();
                let status = if d.disabled { "disabled" } else { "active" };
                let toggle_label = if d.disabled { "Enable account" } else { "Disable account" };
                let toggle_yes = if d.disabled { "Yes, enable account" } else { "Yes, disable account" };
                let toggle_to = (!d.disabled).to_string();
                let toggle_question =
                    (!d.disabled).then(|| "Disable this account? Its keys stop working at once.".to_owned());
                let current_plan = d.plan.clone();
                view! {
                    <h1 class="mb-1 text-3xl font-bold text-slate-900">{d.display_name.clone()}</h1>
                    <NeedsScript what="Disabling an account, revoking or rotating its keys, or making a reset link" />
                    <p class="mb-6 text-slate-600">{format!("{} · {} · {} · joined {}", d.email, if d.is_admin { "admin" } else { "user" }, status, &d.created_at[..10.min(d.created_at.len())])}</p>
                    <FormStatus message=Signal::derive(done) />
                    <div class="mb-6 grid gap-4 sm:grid-cols-2">
                        <div class=CARD>
                            <p class="text-sm text-slate-500">"Plan"</p>
                            <p class="text-2xl font-semibold" data-testid="admin-user-plan">{d.plan_name.clone()}</p>
                        </div>
                        <div class=CARD>
                            <p class="text-sm text-slate-500">"Balance"</p>
                            <p class="text-2xl font-semibold" data-testid="admin-user-balance">{format!("{} credits", d.balance)}</p>
                        </div>
                    </div>

                    <div class="mb-6 grid gap-4 lg:grid-cols-2">
                        <section class=CARD id="admin-credits">
                            <h2 class="mb-3 text-lg font-semibold">"Add or deduct credits"</h2>
                            <FormAlert error=credits_error />
                            <ActionForm action=credits>
                                <input type="hidden" name="user_id" value=d.id />
                                // A double submit (even without JavaScript) makes one correction.
                                <input type="hidden" name="idempotency_key" value=d.correction_key.clone() />
                                <Field label="Amount (credits; negative to deduct)" name="amount" keep=true hint="Exact to the millionth, e.g. 25 or -2.5." error=credits_error />
                                <Field label="Reason" name="reason" keep=true hint="Kept in the ledger and the audit log." error=credits_error />
                                <Submit class=BUTTON busy=credits.pending()>"Apply"</Submit>
                            </ActionForm>
                        </section>
                        <section class=CARD>
                            <div id="admin-plan">
                            <h2 class="mb-3 text-lg font-semibold">"Plan"</h2>
                            <FormAlert error=plan_error />
                            <ActionForm action=plan>
                                <input type="hidden" name="user_id" value=d.id />
                                <label for="field-plan" class="mb-1 block text-sm font-medium text-slate-700">"Move to plan"</label>
                                <select id="field-plan" name="plan" class="block w-full rounded-md border border-slate-300 px-3 py-2 text-sm">
                                    // A retired plan cannot be chosen, but the account may still be
                                    // on one: shown as it is, so the first plan is not picked unseen.
                                    {(!d.plans.iter().any(|p| p.id == current_plan)).then(|| view! {
                                        <option value=current_plan.clone() selected=true>{format!("{} (retired; current)", d.plan_name)}</option>
                                    })}
                                    {d.plans.iter().map(|p| {
                                        let label = if p.public { p.name.clone() } else { format!("{} (private)", p.name) };
                                        view! { <option value=p.id.clone() selected=p.id == current_plan>{label}</option> }
                                    }).collect_view()}
                                </select>
                                <p class="mb-4 mt-1 text-sm text-red-700">
                                    {move || plan_error.get().and_then(|e| e.field_error("plan"))}
                                </p>
                                <Submit class=BUTTON busy=plan.pending()>"Assign plan"</Submit>
                            </ActionForm>
                            </div>
                            <div id="admin-account">
                            <h2 class="mb-3 mt-6 text-lg font-semibold">"Account"</h2>
                            <FormAlert error=toggle_error />
                            <FormAlert error=revoke_error />
                            <FormAlert error=rotate_error />
                            <div class="flex flex-wrap gap-2">
                                <ActionForm action=toggle>
                                    <input type="hidden" name="user_id" value=d.id />
                                    <input type="hidden" name="disabled" value=toggle_to />
                                    <SubmitAskingFirst class=DANGER_BUTTON question=toggle_question label=toggle_label yes=toggle_yes busy=toggle.pending().into()>{toggle_label}</SubmitAskingFirst>
                                </ActionForm>
                                <ActionForm action=revoke>
                                    <input type="hidden" name="user_id" value=d.id />
                                    <SubmitAskingFirst class=DANGER_BUTTON busy=revoke.pending().into() label="Revoke all keys" yes="Yes, revoke all keys"
                                        question=Some("Revoke every key of this account? Callers using them get 401 at once.".to_owned())>"Revoke all keys"</SubmitAskingFirst>
                                </ActionForm>
                                <ActionForm action=rotate>
                                    <input type="hidden" name="user_id" value=d.id />
                                    <SubmitAskingFirst class=DANGER_BUTTON busy=rotate.pending().into() label="Rotate all keys" yes="Yes, rotate all keys"
                                        question=Some("Give every active key of this account a new secret? The old secrets stop at once; the new ones are shown here once.".to_owned())>"Rotate all keys"</SubmitAskingFirst>
                                </ActionForm>
                            </div>
                            </div>
                            <div id="admin-password">
                            <h2 class="mb-2 mt-6 text-lg font-semibold">"Password"</h2>
                            <p class="mb-3 text-sm text-slate-600">"A user who forgot their password gets a one-time link to set a new one, valid for an hour. Tollgate sends no email: pass it on privately."</p>
                            <FormAlert error=reset_error />
                            <ActionForm action=reset>
                                <input type="hidden" name="user_id" value=d.id />
                                <Submit class=BUTTON busy=reset.pending()>"Make a password reset link"</Submit>
                            </ActionForm>
                            {move || reset.value().get().and_then(Result::ok).map(|link| view! {
                                <div class="mt-4 rounded-md border border-amber-300 bg-amber-50 p-3 text-sm" data-testid="reset-link">
                                    <p class="font-semibold">"The link, shown only now"</p>
                                    <SecretToCopy secret=link.url testid="reset-link-url" />
                                    <p class="mt-1 text-xs text-slate-600">{format!(
                                        "It works once, until {} UTC; a newer link replaces it.",
                                        link.expires_at.get(..16).unwrap_or(&link.expires_at).replace('T', " ")
                                    )}</p>
                                </div>
                            })}
                            </div>
                            {move || rotate.value().get().and_then(Result::ok).filter(|issued| !issued.is_empty()).map(|issued| view! {
                                <div class="mt-4 rounded-md border border-amber-300 bg-amber-50 p-3 text-sm" data-testid="rotated-secrets">
                                    <p class="mb-2 font-semibold">"New secrets, shown only now. Pass them to the account's owner safely."</p>
                                    <ul class="space-y-1 font-mono text-xs break-all">
                                        {issued.into_iter().map(|k| view! { <li>{format!("{}: {}", k.key.name, k.secret)}</li> }).collect_view()}
                                    </ul>
                                </div>
                            })}
                        </section>
                    </div>

                    <section class=format!("{CARD} mb-6") id="admin-limits">
                        <h2 class="mb-1 text-lg font-semibold">"Limits"</h2>
                        <p class="mb-3 text-sm text-slate-600">"Empty fields follow the plan (its value is shown greyed). A value here replaces the plan's for this account only."</p>
                        <FormAlert error=limits_error />
                        <ActionForm action=limits>
                            <input type="hidden" name="user_id" value=d.id />
                            <div class="grid gap-x-4 sm:grid-cols-5">
                                {LIMITS.iter().zip(d.plan_limits).zip(d.overrides).map(|(((name, label), plan), current)| view! {
                                    <Field label=*label name=*name keep=true optional=true
                                        initial=current.map(|n| n.to_string()).unwrap_or_default()
                                        placeholder=plan.map_or_else(|| "plan: no limit".to_owned(), |n| format!("plan: {n}"))
                                        error=limits_error />
                                }).collect_view()}
                            </div>
                            <Submit class=BUTTON busy=limits.pending()>"Save limits"</Submit>
                        </ActionForm>
                    </section>

                    <section class=format!("{CARD} mb-6") id="admin-keys">
                        <h2 class="mb-3 text-lg font-semibold">"Keys"</h2>
                        <FormAlert error=revoke_one_error />
                        <ScrollRegion label="Keys">
                        <table class="w-full text-left text-sm">
                            <thead class="text-slate-500"><tr><th class="py-2">"Name"</th><th>"Key"</th><th>"Status"</th><th class="text-right">"Uses"</th><th>"Last used"</th><th class="relative"><span class="sr-only">"Actions"</span></th></tr></thead>
                            <tbody>
                                {d.keys.clone().into_iter().map(|k| {
                                    let question = Some(format!(
                                        "Revoke the key {}? Callers using it get 401 at once; the other keys go on.",
                                        k.display
                                    ));
                                    view! {
                                        <tr class="border-t border-slate-100" data-testid=format!("admin-key-{}", k.id)>
                                            <td class="py-1">{k.name.clone()}</td>
                                            <td class="font-mono">{k.display.clone()}</td>
                                            <td>{k.status.clone()}</td>
                                            <td class="text-right">{k.usage_count}</td>
                                            <td class="whitespace-nowrap">{k.last_used_at.as_deref().map_or_else(|| "never".into(), super::forms::shown_time)}</td>
                                            <td class="text-right">
                                                {(k.status != "revoked").then(|| view! {
                                                    <ActionForm action=revoke_one>
                                                        <input type="hidden" name="user_id" value=d.id />
                                                        <input type="hidden" name="key_id" value=k.id />
                                                        <SubmitAskingFirst class="rounded border border-red-300 px-2 py-0.5 text-xs text-red-700 disabled:opacity-50"
                                                            question yes="Yes, revoke" busy=revoke_one.pending().into() label=format!("Revoke {}", k.name)>"Revoke"</SubmitAskingFirst>
                                                    </ActionForm>
                                                })}
                                            </td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                        </ScrollRegion>
                    </section>

                    // One above the other: the audit table's columns were cut off
                    // at half the page's width.
                    <div class="grid gap-4">
                        <section class=CARD>
                            <div class="mb-3 flex flex-wrap items-baseline justify-between gap-2">
                                <h2 class="text-lg font-semibold">"Recent calls"</h2>
                                // The last 30 days; the API takes any days.
                                <a class="text-sm text-amber-700 underline" download
                                    href=format!("/api/v1/admin/users/{}/usage/export", d.id)>
                                    "Download 30 days as CSV"
                                </a>
                            </div>
                            <ScrollRegion label="Recent calls">
                            <table class="w-full text-left text-sm">
                                <thead class="text-slate-500"><tr><th class="py-2">"Time"</th><th>"Model"</th><th>"Status"</th><th class="text-right">"Credits"</th></tr></thead>
                                <tbody>
                                    {d.recent.iter().map(|c| view! {
                                        <tr class="border-t border-slate-100">
                                            <td class="py-1 whitespace-nowrap">{super::forms::shown_time(&c.at)}</td>
                                            <td>{c.model.clone()}</td>
                                            <td>{c.status}</td>
                                            <td class="text-right">{c.credits.clone()}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                            </ScrollRegion>
                        </section>
                        <section class=CARD>
                            <h2 class="mb-3 text-lg font-semibold">"Audit events"</h2>
                            <super::admin::AuditTable rows=d.audit.clone() />
                        </section>
                    </div>
                }.into_any()
            })}
        </Transition>
    }
}

/// Forgets an action's refusal, if its last answer was one.
fn clear_refusal<T>(
    value: impl WithUntracked<Value = Option<Result<T, FormError>>>
    + Set<Value = Option<Result<T, FormError>>>,
) {
    if value.with_untracked(|last| matches!(last, Some(Err(_)))) {
        value.set(None);
    }
}
