//! Every account rule, written once. Server functions (pages) and REST handlers
//! call these and only translate the result.

use serde_json::json;

use super::{
    device::KnownDevice,
    domain::{DisplayName, Email, InvalidInput, Password},
    passwords,
    throttle::{ThrottleScope, Throttled},
    types::FormError,
};
use crate::{
    request_meta::RequestMeta,
    startup::AppState,
    store::{AuditEvent, NewUser, StatusChange, Store, StoreError, UserRecord, UserStatus},
};

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("invalid input")]
    Invalid(Vec<InvalidInput>),
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("invalid email or password")]
    InvalidCredentials,
    #[error("this account is disabled")]
    Disabled,
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("too many attempts")]
    Throttled(Throttled),
    #[error("no such user")]
    NotFound,
    #[error("the last administrator cannot delete their account")]
    LastAdmin,
    #[error("an administrator cannot disable their own account")]
    DisablingSelf,
    #[error("the password reset link is used, replaced or expired")]
    ResetLinkClosed,
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for AccountError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Duplicate("email") => Self::EmailTaken,
            other => Self::Internal(other.to_string()),
        }
    }
}

impl AccountError {
    /// The HTTP status this error answers with on an API.
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            Self::Invalid(_) | Self::WrongPassword => StatusCode::UNPROCESSABLE_ENTITY,
            Self::DisablingSelf | Self::ResetLinkClosed => StatusCode::BAD_REQUEST,
            Self::EmailTaken | Self::LastAdmin => StatusCode::CONFLICT,
            Self::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Self::Disabled => StatusCode::FORBIDDEN,
            Self::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The form-facing version of this error, naming the field it concerns.
    pub fn into_form_error(self) -> FormError {
        match self {
            Self::Invalid(problems) => problems
                .into_iter()
                .fold(FormError::new("Some fields need attention."), |form, p| {
                    form.field(p.field, p.message)
                }),
            Self::EmailTaken => FormError::new("Some fields need attention.").field(
                "email",
                "An account with this email already exists: log in to it (the link below), or use another email.",
            ),
            Self::InvalidCredentials => FormError::new("Invalid email or password."),
            Self::Disabled => FormError::new("This account is disabled. Contact an administrator."),
            Self::WrongPassword => FormError::new("Some fields need attention.")
                .field("current_password", "This is not your current password."),
            Self::Throttled(t) => {
                // Rounded up: an attempt made after the wait said passes.
                let secs = t.retry_after.as_secs_f64().ceil().max(1.0) as u64;
                let what = match t.scope {
                    ThrottleScope::ClientIp => "password attempts from this address",
                    ThrottleScope::Account => "password attempts for this account",
                    ThrottleScope::KnownDevice => "password attempts from this browser",
                    ThrottleScope::SignupClientIp => "new accounts from this address",
                };
                let wait = if secs == 1 {
                    "1 second".to_owned()
                } else if secs < 120 {
                    format!("{secs} seconds")
                } else {
                    format!("{} minutes", secs.div_ceil(60))
                };
                FormError {
                    retry_after_secs: Some(secs),
                    ..FormError::new(format!("Too many {what}. Wait {wait} and try again."))
                }
            }
            Self::NotFound => FormError::new("That account no longer exists."),
            Self::DisablingSelf => FormError::new("You cannot disable your own account."),
            Self::ResetLinkClosed => FormError::new(
                "This reset link no longer works: it was used, a newer one was made, or its hour is over. \
                 Ask an administrator for a new one.",
            ),
            Self::LastAdmin => FormError::new(
                "You are the only administrator. Create another one (`tollgate create-admin`) \
                 before deleting this account.",
            ),
            Self::Internal(detail) => {
                tracing::error!(%detail, "account operation failed");
                FormError::new("Something went wrong on our side. Try again in a moment.")
            }
        }
    }
}

pub async fn register(
    state: &AppState,
    meta: &RequestMeta,
    email: &str,
    display_name: &str,
    password: &str,
) -> Result<UserRecord, AccountError> {
    match (
        Email::parse(email),
        DisplayName::parse(display_name),
        Password::parse("password", password),
    ) {
        (Ok(email), Ok(name), Ok(password)) => {
            let turn = state
                .signup_throttle
                .check(meta.client_ip)
                .map_err(|throttled| refused(state, throttled))?;
            let made = create_user(
                &state.store,
                meta,
                &email,
                &name,
                &password,
                AccountKind::User {
                    starting_credits_micros: state.config.signup_credits_micros,
                },
            )
            .await;
            // A taken email keeps its turn: answered freely, "taken" would
            // tell anyone which addresses have accounts, as fast as they ask.
            if matches!(&made, Err(error) if !matches!(error, AccountError::EmailTaken)) {
                state.signup_throttle.no_account_made(turn);
            }
            made
        }
        (email, name, password) => Err(AccountError::Invalid(
            [email.err(), name.err(), password.err()]
                .into_iter()
                .flatten()
                .collect(),
        )),
    }
}

