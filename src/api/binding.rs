use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::binding_status::ResourceTagBindingStatus;

/// Most resource ids one binding may list.
pub const MAX_RESOURCE_IDS: usize = 1000;
/// Most resources a selector binding may bind (`spec.maxResources` at most, and its default):
/// the ownership record lives in `status`, which must stay well within an object's size.
pub const MAX_SELECTED_RESOURCES: u32 = 1000;
/// Most `matchTags` of a selector (Alibaba Cloud's `Tag.N` filter takes N = 1..20).
pub const MAX_MATCH_TAGS: usize = 20;
/// Most selected resource ids named in `status.selected.firstIds` and in the CLI's plan.
pub const MAX_SELECTED_SHOWN: usize = 10;
/// Most tags one binding may declare.
pub const MAX_DECLARED_TAGS: usize = 64;
/// Most entries kept in `status.failures` (and `status.conflicts`).
pub const MAX_STATUS_FAILURES: usize = 10;

/// Tags that a team wants on a set of cloud resources, kept there by tagbinder.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "tagbinder.io",
    version = "v1alpha1",
    kind = "ResourceTagBinding",
    namespaced,
    shortname = "rtb",
    category = "tagging",
    doc = "The tags a team wants on its cloud resources: tagbinder writes the declared tags, keeps them there, prunes only what it applied, and never touches tags it does not own.",
    status = "ResourceTagBindingStatus",
    printcolumn = r#"{"name":"READY","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"REASON","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"SYNCED","type":"integer","jsonPath":".status.resources.synced"}"#,
    printcolumn = r#"{"name":"TOTAL","type":"integer","jsonPath":".status.resources.total"}"#,
    printcolumn = r#"{"name":"DRIFTED","type":"string","jsonPath":".status.conditions[?(@.type==\"Drifted\")].status"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = schemars::transform::RecursiveTransform(crate::api::int32_formats))]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "has(self.resourceIds) != has(self.resourceSelector)", "message": "set exactly one of resourceIds and resourceSelector"},
    {"rule": "!has(self.maxResources) || has(self.resourceSelector)", "message": "maxResources applies to resourceSelector only"},
    {"rule": "!has(self.resourceSelector) || self.resourceSelector.matchTags.all(k, !(k in self.tags))", "message": "a declared tag key may not also be a resourceSelector.matchTags key: the binding would select its own output"},
    {"rule": "!has(self.resourceSelector) || !has(self.tagsFrom) || self.tagsFrom.all(t, !(t.key in self.resourceSelector.matchTags))", "message": "a tagsFrom key may not also be a resourceSelector.matchTags key: the binding would select its own output"}
]))]
pub struct ResourceTagBindingSpec {
    /// The TagProvider (cluster-scoped) that reaches the cloud. Immutable: moving a binding
    /// to another account would orphan the tags it applied.
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self == oldSelf", "message": "providerRef is immutable; create a new binding instead"}
    ]))]
    pub provider_ref: ProviderRef,
    /// Alibaba Cloud `ResourceType` (`apiGroup`, `instance`, ...) or JD Cloud `serviceCode`
    /// (`vm`, `disk`, ...). Immutable, for the same reason as `providerRef`.
    #[schemars(length(min = 1, max = 64))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self == oldSelf", "message": "resourceType is immutable; create a new binding instead"}
    ]))]
    pub resource_type: String,
    /// Ids of the resources to tag. Exactly one of `resourceIds` and `resourceSelector`.
    // NB: `x-kubernetes-list-type: set` makes the apiserver reject duplicate ids natively, at
    // no CEL cost (a uniqueness rule in CEL is quadratic and would exhaust the cost budget).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(min = 1, max = 1000))]
    #[schemars(extend("x-kubernetes-list-type" = "set", "items" = {"type": "string", "minLength": 1, "maxLength": 256, "pattern": r"^[^\x00-\x1F\x7F-\x9F]*$"}))]
    pub resource_ids: Vec<String>,
    /// Every resource of `resourceType` that carries all of `matchTags`, resolved through the
    /// cloud's list-by-tag read on every pass. Exactly one of `resourceIds` and
    /// `resourceSelector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_selector: Option<ResourceSelector>,
    /// With `resourceSelector`: when more resources match, the binding writes nothing and is
    /// Stalled (`TooManyResources`). Default 1000, the most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub max_resources: Option<u32>,
    /// Tags to apply, key to value.
    #[schemars(extend(
        "maxProperties" = 64,
        // NB: a schema cannot put a pattern on map keys; a CEL rule can. The apiserver
        // estimates a key's size apart from maxLength, and kube-apiserver 1.37 admits this
        // rule within its cost budget (tests/kube_real.rs installs the CRDs on it).
        "additionalProperties" = {"type": "string", "maxLength": 128, "pattern": r"^[^\x00-\x1F\x7F-\x9F]*$"},
        "x-kubernetes-validations" = [
            {"rule": "self.all(k, k.size() > 0)", "message": "tag keys must not be empty"},
            {"rule": "self.all(k, k.size() <= 128)", "message": "tag keys must be at most 128 characters"},
            {"rule": r"self.all(k, !k.matches('[\\x00-\\x1F\\x7F-\\x9F]'))", "message": "tag keys must not hold control characters"},
            {"rule": "self.all(k, self[k].size() <= 128)", "message": "tag values must be at most 128 characters"}
        ]
    ))]
    pub tags: BTreeMap<String, String>,
    /// Tags whose values come from Kubernetes: a label or annotation of the binding's
    /// namespace, a field of the binding, or the cluster's name. `tags` win over `tagsFrom`,
    /// which win over the provider's `defaultTags`. A key appears at most once.
    // NB: `x-kubernetes-list-type: map` keyed by `key` makes the apiserver refuse a key given
    // twice, natively and at no CEL cost.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["key"]))]
    pub tags_from: Vec<TagFrom>,
    /// What happens to the applied tags when the binding is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// How often the cloud is re-read to correct drift, e.g. `10m`, `1h30m`; at least `1s`.
    #[serde(default = "default_interval")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    // NB: the apiserver runs this rule even when the pattern has refused the value, and
    // `duration()` of a malformed value answers a type conversion error beside the pattern's
    // message (found on a real kube-apiserver); the guard leaves such a value to the pattern.
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": r"!self.matches('^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$') || duration(self) >= duration('1s')", "message": "interval must be at least 1s"}
    ]))]
    pub interval: String,
    /// True: no cloud writes until set back to false.
    #[serde(default)]
    pub suspend: bool,
    /// `Enforce` (default) writes the declared tags; `Observe` only reads, plans and reports
    /// drift (`status.drift`, condition `Drifted`), and never writes, not even on deletion.
    #[serde(default)]
    pub mode: BindingMode,
}

