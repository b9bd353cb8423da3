//! Request counts, for tests and benchmarks (`GET /_emulator/stats`).

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

/// Outcome recorded for a request that succeeded.
pub(crate) const OK: &str = "ok";

/// Counts of cloud API requests. Serialises as
/// `{"total": N, "outcomes": {outcome: n}, "requests": {cloud: {action: {outcome: n}}}}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct Counts {
    /// Every request counted.
    pub total: u64,
    /// By outcome, all clouds and actions together.
    pub outcomes: BTreeMap<String, u64>,
    /// By cloud, action and outcome.
    pub requests: BTreeMap<String, BTreeMap<String, BTreeMap<String, u64>>>,
}

/// The counts shared by the request handlers.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    counts: Mutex<Counts>,
}

impl Stats {
    /// Counts one request: `outcome` is [`OK`] or the error code the cloud answered.
    pub fn record(&self, cloud: &str, action: &str, outcome: &str) {
        let mut counts = self.lock();
        counts.total += 1;
        *counts.outcomes.entry(outcome.to_string()).or_default() += 1;
        *counts
            .requests
            .entry(cloud.to_string())
            .or_default()
            .entry(action.to_string())
            .or_default()
            .entry(outcome.to_string())
            .or_default() += 1;
    }

    /// The counts so far.
    pub fn snapshot(&self) -> Counts {
        self.lock().clone()
    }

    /// Starts counting from zero.
    pub fn reset(&self) {
        *self.lock() = Counts::default();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        // NB: counters are plain integers; a poisoned lock still holds valid counts.
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_cloud_action_and_outcome() {
        let stats = Stats::default();
        stats.record("alibaba", "TagResources", OK);
        stats.record("alibaba", "TagResources", OK);
        stats.record("alibaba", "TagResources", "Throttling.User");
        stats.record("alibaba", "ListTagResources", OK);
        let json = serde_json::to_value(stats.snapshot()).unwrap();
        assert_eq!(json["total"], 4);
        assert_eq!(json["outcomes"]["ok"], 3);
        assert_eq!(json["requests"]["alibaba"]["TagResources"]["ok"], 2);
        assert_eq!(
            json["requests"]["alibaba"]["TagResources"]["Throttling.User"],
            1
        );
        stats.reset();
        assert_eq!(stats.snapshot(), Counts::default());
    }
}
