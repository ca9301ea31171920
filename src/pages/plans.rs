//! `/plans`: the public plans side by side; switching takes one click. Below
//! them, every model's prices, marked where the user's plan includes it.

use leptos::prelude::*;
use leptos_meta::Title;

use super::{
    forms::{
        BUTTON, CARD, ConfirmBar, FormAlert, FormStatus, NeedsScript, ScrollRegion, focus_by_id,
        hydrated, last_error,
    },
    nav::SignedInOnly,
};
use crate::{
    accounts::types::FormError,
    credits::{format_count, format_credits_grouped},
    keys::types::{ModelPrice, PlanView},
};

#[server(endpoint = "plans")]
pub async fn list_plans() -> Result<Vec<PlanView>, FormError> {
    use crate::{keys::service, server_ctx};
    let (state, _, user) = server_ctx::signed_in_user().await?;
    service::plans_for(&state.store, user.id)
        .await
        .map_err(server_ctx::internal)
}

#[server(endpoint = "plans/models")]
pub async fn list_model_prices() -> Result<Vec<ModelPrice>, FormError> {
    use crate::{keys::service, server_ctx};
    let (state, _, user) = server_ctx::signed_in_user().await?;
    let plan = state
        .store
        .plan_of_user(user.id)
        .await
        .map_err(server_ctx::internal)?;
    Ok(service::model_prices(&state.gateway.models, &plan))
}

#[server(endpoint = "plans/switch")]
pub async fn switch_plan(plan: String) -> Result<(), FormError> {
    use crate::{keys::service, request_meta::RequestMeta, server_ctx};
    let (state, _, user) = server_ctx::signed_in_user().await?;
    let switch = service::switch_plan(&state.store, &RequestMeta::current(), user.id, &plan)
        .await
        .map_err(server_ctx::internal)?;
    match switch.refusal(&plan) {
        None => Ok(()),
        Some(message) => {
            server_ctx::set_status(axum::http::StatusCode::CONFLICT, None);
            Err(FormError::new(message))
        }
    }
}

#[component]
pub fn PlansPage() -> impl IntoView {
    view! {
        <Title text="Plans" />
        <SignedInOnly><PlanCards /></SignedInOnly>
    }
}

#[component]
fn PlanCards() -> impl IntoView {
    let switch = ServerAction::<SwitchPlan>::new();
    let error = last_error(switch.value());
    let switched = super::forms::completions(switch.value());
    let plans = Resource::new(move || switched.get(), |_| list_plans());
    // Which models are on the plan changes with it.
    let prices = Resource::new(move || switched.get(), |_| list_model_prices());
    // The button pressed is gone once its plan is current: focus goes to the
    // page's heading, and the switch is said.
    let switched = move || {
        switch
            .value()
            .get()
            .is_some_and(|result| result.is_ok())
            .then_some(
                "Plan switched. Its limits apply from your next request; its monthly credits \
                 from next month's grant.",
            )
    };
    Effect::watch(
        move || switched().is_some(),
        |done, _, _| {
            if *done {
                focus_by_id("plans-title");
            }
        },
        false,
    );

    view! {
        <h1 id="plans-title" tabindex="-1" class="mb-2 text-3xl font-bold text-slate-900">"Plans"</h1>
        <NeedsScript what="Switching plans" />
        <p class="mb-6 text-slate-600">"A plan sets how often your keys may call the models. A switch applies to the next request."</p>
        <FormAlert error />
        <FormStatus message=Signal::derive(switched) />
        <Transition fallback=|| view! { <p class="text-slate-500">"Loading plans…"</p> }>
            {move || Suspend::new(async move {
                match plans.await {
                    Ok(plans) => view! {
                        <div class="grid gap-4 sm:grid-cols-3">
                            {
                                // A plan no longer offered is gone for good once left.
                                let leaving = plans.iter().find(|p| p.current && !p.offered).map(|p| p.name.clone());
                                plans.into_iter().map(|plan| view! { <PlanCard plan switch leaving=leaving.clone() /> }).collect_view()
                            }
                        </div>
                    }.into_any(),
                    Err(e) => view! { <p role="alert" class="text-red-700">{e.message}</p> }.into_any(),
                }
            })}
        </Transition>
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                prices.await.ok().map(|prices| view! { <PriceTable prices /> })
            })}
        </Transition>
    }
}

