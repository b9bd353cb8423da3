//! The cloud layer: one trait for a tag API, one module per cloud.
//!
//! A client knows its cloud's wire protocol, signature, limits and error codes, and nothing of
//! Kubernetes: it takes resource types, ids and tag sets, and answers with tags or outcomes.
//! Every client is the one chassis ([`client::Client`]) over an API's [`client::Protocol`].

pub mod alibaba;
pub mod aws;
pub mod batcher;
pub mod client;
pub mod credentials;
#[cfg(test)]
pub(crate) mod fuzzing;
pub mod isolate;
pub mod jdcloud;
mod pagination;
pub mod ratelimit;
mod refusal;
pub mod retry;
pub mod sign;
mod transport;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

use secrecy::{ExposeSecret, SecretString};

pub use client::{Client, Protocol};
pub use ratelimit::{Rate, RateLimiter};
pub use refusal::{AddressError, Refusal, RefusalReason};
pub use retry::RetryPolicy;

use crate::tags::{Limits, Tags, TagsByResource};

/// A cloud's tag API, as the reconciler uses it.
pub trait TagApi: Send + Sync {
    /// Short cloud name for metrics and messages: `alibaba`, `jdcloud` or `aws`.
    fn cloud_name(&self) -> &'static str;

    /// Batch limits and tag rules of this cloud (and product).
    fn limits(&self) -> &Limits;

    /// Checks a binding's `resourceType` against what this cloud (product) accepts. The
    /// error says which values are accepted.
    fn check_resource_type(&self, resource_type: &str) -> Result<(), AddressError>;

    /// Checks a binding's `resourceIds` against what this provider can address (AWS: bare ids
    /// it can compose into ARNs, ARNs of its partition, region, account and type). Default:
    /// every id is fine.
    fn check_resource_ids(
        &self,
        resource_type: &str,
        resource_ids: &[String],
    ) -> Result<(), AddressError> {
        let _ = (resource_type, resource_ids);
        Ok(())
    }

    /// Current tags of the given resources: one entry per requested id (empty when the
    /// resource carries no tags). The client chunks the ids by `limits().resources_per_call`
    /// and follows pagination.
    fn list_tags(
        &self,
        resource_type: &str,
        resource_ids: &[String],
    ) -> impl Future<Output = Result<TagsByResource, CallError>> + Send;

    /// Several reads at once, one answer each, in order: a read that fails fails only its
    /// own resources. A coalescing client ([`batcher::Batcher`]) sends them in one round, so
    /// that reads of at most `limits().resources_per_call` ids each cost the calls of one
    /// read of them all. The default reads them one after another.
    fn list_tags_each(
        &self,
        resource_type: &str,
        reads: &[Vec<String>],
    ) -> impl Future<Output = Vec<Result<TagsByResource, CallError>>> + Send {
        async move {
            let mut answers = Vec::with_capacity(reads.len());
            for ids in reads {
                answers.push(self.list_tags(resource_type, ids).await);
            }
            answers
        }
    }

    /// Every resource of `resource_type` that carries all of `match_tags` (exact key and
    /// value), with the tags the answer listed for it (custom tags only), following every page.
    ///
    /// An empty `match_tags`, or more than `limits().selector_tags`, is an `InvalidInput`
    /// error and no call is made (a select never lists a whole account). A listed resource
    /// whose listed tags lack one of `match_tags` is dropped, whatever the server filtered.
    fn select_resources(
        &self,
        resource_type: &str,
        match_tags: &Tags,
    ) -> impl Future<Output = Result<TagsByResource, CallError>> + Send;

    /// Applies every tag to every resource (overwriting existing values of those keys). The
    /// caller keeps within `limits()`. Resources the cloud reports as failed individually are
    /// in [`WriteResult::failed`]; a failure of the whole call is an `Err`.
    fn tag_resources(
        &self,
        resource_type: &str,
        resource_ids: &[String],
        tags: &Tags,
    ) -> impl Future<Output = Result<WriteResult, CallError>> + Send;

    /// Removes the keys of `tags` from every resource. `tags` holds, for each key, the value
    /// the caller observed (JD Cloud requires it; Alibaba Cloud sends only keys).
    fn untag_resources(
        &self,
        resource_type: &str,
        resource_ids: &[String],
        tags: &Tags,
    ) -> impl Future<Output = Result<WriteResult, CallError>> + Send;

