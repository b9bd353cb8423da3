//! `TagPolicy.status` and the policy gauges (issue 24): the bindings' verdicts and the
//! resources the rounds observed (and the policies' scans) are kept in a
//! [`Ledger`]; after a round, one task writes each policy's status, only where its figures,
//! its samples or its conditions changed, and at most once per [`SPACING`] (a round's groups
//! end close together: their figures go out in one write per policy).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};
use tokio::sync::Notify;

use super::FIELD_MANAGER;
use super::context::Context;
use crate::api::conditions::{READY, STALLED, condition, reason};
use crate::api::{ResourceTagBinding, TagPolicy, TagPolicyStatus};
use crate::policy::ledger::{self, Figures, Ledger};
use crate::policy::{InvalidPolicy, Policy, Scope, Verdict};
use crate::tags::TagsByResource;

/// The shortest time between two publications (a round's groups end close together).
pub const SPACING: Duration = Duration::from_secs(1);

/// The ledger, and what was last written per policy.
#[derive(Debug, Default)]
pub struct PolicyStatus {
    ledger: Mutex<Ledger>,
    written: Mutex<HashMap<String, TagPolicyStatus>>,
    wake: Notify,
}

impl PolicyStatus {
    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        // NB: every critical section leaves the ledger consistent; a poisoned lock is safe.
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks for a publication (after a round, a denial, a policy change).
    pub fn changed(&self) {
        self.wake.notify_one();
    }

    /// Records a binding's verdict (`key`: namespace/name).
    pub fn judged(&self, key: &str, policies: &[Policy], verdict: &Verdict) {
        let mut ledger = self.ledger();
        ledger.sync_policies(policies);
        ledger.judged(key, verdict);
    }

    /// Records the resources a binding's pass observed, with the writes it made.
    pub fn observed(
        &self,
        key: &str,
        policies: &[Policy],
        binding: &ResourceTagBinding,
        labels: &std::collections::BTreeMap<String, String>,
        tags: &TagsByResource,
    ) {
        let scope = Scope {
            provider: &binding.spec.provider_ref.name,
            resource_type: &binding.spec.resource_type,
            namespace_labels: Some(labels),
        };
        let mut ledger = self.ledger();
        ledger.sync_policies(policies);
        ledger.observed(key, policies, &scope, None, tags);
    }

    /// Records the resources a policy's scan read (`scan`: its holder key), under that
    /// policy alone.
    pub fn scanned(
        &self,
        scan: &str,
        policies: &[Policy],
        policy: &str,
        scope: &Scope<'_>,
        tags: &TagsByResource,
    ) {
        let mut ledger = self.ledger();
        ledger.sync_policies(policies);
        ledger.observed(scan, policies, scope, Some(policy), tags);
    }

    /// The holder keys of every scan the ledger holds.
    pub fn scans(&self) -> Vec<String> {
        self.ledger().holders_with_prefix(SCAN_PREFIX)
    }

    /// Forgets a binding (deleted) or a scan (removed from its policy).
    pub fn forget(&self, key: &str) {
        self.ledger().forget(key);
    }
}

/// The prefix of scan holders: no binding key (namespace/name) has a `:`.
const SCAN_PREFIX: &str = "tagpolicy:";

/// The holder key of a policy's scan `index`.
pub fn scan_holder(policy: &str, index: usize) -> String {
    format!("{SCAN_PREFIX}{policy}/scan/{index}")
}

/// Publishes the policies' figures whenever asked, at most once per [`SPACING`].
pub async fn run(ctx: Arc<Context>) {
    loop {
        ctx.policy_status.wake.notified().await;
        publish(&ctx).await;
        tokio::time::sleep(SPACING).await;
    }
}

