//! Checks of tagbinder's own kinds against their CRDs, for the CLI, which has no apiserver:
//! fields the structural schema does not know (as the apiserver would prune them, hiding a
//! typo), and names the provider references.

use std::sync::LazyLock;

use kube::CustomResourceExt;
use serde_json::Value;

use super::manifests::{ManifestError, Source};
use crate::api::{ResourceTagBinding, TagProvider, dns_label_violation, dns_subdomain_violation};

/// One of tagbinder's kinds.
#[derive(Clone, Copy, Debug)]
pub(super) enum Kind {
    TagProvider,
    ResourceTagBinding,
    TagPolicy,
}

fn open_api_schema(crd: impl serde::Serialize) -> Value {
    // NB: a CRD that kube-derive built serialises to JSON (plain data, string keys).
    let crd = serde_json::to_value(crd).unwrap_or_default();
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone()
}

static PROVIDER_SCHEMA: LazyLock<Value> = LazyLock::new(|| open_api_schema(TagProvider::crd()));
static BINDING_SCHEMA: LazyLock<Value> =
    LazyLock::new(|| open_api_schema(ResourceTagBinding::crd()));
static POLICY_SCHEMA: LazyLock<Value> =
    LazyLock::new(|| open_api_schema(crate::api::TagPolicy::crd()));

/// The first field of `value` that the kind's schema does not declare. serde's own check
/// cannot see into `#[serde(flatten)]` parts (the binding's `status`), this one can.
pub(super) fn check_unknown_fields(
    source: &Source,
    value: &serde_yaml::Value,
    kind: Kind,
) -> Result<(), ManifestError> {
    let schema = match kind {
        Kind::TagProvider => &*PROVIDER_SCHEMA,
        Kind::ResourceTagBinding => &*BINDING_SCHEMA,
        Kind::TagPolicy => &*POLICY_SCHEMA,
    };
    match unknown_field(value, schema, "") {
        Some((path, known)) => {
            let rule = unknown_field_rule(&path, &known);
            Err(ManifestError::at(source, path, rule))
        }
        None => Ok(()),
    }
}

/// "unknown field", with the closest field the schema knows there, if one is close, and the
/// fields it knows.
pub(super) fn unknown_field_rule(path: &str, known: &[String]) -> String {
    let name = path.rsplit('.').next().unwrap_or(path);
    let mut rule = "unknown field".to_string();
    if let Some(closest) = closest(name, known.iter().map(String::as_str)) {
        rule.push_str(&format!(" (did you mean {closest:?}?)"));
    }
    if !known.is_empty() && known.len() <= 12 {
        rule.push_str(&format!("; fields here: {}", known.join(", ")));
    }
    rule
}

/// The candidate nearest to `given` by Jaro-Winkler similarity, if it is close enough to be
/// a typo of it.
pub(super) fn closest<'a>(
    given: &str,
    candidates: impl Iterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .map(|candidate| {
            (
                strsim::jaro_winkler(&given.to_lowercase(), &candidate.to_lowercase()),
                candidate,
            )
        })
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

/// The first field of `value` the schema does not know, and the fields it knows there.
fn unknown_field(
    value: &serde_yaml::Value,
    schema: &Value,
    path: &str,
) -> Option<(String, Vec<String>)> {
    if schema["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true) {
        return None;
    }
    match value {
        serde_yaml::Value::Mapping(map) => {
            let properties = schema["properties"].as_object();
            let additional = schema.get("additionalProperties").filter(|s| s.is_object());
            // NB: an object schema with neither (metadata) is the apiserver's to check.
            if properties.is_none() && additional.is_none() {
                return None;
            }
            for (key, child) in map {
                let key = match key.as_str() {
                    Some(key) => key.to_string(),
                    None => format!("{key:?}"),
                };
                // NB: the object's header and metadata, which the CRD schema omits: checked by
                // the caller and by serde.
                if path.is_empty() && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                let field = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let child_schema = properties.and_then(|p| p.get(&key)).or(additional);
                match child_schema {
                    Some(child_schema) => {
                        if let Some(found) = unknown_field(child, child_schema, &field) {
                            return Some(found);
                        }
                    }
                    None => {
                        let known = properties
                            .map(|p| p.keys().cloned().collect())
                            .unwrap_or_default();
                        return Some((field, known));
                    }
                }
            }
            None
        }
        serde_yaml::Value::Sequence(items) => {
            let item_schema = schema.get("items")?;
            items.iter().enumerate().find_map(|(index, item)| {
                unknown_field(item, item_schema, &format!("{path}[{index}]"))
            })
        }
        serde_yaml::Value::Tagged(tagged) => unknown_field(&tagged.value, schema, path),
        _ => None,
    }
}

/// The Secret a provider references is named as Kubernetes names it.
pub(super) fn check_provider(source: &Source, provider: &TagProvider) -> Result<(), ManifestError> {
    if let Some(credentials) = &provider.spec.credentials {
        let secret = &credentials.secret_ref;
        if let Some(rule) = dns_label_violation(&secret.namespace) {
            let field = "spec.credentials.secretRef.namespace";
            return Err(ManifestError::at(source, field, rule));
        }
        if let Some(rule) = dns_subdomain_violation(&secret.name) {
            let field = "spec.credentials.secretRef.name";
            return Err(ManifestError::at(source, field, rule));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first_unknown(yaml: &str) -> Option<String> {
        let value: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        unknown_field(&value, &BINDING_SCHEMA, "").map(|(path, _)| path)
    }

    #[test]
    fn finds_unknown_fields_under_a_flattened_status_and_in_maps_and_lists() {
        let base = "apiVersion: tagbinder.io/v1alpha1\nkind: ResourceTagBinding\n\
                    metadata: {name: a, labels: {x: y}}\n\
                    spec: {providerRef: {name: p}, resourceType: t, resourceIds: [a], tags: {k: v}}\n";
        assert_eq!(first_unknown(base), None);
        let status = format!("{base}status: {{appliedTags: {{k: v}}, x: 1}}\n");
        assert_eq!(first_unknown(&status).as_deref(), Some("status.x"));
        let nested = format!("{base}status: {{failures: [{{resourceId: a, why: b}}]}}\n");
        assert_eq!(
            first_unknown(&nested).as_deref(),
            Some("status.failures[0].why")
        );
        let counts = format!("{base}status: {{resources: {{total: 1, extra: 2}}}}\n");
        assert_eq!(
            first_unknown(&counts).as_deref(),
            Some("status.resources.extra")
        );
    }
}