    /// Independent writes of one caller, handed over together so that a coalescing client
    /// ([`batcher::Batcher`]) can share calls with other callers' writes; one result per
    /// write, in order. Each write keeps within `limits()`.
    ///
    /// The default sends them one after another, each with its failing resources isolated
    /// ([`isolate::write_isolating`]), and stops at the first error that would fail every
    /// later call the same way (credentials, or retryable after retries): the writes after it
    /// are answered with that error, unsent.
    fn write_all(
        &self,
        resource_type: &str,
        writes: &[Write<'_>],
    ) -> impl Future<Output = Vec<Result<WriteResult, CallError>>> + Send {
        async move {
            let mut results = Vec::with_capacity(writes.len());
            let mut stopped: Option<CallError> = None;
            for write in writes {
                if let Some(error) = &stopped {
                    results.push(Err(error.clone()));
                    continue;
                }
                let outcomes = isolate::write_isolating(
                    self,
                    resource_type,
                    write.op,
                    write.resource_ids.to_vec(),
                    write.tags,
                )
                .await;
                stopped = isolate::stop_of(&outcomes).cloned();
                results.push(isolate::result_of(write.resource_ids, &outcomes));
            }
            results
        }
    }
}

/// Which write: TagResources or UntagResources.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WriteOp {
    /// Apply every tag to every resource.
    Tag,
    /// Remove every key (carrying the given value) from every resource.
    Untag,
}

/// One write call a caller asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Write<'a> {
    /// Tag or untag.
    pub op: WriteOp,
    /// The resources.
    pub resource_ids: &'a [String],
    /// The tags (for an untag, the keys with the values observed).
    pub tags: &'a Tags,
}

/// Credentials errors need a human; retryable errors that survived the retries mean the
/// cloud is struggling: either way, further calls would fail the same way for now.
pub fn stops_every_call(error: &CallError) -> bool {
    matches!(error.kind(), ErrorKind::Credentials | ErrorKind::Retryable)
}

/// Sees every HTTP attempt a client makes: the controller counts them in
/// `tagbinder_cloud_requests_total`.
pub trait CallObserver: Send + Sync {
    /// One attempt of `action` on `cloud` ended with `outcome`: `ok`, or the error code.
    fn observe(&self, cloud: &'static str, action: &'static str, outcome: &str);

    /// The cloud throttled that attempt (called after [`CallObserver::observe`]).
    fn throttled(&self, _cloud: &'static str, _action: &'static str) {}

    /// The rate, in calls per second, that the client's rate limiter allows after that
    /// attempt (lowered after throttling); not called for a client without a limiter.
    fn rate(&self, _per_second: f64) {}
}

/// Per-resource result of a write call that the cloud accepted as a whole.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteResult {
    /// Resources the cloud reported as not written, with why. Every other resource of the
    /// call was written.
    pub failed: BTreeMap<String, ResourceError>,
}

/// Why one resource was not written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceError {
    /// What kind of failure, as far as the cloud says.
    pub kind: ErrorKind,
    /// The cloud's message, for people.
    pub message: String,
}

/// The categories that decide what tagbinder does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Access key unknown or disabled, signature rejected, or access denied: only a change of
    /// credentials or permissions helps.
    Credentials,
    /// The request broke a rule of the cloud (bad key, bad type, limits): terminal.
    InvalidInput,
    /// A resource (or resource type) does not exist: terminal for that resource.
    NotFound,
    /// The resource already carries the most tags it may: terminal until tags are removed.
    QuotaExceeded,
    /// Throttling, server errors, timeouts, network errors: retried, then reported.
    Retryable,
}

impl ErrorKind {
    /// The category as a PascalCase word, for status `failures[].reason` and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Credentials => "CredentialsInvalid",
            ErrorKind::InvalidInput => "InvalidInput",
            ErrorKind::NotFound => "NotFound",
            ErrorKind::QuotaExceeded => "QuotaExceeded",
            ErrorKind::Retryable => "ProviderError",
        }
    }
}

