//! `/login`.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::{components::A, hooks::use_location};

use super::forms::{BUTTON, CARD, Field, FormAlert, Submit, focus_first_invalid, last_error};
use crate::accounts::types::FormError;

#[server(endpoint = "login")]
pub async fn login(email: String, password: String, next: Option<String>) -> Result<(), FormError> {
    use crate::{
        accounts::{service, session},
        request_meta::RequestMeta,
        server_ctx,
    };
    let state = server_ctx::app_state()?;
    let session = server_ctx::session().await?;
    let device = server_ctx::known_device(&state).await?;
    match service::login(
        &state,
        &RequestMeta::current(),
        &email,
        &password,
        device.as_ref(),
    )
    .await
    {
        Ok(user) => {
            session::sign_in(&session, user.id, user.session_epoch)
                .await
                .map_err(server_ctx::session_failed)?;
            server_ctx::remember_device(&state, user.id, user.session_epoch).await;
            leptos_axum::redirect(&server_ctx::safe_next(next.as_deref()));
            Ok(())
        }
        Err(error) => {
            let form = server_ctx::refuse(error).keep("email", &email);
            Err(match next {
                Some(next) => form.keep("next", &next),
                None => form,
            })
        }
    }
}

#[component]
pub fn LoginPage() -> impl IntoView {
    let action = ServerAction::<Login>::new();
    let error = last_error(action.value());
    focus_first_invalid(action.value(), "main");
    // Read from the raw query, decoded once: the router's query map decodes
    // its values twice, so a page's own encoded `&` or `/` in `next` came
    // back as a new parameter or a path.
    let location = use_location();
    let next = move || {
        location
            .search
            .with(|search| {
                serde_urlencoded::from_str::<Vec<(String, String)>>(search)
                    .ok()?
                    .into_iter()
                    .find_map(|(name, value)| (name == "next").then_some(value))
            })
            .or_else(|| error.get().and_then(|e| e.value("next")))
            .unwrap_or_default()
    };

    view! {
        <Title text="Log in" />
        <div class="mx-auto max-w-md">
            <h1 class="mb-6 text-3xl font-bold text-slate-900">"Log in"</h1>
            <div class=CARD>
                <FormAlert error />
                <ActionForm action>
                    <input type="hidden" name="next" value=next />
                    <Field label="Email" name="email" kind="email" autocomplete="username" keep=true error />
                    <Field label="Password" name="password" kind="password" autocomplete="current-password" error />
                    <Submit class=BUTTON busy=action.pending()>"Log in"</Submit>
                </ActionForm>
            </div>
            <p class="mt-4 text-sm text-slate-600">
                "No account yet? " <A href="/register" attr:class="font-medium text-slate-900 underline">"Register"</A>
            </p>
            <p class="mt-2 text-sm text-slate-600">
                "Forgot your password? An administrator of this Tollgate can give you a link to set a new one."
            </p>
        </div>
    }
}
