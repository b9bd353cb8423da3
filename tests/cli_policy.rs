//! Tag policies in the CLI (issue 24), as a user runs it: the TagPolicies among the files
//! judge each binding's declared tags (a `Deny` breach refuses that binding alone, before
//! any write, and the run exits 1 naming the policy and the rule; a `Warn` breach proceeds
//! with a warning), and `plan` counts the resources it read, foreign tags included.

#[allow(dead_code)]
#[path = "common/cli.rs"]
mod common;
use common::{stderr, stdout, tagbinder};

use std::path::Path;
use std::process::Output;

use serde_json::Value;

const KEY_ID: &str = "LTAI5tPolicyKey";
const KEY_SECRET: &str = "policy-secret-not-for-production";

/// A provider `p` and an inventory: g-1 carries `owner` from another tool, g-2 nothing,
/// g-3 `env: qa`.
fn provider() -> String {
    format!(
        "apiVersion: tagbinder.io/v1alpha1\nkind: TagProvider\nmetadata: {{name: p}}\n\
         spec:\n  cloud: alibaba\n  region: cn-hangzhou\n  alibaba: {{product: apigateway}}\n  \
         credentials: {{secretRef: {{namespace: ops, name: creds}}}}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {{name: creds, namespace: ops}}\n\
         stringData: {{accessKeyId: {KEY_ID}, accessKeySecret: {KEY_SECRET}}}\n---\n\
         apiVersion: emulator.tagbinder.io/v1alpha1\nkind: CloudInventory\naccounts:\n  \
         - {{accessKeyId: {KEY_ID}, accessKeySecret: {KEY_SECRET}}}\nresources:\n  \
         - {{cloud: alibaba, region: cn-hangzhou, type: apiGroup, id: g-1, tags: {{owner: console}}}}\n  \
         - {{cloud: alibaba, region: cn-hangzhou, type: apiGroup, id: g-2, tags: {{}}}}\n  \
         - {{cloud: alibaba, region: cn-hangzhou, type: apiGroup, id: g-3, tags: {{env: qa}}}}\n"
    )
}

fn policy(name: &str, enforcement: &str, rules: &str) -> String {
    format!(
        "apiVersion: tagbinder.io/v1alpha1\nkind: TagPolicy\nmetadata: {{name: {name}}}\n\
         spec:\n  rules: {rules}\n  enforcement: {enforcement}\n---\n"
    )
}

fn binding(name: &str, ids: &str, tags: &str) -> String {
    format!(
        "apiVersion: tagbinder.io/v1alpha1\nkind: ResourceTagBinding\nmetadata:\n  name: {name}\n  \
         namespace: team-web\nspec:\n  providerRef: {{name: p}}\n  resourceType: apiGroup\n  \
         resourceIds: {ids}\n  tags: {tags}\n---\n"
    )
}

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

const FINOPS: &str = "{required: [cost-center], allowedValues: {env: [prod, dev]}, \
                      patterns: {cost-center: '^CC-[0-9]{4}$'}}";

