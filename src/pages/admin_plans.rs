//! `/admin/plans` (every plan, and a form for a new one) and
//! `/admin/plans/:slug` (edit, retire or restore one): administrators only.
//! A retired plan takes no new users; its users stay on it until moved.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_params_map;
use serde::{Deserialize, Serialize};

use super::{
    admin::{AdminOnly, AdminTabs},
    forms::{
        BUTTON, CARD, DANGER_BUTTON, Field, FormAlert, FormStatus, LastError, LastOutcome,
        NeedsScript, Refocus, ScrollRegion, SubmitAskingFirst, last_error, record_outcome,
    },
};
use crate::accounts::types::FormError;

/// A plan's fields as the form sends them: text, checked once on the server
/// (`admin::plans`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanForm {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub requests_per_minute: String,
    pub requests_per_hour: String,
    pub requests_per_day: String,
    /// Blank: no token limit.
    #[serde(default)]
    pub tokens_per_minute: String,
    /// Blank: no limit on parallel calls.
    #[serde(default)]
    pub max_parallel: String,
    /// Credits a month, exact to the micro-credit.
    pub monthly_credits: String,
    pub max_active_keys: String,
    /// Model names separated by commas; blank allows every model.
    #[serde(default)]
    pub allowed_models: String,
    /// A checkbox: present (any value) when the plan is public.
    #[serde(default)]
    pub is_public: Option<String>,
    #[serde(default)]
    pub sort_order: String,
}

/// A plan in the admin list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminPlanRow {
    pub slug: String,
    pub name: String,
    pub public: bool,
    pub default: bool,
    pub retired_at: Option<String>,
    pub users: i64,
    /// "minute / hour / day".
    pub requests: String,
    pub tokens_per_minute: Option<i64>,
    pub max_parallel: Option<i64>,
    pub monthly_credits: String,
    pub max_active_keys: i64,
    pub models: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminPlanDetail {
    pub row: AdminPlanRow,
    pub form: PlanForm,
}

#[cfg(feature = "ssr")]
fn row(summary: &crate::store::PlanSummary) -> AdminPlanRow {
    let p = &summary.plan;
    AdminPlanRow {
        slug: p.slug.clone(),
        name: p.name.clone(),
        public: p.is_public,
        default: p.is_default,
        retired_at: summary.retired_at.clone(),
        users: summary.users,
        requests: [
            p.requests_per_minute,
            p.requests_per_hour,
            p.requests_per_day,
        ]
        .map(crate::credits::format_count)
        .join(" / "),
        tokens_per_minute: p.tokens_per_minute,
        max_parallel: p.max_parallel,
        monthly_credits: crate::credits::format_credits_grouped(p.monthly_credits),
        max_active_keys: p.max_active_keys,
        models: p
            .allowed_models()
            .map_or_else(|| "all".to_owned(), |m| m.join(", ")),
    }
}

#[cfg(feature = "ssr")]
fn model_names(state: &crate::startup::AppState) -> Vec<String> {
    state
        .gateway
        .models
        .iter()
        .map(|m| m.name.clone())
        .collect()
}

#[server(endpoint = "admin/plans")]
pub async fn admin_plans() -> Result<Vec<AdminPlanRow>, FormError> {
    let (state, _) = super::admin::require_admin().await?;
    let plans = state
        .store
        .plans_for_admin()
        .await
        .map_err(crate::server_ctx::internal)?;
    Ok(plans.iter().map(row).collect())
}

#[server(endpoint = "admin/plan")]
pub async fn admin_plan(slug: String) -> Result<AdminPlanDetail, FormError> {
    let (state, _) = super::admin::require_admin().await?;
    match state.store.plan_by_slug(&slug).await {
        Ok(Some(summary)) => Ok(AdminPlanDetail {
            row: row(&summary),
            form: PlanForm::of(&summary),
        }),
        Ok(None) => Err(super::admin_user::admin_refusal(
            crate::admin::service::AdminError::PlanNotFound,
        )),
        Err(e) => Err(crate::server_ctx::internal(e)),
    }
}

/// The form's values, kept for a refused submission.
#[cfg(feature = "ssr")]
fn keep_form(error: FormError, slug: &str, f: &PlanForm) -> FormError {
    [
        ("slug", slug),
        ("name", &f.name),
        ("description", &f.description),
        ("requests_per_minute", &f.requests_per_minute),
        ("requests_per_hour", &f.requests_per_hour),
        ("requests_per_day", &f.requests_per_day),
        ("tokens_per_minute", &f.tokens_per_minute),
        ("max_parallel", &f.max_parallel),
        ("monthly_credits", &f.monthly_credits),
        ("max_active_keys", &f.max_active_keys),
        ("allowed_models", &f.allowed_models),
        ("sort_order", &f.sort_order),
        ("is_public", if f.is_public.is_some() { "on" } else { "" }),
    ]
    .into_iter()
    .fold(error, |e, (name, value)| e.keep(name, value))
}

