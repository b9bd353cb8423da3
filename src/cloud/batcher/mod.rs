//! Coalescing of many callers' tag API calls into shared calls: a [`TagApi`] over another
//! (one provider's client) that gathers the requests of a round, per resource type, and sends
//! them as the fewest calls (see [`merge`]): one read of each distinct resource, `per_call`
//! resources a call; one write of each distinct (payload, resource), where identical payloads
//! (the same tags, or the same chunk of tags) share calls. Each caller gets its own answer:
//! the tags of its resources, the outcome of its resources.
//!
//! Selects (list by tag) name no resource and join no round: they go to the inner client
//! at once, and identical ones in flight together share one call (`select`).
//!
//! A round closes when
//! - every registered [`Participant`] of the resource type has a request waiting (or has
//!   left): the CLI registers every binding of a run, so its rounds, and the calls they make,
//!   do not depend on timing; or
//! - when nobody is registered (the controller), a short window after its first request.
//!
//! A write call that fails for a terminal reason (an all-or-nothing write refused because of
//! one bad resource) is split in halves until the bad resources are isolated, so one caller's
//! bad id never fails another caller's resources. Reads that fail that way are retried per
//! request, for the same reason. Errors that stop every call (credentials, throttling or
//! outages that outlived the retries) go to every caller concerned.

pub mod merge;
mod select;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::oneshot;

use self::merge::WriteCall;
use super::isolate::{self, IdOutcome, route_write};
use super::{
    AddressError, CallError, Refusal, RefusalReason, TagApi, Write, WriteOp, WriteResult,
    stops_every_call,
};
use crate::tags::{Limits, Tags, TagsByResource};

/// How long the first request of a round waits for others when no participant is registered.
pub const DEFAULT_WINDOW: Duration = Duration::from_millis(20);

/// Most calls of one round in flight at once (the rate limiter paces them further).
const MAX_IN_FLIGHT: usize = 32;

/// A coalescing client over `C`. Cloning shares the rounds.
pub struct Batcher<C> {
    shared: Arc<Shared<C>>,
}

impl<C> Clone for Batcher<C> {
    fn clone(&self) -> Self {
        Batcher {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<C: std::fmt::Debug> std::fmt::Debug for Batcher<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("inner", &self.shared.inner)
            .field("window", &self.shared.window)
            .finish_non_exhaustive()
    }
}

struct Shared<C> {
    inner: C,
    window: Duration,
    queues: Mutex<HashMap<String, Queue>>,
    next_participant: AtomicU64,
    selects: select::InFlight,
}

/// The round being gathered for one resource type.
#[derive(Default)]
struct Queue {
    /// Participants registered and not gone.
    active: usize,
    /// Participants with a request in `pending`.
    waiting: HashSet<u64>,
    pending: Vec<Request>,
    /// Rounds sent so far; a window timer only closes the round it was armed for.
    rounds: u64,
    timer_armed: bool,
    /// The window of the round being gathered has passed (it waits for the round in flight).
    window_passed: bool,
    /// A round of this resource type is being sent: the next one gathers until it is done.
    in_flight: bool,
}

struct Request {
    resource_ids: Vec<String>,
    kind: RequestKind,
}

enum RequestKind {
    List(oneshot::Sender<Result<TagsByResource, CallError>>),
    Write {
        op: WriteOp,
        tags: Tags,
        reply: oneshot::Sender<Result<WriteResult, CallError>>,
    },
}

/// One caller of a coordinated run (a binding of a CLI run): until it is dropped, rounds of
/// its resource type wait for its requests. Calls on another resource type are not waited
/// for.
pub struct Participant<C: TagApi + Clone + 'static> {
    batcher: Batcher<C>,
    resource_type: String,
    id: u64,
}

