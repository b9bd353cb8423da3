//! The book under `docs/` stays true to the code: the CRD and CLI references are generated
//! from the code and compared here (`UPDATE_DOCS=1 cargo test --test docs` rewrites them),
//! every status reason the code defines has a section in the reasons page, and every page is
//! in the book's table of contents (a page left out of `SUMMARY.md` is never built, so never
//! read).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use tagbinder::api::crds_yaml;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Compares `generated` with the file at `relative`, or rewrites it under `UPDATE_DOCS=1`.
fn check_generated(relative: &str, generated: &str) {
    let path = root().join(relative);
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&path, generated).expect("write the generated page");
        return;
    }
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        current == generated,
        "{relative} is stale: regenerate it with `UPDATE_DOCS=1 cargo test --test docs` and commit it"
    );
}

fn help_of(args: &[&str]) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_tagbinder"))
        .args(args)
        .arg("--help")
        .env("NO_COLOR", "1")
        .output()
        .expect("run tagbinder --help");
    assert!(output.status.success(), "tagbinder {args:?} --help failed");
    String::from_utf8(output.stdout).expect("help is UTF-8")
}

/// The subcommands `tagbinder --help` lists (but `help`).
fn subcommands() -> Vec<String> {
    let top = help_of(&[]);
    let mut names = Vec::new();
    let mut in_commands = false;
    for line in top.lines() {
        if line.starts_with("Commands:") {
            in_commands = true;
            continue;
        }
        if in_commands {
            if !line.starts_with("  ") {
                break;
            }
            let name = line.split_whitespace().next().unwrap_or_default();
            if !name.is_empty() && name != "help" {
                names.push(name.to_owned());
            }
        }
    }
    names
}

fn cli_reference() -> String {
    let mut page = String::from(
        "# The CLI\n\n<!-- Generated from `tagbinder --help` by tests/docs.rs: \
         `UPDATE_DOCS=1 cargo test --test docs` rewrites it. Do not edit by hand. -->\n\n\
         What each command does and how it behaves is in [the CLI](../concepts/cli.md) and \
         [the operator](../concepts/operator.md); this page is the help text, as \
         `tagbinder COMMAND --help` prints it.\n\n## tagbinder\n\n```text\n",
    );
    page.push_str(help_of(&[]).trim_end());
    page.push_str("\n```\n");
    for name in subcommands() {
        let _ = write!(page, "\n## tagbinder {name}\n\n```text\n");
        page.push_str(help_of(&[&name]).trim_end());
        page.push_str("\n```\n");
    }
    page
}

#[test]
fn the_cli_reference_is_the_help_text() {
    check_generated("docs/src/reference/cli.md", &cli_reference());
}

