//! AWS's credentials from metadata endpoints: the container credentials endpoint (EKS Pod
//! Identity, ECS task roles) and the EC2 instance metadata service (IMDSv2, the instance
//! profile), each answering JSON credentials.

use std::path::PathBuf;
use std::time::Duration;

use super::chain::{FETCH_TIMEOUT, env, expiration, no_credentials, unreadable};
use crate::cloud::credentials::{failure, transport};
use crate::cloud::{AccessKey, CallError, CloudError, ErrorKind, Refusal, RefusalReason};

/// What errors of the container credentials endpoint are reported as.
pub const CONTAINER_CREDENTIALS: &str = "ContainerCredentials";

/// The ECS agent's address, under which a relative URI lives.
pub(super) const ECS_CONTAINER_HOST: &str = "http://169.254.170.2";

/// What errors of the instance metadata service are reported as.
pub const INSTANCE_METADATA: &str = "InstanceMetadata";

/// The instance metadata service of EC2 instances.
pub const DEFAULT_IMDS_ENDPOINT: &str = "http://169.254.169.254";

/// Timeout of one call to the instance metadata service (the SDKs' one second, and one more:
/// it answers at once where it exists).
pub const IMDS_TIMEOUT: Duration = Duration::from_secs(2);

/// Lifetime asked of an IMDSv2 session token (the SDKs' value: six hours).
pub(super) const IMDS_TOKEN_TTL_SECONDS: &str = "21600";

/// The instance metadata service's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceMetadata {
    /// Its base URL.
    pub endpoint: String,
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

/// The container credentials endpoint: a GET with the token as `Authorization`; the answer is
/// JSON `{AccessKeyId, SecretAccessKey, Token, Expiration}`.
pub(super) async fn container(
    http: &reqwest::Client,
    endpoint: &ContainerEndpoint,
) -> Result<(AccessKey, jiff::Timestamp), CallError> {
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
                        RefusalReason::AuthorizationTokenFileUnreadable,
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
        }
        .into());
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
pub(super) struct JsonCredentials {
    #[serde(default)]
    code: Option<String>,
    access_key_id: String,
    secret_access_key: String,
    token: String,
    expiration: String,
}

/// Reads [`JsonCredentials`] from `body`, the answer of `source` (for the error).
pub(super) fn json_credentials(
    action: &'static str,
    body: &str,
    source: &str,
) -> Result<JsonCredentials, Refusal> {
    serde_json::from_str(body).map_err(|error| {
        Refusal::new(
            RefusalReason::InvalidAnswer,
            action,
            format!("{source} answered without credentials: {error}"),
        )
    })
}

/// The EC2 instance profile's credentials from the instance metadata service (IMDSv2): a
/// session token, the role's name, then the role's `{Code, AccessKeyId, SecretAccessKey,
/// Token, Expiration}`.
pub(super) async fn instance_profile(
    http: &reqwest::Client,
    metadata: &InstanceMetadata,
) -> Result<(AccessKey, jiff::Timestamp), CallError> {
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
        return Err(answered("the session token's PUT", status).into());
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
        return Err(answered("the instance profile's role", status).into());
    }
    let roles = response.text().await.map_err(|e| unanswered(&e))?;
    let Some(role) = roles.lines().map(str::trim).find(|l| !l.is_empty()) else {
        return Err(answered("the instance profile's role", 404).into());
    };
    let response = get(format!("{ROLES}{role}"))
        .await
        .map_err(|e| unanswered(&e))?;
    let status = response.status().as_u16();
    if !(200..300).contains(&status) {
        return Err(answered(&format!("the credentials of role {role}"), status).into());
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
        )
        .into());
    }
    answer.into_key(ACTION)
}

impl std::fmt::Debug for ContainerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ContainerToken::File(path) => f.debug_tuple("File").field(path).finish(),
            ContainerToken::Value(_) => f.write_str("Value(<redacted>)"),
        }
    }
}

impl JsonCredentials {
    fn into_key(self, action: &'static str) -> Result<(AccessKey, jiff::Timestamp), CallError> {
        let expires = expiration(action, &self.expiration)?;
        Ok((
            AccessKey::with_token(self.access_key_id, self.secret_access_key, self.token),
            expires,
        ))
    }
}
