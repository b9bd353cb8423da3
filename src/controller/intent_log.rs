//! The crash window (issue 14) in the controller: a pass's intent (the ownership record it
//! starts from and the tags it is about to write) goes to its binding's `tagbinder.io/intent`
//! annotation before the round sends its writes, in the same write as the finalizer when the
//! binding lacks it; the status write after the pass supersedes it (`status.recordSequence`).
//! A controller killed in between finds the intent on the binding at its next pass, which
//! claims the keys the cloud carries with the intended value (see [`crate::plan::intent`]).
//! An intent too large for an annotation goes to `status.pendingTags` instead.
//!
//! NB: this costs one write of the binding per pass that writes tags it does not own yet (none
//! at rest: a resync that changes nothing writes nothing), in exchange for an ownership record
//! that no kill can lose; on a binding's first pass that write carries the finalizer too
//! (issue 19: three writes for a first convergence, the intent, the status and an event,
//! instead of four). A single journal object per round would cost fewer writes, but needs
//! another resource (and RBAC), a size limit of its own, and a second source of truth.

use futures::StreamExt;

use kube::api::{Patch, PatchParams};
use kube::{Api, Resource, ResourceExt};

use super::context::{Context, Record};
use super::{Error, FIELD_MANAGER, FINALIZER};
use crate::api::{
    AppliedRecord, INTENT_ANNOTATION, IntentRecord, PendingRecord, ResourceTagBinding,
};
use crate::reconcile::identity::binding_key;
use crate::reconcile::intent_log::{Intent, IntentError, IntentLog, NOTHING_PENDING};
use crate::tags::{Ownership, TagsByResource};

/// The controller's [`IntentLog`] for the bindings of a round: an intent is written to the
/// binding's intent annotation (with the ownership record it extends) before the writes are
/// sent, a few bindings at a time; the status write after the pass supersedes it.
pub(super) struct StatusIntents<'a> {
    ctx: &'a Context,
    bindings: Vec<&'a ResourceTagBinding>,
    pending: Vec<&'a TagsByResource>,
}

impl<'a> StatusIntents<'a> {
    /// The intents of `bindings` (the round's inputs, in order), with their unresolved ones.
    pub fn new(
        ctx: &'a Context,
        bindings: Vec<&'a ResourceTagBinding>,
        pending: Vec<&'a TagsByResource>,
    ) -> Self {
        StatusIntents {
            ctx,
            bindings,
            pending,
        }
    }
}

impl StatusIntents<'_> {
    async fn write_one(&self, intent: &Intent<'_>) -> Result<(), IntentError> {
        let Some(binding) = self.bindings.get(intent.index) else {
            return Err(IntentError::NoSuchInput(intent.index));
        };
        write_intent(binding, intent.owned, intent.pending, self.ctx).await
    }
}

impl IntentLog for StatusIntents<'_> {
    fn pending(&self, index: usize) -> &TagsByResource {
        self.pending.get(index).copied().unwrap_or(&NOTHING_PENDING)
    }

    async fn record(&self, intents: &[Intent<'_>]) -> Vec<Result<(), IntentError>> {
        // NB: the futures are built first (they start when polled): a closure returning a
        // future that borrows its argument is not Send for every lifetime.
        let writes: Vec<_> = intents
            .iter()
            .map(|intent| self.write_one(intent))
            .collect();
        futures::stream::iter(writes)
            .buffered(super::status::WRITES_IN_FLIGHT)
            .collect()
            .await
    }
}

/// The largest intent annotation written: the object's annotations hold at most 256 KiB in
/// all, beside the user's (and `kubectl apply`'s copy of the object). A larger intent (a
/// selector binding over many resources) goes to `status`, which has room for it.
const MAX_INTENT_ANNOTATION: usize = 64 * 1024;

