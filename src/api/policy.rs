use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ProviderRef;

/// Most resources a policy's status names in `status.noncompliant`.
pub const MAX_NONCOMPLIANT_SAMPLES: usize = 20;
/// Most keys a policy's rules name, per kind of rule.
pub const MAX_POLICY_KEYS: usize = 64;

/// Rules that tags must keep: required keys, allowed values and value patterns, checked on
/// the tags that bindings declare and on the tags that resources carry.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "tagbinder.io",
    version = "v1alpha1",
    kind = "TagPolicy",
    shortname = "tpol",
    category = "tagging",
    doc = "Rules that tags must keep (required keys, allowed values, value patterns): a binding that breaks a Deny policy writes nothing, and every resource the bindings cover is counted compliant or not.",
    status = "TagPolicyStatus",
    printcolumn = r#"{"name":"ENFORCEMENT","type":"string","jsonPath":".spec.enforcement"}"#,
    printcolumn = r#"{"name":"READY","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"VIOLATING","type":"integer","jsonPath":".status.bindings.violating"}"#,
    printcolumn = r#"{"name":"NONCOMPLIANT","type":"integer","jsonPath":".status.resources.noncompliant"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = schemars::transform::RecursiveTransform(crate::api::int32_formats))]
pub struct TagPolicySpec {
    /// What the policy governs; absent fields match everything.
    #[serde(default, rename = "match", skip_serializing_if = "Option::is_none")]
    pub match_: Option<PolicyMatch>,
    /// The rules.
    pub rules: PolicyRules,
    /// `Deny` (default): a binding that breaks the rules writes nothing (Stalled,
    /// `PolicyViolation`); `Warn`: it proceeds, with a Warning event and the condition
    /// `PolicyCompliant=False`.
    #[serde(default)]
    pub enforcement: Enforcement,
    /// Read-only selections of resources that no binding needs to cover, evaluated as well
    /// (the same caps and calls as an Observe selector).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    pub scan: Vec<PolicyScan>,
}

/// What a policy governs (`spec.match`).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyMatch {
    /// TagProvider names. Empty or absent: every provider.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub providers: Vec<String>,
    /// Resource types as bindings name them (`apiGroup`, `vm`, `ecs:instance`). Empty or
    /// absent: every type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub resource_types: Vec<String>,
    /// The namespaces whose bindings the policy governs. Absent: all namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
}

/// The rules of a policy (`spec.rules`).
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "(has(self.required) && size(self.required) > 0) || (has(self.allowedValues) && size(self.allowedValues) > 0) || (has(self.patterns) && size(self.patterns) > 0)", "message": "rules must hold at least one of required, allowedValues and patterns"}
]))]
pub struct PolicyRules {
    /// Keys every governed binding declares and every governed resource carries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    #[schemars(extend("x-kubernetes-list-type" = "set", "items" = {"type": "string", "minLength": 1, "maxLength": 128}))]
    pub required: Vec<String>,
    /// Key to the values it may take (where the key is present).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend(
        "maxProperties" = 64,
        "additionalProperties" = {"type": "array", "minItems": 1, "maxItems": 256, "items": {"type": "string", "maxLength": 256}, "x-kubernetes-list-type": "set"},
        "x-kubernetes-validations" = [
            {"rule": "self.all(k, k.size() > 0 && k.size() <= 128)", "message": "allowedValues keys must be 1 to 128 characters"}
        ]
    ))]
    pub allowed_values: BTreeMap<String, Vec<String>>,
    /// Key to a regular expression in RE2 syntax (as CEL and Go use) that its value matches
    /// (where the key is present); unanchored unless the pattern anchors itself.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend(
        "maxProperties" = 64,
        "additionalProperties" = {"type": "string", "minLength": 1, "maxLength": 1024},
        "x-kubernetes-validations" = [
            {"rule": "self.all(k, k.size() > 0 && k.size() <= 128)", "message": "patterns keys must be 1 to 128 characters"}
        ]
    ))]
    pub patterns: BTreeMap<String, String>,
}

/// What breaking a policy does to a binding.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, Hash, JsonSchema)]
pub enum Enforcement {
    /// The binding writes nothing: Stalled, reason `PolicyViolation`.
    #[default]
    Deny,
    /// The binding proceeds, with a Warning event and `PolicyCompliant=False`.
    Warn,
}

impl Enforcement {
    /// The word users write.
    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::Deny => "Deny",
            Enforcement::Warn => "Warn",
        }
    }
}

/// A read-only selection of resources (`spec.scan[]`).
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyScan {
    /// The TagProvider to read through.
    pub provider_ref: ProviderRef,
    /// The resource type, as a binding names it.
    #[schemars(length(min = 1, max = 128))]
    pub resource_type: String,
    /// Tags every scanned resource carries (exact match; at least one, at most 20).
    #[schemars(extend(
        "minProperties" = 1,
        "maxProperties" = 20,
        "additionalProperties" = {"type": "string", "maxLength": 128}
    ))]
    pub match_tags: BTreeMap<String, String>,
    /// How often the selection is read, e.g. `1h` (default), at least `1m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32), regex(pattern = r"^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$"))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": r"!self.matches('^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$') || duration(self) >= duration('1m')", "message": "scan interval must be at least 1m"}
    ]))]
    pub interval: Option<String>,
}

/// Observed state of a policy.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = schemars::transform::RecursiveTransform(crate::api::int32_formats))]
pub struct TagPolicyStatus {
    /// Generation of the spec that the counts were evaluated under.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// kstatus conditions: Ready (the policy is evaluated), Stalled (an invalid pattern).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The governed bindings, by their declared tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bindings: Option<PolicyBindingCounts>,
    /// The governed resources, by their observed tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<PolicyResourceCounts>,
    /// The first noncompliant resources (at most 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub noncompliant: Vec<NoncompliantResource>,
}

/// Bindings a policy governs.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyBindingCounts {
    /// Bindings evaluated.
    pub evaluated: u32,
    /// Bindings whose declared tags break the rules.
    pub violating: u32,
}

/// Resources a policy governs.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyResourceCounts {
    /// Resources evaluated.
    pub evaluated: u32,
    /// Resources whose tags keep the rules.
    pub compliant: u32,
    /// Resources whose tags break them.
    pub noncompliant: u32,
}

/// A resource whose observed tags break a policy.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NoncompliantResource {
    /// The TagProvider it was read through.
    pub provider: String,
    /// Its type.
    pub resource_type: String,
    /// Its id.
    pub resource_id: String,
    /// Required keys it lacks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    /// Keys whose value is not allowed or does not match the pattern, with that value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub invalid: BTreeMap<String, String>,
}
