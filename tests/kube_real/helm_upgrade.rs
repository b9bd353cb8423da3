//! `helm upgrade` with changed CRDs and `helm uninstall`, as the README's Helm section says, on
//! a cluster of the scenario's own (the chart installs its CRDs here, which the suite's cluster
//! has from `kubectl`): the upgrade changes the stored CRDs, and the uninstall leaves the CRDs
//! (`helm.sh/resource-policy: keep`) and every binding in place.

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::rbac::helm;
use crate::support::fixtures::Tenant;
use crate::support::processes::POD_NAMESPACE;
use crate::{Env, admin_client};

/// The optional field that the upgraded chart's binding CRD adds.
const NEW_FIELD: &str = "upgradeNote";

/// `helm ARGS` against `cluster` as its admin, which must succeed.
fn run_helm(cluster: &Cluster, args: &[&str]) {
    let output = std::process::Command::new(helm())
        .args(args)
        .arg("--kubeconfig")
        .arg(&cluster.admin)
        .output()
        .expect("helm runs");
    assert!(
        output.status.success(),
        "helm {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A copy of the chart in `dir` whose ResourceTagBinding CRD has one more optional field in
/// its spec: the next version of the chart.
fn next_chart(dir: &Path) -> String {
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/helm/tagbinder");
    let copy = dir.join("tagbinder");
    let status = std::process::Command::new("cp")
        .arg("-r")
        .arg(&chart)
        .arg(&copy)
        .status()
        .expect("cp runs");
    assert!(status.success(), "copy the chart");
    let path = copy.join("files/crds/tagbinder.yaml");
    let text = std::fs::read_to_string(&path).expect("the chart's CRDs");
    let mut crds: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .filter_map(|document| Option::<Value>::deserialize(document).expect("YAML"))
        .collect();
    let binding = crds
        .iter_mut()
        .find(|crd| crd["metadata"]["name"] == "resourcetagbindings.tagbinder.io")
        .expect("the chart has the binding CRD");
    binding["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
        [NEW_FIELD] = json!({"type": "string", "description": "Added by the next chart."});
    let text: Vec<String> = crds
        .iter()
        .map(|crd| serde_yaml::to_string(crd).expect("YAML"))
        .collect();
    std::fs::write(&path, text.join("---\n")).expect("write the next chart's CRDs");
    copy.to_str().expect("a UTF-8 path").to_string()
}

/// The names of the binding CRD's spec fields, as stored.
async fn stored_spec_fields(cluster: &Cluster) -> Vec<String> {
    let fields = cluster
        .kubectl_ok(
            &[
                "get",
                "crd",
                "resourcetagbindings.tagbinder.io",
                "-o",
                "jsonpath={.spec.versions[0].schema.openAPIV3Schema.properties.spec.properties}",
            ],
            None,
        )
        .await;
    let fields: serde_json::Map<String, Value> =
        serde_json::from_str(&fields).expect("the spec's properties as JSON");
    fields.into_iter().map(|(name, _)| name).collect()
}

pub async fn helm_upgrade_changes_the_crds_and_uninstall_keeps_them_and_the_bindings(
    env: Arc<Env>,
) {
    let dir = env.dir.path().join("helm-upgrade");
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let cluster_dir = dir.join("cluster");
    let cluster = tokio::task::spawn_blocking(move || Cluster::start(&cluster_dir, false))
        .await
        .expect("the cluster starts");
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/helm/tagbinder");
    let chart = chart.to_str().expect("a UTF-8 path");
    let next = next_chart(&dir);

    run_helm(
        &cluster,
        &[
            "install",
            "tagbinder",
            chart,
            "--namespace",
            POD_NAMESPACE,
            "--create-namespace",
        ],
    );
    let mut wait = vec!["wait", "--for", "condition=established", "--timeout=60s"];
    wait.extend(crate::CRDS);
    cluster.kubectl_ok(&wait, None).await;
    assert!(
        !stored_spec_fields(&cluster)
            .await
            .iter()
            .any(|f| f == NEW_FIELD),
        "the installed chart's CRD has no {NEW_FIELD}"
    );
    let client = admin_client(&cluster).await;
    let tenant = Tenant::new(&client, &env.cloud.url, "helm-upgrade").await;
    tenant
        .create(&tenant.binding("kept", &["helm-upgrade-g1"], &[("env", "prod")]))
        .await;

    run_helm(
        &cluster,
        &["upgrade", "tagbinder", &next, "--namespace", POD_NAMESPACE],
    );
    let fields = stored_spec_fields(&cluster).await;
    assert!(
        fields.iter().any(|f| f == NEW_FIELD),
        "helm upgrade changed the stored binding CRD: its spec fields are {fields:?}"
    );
    // The new field is served: a binding that sets it is admitted and keeps it.
    let mut binding = serde_json::to_value(tenant.binding("noted", &["helm-upgrade-g2"], &[]))
        .expect("a binding as JSON");
    binding["metadata"]["namespace"] = json!(tenant.namespace);
    binding["spec"][NEW_FIELD] = json!("hello");
    cluster.apply(&[binding]).await;
    let note = cluster
        .kubectl_ok(
            &[
                "get",
                "rtb/noted",
                "-n",
                &tenant.namespace,
                "-o",
                &format!("jsonpath={{.spec.{NEW_FIELD}}}"),
            ],
            None,
        )
        .await;
    assert_eq!(note, "hello", "the upgraded CRD keeps the new field");

    run_helm(
        &cluster,
        &[
            "uninstall",
            "tagbinder",
            "--namespace",
            POD_NAMESPACE,
            "--wait",
        ],
    );
    let deployments = cluster
        .kubectl_ok(
            &["get", "deployments", "-n", POD_NAMESPACE, "-o", "name"],
            None,
        )
        .await;
    assert_eq!(
        deployments.trim(),
        "",
        "helm uninstall removed the Deployment"
    );
    let crds = cluster
        .kubectl(&["get", "-o", "name", crate::CRDS[0], crate::CRDS[1]], None)
        .await;
    assert!(
        crds.ok && crds.stdout.lines().count() == 2,
        "helm uninstall left both CRDs: {crds:?}"
    );
    assert!(
        stored_spec_fields(&cluster)
            .await
            .iter()
            .any(|f| f == NEW_FIELD),
        "the kept CRD is the upgraded one"
    );
    let bindings = cluster
        .kubectl_ok(&["get", "rtb", "-n", &tenant.namespace, "-o", "name"], None)
        .await;
    assert_eq!(
        bindings.lines().collect::<Vec<_>>(),
        [
            "resourcetagbinding.tagbinder.io/kept",
            "resourcetagbinding.tagbinder.io/noted"
        ],
        "helm uninstall left every binding"
    );
}
