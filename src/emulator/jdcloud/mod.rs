//! JD Cloud's resource-tag service at `/v1/regions/{regionId}/...` (spec:
//! jdcloud-resource-tag.md).
//!
//! Served: `POST /v1/regions/{regionId}/tags:tagResources`, `tags:unTagResources` and
//! `tags:describeResources`, with a JSON body; the `:` may arrive raw or as `%3A` (the path
//! is percent-decoded before routing and signing, section 2 step 2.2). The service's other
//! operations (describeTags, describeKeys, describeValues, queryResource) and another method
//! answer 501 `NOT_IMPLEMENTED`; any other path 404 `NOT_FOUND`.
//!
//! Handling order: added latency, injected faults (before authentication, so a throttled or
//! failed request leaves its nonce unused), the path (operation), the signature and replay
//! checks ([`auth`]: JDCLOUD2 and JDCLOUD3), the JSON body, the operation's rules
//! ([`rules`], [`ops`]), then the store. Errors have the body of section 6 with the HTTP
//! status in `error.code`; a write's per-resource failures (unknown resource, tag quota,
//! value mismatch on untag) are listed in `failedResourcesMap` of a 200 answer.

mod auth;
mod ops;
mod rules;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use percent_encoding::percent_decode_str;
use serde_json::{Value, json};

pub use rules::{JdcloudConfig, JdcloudLimits};

use self::auth::Verifier;
use self::ops::Write;
use super::App;
use super::faults::Fault;
use super::inventory::JDCLOUD;
use super::stats::OK;

/// The `pin` (account name) of every answer, as in the documentation's examples.
const PIN: &str = "jdcloud_user";

/// The routes of the JD Cloud side.
pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new().route("/v1/regions/{*rest}", any(handle))
}

/// One error answer (section 6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct JdError {
    /// HTTP status, repeated in `error.code`.
    pub http: u16,
    /// Symbolic `error.status`, e.g. `INVALID_ARGUMENT`.
    pub status: &'static str,
    /// `error.message`.
    pub message: String,
    /// Seconds for a `Retry-After` header, when the answer carries one.
    pub retry_after: Option<u32>,
}

impl JdError {
    fn new(http: u16, status: &'static str, message: impl Into<String>) -> Self {
        JdError {
            http,
            status,
            message: message.into(),
            retry_after: None,
        }
    }

    /// 400 `INVALID_ARGUMENT`.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        JdError::new(400, "INVALID_ARGUMENT", message)
    }

    /// 401 `UNAUTHENTICATED`: bad signature, unknown key, stale date.
    pub fn unauthenticated(message: impl Into<String>) -> Self {
        JdError::new(401, "UNAUTHENTICATED", message)
    }

    /// 403 for a nonce seen before (section 2, "Clock and replay": the gateway's
    /// `APIGW_NONCE_CONFLICT`).
    pub fn nonce_conflict(nonce: &str) -> Self {
        JdError::new(
            403,
            "APIGW_NONCE_CONFLICT",
            format!("x-jdcloud-nonce {nonce:?} was used before; every request needs a new one"),
        )
    }

    fn from_fault(fault: Fault) -> Self {
        match fault {
            Fault::RateLimited => JdError {
                retry_after: Some(1),
                ..JdError::new(429, "RATE_LIMIT_EXCEEDED", "request rate limit exceeded")
            },
            Fault::Throttled => JdError::new(429, "RATE_LIMIT_EXCEEDED", "throttled"),
            Fault::InternalError => JdError::new(500, "INTERNAL", "internal error"),
            Fault::ServiceUnavailable => JdError::new(503, "UNAVAILABLE", "service unavailable"),
        }
    }

    fn response(&self, request_id: &str) -> Response {
        let body = json!({
            "requestId": request_id,
            "error": {"code": self.http, "status": self.status, "message": self.message},
        });
        let status = StatusCode::from_u16(self.http).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert("retry-after", HeaderValue::from(seconds));
        }
        response
    }
}

