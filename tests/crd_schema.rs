//! The CRDs' own admission rules, evaluated without an API server: the OpenAPI schema with a
//! JSON Schema validator, `x-kubernetes-list-type: set` uniqueness, and the CEL rules
//! (`x-kubernetes-validations`, including the `oldSelf` transition rules of updates) with a
//! CEL interpreter. The schema-layer cases of the bad-input catalogue are refused here, as
//! `kubectl apply` would refuse them; and the CLI, which restates these rules, refuses each
//! of them too (`schema_violations`).

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

fn binding() -> Value {
    json!({
        "apiVersion": "tagbinder.io/v1alpha1",
        "kind": "ResourceTagBinding",
        "metadata": {"name": "web", "namespace": "team-web"},
        "spec": {
            "providerRef": {"name": "aliyun"},
            "resourceType": "apiGroup",
            "resourceIds": ["group-1", "group-2"],
            "tags": {"env": "prod"}
        }
    })
}

fn with(path: &[&str], value: Value) -> Value {
    let mut object = binding();
    let mut node = &mut object;
    for key in &path[..path.len() - 1] {
        node = &mut node[*key];
    }
    node[path[path.len() - 1]] = value;
    object
}

fn without(path: &[&str]) -> Value {
    let mut object = binding();
    let mut node = &mut object;
    for key in &path[..path.len() - 1] {
        node = &mut node[*key];
    }
    node.as_object_mut().unwrap().remove(path[path.len() - 1]);
    object
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
    let provider = json!({
        "apiVersion": "tagbinder.io/v1alpha1", "kind": "TagProvider",
        "metadata": {"name": "aliyun"},
        "spec": {"cloud": "alibaba", "region": "cn-hangzhou",
                 "credentials": {"secretRef": {"namespace": "ns", "name": "creds"}}}
    });
    assert_eq!(
        admit(&schema_of("TagProvider"), None, &provider),
        Vec::<String>::new()
    );
}

#[test]
fn the_schema_refuses_what_the_catalogue_says_it_refuses() {
    let schema = schema_of("ResourceTagBinding");
    let many_tags: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
    let many_ids: Vec<Value> = (0..1001).map(|i| json!(format!("g-{i}"))).collect();
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "an empty key",
            with(&["spec", "tags"], json!({"": "x"})),
            "must not be empty",
        ),
        (
            "a key over 128 characters",
            with(&["spec", "tags"], json!({"k".repeat(129): "x"})),
            "at most 128",
        ),
        (
            "a value over 128 characters",
            with(&["spec", "tags"], json!({"env": "v".repeat(129)})),
            "128",
        ),
        (
            "more than 64 tags",
            with(&["spec", "tags"], Value::Object(many_tags)),
            "64",
        ),
        (
            "a duplicate resource id",
            with(&["spec", "resourceIds"], json!(["group-1", "group-1"])),
            "Duplicate value",
        ),
        (
            "an empty resource id",
            with(&["spec", "resourceIds"], json!(["group-1", ""])),
            "/spec/resourceIds/1",
        ),
        (
            "no resource id",
            with(&["spec", "resourceIds"], json!([])),
            "/spec/resourceIds",
        ),
        (
            "more than 1000 resource ids",
            with(&["spec", "resourceIds"], Value::Array(many_ids)),
            "/spec/resourceIds",
        ),
        (
            "no resourceType",
            without(&["spec", "resourceType"]),
            "resourceType",
        ),
        (
            "no providerRef",
            without(&["spec", "providerRef"]),
            "providerRef",
        ),
        (
            "a deletionPolicy that does not exist",
            with(&["spec", "deletionPolicy"], json!("Remove")),
            "/spec/deletionPolicy",
        ),
        (
            "a malformed interval",
            with(&["spec", "interval"], json!("10 minutes")),
            "/spec/interval",
        ),
        (
            "a non-string tag value",
            with(&["spec", "tags"], json!({"env": 3})),
            "/spec/tags/env",
        ),
        (
            "an interval of zero",
            with(&["spec", "interval"], json!("0s")),
            "at least 1s",
        ),
        (
            "an interval under a second",
            with(&["spec", "interval"], json!("500ms")),
            "at least 1s",
        ),
        (
            "a carriage return in a tag value",
            with(&["spec", "tags"], json!({"env": "pr\rod"})),
            "/spec/tags/env",
        ),
        (
            "an escape sequence in a resource id",
            with(&["spec", "resourceIds"], json!(["group-1", "g\u{1b}[2K"])),
            "/spec/resourceIds/1",
        ),
    ];
    assert_refused_by_both(&schema, &cases);
}

