//! Retry with jittered exponential backoff, shared by the cloud clients.
//!
//! A client hands [`retry`] a closure that builds, signs and sends one attempt (a fresh nonce,
//! timestamp and signature every time) and classifies its failure; the loop decides whether
//! and when to try again.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

use super::{CallError, CloudError, Refusal};

/// How a client retries retryable failures: jittered exponential backoff, bounded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub max_attempts: u32,
    /// Backoff ceiling of the first retry.
    pub base_delay: Duration,
    /// Backoff ceiling of any retry.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The backoff ceiling before retry `retry` (1 = the first retry):
    /// `min(max_delay, base_delay * 2^(retry - 1))`, without overflow.
    pub fn backoff_ceiling(&self, retry: u32) -> Duration {
        2u32.checked_pow(retry.saturating_sub(1))
            .and_then(|factor| self.base_delay.checked_mul(factor))
            .map_or(self.max_delay, |delay| delay.min(self.max_delay))
    }

    /// The delay before retry `retry`: the server's hint when it gave one (capped by
    /// `max_delay`), otherwise a uniformly random delay in `[0, backoff_ceiling(retry)]`
    /// ("full jitter").
    pub fn delay(&self, retry: u32, server_hint: Option<Duration>) -> Duration {
        self.delay_with(retry, server_hint, &mut rand::rng())
    }

    fn delay_with<R: Rng + ?Sized>(
        &self,
        retry: u32,
        server_hint: Option<Duration>,
        rng: &mut R,
    ) -> Duration {
        if let Some(hint) = server_hint {
            return hint.min(self.max_delay);
        }
        let ceiling = self.backoff_ceiling(retry);
        let ceiling_nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.random_range(0..=ceiling_nanos))
    }
}

/// One failed attempt: the classified error, and when the server asked to be tried again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptError {
    /// What went wrong: the cloud's answer, or the client's refusal (signing).
    pub error: CallError,
    /// The server's retry-after hint (e.g. Alibaba's `x-acs-retry-after`), when it gave one.
    pub retry_after: Option<Duration>,
}

impl From<CallError> for AttemptError {
    fn from(error: CallError) -> Self {
        AttemptError {
            error,
            retry_after: None,
        }
    }
}

impl From<CloudError> for AttemptError {
    fn from(error: CloudError) -> Self {
        CallError::from(error).into()
    }
}

impl From<Refusal> for AttemptError {
    fn from(refusal: Refusal) -> Self {
        CallError::from(refusal).into()
    }
}

/// Parses a retry-after hint given in seconds (`"2"`, `"0.5"`). `None` for anything else
/// (negative, not a number, out of range).
pub fn retry_after_seconds(value: &str) -> Option<Duration> {
    let seconds: f64 = value.trim().parse().ok()?;
    if seconds.is_sign_negative() {
        return None;
    }
    Duration::try_from_secs_f64(seconds).ok()
}

