//! The resources and their tags, for every cloud, and their persistence.
//!
//! Cloud-agnostic: resources are keyed by (cloud, resource type, id) and carry a region and a
//! tag map. Each cloud's endpoint applies its own rules before it changes anything here.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::inventory::InventoryResource;

/// Identity of a resource.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ResourceKey {
    /// `alibaba`, `jdcloud` or `aws`.
    pub cloud: String,
    /// Alibaba `ResourceType` or JD `serviceCode`.
    pub resource_type: String,
    /// Resource id.
    pub id: String,
}

impl ResourceKey {
    /// A key from its parts.
    pub fn new(cloud: &str, resource_type: &str, id: &str) -> Self {
        ResourceKey {
            cloud: cloud.to_string(),
            resource_type: resource_type.to_string(),
            id: id.to_string(),
        }
    }
}

/// What the store keeps of a resource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct StoredResource {
    /// Region id; empty when the resource answers in every region.
    pub region: String,
    /// Tag key to value.
    pub tags: BTreeMap<String, String>,
}

impl StoredResource {
    /// True when a request for `region` (if it names one) may see this resource: the regions
    /// are equal, or the resource has no region.
    pub fn is_in(&self, region: Option<&str>) -> bool {
        match region {
            Some(region) => self.region.is_empty() || self.region == region,
            None => true,
        }
    }
}

/// Every resource of every cloud.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Store {
    resources: BTreeMap<ResourceKey, StoredResource>,
}

impl Store {
    /// A store holding `resources`, which the caller has validated
    /// ([`super::inventory::validate_resources`]): a resource listed twice would keep its last entry.
    pub fn from_resources(resources: &[InventoryResource]) -> Store {
        let resources = resources
            .iter()
            .map(|r| {
                let key = ResourceKey::new(&r.cloud, &r.resource_type, &r.id);
                let stored = StoredResource {
                    region: r.region.clone(),
                    tags: r.tags.clone(),
                };
                (key, stored)
            })
            .collect();
        Store { resources }
    }

    /// One resource.
    pub fn get(&self, key: &ResourceKey) -> Option<&StoredResource> {
        self.resources.get(key)
    }

    /// One resource, to change it.
    pub fn get_mut(&mut self, key: &ResourceKey) -> Option<&mut StoredResource> {
        self.resources.get_mut(key)
    }

    /// The resources of one cloud and type, by id in byte order.
    pub fn of_type<'a>(
        &'a self,
        cloud: &'a str,
        resource_type: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a StoredResource)> + 'a {
        let start = ResourceKey::new(cloud, resource_type, "");
        self.resources
            .range(start..)
            .take_while(move |(k, _)| k.cloud == cloud && k.resource_type == resource_type)
            .map(|(k, r)| (k.id.as_str(), r))
    }

    /// Every Alibaba Cloud resource as (type, id, resource), in key order.
    pub fn alibaba_typed(&self) -> impl Iterator<Item = (&str, &str, &StoredResource)> {
        self.resources
            .iter()
            .filter(|(key, _)| key.cloud == super::inventory::ALIBABA)
            .map(|(key, stored)| (key.resource_type.as_str(), key.id.as_str(), stored))
    }

    /// Every AWS resource as (`service[:type]`, ARN, resource), in key order.
    pub fn aws_resources(&self) -> impl Iterator<Item = (&str, &str, &StoredResource)> {
        self.resources
            .iter()
            .filter(|(key, _)| key.cloud == super::inventory::AWS)
            .map(|(key, stored)| (key.resource_type.as_str(), key.id.as_str(), stored))
    }

    /// The key of the AWS resource of an ARN, whatever type it is stored under.
    pub fn aws_key_of(&self, arn: &str) -> Option<ResourceKey> {
        self.resources
            .keys()
            .find(|key| key.cloud == super::inventory::AWS && key.id == arn)
            .cloned()
    }

    /// The service codes of the JD Cloud resources, in order, each once.
    pub fn jdcloud_types(&self) -> Vec<String> {
        let mut types: Vec<String> = self
            .resources
            .keys()
            .filter(|key| key.cloud == super::inventory::JDCLOUD)
            .map(|key| key.resource_type.clone())
            .collect();
        types.dedup();
        types
    }

    /// Every resource, in key order, in the inventory's shape.
    pub fn to_resources(&self) -> Vec<InventoryResource> {
        self.resources
            .iter()
            .map(|(key, stored)| InventoryResource {
                cloud: key.cloud.clone(),
                region: stored.region.clone(),
                resource_type: key.resource_type.clone(),
                id: key.id.clone(),
                tags: stored.tags.clone(),
            })
            .collect()
    }

    /// The answer of `GET /_emulator/state`:
    /// `{"resources": {cloud: {type: {id: {"region": .., "tags": {..}}}}}}`, sorted.
    pub fn to_state_json(&self) -> Value {
        let mut clouds: BTreeMap<&str, BTreeMap<&str, BTreeMap<&str, &StoredResource>>> =
            BTreeMap::new();
        for (key, stored) in &self.resources {
            clouds
                .entry(&key.cloud)
                .or_default()
                .entry(&key.resource_type)
                .or_default()
                .insert(&key.id, stored);
        }
        json!({ "resources": clouds })
    }
}

