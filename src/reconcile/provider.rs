//! Turning a TagProvider into a client of its cloud. Both hosts (controller and CLI) use it;
//! credentials are resolved by the host (a Secret in the cluster or in the files, or the
//! environment) and handed in.

use std::sync::Arc;
use std::time::Duration;

use crate::api::{AlibabaSignatureVersion, Cloud, TagProviderSpec};
use crate::cloud::alibaba::{
    self, AlibabaClient, AlibabaConfig, ProductApi, SignatureVersion, TagService, TagServiceClient,
};
use crate::cloud::aws::{self, AwsClient, AwsConfig};
use crate::cloud::credentials::Credentials;
use crate::cloud::jdcloud::{self, JdcloudClient, JdcloudConfig};
use crate::cloud::{
    AddressError, CallError, CallObserver, Client, Protocol, Rate, RateLimiter, RetryPolicy,
    TagApi, WriteResult,
};
use crate::tags::{Limits, Tags, TagsByResource};

/// Timeout of one HTTP attempt to a cloud.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A client of whichever cloud (and API) a provider names.
#[derive(Clone, Debug)]
pub enum ProviderClient {
    /// An Alibaba Cloud product's own tag API (API Gateway, ECS, ...).
    Alibaba(AlibabaClient),
    /// Alibaba Cloud's Tag service (`alibaba.product: tag`).
    TagService(TagServiceClient),
    /// JD Cloud.
    Jdcloud(JdcloudClient),
    /// AWS's Resource Groups Tagging API.
    Aws(AwsClient),
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
        // NB: the provider's rate of AWS is its slowest action's; each action has its own
        // limiter ([`aws_client`]).
        Cloud::Aws => Rate::AWS_WRITE,
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
    credentials: Credentials,
    options: &ClientOptions,
) -> Result<ProviderClient, ProviderSpecError> {
    match spec.cloud {
        Cloud::Alibaba => alibaba_client(spec, credentials, options),
        Cloud::Aws => aws_client(spec, credentials, options),
        Cloud::Jdcloud => jdcloud_config(spec, credentials, options).map(|config| {
            ProviderClient::Jdcloud(with_options(
                Client::new(config, options.http.clone()),
                spec,
                options,
            ))
        }),
    }
}

/// The chassis' options of the host: the provider's rate limiter and the call observer.
fn with_options<P: Protocol>(
    mut client: Client<P>,
    spec: &TagProviderSpec,
    options: &ClientOptions,
) -> Client<P> {
    if let Some(limiter) = rate_limiter(spec, options) {
        client = client.with_rate_limiter(limiter);
    }
    match &options.observer {
        Some(observer) => client.with_observer(observer.clone()),
        None => client,
    }
}

