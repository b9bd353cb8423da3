//! AWS's credentials chain for a provider without `spec.credentials` (spec section 7), as the
//! AWS SDKs define it, hand-written on tagbinder's HTTP client (see docs/src/cloud/aws.md for
//! why not `aws-config`):
//!
//! - **web identity** (IRSA on EKS): `AWS_ROLE_ARN` and `AWS_WEB_IDENTITY_TOKEN_FILE` (and
//!   `AWS_ROLE_SESSION_NAME`), through STS `AssumeRoleWithWebIdentity` (unsigned: the token is
//!   the proof), the token file read afresh on every fetch (the kubelet rotates it);
//! - **the container credentials endpoint** (EKS Pod Identity, ECS tasks):
//!   `AWS_CONTAINER_CREDENTIALS_FULL_URI` (or `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`
//!   under `http://169.254.170.2`), with `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (read afresh
//!   on every fetch) or `AWS_CONTAINER_AUTHORIZATION_TOKEN` as the `Authorization` header;
//! - **the EC2 instance profile**, last, from the instance metadata service (IMDSv2: a session
//!   token from `PUT /latest/api/token`, then `/latest/meta-data/iam/security-credentials/`
//!   and the role's credentials), at `http://169.254.169.254` or
//!   `AWS_EC2_METADATA_SERVICE_ENDPOINT`, unless `AWS_EC2_METADATA_DISABLED=true`
//!   ([`super::metadata`], with the container endpoint). Off EC2 it does not answer: each attempt then waits [`IMDS_TIMEOUT`] and fails naming every source.
//!
//! STS's endpoint is `AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL`, else the provider's
//! `spec.endpoint`, else `https://sts.REGION.amazonaws.com` of the provider's region. Both
//! sources' credentials are temporary, and fetched again before they expire
//! ([`crate::cloud::credentials::Refreshing`]). Neither a secret nor a token is ever logged or
//! put in an error.

use std::path::PathBuf;
use std::time::Duration;

pub use super::metadata::{
    CONTAINER_CREDENTIALS, ContainerEndpoint, ContainerToken, DEFAULT_IMDS_ENDPOINT, IMDS_TIMEOUT,
    INSTANCE_METADATA, InstanceMetadata,
};
use super::metadata::{ECS_CONTAINER_HOST, container, instance_profile};
use super::xml_element;
use crate::cloud::credentials::{failure, post_form};
use crate::cloud::{AccessKey, CallError, CloudError, ErrorKind, Refusal, RefusalReason};

/// The STS action of web identity.
pub const ASSUME_ROLE_WITH_WEB_IDENTITY: &str = "AssumeRoleWithWebIdentity";
/// Lifetime asked of STS (the SDKs' default: one hour).
const DURATION_SECONDS: u32 = 3600;
/// Timeout of one fetch.
pub(super) const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The environment variables of the AWS SDKs that the chain reads.
pub mod env {
    /// Web identity: the role to assume.
    pub const ROLE_ARN: &str = "AWS_ROLE_ARN";
    /// Web identity: the projected service account token.
    pub const WEB_IDENTITY_TOKEN_FILE: &str = "AWS_WEB_IDENTITY_TOKEN_FILE";
    /// Web identity: `RoleSessionName`.
    pub const ROLE_SESSION_NAME: &str = "AWS_ROLE_SESSION_NAME";
    /// Container credentials (EKS Pod Identity): the endpoint's URL.
    pub const CONTAINER_FULL_URI: &str = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
    /// Container credentials (ECS): the path under `http://169.254.170.2`.
    pub const CONTAINER_RELATIVE_URI: &str = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI";
    /// Container credentials: the file holding the `Authorization` token.
    pub const CONTAINER_TOKEN_FILE: &str = "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE";
    /// Container credentials: the `Authorization` token itself.
    pub const CONTAINER_TOKEN: &str = "AWS_CONTAINER_AUTHORIZATION_TOKEN";
    /// STS's endpoint.
    pub const ENDPOINT_URL_STS: &str = "AWS_ENDPOINT_URL_STS";
    /// Every AWS service's endpoint.
    pub const ENDPOINT_URL: &str = "AWS_ENDPOINT_URL";
    /// `true`: the instance metadata service is not asked.
    pub const EC2_METADATA_DISABLED: &str = "AWS_EC2_METADATA_DISABLED";
    /// The instance metadata service's address.
    pub const EC2_METADATA_ENDPOINT: &str = "AWS_EC2_METADATA_SERVICE_ENDPOINT";
}

