//! A short-lived read cache for what every gateway call looks up: a key by its
//! hash, the key's owner and the owner's plan. An entry lives one second at
//! most, and any change to users, keys or plans that the store commits drops
//! every entry at once (a generation counter bumped after the commit), so a
//! revoked key or a disabled account is refused on the very next request.
//! Changes made to the database by another process show within the second.

use std::{
    hash::Hash,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use foldhash::{HashMap, HashMapExt};

use super::{KeyRecord, PlanRecord, UserRecord};

/// How long an entry may be served without a change.
const TTL: Duration = Duration::from_secs(1);
/// Entries per map before it is emptied (a bound, not an eviction policy).
const MAX_ENTRIES: usize = 10_000;

struct Entry<T> {
    value: T,
    generation: u64,
    loaded: Instant,
}

/// One map of cached rows.
pub(super) struct Rows<K, T>(Mutex<HashMap<K, Entry<T>>>);

impl<K: Eq + Hash, T: Clone> Rows<K, T> {
    fn new() -> Self {
        Self(Mutex::new(HashMap::new()))
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<K, Entry<T>>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached row, when it was loaded in the current generation and is fresh.
    pub(super) fn get(&self, key: &K, generation: u64) -> Option<T> {
        self.map()
            .get(key)
            .filter(|e| e.generation == generation && e.loaded.elapsed() < TTL)
            .map(|e| e.value.clone())
    }

    /// Keeps a row read in `generation` (read before the query, so a change
    /// committed meanwhile makes the entry stale at once).
    pub(super) fn put(&self, key: K, value: T, generation: u64) {
        let mut map = self.map();
        if map.len() >= MAX_ENTRIES {
            map.clear();
        }
        map.insert(
            key,
            Entry {
                value,
                generation,
                loaded: Instant::now(),
            },
        );
    }
}

pub(super) struct ReadCache {
    generation: AtomicU64,
    pub(super) keys: Rows<Vec<u8>, KeyRecord>,
    pub(super) users: Rows<i64, UserRecord>,
    /// By user id.
    pub(super) plans: Rows<i64, PlanRecord>,
}

impl Default for ReadCache {
    fn default() -> Self {
        Self {
            generation: AtomicU64::new(0),
            keys: Rows::new(),
            users: Rows::new(),
            plans: Rows::new(),
        }
    }
}

impl std::fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadCache")
            .field("generation", &self.generation())
            .finish_non_exhaustive()
    }
}

impl ReadCache {
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Drops every entry: something they were read from has changed.
    pub(super) fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}
