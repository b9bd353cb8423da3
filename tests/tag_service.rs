//! Alibaba Cloud's Tag service as a user runs it: the built binary on `examples/tag-service`
//! with the embedded cloud. Bindings on ECS instances, an RDS instance and an OSS bucket
//! converge through one API by ARN, leave foreign and system tags alone, prune, and report a
//! missing resource alone (per-resource `FailedResources`).

#[allow(dead_code)]
#[path = "common/cli.rs"]
mod common;
use common::{copy_flat, tagbinder};

use std::path::{Path, PathBuf};

use serde_json::Value;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tag-service")
}

/// A scratch copy of the example in `dir/manifests`, to edit.
fn example_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    copy_flat(&example(), &manifests);
    dir
}

fn apply_json(dir: &Path, files: &str) -> (Option<i32>, Value) {
    let output = tagbinder(
        dir,
        &["apply", "-f", files, "--embedded-cloud", "-o", "json"],
    );
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "JSON on stdout ({error}):\n{}\n{}",
            text(&output.stdout),
            text(&output.stderr)
        )
    });
    (output.status.code(), report)
}

fn binding<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["bindings"]
        .as_array()
        .expect("bindings")
        .iter()
        .find(|binding| {
            binding["binding"]
                .as_str()
                .is_some_and(|id| id.ends_with(&format!("/{name}")))
        })
        .unwrap_or_else(|| panic!("binding {name} in {report}"))
}

/// Tags of one resource in the embedded cloud's state file: the object with `"id": <id>`.
fn tags_of(dir: &Path, id: &str) -> Value {
    fn find(value: &Value, id: &str) -> Option<Value> {
        match value {
            Value::Object(map) => {
                if map.get("id").and_then(Value::as_str) == Some(id) {
                    return map
                        .get("tags")
                        .cloned()
                        .or(Some(Value::Object(Default::default())));
                }
                map.values().find_map(|v| find(v, id))
            }
            Value::Array(items) => items.iter().find_map(|v| find(v, id)),
            _ => None,
        }
    }
    let state = std::fs::read_to_string(dir.join(".tagbinder/cloud.json"))
        .expect("the embedded cloud saved its state");
    let state: Value = serde_json::from_str(&state).unwrap();
    find(&state, id).unwrap_or_else(|| panic!("resource {id} in the cloud state: {state}"))
}

#[test]
fn the_example_converges_leaving_foreign_and_system_tags_alone() {
    let dir = tempfile::tempdir().unwrap();
    let files = example();
    let files = files.to_str().unwrap();
    let apply = tagbinder(dir.path(), &["apply", "-f", files, "--embedded-cloud"]);
    let out = text(&apply.stdout);
    assert!(apply.status.success(), "{out}\n{}", text(&apply.stderr));
    assert!(out.contains("3 of 3 binding(s) Ready"), "{out}");
    assert!(
        out.contains("team-web/web-instances (aliyun-tag-hangzhou ecs:instance, 2 resources)"),
        "{out}"
    );

    let web = tags_of(dir.path(), "i-bp1webfront01");
    assert_eq!(web["env"], "prod");
    assert_eq!(web["owner"], "team-web");
    assert_eq!(web["created-by"], "terraform", "a foreign tag survives");
    assert_eq!(
        web["acs:rm:rgId"], "rg-acfmwebfront01",
        "a system tag survives"
    );
    assert_eq!(tags_of(dir.path(), "i-bp1webfront02")["owner"], "team-web");
    let db = tags_of(dir.path(), "rm-bp1ordersdb01");
    assert_eq!(
        (&db["owner"], &db["backup"]),
        (&"team-orders".into(), &"daily".into())
    );
    assert_eq!(
        tags_of(dir.path(), "tagbinder-demo-media")["owner"],
        "team-media"
    );
    let logs = tags_of(dir.path(), "tagbinder-demo-logs");
    assert_eq!(
        logs["owner"], "someone-else",
        "an undeclared resource is untouched"
    );

    let plan = tagbinder(
        dir.path(),
        &[
            "plan",
            "-f",
            files,
            "--embedded-cloud",
            "--detailed-exitcode",
        ],
    );
    assert_eq!(plan.status.code(), Some(0), "{}", text(&plan.stdout));
    assert!(
        text(&plan.stdout).contains("No changes"),
        "{}",
        text(&plan.stdout)
    );
}

