//! Stages 1 and 5: rate limits. Per client IP first (an IPv6 caller's /64;
//! before the body or any key work), then
//! per user from the plan: requests per minute and tokens per minute with
//! governor (GCRA), requests per hour and day in [`super::accounts`] (in memory,
//! written behind to the database, so they survive restarts), the key's usage
//! cap in the database (one-time keys must be exact at once; a key's calls
//! take it in turns), and parallel calls with a count of each user's running
//! calls.
//!
//! The user's limits and the credit hold are admitted together in one critical
//! section, and any refusal takes nothing, so a refused call consumes nothing
//! from the other limits: the governor windows come near the end, both asked
//! before either takes ([`super::limit_state::Probed`]), and the parallel
//! limit last, between their asking and their taking. The per-IP windows are taken
//! first, before any key work, since they exist to stop floods; they count
//! every call (bad keys included) except one a later limit refuses, which
//! [`Limiters::give_back_ip`] returns.

use std::{
    net::IpAddr,
    num::NonZeroU32,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
    },
};

use axum::http::{HeaderMap, HeaderValue};
use chrono::{DateTime, Duration as Span, Timelike, Utc};
use foldhash::{HashMap, HashMapExt};
use governor::{
    Quota, RateLimiter,
    clock::{Clock, DefaultClock, Reference},
    middleware::StateInformationMiddleware,
    nanos::Nanos,
    state::NotKeyed,
};

use super::accounts::{Accounts, Admission, Refused, WindowCheck};
use super::client_ip::counted_address;
use super::error::GatewayError;
use super::limit_state::{Probe, Probed, Returnable, give_back_probed};
use crate::store::{CappedUseEnd, KeyRecord, PlanRecord, Store, StoreError, Window};

type Direct = RateLimiter<NotKeyed, Probed, DefaultClock, StateInformationMiddleware>;
type KeyedByIp = RateLimiter<IpAddr, Returnable<IpAddr>, DefaultClock, StateInformationMiddleware>;

/// One request window as the `x-ratelimit-*` headers describe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowState {
    pub limit: u64,
    pub remaining: u64,
    pub reset_secs: u64,
}

/// The tightest request window seen while admitting a call, and the plan's
/// tokens a minute when it sets one.
#[derive(Debug, Default, Clone, Copy)]
pub struct RateHeaders {
    /// The tightest of the client address's windows.
    address: Option<WindowState>,
    /// The tightest of the user's windows.
    user: Option<WindowState>,
    tokens: Option<WindowState>,
}

/// The tighter of two windows: fewer requests left, or as many and longer
/// to wait; of two alike, the one seen first.
fn tighter(seen: Option<WindowState>, window: WindowState) -> WindowState {
    match seen {
        Some(t)
            if (t.remaining, std::cmp::Reverse(t.reset_secs))
                <= (window.remaining, std::cmp::Reverse(window.reset_secs)) =>
        {
            t
        }
        _ => window,
    }
}

impl RateHeaders {
    pub fn consider(&mut self, window: WindowState) {
        self.consider_from(window, false);
    }

    fn consider_from(&mut self, window: WindowState, address: bool) {
        let slot = if address {
            &mut self.address
        } else {
            &mut self.user
        };
        *slot = Some(tighter(*slot, window));
    }

    /// The address's windows each got this call back. They keep their order
    /// among themselves, so the tightest of them stays so, one looser.
    fn address_given_back(&mut self) {
        given_back(&mut self.address, 1);
    }

    /// The user's windows each got this call back, and the tokens window the
    /// call's `tokens`.
    fn user_given_back(&mut self, tokens: Option<u64>) {
        given_back(&mut self.user, 1);
        if let Some(tokens) = tokens {
            given_back(&mut self.tokens, tokens);
        }
    }

    fn tightest(&self) -> Option<WindowState> {
        match (self.address, self.user) {
            (Some(address), user) => Some(tighter(Some(address), user.unwrap_or(address))),
            (None, user) => user,
        }
    }

    /// The plan's tokens-a-minute window as this call left it.
    fn tokens(&mut self, window: WindowState) {
        self.tokens = Some(window);
    }

    pub fn apply(&self, headers: &mut HeaderMap) {
        let windows = [
            (
                self.tightest(),
                [
                    "x-ratelimit-limit-requests",
                    "x-ratelimit-remaining-requests",
                    "x-ratelimit-reset-requests",
                ],
            ),
            (
                self.tokens,
                [
                    "x-ratelimit-limit-tokens",
                    "x-ratelimit-remaining-tokens",
                    "x-ratelimit-reset-tokens",
                ],
            ),
        ];
        for (window, [limit, remaining, reset]) in windows {
            let Some(w) = window else { continue };
            headers.insert(limit, HeaderValue::from(w.limit));
            headers.insert(remaining, HeaderValue::from(w.remaining));
            if let Ok(value) = HeaderValue::from_str(&format!("{}s", w.reset_secs)) {
                headers.insert(reset, value);
            }
        }
    }
}

/// `window` with `cells` more left, up to its limit; whole again, it has
/// nothing to reset.
fn given_back(window: &mut Option<WindowState>, cells: u64) {
    if let Some(w) = window {
        w.remaining = w.remaining.saturating_add(cells).min(w.limit);
        if w.remaining == w.limit {
            w.reset_secs = 0;
        }
    }
}

/// "1 request", "20 requests".
fn requests(n: impl std::fmt::Display) -> String {
    match n.to_string() {
        one if one == "1" => "1 request".to_owned(),
        n => format!("{n} requests"),
    }
}

/// A user's minute windows. They outlive plan changes (see
/// [`MinuteWindow::with_limit`]), and so does the count of the user's
/// running calls, kept apart in [`Limiters`], so switching plans back and
/// forth gives no fresh bursts.
#[derive(Clone)]
struct UserLimiters {
    requests: MinuteWindow,
    tokens: Option<MinuteWindow>,
    /// The tokens window while the plan sets no such limit: kept, so a
    /// switch there and back does not start the limit fresh.
    parked_tokens: Option<MinuteWindow>,
    /// Up while `requests` and `tokens` are asked without taking.
    probing: Arc<AtomicBool>,
}

/// A user's requests or tokens a minute: a governor limiter, and its GCRA
/// number read from outside so that a new limit can start where this one is.
#[derive(Clone)]
struct MinuteWindow {
    limit: u32,
    limiter: Arc<Direct>,
    /// The theoretical arrival time, in nanoseconds since `started`.
    tat: Arc<AtomicU64>,
    started: <DefaultClock as Clock>::Instant,
    /// The cells the window before this one had used when it was replaced
    /// (more than this limit, it may be), counted as leaving over the
    /// minute after: so a smaller limit passed through does not forget them.
    carried: u64,
}

