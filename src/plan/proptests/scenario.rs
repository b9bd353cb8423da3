//! Random scenarios for the property tests, and the simulated cloud that executes a plan.

use std::collections::BTreeSet;

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;

use crate::plan::*;
use crate::tags::{Limits, Ownership, Tags, TagsByResource};

pub(super) const RESOURCES: [&str; 5] = ["r0", "r1", "r2", "r3", "r4"];
/// Keys that bindings declare.
const KEYS: [&str; 5] = ["k0", "k1", "k2", "k3", "k4"];
/// Keys an ownership record may hold: the declarable ones and (tampered) a system key.
const OWNABLE_KEYS: [&str; 6] = ["k0", "k1", "k2", "k3", "k4", "acs:sys"];
/// Keys only found on resources: foreign ones and a cloud system key.
const FOREIGN_KEYS: [&str; 3] = ["f0", "f1", "acs:sys"];
const VALUES: [&str; 3] = ["a", "b", "c"];
const NAMESPACES: [&str; 2] = ["ns-a", "ns-b"];
pub(super) const SYSTEM_PREFIX: &str = "acs:";

static NO_TAGS: Tags = Tags::new();

#[derive(Clone, Debug)]
pub(super) struct Rival {
    pub(super) binding: BindingId,
    pub(super) resource_ids: BTreeSet<String>,
    pub(super) tags: Tags,
}

#[derive(Clone, Debug)]
pub(super) struct Scenario {
    pub(super) me: BindingId,
    pub(super) desired: Tags,
    pub(super) resource_ids: Vec<String>,
    pub(super) observed: TagsByResource,
    pub(super) owned: Ownership,
    pub(super) rivals: Vec<Rival>,
    pub(super) limits: Limits,
}

fn value() -> impl Strategy<Value = String> {
    select(&VALUES[..]).prop_map(String::from)
}

/// Some of `keys`, each with a random value.
fn some_tags(keys: &'static [&'static str]) -> impl Strategy<Value = Tags> {
    vec(option::of(value()), keys.len()).prop_map(move |values| {
        keys.iter()
            .zip(values)
            .filter_map(|(key, value)| value.map(|value| (key.to_string(), value)))
            .collect()
    })
}

fn some_resources() -> impl Strategy<Value = BTreeSet<String>> {
    vec(any::<bool>(), RESOURCES.len()).prop_map(|picks| {
        RESOURCES
            .iter()
            .zip(picks)
            .filter(|(_, picked)| *picked)
            .map(|(id, _)| id.to_string())
            .collect()
    })
}

/// Creation times from a tiny range (ties, and unknown times, fall back to namespace/name).
fn age_and_namespace() -> impl Strategy<Value = (Option<i64>, &'static str)> {
    (option::of(0i64..3), select(&NAMESPACES[..]))
}

fn small_limits() -> impl Strategy<Value = Limits> {
    (
        1usize..6,
        1usize..5,
        1usize..5,
        prop_oneof![Just(100usize), 2usize..8],
    )
        .prop_map(
            |(resources_per_call, tags_per_call, keys_per_untag_call, tags_per_resource)| Limits {
                resources_per_call,
                tags_per_call,
                keys_per_untag_call,
                tags_per_resource,
                ..Limits::alibaba()
            },
        )
}

/// Per resource and ownable key: maybe owned, with the observed value (when `true` and the
/// key is carried) or a random one (stale records).
type RawOwnership = Vec<Vec<Option<(bool, String)>>>;

pub(super) fn scenario() -> impl Strategy<Value = Scenario> {
    (
        age_and_namespace(),
        some_tags(&KEYS),
        vec(select(&RESOURCES[..]), 0..7),
        vec(
            (some_tags(&KEYS), some_tags(&FOREIGN_KEYS)),
            RESOURCES.len(),
        ),
        vec(
            vec(option::of((any::<bool>(), value())), OWNABLE_KEYS.len()),
            RESOURCES.len(),
        ),
        vec(
            (age_and_namespace(), some_resources(), some_tags(&KEYS)),
            0..=3,
        ),
        small_limits(),
    )
        .prop_map(|(me, desired, ids, observed, owned, rivals, limits)| {
            let observed: TagsByResource = RESOURCES
                .iter()
                .zip(observed)
                .map(|(id, (declarable, foreign))| {
                    (
                        id.to_string(),
                        declarable.into_iter().chain(foreign).collect::<Tags>(),
                    )
                })
                .filter(|(_, carried)| !carried.is_empty())
                .collect();
            let owned = ownership(&observed, owned);
            let rivals = rivals
                .into_iter()
                .enumerate()
                .map(|(i, ((created, namespace), resource_ids, tags))| Rival {
                    binding: binding(created, namespace, &format!("b{i}")),
                    resource_ids,
                    tags,
                })
                .collect();
            Scenario {
                me: binding(me.0, me.1, "me"),
                desired,
                resource_ids: ids.into_iter().map(String::from).collect(),
                observed,
                owned,
                rivals,
                limits,
            }
        })
}

fn binding(created: Option<i64>, namespace: &str, name: &str) -> BindingId {
    BindingId {
        created,
        namespace: namespace.to_string(),
        name: name.to_string(),
    }
}

