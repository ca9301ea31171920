//! `/admin` (users, searchable and paginated) and `/admin/audit` (the audit
//! log, filtered): administrators only. Users get 403; anonymous visitors go to
//! /login. The user page is in `admin_user`.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use serde::{Deserialize, Serialize};

use super::{
    forms::{
        BUTTON, CARD, FormAlert, FormStatus, NeedsScript, ScrollRegion, SubmitAskingFirst,
        last_error,
    },
    nav::SignedInOnly,
};
use crate::accounts::types::FormError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminUserRow {
    pub id: i64,
    pub email: String,
    pub display_name: String,
    pub is_admin: bool,
    pub disabled: bool,
    pub created_at: String,
    /// The admin looking at the list: offered no Disable of their own.
    pub is_you: bool,
}

/// Rows per page on the admin lists.
pub const PAGE_SIZE: i64 = 25;

/// An audit event as the admin pages show it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRow {
    pub id: i64,
    pub at: String,
    pub actor: Option<i64>,
    pub actor_email: Option<String>,
    pub action: String,
    pub target: Option<String>,
    /// The target's user's email, or key's name and owner's email.
    pub target_label: Option<String>,
    /// The account the target is or belongs to, for a link to its page.
    pub target_user_id: Option<i64>,
    pub client_ip: Option<String>,
    /// A JSON object.
    pub details: String,
}

#[cfg(feature = "ssr")]
pub(crate) async fn require_admin()
-> Result<(crate::startup::AppState, crate::store::UserRecord), FormError> {
    let (state, _, user) = crate::server_ctx::signed_in_user().await?;
    if user.is_admin {
        Ok((state, user))
    } else {
        crate::server_ctx::set_status(axum::http::StatusCode::FORBIDDEN, None);
        Err(FormError::new("Only administrators may do this."))
    }
}

/// A page of users matching `search`, plus the first of the next page when
/// there is one (see `more_pages`).
#[server(endpoint = "admin/users")]
pub async fn admin_list_users(
    #[server(default)] search: String,
    #[server(default)] page: i64,
) -> Result<Vec<AdminUserRow>, FormError> {
    use crate::store::UserStatus;
    let (state, admin) = require_admin().await?;
    let page = page.clamp(1, 1_000_000);
    let users = state
        .store
        .search_users(search.trim(), PAGE_SIZE + 1, (page - 1) * PAGE_SIZE)
        .await
        .map_err(|e| crate::server_ctx::refuse(e.into()))?;
    Ok(users
        .into_iter()
        .map(|u| AdminUserRow {
            id: u.id,
            email: u.email,
            display_name: u.display_name,
            is_admin: u.is_admin,
            disabled: u.status == UserStatus::Disabled,
            created_at: u.created_at,
            is_you: u.id == admin.id,
        })
        .collect())
}

#[server(endpoint = "admin/users/set-disabled")]
pub async fn admin_set_disabled(user_id: i64, disabled: bool) -> Result<bool, FormError> {
    use crate::{accounts::service, request_meta::RequestMeta};
    let (state, admin) = require_admin().await?;
    service::set_disabled(&state, &RequestMeta::current(), &admin, user_id, disabled)
        .await
        .map_err(crate::server_ctx::refuse)?;
    Ok(disabled)
}

/// What disabling or enabling an account did, said after it.
pub fn account_status_changed(disabled: &bool) -> &'static str {
    if *disabled {
        "Account disabled: its sessions ended and its keys are refused."
    } else {
        "Account enabled: it can sign in and its keys work again."
    }
}

/// Shows `children` to administrators only: users get the 403 page, and
/// anonymous visitors go to /login, coming back to `next`.
#[component]
pub fn AdminOnly(children: Children) -> impl IntoView {
    view! { <SignedInOnly admins_only=true>{children()}</SignedInOnly> }
}

#[component]
pub fn AdminPage() -> impl IntoView {
    view! {
        <Title text="Admin" />
        <AdminOnly><AdminUsers /></AdminOnly>
    }
}

#[component]
pub fn Forbidden() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::FORBIDDEN);
    }
    view! {
        // Set after the page's own title, so it wins: the tab says access was refused.
        <Title text="Administrators only" />
        <section class="mx-auto max-w-lg py-16 text-center">
            <p class="text-sm font-semibold uppercase tracking-wide text-amber-700">"403"</p>
            <h1 class="mt-2 text-3xl font-bold text-slate-900">"Administrators only"</h1>
            <p class="mt-4 text-slate-600">"Your account cannot open this page. Ask an administrator if you need access."</p>
        </section>
    }
}

/// The page number in `?page=`, from 1.
fn page_param() -> Memo<i64> {
    let query = use_query_map();
    Memo::new(move |_| {
        query
            .read()
            .get("page")
            .and_then(|p| p.parse::<i64>().ok())
            .filter(|p| *p >= 1)
            .unwrap_or(1)
    })
}

