//! Decisions per key: keep, apply, prune, release, conflict.

use super::*;

#[test]
fn leaves_foreign_tags_untouched() {
    let plan = Case::new()
        .desired(&[("env", "prod")])
        .resources(&["r1"])
        .observed("r1", &[("team", "x"), ("acs:system", "y")])
        .plan();
    assert_eq!(plan.decision("r1", "team"), None);
    assert_eq!(plan.decision("r1", "acs:system"), None);
    assert_eq!(
        plan.tag_batches,
        vec![tag_batch(&["r1"], &[("env", "prod")])]
    );
    assert!(plan.untag_batches.is_empty());
}

#[test]
fn overwrites_a_key_carried_with_another_value() {
    let plan = Case::new()
        .desired(&[("env", "prod")])
        .resources(&["r1"])
        .observed("r1", &[("env", "dev")])
        .plan();
    assert_eq!(
        plan.decision("r1", "env"),
        Some(&apply(Some("dev"), "prod"))
    );
    assert_eq!(
        plan.tag_batches,
        vec![tag_batch(&["r1"], &[("env", "prod")])]
    );
}

#[test]
fn keeps_a_key_already_carried_and_writes_nothing() {
    let plan = Case::new()
        .desired(&[("env", "prod")])
        .resources(&["r1"])
        .observed("r1", &[("env", "prod")])
        .owned("r1", &[("env", "prod")])
        .plan();
    assert_eq!(plan.decision("r1", "env"), Some(&KeyDecision::Keep));
    assert!(!plan.has_changes());
    assert_eq!(plan.write_calls(), 0);
}

#[test]
fn prunes_only_keys_it_applied() {
    let plan = Case::new()
        .desired(&[("env", "prod")])
        .resources(&["r1"])
        .observed("r1", &[("env", "prod"), ("old", "v"), ("other", "w")])
        .owned("r1", &[("env", "prod"), ("old", "v")])
        .plan();
    assert_eq!(plan.decision("r1", "old"), Some(&prune("v")));
    assert_eq!(plan.decision("r1", "other"), None);
    assert_eq!(
        plan.untag_batches,
        vec![untag_batch(&["r1"], &[("old", "v")])]
    );
    assert!(plan.tag_batches.is_empty());
}

#[test]
fn releases_an_owned_key_changed_out_of_band() {
    let case = Case::new()
        .resources(&["r1"])
        .observed("r1", &[("old", "changed")])
        .owned("r1", &[("old", "v")]);
    let plan = case.plan();
    assert_eq!(plan.decision("r1", "old"), Some(&KeyDecision::Release));
    assert!(plan.untag_batches.is_empty());
    assert!(
        plan.next_ownership(&case.owned, &Confirmed::default())
            .is_empty()
    );
}

#[test]
fn releases_an_owned_key_already_gone() {
    let plan = Case::new().owned("r1", &[("old", "v")]).plan();
    assert_eq!(plan.decision("r1", "old"), Some(&KeyDecision::Release));
    assert!(!plan.has_changes());
}

#[test]
fn does_not_prune_a_key_another_binding_declares() {
    let plan = Case::new()
        .resources(&["r1"])
        .observed("r1", &[("old", "v")])
        .owned("r1", &[("old", "v")])
        .rival(
            binding("team-api", "api", Some(500)),
            &["r1"],
            &[("old", "other")],
        )
        .plan();
    assert_eq!(plan.decision("r1", "old"), Some(&KeyDecision::Release));
    assert!(plan.untag_batches.is_empty());
}

#[test]
fn prunes_a_key_another_binding_declares_only_elsewhere() {
    let plan = Case::new()
        .resources(&["r1"])
        .observed("r1", &[("old", "v")])
        .owned("r1", &[("old", "v")])
        .rival(
            binding("team-api", "api", Some(500)),
            &["r2"],
            &[("old", "v")],
        )
        .plan();
    assert_eq!(plan.decision("r1", "old"), Some(&prune("v")));
}

#[test]
fn never_prunes_a_cloud_system_key() {
    let plan = Case::new()
        .observed("r1", &[("acs:env", "v")])
        .owned("r1", &[("acs:env", "v")])
        .plan();
    assert_eq!(plan.decision("r1", "acs:env"), Some(&KeyDecision::Release));
    assert!(plan.untag_batches.is_empty());
}

#[test]
fn older_binding_wins_a_conflict_and_is_named() {
    let plan = Case::new()
        .desired(&[("env", "prod"), ("team", "web")])
        .resources(&["r1"])
        .rival(
            binding("team-z", "newer", Some(200)),
            &["r1"],
            &[("env", "test")],
        )
        .rival(
            binding("team-b", "older", Some(60)),
            &["r1"],
            &[("env", "stage")],
        )
        .rival(
            binding("team-a", "oldest", Some(50)),
            &["r1"],
            &[("env", "dev")],
        )
        .plan();
    let conflict = KeyDecision::Conflict {
        winner: "team-a/oldest".to_string(),
        value: "dev".to_string(),
    };
    assert_eq!(plan.decision("r1", "env"), Some(&conflict));
    assert_eq!(
        plan.tag_batches,
        vec![tag_batch(&["r1"], &[("team", "web")])]
    );
}