/// What the cloud answered to a failed call (or the transport's failure to reach it),
/// classified. Never carries a secret; never made by the client itself ([`Refusal`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{action} failed: {code}: {message}{}", attempts_note(*.attempts))]
pub struct CloudError {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// The API action, e.g. `TagResources`.
    pub action: &'static str,
    /// The cloud's error code (`Throttling.User`, `UNAUTHENTICATED`), or `Timeout`/`Network`.
    pub code: String,
    /// The cloud's message.
    pub message: String,
    /// HTTP status, when an answer came.
    pub http_status: Option<u16>,
    /// The cloud's request id, when an answer came.
    pub request_id: Option<String>,
    /// Attempts made (more than one when retried).
    pub attempts: u32,
}

fn attempts_note(attempts: u32) -> String {
    if attempts > 1 {
        format!(" (after {attempts} attempts)")
    } else {
        String::new()
    }
}

/// A failed call of a [`TagApi`]: what the cloud (or the transport to it) answered, or what the
/// client refused itself. Both are classified by the one [`ErrorKind`] that the execution, the
/// batcher and the status read.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The cloud's answer, or no answer.
    #[error(transparent)]
    Cloud(#[from] CloudError),
    /// The client's own refusal: nothing was sent, or the answer was not used.
    #[error(transparent)]
    Refused(#[from] Refusal),
}

impl CallError {
    /// What kind of failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            CallError::Cloud(error) => error.kind,
            CallError::Refused(refusal) => refusal.kind(),
        }
    }

    /// The cloud's error code, or the refusal's reason.
    pub fn code(&self) -> &str {
        match self {
            CallError::Cloud(error) => &error.code,
            CallError::Refused(refusal) => refusal.reason.as_str(),
        }
    }

    /// The API action.
    pub fn action(&self) -> &'static str {
        match self {
            CallError::Cloud(error) => error.action,
            CallError::Refused(refusal) => refusal.action,
        }
    }

    /// The message, for people: the cloud's, or what the client refused.
    pub fn message(&self) -> &str {
        match self {
            CallError::Cloud(error) => &error.message,
            CallError::Refused(refusal) => &refusal.message,
        }
    }

    /// True for errors worth another attempt later.
    pub fn is_retryable(&self) -> bool {
        self.kind() == ErrorKind::Retryable
    }

    /// What the cloud answered, if this is the cloud's answer.
    pub fn cloud(&self) -> Option<&CloudError> {
        match self {
            CallError::Cloud(error) => Some(error),
            CallError::Refused(_) => None,
        }
    }
}

/// An access key, with the STS security token of temporary credentials. Neither the secret
/// nor the token ever prints: `Debug` shows only the key id, and both are zeroized when
/// dropped.
#[derive(Clone)]
pub struct AccessKey {
    /// The access key id (not secret; it appears in every request).
    pub id: String,
    secret: SecretString,
    /// The STS security token (Alibaba Cloud, JD Cloud) or session token (AWS) of temporary
    /// credentials, if any.
    token: Option<SecretString>,
}

impl AccessKey {
    /// A key from its id and secret.
    pub fn new(id: impl Into<String>, secret: impl Into<String>) -> Self {
        AccessKey {
            id: id.into(),
            secret: SecretString::from(secret.into()),
            token: None,
        }
    }

    /// Temporary credentials: a key with its STS security token.
    pub fn with_token(
        id: impl Into<String>,
        secret: impl Into<String>,
        token: impl Into<String>,
    ) -> Self {
        AccessKey {
            token: Some(SecretString::from(token.into())),
            ..AccessKey::new(id, secret)
        }
    }

    /// The same key with the token of temporary credentials, if any.
    pub fn with_session_token(mut self, token: Option<String>) -> Self {
        self.token = token.map(SecretString::from);
        self
    }

    /// The session token (AWS's name for it), for the signer only.
    pub fn session_token(&self) -> Option<&str> {
        self.security_token()
    }

    /// The secret, for the signer only.
    pub fn secret(&self) -> &str {
        self.secret.expose_secret()
    }

    /// The STS security token, for the signer only (sent, and signed, with every request).
    pub fn security_token(&self) -> Option<&str> {
        self.token.as_ref().map(|token| token.expose_secret())
    }
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKey")
            .field("id", &self.id)
            .field("secret", &"[redacted]")
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_key_debug_hides_the_secret() {
        let key = AccessKey::new("LTAI5tDemo", "very-secret-value");
        let printed = format!("{key:?}");
        assert!(printed.contains("LTAI5tDemo"));
        assert!(!printed.contains("very-secret-value"));
    }
}
