//! Injected faults: throttling above a request rate, random throttling and server errors
//! (deterministic with a seed), added latency, connections dropped before or after the
//! request is handled, answers slower than a client's timeout, and a skewed server clock.
//!
//! Cloud-agnostic: [`Faults::decide`] says which error answer hits a request, and each
//! cloud's endpoint answers it in its own error shape; [`Faults::decide_connection`] says
//! what happens to the connection, which [`connection_faults`] applies around every cloud
//! request (never the `/_emulator/` ones).

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Which faults to inject (default: none).
#[derive(Clone, Debug, PartialEq)]
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
    /// Share of requests whose connection is dropped before they are handled (nothing
    /// happens; the client sees a broken answer).
    pub drop_ratio: f64,
    /// Share of requests that are handled (a write happens) but whose answer is lost on a
    /// dropped connection: the client cannot know, and retries.
    pub lost_answer_ratio: f64,
    /// Share of requests answered only after [`FaultConfig::slow_answer`].
    pub slow_ratio: f64,
    /// How long a slow answer takes, e.g. longer than the client's timeout.
    pub slow_answer: Duration,
    /// The server clock's offset from the host's (signature date and timestamp checks).
    pub clock_offset: jiff::SignedDuration,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            throttle_above: None,
            throttle_ratio: 0.0,
            error_ratio: 0.0,
            latency: Duration::ZERO,
            seed: None,
            drop_ratio: 0.0,
            lost_answer_ratio: 0.0,
            slow_ratio: 0.0,
            // NB: the delay matters only with a slow ratio; a minute outlasts most timeouts.
            slow_answer: Duration::from_secs(60),
            clock_offset: jiff::SignedDuration::ZERO,
        }
    }
}

/// What happens to the connection of one request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConnectionFault {
    /// Dropped before the request is handled.
    DropBefore,
    /// Dropped after the request is handled, instead of the answer.
    DropAfter,
    /// Answered after the slow-answer delay.
    Slow,
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
    /// A separate stream, so that connection faults do not shift the answer faults.
    connection_rng: StdRng,
    bucket: Option<TokenBucket>,
}

impl Faults {
    /// Faults as configured; the rate limiter starts full.
    pub fn new(config: FaultConfig, now: Instant) -> Self {
        let (rng, connection_rng) = match config.seed {
            Some(seed) => (
                StdRng::seed_from_u64(seed),
                StdRng::seed_from_u64(seed.wrapping_add(0x9e37_79b9_7f4a_7c15)),
            ),
            None => (StdRng::from_os_rng(), StdRng::from_os_rng()),
        };
        let bucket = config
            .throttle_above
            .filter(|rate| *rate > 0.0)
            .map(|rate| TokenBucket::new(rate, now));
        Faults {
            config,
            state: Mutex::new(FaultState {
                rng,
                connection_rng,
                bucket,
            }),
        }
    }

    /// Latency to add before handling a request.
    pub fn latency(&self) -> Duration {
        self.config.latency
    }

    /// The server's clock: the host's, offset as configured.
    pub fn now(&self) -> jiff::Timestamp {
        let now = jiff::Timestamp::now();
        now.checked_add(self.config.clock_offset).unwrap_or(now)
    }

    /// The connection fault of the next request, if any; like [`Faults::decide`], every call
    /// draws the same amount of randomness.
    pub fn decide_connection(&self) -> Option<ConnectionFault> {
        let config = &self.config;
        if config.drop_ratio <= 0.0 && config.lost_answer_ratio <= 0.0 && config.slow_ratio <= 0.0 {
            return None;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let roll: f64 = state.connection_rng.random();
        if roll < config.drop_ratio {
            Some(ConnectionFault::DropBefore)
        } else if roll < config.drop_ratio + config.lost_answer_ratio {
            Some(ConnectionFault::DropAfter)
        } else if roll < config.drop_ratio + config.lost_answer_ratio + config.slow_ratio {
            Some(ConnectionFault::Slow)
        } else {
            None
        }
    }

    /// How long a slow answer takes.
    pub fn slow_answer(&self) -> Duration {
        self.config.slow_answer
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

/// Applies the connection faults around one cloud request: a dropped connection is an
/// answer whose body breaks after the headers, so the client gets no usable answer.
pub(crate) async fn connection_faults(
    axum::extract::State(app): axum::extract::State<std::sync::Arc<super::App>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    match app.faults.decide_connection() {
        None => next.run(request).await,
        Some(ConnectionFault::Slow) => {
            tokio::time::sleep(app.faults.slow_answer()).await;
            next.run(request).await
        }
        Some(ConnectionFault::DropBefore) => {
            app.stats.record("-", "-", "dropped");
            broken_answer()
        }
        Some(ConnectionFault::DropAfter) => {
            let handled = next.run(request).await;
            app.stats.record("-", "-", "answerLost");
            drop(handled);
            broken_answer()
        }
    }
}

/// A 200 whose body fails: hyper resets the connection mid-answer.
fn broken_answer() -> axum::response::Response {
    let broken = futures::stream::once(async {
        Err::<axum::body::Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "injected fault: connection dropped",
        ))
    });
    axum::response::Response::new(axum::body::Body::from_stream(broken))
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