/// Runs `attempt` until it succeeds, fails with an error that is not retryable, or
/// `policy.max_attempts` attempts were made (at least one). `attempt` gets the 1-based attempt
/// number and must build a fresh request each time. The error returned carries the number of
/// attempts made.
pub async fn retry<T, F, Fut>(
    policy: &RetryPolicy,
    action: &'static str,
    mut attempt: F,
) -> Result<T, CallError>
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, AttemptError>>,
{
    let max_attempts = policy.max_attempts.max(1);
    let mut number = 1;
    loop {
        let failure = match attempt(number).await {
            Ok(value) => return Ok(value),
            Err(failure) => failure,
        };
        let mut error = failure.error;
        if let CallError::Cloud(error) = &mut error {
            error.attempts = number;
        }
        if !error.is_retryable() || number >= max_attempts {
            return Err(error);
        }
        let delay = policy.delay(number, failure.retry_after);
        tracing::debug!(
            action,
            code = %error.code(),
            attempt = number,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            server_hint = failure.retry_after.is_some(),
            "retrying cloud call"
        );
        tokio::time::sleep(delay).await;
        number += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;
    use crate::cloud::ErrorKind;

    fn policy(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
        }
    }

    fn failure(kind: ErrorKind, code: &str) -> AttemptError {
        AttemptError::from(CloudError {
            kind,
            action: "TagResources",
            code: code.to_string(),
            message: "test".to_string(),
            http_status: Some(400),
            request_id: None,
            attempts: 1,
        })
    }

    fn attempts(error: &CallError) -> u32 {
        error.cloud().expect("the cloud's answer").attempts
    }

    #[test]
    fn ceiling_doubles_from_base_and_stops_at_max() {
        let policy = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        let ceilings: Vec<u64> = (1..=6)
            .map(|retry| policy.backoff_ceiling(retry).as_millis() as u64)
            .collect();
        assert_eq!(ceilings, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(policy.backoff_ceiling(0), Duration::from_millis(100));
    }

    #[test]
    fn ceiling_does_not_overflow_on_many_retries() {
        let policy = RetryPolicy {
            max_attempts: u32::MAX,
            base_delay: Duration::from_secs(u64::MAX / 2),
            max_delay: Duration::from_secs(30),
        };
        assert_eq!(policy.backoff_ceiling(2), Duration::from_secs(30));
        assert_eq!(policy.backoff_ceiling(40), Duration::from_secs(30));
        assert_eq!(policy.backoff_ceiling(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn jittered_delay_stays_within_zero_and_the_ceiling() {
        let policy = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(50),
        };
        let mut rng = StdRng::seed_from_u64(7);
        for retry in 1..=8 {
            let ceiling = policy.backoff_ceiling(retry);
            let delays: Vec<Duration> = (0..200)
                .map(|_| policy.delay_with(retry, None, &mut rng))
                .collect();
            assert!(
                delays.iter().all(|delay| *delay <= ceiling),
                "retry {retry}"
            );
            let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
            assert!(distinct.len() > 100, "delays are jittered, retry {retry}");
        }
    }

    #[test]
    fn zero_ceiling_gives_zero_delay() {
        let policy = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::ZERO,
            max_delay: Duration::from_secs(1),
        };
        assert_eq!(policy.delay(3, None), Duration::ZERO);
    }

    #[test]
    fn server_hint_wins_but_is_capped_by_max_delay() {
        let policy = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        };
        let hinted = policy.delay(1, Some(Duration::from_millis(1500)));
        assert_eq!(hinted, Duration::from_millis(1500));
        let capped = policy.delay(1, Some(Duration::from_secs(60)));
        assert_eq!(capped, Duration::from_secs(2));
    }

    #[test]
    fn parses_retry_after_seconds() {
        assert_eq!(retry_after_seconds("2"), Some(Duration::from_secs(2)));
        assert_eq!(
            retry_after_seconds(" 0.5 "),
            Some(Duration::from_millis(500))
        );
        assert_eq!(retry_after_seconds("0"), Some(Duration::ZERO));
        for bad in ["", "-1", "soon", "NaN", "inf", "1e400"] {
            assert_eq!(retry_after_seconds(bad), None, "{bad:?}");
        }
    }

    #[tokio::test]
    async fn retries_retryable_failures_until_success() {
        let calls = Cell::new(Vec::new());
        let result = retry(&policy(5), "TagResources", |attempt| {
            let mut seen = calls.take();
            seen.push(attempt);
            calls.set(seen);
            async move {
                if attempt < 3 {
                    Err(failure(ErrorKind::Retryable, "Throttling.User"))
                } else {
                    Ok("done")
                }
            }
        })
        .await;
        assert_eq!(result, Ok("done"));
        assert_eq!(calls.take(), [1, 2, 3]);
    }

    #[tokio::test]
    async fn terminal_failures_are_not_retried() {
        let calls = Cell::new(0);
        let result: Result<(), _> = retry(&policy(5), "TagResources", |_| {
            calls.set(calls.get() + 1);
            async { Err(failure(ErrorKind::Credentials, "SignatureDoesNotMatch")) }
        })
        .await;
        let error = result.expect_err("a credentials error is terminal");
        assert_eq!(calls.get(), 1);
        assert_eq!(attempts(&error), 1);
        assert_eq!(error.kind(), ErrorKind::Credentials);
    }

    #[tokio::test]
    async fn stops_after_max_attempts_and_says_how_many() {
        let calls = Cell::new(0);
        let result: Result<(), _> = retry(&policy(3), "ListTagResources", |_| {
            calls.set(calls.get() + 1);
            async { Err(failure(ErrorKind::Retryable, "ServiceUnavailable")) }
        })
        .await;
        let error = result.expect_err("every attempt fails");
        assert_eq!(calls.get(), 3);
        assert_eq!(attempts(&error), 3);
        assert!(error.to_string().contains("after 3 attempts"), "{error}");
    }

    #[tokio::test]
    async fn zero_max_attempts_still_makes_one_attempt() {
        let calls = Cell::new(0);
        let result: Result<(), _> = retry(&policy(0), "TagResources", |_| {
            calls.set(calls.get() + 1);
            async { Err(failure(ErrorKind::Retryable, "Throttling")) }
        })
        .await;
        assert_eq!(attempts(&result.expect_err("fails")), 1);
        assert_eq!(calls.get(), 1);
    }
}
