//! Scenarios of the shared controller: bindings converge, change, go away, stay put, and say
//! why when they cannot.

use std::sync::Arc;

use base64::Engine;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;
use tagbinder::api::{ConflictEntry, DeletionPolicy, ResourceCounts};

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::PostParams;

use crate::support::fixtures::{
    Tenant, condition, create_namespace, is_true, provider, provider_for_labels, tags, version,
};
use crate::support::processes::{KEY_ID, KEY_SECRET, POD_NAMESPACE};
use crate::{Env, OPERATOR};

async fn merge(tenant: &Tenant, name: &str, patch: serde_json::Value) {
    tenant
        .bindings
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch the binding");
}

async fn delete(tenant: &Tenant, name: &str) {
    tenant
        .bindings
        .delete(name, &DeleteParams::default())
        .await
        .expect("delete the binding");
}

/// Waits until `tenant`'s bindings made `more` passes after `since`.
pub async fn passes_after(env: &Env, tenant: &Tenant, since: usize, more: usize) {
    crate::support::fixtures::eventually(
        &format!("{more} more passes in {}", tenant.namespace),
        || async {
            let now = tenant.passes(&env.controller).await;
            if now >= since + more {
                Ok(())
            } else {
                Err(format!("{now} passes, from {since}"))
            }
        },
    )
    .await;
}

pub async fn applies_tags_and_writes_status_once(env: Arc<Env>) {
    let tenant = Tenant::new(&env.client, &env.cloud.url, "apply").await;
    tenant
        .create(&tenant.binding(
            "web",
            &["apply-g1", "apply-g2"],
            &[("env", "prod"), ("owner", "team-web")],
        ))
        .await;
    let ready = tenant.ready("web").await;

    let status = ready.status.clone().expect("a status");
    let condition = condition(&ready, "Ready").expect("a Ready condition");
    assert_eq!(condition.reason, "Synced");
    assert_eq!(condition.observed_generation, Some(1));
    assert_eq!(status.observed_generation, Some(1));
    assert_eq!(
        status.applied.applied_tags,
        tags(&[("env", "prod"), ("owner", "team-web")])
    );
    assert_eq!(
        status.resources,
        Some(ResourceCounts {
            total: 2,
            synced: 2,
            failed: 0
        })
    );
    assert!(
        ready
            .metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.contains(&"tagbinder.io/cleanup".to_string()))
    );
    assert_eq!(
        env.cloud.tags("apply-g1").await,
        tags(&[("env", "prod"), ("owner", "team-web")])
    );
    assert_eq!(
        env.cloud.tags("apply-g2").await,
        tags(&[("env", "prod"), ("owner", "team-web"), ("team", "web")]),
        "a foreign tag is kept"
    );

    // Resyncs that find nothing new write nothing: not the status, not an event.
    let passes = tenant.passes(&env.controller).await;
    passes_after(&env, &tenant, passes, 3).await;
    let later = tenant.bindings.get("web").await.expect("the binding");
    assert_eq!(
        version(&later),
        version(&ready),
        "no write after the first convergence"
    );
    assert_eq!(
        later.status.and_then(|s| s.last_sync_time),
        status.last_sync_time
    );
    // NB: the intent before the cloud writes (issue 14's crash window), in the binding's
    // annotation with the finalizer (issue 19: one write), the outcome after, in status.
    assert_eq!(
        tenant.object_writes(&env.server, OPERATOR, "web"),
        1,
        "the binding written once: the intent and the finalizer"
    );
    assert_eq!(
        tenant.status_writes(&env.server, OPERATOR, "web"),
        1,
        "the status written once: the outcome"
    );
    let events = tenant.events(&env.client, "web").await;
    let applied: Vec<_> = events
        .iter()
        .filter(|(_, reason, _)| reason == "TagsApplied")
        .collect();
    assert_eq!(applied.len(), 1, "one TagsApplied event: {events:?}");
    // NB: the event names the keys, their values and the resources (issue 25, item 0).
    let note = &applied[0].2;
    for part in ["env=prod", "owner=team-web", "apply-g1", "apply-g2"] {
        assert!(note.contains(part), "{part} in {note:?}");
    }
    let provider = tenant
        .provider_ready(&env.client, "True", "Reachable")
        .await;
    assert!(
        provider
            .status
            .and_then(|s| s.last_successful_call_time)
            .is_some(),
        "the time of the last successful call"
    );
}

