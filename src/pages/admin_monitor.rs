//! `/admin/monitor` (calls, errors, latency, busiest users and keys, limit
//! refusals; refreshing on its own) and `/admin/security` (failed logins,
//! refused and revoked keys, rate-limit hits by address): administrators only.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;

use super::{
    admin::{AdminOnly, AdminTabs},
    forms::{CARD, ScrollRegion},
    usage::BarChart,
};
use crate::{
    accounts::types::FormError,
    monitor::types::{MonitorReport, Point, RefusalView, SecurityReport, TopRow, WINDOWS},
};

/// How often the monitor refreshes itself.
const REFRESH_SECS: u64 = 10;

#[cfg(feature = "ssr")]
fn window_of(text: &str) -> Result<crate::monitor::service::Window, FormError> {
    crate::monitor::service::Window::parse(text).ok_or_else(|| {
        crate::server_ctx::set_status(axum::http::StatusCode::UNPROCESSABLE_ENTITY, None);
        FormError::new("The window is hour, day or week.").field("window", "hour, day or week")
    })
}

#[server(endpoint = "admin/monitor")]
pub async fn admin_monitor(window: String) -> Result<MonitorReport, FormError> {
    let (state, _) = super::admin::require_admin().await?;
    crate::monitor::service::monitor(&state.store, window_of(&window)?, chrono::Utc::now())
        .await
        .map_err(crate::server_ctx::internal)
}

#[server(endpoint = "admin/security")]
pub async fn admin_security(window: String) -> Result<SecurityReport, FormError> {
    let (state, _) = super::admin::require_admin().await?;
    crate::monitor::service::security(&state.store, window_of(&window)?, chrono::Utc::now())
        .await
        .map_err(crate::server_ctx::internal)
}

/// The `?window=` of the page (default `hour` or `day`).
fn window_param(default: &'static str) -> Memo<String> {
    let query = use_query_map();
    Memo::new(move |_| {
        query
            .read()
            .get("window")
            .filter(|w| WINDOWS.contains(&w.as_str()))
            .unwrap_or_else(|| default.to_owned())
    })
}

#[component]
fn WindowLinks(path: &'static str, current: Memo<String>) -> impl IntoView {
    view! {
        <nav class="mb-4 flex gap-2 text-sm" aria-label="Window">
            {WINDOWS.iter().map(|w| {
                let class = move || if current.get() == *w {
                    "rounded-md border border-slate-900 px-3 py-1 font-medium"
                } else {
                    "rounded-md border border-slate-200 px-3 py-1 text-slate-600 hover:bg-slate-100"
                };
                // "true", not "page": the admin tab is the page.
                let shown = move || (current.get() == *w).then_some("true");
                view! { <a href=format!("{path}?window={w}") class=class aria-current=shown>{format!("Last {w}")}</a> }
            }).collect_view()}
        </nav>
    }
}

#[component]
pub fn AdminMonitorPage() -> impl IntoView {
    view! {
        <Title text="Monitor · Admin" />
        <AdminOnly><Monitor /></AdminOnly>
    }
}

#[component]
fn Monitor() -> impl IntoView {
    let window = window_param("hour");
    let tick = RwSignal::new(0u64);
    let paused = RwSignal::new(false);
    // In the browser only (effects do not run on the server). Not while
    // paused, nor while someone reads in the figures: a refresh builds them
    // again, which would close an opened table and drop the focus.
    Effect::new(move |_| {
        if let Ok(handle) = set_interval_with_handle(
            move || {
                if !paused.get_untracked() && !reading_figures() {
                    tick.update(|n| *n += 1);
                }
            },
            std::time::Duration::from_secs(REFRESH_SECS),
        ) {
            on_cleanup(move || handle.clear());
        }
    });
    let report = Resource::new(
        move || (window.get(), tick.get()),
        |(w, _)| admin_monitor(w),
    );
    view! {
        <AdminTabs current="monitor" />
        <h1 class="mb-2 text-3xl font-bold text-slate-900">"Monitor"</h1>
        <p class="mb-4 flex flex-wrap items-center gap-3 text-sm text-slate-500">
            {format!("Model API calls. Refreshes every {REFRESH_SECS} seconds, except while a table is open or the focus is in the figures.")}
            <button type="button" class="rounded-md border border-slate-300 px-2 py-0.5 text-slate-700 hover:bg-slate-100"
                aria-pressed=move || paused.get().to_string()
                on:click=move |_| paused.update(|p| *p = !*p)>
                {move || if paused.get() { "Resume updates" } else { "Pause updates" }}
            </button>
        </p>
        <WindowLinks path="/admin/monitor" current=window />
        <div id="monitor-figures">
        <Transition fallback=|| view! { <p class="text-slate-500">"Loading figures…"</p> }>
            {move || Suspend::new(async move {
                match report.await {
                    Ok(r) => view! { <MonitorView r /> }.into_any(),
                    // Signed out elsewhere: the refreshes go on, so signing
                    // in again (another tab) brings the figures back.
                    Err(e) => view! {
                        <p role="alert" class="text-red-700">
                            {e.message}
                            {e.signed_out.then(|| view! {
                                " "
                                <a href=super::nav::login_and_back() class="font-medium underline">"Log in"</a>
                            })}
                        </p>
                    }.into_any(),
                }
            })}
        </Transition>
        </div>
    }
}

