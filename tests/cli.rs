//! The CLI as a user runs it: the built binary on the files in `examples/`.

#[allow(dead_code)]
#[path = "common/cli.rs"]
mod common;
use common::{EmulatorProcess, copy_flat, stderr, stdout, tagbinder};

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn quickstart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart")
}

/// A scratch copy of the quickstart, to edit, in one flat folder `manifests/` (the
/// inventory, in a folder of its own in the example, is `manifests/inventory.yaml`).
fn quickstart_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("manifests")).unwrap();
    copy_flat(&quickstart(), &dir.path().join("manifests"));
    dir
}

fn cloud_tags(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join(".tagbinder/cloud.json"))
        .expect("the embedded cloud saved its state");
    serde_json::from_str(&text).unwrap()
}

/// Tags of one resource in the embedded cloud's state file, whatever its exact layout: the
/// object that has `"id": <id>` and a `tags` map.
fn tags_of(state: &Value, id: &str) -> Value {
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
    find(state, id).unwrap_or_else(|| panic!("resource {id} in the cloud state: {state}"))
}

#[test]
fn quickstart_converges_and_a_second_plan_shows_no_changes() {
    let dir = tempfile::tempdir().unwrap();
    let files = quickstart();
    let files = files.to_str().unwrap();

    let apply = tagbinder(dir.path(), &["apply", "-f", files, "--embedded-cloud"]);
    let out = stdout(&apply);
    assert!(
        apply.status.success(),
        "apply failed:\n{out}\n{}",
        stderr(&apply)
    );
    assert!(out.contains("+ env=prod on 285bb759342649a1b70c2093a772e087, 5a0f7c1e9b2d4e6f8a1b3c5d7e9f0a12, 9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a43"), "{out}");
    assert!(
        out.contains("~ owner: legacy-team -> team-web on 5a0f7c1e9b2d4e6f8a1b3c5d7e9f0a12"),
        "{out}"
    );
    assert!(out.contains("4 of 4 binding(s) Ready"), "{out}");
    assert!(
        out.contains("team-web/web-vms (jdcloud-cn-north-1 vm, 2 resources)"),
        "{out}"
    );
    assert!(
        out.contains("team-web/web-ec2 (aws-us-east-1 ec2:instance, 2 resources)"),
        "{out}"
    );

    let state = cloud_tags(dir.path());
    assert_eq!(
        tags_of(&state, "5a0f7c1e9b2d4e6f8a1b3c5d7e9f0a12")["owner"],
        "team-web"
    );
    let plugin = tags_of(&state, "plugin-ratelimit-7f3e");
    assert_eq!(plugin["created-by"], "console", "a foreign tag survives");
    assert_eq!(plugin["owner"], "team-data");
    let vm = tags_of(&state, "i-ab12cd34ef");
    assert_eq!(vm["backup"], "daily", "a foreign JD Cloud tag survives");
    assert_eq!(vm["env"], "prod");
    assert_eq!(tags_of(&state, "i-uvvtdzuxre")["owner"], "team-web");
    let instance = tags_of(
        &state,
        "arn:aws:ec2:us-east-1:123456789012:instance/i-0a1b2c3d4e5f60001",
    );
    assert_eq!(instance["owner"], "team-web");
    assert_eq!(
        instance["created-by"], "terraform",
        "a foreign AWS tag survives"
    );
    assert_eq!(instance["aws:cloudformation:stack-name"], "web-front");
    let untouched = tags_of(&state, "0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f50");
    assert_eq!(
        untouched["env"], "staging",
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
    assert_eq!(
        plan.status.code(),
        Some(0),
        "{}\n{}",
        stdout(&plan),
        stderr(&plan)
    );
    assert!(stdout(&plan).contains("No changes"), "{}", stdout(&plan));

    let again = tagbinder(dir.path(), &["apply", "-f", files, "--embedded-cloud"]);
    assert!(again.status.success());
    assert!(
        stdout(&again).contains("Apply: nothing changed"),
        "{}",
        stdout(&again)
    );
}

#[test]
fn editing_a_tag_changes_only_that_tag() {
    let dir = quickstart_copy();
    let manifests = dir.path().join("manifests");
    assert!(
        tagbinder(
            dir.path(),
            &["apply", "-f", "manifests", "--embedded-cloud"]
        )
        .status
        .success()
    );

    let bindings = manifests.join("bindings.yaml");
    let text = std::fs::read_to_string(&bindings)
        .unwrap()
        .replace("cost-center: cc-1042", "cost-center: cc-2000");
    std::fs::write(&bindings, text).unwrap();

    let plan = tagbinder(
        dir.path(),
        &[
            "plan",
            "-f",
            "manifests",
            "--embedded-cloud",
            "--detailed-exitcode",
        ],
    );
    let out = stdout(&plan);
    assert_eq!(plan.status.code(), Some(2), "{out}\n{}", stderr(&plan));
    let changes: Vec<&str> = out
        .lines()
        .filter(|l| l.trim_start().starts_with(['+', '~', '-']))
        .collect();
    assert_eq!(
        changes,
        vec![
            "  ~ cost-center: cc-1042 -> cc-2000 on 285bb759342649a1b70c2093a772e087, 5a0f7c1e9b2d4e6f8a1b3c5d7e9f0a12, 9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a43"
        ],
        "{out}"
    );
    assert!(
        out.contains("Plan: 3 resource(s) to update: 0 tag(s) to add, 3 to change, 0 to prune."),
        "{out}"
    );

    let apply = tagbinder(
        dir.path(),
        &["apply", "-f", "manifests", "--embedded-cloud"],
    );
    assert!(apply.status.success(), "{}", stdout(&apply));
    assert_eq!(
        tags_of(&cloud_tags(dir.path()), "285bb759342649a1b70c2093a772e087")["cost-center"],
        "cc-2000"
    );
}

#[test]
fn a_removed_tag_is_pruned_and_a_removed_binding_is_kept_until_asked() {
    let dir = quickstart_copy();
    let manifests = dir.path().join("manifests");
    assert!(
        tagbinder(
            dir.path(),
            &["apply", "-f", "manifests", "--embedded-cloud"]
        )
        .status
        .success()
    );

    // Drop `cost-center` from the web binding, and the data binding altogether.
    let bindings = manifests.join("bindings.yaml");
    let text = std::fs::read_to_string(&bindings).unwrap();
    let web_only = text
        .split("\n---\n")
        .next()
        .unwrap()
        .replace("    cost-center: cc-1042\n", "");
    std::fs::write(&bindings, web_only).unwrap();

    let apply = tagbinder(
        dir.path(),
        &["apply", "-f", "manifests", "--embedded-cloud"],
    );
    let out = stdout(&apply);
    assert!(apply.status.success(), "{out}\n{}", stderr(&apply));
    assert!(
        out.contains("- cost-center=cc-1042 (pruned) on 285bb759342649a1b70c2093a772e087, 5a0f7c1e9b2d4e6f8a1b3c5d7e9f0a12, 9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a43"),
        "{out}"
    );
    assert!(
        out.contains("team-data/data-plugins (aliyun-apigw-hangzhou): no longer declared"),
        "{out}"
    );
    let state = cloud_tags(dir.path());
    assert!(
        tags_of(&state, "285bb759342649a1b70c2093a772e087")
            .get("cost-center")
            .is_none()
    );
    assert_eq!(
        tags_of(&state, "plugin-auth-2b9c")["owner"],
        "team-data",
        "kept without --prune-removed"
    );

    let prune = tagbinder(
        dir.path(),
        &[
            "apply",
            "-f",
            "manifests",
            "--embedded-cloud",
            "--prune-removed",
        ],
    );
    assert!(
        prune.status.success(),
        "{}\n{}",
        stdout(&prune),
        stderr(&prune)
    );
    let state = cloud_tags(dir.path());
    assert!(
        tags_of(&state, "plugin-auth-2b9c").get("owner").is_none(),
        "{state}"
    );
    assert_eq!(
        tags_of(&state, "plugin-ratelimit-7f3e")["created-by"],
        "console",
        "foreign tag kept"
    );
}

#[test]
fn json_output_is_one_document() {
    let dir = tempfile::tempdir().unwrap();
    let files = quickstart();
    let plan = tagbinder(
        dir.path(),
        &[
            "plan",
            "-f",
            files.to_str().unwrap(),
            "--embedded-cloud",
            "-o",
            "json",
        ],
    );
    assert!(plan.status.success(), "{}", stderr(&plan));
    let report: Value = serde_json::from_slice(&plan.stdout).expect("JSON on stdout");
    assert_eq!(report["command"], "plan");
    assert_eq!(report["bindings"].as_array().unwrap().len(), 4);
    let first = &report["bindings"][0];
    assert!(
        first["changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["action"] == "add")
    );
}

#[test]
fn manifests_can_come_from_standard_input() {
    let dir = tempfile::tempdir().unwrap();
    let mut all = String::new();
    for file in [
        "00-namespaces.yaml",
        "provider.yaml",
        "bindings.yaml",
        "inventory/inventory.yaml",
    ] {
        all.push_str(&std::fs::read_to_string(quickstart().join(file)).unwrap());
        all.push_str("\n---\n");
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_tagbinder"))
        .args(["plan", "-f", "-", "--embedded-cloud", "--detailed-exitcode"])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(all.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(
        output.status.code(),
        Some(2),
        "{}\n{}",
        stdout(&output),
        stderr(&output)
    );
}

/// Writes the quickstart with `bindings.yaml` replaced, and runs `plan` on it.
fn plan_with_bindings(bindings: &str) -> Output {
    let dir = quickstart_copy();
    std::fs::write(dir.path().join("manifests/bindings.yaml"), bindings).unwrap();
    let output = tagbinder(dir.path(), &["plan", "-f", "manifests", "--embedded-cloud"]);
    assert!(
        !dir.path().join(".tagbinder/state.json").exists(),
        "plan writes no state"
    );
    output
}

const BINDING: &str = "apiVersion: tagbinder.io/v1alpha1
kind: ResourceTagBinding
metadata: {name: b, namespace: team-web}
spec:
  providerRef: {name: aliyun-apigw-hangzhou}
  resourceType: apiGroup
  resourceIds: [285bb759342649a1b70c2093a772e087]
  tags: {env: prod}
";

fn assert_one_line_error(output: &Output, expected: &[&str]) {
    assert_eq!(output.status.code(), Some(1), "{}", stdout(output));
    let err = stderr(output);
    let line = err
        .lines()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("an error line: {err}"));
    for part in expected {
        assert!(line.contains(part), "{part:?} in {line:?}");
    }
}

#[test]
fn an_unknown_field_names_file_document_and_field() {
    let output = plan_with_bindings(
        &BINDING.replace("  tags: {env: prod}", "  tags: {env: prod}\n  tagz: {x: y}"),
    );
    assert_one_line_error(
        &output,
        &["bindings.yaml: document 1", "spec.tagz", "unknown field"],
    );
}

#[test]
fn a_missing_provider_is_an_error_of_the_binding() {
    let output = plan_with_bindings(&BINDING.replace("aliyun-apigw-hangzhou", "nope"));
    assert_one_line_error(
        &output,
        &[
            "bindings.yaml: document 1",
            "spec.providerRef.name",
            "\"nope\"",
        ],
    );
}

#[test]
fn a_reserved_key_prefix_is_refused_before_any_call() {
    let output = plan_with_bindings(&BINDING.replace("{env: prod}", "{\"acs:env\": prod}"));
    assert_one_line_error(&output, &["spec.tags[\"acs:env\"]", "acs:"]);
}

#[test]
fn an_unknown_resource_type_is_refused() {
    let output =
        plan_with_bindings(&BINDING.replace("resourceType: apiGroup", "resourceType: bucket"));
    assert_one_line_error(&output, &["spec.resourceType", "bucket", "apiGroup"]);
}

#[test]
fn a_namespace_the_provider_does_not_allow_is_refused() {
    let dir = quickstart_copy();
    let provider = dir.path().join("manifests/provider.yaml");
    let text = std::fs::read_to_string(&provider).unwrap().replace(
        "  region: cn-hangzhou\n",
        "  region: cn-hangzhou\n  allowedNamespaces: {matchLabels: {team: web}}\n",
    );
    std::fs::write(&provider, text).unwrap();
    std::fs::write(
        dir.path().join("manifests/namespaces.yaml"),
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-web, labels: {team: web}}\n",
    )
    .unwrap();
    let output = tagbinder(dir.path(), &["plan", "-f", "manifests", "--embedded-cloud"]);
    assert_one_line_error(
        &output,
        &[
            "bindings.yaml: document 2",
            "metadata.namespace",
            "team-data",
        ],
    );
}

#[test]
fn a_region_or_endpoint_that_would_change_the_url_is_refused_before_any_call() {
    for (file, from, to, field) in [
        (
            "provider-jdcloud.yaml",
            "region: cn-north-1",
            "region: cn-north-1/../../../evil/path",
            "spec.region",
        ),
        (
            "provider.yaml",
            "region: cn-hangzhou",
            "region: \"x@127.0.0.1:18797/#\"",
            "spec.region",
        ),
        (
            "provider.yaml",
            "region: cn-hangzhou",
            "region: \"\"",
            "spec.region",
        ),
        (
            "provider-jdcloud.yaml",
            "region: cn-north-1",
            "region: cn-north-1\n  endpoint: \"http://x@127.0.0.1:18797/?#\"",
            "spec.endpoint",
        ),
    ] {
        let dir = quickstart_copy();
        let path = dir.path().join("manifests").join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has {from}");
        std::fs::write(&path, text.replace(from, to)).unwrap();
        let output = tagbinder(dir.path(), &["plan", "-f", "manifests", "--embedded-cloud"]);
        assert_one_line_error(&output, &[file, "document 1", field]);
        assert!(
            !dir.path().join(".tagbinder/cloud.json").exists(),
            "{to}: refused before the embedded cloud started"
        );
    }
}

#[test]
fn malformed_yaml_is_reported_with_its_location() {
    let output = plan_with_bindings("apiVersion: tagbinder.io/v1alpha1\nkind: [unclosed\n");
    assert_one_line_error(&output, &["bindings.yaml: document 1", "malformed YAML"]);
}

#[test]
fn quickstart_makes_the_fewest_calls_against_a_separate_emulator() {
    let dir = quickstart_copy();
    let emulator = EmulatorProcess::start(&dir.path().join("manifests/inventory.yaml"));
    let provider = dir.path().join("manifests/provider.yaml");
    let text = std::fs::read_to_string(&provider).unwrap().replace(
        "  region: cn-hangzhou\n",
        &format!("  region: cn-hangzhou\n  endpoint: {}\n", emulator.url),
    );
    std::fs::write(&provider, text).unwrap();
    let jd_provider = dir.path().join("manifests/provider-jdcloud.yaml");
    let text = std::fs::read_to_string(&jd_provider).unwrap().replace(
        "  region: cn-north-1\n",
        &format!("  region: cn-north-1\n  endpoint: {}\n", emulator.url),
    );
    std::fs::write(&jd_provider, text).unwrap();
    let aws_provider = dir.path().join("manifests/provider-aws.yaml");
    let text = std::fs::read_to_string(&aws_provider).unwrap().replace(
        "  region: us-east-1\n",
        &format!("  region: us-east-1\n  endpoint: {}\n", emulator.url),
    );
    std::fs::write(&aws_provider, text).unwrap();

    let apply = tagbinder(dir.path(), &["apply", "-f", "manifests"]);
    assert!(
        apply.status.success(),
        "{}\n{}",
        stdout(&apply),
        stderr(&apply)
    );
    // Lower bound: one read per binding (3, 2 and 2 resources, under 50), and one write per
    // binding (every resource misses a declared key; under the clouds' key and resource
    // limits per call).
    assert_eq!(emulator.calls("alibaba", "ListTagResources"), 2);
    assert_eq!(emulator.calls("alibaba", "TagResources"), 2);
    assert_eq!(emulator.calls("alibaba", "UntagResources"), 0);
    assert_eq!(emulator.calls("jdcloud", "describeResources"), 1);
    assert_eq!(emulator.calls("jdcloud", "tagResources"), 1);
    assert_eq!(emulator.calls("jdcloud", "unTagResources"), 0);
    assert_eq!(emulator.calls("aws", "GetResources"), 1);
    assert_eq!(emulator.calls("aws", "TagResources"), 1);

    let again = tagbinder(dir.path(), &["apply", "-f", "manifests"]);
    assert!(again.status.success());
    assert_eq!(
        emulator.calls("alibaba", "ListTagResources"),
        4,
        "a second pass only reads"
    );
    assert_eq!(emulator.calls("jdcloud", "describeResources"), 2);
    assert_eq!(emulator.calls("aws", "GetResources"), 2);
    assert_eq!(
        emulator.calls("aws", "TagResources"),
        1,
        "a second pass writes nothing"
    );
    assert_eq!(
        emulator.calls("alibaba", "TagResources") + emulator.calls("jdcloud", "tagResources"),
        3,
        "a second pass writes nothing"
    );
}

#[test]
fn no_secret_in_the_output_or_the_logs_of_a_full_run_at_trace_level() {
    let dir = tempfile::tempdir().unwrap();
    let files = quickstart();
    let secret = "quickstart-demo-secret-not-for-production";
    let output = Command::new(env!("CARGO_BIN_EXE_tagbinder"))
        .args(["apply", "-f", files.to_str().unwrap(), "--embedded-cloud"])
        .current_dir(dir.path())
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let logs = stderr(&output);
    assert!(logs.contains(" TRACE "), "trace logging is on:\n{logs}");
    assert!(
        logs.contains("TagResources"),
        "the logs cover the cloud calls:\n{logs}"
    );
    assert!(
        logs.contains("tagResources"),
        "the logs cover the JD Cloud calls:\n{logs}"
    );
    use base64::Engine;
    for secret in [
        secret,
        "jdcloud-quickstart-demo-secret-not-for-production",
        "aws-quickstart-demo-secret-not-for-production",
    ] {
        let encoded = base64::engine::general_purpose::STANDARD.encode(secret);
        for text in [stdout(&output), logs.clone()] {
            assert!(!text.contains(secret), "the secret leaked");
            assert!(!text.contains(&encoded), "the secret leaked in base64");
        }
    }
}

#[test]
fn the_partial_failure_example_reports_each_missing_resource_alone() {
    let dir = tempfile::tempdir().unwrap();
    let files = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/partial-failure");
    let files = files.to_str().unwrap();
    let apply = tagbinder(
        dir.path(),
        &["apply", "-f", files, "--embedded-cloud", "-o", "json"],
    );
    assert_eq!(apply.status.code(), Some(1), "{}", stderr(&apply));
    let report: Value = serde_json::from_slice(&apply.stdout).expect("JSON on stdout");
    let binding = |report: &Value, name: &str| -> Value {
        report["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["binding"] == name)
            .unwrap_or_else(|| panic!("binding {name} in {report}"))
            .clone()
    };
    // NB: JD Cloud answers per resource; Alibaba Cloud fails the whole call, which the client
    // splits until the unknown id is alone.
    for (name, missing) in [
        ("team-data/batch-vms", "i-decommissioned"),
        ("team-web/web-apis", "g-retired"),
    ] {
        let binding = binding(&report, name);
        assert_eq!(binding["reason"], "PartialFailure", "{binding}");
        assert_eq!(
            (binding["total"].as_u64(), binding["synced"].as_u64()),
            (Some(3), Some(2)),
            "{binding}"
        );
        let failures = binding["failures"].as_array().unwrap();
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert_eq!(failures[0]["resourceId"], missing);
        assert_eq!(failures[0]["reason"], "NotFound");
    }

    let state = cloud_tags(dir.path());
    for id in ["i-batch0001", "i-batch0002"] {
        assert_eq!(tags_of(&state, id)["env"], "prod", "{id} converged");
        assert_eq!(tags_of(&state, id)["owner"], "team-data");
    }
    assert_eq!(tags_of(&state, "i-batch0002")["backup"], "weekly");
    for id in ["g-checkout", "g-search"] {
        assert_eq!(tags_of(&state, id)["env"], "prod", "{id} converged");
        assert_eq!(tags_of(&state, id)["owner"], "team-web");
    }
    assert_eq!(tags_of(&state, "g-search")["tier"], "gold");

    let plan = tagbinder(
        dir.path(),
        &[
            "plan",
            "-f",
            files,
            "--embedded-cloud",
            "-o",
            "json",
            "--detailed-exitcode",
        ],
    );
    assert_eq!(
        plan.status.code(),
        Some(2),
        "changes are still pending: {}",
        stderr(&plan)
    );
    let report: Value = serde_json::from_slice(&plan.stdout).expect("JSON on stdout");
    for (name, missing) in [
        ("team-data/batch-vms", "i-decommissioned"),
        ("team-web/web-apis", "g-retired"),
    ] {
        let mut pending: Vec<String> = binding(&report, name)["changes"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|change| change["resources"].as_array().unwrap())
            .map(|id| id.as_str().unwrap().to_string())
            .collect();
        pending.dedup();
        assert_eq!(
            pending,
            [missing],
            "{name}: only the missing resource is still pending"
        );
    }
}

#[test]
fn the_observe_example_reports_drift_writes_nothing_and_lets_go_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let files = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/observe");
    let files = files.to_str().unwrap();

    let plan = tagbinder(dir.path(), &["plan", "-f", files, "--embedded-cloud"]);
    let out = stdout(&plan);
    assert!(plan.status.success(), "{out}\n{}", stderr(&plan));
    assert!(
        out.contains("observe only: never writes")
            && out.contains("+ cost-center=cc-1042 on audit-payments, audit-reports")
            && out.contains("Observe only: 1 of 1 binding(s) drifted (3 resource(s))"),
        "{out}"
    );

    let apply = tagbinder(
        dir.path(),
        &["apply", "-f", files, "--embedded-cloud", "-o", "json"],
    );
    assert!(
        apply.status.success(),
        "drift is a finding, not a failure: {}\n{}",
        stdout(&apply),
        stderr(&apply)
    );
    let report: Value = serde_json::from_str(&stdout(&apply)).unwrap();
    let binding = &report["bindings"][0];
    assert_eq!(binding["observeOnly"], true);
    assert_eq!(binding["writeCalls"], 0);
    assert_eq!(binding["ready"], true);
    assert_eq!(
        binding["drift"],
        serde_json::json!({"resources": 3, "add": 2, "change": 1, "prune": 0})
    );
    assert_eq!(binding["driftSamples"].as_array().unwrap().len(), 3);
    let state = cloud_tags(dir.path());
    assert_eq!(
        tags_of(&state, "audit-payments"),
        serde_json::json!({"team": "web"})
    );
    assert_eq!(tags_of(&state, "audit-search")["cost-center"], "cc-0000");

    // Enforce converges; Observe again owns what Enforce wrote but, removed from the files,
    // lets go without a write.
    let copy = dir.path().join("manifests");
    std::fs::create_dir(&copy).unwrap();
    for name in ["inventory/inventory.yaml", "provider.yaml", "bindings.yaml"] {
        std::fs::copy(Path::new(files).join(name), copy.join(base_name(name))).unwrap();
    }
    let bindings = copy.join("bindings.yaml");
    let observe = std::fs::read_to_string(&bindings).unwrap();
    std::fs::write(&bindings, observe.replace("mode: Observe", "mode: Enforce")).unwrap();
    let enforce = tagbinder(
        dir.path(),
        &["apply", "-f", "manifests", "--embedded-cloud"],
    );
    assert!(enforce.status.success(), "{}", stdout(&enforce));
    let state = cloud_tags(dir.path());
    assert_eq!(tags_of(&state, "audit-payments")["cost-center"], "cc-1042");
    assert_eq!(tags_of(&state, "audit-search")["cost-center"], "cc-1042");

    std::fs::write(&bindings, observe).unwrap();
    let observed = tagbinder(
        dir.path(),
        &["apply", "-f", "manifests", "--embedded-cloud"],
    );
    let out = stdout(&observed);
    assert!(observed.status.success(), "{out}");
    assert!(out.contains("Apply: nothing changed"), "{out}");
    std::fs::remove_file(&bindings).unwrap();
    let removed = tagbinder(
        dir.path(),
        &[
            "apply",
            "-f",
            "manifests",
            "--embedded-cloud",
            "--prune-removed",
        ],
    );
    let out = stdout(&removed);
    assert!(removed.status.success(), "{out}\n{}", stderr(&removed));
    assert!(out.contains("mode Observe: nothing is written"), "{out}");
    let state = cloud_tags(dir.path());
    assert_eq!(
        tags_of(&state, "audit-payments")["cost-center"],
        "cc-1042",
        "an Observe binding's removal writes nothing"
    );
}

#[test]
fn an_observe_binding_claims_nothing_from_a_binding_that_writes() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("manifests");
    std::fs::create_dir(&copy).unwrap();
    let files = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/observe");
    for name in ["inventory/inventory.yaml", "provider.yaml", "bindings.yaml"] {
        std::fs::copy(files.join(name), copy.join(base_name(name))).unwrap();
    }
    // `finance/...` sorts before `ops/...`: were the audit a claimant, it would win.
    std::fs::write(
        copy.join("enforce.yaml"),
        "apiVersion: tagbinder.io/v1alpha1\nkind: ResourceTagBinding\n\
         metadata: {name: orders, namespace: ops}\n\
         spec:\n  providerRef: {name: aliyun-apigw-hangzhou}\n  resourceType: apiGroup\n  \
         resourceIds: [audit-orders]\n  tags: {cost-center: cc-7}\n",
    )
    .unwrap();
    let apply = tagbinder(
        dir.path(),
        &["apply", "-f", "manifests", "--embedded-cloud", "-o", "json"],
    );
    assert!(apply.status.success(), "{}", stdout(&apply));
    let report: Value = serde_json::from_str(&stdout(&apply)).unwrap();
    let orders = report["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["binding"] == "ops/orders")
        .unwrap();
    assert_eq!(orders["conflicts"], serde_json::json!([]), "{orders}");
    assert_eq!(orders["reason"], "Synced", "{orders}");
    let state = cloud_tags(dir.path());
    assert_eq!(tags_of(&state, "audit-orders")["cost-center"], "cc-7");
    // The audit, which plans from the cloud as it was, sees audit-orders as it found it.
    let audit = report["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["binding"] == "finance/cost-center-audit")
        .unwrap();
    assert_eq!(audit["writeCalls"], 0);
}

/// Issue 26: a file with kinds tagbinder does not read (as `kustomize build` prints them) is
/// planned with a note for each skipped document; `--strict` refuses them.
#[test]
fn kinds_tagbinder_does_not_read_are_skipped_with_a_note_and_refused_under_strict() {
    let dir = tempfile::tempdir().unwrap();
    let quickstart = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    let mut text = String::new();
    for file in [
        "00-namespaces.yaml",
        "provider.yaml",
        "bindings.yaml",
        "inventory/inventory.yaml",
    ] {
        text.push_str(&std::fs::read_to_string(quickstart.join(file)).unwrap());
        text.push_str("\n---\n");
    }
    // NB: `enabled: yes` would be refused in a kind tagbinder reads; here it is not its own.
    text.push_str(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: team-web}\n\
         data: {enabled: yes}\n",
    );
    std::fs::write(dir.path().join("all.yaml"), text).unwrap();

    let output = tagbinder(dir.path(), &["plan", "-f", "all.yaml", "--embedded-cloud"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("skipped v1/ConfigMap: not a kind tagbinder reads"),
        "{}",
        stderr(&output)
    );
    assert!(stdout(&output).contains("Plan:"), "{}", stdout(&output));

    let strict = tagbinder(
        dir.path(),
        &["plan", "-f", "all.yaml", "--embedded-cloud", "--strict"],
    );
    assert_eq!(strict.status.code(), Some(1));
    assert!(
        stderr(&strict).contains("v1/ConfigMap is not a kind tagbinder reads"),
        "{}",
        stderr(&strict)
    );
}

/// Issue 26: `tags:` with nothing after it is refused, as the API server refuses it (`spec.tags:
/// Required value`, checked on a real one); `tags: {}` is accepted with a warning that says how
/// many owned tags go.
#[test]
fn null_tags_are_refused_and_empty_tags_warn_of_what_they_remove() {
    let dir = tempfile::tempdir().unwrap();
    let quickstart = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    for file in [
        "00-namespaces.yaml",
        "provider.yaml",
        "bindings.yaml",
        "inventory/inventory.yaml",
    ] {
        std::fs::copy(quickstart.join(file), dir.path().join(base_name(file))).unwrap();
    }
    let args = |bindings: &'static str| {
        [
            "apply",
            "-f",
            "00-namespaces.yaml",
            "-f",
            "provider.yaml",
            "-f",
            "inventory.yaml",
            "-f",
            bindings,
            "--embedded-cloud",
        ]
    };
    let applied = tagbinder(dir.path(), &args("bindings.yaml"));
    assert!(applied.status.success(), "{}", stdout(&applied));
    let declared = std::fs::read_to_string(dir.path().join("bindings.yaml")).unwrap();
    let tags = "  tags:\n    env: prod\n    owner: team-web\n    cost-center: cc-1042\n";
    assert!(declared.contains(tags));
    std::fs::write(
        dir.path().join("null.yaml"),
        declared.replacen(tags, "  tags:\n", 1),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("empty.yaml"),
        declared.replacen(tags, "  tags: {}\n", 1),
    )
    .unwrap();

    let refused = tagbinder(dir.path(), &args("null.yaml"));
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("spec.tags: is null"),
        "{}",
        stderr(&refused)
    );
    let emptied = tagbinder(dir.path(), &args("empty.yaml"));
    assert!(
        stderr(&emptied).contains("spec.tags is empty (tags: {}): this apply removes the 9 tag(s)"),
        "{}",
        stderr(&emptied)
    );
}

/// Issue 26: an unknown `providerRef` names the closest provider and those the files define.
#[test]
fn an_unknown_provider_ref_suggests_the_closest_and_lists_the_defined_ones() {
    let dir = tempfile::tempdir().unwrap();
    let quickstart = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart");
    for file in ["provider.yaml", "inventory/inventory.yaml"] {
        std::fs::copy(quickstart.join(file), dir.path().join(base_name(file))).unwrap();
    }
    let bindings = std::fs::read_to_string(quickstart.join("bindings.yaml")).unwrap();
    assert!(bindings.contains("name: aliyun-apigw-hangzhou\n"));
    std::fs::write(
        dir.path().join("bindings.yaml"),
        bindings.replace(
            "name: aliyun-apigw-hangzhou\n",
            "name: aliyun-apigw-hangzou\n",
        ),
    )
    .unwrap();
    let output = tagbinder(dir.path(), &["plan", "-f", ".", "--embedded-cloud"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains(
            "TagProvider \"aliyun-apigw-hangzou\" is not among the given files; did you mean \
             \"aliyun-apigw-hangzhou\"? (they define aliyun-apigw-hangzhou)"
        ),
        "{}",
        stderr(&output)
    );
}

/// Issue 26: `run --kubeconfig FILE --context NAME`, as kubectl takes them: a missing file and
/// an unknown context are named, and a given file wins over `KUBECONFIG`.
#[test]
fn run_takes_a_kubeconfig_and_a_context() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("kc.yaml"),
        "apiVersion: v1\nkind: Config\n\
         clusters: [{name: c, cluster: {server: \"https://127.0.0.1:1\"}}]\n\
         users: [{name: u, user: {token: not-a-secret}}]\n\
         contexts: [{name: ctx, context: {cluster: c, user: u}}]\ncurrent-context: ctx\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tagbinder"))
            .args(["run", "--metrics-addr", "127.0.0.1:0"])
            .args(args)
            .current_dir(dir.path())
            .env("KUBECONFIG", dir.path().join("elsewhere.yaml"))
            .env("RUST_LOG", "off")
            .output()
            .expect("the tagbinder binary runs")
    };
    let missing = run(&["--kubeconfig", "missing.yaml"]);
    assert!(
        stderr(&missing).contains("--kubeconfig missing.yaml: failed to read kubeconfig"),
        "{}",
        stderr(&missing)
    );
    let context = run(&["--kubeconfig", "kc.yaml", "--context", "nope"]);
    assert!(stderr(&context).contains("nope"), "{}", stderr(&context));
    // The file's server (nothing listens on port 1) is the one tried, not KUBECONFIG's.
    let given = run(&["--kubeconfig", "kc.yaml"]);
    assert!(
        stderr(&given).contains("cannot list resourcetagbindings.tagbinder.io"),
        "{}",
        stderr(&given)
    );
    assert!(!given.status.success());
}

