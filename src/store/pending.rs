//! The gateway's write-behind queue. The gateway keeps balances and windows in
//! memory (`gateway::accounts`) and queues here what must reach the database:
//! ledger rows, usage records, refused calls, window counts, key use, the
//! credit holds of calls still running, the end of capped keys' uses in
//! flight, and the audit events that belong with
//! them. A batch is written in one transaction by a background task every few
//! milliseconds, on shutdown, and before any read of those tables (so
//! the app always reads what it wrote), but for a window's count: the live
//! one in memory is the count, and the stored one is read only to load it.
//! A failed batch goes back on the queue.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use foldhash::{HashMap, HashMapExt};

use super::{AuditEvent, Store, StoreError, Window, audit};

/// A ledger row waiting to be written; its amount is already in the balance
/// the gateway holds in memory.
#[derive(Debug, Clone)]
pub struct LedgerRow {
    pub user_id: i64,
    pub kind: &'static str,
    pub amount_micros: i64,
    pub request_id: Option<String>,
    pub note: String,
    pub created_at: String,
}

/// One gateway call's usage record.
#[derive(Debug, Clone)]
pub struct UsageRow {
    pub request_id: Option<String>,
    pub user_id: i64,
    pub key_id: Option<i64>,
    pub model: String,
    pub stream: bool,
    pub status: u16,
    pub error_code: Option<String>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cost_micros: i64,
    pub latency_ms: i64,
    pub upstream_ms: Option<i64>,
    pub client_ip: Option<String>,
    pub created_at: String,
}

/// A model API call refused before admission, for the monitor and security
/// pages. Refusals alike within a minute are written as one row with their
/// count.
#[derive(Debug, Clone)]
pub struct RefusalRow {
    pub status: u16,
    pub code: String,
    pub client_ip: Option<String>,
    /// As displayed (prefix…last four), never the secret.
    pub api_key: Option<String>,
    pub referrer: Option<String>,
    pub created_at: String,
}

/// A call's credit hold until it is settled: in memory (`gateway::accounts`),
/// and in `open_holds` so that a start after a crash can give it back.
#[derive(Debug, Clone, Copy)]
pub struct HoldRow {
    pub user_id: i64,
    pub amount_micros: i64,
}

/// How a capped key's use in flight (`Store::take_capped_use`) ends when a
/// batch ends it: with the settlement of the call that took it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CappedUseEnd {
    /// The upstream answered the call: the use stays counted.
    Kept,
    /// Given back: the server stopped the call before the upstream answered.
    Returned,
}

/// What makes refusals alike: minute, status, code, address, key and
/// referrer ('' for none, as the table keeps them).
type RefusalId = (String, u16, String, String, String, String);

/// How many refusals alike, and the last one's time.
#[derive(Debug, Clone)]
struct RefusalCount {
    count: i64,
    last_at: String,
}

/// Refusals by what makes them alike. Std's SipHash, as for the windows:
/// callers choose the addresses.
type RefusalCounts = std::collections::HashMap<RefusalId, RefusalCount>;

/// Adds `count` refusals alike, the last at `last_at`.
fn add_refusals(refusals: &mut RefusalCounts, id: RefusalId, count: i64, last_at: String) {
    let entry = refusals.entry(id).or_insert_with(|| RefusalCount {
        count: 0,
        last_at: String::new(),
    });
    entry.count += count;
    if entry.last_at < last_at {
        entry.last_at = last_at;
    }
}

/// A window's subject (`user:<id>` or `ip:<address>`), kind and bucket.
pub type WindowId = (String, Window, String);

/// Counts by window. The subjects hold client addresses, which a caller
/// chooses (an IPv6 caller may own thousands of /64 blocks), so the map hashes
/// with std's SipHash under a per-map random key: foldhash, used elsewhere,
/// is not meant for keys an attacker picks to collide.
pub type WindowCounts = std::collections::HashMap<WindowId, i64>;

/// Sets a window's count in `windows`, copying its id only the first time.
pub fn set_window_count(windows: &mut WindowCounts, id: &WindowId, count: i64) {
    match windows.get_mut(id) {
        Some(current) => *current = count,
        None => {
            windows.insert(id.clone(), count);
        }
    }
}

#[derive(Debug, Clone, Default)]
struct KeyUse {
    /// Uses of a key without a cap not yet counted in `api_keys.usage_count`.
    uses: i64,
    last_used_at: String,
}

