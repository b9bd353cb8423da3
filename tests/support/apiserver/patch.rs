//! The four patch types. JSON patch follows the apiserver (evanphx/json-patch): a `test` of a
//! missing path against `null` passes, a failed `test` is 422 Invalid. Strategic merge is a
//! JSON merge patch here (no list merge keys, no `$patch` directives). Server-side apply is
//! approximated per field manager: the fields a manager applied before and now leaves out are
//! removed, then the applied object is merged in; no managedFields, no conflicts between
//! managers.

use json_patch::PatchOperation;
use serde_json::{Map, Value};

use super::errors::ApiError;

/// The patch types, by `Content-Type`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

impl PatchKind {
    /// The type of a `Content-Type` header value.
    pub fn of(content_type: &str) -> Result<Self, ApiError> {
        let media = content_type.split(';').next().unwrap_or_default().trim();
        match media {
            "application/json-patch+json" => Ok(PatchKind::Json),
            "application/merge-patch+json" => Ok(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Ok(PatchKind::Strategic),
            "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(PatchKind::Apply),
            other => Err(ApiError::unsupported_media_type(other)),
        }
    }

    /// The body as JSON (an apply patch is YAML, of which JSON is a subset).
    pub fn parse_body(&self, body: &[u8]) -> Result<Value, ApiError> {
        let parsed = match self {
            PatchKind::Apply => serde_yaml::from_slice::<Value>(body).map_err(|e| e.to_string()),
            _ => serde_json::from_slice::<Value>(body).map_err(|e| e.to_string()),
        };
        parsed.map_err(|e| ApiError::bad_request(format!("invalid patch body: {e}")))
    }
}

/// Applies a JSON patch (RFC 6902) to a copy of `doc`.
pub fn json_patch(doc: &Value, patch: &Value) -> Result<Value, ApiError> {
    let operations: Vec<PatchOperation> = serde_json::from_value(patch.clone())
        .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
    let mut result = doc.clone();
    for operation in operations {
        if let PatchOperation::Test(test) = &operation {
            let actual = result.pointer(test.path.as_str()).unwrap_or(&Value::Null);
            if *actual != test.value {
                return Err(ApiError::invalid(format!(
                    "the server rejected our request due to an error in our request: testing value {} failed",
                    test.path
                )));
            }
            continue;
        }
        json_patch::patch(&mut result, std::slice::from_ref(&operation))
            .map_err(|e| ApiError::invalid(format!("the JSON patch failed: {e}")))?;
    }
    Ok(result)
}

/// Applies a JSON merge patch (RFC 7386) to a copy of `doc`.
pub fn merge_patch(doc: &Value, patch: &Value) -> Value {
    let mut result = doc.clone();
    json_patch::merge(&mut result, patch);
    result
}

/// Server-side apply of `applied` by a manager whose previous applied object was `previous`.
pub fn apply(doc: &Value, previous: Option<&Value>, applied: &Value) -> Value {
    let mut result = doc.clone();
    if let Some(previous) = previous {
        remove_dropped_fields(&mut result, previous, applied);
    }
    json_patch::merge(&mut result, applied);
    result
}

/// Removes from `doc` the fields that `previous` set and `applied` no longer does.
fn remove_dropped_fields(doc: &mut Value, previous: &Value, applied: &Value) {
    let (Value::Object(doc), Value::Object(previous)) = (doc, previous) else {
        return;
    };
    let empty = Map::new();
    let applied = applied.as_object().unwrap_or(&empty);
    for (key, before) in previous {
        match applied.get(key) {
            None => {
                doc.remove(key);
            }
            Some(now) if before.is_object() && now.is_object() => {
                if let Some(child) = doc.get_mut(key) {
                    remove_dropped_fields(child, before, now);
                }
            }
            Some(_) => {}
        }
    }
}
