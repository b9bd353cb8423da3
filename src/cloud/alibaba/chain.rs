//! Alibaba Cloud's credentials chain: **RRSA** (ACK's workload identity: STS
//! `AssumeRoleWithOIDC` with the pod's OIDC token, as ACK's webhook injects its variables) and
//! **the ECS instance RAM role** (the metadata service, with a metadata token when the
//! service issues one). The variables are those of Alibaba Cloud's credentials SDKs
//! (aliyun/credentials-python, `provider/oidc.py` and `provider/ecs_ram_role.py`), plus
//! `ALIBABA_CLOUD_STS_ENDPOINT` and `ALIBABA_CLOUD_ECS_METADATA_ENDPOINT`. The credentials are
//! refreshed by [`crate::cloud::credentials::Refreshing`].

use std::path::PathBuf;

use crate::cloud::credentials::{FETCH_TIMEOUT, TemporarySource, failure, post_form, transport};
use crate::cloud::{AccessKey, CallError, ErrorKind, Refusal, RefusalReason};

/// STS API version of `AssumeRoleWithOIDC`.
pub const STS_API_VERSION: &str = "2015-04-01";

/// The STS action RRSA calls.
pub const ASSUME_ROLE_WITH_OIDC: &str = "AssumeRoleWithOIDC";

/// What errors of the metadata service are reported as.
pub const ECS_METADATA: &str = "EcsRamRoleCredentials";

/// The metadata service of ECS instances.
pub const DEFAULT_METADATA_ENDPOINT: &str = "http://100.100.100.200";

/// The public STS endpoint.
pub const DEFAULT_STS_ENDPOINT: &str = "https://sts.aliyuncs.com";

/// Lifetime asked of STS (the SDKs' default; STS allows 900 s up to the role's maximum).
pub const DEFAULT_DURATION_SECONDS: u32 = 3600;

/// Lifetime asked of a metadata token (the SDKs' value: six hours).
const METADATA_TOKEN_TTL_SECONDS: u32 = 21_600;

/// RRSA's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OidcRole {
    /// `acs:ram::UID:role/NAME`.
    pub role_arn: String,
    /// `acs:ram::UID:oidc-provider/NAME`.
    pub oidc_provider_arn: String,
    /// The projected service account token, read afresh on every fetch (the kubelet
    /// rotates it).
    pub token_file: PathBuf,
    /// `RoleSessionName`.
    pub session_name: String,
    /// STS base URL.
    pub sts_endpoint: String,
    /// `DurationSeconds`.
    pub duration_seconds: u32,
}

/// The ECS instance RAM role's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EcsRole {
    /// Base URL of the metadata service.
    pub metadata_endpoint: String,
    /// The role; `None`: the one the metadata service names.
    pub role_name: Option<String>,
    /// Refuse to go on without a metadata token (`ALIBABA_CLOUD_IMDSV1_DISABLED=true`).
    pub require_token: bool,
}

/// The answer of STS and of the metadata service: the credentials.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TemporaryKey {
    access_key_id: String,
    access_key_secret: String,
    security_token: String,
    expiration: String,
}

