//! Where a client's access key comes from: a fixed key (a Secret, the environment), with an
//! optional STS security token; or temporary credentials that are fetched, and fetched again
//! before they expire:
//!
//! Alibaba Cloud's RRSA and ECS instance RAM role ([`crate::cloud::alibaba::chain`]), AWS's
//! web identity, container endpoint and instance profile ([`crate::cloud::aws::chain`]).
//! Neither a secret nor a token is ever logged or put in an error.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::alibaba::chain::{EcsRole, OidcRole, assume_role_with_oidc, ecs_role_credentials};
use super::{AccessKey, CallError, CloudError, ErrorKind};

/// How long before expiry credentials are fetched again, at most (the SDKs' 15 minutes);
/// short-lived credentials are fetched again when a quarter of their life is left.
const REFRESH_MARGIN: Duration = Duration::from_secs(15 * 60);
/// Timeout of one call to STS or the metadata service.
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// A client's credentials.
#[derive(Clone)]
pub enum Credentials {
    /// A fixed access key (with its STS token, if any).
    Static(AccessKey),
    /// Temporary credentials, fetched when needed and before they expire.
    Refreshing(Arc<Refreshing>),
}

impl From<AccessKey> for Credentials {
    fn from(key: AccessKey) -> Self {
        Credentials::Static(key)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Static(key) => key.fmt(f),
            Credentials::Refreshing(refreshing) => f
                .debug_tuple("Refreshing")
                .field(&refreshing.source.describe())
                .finish(),
        }
    }
}

impl Credentials {
    /// The key to sign the next request with; fetches temporary credentials when there are
    /// none yet or they are due for renewal.
    pub async fn current(&self) -> Result<AccessKey, CallError> {
        match self {
            Credentials::Static(key) => Ok(key.clone()),
            Credentials::Refreshing(refreshing) => refreshing.current().await,
        }
    }

    /// Where they come from, for people (no secret).
    pub fn describe(&self) -> String {
        match self {
            Credentials::Static(key) if key.security_token().is_some() => {
                format!("access key {} with an STS token", key.id)
            }
            Credentials::Static(key) => format!("access key {}", key.id),
            Credentials::Refreshing(refreshing) => refreshing.source.describe(),
        }
    }
}

/// Where temporary credentials come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TemporarySource {
    /// RRSA: STS `AssumeRoleWithOIDC`.
    Oidc(OidcRole),
    /// The ECS instance RAM role, from the metadata service.
    EcsRole(EcsRole),
    /// AWS's chain: web identity (IRSA) or the container credentials endpoint (EKS Pod
    /// Identity).
    Aws(crate::cloud::aws::chain::AwsSource),
}

impl TemporarySource {
    /// Where they come from, for people.
    pub fn describe(&self) -> String {
        match self {
            TemporarySource::Oidc(role) => format!(
                "RRSA: role {} through STS AssumeRoleWithOIDC at {}",
                role.role_arn, role.sts_endpoint
            ),
            TemporarySource::EcsRole(role) => format!(
                "the ECS instance RAM role {} from the metadata service at {}",
                role.role_name.as_deref().unwrap_or("(the instance's)"),
                role.metadata_endpoint
            ),
            TemporarySource::Aws(source) => source.describe(),
        }
    }
}

/// Temporary credentials and when to fetch them again.
struct Issued {
    key: AccessKey,
    expiration: jiff::Timestamp,
    refresh_at: jiff::Timestamp,
}

/// Temporary credentials, fetched on first use and again before they expire.
pub struct Refreshing {
    source: TemporarySource,
    http: reqwest::Client,
    // NB: one fetch at a time; the others wait for it and use its answer.
    cached: tokio::sync::Mutex<Option<Issued>>,
}

impl Refreshing {
    /// Credentials of `source`, fetched with `http` when first needed.
    pub fn new(source: TemporarySource, http: reqwest::Client) -> Self {
        Refreshing {
            source,
            http,
            cached: tokio::sync::Mutex::new(None),
        }
    }

