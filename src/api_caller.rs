//! Who is calling the REST API: a signed-in session (same-origin checked by
//! `same_origin`), or an API key presented in `Authorization: Bearer` or
//! `x-api-key`, which carries scopes and is used only from where it allows.

use axum::{
    extract::FromRequestParts,
    http::{StatusCode, request::Parts},
    response::{IntoResponse, Response},
};

use crate::{
    accounts::session::SignedIn,
    api_error::ApiError,
    keys::auth::{self, KeyHolder},
    startup::AppState,
    store::UserRecord,
};

pub enum Caller {
    Session(UserRecord),
    Key(Box<KeyHolder>),
}

/// What a route needs from a key.
#[derive(Clone, Copy)]
pub enum Needs {
    /// Reading: `keys:read` (or `keys:write`, which includes it).
    Read,
    /// Changing: `keys:write`.
    Write,
}

impl Caller {
    pub fn user(&self) -> &UserRecord {
        match self {
            Caller::Session(user) => user,
            Caller::Key(holder) => &holder.user,
        }
    }

    /// The scopes of the calling key; `None` for a session, which may do anything
    /// its owner may.
    pub fn key_scopes(&self) -> Option<&[String]> {
        match self {
            Caller::Session(_) => None,
            Caller::Key(holder) => Some(&holder.scopes),
        }
    }

    /// The most the calling key may give the keys it makes, changes or
    /// rotates; `None` for a session.
    pub fn key_bounds(&self) -> Option<crate::keys::bounds::Bounds> {
        match self {
            Caller::Session(_) => None,
            Caller::Key(holder) => Some(crate::keys::bounds::Bounds::of(holder)),
        }
    }

    /// Refuses a key that lacks the scope the route needs.
    pub fn require(&self, needs: Needs) -> Result<(), ApiError> {
        let Some(scopes) = self.key_scopes() else {
            return Ok(());
        };
        let has = |s: &str| scopes.iter().any(|own| own == s);
        let (ok, scope) = match needs {
            Needs::Read => (has("keys:read") || has("keys:write"), "keys:read"),
            Needs::Write => (has("keys:write"), "keys:write"),
        };
        if ok {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "permission_error",
                "missing_scope",
                format!("This key lacks the {scope} scope this route needs."),
            ))
        }
    }
}

/// A key the request's extractors have already checked.
#[derive(Clone)]
struct CheckedKey(KeyHolder);

/// The key a management or admin API request presents, checked as the model
/// API checks it (valid, live, its owner enabled) and used only from where
/// the key allows (its IP allowlist and referrer rule). `None` when the
/// request presents no key. Checked once a request: a route with two
/// extractors that ask (the admin and its key's bounds) hashes it once.
pub async fn key_holder(
    parts: &mut Parts,
    state: &AppState,
) -> Option<Result<KeyHolder, Response>> {
    let presented = match auth::presented_key(&parts.headers) {
        auth::Presented::None => return None,
        presented => presented,
    };
    if let Some(CheckedKey(holder)) = parts.extensions.get::<CheckedKey>() {
        return Some(Ok(holder.clone()));
    }
    let checked = async {
        let holder = auth::authenticate(
            &state.store,
            &state.key_hasher,
            presented,
            auth::UsesCounted::Refuse,
        )
        .await
        .map_err(|e| e.to_api_error().into_response())?;
        // A rotation's grace period is for callers of the model API still
        // being moved to the new secret. Managing keys with the old one
        // would let whoever the rotation was meant to shut out rotate the
        // key again, or make keys of their own that outlive it.
        if holder.key.by_previous_secret {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "permission_error",
                "previous_secret",
                "This is the key's previous secret, which works only for model calls until its rotation's grace period ends. Use the key's current secret here.",
            )
            .into_response());
        }
        let client_ip = crate::request_meta::RequestMeta::from_parts(parts).client_ip;
        crate::gateway::restrictions::check_whence(&holder.key, client_ip, &parts.headers)
            .map_err(IntoResponse::into_response)?;
        state.store.touch_key(holder.key.id);
        Ok(holder)
    };
    let checked = checked.await;
    if let Ok(holder) = &checked {
        parts.extensions.insert(CheckedKey(holder.clone()));
    }
    Some(checked)
}

/// The bounds of the key a request presents, checked as [`key_holder`]
/// checks it; `None` when it presents none (a session). For routes whose
/// caller is an admin, to hold an admin key to its own reach.
pub struct PresentedKeyBounds(pub Option<crate::keys::bounds::Bounds>);

impl FromRequestParts<AppState> for PresentedKeyBounds {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        match key_holder(parts, state).await {
            None => Ok(Self(None)),
            Some(holder) => holder.map(|h| Self(Some(crate::keys::bounds::Bounds::of(&h)))),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(holder) = key_holder(parts, state).await {
            return holder.map(|holder| Caller::Key(Box::new(holder)));
        }
        SignedIn::from_request_parts(parts, state)
            .await
            .map(|SignedIn(user)| Caller::Session(user))
            .map_err(IntoResponse::into_response)
    }
}