/// STS `AssumeRoleWithOIDC` (anonymous: the OIDC token is the proof), parameters in a form
/// body so that the token never shows in a URL.
pub(crate) async fn assume_role_with_oidc(
    http: &reqwest::Client,
    role: &OidcRole,
) -> Result<(AccessKey, jiff::Timestamp), CallError> {
    const ACTION: &str = ASSUME_ROLE_WITH_OIDC;
    let token = std::fs::read_to_string(&role.token_file).map_err(|error| {
        Refusal::new(
            RefusalReason::OidcTokenFileUnreadable,
            ACTION,
            format!(
                "cannot read the OIDC token file {} (ALIBABA_CLOUD_OIDC_TOKEN_FILE): {error}",
                role.token_file.display()
            ),
        )
    })?;
    let token = zeroize::Zeroizing::new(token.trim().to_string());
    let duration = role.duration_seconds.to_string();
    let timestamp = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let params = [
        ("Action", ACTION),
        ("Format", "JSON"),
        ("Version", STS_API_VERSION),
        ("DurationSeconds", duration.as_str()),
        ("RoleArn", role.role_arn.as_str()),
        ("OIDCProviderArn", role.oidc_provider_arn.as_str()),
        ("OIDCToken", token.as_str()),
        ("RoleSessionName", role.session_name.as_str()),
        ("Timestamp", timestamp.as_str()),
    ];
    let (status, body) = post_form(http, ACTION, &role.sts_endpoint, &params).await?;
    if (200..300).contains(&status) {
        #[derive(serde::Deserialize)]
        #[serde(rename_all = "PascalCase")]
        struct Answer {
            credentials: TemporaryKey,
        }
        let answer: Answer = serde_json::from_str(&body).map_err(|error| {
            Refusal::new(
                RefusalReason::InvalidAnswer,
                ACTION,
                format!(
                    "STS at {} answered without credentials: {error}",
                    role.sts_endpoint
                ),
            )
        })?;
        return answer.credentials.into_key(ACTION);
    }
    let mut error = super::errors::from_answer(ACTION, status, &body);
    if error.kind == ErrorKind::InvalidInput || error.kind == ErrorKind::NotFound {
        // NB: a refused role, provider or token is a matter of credentials and permissions.
        error.kind = ErrorKind::Credentials;
    }
    error.message = format!(
        "{} (RRSA: role {}, OIDC provider {})",
        error.message, role.role_arn, role.oidc_provider_arn
    );
    Err(error.into())
}

/// The ECS instance RAM role's credentials from the metadata service.
pub(crate) async fn ecs_role_credentials(
    http: &reqwest::Client,
    role: &EcsRole,
) -> Result<(AccessKey, jiff::Timestamp), CallError> {
    const ACTION: &str = ECS_METADATA;
    let base = role.metadata_endpoint.trim_end_matches('/');
    let token = match http
        .put(format!("{base}/latest/api/token"))
        .timeout(FETCH_TIMEOUT)
        .header(
            "X-aliyun-ecs-metadata-token-ttl-seconds",
            METADATA_TOKEN_TTL_SECONDS.to_string(),
        )
        .send()
        .await
    {
        Ok(answer) if answer.status().is_success() => Some(zeroize::Zeroizing::new(
            answer
                .text()
                .await
                .map_err(|e| transport(ACTION, base, &e))?,
        )),
        Ok(answer) if role.require_token => {
            return Err(failure(
                ErrorKind::Credentials,
                ACTION,
                "MetadataTokenRefused",
                format!(
                    "the metadata service at {base} answered {} to the metadata token request, and ALIBABA_CLOUD_IMDSV1_DISABLED=true requires one",
                    answer.status()
                ),
            ).into());
        }
        Err(error) if role.require_token => return Err(transport(ACTION, base, &error).into()),
        _ => None,
    };
    let get = |path: String| {
        let mut request = http.get(format!("{base}{path}")).timeout(FETCH_TIMEOUT);
        if let Some(token) = &token {
            request = request.header("X-aliyun-ecs-metadata-token", token.as_str());
        }
        async move {
            let answer = request
                .send()
                .await
                .map_err(|e| transport(ACTION, base, &e))?;
            let status = answer.status();
            let body = answer
                .text()
                .await
                .map_err(|e| transport(ACTION, base, &e))?;
            if status.is_success() {
                Ok(body)
            } else {
                let kind = if status.is_server_error() {
                    ErrorKind::Retryable
                } else {
                    ErrorKind::Credentials
                };
                Err(failure(
                    kind,
                    ACTION,
                    &format!("HTTP{}", status.as_u16()),
                    format!(
                        "the metadata service at {base} answered {status} for {path}: is an instance RAM role attached to this ECS instance?"
                    ),
                ))
            }
        }
    };
    const CREDENTIALS_PATH: &str = "/latest/meta-data/ram/security-credentials/";
    let role_name = match &role.role_name {
        Some(name) => name.clone(),
        None => get(CREDENTIALS_PATH.to_string())
            .await?
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_string(),
    };
    if role_name.is_empty() {
        return Err(failure(
            ErrorKind::Credentials,
            ACTION,
            "NoRamRole",
            format!("the metadata service at {base} names no RAM role: attach one to the instance"),
        )
        .into());
    }
    let body = get(format!("{CREDENTIALS_PATH}{role_name}")).await?;
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Answer {
        code: String,
        #[serde(flatten)]
        key: TemporaryKey,
    }
    let answer: Answer = serde_json::from_str(&body).map_err(|error| {
        Refusal::new(
            RefusalReason::InvalidAnswer,
            ACTION,
            format!("the metadata service at {base} answered without credentials for role {role_name}: {error}"),
        )
    })?;
    if answer.code != "Success" {
        return Err(failure(
            ErrorKind::Credentials,
            ACTION,
            &answer.code,
            format!("the metadata service at {base} has no credentials for role {role_name}"),
        )
        .into());
    }
    answer.key.into_key(ACTION)
}

