//! Reading manifests from files, directories or standard input: multi-document YAML holding
//! TagProvider, ResourceTagBinding, Secret and Namespace objects (and, for the embedded cloud,
//! a CloudInventory).

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::api::{ResourceTagBinding, TagProvider};
use crate::emulator::Inventory;

/// Largest manifest file read (the apiserver's own request limit is 3 MiB).
pub const MAX_FILE_BYTES: u64 = 3 * 1024 * 1024;

/// Where a document came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    /// File path, or `-` for standard input.
    pub file: String,
    /// 1-based document number within the file.
    pub document: usize,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: document {}", self.file, self.document)
    }
}

/// A value and where it came from.
#[derive(Clone, Debug)]
pub struct Located<T> {
    /// Origin.
    pub source: Source,
    /// The object.
    pub value: T,
}

/// One specific problem in the input: which file, document, field, and rule.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {field}: {rule}")]
pub struct ManifestError {
    /// `file: document N`, or just the file.
    pub location: String,
    /// The field (`spec.tags["acs:env"]`), or `-` when the whole document or file is at fault.
    pub field: String,
    /// The rule that was broken.
    pub rule: String,
}

impl ManifestError {
    /// An error of a document.
    pub fn at(source: &Source, field: impl Into<String>, rule: impl Into<String>) -> Self {
        ManifestError {
            location: source.to_string(),
            field: field.into(),
            rule: rule.into(),
        }
    }

    fn of_file(file: &str, rule: impl Into<String>) -> Self {
        ManifestError {
            location: file.to_string(),
            field: "-".to_string(),
            rule: rule.into(),
        }
    }
}

/// Everything the files declare.
#[derive(Debug, Default)]
pub struct Manifests {
    /// TagProviders by name.
    pub providers: BTreeMap<String, Located<TagProvider>>,
    /// ResourceTagBindings, in file order.
    pub bindings: Vec<Located<ResourceTagBinding>>,
    /// Secrets by (namespace, name).
    pub secrets: BTreeMap<(String, String), Located<Secret>>,
    /// Namespace labels by name (for `allowedNamespaces`).
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// The embedded cloud's starting inventory, if the files carry one.
    pub inventory: Option<Located<Inventory>>,
}

const TAGBINDER_API: &str = "tagbinder.io/v1alpha1";
const INVENTORY_API: &str = "emulator.tagbinder.io/v1alpha1";

/// Reads every path. Errors are collected across all documents, so that one run reports
/// every problem.
pub fn load(paths: &[PathBuf]) -> Result<Manifests, Vec<ManifestError>> {
    let mut manifests = Manifests::default();
    let mut errors = Vec::new();
    for (file, text) in read_inputs(paths, &mut errors) {
        parse_file(&file, &text, &mut manifests, &mut errors);
    }
    if errors.is_empty() {
        Ok(manifests)
    } else {
        Err(errors)
    }
}

fn read_inputs(paths: &[PathBuf], errors: &mut Vec<ManifestError>) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut bytes = Vec::new();
            let read = std::io::stdin()
                .take(MAX_FILE_BYTES + 1)
                .read_to_end(&mut bytes);
            match read {
                Ok(_) => push_text("-", bytes, &mut files, errors),
                Err(error) => errors.push(ManifestError::of_file(
                    "-",
                    format!("cannot read standard input: {error}"),
                )),
            }
        } else if path.is_dir() {
            match manifest_files_in(path) {
                Ok(found) if found.is_empty() => errors.push(ManifestError::of_file(
                    &path.display().to_string(),
                    "directory holds no .yaml, .yml or .json files",
                )),
                Ok(found) => found
                    .iter()
                    .for_each(|file| read_file(file, &mut files, errors)),
                Err(error) => errors.push(ManifestError::of_file(
                    &path.display().to_string(),
                    format!("cannot list directory: {error}"),
                )),
            }
        } else {
            read_file(path, &mut files, errors);
        }
    }
    files
}