impl MinuteWindow {
    /// A window of `limit` a minute with `used` cells taken.
    fn new(limit: u32, used: u64, probing: &Arc<AtomicBool>) -> Self {
        let limit = limit.max(1);
        let clock = DefaultClock::default();
        // governor's own start is read a moment later, which only keeps the
        // cells used a few nanoseconds longer.
        let started = clock.now();
        let tat = Arc::new(AtomicU64::new(
            used.min(u64::from(limit)) * interval_nanos(limit),
        ));
        let limiter = RateLimiter::<NotKeyed, Probed, DefaultClock>::new(
            Quota::per_minute(NonZeroU32::new(limit).unwrap_or(NonZeroU32::MIN)),
            Probed::new(probing.clone(), tat.clone()),
            clock,
        )
        .with_middleware::<StateInformationMiddleware>();
        Self {
            limit,
            limiter: Arc::new(limiter),
            tat,
            started,
            carried: used,
        }
    }

    /// The cells taken this last minute, as far as this window knows: its
    /// own not yet replenished, or what it carried over, whichever is more.
    fn used(&self) -> u64 {
        let elapsed = DefaultClock::default()
            .now()
            .duration_since(self.started)
            .as_u64();
        let own = self
            .tat
            .load(Ordering::Acquire)
            .saturating_sub(elapsed)
            .div_ceil(interval_nanos(self.limit));
        let left = u128::from(MINUTE_NANOS.saturating_sub(elapsed));
        let carried = (u128::from(self.carried) * left).div_ceil(u128::from(MINUTE_NANOS));
        own.max(u64::try_from(carried).unwrap_or(u64::MAX))
    }

    /// This window under a new limit, with the cells used so far: a larger
    /// limit leaves the difference free, a smaller one may be full. What the
    /// smaller one cannot hold is carried, so no round of switches gives a
    /// burst back.
    fn with_limit(&self, limit: u32, probing: &Arc<AtomicBool>) -> Self {
        Self::new(limit, self.used(), probing)
    }
}

const MINUTE_NANOS: u64 = 60_000_000_000;

/// The GCRA emission interval of `limit` a minute.
fn interval_nanos(limit: u32) -> u64 {
    let quota = Quota::per_minute(NonZeroU32::new(limit).unwrap_or(NonZeroU32::MIN));
    Nanos::from(quota.replenish_interval()).as_u64()
}

/// One of a user's running calls, counted until dropped.
pub struct Running(Arc<AtomicUsize>);

impl Running {
    /// A call counted nowhere else, for tests.
    #[cfg(test)]
    pub fn alone() -> Self {
        Self(Arc::new(AtomicUsize::new(1)))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The in-memory limiters, shared by every request.
pub struct Limiters {
    ip_minute: KeyedByIp,
    ip_minute_states: Returnable<IpAddr>,
    ip_per_minute: NonZeroU32,
    ip_per_day: NonZeroU32,
    /// Touched only inside the accounts' critical section, so a plan change
    /// cannot rebuild a window between an admission's probe and its take.
    users: Mutex<HashMap<i64, UserLimiters>>,
    /// Each user's running calls, counted whatever the plan's limit.
    running: Mutex<HashMap<i64, Arc<AtomicUsize>>>,
    /// Capped keys' admissions take turns: a call holds its key's turn from
    /// taking the key's use until it is admitted or has given the use back,
    /// so a call another limit refuses never makes a concurrent call on the
    /// same key see it used up.
    capped_turns: Mutex<HashMap<i64, Arc<tokio::sync::Mutex<()>>>>,
    calls: AtomicU64,
}

/// What [`Limiters::admit_ip`] took from a client address's windows, for
/// [`Limiters::give_back_ip`]: a cell of its minute window, and one of its day.
#[derive(Debug, Clone, Copy)]
pub struct AddressTaken {
    /// As counted (`counted_address`).
    ip: IpAddr,
    /// The minute window's state just after the take, by which a late
    /// give-back knows whether the cell came back by itself since.
    minute_cell_until: u64,
}

/// What an admitted call holds until it ends: its parallel slot, the
/// number of its credit hold, and its capped key's use, which the settlement
/// keeps or gives back.
pub struct Admit {
    pub _running: Running,
    pub hold: u64,
    pub capped_use: Option<TakenUse>,
    /// What the call took from the user's windows, given back when the
    /// upstream fails or refuses the call before answering it.
    pub windows: UserTaken,
}

/// Cells taken from one of a user's minute windows, for a give-back: the
/// window's state shared with its limiter (a plan change since replaces the
/// limiter, and a give-back to the old one frees nothing), and that state
/// just after the take.
pub struct TakenCells {
    tat: Arc<AtomicU64>,
    taken_until: u64,
    interval: u64,
    cells: u64,
}

impl TakenCells {
    fn taken_from(window: &MinuteWindow, cells: u64) -> Self {
        Self {
            tat: window.tat.clone(),
            taken_until: window.tat.load(Ordering::Acquire),
            interval: interval_nanos(window.limit),
            cells,
        }
    }

    fn give_back(&self) {
        give_back_probed(&self.tat, self.interval, self.cells, self.taken_until);
    }
}

/// What [`Limiters::admit_user`] took from the user's request windows (a
/// minute's requests and tokens, the hour's and day's requests), for
/// [`Limiters::give_back_user`].
pub struct UserTaken {
    requests: TakenCells,
    tokens: Option<TakenCells>,
    /// The hour's and the day's.
    windows: [crate::store::WindowId; 2],
}

/// The windows' names in the database and in refusals.
pub struct Buckets {
    pub hour: String,
    pub day: String,
    pub month: String,
    pub secs_to_hour: u64,
    pub secs_to_day: u64,
}

impl Buckets {
    pub fn at(now: DateTime<Utc>) -> Self {
        let next_hour = (now + Span::hours(1))
            .with_minute(0)
            .and_then(|t| t.with_second(0))
            .and_then(|t| t.with_nanosecond(0))
            .unwrap_or(now);
        let next_day = (now + Span::days(1))
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc())
            .unwrap_or(now);
        // Rounded up: a caller that waits this long finds the window reset.
        let secs = |until: DateTime<Utc>| {
            let millis = (until - now).num_milliseconds().max(1) as u64;
            millis.div_ceil(1000)
        };
        // The names are prefixes of the stored time text (`2026-11-22T09`,
        // `2026-11-22`, `2026-11`), measured from its `T` so a year of any
        // width fits: one formatting a call instead of three.
        let text = crate::store::stored_time(now);
        let date_len = text.find('T').unwrap_or(text.len());
        let prefix = |len: usize| text.get(..len).unwrap_or(&text).to_owned();
        Self {
            hour: prefix(date_len + 3),
            day: prefix(date_len),
            month: prefix(date_len.saturating_sub(3)),
            secs_to_hour: secs(next_hour),
            secs_to_day: secs(next_day),
        }
    }
}

/// The buckets whose windows stay in memory at `now`: the current ones and,
/// for a minute after each ends, the one before. A call stamped just before
/// the end may still be counting in it, and a window reloaded from the
/// database would miss the counts not yet written.
pub fn buckets_kept(now: DateTime<Utc>) -> [String; 4] {
    let current = Buckets::at(now);
    let earlier = Buckets::at(now - Span::minutes(1));
    [current.hour, current.day, earlier.hour, earlier.day]
}

fn parallel_limit(plan: &PlanRecord) -> Option<usize> {
    plan.max_parallel.map(|n| positive(n) as usize)
}

/// Whose limits a refusal names: an admin's override replaces the plan's,
/// and a user told "your plan" would look for a larger plan that changes
/// nothing.
fn whose_limits(plan: &PlanRecord) -> &'static str {
    if plan.limits_overridden {
        "Your account's limits allow"
    } else {
        "Your plan allows"
    }
}

