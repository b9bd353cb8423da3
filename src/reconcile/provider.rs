//! Turning a TagProvider into a client of its cloud. Both hosts (controller and CLI) use it;
//! credentials are resolved by the host (a Secret in the cluster or in the files, or the
//! environment) and handed in.

use std::sync::Arc;
use std::time::Duration;

use crate::api::{Cloud, TagProviderSpec};
use crate::cloud::alibaba::{self, AlibabaClient, AlibabaConfig};
use crate::cloud::jdcloud::{self, JdcloudClient, JdcloudConfig};
use crate::cloud::{
    AccessKey, CallObserver, CloudError, Rate, RateLimiter, RetryPolicy, TagApi, WriteResult,
};
use crate::tags::{Limits, Tags, TagsByResource};

/// Timeout of one HTTP attempt to a cloud.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of whichever cloud a provider names.
#[derive(Clone, Debug)]
pub enum ProviderClient {
    /// Alibaba Cloud.
    Alibaba(AlibabaClient),
    /// JD Cloud.
    Jdcloud(JdcloudClient),
}

/// A provider spec that cannot be turned into a client.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct ProviderSpecError {
    /// The offending field, e.g. `spec.alibaba.product`.
    pub field: String,
    /// What is wrong and what is accepted.
    pub rule: String,
}

fn spec_error(field: &str, rule: impl Into<String>) -> ProviderSpecError {
    ProviderSpecError {
        field: field.to_string(),
        rule: rule.into(),
    }
}

/// How the host wants clients built.
#[derive(Clone)]
pub struct ClientOptions {
    /// Shared HTTP client (connection pool, TLS).
    pub http: reqwest::Client,
    /// Endpoint for every provider (the embedded cloud); overrides `spec.endpoint`.
    pub endpoint_override: Option<String>,
    /// Retry policy of every client.
    pub retry: RetryPolicy,
    /// Sees every HTTP attempt (metrics).
    pub observer: Option<Arc<dyn CallObserver>>,
    /// Whether a provider without `spec.rateLimit` gets its cloud's default rate limit
    /// ([`default_rate`]); `false` leaves it unlimited (benchmarks of the raw call count).
    pub default_rate_limit: bool,
}

/// The rate limit of a provider without `spec.rateLimit`.
///
/// Neither cloud publishes a per-user limit for its tag APIs. Alibaba Cloud's OpenAPI flow
/// control commonly allows tens of calls per second per user and action; JD Cloud's gateway
/// throttles with 429 at a level it does not document. The defaults stay well below both and
/// adapt downwards when the cloud throttles anyway (see [`crate::cloud::ratelimit`]).
pub fn default_rate(cloud: Cloud) -> Rate {
    match cloud {
        Cloud::Alibaba => Rate::ALIBABA_DEFAULT,
        Cloud::Jdcloud => Rate::JDCLOUD_DEFAULT,
    }
}

/// The rate limiter of a provider: `spec.rateLimit`, or the cloud's default when the host
/// wants one.
pub fn rate_limiter(spec: &TagProviderSpec, options: &ClientOptions) -> Option<Arc<RateLimiter>> {
    let rate = match &spec.rate_limit {
        Some(limit) => Rate {
            per_second: limit.requests_per_second,
            burst: limit.burst,
        },
        None if options.default_rate_limit => default_rate(spec.cloud),
        None => return None,
    };
    Some(Arc::new(RateLimiter::new(rate)))
}

/// Builds the client of one provider.
pub fn client_for(
    spec: &TagProviderSpec,
    key: AccessKey,
    options: &ClientOptions,
) -> Result<ProviderClient, ProviderSpecError> {
    match spec.cloud {
        Cloud::Alibaba => alibaba_client(spec, key, options).map(ProviderClient::Alibaba),
        Cloud::Jdcloud => jdcloud_client(spec, key, options).map(ProviderClient::Jdcloud),
    }
}

fn jdcloud_client(
    spec: &TagProviderSpec,
    key: AccessKey,
    options: &ClientOptions,
) -> Result<JdcloudClient, ProviderSpecError> {
    let settings = spec.jdcloud.clone().unwrap_or_default();
    let signing_service = settings
        .signing_service
        .unwrap_or_else(|| jdcloud::DEFAULT_SIGNING_SERVICE.to_string());
    if signing_service.is_empty() {
        return Err(spec_error(
            "spec.jdcloud.signingService",
            "must not be empty (default resourcetag)",
        ));
    }
    let endpoint = options
        .endpoint_override
        .clone()
        .or_else(|| spec.endpoint.clone())
        .unwrap_or_else(|| jdcloud::DEFAULT_ENDPOINT.to_string());
    let config = JdcloudConfig {
        endpoint,
        region: spec.region.clone(),
        signing_service,
        service_codes: JdcloudConfig::service_codes_with(&settings.extra_service_codes),
        key,
        retry: options.retry.clone(),
        timeout: CALL_TIMEOUT,
        limits: Limits::jdcloud(),
    };
    let mut client = JdcloudClient::new(config, options.http.clone());
    if let Some(limiter) = rate_limiter(spec, options) {
        client = client.with_rate_limiter(limiter);
    }
    Ok(match &options.observer {
        Some(observer) => client.with_observer(observer.clone()),
        None => client,
    })
}

