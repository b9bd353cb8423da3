//! Tags from Kubernetes in the CLI (issue 23), as a user runs it: `Namespace` documents among
//! the files give a namespace's labels and annotations, `--cluster-name` the cluster's name,
//! a provider's `defaultTags` are merged in, and `plan` says where each value comes from.

#[allow(dead_code)]
#[path = "common/cli.rs"]
mod common;
use common::{stderr, stdout, tagbinder};

use std::path::Path;
use std::process::Output;

use serde_json::Value;

const KEY_ID: &str = "LTAI5tTagsFromKey";
const KEY_SECRET: &str = "tags-from-secret-not-for-production";

fn provider(defaults: &str) -> String {
    format!(
        "apiVersion: tagbinder.io/v1alpha1\nkind: TagProvider\nmetadata: {{name: p}}\n\
         spec:\n  cloud: alibaba\n  region: cn-hangzhou\n  alibaba: {{product: apigateway}}\n  \
         defaultTags: {defaults}\n  credentials: {{secretRef: {{namespace: ops, name: creds}}}}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {{name: creds, namespace: ops}}\n\
         stringData: {{accessKeyId: {KEY_ID}, accessKeySecret: {KEY_SECRET}}}\n---\n\
         apiVersion: emulator.tagbinder.io/v1alpha1\nkind: CloudInventory\naccounts:\n  \
         - {{accessKeyId: {KEY_ID}, accessKeySecret: {KEY_SECRET}}}\nresources:\n  \
         - {{cloud: alibaba, region: cn-hangzhou, type: apiGroup, id: g-1, tags: {{created-by: console}}}}\n  \
         - {{cloud: alibaba, region: cn-hangzhou, type: apiGroup, id: g-2, tags: {{}}}}\n"
    )
}

fn namespace(labels: &str, annotations: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-web\n  labels: {labels}\n  \
         annotations: {annotations}\n"
    )
}

/// A binding of `p` in `team-web` created at `2026-01-0{created}`.
fn binding(name: &str, created: u8, ids: &str, tags: &str, tags_from: &str) -> String {
    format!(
        "apiVersion: tagbinder.io/v1alpha1\nkind: ResourceTagBinding\nmetadata:\n  name: {name}\n  \
         namespace: team-web\n  creationTimestamp: \"2026-01-0{created}T00:00:00Z\"\n  \
         labels: {{app: shop}}\nspec:\n  providerRef: {{name: p}}\n  resourceType: apiGroup\n  \
         resourceIds: {ids}\n  tags: {tags}\n  tagsFrom: {tags_from}\n---\n"
    )
}

const EVERY_SOURCE: &str = "[\
    {key: team, valueFrom: {namespaceLabel: team}}, \
    {key: cost-center, valueFrom: {namespaceAnnotation: finance.example.com/cost-center}, optional: true}, \
    {key: k8s-binding, valueFrom: {fieldRef: {fieldPath: metadata.name}}}, \
    {key: k8s-namespace, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}, \
    {key: app, valueFrom: {fieldRef: {fieldPath: \"metadata.labels['app']\"}}}, \
    {key: cluster, valueFrom: {clusterName: {}}}, \
    {key: env, valueFrom: {namespaceLabel: team}}]";

fn scratch(files: &[(&str, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), files);
    dir
}

fn write(dir: &Path, files: &[(&str, String)]) {
    let manifests = dir.join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    for (name, text) in files {
        std::fs::write(manifests.join(name), text).unwrap();
    }
}

fn run(dir: &Path, command: &str, extra: &[&str]) -> Output {
    let mut args = vec![command, "-f", "manifests", "--embedded-cloud"];
    args.extend_from_slice(extra);
    tagbinder(dir, &args)
}

