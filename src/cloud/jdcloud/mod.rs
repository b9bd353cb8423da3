//! JD Cloud resource-tag client (spec: `spec/jdcloud-resource-tag.md`):
//! tagResources, unTagResources and describeResources on `/v1/regions/{regionId}/...`,
//! signed with JDCLOUD2-HMAC-SHA256: a protocol of the client chassis ([`Client`]).
//!
//! - `request`: building and signing one attempt;
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

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, RETRY_AFTER};

use super::client::{
    Admit, AnswerError, Client, HttpRequest, Operation, Protocol, Settings, failures_of_call,
};
use super::credentials::Credentials;
use super::retry::retry_after_seconds;
use super::{
    AccessKey, AddressError, CloudError, Refusal, RefusalReason, RetryPolicy, WriteOp, WriteResult,
};
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

/// The region that `service_code` resources live in, reached through a provider of `region`:
/// `cn-all` for `cdn` (global), else `region`. Both the client's calls and the resources'
/// identity (claims) use it.
pub fn region_of<'a>(region: &'a str, service_code: &str) -> &'a str {
    if service_code == "cdn" {
        CDN_REGION
    } else {
        region
    }
}

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
    /// The credentials (an access key, with its STS token if any).
    pub credentials: Credentials,
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

/// Client of JD Cloud's resource-tag service: the chassis over [`JdcloudConfig`].
pub type JdcloudClient = Client<JdcloudConfig>;

/// One JD Cloud call: where it goes and its JSON body.
#[derive(Clone, Debug)]
pub struct JdcloudCall {
    region: String,
    target: request::Target,
    body: String,
}

impl JdcloudConfig {
    /// The region of calls on `service_code`: `cn-all` for `cdn`, else the configured one.
    pub fn region_for<'a>(&'a self, service_code: &str) -> &'a str {
        region_of(&self.region, service_code)
    }

    /// The call of `action` on `service_code` resources with `body`.
    fn call(
        &self,
        action: &'static str,
        service_code: &str,
        body: String,
    ) -> Result<JdcloudCall, Refusal> {
        let region = self.region_for(service_code).to_string();
        let operation = format!("tags:{action}");
        let target = request::target(&self.endpoint, &region, &operation).map_err(|error| {
            Refusal::new(RefusalReason::InvalidEndpoint, action, error.to_string())
        })?;
        Ok(JdcloudCall {
            region,
            target,
            body,
        })
    }
}

fn header_request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-jdcloud-request-id")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

impl Protocol for JdcloudConfig {
    type Call = JdcloudCall;

