//! Admin actions on accounts. Each checks its input once, then writes the
//! change, its ledger row where money moves, and its audit event in one
//! transaction.

use std::collections::BTreeMap;

use serde_json::json;

use crate::{
    credits::{MICROS_PER_CREDIT, format_credits, parse_credits},
    request_meta::RequestMeta,
    store::{AuditEvent, PlanAssignment, PlanRecord, Store, StoreError},
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

#[cfg(test)]
mod tests {
    use super::*;

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
