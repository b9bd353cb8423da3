//! Credentials in CLI mode: the Secret a provider references, when it is among the files;
//! otherwise the standard environment variables of the cloud's own CLI; otherwise, for
//! Alibaba Cloud, RRSA or the ECS instance RAM role named by `ALIBABA_CLOUD_ECS_METADATA`
//! ([`crate::cloud::credentials::alibaba_chain`]).

use k8s_openapi::api::core::v1::Secret;

use super::manifests::{Located, ManifestError, Manifests};
use crate::api::{Cloud, TagProvider};
use crate::cloud::AccessKey;
use crate::cloud::credentials::{self, Credentials, Refreshing};

/// Keys of a credentials Secret (both clouds).
pub const ACCESS_KEY_ID: &str = "accessKeyId";
/// Keys of a credentials Secret (both clouds).
pub const ACCESS_KEY_SECRET: &str = "accessKeySecret";
/// Optional key of a credentials Secret: the STS token of temporary credentials.
pub const SECURITY_TOKEN: &str = "securityToken";

/// Environment variables of each cloud's CLI: (key id, secret).
pub fn env_vars(cloud: Cloud) -> (&'static str, &'static str) {
    match cloud {
        Cloud::Alibaba => (
            "ALIBABA_CLOUD_ACCESS_KEY_ID",
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
        ),
        Cloud::Jdcloud => ("JDCLOUD_ACCESS_KEY", "JDCLOUD_SECRET_KEY"),
    }
}

/// The credentials of a provider.
pub fn credentials(
    provider: &Located<TagProvider>,
    manifests: &Manifests,
    http: &reqwest::Client,
) -> Result<Credentials, ManifestError> {
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
        Cloud::Alibaba => credentials::process_var(credentials::env::SECURITY_TOKEN),
        Cloud::Jdcloud => None,
    };
    match (std::env::var(id_var), std::env::var(secret_var)) {
        (Ok(id), Ok(secret)) if !id.is_empty() && !secret.is_empty() => Ok(match token {
            Some(token) => AccessKey::with_token(id, secret, token),
            None => AccessKey::new(id, secret),
        }
        .into()),
        _ => {
            let chain = match spec.cloud {
                Cloud::Alibaba => {
                    Some(credentials::alibaba_chain(&credentials::process_var, false))
                }
                Cloud::Jdcloud => None,
            };
            if let Some(Ok(source)) = chain {
                return Ok(Credentials::Refreshing(std::sync::Arc::new(
                    Refreshing::new(source, http.clone()),
                )));
            }
            let chain_note = match chain {
                Some(Err(message)) if message.starts_with("RRSA") => format!(" ({message})"),
                Some(_) => format!(
                    ", nor RRSA ({}, {}, {}) nor {} (the ECS instance RAM role)",
                    credentials::env::ROLE_ARN,
                    credentials::env::OIDC_PROVIDER_ARN,
                    credentials::env::OIDC_TOKEN_FILE,
                    credentials::env::ECS_METADATA
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
        && let Ok(source) = credentials::alibaba_chain(&credentials::process_var, false)
    {
        return source.describe();
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
    let value = |key: &str| -> Result<String, ManifestError> {
        let from_string_data = secret
            .value
            .string_data
            .as_ref()
            .and_then(|d| d.get(key))
            .cloned();
        let from_data = secret
            .value
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|bytes| String::from_utf8(bytes.0.clone()));
        match (from_string_data, from_data) {
            (Some(text), _) | (None, Some(Ok(text))) if !text.trim().is_empty() => {
                Ok(text.trim().to_string())
            }
            (None, Some(Err(_))) => Err(ManifestError::at(
                &secret.source,
                format!("data.{key}"),
                "is not UTF-8 text",
            )),
            _ => Err(ManifestError::at(
                &secret.source,
                format!("data.{key}"),
                format!(
                    "required in Secret {}: the provider's access key needs {ACCESS_KEY_ID} and \
                     {ACCESS_KEY_SECRET}",
                    secret_name(secret)
                ),
            )),
        }
    };
    let has_token = secret
        .value
        .string_data
        .as_ref()
        .is_some_and(|d| d.contains_key(SECURITY_TOKEN))
        || secret
            .value
            .data
            .as_ref()
            .is_some_and(|d| d.contains_key(SECURITY_TOKEN));
    let (id, secret_value) = (value(ACCESS_KEY_ID)?, value(ACCESS_KEY_SECRET)?);
    Ok(if has_token {
        AccessKey::with_token(id, secret_value, value(SECURITY_TOKEN)?)
    } else {
        AccessKey::new(id, secret_value)
    })
}
