//! One signed RPC request (spec: alibaba-rpc-tagging.md sections 2 to 4): operation
//! parameters in an `application/x-www-form-urlencoded` body, signed with the RPC HMAC-SHA1
//! scheme (V1: common parameters and `Signature` in the query, the signature over the union
//! of query and body) or with ACS3-HMAC-SHA256 (V3: action, version, date and nonce in
//! `x-acs-*` headers, the body covered by its hash); a fresh nonce, time and signature on
//! every attempt.

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HOST, HeaderName};

use super::SignatureVersion;
use crate::cloud::client::HttpRequest;
use crate::cloud::sign::{acs3, rpc_percent_encode, rpc_signature, rpc_string_to_sign};
use crate::cloud::transport::endpoint_url;
use crate::cloud::{AccessKey, Refusal, RefusalReason};

/// The HTTP method of every call: parameters may be long (50 ids, 20 Unicode tags).
const METHOD: &str = "POST";
const FORM_CONTENT_TYPE: &str = "application/x-www-form-urlencoded";

/// What makes one attempt unique: its nonce and its timestamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Freshness {
    /// `SignatureNonce` (V1) or `x-acs-signature-nonce` (V3): a UUID v4.
    pub nonce: String,
    /// `Timestamp` (V1) or `x-acs-date` (V3): now, UTC, `yyyy-MM-ddTHH:mm:ssZ`.
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
    let mut common = vec![
        ("Action", action),
        ("Version", api_version),
        ("Format", "JSON"),
        ("AccessKeyId", key.id.as_str()),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("SignatureNonce", freshness.nonce.as_str()),
        ("Timestamp", freshness.timestamp.as_str()),
    ];
    // NB: temporary credentials: the STS token is a common parameter, signed like the
    // others (spec section 2, `SecurityToken`).
    if let Some(token) = key.security_token() {
        common.push(("SecurityToken", token));
    }
    let operation_pairs = || {
        operation
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    };
    let string_to_sign =
        rpc_string_to_sign(METHOD, common.iter().copied().chain(operation_pairs()));
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

/// What to sign: one call of `action` with its operation parameters.
pub(super) struct Unsigned<'a> {
    pub endpoint: &'a str,
    pub api_version: &'a str,
    pub action: &'static str,
    pub operation: &'a [(String, String)],
}

/// The signed request of one attempt.
pub(super) fn signed_request(
    version: SignatureVersion,
    key: &AccessKey,
    unsigned: &Unsigned<'_>,
    freshness: &Freshness,
) -> Result<HttpRequest, Refusal> {
    let url = root_url(unsigned.endpoint);
    let form = [(CONTENT_TYPE, FORM_CONTENT_TYPE.to_string())];
    match version {
        SignatureVersion::V1 => {
            let signed = sign(
                key,
                unsigned.api_version,
                unsigned.action,
                unsigned.operation,
                freshness,
            );
            Ok(HttpRequest {
                method: reqwest::Method::POST,
                url: format!("{url}?{}", signed.query),
                headers: form.into(),
                body: signed.body,
            })
        }
        SignatureVersion::V3 => {
            let (_, host) = endpoint_url(unsigned.endpoint).map_err(|error| {
                Refusal::new(
                    RefusalReason::InvalidEndpoint,
                    unsigned.action,
                    error.to_string(),
                )
            })?;
            let body = wire_encode(
                unsigned
                    .operation
                    .iter()
                    .map(|(name, value)| (name.as_str(), value.as_str())),
            );
            let mut headers = sign_v3(key, &host, unsigned, &body, freshness);
            headers.extend(form);
            Ok(HttpRequest {
                method: reqwest::Method::POST,
                url,
                headers,
                body,
            })
        }
    }
}

const ACTION_HEADER: &str = "x-acs-action";
const VERSION_HEADER: &str = "x-acs-version";
const DATE_HEADER: &str = "x-acs-date";
const NONCE_HEADER: &str = "x-acs-signature-nonce";
const CONTENT_HASH_HEADER: &str = "x-acs-content-sha256";
const SECURITY_TOKEN_HEADER: &str = "x-acs-security-token";

