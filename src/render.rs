//! Tags from Kubernetes (issue 23): a binding's declared tags are its `spec.tags`, its
//! `spec.tagsFrom` rendered from its namespace, its own metadata and the cluster's name, and
//! its provider's `spec.defaultTags`, by precedence (`tags` > `tagsFrom` > `defaultTags`).
//!
//! Pure: both hosts gather what it reads (the CLI from the files and `--cluster-name`, the
//! controller from its caches and `run --cluster-name`) and call [`render`], so that the same
//! manifests declare the same tags in both. The rendered tags are the declared tags of the
//! pass: the ownership rules (conflicts, pruning, the crash-window intent) apply to them as
//! to `spec.tags`.

use std::collections::BTreeMap;
use std::fmt;

use crate::api::{BindingField, ResourceTagBindingSpec, TagFrom};
use crate::plan::SpecViolation;
use crate::tags::{Limits, Tags};

/// Labels and annotations of a namespace, as a host knows them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceMeta {
    /// `metadata.labels`.
    pub labels: BTreeMap<String, String>,
    /// `metadata.annotations`.
    pub annotations: BTreeMap<String, String>,
}

/// The binding's own metadata that `fieldRef` reads.
#[derive(Clone, Copy, Debug)]
pub struct BindingMeta<'a> {
    /// `metadata.namespace`.
    pub namespace: &'a str,
    /// `metadata.name`.
    pub name: &'a str,
    /// `metadata.labels`.
    pub labels: Option<&'a BTreeMap<String, String>>,
    /// `metadata.annotations`.
    pub annotations: Option<&'a BTreeMap<String, String>>,
}

/// Everything a rendering reads.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// The binding's spec.
    pub spec: &'a ResourceTagBindingSpec,
    /// The binding's metadata.
    pub binding: BindingMeta<'a>,
    /// Its namespace's metadata; `None` when the host does not know the namespace (the CLI:
    /// no Namespace document for it in the files).
    pub namespace: Option<&'a NamespaceMeta>,
    /// The provider's `spec.defaultTags`.
    pub defaults: &'a Tags,
    /// The cluster's name (`--cluster-name`), if given.
    pub cluster_name: Option<&'a str>,
}

/// Where a declared value comes from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// `spec.tags`.
    Literal,
    /// The provider's `spec.defaultTags`.
    Default {
        /// The TagProvider.
        provider: String,
    },
    /// A label of the binding's namespace.
    NamespaceLabel {
        /// The namespace.
        namespace: String,
        /// The label key.
        label: String,
    },
    /// An annotation of the binding's namespace.
    NamespaceAnnotation {
        /// The namespace.
        namespace: String,
        /// The annotation key.
        annotation: String,
    },
    /// A field of the binding.
    Field {
        /// `metadata.name`, `metadata.labels['k']`, ...
        path: String,
    },
    /// The cluster's name.
    ClusterName,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Literal => write!(f, "spec.tags"),
            Source::Default { provider } => write!(f, "TagProvider {provider} defaultTags"),
            Source::NamespaceLabel { namespace, label } => {
                write!(f, "namespace {namespace} label {label}")
            }
            Source::NamespaceAnnotation {
                namespace,
                annotation,
            } => write!(f, "namespace {namespace} annotation {annotation}"),
            Source::Field { path } => write!(f, "binding field {path}"),
            Source::ClusterName => write!(f, "cluster name"),
        }
    }
}

/// The declared tags of a binding and where each value comes from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Rendered {
    /// The declared tags.
    pub tags: Tags,
    /// The source of each key of `tags`.
    pub sources: BTreeMap<String, Source>,
}

impl Rendered {
    /// Whether some value comes from elsewhere than `spec.tags`.
    pub fn has_sources(&self) -> bool {
        self.sources.values().any(|s| *s != Source::Literal)
    }

