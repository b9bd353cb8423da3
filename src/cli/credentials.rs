//! Credentials in CLI mode: the Secret a provider references, when it is among the files;
//! otherwise the standard environment variables of the cloud's own CLI; otherwise, for
//! Alibaba Cloud, RRSA or the ECS instance RAM role named by `ALIBABA_CLOUD_ECS_METADATA`
//! ([`crate::cloud::alibaba::chain::alibaba_chain`]).

use k8s_openapi::api::core::v1::Secret;

use super::manifests::{Located, ManifestError, Manifests};
use crate::api::{Cloud, TagProvider};
use crate::cloud::AccessKey;
use crate::cloud::alibaba::chain::{self as alibaba_credentials, alibaba_chain};
use crate::cloud::aws::profile::ProfileError;
use crate::cloud::credentials::{self, Credentials, Refreshing};
use crate::reconcile::secret::{self, ACCESS_KEY_ID, ACCESS_KEY_SECRET, SecretKeyError};

/// Environment variables of each cloud's CLI: (key id, secret).
pub fn env_vars(cloud: Cloud) -> (&'static str, &'static str) {
    match cloud {
        Cloud::Alibaba => (
            "ALIBABA_CLOUD_ACCESS_KEY_ID",
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
        ),
        Cloud::Jdcloud => ("JDCLOUD_ACCESS_KEY", "JDCLOUD_SECRET_KEY"),
        Cloud::Aws => ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"),
    }
}

/// The credentials of a provider.
pub fn credentials(
    provider: &Located<TagProvider>,
    manifests: &Manifests,
    options: &crate::reconcile::provider::ClientOptions,
) -> Result<Credentials, ManifestError> {
    let http = &options.http;
    let spec = &provider.value.spec;
    let secret_ref = spec.credentials.as_ref().map(|c| &c.secret_ref);
    if let Some(secret_ref) = secret_ref {
        let key = (secret_ref.namespace.clone(), secret_ref.name.clone());
        if let Some(secret) = manifests.secrets.get(&key) {
            return from_secret(secret).map(Credentials::from);
        }
    }
    let (id_var, secret_var) = env_vars(spec.cloud);
    let token = match spec.cloud {
        Cloud::Alibaba => credentials::process_var(alibaba_credentials::env::SECURITY_TOKEN),
        // NB: the AWS CLI's temporary credentials come with AWS_SESSION_TOKEN.
        Cloud::Aws => std::env::var("AWS_SESSION_TOKEN")
            .ok()
            .filter(|token| !token.is_empty()),
        Cloud::Jdcloud => None,
    };
    match (std::env::var(id_var), std::env::var(secret_var)) {
        (Ok(id), Ok(secret)) if !id.is_empty() && !secret.is_empty() => Ok(match token {
            Some(token) => AccessKey::with_token(id, secret, token),
            None => AccessKey::new(id, secret),
        }
        .into()),
        _ => {
            if spec.cloud == Cloud::Aws {
                if let Some(key) = aws_profile().map_err(|error| {
                    ManifestError::at(&provider.source, "spec.credentials", error.to_string())
                })? {
                    return Ok(key.into());
                }
                // NB: STS is the provider's one endpoint (the embedded cloud's with
                // --embedded-cloud) unless the environment names another.
                let endpoint = options
                    .endpoint_override
                    .as_deref()
                    .or(spec.endpoint.as_deref());
                if let Ok(source) = crate::cloud::aws::chain::aws_chain(
                    &credentials::process_var,
                    endpoint,
                    &spec.region,
                ) {
                    return Ok(Credentials::Refreshing(std::sync::Arc::new(
                        Refreshing::new(credentials::TemporarySource::Aws(source), http.clone()),
                    )));
                }
            }
            let chain = match spec.cloud {
                Cloud::Alibaba => Some(alibaba_chain(&credentials::process_var, false)),
                Cloud::Jdcloud | Cloud::Aws => None,
            };
            if let Some(Ok(source)) = chain {
                return Ok(Credentials::Refreshing(std::sync::Arc::new(
                    Refreshing::new(source, http.clone()),
                )));
            }
            let chain_note = match chain {
                Some(Err(error @ alibaba_credentials::ChainError::RrsaHalfConfigured { .. })) => {
                    format!(" ({error})")
                }
                Some(_) => format!(
                    ", nor RRSA ({}, {}, {}) nor {} (the ECS instance RAM role)",
                    alibaba_credentials::env::ROLE_ARN,
                    alibaba_credentials::env::OIDC_PROVIDER_ARN,
                    alibaba_credentials::env::OIDC_TOKEN_FILE,
                    alibaba_credentials::env::ECS_METADATA
                ),
                None if spec.cloud == Cloud::Aws => format!(
                    ", no profile {:?} in ~/.aws/credentials or ~/.aws/config ({}), nor web \
                     identity ({}, {}) nor the container credentials endpoint ({}), and the \
                     instance profile is not asked ({}=true)",
                    aws_profile_name(),
                    crate::cloud::aws::profile::profile_env::PROFILE,
                    crate::cloud::aws::chain::env::ROLE_ARN,
                    crate::cloud::aws::chain::env::WEB_IDENTITY_TOKEN_FILE,
                    crate::cloud::aws::chain::env::CONTAINER_FULL_URI,
                    crate::cloud::aws::chain::env::EC2_METADATA_DISABLED,
                ),
                None => String::new(),
            };
            let (field, missing) = match secret_ref {
                Some(r) => (
                    "spec.credentials.secretRef",
                    format!(
                        "Secret {}/{} is not among the given files, and",
                        r.namespace, r.name
                    ),
                ),
                None => (
                    "spec.credentials",
                    "no Secret is referenced, and".to_string(),
                ),
            };
            Err(ManifestError::at(
                &provider.source,
                field,
                format!("{missing} {id_var}/{secret_var} are not set{chain_note}"),
            ))
        }
    }
}

