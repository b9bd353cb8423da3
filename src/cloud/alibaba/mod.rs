//! Alibaba Cloud RPC-style tag APIs (spec: `spec/alibaba-rpc-tagging.md`), as
//! protocols of the client chassis ([`crate::cloud::client`]):
//! - [`ProductApi`]: a product's own TagResources, UntagResources and ListTagResources (API
//!   Gateway, ECS, ...), resources addressed by `ResourceType` + `ResourceId.N`,
//!   all-or-nothing writes;
//! - [`TagService`]: the Tag service (2018-08-28), resources of any product addressed by ARN,
//!   per-resource results.
//!
//! Both sign with the RPC HMAC-SHA1 scheme (V1) or ACS3-HMAC-SHA256 (V3), per
//! [`SignatureVersion`].
//!
//! - `presets`: API versions, endpoints and resource types of known products;
//! - `request`: building and signing one attempt;
//! - `errors`: classification of error answers;
//! - `list`: product ListTagResources answers;
//! - `tag_service`: the Tag service's ARNs, requests and answers;
//! - [`chain`]: the credentials chain (RRSA, the ECS instance RAM role).

pub mod chain;
pub(crate) mod errors;
#[cfg(test)]
mod fuzz;
mod list;
mod presets;
mod request;
mod tag_service;
#[cfg(test)]
mod tests;

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde::Deserialize;

use super::client::{Admit, AnswerError, Client, HttpRequest, Operation, Settings};
use super::credentials::Credentials;
use super::retry::retry_after_seconds;
use super::{AccessKey, AddressError, CloudError, Refusal, RetryPolicy, WriteOp, WriteResult};
use crate::tags::{Limits, Tags, TagsByResource};

pub use errors::classify;
pub use presets::{APIGATEWAY, ECS, PRESETS, ProductPreset, endpoint_for, preset};
pub use tag_service::{
    ANY_ACCOUNT, ArnType, ParsedArn, TAG_SERVICE_API_VERSION, TAG_SERVICE_PRODUCT, TagService,
    TagServiceClient, arn, check_account_id, parse_arn, parse_resource_type, tag_service_endpoint,
};

const LIST: &str = "ListTagResources";
const TAG: &str = "TagResources";
const UNTAG: &str = "UntagResources";
/// Throttled answers may say, in seconds, when to come back.
const RETRY_AFTER_HEADER: &str = "x-acs-retry-after";

/// Which signature an Alibaba client sends (spec sections 3 and 4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SignatureVersion {
    /// The RPC scheme, HMAC-SHA1, `SignatureVersion=1.0`: accepted by every RPC API.
    #[default]
    V1,
    /// ACS3-HMAC-SHA256: what the current official SDKs send.
    V3,
}

/// Everything a client needs to reach one Alibaba Cloud RPC API in one region.
#[derive(Clone, Debug)]
pub struct AlibabaConfig {
    /// Base URL, e.g. `https://apigateway.cn-hangzhou.aliyuncs.com`.
    pub endpoint: String,
    /// API version, e.g. `2016-07-14`.
    pub api_version: String,
    /// Region id, sent as `RegionId`.
    pub region: String,
    /// The signature to send.
    pub signature: SignatureVersion,
    /// The credentials: an access key, or temporary credentials renewed before they expire.
    pub credentials: Credentials,
    /// Retry policy for retryable failures.
    pub retry: RetryPolicy,
    /// Timeout of one HTTP attempt.
    pub timeout: Duration,
    /// Limits and tag rules.
    pub limits: Limits,
}

/// One RPC call: the action and its operation parameters.
#[derive(Clone, Debug)]
pub struct RpcCall {
    action: &'static str,
    params: Vec<(String, String)>,
}

impl AlibabaConfig {
    fn settings(&self) -> Settings<'_> {
        Settings {
            endpoint: &self.endpoint,
            retry: &self.retry,
            timeout: self.timeout,
            limits: &self.limits,
            credentials: &self.credentials,
        }
    }

    fn sign(&self, call: &RpcCall, key: &AccessKey) -> Result<HttpRequest, Refusal> {
        request::signed_request(
            self.signature,
            key,
            &request::Unsigned {
                endpoint: &self.endpoint,
                api_version: &self.api_version,
                action: call.action,
                operation: &call.params,
            },
            &request::Freshness::now(),
        )
    }

    fn error_of(&self, action: &'static str, status: u16, body: &str) -> CloudError {
        errors::from_answer(action, status, body)
    }

    fn document_name(&self, action: &'static str) -> String {
        format!("an Alibaba Cloud {action} document")
    }
}

/// The action of an operation: the same three names on every Alibaba tag API.
fn action(operation: Operation) -> &'static str {
    match operation {
        Operation::List => LIST,
        Operation::Tag => TAG,
        Operation::Untag => UNTAG,
    }
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(retry_after_seconds)
}

fn request_id(body: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Envelope {
        #[serde(rename = "RequestId")]
        request_id: Option<String>,
    }
    serde_json::from_str::<Envelope>(body).ok()?.request_id
}

/// `Name.1=v1`, `Name.2=v2`, ...: the flattening of a repeated parameter.
fn indexed<'a>(
    name: &'a str,
    values: impl IntoIterator<Item = &'a String> + 'a,
) -> impl Iterator<Item = (String, String)> + 'a {
    values
        .into_iter()
        .enumerate()
        .map(move |(index, value)| (format!("{name}.{}", index + 1), value.clone()))
}

