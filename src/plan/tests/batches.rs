//! Quota and batching: the fewest calls within the provider's limits.

use super::*;

#[test]
fn blocked_when_quota_would_be_exceeded() {
    let plan = Case::new()
        .desired(&[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")])
        .resources(&["r1", "r2"])
        .carrying("r1", 19)
        .plan();
    assert_eq!(
        plan.blocked.get("r1").map(String::as_str),
        Some("resource r1 would carry 23 tags (19 kept, 4 added); the limit is 20")
    );
    assert_eq!(plan.decision("r1", "a"), Some(&apply(None, "1")));
    assert_eq!(
        plan.tag_batches,
        vec![tag_batch(
            &["r2"],
            &[("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")]
        )]
    );
}

#[test]
fn quota_counts_prunes_and_not_system_keys() {
    let plan = Case::new()
        .desired(&[("a", "1"), ("b", "2")])
        .resources(&["r1"])
        .observed("r1", &[("old", "v"), ("acs:system", "s")])
        .carrying("r1", 18)
        .owned("r1", &[("old", "v")])
        .plan();
    assert!(plan.blocked.is_empty(), "{:?}", plan.blocked);
    assert_eq!(
        plan.untag_batches,
        vec![untag_batch(&["r1"], &[("old", "v")])]
    );
    assert_eq!(
        plan.tag_batches,
        vec![tag_batch(&["r1"], &[("a", "1"), ("b", "2")])]
    );
}

#[test]
fn a_blocked_resource_still_gets_its_prunes() {
    let plan = Case::new()
        .desired(&[("a", "1"), ("b", "2")])
        .resources(&["r1"])
        .observed("r1", &[("f", "x"), ("old", "v")])
        .owned("r1", &[("old", "v")])
        .limits(|limits| limits.tags_per_resource = 2)
        .plan();
    assert!(plan.blocked.contains_key("r1"));
    assert!(plan.tag_batches.is_empty());
    assert_eq!(
        plan.untag_batches,
        vec![untag_batch(&["r1"], &[("old", "v")])]
    );
}

#[test]
fn chunks_25_keys_into_20_and_5() {
    let keys = numbered("k", 25);
    let pairs: Vec<(&str, &str)> = keys.iter().map(|key| (key.as_str(), "v")).collect();
    let plan = Case::new()
        .desired(&pairs)
        .resources(&["r1"])
        .limits(|limits| limits.tags_per_resource = 50)
        .plan();
    let sizes: Vec<usize> = plan.tag_batches.iter().map(|b| b.tags.len()).collect();
    assert_eq!(sizes, vec![20, 5]);
    assert_eq!(plan.write_calls(), 2);
}

#[test]
fn batches_120_resources_into_50_50_20() {
    let ids = numbered("r", 120);
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let plan = Case::new()
        .desired(&[("env", "prod")])
        .resources(&ids)
        .plan();
    let sizes: Vec<usize> = plan
        .tag_batches
        .iter()
        .map(|b| b.resource_ids.len())
        .collect();
    assert_eq!(sizes, vec![50, 50, 20]);
    assert_eq!(plan.tag_batches[0].resource_ids[0], "r000");
    assert_eq!(plan.tag_batches[2].resource_ids[19], "r119");
}

#[test]
fn carries_kept_keys_along_to_share_one_call() {
    let plan = Case::new()
        .desired(&[("env", "prod"), ("team", "web")])
        .resources(&["r1", "r2", "r3"])
        .observed("r1", &[("env", "prod")])
        .observed("r2", &[("env", "prod"), ("team", "web")])
        .plan();
    assert_eq!(
        plan.tag_batches,
        vec![tag_batch(
            &["r1", "r3"],
            &[("env", "prod"), ("team", "web")]
        )]
    );
}

#[test]
fn never_sends_a_conflict_key_to_the_resource_in_conflict() {
    let plan = Case::new()
        .desired(&[("env", "prod"), ("team", "web")])
        .resources(&["r1", "r2"])
        .rival(
            binding("team-a", "older", Some(1)),
            &["r1"],
            &[("env", "dev")],
        )
        .plan();
    assert_eq!(
        plan.tag_batches,
        vec![
            tag_batch(&["r2"], &[("env", "prod"), ("team", "web")]),
            tag_batch(&["r1"], &[("team", "web")]),
        ]
    );
}

#[test]
fn untag_never_sends_a_key_whose_value_changed() {
    let plan = Case::new()
        .observed("r1", &[("old", "v")])
        .observed("r2", &[("old", "changed")])
        .observed("r3", &[("old", "u")])
        .owned("r1", &[("old", "v")])
        .owned("r2", &[("old", "v")])
        .owned("r3", &[("old", "u")])
        .plan();
    assert_eq!(
        plan.untag_batches,
        vec![
            untag_batch(&["r3"], &[("old", "u")]),
            untag_batch(&["r1"], &[("old", "v")]),
        ]
    );
    assert_eq!(plan.decision("r2", "old"), Some(&KeyDecision::Release));
}

#[test]
fn untag_batches_respect_key_and_resource_limits() {
    let case = ["r1", "r2", "r3"].iter().fold(Case::new(), |case, id| {
        case.observed(id, &[("a", "1"), ("b", "2"), ("c", "3")])
            .owned(id, &[("a", "1"), ("b", "2"), ("c", "3")])
    });
    let plan = case
        .limits(|limits| {
            limits.keys_per_untag_call = 2;
            limits.resources_per_call = 2;
        })
        .plan();
    assert_eq!(
        plan.untag_batches,
        vec![
            untag_batch(&["r1", "r2"], &[("a", "1"), ("b", "2")]),
            untag_batch(&["r3"], &[("a", "1"), ("b", "2")]),
            untag_batch(&["r1", "r2"], &[("c", "3")]),
            untag_batch(&["r3"], &[("c", "3")]),
        ]
    );
}

#[test]
fn a_resource_over_quota_with_nothing_to_add_is_not_blocked() {
    let plan = Case::new()
        .desired(&[("env", "prod")])
        .resources(&["r1"])
        .observed("r1", &[("env", "dev")])
        .carrying("r1", 25)
        .plan();
    assert!(plan.blocked.is_empty(), "{:?}", plan.blocked);
    assert_eq!(
        plan.tag_batches,
        vec![tag_batch(&["r1"], &[("env", "prod")])]
    );
}
