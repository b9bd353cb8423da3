//! The controller's fleet: which bindings are due and when their round closes (`queue`),
//! resync by target group (`sweeps`), and the claim index and selector feed that the watch
//! keeps (`claims`). The rounds themselves run in `super::rounds`, so that a fleet costs
//! the calls of its lower bound (issue 11).
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

mod claims;
mod queue;
mod sweeps;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use futures::channel::mpsc::UnboundedSender;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::api::ResourceTagBinding;
use crate::cloud::batcher::Batcher;
use crate::reconcile::identity::ClaimIndex;
use crate::reconcile::provider::ProviderClient;

use claims::SelectorSpec;
pub(crate) use queue::Ticket;
use sweeps::Registered;

/// The longest a round waits for announced bindings after the last sign of progress.
pub const SETTLE: Duration = Duration::from_secs(1);
/// How often the worker looks for due sweeps at most (looking costs a scan of the fleet).
const SWEEP_CHECK: Duration = Duration::from_secs(1);
/// Bindings the fleet has asked kube-runtime for and whose reconcile has not reported, at
/// most: the rest of a sweep (or of the start-up list) waits in the fleet's queue. kube-runtime
/// keeps every request it is handed in its scheduler, whose tables keep their largest size:
/// handing it a 10,000-binding fleet at once held some 7 MiB for good.
const REQUESTS_IN_FLIGHT: usize = 256;
/// How long an idle worker sleeps when nothing is scheduled (it wakes on any submission).
const IDLE: Duration = Duration::from_secs(60);

/// A provider's client as reconciles use it: one per provider, shared by every binding of
/// it, coalescing the reads and identical writes of the bindings of a fleet round (its
/// participants; a pass outside rounds, a deletion, waits [`DEFAULT_WINDOW`](crate::cloud::batcher::DEFAULT_WINDOW) for company)
/// into shared calls, and paced by the provider's rate limit.
pub type CloudClient = Batcher<ProviderClient>;

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

    /// Whether [`Fleet::stop`] was called: no new round starts.
    pub(crate) fn stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// What wakes the rounds' worker: a submission, a settlement, a round that ended.
    pub(crate) fn wake(&self) -> &Notify {
        &self.wake
    }

    /// The round of `group` ended: its next round may start.
    pub(crate) fn round_ended(&self, group: &(String, String)) {
        self.lock().in_flight.remove(group);
        self.wake.notify_one();
    }

    /// Starts no new round: `super::rounds::run` returns once the rounds in flight (if any) are done.
    pub fn stop(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.wake.notify_one();
    }
}

#[cfg(test)]
mod tests;
