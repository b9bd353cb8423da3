use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Where and how to reach one cloud account's tag API in one region.
#[derive(CustomResource, Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "tagbinder.io",
    version = "v1alpha1",
    kind = "TagProvider",
    shortname = "tp",
    category = "tagging",
    doc = "How tagbinder reaches one cloud's tag API in one region: the cloud, the region, the product or API, the endpoint, the credentials, the rate limit, and the namespaces whose bindings may use it.",
    status = "TagProviderStatus",
    printcolumn = r#"{"name":"CLOUD","type":"string","jsonPath":".spec.cloud"}"#,
    printcolumn = r#"{"name":"REGION","type":"string","jsonPath":".spec.region"}"#,
    printcolumn = r#"{"name":"READY","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"REASON","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"LAST-CALL","type":"date","jsonPath":".status.lastSuccessfulCallTime"}"#,
    printcolumn = r#"{"name":"AGE","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = schemars::transform::RecursiveTransform(crate::api::int32_formats))]
// NB: the clouds' static tag rules on `defaultTags`, so that a provider whose defaults no
// binding could write is refused at admission; the reconciler checks them again, with the
// rules only it knows (the Tag service's non-empty values). The same rules as `Limits`.
#[schemars(extend("x-kubernetes-validations" = [
    {"rule": "self.cloud != 'alibaba' || !has(self.defaultTags) || self.defaultTags.all(k, !k.matches('^[aA][cC][sS]:') && !k.matches('^[aA][lL][iI][yY][uU][nN]') && !self.defaultTags[k].matches('^[aA][cC][sS]:') && !self.defaultTags[k].matches('^[aA][lL][iI][yY][uU][nN]'))", "message": "alibaba: defaultTags keys and values must not start with the reserved prefixes acs: and aliyun"},
    {"rule": "self.cloud != 'alibaba' || !has(self.defaultTags) || self.defaultTags.all(k, !k.matches('[hH][tT][tT][pP][sS]?://') && !self.defaultTags[k].matches('[hH][tT][tT][pP][sS]?://'))", "message": "alibaba: defaultTags keys and values must not contain http:// or https://"},
    {"rule": "self.cloud != 'alibaba' || !has(self.defaultTags) || self.defaultTags.all(k, self.defaultTags[k].size() <= 128)", "message": "alibaba: defaultTags values must be at most 128 characters"},
    {"rule": "self.cloud != 'jdcloud' || !has(self.defaultTags) || self.defaultTags.all(k, k.size() <= 127 && !k.matches('^[jJ][rR][nN]:') && !k.matches('^[jJ][dD][cC]-'))", "message": "jdcloud: defaultTags keys must be at most 127 characters and not start with the reserved prefixes jrn: and jdc-"},
    {"rule": "self.cloud != 'jdcloud' || !has(self.defaultTags) || self.defaultTags.size() <= 10", "message": "jdcloud: at most 10 defaultTags (a resource carries at most 10 tags)"}
]))]
pub struct TagProviderSpec {
    /// Which cloud's tag API this provider speaks.
    pub cloud: Cloud,
    /// Cloud region, e.g. `cn-hangzhou` (Alibaba Cloud) or `cn-north-1` (JD Cloud): lowercase
    /// letters, digits and inner hyphens (it becomes part of the API's URL).
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
    )]
    pub region: String,
    /// Alibaba Cloud settings: a product preset, or an explicit API version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alibaba: Option<AlibabaSettings>,
    /// JD Cloud settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jdcloud: Option<JdcloudSettings>,
    /// AWS settings: the account and partition that bare resource ids are composed into ARNs
    /// with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsSettings>,
    /// Endpoint URL override (emulator, private link): `http(s)://host[:port][/path]`, with
    /// no user, query or fragment. Default: the preset's public endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 2048),
        regex(
            pattern = r"^https?://([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$"
        )
    )]
    pub endpoint: Option<String>,
    /// Where the access key lives: a Secret in the controller's credentials namespace (keys
    /// accessKeyId and accessKeySecret, or secretAccessKey on AWS; optionally securityToken,
    /// or sessionToken on AWS). Absent: the cloud's credentials chain: Alibaba Cloud's (RRSA
    /// through STS AssumeRoleWithOIDC, then the ECS instance RAM role), AWS's (web identity
    /// through STS AssumeRoleWithWebIdentity, then the container credentials endpoint of EKS
    /// Pod Identity); in the CLI, also the cloud's standard environment variables and, on
    /// AWS, the ~/.aws profile AWS_PROFILE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<Credentials>,
    /// Client-side rate limit for this provider's API calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Namespaces whose bindings may use this provider. Absent: all namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_namespaces: Option<LabelSelector>,
    /// Tags merged into every binding of this provider, key to value. A binding's `tagsFrom`
    /// and `tags` win over them. Checked against the cloud's tag rules here (reserved
    /// prefixes, lengths) and again by the reconciler.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    #[schemars(extend(
        "maxProperties" = 20,
        "additionalProperties" = {"type": "string", "maxLength": 255, "pattern": r"^[^\x00-\x1F\x7F-\x9F]*$"},
        "x-kubernetes-validations" = [
            {"rule": "self.all(k, k.size() > 0)", "message": "defaultTags keys must not be empty"},
            {"rule": "self.all(k, k.size() <= 128)", "message": "defaultTags keys must be at most 128 characters"},
            {"rule": r"self.all(k, !k.matches('[\\x00-\\x1F\\x7F-\\x9F]'))", "message": "defaultTags keys must not hold control characters"}
        ]
    ))]
    pub default_tags: std::collections::BTreeMap<String, String>,
}

