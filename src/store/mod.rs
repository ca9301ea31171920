//! The database: connection pool, migrations, and every SQL statement the app runs.
//!
//! SQLite is the embedded default. All SQL lives in this module (and its
//! submodules) so a PostgreSQL store can follow without touching callers.

use std::{str::FromStr, time::Duration};

mod audit;
mod cache;
mod credits;
mod gateway;
mod keys;
mod monitor;
mod pending;
mod plans;
mod sessions;
mod usage;
mod users;

pub use audit::{AuditActor, AuditEvent, AuditFilter, AuditRecord};
pub use credits::UserBalance;
pub use gateway::{LeftTaken, StoredAccount, Window};
pub use keys::{
    CREATIONS_PER_DAY, KeyCreation, KeyRecord, KeySettings, KeyUpdate, NewKey, NewSecret,
};
pub use monitor::{ModelLatency, NamedCount, Rank, RefusalGroup, RefusalKind, TopEntry};
pub use pending::{
    Batch, CappedUseEnd, HoldRow, LedgerRow, RefusalRow, UsageRow, WindowCounts, WindowId,
    set_window_count, uncancelled,
};
pub use plans::{
    LimitOverrides, PlanAssignment, PlanChange, PlanRecord, PlanSettings, PlanSummary, Retirement,
};
pub use sessions::SessionRows;
pub use usage::{CallRecord, DayUsage, ExportedCall, GroupUsage};
pub use users::{NewUser, StatusChange, UserRecord, UserStatus};

use sqlx::{
    SqlitePool,
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

/// SQL for the sum of a micro-credit `column`, exact within i64 and capped
/// at its largest value beyond: SQLite's `SUM` fails on an overflow, which
/// would fail the usage page and the monitor for good once an account's
/// charges had passed nine trillion credits. Whole credits and the rest are
/// summed apart, neither near i64's range for any balance Tollgate allows;
/// their combination, if too large, becomes a real number that the cast caps.
pub(crate) fn sum_of_credits(column: &str) -> String {
    format!(
        "CAST(COALESCE(SUM({column} / 1000000), 0) * 1000000
              + COALESCE(SUM({column} % 1000000), 0) AS INTEGER)"
    )
}

