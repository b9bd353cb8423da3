//! `tagbinder run` on the real apiserver, with the chart's RBAC and nothing more: a binding
//! converges, `kubectl wait` sees it Ready, and deleting it prunes what it applied.

use std::sync::Arc;

use crate::Env;
use crate::support::fixtures::{Tenant, tags};

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