/// AWS: the tagging API's client, with a limiter per action at AWS's fixed rates
/// (GetResources 15/s, TagResources and UntagResources 5/s each), which `spec.rateLimit` may
/// lower and never raise.
fn aws_client(
    spec: &TagProviderSpec,
    credentials: Credentials,
    options: &ClientOptions,
) -> Result<ProviderClient, ProviderSpecError> {
    let settings = spec.aws.clone().unwrap_or_default();
    let region_partition = aws::partition_of(&spec.region);
    let partition = settings
        .partition
        .clone()
        .unwrap_or_else(|| region_partition.to_string());
    if partition != region_partition {
        return Err(spec_error(
            "spec.aws.partition",
            format!(
                "{partition:?} is not the partition of region {:?} ({region_partition})",
                spec.region
            ),
        ));
    }
    if let Some(account) = &settings.account_id
        && (account.len() != 12 || !account.chars().all(|c| c.is_ascii_digit()))
    {
        return Err(spec_error(
            "spec.aws.accountId",
            format!("{account:?} is not a 12-digit AWS account id"),
        ));
    }
    let endpoint = options
        .endpoint_override
        .clone()
        .or_else(|| spec.endpoint.clone())
        .unwrap_or_else(|| aws::endpoint_of(&spec.region));
    // NB: the provider's one endpoint serves every AWS API tagbinder calls (STS included).
    let sts_endpoint = options
        .endpoint_override
        .clone()
        .or_else(|| spec.endpoint.clone())
        .unwrap_or_else(|| aws::sts_endpoint_of(&spec.region));
    let config = AwsConfig {
        sts_endpoint,
        resolved_account: Default::default(),
        endpoint,
        scope: aws::ArnScope {
            partition,
            region: spec.region.clone(),
            account_id: settings.account_id,
        },
        credentials,
        retry: options.retry.clone(),
        timeout: CALL_TIMEOUT,
        limits: Limits::aws(),
    };
    let mut client = Client::new(config, options.http.clone());
    let asked = spec.rate_limit.as_ref().map(|limit| Rate {
        per_second: limit.requests_per_second,
        burst: limit.burst,
    });
    if asked.is_some() || options.default_rate_limit {
        for (action, fixed) in [
            ("GetResources", Rate::AWS_GET_RESOURCES),
            ("TagResources", Rate::AWS_WRITE),
            ("UntagResources", Rate::AWS_WRITE),
        ] {
            let rate = asked.map_or(fixed, |asked| fixed.at_most(asked));
            client = client.with_action_rate_limiter(action, Arc::new(RateLimiter::new(rate)));
        }
    }
    Ok(ProviderClient::Aws(match &options.observer {
        Some(observer) => client.with_observer(observer.clone()),
        None => client,
    }))
}

fn jdcloud_config(
    spec: &TagProviderSpec,
    credentials: Credentials,
    options: &ClientOptions,
) -> Result<JdcloudConfig, ProviderSpecError> {
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
    Ok(JdcloudConfig {
        endpoint,
        region: spec.region.clone(),
        signing_service,
        service_codes: JdcloudConfig::service_codes_with(&settings.extra_service_codes),
        credentials,
        retry: options.retry.clone(),
        timeout: CALL_TIMEOUT,
        limits: Limits::jdcloud(),
    })
}

