//! Verification of JDCLOUD2- and JDCLOUD3-HMAC-SHA256 signatures (spec section 2) and of
//! replays.
//!
//! Order of the checks: the Authorization header and its algorithm, the date and nonce
//! headers, the credential scope (date, region of the path, service, terminator), the access
//! key, the date window, the signed-header list (must hold `host`; every header it names
//! must be present), the signature, the nonce. The nonce is recorded only once the signature
//! holds, so that a forged request cannot burn a client's nonce.
//!
//! A faithful verifier accepts any signed-header list that contains `host`: the current
//! Python SDK signs only `content-type;host` (section 2, step 3).

use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use secrecy::ExposeSecret;

use super::JdError;
use crate::cloud::sign::jdcloud::{
    Algorithm, CanonicalInput, canonical_request, parse_authorization, sha256_hex, signature,
    signing_key, string_to_sign,
};
use crate::emulator::constant_time_eq;
use crate::emulator::inventory::{Accounts, JDCLOUD, KeyRefusal};
use crate::emulator::nonce::NonceCache;

const DATE_HEADER: &str = "x-jdcloud-date";
const NONCE_HEADER: &str = "x-jdcloud-nonce";
const TOKEN_HEADER: &str = "x-jdcloud-security-token";
const DATE_FORMAT: &str = "%Y%m%dT%H%M%SZ";

/// What the verifier needs besides the request.
pub(crate) struct Verifier<'a> {
    /// Known access keys.
    pub accounts: &'a Accounts,
    /// Nonces seen.
    pub nonces: &'a NonceCache,
    /// Accepted distance between `x-jdcloud-date` and the server clock.
    pub clock_skew: Duration,
    /// Accepted service names of the scope.
    pub signing_services: &'a [String],
}

/// One received request, as the signature sees it.
pub(crate) struct Received<'a> {
    pub method: &'a str,
    /// The path as received (percent-encoded or not).
    pub path: &'a str,
    /// The raw query string, empty when none.
    pub query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    /// The region of the path.
    pub region: &'a str,
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

