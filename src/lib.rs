//! Tollgate: a self-hosted LLM access gateway.
//!
//! `app` and `pages` are shared by the server and the browser. Everything behind
//! the `ssr` feature runs on the server only: settings, logging, the database
//! store, HTTP routes and the start-up that ties them together.

// Leptos views nest deeply in their types; the release wasm build needs room.
#![recursion_limit = "256"]

pub mod accounts;
pub mod app;
pub mod credits;
pub mod keys;
pub mod model_api;
pub mod monitor;
pub mod pages;
pub mod usage;

#[cfg(feature = "ssr")]
pub mod admin;
#[cfg(feature = "ssr")]
pub mod api_caller;
#[cfg(feature = "ssr")]
pub mod api_error;
#[cfg(feature = "ssr")]
pub mod body_limit;
#[cfg(feature = "ssr")]
pub mod config;
#[cfg(feature = "ssr")]
pub mod gateway;
#[cfg(feature = "ssr")]
pub mod instruments;
#[cfg(feature = "ssr")]
pub mod request_meta;
#[cfg(feature = "ssr")]
pub mod routes;
#[cfg(feature = "ssr")]
pub mod same_origin;
#[cfg(feature = "ssr")]
pub mod server_ctx;
#[cfg(feature = "ssr")]
pub mod startup;
#[cfg(feature = "ssr")]
pub mod store;
#[cfg(feature = "ssr")]
pub mod telemetry;

/// Entry point of the wasm bundle: attaches the browser to the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
    // A marker for browser tests (and scripts) that must wait for interactivity.
    if let Some(root) = leptos::prelude::document().document_element() {
        let _ = root.set_attribute("data-hydrated", "true");
    }
}
