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
}

impl PlanRecord {
    pub fn allowed_models(&self) -> Option<Vec<String>> {
        self.allowed_models
            .as_deref()
            .and_then(|json| serde_json::from_str(json).ok())
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

    /// The plan `user_id` is on (the default plan when none is recorded).
    pub async fn plan_of_user(&self, user_id: i64) -> Result<PlanRecord, StoreError> {
        Ok(sqlx::query_as(&format!(
            "SELECT {PLAN_COLUMNS} FROM plans
             WHERE id = COALESCE((SELECT plan_id FROM users WHERE id = ?), (SELECT id FROM plans WHERE is_default = 1))"
        ))
        .bind(user_id)
        .fetch_one(&self.reader)
        .await?)
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
        tx.commit().await?;
        Ok(PlanChange::Changed)
    }
}

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
        tx.commit().await?;
        Ok(PlanAssignment::Assigned(plan))
    }
}