impl Verifier<'_> {
    /// Checks a request at `now`; answers with the access key id.
    pub fn verify(
        &self,
        request: &Received<'_>,
        now: jiff::Timestamp,
        instant: Instant,
    ) -> Result<String, JdError> {
        let authorization = header(request.headers, "authorization")
            .ok_or_else(|| JdError::unauthenticated("missing Authorization header"))?;
        let parsed = parse_authorization(authorization).ok_or_else(|| {
            JdError::unauthenticated(
                "malformed Authorization header: expected JDCLOUD2-HMAC-SHA256 (or JDCLOUD3) \
                 Credential=..., SignedHeaders=..., Signature=...",
            )
        })?;
        let date = header(request.headers, DATE_HEADER)
            .ok_or_else(|| JdError::unauthenticated("missing x-jdcloud-date header"))?;
        let nonce = header(request.headers, NONCE_HEADER)
            .filter(|nonce| !nonce.is_empty())
            .ok_or_else(|| JdError::unauthenticated("missing x-jdcloud-nonce header"))?;
        let timestamp = parse_date(date).ok_or_else(|| {
            JdError::unauthenticated(format!(
                "x-jdcloud-date {date:?} is not of the form yyyyMMddTHHmmssZ"
            ))
        })?;
        self.check_scope(parsed.algorithm, &parsed.scope, date, request.region)?;
        // NB: a security token must be signed (section 1).
        let token = header(request.headers, TOKEN_HEADER);
        if token.is_some()
            && !parsed
                .signed_headers
                .iter()
                .any(|name| name == TOKEN_HEADER)
        {
            return Err(JdError::unauthenticated(
                "x-jdcloud-security-token must be among the signed headers",
            ));
        }
        // NB: the temporary credentials this emulator issues (its STS and metadata service)
        // serve both clouds' APIs.
        let key = self
            .accounts
            .resolve(&parsed.access_key, token, now)
            .map_err(|refusal| {
                JdError::unauthenticated(match refusal {
                    KeyRefusal::Unknown => format!("unknown access key {}", parsed.access_key),
                    KeyRefusal::TokenMismatch => format!(
                        "the security token does not belong to access key {}",
                        parsed.access_key
                    ),
                    KeyRefusal::Expired => format!(
                        "the temporary credentials of access key {} are expired",
                        parsed.access_key
                    ),
                })
            })?;
        let secret = &key.secret;
        let remaining = self.remaining_validity(timestamp, now)?;
        if !parsed.signed_headers.iter().any(|name| name == "host") {
            return Err(JdError::unauthenticated("SignedHeaders must include host"));
        }
        let mut signed: Vec<(&str, String)> = Vec::new();
        for name in &parsed.signed_headers {
            let values: Vec<&str> = request
                .headers
                .get_all(name.as_str())
                .iter()
                .filter_map(|value| value.to_str().ok())
                .collect();
            if values.is_empty() {
                return Err(JdError::unauthenticated(format!(
                    "signed header {name} is not in the request"
                )));
            }
            signed.push((name.as_str(), values.join(",")));
        }
        let headers: Vec<(&str, &str)> = signed
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        let canonical = canonical_request(&CanonicalInput {
            method: request.method,
            path: request.path,
            query: request.query,
            headers: &headers,
            payload_hash: &sha256_hex(request.body),
        });
        let (region, service) = scope_parts(&parsed.scope);
        let key = signing_key(
            parsed.algorithm,
            secret.expose_secret(),
            date,
            region,
            service,
        );
        let to_sign = string_to_sign(parsed.algorithm, date, &parsed.scope, &canonical);
        let expected = signature(&key, &to_sign);
        if !constant_time_eq(expected.as_bytes(), parsed.signature.as_bytes()) {
            // NB: like the clouds, the answer shows the server's string to sign (no secret in
            // it), so that a client can find where its signing differs.
            return Err(JdError::unauthenticated(format!(
                "the request signature does not match the signature computed with the access \
                 key's secret; the server's string to sign:\n{to_sign}"
            )));
        }
        let scope = format!("{JDCLOUD}/{}", parsed.access_key);
        let expires = instant + remaining.max(self.clock_skew);
        if self.nonces.remember(&scope, nonce, expires, instant) {
            Ok(parsed.access_key)
        } else {
            Err(JdError::nonce_conflict(nonce))
        }
    }

    /// The scope `DATE8/region/service/terminator` must agree with the request.
    fn check_scope(
        &self,
        algorithm: Algorithm,
        scope: &str,
        date: &str,
        region: &str,
    ) -> Result<(), JdError> {
        let parts: Vec<&str> = scope.split('/').collect();
        let bad = |what: String| {
            Err(JdError::unauthenticated(format!(
                "credential scope {scope:?}: {what}"
            )))
        };
        let [date8, scope_region, service, terminator] = parts[..] else {
            return bad("expected DATE8/region/service/terminator".to_string());
        };
        if date.get(..8) != Some(date8) {
            return bad(format!(
                "date {date8} is not the date of x-jdcloud-date {date}"
            ));
        }
        if scope_region != region {
            return bad(format!(
                "region {scope_region} is not the region of the path, {region}"
            ));
        }
        if !self.signing_services.iter().any(|known| known == service) {
            return bad(format!(
                "service {service:?} is not this service's name ({})",
                self.signing_services.join(", ")
            ));
        }
        if terminator != algorithm.terminator() {
            return bad(format!(
                "terminator {terminator} does not go with {}",
                algorithm.name()
            ));
        }
        Ok(())
    }

    /// How long `timestamp` stays within the window, or an error when it is outside.
    fn remaining_validity(
        &self,
        timestamp: jiff::Timestamp,
        now: jiff::Timestamp,
    ) -> Result<Duration, JdError> {
        let skew =
            jiff::SignedDuration::try_from(self.clock_skew).unwrap_or(jiff::SignedDuration::MAX);
        let offset = now.duration_since(timestamp);
        if offset.abs() > skew {
            return Err(JdError::unauthenticated(format!(
                "x-jdcloud-date is {}s away from the server clock; at most {}s is accepted \
                 (check the clock of the client host)",
                offset.abs().as_secs(),
                self.clock_skew.as_secs()
            )));
        }
        // NB: |offset| <= skew, so skew - offset lies in [0, 2 * skew] and is not negative.
        Ok(Duration::try_from(skew - offset).unwrap_or_default())
    }
}

fn scope_parts(scope: &str) -> (&str, &str) {
    let mut parts = scope.split('/');
    let _date = parts.next();
    (parts.next().unwrap_or(""), parts.next().unwrap_or(""))
}