    fn cloud_name(&self) -> &'static str {
        "jdcloud"
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
            Operation::List => DESCRIBE,
            Operation::Tag => TAG,
            Operation::Untag => UNTAG,
        }
    }

    fn check_resource_type(&self, resource_type: &str) -> Result<(), AddressError> {
        if self.service_codes.iter().any(|code| code == resource_type) {
            return Ok(());
        }
        Err(AddressError::ResourceType(format!(
            "resource type {resource_type:?} is not a JD Cloud serviceCode this provider \
             accepts; accepted: {} (add more with the provider's jdcloud.extraServiceCodes)",
            self.service_codes.join(", ")
        )))
    }

    fn list_call(
        &self,
        resource_type: &str,
        resource_ids: &[String],
        _token: Option<&str>,
    ) -> Result<JdcloudCall, Refusal> {
        self.call(
            DESCRIBE,
            resource_type,
            wire::describe_body(resource_type, resource_ids),
        )
    }

    fn select_call(
        &self,
        resource_type: &str,
        match_tags: &Tags,
        _token: Option<&str>,
    ) -> Result<JdcloudCall, Refusal> {
        // NB: `tagFilters` without `resourceIds` (section 3): every filter must hold.
        self.call(
            DESCRIBE,
            resource_type,
            wire::select_body(resource_type, match_tags),
        )
    }

    fn read_list(
        &self,
        resource_type: &str,
        body: &str,
        observed: &mut TagsByResource,
        admit: Admit,
    ) -> Result<Option<String>, AnswerError> {
        // NB: describeResources answers every match at once (section 3: "no pagination
        // support" in the SDK): no next page.
        wire::merge_describe(body, resource_type, observed, admit)?;
        Ok(None)
    }

    fn write_call(
        &self,
        op: WriteOp,
        resource_type: &str,
        resource_ids: &[String],
        tags: &Tags,
    ) -> Result<JdcloudCall, Refusal> {
        // NB: an untag sends each key with the value the caller observed: the service
        // requires both (section 3, unTagResources), and removes the key only where the value
        // matches.
        let action = self.action(op.into());
        let body = wire::write_body(action, resource_type, resource_ids, tags);
        self.call(action, resource_type, body)
    }

    fn read_write(
        &self,
        _op: WriteOp,
        _resource_type: &str,
        resource_ids: &[String],
        body: &str,
    ) -> Result<WriteResult, AnswerError> {
        let parsed = wire::parse_write(body)?;
        Ok(failures_of_call(
            resource_ids,
            parsed
                .failed
                .into_iter()
                .map(|(id, message)| (id, errors::resource_error(&message))),
        ))
    }

    fn sign(&self, call: &JdcloudCall, key: &AccessKey) -> Result<HttpRequest, Refusal> {
        let headers = request::sign(
            key,
            &call.region,
            &self.signing_service,
            &call.target,
            &call.body,
            &request::Freshness::now(),
        );
        Ok(HttpRequest {
            method: reqwest::Method::POST,
            url: call.target.url.clone(),
            headers: headers
                .into_iter()
                .map(|(name, value)| (HeaderName::from_static(name), value))
                .collect(),
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
        let mut error = errors::from_answer(action, status, body);
        if error.request_id.is_none() {
            error.request_id = header_request_id(headers);
        }
        error
    }

    fn retry_after(&self, headers: &HeaderMap) -> Option<Duration> {
        headers
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(retry_after_seconds)
    }

    fn request_id(&self, headers: &HeaderMap, body: &str) -> Option<String> {
        wire::request_id(body).or_else(|| header_request_id(headers))
    }

    fn is_throttling(&self, error: &CloudError) -> bool {
        errors::is_throttling(error)
    }

    fn document_name(&self, action: &'static str) -> String {
        format!("a JD Cloud {action} document")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::TagApi;

    fn client(extra: &[&str]) -> JdcloudClient {
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        JdcloudClient::new(
            JdcloudConfig {
                endpoint: DEFAULT_ENDPOINT.to_string(),
                region: "cn-north-1".to_string(),
                signing_service: DEFAULT_SIGNING_SERVICE.to_string(),
                service_codes: JdcloudConfig::service_codes_with(&extra),
                credentials: AccessKey::new("AK", "jd-secret-value-0").into(),
                retry: RetryPolicy::default(),
                timeout: Duration::from_secs(1),
                limits: Limits::jdcloud(),
            },
            // NB: the crate's own builder installs the crypto provider rustls needs; a bare
            // `reqwest::Client::new()` panics when this test runs alone.
            crate::reconcile::provider::http_client().expect("HTTP client"),
        )
    }

    #[test]
    fn accepts_the_documented_service_codes_and_configured_extras() {
        let plain = client(&[]);
        for code in SERVICE_CODES {
            assert_eq!(plain.check_resource_type(code), Ok(()), "{code}");
        }
        let error = plain.check_resource_type("kafka").unwrap_err().to_string();
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
        assert_eq!(client.protocol().region_for("cdn"), "cn-all");
        assert_eq!(client.protocol().region_for("vm"), "cn-north-1");
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
        assert_eq!(error.code(), "BatchTooLarge");
        assert_eq!(error.cloud(), None, "refused: nothing was sent");
        let tags: Tags = (0..11)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        let error = client
            .untag_resources("vm", &ids[..1], &tags)
            .await
            .unwrap_err();
        assert_eq!(error.code(), "BatchTooLarge");
        assert!(
            error.message().contains("11 tag keys"),
            "{}",
            error.message()
        );
    }
}