/// The operations served.
const SERVED: [&str; 3] = ["tagResources", "unTagResources", "describeResources"];
/// The service's other operations (section 1), answered 501.
const UNSERVED: [&str; 4] = [
    "describeTags",
    "describeKeys",
    "describeValues",
    "queryResource",
];

/// What the path names.
enum Operation {
    Write(Write),
    Describe,
}

/// Region and operation of a path, percent-decoded: `/v1/regions/{region}/{operation}`.
fn route(path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix("/v1/regions/")?;
    let (region, operation) = rest.split_once('/')?;
    let decode = |text: &str| {
        percent_decode_str(text)
            .decode_utf8()
            .ok()
            .map(|t| t.into_owned())
    };
    Some((decode(region)?, decode(operation)?))
}

async fn handle(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request_id = uuid::Uuid::new_v4().simple().to_string();
    let routed = route(uri.path());
    // NB: a path that names no operation of the service counts under `-`.
    let action = routed
        .as_ref()
        .map(|(_, operation)| operation.strip_prefix("tags:").unwrap_or(operation))
        .filter(|action| SERVED.contains(action) || UNSERVED.contains(action))
        .unwrap_or("-")
        .to_string();
    let result = serve(&app, &method, &uri, &headers, &body, routed).await;
    let outcome = match &result {
        Ok(_) => OK,
        Err(error) => error.status,
    };
    app.stats.record(JDCLOUD, &action, outcome);
    tracing::debug!(cloud = JDCLOUD, %action, outcome, "emulator request");
    let mut response = match result {
        Ok(result) => {
            axum::Json(json!({"requestId": request_id, "result": result})).into_response()
        }
        Err(error) => error.response(&request_id),
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-jdcloud-request-id", value);
    }
    response
}

/// The `result` of a successful answer, or the error.
async fn serve(
    app: &App,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    routed: Option<(String, String)>,
) -> Result<Value, JdError> {
    let latency = app.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(fault) = app.faults.decide(Instant::now()) {
        return Err(JdError::from_fault(fault));
    }
    let not_found = || {
        JdError::new(
            404,
            "NOT_FOUND",
            format!("no such operation: {}", uri.path()),
        )
    };
    let (region, operation_name) = routed.ok_or_else(not_found)?;
    let operation = match operation_name.as_str() {
        "tags:tagResources" => Operation::Write(Write::Tag),
        "tags:unTagResources" => Operation::Write(Write::Untag),
        "tags:describeResources" => Operation::Describe,
        "describeTags" | "tags:describeKeys" | "tags:describeValues" | "queryResource" => {
            return Err(JdError::new(
                501,
                "NOT_IMPLEMENTED",
                format!(
                    "{operation_name} is an operation of the service that this emulator does \
                     not serve; it serves {}",
                    SERVED.join(", ")
                ),
            ));
        }
        _ => return Err(not_found()),
    };
    if region.is_empty() {
        return Err(JdError::invalid_argument(
            "Invalid parameter regionId: required",
        ));
    }
    if *method != Method::POST {
        return Err(JdError::new(
            501,
            "NOT_IMPLEMENTED",
            format!("{method} is not supported; the tag operations are POST"),
        ));
    }
    let verifier = Verifier {
        accounts: &app.accounts,
        nonces: &app.nonces,
        clock_skew: app.clock_skew,
        signing_services: &app.jdcloud.signing_services,
    };
    let received = auth::Received {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        headers,
        body,
        region: &region,
    };
    verifier.verify(&received, app.faults.now(), Instant::now())?;
    // NB: the SDKs also send `regionId` in the body; the path decides (section 1).
    let document: Value = serde_json::from_slice(body).map_err(|error| {
        JdError::invalid_argument(format!("the body is not a JSON document: {error}"))
    })?;
    let document = without_nulls(document);
    if !document.is_object() {
        return Err(JdError::invalid_argument("the body must be a JSON object"));
    }
    let config = &app.jdcloud;
    match operation {
        Operation::Write(write) => {
            let request = ops::write_request(write, &document, &region, config)?;
            let outcome = app
                .store
                .change(|store| {
                    Ok::<_, JdError>(ops::write(store, write, &request, &region, config))
                })
                .await?;
            let failed: Vec<Value> = outcome
                .failed
                .into_iter()
                .map(|(id, msg)| json!({"resourceId": id, "msg": msg}))
                .collect();
            Ok(json!({"data": {
                "pin": PIN,
                "region": region,
                "failedResourcesMap": failed,
                "successCount": outcome.success_count,
            }}))
        }
        Operation::Describe => {
            let request = ops::describe_request(&document, &region, config)?;
            let list = app
                .store
                .read(|store| ops::describe(store, &request, &region, config));
            Ok(json!({"data": {
                "pin": PIN,
                "region": region,
                "resourceTagMappingList": list,
            }}))
        }
    }
}