fn alibaba_client(
    spec: &TagProviderSpec,
    key: AccessKey,
    options: &ClientOptions,
) -> Result<AlibabaClient, ProviderSpecError> {
    let settings = spec.alibaba.clone().unwrap_or_default();
    let preset = match settings.product.as_deref() {
        Some(product) => Some(alibaba::preset(product).ok_or_else(|| {
            spec_error(
                "spec.alibaba.product",
                format!(
                    "unknown product {product:?}; known: {}",
                    alibaba::PRESETS
                        .iter()
                        .map(|p| p.product)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?),
        None => None,
    };
    let api_version = settings
        .api_version
        .clone()
        .or_else(|| preset.map(|p| p.api_version.to_string()))
        .ok_or_else(|| spec_error("spec.alibaba", "set product (a preset) or apiVersion"))?;
    let endpoint = options
        .endpoint_override
        .clone()
        .or_else(|| spec.endpoint.clone())
        .or_else(|| preset.map(|p| p.endpoint(&spec.region)))
        .ok_or_else(|| {
            spec_error(
                "spec.endpoint",
                "required when spec.alibaba.product is not set",
            )
        })?;
    let config = AlibabaConfig {
        endpoint,
        api_version,
        region: spec.region.clone(),
        resource_types: preset.map(|p| p.resource_types.iter().map(|t| t.to_string()).collect()),
        key,
        retry: options.retry.clone(),
        timeout: CALL_TIMEOUT,
        limits: Limits::alibaba(),
    };
    let mut client = AlibabaClient::new(config, options.http.clone());
    if let Some(limiter) = rate_limiter(spec, options) {
        client = client.with_rate_limiter(limiter);
    }
    Ok(match &options.observer {
        Some(observer) => client.with_observer(observer.clone()),
        None => client,
    })
}

impl TagApi for ProviderClient {
    fn cloud_name(&self) -> &'static str {
        match self {
            ProviderClient::Alibaba(client) => client.cloud_name(),
            ProviderClient::Jdcloud(client) => client.cloud_name(),
        }
    }

    fn limits(&self) -> &Limits {
        match self {
            ProviderClient::Alibaba(client) => client.limits(),
            ProviderClient::Jdcloud(client) => client.limits(),
        }
    }

    fn check_resource_type(&self, resource_type: &str) -> Result<(), String> {
        match self {
            ProviderClient::Alibaba(client) => client.check_resource_type(resource_type),
            ProviderClient::Jdcloud(client) => client.check_resource_type(resource_type),
        }
    }

    async fn list_tags(
        &self,
        resource_type: &str,
        resource_ids: &[String],
    ) -> Result<TagsByResource, CloudError> {
        match self {
            ProviderClient::Alibaba(client) => client.list_tags(resource_type, resource_ids).await,
            ProviderClient::Jdcloud(client) => client.list_tags(resource_type, resource_ids).await,
        }
    }

    async fn tag_resources(
        &self,
        resource_type: &str,
        resource_ids: &[String],
        tags: &Tags,
    ) -> Result<WriteResult, CloudError> {
        match self {
            ProviderClient::Alibaba(client) => {
                client
                    .tag_resources(resource_type, resource_ids, tags)
                    .await
            }
            ProviderClient::Jdcloud(client) => {
                client
                    .tag_resources(resource_type, resource_ids, tags)
                    .await
            }
        }
    }

    async fn untag_resources(
        &self,
        resource_type: &str,
        resource_ids: &[String],
        tags: &Tags,
    ) -> Result<WriteResult, CloudError> {
        match self {
            ProviderClient::Alibaba(client) => {
                client
                    .untag_resources(resource_type, resource_ids, tags)
                    .await
            }
            ProviderClient::Jdcloud(client) => {
                client
                    .untag_resources(resource_type, resource_ids, tags)
                    .await
            }
        }
    }
}

/// A shared HTTP client for cloud calls (rustls with the ring provider).
pub fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    // NB: installing the process-wide crypto provider fails only when one is installed
    // already, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("tagbinder/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(10))
        .build()
}
