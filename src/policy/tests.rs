use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::api::{PolicyMatch, PolicyRules, TagPolicySpec};

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn finops(enforcement: Enforcement) -> TagPolicy {
    TagPolicy::new(
        "finops",
        TagPolicySpec {
            match_: None,
            rules: PolicyRules {
                required: vec!["cost-center".into(), "owner".into()],
                allowed_values: BTreeMap::from([(
                    "env".into(),
                    vec!["prod".into(), "staging".into(), "dev".into()],
                )]),
                patterns: BTreeMap::from([("cost-center".into(), "^CC-[0-9]{4}$".into())]),
            },
            enforcement,
            scan: vec![],
        },
    )
}

fn scope<'a>(labels: Option<&'a BTreeMap<String, String>>) -> Scope<'a> {
    Scope {
        provider: "aliyun-prod",
        resource_type: "ecs:instance",
        namespace_labels: labels,
    }
}

#[test]
fn each_rule_kind_names_the_key_and_the_rule() {
    let policy = compile(&finops(Enforcement::Deny)).unwrap();
    let findings = policy.check(&tags(&[("cost-center", "cc-1"), ("env", "qa")]));
    assert_eq!(findings.missing, vec!["owner".to_string()]);
    let text = findings.to_string();
    assert!(
        text.contains(r#"rule required: missing key(s) "owner""#),
        "{text}"
    );
    assert!(
        text.contains(r#"rule allowedValues: env="qa" is not one of dev, prod, staging"#),
        "{text}"
    );
    assert!(
        text.contains(r#"rule patterns: cost-center="cc-1" does not match "^CC-[0-9]{4}$""#),
        "{text}"
    );
    assert!(
        policy
            .check(&tags(&[
                ("cost-center", "CC-1042"),
                ("owner", "web"),
                ("env", "prod"),
                ("foreign", "x")
            ]))
            .is_clean()
    );
}

#[test]
fn deny_refuses_and_warn_proceeds() {
    let policies = vec![
        compile(&finops(Enforcement::Deny)).unwrap(),
        compile(&{
            let mut warn = finops(Enforcement::Warn);
            warn.metadata.name = Some("advice".into());
            warn.spec.rules = PolicyRules {
                required: vec!["team".into()],
                ..Default::default()
            };
            warn
        })
        .unwrap(),
    ];
    let declared = tags(&[("cost-center", "CC-0001"), ("owner", "web")]);
    let verdict = judge_binding(&policies, &scope(None), &declared);
    assert!(verdict.denied.is_empty());
    assert_eq!(verdict.warned.len(), 1);
    assert_eq!(verdict.warned[0].policy, "advice");
    let verdict = judge_binding(&policies, &scope(None), &tags(&[("owner", "web")]));
    assert_eq!(verdict.denied.len(), 1);
    assert_eq!(
        Verdict::message(&verdict.denied),
        r#"TagPolicy "finops" (Deny): rule required: missing key(s) "cost-center""#
    );
}

#[test]
fn match_by_provider_type_and_namespace() {
    let mut policy = finops(Enforcement::Deny);
    policy.spec.match_ = Some(PolicyMatch {
        providers: vec!["aliyun-prod".into()],
        resource_types: vec!["ecs:instance".into()],
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([("tier".into(), "prod".into())])),
            ..Default::default()
        }),
    });
    let policy = compile(&policy).unwrap();
    let prod = BTreeMap::from([("tier".to_string(), "prod".to_string())]);
    let dev = BTreeMap::from([("tier".to_string(), "dev".to_string())]);
    assert!(policy.governs(&scope(Some(&prod))));
    assert!(!policy.governs(&scope(Some(&dev))));
    // NB: a scanned resource has no namespace; the selector governs bindings only.
    assert!(policy.governs(&scope(None)));
    assert!(!policy.governs(&Scope {
        provider: "other",
        ..scope(Some(&prod))
    }));
    assert!(!policy.governs(&Scope {
        resource_type: "vm",
        ..scope(Some(&prod))
    }));
}

