//! The CLI's ownership record (`--state`, default `.tagbinder/state.json`): what the
//! controller keeps in `status.appliedTags`, per binding, keyed by provider + namespace/name.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::api::{AppliedRecord, DeletionPolicy};

/// Format version of the state file.
const STATE_VERSION: u32 = 1;

/// The whole state file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StateFile {
    /// Format version.
    pub version: u32,
    /// Bindings by `provider/namespace/name`.
    pub bindings: BTreeMap<String, BindingState>,
}

/// What one binding applied, and enough about it to prune after it left the files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BindingState {
    /// Provider name.
    pub provider: String,
    /// Namespace of the binding.
    pub namespace: String,
    /// Name of the binding.
    pub name: String,
    /// Resource type of the binding.
    pub resource_type: String,
    /// Deletion policy last declared.
    pub deletion_policy: DeletionPolicy,
    /// The ownership record.
    #[serde(flatten)]
    pub applied: AppliedRecord,
}

/// The key of a binding in the state file.
pub fn state_key(provider: &str, namespace: &str, name: &str) -> String {
    format!("{provider}/{namespace}/{name}")
}

impl StateFile {
    /// Reads the state file; a missing file is an empty state.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(StateFile {
                    version: STATE_VERSION,
                    ..StateFile::default()
                });
            }
            Err(error) => {
                return Err(format!(
                    "{}: cannot read the state file: {error}",
                    path.display()
                ));
            }
        };
        let state: StateFile = serde_json::from_str(&text)
            .map_err(|error| format!("{}: not a tagbinder state file: {error}", path.display()))?;
        if state.version != STATE_VERSION {
            return Err(format!(
                "{}: state file version {} is not supported (expected {STATE_VERSION})",
                path.display(),
                state.version
            ));
        }
        Ok(state)
    }

    /// Writes the state file atomically (a temporary file in the same directory, renamed).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let fail = |error: &dyn std::fmt::Display| {
            format!("{}: cannot write the state file: {error}", path.display())
        };
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
        let mut file = tempfile::NamedTempFile::new_in(dir).map_err(|e| fail(&e))?;
        let json = serde_json::to_string_pretty(self).map_err(|e| fail(&e))?;
        file.write_all(json.as_bytes()).map_err(|e| fail(&e))?;
        file.write_all(b"\n").map_err(|e| fail(&e))?;
        file.as_file().sync_all().map_err(|e| fail(&e))?;
        file.persist(path).map_err(|e| fail(&e.error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tags::Tags;

    #[test]
    fn saves_and_loads_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/state.json");
        let mut state = StateFile::load(&path).unwrap();
        assert!(state.bindings.is_empty());
        state.bindings.insert(
            state_key("p", "ns", "b"),
            BindingState {
                provider: "p".into(),
                namespace: "ns".into(),
                name: "b".into(),
                resource_type: "apiGroup".into(),
                deletion_policy: DeletionPolicy::Delete,
                applied: AppliedRecord {
                    applied_tags: Tags::from([("env".into(), "prod".into())]),
                    applied_resource_ids: vec!["r1".into()],
                    ..AppliedRecord::default()
                },
            },
        );
        state.save(&path).unwrap();
        assert_eq!(StateFile::load(&path).unwrap(), state);
    }

    #[test]
    fn refuses_a_file_that_is_not_a_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "{\"hello\": 1}").unwrap();
        let error = StateFile::load(&path).unwrap_err();
        assert!(error.contains("not a tagbinder state file"), "{error}");
    }
}
