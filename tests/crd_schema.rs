//! The CRDs' own admission rules, evaluated without an API server: the OpenAPI schema with a
//! JSON Schema validator, `x-kubernetes-list-type: set` uniqueness, and the CEL rules
//! (`x-kubernetes-validations`, including the `oldSelf` transition rules of updates) with a
//! CEL interpreter. The schema-layer cases of the bad-input catalogue are refused here, as
//! `kubectl apply` would refuse them; and the CLI, which restates these rules, refuses each
//! of them too (`schema_violations`).

#[allow(dead_code)]
#[path = "common/crd_cases.rs"]
mod crd_cases;
use crd_cases::{
    Refused, binding, binding_cases, provider, refused_updates, selector_binding, selector_cases,
    with,
};

use serde_json::{Value, json};
use tagbinder::api::{ResourceTagBinding, crds_yaml};

/// The openAPIV3Schema of `kind`, from the generated CRDs.
fn schema_of(kind: &str) -> Value {
    let text = crds_yaml();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let crd: Value = serde::Deserialize::deserialize(document).expect("CRD YAML");
        if crd["spec"]["names"]["kind"] == kind {
            return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
        }
    }
    panic!("no CRD of kind {kind}");
}

/// What the API server would answer to creating `new` (or updating `old` to `new`): the
/// messages of every broken rule.
fn admit(schema: &Value, old: Option<&Value>, new: &Value) -> Vec<String> {
    let mut refusals = Vec::new();
    let validator = jsonschema::validator_for(schema).expect("the schema compiles");
    for error in validator.iter_errors(new) {
        refusals.push(format!("{}: {error}", error.instance_path()));
    }
    // NB: CEL rules see typed values; an object of the wrong shape is refused before them.
    if refusals.is_empty() {
        walk(schema, old, Some(new), "", &mut refusals);
    }
    refusals
}

/// Applies the Kubernetes extensions at every node of the schema that the object has.
fn walk(
    schema: &Value,
    old: Option<&Value>,
    new: Option<&Value>,
    path: &str,
    out: &mut Vec<String>,
) {
    let Some(new) = new else { return };
    if schema["x-kubernetes-list-type"] == "set"
        && let Some(items) = new.as_array()
    {
        for (index, item) in items.iter().enumerate() {
            if items[..index].contains(item) {
                out.push(format!("{path}[{index}]: Duplicate value: {item}"));
            }
        }
    }
    // NB: a list of type map refuses two items with the same map keys (`tagsFrom` by `key`).
    if schema["x-kubernetes-list-type"] == "map"
        && let (Some(items), Some(keys)) = (
            new.as_array(),
            schema["x-kubernetes-list-map-keys"].as_array(),
        )
    {
        let key_of = |item: &Value| -> Vec<Value> {
            keys.iter()
                .map(|k| item[k.as_str().unwrap_or_default()].clone())
                .collect()
        };
        for (index, item) in items.iter().enumerate() {
            if items[..index]
                .iter()
                .any(|other| key_of(other) == key_of(item))
            {
                out.push(format!("{path}[{index}]: Duplicate value: {item}"));
            }
        }
    }
    if let Some(rules) = schema["x-kubernetes-validations"].as_array() {
        for rule in rules {
            let source = rule["rule"].as_str().expect("a rule");
            let transition = source.contains("oldSelf");
            // NB: as in Kubernetes, a transition rule runs only on updates, when the old object
            // has the field too.
            if transition && old.is_none() {
                continue;
            }
            let program = cel::Program::compile(source)
                .unwrap_or_else(|e| panic!("{path}: rule {source:?} compiles: {e:?}"));
            let mut context = cel::Context::default();
            context.add_variable("self", new.clone()).expect("self");
            if let Some(old) = old {
                context
                    .add_variable("oldSelf", old.clone())
                    .expect("oldSelf");
            }
            match program.execute(&context) {
                Ok(cel::Value::Bool(true)) => {}
                Ok(cel::Value::Bool(false)) => out.push(format!(
                    "{path}: {}",
                    rule["message"].as_str().unwrap_or(source)
                )),
                other => panic!("{path}: rule {source:?} gave {other:?}"),
            }
        }
    }
    if let Some(properties) = schema["properties"].as_object() {
        for (name, child) in properties {
            walk(
                child,
                old.and_then(|o| o.get(name)),
                new.get(name),
                &format!("{path}.{name}"),
                out,
            );
        }
    }
    if let (Some(items), Some(values)) = (schema.get("items"), new.as_array()) {
        for (index, value) in values.iter().enumerate() {
            let old_item = old.and_then(|o| o.get(index));
            walk(
                items,
                old_item,
                Some(value),
                &format!("{path}[{index}]"),
                out,
            );
        }
    }
}

