//! Where dashboard sessions are kept: tower-sessions-sqlx-store's SQLite
//! store, except that saving a session only updates its row. The store's own
//! save inserts a row that is missing, so a request still running when its
//! session ended (a sign-out in another tab) wrote the ended session back
//! when it saved the session's new expiry, and the sign-out was undone.

use async_trait::async_trait;
use sqlx::SqlitePool;
use tower_sessions::{
    ExpiredDeletion, SessionStore,
    session::{Id, Record},
    session_store::{Error, Result},
};
use tower_sessions_sqlx_store::SqliteStore;

#[derive(Debug, Clone)]
pub struct SessionRows {
    rows: SqliteStore,
    pool: SqlitePool,
}

impl SessionRows {
    /// The sessions table in the database `pool` writes to, created when
    /// missing.
    pub async fn open(pool: SqlitePool) -> std::result::Result<Self, sqlx::Error> {
        let rows = SqliteStore::new(pool.clone());
        rows.migrate().await?;
        Ok(Self { rows, pool })
    }
}

#[async_trait]
impl SessionStore for SessionRows {
    async fn create(&self, record: &mut Record) -> Result<()> {
        self.rows.create(record).await
    }

    /// Updates the session's row; one deleted meanwhile stays deleted.
    async fn save(&self, record: &Record) -> Result<()> {
        let data = rmp_serde::to_vec(record).map_err(|e| Error::Encode(e.to_string()))?;
        sqlx::query("UPDATE tower_sessions SET data = ?, expiry_date = ? WHERE id = ?")
            .bind(data)
            .bind(record.expiry_date)
            .bind(record.id.to_string())
            .execute(&self.pool)
            .await
            .map_err(|e| Error::Backend(e.to_string()))?;
        Ok(())
    }

    async fn load(&self, session_id: &Id) -> Result<Option<Record>> {
        self.rows.load(session_id).await
    }

    async fn delete(&self, session_id: &Id) -> Result<()> {
        self.rows.delete(session_id).await
    }
}

#[async_trait]
impl ExpiredDeletion for SessionRows {
    async fn delete_expired(&self) -> Result<()> {
        self.rows.delete_expired().await
    }
}

#[cfg(test)]
mod tests {
    use tower_sessions::{
        SessionStore,
        cookie::time::{Duration, OffsetDateTime},
        session::{Id, Record},
    };

    use super::SessionRows;
    use crate::store::Store;

    #[tokio::test]
    async fn saving_a_session_deleted_meanwhile_does_not_bring_it_back() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let rows = SessionRows::open(store.pool().clone()).await.unwrap();
        let mut record = Record {
            id: Id::default(),
            data: Default::default(),
            expiry_date: OffsetDateTime::now_utc() + Duration::hours(1),
        };
        rows.create(&mut record).await.unwrap();
        // A save moves a live session's expiry on.
        record.expiry_date += Duration::hours(1);
        rows.save(&record).await.unwrap();
        let loaded = rows.load(&record.id).await.unwrap().unwrap();
        assert_eq!(loaded.expiry_date, record.expiry_date);
        // A sign-out deletes it; a request that loaded it before saves it after.
        rows.delete(&record.id).await.unwrap();
        rows.save(&record).await.unwrap();
        assert!(rows.load(&record.id).await.unwrap().is_none());
    }
}
