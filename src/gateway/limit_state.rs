//! Where the governor limiters keep their state, so that a call refused by one
//! limit takes nothing from another. governor keeps one number per limiter or
//! key: the GCRA theoretical arrival time, in nanoseconds since the limiter
//! started, which each admitted cell moves on by one emission interval. These stores keep
//! that number as governor's own in-memory stores do and add one thing each:
//!
//! - [`Probed`]: a user's minute limiters can be asked without taking (a
//!   probe), so both are asked before either takes, and their number can be
//!   read from outside, so a plan change carries the cells used over;
//! - [`Returnable`]: the per-IP minute window, taken before any key work, can
//!   give a cell back when a later limit refuses the call; the login
//!   throttle's budgets give theirs back when the password was right.

use std::{
    hash::Hash,
    num::NonZeroU64,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use governor::{
    nanos::Nanos,
    state::{NotKeyed, StateStore, keyed::ShrinkableKeyedStateStore},
};
use std::collections::HashMap;

/// A direct limiter's state that answers without taking while its probe
/// flag is up. The flag is shared by the limiters asked together.
pub struct Probed {
    tat: Arc<AtomicU64>,
    probing: Arc<AtomicBool>,
}

impl Probed {
    /// State starting from `tat` (0: a fresh window), shared with the caller.
    pub fn new(probing: Arc<AtomicBool>, tat: Arc<AtomicU64>) -> Self {
        Self { tat, probing }
    }
}

/// Raises a probe flag until dropped.
pub struct Probe<'a>(&'a AtomicBool);

impl<'a> Probe<'a> {
    pub fn raise(flag: &'a AtomicBool) -> Self {
        flag.store(true, Ordering::Release);
        Self(flag)
    }
}

impl Drop for Probe<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

fn stored(tat: u64) -> Option<Nanos> {
    NonZeroU64::new(tat).map(|n| Nanos::from(n.get()))
}

impl StateStore for Probed {
    type Key = NotKeyed;

    fn measure_and_replace<T, F, E>(&self, _key: &NotKeyed, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut prev = self.tat.load(Ordering::Acquire);
        if self.probing.load(Ordering::Acquire) {
            return f(stored(prev)).map(|(outcome, _)| outcome);
        }
        loop {
            let (outcome, next) = f(stored(prev))?;
            match self.tat.compare_exchange_weak(
                prev,
                next.as_u64(),
                Ordering::Release,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(outcome),
                Err(current) => prev = current,
            }
        }
    }
}

/// Keyed state from which a taken cell can be given back.
///
/// Its keys are client addresses and typed account names, which a caller
/// chooses: std's SipHash, randomly keyed per map, not foldhash, which is not
/// meant for keys an attacker picks to collide.
pub struct Returnable<K> {
    states: Arc<Mutex<HashMap<K, u64>>>,
}

impl<K> Clone for Returnable<K> {
    fn clone(&self) -> Self {
        Self {
            states: self.states.clone(),
        }
    }
}

impl<K> Default for Returnable<K> {
    fn default() -> Self {
        Self {
            states: Arc::default(),
        }
    }
}

impl<K: Hash + Eq + Clone> Returnable<K> {
    fn lock(&self) -> MutexGuard<'_, HashMap<K, u64>> {
        self.states.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// When the cells taken for `key` so far are all back: read just after
    /// a take, when that cell is back, for [`Self::give_back`].
    pub fn taken_until(&self, key: &K) -> u64 {
        self.lock().get(key).copied().unwrap_or_default()
    }

    /// Gives back a cell taken for `key` from a limiter whose emission
    /// interval (the quota's replenish interval) is `interval`; `taken_until`
    /// is what [`Self::taken_until`] read when it was taken.
    ///
    /// Every take moves the state on by exactly one interval, unless the
    /// window was whole again when it came: then it starts afresh from that
    /// moment, and the cells taken before, this one among them, had all come
    /// back by themselves. So the cell is given back while the state is still
    /// `taken_until` and whole intervals on; after a fresh start, giving it
    /// back would free the cell of a call that came since.
    pub fn give_back(&self, key: &K, interval: Duration, taken_until: u64) {
        let interval = Nanos::from(interval).as_u64();
        if let Some(tat) = self.lock().get_mut(key)
            && let Some(back) = without_cells(*tat, taken_until, interval, 1)
        {
            *tat = back;
        }
    }
}

/// The state `tat` with `cells` taken at `taken_until` given back, on
/// [`Returnable::give_back`]'s rule: `None` when the window started afresh
/// since, and those cells had come back by themselves.
fn without_cells(tat: u64, taken_until: u64, interval: u64, cells: u64) -> Option<u64> {
    let interval = interval.max(1);
    let since = i128::from(tat) - i128::from(taken_until);
    (since.rem_euclid(i128::from(interval)) == 0)
        .then(|| tat.saturating_sub(interval.saturating_mul(cells)))
}

/// Gives back `cells` taken from a [`Probed`] limiter whose state is `tat`
/// and whose emission interval is `interval` nanoseconds; `taken_until` is
/// the state read just after the take. A probe or take meanwhile only sees
/// a freer window: time and give-backs only free cells.
pub fn give_back_probed(tat: &AtomicU64, interval: u64, cells: u64, taken_until: u64) {
    let _ = tat.fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
        without_cells(now, taken_until, interval, cells)
    });
}

