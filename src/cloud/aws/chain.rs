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
//!   `AWS_EC2_METADATA_SERVICE_ENDPOINT`, unless `AWS_EC2_METADATA_DISABLED=true`. Off EC2 it
//!   does not answer: each attempt then waits [`IMDS_TIMEOUT`] and fails naming every source.
//!
//! STS's endpoint is `AWS_ENDPOINT_URL_STS`, else `AWS_ENDPOINT_URL`, else the provider's
//! `spec.endpoint`, else `https://sts.REGION.amazonaws.com` of the provider's region. Both
//! sources' credentials are temporary, and fetched again before they expire
//! ([`crate::cloud::credentials::Refreshing`]). Neither a secret nor a token is ever logged or
//! put in an error.

use std::path::PathBuf;
use std::time::Duration;

use super::xml_element;
use crate::cloud::credentials::{failure, post_form, transport};
use crate::cloud::{AccessKey, CloudError, ErrorKind};

/// The STS action of web identity.
pub const ASSUME_ROLE_WITH_WEB_IDENTITY: &str = "AssumeRoleWithWebIdentity";
/// What errors of the container credentials endpoint are reported as.
pub const CONTAINER_CREDENTIALS: &str = "ContainerCredentials";
/// Lifetime asked of STS (the SDKs' default: one hour).
const DURATION_SECONDS: u32 = 3600;
/// Timeout of one fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The ECS agent's address, under which a relative URI lives.
const ECS_CONTAINER_HOST: &str = "http://169.254.170.2";
/// What errors of the instance metadata service are reported as.
pub const INSTANCE_METADATA: &str = "InstanceMetadata";
/// The instance metadata service of EC2 instances.
pub const DEFAULT_IMDS_ENDPOINT: &str = "http://169.254.169.254";
/// Timeout of one call to the instance metadata service (the SDKs' one second, and one more:
/// it answers at once where it exists).
pub const IMDS_TIMEOUT: Duration = Duration::from_secs(2);
/// Lifetime asked of an IMDSv2 session token (the SDKs' value: six hours).
const IMDS_TOKEN_TTL_SECONDS: &str = "21600";

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

/// The instance metadata service's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceMetadata {
    /// Its base URL.
    pub endpoint: String,
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

/// The container credentials endpoint's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerEndpoint {
    /// The full URL.
    pub uri: String,
    /// Where the `Authorization` header comes from, if anywhere.
    pub token: Option<ContainerToken>,
}

/// The `Authorization` header of the container credentials endpoint.
#[derive(Clone, PartialEq, Eq)]
pub enum ContainerToken {
    /// A file, read on every fetch (EKS Pod Identity rotates it).
    File(PathBuf),
    /// The token itself.
    Value(String),
}

impl std::fmt::Debug for ContainerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContainerToken::File(path) => f.debug_tuple("File").field(path).finish(),
            ContainerToken::Value(_) => f.write_str("Value(<redacted>)"),
        }
    }
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

/// The chain's source the environment sets up: web identity when its two variables are set,
/// else the container credentials endpoint; `Err` says what is missing. `endpoint` and
/// `region` are the provider's. `var` reads one (non-empty) variable.
pub fn aws_chain(
    var: &dyn Fn(&str) -> Option<String>,
    endpoint: Option<&str>,
    region: &str,
) -> Result<AwsSource, String> {
    let web = [env::ROLE_ARN, env::WEB_IDENTITY_TOKEN_FILE];
    let set: Vec<&str> = web.iter().copied().filter(|n| var(n).is_some()).collect();
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
        return Err(format!(
            "web identity is half configured: {one} is set, {other} is not"
        ));
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
        return Err(format!(
            "{} (the instance profile is not asked: {}=true)",
            no_credentials(),
            env::EC2_METADATA_DISABLED
        ));
    }
    Ok(AwsSource::Instance(InstanceMetadata {
        endpoint: var(env::EC2_METADATA_ENDPOINT)
            .unwrap_or_else(|| DEFAULT_IMDS_ENDPOINT.to_string()),
    }))
}

/// Every source the chain knows, for an error that none gave credentials.
fn no_credentials() -> String {
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
    ) -> Result<(AccessKey, jiff::Timestamp), CloudError> {
        match self {
            AwsSource::WebIdentity(role) => web_identity(http, role).await,
            AwsSource::Container(endpoint) => container(http, endpoint).await,
            AwsSource::Instance(metadata) => instance_profile(http, metadata).await,
        }
    }
}

