//! Alibaba Cloud's Tag service (OpenAPI `Tag` 2018-08-28; spec: alibaba-rpc-tagging.md
//! sections 1, 5 and 6): the resources of every product, addressed by ARN, through one API.
//! Unlike the product tag APIs, its writes report per resource (`FailedResources`): the
//! other resources of the call are written, as with JD Cloud.

mod arn;
pub(super) mod wire;

use std::time::Duration;

use reqwest::header::HeaderMap;

use super::{AlibabaConfig, RpcCall, indexed};
use crate::cloud::client::{
    Admit, AnswerError, Client, HttpRequest, Operation, Protocol, Settings,
};
use crate::cloud::{
    AccessKey, AddressError, CloudError, Refusal, RefusalReason, WriteOp, WriteResult,
};
use crate::tags::{Tags, TagsByResource};

pub use arn::{
    ANY_ACCOUNT, ArnType, ParsedArn, arn, check_account_id, parse_arn, parse_resource_type,
};

/// `spec.alibaba.product` of the Tag service.
pub const TAG_SERVICE_PRODUCT: &str = "tag";

/// The Tag service's API version.
pub const TAG_SERVICE_API_VERSION: &str = "2018-08-28";

/// Largest `PageSize` of ListTagResources (spec section 5): the fewest pages.
const PAGE_SIZE: &str = "1000";

/// The public endpoint of the Tag service in a region: `https://tag.{region}.aliyuncs.com`.
/// (The official SDK maps a few regions elsewhere, e.g. `us-west-1` to `tag.us-east-1`; set
/// the provider's `endpoint` for those.)
pub fn tag_service_endpoint(region: &str) -> String {
    format!("https://tag.{region}.aliyuncs.com")
}

/// `Category`, `PageSize` and `NextToken`: the paging and category of every listing.
fn list_params(token: Option<&str>) -> Vec<(String, String)> {
    // NB: system tags are the cloud's own; reading only custom ones keeps them out of every
    // decision (spec section 5: Category Custom|System|All, default All).
    let mut params = vec![
        ("Category".to_string(), "Custom".to_string()),
        ("PageSize".to_string(), PAGE_SIZE.to_string()),
    ];
    if let Some(token) = token {
        params.push(("NextToken".to_string(), token.to_string()));
    }
    params
}

/// `Tags`: one JSON object as a string (spec section 5), of TagResources and of the filter of
/// ListTagResources; a map of strings always serialises.
fn tags_json(action: &'static str, tags: &Tags) -> Result<String, Refusal> {
    serde_json::to_string(tags)
        .map_err(|error| Refusal::new(RefusalReason::InvalidTags, action, error.to_string()))
}

/// The Tag service in one region of one account.
#[derive(Clone, Debug)]
pub struct TagService {
    /// Endpoint, version, region, signature, key, retry, limits.
    pub config: AlibabaConfig,
    /// The account id in the ARNs: `*` (the caller's account) or the numeric UID.
    pub account_id: String,
}

/// Client of the Tag service.
pub type TagServiceClient = Client<TagService>;

impl TagService {
    /// `RegionId` and `ResourceARN.N`: the parameters of every operation.
    fn resource_params(
        &self,
        action: &'static str,
        resource_type: &str,
        resource_ids: &[String],
    ) -> Result<Vec<(String, String)>, Refusal> {
        let kind = checked_kind(action, resource_type)?;
        let arns: Vec<String> = resource_ids
            .iter()
            .map(|id| arn(&kind, &self.config.region, &self.account_id, id))
            .collect();
        let mut params = vec![("RegionId".to_string(), self.config.region.clone())];
        params.extend(indexed("ResourceARN", &arns));
        Ok(params)
    }

    fn kind<'a>(&self, resource_type: &'a str) -> Result<ArnType<'a>, AnswerError> {
        parse_resource_type(resource_type).map_err(|error| AnswerError::Invalid(error.to_string()))
    }
}

/// The resource type's ARN kind, or the `InvalidResourceType` refusal of `action`.
fn checked_kind<'a>(action: &'static str, resource_type: &'a str) -> Result<ArnType<'a>, Refusal> {
    parse_resource_type(resource_type).map_err(|error| {
        Refusal::new(
            RefusalReason::InvalidResourceType,
            action,
            error.to_string(),
        )
    })
}

impl Protocol for TagService {
    type Call = RpcCall;

    fn cloud_name(&self) -> &'static str {
        "alibaba"
    }

    fn settings(&self) -> Settings<'_> {
        self.config.settings()
    }

    fn action(&self, operation: Operation) -> &'static str {
        super::action(operation)
    }

    fn check_resource_type(&self, resource_type: &str) -> Result<(), AddressError> {
        parse_resource_type(resource_type)
            .map(|_| ())
            .map_err(|error| AddressError::ResourceType(error.to_string()))
    }

    fn list_call(
        &self,
        resource_type: &str,
        resource_ids: &[String],
        token: Option<&str>,
    ) -> Result<RpcCall, Refusal> {
        let mut params = self.resource_params(super::LIST, resource_type, resource_ids)?;
        params.extend(list_params(token));
        Ok(RpcCall {
            action: super::LIST,
            params,
        })
    }

    fn select_call(
        &self,
        resource_type: &str,
        match_tags: &Tags,
        token: Option<&str>,
    ) -> Result<RpcCall, Refusal> {
        let action = super::LIST;
        // NB: the type is checked before sending; the answer is filtered by it.
        checked_kind(action, resource_type)?;
        // NB: no `ResourceARN.N`: the `Tags` filter alone (a JSON object, 1..10 pairs, every
        // pair must be on the resource). The official SDK's ListTagResourcesRequest has no
        // parameter that restricts the answer to one product or type (its fields: RegionId,
        // ResourceARN, Tags, Category, PageSize, NextToken), so the answer may list resources
        // of every product of the region; `read_list` keeps those of the binding's kind.
        let mut params = vec![
            ("RegionId".to_string(), self.config.region.clone()),
            ("Tags".to_string(), tags_json(action, match_tags)?),
        ];
        params.extend(list_params(token));
        Ok(RpcCall { action, params })
    }

    fn read_list(
        &self,
        resource_type: &str,
        body: &str,
        observed: &mut TagsByResource,
        admit: Admit,
    ) -> Result<Option<String>, AnswerError> {
        wire::read_list(&self.kind(resource_type)?, body, observed, admit)
    }

    fn write_call(
        &self,
        op: WriteOp,
        resource_type: &str,
        resource_ids: &[String],
        tags: &Tags,
    ) -> Result<RpcCall, Refusal> {
        let action = super::action(op.into());
        let mut params = self.resource_params(action, resource_type, resource_ids)?;
        match op {
            WriteOp::Tag => params.push(("Tags".to_string(), tags_json(action, tags)?)),
            WriteOp::Untag => params.extend(indexed("TagKey", tags.keys())),
        }
        Ok(RpcCall { action, params })
    }

    fn read_write(
        &self,
        _op: WriteOp,
        resource_type: &str,
        resource_ids: &[String],
        body: &str,
    ) -> Result<WriteResult, AnswerError> {
        wire::read_write(&self.kind(resource_type)?, resource_ids, body)
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
        super::retry_after(headers)
    }

    fn request_id(&self, _headers: &HeaderMap, body: &str) -> Option<String> {
        super::request_id(body)
    }

    fn is_throttling(&self, error: &CloudError) -> bool {
        super::errors::is_throttling(error)
    }

    fn document_name(&self, action: &'static str) -> String {
        format!("a Tag service {action} document")
    }
}