/// What each model costs, for choosing one and reading the usage page's
/// credits.
#[component]
fn PriceTable(prices: Vec<ModelPrice>) -> impl IntoView {
    view! {
        <section class=format!("{CARD} mt-8")>
            <h2 class="mb-1 text-lg font-semibold">"Models and prices"</h2>
            <p class="mb-3 text-sm text-slate-600">
                "Credits per 1,000 tokens. A call costs its prompt tokens at the input price plus its reply tokens at the output price, rounded up to the next millionth of a credit."
            </p>
            <ScrollRegion label="Models and prices">
                <table class="w-full text-left text-sm" data-testid="model-prices">
                    <thead class="text-slate-500">
                        <tr><th class="py-2">"Model"</th><th class="text-right">"Input"</th><th class="text-right">"Output"</th><th class="pl-4">"Your plan"</th></tr>
                    </thead>
                    <tbody>
                        {prices.into_iter().map(|price| view! {
                            <tr class="border-t border-slate-100">
                                <td class="py-1"><code>{price.name}</code></td>
                                <td class="text-right">{price.input_per_1k}</td>
                                <td class="text-right">{price.output_per_1k}</td>
                                <td class="pl-4">{if price.on_plan { "included" } else { "not included" }}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </ScrollRegion>
        </section>
    }
}

#[component]
fn PlanCard(
    plan: PlanView,
    switch: ServerAction<SwitchPlan>,
    /// The user's current plan's name when it is no longer offered: a switch
    /// asks first.
    leaving: Option<String>,
) -> impl IntoView {
    let ready = hydrated();
    let border = if plan.current {
        "border-amber-400 ring-2 ring-amber-300"
    } else {
        "border-slate-200"
    };
    let row = |label: &'static str, value: String| {
        view! {
            <div class="flex justify-between py-1">
                <dt class="text-slate-500">{label}</dt>
                <dd class="font-medium">{value}</dd>
            </div>
        }
    };
    let optional = |v: Option<i64>| v.map_or_else(|| "no limit".to_owned(), format_count);
    let models = plan
        .allowed_models
        .clone()
        .map_or_else(|| "all".to_owned(), |m| m.join(", "));
    let slug = plan.id.clone();
    view! {
        <section class=format!("flex flex-col rounded-lg border bg-white p-5 shadow-sm {border}") data-testid=format!("plan-{}", plan.id)>
            <div class="flex items-baseline justify-between">
                <h2 class="text-xl font-semibold">{plan.name.clone()}</h2>
                {plan.current.then(|| view! { <span class="rounded bg-amber-100 px-2 py-0.5 text-xs font-semibold text-amber-800">"Current"</span> })}
            </div>
            <p class="mt-1 text-sm text-slate-600">{plan.description.clone()}</p>
            <p class="mt-4 text-3xl font-bold">{format_count(plan.requests_per_day)} <span class="text-base font-normal text-slate-500">" requests / day"</span></p>
            <dl class="mt-4 flex-1 text-sm">
                {row("Per minute", format_count(plan.requests_per_minute))}
                {row("Per hour", format_count(plan.requests_per_hour))}
                {row("Tokens per minute", optional(plan.tokens_per_minute))}
                {row("Parallel requests", optional(plan.max_parallel))}
                {row("Monthly credits", format_credits_grouped(plan.monthly_credits_micros))}
                {row("Active keys", format_count(plan.max_active_keys))}
                {row("Models", models)}
            </dl>
            {(plan.current && !plan.offered).then(|| view! {
                <p class="mt-4 rounded-md bg-amber-50 p-2 text-sm text-amber-800" data-testid="plan-not-offered">
                    "This plan is no longer offered (retired, or kept for some accounts by an admin). You keep it until you switch; if you switch, you cannot switch back."
                </p>
            })}
            {if plan.current {
                view! { <p class="mt-4 text-center text-sm text-slate-500">"Your plan"</p> }.into_any()
            } else {
                let dispatch = move || {
                    switch.dispatch(SwitchPlan { plan: slug.clone() });
                };
                let asking = RwSignal::new(false);
                let opener = NodeRef::<leptos::html::Button>::new();
                let question = leaving.as_ref().map(|name| {
                    format!("Leave {name}? It is no longer offered, so you cannot switch back to it.")
                });
                let label = format!("Switch to {}", plan.name);
                let asks = question.is_some();
                let bar = question.map(|question| {
                    let dispatch = dispatch.clone();
                    view! {
                        <ConfirmBar asking opener name=label.clone() question yes=format!("Yes, switch to {}", plan.name)
                            busy=Some(switch.pending().into()) submits=false
                            on_yes=Some(Callback::new(move |()| dispatch())) />
                    }
                });
                view! {
                    <button
                        node_ref=opener
                        class=format!("mt-4 {BUTTON}")
                        disabled=move || !ready.get()
                        // Busy, it ignores presses (a second switch would be made).
                        aria-disabled=move || switch.pending().get().then_some("true")
                        aria-expanded=move || asks.then(|| asking.get().to_string())
                        on:click=move |_| {
                            if switch.pending().get_untracked() {
                                return;
                            }
                            // Leaving a plan no longer offered asks first.
                            if asks {
                                asking.update(|open| *open = !*open);
                            } else {
                                dispatch();
                            }
                        }
                    >
                        {label.clone()}
                    </button>
                    {bar}
                }.into_any()
            }}
        </section>
    }
}