/// Web identity's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebIdentityRole {
    /// `arn:aws:iam::ACCOUNT:role/NAME`.
    pub role_arn: String,
    /// The token file, read on every fetch.
    pub token_file: PathBuf,
    /// `RoleSessionName`.
    pub session_name: String,
    /// STS base URL.
    pub sts_endpoint: String,
}

/// Which source of the chain the environment sets up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AwsSource {
    /// Web identity.
    WebIdentity(WebIdentityRole),
    /// The container credentials endpoint.
    Container(ContainerEndpoint),
    /// The EC2 instance profile, from the instance metadata service.
    Instance(InstanceMetadata),
}

/// STS's base URL for a provider with `endpoint` (its `spec.endpoint`) in `region`.
fn sts_endpoint(
    var: &dyn Fn(&str) -> Option<String>,
    endpoint: Option<&str>,
    region: &str,
) -> String {
    var(env::ENDPOINT_URL_STS)
        .or_else(|| var(env::ENDPOINT_URL))
        .or_else(|| endpoint.map(str::to_string))
        .unwrap_or_else(|| super::sts_endpoint_of(region))
}

/// Why the AWS chain has no source.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// One of web identity's two variables is set, not the other.
    #[error("web identity is half configured: {set} is set, {missing} is not")]
    WebIdentityHalfConfigured {
        /// The variable set.
        set: &'static str,
        /// The other.
        missing: &'static str,
    },
    /// No web identity, no container endpoint, and the instance profile is not to be asked.
    #[error(
        "{} (the instance profile is not asked: {}=true)",
        no_credentials(),
        env::EC2_METADATA_DISABLED
    )]
    MetadataDisabled,
}

/// The chain's source the environment sets up: web identity when its two variables are set,
/// else the container credentials endpoint; `Err` says what is missing. `endpoint` and
/// `region` are the provider's. `var` reads one (non-empty) variable.
pub fn aws_chain(
    var: &dyn Fn(&str) -> Option<String>,
    endpoint: Option<&str>,
    region: &str,
) -> Result<AwsSource, ChainError> {
    let web = [env::ROLE_ARN, env::WEB_IDENTITY_TOKEN_FILE];
    let set: Vec<&'static str> = web.iter().copied().filter(|n| var(n).is_some()).collect();
    if set.len() == web.len() {
        return Ok(AwsSource::WebIdentity(WebIdentityRole {
            role_arn: var(env::ROLE_ARN).unwrap_or_default(),
            token_file: PathBuf::from(var(env::WEB_IDENTITY_TOKEN_FILE).unwrap_or_default()),
            session_name: var(env::ROLE_SESSION_NAME)
                .unwrap_or_else(|| format!("tagbinder-{}", jiff::Timestamp::now().as_second())),
            sts_endpoint: sts_endpoint(var, endpoint, region),
        }));
    }
    if let [one] = set[..] {
        let other = web.iter().find(|n| **n != one).copied().unwrap_or_default();
        return Err(ChainError::WebIdentityHalfConfigured {
            set: one,
            missing: other,
        });
    }
    let uri = var(env::CONTAINER_FULL_URI).or_else(|| {
        var(env::CONTAINER_RELATIVE_URI).map(|path| format!("{ECS_CONTAINER_HOST}{path}"))
    });
    if let Some(uri) = uri {
        let token = var(env::CONTAINER_TOKEN_FILE)
            .map(|file| ContainerToken::File(PathBuf::from(file)))
            .or_else(|| var(env::CONTAINER_TOKEN).map(ContainerToken::Value));
        return Ok(AwsSource::Container(ContainerEndpoint { uri, token }));
    }
    if var(env::EC2_METADATA_DISABLED).is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Err(ChainError::MetadataDisabled);
    }
    Ok(AwsSource::Instance(InstanceMetadata {
        endpoint: var(env::EC2_METADATA_ENDPOINT)
            .unwrap_or_else(|| DEFAULT_IMDS_ENDPOINT.to_string()),
    }))
}

