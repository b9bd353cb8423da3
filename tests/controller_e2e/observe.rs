//! Observe mode (issue 13): a binding that reads, plans and reports drift, and never writes:
//! not on creation, not on a spec change, not on deletion. Switching it to Enforce converges.

use std::sync::Arc;

use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};
use tagbinder::api::{DriftCounts, ResourceTagBinding};

use crate::Env;
use crate::support::fixtures::{Tenant, condition, is_true, tags};
use crate::support::processes::{CloudEmulator, http};

/// Tag and untag calls the emulator answered so far (any outcome).
async fn writes(cloud: &CloudEmulator) -> u64 {
    let (code, body) = http("GET", &format!("{}/_emulator/stats", cloud.url), None).await;
    assert_eq!(code, 200, "{body}");
    let stats: Value = serde_json::from_str(&body).expect("JSON stats");
    ["TagResources", "UntagResources"]
        .iter()
        .filter_map(|action| stats["requests"]["alibaba"][action].as_object())
        .flat_map(|outcomes| outcomes.values())
        .filter_map(Value::as_u64)
        .sum()
}

async fn merge(tenant: &Tenant, name: &str, patch: Value) {
    tenant
        .bindings
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch the binding");
}

fn drift(binding: &ResourceTagBinding) -> Option<DriftCounts> {
    binding.status.as_ref().and_then(|s| s.drift)
}

fn observed_generation(binding: &ResourceTagBinding) -> Option<i64> {
    binding.status.as_ref().and_then(|s| s.observed_generation)
}

