//! The in-memory store: objects, the global `resourceVersion` counter, `generation`, status
//! subresource separation, finalizers, and the history that watches replay from.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::ops::Bound;
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::broadcast;

mod writes;

use super::errors::ApiError;
use super::patch;
use super::selectors::Selector;
use super::types::{self, ResourceType};

/// group, plural, namespace ("" when cluster-scoped), name.
type ObjectKey = (String, String, String, String);

/// Changes kept for watches to resume from; older ones are compacted.
const HISTORY: usize = 10_000;

/// One change, as watches stream it.
#[derive(Clone, Debug)]
pub struct Change {
    pub rv: u64,
    pub group: String,
    pub plural: String,
    pub namespace: Option<String>,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub event: &'static str,
    pub object: Value,
}

/// One page of a list.
pub struct Page {
    pub items: Vec<Value>,
    /// (namespace, name) of the last item, when more objects may follow.
    pub next: Option<(String, String)>,
}

/// The start of a watch.
pub struct WatchStart {
    /// Changes to send first.
    pub replay: Vec<Arc<Change>>,
    /// Live changes at or before this resourceVersion are already covered.
    pub after: u64,
    /// Live changes.
    pub live: broadcast::Receiver<Arc<Change>>,
}

/// Which part of an object a write may touch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    Main,
    Status,
}

/// A patch, with the parameters server-side apply needs.
pub struct PatchRequest {
    pub kind: patch::PatchKind,
    pub body: Value,
    pub field_manager: Option<String>,
}

/// Everything the server holds.
pub struct State {
    rv: u64,
    types: Vec<ResourceType>,
    objects: BTreeMap<ObjectKey, Value>,
    history: VecDeque<Arc<Change>>,
    /// Every change up to this resourceVersion is forgotten.
    compacted: u64,
    /// Last object applied by each field manager, per object and part.
    applied: HashMap<(ObjectKey, String, Part), Value>,
    changes: broadcast::Sender<Arc<Change>>,
}

/// Now, as the apiserver writes timestamps (RFC 3339, whole seconds).
pub fn now() -> String {
    jiff::Timestamp::from_second(jiff::Timestamp::now().as_second())
        .map(|t| t.to_string())
        .unwrap_or_default()
}

fn key(ty: &ResourceType, namespace: Option<&str>, name: &str) -> ObjectKey {
    (
        ty.group.clone(),
        ty.plural.clone(),
        namespace.unwrap_or_default().to_string(),
        name.to_string(),
    )
}

fn metadata(object: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !object["metadata"].is_object() {
        object["metadata"] = json!({});
    }
    object["metadata"]
        .as_object_mut()
        .expect("metadata was just made an object")
}

/// The object without what the server alone changes, to tell a no-op write.
fn comparable(object: &Value) -> Value {
    let mut object = object.clone();
    let meta = metadata(&mut object);
    for field in ["resourceVersion", "generation", "managedFields"] {
        meta.remove(field);
    }
    object
}

/// What bumps `generation`: everything but metadata and status.
fn spec_part(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        for field in ["metadata", "status", "apiVersion", "kind"] {
            map.remove(field);
        }
    }
    object
}

fn set_or_remove(object: &mut Value, field: &str, value: Option<&Value>) {
    if let Some(map) = object.as_object_mut() {
        match value {
            Some(value) if !value.is_null() => map.insert(field.to_string(), value.clone()),
            _ => map.remove(field),
        };
    }
}

impl State {
    /// An empty cluster with the `default` namespace.
    pub fn new(changes: broadcast::Sender<Arc<Change>>) -> Self {
        let mut state = State {
            rv: 0,
            types: types::builtins(),
            objects: BTreeMap::new(),
            history: VecDeque::new(),
            compacted: 0,
            applied: HashMap::new(),
            changes,
        };
        let namespaces = state.types[0].clone();
        state
            .create(&namespaces, None, json!({"metadata": {"name": "default"}}))
            .expect("the default namespace is created");
        state
    }

