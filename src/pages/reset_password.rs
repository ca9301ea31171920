//! `/reset-password#token=…`: sets a new password with the one-time link an
//! admin made for a user who forgot theirs. The token is in the address's
//! fragment, which browsers never send, so it stays out of server logs and
//! `Referer`s; the page's code reads it and posts it with the new password.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

use super::forms::{BUTTON, CARD, Field, FormAlert, NeedsScript, hydrated, last_error};
use crate::accounts::types::{FormError, password_hint};

#[server(endpoint = "reset-password")]
pub async fn reset_password(token: String, password: String) -> Result<(), FormError> {
    use crate::{accounts::service, request_meta::RequestMeta, server_ctx};
    let state = server_ctx::app_state()?;
    service::reset_password(&state, &RequestMeta::current(), &token, &password)
        .await
        .map_err(server_ctx::refuse)
}

/// The token in a `#token=…` fragment, if there is one.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
fn token_in(fragment: &str) -> Option<&str> {
    fragment
        .trim_start_matches('#')
        .split('&')
        .find_map(|part| part.strip_prefix("token="))
        .filter(|token| !token.is_empty())
}

#[component]
pub fn ResetPasswordPage() -> impl IntoView {
    let action = ServerAction::<ResetPassword>::new();
    let error = last_error(action.value());
    let ready = hydrated();
    // `None` until the page's code has read the address.
    let token = RwSignal::new(None::<String>);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        let read = move || {
            let fragment = window().location().hash().unwrap_or_default();
            token.set(Some(token_in(&fragment).unwrap_or_default().to_owned()));
        };
        read();
        // A link opened in this tab after the page (same document) changes
        // only the fragment.
        let listener = window_event_listener(leptos::ev::hashchange, move |_| read());
        on_cleanup(move || listener.remove());
    });
    let done = move || matches!(action.value().get(), Some(Ok(())));
    let no_token = move || token.with(|t| t.as_deref() == Some(""));

    view! {
        <Title text="Set a new password" />
        <div class="mx-auto max-w-md">
            <h1 class="mb-6 text-3xl font-bold text-slate-900">"Set a new password"</h1>
            <NeedsScript what="Setting a password with a reset link" />
            <Show when=done fallback=move || view! {
                <div class=CARD>
                    {move || no_token().then(|| view! {
                        <p class="mb-4 rounded-md border border-red-200 bg-red-50 p-3 text-sm text-red-800" role="alert">
                            "This address has no reset token. Open the whole link an administrator gave you; it ends in #token=…"
                        </p>
                    })}
                    <FormAlert error />
                    <ActionForm action>
                        <input type="hidden" name="token" prop:value=move || token.get().unwrap_or_default() />
                        <Field
                            label="New password"
                            name="password"
                            kind="password"
                            autocomplete="new-password"
                            hint=password_hint(". Long and unusual beats clever: common passwords are refused.")
                            error
                        />
                        <button type="submit" class=BUTTON
                            disabled=move || action.pending().get() || !ready.get() || token.with(|t| t.as_deref().is_none_or(str::is_empty))>
                            "Set password"
                        </button>
                    </ActionForm>
                </div>
            }>
                <div class=CARD role="status" data-testid="password-reset-done">
                    <p class="text-slate-700">"Your password is set, and every session of your account has ended."</p>
                    <A href="/login" attr:class=format!("{BUTTON} mt-4")>"Log in"</A>
                </div>
            </Show>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::token_in;

    #[test]
    fn the_token_is_read_from_the_fragment() {
        assert_eq!(token_in("#token=abc123"), Some("abc123"));
        assert_eq!(token_in("#x=1&token=abc"), Some("abc"));
        assert_eq!(token_in("#token="), None);
        assert_eq!(token_in(""), None);
        assert_eq!(token_in("#tokens=abc"), None);
    }
}
