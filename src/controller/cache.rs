//! The bindings' cache, compact: every watched binding held as the JSON of its object (the
//! metadata stripped as [`super::watches::strip_unused_metadata`] does), decoded when a pass needs it.
//!
//! kube-runtime's `Controller` keeps its own store of the objects it reconciles; it is given
//! only their metadata ([`metadata_event`]), and this cache holds the rest. A typed binding
//! weighs about 2.5 KiB on the heap (a 900-byte struct, mostly empty options, and some forty
//! allocations, each `BTreeMap` of tags a 560-byte node); its JSON, one allocation, about
//! 1 KiB. At 10,000 bindings this is the largest part of the controller's memory (README,
//! "Controller at scale"). Decoding costs a few microseconds per pass.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};

use crate::api::ResourceTagBinding;
use crate::reconcile::identity::binding_key;

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
    /// Whether its `tagsFrom` reads its namespace: which bindings a namespace's change
    /// concerns.
    reads_namespace: bool,
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
                        reads_namespace: binding.spec.reads_namespace(),
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

    /// Forgets a binding (its object no longer decodes).
    pub fn forget(&self, key: &str) {
        self.write().entries.remove(key);
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

    /// The keys of every binding.
    pub fn keys(&self) -> Vec<String> {
        self.read()
            .entries
            .keys()
            .map(|key| key.to_string())
            .collect()
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

    /// The keys of the bindings in `namespace` that a change of its labels or annotations
    /// concerns: those whose `tagsFrom` reads it, and those whose provider selects namespaces
    /// (one of `selecting`, by `allowedNamespaces`).
    /// With `every`, all the bindings of the namespace (a TagPolicy selects namespaces).
    pub fn of_namespace(&self, namespace: &str, selecting: &[String], every: bool) -> Vec<String> {
        let prefix = format!("{namespace}/");
        self.read()
            .entries
            .iter()
            .filter(|(key, entry)| {
                key.starts_with(&prefix)
                    && (every
                        || entry.reads_namespace
                        || selecting.iter().any(|p| **p == *entry.provider))
            })
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

/// A binding as the watch receives it: decoded, or the reason it could not be. Decoding one
/// object never fails the watch: an object stored under an older schema (a boolean tag value,
/// say) would otherwise fail every list, so that no binding is reconciled and the caches never
/// fill (issue 20). The controller skips such an object and says so in a Warning event on it.
#[derive(Clone, Debug)]
pub struct Watched {
    /// The object's metadata, as far as it decodes.
    pub metadata: ObjectMeta,
    /// The binding, or why it does not decode.
    pub decoded: Result<ResourceTagBinding, Arc<serde_json::Error>>,
}

impl<'de> serde::Deserialize<'de> for Watched {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        let metadata = value
            .get("metadata")
            .and_then(|metadata| ObjectMeta::deserialize(metadata).ok())
            .unwrap_or_default();
        let decoded = ResourceTagBinding::deserialize(value).map_err(Arc::new);
        Ok(Watched { metadata, decoded })
    }
}

impl kube::Resource for Watched {
    type DynamicType = ();
    type Scope = kube::core::NamespaceResourceScope;

    fn kind(dt: &()) -> std::borrow::Cow<'_, str> {
        ResourceTagBinding::kind(dt)
    }

    fn group(dt: &()) -> std::borrow::Cow<'_, str> {
        ResourceTagBinding::group(dt)
    }

    fn version(dt: &()) -> std::borrow::Cow<'_, str> {
        ResourceTagBinding::version(dt)
    }

    fn plural(dt: &()) -> std::borrow::Cow<'_, str> {
        ResourceTagBinding::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// An object of the watch that does not decode: which, and why.
#[derive(Clone, Debug)]
pub struct Undecodable {
    /// `namespace/name`.
    pub key: String,
    /// The object, for an event about it.
    pub reference: k8s_openapi::api::core::v1::ObjectReference,
    /// The decoding error.
    pub error: Arc<serde_json::Error>,
}

