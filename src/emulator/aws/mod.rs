//! AWS: the Resource Groups Tagging API (`2017-01-26`, JSON 1.1) and the two STS actions of
//! the credential chain, on `POST /` beside Alibaba Cloud's RPC (spec:
//! aws-resource-groups-tagging.md).
//!
//! A request is AWS's when it carries `X-Amz-Target`, a SigV4 `Authorization`, or an STS
//! form body (`Version=2011-06-15`); everything else on `/` is Alibaba Cloud's.
//!
//! Handling order: added latency, injected faults (`ThrottledException`,
//! `InternalServiceException`), the per-action rate of the account and region when
//! [`AwsConfig::enforce_rates`] is on (section 6), the SigV4 signature ([`auth`]: scope
//! service `tagging` or `sts`, clock skew, session tokens of the credentials STS issued),
//! then the operation ([`ops`], [`sts`]).
//!
//! # The account
//! The emulator serves one AWS account: the account of the AWS resources of its inventory
//! (they must agree), or [`DEFAULT_ACCOUNT`] when it has none. Every access key of the
//! inventory is a user of it.

mod auth;
mod get;
mod ops;
mod sts;

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::App;
use super::faults::Fault;
use super::inventory::{AWS, InventoryError, InventoryResource};
use super::stats::OK;

pub(crate) use ops::{ArnError, check_resource};

/// The account of an inventory without AWS resources (the documentation's example account).
pub const DEFAULT_ACCOUNT: &str = "123456789012";

/// The `X-Amz-Target` prefix of the tagging API (spec section 1).
const TARGET_PREFIX: &str = "ResourceGroupsTaggingAPI_20170126.";
/// STS's `Version`.
const STS_VERSION: &str = "2011-06-15";

/// AWS rules of the emulator.
#[derive(Clone, Debug, PartialEq)]
pub struct AwsConfig {
    /// How long a GetResources `PaginationToken` stays valid (spec section 3: 15 minutes);
    /// tests shorten it.
    pub pagination_token_ttl: Duration,
    /// Answer `ThrottledException` above the documented per-action rates (spec section 6),
    /// per account and region. Off by default, as the other clouds' rate faults are.
    pub enforce_rates: bool,
    /// Calls per second of GetResources, TagResources and UntagResources when enforced.
    pub rates: AwsRates,
    /// Default `ResourcesPerPage` of GetResources (the documentation gives no default).
    pub default_page_size: usize,
    /// A fault: the first this many TagResources or UntagResources of each ARN report it in
    /// `FailedResourcesMap` as `InternalServiceException` (spec section 4). 0: never.
    pub internal_errors: u32,
    /// With `internal_errors`: whether such a write is applied all the same (the answer says
    /// it failed; a read shows it did not), or not at all (a type the API cannot tag).
    pub internal_error_applies: bool,
}

/// Per-action rates (spec section 6).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AwsRates {
    /// GetResources per second.
    pub get_resources: f64,
    /// TagResources per second.
    pub tag_resources: f64,
    /// UntagResources per second.
    pub untag_resources: f64,
}

impl Default for AwsRates {
    fn default() -> Self {
        AwsRates {
            get_resources: 15.0,
            tag_resources: 5.0,
            untag_resources: 5.0,
        }
    }
}

impl Default for AwsConfig {
    fn default() -> Self {
        AwsConfig {
            pagination_token_ttl: Duration::from_secs(15 * 60),
            enforce_rates: false,
            rates: AwsRates::default(),
            default_page_size: 50,
            internal_errors: 0,
            internal_error_applies: false,
        }
    }
}

/// The AWS side's own state: the credentials STS issued, the rate buckets.
#[derive(Debug, Default)]
pub(crate) struct AwsState {
    /// Access key id of temporary credentials to what they are.
    issued: Mutex<HashMap<String, sts::Issued>>,
    /// (account, region, action) to the time the next call may come (GCRA).
    buckets: Mutex<HashMap<(String, String, &'static str), Instant>>,
    /// Writes of each ARN answered with an injected `InternalServiceException`.
    internal_errors: Mutex<HashMap<String, u32>>,
}

impl AwsState {
    /// The temporary credentials of an access key id STS issued.
    pub(crate) fn issued(&self, access_key_id: &str) -> Option<sts::Issued> {
        let issued = self.issued.lock().unwrap_or_else(PoisonError::into_inner);
        issued.get(access_key_id).cloned()
    }

    /// Remembers temporary credentials STS issued.
    fn remember(&self, access_key_id: String, issued: sts::Issued, now: std::time::SystemTime) {
        let mut all = self.issued.lock().unwrap_or_else(PoisonError::into_inner);
        // NB: expired credentials are useless; forgetting them bounds the map by the live ones.
        all.retain(|_, known| known.expires > now);
        all.insert(access_key_id, issued);
    }

