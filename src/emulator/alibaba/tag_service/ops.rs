//! The Tag service's operations on the store, per resource (module docs of
//! [`super`]).

use super::arn::{Aliases, Arn, answer_region};
use crate::emulator::alibaba::errors::RpcError;
use crate::emulator::alibaba::render::Node;
use crate::emulator::alibaba::rules::AlibabaLimits;
use crate::emulator::store::Store;

/// A resource the call could not change: the ARN as sent, `Code` and `Message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Failed {
    /// The ARN as the request gave it.
    pub arn: String,
    /// `Result.Code`.
    pub code: String,
    /// `Result.Message`.
    pub message: String,
}

fn not_found(arn: &str) -> Failed {
    let error = RpcError::resource_not_found();
    Failed {
        arn: arn.to_string(),
        code: error.code,
        message: format!("{} ({arn})", error.message),
    }
}

/// Applies `tags` to every resource found; the others fail alone.
pub(crate) fn tag(
    store: &mut Store,
    aliases: &Aliases,
    arns: &[(String, Arn)],
    tags: &[(String, String)],
    region: &str,
    uid: &str,
    rules: &AlibabaLimits,
) -> Vec<Failed> {
    let mut failed = Vec::new();
    for (text, arn) in arns {
        let Some(found) = aliases.resolve(store, arn, region, uid) else {
            failed.push(not_found(text));
            continue;
        };
        let Some(stored) = store.get_mut(&found.key) else {
            failed.push(not_found(text));
            continue;
        };
        let custom = stored
            .tags
            .keys()
            .filter(|k| !rules.is_system_key(k))
            .count();
        let added = tags
            .iter()
            .filter(|(k, _)| !stored.tags.contains_key(k))
            .count();
        if custom + added > rules.tags_per_resource {
            let error = RpcError::quota_exceeded();
            failed.push(Failed {
                arn: text.clone(),
                code: error.code,
                message: format!(
                    "{} The resource would carry {} custom tags; at most {}.",
                    error.message,
                    custom + added,
                    rules.tags_per_resource
                ),
            });
            continue;
        }
        stored.tags.extend(tags.iter().cloned());
    }
    failed
}

/// Removes `keys` (absent keys are not an error) from every resource found.
pub(crate) fn untag(
    store: &mut Store,
    aliases: &Aliases,
    arns: &[(String, Arn)],
    keys: &[String],
    region: &str,
    uid: &str,
) -> Vec<Failed> {
    let mut failed = Vec::new();
    for (text, arn) in arns {
        let stored = aliases
            .resolve(store, arn, region, uid)
            .and_then(|found| store.get_mut(&found.key));
        match stored {
            Some(stored) => keys.iter().for_each(|key| {
                stored.tags.remove(key);
            }),
            None => failed.push(not_found(text)),
        }
    }
    failed
}

/// `FailedResources.FailedResource[]`, absent when nothing failed.
pub(crate) fn failed_fields(failed: Vec<Failed>) -> Vec<(&'static str, Node)> {
    if failed.is_empty() {
        return Vec::new();
    }
    let entries = failed
        .into_iter()
        .map(|f| {
            Node::Fields(vec![
                ("ResourceARN", Node::Text(f.arn)),
                (
                    "Result",
                    Node::Fields(vec![
                        ("Code", Node::Text(f.code)),
                        ("Message", Node::Text(f.message)),
                    ]),
                ),
            ])
        })
        .collect();
    vec![(
        "FailedResources",
        Node::Fields(vec![("FailedResource", Node::List(entries))]),
    )]
}

/// Which tags ListTagResources shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Category {
    /// Custom and system tags.
    All,
    /// Tags written by users.
    Custom,
    /// Tags with a reserved prefix.
    System,
}

/// A ListTagResources call, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ListRequest {
    /// The ARNs asked for (as sent, parsed); empty: every resource of the region.
    pub arns: Vec<(String, Arn)>,
    /// Pairs every listed resource carries.
    pub filter: Vec<(String, String)>,
    /// Tags shown.
    pub category: Category,
    /// Resources per page.
    pub page_size: usize,
    /// Cursor of the previous page.
    pub next_token: Option<String>,
    /// `RegionId`.
    pub region: String,
    /// The caller's account UID, written in the answer's ARNs.
    pub uid: String,
}

/// One listed resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Listed {
    /// Its ARN with the caller's UID and its region.
    pub arn: String,
    /// `(key, value, category)`.
    pub tags: Vec<(String, String, &'static str)>,
    /// Sort key, for the cursor.
    cursor: (String, String, String),
}

/// One page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Page {
    /// The resources, by product, type and id.
    pub resources: Vec<Listed>,
    /// Cursor of the next page, empty on the last.
    pub next_token: String,
}

