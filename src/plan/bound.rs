//! The fewest cloud calls that converge a fleet of bindings, derived from the declarations and
//! the cloud's state alone (not from the plans): the length of the CLI's progress bar, and
//! what the benches (`benches/cli_scale.rs`, `benches/controller_scale.rs`) compare the calls
//! made against.
//!
//! - Reads: every distinct declared resource of a provider and resource type once,
//!   `resources_per_call` a call, in id order: `ceil(R / 50)` calls for Alibaba Cloud. Where
//!   the cloud pages its answers ([`Paging`]), each call is at least one page and holds every
//!   (tag, resource) entry of its resources: `max(1, ceil(e / 50))` pages for a call whose
//!   resources carry `e` tags, on Alibaba Cloud's ListTagResources, whose pages hold 50
//!   entries (spec: alibaba-rpc-tagging.md, ListTagResources, "Pagination"). So a read of 50
//!   resources with 5 tags each is 5 calls (pages), not 1. JD Cloud's describeResources does
//!   not page. (Grouping resources by how many tags they carry, rather than by id, could
//!   save a page where counts vary; tagbinder reads in id order, and so does the bound.)
//! - Writes: TagResources overwrites, so a call may carry the same tags to many resources.
//!   The tags a binding may write on a resource are its declared tags minus the keys an older
//!   binding wins with another value (DESIGN.md section 3); cut into chunks of
//!   `tags_per_call` keys, a chunk is needed on every resource that misses one of its keys.
//!   Identical chunks share calls across bindings, `resources_per_call` resources a call:
//!   the bound of the core plan extended across bindings. Resources that the quota blocks
//!   are not written.
//!
//! The fleet has no tags to prune (no ownership record names an undeclared tag), as in a
//! first convergence or a no-change pass: untag calls are 0.

use std::collections::{BTreeMap, BTreeSet};

use super::BindingId;
use super::validate::is_reserved_key;
use crate::tags::{Limits, Tags, TagsByResource};

/// One binding of the fleet.
#[derive(Clone, Copy, Debug)]
pub struct FleetBinding<'a> {
    /// Identity and age (decides conflicts).
    pub binding: &'a BindingId,
    /// Its resource type; bindings of one provider only.
    pub resource_type: &'a str,
    /// Declared tags.
    pub tags: &'a Tags,
    /// Declared resources.
    pub resource_ids: &'a [String],
}

/// How a cloud's list answers are paged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paging {
    /// One page per call: JD Cloud's describeResources (no pagination), or a benchmark mode
    /// that counts reads rather than pages.
    OnePerCall,
    /// Pages of at most this many (tag, resource) entries, every page a call.
    Entries(usize),
}

/// Entries per ListTagResources page of Alibaba Cloud's product tag APIs (spec:
/// alibaba-rpc-tagging.md, ListTagResources: "Pages hold up to 50 entries").
pub const ALIBABA_PAGE_ENTRIES: usize = 50;

impl Paging {
    /// The documented paging of a cloud's list call.
    pub fn of(cloud: crate::api::Cloud) -> Self {
        match cloud {
            crate::api::Cloud::Alibaba => Paging::Entries(ALIBABA_PAGE_ENTRIES),
            crate::api::Cloud::Jdcloud => Paging::OnePerCall,
            // NB: GetResources by ResourceARNList takes no paging parameter: one page a call.
            crate::api::Cloud::Aws => Paging::OnePerCall,
        }
    }

    /// The pages (calls) of one list call whose resources carry `entries` (tag, resource)
    /// entries in all.
    pub fn pages(self, entries: usize) -> usize {
        match self {
            Paging::OnePerCall => 1,
            Paging::Entries(per_page) => entries.div_ceil(per_page.max(1)).max(1),
        }
    }
}

/// Calls by action.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallBound {
    /// List calls.
    pub list: usize,
    /// Tag calls.
    pub tag: usize,
    /// Untag calls.
    pub untag: usize,
}

