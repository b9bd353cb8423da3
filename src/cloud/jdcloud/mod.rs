//! JD Cloud resource-tag client (spec: `../shared/spec/jdcloud-resource-tag.md`):
//! tagResources, unTagResources and describeResources on `/v1/regions/{regionId}/...`,
//! signed with JDCLOUD2-HMAC-SHA256, retried with jittered backoff.
//!
//! - `request`: building, signing and sending one attempt;
//! - `wire`: the JSON bodies and answers;
//! - `errors`: classification of error answers and of per-resource failures.
//!
//! Unlike Alibaba Cloud's, JD Cloud's writes are not all-or-nothing: a 200 answer lists the
//! resources that failed in `failedResourcesMap` (section 3), and those alone are failures
//! ([`WriteResult::failed`]).

mod errors;
#[cfg(test)]
mod fuzz;
mod request;
mod wire;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use super::ratelimit::{RateLimiter, limited};
use super::retry::{AttemptError, retry};
use super::transport::local;
use super::{AccessKey, CallObserver, CloudError, ErrorKind, RetryPolicy, TagApi, WriteResult};
use crate::tags::{Limits, Tags, TagsByResource};

pub use errors::classify;

/// The documented endpoint (section 1). The official Python SDK's default is
/// `resourcetag.jdcloud-api.com`; set the provider's `endpoint` to use that one.
pub const DEFAULT_ENDPOINT: &str = "https://resource-tag.jdcloud-api.com";

/// The service name of the credential scope (section 1).
pub const DEFAULT_SIGNING_SERVICE: &str = "resourcetag";

/// The product lines (serviceCode values) the tag system documents (section 4). More are
/// accepted through the provider's `jdcloud.extraServiceCodes`.
pub const SERVICE_CODES: [&str; 24] = [
    "vm",
    "disk",
    "sqlserver",
    "es",
    "mongodb",
    "ip",
    "memcached",
    "redis",
    "drds",
    "rds",
    "database",
    "db_ro",
    "percona",
    "percona_ro",
    "mariadb",
    "mariadb_ro",
    "pg",
    "cdn",
    "nativecontainer",
    "pod",
    "zfs",
    "jqs",
    "kubernetesNodegroup",
    "jcq",
];

/// The region of every call on `cdn` resources, whatever the provider's region (section 1).
pub const CDN_REGION: &str = "cn-all";

const DESCRIBE: &str = "describeResources";
const TAG: &str = "tagResources";
const UNTAG: &str = "unTagResources";

/// Everything a client needs to reach JD Cloud's resource-tag service in one region.
#[derive(Clone, Debug)]
pub struct JdcloudConfig {
    /// Base URL, e.g. [`DEFAULT_ENDPOINT`].
    pub endpoint: String,
    /// Region id, e.g. `cn-north-1` (the path's and the credential scope's region).
    pub region: String,
    /// Service name of the credential scope, e.g. [`DEFAULT_SIGNING_SERVICE`].
    pub signing_service: String,
    /// Accepted serviceCode values (the binding's `resourceType`).
    pub service_codes: Vec<String>,
    /// The access key.
    pub key: AccessKey,
    /// Retry policy for retryable failures.
    pub retry: RetryPolicy,
    /// Timeout of one HTTP attempt.
    pub timeout: Duration,
    /// Limits and tag rules.
    pub limits: Limits,
}

impl JdcloudConfig {
    /// The documented service codes plus `extra`, without duplicates, in order.
    pub fn service_codes_with(extra: &[String]) -> Vec<String> {
        let mut codes: Vec<String> = SERVICE_CODES.iter().map(|code| code.to_string()).collect();
        for code in extra {
            if !codes.contains(code) {
                codes.push(code.clone());
            }
        }
        codes
    }
}

/// Client of JD Cloud's resource-tag service.
#[derive(Clone)]
pub struct JdcloudClient {
    config: JdcloudConfig,
    http: reqwest::Client,
    observer: Option<Arc<dyn CallObserver>>,
    limiter: Option<Arc<RateLimiter>>,
}

impl fmt::Debug for JdcloudClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JdcloudClient")
            .field("config", &self.config)
            .field("observed", &self.observer.is_some())
            .field(
                "rate",
                &self.limiter.as_ref().map(|limiter| limiter.configured()),
            )
            .finish_non_exhaustive()
    }
}

