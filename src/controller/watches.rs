//! The controller's watches besides the bindings' own: TagPolicies, Secrets and Namespaces,
//! what each keeps of its objects, and what a change of one announces; and what the bindings'
//! watch reports of an object that does not decode.

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::ListParams;
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::watcher::{self, watcher};
use kube::runtime::{WatchStreamExt, predicates};
use kube::{Api, Client, ResourceExt};

use super::cache::{self, Synced};
use super::context::Context;
use super::{fleet, policies, status};
use crate::api::{INTENT_ANNOTATION, IntentRecord, ResourceTagBinding, TagPolicy};

/// Hash of what should trigger a pass: the spec (generation), a requested reconcile, the
/// labels and annotations a `fieldRef` reads, and the start of a deletion. The controller's
/// own writes (status, the intent annotation, the finalizer) change none of these.
pub(super) fn pass_trigger(binding: &cache::Meta) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    binding.metadata.generation.hash(&mut hasher);
    // NB: the cache keeps the request annotation and the labels and annotations the
    // binding's `fieldRef`s read (see `strip_unused_metadata`): a change of any is a pass.
    binding
        .annotations()
        .iter()
        .filter(|(key, _)| *key != INTENT_ANNOTATION)
        .for_each(|entry| entry.hash(&mut hasher));
    binding.labels().hash(&mut hasher);
    binding
        .metadata
        .deletion_timestamp
        .is_some()
        .hash(&mut hasher);
    Some(hasher.finish())
}

/// The TagPolicies' watch and cache. Without their CRD, or without RBAC to list them (an
/// install older than issue 24), no policy is enforced, and the log says so once.
pub(super) async fn policy_watch(
    client: &Client,
) -> (
    Option<Arc<policies::Policies>>,
    futures::stream::BoxStream<'static, Result<TagPolicy, watcher::Error>>,
) {
    let api = Api::<TagPolicy>::all(client.clone());
    match api.list_metadata(&ListParams::default().limit(1)).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 403 => {
            tracing::warn!(
                code = status.code,
                "cannot list TagPolicies (CRD tagpolicies.tagbinder.io not installed, or no RBAC to list them): no tag policy is enforced"
            );
            return (None, futures::stream::pending().boxed());
        }
        Err(error) => {
            // NB: a transient error: the watch retries with backoff, and passes wait for it.
            tracing::warn!(%error, "cannot list TagPolicies yet; passes wait for them");
        }
    }
    let (store, writer) = reflector::store();
    let synced = Synced::default();
    let stream = reflector::reflector(
        writer,
        watcher(api, watcher::Config::default().any_semantic()),
    )
    .default_backoff()
    .inspect_ok(marks_synced(&synced))
    // NB: a deleted policy too: a binding it stalled is judged again.
    .touched_objects()
    .predicate_filter(predicates::generation, Default::default())
    .boxed();
    (
        Some(Arc::new(policies::Policies::new(store, synced))),
        stream,
    )
}

/// Reports each object of the bindings' watch that does not decode: an error in the log and a
/// Warning event on the object, once per version of it.
pub(super) async fn report_undecodable(
    ctx: Arc<Context>,
    mut reports: futures::channel::mpsc::UnboundedReceiver<cache::Undecodable>,
) {
    use kube::runtime::events::{Event, EventType, Recorder};
    let mut reported = std::collections::HashSet::new();
    while let Some(bad) = reports.next().await {
        let version = (
            bad.reference.uid.clone(),
            bad.reference.resource_version.clone(),
        );
        if !reported.insert(version) {
            continue;
        }
        tracing::error!(binding = %bad.key, error = %bad.error, "cannot decode the binding; skipping it");
        let mut note = format!(
            "the object does not decode, so it is not reconciled (stored under an older schema?); fix its spec: {}",
            bad.error
        );
        // NB: an event's note holds at most 1 KiB.
        if note.len() > 1000 {
            let mut end = 1000;
            while !note.is_char_boundary(end) {
                end -= 1;
            }
            note.truncate(end);
        }
        let event = Event {
            type_: EventType::Warning,
            reason: crate::api::conditions::reason::UNDECODABLE.to_string(),
            note: Some(note),
            action: "Decode".to_string(),
            secondary: None,
        };
        let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
        if let Err(error) = recorder.publish(&event, &bad.reference).await {
            tracing::warn!(%error, "cannot publish event");
        }
    }
}

