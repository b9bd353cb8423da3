//! GetResources: by ARN list (the resources it names, at most 100) or by tag and type
//! filters (paged by an opaque token), each resource with its tags.

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::{Map, Value, json};
use sha2::Digest;

use super::AwsError;
use super::auth::Caller;
use super::ops::{
    READ_ARNS, TAG_FILTER_VALUES, TAG_FILTERS, check_arns, check_key, check_value, find_by_arn,
    integer, parse_arn, resource_type_of_arn, serialization, string_list,
};
use crate::emulator::inventory::AWS;
use crate::emulator::store::{ResourceKey, Store, StoredResource};

/// A GetResources request.
#[derive(Debug)]
pub(super) struct GetRequest {
    arns: Option<Vec<String>>,
    tag_filters: Vec<(String, Vec<String>)>,
    type_filters: Vec<String>,
    per_page: Option<usize>,
    tags_per_page: Option<usize>,
    token: Option<String>,
}

pub(super) fn tag_filter(item: &Value) -> Result<(String, Vec<String>), AwsError> {
    let Value::Object(filter) = item else {
        return Err(serialization("each TagFilters entry must be an object"));
    };
    let key = match filter.get("Key") {
        Some(Value::String(key)) => key.clone(),
        None | Some(Value::Null) => {
            return Err(AwsError::invalid("each TagFilter must contain a Key"));
        }
        Some(_) => return Err(serialization("TagFilter Key must be a string")),
    };
    check_key(&key)?;
    let values: Vec<String> = string_list(filter, "Values")?
        .unwrap_or_default()
        .into_iter()
        .map(str::to_string)
        .collect();
    if values.len() > TAG_FILTER_VALUES {
        return Err(AwsError::invalid(format!(
            "TagFilter {key:?} has {} values; at most {TAG_FILTER_VALUES}",
            values.len()
        )));
    }
    for value in &values {
        check_value(&key, value)?;
    }
    Ok((key, values))
}

