//! After a pass of a round: metrics, the status (only when it changed), events, and what the
//! fleet does with the binding next.

use kube::ResourceExt;
use kube::runtime::events::EventType;

use super::context::Context;
use super::events;
use super::provider_status;
use super::status;
use crate::api::BindingMode;
use crate::api::ResourceTagBinding;
use crate::api::conditions::reason;
use crate::reconcile::Outcome;
use crate::reconcile::identity::binding_key;
use crate::tags::Tags;

/// What the fleet does with a binding after its pass.
pub(crate) enum Next {
    /// Sweeps cover it: look again within `spec.interval`.
    Sweep,
    /// Something failed that may pass: ask again after a backoff.
    Retry,
    /// Only a change can help (stalled).
    AwaitChange,
}

/// After a pass of a round that took `seconds`: metrics, the status (only when it changed),
/// events.
pub(crate) async fn finish(
    binding: &ResourceTagBinding,
    outcome: &Outcome,
    desired: &Tags,
    seconds: f64,
    ctx: &Context,
) -> Next {
    let key = binding_key(binding);
    ctx.metrics.reconciled(pass_result(outcome), seconds);
    ctx.metrics.passed(&binding.spec.provider_ref.name);
    if let Some(health) = provider_status::health_of(&outcome.readiness) {
        provider_status::report(ctx, &binding.spec.provider_ref.name, health).await;
    }
    ctx.metrics.drift_corrected(outcome.writes.drift_corrected);
    ctx.metrics
        .set_ready(&key, Some((outcome.is_ready(), outcome.readiness.reason)));
    if outcome.is_ready() {
        ctx.metrics.became_ready(&key, binding.metadata.generation);
    }
    // NB: an Enforce binding's resources that still lack declared tags after its pass: drift
    // (or a first write) that no pass has corrected yet. Observe bindings report theirs in
    // tagbinder_drifted_resources.
    let uncorrected =
        binding.spec.mode == BindingMode::Enforce && outcome.counts.synced < outcome.counts.total;
    ctx.metrics.set_drift(
        &key,
        &binding.spec.provider_ref.name,
        uncorrected.then(|| binding.spec.resync_interval()),
    );
    ctx.metrics.set_intent(&key, !outcome.pending.is_empty());
    ctx.metrics.set_drifted(
        &binding.namespace().unwrap_or_default(),
        &binding.name_any(),
        outcome.drift.as_ref().map(|d| d.counts.resources),
    );
    let was_drifted = status::was_drifted(binding);
    let now = jiff::Timestamp::now();
    let sequence = ctx.record(binding).sequence;
    let mut new_status = status::from_outcome(binding, outcome, Some(desired), sequence, now);
    let verdict = policy_verdict(binding, desired, ctx);
    ctx.policy_status
        .judged(&key, &ctx.policies_now(), &verdict);
    let compliance = super::policies::compliant_condition(binding, &verdict, now);
    new_status.conditions.extend(compliance.clone());
    let written = status::write(binding, new_status, ctx).await;
    if let Err(error) = written {
        tracing::warn!(binding = %key, %error, "cannot write the status");
        return Next::Retry;
    }
    let records_something = !(outcome.ownership.is_empty() && outcome.pending.is_empty());
    super::intent_log::ensure_finalizer(binding, records_something, ctx).await;
    events::publish_events(binding, outcome, ctx).await;
    if let Some(condition) = compliance.filter(|c| c.status == "False")
        && !super::policies::was_violating(binding)
    {
        events::publish(
            binding,
            EventType::Warning,
            reason::POLICY_VIOLATION,
            condition.message,
            ctx,
        )
        .await;
    }
    if let Some(drift) = &outcome.drift
        && was_drifted != Some(drift.is_drifted())
        && (drift.is_drifted() || was_drifted.is_some())
    {
        let type_ = if drift.is_drifted() {
            EventType::Warning
        } else {
            EventType::Normal
        };
        events::publish(binding, type_, reason::DRIFTED, drift.message.clone(), ctx).await;
    }
    if outcome.retry_soon() {
        // NB: a pass that got some writes through is not failing: its retry waits the first
        // step of the backoff, not a step longer each time (issue 20: under a throttling
        // storm, backoffs grew to 41 s while every pass made progress).
        if outcome.made_progress() {
            ctx.reset_backoff(&key);
        }
        return Next::Retry;
    }
    ctx.reset_backoff(&key);
    // NB: too many matches may change with the cloud: the selector is resolved again on the
    // next sweep, not only after a spec change.
    if outcome.readiness.stalled && outcome.readiness.reason != reason::TOO_MANY_RESOURCES {
        return Next::AwaitChange;
    }
    Next::Sweep
}

/// The binding's standing against the TagPolicies after its pass (the namespace's labels
/// from the cache: a label change re-announces the namespace's bindings).
fn policy_verdict(
    binding: &ResourceTagBinding,
    desired: &Tags,
    ctx: &Context,
) -> crate::policy::Verdict {
    let policies = ctx.policies_now();
    if policies.is_empty() || binding.metadata.deletion_timestamp.is_some() {
        return Default::default();
    }
    let labels = if super::policies::selects_namespaces(&policies) {
        ctx.cached_namespace(&binding.namespace().unwrap_or_default())
            .map(|namespace| namespace.labels)
            .unwrap_or_default()
    } else {
        Default::default()
    };
    super::policies::judge(&policies, binding, &labels, desired)
}

/// The `result` label of a pass in `tagbinder_reconcile_total`: a pass that left resources
/// failed is not `ok`.
fn pass_result(outcome: &Outcome) -> &'static str {
    match outcome.readiness.reason {
        reason::PARTIAL_FAILURE => "partial_failure",
        reason::PROVIDER_ERROR | reason::CREDENTIALS_INVALID => "cloud_error",
        _ => "ok",
    }
}
