//! The service's own figures for the admin monitor and security pages: calls
//! over time and by status, latency by model, the busiest users and keys
//! (from `usage_records`), refusals (from `gateway_refusals`) and failed
//! logins (from `audit_events`). Each read writes the queued records first.

use sqlx::FromRow;

use super::{Store, StoreError, sum_of_credits};

/// A count under a name: a time bucket, a status, a limit, an address.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct NamedCount {
    pub name: String,
    pub count: i64,
}

/// Upstream latency of a model's successful calls, in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ModelLatency {
    pub model: String,
    pub calls: i64,
    pub p50_ms: i64,
    pub p99_ms: i64,
}

/// A user or key with its calls and credits.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct TopEntry {
    pub id: i64,
    pub label: String,
    pub requests: i64,
    pub cost_micros: i64,
}

/// Refusals of one kind from one address, key and referrer.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct RefusalGroup {
    pub code: String,
    pub client_ip: Option<String>,
    pub api_key: Option<String>,
    pub referrer: Option<String>,
    pub count: i64,
    pub last_at: String,
}

/// What to rank the busiest users and keys by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rank {
    Requests,
    Credits,
}

impl Rank {
    fn order(self) -> &'static str {
        match self {
            Self::Requests => "requests DESC, cost_micros DESC, id",
            Self::Credits => "cost_micros DESC, requests DESC, id",
        }
    }
}

/// Which refusals a security table lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalKind {
    /// A key's IP allowlist or referrer rule refused the call.
    KeyRule,
    /// A revoked key was presented.
    RevokedKey,
}

impl RefusalKind {
    fn condition(self) -> &'static str {
        match self {
            Self::KeyRule => "code IN ('ip_not_allowed', 'referrer_not_allowed')",
            Self::RevokedKey => "code = 'revoked_api_key'",
        }
    }
}