/// What is waiting to be written.
#[derive(Debug, Default)]
pub struct Batch {
    ledger: Vec<LedgerRow>,
    usage: Vec<UsageRow>,
    refusals: RefusalCounts,
    /// Absolute counts: the latest wins.
    windows: WindowCounts,
    keys: HashMap<i64, KeyUse>,
    /// Holds taken since the last batch and not yet released, by number,
    /// with their call's request id.
    holds_opened: HashMap<u64, (HoldRow, Option<String>)>,
    /// Holds released whose rows went in an earlier batch.
    holds_closed: Vec<u64>,
    /// Capped keys' uses in flight that end, by number.
    capped_uses_ended: Vec<(i64, CappedUseEnd)>,
    audit: Vec<AuditEvent>,
}

impl Batch {
    pub fn ledger(&mut self, row: LedgerRow) {
        self.ledger.push(row);
    }

    pub fn usage(&mut self, row: UsageRow) {
        self.usage.push(row);
    }

    pub fn refusal(&mut self, row: RefusalRow) {
        let minute = row.created_at.chars().take(16).collect();
        let id = (
            minute,
            row.status,
            row.code,
            row.client_ip.unwrap_or_default(),
            row.api_key.unwrap_or_default(),
            row.referrer.unwrap_or_default(),
        );
        add_refusals(&mut self.refusals, id, 1, row.created_at);
    }

    pub fn window(&mut self, id: &WindowId, count: i64) {
        set_window_count(&mut self.windows, id, count);
    }

    /// A key was presented and accepted at `at`: its last use.
    pub fn key_touched(&mut self, key_id: i64, at: &str) {
        let entry = self.keys.entry(key_id).or_default();
        if entry.last_used_at.as_str() < at {
            entry.last_used_at = at.to_owned();
        }
    }

    /// One more use of an uncapped key (capped keys are counted in the
    /// database at once, as their cap must be exact).
    pub fn key_counted(&mut self, key_id: i64) {
        self.keys.entry(key_id).or_default().uses += 1;
    }

    /// A capped key's use in flight ends with this batch.
    pub fn capped_use_ended(&mut self, use_id: i64, end: CappedUseEnd) {
        self.capped_uses_ended.push((use_id, end));
    }

    pub fn audit(&mut self, event: AuditEvent) {
        self.audit.push(event);
    }

    /// A call's hold was taken.
    pub fn hold_opened(&mut self, hold: u64, row: HoldRow, request_id: Option<&str>) {
        self.holds_opened
            .insert(hold, (row, request_id.map(str::to_owned)));
    }

    /// A call's hold was released; one taken since the last batch never
    /// reaches the table at all (most calls end within one batch).
    pub fn hold_closed(&mut self, hold: u64) {
        if self.holds_opened.remove(&hold).is_none() {
            self.holds_closed.push(hold);
        }
    }

    fn is_empty(&self) -> bool {
        self.ledger.is_empty()
            && self.usage.is_empty()
            && self.refusals.is_empty()
            && self.windows.is_empty()
            && self.keys.is_empty()
            && self.holds_opened.is_empty()
            && self.holds_closed.is_empty()
            && self.capped_uses_ended.is_empty()
            && self.audit.is_empty()
    }

    /// Puts a batch that failed back in front of what came after it.
    fn restore(&mut self, mut failed: Batch) {
        failed.ledger.append(&mut self.ledger);
        self.ledger = failed.ledger;
        failed.usage.append(&mut self.usage);
        self.usage = failed.usage;
        for (id, refused) in failed.refusals {
            add_refusals(&mut self.refusals, id, refused.count, refused.last_at);
        }
        failed.audit.append(&mut self.audit);
        self.audit = failed.audit;
        // Opened holds are written before closed ones, so a hold opened in the
        // failed batch and closed since is inserted and then deleted.
        self.holds_opened.extend(failed.holds_opened);
        self.holds_closed.extend(failed.holds_closed);
        // In order too: a use kept in the failed batch and returned since (the
        // server stopping with the call running) is not given back.
        failed.capped_uses_ended.append(&mut self.capped_uses_ended);
        self.capped_uses_ended = failed.capped_uses_ended;
        for (id, count) in failed.windows {
            self.windows.entry(id).or_insert(count);
        }
        for (key_id, used) in failed.keys {
            let entry = self.keys.entry(key_id).or_default();
            entry.uses += used.uses;
            if entry.last_used_at < used.last_used_at {
                entry.last_used_at = used.last_used_at;
            }
        }
    }
}

