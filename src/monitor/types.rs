//! The monitor and security reports as the pages and the admin API receive them.

use serde::{Deserialize, Serialize};

/// A count under a label: a time, a status, a limit, an address.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct Point {
    pub label: String,
    pub count: i64,
}

/// Upstream latency of a model's successful calls (until the upstream
/// answered; its first chunk, for streams), in milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct LatencyRow {
    pub model: String,
    pub calls: i64,
    pub p50_ms: i64,
    pub p99_ms: i64,
}

/// A user (by email) or key (by name and display) with its calls and credits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct TopRow {
    pub id: i64,
    pub label: String,
    pub requests: i64,
    /// Exact credits, e.g. `0.0042`.
    pub credits: String,
}

/// The monitor over the last hour (per-minute series) or day (per-hour series).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
pub struct MonitorReport {
    /// `hour`, `day` or `week`.
    pub window: String,
    /// The window's start (UTC, RFC 3339).
    pub since: String,
    /// Model API calls in the window, admitted and refused.
    pub requests: i64,
    /// Calls answered with a status of 400 or more, but not those whose
    /// caller left (499).
    pub errors: i64,
    /// `errors / requests` in percent, one decimal, e.g. `12.5`.
    pub error_rate_percent: String,
    /// Average calls a minute over the window, one decimal.
    pub requests_per_minute: String,
    /// Calls per minute (hour window), per hour (day window) or per day
    /// (week window), oldest first, labelled in UTC, with empty buckets as
    /// zero.
    pub series: Vec<Point>,
    /// Calls by HTTP status, most first.
    pub by_status: Vec<Point>,
    pub latency: Vec<LatencyRow>,
    pub top_users_by_requests: Vec<TopRow>,
    pub top_users_by_credits: Vec<TopRow>,
    pub top_keys_by_requests: Vec<TopRow>,
    pub top_keys_by_credits: Vec<TopRow>,
    /// Rate-limit refusals by the limit's code, most first.
    pub rejections: Vec<Point>,
}

/// Refusals of one kind from one address, key and referrer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusalView {
    pub code: String,
    pub client_ip: String,
    /// As displayed (prefix…last four), or empty.
    pub api_key: String,
    pub referrer: String,
    pub count: i64,
    pub last_at: String,
}

/// The security view over a window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityReport {
    pub window: String,
    pub since: String,
    pub failed_logins_by_ip: Vec<Point>,
    /// By `user:<id>` for existing accounts, `email:<address>` otherwise.
    pub failed_logins_by_account: Vec<Point>,
    /// Calls a key's IP allowlist or referrer rule refused.
    pub key_rule_refusals: Vec<RefusalView>,
    /// Calls with a revoked key.
    pub revoked_key_use: Vec<RefusalView>,
    pub rate_limit_hits_by_ip: Vec<Point>,
}

/// The windows the reports cover.
pub const WINDOWS: [&str; 3] = ["hour", "day", "week"];
