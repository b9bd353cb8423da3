//! Selector bindings (`spec.resourceSelector`): which resources a pass considers, resolved
//! through the cloud's list-by-tag read before the pass, and what happens to the resources
//! that leave the selection (issue 13).
//!
//! Both hosts resolve the selectors of one target together ([`resolve_all`]): bindings with the
//! same `matchTags` share one read. The selected ids then stand in for `resourceIds`: the pass
//! reads them with the rest of its round (the list-by-tag answer is not taken as the
//! observation: the clouds do not document that a filtered answer lists every tag of a
//! resource, and pruning needs them all), claims and conflicts follow the same rules, and the
//! ownership record grows as for an id list.
//!
//! A resource that stops matching is released by `deletionPolicy`: `Delete` leaves it in the
//! ownership record, so the pass prunes what the binding owns there (by the ownership rules);
//! `Orphan` drops it from the record without a write ([`released`]).

use std::collections::{BTreeMap, BTreeSet};

use super::{Outcome, PassInput, Readiness};
use crate::api::conditions::reason;
use crate::api::{DeletionPolicy, MAX_SELECTED_SHOWN, SelectedResources};
use crate::cloud::{CallError, TagApi};
use crate::plan::SpecViolation;
use crate::tags::{Ownership, Tags, TagsByResource};

/// What one selector resolved to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The matching resources, sorted; at most the cap.
    Selected(Vec<String>),
    /// More resources match than the binding's cap: it writes nothing.
    TooMany {
        /// Resources that match.
        count: usize,
        /// `spec.maxResources`.
        cap: u32,
        /// The first matching ids, sorted.
        first: Vec<String>,
    },
    /// The list-by-tag read failed.
    Failed(CallError),
    /// The selector breaks a rule of the provider's API (see [`violation`]), as a `field: rule`
    /// line: no read.
    Invalid(String),
}

/// One selector binding of a target: its `matchTags` and `maxResources`.
#[derive(Clone, Copy, Debug)]
pub struct Selector<'a> {
    /// Tags every selected resource carries.
    pub match_tags: &'a Tags,
    /// The most resources it may bind.
    pub cap: u32,
}

/// Resolves the selectors of one resource type together: one list-by-tag read per distinct
/// `matchTags` (every page of it); one resolution per selector, in order.
pub async fn resolve_all<C: TagApi>(
    cloud: &C,
    resource_type: &str,
    selectors: &[Selector<'_>],
) -> Vec<Resolution> {
    let distinct: BTreeSet<&Tags> = selectors.iter().map(|s| s.match_tags).collect();
    let mut read: BTreeMap<&Tags, Result<Vec<String>, Resolution>> = BTreeMap::new();
    for match_tags in distinct {
        let selected = match violation(cloud, match_tags) {
            Some(violation) => Err(Resolution::Invalid(violation.to_string())),
            None => cloud
                .select_resources(resource_type, match_tags)
                .await
                .map(|found| found.into_keys().collect())
                .map_err(Resolution::Failed),
        };
        read.insert(match_tags, selected);
    }
    selectors
        .iter()
        .map(|selector| match &read[selector.match_tags] {
            Err(refused) => refused.clone(),
            Ok(ids) if ids.len() > selector.cap as usize => Resolution::TooMany {
                count: ids.len(),
                cap: selector.cap,
                first: ids.iter().take(MAX_SELECTED_SHOWN).cloned().collect(),
            },
            Ok(ids) => Resolution::Selected(ids.clone()),
        })
        .collect()
}

/// Why `match_tags` cannot be sent to this provider's API (none, more than it filters by in one
/// call, or a tag no resource can carry); the same rules the client applies before sending.
pub fn violation<C: TagApi>(cloud: &C, match_tags: &Tags) -> Option<SpecViolation> {
    crate::cloud::client::check_match_tags("ListTagResources", match_tags, cloud.limits())
        .err()
        .map(|refusal| SpecViolation {
            field: "spec.resourceSelector.matchTags".to_string(),
            rule: refusal.message,
        })
}

impl Resolution {
    /// The selected resources, when the pass may go on.
    pub fn ids(&self) -> Option<&[String]> {
        match self {
            Resolution::Selected(ids) => Some(ids),
            _ => None,
        }
    }

    /// What `status.selected` says of it (`None` when the read failed).
    pub fn status(&self) -> Option<SelectedResources> {
        match self {
            Resolution::Selected(ids) => Some(status_of(ids)),
            Resolution::TooMany {
                count: n, first, ..
            } => Some(SelectedResources {
                count: count(*n),
                first_ids: first.clone(),
            }),
            Resolution::Failed(_) | Resolution::Invalid(_) => None,
        }
    }

    /// The outcome of a pass that stops here (too many matches, or a failed read): nothing
    /// written, the ownership record unchanged. `None` when the pass goes on. `input` is the
    /// pass as it would have been, with no resources.
    pub fn refusal(&self, input: &PassInput<'_>) -> Option<Outcome> {
        let mut outcome = match self {
            Resolution::Selected(_) => return None,
            Resolution::TooMany { count: n, cap, .. } => {
                let mut outcome = Outcome::base(
                    input,
                    Readiness {
                        ready: false,
                        reason: reason::TOO_MANY_RESOURCES,
                        message: format!(
                            "resourceSelector matches {n} resources, more than maxResources \
                             ({cap}): nothing is written; narrow matchTags or raise \
                             maxResources (at most {})",
                            crate::api::MAX_SELECTED_RESOURCES
                        ),
                        stalled: true,
                    },
                );
                outcome.counts.total = count(*n);
                outcome
            }
            Resolution::Failed(error) => Outcome::observe_failed(input, error.clone().into()),
            Resolution::Invalid(rule) => Outcome::invalid_spec(input, rule.clone()),
        };
        outcome.selected = self.status();
        Some(outcome)
    }
}

/// A selector binding of one target, as [`feeding_cycles`] sees it.
#[derive(Clone, Debug)]
pub struct Feeder<'a, K> {
    /// The binding.
    pub key: K,
    /// Its declared tags (their keys can move resources in or out of others' selections).
    pub declared: &'a Tags,
    /// Its `matchTags`.
    pub match_tags: &'a Tags,
}