impl Store {
    /// Calls (admitted and refused) per bucket since `since`; a bucket is the
    /// first `prefix` characters of the time: 16 for minutes, 13 for hours.
    pub async fn calls_by_bucket(
        &self,
        since: &str,
        prefix: i64,
    ) -> Result<Vec<NamedCount>, StoreError> {
        self.flush().await?;
        Ok(sqlx::query_as(
            "SELECT substr(created_at, 1, ?1) AS name, SUM(n) AS count FROM (
                SELECT created_at, 1 AS n FROM usage_records WHERE created_at >= ?2
                UNION ALL SELECT created_at, count FROM gateway_refusals WHERE created_at >= ?2)
             GROUP BY name ORDER BY name",
        )
        .bind(prefix)
        .bind(since)
        .fetch_all(&self.reader)
        .await?)
    }

    /// Calls by HTTP status since `since`, admitted and refused, most first.
    pub async fn calls_by_status(&self, since: &str) -> Result<Vec<NamedCount>, StoreError> {
        self.flush().await?;
        Ok(sqlx::query_as(
            "SELECT CAST(status AS TEXT) AS name, SUM(n) AS count FROM (
                SELECT status, 1 AS n FROM usage_records WHERE created_at >= ?1
                UNION ALL SELECT status, count FROM gateway_refusals WHERE created_at >= ?1)
             GROUP BY status ORDER BY count DESC, status",
        )
        .bind(since)
        .fetch_all(&self.reader)
        .await?)
    }

    /// p50 and p99 upstream latency (until the upstream answered: its first
    /// chunk, for streams) of each model's successful calls since `since`
    /// (nearest rank).
    pub async fn latency_by_model(&self, since: &str) -> Result<Vec<ModelLatency>, StoreError> {
        self.flush().await?;
        Ok(sqlx::query_as(
            "SELECT model, total AS calls,
                    MAX(CASE WHEN n = (total * 50 + 99) / 100 THEN ms END) AS p50_ms,
                    MAX(CASE WHEN n = (total * 99 + 99) / 100 THEN ms END) AS p99_ms
             FROM (SELECT model, upstream_ms AS ms,
                          ROW_NUMBER() OVER (PARTITION BY model ORDER BY upstream_ms) AS n,
                          COUNT(*) OVER (PARTITION BY model) AS total
                   FROM usage_records
                   WHERE created_at >= ? AND status = 200 AND upstream_ms IS NOT NULL)
             GROUP BY model ORDER BY model",
        )
        .bind(since)
        .fetch_all(&self.reader)
        .await?)
    }

    /// The users with the most calls or credits since `since`. The `+` keeps
    /// SQLite from grouping along the user index, which read every call ever
    /// made (0.2 s at two million) instead of the window's by the time index.
    pub async fn top_users(
        &self,
        since: &str,
        rank: Rank,
        limit: i64,
    ) -> Result<Vec<TopEntry>, StoreError> {
        self.flush().await?;
        Ok(sqlx::query_as(&format!(
            "SELECT r.user_id AS id, u.email AS label, COUNT(*) AS requests,
                    {} AS cost_micros
             FROM usage_records r JOIN users u ON u.id = r.user_id
             WHERE r.created_at >= ? GROUP BY +r.user_id ORDER BY {} LIMIT ?",
            sum_of_credits("r.cost_micros"),
            rank.order()
        ))
        .bind(since)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }

    /// The keys with the most calls or credits since `since`.
    pub async fn top_keys(
        &self,
        since: &str,
        rank: Rank,
        limit: i64,
    ) -> Result<Vec<TopEntry>, StoreError> {
        self.flush().await?;
        Ok(sqlx::query_as(&format!(
            "SELECT r.key_id AS id,
                    k.name || ' (' || k.display_prefix || '…' || k.last_four || ')' AS label,
                    COUNT(*) AS requests, {} AS cost_micros
             FROM usage_records r JOIN api_keys k ON k.id = r.key_id
             WHERE r.created_at >= ? GROUP BY r.key_id ORDER BY {} LIMIT ?",
            sum_of_credits("r.cost_micros"),
            rank.order()
        ))
        .bind(since)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }

    /// Rate-limit refusals by client address, most first.
    pub async fn rate_limit_hits_by_ip(
        &self,
        since: &str,
        limit: i64,
    ) -> Result<Vec<NamedCount>, StoreError> {
        self.flush().await?;
        Ok(sqlx::query_as(
            "SELECT COALESCE(NULLIF(client_ip, ''), 'unknown') AS name, SUM(count) AS count
             FROM gateway_refusals WHERE created_at >= ? AND status = 429
             GROUP BY name ORDER BY count DESC, name LIMIT ?",
        )
        .bind(since)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }

    /// Rate-limit refusals by the limit that was hit, most first.
    pub async fn rejections_by_limit(&self, since: &str) -> Result<Vec<NamedCount>, StoreError> {
        self.flush().await?;
        Ok(sqlx::query_as(
            "SELECT code AS name, SUM(count) AS count FROM gateway_refusals
             WHERE created_at >= ? AND status = 429 GROUP BY code ORDER BY count DESC, code",
        )
        .bind(since)
        .fetch_all(&self.reader)
        .await?)
    }

    /// Refusals of one kind since `since`, grouped by kind, address, key and
    /// referrer, most first.
    pub async fn refusal_groups(
        &self,
        kind: RefusalKind,
        since: &str,
        limit: i64,
    ) -> Result<Vec<RefusalGroup>, StoreError> {
        self.flush().await?;
        Ok(sqlx::query_as(&format!(
            "SELECT code, NULLIF(client_ip, '') AS client_ip, NULLIF(api_key, '') AS api_key,
                    NULLIF(referrer, '') AS referrer, SUM(count) AS count, MAX(created_at) AS last_at
             FROM gateway_refusals WHERE created_at >= ? AND {}
             GROUP BY 1, 2, 3, 4 ORDER BY count DESC, last_at DESC LIMIT ?",
            kind.condition()
        ))
        .bind(since)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }

    /// Failed sign-ins since `since`, by address (`by_account` false; with
    /// wrong reset-link tokens) or by the account or email tried, most first.
    pub async fn failed_logins(
        &self,
        since: &str,
        by_account: bool,
        limit: i64,
    ) -> Result<Vec<NamedCount>, StoreError> {
        // By address, wrong reset-link tokens count too; they name no account.
        let (column, actions) = if by_account {
            ("target", "'login.failure'")
        } else {
            ("client_ip", "'login.failure', 'password.reset_failure'")
        };
        self.flush().await?;
        Ok(sqlx::query_as(&format!(
            "SELECT COALESCE({column}, 'unknown') AS name, COUNT(*) AS count FROM audit_events
             WHERE action IN ({actions}) AND at >= ? GROUP BY name ORDER BY count DESC, name LIMIT ?"
        ))
        .bind(since)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }

    /// Deletes refused-call records older than `kept`.
    pub async fn forget_old_refusals(&self, kept: chrono::Duration) -> Result<u64, StoreError> {
        let before = super::stored_time(chrono::Utc::now() - kept);
        Ok(
            sqlx::query("DELETE FROM gateway_refusals WHERE created_at < ?")
                .bind(before)
                .execute(&self.writer)
                .await?
                .rows_affected(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::RefusalRow;

    fn refusal(status: u16, code: &str, ip: &str, at: chrono::DateTime<chrono::Utc>) -> RefusalRow {
        RefusalRow {
            status,
            code: code.to_owned(),
            client_ip: Some(ip.to_owned()),
            api_key: Some("tg_live_abcd…wxyz".to_owned()),
            referrer: None,
            created_at: super::super::stored_time(at),
        }
    }

    /// Refusals alike within a minute are one row with their count, whether
    /// they came in one batch or several; the pages count every one.
    #[tokio::test]
    async fn refusals_alike_within_a_minute_are_one_row_with_their_count() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let at: chrono::DateTime<chrono::Utc> = "2026-12-07T06:01:10Z".parse().unwrap();
        for seconds in [0, 20] {
            store.queue(|batch| {
                for _ in 0..50 {
                    let later = at + chrono::Duration::seconds(seconds);
                    batch.refusal(refusal(429, "requests_per_minute", "10.0.0.1", later));
                }
            });
            store.flush().await.unwrap();
        }
        store.queue(|batch| {
            let next_minute = at + chrono::Duration::seconds(60);
            batch.refusal(refusal(429, "requests_per_minute", "10.0.0.1", next_minute));
            batch.refusal(refusal(429, "requests_per_minute", "10.0.0.2", at));
            batch.refusal(refusal(429, "requests_per_day", "10.0.0.1", at));
        });
        store.flush().await.unwrap();
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM gateway_refusals")
            .fetch_one(&store.reader)
            .await
            .unwrap();
        assert_eq!(
            rows, 4,
            "101 refusals, four kinds of minute, address and limit"
        );
        let last: String =
            sqlx::query_scalar("SELECT created_at FROM gateway_refusals WHERE count = 100")
                .fetch_one(&store.reader)
                .await
                .unwrap();
        assert_eq!(last, "2026-12-07T06:01:30.000Z", "the last one's time");

        let since = super::super::stored_time(at - chrono::Duration::hours(1));
        let by_ip = store.rate_limit_hits_by_ip(&since, 10).await.unwrap();
        let by_ip: Vec<_> = by_ip.iter().map(|c| (c.name.as_str(), c.count)).collect();
        assert_eq!(by_ip, [("10.0.0.1", 102), ("10.0.0.2", 1)]);
        let by_limit = store.rejections_by_limit(&since).await.unwrap();
        assert_eq!(
            (by_limit[0].name.as_str(), by_limit[0].count),
            ("requests_per_minute", 102)
        );
        let by_minute = store.calls_by_bucket(&since, 16).await.unwrap();
        let by_minute: Vec<_> = by_minute
            .iter()
            .map(|c| (c.name.as_str(), c.count))
            .collect();
        assert_eq!(
            by_minute,
            [("2026-12-07T06:01", 102), ("2026-12-07T06:02", 1)]
        );
        let by_status = store.calls_by_status(&since).await.unwrap();
        assert_eq!(
            (by_status[0].name.as_str(), by_status[0].count),
            ("429", 103)
        );
    }

    #[tokio::test]
    async fn refusals_are_counted_by_kind_and_forgotten_after_their_time() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let now = chrono::Utc::now();
        let old = now - chrono::Duration::days(40);
        store.queue(|batch| {
            batch.refusal(refusal(429, "requests_per_minute", "10.0.0.1", now));
            batch.refusal(refusal(429, "requests_per_day", "10.0.0.1", now));
            batch.refusal(refusal(429, "requests_per_minute", "10.0.0.2", now));
            batch.refusal(refusal(401, "revoked_api_key", "10.0.0.3", now));
            batch.refusal(refusal(403, "ip_not_allowed", "10.0.0.4", old));
        });
        let since = super::super::stored_time(now - chrono::Duration::hours(1));
        let by_limit = store.rejections_by_limit(&since).await.unwrap();
        assert_eq!(
            by_limit,
            [
                NamedCount {
                    name: "requests_per_minute".into(),
                    count: 2
                },
                NamedCount {
                    name: "requests_per_day".into(),
                    count: 1
                },
            ]
        );
        let by_ip = store.rate_limit_hits_by_ip(&since, 10).await.unwrap();
        assert_eq!((by_ip[0].name.as_str(), by_ip[0].count), ("10.0.0.1", 2));
        let revoked = store
            .refusal_groups(RefusalKind::RevokedKey, &since, 10)
            .await
            .unwrap();
        assert_eq!(revoked.len(), 1);
        assert_eq!(revoked[0].api_key.as_deref(), Some("tg_live_abcd…wxyz"));
        let long_ago = super::super::stored_time(old - chrono::Duration::days(1));
        let rules = store
            .refusal_groups(RefusalKind::KeyRule, &long_ago, 10)
            .await
            .unwrap();
        assert_eq!(rules.len(), 1, "the old one is still there");

        assert_eq!(
            store
                .forget_old_refusals(chrono::Duration::days(30))
                .await
                .unwrap(),
            1
        );
        let rules = store
            .refusal_groups(RefusalKind::KeyRule, &long_ago, 10)
            .await
            .unwrap();
        assert!(rules.is_empty());
        assert_eq!(
            store.calls_by_status(&long_ago).await.unwrap().len(),
            2,
            "401 and 429"
        );
    }
}
