//! Drift: what a plan would change, summarised for an Observe binding's status (pure).

use std::collections::{BTreeMap, BTreeSet};

use super::{KeyDecision, Plan};
use crate::api::{DriftCounts, DriftSample};

/// Most samples kept in `status.driftSamples`.
pub const MAX_DRIFT_SAMPLES: usize = 10;

/// The drift of a plan: counts, the first samples, and a sentence for people.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Drift {
    /// Resources and keys to add, change or prune.
    pub counts: DriftCounts,
    /// The first [`MAX_DRIFT_SAMPLES`] drifting keys, by resource id then key.
    pub samples: Vec<DriftSample>,
    /// E.g. `3 of 40 resources lack cost-center`.
    pub message: String,
}

impl Drift {
    /// True when some resource differs from the declared tags.
    pub fn is_drifted(&self) -> bool {
        self.counts.resources > 0
    }
}

/// The drift of `plan`, whose binding declares `total` resources. Every `Apply` counts
/// (including those of resources a tag quota blocks: they lack the tags all the same), and
/// every `Prune`; `Keep`, `Release` and `Conflict` are not drift (nothing would be written).
pub fn drift(plan: &Plan, total: usize) -> Drift {
    let mut counts = DriftCounts::default();
    let mut samples = Vec::new();
    // Per key: resources lacking it, carrying another value, carrying it to be pruned.
    let mut lack: BTreeMap<&str, u32> = BTreeMap::new();
    let mut differ: BTreeMap<&str, u32> = BTreeMap::new();
    let mut prune: BTreeMap<&str, u32> = BTreeMap::new();
    let mut drifted: BTreeSet<&str> = BTreeSet::new();
    for (id, keys) in &plan.decisions {
        for (key, decision) in keys {
            let (observed, desired) = match decision {
                KeyDecision::Apply { from: None, to } => {
                    counts.add += 1;
                    *lack.entry(key).or_default() += 1;
                    (None, Some(to.clone()))
                }
                KeyDecision::Apply {
                    from: Some(from),
                    to,
                } => {
                    counts.change += 1;
                    *differ.entry(key).or_default() += 1;
                    (Some(from.clone()), Some(to.clone()))
                }
                KeyDecision::Prune { value } => {
                    counts.prune += 1;
                    *prune.entry(key).or_default() += 1;
                    (Some(value.clone()), None)
                }
                KeyDecision::Keep | KeyDecision::Release | KeyDecision::Conflict { .. } => {
                    continue;
                }
            };
            drifted.insert(id);
            if samples.len() < MAX_DRIFT_SAMPLES {
                samples.push(DriftSample {
                    resource_id: id.clone(),
                    key: key.clone(),
                    observed,
                    desired,
                });
            }
        }
    }
    counts.resources = u32::try_from(drifted.len()).unwrap_or(u32::MAX);
    // NB: pruned resources may be owned without being declared any more: "n of total" counts
    // them too, so that n never exceeds total.
    let total = total.max(drifted.len());
    let message = message(counts.resources, total, &lack, &differ, &prune);
    Drift {
        counts,
        samples,
        message,
    }
}

fn message(
    resources: u32,
    total: usize,
    lack: &BTreeMap<&str, u32>,
    differ: &BTreeMap<&str, u32>,
    prune: &BTreeMap<&str, u32>,
) -> String {
    if resources == 0 {
        return format!("all {total} resources carry the declared tags");
    }
    if differ.is_empty() && prune.is_empty() && lack.len() == 1 {
        let key = lack.keys().next().copied().unwrap_or_default();
        return format!("{resources} of {total} resources lack {key}");
    }
    let mut parts: Vec<String> = Vec::new();
    parts.extend(lack.iter().map(|(key, n)| format!("{n} lack {key}")));
    parts.extend(
        differ
            .iter()
            .map(|(key, n)| format!("{n} carry another value of {key}")),
    );
    parts.extend(
        prune
            .iter()
            .map(|(key, n)| format!("{n} carry {key}, no longer declared")),
    );
    const SHOWN: usize = 4;
    let more = parts.len().saturating_sub(SHOWN);
    parts.truncate(SHOWN);
    if more > 0 {
        parts.push(format!("and {more} more"));
    }
    format!(
        "{resources} of {total} resources differ from the declared tags: {}",
        parts.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(decisions: &[(&str, &str, KeyDecision)]) -> Plan {
        let mut plan = Plan::default();
        for (id, key, decision) in decisions {
            plan.decisions
                .entry(id.to_string())
                .or_default()
                .insert(key.to_string(), decision.clone());
        }
        plan
    }

    fn add(to: &str) -> KeyDecision {
        KeyDecision::Apply {
            from: None,
            to: to.to_string(),
        }
    }

    #[test]
    fn one_missing_key_reads_as_lack() {
        let plan = plan(&[
            ("i-1", "cost-center", add("cc-1")),
            ("i-2", "cost-center", add("cc-1")),
            ("i-3", "cost-center", add("cc-1")),
            ("i-4", "cost-center", KeyDecision::Keep),
        ]);
        let drift = drift(&plan, 40);
        assert_eq!(
            drift.counts,
            DriftCounts {
                resources: 3,
                add: 3,
                change: 0,
                prune: 0
            }
        );
        assert_eq!(drift.message, "3 of 40 resources lack cost-center");
        assert_eq!(drift.samples.len(), 3);
        assert_eq!(drift.samples[0].observed, None);
        assert_eq!(drift.samples[0].desired.as_deref(), Some("cc-1"));
    }

    #[test]
    fn change_prune_and_non_drift_decisions() {
        let plan = plan(&[
            (
                "i-1",
                "env",
                KeyDecision::Apply {
                    from: Some("dev".into()),
                    to: "prod".into(),
                },
            ),
            ("i-1", "team", KeyDecision::Release),
            ("i-2", "old", KeyDecision::Prune { value: "x".into() }),
            (
                "i-3",
                "env",
                KeyDecision::Conflict {
                    winner: "ns/a".into(),
                    value: "qa".into(),
                },
            ),
        ]);
        let drift = drift(&plan, 2);
        assert_eq!(
            drift.counts,
            DriftCounts {
                resources: 2,
                add: 0,
                change: 1,
                prune: 1
            }
        );
        assert_eq!(
            drift.message,
            "2 of 2 resources differ from the declared tags: 1 carry another value of env, \
             1 carry old, no longer declared"
        );
        assert_eq!(drift.samples[1].desired, None);
        assert_eq!(drift.samples[1].observed.as_deref(), Some("x"));
    }

    #[test]
    fn samples_are_capped_and_no_drift_says_so() {
        let decisions: Vec<(String, KeyDecision)> =
            (0..25).map(|i| (format!("i-{i:02}"), add("v"))).collect();
        let decisions: Vec<(&str, &str, KeyDecision)> = decisions
            .iter()
            .map(|(id, d)| (id.as_str(), "k", d.clone()))
            .collect();
        let drift = drift(&plan(&decisions), 25);
        assert_eq!(drift.samples.len(), MAX_DRIFT_SAMPLES);
        assert_eq!(drift.counts.add, 25);
        let none = super::drift(&Plan::default(), 4);
        assert!(!none.is_drifted());
        assert_eq!(none.message, "all 4 resources carry the declared tags");
    }
}