pub async fn a_changed_spec_rewrites_and_prunes(env: Arc<Env>) {
    let tenant = Tenant::new(&env.client, &env.cloud.url, "change").await;
    tenant
        .create(&tenant.binding("web", &["change-g1"], &[("env", "prod"), ("owner", "a")]))
        .await;
    tenant.ready("web").await;

    merge(
        &tenant,
        "web",
        json!({"spec": {"tags": {"env": "staging", "owner": null, "cost": "c1"}}}),
    )
    .await;
    let changed = tenant
        .wait("web", "Ready for generation 2", |b| {
            b.status.as_ref().and_then(|s| s.observed_generation) == Some(2) && is_true(b, "Ready")
        })
        .await;
    assert_eq!(
        env.cloud.tags("change-g1").await,
        tags(&[("cost", "c1"), ("env", "staging")])
    );
    let status = changed.status.expect("a status");
    assert_eq!(
        status.applied.applied_tags,
        tags(&[("cost", "c1"), ("env", "staging")])
    );
    assert!(
        status
            .conditions
            .iter()
            .all(|c| c.observed_generation == Some(2)),
        "{:?}",
        status.conditions
    );
    let events = tenant.wait_event(&env.client, "web", "Pruned").await;
    assert!(
        events
            .iter()
            .any(|(_, r, note)| r == "Pruned" && note == "removed owner=a from change-g1"),
        "{events:?}"
    );
}

pub async fn deleting_with_policy_delete_prunes_what_it_applied(env: Arc<Env>) {
    let tenant = Tenant::new(&env.client, &env.cloud.url, "delete").await;
    tenant
        .create(&tenant.binding("web", &["delete-g1"], &[("env", "prod")]))
        .await;
    tenant.ready("web").await;
    assert_eq!(
        env.cloud.tags("delete-g1").await,
        tags(&[("created-by", "console"), ("env", "prod")])
    );

    delete(&tenant, "web").await;
    tenant.gone("web").await;
    assert_eq!(
        env.cloud.tags("delete-g1").await,
        tags(&[("created-by", "console")]),
        "only what it applied is pruned"
    );
    tenant.wait_event(&env.client, "web", "Pruned").await;
}

pub async fn deleting_with_policy_orphan_leaves_the_tags(env: Arc<Env>) {
    let tenant = Tenant::new(&env.client, &env.cloud.url, "orphan").await;
    let mut binding = tenant.binding("web", &["orphan-g1"], &[("env", "prod")]);
    binding.spec.deletion_policy = DeletionPolicy::Orphan;
    tenant.create(&binding).await;
    tenant.ready("web").await;

    delete(&tenant, "web").await;
    tenant.gone("web").await;
    assert_eq!(env.cloud.tags("orphan-g1").await, tags(&[("env", "prod")]));
}

pub async fn drift_in_the_cloud_is_corrected_on_the_next_interval(env: Arc<Env>) {
    let tenant = Tenant::new(&env.client, &env.cloud.url, "drift").await;
    tenant
        .create(&tenant.binding("web", &["drift-g1"], &[("env", "prod")]))
        .await;
    tenant.ready("web").await;

    env.cloud
        .edit("drift-g1", &[("env", "tampered")], &[])
        .await;
    crate::support::fixtures::eventually("the drifted tag is rewritten", || async {
        let now = env.cloud.tags("drift-g1").await;
        if now == tags(&[("env", "prod")]) {
            Ok(())
        } else {
            Err(format!("{now:?}"))
        }
    })
    .await;
    tenant
        .wait_event(&env.client, "web", "DriftCorrected")
        .await;
    let (_, metrics) = env.controller.endpoint("/metrics").await;
    let corrected: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tagbinder_drift_corrections_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("tagbinder_drift_corrections_total in\n{metrics}"));
    assert!(corrected >= 1.0, "{metrics}");
    let still = tenant.bindings.get("web").await.expect("the binding");
    assert!(is_true(&still, "Ready"));
}

