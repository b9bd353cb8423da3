//! The bindings' cache, compact: every watched binding held as the JSON of its object (the
//! metadata stripped as [`super::strip_unused_metadata`] does), decoded when a pass needs it.
//!
//! kube-runtime's `Controller` keeps its own store of the objects it reconciles; it is given
//! only their metadata ([`metadata_event`]), and this cache holds the rest. A typed binding
//! weighs about 2.5 KiB on the heap (a 900-byte struct, mostly empty options, and some forty
//! allocations, each `BTreeMap` of tags a 560-byte node); its JSON, one allocation, about
//! 1 KiB. At 10,000 bindings this is the largest part of the controller's memory (README,
//! "Controller at scale"). Decoding costs a few microseconds per pass.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock};

use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use crate::api::ResourceTagBinding;
use crate::reconcile::fleet::binding_key;

/// Every binding the controller watches, by `namespace/name`.
#[derive(Debug, Default)]
pub struct Bindings {
    state: RwLock<State>,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<Box<str>, Entry>,
    /// Keys seen since the watch started a (re)list; at its end, the others are gone.
    relisting: Option<HashSet<Box<str>>>,
}

#[derive(Debug)]
struct Entry {
    /// `spec.providerRef.name`: which bindings a provider's or Secret's change concerns.
    provider: Box<str>,
    /// The binding's JSON.
    encoded: Box<[u8]>,
}

impl Bindings {
    /// A cache holding `bindings` (tests, and hosts without a watch).
    pub fn of(bindings: impl IntoIterator<Item = ResourceTagBinding>) -> Self {
        let cache = Bindings::default();
        for binding in bindings {
            cache.apply(&watcher::Event::Apply(binding));
        }
        cache
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // NB: every critical section leaves the map consistent; a poisoned lock is safe.
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Applies one event of the bindings' watch.
    pub fn apply(&self, event: &watcher::Event<ResourceTagBinding>) {
        match event {
            watcher::Event::Init => self.write().relisting = Some(HashSet::new()),
            watcher::Event::Apply(binding) | watcher::Event::InitApply(binding) => {
                let key: Box<str> = binding_key(binding).into();
                let entry = match serde_json::to_vec(binding) {
                    Ok(encoded) => Some(Entry {
                        provider: binding.spec.provider_ref.name.as_str().into(),
                        encoded: encoded.into_boxed_slice(),
                    }),
                    Err(error) => {
                        // NB: cannot happen for a typed object with string keys; if it did,
                        // the binding would be left alone, visibly.
                        tracing::error!(binding = %key, %error, "cannot cache the binding");
                        None
                    }
                };
                let mut state = self.write();
                if let Some(seen) = &mut state.relisting {
                    seen.insert(key.clone());
                }
                match entry {
                    Some(entry) => state.entries.insert(key, entry),
                    None => state.entries.remove(&key),
                };
            }
            watcher::Event::Delete(binding) => {
                self.write().entries.remove(binding_key(binding).as_str());
            }
            watcher::Event::InitDone => {
                let mut state = self.write();
                if let Some(seen) = state.relisting.take() {
                    // NB: bindings deleted while the watch was down get no Delete event.
                    state.entries.retain(|key, _| seen.contains(key));
                    state.entries.shrink_to_fit();
                }
            }
        }
    }

    /// The binding `namespace/name`, decoded.
    pub fn get(&self, key: &str) -> Option<Arc<ResourceTagBinding>> {
        let state = self.read();
        let entry = state.entries.get(key)?;
        match serde_json::from_slice(&entry.encoded) {
            Ok(binding) => Some(Arc::new(binding)),
            Err(error) => {
                tracing::error!(binding = %key, %error, "cannot decode the cached binding");
                None
            }
        }
    }

    /// The binding a kube-runtime reference names.
    pub fn get_ref<K>(&self, reference: &ObjectRef<K>) -> Option<Arc<ResourceTagBinding>>
    where
        K: kube::Resource,
    {
        let namespace = reference.namespace.as_deref().unwrap_or_default();
        self.get(&format!("{namespace}/{}", reference.name))
    }

    /// The keys of the bindings that go through one of `providers`.
    pub fn of_providers(&self, providers: &[String]) -> Vec<String> {
        self.read()
            .entries
            .iter()
            .filter(|(_, entry)| providers.iter().any(|p| **p == *entry.provider))
            .map(|(key, _)| key.to_string())
            .collect()
    }

    /// How many bindings the cache holds.
    pub fn len(&self) -> usize {
        self.read().entries.len()
    }

    /// Whether the cache holds no binding.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The reference kube-runtime's controller knows a binding by.
pub fn reference(key: &str) -> ObjectRef<Meta> {
    let (namespace, name) = key.split_once('/').unwrap_or(("", key));
    ObjectRef::new(name).within(namespace)
}

/// What kube-runtime's controller holds of a binding: its metadata.
pub type Meta = PartialObjectMeta<ResourceTagBinding>;

/// A watch event of the bindings as kube-runtime's controller sees it: the metadata only.
pub fn metadata_event(event: watcher::Event<ResourceTagBinding>) -> watcher::Event<Meta> {
    let meta = |binding: ResourceTagBinding| PartialObjectMeta {
        types: None,
        metadata: binding.metadata,
        _phantom: std::marker::PhantomData,
    };
    match event {
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(binding) => watcher::Event::InitApply(meta(binding)),
        watcher::Event::Apply(binding) => watcher::Event::Apply(meta(binding)),
        watcher::Event::Delete(binding) => watcher::Event::Delete(meta(binding)),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

/// `namespace/name` of a binding's metadata.
pub fn key_of(meta: &Meta) -> String {
    format!(
        "{}/{}",
        meta.namespace().unwrap_or_default(),
        meta.name_any()
    )
}
