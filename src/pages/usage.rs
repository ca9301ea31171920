//! `/usage`: what the user's keys did. The plan's windows as they stand, the
//! balance, 30 days of requests, tokens and credits as bar charts (SVG drawn
//! on the server), spending by model and by key, the 50 latest calls, and a
//! CSV export of the calls of any days.

use leptos::prelude::*;
use leptos_meta::Title;

use super::{
    forms::{CARD, ScrollRegion},
    nav::SignedInOnly,
};
use crate::{accounts::types::FormError, usage::types::UsageReport};

#[server(endpoint = "usage")]
pub async fn fetch_usage_report() -> Result<UsageReport, FormError> {
    use crate::{server_ctx, usage::service};
    let (state, _, user) = server_ctx::signed_in_user().await?;
    service::report(&state.store, &state.gateway, user.id)
        .await
        .map_err(|e| server_ctx::refuse(e.into()))
}

#[component]
pub fn UsagePage() -> impl IntoView {
    view! {
        <Title text="Usage" />
        <SignedInOnly><Usage /></SignedInOnly>
    }
}

#[component]
fn Usage() -> impl IntoView {
    let report = Resource::new(|| (), |_| fetch_usage_report());
    view! {
        <h1 class="mb-2 text-3xl font-bold text-slate-900">"Usage"</h1>
        <p class="mb-6 text-slate-600">"Your keys' calls over the last 30 days (UTC). Calls appear here as soon as they end."</p>
        <Suspense fallback=|| view! { <p class="text-slate-500">"Loading usage…"</p> }>
            {move || Suspend::new(async move {
                match report.await {
                    Ok(report) => view! { <Report report /> }.into_any(),
                    Err(e) => view! { <p role="alert" class="text-red-700">{e.message}</p> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Report(report: UsageReport) -> impl IntoView {
    let requests: Vec<(String, i64)> = report
        .days
        .iter()
        .map(|d| (d.day.clone(), d.requests))
        .collect();
    let tokens: Vec<(String, i64)> = report
        .days
        .iter()
        .map(|d| (d.day.clone(), d.tokens))
        .collect();
    let credits: Vec<(String, i64)> = report
        .days
        .iter()
        .map(|d| (d.day.clone(), d.cost_micros))
        .collect();
    let total_requests = report.total_requests();
    let total_tokens = report.total_tokens();
    view! {
        <div class="mb-6 grid gap-4 sm:grid-cols-3">
            <div class=CARD>
                <p class="text-sm text-slate-500">"Plan"</p>
                <p class="text-2xl font-semibold" data-testid="usage-plan">{report.plan.clone()}</p>
                <a href="/plans" class="text-sm text-amber-700 hover:underline">"Compare plans"</a>
            </div>
            <div class=CARD>
                <p class="text-sm text-slate-500">"Balance"</p>
                <p class="text-2xl font-semibold" data-testid="usage-balance">{format!("{} credits", report.balance)}</p>
            </div>
            <div class=CARD>
                <p class="text-sm text-slate-500">"Last 30 days"</p>
                <p class="text-2xl font-semibold">{format!("{total_requests} requests")}</p>
                <p class="text-sm text-slate-500">{format!("{total_tokens} tokens")}</p>
            </div>
        </div>

        <section class=format!("{CARD} mb-6")>
            <h2 class="mb-3 text-lg font-semibold">"Your plan's windows now"</h2>
            <ul class="space-y-3">
                {report.windows.iter().map(|w| {
                    let share = if w.limit > 0 { (w.used.min(w.limit) * 100) / w.limit } else { 0 };
                    let colour = if w.used >= w.limit { "bg-red-500" } else if share >= 80 { "bg-amber-500" } else { "bg-emerald-500" };
                    view! {
                        <li data-testid="usage-window">
                            <div class="flex justify-between text-sm">
                                <span>{w.label.clone()}</span>
                                <span class="font-medium">{window_use(w.used, w.limit)}</span>
                            </div>
                            <div class="mt-1 h-2 rounded bg-slate-100" role="meter" aria-valuemin="0" aria-valuemax=w.limit aria-valuenow=w.used.min(w.limit) aria-label=w.label.clone()>
                                <div class=format!("h-2 rounded {colour}") style=format!("width: {share}%")></div>
                            </div>
                        </li>
                    }
                }).collect_view()}
            </ul>
        </section>

        <div class="mb-6 grid gap-4 lg:grid-cols-3">
            <BarChart title="Requests per day" testid="chart-requests" points=requests format=crate::credits::format_count />
            <BarChart title="Tokens per day" testid="chart-tokens" points=tokens format=crate::credits::format_count />
            <BarChart title="Credits per day" testid="chart-credits" points=credits format=crate::credits::format_credits_grouped />
        </div>

        <div class="mb-6 grid gap-4 lg:grid-cols-2">
            <GroupTable title="By model" rows=report.by_model.clone() />
            <GroupTable title="By key" rows=report.by_key.clone() />
        </div>

        <section class=CARD>
            <h2 class="mb-3 text-lg font-semibold">"Recent requests"</h2>
            {if report.recent.is_empty() {
                view! { <p class="text-sm text-slate-500">"No calls yet. Try the "<a href="/playground" class="text-amber-700 underline">"playground"</a>"."</p> }.into_any()
            } else {
                view! {
                    <ScrollRegion label="Recent calls">
                        <table class="w-full text-left text-sm" data-testid="recent-calls">
                            <thead class="text-slate-500">
                                <tr><th class="py-2">"Time (UTC)"</th><th>"Key"</th><th>"Model"</th><th>"Status"</th><th class="text-right">"Tokens"</th><th class="text-right">"Credits"</th><th class="text-right">"Latency"</th></tr>
                            </thead>
                            <tbody>
                                {report.recent.iter().map(|c| {
                                    let status = match &c.error_code {
                                        Some(code) => format!("{} {code}", c.status),
                                        None => c.status.to_string(),
                                    };
                                    view! {
                                        <tr class="border-t border-slate-100">
                                            <td class="py-1 whitespace-nowrap">{super::forms::shown_time(&c.at)}</td>
                                            <td>{c.key.clone()}</td>
                                            <td>{c.model.clone()}</td>
                                            <td>{status}</td>
                                            <td class="text-right">{c.tokens}</td>
                                            <td class="text-right">{c.credits.clone()}</td>
                                            <td class="text-right">{format!("{} ms", c.latency_ms)}</td>
                                        </tr>
                                    }
                                }).collect_view()}
                            </tbody>
                        </table>
                    </ScrollRegion>
                }.into_any()
            }}
        </section>

        <ExportForm first_day=report.days.first().map(|d| d.day.clone()).unwrap_or_default()
            last_day=report.days.last().map(|d| d.day.clone()).unwrap_or_default() />
    }
}

/// Downloads the calls of the days chosen as CSV: a plain form (a GET of
/// the export), so it works before the page's code has loaded, or without it.
/// The browser keeps the days in order and in range (each field's `min` and
/// `max`), so a mistake is said at the field, not by the export's JSON. The
/// days are served in the fields' `value`, for a browser without the code.
#[component]
fn ExportForm(first_day: String, last_day: String) -> impl IntoView {
    let input = "rounded-md border border-slate-300 px-3 py-2 text-sm";
    let from = RwSignal::new(first_day);
    let to = RwSignal::new(last_day);
    view! {
        <section id="usage-export" class=format!("{CARD} mt-6")>
            <h2 class="mb-1 text-lg font-semibold">"Export"</h2>
            <p class="mb-3 text-sm text-slate-600">
                "Every call of the days chosen, oldest first, as a CSV file: time (UTC), request id, key, model, status, tokens, credits (exactly as charged) and latency."
            </p>
            <form method="get" action="/api/v1/usage/export" class="flex flex-wrap items-end gap-3">
                <label class="text-sm font-medium text-slate-700">
                    "From" <input type="date" name="from" required class=format!("mt-1 block {input}")
                        min="0001-01-01" max=move || to.get()
                        value=from.get_untracked() on:input=move |ev| from.set(event_target_value(&ev)) />
                </label>
                <label class="text-sm font-medium text-slate-700">
                    "To" <input type="date" name="to" required class=format!("mt-1 block {input}")
                        min=move || from.get() max="9998-12-31"
                        value=to.get_untracked() on:input=move |ev| to.set(event_target_value(&ev)) />
                </label>
                <button type="submit" class=super::forms::BUTTON>"Download CSV"</button>
            </form>
        </section>
    }
}

#[component]
fn GroupTable(title: &'static str, rows: Vec<crate::usage::types::GroupRow>) -> impl IntoView {
    view! {
        <section class=CARD>
            <h2 class="mb-3 text-lg font-semibold">{title}</h2>
            {if rows.is_empty() {
                view! { <p class="text-sm text-slate-500">"Nothing in the last 30 days."</p> }.into_any()
            } else {
                view! {
                    <table class="w-full text-left text-sm">
                        <thead class="text-slate-500">
                            <tr><th class="py-2">"Name"</th><th class="text-right">"Requests"</th><th class="text-right">"Tokens"</th><th class="text-right">"Credits"</th></tr>
                        </thead>
                        <tbody>
                            {rows.into_iter().map(|r| view! {
                                <tr class="border-t border-slate-100">
                                    <td class="py-1">{r.name}</td>
                                    <td class="text-right">{r.requests}</td>
                                    <td class="text-right">{r.tokens}</td>
                                    <td class="text-right">{r.credits}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </section>
    }
}

const CHART_WIDTH: i64 = 300;
const CHART_HEIGHT: i64 = 120;

/// A bar per day, scaled to the largest; each bar names its day and value.
#[component]
pub fn BarChart(
    title: &'static str,
    testid: &'static str,
    points: Vec<(String, i64)>,
    format: fn(i64) -> String,
) -> impl IntoView {
    let max = points.iter().map(|(_, v)| *v).max().unwrap_or(0).max(1);
    let n = points.len().max(1) as i64;
    let slot = CHART_WIDTH / n;
    let first = points.first().map(|(d, _)| d.clone()).unwrap_or_default();
    let last = points.last().map(|(d, _)| d.clone()).unwrap_or_default();
    let peak = format(points.iter().map(|(_, v)| *v).max().unwrap_or(0));
    // The bars' values, for whoever cannot point at each bar (a keyboard, a
    // screen reader).
    let rows = points
        .iter()
        .map(|(day, value)| {
            view! { <tr><td class="pr-4">{day.clone()}</td><td class="text-right">{format(*value)}</td></tr> }
        })
        .collect_view();
    view! {
        <figure class=CARD data-testid=testid>
            <figcaption class="mb-2 flex justify-between text-sm">
                <span class="font-semibold">{title}</span>
                <span class="text-slate-500">{format!("peak {peak}")}</span>
            </figcaption>
            <svg viewBox=format!("0 0 {CHART_WIDTH} {}", CHART_HEIGHT + 1) class="w-full" role="img" aria-label=title>
                <line x1="0" y1=CHART_HEIGHT x2=CHART_WIDTH y2=CHART_HEIGHT stroke="#cbd5e1" stroke-width="1" />
                {points.into_iter().enumerate().map(|(i, (day, value))| {
                    // In i128: a day's micro-credits times the height can pass i64's limit.
                    let h = if value > 0 {
                        ((i128::from(value) * i128::from(CHART_HEIGHT) / i128::from(max)) as i64).max(2)
                    } else {
                        0
                    };
                    view! {
                        <rect x=(i as i64) * slot + 1 y=CHART_HEIGHT - h width=(slot - 2).max(1) height=h fill="#f59e0b" data-value=value>
                            <title>{format!("{day}: {}", format(value))}</title>
                        </rect>
                    }
                }).collect_view()}
            </svg>
            // Outside the drawing, so the labels keep the page's text size
            // (inside, they shrank with the chart: tiny on a phone).
            <div class="mt-1 flex justify-between text-xs text-slate-500" data-testid=format!("{testid}-span")>
                <span>{first}</span>
                <span>{last}</span>
            </div>
            <details class="mt-2 text-sm">
                <summary class="cursor-pointer text-slate-600">"Show as a table"</summary>
                <table class="mt-2 text-left">
                    <thead class="text-slate-500"><tr><th class="pr-4 font-normal">"When"</th><th class="text-right font-normal">{title}</th></tr></thead>
                    <tbody>{rows}</tbody>
                </table>
            </details>
        </figure>
    }
}

/// A window's use in words, saying "used" (the playground counts what is
/// left). More than the limit is possible after an admin lowered it: the
/// calls were made under the old one.
fn window_use(used: i64, limit: i64) -> String {
    if used > limit {
        format!("{used} requests used, over the limit of {limit} (lowered since): none left")
    } else if used == limit {
        format!("{used} of {limit} requests used: none left")
    } else {
        format!("{used} of {limit} requests used")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_window_over_its_limit_says_so() {
        assert_eq!(super::window_use(3, 5), "3 of 5 requests used");
        assert_eq!(super::window_use(5, 5), "5 of 5 requests used: none left");
        assert!(super::window_use(7, 5).starts_with("7 requests used, over the limit of 5"));
    }
}
