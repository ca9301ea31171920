//! Account types shared by server functions and the pages that call them.

use std::{collections::BTreeMap, fmt};

use leptos::server_fn::{
    codec::JsonEncoding,
    error::{FromServerFnError, ServerFnErrorErr},
};
use serde::{Deserialize, Serialize};

/// A new password's length, in characters; the forms' hints say it too.
pub const PASSWORD_MIN_CHARS: usize = 8;
pub const PASSWORD_MAX_CHARS: usize = 128;

/// The password rule as the forms' hints say it.
pub fn password_hint(more: &str) -> String {
    format!("{PASSWORD_MIN_CHARS} to {PASSWORD_MAX_CHARS} characters{more}")
}

/// The signed-in user, as pages see them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentUser {
    pub id: i64,
    pub email: String,
    pub display_name: String,
    pub is_admin: bool,
    pub created_at: String,
}

/// A one-time link that lets a user who forgot their password set a new
/// one, made by an admin and shown to them once.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct PasswordResetLink {
    /// The whole link; its token is in the fragment, which browsers never
    /// send to a server, so it stays out of logs.
    pub url: String,
    pub expires_at: String,
}

/// What a form shows when its submission is refused: a message for the whole
/// form, one per field, the non-secret values to fill back in, and for throttled
/// attempts how long to wait. It travels in the redirect URL when the form was
/// posted without JavaScript, so it never carries a password.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FormError {
    pub message: String,
    pub fields: BTreeMap<String, String>,
    pub values: BTreeMap<String, String>,
    pub retry_after_secs: Option<u64>,
    /// The session ended before the form was sent: the alert offers a
    /// login in a new tab, so what was typed stays in this one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub signed_out: bool,
}

/// The most characters of a value a refused form keeps (see [`FormError::keep`]).
pub const KEPT_CHARS: usize = 400;

impl FormError {
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            ..Self::default()
        }
    }

    pub fn field(mut self, name: &str, message: impl Into<String>) -> Self {
        self.fields.insert(name.to_owned(), message.into());
        self
    }

    /// Keeps `value` to fill back in, its first [`KEPT_CHARS`] characters:
    /// a form posted without JavaScript carries it back in the redirect's
    /// address, and a 400,000-character name made a 3 MB `Location` that
    /// browsers and proxies refuse. Every field's own limit is below it.
    pub fn keep(mut self, name: &str, value: &str) -> Self {
        let kept = match value.char_indices().nth(KEPT_CHARS) {
            Some((end, _)) => &value[..end],
            None => value,
        };
        self.values.insert(name.to_owned(), kept.to_owned());
        self
    }

    pub fn field_error(&self, name: &str) -> Option<String> {
        self.fields.get(name).cloned()
    }

    pub fn value(&self, name: &str) -> Option<String> {
        self.values.get(name).cloned()
    }
}

impl fmt::Display for FormError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl FromServerFnError for FormError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(error: ServerFnErrorErr) -> Self {
        let message = match error {
            ServerFnErrorErr::Request(_) | ServerFnErrorErr::Response(_) => {
                "The server could not be reached. Check your connection and try again.".to_owned()
            }
            // The caller's mistakes, not the server's (Leptos answers 500).
            ServerFnErrorErr::Args(_) | ServerFnErrorErr::MissingArg(_) => {
                #[cfg(feature = "ssr")]
                crate::server_ctx::set_status(axum::http::StatusCode::BAD_REQUEST, None);
                "The form was incomplete. Fill in every field and try again.".to_owned()
            }
            // On the server, a body that is not what the function takes; in
            // the browser, an answer it cannot read.
            ServerFnErrorErr::Deserialization(_) => {
                #[cfg(feature = "ssr")]
                crate::server_ctx::set_status(axum::http::StatusCode::BAD_REQUEST, None);
                "The request or its answer could not be read. Reload the page and try again."
                    .to_owned()
            }
            other => other.to_string(),
        };
        Self::new(message)
    }
}
