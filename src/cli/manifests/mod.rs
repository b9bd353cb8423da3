//! Reading manifests from files, directories or standard input: multi-document YAML holding
//! TagProvider, ResourceTagBinding, Secret and Namespace objects (and, for the embedded cloud,
//! a CloudInventory).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use serde::Deserialize;

use super::schema;
use crate::api::{
    ResourceTagBinding, TagPolicy, TagProvider, dns_label_violation, dns_subdomain_violation,
};
use crate::emulator::Inventory;

mod decode;

use decode::{Mode, Name, required_name, schema_error, string_field, typed, yaml11_error};

pub use crate::input::MAX_FILE_BYTES;

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

    /// An error of a whole file.
    pub(super) fn of_file(file: &str, rule: impl Into<String>) -> Self {
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
    /// TagPolicies by name.
    pub policies: BTreeMap<String, Located<TagPolicy>>,
    /// Secrets by (namespace, name).
    pub secrets: BTreeMap<(String, String), Located<Secret>>,
    /// Namespace labels by name (for `allowedNamespaces` and `tagsFrom`).
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// Namespace annotations by name (for `tagsFrom`), for every namespace of `namespaces`.
    pub namespace_annotations: BTreeMap<String, BTreeMap<String, String>>,
    /// The cluster's name (`--cluster-name`), for `tagsFrom[].valueFrom.clusterName`.
    pub cluster_name: Option<String>,
    /// The embedded cloud's starting inventory, if the files carry one.
    pub inventory: Option<Located<Inventory>>,
    /// Documents of kinds tagbinder does not read, skipped (a note each); refused instead
    /// under `--strict`.
    pub skipped: Vec<String>,
}

/// The kinds tagbinder reads.
const KINDS: &str = "TagProvider, ResourceTagBinding, TagPolicy, Secret, Namespace, CloudInventory";

const TAGBINDER_API: &str = "tagbinder.io/v1alpha1";
const INVENTORY_API: &str = "emulator.tagbinder.io/v1alpha1";

/// Reads every path. Errors are collected across all documents, so that one run reports
/// every problem.
/// Documents of other kinds (a `kustomize build` output's ConfigMaps, say) are skipped with a
/// note, or refused when `strict`.
pub fn load(paths: &[PathBuf], strict: bool) -> Result<Manifests, Vec<ManifestError>> {
    let mut manifests = Manifests::default();
    let mut errors = Vec::new();
    let mut bindings = HashMap::new();
    for (file, text) in super::files::read_inputs(paths, &mut errors) {
        let mut reading = Reading {
            manifests: &mut manifests,
            bindings: &mut bindings,
            strict,
        };
        parse_file(&file, &text, &mut reading, &mut errors);
    }
    if errors.is_empty() {
        Ok(manifests)
    } else {
        Err(errors)
    }
}

/// Bindings read so far, by (namespace, name): their index in `Manifests::bindings`.
type BindingIndex = HashMap<(String, String), usize>;

/// What a load has read so far, and how it reads.
struct Reading<'a> {
    manifests: &'a mut Manifests,
    bindings: &'a mut BindingIndex,
    /// Refuse kinds tagbinder does not read, instead of skipping them.
    strict: bool,
}

fn parse_file(file: &str, text: &str, reading: &mut Reading<'_>, errors: &mut Vec<ManifestError>) {
    // NB: bounds first: serde_yaml would expand every alias, and its parser takes quadratic
    // time on deep flow nesting, before any of its own limits apply.
    let limits = crate::input::YamlLimits::for_file(MAX_FILE_BYTES);
    if let Err(error) = crate::input::check_yaml(text, limits) {
        let source = Source {
            file: file.to_string(),
            document: error.document,
        };
        return errors.push(ManifestError::at(&source, "-", error.rule));
    }
    let ambiguous = crate::yaml11::ambiguous_scalars(text);
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let source = Source {
            file: file.to_string(),
            document: index + 1,
        };
        let (oversized, ambiguous): (Vec<_>, Vec<_>) = ambiguous
            .iter()
            .filter(|a| a.document == index + 1)
            .partition(|a| a.is_oversized());
        // NB: before serde_yaml builds the document: its error of a number beyond 64 bits
        // would quote the digits, wherever they are.
        if let Some(error) = oversized.iter().find_map(|a| yaml11_error(&source, a)) {
            errors.push(error);
            continue;
        }
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
        let skipped = reading.manifests.skipped.len();
        // NB: after the document's own checks (an unknown field is the clearer error); a
        // skipped document is not tagbinder's to judge.
        let checked = parse_document(&source, value, reading).and_then(|()| {
            if reading.manifests.skipped.len() > skipped {
                return Ok(());
            }
            match ambiguous.iter().find_map(|a| yaml11_error(&source, a)) {
                Some(error) => Err(error),
                None => Ok(()),
            }
        });
        if let Err(error) = checked {
            errors.push(error);
        }
    }
}

