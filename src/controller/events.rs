//! Events: on transitions only (tags applied, drift corrected, pruned, a conflict, a stall),
//! as `kubectl describe` shows them, with the reasons as constants; and one log line per write
//! call.

use std::collections::BTreeSet;

use kube::Resource;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder};

use super::context::Context;
use super::status::previous_reason;
use crate::api::ResourceTagBinding;
use crate::api::conditions::reason;
use crate::reconcile::Outcome;
use crate::reconcile::changes::{self, ChangeAction, KeyChange};
use crate::reconcile::identity::binding_key;

/// A pass wrote declared tags that were missing (Normal).
pub const TAGS_APPLIED: &str = "TagsApplied";
/// A pass rewrote tags that had drifted from their declared values (Normal).
pub const DRIFT_CORRECTED: &str = "DriftCorrected";
/// A pass (or a deletion) removed tags the binding no longer declares (Normal).
pub const PRUNED: &str = "Pruned";

pub(super) async fn publish_events(binding: &ResourceTagBinding, outcome: &Outcome, ctx: &Context) {
    let previous_reason = previous_reason(binding);
    log_writes(binding, &outcome.changes);
    for (action, reason) in [
        (ChangeAction::Rewrote, DRIFT_CORRECTED),
        (ChangeAction::Applied, TAGS_APPLIED),
        (ChangeAction::Pruned, PRUNED),
    ] {
        if let Some(note) = changes::describe_all(&outcome.changes, action) {
            publish(binding, EventType::Normal, reason, note, ctx).await;
        }
    }
    let reason = outcome.readiness.reason;
    if previous_reason != Some(reason)
        && (reason == reason::CONFLICT
            || outcome.readiness.stalled
            || reason == reason::PARTIAL_FAILURE)
    {
        publish(
            binding,
            EventType::Warning,
            reason,
            outcome.readiness.message.clone(),
            ctx,
        )
        .await;
    }
}

/// One info line per write call of the pass (tag, untag): the binding, its provider, the call,
/// the keys and how many resources. Tag values stay in the events and at debug level.
pub(super) fn log_writes(binding: &ResourceTagBinding, changes: &[KeyChange]) {
    for call in ["TagResources", "UntagResources"] {
        let of_call: Vec<&KeyChange> = changes.iter().filter(|c| c.action.call() == call).collect();
        if of_call.is_empty() {
            continue;
        }
        let keys: BTreeSet<&str> = of_call.iter().map(|c| c.key.as_str()).collect();
        let resources: BTreeSet<&str> = of_call
            .iter()
            .flat_map(|c| c.resources.iter().map(String::as_str))
            .collect();
        tracing::info!(
            binding = %binding_key(binding),
            provider = %binding.spec.provider_ref.name,
            action = call,
            keys = %keys.into_iter().collect::<Vec<_>>().join(","),
            resources = resources.len(),
            "wrote tags"
        );
        for change in of_call {
            tracing::debug!(binding = %binding_key(binding), "{}", change.describe());
        }
    }
}

/// The longest event note the API server takes (events.k8s.io/v1 `note`: 1 kB).
const NOTE_LIMIT: usize = 1024;

/// `note` cut to [`NOTE_LIMIT`] bytes at a character boundary, saying it was cut.
fn within_note_limit(mut note: String) -> String {
    const CUT: &str = " ...";
    if note.len() <= NOTE_LIMIT {
        return note;
    }
    let mut end = NOTE_LIMIT - CUT.len();
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    note.truncate(end);
    note.push_str(CUT);
    note
}

pub(super) async fn publish(
    binding: &ResourceTagBinding,
    type_: EventType,
    reason: &str,
    note: String,
    ctx: &Context,
) {
    let event = KubeEvent {
        type_,
        reason: reason.to_string(),
        note: Some(within_note_limit(note)),
        action: "Reconcile".to_string(),
        secondary: None,
    };
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    if let Err(error) = recorder.publish(&event, &binding.object_ref(&())).await {
        tracing::warn!(%error, "cannot publish event");
    }
}