/// The headers of a V3 request whose form body is `body` (content-type aside, which is
/// signed here and sent by the caller), Authorization last (spec section 4).
pub(super) fn sign_v3(
    key: &AccessKey,
    host: &str,
    unsigned: &Unsigned<'_>,
    body: &str,
    freshness: &Freshness,
) -> Vec<(HeaderName, String)> {
    let hash = acs3::payload_hash(body.as_bytes());
    let mut headers = vec![
        ("host", host),
        (ACTION_HEADER, unsigned.action),
        (VERSION_HEADER, unsigned.api_version),
        (DATE_HEADER, freshness.timestamp.as_str()),
        (NONCE_HEADER, freshness.nonce.as_str()),
        (CONTENT_HASH_HEADER, hash.as_str()),
        ("content-type", FORM_CONTENT_TYPE),
    ];
    // NB: temporary credentials: the STS token travels, signed, in its own header (spec
    // section 4).
    if let Some(token) = key.security_token() {
        headers.push((SECURITY_TOKEN_HEADER, token));
    }
    let (canonical_headers, signed_headers) = acs3::canonical_headers(headers.iter().copied());
    // NB: every operation parameter travels in the body, so the canonical query is empty
    // (the layout of the vector `cloudapi-untagresources-form-body`).
    let canonical = acs3::canonical_request(&acs3::CanonicalInput {
        method: METHOD,
        uri: "/",
        query: "",
        headers: &canonical_headers,
        signed_headers: &signed_headers,
        payload_hash: &hash,
    });
    let signature = acs3::signature(key.secret(), &acs3::string_to_sign(&canonical));
    let mut sent: Vec<(HeaderName, String)> = headers
        .into_iter()
        .filter(|(name, _)| *name != "content-type")
        .map(|(name, value)| {
            let name = if name == "host" {
                HOST
            } else {
                HeaderName::from_static(name)
            };
            (name, value.to_string())
        })
        .collect();
    sent.push((
        AUTHORIZATION,
        acs3::authorization(&key.id, &signed_headers, &signature),
    ));
    sent
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
    fn v3_headers_reproduce_the_official_form_body_vector() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/spec/vectors/alibaba_acs3_v3.json"
        );
        let file: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).expect("vectors")).expect("JSON");
        let vector = file["vectors"]
            .as_array()
            .expect("vectors")
            .iter()
            .find(|vector| vector["name"] == "cloudapi-untagresources-form-body")
            .expect("the form-body vector exists");
        let text = |name: &str| vector[name].as_str().expect(name).to_string();
        let header = |name: &str| vector["headers"][name].as_str().expect(name).to_string();
        let key = AccessKey::new(text("access_key_id"), text("access_key_secret"));
        let unsigned = Unsigned {
            endpoint: "https://apigateway.cn-hangzhou.aliyuncs.com",
            api_version: "2016-07-14",
            action: "UntagResources",
            operation: &[],
        };
        let freshness = Freshness {
            nonce: header("x-acs-signature-nonce"),
            timestamp: header("x-acs-date"),
        };
        let headers = sign_v3(&key, &header("host"), &unsigned, &text("body"), &freshness);
        let sent = |name: &str| {
            headers
                .iter()
                .find(|(sent, _)| sent.as_str() == name)
                .map(|(_, value)| value.clone())
        };
        assert_eq!(sent("authorization"), Some(text("authorization")));
        assert_eq!(
            sent("x-acs-content-sha256"),
            Some(header("x-acs-content-sha256"))
        );
        assert_eq!(sent("x-acs-action").as_deref(), Some("UntagResources"));
        assert!(
            headers
                .iter()
                .all(|(_, value)| !value.contains(key.secret()))
        );
    }

    #[test]
    fn v3_requests_carry_the_parameters_in_a_form_body_only() {
        let key = AccessKey::new("AK", "v3-secret-value");
        let operation = vec![
            ("RegionId".to_string(), "cn-hangzhou".to_string()),
            (
                "ResourceARN.1".to_string(),
                "arn:acs:ecs:cn-hangzhou:*:instance/i-1".to_string(),
            ),
        ];
        let unsigned = Unsigned {
            endpoint: "http://127.0.0.1:8080",
            api_version: "2018-08-28",
            action: "ListTagResources",
            operation: &operation,
        };
        let request = signed_request(SignatureVersion::V3, &key, &unsigned, &Freshness::now())
            .expect("signed");
        assert_eq!(request.url, "http://127.0.0.1:8080/");
        assert_eq!(decode(&request.body), operation);
        let host = request.headers.iter().find(|(name, _)| *name == HOST);
        assert_eq!(
            host.map(|(_, value)| value.as_str()),
            Some("127.0.0.1:8080")
        );
        let error = signed_request(
            SignatureVersion::V3,
            &key,
            &Unsigned {
                endpoint: "not a url",
                ..unsigned
            },
            &Freshness::now(),
        )
        .expect_err("no host");
        assert_eq!(error.reason, RefusalReason::InvalidEndpoint);
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