#[test]
fn a_deny_breach_refuses_that_binding_alone_and_the_run_exits_1_naming_policy_and_rule() {
    let dir = scratch(&[
        ("provider.yaml", provider()),
        ("policy.yaml", policy("finops", "Deny", FINOPS)),
        (
            "bindings.yaml",
            binding("good", "[g-1]", "{cost-center: CC-1042, env: prod}")
                + &binding("bad-pattern", "[g-2]", "{cost-center: cc-1, env: prod}"),
        ),
    ]);
    let out = run(dir.path(), "apply", &["-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let bad = &report["bindings"][0];
    assert_eq!(bad["binding"], "team-web/bad-pattern");
    assert_eq!(bad["reason"], "PolicyViolation");
    let message = bad["message"].as_str().unwrap();
    assert!(
        message.contains(r#"TagPolicy "finops" (Deny): rule patterns: cost-center="cc-1" does not match "^CC-[0-9]{4}$""#),
        "{message}"
    );
    assert_eq!(report["errors"][0]["reason"], "PolicyViolation");
    // NB: nothing written for the refused binding; the other converged.
    assert_eq!(tags_of(dir.path(), "g-2"), serde_json::json!({}));
    assert_eq!(tags_of(dir.path(), "g-1")["cost-center"], "CC-1042");
    assert_eq!(report["bindings"][1]["ready"], true);
    // NB: the state file records nothing for the refused binding.
    let state = std::fs::read_to_string(dir.path().join(".tagbinder/state.json")).unwrap();
    assert!(!state.contains("bad-pattern"), "{state}");
}

#[test]
fn each_rule_kind_refuses_under_deny_and_warns_under_warn() {
    for (tags, rule) in [
        (
            "{env: prod}",
            r#"rule required: missing key(s) "cost-center""#,
        ),
        (
            "{cost-center: CC-0001, env: qa}",
            r#"rule allowedValues: env="qa" is not one of dev, prod"#,
        ),
        (
            "{cost-center: CC-1, env: prod}",
            r#"rule patterns: cost-center="CC-1" does not match"#,
        ),
    ] {
        for enforcement in ["Deny", "Warn"] {
            let dir = scratch(&[
                ("provider.yaml", provider()),
                ("policy.yaml", policy("finops", enforcement, FINOPS)),
                ("bindings.yaml", binding("b", "[g-2]", tags)),
            ]);
            let out = run(dir.path(), "apply", &["-o", "json"]);
            let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
            let binding = &report["bindings"][0];
            if enforcement == "Deny" {
                assert_eq!(out.status.code(), Some(1), "{tags}");
                assert!(
                    binding["message"].as_str().unwrap().contains(rule),
                    "{binding}"
                );
                assert_eq!(tags_of(dir.path(), "g-2"), serde_json::json!({}), "{tags}");
            } else {
                assert_eq!(out.status.code(), Some(0), "{tags}: {}", stderr(&out));
                assert_eq!(binding["ready"], true);
                let warning = binding["policyWarnings"][0].as_str().unwrap();
                assert!(
                    warning.contains(r#"TagPolicy "finops" (Warn)"#),
                    "{warning}"
                );
                assert!(warning.contains(rule), "{warning}");
                assert_ne!(tags_of(dir.path(), "g-2"), serde_json::json!({}), "{tags}");
            }
        }
    }
}

#[test]
fn plan_counts_observed_resources_and_a_foreign_tool_may_supply_a_required_key() {
    let dir = scratch(&[
        ("provider.yaml", provider()),
        (
            "policy.yaml",
            policy(
                "owners",
                "Warn",
                "{required: [owner], allowedValues: {env: [prod]}}",
            ),
        ),
        (
            "bindings.yaml",
            binding("b", "[g-1, g-2, g-3]", "{team: web, owner: web}"),
        ),
    ]);
    // NB: the binding declares owner; g-1 carries it from another tool, the others lack it.
    let out = run(dir.path(), "plan", &["--policy-report", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["formatVersion"], 1);
    let owners = &report["policies"][0];
    assert_eq!(owners["policy"], "owners");
    assert_eq!(
        owners["bindings"],
        serde_json::json!({"evaluated": 1, "violating": 0})
    );
    assert_eq!(
        owners["resources"],
        serde_json::json!({"evaluated": 3, "compliant": 1, "noncompliant": 2})
    );
    assert_eq!(owners["noncompliant"][0]["resourceId"], "g-2");
    assert_eq!(
        owners["noncompliant"][0]["missing"],
        serde_json::json!(["owner"])
    );
    assert_eq!(owners["noncompliant"][1]["resourceId"], "g-3");
    assert_eq!(
        owners["noncompliant"][1]["invalid"],
        serde_json::json!({"env": "qa"})
    );
    // NB: after apply, the resources carry the binding's owner: only g-3's env is left.
    let out = run(dir.path(), "apply", &["-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        report["policies"][0]["resources"],
        serde_json::json!({"evaluated": 3, "compliant": 2, "noncompliant": 1})
    );
    let text = stdout(&run(dir.path(), "plan", &[]));
    assert!(
        text.contains("TagPolicy owners (Warn): bindings 1 evaluated, 0 violating; resources 3 evaluated, 2 compliant, 1 noncompliant"),
        "{text}"
    );
    assert!(
        text.contains("! g-3 (p apiGroup): invalid env=qa"),
        "{text}"
    );
}

#[test]
fn a_scan_counts_resources_no_binding_covers_and_plan_lists_them_without_a_write() {
    let scanning = "apiVersion: tagbinder.io/v1alpha1\nkind: TagPolicy\nmetadata: {name: owners}\n\
                    spec:\n  rules: {required: [owner]}\n  enforcement: Warn\n  scan:\n    \
                    - {providerRef: {name: p}, resourceType: apiGroup, matchTags: {env: qa}}\n---\n";
    let dir = scratch(&[
        ("provider.yaml", provider()),
        ("policy.yaml", scanning.to_string()),
        ("bindings.yaml", binding("b", "[g-1]", "{team: web}")),
    ]);
    // NB: g-1 (bound) carries owner from another tool; g-3 (env: qa, bound by nobody) lacks it.
    let out = run(dir.path(), "plan", &["--policy-report", "-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let owners = &report["policies"][0];
    assert_eq!(
        owners["resources"],
        serde_json::json!({"evaluated": 2, "compliant": 1, "noncompliant": 1})
    );
    assert_eq!(owners["noncompliant"][0]["resourceId"], "g-3");
    assert_eq!(
        owners["noncompliant"][0]["missing"],
        serde_json::json!(["owner"])
    );
    let text = stdout(&run(dir.path(), "plan", &[]));
    assert!(text.contains("! g-3 (p apiGroup): missing owner"), "{text}");
    let out = run(dir.path(), "apply", &["-o", "json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(tags_of(dir.path(), "g-3"), serde_json::json!({"env": "qa"}));
}

#[test]
fn a_pattern_re2_refuses_is_an_error_of_the_files() {
    let dir = scratch(&[
        ("provider.yaml", provider()),
        (
            "policy.yaml",
            policy("bad", "Deny", r"{patterns: {team: '(?=x)y'}}"),
        ),
        ("bindings.yaml", binding("b", "[g-2]", "{team: web}")),
    ]);
    let out = run(dir.path(), "plan", &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains(r#"spec.rules.patterns["team"]"#), "{err}");
    assert!(err.contains("invalid pattern"), "{err}");
}

#[test]
fn the_example_policies_refuse_one_quickstart_binding_and_let_the_others_converge() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let quickstart = root.join("examples/quickstart");
    let policies = root.join("examples/policy");
    let out = tagbinder(
        dir.path(),
        &[
            "apply",
            "-f",
            quickstart.to_str().unwrap(),
            "-f",
            policies.to_str().unwrap(),
            "--embedded-cloud",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains(r#"PolicyViolation): TagPolicy "finops" (Deny): rule required: missing key(s) "cost-center"; nothing written"#),
        "{text}"
    );
    assert!(
        text.contains(r#"policy warning: TagPolicy "team" (Warn)"#),
        "{text}"
    );
}