/// The state file's content: the resources with their current tags. Its shape is also a valid
/// inventory (without accounts).
#[derive(Deserialize, Serialize)]
struct StateFile {
    resources: Vec<InventoryResource>,
}

/// Reads a state file; `Ok(None)` when it does not exist.
pub(crate) fn load_state(path: &Path) -> io::Result<Option<Vec<InventoryResource>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error),
    };
    let state: StateFile = serde_json::from_str(&text).map_err(|error| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {error}", path.display()),
        )
    })?;
    Ok(Some(state.resources))
}

/// Writes `resources` to `path` atomically: a temporary file in the same directory, synced,
/// then renamed over the target. Creates missing parent directories.
fn write_state(path: &Path, resources: Vec<InventoryResource>) -> io::Result<()> {
    let mut bytes = serde_json::to_vec_pretty(&StateFile { resources })?;
    bytes.push(b'\n');
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir)?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(&bytes)?;
    temp.as_file().sync_all()?;
    temp.persist(path).map_err(|error| error.error)?;
    Ok(())
}

/// The store shared by the request handlers, with write-through persistence.
#[derive(Debug)]
pub(crate) struct SharedStore {
    current: Mutex<Versioned>,
    state_file: Option<PathBuf>,
    /// Generation last written to the state file; also serialises the writes.
    written: tokio::sync::Mutex<u64>,
}

#[derive(Debug)]
struct Versioned {
    store: Store,
    generation: u64,
}

