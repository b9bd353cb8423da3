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