fn alibaba_client(
    spec: &TagProviderSpec,
    credentials: Credentials,
    options: &ClientOptions,
) -> Result<ProviderClient, ProviderSpecError> {
    let settings = spec.alibaba.clone().unwrap_or_default();
    let signature = match settings.signature_version.unwrap_or_default() {
        AlibabaSignatureVersion::V1 => SignatureVersion::V1,
        AlibabaSignatureVersion::V3 => SignatureVersion::V3,
    };
    let is_tag_service = settings
        .product
        .as_deref()
        .is_some_and(|product| product.eq_ignore_ascii_case(alibaba::TAG_SERVICE_PRODUCT));
    if settings.account_id.is_some() && !is_tag_service {
        return Err(spec_error(
            "spec.alibaba.accountId",
            "only the Tag service (spec.alibaba.product: tag) addresses resources by ARN; \
             remove accountId or set product: tag",
        ));
    }
    let endpoint = options
        .endpoint_override
        .clone()
        .or_else(|| spec.endpoint.clone());
    if is_tag_service {
        let account_id = settings
            .account_id
            .clone()
            .unwrap_or_else(|| alibaba::ANY_ACCOUNT.to_string());
        alibaba::check_account_id(&account_id)
            .map_err(|error| spec_error("spec.alibaba.accountId", error.to_string()))?;
        let config = AlibabaConfig {
            endpoint: endpoint.unwrap_or_else(|| alibaba::tag_service_endpoint(&spec.region)),
            api_version: settings
                .api_version
                .unwrap_or_else(|| alibaba::TAG_SERVICE_API_VERSION.to_string()),
            region: spec.region.clone(),
            signature,
            credentials,
            retry: options.retry.clone(),
            timeout: CALL_TIMEOUT,
            limits: Limits::alibaba_tag_service(),
        };
        let protocol = TagService { config, account_id };
        let client = Client::new(protocol, options.http.clone());
        return Ok(ProviderClient::TagService(with_options(
            client, spec, options,
        )));
    }
    let preset = match settings.product.as_deref() {
        Some(product) => Some(alibaba::preset(product).ok_or_else(|| {
            spec_error(
                "spec.alibaba.product",
                format!(
                    "unknown product {product:?}; known: {}, {} (the Tag service, for every \
                     other product)",
                    alibaba::PRESETS
                        .iter()
                        .map(|p| p.product)
                        .collect::<Vec<_>>()
                        .join(", "),
                    alibaba::TAG_SERVICE_PRODUCT
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
    let endpoint = endpoint
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
        signature,
        credentials,
        retry: options.retry.clone(),
        timeout: CALL_TIMEOUT,
        limits: Limits::alibaba(),
    };
    let protocol = ProductApi {
        config,
        resource_types: preset.map(|p| p.resource_types.iter().map(|t| t.to_string()).collect()),
    };
    let client = Client::new(protocol, options.http.clone());
    Ok(ProviderClient::Alibaba(with_options(client, spec, options)))
}

/// Runs `$body` with `$client` bound to the client inside whichever variant `$self` is.
macro_rules! each_client {
    ($self:expr, $client:ident => $body:expr) => {
        match $self {
            ProviderClient::Alibaba($client) => $body,
            ProviderClient::TagService($client) => $body,
            ProviderClient::Jdcloud($client) => $body,
            ProviderClient::Aws($client) => $body,
        }
    };
}

impl ProviderClient {
    /// AWS: the account of the provider's ARNs, `aws.accountId` or the one STS named,
    /// asked for (once per client) when the provider names none. `None` for the other clouds,
    /// and when STS cannot be reached (the client's next call reports why).
    pub async fn aws_account(&self) -> Option<String> {
        let ProviderClient::Aws(client) = self else {
            return None;
        };
        if let Err(error) = client.set_up().await {
            tracing::debug!(code = %error.code(), "the account of an AWS provider is unknown");
        }
        client.protocol().account_id().map(str::to_string)
    }

    /// AWS: the account of the provider's ARNs if known yet (`aws.accountId`, or the one STS
    /// named); `None` otherwise and for the other clouds.
    pub fn known_aws_account(&self) -> Option<String> {
        match self {
            ProviderClient::Aws(client) => client.protocol().account_id().map(str::to_string),
            _ => None,
        }
    }

    /// The URL every call of this client goes to (the embedded cloud's, when it runs).
    pub fn endpoint(&self) -> &str {
        match self {
            ProviderClient::Alibaba(client) => &client.protocol().config.endpoint,
            ProviderClient::TagService(client) => &client.protocol().config.endpoint,
            ProviderClient::Jdcloud(client) => &client.protocol().endpoint,
            ProviderClient::Aws(client) => &client.protocol().endpoint,
        }
    }
}

impl TagApi for ProviderClient {
    fn cloud_name(&self) -> &'static str {
        each_client!(self, client => client.cloud_name())
    }

    fn limits(&self) -> &Limits {
        each_client!(self, client => client.limits())
    }

    fn check_resource_type(&self, resource_type: &str) -> Result<(), AddressError> {
        each_client!(self, client => client.check_resource_type(resource_type))
    }

    fn check_resource_ids(
        &self,
        resource_type: &str,
        resource_ids: &[String],
    ) -> Result<(), AddressError> {
        each_client!(self, client => client.check_resource_ids(resource_type, resource_ids))
    }

    async fn list_tags(
        &self,
        resource_type: &str,
        resource_ids: &[String],
    ) -> Result<TagsByResource, CallError> {
        each_client!(self, client => client.list_tags(resource_type, resource_ids).await)
    }

    async fn select_resources(
        &self,
        resource_type: &str,
        match_tags: &Tags,
    ) -> Result<TagsByResource, CallError> {
        each_client!(self, client => client.select_resources(resource_type, match_tags).await)
    }

    async fn tag_resources(
        &self,
        resource_type: &str,
        resource_ids: &[String],
        tags: &Tags,
    ) -> Result<WriteResult, CallError> {
        each_client!(self, client => client.tag_resources(resource_type, resource_ids, tags).await)
    }

    async fn untag_resources(
        &self,
        resource_type: &str,
        resource_ids: &[String],
        tags: &Tags,
    ) -> Result<WriteResult, CallError> {
        each_client!(self, client => client.untag_resources(resource_type, resource_ids, tags).await)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::AccessKey;
    use crate::cloud::alibaba::ANY_ACCOUNT;

    fn spec(yaml: &str) -> TagProviderSpec {
        serde_yaml::from_str(yaml).expect("a provider spec")
    }

    fn options() -> ClientOptions {
        ClientOptions {
            // NB: the crate's own client, which installs the crypto provider: a bare
            // `reqwest::Client::new()` panicked when these tests ran alone.
            http: http_client().expect("HTTP client"),
            endpoint_override: None,
            retry: RetryPolicy::default(),
            observer: None,
            default_rate_limit: true,
        }
    }

    fn build(yaml: &str) -> Result<ProviderClient, ProviderSpecError> {
        client_for(
            &spec(yaml),
            AccessKey::new("AK", "secret").into(),
            &options(),
        )
    }

    #[test]
    fn product_tag_is_the_tag_service_with_its_endpoint_limits_and_account() {
        let client = build("{cloud: alibaba, region: cn-shanghai, alibaba: {product: tag}}")
            .expect("a client");
        let ProviderClient::TagService(client) = &client else {
            panic!("not the Tag service: {client:?}");
        };
        let protocol = client.protocol();
        assert_eq!(
            protocol.config.endpoint,
            "https://tag.cn-shanghai.aliyuncs.com"
        );
        assert_eq!(protocol.config.api_version, "2018-08-28");
        assert_eq!(protocol.config.signature, SignatureVersion::V1);
        assert_eq!(protocol.account_id, ANY_ACCOUNT);
        assert_eq!(client.limits(), &Limits::alibaba_tag_service());
        assert_eq!(client.check_resource_type("rds:dbinstance"), Ok(()));
        assert!(client.check_resource_type("apiGroup").is_err());

        let client = build(
            "{cloud: alibaba, region: cn-shanghai, endpoint: 'http://127.0.0.1:1', \
             alibaba: {product: tag, accountId: '1234567890123456', signatureVersion: v3}}",
        )
        .expect("a client");
        let ProviderClient::TagService(client) = &client else {
            panic!("not the Tag service: {client:?}");
        };
        assert_eq!(client.protocol().account_id, "1234567890123456");
        assert_eq!(client.protocol().config.signature, SignatureVersion::V3);
        assert_eq!(client.protocol().config.endpoint, "http://127.0.0.1:1");
    }

    #[test]
    fn signature_version_applies_to_product_apis_too() {
        let client = build(
            "{cloud: alibaba, region: cn-hangzhou, alibaba: {product: ecs, signatureVersion: v3}}",
        )
        .expect("a client");
        let ProviderClient::Alibaba(client) = &client else {
            panic!("not a product API: {client:?}");
        };
        assert_eq!(client.protocol().config.signature, SignatureVersion::V3);
        assert_eq!(client.limits().tags_per_call, 20);
    }

    #[test]
    fn account_ids_are_checked_and_only_for_the_tag_service() {
        let error =
            build("{cloud: alibaba, region: cn-hangzhou, alibaba: {product: ecs, accountId: '*'}}")
                .expect_err("no ARNs on ECS's own API");
        assert_eq!(error.field, "spec.alibaba.accountId");
        assert!(error.rule.contains("product: tag"), "{}", error.rule);
        let error = build(
            "{cloud: alibaba, region: cn-hangzhou, alibaba: {product: tag, accountId: 'me'}}",
        )
        .expect_err("not an account id");
        assert_eq!(error.field, "spec.alibaba.accountId");
        assert!(error.rule.contains("numeric UID"), "{}", error.rule);
    }

    #[test]
    fn unknown_products_point_at_the_tag_service() {
        let error = build("{cloud: alibaba, region: cn-hangzhou, alibaba: {product: rds}}")
            .expect_err("no preset");
        assert_eq!(error.field, "spec.alibaba.product");
        assert!(
            error.rule.contains("apigateway, ecs, tag"),
            "{}",
            error.rule
        );
    }
}