impl SharedStore {
    /// Shares `store`; with a state file, every successful change is written to it.
    pub fn new(store: Store, state_file: Option<PathBuf>) -> Self {
        SharedStore {
            current: Mutex::new(Versioned {
                store,
                generation: 0,
            }),
            state_file,
            written: tokio::sync::Mutex::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Versioned> {
        // NB: every change is validated before it is applied, so a panic cannot leave the
        // store half-changed; recovering from poisoning is therefore safe.
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads the store.
    pub fn read<R>(&self, read: impl FnOnce(&Store) -> R) -> R {
        read(&self.lock().store)
    }

    /// Runs `change` under the lock; when it succeeds and a state file is configured, writes
    /// the new state. A failed write is logged, not returned: the change has happened.
    pub async fn change<R, E>(
        &self,
        change: impl FnOnce(&mut Store) -> Result<R, E>,
    ) -> Result<R, E> {
        let (result, snapshot) = {
            let mut current = self.lock();
            let result = change(&mut current.store);
            let snapshot = match (&result, &self.state_file) {
                (Ok(_), Some(_)) => {
                    current.generation += 1;
                    Some((current.generation, current.store.to_resources()))
                }
                _ => None,
            };
            (result, snapshot)
        };
        if let Some((generation, resources)) = snapshot
            && let Err(error) = self.save(generation, resources).await
        {
            tracing::error!(%error, "emulator: cannot write the state file");
        }
        result
    }

    /// Writes the current state to the state file, if one is configured.
    pub async fn persist(&self) -> io::Result<()> {
        let (generation, resources) = {
            let current = self.lock();
            (current.generation, current.store.to_resources())
        };
        self.save(generation, resources).await
    }

    async fn save(&self, generation: u64, resources: Vec<InventoryResource>) -> io::Result<()> {
        let Some(path) = self.state_file.clone() else {
            return Ok(());
        };
        let mut written = self.written.lock().await;
        if generation < *written {
            // NB: a newer state is on disk already; writing this one would go back in time.
            return Ok(());
        }
        tokio::task::spawn_blocking(move || write_state(&path, resources))
            .await
            .map_err(io::Error::other)??;
        *written = generation;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(
        cloud: &str,
        resource_type: &str,
        id: &str,
        tags: &[(&str, &str)],
    ) -> InventoryResource {
        InventoryResource {
            cloud: cloud.to_string(),
            region: "cn-hangzhou".to_string(),
            resource_type: resource_type.to_string(),
            id: id.to_string(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn of_type_lists_only_that_cloud_and_type_in_id_order() {
        let store = Store::from_resources(&[
            resource("alibaba", "apiGroup", "g2", &[]),
            resource("alibaba", "apiGroup", "g1", &[]),
            resource("alibaba", "app", "a1", &[]),
            resource("jdcloud", "apiGroup", "g0", &[]),
        ]);
        let ids: Vec<&str> = store
            .of_type("alibaba", "apiGroup")
            .map(|(id, _)| id)
            .collect();
        assert_eq!(ids, ["g1", "g2"]);
    }

    #[test]
    fn state_json_groups_by_cloud_type_and_id() {
        let store =
            Store::from_resources(&[resource("alibaba", "apiGroup", "g1", &[("env", "prod")])]);
        let state = store.to_state_json();
        assert_eq!(
            state["resources"]["alibaba"]["apiGroup"]["g1"]["tags"]["env"],
            "prod"
        );
        assert_eq!(
            state["resources"]["alibaba"]["apiGroup"]["g1"]["region"],
            "cn-hangzhou"
        );
    }

    #[test]
    fn region_matching_ignores_resources_without_region() {
        let regional = StoredResource {
            region: "cn-hangzhou".into(),
            tags: BTreeMap::new(),
        };
        assert!(regional.is_in(None));
        assert!(regional.is_in(Some("cn-hangzhou")));
        assert!(!regional.is_in(Some("cn-beijing")));
        assert!(StoredResource::default().is_in(Some("cn-beijing")));
    }

    #[tokio::test]
    async fn changes_are_written_through_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/state.json");
        let store = Store::from_resources(&[resource("alibaba", "apiGroup", "g1", &[])]);
        let shared = SharedStore::new(store, Some(path.clone()));
        let key = ResourceKey::new("alibaba", "apiGroup", "g1");
        let changed: Result<(), ()> = shared
            .change(|store| {
                let stored = store.get_mut(&key).ok_or(())?;
                stored.tags.insert("env".into(), "prod".into());
                Ok(())
            })
            .await;
        assert!(changed.is_ok());
        let loaded = load_state(&path).unwrap().unwrap();
        assert_eq!(loaded[0].tags["env"], "prod");
        let failed: Result<(), ()> = shared.change(|_| Err(())).await;
        assert!(failed.is_err());
        assert!(
            load_state(&dir.path().join("absent.json"))
                .unwrap()
                .is_none()
        );
    }
}