impl<K: Hash + Eq + Clone> StateStore for Returnable<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut states = self.lock();
        let (outcome, next) = f(states.get(key).map(|&tat| Nanos::from(tat)))?;
        match states.get_mut(key) {
            Some(tat) => *tat = next.as_u64(),
            None => {
                states.insert(key.clone(), next.as_u64());
            }
        }
        Ok(outcome)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for Returnable<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        self.lock().retain(|_, tat| *tat > drop_below.as_u64());
    }

    fn shrink_to_fit(&self) {
        self.lock().shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.lock().len()
    }

    fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use governor::{Quota, RateLimiter, clock::DefaultClock};

    use super::*;

    #[test]
    fn a_probe_answers_without_taking() {
        let flag = Arc::new(AtomicBool::new(false));
        let quota = Quota::per_minute(NonZeroU32::new(2).unwrap());
        let limiter: RateLimiter<NotKeyed, Probed, DefaultClock> = RateLimiter::new(
            quota,
            Probed::new(flag.clone(), Arc::default()),
            DefaultClock::default(),
        );
        {
            let _probe = Probe::raise(&flag);
            for _ in 0..5 {
                assert!(limiter.check().is_ok());
            }
        }
        assert!(limiter.check().is_ok());
        assert!(limiter.check().is_ok());
        assert!(limiter.check().is_err());
        let _probe = Probe::raise(&flag);
        assert!(limiter.check().is_err());
    }

    #[test]
    fn a_cell_given_back_can_be_taken_again() {
        let quota = Quota::per_minute(NonZeroU32::new(2).unwrap());
        let states = Returnable::default();
        let limiter: RateLimiter<&str, Returnable<&str>, DefaultClock> =
            RateLimiter::new(quota, states.clone(), DefaultClock::default());
        let (a, b) = ("a", "b");
        assert!(limiter.check_key(&a).is_ok());
        assert!(limiter.check_key(&a).is_ok());
        let until = states.taken_until(&a);
        assert!(limiter.check_key(&a).is_err());
        states.give_back(&a, quota.replenish_interval(), until);
        assert!(limiter.check_key(&a).is_ok());
        assert!(limiter.check_key(&a).is_err());
        // Another key is untouched, and giving back what was never taken is harmless.
        states.give_back(&b, quota.replenish_interval(), until);
        assert!(limiter.check_key(&b).is_ok());
        assert!(limiter.check_key(&b).is_ok());
        assert!(limiter.check_key(&b).is_err());
    }

    /// A cell that came back by itself is not given back again: that would
    /// free the one a later call took.
    #[test]
    fn a_give_back_frees_only_what_is_left_of_its_cell() {
        // A cell every 100 ms, a burst of two.
        let quota = Quota::with_period(Duration::from_millis(100))
            .unwrap()
            .allow_burst(NonZeroU32::new(2).unwrap());
        let states = Returnable::default();
        let limiter: RateLimiter<&str, Returnable<&str>, DefaultClock> =
            RateLimiter::new(quota, states.clone(), DefaultClock::default());
        // A call takes a cell, which is back 100 ms later; two more calls
        // then take the burst.
        assert!(limiter.check_key(&"a").is_ok());
        let first = states.taken_until(&"a");
        std::thread::sleep(Duration::from_millis(150));
        assert!(limiter.check_key(&"a").is_ok());
        assert!(limiter.check_key(&"a").is_ok());
        assert!(limiter.check_key(&"a").is_err());
        // The first call is refused late: its cell is long back.
        states.give_back(&"a", quota.replenish_interval(), first);
        assert!(
            limiter.check_key(&"a").is_err(),
            "the give-back freed a cell taken after its own came back"
        );

        // Calls queued behind a cell, with no fresh start since: it is given
        // back whole, however late.
        assert!(limiter.check_key(&"b").is_ok());
        let queued = states.taken_until(&"b");
        assert!(limiter.check_key(&"b").is_ok());
        assert!(limiter.check_key(&"b").is_err());
        std::thread::sleep(Duration::from_millis(120));
        states.give_back(&"b", quota.replenish_interval(), queued);
        assert!(limiter.check_key(&"b").is_ok());
        assert!(limiter.check_key(&"b").is_ok());
        assert!(limiter.check_key(&"b").is_err());
    }

    /// A direct limiter's cells given back, several at once (a tokens
    /// window), on the same rule: whole while no fresh start came since.
    #[test]
    fn cells_taken_from_a_probed_limiter_are_given_back() {
        // A cell every 100 ms, a burst of four.
        let quota = Quota::with_period(Duration::from_millis(100))
            .unwrap()
            .allow_burst(NonZeroU32::new(4).unwrap());
        let interval = Nanos::from(quota.replenish_interval()).as_u64();
        let tat = Arc::new(AtomicU64::new(0));
        let limiter: RateLimiter<NotKeyed, Probed, DefaultClock> = RateLimiter::new(
            quota,
            Probed::new(Arc::default(), tat.clone()),
            DefaultClock::default(),
        );
        let three = NonZeroU32::new(3).unwrap();
        assert!(limiter.check_n(three).unwrap().is_ok());
        let taken_until = tat.load(Ordering::Acquire);
        assert!(limiter.check_n(three).unwrap().is_err());
        give_back_probed(&tat, interval, 3, taken_until);
        assert!(limiter.check_n(three).unwrap().is_ok());

        // Taken, then the window whole again and a fresh take: the old
        // cells came back by themselves and free nothing more.
        let late = tat.load(Ordering::Acquire);
        std::thread::sleep(Duration::from_millis(450));
        assert!(limiter.check_n(three).unwrap().is_ok());
        give_back_probed(&tat, interval, 3, late);
        assert!(limiter.check_n(three).unwrap().is_err());
    }
}