    /// The field a violation of `key`'s rules names: `spec.tags["k"]` for a literal,
    /// `spec.tagsFrom["k"] (namespace team-web label team)` for a rendered value,
    /// `TagProvider p defaultTags["k"]` for a default.
    pub fn field_of(&self, key: &str) -> String {
        match self.sources.get(key) {
            None | Some(Source::Literal) => format!("spec.tags[{key:?}]"),
            Some(Source::Default { provider }) => {
                format!("TagProvider {provider} defaultTags[{key:?}]")
            }
            Some(source) => format!("spec.tagsFrom[{key:?}] ({source})"),
        }
    }

    /// The provider's tag rules on the rendered tags: as [`crate::plan::validate`], each
    /// violation naming the value's source; and, for a selector binding, a rendered key that
    /// is also one of its `matchTags` (a provider default, say: the schema refuses it for
    /// `tags` and `tagsFrom`), which would select the binding's own output.
    pub fn violations(&self, limits: &Limits, match_tags: Option<&Tags>) -> Vec<SpecViolation> {
        let mut violations =
            crate::plan::validate_named(&self.tags, limits, |key| self.field_of(key));
        for key in match_tags.into_iter().flat_map(|m| m.keys()) {
            if self.tags.contains_key(key) {
                violations.push(SpecViolation {
                    field: self.field_of(key),
                    rule: format!(
                        "{key:?} is also a resourceSelector.matchTags key; a binding may not \
                         select by a key it writes, it would select its own output"
                    ),
                });
            }
        }
        violations
    }
}

/// A required source that is absent: the binding is Stalled (`ValueNotFound`) and writes
/// nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Missing {
    /// The `tagsFrom` key.
    pub key: String,
    /// What is missing, e.g. `namespace "team-web" has no label "team"`.
    pub what: Absent,
}

/// What a `tagsFrom` entry's source lacks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Absent {
    /// The binding's namespace is not known (the CLI: no Namespace document).
    #[error("namespace {namespace:?} is unknown")]
    Namespace {
        /// The binding's namespace.
        namespace: String,
    },
    /// The namespace has no such label.
    #[error("namespace {namespace:?} has no label {label:?}")]
    NamespaceLabel {
        /// The binding's namespace.
        namespace: String,
        /// The label.
        label: String,
    },
    /// The namespace has no such annotation.
    #[error("namespace {namespace:?} has no annotation {annotation:?}")]
    NamespaceAnnotation {
        /// The binding's namespace.
        namespace: String,
        /// The annotation.
        annotation: String,
    },
    /// `fieldRef.fieldPath` names no field tagbinder reads.
    #[error(
        "fieldRef.fieldPath {path:?} names no supported field (metadata.name, \
         metadata.namespace, metadata.labels['KEY'], metadata.annotations['KEY'])"
    )]
    UnsupportedField {
        /// The field path.
        path: String,
    },
    /// The binding has no such label or annotation.
    #[error("binding {binding} has no {what} {key:?}")]
    BindingField {
        /// `namespace/name`.
        binding: String,
        /// `label` or `annotation`.
        what: &'static str,
        /// The label's or annotation's key.
        key: String,
    },
    /// No cluster name was given to the host.
    #[error(
        "no cluster name is set (`tagbinder run --cluster-name`, chart value clusterName; \
         `tagbinder plan|apply --cluster-name`)"
    )]
    ClusterName,
    /// `valueFrom` names no source.
    #[error(
        "valueFrom sets no source (namespaceLabel, namespaceAnnotation, fieldRef, clusterName)"
    )]
    NoSource,
}

impl fmt::Display for Missing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "spec.tagsFrom[{:?}]: {}", self.key, self.what)
    }
}

/// Why a rendering failed: every required source that is absent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotFound(pub Vec<Missing>);

impl fmt::Display for NotFound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        write!(
            f,
            "{}; nothing is written until the source returns or the spec changes",
            parts.join("; ")
        )
    }
}

