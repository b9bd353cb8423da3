//! Identity: bindings reach cloud resources through providers, but a resource is one thing
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

impl Target {
    /// The canonical identity of the resources of `resource_type` that a provider of `spec`
    /// reaches (issue 20, item 3): one resource is one target and id whichever API names it.
    /// - Alibaba Cloud: a product API's type is named as the Tag service names it,
    ///   `PRODUCT:TYPE` (ECS `instance` is `ecs:instance`, API Gateway `apiGroup` is
    ///   `apigateway:apiGroup`); the Tag service's own `PRODUCT:TYPE` as it is. Both take plain
    ///   ids. A product API given by `apiVersion` and `endpoint` alone keeps its bare type: it
    ///   names no product.
    /// - JD Cloud: `cdn` domains live in the global region `cn-all`, whatever the provider's.
    pub fn of(spec: &TagProviderSpec, resource_type: &str) -> Target {
        let (region, resource_type) = match spec.cloud {
            Cloud::Alibaba => (spec.region.as_str(), alibaba_type(spec, resource_type)),
            Cloud::Aws => (spec.region.as_str(), resource_type.to_string()),
            Cloud::Jdcloud => (
                crate::cloud::jdcloud::region_of(&spec.region, resource_type),
                resource_type.to_string(),
            ),
        };
        Target {
            reach: Reach {
                cloud: spec.cloud,
                region: region.to_string(),
            },
            resource_type,
        }
    }
}

/// The canonical ids of `ids` of `resource_type` through a provider of `spec`, in order, each
/// once (issue 22: a resource is one thing whichever form names it). On AWS a resource is
/// its ARN: a bare id the provider can compose becomes its ARN ([`ArnScope::arn`]); an id it
/// cannot compose stays as it is (the pass refuses it as `InvalidSpec`). Elsewhere ids are
/// canonical as they are. Both hosts pass, claim and record canonical ids. `account` is the
/// one STS named for an AWS provider without `aws.accountId` (the host asks its client).
///
/// [`ArnScope::arn`]: crate::cloud::aws::ArnScope::arn
pub fn canonical_ids<'a>(
    spec: &TagProviderSpec,
    account: Option<&str>,
    resource_type: &str,
    ids: &'a [String],
) -> std::borrow::Cow<'a, [String]> {
    let Some(mut scope) = arn_scope(spec) else {
        return std::borrow::Cow::Borrowed(ids);
    };
    if scope.account_id.is_none() {
        scope.account_id = account.map(str::to_string);
    }
    let mut seen = std::collections::HashSet::new();
    let canonical: Vec<String> = ids
        .iter()
        .map(|id| scope.arn(resource_type, id).unwrap_or_else(|_| id.clone()))
        .filter(|id| seen.insert(id.clone()))
        .collect();
    std::borrow::Cow::Owned(canonical)
}

/// Where an AWS provider's ARNs are (its partition, region and account); `None` elsewhere.
fn arn_scope(spec: &TagProviderSpec) -> Option<crate::cloud::aws::ArnScope> {
    if spec.cloud != Cloud::Aws {
        return None;
    }
    let settings = spec.aws.as_ref();
    Some(crate::cloud::aws::ArnScope {
        partition: settings
            .and_then(|aws| aws.partition.clone())
            .unwrap_or_else(|| crate::cloud::aws::partition_of(&spec.region).to_string()),
        region: spec.region.clone(),
        account_id: settings.and_then(|aws| aws.account_id.clone()),
    })
}

/// The key of a resource id in the claim index: one key for every form that may name one
/// resource, found without the provider (an AWS ARN of a type whose bare ids are composed is
/// keyed by its bare id). The index finds candidates by it; the plan compares canonical ids.
fn claim_key(id: &str) -> &str {
    crate::cloud::aws::arn::bare_id_of(id).unwrap_or(id)
}