/// Tells the fleet that kube-runtime is handed these bindings.
pub(super) fn announce_all(fleet: &fleet::Fleet, keys: &[String]) -> Vec<ObjectRef<cache::Meta>> {
    keys.iter()
        .map(|key| {
            fleet.announce(key.clone());
            cache::reference(key)
        })
        .collect()
}

/// A metadata-only watch of the Secrets in the credentials namespace, the only namespace
/// whose Secrets providers may reference (`--credentials-namespace`), with its cache: the
/// controller needs no access to Secrets anywhere else. A change of a Secret triggers its
/// providers' bindings; a pass reads a Secret only when its resourceVersion in the cache is
/// not the one its client was built from.
pub(super) fn secret_watch(client: &Client, namespace: &str) -> SecretWatch {
    let (store, writer) = reflector::store();
    let synced = Synced::default();
    let stream = reflector::reflector(
        writer,
        watcher(
            Api::<PartialObjectMeta<Secret>>::namespaced(client.clone(), namespace),
            watcher::Config::default().any_semantic(),
        ),
    )
    .default_backoff()
    .inspect_ok(marks_synced(&synced))
    .applied_objects()
    .try_filter(after_first_list(&synced));
    (stream.boxed(), vec![(store, synced)])
}

/// A filter for a watch that announces bindings: nothing of its first list (until `synced`)
/// comes out. The bindings' own list brings every pass, and passes wait for the caches to
/// fill; an announcement of a binding whose pass already ran would bring a second pass.
pub(super) fn after_first_list<K>(
    synced: &Synced,
) -> impl FnMut(&K) -> futures::future::Ready<bool> + use<K> {
    let synced = synced.clone();
    move |_| futures::future::ready(synced.is_done())
}

/// A watch of Namespaces' metadata, its cache, and whether the cache is filled: every
/// namespace, or with `--namespace`, that one (by a `metadata.name` field selector, which
/// RBAC authorises against the one name). Only a change of labels or annotations comes out
/// of the stream (a namespace's status and the rest of its metadata mean nothing here).
pub(super) fn namespace_watch(client: &Client, namespace: Option<&str>) -> NamespaceWatch {
    let api: Api<PartialObjectMeta<Namespace>> = Api::all(client.clone());
    let mut config = watcher::Config::default().any_semantic();
    if let Some(namespace) = namespace {
        config = config.fields(&format!("metadata.name={namespace}"));
    }
    let (store, writer) = reflector::store();
    let synced = Synced::default();
    let mut seen: std::collections::HashMap<String, u64> = std::collections::HashMap::new();
    let stream = reflector::reflector(writer, watcher(api, config).modify(strip_namespace))
        .default_backoff()
        .inspect_ok(marks_synced(&synced))
        // NB: the first list announces nothing (the bindings' own list brings every pass, through
        // the fleet's queue); after it, a namespace whose labels or annotations changed, in a
        // watch event or in a relist, announces its bindings.
        .try_filter_map(move |event| {
            let initial = matches!(event, watcher::Event::InitApply(_));
            let changed = match event {
                watcher::Event::Apply(namespace) | watcher::Event::InitApply(namespace) => {
                    let hash = namespace_trigger(&namespace);
                    match seen.insert(namespace.name_any(), hash) {
                        Some(previous) => (previous != hash).then_some(namespace),
                        None if initial => None,
                        None => Some(namespace),
                    }
                }
                watcher::Event::Delete(namespace) => {
                    seen.remove(&namespace.name_any());
                    None
                }
                watcher::Event::Init | watcher::Event::InitDone => None,
            };
            futures::future::ready(Ok(changed))
        })
        .boxed();
    (stream, store, synced)
}

