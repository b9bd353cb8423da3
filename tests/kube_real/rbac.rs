//! The chart's RBAC on the real RBAC authorizer: rendered by `helm template`, applied
//! unchanged, and the controller authenticated as the chart's ServiceAccount.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::cluster::Cluster;
use crate::{Env, POD_NAMESPACE};

/// The kinds of the chart's RBAC.
const RBAC_KINDS: [&str; 5] = [
    "ServiceAccount",
    "ClusterRole",
    "ClusterRoleBinding",
    "Role",
    "RoleBinding",
];

/// Helm 4, as `.ci/install-tools.sh helm` installs it (into `TAGBINDER_TOOLS`, default
/// `target/ci-tools`).
pub fn helm() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let tools = std::env::var_os("TAGBINDER_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target/ci-tools"));
    let status = std::process::Command::new("bash")
        .arg(root.join(".ci/install-tools.sh"))
        .arg("helm")
        .env("TAGBINDER_TOOLS", &tools)
        .status()
        .expect("bash runs .ci/install-tools.sh");
    assert!(status.success(), ".ci/install-tools.sh helm failed (above)");
    tools.join("bin/helm")
}

/// The RBAC objects of `helm template` with `args`, in the release namespace.
fn chart_rbac(args: &[&str]) -> Vec<Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = std::process::Command::new(helm())
        .args(["template", "tagbinder"])
        .arg(root.join("deploy/helm/tagbinder"))
        .args(["--namespace", POD_NAMESPACE])
        .args(args)
        .output()
        .expect("helm runs");
    assert!(
        output.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8(output.stdout).expect("UTF-8 manifests");
    serde_yaml::Deserializer::from_str(&text)
        .filter_map(|document| Option::<Value>::deserialize(document).expect("YAML"))
        .filter(|object| RBAC_KINDS.contains(&object["kind"].as_str().unwrap_or("")))
        .collect()
}

/// Applies the chart's RBAC (cluster-wide, leader election on) and its namespace.
pub async fn install_chart_rbac(cluster: &Cluster) {
    install_chart_rbac_with(cluster, &["--set", "leaderElection.enabled=true"]).await;
}

/// Applies the chart's RBAC as `helm template` renders it with `args`, and its namespace.
pub async fn install_chart_rbac_with(cluster: &Cluster, args: &[&str]) {
    let objects = chart_rbac(args);
    let account = objects
        .iter()
        .find(|o| o["kind"] == "ServiceAccount")
        .expect("the chart renders a ServiceAccount");
    let user = format!(
        "system:serviceaccount:{}:{}",
        account["metadata"]["namespace"]
            .as_str()
            .expect("its namespace"),
        account["metadata"]["name"].as_str().expect("its name")
    );
    assert_eq!(
        user, cluster.controller_user,
        "cluster.sh authenticates the controller as the chart's ServiceAccount"
    );
    cluster
        .apply(&[
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": POD_NAMESPACE}}),
        ])
        .await;
    cluster.apply(&objects).await;
}

/// Asks the apiserver whether the controller may `verb` on `resource` (`TYPE`, `TYPE/NAME`,
/// or `TYPE/status` for the subresource), with `kubectl auth can-i`.
async fn can(env: &Env, verb: &str, resource: &str, namespace: Option<&str>) -> bool {
    let mut args = vec!["auth", "can-i", verb];
    match resource.strip_suffix("/status") {
        Some(resource) => args.extend([resource, "--subresource", "status"]),
        None => args.push(resource),
    }
    match namespace {
        Some(namespace) => args.extend(["-n", namespace]),
        None => args.push("--all-namespaces"),
    }
    let run = env
        .cluster
        .kubectl_with(&env.cluster.controller, &args, None)
        .await;
    match run.stdout.trim() {
        "yes" => true,
        "no" => false,
        _ => panic!("kubectl auth can-i {}: {run:?}", args.join(" ")),
    }
}

/// What the controller calls (the chart's own list, `templates/rbac.yaml`): granted.
const NEEDED: &[(&str, &str, Option<&str>)] = &[
    ("list", "resourcetagbindings.tagbinder.io", None),
    ("watch", "resourcetagbindings.tagbinder.io", None),
    ("get", "resourcetagbindings.tagbinder.io", Some("team-web")),
    (
        "patch",
        "resourcetagbindings.tagbinder.io",
        Some("team-web"),
    ),
    (
        "patch",
        "resourcetagbindings.tagbinder.io/status",
        Some("team-web"),
    ),
    ("list", "tagproviders.tagbinder.io", None),
    ("watch", "tagproviders.tagbinder.io", None),
    ("get", "tagproviders.tagbinder.io", None),
    // Secrets: in the credentials namespace (the release namespace, by default) only.
    ("list", "secrets", Some(POD_NAMESPACE)),
    ("watch", "secrets", Some(POD_NAMESPACE)),
    ("get", "secrets", Some(POD_NAMESPACE)),
    ("get", "namespaces", None),
    // NB: the namespaces' metadata watch (issue 23: tagsFrom and allowedNamespaces).
    ("list", "namespaces", None),
    ("watch", "namespaces", None),
    ("create", "events.events.k8s.io", Some("team-web")),
    ("patch", "events.events.k8s.io", Some("team-web")),
    ("create", "leases.coordination.k8s.io", Some(POD_NAMESPACE)),
    (
        "get",
        "leases.coordination.k8s.io/tagbinder-leader",
        Some(POD_NAMESPACE),
    ),
    (
        "patch",
        "leases.coordination.k8s.io/tagbinder-leader",
        Some(POD_NAMESPACE),
    ),
];