impl<C: TagApi + Clone + 'static> Batcher<C> {
    /// A batcher over `inner` whose rounds without participants close `window` after their
    /// first request.
    pub fn new(inner: C, window: Duration) -> Self {
        Batcher {
            shared: Arc::new(Shared {
                inner,
                window,
                queues: Mutex::new(HashMap::new()),
                next_participant: AtomicU64::new(1),
                selects: select::InFlight::default(),
            }),
        }
    }

    /// The client the calls go to.
    pub fn inner(&self) -> &C {
        &self.shared.inner
    }

    /// Registers a caller whose requests on `resource_type` every round waits for, until it
    /// is dropped. Register every participant before any of them sends a request.
    pub fn participant(&self, resource_type: &str) -> Participant<C> {
        let id = self.shared.next_participant.fetch_add(1, Ordering::Relaxed);
        self.lock()
            .entry(resource_type.to_string())
            .or_default()
            .active += 1;
        Participant {
            batcher: self.clone(),
            resource_type: resource_type.to_string(),
            id,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Queue>> {
        // NB: every critical section leaves the queues consistent; a poisoned lock is safe.
        self.shared
            .queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds requests of `caller` (a participant id, or `None`) to the round of
    /// `resource_type`, and closes the round if that completes it.
    fn enqueue(&self, resource_type: &str, caller: Option<u64>, requests: Vec<Request>) {
        let mut queues = self.lock();
        let queue = queues.entry(resource_type.to_string()).or_default();
        queue.pending.extend(requests);
        if let Some(id) = caller {
            queue.waiting.insert(id);
        }
        self.decide(resource_type, queue);
    }

    fn leave(&self, resource_type: &str, id: u64) {
        let mut queues = self.lock();
        if let Some(queue) = queues.get_mut(resource_type) {
            queue.active = queue.active.saturating_sub(1);
            queue.waiting.remove(&id);
            self.decide(resource_type, queue);
        }
    }

    /// Sends the round when it is complete, or arms its window.
    ///
    /// One round per resource type is in flight at a time: while one is being sent (its calls
    /// waiting for the rate limiter, or for the cloud), the next one keeps gathering, so that
    /// under load rounds grow and calls are fewer, as in a group commit. Without load, a round
    /// goes when its window has passed, or when every participant has asked.
    fn decide(&self, resource_type: &str, queue: &mut Queue) {
        if queue.pending.is_empty() {
            return;
        }
        let complete = if queue.active > 0 {
            queue.waiting.len() >= queue.active
        } else {
            queue.window_passed
        };
        if complete && !queue.in_flight {
            self.send_round(resource_type, queue);
            return;
        }
        if queue.active == 0 && !queue.timer_armed {
            queue.timer_armed = true;
            let round = queue.rounds;
            let batcher = self.clone();
            let resource_type = resource_type.to_string();
            spawn(async move {
                tokio::time::sleep(batcher.shared.window).await;
                let mut queues = batcher.lock();
                if let Some(queue) = queues.get_mut(&resource_type)
                    && queue.rounds == round
                {
                    queue.window_passed = true;
                    batcher.decide(&resource_type, queue);
                }
            });
        }
    }

    fn send_round(&self, resource_type: &str, queue: &mut Queue) {
        let requests = std::mem::take(&mut queue.pending);
        queue.waiting.clear();
        queue.rounds += 1;
        queue.timer_armed = false;
        queue.window_passed = false;
        queue.in_flight = true;
        let batcher = self.clone();
        let resource_type = resource_type.to_string();
        spawn(async move {
            let _done = RoundDone {
                batcher: batcher.clone(),
                resource_type: resource_type.clone(),
            };
            batcher.send_calls(&resource_type, requests).await;
        });
    }

    async fn send_calls(&self, resource_type: &str, requests: Vec<Request>) {
        let mut lists = Vec::new();
        let mut writes = Vec::new();
        for request in requests {
            match request.kind {
                RequestKind::List(reply) => lists.push((request.resource_ids, reply)),
                RequestKind::Write { op, tags, reply } => {
                    writes.push((op, tags, request.resource_ids, reply));
                }
            }
        }
        tracing::debug!(
            resource_type,
            reads = lists.len(),
            writes = writes.len(),
            "coalesced round"
        );
        let reads = self.run_lists(resource_type, lists);
        let writes = async {
            // NB: untags first, as a single caller would: they free quota for the tags.
            let (untags, tags): (Vec<_>, Vec<_>) = writes
                .into_iter()
                .partition(|(op, ..)| *op == WriteOp::Untag);
            self.run_writes(resource_type, untags).await;
            self.run_writes(resource_type, tags).await;
        };
        futures::join!(reads, writes);
    }

    async fn run_lists(&self, resource_type: &str, lists: ListRequests) {
        if lists.is_empty() {
            return;
        }
        let inner = &self.shared.inner;
        let calls = merge::list_calls(lists.iter().map(|(ids, _)| ids.as_slice()), inner.limits());
        let reads: Vec<_> = calls
            .iter()
            .map(|ids| inner.list_tags(resource_type, ids))
            .collect();
        let answers: Vec<Result<TagsByResource, CallError>> = futures::stream::iter(reads)
            .buffered(MAX_IN_FLIGHT)
            .collect()
            .await;
        let call_of: HashMap<&str, usize> = calls
            .iter()
            .enumerate()
            .flat_map(|(index, ids)| ids.iter().map(move |id| (id.as_str(), index)))
            .collect();
        let shared_call = |index: usize| {
            lists
                .iter()
                .filter(|(ids, _)| {
                    ids.iter()
                        .any(|id| call_of.get(id.as_str()) == Some(&index))
                })
                .count()
                > 1
        };
        let (answers, call_of, shared_call) = (&answers, &call_of, &shared_call);
        let routed: Vec<_> = lists
            .iter()
            .map(|(ids, _)| async move {
                let mut tags = TagsByResource::new();
                for id in ids {
                    let Some(&index) = call_of.get(id.as_str()) else {
                        continue;
                    };
                    match &answers[index] {
                        Ok(answer) => {
                            tags.insert(id.clone(), answer.get(id).cloned().unwrap_or_default());
                        }
                        // NB: another caller's bad id must not fail this caller's read: read its
                        // own ids alone.
                        Err(error) if !stops_every_call(error) && shared_call(index) => {
                            return inner.list_tags(resource_type, ids).await;
                        }
                        Err(error) => return Err(error.clone()),
                    }
                }
                Ok(tags)
            })
            .collect();
        let results: Vec<_> = futures::stream::iter(routed)
            .buffered(MAX_IN_FLIGHT)
            .collect()
            .await;
        for ((_, reply), result) in lists.into_iter().zip(results) {
            // NB: a caller that went away does not need its answer.
            let _ = reply.send(result);
        }
    }

    async fn run_writes(&self, resource_type: &str, writes: WriteRequests) {
        if writes.is_empty() {
            return;
        }
        let calls = merge::write_calls(
            writes
                .iter()
                .map(|(op, tags, ids, _)| (*op, tags, ids.as_slice())),
            self.shared.inner.limits(),
        );
        let calls: Vec<CallOutcomes> = futures::stream::iter(calls)
            .map(|call| self.write_isolating(resource_type, call))
            .buffered(MAX_IN_FLIGHT)
            .collect()
            .await;
        let mut by_payload: HashMap<(WriteOp, &Tags), HashMap<&str, &IdOutcome>> = HashMap::new();
        for call in &calls {
            let outcomes = by_payload.entry((call.op, &call.tags)).or_default();
            for (id, outcome) in &call.outcomes {
                outcomes.insert(id.as_str(), outcome);
            }
        }
        let none = HashMap::new();
        let results: Vec<Result<WriteResult, CallError>> = writes
            .iter()
            .map(|(op, tags, ids, _)| {
                route_write(ids, by_payload.get(&(*op, tags)).unwrap_or(&none))
            })
            .collect();
        for ((.., reply), result) in writes.into_iter().zip(results) {
            // NB: a caller that went away does not need its answer.
            let _ = reply.send(result);
        }
    }

    /// Sends one write call, its failing resources isolated.
    async fn write_isolating(&self, resource_type: &str, call: WriteCall) -> CallOutcomes {
        let WriteCall {
            op,
            tags,
            resource_ids,
        } = call;
        let outcomes =
            isolate::write_isolating(&self.shared.inner, resource_type, op, resource_ids, &tags)
                .await;
        CallOutcomes { op, tags, outcomes }
    }

    async fn list(
        &self,
        caller: Option<u64>,
        resource_type: &str,
        resource_ids: &[String],
    ) -> Result<TagsByResource, CallError> {
        if resource_ids.is_empty() {
            return Ok(TagsByResource::new());
        }
        let (reply, answer) = oneshot::channel();
        let request = Request {
            resource_ids: resource_ids.to_vec(),
            kind: RequestKind::List(reply),
        };
        self.enqueue(resource_type, caller, vec![request]);
        answer
            .await
            .unwrap_or_else(|_| Err(dropped("ListTagResources")))
    }

    /// Several reads of one caller in one round, one answer each.
    async fn list_each(
        &self,
        caller: Option<u64>,
        resource_type: &str,
        reads: &[Vec<String>],
    ) -> Vec<Result<TagsByResource, CallError>> {
        let mut requests = Vec::new();
        let mut answers = Vec::with_capacity(reads.len());
        for ids in reads {
            if ids.is_empty() {
                answers.push(None);
                continue;
            }
            let (reply, answer) = oneshot::channel();
            requests.push(Request {
                resource_ids: ids.clone(),
                kind: RequestKind::List(reply),
            });
            answers.push(Some(answer));
        }
        if !requests.is_empty() {
            self.enqueue(resource_type, caller, requests);
        }
        let mut results = Vec::with_capacity(answers.len());
        for answer in answers {
            results.push(match answer {
                None => Ok(TagsByResource::new()),
                Some(answer) => answer
                    .await
                    .unwrap_or_else(|_| Err(dropped("ListTagResources"))),
            });
        }
        results
    }

    async fn write(
        &self,
        caller: Option<u64>,
        resource_type: &str,
        writes: &[Write<'_>],
    ) -> Vec<Result<WriteResult, CallError>> {
        let mut requests = Vec::new();
        let mut answers = Vec::with_capacity(writes.len());
        for write in writes {
            if write.resource_ids.is_empty() || write.tags.is_empty() {
                answers.push(None);
                continue;
            }
            let (reply, answer) = oneshot::channel();
            requests.push(Request {
                resource_ids: write.resource_ids.to_vec(),
                kind: RequestKind::Write {
                    op: write.op,
                    tags: write.tags.clone(),
                    reply,
                },
            });
            answers.push(Some(answer));
        }
        if !requests.is_empty() {
            self.enqueue(resource_type, caller, requests);
        }
        let mut results = Vec::with_capacity(answers.len());
        for answer in answers {
            results.push(match answer {
                None => Ok(WriteResult::default()),
                Some(answer) => answer.await.unwrap_or_else(|_| Err(dropped("write"))),
            });
        }
        results
    }

    async fn write_one(
        &self,
        caller: Option<u64>,
        resource_type: &str,
        op: WriteOp,
        resource_ids: &[String],
        tags: &Tags,
    ) -> Result<WriteResult, CallError> {
        let write = Write {
            op,
            resource_ids,
            tags,
        };
        let mut results = self.write(caller, resource_type, &[write]).await;
        results.pop().unwrap_or_else(|| Err(dropped("write")))
    }
}

type ListRequests = Vec<(
    Vec<String>,
    oneshot::Sender<Result<TagsByResource, CallError>>,
)>;
type WriteRequests = Vec<(
    WriteOp,
    Tags,
    Vec<String>,
    oneshot::Sender<Result<WriteResult, CallError>>,
)>;

/// Ends a round in flight, even if it panicked: the next round may go.
struct RoundDone<C: TagApi + Clone + 'static> {
    batcher: Batcher<C>,
    resource_type: String,
}

impl<C: TagApi + Clone + 'static> Drop for RoundDone<C> {
    fn drop(&mut self) {
        let mut queues = self.batcher.lock();
        if let Some(queue) = queues.get_mut(&self.resource_type) {
            queue.in_flight = false;
            self.batcher.decide(&self.resource_type, queue);
        }
    }
}

/// The outcome of each resource of one write call.
struct CallOutcomes {
    op: WriteOp,
    tags: Tags,
    outcomes: Vec<(String, IdOutcome)>,
}

/// Runs `future` on the current runtime, if there is one (a batcher used after its runtime
/// stopped has nobody left to answer).
fn spawn(future: impl std::future::Future<Output = ()> + Send + 'static) {
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn(future);
        }
        Err(_) => tracing::debug!("no runtime: a coalesced round is dropped"),
    }
}

