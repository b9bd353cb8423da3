//! Retry with jittered exponential backoff.

use std::time::Duration;

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
