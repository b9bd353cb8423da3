//! The chart's `watchNamespace` install on the real RBAC authorizer, on a cluster of the
//! scenario's own (its ClusterRole and bindings have the names of the cluster-wide install's):
//! `helm template --set watchNamespace=NS`, its RBAC applied unchanged, and `tagbinder run
//! --namespace NS` as the chart's ServiceAccount makes a binding of NS Ready (one tag from
//! NS's label) with no request refused. Its calls go to `target/api-calls-real-namespaced.json`, for
//! `.ci/check-rbac-coverage.sh`.

use std::path::Path;
use std::sync::Arc;

use crate::Env;
use crate::cluster::Cluster;
use crate::rbac::{controller_events, forbidden_calls, install_chart_rbac_with, write_calls};
use crate::support::fixtures::{Tenant, tags};
use crate::support::processes::{Controller, ControllerOptions, POD_NAMESPACE};
use crate::{admin_client, install_crds};

pub async fn the_watch_namespace_install_grants_the_namespaced_controller_enough(env: Arc<Env>) {
    let dir = env.dir.path().join("watch-namespace");
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let cluster_dir = dir.join("cluster");
    let cluster = tokio::task::spawn_blocking(move || Cluster::start(&cluster_dir, false))
        .await
        .expect("the cluster starts");
    install_crds(&cluster).await;
    let client = admin_client(&cluster).await;
    cluster
        .kubectl_ok(&["create", "namespace", POD_NAMESPACE], None)
        .await;
    // NB: the namespace, its provider and the provider's Secret (in the release namespace)
    // first: the chart's Role lives in the watched namespace.
    let tenant = Tenant::new(&client, &env.cloud.url, "watchns").await;
    let watched = format!("watchNamespace={}", tenant.namespace);
    install_chart_rbac_with(&cluster, &["--set", &watched]).await;
    let roles = cluster
        .kubectl_ok(
            &["get", "roles", "-n", &tenant.namespace, "-o", "name"],
            None,
        )
        .await;
    assert!(
        !roles.trim().is_empty(),
        "the chart grants the watched namespace by a Role"
    );
    let controller = Controller::start_with_kubeconfig(
        &cluster.controller,
        &dir,
        ControllerOptions {
            identity: "tagbinder-watch-namespace",
            leader_election: false,
            namespace: Some(&tenant.namespace),
        },
    );
    // NB: a tag from the namespace's label: the controller reads its one namespace by name
    // (a `metadata.name` field selector), which the chart's watchNamespace grant allows.
    cluster
        .kubectl_ok(&["label", "namespace", &tenant.namespace, "team=web"], None)
        .await;
    let mut binding = tenant.binding("ns", &["watchns-g1"], &[("env", "prod")]);
    binding.spec.tags_from = vec![tagbinder::api::TagFrom {
        key: "team".into(),
        value_from: tagbinder::api::ValueSource {
            namespace_label: Some("team".into()),
            ..Default::default()
        },
        optional: false,
    }];
    tenant.create(&binding).await;
    let ready = cluster
        .kubectl(
            &[
                "wait",
                "--for=condition=Ready",
                "rtb/ns",
                "-n",
                &tenant.namespace,
                "--timeout=90s",
            ],
            None,
        )
        .await;
    let refused = forbidden_calls(&cluster);
    assert!(
        refused.is_empty(),
        "RBAC refused calls of the namespaced controller (the chart's watchNamespace grants are short):\n{}\n--- the controller's log:\n{}",
        refused.join("\n"),
        controller.logs()
    );
    assert!(
        ready.ok,
        "the binding is not Ready: {}\n--- the controller's log:\n{}",
        ready.stderr,
        controller.logs()
    );
    assert_eq!(
        env.cloud.tags("watchns-g1").await,
        tags(&[("env", "prod"), ("team", "web")])
    );
    let events = controller_events(&cluster);
    assert!(
        events.iter().any(
            |event| event["objectRef"]["resource"] == "resourcetagbindings"
                && event["objectRef"]["namespace"] == tenant.namespace.as_str()
                && event["verb"] == "watch"
        ),
        "the audit log holds the namespaced controller's watch of the bindings of {}",
        tenant.namespace
    );
    // NB: for `.ci/check-rbac-coverage.sh`, which checks them against the chart's
    // watchNamespace rendering (its own reading of RBAC).
    write_calls(
        &cluster,
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("target/api-calls-real-namespaced.json"),
    );
}
