//! Resources of the Tag service, addressed by ARN (spec section 1 and 5):
//! `arn:acs:{product}:{region}:{account}:{type}/{id}`, or the same without `arn:` [doc].
//!
//! In the store, a Tag-service resource is `(alibaba, "{product}:{type}", id)`: the
//! inventory lists e.g. `type: rds:dbinstance`. A product the emulator also serves through its
//! own API (ECS, API Gateway) is the same resource under its own type too: the ARN
//! `arn:acs:ecs:...:instance/i-1` finds `(alibaba, "instance", i-1)` when no
//! `ecs:instance` resource exists, as the cloud shows one set of tags through both APIs.

use std::collections::BTreeMap;

use crate::emulator::inventory::ALIBABA;
use crate::emulator::store::{ResourceKey, Store, StoredResource};

/// One parsed ARN.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Arn {
    /// Product code, e.g. `ecs`.
    pub product: String,
    /// Region, or `*`.
    pub region: String,
    /// Account UID, or `*`.
    pub account: String,
    /// Resource type, e.g. `instance`.
    pub resource_type: String,
    /// Resource id.
    pub id: String,
}

impl Arn {
    /// Parses an ARN; `None` when it does not have the documented shape.
    pub fn parse(text: &str) -> Option<Arn> {
        let rest = text.strip_prefix("arn:").unwrap_or(text);
        let rest = rest.strip_prefix("acs:")?;
        let mut parts = rest.splitn(4, ':');
        let (product, region, account, tail) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let (resource_type, id) = tail.split_once('/')?;
        let token = |part: &str| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        if !token(product)
            || !token(resource_type)
            || !(region == "*" || token(region))
            || !(account == "*" || token(account))
            || id.is_empty()
        {
            return None;
        }
        Some(Arn {
            product: product.to_string(),
            region: region.to_string(),
            account: account.to_string(),
            resource_type: resource_type.to_string(),
            id: id.to_string(),
        })
    }

    /// The ARN of a resource in `region` of account `uid`, as answers write it.
    pub fn format(product: &str, region: &str, uid: &str, resource_type: &str, id: &str) -> String {
        format!("arn:acs:{product}:{region}:{uid}:{resource_type}/{id}")
    }
}

/// The store type of a Tag-service resource: `{product}:{type}`.
pub(crate) fn store_type(product: &str, resource_type: &str) -> String {
    format!("{product}:{resource_type}")
}

/// Where the Tag service looks for resources: its own `product:type` resources, and the
/// resource types of the products the emulator serves through their own API, by product
/// code (e.g. `ecs` to ECS's types).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Aliases {
    /// Product code to the store types it shares.
    pub by_product: BTreeMap<String, Vec<String>>,
}

/// A resource found for an ARN.
pub(crate) struct Found {
    /// Its key in the store.
    pub key: ResourceKey,
}

impl Aliases {
    /// The resource an ARN names, when it exists, is visible in `region` (the request's
    /// `RegionId`) and belongs to the caller (`uid`, or `*`).
    pub fn resolve(&self, store: &Store, arn: &Arn, region: &str, uid: &str) -> Option<Found> {
        if arn.account != "*" && arn.account != uid {
            return None;
        }
        if arn.region != "*" && arn.region != region {
            return None;
        }
        let own = ResourceKey::new(
            ALIBABA,
            &store_type(&arn.product, &arn.resource_type),
            &arn.id,
        );
        let shared = self
            .by_product
            .get(&arn.product)
            .filter(|types| types.contains(&arn.resource_type))
            .map(|_| ResourceKey::new(ALIBABA, &arn.resource_type, &arn.id));
        [Some(own), shared].into_iter().flatten().find_map(|key| {
            let stored = store.get(&key)?;
            stored.is_in(Some(region)).then_some(Found { key })
        })
    }

    /// Every resource the Tag service sees in `region`, as (product, type, id, resource),
    /// sorted by product, type and id.
    pub fn every<'a>(
        &self,
        store: &'a Store,
        region: &str,
    ) -> Vec<(String, String, &'a str, &'a StoredResource)> {
        let mut found = Vec::new();
        for (store_type, id, stored) in store.alibaba_typed() {
            if !stored.is_in(Some(region)) {
                continue;
            }
            if let Some((product, resource_type)) = store_type.split_once(':') {
                found.push((product.to_string(), resource_type.to_string(), id, stored));
            } else if let Some(product) = self
                .by_product
                .iter()
                .find(|(_, types)| types.iter().any(|t| t == store_type))
                .map(|(product, _)| product)
            {
                // NB: a product type shadowed by a `product:type` resource of the same id is
                // listed once, as that resource (the one `resolve` finds first).
                let own = ResourceKey::new(ALIBABA, &self::store_type(product, store_type), id);
                if store.get(&own).is_none() {
                    found.push((product.clone(), store_type.to_string(), id, stored));
                }
            }
        }
        found.sort_by(|a, b| (&a.0, &a.1, a.2).cmp(&(&b.0, &b.1, b.2)));
        found
    }
}

/// The region an answer writes for a resource: its own, or the request's when it has none.
pub(crate) fn answer_region(stored: &StoredResource, region: &str) -> String {
    if stored.region.is_empty() {
        region.to_string()
    } else {
        stored.region.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms_and_refuses_others() {
        let arn = Arn::parse("arn:acs:ecs:cn-hangzhou:123456789012:instance/i-bp1").unwrap();
        assert_eq!(
            (
                arn.product.as_str(),
                arn.resource_type.as_str(),
                arn.id.as_str()
            ),
            ("ecs", "instance", "i-bp1")
        );
        let bare = Arn::parse("acs:oss:*:*:bucket/my.bucket").unwrap();
        assert_eq!((bare.region.as_str(), bare.account.as_str()), ("*", "*"));
        for bad in [
            "arn:aws:ecs:r:1:instance/i",
            "arn:acs:ecs:r:1:instance",
            "arn:acs:ecs:r:1:instance/",
            "arn:acs::r:1:instance/i",
            "arn:acs:ecs:r:1",
            "arn:acs:e cs:r:1:instance/i",
        ] {
            assert_eq!(Arn::parse(bad), None, "{bad}");
        }
    }
}
