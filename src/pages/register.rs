//! `/register`.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::A;

use super::forms::{BUTTON, CARD, Field, FormAlert, Submit, focus_first_invalid, last_error};
use crate::accounts::types::{FormError, password_hint};

#[server(endpoint = "register")]
pub async fn register(
    email: String,
    display_name: String,
    password: String,
) -> Result<(), FormError> {
    use crate::{
        accounts::{service, session},
        request_meta::RequestMeta,
        server_ctx,
    };
    let state = server_ctx::app_state()?;
    let session = server_ctx::session().await?;
    let meta = RequestMeta::current();
    match service::register(&state, &meta, &email, &display_name, &password).await {
        Ok(user) => {
            session::sign_in(&session, user.id, user.session_epoch)
                .await
                .map_err(server_ctx::session_failed)?;
            server_ctx::remember_device(&state, user.id, user.session_epoch).await;
            // The primary key; the account stands even if this fails (keys can be made later).
            let primary = crate::keys::types::CreateKey {
                name: "Primary key".into(),
                ..Default::default()
            };
            match crate::keys::service::create(
                &state.store,
                &state.key_hasher,
                &meta,
                &state.gateway.models,
                user.id,
                &primary,
                None,
            )
            .await
            {
                Ok(issued) => {
                    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
                        let cookie = super::welcome::new_key_cookie(
                            &issued.secret,
                            300,
                            state.config.is_https(),
                        );
                        if let Ok(value) = axum::http::HeaderValue::from_str(&cookie) {
                            response.append_header(axum::http::header::SET_COOKIE, value);
                        }
                    }
                }
                Err(error) => tracing::error!(error = %error, "creating the primary key failed"),
            }
            leptos_axum::redirect("/welcome");
            Ok(())
        }
        Err(error) => Err(server_ctx::refuse(error)
            .keep("email", &email)
            .keep("display_name", &display_name)),
    }
}

#[component]
pub fn RegisterPage() -> impl IntoView {
    let action = ServerAction::<Register>::new();
    let error = last_error(action.value());
    focus_first_invalid(action.value(), "main");

    view! {
        <Title text="Register" />
        <div class="mx-auto max-w-md">
            <h1 class="mb-6 text-3xl font-bold text-slate-900">"Create your account"</h1>
            <div class=CARD>
                <FormAlert error />
                <ActionForm action>
                    <Field label="Email" name="email" kind="email" autocomplete="email" keep=true error />
                    <Field label="Display name" name="display_name" autocomplete="nickname" keep=true error />
                    <Field
                        label="Password"
                        name="password"
                        kind="password"
                        autocomplete="new-password"
                        hint=password_hint(". Long and unusual beats clever: common passwords are refused.")
                        error
                    />
                    <Submit class=BUTTON busy=action.pending()>"Create account"</Submit>
                </ActionForm>
            </div>
            <p class="mt-4 text-sm text-slate-600">
                "Already registered? " <A href="/login" attr:class="font-medium text-slate-900 underline">"Log in"</A>
            </p>
        </div>
    }
}
