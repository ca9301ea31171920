//! Reading usage records back: a user's days, models, keys and recent calls,
//! and the service's own figures for the admin monitor. Each read writes the
//! gateway's queued records first, so it includes the calls just made.

use super::{Store, StoreError, sum_of_credits};

/// Calls, tokens and credits on one UTC day (`YYYY-MM-DD`).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DayUsage {
    pub day: String,
    pub requests: i64,
    pub tokens: i64,
    pub cost_micros: i64,
}

/// Calls, tokens and credits grouped by a name (a model, or a key).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct GroupUsage {
    pub name: String,
    pub requests: i64,
    pub tokens: i64,
    pub cost_micros: i64,
}

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct CallRecord {
    pub created_at: String,
    pub key_name: Option<String>,
    pub model: String,
    pub status: i64,
    pub error_code: Option<String>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_micros: i64,
    pub latency_ms: i64,
}

/// One recorded call as the usage export lists it, with what identifies it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ExportedCall {
    pub id: i64,
    pub created_at: String,
    pub request_id: Option<String>,
    /// The key's name; `no key` or `deleted key` when there is none.
    pub key_name: String,
    /// The last four characters of the key's secret.
    pub key_last_four: Option<String>,
    pub model: String,
    pub stream: bool,
    pub status: i64,
    pub error_code: Option<String>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_micros: i64,
    pub latency_ms: i64,
}

/// What usage tables say for a call without a key row: made with no key, or
/// with a key since deleted.
const NO_KEY: &str = "CASE WHEN r.key_id IS NULL THEN 'no key' ELSE 'deleted key' END";

/// A key's label in usage tables: its name and the last four characters.
fn key_label() -> String {
    format!("COALESCE(k.name || ' (…' || k.last_four || ')', {NO_KEY})")
}

impl Store {
    /// The user's calls per day since `since` (a stored time), oldest first.
    pub async fn usage_by_day(
        &self,
        user_id: i64,
        since: &str,
    ) -> Result<Vec<DayUsage>, StoreError> {
        self.flush().await?;
        Ok(sqlx::query_as(&format!(
            "SELECT substr(created_at, 1, 10) AS day, COUNT(*) AS requests,
                    COALESCE(SUM(prompt_tokens + completion_tokens), 0) AS tokens,
                    {} AS cost_micros
             FROM usage_records WHERE user_id = ? AND created_at >= ?
             GROUP BY day ORDER BY day",
            sum_of_credits("cost_micros")
        ))
        .bind(user_id)
        .bind(since)
        .fetch_all(&self.reader)
        .await?)
    }

    /// The user's calls since `since` by model, most credits first.
    pub async fn usage_by_model(
        &self,
        user_id: i64,
        since: &str,
    ) -> Result<Vec<GroupUsage>, StoreError> {
        self.flush().await?;
        Ok(sqlx::query_as(&format!(
            "SELECT model AS name, COUNT(*) AS requests,
                    COALESCE(SUM(prompt_tokens + completion_tokens), 0) AS tokens,
                    {} AS cost_micros
             FROM usage_records WHERE user_id = ? AND created_at >= ?
             GROUP BY model ORDER BY cost_micros DESC, requests DESC",
            sum_of_credits("cost_micros")
        ))
        .bind(user_id)
        .bind(since)
        .fetch_all(&self.reader)
        .await?)
    }

    /// The user's calls since `since` by key, most requests first.
    pub async fn usage_by_key(
        &self,
        user_id: i64,
        since: &str,
    ) -> Result<Vec<GroupUsage>, StoreError> {
        self.flush().await?;
        Ok(sqlx::query_as(&format!(
            "SELECT {} AS name, COUNT(*) AS requests,
                    COALESCE(SUM(r.prompt_tokens + r.completion_tokens), 0) AS tokens,
                    {} AS cost_micros
             FROM usage_records r LEFT JOIN api_keys k ON k.id = r.key_id
             WHERE r.user_id = ? AND r.created_at >= ?
             GROUP BY r.key_id ORDER BY requests DESC",
            key_label(),
            sum_of_credits("r.cost_micros")
        ))
        .bind(user_id)
        .bind(since)
        .fetch_all(&self.reader)
        .await?)
    }

