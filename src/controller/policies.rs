//! Tag policies in the controller (issue 24): the TagPolicies' watch cache, compiled once
//! per change of any policy's spec; each binding judged by its declared tags before its pass
//! (a `Deny` breach closes the gate: Stalled, `PolicyViolation`, nothing written) and after
//! it (the condition `PolicyCompliant`, a Warning event when it turns False).

use std::sync::{Arc, Mutex};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::ResourceExt;
use kube::runtime::reflector::Store;

use super::cache::Synced;
use crate::api::conditions::{POLICY_COMPLIANT, condition, reason};
use crate::api::{ResourceTagBinding, TagPolicy};
use crate::policy::{self, Policy, Scope, Verdict};
use crate::tags::Tags;

/// (name, generation) of every policy: what the compiled set was built from.
type Fingerprint = Vec<(String, Option<i64>)>;

/// The TagPolicies as the watch cache holds them, and their compiled form.
pub struct Policies {
    store: Store<TagPolicy>,
    synced: Synced,
    compiled: Mutex<Compiled>,
}

/// The compiled set: what it was built from, the valid policies and the refusals.
type Compiled = (
    Fingerprint,
    Arc<Vec<Policy>>,
    Arc<Vec<policy::InvalidPolicy>>,
);

impl Policies {
    /// Over a watch cache (`synced` once it is filled).
    pub fn new(store: Store<TagPolicy>, synced: Synced) -> Self {
        Policies {
            store,
            synced,
            compiled: Mutex::new((Vec::new(), Arc::default(), Arc::default())),
        }
    }

    /// The valid policies once the cache is filled (a pass never runs before the policies
    /// that may deny it are known).
    pub async fn current(&self) -> Arc<Vec<Policy>> {
        self.synced.wait().await;
        self.now()
    }

    /// The valid policies as the cache holds them now, compiled again only when a spec
    /// changed.
    pub fn now(&self) -> Arc<Vec<Policy>> {
        self.compiled().0
    }

    /// The valid policies and the refusals of the others (for their status).
    pub fn compiled(&self) -> (Arc<Vec<Policy>>, Arc<Vec<policy::InvalidPolicy>>) {
        let objects = self.store.state();
        let mut fingerprint: Fingerprint = objects
            .iter()
            .map(|p| (p.name_any(), p.metadata.generation))
            .collect();
        fingerprint.sort();
        // NB: the lock guards plain data; a panic while holding it cannot leave it torn.
        let mut compiled = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
        if compiled.0 != fingerprint || compiled.1.len() > objects.len() {
            let (valid, invalid) = policy::compile_all(objects.iter().map(|p| p.as_ref()));
            *compiled = (fingerprint, Arc::new(valid), Arc::new(invalid));
        }
        (compiled.1.clone(), compiled.2.clone())
    }

    /// The TagPolicies as the cache holds them (with their status).
    pub fn objects(&self) -> Vec<Arc<TagPolicy>> {
        self.store.state()
    }
}

/// The providers a policy's match names (`None`: every provider).
pub fn matched_providers(policy: &TagPolicy) -> Option<Vec<String>> {
    policy
        .spec
        .match_
        .as_ref()
        .map(|m| m.providers.clone())
        .filter(|providers| !providers.is_empty())
}

/// Whether any policy selects bindings by their namespace's labels.
pub fn selects_namespaces(policies: &[Policy]) -> bool {
    policies.iter().any(Policy::selects_namespaces)
}

/// The verdict on `binding`'s declared tags, `labels` its namespace's labels.
pub fn judge(
    policies: &[Policy],
    binding: &ResourceTagBinding,
    labels: &std::collections::BTreeMap<String, String>,
    desired: &Tags,
) -> Verdict {
    let scope = Scope {
        provider: &binding.spec.provider_ref.name,
        resource_type: &binding.spec.resource_type,
        namespace_labels: Some(labels),
    };
    policy::judge_binding(policies, &scope, desired)
}

/// The `PolicyCompliant` condition of a governed binding (`None`: no policy governs it).
pub fn compliant_condition(
    binding: &ResourceTagBinding,
    verdict: &Verdict,
    now: jiff::Timestamp,
) -> Option<Condition> {
    if verdict.governed_by.is_empty() {
        return None;
    }
    let breaches: Vec<_> = verdict
        .denied
        .iter()
        .chain(&verdict.warned)
        .cloned()
        .collect();
    let compliant = breaches.is_empty();
    let (reason, message) = if compliant {
        (
            reason::COMPLIANT,
            format!(
                "the declared tags keep TagPolicy {}",
                verdict.governed_by.join(", ")
            ),
        )
    } else {
        (reason::POLICY_VIOLATION, Verdict::message(&breaches))
    };
    let previous = binding
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    Some(condition(
        previous,
        (POLICY_COMPLIANT, compliant),
        reason,
        message,
        binding.metadata.generation,
        now,
    ))
}

/// Whether the binding's `PolicyCompliant` condition was False.
pub fn was_violating(binding: &ResourceTagBinding) -> bool {
    binding.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == POLICY_COMPLIANT && c.status == "False")
    })
}
