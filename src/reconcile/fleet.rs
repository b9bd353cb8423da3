//! The fleet: bindings reach cloud resources through providers, but a resource is one thing
//! (DESIGN.md section 2, layer 4). Both hosts key claims by the resource's identity here, so
//! that two bindings that reach one resource through two providers see each other's claims.
//!
//! # Identity
//! A resource is `(cloud, region, resource type, resource id)`: a [`Target`] and an id.
//!
//! The account is deliberately not part of the key. Nothing in a TagProvider says which
//! account its keys reach: two teams' providers usually hold two RAM users' keys (different
//! AccessKey IDs) of one account, and an endpoint override (private link) reaches the same
//! account as the product's public endpoint. Keying by AccessKey ID or endpoint would treat one
//! resource as two, and two bindings would rewrite one key on every pass, both Ready (issue
//! 11). The ids that tagbinder tags are unique beyond one account (API Gateway group ids are
//! UUIDs, ECS and JD Cloud ids are generated per cloud), so two providers of two accounts
//! never name the same `(cloud, region, type, id)` in practice; if they did, the cost is a
//! `Conflict` reported on the younger binding, never a flapping value or a pruned tag.
//!
//! # The claim index
//! [`ClaimIndex`] maps each (provider, resource type, id) to the bindings that declare it;
//! a query for a target looks up every provider that reaches the target's cloud and region,
//! so a provider's change of region needs no re-indexing. The controller feeds it from its
//! watch of bindings; the CLI from the files.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;

use kube::ResourceExt;

use crate::api::{Cloud, ResourceTagBinding, TagProviderSpec};
use crate::plan::BindingId;

/// Where a provider's calls land: a cloud and a region (see the module's note on accounts).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reach {
    /// The cloud.
    pub cloud: Cloud,
    /// The region, as the provider spells it.
    pub region: String,
}

impl Reach {
    /// The reach of a provider.
    pub fn of(spec: &TagProviderSpec) -> Self {
        Reach {
            cloud: spec.cloud,
            region: spec.region.clone(),
        }
    }
}

/// A set of resources that one list call can read together: a reach and a resource type.
/// With an id, the identity of a resource.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// Cloud and region.
    pub reach: Reach,
    /// Alibaba `ResourceType` (or `PRODUCT:TYPE`), JD Cloud `serviceCode`.
    pub resource_type: String,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}/{}/{}",
            self.reach.cloud.as_str(),
            self.reach.region,
            self.resource_type
        )
    }
}

/// The identity and age of a binding (decides conflicts), the same in both hosts.
pub fn binding_id(binding: &ResourceTagBinding) -> BindingId {
    BindingId {
        created: binding
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second()),
        namespace: binding.namespace().unwrap_or_default(),
        name: binding.name_any(),
    }
}

/// `namespace/name`: how both hosts name a binding in keys and messages.
pub fn binding_key(binding: &ResourceTagBinding) -> String {
    format!(
        "{}/{}",
        binding.namespace().unwrap_or_default(),
        binding.name_any()
    )
}

/// Which bindings declare each resource. `K` names a binding (`namespace/name` in the
/// controller, an index into the files in the CLI).
#[derive(Debug)]
pub struct ClaimIndex<K> {
    /// (provider, resource type) -> resource id -> bindings.
    by_resource: HashMap<Group, HashMap<Box<str>, Vec<K>>>,
    /// What each binding declared, to withdraw it.
    declared: HashMap<K, Declared>,
}

/// (provider, resource type), shared by the bindings that declare resources there.
type Group = std::sync::Arc<(String, String)>;

#[derive(Debug)]
struct Declared {
    group: Group,
    ids: Vec<Box<str>>,
}

impl<K> Default for ClaimIndex<K> {
    fn default() -> Self {
        ClaimIndex {
            by_resource: HashMap::new(),
            declared: HashMap::new(),
        }
    }
}

