//! The Helm chart installed for real: `helm install` into a namespace that enforces the
//! `restricted` Pod Security level, kube-controller-manager makes the Deployment's ReplicaSet
//! and Pod, and the Pod is admitted (no kubelet runs it); `helm uninstall` removes it all.

use std::path::Path;
use std::sync::Arc;

use crate::Env;
use crate::rbac::helm;
use crate::support::fixtures::eventually;

/// `helm ARGS` against the cluster as its admin, which must succeed; its output.
fn run_helm(env: &Env, args: &[&str]) -> String {
    let output = std::process::Command::new(helm())
        .args(args)
        .arg("--kubeconfig")
        .arg(&env.cluster.admin)
        .output()
        .expect("helm runs");
    assert!(
        output.status.success(),
        "helm {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub async fn the_chart_installs_and_its_pod_is_admitted_as_restricted(env: Arc<Env>) {
    let namespace = "chart-install";
    env.cluster
        .kubectl_ok(&["create", "namespace", namespace], None)
        .await;
    env.cluster
        .kubectl_ok(
            &[
                "label",
                "namespace",
                namespace,
                "pod-security.kubernetes.io/enforce=restricted",
            ],
            None,
        )
        .await;
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/helm/tagbinder");
    let chart = chart.to_str().expect("a UTF-8 path");
    // NB: the CRDs are the suite's already (kubectl owns them); helm would refuse to adopt them.
    run_helm(
        &env,
        &[
            "install",
            "tagbinder",
            chart,
            "--namespace",
            namespace,
            "--set",
            "crds.install=false",
        ],
    );
    let selector = "app.kubernetes.io/instance=tagbinder";
    let pods = eventually("the chart's Pod, admitted", || async {
        let pods = env
            .cluster
            .kubectl_ok(
                &["get", "pods", "-n", namespace, "-l", selector, "-o", "name"],
                None,
            )
            .await;
        if pods.trim().is_empty() {
            let events = env
                .cluster
                .kubectl_ok(&["get", "events", "-n", namespace], None)
                .await;
            Err(format!("no Pod yet; events:\n{events}"))
        } else {
            Ok(pods)
        }
    })
    .await;
    assert_eq!(pods.lines().count(), 1, "one replica: {pods}");
    let refused = env
        .cluster
        .kubectl_ok(
            &[
                "get",
                "events",
                "-n",
                namespace,
                "--field-selector",
                "reason=FailedCreate",
                "-o",
                "name",
            ],
            None,
        )
        .await;
    assert_eq!(refused.trim(), "", "no Pod was refused");

    run_helm(
        &env,
        &["uninstall", "tagbinder", "--namespace", namespace, "--wait"],
    );
    eventually("the chart's objects gone", || async {
        let left = env
            .cluster
            .kubectl_ok(
                &[
                    "get",
                    "deployments,serviceaccounts,services,roles,rolebindings",
                    "-n",
                    namespace,
                    "-l",
                    selector,
                    "-o",
                    "name",
                ],
                None,
            )
            .await;
        if left.trim().is_empty() {
            Ok(())
        } else {
            Err(left)
        }
    })
    .await;
}
