//! The client chassis: one implementation of what every tag API client does around its wire
//! protocol. A [`Client`] over a [`Protocol`] owns the HTTP client, the rate limiter, the call
//! observer, the retry loop, the batch-limit check, the chunking of ids, the pagination guard
//! and a `Debug` without secrets; the protocol contributes only what differs between APIs:
//! building and signing a request, classifying error answers, and reading answers.
//!
//! - `read`: lists by id and the pages of every read;
//! - `select`: lists by tag (a binding's `resourceSelector`), with their safety rules.
//!
//! API Gateway and ECS ([`super::alibaba::ProductApi`]), the Tag service
//! ([`super::alibaba::TagService`]) and JD Cloud ([`super::jdcloud::JdcloudConfig`]) are
//! protocols of this one chassis.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName};
use tracing::Instrument;

mod read;
mod select;

pub use read::Admit;
pub(crate) use select::check_match_tags;

use super::credentials::Credentials;
use super::ratelimit::{RateLimiter, limited};
use super::retry::{AttemptError, retry};
use super::transport::{excerpt, from_transport, local};
use super::{
    AccessKey, CallObserver, CloudError, ErrorKind, RetryPolicy, TagApi, WriteOp, WriteResult,
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
    fn check_resource_type(&self, resource_type: &str) -> Result<(), String>;

    /// Checks a binding's `resourceIds` (see [`TagApi::check_resource_ids`]).
    fn check_resource_ids(
        &self,
        resource_type: &str,
        resource_ids: &[String],
    ) -> Result<(), String> {
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
    fn setup_answer(&self, body: &str) -> Result<(), String> {
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
    ) -> Result<Self::Call, CloudError>;

    /// The call that lists every resource of `resource_type` carrying all of `match_tags`
    /// (exact key and value; 1..=`selector_tags` of them, checked by the chassis), by tag
    /// filter alone (no resource ids), from the page `token` on.
    fn select_call(
        &self,
        resource_type: &str,
        match_tags: &Tags,
        token: Option<&str>,
    ) -> Result<Self::Call, CloudError>;

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
    ) -> Result<Option<String>, String>;

    /// The call that applies (`Tag`) or removes (`Untag`) `tags` on `resource_ids`, within
    /// the limits.
    fn write_call(
        &self,
        op: WriteOp,
        resource_type: &str,
        resource_ids: &[String],
        tags: &Tags,
    ) -> Result<Self::Call, CloudError>;

    /// Reads the 2xx answer of a write call: the resources (of `resource_ids`) the cloud
    /// reports as not written.
    fn read_write(
        &self,
        op: WriteOp,
        resource_type: &str,
        resource_ids: &[String],
        body: &str,
    ) -> Result<WriteResult, String>;

    /// Signs `call` for one attempt with `key`, with a fresh nonce and time.
    fn sign(&self, call: &Self::Call, key: &AccessKey) -> Result<HttpRequest, CloudError>;

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

/// A tag API client: the chassis over one protocol.
#[derive(Clone)]
pub struct Client<P> {
    protocol: Arc<P>,
    http: reqwest::Client,
    observer: Option<Arc<dyn CallObserver>>,
    limiter: Option<Arc<RateLimiter>>,
    /// Limiters of single actions (AWS's per-action rates), before `limiter`.
    action_limiters: Vec<(&'static str, Arc<RateLimiter>)>,
    /// Held while the setup call is made, so that it is made once.
    setup: Arc<tokio::sync::Mutex<()>>,
}

impl<P: Protocol> fmt::Debug for Client<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // NB: the protocol's configuration holds the key, whose Debug shows only its id.
        f.debug_struct("Client")
            .field("protocol", &self.protocol)
            .field("observed", &self.observer.is_some())
            .field(
                "rate",
                &self.limiter.as_ref().map(|limiter| limiter.configured()),
            )
            .finish_non_exhaustive()
    }
}

impl<P: Protocol> Client<P> {
    /// A client of `protocol` over a shared HTTP client.
    pub fn new(protocol: impl Into<P>, http: reqwest::Client) -> Self {
        Client {
            protocol: Arc::new(protocol.into()),
            http,
            observer: None,
            limiter: None,
            action_limiters: Vec::new(),
            setup: Arc::default(),
        }
    }