/// A throttled attempt, counted in the metrics and not audited: the throttle
/// bounds the attempts, not the requests, and a row for each refused one
/// would let a flood fill the append-only log.
fn refused(state: &AppState, throttled: Throttled) -> AccountError {
    state
        .instruments
        .limit_rejection(throttled.scope.limit_name());
    AccountError::Throttled(throttled)
}

/// Who is being created: a user with their signup credits, or an admin.
enum AccountKind {
    User { starting_credits_micros: i64 },
    Admin,
}

async fn create_user(
    store: &Store,
    meta: &RequestMeta,
    email: &Email,
    name: &DisplayName,
    password: &Password,
    kind: AccountKind,
) -> Result<UserRecord, AccountError> {
    let (is_admin, starting_credits_micros, action) = match kind {
        AccountKind::User {
            starting_credits_micros,
        } => (false, starting_credits_micros, "account.register"),
        AccountKind::Admin => (true, 0, "account.create_admin"),
    };
    // A taken address is answered before the hash, which would cost 19 MiB
    // and tens of milliseconds for nothing (the insert checks again).
    if store.user_by_email(email.as_str()).await?.is_some() {
        return Err(AccountError::EmailTaken);
    }
    let hash = passwords::hash(password)
        .await
        .map_err(AccountError::Internal)?;
    let audit = AuditEvent::new(action, meta)
        .details(json!({ "role": if is_admin { "admin" } else { "user" } }));
    Ok(store
        .create_user(
            NewUser {
                email: email.as_str(),
                display_name: name.as_str(),
                password_hash: &hash,
                is_admin,
                starting_credits_micros,
            },
            audit,
        )
        .await?)
}

/// Checks a login. Unknown emails and wrong passwords take the same time and
/// get the same answer; a disabled account is named only after a correct
/// password. `device` is the browser's device cookie, when it has one: a
/// browser that signed in to this account before spends its own budget of
/// failed checks, not the account's.
pub async fn login(
    state: &AppState,
    meta: &RequestMeta,
    email: &str,
    password: &str,
    device: Option<&KnownDevice>,
) -> Result<UserRecord, AccountError> {
    // No account has a longer address: refused before the throttle keeps it
    // as a budget's name or the audit log writes it.
    if email.trim().len() > super::domain::EMAIL_MAX_BYTES {
        return Err(AccountError::InvalidCredentials);
    }
    let email = email.trim().to_lowercase();
    // What was typed is kept only when it is an address: a password pasted
    // into the email field would otherwise be shown to every admin.
    let named = if super::domain::Email::parse(&email).is_ok() {
        format!("email:{email}")
    } else {
        "email:(not an address)".to_owned()
    };
    let fail = |reason: &str, user: Option<&UserRecord>| {
        let mut event = AuditEvent::new("login.failure", meta)
            .target(named.clone())
            .details(json!({ "reason": reason }));
        if let Some(user) = user {
            event = event.target(format!("user:{}", user.id));
            event.details = json!({ "reason": reason, "email": email });
        }
        event
    };

    let user = state
        .store
        .user_by_email(&email)
        .await?
        .filter(|u| u.status != UserStatus::Deleted);
    let throttle = &state.login_throttle;
    let attempt = match device.filter(|d| {
        user.as_ref()
            .is_some_and(|u| d.is_for(u.id, u.session_epoch))
    }) {
        Some(known) => throttle.check_known_device(meta.client_ip, &known.nonce),
        None => throttle.check(meta.client_ip, &email),
    }
    .map_err(|throttled| refused(state, throttled))?;
    let stored_hash = user.as_ref().map(|u| u.password_hash.clone());
    if !passwords::verify(password, stored_hash).await {
        let reason = if user.is_some() {
            "wrong_password"
        } else {
            "unknown_email"
        };
        state
            .store
            .record_audit(&fail(reason, user.as_ref()))
            .await?;
        return Err(AccountError::InvalidCredentials);
    }
    throttle.passed(attempt);
    let user = user.ok_or(AccountError::InvalidCredentials)?;
    if user.status == UserStatus::Disabled {
        state
            .store
            .record_audit(&fail("disabled", Some(&user)))
            .await?;
        return Err(AccountError::Disabled);
    }
    state
        .store
        .record_audit(
            &AuditEvent::new("login.success", meta)
                .actor(user.id)
                .target(format!("user:{}", user.id)),
        )
        .await?;
    Ok(user)
}