/// The AWS profile the CLI reads: `AWS_PROFILE`, else `default`.
fn aws_profile_name() -> String {
    credentials::process_var(crate::cloud::aws::profile::profile_env::PROFILE)
        .unwrap_or_else(|| "default".to_string())
}

/// The static key of the AWS profile (see [`crate::cloud::aws::profile::profile_key`]) from
/// `AWS_SHARED_CREDENTIALS_FILE` (default `~/.aws/credentials`) and `AWS_CONFIG_FILE`
/// (default `~/.aws/config`). A profile named by `AWS_PROFILE` that neither file has is an
/// error; the `default` profile may be absent.
fn aws_profile() -> Result<Option<AccessKey>, ProfileError> {
    use crate::cloud::aws::profile::{profile_env, profile_key};
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from);
    let file = |var: &str, default: &str| {
        credentials::process_var(var)
            .map(std::path::PathBuf::from)
            .or_else(|| home.as_ref().map(|home| home.join(".aws").join(default)))
    };
    let read =
        |path: Option<std::path::PathBuf>| path.and_then(|p| std::fs::read_to_string(p).ok());
    let credentials_file = read(file(profile_env::SHARED_CREDENTIALS_FILE, "credentials"));
    let config_file = read(file(profile_env::CONFIG_FILE, "config"));
    let named = credentials::process_var(profile_env::PROFILE);
    let profile = named.clone().unwrap_or_else(|| "default".to_string());
    match profile_key(
        credentials_file.as_deref(),
        config_file.as_deref(),
        &profile,
    )? {
        Some(key) => Ok(Some(key)),
        None if named.is_some() => Err(ProfileError::Absent { profile }),
        None => Ok(None),
    }
}

/// Where a provider's access key comes from, for the run's header: the Secret among the
/// files, or the environment variables (never the key itself).
pub fn source_of(provider: &Located<TagProvider>, manifests: &Manifests) -> String {
    let spec = &provider.value.spec;
    if let Some(secret_ref) = spec.credentials.as_ref().map(|c| &c.secret_ref) {
        let key = (secret_ref.namespace.clone(), secret_ref.name.clone());
        if manifests.secrets.contains_key(&key) {
            return format!(
                "Secret {}/{} ({})",
                secret_ref.namespace, secret_ref.name, manifests.secrets[&key].source
            );
        }
    }
    let (id_var, secret_var) = env_vars(spec.cloud);
    let from_env = credentials::process_var(id_var).is_some();
    if !from_env
        && spec.cloud == Cloud::Alibaba
        && let Ok(source) = alibaba_chain(&credentials::process_var, false)
    {
        return source.describe();
    }
    if !from_env && spec.cloud == Cloud::Aws {
        if let Ok(Some(_)) = aws_profile() {
            return format!("the AWS profile {:?} (~/.aws)", aws_profile_name());
        }
        if let Ok(source) = crate::cloud::aws::chain::aws_chain(
            &credentials::process_var,
            spec.endpoint.as_deref(),
            &spec.region,
        ) {
            return source.describe();
        }
    }
    format!("the environment ({id_var}, {secret_var})")
}

/// `namespace/name` of a Secret, for messages.
fn secret_name(secret: &Located<Secret>) -> String {
    format!(
        "{}/{}",
        secret
            .value
            .metadata
            .namespace
            .as_deref()
            .unwrap_or("default"),
        secret.value.metadata.name.as_deref().unwrap_or("-")
    )
}

fn from_secret(secret: &Located<Secret>) -> Result<AccessKey, ManifestError> {
    let value = |key: &str| -> Option<Option<String>> {
        let from_string_data = secret.value.string_data.as_ref().and_then(|d| d.get(key));
        let from_data = secret.value.data.as_ref().and_then(|d| d.get(key));
        match (from_string_data, from_data) {
            (Some(text), _) => Some(Some(text.clone())),
            (None, Some(bytes)) => Some(String::from_utf8(bytes.0.clone()).ok()),
            (None, None) => None,
        }
    };
    secret::access_key(value).map_err(|error| {
        let rule = match error {
            SecretKeyError::NotText(_) => "is not UTF-8 text".to_string(),
            SecretKeyError::Missing(_) => format!(
                "required in Secret {}: the provider's access key needs {ACCESS_KEY_ID} and \
                 {ACCESS_KEY_SECRET}",
                secret_name(secret)
            ),
        };
        ManifestError::at(&secret.source, format!("data.{}", error.key()), rule)
    })
}
