//! Credits: the balance on `users` and the ledger that explains it. Every change
//! to a balance writes a ledger row in the same transaction, so the balance
//! always equals the sum of the ledger. (The gateway's own moves are written in
//! batches by [`super::pending`], under the same rule.)

use sqlx::{Sqlite, Transaction};

use super::{Store, StoreError};

/// Adds `amount` to the balance with a `grant` ledger entry.
pub(super) async fn grant(
    tx: &mut Transaction<'_, Sqlite>,
    user_id: i64,
    amount: i64,
    note: &str,
) -> Result<(), StoreError> {
    entry(tx, user_id, "grant", amount, None, note).await?;
    Ok(())
}

/// Writes one ledger row and moves the balance by the same amount. The balance's
/// CHECK constraint refuses a negative result, failing the transaction.
pub(super) async fn entry(
    tx: &mut Transaction<'_, Sqlite>,
    user_id: i64,
    kind: &str,
    amount: i64,
    request_id: Option<&str>,
    note: &str,
) -> Result<i64, StoreError> {
    entries(tx, user_id, &[(kind, amount, note)], request_id).await
}

/// Writes several ledger rows and moves the balance by their sum; returns the
/// balance after. Two statements whatever the number of rows: on the gateway's
/// path every statement is a round trip to the database thread.
pub(super) async fn entries(
    tx: &mut Transaction<'_, Sqlite>,
    user_id: i64,
    rows: &[(&str, i64, &str)],
    request_id: Option<&str>,
) -> Result<i64, StoreError> {
    insert_rows(tx, user_id, rows, request_id).await?;
    let total: i64 = rows.iter().map(|(_, amount, _)| amount).sum();
    Ok(sqlx::query_scalar(
        "UPDATE users SET balance_micros = balance_micros + ? WHERE id = ? RETURNING balance_micros",
    )
    .bind(total)
    .bind(user_id)
    .fetch_one(&mut **tx)
    .await?)
}

/// Inserts ledger rows in one statement. Callers move the balance with them.
async fn insert_rows(
    tx: &mut Transaction<'_, Sqlite>,
    user_id: i64,
    rows: &[(&str, i64, &str)],
    request_id: Option<&str>,
) -> Result<(), StoreError> {
    let mut insert = sqlx::QueryBuilder::<Sqlite>::new(
        "INSERT INTO credit_ledger (user_id, kind, amount_micros, request_id, note) ",
    );
    insert.push_values(rows, |mut row, (kind, amount, note)| {
        row.push_bind(user_id)
            .push_bind(*kind)
            .push_bind(*amount)
            .push_bind(request_id)
            .push_bind(*note);
    });
    insert.build().execute(&mut **tx).await?;
    Ok(())
}

/// Gives the plan's monthly grant once per calendar month (`YYYY-MM`); the
/// amount given now.
pub(super) async fn monthly_grant(
    tx: &mut Transaction<'_, Sqlite>,
    user_id: i64,
    month: &str,
) -> Result<i64, StoreError> {
    let first_this_month =
        sqlx::query("INSERT OR IGNORE INTO monthly_grants (user_id, month) VALUES (?, ?)")
            .bind(user_id)
            .bind(month)
            .execute(&mut **tx)
            .await?
            .rows_affected()
            == 1;
    if first_this_month {
        let amount: i64 = sqlx::query_scalar(
            "SELECT p.monthly_credits FROM users u JOIN plans p ON p.id = u.plan_id WHERE u.id = ?",
        )
        .bind(user_id)
        .fetch_optional(&mut **tx)
        .await?
        .unwrap_or(0);
        if amount > 0 {
            grant(tx, user_id, amount, &format!("plan grant for {month}")).await?;
            return Ok(amount);
        }
    }
    Ok(0)
}

/// A user's balance, for admins.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserBalance {
    pub user_id: i64,
    pub email: String,
    pub display_name: String,
    pub plan_slug: String,
    pub balance_micros: i64,
}

impl Store {
    /// Accounts (but deleted ones) with their plan and balance, oldest first.
    pub async fn balances(&self, limit: i64, offset: i64) -> Result<Vec<UserBalance>, StoreError> {
        self.flush().await?;
        Ok(sqlx::query_as(
            "SELECT u.id AS user_id, u.email, u.display_name,
                    COALESCE(p.slug, '') AS plan_slug, u.balance_micros
             FROM users u LEFT JOIN plans p ON p.id = u.plan_id
             WHERE u.status != 'deleted'
             ORDER BY u.id LIMIT ? OFFSET ?",
        )
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.reader)
        .await?)
    }
}
