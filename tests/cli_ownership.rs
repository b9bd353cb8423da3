//! Ownership under aliases and selectors in the CLI (issue 20, items 3, 5, 6 and 7), as a user
//! runs it: the built binary on scratch manifests against the embedded cloud.

#[allow(dead_code)]
#[path = "common/cli.rs"]
mod common;
use common::{stderr, stdout, tagbinder};

use std::path::Path;
use std::process::Output;

use serde_json::Value;

const KEY_ID: &str = "LTAI5tOwnershipKey";
const KEY_SECRET: &str = "ownership-secret-not-for-production";

/// Providers of one account in cn-hangzhou: ECS's own API, API Gateway's, and the Tag service.
fn providers() -> String {
    let provider = |name: &str, product: &str| {
        format!(
            "apiVersion: tagbinder.io/v1alpha1\nkind: TagProvider\nmetadata: {{name: {name}}}\n\
             spec:\n  cloud: alibaba\n  region: cn-hangzhou\n  alibaba: {{product: {product}}}\n  \
             credentials: {{secretRef: {{namespace: ops, name: creds}}}}\n---\n"
        )
    };
    format!(
        "{}{}{}apiVersion: v1\nkind: Secret\nmetadata: {{name: creds, namespace: ops}}\n\
         stringData: {{accessKeyId: {KEY_ID}, accessKeySecret: {KEY_SECRET}}}\n",
        provider("ecs", "ecs"),
        provider("apigw", "apigateway"),
        provider("tag", "tag"),
    )
}

/// The embedded cloud's inventory: `resources` as (type, id, tags) in cn-hangzhou.
fn inventory(resources: &[(&str, &str, &str)]) -> String {
    let listed: Vec<String> = resources
        .iter()
        .map(|(kind, id, tags)| {
            format!(
                "  - {{cloud: alibaba, region: cn-hangzhou, type: {kind}, id: {id}, tags: {tags}}}"
            )
        })
        .collect();
    format!(
        "apiVersion: emulator.tagbinder.io/v1alpha1\nkind: CloudInventory\naccounts:\n  \
         - {{accessKeyId: {KEY_ID}, accessKeySecret: {KEY_SECRET}}}\nresources:\n{}\n",
        listed.join("\n")
    )
}

/// A binding created at `created` (`2026-01-0Nt00:00:00Z`, N = created).
fn binding(name: &str, created: u8, provider: &str, resource_type: &str, rest: &str) -> String {
    format!(
        "apiVersion: tagbinder.io/v1alpha1\nkind: ResourceTagBinding\nmetadata: {{name: {name}, \
         namespace: team, creationTimestamp: \"2026-01-0{created}T00:00:00Z\"}}\nspec:\n  \
         providerRef: {{name: {provider}}}\n  resourceType: {resource_type}\n{rest}---\n"
    )
}

fn scratch(inventory: &str, bindings: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("manifests");
    std::fs::create_dir(&files).unwrap();
    std::fs::write(files.join("providers.yaml"), providers()).unwrap();
    std::fs::write(files.join("inventory.yaml"), inventory).unwrap();
    std::fs::write(files.join("bindings.yaml"), bindings).unwrap();
    dir
}

fn apply(dir: &Path) -> Output {
    tagbinder(
        dir,
        &["apply", "-f", "manifests", "--embedded-cloud", "-o", "json"],
    )
}

fn report(output: &Output) -> Value {
    serde_json::from_str(&stdout(output))
        .unwrap_or_else(|e| panic!("JSON report: {e}: {}\n{}", stdout(output), stderr(output)))
}

fn outcome<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["binding"] == format!("team/{name}"))
        .unwrap_or_else(|| panic!("{name} in {report}"))
}

/// The tags of resource `id` in the embedded cloud's state.
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

#[test]
fn one_resource_under_two_names_is_one_resource_for_conflicts() {
    // i-1 through ECS's API (`instance`) and through the Tag service (`ecs:instance`); g-1
    // through API Gateway's (`apiGroup`) and the Tag service (`apigateway:apiGroup`).
    let cloud = inventory(&[("instance", "i-1", "{}"), ("apiGroup", "g-1", "{}")]);
    let bindings = [
        binding(
            "ecs-old",
            1,
            "ecs",
            "instance",
            "  resourceIds: [i-1]\n  tags: {env: prod}\n",
        ),
        binding(
            "tag-new",
            2,
            "tag",
            "ecs:instance",
            "  resourceIds: [i-1]\n  tags: {env: dev}\n",
        ),
        binding(
            "tag-old",
            1,
            "tag",
            "apigateway:apiGroup",
            "  resourceIds: [g-1]\n  tags: {env: prod}\n",
        ),
        binding(
            "apigw-new",
            2,
            "apigw",
            "apiGroup",
            "  resourceIds: [g-1]\n  tags: {env: dev}\n",
        ),
    ]
    .concat();
    let dir = scratch(&cloud, &bindings);
    for run in 1..=2 {
        let output = apply(dir.path());
        let report = report(&output);
        for (older, younger) in [("ecs-old", "tag-new"), ("tag-old", "apigw-new")] {
            assert_eq!(
                outcome(&report, older)["ready"],
                true,
                "run {run}: {report}"
            );
            let lost = outcome(&report, younger);
            assert_eq!(lost["reason"], "Conflict", "run {run}: {lost}");
            assert!(
                lost["message"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("team/{older}")),
                "run {run}: names the winner: {lost}"
            );
        }
        assert_eq!(tags_of(dir.path(), "i-1")["env"], "prod", "run {run}");
        assert_eq!(tags_of(dir.path(), "g-1")["env"], "prod", "run {run}");
    }
}

