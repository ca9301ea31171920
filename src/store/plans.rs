//! Plans and which plan each account is on.

use sqlx::FromRow;

use super::{AuditEvent, Store, StoreError, audit};

#[derive(Debug, Clone, FromRow, serde::Serialize)]
pub struct PlanRecord {
    pub id: i64,
    pub slug: String,
    pub name: String,
    pub description: String,
    pub requests_per_minute: i64,
    pub requests_per_hour: i64,
    pub requests_per_day: i64,
    pub tokens_per_minute: Option<i64>,
    pub max_parallel: Option<i64>,
    pub monthly_credits: i64,
    pub max_active_keys: i64,
    /// JSON array of model names; `None` allows every model.
    #[serde(skip)]
    pub allowed_models: Option<String>,
    pub is_public: bool,
    pub is_default: bool,
    /// Set by [`Store::plan_of_user`] when an admin override replaced one of
    /// the request or token limits.
    #[sqlx(default)]
    pub limits_overridden: bool,
    /// Set by [`Store::plan_of_user`]: the plan takes no new users.
    #[sqlx(default)]
    pub retired: bool,
}

impl PlanRecord {
    pub fn allowed_models(&self) -> Option<Vec<String>> {
        self.allowed_models
            .as_deref()
            .and_then(|json| serde_json::from_str(json).ok())
    }

    /// Whether keys on this plan may call `model`: a plan without a list of
    /// models allows every one.
    pub fn includes_model(&self, model: &str) -> bool {
        Self::list_includes(self.allowed_models().as_deref(), model)
    }

    /// [`Self::includes_model`] on a plan's list already read, for asking
    /// about several models without reading the list again for each.
    pub fn list_includes(allowed_models: Option<&[String]>, model: &str) -> bool {
        allowed_models.is_none_or(|names| names.iter().any(|name| name == model))
    }
}

const PLAN_COLUMNS: &str = "id, slug, name, description, requests_per_minute, requests_per_hour, requests_per_day,
    tokens_per_minute, max_parallel, monthly_credits, max_active_keys, allowed_models, is_public, is_default";

/// Why a plan change was refused.
#[derive(Debug)]
pub enum PlanChange {
    Changed,
    NoSuchPlan,
    TooManyActiveKeys { active: i64, allowed: i64 },
}

impl Store {
    /// Plans users may pick themselves, in display order.
    pub async fn public_plans(&self) -> Result<Vec<PlanRecord>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {PLAN_COLUMNS} FROM plans WHERE is_public = 1 AND retired_at IS NULL ORDER BY sort_order, id"
        ))
        .fetch_all(&self.writer)
        .await?)
    }

    /// Every plan that takes new users, public or private, in display order.
    pub async fn unretired_plans(&self) -> Result<Vec<PlanRecord>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {PLAN_COLUMNS} FROM plans WHERE retired_at IS NULL ORDER BY is_public DESC, sort_order, id"
        ))
        .fetch_all(&self.reader)
        .await?)
    }

    /// The plan `user_id` is on (the default plan when none is recorded), with
    /// the admin's limit overrides in place of the plan's limits.
    /// Served from the read cache when it can be.
    pub async fn plan_of_user(&self, user_id: i64) -> Result<PlanRecord, StoreError> {
        let generation = self.cache.generation();
        if let Some(plan) = self.cache.plans.get(&user_id, generation) {
            return Ok(plan);
        }
        let plan: PlanRecord = sqlx::query_as(&format!(
            "SELECT p.id, p.slug, p.name, p.description,
                COALESCE(o.requests_per_minute, p.requests_per_minute) AS requests_per_minute,
                COALESCE(o.requests_per_hour, p.requests_per_hour) AS requests_per_hour,
                COALESCE(o.requests_per_day, p.requests_per_day) AS requests_per_day,
                COALESCE(o.tokens_per_minute, p.tokens_per_minute) AS tokens_per_minute,
                COALESCE(o.max_parallel, p.max_parallel) AS max_parallel,
                p.monthly_credits, p.max_active_keys, p.allowed_models, p.is_public, p.is_default,
                COALESCE(o.requests_per_minute, o.requests_per_hour, o.requests_per_day,
                    o.tokens_per_minute, o.max_parallel) IS NOT NULL AS limits_overridden,
                p.retired_at IS NOT NULL AS retired
             FROM plans p LEFT JOIN limit_overrides o ON o.user_id = ?1
             WHERE p.id = {USER_PLAN_ID}"
        ))
        .bind(user_id)
        .fetch_one(&self.reader)
        .await?;
        self.cache.plans.put(user_id, plan.clone(), generation);
        Ok(plan)
    }

    /// Moves a user to a public, unretired plan, unless they have more active keys
    /// than it allows. The check and the change are one transaction.
    pub async fn switch_public_plan(
        &self,
        user_id: i64,
        slug: &str,
        audit: AuditEvent,
    ) -> Result<PlanChange, StoreError> {
        let mut tx = self.writer.begin().await?;
        let plan: Option<(i64, i64)> = sqlx::query_as(
            "SELECT id, max_active_keys FROM plans WHERE slug = ? AND is_public = 1 AND retired_at IS NULL",
        )
        .bind(slug)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((plan_id, allowed)) = plan else {
            return Ok(PlanChange::NoSuchPlan);
        };
        let active: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM api_keys WHERE user_id = ? AND {ACTIVE_KEY}"
        ))
        .bind(user_id)
        .fetch_one(&mut *tx)
        .await?;
        if active > allowed {
            return Ok(PlanChange::TooManyActiveKeys { active, allowed });
        }
        sqlx::query("UPDATE users SET plan_id = ?, updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') WHERE id = ?")
            .bind(plan_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        audit::insert(&mut tx, &audit).await?;
        self.commit_change(tx).await?;
        Ok(PlanChange::Changed)
    }
}