#[allow(clippy::too_many_arguments)]
#[server(endpoint = "admin/plans/save")]
pub async fn admin_save_plan(
    // `true` adds a new plan; `false` changes the one named by `slug`.
    create: bool,
    slug: String,
    name: String,
    #[server(default)] description: String,
    requests_per_minute: String,
    requests_per_hour: String,
    requests_per_day: String,
    #[server(default)] tokens_per_minute: String,
    #[server(default)] max_parallel: String,
    monthly_credits: String,
    max_active_keys: String,
    #[server(default)] allowed_models: String,
    #[server(default)] is_public: Option<String>,
    #[server(default)] sort_order: String,
) -> Result<String, FormError> {
    use crate::{admin::plans, request_meta::RequestMeta};
    let (state, admin) = super::admin::require_admin().await?;
    let form = PlanForm {
        name,
        description,
        requests_per_minute,
        requests_per_hour,
        requests_per_day,
        tokens_per_minute,
        max_parallel,
        monthly_credits,
        max_active_keys,
        allowed_models,
        is_public,
        sort_order,
    };
    let models = model_names(&state);
    let names = models.iter().map(String::as_str);
    let meta = RequestMeta::current();
    let saved = if create {
        plans::create_plan(&state.store, names, &meta, admin.id, &slug, &form).await
    } else {
        plans::update_plan(&state.store, names, &meta, admin.id, &slug, &form)
            .await
            .map(|()| slug.clone())
    };
    saved.map_err(|e| keep_form(super::admin_user::admin_refusal(e), &slug, &form))
}

#[server(endpoint = "admin/plans/retire")]
pub async fn admin_retire_plan(slug: String, retire: bool) -> Result<bool, FormError> {
    use crate::{admin::plans, request_meta::RequestMeta};
    let (state, admin) = super::admin::require_admin().await?;
    plans::set_retired(
        &state.store,
        &RequestMeta::current(),
        admin.id,
        &slug,
        retire,
    )
    .await
    .map_err(super::admin_user::admin_refusal)?;
    Ok(retire)
}

#[component]
pub fn AdminPlansPage() -> impl IntoView {
    view! {
        <Title text="Plans · Admin" />
        <AdminOnly><PlanList /></AdminOnly>
    }
}