/// Runs `work` as a task of its own and waits for it: a caller that goes
/// away (a client disconnecting) cannot stop it halfway.
pub async fn uncancelled<T: Send + 'static>(
    work: impl Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::spawn(work)
        .await
        .unwrap_or_else(|error| Err(StoreError::Background(error.to_string())))
}

/// The queue and the lock that makes its writers take turns.
#[derive(Debug, Default)]
pub(super) struct Pending {
    batch: Mutex<Batch>,
    writing: tokio::sync::Mutex<()>,
    wake: tokio::sync::Notify,
    /// The last batch written was refused (and is queued again).
    failing: std::sync::atomic::AtomicBool,
}

pub(super) type SharedPending = Arc<Pending>;

/// The most rows in one INSERT (a power of two): 14 values a usage row stays
/// under SQLite's limit of 32,766 bound values.
const ROWS_PER_INSERT: usize = 512;

/// Splits `rows` into runs whose lengths are powers of two, longest first, so
/// each table's multi-row INSERT has at most ten shapes and sqlx keeps them
/// all prepared; a new length for every batch meant parsing SQL every time.
fn runs<T>(mut rows: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        let longest = rows.len().min(ROWS_PER_INSERT);
        if longest == 0 {
            return None;
        }
        let (run, rest) = rows.split_at(1 << longest.ilog2());
        rows = rest;
        Some(run)
    })
}

/// One table's multi-row statement: its text for each run length, made the
/// first time that length is written. Built per batch, the placeholders
/// were formatted one by one, a sixth of the batch's own work.
struct MultiRow {
    table: &'static str,
    /// Inserted, or for a deletion the one column that names the rows.
    columns: &'static [&'static str],
    /// After the values (an upsert's conflict clause); `None` for a deletion.
    tail: Option<&'static str>,
    /// Indexed by the run length's log2 (`runs` gives powers of two).
    texts: [OnceLock<String>; ROWS_PER_INSERT.ilog2() as usize + 1],
}

impl MultiRow {
    const fn new(
        table: &'static str,
        columns: &'static [&'static str],
        tail: &'static str,
    ) -> Self {
        Self {
            table,
            columns,
            tail: Some(tail),
            texts: [const { OnceLock::new() }; ROWS_PER_INSERT.ilog2() as usize + 1],
        }
    }

    /// Deletes the rows whose `column` is one of the values bound.
    const fn delete(table: &'static str, column: &'static [&'static str; 1]) -> Self {
        Self {
            table,
            columns: column,
            tail: None,
            texts: [const { OnceLock::new() }; ROWS_PER_INSERT.ilog2() as usize + 1],
        }
    }

    /// The statement for `rows` rows, a power of two up to `ROWS_PER_INSERT`.
    fn sql(&self, rows: usize) -> &str {
        self.texts[rows.ilog2() as usize].get_or_init(|| {
            let columns = self.columns.join(", ");
            let Some(tail) = self.tail else {
                let ids = vec!["?"; rows].join(", ");
                return format!("DELETE FROM {} WHERE {columns} IN ({ids})", self.table);
            };
            let row = format!("({})", vec!["?"; self.columns.len()].join(", "));
            format!(
                "INSERT INTO {} ({columns}) VALUES {}{tail}",
                self.table,
                vec![row; rows].join(", "),
            )
        })
    }
}

static LEDGER_ROWS: MultiRow = MultiRow::new(
    "credit_ledger",
    &[
        "user_id",
        "kind",
        "amount_micros",
        "request_id",
        "note",
        "created_at",
    ],
    "",
);
static WINDOW_ROWS: MultiRow = MultiRow::new(
    "limit_windows",
    &["subject", "window", "window_start", "count"],
    " ON CONFLICT (subject, window, window_start) DO UPDATE SET count = excluded.count",
);
static USAGE_ROWS: MultiRow = MultiRow::new(
    "usage_records",
    &[
        "request_id",
        "user_id",
        "key_id",
        "model",
        "stream",
        "status",
        "error_code",
        "prompt_tokens",
        "completion_tokens",
        "cost_micros",
        "latency_ms",
        "upstream_ms",
        "client_ip",
        "created_at",
    ],
    "",
);
static OPENED_HOLDS: MultiRow = MultiRow::new(
    "open_holds",
    &["id", "user_id", "amount_micros", "request_id"],
    "",
);
static CLOSED_HOLDS: MultiRow = MultiRow::delete("open_holds", &["id"]);
static REFUSAL_ROWS: MultiRow = MultiRow::new(
    "gateway_refusals",
    &[
        "minute",
        "status",
        "code",
        "client_ip",
        "api_key",
        "referrer",
        "count",
        "created_at",
    ],
    " ON CONFLICT (minute, status, code, client_ip, api_key, referrer) DO UPDATE SET
        count = count + excluded.count, created_at = MAX(created_at, excluded.created_at)",
);