/// One tag whose value comes from Kubernetes (`spec.tagsFrom[]`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TagFrom {
    /// The tag key.
    #[schemars(
        length(min = 1, max = 128),
        regex(pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")
    )]
    pub key: String,
    /// Where the value comes from: exactly one source.
    pub value_from: ValueSource,
    /// True: when the source is absent, the key is not declared (and pruned where this
    /// binding applied it). False (default): the binding is Stalled (`ValueNotFound`) and
    /// writes nothing until the source returns.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

/// Where a `tagsFrom` value comes from: exactly one of the fields.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "(has(self.namespaceLabel) ? 1 : 0) + (has(self.namespaceAnnotation) ? 1 : 0) + (has(self.fieldRef) ? 1 : 0) + (has(self.clusterName) ? 1 : 0) == 1", "message": "set exactly one of namespaceLabel, namespaceAnnotation, fieldRef and clusterName"}
]))]
pub struct ValueSource {
    /// A label of the binding's namespace, by key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 317))]
    pub namespace_label: Option<String>,
    /// An annotation of the binding's namespace, by key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 317))]
    pub namespace_annotation: Option<String>,
    /// A field of the binding itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_ref: Option<FieldRef>,
    /// The cluster's name: `tagbinder run --cluster-name` (chart value `clusterName`), or
    /// `tagbinder plan|apply --cluster-name`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_name: Option<ClusterNameSource>,
}

/// A field of the binding (`valueFrom.fieldRef`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FieldRef {
    /// `metadata.name`, `metadata.namespace`, `metadata.labels['KEY']` or
    /// `metadata.annotations['KEY']`.
    #[schemars(regex(
        pattern = r"^metadata\.(name|namespace|labels\['[^']{1,317}'\]|annotations\['[^']{1,317}'\])$"
    ))]
    pub field_path: String,
}

/// The cluster's name as a source (`valueFrom.clusterName: {}`): it has no settings.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub struct ClusterNameSource {}