/// A time in the form the database stores (`2026-11-22T09:30:00.000Z`, as
/// SQLite's `strftime('%Y-%m-%dT%H:%M:%fZ')`), so stored times compare as text.
pub fn stored_time(t: chrono::DateTime<chrono::Utc>) -> String {
    // The same text as `%Y-%m-%dT%H:%M:%S%.3fZ`, without parsing a format
    // string on every gateway call.
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

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
    pending: pending::SharedPending,
    cache: std::sync::Arc<cache::ReadCache>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the database directory (DATABASE_URL) {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot open the database (DATABASE_URL): {0}")]
    Open(#[source] sqlx::Error),
    #[error(
        "cannot write to the database (DATABASE_URL) {path}: {source} (the file, its -wal and \
         -shm files and their directory must be writable by the user the server runs as)"
    )]
    NotWritable { path: String, source: sqlx::Error },
    #[error("cannot apply the database migrations (DATABASE_URL): {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("a record with that {0} already exists")]
    Duplicate(&'static str),
    #[error(transparent)]
    Query(#[from] sqlx::Error),
    #[error("the task writing queued records failed: {0}")]
    Background(String),
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

        let in_memory = is_in_memory(database_url);
        let path = options.get_filename();
        if !in_memory {
            create_private(path).map_err(|source| StoreError::CreateDir {
                path: path.display().to_string(),
                source,
            })?;
        }

        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(StoreError::Open)?;
        sqlx::migrate!("./migrations").run(&writer).await?;
        // A file this process may read but not write opens, and migrates
        // when there is nothing to migrate: said here, naming the setting,
        // rather than by the first write. (A write that changes nothing.)
        sqlx::query("UPDATE instance SET id = id WHERE 0")
            .execute(&writer)
            .await
            .map_err(|source| StoreError::NotWritable {
                path: path.display().to_string(),
                source,
            })?;
        // An in-memory database exists only on its own connection.
        let reader = if in_memory {
            writer.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options.read_only(true))
                .await
                .map_err(StoreError::Open)?
        };
        Ok(Self {
            writer,
            reader,
            pending: Default::default(),
            cache: Default::default(),
        })
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

    /// The file `database_url` names; `None` for an in-memory database.
    pub fn database_file(database_url: &str) -> Option<std::path::PathBuf> {
        if is_in_memory(database_url) {
            return None;
        }
        let options = SqliteConnectOptions::from_str(database_url).ok()?;
        Some(options.get_filename().to_owned())
    }

    /// The lock file a server holds while it runs on the database file
    /// `database_url` names; `None` for an in-memory database.
    pub fn lock_path(database_url: &str) -> Option<std::path::PathBuf> {
        if is_in_memory(database_url) {
            return None;
        }
        let options = SqliteConnectOptions::from_str(database_url).ok()?;
        // Beside the file itself, so a second name for it (a symbolic link)
        // finds the same lock.
        let file = options.get_filename();
        let file = std::fs::canonicalize(file).unwrap_or_else(|_| file.to_owned());
        let mut name = file.into_os_string();
        name.push(".lock");
        Some(name.into())
    }

    /// Commits a change to users, keys or plans and drops the read cache.
    async fn commit_change(
        &self,
        tx: sqlx::Transaction<'_, sqlx::Sqlite>,
    ) -> Result<(), StoreError> {
        tx.commit().await?;
        self.cache.changed();
        Ok(())
    }

    /// Drops the read cache, for a change made to the database from outside
    /// the store (tests that edit rows directly).
    pub fn forget_cached(&self) {
        self.cache.changed();
    }

    /// The writer, for the session store (which keeps its own table).
    pub fn pool(&self) -> &SqlitePool {
        &self.writer
    }

    /// Writes what is queued, then closes the pools, waiting for connections
    /// to be returned.
    pub async fn close(&self) {
        // A few tries: what is not written now is lost with the process.
        for attempt in 1..=3 {
            let Err(error) = self.flush().await else {
                break;
            };
            tracing::error!(%error, attempt, "could not write the queued gateway records on shutdown");
            if attempt < 3 {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        }
        self.reader.close().await;
        self.writer.close().await;
    }
}

/// Makes a new database file readable by its owner only, and its directory
/// when missing: the file holds password hashes and live session ids.
/// SQLite gives the `-wal` and `-shm` files the database file's mode. An
/// existing file keeps the mode its operator gave it.
fn create_private(path: &std::path::Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        create_private_dir(dir)?;
    }
    let mut file = std::fs::OpenOptions::new();
    file.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
    match file.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}

/// Creates `dir` and any missing parents, for their owner alone (the data
/// and log directories: the database, the key secret, logs that name
/// accounts). A directory that exists keeps its mode.
pub fn create_private_dir(dir: &std::path::Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Whether `database_url` names an in-memory database: sqlx gives
/// `sqlite::memory:` a shared-cache file name of its own, so the file name
/// cannot tell.
fn is_in_memory(database_url: &str) -> bool {
    database_url.contains(":memory:") || database_url.contains("mode=memory")
}

/// What unit tests elsewhere in the crate set up in a store.
#[cfg(test)]
pub(crate) mod testing {
    use super::Store;

    /// Inserts a user on the default plan; returns their id.
    pub async fn user_on_default_plan(store: &Store, email: &str) -> i64 {
        sqlx::query_scalar(
            "INSERT INTO users (email, display_name, password_hash, plan_id)
             VALUES (?, 'A', 'x', (SELECT id FROM plans WHERE is_default = 1))
             RETURNING id",
        )
        .bind(email)
        .fetch_one(store.pool())
        .await
        .unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::Store;

    /// A new database, its WAL and its new directory are its owner's alone.
    #[cfg(unix)]
    #[tokio::test]
    async fn a_new_database_is_readable_by_its_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("data/t.db");
        let store = Store::open(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        store.ping().await.unwrap();
        let mode =
            |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("data")), 0o700);
        assert_eq!(mode(&db), 0o600);
        assert_eq!(mode(&dir.path().join("data/t.db-wal")), 0o600);
    }

    /// What is queued at shutdown is tried more than once: a database that
    /// refuses the first write (here a ledger row for a user made a moment
    /// later, by another connection) still gets the rows.
    #[tokio::test]
    async fn the_shutdowns_last_write_is_tried_again() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::open(&url).await.unwrap();
        store.queue(|batch| {
            batch.ledger(super::LedgerRow {
                user_id: 4242,
                kind: "grant",
                amount_micros: 7,
                request_id: None,
                note: String::new(),
                created_at: String::new(),
            });
        });
        let other = sqlx::SqlitePool::connect(&url).await.unwrap();
        let late_user = async {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            sqlx::query(
                "INSERT INTO users (id, email, display_name, password_hash, plan_id)
                 VALUES (4242, 'late@example.com', 'L', 'x', (SELECT id FROM plans WHERE is_default = 1))",
            )
            .execute(&other)
            .await
            .unwrap();
        };
        tokio::join!(store.close(), late_user);
        let written: (i64, i64) = sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM credit_ledger WHERE user_id = 4242),
                    (SELECT balance_micros FROM users WHERE id = 4242)",
        )
        .fetch_one(&other)
        .await
        .unwrap();
        assert_eq!(written, (1, 7));
    }

    /// An in-memory database exists only on its connection: its readers are
    /// its writer, and it has no file to lock.
    #[tokio::test]
    async fn an_in_memory_database_reads_on_its_writer() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        // A read-only connection of its own would refuse this.
        sqlx::query("CREATE TABLE t (x)")
            .execute(&store.reader)
            .await
            .unwrap();
        assert_eq!(Store::lock_path("sqlite::memory:"), None);
        assert_eq!(Store::lock_path("sqlite://file:x?mode=memory"), None);
        assert_eq!(
            Store::lock_path("sqlite://data/t.db"),
            Some("data/t.db.lock".into())
        );
    }

    #[test]
    fn stored_times_match_sqlite() {
        let t: chrono::DateTime<chrono::Utc> = "2026-11-22T09:30:05Z".parse().unwrap();
        assert_eq!(super::stored_time(t), "2026-11-22T09:30:05.000Z");
        let t = t + chrono::Duration::milliseconds(7);
        assert_eq!(super::stored_time(t), "2026-11-22T09:30:05.007Z");
    }

    /// Every file in `migrations/` is in the binary. `sqlx::migrate!` embeds
    /// the directory as it was when the crate compiled, and a new file alone
    /// does not make Cargo compile it again without `src/build.rs`.
    #[test]
    fn every_migration_file_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut on_disk: Vec<i64> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".sql"))
            .map(|name| {
                let version = name.split_once('_').map_or("", |(version, _)| version);
                version
                    .parse()
                    .unwrap_or_else(|_| panic!("{name}: no version"))
            })
            .collect();
        on_disk.sort_unstable();
        let embedded: Vec<i64> = sqlx::migrate!("./migrations")
            .iter()
            .map(|m| m.version)
            .collect();
        assert!(!embedded.is_empty());
        assert_eq!(embedded, on_disk);
    }

    /// A database in memory migrated up to, not including, `version`; and
    /// every migration, to run next.
    async fn migrated_before(version: i64) -> (sqlx::SqlitePool, sqlx::migrate::Migrator) {
        let all = sqlx::migrate!("./migrations");
        let before = sqlx::migrate::Migrator {
            migrations: all
                .iter()
                .filter(|m| m.version < version)
                .cloned()
                .collect(),
            ..sqlx::migrate::Migrator::DEFAULT
        };
        // One connection: each connection to `:memory:` is its own database.
        let db = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        before.run(&db).await.unwrap();
        (db, all)
    }

    /// The migration that rebuilds the ledger for its cheaper kind check keeps
    /// every row as it was, and the check still refuses an unknown kind.
    #[tokio::test]
    async fn the_ledger_rebuild_keeps_its_rows_and_its_check() {
        let (db, all) = migrated_before(20261203000000).await;
        sqlx::query("INSERT INTO users (email, display_name, password_hash) VALUES ('a@example.com', 'A', 'x')")
            .execute(&db)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO credit_ledger (id, user_id, kind, amount_micros, request_id, note, created_at)
             VALUES (7, 1, 'grant', 5000000, NULL, 'signup', '2026-11-30T10:00:00.000Z'),
                    (9, 1, 'reserve', -120, 'req-1', 'hold', '2026-11-30T10:00:01.000Z')",
        )
        .execute(&db)
        .await
        .unwrap();
        let rows = "SELECT id, user_id, kind, amount_micros, request_id, note, created_at FROM credit_ledger ORDER BY id";
        type Row = (i64, i64, String, i64, Option<String>, String, String);
        let old: Vec<Row> = sqlx::query_as(rows).fetch_all(&db).await.unwrap();

        all.run(&db).await.unwrap();
        let new: Vec<Row> = sqlx::query_as(rows).fetch_all(&db).await.unwrap();
        assert_eq!(new, old);
        let unknown = sqlx::query(
            "INSERT INTO credit_ledger (user_id, kind, amount_micros) VALUES (1, 'gift', 1)",
        )
        .execute(&db)
        .await;
        assert!(unknown.is_err(), "an unknown kind was stored");
        for kind in ["grant", "reserve", "refund", "settle", "adjust"] {
            sqlx::query(
                "INSERT INTO credit_ledger (user_id, kind, amount_micros) VALUES (1, ?, 0)",
            )
            .bind(kind)
            .execute(&db)
            .await
            .unwrap();
        }
        let next: i64 = sqlx::query_scalar("SELECT max(id) FROM credit_ledger")
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(next, 14, "ids carry on after the copied rows");

        // What the rebuild is for: no temporary index built for each row.
        let plan: Vec<String> = sqlx::query(
            "EXPLAIN INSERT INTO credit_ledger (user_id, kind, amount_micros) VALUES (1, 'grant', 1)",
        )
        .fetch_all(&db)
        .await
        .unwrap()
        .iter()
        .map(|row| sqlx::Row::get(row, "opcode"))
        .collect();
        assert!(
            !plan.is_empty() && !plan.iter().any(|op| op == "OpenEphemeral"),
            "{plan:?}"
        );
    }

    /// Holds a killed process left before the in-flight uses table keep
    /// their credits, and a one-time key's use they carried becomes a use in
    /// flight, which the next start gives back.
    #[tokio::test]
    async fn capped_uses_on_holds_left_open_move_to_the_uses_in_flight() {
        let (db, all) = migrated_before(20261205000000).await;
        for sql in [
            "INSERT INTO users (email, display_name, password_hash) VALUES ('a@example.com', 'A', 'x')",
            "INSERT INTO api_keys (user_id, name, env, secret_hash, display_prefix, last_four, scopes, usage_cap, usage_count)
             VALUES (1, 'once', 'live', x'00', 'tg_live_', 'abcd', '[\"chat\"]', 1, 1)",
            "INSERT INTO open_holds (id, user_id, amount_micros, capped_key_id) VALUES (3, 1, 700, 1), (4, 1, 0, NULL)",
        ] {
            sqlx::query(sql).execute(&db).await.unwrap();
        }
        all.run(&db).await.unwrap();
        let holds: Vec<(i64, i64, i64)> =
            sqlx::query_as("SELECT id, user_id, amount_micros FROM open_holds ORDER BY id")
                .fetch_all(&db)
                .await
                .unwrap();
        assert_eq!(holds, [(3, 1, 700), (4, 1, 0)]);
        let in_flight: Vec<i64> = sqlx::query_scalar("SELECT key_id FROM capped_uses_in_flight")
            .fetch_all(&db)
            .await
            .unwrap();
        assert_eq!(in_flight, [1]);
    }
}
