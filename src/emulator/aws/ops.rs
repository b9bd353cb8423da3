//! GetResources, TagResources and UntagResources (spec sections 3 to 5), with every limit of
//! the model, written from the documentation: stricter than moto on purpose.
//!
//! Resources are stored under cloud `aws`, their `service[:type]` (as `ResourceTypeFilters`
//! names it) and their ARN. A resource is reachable from a region when it is in it, or has no
//! region (S3 buckets' ARNs name none).

use std::collections::BTreeMap;

use base64::Engine;
use serde_json::{Map, Value, json};
use sha2::Digest;

use super::auth::Caller;
use super::{AwsError, sts};
use crate::emulator::App;
use crate::emulator::inventory::{AWS, InventoryResource};
use crate::emulator::store::{ResourceKey, Store, StoredResource};

pub(crate) const GET_RESOURCES: &str = "GetResources";
pub(crate) const TAG_RESOURCES: &str = "TagResources";
pub(crate) const UNTAG_RESOURCES: &str = "UntagResources";
/// The operations served.
pub(crate) const OPERATIONS: [&str; 3] = [GET_RESOURCES, TAG_RESOURCES, UNTAG_RESOURCES];

/// ARNs per write (spec section 4).
const WRITE_ARNS: usize = 20;
/// ARNs of a GetResources by ARN (section 3).
const READ_ARNS: usize = 100;
/// Tags of a TagResources, keys of an UntagResources (section 4).
const TAGS_PER_CALL: usize = 50;
/// User tags a resource carries (section 5).
const TAGS_PER_RESOURCE: usize = 50;
/// Tag filters, and values per filter (section 3).
const TAG_FILTERS: usize = 50;
const TAG_FILTER_VALUES: usize = 20;
/// Key and value lengths (section 5).
const KEY_CHARS: usize = 128;
const VALUE_CHARS: usize = 256;
/// The longest ARN (the model's `ResourceARN`).
const ARN_CHARS: usize = 1011;
/// The reserved prefix (section 5).
const RESERVED_PREFIX: &str = "aws:";

/// The parts of an ARN: `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

/// Parses an ARN, or says why it is not one.
pub(crate) fn parse_arn(text: &str) -> Result<Arn<'_>, String> {
    let mut parts = text.splitn(6, ':');
    let fields: Vec<&str> = parts.by_ref().collect();
    let [prefix, partition, service, region, account, resource] = fields[..] else {
        return Err(format!(
            "{text:?} is not an ARN (arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE)"
        ));
    };
    if prefix != "arn" || partition.is_empty() || service.is_empty() || resource.is_empty() {
        return Err(format!(
            "{text:?} is not an ARN (arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE)"
        ));
    }
    if text.chars().count() > ARN_CHARS {
        return Err(format!("an ARN has at most {ARN_CHARS} characters"));
    }
    Ok(Arn {
        partition,
        service,
        region,
        account,
        resource,
    })
}

/// The `service:type` of an ARN as `ResourceTypeFilters` names it: the resource part's type
/// before `/` or `:` (`instance/i-1` is `ec2:instance`, `db:mydb` is `rds:db`), or the service
/// alone when the resource part has none (`arn:aws:s3:::bucket` is `s3`).
pub(crate) fn resource_type_of_arn(arn: &Arn<'_>) -> String {
    match arn.resource.find(['/', ':']) {
        Some(end) => format!("{}:{}", arn.service, &arn.resource[..end]),
        None => arn.service.to_string(),
    }
}

/// Checks an inventory resource of AWS: its id an ARN, its type the ARN's, its region the
/// ARN's (or none, for an ARN without one).
pub(crate) fn check_resource(resource: &InventoryResource) -> Result<(), String> {
    let arn = parse_arn(&resource.id)?;
    let expected = resource_type_of_arn(&arn);
    let type_matches = resource.resource_type == expected
        || (expected == arn.service
            && resource
                .resource_type
                .strip_prefix(arn.service)
                .is_some_and(|rest| rest.starts_with(':')));
    if !type_matches {
        return Err(format!(
            "type {:?} is not the ARN's {expected:?}",
            resource.resource_type
        ));
    }
    if !arn.region.is_empty() && resource.region != arn.region {
        return Err(format!(
            "region {:?} is not the ARN's {:?}",
            resource.region, arn.region
        ));
    }
    Ok(())
}

