//! The live accounts: every balance and durable request window the gateway
//! has touched, held in memory and authoritative while the server runs. A
//! check-and-take is one short critical section, with no database round trip;
//! each change is queued for the database in the same section
//! (`Store::queue`), so the queue holds the changes in the order they were
//! made and the balance written after any batch is one the account really had.
//!
//! An account or window is loaded from the database the first time it is
//! used. Writers outside the gateway go through here too (an admin's credit
//! correction), or only ever add (the monthly grant), so memory and database
//! never disagree for long: after [`Store::flush`] they are equal.

use std::sync::{Arc, Mutex, MutexGuard};

use chrono::Utc;
use foldhash::HashMap;

use crate::store::{
    AuditEvent, Batch, CappedUseEnd, HoldRow, LedgerRow, Store, StoreError, UsageRow, Window,
    WindowId,
};

/// One request window to check: its id and limit.
#[derive(Debug, Clone)]
pub struct WindowCheck {
    pub id: WindowId,
    pub limit: i64,
}

/// Everything a call's admission checks and takes, all or nothing.
#[derive(Debug, Clone)]
pub struct Admission<'a> {
    pub user_id: i64,
    pub key_id: i64,
    /// The capped key's use the call took ([`crate::store::Store::take_capped_use`]),
    /// already counted; `None` for a key without a cap, counted here.
    pub capped_use: Option<i64>,
    pub windows: &'a [WindowCheck],
    pub reserve_micros: i64,
    pub request_id: Option<&'a str>,
}

/// Why admission was refused.
#[derive(Debug)]
pub enum Refused<E> {
    Window {
        window: Window,
        limit: i64,
    },
    Credits {
        balance_micros: i64,
    },
    /// The last, in-memory check refused.
    Check(E),
    /// This window is not in memory: forgotten since it was loaded, as its
    /// hour or day had passed. Load it and ask again.
    Unloaded(WindowId),
}

/// What admission used, for the rate-limit headers: each window's count after
/// this call, with its limit.
#[derive(Debug, Clone, Default)]
pub struct Admitted {
    pub windows: Vec<(Window, i64, i64)>,
    /// The call's hold, for [`Accounts::settle`].
    pub hold: u64,
}

/// The outcome of a call, settled against its hold.
#[derive(Debug, Clone)]
pub struct Settlement {
    /// The hold [`Accounts::admit`] took for the call.
    pub hold: u64,
    pub user_id: i64,
    pub key_id: Option<i64>,
    pub request_id: Option<String>,
    pub model: String,
    pub stream: bool,
    pub status: u16,
    pub error_code: Option<String>,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub reserved_micros: i64,
    pub cost_micros: i64,
    pub latency_ms: i64,
    /// Until the upstream answered; `None` when it never did.
    pub upstream_ms: Option<i64>,
    pub client_ip: Option<String>,
    /// The capped key's use the call took, and how it ends, in the same
    /// write; `None` when there was none, or it was given back already.
    pub capped_use: Option<(i64, CappedUseEnd)>,
}

/// A call's hold, and the capped key's use the call took: the server
/// stopping gives both back.
#[derive(Debug, Clone, Copy)]
struct OpenHold {
    row: HoldRow,
    capped_use: Option<i64>,
}

#[derive(Debug)]
struct Account {
    balance_micros: i64,
    granted_month: Option<String>,
    /// The idempotency keys of the last corrections made while in memory,
    /// with their amounts (see [`Accounts::adjust`]).
    recent_corrections: std::collections::VecDeque<(String, i64)>,
}

/// How many corrections' keys an account in memory remembers; older ones are
/// found in the ledger.
const CORRECTIONS_REMEMBERED: usize = 32;

/// What a correction did.
#[derive(Debug, PartialEq, Eq)]
pub enum Correction {
    /// Made (or made before under the same key, with the same amount): the
    /// balance now.
    Made(i64),
    /// Refused: it would take the balance below zero or past the most it may
    /// hold, which it has now.
    OutOfRange(i64),
    /// The key was used before for another amount.
    KeyReused,
    /// Made, in the balance and queued, but the database refused the write
    /// (retried every second): a crash before it succeeds would lose it.
    Unwritten(i64),
}

