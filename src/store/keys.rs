//! API keys. Keys are stored as a keyed hash only; see `crate::keys::hashing`.

use sqlx::FromRow;

use super::{
    AuditEvent, Store, StoreError, audit,
    plans::{ACTIVE_KEY, USER_PLAN_ID},
};

const RECORD_KEY_SECRET_CHECK: &str = "UPDATE instance SET key_secret_check = ? WHERE id = 1";

/// SQL that revokes the keys an UPDATE of `api_keys` picks: a grace period
/// left from a rotation ends with it.
pub(super) const REVOKED: &str =
    "revoked_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), grace_hash = NULL, grace_until = NULL";

/// The rolling window and count for key creation.
pub const CREATIONS_PER_DAY: i64 = 5;

#[derive(Debug, Clone, FromRow)]
pub struct KeyRecord {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub env: String,
    pub display_prefix: String,
    pub last_four: String,
    /// JSON arrays; `None` means unrestricted.
    pub scopes: String,
    pub allowed_models: Option<String>,
    pub ip_allowlist: Option<String>,
    pub referrer_domains: Option<String>,
    pub usage_cap: Option<i64>,
    pub usage_count: i64,
    pub expires_at: Option<String>,
    pub grace_until: Option<String>,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub revoked_at: Option<String>,
    /// Found by its previous secret, in a rotation's grace period (set only
    /// by [`Store::key_by_hash`]).
    #[sqlx(default)]
    pub by_previous_secret: bool,
}

const KEY_COLUMNS: &str = "id, user_id, name, env, display_prefix, last_four, scopes, allowed_models, ip_allowlist,
    referrer_domains, usage_cap, usage_count, expires_at, grace_until, created_at, last_used_at, revoked_at";

/// A key to insert; every field already validated.
pub struct NewKey<'a> {
    pub user_id: i64,
    pub name: &'a str,
    pub env: &'a str,
    pub secret_hash: &'a [u8],
    pub display_prefix: &'a str,
    pub last_four: &'a str,
    pub scopes: String,
    pub allowed_models: Option<String>,
    pub ip_allowlist: Option<String>,
    pub referrer_domains: Option<String>,
    pub usage_cap: Option<i64>,
    pub expires_at: Option<String>,
}

/// A key's changeable settings, validated.
pub struct KeySettings<'a> {
    pub name: &'a str,
    pub scopes: String,
    pub allowed_models: Option<String>,
    pub ip_allowlist: Option<String>,
    pub referrer_domains: Option<String>,
    pub usage_cap: Option<i64>,
    pub expires_at: Option<String>,
}

/// The outcome of [`Store::update_key`]; all but `Updated` change nothing.
#[derive(Debug)]
pub enum KeyUpdate {
    Updated(Box<KeyRecord>),
    /// No such key of the user's, or it is revoked.
    Missing,
    /// Its settings changed since they were read.
    ChangedMeanwhile,
    /// It would be one active key more than the plan allows.
    ActiveLimit {
        allowed: i64,
    },
}

/// A key's new secret, in its stored parts.
pub struct NewSecret<'a> {
    pub hash: &'a [u8],
    pub display_prefix: &'a str,
    pub last_four: &'a str,
}

/// The outcome of asking for a new key.
#[derive(Debug)]
pub enum KeyCreation {
    Created(Box<KeyRecord>),
    /// `CREATIONS_PER_DAY` keys were created in the last 24 hours; the oldest leaves the window at `frees_at`.
    DailyLimit {
        frees_at: String,
    },
    /// The plan's active-key limit is reached.
    ActiveLimit {
        allowed: i64,
    },
}

