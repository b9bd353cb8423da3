//! The label sets of the metrics: each bounded (results, clouds, actions, outcomes,
//! providers, reasons).

use prometheus_client::encoding::EncodeLabelSet;

/// Labels of `tagbinder_reconcile_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `ok` for a reconcile or pass that ended without an error, `partial_failure` for a
    /// pass that left some resources failed, `cloud_error` for a pass the cloud failed
    /// (ProviderError, CredentialsInvalid), else the error's category (`kube_error`,
    /// `cleanup_error`, `finalizer_error`).
    pub result: String,
}

/// Labels of `tagbinder_cloud_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloudLabels {
    /// `alibaba` or `jdcloud`.
    pub cloud: String,
    /// API action.
    pub action: String,
    /// `ok` or the error code.
    pub outcome: String,
    /// The TagProvider's name.
    pub provider: String,
}

/// Labels of `tagbinder_cloud_throttled_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ThrottleLabels {
    /// The TagProvider's name.
    pub provider: String,
    /// API action.
    pub action: String,
}

/// Labels of `tagbinder_bindings`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReadyLabels {
    /// `true` or `false`.
    pub ready: String,
    /// The Ready condition's reason (`Synced`, `PartialFailure`, ...).
    pub reason: String,
}

/// Labels of `tagbinder_drifted_resources`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BindingLabels {
    /// The binding's namespace.
    pub namespace: String,
    /// The binding's name.
    pub binding: String,
}

/// Labels of `tagbinder_policy_resources`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyResourceLabels {
    /// The TagPolicy's name.
    pub policy: String,
    /// `true` or `false`.
    pub compliant: String,
}

/// Labels of `tagbinder_policy_bindings`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyBindingLabels {
    /// The TagPolicy's name.
    pub policy: String,
    /// `true` or `false`.
    pub violating: String,
}

/// Labels of the per-provider metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    /// The TagProvider's name.
    pub provider: String,
}
