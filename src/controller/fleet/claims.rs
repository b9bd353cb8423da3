//! The claim index (issue 11: claims by resource identity) and the selector bindings' feed,
//! kept from the bindings' watch.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, PoisonError};

use kube::runtime::watcher;
use tokio::time::Instant;

use super::Fleet;
use crate::api::ResourceTagBinding;
use crate::reconcile::identity::{ClaimIndex, Target, binding_key};
use crate::reconcile::select;

/// What a selector binding's selection feeds on (see [`Fleet::feeding_cycles`]): its target,
/// its `matchTags`, and the binding itself (its spec and metadata, without status), from which
/// its declared keys are rendered when a cycle is looked for (issue 23: `tagsFrom` and the
/// provider's `defaultTags` declare keys as `tags` do).
#[derive(Clone)]
pub(super) struct SelectorSpec {
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

impl Fleet {
    /// The claim index, for reading.
    pub fn claims(&self) -> std::sync::RwLockReadGuard<'_, ClaimIndex<String>> {
        self.claims.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn claims_mut(&self) -> std::sync::RwLockWriteGuard<'_, ClaimIndex<String>> {
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
}