/// A window's count in memory, with the tidy (see
/// [`Accounts::forget_windows_except`]) it was last counted in.
#[derive(Debug, Clone, Copy)]
struct LiveWindow {
    count: i64,
    tidy: u64,
}

#[derive(Debug, Default)]
struct Live {
    accounts: HashMap<i64, Account>,
    /// By window; SipHash under a random key, as the subjects hold client
    /// addresses, which callers choose.
    windows: std::collections::HashMap<WindowId, LiveWindow>,
    /// How many tidies have run.
    tidies: u64,
    /// Holds taken and not yet settled, by number.
    holds: HashMap<u64, OpenHold>,
    next_hold: u64,
}

/// The in-memory accounts and windows, shared by every request.
#[derive(Debug)]
pub struct Accounts {
    store: Store,
    /// Shared with the task that gives a monthly grant (see [`Accounts::grant_month`]).
    live: Arc<Mutex<Live>>,
    /// Held while a monthly grant is given, so a call that finds it given
    /// by another call waits until the credits are in the balance.
    granting: Arc<tokio::sync::Mutex<()>>,
}

impl Live {
    fn window_count(&self, id: &WindowId) -> Option<i64> {
        self.windows.get(id).map(|w| w.count)
    }

    /// Sets a window's count, copying its id only the first time.
    fn set_window(&mut self, id: &WindowId, count: i64) {
        let tidy = self.tidies;
        match self.windows.get_mut(id) {
            Some(window) => *window = LiveWindow { count, tidy },
            None => {
                self.windows.insert(id.clone(), LiveWindow { count, tidy });
            }
        }
    }
}

fn lock_live(live: &Mutex<Live>) -> MutexGuard<'_, Live> {
    live.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_text() -> String {
    crate::store::stored_time(Utc::now())
}

fn ledger(
    user_id: i64,
    kind: &'static str,
    amount: i64,
    request_id: Option<&str>,
    note: String,
    at: &str,
) -> LedgerRow {
    LedgerRow {
        user_id,
        kind,
        amount_micros: amount,
        request_id: request_id.map(str::to_owned),
        note,
        created_at: at.to_owned(),
    }
}