/// Serves one operation for `caller`.
pub(crate) async fn serve(
    app: &App,
    caller: &Caller,
    operation: &str,
    input: &Map<String, Value>,
) -> Result<Value, AwsError> {
    match operation {
        GET_RESOURCES => {
            let request = GetRequest::parse(input, caller)?;
            let now_ms = app.faults.now().as_millisecond();
            let ttl_ms =
                i64::try_from(app.aws.pagination_token_ttl.as_millis()).unwrap_or(i64::MAX);
            app.store.read(|store| {
                get_resources(
                    store,
                    caller,
                    &request,
                    now_ms,
                    ttl_ms,
                    app.aws.default_page_size,
                )
            })
        }
        _ => {
            let mut write = WriteRequest::parse(operation, input, caller)?;
            // NB: an injected InternalServiceException (a fault flag) fails its ARN in the
            // answer, and is applied or not as the flag says.
            let faulted: Vec<String> = write
                .arns
                .iter()
                .filter(|arn| app.aws_state.internal_error(arn, app.aws.internal_errors))
                .cloned()
                .collect();
            if !app.aws.internal_error_applies {
                write.arns.retain(|arn| !faulted.contains(arn));
            }
            let mut failed = if write.arns.is_empty() {
                BTreeMap::new()
            } else {
                app.store
                    .change(|store| Ok::<_, AwsError>(write.apply(store, caller)))
                    .await?
            };
            for arn in faulted {
                failed.insert(
                    arn,
                    (
                        500,
                        "InternalServiceException",
                        "The request processing has failed because of an unknown error, \
                         exception or failure."
                            .to_string(),
                    ),
                );
            }
            let failed: Map<String, Value> = failed
                .into_iter()
                .map(|(arn, (status, code, message))| {
                    (
                        arn,
                        json!({"StatusCode": status, "ErrorCode": code, "ErrorMessage": message}),
                    )
                })
                .collect();
            Ok(json!({"FailedResourcesMap": failed}))
        }
    }
}

fn serialization(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "SerializationException", message)
}

fn string_list<'a>(
    input: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<Vec<&'a str>>, AwsError> {
    match input.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .ok_or_else(|| serialization(format!("{name} must be a list of strings")))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(serialization(format!("{name} must be a list of strings"))),
    }
}

fn integer(input: &Map<String, Value>, name: &str) -> Result<Option<i64>, AwsError> {
    match input.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_i64()
            .map(Some)
            .ok_or_else(|| serialization(format!("{name} must be an integer"))),
    }
}

fn check_key(key: &str) -> Result<(), AwsError> {
    let chars = key.chars().count();
    if !(1..=KEY_CHARS).contains(&chars) {
        return Err(AwsError::invalid(format!(
            "tag key {key:?} has {chars} characters; keys have 1 to {KEY_CHARS}"
        )));
    }
    Ok(())
}

fn check_value(key: &str, value: &str) -> Result<(), AwsError> {
    let chars = value.chars().count();
    if chars > VALUE_CHARS {
        return Err(AwsError::invalid(format!(
            "the value of tag key {key:?} has {chars} characters; values have at most {VALUE_CHARS}"
        )));
    }
    Ok(())
}

fn is_reserved(key: &str) -> bool {
    key.get(..RESERVED_PREFIX.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(RESERVED_PREFIX))
}

/// Checks the ARNs of a request: each an ARN, of the caller's partition (else the whole call
/// is refused, spec section 4).
fn check_arns(
    arns: &[&str],
    caller: &Caller,
    name: &str,
    range: (usize, usize),
) -> Result<(), AwsError> {
    if !(range.0..=range.1).contains(&arns.len()) {
        return Err(AwsError::invalid(format!(
            "{name} has {} ARNs; it takes {} to {}",
            arns.len(),
            range.0,
            range.1
        )));
    }
    let partition = sts::partition_of(&caller.region);
    for arn in arns {
        let parsed = parse_arn(arn).map_err(|rule| AwsError::invalid(format!("{name}: {rule}")))?;
        if parsed.partition != partition {
            return Err(AwsError::invalid(format!(
                "{name}: the partition of {arn} is {}, not {partition}, the partition of region {}",
                parsed.partition, caller.region
            )));
        }
    }
    Ok(())
}

