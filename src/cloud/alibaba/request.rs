//! One signed RPC request and its answer (spec: alibaba-rpc-tagging.md sections 2 and 3):
//! common parameters in the query string, operation parameters in an
//! `application/x-www-form-urlencoded` body, the signature over the union of both, and a
//! fresh nonce, timestamp and signature on every attempt.

use reqwest::header::CONTENT_TYPE;
use serde::Deserialize;

use super::AlibabaConfig;
use super::errors;
use crate::cloud::AccessKey;
use crate::cloud::retry::{AttemptError, retry_after_seconds};
use crate::cloud::sign::{rpc_percent_encode, rpc_signature, rpc_string_to_sign};

/// The HTTP method of every call: parameters may be long (50 ids, 20 Unicode tags).
const METHOD: &str = "POST";
const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";
/// Throttled answers may say, in seconds, when to come back.
const RETRY_AFTER_HEADER: &str = "x-acs-retry-after";

/// What makes one attempt unique: its nonce and its timestamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Freshness {
    /// `SignatureNonce`: a UUID v4.
    pub nonce: String,
    /// `Timestamp`: now, UTC, `yyyy-MM-ddTHH:mm:ssZ`.
    pub timestamp: String,
}

impl Freshness {
    /// A new nonce and the current time.
    pub(super) fn now() -> Self {
        Freshness {
            nonce: uuid::Uuid::new_v4().to_string(),
            timestamp: jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string(),
        }
    }
}

/// The wire form of one signed request.
pub(super) struct SignedRequest {
    /// Common parameters and `Signature`, percent-encoded.
    pub query: String,
    /// Operation parameters, percent-encoded as a form body.
    pub body: String,
}

/// Signs a POST of `action` with the operation parameters `operation`.
pub(super) fn sign(
    key: &AccessKey,
    api_version: &str,
    action: &str,
    operation: &[(String, String)],
    freshness: &Freshness,
) -> SignedRequest {
    let common = [
        ("Action", action),
        ("Version", api_version),
        ("Format", "JSON"),
        ("AccessKeyId", key.id.as_str()),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("SignatureNonce", freshness.nonce.as_str()),
        ("Timestamp", freshness.timestamp.as_str()),
    ];
    let operation_pairs = || {
        operation
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    };
    let string_to_sign = rpc_string_to_sign(METHOD, common.into_iter().chain(operation_pairs()));
    let signature = rpc_signature(key.secret(), &string_to_sign);
    SignedRequest {
        query: wire_encode(
            common
                .into_iter()
                .chain([("Signature", signature.as_str())]),
        ),
        body: wire_encode(operation_pairs()),
    }
}

/// Parameters as they travel: RPC percent-encoded (always a correct URL and form encoding),
/// sorted by name like the official SDK sends them.
pub(super) fn wire_encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut encoded: Vec<(String, String)> = pairs
        .into_iter()
        .map(|(name, value)| (rpc_percent_encode(name), rpc_percent_encode(value)))
        .collect();
    encoded.sort();
    encoded
        .iter()
        .map(|(name, value)| format!("{name}={value}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The URL every call goes to: the endpoint's path `/`.
pub(super) fn root_url(endpoint: &str) -> String {
    format!("{}/", endpoint.trim_end_matches('/'))
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "RequestId")]
    request_id: Option<String>,
}

