//! The Tag service, OpenAPI `Tag` 2018-08-28 (spec section 5, "Tag service"), on the same
//! port and path as the product APIs: a request is for the Tag service when its `Version`
//! (V1) or `x-acs-version` (V3) is `2018-08-28`. The `Host` is not looked at: on loopback
//! every product shares one.
//!
//! - `TagResources`: `RegionId`, `ResourceARN.N` (1..50), `Tags` (a JSON object string,
//!   1..10 pairs, values 1..128 characters).
//! - `UntagResources`: `RegionId`, `ResourceARN.N` (1..50), `TagKey.N` (1..10).
//! - `ListTagResources`: `RegionId`, optional `ResourceARN.N` (0..50), `Tags` (filter: 1..10
//!   pairs, keys and values of 1..128 characters, every pair must be on the resource), `Category` (`Custom`, `System`, `All`: the default),
//!   `PageSize` (1..1000, default 50; a page holds at most the emulator's `--page-size`
//!   resources), `NextToken` (empty or absent: the first page; the answer's is empty on the
//!   last page).
//!
//! Writes report per resource, in `FailedResources.FailedResource[]` of a 200 answer (absent
//! when every resource succeeded): `InvalidResourceId.NotFound` for an ARN that names no
//! resource of the caller in the region, `OperationDenied.QuotaExceed` when the resource
//! would carry more custom tags than allowed. The other resources of the call are written.
//! Tags whose key starts with a reserved prefix (`aliyun`, `acs:`) are system tags: listed
//! with `Category: System`, not counted in the quota, and never written or removed (such a
//! key in a request is `InvalidTagKey.Malformed`).
//!
//! [inferred] choices: an ARN whose account is neither `*` nor the caller's UID, or whose
//! region is neither `*` nor `RegionId`, names no resource; a malformed ARN fails the whole
//! call with `InvalidParameter.ResourceARN`; more than 50 ARNs is `NumberExceed.ResourceARN`;
//! answers write ARNs with the caller's UID and the resource's region; resources without a
//! tag of the asked category are not listed.

mod arn;
mod ops;

use std::collections::BTreeMap;

pub(crate) use arn::Aliases;

use super::errors::RpcError;
use super::params::Params;
use super::render::Node;
use super::rules::AlibabaLimits;
use crate::emulator::App;

/// The Tag service's API version.
pub const TAG_SERVICE_VERSION: &str = "2018-08-28";
/// Its product code, for the `Recommend` link of errors.
pub(crate) const PRODUCT_CODE: &str = "Tag";

/// The Tag service's limits (spec section 5 and 6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagServiceLimits {
    /// Most `ResourceARN.N` in one call.
    pub resources_per_call: usize,
    /// Most pairs in `Tags` of TagResources, and in the filter of ListTagResources.
    pub tags_per_call: usize,
    /// Most `TagKey.N` in one UntagResources call.
    pub keys_per_untag_call: usize,
    /// Largest `PageSize`.
    pub max_page_size: usize,
    /// `PageSize` when absent.
    pub default_page_size: usize,
}

impl Default for TagServiceLimits {
    fn default() -> Self {
        TagServiceLimits {
            resources_per_call: 50,
            tags_per_call: 10,
            keys_per_untag_call: 10,
            max_page_size: 1000,
            default_page_size: 50,
        }
    }
}

