//! The nav bar, and the session's user that every page can read.

use leptos::prelude::*;
use leptos_router::{components::A, hooks::use_location};

use crate::accounts::types::{CurrentUser, FormError};

/// The signed-in user (or `None`), refetched on every navigation and logout.
pub type UserResource = Resource<Result<Option<CurrentUser>, FormError>>;

#[server(endpoint = "me")]
pub async fn get_current_user() -> Result<Option<CurrentUser>, FormError> {
    use crate::{accounts::session, server_ctx};
    let state = server_ctx::app_state()?;
    let session = server_ctx::session().await?;
    let user = session::current_user(&session, &state.store)
        .await
        .map_err(server_ctx::session_failed)?;
    Ok(user.map(|u| CurrentUser {
        id: u.id,
        email: u.email,
        display_name: u.display_name,
        is_admin: u.is_admin,
        created_at: u.created_at,
    }))
}

#[server(endpoint = "logout")]
pub async fn logout() -> Result<(), FormError> {
    use crate::{accounts::service, accounts::session, request_meta::RequestMeta, server_ctx};
    let state = server_ctx::app_state()?;
    let session = server_ctx::session().await?;
    if let Some(user) = session::current_user(&session, &state.store)
        .await
        .map_err(server_ctx::session_failed)?
    {
        service::record_logout(&state, &RequestMeta::current(), user.id)
            .await
            .map_err(server_ctx::refuse)?;
    }
    session::sign_out(&session)
        .await
        .map_err(server_ctx::session_failed)?;
    leptos_axum::redirect("/");
    Ok(())
}

/// Creates the user resource and provides it (and the logout action) as context.
pub fn provide_session() {
    let logout = ServerAction::<Logout>::new();
    let location = use_location();
    let user: UserResource = Resource::new(
        move || (location.pathname.get(), logout.version().get()),
        |_| get_current_user(),
    );
    provide_context(user);
    provide_context(logout);
}

#[component]
pub fn NavBar() -> impl IntoView {
    let user = expect_context::<UserResource>();
    let logout = expect_context::<ServerAction<Logout>>();
    let link = "hover:text-white";

    view! {
        <header class="bg-slate-900 text-slate-100">
            <nav class="mx-auto flex max-w-5xl items-center gap-6 px-4 py-3" aria-label="Main">
                <A href="/" attr:class="flex items-center gap-2 text-lg font-semibold tracking-tight">
                    <span class="inline-block h-3 w-3 rounded-sm bg-amber-400" aria-hidden="true"></span>
                    "Tollgate"
                </A>
                <div class="flex flex-1 gap-4 text-sm text-slate-300">
                    <A href="/" attr:class=link>"Home"</A>
                    <a href="/#quick-start" class=link>"Quick start"</a>
                    <A href="/docs" attr:class=link>"API docs"</A>
                </div>
                <Transition fallback=|| ()>
                    {move || Suspend::new(async move {
                        match user.await {
                            Ok(Some(me)) => view! {
                                <div class="flex items-center gap-4 text-sm text-slate-300">
                                    <A href="/keys" attr:class=link>"Keys"</A>
                                    <A href="/plans" attr:class=link>"Plans"</A>
                                    <A href="/playground" attr:class=link>"Playground"</A>
                                    <A href="/usage" attr:class=link>"Usage"</A>
                                    {me.is_admin.then(|| view! { <A href="/admin" attr:class=link>"Admin"</A> })}
                                    <A href="/account" attr:class=link>{me.display_name.clone()}</A>
                                    <ActionForm action=logout>
                                        <button type="submit" class="rounded-md border border-slate-600 px-3 py-1 hover:bg-slate-800">
                                            "Log out"
                                        </button>
                                    </ActionForm>
                                </div>
                            }.into_any(),
                            _ => view! {
                                <div class="flex items-center gap-4 text-sm text-slate-300">
                                    <A href="/login" attr:class=link>"Log in"</A>
                                    <A href="/register" attr:class="rounded-md bg-amber-400 px-3 py-1 font-medium text-slate-900 hover:bg-amber-300">
                                        "Register"
                                    </A>
                                </div>
                            }.into_any(),
                        }
                    })}
                </Transition>
            </nav>
        </header>
    }
}