/// Sets the gauges and writes the status of every policy whose status changed.
pub async fn publish(ctx: &Context) {
    let Some(policies) = &ctx.policies else {
        tracing::debug!("no TagPolicies watched");
        return;
    };
    let (valid, invalid) = policies.compiled();
    let objects = policies.objects();
    tracing::debug!(
        policies = objects.len(),
        valid = valid.len(),
        "publishing the TagPolicies' figures"
    );
    let now = jiff::Timestamp::now();
    let wanted: Vec<(Arc<TagPolicy>, TagPolicyStatus)> = {
        let mut ledger = ctx.policy_status.ledger();
        ledger.sync_policies(&valid);
        objects
            .into_iter()
            .map(|policy| {
                let name = policy.name_any();
                let figures = ledger.figures(&name);
                let refusal = invalid.iter().find(|i| i.policy == name);
                let status = status_of(&policy, figures.as_ref(), refusal, now);
                ctx.metrics.set_policy(&name, figures.as_ref());
                (policy, status)
            })
            .collect()
    };
    let present: std::collections::HashSet<String> =
        wanted.iter().map(|(p, _)| p.name_any()).collect();
    let gone: Vec<String> = {
        let mut written = ctx
            .policy_status
            .written
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let gone = written
            .keys()
            .filter(|name| !present.contains(*name))
            .cloned()
            .collect::<Vec<_>>();
        for name in &gone {
            written.remove(name);
        }
        gone
    };
    for name in gone {
        ctx.metrics.set_policy(&name, None);
    }
    let api: Api<TagPolicy> = Api::all(ctx.client.clone());
    for (policy, status) in wanted {
        let name = policy.name_any();
        {
            let written = ctx
                .policy_status
                .written
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            let before = written.get(&name).or(policy.status.as_ref());
            if before.is_some_and(|before| same(before, &status)) {
                continue;
            }
            tracing::debug!(policy = %name, "writing the TagPolicy's status");
        }
        let patch = serde_json::json!({
            "apiVersion": TagPolicy::api_version(&()),
            "kind": TagPolicy::kind(&()),
            "status": status,
        });
        let result = api
            .patch_status(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await;
        let mut written = ctx
            .policy_status
            .written
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match result {
            Ok(_) => {
                written.insert(name, status);
            }
            Err(error) => {
                // NB: forgotten, so that the next publication writes it again.
                written.remove(&name);
                tracing::warn!(policy = %name, %error, "cannot write the TagPolicy's status");
            }
        }
    }
}

/// Whether two statuses say the same, transition times aside.
fn same(a: &TagPolicyStatus, b: &TagPolicyStatus) -> bool {
    let strip = |status: &TagPolicyStatus| {
        let mut status = status.clone();
        for condition in &mut status.conditions {
            condition.last_transition_time = Time(jiff::Timestamp::UNIX_EPOCH);
        }
        status
    };
    strip(a) == strip(b)
}

/// The status of `policy`: its figures (`None`: not counted), or why it is not evaluated.
pub fn status_of(
    policy: &TagPolicy,
    figures: Option<&Figures>,
    refusal: Option<&InvalidPolicy>,
    now: jiff::Timestamp,
) -> TagPolicyStatus {
    let generation = policy.metadata.generation;
    let previous = policy
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default();
    let condition = |type_: &str, status: bool, reason: &str, message: String| {
        condition(previous, (type_, status), reason, message, generation, now)
    };
    if let Some(refusal) = refusal {
        let message = format!(
            "{}: {}; the policy governs nothing until it is fixed",
            refusal.field, refusal.message
        );
        return TagPolicyStatus {
            observed_generation: generation,
            conditions: vec![
                condition(READY, false, reason::INVALID_SPEC, message.clone()),
                condition(STALLED, true, reason::INVALID_SPEC, message),
            ],
            ..TagPolicyStatus::default()
        };
    }
    let Some(figures) = figures else {
        let message = format!(
            "more than {} TagPolicies: this one judges bindings, and counts no resource",
            ledger::MAX_COUNTED_POLICIES
        );
        return TagPolicyStatus {
            observed_generation: generation,
            conditions: vec![
                condition(READY, false, reason::TOO_MANY_POLICIES, message.clone()),
                condition(STALLED, true, reason::TOO_MANY_POLICIES, message),
            ],
            ..TagPolicyStatus::default()
        };
    };
    TagPolicyStatus {
        observed_generation: generation,
        conditions: vec![
            condition(
                READY,
                true,
                reason::EVALUATED,
                "the rules compiled; the counts are those of the last passes of the governed bindings and of the scans".to_string(),
            ),
            condition(STALLED, false, reason::EVALUATED, String::new()),
        ],
        bindings: Some(figures.bindings),
        resources: Some(figures.resources),
        noncompliant: figures.noncompliant.clone(),
    }
}

/// Records what a binding's pass observed (the tags after its writes), when policies exist.
pub fn observed(
    ctx: &Context,
    key: &str,
    binding: &ResourceTagBinding,
    outcome: &crate::reconcile::Outcome,
) {
    let policies = ctx.policies_now();
    if policies.is_empty() || binding.metadata.deletion_timestamp.is_some() {
        return;
    }
    // NB: a pass that wrote nothing counts what it read, borrowed (a sweep copies no tags).
    let after;
    let tags = if outcome.writes.calls == 0 {
        match &outcome.observed {
            Some(observed) => observed,
            None => return,
        }
    } else {
        match outcome.tags_after() {
            Some(tags) => {
                after = tags;
                &after
            }
            None => return,
        }
    };
    let labels = if super::policies::selects_namespaces(&policies) {
        ctx.cached_namespace(&binding.namespace().unwrap_or_default())
            .map(|namespace| namespace.labels)
            .unwrap_or_default()
    } else {
        Default::default()
    };
    ctx.policy_status
        .observed(key, &policies, binding, &labels, tags);
}
