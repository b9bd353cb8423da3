//! The fleet's queue: bindings announced to kube-runtime, submitted by their checks, and the
//! round that closes once every announced binding has come (or [`SETTLE`] passed).

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;

use super::CloudClient;
use super::{Fleet, IDLE, REQUESTS_IN_FLIGHT, SETTLE, SWEEP_CHECK, State, Submission};
use crate::controller::cache::{self, Bindings};

/// A submission as the fleet keeps it until its round: what groups and orders it, not the
/// binding, which the round decodes from the compact cache a chunk at a time (at 10,000
/// bindings, a start-up round holding every decoded binding took the controller's peak RSS
/// from 77 to 97 MiB).
pub(crate) struct Ticket {
    /// The generation the checks passed on: a binding whose spec changed since waits for the
    /// pass its change brings, with its checks.
    generation: Option<i64>,
    /// (provider, resource type): the round's group.
    pub(crate) group: (String, String),
    /// Hash of the declared tags: bindings with the same payload go in the same chunk.
    pub(crate) payload: u64,
    client: CloudClient,
    /// The declared tags when they are not `spec.tags` alone (`tagsFrom`, `defaultTags`);
    /// `None` keeps a plain binding's ticket small.
    rendered: Option<crate::tags::Tags>,
}

impl Ticket {
    fn of(submission: Submission) -> Self {
        use std::hash::{Hash, Hasher};
        let spec = &submission.binding.spec;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        submission.desired.hash(&mut hasher);
        Ticket {
            generation: submission.binding.metadata.generation,
            group: (spec.provider_ref.name.clone(), spec.resource_type.clone()),
            payload: hasher.finish(),
            rendered: (submission.desired != spec.tags).then_some(submission.desired),
            client: submission.client,
        }
    }

    /// The submission again, with the binding as the cache holds it now; `None` when it is
    /// gone, being deleted, or its spec changed.
    pub(crate) fn redeem(self, key: &str, bindings: &Bindings) -> Option<Submission> {
        let binding = bindings.get(key)?;
        if binding.metadata.generation != self.generation
            || binding.metadata.deletion_timestamp.is_some()
        {
            tracing::debug!(binding = %key, "changed since its checks; its next pass runs it");
            return None;
        }
        let desired = self.rendered.unwrap_or_else(|| binding.spec.tags.clone());
        Some(Submission {
            binding,
            client: self.client,
            desired,
        })
    }
}

impl State {
    /// Whether a submission waits for a group that has no round in flight.
    fn has_takeable(&self) -> bool {
        if self.in_flight.is_empty() {
            return !self.pending.is_empty();
        }
        self.pending
            .values()
            .any(|ticket| !self.in_flight.contains(&ticket.group))
    }

    /// Takes the submissions of the groups without a round in flight, and marks those groups
    /// in flight.
    fn take_round(&mut self) -> BTreeMap<String, Ticket> {
        let (round, waiting): (BTreeMap<_, _>, BTreeMap<_, _>) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(_, ticket)| !self.in_flight.contains(&ticket.group));
        self.pending = waiting;
        for ticket in round.values() {
            self.in_flight.insert(ticket.group.clone());
        }
        round
    }
}

impl Fleet {
    /// kube-runtime was handed this binding: a round waits for its reconcile (at most
    /// [`SETTLE`] without progress).
    pub fn announce(&self, key: String) {
        let mut state = self.lock();
        state.expected.insert(key);
        state.progress = Some(Instant::now());
    }

    /// The binding's checks passed: its pass runs in the next round.
    pub fn submit(&self, key: String, submission: Submission) {
        let mut state = self.lock();
        state.expected.remove(&key);
        state.pending.insert(key, Ticket::of(submission));
        state.progress = Some(Instant::now());
        self.hand_over(&mut state);
        drop(state);
        self.wake.notify_one();
    }

    /// The binding's reconcile ended (whether it submitted or not).
    pub fn settled(&self, key: &str) {
        let mut state = self.lock();
        if state.expected.remove(key) {
            state.progress = Some(Instant::now());
            self.hand_over(&mut state);
            drop(state);
            self.wake.notify_one();
        }
    }

    /// Asks kube-runtime for a pass of `key` (announced, so the round waits for it), through
    /// the fleet's queue.
    pub fn request(&self, key: &str) {
        let mut state = self.lock();
        // NB: one waiting in kube-runtime already covers this request (it would merge them).
        if state.expected.contains(key) {
            return;
        }
        state.queue.push_back(key.to_string());
        state.progress = Some(Instant::now());
        self.hand_over(&mut state);
    }

    /// Hands queued requests to kube-runtime while fewer than [`REQUESTS_IN_FLIGHT`] wait
    /// there. A key already waiting there is not handed again (kube-runtime would merge it).
    pub(super) fn hand_over(&self, state: &mut State) {
        while state.expected.len() < REQUESTS_IN_FLIGHT {
            let Some(key) = state.queue.pop_front() else {
                break;
            };
            if state.pending.contains_key(&key) || state.expected.contains(&key) {
                continue;
            }
            // NB: the receiver lives as long as the controller; after it stopped, nobody asks.
            let _ = self.triggers.unbounded_send(cache::reference(&key));
            state.expected.insert(key);
        }
    }

    /// Whether the watch is (re)listing: its bindings are asked for through the queue
    /// ([`Fleet::request`]) rather than handed to kube-runtime all at once.
    pub fn listing(&self) -> bool {
        self.lock().relisting.is_some()
    }

    /// Starts the sweeps that are due, and takes the next round if it may close now; else
    /// says until when to sleep.
    pub(crate) fn next(&self, now: Instant) -> Result<BTreeMap<String, Ticket>, Instant> {
        let mut state = self.lock();
        let wake_for_sweep = match state.sweeps_checked {
            Some((checked, next))
                if now < checked + SWEEP_CHECK && next.is_none_or(|at| now < at) =>
            {
                next
            }
            _ => {
                let next = self.start_sweeps(&mut state, now);
                state.sweeps_checked = Some((now, next));
                next
            }
        };
        let settled_at = state.progress.map(|p| p + SETTLE);
        let stale = settled_at.is_some_and(|at| at <= now);
        let complete =
            state.expected.is_empty() && state.queue.is_empty() && state.relisting.is_none();
        // NB: a group whose round is in flight keeps its submissions for its next round.
        let takeable = state.has_takeable();
        if takeable && (complete || stale) {
            if !state.expected.is_empty() {
                tracing::debug!(
                    missing = state.expected.len(),
                    "a round closes without bindings that were announced"
                );
                state.expected.clear();
                self.hand_over(&mut state);
            }
            return Ok(state.take_round());
        }
        if stale && !takeable {
            state.expected.clear();
            self.hand_over(&mut state);
        }
        let mut until = now + IDLE;
        if let Some(at) = wake_for_sweep {
            until = until.min(at);
        }
        if !state.registered.is_empty() {
            // NB: bindings registered since the last look may be due sooner.
            until = until.min(now + SWEEP_CHECK);
        }
        if (takeable || !state.expected.is_empty())
            && let Some(at) = settled_at
        {
            until = until.min(at.max(now + Duration::from_millis(10)));
        }
        Err(until)
    }
}