fn too_many_running(plan: &PlanRecord, most: usize) -> GatewayError {
    GatewayError::Limited {
        code: "parallel_requests",
        message: format!(
            "{} {} at a time; wait for one to finish.",
            whose_limits(plan),
            requests(most)
        ),
        retry_after_secs: 1,
    }
}

fn positive(n: i64) -> u32 {
    u32::try_from(n.max(1)).unwrap_or(u32::MAX)
}

impl Limiters {
    pub fn new(ip_per_minute: NonZeroU32, ip_per_day: NonZeroU32) -> Self {
        let ip_minute_states = Returnable::default();
        Self {
            ip_minute: RateLimiter::<IpAddr, Returnable<IpAddr>, DefaultClock>::new(
                Quota::per_minute(ip_per_minute),
                ip_minute_states.clone(),
                DefaultClock::default(),
            )
            .with_middleware::<StateInformationMiddleware>(),
            ip_minute_states,
            ip_per_minute,
            ip_per_day,
            users: Mutex::new(HashMap::new()),
            running: Mutex::new(HashMap::new()),
            capped_turns: Mutex::new(HashMap::new()),
            calls: AtomicU64::new(0),
        }
    }

    /// Stage 1: the client IP's minute (memory) and day (database) windows.
    pub async fn admit_ip(
        &self,
        accounts: &Accounts,
        ip: IpAddr,
        buckets: &Buckets,
        headers: &mut RateHeaders,
    ) -> Result<AddressTaken, GatewayError> {
        let ip = counted_address(ip);
        if self
            .calls
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(4096)
        {
            self.ip_minute.retain_recent();
        }
        let per_minute = u64::from(self.ip_per_minute.get());
        let taken = match self.ip_minute.check_key(&ip) {
            Ok(snapshot) => {
                headers.consider_from(
                    minute_state(per_minute, snapshot.remaining_burst_capacity()),
                    true,
                );
                AddressTaken {
                    ip,
                    minute_cell_until: self.ip_minute_states.taken_until(&ip),
                }
            }
            Err(not_until) => {
                let secs = wait_secs(&not_until);
                headers.consider(full_minute_state(per_minute, secs));
                return Err(GatewayError::Limited {
                    code: "ip_requests_per_minute",
                    message: format!(
                        "Too many requests from your address: at most {per_minute} a minute."
                    ),
                    retry_after_secs: secs,
                });
            }
        };
        let per_day = i64::from(self.ip_per_day.get());
        let window = ip_day_window(ip, buckets);
        let counted = match accounts.count(&window, per_day).await {
            Ok(counted) => counted,
            Err(error) => {
                self.give_back_ip_minute(taken);
                return Err(error.into());
            }
        };
        match counted {
            Some(count) => headers.consider_from(
                WindowState {
                    limit: per_day as u64,
                    remaining: (per_day - count).max(0) as u64,
                    reset_secs: buckets.secs_to_day,
                },
                true,
            ),
            None => {
                self.give_back_ip_minute(taken);
                headers.consider_from(
                    WindowState {
                        limit: per_day as u64,
                        remaining: 0,
                        reset_secs: buckets.secs_to_day,
                    },
                    true,
                );
                return Err(GatewayError::Limited {
                    code: "ip_requests_per_day",
                    message: format!(
                        "Too many requests from your address today: at most {per_day} a day."
                    ),
                    retry_after_secs: buckets.secs_to_day,
                });
            }
        }
        Ok(taken)
    }

    /// Returns what [`Self::admit_ip`] took, for a call a later limit
    /// refused, and shows it in `headers`.
    pub fn give_back_ip(
        &self,
        accounts: &Accounts,
        taken: AddressTaken,
        buckets: &Buckets,
        headers: &mut RateHeaders,
    ) {
        self.give_back_ip_minute(taken);
        accounts.uncount(&ip_day_window(taken.ip, buckets));
        headers.address_given_back();
    }

    fn give_back_ip_minute(&self, taken: AddressTaken) {
        let interval = Quota::per_minute(self.ip_per_minute).replenish_interval();
        self.ip_minute_states
            .give_back(&taken.ip, interval, taken.minute_cell_until);
    }

    /// The user's minute windows under `plan`. Called only inside the
    /// accounts' critical section (see `users`).
    fn for_user(&self, user_id: i64, plan: &PlanRecord) -> UserLimiters {
        let rpm = positive(plan.requests_per_minute);
        let tpm = plan.tokens_per_minute.map(positive);
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        let entry = users.entry(user_id).or_insert_with(|| {
            let probing = Arc::new(AtomicBool::new(false));
            UserLimiters {
                requests: MinuteWindow::new(rpm, 0, &probing),
                tokens: tpm.map(|t| MinuteWindow::new(t, 0, &probing)),
                parked_tokens: None,
                probing,
            }
        });
        // A plan change applies to the next request: a window whose limit
        // differs is rebuilt from the old one's state, read without taking
        // or probing.
        if entry.requests.limit != rpm {
            entry.requests = entry.requests.with_limit(rpm, &entry.probing);
        }
        if entry.tokens.as_ref().map(|t| t.limit) != tpm {
            let old = entry.tokens.take().or_else(|| entry.parked_tokens.take());
            entry.tokens = tpm.map(|t| match &old {
                Some(old) => old.with_limit(t, &entry.probing),
                None => MinuteWindow::new(t, 0, &entry.probing),
            });
            if entry.tokens.is_none() {
                entry.parked_tokens = old;
            }
        }
        entry.clone()
    }