fn dropped(action: &'static str) -> CallError {
    Refusal::new(
        RefusalReason::Dropped,
        action,
        "the coalesced call was dropped before an answer came (shutting down?)",
    )
    .into()
}

impl<C: TagApi + Clone + 'static> TagApi for Batcher<C> {
    fn cloud_name(&self) -> &'static str {
        self.shared.inner.cloud_name()
    }

    fn limits(&self) -> &Limits {
        self.shared.inner.limits()
    }

    fn check_resource_type(&self, resource_type: &str) -> Result<(), AddressError> {
        self.shared.inner.check_resource_type(resource_type)
    }

    fn check_resource_ids(
        &self,
        resource_type: &str,
        resource_ids: &[String],
    ) -> Result<(), AddressError> {
        self.shared
            .inner
            .check_resource_ids(resource_type, resource_ids)
    }

    async fn list_tags(
        &self,
        resource_type: &str,
        resource_ids: &[String],
    ) -> Result<TagsByResource, CallError> {
        self.list(None, resource_type, resource_ids).await
    }

    async fn list_tags_each(
        &self,
        resource_type: &str,
        reads: &[Vec<String>],
    ) -> Vec<Result<TagsByResource, CallError>> {
        self.list_each(None, resource_type, reads).await
    }

    async fn select_resources(
        &self,
        resource_type: &str,
        match_tags: &Tags,
    ) -> Result<TagsByResource, CallError> {
        let shared = &self.shared;
        shared
            .selects
            .select(&shared.inner, resource_type, match_tags)
            .await
    }

    async fn tag_resources(
        &self,
        resource_type: &str,
        resource_ids: &[String],
        tags: &Tags,
    ) -> Result<WriteResult, CallError> {
        self.write_one(None, resource_type, WriteOp::Tag, resource_ids, tags)
            .await
    }

    async fn untag_resources(
        &self,
        resource_type: &str,
        resource_ids: &[String],
        tags: &Tags,
    ) -> Result<WriteResult, CallError> {
        self.write_one(None, resource_type, WriteOp::Untag, resource_ids, tags)
            .await
    }

    async fn write_all(
        &self,
        resource_type: &str,
        writes: &[Write<'_>],
    ) -> Vec<Result<WriteResult, CallError>> {
        self.write(None, resource_type, writes).await
    }
}

