//! Selector bindings in the CLI (issue 13), as a user runs them: `examples/selector`, and
//! scratch files for the edges (no match, more than a page, more than `maxResources`,
//! resources that stop and start matching under each `deletionPolicy`, conflicts with an
//! id-list binding).

#[allow(dead_code)]
#[path = "common/cli.rs"]
mod common;
use common::{stderr, stdout, tagbinder};

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::{Value, json};

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/selector")
}

/// The embedded cloud's state file.
fn cloud_path(dir: &Path) -> PathBuf {
    dir.join(".tagbinder/cloud.json")
}

fn cloud(dir: &Path) -> Value {
    let text = std::fs::read_to_string(cloud_path(dir)).expect("the embedded cloud's state");
    serde_json::from_str(&text).unwrap()
}

fn tags_of(dir: &Path, id: &str) -> Value {
    cloud(dir)["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id)
        .map(|r| r["tags"].clone())
        .unwrap_or_else(|| panic!("{id} in the cloud"))
}

/// Changes tags in the embedded cloud between runs, as someone in the console would.
fn edit(dir: &Path, id: &str, set: &[(&str, &str)], remove: &[&str]) {
    let mut state = cloud(dir);
    let resource = state["resources"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["id"] == id)
        .unwrap_or_else(|| panic!("{id} in the cloud"));
    let tags = resource["tags"].as_object_mut().unwrap();
    for (key, value) in set {
        tags.insert(key.to_string(), json!(value));
    }
    for key in remove {
        tags.remove(*key);
    }
    std::fs::write(
        cloud_path(dir),
        serde_json::to_string_pretty(&state).unwrap(),
    )
    .unwrap();
}

fn report(output: &Output) -> Value {
    serde_json::from_str(&stdout(output))
        .unwrap_or_else(|e| panic!("JSON report: {e}: {}", stdout(output)))
}

fn binding<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["binding"] == name)
        .unwrap_or_else(|| panic!("{name} in {report}"))
}

/// A scratch directory with the example's provider, `inventory` and `bindings`.
fn scratch(inventory: &str, bindings: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("manifests");
    std::fs::create_dir(&files).unwrap();
    std::fs::copy(example().join("provider.yaml"), files.join("provider.yaml")).unwrap();
    std::fs::write(files.join("inventory.yaml"), inventory).unwrap();
    std::fs::write(files.join("bindings.yaml"), bindings).unwrap();
    dir
}

fn inventory(resources: &[(&str, &[(&str, &str)])]) -> String {
    let resources: Vec<Value> = resources
        .iter()
        .map(|(id, tags)| {
            let tags: serde_json::Map<String, Value> = tags
                .iter()
                .map(|(k, v)| (k.to_string(), json!(v)))
                .collect();
            json!({"cloud": "alibaba", "region": "cn-hangzhou", "type": "apiGroup", "id": id, "tags": tags})
        })
        .collect();
    serde_json::to_string(&json!({
        "apiVersion": "emulator.tagbinder.io/v1alpha1",
        "kind": "CloudInventory",
        "accounts": [{"accessKeyId": "LTAI5tQuickstartDemoKey",
                      "accessKeySecret": "quickstart-demo-secret-not-for-production"}],
        "resources": resources,
    }))
    .unwrap()
}

fn selector_binding(name: &str, match_tags: &str, tags: &str, extra: &str) -> String {
    format!(
        "apiVersion: tagbinder.io/v1alpha1\nkind: ResourceTagBinding\n\
         metadata: {{name: {name}, namespace: team, creationTimestamp: \"2026-01-02T00:00:00Z\"}}\n\
         spec:\n  providerRef: {{name: aliyun-apigw-hangzhou}}\n  resourceType: apiGroup\n  \
         resourceSelector: {{matchTags: {match_tags}}}\n  tags: {tags}\n{extra}---\n"
    )
}

#[test]
fn the_selector_example_binds_by_tags_and_audits_by_tags() {
    let dir = tempfile::tempdir().unwrap();
    let files = example();
    let files = files.to_str().unwrap();

    let plan = tagbinder(dir.path(), &["plan", "-f", files, "--embedded-cloud"]);
    let out = stdout(&plan);
    assert!(plan.status.success(), "{out}");
    assert!(
        out.contains("selector env=prod,team=web matches 2 resources: web-orders, web-payments"),
        "{out}"
    );
    assert!(
        out.contains(
            "selector env=prod matches 3 resources: finance-ledger, web-orders, web-payments"
        ),
        "{out}"
    );
    assert!(out.contains("observe only"), "{out}");
    assert_eq!(tags_of(dir.path(), "web-orders").get("cost-center"), None);

    let apply = tagbinder(
        dir.path(),
        &["apply", "-f", files, "--embedded-cloud", "-o", "json"],
    );
    assert!(apply.status.success(), "{}", stdout(&apply));
    let report = report(&apply);
    let web = binding(&report, "team-web/web-cost-center");
    assert_eq!(web["ready"], true, "{web}");
    assert_eq!(web["total"], 2);
    assert_eq!(
        web["selected"],
        json!({"count": 2, "firstIds": ["web-orders", "web-payments"]})
    );
    assert_eq!(web["matchTags"], json!({"env": "prod", "team": "web"}));
    let audit = binding(&report, "security/data-class-audit");
    assert_eq!(audit["writeCalls"], 0);
    assert_eq!(
        audit["drift"],
        json!({"resources": 2, "add": 2, "change": 0, "prune": 0})
    );
    assert_eq!(tags_of(dir.path(), "web-orders")["cost-center"], "cc-1042");
    assert_eq!(
        tags_of(dir.path(), "web-payments")["cost-center"],
        "cc-1042"
    );
    assert_eq!(
        tags_of(dir.path(), "web-search-staging"),
        json!({"team": "web", "env": "dev"}),
        "not selected: untouched"
    );
    assert_eq!(
        tags_of(dir.path(), "finance-ledger"),
        json!({"team": "finance", "env": "prod"}),
        "the audit writes nothing"
    );
}