    /// Forgets what idle users' limits hold: minute windows with nothing used
    /// this last minute (a fresh window is the same) and the counts of users
    /// with no call running. The windows go in the accounts' critical section
    /// (see `users`), so no admission is between its probe and its take.
    pub fn forget_idle_users(&self, accounts: &Accounts) {
        accounts.peek([], || self.forget_unused_windows());
        self.forget_finished_calls();
    }

    fn forget_finished_calls(&self) {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        // Each running call holds a clone of its user's count.
        running.retain(|_, count| Arc::strong_count(count) > 1);
        drop(running);
        let mut turns = self.capped_turns.lock().unwrap_or_else(|p| p.into_inner());
        // So does each call holding or awaiting its key's turn.
        turns.retain(|_, turn| Arc::strong_count(turn) > 1);
    }

    /// Waits for the capped key's turn to take its use (see `capped_turns`).
    async fn capped_turn(&self, key_id: i64) -> tokio::sync::OwnedMutexGuard<()> {
        let turn = {
            let mut turns = self.capped_turns.lock().unwrap_or_else(|p| p.into_inner());
            turns.entry(key_id).or_default().clone()
        };
        turn.lock_owned().await
    }

    fn forget_unused_windows(&self) {
        let used = |window: Option<&MinuteWindow>| window.is_some_and(|w| w.used() > 0);
        let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
        users.retain(|_, user| {
            used(Some(&user.requests))
                || used(user.tokens.as_ref())
                || used(user.parked_tokens.as_ref())
        });
    }

