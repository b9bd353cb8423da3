//! The CRD schema's rules (OpenAPI constraints and CEL), restated in Rust for the hosts that
//! have no apiserver in front of them (the CLI). Keep in step with the attributes on the
//! types; `rules_match_the_crd_schema` checks the limits that both state.

use std::collections::BTreeSet;

use super::{
    MAX_DECLARED_TAGS, MAX_MATCH_TAGS, MAX_RESOURCE_IDS, MAX_SELECTED_RESOURCES,
    ResourceTagBindingSpec,
};

/// Longest key and value the CRD schema accepts.
pub const MAX_TAG_CHARS: usize = 128;
/// Longest resource id the CRD schema accepts.
pub const MAX_RESOURCE_ID_CHARS: usize = 256;
/// Shortest `spec.interval`: a shorter one would re-read the cloud in a hot loop.
pub const MIN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// The CRD's pattern for values and resource ids: no control characters. Neither cloud's
/// documents allow them (`spec/`, "Limits and tag rules"), and printed raw they
/// could rewrite a terminal's output.
pub const NO_CONTROL_CHARS: &str = r"^[^\x00-\x1F\x7F-\x9F]*$";

/// The first control character of `text` (C0, DEL or C1), if any.
pub fn control_char(text: &str) -> Option<char> {
    text.chars().find(|c| c.is_control())
}

/// Why `value` is not a DNS-1123 label (a namespace's name), as Kubernetes says it.
pub fn dns_label_violation(value: &str) -> Option<String> {
    let valid = !value.is_empty()
        && value.len() <= 63
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    (!valid).then(|| {
        format!(
            "{value:?} is not a valid name: a lowercase RFC 1123 label must be 1 to 63 \
             characters of a-z, 0-9 and '-', starting and ending with a letter or digit, \
             as Kubernetes requires"
        )
    })
}