impl Store {
    /// Inserts a key if both creation limits allow it. The limits are checked in
    /// the INSERT itself, so concurrent requests cannot overshoot them.
    pub async fn create_key(
        &self,
        new: NewKey<'_>,
        audit: AuditEvent,
    ) -> Result<KeyCreation, StoreError> {
        let mut tx = self.writer.begin().await?;
        let inserted: Option<KeyRecord> = sqlx::query_as(&format!(
            "INSERT INTO api_keys (user_id, name, env, secret_hash, display_prefix, last_four, scopes,
                                   allowed_models, ip_allowlist, referrer_domains, usage_cap, expires_at)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12
             WHERE (SELECT COUNT(*) FROM api_keys
                    WHERE user_id = ?1 AND created_at > strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 day')) < {CREATIONS_PER_DAY}
               AND (SELECT COUNT(*) FROM api_keys WHERE user_id = ?1 AND {ACTIVE_KEY})
                   < (SELECT max_active_keys FROM plans WHERE id = {USER_PLAN_ID})
             RETURNING {KEY_COLUMNS}"
        ))
        .bind(new.user_id)
        .bind(new.name)
        .bind(new.env)
        .bind(new.secret_hash)
        .bind(new.display_prefix)
        .bind(new.last_four)
        .bind(&new.scopes)
        .bind(&new.allowed_models)
        .bind(&new.ip_allowlist)
        .bind(&new.referrer_domains)
        .bind(new.usage_cap)
        .bind(&new.expires_at)
        .fetch_optional(&mut *tx)
        .await?;

        let Some(key) = inserted else {
            // Say which limit, reading in the same transaction.
            let oldest: Option<String> = sqlx::query_scalar(
                "SELECT strftime('%Y-%m-%dT%H:%M:%SZ', MIN(created_at), '+1 day') FROM
                   (SELECT created_at FROM api_keys
                    WHERE user_id = ? AND created_at > strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 day')
                    ORDER BY created_at DESC LIMIT ?)",
            )
            .bind(new.user_id)
            .bind(CREATIONS_PER_DAY)
            .fetch_one(&mut *tx)
            .await?;
            let recent: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM api_keys
                 WHERE user_id = ? AND created_at > strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '-1 day')",
            )
            .bind(new.user_id)
            .fetch_one(&mut *tx)
            .await?;
            return Ok(if recent >= CREATIONS_PER_DAY {
                KeyCreation::DailyLimit {
                    frees_at: oldest.unwrap_or_default(),
                }
            } else {
                let allowed = self.plan_of_user(new.user_id).await?.max_active_keys;
                KeyCreation::ActiveLimit { allowed }
            });
        };
        let audit = AuditEvent {
            target: Some(format!("key:{}", key.id)),
            ..audit
        };
        audit::insert(&mut tx, &audit).await?;
        self.commit_change(tx).await?;
        Ok(KeyCreation::Created(Box::new(key)))
    }

    /// Whether any API key was ever made here (revoked ones too): their
    /// hashes need the secret they were made under.
    pub async fn has_api_keys(&self) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM api_keys)")
            .fetch_one(&self.writer)
            .await?)
    }

    /// The check value of the key secret the database's keys were made
    /// under (`KeyHasher::check_value`), once a start has recorded it.
    pub async fn key_secret_check(&self) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT key_secret_check FROM instance WHERE id = 1")
                .fetch_optional(&self.writer)
                .await?
                .flatten(),
        )
    }

    /// Records the check value of the key secret in use (see
    /// [`Store::key_secret_check`]).
    pub async fn record_key_secret_check(&self, check: &[u8]) -> Result<(), StoreError> {
        sqlx::query(RECORD_KEY_SECRET_CHECK)
            .bind(check)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Puts a new key secret in place of the one the keys were made under:
    /// every key not yet revoked is revoked (none can work under the new
    /// secret) and the new secret's `check` recorded, in one transaction,
    /// with `audit` (the count in its details). Returns how many were revoked.
    pub async fn replace_key_secret(
        &self,
        check: &[u8],
        audit: AuditEvent,
    ) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin().await?;
        let revoked = sqlx::query(&format!(
            "UPDATE api_keys SET {REVOKED} WHERE revoked_at IS NULL"
        ))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query(RECORD_KEY_SECRET_CHECK)
            .bind(check)
            .execute(&mut *tx)
            .await?;
        audit::insert(
            &mut tx,
            &audit.details(serde_json::json!({ "keys": revoked })),
        )
        .await?;
        self.commit_change(tx).await?;
        Ok(revoked)
    }

    /// The user's keys, newest first.
    pub async fn keys_of_user(&self, user_id: i64) -> Result<Vec<KeyRecord>, StoreError> {
        self.flush().await?;
        Ok(sqlx::query_as(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE user_id = ? ORDER BY id DESC"
        ))
        .bind(user_id)
        .fetch_all(&self.writer)
        .await?)
    }

    /// One of the user's keys; `None` both when it does not exist and when it is
    /// someone else's.
    pub async fn key_of_user(
        &self,
        user_id: i64,
        key_id: i64,
    ) -> Result<Option<KeyRecord>, StoreError> {
        self.flush().await?;
        Ok(sqlx::query_as(&format!(
            "SELECT {KEY_COLUMNS} FROM api_keys WHERE user_id = ? AND id = ?"
        ))
        .bind(user_id)
        .bind(key_id)
        .fetch_optional(&self.writer)
        .await?)
    }

    /// Revokes the user's listed keys that are not yet revoked; returns how
    /// many were. `each` is written once for each key revoked, its target
    /// that key, so the log shows each key's revocation and only those.
    pub async fn revoke_keys(
        &self,
        user_id: i64,
        key_ids: &[i64],
        each: &AuditEvent,
    ) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin().await?;
        let mut revoked = 0;
        for id in key_ids {
            let done = sqlx::query(&format!(
                "UPDATE api_keys SET {REVOKED}
                 WHERE id = ? AND user_id = ? AND revoked_at IS NULL"
            ))
            .bind(id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if done == 1 {
                audit::insert(&mut tx, &each.clone().target(format!("key:{id}"))).await?;
            }
            revoked += done;
        }
        self.commit_change(tx).await?;
        Ok(revoked)
    }

    /// Revokes every key of the user not yet revoked, in one statement, so a
    /// key created meanwhile is not missed; returns how many. `each` is
    /// written for each key as in [`Store::revoke_keys`], and `summary`, with
    /// the count in its details, once when any was revoked.
    pub async fn revoke_every_key(
        &self,
        user_id: i64,
        each: &AuditEvent,
        summary: AuditEvent,
    ) -> Result<u64, StoreError> {
        let mut tx = self.writer.begin().await?;
        let ids: Vec<i64> = sqlx::query_scalar(&format!(
            "UPDATE api_keys SET {REVOKED}
             WHERE user_id = ? AND revoked_at IS NULL
             RETURNING id"
        ))
        .bind(user_id)
        .fetch_all(&mut *tx)
        .await?;
        for id in &ids {
            audit::insert(&mut tx, &each.clone().target(format!("key:{id}"))).await?;
        }
        if !ids.is_empty() {
            let summary = summary.details(serde_json::json!({ "keys": ids.len() }));
            audit::insert(&mut tx, &summary).await?;
        }
        self.commit_change(tx).await?;
        Ok(ids.len() as u64)
    }

    /// Gives each of the user's unrevoked keys its new secret, keeping the old
    /// one for `grace_secs` when above zero. One transaction: when any key is
    /// missing or revoked, none changes and this answers `None`.
    pub async fn rotate_keys(
        &self,
        user_id: i64,
        rotations: &[(i64, NewSecret<'_>, AuditEvent)],
        grace_secs: i64,
    ) -> Result<Option<Vec<KeyRecord>>, StoreError> {
        let mut tx = self.writer.begin().await?;
        let mut rotated = Vec::with_capacity(rotations.len());
        for (key_id, secret, audit) in rotations {
            let key: Option<KeyRecord> = sqlx::query_as(&format!(
                "UPDATE api_keys SET
                     grace_hash = CASE WHEN ?1 > 0 THEN secret_hash END,
                     grace_until = CASE WHEN ?1 > 0 THEN strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '+' || ?1 || ' seconds') END,
                     secret_hash = ?2, display_prefix = ?3, last_four = ?4
                 WHERE id = ?5 AND user_id = ?6 AND revoked_at IS NULL
                 RETURNING {KEY_COLUMNS}"
            ))
            .bind(grace_secs)
            .bind(secret.hash)
            .bind(secret.display_prefix)
            .bind(secret.last_four)
            .bind(key_id)
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(key) = key else {
                return Ok(None);
            };
            audit::insert(&mut tx, audit).await?;
            rotated.push(key);
        }
        self.commit_change(tx).await?;
        Ok(Some(rotated))
    }

    /// Ends the grace period of one of the user's keys, if one is running:
    /// its previous secret stops working now. Returns whether one was.
    pub async fn end_grace(
        &self,
        user_id: i64,
        key_id: i64,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await?;
        let ended = sqlx::query(
            "UPDATE api_keys SET grace_hash = NULL, grace_until = NULL
             WHERE id = ? AND user_id = ? AND revoked_at IS NULL
               AND grace_until > strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
        )
        .bind(key_id)
        .bind(user_id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if ended {
            audit::insert(&mut tx, audit).await?;
        }
        self.commit_change(tx).await?;
        Ok(ended)
    }

    /// Replaces the settings of one of the user's unrevoked keys, if they are
    /// still those of `read` (the record the new ones were worked out from;
    /// another edit since would otherwise be lost without a word). A key that
    /// was not active and would be afterwards (an expiry lifted, a cap
    /// raised) counts against the plan's active keys, as a new one does.
    pub async fn update_key(
        &self,
        read: &KeyRecord,
        settings: KeySettings<'_>,
        audit: AuditEvent,
    ) -> Result<KeyUpdate, StoreError> {
        let mut tx = self.writer.begin().await?;
        let was_active: Option<bool> = sqlx::query_scalar(&format!(
            "SELECT {ACTIVE_KEY} FROM api_keys WHERE id = ? AND user_id = ? AND revoked_at IS NULL"
        ))
        .bind(read.id)
        .bind(read.user_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(was_active) = was_active else {
            return Ok(KeyUpdate::Missing);
        };
        let key: Option<KeyRecord> = sqlx::query_as(&format!(
            "UPDATE api_keys SET name = ?, scopes = ?, allowed_models = ?, ip_allowlist = ?, referrer_domains = ?,
                                 usage_cap = ?, expires_at = ?
             WHERE id = ? AND user_id = ?
               AND name = ? AND scopes = ? AND allowed_models IS ? AND ip_allowlist IS ?
               AND referrer_domains IS ? AND usage_cap IS ? AND expires_at IS ?
             RETURNING {KEY_COLUMNS}"
        ))
        .bind(settings.name)
        .bind(&settings.scopes)
        .bind(&settings.allowed_models)
        .bind(&settings.ip_allowlist)
        .bind(&settings.referrer_domains)
        .bind(settings.usage_cap)
        .bind(&settings.expires_at)
        .bind(read.id)
        .bind(read.user_id)
        .bind(&read.name)
        .bind(&read.scopes)
        .bind(&read.allowed_models)
        .bind(&read.ip_allowlist)
        .bind(&read.referrer_domains)
        .bind(read.usage_cap)
        .bind(&read.expires_at)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(key) = key else {
            return Ok(KeyUpdate::ChangedMeanwhile);
        };
        if !was_active {
            // Only if the edit made it active: an account an admin moved to a
            // smaller plan may hold more than it allows, and still edit a
            // key that stays inactive.
            let over: Option<i64> = sqlx::query_scalar(&format!(
                "SELECT max_active_keys FROM plans
                 WHERE id = {USER_PLAN_ID}
                   AND (SELECT {ACTIVE_KEY} FROM api_keys WHERE id = ?2)
                   AND max_active_keys < (SELECT COUNT(*) FROM api_keys WHERE user_id = ?1 AND {ACTIVE_KEY})"
            ))
            .bind(read.user_id)
            .bind(read.id)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(allowed) = over {
                return Ok(KeyUpdate::ActiveLimit { allowed });
            }
        }
        audit::insert(&mut tx, &audit).await?;
        self.commit_change(tx).await?;
        Ok(KeyUpdate::Updated(Box::new(key)))
    }

    /// Finds the key a presented secret belongs to: its current hash, or its
    /// previous one while a rotation grace period lasts.
    /// Served from the read cache when it can be (so a grace period may
    /// outlast its end by up to a second).
    pub async fn key_by_hash(&self, hash: &[u8]) -> Result<Option<KeyRecord>, StoreError> {
        let generation = self.cache.generation();
        if let Some(key) = self.cache.keys.get(&hash.to_vec(), generation) {
            return Ok(Some(key));
        }
        let found: Option<KeyRecord> = sqlx::query_as(&format!(
            "SELECT {KEY_COLUMNS}, secret_hash <> ?1 AS by_previous_secret FROM api_keys
             WHERE secret_hash = ?1
                OR (grace_hash = ?1 AND grace_until > strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
        ))
        .bind(hash)
        .fetch_optional(&self.reader)
        .await?;
        if let Some(key) = &found {
            self.cache.keys.put(hash.to_vec(), key.clone(), generation);
        }
        Ok(found)
    }
}
