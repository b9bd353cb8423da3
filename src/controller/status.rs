//! From a pass's outcome to `status`: kstatus conditions with `observedGeneration`,
//! `lastTransitionTime` kept while a condition's status does not flip, and a comparison that
//! ignores timestamps so that a resync with nothing new writes nothing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};

use super::context::{Context, Record};
use super::{Error, FIELD_MANAGER};

use crate::api::conditions::{DRIFTED, READY, RECONCILING, STALLED, condition, reason};
use crate::api::{
    AppliedRecord, MAX_STATUS_FAILURES, PendingRecord, ResourceTagBinding, ResourceTagBindingStatus,
};
use crate::reconcile::{Outcome, Readiness};

/// Status writes (and events) of a round in flight at once.
pub(super) const WRITES_IN_FLIGHT: usize = 16;

/// The annotation Flux (and users) set to ask for a pass now.
pub const REQUESTED_AT_ANNOTATION: &str = "reconcile.fluxcd.io/requestedAt";

/// The status after a pass that got as far as the cloud; `desired` the tags it declared
/// (`status.desiredTags`; `None` for a deletion's pass); `sequence` the number of the record
/// the pass started from or recorded with its intent (see [`Context::record`]).
pub fn from_outcome(
    binding: &ResourceTagBinding,
    outcome: &Outcome,
    desired: Option<&crate::tags::Tags>,
    sequence: i64,
    now: jiff::Timestamp,
) -> ResourceTagBindingStatus {
    let previous = binding.status.clone().unwrap_or_default();
    let mut status = ResourceTagBindingStatus {
        observed_generation: binding.metadata.generation,
        conditions: conditions(binding, &outcome.readiness, now),
        desired_tags: desired.cloned(),
        applied: AppliedRecord::from_ownership(&outcome.ownership),
        pending: PendingRecord::from_intent(&outcome.pending),
        resources: Some(outcome.counts),
        failures: outcome
            .failures
            .iter()
            .take(MAX_STATUS_FAILURES)
            .cloned()
            .collect(),
        conflicts: outcome
            .conflicts
            .iter()
            .take(MAX_STATUS_FAILURES)
            .cloned()
            .collect(),
        last_sync_time: previous.last_sync_time.clone(),
        drift: outcome.drift.as_ref().map(|d| d.counts),
        drift_samples: outcome
            .drift
            .as_ref()
            .map(|d| d.samples.clone())
            .unwrap_or_default(),
        last_handled_reconcile_at: requested_at(binding),
        // NB: the record the pass started from (or its intent's): this status supersedes it.
        record_sequence: (sequence > 0).then_some(sequence),
        // NB: a failed read leaves the last resolution standing.
        selected: match (&outcome.selected, &binding.spec.resource_selector) {
            (Some(selected), _) => Some(selected.clone()),
            (None, Some(_)) => previous.selected.clone(),
            (None, None) => None,
        },
    };
    if let Some(drift) = &outcome.drift {
        status
            .conditions
            .push(drifted_condition(binding, drift, now));
    }
    if outcome.is_ready()
        && (outcome.writes.calls > 0 || previous.last_sync_time.is_none() || !was_ready(&previous))
    {
        status.last_sync_time = Some(now.to_string());
    }
    status
}

/// Observe mode's `Drifted` condition: True when some resource differs from the declared tags.
fn drifted_condition(
    binding: &ResourceTagBinding,
    drift: &crate::plan::Drift,
    now: jiff::Timestamp,
) -> Condition {
    let reason = if drift.is_drifted() {
        reason::DRIFTED
    } else {
        reason::OBSERVED
    };
    condition(
        previous_conditions(binding),
        (DRIFTED, drift.is_drifted()),
        reason,
        drift.message.clone(),
        binding.metadata.generation,
        now,
    )
}

/// The conditions in the binding's status (none before its first status).
fn previous_conditions(binding: &ResourceTagBinding) -> &[Condition] {
    binding
        .status
        .as_ref()
        .map(|s| s.conditions.as_slice())
        .unwrap_or_default()
}

/// The previous `Drifted` condition's status, if any: `Some(true)` when it was True.
pub fn was_drifted(binding: &ResourceTagBinding) -> Option<bool> {
    binding
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == DRIFTED)
        .map(|c| c.status == "True")
}