/// Renders the declared tags of a binding whose provider is `provider`. An absent source of
/// an `optional` entry leaves its key undeclared (a default of the same key, if any, stays);
/// an absent required one fails the rendering.
pub fn render(inputs: &Inputs<'_>, provider: &str) -> Result<Rendered, NotFound> {
    let (rendered, missing) = render_all(inputs, provider);
    if missing.is_empty() {
        Ok(rendered)
    } else {
        Err(NotFound(missing))
    }
}

/// Renders what can be rendered, every source treated as optional: what a binding whose
/// rendering fails still claims against other bindings (its literal tags, its defaults and
/// the values it can render).
pub fn render_lenient(inputs: &Inputs<'_>, provider: &str) -> Tags {
    render_all(inputs, provider).0.tags
}

fn render_all(inputs: &Inputs<'_>, provider: &str) -> (Rendered, Vec<Missing>) {
    let mut rendered = Rendered::default();
    let mut declare = |key: &str, value: String, source: Source| {
        rendered.tags.insert(key.to_string(), value);
        rendered.sources.insert(key.to_string(), source);
    };
    for (key, value) in inputs.defaults {
        declare(
            key,
            value.clone(),
            Source::Default {
                provider: provider.to_string(),
            },
        );
    }
    let mut missing = Vec::new();
    for entry in &inputs.spec.tags_from {
        match value_of(entry, inputs) {
            Ok((value, source)) => declare(&entry.key, value, source),
            Err(_) if entry.optional => {}
            Err(what) => missing.push(Missing {
                key: entry.key.clone(),
                what,
            }),
        }
    }
    for (key, value) in &inputs.spec.tags {
        declare(key, value.clone(), Source::Literal);
    }
    (rendered, missing)
}

/// The value of one entry and its source, or what is missing.
fn value_of(entry: &TagFrom, inputs: &Inputs<'_>) -> Result<(String, Source), Absent> {
    let from = &entry.value_from;
    let namespace = inputs.binding.namespace;
    let namespace_meta = || {
        inputs.namespace.ok_or_else(|| Absent::Namespace {
            namespace: namespace.to_string(),
        })
    };
    if let Some(label) = &from.namespace_label {
        let value = namespace_meta()?
            .labels
            .get(label)
            .ok_or_else(|| Absent::NamespaceLabel {
                namespace: namespace.to_string(),
                label: label.clone(),
            })?;
        return Ok((
            value.clone(),
            Source::NamespaceLabel {
                namespace: namespace.to_string(),
                label: label.clone(),
            },
        ));
    }
    if let Some(annotation) = &from.namespace_annotation {
        let value = namespace_meta()?
            .annotations
            .get(annotation)
            .ok_or_else(|| Absent::NamespaceAnnotation {
                namespace: namespace.to_string(),
                annotation: annotation.clone(),
            })?;
        return Ok((
            value.clone(),
            Source::NamespaceAnnotation {
                namespace: namespace.to_string(),
                annotation: annotation.clone(),
            },
        ));
    }
    if let Some(field_ref) = &from.field_ref {
        let source = Source::Field {
            path: field_ref.field_path.clone(),
        };
        let binding = &inputs.binding;
        let (map, what, key) = match field_ref.field() {
            Some(BindingField::Name) => return Ok((binding.name.to_string(), source)),
            Some(BindingField::Namespace) => return Ok((binding.namespace.to_string(), source)),
            Some(BindingField::Label(key)) => (binding.labels, "label", key),
            Some(BindingField::Annotation(key)) => (binding.annotations, "annotation", key),
            None => {
                return Err(Absent::UnsupportedField {
                    path: field_ref.field_path.clone(),
                });
            }
        };
        let value = map
            .and_then(|map| map.get(key))
            .ok_or_else(|| Absent::BindingField {
                binding: format!("{}/{}", binding.namespace, binding.name),
                what,
                key: key.to_string(),
            })?;
        return Ok((value.clone(), source));
    }
    if from.cluster_name.is_some() {
        let name = inputs.cluster_name.ok_or(Absent::ClusterName)?;
        return Ok((name.to_string(), Source::ClusterName));
    }
    Err(Absent::NoSource)
}

#[cfg(test)]
mod tests;
