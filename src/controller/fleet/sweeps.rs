//! Resync by sweeps: per target group (provider and resource type), on the shortest
//! `spec.interval` of its bindings, every binding of the group is asked for at once.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Fleet, SWEEP_CHECK, State};
use crate::api::ResourceTagBinding;

/// A binding that takes part in sweeps.
pub(super) struct Registered {
    /// (provider, resource type): the sweep's group.
    group: Arc<(String, String)>,
    interval: Duration,
    /// When its last pass ran (or its sweep was asked for).
    last: Instant,
}

impl State {
    /// The group (provider, resource type), shared.
    pub(super) fn intern(&mut self, provider: &str, resource_type: &str) -> Arc<(String, String)> {
        let wanted = (provider.to_string(), resource_type.to_string());
        if let Some(group) = self.groups.get(&wanted) {
            return group.clone();
        }
        let group = Arc::new(wanted);
        self.groups.insert(group.clone());
        group
    }
}

impl Fleet {
    /// The binding stopped before the cloud (stalled, suspended, being deleted): no sweep
    /// until a change brings it back.
    pub fn unregister(&self, key: &str) {
        let mut state = self.lock();
        state.registered.remove(key);
        state.pending.remove(key);
    }

    /// The binding's pass ran: sweeps cover it from now on.
    pub(crate) fn register(&self, key: String, binding: &ResourceTagBinding) {
        let mut state = self.lock();
        let group = state.intern(&binding.spec.provider_ref.name, &binding.spec.resource_type);
        state.registered.insert(
            key,
            Registered {
                group,
                interval: binding.spec.resync_interval(),
                last: Instant::now(),
            },
        );
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

    /// Asks for every binding of the groups whose sweep is due; returns when the next sweep
    /// is due.
    pub(super) fn start_sweeps(&self, state: &mut State, now: Instant) -> Option<Instant> {
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
}