fn parse_document(
    source: &Source,
    value: serde_yaml::Value,
    reading: &mut Reading<'_>,
) -> Result<(), ManifestError> {
    let (manifests, bindings) = (&mut *reading.manifests, &mut *reading.bindings);
    let api_version = string_field(&value, "apiVersion")
        .ok_or_else(|| ManifestError::at(source, "apiVersion", "required"))?;
    let kind = string_field(&value, "kind")
        .ok_or_else(|| ManifestError::at(source, "kind", "required"))?;
    match (api_version.as_str(), kind.as_str()) {
        (TAGBINDER_API, "TagProvider") => {
            schema::check_unknown_fields(source, &value, schema::Kind::TagProvider)?;
            let provider: TagProvider = typed(source, value, Mode::Strict)?;
            let name = required_name(source, &provider.metadata.name, Name::Subdomain)?;
            schema::check_provider(source, &provider)?;
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
            if let Some(error) = schema_error(source, provider.spec.schema_violations()) {
                return Err(error);
            }
            manifests.providers.insert(
                name,
                Located {
                    source: source.clone(),
                    value: provider,
                },
            );
        }
        (TAGBINDER_API, "TagPolicy") => {
            schema::check_unknown_fields(source, &value, schema::Kind::TagPolicy)?;
            let policy: TagPolicy = typed(source, value, Mode::Strict)?;
            let name = required_name(source, &policy.metadata.name, Name::Subdomain)?;
            if let Some(previous) = manifests.policies.get(&name) {
                return Err(ManifestError::at(
                    source,
                    "metadata.name",
                    format!("TagPolicy {name:?} is also defined at {}", previous.source),
                ));
            }
            // NB: a pattern RE2 would refuse is an error of the files, as the controller
            // reports it Stalled: the policy would govern nothing.
            if let Err(invalid) = crate::policy::compile(&policy) {
                return Err(ManifestError::at(source, invalid.field, invalid.message));
            }
            manifests.policies.insert(
                name,
                Located {
                    source: source.clone(),
                    value: policy,
                },
            );
        }
        (TAGBINDER_API, "ResourceTagBinding") => {
            schema::check_unknown_fields(source, &value, schema::Kind::ResourceTagBinding)?;
            // NB: `tags:` with nothing after it is null: kubectl sends no value and the
            // apiserver refuses the binding; read as no tags, it would prune all it owns.
            if value
                .get("spec")
                .and_then(|spec| spec.get("tags"))
                .is_some_and(serde_yaml::Value::is_null)
            {
                return Err(ManifestError::at(
                    source,
                    "spec.tags",
                    "is null (`tags:` with nothing after it), which the API server refuses \
                     (Required value); list the tags, or write `tags: {}` to declare none and \
                     remove the tags this binding applied",
                ));
            }
            let mut binding: ResourceTagBinding = typed(source, value, Mode::Strict)?;
            let name = required_name(source, &binding.metadata.name, Name::Subdomain)?;
            let namespace = binding
                .metadata
                .namespace
                .get_or_insert_with(|| "default".to_string())
                .clone();
            required_name(source, &binding.metadata.namespace, Name::Label).map_err(|e| {
                ManifestError {
                    field: "metadata.namespace".into(),
                    ..e
                }
            })?;
            let key = (namespace, name);
            if let Some(previous) = bindings.get(&key) {
                let (namespace, name) = key;
                return Err(ManifestError::at(
                    source,
                    "metadata.name",
                    format!(
                        "ResourceTagBinding {namespace}/{name} is also defined at {}",
                        manifests.bindings[*previous].source
                    ),
                ));
            }
            if let Some(error) = schema_error(source, binding.spec.schema_violations()) {
                return Err(error);
            }
            if let Some(rule) = dns_subdomain_violation(&binding.spec.provider_ref.name) {
                return Err(ManifestError::at(source, "spec.providerRef.name", rule));
            }
            bindings.insert(key, manifests.bindings.len());
            manifests.bindings.push(Located {
                source: source.clone(),
                value: binding,
            });
        }
        ("v1", "Secret") => {
            let secret: Secret = typed(source, value, Mode::Secret)?;
            let name = required_name(source, &secret.metadata.name, Name::Subdomain)?;
            let namespace = secret
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".to_string());
            if let Some(rule) = dns_label_violation(&namespace) {
                return Err(ManifestError::at(source, "metadata.namespace", rule));
            }
            let key = (namespace, name);
            if let Some(previous) = manifests.secrets.get(&key) {
                let (namespace, name) = key;
                return Err(ManifestError::at(
                    source,
                    "metadata.name",
                    format!(
                        "Secret {namespace}/{name} is also defined at {}",
                        previous.source
                    ),
                ));
            }
            manifests.secrets.insert(
                key,
                Located {
                    source: source.clone(),
                    value: secret,
                },
            );
        }
        ("v1", "Namespace") => {
            let namespace: Namespace = typed(source, value, Mode::Lenient)?;
            let name = required_name(source, &namespace.metadata.name, Name::Label)?;
            manifests.namespace_annotations.insert(
                name.clone(),
                namespace.metadata.annotations.unwrap_or_default(),
            );
            manifests
                .namespaces
                .insert(name, namespace.metadata.labels.unwrap_or_default());
        }
        (INVENTORY_API, "CloudInventory") => {
            let inventory: Inventory = typed(source, value, Mode::Strict)?;
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
        (_, "TagProvider" | "ResourceTagBinding" | "TagPolicy") => {
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
        // NB: an unknown kind of tagbinder's own API groups is a typo, never another tool's.
        _ if reading.strict
            || api_version.split('/').next().is_some_and(|group| {
                group == "tagbinder.io" || group == "emulator.tagbinder.io"
            }) =>
        {
            return Err(ManifestError::at(
                source,
                "kind",
                format!(
                    "{api_version}/{kind} is not a kind tagbinder reads ({KINDS}); only \
                     other API groups' kinds are skipped, and only without --strict"
                ),
            ));
        }
        _ => reading.manifests.skipped.push(format!(
            "{source}: skipped {api_version}/{kind}: not a kind tagbinder reads ({KINDS}); \
             --strict refuses it"
        )),
    }
    Ok(())
}
