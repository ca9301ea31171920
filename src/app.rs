//! The app shell and router shared by the server (SSR) and the browser (hydration).

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::{
    ParamSegment, SsrMode, StaticSegment,
    components::{Route, Router, Routes},
};

use crate::pages::{
    account::AccountPage,
    admin::{AdminAuditPage, AdminPage},
    admin_monitor::{AdminMonitorPage, AdminSecurityPage},
    admin_plans::{AdminPlanPage, AdminPlansPage},
    admin_user::AdminUserPage,
    docs::DocsPage,
    home::HomePage,
    keys::KeysPage,
    login::LoginPage,
    nav::{NavBar, provide_session},
    not_found::NotFound,
    plans::PlansPage,
    playground::{PlaygroundPage, provide_recent_key},
    register::RegisterPage,
    reset_password::ResetPasswordPage,
    usage::UsagePage,
    welcome::WelcomePage,
};

/// The HTML document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    crate::server_ctx::send_page_policy();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8" />
                <meta name="viewport" content="width=device-width, initial-scale=1" />
                <link rel="icon" type="image/svg+xml" href="/favicon.svg" />
                <AutoReload options=options.clone() />
                <HydrationScripts options />
                <MetaTags />
            </head>
            <body class="min-h-screen bg-slate-50 text-slate-800 antialiased">
                <App />
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();

    view! {
        <Stylesheet id="leptos" href="/pkg/tollgate.css" />
        <Title formatter=|page: String| {
            if page.is_empty() { "Tollgate".to_owned() } else { format!("{page} · Tollgate") }
        } />
        <Router>
            <Session />
        </Router>
    }
}

/// Everything inside the router, which the session resource needs for its key.
#[component]
fn Session() -> impl IntoView {
    provide_session();
    provide_recent_key();
    // A page changed in place is not announced as a load is: focus goes to
    // the new page's content, which a screen reader then reads from.
    let path = leptos_router::hooks::use_location().pathname;
    Effect::watch(
        move || path.get(),
        |_, _, _| crate::pages::forms::focus_by_id("main"),
        false,
    );
    // Pages that redirect or answer 403 render fully before responding (SsrMode::Async),
    // so the status code and Location header reach the browser.
    view! {
            // The browser follows it (`rel="external"` keeps the router out).
            <a href="#main" rel="external"
                class="sr-only focus:not-sr-only focus:absolute focus:left-2 focus:top-2 focus:z-50 focus:rounded-md focus:bg-white focus:px-3 focus:py-2 focus:text-slate-900 focus:shadow">
                "Skip to content"
            </a>
            <NavBar />
            <main id="main" tabindex="-1" class="mx-auto max-w-5xl px-4 py-10 focus:outline-none">
                <Routes fallback=NotFound>
                    <Route path=StaticSegment("") view=HomePage />
                    <Route path=StaticSegment("login") view=LoginPage ssr=SsrMode::Async />
                    <Route path=StaticSegment("register") view=RegisterPage ssr=SsrMode::Async />
                    <Route path=StaticSegment("reset-password") view=ResetPasswordPage />
                    <Route path=StaticSegment("account") view=AccountPage ssr=SsrMode::Async />
                    <Route path=StaticSegment("welcome") view=WelcomePage ssr=SsrMode::Async />
                    <Route path=StaticSegment("keys") view=KeysPage ssr=SsrMode::Async />
                    <Route path=StaticSegment("plans") view=PlansPage ssr=SsrMode::Async />
                    <Route path=StaticSegment("playground") view=PlaygroundPage ssr=SsrMode::Async />
                    <Route path=StaticSegment("usage") view=UsagePage ssr=SsrMode::Async />
                    <Route path=StaticSegment("admin") view=AdminPage ssr=SsrMode::Async />
                    <Route path=(StaticSegment("admin"), StaticSegment("audit")) view=AdminAuditPage ssr=SsrMode::Async />
                    <Route path=(StaticSegment("admin"), StaticSegment("users"), ParamSegment("id")) view=AdminUserPage ssr=SsrMode::Async />
                    <Route path=(StaticSegment("admin"), StaticSegment("plans")) view=AdminPlansPage ssr=SsrMode::Async />
                    <Route path=(StaticSegment("admin"), StaticSegment("monitor")) view=AdminMonitorPage ssr=SsrMode::Async />
                    <Route path=(StaticSegment("admin"), StaticSegment("security")) view=AdminSecurityPage ssr=SsrMode::Async />
                    <Route path=(StaticSegment("admin"), StaticSegment("plans"), ParamSegment("slug")) view=AdminPlanPage ssr=SsrMode::Async />
                    <Route path=StaticSegment("docs") view=DocsPage />
                </Routes>
            </main>
            <footer class="mx-auto max-w-5xl px-4 pb-10 text-sm text-slate-500">
                "Tollgate " {env!("CARGO_PKG_VERSION")} " · a self-hosted gateway for language models"
            </footer>
    }
}