/// Serves one Tag-service action for the caller of account `uid`; answers the fields after
/// `RequestId`.
pub(crate) async fn handle(
    app: &App,
    action: &str,
    params: &Params,
    uid: &str,
) -> Result<Vec<(&'static str, Node)>, RpcError> {
    let config = &app.alibaba;
    let limits = &config.tag_service;
    let rules = &config.limits;
    let aliases = config.tag_service_aliases();
    let region = params
        .get("RegionId")
        .filter(|r| !r.is_empty())
        .ok_or_else(|| RpcError::missing(Some("RegionId"), "RegionId"))?;
    match action {
        "TagResources" => {
            let arns = arns(params, limits, true)?;
            let tags = write_tags(params, limits, rules)?;
            let failed = app
                .store
                .change(|store| {
                    Ok::<_, RpcError>(ops::tag(store, &aliases, &arns, &tags, region, uid, rules))
                })
                .await?;
            Ok(ops::failed_fields(failed))
        }
        "UntagResources" => {
            let arns = arns(params, limits, true)?;
            let keys = untag_keys(params, limits, rules)?;
            let failed = app
                .store
                .change(|store| {
                    Ok::<_, RpcError>(ops::untag(store, &aliases, &arns, &keys, region, uid))
                })
                .await?;
            Ok(ops::failed_fields(failed))
        }
        "ListTagResources" => {
            let request = ops::ListRequest {
                arns: arns(params, limits, false)?,
                filter: list_filter(params, limits, rules)?,
                category: category(params)?,
                page_size: page_size(params, limits)?.min(app.page_size),
                next_token: params
                    .get("NextToken")
                    .filter(|t| !t.is_empty())
                    .map(str::to_string),
                region: region.to_string(),
                uid: uid.to_string(),
            };
            let page = app
                .store
                .read(|store| ops::list(store, &aliases, &request, rules))?;
            Ok(ops::list_fields(page))
        }
        _ => Err(RpcError::action_not_found()),
    }
}

/// `ResourceARN.N`, parsed, without repeats.
fn arns(
    params: &Params,
    limits: &TagServiceLimits,
    required: bool,
) -> Result<Vec<(String, arn::Arn)>, RpcError> {
    let listed = params.list("ResourceARN")?;
    if required && listed.is_empty() {
        return Err(RpcError::missing(Some("ResourceARN"), "ResourceARN.N"));
    }
    if listed.len() > limits.resources_per_call {
        return Err(RpcError::number_exceed(
            "ResourceARN",
            limits.resources_per_call,
        ));
    }
    let mut arns: Vec<(String, arn::Arn)> = Vec::with_capacity(listed.len());
    for text in listed {
        let parsed = arn::Arn::parse(text).ok_or_else(|| {
            RpcError::invalid_detail(
                "ResourceARN",
                "ResourceARN.N",
                &format!(
                    "{text:?} is not an ARN of the form arn:acs:<product>:<region>:<account>:<type>/<id>."
                ),
            )
        })?;
        if !arns.iter().any(|(known, _)| known == text) {
            arns.push((text.to_string(), parsed));
        }
    }
    Ok(arns)
}

/// `Tags`: a JSON object of string values, at most `limit` pairs.
fn tags_json(params: &Params, limit: usize) -> Result<Option<BTreeMap<String, String>>, RpcError> {
    let Some(text) = params.get("Tags") else {
        return Ok(None);
    };
    let tags: BTreeMap<String, String> = serde_json::from_str(text).map_err(|error| {
        RpcError::invalid_detail(
            "Tags",
            "Tags",
            &format!(
                "It must be a JSON object of string values, e.g. {{\"env\":\"prod\"}}: {error}."
            ),
        )
    })?;
    if tags.len() > limit {
        return Err(RpcError::number_exceed("Tags", limit));
    }
    Ok(Some(tags))
}

/// The tags of TagResources: 1..10 pairs, keys by the product rules, values 1..128
/// characters (this service refuses empty values).
fn write_tags(
    params: &Params,
    limits: &TagServiceLimits,
    rules: &AlibabaLimits,
) -> Result<Vec<(String, String)>, RpcError> {
    let tags = tags_json(params, limits.tags_per_call)?
        .filter(|tags| !tags.is_empty())
        .ok_or_else(|| RpcError::missing(Some("Tags"), "Tags"))?;
    for (key, value) in &tags {
        if key.is_empty() {
            return Err(RpcError::invalid(Some("TagKey"), "Tags"));
        }
        rules.check_key(key)?;
        if value.is_empty() {
            return Err(RpcError::malformed_value());
        }
        rules.check_value(value)?;
    }
    Ok(tags.into_iter().collect())
}

