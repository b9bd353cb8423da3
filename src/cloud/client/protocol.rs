//! What a wire protocol contributes to the client chassis: building and signing a request,
//! classifying error answers, and reading answers.

use std::fmt;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName};

use super::Admit;
use crate::cloud::credentials::Credentials;
use crate::cloud::{
    AccessKey, AddressError, CloudError, Refusal, RetryPolicy, WriteOp, WriteResult,
};
use crate::tags::{Limits, Tags, TagsByResource};

/// The three operations of every tag API.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Read the tags of resources.
    List,
    /// Apply tags to resources.
    Tag,
    /// Remove keys from resources.
    Untag,
}

impl From<WriteOp> for Operation {
    fn from(op: WriteOp) -> Self {
        match op {
            WriteOp::Tag => Operation::Tag,
            WriteOp::Untag => Operation::Untag,
        }
    }
}

/// What the chassis needs from a protocol's configuration.
#[derive(Clone, Copy, Debug)]
pub struct Settings<'a> {
    /// Base URL of the API, for messages.
    pub endpoint: &'a str,
    /// Retry policy for retryable failures.
    pub retry: &'a RetryPolicy,
    /// Timeout of one HTTP attempt.
    pub timeout: Duration,
    /// Batch limits and tag rules.
    pub limits: &'a Limits,
    /// Where the key of each attempt comes from.
    pub credentials: &'a Credentials,
}

/// One signed HTTP request, ready to send.
#[derive(Clone, Debug)]
pub struct HttpRequest {
    /// `GET` or `POST`.
    pub method: reqwest::Method,
    /// Full URL, query included.
    pub url: String,
    /// Headers besides those reqwest adds itself.
    pub headers: Vec<(HeaderName, String)>,
    /// The body (empty for none).
    pub body: String,
}

/// Why a 2xx answer is not the document it should be: the chassis refuses it
/// ([`crate::cloud::RefusalReason::InvalidResponse`]), naming the endpoint and the body.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// It is not the JSON document of the answer.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    /// It lacks an element every answer holds.
    #[error("{0}")]
    Missing(&'static str),
    /// An element holds what no answer may.
    #[error("{0}")]
    Invalid(String),
}

/// One tag API's wire protocol: everything that differs between APIs, nothing that does not.
pub trait Protocol: fmt::Debug + Send + Sync + 'static {
    /// A call as built once (parameters, target) and signed afresh on each attempt.
    type Call: Send + Sync;

    /// Short cloud name for metrics and messages: `alibaba` or `jdcloud`.
    fn cloud_name(&self) -> &'static str;

    /// Endpoint, retry policy, timeout and limits.
    fn settings(&self) -> Settings<'_>;

    /// The action name of `operation` on the wire, e.g. `TagResources`.
    fn action(&self, operation: Operation) -> &'static str;

    /// Checks a binding's `resourceType`; the error says which values are accepted.
    fn check_resource_type(&self, resource_type: &str) -> Result<(), AddressError>;

    /// Checks a binding's `resourceIds` (see [`TagApi::check_resource_ids`]).
    fn check_resource_ids(
        &self,
        resource_type: &str,
        resource_ids: &[String],
    ) -> Result<(), AddressError> {
        let _ = (resource_type, resource_ids);
        Ok(())
    }

    /// True when a paged listing that failed with `error` should start again from its first
    /// page, once (AWS: an expired `PaginationToken`).
    fn restarts_listing(&self, error: &CloudError) -> bool {
        let _ = error;
        false
    }

    /// A call to make once before this client's first call (AWS: STS GetCallerIdentity,
    /// when the provider names no account), as long as it has not been answered. None by
    /// default.
    fn setup_call(&self) -> Option<Self::Call> {
        None
    }

    /// The action name of [`Protocol::setup_call`].
    fn setup_action(&self) -> &'static str {
        "Setup"
    }

    /// Takes the answer of [`Protocol::setup_call`]; the error says what the document lacks.
    fn setup_answer(&self, body: &str) -> Result<(), AnswerError> {
        let _ = body;
        Ok(())
    }

    /// The resources of a write answer (`body`, of a call over `resource_ids`) whose failure
    /// is in doubt: retried once, then verified with a read (AWS: an
    /// `InternalServiceException` in `FailedResourcesMap` may be a passing fault, or mean that
    /// the API cannot tag the resource's type). None by default.
    fn doubtful_failures(
        &self,
        resource_type: &str,
        resource_ids: &[String],
        body: &str,
    ) -> Vec<String> {
        let _ = (resource_type, resource_ids, body);
        Vec::new()
    }

    /// The call that lists the tags of `resource_ids` (at most `resources_per_call`, each
    /// once), from the page `token` on.
    fn list_call(
        &self,
        resource_type: &str,
        resource_ids: &[String],
        token: Option<&str>,
    ) -> Result<Self::Call, Refusal>;

    /// The call that lists every resource of `resource_type` carrying all of `match_tags`
    /// (exact key and value; 1..=`selector_tags` of them, checked by the chassis), by tag
    /// filter alone (no resource ids), from the page `token` on.
    fn select_call(
        &self,
        resource_type: &str,
        match_tags: &Tags,
        token: Option<&str>,
    ) -> Result<Self::Call, Refusal>;

    /// Reads one 2xx answer of a list or select call into `observed` and says the token of
    /// the next page, if any. Only resources of `resource_type` count, with their custom
    /// tags; which ids are read is `admit`'s decision: the requested ones (entries already in
    /// `observed`) for a list, every one listed for a select.
    fn read_list(
        &self,
        resource_type: &str,
        body: &str,
        observed: &mut TagsByResource,
        admit: Admit,
    ) -> Result<Option<String>, AnswerError>;

    /// The call that applies (`Tag`) or removes (`Untag`) `tags` on `resource_ids`, within
    /// the limits.
    fn write_call(
        &self,
        op: WriteOp,
        resource_type: &str,
        resource_ids: &[String],
        tags: &Tags,
    ) -> Result<Self::Call, Refusal>;

    /// Reads the 2xx answer of a write call: the resources (of `resource_ids`) the cloud
    /// reports as not written.
    fn read_write(
        &self,
        op: WriteOp,
        resource_type: &str,
        resource_ids: &[String],
        body: &str,
    ) -> Result<WriteResult, AnswerError>;

    /// Signs `call` for one attempt with `key`, with a fresh nonce and time.
    fn sign(&self, call: &Self::Call, key: &AccessKey) -> Result<HttpRequest, Refusal>;

    /// The error of a non-2xx answer, classified.
    fn error_of(
        &self,
        action: &'static str,
        status: u16,
        headers: &HeaderMap,
        body: &str,
    ) -> CloudError;

    /// The server's hint of when to try again, from the answer's headers.
    fn retry_after(&self, headers: &HeaderMap) -> Option<Duration>;

    /// The request id of a 2xx answer, for logs.
    fn request_id(&self, headers: &HeaderMap, body: &str) -> Option<String>;

    /// True for the cloud's throttling errors: the rate limiter slows down on them.
    fn is_throttling(&self, error: &CloudError) -> bool;

    /// What a 2xx answer should be, for the message when it is not: e.g. `an Alibaba Cloud
    /// ListTagResources document`.
    fn document_name(&self, action: &'static str) -> String;
}
