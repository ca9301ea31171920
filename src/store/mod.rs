//! The database: connection pool, migrations, and every SQL statement the app runs.
//!
//! SQLite is the embedded default. All SQL lives in this module (and its
//! submodules) so a PostgreSQL store can follow without touching callers.

use std::{str::FromStr, time::Duration};

mod audit;
mod credits;
mod gateway;
mod keys;
mod plans;
mod users;

pub use audit::{AuditEvent, AuditFilter, AuditRecord};
pub use credits::{Balance, UserBalance};
pub use gateway::{Admission, Admitted, Refused, Settlement, Window, WindowCheck};
pub use keys::{CREATIONS_PER_DAY, KeyCreation, KeyRecord, KeySettings, NewKey, NewSecret};
pub use plans::{PlanAssignment, PlanChange, PlanRecord};
pub use users::{NewUser, UserRecord, UserStatus};

use sqlx::{
    SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

/// A handle to the database; cheap to clone.
///
/// SQLite lets one connection write at a time. Every statement goes through
/// `writer`, a single connection, so concurrent writers wait their turn in the
/// pool's queue rather than in SQLite's busy handler, which sleeps for
/// milliseconds between retries. Reads on the gateway's hot path use `reader`,
/// read-only connections that WAL lets run beside the writer.
#[derive(Clone, Debug)]
pub struct Store {
    writer: SqlitePool,
    reader: SqlitePool,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the database directory {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open the database: {0}")]
    Open(#[source] sqlx::Error),
    #[error("cannot apply database migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("a record with that {0} already exists")]
    Duplicate(&'static str),
    #[error(transparent)]
    Query(#[from] sqlx::Error),
}

impl Store {
    /// Opens (creating when absent) the database and applies pending migrations.
    pub async fn open(database_url: &str) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(database_url)
            .map_err(StoreError::Open)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));

        let path = options.get_filename();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && path.as_os_str() != ":memory:"
        {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                path: dir.display().to_string(),
                source,
            })?;
        }

        let in_memory = path.as_os_str() == ":memory:";
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(StoreError::Open)?;
        sqlx::migrate!("./migrations").run(&writer).await?;
        // An in-memory database exists only on its own connection.
        let reader = if in_memory {
            writer.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(8)
                .connect_with(options.read_only(true))
                .await
                .map_err(StoreError::Open)?
        };
        Ok(Self { writer, reader })
    }

    /// Answers whether the database serves queries, for `/readyz`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM instance")
            .fetch_one(&self.reader)
            .await?;
        Ok(())
    }

    /// The directory the database file lives in (for files that belong beside it).
    pub fn data_dir(database_url: &str) -> Option<std::path::PathBuf> {
        let options = SqliteConnectOptions::from_str(database_url).ok()?;
        let path = options.get_filename();
        Some(
            path.parent()
                .map(std::path::Path::to_path_buf)
                .unwrap_or_default(),
        )
    }

    /// The writer, for the session store (which keeps its own table).
    pub fn pool(&self) -> &SqlitePool {
        &self.writer
    }

    /// Closes the pools, waiting for connections to be returned.
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}
