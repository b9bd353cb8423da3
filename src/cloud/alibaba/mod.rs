//! Alibaba Cloud RPC-style tag client (spec: `../shared/spec/alibaba-rpc-tagging.md`):
//! TagResources, UntagResources and ListTagResources of one product (API Gateway, ECS, ...)
//! in one region, signed with the RPC HMAC-SHA1 scheme, retried with jittered backoff.
//!
//! - `presets`: API versions, endpoints and resource types of known products;
//! - `request`: building, signing and sending one attempt;
//! - `errors`: classification of error answers and transport failures;
//! - `list`: ListTagResources answers and the pagination guard.

mod errors;
#[cfg(test)]
mod fuzz;
mod list;
mod presets;
mod request;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use super::ratelimit::{RateLimiter, limited};
use super::retry::{AttemptError, retry};
use super::{AccessKey, CallObserver, CloudError, ErrorKind, RetryPolicy, TagApi, WriteResult};
use crate::tags::{Limits, Tags, TagsByResource};

pub use errors::classify;
pub use presets::{APIGATEWAY, ECS, PRESETS, ProductPreset, endpoint_for, preset};

const LIST: &str = "ListTagResources";
const TAG: &str = "TagResources";
const UNTAG: &str = "UntagResources";

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
///
/// Product tag APIs are all-or-nothing: a write either succeeds for every resource of the
/// call ([`WriteResult::default`]) or fails as a whole (`Err`).
#[derive(Clone)]
pub struct AlibabaClient {
    config: AlibabaConfig,
    http: reqwest::Client,
    observer: Option<Arc<dyn CallObserver>>,
    limiter: Option<Arc<RateLimiter>>,
}

impl fmt::Debug for AlibabaClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlibabaClient")
            .field("config", &self.config)
            .field("observed", &self.observer.is_some())
            .field(
                "rate",
                &self.limiter.as_ref().map(|limiter| limiter.configured()),
            )
            .finish_non_exhaustive()
    }
}

impl AlibabaClient {
    /// A client over a shared HTTP client.
    pub fn new(config: AlibabaConfig, http: reqwest::Client) -> Self {
        AlibabaClient {
            config,
            http,
            observer: None,
            limiter: None,
        }
    }