fn unreadable(
    action: &'static str,
    code: &str,
    what: &str,
    path: &std::path::Path,
    error: &std::io::Error,
) -> CloudError {
    failure(
        ErrorKind::Credentials,
        action,
        code,
        format!("cannot read {what} {}: {error}", path.display()),
    )
}

/// The expiry of temporary credentials, from STS's or the endpoint's `Expiration`.
fn expiration(action: &'static str, text: &str) -> Result<jiff::Timestamp, CloudError> {
    text.trim().parse().map_err(|_| {
        failure(
            ErrorKind::Retryable,
            action,
            "InvalidAnswer",
            format!("the credentials' Expiration {text:?} is not a UTC time"),
        )
    })
}

/// STS `AssumeRoleWithWebIdentity`, parameters in a form body so that the token never shows in
/// a URL.
async fn web_identity(
    http: &reqwest::Client,
    role: &WebIdentityRole,
) -> Result<(AccessKey, jiff::Timestamp), CloudError> {
    const ACTION: &str = ASSUME_ROLE_WITH_WEB_IDENTITY;
    let token = std::fs::read_to_string(&role.token_file).map_err(|error| {
        unreadable(
            ACTION,
            "WebIdentityTokenFileUnreadable",
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
        });
    }
    let field = |name: &str| {
        xml_element(&body, name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| {
                failure(
                    ErrorKind::Retryable,
                    ACTION,
                    "InvalidAnswer",
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

/// The container credentials endpoint: a GET with the token as `Authorization`; the answer is
/// JSON `{AccessKeyId, SecretAccessKey, Token, Expiration}`.
async fn container(
    http: &reqwest::Client,
    endpoint: &ContainerEndpoint,
) -> Result<(AccessKey, jiff::Timestamp), CloudError> {
    const ACTION: &str = CONTAINER_CREDENTIALS;
    let shown = endpoint
        .uri
        .split('?')
        .next()
        .unwrap_or_default()
        .to_string();
    let token = match &endpoint.token {
        None => None,
        Some(ContainerToken::Value(token)) => Some(zeroize::Zeroizing::new(token.clone())),
        Some(ContainerToken::File(path)) => Some(zeroize::Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|error| {
                    unreadable(
                        ACTION,
                        "AuthorizationTokenFileUnreadable",
                        &format!(
                            "the authorization token file ({})",
                            env::CONTAINER_TOKEN_FILE
                        ),
                        path,
                        &error,
                    )
                })?
                .trim()
                .to_string(),
        )),
    };
    let mut request = http.get(&endpoint.uri).timeout(FETCH_TIMEOUT);
    if let Some(token) = &token {
        request = request.header(reqwest::header::AUTHORIZATION, token.as_str());
    }
    let response = request
        .send()
        .await
        .map_err(|e| transport(ACTION, &shown, &e))?;
    let status = response.status().as_u16();
    let body = response
        .text()
        .await
        .map_err(|e| transport(ACTION, &shown, &e))?;
    if !(200..300).contains(&status) {
        let kind = if status >= 500 || status == 429 {
            ErrorKind::Retryable
        } else {
            ErrorKind::Credentials
        };
        return Err(CloudError {
            http_status: Some(status),
            ..failure(
                kind,
                ACTION,
                &format!("HTTP{status}"),
                format!(
                    "the container credentials endpoint {shown} answered {status} (check the \
                     pod's Pod Identity association)"
                ),
            )
        });
    }
    let answer = json_credentials(
        ACTION,
        &body,
        &format!("the container credentials endpoint {shown}"),
    )?;
    answer.into_key(ACTION)
}

/// Temporary credentials as the container endpoint and the instance metadata service answer
/// them (JSON; the latter adds `Code`).
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct JsonCredentials {
    #[serde(default)]
    code: Option<String>,
    access_key_id: String,
    secret_access_key: String,
    token: String,
    expiration: String,
}

impl JsonCredentials {
    fn into_key(self, action: &'static str) -> Result<(AccessKey, jiff::Timestamp), CloudError> {
        let expires = expiration(action, &self.expiration)?;
        Ok((
            AccessKey::with_token(self.access_key_id, self.secret_access_key, self.token),
            expires,
        ))
    }
}

/// Reads [`JsonCredentials`] from `body`, the answer of `source` (for the error).
fn json_credentials(
    action: &'static str,
    body: &str,
    source: &str,
) -> Result<JsonCredentials, CloudError> {
    serde_json::from_str(body).map_err(|error| {
        failure(
            ErrorKind::Retryable,
            action,
            "InvalidAnswer",
            format!("{source} answered without credentials: {error}"),
        )
    })
}

/// The EC2 instance profile's credentials from the instance metadata service (IMDSv2): a
/// session token, the role's name, then the role's `{Code, AccessKeyId, SecretAccessKey,
/// Token, Expiration}`.
async fn instance_profile(
    http: &reqwest::Client,
    metadata: &InstanceMetadata,
) -> Result<(AccessKey, jiff::Timestamp), CloudError> {
    const ACTION: &str = INSTANCE_METADATA;
    let base = metadata.endpoint.trim_end_matches('/');
    // NB: off EC2 nothing answers: the error names every source the chain tried.
    let unanswered = |error: &reqwest::Error| {
        failure(
            ErrorKind::Credentials,
            ACTION,
            "NoCredentials",
            format!(
                "{}: the instance metadata service at {base} did not answer ({}; set {}=true \
                 to skip it)",
                no_credentials(),
                if error.is_timeout() {
                    format!("no answer within {:?}", IMDS_TIMEOUT)
                } else {
                    "cannot connect".to_string()
                },
                env::EC2_METADATA_DISABLED
            ),
        )
    };
    let answered = |what: &str, status: u16| {
        let kind = if status >= 500 || status == 429 {
            ErrorKind::Retryable
        } else {
            ErrorKind::Credentials
        };
        let hint = if status == 404 {
            " (no instance profile is attached to this instance)"
        } else {
            ""
        };
        CloudError {
            http_status: Some(status),
            ..failure(
                kind,
                ACTION,
                &format!("HTTP{status}"),
                format!(
                    "the instance metadata service at {base} answered {status} to {what}{hint}"
                ),
            )
        }
    };
    let response = http
        .put(format!("{base}/latest/api/token"))
        .header(
            "X-aws-ec2-metadata-token-ttl-seconds",
            IMDS_TOKEN_TTL_SECONDS,
        )
        .timeout(IMDS_TIMEOUT)
        .send()
        .await
        .map_err(|e| unanswered(&e))?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(answered("the session token's PUT", status));
    }
    let token = zeroize::Zeroizing::new(
        response
            .text()
            .await
            .map_err(|e| unanswered(&e))?
            .trim()
            .to_string(),
    );
    let get = |path: String| {
        http.get(format!("{base}{path}"))
            .header("X-aws-ec2-metadata-token", token.as_str())
            .timeout(IMDS_TIMEOUT)
            .send()
    };
    const ROLES: &str = "/latest/meta-data/iam/security-credentials/";
    let response = get(ROLES.to_string()).await.map_err(|e| unanswered(&e))?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(answered("the instance profile's role", status));
    }
    let roles = response.text().await.map_err(|e| unanswered(&e))?;
    let Some(role) = roles.lines().map(str::trim).find(|l| !l.is_empty()) else {
        return Err(answered("the instance profile's role", 404));
    };
    let response = get(format!("{ROLES}{role}"))
        .await
        .map_err(|e| unanswered(&e))?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(answered(&format!("the credentials of role {role}"), status));
    }
    let body = response.text().await.map_err(|e| unanswered(&e))?;
    let answer = json_credentials(
        ACTION,
        &body,
        &format!("the instance metadata service at {base}, for role {role},"),
    )?;
    if answer.code.as_deref() != Some("Success") {
        return Err(failure(
            ErrorKind::Retryable,
            ACTION,
            "InstanceProfileNotReady",
            format!(
                "the instance metadata service at {base} answered Code {:?} for role {role}",
                answer.code
            ),
        ));
    }
    answer.into_key(ACTION)
}