/// The server functions fetch one row past a page: when it came, there is an
/// older page to link to, and it is dropped here.
fn more_pages<T>(rows: &mut Vec<T>) -> bool {
    let more = rows.len() as i64 > PAGE_SIZE;
    rows.truncate(PAGE_SIZE as usize);
    more
}

/// A page link was followed: the pager of the page it brings takes the focus
/// (the one followed is gone with the old page's content).
#[cfg(feature = "hydrate")]
static PAGED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[component]
fn Pager(page: i64, full: bool, href: impl Fn(i64) -> String + 'static) -> impl IntoView {
    #[cfg(feature = "hydrate")]
    if PAGED.swap(false, std::sync::atomic::Ordering::Relaxed) {
        super::forms::focus_by_id("pager-page");
    }
    let followed = |_| {
        #[cfg(feature = "hydrate")]
        PAGED.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    view! {
        <nav class="mt-4 flex items-center justify-between text-sm" aria-label="Pages">
            {(page > 1).then(|| view! { <a href=href(page - 1) class="text-amber-700 hover:underline" rel="prev" on:click=followed>"← Newer"</a> })}
            <span id="pager-page" tabindex="-1" class="text-slate-500">{format!("Page {page}")}</span>
            {full.then(|| view! { <a href=href(page + 1) class="text-amber-700 hover:underline" rel="next" on:click=followed>"Older →"</a> })}
        </nav>
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[component]
fn AdminUsers() -> impl IntoView {
    let toggle = ServerAction::<AdminSetDisabled>::new();
    let error = last_error(toggle.value());
    let query = use_query_map();
    let search = Memo::new(move |_| query.read().get("q").unwrap_or_default());
    let page = page_param();
    let toggled = super::forms::completions(toggle.value());
    let users = Resource::new(
        move || (toggled.get(), search.get(), page.get()),
        |(_, search, page)| admin_list_users(search, page),
    );

    view! {
        <AdminTabs current="users" />
        <h1 class="mb-6 text-3xl font-bold text-slate-900">"Users"</h1>
        <NeedsScript what="Disabling an account" />
        <form method="get" action="/admin" class="mb-4 flex gap-2" role="search">
            <label for="user-search" class="sr-only">"Search users"</label>
            <input id="user-search" name="q" type="search" placeholder="Email or name" value=move || search.get() prop:value=move || search.get()
                class="block w-full max-w-sm rounded-md border border-slate-300 px-3 py-2 text-sm" />
            <button type="submit" class=BUTTON>"Search"</button>
        </form>
        <FormAlert error />
        <FormStatus message=Signal::derive(move || {
            match toggle.value().get() {
                Some(Ok(disabled)) => Some(account_status_changed(&disabled)),
                _ => None,
            }
        }) />
        <div class=CARD>
            <Transition fallback=|| view! { <p class="text-slate-500">"Loading users…"</p> }>
                {move || Suspend::new(async move {
                    match users.await {
                        Ok(mut rows) => {
                            let full = more_pages(&mut rows);
                            let q = encode(&search.get_untracked());
                            let empty = rows.is_empty();
                            view! {
                            {empty.then(|| view! { <p class="text-slate-500">"No users match."</p> })}
                            {(!empty).then(move || view! {
                            <ScrollRegion label="Users">
                            <table class="w-full text-left text-sm">
                                <thead class="text-slate-500">
                                    <tr><th class="py-2">"Email"</th><th>"Name"</th><th>"Role"</th><th>"Status"</th><th class="relative"><span class="sr-only">"Actions"</span></th></tr>
                                </thead>
                                <tbody>
                                    {rows.into_iter().map(|row| {
                                        let next = (!row.disabled).to_string();
                                        let label = if row.disabled { "Enable" } else { "Disable" };
                                        let named = format!("{label} {}", row.email);
                                        let question = (!row.disabled).then(|| {
                                            "Disable this account? Its keys stop working at once.".to_owned()
                                        });
                                        view! {
                                            <tr class="border-t border-slate-100" data-testid=format!("user-{}", row.email)>
                                                <td class="py-2"><a href=format!("/admin/users/{}", row.id) class="text-amber-700 hover:underline">{row.email.clone()}</a></td>
                                                <td>{row.display_name.clone()}</td>
                                                <td>{if row.is_admin { "admin" } else { "user" }}</td>
                                                <td>{if row.disabled { "disabled" } else { "active" }}</td>
                                                <td class="text-right">
                                                    {(!row.is_you).then(|| view! {
                                                        <ActionForm action=toggle>
                                                            <input type="hidden" name="user_id" value=row.id />
                                                            <input type="hidden" name="disabled" value=next />
                                                            <SubmitAskingFirst question label=named class="rounded-md border border-slate-300 px-2 py-1 hover:bg-slate-100 disabled:opacity-50">{label}</SubmitAskingFirst>
                                                        </ActionForm>
                                                    })}
                                                </td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                            </ScrollRegion>
                            })}
                            <Pager page=page.get_untracked() full href=move |p| format!("/admin?q={q}&page={p}") />
                        }.into_any()},
                        Err(e) => view! { <p role="alert" class="text-red-700">{e.message}</p> }.into_any(),
                    }
                })}
            </Transition>
        </div>
    }
}

/// Links between the admin pages.
#[component]
pub fn AdminTabs(current: &'static str) -> impl IntoView {
    let tab = |id: &'static str, href: &'static str, label: &'static str| {
        let class = if id == current {
            "rounded-md bg-slate-900 px-3 py-1 text-white"
        } else {
            "rounded-md px-3 py-1 text-slate-700 hover:bg-slate-100"
        };
        view! { <a href=href class=class aria-current=(id == current).then_some("page")>{label}</a> }
    };
    view! {
        <nav class="mb-6 flex flex-wrap gap-2 text-sm" aria-label="Admin">
            {tab("users", "/admin", "Users")}
            {tab("plans", "/admin/plans", "Plans")}
            {tab("monitor", "/admin/monitor", "Monitor")}
            {tab("security", "/admin/security", "Security")}
            {tab("audit", "/admin/audit", "Audit log")}
        </nav>
    }
}

/// Audit events, newest first.
#[component]
pub fn AuditTable(rows: Vec<AuditRow>) -> impl IntoView {
    if rows.is_empty() {
        return view! { <p class="text-sm text-slate-500">"No events."</p> }.into_any();
    }
    view! {
        <ScrollRegion label="Audit events">
            <table class="w-full text-left text-sm" data-testid="audit-events">
                <thead class="text-slate-500">
                    <tr><th class="py-2">"Time (UTC)"</th><th>"Actor"</th><th>"Action"</th><th>"Target"</th><th>"From"</th><th>"Details"</th></tr>
                </thead>
                <tbody>
                    {rows.into_iter().map(|r| view! {
                        <tr class="border-t border-slate-100 align-top">
                            <td class="py-1 whitespace-nowrap">{super::forms::shown_time(&r.at)}</td>
                            <td class="whitespace-nowrap">{match (r.actor, r.actor_email) {
                                (Some(id), Some(email)) => view! { <a class="underline" href=format!("/admin/users/{id}")>{email}</a> }.into_any(),
                                (Some(id), None) => format!("user:{id}").into_any(),
                                (None, _) => "—".into_any(),
                            }}</td>
                            <td class="font-mono whitespace-nowrap">{r.action}</td>
                            <td class="whitespace-nowrap">{
                                let target = r.target.unwrap_or_default();
                                match (r.target_label, target.strip_prefix("plan:")) {
                                    (Some(label), _) => {
                                        let href = r.target_user_id.map(|id| format!("/admin/users/{id}"));
                                        view! {
                                            <span class="font-mono text-xs text-slate-500">{target.clone()}</span>
                                            " " <a class="underline" href=href>{label}</a>
                                        }.into_any()
                                    }
                                    (None, Some(slug)) => view! {
                                        <a class="font-mono text-xs underline" href=format!("/admin/plans/{slug}")>{target.clone()}</a>
                                    }.into_any(),
                                    (None, None) => view! { <span class="font-mono text-xs text-slate-500">{target.clone()}</span> }.into_any(),
                                }
                            }</td>
                            <td class="whitespace-nowrap">{r.client_ip.unwrap_or_default()}</td>
                            <td class="min-w-64 font-mono text-xs break-all">{r.details}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </ScrollRegion>
    }.into_any()
}

/// A page of audit events, plus the first of the next page when there is
/// one (see `more_pages`).
#[server(endpoint = "admin/audit")]
pub async fn admin_audit_log(
    #[server(default)] actor: String,
    #[server(default)] action: String,
    #[server(default)] target: String,
    #[server(default)] since: String,
    #[server(default)] until: String,
    #[server(default)] page: i64,
) -> Result<Vec<AuditRow>, FormError> {
    use crate::admin::service;
    let (state, _) = require_admin().await?;
    let refused = |fields: std::collections::BTreeMap<String, String>| {
        crate::server_ctx::set_status(axum::http::StatusCode::UNPROCESSABLE_ENTITY, None);
        fields
            .into_iter()
            .fold(FormError::new("Check the filters."), |e, (k, v)| {
                e.field(&k, v)
            })
    };
    let invalid = |e| match e {
        service::AdminError::Invalid(fields) => refused(fields),
        other => crate::server_ctx::internal(other),
    };
    let actor = service::audit_actor(&actor);
    let nonempty = |s: &str| Some(s.to_owned()).filter(|s| !s.trim().is_empty());
    let (action, target, since, until) = (
        nonempty(&action),
        nonempty(&target),
        nonempty(&since),
        nonempty(&until),
    );
    let filter = service::audit_filter(
        actor.as_ref().ok().cloned().flatten(),
        action.as_deref(),
        target.as_deref(),
        since.as_deref(),
        until.as_deref(),
    );
    // Every field that is wrong is said at once, the actor's with the times'.
    let filter = match (actor, filter) {
        (Ok(_), Ok(filter)) => filter,
        (
            Err(service::AdminError::Invalid(mut fields)),
            Err(service::AdminError::Invalid(more)),
        ) => {
            fields.extend(more);
            return Err(refused(fields));
        }
        (Err(e), _) | (_, Err(e)) => return Err(invalid(e)),
    };
    let page = page.clamp(1, 1_000_000);
    let rows = state
        .store
        .audit_log(&filter, PAGE_SIZE + 1, (page - 1) * PAGE_SIZE)
        .await
        .map_err(|e| crate::server_ctx::refuse(e.into()))?;
    Ok(rows.into_iter().map(service::audit_row).collect())
}

#[component]
pub fn AdminAuditPage() -> impl IntoView {
    view! {
        <Title text="Audit log · Admin" />
        <AdminOnly><AuditLog /></AdminOnly>
    }
}

#[component]
fn AuditLog() -> impl IntoView {
    let query = use_query_map();
    let get =
        move |name: &'static str| Memo::new(move |_| query.read().get(name).unwrap_or_default());
    let (actor, action, target, since, until) = (
        get("actor"),
        get("action"),
        get("target"),
        get("since"),
        get("until"),
    );
    let page = page_param();
    let events = Resource::new(
        move || {
            (
                actor.get(),
                action.get(),
                target.get(),
                since.get(),
                until.get(),
                page.get(),
            )
        },
        |(actor, action, target, since, until, page)| {
            admin_audit_log(actor, action, target, since, until, page)
        },
    );
    // The filter form is drawn with the results, so a refused filter's
    // message sits under its own field.
    let filter_form = move |errors: std::collections::BTreeMap<String, String>| {
        let input = |name: &'static str,
                     label: &'static str,
                     hint: &'static str,
                     value: Memo<String>| {
            let error = errors.get(name).cloned();
            let error_id = format!("audit-{name}-error");
            view! {
                <label class="text-sm">
                    <span class="mb-1 block font-medium text-slate-700">{label}</span>
                    <input
                        name=name
                        placeholder=hint
                        value=move || value.get()
                        prop:value=move || value.get()
                        aria-invalid=error.is_some().to_string()
                        aria-describedby=error.is_some().then(|| error_id.clone())
                        class="block w-full rounded-md border border-slate-300 px-2 py-1 text-sm aria-[invalid=true]:border-red-400"
                    />
                    {error.map(|m| view! { <span id=error_id class="mt-1 block text-xs text-red-700">{m}</span> })}
                </label>
            }
        };
        view! {
            <form method="get" action="/admin/audit" class="mb-4 grid gap-2 sm:grid-cols-6 items-start">
                {input("actor", "Actor (id or email)", "e.g. 1", actor)}
                {input("action", "Action", "e.g. credits.adjust", action)}
                {input("target", "Target", "e.g. user:2", target)}
                {input("since", "From", "2026-11-01", since)}
                {input("until", "Before", "2026-12-01", until)}
                <button type="submit" class=format!("{BUTTON} sm:mt-6")>"Filter"</button>
            </form>
        }
    };
    view! {
        <AdminTabs current="audit" />
        <h1 class="mb-6 text-3xl font-bold text-slate-900">"Audit log"</h1>
        <Transition fallback=|| view! { <p class="text-slate-500">"Loading events…"</p> }>
            {move || Suspend::new(async move {
                match events.await {
                    Ok(mut rows) => {
                        let full = more_pages(&mut rows);
                        let filters: String = [("actor", actor), ("action", action), ("target", target), ("since", since), ("until", until)]
                            .iter()
                            .map(|(k, v)| format!("{k}={}&", encode(&v.get_untracked())))
                            .collect();
                        view! {
                            {filter_form(Default::default())}
                            <div class=CARD>
                                <AuditTable rows />
                                <Pager page=page.get_untracked() full href=move |p| format!("/admin/audit?{filters}page={p}") />
                            </div>
                        }.into_any()
                    }
                    Err(e) => view! {
                        {filter_form(e.fields)}
                        <div class=CARD>
                            <p role="alert" class="text-red-700">{e.message.clone()}</p>
                        </div>
                    }.into_any(),
                }
            })}
        </Transition>
    }
}
