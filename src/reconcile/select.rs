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
use crate::cloud::{CloudError, TagApi};
use crate::tags::{Ownership, Tags};

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
    Failed(CloudError),
    /// The selector breaks a rule of the provider's API (see [`violation`]): no read.
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
    let distinct: BTreeSet<&Tags> = selectors
        .iter()
        .filter(|s| violation(cloud, s.match_tags).is_none())
        .map(|s| s.match_tags)
        .collect();
    let mut read: BTreeMap<&Tags, Result<Vec<String>, CloudError>> = BTreeMap::new();
    for match_tags in distinct {
        let selected = cloud
            .select_resources(resource_type, match_tags)
            .await
            .map(|found| found.into_keys().collect());
        read.insert(match_tags, selected);
    }
    selectors
        .iter()
        .map(|selector| match read.get(selector.match_tags) {
            None => Resolution::Invalid(violation(cloud, selector.match_tags).unwrap_or_default()),
            Some(Err(error)) => Resolution::Failed(error.clone()),
            Some(Ok(ids)) if ids.len() > selector.cap as usize => Resolution::TooMany {
                count: ids.len(),
                cap: selector.cap,
                first: ids.iter().take(MAX_SELECTED_SHOWN).cloned().collect(),
            },
            Some(Ok(ids)) => Resolution::Selected(ids.clone()),
        })
        .collect()
}

/// Why `match_tags` cannot be sent to this provider's API (none, more than it filters by in one
/// call, or a tag no resource can carry), as a `field: rule` line; the same rules the client
/// applies before sending.
pub fn violation<C: TagApi>(cloud: &C, match_tags: &Tags) -> Option<String> {
    crate::cloud::client::check_match_tags("ListTagResources", match_tags, cloud.limits())
        .err()
        .map(|error| format!("spec.resourceSelector.matchTags: {}", error.message))
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
            Resolution::Selected(ids) => Some(SelectedResources {
                count: count(ids.len()),
                first_ids: ids.iter().take(MAX_SELECTED_SHOWN).cloned().collect(),
            }),
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
            Resolution::Failed(error) => Outcome::observe_failed(input, error.clone()),
            Resolution::Invalid(rule) => Outcome::invalid_spec(input, rule.clone()),
        };
        outcome.selected = self.status();
        Some(outcome)
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

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let failed = Resolution::Failed(CloudError {
            kind: crate::cloud::ErrorKind::Retryable,
            action: "ListTagResources",
            code: "Throttling".into(),
            message: "slow down".into(),
            http_status: Some(400),
            request_id: None,
            attempts: 3,
        });
        assert_eq!(failed.status(), None);
    }
}
