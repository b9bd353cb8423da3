//! The controller's standing count of a policy's bindings and resources (issue 24): each
//! round covers one group of bindings (a provider and a resource type), so the figures of the
//! whole fleet are kept here between rounds, per *holder* (a binding, or a policy's scan):
//! each holder's last verdict and the resources its last pass observed. A resource held by
//! several holders is counted once; the last observation of it decides.
//!
//! Pure: no I/O. Memory per resource: its identity hash and two bit sets (one bit per policy,
//! at most [`MAX_COUNTED_POLICIES`] policies), not its id or its tags; the samples keep the
//! first [`MAX_NONCOMPLIANT_SAMPLES`] noncompliant resources of each policy in full.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, BuildHasherDefault};

use super::{Observed, Policy, Scope, Verdict};
use crate::api::{
    MAX_NONCOMPLIANT_SAMPLES, NoncompliantResource, PolicyBindingCounts, PolicyResourceCounts,
};

/// Most policies whose resources are counted (a bit each); a policy beyond them (by the
/// order they were first seen) judges bindings, and reports that it counts no resource.
pub const MAX_COUNTED_POLICIES: usize = 64;

/// The identity of a resource: a hash of (provider, resource type, id).
pub fn identity(provider: &str, resource_type: &str, resource_id: &str) -> u64 {
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one((
        provider,
        resource_type,
        resource_id,
    ))
}

/// What the ledger knows of one resource.
#[derive(Clone, Copy, Debug, Default)]
struct Facts {
    /// Holders whose last pass observed it.
    refs: u32,
    /// Policies (by slot) that govern it.
    governed: u64,
    /// Policies (by slot) whose rules its last observed tags break.
    noncompliant: u64,
}

/// A binding or a scan, as its last pass left it.
#[derive(Clone, Debug, Default)]
struct Holder {
    /// Policies (by slot) that govern it as a binding (0 for a scan).
    binding_governed: u64,
    /// Policies (by slot) that its declared tags break.
    binding_violating: u64,
    /// The resources its last pass observed.
    resources: Vec<u64>,
}

/// One policy's figures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Figures {
    /// Bindings evaluated, and those whose declared tags break the policy.
    pub bindings: PolicyBindingCounts,
    /// Resources evaluated, compliant and noncompliant.
    pub resources: PolicyResourceCounts,
    /// The first noncompliant resources, by provider, type and id (at most 20).
    pub noncompliant: Vec<NoncompliantResource>,
}

#[derive(Clone, Debug)]
struct Slot {
    name: String,
    generation: Option<i64>,
    bindings_evaluated: u32,
    bindings_violating: u32,
    resources_evaluated: u32,
    resources_noncompliant: u32,
    /// By (provider, type, id): the resource's identity and its findings.
    samples: BTreeMap<(String, String, String), (u64, NoncompliantResource)>,
}

/// The standing count of every policy (see the module's doc).
#[derive(Debug, Default)]
pub struct Ledger {
    slots: Vec<Option<Slot>>,
    holders: HashMap<String, Holder>,
    resources: HashMap<u64, Facts>,
}

