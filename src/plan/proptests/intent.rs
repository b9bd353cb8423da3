//! Properties of the crash window's claim: a pass killed after any subset of its writes
//! landed, whose next pass claims its intent, ends where an uninterrupted run ends; and the
//! claim alone never takes what it may not.

use std::collections::BTreeSet;

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use proptest::sample::select;

use super::scenario::{Scenario, everything_confirmed, execute, scenario};
use crate::plan::intent::{claim, intent};
use crate::plan::{Confirmed, Plan};
use crate::tags::{Ownership, Tags, TagsByResource};

/// The cloud after the writes of `plan` that `landed` selects (untag batches first, then tag
/// batches, as `execute` orders them), and the writes an uninterrupted pass would have had
/// confirmed.
fn partly(plan: &Plan, observed: &TagsByResource, landed: &[bool]) -> (TagsByResource, Confirmed) {
    let mut landed = landed.iter().copied().chain(std::iter::repeat(true));
    let mut subset = plan.clone();
    subset
        .untag_batches
        .retain(|_| landed.next().unwrap_or(true));
    subset.tag_batches.retain(|_| landed.next().unwrap_or(true));
    (execute(&subset, observed), everything_confirmed(&subset))
}

/// One more pass from `observed` with `owned`, every write confirmed: the cloud and the record.
fn next_pass(
    s: &Scenario,
    observed: &TagsByResource,
    owned: &Ownership,
) -> (TagsByResource, Ownership) {
    let plan = s.plan_from(observed, owned);
    let after = execute(&plan, observed);
    let owned = plan.next_ownership(owned, &everything_confirmed(&plan));
    (after, owned)
}

fn check_crash_is_invisible(s: &Scenario, landed: &[bool]) -> Result<(), TestCaseError> {
    let first = s.plan_from(&s.observed, &s.owned);
    let (cloud, confirmed) = partly(&first, &s.observed, landed);

    // Uninterrupted: the answers came back and the record took what they confirmed.
    let recorded = first.next_ownership(&s.owned, &confirmed);
    let (cloud_a, owned_a) = next_pass(s, &cloud, &recorded);

    // Killed before the record was saved: the next pass claims the intent, then plans.
    let pending = intent(&first, &s.owned);
    let claimed = claim(&s.owned, &pending, &cloud);
    let (cloud_b, owned_b) = next_pass(s, &cloud, &claimed);

    prop_assert_eq!(&cloud_b, &cloud_a, "the cloud after the next pass");
    prop_assert_eq!(
        &owned_b,
        &owned_a,
        "the ownership record after the next pass"
    );
    Ok(())
}

const IDS: [&str; 4] = ["r0", "r1", "r2", "r3"];
const KEYS: [&str; 3] = ["k0", "k1", "k2"];
const VALUES: [&str; 2] = ["a", "b"];

fn tags() -> impl Strategy<Value = Tags> {
    btree_map(
        select(&KEYS[..]).prop_map(String::from),
        select(&VALUES[..]).prop_map(String::from),
        0..3,
    )
}

fn by_resource() -> impl Strategy<Value = TagsByResource> {
    btree_map(select(&IDS[..]).prop_map(String::from), tags(), 0..4)
}

fn check_claim_takes_only_what_it_may(
    owned: &Ownership,
    pending: &TagsByResource,
    observed: &TagsByResource,
) -> Result<(), TestCaseError> {
    let claimed = claim(owned, pending, observed);
    let resources: BTreeSet<&String> = claimed.resources().keys().collect();
    for id in resources {
        let tags = claimed.on(id).cloned().unwrap_or_default();
        for (key, value) in &tags {
            let before = owned.on(id).and_then(|t| t.get(key));
            if before == Some(value) {
                continue;
            }
            // Anything new (a key, or another value) is intended and carried with that value.
            prop_assert_eq!(
                pending.get(id).and_then(|t| t.get(key)),
                Some(value),
                "{}/{} not intended",
                id,
                key
            );
            prop_assert_eq!(
                observed.get(id).and_then(|t| t.get(key)),
                Some(value),
                "{}/{} not carried",
                id,
                key
            );
        }
    }
    // Nothing owned is dropped.
    for (id, tags) in owned.resources() {
        for key in tags.keys() {
            prop_assert!(
                claimed.on(id).is_some_and(|t| t.contains_key(key)),
                "{}/{} dropped",
                id,
                key
            );
        }
    }
    prop_assert_eq!(
        &claim(&claimed, pending, observed),
        &claimed,
        "claiming twice"
    );
    Ok(())
}

proptest! {
    #[test]
    fn a_pass_killed_after_any_of_its_writes_ends_as_an_uninterrupted_one(
        s in scenario(),
        landed in vec(any::<bool>(), 0..12),
    ) {
        check_crash_is_invisible(&s, &landed)?;
    }

    #[test]
    fn a_claim_never_takes_a_key_it_did_not_intend_or_that_carries_another_value(
        owned in by_resource(),
        pending in by_resource(),
        observed in by_resource(),
    ) {
        let owned: Ownership = owned.into_iter().collect();
        check_claim_takes_only_what_it_may(&owned, &pending, &observed)?;
    }
}