fn ownership(observed: &TagsByResource, raw: RawOwnership) -> Ownership {
    RESOURCES
        .iter()
        .zip(raw)
        .map(|(id, keys)| {
            let carried = on(observed, id);
            let owned: Tags = OWNABLE_KEYS
                .iter()
                .zip(keys)
                .filter_map(|(key, record)| {
                    let (consistent, random) = record?;
                    let value = match carried.get(*key) {
                        Some(value) if consistent => value.clone(),
                        _ => random,
                    };
                    Some((key.to_string(), value))
                })
                .collect();
            (id.to_string(), owned)
        })
        .collect()
}

pub(super) fn on<'a>(tags: &'a TagsByResource, id: &str) -> &'a Tags {
    tags.get(id).unwrap_or(&NO_TAGS)
}

impl Scenario {
    pub(super) fn plan_from(&self, observed: &TagsByResource, owned: &Ownership) -> Plan {
        let claims: Vec<Claim<'_>> = self
            .rivals
            .iter()
            .map(|rival| Claim {
                binding: &rival.binding,
                resource_ids: &rival.resource_ids,
                tags: &rival.tags,
            })
            .collect();
        plan(&PlanInput {
            binding: &self.me,
            desired: &self.desired,
            resource_ids: &self.resource_ids,
            owned,
            observed,
            claims: &crate::plan::Claims::new(claims),
            limits: &self.limits,
        })
    }

    pub(super) fn declared_resources(&self) -> BTreeSet<&str> {
        self.resource_ids.iter().map(String::as_str).collect()
    }

    pub(super) fn declares(&self, id: &str, key: &str) -> bool {
        self.resource_ids.iter().any(|declared| declared == id) && self.desired.contains_key(key)
    }

    pub(super) fn owns(&self, id: &str, key: &str) -> bool {
        self.owned
            .on(id)
            .is_some_and(|owned| owned.contains_key(key))
    }

    /// Whether this binding loses `key` on `id` to a rival: the oracle of conflicts, written
    /// from the rule (the oldest binding wins, one without a creation time after every dated
    /// one; on a tie, the one whose value is carried; then namespace and name) and not from the planner, so that a planner marking keys
    /// as conflicts wrongly fails the properties instead of being excused by them.
    pub(super) fn loses(&self, id: &str, key: &str) -> bool {
        let Some(mine) = self.desired.get(key).filter(|_| self.declares(id, key)) else {
            return false;
        };
        // NB: on a tie of creation times, the binding whose value the resource carries keeps
        // the key (issue 20); without creation times, names decide.
        let carried = on(&self.observed, id).get(key);
        let rank = |b: &BindingId, value: &String| {
            (
                b.created.is_none(),
                b.created.unwrap_or(0),
                b.created.is_some() && carried != Some(value),
                b.namespace.clone(),
                b.name.clone(),
            )
        };
        let oldest_rival = self
            .rivals
            .iter()
            .filter(|rival| rival.resource_ids.contains(id))
            .filter_map(|rival| {
                rival
                    .tags
                    .get(key)
                    .map(|theirs| (rank(&rival.binding, theirs), theirs))
            })
            .min_by(|a, b| a.0.cmp(&b.0));
        oldest_rival.is_some_and(|(rival, theirs)| rival < rank(&self.me, mine) && theirs != mine)
    }

    /// Whether writing this binding's tags on `id` (those it does not lose), on top of what
    /// `after` carries, would add a key and exceed the tags a resource may carry.
    pub(super) fn over_quota(&self, id: &str, after: &TagsByResource) -> bool {
        let carried = on(after, id);
        let mut custom: BTreeSet<&String> = carried
            .keys()
            .filter(|key| !key.starts_with(SYSTEM_PREFIX))
            .collect();
        let mut adds = false;
        for key in self.desired.keys().filter(|key| !self.loses(id, key)) {
            adds |= !carried.contains_key(key);
            custom.insert(key);
        }
        adds && custom.len() > self.limits.tags_per_resource
    }

    pub(super) fn claimed(&self, id: &str, key: &str) -> bool {
        self.rivals
            .iter()
            .any(|rival| rival.resource_ids.contains(id) && rival.tags.contains_key(key))
    }
}

/// The simulated cloud: untag batches first (removing keys that carry the given value), then
/// tag batches (setting every tag of a batch on every resource of it).
pub(super) fn execute(plan: &Plan, observed: &TagsByResource) -> TagsByResource {
    let mut after = observed.clone();
    for batch in &plan.untag_batches {
        for id in &batch.resource_ids {
            let carried = after.entry(id.clone()).or_default();
            for (key, value) in &batch.tags {
                if carried.get(key) == Some(value) {
                    carried.remove(key);
                }
            }
        }
    }
    for batch in &plan.tag_batches {
        for id in &batch.resource_ids {
            after
                .entry(id.clone())
                .or_default()
                .extend(batch.tags.clone());
        }
    }
    after
}

pub(super) fn everything_confirmed(plan: &Plan) -> Confirmed {
    let pairs = |ids: &[String], tags: &Tags| -> Vec<(String, String)> {
        ids.iter()
            .flat_map(|id| tags.keys().map(move |key| (id.clone(), key.clone())))
            .collect()
    };
    Confirmed {
        written: plan
            .tag_batches
            .iter()
            .flat_map(|b| pairs(&b.resource_ids, &b.tags))
            .collect(),
        pruned: plan
            .untag_batches
            .iter()
            .flat_map(|b| pairs(&b.resource_ids, &b.tags))
            .collect(),
    }
}
