//! `/admin`: administrators only. Users get 403; anonymous visitors go to /login.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Redirect;
use serde::{Deserialize, Serialize};

use super::{
    forms::{CARD, FormAlert, last_error},
    nav::UserResource,
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
}

#[cfg(feature = "ssr")]
async fn require_admin() -> Result<(crate::startup::AppState, crate::store::UserRecord), FormError>
{
    let (state, _, user) = crate::server_ctx::signed_in_user().await?;
    if user.is_admin {
        Ok((state, user))
    } else {
        crate::server_ctx::set_status(axum::http::StatusCode::FORBIDDEN, None);
        Err(FormError::new("Only administrators may do this."))
    }
}

#[server(endpoint = "admin/users")]
pub async fn admin_list_users() -> Result<Vec<AdminUserRow>, FormError> {
    use crate::store::UserStatus;
    let (state, _) = require_admin().await?;
    let users = state
        .store
        .list_users(200, 0)
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
        })
        .collect())
}

#[server(endpoint = "admin/users/set-disabled")]
pub async fn admin_set_disabled(user_id: i64, disabled: bool) -> Result<(), FormError> {
    use crate::{accounts::service, request_meta::RequestMeta};
    let (state, admin) = require_admin().await?;
    if disabled && user_id == admin.id {
        return Err(FormError::new("You cannot disable your own account."));
    }
    service::set_disabled(&state, &RequestMeta::current(), &admin, user_id, disabled)
        .await
        .map_err(crate::server_ctx::refuse)
}

#[component]
pub fn AdminPage() -> impl IntoView {
    let user = expect_context::<UserResource>();
    view! {
        <Title text="Admin" />
        <Suspense fallback=|| view! { <p class="text-slate-500">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match user.await {
                    Ok(Some(me)) if me.is_admin => view! { <AdminUsers /> }.into_any(),
                    Ok(Some(_)) => view! { <Forbidden /> }.into_any(),
                    _ => view! { <Redirect path="/login?next=/admin" /> }.into_any(),
                }
            })}
        </Suspense>
    }
}

#[component]
fn Forbidden() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::FORBIDDEN);
    }
    view! {
        <section class="mx-auto max-w-lg py-16 text-center">
            <p class="text-sm font-semibold uppercase tracking-wide text-amber-600">"403"</p>
            <h1 class="mt-2 text-3xl font-bold text-slate-900">"Administrators only"</h1>
            <p class="mt-4 text-slate-600">"Your account cannot open this page. Ask an administrator if you need access."</p>
        </section>
    }
}

#[component]
fn AdminUsers() -> impl IntoView {
    let toggle = ServerAction::<AdminSetDisabled>::new();
    let error = last_error(toggle.value());
    let users = Resource::new(move || toggle.version().get(), |_| admin_list_users());

    view! {
        <h1 class="mb-6 text-3xl font-bold text-slate-900">"Users"</h1>
        <FormAlert error />
        <div class=CARD>
            <Transition fallback=|| view! { <p class="text-slate-500">"Loading users…"</p> }>
                {move || Suspend::new(async move {
                    match users.await {
                        Ok(rows) => view! {
                            <table class="w-full text-left text-sm">
                                <thead class="text-slate-500">
                                    <tr><th class="py-2">"Email"</th><th>"Name"</th><th>"Role"</th><th>"Status"</th><th></th></tr>
                                </thead>
                                <tbody>
                                    {rows.into_iter().map(|row| {
                                        let next = (!row.disabled).to_string();
                                        let label = if row.disabled { "Enable" } else { "Disable" };
                                        view! {
                                            <tr class="border-t border-slate-100" data-testid=format!("user-{}", row.email)>
                                                <td class="py-2">{row.email.clone()}</td>
                                                <td>{row.display_name.clone()}</td>
                                                <td>{if row.is_admin { "admin" } else { "user" }}</td>
                                                <td>{if row.disabled { "disabled" } else { "active" }}</td>
                                                <td class="text-right">
                                                    <ActionForm action=toggle>
                                                        <input type="hidden" name="user_id" value=row.id />
                                                        <input type="hidden" name="disabled" value=next />
                                                        <button type="submit" class="rounded-md border border-slate-300 px-2 py-1 hover:bg-slate-100">{label}</button>
                                                    </ActionForm>
                                                </td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        }.into_any(),
                        Err(e) => view! { <p role="alert" class="text-red-700">{e.message}</p> }.into_any(),
                    }
                })}
            </Transition>
        </div>
    }
}