    /// How many objects of a resource satisfy `matches`.
    pub fn count(&self, group: &str, plural: &str, matches: impl Fn(&Value) -> bool) -> usize {
        self.objects
            .iter()
            .filter(|((g, p, _, _), object)| g == group && p == plural && matches(object))
            .count()
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// Every served type.
    pub fn types(&self) -> &[ResourceType] {
        &self.types
    }

    /// The type served at a group, version and plural.
    pub fn find_type(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    /// Forgets the history: a watch from an older resourceVersion gets 410 Gone.
    pub fn compact(&mut self) {
        self.compacted = self.rv;
        self.history.clear();
    }

    fn with_type_meta(ty: &ResourceType, mut object: Value) -> Value {
        object["apiVersion"] = json!(ty.api_version());
        object["kind"] = json!(ty.kind);
        object
    }

    /// One object.
    pub fn get(
        &self,
        ty: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.objects
            .get(&key(ty, namespace, name))
            .map(|o| Self::with_type_meta(ty, o.clone()))
            .ok_or_else(|| ApiError::not_found(&ty.qualified(), name))
    }

    /// Matching objects and the list's resourceVersion.
    pub fn list(
        &self,
        ty: &ResourceType,
        namespace: Option<&str>,
        selector: &Selector,
    ) -> (Vec<Value>, u64) {
        let page = self.list_page(ty, namespace, selector, None, None);
        (page.items, self.rv)
    }

    /// One page of matching objects: at most `limit` (all when `None`), after the object
    /// `after` (namespace, name) when given, in key order, and the key of the last one when
    /// more may follow.
    pub fn list_page(
        &self,
        ty: &ResourceType,
        namespace: Option<&str>,
        selector: &Selector,
        limit: Option<usize>,
        after: Option<(&str, &str)>,
    ) -> Page {
        let start = match after {
            Some((ns, name)) => Bound::Excluded(key(ty, Some(ns), name)),
            None => Bound::Included(key(ty, None, "")),
        };
        let mut items = Vec::new();
        let mut last = None;
        let matching = self
            .objects
            .range((start, Bound::Unbounded))
            .take_while(|((group, plural, _, _), _)| *group == ty.group && *plural == ty.plural)
            .filter(|((_, _, ns, _), _)| namespace.is_none_or(|n| n == ns));
        for ((_, _, ns, name), object) in matching {
            if limit.is_some_and(|limit| items.len() >= limit) {
                return Page { items, next: last };
            }
            let object = Self::with_type_meta(ty, object.clone());
            if selector.matches(&object) {
                items.push(object);
                last = Some((ns.clone(), name.clone()));
            }
        }
        Page { items, next: None }
    }

    /// What a watch from `since` replays (`None` or 0: the current objects as ADDED), and the
    /// receiver of later changes, subscribed under the same lock so that nothing is missed.
    pub fn watch(
        &self,
        ty: &ResourceType,
        namespace: Option<&str>,
        selector: &Selector,
        since: Option<u64>,
    ) -> Result<WatchStart, ApiError> {
        let replay: Vec<Arc<Change>> = match since.filter(|rv| *rv > 0) {
            None => self
                .list(ty, namespace, selector)
                .0
                .into_iter()
                .map(|object| {
                    Arc::new(Change {
                        rv: 0,
                        group: ty.group.clone(),
                        plural: ty.plural.clone(),
                        namespace: namespace.map(str::to_string),
                        event: "ADDED",
                        object,
                    })
                })
                .collect(),
            Some(rv) if rv < self.compacted => return Err(ApiError::gone(rv, self.compacted)),
            Some(rv) => self
                .history
                .iter()
                .filter(|c| c.rv > rv && watched(c, ty, namespace, selector))
                .cloned()
                .collect(),
        };
        Ok(WatchStart {
            replay,
            after: self.rv.max(since.unwrap_or(0)),
            live: self.changes.subscribe(),
        })
    }

    fn record(
        &mut self,
        ty: &ResourceType,
        namespace: Option<&str>,
        event: &'static str,
        object: &Value,
    ) {
        let change = Arc::new(Change {
            rv: self.rv,
            group: ty.group.clone(),
            plural: ty.plural.clone(),
            namespace: namespace.map(str::to_string),
            event,
            object: object.clone(),
        });
        self.history.push_back(change.clone());
        while self.history.len() > HISTORY {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
        // NB: no receiver is not an error: nobody watches.
        let _ = self.changes.send(change);
    }

    fn next_rv(&mut self) -> String {
        self.rv += 1;
        self.rv.to_string()
    }
}

/// Whether a change concerns a watch of `ty` in `namespace` (all when `None`) with `selector`.
pub fn watched(
    change: &Change,
    ty: &ResourceType,
    namespace: Option<&str>,
    selector: &Selector,
) -> bool {
    change.group == ty.group
        && change.plural == ty.plural
        && namespace.is_none_or(|n| change.namespace.as_deref() == Some(n))
        && selector.matches(&change.object)
}

/// The metadata-only view of an object (`as=PartialObjectMetadata`).
pub fn partial(object: &Value) -> Value {
    json!({
        "apiVersion": "meta.k8s.io/v1",
        "kind": "PartialObjectMetadata",
        "metadata": object["metadata"],
    })
}
