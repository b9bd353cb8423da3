//! The crash window (issue 14): a pass killed after a tag write and before its ownership record
//! is saved would find, next time, the tags it wrote and take them for tags that were already
//! there (`Keep` never takes ownership), so it would never prune them. A host therefore records
//! the pass's *intent* before sending its writes ([`intent`]), and the next pass, once it has
//! observed the cloud, *claims* the intended keys that still carry the intended value
//! ([`claim`]) before planning.
//!
//! Both are pure: the hosts keep the intent (the controller in `status.pendingTags`, the CLI in
//! its journal) and decide when to resolve it.

use crate::tags::{Ownership, Tags, TagsByResource};

use super::{KeyDecision, Plan};

/// What executing `plan` would make this binding own that it does not own yet: per resource,
/// the keys it writes (an `Apply` decision sent in a tag batch) with the value written, unless
/// the record already holds that very value.
///
/// A tag batch may also carry keys that a resource already has with the declared value
/// (`Keep`); those are left out: an uninterrupted pass does not take ownership of them either.
pub fn intent(plan: &Plan, owned: &Ownership) -> TagsByResource {
    let mut intent = TagsByResource::new();
    for batch in &plan.tag_batches {
        for id in &batch.resource_ids {
            let held = owned.on(id);
            for (key, value) in &batch.tags {
                let applies = matches!(
                    plan.decision(id, key),
                    Some(KeyDecision::Apply { to, .. }) if to == value
                );
                if applies && held.and_then(|tags| tags.get(key)) != Some(value) {
                    intent
                        .entry(id.clone())
                        .or_default()
                        .insert(key.clone(), value.clone());
                }
            }
        }
    }
    intent
}

/// The ownership record once a previous pass's unresolved intent (`pending`) is resolved
/// against what the cloud carries now (`observed`): each pending key whose observed value is
/// exactly the intended one becomes owned, with that value; every other pending key is
/// dropped (its write never landed, or the value changed since, so it is not this binding's).
///
/// Never claims a key on a resource the intent does not name, nor one whose value differs;
/// leaves every other owned key as it is; claiming twice changes nothing.
pub fn claim(owned: &Ownership, pending: &TagsByResource, observed: &TagsByResource) -> Ownership {
    let mut claimed = owned.clone();
    for (id, intended) in pending {
        let Some(carried) = observed.get(id) else {
            continue;
        };
        for (key, value) in matching(intended, carried) {
            claimed.own(id, key, value);
        }
    }
    claimed
}

/// The intended tags that `carried` holds with the intended value.
fn matching<'a>(intended: &'a Tags, carried: &'a Tags) -> impl Iterator<Item = (&'a str, &'a str)> {
    intended
        .iter()
        .filter(move |(key, value)| carried.get(*key) == Some(*value))
        .map(|(key, value)| (key.as_str(), value.as_str()))
}

/// The part of an intent that the cloud did not confirm (`confirmed`: the written resource and
/// key pairs): still unresolved after the pass, so kept for the next one to claim if the write
/// landed after all (an answer lost after the retries).
pub fn unconfirmed(
    intent: &TagsByResource,
    confirmed: &std::collections::BTreeSet<(String, String)>,
) -> TagsByResource {
    intent
        .iter()
        .filter_map(|(id, tags)| {
            let left: Tags = tags
                .iter()
                .filter(|(key, _)| !confirmed.contains(&(id.clone(), (*key).clone())))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect();
            (!left.is_empty()).then(|| (id.clone(), left))
        })
        .collect()
}