pub async fn record_logout(
    state: &AppState,
    meta: &RequestMeta,
    user_id: i64,
) -> Result<(), AccountError> {
    let event = AuditEvent::new("logout", meta)
        .actor(user_id)
        .target(format!("user:{user_id}"));
    Ok(state.store.record_audit(&event).await?)
}

pub async fn change_display_name(
    state: &AppState,
    meta: &RequestMeta,
    user: &UserRecord,
    display_name: &str,
) -> Result<String, AccountError> {
    let name = DisplayName::parse(display_name).map_err(|e| AccountError::Invalid(vec![e]))?;
    let event = AuditEvent::new("profile.update", meta)
        .actor(user.id)
        .target(format!("user:{}", user.id))
        .details(json!({ "field": "display_name" }));
    state
        .store
        .update_display_name(user.id, name.as_str(), event)
        .await?;
    Ok(name.as_str().to_owned())
}

/// Whether `password` is the signed-in user's. The check spends the login
/// budgets as a login does (and gives them back when it passes), so a stolen
/// session cannot guess the password faster than a login could.
async fn is_own_password(
    state: &AppState,
    meta: &RequestMeta,
    user: &UserRecord,
    password: &str,
) -> Result<bool, AccountError> {
    let throttle = &state.login_throttle;
    let attempt = throttle
        .check(meta.client_ip, &user.email)
        .map_err(|throttled| refused(state, throttled))?;
    let right = passwords::verify(password, Some(user.password_hash.clone())).await;
    if right {
        throttle.passed(attempt);
    }
    Ok(right)
}

/// Changes the password after checking the current one; returns the new session
/// epoch, which ends every other session of the user.
pub async fn change_password(
    state: &AppState,
    meta: &RequestMeta,
    user: &UserRecord,
    current: &str,
    new: &str,
) -> Result<i64, AccountError> {
    let new = Password::parse("new_password", new).map_err(|e| AccountError::Invalid(vec![e]))?;
    if !is_own_password(state, meta, user, current).await? {
        return Err(AccountError::WrongPassword);
    }
    // Checked once the current one is known right, so the message is true.
    if new.expose() == current {
        return Err(AccountError::Invalid(vec![InvalidInput {
            field: "new_password",
            message: "This is your current password. Choose a new one.".into(),
        }]));
    }
    let hash = passwords::hash(&new)
        .await
        .map_err(AccountError::Internal)?;
    let event = AuditEvent::new("password.change", meta)
        .actor(user.id)
        .target(format!("user:{}", user.id));
    Ok(state.store.update_password(user.id, &hash, event).await?)
}

/// Sets a new password with a reset link's token (see
/// `admin::service::password_reset_link`), once, and ends the account's
/// sessions. The link is checked before the password is hashed, so a wrong
/// token costs no hashing; a wrong one is audited and uses a cell of the
/// address's login budget.
pub async fn reset_password(
    state: &AppState,
    meta: &RequestMeta,
    token: &str,
    new: &str,
) -> Result<(), AccountError> {
    let new = Password::parse("password", new).map_err(|e| AccountError::Invalid(vec![e]))?;
    // Tokens cannot be guessed, but a flood of wrong ones is still refused
    // and shown, as failed logins are: only failures use the address's
    // login budget.
    let attempt = state
        .login_throttle
        .check_address(meta.client_ip)
        .map_err(|throttled| refused(state, throttled))?;
    let token_hash = state.key_hasher.hash_reset_token(token.trim());
    if !state.store.password_reset_is_open(&token_hash).await? {
        state
            .store
            .record_audit(&AuditEvent::new("password.reset_failure", meta))
            .await?;
        return Err(AccountError::ResetLinkClosed);
    }
    state.login_throttle.passed_address(attempt);
    let hash = passwords::hash(&new)
        .await
        .map_err(AccountError::Internal)?;
    let event = AuditEvent::new("password.reset", meta);
    state
        .store
        .use_password_reset(&token_hash, &hash, event)
        .await?
        .map(|_| ())
        .ok_or(AccountError::ResetLinkClosed)
}

pub async fn delete_account(
    state: &AppState,
    meta: &RequestMeta,
    user: &UserRecord,
    password: &str,
) -> Result<(), AccountError> {
    if !is_own_password(state, meta, user, password).await? {
        return Err(AccountError::Invalid(vec![InvalidInput {
            field: "password",
            message: "This is not your password.".into(),
        }]));
    }
    let event = AuditEvent::new("account.delete", meta)
        .actor(user.id)
        .target(format!("user:{}", user.id));
    if state.store.delete_user(user.id, event).await? {
        Ok(())
    } else {
        Err(AccountError::LastAdmin)
    }
}

