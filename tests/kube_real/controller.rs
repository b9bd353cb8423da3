//! `tagbinder run` on the real apiserver, with the chart's RBAC and nothing more: a binding
//! converges, `kubectl wait` sees it Ready, drift is corrected, a changed spec prunes, and
//! deleting it prunes what it applied (or, with `Orphan`, leaves it); `suspend` writes nothing.

use std::sync::Arc;

use tagbinder::api::DeletionPolicy;

use crate::Env;
use crate::support::fixtures::{Tenant, eventually, tags};

pub async fn a_binding_becomes_ready_on_the_real_apiserver(env: Arc<Env>) {
    let tenant = Tenant::new(&env.client, &env.cloud.url, "ready").await;
    tenant
        .create(&tenant.binding(
            "web",
            &["ready-g1", "ready-g2"],
            &[("env", "prod"), ("owner", "team-web")],
        ))
        .await;
    let namespace = tenant.namespace.as_str();
    env.cluster
        .kubectl_ok(
            &[
                "wait",
                "--for=condition=Ready",
                "rtb/web",
                "-n",
                namespace,
                "--timeout=90s",
            ],
            None,
        )
        .await;
    assert_eq!(
        env.cloud.tags("ready-g1").await,
        tags(&[("env", "prod"), ("owner", "team-web")])
    );
    assert_eq!(
        env.cloud.tags("ready-g2").await,
        tags(&[("env", "prod"), ("owner", "team-web"), ("team", "web")])
    );
    let finalizers = env
        .cluster
        .kubectl_ok(
            &[
                "get",
                "rtb/web",
                "-n",
                namespace,
                "-o",
                "jsonpath={.metadata.finalizers}",
            ],
            None,
        )
        .await;
    assert!(finalizers.contains("tagbinder.io/cleanup"), "{finalizers}");
    // Status is written by server-side apply: the controller's field manager owns it.
    let managers = env
        .cluster
        .kubectl_ok(
            &[
                "get",
                "rtb/web",
                "-n",
                namespace,
                "--show-managed-fields",
                "-o",
                "jsonpath={range .metadata.managedFields[*]}{.manager}:{.operation}:{.subresource} {end}",
            ],
            None,
        )
        .await;
    assert!(managers.contains("tagbinder:Apply:status"), "{managers}");

    // deletionPolicy Delete: the finalizer prunes the applied tags before the binding goes.
    env.cluster
        .kubectl_ok(
            &["delete", "rtb/web", "-n", namespace, "--timeout=90s"],
            None,
        )
        .await;
    assert_eq!(env.cloud.tags("ready-g1").await, tags(&[]));
    assert_eq!(env.cloud.tags("ready-g2").await, tags(&[("team", "web")]));
}

/// `kubectl wait --for=condition=Ready` on a binding of `tenant`.
async fn wait_ready(env: &Env, tenant: &Tenant, name: &str) {
    env.cluster
        .kubectl_ok(
            &[
                "wait",
                "--for=condition=Ready",
                &format!("rtb/{name}"),
                "-n",
                &tenant.namespace,
                "--timeout=90s",
            ],
            None,
        )
        .await;
}

/// Waits until the cloud tags of `id` are `want`.
async fn cloud_tags_become(env: &Env, id: &str, want: &[(&str, &str)]) {
    let want = tags(want);
    eventually(&format!("the tags of {id}"), || async {
        let now = env.cloud.tags(id).await;
        if now == want {
            Ok(())
        } else {
            Err(format!("{now:?}, wanted {want:?}"))
        }
    })
    .await;
}

pub async fn drift_is_corrected_and_a_changed_spec_prunes_on_the_real_apiserver(env: Arc<Env>) {
    let tenant = Tenant::new(&env.client, &env.cloud.url, "drift").await;
    tenant
        .create(&tenant.binding("web", &["drift-g1"], &[("env", "prod"), ("owner", "web")]))
        .await;
    wait_ready(&env, &tenant, "web").await;
    // Someone edits the tags in the cloud console: the next interval (2 s) puts them back.
    env.cloud
        .edit("drift-g1", &[("env", "dev")], &["owner"])
        .await;
    cloud_tags_become(&env, "drift-g1", &[("env", "prod"), ("owner", "web")]).await;
    // A key removed from the spec (a JSON merge patch, as `kubectl patch` sends) is pruned.
    env.cluster
        .kubectl_ok(
            &[
                "patch",
                "rtb/web",
                "-n",
                &tenant.namespace,
                "--type=merge",
                "-p",
                r#"{"spec":{"tags":{"owner":null}}}"#,
            ],
            None,
        )
        .await;
    cloud_tags_become(&env, "drift-g1", &[("env", "prod")]).await;
    env.cluster
        .kubectl_ok(
            &[
                "wait",
                "--for=jsonpath={.status.observedGeneration}=2",
                "rtb/web",
                "-n",
                &tenant.namespace,
                "--timeout=90s",
            ],
            None,
        )
        .await;
}

pub async fn orphan_and_suspend_leave_the_cloud_alone_on_the_real_apiserver(env: Arc<Env>) {
    let tenant = Tenant::new(&env.client, &env.cloud.url, "orphan").await;
    let mut orphan = tenant.binding("kept", &["orphan-g1"], &[("env", "prod")]);
    orphan.spec.deletion_policy = DeletionPolicy::Orphan;
    tenant.create(&orphan).await;
    let mut suspended = tenant.binding("paused", &["suspend-g1"], &[("env", "prod")]);
    suspended.spec.suspend = true;
    tenant.create(&suspended).await;

    wait_ready(&env, &tenant, "kept").await;
    env.cluster
        .kubectl_ok(
            &[
                "delete",
                "rtb/kept",
                "-n",
                &tenant.namespace,
                "--timeout=90s",
            ],
            None,
        )
        .await;
    assert_eq!(env.cloud.tags("orphan-g1").await, tags(&[("env", "prod")]));

    env.cluster
        .kubectl_ok(
            &[
                "wait",
                "--for=jsonpath={.status.conditions[?(@.type==\"Ready\")].reason}=Suspended",
                "rtb/paused",
                "-n",
                &tenant.namespace,
                "--timeout=90s",
            ],
            None,
        )
        .await;
    assert_eq!(
        env.cloud.tags("suspend-g1").await,
        tags(&[("env", "legacy")])
    );
}