/// Makes attempt number `attempt` of `action`: signs afresh, sends, and answers with the body
/// of a 2xx answer or the classified failure (with the server's retry-after hint).
pub(super) async fn send(
    http: &reqwest::Client,
    config: &AlibabaConfig,
    action: &'static str,
    operation: &[(String, String)],
    attempt: u32,
) -> Result<String, AttemptError> {
    let signed = sign(
        &config.key,
        &config.api_version,
        action,
        operation,
        &Freshness::now(),
    );
    let url = root_url(&config.endpoint);
    let response = http
        .post(format!("{url}?{}", signed.query))
        .header(CONTENT_TYPE, FORM_CONTENT_TYPE)
        .body(signed.body)
        .timeout(config.timeout)
        .send()
        .await
        .map_err(|error| {
            let error = errors::from_transport(action, &url, config.timeout, error);
            tracing::debug!(attempt, code = %error.code, "no answer");
            AttemptError::from(error)
        })?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER_HEADER)
        .and_then(|value| value.to_str().ok())
        .and_then(retry_after_seconds);
    let body = response.text().await.map_err(|error| AttemptError {
        error: errors::from_transport(action, &url, config.timeout, error),
        retry_after,
    })?;
    if (200..300).contains(&status) {
        let request_id = serde_json::from_str::<Envelope>(&body)
            .ok()
            .and_then(|envelope| envelope.request_id);
        tracing::debug!(attempt, status, request_id, "answer");
        return Ok(body);
    }
    let error = errors::from_answer(action, status, &body);
    tracing::debug!(
        attempt,
        status,
        code = %error.code,
        request_id = error.request_id.as_deref(),
        "error answer"
    );
    Err(AttemptError { error, retry_after })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::sign::rpc_vectors;

    fn decode(encoded: &str) -> Vec<(String, String)> {
        form_urlencoded::parse(encoded.as_bytes())
            .into_owned()
            .collect()
    }

    #[test]
    fn wire_encoding_matches_the_official_sdk() {
        for vector in rpc_vectors::load() {
            let mut query = vector.query();
            query.push(("Signature", vector.signature.as_str()));
            assert_eq!(
                wire_encode(query),
                vector.signed_query_string,
                "query of {}",
                vector.name
            );
            if let Some(form_body) = &vector.form_body {
                assert_eq!(
                    wire_encode(vector.body()),
                    *form_body,
                    "body of {}",
                    vector.name
                );
            }
        }
    }

    #[test]
    fn signs_the_official_post_vector_with_operation_parameters_in_the_body() {
        let vector = rpc_vectors::load()
            .into_iter()
            .find(|vector| vector.name == "cloudapi-untagresources-post-form")
            .expect("the POST vector exists");
        let params: std::collections::BTreeMap<&str, &str> = vector.signed().into_iter().collect();
        let common = [
            "Action",
            "Version",
            "Format",
            "AccessKeyId",
            "SignatureMethod",
            "SignatureVersion",
            "SignatureNonce",
            "Timestamp",
        ];
        let operation: Vec<(String, String)> = params
            .iter()
            .filter(|(name, _)| !common.contains(name))
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        let key = AccessKey::new(params["AccessKeyId"], vector.access_key_secret.as_str());
        let freshness = Freshness {
            nonce: params["SignatureNonce"].to_string(),
            timestamp: params["Timestamp"].to_string(),
        };
        let signed = sign(
            &key,
            params["Version"],
            params["Action"],
            &operation,
            &freshness,
        );
        let query = decode(&signed.query);
        let signature = query
            .iter()
            .find(|(name, _)| name == "Signature")
            .map(|(_, value)| value.as_str());
        assert_eq!(signature, Some(vector.signature.as_str()));
        assert_eq!(
            query.len(),
            common.len() + 1,
            "only common parameters in the query"
        );
        assert_eq!(
            decode(&signed.body),
            operation,
            "operation parameters in the body"
        );
        assert!(!signed.query.contains(&vector.access_key_secret));
        assert!(!signed.body.contains(&vector.access_key_secret));
    }

    #[test]
    fn every_attempt_gets_a_new_nonce_and_a_utc_timestamp() {
        let first = Freshness::now();
        let second = Freshness::now();
        assert_ne!(first.nonce, second.nonce);
        let nonce = uuid::Uuid::parse_str(&first.nonce).expect("the nonce is a UUID");
        assert_eq!(nonce.get_version_num(), 4);
        assert_eq!(first.timestamp.len(), "2026-01-15T08:30:00Z".len());
        assert!(first.timestamp.ends_with('Z'));
        first
            .timestamp
            .parse::<jiff::Timestamp>()
            .expect("the timestamp is RFC 3339");
    }

    #[test]
    fn calls_go_to_the_root_path() {
        assert_eq!(
            root_url("https://ecs.cn-hangzhou.aliyuncs.com"),
            "https://ecs.cn-hangzhou.aliyuncs.com/"
        );
        assert_eq!(root_url("http://127.0.0.1:8080/"), "http://127.0.0.1:8080/");
    }
}