/// A pagination token: where the next page starts, when the listing began, and what it lists.
pub(super) fn encode_token(offset: usize, issued_ms: i64, fingerprint: &str) -> String {
    let text = json!({"o": offset, "t": issued_ms, "q": fingerprint}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

pub(super) fn decode_token(token: &str) -> Option<(usize, i64, String)> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    Some((
        usize::try_from(value.get("o")?.as_u64()?).ok()?,
        value.get("t")?.as_i64()?,
        value.get("q")?.as_str()?.to_string(),
    ))
}

pub(super) fn mapping(arn: &str, resource: &StoredResource) -> Value {
    let tags: Vec<Value> = resource
        .tags
        .iter()
        .map(|(key, value)| json!({"Key": key, "Value": value}))
        .collect();
    json!({"ResourceARN": arn, "Tags": tags})
}

/// True when the caller reaches the resource: its account, and its region or none.
pub(super) fn reaches(caller: &Caller, arn: &str, resource: &StoredResource) -> bool {
    parse_arn(arn).is_ok_and(|parsed| parsed.account.is_empty() || parsed.account == caller.account)
        && resource.is_in(Some(&caller.region))
}

pub(super) fn type_matches(filters: &[String], resource_type: &str) -> bool {
    filters.is_empty()
        || filters.iter().any(|filter| {
            resource_type == filter
                || resource_type
                    .strip_prefix(filter.as_str())
                    .is_some_and(|rest| rest.starts_with(':') && !filter.contains(':'))
        })
}

pub(super) fn tags_match(
    filters: &[(String, Vec<String>)],
    tags: &BTreeMap<String, String>,
) -> bool {
    filters.iter().all(|(key, values)| {
        tags.get(key)
            .is_some_and(|value| values.is_empty() || values.contains(value))
    })
}

pub(super) fn get_resources(
    store: &Store,
    caller: &Caller,
    request: &GetRequest,
    now_ms: i64,
    ttl_ms: i64,
    default_page_size: usize,
) -> Result<Value, AwsError> {
    if let Some(arns) = &request.arns {
        // NB: an ARN of no resource, or of one without tags, is simply not listed (section 3).
        let mut seen = std::collections::BTreeSet::new();
        let list: Vec<Value> = arns
            .iter()
            .filter(|arn| seen.insert(arn.as_str()))
            .filter_map(|arn| {
                let resource_type = resource_type_of_arn(&parse_arn(arn).ok()?);
                let key = ResourceKey::new(AWS, &resource_type, arn);
                let resource = store.get(&key).or_else(|| find_by_arn(store, arn))?;
                (reaches(caller, arn, resource) && !resource.tags.is_empty())
                    .then(|| mapping(arn, resource))
            })
            .collect();
        return Ok(json!({"PaginationToken": "", "ResourceTagMappingList": list}));
    }
    let fingerprint = request.fingerprint(caller);
    let (offset, issued_ms) = match &request.token {
        None => (0, now_ms),
        Some(token) => {
            let (offset, issued_ms, bound) = decode_token(token).ok_or_else(|| {
                AwsError::invalid("PaginationToken is not a token this service issued")
            })?;
            if bound != fingerprint {
                return Err(AwsError::invalid(
                    "PaginationToken belongs to a request with other filters",
                ));
            }
            if now_ms.saturating_sub(issued_ms) > ttl_ms {
                return Err(AwsError::new(
                    400,
                    "PaginationTokenExpiredException",
                    "The PaginationToken has expired; a PaginationToken is valid for a maximum of \
                     15 minutes",
                ));
            }
            (offset, issued_ms)
        }
    };
    let matching: Vec<(&str, &StoredResource)> = store
        .aws_resources()
        .filter(|(resource_type, arn, resource)| {
            !resource.tags.is_empty()
                && reaches(caller, arn, resource)
                && type_matches(&request.type_filters, resource_type)
                && tags_match(&request.tag_filters, &resource.tags)
        })
        .map(|(_, arn, resource)| (arn, resource))
        .collect();
    let per_page = request.per_page.unwrap_or(default_page_size).max(1);
    let mut page = Vec::new();
    let mut tags_budget = request.tags_per_page;
    let mut next = offset;
    for (arn, resource) in matching.iter().skip(offset) {
        if page.len() >= per_page {
            break;
        }
        if let Some(budget) = tags_budget.as_mut() {
            // NB: a resource and its tags are never split across pages (section 3).
            let cost = resource.tags.len().max(1);
            if cost > *budget && !page.is_empty() {
                break;
            }
            *budget = budget.saturating_sub(cost);
        }
        page.push(mapping(arn, resource));
        next += 1;
    }
    let token = if next < matching.len() {
        encode_token(next, issued_ms, &fingerprint)
    } else {
        // NB: the last page carries an empty token, not none (section 3).
        String::new()
    };
    Ok(json!({"PaginationToken": token, "ResourceTagMappingList": page}))
}

impl GetRequest {
    pub(super) fn parse(
        input: &Map<String, Value>,
        caller: &Caller,
    ) -> Result<GetRequest, AwsError> {
        let arns = string_list(input, "ResourceARNList")?;
        let type_filters = string_list(input, "ResourceTypeFilters")?;
        let tag_filters = match input.get("TagFilters") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(tag_filter)
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(_) => return Err(serialization("TagFilters must be a list")),
        };
        let per_page = integer(input, "ResourcesPerPage")?;
        let tags_per_page = integer(input, "TagsPerPage")?;
        let token = match input.get("PaginationToken") {
            None | Some(Value::Null) => None,
            Some(Value::String(token)) => Some(token.clone()),
            Some(_) => return Err(serialization("PaginationToken must be a string")),
        };
        if arns.is_some() {
            let excluded = [
                ("TagFilters", tag_filters.is_some()),
                ("ResourceTypeFilters", type_filters.is_some()),
                ("ResourcesPerPage", per_page.is_some()),
                ("TagsPerPage", tags_per_page.is_some()),
                ("PaginationToken", token.is_some()),
            ];
            if let Some((name, _)) = excluded.iter().find(|(_, present)| *present) {
                return Err(AwsError::invalid(format!(
                    "ResourceARNList cannot be combined with {name}"
                )));
            }
        }
        if let Some(arns) = &arns {
            check_arns(arns, caller, "ResourceARNList", (1, READ_ARNS))?;
        }
        let tag_filters = tag_filters.unwrap_or_default();
        if tag_filters.len() > TAG_FILTERS {
            return Err(AwsError::invalid(format!(
                "TagFilters has {} filters; at most {TAG_FILTERS}",
                tag_filters.len()
            )));
        }
        if let Some(n) = per_page.filter(|n| !(1..=100).contains(n)) {
            return Err(AwsError::invalid(format!(
                "ResourcesPerPage {n} is out of range; 1 to 100"
            )));
        }
        if let Some(n) = tags_per_page.filter(|n| !(100..=500).contains(n)) {
            return Err(AwsError::invalid(format!(
                "TagsPerPage {n} is out of range; 100 to 500"
            )));
        }
        if let Some(token) = token.as_ref().filter(|t| t.len() > 2048) {
            return Err(AwsError::invalid(format!(
                "PaginationToken has {} characters; at most 2048",
                token.len()
            )));
        }
        Ok(GetRequest {
            arns: arns.map(|arns| arns.into_iter().map(str::to_string).collect()),
            tag_filters,
            type_filters: type_filters
                .unwrap_or_default()
                .into_iter()
                .map(str::to_string)
                .collect(),
            per_page: per_page.map(|n| n as usize),
            tags_per_page: tags_per_page.map(|n| n as usize),
            token: token.filter(|token| !token.is_empty()),
        })
    }

    /// What a token of this request's listing is bound to.
    fn fingerprint(&self, caller: &Caller) -> String {
        let text = json!([
            caller.account,
            caller.region,
            self.tag_filters,
            self.type_filters,
            self.per_page,
            self.tags_per_page
        ])
        .to_string();
        hex::encode(&sha2::Sha256::digest(text.as_bytes())[..8])
    }
}