    /// The same client, reporting the outcome of every HTTP attempt (`ok` or the error code)
    /// to `observer`, e.g. for `tagbinder_cloud_requests_total`.
    pub fn with_observer(mut self, observer: Arc<dyn CallObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The same client, sending every HTTP attempt through `limiter` (shared by every client
    /// of one provider), which slows down when the cloud throttles.
    pub fn with_rate_limiter(mut self, limiter: Arc<RateLimiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// One attempt of `action`, through the rate limiter, reported to the observer.
    async fn attempt(
        &self,
        action: &'static str,
        operation: &[(String, String)],
        attempt: u32,
    ) -> Result<String, AttemptError> {
        let result = limited(
            self.limiter.as_deref(),
            errors::is_throttling,
            request::send(&self.http, &self.config, action, operation, attempt),
        )
        .await;
        if let Some(observer) = &self.observer {
            let outcome = match &result {
                Ok(_) => "ok",
                Err(failure) => failure.error.code.as_str(),
            };
            observer.observe(self.cloud_name(), action, outcome);
        }
        result
    }

    /// One call of `action`, retried by the policy; answers with the body of the 2xx answer.
    async fn call(
        &self,
        action: &'static str,
        resources: usize,
        operation: &[(String, String)],
    ) -> Result<String, CloudError> {
        let span = tracing::debug_span!("alibaba_call", action, resources);
        let outcome = retry(&self.config.retry, action, |attempt| {
            self.attempt(action, operation, attempt)
        })
        .instrument(span.clone())
        .await;
        match &outcome {
            Ok(_) => tracing::debug!(parent: &span, "call succeeded"),
            Err(error) => tracing::debug!(
                parent: &span,
                code = %error.code,
                kind = error.kind.as_str(),
                attempts = error.attempts,
                request_id = error.request_id.as_deref(),
                "call failed"
            ),
        }
        outcome
    }

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

    /// Lists one chunk of ids (at most `resources_per_call`), following `NextToken`.
    async fn list_chunk(
        &self,
        resource_type: &str,
        resource_ids: &[String],
        observed: &mut TagsByResource,
    ) -> Result<(), CloudError> {
        let mut pagination = list::Pagination::default();
        let mut token: Option<String> = None;
        loop {
            let mut params = self.resource_params(resource_type, resource_ids);
            if let Some(token) = token.take() {
                params.push(("NextToken".to_string(), token));
            }
            let body = self.call(LIST, resource_ids.len(), &params).await?;
            let page = list::Page::parse(&body).map_err(|error| {
                errors::local(
                    ErrorKind::InvalidInput,
                    LIST,
                    "InvalidResponse",
                    format!(
                        "the answer of {} is not a ListTagResources document ({error}); is it an \
                         Alibaba Cloud API endpoint? Body starts: {}",
                        self.config.endpoint,
                        errors::excerpt(body.trim())
                    ),
                    1,
                )
            })?;
            token = pagination.advance(page.next_token()).map_err(|error| {
                errors::local(
                    ErrorKind::Retryable,
                    LIST,
                    "PaginationLoop",
                    error.describe(),
                    1,
                )
            })?;
            page.merge_into(observed);
            if token.is_none() {
                return Ok(());
            }
        }
    }

    /// Refuses, before sending, a write the caller should have batched (a programming error).
    fn check_batch(
        &self,
        action: &'static str,
        resource_ids: usize,
        items: usize,
        item_limit: usize,
        item_name: &str,
    ) -> Result<(), CloudError> {
        let resource_limit = self.config.limits.resources_per_call;
        let excess = if resource_ids > resource_limit {
            Some((resource_ids, resource_limit, "resource ids"))
        } else if items > item_limit {
            Some((items, item_limit, item_name))
        } else {
            None
        };
        match excess {
            None => Ok(()),
            Some((count, limit, what)) => Err(errors::local(
                ErrorKind::InvalidInput,
                action,
                "BatchTooLarge",
                format!(
                    "{count} {what} in one {action} call; Alibaba Cloud accepts at most {limit} \
                     per call, so the caller must split the batch (nothing was sent)"
                ),
                0,
            )),
        }
    }
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

impl TagApi for AlibabaClient {
    fn cloud_name(&self) -> &'static str {
        "alibaba"
    }

    fn limits(&self) -> &Limits {
        &self.config.limits
    }

    fn check_resource_type(&self, resource_type: &str) -> Result<(), String> {
        match &self.config.resource_types {
            Some(accepted) if !accepted.iter().any(|known| known == resource_type) => Err(format!(
                "resource type {resource_type:?} is not one this product accepts; accepted: {}",
                accepted.join(", ")
            )),
            _ => Ok(()),
        }
    }

    async fn list_tags(
        &self,
        resource_type: &str,
        resource_ids: &[String],
    ) -> Result<TagsByResource, CloudError> {
        let mut observed: TagsByResource = resource_ids
            .iter()
            .map(|id| (id.clone(), Tags::new()))
            .collect();
        // NB: the map holds each id once, so a repeated id is listed once.
        let unique: Vec<String> = observed.keys().cloned().collect();
        for chunk in unique.chunks(self.config.limits.resources_per_call.max(1)) {
            self.list_chunk(resource_type, chunk, &mut observed).await?;
        }
        Ok(observed)
    }

    async fn tag_resources(
        &self,
        resource_type: &str,
        resource_ids: &[String],
        tags: &Tags,
    ) -> Result<WriteResult, CloudError> {
        if resource_ids.is_empty() || tags.is_empty() {
            return Ok(WriteResult::default());
        }
        let limit = self.config.limits.tags_per_call;
        self.check_batch(TAG, resource_ids.len(), tags.len(), limit, "tags")?;
        let mut params = self.resource_params(resource_type, resource_ids);
        for (index, (key, value)) in tags.iter().enumerate() {
            params.push((format!("Tag.{}.Key", index + 1), key.clone()));
            params.push((format!("Tag.{}.Value", index + 1), value.clone()));
        }
        self.call(TAG, resource_ids.len(), &params).await?;
        Ok(WriteResult::default())
    }

    async fn untag_resources(
        &self,
        resource_type: &str,
        resource_ids: &[String],
        tags: &Tags,
    ) -> Result<WriteResult, CloudError> {
        if resource_ids.is_empty() || tags.is_empty() {
            return Ok(WriteResult::default());
        }
        let limit = self.config.limits.keys_per_untag_call;
        self.check_batch(UNTAG, resource_ids.len(), tags.len(), limit, "tag keys")?;
        // NB: keys only, and never `All=true`, which would remove foreign tags too.
        let mut params = self.resource_params(resource_type, resource_ids);
        params.extend(indexed("TagKey", tags.keys()));
        self.call(UNTAG, resource_ids.len(), &params).await?;
        Ok(WriteResult::default())
    }
}