/// The status when the pass stopped before the cloud (provider missing, namespace not allowed,
/// credentials unusable, suspended): conditions change, the ownership record stays.
pub fn without_pass(
    binding: &ResourceTagBinding,
    readiness: &Readiness,
    now: jiff::Timestamp,
) -> ResourceTagBindingStatus {
    let previous = binding.status.clone().unwrap_or_default();
    ResourceTagBindingStatus {
        observed_generation: binding.metadata.generation,
        conditions: conditions(binding, readiness, now),
        last_handled_reconcile_at: requested_at(binding),
        ..previous
    }
}

fn requested_at(binding: &ResourceTagBinding) -> Option<String> {
    binding
        .annotations()
        .get(REQUESTED_AT_ANNOTATION)
        .cloned()
        .or_else(|| {
            binding
                .status
                .as_ref()
                .and_then(|s| s.last_handled_reconcile_at.clone())
        })
}

fn was_ready(status: &ResourceTagBindingStatus) -> bool {
    status
        .conditions
        .iter()
        .any(|c| c.type_ == READY && c.status == "True")
}

/// Ready always; Reconciling while retrying or progressing; Stalled when only a change of spec
/// or provider can help. Abnormal-true conditions are omitted when false (kstatus).
fn conditions(
    binding: &ResourceTagBinding,
    readiness: &Readiness,
    now: jiff::Timestamp,
) -> Vec<Condition> {
    let condition = |type_: &str, status: bool| {
        condition(
            previous_conditions(binding),
            (type_, status),
            readiness.reason,
            readiness.message.clone(),
            binding.metadata.generation,
            now,
        )
    };
    let mut conditions = vec![condition(READY, readiness.ready)];
    if readiness.stalled {
        conditions.push(condition(STALLED, true));
    } else if !readiness.ready {
        conditions.push(condition(RECONCILING, true));
    }
    conditions
}

/// True when two statuses differ in more than their timestamps.
pub fn differs(old: Option<&ResourceTagBindingStatus>, new: &ResourceTagBindingStatus) -> bool {
    let Some(old) = old else {
        return true;
    };
    without_timestamps(old) != without_timestamps(new)
}

fn without_timestamps(status: &ResourceTagBindingStatus) -> ResourceTagBindingStatus {
    let epoch = Time(jiff::Timestamp::UNIX_EPOCH);
    let mut status = status.clone();
    status.last_sync_time = None;
    for condition in &mut status.conditions {
        condition.last_transition_time = epoch.clone();
    }
    status
}

/// Writes the status with server-side apply, only when it changed beyond timestamps. The
/// ownership record it carries is kept in memory until the cached binding shows it (or, when
/// the write fails, until a later write succeeds).
pub(super) async fn write(
    binding: &ResourceTagBinding,
    status: ResourceTagBindingStatus,
    ctx: &Context,
) -> Result<(), Error> {
    let record = Record::of(&status);
    // NB: a record kept in memory is newer than the cache's status: a status equal to the
    // cache's is still written when it differs from the kept one.
    let kept_differs = ctx.unrecorded(binding).is_some_and(|kept| kept != record);
    if !differs(binding.status.as_ref(), &status) && !kept_differs {
        ctx.ownership_recorded(binding);
        return Ok(());
    }
    let api: Api<ResourceTagBinding> =
        Api::namespaced(ctx.client.clone(), &binding.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": ResourceTagBinding::api_version(&()),
        "kind": ResourceTagBinding::kind(&()),
        "status": status,
    });
    // NB: kept in memory until the cache's copy of the binding carries it (`Context::owned`),
    // whether the write succeeds or not.
    ctx.ownership_unrecorded(binding, record);
    api.patch_status(
        &binding.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(drop)
    .map_err(Error::Kube)
}

/// Whether the binding's status says Ready=True for its current generation.
pub(super) fn ready_at_generation(binding: &ResourceTagBinding) -> bool {
    binding.status.as_ref().is_some_and(|status| {
        status.observed_generation == binding.metadata.generation
            && status
                .conditions
                .iter()
                .any(|c| c.type_ == crate::api::conditions::READY && c.status == "True")
    })
}

/// The Ready condition in the binding's status.
fn ready_condition(binding: &ResourceTagBinding) -> Option<&Condition> {
    binding
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == crate::api::conditions::READY)
}

/// The reason of the Ready condition in the binding's status: events are published on its
/// transitions only.
pub(super) fn previous_reason(binding: &ResourceTagBinding) -> Option<&str> {
    ready_condition(binding).map(|c| c.reason.as_str())
}

/// The message of the Ready condition in the binding's status.
pub(super) fn previous_message(binding: &ResourceTagBinding) -> Option<&str> {
    ready_condition(binding).map(|c| c.message.as_str())
}
