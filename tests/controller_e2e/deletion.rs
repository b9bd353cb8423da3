//! Deletions that cannot proceed or must not write (issue 20): a suspended binding lets go of
//! its tags, a deletion without credentials is Stalled until orphaned, a deletion in a
//! namespace the provider no longer allows is Stalled until allowed again. They need nothing
//! of the stand-in's own: the real-server suite runs them too.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::json;

use crate::Env;
use crate::support::fixtures::{Tenant, condition, eventually, is_true, provider_for_labels, tags};
use crate::support::processes::{KEY_SECRET, POD_NAMESPACE};

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

/// Suspend makes no cloud writes, not even a deletion's prune: as Flux does, the binding lets
/// go as with `deletionPolicy: Orphan`, and an event says so.
pub async fn deleting_a_suspended_binding_leaves_its_tags(env: Arc<Env>) {
    let tenant = Tenant::new(&env.client, &env.cloud.url, "suspdel").await;
    tenant
        .create(&tenant.binding("web", &["suspdel-g1"], &[("env", "prod")]))
        .await;
    tenant.ready("web").await;
    merge(&tenant, "web", json!({"spec": {"suspend": true}})).await;
    tenant.not_ready("web", "Suspended").await;

    delete(&tenant, "web").await;
    tenant.gone("web").await;
    assert_eq!(
        env.cloud.tags("suspdel-g1").await,
        tags(&[("env", "prod")]),
        "no cloud write"
    );
    let events = tenant.wait_event(&env.client, "web", "OrphanedTags").await;
    assert!(
        events
            .iter()
            .any(|(_, r, note)| r == "OrphanedTags" && note.contains("suspend")),
        "{events:?}"
    );
}

/// Waits until the Terminating binding reports why its deletion waits: Ready=False with
/// `reason`, Stalled, the way out named; and a Warning event saying the same.
async fn deletion_waits(env: &Env, tenant: &Tenant, name: &str, reason: &str) {
    let stalled = tenant
        .wait(
            name,
            &format!("Stalled, {reason}, the deletion waits"),
            |b| {
                b.metadata.deletion_timestamp.is_some()
                    && is_true(b, "Stalled")
                    && condition(b, "Ready").is_some_and(|c| {
                        c.status == "False"
                            && c.reason == reason
                            && c.message.contains("deletion waits")
                            && c.message.contains("deletionPolicy: Orphan")
                    })
            },
        )
        .await;
    assert!(!is_true(&stalled, "Ready"));
    eventually(
        &format!("a Warning {reason} event on the deletion"),
        || async {
            let events = tenant.events(&env.client, name).await;
            if events.iter().any(|(type_, r, note)| {
                type_ == "Warning" && r == reason && note.contains("deletion waits")
            }) {
                Ok(())
            } else {
                Err(format!("{events:?}"))
            }
        },
    )
    .await;
}

/// A deletion that cannot prune because the Secret is gone says so (Stalled, a Warning
/// event) instead of holding the finalizer silently; switching to Orphan lets it go.
pub async fn a_deletion_without_credentials_is_stalled_until_orphaned(env: Arc<Env>) {
    let tenant = Tenant::new(&env.client, &env.cloud.url, "blocked").await;
    tenant
        .create(&tenant.binding("web", &["blocked-g1"], &[("env", "prod")]))
        .await;
    tenant.ready("web").await;

    Api::<Secret>::namespaced(env.client.clone(), POD_NAMESPACE)
        .delete(&tenant.secret, &DeleteParams::default())
        .await
        .expect("delete the Secret");
    // NB: the controller has seen the Secret go (its watch triggers the provider's bindings).
    tenant.not_ready("web", "CredentialsInvalid").await;
    // NB: the provider says it too (issue 25, item 0), naming the Secret, not its data.
    let provider = tenant
        .provider_ready(&env.client, "False", "CredentialsInvalid")
        .await;
    let shown = serde_json::to_string(&provider.status).expect("JSON");
    assert!(shown.contains(&tenant.secret), "{shown}");
    assert!(!shown.contains(KEY_SECRET), "no secret in {shown}");
    delete(&tenant, "web").await;
    deletion_waits(&env, &tenant, "web", "CredentialsInvalid").await;
    assert_eq!(env.cloud.tags("blocked-g1").await, tags(&[("env", "prod")]));

    merge(
        &tenant,
        "web",
        json!({"spec": {"deletionPolicy": "Orphan"}}),
    )
    .await;
    tenant.gone("web").await;
    assert_eq!(env.cloud.tags("blocked-g1").await, tags(&[("env", "prod")]));
}

/// The same when the provider no longer allows the namespace; once it does again, the
/// deletion prunes and goes.
pub async fn a_deletion_in_a_namespace_no_longer_allowed_is_stalled_until_allowed(env: Arc<Env>) {
    let name = "blockedns";
    let provider = provider_for_labels(
        name,
        &env.cloud.url,
        &format!("{name}-creds"),
        &[("team", "web")],
    );
    let tenant = Tenant::with_provider(&env.client, name, provider).await;
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    let label = |value: Option<&str>| {
        let patch = json!({"metadata": {"labels": {"team": value}}});
        let namespaces = namespaces.clone();
        let namespace = tenant.namespace.clone();
        async move {
            namespaces
                .patch(&namespace, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .expect("label the namespace");
        }
    };
    label(Some("web")).await;
    tenant
        .create(&tenant.binding("web", &["blockedns-g1"], &[("env", "prod")]))
        .await;
    tenant.ready("web").await;

    label(None).await;
    delete(&tenant, "web").await;
    deletion_waits(&env, &tenant, "web", "NamespaceNotAllowed").await;
    assert_eq!(
        env.cloud.tags("blockedns-g1").await,
        tags(&[("env", "prod")])
    );

    label(Some("web")).await;
    tenant.gone("web").await;
    assert_eq!(env.cloud.tags("blockedns-g1").await, tags(&[]));
}
