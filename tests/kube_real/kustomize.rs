//! `kubectl apply -k deploy/manifests`, as the README's install says, on a cluster of the
//! scenario's own (the kustomization's namespace and RBAC names are fixed, and the suite's
//! cluster holds the chart's under the same names): every object admitted, and
//! kube-controller-manager makes the Deployment's ReplicaSet and Pod, admitted under the
//! `restricted` Pod Security level that the kustomization's Namespace enforces (no kubelet
//! runs it).

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use crate::Env;
use crate::cluster::Cluster;
use crate::support::fixtures::eventually;

/// The kustomization's namespace.
const NAMESPACE: &str = "tagbinder-system";

pub async fn the_kustomization_applies_and_its_pod_is_admitted_as_restricted(env: Arc<Env>) {
    let dir = env.dir.path().join("kustomize");
    let cluster = tokio::task::spawn_blocking(move || Cluster::start(&dir, true))
        .await
        .expect("the cluster starts");
    let manifests = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/manifests");
    let manifests = manifests.to_str().expect("a UTF-8 path");

    // What kustomize renders: each object must be in the cluster afterwards.
    let rendered = cluster.kubectl_ok(&["kustomize", manifests], None).await;
    let objects: Vec<Value> = serde_yaml::Deserializer::from_str(&rendered)
        .filter_map(|document| Option::<Value>::deserialize(document).expect("YAML"))
        .collect();
    let namespace = objects
        .iter()
        .find(|o| o["kind"] == "Namespace")
        .expect("the kustomization has its Namespace");
    assert_eq!(namespace["metadata"]["name"], NAMESPACE);
    assert_eq!(
        namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"], "restricted",
        "the kustomization's Namespace enforces the restricted Pod Security level"
    );

    let applied = cluster.kubectl(&["apply", "-k", manifests], None).await;
    assert!(
        applied.ok,
        "kubectl apply -k deploy/manifests refused:\n{}\n{}",
        applied.stdout, applied.stderr
    );
    assert!(
        !applied.stderr.contains("Warning"),
        "the apiserver warned:\n{}",
        applied.stderr
    );
    let found = cluster
        .kubectl_ok(&["get", "-k", manifests, "-o", "name"], None)
        .await;
    assert_eq!(
        found.lines().count(),
        objects.len(),
        "each rendered object is in the cluster:\n{found}"
    );
    let mut wait = vec!["wait", "--for", "condition=established", "--timeout=60s"];
    wait.extend(crate::CRDS);
    cluster.kubectl_ok(&wait, None).await;

    let selector = "app.kubernetes.io/name=tagbinder";
    let pod = eventually("the Deployment's Pod, admitted", || async {
        // NB: a Pod that Pod Security refuses is a FailedCreate event of the ReplicaSet.
        let refused = cluster
            .kubectl_ok(
                &[
                    "get",
                    "events",
                    "-n",
                    NAMESPACE,
                    "--field-selector",
                    "reason=FailedCreate",
                    "-o",
                    "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}",
                ],
                None,
            )
            .await;
        assert_eq!(refused.trim(), "", "the Deployment's Pod was refused");
        let replica_sets = cluster
            .kubectl_ok(
                &[
                    "get",
                    "replicasets",
                    "-n",
                    NAMESPACE,
                    "-l",
                    selector,
                    "-o",
                    "name",
                ],
                None,
            )
            .await;
        let pods = cluster
            .kubectl_ok(
                &["get", "pods", "-n", NAMESPACE, "-l", selector, "-o", "name"],
                None,
            )
            .await;
        match (replica_sets.lines().count(), pods.lines().count()) {
            (1, 1) => Ok(pods),
            (r, p) => Err(format!("{r} ReplicaSets, {p} Pods")),
        }
    })
    .await;
    let account = cluster
        .kubectl_ok(
            &[
                "get",
                pod.trim(),
                "-n",
                NAMESPACE,
                "-o",
                "jsonpath={.spec.serviceAccountName}",
            ],
            None,
        )
        .await;
    assert_eq!(
        account, "tagbinder",
        "the Pod runs as the kustomization's ServiceAccount"
    );
}