impl Store {
    /// Adds to the queue; `f` runs under the queue's lock, so what it adds is
    /// written in one transaction.
    pub fn queue<R>(&self, f: impl FnOnce(&mut Batch) -> R) -> R {
        let result = f(&mut self.lock_batch());
        self.pending.wake.notify_one();
        result
    }

    /// Runs `f` on the window counts queued and not yet written, when no
    /// batch is being written: then every count not in the queue is in the
    /// database (a batch that fails is put back before the writer's turn
    /// ends). `None`, without running `f`, while a batch is being written.
    pub fn with_queued_windows<R>(&self, f: impl FnOnce(&WindowCounts) -> R) -> Option<R> {
        let _turn = self.pending.writing.try_lock().ok()?;
        Some(f(&self.lock_batch().windows))
    }

    /// Records that a key was presented and accepted (its last use).
    pub fn touch_key(&self, key_id: i64) {
        let at = super::stored_time(chrono::Utc::now());
        self.queue(|batch| batch.key_touched(key_id, &at));
    }

    fn lock_batch(&self) -> MutexGuard<'_, Batch> {
        self.pending
            .batch
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether the database refused the last batch written (it is queued
    /// again, and retried): the gateway admits no call meanwhile, and
    /// `/readyz` answers 503.
    pub fn writes_failing(&self) -> bool {
        self.pending
            .failing
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Completes when something was queued since the last flush began.
    pub async fn queued(&self) {
        self.pending.wake.notified().await;
    }

    /// Writes everything queued so far. When it returns `Ok`, every row queued
    /// before the call is in the database. The write runs on its own task, so
    /// a caller that goes away (a client disconnecting) cannot drop a batch
    /// half-way.
    pub async fn flush(&self) -> Result<(), StoreError> {
        let store = self.clone();
        uncancelled(async move { store.write_queued().await }).await
    }

    async fn write_queued(&self) -> Result<(), StoreError> {
        let _turn = self.pending.writing.lock().await;
        let batch = std::mem::take(&mut *self.lock_batch());
        if batch.is_empty() {
            return Ok(());
        }
        let written = self.write_batch(&batch).await;
        self.pending
            .failing
            .store(written.is_err(), std::sync::atomic::Ordering::Relaxed);
        match written {
            Ok(()) => Ok(()),
            Err(error) => {
                self.lock_batch().restore(batch);
                // Retried by the next flush even if nothing more is queued.
                self.pending.wake.notify_one();
                Err(error)
            }
        }
    }

    async fn write_batch(&self, batch: &Batch) -> Result<(), StoreError> {
        let mut tx = self.writer.begin().await?;
        for rows in runs(&batch.ledger) {
            let mut insert = sqlx::query(LEDGER_ROWS.sql(rows.len()));
            for r in rows {
                insert = insert
                    .bind(r.user_id)
                    .bind(r.kind)
                    .bind(r.amount_micros)
                    .bind(r.request_id.as_deref())
                    .bind(r.note.as_str())
                    .bind(r.created_at.as_str());
            }
            insert.execute(&mut *tx).await?;
        }
        let mut moves: HashMap<i64, i64> = HashMap::new();
        for row in &batch.ledger {
            *moves.entry(row.user_id).or_default() += row.amount_micros;
        }
        for (user_id, amount) in moves.into_iter().filter(|(_, amount)| *amount != 0) {
            sqlx::query("UPDATE users SET balance_micros = balance_micros + ? WHERE id = ?")
                .bind(amount)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
        }
        let windows: Vec<_> = batch.windows.iter().collect();
        for rows in runs(&windows) {
            let mut upsert = sqlx::query(WINDOW_ROWS.sql(rows.len()));
            for ((subject, window, bucket), count) in rows {
                upsert = upsert
                    .bind(subject.as_str())
                    .bind(window.as_str())
                    .bind(bucket.as_str())
                    .bind(**count);
            }
            upsert.execute(&mut *tx).await?;
        }
        for rows in runs(&batch.usage) {
            let mut insert = sqlx::query(USAGE_ROWS.sql(rows.len()));
            for u in rows {
                insert = insert
                    .bind(u.request_id.as_deref())
                    .bind(u.user_id)
                    .bind(u.key_id)
                    .bind(u.model.as_str())
                    .bind(u.stream)
                    .bind(i64::from(u.status))
                    .bind(u.error_code.as_deref())
                    .bind(u.prompt_tokens)
                    .bind(u.completion_tokens)
                    .bind(u.cost_micros)
                    .bind(u.latency_ms)
                    .bind(u.upstream_ms)
                    .bind(u.client_ip.as_deref())
                    .bind(u.created_at.as_str());
            }
            insert.execute(&mut *tx).await?;
        }
        let refusals: Vec<_> = batch.refusals.iter().collect();
        for rows in runs(&refusals) {
            let mut upsert = sqlx::query(REFUSAL_ROWS.sql(rows.len()));
            for ((minute, status, code, client_ip, api_key, referrer), refused) in rows {
                upsert = upsert
                    .bind(minute.as_str())
                    .bind(i64::from(*status))
                    .bind(code.as_str())
                    .bind(client_ip.as_str())
                    .bind(api_key.as_str())
                    .bind(referrer.as_str())
                    .bind(refused.count)
                    .bind(refused.last_at.as_str());
            }
            upsert.execute(&mut *tx).await?;
        }
        for (key_id, used) in &batch.keys {
            // A batch may count a use whose touch went in an earlier batch.
            let touched = Some(used.last_used_at.as_str()).filter(|at| !at.is_empty());
            sqlx::query(
                "UPDATE api_keys SET usage_count = MAX(usage_count + ?1, 0),
                        last_used_at = COALESCE(MAX(last_used_at, ?2), last_used_at, ?2)
                 WHERE id = ?3",
            )
            .bind(used.uses)
            .bind(touched)
            .bind(key_id)
            .execute(&mut *tx)
            .await?;
        }
        // Holds in one statement per run, not one each: a batch holds about
        // as many as calls run at once, and every statement is a round trip
        // to the SQLite thread.
        let opened: Vec<_> = batch.holds_opened.iter().collect();
        for rows in runs(&opened) {
            let mut insert = sqlx::query(OPENED_HOLDS.sql(rows.len()));
            for (hold, (row, request_id)) in rows {
                insert = insert
                    .bind(**hold as i64)
                    .bind(row.user_id)
                    .bind(row.amount_micros)
                    .bind(request_id.as_deref());
            }
            insert.execute(&mut *tx).await?;
        }
        for rows in runs(&batch.holds_closed) {
            let mut delete = sqlx::query(CLOSED_HOLDS.sql(rows.len()));
            for hold in rows {
                delete = delete.bind(*hold as i64);
            }
            delete.execute(&mut *tx).await?;
        }
        for (use_id, end) in &batch.capped_uses_ended {
            super::gateway::end_capped_use(&mut tx, *use_id, *end).await?;
        }
        for event in &batch.audit {
            audit::insert(&mut tx, event).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{
        CLOSED_HOLDS, HoldRow, LEDGER_ROWS, LedgerRow, MultiRow, OPENED_HOLDS, REFUSAL_ROWS,
        ROWS_PER_INSERT, USAGE_ROWS, WINDOW_ROWS, runs,
    };
    use crate::store::Store;

    /// The queued windows are shown only between writes: while a batch is
    /// out of the queue and not yet written, its counts are in neither.
    #[tokio::test]
    async fn queued_windows_are_not_shown_while_a_batch_is_written() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let turn = store.pending.writing.try_lock().unwrap();
        assert!(store.with_queued_windows(|_| ()).is_none());
        drop(turn);
        assert!(store.with_queued_windows(|_| ()).is_some());
    }

    /// A batch the database refused wakes the writer again by itself: it is
    /// retried even if nothing more is ever queued (the last calls of a
    /// quiet night), not left in memory until the next call.
    #[tokio::test]
    async fn a_failed_batch_wakes_the_writer_to_try_again() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        store.queue(|batch| {
            batch.ledger(LedgerRow {
                user_id: 1,
                kind: "not a kind",
                amount_micros: 1,
                request_id: None,
                note: String::new(),
                created_at: String::new(),
            });
        });
        // The writer takes the wake-up for this row and writes it: refused.
        store.queued().await;
        assert!(store.flush().await.is_err());
        let woken = tokio::time::timeout(Duration::from_secs(5), store.queued()).await;
        assert!(
            woken.is_ok(),
            "the failed batch is not waiting for the next call"
        );
    }

    /// Holds open at a batch's write reach the table, with their amounts, and
    /// leave it with the batch that closes them; one closed in its own batch
    /// never arrives. Many at once (more than one run of each length).
    #[tokio::test]
    async fn open_holds_are_written_and_removed_by_the_batch() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        sqlx::query(
            "INSERT INTO users (id, email, display_name, password_hash) VALUES (7, 'h@example.com', 'H', 'x')",
        )
        .execute(&store.writer)
        .await
        .unwrap();
        let holds = || async {
            sqlx::query_as::<_, (i64, i64, i64)>(
                "SELECT id, user_id, amount_micros FROM open_holds ORDER BY id",
            )
            .fetch_all(&store.writer)
            .await
            .unwrap()
        };
        store.queue(|batch| {
            for hold in 1..=700u64 {
                batch.hold_opened(
                    hold,
                    HoldRow {
                        user_id: 7,
                        amount_micros: hold as i64 * 10,
                    },
                    Some(&format!("req-{hold}")),
                );
            }
            batch.hold_closed(700);
        });
        store.flush().await.unwrap();
        let written = holds().await;
        assert_eq!(written.len(), 699);
        let named: Option<String> =
            sqlx::query_scalar("SELECT request_id FROM open_holds WHERE id = 5")
                .fetch_one(&store.writer)
                .await
                .unwrap();
        assert_eq!(named.as_deref(), Some("req-5"), "a hold names its call");
        assert!(
            written
                .iter()
                .zip(1..)
                .all(|(row, id)| *row == (id, 7, id * 10))
        );

        store.queue(|batch| {
            for hold in (1..=699).filter(|hold| hold % 3 != 0) {
                batch.hold_closed(hold);
            }
        });
        store.flush().await.unwrap();
        let left: Vec<i64> = holds().await.into_iter().map(|(id, _, _)| id).collect();
        assert_eq!(
            left,
            (1..=699).filter(|hold| hold % 3 == 0).collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_multi_row_statement_has_a_placeholder_for_every_column_of_every_row() {
        let two = MultiRow::new("t", &["a", "b"], " ON CONFLICT DO NOTHING");
        assert_eq!(
            two.sql(2),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?) ON CONFLICT DO NOTHING"
        );
        assert_eq!(
            CLOSED_HOLDS.sql(4),
            "DELETE FROM open_holds WHERE id IN (?, ?, ?, ?)"
        );
        for table in [
            &LEDGER_ROWS,
            &WINDOW_ROWS,
            &USAGE_ROWS,
            &REFUSAL_ROWS,
            &OPENED_HOLDS,
        ] {
            for rows in [1, 2, 64, ROWS_PER_INSERT] {
                let sql = table.sql(rows);
                // As many values a row as the statement names columns.
                let named = sql
                    .split_once('(')
                    .and_then(|(_, rest)| rest.split_once(')'))
                    .map_or(0, |(list, _)| list.split(',').count());
                assert_eq!(named, table.columns.len(), "{sql}");
                assert_eq!(sql.matches('?').count(), rows * named, "{sql}");
                assert!(std::ptr::eq(sql, table.sql(rows)), "made once");
            }
        }
    }

    #[test]
    fn runs_are_powers_of_two_that_cover_every_row_in_order() {
        for len in [0, 1, 2, 3, 7, 180, 511, 512, 513, 1500] {
            let rows: Vec<usize> = (0..len).collect();
            let split: Vec<&[usize]> = runs(&rows).collect();
            assert!(split.iter().all(|run| run.len().is_power_of_two()));
            assert!(split.iter().all(|run| run.len() <= ROWS_PER_INSERT));
            assert!(split.windows(2).all(|w| w[0].len() >= w[1].len()));
            assert_eq!(split.concat(), rows, "length {len}");
        }
        let lengths: Vec<usize> = runs(&[(); 180]).map(<[()]>::len).collect();
        assert_eq!(lengths, [128, 32, 16, 4]);
    }
}