/// Every source the chain knows, for an error that none gave credentials.
pub(super) fn no_credentials() -> String {
    format!(
        "no credentials: set spec.credentials.secretRef, or web identity ({}, {}; IRSA sets \
         them), or the container credentials endpoint ({}, {}; EKS Pod Identity sets them), or \
         run on an EC2 instance with an instance profile",
        env::ROLE_ARN,
        env::WEB_IDENTITY_TOKEN_FILE,
        env::CONTAINER_FULL_URI,
        env::CONTAINER_TOKEN_FILE
    )
}

impl AwsSource {
    /// Where the credentials come from, for people.
    pub fn describe(&self) -> String {
        match self {
            AwsSource::WebIdentity(role) => format!(
                "web identity: role {} through STS AssumeRoleWithWebIdentity at {}",
                role.role_arn, role.sts_endpoint
            ),
            AwsSource::Container(endpoint) => format!(
                "the container credentials endpoint {} (EKS Pod Identity)",
                endpoint.uri.split('?').next().unwrap_or_default()
            ),
            AwsSource::Instance(metadata) => format!(
                "the EC2 instance profile from the instance metadata service at {} (IMDSv2)",
                metadata.endpoint
            ),
        }
    }

    /// Fetches temporary credentials and their expiry.
    pub async fn fetch(
        &self,
        http: &reqwest::Client,
    ) -> Result<(AccessKey, jiff::Timestamp), CallError> {
        match self {
            AwsSource::WebIdentity(role) => web_identity(http, role).await,
            AwsSource::Container(endpoint) => container(http, endpoint).await,
            AwsSource::Instance(metadata) => instance_profile(http, metadata).await,
        }
    }
}

/// A token file that cannot be read: the client's refusal, nothing was asked.
pub(super) fn unreadable(
    action: &'static str,
    reason: RefusalReason,
    what: &str,
    path: &std::path::Path,
    error: &std::io::Error,
) -> Refusal {
    Refusal::new(
        reason,
        action,
        format!("cannot read {what} {}: {error}", path.display()),
    )
}

/// The expiry of temporary credentials, from STS's or the endpoint's `Expiration`.
pub(super) fn expiration(action: &'static str, text: &str) -> Result<jiff::Timestamp, Refusal> {
    text.trim().parse().map_err(|_| {
        Refusal::new(
            RefusalReason::InvalidAnswer,
            action,
            format!("the credentials' Expiration {text:?} is not a UTC time"),
        )
    })
}