impl FieldRef {
    /// What the path names: `None` when it is none of the supported fields.
    pub fn field(&self) -> Option<BindingField<'_>> {
        fn quoted(rest: &str) -> Option<&str> {
            rest.strip_prefix("['")?
                .strip_suffix("']")
                .filter(|key| !key.is_empty() && !key.contains('\''))
        }
        let path = self.field_path.strip_prefix("metadata.")?;
        match path {
            "name" => Some(BindingField::Name),
            "namespace" => Some(BindingField::Namespace),
            _ => {
                if let Some(rest) = path.strip_prefix("labels") {
                    quoted(rest).map(BindingField::Label)
                } else {
                    quoted(path.strip_prefix("annotations")?).map(BindingField::Annotation)
                }
            }
        }
    }
}

/// A field of the binding a `fieldRef` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BindingField<'a> {
    /// `metadata.name`.
    Name,
    /// `metadata.namespace`.
    Namespace,
    /// `metadata.labels['KEY']`.
    Label(&'a str),
    /// `metadata.annotations['KEY']`.
    Annotation(&'a str),
}

impl ResourceTagBindingSpec {
    /// Whether a `tagsFrom` entry reads the binding's namespace (its labels or annotations).
    pub fn reads_namespace(&self) -> bool {
        self.tags_from.iter().any(|t| {
            t.value_from.namespace_label.is_some() || t.value_from.namespace_annotation.is_some()
        })
    }

    /// The binding's own labels and annotations its `fieldRef`s read (kept in the controller's
    /// cache, which drops the others).
    pub fn referenced_metadata(&self) -> (Vec<&str>, Vec<&str>) {
        let (mut labels, mut annotations) = (Vec::new(), Vec::new());
        for entry in &self.tags_from {
            match entry
                .value_from
                .field_ref
                .as_ref()
                .and_then(FieldRef::field)
            {
                Some(BindingField::Label(key)) => labels.push(key),
                Some(BindingField::Annotation(key)) => annotations.push(key),
                _ => {}
            }
        }
        (labels, annotations)
    }
}

/// Whether a binding writes or only reports (`spec.mode`).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum BindingMode {
    /// Read, plan and write: the resources converge to the declared tags.
    #[default]
    Enforce,
    /// Read, plan and report the drift; never write. Deleting the binding lets go at once
    /// and leaves every tag as it is.
    Observe,
}

impl BindingMode {
    /// Whether a binding of this mode claims what it declares. An Observe binding writes
    /// nothing, so it claims nothing: an audit neither wins a conflict against a binding that
    /// writes nor keeps its tags from being pruned (both hosts look claims up through this).
    pub fn claims(self) -> bool {
        self == BindingMode::Enforce
    }
}

/// Which resources a selector binding binds (`spec.resourceSelector`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSelector {
    /// Tags every selected resource carries, key to value (exact match; at least one, at
    /// most 20).
    #[schemars(extend(
        "minProperties" = 1,
        "maxProperties" = 20,
        "additionalProperties" = {"type": "string", "maxLength": 128, "pattern": r"^[^\x00-\x1F\x7F-\x9F]*$"},
        "x-kubernetes-validations" = [
            {"rule": "self.all(k, k.size() > 0)", "message": "matchTags keys must not be empty"},
            {"rule": "self.all(k, k.size() <= 128)", "message": "matchTags keys must be at most 128 characters"},
            {"rule": r"self.all(k, !k.matches('[\\x00-\\x1F\\x7F-\\x9F]'))", "message": "matchTags keys must not hold control characters"}
        ]
    ))]
    pub match_tags: BTreeMap<String, String>,
}

impl ResourceTagBindingSpec {
    /// The selector's cap on matched resources (`spec.maxResources`, default 1000).
    pub fn max_resources(&self) -> u32 {
        self.max_resources.unwrap_or(MAX_SELECTED_RESOURCES)
    }

    /// `spec.interval` as a duration: how often the binding's resources are read at least.
    pub fn resync_interval(&self) -> std::time::Duration {
        // NB: the CRD pattern and the controller's schema check make the interval parse; the
        // default covers objects written before either existed.
        humantime::parse_duration(&self.interval).unwrap_or(std::time::Duration::from_secs(600))
    }
}

fn default_interval() -> String {
    "10m".to_string()
}

/// Reference to a cluster-scoped TagProvider.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProviderRef {
    /// Name of the TagProvider.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// What deleting a binding does to the tags it applied.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum DeletionPolicy {
    /// Remove the tags this binding applied (by the ownership rules), then let go.
    #[default]
    Delete,
    /// Leave the tags on the resources.
    Orphan,
}