/// Selector bindings of one target whose selections feed each other (issue 20, item 5):
/// binding X feeds selector Y when X declares a key that Y selects by, so X's writes move
/// resources in or out of Y's selection. In a cycle (A declares `team` and selects by `env`,
/// B declares `env` and selects by `team`) each binding's writes change what the other writes
/// to, and they overwrite and prune each other's matches on every pass. Only selector bindings
/// can be in such a cycle (an id list's resources do not depend on tags), so `selectors` are
/// the target's selector bindings. Answers, for each binding in a cycle, the bindings of its
/// cycle, sorted (itself included). A chain without a cycle (an id-list binding tags
/// resources that a selector then selects) is allowed.
pub fn feeding_cycles<K: Ord + Clone>(selectors: &[Feeder<'_, K>]) -> BTreeMap<K, Vec<K>> {
    let feeds = |from: &Feeder<'_, K>, to: &Feeder<'_, K>| {
        from.key != to.key
            && from
                .declared
                .keys()
                .any(|key| to.match_tags.contains_key(key))
    };
    let reach: Vec<BTreeSet<usize>> = (0..selectors.len())
        .map(|start| {
            let mut seen = BTreeSet::new();
            let mut stack = vec![start];
            while let Some(at) = stack.pop() {
                for (next, to) in selectors.iter().enumerate() {
                    if feeds(&selectors[at], to) && seen.insert(next) {
                        stack.push(next);
                    }
                }
            }
            seen
        })
        .collect();
    let mut cycles = BTreeMap::new();
    for (index, selector) in selectors.iter().enumerate() {
        if !reach[index].contains(&index) {
            continue;
        }
        let mut members: Vec<K> = reach[index]
            .iter()
            .filter(|&&other| reach[other].contains(&index))
            .map(|&other| selectors[other].key.clone())
            .collect();
        members.sort();
        members.dedup();
        cycles.insert(selector.key.clone(), members);
    }
    cycles
}

/// Why a binding in a feeding cycle is refused, naming the cycle.
pub fn cycle_rule(members: &[impl std::fmt::Display]) -> String {
    let names: Vec<String> = members.iter().map(ToString::to_string).collect();
    format!(
        "the selections of {} feed each other: each declares a \
         key that another selects by, so their writes would move resources in and out of each \
         other's selections (overwriting and pruning tags on every pass); select by keys none of \
         them declares",
        names.join(", ")
    )
}

/// A selector binding's pass, as the round sees it.
#[derive(Clone, Copy, Debug)]
pub struct Selection<'a> {
    /// `spec.resourceSelector.matchTags`.
    pub match_tags: &'a Tags,
    /// What leaving the selection does.
    pub deletion_policy: DeletionPolicy,
}

