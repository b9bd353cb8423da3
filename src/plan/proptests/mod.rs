//! Property tests: random plans, executed on a simulated cloud, keep the rules of ownership
//! and the provider's limits, use the fewest tag calls, and settle in one pass.

mod intent;
mod scenario;

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;
use crate::tags::{Limits, Ownership, TagsByResource};
use scenario::{RESOURCES, SYSTEM_PREFIX, Scenario, everything_confirmed, execute, on, scenario};

/// The fewest tag calls: Σ over groups (same writable tags) and key chunks of
/// ceil(resources missing a key of the chunk / resources per call). Computed from the scenario
/// (declared values against observed ones, conflicts by [`Scenario::loses`]); blocked
/// resources, which [`check_blocked_only_over_quota`] holds to the rule, take no call.
fn tag_call_bound(s: &Scenario, plan: &Plan) -> usize {
    let mut groups: BTreeMap<Vec<&String>, Vec<BTreeSet<&String>>> = BTreeMap::new();
    for id in s.declared_resources() {
        if plan.blocked.contains_key(id) {
            continue;
        }
        let writable: Vec<&String> = s.desired.keys().filter(|key| !s.loses(id, key)).collect();
        let missing: BTreeSet<&String> = writable
            .iter()
            .copied()
            .filter(|key| on(&s.observed, id).get(*key) != s.desired.get(*key))
            .collect();
        if missing.is_empty() {
            continue;
        }
        groups.entry(writable).or_default().push(missing);
    }
    groups
        .iter()
        .flat_map(|(keys, members)| {
            keys.chunks(s.limits.tags_per_call).map(move |chunk| {
                let missing = members
                    .iter()
                    .filter(|member| chunk.iter().any(|key| member.contains(key)))
                    .count();
                missing.div_ceil(s.limits.resources_per_call)
            })
        })
        .sum()
}

/// The planner's conflicts are exactly the oracle's, and a resource is left out for its quota
/// only when writing its tags would exceed it.
fn check_conflicts_and_blocks_follow_the_rules(
    s: &Scenario,
    plan: &Plan,
    after: &TagsByResource,
) -> Result<(), TestCaseError> {
    for id in s.declared_resources() {
        for key in s.desired.keys() {
            let conflict = matches!(plan.decision(id, key), Some(KeyDecision::Conflict { .. }));
            prop_assert_eq!(conflict, s.loses(id, key), "conflict of {} on {}", key, id);
        }
        if plan.blocked.contains_key(id) {
            prop_assert!(s.over_quota(id, after), "{} blocked within its quota", id);
        }
    }
    Ok(())
}

fn check_batches_within_limits(plan: &Plan, limits: &Limits) -> Result<(), TestCaseError> {
    let batches = plan
        .tag_batches
        .iter()
        .map(|b| (&b.resource_ids, &b.tags, limits.tags_per_call))
        .chain(
            plan.untag_batches
                .iter()
                .map(|b| (&b.resource_ids, &b.tags, limits.keys_per_untag_call)),
        );
    for (ids, tags, tags_limit) in batches {
        prop_assert!(!ids.is_empty() && !tags.is_empty(), "empty batch");
        prop_assert!(
            ids.len() <= limits.resources_per_call,
            "too many resources: {ids:?}"
        );
        prop_assert!(tags.len() <= tags_limit, "too many tags: {tags:?}");
        let unique: BTreeSet<&String> = ids.iter().collect();
        prop_assert_eq!(unique.len(), ids.len(), "a resource twice in one batch");
    }
    Ok(())
}

fn check_declared_tags_carried(
    s: &Scenario,
    plan: &Plan,
    after: &TagsByResource,
) -> Result<(), TestCaseError> {
    for id in s
        .declared_resources()
        .into_iter()
        .filter(|id| !plan.blocked.contains_key(*id))
    {
        for (key, value) in &s.desired {
            if !s.loses(id, key) {
                prop_assert_eq!(on(after, id).get(key), Some(value), "{} on {}", key, id);
            }
        }
    }
    Ok(())
}

fn check_foreign_and_system_tags_untouched(
    s: &Scenario,
    after: &TagsByResource,
) -> Result<(), TestCaseError> {
    for id in RESOURCES {
        let (before, now) = (on(&s.observed, id), on(after, id));
        for key in before.keys().chain(now.keys()) {
            let foreign = !s.declares(id, key) && !s.owns(id, key);
            if foreign || key.starts_with(SYSTEM_PREFIX) {
                prop_assert_eq!(before.get(key), now.get(key), "{} on {} changed", key, id);
            }
        }
    }
    Ok(())
}