/// The watch's event with the undecodable object set aside: `Err` names it (an event that
/// announced it, or its deletion); the others pass on as bindings.
pub fn decoded(
    event: watcher::Event<Watched>,
) -> Result<watcher::Event<ResourceTagBinding>, Box<Undecodable>> {
    let binding = |watched: Watched| match watched.decoded {
        Ok(binding) => Ok(binding),
        Err(error) => {
            let metadata = watched.metadata;
            let key = format!(
                "{}/{}",
                metadata.namespace.as_deref().unwrap_or_default(),
                metadata.name.as_deref().unwrap_or_default()
            );
            Err(Box::new(Undecodable {
                key,
                reference: k8s_openapi::api::core::v1::ObjectReference {
                    api_version: Some(ResourceTagBinding::api_version(&()).into_owned()),
                    kind: Some(ResourceTagBinding::kind(&()).into_owned()),
                    name: metadata.name,
                    namespace: metadata.namespace,
                    uid: metadata.uid,
                    resource_version: metadata.resource_version,
                    field_path: None,
                },
                error,
            }))
        }
    };
    Ok(match event {
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitDone => watcher::Event::InitDone,
        watcher::Event::InitApply(watched) => watcher::Event::InitApply(binding(watched)?),
        watcher::Event::Apply(watched) => watcher::Event::Apply(binding(watched)?),
        watcher::Event::Delete(watched) => watcher::Event::Delete(binding(watched)?),
    })
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

/// Whether a cache has been filled once (its watch's first list is in). Any number of tasks
/// may wait for it.
// NB: kube-runtime's `Store::wait_until_ready` wakes only the last of several concurrent
// waiters (one oneshot receiver behind a lock), so the controller's own waits use this.
#[derive(Clone, Debug)]
pub struct Synced(Arc<tokio::sync::watch::Sender<bool>>);

impl Default for Synced {
    fn default() -> Self {
        Synced(Arc::new(tokio::sync::watch::channel(false).0))
    }
}

impl Synced {
    /// A cache that is filled already.
    #[cfg(test)]
    pub fn done() -> Self {
        let synced = Synced::default();
        synced.mark();
        synced
    }

    /// Whether the cache is filled.
    pub fn is_done(&self) -> bool {
        *self.0.borrow()
    }

    /// The cache is filled.
    pub fn mark(&self) {
        self.0.send_replace(true);
    }

    /// Resolves once the cache is filled.
    pub async fn wait(&self) {
        let mut filled = self.0.subscribe();
        // NB: the sender lives in `self`, so the channel cannot close while waiting.
        let _ = filled.wait_for(|filled| *filled).await;
    }
}

#[cfg(test)]
pub(super) mod tests {
    use kube::runtime::watcher::Event;

    use super::*;
    use crate::api::{DeletionPolicy, ProviderRef, ResourceTagBindingSpec};

    /// A binding `namespace/name` through `provider`, at generation 3.
    pub(in crate::controller) fn binding(
        namespace: &str,
        name: &str,
        provider: &str,
    ) -> ResourceTagBinding {
        let mut binding = ResourceTagBinding::new(
            name,
            ResourceTagBindingSpec {
                provider_ref: ProviderRef {
                    name: provider.to_string(),
                },
                resource_type: "apigateway".to_string(),
                resource_ids: vec!["api-1".to_string()],
                tags: crate::tags::tags(&[("env", "prod")]),
                tags_from: Vec::new(),
                deletion_policy: DeletionPolicy::Delete,
                interval: "10m".to_string(),
                suspend: false,
                mode: Default::default(),
                resource_selector: None,
                max_resources: None,
            },
        );
        binding.metadata.namespace = Some(namespace.to_string());
        binding.metadata.generation = Some(3);
        binding
    }

    #[test]
    fn a_cached_binding_decodes_to_the_object_it_was_given() {
        let original = binding("team-a", "web", "alibaba");
        let cache = Bindings::of([original.clone()]);
        let decoded = cache.get("team-a/web").expect("cached");
        assert_eq!(
            serde_json::to_value(&*decoded).unwrap(),
            serde_json::to_value(&original).unwrap()
        );
        assert!(cache.get("team-a/other").is_none());
        assert!(
            cache
                .get_ref(&reference("team-a/web"))
                .is_some_and(|b| b.spec.resource_ids == ["api-1"])
        );
    }

    #[test]
    fn a_relist_forgets_the_bindings_it_did_not_list_and_a_delete_forgets_one() {
        let cache = Bindings::of([
            binding("a", "one", "p1"),
            binding("a", "two", "p2"),
            binding("b", "three", "p1"),
        ]);
        assert_eq!(cache.of_providers(&["p1".to_string()]).len(), 2);
        cache.apply(&Event::Init);
        cache.apply(&Event::InitApply(binding("a", "one", "p2")));
        // NB: until the list is done, the others stay (kube-runtime's store does the same).
        assert_eq!(cache.len(), 3);
        cache.apply(&Event::InitDone);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.of_providers(&["p2".to_string()]), ["a/one"]);
        assert!(cache.of_providers(&["p1".to_string()]).is_empty());
        cache.apply(&Event::Delete(binding("a", "one", "p2")));
        assert!(cache.is_empty());
    }

    #[test]
    fn kube_runtime_is_given_the_metadata_of_each_event() {
        let event = metadata_event(Event::Apply(binding("ns", "web", "p")));
        let Event::Apply(meta) = event else {
            panic!("an Apply stays an Apply");
        };
        assert_eq!(key_of(&meta), "ns/web");
        assert_eq!(meta.metadata.generation, Some(3));
        assert!(matches!(
            metadata_event(Event::InitDone),
            Event::<Meta>::InitDone
        ));
    }
}