/// The annotation in which `kubectl apply` keeps a copy of the object it applied.
pub(super) const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Keeps of a namespace what bindings read of it (labels and annotations) and what the cache
/// needs (name, uid, resourceVersion): every namespace of the cluster is cached, since a watch
/// cannot be narrowed to the namespaces that host bindings, so each stays small. The copy of
/// the object that `kubectl apply` keeps in an annotation goes too (no tag value can come
/// from it: it is longer than any cloud's value limit).
pub(super) fn strip_namespace(namespace: &mut PartialObjectMeta<Namespace>) {
    let metadata = &mut namespace.metadata;
    metadata.managed_fields = None;
    metadata.owner_references = None;
    metadata.finalizers = None;
    metadata.generate_name = None;
    if let Some(annotations) = &mut metadata.annotations {
        annotations.remove(LAST_APPLIED);
        if annotations.is_empty() {
            metadata.annotations = None;
        }
    }
}

/// Hash of what a namespace's bindings read of it: its labels and annotations.
pub(super) fn namespace_trigger(namespace: &PartialObjectMeta<Namespace>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    namespace.labels().hash(&mut hasher);
    namespace.annotations().hash(&mut hasher);
    hasher.finish()
}

/// Marks a cache as filled when its reflector has applied the first complete list.
pub(super) fn marks_synced<K>(synced: &Synced) -> impl FnMut(&watcher::Event<K>) + use<K> {
    let synced = synced.clone();
    move |event| {
        if matches!(event, watcher::Event::InitDone) {
            synced.mark();
        }
    }
}

/// Drops what the cache does not need, to keep memory small with many bindings: managed
/// fields, labels, owner references and every annotation but the one that asks for a pass
/// (the last-applied configuration of `kubectl apply` is a copy of the whole object). The
/// controller reads the spec, the status, and of the metadata only the name, namespace, uid,
/// resourceVersion, generation, timestamps, finalizers and that annotation.
pub(super) fn strip_unused_metadata(binding: &mut ResourceTagBinding) {
    let (labels, annotations) = binding.spec.referenced_metadata();
    let (labels, annotations): (Vec<String>, Vec<String>) = (
        labels.into_iter().map(str::to_string).collect(),
        annotations.into_iter().map(str::to_string).collect(),
    );
    let metadata = &mut binding.metadata;
    metadata.managed_fields = None;
    metadata.owner_references = None;
    // NB: labels and annotations that a `fieldRef` reads stay (issue 23).
    if let Some(kept) = &mut metadata.labels {
        kept.retain(|key, _| labels.contains(key));
        if kept.is_empty() {
            metadata.labels = None;
        }
    }
    // NB: the intent annotation stays while it is newer than the status (the crash window).
    let intent = metadata
        .annotations
        .as_ref()
        .is_some_and(|all| IntentRecord::newer_than(all, binding.status.as_ref()).is_some());
    if let Some(kept) = &mut metadata.annotations {
        kept.retain(|key, _| {
            key == status::REQUESTED_AT_ANNOTATION
                || annotations.contains(key)
                || (intent && key == INTENT_ANNOTATION)
        });
        if kept.is_empty() {
            metadata.annotations = None;
        }
    }
}

/// A watch of Secrets' metadata, its cache, and whether the cache is filled.
pub(super) type SecretWatch = (
    futures::stream::BoxStream<'static, Result<PartialObjectMeta<Secret>, watcher::Error>>,
    Vec<(reflector::Store<PartialObjectMeta<Secret>>, Synced)>,
);

/// A watch of Namespaces' metadata (its changes), its cache, and whether the cache is filled.
pub(super) type NamespaceWatch = (
    futures::stream::BoxStream<'static, Result<PartialObjectMeta<Namespace>, watcher::Error>>,
    reflector::Store<PartialObjectMeta<Namespace>>,
    Synced,
);
