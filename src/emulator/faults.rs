//! Injected faults: throttling above a request rate, random throttling and server errors
//! (deterministic with a seed), and added latency.
//!
//! Cloud-agnostic: [`Faults::decide`] says which fault hits a request; each cloud's endpoint
//! answers it in its own error shape.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Which faults to inject.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultConfig {
    /// Throttle requests beyond this many per second (token bucket, burst of one second's
    /// worth). `None`, or a rate that is not positive: no rate limit.
    pub throttle_above: Option<f64>,
    /// Share of requests throttled at random, 0.0 to 1.0.
    pub throttle_ratio: f64,
    /// Share of requests answered with a server error (500 or 503) at random, 0.0 to 1.0.
    pub error_ratio: f64,
    /// Latency added before each cloud request is handled.
    pub latency: Duration,
    /// Seed of the random faults; the same seed gives the same sequence. `None`: from the OS.
    pub seed: Option<u64>,
}

/// A fault that hits one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fault {
    /// Over the configured rate; the answer may say when to retry.
    RateLimited,
    /// Throttled at random.
    Throttled,
    /// A random internal error (HTTP 500).
    InternalError,
    /// A random unavailability (HTTP 503).
    ServiceUnavailable,
}

/// Decides the faults of successive requests.
#[derive(Debug)]
pub(crate) struct Faults {
    config: FaultConfig,
    state: Mutex<FaultState>,
}

#[derive(Debug)]
struct FaultState {
    rng: StdRng,
    bucket: Option<TokenBucket>,
}

impl Faults {
    /// Faults as configured; the rate limiter starts full.
    pub fn new(config: FaultConfig, now: Instant) -> Self {
        let rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        let bucket = config
            .throttle_above
            .filter(|rate| *rate > 0.0)
            .map(|rate| TokenBucket::new(rate, now));
        Faults {
            config,
            state: Mutex::new(FaultState { rng, bucket }),
        }
    }

    /// Latency to add before handling a request.
    pub fn latency(&self) -> Duration {
        self.config.latency
    }

    /// The fault for the next request, if any. Every call draws the same amount of
    /// randomness whatever the outcome, so the random faults of the n-th request depend only
    /// on the seed and n.
    pub fn decide(&self, now: Instant) -> Option<Fault> {
        // NB: the state is valid after every statement; a poisoned lock is safe to reuse.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let throttle_roll: f64 = state.rng.random();
        let error_roll: f64 = state.rng.random();
        let unavailable: bool = state.rng.random();
        let within_rate = state.bucket.as_mut().is_none_or(|bucket| bucket.take(now));
        if !within_rate {
            Some(Fault::RateLimited)
        } else if throttle_roll < self.config.throttle_ratio {
            Some(Fault::Throttled)
        } else if error_roll < self.config.error_ratio {
            Some(if unavailable {
                Fault::ServiceUnavailable
            } else {
                Fault::InternalError
            })
        } else {
            None
        }
    }
}

/// A token bucket: `rate` tokens per second, holding at most `max(rate, 1)`.
#[derive(Debug)]
struct TokenBucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    refilled: Instant,
}

impl TokenBucket {
    fn new(rate: f64, now: Instant) -> Self {
        let capacity = rate.max(1.0);
        TokenBucket {
            rate,
            capacity,
            tokens: capacity,
            refilled: now,
        }
    }

    /// Takes one token; false when none is left.
    fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.capacity);
        self.refilled = now.max(self.refilled);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sequence(config: &FaultConfig, n: usize) -> Vec<Option<Fault>> {
        let now = Instant::now();
        let faults = Faults::new(config.clone(), now);
        (0..n).map(|_| faults.decide(now)).collect()
    }

    #[test]
    fn a_seed_gives_the_same_sequence_and_another_seed_another() {
        let config = FaultConfig {
            error_ratio: 0.5,
            seed: Some(7),
            ..FaultConfig::default()
        };
        let first = sequence(&config, 64);
        assert_eq!(first, sequence(&config, 64));
        assert!(first.contains(&None));
        assert!(first.contains(&Some(Fault::InternalError)));
        assert!(first.contains(&Some(Fault::ServiceUnavailable)));
        let other = FaultConfig {
            seed: Some(8),
            ..config
        };
        assert_ne!(first, sequence(&other, 64));
    }

    #[test]
    fn ratios_of_zero_and_one_are_never_and_always() {
        let never = FaultConfig::default();
        assert!(sequence(&never, 100).iter().all(Option::is_none));
        let always = FaultConfig {
            throttle_ratio: 1.0,
            ..FaultConfig::default()
        };
        assert!(
            sequence(&always, 100)
                .iter()
                .all(|f| *f == Some(Fault::Throttled))
        );
    }

    #[test]
    fn the_rate_limit_refills_over_time() {
        let start = Instant::now();
        let faults = Faults::new(
            FaultConfig {
                throttle_above: Some(2.0),
                ..FaultConfig::default()
            },
            start,
        );
        assert_eq!(faults.decide(start), None);
        assert_eq!(faults.decide(start), None);
        assert_eq!(faults.decide(start), Some(Fault::RateLimited));
        let later = start + Duration::from_millis(500);
        assert_eq!(
            faults.decide(later),
            None,
            "half a second refills one token"
        );
        assert_eq!(faults.decide(later), Some(Fault::RateLimited));
    }
}
