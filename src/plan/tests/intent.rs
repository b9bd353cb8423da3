//! The intent recorded before a pass's writes, and the claim of it by the next pass.

use super::*;
use crate::plan::intent::{claim, intent, unconfirmed};

fn by_resource(entries: &[(&str, &[(&str, &str)])]) -> TagsByResource {
    entries
        .iter()
        .map(|(id, pairs)| (id.to_string(), tags(pairs)))
        .collect()
}

#[test]
fn the_intent_is_what_the_writes_would_make_owned() {
    // r1 lacks env and carries tier by hand; r2 carries env already (Keep, sent along in the
    // shared batch); r3 carries the owned env, drifted (a correction: owned already).
    let case = Case::new()
        .desired(&[("env", "prod"), ("tier", "web")])
        .resources(&["r1", "r2", "r3"])
        .observed("r1", &[("tier", "db")])
        .observed("r2", &[("env", "prod"), ("tier", "web")])
        .observed("r3", &[("env", "dev"), ("tier", "web")])
        .owned("r3", &[("env", "prod"), ("tier", "web")]);
    let plan = case.plan();
    assert_eq!(
        intent(&plan, &case.owned),
        by_resource(&[("r1", &[("env", "prod"), ("tier", "web")])])
    );
}

#[test]
fn a_blocked_or_conflicting_key_is_no_intent() {
    let case = Case::new()
        .desired(&[("env", "prod"), ("owner", "web")])
        .resources(&["r1", "r2"])
        .carrying("r2", 20)
        .rival(
            binding("team-a", "old", Some(1)),
            &["r1"],
            &[("env", "dev")],
        );
    let plan = case.plan();
    assert!(plan.blocked.contains_key("r2"));
    assert_eq!(
        intent(&plan, &case.owned),
        by_resource(&[("r1", &[("owner", "web")])])
    );
}

#[test]
fn claims_only_keys_that_carry_the_intended_value() {
    let mut owned = Ownership::default();
    owned.set("r1", tags(&[("old", "v")]));
    let pending = by_resource(&[
        ("r1", &[("env", "prod"), ("tier", "web")]),
        ("r2", &[("env", "prod")]),
        ("r3", &[("env", "prod")]),
    ]);
    // r1: env landed, tier was changed by hand since; r2: the write never landed; r3 is gone.
    let observed = by_resource(&[
        ("r1", &[("env", "prod"), ("tier", "db"), ("old", "v")]),
        ("r2", &[("team", "x")]),
        ("r9", &[("env", "prod")]),
    ]);
    let claimed = claim(&owned, &pending, &observed);
    assert_eq!(
        claimed.on("r1"),
        Some(&tags(&[("env", "prod"), ("old", "v")]))
    );
    assert_eq!(claimed.on("r2"), None);
    assert_eq!(
        claimed.on("r9"),
        None,
        "a resource the intent does not name"
    );
    assert_eq!(claim(&claimed, &pending, &observed), claimed);
}

#[test]
fn a_new_value_that_landed_replaces_the_owned_one() {
    let mut owned = Ownership::default();
    owned.set("r1", tags(&[("env", "dev")]));
    let pending = by_resource(&[("r1", &[("env", "prod")])]);
    let landed = claim(
        &owned,
        &pending,
        &by_resource(&[("r1", &[("env", "prod")])]),
    );
    assert_eq!(landed.on("r1"), Some(&tags(&[("env", "prod")])));
    let not_landed = claim(&owned, &pending, &by_resource(&[("r1", &[("env", "dev")])]));
    assert_eq!(not_landed, owned);
}

#[test]
fn the_unconfirmed_part_of_an_intent_stays_pending() {
    let intended = by_resource(&[
        ("r1", &[("env", "prod"), ("tier", "web")]),
        ("r2", &[("env", "prod")]),
    ]);
    let confirmed = BTreeSet::from([
        ("r1".to_string(), "env".to_string()),
        ("r2".to_string(), "env".to_string()),
    ]);
    assert_eq!(
        unconfirmed(&intended, &confirmed),
        by_resource(&[("r1", &[("tier", "web")])])
    );
}
