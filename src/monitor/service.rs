//! Builds the monitor and security reports from the store's figures.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};

use super::types::{LatencyRow, MonitorReport, Point, RefusalView, SecurityReport, TopRow};
use crate::{
    credits::format_credits,
    store::{
        NamedCount, Rank, RefusalGroup, RefusalKind, Store, StoreError, TopEntry, stored_time,
    },
};

/// Rows in each "top" and security table.
const TOP: i64 = 10;

/// The span a report covers, and the buckets of its series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// 60 one-minute buckets.
    Hour,
    /// 24 one-hour buckets.
    Day,
    /// 7 one-day buckets.
    Week,
}

impl Window {
    /// `hour`, `day` or `week`; anything else is `None`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "hour" => Some(Self::Hour),
            "day" => Some(Self::Day),
            "week" => Some(Self::Week),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Week => "week",
        }
    }

    fn step(self) -> Duration {
        match self {
            Self::Hour => Duration::minutes(1),
            Self::Day => Duration::hours(1),
            Self::Week => Duration::days(1),
        }
    }

    fn buckets(self) -> i32 {
        match self {
            Self::Hour => 60,
            Self::Day => 24,
            Self::Week => 7,
        }
    }

    /// How much of a stored time names its bucket.
    fn prefix(self) -> usize {
        match self {
            Self::Hour => 16,
            Self::Day => 13,
            Self::Week => 10,
        }
    }

    /// The seconds from the start of the first bucket to `now`: the last
    /// bucket is still filling, so a week at 00:01 covers six days and a
    /// minute, not seven days.
    fn seconds_covered(self, now: DateTime<Utc>) -> i64 {
        let start = self.since(now).parse::<DateTime<Utc>>();
        let full = self.step().num_seconds() * i64::from(self.buckets());
        start
            .map_or(full, |start| (now - start).num_seconds())
            .max(1)
    }

    /// The start of the window's first bucket, so totals match the series.
    fn since(self, now: DateTime<Utc>) -> String {
        let first = stored_time(now - self.step() * (self.buckets() - 1));
        let prefix = self.prefix();
        format!(
            "{}{}",
            &first[..prefix],
            &"0000-00-00T00:00:00.000Z"[prefix..]
        )
    }

    /// Every bucket of the window, oldest first, with its count (zero when
    /// there were no calls).
    fn series(self, now: DateTime<Utc>, counts: &[NamedCount]) -> Vec<Point> {
        let counts: HashMap<&str, i64> =
            counts.iter().map(|c| (c.name.as_str(), c.count)).collect();
        (0..self.buckets())
            .rev()
            .map(|back| {
                let at = stored_time(now - self.step() * back);
                let key = &at[..self.prefix()];
                let label = match self {
                    Self::Hour => at[11..16].to_owned(),
                    Self::Day => format!("{}:00", &at[11..13]),
                    Self::Week => at[..10].to_owned(),
                };
                Point {
                    label,
                    count: counts.get(key).copied().unwrap_or(0),
                }
            })
            .collect()
    }
}

fn points(counts: Vec<NamedCount>) -> Vec<Point> {
    counts
        .into_iter()
        .map(|c| Point {
            label: c.name,
            count: c.count,
        })
        .collect()
}

fn top(entries: Vec<TopEntry>) -> Vec<TopRow> {
    entries
        .into_iter()
        .map(|e| TopRow {
            id: e.id,
            label: e.label,
            requests: e.requests,
            credits: format_credits(e.cost_micros),
        })
        .collect()
}

/// `part / whole` in percent with one decimal, exact (no floating point).
fn percent(part: i64, whole: i64) -> String {
    if whole <= 0 {
        return "0.0".to_owned();
    }
    let tenths = (part * 1000 + whole / 2) / whole;
    format!("{}.{}", tenths / 10, tenths % 10)
}

/// Whether a call's status counts as an error: 400 and above but 499, a
/// caller that stopped reading (the playground's Stop), which is its choice
/// and no failure of the key, the limits or the upstream.
fn is_error(status: u16) -> bool {
    status >= 400 && status != 499
}

