//! What the gateway reads and writes directly: the state it loads into memory
//! (a balance, a window's count), the plan's monthly grant, and the usage count
//! of capped keys, which must be exact at once. Everything else it writes goes
//! through the write-behind queue in [`super::pending`].

use sqlx::SqliteConnection;

use super::{CappedUseEnd, Store, StoreError, credits};

/// A fixed window kept in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Window {
    Hour,
    Day,
}

impl Window {
    pub fn as_str(self) -> &'static str {
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
    /// A window's count as last written (0 when it has none), for loading it
    /// into memory (`Accounts::load_window`): a queued count may be newer.
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

    /// Deletes the windows whose hour or day began before `bucket` (a day's
    /// name, such as `2026-12-04`): they count nothing any more, and one is
    /// written for every address that calls each day.
    pub async fn forget_past_windows(&self, bucket: &str) -> Result<u64, StoreError> {
        Ok(
            sqlx::query("DELETE FROM limit_windows WHERE window_start < ?")
                .bind(bucket)
                .execute(&self.writer)
                .await?
                .rows_affected(),
        )
    }

    /// The amount of the user's correction written under idempotency `key`,
    /// if one was (see `gateway::accounts::Accounts::adjust`, which finds one
    /// still queued in memory). Not flushed first: while the database refuses
    /// writes, corrections are still made, and kept queued.
    pub async fn correction_under_key(
        &self,
        user_id: i64,
        key: &str,
    ) -> Result<Option<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT amount_micros FROM credit_ledger
             WHERE user_id = ? AND kind = 'adjust' AND request_id = ?
             ORDER BY id LIMIT 1",
        )
        .bind(user_id)
        .bind(key)
        .fetch_optional(&self.writer)
        .await?)
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

    /// Counts one use of a capped key unless it is used up, and records it as
    /// in flight in the same transaction; returns the use's number, for the
    /// one write that ends it ([`Store::return_capped_use`], or the batch of
    /// the call's settlement), or `None` when the key is used up.
    /// The read cache is dropped, as after every change to a key: listing
    /// models and the management API refuse a key the cache says is used up.
    pub async fn take_capped_use(&self, key_id: i64) -> Result<Option<i64>, StoreError> {
        let mut tx = self.writer.begin().await?;
        let counted = sqlx::query(
            "UPDATE api_keys SET usage_count = usage_count + 1
             WHERE id = ? AND usage_cap IS NOT NULL AND usage_count < usage_cap",
        )
        .bind(key_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !counted {
            return Ok(None);
        }
        let use_id: i64 = sqlx::query_scalar(
            "INSERT INTO capped_uses_in_flight (key_id) VALUES (?) RETURNING id",
        )
        .bind(key_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        self.cache.changed();
        Ok(Some(use_id))
    }

    /// Releases what a killed process left taken (its calls can never settle
    /// now): each credit hold, with a `refund` row and the balance, and each
    /// capped key's use in flight, all in one transaction. Run at start-up,
    /// before any call. Returns how many holds and uses there were.
    pub async fn release_what_a_stop_left_taken(&self) -> Result<LeftTaken, StoreError> {
        let mut tx = self.writer.begin().await?;
        let holds: Vec<(i64, i64, Option<String>)> =
            sqlx::query_as("SELECT user_id, amount_micros, request_id FROM open_holds")
                .fetch_all(&mut *tx)
                .await?;
        for (user_id, amount, request_id) in holds.iter().filter(|(_, amount, _)| *amount > 0) {
            sqlx::query(
                "INSERT INTO credit_ledger (user_id, kind, amount_micros, request_id, note)
                 VALUES (?, 'refund', ?, ?, 'hold released: the server stopped without settling the call')",
            )
            .bind(user_id)
            .bind(amount)
            .bind(request_id)
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE users SET balance_micros = balance_micros + ? WHERE id = ?")
                .bind(amount)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM open_holds")
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE api_keys SET usage_count = MAX(usage_count
                 - (SELECT COUNT(*) FROM capped_uses_in_flight f WHERE f.key_id = api_keys.id), 0)
             WHERE id IN (SELECT key_id FROM capped_uses_in_flight)",
        )
        .execute(&mut *tx)
        .await?;
        let uses_in_flight = sqlx::query("DELETE FROM capped_uses_in_flight")
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(LeftTaken {
            holds: holds.len() as u64,
            capped_uses: uses_in_flight,
        })
    }

    /// Whether a capped key has uses taken by calls still running, which
    /// come back if those calls fail: said when the key is refused as used up.
    /// The queue is written first: a use kept by a call just answered ends
    /// there.
    pub async fn capped_uses_in_flight(&self, key_id: i64) -> Result<bool, StoreError> {
        self.flush().await?;
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM capped_uses_in_flight WHERE key_id = ?)",
        )
        .bind(key_id)
        .fetch_one(&self.writer)
        .await?)
    }

    /// Gives back a use taken by [`Store::take_capped_use`] for a call the
    /// upstream never answered: refused by another limit, failed, or
    /// abandoned by its client first. Ending the use in flight and the
    /// decrement are one transaction, so a use is given back at most once
    /// whatever else ends it (a start after a kill).
    /// A key cached as used up meanwhile (while the use was taken) must not
    /// stay refused there, so the read cache is dropped.
    pub async fn return_capped_use(&self, use_id: i64) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        end_capped_use(&mut tx, use_id, CappedUseEnd::Returned).await?;
        tx.commit().await?;
        self.cache.changed();
        Ok(())
    }
}