/// STS `AssumeRoleWithWebIdentity`, parameters in a form body so that the token never shows in
/// a URL.
async fn web_identity(
    http: &reqwest::Client,
    role: &WebIdentityRole,
) -> Result<(AccessKey, jiff::Timestamp), CallError> {
    const ACTION: &str = ASSUME_ROLE_WITH_WEB_IDENTITY;
    let token = std::fs::read_to_string(&role.token_file).map_err(|error| {
        unreadable(
            ACTION,
            RefusalReason::WebIdentityTokenFileUnreadable,
            &format!(
                "the web identity token file ({})",
                env::WEB_IDENTITY_TOKEN_FILE
            ),
            &role.token_file,
            &error,
        )
    })?;
    let token = zeroize::Zeroizing::new(token.trim().to_string());
    let duration = DURATION_SECONDS.to_string();
    let params = [
        ("Action", ACTION),
        ("Version", "2011-06-15"),
        ("RoleArn", role.role_arn.as_str()),
        ("RoleSessionName", role.session_name.as_str()),
        ("WebIdentityToken", token.as_str()),
        ("DurationSeconds", duration.as_str()),
    ];
    let (status, body) = post_form(http, ACTION, &role.sts_endpoint, &params).await?;
    if !(200..300).contains(&status) {
        let code = xml_element(&body, "Code").unwrap_or("HTTP error");
        let message = xml_element(&body, "Message").unwrap_or_default();
        let kind = if status >= 500 || code.contains("Throttl") || code == "IDPCommunicationError" {
            ErrorKind::Retryable
        } else {
            ErrorKind::Credentials
        };
        return Err(CloudError {
            http_status: Some(status),
            ..failure(
                kind,
                ACTION,
                code,
                format!(
                    "STS at {} refused role {}: {message} (check the role's trust policy for \
                     the cluster's OIDC provider and this service account)",
                    role.sts_endpoint, role.role_arn
                ),
            )
        }
        .into());
    }
    let field = |name: &str| {
        xml_element(&body, name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                Refusal::new(
                    RefusalReason::InvalidAnswer,
                    ACTION,
                    format!("STS at {} answered without {name}", role.sts_endpoint),
                )
            })
    };
    let key = AccessKey::with_token(
        field("AccessKeyId")?,
        field("SecretAccessKey")?,
        field("SessionToken")?,
    );
    Ok((key, expiration(ACTION, field("Expiration")?)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn web_identity_wins_then_the_container_endpoint() {
        let both = vars(&[
            (env::ROLE_ARN, "arn:aws:iam::123456789012:role/tagbinder"),
            (env::WEB_IDENTITY_TOKEN_FILE, "/var/run/token"),
            (
                env::CONTAINER_FULL_URI,
                "http://169.254.170.23/v1/credentials",
            ),
        ]);
        let Ok(AwsSource::WebIdentity(role)) = aws_chain(&both, None, "eu-west-1") else {
            panic!("web identity");
        };
        assert_eq!(role.sts_endpoint, "https://sts.eu-west-1.amazonaws.com");
        let Ok(AwsSource::WebIdentity(role)) =
            aws_chain(&both, Some("http://127.0.0.1:4566"), "eu-west-1")
        else {
            panic!("web identity");
        };
        assert_eq!(
            role.sts_endpoint, "http://127.0.0.1:4566",
            "the provider's one endpoint"
        );
        let pod = vars(&[
            (
                env::CONTAINER_FULL_URI,
                "http://169.254.170.23/v1/credentials",
            ),
            (env::CONTAINER_TOKEN_FILE, "/var/run/pod-identity/token"),
        ]);
        let Ok(AwsSource::Container(endpoint)) = aws_chain(&pod, None, "us-east-1") else {
            panic!("the container endpoint");
        };
        assert_eq!(
            endpoint.token,
            Some(ContainerToken::File("/var/run/pod-identity/token".into()))
        );
        let ecs = vars(&[(env::CONTAINER_RELATIVE_URI, "/v2/credentials/abc")]);
        let Ok(AwsSource::Container(endpoint)) = aws_chain(&ecs, None, "us-east-1") else {
            panic!("the container endpoint");
        };
        assert_eq!(endpoint.uri, "http://169.254.170.2/v2/credentials/abc");
    }

    #[test]
    fn half_a_web_identity_and_nothing_at_all_are_named() {
        let half = vars(&[(env::ROLE_ARN, "arn:aws:iam::123456789012:role/tagbinder")]);
        let error = aws_chain(&half, None, "us-east-1").unwrap_err().to_string();
        assert!(error.contains(env::WEB_IDENTITY_TOKEN_FILE), "{error}");
        let disabled = vars(&[(env::EC2_METADATA_DISABLED, "TRUE")]);
        let error = aws_chain(&disabled, None, "us-east-1")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("no credentials")
                && error.contains(env::CONTAINER_FULL_URI)
                && error.contains(env::EC2_METADATA_DISABLED),
            "{error}"
        );
    }

    #[test]
    fn the_instance_profile_comes_last() {
        let Ok(AwsSource::Instance(metadata)) = aws_chain(&vars(&[]), None, "us-east-1") else {
            panic!("the instance profile");
        };
        assert_eq!(metadata.endpoint, DEFAULT_IMDS_ENDPOINT);
        let elsewhere = vars(&[(env::EC2_METADATA_ENDPOINT, "http://127.0.0.1:1338")]);
        let Ok(AwsSource::Instance(metadata)) = aws_chain(&elsewhere, None, "us-east-1") else {
            panic!("the instance profile");
        };
        assert_eq!(metadata.endpoint, "http://127.0.0.1:1338");
    }

    #[test]
    fn debug_shows_no_token() {
        let token = ContainerToken::Value("very-secret".into());
        assert!(!format!("{token:?}").contains("very-secret"));
    }
}
