//! Client-side rate limiting of one provider's API calls: a token bucket (`spec.rateLimit`, or
//! a default per cloud) that every HTTP attempt passes through, inside the retry loop, and
//! that slows down when the cloud throttles (AIMD: halve on throttling, recover additively on
//! success). The cloud's retry-after hint, when it gives one, delays the retry of the call it
//! answered ([`super::retry`]); the other calls go on at the lowered rate, as in the AWS
//! SDKs' adaptive retry mode: pausing every call for every hint would let a few random
//! throttling answers stall a whole provider.
//!
//! The bucket is kept as a theoretical arrival time (GCRA): a request may go at
//! `max(now, tat - tolerance)`, after which `tat` moves one interval on. That is the token
//! bucket of `rate` tokens per second holding `burst` tokens, without a timer, and it serves
//! waiters in the order they asked.

use std::future::Future;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::CloudError;
use super::retry::AttemptError;

/// Sustained calls per second and the calls that may go at once after a quiet period.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Sustained calls per second (positive).
    pub per_second: f64,
    /// Calls that may go at once (at least 1).
    pub burst: u32,
}

impl Rate {
    /// Alibaba Cloud's default: the product tag APIs do not publish their per-user flow
    /// control, so tagbinder stays well below the 100 calls/s many OpenAPI actions allow.
    pub const ALIBABA_DEFAULT: Rate = Rate {
        per_second: 20.0,
        burst: 20,
    };
    /// JD Cloud's default: its resource-tag service publishes no limit either; the same
    /// reasoning, with a smaller margin above what its OpenAPI gateway throttles by default.
    pub const JDCLOUD_DEFAULT: Rate = Rate {
        per_second: 10.0,
        burst: 10,
    };
    /// AWS GetResources: 15 calls per second per account and region, not adjustable (spec
    /// aws-resource-groups-tagging.md section 6). AWS documents no burst: evenly spaced calls
    /// (a burst of 1) keep every second within the rate whatever the network's jitter, where
    /// a full second's burst followed by calls at the rate is throttled when two arrive closer
    /// than they were sent.
    pub const AWS_GET_RESOURCES: Rate = Rate {
        per_second: 15.0,
        burst: 1,
    };
    /// AWS TagResources and UntagResources: 5 calls per second each, per account and region
    /// (evenly spaced, as [`Rate::AWS_GET_RESOURCES`]).
    pub const AWS_WRITE: Rate = Rate {
        per_second: 5.0,
        burst: 1,
    };

    /// The lower of two rates, rate and burst each: what `spec.rateLimit` may do to a rate a
    /// cloud fixes (lower it, never raise it).
    pub fn at_most(self, other: Rate) -> Rate {
        Rate {
            per_second: self.per_second.min(other.per_second),
            burst: self.burst.min(other.burst),
        }
    }
}

/// Lowest rate the adaptive backoff goes down to, as a share of the configured rate.
const FLOOR_SHARE: f64 = 1.0 / 16.0;
/// Lowest rate the adaptive backoff goes down to, in calls per second, whatever the
/// configured rate.
const FLOOR_PER_SECOND: f64 = 0.05;
/// Share of the configured rate regained after each successful call.
const RECOVERY_SHARE: f64 = 1.0 / 20.0;

/// A token bucket shared by every call of one provider.
#[derive(Debug)]
pub struct RateLimiter {
    configured: Rate,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// Current rate, at most the configured one.
    rate: f64,
    /// Theoretical arrival time of the next call.
    tat: Instant,
    /// When the rate was last lowered: throttling of calls admitted before then is the same
    /// congestion, already answered.
    lowered_at: Option<Instant>,
}

/// A call's admission: when it was let through.
#[derive(Clone, Copy, Debug)]
pub struct Permit {
    admitted: Instant,
}

impl RateLimiter {
    /// A full bucket of `rate`. A rate that is not positive or not finite is taken as one
    /// call per second; a burst of 0 as 1.
    pub fn new(rate: Rate) -> Self {
        let per_second = if rate.per_second.is_finite() && rate.per_second > 0.0 {
            rate.per_second
        } else {
            1.0
        };
        let configured = Rate {
            per_second,
            burst: rate.burst.max(1),
        };
        RateLimiter {
            configured,
            state: Mutex::new(State {
                rate: per_second,
                tat: Instant::now(),
                lowered_at: None,
            }),
        }
    }

