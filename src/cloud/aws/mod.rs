//! AWS's Resource Groups Tagging API (spec: aws-resource-groups-tagging.md): GetResources,
//! TagResources and UntagResources, JSON 1.1 on `POST /`, signed with SigV4 (the official
//! `aws-sigv4` crate, [`crate::cloud::sign::aws`]): a protocol of the client chassis.
//!
//! Resources are addressed by ARN: a binding's bare ids of the common types are composed into
//! ARNs with the provider's partition, region and account ([`arn`]), and ARNs of another
//! partition, region, account or type are refused before anything is sent. Reads by id are
//! GetResources by `ResourceARNList` (100 a call, no paging); selects are GetResources by
//! `TagFilters` and `ResourceTypeFilters`, paged to the empty `PaginationToken`, restarted
//! once when a token expires. Writes carry 20 ARNs and 50 tags (or keys), and report failures
//! per ARN in `FailedResourcesMap`. `aws:` tags are AWS's own: never read into a decision,
//! written or pruned.

pub mod arn;
pub mod chain;
mod errors;
mod metadata;
pub mod profile;

use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, HeaderName, RETRY_AFTER};
use serde_json::{Value, json};

use super::AccessKey;
use super::client::{
    Admit, AnswerError, Client, HttpRequest, Operation, Protocol, Settings, failures_of_call,
};
use super::credentials::Credentials;
use super::retry::retry_after_seconds;
use super::sign::aws::{AwsCredentials, Unsigned, sign_headers};
use super::transport::endpoint_url;
use super::{AddressError, CloudError, Refusal, RefusalReason, RetryPolicy, WriteOp, WriteResult};
use crate::tags::{Limits, Tags, TagsByResource};

pub use arn::{ArnScope, partition_of};

/// The signing name of the tagging API (spec section 1).
pub const SIGNING_SERVICE: &str = "tagging";
/// `X-Amz-Target` prefix (spec section 1).
const TARGET_PREFIX: &str = "ResourceGroupsTaggingAPI_20170126.";
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// STS's signing name, version and the call that names the caller's account (spec section 7).
const STS_SERVICE: &str = "sts";
const GET_CALLER_IDENTITY: &str = "GetCallerIdentity";
const STS_FORM: &str = "application/x-www-form-urlencoded; charset=utf-8";

const GET_RESOURCES: &str = "GetResources";
const TAG_RESOURCES: &str = "TagResources";
const UNTAG_RESOURCES: &str = "UntagResources";

/// Largest `ResourcesPerPage` (spec section 3): the fewest pages.
const PAGE_SIZE: usize = 100;

/// The documented endpoint of a region: `https://tagging.{region}.amazonaws.com`, or
/// `.amazonaws.com.cn` in China (spec section 1).
pub fn endpoint_of(region: &str) -> String {
    if region.starts_with("cn-") {
        format!("https://tagging.{region}.amazonaws.com.cn")
    } else {
        format!("https://tagging.{region}.amazonaws.com")
    }
}

/// The documented STS endpoint of a region: `https://sts.{region}.amazonaws.com`, or
/// `.amazonaws.com.cn` in China.
pub fn sts_endpoint_of(region: &str) -> String {
    if region.starts_with("cn-") {
        format!("https://sts.{region}.amazonaws.com.cn")
    } else {
        format!("https://sts.{region}.amazonaws.com")
    }
}

/// Everything a client needs to reach the tagging API in one region of one account.
#[derive(Clone, Debug)]
pub struct AwsConfig {
    /// Base URL, e.g. [`endpoint_of`]`("us-east-1")`.
    pub endpoint: String,
    /// Partition, region and account of the provider's ARNs.
    pub scope: ArnScope,
    /// STS, where the account of a provider without `aws.accountId` is asked for
    /// ([`sts_endpoint_of`], or the provider's one endpoint).
    pub sts_endpoint: String,
    /// The account STS named (GetCallerIdentity, once per client) when `scope` has none.
    pub resolved_account: std::sync::Arc<std::sync::OnceLock<String>>,
    /// Where each attempt's key comes from (the session token of temporary ones included).
    pub credentials: Credentials,
    /// Retry policy for retryable failures.
    pub retry: RetryPolicy,
    /// Timeout of one HTTP attempt.
    pub timeout: Duration,
    /// Limits and tag rules ([`Limits::aws`]).
    pub limits: Limits,
}

/// Client of the tagging API: the chassis over [`AwsConfig`].
pub type AwsClient = Client<AwsConfig>;

/// One call: its operation and JSON body.
#[derive(Clone, Debug)]
pub struct AwsCall {
    operation: &'static str,
    body: String,
}

