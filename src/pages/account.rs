//! `/account`: profile, display name, password, and account deletion.

use leptos::prelude::*;
use leptos_meta::Title;

use super::{
    forms::{
        BUTTON, CARD, DANGER_BUTTON, Field, FormAlert, Submit, focus_by_id, focus_first_invalid,
        last_error,
    },
    nav::{ToLogin, UserResource},
};
use crate::accounts::types::{CurrentUser, FormError, password_hint};

#[server(endpoint = "account/display-name")]
pub async fn update_display_name(display_name: String) -> Result<String, FormError> {
    use crate::{accounts::service, request_meta::RequestMeta, server_ctx};
    let (state, _, user) = server_ctx::signed_in_user().await?;
    let renamed =
        service::change_display_name(&state, &RequestMeta::current(), &user, &display_name)
            .await
            .map_err(|e| server_ctx::refuse(e).keep("display_name", &display_name))?;
    server_ctx::done_without_script("/account", "name");
    Ok(renamed)
}

#[server(endpoint = "account/password")]
pub async fn change_password(
    current_password: String,
    new_password: String,
) -> Result<(), FormError> {
    use crate::{
        accounts::{service, session},
        request_meta::RequestMeta,
        server_ctx,
    };
    let (state, session, user) = server_ctx::signed_in_user().await?;
    let epoch = service::change_password(
        &state,
        &RequestMeta::current(),
        &user,
        &current_password,
        &new_password,
    )
    .await
    .map_err(server_ctx::refuse)?;
    // This session carries on in the new epoch; every other one has ended,
    // and so has every browser's device cookie but this one's.
    session::sign_in(&session, user.id, epoch)
        .await
        .map_err(server_ctx::session_failed)?;
    server_ctx::remember_device(&state, user.id, epoch).await;
    server_ctx::done_without_script("/account", "password");
    Ok(())
}

#[server(endpoint = "account/delete")]
pub async fn delete_account(password: String) -> Result<(), FormError> {
    use crate::{
        accounts::{service, session},
        request_meta::RequestMeta,
        server_ctx,
    };
    let (state, session, user) = server_ctx::signed_in_user().await?;
    service::delete_account(&state, &RequestMeta::current(), &user, &password)
        .await
        .map_err(server_ctx::refuse)?;
    session::sign_out(&session)
        .await
        .map_err(server_ctx::session_failed)?;
    leptos_axum::redirect("/?account=deleted");
    Ok(())
}