/// `yyyyMMddTHHmmssZ`, UTC.
fn parse_date(date: &str) -> Option<jiff::Timestamp> {
    if date.len() != "20260115T083000Z".len() {
        return None;
    }
    let civil = jiff::civil::DateTime::strptime(DATE_FORMAT, date).ok()?;
    civil
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()
        .map(|z| z.timestamp())
}

/// The current time in the date header's format (for tests).
#[cfg(test)]
pub(crate) fn format_date(timestamp: jiff::Timestamp) -> String {
    timestamp.strftime(DATE_FORMAT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_in_utc_and_nothing_else_does() {
        let parsed = parse_date("20260115T083000Z").unwrap();
        assert_eq!(parsed.to_string(), "2026-01-15T08:30:00Z");
        assert_eq!(format_date(parsed), "20260115T083000Z");
        for bad in [
            "2026-01-15T08:30:00Z",
            "20260115T083000",
            "20261315T083000Z",
            "",
        ] {
            assert!(parse_date(bad).is_none(), "{bad}");
        }
    }

    fn vectors(file: &str) -> Vec<serde_json::Value> {
        let path = format!("{}/spec/vectors/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        parsed["vectors"].as_array().expect("vectors").clone()
    }

    /// Verifies one official-SDK vector as the emulator receives it: the headers the SDK sent
    /// (with `host` from the URL), the raw path and query, the body.
    fn verify_vector(vector: &serde_json::Value, body: &str) -> Result<String, JdError> {
        let text = |field: &str| vector[field].as_str().unwrap_or_default().to_string();
        let url = text("url");
        let after_scheme = url.split_once("://").unwrap().1;
        let (host, target) = after_scheme.split_at(after_scheme.find('/').unwrap());
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let mut headers = HeaderMap::new();
        let mut insert = |name: &str, value: &str| {
            headers.append(
                axum::http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).unwrap(),
                axum::http::HeaderValue::from_str(value).unwrap(),
            );
        };
        insert("host", host);
        for (name, value) in vector["request_headers_in"]
            .as_object()
            .into_iter()
            .flatten()
        {
            insert(name, value.as_str().unwrap());
        }
        for name in [DATE_HEADER, NONCE_HEADER] {
            if let Some(value) = vector[name].as_str() {
                insert(name, value);
            }
        }
        insert("authorization", &text("authorization"));
        let date = headers[DATE_HEADER].to_str().unwrap().to_string();
        let accounts = Accounts::new(&[crate::emulator::Account {
            access_key_id: text("access_key"),
            access_key_secret: text("secret_key"),
        }]);
        let nonces = NonceCache::new(16);
        let services = [text("service")];
        let verifier = Verifier {
            accounts: &accounts,
            nonces: &nonces,
            clock_skew: Duration::from_secs(900),
            signing_services: &services,
        };
        let region = text("region");
        verifier.verify(
            &Received {
                method: &text("http_method"),
                path,
                query,
                headers: &headers,
                body: body.as_bytes(),
                region: &region,
            },
            parse_date(&date).unwrap(),
            Instant::now(),
        )
    }

    /// The official SDK's requests (JDCLOUD2 and JDCLOUD3, POST and GET, query strings,
    /// non-ASCII bodies, other services) verify; the same request with another body does not.
    #[test]
    fn the_official_sdk_vectors_verify() {
        let mut checked = Vec::new();
        for file in ["jdcloud_jdcloud2.json", "jdcloud_jdcloud3.json"] {
            for vector in vectors(file) {
                let name = format!("{file}: {}", vector["name"].as_str().unwrap());
                let body = vector["body"].as_str().unwrap_or_default();
                if vector["request_headers_in"].is_null() {
                    // NB: the worked example of JD Cloud's signature page signs no host; the
                    // emulator requires host among the signed headers (module docs).
                    let refused = verify_vector(&vector, body).unwrap_err();
                    assert!(
                        refused.message.contains("SignedHeaders must include host"),
                        "{name}: {refused:?}"
                    );
                    continue;
                }
                let verified = verify_vector(&vector, body)
                    .unwrap_or_else(|e| panic!("{name} does not verify: {e:?}"));
                assert_eq!(verified, vector["access_key"], "{name}");
                let tampered = verify_vector(&vector, &format!("{body} "));
                assert!(tampered.is_err(), "{name}: another body verified too");
                checked.push(name);
            }
        }
        assert_eq!(
            checked.len(),
            12,
            "every vector with its headers was checked: {checked:?}"
        );
    }
}
