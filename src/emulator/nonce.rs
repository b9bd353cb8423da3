//! Replay protection: the signature nonces seen recently, bounded in number and in time.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// Most nonces remembered at once. Beyond it the oldest are forgotten first, which only
/// weakens replay protection for a client sending more than this many requests per window.
pub(crate) const DEFAULT_CAPACITY: usize = 100_000;

/// Nonces seen, each until its expiry. Scoped (e.g. by cloud and access key), so that two
/// callers may use the same nonce.
#[derive(Debug)]
pub(crate) struct NonceCache {
    inner: Mutex<Entries>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Entries {
    expiry: HashMap<(String, String), Instant>,
    /// Insertion order, for expiry and eviction.
    order: VecDeque<(String, String)>,
}

impl NonceCache {
    /// An empty cache that holds at most `capacity` nonces.
    pub fn new(capacity: usize) -> Self {
        NonceCache {
            inner: Mutex::new(Entries::default()),
            capacity: capacity.max(1),
        }
    }

    /// Records `nonce` in `scope` until `expires`; false when it was already recorded and has
    /// not expired (a replay).
    pub fn remember(&self, scope: &str, nonce: &str, expires: Instant, now: Instant) -> bool {
        // NB: every operation leaves the map and queue consistent before it can panic, so a
        // poisoned lock still guards valid data.
        let mut entries = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        entries.forget_expired(now);
        let key = (scope.to_string(), nonce.to_string());
        if entries.expiry.get(&key).is_some_and(|&until| until > now) {
            return false;
        }
        while entries.order.len() >= self.capacity {
            if let Some(oldest) = entries.order.pop_front() {
                entries.expiry.remove(&oldest);
            }
        }
        if entries.expiry.insert(key.clone(), expires).is_none() {
            entries.order.push_back(key);
        }
        true
    }

    /// How many nonces are held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .expiry
            .len()
    }
}

impl Entries {
    /// Drops expired entries from the front of the queue. Expiries are not strictly ordered
    /// by insertion, so an expired entry behind a live one waits; lookups check expiry anyway.
    fn forget_expired(&mut self, now: Instant) {
        while let Some(front) = self.order.front() {
            match self.expiry.get(front) {
                Some(&until) if until > now => break,
                _ => {
                    if let Some(front) = self.order.pop_front() {
                        self.expiry.remove(&front);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_nonce_is_refused_until_it_expires() {
        let cache = NonceCache::new(10);
        let now = Instant::now();
        let later = now + Duration::from_secs(60);
        assert!(cache.remember("alibaba/key", "n1", later, now));
        assert!(!cache.remember("alibaba/key", "n1", later, now + Duration::from_secs(59)));
        assert!(
            cache.remember("alibaba/other", "n1", later, now),
            "scopes are separate"
        );
        assert!(cache.remember("alibaba/key", "n1", later + Duration::from_secs(60), later));
    }

    #[test]
    fn capacity_bounds_the_cache() {
        let cache = NonceCache::new(3);
        let now = Instant::now();
        let until = now + Duration::from_secs(600);
        for nonce in ["a", "b", "c", "d"] {
            assert!(cache.remember("s", nonce, until, now));
        }
        assert_eq!(cache.len(), 3);
        assert!(
            cache.remember("s", "a", until, now),
            "the oldest was forgotten"
        );
        assert!(!cache.remember("s", "d", until, now));
    }

    #[test]
    fn expired_entries_are_dropped() {
        let cache = NonceCache::new(10);
        let now = Instant::now();
        for nonce in ["a", "b"] {
            assert!(cache.remember("s", nonce, now + Duration::from_secs(1), now));
        }
        assert!(cache.remember(
            "s",
            "c",
            now + Duration::from_secs(10),
            now + Duration::from_secs(2)
        ));
        assert_eq!(cache.len(), 1);
    }
}
