//! Checking a presented API key: format and checksum first (no database work for
//! a typo), then the keyed-hash look-up, then revocation, expiry, usage cap and
//! the owner's status. The gateway and the management API both use this.

use axum::http::{HeaderMap, StatusCode, header::AUTHORIZATION};

use super::{
    format::{ApiKey, KeyFormatError},
    hashing::KeyHasher,
    service,
};
use crate::{
    api_error::ApiError,
    store::{KeyRecord, Store, StoreError, UserRecord, UserStatus},
};

/// A verified key and its owner.
#[derive(Debug, Clone)]
pub struct KeyHolder {
    pub key: KeyRecord,
    pub user: UserRecord,
    pub scopes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyAuthError {
    #[error("no API key was presented")]
    Missing,
    #[error("the API key is malformed")]
    Malformed,
    #[error("more than one API key header was sent")]
    MoreThanOne,
    #[error("the API key has a typo (checksum mismatch)")]
    BadChecksum,
    #[error("the API key is not known")]
    Unknown,
    #[error("the API key was revoked")]
    Revoked,
    #[error("the API key has expired")]
    Expired,
    #[error("the API key has reached its usage cap")]
    UsedUp,
    /// Used up, counting uses taken by calls still running.
    #[error("the API key has reached its usage cap, counting calls still running")]
    UsedUpInFlight,
    #[error("the account that owns the API key is disabled")]
    OwnerDisabled,
    #[error("the account that owned the API key was deleted")]
    OwnerDeleted,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl KeyAuthError {
    pub fn to_api_error(&self) -> ApiError {
        let (code, message) = match self {
            Self::Missing => (
                "missing_api_key",
                "No API key. Send it as `Authorization: Bearer tg_…` or in the `x-api-key` header.",
            ),
            Self::Malformed => (
                "invalid_api_key",
                "The API key is malformed: Tollgate keys look like tg_live_….",
            ),
            Self::MoreThanOne => (
                "invalid_api_key",
                "More than one `Authorization` or `x-api-key` header was sent: send the key once.",
            ),
            Self::BadChecksum => (
                "invalid_api_key",
                "The API key has a typo: its checksum does not match. Copy it again.",
            ),
            Self::Unknown => ("invalid_api_key", "The API key is not valid."),
            Self::Revoked => (
                "revoked_api_key",
                "The API key was revoked. Create a new one.",
            ),
            Self::Expired => (
                "expired_api_key",
                "The API key has expired. Create a new one.",
            ),
            Self::UsedUp => ("api_key_used_up", "The API key has reached its usage cap."),
            Self::UsedUpInFlight => (
                "api_key_used_up",
                "The API key has reached its usage cap, counting calls still running with it: a call that fails before the model answers gives its use back.",
            ),
            Self::OwnerDisabled => (
                "account_disabled",
                "The account that owns this key is disabled.",
            ),
            Self::OwnerDeleted => (
                "invalid_api_key",
                "The account that owned this key was deleted, and its keys with it.",
            ),
            Self::Store(error) => {
                tracing::error!(%error, "key look-up failed");
                return ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server_error",
                    "internal_error",
                    "The key could not be checked. Try again.",
                );
            }
        };
        // The key is good and its owner may not call: a 403, typed as
        // OpenAI types its 403s (the SDKs raise PermissionDeniedError).
        let (status, kind) = match self {
            Self::OwnerDisabled => (StatusCode::FORBIDDEN, "permission_error"),
            _ => (StatusCode::UNAUTHORIZED, "authentication_error"),
        };
        ApiError::new(status, kind, code, message)
    }
}

/// The key a request presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented<'a> {
    None,
    One(&'a str),
    /// Two `Authorization` or two `x-api-key` headers: which one is meant is
    /// not clear (a proxy may read the last where Tollgate read the first),
    /// so neither is used.
    MoreThanOne,
}

impl<'a> Presented<'a> {
    /// The key, when exactly one is presented.
    pub fn key(self) -> Option<&'a str> {
        match self {
            Self::One(key) => Some(key),
            Self::None | Self::MoreThanOne => None,
        }
    }
}

/// The key in `Authorization: Bearer …` or `x-api-key`, if either is present.
/// A Tollgate key in the bearer wins; a bearer that is empty or not one
/// yields to `x-api-key`: an OpenAI SDK always sends a bearer (it insists on
/// an `api_key`), so a caller who puts the key in `x-api-key` sends both.
pub fn presented_key(headers: &HeaderMap) -> Presented<'_> {
    if [AUTHORIZATION.as_str(), "x-api-key"]
        .iter()
        .any(|name| headers.get_all(*name).iter().nth(1).is_some())
    {
        return Presented::MoreThanOne;
    }
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            // The scheme is case-insensitive (RFC 9110).
            let (scheme, token) = v.trim_start().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then_some(token.trim())
        });
    let header = headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|key| !key.is_empty());
    let key = match (bearer, header) {
        (Some(bearer), Some(header)) if !bearer.starts_with("tg_") => Some(header),
        (Some(bearer), _) => Some(bearer),
        (None, header) => header,
    };
    key.map_or(Presented::None, Presented::One)
}