/// The STS base URL the environment asks for.
fn sts_endpoint(var: &dyn Fn(&str) -> Option<String>) -> String {
    if let Some(endpoint) = var(env::STS_ENDPOINT) {
        return if endpoint.contains("://") {
            endpoint
        } else {
            format!("https://{endpoint}")
        };
    }
    let prefix = if var(env::VPC_ENDPOINT_ENABLED).is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        "sts-vpc"
    } else {
        "sts"
    };
    match var(env::STS_REGION) {
        Some(region) => format!("https://{prefix}.{region}.aliyuncs.com"),
        None => DEFAULT_STS_ENDPOINT.to_string(),
    }
}

/// Why Alibaba Cloud's chain has no source.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// Some of RRSA's three variables are set, not all.
    #[error("RRSA is half configured: {} set, {} not set", .set.join(", "), .missing.join(", "))]
    RrsaHalfConfigured {
        /// The variables set.
        set: Vec<&'static str>,
        /// The others.
        missing: Vec<&'static str>,
    },
    /// Neither RRSA nor the ECS instance RAM role.
    #[error(
        "no credentials: set spec.credentials.secretRef, or RRSA ({}, {}, {}), or {} (the ECS \
         instance RAM role{})",
        env::ROLE_ARN,
        env::OIDC_PROVIDER_ARN,
        env::OIDC_TOKEN_FILE,
        env::ECS_METADATA,
        if *.ecs_disabled { format!("; {} is true", env::ECS_METADATA_DISABLED) } else { String::new() }
    )]
    NoSource {
        /// Whether `ALIBABA_CLOUD_ECS_METADATA_DISABLED=true` turned the ECS role off.
        ecs_disabled: bool,
    },
}