#[test]
fn a_missing_resource_fails_alone_and_a_removed_tag_is_pruned() {
    let dir = example_copy();
    let manifests = dir.path().join("manifests");
    let bindings = manifests.join("bindings.yaml");
    let mut declared = std::fs::read_to_string(&bindings).unwrap();
    declared.push_str(
        "---\napiVersion: tagbinder.io/v1alpha1\nkind: ResourceTagBinding\n\
         metadata: {name: archive-buckets, namespace: team-media}\n\
         spec:\n  providerRef: {name: aliyun-tag-hangzhou}\n  resourceType: oss:bucket\n\
         \x20 resourceIds: [tagbinder-demo-logs, tagbinder-deleted-bucket]\n\
         \x20 tags: {retention: 90d}\n",
    );
    std::fs::write(&bindings, &declared).unwrap();
    let files = manifests.to_str().unwrap();

    let (code, report) = apply_json(dir.path(), files);
    assert_eq!(code, Some(1), "a binding is not Ready: {report}");
    let archive = binding(&report, "archive-buckets");
    assert_eq!(archive["reason"], "PartialFailure", "{archive}");
    assert_eq!(
        (archive["total"].as_u64(), archive["synced"].as_u64()),
        (Some(2), Some(1))
    );
    let failures = archive["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0]["resourceId"], "tagbinder-deleted-bucket");
    assert_eq!(failures[0]["reason"], "NotFound");
    assert_eq!(
        tags_of(dir.path(), "tagbinder-demo-logs")["retention"],
        "90d"
    );
    assert_eq!(binding(&report, "web-instances")["ready"], true, "{report}");

    // Team web stops declaring owner: it is pruned where tagbinder applied it, and nothing
    // else moves.
    std::fs::write(&bindings, declared.replacen("    owner: team-web\n", "", 1)).unwrap();
    let (_, report) = apply_json(dir.path(), files);
    assert_eq!(binding(&report, "web-instances")["ready"], true, "{report}");
    for id in ["i-bp1webfront01", "i-bp1webfront02"] {
        let tags = tags_of(dir.path(), id);
        assert!(tags.get("owner").is_none(), "{id}: {tags}");
        assert_eq!(tags["env"], "prod", "{id}");
    }
    let web = tags_of(dir.path(), "i-bp1webfront01");
    assert_eq!(web["created-by"], "terraform");
    assert_eq!(web["acs:rm:rgId"], "rg-acfmwebfront01");
}

#[test]
fn an_empty_value_and_a_malformed_type_are_refused_before_any_call() {
    let dir = example_copy();
    let bindings = dir.path().join("manifests/bindings.yaml");
    let declared = std::fs::read_to_string(&bindings).unwrap();
    let broken = declared
        .replacen("    backup: daily\n", "    backup: \"\"\n", 1)
        .replacen("resourceType: oss:bucket", "resourceType: OSS:bucket", 1);
    std::fs::write(&bindings, broken).unwrap();
    let files = dir.path().join("manifests");
    let plan = tagbinder(
        dir.path(),
        &["plan", "-f", files.to_str().unwrap(), "--embedded-cloud"],
    );
    let out = format!("{}{}", text(&plan.stdout), text(&plan.stderr));
    assert_eq!(plan.status.code(), Some(1), "{out}");
    assert!(
        out.contains("value is 0 characters; this provider needs at least 1"),
        "{out}"
    );
    assert!(out.contains(r#"spec.tags["backup"]"#), "{out}");
    assert!(out.contains("spec.resourceType"), "{out}");
    assert!(out.contains("lowercase ASCII letters"), "{out}");
    let db = tags_of(dir.path(), "rm-bp1ordersdb01");
    assert!(db.get("backup").is_none(), "nothing was written: {db}");
}
