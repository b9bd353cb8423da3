//! The schema-layer cases of the bad-input catalogue (`tests/bad_input.rs`): bindings that the
//! CRD's schema or one of its CEL rules refuses. `tests/crd_schema.rs` evaluates them with a
//! JSON Schema validator and a CEL interpreter; `tests/kube_real.rs` sends them to a real
//! kube-apiserver with `kubectl apply`. Each case says what each of them answers.

use serde_json::{Value, json};

/// One binding the CRD refuses.
pub struct Refused {
    pub name: &'static str,
    pub object: Value,
    /// Text in the refusal of the schema evaluated without an API server (`crd_schema.rs`).
    pub interpreted: &'static str,
    /// Text in kube-apiserver's refusal, as `kubectl apply` prints it.
    pub apiserver: &'static str,
}

fn refused(
    name: &'static str,
    object: Value,
    interpreted: &'static str,
    apiserver: &'static str,
) -> Refused {
    Refused {
        name,
        object,
        interpreted,
        apiserver,
    }
}

/// A valid binding; cases edit it.
pub fn binding() -> Value {
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

/// The binding with the field at `path` set to `value`.
pub fn with(path: &[&str], value: Value) -> Value {
    let mut object = binding();
    let mut node = &mut object;
    for key in &path[..path.len() - 1] {
        node = &mut node[*key];
    }
    node[path[path.len() - 1]] = value;
    object
}

/// The binding without the field at `path`.
pub fn without(path: &[&str]) -> Value {
    let mut object = binding();
    let mut node = &mut object;
    for key in &path[..path.len() - 1] {
        node = &mut node[*key];
    }
    node.as_object_mut()
        .expect("an object")
        .remove(path[path.len() - 1]);
    object
}

/// The binding with a selector instead of resource ids.
pub fn selector_binding(match_tags: Value) -> Value {
    let mut object = without(&["spec", "resourceIds"]);
    object["spec"]["resourceSelector"] = json!({"matchTags": match_tags});
    object
}

/// A TagProvider the schema admits.
pub fn provider() -> Value {
    json!({
        "apiVersion": "tagbinder.io/v1alpha1", "kind": "TagProvider",
        "metadata": {"name": "aliyun"},
        "spec": {"cloud": "alibaba", "region": "cn-hangzhou",
                 "credentials": {"secretRef": {"namespace": "ns", "name": "creds"}}}
    })
}

/// Bindings with resource ids that break the schema's rules.
pub fn binding_cases() -> Vec<Refused> {
    let many_tags: serde_json::Map<String, Value> =
        (0..65).map(|i| (format!("k{i}"), json!("v"))).collect();
    let many_ids: Vec<Value> = (0..1001).map(|i| json!(format!("g-{i}"))).collect();
    vec![
        refused(
            "an empty key",
            with(&["spec", "tags"], json!({"": "x"})),
            "must not be empty",
            "spec.tags: Invalid value: tag keys must not be empty",
        ),
        refused(
            "a key over 128 characters",
            with(&["spec", "tags"], json!({"k".repeat(129): "x"})),
            "at most 128",
            "spec.tags: Invalid value: tag keys must be at most 128 characters",
        ),
        refused(
            "a value over 128 characters",
            with(&["spec", "tags"], json!({"env": "v".repeat(129)})),
            "128",
            "spec.tags.env: Too long: may not be more than 128 bytes",
        ),
        refused(
            "more than 64 tags",
            with(&["spec", "tags"], Value::Object(many_tags)),
            "64",
            "spec.tags: Too many: 65: must have at most 64 items",
        ),
        refused(
            "a duplicate resource id",
            with(&["spec", "resourceIds"], json!(["group-1", "group-1"])),
            "Duplicate value",
            "spec.resourceIds[1]: Duplicate value: \"group-1\"",
        ),
        refused(
            "an empty resource id",
            with(&["spec", "resourceIds"], json!(["group-1", ""])),
            "/spec/resourceIds/1",
            "spec.resourceIds[1] in body should be at least 1 chars long",
        ),
        refused(
            "no resource id",
            with(&["spec", "resourceIds"], json!([])),
            "/spec/resourceIds",
            "spec.resourceIds in body should have at least 1 items",
        ),
        refused(
            "more than 1000 resource ids",
            with(&["spec", "resourceIds"], Value::Array(many_ids)),
            "/spec/resourceIds",
            "spec.resourceIds: Too many: 1001: must have at most 1000 items",
        ),
        refused(
            "no resourceType",
            without(&["spec", "resourceType"]),
            "resourceType",
            "spec.resourceType: Required value",
        ),
        refused(
            "no providerRef",
            without(&["spec", "providerRef"]),
            "providerRef",
            "spec.providerRef: Required value",
        ),
        refused(
            "a deletionPolicy that does not exist",
            with(&["spec", "deletionPolicy"], json!("Remove")),
            "/spec/deletionPolicy",
            "spec.deletionPolicy: Unsupported value: \"Remove\": supported values: \"Delete\", \"Orphan\"",
        ),
        refused(
            "a malformed interval",
            with(&["spec", "interval"], json!("10 minutes")),
            "/spec/interval",
            "spec.interval: Invalid value: \"10 minutes\": spec.interval in body should match",
        ),
        refused(
            "a non-string tag value",
            with(&["spec", "tags"], json!({"env": 3})),
            "/spec/tags/env",
            "spec.tags.env in body must be of type string",
        ),
        refused(
            "an interval of zero",
            with(&["spec", "interval"], json!("0s")),
            "at least 1s",
            "spec.interval: Invalid value: \"0s\": interval must be at least 1s",
        ),
        refused(
            "an interval under a second",
            with(&["spec", "interval"], json!("500ms")),
            "at least 1s",
            "spec.interval: Invalid value: \"500ms\": interval must be at least 1s",
        ),
        refused(
            "a carriage return in a tag value",
            with(&["spec", "tags"], json!({"env": "pr\rod"})),
            "/spec/tags/env",
            "spec.tags.env in body should match",
        ),
        refused(
            "an escape sequence in a key",
            with(&["spec", "tags"], json!({"env\u{1b}[2K": "prod"})),
            "tag keys must not hold control characters",
            "spec.tags: Invalid value: tag keys must not hold control characters",
        ),
        refused(
            "an escape sequence in a resource id",
            with(&["spec", "resourceIds"], json!(["group-1", "g\u{1b}[2K"])),
            "/spec/resourceIds/1",
            "spec.resourceIds[1] in body should match",
        ),
    ]
}

/// Selector bindings, and the rules that tie selectors and resource ids together.
pub fn selector_cases() -> Vec<Refused> {
    let valid = selector_binding(json!({"team": "web"}));
    let many: serde_json::Map<String, Value> =
        (0..21).map(|i| (format!("k{i}"), json!("v"))).collect();
    let mut both = valid.clone();
    both["spec"]["resourceIds"] = json!(["group-1"]);
    let mut over_cap = valid.clone();
    over_cap["spec"]["maxResources"] = json!(1001);
    let mut zero_cap = valid;
    zero_cap["spec"]["maxResources"] = json!(0);
    vec![
        refused(
            "both resourceIds and a selector",
            both,
            "exactly one of resourceIds and resourceSelector",
            "spec: Invalid value: set exactly one of resourceIds and resourceSelector",
        ),
        refused(
            "neither resourceIds nor a selector",
            without(&["spec", "resourceIds"]),
            "exactly one of resourceIds and resourceSelector",
            "spec: Invalid value: set exactly one of resourceIds and resourceSelector",
        ),
        refused(
            "an empty matchTags",
            selector_binding(json!({})),
            "/spec/resourceSelector/matchTags",
            "spec.resourceSelector.matchTags in body should have at least 1 properties",
        ),
        refused(
            "more than 20 matchTags",
            selector_binding(Value::Object(many)),
            "/spec/resourceSelector/matchTags",
            "spec.resourceSelector.matchTags: Too many: 21: must have at most 20 items",
        ),
        refused(
            "a declared key that is also a matchTags key",
            selector_binding(json!({"env": "prod"})),
            "select its own output",
            "spec: Invalid value: a declared tag key may not also be a resourceSelector.matchTags key",
        ),
        refused(
            "an empty matchTags key",
            selector_binding(json!({"": "web"})),
            "matchTags keys must not be empty",
            "spec.resourceSelector.matchTags: Invalid value: matchTags keys must not be empty",
        ),
        refused(
            "a control character in a matchTags key",
            selector_binding(json!({"te\u{7}am": "web"})),
            "matchTags keys must not hold control characters",
            "spec.resourceSelector.matchTags: Invalid value: matchTags keys must not hold control characters",
        ),
        refused(
            "maxResources with resourceIds",
            with(&["spec", "maxResources"], json!(10)),
            "maxResources applies to resourceSelector only",
            "spec: Invalid value: maxResources applies to resourceSelector only",
        ),
        refused(
            "maxResources over 1000",
            over_cap,
            "/spec/maxResources",
            "spec.maxResources in body should be less than or equal to 1000",
        ),
        refused(
            "maxResources of zero",
            zero_cap,
            "/spec/maxResources",
            "spec.maxResources in body should be greater than or equal to 1",
        ),
    ]
}

/// Updates that the transition rules refuse: (what, the new object, the message). The old
/// object is [`binding`].
pub fn refused_updates() -> Vec<(&'static str, Value, &'static str)> {
    vec![
        (
            "moving providerRef",
            with(&["spec", "providerRef"], json!({"name": "other"})),
            "providerRef is immutable",
        ),
        (
            "changing resourceType",
            with(&["spec", "resourceType"], json!("plugin")),
            "resourceType is immutable",
        ),
    ]
}