/// Alibaba Cloud's credentials chain for a provider without `spec.credentials`: RRSA when
/// its three variables are set; else the ECS instance RAM role, unless
/// `ALIBABA_CLOUD_ECS_METADATA_DISABLED=true` or (`ecs_by_default` false, the CLI) no
/// `ALIBABA_CLOUD_ECS_METADATA` names the role. `var` reads one (non-empty) variable.
pub fn alibaba_chain(
    var: &dyn Fn(&str) -> Option<String>,
    ecs_by_default: bool,
) -> Result<TemporarySource, ChainError> {
    let rrsa = [env::ROLE_ARN, env::OIDC_PROVIDER_ARN, env::OIDC_TOKEN_FILE];
    let set: Vec<&'static str> = rrsa.iter().copied().filter(|n| var(n).is_some()).collect();
    if set.len() == rrsa.len() {
        let session_name = var(env::ROLE_SESSION_NAME)
            .unwrap_or_else(|| format!("tagbinder-{}", jiff::Timestamp::now().as_second()));
        return Ok(TemporarySource::Oidc(OidcRole {
            role_arn: var(env::ROLE_ARN).unwrap_or_default(),
            oidc_provider_arn: var(env::OIDC_PROVIDER_ARN).unwrap_or_default(),
            token_file: PathBuf::from(var(env::OIDC_TOKEN_FILE).unwrap_or_default()),
            session_name,
            sts_endpoint: sts_endpoint(var),
            duration_seconds: DEFAULT_DURATION_SECONDS,
        }));
    }
    if !set.is_empty() {
        let missing = rrsa.iter().copied().filter(|n| !set.contains(n)).collect();
        return Err(ChainError::RrsaHalfConfigured { set, missing });
    }
    let disabled = var(env::ECS_METADATA_DISABLED).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let role_name = var(env::ECS_METADATA);
    if disabled || (!ecs_by_default && role_name.is_none()) {
        return Err(ChainError::NoSource {
            ecs_disabled: disabled,
        });
    }
    Ok(TemporarySource::EcsRole(EcsRole {
        metadata_endpoint: var(env::ECS_METADATA_ENDPOINT)
            .unwrap_or_else(|| DEFAULT_METADATA_ENDPOINT.to_string()),
        role_name,
        require_token: var(env::IMDSV1_DISABLED).is_some_and(|v| v.eq_ignore_ascii_case("true")),
    }))
}

impl TemporaryKey {
    fn into_key(self, action: &'static str) -> Result<(AccessKey, jiff::Timestamp), CallError> {
        let expiration: jiff::Timestamp = self.expiration.parse().map_err(|_| {
            Refusal::new(
                RefusalReason::InvalidAnswer,
                action,
                format!(
                    "the credentials' Expiration {:?} is not a UTC time",
                    self.expiration
                ),
            )
        })?;
        Ok((
            AccessKey::with_token(
                self.access_key_id,
                self.access_key_secret,
                self.security_token,
            ),
            expiration,
        ))
    }
}

/// The environment variables the chain reads.
pub mod env {
    /// RRSA: the role to assume.
    pub const ROLE_ARN: &str = "ALIBABA_CLOUD_ROLE_ARN";
    /// RRSA: the cluster's OIDC provider.
    pub const OIDC_PROVIDER_ARN: &str = "ALIBABA_CLOUD_OIDC_PROVIDER_ARN";
    /// RRSA: the projected service account token.
    pub const OIDC_TOKEN_FILE: &str = "ALIBABA_CLOUD_OIDC_TOKEN_FILE";
    /// RRSA: `RoleSessionName` (default `tagbinder-<unix time>`).
    pub const ROLE_SESSION_NAME: &str = "ALIBABA_CLOUD_ROLE_SESSION_NAME";
    /// STS base URL (tagbinder's; default from the region variables below).
    pub const STS_ENDPOINT: &str = "ALIBABA_CLOUD_STS_ENDPOINT";
    /// STS region: `sts.REGION.aliyuncs.com`.
    pub const STS_REGION: &str = "ALIBABA_CLOUD_STS_REGION";
    /// `true`: the VPC endpoint, `sts-vpc.REGION.aliyuncs.com`.
    pub const VPC_ENDPOINT_ENABLED: &str = "ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED";
    /// The ECS instance RAM role's name (default: the one the metadata service names).
    pub const ECS_METADATA: &str = "ALIBABA_CLOUD_ECS_METADATA";
    /// `true`: never ask the metadata service.
    pub const ECS_METADATA_DISABLED: &str = "ALIBABA_CLOUD_ECS_METADATA_DISABLED";
    /// `true`: refuse to read the metadata service without a metadata token.
    pub const IMDSV1_DISABLED: &str = "ALIBABA_CLOUD_IMDSV1_DISABLED";
    /// Base URL of the metadata service (tagbinder's; default http://100.100.100.200).
    pub const ECS_METADATA_ENDPOINT: &str = "ALIBABA_CLOUD_ECS_METADATA_ENDPOINT";
    /// An STS token beside `ALIBABA_CLOUD_ACCESS_KEY_ID` / `_SECRET` (CLI).
    pub const SECURITY_TOKEN: &str = "ALIBABA_CLOUD_SECURITY_TOKEN";
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn rrsa_wins_when_its_three_variables_are_set() {
        let source = alibaba_chain(
            &vars(&[
                (env::ROLE_ARN, "acs:ram::1:role/r"),
                (env::OIDC_PROVIDER_ARN, "acs:ram::1:oidc-provider/p"),
                (env::OIDC_TOKEN_FILE, "/var/run/token"),
                (env::STS_REGION, "cn-hangzhou"),
                (env::VPC_ENDPOINT_ENABLED, "true"),
            ]),
            true,
        )
        .expect("RRSA");
        let TemporarySource::Oidc(role) = source else {
            panic!("not RRSA: {source:?}");
        };
        assert_eq!(
            role.sts_endpoint,
            "https://sts-vpc.cn-hangzhou.aliyuncs.com"
        );
        assert_eq!(role.duration_seconds, 3600);
        assert!(role.session_name.starts_with("tagbinder-"));
    }

