//! A cluster of the scenario's own, whose kube-apiserver restarts under the controller: every
//! watch breaks, the new server's watch cache starts afresh, and the controller carries on
//! (it watches again, or lists again when its resourceVersion is gone). Then etcd is compacted
//! while the apiserver is down, and the apiserver comes back without a watch cache, so that
//! the controller's watch goes to etcd at a revision etcd no longer has: the apiserver answers
//! 410 Gone, and the controller lists again and carries on.

use std::sync::Arc;

use crate::cluster::Cluster;
use crate::support::fixtures::{Tenant, eventually_within, tags};
use crate::support::processes::{Controller, ControllerOptions};
use crate::{Env, admin_client, install_chart_rbac, install_crds};

/// A restarted apiserver, and the controller's watches that must notice, back off and list
/// again: up to three minutes on a loaded 2-core machine (seen: over 60 s while another build
/// and test suite ran), well under a minute on an idle one.
const RELIST_PATIENCE: std::time::Duration = std::time::Duration::from_secs(180);

async fn ready(cluster: &Cluster, namespace: &str, name: &str) {
    cluster
        .kubectl_ok(
            &[
                "wait",
                "--for=condition=Ready",
                &format!("rtb/{name}"),
                "-n",
                namespace,
                "--timeout=90s",
            ],
            None,
        )
        .await;
}

pub async fn a_restarted_apiserver_breaks_the_watches_and_the_controller_carries_on(env: Arc<Env>) {
    let dir = env.dir.path().join("relist");
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let cluster_dir = dir.join("cluster");
    let cluster = tokio::task::spawn_blocking(move || Cluster::start(&cluster_dir, false))
        .await
        .expect("the cluster starts");
    install_crds(&cluster).await;
    install_chart_rbac(&cluster).await;
    let client = admin_client(&cluster).await;
    let controller = Controller::start_with_kubeconfig(
        &cluster.controller,
        &dir,
        ControllerOptions {
            identity: "tagbinder-relist",
            leader_election: false,
            namespace: None,
        },
    );
    let tenant = Tenant::new(&client, &env.cloud.url, "relist").await;
    tenant
        .create(&tenant.binding("before", &["relist-g1"], &[("env", "prod")]))
        .await;
    ready(&cluster, &tenant.namespace, "before").await;

    cluster.restart_apiserver().await;

    // A binding made after the restart is seen: the watch of bindings is back.
    tenant
        .create(&tenant.binding("after", &["relist-g2"], &[("env", "prod")]))
        .await;
    ready(&cluster, &tenant.namespace, "after").await;
    assert_eq!(env.cloud.tags("relist-g2").await, tags(&[("env", "prod")]));
    // And a change to a binding made before it.
    cluster
        .kubectl_ok(
            &[
                "patch",
                "rtb/before",
                "-n",
                &tenant.namespace,
                "--type=merge",
                "-p",
                r#"{"spec":{"tags":{"team":"web"}}}"#,
            ],
            None,
        )
        .await;
    let want = tags(&[("env", "prod"), ("team", "web")]);
    eventually_within(
        RELIST_PATIENCE,
        "the change after the restart applied",
        || async {
            let now = env.cloud.tags("relist-g1").await;
            if now == want {
                Ok(())
            } else {
                Err(format!("{now:?}\n{}", controller.logs()))
            }
        },
    )
    .await;

    // 2. etcd compacted past every resourceVersion the controller holds, while the apiserver
    // is down (so that no bookmark moves them on); the apiserver back without a watch cache,
    // so that a watch is served by etcd itself: 410 Gone.
    let before_restart = audit_calls(&cluster, "resourcetagbindings").len();
    cluster.stop_apiserver().await;
    let compacted = cluster.bump_and_compact_etcd(3).await;
    cluster.start_apiserver_with(&["--watch-cache=false"]).await;
    cluster
        .kubectl_ok(
            &[
                "patch",
                "rtb/before",
                "-n",
                &tenant.namespace,
                "--type=merge",
                "-p",
                r#"{"spec":{"tags":{"team":"ops"}}}"#,
            ],
            None,
        )
        .await;
    let want = tags(&[("env", "prod"), ("team", "ops")]);
    eventually_within(
        RELIST_PATIENCE,
        "the change after the compaction applied",
        || async {
            let now = env.cloud.tags("relist-g1").await;
            if now == want {
                Ok(())
            } else {
                Err(format!("{now:?}\n{}", controller.logs()))
            }
        },
    )
    .await;
    ready(&cluster, &tenant.namespace, "before").await;
    // The audit log shows it: a watch from a compacted resourceVersion, then a list.
    let since: Vec<(String, Option<u64>)> = audit_calls(&cluster, "resourcetagbindings")
        .into_iter()
        .skip(before_restart)
        .collect();
    let stale = since
        .iter()
        .position(|(verb, version)| verb == "watch" && version.is_some_and(|v| v < compacted))
        .unwrap_or_else(|| {
            panic!("a watch of bindings from before revision {compacted}: {since:?}")
        });
    assert!(
        since[stale..].iter().any(|(verb, _)| verb == "list"),
        "the controller lists the bindings again after 410 Gone: {since:?}"
    );
}

/// The controller's requests on `resource`, in order: verb and the resourceVersion asked for.
fn audit_calls(cluster: &Cluster, resource: &str) -> Vec<(String, Option<u64>)> {
    cluster
        .audit_events()
        .iter()
        .filter(|event| event["objectRef"]["resource"] == resource)
        .filter(|event| event["objectRef"]["subresource"].is_null())
        .filter(|event| event["stage"] == "ResponseStarted" || event["verb"] != "watch")
        .map(|event| {
            let uri = event["requestURI"].as_str().unwrap_or_default();
            let version = uri
                .split(['?', '&'])
                .find_map(|part| part.strip_prefix("resourceVersion="))
                .and_then(|v| v.parse().ok());
            (
                event["verb"].as_str().unwrap_or_default().to_string(),
                version,
            )
        })
        .collect()
}