/// The monitor over `window`, ending `now`.
pub async fn monitor(
    store: &Store,
    window: Window,
    now: DateTime<Utc>,
) -> Result<MonitorReport, StoreError> {
    let since = window.since(now);
    let by_bucket = store
        .calls_by_bucket(&since, window.prefix() as i64)
        .await?;
    let by_status = store.calls_by_status(&since).await?;
    let requests: i64 = by_status.iter().map(|s| s.count).sum();
    let errors: i64 = by_status
        .iter()
        .filter(|s| s.name.parse::<u16>().is_ok_and(is_error))
        .map(|s| s.count)
        .sum();
    let latency = store
        .latency_by_model(&since)
        .await?
        .into_iter()
        .map(|l| LatencyRow {
            model: l.model,
            calls: l.calls,
            p50_ms: l.p50_ms,
            p99_ms: l.p99_ms,
        })
        .collect();
    Ok(MonitorReport {
        window: window.name().to_owned(),
        since: since.clone(),
        requests,
        errors,
        error_rate_percent: percent(errors, requests),
        requests_per_minute: percent(requests * 60, window.seconds_covered(now) * 100),
        series: window.series(now, &by_bucket),
        by_status: points(by_status),
        latency,
        top_users_by_requests: top(store.top_users(&since, Rank::Requests, TOP).await?),
        top_users_by_credits: top(store.top_users(&since, Rank::Credits, TOP).await?),
        top_keys_by_requests: top(store.top_keys(&since, Rank::Requests, TOP).await?),
        top_keys_by_credits: top(store.top_keys(&since, Rank::Credits, TOP).await?),
        rejections: points(store.rejections_by_limit(&since).await?),
    })
}

fn refusal_views(groups: Vec<RefusalGroup>) -> Vec<RefusalView> {
    groups
        .into_iter()
        .map(|g| RefusalView {
            code: g.code,
            client_ip: g.client_ip.unwrap_or_default(),
            api_key: g.api_key.unwrap_or_default(),
            referrer: g.referrer.unwrap_or_default(),
            count: g.count,
            last_at: g.last_at,
        })
        .collect()
}

/// The security view over `window`, ending `now`.
pub async fn security(
    store: &Store,
    window: Window,
    now: DateTime<Utc>,
) -> Result<SecurityReport, StoreError> {
    let since = window.since(now);
    Ok(SecurityReport {
        window: window.name().to_owned(),
        since: since.clone(),
        failed_logins_by_ip: points(store.failed_logins(&since, false, TOP).await?),
        failed_logins_by_account: points(store.failed_logins(&since, true, TOP).await?),
        key_rule_refusals: refusal_views(
            store
                .refusal_groups(RefusalKind::KeyRule, &since, TOP)
                .await?,
        ),
        revoked_key_use: refusal_views(
            store
                .refusal_groups(RefusalKind::RevokedKey, &since, TOP)
                .await?,
        ),
        rate_limit_hits_by_ip: points(store.rate_limit_hits_by_ip(&since, TOP).await?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_are_exact_to_a_tenth() {
        assert_eq!(percent(1, 8), "12.5");
        assert_eq!(percent(2, 3), "66.7");
        assert_eq!(percent(0, 0), "0.0");
        assert_eq!(percent(5, 5), "100.0");
        // Calls a minute: 90 calls over 60 minutes.
        assert_eq!(percent(90, 60 * 100), "1.5");
    }

    #[test]
    fn refusals_and_failures_are_errors_and_a_caller_leaving_is_not() {
        for status in [400, 401, 402, 403, 404, 429, 500, 502, 503, 504] {
            assert!(is_error(status), "{status}");
        }
        for status in [200, 399, 499] {
            assert!(!is_error(status), "{status}");
        }
    }

    #[test]
    fn a_window_covers_the_time_since_its_first_bucket_began() {
        let now: DateTime<Utc> = "2026-11-23T00:01:00Z".parse().unwrap();
        assert_eq!(Window::Week.seconds_covered(now), 6 * 86_400 + 60);
        let now: DateTime<Utc> = "2026-11-23T10:05:30Z".parse().unwrap();
        assert_eq!(Window::Day.seconds_covered(now), 23 * 3600 + 5 * 60 + 30);
        assert_eq!(Window::Hour.seconds_covered(now), 59 * 60 + 30);
    }

    #[test]
    fn series_cover_every_bucket_oldest_first() {
        let now: DateTime<Utc> = "2026-11-23T10:05:30Z".parse().unwrap();
        let counts = [NamedCount {
            name: "2026-11-23T10:04".into(),
            count: 3,
        }];
        let s = Window::Hour.series(now, &counts);
        assert_eq!(s.len(), 60);
        assert_eq!(s[0].label, "09:06");
        assert_eq!((s[58].label.as_str(), s[58].count), ("10:04", 3));
        assert_eq!((s[59].label.as_str(), s[59].count), ("10:05", 0));
        let d = Window::Day.series(now, &[]);
        assert_eq!(
            (d[0].label.as_str(), d[23].label.as_str()),
            ("11:00", "10:00")
        );
        let w = Window::Week.series(now, &[]);
        assert_eq!(w[6].label, "2026-11-23");
        assert_eq!(Window::Hour.since(now), "2026-11-23T09:06:00.000Z");
        assert_eq!(Window::Day.since(now), "2026-11-22T11:00:00.000Z");
        assert_eq!(Window::Week.since(now), "2026-11-17T00:00:00.000Z");
        assert_eq!(Window::parse(" day "), Some(Window::Day));
        assert_eq!(Window::parse("month"), None);
    }
}
