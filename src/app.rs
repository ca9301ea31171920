//! The app shell and router shared by the server (SSR) and the browser (hydration).

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::{
    StaticSegment,
    components::{A, Route, Router, Routes},
};

use crate::pages::{home::HomePage, not_found::NotFound};

/// The HTML document around the app, rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
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
            <NavBar />
            <main class="mx-auto max-w-5xl px-4 py-10">
                <Routes fallback=NotFound>
                    <Route path=StaticSegment("") view=HomePage />
                </Routes>
            </main>
            <footer class="mx-auto max-w-5xl px-4 pb-10 text-sm text-slate-500">
                "Tollgate " {env!("CARGO_PKG_VERSION")} " · a self-hosted gateway for language models"
            </footer>
        </Router>
    }
}

#[component]
fn NavBar() -> impl IntoView {
    view! {
        <header class="bg-slate-900 text-slate-100">
            <nav class="mx-auto flex max-w-5xl items-center gap-6 px-4 py-3" aria-label="Main">
                <A href="/" attr:class="flex items-center gap-2 text-lg font-semibold tracking-tight">
                    <span class="inline-block h-3 w-3 rounded-sm bg-amber-400" aria-hidden="true"></span>
                    "Tollgate"
                </A>
                <div class="flex gap-4 text-sm text-slate-300">
                    <A href="/" attr:class="hover:text-white">"Home"</A>
                    <a href="/#quick-start" class="hover:text-white">"Quick start"</a>
                </div>
            </nav>
        </header>
    }
}