impl AwsConfig {
    /// The account of the provider's ARNs: `aws.accountId`, or the one STS named.
    pub fn account_id(&self) -> Option<&str> {
        self.scope
            .account_id
            .as_deref()
            .or_else(|| self.resolved_account.get().map(String::as_str))
    }

    /// The scope with the account STS named, when the provider names none.
    fn scope(&self) -> std::borrow::Cow<'_, ArnScope> {
        match (&self.scope.account_id, self.resolved_account.get()) {
            (None, Some(account)) => std::borrow::Cow::Owned(ArnScope {
                account_id: Some(account.clone()),
                ..self.scope.clone()
            }),
            _ => std::borrow::Cow::Borrowed(&self.scope),
        }
    }

    /// The ARNs of `ids`, or the `InvalidResourceId` refusal of `action`.
    fn arns(
        &self,
        action: &'static str,
        resource_type: &str,
        ids: &[String],
    ) -> Result<Vec<String>, Refusal> {
        let scope = self.scope();
        ids.iter()
            .map(|id| {
                scope.arn(resource_type, id).map_err(|error| {
                    Refusal::new(RefusalReason::InvalidResourceId, action, error.to_string())
                })
            })
            .collect()
    }

    /// The requested ids of each ARN of `ids`: one resource may be named twice, by bare id and
    /// by ARN (ids whose ARN cannot be composed are left out).
    fn ids_by_arn<'a>(
        &self,
        resource_type: &str,
        ids: impl Iterator<Item = &'a String>,
    ) -> std::collections::HashMap<String, Vec<String>> {
        let mut by_arn: std::collections::HashMap<String, Vec<String>> = Default::default();
        let scope = self.scope();
        for id in ids {
            if let Ok(arn) = scope.arn(resource_type, id) {
                by_arn.entry(arn).or_default().push(id.clone());
            }
        }
        by_arn
    }

    fn is_reserved(&self, key: &str) -> bool {
        self.limits.reserved_key_prefix(key).is_some()
    }
}

impl Protocol for AwsConfig {
    type Call = AwsCall;

