//! The three tag operations applied to the store (spec section 5).
//!
//! Tag and untag are all-or-nothing: every check runs before the first change. Resources are
//! looked up by (`alibaba`, `ResourceType`, id); with a `RegionId`, a resource of another
//! region is not found (a resource with an empty region is found in every region).

use std::collections::BTreeMap;

use super::errors::RpcError;
use super::requests::{ListRequest, Removal, TagRequest, Target, UntagRequest};
use super::rules::AlibabaLimits;
use crate::emulator::inventory::ALIBABA;
use crate::emulator::store::{ResourceKey, Store, StoredResource};

/// `NextToken` of the last page: API Gateway documents `-1` as "no next page".
pub(crate) const LAST_PAGE: &str = "-1";

/// Applies every tag to every resource, overwriting values of existing keys.
pub(crate) fn tag_resources(
    store: &mut Store,
    request: &TagRequest,
    limits: &AlibabaLimits,
) -> Result<(), RpcError> {
    let keys = resolve(store, &request.target)?;
    for key in &keys {
        let Some(stored) = store.get(key) else {
            continue;
        };
        let custom = stored
            .tags
            .keys()
            .filter(|k| !limits.is_system_key(k))
            .count();
        let added = request
            .tags
            .iter()
            .filter(|(k, _)| !stored.tags.contains_key(k))
            .count();
        if custom + added > limits.tags_per_resource {
            return Err(RpcError::quota_exceeded());
        }
    }
    for key in &keys {
        if let Some(stored) = store.get_mut(key) {
            stored.tags.extend(request.tags.iter().cloned());
        }
    }
    Ok(())
}

/// Removes keys (absent keys are not an error), or every custom tag with `All=true`.
/// System tags are never removed.
pub(crate) fn untag_resources(
    store: &mut Store,
    request: &UntagRequest,
    limits: &AlibabaLimits,
) -> Result<(), RpcError> {
    let keys = resolve(store, &request.target)?;
    for key in &keys {
        let Some(stored) = store.get_mut(key) else {
            continue;
        };
        match &request.removal {
            Removal::Keys(removed) => removed.iter().for_each(|k| {
                stored.tags.remove(k);
            }),
            Removal::AllCustom => stored.tags.retain(|k, _| limits.is_system_key(k)),
        }
    }
    Ok(())
}

/// Every listed resource, or `InvalidResourceId.NotFound` when one is unknown.
fn resolve(store: &Store, target: &Target) -> Result<Vec<ResourceKey>, RpcError> {
    target
        .ids
        .iter()
        .map(|id| {
            let key = ResourceKey::new(ALIBABA, &target.resource_type, id);
            match store.get(&key) {
                Some(stored) if stored.is_in(target.region.as_deref()) => Ok(key),
                _ => Err(RpcError::resource_not_found()),
            }
        })
        .collect()
}

/// One (resource, tag) pair of a ListTagResources answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Resource id.
    pub resource_id: String,
    /// Tag key.
    pub key: String,
    /// Tag value.
    pub value: String,
}

/// One page of ListTagResources.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Page {
    /// Entries, sorted by resource id then key.
    pub entries: Vec<Entry>,
    /// Token of the next page, or [`LAST_PAGE`].
    pub next_token: String,
}

/// Lists the tags of the requested resources that pass every tag filter, one entry per
/// (resource, tag) pair, `page_size` entries per page.
///
/// [inferred] choices: an unknown (or other-region) id contributes no entry rather than an
/// error; a resource that passes the filters is listed with all its tags; a filter without
/// `Tag.N.Value` matches any value. The token is a cursor (the last entry's resource id and
/// key), so pages stay consistent when tags change between calls; a token that does not
/// decode is `InvalidParameter.NextToken`, and so is `-1`, which no page continues from.
pub(crate) fn list_tag_resources(
    store: &Store,
    request: &ListRequest,
    page_size: usize,
) -> Result<Page, RpcError> {
    let after = request
        .next_token
        .as_deref()
        .map(decode_token)
        .transpose()?;
    let region = request.target.region.as_deref();
    let resource_type = request.target.resource_type.as_str();
    let mut resources: BTreeMap<&str, &StoredResource> = if request.target.ids.is_empty() {
        store.of_type(ALIBABA, resource_type).collect()
    } else {
        request
            .target
            .ids
            .iter()
            .filter_map(|id| {
                let key = ResourceKey::new(ALIBABA, resource_type, id);
                store.get(&key).map(|stored| (id.as_str(), stored))
            })
            .collect()
    };
    resources.retain(|_, stored| stored.is_in(region) && passes(stored, &request.filters));
    let mut remaining = resources
        .iter()
        .flat_map(|(id, stored)| {
            stored
                .tags
                .iter()
                .map(move |(key, value)| (*id, key, value))
        })
        .filter(|(id, key, _)| match &after {
            Some((after_id, after_key)) => {
                (*id, key.as_str()) > (after_id.as_str(), after_key.as_str())
            }
            None => true,
        });
    let entries: Vec<Entry> = remaining
        .by_ref()
        .take(page_size.max(1))
        .map(|(id, key, value)| Entry {
            resource_id: id.to_string(),
            key: key.clone(),
            value: value.clone(),
        })
        .collect();
    let next_token = match (remaining.next(), entries.last()) {
        (Some(_), Some(last)) => encode_token(&last.resource_id, &last.key),
        _ => LAST_PAGE.to_string(),
    };
    Ok(Page {
        entries,
        next_token,
    })
}

fn passes(stored: &StoredResource, filters: &[(String, Option<String>)]) -> bool {
    filters
        .iter()
        .all(|(key, value)| match (stored.tags.get(key), value) {
            (Some(actual), Some(wanted)) => actual == wanted,
            (Some(_), None) => true,
            (None, _) => false,
        })
}

