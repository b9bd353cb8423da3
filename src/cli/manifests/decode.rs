//! Decoding one document of the files into its kind's type: the name it must have, the
//! schema's rules, unknown fields (refused under `--strict`), YAML 1.1 scalars that mean
//! something else, and messages that name the document's file, line and field.

use serde::de::DeserializeOwned;

use crate::api::{dns_label_violation, dns_subdomain_violation};

use super::{ManifestError, Source};

/// The error of a plain scalar that kubectl reads otherwise ([`crate::yaml11`]), in a kind
/// that kubectl applies (not an emulator's CloudInventory, unless no reader can hold it). The
/// values of a Secret's `data` and `stringData` and of an inventory's accounts are not shown,
/// whatever they look like.
pub(super) fn yaml11_error(
    source: &Source,
    scalar: &crate::yaml11::Ambiguous,
) -> Option<ManifestError> {
    let kind = scalar.kind.as_deref();
    if kind == Some("CloudInventory") && !scalar.is_oversized() {
        return None;
    }
    let under = |map: &str| scalar.field == map || scalar.field.starts_with(&format!("{map}."));
    let secret = match kind {
        Some("Secret") => under("data") || under("stringData"),
        Some("CloudInventory") => under("accounts"),
        _ => false,
    };
    let field = if scalar.field.is_empty() {
        "-"
    } else {
        &scalar.field
    };
    Some(ManifestError::at(source, field, scalar.rule(secret)))
}

pub(super) fn string_field(value: &serde_yaml::Value, name: &str) -> Option<String> {
    value.get(name).and_then(|v| v.as_str()).map(str::to_string)
}

/// Which Kubernetes name rule applies.
#[derive(Clone, Copy)]
pub(super) enum Name {
    /// Namespaces: a DNS-1123 label.
    Label,
    /// Object names: a DNS-1123 subdomain.
    Subdomain,
}

/// The name, if present and valid by Kubernetes' rules: the state file keys bindings by
/// `namespace/name`, which is unambiguous only because neither can hold a `/`.
pub(super) fn required_name(
    source: &Source,
    name: &Option<String>,
    rule: Name,
) -> Result<String, ManifestError> {
    let name = match name.as_deref() {
        Some(name) if !name.is_empty() => name,
        _ => return Err(ManifestError::at(source, "metadata.name", "required")),
    };
    let violation = match rule {
        Name::Label => dns_label_violation(name),
        Name::Subdomain => dns_subdomain_violation(name),
    };
    match violation {
        Some(rule) => Err(ManifestError::at(source, "metadata.name", rule)),
        None => Ok(name.to_string()),
    }
}

/// Every rule of the CRD's schema a document breaks, in one error: the first names its field,
/// the others follow (`also FIELD: RULE`), so that one run reports every limit.
pub(super) fn schema_error(source: &Source, violations: Vec<String>) -> Option<ManifestError> {
    let mut violations = violations.into_iter();
    let first = violations.next()?;
    let (field, rule) = first.split_once(": ").unwrap_or(("spec", first.as_str()));
    let mut rule = rule.to_string();
    for other in violations {
        rule.push_str("; also ");
        rule.push_str(&other);
    }
    Some(ManifestError::at(source, field, rule))
}

/// How strictly a document is read.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// A field the type does not know is an error (the apiserver would prune it silently,
    /// which hides typos).
    Strict,
    /// Unknown fields are ignored (built-in kinds, whose schema is the apiserver's).
    Lenient,
    /// A Secret: lenient, and a type error under `data` or `stringData` never shows the value.
    Secret,
}

/// Deserialises a document into its type.
pub(super) fn typed<T: DeserializeOwned>(
    source: &Source,
    value: serde_yaml::Value,
    mode: Mode,
) -> Result<T, ManifestError> {
    let mut unknown = Vec::new();
    let mut on_ignored = |path: serde_ignored::Path<'_>| {
        let path = path.to_string();
        // NB: kube-derive's types read apiVersion and kind themselves (checked above) and
        // hand them to serde as ignored.
        if path != "apiVersion" && path != "kind" {
            unknown.push(path);
        }
    };
    let ignoring = serde_ignored::Deserializer::new(value, &mut on_ignored);
    // NB: serde_path_to_error names the field a type error is in (`spec.deletionPolicy`).
    let parsed: Result<T, _> = serde_path_to_error::deserialize(ignoring);
    let parsed = parsed.map_err(|error| {
        let field = match error.path().to_string() {
            path if path == "." || path.is_empty() => "-".to_string(),
            path => path,
        };
        let under = |map: &str| field == map || field.starts_with(&format!("{map}."));
        // NB: serde's messages quote the value (`invalid type: integer `918273...``); under a
        // Secret's data the value is a credential, so the message is ours.
        let rule = if mode == Mode::Secret && under("data") {
            "values under data must be base64 text; put plain text under stringData \
             (the value is not shown)"
                .to_string()
        } else if mode == Mode::Secret && under("stringData") {
            "values under stringData must be strings; quote the value (the value is not shown)"
                .to_string()
        } else if error.inner().to_string().contains("expected a string") {
            // NB: as the apiserver refuses a number or a boolean where its schema says string.
            format!("{}; quote it", plain(&error.inner().to_string()))
        } else {
            plain(&error.inner().to_string())
        };
        ManifestError::at(source, field, rule)
    })?;
    match unknown.into_iter().next() {
        Some(path) if mode == Mode::Strict => Err(ManifestError::at(source, path, "unknown field")),
        _ => Ok(parsed),
    }
}

/// serde's message in the words of a YAML file's author: no `unit value`, `variant`,
/// `sequence` or `map`; an unknown enum value lists the accepted ones and the closest.
pub(super) fn plain(message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown variant `")
        && let Some((given, expected)) = rest.split_once("`, expected ")
    {
        let accepted: Vec<&str> = expected
            .trim_start_matches("one of ")
            .split(['`', ','])
            .map(str::trim)
            .filter(|part| !part.is_empty() && *part != "or")
            .collect();
        let mut rule = format!(
            "unknown value {given:?}: expected one of {}",
            accepted.join(", ")
        );
        if let Some(closest) = super::schema::closest(given, accepted.iter().copied()) {
            rule.push_str(&format!(" (did you mean {closest:?}?)"));
        }
        return rule;
    }
    message
        .replace("invalid type: unit value", "no value (null)")
        .replace("invalid type: ", "wrong type: ")
        .replace("a sequence", "a list")
        .replace("sequence", "list")
        .replace(", expected map", ", expected a map of key: value")
        .replace("invalid value: ", "invalid value ")
}
