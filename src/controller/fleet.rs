//! The controller's fleet view: which bindings are due, and their passes run together, so that
//! a fleet costs the calls of its lower bound (issue 11).
//!
//! kube-runtime hosts the checks before a pass (finalizer, provider, namespace, spec,
//! credentials, suspend); a binding that passes them is *submitted* here and its reconcile
//! returns at once. A worker runs *rounds*: every submitted binding's pass at once, each
//! through a participant of its provider's [`Batcher`](crate::cloud::batcher::Batcher), so
//! that the round's reads are one read of every distinct resource in full pages and its writes
//! share calls by payload, exactly as in the CLI. The worker then writes each binding's status
//! (only when it changed), publishes events, and schedules retries.
//!
//! When a round closes:
//! - the watch *announces* every binding it hands to kube-runtime (and a sweep every binding it
//!   asks for); a round closes as soon as every announced binding has been submitted or
//!   settled otherwise, so that at start-up the whole fleet is one round, and a lone spec
//!   change on an idle controller is a round of one, written at once;
//! - if an announced binding does not come (kube-runtime dropped it, its reconcile failed),
//!   the round waits at most [`SETTLE`] after the last sign of progress;
//! - what the fleet asks for itself (the start-up list, sweeps, retries) waits in its queue and
//!   goes to kube-runtime [`REQUESTS_IN_FLIGHT`] at a time.
//!
//! A round runs as one task per group (provider and resource type), and each group has at most
//! one round in flight: while it runs, the group's next round gathers (as in a group commit),
//! and the other groups' rounds start as they come. A cloud that hangs holds up the bindings
//! of its own provider only (issue 20).
//!
//! Resync is a *sweep* per target group (provider and resource type), on the shortest
//! `spec.interval` of its bindings: every binding of the group is asked for at once, so the
//! group's resources are read once per interval in the fewest calls, and every binding is
//! planned from that one observation. Drift is corrected within one interval of each binding.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use futures::StreamExt;
use futures::channel::mpsc::UnboundedSender;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::binding::{Claimants, Prepared, SharedClaimants};
use super::context::{CloudClient, Context};
use crate::api::ResourceTagBinding;
use crate::plan::Claims;
use crate::reconcile::fleet::{ClaimIndex, Target, binding_key};
use crate::reconcile::group::Member;
use crate::reconcile::select::{self, Resolution, Selector};
use crate::reconcile::{Mode, Outcome};

/// The longest a round waits for announced bindings after the last sign of progress.
pub const SETTLE: Duration = Duration::from_secs(1);
/// Most bindings of one provider and resource type passed together (see [`run_group`]).
const CHUNK: usize = 500;
/// How often the worker looks for due sweeps at most (looking costs a scan of the fleet).
const SWEEP_CHECK: Duration = Duration::from_secs(1);
/// Status writes (and events) of a round in flight at once.
pub(super) const STATUS_WRITES_IN_FLIGHT: usize = 16;
/// Bindings the fleet has asked kube-runtime for and whose reconcile has not reported, at
/// most: the rest of a sweep (or of the start-up list) waits in the fleet's queue. kube-runtime
/// keeps every request it is handed in its scheduler, whose tables keep their largest size:
/// handing it a 10,000-binding fleet at once held some 7 MiB for good.
const REQUESTS_IN_FLIGHT: usize = 256;
/// How long an idle worker sleeps when nothing is scheduled (it wakes on any submission).
const IDLE: Duration = Duration::from_secs(60);

/// A binding whose checks passed, waiting for the next round.
pub struct Submission {
    /// The binding as its reconcile saw it.
    pub binding: Arc<ResourceTagBinding>,
    /// Its provider's client.
    pub client: CloudClient,
    /// The tags it declares: `tags`, `tagsFrom` and the provider's `defaultTags`, rendered
    /// by its checks.
    pub desired: crate::tags::Tags,
}

