//! Executing a plan: untag batches first (they free quota), then tag batches, handed to the
//! client together so that a coalescing client can share calls with other bindings' writes.

use std::collections::BTreeMap;

use crate::cloud::{CloudError, ResourceError, TagApi, Write, WriteOp, WriteResult};
use crate::plan::{Confirmed, Plan};

/// What the cloud confirmed and what failed.
#[derive(Debug, Default)]
pub(super) struct Executed {
    /// Writes the cloud confirmed.
    pub confirmed: Confirmed,
    /// First failure per resource.
    pub failures: BTreeMap<String, ResourceError>,
    /// An error that stopped the pass (credentials, or retryable after retries).
    pub stopped_by: Option<CloudError>,
    /// Write calls this binding asked for (each bisection step counts). A coalescing client
    /// may carry several bindings' writes in one call, so the cloud may see fewer.
    pub calls: usize,
}

pub(super) async fn execute<C: TagApi>(cloud: &C, resource_type: &str, plan: &Plan) -> Executed {
    let writes: Vec<Write<'_>> = plan
        .untag_batches
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
        .collect();
    let mut executed = Executed::default();
    if writes.is_empty() {
        return executed;
    }
    let results = cloud.write_all(resource_type, &writes).await;
    for (write, result) in writes.iter().zip(results) {
        executed.calls += 1;
        match result {
            Ok(result) => executed.record(write, write.resource_ids, &result),
            Err(error) if stops_the_pass(&error) => {
                if executed.stopped_by.is_none() {
                    tracing::warn!(%error, "cloud call failed; stopping this pass");
                    executed.stopped_by = Some(error);
                }
            }
            Err(error) => {
                executed.isolate(cloud, resource_type, write, error).await;
            }
        }
    }
    executed
}

impl Executed {
    /// An all-or-nothing call failed for a terminal reason: split it in halves until the bad
    /// resources are isolated, so one bad id does not block the others. (A coalescing client
    /// does this itself and answers per resource.)
    async fn isolate<C: TagApi>(
        &mut self,
        cloud: &C,
        resource_type: &str,
        write: &Write<'_>,
        error: CloudError,
    ) {
        if write.resource_ids.len() <= 1 {
            self.fail_all(write.resource_ids, &error);
            return;
        }
        tracing::debug!(%error, resources = write.resource_ids.len(), "batch failed; splitting it to isolate the failing resources");
        let (left, right) = write.resource_ids.split_at(write.resource_ids.len() / 2);
        let mut pending = vec![right.to_vec(), left.to_vec()];
        while let Some(chunk) = pending.pop() {
            if self.stopped_by.is_some() {
                return;
            }
            self.calls += 1;
            let result = match write.op {
                WriteOp::Tag => cloud.tag_resources(resource_type, &chunk, write.tags).await,
                WriteOp::Untag => {
                    cloud
                        .untag_resources(resource_type, &chunk, write.tags)
                        .await
                }
            };
            match result {
                Ok(result) => self.record(write, &chunk, &result),
                Err(error) if stops_the_pass(&error) => {
                    tracing::warn!(%error, "cloud call failed; stopping this pass");
                    self.stopped_by = Some(error);
                }
                Err(_) if chunk.len() > 1 => {
                    let (left, right) = chunk.split_at(chunk.len() / 2);
                    pending.push(right.to_vec());
                    pending.push(left.to_vec());
                }
                Err(error) => self.fail_all(&chunk, &error),
            }
        }
    }

    fn fail_all(&mut self, ids: &[String], error: &CloudError) {
        for id in ids {
            self.failures.entry(id.clone()).or_insert(ResourceError {
                kind: error.kind,
                message: error.to_string(),
            });
        }
    }

    fn record(&mut self, write: &Write<'_>, ids: &[String], result: &WriteResult) {
        for id in ids {
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

/// Credentials errors need a human; retryable errors that survived the client's retries mean
/// the cloud is struggling: in both cases further calls in this pass would fail the same way.
fn stops_the_pass(error: &CloudError) -> bool {
    crate::cloud::stops_every_call(error)
}