/// `hex(resource id) . hex(key)`: opaque to clients, and safe in any URL.
fn encode_token(resource_id: &str, key: &str) -> String {
    format!("{}.{}", hex::encode(resource_id), hex::encode(key))
}

fn decode_token(token: &str) -> Result<(String, String), RpcError> {
    let invalid = || RpcError::invalid(Some("NextToken"), "NextToken");
    let (id, key) = token.split_once('.').ok_or_else(invalid)?;
    let text = |part: &str| {
        hex::decode(part)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(invalid)
    };
    Ok((text(id)?, text(key)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::inventory::InventoryResource;

    fn store(resources: &[(&str, &[(&str, &str)])]) -> Store {
        let resources: Vec<InventoryResource> = resources
            .iter()
            .map(|(id, tags)| InventoryResource {
                cloud: ALIBABA.to_string(),
                region: "cn-hangzhou".to_string(),
                resource_type: "apiGroup".to_string(),
                id: id.to_string(),
                tags: tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            })
            .collect();
        Store::from_resources(&resources)
    }

    fn target(ids: &[&str]) -> Target {
        Target {
            resource_type: "apiGroup".to_string(),
            region: None,
            ids: ids.iter().map(|id| id.to_string()).collect(),
        }
    }

    fn tags_of(store: &Store, id: &str) -> Vec<(String, String)> {
        let key = ResourceKey::new(ALIBABA, "apiGroup", id);
        store.get(&key).unwrap().tags.clone().into_iter().collect()
    }

    fn tag(ids: &[&str], tags: &[(&str, &str)]) -> TagRequest {
        TagRequest {
            target: target(ids),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn an_unknown_id_or_region_changes_nothing() {
        let mut store = store(&[("g1", &[])]);
        let before = store.clone();
        let limits = AlibabaLimits::default();
        let error = tag_resources(
            &mut store,
            &tag(&["g1", "nope"], &[("env", "prod")]),
            &limits,
        )
        .unwrap_err();
        assert_eq!(error.code, "InvalidResourceId.NotFound");
        let mut elsewhere = tag(&["g1"], &[("env", "prod")]);
        elsewhere.target.region = Some("cn-beijing".to_string());
        assert!(tag_resources(&mut store, &elsewhere, &limits).is_err());
        assert_eq!(store, before);
    }

    #[test]
    fn quota_counts_new_custom_keys_only() {
        let existing: Vec<(String, String)> = (0..19)
            .map(|n| (format!("k{n}"), "v".to_string()))
            .collect();
        let existing: Vec<(&str, &str)> = existing
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let mut with_system = existing.clone();
        with_system.push(("acs:rm:rgId", "rg"));
        let mut store = store(&[("g1", &with_system)]);
        let limits = AlibabaLimits::default();
        assert!(
            tag_resources(
                &mut store,
                &tag(&["g1"], &[("k0", "new"), ("k19", "v")]),
                &limits
            )
            .is_ok()
        );
        let error = tag_resources(&mut store, &tag(&["g1"], &[("k20", "v")]), &limits).unwrap_err();
        assert_eq!(error.code, "OperationDenied.QuotaExceed");
        assert_eq!(
            tags_of(&store, "g1").len(),
            21,
            "20 custom tags and the system tag"
        );
        let all = UntagRequest {
            target: target(&["g1"]),
            removal: Removal::AllCustom,
        };
        untag_resources(&mut store, &all, &limits).unwrap();
        assert_eq!(
            tags_of(&store, "g1"),
            [("acs:rm:rgId".to_string(), "rg".to_string())]
        );
    }

    #[test]
    fn pages_follow_the_cursor_and_end_with_minus_one() {
        let store = store(&[
            ("g2", &[("a", "1"), ("b", "2")]),
            ("g1", &[("x", "1"), ("y", "2"), ("z", "3")]),
        ]);
        let mut request = ListRequest {
            target: target(&["g2", "g1", "ghost"]),
            filters: Vec::new(),
            next_token: None,
        };
        let mut seen = Vec::new();
        let mut pages = 0;
        loop {
            let page = list_tag_resources(&store, &request, 2).unwrap();
            pages += 1;
            seen.extend(
                page.entries
                    .into_iter()
                    .map(|e| format!("{}:{}", e.resource_id, e.key)),
            );
            if page.next_token == LAST_PAGE {
                break;
            }
            request.next_token = Some(page.next_token);
        }
        assert_eq!(pages, 3);
        assert_eq!(seen, ["g1:x", "g1:y", "g1:z", "g2:a", "g2:b"]);
        request.next_token = Some("not-a-token".to_string());
        assert_eq!(
            list_tag_resources(&store, &request, 2).unwrap_err().code,
            "InvalidParameter.NextToken"
        );
    }

    #[test]
    fn filters_intersect_with_ids() {
        let store = store(&[
            ("g1", &[("env", "prod")]),
            ("g2", &[("env", "dev")]),
            ("g3", &[("env", "prod")]),
        ]);
        let request = ListRequest {
            target: target(&["g1", "g2"]),
            filters: vec![("env".to_string(), Some("prod".to_string()))],
            next_token: None,
        };
        let page = list_tag_resources(&store, &request, 10).unwrap();
        let ids: Vec<&str> = page
            .entries
            .iter()
            .map(|e| e.resource_id.as_str())
            .collect();
        assert_eq!(ids, ["g1"]);
        let by_key = ListRequest {
            target: target(&[]),
            filters: vec![("env".to_string(), None)],
            next_token: None,
        };
        assert_eq!(
            list_tag_resources(&store, &by_key, 10)
                .unwrap()
                .entries
                .len(),
            3
        );
    }
}
