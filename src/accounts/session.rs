//! Ties a browser session (tower-sessions, stored in SQLite) to a user, and the
//! extractors REST handlers use to require one.
//!
//! A session remembers the user's `session_epoch` from when it signed in. Changing
//! the password, disabling or deleting the account bumps the epoch, which ends
//! every older session on its next request.
//!
//! A session in use is saved again now and then (see [`refresh_after`]),
//! which moves its idle expiry on: tower-sessions saves, and so extends, only
//! a session that changed, so one used all day ended a fixed time after sign-in.

use axum::{
    extract::FromRequestParts,
    http::{StatusCode, header::ACCEPT, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use serde::{Deserialize, Serialize};
use tower_sessions::Session;

use crate::{
    api_error::ApiError,
    startup::AppState,
    store::{StoreError, UserRecord, UserStatus},
};

const AUTH_KEY: &str = "tollgate.auth";

#[derive(Debug, Serialize, Deserialize)]
struct SessionAuth {
    user_id: i64,
    epoch: i64,
    /// When the session was last saved for being used, in Unix seconds.
    #[serde(default)]
    seen: i64,
}

/// How long a session in use goes unsaved: a hundredth of the idle time,
/// from one second to a minute. Saving it on every request would write to
/// the database for every call a page makes.
fn refresh_after(idle: std::time::Duration) -> i64 {
    (idle.as_secs() / 100).clamp(1, 60) as i64
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("session store: {0}")]
    Session(#[from] tower_sessions::session::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Signs `user` in on this session under a fresh session id (no fixation).
pub async fn sign_in(session: &Session, user_id: i64, epoch: i64) -> Result<(), SessionError> {
    session.cycle_id().await?;
    let seen = chrono::Utc::now().timestamp();
    session
        .insert(
            AUTH_KEY,
            SessionAuth {
                user_id,
                epoch,
                seen,
            },
        )
        .await?;
    Ok(())
}

/// Ends the session and deletes it from the store.
pub async fn sign_out(session: &Session) -> Result<(), SessionError> {
    session.flush().await?;
    Ok(())
}

/// The active user behind `session`; a stale session (account gone, disabled, or
/// signed in before the last password change) is ended on the spot. A live
/// one not saved for a while is marked to be saved, which extends it.
pub async fn current_user(
    session: &Session,
    state: &AppState,
) -> Result<Option<UserRecord>, SessionError> {
    Ok(match checked(session, state).await? {
        Checked::Active(user) => Some(user),
        Checked::Absent | Checked::EndedByPasswordChange | Checked::Ended => None,
    })
}

/// What [`checked`] found.
enum Checked {
    Active(UserRecord),
    /// No signed-in session: none, or an id the store does not know.
    Absent,
    /// Signed in before the account's password changed (or it was disabled
    /// and enabled again): ended.
    EndedByPasswordChange,
    /// The account is gone or disabled: ended.
    Ended,
}

async fn checked(session: &Session, state: &AppState) -> Result<Checked, SessionError> {
    let Some(mut auth) = session.get::<SessionAuth>(AUTH_KEY).await? else {
        return Ok(Checked::Absent);
    };
    let found = match state.store.user_by_id(auth.user_id).await? {
        Some(user) if user.status == UserStatus::Active && user.session_epoch == auth.epoch => {
            let now = chrono::Utc::now().timestamp();
            if now - auth.seen >= refresh_after(state.config.session_idle) {
                auth.seen = now;
                session.insert(AUTH_KEY, auth).await?;
            }
            return Ok(Checked::Active(user));
        }
        Some(user) if user.status == UserStatus::Active => Checked::EndedByPasswordChange,
        _ => Checked::Ended,
    };
    session.flush().await?;
    Ok(found)
}

/// Checks the session of every dashboard request before its handler runs,
/// while tower-sessions can still save it: a stale one is ended and one in
/// use is extended (see [`current_user`]). A page streamed to the browser
/// reads the session only after its headers went out: its extension was
/// lost, and ending a stale session then turned the page into a bare 500.
///
/// A request that came with a session id the store does not know, or one
/// that a password change ended, keeps the browser's cookie (see
/// [`super::cookie_names::KEEP_SESSION_COOKIE`]): the browser may hold a
/// newer one by the time the answer arrives. A page's own request sent just
/// before its password change, answered after it, signed the browser out.
pub async fn check_on_arrival(
    axum::extract::State(state): axum::extract::State<AppState>,
    session: Session,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    // The site's static files come with the cookie too, and need no session.
    let mut keep_cookie = false;
    if !request.uri().path().starts_with("/pkg/") {
        // Before the session loads: an id the store lacks is then forgotten.
        let came_with_id = session.id().is_some();
        match checked(&session, &state).await {
            Ok(Checked::Absent) => keep_cookie = came_with_id,
            Ok(Checked::EndedByPasswordChange) => keep_cookie = true,
            Ok(Checked::Active(_) | Checked::Ended) => {}
            Err(error) => tracing::warn!(%error, "checking the session failed"),
        }
    }
    let mut response = next.run(request).await;
    if keep_cookie {
        response.headers_mut().insert(
            super::cookie_names::KEEP_SESSION_COOKIE,
            axum::http::HeaderValue::from_static("1"),
        );
    }
    response
}

/// A REST handler argument that requires a signed-in user.
pub struct SignedIn(pub UserRecord);

/// A REST handler argument that requires a signed-in admin.
pub struct Admin(pub UserRecord);

/// Anonymous callers: a browser is sent to the login page, a script gets 401.
pub struct AuthRejection {
    status: StatusCode,
    wants_html: bool,
    next: String,
}

impl IntoResponse for AuthRejection {
    fn into_response(self) -> Response {
        match self.status {
            StatusCode::UNAUTHORIZED if self.wants_html => {
                Redirect::to(&login_url(&self.next)).into_response()
            }
            StatusCode::UNAUTHORIZED => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "authentication_error",
                "not_signed_in",
                "Sign in, or send an API key (Authorization: Bearer or x-api-key) with the \
                 scope this route needs.",
            )
            .into_response(),
            StatusCode::FORBIDDEN => ApiError::new(
                StatusCode::FORBIDDEN,
                "permission_error",
                "admin_only",
                "Only administrators may use this route.",
            )
            .into_response(),
            _ => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "session_unavailable",
                "The session could not be read. Try again.",
            )
            .into_response(),
        }
    }
}

/// The login page URL that returns to `next` afterwards.
pub fn login_url(next: &str) -> String {
    format!(
        "/login?{}",
        serde_urlencoded::to_string([("next", next)]).unwrap_or_default()
    )
}

async fn user_from_parts(parts: &mut Parts, state: &AppState) -> Result<UserRecord, AuthRejection> {
    let wants_html = parts
        .headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    let next = parts.uri.path().to_owned();
    let rejection = |status| AuthRejection {
        status,
        wants_html,
        next: next.clone(),
    };
    let session = Session::from_request_parts(parts, state)
        .await
        .map_err(|_| rejection(StatusCode::INTERNAL_SERVER_ERROR))?;
    match current_user(&session, state).await {
        Ok(Some(user)) => Ok(user),
        Ok(None) => Err(rejection(StatusCode::UNAUTHORIZED)),
        Err(error) => {
            tracing::error!(%error, "reading the session failed");
            Err(rejection(StatusCode::INTERNAL_SERVER_ERROR))
        }
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = AuthRejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        user_from_parts(parts, state).await.map(SignedIn)
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    /// An admin's session, or an API key with the `admin` scope whose owner
    /// is an admin (a key carries no ambient authority, so it needs no
    /// same-origin check).
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let forbidden = || {
            AuthRejection {
                status: StatusCode::FORBIDDEN,
                wants_html: false,
                next: String::new(),
            }
            .into_response()
        };
        if let Some(holder) = crate::api_caller::key_holder(parts, state).await {
            let holder = holder?;
            if !holder
                .scopes
                .iter()
                .any(|s| s == crate::keys::types::ADMIN_SCOPE)
            {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "permission_error",
                    "missing_scope",
                    "This key lacks the admin scope the admin API needs.",
                )
                .into_response());
            }
            return if holder.user.is_admin {
                Ok(Admin(holder.user))
            } else {
                Err(forbidden())
            };
        }
        let user = user_from_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        if user.is_admin {
            Ok(Admin(user))
        } else {
            Err(forbidden())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::refresh_after;

    #[test]
    fn a_session_is_saved_again_after_a_hundredth_of_its_idle_time_within_bounds() {
        assert_eq!(refresh_after(Duration::from_secs(60)), 1);
        assert_eq!(refresh_after(Duration::from_secs(900)), 9);
        assert_eq!(refresh_after(Duration::from_secs(604_800)), 60);
    }
}
