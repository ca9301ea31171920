//! The append-only audit trail (the table's triggers refuse updates and deletes).

use serde_json::Value;
use sqlx::SqliteConnection;

use super::{Store, StoreError};
use crate::request_meta::RequestMeta;

/// One security-relevant event: who did what to what, from where.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    pub actor_user_id: Option<i64>,
    pub action: &'static str,
    pub target: Option<String>,
    pub client_ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub details: Value,
}

impl AuditEvent {
    pub fn new(action: &'static str, meta: &RequestMeta) -> Self {
        Self {
            actor_user_id: None,
            action,
            target: None,
            client_ip: meta.client_ip.map(|ip| ip.to_string()),
            user_agent: meta.user_agent.clone(),
            request_id: meta.request_id.clone(),
            details: Value::Object(Default::default()),
        }
    }

    pub fn actor(mut self, user_id: i64) -> Self {
        self.actor_user_id = Some(user_id);
        self
    }

    pub fn target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into());
        self
    }

    pub fn details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

/// Writes `event` on `conn`, so callers can make it part of their transaction.
pub(super) async fn insert(
    conn: &mut SqliteConnection,
    event: &AuditEvent,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO audit_events (actor_user_id, action, target, client_ip, user_agent, request_id, details)
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(event.actor_user_id)
    .bind(event.action)
    .bind(&event.target)
    .bind(&event.client_ip)
    .bind(&event.user_agent)
    .bind(&event.request_id)
    .bind(event.details.to_string())
    .execute(conn)
    .await?;
    Ok(())
}

impl Store {
    /// Records an event that accompanies no other write (a failed login, a logout).
    pub async fn record_audit(&self, event: &AuditEvent) -> Result<(), StoreError> {
        let mut conn = self.writer.acquire().await?;
        insert(&mut conn, event).await
    }
}
