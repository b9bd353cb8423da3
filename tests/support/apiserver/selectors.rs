//! `labelSelector` (equality and set-based) and `fieldSelector` (equality on any dotted path,
//! such as `metadata.name` and `metadata.namespace`) of list and watch requests.

use serde_json::Value;

use super::errors::ApiError;

#[derive(Clone, Debug)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label or field selector; empty matches everything.
#[derive(Clone, Debug, Default)]
pub struct Selector {
    labels: Vec<Requirement>,
    fields: Vec<Requirement>,
}

impl Selector {
    /// Parses both query parameters.
    pub fn parse(labels: Option<&str>, fields: Option<&str>) -> Result<Self, ApiError> {
        let labels = match labels {
            Some(text) => split(text)
                .into_iter()
                .map(label_requirement)
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        let fields = match fields {
            Some(text) => split(text)
                .into_iter()
                .map(field_requirement)
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        Ok(Selector { labels, fields })
    }

    /// True when the object matches every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        let label = |key: &str| labels.get(key).and_then(Value::as_str).map(str::to_string);
        let field = |path: &str| {
            path.split('.')
                .try_fold(object, |value, key| value.get(key))
                .map(|value| match value {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                })
        };
        self.labels.iter().all(|r| satisfied(r, &label))
            && self.fields.iter().all(|r| satisfied(r, &field))
    }
}

fn satisfied(requirement: &Requirement, value_of: &dyn Fn(&str) -> Option<String>) -> bool {
    match requirement {
        Requirement::Equals(key, value) => value_of(key).as_deref() == Some(value),
        Requirement::NotEquals(key, value) => value_of(key).as_deref() != Some(value),
        Requirement::In(key, values) => value_of(key).is_some_and(|v| values.contains(&v)),
        Requirement::NotIn(key, values) => !value_of(key).is_some_and(|v| values.contains(&v)),
        Requirement::Exists(key) => value_of(key).is_some(),
        Requirement::NotExists(key) => value_of(key).is_none(),
    }
}

/// Splits on commas outside parentheses.
fn split(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(text[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(text[start..].trim());
    parts.into_iter().filter(|p| !p.is_empty()).collect()
}

fn label_requirement(text: &str) -> Result<Requirement, ApiError> {
    if let Some(requirement) = equality(text) {
        return Ok(requirement);
    }
    let words: Vec<&str> = text.splitn(3, ' ').map(str::trim).collect();
    match words.as_slice() {
        [key, op @ ("in" | "notin"), values] => {
            let values = values
                .trim()
                .strip_prefix('(')
                .and_then(|v| v.strip_suffix(')'))
                .ok_or_else(|| bad("label", text))?
                .split(',')
                .map(|v| v.trim().to_string())
                .collect();
            Ok(if *op == "in" {
                Requirement::In(key.to_string(), values)
            } else {
                Requirement::NotIn(key.to_string(), values)
            })
        }
        [key] if key.starts_with('!') => Ok(Requirement::NotExists(key[1..].to_string())),
        [key] if !key.is_empty() => Ok(Requirement::Exists(key.to_string())),
        _ => Err(bad("label", text)),
    }
}

fn field_requirement(text: &str) -> Result<Requirement, ApiError> {
    equality(text).ok_or_else(|| bad("field", text))
}

fn equality(text: &str) -> Option<Requirement> {
    if let Some((key, value)) = text.split_once("!=") {
        return Some(Requirement::NotEquals(
            key.trim().into(),
            value.trim().into(),
        ));
    }
    let (key, value) = text.split_once("==").or_else(|| text.split_once('='))?;
    Some(Requirement::Equals(key.trim().into(), value.trim().into()))
}

fn bad(kind: &str, text: &str) -> ApiError {
    ApiError::bad_request(format!(
        "unable to parse requirement of the {kind} selector: {text:?}"
    ))
}
