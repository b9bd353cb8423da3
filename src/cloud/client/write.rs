//! Writes: the batch-limit check, one tag or untag call, and the settling of failures whose
//! outcome is in doubt.

use super::{Client, Protocol};
use crate::cloud::{
    CallError, Refusal, RefusalReason, ResourceError, TagApi, WriteOp, WriteResult,
};
use crate::tags::Tags;

impl<P: Protocol> Client<P> {
    /// Refuses, before sending, a write the caller should have batched (a programming error).
    pub(super) fn check_batch(
        &self,
        action: &'static str,
        op: WriteOp,
        resource_ids: usize,
        tags: usize,
    ) -> Result<(), Refusal> {
        let limits = self.protocol.settings().limits;
        let (item_limit, item_name) = match op {
            WriteOp::Tag => (limits.tags_per_call, "tags"),
            WriteOp::Untag => (limits.keys_per_untag_call, "tag keys"),
        };
        let excess = if resource_ids > limits.resources_per_call {
            Some((resource_ids, limits.resources_per_call, "resource ids"))
        } else if tags > item_limit {
            Some((tags, item_limit, item_name))
        } else {
            None
        };
        match excess {
            None => Ok(()),
            Some((count, limit, what)) => Err(Refusal::new(
                RefusalReason::BatchTooLarge,
                action,
                format!(
                    "{count} {what} in one {action} call; this API accepts at most {limit} per \
                     call, so the caller must split the batch (nothing was sent)"
                ),
            )),
        }
    }

    /// A write: the limits checked, one call, per-resource results.
    pub(super) async fn write(
        &self,
        op: WriteOp,
        resource_type: &str,
        resource_ids: &[String],
        tags: &Tags,
    ) -> Result<WriteResult, CallError> {
        if resource_ids.is_empty() || tags.is_empty() {
            return Ok(WriteResult::default());
        }
        let action = self.protocol.action(op.into());
        self.check_batch(action, op, resource_ids.len(), tags.len())?;
        self.set_up().await?;
        let call = self
            .protocol
            .write_call(op, resource_type, resource_ids, tags)?;
        let body = self.call(action, resource_ids.len(), &call).await?;
        let mut result = self
            .protocol
            .read_write(op, resource_type, resource_ids, &body)
            .map_err(|error| self.not_a_document(action, &body, &error))?;
        let doubtful = self
            .protocol
            .doubtful_failures(resource_type, resource_ids, &body);
        if !doubtful.is_empty() {
            self.settle_doubtful(op, resource_type, tags, doubtful, &mut result)
                .await;
        }
        if !result.failed.is_empty() {
            tracing::debug!(
                action,
                failed = result.failed.len(),
                "some resources failed"
            );
        }
        Ok(result)
    }
}

impl<P: Protocol> Client<P> {
    /// Settles the doubtful failures of a write (see [`Protocol::doubtful_failures`]): the
    /// write of those resources is sent once more; what is still in doubt is read, and a
    /// resource that carries the write's effect is written. Whatever stays failed keeps its
    /// error, its message saying what was tried.
    pub(super) async fn settle_doubtful(
        &self,
        op: WriteOp,
        resource_type: &str,
        tags: &Tags,
        doubtful: Vec<String>,
        result: &mut WriteResult,
    ) {
        let action = self.protocol.action(op.into());
        let mut still = doubtful;
        let retried = match self.protocol.write_call(op, resource_type, &still, tags) {
            Ok(call) => self.call(action, still.len(), &call).await.ok(),
            Err(_) => None,
        };
        if let Some(body) = retried
            && let Ok(answer) = self.protocol.read_write(op, resource_type, &still, &body)
        {
            let again = self
                .protocol
                .doubtful_failures(resource_type, &still, &body);
            for id in &still {
                match answer.failed.get(id) {
                    None => {
                        result.failed.remove(id);
                    }
                    Some(error) if !again.contains(id) => {
                        result.failed.insert(id.clone(), error.clone());
                    }
                    Some(_) => {}
                }
            }
            still.retain(|id| again.contains(id));
        }
        if still.is_empty() {
            return;
        }
        tracing::debug!(action, resources = still.len(), "a doubtful write is read");
        let observed = match TagApi::list_tags(self, resource_type, &still).await {
            Ok(observed) => observed,
            Err(error) => {
                for id in &still {
                    if let Some(failed) = result.failed.get_mut(id) {
                        failed.message = format!(
                            "{} (retried once; the read that would tell whether it was \
                             applied failed: {})",
                            failed.message,
                            error.message()
                        );
                    }
                }
                return;
            }
        };
        for id in still {
            let carried = observed.get(&id);
            let applied = match op {
                WriteOp::Tag => tags
                    .iter()
                    .all(|(key, value)| carried.and_then(|t| t.get(key)) == Some(value)),
                WriteOp::Untag => tags
                    .keys()
                    .all(|key| carried.is_none_or(|t| !t.contains_key(key))),
            };
            if applied {
                result.failed.remove(&id);
            } else if let Some(failed) = result.failed.get_mut(&id) {
                failed.message = format!(
                    "{} (twice; a read shows the {action} was not applied: the API may not \
                     support this resource's type, or failed for a moment; retried with the \
                     next pass)",
                    failed.message
                );
            }
        }
    }
}

/// Keeps, of the resources a write answer reports as failed, those the call carried: an id
/// the call did not carry is the server's confusion, not a result.
pub(crate) fn failures_of_call(
    resource_ids: &[String],
    failed: impl IntoIterator<Item = (String, ResourceError)>,
) -> WriteResult {
    let mut result = WriteResult::default();
    for (id, error) in failed {
        if resource_ids.contains(&id) {
            result.failed.insert(id, error);
        } else {
            tracing::debug!(resource = %id, "a write answer names a resource not in the call");
        }
    }
    result
}