impl CallBound {
    /// Every call.
    pub fn total(&self) -> usize {
        self.list + self.tag + self.untag
    }
}

/// The fewest calls that converge `fleet` (one provider) from `observed` (resource type to
/// resource to tags; a resource absent carries no tags), reads paged as `paging`.
pub fn lower_bound(
    fleet: &[FleetBinding<'_>],
    observed: &BTreeMap<String, TagsByResource>,
    limits: &Limits,
    paging: Paging,
) -> CallBound {
    let per_call = limits.resources_per_call.max(1);
    let no_tags = TagsByResource::new();
    let mut by_type: BTreeMap<&str, Vec<&FleetBinding<'_>>> = BTreeMap::new();
    for binding in fleet {
        by_type
            .entry(binding.resource_type)
            .or_default()
            .push(binding);
    }
    let mut bound = CallBound::default();
    for (resource_type, bindings) in by_type {
        let observed = observed.get(resource_type).unwrap_or(&no_tags);
        let mut declaring: BTreeMap<&str, Vec<&FleetBinding<'_>>> = BTreeMap::new();
        for binding in &bindings {
            let ids: BTreeSet<&str> = binding.resource_ids.iter().map(String::as_str).collect();
            for id in ids {
                declaring.entry(id).or_default().push(binding);
            }
        }
        let ids: Vec<&str> = declaring.keys().copied().collect();
        bound.list += ids
            .chunks(limits.read_chunk())
            .map(|call| {
                let entries = call
                    .iter()
                    .map(|id| observed.get(*id).map_or(0, |tags| tags.len()))
                    .sum();
                paging.pages(entries)
            })
            .sum::<usize>();
        let mut needs: BTreeMap<Tags, BTreeSet<&str>> = BTreeMap::new();
        for (id, bindings) in &declaring {
            let carried = observed.get(*id);
            for binding in bindings {
                let writable = writable_tags(binding, bindings, carried);
                for chunk in chunks_needed(&writable, carried, limits) {
                    needs.entry(chunk).or_default().insert(id);
                }
            }
        }
        bound.tag += needs
            .values()
            .map(|ids| ids.len().div_ceil(per_call))
            .sum::<usize>();
    }
    bound
}

/// The binding's declared tags minus the keys that an older binding declaring the same
/// resource (which carries `carried`) wins with another value (the planner's rule, ties
/// included: [`super::engine::rank`]).
fn writable_tags(
    binding: &FleetBinding<'_>,
    on_resource: &[&FleetBinding<'_>],
    carried: Option<&Tags>,
) -> Tags {
    binding
        .tags
        .iter()
        .filter(|(key, value)| {
            let carried = carried.and_then(|tags| tags.get(*key)).map(String::as_str);
            let rank = |id, value| super::engine::rank(id, value, carried);
            let winner = on_resource
                .iter()
                .filter_map(|other| other.tags.get(*key).map(|v| (other.binding, v)))
                .min_by(|(a, x), (b, y)| rank(a, x).cmp(&rank(b, y)));
            match winner {
                Some((winner, theirs)) => {
                    !(rank(winner, theirs) < rank(binding.binding, value) && theirs != *value)
                }
                None => true,
            }
        })
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// The chunks of `writable` that the resource needs (it misses one of their keys), or none
/// when the new keys would take it over the tag quota.
fn chunks_needed(writable: &Tags, carried: Option<&Tags>, limits: &Limits) -> Vec<Tags> {
    let carried_value = |key: &str| carried.and_then(|tags| tags.get(key));
    let added = writable
        .keys()
        .filter(|key| carried_value(key).is_none())
        .count();
    let kept = carried.map_or(0, |tags| {
        tags.keys()
            .filter(|key| !is_reserved_key(key, limits))
            .count()
    });
    if added > 0 && kept + added > limits.tags_per_resource {
        return Vec::new();
    }
    let pairs: Vec<(&String, &String)> = writable.iter().collect();
    pairs
        .chunks(limits.tags_per_call.max(1))
        .filter(|chunk| {
            chunk
                .iter()
                .any(|(key, value)| carried_value(key) != Some(*value))
        })
        .map(|chunk| {
            chunk
                .iter()
                .map(|(key, value)| ((*key).clone(), (*value).clone()))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::cloud::WriteOp;
    use crate::cloud::batcher::merge;
    use crate::plan::{Claim, PlanInput, plan};
    use crate::tags::Ownership;

    fn id(name: &str, created: i64) -> BindingId {
        BindingId {
            created: Some(created),
            namespace: "team".to_string(),
            name: name.to_string(),
        }
    }

    use crate::tags::tags;

    fn ids(range: std::ops::Range<usize>) -> Vec<String> {
        range.map(|i| format!("r{i:04}")).collect()
    }

    #[test]
    fn bindings_with_the_same_tags_share_calls_per_fifty_resources() {
        let prod = tags(&[("env", "prod"), ("team", "web")]);
        let (a, b) = (id("a", 1), id("b", 2));
        let (ra, rb) = (ids(0..30), ids(30..60));
        let fleet = [
            FleetBinding {
                binding: &a,
                resource_type: "apiGroup",
                tags: &prod,
                resource_ids: &ra,
            },
            FleetBinding {
                binding: &b,
                resource_type: "apiGroup",
                tags: &prod,
                resource_ids: &rb,
            },
        ];
        let bound = lower_bound(
            &fleet,
            &BTreeMap::new(),
            &Limits::alibaba(),
            Paging::OnePerCall,
        );
        assert_eq!(
            bound,
            CallBound {
                list: 2,
                tag: 2,
                untag: 0
            }
        );
        let converged: TagsByResource = ids(0..60)
            .into_iter()
            .map(|id| (id, prod.clone()))
            .collect();
        let observed = BTreeMap::from([("apiGroup".to_string(), converged)]);
        assert_eq!(
            lower_bound(&fleet, &observed, &Limits::alibaba(), Paging::OnePerCall).tag,
            0
        );
    }

    #[test]
    fn a_conflict_key_is_left_out_of_the_younger_bindings_calls() {
        let older_tags = tags(&[("env", "prod")]);
        let younger_tags = tags(&[("env", "dev"), ("team", "web")]);
        let (older, younger) = (id("older", 1), id("younger", 2));
        let shared = ids(0..1);
        let fleet = [
            FleetBinding {
                binding: &younger,
                resource_type: "apiGroup",
                tags: &younger_tags,
                resource_ids: &shared,
            },
            FleetBinding {
                binding: &older,
                resource_type: "apiGroup",
                tags: &older_tags,
                resource_ids: &shared,
            },
        ];
        let bound = lower_bound(
            &fleet,
            &BTreeMap::new(),
            &Limits::alibaba(),
            Paging::OnePerCall,
        );
        assert_eq!(bound.list, 1, "one resource, read once");
        assert_eq!(
            bound.tag, 2,
            "{{env: prod}} and {{team: web}}, not {{env: dev}}"
        );
    }

    #[test]
    fn pages_of_fifty_entries_count_as_calls() {
        let prod = tags(&[("a", "1"), ("b", "1"), ("c", "1"), ("d", "1"), ("e", "1")]);
        let a = id("a", 1);
        let ra = ids(0..50);
        let fleet = [FleetBinding {
            binding: &a,
            resource_type: "apiGroup",
            tags: &prod,
            resource_ids: &ra,
        }];
        let paged = Paging::Entries(ALIBABA_PAGE_ENTRIES);
        let bare = lower_bound(&fleet, &BTreeMap::new(), &Limits::alibaba(), paged);
        assert_eq!(bare.list, 1, "resources without tags answer in one page");
        let tagged: TagsByResource = ra.iter().map(|id| (id.clone(), prod.clone())).collect();
        let observed = BTreeMap::from([("apiGroup".to_string(), tagged)]);
        let converged = lower_bound(&fleet, &observed, &Limits::alibaba(), paged);
        assert_eq!(
            converged.list, 5,
            "50 resources x 5 tags: 250 entries, 5 pages"
        );
        let one = lower_bound(&fleet, &observed, &Limits::alibaba(), Paging::OnePerCall);
        assert_eq!(one.list, 1);
    }

    /// A fleet: bindings (tags from a small alphabet, so that some are identical and some
    /// conflict) over a small set of resources, some of which carry tags already.
    fn fleet_strategy() -> impl Strategy<Value = (Vec<(i64, Tags, Vec<String>)>, TagsByResource)> {
        let tag_set = prop::collection::btree_map(
            prop::sample::select(vec!["env", "team", "cost", "owner", "app"]),
            prop::sample::select(vec!["a", "b"]),
            0..5,
        )
        .prop_map(|map| {
            map.into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Tags>()
        });
        let resources = prop::collection::vec(0usize..24, 0..12)
            .prop_map(|ids| ids.into_iter().map(|i| format!("r{i:02}")).collect());
        let bindings = prop::collection::vec((0i64..5, tag_set.clone(), resources), 0..7);
        let observed = prop::collection::btree_map(
            (0usize..24).prop_map(|i| format!("r{i:02}")),
            tag_set,
            0..12,
        );
        (bindings, observed)
    }

    proptest! {
        /// Each binding planned alone (with the others' claims), its reads and writes pooled
        /// by payload as the batcher pools them: exactly the bound.
        #[test]
        fn planned_and_coalesced_calls_meet_the_bound(
            (raw, carried) in fleet_strategy(),
            per_call in 1usize..5,
            tags_per_call in 1usize..4,
            tags_per_resource in 2usize..8,
        ) {
            let limits = Limits {
                resources_per_call: per_call,
                tags_per_call,
                tags_per_resource,
                ..Limits::alibaba()
            };
            let ids: Vec<BindingId> = raw
                .iter()
                .enumerate()
                .map(|(i, (created, ..))| id(&format!("b{i}"), *created))
                .collect();
            let sets: Vec<BTreeSet<String>> = raw
                .iter()
                .map(|(_, _, resources)| resources.iter().cloned().collect())
                .collect();
            let fleet: Vec<FleetBinding<'_>> = raw
                .iter()
                .zip(&ids)
                .map(|((_, tags, resources), binding)| FleetBinding {
                    binding,
                    resource_type: "apiGroup",
                    tags,
                    resource_ids: resources,
                })
                .collect();
            let observed = BTreeMap::from([("apiGroup".to_string(), carried.clone())]);
            let bound = lower_bound(&fleet, &observed, &limits, Paging::OnePerCall);

            let owned = Ownership::default();
            let mut reads: Vec<Vec<String>> = Vec::new();
            let mut writes: Vec<(Tags, Vec<String>)> = Vec::new();
            for (i, binding) in fleet.iter().enumerate() {
                let claims: Vec<Claim<'_>> = fleet
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(j, other)| Claim {
                        binding: other.binding,
                        resource_ids: &sets[j],
                        tags: other.tags,
                    })
                    .collect();
                let planned = plan(&PlanInput {
                    binding: binding.binding,
                    desired: binding.tags,
                    resource_ids: binding.resource_ids,
                    owned: &owned,
                    observed: &carried,
                    claims: &crate::plan::Claims::new(claims),
                    limits: &limits,
                });
                prop_assert!(planned.untag_batches.is_empty());
                reads.push(sets[i].iter().cloned().collect());
                writes.extend(
                    planned
                        .tag_batches
                        .into_iter()
                        .map(|batch| (batch.tags, batch.resource_ids)),
                );
            }
            let lists = merge::list_calls(reads.iter().map(Vec::as_slice), per_call);
            let tag_calls = merge::write_calls(
                writes
                    .iter()
                    .map(|(tags, ids)| (WriteOp::Tag, tags, ids.as_slice())),
                per_call,
            );
            prop_assert_eq!(lists.len(), bound.list);
            prop_assert_eq!(tag_calls.len(), bound.tag);
        }
    }
}