/// Whether the focus is in the monitor's figures, or one of their tables is
/// open.
fn reading_figures() -> bool {
    #[cfg(feature = "hydrate")]
    {
        let focused = document()
            .active_element()
            .and_then(|element| element.closest("#monitor-figures").ok().flatten())
            .is_some();
        let open = document()
            .query_selector("#monitor-figures details[open]")
            .ok()
            .flatten()
            .is_some();
        focused || open
    }
    #[cfg(not(feature = "hydrate"))]
    false
}

#[component]
fn MonitorView(r: MonitorReport) -> impl IntoView {
    let series: Vec<(String, i64)> = r
        .series
        .iter()
        .map(|p| (p.label.clone(), p.count))
        .collect();
    let per = if r.window == "hour" {
        "minute"
    } else if r.window == "day" {
        "hour"
    } else {
        "day"
    };
    let stat = |label: &'static str, value: String, testid: &'static str| {
        view! {
            <div class=CARD>
                <p class="text-sm text-slate-500">{label}</p>
                <p class="text-2xl font-semibold" data-testid=testid>{value}</p>
            </div>
        }
    };
    view! {
        <div class="mb-6 grid gap-4 sm:grid-cols-3">
            // Refused ones too (limits, keys, unknown models); the tables
            // below count the calls let through, which are charged.
            {stat("Calls, refused ones included", r.requests.to_string(), "monitor-requests")}
            {stat("Calls a minute", r.requests_per_minute.clone(), "monitor-rpm")}
            {stat("Error rate", format!("{}% ({} errors)", r.error_rate_percent, r.errors), "monitor-errors")}
        </div>
        <div class="mb-6">
            // The bars' labels are UTC, as every time on these pages.
            <BarChart title=if per == "minute" { "Calls per minute (UTC)" } else if per == "hour" { "Calls per hour (UTC)" } else { "Calls per day (UTC)" } testid="chart-calls" points=series format=crate::credits::format_count />
        </div>
        <div class="mb-6 grid gap-4 lg:grid-cols-3">
            <CountTable title="By status" head="Status" rows=r.by_status testid="by-status" />
            <CountTable title="Limit refusals" head="Limit" rows=r.rejections testid="rejections" />
            <section class=CARD>
                <h2 class="mb-3 text-lg font-semibold">"Upstream latency by model"</h2>
                <table class="w-full text-left text-sm" data-testid="latency">
                    <thead class="text-slate-500"><tr><th class="py-1">"Model"</th><th class="text-right">"Calls"</th><th class="text-right">"p50"</th><th class="text-right">"p99"</th></tr></thead>
                    <tbody>
                        {r.latency.into_iter().map(|l| view! {
                            <tr class="border-t border-slate-100">
                                <td class="py-1">{l.model}</td>
                                <td class="text-right">{l.calls}</td>
                                <td class="text-right">{format!("{} ms", l.p50_ms)}</td>
                                <td class="text-right">{format!("{} ms", l.p99_ms)}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </section>
        </div>
        <div class="grid gap-4 lg:grid-cols-2">
            <TopTable title="Top users by calls" rows=r.top_users_by_requests users=true testid="top-users-requests" />
            <TopTable title="Top users by credits" rows=r.top_users_by_credits users=true testid="top-users-credits" />
            <TopTable title="Top keys by calls" rows=r.top_keys_by_requests users=false testid="top-keys-requests" />
            <TopTable title="Top keys by credits" rows=r.top_keys_by_credits users=false testid="top-keys-credits" />
        </div>
    }
}

#[component]
fn CountTable(
    title: &'static str,
    head: &'static str,
    rows: Vec<Point>,
    testid: &'static str,
) -> impl IntoView {
    let empty = rows.is_empty();
    view! {
        <section class=CARD>
            <h2 class="mb-3 text-lg font-semibold">{title}</h2>
            // No header over no rows.
            {empty.then(|| view! { <p class="text-sm text-slate-500">"None."</p> })}
            {(!empty).then(|| view! {
                <table class="w-full text-left text-sm" data-testid=testid>
                    <thead class="text-slate-500"><tr><th class="py-1">{head}</th><th class="text-right">"Count"</th></tr></thead>
                    <tbody>
                        {rows.into_iter().map(|p| view! {
                            <tr class="border-t border-slate-100"><td class="py-1 font-mono">{p.label}</td><td class="text-right">{p.count}</td></tr>
                        }).collect_view()}
                    </tbody>
                </table>
            })}
        </section>
    }
}

#[component]
fn TopTable(
    title: &'static str,
    rows: Vec<TopRow>,
    users: bool,
    testid: &'static str,
) -> impl IntoView {
    let empty = rows.is_empty();
    view! {
        <section class=CARD>
            <h2 class="mb-3 text-lg font-semibold">{title}</h2>
            {empty.then(|| view! { <p class="text-sm text-slate-500">"No calls."</p> })}
            <table class="w-full text-left text-sm" data-testid=testid>
                <thead class="text-slate-500"><tr><th class="py-1">{if users { "User" } else { "Key" }}</th><th class="text-right">"Calls let through"</th><th class="text-right">"Credits"</th></tr></thead>
                <tbody>
                    {rows.into_iter().map(|t| view! {
                        <tr class="border-t border-slate-100">
                            <td class="py-1">{if users {
                                view! { <a href=format!("/admin/users/{}", t.id) class="text-amber-700 hover:underline">{t.label}</a> }.into_any()
                            } else {
                                view! { <span class="font-mono text-xs">{t.label}</span> }.into_any()
                            }}</td>
                            <td class="text-right">{t.requests}</td>
                            <td class="text-right">{t.credits}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </section>
    }
}

#[component]
pub fn AdminSecurityPage() -> impl IntoView {
    view! {
        <Title text="Security · Admin" />
        <AdminOnly><Security /></AdminOnly>
    }
}

#[component]
fn Security() -> impl IntoView {
    let window = window_param("day");
    let report = Resource::new(move || window.get(), admin_security);
    view! {
        <AdminTabs current="security" />
        <h1 class="mb-2 text-3xl font-bold text-slate-900">"Security"</h1>
        <p class="mb-4 text-sm text-slate-500">"Failed sign-ins, keys refused by their rules, revoked keys still in use, and rate-limit hits."</p>
        <WindowLinks path="/admin/security" current=window />
        <Transition fallback=|| view! { <p class="text-slate-500">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match report.await {
                    Ok(r) => view! {
                        <div class="mb-6 grid gap-4 lg:grid-cols-3">
                            <CountTable title="Failed sign-ins and reset links by address" head="Address" rows=r.failed_logins_by_ip testid="failed-by-ip" />
                            <CountTable title="Failed sign-ins by account" head="Account" rows=r.failed_logins_by_account testid="failed-by-account" />
                            <CountTable title="Rate-limit hits by address" head="Address" rows=r.rate_limit_hits_by_ip testid="limited-by-ip" />
                        </div>
                        <RefusalTable title="Keys refused by their IP or referrer rule" rows=r.key_rule_refusals testid="key-rule-refusals" />
                        <RefusalTable title="Revoked keys presented" rows=r.revoked_key_use testid="revoked-key-use" />
                    }.into_any(),
                    Err(e) => view! { <p role="alert" class="text-red-700">{e.message}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn RefusalTable(
    title: &'static str,
    rows: Vec<RefusalView>,
    testid: &'static str,
) -> impl IntoView {
    let empty = rows.is_empty();
    view! {
        <section class=format!("{CARD} mb-6")>
            <h2 class="mb-3 text-lg font-semibold">{title}</h2>
            {empty.then(|| view! { <p class="text-sm text-slate-500">"None."</p> })}
            {(!empty).then(|| view! {
                <ScrollRegion label=title>
                    <table class="w-full text-left text-sm" data-testid=testid>
                        <thead class="text-slate-500"><tr><th class="py-1">"Rule"</th><th>"Address"</th><th>"Key"</th><th>"Referrer"</th><th class="text-right">"Count"</th><th>"Last (UTC)"</th></tr></thead>
                        <tbody>
                            {rows.into_iter().map(|r| view! {
                                <tr class="border-t border-slate-100">
                                    <td class="py-1 font-mono">{r.code}</td>
                                    <td>{r.client_ip}</td>
                                    <td class="font-mono text-xs">{r.api_key}</td>
                                    <td>{r.referrer}</td>
                                    <td class="text-right">{r.count}</td>
                                    <td class="whitespace-nowrap">{super::forms::shown_time(&r.last_at)}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                </ScrollRegion>
            })}
        </section>
    }
}