/// Manifest files under a directory, recursively, in name order.
fn manifest_files_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    entries.sort();
    for path in entries {
        if path.is_dir() {
            found.extend(manifest_files_in(&path)?);
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        ) {
            found.push(path);
        }
    }
    Ok(found)
}

fn read_file(path: &Path, files: &mut Vec<(String, String)>, errors: &mut Vec<ManifestError>) {
    let name = path.display().to_string();
    let size = match std::fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(error) => {
            return errors.push(ManifestError::of_file(
                &name,
                format!("cannot read: {error}"),
            ));
        }
    };
    if size > MAX_FILE_BYTES {
        return errors.push(ManifestError::of_file(
            &name,
            format!(
                "file is {} ({size} bytes); the limit is {} per file, as the Kubernetes API \
                 server's request limit",
                mib(size),
                mib(MAX_FILE_BYTES)
            ),
        ));
    }
    match std::fs::read(path) {
        Ok(bytes) => push_text(&name, bytes, files, errors),
        Err(error) => errors.push(ManifestError::of_file(
            &name,
            format!("cannot read: {error}"),
        )),
    }
}

/// A size in MiB with one decimal, for messages.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn push_text(
    name: &str,
    bytes: Vec<u8>,
    files: &mut Vec<(String, String)>,
    errors: &mut Vec<ManifestError>,
) {
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return errors.push(ManifestError::of_file(
            name,
            format!(
                "input is larger than {} ({MAX_FILE_BYTES} bytes), the limit per file",
                mib(MAX_FILE_BYTES)
            ),
        ));
    }
    match String::from_utf8(bytes) {
        Ok(text) => files.push((name.to_string(), text)),
        Err(error) => errors.push(ManifestError::of_file(
            name,
            format!(
                "not UTF-8 text (invalid byte at offset {})",
                error.utf8_error().valid_up_to()
            ),
        )),
    }
}

fn parse_file(file: &str, text: &str, manifests: &mut Manifests, errors: &mut Vec<ManifestError>) {
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let source = Source {
            file: file.to_string(),
            document: index + 1,
        };
        let value = match serde_yaml::Value::deserialize(document) {
            Ok(serde_yaml::Value::Null) => continue,
            Ok(value) => value,
            Err(error) => {
                errors.push(ManifestError::at(
                    &source,
                    "-",
                    format!("malformed YAML: {error}"),
                ));
                // NB: after a syntax error the YAML stream cannot be resynchronised.
                return;
            }
        };
        if let Err(error) = parse_document(&source, value, manifests) {
            errors.push(error);
        }
    }
}