/// Writes a pass's intent before its writes, in one write of the binding when it can: the
/// intent annotation (the ownership record `owned`, the tags `pending`, a sequence number
/// above the record's), with the finalizer if the binding lacks it (a binding's first intent:
/// its deletion must prune what the pass writes). No write when the binding records this
/// already.
async fn write_intent(
    binding: &ResourceTagBinding,
    owned: &Ownership,
    pending: &TagsByResource,
    ctx: &Context,
) -> Result<(), IntentError> {
    let current = ctx.record(binding);
    let has_finalizer = has_finalizer(binding);
    if has_finalizer && current.owned == *owned && current.pending == *pending {
        return Ok(());
    }
    let record = Record {
        owned: owned.clone(),
        pending: pending.clone(),
        sequence: current.sequence + 1,
    };
    let value = serde_json::to_string(&IntentRecord {
        sequence: record.sequence,
        applied: AppliedRecord::from_ownership(owned),
        pending: PendingRecord::from_intent(pending),
    })
    .map_err(|error| IntentError::Status(error.to_string()))?;
    let written = if value.len() <= MAX_INTENT_ANNOTATION {
        // NB: kept in memory until the cache's copy carries it, whether the write succeeds or
        // not (as a status write's record): the next pass claims what the cloud confirms.
        ctx.ownership_unrecorded(binding, record);
        apply_metadata(binding, Some(&value), ctx).await
    } else {
        intent_in_status(binding, record, has_finalizer, ctx).await
    };
    written.map_err(|error| {
        tracing::warn!(binding = %binding_key(binding), %error, "cannot record the intent");
        IntentError::Status(error.to_string())
    })
}

/// An intent too large for an annotation: the finalizer first if the binding lacks it, then
/// the intent in `status` (its record with the higher sequence number).
async fn intent_in_status(
    binding: &ResourceTagBinding,
    record: Record,
    has_finalizer: bool,
    ctx: &Context,
) -> Result<(), Error> {
    if !has_finalizer {
        add_finalizer(binding, ctx).await?;
    }
    let mut status = binding.status.clone().unwrap_or_default();
    record.write_to(&mut status);
    super::status::write(binding, status, ctx).await
}

/// Adds the finalizer to a binding that records nothing and lacks it, at the end of a pass that
/// wrote nothing (a binding that writes gets it with its first intent): its deletion then reaches
/// the controller, which forgets it (metrics, caches). A failure is logged and left to the
/// next pass (the binding owns nothing its deletion would prune).
// NB: `records_something` comes from the pass (its outcome), not from `ctx.record`: the
// cached copy may show the status the pass just wrote, and not yet the finalizer its intent
// carried.
pub(super) async fn ensure_finalizer(
    binding: &ResourceTagBinding,
    records_something: bool,
    ctx: &Context,
) {
    if records_something || binding.metadata.deletion_timestamp.is_some() || has_finalizer(binding)
    {
        return;
    }
    if let Err(error) = add_finalizer(binding, ctx).await {
        tracing::warn!(binding = %binding_key(binding), %error, "cannot add the finalizer");
    }
}

/// Whether the binding (as this copy shows it) carries the controller's finalizer.
pub(super) fn has_finalizer(binding: &ResourceTagBinding) -> bool {
    binding.finalizers().iter().any(|f| f == FINALIZER)
}

/// The field manager of the finalizer applied alone: it never owns the intent annotation, so
/// its applies never remove one (server-side apply removes what a manager owned and left out).
const FINALIZER_MANAGER: &str = "tagbinder-finalizer";

/// Adds the finalizer to a binding that lacks it (as the cached copy shows it).
pub(super) async fn add_finalizer(
    binding: &ResourceTagBinding,
    ctx: &Context,
) -> Result<(), Error> {
    apply_metadata(binding, None, ctx).await
}

/// Applies (server-side apply) the finalizer, and the intent annotation `intent` if any, to
/// the binding's metadata: the finalizers are a set and the annotations a map, so nobody
/// else's entries change. The intent's applies (manager `tagbinder`) always carry an intent,
/// the finalizer's alone have a manager of their own: neither removes an intent. Never
/// creates the object: a binding deleted since lacks the required `spec`, and the apiserver
/// refuses.
async fn apply_metadata(
    binding: &ResourceTagBinding,
    intent: Option<&str>,
    ctx: &Context,
) -> Result<(), Error> {
    let api: Api<ResourceTagBinding> =
        Api::namespaced(ctx.client.clone(), &binding.namespace().unwrap_or_default());
    let mut metadata = serde_json::json!({
        "name": binding.name_any(),
        "uid": binding.uid(),
        "finalizers": [FINALIZER],
    });
    if let Some(intent) = intent {
        metadata["annotations"] = serde_json::json!({ INTENT_ANNOTATION: intent });
    }
    let patch = serde_json::json!({
        "apiVersion": ResourceTagBinding::api_version(&()),
        "kind": ResourceTagBinding::kind(&()),
        "metadata": metadata,
    });
    let manager = if intent.is_some() {
        FIELD_MANAGER
    } else {
        FINALIZER_MANAGER
    };
    api.patch(
        &binding.name_any(),
        &PatchParams::apply(manager).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(drop)
    .map_err(Error::Kube)
}
