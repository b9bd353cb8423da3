//! Executing a plan: untag batches first (they free quota), then tag batches.

use std::collections::BTreeMap;

use crate::cloud::{CloudError, ErrorKind, ResourceError, TagApi, WriteResult};
use crate::plan::{Confirmed, Plan};
use crate::tags::Tags;

/// What the cloud confirmed and what failed.
#[derive(Debug, Default)]
pub(super) struct Executed {
    /// Writes the cloud confirmed.
    pub confirmed: Confirmed,
    /// First failure per resource.
    pub failures: BTreeMap<String, ResourceError>,
    /// An error that stopped the pass (credentials, or retryable after retries).
    pub stopped_by: Option<CloudError>,
    /// Calls made (each bisection step counts).
    pub calls: usize,
}

#[derive(Clone, Copy)]
enum Write<'a> {
    Tag(&'a Tags),
    Untag(&'a Tags),
}

impl Write<'_> {
    fn tags(&self) -> &Tags {
        match self {
            Write::Tag(tags) | Write::Untag(tags) => tags,
        }
    }
}

pub(super) async fn execute<C: TagApi>(cloud: &C, resource_type: &str, plan: &Plan) -> Executed {
    let mut executed = Executed::default();
    let writes = plan
        .untag_batches
        .iter()
        .map(|batch| (Write::Untag(&batch.tags), &batch.resource_ids))
        .chain(
            plan.tag_batches
                .iter()
                .map(|batch| (Write::Tag(&batch.tags), &batch.resource_ids)),
        );
    for (write, ids) in writes {
        executed.run(cloud, resource_type, write, ids).await;
        if executed.stopped_by.is_some() {
            break;
        }
    }
    executed
}

impl Executed {
    /// Runs one batch. An all-or-nothing call that fails for a terminal reason is split in
    /// halves until the bad resources are isolated, so one bad id does not block the others.
    async fn run<C: TagApi>(
        &mut self,
        cloud: &C,
        resource_type: &str,
        write: Write<'_>,
        ids: &[String],
    ) {
        let mut pending = vec![ids.to_vec()];
        while let Some(chunk) = pending.pop() {
            self.calls += 1;
            let result = match write {
                Write::Tag(tags) => cloud.tag_resources(resource_type, &chunk, tags).await,
                Write::Untag(tags) => cloud.untag_resources(resource_type, &chunk, tags).await,
            };
            match result {
                Ok(result) => self.record(write, &chunk, &result),
                Err(error) if stops_the_pass(&error) => {
                    tracing::warn!(%error, "cloud call failed; stopping this pass");
                    self.stopped_by = Some(error);
                    return;
                }
                Err(error) if chunk.len() > 1 => {
                    tracing::debug!(%error, resources = chunk.len(), "batch failed; splitting it to isolate the failing resources");
                    let (left, right) = chunk.split_at(chunk.len() / 2);
                    pending.push(right.to_vec());
                    pending.push(left.to_vec());
                }
                Err(error) => {
                    let id = chunk[0].clone();
                    self.failures.entry(id).or_insert(ResourceError {
                        kind: error.kind,
                        message: error.to_string(),
                    });
                }
            }
        }
    }

    fn record(&mut self, write: Write<'_>, ids: &[String], result: &WriteResult) {
        for id in ids {
            if let Some(error) = result.failed.get(id) {
                self.failures
                    .entry(id.clone())
                    .or_insert_with(|| error.clone());
                continue;
            }
            let confirmed = match write {
                Write::Tag(_) => &mut self.confirmed.written,
                Write::Untag(_) => &mut self.confirmed.pruned,
            };
            for key in write.tags().keys() {
                confirmed.insert((id.clone(), key.clone()));
            }
        }
    }
}

/// Credentials errors need a human; retryable errors that survived the client's retries mean
/// the cloud is struggling: in both cases further calls in this pass would fail the same way.
fn stops_the_pass(error: &CloudError) -> bool {
    matches!(error.kind, ErrorKind::Credentials | ErrorKind::Retryable)
}