/// The document with every object member whose value is `null` removed, at any depth: the
/// official SDKs serialise unset optional fields as `null` (e.g. a `TagFilter` without
/// `values`), and the cloud reads them as absent. A `null` inside an array stays (it is not an
/// absent field, and is refused where a value is expected).
fn without_nulls(value: Value) -> Value {
    match value {
        Value::Object(members) => Value::Object(
            members
                .into_iter()
                .filter(|(_, member)| !member.is_null())
                .map(|(name, member)| (name, without_nulls(member)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

/// Every parser of a request body, for the fuzz tests.
#[cfg(test)]
pub(crate) mod fuzzing {
    use super::*;

    /// Parses `document` as each operation in `region`, and applies what parses to a store.
    pub(crate) fn parse_every_operation(document: &Value, region: &str) {
        let config = JdcloudConfig::default();
        let mut store = crate::emulator::store::Store::default();
        for write in [Write::Tag, Write::Untag] {
            if let Ok(request) = ops::write_request(write, document, region, &config) {
                let _ = ops::write(&mut store, write, &request, region, &config);
            }
        }
        if let Ok(request) = ops::describe_request(document, region, &config) {
            let _ = ops::describe(&store, &request, region, &config);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_decode_before_routing() {
        assert_eq!(
            route("/v1/regions/cn-north-1/tags:tagResources"),
            Some(("cn-north-1".to_string(), "tags:tagResources".to_string()))
        );
        assert_eq!(
            route("/v1/regions/cn-north-1/tags%3AtagResources"),
            Some(("cn-north-1".to_string(), "tags:tagResources".to_string()))
        );
        assert_eq!(route("/v1/regions/cn-north-1"), None);
        assert_eq!(route("/v2/regions/x/tags:tagResources"), None);
    }

    #[test]
    fn nulls_are_absent_members_at_any_depth() {
        let sent = json!({"regionId": "cn-north-1", "resourceVo": {
            "serviceCodes": ["vm"], "resourceIds": null, "orderCondition": null,
            "tagFilters": [{"key": "env", "values": null, "operator": null}],
            "list": [null, 1]}});
        let config = JdcloudConfig::default();
        let cleaned = without_nulls(sent.clone());
        assert_eq!(
            cleaned,
            json!({"regionId": "cn-north-1", "resourceVo": {
                "serviceCodes": ["vm"],
                "tagFilters": [{"key": "env"}],
                "list": [null, 1]}})
        );
        assert!(ops::describe_request(&sent, "cn-north-1", &config).is_err());
        let request = ops::describe_request(&cleaned, "cn-north-1", &config).unwrap();
        assert_eq!(request.resource_ids, None);
        assert_eq!(request.tag_filters.len(), 1);
    }

    #[test]
    fn faults_answer_with_the_section_6_statuses() {
        let throttled = JdError::from_fault(Fault::RateLimited);
        assert_eq!(
            (throttled.http, throttled.status),
            (429, "RATE_LIMIT_EXCEEDED")
        );
        assert_eq!(throttled.retry_after, Some(1));
        assert_eq!(JdError::from_fault(Fault::InternalError).http, 500);
        assert_eq!(
            JdError::from_fault(Fault::ServiceUnavailable).status,
            "UNAVAILABLE"
        );
    }
}
