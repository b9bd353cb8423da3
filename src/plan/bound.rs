//! The fewest cloud calls that converge a fleet of bindings, derived from the declarations and
//! the cloud's state alone (each binding planned as if it owned nothing, its payloads pooled
//! across bindings, not from the calls a run made): the length of the CLI's progress bar, and
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
//!   Each binding is planned alone by the planner (the tags it may write on a resource are
//!   its declared tags minus the keys an older binding wins with another value, DESIGN.md
//!   section 3; resources the quota blocks are not written), its payloads cut as
//!   [`crate::calls`] cuts them; identical payloads share calls across bindings,
//!   `resources_per_call` resources a call: the bound of the core plan extended across
//!   bindings.
//!
//! The fleet has no tags to prune (no ownership record names an undeclared tag), as in a
//! first convergence or a no-change pass: untag calls are 0.

use std::collections::{BTreeMap, BTreeSet};

use super::claims::SharedClaims;
use super::{BindingId, Claim, Claims, PlanInput, plan};
use crate::calls;
use crate::tags::{Limits, Ownership, Tags, TagsByResource};

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
///
/// The writes are the planner's: each binding is planned alone ([`super::plan`], owning
/// nothing yet, with the claims of every binding on its resources), and its tag payloads are
/// pooled across bindings as the batcher pools them ([`crate::calls`]). The bound keeps no
/// copy of the ownership rules (conflicts, ties, the tag quota).
pub fn lower_bound(
    fleet: &[FleetBinding<'_>],
    observed: &BTreeMap<String, TagsByResource>,
    limits: &Limits,
    paging: Paging,
) -> CallBound {
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
        let sets: Vec<BTreeSet<String>> = bindings
            .iter()
            .map(|binding| binding.resource_ids.iter().cloned().collect())
            .collect();
        let mut declaring: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
        for (index, set) in sets.iter().enumerate() {
            for id in set {
                declaring.entry(id).or_default().push(index);
            }
        }
        let ids: Vec<&str> = declaring.keys().copied().collect();
        bound.list += calls::read_chunks(&ids, limits)
            .map(|call| {
                let entries = call
                    .iter()
                    .map(|id| observed.get(*id).map_or(0, |tags| tags.len()))
                    .sum();
                paging.pages(entries)
            })
            .sum::<usize>();
        bound.tag += tag_calls(&bindings, &sets, &declaring, observed, limits);
    }
    bound
}

/// The tag calls of `bindings` (one resource type), each planned with the claims of every
/// binding on its resources (one list per distinct set of resources), pooled by payload.
fn tag_calls(
    bindings: &[&FleetBinding<'_>],
    sets: &[BTreeSet<String>],
    declaring: &BTreeMap<&str, Vec<usize>>,
    observed: &TagsByResource,
    limits: &Limits,
) -> usize {
    let owned = Ownership::default();
    let mut shared: SharedClaims<&str, Claims<'_>> = SharedClaims::default();
    let mut needs: BTreeMap<Tags, BTreeSet<String>> = BTreeMap::new();
    for (binding, set) in bindings.iter().zip(sets) {
        let considered: Vec<&str> = set.iter().map(String::as_str).collect();
        let list = shared.index_of(considered, |considered| {
            let claimants: BTreeSet<usize> = considered
                .iter()
                .flat_map(|id| declaring.get(id).into_iter().flatten().copied())
                .collect();
            Claims::new(
                claimants
                    .into_iter()
                    .map(|other| Claim {
                        binding: bindings[other].binding,
                        resource_ids: &sets[other],
                        tags: bindings[other].tags,
                    })
                    .collect(),
            )
        });
        let Some(claims) = shared.get(list) else {
            continue;
        };
        let planned = plan(&PlanInput {
            binding: binding.binding,
            desired: binding.tags,
            resource_ids: binding.resource_ids,
            owned: &owned,
            observed,
            claims,
            limits,
        });
        for batch in planned.tag_batches {
            needs
                .entry(batch.tags)
                .or_default()
                .extend(batch.resource_ids);
        }
    }
    needs
        .values()
        .map(|ids| calls::write_calls(ids.len(), limits))
        .sum()
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
        /// Bindings that declare the same tags on different resources (nothing carried, no
        /// conflict, no quota) share every call: the payloads of each distinct tag set, each
        /// to all of its resources, `resources_per_call` a call. Holds only because every
        /// plan cuts the same tags into the same payloads ([`crate::calls`]).
        #[test]
        fn identical_tags_share_calls_across_bindings(
            raw in prop::collection::vec((0usize..3, 1usize..40), 1..12),
            per_call in 1usize..20,
            tags_per_call in 1usize..4,
        ) {
            let limits = Limits {
                resources_per_call: per_call,
                tags_per_call,
                ..Limits::alibaba()
            };
            let sets: Vec<Tags> = (0..3)
                .map(|set| {
                    (0..=set * 2)
                        .map(|key| (format!("k{key}"), format!("v{set}")))
                        .collect()
                })
                .collect();
            let ids: Vec<BindingId> =
                (0..raw.len()).map(|i| id(&format!("b{i}"), i as i64)).collect();
            let mut next = 0;
            let resources: Vec<Vec<String>> = raw
                .iter()
                .map(|(_, count)| {
                    let range = next..next + count;
                    next += count;
                    range.map(|i| format!("r{i:04}")).collect()
                })
                .collect();
            let fleet: Vec<FleetBinding<'_>> = raw
                .iter()
                .zip(&ids)
                .zip(&resources)
                .map(|(((set, _), binding), resource_ids)| FleetBinding {
                    binding,
                    resource_type: "apiGroup",
                    tags: &sets[*set],
                    resource_ids,
                })
                .collect();
            let mut expected = 0;
            for (set, tags) in sets.iter().enumerate() {
                let declared: usize = raw
                    .iter()
                    .filter(|(s, _)| *s == set)
                    .map(|(_, count)| count)
                    .sum();
                expected += tags.len().div_ceil(tags_per_call) * declared.div_ceil(per_call);
            }
            let mut writes: Vec<(Tags, Vec<String>)> = Vec::new();
            for binding in &fleet {
                let planned = plan(&PlanInput {
                    binding: binding.binding,
                    desired: binding.tags,
                    resource_ids: binding.resource_ids,
                    owned: &Ownership::default(),
                    observed: &TagsByResource::new(),
                    claims: &crate::plan::NO_CLAIMS,
                    limits: &limits,
                });
                writes.extend(
                    planned
                        .tag_batches
                        .into_iter()
                        .map(|batch| (batch.tags, batch.resource_ids)),
                );
            }
            let shared = merge::write_calls(
                writes
                    .iter()
                    .map(|(tags, ids)| (WriteOp::Tag, tags, ids.as_slice())),
                &limits,
            );
            prop_assert_eq!(shared.len(), expected);
            let bound = lower_bound(&fleet, &BTreeMap::new(), &limits, Paging::OnePerCall);
            prop_assert_eq!(bound.tag, expected);
        }
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
            let lists = merge::list_calls(reads.iter().map(Vec::as_slice), &limits);
            let tag_calls = merge::write_calls(
                writes
                    .iter()
                    .map(|(tags, ids)| (WriteOp::Tag, tags, ids.as_slice())),
                &limits,
            );
            prop_assert_eq!(lists.len(), bound.list);
            prop_assert_eq!(tag_calls.len(), bound.tag);
        }
    }
}