fn type_of(schema: &Value) -> String {
    let base = match schema["type"].as_str() {
        Some("array") => format!("[]{}", type_of(&schema["items"])),
        Some("object") if schema.get("additionalProperties").is_some() => {
            format!("map[string]{}", type_of(&schema["additionalProperties"]))
        }
        Some(other) => other.to_owned(),
        None if schema.get("x-kubernetes-int-or-string").is_some() => "int-or-string".to_owned(),
        None => "any".to_owned(),
    };
    match schema["enum"].as_array() {
        Some(values) => {
            let values: Vec<String> = values
                .iter()
                .map(|value| {
                    value
                        .as_str()
                        .map_or_else(|| value.to_string(), str::to_owned)
                })
                .collect();
            format!("{base} ({})", values.join(" \\| "))
        }
        None => base,
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

/// One row per field, depth first, with its dotted path.
fn rows(schema: &Value, path: &str, required: bool, out: &mut String) {
    if !path.is_empty() {
        let mut notes = Vec::new();
        if required {
            notes.push("required".to_owned());
        }
        if let Some(default) = schema.get("default") {
            notes.push(format!("default `{default}`"));
        }
        let description = schema["description"]
            .as_str()
            .map(one_line)
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "| `{path}` | {} | {} | {description} |",
            type_of(schema),
            notes.join(", ")
        );
    }
    let required_fields: BTreeSet<&str> = schema["required"]
        .as_array()
        .map(|list| list.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let (fields, prefix) = if let Some(fields) = schema["properties"].as_object() {
        (fields, path.to_owned())
    } else if let Some(fields) = schema["items"]["properties"].as_object() {
        let required_items: BTreeSet<&str> = schema["items"]["required"]
            .as_array()
            .map(|list| list.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (name, field) in fields {
            rows(
                field,
                &format!("{path}[].{name}"),
                required_items.contains(name.as_str()),
                out,
            );
        }
        return;
    } else {
        return;
    };
    for (name, field) in fields {
        let child = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        rows(field, &child, required_fields.contains(name.as_str()), out);
    }
}

fn crd_reference() -> String {
    let mut page = String::from(
        "# The CRDs\n\n<!-- Generated from `tagbinder crd` by tests/docs.rs: \
         `UPDATE_DOCS=1 cargo test --test docs` rewrites it. Do not edit by hand. -->\n\n\
         Every field of each custom resource, as the CRDs' schemas state it (what `kubectl \
         explain` shows). The rules the API server checks beyond types (CEL) are listed \
         under each kind. What the fields mean together is in \
         [providers and bindings](../concepts/providers-and-bindings.md).\n",
    );
    let text = crds_yaml();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let crd: Value = serde::Deserialize::deserialize(document).expect("CRD YAML");
        let names = &crd["spec"]["names"];
        let version = &crd["spec"]["versions"][0];
        let _ = write!(
            page,
            "\n## {kind}\n\n`{group}/{version}`, {scope}; short names: {short}; categories: {categories}.\n\n",
            kind = names["kind"].as_str().unwrap_or_default(),
            group = crd["spec"]["group"].as_str().unwrap_or_default(),
            version = version["name"].as_str().unwrap_or_default(),
            scope = crd["spec"]["scope"]
                .as_str()
                .unwrap_or_default()
                .to_lowercase(),
            short = names["shortNames"]
                .as_array()
                .map(|list| list
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|name| format!("`{name}`"))
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_else(|| "none".to_owned()),
            categories = names["categories"]
                .as_array()
                .map(|list| list
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|name| format!("`{name}`"))
                    .collect::<Vec<_>>()
                    .join(", "))
                .unwrap_or_else(|| "none".to_owned()),
        );
        let schema = &version["schema"]["openAPIV3Schema"];
        page.push_str("| field | type | | description |\n|---|---|---|---|\n");
        for part in ["spec", "status"] {
            if schema["properties"].get(part).is_some() {
                rows(&schema["properties"][part], part, false, &mut page);
            }
        }
        let mut rules = Vec::new();
        collect_rules(schema, "", &mut rules);
        if !rules.is_empty() {
            page.push_str("\nRules the API server checks (CEL):\n\n");
            for (path, message) in rules {
                let _ = writeln!(page, "- `{path}`: {message}");
            }
        }
    }
    page
}

fn collect_rules(schema: &Value, path: &str, out: &mut Vec<(String, String)>) {
    if let Some(rules) = schema["x-kubernetes-validations"].as_array() {
        for rule in rules {
            let message = rule["message"]
                .as_str()
                .or_else(|| rule["rule"].as_str())
                .unwrap_or_default();
            let at = if path.is_empty() { "." } else { path };
            out.push((at.to_owned(), one_line(message)));
        }
    }
    if let Some(fields) = schema["properties"].as_object() {
        for (name, field) in fields {
            let child = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            collect_rules(field, &child, out);
        }
    }
    if schema["items"].is_object() {
        collect_rules(&schema["items"], &format!("{path}[]"), out);
    }
    if schema["additionalProperties"].is_object() {
        collect_rules(&schema["additionalProperties"], &format!("{path}.*"), out);
    }
}

#[test]
fn the_crd_reference_is_the_schema() {
    check_generated("docs/src/reference/crds.md", &crd_reference());
}

/// `pub const NAME: &str = "Value";` lines of `src/api/conditions.rs`'s `reason` module.
fn reasons() -> Vec<String> {
    let text = std::fs::read_to_string(root().join("src/api/conditions.rs")).expect("read");
    let module = text
        .split("pub mod reason {")
        .nth(1)
        .expect("a reason module");
    module
        .lines()
        .filter_map(|line| line.trim().strip_prefix("pub const "))
        .filter_map(|rest| rest.split('"').nth(1))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_status_reason_has_a_section_that_says_what_to_do() {
    let page = std::fs::read_to_string(root().join("docs/src/reference/reasons.md")).expect("read");
    let headings: BTreeSet<&str> = page
        .lines()
        .filter_map(|line| line.strip_prefix("## "))
        .collect();
    let reasons = reasons();
    assert!(reasons.len() >= 10, "found {reasons:?}");
    let missing: Vec<&String> = reasons
        .iter()
        .filter(|reason| !headings.contains(reason.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/src/reference/reasons.md has no `## REASON` section for {missing:?}: add one that says what it means and what to do"
    );
}

fn pages(dir: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).expect("read docs/src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            pages(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "md") {
            let relative = path
                .strip_prefix(root().join("docs/src"))
                .expect("under docs/src")
                .to_string_lossy()
                .into_owned();
            if relative != "SUMMARY.md" {
                out.insert(relative);
            }
        }
    }
}

#[test]
fn every_page_is_in_the_table_of_contents_and_every_entry_is_a_page() {
    let summary = std::fs::read_to_string(root().join("docs/src/SUMMARY.md")).expect("read");
    let listed: BTreeSet<String> = summary
        .split("](")
        .skip(1)
        .filter_map(|rest| rest.split(')').next())
        .map(str::to_owned)
        .collect();
    let mut present = BTreeSet::new();
    pages(&root().join("docs/src"), &mut present);
    let unlisted: Vec<&String> = present.difference(&listed).collect();
    let absent: Vec<&String> = listed.difference(&present).collect();
    assert!(
        unlisted.is_empty(),
        "pages not in docs/src/SUMMARY.md: {unlisted:?}"
    );
    assert!(
        absent.is_empty(),
        "docs/src/SUMMARY.md lists pages that do not exist (mdbook would create them empty): {absent:?}"
    );
}