/// Disables or re-enables an account (admins only; the caller checks the role).
pub async fn set_disabled(
    state: &AppState,
    meta: &RequestMeta,
    admin: &UserRecord,
    user_id: i64,
    disabled: bool,
) -> Result<(), AccountError> {
    // An admin who disabled themselves could not sign in to undo it.
    if disabled && user_id == admin.id {
        return Err(AccountError::DisablingSelf);
    }
    let (status, action) = if disabled {
        (UserStatus::Disabled, "account.disable")
    } else {
        (UserStatus::Active, "account.enable")
    };
    let event = AuditEvent::new(action, meta)
        .actor(admin.id)
        .target(format!("user:{user_id}"));
    match state
        .store
        .set_user_status((admin.id, user_id), status, event)
        .await?
    {
        StatusChange::Done => Ok(()),
        StatusChange::NoSuchUser => Err(AccountError::NotFound),
        StatusChange::NotAnAdmin => Err(AccountError::Disabled),
    }
}

/// What [`ensure_admin`] found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminSetUp {
    Created,
    /// An administrator has this email already (the password is not changed).
    AlreadyAdmin,
    /// A user who is not an administrator has it: nothing was done.
    TakenByUser,
}

/// Creates an admin account unless one with this email exists. Used at
/// start-up (from env) and by `tollgate create-admin`.
pub async fn ensure_admin(
    store: &Store,
    meta: &RequestMeta,
    email: &str,
    password: &str,
) -> Result<AdminSetUp, AccountError> {
    let email = Email::parse(email).map_err(|e| AccountError::Invalid(vec![e]))?;
    let password =
        Password::parse("password", password).map_err(|e| AccountError::Invalid(vec![e]))?;
    let existing = |user: UserRecord| {
        if user.is_admin {
            AdminSetUp::AlreadyAdmin
        } else {
            AdminSetUp::TakenByUser
        }
    };
    if let Some(user) = store.user_by_email(email.as_str()).await? {
        return Ok(existing(user));
    }
    let name = DisplayName::parse("Administrator").map_err(|e| AccountError::Invalid(vec![e]))?;
    match create_user(store, meta, &email, &name, &password, AccountKind::Admin).await {
        Ok(_) => Ok(AdminSetUp::Created),
        Err(AccountError::EmailTaken) => Ok(store
            .user_by_email(email.as_str())
            .await?
            .map_or(AdminSetUp::TakenByUser, existing)),
        Err(other) => Err(other),
    }
}

#[cfg(test)]
mod tests {
    /// The wait said is rounded up, so an attempt made after it passes, and
    /// one second is "1 second".
    #[test]
    fn a_throttled_attempt_is_told_a_wait_rounded_up() {
        let told = |millis: u64| {
            AccountError::Throttled(Throttled {
                scope: ThrottleScope::Account,
                retry_after: std::time::Duration::from_millis(millis),
            })
            .into_form_error()
        };
        let form = told(8_200);
        assert_eq!(form.retry_after_secs, Some(9));
        assert!(
            form.message.ends_with("Wait 9 seconds and try again."),
            "{}",
            form.message
        );
        assert!(told(300).message.ends_with("Wait 1 second and try again."));
        assert!(
            told(150_000)
                .message
                .ends_with("Wait 3 minutes and try again.")
        );
    }

    use super::*;

    /// The start-up admin is created once, and an email a user already has is
    /// reported as such, not taken for an admin.
    #[tokio::test]
    async fn the_admin_set_up_says_what_it_found() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let meta = RequestMeta::default();
        let setup = |email: &'static str| {
            let (store, meta) = (store.clone(), meta.clone());
            async move {
                ensure_admin(&store, &meta, email, "a long admin passphrase")
                    .await
                    .unwrap()
            }
        };
        assert_eq!(setup("root@example.com").await, AdminSetUp::Created);
        assert_eq!(setup("ROOT@example.com").await, AdminSetUp::AlreadyAdmin);
        store
            .create_user(
                NewUser {
                    email: "user@example.com",
                    display_name: "User",
                    password_hash: "x",
                    is_admin: false,
                    starting_credits_micros: 0,
                },
                AuditEvent::new("account.register", &meta),
            )
            .await
            .unwrap();
        assert_eq!(setup("user@example.com").await, AdminSetUp::TakenByUser);
        let user = store
            .user_by_email("user@example.com")
            .await
            .unwrap()
            .unwrap();
        assert!(!user.is_admin, "nothing changed");
    }
}
