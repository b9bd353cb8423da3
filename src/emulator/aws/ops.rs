//! GetResources, TagResources and UntagResources (spec sections 3 to 5), with every limit of
//! the model, written from the documentation: stricter than moto on purpose.
//!
//! Resources are stored under cloud `aws`, their `service[:type]` (as `ResourceTypeFilters`
//! names it) and their ARN. A resource is reachable from a region when it is in it, or has no
//! region (S3 buckets' ARNs name none).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::auth::Caller;
use super::get::{GetRequest, get_resources};
use super::{AwsError, sts};
use crate::emulator::App;
use crate::emulator::inventory::InventoryResource;
use crate::emulator::store::{Store, StoredResource};

pub(crate) const GET_RESOURCES: &str = "GetResources";
pub(crate) const TAG_RESOURCES: &str = "TagResources";
pub(crate) const UNTAG_RESOURCES: &str = "UntagResources";
/// The operations served.
pub(crate) const OPERATIONS: [&str; 3] = [GET_RESOURCES, TAG_RESOURCES, UNTAG_RESOURCES];

/// ARNs per write (spec section 4).
pub(super) const WRITE_ARNS: usize = 20;
/// ARNs of a GetResources by ARN (section 3).
pub(super) const READ_ARNS: usize = 100;
/// Tags of a TagResources, keys of an UntagResources (section 4).
pub(super) const TAGS_PER_CALL: usize = 50;
/// User tags a resource carries (section 5).
pub(super) const TAGS_PER_RESOURCE: usize = 50;
/// Tag filters, and values per filter (section 3).
pub(super) const TAG_FILTERS: usize = 50;
pub(super) const TAG_FILTER_VALUES: usize = 20;
/// Key and value lengths (section 5).
pub(super) const KEY_CHARS: usize = 128;
pub(super) const VALUE_CHARS: usize = 256;
/// The longest ARN (the model's `ResourceARN`).
pub(super) const ARN_CHARS: usize = 1011;
/// The reserved prefix (section 5).
pub(super) const RESERVED_PREFIX: &str = "aws:";

/// The parts of an ARN: `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

/// Why an inventory resource or a request's id is not an ARN the emulator serves.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArnError {
    /// Not `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`.
    #[error("{0:?} is not an ARN (arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE)")]
    NotAnArn(String),
    /// Longer than [`ARN_CHARS`].
    #[error("an ARN has at most {ARN_CHARS} characters")]
    TooLong,
    /// An inventory resource whose type is not its ARN's.
    #[error("type {found:?} is not the ARN's {expected:?}")]
    Type {
        /// The inventory's type.
        found: String,
        /// The ARN's.
        expected: String,
    },
    /// An inventory resource whose region is not its ARN's.
    #[error("region {found:?} is not the ARN's {expected:?}")]
    Region {
        /// The inventory's region.
        found: String,
        /// The ARN's.
        expected: String,
    },
}

/// Parses an ARN, or says why it is not one.
pub(crate) fn parse_arn(text: &str) -> Result<Arn<'_>, ArnError> {
    let mut parts = text.splitn(6, ':');
    let fields: Vec<&str> = parts.by_ref().collect();
    let [prefix, partition, service, region, account, resource] = fields[..] else {
        return Err(ArnError::NotAnArn(text.to_string()));
    };
    if prefix != "arn" || partition.is_empty() || service.is_empty() || resource.is_empty() {
        return Err(ArnError::NotAnArn(text.to_string()));
    }
    if text.chars().count() > ARN_CHARS {
        return Err(ArnError::TooLong);
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
pub(crate) fn check_resource(resource: &InventoryResource) -> Result<(), ArnError> {
    let arn = parse_arn(&resource.id)?;
    let expected = resource_type_of_arn(&arn);
    let type_matches = resource.resource_type == expected
        || (expected == arn.service
            && resource
                .resource_type
                .strip_prefix(arn.service)
                .is_some_and(|rest| rest.starts_with(':')));
    if !type_matches {
        return Err(ArnError::Type {
            found: resource.resource_type.clone(),
            expected,
        });
    }
    if !arn.region.is_empty() && resource.region != arn.region {
        return Err(ArnError::Region {
            found: resource.region.clone(),
            expected: arn.region.to_string(),
        });
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

pub(super) fn serialization(message: impl Into<String>) -> AwsError {
    AwsError::new(400, "SerializationException", message)
}

pub(super) fn string_list<'a>(
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

pub(super) fn integer(input: &Map<String, Value>, name: &str) -> Result<Option<i64>, AwsError> {
    match input.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => value
            .as_i64()
            .map(Some)
            .ok_or_else(|| serialization(format!("{name} must be an integer"))),
    }
}

pub(super) fn check_key(key: &str) -> Result<(), AwsError> {
    let chars = key.chars().count();
    if !(1..=KEY_CHARS).contains(&chars) {
        return Err(AwsError::invalid(format!(
            "tag key {key:?} has {chars} characters; keys have 1 to {KEY_CHARS}"
        )));
    }
    Ok(())
}

pub(super) fn check_value(key: &str, value: &str) -> Result<(), AwsError> {
    let chars = value.chars().count();
    if chars > VALUE_CHARS {
        return Err(AwsError::invalid(format!(
            "the value of tag key {key:?} has {chars} characters; values have at most {VALUE_CHARS}"
        )));
    }
    Ok(())
}

pub(super) fn is_reserved(key: &str) -> bool {
    key.get(..RESERVED_PREFIX.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(RESERVED_PREFIX))
}

/// Checks the ARNs of a request: each an ARN, of the caller's partition (else the whole call
/// is refused, spec section 4).
pub(super) fn check_arns(
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
        let parsed =
            parse_arn(arn).map_err(|error| AwsError::invalid(format!("{name}: {error}")))?;
        if parsed.partition != partition {
            return Err(AwsError::invalid(format!(
                "{name}: the partition of {arn} is {}, not {partition}, the partition of region {}",
                parsed.partition, caller.region
            )));
        }
    }
    Ok(())
}

/// A resource stored under another type spelling than its ARN's (an S3 bucket stored as
/// `s3:bucket`).
pub(super) fn find_by_arn<'a>(store: &'a Store, arn: &str) -> Option<&'a StoredResource> {
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
        let parsed = parse_arn(arn)
            .map_err(|error| (400, "InvalidParameterException", error.to_string()))?;
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
    use super::super::get::{decode_token, encode_token, type_matches};
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
