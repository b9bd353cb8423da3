//! Tag policies in the controller (issue 24): a binding whose declared tags break a `Deny`
//! TagPolicy is Stalled with reason PolicyViolation naming the policy and the rule, and
//! nothing is written, while a compliant binding of the same provider converges; a `Warn`
//! policy lets a binding proceed with PolicyCompliant=False and a Warning event; fixing the
//! binding, or deleting the policy, lets it converge.

use std::sync::Arc;

use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tagbinder::api::{
    Enforcement, PolicyMatch, PolicyRules, PolicyScan, ProviderRef, TagPolicy, TagPolicySpec,
    TagPolicyStatus,
};

use crate::support::fixtures::{Tenant, condition, eventually, is_true, provider, tags};
use crate::support::processes::CloudEmulator;
use crate::{Env, OPERATOR};

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

/// Waits until the policy's status satisfies `check`.
async fn policy_status(
    policies: &Api<TagPolicy>,
    name: &str,
    what: &str,
    check: impl Fn(&TagPolicyStatus) -> bool,
) -> TagPolicyStatus {
    eventually(&format!("TagPolicy {name}: {what}"), || async {
        match policies.get_opt(name).await {
            Ok(Some(TagPolicy {
                status: Some(status),
                ..
            })) if check(&status) => Ok(status),
            other => Err(format!("{other:?}")),
        }
    })
    .await
}

fn figures(status: &TagPolicyStatus) -> (u32, u32, u32, u32, u32) {
    let bindings = status.bindings.unwrap_or_default();
    let resources = status.resources.unwrap_or_default();
    (
        bindings.evaluated,
        bindings.violating,
        resources.evaluated,
        resources.compliant,
        resources.noncompliant,
    )
}

/// TagPolicy status writes so far by the controller.
fn policy_status_writes(env: &Env, name: &str) -> usize {
    env.server
        .calls()
        .iter()
        .filter(|c| {
            c.is(OPERATOR, "patch", "tagpolicies/status") && c.call.name.as_deref() == Some(name)
        })
        .count()
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
    // The policy's status: both bindings judged, one violating; the resource the compliant
    // one covers counted (the denied one read nothing).
    let status = policy_status(&policies, "e2e-finops", "2 bindings, 1 resource", |s| {
        figures(s) == (2, 1, 1, 1, 0)
    })
    .await;
    let ready = status.conditions.iter().find(|c| c.type_ == "Ready");
    assert_eq!(
        ready.map(|c| (c.status.as_str(), c.reason.as_str())),
        Some(("True", "Evaluated"))
    );
    assert_eq!(status.observed_generation, Some(1));

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
    let status = policy_status(&policies, "e2e-team", "pol-b1 noncompliant", |s| {
        figures(s) == (2, 2, 1, 0, 1)
    })
    .await;
    assert_eq!(status.noncompliant.len(), 1);
    let sample = &status.noncompliant[0];
    assert_eq!(
        (
            sample.provider.as_str(),
            sample.resource_type.as_str(),
            sample.resource_id.as_str()
        ),
        (tenant.provider.as_str(), "apiGroup", "pol-b1")
    );
    assert_eq!(sample.missing, vec!["team".to_string()]);

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
    // Its resource counts now, compliant with both; pol-b1 still lacks `team`.
    policy_status(&policies, "e2e-finops", "2 compliant resources", |s| {
        figures(s) == (2, 0, 2, 2, 0)
    })
    .await;
    policy_status(&policies, "e2e-team", "pol-a1 compliant", |s| {
        figures(s) == (2, 1, 2, 1, 1)
    })
    .await;
    // Few writes: a status per change of the figures, none on a pass that changes none.
    let writes = policy_status_writes(&env, "e2e-team");
    tenant
        .bindings
        .patch(
            "good",
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"annotations": {
                "reconcile.fluxcd.io/requestedAt": "policy-status-writes"
            }}})),
        )
        .await
        .expect("ask for a pass");
    tenant
        .wait("good", "the pass asked for", |b| {
            b.status
                .as_ref()
                .and_then(|s| s.last_handled_reconcile_at.as_deref())
                == Some("policy-status-writes")
        })
        .await;
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        policy_status_writes(&env, "e2e-team"),
        writes,
        "a pass that changes no figure writes no policy status"
    );
    assert!(
        writes <= 6,
        "{writes} status writes of e2e-team for its few changes of figures"
    );
    // An invalid pattern (RE2 refuses look-ahead): Stalled, naming the rule and the error.
    let broken = policy(
        "e2e-broken",
        &tenant.provider,
        PolicyRules {
            patterns: [("team".to_string(), "^(?=w)".to_string())].into(),
            ..PolicyRules::default()
        },
        Enforcement::Warn,
    );
    policies
        .create(&PostParams::default(), &broken)
        .await
        .expect("create the invalid policy");
    let status = policy_status(&policies, "e2e-broken", "Stalled", |s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Stalled" && c.status == "True")
    })
    .await;
    let stalled = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Stalled")
        .expect("Stalled");
    assert_eq!(stalled.reason, "InvalidSpec");
    assert!(
        stalled.message.contains(r#"spec.rules.patterns["team"]"#)
            && stalled.message.contains("look"),
        "{}",
        stalled.message
    );

    for name in ["e2e-finops", "e2e-team", "e2e-broken"] {
        policies
            .delete(name, &DeleteParams::default())
            .await
            .expect("delete the policy");
    }
}