    /// The configured rate.
    pub fn configured(&self) -> Rate {
        self.configured
    }

    /// The current rate, lowered after throttling.
    pub fn current_rate(&self) -> f64 {
        self.lock().rate
    }

    /// Waits until a call may go.
    pub async fn acquire(&self) -> Permit {
        let admitted = self.reserve(Instant::now());
        tokio::time::sleep_until(admitted).await;
        Permit { admitted }
    }

    /// Books the next slot at or after `now` and says when it is.
    fn reserve(&self, now: Instant) -> Instant {
        let mut state = self.lock();
        let interval = interval(state.rate);
        let tolerance = interval.mul_f64(f64::from(self.configured.burst - 1));
        let admitted = now.max(state.tat.checked_sub(tolerance).unwrap_or(now));
        state.tat = state.tat.max(admitted) + interval;
        admitted
    }

    /// The call admitted by `permit` succeeded: the rate recovers a little.
    pub fn succeeded(&self, _permit: &Permit) {
        let mut state = self.lock();
        let configured = self.configured.per_second;
        state.rate = (state.rate + configured * RECOVERY_SHARE).min(configured);
    }

    /// The call admitted by `permit` was throttled: halve the rate (once per congestion: not
    /// again for calls admitted before the last lowering), and let no call go before one
    /// interval at the lowered rate.
    pub fn throttled(&self, permit: &Permit) {
        let now = Instant::now();
        let mut state = self.lock();
        let already_answered = state.lowered_at.is_some_and(|at| permit.admitted <= at);
        if !already_answered {
            let floor = (self.configured.per_second * FLOOR_SHARE).max(FLOOR_PER_SECOND);
            state.rate = (state.rate / 2.0).max(floor.min(self.configured.per_second));
            state.lowered_at = Some(now);
        }
        let interval = interval(state.rate);
        let tolerance = interval.mul_f64(f64::from(self.configured.burst - 1));
        // NB: the next call goes at `tat - tolerance`, so this makes it wait one interval:
        // the bucket is emptied, no burst follows a throttling answer.
        state.tat = state.tat.max(now + interval + tolerance);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // NB: every write leaves the state valid; a poisoned lock is safe to reuse.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn interval(rate: f64) -> Duration {
    Duration::from_secs_f64(1.0 / rate)
}

/// Sends one attempt through `limiter` (when there is one): waits for a slot first, then
/// reports the outcome back to it. `is_throttling` says which failures are the cloud's
/// throttling.
pub(crate) async fn limited<T>(
    limiter: Option<&RateLimiter>,
    is_throttling: impl Fn(&CloudError) -> bool,
    attempt: impl Future<Output = Result<T, AttemptError>>,
) -> Result<T, AttemptError> {
    let Some(limiter) = limiter else {
        return attempt.await;
    };
    let permit = limiter.acquire().await;
    let result = attempt.await;
    match &result {
        Ok(_) => limiter.succeeded(&permit),
        Err(failure) if failure.error.cloud().is_some_and(&is_throttling) => {
            tracing::debug!(
                code = %failure.error.code(),
                rate = limiter.current_rate(),
                "throttled; lowering the call rate"
            );
            limiter.throttled(&permit);
        }
        Err(_) => {}
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::ErrorKind;

    fn limiter(per_second: f64, burst: u32) -> RateLimiter {
        RateLimiter::new(Rate { per_second, burst })
    }

    /// Times (since `start`) at which `n` calls asked at once get through.
    async fn admissions(limiter: &RateLimiter, n: usize) -> Vec<Duration> {
        let start = Instant::now();
        let mut times = Vec::new();
        for _ in 0..n {
            let permit = limiter.acquire().await;
            times.push(permit.admitted - start);
        }
        times
    }

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|v| Duration::from_millis(*v)).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_bucket_lets_the_burst_through_then_paces_at_the_rate() {
        let limiter = limiter(10.0, 3);
        assert_eq!(admissions(&limiter, 6).await, ms(&[0, 0, 0, 100, 200, 300]));
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_period_refills_the_bucket_up_to_the_burst() {
        let limiter = limiter(10.0, 2);
        admissions(&limiter, 4).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(admissions(&limiter, 4).await, ms(&[0, 0, 100, 200]));
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_are_spread_at_the_rate() {
        let limiter = std::sync::Arc::new(limiter(4.0, 1));
        let start = Instant::now();
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let limiter = limiter.clone();
                tokio::spawn(async move { limiter.acquire().await.admitted - start })
            })
            .collect();
        let mut times = Vec::new();
        for task in tasks {
            times.push(task.await.unwrap());
        }
        times.sort();
        assert_eq!(times, ms(&[0, 250, 500, 750, 1000, 1250, 1500, 1750]));
    }

    #[tokio::test(start_paused = true)]
    async fn throttling_halves_the_rate_once_per_congestion() {
        let limiter = limiter(8.0, 1);
        let first = limiter.acquire().await;
        let second = limiter.acquire().await;
        limiter.throttled(&first);
        assert_eq!(limiter.current_rate(), 4.0);
        limiter.throttled(&second);
        assert_eq!(
            limiter.current_rate(),
            4.0,
            "a call admitted before the lowering is the same congestion"
        );
        let third = limiter.acquire().await;
        limiter.throttled(&third);
        assert_eq!(
            limiter.current_rate(),
            2.0,
            "a later call is new congestion"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_rate_never_goes_below_the_floor_and_recovers_on_success() {
        let limiter = limiter(64.0, 1);
        for _ in 0..20 {
            let permit = limiter.acquire().await;
            limiter.throttled(&permit);
        }
        assert_eq!(limiter.current_rate(), 4.0, "1/16 of the configured rate");
        let permit = limiter.acquire().await;
        limiter.succeeded(&permit);
        assert_eq!(limiter.current_rate(), 4.0 + 64.0 / 20.0);
        for _ in 0..40 {
            limiter.succeeded(&permit);
        }
        assert_eq!(
            limiter.current_rate(),
            64.0,
            "never above the configured rate"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn after_throttling_the_next_call_waits_one_interval_at_the_lowered_rate() {
        let limiter = limiter(10.0, 5);
        let start = Instant::now();
        let permit = limiter.acquire().await;
        limiter.throttled(&permit);
        let next = limiter.acquire().await;
        assert_eq!(next.admitted - start, Duration::from_millis(200));
        let after = limiter.acquire().await;
        assert_eq!(
            after.admitted - next.admitted,
            Duration::from_millis(200),
            "no burst after a throttling answer"
        );
    }

    #[test]
    fn nonsense_settings_become_one_call_per_second() {
        for bad in [0.0, -3.0, f64::NAN, f64::INFINITY] {
            let limiter = limiter(bad, 0);
            assert_eq!(
                limiter.configured(),
                Rate {
                    per_second: 1.0,
                    burst: 1
                }
            );
        }
    }

    fn attempt_error(code: &str, retry_after: Option<Duration>) -> AttemptError {
        AttemptError {
            error: CloudError {
                kind: ErrorKind::Retryable,
                action: "TagResources",
                code: code.to_string(),
                message: "test".to_string(),
                http_status: Some(400),
                request_id: None,
                attempts: 1,
            }
            .into(),
            retry_after,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn limited_attempts_feed_throttling_back_and_ignore_other_errors() {
        let limiter = limiter(10.0, 1);
        let throttling = |error: &CloudError| error.code.starts_with("Throttling");
        let result: Result<(), _> = limited(Some(&limiter), throttling, async {
            Err(attempt_error("InternalError", None))
        })
        .await;
        assert!(result.is_err());
        assert_eq!(
            limiter.current_rate(),
            10.0,
            "a server error is no throttling"
        );
        let start = Instant::now();
        let _: Result<(), _> = limited(Some(&limiter), throttling, async {
            Err(attempt_error(
                "Throttling.User",
                Some(Duration::from_secs(1)),
            ))
        })
        .await;
        assert_eq!(limiter.current_rate(), 5.0);
        let value = limited(Some(&limiter), throttling, async { Ok(7) }).await;
        assert_eq!(value.ok(), Some(7));
        assert_eq!(
            Instant::now() - start,
            Duration::from_millis(300),
            "the throttled call went at 100 ms, the next one interval at the halved rate later"
        );
        assert_eq!(limiter.current_rate(), 5.5);
    }

    #[tokio::test]
    async fn without_a_limiter_the_attempt_just_runs() {
        let value = limited(None, |_| true, async { Ok::<_, AttemptError>(3) }).await;
        assert_eq!(value.ok(), Some(3));
    }
}
