//! Admin actions on accounts. Each checks its input once, then writes the
//! change, its ledger row where money moves, and its audit event in one
//! transaction.

use std::collections::BTreeMap;

use serde_json::json;

use crate::{
    credits::{MICROS_PER_CREDIT, format_credits, parse_credits},
    request_meta::RequestMeta,
    store::{AuditEvent, AuditFilter, PlanAssignment, PlanRecord, Store, StoreError},
};

/// The largest single correction, in credits.
pub const MAX_ADJUSTMENT_CREDITS: i64 = 1_000_000_000;
/// The longest reason an admin can give.
pub const MAX_REASON_CHARS: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("some fields are invalid")]
    Invalid(BTreeMap<String, String>),
    #[error("no such user")]
    UserNotFound,
    #[error("a deduction of {amount} credits is more than the balance of {balance}")]
    Insufficient { amount: String, balance: String },
    #[error(transparent)]
    Store(#[from] StoreError),
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

/// Adds (positive `amount`) or deducts credits with a required reason; returns
/// the balance after, in micro-credits. A deduction never takes the balance
/// below zero.
pub async fn adjust_credits(
    store: &Store,
    meta: &RequestMeta,
    admin_id: i64,
    user_id: i64,
    amount: &str,
    reason: &str,
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
    }
    let Some(amount) = amount.filter(|_| fields.is_empty()) else {
        return Err(AdminError::Invalid(fields));
    };
    let audit = AuditEvent::new("credits.adjust", meta)
        .actor(admin_id)
        .target(format!("user:{user_id}"))
        .details(json!({ "amount": format_credits(amount), "reason": reason }));
    match store
        .adjust_balance(user_id, amount, &format!("admin: {reason}"), &audit)
        .await?
    {
        None => Err(AdminError::UserNotFound),
        Some(Ok(balance)) => Ok(balance),
        Some(Err(balance)) => Err(AdminError::Insufficient {
            amount: format_credits(-amount),
            balance: format_credits(balance),
        }),
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
    Some(at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
}

/// The audit log's filters from a query, each checked; blank ones are unset.
pub fn audit_filter(
    actor_user_id: Option<i64>,
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
    if !fields.is_empty() {
        return Err(AdminError::Invalid(fields));
    }
    Ok(AuditFilter {
        actor_user_id,
        action: text(action),
        target: text(target),
        since,
        until,
    })
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
            Some(3),
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