impl Accounts {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            live: Arc::new(Mutex::new(Live::default())),
            granting: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    fn live(&self) -> MutexGuard<'_, Live> {
        lock_live(&self.live)
    }

    /// Loads the user's account when it is not in memory; `false` when there
    /// is no such account.
    pub async fn load_account(&self, user_id: i64, month: &str) -> Result<bool, StoreError> {
        if self.live().accounts.contains_key(&user_id) {
            return Ok(true);
        }
        let Some(stored) = self.store.stored_account(user_id, month).await? else {
            return Ok(false);
        };
        // Another call may have loaded it meanwhile; its copy is newer.
        self.live().accounts.entry(user_id).or_insert(Account {
            balance_micros: stored.balance_micros,
            granted_month: stored.granted_this_month.then(|| month.to_owned()),
            recent_corrections: std::collections::VecDeque::new(),
        });
        Ok(true)
    }

    /// Gives `month`'s plan grant to a loaded account when it is due: on its
    /// first call of the month.
    pub async fn grant_month(&self, user_id: i64, month: &str) -> Result<(), StoreError> {
        let due = || {
            self.live()
                .accounts
                .get(&user_id)
                .is_some_and(|a| a.granted_month.as_deref() != Some(month))
        };
        if !due() {
            return Ok(());
        }
        let granting = self.granting.clone().lock_owned().await;
        if !due() {
            return Ok(());
        }
        // The grant and its credit in memory are one task of their own: a
        // call whose client leaves midway would otherwise stop between the
        // two, leaving the grant in the database and not in the balance
        // (the database then refuses to give it again).
        let store = self.store.clone();
        let live = self.live.clone();
        let month = month.to_owned();
        crate::store::uncancelled(async move {
            let _granting = granting;
            // Written at once: it only adds, so it cannot clash with the
            // queue, and the database gives it at most once a month.
            let given = store.give_monthly_grant(user_id, &month).await?;
            if let Some(account) = lock_live(&live).accounts.get_mut(&user_id) {
                account.balance_micros = account.balance_micros.saturating_add(given);
                account.granted_month = Some(month);
            }
            Ok(())
        })
        .await
    }

    /// Loads a window's count when it is not in memory.
    pub async fn load_window(&self, id: &WindowId) -> Result<(), StoreError> {
        if self.live().windows.contains_key(id) {
            return Ok(());
        }
        let count = self.store.window_count(&id.0, id.1, &id.2).await?;
        let mut live = self.live();
        let tidy = live.tidies;
        live.windows
            .entry(id.clone())
            .or_insert(LiveWindow { count, tidy });
        Ok(())
    }

    /// Counts one request in a window unless it is full, loading the window
    /// when it is not in memory: the count after, or `None`.
    pub async fn count(&self, id: &WindowId, limit: i64) -> Result<Option<i64>, StoreError> {
        loop {
            self.load_window(id).await?;
            let mut live = self.live();
            // Forgotten again since the load (the call waited through two
            // tidies): read as 0 it would overwrite the stored count.
            let Some(count) = live.window_count(id) else {
                continue;
            };
            if count >= limit {
                return Ok(None);
            }
            let after = count + 1;
            live.set_window(id, after);
            self.store.queue(|batch| batch.window(id, after));
            return Ok(Some(after));
        }
    }

    /// The counts of windows (0 for one not loaded), and what `also` finds,
    /// read in the admissions' critical section: a probe of the governor
    /// windows inside it sees no admission halfway.
    pub fn peek<const N: usize, R>(
        &self,
        ids: [&WindowId; N],
        also: impl FnOnce() -> R,
    ) -> ([i64; N], R) {
        let live = self.live();
        let counts = ids.map(|id| live.window_count(id).unwrap_or(0));
        (counts, also())
    }

    /// Gives back one request counted by [`Self::count`], for a call a later
    /// limit refused.
    pub fn uncount(&self, id: &WindowId) {
        let mut live = self.live();
        let Some(count) = live.window_count(id).filter(|&c| c > 0) else {
            return;
        };
        live.set_window(id, count - 1);
        self.store.queue(|batch| batch.window(id, count - 1));
    }

    /// Takes every window and the credit hold, after `last_check` (the
    /// governor windows and the running calls, which cannot be given back
    /// here) passes, with what it took; any refusal takes nothing. The account
    /// and windows must be loaded; a window that is not is refused as
    /// [`Refused::Unloaded`].
    pub fn admit<T, E>(
        &self,
        admission: &Admission<'_>,
        last_check: impl FnOnce() -> Result<T, E>,
    ) -> Result<(Admitted, T), Refused<E>> {
        let mut live = self.live();
        let mut admitted = Admitted::default();
        // Of several full windows the last, the longest (an hour's before a
        // day's), is named: its reset is when the call can pass.
        let mut full = None;
        for check in admission.windows {
            // Read as 0, it would admit the call and overwrite the stored count.
            let Some(count) = live.window_count(&check.id) else {
                return Err(Refused::Unloaded(check.id.clone()));
            };
            if count >= check.limit {
                full = Some(Refused::Window {
                    window: check.id.1,
                    limit: check.limit,
                });
            }
            admitted.windows.push((check.id.1, count + 1, check.limit));
        }
        if let Some(refused) = full {
            return Err(refused);
        }
        let balance = live
            .accounts
            .get(&admission.user_id)
            .map_or(0, |a| a.balance_micros);
        if balance < admission.reserve_micros {
            return Err(Refused::Credits {
                balance_micros: balance,
            });
        }
        let checked = last_check().map_err(Refused::Check)?;

        for (check, (_, after, _)) in admission.windows.iter().zip(&admitted.windows) {
            live.set_window(&check.id, *after);
        }
        if let Some(account) = live.accounts.get_mut(&admission.user_id) {
            account.balance_micros -= admission.reserve_micros;
        }
        live.next_hold += 1;
        admitted.hold = live.next_hold;
        let hold = HoldRow {
            user_id: admission.user_id,
            amount_micros: admission.reserve_micros,
        };
        live.holds.insert(
            admitted.hold,
            OpenHold {
                row: hold,
                capped_use: admission.capped_use,
            },
        );
        let at = now_text();
        self.store.queue(|batch: &mut Batch| {
            for (check, (_, count, _)) in admission.windows.iter().zip(&admitted.windows) {
                batch.window(&check.id, *count);
            }
            batch.hold_opened(admitted.hold, hold, admission.request_id);
            // Written even when free, so every admitted call has its hold.
            batch.ledger(ledger(
                admission.user_id,
                "reserve",
                -admission.reserve_micros,
                admission.request_id,
                "hold for the worst case".to_owned(),
                &at,
            ));
        });
        Ok((admitted, checked))
    }

    /// Releases a call's hold, charges what it cost and queues its usage
    /// record; returns the charge, or `None` when the hold was released
    /// already (the server stopped with the call running). A cost beyond the
    /// hold (the estimate missed something the upstream counted) is charged
    /// as far as the balance allows, never below zero.
    pub fn settle(&self, s: Settlement) -> Option<i64> {
        let mut live = self.live();
        // None: released already, when the server stopped with the call running.
        live.holds.remove(&s.hold)?;
        let available = live
            .accounts
            .get(&s.user_id)
            .map_or(0, |a| a.balance_micros.max(0));
        let cost = s
            .cost_micros
            .clamp(0, s.reserved_micros.saturating_add(available));
        if cost < s.cost_micros {
            tracing::warn!(
                user_id = s.user_id,
                request_id = ?s.request_id,
                cost_micros = s.cost_micros,
                charged_micros = cost,
                "a call cost more than the balance could pay; charged what was there"
            );
        }
        if let Some(account) = live.accounts.get_mut(&s.user_id) {
            account.balance_micros += s.reserved_micros - cost;
        }
        let at = now_text();
        self.store.queue(|batch| {
            batch.hold_closed(s.hold);
            if let Some((use_id, end)) = s.capped_use {
                batch.capped_use_ended(use_id, end);
            }
            let request_id = s.request_id.as_deref();
            if s.reserved_micros > 0 {
                batch.ledger(ledger(
                    s.user_id,
                    "refund",
                    s.reserved_micros,
                    request_id,
                    "hold released".to_owned(),
                    &at,
                ));
            }
            if cost > 0 {
                let note = format!(
                    "{}: {} prompt + {} completion tokens",
                    s.model, s.prompt_tokens, s.completion_tokens
                );
                batch.ledger(ledger(s.user_id, "settle", -cost, request_id, note, &at));
            }
            batch.usage(UsageRow {
                request_id: s.request_id.clone(),
                user_id: s.user_id,
                key_id: s.key_id,
                model: s.model.clone(),
                stream: s.stream,
                status: s.status,
                error_code: s.error_code.clone(),
                prompt_tokens: s.prompt_tokens,
                completion_tokens: s.completion_tokens,
                cost_micros: cost,
                latency_ms: s.latency_ms,
                upstream_ms: s.upstream_ms,
                client_ip: s.client_ip.clone(),
                created_at: at.clone(),
            });
        });
        drop(live);
        Some(cost)
    }

    /// Releases every hold not yet settled, with a `refund` row each, and
    /// gives back the capped keys' uses these calls took: for calls still
    /// running when the server stops, which would otherwise settle after the
    /// last write. Returns how many there were.
    pub fn release_open_holds(&self) -> usize {
        let mut live = self.live();
        let holds: Vec<(u64, OpenHold)> = live.holds.drain().collect();
        for (_, open) in &holds {
            if let Some(account) = live.accounts.get_mut(&open.row.user_id) {
                account.balance_micros += open.row.amount_micros;
            }
        }
        let at = now_text();
        self.store.queue(|batch| {
            for (number, open) in &holds {
                let hold = &open.row;
                batch.hold_closed(*number);
                if hold.amount_micros > 0 {
                    let note = "hold released: the server stopped before the call ended";
                    let row = ledger(
                        hold.user_id,
                        "refund",
                        hold.amount_micros,
                        None,
                        note.into(),
                        &at,
                    );
                    batch.ledger(row);
                }
                if let Some(use_id) = open.capped_use {
                    batch.capped_use_ended(use_id, CappedUseEnd::Returned);
                }
            }
        });
        holds.len()
    }

    /// An admin's correction: adds (or, when it covers it, deducts) `amount`
    /// with an `adjust` ledger row and its audit event, written together before
    /// this returns, or, when the database refuses the write, kept queued and
    /// written on a later try. `None` when there is no such account.
    ///
    /// With an idempotency `key` (a form's, or an API caller's
    /// `Idempotency-Key`), a correction sent again, by a double submit or a
    /// retry after a lost answer, is made once: the key is kept as the ledger
    /// row's `request_id`, and remembered in memory for corrections sent at
    /// once.
    pub async fn adjust(
        &self,
        user_id: i64,
        amount: i64,
        key: Option<&str>,
        note: &str,
        audit: AuditEvent,
        month: &str,
    ) -> Result<Option<Correction>, StoreError> {
        // A deleted account's balance stays in memory if it made calls since
        // the start; only an account still stored as live takes corrections.
        if self.store.stored_account(user_id, month).await?.is_none()
            || !self.load_account(user_id, month).await?
        {
            return Ok(None);
        }
        let made_before = match key {
            Some(key) => self.store.correction_under_key(user_id, key).await?,
            None => None,
        };
        let correction = {
            let mut live = self.live();
            let Some(account) = live.accounts.get_mut(&user_id) else {
                return Ok(None);
            };
            let remembered = key.and_then(|key| {
                account
                    .recent_corrections
                    .iter()
                    .find(|(seen, _)| seen == key)
                    .map(|(_, amount)| *amount)
            });
            match (made_before, remembered) {
                (Some(before), _) | (None, Some(before)) if before != amount => {
                    return Ok(Some(Correction::KeyReused));
                }
                (Some(_), _) => return Ok(Some(Correction::Made(account.balance_micros))),
                // Made here, and maybe not written yet: the flush below says.
                (None, Some(_)) => Correction::Made(account.balance_micros),
                (None, None) => self.make_correction(account, user_id, amount, key, note, audit),
            }
        };
        // Once queued, the correction is made: it is in the balance, and a
        // batch that fails stays queued for the next write. Said so, not
        // reported as done (nor as not made: sent again without its key, it
        // would be made twice).
        if let Err(error) = self.store.flush().await {
            tracing::error!(%error, user_id, "a credit correction is queued but not written yet; writing it again later");
            if let Correction::Made(balance) = correction {
                return Ok(Some(Correction::Unwritten(balance)));
            }
        }
        Ok(Some(correction))
    }

    /// Makes a correction not made before, in the balance and the queue, or
    /// refuses it for the balance's range.
    fn make_correction(
        &self,
        account: &mut Account,
        user_id: i64,
        amount: i64,
        key: Option<&str>,
        note: &str,
        audit: AuditEvent,
    ) -> Correction {
        let after = account.balance_micros.saturating_add(amount);
        if !(0..=crate::credits::MOST_BALANCE_MICROS).contains(&after) {
            return Correction::OutOfRange(account.balance_micros);
        }
        account.balance_micros += amount;
        if let Some(key) = key {
            if account.recent_corrections.len() == CORRECTIONS_REMEMBERED {
                account.recent_corrections.pop_front();
            }
            account
                .recent_corrections
                .push_back((key.to_owned(), amount));
        }
        let at = now_text();
        self.store.queue(|batch| {
            batch.ledger(ledger(user_id, "adjust", amount, key, note.to_owned(), &at));
            batch.audit(audit);
        });
        Correction::Made(account.balance_micros)
    }

    /// The user's balance now; `None` when there is no such account.
    pub async fn balance(&self, user_id: i64, month: &str) -> Result<Option<i64>, StoreError> {
        if !self.load_account(user_id, month).await? {
            return Ok(None);
        }
        Ok(self.live().accounts.get(&user_id).map(|a| a.balance_micros))
    }

    /// The once-a-minute tidy. Forgets windows whose bucket is not current
    /// (time only moves forward, and their last counts are already queued),
    /// and client addresses' windows no call counted in since the tidy
    /// before last whose counts are written: a caller with many addresses
    /// (an IPv6 caller may own millions of /64 blocks) would otherwise keep a
    /// window in memory for each until the day ends. An address that calls
    /// again has its window loaded from the database, as after a restart.
    /// While a batch is being written, only past buckets go.
    pub fn forget_windows_except(&self, current: &[&str]) {
        let mut live = self.live();
        live.tidies += 1;
        let idle_before = live.tidies.saturating_sub(1);
        let Live { windows, .. } = &mut *live;
        let evicted = self.store.with_queued_windows(|queued| {
            windows.retain(|id, window| {
                current.contains(&id.2.as_str())
                    && (!id.0.starts_with("ip:")
                        || window.tidy >= idle_before
                        || queued.contains_key(id))
            });
        });
        if evicted.is_none() {
            windows.retain(|id, _| current.contains(&id.2.as_str()));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::Arc,
        time::{Duration, Instant},
    };

    use super::{Accounts, Admission, Refused, WindowCheck};
    use crate::store::{Store, Window, WindowId, testing::user_on_default_plan};

    /// One user on the default plan with `windows` (kind, bucket, count)
    /// stored, and accounts that have loaded the user and those windows.
    async fn user_with_windows(
        windows: &[(Window, &str, i64)],
    ) -> (Store, Accounts, i64, Vec<WindowId>) {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let user_id = user_on_default_plan(&store, "a@example.com").await;
        let accounts = Accounts::new(store.clone());
        assert!(accounts.load_account(user_id, "2026-12").await.unwrap());
        let mut ids = Vec::new();
        for &(window, bucket, count) in windows {
            let id: WindowId = (format!("user:{user_id}"), window, bucket.to_owned());
            sqlx::query(
                "INSERT INTO limit_windows (subject, window, window_start, count)
                 VALUES (?, ?, ?, ?)",
            )
            .bind(&id.0)
            .bind(window.as_str())
            .bind(bucket)
            .bind(count)
            .execute(store.pool())
            .await
            .unwrap();
            accounts.load_window(&id).await.unwrap();
            ids.push(id);
        }
        (store, accounts, user_id, ids)
    }

    /// A call of `user_id`'s that costs nothing, under `windows`.
    fn free_admission(user_id: i64, windows: &[WindowCheck]) -> Admission<'_> {
        Admission {
            user_id,
            key_id: 1,
            capped_use: None,
            windows,
            reserve_micros: 0,
            request_id: None,
        }
    }

    /// A window forgotten after its load (the once-a-minute tidy drops past
    /// hours and days, and ran while the call waited) is refused as unloaded,
    /// not read as empty: read as 0, it admitted a call over the limit and
    /// wrote the count 1 over the stored one.
    #[tokio::test]
    async fn a_window_forgotten_after_its_load_is_not_read_as_empty() {
        let (store, accounts, user_id, ids) =
            user_with_windows(&[(Window::Day, "2026-12-04", 3)]).await;
        let id = ids[0].clone();
        accounts.forget_windows_except(&[]);

        let windows = [WindowCheck {
            id: id.clone(),
            limit: 3,
        }];
        let admission = free_admission(user_id, &windows);
        let admit = || accounts.admit(&admission, || Ok::<_, ()>(()));
        assert!(matches!(admit(), Err(Refused::Unloaded(ref w)) if *w == id));
        // Loaded again, the window is full, as stored.
        accounts.load_window(&id).await.unwrap();
        assert!(matches!(admit(), Err(Refused::Window { limit: 3, .. })));
        store.flush().await.unwrap();
        let stored: i64 = sqlx::query_scalar("SELECT count FROM limit_windows")
            .fetch_one(store.pool())
            .await
            .unwrap();
        assert_eq!(stored, 3);
    }

    /// A client address's window that no call counted in for a tidy period
    /// leaves memory once its count is written, and the next call from the
    /// address loads it again; a user's windows, and counts not yet
    /// written, stay.
    #[tokio::test]
    async fn idle_address_windows_leave_memory_once_written() {
        let (store, accounts, _, ids) = user_with_windows(&[(Window::Day, "2026-12-04", 3)]).await;
        let user_day = ids[0].clone();
        let address = |n: u8| -> WindowId {
            (
                format!("ip:192.0.2.{n}"),
                Window::Day,
                "2026-12-04".to_owned(),
            )
        };
        let in_memory = |id: &WindowId| accounts.live().windows.contains_key(id);
        assert_eq!(accounts.count(&address(1), 100).await.unwrap(), Some(1));
        store.flush().await.unwrap();
        // Counted, not written yet.
        assert_eq!(accounts.count(&address(2), 100).await.unwrap(), Some(1));
        let today = ["2026-12-04"];
        accounts.forget_windows_except(&today);
        assert!(in_memory(&address(1)), "counted in the last tidy period");
        accounts.forget_windows_except(&today);
        assert!(!in_memory(&address(1)));
        assert!(in_memory(&address(2)), "its count is still queued");
        assert!(in_memory(&user_day));
        // The address calls again: its count comes back from the database.
        assert_eq!(accounts.count(&address(1), 100).await.unwrap(), Some(2));
        assert_eq!(accounts.count(&address(1), 2).await.unwrap(), None);
    }

    /// With the hour and the day both full, the refusal names the day: the
    /// hour's reset, sooner, would send the caller back to another 429.
    #[tokio::test]
    async fn of_two_full_windows_the_longer_is_named() {
        let (_store, accounts, user_id, ids) = user_with_windows(&[
            (Window::Hour, "2026-12-04T10", 5),
            (Window::Day, "2026-12-04", 9),
        ])
        .await;
        let (hour, day) = (&ids[0], &ids[1]);
        let admit = |hour_limit, day_limit| {
            let windows = [
                WindowCheck {
                    id: hour.clone(),
                    limit: hour_limit,
                },
                WindowCheck {
                    id: day.clone(),
                    limit: day_limit,
                },
            ];
            match accounts.admit(&free_admission(user_id, &windows), || Ok::<_, ()>(())) {
                Err(Refused::Window { window, limit }) => Some((window, limit)),
                Ok(_) => None,
                Err(_) => panic!("refused otherwise"),
            }
        };
        assert_eq!(admit(5, 9), Some((Window::Day, 9)));
        assert_eq!(admit(5, 10), Some((Window::Hour, 5)));
        assert_eq!(admit(6, 9), Some((Window::Day, 9)));
        assert_eq!(admit(6, 10), None);
    }

    /// A call cancelled (its client gone) at any point of the month's grant
    /// leaves the balance in memory equal to the database's: the grant is in
    /// both or in neither, and the next call gives it if it is in neither.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_grant_cut_short_is_in_memory_and_the_database_alike() {
        let store = Store::open("sqlite::memory:").await.unwrap();
        let user_id = user_on_default_plan(&store, "a@example.com").await;
        let accounts = Arc::new(Accounts::new(store.clone()));
        // A new month each round, so each round's first call gives a grant;
        // each round cancels that call a little later than the last.
        for round in 0..300u64 {
            let month = format!("{}-01", 2100 + round);
            assert!(accounts.load_account(user_id, &month).await.unwrap());
            let call = {
                let (accounts, month) = (accounts.clone(), month.clone());
                tokio::spawn(async move { accounts.grant_month(user_id, &month).await })
            };
            let until = Instant::now() + Duration::from_micros(round * 5);
            while Instant::now() < until {
                std::hint::spin_loop();
            }
            call.abort();
            let _ = call.await;
            accounts.grant_month(user_id, &month).await.unwrap();
            let in_memory = accounts.balance(user_id, &month).await.unwrap();
            let stored: i64 = sqlx::query_scalar("SELECT balance_micros FROM users WHERE id = ?")
                .bind(user_id)
                .fetch_one(store.pool())
                .await
                .unwrap();
            assert_eq!(in_memory, Some(stored), "round {round}");
            assert_eq!(stored, (round as i64 + 1) * 100_000_000, "round {round}");
        }
    }
}