/// Lists the resources that pass the filter and carry a tag of the asked category.
pub(crate) fn list(
    store: &Store,
    aliases: &Aliases,
    request: &ListRequest,
    rules: &AlibabaLimits,
) -> Result<Page, RpcError> {
    let after = request
        .next_token
        .as_deref()
        .map(decode_token)
        .transpose()?;
    let candidates: Vec<(
        String,
        String,
        String,
        &crate::emulator::store::StoredResource,
    )> = if request.arns.is_empty() {
        aliases
            .every(store, &request.region)
            .into_iter()
            .map(|(product, resource_type, id, stored)| {
                (product, resource_type, id.to_string(), stored)
            })
            .collect()
    } else {
        let mut found: Vec<_> = request
            .arns
            .iter()
            .filter_map(|(_, arn)| {
                let found = aliases.resolve(store, arn, &request.region, &request.uid)?;
                let stored = store.get(&found.key)?;
                Some((
                    arn.product.clone(),
                    arn.resource_type.clone(),
                    arn.id.clone(),
                    stored,
                ))
            })
            .collect();
        found.sort_by(|a, b| (&a.0, &a.1, &a.2).cmp(&(&b.0, &b.1, &b.2)));
        found.dedup_by(|a, b| (&a.0, &a.1, &a.2) == (&b.0, &b.1, &b.2));
        found
    };
    let mut listed = candidates
        .into_iter()
        .filter_map(|(product, kind, id, stored)| {
            let cursor = (product, kind, id);
            if after.as_ref().is_some_and(|after| cursor <= *after) {
                return None;
            }
            let passes = request
                .filter
                .iter()
                .all(|(key, value)| stored.tags.get(key) == Some(value));
            let tags: Vec<(String, String, &'static str)> = stored
                .tags
                .iter()
                .map(|(key, value)| {
                    let category = if rules.is_system_key(key) {
                        "System"
                    } else {
                        "Custom"
                    };
                    (key.clone(), value.clone(), category)
                })
                .filter(|(_, _, category)| match request.category {
                    Category::All => true,
                    Category::Custom => *category == "Custom",
                    Category::System => *category == "System",
                })
                .collect();
            (passes && !tags.is_empty()).then(|| Listed {
                arn: Arn::format(
                    &cursor.0,
                    &answer_region(stored, &request.region),
                    &request.uid,
                    &cursor.1,
                    &cursor.2,
                ),
                tags,
                cursor,
            })
        });
    let resources: Vec<Listed> = listed.by_ref().take(request.page_size.max(1)).collect();
    let next_token = match (listed.next(), resources.last()) {
        (Some(_), Some(last)) => encode_token(&last.cursor),
        _ => String::new(),
    };
    Ok(Page {
        resources,
        next_token,
    })
}

/// `NextToken` and `TagResources[]` grouped by resource (spec section 5).
pub(crate) fn list_fields(page: Page) -> Vec<(&'static str, Node)> {
    let resources = page
        .resources
        .into_iter()
        .map(|listed| {
            let tags = listed
                .tags
                .into_iter()
                .map(|(key, value, category)| {
                    Node::Fields(vec![
                        ("Key", Node::Text(key)),
                        ("Value", Node::Text(value)),
                        ("Category", Node::text(category)),
                    ])
                })
                .collect();
            Node::Fields(vec![
                ("ResourceARN", Node::Text(listed.arn)),
                ("Tags", Node::List(tags)),
            ])
        })
        .collect();
    vec![
        ("NextToken", Node::Text(page.next_token)),
        ("TagResources", Node::List(resources)),
    ]
}

/// `hex(product).hex(type).hex(id)`: opaque, and safe in any URL.
fn encode_token(cursor: &(String, String, String)) -> String {
    format!(
        "{}.{}.{}",
        hex::encode(&cursor.0),
        hex::encode(&cursor.1),
        hex::encode(&cursor.2)
    )
}

fn decode_token(token: &str) -> Result<(String, String, String), RpcError> {
    let invalid = || {
        RpcError::invalid_detail(
            "NextToken",
            "NextToken",
            "Pass the NextToken of the previous answer unchanged.",
        )
    };
    let text = |part: Option<&str>| {
        part.and_then(|p| hex::decode(p).ok())
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(invalid)
    };
    let mut parts = token.split('.');
    let cursor = (
        text(parts.next())?,
        text(parts.next())?,
        text(parts.next())?,
    );
    if parts.next().is_some() {
        return Err(invalid());
    }
    Ok(cursor)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::emulator::inventory::{ALIBABA, InventoryResource};
    use crate::emulator::store::ResourceKey;

    fn resource(kind: &str, id: &str, tags: &[(&str, &str)]) -> InventoryResource {
        InventoryResource {
            cloud: ALIBABA.to_string(),
            region: "cn-hangzhou".to_string(),
            resource_type: kind.to_string(),
            id: id.to_string(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn aliases() -> Aliases {
        Aliases {
            by_product: BTreeMap::from([("ecs".to_string(), vec!["instance".to_string()])]),
        }
    }

    fn arn(text: &str) -> (String, Arn) {
        (text.to_string(), Arn::parse(text).unwrap())
    }

    fn request(arns: &[&str], page_size: usize) -> ListRequest {
        ListRequest {
            arns: arns.iter().map(|a| arn(a)).collect(),
            filter: Vec::new(),
            category: Category::All,
            page_size,
            next_token: None,
            region: "cn-hangzhou".to_string(),
            uid: "1111222233334444".to_string(),
        }
    }

    #[test]
    fn writes_fail_per_resource_and_reach_product_resources_too() {
        let mut store = Store::from_resources(&[
            resource("rds:dbinstance", "rm-1", &[("acs:rm:rgId", "rg")]),
            resource("instance", "i-1", &[]),
            resource(
                "oss:bucket",
                "full",
                &(0..20)
                    .map(|n| (format!("k{n}"), "v".to_string()))
                    .collect::<Vec<_>>()
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect::<Vec<_>>(),
            ),
        ]);
        let rules = AlibabaLimits::default();
        let arns = [
            arn("arn:acs:rds:cn-hangzhou:*:dbinstance/rm-1"),
            arn("arn:acs:ecs:*:1111222233334444:instance/i-1"),
            arn("arn:acs:ecs:cn-hangzhou:9999:instance/i-1"),
            arn("arn:acs:oss:cn-hangzhou:*:bucket/full"),
            arn("arn:acs:rds:cn-beijing:*:dbinstance/rm-1"),
        ];
        let tags = [("env".to_string(), "prod".to_string())];
        let failed = tag(
            &mut store,
            &aliases(),
            &arns,
            &tags,
            "cn-hangzhou",
            "1111222233334444",
            &rules,
        );
        let codes: Vec<(&str, &str)> = failed
            .iter()
            .map(|f| (f.arn.as_str(), f.code.as_str()))
            .collect();
        assert_eq!(
            codes,
            [
                (arns[2].0.as_str(), "InvalidResourceId.NotFound"),
                (arns[3].0.as_str(), "OperationDenied.QuotaExceed"),
                (arns[4].0.as_str(), "InvalidResourceId.NotFound"),
            ]
        );
        let tags_of = |store: &Store, kind: &str, id: &str| {
            store
                .get(&ResourceKey::new(ALIBABA, kind, id))
                .unwrap()
                .tags
                .clone()
        };
        assert_eq!(tags_of(&store, "rds:dbinstance", "rm-1")["env"], "prod");
        assert_eq!(
            tags_of(&store, "rds:dbinstance", "rm-1")["acs:rm:rgId"],
            "rg"
        );
        assert_eq!(tags_of(&store, "instance", "i-1")["env"], "prod");
        let failed = untag(
            &mut store,
            &aliases(),
            &arns[..2],
            &["env".to_string(), "absent".to_string()],
            "cn-hangzhou",
            "1111222233334444",
        );
        assert!(failed.is_empty());
        assert!(!tags_of(&store, "instance", "i-1").contains_key("env"));
    }

    #[test]
    fn lists_by_resource_with_categories_filters_and_a_cursor() {
        let store = Store::from_resources(&[
            resource(
                "rds:dbinstance",
                "rm-1",
                &[("acs:rm:rgId", "rg"), ("env", "prod")],
            ),
            resource("instance", "i-1", &[("env", "prod"), ("team", "web")]),
            resource("instance", "i-2", &[("env", "dev")]),
            resource("oss:bucket", "b-1", &[]),
        ]);
        let rules = AlibabaLimits::default();
        let mut all = request(&[], 1);
        let mut arns = Vec::new();
        loop {
            let page = list(&store, &aliases(), &all, &rules).unwrap();
            arns.extend(page.resources.into_iter().map(|r| r.arn));
            if page.next_token.is_empty() {
                break;
            }
            all.next_token = Some(page.next_token);
        }
        assert_eq!(
            arns,
            [
                "arn:acs:ecs:cn-hangzhou:1111222233334444:instance/i-1",
                "arn:acs:ecs:cn-hangzhou:1111222233334444:instance/i-2",
                "arn:acs:rds:cn-hangzhou:1111222233334444:dbinstance/rm-1",
            ]
        );
        let mut custom = request(&["arn:acs:rds:*:*:dbinstance/rm-1"], 10);
        custom.category = Category::System;
        let page = list(&store, &aliases(), &custom, &rules).unwrap();
        assert_eq!(
            page.resources[0].tags,
            [("acs:rm:rgId".to_string(), "rg".to_string(), "System")]
        );
        let mut by_tag = request(&[], 10);
        by_tag.filter = vec![("env".to_string(), "prod".to_string())];
        let page = list(&store, &aliases(), &by_tag, &rules).unwrap();
        assert_eq!(page.resources.len(), 2);
        assert!(page.next_token.is_empty());
        by_tag.next_token = Some("garbage".to_string());
        assert_eq!(
            list(&store, &aliases(), &by_tag, &rules).unwrap_err().code,
            "InvalidParameter.NextToken"
        );
    }
}
