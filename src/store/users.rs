//! Users. Every change is written in one transaction with its audit event.

use sqlx::FromRow;

use super::{AuditEvent, Store, StoreError, audit};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    Active,
    Disabled,
    Deleted,
}

impl UserStatus {
    fn from_db(value: &str) -> Self {
        match value {
            "active" => Self::Active,
            "disabled" => Self::Disabled,
            _ => Self::Deleted,
        }
    }

    fn as_db(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Disabled => "disabled",
            Self::Deleted => "deleted",
        }
    }
}

#[derive(Debug, Clone, FromRow)]
struct UserRow {
    id: i64,
    email: String,
    display_name: String,
    password_hash: String,
    role: String,
    status: String,
    session_epoch: i64,
    created_at: String,
}

/// A user as the service layer sees it.
#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: i64,
    pub email: String,
    pub display_name: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub status: UserStatus,
    pub session_epoch: i64,
    pub created_at: String,
}

impl From<UserRow> for UserRecord {
    fn from(row: UserRow) -> Self {
        Self {
            id: row.id,
            email: row.email,
            display_name: row.display_name,
            password_hash: row.password_hash,
            is_admin: row.role == "admin",
            status: UserStatus::from_db(&row.status),
            session_epoch: row.session_epoch,
            created_at: row.created_at,
        }
    }
}

pub struct NewUser<'a> {
    pub email: &'a str,
    pub display_name: &'a str,
    pub password_hash: &'a str,
    pub is_admin: bool,
    /// The signup grant, written to the ledger with the account.
    pub starting_credits_micros: i64,
}

const USER_COLUMNS: &str =
    "id, email, display_name, password_hash, role, status, session_epoch, created_at";

pub(super) fn unique_violation(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .is_some_and(|e| e.is_unique_violation())
}

/// Closes an account's unused reset links (bound: its id): a password
/// change, a disable or a deletion ends them, so a link made before cannot
/// undo the change or come back with the account.
const CLOSE_RESETS: &str = "DELETE FROM password_resets WHERE user_id = ? AND used_at IS NULL";

/// A reset link `r` of account `u` that may be used: its token is `?1`.
const OPEN_RESET: &str = "r.token_hash = ?1 AND r.used_at IS NULL
    AND r.expires_at > strftime('%Y-%m-%dT%H:%M:%fZ', 'now') AND u.status = 'active'";

/// What [`Store::set_user_status`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusChange {
    /// Changed, or already so.
    Done,
    NoSuchUser,
    /// The admin asking was disabled or lost the role meanwhile.
    NotAnAdmin,
}

