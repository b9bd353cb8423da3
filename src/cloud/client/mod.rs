//! The client chassis: one implementation of what every tag API client does around its wire
//! protocol. A [`Client`] over a [`Protocol`] owns the HTTP client, the rate limiter, the call
//! observer, the retry loop, the batch-limit check, the chunking of ids, the pagination guard
//! and a `Debug` without secrets; the protocol contributes only what differs between APIs:
//! building and signing a request, classifying error answers, and reading answers.
//!
//! - `read`: lists by id and the pages of every read;
//! - `select`: lists by tag (a binding's `resourceSelector`), with their safety rules;
//! - `write`: tag and untag calls within the batch limits, and failures in doubt settled.
//!
//! API Gateway and ECS ([`super::alibaba::ProductApi`]), the Tag service
//! ([`super::alibaba::TagService`]) and JD Cloud ([`super::jdcloud::JdcloudConfig`]) are
//! protocols of this one chassis.

use std::fmt;
use std::sync::Arc;

mod protocol;
mod read;
mod select;
mod write;

pub use protocol::{AnswerError, HttpRequest, Operation, Protocol, Settings};
pub use read::Admit;
pub(crate) use select::check_match_tags;
pub(crate) use write::failures_of_call;

use super::ratelimit::{RateLimiter, limited};
use super::retry::{AttemptError, retry};
use super::transport::{excerpt, from_transport};
use super::{
    AddressError, CallError, CallObserver, Refusal, RefusalReason, TagApi, WriteOp, WriteResult,
};
use crate::tags::{Limits, Tags, TagsByResource};

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
    pub async fn set_up(&self) -> Result<(), CallError> {
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
            .map_err(|error| self.not_a_document(action, &body, &error).into())
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
            tracing::debug!(attempt, code = %error.code(), "no answer");
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
        Err(AttemptError {
            error: error.into(),
            retry_after,
        })
    }

    /// One attempt, through the rate limiter, reported to the observer.
    #[tracing::instrument(level = "debug", name = "attempt", skip(self, action, call))]
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
            // NB: a refusal (an endpoint or a request that could not be signed) sent nothing:
            // no HTTP attempt to count.
            let outcome = match &result {
                Ok(_) => Some("ok"),
                Err(failure) => failure.error.cloud().map(|error| error.code.as_str()),
            };
            if let Some(outcome) = outcome {
                observer.observe(protocol.cloud_name(), action, outcome);
            }
            if let Err(failure) = &result
                && failure
                    .error
                    .cloud()
                    .is_some_and(|error| protocol.is_throttling(error))
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
    #[tracing::instrument(
        level = "debug",
        name = "cloud_call",
        skip(self, call),
        fields(cloud = self.protocol.cloud_name())
    )]
    async fn call(
        &self,
        action: &'static str,
        resources: usize,
        call: &P::Call,
    ) -> Result<String, CallError> {
        let outcome = retry(self.protocol.settings().retry, action, |attempt| {
            self.attempt(action, call, attempt)
        })
        .await;
        match &outcome {
            Ok(_) => tracing::debug!("call succeeded"),
            Err(error) => tracing::debug!(
                code = %error.code(),
                kind = error.kind().as_str(),
                attempts = error.cloud().map(|error| error.attempts),
                request_id = error.cloud().and_then(|error| error.request_id.as_deref()),
                "call failed"
            ),
        }
        outcome
    }

    /// The error of a 2xx answer that is not the document it should be.
    fn not_a_document(&self, action: &'static str, body: &str, error: &AnswerError) -> Refusal {
        Refusal::new(
            RefusalReason::InvalidResponse,
            action,
            format!(
                "the answer of {} is not {} ({error}); is the provider's endpoint right? Body \
                 starts: {}",
                self.protocol.settings().endpoint,
                self.protocol.document_name(action),
                excerpt(body.trim())
            ),
        )
    }
}

impl<P: Protocol> TagApi for Client<P> {
    fn cloud_name(&self) -> &'static str {
        self.protocol.cloud_name()
    }

    fn limits(&self) -> &Limits {
        self.protocol.settings().limits
    }

    fn check_resource_type(&self, resource_type: &str) -> Result<(), AddressError> {
        self.protocol.check_resource_type(resource_type)
    }

    fn check_resource_ids(
        &self,
        resource_type: &str,
        resource_ids: &[String],
    ) -> Result<(), AddressError> {
        self.protocol
            .check_resource_ids(resource_type, resource_ids)
    }

    async fn list_tags(
        &self,
        resource_type: &str,
        resource_ids: &[String],
    ) -> Result<TagsByResource, CallError> {
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
    ) -> Result<WriteResult, CallError> {
        self.write(WriteOp::Tag, resource_type, resource_ids, tags)
            .await
    }

    async fn untag_resources(
        &self,
        resource_type: &str,
        resource_ids: &[String],
        tags: &Tags,
    ) -> Result<WriteResult, CallError> {
        self.write(WriteOp::Untag, resource_type, resource_ids, tags)
            .await
    }

    async fn select_resources(
        &self,
        resource_type: &str,
        match_tags: &Tags,
    ) -> Result<TagsByResource, CallError> {
        self.set_up().await?;
        self.select(resource_type, match_tags).await
    }
}