    /// What the user's call `request_id`, made within the hour, was charged:
    /// `(prompt tokens, completion tokens, micro-credits)`.
    pub async fn charge_of_call(
        &self,
        user_id: i64,
        request_id: &str,
    ) -> Result<Option<(i64, i64, i64)>, StoreError> {
        self.flush().await?;
        Ok(sqlx::query_as(
            "SELECT prompt_tokens, completion_tokens, cost_micros FROM usage_records
             WHERE user_id = ? AND created_at >= strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 hour')
               AND request_id = ?
             ORDER BY id DESC LIMIT 1",
        )
        .bind(user_id)
        .bind(request_id)
        .fetch_optional(&self.reader)
        .await?)
    }

    /// The user's most recent calls, newest first: by time, which the index
    /// on user and time serves (by id, every call of the user was sorted).
    pub async fn recent_calls(
        &self,
        user_id: i64,
        limit: i64,
    ) -> Result<Vec<CallRecord>, StoreError> {
        self.flush().await?;
        Ok(sqlx::query_as(&format!(
            "SELECT r.created_at, {} AS key_name, r.model, r.status, r.error_code,
                    r.prompt_tokens, r.completion_tokens, r.cost_micros, r.latency_ms
             FROM usage_records r LEFT JOIN api_keys k ON k.id = r.key_id
             WHERE r.user_id = ? ORDER BY r.created_at DESC, r.id DESC LIMIT ?",
            key_label()
        ))
        .bind(user_id)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }

    /// One page of the user's calls from `from` (a stored time, included)
    /// until `until` (excluded), oldest first, starting after the call
    /// `after` (its time and id; `None` for the first page). Pages are read
    /// on the index on user and time, so an export of any length neither
    /// holds a connection nor the whole list at once.
    pub async fn calls_between(
        &self,
        user_id: i64,
        (from, until): (&str, &str),
        after: Option<(&str, i64)>,
        limit: i64,
    ) -> Result<Vec<ExportedCall>, StoreError> {
        if after.is_none() {
            self.flush().await?;
        }
        let (after_time, after_id) = after.unwrap_or(("", 0));
        Ok(sqlx::query_as(&format!(
            "SELECT r.id, r.created_at, r.request_id,
                    COALESCE(k.name, {NO_KEY}) AS key_name, k.last_four AS key_last_four, r.model,
                    r.stream, r.status, r.error_code, r.prompt_tokens, r.completion_tokens,
                    r.cost_micros, r.latency_ms
             FROM usage_records r LEFT JOIN api_keys k ON k.id = r.key_id
             WHERE r.user_id = ? AND r.created_at >= ? AND r.created_at < ?
               AND (r.created_at, r.id) > (?, ?)
             ORDER BY r.created_at, r.id LIMIT ?"
        ))
        .bind(user_id)
        .bind(from)
        .bind(until)
        .bind(after_time)
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{Rank, Store, testing::user_on_default_plan};

    /// Charges past i64's range in total are shown capped at its largest
    /// value; SQLite's SUM failed the page. Within it, sums stay exact.
    #[tokio::test]
    async fn credit_sums_past_the_largest_integer_are_capped_not_failed() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let big = user_on_default_plan(&store, "big@example.com").await;
        let small = user_on_default_plan(&store, "small@example.com").await;
        let record = |user: i64, cost: i64| {
            sqlx::query(
                "INSERT INTO usage_records (user_id, model, stream, status, prompt_tokens,
                        completion_tokens, cost_micros, latency_ms, created_at)
                 VALUES (?, 'demo', 0, 200, 1, 1, ?, 1, '2026-12-07T10:00:00.000Z')",
            )
            .bind(user)
            .bind(cost)
            .execute(store.pool())
        };
        // Two charges of 5 * 10^18 micro-credits pass i64::MAX together.
        for _ in 0..2 {
            record(big, 5_000_000_000_000_000_000).await.unwrap();
        }
        record(small, 1_999_999).await.unwrap();
        record(small, 3_000_001).await.unwrap();
        let since = "2026-12-01T00:00:00.000Z";

        let days = store.usage_by_day(big, since).await.unwrap();
        assert_eq!(days[0].cost_micros, i64::MAX);
        let models = store.usage_by_model(big, since).await.unwrap();
        assert_eq!(models[0].cost_micros, i64::MAX);
        let keys = store.usage_by_key(big, since).await.unwrap();
        assert_eq!(keys[0].cost_micros, i64::MAX);
        assert_eq!(
            store.usage_by_day(small, since).await.unwrap()[0].cost_micros,
            5_000_000
        );
        let top = store.top_users(since, Rank::Credits, 10).await.unwrap();
        assert_eq!(
            top.iter().map(|t| t.cost_micros).collect::<Vec<_>>(),
            [i64::MAX, 5_000_000]
        );
    }
}