/// The CLI's restatement of the schema, on the same object.
fn cli_violations(object: &Value) -> Vec<String> {
    match serde_json::from_value::<ResourceTagBinding>(object.clone()) {
        Ok(binding) => binding.spec.schema_violations(),
        Err(error) => vec![format!("does not parse: {error}")],
    }
}

#[test]
fn a_valid_binding_is_admitted_by_the_schema_and_the_cli() {
    let schema = schema_of("ResourceTagBinding");
    assert_eq!(admit(&schema, None, &binding()), Vec::<String>::new());
    assert_eq!(
        admit(&schema, Some(&binding()), &binding()),
        Vec::<String>::new()
    );
    assert_eq!(cli_violations(&binding()), Vec::<String>::new());
    assert_eq!(
        admit(&schema_of("TagProvider"), None, &provider()),
        Vec::<String>::new()
    );
}

#[test]
fn the_schema_refuses_what_the_catalogue_says_it_refuses() {
    let schema = schema_of("ResourceTagBinding");
    assert_refused_by_both(&schema, &binding_cases());
}

/// Each case is refused by the schema (with a message holding the expected text) and by the
/// CLI's restated rules.
fn assert_refused_by_both(schema: &Value, cases: &[Refused]) {
    let mut failures = Vec::new();
    for Refused {
        name,
        object,
        interpreted,
        ..
    } in cases
    {
        let refusals = admit(schema, None, object);
        if !refusals.iter().any(|r| r.contains(interpreted)) {
            failures.push(format!(
                "{name}: the schema answered {refusals:?}, wanted {interpreted:?}"
            ));
        }
        if cli_violations(object).is_empty() {
            failures.push(format!("{name}: the CLI's restated rules accept it"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_selector_binding_is_admitted_and_its_rules_refused_by_the_schema_and_the_cli() {
    let schema = schema_of("ResourceTagBinding");
    let valid = selector_binding(json!({"team": "web"}));
    assert_eq!(admit(&schema, None, &valid), Vec::<String>::new());
    assert_eq!(cli_violations(&valid), Vec::<String>::new());
    let mut capped = valid.clone();
    capped["spec"]["maxResources"] = json!(500);
    assert_eq!(admit(&schema, None, &capped), Vec::<String>::new());
    assert_eq!(cli_violations(&capped), Vec::<String>::new());

    assert_refused_by_both(&schema, &selector_cases());
}

#[test]
fn provider_ref_and_resource_type_are_immutable_on_update() {
    let schema = schema_of("ResourceTagBinding");
    let old = binding();
    for (what, new, message) in refused_updates() {
        let refusals = admit(&schema, Some(&old), &new);
        assert!(
            refusals.iter().any(|r| r.contains(message)),
            "{what}: {refusals:?}"
        );
        assert_eq!(
            admit(&schema, None, &new),
            Vec::<String>::new(),
            "{what}: creating is fine"
        );
    }
    let retagged = with(&["spec", "tags"], json!({"env": "dev", "team": "web"}));
    assert_eq!(admit(&schema, Some(&old), &retagged), Vec::<String>::new());
}

/// Issue 23: `tagsFrom` and `defaultTags` as the apiserver admits them: every source admitted;
/// a key twice, two sources in one entry, an unknown field path refused (and by the CLI);
/// defaults that break the cloud's static rules refused per cloud.
#[test]
fn tags_from_and_default_tags_are_checked_at_admission() {
    let schema = schema_of("ResourceTagBinding");
    let every = with(
        &["spec", "tagsFrom"],
        json!([
            {"key": "team", "valueFrom": {"namespaceLabel": "team"}},
            {"key": "cost", "valueFrom": {"namespaceAnnotation": "a/b"}, "optional": true},
            {"key": "name", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"key": "app", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"key": "cluster", "valueFrom": {"clusterName": {}}}
        ]),
    );
    assert_eq!(admit(&schema, None, &every), Vec::<String>::new());
    assert_eq!(cli_violations(&every), Vec::<String>::new());
    let cases = [
        (
            json!([
                {"key": "team", "valueFrom": {"namespaceLabel": "team"}},
                {"key": "team", "valueFrom": {"clusterName": {}}}
            ]),
            "Duplicate value",
        ),
        (
            json!([{"key": "team", "valueFrom": {"namespaceLabel": "team", "clusterName": {}}}]),
            "set exactly one of namespaceLabel",
        ),
        (
            json!([{"key": "team", "valueFrom": {}}]),
            "set exactly one of namespaceLabel",
        ),
        (
            json!([{"key": "x", "valueFrom": {"fieldRef": {"fieldPath": "spec.tags"}}}]),
            "/spec/tagsFrom/0/valueFrom/fieldRef/fieldPath",
        ),
        (
            json!([{"key": "", "valueFrom": {"namespaceLabel": "team"}}]),
            "/spec/tagsFrom/0/key",
        ),
    ];
    for (tags_from, expected) in cases {
        let object = with(&["spec", "tagsFrom"], tags_from.clone());
        let refusals = admit(&schema, None, &object);
        assert!(
            refusals.iter().any(|r| r.contains(expected)),
            "{tags_from}: {refusals:?}, wanted {expected:?}"
        );
        assert!(
            !cli_violations(&object).is_empty(),
            "{tags_from}: the CLI accepts it"
        );
    }

    let providers = schema_of("TagProvider");
    let with_defaults = |cloud: &str, defaults: Value| {
        let mut object = provider();
        object["spec"]["cloud"] = json!(cloud);
        object["spec"]["defaultTags"] = defaults;
        object
    };
    let fine = with_defaults("alibaba", json!({"managed-by": "tagbinder"}));
    assert_eq!(admit(&providers, None, &fine), Vec::<String>::new());
    for (cloud, defaults, expected) in [
        (
            "alibaba",
            json!({"acs:x": "1"}),
            "reserved prefixes acs: and aliyun",
        ),
        (
            "alibaba",
            json!({"x": "AliyunY"}),
            "reserved prefixes acs: and aliyun",
        ),
        (
            "alibaba",
            json!({"x": "see https://x"}),
            "http:// or https://",
        ),
        (
            "alibaba",
            json!({"x": "v".repeat(129)}),
            "at most 128 characters",
        ),
        (
            "jdcloud",
            json!({"jrn:x": "1"}),
            "reserved prefixes jrn: and jdc-",
        ),
        ("alibaba", json!({"": "1"}), "must not be empty"),
    ] {
        let refusals = admit(&providers, None, &with_defaults(cloud, defaults.clone()));
        assert!(
            refusals.iter().any(|r| r.contains(expected)),
            "{cloud} {defaults}: {refusals:?}, wanted {expected:?}"
        );
    }
    // NB: a JD Cloud value may be 255 characters; an Alibaba prefix rule does not apply to it.
    let long = with_defaults("jdcloud", json!({"acs:x": "v".repeat(200)}));
    assert_eq!(admit(&providers, None, &long), Vec::<String>::new());
}
