//! Selects through a batcher: a list by tag names no resource, so there is nothing to merge
//! into a round. It goes to the inner client at once, never joining, holding or closing a
//! read/write round; identical selects (same resource type, same match tags) in flight at
//! the same time share one call, as a fleet of bindings with one selector should.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

use crate::cloud::{CallError, TagApi};
use crate::tags::{Tags, TagsByResource};

type Selection = Result<TagsByResource, CallError>;
/// One select in flight, awaited by every caller that asked for it.
type Call = Shared<BoxFuture<'static, Selection>>;
/// Resource type and match tags: what makes two selects identical.
type Key = (String, Tags);

/// The selects in flight, by resource type and match tags.
#[derive(Default)]
pub(super) struct InFlight {
    calls: Mutex<HashMap<Key, Call>>,
}

impl InFlight {
    /// The answer of the select in flight with the same resource type and match tags, or of
    /// a new one through `inner`.
    pub(super) async fn select<C: TagApi + Clone + 'static>(
        &self,
        inner: &C,
        resource_type: &str,
        match_tags: &Tags,
    ) -> Selection {
        let key = (resource_type.to_string(), match_tags.clone());
        let call = self
            .lock()
            .entry(key.clone())
            .or_insert_with(|| {
                let inner = inner.clone();
                let (resource_type, match_tags) = key.clone();
                async move { inner.select_resources(&resource_type, &match_tags).await }
                    .boxed()
                    .shared()
            })
            .clone();
        let answer = call.clone().await;
        // NB: the first caller to get the answer ends the sharing: a select that starts later
        // reads the cloud afresh. A caller that went away before the answer leaves the call
        // to the others (the shared future lives on while anyone holds it).
        let mut calls = self.lock();
        if calls.get(&key).is_some_and(|current| current.ptr_eq(&call)) {
            calls.remove(&key);
        }
        answer
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Call>> {
        // NB: each critical section inserts, clones or removes one entry: a poisoned map is
        // still consistent.
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