#[test]
fn resources_that_stop_matching_are_released_by_deletion_policy_and_new_ones_tagged() {
    let inventory = inventory(&[
        ("g1", &[("team", "web")]),
        ("g2", &[("team", "web")]),
        ("g3", &[]),
        ("o1", &[("team", "ops")]),
        ("o2", &[("team", "ops")]),
    ]);
    let bindings = selector_binding("web", "{team: web}", "{cost: c1}", "")
        + &selector_binding(
            "ops",
            "{team: ops}",
            "{owner: ops}",
            "  deletionPolicy: Orphan\n",
        );
    let dir = scratch(&inventory, &bindings);
    let apply = |dir: &Path| {
        let out = tagbinder(dir, &["apply", "-f", "manifests", "--embedded-cloud"]);
        assert!(out.status.success(), "{}", stdout(&out));
        stdout(&out)
    };
    apply(dir.path());
    assert_eq!(
        tags_of(dir.path(), "g2"),
        json!({"team": "web", "cost": "c1"})
    );
    assert_eq!(
        tags_of(dir.path(), "o2"),
        json!({"team": "ops", "owner": "ops"})
    );

    edit(dir.path(), "g2", &[], &["team"]);
    edit(dir.path(), "g3", &[("team", "web")], &[]);
    edit(dir.path(), "o2", &[], &["team"]);
    let out = apply(dir.path());
    assert!(out.contains("- cost=c1 (pruned) on g2"), "{out}");
    assert!(out.contains("+ cost=c1 on g3"), "{out}");
    assert_eq!(
        tags_of(dir.path(), "g2"),
        json!({}),
        "Delete: the owned tag of a resource that left the selection is pruned"
    );
    assert_eq!(
        tags_of(dir.path(), "g3"),
        json!({"team": "web", "cost": "c1"})
    );
    assert_eq!(
        tags_of(dir.path(), "o2"),
        json!({"owner": "ops"}),
        "Orphan: left as it is"
    );
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join(".tagbinder/state.json")).unwrap(),
    )
    .unwrap();
    let text = state.to_string();
    assert!(
        !text.contains("\"o2\""),
        "Orphan: o2 left the ownership record: {text}"
    );

    // o2 matching again is selected again; its tag, left by Orphan, already carries the
    // declared value: nothing to write, and (as for any tag found in place) not owned again.
    edit(dir.path(), "o2", &[("team", "ops")], &[]);
    let out = apply(dir.path());
    assert!(
        out.contains("selector team=ops matches 2 resources: o1, o2"),
        "{out}"
    );
    let mut state: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join(".tagbinder/state.json")).unwrap(),
    )
    .unwrap();
    let record = &mut state["bindings"]["team/ops"];
    assert_eq!(
        record["selected"],
        json!(["o1", "o2"]),
        "its claims: {record}"
    );
    record.as_object_mut().unwrap().remove("selected");
    let record = record.to_string();
    assert!(!record.contains("\"o2\""), "not owned again: {record}");
}