impl Store {
    /// Creates a user; `audit` is completed with the new id as its target (and
    /// actor, when it has none).
    pub async fn create_user(
        &self,
        new: NewUser<'_>,
        audit: AuditEvent,
    ) -> Result<UserRecord, StoreError> {
        let mut tx = self.writer.begin().await?;
        let row: UserRow = sqlx::query_as(&format!(
            "INSERT INTO users (email, display_name, password_hash, role, plan_id)
             VALUES (?, ?, ?, ?, (SELECT id FROM plans WHERE is_default = 1))
             RETURNING {USER_COLUMNS}"
        ))
        .bind(new.email)
        .bind(new.display_name)
        .bind(new.password_hash)
        .bind(if new.is_admin { "admin" } else { "user" })
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            if unique_violation(&e) {
                StoreError::Duplicate("email")
            } else {
                e.into()
            }
        })?;
        if new.starting_credits_micros > 0 {
            super::credits::grant(&mut tx, row.id, new.starting_credits_micros, "signup").await?;
        }
        let audit = AuditEvent {
            actor_user_id: audit.actor_user_id.or(Some(row.id)),
            target: Some(format!("user:{}", row.id)),
            ..audit
        };
        audit::insert(&mut tx, &audit).await?;
        self.commit_change(tx).await?;
        Ok(row.into())
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>, StoreError> {
        let row: Option<UserRow> =
            sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?"))
                .bind(email)
                .fetch_optional(&self.writer)
                .await?;
        Ok(row.map(Into::into))
    }

    /// Served from the read cache when it can be.
    pub async fn user_by_id(&self, id: i64) -> Result<Option<UserRecord>, StoreError> {
        let generation = self.cache.generation();
        if let Some(user) = self.cache.users.get(&id, generation) {
            return Ok(Some(user));
        }
        let row: Option<UserRow> =
            sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"))
                .bind(id)
                .fetch_optional(&self.reader)
                .await?;
        let user: Option<UserRecord> = row.map(Into::into);
        if let Some(user) = &user {
            self.cache.users.put(id, user.clone(), generation);
        }
        Ok(user)
    }

    /// Users, newest first, for the admin pages.
    pub async fn list_users(&self, limit: i64, offset: i64) -> Result<Vec<UserRecord>, StoreError> {
        self.search_users("", limit, offset).await
    }

    /// Users whose email or display name contains `text` (any case), newest
    /// first; every user when `text` is empty.
    pub async fn search_users(
        &self,
        text: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<UserRecord>, StoreError> {
        if !text.is_ascii() {
            return self.search_users_folding(text, limit, offset).await;
        }
        let escaped = text
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        let pattern = format!("%{escaped}%");
        let rows: Vec<UserRow> = sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users
             WHERE status != 'deleted'
               AND (email LIKE ?1 ESCAPE '\\' OR display_name LIKE ?1 ESCAPE '\\')
             ORDER BY id DESC LIMIT ?2 OFFSET ?3"
        ))
        .bind(pattern)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(Into::into).collect())
    }

    /// [`Store::search_users`] for text beyond ASCII, whose case SQLite's
    /// `LIKE` does not fold ("émile" would miss "Émile"): the accounts are
    /// read newest first and matched here, Unicode's lowercase on both sides.
    async fn search_users_folding(
        &self,
        text: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<UserRecord>, StoreError> {
        use futures::TryStreamExt;
        let needle = text.to_lowercase();
        let (limit, mut skip) = (limit.max(0) as usize, offset.max(0));
        let query =
            format!("SELECT {USER_COLUMNS} FROM users WHERE status != 'deleted' ORDER BY id DESC");
        let mut rows = sqlx::query_as::<_, UserRow>(&query).fetch(&self.reader);
        let mut found = Vec::new();
        while found.len() < limit
            && let Some(row) = rows.try_next().await?
        {
            let matches = row.email.to_lowercase().contains(&needle)
                || row.display_name.to_lowercase().contains(&needle);
            if !matches {
                continue;
            }
            if skip > 0 {
                skip -= 1;
            } else {
                found.push(row.into());
            }
        }
        Ok(found)
    }

    pub async fn update_display_name(
        &self,
        user_id: i64,
        name: &str,
        audit: AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        sqlx::query(
            "UPDATE users SET display_name = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE id = ? AND status = 'active'",
        )
        .bind(name)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        audit::insert(&mut tx, &audit).await?;
        self.commit_change(tx).await?;
        Ok(())
    }

    /// Stores a new password hash and starts a new session epoch, which ends every
    /// session created before it. Returns the new epoch.
    pub async fn update_password(
        &self,
        user_id: i64,
        password_hash: &str,
        audit: AuditEvent,
    ) -> Result<i64, StoreError> {
        let mut tx = self.writer.begin().await?;
        let epoch: i64 = sqlx::query_scalar(
            "UPDATE users SET password_hash = ?, session_epoch = session_epoch + 1,
                              updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE id = ? RETURNING session_epoch",
        )
        .bind(password_hash)
        .bind(user_id)
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query(CLOSE_RESETS)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        audit::insert(&mut tx, &audit).await?;
        self.commit_change(tx).await?;
        Ok(epoch)
    }

    /// Records a one-time password reset link for an active account, valid
    /// for `valid_secs`; the account's earlier links stop working. Returns
    /// when it expires, or `None` when the account is not active.
    pub async fn create_password_reset(
        &self,
        user_id: i64,
        token_hash: &[u8],
        valid_secs: i64,
        audit: AuditEvent,
    ) -> Result<Option<String>, StoreError> {
        let mut tx = self.writer.begin().await?;
        let active: Option<i64> =
            sqlx::query_scalar("SELECT id FROM users WHERE id = ? AND status = 'active'")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        if active.is_none() {
            return Ok(None);
        }
        sqlx::query(CLOSE_RESETS)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let expires_at: String = sqlx::query_scalar(
            "INSERT INTO password_resets (user_id, token_hash, created_by, expires_at)
             VALUES (?, ?, ?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+' || ? || ' seconds'))
             RETURNING expires_at",
        )
        .bind(user_id)
        .bind(token_hash)
        .bind(audit.actor_user_id)
        .bind(valid_secs)
        .fetch_one(&mut *tx)
        .await?;
        audit::insert(&mut tx, &audit).await?;
        self.commit_change(tx).await?;
        Ok(Some(expires_at))
    }

    /// Whether a reset link's token may still be used: unused, unexpired,
    /// its account active.
    pub async fn password_reset_is_open(&self, token_hash: &[u8]) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar::<_, i64>(&format!(
            "SELECT r.id FROM password_resets r JOIN users u ON u.id = r.user_id
             WHERE {OPEN_RESET}"
        ))
        .bind(token_hash)
        .fetch_optional(&self.writer)
        .await?
        .is_some())
    }

    /// Uses a reset link, once: stores the new password hash and starts a new
    /// session epoch, which ends the account's sessions. `audit` is written
    /// with the account as actor and target, and the link and its maker in
    /// its details. `None` when the link is not, or no longer, open.
    pub async fn use_password_reset(
        &self,
        token_hash: &[u8],
        password_hash: &str,
        audit: AuditEvent,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.writer.begin().await?;
        let used: Option<(i64, i64, i64)> = sqlx::query_as(&format!(
            "UPDATE password_resets SET used_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE id = (SELECT r.id FROM password_resets r JOIN users u ON u.id = r.user_id
                         WHERE {OPEN_RESET})
             RETURNING user_id, id, created_by"
        ))
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((user_id, link_id, created_by)) = used else {
            return Ok(None);
        };
        sqlx::query(
            "UPDATE users SET password_hash = ?, session_epoch = session_epoch + 1,
                              updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE id = ?",
        )
        .bind(password_hash)
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        let audit = audit
            .actor(user_id)
            .target(format!("user:{user_id}"))
            .details(serde_json::json!({ "link": link_id, "made_by": created_by }));
        audit::insert(&mut tx, &audit).await?;
        self.commit_change(tx).await?;
        Ok(Some(user_id))
    }

    /// Disables or re-enables an account, for the admin `admin_id`. Disabling
    /// also starts a new session epoch, so the account's sessions end at once.
    /// The admin must still be an active admin when the change is written:
    /// two admins disabling each other at once would otherwise leave none.
    pub async fn set_user_status(
        &self,
        (admin_id, user_id): (i64, i64),
        status: UserStatus,
        audit: AuditEvent,
    ) -> Result<StatusChange, StoreError> {
        let mut tx = self.writer.begin().await?;
        let still_admin: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM users WHERE id = ? AND role = 'admin' AND status = 'active')",
        )
        .bind(admin_id)
        .fetch_one(&mut *tx)
        .await?;
        if !still_admin {
            return Ok(StatusChange::NotAnAdmin);
        }
        let now: Option<String> =
            sqlx::query_scalar("SELECT status FROM users WHERE id = ? AND status != 'deleted'")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(now) = now else {
            return Ok(StatusChange::NoSuchUser);
        };
        // Already so (a second click, another admin): nothing to change or audit.
        if now == status.as_db() {
            return Ok(StatusChange::Done);
        }
        sqlx::query(
            "UPDATE users SET status = ?,
                              session_epoch = session_epoch + (CASE WHEN ? = 'disabled' THEN 1 ELSE 0 END),
                              updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE id = ?",
        )
        .bind(status.as_db())
        .bind(status.as_db())
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
        if status != UserStatus::Active {
            sqlx::query(CLOSE_RESETS)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        audit::insert(&mut tx, &audit).await?;
        self.commit_change(tx).await?;
        Ok(StatusChange::Done)
    }

    /// Deletes an account: personal data is erased and the row is kept as an
    /// anonymous tombstone, so records that must stay for accounting still point
    /// at a user id. The email becomes free for a new registration, and the
    /// account's keys are revoked.
    ///
    /// Returns false, and changes nothing, for the last active administrator:
    /// the dashboard would be left without one.
    pub async fn delete_user(&self, user_id: i64, audit: AuditEvent) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await?;
        let deleted = sqlx::query(
            "UPDATE users SET email = 'deleted-' || id || '@deleted.invalid', display_name = 'Deleted user',
                              password_hash = '', role = 'user', status = 'deleted',
                              session_epoch = session_epoch + 1,
                              updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'),
                              deleted_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
             WHERE id = ?1
               AND (role != 'admin' OR EXISTS (
                   SELECT 1 FROM users other
                   WHERE other.role = 'admin' AND other.status = 'active' AND other.id != ?1))",
        )
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if deleted {
            sqlx::query(CLOSE_RESETS)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(&format!(
                "UPDATE api_keys SET {} WHERE user_id = ? AND revoked_at IS NULL",
                super::keys::REVOKED
            ))
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
            audit::insert(&mut tx, &audit).await?;
        }
        self.commit_change(tx).await?;
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::{StatusChange, UserStatus};
    use crate::{
        request_meta::RequestMeta,
        store::{AuditEvent, Store, testing::user_on_default_plan},
    };

    /// Two admins disabling each other at once: the writes take turns, and
    /// the second finds its admin disabled, so one admin stays.
    #[tokio::test]
    async fn two_admins_disabling_each_other_leave_one_active() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let a = user_on_default_plan(&store, "a@example.com").await;
        let b = user_on_default_plan(&store, "b@example.com").await;
        sqlx::query("UPDATE users SET role = 'admin'")
            .execute(store.pool())
            .await
            .unwrap();
        let disable = |admin, user| {
            let event = AuditEvent::new("account.disable", &RequestMeta::default()).actor(admin);
            let store = store.clone();
            async move {
                store
                    .set_user_status((admin, user), UserStatus::Disabled, event)
                    .await
                    .unwrap()
            }
        };
        assert_eq!(disable(a, b).await, StatusChange::Done);
        assert_eq!(disable(b, a).await, StatusChange::NotAnAdmin);
        let active: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM users WHERE role = 'admin' AND status = 'active'",
        )
        .fetch_one(store.pool())
        .await
        .unwrap();
        assert_eq!(active, 1);
        assert_eq!(disable(a, 999).await, StatusChange::NoSuchUser);
    }
}
