use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

/// Shown for any path no route matches, with status 404.
#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::NOT_FOUND);
    }

    view! {
        <Title text="Page not found" />
        <section class="mx-auto max-w-lg py-16 text-center">
            <p class="text-sm font-semibold uppercase tracking-wide text-amber-700">"404"</p>
            <h1 class="mt-2 text-3xl font-bold text-slate-900">"This page does not exist"</h1>
            <p class="mt-4 text-slate-600">
                "The address may be mistyped, or the page may have moved. "
                "If you were calling the API, its routes start with /v1."
            </p>
            <A
                href="/"
                attr:class="mt-8 inline-block rounded-md bg-slate-900 px-4 py-2 text-sm font-medium text-white hover:bg-slate-700"
            >
                "Back to the home page"
            </A>
        </section>
    }
}