fn check_claimed_keys_kept(s: &Scenario, after: &TagsByResource) -> Result<(), TestCaseError> {
    for rival in &s.rivals {
        for id in &rival.resource_ids {
            for key in rival
                .tags
                .keys()
                .filter(|key| on(&s.observed, id).contains_key(*key))
            {
                prop_assert!(
                    on(after, id).contains_key(key),
                    "{key} claimed by {} removed from {id}",
                    rival.binding
                );
            }
        }
    }
    Ok(())
}

fn check_no_conflict_key_written(s: &Scenario, plan: &Plan) -> Result<(), TestCaseError> {
    for batch in &plan.tag_batches {
        for id in &batch.resource_ids {
            prop_assert!(!plan.blocked.contains_key(id), "blocked {id} written");
            for (key, value) in &batch.tags {
                prop_assert!(!s.loses(id, key), "conflict key {key} written to {id}");
                prop_assert!(
                    s.declares(id, key) && s.desired.get(key) == Some(value),
                    "{key}={value} not declared on {id}"
                );
            }
        }
    }
    Ok(())
}

fn check_untag_only_owned_unchanged(s: &Scenario, plan: &Plan) -> Result<(), TestCaseError> {
    for batch in &plan.untag_batches {
        for id in &batch.resource_ids {
            for (key, value) in &batch.tags {
                prop_assert_eq!(
                    on(&s.observed, id).get(key),
                    Some(value),
                    "{} on {} changed",
                    key,
                    id
                );
                prop_assert_eq!(s.owned.on(id).and_then(|owned| owned.get(key)), Some(value));
                prop_assert!(
                    !s.declares(id, key) && !s.claimed(id, key),
                    "declared {key} pruned from {id}"
                );
                prop_assert!(!key.starts_with(SYSTEM_PREFIX), "system key pruned");
            }
        }
    }
    Ok(())
}

fn check_quota(s: &Scenario, plan: &Plan, after: &TagsByResource) -> Result<(), TestCaseError> {
    for id in s
        .declared_resources()
        .into_iter()
        .filter(|id| !plan.blocked.contains_key(*id))
    {
        let added = s
            .desired
            .keys()
            .any(|key| !s.loses(id, key) && !on(&s.observed, id).contains_key(key));
        let custom = on(after, id)
            .keys()
            .filter(|key| !key.starts_with(SYSTEM_PREFIX))
            .count();
        prop_assert!(
            !added || custom <= s.limits.tags_per_resource,
            "{id} carries {custom} tags"
        );
    }
    Ok(())
}

fn check_ownership_matches_carried(
    s: &Scenario,
    plan: &Plan,
    next: &Ownership,
    after: &TagsByResource,
) -> Result<(), TestCaseError> {
    for (id, owned) in next.resources() {
        for (key, value) in owned {
            prop_assert!(
                !s.loses(id, key),
                "{} on {} still owned after a lost conflict",
                key,
                id
            );
            let unwritten = plan.blocked.contains_key(id)
                && s.declares(id, key)
                && on(&s.observed, id).get(key) != s.desired.get(key);
            if !unwritten {
                prop_assert_eq!(
                    on(after, id).get(key),
                    Some(value),
                    "owned {} on {}",
                    key,
                    id
                );
            }
        }
    }
    Ok(())
}

fn check_settles_in_one_pass(
    s: &Scenario,
    after: &TagsByResource,
    next: &Ownership,
) -> Result<(), TestCaseError> {
    let again = s.plan_from(after, next);
    prop_assert!(!again.has_changes(), "second pass writes: {again:?}");
    prop_assert!(again.blocked.is_empty());
    prop_assert_eq!(&again.next_ownership(next, &Confirmed::default()), next);
    Ok(())
}