/// Why `value` is not a DNS-1123 subdomain (an object's name), as Kubernetes says it.
pub fn dns_subdomain_violation(value: &str) -> Option<String> {
    let valid = !value.is_empty()
        && value.len() <= 253
        && value.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    (!valid).then(|| {
        format!(
            "{value:?} is not a valid name: a lowercase RFC 1123 subdomain must be 1 to 253 \
             characters of a-z, 0-9, '-' and '.', starting and ending with a letter or digit, \
             as Kubernetes requires"
        )
    })
}

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
        match (&self.resource_selector, self.resource_ids.is_empty()) {
            (Some(_), false) => violations.push(
                "spec: set exactly one of resourceIds and resourceSelector, not both".to_string(),
            ),
            (None, true) => violations.push(
                "spec: set exactly one of resourceIds and resourceSelector (neither is set)"
                    .to_string(),
            ),
            (None, false) => self.check_resource_ids(&mut violations),
            (Some(_), true) => self.check_selector(&mut violations),
        }
        if self.max_resources.is_some() && self.resource_selector.is_none() {
            violations.push("spec.maxResources: applies to resourceSelector only".to_string());
        }
        self.check_tags(&mut violations);
        self.check_tags_from(&mut violations);
        match humantime::parse_duration(&self.interval) {
            Ok(interval) if interval_matches_schema(&self.interval) => {
                if interval < MIN_INTERVAL {
                    violations.push(format!(
                        "spec.interval: {:?} is shorter than {}s, the shortest interval",
                        self.interval,
                        MIN_INTERVAL.as_secs()
                    ));
                }
            }
            _ => violations.push(format!(
                "spec.interval: {:?} is not a duration like 30s, 10m or 1h30m",
                self.interval
            )),
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
            if let Some(c) = control_char(id) {
                violations.push(format!(
                    "spec.resourceIds[{index}]: {id:?} holds the control character {c:?}, \
                     which resource ids cannot hold"
                ));
            }
            if !seen.insert(id) {
                violations.push(format!("spec.resourceIds[{index}]: duplicate id {id:?}"));
            }
        }
    }

    fn check_selector(&self, violations: &mut Vec<String>) {
        let Some(selector) = &self.resource_selector else {
            return;
        };
        let match_tags = &selector.match_tags;
        if match_tags.is_empty() {
            violations.push(
                "spec.resourceSelector.matchTags: must hold at least one tag (an empty selector \
                 would bind every resource of the type)"
                    .to_string(),
            );
        }
        if match_tags.len() > MAX_MATCH_TAGS {
            violations.push(format!(
                "spec.resourceSelector.matchTags: {} tags; the limit is {MAX_MATCH_TAGS}",
                match_tags.len()
            ));
        }
        for (key, value) in match_tags {
            let field = format!("spec.resourceSelector.matchTags[{key:?}]");
            if key.is_empty() {
                violations.push(format!("{field}: keys must not be empty"));
            }
            if self.tags.contains_key(key) {
                violations.push(format!(
                    "{field}: {key:?} is also a declared tag key (spec.tags); a binding may not \
                     select by a key it writes, it would select its own output"
                ));
            }
            for (what, text) in [("key", key), ("value", value)] {
                let chars = text.chars().count();
                if chars > MAX_TAG_CHARS {
                    violations.push(format!(
                        "{field}: the {what} is {chars} characters; the limit is {MAX_TAG_CHARS}"
                    ));
                }
                if let Some(c) = control_char(text) {
                    violations.push(format!(
                        "{field}: the {what} holds the control character {c:?}; tags cannot \
                         hold control characters"
                    ));
                }
            }
        }
        if let Some(max) = self.max_resources
            && !(1..=MAX_SELECTED_RESOURCES).contains(&max)
        {
            violations.push(format!(
                "spec.maxResources: {max} is outside 1..={MAX_SELECTED_RESOURCES}"
            ));
        }
    }

    fn check_tags_from(&self, violations: &mut Vec<String>) {
        if self.tags_from.len() > MAX_DECLARED_TAGS {
            violations.push(format!(
                "spec.tagsFrom: {} entries; the limit is {MAX_DECLARED_TAGS}",
                self.tags_from.len()
            ));
        }
        let mut seen = BTreeSet::new();
        for (index, entry) in self.tags_from.iter().enumerate() {
            let field = format!("spec.tagsFrom[{index}]");
            let key = &entry.key;
            if key.is_empty() {
                violations.push(format!("{field}.key: must not be empty"));
            }
            let chars = key.chars().count();
            if chars > MAX_TAG_CHARS {
                violations.push(format!(
                    "{field}.key: {chars} characters; the limit is {MAX_TAG_CHARS}"
                ));
            }
            if let Some(c) = control_char(key) {
                violations.push(format!(
                    "{field}.key: {key:?} holds the control character {c:?}; tags cannot hold \
                     control characters"
                ));
            }
            if !seen.insert(key) {
                violations.push(format!(
                    "{field}.key: duplicate key {key:?} (each key appears once in tagsFrom)"
                ));
            }
            if let Some(selector) = &self.resource_selector
                && selector.match_tags.contains_key(key)
            {
                violations.push(format!(
                    "{field}.key: {key:?} is also a resourceSelector.matchTags key; a binding \
                     may not select by a key it writes, it would select its own output"
                ));
            }
            let from = &entry.value_from;
            let sources = usize::from(from.namespace_label.is_some())
                + usize::from(from.namespace_annotation.is_some())
                + usize::from(from.field_ref.is_some())
                + usize::from(from.cluster_name.is_some());
            if sources != 1 {
                violations.push(format!(
                    "{field}.valueFrom: set exactly one of namespaceLabel, namespaceAnnotation, \
                     fieldRef and clusterName ({sources} set)"
                ));
            }
            for (what, name) in [
                ("namespaceLabel", &from.namespace_label),
                ("namespaceAnnotation", &from.namespace_annotation),
            ] {
                if name.as_deref() == Some("") {
                    violations.push(format!("{field}.valueFrom.{what}: must not be empty"));
                }
            }
            if let Some(field_ref) = &from.field_ref
                && field_ref.field().is_none()
            {
                violations.push(format!(
                    "{field}.valueFrom.fieldRef.fieldPath: {:?} is not one of metadata.name, \
                     metadata.namespace, metadata.labels['KEY'], metadata.annotations['KEY']",
                    field_ref.field_path
                ));
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
            for (what, text) in [("key", key), ("value", value)] {
                if let Some(c) = control_char(text) {
                    violations.push(format!(
                        "spec.tags[{key:?}]: the {what} holds the control character {c:?}; \
                         tags cannot hold control characters"
                    ));
                }
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
            tags_from: Vec::new(),
            deletion_policy: DeletionPolicy::Delete,
            interval: "10m".into(),
            suspend: false,
            mode: Default::default(),
            resource_selector: None,
            max_resources: None,
        }
    }

    fn selector_spec(match_tags: &[(&str, &str)]) -> ResourceTagBindingSpec {
        ResourceTagBindingSpec {
            resource_ids: Vec::new(),
            resource_selector: Some(crate::api::ResourceSelector {
                match_tags: match_tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            }),
            ..spec()
        }
    }

    #[test]
    fn a_selector_is_the_alternative_to_resource_ids() {
        assert!(
            selector_spec(&[("team", "web")])
                .schema_violations()
                .is_empty()
        );
        let mut both = selector_spec(&[("team", "web")]);
        both.resource_ids = vec!["a".into()];
        assert_eq!(
            both.schema_violations(),
            ["spec: set exactly one of resourceIds and resourceSelector, not both"]
        );
        let mut neither = spec();
        neither.resource_ids.clear();
        assert_eq!(
            neither.schema_violations(),
            ["spec: set exactly one of resourceIds and resourceSelector (neither is set)"]
        );
        let mut capped = spec();
        capped.max_resources = Some(5);
        assert_eq!(
            capped.schema_violations(),
            ["spec.maxResources: applies to resourceSelector only"]
        );
    }

    #[test]
    fn a_selector_may_not_select_by_its_own_keys_nor_be_empty() {
        let own = selector_spec(&[("env", "prod")])
            .schema_violations()
            .join("\n");
        assert!(
            own.contains(
                "spec.resourceSelector.matchTags[\"env\"]: \"env\" is also a declared tag key"
            ),
            "{own}"
        );
        let empty = selector_spec(&[]).schema_violations().join("\n");
        assert!(empty.contains("must hold at least one tag"), "{empty}");
        let many: Vec<(String, String)> = (0..21)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let many = selector_spec(&many).schema_violations().join("\n");
        assert!(many.contains("21 tags; the limit is 20"), "{many}");
        let mut capped = selector_spec(&[("team", "web")]);
        capped.max_resources = Some(0);
        assert!(
            capped
                .schema_violations()
                .join("")
                .contains("0 is outside 1..=1000"),
            "{:?}",
            capped.schema_violations()
        );
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
    fn refuses_a_zero_interval_and_control_characters() {
        let mut spec = spec();
        spec.interval = "0s".into();
        spec.tags.insert("k\u{1b}".into(), "v".into());
        spec.tags.insert("env".into(), "pr\rod".into());
        spec.resource_ids.push("c\n".into());
        let violations = spec.schema_violations().join("\n");
        assert!(violations.contains("shorter than 1s"), "{violations}");
        assert!(
            violations.contains("spec.tags[\"k\\u{1b}\"]: the key holds"),
            "{violations}"
        );
        assert!(
            violations.contains("spec.tags[\"env\"]: the value holds"),
            "{violations}"
        );
        assert!(violations.contains("spec.resourceIds[2]"), "{violations}");
        spec.interval = "500ms".into();
        assert!(
            spec.schema_violations()
                .join("")
                .contains("shorter than 1s")
        );
    }

    #[test]
    fn names_follow_kubernetes_rules() {
        for good in ["a", "team-web", "a1", &"x".repeat(63)] {
            assert_eq!(dns_label_violation(good), None, "{good}");
        }
        for bad in [
            "",
            "a/b",
            "Team",
            "we b",
            "-a",
            "a-",
            "a.b",
            &"x".repeat(64),
        ] {
            assert!(dns_label_violation(bad).is_some(), "{bad}");
        }
        for good in ["a.b", "web-api.v1", "x"] {
            assert_eq!(dns_subdomain_violation(good), None, "{good}");
        }
        for bad in ["", "a/b", "A", "a..b", ".a", "a b", &"x".repeat(254)] {
            assert!(dns_subdomain_violation(bad).is_some(), "{bad}");
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
        let pattern = serde_json::to_string(NO_CONTROL_CHARS).unwrap();
        assert_eq!(crd.matches(&format!("\"pattern\":{pattern}")).count(), 4);
        assert!(crd.contains(&format!("\"maxProperties\":{MAX_MATCH_TAGS}")));
        assert!(crd.contains(&format!("\"maximum\":{MAX_SELECTED_RESOURCES}")));
        assert!(crd.contains(&format!(
            "duration(self) >= duration('{}s')",
            MIN_INTERVAL.as_secs()
        )));
    }
}
