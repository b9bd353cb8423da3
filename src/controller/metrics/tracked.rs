//! What the gauges and the time-to-Ready histogram are computed from: per binding, only while
//! it has something to report (not Ready at its generation, drifted, an intent pending), so
//! that a healthy fleet of 10,000 bindings keeps nothing here but its Ready states.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use jiff::Timestamp;

/// A binding whose resources differ from its declared tags after a pass.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Drift {
    provider: String,
    since: Timestamp,
    interval: Duration,
}

/// Per-binding state behind the fleet's gauges.
#[derive(Debug, Default)]
pub struct Tracked {
    /// Each binding's Ready status and reason.
    readiness: HashMap<String, (bool, &'static str)>,
    /// Bindings by (Ready, reason).
    counts: BTreeMap<(bool, &'static str), usize>,
    /// Bindings not Ready at their generation: the generation and when its change was seen.
    awaiting_ready: HashMap<String, (Option<i64>, Timestamp)>,
    /// Drifted bindings, corrected by no pass since.
    drift: HashMap<String, Drift>,
    /// Every provider that had drift (its gauges go back to 0, not away).
    drift_providers: BTreeSet<String>,
    /// Bindings whose crash-window intent is unresolved, since when.
    intents: HashMap<String, Timestamp>,
}

/// The drift gauges of one provider.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DriftAges {
    /// Age of the oldest uncorrected drift, in seconds (0: none).
    pub oldest_seconds: f64,
    /// Drifted bindings older than two of their intervals.
    pub overdue: usize,
}

impl Tracked {
    /// Records a binding's Ready state (`None`: gone); answers the (Ready, reason) counts that
    /// changed, to set.
    pub fn set_ready(
        &mut self,
        binding: &str,
        state: Option<(bool, &'static str)>,
    ) -> Vec<((bool, &'static str), usize)> {
        let before = match state {
            Some(state) => self.readiness.insert(binding.to_string(), state),
            None => self.readiness.remove(binding),
        };
        if before == state {
            return Vec::new();
        }
        let mut changed = Vec::new();
        if let Some(before) = before {
            let count = self.counts.entry(before).or_default();
            *count = count.saturating_sub(1);
            changed.push((before, *count));
        }
        if let Some(state) = state {
            let count = self.counts.entry(state).or_default();
            *count += 1;
            changed.push((state, *count));
        }
        changed
    }

    /// Bindings Ready and not Ready.
    pub fn ready_counts(&self) -> (usize, usize) {
        self.counts
            .iter()
            .fold((0, 0), |(ready, not), ((is_ready, _), count)| {
                if *is_ready {
                    (ready + count, not)
                } else {
                    (ready, not + count)
                }
            })
    }

    /// A binding not Ready at `generation` was seen at `now` (first seen: the time of its
    /// creation for generation 1, when known).
    pub fn awaiting_ready(
        &mut self,
        binding: &str,
        generation: Option<i64>,
        created: Option<Timestamp>,
        now: Timestamp,
    ) {
        if self
            .awaiting_ready
            .get(binding)
            .is_some_and(|(seen, _)| *seen == generation)
        {
            return;
        }
        let start = match (generation, created) {
            (Some(1) | None, Some(created)) => created.min(now),
            _ => now,
        };
        self.awaiting_ready
            .insert(binding.to_string(), (generation, start));
    }

    /// The binding is Ready at `generation`: the seconds since its change was first seen, if
    /// it was awaited.
    pub fn became_ready(
        &mut self,
        binding: &str,
        generation: Option<i64>,
        now: Timestamp,
    ) -> Option<f64> {
        let (seen, start) = self.awaiting_ready.remove(binding)?;
        (seen == generation).then(|| now.duration_since(start).as_secs_f64().max(0.0))
    }

    /// After a pass: whether the binding's resources still differ from its declared tags.
    pub fn drift(
        &mut self,
        binding: &str,
        provider: &str,
        drifted: Option<Duration>,
        now: Timestamp,
    ) {
        match drifted {
            Some(interval) => {
                self.drift_providers.insert(provider.to_string());
                let entry = self.drift.entry(binding.to_string()).or_insert(Drift {
                    provider: provider.to_string(),
                    since: now,
                    interval,
                });
                entry.interval = interval;
                if entry.provider != provider {
                    entry.provider = provider.to_string();
                    entry.since = now;
                }
            }
            None => {
                self.drift.remove(binding);
            }
        }
    }

    /// The drift gauges of every provider that had drift, at `now`.
    pub fn drift_ages(&self, now: Timestamp) -> BTreeMap<String, DriftAges> {
        let mut ages: BTreeMap<String, DriftAges> = self
            .drift_providers
            .iter()
            .map(|p| (p.clone(), DriftAges::default()))
            .collect();
        for drift in self.drift.values() {
            let age = now.duration_since(drift.since).as_secs_f64().max(0.0);
            let entry = ages.entry(drift.provider.clone()).or_default();
            entry.oldest_seconds = entry.oldest_seconds.max(age);
            if age > 2.0 * drift.interval.as_secs_f64() {
                entry.overdue += 1;
            }
        }
        ages
    }

    /// After a pass: whether the binding's status keeps an unresolved intent.
    pub fn intent(&mut self, binding: &str, pending: bool, now: Timestamp) {
        if pending {
            self.intents.entry(binding.to_string()).or_insert(now);
        } else {
            self.intents.remove(binding);
        }
    }

    /// Pending intents, and the age of the oldest in seconds (0: none).
    pub fn intents(&self, now: Timestamp) -> (usize, f64) {
        let oldest = self
            .intents
            .values()
            .map(|since| now.duration_since(*since).as_secs_f64().max(0.0))
            .fold(0.0, f64::max);
        (self.intents.len(), oldest)
    }

    /// The binding stopped passing (stalled, suspended, deleted): no drift, no intent, no
    /// time to Ready of its own any longer.
    pub fn stopped(&mut self, binding: &str) {
        self.drift.remove(binding);
        self.intents.remove(binding);
        self.awaiting_ready.remove(binding);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + seconds).unwrap()
    }

    #[test]
    fn counts_follow_each_binding_by_ready_and_reason() {
        let mut tracked = Tracked::default();
        tracked.set_ready("ns/a", Some((true, "Synced")));
        tracked.set_ready("ns/b", Some((false, "PartialFailure")));
        let changed = tracked.set_ready("ns/b", Some((false, "ProviderError")));
        assert_eq!(
            changed,
            vec![
                ((false, "PartialFailure"), 0),
                ((false, "ProviderError"), 1)
            ]
        );
        assert!(
            tracked
                .set_ready("ns/b", Some((false, "ProviderError")))
                .is_empty()
        );
        assert_eq!(tracked.ready_counts(), (1, 1));
        tracked.set_ready("ns/a", None);
        assert_eq!(tracked.ready_counts(), (0, 1));
    }

    #[test]
    fn time_to_ready_runs_from_creation_or_from_the_spec_change() {
        let mut tracked = Tracked::default();
        tracked.awaiting_ready("ns/new", Some(1), Some(at(-30)), at(0));
        tracked.awaiting_ready("ns/new", Some(1), Some(at(-30)), at(5));
        assert_eq!(tracked.became_ready("ns/new", Some(1), at(10)), Some(40.0));
        assert_eq!(
            tracked.became_ready("ns/new", Some(1), at(20)),
            None,
            "once"
        );
        tracked.awaiting_ready("ns/changed", Some(4), Some(at(-900)), at(100));
        assert_eq!(
            tracked.became_ready("ns/changed", Some(4), at(103)),
            Some(3.0)
        );
        tracked.awaiting_ready("ns/again", Some(2), None, at(0));
        assert_eq!(tracked.became_ready("ns/again", Some(3), at(9)), None);
    }

    #[test]
    fn drift_ages_per_provider_and_overdue_after_two_intervals() {
        let mut tracked = Tracked::default();
        let minute = Duration::from_secs(60);
        tracked.drift("ns/a", "p1", Some(minute), at(0));
        tracked.drift("ns/a", "p1", Some(minute), at(50));
        tracked.drift("ns/b", "p1", Some(minute), at(100));
        let ages = tracked.drift_ages(at(130));
        assert_eq!(
            ages["p1"],
            DriftAges {
                oldest_seconds: 130.0,
                overdue: 1
            }
        );
        tracked.drift("ns/a", "p1", None, at(140));
        tracked.drift("ns/b", "p1", None, at(140));
        assert_eq!(tracked.drift_ages(at(150))["p1"], DriftAges::default());
    }

    #[test]
    fn intents_count_while_pending() {
        let mut tracked = Tracked::default();
        tracked.intent("ns/a", true, at(0));
        tracked.intent("ns/a", true, at(30));
        tracked.intent("ns/b", true, at(20));
        assert_eq!(tracked.intents(at(60)), (2, 60.0));
        tracked.stopped("ns/a");
        tracked.intent("ns/b", false, at(70));
        assert_eq!(tracked.intents(at(80)), (0, 0.0));
    }
}
