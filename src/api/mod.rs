//! CRD types: what users write (`spec`) and what tagbinder reports (`status`).
//!
//! `tagbinder crd` prints [`crds`]; `crds/tagbinder.yaml` holds that output and a test keeps
//! them equal.

mod binding;
mod binding_status;
pub mod conditions;
mod policy;
mod provider;
mod provider_validation;
pub mod regions;
mod validation;

pub use binding::*;
pub use binding_status::*;
pub use policy::*;
pub use provider::*;
pub use provider_validation::{
    ENDPOINT_PATTERN, MAX_ENDPOINT_CHARS, MAX_REGION_CHARS, REGION_PATTERN,
};
pub use validation::{
    MAX_RESOURCE_ID_CHARS, MAX_TAG_CHARS, MIN_INTERVAL, NO_CONTROL_CHARS, control_char,
    dns_label_violation, dns_subdomain_violation,
};

use kube::CustomResourceExt;

/// API group of both kinds.
pub const GROUP: &str = "tagbinder.io";
/// The one served version.
pub const VERSION: &str = "v1alpha1";

/// Gives unsigned integers the format `int32`: Kubernetes knows only `int32` and `int64` for
/// integers and warns about any other format on every apply of a CRD (`Warning: unrecognized
/// format "uint32"`, which a real kube-apiserver printed for schemars' `u32`). Every `u32`
/// of these types is bounded far below `i32::MAX` (counts of at most 1000 resources, a burst
/// of at most 10000). Applied, recursively, to the spec and status of each kind.
pub(crate) fn int32_formats(schema: &mut schemars::Schema) {
    if schema.get("format").and_then(|format| format.as_str()) == Some("uint32") {
        schema.insert("format".into(), "int32".into());
    }
}

/// The CRDs as one multi-document YAML, as `tagbinder crd` prints them.
pub fn crds_yaml() -> String {
    let docs = [
        TagProvider::crd(),
        ResourceTagBinding::crd(),
        TagPolicy::crd(),
    ];
    docs.iter()
        .map(|crd| {
            // NB: serialising a CRD that kube-derive built cannot fail (plain data, string keys).
            serde_yaml::to_string(crd).expect("CRD serialises to YAML")
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_crds_match_generated() {
        let committed = include_str!("../../crds/tagbinder.yaml");
        assert_eq!(
            committed,
            crds_yaml(),
            "crds/tagbinder.yaml is stale: run `cargo run -- crd > crds/tagbinder.yaml`"
        );
    }

    /// The Helm chart and the kustomization install copies of the CRDs (Helm cannot read
    /// files outside the chart); both are the generated text, byte for byte.
    #[test]
    fn packaged_crd_copies_match_generated() {
        let generated = crds_yaml();
        for (path, copy) in [
            (
                "deploy/helm/tagbinder/files/crds/tagbinder.yaml",
                include_str!("../../deploy/helm/tagbinder/files/crds/tagbinder.yaml"),
            ),
            (
                "deploy/manifests/crds/tagbinder.yaml",
                include_str!("../../deploy/manifests/crds/tagbinder.yaml"),
            ),
        ] {
            assert_eq!(
                copy, generated,
                "{path} drifted from the generated CRDs: run `cargo run -- crd > {path}`"
            );
        }
    }
}
