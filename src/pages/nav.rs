//! The nav bar, and the session's user that every page can read.

use leptos::prelude::*;
use leptos_router::{components::Redirect, hooks::use_location};

use crate::accounts::types::{CurrentUser, FormError};

/// The signed-in user (or `None`), refetched on every navigation and logout.
pub type UserResource = Resource<Result<Option<CurrentUser>, FormError>>;

#[server(endpoint = "me")]
pub async fn get_current_user() -> Result<Option<CurrentUser>, FormError> {
    use crate::{accounts::session, server_ctx};
    let state = server_ctx::app_state()?;
    let session = server_ctx::session().await?;
    let user = session::current_user(&session, &state)
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
    if let Some(user) = session::current_user(&session, &state)
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
    super::welcome::clear_new_key_cookie(state.config.is_https());
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

/// Shows `children` to signed-in users (with `admins_only`, to
/// administrators; other users get the 403 page); visitors go to /login,
/// coming back to the page they asked for.
///
/// The gate is one `Suspend`, not a closure making one: on the server a
/// `Suspense` calls a child closure twice (once to find its resources, once
/// to render), which built the page twice and fetched its data twice. For the
/// same reason a page passes its parts here as components, with route
/// parameters as memos, not as a closure on the parameters.
#[component]
pub fn SignedInOnly(#[prop(optional)] admins_only: bool, children: Children) -> impl IntoView {
    let user = expect_context::<UserResource>();
    view! {
        <Suspense fallback=|| view! { <p class="text-slate-500">"Loading…"</p> }>
            {Suspend::new(async move {
                match user.await {
                    Ok(Some(me)) if me.is_admin || !admins_only => children().into_any(),
                    Ok(Some(_)) => view! { <super::admin::Forbidden /> }.into_any(),
                    _ => view! { <ToLogin /> }.into_any(),
                }
            })}
        </Suspense>
    }
}

/// Sends a visitor to /login, coming back to the page asked for, its query
/// too (a user's page, the audit log's filters). Rendered on the server, the
/// page answers 302 whatever the request accepts: leptos_axum sets the
/// status only when the request accepts `text/html`, so curl's `*/*` got a
/// 200 carrying a `Location`.
#[component]
pub fn ToLogin() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::FOUND);
    }
    view! { <Redirect path=login_and_back() /> }
}

/// The login page's address, coming back to the page shown now, its query
/// too.
pub fn login_and_back() -> String {
    let location = use_location();
    let mut here = location.pathname.get_untracked();
    let search = location.search.get_untracked();
    if !search.is_empty() {
        here.push('?');
        here.push_str(&search);
    }
    let query = serde_urlencoded::to_string([("next", here)]).unwrap_or_default();
    format!("/login?{query}")
}

/// A link of the main navigation. It is the current page's
/// (`aria-current="page"`) only on its own page; on a page under it (the
/// admin pages under "Admin") it says `aria-current="true"`, the section,
/// so that a page has one link announced as the page itself in each menu.
/// Leptos' `<A>` says "page" on both.
#[component]
fn NavLink(href: &'static str, class: &'static str, children: Children) -> impl IntoView {
    let location = use_location();
    let current = move || {
        location.pathname.with(|path| {
            let path = path.trim_end_matches('/');
            let href = href.trim_end_matches('/');
            if path == href {
                Some("page")
            } else if !href.is_empty() && path.strip_prefix(href)?.starts_with('/') {
                Some("true")
            } else {
                None
            }
        })
    };
    view! { <a href=href class=class aria-current=current>{children()}</a> }
}

