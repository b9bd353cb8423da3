//! The ownership record after a pass.

use super::*;

#[test]
fn next_ownership_keeps_old_record_on_failed_write() {
    let case = Case::new()
        .desired(&[("env", "prod")])
        .resources(&["r1", "r2"])
        .observed("r1", &[("env", "dev"), ("old", "v")])
        .observed("r2", &[("env", "dev")])
        .owned("r1", &[("env", "dev"), ("old", "v")])
        .owned("r2", &[("env", "dev")]);
    let plan = case.plan();
    let failed = plan.next_ownership(&case.owned, &Confirmed::default());
    assert_eq!(failed, case.owned);

    let partly = plan.next_ownership(&case.owned, &confirmed(&[("r2", "env")], &[("r1", "old")]));
    assert_eq!(partly.on("r1"), Some(&tags(&[("env", "dev")])));
    assert_eq!(partly.on("r2"), Some(&tags(&[("env", "prod")])));
}

#[test]
fn keep_takes_no_ownership_of_a_pre_existing_tag() {
    let case = Case::new()
        .desired(&[("env", "prod")])
        .resources(&["r1"])
        .observed("r1", &[("env", "prod")]);
    let plan = case.plan();
    assert_eq!(plan.decision("r1", "env"), Some(&KeyDecision::Keep));
    let everything = confirmed(&[("r1", "env")], &[]);
    assert!(plan.next_ownership(&case.owned, &everything).is_empty());
}

#[test]
fn releases_a_stale_record_of_a_declared_key_carried_as_declared() {
    let case = Case::new()
        .desired(&[("env", "prod")])
        .resources(&["r1"])
        .observed("r1", &[("env", "prod")])
        .owned("r1", &[("env", "dev")]);
    let plan = case.plan();
    assert_eq!(plan.decision("r1", "env"), Some(&KeyDecision::Release));
    assert!(!plan.has_changes());
    assert!(
        plan.next_ownership(&case.owned, &Confirmed::default())
            .is_empty()
    );
}

#[test]
fn a_lost_conflict_releases_ownership() {
    let case = Case::new()
        .desired(&[("env", "prod")])
        .resources(&["r1"])
        .observed("r1", &[("env", "prod")])
        .owned("r1", &[("env", "prod")])
        .rival(
            binding("team-a", "older", Some(1)),
            &["r1"],
            &[("env", "dev")],
        );
    let plan = case.plan();
    assert!(!plan.has_changes());
    assert!(
        plan.next_ownership(&case.owned, &Confirmed::default())
            .is_empty()
    );
}