impl JdcloudClient {
    /// A client over a shared HTTP client.
    pub fn new(config: JdcloudConfig, http: reqwest::Client) -> Self {
        JdcloudClient {
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

    /// The region of calls on `service_code`: `cn-all` for `cdn`, else the configured one.
    pub fn region_for<'a>(&'a self, service_code: &str) -> &'a str {
        if service_code == "cdn" {
            CDN_REGION
        } else {
            &self.config.region
        }
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
        region: &str,
        target: &request::Target,
        body: &str,
        attempt: u32,
    ) -> Result<String, AttemptError> {
        let send = request::send(
            &self.http,
            &self.config,
            action,
            region,
            target,
            body,
            attempt,
        );
        let result = limited(self.limiter.as_deref(), errors::is_throttling, send).await;
        if let Some(observer) = &self.observer {
            let outcome = match &result {
                Ok(_) => "ok",
                Err(failure) => failure.error.code.as_str(),
            };
            observer.observe(self.cloud_name(), action, outcome);
        }
        result
    }

    /// One call of `action` (path `operation`) on `service_code` resources, retried by the
    /// policy (each attempt signed afresh); answers with the body of the 2xx answer.
    async fn call(
        &self,
        action: &'static str,
        operation: &str,
        service_code: &str,
        resources: usize,
        body: &str,
    ) -> Result<String, CloudError> {
        let region = self.region_for(service_code);
        let target =
            request::target(&self.config.endpoint, region, operation).map_err(|message| {
                local(
                    ErrorKind::InvalidInput,
                    action,
                    "InvalidEndpoint",
                    message,
                    0,
                )
            })?;
        let span = tracing::debug_span!("jdcloud_call", action, resources);
        let outcome = retry(&self.config.retry, action, |attempt| {
            self.attempt(action, region, &target, body, attempt)
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

    /// Refuses, before sending, a write the caller should have batched (a programming error).
    fn check_batch(
        &self,
        action: &'static str,
        resource_ids: usize,
        tags: usize,
        tag_limit: usize,
    ) -> Result<(), CloudError> {
        let resource_limit = self.config.limits.resources_per_call;
        let excess = if resource_ids > resource_limit {
            Some((resource_ids, resource_limit, "resource ids"))
        } else if tags > tag_limit {
            Some((tags, tag_limit, "tags"))
        } else {
            None
        };
        match excess {
            None => Ok(()),
            Some((count, limit, what)) => Err(local(
                ErrorKind::InvalidInput,
                action,
                "BatchTooLarge",
                format!(
                    "{count} {what} in one {action} call; tagbinder's JD Cloud limit is {limit} \
                     per call, so the caller must split the batch (nothing was sent)"
                ),
                0,
            )),
        }
    }

    /// A write (`tagResources` or `unTagResources`): one call, per-resource results.
    async fn write(
        &self,
        action: &'static str,
        service_code: &str,
        resource_ids: &[String],
        tags: &Tags,
        tag_limit: usize,
    ) -> Result<WriteResult, CloudError> {
        if resource_ids.is_empty() || tags.is_empty() {
            return Ok(WriteResult::default());
        }
        self.check_batch(action, resource_ids.len(), tags.len(), tag_limit)?;
        let body = wire::write_body(action, service_code, resource_ids, tags);
        let operation = format!("tags:{action}");
        let answer = self
            .call(action, &operation, service_code, resource_ids.len(), &body)
            .await?;
        let parsed = wire::parse_write(&answer)
            .map_err(|error| self.not_a_document(action, &answer, &error.to_string()))?;
        let mut result = WriteResult::default();
        for (id, message) in parsed.failed {
            // NB: an id the call did not carry is the server's confusion, not a result.
            if resource_ids.contains(&id) {
                result.failed.insert(id, errors::resource_error(&message));
            } else {
                tracing::debug!(resource = %id, "failedResourcesMap names a resource not in the call");
            }
        }
        if !result.failed.is_empty() {
            tracing::debug!(
                action,
                failed = result.failed.len(),
                request_id = parsed.request_id.as_deref(),
                "some resources failed"
            );
        }
        Ok(result)
    }

    fn not_a_document(&self, action: &'static str, body: &str, error: &str) -> CloudError {
        local(
            ErrorKind::InvalidInput,
            action,
            "InvalidResponse",
            format!(
                "the answer of {} is not a JD Cloud {action} document ({error}); is it a JD \
                 Cloud resource-tag endpoint? Body starts: {}",
                self.config.endpoint,
                super::transport::excerpt(body.trim())
            ),
            1,
        )
    }
}

impl TagApi for JdcloudClient {
    fn cloud_name(&self) -> &'static str {
        "jdcloud"
    }

    fn limits(&self) -> &Limits {
        &self.config.limits
    }

    fn check_resource_type(&self, resource_type: &str) -> Result<(), String> {
        if self
            .config
            .service_codes
            .iter()
            .any(|code| code == resource_type)
        {
            return Ok(());
        }
        Err(format!(
            "resource type {resource_type:?} is not a JD Cloud serviceCode this provider \
             accepts; accepted: {} (add more with the provider's jdcloud.extraServiceCodes)",
            self.config.service_codes.join(", ")
        ))
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
        // NB: the map holds each id once, so a repeated id is read once.
        let unique: Vec<String> = observed.keys().cloned().collect();
        let operation = format!("tags:{DESCRIBE}");
        for chunk in unique.chunks(self.config.limits.resources_per_call.max(1)) {
            let body = wire::describe_body(resource_type, chunk);
            let answer = self
                .call(DESCRIBE, &operation, resource_type, chunk.len(), &body)
                .await?;
            wire::merge_describe(&answer, &mut observed)
                .map_err(|error| self.not_a_document(DESCRIBE, &answer, &error.to_string()))?;
        }
        Ok(observed)
    }

    async fn tag_resources(
        &self,
        resource_type: &str,
        resource_ids: &[String],
        tags: &Tags,
    ) -> Result<WriteResult, CloudError> {
        let limit = self.config.limits.tags_per_call;
        self.write(TAG, resource_type, resource_ids, tags, limit)
            .await
    }

    async fn untag_resources(
        &self,
        resource_type: &str,
        resource_ids: &[String],
        tags: &Tags,
    ) -> Result<WriteResult, CloudError> {
        // NB: each key goes with the value the caller observed: the service requires both
        // (section 3, unTagResources), and removes the key only where the value matches.
        let limit = self.config.limits.keys_per_untag_call;
        self.write(UNTAG, resource_type, resource_ids, tags, limit)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(extra: &[&str]) -> JdcloudClient {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        JdcloudClient::new(
            JdcloudConfig {
                endpoint: DEFAULT_ENDPOINT.to_string(),
                region: "cn-north-1".to_string(),
                signing_service: DEFAULT_SIGNING_SERVICE.to_string(),
                service_codes: JdcloudConfig::service_codes_with(&extra),
                key: AccessKey::new("AK", "jd-secret-value-0"),
                retry: RetryPolicy::default(),
                timeout: Duration::from_secs(1),
                limits: Limits::jdcloud(),
            },
            reqwest::Client::new(),
        )
    }

    #[test]
    fn accepts_the_documented_service_codes_and_configured_extras() {
        let plain = client(&[]);
        for code in SERVICE_CODES {
            assert_eq!(plain.check_resource_type(code), Ok(()), "{code}");
        }
        let error = plain.check_resource_type("kafka").unwrap_err();
        assert!(error.contains("\"kafka\""), "{error}");
        assert!(error.contains("extraServiceCodes"), "{error}");
        assert!(plain.check_resource_type("VM").is_err(), "case-sensitive");
        let extended = client(&["kafka", "vm"]);
        assert_eq!(extended.check_resource_type("kafka"), Ok(()));
        assert_eq!(
            JdcloudConfig::service_codes_with(&["vm".to_string()]).len(),
            SERVICE_CODES.len(),
            "no duplicates"
        );
    }

    #[test]
    fn cdn_calls_go_to_cn_all() {
        let client = client(&[]);
        assert_eq!(client.region_for("cdn"), "cn-all");
        assert_eq!(client.region_for("vm"), "cn-north-1");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let printed = format!("{:?}", client(&[]));
        assert!(printed.contains("AK"));
        assert!(!printed.contains("jd-secret-value-0"));
    }

    #[tokio::test]
    async fn oversized_batches_are_refused_before_sending() {
        let client = client(&[]);
        let ids: Vec<String> = (0..51).map(|i| format!("i-{i}")).collect();
        let tags: Tags = [("k".to_string(), "v".to_string())].into();
        let error = client.tag_resources("vm", &ids, &tags).await.unwrap_err();
        assert_eq!(error.code, "BatchTooLarge");
        assert_eq!(error.attempts, 0);
        let tags: Tags = (0..11)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        let error = client
            .untag_resources("vm", &ids[..1], &tags)
            .await
            .unwrap_err();
        assert_eq!(error.code, "BatchTooLarge");
        assert!(error.message.contains("11 tags"), "{}", error.message);
    }
}