    /// Makes the protocol's setup call ([`Protocol::setup_call`]) if it is due: once, however
    /// many calls wait for it.
    pub async fn set_up(&self) -> Result<(), CloudError> {
        if self.protocol.setup_call().is_none() {
            return Ok(());
        }
        let _held = self.setup.lock().await;
        let Some(call) = self.protocol.setup_call() else {
            return Ok(());
        };
        // NB: the setup call's action is its own (GetCallerIdentity), with no rate of its own.
        let action = self.protocol.setup_action();
        let body = self.call(action, 0, &call).await?;
        self.protocol
            .setup_answer(&body)
            .map_err(|error| self.not_a_document(action, &body, &error))
    }

    /// The protocol (and its configuration).
    pub fn protocol(&self) -> &P {
        &self.protocol
    }

    /// The same client, reporting the outcome of every HTTP attempt (`ok` or the error code)
    /// to `observer`, e.g. for `tagbinder_cloud_requests_total`.
    pub fn with_observer(mut self, observer: Arc<dyn CallObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The same client, sending every HTTP attempt through `limiter` (shared by every client
    /// of one provider), which slows down when the cloud throttles.
    pub fn with_rate_limiter(mut self, limiter: Arc<RateLimiter>) -> Self {
        self.limiter = Some(limiter);
        self
    }

    /// The same client, sending every HTTP attempt of `action` through `limiter` instead of
    /// the provider's limiter (per-action rates, as AWS's tagging API has them).
    pub fn with_action_rate_limiter(
        mut self,
        action: &'static str,
        limiter: Arc<RateLimiter>,
    ) -> Self {
        self.action_limiters.push((action, limiter));
        self
    }

    /// Sends one signed attempt of `call`: the body of a 2xx answer, or the classified
    /// failure with the server's retry-after hint.
    pub(crate) async fn send(
        &self,
        action: &'static str,
        call: &P::Call,
        attempt: u32,
    ) -> Result<String, AttemptError> {
        // NB: temporary credentials are fetched here when due (before they expire); a fixed
        // key is just copied.
        let key = self.protocol.settings().credentials.current().await?;
        let request = self.protocol.sign(call, &key)?;
        let timeout = self.protocol.settings().timeout;
        // NB: errors name the URL without its query, which may carry AccessKeyId and Signature.
        let shown = request
            .url
            .split('?')
            .next()
            .unwrap_or_default()
            .to_string();
        let mut builder = self
            .http
            .request(request.method, &request.url)
            .timeout(timeout);
        for (name, value) in request.headers {
            builder = builder.header(name, value);
        }
        if !request.body.is_empty() {
            builder = builder.body(request.body);
        }
        let response = builder.send().await.map_err(|error| {
            let error = from_transport(action, &shown, timeout, error);
            tracing::debug!(attempt, code = %error.code, "no answer");
            AttemptError::from(error)
        })?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let retry_after = self.protocol.retry_after(&headers);
        let body = response.text().await.map_err(|error| AttemptError {
            error: from_transport(action, &shown, timeout, error),
            retry_after,
        })?;
        if (200..300).contains(&status) {
            let request_id = self.protocol.request_id(&headers, &body);
            tracing::debug!(attempt, status, request_id, "answer");
            return Ok(body);
        }
        let error = self.protocol.error_of(action, status, &headers, &body);
        tracing::debug!(
            attempt,
            status,
            code = %error.code,
            request_id = error.request_id.as_deref(),
            "error answer"
        );
        Err(AttemptError { error, retry_after })
    }

    /// One attempt, through the rate limiter, reported to the observer.
    async fn attempt(
        &self,
        action: &'static str,
        call: &P::Call,
        attempt: u32,
    ) -> Result<String, AttemptError> {
        let protocol = &self.protocol;
        let limiter = self
            .action_limiters
            .iter()
            .find(|(limited_action, _)| *limited_action == action)
            .map(|(_, limiter)| limiter.as_ref())
            .or(self.limiter.as_deref());
        let result = limited(
            limiter,
            |error| protocol.is_throttling(error),
            self.send(action, call, attempt),
        )
        .await;
        if let Some(observer) = &self.observer {
            let outcome = match &result {
                Ok(_) => "ok",
                Err(failure) => failure.error.code.as_str(),
            };
            observer.observe(protocol.cloud_name(), action, outcome);
            if let Err(failure) = &result
                && protocol.is_throttling(&failure.error)
            {
                observer.throttled(protocol.cloud_name(), action);
            }
            if let Some(limiter) = &self.limiter {
                observer.rate(limiter.current_rate());
            }
        }
        result
    }

    /// One call, retried by the policy (each attempt signed afresh); answers with the body of
    /// the 2xx answer.
    async fn call(
        &self,
        action: &'static str,
        resources: usize,
        call: &P::Call,
    ) -> Result<String, CloudError> {
        let cloud = self.protocol.cloud_name();
        let span = tracing::debug_span!("cloud_call", cloud, action, resources);
        let outcome = retry(self.protocol.settings().retry, action, |attempt| {
            self.attempt(action, call, attempt)
        })
        .instrument(span.clone())
        .await;
        match &outcome {
            Ok(_) => tracing::debug!(parent: &span, "call succeeded"),
            Err(error) => tracing::debug!(
                parent: &span,
                code = %error.code,
                kind = error.kind.as_str(),
                attempts = error.attempts,
                request_id = error.request_id.as_deref(),
                "call failed"
            ),
        }
        outcome
    }

    /// The error of a 2xx answer that is not the document it should be.
    fn not_a_document(&self, action: &'static str, body: &str, error: &str) -> CloudError {
        local(
            ErrorKind::InvalidInput,
            action,
            "InvalidResponse",
            format!(
                "the answer of {} is not {} ({error}); is the provider's endpoint right? Body \
                 starts: {}",
                self.protocol.settings().endpoint,
                self.protocol.document_name(action),
                excerpt(body.trim())
            ),
            1,
        )
    }

    /// Refuses, before sending, a write the caller should have batched (a programming error).
    fn check_batch(
        &self,
        action: &'static str,
        op: WriteOp,
        resource_ids: usize,
        tags: usize,
    ) -> Result<(), CloudError> {
        let limits = self.protocol.settings().limits;
        let (item_limit, item_name) = match op {
            WriteOp::Tag => (limits.tags_per_call, "tags"),
            WriteOp::Untag => (limits.keys_per_untag_call, "tag keys"),
        };
        let excess = if resource_ids > limits.resources_per_call {
            Some((resource_ids, limits.resources_per_call, "resource ids"))
        } else if tags > item_limit {
            Some((tags, item_limit, item_name))
        } else {
            None
        };
        match excess {
            None => Ok(()),
            Some((count, limit, what)) => Err(local(
                ErrorKind::InvalidInput,
                action,
                "BatchTooLarge",
                format!(
                    "{count} {what} in one {action} call; this API accepts at most {limit} per \
                     call, so the caller must split the batch (nothing was sent)"
                ),
                0,
            )),
        }
    }

    /// A write: the limits checked, one call, per-resource results.
    async fn write(
        &self,
        op: WriteOp,
        resource_type: &str,
        resource_ids: &[String],
        tags: &Tags,
    ) -> Result<WriteResult, CloudError> {
        if resource_ids.is_empty() || tags.is_empty() {
            return Ok(WriteResult::default());
        }
        let action = self.protocol.action(op.into());
        self.check_batch(action, op, resource_ids.len(), tags.len())?;
        self.set_up().await?;
        let call = self
            .protocol
            .write_call(op, resource_type, resource_ids, tags)?;
        let body = self.call(action, resource_ids.len(), &call).await?;
        let mut result = self
            .protocol
            .read_write(op, resource_type, resource_ids, &body)
            .map_err(|error| self.not_a_document(action, &body, &error))?;
        let doubtful = self
            .protocol
            .doubtful_failures(resource_type, resource_ids, &body);
        if !doubtful.is_empty() {
            self.settle_doubtful(op, resource_type, tags, doubtful, &mut result)
                .await;
        }
        if !result.failed.is_empty() {
            tracing::debug!(
                action,
                failed = result.failed.len(),
                "some resources failed"
            );
        }
        Ok(result)
    }
}

impl<P: Protocol> Client<P> {
    /// Settles the doubtful failures of a write (see [`Protocol::doubtful_failures`]): the
    /// write of those resources is sent once more; what is still in doubt is read, and a
    /// resource that carries the write's effect is written. Whatever stays failed keeps its
    /// error, its message saying what was tried.
    async fn settle_doubtful(
        &self,
        op: WriteOp,
        resource_type: &str,
        tags: &Tags,
        doubtful: Vec<String>,
        result: &mut WriteResult,
    ) {
        let action = self.protocol.action(op.into());
        let mut still = doubtful;
        let retried = match self.protocol.write_call(op, resource_type, &still, tags) {
            Ok(call) => self.call(action, still.len(), &call).await.ok(),
            Err(_) => None,
        };
        if let Some(body) = retried
            && let Ok(answer) = self.protocol.read_write(op, resource_type, &still, &body)
        {
            let again = self
                .protocol
                .doubtful_failures(resource_type, &still, &body);
            for id in &still {
                match answer.failed.get(id) {
                    None => {
                        result.failed.remove(id);
                    }
                    Some(error) if !again.contains(id) => {
                        result.failed.insert(id.clone(), error.clone());
                    }
                    Some(_) => {}
                }
            }
            still.retain(|id| again.contains(id));
        }
        if still.is_empty() {
            return;
        }
        tracing::debug!(action, resources = still.len(), "a doubtful write is read");
        let observed = match TagApi::list_tags(self, resource_type, &still).await {
            Ok(observed) => observed,
            Err(error) => {
                for id in &still {
                    if let Some(failed) = result.failed.get_mut(id) {
                        failed.message = format!(
                            "{} (retried once; the read that would tell whether it was \
                             applied failed: {})",
                            failed.message, error.message
                        );
                    }
                }
                return;
            }
        };
        for id in still {
            let carried = observed.get(&id);
            let applied = match op {
                WriteOp::Tag => tags
                    .iter()
                    .all(|(key, value)| carried.and_then(|t| t.get(key)) == Some(value)),
                WriteOp::Untag => tags
                    .keys()
                    .all(|key| carried.is_none_or(|t| !t.contains_key(key))),
            };
            if applied {
                result.failed.remove(&id);
            } else if let Some(failed) = result.failed.get_mut(&id) {
                failed.message = format!(
                    "{} (twice; a read shows the {action} was not applied: the API may not \
                     support this resource's type, or failed for a moment; retried with the \
                     next pass)",
                    failed.message
                );
            }
        }
    }
}

impl<P: Protocol> TagApi for Client<P> {
    fn cloud_name(&self) -> &'static str {
        self.protocol.cloud_name()
    }

    fn limits(&self) -> &Limits {
        self.protocol.settings().limits
    }

    fn check_resource_type(&self, resource_type: &str) -> Result<(), String> {
        self.protocol.check_resource_type(resource_type)
    }

    fn check_resource_ids(
        &self,
        resource_type: &str,
        resource_ids: &[String],
    ) -> Result<(), String> {
        self.protocol
            .check_resource_ids(resource_type, resource_ids)
    }

    async fn list_tags(
        &self,
        resource_type: &str,
        resource_ids: &[String],
    ) -> Result<TagsByResource, CloudError> {
        self.set_up().await?;
        let mut observed: TagsByResource = resource_ids
            .iter()
            .map(|id| (id.clone(), Tags::new()))
            .collect();
        // NB: the map holds each id once, so a repeated id is listed once.
        let unique: Vec<String> = observed.keys().cloned().collect();
        for chunk in crate::calls::read_chunks(&unique, self.limits()) {
            self.list_chunk(resource_type, chunk, &mut observed).await?;
        }
        Ok(observed)
    }

    async fn tag_resources(
        &self,
        resource_type: &str,
        resource_ids: &[String],
        tags: &Tags,
    ) -> Result<WriteResult, CloudError> {
        self.write(WriteOp::Tag, resource_type, resource_ids, tags)
            .await
    }

    async fn untag_resources(
        &self,
        resource_type: &str,
        resource_ids: &[String],
        tags: &Tags,
    ) -> Result<WriteResult, CloudError> {
        self.write(WriteOp::Untag, resource_type, resource_ids, tags)
            .await
    }

    async fn select_resources(
        &self,
        resource_type: &str,
        match_tags: &Tags,
    ) -> Result<TagsByResource, CloudError> {
        self.set_up().await?;
        self.select(resource_type, match_tags).await
    }
}

/// Keeps, of the resources a write answer reports as failed, those the call carried: an id
/// the call did not carry is the server's confusion, not a result.
pub(crate) fn failures_of_call(
    resource_ids: &[String],
    failed: impl IntoIterator<Item = (String, super::ResourceError)>,
) -> WriteResult {
    let mut result = WriteResult::default();
    for (id, error) in failed {
        if resource_ids.contains(&id) {
            result.failed.insert(id, error);
        } else {
            tracing::debug!(resource = %id, "a write answer names a resource not in the call");
        }
    }
    result
}
