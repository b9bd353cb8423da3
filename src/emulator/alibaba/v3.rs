//! Verification of V3 signatures, `ACS3-HMAC-SHA256` (spec section 4), for every product.
//!
//! A request is V3 when its `Authorization` header starts with `ACS3-`. The action and the
//! version come from `x-acs-action` and `x-acs-version`; the RPC parameters from the query
//! and a form body, as for V1; the signature covers the query, the headers named in
//! `SignedHeaders` and the SHA-256 of the body bytes.
//!
//! Order of the checks: `x-acs-action`, `x-acs-version`, `x-acs-date`,
//! `x-acs-signature-nonce` (`MissingParameter.<name>`), the `Authorization` header and its
//! `SignedHeaders` list (`IncompleteSignature`: another algorithm, a missing part, or a list
//! without `host`, `content-type` when present, or an `x-acs-*` header present), the access
//! key, the date's format and window, the signature (computed over the body actually
//! received, whatever `x-acs-content-sha256` claims), then the nonce, recorded only once the
//! signature holds and shared with V1 requests of the same key.

use std::time::Instant;

use axum::http::HeaderMap;
use percent_encoding::percent_decode_str;
use secrecy::ExposeSecret;

use super::auth::Verifier;
use super::errors::RpcError;
use crate::cloud::sign::acs3;
use crate::cloud::sign::rpc_percent_encode;
use crate::emulator::constant_time_eq;

/// What a V3 request brings to its verification.
pub(crate) struct V3Request<'a> {
    /// `GET` or `POST`.
    pub method: &'a str,
    /// The path as received (`/` for RPC).
    pub path: &'a str,
    /// Every header.
    pub headers: &'a HeaderMap,
    /// The decoded query pairs (the body is covered by its hash, not here).
    pub query: Vec<(&'a str, &'a str)>,
    /// The body bytes.
    pub body: &'a [u8],
}

/// Action and version of a V3 request, from its headers.
pub(crate) fn action_and_version(headers: &HeaderMap) -> (Option<&str>, Option<&str>) {
    (
        header(headers, "x-acs-action"),
        header(headers, "x-acs-version"),
    )
}

/// True when the request carries a V3 `Authorization` header (any `ACS3-` algorithm, so
/// that an unsupported one is refused as such rather than as a V1 request).
pub(crate) fn is_v3(headers: &HeaderMap) -> bool {
    header(headers, "authorization").is_some_and(|auth| auth.starts_with("ACS3-"))
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|value| value.to_str().ok())
        .filter(|value| !value.is_empty())
}

fn required<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, RpcError> {
    header(headers, name).ok_or_else(|| RpcError::missing(Some(name), name))
}

impl Verifier<'_> {
    /// Checks a V3 request at `now`; answers the caller's access key id.
    pub fn verify_v3(
        &self,
        request: &V3Request<'_>,
        now: jiff::Timestamp,
        instant: Instant,
    ) -> Result<String, RpcError> {
        let headers = request.headers;
        for name in ["x-acs-action", "x-acs-version"] {
            required(headers, name)?;
        }
        let date = required(headers, "x-acs-date")?;
        let nonce = required(headers, "x-acs-signature-nonce")?;
        let authorization = required(headers, "authorization")?;
        let parsed = acs3::parse_authorization(authorization).ok_or_else(|| {
            RpcError::incomplete_v3_signature(&format!(
                "The Authorization header must read \"{} Credential=<AccessKeyId>,\
                 SignedHeaders=<names>,Signature=<hex>\".",
                acs3::ALGORITHM
            ))
        })?;
        let signed: Vec<&str> = parsed.signed_headers.split(';').collect();
        check_signed_list(headers, &signed)?;
        let key = self
            .accounts
            .resolve(
                &parsed.access_key_id,
                header(headers, "x-acs-security-token"),
                now,
            )
            .map_err(RpcError::refused_key)?;
        let secret = &key.secret;
        let timestamp: jiff::Timestamp = date.parse().map_err(|_| RpcError::timestamp_format())?;
        let remaining = self.remaining_validity(timestamp, now)?;
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for name in &signed {
            let before = pairs.len();
            for value in headers.get_all(*name) {
                let value = value.to_str().map_err(|_| {
                    RpcError::incomplete_v3_signature(&format!(
                        "The signed header {name} is not text."
                    ))
                })?;
                pairs.push((name, value));
            }
            if pairs.len() == before {
                return Err(RpcError::incomplete_v3_signature(&format!(
                    "The signed header {name} is not in the request."
                )));
            }
        }
        let (canonical_headers, signed_headers) = acs3::canonical_headers(pairs);
        let query = acs3::canonical_query(request.query.iter().copied());
        let payload_hash = acs3::payload_hash(request.body);
        let canonical_request = acs3::canonical_request(&acs3::CanonicalInput {
            method: request.method,
            uri: &canonical_uri(request.path),
            query: &query,
            headers: &canonical_headers,
            signed_headers: &signed_headers,
            payload_hash: &payload_hash,
        });
        let string_to_sign = acs3::string_to_sign(&canonical_request);
        let expected = acs3::signature(secret.expose_secret(), &string_to_sign);
        if !constant_time_eq(expected.as_bytes(), parsed.signature.as_bytes()) {
            return Err(RpcError::v3_signature_mismatch(
                &string_to_sign,
                &canonical_request,
            ));
        }
        self.remember_nonce(&parsed.access_key_id, nonce, remaining, instant)?;
        Ok(key.owner)
    }
}