    /// True when this write of `arn` is answered with an injected `InternalServiceException`
    /// (the first `limit` of each ARN); counts it.
    pub(crate) fn internal_error(&self, arn: &str, limit: u32) -> bool {
        if limit == 0 {
            return false;
        }
        let mut counts = self
            .internal_errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(arn.to_string()).or_insert(0);
        if *count >= limit {
            return false;
        }
        *count += 1;
        true
    }

    /// True when `action` may go now for `account` in `region`; books the slot.
    fn admit(&self, key: (String, String, &'static str), rate: f64, now: Instant) -> bool {
        if rate <= 0.0 {
            return true;
        }
        let interval = Duration::from_secs_f64(1.0 / rate);
        // NB: a burst of one second's worth, as the documentation's "per second" reads.
        let tolerance = Duration::from_secs(1).saturating_sub(interval);
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let tat = buckets.entry(key).or_insert(now);
        let earliest = tat.checked_sub(tolerance).unwrap_or(now);
        if now < earliest {
            return false;
        }
        *tat = (*tat).max(now) + interval;
        true
    }
}

/// The account the emulator serves (see the module docs).
pub(crate) fn account_of(resources: &[InventoryResource]) -> Result<String, InventoryError> {
    let mut account: Option<String> = None;
    for resource in resources.iter().filter(|r| r.cloud == AWS) {
        let parsed = ops::parse_arn(&resource.id).map_err(|rule| InventoryError::Aws {
            resource: resource.name(),
            rule,
        })?;
        if parsed.account.is_empty() {
            continue;
        }
        match &account {
            Some(known) if *known != parsed.account => {
                return Err(InventoryError::Accounts {
                    resource: resource.name(),
                    found: parsed.account.to_string(),
                    known: known.clone(),
                });
            }
            _ => account = Some(parsed.account.to_string()),
        }
    }
    Ok(account.unwrap_or_else(|| DEFAULT_ACCOUNT.to_string()))
}

/// Whether a request to `/` is AWS's (see the module docs).
pub(crate) fn is_aws(headers: &HeaderMap, body: &[u8]) -> bool {
    if headers.contains_key("x-amz-target") {
        return true;
    }
    let signed_v4 = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with(crate::cloud::sign::aws::ALGORITHM));
    signed_v4
        || form_urlencoded::parse(body)
            .any(|(name, value)| name == "Version" && value == STS_VERSION)
}

/// One error answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AwsError {
    /// HTTP status.
    pub http: u16,
    /// The error code (`__type` of JSON answers, `Code` of STS's XML).
    pub code: &'static str,
    /// The message.
    pub message: String,
}

impl AwsError {
    pub(crate) fn new(http: u16, code: &'static str, message: impl Into<String>) -> Self {
        AwsError {
            http,
            code,
            message: message.into(),
        }
    }

    /// 400 `InvalidParameterException`.
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        AwsError::new(400, "InvalidParameterException", message)
    }

    fn from_fault(fault: Fault) -> Self {
        match fault {
            Fault::RateLimited | Fault::Throttled => {
                AwsError::new(400, "ThrottledException", "Rate exceeded")
            }
            Fault::InternalError => AwsError::new(
                500,
                "InternalServiceException",
                "Internal service error; you can retry the request",
            ),
            Fault::ServiceUnavailable => {
                AwsError::new(503, "ServiceUnavailable", "Service unavailable")
            }
        }
    }

    /// The JSON 1.1 error answer (spec section 1).
    fn json_response(&self, request_id: &str) -> Response {
        let status = StatusCode::from_u16(self.http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = json!({"__type": self.code, "Message": self.message}).to_string();
        let mut response = (status, body).into_response();
        set_json_headers(&mut response, request_id);
        if let Ok(value) = HeaderValue::from_str(self.code) {
            response.headers_mut().insert("x-amzn-errortype", value);
        }
        response
    }
}

fn set_json_headers(response: &mut Response, request_id: &str) {
    let headers = response.headers_mut();
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.1"),
    );
    if let Ok(value) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", value);
    }
}

