//! Admin actions on accounts. Each checks its input once, then writes the
//! change, its ledger row where money moves, and its audit event in one
//! transaction.

use std::collections::BTreeMap;

use serde_json::json;

use crate::{
    credits::{MICROS_PER_CREDIT, format_credits, parse_credits},
    gateway::accounts::{Accounts, Correction},
    request_meta::RequestMeta,
    store::{
        AuditActor, AuditEvent, AuditFilter, LimitOverrides, PlanAssignment, PlanRecord, Store,
        StoreError, UserRecord,
    },
};

/// The largest single correction, in credits.
pub const MAX_ADJUSTMENT_CREDITS: i64 = crate::credits::MOST_CREDITS_GRANTED;
/// The longest reason an admin can give.
pub const MAX_REASON_CHARS: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("some fields are invalid")]
    Invalid(BTreeMap<String, String>),
    #[error("no such user")]
    UserNotFound,
    #[error("A deduction of {amount} credits is more than the balance of {balance} credits")]
    Insufficient { amount: String, balance: String },
    #[error("the account's keys changed meanwhile; nothing was rotated")]
    KeysChanged,
    #[error("no such plan")]
    PlanNotFound,
    #[error("the account has no such key, or it is already revoked")]
    KeyNotFound,
    #[error("{0}")]
    Conflict(String),
    /// The admin key that asked has less reach than a key it would rotate.
    #[error("{0}")]
    BeyondKey(String),
    /// Asked with an admin key where only a signed-in admin may act.
    #[error("{0}")]
    SessionRequired(&'static str),
    #[error(
        "The correction is made (the balance is now {balance}), but the database refuses \
         writes just now: it is written as soon as the database takes them, and a stop of \
         the server before then would lose it. Sent again with the same idempotency key, it \
         is not made twice; without one, check the balance first."
    )]
    NotWritten { balance: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AdminError {
    /// The status the REST API and the admin pages answer with.
    pub fn status(&self) -> axum::http::StatusCode {
        use axum::http::StatusCode;
        match self {
            Self::Invalid(_) | Self::Insufficient { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::UserNotFound | Self::PlanNotFound | Self::KeyNotFound => StatusCode::NOT_FOUND,
            Self::KeysChanged | Self::Conflict(_) => StatusCode::CONFLICT,
            Self::BeyondKey(_) | Self::SessionRequired(_) => StatusCode::FORBIDDEN,
            Self::NotWritten { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// What the admin is told. Field errors are named field by field, and a
    /// failed store by the adapter, which logs it.
    pub fn message(&self) -> String {
        match self {
            Self::Invalid(_) => "Check the highlighted fields.".to_owned(),
            Self::UserNotFound => "There is no such user.".to_owned(),
            Self::Insufficient { .. } => format!("{self}; nothing was deducted."),
            Self::KeysChanged => format!("{self}; try again."),
            Self::PlanNotFound => "There is no such plan.".to_owned(),
            Self::KeyNotFound => {
                "The account has no such key, or it is already revoked.".to_owned()
            }
            Self::Conflict(message) | Self::BeyondKey(message) => message.clone(),
            Self::SessionRequired(message) => (*message).to_owned(),
            Self::NotWritten { .. } => self.to_string(),
            Self::Store(_) => "Something went wrong on our side. Try again in a moment.".to_owned(),
        }
    }
}

/// A signed amount of credits, exact to the micro-credit: `"25"`, `"-2.5"`.
pub fn parse_adjustment(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let micros = parse_credits(digits)
        .filter(|m| *m <= MAX_ADJUSTMENT_CREDITS * MICROS_PER_CREDIT)
        .ok_or_else(|| {
            format!(
                "Give a number of credits such as \"25\" or \"-2.5\" (at most six decimals and {MAX_ADJUSTMENT_CREDITS} credits)."
            )
        })?;
    if micros == 0 {
        return Err("The amount cannot be zero.".to_owned());
    }
    Ok(if negative { -micros } else { micros })
}

/// The longest idempotency key a correction takes (Stripe's limit is 255;
/// a UUID is 36).
pub const MAX_IDEMPOTENCY_KEY: usize = 100;

/// Adds (positive `amount`) or deducts credits with a required reason; returns
/// the balance after, in micro-credits. A deduction never takes the balance
/// below zero. Sent again under the same `idempotency_key`, it is made once.
pub async fn adjust_credits(
    accounts: &Accounts,
    meta: &RequestMeta,
    admin_id: i64,
    user_id: i64,
    amount: &str,
    reason: &str,
    idempotency_key: Option<&str>,
) -> Result<i64, AdminError> {
    let mut fields = BTreeMap::new();
    let amount = parse_adjustment(amount)
        .map_err(|message| fields.insert("amount".to_owned(), message))
        .ok();
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > MAX_REASON_CHARS {
        fields.insert(
            "reason".to_owned(),
            format!("Say why, in 1 to {MAX_REASON_CHARS} characters; it is kept in the ledger and the audit log."),
        );
    } else if crate::accounts::domain::hides_text(reason) {
        // A zero-width space passed for a reason; line breaks and other
        // controls would break the ledger's and the log's lines.
        fields.insert(
            "reason".to_owned(),
            "The reason contains characters that cannot be shown (line breaks, zero-width or control characters). Say why in plain text.".to_owned(),
        );
    }
    let key = idempotency_key.map(str::trim).filter(|k| !k.is_empty());
    if key
        .is_some_and(|k| k.len() > MAX_IDEMPOTENCY_KEY || !k.bytes().all(|b| b.is_ascii_graphic()))
    {
        fields.insert(
            "idempotency_key".to_owned(),
            format!("Use 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters."),
        );
    }
    let Some(amount) = amount.filter(|_| fields.is_empty()) else {
        return Err(AdminError::Invalid(fields));
    };
    let audit = AuditEvent::new("credits.adjust", meta)
        .actor(admin_id)
        .target(format!("user:{user_id}"))
        .details(json!({ "amount": format_credits(amount), "reason": reason }));
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    match accounts
        .adjust(
            user_id,
            amount,
            key,
            &format!("admin: {reason}"),
            audit,
            &month,
        )
        .await?
    {
        None => Err(AdminError::UserNotFound),
        Some(Correction::Made(balance)) => Ok(balance),
        Some(Correction::Unwritten(balance)) => Err(AdminError::NotWritten {
            balance: format_credits(balance),
        }),
        Some(Correction::KeyReused) => Err(AdminError::Conflict(
            "This idempotency key was used for a correction of another amount; nothing changed."
                .to_owned(),
        )),
        Some(Correction::OutOfRange(balance)) if amount < 0 => Err(AdminError::Insufficient {
            amount: format_credits(-amount),
            balance: format_credits(balance),
        }),
        Some(Correction::OutOfRange(balance)) => Err(AdminError::Invalid(BTreeMap::from([(
            "amount".to_owned(),
            format!(
                "A balance may hold at most {} credits; this one has {}.",
                format_credits(crate::credits::MOST_BALANCE_MICROS),
                format_credits(balance)
            ),
        )]))),
    }
}

/// Puts a user on any plan that is not retired, public or private.
pub async fn assign_plan(
    store: &Store,
    meta: &RequestMeta,
    admin_id: i64,
    user_id: i64,
    plan: &str,
) -> Result<PlanRecord, AdminError> {
    let slug = plan.trim();
    let audit = AuditEvent::new("plan.assign", meta)
        .actor(admin_id)
        .target(format!("user:{user_id}"))
        .details(json!({ "plan": slug }));
    let invalid = |message: &str| {
        AdminError::Invalid(BTreeMap::from([("plan".to_owned(), message.to_owned())]))
    };
    match store.assign_plan(user_id, slug, &audit).await? {
        PlanAssignment::Assigned(plan) => Ok(plan),
        PlanAssignment::NoSuchUser => Err(AdminError::UserNotFound),
        PlanAssignment::NoSuchPlan => Err(invalid("There is no plan with that id.")),
        PlanAssignment::Retired => Err(invalid("That plan is retired and takes no new users.")),
    }
}

/// The largest limit an admin can set, for any window.
pub const MAX_LIMIT: i64 = 1_000_000_000;

/// The limit fields in the order forms and the API list them.
pub const LIMIT_FIELDS: [&str; 5] = [
    "requests_per_minute",
    "requests_per_hour",
    "requests_per_day",
    "tokens_per_minute",
    "max_parallel",
];

/// Whether `n` can be a request, token or parallel limit (plans and overrides).
pub fn valid_limit(n: i64) -> bool {
    (1..=MAX_LIMIT).contains(&n)
}

fn limit_message() -> String {
    format!("Give a whole number from 1 to {MAX_LIMIT}, or leave it empty for the plan's value.")
}

/// Overrides from form text, one per [`LIMIT_FIELDS`]; blank means the plan's value.
pub fn parse_limit_overrides(texts: [&str; 5]) -> Result<LimitOverrides, AdminError> {
    let mut fields = BTreeMap::new();
    let mut values = [None; 5];
    for ((name, text), value) in LIMIT_FIELDS.iter().zip(texts).zip(values.iter_mut()) {
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        match text.replace('_', "").parse::<i64>() {
            Ok(n) if valid_limit(n) => *value = Some(n),
            _ => {
                fields.insert((*name).to_owned(), limit_message());
            }
        }
    }
    if !fields.is_empty() {
        return Err(AdminError::Invalid(fields));
    }
    let [
        requests_per_minute,
        requests_per_hour,
        requests_per_day,
        tokens_per_minute,
        max_parallel,
    ] = values;
    Ok(LimitOverrides {
        requests_per_minute,
        requests_per_hour,
        requests_per_day,
        tokens_per_minute,
        max_parallel,
    })
}

/// Sets (or, with every field `None`, removes) a user's limit overrides; they
/// apply from the user's next request.
pub async fn set_limits(
    store: &Store,
    meta: &RequestMeta,
    admin_id: i64,
    user_id: i64,
    overrides: LimitOverrides,
) -> Result<LimitOverrides, AdminError> {
    let o = overrides;
    let values = [
        o.requests_per_minute,
        o.requests_per_hour,
        o.requests_per_day,
        o.tokens_per_minute,
        o.max_parallel,
    ];
    let fields: BTreeMap<String, String> = LIMIT_FIELDS
        .iter()
        .zip(values)
        .filter(|(_, v)| v.is_some_and(|n| !valid_limit(n)))
        .map(|(name, _)| ((*name).to_owned(), limit_message()))
        .collect();
    if !fields.is_empty() {
        return Err(AdminError::Invalid(fields));
    }
    let details: serde_json::Map<String, serde_json::Value> = LIMIT_FIELDS
        .iter()
        .zip(values)
        .map(|(name, v)| ((*name).to_owned(), json!(v)))
        .collect();
    let audit = AuditEvent::new("limits.set", meta)
        .actor(admin_id)
        .target(format!("user:{user_id}"))
        .details(serde_json::Value::Object(details));
    if store
        .set_limit_overrides(user_id, &overrides, &audit)
        .await?
    {
        Ok(overrides)
    } else {
        Err(AdminError::UserNotFound)
    }
}

/// A time bound for the audit log: an RFC 3339 time or a date (its midnight,
/// UTC), in the form events are stored in.
pub fn parse_time_bound(text: &str) -> Option<String> {
    let text = text.trim();
    let at = chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc())
        })?;
    Some(crate::store::stored_time(at))
}

/// The audit log's actor filter as typed on its page: a user id or an email
/// address (any case); blank for anyone.
pub fn audit_actor(text: &str) -> Result<Option<AuditActor>, AdminError> {
    let text = text.trim();
    if text.is_empty() {
        Ok(None)
    } else if let Ok(id) = text.parse::<i64>() {
        Ok(Some(AuditActor::Id(id)))
    } else if text.contains('@') {
        Ok(Some(AuditActor::Email(text.to_lowercase())))
    } else {
        Err(AdminError::Invalid(BTreeMap::from([(
            "actor".to_owned(),
            "Give a user id (a number) or an email address.".to_owned(),
        )])))
    }
}

/// The audit log's filters from a query, each checked; blank ones are unset.
pub fn audit_filter(
    actor: Option<AuditActor>,
    action: Option<&str>,
    target: Option<&str>,
    since: Option<&str>,
    until: Option<&str>,
) -> Result<AuditFilter, AdminError> {
    let text = |v: Option<&str>| {
        v.map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let mut fields = BTreeMap::new();
    let mut bound = |name: &str, value: Option<&str>| {
        let value = text(value)?;
        let parsed = parse_time_bound(&value);
        if parsed.is_none() {
            fields.insert(
                name.to_owned(),
                "Use a date (2026-11-22) or an RFC 3339 time (2026-11-22T09:30:00Z).".to_owned(),
            );
        }
        parsed
    };
    let since = bound("since", since);
    let until = bound("until", until);
    if let (Some(since), Some(until)) = (&since, &until)
        && since >= until
    {
        fields.insert(
            "until".to_owned(),
            "Make it later than the start: no event is both.".to_owned(),
        );
    }
    if !fields.is_empty() {
        return Err(AdminError::Invalid(fields));
    }
    Ok(AuditFilter {
        actor,
        action: text(action),
        target: text(target),
        since,
        until,
    })
}

/// How long a password reset link works.
pub const RESET_LINK_SECS: i64 = 3600;

/// Makes a one-time link with which the user can set a new password, for an
/// admin to pass on (Tollgate sends no email). The account's earlier links
/// stop working. Only active accounts get one (a disabled account could not
/// log in with its new password anyway), and not the admin's own, who is
/// signed in and changes it on the account page. Only from a session
/// (`admin_key` is the key the admin called with, if any): an admin key
/// that leaked must not take over accounts.
pub async fn password_reset_link(
    store: &Store,
    hasher: &crate::keys::hashing::KeyHasher,
    meta: &RequestMeta,
    public_url: &str,
    (admin_id, admin_key): (i64, Option<&crate::keys::bounds::Bounds>),
    user_id: i64,
) -> Result<crate::accounts::types::PasswordResetLink, AdminError> {
    if admin_key.is_some() {
        return Err(AdminError::SessionRequired(
            "A password reset link is made by a signed-in admin, not with a key.",
        ));
    }
    if user_id == admin_id {
        return Err(AdminError::Conflict(
            "You are signed in: change your own password on your account page.".to_owned(),
        ));
    }
    live_user(store, user_id).await?;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| {
        AdminError::Store(StoreError::Background(format!(
            "the OS random generator failed: {e}"
        )))
    })?;
    let token = base_x::encode(crate::keys::format::ALPHABET, &bytes);
    let audit = AuditEvent::new("password.reset_link", meta)
        .actor(admin_id)
        .target(format!("user:{user_id}"))
        .details(json!({ "valid_seconds": RESET_LINK_SECS }));
    let expires_at = store
        .create_password_reset(
            user_id,
            &hasher.hash_reset_token(&token),
            RESET_LINK_SECS,
            audit,
        )
        .await?
        .ok_or_else(|| {
            AdminError::Conflict("The account is disabled; enable it first.".to_owned())
        })?;
    Ok(crate::accounts::types::PasswordResetLink {
        url: format!(
            "{}/reset-password#token={token}",
            public_url.trim_end_matches('/')
        ),
        expires_at,
    })
}

/// Gives every active key of an account a new secret at once (no grace: the
/// old secrets stop), all or nothing; returns the keys with their new secrets,
/// to be shown once.
/// `admin_key` is the bounds of the admin key that asks, if a key asks.
pub async fn rotate_all_keys(
    store: &Store,
    hasher: &crate::keys::hashing::KeyHasher,
    meta: &RequestMeta,
    admin_id: i64,
    admin_key: Option<&crate::keys::bounds::Bounds>,
    user_id: i64,
) -> Result<Vec<crate::keys::types::IssuedKey>, AdminError> {
    use crate::keys::service::{self as keys, KeyError};
    live_user(store, user_id).await?;
    let ids: Vec<i64> = store
        .keys_of_user(user_id)
        .await?
        .iter()
        .filter(|k| keys::view(k).status == "active")
        .map(|k| k.id)
        .collect();
    keys::rotate_as(
        store,
        hasher,
        meta,
        keys::RotatedBy::Admin {
            admin_id,
            key: admin_key,
        },
        user_id,
        &ids,
        0,
    )
    .await
    .map_err(|e| match e {
        KeyError::NotFound => AdminError::KeysChanged,
        e @ KeyError::BeyondCaller { .. } => AdminError::BeyondKey(e.message()),
        other => AdminError::Store(StoreError::Background(other.to_string())),
    })
}

/// Everything the admin user page shows about one account.
pub async fn user_detail(
    store: &Store,
    accounts: &Accounts,
    user_id: i64,
) -> Result<crate::pages::admin_user::AdminUserDetail, AdminError> {
    use crate::pages::admin_user::{AdminUserDetail, PlanChoice};
    let user = live_user(store, user_id).await?;
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let balance = accounts.balance(user_id, &month).await?.unwrap_or(0);
    let plan = store.plan_of_user(user_id).await?;
    let plan_limits = store
        .plan_by_slug(&plan.slug)
        .await?
        .map(|s| {
            let p = s.plan;
            [
                Some(p.requests_per_minute),
                Some(p.requests_per_hour),
                Some(p.requests_per_day),
                p.tokens_per_minute,
                p.max_parallel,
            ]
        })
        .unwrap_or_default();
    let o = store.limit_overrides(user_id).await?;
    let overrides = [
        o.requests_per_minute,
        o.requests_per_hour,
        o.requests_per_day,
        o.tokens_per_minute,
        o.max_parallel,
    ];
    let keys = store
        .keys_of_user(user_id)
        .await?
        .iter()
        .map(crate::keys::service::view)
        .collect();
    let recent = store
        .recent_calls(user_id, 20)
        .await?
        .into_iter()
        .map(crate::usage::service::recent_call)
        .collect();
    let audit = store
        .audit_of_user(user_id, 20)
        .await?
        .into_iter()
        .map(audit_row)
        .collect();
    let plans = store
        .unretired_plans()
        .await?
        .into_iter()
        .map(|p| PlanChoice {
            id: p.slug,
            name: p.name,
            public: p.is_public,
        })
        .collect();
    Ok(AdminUserDetail {
        id: user.id,
        email: user.email,
        display_name: user.display_name,
        is_admin: user.is_admin,
        disabled: user.status == crate::store::UserStatus::Disabled,
        created_at: user.created_at,
        plan: plan.slug,
        plan_name: plan.name,
        balance: format_credits(balance),
        keys,
        recent,
        audit,
        plans,
        plan_limits,
        overrides,
        correction_key: fresh_idempotency_key()?,
    })
}

/// A random key for one rendering of the correction form: its submissions,
/// however many, make one correction.
fn fresh_idempotency_key() -> Result<String, AdminError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| AdminError::Store(StoreError::Background(e.to_string())))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// An audit record as the admin pages show it.
pub fn audit_row(r: crate::store::AuditRecord) -> crate::pages::admin::AuditRow {
    crate::pages::admin::AuditRow {
        id: r.id,
        at: r.at,
        actor: r.actor_user_id,
        actor_email: r.actor_email,
        action: r.action,
        target: r.target,
        target_label: r.target_label,
        target_user_id: r.target_user_id,
        client_ip: r.client_ip,
        details: r.details,
    }
}

/// Revokes every key of an account that is not yet revoked; returns how many.
/// Each key's revocation is audited, with the admin as the actor, and the
/// whole once more as `keys.revoke_all`.
pub async fn revoke_all_keys(
    store: &Store,
    meta: &RequestMeta,
    admin_id: i64,
    user_id: i64,
) -> Result<u64, AdminError> {
    live_user(store, user_id).await?;
    let each = AuditEvent::new("key.revoke", meta).actor(admin_id);
    let summary = AuditEvent::new("keys.revoke_all", meta)
        .actor(admin_id)
        .target(format!("user:{user_id}"));
    Ok(store.revoke_every_key(user_id, &each, summary).await?)
}

/// Revokes one key of an account (a leaked one, say), leaving the others.
pub async fn revoke_key(
    store: &Store,
    meta: &RequestMeta,
    admin_id: i64,
    user_id: i64,
    key_id: i64,
) -> Result<(), AdminError> {
    live_user(store, user_id).await?;
    match crate::keys::service::revoke_by(store, meta, admin_id, user_id, &[key_id]).await {
        Ok(1..) => Ok(()),
        Ok(0) => Err(AdminError::KeyNotFound),
        Err(error) => Err(AdminError::Store(StoreError::Background(error.to_string()))),
    }
}

/// An account's calls in `range` as CSV, for the admin API's export: the
/// same file the account downloads from its usage page.
pub async fn usage_export(
    store: &Store,
    user_id: i64,
    range: crate::usage::export::ExportRange,
) -> Result<
    impl futures::Stream<Item = Result<axum::body::Bytes, StoreError>> + Send + 'static,
    AdminError,
> {
    live_user(store, user_id).await?;
    Ok(crate::usage::export::calls_csv(store.clone(), user_id, range).await?)
}

/// The account, unless there is none or it was deleted.
async fn live_user(store: &Store, user_id: i64) -> Result<UserRecord, AdminError> {
    store
        .user_by_id(user_id)
        .await?
        .filter(|u| u.status != crate::store::UserStatus::Deleted)
        .ok_or(AdminError::UserNotFound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_time_bounds_take_dates_and_rfc3339_times_in_utc() {
        assert_eq!(
            parse_time_bound("2026-11-22").as_deref(),
            Some("2026-11-22T00:00:00.000Z")
        );
        assert_eq!(
            parse_time_bound(" 2026-11-22T10:30:00+01:00 ").as_deref(),
            Some("2026-11-22T09:30:00.000Z")
        );
        for bad in ["", "yesterday", "2026-13-01", "2026-11-22 09:30"] {
            assert_eq!(parse_time_bound(bad), None, "{bad:?}");
        }
        let filter = audit_filter(
            Some(AuditActor::Id(3)),
            Some(" key.create "),
            Some(""),
            None,
            Some("2026-01-01"),
        )
        .unwrap();
        assert_eq!(filter.action.as_deref(), Some("key.create"));
        assert_eq!(filter.target, None);
        assert!(matches!(
            audit_filter(None, None, None, Some("soon"), Some("later")),
            Err(AdminError::Invalid(fields)) if fields.len() == 2
        ));
        assert_eq!(audit_actor(" ").unwrap(), None);
        assert_eq!(audit_actor(" 7 ").unwrap(), Some(AuditActor::Id(7)));
        assert_eq!(
            audit_actor(" Ada@Example.COM ").unwrap(),
            Some(AuditActor::Email("ada@example.com".into()))
        );
        assert!(
            matches!(audit_actor("ada"), Err(AdminError::Invalid(f)) if f.contains_key("actor"))
        );
    }

    #[test]
    fn limit_overrides_parse_blank_as_the_plans_value() {
        let o = parse_limit_overrides(["5", " ", "1_000", "", "2"]).unwrap();
        assert_eq!(
            o,
            LimitOverrides {
                requests_per_minute: Some(5),
                requests_per_hour: None,
                requests_per_day: Some(1000),
                tokens_per_minute: None,
                max_parallel: Some(2),
            }
        );
        assert!(parse_limit_overrides([""; 5]).unwrap().is_empty());
        assert!(matches!(
            parse_limit_overrides(["ten", "1.5", "0", "-4", "9999999999999999999999"]),
            Err(AdminError::Invalid(fields)) if fields.len() == 5 && fields.contains_key("requests_per_hour")
        ));
    }

    #[test]
    fn adjustments_are_exact_signed_and_bounded() {
        assert_eq!(parse_adjustment("25"), Ok(25_000_000));
        assert_eq!(parse_adjustment(" +0.000001 "), Ok(1));
        assert_eq!(parse_adjustment("-2.5"), Ok(-2_500_000));
        assert_eq!(
            parse_adjustment("1000000000"),
            Ok(MAX_ADJUSTMENT_CREDITS * MICROS_PER_CREDIT)
        );
        for bad in [
            "",
            "0",
            "-0.0",
            "1e3",
            "0.0000001",
            "--1",
            "1000000000.000001",
            "ten",
            "9223372036854775807",
        ] {
            assert!(parse_adjustment(bad).is_err(), "{bad:?}");
        }
    }
}
