//! What the gateway reads and writes directly: the state it loads into memory
//! (a balance, a window's count), the plan's monthly grant, and the usage count
//! of capped keys, which must be exact at once. Everything else it writes goes
//! through the write-behind queue in [`super::pending`].

use super::{Store, StoreError, credits};

/// A fixed window kept in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    Hour,
    Day,
}

impl Window {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Window::Hour => "hour",
            Window::Day => "day",
        }
    }
}

/// A user's balance as the database has it, for loading into memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredAccount {
    pub balance_micros: i64,
    /// Whether this month's plan grant was given.
    pub granted_this_month: bool,
}

impl Store {
    /// A window's count as last written (0 when it has none).
    pub async fn window_count(
        &self,
        subject: &str,
        window: Window,
        bucket: &str,
    ) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT count FROM limit_windows WHERE subject = ? AND window = ? AND window_start = ?",
        )
        .bind(subject)
        .bind(window.as_str())
        .bind(bucket)
        .fetch_optional(&self.reader)
        .await?
        .unwrap_or(0))
    }

    /// A user's balance and whether `month`'s grant was given; `None` when there
    /// is no such account (or it was deleted).
    pub async fn stored_account(
        &self,
        user_id: i64,
        month: &str,
    ) -> Result<Option<StoredAccount>, StoreError> {
        let row: Option<(i64, bool)> = sqlx::query_as(
            "SELECT balance_micros,
                    EXISTS (SELECT 1 FROM monthly_grants WHERE user_id = u.id AND month = ?)
             FROM users u WHERE id = ? AND status != 'deleted'",
        )
        .bind(month)
        .bind(user_id)
        .fetch_optional(&self.reader)
        .await?;
        Ok(
            row.map(|(balance_micros, granted_this_month)| StoredAccount {
                balance_micros,
                granted_this_month,
            }),
        )
    }

    /// Gives the plan's grant for `month` unless it was given; returns the
    /// amount given now (0 when it was given before or the plan has none).
    pub async fn give_monthly_grant(&self, user_id: i64, month: &str) -> Result<i64, StoreError> {
        let mut tx = self.writer.begin().await?;
        let given = credits::monthly_grant(&mut tx, user_id, month).await?;
        tx.commit().await?;
        Ok(given)
    }

    /// Counts one use of a capped key unless it is used up; `false` when it is.
    /// The read cache is dropped, as after every change to a key: listing
    /// models and the management API refuse a key the cache says is used up.
    pub async fn take_capped_use(&self, key_id: i64) -> Result<bool, StoreError> {
        let taken = sqlx::query(
            "UPDATE api_keys SET usage_count = usage_count + 1
             WHERE id = ? AND usage_cap IS NOT NULL AND usage_count < usage_cap",
        )
        .bind(key_id)
        .execute(&self.writer)
        .await?
        .rows_affected()
            == 1;
        self.cache.changed();
        Ok(taken)
    }

    /// Releases the credit holds a killed process left open (its calls can
    /// never settle now): a `refund` row and the balance for each, and a
    /// capped key's use given back, all in one transaction. Run at start-up,
    /// before any call. Returns how many holds there were.
    pub async fn release_holds_left_open(&self) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin().await?;
        let left: Vec<(i64, i64, Option<i64>)> =
            sqlx::query_as("SELECT user_id, amount_micros, capped_key_id FROM open_holds")
                .fetch_all(&mut *tx)
                .await?;
        for (user_id, amount, capped_key) in &left {
            if *amount > 0 {
                sqlx::query(
                    "INSERT INTO credit_ledger (user_id, kind, amount_micros, note)
                     VALUES (?, 'refund', ?, 'hold released: the server stopped without settling the call')",
                )
                .bind(user_id)
                .bind(amount)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE users SET balance_micros = balance_micros + ? WHERE id = ?")
                    .bind(amount)
                    .bind(user_id)
                    .execute(&mut *tx)
                    .await?;
            }
            if let Some(key_id) = capped_key {
                sqlx::query(
                    "UPDATE api_keys SET usage_count = usage_count - 1 WHERE id = ? AND usage_count > 0",
                )
                .bind(key_id)
                .execute(&mut *tx)
                .await?;
            }
        }
        sqlx::query("DELETE FROM open_holds")
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(left.len() as u64)
    }

    /// Gives back a use taken by [`Store::take_capped_use`] for a call the
    /// upstream never answered: refused by another limit, failed, or
    /// abandoned by its client first.
    /// A key cached as used up meanwhile (while the use was taken) must not
    /// stay refused there, so the read cache is dropped.
    pub async fn return_capped_use(&self, key_id: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE api_keys SET usage_count = usage_count - 1 WHERE id = ? AND usage_count > 0",
        )
        .bind(key_id)
        .execute(&self.writer)
        .await?;
        self.cache.changed();
        Ok(())
    }
}