#[test]
fn wins_a_conflict_against_a_newer_binding() {
    let plan = Case::new()
        .desired(&[("env", "prod")])
        .resources(&["r1"])
        .observed("r1", &[("env", "dev")])
        .rival(
            binding("team-a", "newer", Some(200)),
            &["r1"],
            &[("env", "dev")],
        )
        .plan();
    assert_eq!(
        plan.decision("r1", "env"),
        Some(&apply(Some("dev"), "prod"))
    );
}

#[test]
fn no_conflict_when_the_oldest_binding_declares_the_same_value() {
    let plan = Case::new()
        .desired(&[("env", "prod")])
        .resources(&["r1"])
        .rival(
            binding("team-a", "oldest", Some(10)),
            &["r1"],
            &[("env", "prod")],
        )
        .rival(
            binding("team-b", "older", Some(20)),
            &["r1"],
            &[("env", "dev")],
        )
        .plan();
    assert_eq!(plan.decision("r1", "env"), Some(&apply(None, "prod")));
}

#[test]
fn conflict_order_falls_back_to_namespace_name_without_creation_time() {
    let case = Case::new()
        .binding(binding("team-web", "web", None))
        .desired(&[("env", "prod")])
        .resources(&["r1"]);
    let by_name = case
        .rival(binding("team-api", "api", None), &["r1"], &[("env", "dev")])
        .plan();
    assert_eq!(
        by_name.decision("r1", "env"),
        Some(&KeyDecision::Conflict {
            winner: "team-api/api".to_string(),
            value: "dev".to_string(),
        })
    );

    let loses_by_name = Case::new()
        .binding(binding("team-web", "web", None))
        .desired(&[("env", "prod")])
        .resources(&["r1"])
        .rival(binding("team-zzz", "api", None), &["r1"], &[("env", "dev")])
        .plan();
    assert_eq!(
        loses_by_name.decision("r1", "env"),
        Some(&apply(None, "prod"))
    );
}

#[test]
fn a_known_creation_time_wins_over_an_unknown_one() {
    let plan = Case::new()
        .binding(binding("team-a", "web", None))
        .desired(&[("env", "prod")])
        .resources(&["r1"])
        .rival(
            binding("team-z", "api", Some(i64::MAX)),
            &["r1"],
            &[("env", "dev")],
        )
        .plan();
    assert!(matches!(
        plan.decision("r1", "env"),
        Some(KeyDecision::Conflict { .. })
    ));
}

#[test]
fn ignores_a_claim_of_the_binding_itself() {
    let me = binding("team-web", "web", Some(100));
    let plan = Case::new()
        .binding(me.clone())
        .resources(&["r1"])
        .observed("r1", &[("old", "v")])
        .owned("r1", &[("old", "v")])
        .rival(me, &["r1"], &[("old", "v")])
        .plan();
    assert_eq!(plan.decision("r1", "old"), Some(&prune("v")));
}

#[test]
fn prunes_everything_owned_on_deletion() {
    let plan = Case::new()
        .observed("r1", &[("a", "1"), ("b", "2"), ("foreign", "x")])
        .observed("r2", &[("a", "1")])
        .owned("r1", &[("a", "1"), ("b", "2")])
        .owned("r2", &[("a", "1")])
        .plan();
    assert_eq!(
        plan.untag_batches,
        vec![
            untag_batch(&["r2"], &[("a", "1")]),
            untag_batch(&["r1"], &[("a", "1"), ("b", "2")]),
        ]
    );
    assert!(plan.tag_batches.is_empty());
    assert_eq!(plan.decision("r1", "foreign"), None);
}

#[test]
fn prunes_tags_on_a_resource_dropped_from_resource_ids() {
    let plan = Case::new()
        .desired(&[("env", "prod")])
        .resources(&["r1"])
        .observed("r1", &[("env", "prod")])
        .observed("r2", &[("env", "prod")])
        .owned("r1", &[("env", "prod")])
        .owned("r2", &[("env", "prod")])
        .plan();
    assert_eq!(plan.decision("r1", "env"), Some(&KeyDecision::Keep));
    assert_eq!(plan.decision("r2", "env"), Some(&prune("prod")));
    assert_eq!(
        plan.untag_batches,
        vec![untag_batch(&["r2"], &[("env", "prod")])]
    );
    assert!(plan.tag_batches.is_empty());
}