    fn cloud_name(&self) -> &'static str {
        "aws"
    }

    fn settings(&self) -> Settings<'_> {
        Settings {
            endpoint: &self.endpoint,
            retry: &self.retry,
            timeout: self.timeout,
            limits: &self.limits,
            credentials: &self.credentials,
        }
    }

    fn action(&self, operation: Operation) -> &'static str {
        match operation {
            Operation::List => GET_RESOURCES,
            Operation::Tag => TAG_RESOURCES,
            Operation::Untag => UNTAG_RESOURCES,
        }
    }

    fn check_resource_type(&self, resource_type: &str) -> Result<(), AddressError> {
        arn::check_resource_type(resource_type)
            .map_err(|error| AddressError::ResourceType(error.to_string()))
    }

    fn check_resource_ids(&self, resource_type: &str, ids: &[String]) -> Result<(), AddressError> {
        // NB: before STS has named the account (it is asked with the first call), a bare id
        // is checked as composed with any account, and an ARN's account is not checked.
        let scope = self.scope();
        let placeholder = ArnScope {
            account_id: Some("000000000000".to_string()),
            ..scope.as_ref().clone()
        };
        let refused: Vec<arn::ArnError> = ids
            .iter()
            .filter_map(|id| {
                let checked = if scope.account_id.is_none() && !id.starts_with("arn:") {
                    &placeholder
                } else {
                    scope.as_ref()
                };
                checked.arn(resource_type, id).err()
            })
            .collect();
        match refused.first() {
            None => Ok(()),
            Some(first) => Err(AddressError::ResourceIds {
                refused: refused.len(),
                first: first.to_string(),
            }),
        }
    }

    fn list_call(
        &self,
        resource_type: &str,
        resource_ids: &[String],
        _token: Option<&str>,
    ) -> Result<AwsCall, Refusal> {
        // NB: ResourceARNList excludes every paging parameter (spec section 3): one call.
        let arns = self.arns(GET_RESOURCES, resource_type, resource_ids)?;
        Ok(AwsCall {
            operation: GET_RESOURCES,
            body: json!({"ResourceARNList": arns}).to_string(),
        })
    }

    fn select_call(
        &self,
        resource_type: &str,
        match_tags: &Tags,
        token: Option<&str>,
    ) -> Result<AwsCall, Refusal> {
        let filters: Vec<Value> = match_tags
            .iter()
            .map(|(key, value)| json!({"Key": key, "Values": [value]}))
            .collect();
        let mut body = json!({
            "TagFilters": filters,
            "ResourceTypeFilters": [resource_type],
            "ResourcesPerPage": PAGE_SIZE,
        });
        if let Some(token) = token {
            body["PaginationToken"] = json!(token);
        }
        Ok(AwsCall {
            operation: GET_RESOURCES,
            body: body.to_string(),
        })
    }

    fn read_list(
        &self,
        resource_type: &str,
        body: &str,
        observed: &mut TagsByResource,
        admit: Admit,
    ) -> Result<Option<String>, AnswerError> {
        let answer: Value = serde_json::from_str(body)?;
        let list = answer
            .get("ResourceTagMappingList")
            .and_then(Value::as_array)
            .ok_or(AnswerError::Missing("no ResourceTagMappingList"))?;
        let requested = match admit {
            Admit::Requested => Some(self.ids_by_arn(resource_type, observed.keys())),
            Admit::Listed => None,
        };
        for mapping in list {
            let arn = mapping
                .get("ResourceARN")
                .and_then(Value::as_str)
                .ok_or(AnswerError::Missing("a mapping without ResourceARN"))?;
            let ids: Vec<String> = match &requested {
                Some(requested) => match requested.get(arn) {
                    Some(ids) => ids.clone(),
                    None => continue,
                },
                None => {
                    // NB: a select keeps the resources of the binding's type only.
                    let arn_type = arn::resource_type_of(arn).unwrap_or_default();
                    let same = arn_type == resource_type
                        || arn_type.split(':').next() == Some(resource_type);
                    if !same {
                        continue;
                    }
                    vec![arn.to_string()]
                }
            };
            let mut listed = Tags::new();
            for tag in mapping
                .get("Tags")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
                .unwrap_or_default()
            {
                let key = tag
                    .get("Key")
                    .and_then(Value::as_str)
                    .ok_or(AnswerError::Missing("a tag without Key"))?;
                let value = tag.get("Value").and_then(Value::as_str).unwrap_or("");
                if !self.is_reserved(key) {
                    listed.insert(key.to_string(), value.to_string());
                }
            }
            for id in ids {
                if let Some(tags) = admit.entry(observed, &id) {
                    tags.extend(listed.iter().map(|(k, v)| (k.clone(), v.clone())));
                }
            }
        }
        // NB: the last page carries "" (spec section 3); an absent token ends it too.
        Ok(answer
            .get("PaginationToken")
            .and_then(Value::as_str)
            .filter(|token| !token.is_empty())
            .map(str::to_string))
    }

    fn write_call(
        &self,
        op: WriteOp,
        resource_type: &str,
        resource_ids: &[String],
        tags: &Tags,
    ) -> Result<AwsCall, Refusal> {
        let action = self.action(op.into());
        let arns = self.arns(action, resource_type, resource_ids)?;
        if let Some(key) = tags.keys().find(|key| self.is_reserved(key)) {
            return Err(Refusal::new(
                RefusalReason::ReservedTagKey,
                action,
                format!(
                    "tag key {key:?}: the aws: prefix is AWS's own; tagbinder never writes or removes it (nothing was sent)"
                ),
            ));
        }
        let body = match op {
            WriteOp::Tag => json!({"ResourceARNList": arns, "Tags": tags}),
            WriteOp::Untag => {
                json!({"ResourceARNList": arns, "TagKeys": tags.keys().collect::<Vec<_>>()})
            }
        };
        Ok(AwsCall {
            operation: action,
            body: body.to_string(),
        })
    }

    fn read_write(
        &self,
        _op: WriteOp,
        resource_type: &str,
        resource_ids: &[String],
        body: &str,
    ) -> Result<WriteResult, AnswerError> {
        let answer: Value = serde_json::from_str(body)?;
        let ids = self.ids_by_arn(resource_type, resource_ids.iter());
        let failed = match answer.get("FailedResourcesMap") {
            None | Some(Value::Null) => serde_json::Map::new(),
            Some(Value::Object(failed)) => failed.clone(),
            Some(_) => {
                return Err(AnswerError::Invalid(
                    "FailedResourcesMap is not a map".to_string(),
                ));
            }
        };
        let failures = failed.iter().flat_map(|(arn, info)| {
            let error = errors::resource_error(info);
            ids.get(arn)
                .cloned()
                .unwrap_or_else(|| vec![arn.clone()])
                .into_iter()
                .map(move |id| (id, error.clone()))
        });
        Ok(failures_of_call(resource_ids, failures))
    }

    fn setup_call(&self) -> Option<AwsCall> {
        // NB: without aws.accountId, bare ids need the account: STS names it, once.
        self.account_id().is_none().then(|| AwsCall {
            operation: GET_CALLER_IDENTITY,
            body: "Action=GetCallerIdentity&Version=2011-06-15".to_string(),
        })
    }

    fn setup_action(&self) -> &'static str {
        GET_CALLER_IDENTITY
    }

    fn setup_answer(&self, body: &str) -> Result<(), AnswerError> {
        let account = xml_element(body, "Account").ok_or(AnswerError::Missing(
            "a GetCallerIdentity answer without <Account>",
        ))?;
        if account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()) {
            return Err(AnswerError::Invalid(format!(
                "<Account> {account:?} is not a 12-digit account id"
            )));
        }
        let _ = self.resolved_account.set(account.to_string());
        Ok(())
    }

    fn doubtful_failures(
        &self,
        resource_type: &str,
        resource_ids: &[String],
        body: &str,
    ) -> Vec<String> {
        // NB: AWS documents InternalServiceException per ARN as a fault of its own that may
        // also mean "this type cannot be tagged": retried once, then read (spec section 4).
        let Ok(answer) = serde_json::from_str::<Value>(body) else {
            return Vec::new();
        };
        let Some(failed) = answer.get("FailedResourcesMap").and_then(Value::as_object) else {
            return Vec::new();
        };
        let ids = self.ids_by_arn(resource_type, resource_ids.iter());
        let mut doubtful: Vec<String> = failed
            .iter()
            .filter(|(_, info)| {
                info.get("ErrorCode").and_then(Value::as_str) == Some("InternalServiceException")
            })
            .flat_map(|(arn, _)| ids.get(arn).cloned().unwrap_or_default())
            .filter(|id| resource_ids.contains(id))
            .collect();
        doubtful.sort();
        doubtful.dedup();
        doubtful
    }

    fn sign(&self, call: &AwsCall, key: &AccessKey) -> Result<HttpRequest, Refusal> {
        let credentials = AwsCredentials::new(
            key.id.clone(),
            key.secret(),
            key.session_token().map(str::to_string),
        );
        let sts = call.operation == GET_CALLER_IDENTITY;
        let endpoint = if sts {
            &self.sts_endpoint
        } else {
            &self.endpoint
        };
        let (url, host) = endpoint_url(endpoint).map_err(|error| {
            Refusal::new(
                RefusalReason::InvalidEndpoint,
                call.operation,
                error.to_string(),
            )
        })?;
        let target = format!("{TARGET_PREFIX}{}", call.operation);
        let (content_type, service) = if sts {
            (STS_FORM, STS_SERVICE)
        } else {
            (CONTENT_TYPE, SIGNING_SERVICE)
        };
        let all_headers = [
            ("content-type", content_type),
            ("host", host.as_str()),
            ("x-amz-target", target.as_str()),
        ];
        // NB: STS speaks the query protocol: a form body, no X-Amz-Target.
        let headers = if sts {
            &all_headers[..2]
        } else {
            &all_headers[..]
        };
        let signed = sign_headers(
            &credentials,
            &self.scope.region,
            service,
            SystemTime::now(),
            Unsigned {
                method: "POST",
                url: url.as_str(),
                headers,
                body: call.body.as_bytes(),
            },
        )
        .map_err(|error| {
            Refusal::new(
                RefusalReason::SigningFailed,
                call.operation,
                error.to_string(),
            )
        })?;
        let mut out: Vec<(HeaderName, String)> = vec![(
            HeaderName::from_static("content-type"),
            content_type.to_string(),
        )];
        if !sts {
            out.push((HeaderName::from_static("x-amz-target"), target));
        }
        for (name, value) in signed {
            if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
                out.push((name, value));
            }
        }
        Ok(HttpRequest {
            method: reqwest::Method::POST,
            url: url.to_string(),
            headers: out,
            body: call.body.clone(),
        })
    }

    fn error_of(
        &self,
        action: &'static str,
        status: u16,
        headers: &HeaderMap,
        body: &str,
    ) -> CloudError {
        if action == GET_CALLER_IDENTITY {
            return errors::from_sts_answer(action, status, headers, body);
        }
        errors::from_answer(action, status, headers, body)
    }

    fn retry_after(&self, headers: &HeaderMap) -> Option<Duration> {
        headers
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(retry_after_seconds)
    }

    fn request_id(&self, headers: &HeaderMap, _body: &str) -> Option<String> {
        errors::request_id(headers)
    }

    fn is_throttling(&self, error: &CloudError) -> bool {
        errors::is_throttling(&error.code)
    }

    fn restarts_listing(&self, error: &CloudError) -> bool {
        error.code == "PaginationTokenExpiredException"
    }

    fn document_name(&self, action: &'static str) -> String {
        format!("an AWS {action} document")
    }
}

/// The text of the first `<name>` element of an STS (XML) document, trimmed; `None` when it
/// has none. STS answers carry plain values (ids, codes, messages) in known elements.
pub(crate) fn xml_element<'a>(document: &'a str, name: &str) -> Option<&'a str> {
    let open = format!("<{name}>");
    let start = document.find(&open)? + open.len();
    let end = document[start..].find(&format!("</{name}>"))? + start;
    Some(document[start..end].trim())
}
