//! One write call with the failing resources isolated: an all-or-nothing call (Alibaba
//! Cloud's product APIs) that fails for a terminal reason is split in halves until the bad
//! resources are alone, so that one bad id never fails the others. Used by every client's
//! [`TagApi::write_all`] and by the coalescing [`super::batcher::Batcher`].

use std::collections::HashMap;

use super::{CallError, ResourceError, TagApi, WriteOp, WriteResult, stops_every_call};
use crate::tags::Tags;

/// Sends one write call.
pub async fn send<C: TagApi + ?Sized>(
    cloud: &C,
    resource_type: &str,
    op: WriteOp,
    resource_ids: &[String],
    tags: &Tags,
) -> Result<WriteResult, CallError> {
    match op {
        WriteOp::Tag => cloud.tag_resources(resource_type, resource_ids, tags).await,
        WriteOp::Untag => {
            cloud
                .untag_resources(resource_type, resource_ids, tags)
                .await
        }
    }
}

/// Sends one write call; when it fails for a terminal reason, splits it in halves until the
/// failing resources are alone. An error that stops every call (credentials, or retryable
/// after retries) ends the splitting: the resources not yet written are `Stopped` with it.
/// One outcome per resource.
pub async fn write_isolating<C: TagApi + ?Sized>(
    cloud: &C,
    resource_type: &str,
    op: WriteOp,
    resource_ids: Vec<String>,
    tags: &Tags,
) -> Vec<(String, IdOutcome)> {
    let mut outcomes = Vec::with_capacity(resource_ids.len());
    let mut pending = vec![resource_ids];
    let mut stopped: Option<CallError> = None;
    while let Some(chunk) = pending.pop() {
        if let Some(error) = &stopped {
            outcomes.extend(
                chunk
                    .into_iter()
                    .map(|id| (id, IdOutcome::Stopped(error.clone()))),
            );
            continue;
        }
        match send(cloud, resource_type, op, &chunk, tags).await {
            Ok(result) => outcomes.extend(chunk.into_iter().map(|id| {
                let outcome = match result.failed.get(&id) {
                    Some(error) => IdOutcome::Failed(error.clone()),
                    None => IdOutcome::Written,
                };
                (id, outcome)
            })),
            Err(error) if stops_every_call(&error) => {
                tracing::warn!(%error, "cloud call failed; no further calls now");
                outcomes.extend(
                    chunk
                        .into_iter()
                        .map(|id| (id, IdOutcome::Stopped(error.clone()))),
                );
                stopped = Some(error);
            }
            Err(error) if chunk.len() > 1 => {
                tracing::debug!(%error, resources = chunk.len(), "write failed; splitting it to isolate the failing resources");
                let mut left = chunk;
                let right = left.split_off(left.len() / 2);
                pending.push(right);
                pending.push(left);
            }
            Err(error) => {
                let failure = ResourceError {
                    kind: error.kind(),
                    message: error.to_string(),
                };
                outcomes.extend(
                    chunk
                        .into_iter()
                        .map(|id| (id, IdOutcome::Failed(failure.clone()))),
                );
            }
        }
    }
    outcomes
}

/// The first error that stopped a resource of `outcomes`, if one did.
pub fn stop_of(outcomes: &[(String, IdOutcome)]) -> Option<&CallError> {
    outcomes.iter().find_map(|(_, outcome)| match outcome {
        IdOutcome::Stopped(error) => Some(error),
        _ => None,
    })
}

/// [`route_write`] over the outcomes of one call.
pub fn result_of(
    resource_ids: &[String],
    outcomes: &[(String, IdOutcome)],
) -> Result<WriteResult, CallError> {
    let by_id: HashMap<&str, &IdOutcome> = outcomes
        .iter()
        .map(|(id, outcome)| (id.as_str(), outcome))
        .collect();
    route_write(resource_ids, &by_id)
}

/// What became of one resource of a write call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IdOutcome {
    /// The cloud confirmed the write.
    Written,
    /// The cloud refused it for this resource (per-resource result, or a call of this
    /// resource alone that failed for a terminal reason).
    Failed(ResourceError),
    /// The call failed with an error that stops every call (credentials, or retryable after
    /// retries), or was not sent after one did.
    Stopped(CallError),
}

/// What a write request gets back, from the outcomes of its resources (every id of the
/// request must have one): `Err` when every resource was stopped (the first error), else the
/// per-resource failures, where a stopped resource fails with its error's kind and message.
pub fn route_write(
    resource_ids: &[String],
    outcomes: &HashMap<&str, &IdOutcome>,
) -> Result<WriteResult, CallError> {
    let mut result = WriteResult::default();
    let mut first_stop: Option<&CallError> = None;
    let mut all_stopped = !resource_ids.is_empty();
    for id in resource_ids {
        match outcomes.get(id.as_str()) {
            Some(IdOutcome::Written) => all_stopped = false,
            Some(IdOutcome::Failed(error)) => {
                all_stopped = false;
                result.failed.insert(id.clone(), error.clone());
            }
            Some(IdOutcome::Stopped(error)) => {
                first_stop.get_or_insert(error);
                result.failed.insert(
                    id.clone(),
                    ResourceError {
                        kind: error.kind(),
                        message: error.to_string(),
                    },
                );
            }
            None => {
                // NB: the round computes an outcome for every id it was asked for; a missing
                // one would be a bug, and is no write the cloud confirmed.
                all_stopped = false;
                result.failed.insert(
                    id.clone(),
                    ResourceError {
                        kind: crate::cloud::ErrorKind::Retryable,
                        message: "no answer for this resource in its coalesced call".to_string(),
                    },
                );
            }
        }
    }
    match first_stop {
        Some(error) if all_stopped => Err(error.clone()),
        _ => Ok(result),
    }
}
