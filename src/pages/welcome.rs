//! `/welcome`: the page after sign-up, which shows the primary key once.
//!
//! Registration leaves the new key in a short-lived cookie (HttpOnly,
//! SameSite=Strict, five minutes) rather than in the database or the session
//! store; this page reads it once and clears it, and shows it only to the
//! signed-in account it belongs to. Signing out clears it too.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

use super::{
    forms::{BUTTON, CARD, SecretToCopy},
    playground::RecentKey,
};
use crate::accounts::types::FormError;

#[server(endpoint = "welcome-key")]
pub async fn take_new_key() -> Result<Option<String>, FormError> {
    use axum::http::header;
    use tower_sessions::cookie::Cookie;

    use crate::{accounts::cookie_names::NEW_KEY, keys::format::ApiKey, server_ctx};

    let Some(parts) = use_context::<axum::http::request::Parts>() else {
        return Ok(None);
    };
    let Some(secret) = parts
        .headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| Cookie::split_parse(v.to_owned()))
        .filter_map(Result::ok)
        .find(|c| NEW_KEY.is(c.name()))
        .map(|c| c.value().to_owned())
    else {
        return Ok(None);
    };
    let state = server_ctx::app_state()?;
    clear_new_key_cookie(state.config.is_https());
    // Shown only to the account it was made for, while it still works: a
    // browser shared after a sign-up that never reached this page must not
    // show the last person's key to the next.
    // Not `signed_in_user`, which answers 401 to a visitor: this page has
    // nothing to refuse, only nothing to show.
    let session = server_ctx::session().await?;
    let Ok(Some(user)) = crate::accounts::session::current_user(&session, &state).await else {
        return Ok(None);
    };
    let Ok(key) = ApiKey::parse(&secret) else {
        return Ok(None);
    };
    let theirs = state
        .store
        .key_by_hash(&state.key_hasher.hash(&key))
        .await
        .map_err(server_ctx::internal)?
        .is_some_and(|k| k.user_id == user.id && k.revoked_at.is_none());
    Ok(theirs.then_some(secret))
}

/// Ends the cookie that hands a new key to `/welcome` (read, or signed out)
/// on a site served over HTTPS (`https`) or not.
#[cfg(feature = "ssr")]
pub fn clear_new_key_cookie(https: bool) {
    use axum::http::{HeaderValue, header};
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        let clear = new_key_cookie("", 0, https);
        if let Ok(value) = HeaderValue::from_str(&clear) {
            response.append_header(header::SET_COOKIE, value);
        }
    }
}

/// The `Set-Cookie` value that hands a new key to `/welcome` for `seconds`
/// (0 ends it), on a site served over HTTPS (`secure`) or not.
#[cfg(feature = "ssr")]
pub fn new_key_cookie(secret: &str, seconds: u32, secure: bool) -> String {
    let name = crate::accounts::cookie_names::NEW_KEY.on(secure);
    let secure = if secure { "; Secure" } else { "" };
    format!("{name}={secret}; Max-Age={seconds}; Path=/; HttpOnly; SameSite=Strict{secure}")
}

#[component]
pub fn WelcomePage() -> impl IntoView {
    let key = Resource::new(|| (), |_| take_new_key());
    let recent = expect_context::<RecentKey>();
    Effect::new(move |_| {
        if let Some(Ok(Some(secret))) = key.get() {
            recent.0.set(Some(secret));
        }
    });
    view! {
        <Title text="Welcome" />
        <h1 class="mb-6 text-3xl font-bold text-slate-900">"Welcome to Tollgate"</h1>
        <Suspense fallback=|| ()>
            {move || Suspend::new(async move {
                match key.await {
                    Ok(Some(secret)) => view! {
                        <div role="dialog" aria-label="Your primary key" class="rounded-lg border-2 border-amber-400 bg-amber-50 p-5">
                            <h2 class="text-lg font-semibold">"Your primary key"</h2>
                            <p class="mt-1 text-sm text-slate-700">
                                "Copy it now: it is shown only this once. It can call the models (scope chat) on your plan."
                            </p>
                            <div class="mt-3"><SecretToCopy secret testid="primary-key" /></div>
                        </div>
                    }.into_any(),
                    _ => view! {
                        <div class=CARD>
                            <p class="text-slate-700">"Your account is ready. Manage your keys on the keys page."</p>
                        </div>
                    }.into_any(),
                }
            })}
        </Suspense>
        <div class="mt-6 flex gap-3">
            <A href="/keys" attr:class=BUTTON>"Go to your keys"</A>
            <A href="/playground" attr:class="inline-flex items-center rounded-md border border-slate-300 px-4 py-2 text-sm">"Try it in the playground"</A>
            <A href="/plans" attr:class="inline-flex items-center rounded-md border border-slate-300 px-4 py-2 text-sm">"Compare plans"</A>
        </div>
    }
}