/// What it never calls: refused.
const NOT_NEEDED: &[(&str, &str, Option<&str>)] = &[
    (
        "create",
        "resourcetagbindings.tagbinder.io",
        Some("team-web"),
    ),
    (
        "update",
        "resourcetagbindings.tagbinder.io",
        Some("team-web"),
    ),
    (
        "delete",
        "resourcetagbindings.tagbinder.io",
        Some("team-web"),
    ),
    (
        "update",
        "resourcetagbindings.tagbinder.io/status",
        Some("team-web"),
    ),
    ("patch", "tagproviders.tagbinder.io", None),
    ("delete", "tagproviders.tagbinder.io", None),
    // Secrets anywhere but the credentials namespace: not even get.
    ("get", "secrets", Some("team-web")),
    ("get", "secrets", Some("kube-system")),
    ("get", "secrets", Some("default")),
    ("list", "secrets", None),
    ("watch", "secrets", None),
    ("list", "secrets", Some("team-web")),
    ("create", "secrets", Some(POD_NAMESPACE)),
    ("update", "secrets", Some(POD_NAMESPACE)),
    ("list", "configmaps", Some(POD_NAMESPACE)),
    ("delete", "namespaces", None),
    ("delete", "events.events.k8s.io", Some("team-web")),
    ("create", "events", Some("team-web")),
    ("list", "leases.coordination.k8s.io", Some(POD_NAMESPACE)),
    (
        "get",
        "leases.coordination.k8s.io/another-lease",
        Some(POD_NAMESPACE),
    ),
    ("create", "leases.coordination.k8s.io", Some("team-web")),
    (
        "delete",
        "leases.coordination.k8s.io/tagbinder-leader",
        Some(POD_NAMESPACE),
    ),
    (
        "create",
        "customresourcedefinitions.apiextensions.k8s.io",
        None,
    ),
];

pub async fn the_chart_grants_the_controller_exactly_its_verbs(env: Arc<Env>) {
    let mut wrong = Vec::new();
    for (verb, resource, namespace) in NEEDED {
        if !can(&env, verb, resource, *namespace).await {
            wrong.push(format!(
                "refused, but the controller calls it: {verb} {resource} in {namespace:?}"
            ));
        }
    }
    for (verb, resource, namespace) in NOT_NEEDED {
        if can(&env, verb, resource, *namespace).await {
            wrong.push(format!(
                "granted, but the controller never calls it: {verb} {resource} in {namespace:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The audit log's requests of `tagbinder run` (`kubectl auth can-i` as the same user is the
/// test's own).
pub fn controller_events(cluster: &Cluster) -> Vec<Value> {
    let mut events = cluster.audit_events();
    events.retain(|event| {
        !event["userAgent"]
            .as_str()
            .unwrap_or("")
            .starts_with("kubectl")
    });
    events
}

/// A request of the controller, from the audit log, as `.ci/check-rbac.py` reads calls.
fn call(event: &Value) -> Option<Value> {
    let object = event.get("objectRef")?;
    Some(json!({
        "group": object.get("apiGroup").and_then(Value::as_str).unwrap_or(""),
        "resource": object["resource"],
        "subresource": object.get("subresource"),
        "verb": event["verb"],
        "namespace": object.get("namespace"),
        "name": object.get("name"),
    }))
}

/// The controller's requests that RBAC refused: verb, resource, where, and the answer.
pub fn forbidden_calls(cluster: &Cluster) -> Vec<String> {
    controller_events(cluster)
        .iter()
        .filter(|event| event["responseStatus"]["code"] == 403)
        .map(|event| match call(event) {
            Some(call) => format!(
                "{} {}{} ({}) in {} name {}: {}",
                call["verb"],
                call["resource"],
                call["subresource"]
                    .as_str()
                    .map(|s| format!("/{s}"))
                    .unwrap_or_default(),
                call["group"],
                call["namespace"],
                call["name"],
                event["responseStatus"]["message"]
            ),
            None => format!("{} {}", event["verb"], event["requestURI"]),
        })
        .collect()
}

/// Writes the controller's distinct calls to `path`, in `.ci/check-rbac.py`'s format; how many.
pub fn write_calls(cluster: &Cluster, path: &Path) -> usize {
    let calls: BTreeSet<String> = controller_events(cluster)
        .iter()
        .filter_map(call)
        .map(|c| c.to_string())
        .collect();
    let calls: Vec<Value> = calls
        .iter()
        .map(|c| serde_json::from_str(c).expect("JSON"))
        .collect();
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("target/ exists");
    std::fs::write(
        path,
        serde_json::to_string_pretty(&calls).expect("calls serialise") + "\n",
    )
    .expect("write the calls");
    calls.len()
}