pub async fn an_observe_binding_reports_drift_and_never_writes(env: Arc<Env>) {
    // NB: a cloud of its own, so that its write counts are this scenario's alone.
    let dir = env.scratch("observe");
    let cloud = CloudEmulator::start(
        &dir,
        &[
            ("obs-g1", &[]),
            ("obs-g2", &[("cost-center", "cc-1")]),
            ("obs-g3", &[("cost-center", "cc-9"), ("team", "web")]),
            ("obs-g4", &[]),
        ],
    )
    .await;
    let tenant = Tenant::new(&env.client, &cloud.url, "observe").await;
    let mut binding = tenant.binding(
        "audit",
        &["obs-g1", "obs-g2", "obs-g3"],
        &[("cost-center", "cc-1")],
    );
    binding.spec.mode = tagbinder::api::BindingMode::Observe;
    tenant.create(&binding).await;

    // Creation: observed, Ready, Drifted; nothing written, nothing owned.
    let observed = tenant
        .wait("audit", "Ready=True and Drifted=True", |b| {
            is_true(b, "Ready") && is_true(b, "Drifted")
        })
        .await;
    assert_eq!(
        drift(&observed),
        Some(DriftCounts {
            resources: 2,
            add: 1,
            change: 1,
            prune: 0
        })
    );
    let status = observed.status.as_ref().expect("a status");
    assert!(status.applied.is_empty(), "an Observe binding owns nothing");
    let samples: Vec<(&str, &str, Option<&str>, Option<&str>)> = status
        .drift_samples
        .iter()
        .map(|s| {
            (
                s.resource_id.as_str(),
                s.key.as_str(),
                s.observed.as_deref(),
                s.desired.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        samples,
        vec![
            ("obs-g1", "cost-center", None, Some("cc-1")),
            ("obs-g3", "cost-center", Some("cc-9"), Some("cc-1")),
        ]
    );
    let drifted = condition(&observed, "Drifted").expect("Drifted");
    assert_eq!(drifted.reason, "Drifted");
    assert!(
        drifted.message.starts_with("2 of 3 resources"),
        "{}",
        drifted.message
    );
    assert_eq!(
        condition(&observed, "Ready").expect("Ready").reason,
        "Observed"
    );
    tenant.wait_event(&env.client, "audit", "Drifted").await;
    let (_, metrics) = env.controller.endpoint("/metrics").await;
    assert!(
        metrics
            .contains("tagbinder_drifted_resources{namespace=\"e2e-observe\",binding=\"audit\"} 2"),
        "{metrics}"
    );
    assert_eq!(writes(&cloud).await, 0, "no cloud write on creation");

    // A spec change: re-planned, still no write.
    merge(
        &tenant,
        "audit",
        json!({"spec": {"tags": {"cost-center": "cc-1", "env": "prod"}}}),
    )
    .await;
    let changed = tenant
        .wait("audit", "the new spec observed", |b| {
            observed_generation(b) == Some(2) && drift(b).is_some_and(|d| d.add == 4)
        })
        .await;
    assert_eq!(
        drift(&changed),
        Some(DriftCounts {
            resources: 3,
            add: 4,
            change: 1,
            prune: 0
        })
    );
    assert!(is_true(&changed, "Ready"));
    assert_eq!(writes(&cloud).await, 0, "no cloud write on a spec change");

    // Enforce converges, and the record grows.
    merge(&tenant, "audit", json!({"spec": {"mode": "Enforce"}})).await;
    let enforced = tenant
        .wait("audit", "Enforce: Synced", |b| {
            observed_generation(b) == Some(3)
                && condition(b, "Ready").is_some_and(|c| c.status == "True" && c.reason == "Synced")
        })
        .await;
    let status = enforced.status.as_ref().expect("a status");
    assert_eq!(status.drift, None, "Enforce reports no drift");
    assert!(condition(&enforced, "Drifted").is_none());
    assert_eq!(status.applied.applied_resource_ids.len(), 3);
    for id in ["obs-g1", "obs-g2"] {
        assert_eq!(
            cloud.tags(id).await,
            tags(&[("cost-center", "cc-1"), ("env", "prod")])
        );
    }
    let written = writes(&cloud).await;
    assert!(written > 0);

    // Back to Observe with a narrower spec: the owned `env` would be pruned, but nothing is
    // written, the record stays, and deletion lets go at once, leaving every tag.
    merge(
        &tenant,
        "audit",
        json!({"spec": {"mode": "Observe", "tags": {"cost-center": "cc-1", "env": null}}}),
    )
    .await;
    let observing = tenant
        .wait("audit", "Observe again: prunes are drift", |b| {
            observed_generation(b) == Some(4) && drift(b).is_some_and(|d| d.prune == 3)
        })
        .await;
    assert!(is_true(&observing, "Ready") && is_true(&observing, "Drifted"));
    let record = &observing.status.as_ref().expect("a status").applied;
    assert_eq!(
        record, &status.applied,
        "Observe leaves the record as it was"
    );
    tenant
        .bindings
        .delete("audit", &DeleteParams::default())
        .await
        .expect("delete the binding");
    tenant.gone("audit").await;
    assert_eq!(writes(&cloud).await, written, "no cloud write on deletion");
    assert_eq!(
        cloud.tags("obs-g3").await,
        tags(&[("cost-center", "cc-1"), ("env", "prod"), ("team", "web")])
    );
    let (_, metrics) = env.controller.endpoint("/metrics").await;
    assert!(
        !metrics.contains("binding=\"audit\""),
        "the gauge of a deleted binding is removed: {metrics}"
    );

    // An older Observe binding claims nothing: a binding that writes the same key with
    // another value converges without a conflict.
    let mut audit = tenant.binding("audit2", &["obs-g4"], &[("cost-center", "cc-1")]);
    audit.spec.mode = tagbinder::api::BindingMode::Observe;
    tenant.create(&audit).await;
    tenant
        .wait("audit2", "Drifted=True", |b| is_true(b, "Drifted"))
        .await;
    tenant
        .create(&tenant.binding("writer", &["obs-g4"], &[("cost-center", "cc-7")]))
        .await;
    let writer = tenant
        .wait("writer", "Ready=True, Synced", |b| {
            condition(b, "Ready").is_some_and(|c| c.status == "True" && c.reason == "Synced")
        })
        .await;
    assert!(
        writer
            .status
            .as_ref()
            .expect("a status")
            .conflicts
            .is_empty()
    );
    assert_eq!(cloud.tags("obs-g4").await, tags(&[("cost-center", "cc-7")]));
}

/// An Observe binding that declares another value than an older Enforce binding on the same
/// resource loses the key, and reports what the resource carries: Drifted=True, the key
/// counted as changed (issue 20: it said "all resources carry the declared tags").
pub async fn an_observe_binding_that_loses_a_conflict_reports_the_drift(env: Arc<Env>) {
    let tenant = Tenant::new(&env.client, &env.cloud.url, "obsconflict").await;
    let enforced = tenant
        .create(&tenant.binding("enforced", &["obsconflict-g1"], &[("env", "prod")]))
        .await;
    tenant.ready("enforced").await;
    // NB: older by a second, so that age alone decides (the names sort the other way).
    let created = enforced
        .metadata
        .creation_timestamp
        .map(|t| t.0.as_second())
        .expect("a creation time");
    while jiff::Timestamp::now().as_second() <= created {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut audit = tenant.binding("observer", &["obsconflict-g1"], &[("env", "staging")]);
    audit.spec.mode = tagbinder::api::BindingMode::Observe;
    tenant.create(&audit).await;

    let observed = tenant
        .wait("observer", "Ready=True and Drifted=True", |b| {
            is_true(b, "Ready") && is_true(b, "Drifted")
        })
        .await;
    assert_eq!(
        drift(&observed),
        Some(DriftCounts {
            resources: 1,
            add: 0,
            change: 1,
            prune: 0
        })
    );
    let message = &condition(&observed, "Drifted").expect("Drifted").message;
    assert!(message.contains("another value of env"), "{message}");
    assert_eq!(
        env.cloud.tags("obsconflict-g1").await,
        tags(&[("env", "prod")])
    );
}