/// A policy's `scan` counts resources that no binding covers, from reads alone: the
/// noncompliant one is named, nothing is written, and removing the scan takes its resources
/// out of the counts.
pub async fn a_policy_scan_counts_unbound_resources_and_writes_nothing(env: Arc<Env>) {
    let dir = env.scratch("policy-scan");
    let cloud = CloudEmulator::start(
        &dir,
        &[
            ("scan-1", &[("env", "prod"), ("owner", "web")]),
            ("scan-2", &[("env", "prod")]),
            ("scan-3", &[("env", "dev")]),
        ],
    )
    .await;
    let tenant = Tenant::with_provider(
        &env.client,
        "policy-scan",
        provider("policy-scan", &cloud.url, "policy-scan-creds"),
    )
    .await;
    let policies: Api<TagPolicy> = Api::all(env.client.clone());
    let mut owners = policy(
        "e2e-scan-owners",
        &tenant.provider,
        PolicyRules {
            required: vec!["owner".into()],
            ..PolicyRules::default()
        },
        Enforcement::Warn,
    );
    owners.spec.scan = vec![PolicyScan {
        provider_ref: ProviderRef {
            name: tenant.provider.clone(),
        },
        resource_type: "apiGroup".into(),
        match_tags: [("env".to_string(), "prod".to_string())].into(),
        interval: Some("1m".into()),
    }];
    policies
        .create(&PostParams::default(), &owners)
        .await
        .expect("create the policy");
    let status = policy_status(&policies, "e2e-scan-owners", "2 scanned resources", |s| {
        figures(s) == (0, 0, 2, 1, 1)
    })
    .await;
    assert_eq!(status.noncompliant.len(), 1);
    assert_eq!(status.noncompliant[0].resource_id, "scan-2");
    assert_eq!(status.noncompliant[0].missing, vec!["owner".to_string()]);
    for action in ["TagResources", "UntagResources"] {
        assert_eq!(
            cloud.calls(action).await,
            0,
            "{action}: a scan writes nothing"
        );
    }
    assert_eq!(cloud.tags("scan-2").await, tags(&[("env", "prod")]));

    // The scan removed: its resources leave the counts.
    policies
        .patch(
            "e2e-scan-owners",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"scan": null}})),
        )
        .await
        .expect("remove the scan");
    policy_status(&policies, "e2e-scan-owners", "no resource", |s| {
        figures(s) == (0, 0, 0, 0, 0)
    })
    .await;
    policies
        .delete("e2e-scan-owners", &DeleteParams::default())
        .await
        .expect("delete the policy");
}
