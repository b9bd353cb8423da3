//! The copy-paste cloud permissions (issue 26): each RAM policy in examples/permissions/ is
//! valid JSON and the very policy docs/src/cloud/alibaba.md shows, and every action it grants
//! is in the page's table of where each action name comes from.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn policy(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()))
}

fn actions(policy: &Value) -> BTreeSet<String> {
    policy["Statement"]
        .as_array()
        .expect("a Statement list")
        .iter()
        .flat_map(|statement| match &statement["Action"] {
            Value::String(action) => vec![action.clone()],
            Value::Array(list) => list
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect(),
            other => panic!("Action {other}"),
        })
        .collect()
}

/// The JSON code blocks of the page's `## Permissions` section.
fn page_policies(page: &str) -> Vec<Value> {
    let section = page
        .split("\n## Permissions\n")
        .nth(1)
        .expect("a ## Permissions section");
    section
        .split("```json\n")
        .skip(1)
        .map(|block| {
            let json = block.split("\n```").next().unwrap();
            serde_json::from_str(json).unwrap_or_else(|e| panic!("not JSON: {e}\n{json}"))
        })
        .collect()
}

#[test]
fn the_alibaba_policies_are_the_pages_and_every_action_has_its_source() {
    let page = std::fs::read_to_string(root().join("docs/src/cloud/alibaba.md")).unwrap();
    let shown = page_policies(&page);
    let files = [
        "alibaba-apigateway.json",
        "alibaba-ecs.json",
        "alibaba-tag-service.json",
    ];
    assert_eq!(
        shown.len(),
        files.len(),
        "one policy per alibaba.product on the page"
    );
    let sources = page
        .split("Where each action name comes from")
        .nth(1)
        .expect("the table of sources");
    for (file, on_page) in files.iter().zip(&shown) {
        let policy = policy(&root().join("examples/permissions").join(file));
        assert_eq!(&policy, on_page, "{file} and the page's policy differ");
        assert_eq!(policy["Version"], "1", "{file}: RAM policies are Version 1");
        for action in actions(&policy) {
            assert!(
                sources.contains(&format!("`{action}`")),
                "{file}: {action} has no source in the page's table"
            );
        }
    }
}