    #[tokio::test]
    async fn an_unreadable_token_file_is_the_client_s_refusal_and_a_credentials_error() {
        let role = OidcRole {
            role_arn: "acs:ram::1:role/r".into(),
            oidc_provider_arn: "acs:ram::1:oidc-provider/p".into(),
            token_file: PathBuf::from("/nonexistent/tagbinder-token"),
            session_name: "s".into(),
            // NB: nothing listens there: the refusal comes before any call.
            sts_endpoint: "http://127.0.0.1:9".into(),
            duration_seconds: DEFAULT_DURATION_SECONDS,
        };
        let http = crate::reconcile::provider::http_client().expect("HTTP client");
        let error = assume_role_with_oidc(&http, &role).await.unwrap_err();
        assert!(
            matches!(&error, CallError::Refused(refusal)
                if refusal.reason == RefusalReason::OidcTokenFileUnreadable),
            "{error:?}"
        );
        assert_eq!(error.kind(), ErrorKind::Credentials);
        assert!(
            error.to_string().contains("OIDCTokenFileUnreadable"),
            "{error}"
        );
    }

    #[test]
    fn half_an_rrsa_setup_is_named() {
        let error = alibaba_chain(&vars(&[(env::ROLE_ARN, "acs:ram::1:role/r")]), true)
            .expect_err("incomplete");
        assert_eq!(
            error,
            ChainError::RrsaHalfConfigured {
                set: vec![env::ROLE_ARN],
                missing: vec![env::OIDC_PROVIDER_ARN, env::OIDC_TOKEN_FILE],
            }
        );
        assert!(error.to_string().contains(env::OIDC_TOKEN_FILE), "{error}");
    }

    #[test]
    fn the_ecs_role_is_the_default_of_the_controller_and_opt_in_for_the_cli() {
        let source = alibaba_chain(&vars(&[]), true).expect("ECS");
        assert_eq!(
            source,
            TemporarySource::EcsRole(EcsRole {
                metadata_endpoint: DEFAULT_METADATA_ENDPOINT.into(),
                role_name: None,
                require_token: false,
            })
        );
        assert!(alibaba_chain(&vars(&[]), false).is_err());
        assert!(alibaba_chain(&vars(&[(env::ECS_METADATA, "role")]), false).is_ok());
        let error = alibaba_chain(&vars(&[(env::ECS_METADATA_DISABLED, "true")]), true)
            .expect_err("disabled")
            .to_string();
        assert!(error.contains("spec.credentials.secretRef"), "{error}");
        assert!(error.contains(env::ECS_METADATA_DISABLED), "{error}");
    }
}