/// A GetResources request.
#[derive(Debug)]
struct GetRequest {
    arns: Option<Vec<String>>,
    tag_filters: Vec<(String, Vec<String>)>,
    type_filters: Vec<String>,
    per_page: Option<usize>,
    tags_per_page: Option<usize>,
    token: Option<String>,
}

impl GetRequest {
    fn parse(input: &Map<String, Value>, caller: &Caller) -> Result<GetRequest, AwsError> {
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

fn tag_filter(item: &Value) -> Result<(String, Vec<String>), AwsError> {
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
fn encode_token(offset: usize, issued_ms: i64, fingerprint: &str) -> String {
    let text = json!({"o": offset, "t": issued_ms, "q": fingerprint}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

fn decode_token(token: &str) -> Option<(usize, i64, String)> {
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

fn mapping(arn: &str, resource: &StoredResource) -> Value {
    let tags: Vec<Value> = resource
        .tags
        .iter()
        .map(|(key, value)| json!({"Key": key, "Value": value}))
        .collect();
    json!({"ResourceARN": arn, "Tags": tags})
}

/// True when the caller reaches the resource: its account, and its region or none.
fn reaches(caller: &Caller, arn: &str, resource: &StoredResource) -> bool {
    parse_arn(arn).is_ok_and(|parsed| parsed.account.is_empty() || parsed.account == caller.account)
        && resource.is_in(Some(&caller.region))
}

fn type_matches(filters: &[String], resource_type: &str) -> bool {
    filters.is_empty()
        || filters.iter().any(|filter| {
            resource_type == filter
                || resource_type
                    .strip_prefix(filter.as_str())
                    .is_some_and(|rest| rest.starts_with(':') && !filter.contains(':'))
        })
}

fn tags_match(filters: &[(String, Vec<String>)], tags: &BTreeMap<String, String>) -> bool {
    filters.iter().all(|(key, values)| {
        tags.get(key)
            .is_some_and(|value| values.is_empty() || values.contains(value))
    })
}

fn get_resources(
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

/// A resource stored under another type spelling than its ARN's (an S3 bucket stored as
/// `s3:bucket`).
fn find_by_arn<'a>(store: &'a Store, arn: &str) -> Option<&'a StoredResource> {
    store
        .aws_resources()
        .find(|(_, stored_arn, _)| *stored_arn == arn)
        .map(|(_, _, resource)| resource)
}

/// A TagResources or UntagResources request.
#[derive(Debug)]
struct WriteRequest {
    arns: Vec<String>,
    /// Tags to set (TagResources), or keys to remove with an empty value (UntagResources).
    tags: BTreeMap<String, String>,
    untag: bool,
}

/// Per-ARN failure: status, error code, message.
type Failure = (u16, &'static str, String);

impl WriteRequest {
    fn parse(
        operation: &str,
        input: &Map<String, Value>,
        caller: &Caller,
    ) -> Result<WriteRequest, AwsError> {
        let untag = operation == UNTAG_RESOURCES;
        let arns = string_list(input, "ResourceARNList")?
            .ok_or_else(|| AwsError::invalid("ResourceARNList is required"))?;
        check_arns(&arns, caller, "ResourceARNList", (1, WRITE_ARNS))?;
        let tags: BTreeMap<String, String> = if untag {
            string_list(input, "TagKeys")?
                .ok_or_else(|| AwsError::invalid("TagKeys is required"))?
                .into_iter()
                .map(|key| (key.to_string(), String::new()))
                .collect()
        } else {
            match input.get("Tags") {
                Some(Value::Object(tags)) => tags
                    .iter()
                    .map(|(key, value)| match value {
                        Value::String(value) => Ok((key.clone(), value.clone())),
                        _ => Err(serialization("Tags must map strings to strings")),
                    })
                    .collect::<Result<_, _>>()?,
                None | Some(Value::Null) => return Err(AwsError::invalid("Tags is required")),
                Some(_) => return Err(serialization("Tags must be a map")),
            }
        };
        let what = if untag { "TagKeys" } else { "Tags" };
        if !(1..=TAGS_PER_CALL).contains(&tags.len()) {
            return Err(AwsError::invalid(format!(
                "{what} has {} entries; it takes 1 to {TAGS_PER_CALL}",
                tags.len()
            )));
        }
        for (key, value) in &tags {
            check_key(key)?;
            check_value(key, value)?;
            if is_reserved(key) {
                return Err(AwsError::invalid(format!(
                    "tag key {key:?}: the aws: prefix is reserved for AWS use"
                )));
            }
        }
        Ok(WriteRequest {
            arns: arns.into_iter().map(str::to_string).collect(),
            tags,
            untag,
        })
    }

    /// Applies the write to each resource that can take it; the others fail alone.
    fn apply(&self, store: &mut Store, caller: &Caller) -> BTreeMap<String, Failure> {
        let mut failed = BTreeMap::new();
        for arn in &self.arns {
            if let Err(failure) = self.apply_one(store, caller, arn) {
                failed.insert(arn.clone(), failure);
            }
        }
        failed
    }

    fn apply_one(&self, store: &mut Store, caller: &Caller, arn: &str) -> Result<(), Failure> {
        let parsed = parse_arn(arn).map_err(|rule| (400, "InvalidParameterException", rule))?;
        if !parsed.account.is_empty() && parsed.account != caller.account {
            return Err((
                400,
                "InvalidParameterException",
                format!(
                    "{arn} is in account {}; the caller can only tag resources of account {}",
                    parsed.account, caller.account
                ),
            ));
        }
        if !parsed.region.is_empty() && parsed.region != caller.region {
            return Err((
                400,
                "InvalidParameterException",
                format!(
                    "{arn} is in region {}; this endpoint tags resources of region {}",
                    parsed.region, caller.region
                ),
            ));
        }
        let not_found = || {
            (
                404,
                "InvalidParameterException",
                format!(
                    "Resource {arn} does not exist in account {} and region {}",
                    caller.account, caller.region
                ),
            )
        };
        let key = store.aws_key_of(arn).ok_or_else(not_found)?;
        let resource = store.get_mut(&key).ok_or_else(not_found)?;
        if !resource.is_in(Some(&caller.region)) {
            return Err(not_found());
        }
        if self.untag {
            for key in self.tags.keys() {
                resource.tags.remove(key);
            }
            return Ok(());
        }
        let user_tags = resource
            .tags
            .keys()
            .chain(self.tags.keys())
            .filter(|key| !is_reserved(key))
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        if user_tags > TAGS_PER_RESOURCE {
            return Err((
                400,
                "InvalidParameterException",
                format!(
                    "TagLimitExceeded: {arn} would carry {user_tags} tags; a resource carries at \
                     most {TAGS_PER_RESOURCE} user tags (aws: tags do not count)"
                ),
            ));
        }
        for (key, value) in &self.tags {
            resource.tags.insert(key.clone(), value.clone());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_types_are_as_resource_type_filters_name_them() {
        let of = |text: &str| resource_type_of_arn(&parse_arn(text).unwrap());
        assert_eq!(
            of("arn:aws:ec2:us-east-1:123456789012:instance/i-1"),
            "ec2:instance"
        );
        assert_eq!(of("arn:aws:rds:us-east-1:123456789012:db:mydb"), "rds:db");
        assert_eq!(of("arn:aws:s3:::my-bucket"), "s3");
        assert!(parse_arn("arn:aws:ec2").is_err());
        assert!(parse_arn("i-123").is_err());
    }

    #[test]
    fn type_filters_match_a_service_or_a_type() {
        assert!(type_matches(&["ec2".to_string()], "ec2:instance"));
        assert!(type_matches(&["ec2:instance".to_string()], "ec2:instance"));
        assert!(!type_matches(&["ec2:volume".to_string()], "ec2:instance"));
        assert!(!type_matches(&["ec".to_string()], "ec2:instance"));
        assert!(type_matches(&[], "s3"));
    }

    #[test]
    fn tokens_round_trip_and_reserved_keys_are_any_case() {
        assert_eq!(
            decode_token(&encode_token(7, 42, "ab")),
            Some((7, 42, "ab".to_string()))
        );
        assert_eq!(decode_token("not a token"), None);
        assert!(is_reserved("aws:cloudformation:stack-name"));
        assert!(is_reserved("AWS:x"));
        assert!(!is_reserved("awsx"));
    }
}