/// A submission as the fleet keeps it until its round: what groups and orders it, not the
/// binding, which the round decodes from the compact cache a chunk at a time (at 10,000
/// bindings, a start-up round holding every decoded binding took the controller's peak RSS
/// from 77 to 97 MiB).
struct Ticket {
    /// The generation the checks passed on: a binding whose spec changed since waits for the
    /// pass its change brings, with its checks.
    generation: Option<i64>,
    /// (provider, resource type): the round's group.
    group: (String, String),
    /// Hash of the declared tags: bindings with the same payload go in the same chunk.
    payload: u64,
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
    fn redeem(self, key: &str, ctx: &Context) -> Option<Submission> {
        let binding = ctx.bindings.get(key)?;
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

/// What a selector binding's selection feeds on (see [`Fleet::feeding_cycles`]): its target,
/// its `matchTags`, and the binding itself (its spec and metadata, without status), from which
/// its declared keys are rendered when a cycle is looked for (issue 23: `tagsFrom` and the
/// provider's `defaultTags` declare keys as `tags` do).
#[derive(Clone)]
struct SelectorSpec {
    provider: String,
    resource_type: String,
    match_tags: crate::tags::Tags,
    binding: Arc<ResourceTagBinding>,
}

impl SelectorSpec {
    fn of(binding: &ResourceTagBinding, match_tags: &crate::tags::Tags) -> Self {
        let name = binding.metadata.name.as_deref().unwrap_or_default();
        let mut kept = ResourceTagBinding::new(name, binding.spec.clone());
        kept.metadata.namespace = binding.metadata.namespace.clone();
        kept.metadata.labels = binding.metadata.labels.clone();
        kept.metadata.annotations = binding.metadata.annotations.clone();
        kept.metadata.creation_timestamp = binding.metadata.creation_timestamp.clone();
        SelectorSpec {
            provider: binding.spec.provider_ref.name.clone(),
            resource_type: binding.spec.resource_type.clone(),
            match_tags: match_tags.clone(),
            binding: Arc::new(kept),
        }
    }
}

impl PartialEq for SelectorSpec {
    /// Equal when what its declared keys are rendered from is equal: a status write (the same
    /// spec and metadata again) is no change.
    fn eq(&self, other: &Self) -> bool {
        let (a, b) = (&self.binding, &other.binding);
        self.provider == other.provider
            && self.resource_type == other.resource_type
            && self.match_tags == other.match_tags
            && a.spec.tags == b.spec.tags
            && a.spec.tags_from == b.spec.tags_from
            && a.metadata.labels == b.metadata.labels
            && a.metadata.annotations == b.metadata.annotations
    }
}

/// A binding that takes part in sweeps.
struct Registered {
    /// (provider, resource type): the sweep's group.
    group: Arc<(String, String)>,
    interval: Duration,
    /// When its last pass ran (or its sweep was asked for).
    last: Instant,
}

#[derive(Default)]
struct State {
    /// Bindings handed to kube-runtime whose reconcile has not reported yet.
    expected: HashSet<String>,
    /// Bindings the fleet asks for, not handed to kube-runtime yet (see [`REQUESTS_IN_FLIGHT`]).
    queue: VecDeque<String>,
    /// Bindings submitted for the next round.
    pending: BTreeMap<String, Ticket>,
    /// Bindings that sweeps cover.
    registered: HashMap<String, Registered>,
    /// Every sweep group seen, shared by its bindings (a few: providers x resource types).
    groups: HashSet<Arc<(String, String)>>,
    /// The last submission, settlement or announcement.
    progress: Option<Instant>,
    /// Keys seen since the watch started a (re)list: until it is done, more bindings may be
    /// announced, and rounds wait for them.
    relisting: Option<HashSet<String>>,
    /// When sweeps were last looked for, and the next one due then.
    // NB: looking is O(bindings); doing it on every submission made admission quadratic.
    sweeps_checked: Option<(Instant, Option<Instant>)>,
    /// Groups (provider, resource type) whose round is in flight: their submissions wait for
    /// it, the other groups' do not (issue 20: one hanging cloud stalled every provider).
    in_flight: HashSet<(String, String)>,
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

    /// The group (provider, resource type), shared.
    fn intern(&mut self, provider: &str, resource_type: &str) -> Arc<(String, String)> {
        let wanted = (provider.to_string(), resource_type.to_string());
        if let Some(group) = self.groups.get(&wanted) {
            return group.clone();
        }
        let group = Arc::new(wanted);
        self.groups.insert(group.clone());
        group
    }
}

/// The fleet: claims by resource identity, and the rounds.
pub struct Fleet {
    /// No new round starts (the controller is shutting down).
    stopping: std::sync::atomic::AtomicBool,
    state: Mutex<State>,
    claims: RwLock<ClaimIndex<String>>,
    /// The selector bindings (not being deleted), by key: what their selections feed on.
    selectors: RwLock<HashMap<String, SelectorSpec>>,
    wake: Notify,
    triggers: UnboundedSender<ObjectRef<super::cache::Meta>>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet").finish_non_exhaustive()
    }
}

impl Fleet {
    /// A fleet that asks kube-runtime for passes through `triggers` (the controller's
    /// `reconcile_on` stream).
    pub fn new(triggers: UnboundedSender<ObjectRef<super::cache::Meta>>) -> Self {
        Fleet {
            stopping: std::sync::atomic::AtomicBool::new(false),
            state: Mutex::new(State::default()),
            claims: RwLock::new(ClaimIndex::new()),
            selectors: RwLock::new(HashMap::new()),
            wake: Notify::new(),
            triggers,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // NB: every critical section leaves the state consistent; a poisoned lock is safe.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The claim index, for reading.
    pub fn claims(&self) -> std::sync::RwLockReadGuard<'_, ClaimIndex<String>> {
        self.claims.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn claims_mut(&self) -> std::sync::RwLockWriteGuard<'_, ClaimIndex<String>> {
        self.claims.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn selectors_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, SelectorSpec>> {
        self.selectors
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Records what selector binding `key` feeds on now (`None`: it is no selector, or gone).
    /// A change of one that was there asks for passes of the other selector bindings: one
    /// refused for a feeding cycle with it (which waits for a change) is looked at again. A new one asks for nothing: the others' next passes (they
    /// are not refused) find a cycle it makes.
    fn selector_changed(&self, key: &str, now: Option<SelectorSpec>) {
        let mut selectors = self.selectors_mut();
        let before = match &now {
            Some(spec) => selectors.insert(key.to_string(), spec.clone()),
            None => selectors.remove(key),
        };
        if before.is_none_or(|before| now.as_ref() == Some(&before)) {
            return;
        }
        // NB: every other selector binding, whichever provider: a cycle may span two
        // providers of one target, and selector bindings are few (spec changes rarer still).
        let others: Vec<String> = selectors
            .keys()
            .filter(|other| other.as_str() != key)
            .cloned()
            .collect();
        drop(selectors);
        for other in others {
            self.request(&other);
        }
    }

    /// The selector bindings in a feeding cycle with another selector binding of `target`
    /// (see [`select::feeding_cycles`]), with the members of their cycle. `declared_of`
    /// renders a binding's declared tags (`tags`, `tagsFrom`, the provider's `defaultTags`).
    pub fn feeding_cycles(
        &self,
        target: &Target,
        target_of: impl Fn(&str, &str) -> Option<Target>,
        declared_of: impl Fn(&ResourceTagBinding) -> crate::tags::Tags,
    ) -> BTreeMap<String, Vec<String>> {
        let selectors = self
            .selectors
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        let of_target: Vec<(&String, &SelectorSpec, crate::tags::Tags)> = selectors
            .iter()
            .filter(|(_, s)| target_of(&s.provider, &s.resource_type).as_ref() == Some(target))
            .map(|(key, s)| (key, s, declared_of(&s.binding)))
            .collect();
        let feeders: Vec<select::Feeder<'_, String>> = of_target
            .iter()
            .map(|(key, s, declared)| select::Feeder {
                key: (*key).clone(),
                declared,
                match_tags: &s.match_tags,
            })
            .collect();
        select::feeding_cycles(&feeders)
    }

    /// Feeds the claim index from the bindings' watch (before the cache's own filtering):
    /// a binding declares its resources until it is being deleted or gone.
    pub fn watched(&self, event: &watcher::Event<ResourceTagBinding>) {
        match event {
            watcher::Event::Init => {
                let mut state = self.lock();
                state.relisting = Some(HashSet::new());
                state.progress = Some(Instant::now());
            }
            watcher::Event::Apply(binding) | watcher::Event::InitApply(binding) => {
                let key = binding_key(binding);
                let selector = match &binding.spec.resource_selector {
                    Some(selector) if binding.metadata.deletion_timestamp.is_none() => {
                        Some(SelectorSpec::of(binding, &selector.match_tags))
                    }
                    _ => None,
                };
                self.selector_changed(&key, selector);
                if binding.metadata.deletion_timestamp.is_some() {
                    self.claims_mut().withdraw(&key);
                } else if binding.spec.resource_selector.is_some() {
                    // NB: a selector binding's claims are its last selection, recorded when
                    // its pass resolves the selector (`resolve_selectors`), not its spec.
                } else {
                    self.claims_mut().declare(
                        key.clone(),
                        &binding.spec.provider_ref.name,
                        &binding.spec.resource_type,
                        binding.spec.resource_ids.iter().map(String::as_str),
                    );
                }
                let mut state = self.lock();
                if let Some(seen) = &mut state.relisting {
                    seen.insert(key);
                    state.progress = Some(Instant::now());
                }
            }
            watcher::Event::Delete(binding) => self.forget(&binding_key(binding)),
            watcher::Event::InitDone => {
                let Some(seen) = self.lock().relisting.take() else {
                    return;
                };
                self.wake.notify_one();
                // NB: bindings deleted while the watch was down get no Delete event.
                let gone: Vec<String> = {
                    let claims = self.claims();
                    claims
                        .keys()
                        .filter(|k| !seen.contains(*k))
                        .cloned()
                        .collect()
                };
                for key in gone {
                    self.forget(&key);
                }
            }
        }
    }

    /// Forgets a binding: deleted, or its object no longer decodes.
    pub fn forget(&self, key: &str) {
        self.claims_mut().withdraw(&key.to_string());
        self.selector_changed(key, None);
        let mut state = self.lock();
        state.registered.remove(key);
        state.pending.remove(key);
        // NB: kube-runtime drops a request for a binding gone from its store without a
        // reconcile, so a request handed over later would never settle.
        state.queue.retain(|queued| queued != key);
        if state.expected.remove(key) {
            state.progress = Some(Instant::now());
            self.hand_over(&mut state);
            self.wake.notify_one();
        }
    }

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

    /// The binding stopped before the cloud (stalled, suspended, being deleted): no sweep
    /// until a change brings it back.
    pub fn unregister(&self, key: &str) {
        let mut state = self.lock();
        state.registered.remove(key);
        state.pending.remove(key);
    }

    /// The binding's pass ran: sweeps cover it from now on.
    fn register(&self, key: String, binding: &ResourceTagBinding) {
        let mut state = self.lock();
        let group = state.intern(&binding.spec.provider_ref.name, &binding.spec.resource_type);
        state.registered.insert(
            key,
            Registered {
                group,
                interval: super::binding::interval(binding),
                last: Instant::now(),
            },
        );
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
    fn hand_over(&self, state: &mut State) {
        while state.expected.len() < REQUESTS_IN_FLIGHT {
            let Some(key) = state.queue.pop_front() else {
                break;
            };
            if state.pending.contains_key(&key) || state.expected.contains(&key) {
                continue;
            }
            // NB: the receiver lives as long as the controller; after it stopped, nobody asks.
            let _ = self.triggers.unbounded_send(super::cache::reference(&key));
            state.expected.insert(key);
        }
    }

    /// Whether the watch is (re)listing: its bindings are asked for through the queue
    /// ([`Fleet::request`]) rather than handed to kube-runtime all at once.
    pub fn listing(&self) -> bool {
        self.lock().relisting.is_some()
    }

    /// Asks for a pass of `key` after `delay` (a retry), unless it stopped taking part in
    /// sweeps meanwhile (deleted, stalled, suspended).
    pub fn request_after(self: &Arc<Self>, key: String, delay: Duration) {
        let fleet = Arc::clone(self);
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            // NB: kube-runtime never reconciles a binding that is gone from its store, so an
            // announcement of it would never settle: while other bindings keep the fleet
            // busy, rounds would wait for it (the e2e suite saw passes stop for 60 s after a
            // deleted binding's retry came due).
            if fleet.lock().registered.contains_key(&key) {
                fleet.request(&key);
            }
        });
    }

    /// Starts no new round: [`run`] returns once the rounds in flight (if any) are done.
    pub fn stop(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// Asks for every binding of the groups whose sweep is due; returns when the next sweep
    /// is due.
    fn start_sweeps(&self, state: &mut State, now: Instant) -> Option<Instant> {
        let mut next_sweep: HashMap<&(String, String), Instant> = HashMap::new();
        for registered in state.registered.values() {
            let due = registered.last + registered.interval;
            next_sweep
                .entry(&registered.group)
                .and_modify(|at| *at = (*at).min(due))
                .or_insert(due);
        }
        let due_groups: HashSet<(String, String)> = next_sweep
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(group, _)| (*group).clone())
            .collect();
        let wake_for_sweep = next_sweep.values().filter(|at| **at > now).min().copied();
        if due_groups.is_empty() {
            return wake_for_sweep;
        }
        let mut asked = Vec::new();
        for (key, registered) in state.registered.iter_mut() {
            if due_groups.contains(&registered.group) {
                registered.last = now;
                asked.push(key.clone());
            }
        }
        tracing::debug!(bindings = asked.len(), "sweep");
        state.queue.extend(asked);
        self.hand_over(state);
        state.progress = Some(now);
        // NB: the swept groups' next sweep is an interval away; look again soon anyway.
        Some(wake_for_sweep.map_or(now + SWEEP_CHECK, |at| at.min(now + SWEEP_CHECK)))
    }

    /// Starts the sweeps that are due, and takes the next round if it may close now; else
    /// says until when to sleep.
    fn next(&self, now: Instant) -> Result<BTreeMap<String, Ticket>, Instant> {
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

/// Runs the rounds until [`Fleet::stop`] (or until the task is dropped, which stops the
/// rounds in flight too). Each group (provider and resource type) has at most one round in
/// flight, and groups do not wait for each other: a provider whose cloud hangs holds up its
/// own bindings only.
pub async fn run(ctx: Arc<Context>) {
    let mut rounds = tokio::task::JoinSet::new();
    loop {
        if ctx
            .fleet
            .stopping
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            break;
        }
        match ctx.fleet.next(Instant::now()) {
            Ok(round) => {
                tracing::debug!(bindings = round.len(), "round");
                for (group, members) in by_group(round) {
                    let ctx = ctx.clone();
                    rounds.spawn(async move {
                        // NB: dropped when the round ends, panics or is aborted alike.
                        let _in_flight = InFlight {
                            fleet: ctx.fleet.clone(),
                            group: group.clone(),
                        };
                        run_group(&ctx, group.1, members).await;
                    });
                }
            }
            Err(until) => {
                tokio::select! {
                    _ = ctx.fleet.wake.notified() => {}
                    _ = tokio::time::sleep_until(until) => {}
                    Some(_) = rounds.join_next(), if !rounds.is_empty() => {}
                }
            }
        }
    }
    // NB: the rounds in flight finish (their writes recorded in status); the host bounds this.
    while rounds.join_next().await.is_some() {}
}

/// A group's round in flight: when it ends, the group's next round may start.
struct InFlight {
    fleet: Arc<Fleet>,
    group: (String, String),
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.fleet.lock().in_flight.remove(&self.group);
        self.fleet.wake.notify_one();
    }
}

/// A round's submissions by group (provider and resource type).
fn by_group(round: BTreeMap<String, Ticket>) -> BTreeMap<(String, String), Vec<(String, Ticket)>> {
    let mut groups: BTreeMap<(String, String), Vec<(String, Ticket)>> = BTreeMap::new();
    for (key, ticket) in round {
        groups
            .entry(ticket.group.clone())
            .or_default()
            .push((key, ticket));
    }
    groups
}

/// The bindings of one provider and resource type, [`CHUNK`] at a time: ordered by their
/// tags, so that bindings with the same payload share a chunk (and its write calls). A chunk
/// boundary costs at most one partial read and one partial write call; the working set
/// (decoded bindings, plans, outcomes) stays that of a chunk.
async fn run_group(ctx: &Arc<Context>, resource_type: String, mut members: Vec<(String, Ticket)>) {
    members.sort_by(|(a_key, a), (b_key, b)| (a.payload, a_key).cmp(&(b.payload, b_key)));
    let mut members = members.into_iter().peekable();
    while members.peek().is_some() {
        let chunk: Vec<(String, Submission)> = members
            .by_ref()
            .take(CHUNK)
            .filter_map(|(key, ticket)| {
                let submission = ticket.redeem(&key, ctx)?;
                Some((key, submission))
            })
            .collect();
        let started = Instant::now();
        let provider = chunk
            .first()
            .map(|(_, s)| s.binding.spec.provider_ref.name.clone());
        let bindings = chunk.len();
        let passed = pass_group(ctx, &resource_type, chunk).await;
        let seconds = started.elapsed().as_secs_f64();
        if let Some(provider) = provider {
            ctx.metrics.round(&provider, bindings, seconds);
        }
        futures::stream::iter(passed)
            .map(|(key, binding, desired, outcome)| async move {
                let next = super::binding::finish(&binding, &outcome, &desired, seconds, ctx).await;
                match next {
                    super::binding::Next::Sweep => ctx.fleet.register(key, &binding),
                    super::binding::Next::Retry => {
                        ctx.fleet.register(key.clone(), &binding);
                        let delay = ctx.backoff(&key);
                        tracing::warn!(binding = %key, retry_in = ?delay, "pass failed");
                        ctx.fleet.request_after(key, delay);
                    }
                    super::binding::Next::AwaitChange => ctx.fleet.unregister(&key),
                }
            })
            .buffer_unordered(STATUS_WRITES_IN_FLIGHT)
            .collect::<()>()
            .await;
    }
    ctx.policy_status.changed();
}

/// The passes of one provider's bindings of one resource type, together. Selector bindings
/// are resolved first (one list-by-tag read per distinct `matchTags`), and their selections
/// enter the claim index before any binding's claims are looked up.
async fn pass_group(
    ctx: &Context,
    resource_type: &str,
    members: Vec<(String, Submission)>,
) -> Vec<(String, Arc<ResourceTagBinding>, crate::tags::Tags, Outcome)> {
    // NB: the newest submission carries the newest client (a Secret may have changed).
    let Some(client) = members.last().map(|(_, s)| s.client.clone()) else {
        return Vec::new();
    };
    // NB: the round's only participant: its calls go at once, not after a window.
    let participant = client.participant(resource_type);
    let mut resolutions = resolve_selectors(ctx, &participant, resource_type, &members).await;
    refuse_feeding_cycles(ctx, resource_type, &members, &mut resolutions);
    // NB: one resource is one id whichever form names it (an AWS bare id and its ARN); an
    // AWS provider without aws.accountId has its account named by STS, once per client.
    let account = client.inner().aws_account().await;
    let resource_ids: Vec<std::borrow::Cow<'_, [String]>> = members
        .iter()
        .zip(&resolutions)
        .map(|((_, s), resolution)| match resolution {
            Some(resolution) => std::borrow::Cow::Borrowed(resolution.ids().unwrap_or_default()),
            None => match ctx
                .providers
                .get(&ObjectRef::new(&s.binding.spec.provider_ref.name))
            {
                Some(provider) => crate::reconcile::fleet::canonical_ids(
                    &provider.spec,
                    account.as_deref(),
                    resource_type,
                    &s.binding.spec.resource_ids,
                ),
                None => std::borrow::Cow::Borrowed(&s.binding.spec.resource_ids[..]),
            },
        })
        .collect();
    let mut shared = SharedClaimants::new();
    let prepared: Vec<Prepared> = members
        .iter()
        .zip(&resource_ids)
        .map(|((_, s), ids)| Prepared::of(&s.binding, ctx, ids, &mut shared))
        .collect();
    drop(shared);
    // NB: one list of claims per distinct claimant list (see `SharedClaimants`).
    let (lists, claims) = claim_lists(&prepared);
    let group: Vec<Member<'_>> = members
        .iter()
        .zip(&prepared)
        .zip(&claims)
        .zip(&resource_ids)
        .zip(&resolutions)
        .map(|(((((_, s), prepared), &list), ids), resolution)| {
            let spec = &s.binding.spec;
            Member {
                binding: &prepared.id,
                desired: &s.desired,
                resource_ids: ids,
                resolution: resolution.as_ref(),
                match_tags: spec.resource_selector.as_ref().map(|s| &s.match_tags),
                deletion_policy: spec.deletion_policy,
                owned: &prepared.owned,
                claims: &lists[list],
                mode: Mode::of(spec.mode),
            }
        })
        .collect();
    // NB: intents (issue 14) go to each binding's status before the round's writes.
    let intents = super::intents::StatusIntents::new(
        ctx,
        members.iter().map(|(_, s)| s.binding.as_ref()).collect(),
        prepared.iter().map(|p| &p.pending).collect(),
    );
    let outcomes =
        crate::reconcile::group::pass_group(&participant, resource_type, &group, &intents).await;
    drop(intents);
    drop(group);
    drop(participant);
    members
        .into_iter()
        .zip(outcomes)
        .map(|((key, submission), mut outcome)| {
            // NB: the tag policies count the resources on what the pass read (issue 24).
            super::policy_status::observed(ctx, &key, &submission.binding, &outcome);
            // NB: the controller reports neither the plan nor the observation.
            outcome.plan = None;
            outcome.observed = None;
            (key, submission.binding, submission.desired, outcome)
        })
        .collect()
}

/// One list of claims per distinct claimant list of `prepared` (see `SharedClaimants`), and
/// the list of each.
fn claim_lists(prepared: &[Prepared]) -> (Vec<Claims<'_>>, Vec<usize>) {
    let mut lists = Vec::new();
    let mut list_of: HashMap<*const Claimants, usize> = HashMap::new();
    let claims = prepared
        .iter()
        .map(|p| {
            *list_of.entry(Arc::as_ptr(&p.others)).or_insert_with(|| {
                lists.push(Claims::new(Prepared::claims_of(&p.others)));
                lists.len() - 1
            })
        })
        .collect();
    (lists, claims)
}

/// Refuses, as an invalid spec, the selector bindings among `members` whose selections feed
/// another selector binding's in a cycle (issue 20, item 5), naming the cycle.
fn refuse_feeding_cycles(
    ctx: &Context,
    resource_type: &str,
    members: &[(String, Submission)],
    resolutions: &mut [Option<Resolution>],
) {
    let target_of = |provider: &str, resource_type: &str| {
        let spec = ctx.providers.get(&ObjectRef::new(provider))?;
        Some(Target::of(&spec.spec, resource_type))
    };
    let Some(target) = members
        .first()
        .and_then(|(_, s)| target_of(&s.binding.spec.provider_ref.name, resource_type))
    else {
        return;
    };
    // NB: the keys each declares as its claims render them (an absent source: no key).
    let cycles = ctx
        .fleet
        .feeding_cycles(&target, target_of, |b| ctx.claimed_tags(b));
    if cycles.is_empty() {
        return;
    }
    for ((key, _), resolution) in members.iter().zip(resolutions.iter_mut()) {
        if let Some(cycle) = cycles.get(key) {
            *resolution = Some(Resolution::Invalid(format!(
                "spec.resourceSelector.matchTags: {}",
                select::cycle_rule(cycle)
            )));
        }
    }
}

/// Resolves the selector bindings among `members` (`None` for an id-list binding), and
/// records each selection in the claim index. A binding whose resolution failed or matched
/// too many keeps the claims of its last selection.
async fn resolve_selectors<C: crate::cloud::TagApi>(
    ctx: &Context,
    cloud: &C,
    resource_type: &str,
    members: &[(String, Submission)],
) -> Vec<Option<Resolution>> {
    let selectors: Vec<Selector<'_>> = members
        .iter()
        .filter_map(|(_, s)| {
            let selector = s.binding.spec.resource_selector.as_ref()?;
            Some(Selector {
                match_tags: &selector.match_tags,
                cap: s.binding.spec.max_resources(),
            })
        })
        .collect();
    if selectors.is_empty() {
        return members.iter().map(|_| None).collect();
    }
    let mut resolved = select::resolve_all(cloud, resource_type, &selectors)
        .await
        .into_iter();
    members
        .iter()
        .map(|(key, s)| {
            s.binding.spec.resource_selector.as_ref()?;
            let resolution = resolved.next()?;
            if let Some(ids) = resolution.ids() {
                ctx.fleet.claims_mut().declare(
                    key.clone(),
                    &s.binding.spec.provider_ref.name,
                    &s.binding.spec.resource_type,
                    ids.iter().map(String::as_str),
                );
            }
            Some(resolution)
        })
        .collect()
}

#[cfg(test)]
mod tests;