/// What a selector pass goes on with once the round has read its resources by id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Settled {
    /// The resources it selects, sorted, and the record it starts from.
    Pass {
        /// Resources the answer named or the record holds whose own tags match.
        resource_ids: Vec<String>,
        /// The record, with what left the selection released under `Orphan`.
        owned: Ownership,
    },
    /// The list-by-tag answer dropped more than half of what the binding holds while the
    /// reads by id still show those resources matching: the answer is not believed.
    Disagrees {
        /// Resources the answer dropped that still match.
        dropped: usize,
        /// Resources the record held.
        held: usize,
    },
}

/// Settles a selection against the round's reads by id (issue 20, item 4): a resource is in
/// it when the answer (`answer`) or the record (`owned`) names it and a read of the resource
/// itself shows every match tag; so a resource leaves the selection only when its own read
/// shows that it no longer matches (or that it is gone), never because of a list-by-tag
/// answer alone.
pub fn settle(
    selection: Selection<'_>,
    answer: &[String],
    owned: &Ownership,
    observed: &TagsByResource,
) -> Settled {
    let matches = |id: &str| {
        observed.get(id).is_some_and(|tags| {
            selection
                .match_tags
                .iter()
                .all(|(key, value)| tags.get(key) == Some(value))
        })
    };
    let answered: BTreeSet<&str> = answer.iter().map(String::as_str).collect();
    let held = owned.resources().len();
    let dropped = owned
        .resources()
        .keys()
        .filter(|id| !answered.contains(id.as_str()) && matches(id))
        .count();
    if dropped > 0 && dropped * 2 > held {
        return Settled::Disagrees { dropped, held };
    }
    let selected: BTreeSet<&str> = answered
        .into_iter()
        .chain(owned.resources().keys().map(String::as_str))
        .filter(|id| matches(id))
        .collect();
    let resource_ids: Vec<String> = selected.into_iter().map(str::to_string).collect();
    let owned = released(owned, selection.deletion_policy, &resource_ids);
    Settled::Pass {
        resource_ids,
        owned,
    }
}

/// The ownership a selector pass starts from. Under `Orphan`, resources that left the
/// selection are released: dropped from the record, their tags left as they are. Under
/// `Delete` the record is kept whole, and the pass prunes the owned tags of resources it no
/// longer selects.
pub fn released(owned: &Ownership, policy: DeletionPolicy, selected: &[String]) -> Ownership {
    if policy == DeletionPolicy::Delete {
        return owned.clone();
    }
    let selected: BTreeSet<&str> = selected.iter().map(String::as_str).collect();
    let mut kept = Ownership::default();
    for (id, tags) in owned.resources() {
        if selected.contains(id.as_str()) {
            kept.set(id, tags.clone());
        }
    }
    kept
}

