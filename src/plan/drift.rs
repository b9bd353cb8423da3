//! Drift: what a plan would change, summarised for an Observe binding's status (pure).

use std::collections::{BTreeMap, BTreeSet};

use super::{KeyDecision, Plan};
use crate::api::{DriftCounts, DriftSample};
use crate::tags::{Tags, TagsByResource};

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

/// The drift of `plan`, made from `observed` for a binding that declares `desired` on `total`
/// resources: every declared key whose observed value differs from the declared one, and every
/// key to prune. Every `Apply` counts (including those of resources a tag quota blocks: they
/// lack the tags all the same), every `Prune`, and every `Conflict` where the resource does not
/// carry the declared value (an older binding's value is there, or nothing: it differs from
/// this binding's declaration all the same, though nothing would be written); `Keep` and
/// `Release` are not drift (the declared value is carried, or the key is not declared).
pub fn drift(plan: &Plan, desired: &Tags, observed: &TagsByResource, total: usize) -> Drift {
    let mut counts = DriftCounts::default();
    let mut samples = Vec::new();
    // Per key: resources lacking it, carrying another value, carrying it to be pruned.
    let mut lack: BTreeMap<&str, u32> = BTreeMap::new();
    let mut differ: BTreeMap<&str, u32> = BTreeMap::new();
    let mut prune: BTreeMap<&str, u32> = BTreeMap::new();
    let mut drifted: BTreeSet<&str> = BTreeSet::new();
    for (id, keys) in &plan.decisions {
        for (key, decision) in keys {
            let (from, to) = match decision {
                KeyDecision::Apply { from, to } => (from.as_deref(), Some(to.as_str())),
                KeyDecision::Prune { value } => (Some(value.as_str()), None),
                KeyDecision::Conflict { .. } => {
                    let carried = observed.get(id).and_then(|tags| tags.get(key));
                    let declared = desired.get(key);
                    if carried == declared {
                        continue;
                    }
                    (carried.map(String::as_str), declared.map(String::as_str))
                }
                KeyDecision::Keep | KeyDecision::Release => continue,
            };
            match (from, to) {
                (None, _) => {
                    counts.add += 1;
                    *lack.entry(key).or_default() += 1;
                }
                (Some(_), Some(_)) => {
                    counts.change += 1;
                    *differ.entry(key).or_default() += 1;
                }
                (Some(_), None) => {
                    counts.prune += 1;
                    *prune.entry(key).or_default() += 1;
                }
            }
            drifted.insert(id);
            if samples.len() < MAX_DRIFT_SAMPLES {
                samples.push(DriftSample {
                    resource_id: id.clone(),
                    key: key.clone(),
                    observed: from.map(str::to_string),
                    desired: to.map(str::to_string),
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

    use crate::tags::tags;

    fn by_resource(resources: &[(&str, &[(&str, &str)])]) -> TagsByResource {
        resources
            .iter()
            .map(|(id, pairs)| (id.to_string(), tags(pairs)))
            .collect()
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
        let drift = drift(
            &plan,
            &tags(&[("cost-center", "cc-1")]),
            &TagsByResource::new(),
            40,
        );
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
        // NB: i-3 carries the declared value though an older binding declares another.
        let observed = by_resource(&[("i-3", &[("env", "prod")])]);
        let drift = drift(&plan, &tags(&[("env", "prod")]), &observed, 2);
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
        let drift = drift(
            &plan(&decisions),
            &tags(&[("k", "v")]),
            &TagsByResource::new(),
            25,
        );
        assert_eq!(drift.samples.len(), MAX_DRIFT_SAMPLES);
        assert_eq!(drift.counts.add, 25);
        let none = super::drift(&Plan::default(), &Tags::new(), &TagsByResource::new(), 4);
        assert!(!none.is_drifted());
        assert_eq!(none.message, "all 4 resources carry the declared tags");
    }

    /// An Observe binding that loses a key to an older binding still sees that its resources
    /// do not carry what it declares (issue 20: it reported "all resources carry the declared
    /// tags").
    #[test]
    fn a_lost_conflict_is_drift_when_the_value_differs() {
        let conflict = || KeyDecision::Conflict {
            winner: "ns/older".into(),
            value: "prod".into(),
        };
        let plan = plan(&[
            ("i-1", "env", conflict()),
            ("i-2", "env", conflict()),
            ("i-3", "env", conflict()),
        ]);
        let observed = by_resource(&[("i-1", &[("env", "prod")]), ("i-3", &[("env", "staging")])]);
        let drift = drift(&plan, &tags(&[("env", "staging")]), &observed, 3);
        assert!(drift.is_drifted());
        assert_eq!(
            drift.counts,
            DriftCounts {
                resources: 2,
                add: 1,
                change: 1,
                prune: 0
            }
        );
        assert_eq!(
            drift.message,
            "2 of 3 resources differ from the declared tags: 1 lack env, 1 carry another value \
             of env"
        );
        assert_eq!(drift.samples[0].resource_id, "i-1");
        assert_eq!(drift.samples[0].observed.as_deref(), Some("prod"));
        assert_eq!(drift.samples[0].desired.as_deref(), Some("staging"));
    }
}