fn parse_document(
    source: &Source,
    value: serde_yaml::Value,
    manifests: &mut Manifests,
) -> Result<(), ManifestError> {
    let api_version = string_field(&value, "apiVersion")
        .ok_or_else(|| ManifestError::at(source, "apiVersion", "required"))?;
    let kind = string_field(&value, "kind")
        .ok_or_else(|| ManifestError::at(source, "kind", "required"))?;
    match (api_version.as_str(), kind.as_str()) {
        (TAGBINDER_API, "TagProvider") => {
            let provider: TagProvider = typed(source, value, true)?;
            let name = required_name(source, &provider.metadata.name)?;
            if let Some(previous) = manifests.providers.get(&name) {
                return Err(ManifestError::at(
                    source,
                    "metadata.name",
                    format!(
                        "TagProvider {name:?} is also defined at {}",
                        previous.source
                    ),
                ));
            }
            // NB: the CRD's rules for the values placed in URLs (region, endpoint).
            if let Some(violation) = provider.spec.schema_violations().into_iter().next() {
                let (field, rule) = violation
                    .split_once(": ")
                    .unwrap_or(("spec", violation.as_str()));
                return Err(ManifestError::at(source, field, rule));
            }
            manifests.providers.insert(
                name,
                Located {
                    source: source.clone(),
                    value: provider,
                },
            );
        }
        (TAGBINDER_API, "ResourceTagBinding") => {
            let mut binding: ResourceTagBinding = typed(source, value, true)?;
            let name = required_name(source, &binding.metadata.name)?;
            let namespace = binding
                .metadata
                .namespace
                .get_or_insert_with(|| "default".to_string())
                .clone();
            let duplicate = manifests.bindings.iter().find(|b| {
                b.value.metadata.name.as_deref() == Some(name.as_str())
                    && b.value.metadata.namespace.as_deref() == Some(namespace.as_str())
            });
            if let Some(previous) = duplicate {
                return Err(ManifestError::at(
                    source,
                    "metadata.name",
                    format!(
                        "ResourceTagBinding {namespace}/{name} is also defined at {}",
                        previous.source
                    ),
                ));
            }
            if let Some(violation) = binding.spec.schema_violations().into_iter().next() {
                let (field, rule) = violation
                    .split_once(": ")
                    .unwrap_or(("spec", violation.as_str()));
                return Err(ManifestError::at(source, field, rule));
            }
            manifests.bindings.push(Located {
                source: source.clone(),
                value: binding,
            });
        }
        ("v1", "Secret") => {
            let secret: Secret = typed(source, value, false)?;
            let name = required_name(source, &secret.metadata.name)?;
            let namespace = secret
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_string());
            manifests.secrets.insert(
                (namespace, name),
                Located {
                    source: source.clone(),
                    value: secret,
                },
            );
        }
        ("v1", "Namespace") => {
            let namespace: Namespace = typed(source, value, false)?;
            let name = required_name(source, &namespace.metadata.name)?;
            manifests
                .namespaces
                .insert(name, namespace.metadata.labels.unwrap_or_default());
        }
        (INVENTORY_API, "CloudInventory") => {
            let inventory: Inventory = typed(source, value, true)?;
            if let Some(previous) = &manifests.inventory {
                return Err(ManifestError::at(
                    source,
                    "kind",
                    format!("a CloudInventory is also defined at {}", previous.source),
                ));
            }
            manifests.inventory = Some(Located {
                source: source.clone(),
                value: inventory,
            });
        }
        (_, "TagProvider" | "ResourceTagBinding") => {
            return Err(ManifestError::at(
                source,
                "apiVersion",
                format!("{api_version:?} is not served for {kind}; use {TAGBINDER_API:?}"),
            ));
        }
        (_, "CloudInventory") => {
            return Err(ManifestError::at(
                source,
                "apiVersion",
                format!("{api_version:?} is not served for CloudInventory; use {INVENTORY_API:?}"),
            ));
        }
        _ => {
            return Err(ManifestError::at(
                source,
                "kind",
                format!(
                    "{api_version}/{kind} is not a kind tagbinder reads (TagProvider, ResourceTagBinding, Secret, Namespace, CloudInventory)"
                ),
            ));
        }
    }
    Ok(())
}

fn string_field(value: &serde_yaml::Value, name: &str) -> Option<String> {
    value.get(name).and_then(|v| v.as_str()).map(str::to_string)
}

fn required_name(source: &Source, name: &Option<String>) -> Result<String, ManifestError> {
    match name.as_deref() {
        Some(name) if !name.is_empty() => Ok(name.to_string()),
        _ => Err(ManifestError::at(source, "metadata.name", "required")),
    }
}

/// Deserialises a document into its type; with `strict`, a field the type does not know is an
/// error (the apiserver would prune it silently, which hides typos).
fn typed<T: DeserializeOwned>(
    source: &Source,
    value: serde_yaml::Value,
    strict: bool,
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
        let rule = error.inner().to_string();
        let rule = if field.starts_with("data.") && !rule.starts_with("invalid type") {
            format!("values under data must be base64 ({rule}); put plain text under stringData")
        } else {
            rule
        };
        ManifestError::at(source, field, rule)
    })?;
    match unknown.into_iter().next() {
        Some(path) if strict => Err(ManifestError::at(source, path, "unknown field")),
        _ => Ok(parsed),
    }
}