impl<K: Clone + Eq + Hash + Ord> ClaimIndex<K> {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records what `key` declares now (replacing what it declared before).
    pub fn declare<'a>(
        &mut self,
        key: K,
        provider: &str,
        resource_type: &str,
        resource_ids: impl IntoIterator<Item = &'a str>,
    ) {
        self.withdraw(&key);
        let ids: BTreeSet<&str> = resource_ids.into_iter().collect();
        if ids.is_empty() {
            return;
        }
        let wanted = (provider.to_string(), resource_type.to_string());
        let shared = match self.by_resource.get_key_value(&wanted) {
            Some((shared, _)) => shared.clone(),
            None => Group::new(wanted),
        };
        let group = self.by_resource.entry(shared.clone()).or_default();
        for id in &ids {
            group.entry((*id).into()).or_default().push(key.clone());
        }
        self.declared.insert(
            key,
            Declared {
                group: shared,
                ids: ids.into_iter().map(Into::into).collect(),
            },
        );
    }

    /// Forgets what `key` declared (deleted, being deleted, or gone from the files).
    pub fn withdraw(&mut self, key: &K) {
        let Some(declared) = self.declared.remove(key) else {
            return;
        };
        let group_key = declared.group;
        let Some(group) = self.by_resource.get_mut(&group_key) else {
            return;
        };
        for id in &declared.ids {
            if let Some(keys) = group.get_mut(id) {
                keys.retain(|k| k != key);
                if keys.is_empty() {
                    group.remove(id);
                }
            }
        }
        if group.is_empty() {
            self.by_resource.remove(&group_key);
        }
    }

    /// The resource ids `key` declares, if it declares any.
    pub fn declared_ids(&self, key: &K) -> Option<impl Iterator<Item = &str>> {
        self.declared
            .get(key)
            .map(|declared| declared.ids.iter().map(AsRef::as_ref))
    }

    /// Forgets everything (before a host feeds the index again from scratch).
    pub fn clear(&mut self) {
        self.by_resource.clear();
        self.declared.clear();
    }

    /// The bindings indexed.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.declared.keys()
    }

    /// Bindings indexed.
    pub fn len(&self) -> usize {
        self.declared.len()
    }

    /// Whether no binding is indexed.
    pub fn is_empty(&self) -> bool {
        self.declared.is_empty()
    }

    /// The bindings other than `except` that declare one of `resource_ids` of `target`,
    /// through any provider whose reach (`reach_of`, `None` for an unknown provider) is the
    /// target's.
    pub fn claimants<'a>(
        &self,
        target: &Target,
        reach_of: impl Fn(&str) -> Option<Reach>,
        resource_ids: impl IntoIterator<Item = &'a str>,
        except: Option<&K>,
    ) -> BTreeSet<K> {
        let groups: Vec<&HashMap<Box<str>, Vec<K>>> = self
            .by_resource
            .iter()
            .filter(|(group, _)| {
                let (provider, resource_type) = group.as_ref();
                *resource_type == target.resource_type
                    && reach_of(provider).as_ref() == Some(&target.reach)
            })
            .map(|(_, group)| group)
            .collect();
        let mut found = BTreeSet::new();
        if groups.is_empty() {
            return found;
        }
        for id in resource_ids {
            for group in &groups {
                if let Some(keys) = group.get(id) {
                    found.extend(keys.iter().filter(|k| Some(*k) != except).cloned());
                }
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reach(region: &str) -> Reach {
        Reach {
            cloud: Cloud::Alibaba,
            region: region.to_string(),
        }
    }

    fn target(region: &str) -> Target {
        Target {
            reach: reach(region),
            resource_type: "apiGroup".to_string(),
        }
    }

    /// Providers `team-a` and `team-b` reach cn-hangzhou, `other` cn-beijing.
    fn reach_of(provider: &str) -> Option<Reach> {
        match provider {
            "team-a" | "team-b" => Some(reach("cn-hangzhou")),
            "other" => Some(reach("cn-beijing")),
            _ => None,
        }
    }

    #[test]
    fn claims_are_found_through_every_provider_of_the_same_cloud_and_region() {
        let mut index = ClaimIndex::new();
        index.declare("ns/a", "team-a", "apiGroup", ["g1", "g2"]);
        index.declare("ns/b", "team-b", "apiGroup", ["g2"]);
        index.declare("ns/c", "other", "apiGroup", ["g2"]);
        index.declare("ns/d", "team-b", "instance", ["g2"]);
        let found = index.claimants(&target("cn-hangzhou"), reach_of, ["g2"], Some(&"ns/a"));
        assert_eq!(found, BTreeSet::from(["ns/b"]));
        let found = index.claimants(&target("cn-hangzhou"), reach_of, ["g1", "g2"], None);
        assert_eq!(found, BTreeSet::from(["ns/a", "ns/b"]));
        let found = index.claimants(&target("cn-beijing"), reach_of, ["g2"], None);
        assert_eq!(found, BTreeSet::from(["ns/c"]));
    }

    #[test]
    fn a_new_declaration_replaces_the_old_and_a_withdrawal_forgets_it() {
        let mut index = ClaimIndex::new();
        index.declare("ns/a", "team-a", "apiGroup", ["g1"]);
        index.declare("ns/a", "team-b", "apiGroup", ["g2"]);
        let t = target("cn-hangzhou");
        assert!(index.claimants(&t, reach_of, ["g1"], None).is_empty());
        assert_eq!(
            index.claimants(&t, reach_of, ["g2"], None),
            BTreeSet::from(["ns/a"])
        );
        index.withdraw(&"ns/a");
        assert!(index.claimants(&t, reach_of, ["g2"], None).is_empty());
        assert!(index.is_empty());
        assert!(index.by_resource.is_empty(), "no empty groups are left");
    }

    #[test]
    fn an_unknown_provider_reaches_nothing() {
        let mut index = ClaimIndex::new();
        index.declare(1, "gone", "apiGroup", ["g1"]);
        assert!(
            index
                .claimants(&target("cn-hangzhou"), reach_of, ["g1"], None)
                .is_empty()
        );
    }
}