/// Each case is refused by the schema (with a message holding the expected text) and by the
/// CLI's restated rules.
fn assert_refused_by_both(schema: &Value, cases: &[(&str, Value, &str)]) {
    let mut failures = Vec::new();
    for (name, object, expected) in cases {
        let refusals = admit(schema, None, object);
        if !refusals.iter().any(|r| r.contains(expected)) {
            failures.push(format!(
                "{name}: the schema answered {refusals:?}, wanted {expected:?}"
            ));
        }
        if cli_violations(object).is_empty() {
            failures.push(format!("{name}: the CLI's restated rules accept it"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

fn selector_binding(match_tags: Value) -> Value {
    let mut object = without(&["spec", "resourceIds"]);
    object["spec"]["resourceSelector"] = json!({"matchTags": match_tags});
    object
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

    let many: serde_json::Map<String, Value> =
        (0..21).map(|i| (format!("k{i}"), json!("v"))).collect();
    let mut both = valid.clone();
    both["spec"]["resourceIds"] = json!(["group-1"]);
    let mut over_cap = valid.clone();
    over_cap["spec"]["maxResources"] = json!(1001);
    let mut zero_cap = valid.clone();
    zero_cap["spec"]["maxResources"] = json!(0);
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "both resourceIds and a selector",
            both,
            "exactly one of resourceIds and resourceSelector",
        ),
        (
            "neither resourceIds nor a selector",
            without(&["spec", "resourceIds"]),
            "exactly one of resourceIds and resourceSelector",
        ),
        (
            "an empty matchTags",
            selector_binding(json!({})),
            "/spec/resourceSelector/matchTags",
        ),
        (
            "more than 20 matchTags",
            selector_binding(Value::Object(many)),
            "/spec/resourceSelector/matchTags",
        ),
        (
            "a declared key that is also a matchTags key",
            selector_binding(json!({"env": "prod"})),
            "select its own output",
        ),
        (
            "an empty matchTags key",
            selector_binding(json!({"": "web"})),
            "matchTags keys must not be empty",
        ),
        (
            "maxResources with resourceIds",
            with(&["spec", "maxResources"], json!(10)),
            "maxResources applies to resourceSelector only",
        ),
        ("maxResources over 1000", over_cap, "/spec/maxResources"),
        ("maxResources of zero", zero_cap, "/spec/maxResources"),
    ];
    assert_refused_by_both(&schema, &cases);
}

#[test]
fn provider_ref_and_resource_type_are_immutable_on_update() {
    let schema = schema_of("ResourceTagBinding");
    let old = binding();
    let moved = with(&["spec", "providerRef"], json!({"name": "other"}));
    assert!(
        admit(&schema, Some(&old), &moved)
            .iter()
            .any(|r| r.contains("providerRef is immutable")),
    );
    let retyped = with(&["spec", "resourceType"], json!("plugin"));
    assert!(
        admit(&schema, Some(&old), &retyped)
            .iter()
            .any(|r| r.contains("resourceType is immutable")),
    );
    let retagged = with(&["spec", "tags"], json!({"env": "dev", "team": "web"}));
    assert_eq!(admit(&schema, Some(&old), &retagged), Vec::<String>::new());
    assert_eq!(
        admit(&schema, None, &moved),
        Vec::<String>::new(),
        "creating is fine"
    );
}