/// Issue 26: a second example run in the same folder resumes the embedded cloud's saved state
/// and adds the resources its inventory lists that the state lacks, with a note; before, every
/// one of them failed NotFound.
#[test]
fn a_second_example_in_the_same_folder_adds_its_resources_to_the_embedded_cloud() {
    let dir = tempfile::tempdir().unwrap();
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let quickstart = examples.join("quickstart");
    let first = tagbinder(
        dir.path(),
        &[
            "apply",
            "-f",
            quickstart.to_str().unwrap(),
            "--embedded-cloud",
        ],
    );
    assert!(first.status.success(), "{}", stdout(&first));
    assert!(!stderr(&first).contains("resumed"), "{}", stderr(&first));
    let tag_service = examples.join("tag-service");
    let second = tagbinder(
        dir.path(),
        &[
            "apply",
            "-f",
            tag_service.to_str().unwrap(),
            "--embedded-cloud",
        ],
    );
    assert!(
        stdout(&second).contains("3 of 3 binding(s) Ready"),
        "{}\n{}",
        stdout(&second),
        stderr(&second)
    );
    assert!(
        stderr(&second).contains("the inventory added 5 it lacked"),
        "{}",
        stderr(&second)
    );
    // The first example's resources are still there, with the tags it applied.
    let again = tagbinder(
        dir.path(),
        &[
            "plan",
            "-f",
            quickstart.to_str().unwrap(),
            "--embedded-cloud",
        ],
    );
    assert!(
        stdout(&again).contains("No changes: the cloud matches the manifests."),
        "{}",
        stdout(&again)
    );
}

/// The last component of an example's file path (`inventory/inventory.yaml` is copied as
/// `inventory.yaml`).
fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}