fn check_plan(s: &Scenario) -> Result<(), TestCaseError> {
    let plan = s.plan_from(&s.observed, &s.owned);
    prop_assert_eq!(
        &plan,
        &s.plan_from(&s.observed, &s.owned),
        "not deterministic"
    );
    let after = execute(&plan, &s.observed);
    check_batches_within_limits(&plan, &s.limits)?;
    check_declared_tags_carried(s, &plan, &after)?;
    check_foreign_and_system_tags_untouched(s, &after)?;
    check_claimed_keys_kept(s, &after)?;
    check_conflicts_and_blocks_follow_the_rules(s, &plan, &after)?;
    prop_assert_eq!(plan.tag_batches.len(), tag_call_bound(s, &plan));
    check_no_conflict_key_written(s, &plan)?;
    check_untag_only_owned_unchanged(s, &plan)?;
    check_quota(s, &plan, &after)?;

    let failed = plan.next_ownership(&s.owned, &Confirmed::default());
    for (id, owned) in failed.resources() {
        for (key, value) in owned {
            prop_assert_eq!(
                s.owned.on(id).and_then(|o| o.get(key)),
                Some(value),
                "ownership gained without a write"
            );
        }
    }

    let next = plan.next_ownership(&s.owned, &everything_confirmed(&plan));
    check_ownership_matches_carried(s, &plan, &next, &after)?;
    check_drift(s, &plan, &after)?;
    if plan.blocked.is_empty() {
        check_settles_in_one_pass(s, &after, &next)?;
        let again = s.plan_from(&after, &next);
        // NB: what is left is a lost conflict's value, which no write of this binding changes.
        let left = drift(&again, &s.desired, &after, s.resource_ids.len());
        let lost = lost_conflicts(s, &again, &after);
        let lost: BTreeSet<&String> = lost.iter().map(|(id, _)| *id).collect();
        prop_assert_eq!(left.counts.resources as usize, lost.len());
    }
    Ok(())
}

/// Observe mode's drift is exactly what the plan's writes would change: every key whose value
/// differs after executing the plan (on resources no quota blocks) is counted once, as an add,
/// a change or a prune, and nothing else is.
fn check_drift(s: &Scenario, plan: &Plan, after: &TagsByResource) -> Result<(), TestCaseError> {
    let found = drift(plan, &s.desired, &s.observed, s.resource_ids.len());
    let (mut add, mut change, mut prune) = (0u32, 0u32, 0u32);
    let mut resources = BTreeSet::new();
    // NB: a declared resource that carries no tags and that a quota blocks is in neither map.
    let ids: BTreeSet<&String> = s
        .observed
        .keys()
        .chain(after.keys())
        .chain(&s.resource_ids)
        .collect();
    for id in ids {
        let before = on(&s.observed, id);
        let now = on(after, id);
        let blocked = plan.blocked.contains_key(id.as_str());
        let keys: BTreeSet<&String> = before.keys().chain(now.keys()).collect();
        for key in keys {
            match (before.get(key), now.get(key)) {
                (None, Some(_)) => add += 1,
                (Some(a), Some(b)) if a != b => change += 1,
                (Some(_), None) => prune += 1,
                _ => continue,
            }
            resources.insert(id.clone());
        }
        if blocked {
            // NB: a blocked resource's declared tags are not written, but it lacks them all
            // the same: the drift counts its Apply decisions.
            for decision in plan
                .decisions
                .get(id.as_str())
                .into_iter()
                .flat_map(|d| d.values())
            {
                match decision {
                    KeyDecision::Apply { from: None, .. } => add += 1,
                    KeyDecision::Apply { from: Some(_), .. } => change += 1,
                    _ => continue,
                }
                resources.insert(id.clone());
            }
        }
    }
    // NB: and every declared key lost to an older binding whose carried value differs from
    // this binding's (issue 20), though no write would change it.
    let lost = lost_conflicts(s, plan, &s.observed);
    for (id, carried) in &lost {
        match carried {
            None => add += 1,
            Some(_) => change += 1,
        }
        resources.insert((*id).clone());
    }
    prop_assert_eq!(
        (found.counts.add, found.counts.change, found.counts.prune),
        (add, change, prune)
    );
    prop_assert_eq!(found.counts.resources as usize, resources.len());
    prop_assert!(found.samples.len() <= drift::MAX_DRIFT_SAMPLES);
    prop_assert_eq!(
        found.is_drifted(),
        plan.has_changes() || !plan.blocked.is_empty() && add + change > 0 || !lost.is_empty()
    );
    Ok(())
}

/// The declared keys that `plan` concedes to an older binding and that `observed` does not
/// carry with this binding's value: (resource, carried value), one per key.
fn lost_conflicts<'a>(
    s: &Scenario,
    plan: &'a Plan,
    observed: &'a TagsByResource,
) -> Vec<(&'a String, Option<&'a String>)> {
    plan.decisions
        .iter()
        .flat_map(|(id, keys)| keys.iter().map(move |(key, d)| (id, key, d)))
        .filter(|(_, _, decision)| matches!(decision, KeyDecision::Conflict { .. }))
        .map(|(id, key, _)| (id, observed.get(id).and_then(|tags| tags.get(key)), key))
        .filter(|(_, carried, key)| *carried != s.desired.get(*key))
        .map(|(id, carried, _)| (id, carried))
        .collect()
}

proptest! {
    #[test]
    fn executed_plans_keep_the_rules_of_ownership(s in scenario()) {
        check_plan(&s)?;
    }
}
