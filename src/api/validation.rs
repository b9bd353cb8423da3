//! The CRD schema's rules (OpenAPI constraints and CEL), restated in Rust for the hosts that
//! have no apiserver in front of them (the CLI). Keep in step with the attributes on the
//! types; `rules_match_the_crd_schema` checks the limits that both state.

use std::collections::BTreeSet;

use super::{MAX_DECLARED_TAGS, MAX_RESOURCE_IDS, ResourceTagBindingSpec};

/// Longest key and value the CRD schema accepts.
pub const MAX_TAG_CHARS: usize = 128;
/// Longest resource id the CRD schema accepts.
pub const MAX_RESOURCE_ID_CHARS: usize = 256;

impl ResourceTagBindingSpec {
    /// What the apiserver would refuse at `kubectl apply` time, as `field: rule` lines.
    pub fn schema_violations(&self) -> Vec<String> {
        let mut violations = Vec::new();
        if self.provider_ref.name.is_empty() {
            violations.push("spec.providerRef.name: must not be empty".to_string());
        }
        if self.resource_type.is_empty() {
            violations.push("spec.resourceType: must not be empty".to_string());
        }
        self.check_resource_ids(&mut violations);
        self.check_tags(&mut violations);
        if humantime::parse_duration(&self.interval).is_err()
            || !interval_matches_schema(&self.interval)
        {
            violations.push(format!(
                "spec.interval: {:?} is not a duration like 30s, 10m or 1h30m",
                self.interval
            ));
        }
        violations
    }

    fn check_resource_ids(&self, violations: &mut Vec<String>) {
        if self.resource_ids.is_empty() {
            violations.push("spec.resourceIds: must list at least one resource id".to_string());
        }
        if self.resource_ids.len() > MAX_RESOURCE_IDS {
            violations.push(format!(
                "spec.resourceIds: {} ids listed; the limit is {MAX_RESOURCE_IDS}",
                self.resource_ids.len()
            ));
        }
        let mut seen = BTreeSet::new();
        for (index, id) in self.resource_ids.iter().enumerate() {
            if id.is_empty() {
                violations.push(format!("spec.resourceIds[{index}]: must not be empty"));
            } else if id.chars().count() > MAX_RESOURCE_ID_CHARS {
                violations.push(format!(
                    "spec.resourceIds[{index}]: longer than {MAX_RESOURCE_ID_CHARS} characters"
                ));
            }
            if !seen.insert(id) {
                violations.push(format!("spec.resourceIds[{index}]: duplicate id {id:?}"));
            }
        }
    }

    fn check_tags(&self, violations: &mut Vec<String>) {
        if self.tags.len() > MAX_DECLARED_TAGS {
            violations.push(format!(
                "spec.tags: {} tags declared; the limit is {MAX_DECLARED_TAGS}",
                self.tags.len()
            ));
        }
        for (key, value) in &self.tags {
            if key.is_empty() {
                violations.push("spec.tags[\"\"]: tag keys must not be empty".to_string());
            }
            let key_chars = key.chars().count();
            if key_chars > MAX_TAG_CHARS {
                violations.push(format!(
                    "spec.tags[{key:?}]: key is {key_chars} characters; the limit is {MAX_TAG_CHARS}"
                ));
            }
            let value_chars = value.chars().count();
            if value_chars > MAX_TAG_CHARS {
                violations.push(format!(
                    "spec.tags[{key:?}]: value is {value_chars} characters; the limit is {MAX_TAG_CHARS}"
                ));
            }
        }
    }
}

/// The CRD's pattern for `spec.interval`: `^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`.
fn interval_matches_schema(interval: &str) -> bool {
    let mut rest = interval;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let number = &rest[..digits];
        let valid_number = !number.is_empty()
            && !number.starts_with('.')
            && !number.ends_with('.')
            && number.matches('.').count() <= 1;
        if !valid_number {
            return false;
        }
        rest = &rest[digits..];
        let unit = ["ms", "s", "m", "h"]
            .into_iter()
            .find(|unit| rest.starts_with(unit));
        match unit {
            Some(unit) => rest = &rest[unit.len()..],
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use kube::CustomResourceExt;

    use super::*;
    use crate::api::{DeletionPolicy, ProviderRef, ResourceTagBinding};

    fn spec() -> ResourceTagBindingSpec {
        ResourceTagBindingSpec {
            provider_ref: ProviderRef { name: "p".into() },
            resource_type: "apiGroup".into(),
            resource_ids: vec!["a".into(), "b".into()],
            tags: BTreeMap::from([("env".to_string(), "prod".to_string())]),
            deletion_policy: DeletionPolicy::Delete,
            interval: "10m".into(),
            suspend: false,
        }
    }

    #[test]
    fn a_valid_spec_has_no_violations() {
        assert!(spec().schema_violations().is_empty());
    }

    #[test]
    fn reports_duplicate_ids_empty_keys_and_long_values() {
        let mut spec = spec();
        spec.resource_ids.push("a".into());
        spec.tags.insert(String::new(), "x".into());
        spec.tags.insert("long".into(), "v".repeat(129));
        let violations = spec.schema_violations().join("\n");
        assert!(
            violations.contains("spec.resourceIds[2]: duplicate id \"a\""),
            "{violations}"
        );
        assert!(
            violations.contains("tag keys must not be empty"),
            "{violations}"
        );
        assert!(
            violations.contains("value is 129 characters; the limit is 128"),
            "{violations}"
        );
    }

    #[test]
    fn counts_characters_not_bytes() {
        let mut spec = spec();
        spec.tags.insert("环".repeat(128), "境".repeat(128));
        assert!(spec.schema_violations().is_empty());
    }

    #[test]
    fn interval_follows_the_crd_pattern() {
        for good in ["10m", "1h30m", "30s", "1.5h", "500ms"] {
            assert!(interval_matches_schema(good), "{good}");
        }
        for bad in ["", "10", "m", "1.h", "10 m", "1d", "-1m"] {
            assert!(!interval_matches_schema(bad), "{bad}");
        }
    }

    #[test]
    fn rules_match_the_crd_schema() {
        let crd = serde_json::to_string(&ResourceTagBinding::crd()).unwrap();
        assert!(crd.contains(&format!("\"maxProperties\":{MAX_DECLARED_TAGS}")));
        assert!(crd.contains(&format!("\"maxItems\":{MAX_RESOURCE_IDS}")));
        assert!(crd.contains(&format!("\"maxLength\":{MAX_RESOURCE_ID_CHARS}")));
        assert!(crd.contains(&format!("k.size() <= {MAX_TAG_CHARS}")));
        assert!(crd.contains(&format!("self[k].size() <= {MAX_TAG_CHARS}")));
    }
}
