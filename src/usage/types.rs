//! The usage report as the `/usage` page receives it.

use serde::{Deserialize, Serialize};

/// One UTC day of the chart window.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayPoint {
    /// `YYYY-MM-DD`
    pub day: String,
    pub requests: i64,
    pub tokens: i64,
    pub cost_micros: i64,
}

/// Calls grouped by a model or a key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupRow {
    pub name: String,
    pub requests: i64,
    pub tokens: i64,
    /// Exact, e.g. `0.0042`.
    pub credits: String,
}

/// One of the most recent calls.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecentCall {
    pub at: String,
    pub key: String,
    pub model: String,
    pub status: i64,
    pub error_code: Option<String>,
    pub tokens: i64,
    pub credits: String,
    pub latency_ms: i64,
}

/// A plan window and how much of it is used now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowUse {
    pub label: String,
    pub used: i64,
    pub limit: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageReport {
    pub plan: String,
    pub balance: String,
    pub windows: Vec<WindowUse>,
    /// The last 30 days, oldest first, days without calls included.
    pub days: Vec<DayPoint>,
    pub by_model: Vec<GroupRow>,
    pub by_key: Vec<GroupRow>,
    pub recent: Vec<RecentCall>,
}

impl UsageReport {
    pub fn total_requests(&self) -> i64 {
        self.days.iter().map(|d| d.requests).sum()
    }

    pub fn total_tokens(&self) -> i64 {
        self.days.iter().map(|d| d.tokens).sum()
    }
}