/// SQL for the plan of the user bound as `?1`: theirs, else the default plan.
pub(super) const USER_PLAN_ID: &str = "COALESCE((SELECT plan_id FROM users WHERE id = ?1), (SELECT id FROM plans WHERE is_default = 1))";

/// SQL condition for a key that can still be used (in `api_keys`).
pub(super) const ACTIVE_KEY: &str = "revoked_at IS NULL
    AND (expires_at IS NULL OR expires_at > strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    AND (usage_cap IS NULL OR usage_count < usage_cap)";

/// The outcome of an admin's plan assignment.
#[derive(Debug)]
pub enum PlanAssignment {
    Assigned(PlanRecord),
    NoSuchUser,
    NoSuchPlan,
    Retired,
}

impl Store {
    /// Puts a user on any plan, public or private, unless it is retired; with
    /// its audit event, in one transaction. Keys over the plan's limit stay
    /// active: new ones cannot be created until the user is under it.
    pub async fn assign_plan(
        &self,
        user_id: i64,
        slug: &str,
        audit: &AuditEvent,
    ) -> Result<PlanAssignment, StoreError> {
        let mut tx = self.writer.begin().await?;
        let plan: Option<PlanRecord> =
            sqlx::query_as(&format!("SELECT {PLAN_COLUMNS} FROM plans WHERE slug = ?"))
                .bind(slug)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(plan) = plan else {
            return Ok(PlanAssignment::NoSuchPlan);
        };
        let retired: Option<String> =
            sqlx::query_scalar("SELECT retired_at FROM plans WHERE id = ?")
                .bind(plan.id)
                .fetch_one(&mut *tx)
                .await?;
        if retired.is_some() {
            return Ok(PlanAssignment::Retired);
        }
        let moved =
            sqlx::query("UPDATE users SET plan_id = ? WHERE id = ? AND status != 'deleted'")
                .bind(plan.id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        if moved == 0 {
            return Ok(PlanAssignment::NoSuchUser);
        }
        audit::insert(&mut tx, audit).await?;
        self.commit_change(tx).await?;
        Ok(PlanAssignment::Assigned(plan))
    }
}

/// Limits an admin set for one user over the plan's; `None` keeps the plan's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, FromRow)]
pub struct LimitOverrides {
    pub requests_per_minute: Option<i64>,
    pub requests_per_hour: Option<i64>,
    pub requests_per_day: Option<i64>,
    pub tokens_per_minute: Option<i64>,
    pub max_parallel: Option<i64>,
}

impl LimitOverrides {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

impl Store {
    /// The overrides set for a user (all `None` when there are none).
    pub async fn limit_overrides(&self, user_id: i64) -> Result<LimitOverrides, StoreError> {
        Ok(sqlx::query_as(
            "SELECT requests_per_minute, requests_per_hour, requests_per_day, tokens_per_minute, max_parallel
             FROM limit_overrides WHERE user_id = ?",
        )
        .bind(user_id)
        .fetch_optional(&self.reader)
        .await?
        .unwrap_or_default())
    }

    /// Replaces a user's overrides (all `None` removes them) with its audit
    /// event, in one transaction; `false` when there is no such user.
    pub async fn set_limit_overrides(
        &self,
        user_id: i64,
        overrides: &LimitOverrides,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await?;
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT id FROM users WHERE id = ? AND status != 'deleted'")
                .bind(user_id)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            return Ok(false);
        }
        if overrides.is_empty() {
            sqlx::query("DELETE FROM limit_overrides WHERE user_id = ?")
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query(
                "INSERT INTO limit_overrides
                    (user_id, requests_per_minute, requests_per_hour, requests_per_day, tokens_per_minute, max_parallel)
                 VALUES (?, ?, ?, ?, ?, ?)
                 ON CONFLICT (user_id) DO UPDATE SET
                    requests_per_minute = excluded.requests_per_minute,
                    requests_per_hour = excluded.requests_per_hour,
                    requests_per_day = excluded.requests_per_day,
                    tokens_per_minute = excluded.tokens_per_minute,
                    max_parallel = excluded.max_parallel,
                    updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            )
            .bind(user_id)
            .bind(overrides.requests_per_minute)
            .bind(overrides.requests_per_hour)
            .bind(overrides.requests_per_day)
            .bind(overrides.tokens_per_minute)
            .bind(overrides.max_parallel)
            .execute(&mut *tx)
            .await?;
        }
        audit::insert(&mut tx, audit).await?;
        self.commit_change(tx).await?;
        Ok(true)
    }
}

/// What an admin sets on a plan; the slug is fixed once created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanSettings {
    pub name: String,
    pub description: String,
    pub requests_per_minute: i64,
    pub requests_per_hour: i64,
    pub requests_per_day: i64,
    pub tokens_per_minute: Option<i64>,
    pub max_parallel: Option<i64>,
    pub monthly_credits: i64,
    pub max_active_keys: i64,
    /// `None` allows every model.
    pub allowed_models: Option<Vec<String>>,
    pub is_public: bool,
    /// `None`: after every other plan.
    pub sort_order: Option<i64>,
}

/// A plan as the admin pages list it.
#[derive(Debug, Clone, FromRow)]
pub struct PlanSummary {
    #[sqlx(flatten)]
    pub plan: PlanRecord,
    pub sort_order: i64,
    pub retired_at: Option<String>,
    /// Accounts on it now (deleted ones aside).
    pub users: i64,
}

const PLAN_SUMMARY: &str = "SELECT id, slug, name, description, requests_per_minute, requests_per_hour,
    requests_per_day, tokens_per_minute, max_parallel, monthly_credits, max_active_keys, allowed_models,
    is_public, is_default, sort_order, retired_at,
    (SELECT COUNT(*) FROM users u WHERE u.status != 'deleted'
        AND (u.plan_id = plans.id OR (u.plan_id IS NULL AND plans.is_default = 1))) AS users
    FROM plans";

/// The outcome of retiring or restoring a plan.
#[derive(Debug, PartialEq, Eq)]
pub enum Retirement {
    Done,
    NoSuchPlan,
    /// New accounts get the default plan, so it cannot be retired.
    IsDefault,
}

fn models_json(models: &Option<Vec<String>>) -> Option<String> {
    models
        .as_ref()
        .map(|m| serde_json::Value::from(m.clone()).to_string())
}

type PlanQuery<'q> = sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

/// Binds a plan's settings in the order both the insert and the update list
/// them (name to sort_order).
fn bind_settings<'q>(query: PlanQuery<'q>, s: &'q PlanSettings) -> PlanQuery<'q> {
    query
        .bind(&s.name)
        .bind(&s.description)
        .bind(s.requests_per_minute)
        .bind(s.requests_per_hour)
        .bind(s.requests_per_day)
        .bind(s.tokens_per_minute)
        .bind(s.max_parallel)
        .bind(s.monthly_credits)
        .bind(s.max_active_keys)
        .bind(models_json(&s.allowed_models))
        .bind(s.is_public)
        .bind(s.sort_order)
}

impl Store {
    /// Every plan, retired ones last, with how many accounts are on each.
    pub async fn plans_for_admin(&self) -> Result<Vec<PlanSummary>, StoreError> {
        Ok(sqlx::query_as(&format!(
            "{PLAN_SUMMARY} ORDER BY retired_at IS NOT NULL, sort_order, id"
        ))
        .fetch_all(&self.writer)
        .await?)
    }

    pub async fn plan_by_slug(&self, slug: &str) -> Result<Option<PlanSummary>, StoreError> {
        Ok(sqlx::query_as(&format!("{PLAN_SUMMARY} WHERE slug = ?"))
            .bind(slug)
            .fetch_optional(&self.writer)
            .await?)
    }

    /// Adds a plan; [`StoreError::Duplicate`] when the slug is taken.
    pub async fn create_plan(
        &self,
        slug: &str,
        settings: &PlanSettings,
        audit: &AuditEvent,
    ) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        bind_settings(
            sqlx::query(
                "INSERT INTO plans (name, description, requests_per_minute, requests_per_hour,
                    requests_per_day, tokens_per_minute, max_parallel, monthly_credits, max_active_keys,
                    allowed_models, is_public, sort_order, slug)
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,
                    COALESCE(?, (SELECT COALESCE(MAX(sort_order) + 1, 0) FROM plans)), ?)",
            ),
            settings,
        )
        .bind(slug)
        .execute(&mut *tx)
        .await
        .map_err(|e| {
            if super::users::unique_violation(&e) {
                StoreError::Duplicate("id")
            } else {
                e.into()
            }
        })?;
        audit::insert(&mut tx, audit).await?;
        self.commit_change(tx).await
    }

    /// Changes a plan's settings (its users get them from their next request);
    /// `false` when there is no such plan.
    pub async fn update_plan(
        &self,
        slug: &str,
        settings: &PlanSettings,
        audit: &AuditEvent,
    ) -> Result<bool, StoreError> {
        let mut tx = self.writer.begin().await?;
        let changed = bind_settings(
            sqlx::query(
                "UPDATE plans SET name = ?, description = ?, requests_per_minute = ?, requests_per_hour = ?,
                    requests_per_day = ?, tokens_per_minute = ?, max_parallel = ?, monthly_credits = ?,
                    max_active_keys = ?, allowed_models = ?, is_public = ?,
                    sort_order = COALESCE(?, (SELECT COALESCE(MAX(others.sort_order) + 1, 0)
                        FROM plans AS others WHERE others.slug <> plans.slug))
                 WHERE slug = ?",
            ),
            settings,
        )
        .bind(slug)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 0 {
            return Ok(false);
        }
        audit::insert(&mut tx, audit).await?;
        self.commit_change(tx).await?;
        Ok(true)
    }

    /// Retires a plan (it takes no new users; its users stay until moved) or,
    /// with `retire` false, takes it back into use.
    pub async fn set_plan_retired(
        &self,
        slug: &str,
        retire: bool,
        audit: &AuditEvent,
    ) -> Result<Retirement, StoreError> {
        let mut tx = self.writer.begin().await?;
        let plan: Option<bool> = sqlx::query_scalar("SELECT is_default FROM plans WHERE slug = ?")
            .bind(slug)
            .fetch_optional(&mut *tx)
            .await?;
        match plan {
            None => return Ok(Retirement::NoSuchPlan),
            Some(true) if retire => return Ok(Retirement::IsDefault),
            Some(_) => {}
        }
        sqlx::query(
            "UPDATE plans SET retired_at = CASE WHEN ?1
                THEN COALESCE(retired_at, strftime('%Y-%m-%dT%H:%M:%fZ', 'now')) END
             WHERE slug = ?2",
        )
        .bind(retire)
        .bind(slug)
        .execute(&mut *tx)
        .await?;
        audit::insert(&mut tx, audit).await?;
        self.commit_change(tx).await?;
        Ok(Retirement::Done)
    }
}