impl<C: TagApi + Clone + 'static> Participant<C> {
    /// This participant's id for requests on `resource_type`: `None` (not waited for) on
    /// another type.
    fn caller(&self, resource_type: &str) -> Option<u64> {
        (resource_type == self.resource_type).then_some(self.id)
    }
}

impl<C: TagApi + Clone + 'static> Drop for Participant<C> {
    fn drop(&mut self) {
        self.batcher.leave(&self.resource_type, self.id);
    }
}

impl<C: TagApi + Clone + 'static> TagApi for Participant<C> {
    fn cloud_name(&self) -> &'static str {
        self.batcher.cloud_name()
    }

    fn limits(&self) -> &Limits {
        self.batcher.limits()
    }

    fn check_resource_type(&self, resource_type: &str) -> Result<(), AddressError> {
        self.batcher.check_resource_type(resource_type)
    }

    fn check_resource_ids(
        &self,
        resource_type: &str,
        resource_ids: &[String],
    ) -> Result<(), AddressError> {
        self.batcher.check_resource_ids(resource_type, resource_ids)
    }

    async fn list_tags(
        &self,
        resource_type: &str,
        resource_ids: &[String],
    ) -> Result<TagsByResource, CallError> {
        let caller = self.caller(resource_type);
        self.batcher.list(caller, resource_type, resource_ids).await
    }

    async fn list_tags_each(
        &self,
        resource_type: &str,
        reads: &[Vec<String>],
    ) -> Vec<Result<TagsByResource, CallError>> {
        let caller = self.caller(resource_type);
        self.batcher.list_each(caller, resource_type, reads).await
    }

    async fn select_resources(
        &self,
        resource_type: &str,
        match_tags: &Tags,
    ) -> Result<TagsByResource, CallError> {
        // NB: not a request of this participant's round: the round does not wait for it.
        self.batcher
            .select_resources(resource_type, match_tags)
            .await
    }

    async fn tag_resources(
        &self,
        resource_type: &str,
        resource_ids: &[String],
        tags: &Tags,
    ) -> Result<WriteResult, CallError> {
        let caller = self.caller(resource_type);
        self.batcher
            .write_one(caller, resource_type, WriteOp::Tag, resource_ids, tags)
            .await
    }

    async fn untag_resources(
        &self,
        resource_type: &str,
        resource_ids: &[String],
        tags: &Tags,
    ) -> Result<WriteResult, CallError> {
        let caller = self.caller(resource_type);
        self.batcher
            .write_one(caller, resource_type, WriteOp::Untag, resource_ids, tags)
            .await
    }

    async fn write_all(
        &self,
        resource_type: &str,
        writes: &[Write<'_>],
    ) -> Vec<Result<WriteResult, CallError>> {
        let caller = self.caller(resource_type);
        self.batcher.write(caller, resource_type, writes).await
    }
}