/// `Tag.N.Key=k`, `Tag.N.Value=v` for each tag, N from 1: the tags of TagResources and the
/// filter of ListTagResources.
fn tag_pairs(tags: &Tags) -> impl Iterator<Item = (String, String)> + '_ {
    tags.iter().enumerate().flat_map(|(index, (key, value))| {
        [
            (format!("Tag.{}.Key", index + 1), key.clone()),
            (format!("Tag.{}.Value", index + 1), value.clone()),
        ]
    })
}

/// A product's own tag API (API Gateway, ECS, ...): `ResourceType` + `ResourceId.N`.
///
/// Product tag APIs are all-or-nothing: a write either succeeds for every resource of the
/// call ([`WriteResult::default`]) or fails as a whole (`Err`).
#[derive(Clone, Debug)]
pub struct ProductApi {
    /// Endpoint, version, region, signature, key, retry, limits.
    pub config: AlibabaConfig,
    /// Accepted resource types; `None` accepts any.
    pub resource_types: Option<Vec<String>>,
}

/// Client of one Alibaba Cloud product's tag API.
pub type AlibabaClient = Client<ProductApi>;

impl ProductApi {
    /// `RegionId`, `ResourceType` and `ResourceId.N`: the parameters of every operation.
    fn resource_params(
        &self,
        resource_type: &str,
        resource_ids: &[String],
    ) -> Vec<(String, String)> {
        let mut params = vec![
            ("RegionId".to_string(), self.config.region.clone()),
            ("ResourceType".to_string(), resource_type.to_string()),
        ];
        params.extend(indexed("ResourceId", resource_ids));
        params
    }
}

impl super::client::Protocol for ProductApi {
    type Call = RpcCall;

    fn cloud_name(&self) -> &'static str {
        "alibaba"
    }

    fn settings(&self) -> Settings<'_> {
        self.config.settings()
    }

    fn action(&self, operation: Operation) -> &'static str {
        action(operation)
    }

    fn check_resource_type(&self, resource_type: &str) -> Result<(), AddressError> {
        match &self.resource_types {
            Some(accepted) if !accepted.iter().any(|known| known == resource_type) => {
                Err(AddressError::ResourceType(format!(
                    "resource type {resource_type:?} is not one this product accepts; \
                     accepted: {}",
                    accepted.join(", ")
                )))
            }
            _ => Ok(()),
        }
    }

    fn list_call(
        &self,
        resource_type: &str,
        resource_ids: &[String],
        token: Option<&str>,
    ) -> Result<RpcCall, Refusal> {
        let mut params = self.resource_params(resource_type, resource_ids);
        if let Some(token) = token {
            params.push(("NextToken".to_string(), token.to_string()));
        }
        Ok(RpcCall {
            action: LIST,
            params,
        })
    }

    fn select_call(
        &self,
        resource_type: &str,
        match_tags: &Tags,
        token: Option<&str>,
    ) -> Result<RpcCall, Refusal> {
        // NB: `Tag.N` without `ResourceId.N` lists by tag alone (spec section 5,
        // ListTagResources: at least one of the two); N = 1..20, every pair must hold.
        let mut params = self.resource_params(resource_type, &[]);
        params.extend(tag_pairs(match_tags));
        if let Some(token) = token {
            params.push(("NextToken".to_string(), token.to_string()));
        }
        Ok(RpcCall {
            action: LIST,
            params,
        })
    }

    fn read_list(
        &self,
        _resource_type: &str,
        body: &str,
        observed: &mut TagsByResource,
        admit: Admit,
    ) -> Result<Option<String>, AnswerError> {
        // NB: the answer's `ResourceType` is informational (spec section 5): every entry of
        // an answer to `ResourceType=<the binding's>` is of that type.
        let page = list::Page::parse(body)?;
        let next = page.next_token().map(str::to_string);
        page.merge_into(observed, admit);
        Ok(next)
    }

    fn write_call(
        &self,
        op: WriteOp,
        resource_type: &str,
        resource_ids: &[String],
        tags: &Tags,
    ) -> Result<RpcCall, Refusal> {
        let mut params = self.resource_params(resource_type, resource_ids);
        let action = match op {
            WriteOp::Tag => {
                params.extend(tag_pairs(tags));
                TAG
            }
            WriteOp::Untag => {
                // NB: keys only, and never `All=true`, which would remove foreign tags too.
                params.extend(indexed("TagKey", tags.keys()));
                UNTAG
            }
        };
        Ok(RpcCall { action, params })
    }

    fn read_write(
        &self,
        _op: WriteOp,
        _resource_type: &str,
        _resource_ids: &[String],
        _body: &str,
    ) -> Result<WriteResult, AnswerError> {
        // NB: all-or-nothing (spec section 5): a 2xx answer means every resource was written.
        Ok(WriteResult::default())
    }

    fn sign(&self, call: &RpcCall, key: &AccessKey) -> Result<HttpRequest, Refusal> {
        self.config.sign(call, key)
    }

    fn error_of(
        &self,
        action: &'static str,
        status: u16,
        _headers: &HeaderMap,
        body: &str,
    ) -> CloudError {
        self.config.error_of(action, status, body)
    }

    fn retry_after(&self, headers: &HeaderMap) -> Option<Duration> {
        retry_after(headers)
    }

    fn request_id(&self, _headers: &HeaderMap, body: &str) -> Option<String> {
        request_id(body)
    }

    fn is_throttling(&self, error: &CloudError) -> bool {
        errors::is_throttling(error)
    }

    fn document_name(&self, action: &'static str) -> String {
        self.config.document_name(action)
    }
}
