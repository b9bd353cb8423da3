//! Replay protection: the signature nonces seen, each kept for as long as a request signed
//! with it is valid, per scope (cloud and access key), bounded in number per scope.
//!
//! NB: a nonce is never forgotten before it expires. A scope that holds its most nonces
//! refuses new ones until some expire (as the cloud answers a replay): evicting the oldest
//! instead would let one account's traffic, or a flood with one key, make another's captured
//! requests replayable.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

/// Most nonces remembered per scope (an access key of a cloud): a client signing more
/// requests than this within the signature-validity window gets replay answers.
pub(crate) const DEFAULT_CAPACITY: usize = 100_000;

/// Nonces seen, each until its expiry. Scoped (e.g. by cloud and access key), so that two
/// callers may use the same nonce, and one caller's volume cannot affect another's.
#[derive(Debug)]
pub(crate) struct NonceCache {
    scopes: Mutex<HashMap<String, Entries>>,
    capacity: usize,
}

#[derive(Debug, Default)]
struct Entries {
    expiry: HashMap<String, Instant>,
    /// Insertion order, for expiry.
    order: VecDeque<String>,
}

impl NonceCache {
    /// An empty cache that holds at most `capacity` nonces per scope.
    pub fn new(capacity: usize) -> Self {
        NonceCache {
            scopes: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// Records `nonce` in `scope` until `expires`; false when it was already recorded and has
    /// not expired (a replay), or when the scope already holds its most live nonces (the
    /// cache could not tell a replay then, so it refuses).
    pub fn remember(&self, scope: &str, nonce: &str, expires: Instant, now: Instant) -> bool {
        // NB: every operation leaves the maps and queues consistent before it can panic, so a
        // poisoned lock still guards valid data.
        let mut scopes = self.scopes.lock().unwrap_or_else(PoisonError::into_inner);
        // NB: scopes are created only for requests whose signature held (real access keys of
        // the inventory), so their number is bounded by the inventory.
        let entries = scopes.entry(scope.to_string()).or_default();
        entries.forget_expired(now);
        if entries.expiry.get(nonce).is_some_and(|&until| until > now) {
            return false;
        }
        if entries.order.len() >= self.capacity {
            return false;
        }
        if entries.expiry.insert(nonce.to_string(), expires).is_none() {
            entries.order.push_back(nonce.to_string());
        }
        true
    }

    /// How many nonces are held, in every scope.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.scopes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .map(|entries| entries.expiry.len())
            .sum()
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
    fn a_full_scope_refuses_new_nonces_until_some_expire_and_never_forgets_a_live_one() {
        let cache = NonceCache::new(3);
        let now = Instant::now();
        let until = now + Duration::from_secs(600);
        for nonce in ["a", "b", "c"] {
            assert!(cache.remember("s", nonce, until, now));
        }
        assert!(!cache.remember("s", "d", until, now), "full: refused");
        assert_eq!(cache.len(), 3);
        assert!(!cache.remember("s", "a", until, now), "a is still a replay");
        let later = until + Duration::from_secs(1);
        assert!(cache.remember("s", "d", later + Duration::from_secs(600), later));
    }

    #[test]
    fn one_scopes_flood_cannot_evict_another_scopes_nonce() {
        let cache = NonceCache::new(3);
        let now = Instant::now();
        let until = now + Duration::from_secs(600);
        assert!(cache.remember("alibaba/victim", "captured", until, now));
        for n in 0..1000 {
            cache.remember("alibaba/flooder", &format!("n{n}"), until, now);
        }
        assert!(
            !cache.remember("alibaba/victim", "captured", until, now),
            "the victim's nonce is still known: its replay is refused"
        );
        assert!(cache.remember("alibaba/victim", "fresh", until, now));
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
