//! Tag policies in the controller (issue 24): a binding whose declared tags break a `Deny`
//! TagPolicy is Stalled with reason PolicyViolation naming the policy and the rule, and
//! nothing is written, while a compliant binding of the same provider converges; a `Warn`
//! policy lets a binding proceed with PolicyCompliant=False and a Warning event; fixing the
//! binding, or deleting the policy, lets it converge.

use std::sync::Arc;

use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tagbinder::api::{Enforcement, PolicyMatch, PolicyRules, TagPolicy, TagPolicySpec};

use crate::Env;
use crate::support::fixtures::{Tenant, condition, is_true, provider, tags};
use crate::support::processes::CloudEmulator;

fn policy(name: &str, provider: &str, rules: PolicyRules, enforcement: Enforcement) -> TagPolicy {
    TagPolicy::new(
        name,
        TagPolicySpec {
            // NB: cluster-scoped and the server is shared: it governs this tenant only.
            match_: Some(PolicyMatch {
                providers: vec![provider.to_string()],
                ..PolicyMatch::default()
            }),
            rules,
            enforcement,
            scan: vec![],
        },
    )
}

pub async fn a_deny_policy_stalls_its_breaker_alone_and_a_warn_policy_warns(env: Arc<Env>) {
    let dir = env.scratch("policy");
    let cloud = CloudEmulator::start(&dir, &[("pol-a1", &[]), ("pol-b1", &[])]).await;
    let tenant = Tenant::with_provider(
        &env.client,
        "policy",
        provider("policy", &cloud.url, "policy-creds"),
    )
    .await;
    let policies: Api<TagPolicy> = Api::all(env.client.clone());
    let finops = policy(
        "e2e-finops",
        &tenant.provider,
        PolicyRules {
            required: vec!["cost-center".into()],
            patterns: [("cost-center".to_string(), "^CC-[0-9]{4}$".to_string())].into(),
            ..PolicyRules::default()
        },
        Enforcement::Deny,
    );
    policies
        .create(&PostParams::default(), &finops)
        .await
        .expect("create the Deny policy");

    // 1. Deny: the breaker is Stalled, naming the policy and the rule, and writes nothing;
    // the compliant binding of the same provider converges.
    tenant
        .create(&tenant.binding("bad", &["pol-a1"], &[("cost-center", "cc-1")]))
        .await;
    tenant
        .create(&tenant.binding("good", &["pol-b1"], &[("cost-center", "CC-1042")]))
        .await;
    let stalled = tenant.not_ready("bad", "PolicyViolation").await;
    let ready = condition(&stalled, "Ready").expect("Ready");
    assert!(
        ready.message.contains(
            r#"TagPolicy "e2e-finops" (Deny): rule patterns: cost-center="cc-1" does not match "^CC-[0-9]{4}$""#
        ),
        "{}",
        ready.message
    );
    assert!(is_true(&stalled, "Stalled"));
    let good = tenant.wait("good", "Ready", |b| is_true(b, "Ready")).await;
    assert_eq!(
        condition(&good, "PolicyCompliant").map(|c| c.status.as_str()),
        Some("True")
    );
    assert_eq!(cloud.tags("pol-a1").await, tags(&[]));
    assert_eq!(
        cloud.tags("pol-b1").await,
        tags(&[("cost-center", "CC-1042")])
    );

    // 2. Warn: the binding proceeds; PolicyCompliant=False and a Warning event say why.
    let team = policy(
        "e2e-team",
        &tenant.provider,
        PolicyRules {
            required: vec!["team".into()],
            ..PolicyRules::default()
        },
        Enforcement::Warn,
    );
    policies
        .create(&PostParams::default(), &team)
        .await
        .expect("create the Warn policy");
    let warned = tenant
        .wait("good", "PolicyCompliant=False", |b| {
            is_true(b, "Ready")
                && condition(b, "PolicyCompliant").is_some_and(|c| c.status == "False")
        })
        .await;
    let compliant = condition(&warned, "PolicyCompliant").expect("PolicyCompliant");
    assert_eq!(compliant.reason, "PolicyViolation");
    assert!(
        compliant
            .message
            .contains(r#"TagPolicy "e2e-team" (Warn): rule required: missing key(s) "team""#),
        "{}",
        compliant.message
    );
    tenant
        .wait_event(&env.client, "good", "PolicyViolation")
        .await;

    // 3. The breaker fixed: it converges.
    tenant
        .bindings
        .patch(
            "bad",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"tags": {"cost-center": "CC-0001", "team": "web"}}})),
        )
        .await
        .expect("fix the binding");
    tenant.wait("bad", "Ready", |b| is_true(b, "Ready")).await;
    assert_eq!(
        cloud.tags("pol-a1").await,
        tags(&[("cost-center", "CC-0001"), ("team", "web")])
    );

    for name in ["e2e-finops", "e2e-team"] {
        policies
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete the policy");
    }
}