/// The environment variables of the AWS CLI's shared files.
pub mod profile_env {
    /// The profile to use (default `default`).
    pub const PROFILE: &str = "AWS_PROFILE";
    /// The shared credentials file (default `~/.aws/credentials`).
    pub const SHARED_CREDENTIALS_FILE: &str = "AWS_SHARED_CREDENTIALS_FILE";
    /// The shared config file (default `~/.aws/config`).
    pub const CONFIG_FILE: &str = "AWS_CONFIG_FILE";
}

/// The keys of one section of an AWS shared file (INI: `[section]`, `key = value`, comments
/// after `#` or `;` at a line's start); `None` when the section is absent.
fn ini_section(text: &str, wanted: &str) -> Option<Vec<(String, String)>> {
    let mut found: Option<Vec<(String, String)>> = None;
    let mut inside = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.split_whitespace().collect::<Vec<_>>().join(" ");
            inside = name == wanted;
            if inside && found.is_none() {
                found = Some(Vec::new());
            }
            continue;
        }
        if inside && let Some((key, value)) = line.split_once('=') {
            let keys = found.get_or_insert_with(Vec::new);
            keys.push((key.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    found
}

/// The static key of profile `profile` in the shared credentials file (`[NAME]`), else in the
/// config file (`[profile NAME]`, or `[default]`), as the AWS CLI reads them: `Ok(None)` when
/// neither has the profile; `Err` names a profile without a whole key.
pub fn profile_key(
    credentials_file: Option<&str>,
    config_file: Option<&str>,
    profile: &str,
) -> Result<Option<AccessKey>, String> {
    let config_section = if profile == "default" {
        "default".to_string()
    } else {
        format!("profile {profile}")
    };
    let section = credentials_file
        .and_then(|text| ini_section(text, profile))
        .map(|keys| (keys, "the shared credentials file"))
        .or_else(|| {
            config_file
                .and_then(|text| ini_section(text, &config_section))
                .map(|keys| (keys, "the shared config file"))
        });
    let Some((keys, file)) = section else {
        return Ok(None);
    };
    let get = |name: &str| {
        keys.iter()
            .rev()
            .find(|(key, value)| key == name && !value.is_empty())
            .map(|(_, value)| value.clone())
    };
    match (get("aws_access_key_id"), get("aws_secret_access_key")) {
        (Some(id), Some(secret)) => Ok(Some(
            AccessKey::new(id, secret).with_session_token(get("aws_session_token")),
        )),
        _ => Err(format!(
            "profile {profile:?} in {file} has no aws_access_key_id and aws_secret_access_key \
             (tagbinder reads static keys from profiles; for roles, SSO or a credential \
             process, export the credentials, e.g. with `aws configure export-credentials \
             --format env`)"
        )),
    }
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
        let error = aws_chain(&half, None, "us-east-1").unwrap_err();
        assert!(error.contains(env::WEB_IDENTITY_TOKEN_FILE), "{error}");
        let disabled = vars(&[(env::EC2_METADATA_DISABLED, "TRUE")]);
        let error = aws_chain(&disabled, None, "us-east-1").unwrap_err();
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
    fn profiles_come_from_the_credentials_file_then_the_config_file() {
        let credentials = "[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = s1\n\
                           # a comment\n[team]\naws_access_key_id=AKIATEAM\n\
                           aws_secret_access_key=s2\naws_session_token = tok\n";
        let config = "[default]\nregion = us-east-1\n[profile ops]\nregion = eu-west-1\n\
                      aws_access_key_id = AKIAOPS\naws_secret_access_key = s3\n\
                      [profile sso]\nsso_session = corp\n";
        let key = |profile: &str| profile_key(Some(credentials), Some(config), profile);
        assert_eq!(key("default").unwrap().unwrap().id, "AKIADEFAULT");
        let team = key("team").unwrap().unwrap();
        assert_eq!(
            (team.id.as_str(), team.session_token()),
            ("AKIATEAM", Some("tok"))
        );
        assert_eq!(key("ops").unwrap().unwrap().id, "AKIAOPS");
        assert!(key("nobody").unwrap().is_none());
        let error = key("sso").unwrap_err();
        assert!(
            error.contains("\"sso\"") && error.contains("export-credentials"),
            "{error}"
        );
        assert!(profile_key(None, None, "default").unwrap().is_none());
    }

    #[test]
    fn debug_shows_no_token() {
        let token = ContainerToken::Value("very-secret".into());
        assert!(!format!("{token:?}").contains("very-secret"));
    }
}
