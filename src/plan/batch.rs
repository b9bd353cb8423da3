//! Cutting decisions into the fewest cloud calls within the provider's limits, shaped by
//! [`crate::calls`].

use std::collections::{BTreeMap, BTreeSet};

use super::engine::ResourceDecisions;
use super::{KeyDecision, TagBatch, UntagBatch};
use crate::calls;
use crate::tags::{Limits, Tags};

/// TagResources calls for the writable resources (declared, not blocked).
///
/// TagResources overwrites, so a call may also carry declared keys a resource already has with
/// the declared value. Resources are grouped by the tags they may be written (the declared
/// tags minus the keys they are in conflict on; usually one group). Each group's keys are cut
/// into chunks of `tags_per_call`; a chunk goes to every resource of the group missing at
/// least one of its keys, `resources_per_call` at a time. A conflict key is never sent to the
/// resource it is in conflict on.
pub(super) fn tag_batches<'a>(
    decisions: &BTreeMap<String, ResourceDecisions>,
    writable: impl IntoIterator<Item = &'a str>,
    desired: &Tags,
    limits: &Limits,
) -> Vec<TagBatch> {
    let mut groups: BTreeMap<Tags, Vec<Missing<'_>>> = BTreeMap::new();
    for id in writable {
        let Some(keys) = decisions.get(id) else {
            continue;
        };
        let missing: BTreeSet<&str> = keys
            .iter()
            .filter(|(_, decision)| matches!(decision, KeyDecision::Apply { .. }))
            .map(|(key, _)| key.as_str())
            .collect();
        if missing.is_empty() {
            continue;
        }
        let writable_tags: Tags = desired
            .iter()
            .filter(|(key, _)| !matches!(keys.get(*key), Some(KeyDecision::Conflict { .. })))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        groups
            .entry(writable_tags)
            .or_default()
            .push(Missing { id, keys: missing });
    }
    groups
        .iter()
        .flat_map(|(tags, members)| group_tag_batches(tags, members, limits))
        .collect()
}

/// UntagResources calls for every `Prune` decision.
///
/// Resources are grouped by their exact prune map (key to the value removed), so a key is
/// never sent to a resource where it carries a value this binding does not own. Each group is
/// cut into `keys_per_untag_call` keys by `resources_per_call` resources.
pub(super) fn untag_batches(
    decisions: &BTreeMap<String, ResourceDecisions>,
    limits: &Limits,
) -> Vec<UntagBatch> {
    let mut groups: BTreeMap<Tags, Vec<&str>> = BTreeMap::new();
    for (id, keys) in decisions {
        let prunes: Tags = keys
            .iter()
            .filter_map(|(key, decision)| match decision {
                KeyDecision::Prune { value } => Some((key.clone(), value.clone())),
                _ => None,
            })
            .collect();
        if !prunes.is_empty() {
            groups.entry(prunes).or_default().push(id);
        }
    }
    let mut batches = Vec::new();
    for (prunes, ids) in &groups {
        for keys in calls::untag_payloads(prunes, limits) {
            for ids in calls::write_chunks(ids, limits) {
                batches.push(UntagBatch {
                    resource_ids: owned_ids(ids),
                    tags: owned_tags(&keys),
                });
            }
        }
    }
    batches
}

/// A writable resource and the declared keys it misses (its `Apply` decisions).
struct Missing<'a> {
    id: &'a str,
    keys: BTreeSet<&'a str>,
}

fn group_tag_batches(tags: &Tags, members: &[Missing<'_>], limits: &Limits) -> Vec<TagBatch> {
    let mut batches = Vec::new();
    for chunk in calls::tag_payloads(tags, limits) {
        let ids: Vec<&str> = members
            .iter()
            .filter(|member| {
                chunk
                    .iter()
                    .any(|(key, _)| member.keys.contains(key.as_str()))
            })
            .map(|member| member.id)
            .collect();
        for ids in calls::write_chunks(&ids, limits) {
            batches.push(TagBatch {
                resource_ids: owned_ids(ids),
                tags: owned_tags(&chunk),
            });
        }
    }
    batches
}

fn owned_ids(ids: &[&str]) -> Vec<String> {
    ids.iter().map(ToString::to_string).collect()
}

fn owned_tags(tags: &[(&String, &String)]) -> Tags {
    tags.iter()
        .map(|(key, value)| ((*key).clone(), (*value).clone()))
        .collect()
}