#[test]
fn selections_that_feed_each_other_are_refused_naming_the_cycle() {
    let cloud = inventory(&[("apiGroup", "g-1", "{team: web, env: dev}")]);
    let bindings = [
        binding(
            "a",
            1,
            "apigw",
            "apiGroup",
            "  resourceSelector: {matchTags: {env: prod}}\n  tags: {team: web}\n",
        ),
        binding(
            "b",
            2,
            "apigw",
            "apiGroup",
            "  resourceSelector: {matchTags: {team: web}}\n  tags: {env: prod}\n",
        ),
    ]
    .concat();
    let dir = scratch(&cloud, &bindings);
    let output = tagbinder(
        dir.path(),
        &["apply", "-f", "manifests", "--embedded-cloud"],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let errors = stderr(&output);
    assert!(
        errors.contains("spec.resourceSelector.matchTags")
            && errors.contains("team/a, team/b")
            && errors.contains("feed each other"),
        "{errors}"
    );
    assert_eq!(
        tags_of(dir.path(), "g-1")["env"],
        "dev",
        "the foreign env is kept"
    );

    // A chain is allowed: b alone selects by team and declares env, which nobody selects by.
    let chain = binding(
        "b",
        2,
        "apigw",
        "apiGroup",
        "  resourceSelector: {matchTags: {team: web}}\n  tags: {env: prod}\n",
    );
    std::fs::write(dir.path().join("manifests/bindings.yaml"), chain).unwrap();
    let output = apply(dir.path());
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn a_refused_selection_keeps_its_claims_so_a_younger_binding_cannot_take_the_key() {
    let cloud = inventory(&[
        ("apiGroup", "g-1", "{env: prod}"),
        ("apiGroup", "g-2", "{env: prod}"),
    ]);
    let selector = |cap: u8| {
        binding(
            "selector",
            1,
            "apigw",
            "apiGroup",
            &format!(
                "  resourceSelector: {{matchTags: {{env: prod}}}}\n  maxResources: {cap}\n  \
                 tags: {{owner: platform}}\n"
            ),
        )
    };
    let younger = binding(
        "ids",
        2,
        "apigw",
        "apiGroup",
        "  resourceIds: [g-1]\n  tags: {owner: someone}\n",
    );
    let dir = scratch(&cloud, &[selector(10), younger.clone()].concat());
    let report_1 = report(&apply(dir.path()));
    assert_eq!(
        outcome(&report_1, "ids")["reason"],
        "Conflict",
        "{report_1}"
    );
    assert_eq!(tags_of(dir.path(), "g-1")["owner"], "platform");

    // The selector's resolution is refused (more matches than maxResources): it writes
    // nothing, and keeps the claims of its last selection.
    std::fs::write(
        dir.path().join("manifests/bindings.yaml"),
        [selector(1), younger].concat(),
    )
    .unwrap();
    let report_2 = report(&apply(dir.path()));
    assert_eq!(
        outcome(&report_2, "selector")["reason"],
        "TooManyResources",
        "{report_2}"
    );
    assert_eq!(
        outcome(&report_2, "ids")["reason"],
        "Conflict",
        "{report_2}"
    );
    assert_eq!(tags_of(dir.path(), "g-1")["owner"], "platform");
}

#[test]
fn a_system_tag_selector_on_the_tag_service_is_refused_not_an_empty_selection() {
    let cloud = inventory(&[("ecs:instance", "i-1", "{acs:rm:rgId: rg-1}")]);
    let bindings = binding(
        "by-group",
        1,
        "tag",
        "ecs:instance",
        "  resourceSelector: {matchTags: {acs:rm:rgId: rg-1}}\n  tags: {env: prod}\n",
    );
    let dir = scratch(&cloud, &bindings);
    let output = tagbinder(
        dir.path(),
        &["apply", "-f", "manifests", "--embedded-cloud"],
    );
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let errors = stderr(&output);
    assert!(
        errors.contains("acs:rm:rgId") && errors.contains("custom tags only"),
        "{errors}"
    );
    assert!(tags_of(dir.path(), "i-1").get("env").is_none());
}
