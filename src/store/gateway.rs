//! What the gateway writes per call: durable limit windows (hour and day), the
//! key's usage count, the credit hold, and after the call the settlement and
//! its usage record. Admission is one transaction, so a refusal by any limit
//! (including the in-memory ones checked just before commit) consumes nothing.

use super::{Store, StoreError, credits};

/// A fixed window kept in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Hour,
    Day,
}

impl Window {
    fn as_str(self) -> &'static str {
        match self {
            Window::Hour => "hour",
            Window::Day => "day",
        }
    }
}

/// One window's subject, bucket (e.g. `2026-11-22T13`) and limit.
#[derive(Debug, Clone)]
pub struct WindowCheck {
    pub window: Window,
    pub bucket: String,
    pub limit: i64,
}

/// Everything admission checks and takes, in one transaction.
#[derive(Debug, Clone)]
pub struct Admission<'a> {
    pub user_id: i64,
    pub key_id: i64,
    pub windows: Vec<WindowCheck>,
    /// `YYYY-MM`, for the plan's monthly grant.
    pub month: &'a str,
    pub reserve_micros: i64,
    pub request_id: Option<&'a str>,
}

/// Why admission was refused.
#[derive(Debug)]
pub enum Refused<E> {
    Window {
        window: Window,
        limit: i64,
    },
    UsageCap,
    Credits {
        balance_micros: i64,
    },
    /// The last, in-memory check refused.
    Check(E),
}

/// What admission used, for the rate-limit headers.
#[derive(Debug, Clone, Copy)]
pub struct Admitted {
    /// (window, count after this request, limit)
    pub hour: Option<(i64, i64)>,
    pub day: Option<(i64, i64)>,
    pub balance_micros: i64,
}

/// The outcome of a call, settled against its hold.
#[derive(Debug, Clone)]
pub struct Settlement<'a> {
    pub user_id: i64,
    pub key_id: Option<i64>,
    pub request_id: Option<&'a str>,
    pub model: &'a str,
    pub stream: bool,
    pub status: u16,
    pub error_code: Option<&'a str>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub reserved_micros: i64,
    /// Capped at `reserved_micros` by the caller.
    pub cost_micros: i64,
    pub latency_ms: i64,
    pub client_ip: Option<String>,
}

impl Store {
    /// Counts one request against a client IP's day window; `None` when it is full.
    pub async fn count_ip_request(
        &self,
        ip: &str,
        bucket: &str,
        limit: i64,
    ) -> Result<Option<i64>, StoreError> {
        bump(
            &self.writer,
            &format!("ip:{ip}"),
            Window::Day,
            bucket,
            limit,
        )
        .await
    }

    /// Takes one request from each window and the key's usage cap, gives the
    /// monthly grant when due, holds `reserve_micros`, then runs `last_check`
    /// (the in-memory windows) before committing. Any refusal rolls all back.
    pub async fn admit<E>(
        &self,
        admission: &Admission<'_>,
        last_check: impl FnOnce() -> Result<(), E>,
    ) -> Result<Result<Admitted, Refused<E>>, StoreError> {
        let mut tx = self.writer.begin().await?;
        let subject = format!("user:{}", admission.user_id);
        let mut admitted = Admitted {
            hour: None,
            day: None,
            balance_micros: 0,
        };
        for check in &admission.windows {
            let Some(count) =
                bump(&mut *tx, &subject, check.window, &check.bucket, check.limit).await?
            else {
                return Ok(Err(Refused::Window {
                    window: check.window,
                    limit: check.limit,
                }));
            };
            match check.window {
                Window::Hour => admitted.hour = Some((count, check.limit)),
                Window::Day => admitted.day = Some((count, check.limit)),
            }
        }
        let used: Option<i64> = sqlx::query_scalar(
            "UPDATE api_keys SET usage_count = usage_count + 1
             WHERE id = ? AND (usage_cap IS NULL OR usage_count < usage_cap)
             RETURNING usage_count",
        )
        .bind(admission.key_id)
        .fetch_optional(&mut *tx)
        .await?;
        if used.is_none() {
            return Ok(Err(Refused::UsageCap));
        }
        credits::monthly_grant(&mut tx, admission.user_id, admission.month).await?;
        match credits::take(
            &mut tx,
            admission.user_id,
            "reserve",
            admission.reserve_micros,
            admission.request_id,
            "hold for the worst case",
        )
        .await?
        {
            Ok(after) => admitted.balance_micros = after,
            Err(balance_micros) => return Ok(Err(Refused::Credits { balance_micros })),
        }
        if let Err(refusal) = last_check() {
            return Ok(Err(Refused::Check(refusal)));
        }
        tx.commit().await?;
        Ok(Ok(admitted))
    }

    /// Releases the hold, charges what the call cost and records its usage, in
    /// one transaction. Returns the balance after.
    pub async fn settle(&self, s: &Settlement<'_>) -> Result<i64, StoreError> {
        let cost = s.cost_micros.clamp(0, s.reserved_micros);
        let note = format!(
            "{}: {} prompt + {} completion tokens",
            s.model, s.prompt_tokens, s.completion_tokens
        );
        let mut rows = Vec::with_capacity(2);
        if s.reserved_micros > 0 {
            rows.push(("refund", s.reserved_micros, "hold released"));
        }
        if cost > 0 {
            rows.push(("settle", -cost, note.as_str()));
        }
        let mut tx = self.writer.begin().await?;
        let balance = if rows.is_empty() {
            None
        } else {
            Some(credits::entries(&mut tx, s.user_id, &rows, s.request_id).await?)
        };
        sqlx::query(
            "INSERT INTO usage_records (request_id, user_id, key_id, model, stream, status, error_code,
                 prompt_tokens, completion_tokens, cost_micros, latency_ms, client_ip)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(s.request_id)
        .bind(s.user_id)
        .bind(s.key_id)
        .bind(s.model)
        .bind(s.stream)
        .bind(i64::from(s.status))
        .bind(s.error_code)
        .bind(s.prompt_tokens)
        .bind(s.completion_tokens)
        .bind(cost)
        .bind(s.latency_ms)
        .bind(s.client_ip.as_deref())
        .execute(&mut *tx)
        .await?;
        let balance = match balance {
            Some(balance) => balance,
            None => {
                sqlx::query_scalar("SELECT balance_micros FROM users WHERE id = ?")
                    .bind(s.user_id)
                    .fetch_one(&mut *tx)
                    .await?
            }
        };
        tx.commit().await?;
        Ok(balance)
    }
}

/// Adds one to a window unless it is full; the count after, or `None`.
async fn bump<'e>(
    executor: impl sqlx::SqliteExecutor<'e>,
    subject: &str,
    window: Window,
    bucket: &str,
    limit: i64,
) -> Result<Option<i64>, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO limit_windows (subject, window, window_start, count) VALUES (?1, ?2, ?3, 1)
         ON CONFLICT (subject, window, window_start) DO UPDATE SET count = count + 1 WHERE count < ?4
         RETURNING count",
    )
    .bind(subject)
    .bind(window.as_str())
    .bind(bucket)
    .bind(limit)
    .fetch_optional(executor)
    .await?
    .filter(|count: &i64| *count <= limit))
}
