//! Executing a plan: untag batches first (they free quota), then tag batches, handed to the
//! client together so that a coalescing client can share calls with other bindings' writes.

use std::collections::BTreeMap;

use crate::cloud::{
    CallError, ErrorKind, ResourceError, TagApi, Write, WriteOp, WriteResult, stops_every_call,
};
use crate::plan::{Confirmed, Plan};

/// What the cloud confirmed and what failed.
#[derive(Debug, Default)]
pub(super) struct Executed {
    /// Writes the cloud confirmed.
    pub confirmed: Confirmed,
    /// First failure per resource.
    pub failures: BTreeMap<String, ResourceError>,
    /// An error that stopped the pass (credentials, or retryable after retries).
    pub stopped_by: Option<super::PassError>,
    /// Write calls this binding asked for. The client may make more (isolating a failing
    /// resource) or fewer (a coalescing client shares calls between bindings).
    pub calls: usize,
}

pub(super) async fn execute<C: TagApi>(cloud: &C, resource_type: &str, plan: &Plan) -> Executed {
    let writes = writes_of(plan);
    if writes.is_empty() {
        return Executed::default();
    }
    let results = cloud.write_all(resource_type, &writes).await;
    Executed::from_results(&writes, results)
}

/// The writes of a plan: untag batches first (they free quota), then tag batches.
pub(super) fn writes_of(plan: &Plan) -> Vec<Write<'_>> {
    plan.untag_batches
        .iter()
        .map(|batch| Write {
            op: WriteOp::Untag,
            resource_ids: &batch.resource_ids,
            tags: &batch.tags,
        })
        .chain(plan.tag_batches.iter().map(|batch| Write {
            op: WriteOp::Tag,
            resource_ids: &batch.resource_ids,
            tags: &batch.tags,
        }))
        .collect()
}

impl Executed {
    /// What the answers to `writes` (in order) confirmed and failed.
    pub(super) fn from_results(
        writes: &[Write<'_>],
        results: impl IntoIterator<Item = Result<WriteResult, CallError>>,
    ) -> Self {
        let mut executed = Executed::default();
        let mut retryable: Option<CallError> = None;
        let mut every_write_retryable = true;
        for (write, result) in writes.iter().zip(results) {
            executed.calls += 1;
            match result {
                Ok(result) => {
                    every_write_retryable = false;
                    executed.record(write, &result);
                }
                Err(error) if error.kind() == ErrorKind::Credentials => {
                    executed.stopped_by.get_or_insert(error.into());
                }
                // NB: a call that outlived its retries (a throttling storm) fails the
                // resources of that call, not the pass: the others' writes are confirmed
                // and recorded (issue 20).
                Err(error) if stops_every_call(&error) => {
                    executed.fail_all(write.resource_ids, &error);
                    retryable.get_or_insert(error);
                }
                // NB: the client isolates failing resources itself (`write_all`); an error of
                // a whole write that does not stop the pass is each of its resources' failure.
                Err(error) => {
                    every_write_retryable = false;
                    executed.fail_all(write.resource_ids, &error);
                }
            }
        }
        // NB: when nothing got through, the cloud is down for this pass: say so as such.
        if every_write_retryable && let Some(error) = retryable {
            executed.failures.clear();
            executed.stopped_by.get_or_insert(error.into());
        }
        executed
    }

    fn fail_all(&mut self, ids: &[String], error: &CallError) {
        for id in ids {
            self.failures.entry(id.clone()).or_insert(ResourceError {
                kind: error.kind(),
                message: error.to_string(),
            });
        }
    }

    fn record(&mut self, write: &Write<'_>, result: &WriteResult) {
        for id in write.resource_ids {
            if let Some(error) = result.failed.get(id) {
                self.failures
                    .entry(id.clone())
                    .or_insert_with(|| error.clone());
                continue;
            }
            let confirmed = match write.op {
                WriteOp::Tag => &mut self.confirmed.written,
                WriteOp::Untag => &mut self.confirmed.pruned,
            };
            for key in write.tags.keys() {
                confirmed.insert((id.clone(), key.clone()));
            }
        }
    }
}