/// Whether the key check refuses a capped key whose uses are all counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsesCounted {
    /// Refused as used up (listing models, the management API).
    Refuse,
    /// Left to the call's own take of a use, in the key's turn: some of the
    /// uses counted may be held by calls that will give them back.
    LeaveToTheTake,
}

/// Verifies `presented` and returns the key with its owner. The caller marks
/// the key used (`Store::touch_key`) once its restrictions let the request
/// through, so "last used" never shows a call the key's restrictions refused.
pub async fn authenticate(
    store: &Store,
    hasher: &KeyHasher,
    presented: Presented<'_>,
    uses_counted: UsesCounted,
) -> Result<KeyHolder, KeyAuthError> {
    let presented = match presented {
        Presented::One(key) if !key.is_empty() => key,
        Presented::One(_) | Presented::None => return Err(KeyAuthError::Missing),
        Presented::MoreThanOne => return Err(KeyAuthError::MoreThanOne),
    };
    let key = ApiKey::parse(presented).map_err(|e| match e {
        KeyFormatError::Malformed => KeyAuthError::Malformed,
        KeyFormatError::BadChecksum => KeyAuthError::BadChecksum,
    })?;
    let record = store
        .key_by_hash(&hasher.hash(&key))
        .await?
        .ok_or(KeyAuthError::Unknown)?;
    let user = store
        .user_by_id(record.user_id)
        .await?
        .ok_or(KeyAuthError::Unknown)?;
    // Before the key's own state: a deletion revokes the keys, and "revoked,
    // create a new one" would send their owner nowhere.
    if user.status == UserStatus::Deleted {
        return Err(KeyAuthError::OwnerDeleted);
    }
    match service::status(&record) {
        "revoked" => return Err(KeyAuthError::Revoked),
        "expired" => return Err(KeyAuthError::Expired),
        "used_up" if uses_counted == UsesCounted::Refuse => return Err(KeyAuthError::UsedUp),
        _ => {}
    }
    if user.status != UserStatus::Active {
        return Err(KeyAuthError::OwnerDisabled);
    }
    let scopes = serde_json::from_str(&record.scopes).unwrap_or_default();
    Ok(KeyHolder {
        key: record,
        user,
        scopes,
    })
}

#[cfg(test)]
mod tests {
    use axum::http::{HeaderMap, HeaderValue};

    use super::presented_key;

    fn presented(
        authorization: Option<&'static str>,
        x_api_key: Option<&'static str>,
    ) -> Option<String> {
        let mut headers = HeaderMap::new();
        if let Some(value) = authorization {
            headers.insert("authorization", HeaderValue::from_static(value));
        }
        if let Some(value) = x_api_key {
            headers.insert("x-api-key", HeaderValue::from_static(value));
        }
        presented_key(&headers).key().map(str::to_owned)
    }

    #[test]
    fn two_headers_of_one_name_present_no_key() {
        use super::Presented;
        for name in ["authorization", "x-api-key"] {
            let mut headers = HeaderMap::new();
            headers.append(name, HeaderValue::from_static("Bearer tg_live_a"));
            headers.append(name, HeaderValue::from_static("Bearer tg_live_b"));
            assert_eq!(presented_key(&headers), Presented::MoreThanOne);
        }
    }

    #[test]
    fn a_tollgate_bearer_wins_and_any_other_yields_to_x_api_key() {
        let key = Some("tg_live_abc");
        assert_eq!(presented(Some("Bearer tg_live_abc"), None).as_deref(), key);
        assert_eq!(
            presented(Some("bearer  tg_live_abc "), None).as_deref(),
            key
        );
        assert_eq!(presented(None, Some(" tg_live_abc")).as_deref(), key);
        assert_eq!(
            presented(Some("Bearer tg_live_abc"), Some("tg_live_other")).as_deref(),
            key
        );
        // What an OpenAI SDK sends with the key in a default header.
        assert_eq!(
            presented(Some("Bearer sk-unused"), Some("tg_live_abc")).as_deref(),
            key
        );
        assert_eq!(
            presented(Some("Bearer "), Some("tg_live_abc")).as_deref(),
            key
        );
        // Alone, a bearer that is no key is still the key presented (and refused).
        assert_eq!(
            presented(Some("Bearer sk-unused"), None).as_deref(),
            Some("sk-unused")
        );
        assert_eq!(
            presented(Some("Bearer sk-unused"), Some("  ")).as_deref(),
            Some("sk-unused")
        );
        assert_eq!(presented(Some("Basic abc"), None), None);
        assert_eq!(presented(None, None), None);
    }
}