/// The clouds tagbinder speaks to.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Cloud {
    /// Alibaba Cloud RPC-style tag APIs (TagResources, UntagResources, ListTagResources).
    Alibaba,
    /// JD Cloud resource-tag service.
    Jdcloud,
    /// AWS Resource Groups Tagging API (every taggable resource, by ARN).
    Aws,
}

impl Cloud {
    /// The name users write in `spec.cloud`.
    pub fn as_str(self) -> &'static str {
        match self {
            Cloud::Alibaba => "alibaba",
            Cloud::Jdcloud => "jdcloud",
            Cloud::Aws => "aws",
        }
    }
}

/// Alibaba Cloud product preset or explicit API version.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlibabaSettings {
    /// Product preset: `apigateway` (2016-07-14) or `ecs` (2014-05-26), a product's own tag
    /// API; or `tag` (2018-08-28), the Tag service, which tags the resources of every product
    /// by ARN (bindings then name `resourceType: PRODUCT:TYPE`, e.g. `rds:dbinstance`). Sets
    /// the API version and the endpoint pattern.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// API version override, e.g. `2016-07-14`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^\d{4}-\d{2}-\d{2}$"))]
    pub api_version: Option<String>,
    /// The account in the Tag service's ARNs: `*` (default), which the service reads as the
    /// caller's own account, or the account's numeric UID. Only with `product: tag`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(\*|[0-9]{1,32})$"))]
    pub account_id: Option<String>,
    /// The request signature: `v1` (HMAC-SHA1, the default: accepted by every Alibaba RPC
    /// API) or `v3` (ACS3-HMAC-SHA256, what the current official SDKs send).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature_version: Option<AlibabaSignatureVersion>,
}

/// How Alibaba Cloud requests are signed: `v1` (HMAC-SHA1, the default: every Alibaba RPC
/// API accepts it) or `v3` (ACS3-HMAC-SHA256, what the current official SDKs send).
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum AlibabaSignatureVersion {
    /// The RPC signature, HMAC-SHA1 (`SignatureVersion=1.0`).
    #[default]
    #[serde(rename = "v1")]
    V1,
    /// ACS3-HMAC-SHA256.
    #[serde(rename = "v3")]
    V3,
}

/// JD Cloud settings.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JdcloudSettings {
    /// Service name in the signature's credential scope (default `resourcetag`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_service: Option<String>,
    /// serviceCodes accepted in addition to the documented list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_service_codes: Vec<String>,
}

/// AWS settings.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsSettings {
    /// The 12-digit account id that bare resource ids are composed into ARNs with, and that
    /// ARNs must name. Required when a binding names a resource by bare id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[0-9]{12}$"))]
    pub account_id: Option<String>,
    /// The partition: `aws`, `aws-cn` or `aws-us-gov`. Default: the region's (`cn-*` is
    /// `aws-cn`, `us-gov-*` is `aws-us-gov`, every other region `aws`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(aws|aws-cn|aws-us-gov)$"))]
    pub partition: Option<String>,
}

/// Reference to the Secret that holds `accessKeyId` and `accessKeySecret`.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Credentials {
    /// The Secret.
    pub secret_ref: SecretRef,
}

/// A Secret by namespace and name.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Namespace of the Secret.
    #[schemars(length(min = 1, max = 63))]
    pub namespace: String,
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Token bucket for one provider's API calls.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimit {
    /// Sustained calls per second.
    #[schemars(range(min = 0.01, max = 10000.0))]
    pub requests_per_second: f64,
    /// Calls that may go at once after a quiet period.
    #[serde(default = "default_burst")]
    #[schemars(range(min = 1, max = 10000))]
    pub burst: u32,
}

fn default_burst() -> u32 {
    1
}

/// Observed state of a provider.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TagProviderStatus {
    /// Generation last observed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// kstatus conditions: `Ready` (reason `Reachable`; or `CredentialsInvalid`,
    /// `ProviderError`, `InvalidSpec`), set from the passes of the provider's bindings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// When a call of the provider last succeeded (RFC 3339; refreshed at most every five
    /// minutes while calls succeed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_call_time: Option<String>,
}
