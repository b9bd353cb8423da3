//! The CLI's fleet view (issue 11), as a user runs it: claims by resource identity across
//! TagProviders that reach the same account and region, and a binding moved to another
//! provider that keeps its tags.

#[allow(dead_code)]
#[path = "common/cli.rs"]
mod common;
use common::tagbinder;

use std::path::Path;

use serde_json::Value;

const RESOURCE: &str = "285bb759342649a1b70c2093a772e087";

/// Two providers of one account and region (one per team, each with its own name), the
/// credentials, and the embedded cloud's inventory: one API group with a foreign tag.
const PROVIDERS: &str = r#"
apiVersion: tagbinder.io/v1alpha1
kind: TagProvider
metadata: {name: team-a-apigw}
spec:
  cloud: alibaba
  region: cn-hangzhou
  alibaba: {product: apigateway}
  credentials: {secretRef: {namespace: tagbinder-system, name: creds}}
---
apiVersion: tagbinder.io/v1alpha1
kind: TagProvider
metadata: {name: team-b-apigw}
spec:
  cloud: alibaba
  region: cn-hangzhou
  alibaba: {product: apigateway}
  credentials: {secretRef: {namespace: tagbinder-system, name: creds}}
---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: tagbinder-system}
stringData:
  accessKeyId: LTAI5tFleetDemoKey
  accessKeySecret: fleet-demo-secret
---
apiVersion: emulator.tagbinder.io/v1alpha1
kind: CloudInventory
accounts:
  - {accessKeyId: LTAI5tFleetDemoKey, accessKeySecret: fleet-demo-secret}
resources:
  - cloud: alibaba
    region: cn-hangzhou
    type: apiGroup
    id: 285bb759342649a1b70c2093a772e087
    tags: {created-by: console}
"#;

fn binding(namespace: &str, name: &str, provider: &str, created: &str, tags: &str) -> String {
    format!(
        r#"
apiVersion: tagbinder.io/v1alpha1
kind: ResourceTagBinding
metadata: {{name: {name}, namespace: {namespace}, creationTimestamp: "{created}"}}
spec:
  providerRef: {{name: {provider}}}
  resourceType: apiGroup
  resourceIds: [{RESOURCE}]
  tags: {tags}
"#
    )
}

fn write(dir: &Path, bindings: &[String]) {
    std::fs::write(dir.join("providers.yaml"), PROVIDERS).unwrap();
    std::fs::write(dir.join("bindings.yaml"), bindings.join("\n---\n")).unwrap();
}

fn apply(dir: &Path, extra: &[&str]) -> Value {
    let mut args = vec![
        "apply",
        "-f",
        "providers.yaml",
        "-f",
        "bindings.yaml",
        "--embedded-cloud",
        "-o",
        "json",
    ];
    args.extend_from_slice(extra);
    let output = tagbinder(dir, &args);
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "a JSON report ({e}):\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// The tags of [`RESOURCE`] in the embedded cloud's state file.
fn cloud_tags(dir: &Path) -> Value {
    fn find(value: &Value) -> Option<Value> {
        match value {
            Value::Object(map) => {
                if map.get("id").and_then(Value::as_str) == Some(RESOURCE) {
                    return map.get("tags").cloned();
                }
                map.values().find_map(find)
            }
            Value::Array(items) => items.iter().find_map(find),
            _ => None,
        }
    }
    let text = std::fs::read_to_string(dir.join(".tagbinder/cloud.json")).unwrap();
    find(&serde_json::from_str(&text).unwrap()).expect("the resource in the cloud state")
}

fn report_of<'a>(report: &'a Value, binding: &str) -> &'a Value {
    report["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["binding"] == binding)
        .unwrap_or_else(|| panic!("{binding} in {report}"))
}

#[test]
fn two_providers_of_one_account_and_region_decide_a_conflict_by_age() {
    let dir = tempfile::tempdir().unwrap();
    // NB: the names sort the other way round, so that only age can decide.
    write(
        dir.path(),
        &[
            binding(
                "team-b",
                "a-newer",
                "team-b-apigw",
                "2026-02-01T00:00:00Z",
                "{env: staging, owner: team-b}",
            ),
            binding(
                "team-a",
                "z-older",
                "team-a-apigw",
                "2026-01-01T00:00:00Z",
                "{env: prod}",
            ),
        ],
    );
    for round in 0..3 {
        let report = apply(dir.path(), &[]);
        let loser = report_of(&report, "team-b/a-newer");
        assert_eq!(loser["reason"], "Conflict", "round {round}: {loser}");
        assert!(
            loser["message"]
                .as_str()
                .unwrap()
                .contains("team-a/z-older"),
            "the winner is named: {loser}"
        );
        assert_eq!(report_of(&report, "team-a/z-older")["ready"], true);
        let tags = cloud_tags(dir.path());
        assert_eq!(tags["env"], "prod", "round {round}: {tags}");
        assert_eq!(tags["owner"], "team-b");
        assert_eq!(tags["created-by"], "console", "a foreign tag stays");
        if round > 0 {
            assert_eq!(
                report_of(&report, "team-b/a-newer")["writeCalls"],
                0,
                "nothing is rewritten: {report}"
            );
        }
    }
}

#[test]
fn a_binding_moved_to_another_provider_of_the_same_account_keeps_its_tags() {
    let dir = tempfile::tempdir().unwrap();
    let through = |provider: &str| {
        vec![binding(
            "team-a",
            "web",
            provider,
            "2026-01-01T00:00:00Z",
            "{env: prod, owner: team-a}",
        )]
    };
    write(dir.path(), &through("team-a-apigw"));
    let first = apply(dir.path(), &[]);
    assert_eq!(report_of(&first, "team-a/web")["ready"], true, "{first}");

    write(dir.path(), &through("team-b-apigw"));
    let moved = apply(dir.path(), &["--prune-removed"]);
    let web = report_of(&moved, "team-a/web");
    assert_eq!(web["ready"], true, "{moved}");
    assert_eq!(web["writeCalls"], 0, "nothing to write: {moved}");
    assert!(
        moved["removed"].as_array().is_none_or(|r| r.is_empty()),
        "the moved binding is not a removed one: {moved}"
    );
    let tags = cloud_tags(dir.path());
    assert_eq!(tags["env"], "prod", "{tags}");
    assert_eq!(tags["owner"], "team-a", "{tags}");

    // Its record moved with it: taking a tag out still prunes it.
    write(
        dir.path(),
        &[binding(
            "team-a",
            "web",
            "team-b-apigw",
            "2026-01-01T00:00:00Z",
            "{env: prod}",
        )],
    );
    let pruned = apply(dir.path(), &[]);
    assert_eq!(report_of(&pruned, "team-a/web")["ready"], true, "{pruned}");
    let tags = cloud_tags(dir.path());
    assert!(tags.get("owner").is_none(), "owner is pruned: {tags}");
    assert_eq!(tags["env"], "prod");
}
