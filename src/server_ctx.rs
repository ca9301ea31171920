//! What a server function reads from the request it serves: the app state, the
//! session, the signed-in user, the device cookie. Failures become a `FormError` the page can show.

use leptos::prelude::*;
use tower_cookies::Cookies;
use tower_sessions::Session;

use crate::{
    accounts::{device::KnownDevice, service::AccountError, session, types::FormError},
    startup::AppState,
    store::UserRecord,
};

/// A failure the user cannot fix: logged, and shown as a generic message.
pub fn internal(detail: impl std::fmt::Display) -> FormError {
    tracing::error!(%detail, "server function failed");
    FormError::new("Something went wrong on our side. Try again in a moment.")
}

pub fn app_state() -> Result<AppState, FormError> {
    use_context::<AppState>().ok_or_else(|| internal("application state is missing"))
}

pub async fn session() -> Result<Session, FormError> {
    leptos_axum::extract::<Session>().await.map_err(internal)
}

/// The browser's device cookie, when it carries a valid one (see
/// `accounts::device`).
pub async fn known_device(state: &AppState) -> Result<Option<KnownDevice>, FormError> {
    let cookies = leptos_axum::extract::<Cookies>().await.map_err(internal)?;
    Ok(KnownDevice::from_cookies(
        &cookies,
        &state.key_hasher.device_cookie_key(),
        state.config.is_https(),
        chrono::Utc::now().timestamp(),
    ))
}

/// Marks this browser as one that has signed in to account `user_id`, in
/// session epoch `epoch`. Best effort: the sign-in has happened, and without
/// the cookie the browser only stays unknown.
pub async fn remember_device(state: &AppState, user_id: i64, epoch: i64) {
    match leptos_axum::extract::<Cookies>().await {
        Ok(cookies) => KnownDevice::remember(
            &cookies,
            &state.key_hasher.device_cookie_key(),
            user_id,
            epoch,
            state.config.is_https(),
            chrono::Utc::now().timestamp(),
        ),
        Err(error) => tracing::warn!(%error, "no cookie jar for the device cookie"),
    }
}

/// The signed-in user, or a form error asking to sign in.
pub async fn signed_in_user() -> Result<(AppState, Session, UserRecord), FormError> {
    let state = app_state()?;
    let session = session().await?;
    match session::current_user(&session, &state)
        .await
        .map_err(internal)?
    {
        Some(user) => Ok((state, session, user)),
        None => {
            set_status(axum::http::StatusCode::UNAUTHORIZED, None);
            Err(FormError {
                signed_out: true,
                ..FormError::new("Your session has ended: log in again.")
            })
        }
    }
}

/// Maps a session failure to the generic form error.
pub fn session_failed(error: session::SessionError) -> FormError {
    internal(error)
}

/// Whether the request is a plain HTML form post (no JavaScript), which Leptos
/// answers with a redirect back to the form rather than a status code.
pub fn is_plain_form_post() -> bool {
    use_context::<axum::http::request::Parts>().is_some_and(|parts| {
        // A page load accepts HTML too, and its status is the page's own.
        parts.method == axum::http::Method::POST
            && parts
                .headers
                .get(axum::http::header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("text/html"))
    })
}

/// Sends a plain form post that succeeded back to `page` with `?done=<what>`,
/// which the page shows as the form's success message: Leptos' own redirect
/// back carries only refusals. Script callers are answered as before.
pub fn done_without_script(page: &str, what: &str) {
    if is_plain_form_post() {
        leptos_axum::redirect(&format!("{page}?done={what}"));
    }
}

/// Turns a refused account operation into the form's error, and gives script
/// callers the matching status (and `Retry-After` when throttled). Plain form
/// posts keep Leptos' redirect back to the form instead.
pub fn refuse(error: AccountError) -> FormError {
    let status = error.status();
    // The header says the wait the message says.
    let form = error.into_form_error();
    set_status(status, form.retry_after_secs);
    form
}

/// Sets the status of a script call's answer; plain form posts stay redirects.
pub fn set_status(status: axum::http::StatusCode, retry_after_secs: Option<u64>) {
    if !is_plain_form_post()
        && let Some(response) = use_context::<leptos_axum::ResponseOptions>()
    {
        response.set_status(status);
        if let Some(secs) = retry_after_secs {
            response.insert_header(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs),
            );
        }
    }
}

/// Sends the page's content security policy. Scripts run only with this
/// response's nonce, which Leptos puts on its own inline scripts, or when
/// such a script loads them (the app's module and WebAssembly); nothing is
/// loaded from other origins, and no page may frame this one.
pub fn send_page_policy() {
    use axum::http::{HeaderValue, header};
    let (Some(nonce), Some(response)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) else {
        return;
    };
    // `cargo leptos watch` reloads pages over a WebSocket of its own.
    let watching = std::env::var_os("LEPTOS_WATCH").is_some();
    if let Ok(value) = HeaderValue::from_str(&page_policy(&nonce, watching)) {
        response.insert_header(header::CONTENT_SECURITY_POLICY, value);
    }
}

/// The policy [`send_page_policy`] sends. `'self'` among the script sources
/// is for browsers without `'strict-dynamic'`, which the others ignore.
pub fn page_policy(nonce: &str, watching: bool) -> String {
    let reload = if watching { " ws: wss:" } else { "" };
    format!(
        "default-src 'self'; script-src 'nonce-{nonce}' 'strict-dynamic' 'self' 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'{reload}; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// A local path to return to after login; anything else falls back to `/account`.
/// Only visible ASCII passes, so the path is always a valid `Location` header.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                // `/..//host` is `//host` once the browser resolves it.
                && !path.split(['/', '?']).any(is_dot_segment)
                && !path.contains('\\')
                && path.len() <= 512
                && path.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            path.to_owned()
        }
        _ => "/account".to_owned(),
    }
}

/// `.` or `..`, written out or percent-encoded (`%2e%2E`), as a browser
/// resolves it.
fn is_dot_segment(segment: &str) -> bool {
    let decoded = segment.to_ascii_lowercase().replace("%2e", ".");
    decoded == "." || decoded == ".."
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn only_local_visible_paths_are_followed_after_login() {
        assert_eq!(safe_next(Some("/admin?tab=users")), "/admin?tab=users");
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil",
            "/..//evil.example",
            "/.//evil.example",
            "/%2e%2e//evil.example/",
            "/%2E%2E/%2e%2e//evil.example/x",
            "/.%2e//evil.example",
            "/%2e//evil.example",
            "/a\r\nSet-Cookie: x",
            "/ü",
            "admin",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/account", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/account");
        assert_eq!(safe_next(Some("/keys/%2e%2ex")), "/keys/%2e%2ex");
    }
}