/// Ends a capped key's use in flight, in the caller's transaction: deletes its
/// row and, for [`CappedUseEnd::Returned`], gives the use back. A use already
/// ended is left alone, so it is never given back twice.
pub(super) async fn end_capped_use(
    db: &mut SqliteConnection,
    use_id: i64,
    end: CappedUseEnd,
) -> Result<(), sqlx::Error> {
    let key_id: Option<i64> =
        sqlx::query_scalar("DELETE FROM capped_uses_in_flight WHERE id = ? RETURNING key_id")
            .bind(use_id)
            .fetch_optional(&mut *db)
            .await?;
    if let (Some(key_id), CappedUseEnd::Returned) = (key_id, end) {
        sqlx::query(
            "UPDATE api_keys SET usage_count = usage_count - 1 WHERE id = ? AND usage_count > 0",
        )
        .bind(key_id)
        .execute(&mut *db)
        .await?;
    }
    Ok(())
}

/// What [`Store::release_what_a_stop_left_taken`] released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeftTaken {
    pub holds: u64,
    pub capped_uses: u64,
}

#[cfg(test)]
mod tests {
    use super::LeftTaken;
    use crate::store::{CappedUseEnd, Store, testing::user_on_default_plan};

    /// The hourly tidy deletes the windows of days before yesterday, the
    /// caller addresses' among them, and keeps yesterday's and today's.
    #[tokio::test]
    async fn past_windows_are_forgotten() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        for (subject, window, start) in [
            ("ip:192.0.2.1", "day", "2026-12-03"),
            ("user:1", "hour", "2026-12-03T23"),
            ("user:1", "day", "2026-12-04"),
            ("user:1", "hour", "2026-12-04T00"),
            ("ip:192.0.2.1", "day", "2026-12-05"),
        ] {
            sqlx::query(
                "INSERT INTO limit_windows (subject, window, window_start, count) VALUES (?, ?, ?, 1)",
            )
            .bind(subject)
            .bind(window)
            .bind(start)
            .execute(store.pool())
            .await
            .unwrap();
        }
        assert_eq!(store.forget_past_windows("2026-12-04").await.unwrap(), 2);
        let left: Vec<String> =
            sqlx::query_scalar("SELECT window_start FROM limit_windows ORDER BY window_start")
                .fetch_all(store.pool())
                .await
                .unwrap();
        assert_eq!(left, ["2026-12-04", "2026-12-04T00", "2026-12-05"]);
    }

    /// A one-time key's uses survive a kill at any point as exactly the uses
    /// of calls whose settlement was written: a use is in flight from the
    /// moment it is counted (the same transaction), and one write ends it.
    /// Before, the use rode on the call's hold row, written a batch later: a
    /// kill in between left it counted with no call to show for it (B below),
    /// and a use given back and then released with its hold at the next
    /// start went back twice.
    #[tokio::test]
    async fn capped_uses_left_in_flight_by_a_kill_are_given_back_once_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::open(&url).await.unwrap();
        let user_id = user_on_default_plan(&store, "a@example.com").await;
        let key_id: i64 = sqlx::query_scalar(
            "INSERT INTO api_keys (user_id, name, env, secret_hash, display_prefix, last_four, scopes, usage_cap)
             VALUES (?, 'capped', 'live', x'00', 'tg_live_', 'abcd', '[\"chat\"]', 5)
             RETURNING id",
        )
        .bind(user_id)
        .fetch_one(store.pool())
        .await
        .unwrap();
        let counted = |store: &Store| {
            let pool = store.pool().clone();
            async move {
                sqlx::query_scalar::<_, i64>("SELECT usage_count FROM api_keys WHERE id = ?")
                    .bind(key_id)
                    .fetch_one(&pool)
                    .await
                    .unwrap()
            }
        };
        let take = || async { store.take_capped_use(key_id).await.unwrap().unwrap() };

        // A: answered, and its settlement written.
        let a = take().await;
        store.queue(|batch| batch.capped_use_ended(a, CappedUseEnd::Kept));
        store.flush().await.unwrap();
        // B: taken, and the process killed before anything else was written.
        take().await;
        // C: given back, twice over (a give-back and a dropped handle racing).
        let c = take().await;
        store.return_capped_use(c).await.unwrap();
        store.return_capped_use(c).await.unwrap();
        // E: the server stopped it before the answer, in a written batch.
        let e = take().await;
        store.queue(|batch| batch.capped_use_ended(e, CappedUseEnd::Returned));
        store.flush().await.unwrap();
        // D: answered, and killed before the batch with its settlement (and
        // its usage record) was written.
        let d = take().await;
        store.queue(|batch| batch.capped_use_ended(d, CappedUseEnd::Kept));
        assert_eq!(counted(&store).await, 3, "A, B and D counted");
        // The kill: nothing more is written.
        drop(store);

        let again = Store::open(&url).await.unwrap();
        let left = again.release_what_a_stop_left_taken().await.unwrap();
        let expected = LeftTaken {
            holds: 0,
            capped_uses: 2,
        };
        assert_eq!(left, expected, "B and D were in flight");
        assert_eq!(counted(&again).await, 1, "only A's use stays counted");
        let none = again.release_what_a_stop_left_taken().await.unwrap();
        assert_eq!(none.capped_uses, 0);
        assert_eq!(counted(&again).await, 1);
    }
}