fn tags_of(dir: &Path, id: &str) -> Value {
    let text = std::fs::read_to_string(dir.join(".tagbinder/cloud.json")).unwrap();
    let cloud: Value = serde_json::from_str(&text).unwrap();
    cloud["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .map(|r| r["tags"].clone())
        .unwrap_or_else(|| panic!("{id} in the cloud"))
}

fn cluster() -> [&'static str; 2] {
    ["--cluster-name", "prod-eu-1"]
}

#[test]
fn every_source_renders_by_precedence_and_plan_names_each_source() {
    let dir = scratch(&[
        (
            "provider.yaml",
            provider("{managed-by: tagbinder, env: default}"),
        ),
        (
            "namespace.yaml",
            namespace("{team: web}", "{finance.example.com/cost-center: cc-1}"),
        ),
        (
            "bindings.yaml",
            binding("web-api", 1, "[g-1]", "{env: prod}", EVERY_SOURCE),
        ),
    ]);
    let plan = run(dir.path(), "plan", &cluster());
    let text = stdout(&plan);
    assert_eq!(plan.status.code(), Some(0), "{text}\n{}", stderr(&plan));
    for line in [
        "+ team=web (namespace team-web label team) on g-1",
        "+ cost-center=cc-1 (namespace team-web annotation finance.example.com/cost-center) on g-1",
        "+ k8s-binding=web-api (binding field metadata.name) on g-1",
        "+ k8s-namespace=team-web (binding field metadata.namespace) on g-1",
        "+ app=shop (binding field metadata.labels['app']) on g-1",
        "+ cluster=prod-eu-1 (cluster name) on g-1",
        "+ managed-by=tagbinder (TagProvider p defaultTags) on g-1",
        // NB: spec.tags wins over tagsFrom and defaults, and says nothing of a source.
        "+ env=prod on g-1",
    ] {
        assert!(text.contains(line), "{line:?} in\n{text}");
    }
    let applied = run(dir.path(), "apply", &cluster());
    assert!(applied.status.success(), "{}", stderr(&applied));
    assert_eq!(
        tags_of(dir.path(), "g-1"),
        serde_json::json!({
            "app": "shop", "cluster": "prod-eu-1", "cost-center": "cc-1", "created-by": "console",
            "env": "prod", "k8s-binding": "web-api", "k8s-namespace": "team-web",
            "managed-by": "tagbinder", "team": "web"
        })
    );
    let again = run(
        dir.path(),
        "plan",
        &["--cluster-name", "prod-eu-1", "--detailed-exitcode"],
    );
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
}

#[test]
fn a_label_change_rewrites_an_optional_source_gone_prunes_a_required_one_gone_is_an_error() {
    let dir = scratch(&[
        ("provider.yaml", provider("{managed-by: tagbinder}")),
        (
            "namespace.yaml",
            namespace("{team: web}", "{finance.example.com/cost-center: cc-1}"),
        ),
        (
            "bindings.yaml",
            binding("web-api", 1, "[g-1]", "{env: prod}", EVERY_SOURCE),
        ),
    ]);
    assert!(run(dir.path(), "apply", &cluster()).status.success());

    // A label change: the value is rewritten (it is owned).
    write(
        dir.path(),
        &[("namespace.yaml", namespace("{team: payments}", "{}"))],
    );
    let plan = run(dir.path(), "plan", &cluster());
    let text = stdout(&plan);
    assert!(
        text.contains("~ team: web -> payments (namespace team-web label team) on g-1"),
        "{text}"
    );
    // The optional annotation is gone: its key is pruned.
    assert!(
        text.contains("- cost-center=cc-1 (pruned) on g-1"),
        "{text}"
    );
    assert!(run(dir.path(), "apply", &cluster()).status.success());
    let tags = tags_of(dir.path(), "g-1");
    assert_eq!(tags["team"], "payments");
    assert!(tags.get("cost-center").is_none(), "{tags}");

    // A required label gone: an error naming the namespace and the label; nothing written.
    write(dir.path(), &[("namespace.yaml", namespace("{}", "{}"))]);
    let refused = run(dir.path(), "apply", &cluster());
    assert_eq!(refused.status.code(), Some(1));
    let error = stderr(&refused);
    assert!(
        error.contains(
            "spec.tagsFrom[\"team\"]: namespace \"team-web\" has no label \"team\" (ValueNotFound)"
        ),
        "{error}"
    );
    assert_eq!(tags_of(dir.path(), "g-1")["team"], "payments");

    // A namespace the files do not define: an error naming it, unless optional.
    std::fs::remove_file(dir.path().join("manifests/namespace.yaml")).unwrap();
    let missing = run(dir.path(), "plan", &cluster());
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).contains("namespace \"team-web\" is unknown")
            && stderr(&missing).contains("Namespace document"),
        "{}",
        stderr(&missing)
    );
    // Without --cluster-name, the clusterName source is missing.
    write(
        dir.path(),
        &[("namespace.yaml", namespace("{team: web}", "{}"))],
    );
    let no_cluster = run(dir.path(), "plan", &[]);
    assert!(
        stderr(&no_cluster).contains("--cluster-name"),
        "{}",
        stderr(&no_cluster)
    );
}

