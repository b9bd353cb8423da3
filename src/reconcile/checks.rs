//! The checks before a pass, the same in both hosts: the provider exists, it allows the
//! binding's namespace, the spec keeps the schema's rules; and what a suspended binding
//! reports. The controller reports a failed check as `Stalled` in `status`, the CLI as an
//! error of the files, with the same field and message.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};

use super::Readiness;
use crate::api::conditions::reason;
use crate::api::{BindingMode, DeletionPolicy, ResourceTagBinding, TagProvider};

/// A check that failed: the field to blame (for the CLI) and the readiness to report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// The binding's field at fault, e.g. `spec.providerRef.name`.
    pub field: &'static str,
    /// Ready=False, Stalled, with the reason and message.
    pub readiness: Readiness,
}

fn stalled(field: &'static str, reason: &'static str, message: String) -> Refusal {
    Refusal {
        field,
        readiness: Readiness {
            ready: false,
            reason,
            message,
            stalled: true,
        },
    }
}

/// Whether the binding's namespace needs its labels for the check (the provider selects
/// namespaces), so that a host reads them only then.
pub fn needs_namespace_labels(provider: &TagProvider) -> bool {
    provider.spec.allowed_namespaces.is_some()
}

/// Checks a binding before its pass: `provider` is the TagProvider it names (`None`: not
/// found), `namespace_labels` the labels of its namespace (read only when
/// [`needs_namespace_labels`]).
pub fn precheck(
    binding: &ResourceTagBinding,
    provider: Option<&TagProvider>,
    namespace_labels: &BTreeMap<String, String>,
) -> Result<(), Refusal> {
    let provider_name = &binding.spec.provider_ref.name;
    let Some(provider) = provider else {
        return Err(stalled(
            "spec.providerRef.name",
            reason::PROVIDER_NOT_FOUND,
            format!("TagProvider {provider_name:?} does not exist"),
        ));
    };
    let namespace = binding.metadata.namespace.clone().unwrap_or_default();
    if let Some(refusal) = namespace_refusal(
        provider.spec.allowed_namespaces.as_ref(),
        namespace_labels,
        &namespace,
        provider_name,
    ) {
        return Err(stalled(
            "metadata.namespace",
            reason::NAMESPACE_NOT_ALLOWED,
            refusal,
        ));
    }
    if let Some(violation) = binding.spec.schema_violations().into_iter().next() {
        return Err(stalled("spec", reason::INVALID_SPEC, violation));
    }
    Ok(())
}

/// Why `allowed` refuses `namespace` (whose labels are `labels`; the automatic
/// `kubernetes.io/metadata.name` label is added here), if it does.
pub fn namespace_refusal(
    allowed: Option<&LabelSelector>,
    labels: &BTreeMap<String, String>,
    namespace: &str,
    provider: &str,
) -> Option<String> {
    let selector = allowed?;
    let selector = match Selector::try_from(selector.clone()) {
        Ok(selector) => selector,
        Err(error) => {
            return Some(format!(
                "TagProvider {provider:?} has an invalid spec.allowedNamespaces: {error}"
            ));
        }
    };
    let mut labels = labels.clone();
    labels.insert(
        "kubernetes.io/metadata.name".to_string(),
        namespace.to_string(),
    );
    (!selector.matches(&labels)).then(|| {
        format!("namespace {namespace:?} is not allowed by TagProvider {provider:?} (spec.allowedNamespaces: {selector})")
    })
}

/// What a suspended binding reports, in both hosts: not Ready, not stalled, no cloud writes.
pub fn suspended() -> Readiness {
    Readiness {
        ready: false,
        reason: reason::SUSPENDED,
        message: "spec.suspend is true: no cloud writes until it is set back to false".to_string(),
        stalled: false,
    }
}

/// What the deletion of a binding does with the tags it applied, in both hosts (the
/// controller on a deletion, the CLI for a binding gone from the files under
/// `--prune-removed`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Deletion {
    /// A pass that declares nothing prunes what the binding applied (and claims its
    /// unresolved intent, to prune that too).
    Prune,
    /// `mode: Observe`: it never wrote, so it lets go at once and leaves every tag.
    Observe,
    /// `deletionPolicy: Orphan`: its tags stay on the resources; it lets go.
    Orphan,
    /// It owns nothing and intended nothing: nothing to prune, no call.
    OwnsNothing,
    /// `spec.suspend`: no cloud writes, not even a deletion's prune (as Flux does for a
    /// suspended object); it lets go as with `Orphan`, and says so.
    Suspended,
}

/// What deleting a binding of `mode` and `policy` does; `owns_nothing` when its ownership
/// record and its intent are both empty.
pub fn deletion(
    mode: BindingMode,
    policy: DeletionPolicy,
    suspended: bool,
    owns_nothing: bool,
) -> Deletion {
    if mode == BindingMode::Observe {
        Deletion::Observe
    } else if policy == DeletionPolicy::Orphan {
        Deletion::Orphan
    } else if owns_nothing {
        Deletion::OwnsNothing
    } else if suspended {
        Deletion::Suspended
    } else {
        Deletion::Prune
    }
}