#[test]
fn patterns_outside_re2_are_refused_naming_the_field() {
    for (pattern, why) in [
        ("(?=x)", "invalid pattern"),
        (r"(a)\1", "invalid pattern"),
        ("a{1001}", "repetition count above 1000"),
        (r"\<word", "word-boundary"),
        (r"\b{start}x", "word-boundary"),
        ("[a-z&&[^c]]", "character class operation"),
        ("[a[bc]]", "nested character class"),
        ("[a-z--c]", "character class operation"),
        ("(?x) a b", "the flag 'x'"),
        ("(?R)^a$", "the flag 'R'"),
        ("(", "invalid pattern"),
    ] {
        let mut policy = finops(Enforcement::Deny);
        policy.spec.rules.patterns = BTreeMap::from([("team".into(), pattern.into())]);
        let error = compile(&policy).unwrap_err();
        assert_eq!(error.field, r#"spec.rules.patterns["team"]"#, "{pattern}");
        assert!(error.message.contains(why), "{pattern}: {}", error.message);
    }
    for pattern in [
        "^CC-[0-9]{4}$",
        r"(?i)^[a-z]+\d*$",
        r"^\p{L}+$",
        "a{1000}",
        r"\bx\B",
        "(?P<n>a)|(?<m>b)",
        "[[:alpha:]]",
    ] {
        let mut policy = finops(Enforcement::Deny);
        policy.spec.rules.patterns = BTreeMap::from([("team".into(), pattern.into())]);
        assert!(compile(&policy).is_ok(), "{pattern}");
    }
}

#[test]
fn a_resource_is_counted_once_and_samples_are_capped_in_order() {
    let policies = vec![compile(&finops(Enforcement::Warn)).unwrap()];
    let mut tally = Tally::new(&policies);
    let bad = tags(&[("env", "qa")]);
    let good = tags(&[("cost-center", "CC-0001"), ("owner", "x")]);
    for i in (0..30).rev() {
        let id = format!("i-{i:02}");
        for _ in 0..2 {
            tally.record_observed(
                &policies,
                &scope(None),
                &Observed {
                    provider: "aliyun-prod",
                    resource_type: "ecs:instance",
                    resource_id: &id,
                    tags: if i % 3 == 0 { &good } else { &bad },
                },
            );
        }
    }
    let row = &tally.policies["finops"];
    assert_eq!(row.resources_evaluated, 30);
    assert_eq!(row.resources_compliant, 10);
    assert_eq!(row.resources_noncompliant(), 20);
    assert_eq!(row.noncompliant.len(), MAX_NONCOMPLIANT_SAMPLES);
    assert_eq!(row.noncompliant[0].resource_id, "i-01");
    assert_eq!(
        row.noncompliant[0].missing,
        vec!["cost-center".to_string(), "owner".to_string()]
    );
    assert_eq!(row.noncompliant[0].invalid["env"], "qa");
}

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["cost-center", "owner", "env", "team", "foreign"])
        .prop_map(str::to_string)
}

fn value() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["prod", "qa", "CC-1234", "cc-1", "", "web"]).prop_map(str::to_string)
}

fn tag_set() -> impl Strategy<Value = Tags> {
    prop::collection::btree_map(key(), value(), 0..6)
}