    /// The user's running calls.
    fn running(&self, user_id: i64) -> Arc<AtomicUsize> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        running.entry(user_id).or_default().clone()
    }

    /// Refuses early, taking nothing, when `plan` allows no more calls at a
    /// time: before a one-time key's use is taken for a call that would wait.
    fn may_run(&self, user_id: i64, plan: &PlanRecord) -> Result<(), GatewayError> {
        match parallel_limit(plan) {
            Some(most) if self.running(user_id).load(Ordering::Acquire) >= most => {
                Err(too_many_running(plan, most))
            }
            _ => Ok(()),
        }
    }

    /// Counts a call of the user's as running, unless `plan` allows no more
    /// at a time. Called inside the accounts' critical section, last.
    fn start_running(&self, user_id: i64, plan: &PlanRecord) -> Result<Running, GatewayError> {
        let most = parallel_limit(plan);
        let running = self.running(user_id);
        let started = running.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            most.is_none_or(|most| n < most).then_some(n + 1)
        });
        match (started, most) {
            (Err(_), Some(most)) => Err(too_many_running(plan, most)),
            _ => Ok(Running(running)),
        }
    }

    /// Stages 5 and 6: the user's windows, the key's usage cap and the credit
    /// hold, all or nothing.
    #[allow(clippy::too_many_arguments)]
    pub async fn admit_user(
        &self,
        store: &Store,
        accounts: &Accounts,
        plan: &PlanRecord,
        key: &KeyRecord,
        tokens: u64,
        reserve_micros: i64,
        request_id: Option<&str>,
        buckets: &Buckets,
        headers: &mut RateHeaders,
    ) -> Result<Admit, GatewayError> {
        let user_id = key.user_id;
        self.may_run(user_id, plan)?;
        let windows = user_windows(user_id, plan, buckets);
        for check in &windows {
            accounts.load_window(&check.id).await?;
        }
        if !accounts.load_account(user_id, &buckets.month).await? {
            return Err(GatewayError::Key(crate::keys::auth::KeyAuthError::Unknown));
        }
        accounts.grant_month(user_id, &buckets.month).await?;
        let capped = key.usage_cap.is_some();
        // The turn is held until this call is admitted or has given the use back.
        let (_turn, taken) = if capped {
            let turn = self.capped_turn(key.id).await;
            let Some(taken) = take_use(store, key.id).await? else {
                use crate::keys::auth::KeyAuthError::{UsedUp, UsedUpInFlight};
                let in_flight = store.capped_uses_in_flight(key.id).await?;
                return Err(GatewayError::Key(if in_flight {
                    UsedUpInFlight
                } else {
                    UsedUp
                }));
            };
            (Some(turn), Some(taken))
        } else {
            (None, None)
        };
        let admission = Admission {
            user_id,
            key_id: key.id,
            capped_use: taken.as_ref().map(|taken| taken.use_id),
            windows: &windows,
            reserve_micros,
            request_id,
        };
        // A window the tidy forgot after it was loaded (its hour or day passed
        // while this call waited) is loaded again rather than read as empty.
        let outcome = loop {
            match accounts.admit(&admission, || self.take_last(user_id, plan, tokens)) {
                Err(Refused::Unloaded(id)) => accounts.load_window(&id).await?,
                outcome => break outcome,
            }
        };
        let (admitted, (running, minutes)) = match outcome {
            Ok(admitted) => admitted,
            Err(refused) => {
                if let Some(taken) = taken {
                    taken.give_back().await;
                }
                return Err(refusal(refused, plan, reserve_micros, buckets, headers));
            }
        };
        if let Some(m) = minutes.requests {
            headers.consider(m);
        }
        if let Some(t) = minutes.tokens {
            headers.tokens(t);
        }
        for (window, count, limit) in admitted.windows {
            headers.consider(window_state(window, count, limit, buckets));
        }
        Ok(Admit {
            _running: running,
            hold: admitted.hold,
            capped_use: taken,
            windows: UserTaken {
                requests: minutes.taken.requests,
                tokens: minutes.taken.tokens,
                windows: windows.map(|check| check.id),
            },
        })
    }

    /// Gives back what [`Self::admit_user`] took from the user's request
    /// windows, for a call the upstream failed or refused before answering
    /// (which costs nothing either), and shows it in `headers`. A minute's
    /// cell that has come back by itself since is not given again.
    pub fn give_back_user(&self, accounts: &Accounts, taken: UserTaken, headers: &mut RateHeaders) {
        taken.requests.give_back();
        if let Some(tokens) = &taken.tokens {
            tokens.give_back();
        }
        for id in &taken.windows {
            accounts.uncount(id);
        }
        headers.user_given_back(taken.tokens.map(|tokens| tokens.cells));
    }

    /// What admission asks last, in its critical section, once the windows
    /// and the balance allow the call: the plan's minute windows for tokens
    /// and requests, asked before either takes, then the parallel calls.
    /// Returns the call's running slot and its minute windows after it.
    fn take_last(
        &self,
        user_id: i64,
        plan: &PlanRecord,
        tokens: u64,
    ) -> Result<(Running, MinutesAfter), GatewayError> {
        let n = NonZeroU32::new(u32::try_from(tokens.max(1)).unwrap_or(u32::MAX))
            .unwrap_or(NonZeroU32::MIN);
        let limiters = self.for_user(user_id, plan);
        // Both minute windows are asked before either takes, so neither
        // takes for a call the other refuses.
        let probe = Probe::raise(&limiters.probing);
        let mut refused = None;
        if let Some(MinuteWindow {
            limit: tpm,
            limiter,
            ..
        }) = &limiters.tokens
        {
            match limiter.check_n(n) {
                Ok(Ok(_)) => {}
                Ok(Err(not_until)) => {
                    refused = Some(GatewayError::Limited {
                        code: "tokens_per_minute",
                        message: format!(
                            "{} {tpm} tokens a minute (prompt plus max_tokens); this request needs {tokens}.",
                            whose_limits(plan)
                        ),
                        retry_after_secs: wait_secs(&not_until),
                    });
                }
                Err(_) => {
                    return Err(GatewayError::NeverFits {
                        code: "tokens_per_minute",
                        message: format!(
                            "This request may use {tokens} tokens, more than the {tpm} a minute {}. Lower max_tokens.",
                            whose_limits(plan).to_lowercase()
                        ),
                    });
                }
            }
        }
        let MinuteWindow {
            limit: rpm,
            limiter,
            ..
        } = &limiters.requests;
        // Asked even when the tokens refuse: the answer names the window
        // that is full longer, so a caller waiting out its Retry-After is
        // not refused again by the other.
        if let Err(not_until) = limiter.check() {
            let wait = wait_secs(&not_until);
            let tokens_wait_longer = matches!(
                refused,
                Some(GatewayError::Limited { retry_after_secs, .. }) if retry_after_secs >= wait
            );
            if !tokens_wait_longer {
                refused = Some(GatewayError::Limited {
                    code: "requests_per_minute",
                    message: format!("{} {} a minute.", whose_limits(plan), requests(*rpm)),
                    retry_after_secs: wait,
                });
            }
        }
        if let Some(refusal) = refused {
            return Err(refusal);
        }
        drop(probe);
        // The last limit, asked when every other allows the call so that
        // a refused call never holds a slot another call is refused for.
        let running = self.start_running(user_id, plan)?;
        // Both minute windows allow the call: take. Admissions are one
        // critical section and time only frees cells, so these pass as
        // the probes did.
        let tokens = limiters.tokens.as_ref().and_then(|tokens| {
            let snapshot = tokens.limiter.check_n(n).ok()?.ok()?;
            Some(minute_state(
                u64::from(tokens.limit),
                snapshot.remaining_burst_capacity(),
            ))
        });
        let requests = limiter
            .check()
            .ok()
            .map(|snapshot| minute_state(u64::from(*rpm), snapshot.remaining_burst_capacity()));
        let taken = MinuteCells {
            requests: TakenCells::taken_from(&limiters.requests, 1),
            tokens: limiters
                .tokens
                .as_ref()
                .map(|window| TakenCells::taken_from(window, u64::from(n.get()))),
        };
        Ok((
            running,
            MinutesAfter {
                requests,
                tokens,
                taken,
            },
        ))
    }

    /// The user's requests counted now in the minute, hour and day windows,
    /// counting nothing: the usage page's windows as the limits see them
    /// (the minute's taken and not yet back, rather than calls ended in the
    /// last 60 seconds; the hour's and day's as held in memory, which the
    /// database has only after the next batch). The minute's probe runs
    /// inside the admissions' critical section, as [`Self::peek_user`]'s
    /// does: a probe raised beside an admission would turn its take into a
    /// probe, or the admission's lowered flag this probe into a take.
    pub async fn user_requests_in_use(
        &self,
        accounts: &Accounts,
        plan: &PlanRecord,
        user_id: i64,
        buckets: &Buckets,
    ) -> Result<[i64; 3], StoreError> {
        let windows = user_windows(user_id, plan, buckets);
        for check in &windows {
            accounts.load_window(&check.id).await?;
        }
        let ([hour, day], (rpm, left)) = accounts.peek([&windows[0].id, &windows[1].id], || {
            self.probe_minute(user_id, plan)
        });
        Ok([i64::from(rpm - left.unwrap_or(0)), hour, day])
    }

    /// The user's minute window probed, taking nothing: its limit, and the
    /// requests left or the seconds until the next is allowed. Run inside
    /// [`Accounts::peek`], the admissions' critical section.
    fn probe_minute(&self, user_id: i64, plan: &PlanRecord) -> (u32, Result<u32, u64>) {
        let limiters = self.for_user(user_id, plan);
        let _probe = Probe::raise(&limiters.probing);
        let rpm = limiters.requests.limit;
        let left = match limiters.requests.limiter.check() {
            // A probe answers as if it had taken a cell.
            Ok(snapshot) => Ok(snapshot
                .remaining_burst_capacity()
                .saturating_add(1)
                .min(rpm)),
            Err(not_until) => Err(wait_secs(&not_until)),
        };
        (rpm, left)
    }

    /// The user's request windows as they stand, counting nothing: the
    /// rate-limit headers of a call refused before its admission or by it
    /// (a restriction, an unknown model, too few credits, a limit).
    pub async fn peek_user(
        &self,
        accounts: &Accounts,
        plan: &PlanRecord,
        user_id: i64,
        buckets: &Buckets,
        headers: &mut RateHeaders,
    ) {
        let windows = user_windows(user_id, plan, buckets);
        for check in &windows {
            if accounts.load_window(&check.id).await.is_err() {
                return;
            }
        }
        let (counts, (rpm, left)) = accounts.peek([&windows[0].id, &windows[1].id], || {
            self.probe_minute(user_id, plan)
        });
        headers.consider(match left {
            Ok(remaining) => minute_state(u64::from(rpm), remaining),
            Err(wait) => full_minute_state(u64::from(rpm), wait),
        });
        for (check, count) in windows.iter().zip(counts) {
            headers.consider(window_state(check.id.1, count, check.limit, buckets));
        }
    }
}

