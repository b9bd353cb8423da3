//! The three tag operations' parameters (spec section 5), validated against the limits and
//! tag rules (section 6) before anything is looked up.

use std::collections::BTreeSet;

use super::errors::RpcError;
use super::params::Params;
use super::rules::{AlibabaLimits, Product};

/// Which resources a call is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Target {
    /// `ResourceType`, checked against the product's.
    pub resource_type: String,
    /// `RegionId`, when given and not empty.
    pub region: Option<String>,
    /// `ResourceId.N`, in index order, without repeats.
    pub ids: Vec<String>,
}

/// A valid TagResources call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TagRequest {
    /// The resources (at least one).
    pub target: Target,
    /// Key/value pairs, keys unique.
    pub tags: Vec<(String, String)>,
}

/// A valid UntagResources call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UntagRequest {
    /// The resources (at least one).
    pub target: Target,
    /// What to remove.
    pub removal: Removal,
}

/// The keys an UntagResources call removes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Removal {
    /// `TagKey.N`.
    Keys(Vec<String>),
    /// `All=true` without `TagKey.N`: every custom tag.
    AllCustom,
}

/// A valid ListTagResources call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ListRequest {
    /// The resources; `ids` may be empty when `filters` is not.
    pub target: Target,
    /// `Tag.N` filters: the key, and the exact value when `Tag.N.Value` is given.
    pub filters: Vec<(String, Option<String>)>,
    /// `NextToken`, undecoded; absent or empty for the first page.
    pub next_token: Option<String>,
}

/// Parses TagResources.
pub(crate) fn tag_request(
    params: &Params,
    product: &Product,
    limits: &AlibabaLimits,
) -> Result<TagRequest, RpcError> {
    let target = target(params, product, limits, true)?;
    let raw = params.tags()?;
    if raw.is_empty() {
        return Err(RpcError::missing(Some("Tag"), "Tag.N.Key"));
    }
    if raw.len() > limits.tags_per_call {
        return Err(RpcError::number_exceed("Tags", limits.tags_per_call));
    }
    let mut seen = BTreeSet::new();
    let mut tags = Vec::with_capacity(raw.len());
    for tag in raw {
        let key = required_key(tag.key)?;
        if !seen.insert(key.clone()) {
            return Err(RpcError::duplicate_tag_key());
        }
        let value = tag.value.unwrap_or_default();
        limits.check_key(&key)?;
        limits.check_value(&value)?;
        tags.push((key, value));
    }
    Ok(TagRequest { target, tags })
}

/// Parses UntagResources.
pub(crate) fn untag_request(
    params: &Params,
    product: &Product,
    limits: &AlibabaLimits,
) -> Result<UntagRequest, RpcError> {
    let target = target(params, product, limits, true)?;
    let keys = params.list("TagKey")?;
    if keys.len() > limits.keys_per_untag_call {
        return Err(RpcError::number_exceed(
            "TagKeys",
            limits.keys_per_untag_call,
        ));
    }
    let all = match params.get("All") {
        None => false,
        Some(all) if all.eq_ignore_ascii_case("true") => true,
        Some(all) if all.eq_ignore_ascii_case("false") => false,
        Some(_) => return Err(RpcError::invalid(Some("All"), "All")),
    };
    let removal = if keys.is_empty() {
        if !all {
            return Err(RpcError::missing(Some("TagKey"), "TagKey.N"));
        }
        Removal::AllCustom
    } else {
        let mut unique = Vec::with_capacity(keys.len());
        for key in keys {
            if key.is_empty() {
                return Err(RpcError::invalid(Some("TagKey"), "TagKey.N"));
            }
            limits.check_key(key)?;
            if !unique.iter().any(|k| k == key) {
                unique.push(key.to_string());
            }
        }
        Removal::Keys(unique)
    };
    Ok(UntagRequest { target, removal })
}

/// Parses ListTagResources.
pub(crate) fn list_request(
    params: &Params,
    product: &Product,
    limits: &AlibabaLimits,
) -> Result<ListRequest, RpcError> {
    let target = target(params, product, limits, false)?;
    let raw = params.tags()?;
    if raw.len() > limits.tags_per_call {
        return Err(RpcError::number_exceed("Tags", limits.tags_per_call));
    }
    let mut filters: Vec<(String, Option<String>)> = Vec::with_capacity(raw.len());
    for tag in raw {
        let key = required_key(tag.key)?;
        if filters.iter().any(|(k, _)| *k == key) {
            return Err(RpcError::duplicate_tag_key());
        }
        filters.push((key, tag.value));
    }
    if target.ids.is_empty() && filters.is_empty() {
        return Err(RpcError::missing(None, "ResourceId.N or Tag.N.Key"));
    }
    let next_token = params
        .get("NextToken")
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    Ok(ListRequest {
        target,
        filters,
        next_token,
    })
}

/// `Tag.N.Key` must be given and not empty (the strict reading of spec section 5).
fn required_key(key: Option<String>) -> Result<String, RpcError> {
    key.filter(|k| !k.is_empty())
        .ok_or_else(|| RpcError::invalid(Some("TagKey"), "Tag.N.Key"))
}