proptest! {
    /// A finding is exactly a rule broken: a missing key is required and absent; an invalid
    /// value is present and outside the allowed values or the pattern.
    #[test]
    fn findings_are_exactly_the_broken_rules(observed in tag_set()) {
        let policy = compile(&finops(Enforcement::Deny)).unwrap();
        let findings = policy.check(&observed);
        for key in ["cost-center", "owner"] {
            prop_assert_eq!(findings.missing.contains(&key.to_string()), !observed.contains_key(key));
        }
        let env_bad = observed.get("env").is_some_and(|v| !["prod", "staging", "dev"].contains(&v.as_str()));
        let cc_bad = observed.get("cost-center").is_some_and(|v| !Regex::new("^CC-[0-9]{4}$").unwrap().is_match(v));
        prop_assert_eq!(findings.invalid.iter().any(|i| i.key == "env"), env_bad);
        prop_assert_eq!(findings.invalid.iter().any(|i| i.key == "cost-center"), cc_bad);
        prop_assert_eq!(findings.invalid.len(), usize::from(env_bad) + usize::from(cc_bad));
        prop_assert_eq!(findings.is_clean(), findings.to_string().is_empty());
        prop_assert_eq!(policy.keeps(&observed), findings.is_clean());
    }

    /// Tags foreign to the rules never change the outcome; adding a required key never
    /// makes a resource less compliant.
    #[test]
    fn foreign_keys_are_neutral_and_required_keys_help(observed in tag_set(), extra in value()) {
        let policy = compile(&finops(Enforcement::Deny)).unwrap();
        let before = policy.check(&observed);
        let mut with_foreign = observed.clone();
        with_foreign.insert("not-governed".into(), extra);
        prop_assert_eq!(&policy.check(&with_foreign), &before);
        let mut with_owner = observed.clone();
        with_owner.entry("owner".into()).or_insert_with(|| "someone".into());
        let after = policy.check(&with_owner);
        prop_assert!(after.missing.len() <= before.missing.len());
        prop_assert!(!after.missing.contains(&"owner".to_string()));
    }

    /// Deny and Warn see the same breaches; only where they land differs. A binding is
    /// counted once per governing policy, violating when it breaks it.
    #[test]
    fn deny_and_warn_agree_on_what_breaks(declared in tag_set()) {
        let deny = vec![compile(&finops(Enforcement::Deny)).unwrap()];
        let warn = vec![compile(&finops(Enforcement::Warn)).unwrap()];
        let denied = judge_binding(&deny, &scope(None), &declared);
        let warned = judge_binding(&warn, &scope(None), &declared);
        prop_assert!(denied.warned.is_empty() && warned.denied.is_empty());
        prop_assert_eq!(denied.denied.len(), warned.warned.len());
        prop_assert_eq!(denied.denied.is_empty(), deny[0].check(&declared).is_clean());
        let mut tally = Tally::new(&deny);
        tally.record_binding(&denied);
        let row = &tally.policies["finops"];
        prop_assert_eq!(row.bindings_evaluated, 1);
        prop_assert_eq!(row.bindings_violating, u32::from(!denied.denied.is_empty()));
    }

    /// Counts add up whatever the order and repetition of observations: each resource
    /// once, compliant + noncompliant = evaluated, samples sorted, at most 20.
    #[test]
    fn tallies_add_up(resources in prop::collection::vec((0u8..40, tag_set()), 0..80)) {
        let policies = vec![compile(&finops(Enforcement::Deny)).unwrap()];
        let mut tally = Tally::new(&policies);
        let mut first: BTreeMap<u8, Tags> = BTreeMap::new();
        for (id, observed) in &resources {
            first.entry(*id).or_insert_with(|| observed.clone());
            let id = format!("r-{id:02}");
            tally.record_observed(&policies, &scope(None), &Observed {
                provider: "aliyun-prod", resource_type: "ecs:instance", resource_id: &id, tags: observed,
            });
        }
        let row = &tally.policies["finops"];
        prop_assert_eq!(row.resources_evaluated as usize, first.len());
        let bad = first.values().filter(|t| !policies[0].check(t).is_clean()).count();
        prop_assert_eq!(row.resources_noncompliant() as usize, bad);
        prop_assert_eq!(row.noncompliant.len(), bad.min(MAX_NONCOMPLIANT_SAMPLES));
        prop_assert!(row.noncompliant.windows(2).all(|w| w[0].resource_id < w[1].resource_id));
    }
}
