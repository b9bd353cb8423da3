//! The provider's tag rules on declared tags: what only the provider knows, reported as
//! `InvalidSpec` before any cloud call.

use super::SpecViolation;
use crate::tags::{Limits, Tags};

/// Checks declared tags against the provider's rules; empty when valid.
///
/// Lengths count characters (Unicode scalar values), not bytes. Reserved prefixes and
/// forbidden substrings compare case-insensitively (`ACS:env` is refused like `acs:env`).
/// Violations come in a fixed order: the tag count first, then each key in key order (its
/// key rules, then its value rules).
pub fn validate(desired: &Tags, limits: &Limits) -> Vec<SpecViolation> {
    validate_named(desired, limits, |key| format!("spec.tags[{key:?}]"))
}

/// As [`validate`], each key's violations naming the field `field(key)` (a rendered value
/// names its source, see [`crate::render::Rendered::field_of`]).
pub fn validate_named(
    desired: &Tags,
    limits: &Limits,
    field: impl Fn(&str) -> String,
) -> Vec<SpecViolation> {
    let mut violations = Vec::new();
    if desired.len() > limits.tags_per_resource {
        violations.push(SpecViolation {
            field: "spec.tags".to_string(),
            rule: format!(
                "{} tags declared; the limit is {}",
                desired.len(),
                limits.tags_per_resource
            ),
        });
    }
    for (key, value) in desired {
        let field = field(key);
        let rules = key_rules(key, limits)
            .into_iter()
            .chain(value_rules(value, limits));
        violations.extend(rules.map(|rule| SpecViolation {
            field: field.clone(),
            rule,
        }));
    }
    violations
}

/// True for a key the cloud reserves for itself (`acs:`, `aliyun`, ...): never written, never
/// pruned.
pub(super) fn is_reserved_key(key: &str, limits: &Limits) -> bool {
    limits.reserved_key_prefix(key).is_some()
}

fn key_rules(key: &str, limits: &Limits) -> Vec<String> {
    let mut rules = Vec::new();
    if key.is_empty() {
        rules.push("key is empty".to_string());
    }
    // NB: rules of every cloud (none accepts them), kept here with the provider's rules so
    // that both hosts report them as InvalidSpec.
    if let Some(c) = crate::tags::invisible_char(key) {
        rules.push(format!(
            "key {key:?} holds the invisible character {}, which no cloud accepts in a key",
            crate::tags::code_point(c)
        ));
    }
    if key.trim() != key {
        rules.push(format!(
            "key {key:?} has leading or trailing spaces, which no cloud keeps as written"
        ));
    }
    if let Some(rule) = length_rule("key", key, limits.key_max_chars) {
        rules.push(rule);
    }
    if let Some(prefix) = limits.reserved_key_prefix(key) {
        rules.push(format!(
            "key {key:?} starts with the reserved prefix {prefix:?}"
        ));
    }
    rules.extend(
        forbidden_substrings(key, limits)
            .map(|forbidden| format!("key {key:?} contains the forbidden {forbidden:?}")),
    );
    rules
}

fn value_rules(value: &str, limits: &Limits) -> Vec<String> {
    let mut rules = Vec::new();
    let chars = value.chars().count();
    if chars < limits.value_min_chars {
        rules.push(format!(
            "value is {chars} characters; this provider needs at least {}",
            limits.value_min_chars
        ));
    }
    if let Some(rule) = length_rule("value", value, limits.value_max_chars) {
        rules.push(rule);
    }
    if let Some(prefix) = limits.reserved_value_prefix(value) {
        rules.push(format!(
            "value {value:?} starts with the reserved prefix {prefix:?}"
        ));
    }
    rules.extend(
        forbidden_substrings(value, limits)
            .map(|forbidden| format!("value {value:?} contains the forbidden {forbidden:?}")),
    );
    rules
}

fn length_rule(what: &str, text: &str, max_chars: usize) -> Option<String> {
    let chars = text.chars().count();
    (chars > max_chars).then(|| format!("{what} is {chars} characters; the limit is {max_chars}"))
}

fn forbidden_substrings<'a>(text: &str, limits: &'a Limits) -> impl Iterator<Item = &'a str> {
    let text = text.to_lowercase();
    limits
        .forbidden_substrings
        .iter()
        .filter(move |forbidden| text.contains(&forbidden.to_lowercase()))
        .map(String::as_str)
}