#[component]
fn PlanList() -> impl IntoView {
    let save = ServerAction::<AdminSavePlan>::new();
    let error = last_error(save.value());
    let saved = super::forms::completions(save.value());
    let plans = Resource::new(move || saved.get(), |_| admin_plans());
    // The form is outside the table drawn again, so a refusal's focus stays.
    super::forms::focus_first_invalid(save.value(), "new-plan");
    let created = move || {
        save.value()
            .get()
            .and_then(Result::ok)
            .map(|slug| view! {
                <div role="status" class="mb-4 rounded-md border border-emerald-200 bg-emerald-50 p-3 text-sm text-emerald-800">
                    "Plan " <a class="font-semibold underline" href=format!("/admin/plans/{slug}")>{slug.clone()}</a> " created."
                </div>
            })
    };
    view! {
        <AdminTabs current="plans" />
        <h1 class="mb-6 text-3xl font-bold text-slate-900">"Plans"</h1>
        <div class=format!("{CARD} mb-6 overflow-x-auto")>
            <Transition fallback=|| view! { <p class="text-slate-500">"Loading plans…"</p> }>
                {move || Suspend::new(async move {
                    match plans.await {
                        Ok(rows) => view! {
                            <ScrollRegion label="Plans">
                            <table class="w-full text-left text-sm" data-testid="plans-table">
                                <thead class="text-slate-500">
                                    <tr><th class="py-2">"Plan"</th><th>"Status"</th><th class="text-right">"Users"</th><th>"Requests min / hour / day"</th><th class="text-right">"Tokens/min"</th><th class="text-right">"Parallel"</th><th class="text-right">"Credits/month"</th><th class="text-right">"Keys"</th><th>"Models"</th></tr>
                                </thead>
                                <tbody>
                                    {rows.into_iter().map(|p| {
                                        let status = [
                                            Some(if p.public { "public" } else { "private" }),
                                            p.default.then_some("default"),
                                            p.retired_at.is_some().then_some("retired"),
                                        ].into_iter().flatten().collect::<Vec<_>>().join(", ");
                                        view! {
                                            <tr class="border-t border-slate-100" data-testid=format!("plan-{}", p.slug)>
                                                <td class="py-2"><a href=format!("/admin/plans/{}", p.slug) class="text-amber-700 hover:underline">{p.name.clone()}</a>
                                                    <span class="ml-1 font-mono text-xs text-slate-500">{p.slug.clone()}</span></td>
                                                <td>{status}</td>
                                                <td class="text-right">{p.users}</td>
                                                <td>{p.requests.clone()}</td>
                                                <td class="text-right">{p.tokens_per_minute.map_or_else(|| "—".to_owned(), crate::credits::format_count)}</td>
                                                <td class="text-right">{p.max_parallel.map_or_else(|| "—".to_owned(), |n| n.to_string())}</td>
                                                <td class="text-right">{p.monthly_credits.clone()}</td>
                                                <td class="text-right">{p.max_active_keys}</td>
                                                <td>{p.models.clone()}</td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                            </ScrollRegion>
                        }.into_any(),
                        Err(e) => view! { <p role="alert" class="text-red-700">{e.message}</p> }.into_any(),
                    }
                })}
            </Transition>
        </div>
        <section class=CARD id="new-plan">
            <h2 class="mb-3 text-lg font-semibold">"New plan"</h2>
            {created}
            <FormAlert error />
            <ActionForm action=save>
                <input type="hidden" name="create" value="true" />
                <Field label="Id" name="slug" keep=true hint="Lowercase letters, digits and dashes; fixed once created." error />
                <PlanFields initial=PlanForm { requests_per_minute: "5".into(), requests_per_hour: "50".into(), requests_per_day: "100".into(), monthly_credits: "0".into(), max_active_keys: "3".into(), is_public: Some("on".into()), ..PlanForm::default() } error />
                <button type="submit" class=BUTTON>"Create plan"</button>
            </ActionForm>
        </section>
    }
}

/// The fields a plan's form has besides its id, filled with `initial`.
#[component]
fn PlanFields(initial: PlanForm, error: LastError) -> impl IntoView {
    // After a refused submission, as it was sent: a plain post (no JS)
    // renders the page again, which would otherwise tick the box afresh.
    let public = initial.is_public.is_some();
    let public = move || {
        error
            .get()
            .and_then(|e| e.value("is_public"))
            .map_or(public, |sent| sent == "on")
    };
    view! {
        <div class="grid gap-x-4 sm:grid-cols-2">
            <Field label="Name" name="name" keep=true initial=initial.name error />
            <Field label="Description" name="description" keep=true optional=true initial=initial.description error />
            <Field label="Requests a minute" name="requests_per_minute" keep=true initial=initial.requests_per_minute error />
            <Field label="Requests an hour" name="requests_per_hour" keep=true initial=initial.requests_per_hour error />
            <Field label="Requests a day" name="requests_per_day" keep=true initial=initial.requests_per_day error />
            <Field label="Tokens a minute" name="tokens_per_minute" keep=true optional=true hint="Empty: no token limit." initial=initial.tokens_per_minute error />
            <Field label="Parallel requests" name="max_parallel" keep=true optional=true hint="Empty: no limit." initial=initial.max_parallel error />
            <Field label="Credits a month" name="monthly_credits" keep=true hint="Granted at the first call of each month." initial=initial.monthly_credits error />
            <Field label="Active keys" name="max_active_keys" keep=true initial=initial.max_active_keys error />
            <Field label="Models" name="allowed_models" keep=true optional=true hint="Comma-separated; empty allows every model." initial=initial.allowed_models error />
            <Field label="Order" name="sort_order" keep=true optional=true hint="Lower comes first on /plans; empty puts the plan last." initial=initial.sort_order error />
        </div>
        <label class="mb-4 flex items-center gap-2 text-sm">
            <input type="checkbox" name="is_public" value="on" checked=public />
            "Public: users can pick it themselves on /plans"
        </label>
    }
}

#[component]
pub fn AdminPlanPage() -> impl IntoView {
    let params = use_params_map();
    let slug = Memo::new(move |_| params.read().get("slug").unwrap_or_default());
    view! {
        <Title text="Plan · Admin" />
        <AdminOnly><PlanEditor slug /></AdminOnly>
    }
}

/// One plan's editor. It is built once and fetches again when the slug
/// changes: a child closure on the slug would be called twice on the server,
/// fetching twice.
#[component]
fn PlanEditor(slug: Memo<String>) -> impl IntoView {
    let save = ServerAction::<AdminSavePlan>::new();
    let retire = ServerAction::<AdminRetirePlan>::new();
    let save_error = last_error(save.value());
    let retire_error = last_error(retire.value());
    let (saved, retired) = (
        super::forms::completions(save.value()),
        super::forms::completions(retire.value()),
    );
    let detail = Resource::new(
        move || (slug.get(), saved.get(), retired.get()),
        |(slug, ..)| admin_plan(slug),
    );
    let outcome = LastOutcome::new(None);
    record_outcome(
        outcome,
        save.value(),
        "Plan saved. Its users get the new settings from their next request.",
    );
    super::forms::record_outcome_by(outcome, retire.value(), |retired| {
        if *retired {
            "Plan retired: it takes no new users; the accounts on it keep it."
        } else {
            "Plan restored: it takes new users again."
        }
    });
    let refocus = Refocus::default();
    refocus.after(save.value(), "plan-settings");
    refocus.after(retire.value(), "plan-retire");
    let done = move || outcome.get().and_then(Result::ok);
    view! {
        <AdminTabs current="plans" />
        <p class="mb-2 text-sm"><a href="/admin/plans" class="text-amber-700 hover:underline">"← All plans"</a></p>
        <Transition fallback=|| view! { <p class="text-slate-500">"Loading the plan…"</p> }>
            {move || Suspend::new(async move {
                let d = match detail.await {
                    Ok(d) => d,
                    Err(e) => return view! { <p role="alert" class="text-red-700">{e.message}</p> }.into_any(),
                };
                refocus.drawn();
                let retired = d.row.retired_at.is_some();
                let slug = d.row.slug.clone();
                let retire_slug = slug.clone();
                let state = match (&d.row.retired_at, d.row.default) {
                    (Some(at), _) => format!("Retired {}: takes no new users. {} on it.", &at[..10.min(at.len())], users(d.row.users)),
                    (None, true) => format!("The default plan for new accounts. {} on it.", users(d.row.users)),
                    (None, false) => format!("Takes new users. {} on it.", users(d.row.users)),
                };
                view! {
                    <h1 class="mb-1 text-3xl font-bold text-slate-900">{d.row.name.clone()}</h1>
                    <NeedsScript what="Retiring a plan" />
                    <p class="mb-6 text-slate-600" data-testid="plan-state">{state}</p>
                    <FormStatus message=Signal::derive(done) />
                    <section class=format!("{CARD} mb-6") id="plan-settings">
                        <h2 class="mb-3 text-lg font-semibold">"Settings"</h2>
                        <FormAlert error=save_error />
                        <ActionForm action=save>
                            <input type="hidden" name="create" value="false" />
                            <input type="hidden" name="slug" value=slug.clone() />
                            <PlanFields initial=d.form.clone() error=save_error />
                            <button type="submit" class=BUTTON>"Save plan"</button>
                        </ActionForm>
                    </section>
                    {if d.row.default && !retired {
                        view! {
                            <section class=CARD>
                                <h2 class="mb-3 text-lg font-semibold">"Retire"</h2>
                                <p class="text-sm text-slate-600">"New accounts get the default plan, so it cannot be retired."</p>
                            </section>
                        }.into_any()
                    } else {
                        view! {
                            <section class=CARD id="plan-retire">
                                <h2 class="mb-3 text-lg font-semibold">{if retired { "Restore" } else { "Retire" }}</h2>
                                <FormAlert error=retire_error />
                                <p class="mb-3 text-sm text-slate-600">{if retired {
                                    "A restored plan can be assigned and, if public, picked on /plans again."
                                } else {
                                    "A retired plan takes no new users and leaves /plans; its users keep it until they or an admin move them."
                                }}</p>
                                <ActionForm action=retire>
                                    <input type="hidden" name="slug" value=retire_slug />
                                    <input type="hidden" name="retire" value=(!retired).to_string() />
                                    <SubmitAskingFirst class=if retired { BUTTON } else { DANGER_BUTTON }
                                        question=(!retired).then(|| "Retire this plan? It takes no new users.".to_owned())
                                        label=if retired { "Restore plan" } else { "Retire plan" }
                                        yes="Yes, retire plan" busy=retire.pending().into()>
                                        {if retired { "Restore plan" } else { "Retire plan" }}
                                    </SubmitAskingFirst>
                                </ActionForm>
                            </section>
                        }.into_any()
                    }}
                }.into_any()
            })}
        </Transition>
    }
}

fn users(n: i64) -> String {
    match n {
        0 => "No accounts".to_owned(),
        1 => "1 account".to_owned(),
        n => format!("{n} accounts"),
    }
}
