//! Alibaba Cloud RPC-style tag client. Placeholder, replaced by the client.

use std::time::Duration;

use super::{AccessKey, CloudError, RetryPolicy, TagApi, WriteResult};
use crate::tags::{Limits, Tags, TagsByResource};

/// A product preset: API version and endpoint pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductPreset {
    /// Product name as users write it in `spec.alibaba.product`.
    pub product: &'static str,
    /// API version, e.g. `2016-07-14`.
    pub api_version: &'static str,
    /// Endpoint host pattern with `{region}`.
    pub endpoint_pattern: &'static str,
    /// Accepted `ResourceType` values.
    pub resource_types: &'static [&'static str],
}

/// The preset of a product, by name.
pub fn preset(product: &str) -> Option<&'static ProductPreset> {
    let _ = product;
    None
}

/// Everything a client needs to reach one product in one region.
#[derive(Clone, Debug)]
pub struct AlibabaConfig {
    /// Base URL, e.g. `https://apigateway.cn-hangzhou.aliyuncs.com`.
    pub endpoint: String,
    /// API version, e.g. `2016-07-14`.
    pub api_version: String,
    /// Region id, sent as `RegionId`.
    pub region: String,
    /// Accepted resource types; `None` accepts any.
    pub resource_types: Option<Vec<String>>,
    /// The access key.
    pub key: AccessKey,
    /// Retry policy for retryable failures.
    pub retry: RetryPolicy,
    /// Timeout of one HTTP attempt.
    pub timeout: Duration,
    /// Limits and tag rules.
    pub limits: Limits,
}

/// Client of one Alibaba Cloud product's tag API.
#[derive(Clone, Debug)]
pub struct AlibabaClient {
    config: AlibabaConfig,
    http: reqwest::Client,
}

impl AlibabaClient {
    /// A client over a shared HTTP client.
    pub fn new(config: AlibabaConfig, http: reqwest::Client) -> Self {
        AlibabaClient { config, http }
    }
}

impl TagApi for AlibabaClient {
    fn cloud_name(&self) -> &'static str {
        "alibaba"
    }
    fn limits(&self) -> &Limits {
        &self.config.limits
    }
    fn check_resource_type(&self, _resource_type: &str) -> Result<(), String> {
        let _ = &self.http;
        Ok(())
    }
    async fn list_tags(&self, _t: &str, _ids: &[String]) -> Result<TagsByResource, CloudError> {
        Ok(TagsByResource::new())
    }
    async fn tag_resources(&self, _t: &str, _ids: &[String], _tags: &Tags) -> Result<WriteResult, CloudError> {
        Ok(WriteResult::default())
    }
    async fn untag_resources(&self, _t: &str, _ids: &[String], _tags: &Tags) -> Result<WriteResult, CloudError> {
        Ok(WriteResult::default())
    }
}
