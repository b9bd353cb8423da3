//! Condition types and reasons (kstatus): the words users see in `kubectl get`, events and
//! `kubectl wait`. Defined once here; never spelled as literals elsewhere.

/// True when every resource carries every declared, non-conflicting tag.
pub const READY: &str = "Ready";
/// True while a pass is under way or retrying.
pub const RECONCILING: &str = "Reconciling";
/// True when only a spec or provider change can help.
pub const STALLED: &str = "Stalled";
/// Observe mode: True when some resource lacks, or differs from, the declared tags.
pub const DRIFTED: &str = "Drifted";
/// False when the binding's declared tags break a `Warn` TagPolicy (a `Deny` one stalls it).
pub const POLICY_COMPLIANT: &str = "PolicyCompliant";

/// A condition of `type_`, status `True` or `False`, whose `lastTransitionTime` is kept from
/// the same condition in `previous` while its status does not flip, else `now` (stackable's
/// merging): a pass that changes nothing changes no condition. The conditions of bindings
/// and of tag policies are made here (a provider's carry the time its health last changed).
pub fn condition(
    previous: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
    (type_, status): (&str, bool),
    reason: &str,
    message: String,
    observed_generation: Option<i64>,
    now: jiff::Timestamp,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    let status = if status { "True" } else { "False" };
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message,
        observed_generation,
        last_transition_time,
    }
}

/// Reasons of the Ready condition (and of the Stalled/Reconciling ones that go with them).
pub mod reason {
    /// Every resource carries every declared tag.
    pub const SYNCED: &str = "Synced";
    /// A TagProvider's Ready condition: the cloud answers its calls.
    pub const REACHABLE: &str = "Reachable";
    /// Work is under way.
    pub const PROGRESSING: &str = "Progressing";
    /// Some resources failed; the rest converged.
    pub const PARTIAL_FAILURE: &str = "PartialFailure";
    /// The cloud API failed (throttling, 5xx, network) after retries.
    pub const PROVIDER_ERROR: &str = "ProviderError";
    /// The cloud rejected the access key or signature, or denied access.
    pub const CREDENTIALS_INVALID: &str = "CredentialsInvalid";
    /// The provider's `spec.credentials.secretRef` names a Secret outside the controller's
    /// credentials namespace (`--credentials-namespace`), the only one whose Secrets it reads.
    pub const SECRET_NOT_IN_CREDENTIALS_NAMESPACE: &str = "SecretNotInCredentialsNamespace";
    /// The referenced TagProvider does not exist.
    pub const PROVIDER_NOT_FOUND: &str = "ProviderNotFound";
    /// The provider's `allowedNamespaces` excludes the binding's namespace.
    pub const NAMESPACE_NOT_ALLOWED: &str = "NamespaceNotAllowed";
    /// The spec breaks a rule of the provider (key rules, resource types, limits).
    pub const INVALID_SPEC: &str = "InvalidSpec";
    /// A required `tagsFrom` source is absent (a namespace label or annotation, a field of
    /// the binding, the cluster's name): nothing is written until it returns.
    pub const VALUE_NOT_FOUND: &str = "ValueNotFound";
    /// The declared tags break a TagPolicy's rule: under `Deny` the binding is Stalled and
    /// writes nothing; under `Warn` it proceeds, and `PolicyCompliant` is False.
    pub const POLICY_VIOLATION: &str = "PolicyViolation";
    /// `PolicyCompliant=True`: the declared tags keep every TagPolicy that governs them.
    pub const COMPLIANT: &str = "Compliant";
    /// A TagPolicy's Ready condition: its rules compiled and were evaluated.
    pub const EVALUATED: &str = "Evaluated";
    /// A TagPolicy beyond the first 64: it judges bindings, and counts no resource.
    pub const TOO_MANY_POLICIES: &str = "TooManyPolicies";
    /// An older binding declares another value for a key on a resource.
    pub const CONFLICT: &str = "Conflict";
    /// A selector matches more resources than `spec.maxResources`: nothing is written.
    pub const TOO_MANY_RESOURCES: &str = "TooManyResources";
    /// `spec.suspend` is true.
    pub const SUSPENDED: &str = "Suspended";
    /// Observe mode: the resources were read and compared; nothing was written (Ready and
    /// Drifted=False when nothing differs).
    pub const OBSERVED: &str = "Observed";
    /// Observe mode: some resource differs from the declared tags (Drifted=True).
    pub const DRIFTED: &str = "Drifted";
    /// Event: a deletion let go without pruning (suspended, or its provider is gone).
    pub const ORPHANED_TAGS: &str = "OrphanedTags";
    /// Event: a binding's object does not decode (stored under an older schema); it is
    /// skipped, the others are reconciled.
    pub const UNDECODABLE: &str = "Undecodable";
}