/// The user's durable request windows (hour and day) and their limits.
fn user_windows(user_id: i64, plan: &PlanRecord, buckets: &Buckets) -> [WindowCheck; 2] {
    let subject = format!("user:{user_id}");
    [
        WindowCheck {
            id: (subject.clone(), Window::Hour, buckets.hour.clone()),
            limit: plan.requests_per_hour,
        },
        WindowCheck {
            id: (subject, Window::Day, buckets.day.clone()),
            limit: plan.requests_per_day,
        },
    ]
}

/// An hour or day window holding `count` of `limit` requests.
fn window_state(window: Window, count: i64, limit: i64, buckets: &Buckets) -> WindowState {
    WindowState {
        limit: limit as u64,
        remaining: (limit - count).max(0) as u64,
        reset_secs: match window {
            Window::Hour => buckets.secs_to_hour,
            Window::Day => buckets.secs_to_day,
        },
    }
}

/// The day window of an address [`counted_address`] gave.
fn ip_day_window(ip: IpAddr, buckets: &Buckets) -> crate::store::WindowId {
    let subject = match ip {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(block) => format!("ip:{block}/64"),
    };
    (subject, Window::Day, buckets.day.clone())
}

/// Takes one use of a capped key, `None` when it is used up. The take runs as
/// a task of its own: a caller that goes away while it runs (its client gone)
/// drops the [`TakenUse`] it would have got, which gives the use back.
async fn take_use(store: &Store, key_id: i64) -> Result<Option<TakenUse>, StoreError> {
    let store = store.clone();
    crate::store::uncancelled(async move {
        let took = store.take_capped_use(key_id).await?;
        Ok(took.map(|use_id| TakenUse {
            store,
            use_id,
            ended: false,
        }))
    })
    .await
}

/// A capped key's use taken for a call, in flight until one write ends it.
/// It counts once the upstream has answered the call (it ends, kept, in the
/// next write); otherwise it is given back: for a call another
/// limit refused, one the upstream failed or refused before answering, one
/// whose client left first. Dropped, it is given back too.
pub struct TakenUse {
    store: Store,
    /// Its row in `capped_uses_in_flight`.
    use_id: i64,
    ended: bool,
}

impl TakenUse {
    /// The use ends in the write of the call's settlement, as `end` says:
    /// returns what the settlement names.
    pub fn end_with_settlement(mut self, end: CappedUseEnd) -> (i64, CappedUseEnd) {
        self.ended = true;
        (self.use_id, end)
    }

    /// The upstream answered the call, so the use counts whatever follows:
    /// it ends, kept, in the next write rather than with the settlement, so
    /// that a crash during a long stream cannot give it back.
    pub fn keep(mut self) {
        self.ended = true;
        let use_id = self.use_id;
        self.store
            .queue(|batch| batch.capped_use_ended(use_id, CappedUseEnd::Kept));
    }

    /// The server, stopping, gave the use back with the call's hold.
    pub fn ended_with_hold(mut self) {
        self.ended = true;
    }

    /// The call was refused or failed: the use is given back before the
    /// answer goes out, so a retry sees it.
    pub async fn give_back(mut self) {
        self.ended = true;
        let (store, use_id) = (self.store.clone(), self.use_id);
        // Its own task, so it is returned even when the client has gone.
        let returned =
            crate::store::uncancelled(async move { store.return_capped_use(use_id).await });
        report_unreturned(returned.await, use_id);
    }
}

impl Drop for TakenUse {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let (store, use_id) = (self.store.clone(), self.use_id);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn(async move {
                report_unreturned(store.return_capped_use(use_id).await, use_id);
            })),
            // Still in flight in the database: the next start gives it back.
            Err(_) => tracing::error!(
                use_id,
                "a capped key's use was not given back: no runtime to write it"
            ),
        }
    }
}

fn report_unreturned(returned: Result<(), StoreError>, use_id: i64) {
    if let Err(error) = returned {
        // Still in flight in the database: the next start gives it back.
        tracing::error!(%error, use_id, "could not give back a capped key's use");
    }
}