impl Ledger {
    /// Follows the policies as they are now: a policy gone, or whose spec changed (another
    /// generation), loses its figures (the passes its change brings count them again); a new
    /// one gets a slot, while fewer than [`MAX_COUNTED_POLICIES`] are counted.
    pub fn sync_policies(&mut self, policies: &[Policy]) {
        let wanted: HashMap<&str, Option<i64>> = policies
            .iter()
            .map(|p| (p.name.as_str(), p.generation))
            .collect();
        let mut cleared = 0u64;
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if slot
                .as_ref()
                .is_some_and(|s| wanted.get(s.name.as_str()) != Some(&s.generation))
            {
                *slot = None;
                cleared |= 1 << index;
            }
        }
        if cleared != 0 {
            self.clear_bits(cleared);
        }
        for policy in policies {
            if self.slot_of(&policy.name).is_some() {
                continue;
            }
            let fresh = Slot {
                name: policy.name.clone(),
                generation: policy.generation,
                bindings_evaluated: 0,
                bindings_violating: 0,
                resources_evaluated: 0,
                resources_noncompliant: 0,
                samples: BTreeMap::new(),
            };
            if let Some(free) = self.slots.iter_mut().find(|s| s.is_none()) {
                *free = Some(fresh);
            } else if self.slots.len() < MAX_COUNTED_POLICIES {
                self.slots.push(Some(fresh));
            }
        }
    }

    fn clear_bits(&mut self, bits: u64) {
        for holder in self.holders.values_mut() {
            holder.binding_governed &= !bits;
            holder.binding_violating &= !bits;
        }
        for facts in self.resources.values_mut() {
            facts.governed &= !bits;
            facts.noncompliant &= !bits;
        }
    }

    fn slot_of(&self, name: &str) -> Option<usize> {
        self.slots
            .iter()
            .position(|s| s.as_ref().is_some_and(|s| s.name == name))
    }

    fn mask_of<'a>(&self, names: impl IntoIterator<Item = &'a String>) -> u64 {
        names
            .into_iter()
            .filter_map(|name| self.slot_of(name))
            .fold(0, |mask, index| mask | 1 << index)
    }

    /// Whether `policy` has a slot (its resources are counted).
    pub fn counts(&self, policy: &str) -> bool {
        self.slot_of(policy).is_some()
    }

    /// Records a binding's verdict (its declared tags judged).
    pub fn judged(&mut self, holder: &str, verdict: &Verdict) {
        let governed = self.mask_of(&verdict.governed_by);
        let violating = self.mask_of(
            verdict
                .denied
                .iter()
                .chain(&verdict.warned)
                .map(|b| &b.policy),
        );
        let entry = self.holders.entry(holder.to_string()).or_default();
        let (before_governed, before_violating) = (entry.binding_governed, entry.binding_violating);
        entry.binding_governed = governed;
        entry.binding_violating = violating;
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let Some(slot) = slot else { continue };
            let bit = 1u64 << index;
            adjust(
                &mut slot.bindings_evaluated,
                before_governed & bit != 0,
                governed & bit != 0,
            );
            adjust(
                &mut slot.bindings_violating,
                before_violating & bit != 0,
                violating & bit != 0,
            );
        }
    }

    /// Records the resources a holder's pass observed, with all their tags, under the policies
    /// of `policies` that govern `scope` (`only`: under that policy alone, for a scan). They
    /// replace what its last pass observed.
    pub fn observed<'a>(
        &mut self,
        holder: &str,
        policies: &[Policy],
        scope: &Scope<'_>,
        only: Option<&str>,
        resources: impl IntoIterator<Item = (&'a String, &'a crate::tags::Tags)>,
    ) {
        let governing: Vec<(usize, &Policy)> = policies
            .iter()
            // NB: a scan counts under its own policy, whatever the policy's match says.
            .filter(|p| match only {
                Some(only) => only == p.name,
                None => p.governs(scope),
            })
            .filter_map(|p| Some((self.slot_of(&p.name)?, p)))
            .collect();
        let before = self
            .holders
            .get_mut(holder)
            .map(|h| std::mem::take(&mut h.resources))
            .unwrap_or_default();
        for id in &before {
            self.release(*id);
        }
        let mut held = Vec::new();
        for (resource_id, tags) in resources {
            let resource = Observed {
                provider: scope.provider,
                resource_type: scope.resource_type,
                resource_id,
                tags,
            };
            let id = identity(scope.provider, scope.resource_type, resource_id);
            self.hold(id, &resource, &governing);
            held.push(id);
        }
        if held.is_empty() && !self.holders.contains_key(holder) {
            return;
        }
        held.shrink_to_fit();
        self.holders
            .entry(holder.to_string())
            .or_default()
            .resources = held;
    }

    /// Forgets a holder: a binding deleted, a scan removed.
    pub fn forget(&mut self, holder: &str) {
        self.judged(holder, &Verdict::default());
        let Some(gone) = self.holders.remove(holder) else {
            return;
        };
        for id in gone.resources {
            self.release(id);
        }
    }

    /// The holders whose key starts with `prefix` (the scans of a policy).
    pub fn holders_with_prefix(&self, prefix: &str) -> Vec<String> {
        self.holders
            .keys()
            .filter(|key| key.starts_with(prefix))
            .cloned()
            .collect()
    }

    fn hold(&mut self, id: u64, resource: &Observed<'_>, governing: &[(usize, &Policy)]) {
        let facts = self.resources.entry(id).or_default();
        let before = *facts;
        let mut checked = 0u64;
        let mut noncompliant = 0u64;
        let mut samples = Vec::new();
        for &(index, policy) in governing {
            let bit = 1u64 << index;
            checked |= bit;
            if !policy.keeps(resource.tags) {
                noncompliant |= bit;
                samples.push((index, policy));
            }
        }
        facts.refs += 1;
        // NB: alone, this holder's scope decides which policies govern the resource; shared,
        // any holder's does.
        facts.governed = if before.refs == 0 {
            checked
        } else {
            before.governed | checked
        };
        facts.noncompliant = (before.noncompliant & !checked) | noncompliant;
        let after = *facts;
        self.account(before, after);
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let Some(slot) = slot else { continue };
            if checked & (1 << index) != 0 && noncompliant & (1 << index) == 0 {
                slot.samples.retain(|_, (held, _)| *held != id);
            }
        }
        for (index, policy) in samples {
            let Some(slot) = self.slots[index].as_mut() else {
                continue;
            };
            let key = (
                resource.provider.to_string(),
                resource.resource_type.to_string(),
                resource.resource_id.to_string(),
            );
            let full = slot.samples.len() >= MAX_NONCOMPLIANT_SAMPLES;
            if full
                && !slot.samples.contains_key(&key)
                && slot
                    .samples
                    .last_key_value()
                    .is_some_and(|(last, _)| *last < key)
            {
                continue;
            }
            // NB: the findings only for a resource among the first 20.
            let findings = policy.check(resource.tags);
            let sample = NoncompliantResource {
                provider: key.0.clone(),
                resource_type: key.1.clone(),
                resource_id: key.2.clone(),
                missing: findings.missing,
                invalid: findings
                    .invalid
                    .into_iter()
                    .map(|invalid| (invalid.key, invalid.value))
                    .collect(),
            };
            slot.samples.insert(key, (id, sample));
            while slot.samples.len() > MAX_NONCOMPLIANT_SAMPLES {
                slot.samples.pop_last();
            }
        }
    }

    fn release(&mut self, id: u64) {
        let Some(facts) = self.resources.get_mut(&id) else {
            return;
        };
        let before = *facts;
        facts.refs = facts.refs.saturating_sub(1);
        if facts.refs > 0 {
            return;
        }
        self.resources.remove(&id);
        self.account(before, Facts::default());
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if let Some(slot) = slot
                && before.noncompliant & (1 << index) != 0
            {
                slot.samples.retain(|_, (held, _)| *held != id);
            }
        }
    }

    /// Moves the counts of a resource from `before` to `after`.
    fn account(&mut self, before: Facts, after: Facts) {
        let changed =
            (before.governed ^ after.governed) | (before.noncompliant ^ after.noncompliant);
        if changed == 0 {
            return;
        }
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let bit = 1u64 << index;
            let Some(slot) = slot.as_mut().filter(|_| changed & bit != 0) else {
                continue;
            };
            adjust(
                &mut slot.resources_evaluated,
                before.governed & bit != 0,
                after.governed & bit != 0,
            );
            adjust(
                &mut slot.resources_noncompliant,
                before.governed & before.noncompliant & bit != 0,
                after.governed & after.noncompliant & bit != 0,
            );
        }
    }

    /// A policy's figures (`None`: it has no slot).
    pub fn figures(&self, policy: &str) -> Option<Figures> {
        let slot = self.slots[self.slot_of(policy)?].as_ref()?;
        Some(Figures {
            bindings: PolicyBindingCounts {
                evaluated: slot.bindings_evaluated,
                violating: slot.bindings_violating,
            },
            resources: PolicyResourceCounts {
                evaluated: slot.resources_evaluated,
                compliant: slot.resources_evaluated - slot.resources_noncompliant,
                noncompliant: slot.resources_noncompliant,
            },
            noncompliant: slot
                .samples
                .values()
                .map(|(_, sample)| sample.clone())
                .collect(),
        })
    }
}

/// One count moved by a flag going from `before` to `after`.
fn adjust(count: &mut u32, before: bool, after: bool) {
    match (before, after) {
        (false, true) => *count += 1,
        (true, false) => *count = count.saturating_sub(1),
        _ => {}
    }
}

#[cfg(test)]
#[path = "ledger_tests.rs"]
mod tests;
