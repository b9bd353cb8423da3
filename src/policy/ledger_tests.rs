use std::collections::BTreeMap;

use super::*;
use crate::api::{Enforcement, PolicyRules, TagPolicy, TagPolicySpec};
use crate::tags::Tags;

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn policy(name: &str, generation: i64) -> Policy {
    let mut policy = TagPolicy::new(
        name,
        TagPolicySpec {
            match_: None,
            rules: PolicyRules {
                required: vec!["owner".into()],
                allowed_values: BTreeMap::from([("env".into(), vec!["prod".into()])]),
                ..PolicyRules::default()
            },
            enforcement: Enforcement::Warn,
            scan: vec![],
        },
    );
    policy.metadata.generation = Some(generation);
    super::super::compile(&policy).unwrap()
}

const SCOPE: Scope<'static> = Scope {
    provider: "aliyun-prod",
    resource_type: "ecs:instance",
    namespace_labels: None,
};

fn observe(ledger: &mut Ledger, policies: &[Policy], holder: &str, seen: &[(&str, Tags)]) {
    let seen: Vec<(String, Tags)> = seen
        .iter()
        .map(|(id, tags)| (id.to_string(), tags.clone()))
        .collect();
    ledger.observed(
        holder,
        policies,
        &SCOPE,
        None,
        seen.iter().map(|(id, tags)| (id, tags)),
    );
}

fn counts(ledger: &Ledger, name: &str) -> (u32, u32, u32) {
    let figures = ledger.figures(name).expect("counted");
    (
        figures.resources.evaluated,
        figures.resources.compliant,
        figures.resources.noncompliant,
    )
}

#[test]
fn a_foreign_tool_supplying_a_required_key_makes_the_resource_compliant() {
    let policies = [policy("finops", 1)];
    let mut ledger = Ledger::default();
    ledger.sync_policies(&policies);
    // NB: the binding declares env only; `owner` was written by another tool.
    observe(
        &mut ledger,
        &policies,
        "team/web",
        &[("i-1", tags(&[("env", "prod"), ("owner", "ops-console")]))],
    );
    assert_eq!(counts(&ledger, "finops"), (1, 1, 0));
    assert!(ledger.figures("finops").unwrap().noncompliant.is_empty());
}

#[test]
fn a_resource_drifting_out_of_compliance_and_back_is_counted_each_time() {
    let policies = [policy("finops", 1)];
    let mut ledger = Ledger::default();
    ledger.sync_policies(&policies);
    let good = tags(&[("env", "prod"), ("owner", "web")]);
    observe(&mut ledger, &policies, "team/web", &[("i-1", good.clone())]);
    assert_eq!(counts(&ledger, "finops"), (1, 1, 0));
    // Someone removes `owner` and sets env=qa by hand.
    observe(
        &mut ledger,
        &policies,
        "team/web",
        &[("i-1", tags(&[("env", "qa")]))],
    );
    assert_eq!(counts(&ledger, "finops"), (1, 0, 1));
    let samples = ledger.figures("finops").unwrap().noncompliant;
    assert_eq!(samples.len(), 1);
    assert_eq!(samples[0].resource_id, "i-1");
    assert_eq!(samples[0].missing, vec!["owner".to_string()]);
    assert_eq!(
        samples[0].invalid,
        BTreeMap::from([("env".to_string(), "qa".to_string())])
    );
    // The next pass (or the owner) puts it back.
    observe(&mut ledger, &policies, "team/web", &[("i-1", good)]);
    assert_eq!(counts(&ledger, "finops"), (1, 1, 0));
    assert!(ledger.figures("finops").unwrap().noncompliant.is_empty());
}

#[test]
fn more_than_twenty_noncompliant_resources_keep_twenty_samples_and_exact_counts() {
    let policies = [policy("finops", 1)];
    let mut ledger = Ledger::default();
    ledger.sync_policies(&policies);
    // NB: observed in reverse order, over two holders: the samples are the first 20 by id.
    let ids: Vec<String> = (0..25).rev().map(|i| format!("i-{i:02}")).collect();
    let (first, second) = ids.split_at(12);
    for (holder, ids) in [("team/a", first), ("team/b", second)] {
        let seen: Vec<(&str, Tags)> = ids
            .iter()
            .map(|id| (id.as_str(), tags(&[("env", "prod")])))
            .collect();
        observe(&mut ledger, &policies, holder, &seen);
    }
    observe(
        &mut ledger,
        &policies,
        "team/c",
        &[("i-99", tags(&[("env", "prod"), ("owner", "x")]))],
    );
    assert_eq!(counts(&ledger, "finops"), (26, 1, 25));
    let samples = ledger.figures("finops").unwrap().noncompliant;
    assert_eq!(samples.len(), MAX_NONCOMPLIANT_SAMPLES);
    let expected: Vec<String> = (0..20).map(|i| format!("i-{i:02}")).collect();
    assert_eq!(
        samples
            .iter()
            .map(|s| s.resource_id.clone())
            .collect::<Vec<_>>(),
        expected
    );
    // A holder deleted: its resources leave the counts and the samples.
    ledger.forget("team/b");
    assert_eq!(counts(&ledger, "finops"), (13, 1, 12));
    assert!(
        ledger
            .figures("finops")
            .unwrap()
            .noncompliant
            .iter()
            .all(|s| s.resource_id.as_str() >= "i-13")
    );
}

#[test]
fn a_resource_held_by_two_bindings_is_counted_once_until_both_let_go() {
    let policies = [policy("finops", 1)];
    let mut ledger = Ledger::default();
    ledger.sync_policies(&policies);
    let seen = [("i-1", tags(&[("env", "prod")]))];
    observe(&mut ledger, &policies, "team/a", &seen);
    observe(&mut ledger, &policies, "team/b", &seen);
    observe(&mut ledger, &policies, "team/b", &seen);
    assert_eq!(counts(&ledger, "finops"), (1, 0, 1));
    ledger.forget("team/a");
    assert_eq!(counts(&ledger, "finops"), (1, 0, 1));
    ledger.forget("team/b");
    assert_eq!(counts(&ledger, "finops"), (0, 0, 0));
    assert!(ledger.figures("finops").unwrap().noncompliant.is_empty());
}

#[test]
fn bindings_are_counted_by_their_last_verdict_and_a_changed_policy_starts_again() {
    let policies = [policy("finops", 1)];
    let mut ledger = Ledger::default();
    ledger.sync_policies(&policies);
    let breaking = super::super::judge_binding(&policies, &SCOPE, &tags(&[("env", "prod")]));
    let keeping =
        super::super::judge_binding(&policies, &SCOPE, &tags(&[("env", "prod"), ("owner", "a")]));
    ledger.judged("team/a", &breaking);
    ledger.judged("team/b", &keeping);
    ledger.judged("team/a", &breaking);
    let figures = ledger.figures("finops").unwrap();
    assert_eq!(
        (figures.bindings.evaluated, figures.bindings.violating),
        (2, 1)
    );
    ledger.judged("team/a", &keeping);
    assert_eq!(ledger.figures("finops").unwrap().bindings.violating, 0);
    observe(&mut ledger, &policies, "team/a", &[("i-1", tags(&[]))]);
    // A new generation of the policy: nothing is known under it until passes count again.
    let changed = [policy("finops", 2)];
    ledger.sync_policies(&changed);
    assert_eq!(ledger.figures("finops").unwrap(), Figures::default());
    ledger.sync_policies(&[]);
    assert!(ledger.figures("finops").is_none());
}