#[component]
pub fn AccountPage() -> impl IntoView {
    let user = expect_context::<UserResource>();
    // Made here, outside the Suspense: a rename refetches the user, which
    // builds the details again, and actions made inside would start empty,
    // taking "Saved." away as soon as it appeared.
    let actions = AccountActions {
        rename: ServerAction::new(),
        password: ServerAction::new(),
        delete: ServerAction::new(),
    };
    // Here too: in the details it would run again in each rebuilt copy,
    // refetching for ever.
    Effect::new(move |_| {
        if matches!(actions.rename.value().get(), Some(Ok(_))) {
            user.refetch();
        }
    });
    view! {
        <Title text="Account" />
        // A Transition: the rename's refetch keeps the page up meanwhile.
        <Transition fallback=|| view! { <p class="text-slate-500">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match user.await {
                    Ok(Some(me)) => view! { <AccountDetails me actions /> }.into_any(),
                    _ => view! { <ToLogin /> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[derive(Clone, Copy)]
struct AccountActions {
    rename: ServerAction<UpdateDisplayName>,
    password: ServerAction<ChangePassword>,
    delete: ServerAction<DeleteAccount>,
}

#[component]
fn AccountDetails(me: CurrentUser, actions: AccountActions) -> impl IntoView {
    let AccountActions {
        rename,
        password,
        delete,
    } = actions;
    let rename_error = last_error(rename.value());
    let password_error = last_error(password.value());
    let delete_error = last_error(delete.value());
    focus_first_invalid(rename.value(), "account-name");
    // Built again after a rename (the user is fetched again): the focus the
    // Save button had would be lost with it.
    if matches!(rename.value().get_untracked(), Some(Ok(_))) {
        focus_by_id("save-name");
    }
    focus_first_invalid(password.value(), "account-password");
    focus_first_invalid(delete.value(), "account-delete");
    let saved = |done: bool, text: &'static str| {
        done.then(|| view! { <p class="mt-3 text-sm text-emerald-700">{text}</p> })
    };
    // A form posted without JavaScript comes back saying what it did.
    let done_plainly = super::forms::done_without_script();
    let (renamed_plainly, password_changed_plainly) = (
        done_plainly.as_deref() == Some("name"),
        done_plainly.as_deref() == Some("password"),
    );
    let role = if me.is_admin { "Administrator" } else { "User" };
    let since = me.created_at.get(..10).unwrap_or_default().to_owned();

    view! {
        <h1 class="mb-6 text-3xl font-bold text-slate-900">"Your account"</h1>
        <div class="grid gap-6">
            <section class=CARD>
                <h2 class="mb-4 text-lg font-semibold">"Profile"</h2>
                <dl class="grid grid-cols-[minmax(0,10rem)_minmax(0,1fr)] gap-x-3 gap-y-2 text-sm wrap-anywhere">
                    <dt class="text-slate-500">"Email"</dt>
                    <dd data-testid="account-email">{me.email.clone()}</dd>
                    <dt class="text-slate-500">"Display name"</dt>
                    <dd data-testid="account-name">{me.display_name.clone()}</dd>
                    <dt class="text-slate-500">"Role"</dt>
                    <dd>{role}</dd>
                    <dt class="text-slate-500">"Member since"</dt>
                    <dd>{since}</dd>
                </dl>
            </section>

            <section id="account-name" class=CARD>
                <h2 class="mb-4 text-lg font-semibold">"Display name"</h2>
                <FormAlert error=rename_error />
                <ActionForm action=rename>
                    <Field label="Display name" name="display_name" keep=true initial=me.display_name.clone() error=rename_error />
                    <Submit class=BUTTON busy=rename.pending() id="save-name">"Save name"</Submit>
                </ActionForm>
                // The live region is there before its message, so it is read.
                <div role="status">{move || saved(matches!(rename.value().get(), Some(Ok(_))) || renamed_plainly, "Saved.")}</div>
            </section>

            <section id="account-password" class=CARD>
                <h2 class="mb-4 text-lg font-semibold">"Password"</h2>
                <p class="mb-4 text-sm text-slate-600">"Changing it signs you out everywhere else."</p>
                <FormAlert error=password_error />
                <ActionForm action=password>
                    <Field label="Current password" name="current_password" kind="password" autocomplete="current-password" error=password_error />
                    <Field
                        label="New password"
                        name="new_password"
                        kind="password"
                        autocomplete="new-password"
                        hint=password_hint(", not a common password.")
                        error=password_error
                    />
                    <Submit class=BUTTON busy=password.pending()>"Change password"</Submit>
                </ActionForm>
                <div role="status">{move || saved(matches!(password.value().get(), Some(Ok(_))) || password_changed_plainly, "Password changed. Other sessions have been signed out.")}</div>
            </section>

            <section id="account-delete" class="rounded-lg border border-red-200 bg-white p-6 shadow-sm">
                <h2 class="mb-2 text-lg font-semibold text-red-800">"Delete account"</h2>
                <p class="mb-4 text-sm text-slate-600">
                    "This signs you out everywhere and erases your email, name and password. "
                    "Usage records that accounting needs are kept without them. It cannot be undone."
                </p>
                <FormAlert error=delete_error />
                <ActionForm action=delete>
                    <Field label="Your password, to confirm" name="password" kind="password" autocomplete="current-password" error=delete_error />
                    <Submit class=DANGER_BUTTON busy=delete.pending()>"Delete my account"</Submit>
                </ActionForm>
            </section>
        </div>
    }
}
