//! A cluster of the scenario's own, whose kube-apiserver restarts under the controller: every
//! watch breaks, the new server's watch cache starts afresh, and the controller carries on
//! (it watches again, or lists again when its resourceVersion is gone).

use std::sync::Arc;

use crate::cluster::Cluster;
use crate::support::fixtures::{Tenant, eventually, tags};
use crate::support::processes::{Controller, ControllerOptions};
use crate::{Env, admin_client, install_chart_rbac, install_crds};

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
    eventually("the change after the restart applied", || async {
        let now = env.cloud.tags("relist-g1").await;
        if now == want {
            Ok(())
        } else {
            Err(format!("{now:?}\n{}", controller.logs()))
        }
    })
    .await;
}