fn target(
    params: &Params,
    product: &Product,
    limits: &AlibabaLimits,
    ids_required: bool,
) -> Result<Target, RpcError> {
    let resource_type = params.require("ResourceType")?;
    product.check_resource_type(resource_type)?;
    let listed = params.list("ResourceId")?;
    if listed.len() > limits.resources_per_call {
        return Err(RpcError::number_exceed(
            "ResourceIds",
            limits.resources_per_call,
        ));
    }
    if ids_required && listed.is_empty() {
        return Err(RpcError::missing(Some("ResourceId"), "ResourceId.N"));
    }
    let mut ids: Vec<String> = Vec::with_capacity(listed.len());
    for id in listed {
        if !ids.iter().any(|known| known == id) {
            ids.push(id.to_string());
        }
    }
    Ok(Target {
        resource_type: resource_type.to_string(),
        region: params
            .get("RegionId")
            .filter(|r| !r.is_empty())
            .map(str::to_string),
        ids,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::alibaba::params::Received;
    use crate::emulator::alibaba::rules::{API_GATEWAY_VERSION, AlibabaConfig};

    fn parse<T>(
        query: &str,
        parse: fn(&Params, &Product, &AlibabaLimits) -> Result<T, RpcError>,
    ) -> Result<T, RpcError> {
        let config = AlibabaConfig::default();
        let params = Received::decode(Some(query), None).into_params().unwrap();
        parse(
            &params,
            &config.products[API_GATEWAY_VERSION],
            &config.limits,
        )
    }

    fn code<T: std::fmt::Debug>(result: Result<T, RpcError>) -> String {
        result.unwrap_err().code
    }

    #[test]
    fn tag_requests_follow_the_rules() {
        let ok = parse(
            "ResourceType=apiGroup&ResourceId.1=g&ResourceId.2=g&Tag.1.Key=env",
            tag_request,
        )
        .unwrap();
        assert_eq!(ok.target.ids, ["g"]);
        assert_eq!(ok.tags, [("env".to_string(), String::new())]);
        let cases = [
            (
                "ResourceId.1=g&Tag.1.Key=a",
                "MissingParameter.ResourceType",
            ),
            (
                "ResourceType=disk&ResourceId.1=g&Tag.1.Key=a",
                "InvalidResourceType.NotFound",
            ),
            (
                "ResourceType=app&Tag.1.Key=a",
                "MissingParameter.ResourceId",
            ),
            ("ResourceType=app&ResourceId.1=g", "MissingParameter.Tag"),
            (
                "ResourceType=app&ResourceId.1=g&Tag.1.Value=v",
                "InvalidParameter.TagKey",
            ),
            (
                "ResourceType=app&ResourceId.1=g&Tag.1.Key=",
                "InvalidParameter.TagKey",
            ),
            (
                "ResourceType=app&ResourceId.1=g&Tag.1.Key=a&Tag.2.Key=a",
                "Duplicate.TagKey",
            ),
            (
                "ResourceType=app&ResourceId.1=g&Tag.1.Key=acs:x",
                "InvalidTagKey.Malformed",
            ),
            (
                "ResourceType=app&ResourceId.1=g&Tag.1.Key=a&Tag.1.Value=aliyunx",
                "InvalidTagValue.Malformed",
            ),
        ];
        for (query, expected) in cases {
            assert_eq!(code(parse(query, tag_request)), expected, "{query}");
        }
        let many: String = (1..=21).map(|n| format!("&Tag.{n}.Key=k{n}")).collect();
        let query = format!("ResourceType=app&ResourceId.1=g{many}");
        assert_eq!(code(parse(&query, tag_request)), "NumberExceed.Tags");
        let ids: String = (1..=51).map(|n| format!("&ResourceId.{n}=g{n}")).collect();
        let query = format!("ResourceType=app&Tag.1.Key=a{ids}");
        assert_eq!(code(parse(&query, tag_request)), "NumberExceed.ResourceIds");
    }

    #[test]
    fn untag_requests_need_keys_or_all() {
        let all = parse("ResourceType=app&ResourceId.1=g&All=true", untag_request).unwrap();
        assert_eq!(all.removal, Removal::AllCustom);
        let keys = parse(
            "ResourceType=app&ResourceId.1=g&TagKey.1=a&All=true",
            untag_request,
        )
        .unwrap();
        assert_eq!(keys.removal, Removal::Keys(vec!["a".to_string()]));
        assert_eq!(
            code(parse("ResourceType=app&ResourceId.1=g", untag_request)),
            "MissingParameter.TagKey"
        );
        assert_eq!(
            code(parse(
                "ResourceType=app&ResourceId.1=g&All=yes",
                untag_request
            )),
            "InvalidParameter.All"
        );
        assert_eq!(
            code(parse(
                "ResourceType=app&ResourceId.1=g&TagKey.1=",
                untag_request
            )),
            "InvalidParameter.TagKey"
        );
    }

    #[test]
    fn list_requests_need_ids_or_tag_filters() {
        let by_tag = parse("ResourceType=app&Tag.1.Key=env&NextToken=", list_request).unwrap();
        assert_eq!(by_tag.filters, [("env".to_string(), None)]);
        assert_eq!(by_tag.next_token, None);
        assert_eq!(
            code(parse("ResourceType=app", list_request)),
            "MissingParameter"
        );
    }
}
