//! Reads: the tags of resources by id, and the pages of every read (by id or by tag), each
//! answer read by the protocol under an [`Admit`] rule.

use super::{Client, Operation, Protocol};
use crate::cloud::pagination::Pagination;
use crate::cloud::{CallError, Refusal, RefusalReason};
use crate::tags::{Tags, TagsByResource};

/// Which resources of a list answer a read keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admit {
    /// Only the ids asked for (already in the map): the answer of a list by ids. Others are
    /// the server's confusion and are ignored.
    Requested,
    /// Every id the answer lists: the answer of a select by tag filter.
    Listed,
}

impl Admit {
    /// The tags to add a listed resource's tags to, or `None` when this read ignores it.
    pub fn entry<'a>(self, observed: &'a mut TagsByResource, id: &str) -> Option<&'a mut Tags> {
        match self {
            Admit::Requested => observed.get_mut(id),
            Admit::Listed => Some(observed.entry(id.to_string()).or_default()),
        }
    }
}

impl<P: Protocol> Client<P> {
    /// Lists one chunk of ids (at most `resources_per_call`), following the pages.
    pub(super) async fn list_chunk(
        &self,
        resource_type: &str,
        resource_ids: &[String],
        observed: &mut TagsByResource,
    ) -> Result<(), CallError> {
        self.read_pages(
            resource_type,
            resource_ids.len(),
            observed,
            Admit::Requested,
            |token| self.protocol.list_call(resource_type, resource_ids, token),
        )
        .await
    }

    /// Sends the call `call_from(token)` builds, from the first page to the last, each answer
    /// read into `observed` under `admit`; the pagination guard stops a server that would
    /// paginate forever.
    pub(super) async fn read_pages(
        &self,
        resource_type: &str,
        resources: usize,
        observed: &mut TagsByResource,
        admit: Admit,
        call_from: impl Fn(Option<&str>) -> Result<P::Call, Refusal>,
    ) -> Result<(), CallError> {
        let action = self.protocol.action(Operation::List);
        let mut pagination = Pagination::default();
        let mut token: Option<String> = None;
        let mut restarted = false;
        loop {
            let call = call_from(token.as_deref())?;
            let body = match self.call(action, resources, &call).await {
                Ok(body) => body,
                // NB: a listing whose token expired starts again, once: what it read stays
                // (the same resources are read again into the same map).
                Err(CallError::Cloud(error))
                    if token.is_some() && !restarted && self.protocol.restarts_listing(&error) =>
                {
                    tracing::debug!(action, code = %error.code, "the listing starts again");
                    restarted = true;
                    token = None;
                    pagination = Pagination::default();
                    continue;
                }
                Err(error) => return Err(error),
            };
            let next = self
                .protocol
                .read_list(resource_type, &body, observed, admit)
                .map_err(|error| self.not_a_document(action, &body, &error))?;
            token = pagination.advance(next.as_deref()).map_err(|error| {
                Refusal::new(RefusalReason::PaginationLoop, action, error.describe())
            })?;
            if token.is_none() {
                return Ok(());
            }
        }
    }
}