/// Handles one AWS request on `/`.
pub(crate) async fn handle(
    app: &App,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let request_id = uuid::Uuid::new_v4().to_string();
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    match target {
        Some(target) => {
            let action = target
                .strip_prefix(TARGET_PREFIX)
                .filter(|op| ops::OPERATIONS.contains(op))
                .unwrap_or("-")
                .to_string();
            let result = tagging(app, method, uri, headers, body, &target).await;
            let outcome = match &result {
                Ok(_) => OK,
                Err(error) => error.code,
            };
            app.stats.record(AWS, &action, outcome);
            tracing::debug!(cloud = AWS, %action, outcome, "emulator request");
            match result {
                Ok(document) => {
                    let mut response = (StatusCode::OK, document.to_string()).into_response();
                    set_json_headers(&mut response, &request_id);
                    response
                }
                Err(error) => error.json_response(&request_id),
            }
        }
        None => sts::handle(app, method, uri, headers, body, &request_id).await,
    }
}

/// The added latency and the injected faults of one request (before anything is checked).
async fn faults(app: &App) -> Result<(), AwsError> {
    let latency = app.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match app.faults.decide(Instant::now()) {
        Some(fault) => Err(AwsError::from_fault(fault)),
        None => Ok(()),
    }
}

/// The faults, the signature and the rate of a signed request, in that order (see the module
/// docs): the caller.
async fn admit(
    app: &App,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    service: &str,
    action: &'static str,
    rate: Option<f64>,
) -> Result<auth::Caller, AwsError> {
    faults(app).await?;
    let caller = auth::verify(app, uri, headers, body, service)?;
    if let Some(rate) = rate.filter(|_| app.aws.enforce_rates) {
        let key = (caller.account.clone(), caller.region.clone(), action);
        if !app.aws_state.admit(key, rate, Instant::now()) {
            return Err(AwsError::new(
                400,
                "ThrottledException",
                format!(
                    "Rate exceeded: {action} allows {rate} calls per second per account and \
                     region"
                ),
            ));
        }
    }
    Ok(caller)
}

/// A tagging API request: the answer document, or the error.
async fn tagging(
    app: &App,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    target: &str,
) -> Result<serde_json::Value, AwsError> {
    let operation = target
        .strip_prefix(TARGET_PREFIX)
        .and_then(|op| ops::OPERATIONS.iter().find(|known| **known == op))
        .ok_or_else(|| {
            AwsError::new(
                400,
                "UnknownOperationException",
                format!(
                    "X-Amz-Target {target:?} is not an operation served here: {}",
                    ops::OPERATIONS
                        .iter()
                        .map(|op| format!("{TARGET_PREFIX}{op}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })?;
    if *method != Method::POST || uri.path() != "/" {
        return Err(AwsError::new(
            400,
            "UnknownOperationException",
            format!("{method} {}: the tagging API is POST /", uri.path()),
        ));
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/x-amz-json-1.1") {
        return Err(AwsError::new(
            400,
            "UnknownOperationException",
            format!(
                "Content-Type {content_type:?}: the tagging API speaks JSON 1.1 \
                 (application/x-amz-json-1.1)"
            ),
        ));
    }
    let rate = match *operation {
        ops::GET_RESOURCES => app.aws.rates.get_resources,
        ops::TAG_RESOURCES => app.aws.rates.tag_resources,
        _ => app.aws.rates.untag_resources,
    };
    let caller = admit(app, uri, headers, body, "tagging", operation, Some(rate)).await?;
    let document: serde_json::Value = serde_json::from_slice(body).map_err(|error| {
        AwsError::new(
            400,
            "SerializationException",
            format!("the body is not JSON: {error}"),
        )
    })?;
    let serde_json::Value::Object(input) = document else {
        return Err(AwsError::new(
            400,
            "SerializationException",
            "the body must be a JSON object",
        ));
    };
    ops::serve(app, &caller, operation, &input).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_allow_a_second_worth_then_throttle() {
        let state = AwsState::default();
        let now = Instant::now();
        let key = || ("1".to_string(), "us-east-1".to_string(), "TagResources");
        let admitted = (0..10).filter(|_| state.admit(key(), 5.0, now)).count();
        assert_eq!(admitted, 5);
        assert!(state.admit(key(), 5.0, now + Duration::from_millis(200)));
        assert!(!state.admit(key(), 5.0, now + Duration::from_millis(200)));
        let other = ("1".to_string(), "us-west-2".to_string(), "TagResources");
        assert!(state.admit(other, 5.0, now), "per region");
    }

    #[test]
    fn aws_requests_are_told_from_alibaba_ones() {
        let mut headers = HeaderMap::new();
        assert!(!is_aws(&headers, b"Action=TagResources&Version=2018-08-28"));
        assert!(is_aws(
            &headers,
            b"Action=AssumeRoleWithWebIdentity&Version=2011-06-15"
        ));
        headers.insert("x-amz-target", HeaderValue::from_static("X.Y"));
        assert!(is_aws(&headers, b""));
    }
}
