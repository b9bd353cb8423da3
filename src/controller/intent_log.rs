//! The crash window (issue 14) in the controller: a pass's intent goes to its binding's
//! `status.pendingTags` before the round sends its writes, and the status write after the pass
//! clears it (or keeps what the cloud did not confirm). A controller killed in between finds
//! the intent in `status` at its next pass, which claims the keys the cloud carries with the
//! intended value (see [`crate::plan::intent`]).
//!
//! NB: this costs one status write per pass that writes tags it does not own yet (none at
//! rest: a resync that changes nothing writes nothing), in exchange for an ownership record
//! that no kill can lose. A single journal object per round would cost fewer writes, but needs
//! another resource (and RBAC), a size limit of its own, and a second source of truth.

use futures::StreamExt;

use super::context::Context;
use crate::api::{AppliedRecord, PendingRecord, ResourceTagBinding};
use crate::reconcile::identity::binding_key;
use crate::reconcile::intent_log::{Intent, IntentError, IntentLog, NOTHING_PENDING};
use crate::tags::{Ownership, TagsByResource};

/// The controller's [`IntentLog`] for the bindings of a round: an intent is written to
/// `status.pendingTags` (with the ownership record it extends) before the writes are sent, a
/// few bindings at a time; the status write after the pass clears it.
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

/// Writes a pass's intent before its writes: the binding's status with the ownership record
/// `owned` and `status.pendingTags` (no write when the status says so already).
async fn write_intent(
    binding: &ResourceTagBinding,
    owned: &Ownership,
    pending: &TagsByResource,
    ctx: &Context,
) -> Result<(), IntentError> {
    let mut status = binding.status.clone().unwrap_or_default();
    status.applied = AppliedRecord::from_ownership(owned);
    status.pending = PendingRecord::from_intent(pending);
    super::status::write(binding, status, ctx)
        .await
        .map_err(|error| {
            tracing::warn!(binding = %binding_key(binding), %error, "cannot record the intent");
            IntentError::Status(error.to_string())
        })
}