#[test]
fn no_match_more_than_a_page_and_more_than_max_resources() {
    let bulk: Vec<String> = (0..40).map(|i| format!("bulk-{i:02}")).collect();
    let mut resources: Vec<(&str, &[(&str, &str)])> = bulk
        .iter()
        .map(|id| (id.as_str(), &[("fleet", "bulk"), ("env", "prod")][..]))
        .collect();
    resources.push(("lonely", &[("env", "prod")]));
    let bindings = selector_binding("none", "{fleet: nothing}", "{a: b}", "")
        + &selector_binding("all", "{fleet: bulk, env: prod}", "{batch: b1}", "")
        + &selector_binding(
            "capped",
            "{fleet: bulk}",
            "{other: x}",
            "  maxResources: 39\n",
        );
    let dir = scratch(&inventory(&resources), &bindings);
    let apply = tagbinder(
        dir.path(),
        &["apply", "-f", "manifests", "--embedded-cloud", "-o", "json"],
    );
    assert!(
        !apply.status.success(),
        "a binding over its cap fails the run: {}",
        stdout(&apply)
    );
    let report = report(&apply);
    let none = binding(&report, "team/none");
    assert_eq!(none["ready"], true, "{none}");
    assert_eq!(none["total"], 0);
    assert_eq!(none["selected"], json!({"count": 0}));
    // 40 resources x 2 tags: 80 entries, two pages of 50.
    let all = binding(&report, "team/all");
    assert_eq!(all["ready"], true, "{all}");
    assert_eq!(all["selected"]["count"], 40);
    assert_eq!(tags_of(dir.path(), "bulk-39")["batch"], "b1");
    assert_eq!(tags_of(dir.path(), "lonely"), json!({"env": "prod"}));
    let capped = binding(&report, "team/capped");
    assert_eq!(capped["reason"], "TooManyResources", "{capped}");
    assert_eq!(capped["writeCalls"], 0);
    assert!(
        capped["message"]
            .as_str()
            .unwrap()
            .contains("matches 40 resources, more than maxResources (39)"),
        "{capped}"
    );
    assert_eq!(tags_of(dir.path(), "bulk-00").get("other"), None);
}

#[test]
fn an_older_id_list_binding_wins_a_conflict_over_a_selector_and_vice_versa() {
    let inventory = inventory(&[("g1", &[("team", "web")]), ("g2", &[("team", "web")])]);
    let ids = |name: &str, created: &str, id: &str, value: &str| {
        format!(
            "apiVersion: tagbinder.io/v1alpha1\nkind: ResourceTagBinding\n\
             metadata: {{name: {name}, namespace: team, creationTimestamp: \"{created}\"}}\n\
             spec:\n  providerRef: {{name: aliyun-apigw-hangzhou}}\n  resourceType: apiGroup\n  \
             resourceIds: [{id}]\n  tags: {{cost: {value}}}\n---\n"
        )
    };
    // old-ids (2025) < web selector (2026-01-02) < young-ids (2027).
    let bindings = ids("old-ids", "2025-01-01T00:00:00Z", "g1", "c0")
        + &selector_binding("web", "{team: web}", "{cost: c1}", "")
        + &ids("young-ids", "2027-01-01T00:00:00Z", "g2", "c9");
    let dir = scratch(&inventory, &bindings);
    let apply = tagbinder(
        dir.path(),
        &["apply", "-f", "manifests", "--embedded-cloud", "-o", "json"],
    );
    let report = report(&apply);
    let web = binding(&report, "team/web");
    assert_eq!(web["reason"], "Conflict", "{web}");
    assert_eq!(
        web["conflicts"],
        json!([{"resourceId": "g1", "key": "cost", "winner": "team/old-ids"}])
    );
    let young = binding(&report, "team/young-ids");
    assert_eq!(
        young["conflicts"],
        json!([{"resourceId": "g2", "key": "cost", "winner": "team/web"}])
    );
    assert_eq!(tags_of(dir.path(), "g1")["cost"], "c0");
    assert_eq!(tags_of(dir.path(), "g2")["cost"], "c1");
}

#[test]
fn a_selector_that_would_select_its_own_output_is_refused_before_any_call() {
    let dir = scratch(
        &inventory(&[("g1", &[("team", "web")])]),
        &selector_binding("web", "{team: web}", "{team: ops}", ""),
    );
    let plan = tagbinder(dir.path(), &["plan", "-f", "manifests", "--embedded-cloud"]);
    assert!(!plan.status.success());
    let err = stderr(&plan);
    assert!(
        err.contains("spec.resourceSelector.matchTags[\"team\"]")
            && err.contains("it would select its own output"),
        "{err}"
    );
}

#[test]
fn a_selector_the_provider_cannot_filter_by_is_refused_before_any_call() {
    // JD Cloud filters by at most 10 tags (the CRD allows 20, Alibaba's product APIs' limit).
    let match_tags: Vec<String> = (0..11).map(|i| format!("k{i}: v")).collect();
    let dir = scratch(&inventory(&[]), "");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/quickstart/provider-jdcloud.yaml"),
        dir.path().join("manifests/provider-jdcloud.yaml"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("manifests/bindings.yaml"),
        format!(
            "apiVersion: tagbinder.io/v1alpha1\nkind: ResourceTagBinding\n\
             metadata: {{name: vms, namespace: team}}\n\
             spec:\n  providerRef: {{name: jdcloud-cn-north-1}}\n  resourceType: vm\n  \
             resourceSelector: {{matchTags: {{{}}}}}\n  tags: {{env: prod}}\n",
            match_tags.join(", ")
        ),
    )
    .unwrap();
    let plan = tagbinder(dir.path(), &["plan", "-f", "manifests", "--embedded-cloud"]);
    assert!(!plan.status.success(), "{}", stdout(&plan));
    let err = stderr(&plan);
    assert!(
        err.contains("spec.resourceSelector.matchTags: 11 matchTags")
            && err.contains("at most 10 tags"),
        "{err}"
    );
}