/// `TagKey.N`: 1..10 keys, without repeats.
fn untag_keys(
    params: &Params,
    limits: &TagServiceLimits,
    rules: &AlibabaLimits,
) -> Result<Vec<String>, RpcError> {
    let keys = params.list("TagKey")?;
    if keys.is_empty() {
        return Err(RpcError::missing(Some("TagKey"), "TagKey.N"));
    }
    if keys.len() > limits.keys_per_untag_call {
        return Err(RpcError::number_exceed(
            "TagKeys",
            limits.keys_per_untag_call,
        ));
    }
    let mut unique: Vec<String> = Vec::with_capacity(keys.len());
    for key in keys {
        if key.is_empty() {
            return Err(RpcError::invalid(Some("TagKey"), "TagKey.N"));
        }
        rules.check_key(key)?;
        if !unique.iter().any(|k| k == key) {
            unique.push(key.to_string());
        }
    }
    Ok(unique)
}

/// The `Tags` filter of ListTagResources: 1..10 pairs, keys and values of 1..128 characters
/// (the official SDK's ListTagResourcesRequest); the reserved prefixes are not checked, a
/// filter may name a system tag [inferred].
fn list_filter(
    params: &Params,
    limits: &TagServiceLimits,
    rules: &AlibabaLimits,
) -> Result<Vec<(String, String)>, RpcError> {
    let filter = tags_json(params, limits.tags_per_call)?.unwrap_or_default();
    for (key, value) in &filter {
        if key.is_empty() || key.chars().count() > rules.key_max_chars {
            return Err(RpcError::invalid(Some("TagKey"), "Tags"));
        }
        if value.is_empty() || value.chars().count() > rules.value_max_chars {
            return Err(RpcError::malformed_value());
        }
    }
    Ok(filter.into_iter().collect())
}

fn category(params: &Params) -> Result<ops::Category, RpcError> {
    match params.get("Category") {
        None | Some("") | Some("All") => Ok(ops::Category::All),
        Some("Custom") => Ok(ops::Category::Custom),
        Some("System") => Ok(ops::Category::System),
        Some(other) => Err(RpcError::invalid_detail(
            "Category",
            "Category",
            &format!("{other:?} is not one of Custom, System, All."),
        )),
    }
}

fn page_size(params: &Params, limits: &TagServiceLimits) -> Result<usize, RpcError> {
    let Some(text) = params.get("PageSize") else {
        return Ok(limits.default_page_size);
    };
    match text.parse::<usize>() {
        Ok(size) if (1..=limits.max_page_size).contains(&size) => Ok(size),
        _ => Err(RpcError::invalid_detail(
            "PageSize",
            "PageSize",
            &format!(
                "{text:?} is not a number from 1 to {}.",
                limits.max_page_size
            ),
        )),
    }
}

/// Every parser of the Tag service, and its operations on an empty store, for the fuzz tests.
#[cfg(test)]
pub(crate) fn parse_every_operation(params: &Params) {
    let config = super::AlibabaConfig::default();
    let (limits, rules) = (&config.tag_service, &config.limits);
    let aliases = config.tag_service_aliases();
    let mut store = crate::emulator::store::Store::default();
    if let (Ok(arns), Ok(tags)) = (
        arns(params, limits, true),
        write_tags(params, limits, rules),
    ) {
        let _ = ops::tag(&mut store, &aliases, &arns, &tags, "r", "1", rules);
    }
    if let (Ok(arns), Ok(keys)) = (
        arns(params, limits, true),
        untag_keys(params, limits, rules),
    ) {
        let _ = ops::untag(&mut store, &aliases, &arns, &keys, "r", "1");
    }
    if let (Ok(arns), Ok(filter), Ok(category), Ok(page_size)) = (
        arns(params, limits, false),
        list_filter(params, limits, rules),
        category(params),
        page_size(params, limits),
    ) {
        let request = ops::ListRequest {
            arns,
            filter,
            category,
            page_size,
            next_token: params.get("NextToken").map(str::to_string),
            region: "r".to_string(),
            uid: "1".to_string(),
        };
        let _ = ops::list(&store, &aliases, &request, rules);
    }
}
