//! Builds a user's usage report: 30 days by day, model and key, the 50 most
//! recent calls, the plan's windows as they stand now, and the balance.

use chrono::{Duration, NaiveDate, Utc};

use super::types::{DayPoint, GroupRow, RecentCall, UsageReport, WindowUse};
use crate::{
    credits::format_credits,
    gateway::{Gateway, limits::Buckets},
    store::{CallRecord, GroupUsage, Store, StoreError},
};

/// Days in the charts.
pub const DAYS: i64 = 30;
/// Calls in the recent list.
pub const RECENT: i64 = 50;

/// A recorded call as the usage and admin pages list it.
pub fn recent_call(c: CallRecord) -> RecentCall {
    RecentCall {
        at: c.created_at,
        key: c.key_name.unwrap_or_default(),
        model: c.model,
        status: c.status,
        error_code: c.error_code,
        tokens: c.prompt_tokens + c.completion_tokens,
        credits: format_credits(c.cost_micros),
        latency_ms: c.latency_ms,
    }
}

fn group(rows: Vec<GroupUsage>) -> Vec<GroupRow> {
    rows.into_iter()
        .map(|g| GroupRow {
            name: g.name,
            requests: g.requests,
            tokens: g.tokens,
            credits: format_credits(g.cost_micros),
        })
        .collect()
}

pub async fn report(
    store: &Store,
    gateway: &Gateway,
    user_id: i64,
) -> Result<UsageReport, StoreError> {
    let accounts = &gateway.accounts;
    let now = Utc::now();
    let buckets = Buckets::at(now);
    let first_day = (now - Duration::days(DAYS - 1)).date_naive();
    let since = format!("{first_day}T00:00:00.000Z");

    let recorded = store.usage_by_day(user_id, &since).await?;
    let days = first_day
        .iter_days()
        .take(DAYS as usize)
        .map(|day: NaiveDate| {
            let day = day.to_string();
            recorded
                .iter()
                .find(|r| r.day == day)
                .map(|r| DayPoint {
                    day: day.clone(),
                    requests: r.requests,
                    tokens: r.tokens,
                    cost_micros: r.cost_micros,
                })
                .unwrap_or(DayPoint {
                    day,
                    requests: 0,
                    tokens: 0,
                    cost_micros: 0,
                })
        })
        .collect();

    let plan = store.plan_of_user(user_id).await?;
    let [minute, hour, day] = gateway
        .limiters
        .user_requests_in_use(accounts, &plan, user_id, &buckets)
        .await?;
    let balance = accounts
        .balance(user_id, &buckets.month)
        .await?
        .unwrap_or(0);

    Ok(UsageReport {
        plan: plan.name.clone(),
        balance: format_credits(balance),
        windows: vec![
            WindowUse {
                label: "Last minute".into(),
                used: minute,
                limit: plan.requests_per_minute,
            },
            WindowUse {
                label: "This hour".into(),
                used: hour,
                limit: plan.requests_per_hour,
            },
            WindowUse {
                label: "Today (UTC)".into(),
                used: day,
                limit: plan.requests_per_day,
            },
        ],
        days,
        by_model: group(store.usage_by_model(user_id, &since).await?),
        by_key: group(store.usage_by_key(user_id, &since).await?),
        recent: store
            .recent_calls(user_id, RECENT)
            .await?
            .into_iter()
            .map(recent_call)
            .collect(),
    })
}