pub async fn the_older_of_two_conflicting_bindings_wins_without_flapping(env: Arc<Env>) {
    let tenant = Tenant::new(&env.client, &env.cloud.url, "conflict").await;
    // NB: the names sort the other way round, so that only age can decide.
    let older = tenant
        .create(&tenant.binding("z-older", &["conflict-g1"], &[("env", "prod")]))
        .await;
    tenant.ready("z-older").await;
    let created = older
        .metadata
        .creation_timestamp
        .map(|Time(t)| t.as_second())
        .expect("a creation time");
    while jiff::Timestamp::now().as_second() <= created {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tenant
        .create(&tenant.binding(
            "a-newer",
            &["conflict-g1"],
            &[("env", "staging"), ("owner", "b")],
        ))
        .await;

    let loser = tenant.not_ready("a-newer", "Conflict").await;
    let message = &condition(&loser, "Ready").expect("Ready").message;
    assert!(
        message.contains("e2e-conflict/z-older"),
        "the winner is named: {message}"
    );
    let status = loser.status.clone().expect("a status");
    assert_eq!(
        status.conflicts,
        vec![ConflictEntry {
            resource_id: "conflict-g1".into(),
            key: "env".into(),
            winner: "e2e-conflict/z-older".into()
        }]
    );
    assert_eq!(status.applied.applied_tags, tags(&[("owner", "b")]));
    assert_eq!(
        env.cloud.tags("conflict-g1").await,
        tags(&[("env", "prod"), ("owner", "b")])
    );

    // No flapping: passes go on, nothing is written, in Kubernetes or in the cloud.
    let winner = tenant.bindings.get("z-older").await.expect("the winner");
    let passes = tenant.passes(&env.controller).await;
    passes_after(&env, &tenant, passes, 6).await;
    assert_eq!(
        version(&tenant.bindings.get("z-older").await.expect("winner")),
        version(&winner)
    );
    assert_eq!(
        version(&tenant.bindings.get("a-newer").await.expect("loser")),
        version(&loser)
    );
    assert_eq!(
        env.cloud.tags("conflict-g1").await,
        tags(&[("env", "prod"), ("owner", "b")])
    );
    let events = tenant.events(&env.client, "a-newer").await;
    assert_eq!(
        events.iter().filter(|(_, r, _)| r == "Conflict").count(),
        1,
        "{events:?}"
    );
}

pub async fn a_suspended_binding_makes_no_cloud_writes(env: Arc<Env>) {
    let tenant = Tenant::new(&env.client, &env.cloud.url, "suspend").await;
    let mut binding = tenant.binding("web", &["suspend-g1"], &[("env", "prod")]);
    binding.spec.suspend = true;
    tenant.create(&binding).await;
    let suspended = tenant.not_ready("web", "Suspended").await;
    assert!(condition(&suspended, "Ready").is_some_and(|c| c.message.contains("spec.suspend")));
    assert_eq!(
        env.cloud.tags("suspend-g1").await,
        tags(&[("env", "legacy")]),
        "no cloud write"
    );

    merge(&tenant, "web", json!({"spec": {"suspend": false}})).await;
    tenant.ready("web").await;
    assert_eq!(env.cloud.tags("suspend-g1").await, tags(&[("env", "prod")]));
}

pub async fn a_namespace_the_provider_does_not_allow_is_stalled(env: Arc<Env>) {
    let secret = "notallowed-creds";
    let provider = provider_for_labels("notallowed", &env.cloud.url, secret, &[("team", "web")]);
    let tenant = Tenant::with_provider(&env.client, "notallowed", provider).await;
    tenant
        .create(&tenant.binding("web", &["notallowed-g1"], &[("env", "prod")]))
        .await;

    let refused = tenant.not_ready("web", "NamespaceNotAllowed").await;
    assert!(is_true(&refused, "Stalled"));
    let message = &condition(&refused, "Ready").expect("Ready").message;
    assert!(
        message.contains("e2e-notallowed") && message.contains("notallowed"),
        "{message}"
    );
    assert_eq!(env.cloud.tags("notallowed-g1").await, tags(&[]));
    let events = tenant
        .wait_event(&env.client, "web", "NamespaceNotAllowed")
        .await;
    assert!(
        events
            .iter()
            .any(|(t, r, _)| t == "Warning" && r == "NamespaceNotAllowed")
    );

    // Issue 23: the namespace gains the label: the namespaces' watch brings the pass, and
    // the labels come from its cache, not from a read of the namespace per pass.
    let patch = serde_json::json!({"metadata": {"labels": {"team": "web"}}});
    kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(env.client.clone())
        .patch(
            &tenant.namespace,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&patch),
        )
        .await
        .expect("label the namespace");
    tenant.ready("web").await;
    assert_eq!(
        env.cloud.tags("notallowed-g1").await,
        tags(&[("env", "prod")])
    );
    let reads = env
        .server
        .calls()
        .iter()
        .filter(|c| {
            c.is(OPERATOR, "get", "namespaces") && c.call.name.as_deref() == Some(&tenant.namespace)
        })
        .count();
    assert_eq!(reads, 0, "namespace GETs by the controller");
}