#[component]
pub fn NavBar() -> impl IntoView {
    let user = expect_context::<UserResource>();
    let logout = expect_context::<ServerAction<Logout>>();
    let link = "hover:text-white";

    view! {
        <header class="bg-slate-900 text-slate-100">
            <nav class="mx-auto flex max-w-5xl flex-wrap items-center gap-x-6 gap-y-2 px-4 py-3" aria-label="Main">
                <NavLink href="/" class="flex items-center gap-2 text-lg font-semibold tracking-tight">
                    <span class="inline-block h-3 w-3 rounded-sm bg-amber-400" aria-hidden="true"></span>
                    "Tollgate"
                </NavLink>
                <div class="flex flex-1 flex-wrap gap-x-4 gap-y-1 text-sm text-slate-300">
                    <NavLink href="/" class=link>"Home"</NavLink>
                    <a href="/#quick-start" class=link>"Quick start"</a>
                    <NavLink href="/docs" class=link>"API docs"</NavLink>
                </div>
                <Transition fallback=|| ()>
                    {move || Suspend::new(async move {
                        match user.await {
                            Ok(Some(me)) => view! {
                                <div class="flex flex-wrap items-center gap-x-4 gap-y-2 text-sm text-slate-300">
                                    <NavLink href="/keys" class=link>"Keys"</NavLink>
                                    <NavLink href="/plans" class=link>"Plans"</NavLink>
                                    <NavLink href="/playground" class=link>"Playground"</NavLink>
                                    <NavLink href="/usage" class=link>"Usage"</NavLink>
                                    {me.is_admin.then(|| view! { <NavLink href="/admin" class=link>"Admin"</NavLink> })}
                                    <NavLink href="/account" class=link>{me.display_name.clone()}</NavLink>
                                    <ActionForm action=logout>
                                        <button type="submit" class="rounded-md border border-slate-600 px-3 py-1 hover:bg-slate-800">
                                            "Log out"
                                        </button>
                                    </ActionForm>
                                </div>
                            }.into_any(),
                            _ => view! {
                                <div class="flex items-center gap-4 text-sm text-slate-300">
                                    <NavLink href="/login" class=link>"Log in"</NavLink>
                                    <NavLink href="/register" class="rounded-md bg-amber-400 px-3 py-1 font-medium text-slate-900 hover:bg-amber-300">
                                        "Register"
                                    </NavLink>
                                </div>
                            }.into_any(),
                        }
                    })}
                </Transition>
            </nav>
        </header>
    }
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    };

    use any_spawner::Executor;
    use futures::StreamExt;
    use leptos::prelude::*;

    use super::{SignedInOnly, UserResource};
    use crate::{accounts::types::CurrentUser, pages::admin::AdminOnly};

    /// Renders `page` on the server for a signed-in user; its HTML.
    async fn render_for(is_admin: bool, page: impl FnOnce() -> AnyView) -> String {
        _ = Executor::init_tokio();
        let owner = Owner::new();
        owner.set();
        let user: UserResource = Resource::new(
            || (),
            move |_| async move {
                Ok(Some(CurrentUser {
                    id: 1,
                    email: "someone@example.com".into(),
                    display_name: "Someone".into(),
                    is_admin,
                    created_at: String::new(),
                }))
            },
        );
        provide_context(user);
        page().to_html_stream_in_order().collect::<String>().await
    }

    /// A gated page rendered on the server is built once, so the data its
    /// resources fetch is fetched once.
    #[tokio::test]
    async fn a_gated_page_is_built_once_when_rendered_on_the_server() {
        let built = Arc::new(AtomicUsize::new(0));
        let count = built.clone();
        let html = render_for(false, move || {
            view! { <SignedInOnly><Built count text="the keys page" /></SignedInOnly> }.into_any()
        })
        .await;
        assert!(html.contains("the keys page"), "{html}");
        assert_eq!(built.load(Ordering::SeqCst), 1);

        let count = built.clone();
        let html = render_for(true, move || {
            view! { <AdminOnly><Built count text="the admin page" /></AdminOnly> }.into_any()
        })
        .await;
        assert!(html.contains("the admin page"), "{html}");
        assert_eq!(built.load(Ordering::SeqCst), 2);
    }

    /// Page content that counts how often it is built.
    #[component]
    fn Built(count: Arc<AtomicUsize>, text: &'static str) -> impl IntoView {
        count.fetch_add(1, Ordering::SeqCst);
        text
    }

    /// A user who is not an administrator gets the 403 page, not the page.
    #[tokio::test]
    async fn an_admin_page_shows_users_the_403_page() {
        let html = render_for(false, || {
            view! { <AdminOnly>"the admin page"</AdminOnly> }.into_any()
        })
        .await;
        assert!(!html.contains("the admin page"), "{html}");
        assert!(html.contains("Administrators only"), "{html}");
    }
}