/// The Tag service's `PRODUCT:TYPE` name of an Alibaba Cloud resource type (see [`Target::of`]).
fn alibaba_type(spec: &TagProviderSpec, resource_type: &str) -> String {
    let settings = spec.alibaba.as_ref();
    let product = settings.and_then(|a| a.product.as_deref());
    if product.is_some_and(|p| p.eq_ignore_ascii_case(crate::cloud::alibaba::TAG_SERVICE_PRODUCT)) {
        return resource_type.to_string();
    }
    let preset = match product {
        Some(product) => crate::cloud::alibaba::preset(product),
        None => settings
            .and_then(|a| a.api_version.as_deref())
            .and_then(|version| {
                crate::cloud::alibaba::PRESETS
                    .iter()
                    .find(|p| p.api_version == version)
            }),
    };
    match preset {
        Some(preset) => format!("{}:{resource_type}", preset.product),
        None => resource_type.to_string(),
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
            let keys = group.entry(claim_key(id).into()).or_default();
            // NB: two forms of one resource in one binding are one claim.
            if !keys.contains(&key) {
                keys.push(key.clone());
            }
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
            let id = claim_key(id);
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
    /// through any provider and resource type whose canonical target (`target_of`, `None` for
    /// an unknown provider) is `target` (see [`Target::of`]).
    pub fn claimants<'a>(
        &self,
        target: &Target,
        target_of: impl Fn(&str, &str) -> Option<Target>,
        resource_ids: impl IntoIterator<Item = &'a str>,
        except: Option<&K>,
    ) -> BTreeSet<K> {
        let groups: Vec<&HashMap<Box<str>, Vec<K>>> = self
            .by_resource
            .iter()
            .filter(|(group, _)| {
                let (provider, resource_type) = group.as_ref();
                target_of(provider, resource_type).as_ref() == Some(target)
            })
            .map(|(_, group)| group)
            .collect();
        let mut found = BTreeSet::new();
        if groups.is_empty() {
            return found;
        }
        for id in resource_ids {
            let id = claim_key(id);
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

    fn target(region: &str) -> Target {
        Target {
            reach: Reach {
                cloud: Cloud::Alibaba,
                region: region.to_string(),
            },
            resource_type: "apigateway:apiGroup".to_string(),
        }
    }

    fn provider(yaml: &str) -> TagProviderSpec {
        serde_yaml::from_str(yaml).expect("a provider spec")
    }

    /// Providers `team-a` and `team-b` reach API Gateway in cn-hangzhou (`team-b` through the
    /// Tag service), `other` cn-beijing.
    fn target_of(name: &str, resource_type: &str) -> Option<Target> {
        let spec = match name {
            "team-a" => {
                provider("{cloud: alibaba, region: cn-hangzhou, alibaba: {product: apigateway}}")
            }
            "team-b" => provider("{cloud: alibaba, region: cn-hangzhou, alibaba: {product: tag}}"),
            "other" => {
                provider("{cloud: alibaba, region: cn-beijing, alibaba: {product: apigateway}}")
            }
            _ => return None,
        };
        Some(Target::of(&spec, resource_type))
    }

    #[test]
    fn claims_are_found_through_every_provider_and_name_of_the_same_resource() {
        let mut index = ClaimIndex::new();
        index.declare("ns/a", "team-a", "apiGroup", ["g1", "g2"]);
        index.declare("ns/b", "team-b", "apigateway:apiGroup", ["g2"]);
        index.declare("ns/c", "other", "apiGroup", ["g2"]);
        index.declare("ns/d", "team-b", "ecs:instance", ["g2"]);
        let found = index.claimants(&target("cn-hangzhou"), target_of, ["g2"], Some(&"ns/a"));
        assert_eq!(found, BTreeSet::from(["ns/b"]));
        let found = index.claimants(&target("cn-hangzhou"), target_of, ["g1", "g2"], None);
        assert_eq!(found, BTreeSet::from(["ns/a", "ns/b"]));
        let found = index.claimants(&target("cn-beijing"), target_of, ["g2"], None);
        assert_eq!(found, BTreeSet::from(["ns/c"]));
    }

    #[test]
    fn one_resource_has_one_identity_whichever_api_or_region_names_it() {
        let ecs = provider("{cloud: alibaba, region: cn-hangzhou, alibaba: {product: ecs}}");
        let ecs_by_version = provider(
            "{cloud: alibaba, region: cn-hangzhou, alibaba: {apiVersion: '2014-05-26'}, \
             endpoint: 'https://ecs.example'}",
        );
        let tag = provider("{cloud: alibaba, region: cn-hangzhou, alibaba: {product: tag}}");
        assert_eq!(
            Target::of(&ecs, "instance"),
            Target::of(&tag, "ecs:instance")
        );
        assert_eq!(
            Target::of(&ecs_by_version, "instance"),
            Target::of(&tag, "ecs:instance")
        );
        assert_ne!(Target::of(&ecs, "disk"), Target::of(&tag, "ecs:instance"));
        let apigw =
            provider("{cloud: alibaba, region: cn-hangzhou, alibaba: {product: apigateway}}");
        assert_eq!(
            Target::of(&apigw, "apiGroup"),
            Target::of(&tag, "apigateway:apiGroup")
        );
        let north = provider("{cloud: jdcloud, region: cn-north-1}");
        let east = provider("{cloud: jdcloud, region: cn-east-2}");
        assert_eq!(Target::of(&north, "cdn"), Target::of(&east, "cdn"));
        assert_eq!(Target::of(&north, "cdn").reach.region, "cn-all");
        assert_ne!(Target::of(&north, "vm"), Target::of(&east, "vm"));
    }

    #[test]
    fn a_new_declaration_replaces_the_old_and_a_withdrawal_forgets_it() {
        let mut index = ClaimIndex::new();
        index.declare("ns/a", "team-a", "apiGroup", ["g1"]);
        index.declare("ns/a", "team-a", "app", ["g2"]);
        let t = target("cn-hangzhou");
        assert!(index.claimants(&t, target_of, ["g1"], None).is_empty());
        index.declare("ns/a", "team-b", "apigateway:apiGroup", ["g2"]);
        assert_eq!(
            index.claimants(&t, target_of, ["g2"], None),
            BTreeSet::from(["ns/a"])
        );
        index.withdraw(&"ns/a");
        assert!(index.claimants(&t, target_of, ["g2"], None).is_empty());
        assert!(index.is_empty());
        assert!(index.by_resource.is_empty(), "no empty groups are left");
    }

    #[test]
    fn an_unknown_provider_reaches_nothing() {
        let mut index = ClaimIndex::new();
        index.declare(1, "gone", "apiGroup", ["g1"]);
        assert!(
            index
                .claimants(&target("cn-hangzhou"), target_of, ["g1"], None)
                .is_empty()
        );
    }

    #[test]
    fn an_aws_bare_id_and_its_arn_are_one_canonical_id_and_one_claim() {
        let aws = provider("{cloud: aws, region: us-east-1, aws: {accountId: '123456789012'}}");
        let arn = "arn:aws:ec2:us-east-1:123456789012:instance/i-1".to_string();
        let ids = vec!["i-1".to_string(), arn.clone(), "not/an-id".to_string()];
        let canonical = canonical_ids(&aws, None, "ec2:instance", &ids);
        assert_eq!(canonical.as_ref(), [arn.clone(), "not/an-id".to_string()]);
        // Without accountId, the account STS named composes the bare id.
        let unnamed = provider("{cloud: aws, region: us-east-1}");
        let bare = vec!["i-1".to_string()];
        assert_eq!(
            canonical_ids(&unnamed, None, "ec2:instance", &bare).as_ref(),
            ["i-1"]
        );
        assert_eq!(
            canonical_ids(&unnamed, Some("123456789012"), "ec2:instance", &bare).as_ref(),
            [arn.as_str()]
        );
        // Other clouds' ids are canonical as they are, and not copied.
        let alibaba = provider("{cloud: alibaba, region: cn-hangzhou}");
        assert!(matches!(
            canonical_ids(&alibaba, None, "apiGroup", &ids),
            std::borrow::Cow::Borrowed(_)
        ));
        let mut index: ClaimIndex<&str> = ClaimIndex::new();
        index.declare("by-id", "p", "ec2:instance", ["i-1"]);
        index.declare("by-arn", "p", "ec2:instance", [arn.as_str()]);
        let target = Target::of(&aws, "ec2:instance");
        let found = index.claimants(
            &target,
            |_, t| Some(Target::of(&aws, t)),
            [arn.as_str()],
            None,
        );
        assert_eq!(found.into_iter().collect::<Vec<_>>(), ["by-arn", "by-id"]);
        index.withdraw(&"by-id");
        let found = index.claimants(&target, |_, t| Some(Target::of(&aws, t)), ["i-1"], None);
        assert_eq!(found.into_iter().collect::<Vec<_>>(), ["by-arn"]);
    }
}