pub async fn a_secret_outside_the_credentials_namespace_is_stalled_unread(env: Arc<Env>) {
    // A valid Secret, in a namespace that is not the controller's credentials namespace
    // (its POD_NAMESPACE, the default of --credentials-namespace).
    let mut provider = provider("outside", &env.cloud.url, "outside-creds");
    let elsewhere = "e2e-outside-creds";
    create_namespace(&env.client, elsewhere, &[]).await;
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("outside-creds".into()),
            ..ObjectMeta::default()
        },
        string_data: Some(
            [("accessKeyId", KEY_ID), ("accessKeySecret", KEY_SECRET)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(env.client.clone(), elsewhere)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create the Secret elsewhere");
    provider
        .spec
        .credentials
        .as_mut()
        .expect("credentials")
        .secret_ref
        .namespace = elsewhere.into();
    let tenant = Tenant::with_provider(&env.client, "outside", provider).await;
    tenant
        .create(&tenant.binding("web", &["outside-g1"], &[("env", "prod")]))
        .await;

    let stalled = tenant
        .not_ready("web", "SecretNotInCredentialsNamespace")
        .await;
    assert!(is_true(&stalled, "Stalled"));
    let message = &condition(&stalled, "Ready").expect("Ready").message;
    for needle in [
        "e2e-outside-creds/outside-creds",
        POD_NAMESPACE,
        "--credentials-namespace",
        "credentialsNamespace",
    ] {
        assert!(message.contains(needle), "{needle:?} in: {message}");
    }
    tenant
        .wait_event(&env.client, "web", "SecretNotInCredentialsNamespace")
        .await;
    assert_eq!(env.cloud.tags("outside-g1").await, tags(&[]));
    let read_elsewhere: Vec<_> = env
        .server
        .calls()
        .into_iter()
        .filter(|c| c.user.starts_with("tagbinder-") && c.call.resource == "secrets")
        .filter(|c| c.call.namespace.as_deref() == Some(elsewhere))
        .collect();
    assert!(
        read_elsewhere.is_empty(),
        "the controller touched Secrets outside its credentials namespace: {read_elsewhere:?}"
    );
}

pub async fn a_forbidden_secret_is_reported_without_its_data(env: Arc<Env>) {
    let secret = "forbidden-creds";
    env.server
        .deny(move |c| c.is(OPERATOR, "get", "secrets") && c.on(POD_NAMESPACE, secret));
    let tenant = Tenant::new(&env.client, &env.cloud.url, "forbidden").await;
    tenant
        .create(&tenant.binding("web", &["forbidden-g1"], &[("env", "prod")]))
        .await;

    let stalled = tenant.not_ready("web", "CredentialsInvalid").await;
    assert!(is_true(&stalled, "Stalled"));
    let message = &condition(&stalled, "Ready").expect("Ready").message;
    assert!(
        message.contains("tagbinder-system/forbidden-creds"),
        "the Secret is named: {message}"
    );
    assert!(message.contains("forbidden"), "{message}");
    let events = tenant
        .wait_event(&env.client, "web", "CredentialsInvalid")
        .await;
    let encoded = base64::engine::general_purpose::STANDARD.encode(KEY_SECRET);
    let everything = format!(
        "{} {events:?}",
        serde_json::to_string(&stalled).expect("JSON")
    );
    assert!(
        !everything.contains(KEY_SECRET) && !everything.contains(&encoded),
        "no secret data"
    );
    assert_eq!(env.cloud.tags("forbidden-g1").await, tags(&[]));

    // Access may be granted later (no watch sees RBAC): the binding is looked at again, and
    // the unchanged status is not rewritten.
    // NB: the controller cannot build a client, so no pass reaches the cloud: its attempts
    // are counted by its reads of the Secret.
    let reads = tenant.secret_reads(&env.server, OPERATOR);
    crate::support::fixtures::eventually("the Secret is read twice more", || async {
        let now = tenant.secret_reads(&env.server, OPERATOR);
        if now >= reads + 2 {
            Ok(())
        } else {
            Err(format!("{now} reads, from {reads}"))
        }
    })
    .await;
    let later = tenant.bindings.get("web").await.expect("the binding");
    assert_eq!(version(&later), version(&stalled));
}

pub async fn a_conflict_on_a_status_write_is_retried_and_ownership_is_kept(env: Arc<Env>) {
    // NB: the first status write, the one after the cloud writes (the intent before them
    // goes to the binding's annotation).
    env.server.fail_next(1, 409, move |c| {
        c.is(OPERATOR, "patch", "resourcetagbindings/status") && c.on("e2e-retry", "web")
    });
    let tenant = Tenant::new(&env.client, &env.cloud.url, "retry").await;
    tenant
        .create(&tenant.binding("web", &["retry-g1"], &[("env", "prod")]))
        .await;

    let ready = tenant.ready("web").await;
    assert!(
        tenant.status_writes(&env.server, OPERATOR, "web") >= 2,
        "the failed write was retried"
    );
    assert_eq!(env.cloud.tags("retry-g1").await, tags(&[("env", "prod")]));
    assert_eq!(
        ready.status.expect("a status").applied.applied_tags,
        tags(&[("env", "prod")]),
        "the tags written before the failed status write are still recorded as applied"
    );
    delete(&tenant, "web").await;
    tenant.gone("web").await;
    assert_eq!(
        env.cloud.tags("retry-g1").await,
        tags(&[]),
        "and so they are pruned"
    );
}