#[test]
fn a_default_change_reaches_every_binding_and_a_removed_default_is_pruned() {
    let bindings = [
        binding("a", 1, "[g-1]", "{env: prod}", "[]"),
        binding("b", 2, "[g-2]", "{env: dev}", "[]"),
    ]
    .concat();
    let dir = scratch(&[
        (
            "provider.yaml",
            provider("{managed-by: tagbinder, tier: gold}"),
        ),
        ("bindings.yaml", bindings),
    ]);
    assert!(run(dir.path(), "apply", &[]).status.success());
    write(
        dir.path(),
        &[("provider.yaml", provider("{managed-by: platform}"))],
    );
    let applied = run(dir.path(), "apply", &["-o", "json"]);
    assert!(applied.status.success(), "{}", stderr(&applied));
    for id in ["g-1", "g-2"] {
        let tags = tags_of(dir.path(), id);
        assert_eq!(tags["managed-by"], "platform", "{id}: {tags}");
        assert!(tags.get("tier").is_none(), "{id}: {tags}");
    }
    // NB: both bindings change the same way: their writes share calls.
    let report: Value = serde_json::from_str(&stdout(&applied)).unwrap();
    let calls: u64 = report["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["writeCalls"].as_u64().unwrap())
        .sum();
    assert!(calls <= 4, "{report}");
}

#[test]
fn a_rendered_value_the_cloud_refuses_names_its_source() {
    let long = "x".repeat(129);
    let dir = scratch(&[
        ("provider.yaml", provider("{acs:owner: x}")),
        (
            "namespace.yaml",
            namespace(&format!("{{team: {long}}}"), "{}"),
        ),
        (
            "bindings.yaml",
            binding(
                "web-api",
                1,
                "[g-1]",
                "{env: prod}",
                "[{key: team, valueFrom: {namespaceLabel: team}}]",
            ),
        ),
    ]);
    let plan = run(dir.path(), "plan", &[]);
    assert_eq!(plan.status.code(), Some(1));
    let error = stderr(&plan);
    assert!(
        error.contains(
            "spec.tagsFrom[\"team\"] (namespace team-web label team): value is 129 characters; \
             the limit is 128"
        ),
        "{error}"
    );
    assert!(
        error.contains("TagProvider p defaultTags[\"acs:owner\"]: key \"acs:owner\" starts with the reserved prefix"),
        "{error}"
    );
}

#[test]
fn a_rendered_value_conflicts_with_an_older_bindings_literal_one() {
    let bindings = [
        binding("older", 1, "[g-1]", "{team: literal}", "[]"),
        binding(
            "newer",
            2,
            "[g-1]",
            "{env: prod}",
            "[{key: team, valueFrom: {namespaceLabel: team}}]",
        ),
    ]
    .concat();
    let dir = scratch(&[
        ("provider.yaml", provider("{}")),
        ("namespace.yaml", namespace("{team: web}", "{}")),
        ("bindings.yaml", bindings),
    ]);
    let applied = run(dir.path(), "apply", &[]);
    let text = stdout(&applied);
    assert!(
        text.contains("! team: conflict, team-web/older declares"),
        "{text}"
    );
    assert_eq!(tags_of(dir.path(), "g-1")["team"], "literal");
    assert_eq!(tags_of(dir.path(), "g-1")["env"], "prod");
}

#[test]
fn a_key_given_twice_or_an_unknown_field_in_tags_from_is_refused() {
    for (tags_from, expected) in [
        (
            "[{key: team, valueFrom: {namespaceLabel: team}}, \
              {key: team, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]",
            "spec.tagsFrom[1].key: duplicate key \"team\"",
        ),
        (
            "[{key: x, valueFrom: {fieldRef: {fieldPath: spec.tags}}}]",
            "fieldPath: \"spec.tags\" is not one of",
        ),
        (
            "[{key: x, valueFrom: {namespaceLabel: team, clusterName: {}}}]",
            "set exactly one of namespaceLabel, namespaceAnnotation, fieldRef and clusterName",
        ),
    ] {
        let dir = scratch(&[
            ("provider.yaml", provider("{}")),
            ("namespace.yaml", namespace("{team: web}", "{}")),
            (
                "bindings.yaml",
                binding("web-api", 1, "[g-1]", "{env: prod}", tags_from),
            ),
        ]);
        let plan = run(dir.path(), "plan", &[]);
        assert_eq!(plan.status.code(), Some(1));
        let error = stderr(&plan);
        assert!(error.contains(expected), "{expected:?} in {error}");
    }
}