/// `SignedHeaders` must name `host`, `content-type` when the request has one, and every
/// `x-acs-*` header of the request (section 4 step 2), in lowercase.
fn check_signed_list(headers: &HeaderMap, signed: &[&str]) -> Result<(), RpcError> {
    if let Some(name) = signed
        .iter()
        .find(|name| name.is_empty() || name.chars().any(|c| c.is_ascii_uppercase()))
    {
        return Err(RpcError::incomplete_v3_signature(&format!(
            "SignedHeaders must list lowercase header names; {name:?} is not one."
        )));
    }
    let mut needed = vec!["host"];
    if headers.contains_key("content-type") {
        needed.push("content-type");
    }
    needed.extend(
        headers
            .keys()
            .map(|name| name.as_str())
            .filter(|name| name.starts_with("x-acs-")),
    );
    match needed.into_iter().find(|name| !signed.contains(name)) {
        Some(name) => Err(RpcError::incomplete_v3_signature(&format!(
            "SignedHeaders lacks {name}."
        ))),
        None => Ok(()),
    }
}

/// The path percent-encoded segment by segment, `/` kept (section 4 step 1); `/` when empty.
fn canonical_uri(path: &str) -> String {
    if path.is_empty() {
        return "/".to_string();
    }
    path.split('/')
        .map(|segment| rpc_percent_encode(&percent_decode_str(segment).decode_utf8_lossy()))
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::http::{HeaderName, HeaderValue};
    use serde::Deserialize;
    use serde_json::{Map, Value};

    use super::*;
    use crate::emulator::inventory::{Account, Accounts};
    use crate::emulator::nonce::NonceCache;

    #[derive(Deserialize)]
    struct Vector {
        name: String,
        access_key_id: String,
        access_key_secret: String,
        http_method: String,
        query_params: Map<String, Value>,
        headers: Map<String, Value>,
        body: String,
        authorization: String,
    }

    #[derive(Deserialize)]
    struct File {
        vectors: Vec<Vector>,
    }

    fn vectors() -> Vec<Vector> {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/spec/vectors/alibaba_acs3_v3.json"
        );
        let text = std::fs::read_to_string(path).unwrap();
        serde_json::from_str::<File>(&text).unwrap().vectors
    }

    fn header_map(vector: &Vector, authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in &vector.headers {
            headers.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value.as_str().unwrap()).unwrap(),
            );
        }
        headers.insert(
            "authorization",
            HeaderValue::from_str(authorization).unwrap(),
        );
        headers
    }

    fn check(vector: &Vector, headers: &HeaderMap, body: &[u8]) -> Result<String, RpcError> {
        let accounts = Accounts::new(&[Account {
            access_key_id: vector.access_key_id.clone(),
            access_key_secret: vector.access_key_secret.clone(),
        }]);
        let nonces = NonceCache::new(10);
        let verifier = Verifier {
            accounts: &accounts,
            nonces: &nonces,
            clock_skew: Duration::from_secs(900),
        };
        let date: jiff::Timestamp = vector.headers["x-acs-date"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let request = V3Request {
            method: &vector.http_method,
            path: "/",
            headers,
            query: vector
                .query_params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap()))
                .collect(),
            body,
        };
        let first = verifier.verify_v3(&request, date, Instant::now());
        if first.is_ok() {
            let replay = verifier.verify_v3(&request, date, Instant::now());
            assert_eq!(replay.unwrap_err().code, "SignatureNonceUsed");
        }
        first
    }

    /// The official-SDK vectors verify; a changed body, a wrong secret or a dropped signed
    /// header does not.
    #[test]
    fn accepts_every_official_vector_and_refuses_tampering() {
        for vector in vectors() {
            let name = vector.name.clone();
            let headers = header_map(&vector, &vector.authorization);
            assert_eq!(
                check(&vector, &headers, vector.body.as_bytes()),
                Ok(vector.access_key_id.clone()),
                "{name}"
            );
            let tampered = check(&vector, &headers, b"RegionId=cn-beijing");
            let error = tampered.unwrap_err();
            assert_eq!(error.code, "SignatureDoesNotMatch", "{name}");
            assert!(
                error
                    .message
                    .contains("server StringToSign is [ACS3-HMAC-SHA256\n")
            );
            let wrong = Vector {
                access_key_secret: "not-the-secret".to_string(),
                ..vector
            };
            assert_eq!(
                check(&wrong, &headers, wrong.body.as_bytes())
                    .unwrap_err()
                    .code,
                "SignatureDoesNotMatch"
            );
            let unsigned_action = wrong.authorization.replace("x-acs-action;", "");
            let headers = header_map(&wrong, &unsigned_action);
            let error = check(&wrong, &headers, wrong.body.as_bytes()).unwrap_err();
            assert_eq!(error.code, "IncompleteSignature", "{name}");
            assert!(error.message.contains("x-acs-action"), "{}", error.message);
        }
    }

    #[test]
    fn names_missing_headers_and_other_algorithms() {
        let vector = vectors().remove(1);
        let mut headers = header_map(&vector, &vector.authorization);
        headers.remove("x-acs-signature-nonce");
        assert_eq!(
            check(&vector, &headers, b"").unwrap_err().code,
            "MissingParameter.x-acs-signature-nonce"
        );
        let sm3 = vector
            .authorization
            .replace("ACS3-HMAC-SHA256", "ACS3-HMAC-SM3");
        let headers = header_map(&vector, &sm3);
        assert!(is_v3(&headers));
        assert_eq!(
            check(&vector, &headers, b"").unwrap_err().code,
            "IncompleteSignature"
        );
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/a b/c"), "/a%20b/c");
    }
}