    async fn current(&self) -> Result<AccessKey, CallError> {
        let mut cached = self.cached.lock().await;
        let now = jiff::Timestamp::now();
        if let Some(issued) = cached.as_ref()
            && now < issued.refresh_at
        {
            return Ok(issued.key.clone());
        }
        match self.fetch().await {
            Ok((key, expiration)) => {
                tracing::info!(
                    source = %self.source.describe(),
                    access_key_id = %key.id,
                    %expiration,
                    "temporary credentials fetched"
                );
                let refresh_at = refresh_at(now, expiration);
                *cached = Some(Issued {
                    key: key.clone(),
                    expiration,
                    refresh_at,
                });
                Ok(key)
            }
            // NB: credentials that are due for renewal but not expired still serve while
            // STS or the metadata service is unreachable.
            Err(error) => match cached.as_ref() {
                Some(issued) if now < issued.expiration => {
                    tracing::warn!(%error, expiration = %issued.expiration, "cannot renew temporary credentials yet; the current ones remain valid");
                    Ok(issued.key.clone())
                }
                _ => Err(error),
            },
        }
    }

    async fn fetch(&self) -> Result<(AccessKey, jiff::Timestamp), CallError> {
        match &self.source {
            TemporarySource::Oidc(role) => assume_role_with_oidc(&self.http, role).await,
            TemporarySource::EcsRole(role) => ecs_role_credentials(&self.http, role).await,
            TemporarySource::Aws(source) => source.fetch(&self.http).await,
        }
    }
}

/// When credentials fetched at `now` that expire at `expiration` are fetched again: 15
/// minutes before expiry, or when a quarter of their life is left if that is shorter.
pub fn refresh_at(now: jiff::Timestamp, expiration: jiff::Timestamp) -> jiff::Timestamp {
    let life = expiration.duration_since(now);
    let margin = jiff::SignedDuration::try_from(REFRESH_MARGIN)
        .unwrap_or(jiff::SignedDuration::MAX)
        .min(life / 4);
    expiration
        .checked_sub(margin.max(jiff::SignedDuration::ZERO))
        .unwrap_or(now)
}

pub(crate) fn failure(
    kind: ErrorKind,
    action: &'static str,
    code: &str,
    message: impl Into<String>,
) -> CloudError {
    CloudError {
        kind,
        action,
        code: code.to_string(),
        message: message.into(),
        http_status: None,
        request_id: None,
        attempts: 1,
    }
}

/// POSTs `params` as a form to STS at `endpoint` (an unsigned call: the token in them is the
/// proof): the answer's status and body.
pub(crate) async fn post_form(
    http: &reqwest::Client,
    action: &'static str,
    endpoint: &str,
    params: &[(&str, &str)],
) -> Result<(u16, String), CloudError> {
    let url = format!("{}/", endpoint.trim_end_matches('/'));
    let response = http
        .post(&url)
        .timeout(FETCH_TIMEOUT)
        .form(params)
        .send()
        .await
        .map_err(|e| transport(action, endpoint, &e))?;
    let status = response.status().as_u16();
    let body = response
        .text()
        .await
        .map_err(|e| transport(action, endpoint, &e))?;
    Ok((status, body))
}

pub(crate) fn transport(
    action: &'static str,
    endpoint: &str,
    error: &reqwest::Error,
) -> CloudError {
    // NB: without the URL, which may carry parameters.
    let code = if error.is_timeout() {
        "Timeout"
    } else {
        "Network"
    };
    failure(
        ErrorKind::Retryable,
        action,
        code,
        format!("{endpoint}: {}", error_chain(error)),
    )
}

fn error_chain(error: &reqwest::Error) -> String {
    use std::error::Error;
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// One variable of the process environment, `None` when unset or empty.
pub fn process_var(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_renewed_before_they_expire() {
        let now: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let hour = now + jiff::SignedDuration::from_secs(3600);
        assert_eq!(
            refresh_at(now, hour),
            hour - jiff::SignedDuration::from_secs(900)
        );
        let short = now + jiff::SignedDuration::from_secs(8);
        assert_eq!(
            refresh_at(now, short),
            now + jiff::SignedDuration::from_secs(6)
        );
        assert_eq!(refresh_at(now, now), now);
    }

    #[test]
    fn debug_shows_no_secret_or_token() {
        let credentials =
            Credentials::from(AccessKey::with_token("STS.id", "sec-value", "tok-value"));
        let printed = format!("{credentials:?} {}", credentials.describe());
        assert!(printed.contains("STS.id"));
        assert!(
            !printed.contains("sec-value") && !printed.contains("tok-value"),
            "{printed}"
        );
    }
}