/// What `status.selected` says of the selected resources `ids` (sorted).
pub fn status_of(ids: &[String]) -> SelectedResources {
    SelectedResources {
        count: count(ids.len()),
        first_ids: ids.iter().take(MAX_SELECTED_SHOWN).cloned().collect(),
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cloud::CloudError;
    use crate::tags::tags;

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|id| id.to_string()).collect()
    }

    #[test]
    fn orphan_releases_what_left_the_selection_and_delete_keeps_it_to_prune() {
        let mut owned = Ownership::default();
        owned.set("a", tags(&[("cost", "1")]));
        owned.set("b", tags(&[("cost", "1")]));
        let still = ids(&["a", "c"]);
        let orphaned = released(&owned, DeletionPolicy::Orphan, &still);
        assert_eq!(orphaned.resources().keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(released(&owned, DeletionPolicy::Delete, &still), owned);
    }

    #[test]
    fn status_names_the_count_and_the_first_ids() {
        let many: Vec<String> = (0..25).map(|i| format!("r{i:02}")).collect();
        let status = Resolution::Selected(many).status().expect("a status");
        assert_eq!(status.count, 25);
        assert_eq!(status.first_ids.len(), MAX_SELECTED_SHOWN);
        assert_eq!(status.first_ids[0], "r00");
        let failed = Resolution::Failed(
            CloudError {
                kind: crate::cloud::ErrorKind::Retryable,
                action: "ListTagResources",
                code: "Throttling".into(),
                message: "slow down".into(),
                http_status: Some(400),
                request_id: None,
                attempts: 3,
            }
            .into(),
        );
        assert_eq!(failed.status(), None);
    }

    fn observed(pairs: &[(&str, &[(&str, &str)])]) -> TagsByResource {
        pairs
            .iter()
            .map(|(id, tags_of)| (id.to_string(), tags(tags_of)))
            .collect()
    }

    #[test]
    fn an_empty_answer_releases_nothing_that_its_own_read_still_shows_matching() {
        let match_tags = tags(&[("env", "prod")]);
        let mut owned = Ownership::default();
        for id in ["a", "b", "c"] {
            owned.set(id, tags(&[("cost", "1")]));
        }
        let read = observed(&[
            ("a", &[("env", "prod"), ("cost", "1")]),
            ("b", &[("env", "prod"), ("cost", "1")]),
            ("c", &[("env", "dev"), ("cost", "1")]),
        ]);
        for policy in [DeletionPolicy::Delete, DeletionPolicy::Orphan] {
            let selection = Selection {
                match_tags: &match_tags,
                deletion_policy: policy,
            };
            assert_eq!(
                settle(selection, &[], &owned, &read),
                Settled::Disagrees {
                    dropped: 2,
                    held: 3
                }
            );
            // One dropped resource of three that still matches: kept; c left, by its own read.
            let Settled::Pass {
                resource_ids,
                owned: kept,
            } = settle(selection, &ids(&["a"]), &owned, &read)
            else {
                panic!("a short answer that most reads agree with passes");
            };
            assert_eq!(resource_ids, ids(&["a", "b"]));
            let expected = if policy == DeletionPolicy::Orphan {
                2
            } else {
                3
            };
            assert_eq!(kept.resources().len(), expected, "{policy:?}");
        }
    }

    #[test]
    fn a_resource_enters_only_when_its_own_read_matches() {
        let match_tags = tags(&[("env", "prod")]);
        let selection = Selection {
            match_tags: &match_tags,
            deletion_policy: DeletionPolicy::Delete,
        };
        let read = observed(&[("a", &[("env", "prod")]), ("b", &[("env", "dev")])]);
        let settled = settle(
            selection,
            &ids(&["a", "b", "gone"]),
            &Ownership::default(),
            &read,
        );
        assert_eq!(
            settled,
            Settled::Pass {
                resource_ids: ids(&["a"]),
                owned: Ownership::default()
            }
        );
    }

    #[test]
    fn selections_that_feed_each_other_are_found_and_a_chain_is_not() {
        let (team, env, cost) = (
            tags(&[("team", "web")]),
            tags(&[("env", "prod")]),
            tags(&[("cost", "1")]),
        );
        let feeder = |key, declared, match_tags| Feeder {
            key,
            declared,
            match_tags,
        };
        // a declares team, selects by env; b declares env, selects by team: a cycle. c declares
        // cost and selects by env: fed by b, feeding nobody.
        let selectors = [
            feeder("ns/a", &team, &env),
            feeder("ns/b", &env, &team),
            feeder("ns/c", &cost, &env),
        ];
        let cycles = feeding_cycles(&selectors);
        assert_eq!(
            cycles,
            BTreeMap::from([
                ("ns/a", vec!["ns/a", "ns/b"]),
                ("ns/b", vec!["ns/a", "ns/b"])
            ])
        );
        assert!(feeding_cycles(&selectors[1..]).is_empty());
        let rule = cycle_rule(&cycles["ns/a"]);
        assert!(rule.contains("ns/a, ns/b"), "{rule}");
    }
}