fn wait_secs(not_until: &governor::NotUntil<governor::clock::QuantaInstant>) -> u64 {
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// A user's minute windows as an admitted call left them.
struct MinutesAfter {
    requests: Option<WindowState>,
    tokens: Option<WindowState>,
    taken: MinuteCells,
}

/// What a call took from the user's minute windows.
struct MinuteCells {
    requests: TakenCells,
    tokens: Option<TakenCells>,
}

/// A GCRA minute window: full again after `limit - remaining` emission intervals.
fn minute_state(limit: u64, remaining: u32) -> WindowState {
    let remaining = u64::from(remaining);
    let used = limit.saturating_sub(remaining);
    WindowState {
        limit,
        remaining,
        reset_secs: (used * 60).div_ceil(limit.max(1)),
    }
}

/// A GCRA minute window that refused: one cell frees in `wait_secs`, and
/// the rest one emission interval after another, so the window is whole
/// again (what `x-ratelimit-reset-requests` means) `limit - 1` intervals
/// later. `Retry-After` stays `wait_secs`.
fn full_minute_state(limit: u64, wait_secs: u64) -> WindowState {
    WindowState {
        limit,
        remaining: 0,
        reset_secs: wait_secs + (limit.saturating_sub(1) * 60).div_ceil(limit.max(1)),
    }
}

fn refusal(
    refused: Refused<GatewayError>,
    plan: &PlanRecord,
    needed: i64,
    buckets: &Buckets,
    headers: &mut RateHeaders,
) -> GatewayError {
    match refused {
        Refused::Check(error) => {
            // A refused tokens window has fewer left than the call needed,
            // but how many governor does not say: its headers are left out.
            if let GatewayError::Limited {
                code: "requests_per_minute",
                retry_after_secs,
                ..
            } = &error
            {
                headers.consider(full_minute_state(
                    plan.requests_per_minute as u64,
                    *retry_after_secs,
                ));
            }
            error
        }
        Refused::Window {
            window: Window::Hour,
            limit,
        } => {
            headers.consider(WindowState {
                limit: limit as u64,
                remaining: 0,
                reset_secs: buckets.secs_to_hour,
            });
            GatewayError::Limited {
                code: "requests_per_hour",
                message: format!("{} {} an hour.", whose_limits(plan), requests(limit)),
                retry_after_secs: buckets.secs_to_hour,
            }
        }
        Refused::Window {
            window: Window::Day,
            limit,
        } => {
            headers.consider(WindowState {
                limit: limit as u64,
                remaining: 0,
                reset_secs: buckets.secs_to_day,
            });
            GatewayError::Limited {
                code: "requests_per_day",
                message: format!(
                    "{} {} a day (the day ends at midnight UTC).",
                    whose_limits(plan),
                    requests(limit)
                ),
                retry_after_secs: buckets.secs_to_day,
            }
        }
        Refused::Credits { balance_micros } => GatewayError::Credits {
            needed,
            balance: balance_micros,
        },
        // `admit_user` loads it again and retries.
        Refused::Unloaded(id) => GatewayError::Internal(format!("window {id:?} not loaded")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn buckets_and_resets() {
        let now: DateTime<Utc> = "2026-11-22T23:59:30Z".parse().unwrap();
        let b = Buckets::at(now);
        assert_eq!(
            (b.hour.as_str(), b.day.as_str(), b.month.as_str()),
            ("2026-11-22T23", "2026-11-22", "2026-11")
        );
        assert_eq!((b.secs_to_hour, b.secs_to_day), (30, 30));
        // A part of a second counts as a whole one: waiting that long finds
        // the window reset, never a moment early.
        let b = Buckets::at("2026-11-22T10:59:58.600Z".parse().unwrap());
        assert_eq!((b.secs_to_hour, b.secs_to_day), (2, 46_802));
        let b = Buckets::at("2026-11-22T10:59:59.999Z".parse().unwrap());
        assert_eq!(b.secs_to_hour, 1);

        let kept = |at: &str| buckets_kept(at.parse().unwrap());
        assert_eq!(
            kept("2026-11-23T00:00:30Z"),
            ["2026-11-23T00", "2026-11-23", "2026-11-22T23", "2026-11-22"].map(str::to_owned)
        );
        assert!(!kept("2026-11-23T00:01:01Z").contains(&"2026-11-22".to_owned()));

        // Past year 9999 the stored text carries a sign; the names still follow it.
        let far = Utc.with_ymd_and_hms(12026, 1, 2, 3, 4, 5).unwrap();
        let b = Buckets::at(far);
        assert_eq!(
            (b.hour.as_str(), b.day.as_str(), b.month.as_str()),
            ("+12026-01-02T03", "+12026-01-02", "+12026-01")
        );
    }

    fn test_plan(tokens_per_minute: Option<i64>) -> PlanRecord {
        PlanRecord {
            id: 1,
            slug: "pro".into(),
            name: "Pro".into(),
            description: String::new(),
            requests_per_minute: 6,
            requests_per_hour: 100,
            requests_per_day: 1000,
            tokens_per_minute,
            max_parallel: None,
            monthly_credits: 0,
            max_active_keys: 4,
            allowed_models: None,
            is_public: true,
            is_default: false,
            limits_overridden: true,
            retired: false,
        }
    }

    #[test]
    fn a_tokens_limit_lifted_and_set_again_keeps_the_tokens_used() {
        let limiters = Limiters::new(NonZeroU32::MIN, NonZeroU32::MIN);
        let all = NonZeroU32::new(1000).unwrap();
        let take = |plan: &PlanRecord| {
            let tokens = limiters.for_user(7, plan).tokens.expect("a tokens window");
            tokens.limiter.check_n(all).is_ok_and(|fits| fits.is_ok())
        };
        assert!(take(&test_plan(Some(1000))));
        assert!(limiters.for_user(7, &test_plan(None)).tokens.is_none());
        // Back under the limit, the thousand taken still count.
        assert!(!take(&test_plan(Some(1000))));
    }

    /// When both minute windows are full, the refusal names the one that
    /// frees later, so waiting out its Retry-After is enough for either.
    #[test]
    fn a_refusal_by_both_minute_windows_names_the_longer_wait() {
        let limiters = Limiters::new(NonZeroU32::MIN, NonZeroU32::MIN);
        // 6 requests and 1,000 tokens a minute: two calls of 400 tokens, then
        // four more requests of a token each empty the requests window.
        let plan = test_plan(Some(1000));
        let admit = |tokens| limiters.take_last(7, &plan, tokens).map(drop);
        admit(400).unwrap();
        admit(400).unwrap();
        for _ in 0..4 {
            admit(1).unwrap();
        }
        let Err(GatewayError::Limited {
            code,
            retry_after_secs,
            ..
        }) = admit(400)
        else {
            panic!("the seventh call is refused");
        };
        // The tokens free enough in about 12 s (1,000 a minute, 198 short),
        // the requests window's next cell in 10 s (6 a minute).
        assert_eq!(code, "tokens_per_minute");
        assert!((11..=13).contains(&retry_after_secs), "{retry_after_secs}");
        let Err(GatewayError::Limited {
            code,
            retry_after_secs,
            ..
        }) = admit(1)
        else {
            panic!("a call of one token is refused by the requests window");
        };
        assert_eq!(code, "requests_per_minute");
        assert!((9..=10).contains(&retry_after_secs), "{retry_after_secs}");
        // A call the tokens refuse for less time than the requests window:
        // named by the requests window.
        let busy = test_plan(Some(1000));
        let other = |tokens| limiters.take_last(8, &busy, tokens).map(drop);
        for _ in 0..6 {
            other(160).unwrap();
        }
        let Err(GatewayError::Limited {
            code,
            retry_after_secs,
            ..
        }) = other(100)
        else {
            panic!("the seventh call is refused");
        };
        assert_eq!(code, "requests_per_minute", "waits {retry_after_secs} s");
    }

    #[test]
    fn idle_users_are_forgotten_and_busy_ones_kept() {
        let limiters = Limiters::new(NonZeroU32::MIN, NonZeroU32::MIN);
        let plan = test_plan(Some(1000));
        let busy = limiters.for_user(1, &plan);
        assert!(busy.requests.limiter.check().is_ok());
        limiters.for_user(2, &plan);
        let running = limiters.start_running(3, &plan).unwrap();
        limiters.start_running(4, &plan).map(drop).unwrap();
        limiters.forget_unused_windows();
        limiters.forget_finished_calls();
        fn kept<V>(map: &Mutex<HashMap<i64, V>>) -> Vec<i64> {
            map.lock().unwrap().keys().copied().collect()
        }
        assert_eq!(kept(&limiters.users), [1]);
        assert_eq!(kept(&limiters.running), [3]);
        // Kept while running: the call's end is counted where its start was.
        drop(running);
        assert_eq!(limiters.running(3).load(Ordering::Acquire), 0);
    }

    #[test]
    fn a_window_under_a_new_limit_keeps_the_cells_used() {
        let probing = Arc::new(AtomicBool::new(false));
        let pro = MinuteWindow::new(6, 0, &probing);
        let take =
            |w: &MinuteWindow, n: usize| (0..n).filter(|_| w.limiter.check().is_ok()).count();
        assert_eq!(take(&pro, 3), 3);
        // Standard counts the 3 taken: 1 of its 4 is left.
        let standard = pro.with_limit(4, &probing);
        assert_eq!(take(&standard, 5), 1);
        // Pro counts Standard's 4: 2 left. Full, it stays full through Starter.
        let pro = standard.with_limit(6, &probing);
        assert_eq!(take(&pro, 3), 2);
        let starter = pro.with_limit(2, &probing);
        assert_eq!(take(&starter, 1), 0);
        assert_eq!(take(&starter.with_limit(6, &probing), 1), 0);
        // An unused window stays unused.
        let fresh = MinuteWindow::new(2, 0, &probing).with_limit(6, &probing);
        assert_eq!(take(&fresh, 7), 6);
        // Full under Standard leaves Pro 2; Starter in between forgets none.
        let standard = MinuteWindow::new(4, 4, &probing);
        let pro = standard.with_limit(2, &probing).with_limit(6, &probing);
        assert_eq!(take(&pro, 3), 2);
    }

    #[test]
    fn a_refusing_minute_window_resets_whole_after_its_other_cells() {
        // Two a minute, one frees in 30 s, the other 30 s after.
        assert_eq!(full_minute_state(2, 30).reset_secs, 60);
        assert_eq!(full_minute_state(1, 60).reset_secs, 60);
        assert_eq!(full_minute_state(20, 3).reset_secs, 60);
        assert_eq!(full_minute_state(7, 1).reset_secs, 1 + 52);
        assert_eq!(full_minute_state(0, 1).reset_secs, 1);
    }

    #[test]
    fn the_tightest_window_wins() {
        let mut h = RateHeaders::default();
        h.consider(WindowState {
            limit: 100,
            remaining: 90,
            reset_secs: 3600,
        });
        h.consider(WindowState {
            limit: 2,
            remaining: 1,
            reset_secs: 30,
        });
        h.consider(WindowState {
            limit: 10,
            remaining: 5,
            reset_secs: 60,
        });
        let mut headers = HeaderMap::new();
        h.apply(&mut headers);
        assert_eq!(headers["x-ratelimit-limit-requests"], "2");
        assert_eq!(headers["x-ratelimit-remaining-requests"], "1");
        assert_eq!(headers["x-ratelimit-reset-requests"], "30s");
    }

    /// A call cancelled (its client gone) while a capped key's use is being
    /// taken gets the use back: the database is kept busy by another
    /// connection, so the cancel lands while the take waits for it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_capped_use_taken_for_a_call_cut_short_is_given_back() {
        use sqlx::ConnectOptions;
        use std::{str::FromStr, time::Duration};

        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("t.db").display());
        let store = Store::open(&url).await.unwrap();
        let db = store.pool();
        let plan_id: i64 = sqlx::query_scalar(
            "INSERT INTO plans (slug, name, requests_per_minute, requests_per_hour, requests_per_day, max_active_keys)
             VALUES ('wide', 'Wide', 1000, 1000, 1000, 10) RETURNING id",
        )
        .fetch_one(db)
        .await
        .unwrap();
        let user_id: i64 = sqlx::query_scalar(
            "INSERT INTO users (email, display_name, password_hash, plan_id)
             VALUES ('a@example.com', 'A', 'x', ?) RETURNING id",
        )
        .bind(plan_id)
        .fetch_one(db)
        .await
        .unwrap();
        let key: KeyRecord = sqlx::query_as(
            "INSERT INTO api_keys (user_id, name, env, secret_hash, display_prefix, last_four, scopes, usage_cap)
             VALUES (?, 'capped', 'live', x'00', 'tg_live_', 'abcd', '[\"chat\"]', 10)
             RETURNING id, user_id, name, env, display_prefix, last_four, scopes, allowed_models, ip_allowlist,
                       referrer_domains, usage_cap, usage_count, expires_at, grace_until, created_at,
                       last_used_at, revoked_at",
        )
        .bind(user_id)
        .fetch_one(db)
        .await
        .unwrap();
        let plan = Arc::new(store.plan_of_user(user_id).await.unwrap());
        let key = Arc::new(key);
        let limiters = Arc::new(Limiters::new(NonZeroU32::MAX, NonZeroU32::MAX));
        let accounts = Arc::new(Accounts::new(store.clone()));
        let admit = || {
            let (store, limiters, accounts) = (store.clone(), limiters.clone(), accounts.clone());
            let (plan, key) = (plan.clone(), key.clone());
            tokio::spawn(async move {
                let buckets = Buckets::at(Utc::now());
                let mut headers = RateHeaders::default();
                limiters
                    .admit_user(
                        &store,
                        &accounts,
                        &plan,
                        &key,
                        1,
                        0,
                        None,
                        &buckets,
                        &mut headers,
                    )
                    .await
                    .map(|admit| {
                        // Kept, as the settlement of an answered call would
                        // (whose write is not made here).
                        if let Some(taken) = admit.capped_use {
                            taken.end_with_settlement(CappedUseEnd::Kept);
                        }
                    })
                    .is_ok()
            })
        };
        let counted = || async {
            sqlx::query_scalar::<_, i64>("SELECT usage_count FROM api_keys WHERE id = ?")
                .bind(key.id)
                .fetch_one(store.pool())
                .await
                .unwrap()
        };
        // An admitted call keeps its use (and loads the account and grant).
        assert!(admit().await.unwrap());
        assert_eq!(counted().await, 1);

        // Another connection holds the write lock; the next take waits on it.
        let mut other = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
            .unwrap()
            .connect()
            .await
            .unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut other)
            .await
            .unwrap();
        let call = admit();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!call.is_finished(), "the take did not wait for the lock");
        call.abort();
        assert!(call.await.unwrap_err().is_cancelled());
        sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();

        // The take completes once the lock is free (SQLite's busy wait
        // retries within 100 ms), and its use comes back just after. The count
        // reads 1 before the take and after the give-back alike, so the test
        // waits well past both, then reads it.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(counted().await, 1);
    }

    #[test]
    fn a_limit_of_one_says_request() {
        assert_eq!(super::requests(1_i64), "1 request");
        assert_eq!(super::requests(20_u32), "20 requests");
    }
}
