//! AWS Signature Version 4 (spec: aws-resource-groups-tagging.md section 2), through the
//! official `aws-sigv4` crate: tagbinder does not sign AWS requests by hand. Pinned by the
//! AWS SigV4 test suite in `tests/vectors/aws-sigv4/` (`tests/aws_sigv4.rs`).
//!
//! The emulator verifies signatures with its own reading of the documentation
//! (`emulator::aws::auth`), checked against the same suite, so that a mistake in one is not
//! the other's.

use std::time::SystemTime;

use sha2::Digest;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

/// The credentials of one signature: an access key, and the session token of temporary
/// credentials. `Debug` shows the key id only.
#[derive(Clone)]
pub struct AwsCredentials {
    /// The access key id (not secret; it appears in every request).
    pub access_key_id: String,
    secret_access_key: secrecy::SecretString,
    session_token: Option<secrecy::SecretString>,
}

impl AwsCredentials {
    /// Credentials from a key id, its secret and, for temporary credentials, the session token.
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Self {
        AwsCredentials {
            access_key_id: access_key_id.into(),
            secret_access_key: secrecy::SecretString::from(secret_access_key.into()),
            session_token: session_token.map(secrecy::SecretString::from),
        }
    }

    /// True when a session token comes with the key (temporary credentials).
    pub fn has_session_token(&self) -> bool {
        self.session_token.is_some()
    }

    fn identity(&self) -> Identity {
        use secrecy::ExposeSecret;
        Credentials::new(
            &self.access_key_id,
            self.secret_access_key.expose_secret(),
            self.session_token
                .as_ref()
                .map(|token| token.expose_secret().to_string()),
            None,
            "tagbinder",
        )
        .into()
    }
}

impl std::fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"[redacted]")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// One request to sign: the method, the URL as sent (already encoded), the headers besides
/// those the signature adds, and the body.
#[derive(Clone, Copy, Debug)]
pub struct Unsigned<'a> {
    /// `GET`, `POST`, ...
    pub method: &'a str,
    /// The full URL, e.g. `https://tagging.us-east-1.amazonaws.com/`.
    pub url: &'a str,
    /// Headers to sign, e.g. `host`, `content-type`, `x-amz-target`.
    pub headers: &'a [(&'a str, &'a str)],
    /// The body.
    pub body: &'a [u8],
}

/// Why the signer could not sign a request (the aws-sigv4 crate's own message).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The signing parameters (identity, region, service, time) are incomplete.
    #[error("SigV4 parameters: {0}")]
    Parameters(String),
    /// The request cannot be signed (its URL or a header).
    #[error("SigV4 cannot sign a request to {url}: {error}")]
    Request {
        /// The request's URL.
        url: String,
        /// Why.
        error: String,
    },
    /// The signature could not be computed.
    #[error("SigV4 signing failed: {0}")]
    Signing(String),
}

/// Why a request does not verify: the rule of SigV4 it breaks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A header that must be there once is absent or repeated.
    #[error("missing {0} header (exactly one)")]
    Header(&'static str),
    /// The Authorization header does not start with [`ALGORITHM`].
    #[error("the Authorization header's algorithm is not {ALGORITHM}")]
    Algorithm,
    /// A component of the Authorization header without `=`.
    #[error("malformed Authorization component {0:?}")]
    MalformedComponent(String),
    /// A component of the Authorization header SigV4 does not define.
    #[error("unknown Authorization component {0:?}")]
    UnknownComponent(String),
    /// A component the Authorization header lacks.
    #[error("the Authorization header lacks {0}")]
    MissingComponent(&'static str),
    /// A Credential that is not `KEY/DATE/REGION/SERVICE/aws4_request`.
    #[error("Credential {0:?} is not KEY/DATE/REGION/SERVICE/aws4_request")]
    Credential(String),
    /// SignedHeaders not lowercase, sorted and unique.
    #[error("SignedHeaders must be lowercase names, sorted, each once")]
    SignedHeadersOrder,
    /// An `X-Amz-Date` that is not a SigV4 time.
    #[error(transparent)]
    Date(#[from] AmzDateError),
    /// The credential scope's date is not the request's.
    #[error("the credential scope's date {scope} is not the date of X-Amz-Date {date}")]
    ScopeDate {
        /// The scope's date.
        scope: String,
        /// The request's `X-Amz-Date`.
        date: String,
    },
    /// `host` is not signed.
    #[error("SignedHeaders must include host")]
    HostNotSigned,
    /// A signed header the request does not carry.
    #[error("signed header {0} is not in the request")]
    SignedHeaderAbsent(String),
    /// The access key id is not known.
    #[error("unknown access key id {0:?}")]
    UnknownKey(String),
    /// The signature is not the one the secret gives.
    #[error("the request signature does not match: the canonical request or the secret differs")]
    Mismatch,
}

/// An `X-Amz-Date` that is not `YYYYMMDD'T'HHMMSS'Z'`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("X-Amz-Date {0:?} is not YYYYMMDDTHHMMSSZ")]
pub struct AmzDateError(pub String);

/// The headers SigV4 adds to `request` (`x-amz-date`, `x-amz-security-token` for temporary
/// credentials, `authorization`), signed at `time` for `region` and `service` (`tagging`,
/// `sts`). The session token is signed (it is in the canonical request), as the AWS SDKs do.
pub fn sign_headers(
    credentials: &AwsCredentials,
    region: &str,
    service: &str,
    time: SystemTime,
    request: Unsigned<'_>,
) -> Result<Vec<(String, String)>, SignError> {
    let identity = credentials.identity();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|error| SignError::Parameters(error.to_string()))?
        .into();
    let signable = SignableRequest::new(
        request.method,
        request.url,
        request.headers.iter().copied(),
        SignableBody::Bytes(request.body),
    )
    .map_err(|error| SignError::Request {
        url: request.url.to_string(),
        error: error.to_string(),
    })?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|error| SignError::Signing(error.to_string()))?
        .into_parts();
    Ok(instructions
        .headers()
        .map(|(name, value)| (name.to_ascii_lowercase(), value.to_string()))
        .collect())
}

/// The algorithm name of SigV4 (the Authorization header's first word).
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";

/// A signed request as a server receives it: what [`verify`] checks.
#[derive(Clone, Debug)]
pub struct Verification<'a> {
    /// The method.
    pub method: &'a str,
    /// The path as received (still percent-encoded).
    pub path: &'a str,
    /// The raw query, without `?` (empty when none).
    pub query: &'a str,
    /// Every header, in the order received (a name may repeat).
    pub headers: Vec<(&'a str, &'a str)>,
    /// The body.
    pub body: &'a [u8],
}

/// Who signed a request that verified, and for which scope and time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedScope {
    /// The access key id of the credential.
    pub access_key_id: String,
    /// The region of the credential scope.
    pub region: String,
    /// The service of the credential scope.
    pub service: String,
    /// The request's `x-amz-date`.
    pub time: SystemTime,
    /// The `x-amz-security-token` header, when the request carries one.
    pub session_token: Option<String>,
}

/// Checks a SigV4 `Authorization` header against the request, as the AWS documentation
/// describes the server's side ("Create a canonical request", "Create a string to sign",
/// "Calculate the signature"): written from the documentation, independently of the signer,
/// and pinned by the same suite. `secret_of` gives the secret of an access key id, `None`
/// when the key is unknown. The error says which rule the request broke; the caller maps it
/// to the service's error code. Clock skew and the session token's validity are the
/// caller's checks.
pub fn verify(
    request: &Verification<'_>,
    secret_of: impl FnOnce(&str) -> Option<String>,
) -> Result<SignedScope, VerifyError> {
    let header = |wanted: &str| -> Vec<&str> {
        request
            .headers
            .iter()
            .filter(|(name, _)| name.eq_ignore_ascii_case(wanted))
            .map(|(_, value)| *value)
            .collect()
    };
    let authorization = header("authorization");
    let [authorization] = authorization[..] else {
        return Err(VerifyError::Header("Authorization"));
    };
    let parsed = parse_authorization(authorization)?;
    let date = header("x-amz-date");
    let [date] = date[..] else {
        return Err(VerifyError::Header("X-Amz-Date"));
    };
    let time = parse_amz_date(date)?;
    if parsed.date != date.get(..8).unwrap_or_default() {
        return Err(VerifyError::ScopeDate {
            scope: parsed.date,
            date: date.to_string(),
        });
    }
    if !parsed.signed_headers.iter().any(|name| name == "host") {
        return Err(VerifyError::HostNotSigned);
    }
    let mut canonical_headers = String::new();
    for name in &parsed.signed_headers {
        let values = header(name);
        if values.is_empty() {
            return Err(VerifyError::SignedHeaderAbsent(name.clone()));
        }
        let joined: Vec<String> = values.iter().map(|value| collapse(value)).collect();
        canonical_headers.push_str(&format!("{name}:{}\n", joined.join(",")));
    }
    let canonical = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{}\n{}",
        request.method,
        canonical_uri(request.path),
        canonical_query(request.query),
        parsed.signed_headers.join(";"),
        hex::encode(sha2::Sha256::digest(request.body)),
    );
    let scope = format!(
        "{}/{}/{}/aws4_request",
        parsed.date, parsed.region, parsed.service
    );
    let string_to_sign = format!(
        "{ALGORITHM}\n{date}\n{scope}\n{}",
        hex::encode(sha2::Sha256::digest(canonical.as_bytes()))
    );
    let secret = zeroize::Zeroizing::new(
        secret_of(&parsed.access_key_id)
            .ok_or_else(|| VerifyError::UnknownKey(parsed.access_key_id.clone()))?,
    );
    let key = signing_key(&secret, &parsed.date, &parsed.region, &parsed.service);
    let expected = hex::encode(hmac(&key, string_to_sign.as_bytes()));
    if !crate::emulator::constant_time_eq(expected.as_bytes(), parsed.signature.as_bytes()) {
        return Err(VerifyError::Mismatch);
    }
    let session_token = header("x-amz-security-token")
        .first()
        .map(|t| t.to_string());
    Ok(SignedScope {
        access_key_id: parsed.access_key_id,
        region: parsed.region,
        service: parsed.service,
        time,
        session_token,
    })
}

/// The parts of an `Authorization: AWS4-HMAC-SHA256 Credential=.., SignedHeaders=..,
/// Signature=..` header.
struct Authorization {
    access_key_id: String,
    date: String,
    region: String,
    service: String,
    signed_headers: Vec<String>,
    signature: String,
}

fn parse_authorization(value: &str) -> Result<Authorization, VerifyError> {
    let Some(rest) = value
        .strip_prefix(ALGORITHM)
        .and_then(|rest| rest.strip_prefix(' '))
    else {
        return Err(VerifyError::Algorithm);
    };
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for part in rest.split(',') {
        let (name, value) = part
            .trim()
            .split_once('=')
            .ok_or_else(|| VerifyError::MalformedComponent(part.trim().to_string()))?;
        let slot = match name {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed_headers,
            "Signature" => &mut signature,
            other => return Err(VerifyError::UnknownComponent(other.to_string())),
        };
        *slot = Some(value.to_string());
    }
    let credential = credential.ok_or(VerifyError::MissingComponent("Credential"))?;
    let signed_headers = signed_headers.ok_or(VerifyError::MissingComponent("SignedHeaders"))?;
    let signature = signature.ok_or(VerifyError::MissingComponent("Signature"))?;
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, "aws4_request"] = parts[..] else {
        return Err(VerifyError::Credential(credential));
    };
    let signed_headers: Vec<String> = signed_headers.split(';').map(str::to_string).collect();
    let mut sorted = signed_headers.clone();
    sorted.sort();
    sorted.dedup();
    if sorted != signed_headers
        || signed_headers
            .iter()
            .any(|name| name.is_empty() || name.to_ascii_lowercase() != *name)
    {
        return Err(VerifyError::SignedHeadersOrder);
    }
    Ok(Authorization {
        access_key_id: access_key_id.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
        signed_headers,
        signature,
    })
}

/// `YYYYMMDD'T'HHMMSS'Z'` as a time.
pub fn parse_amz_date(value: &str) -> Result<SystemTime, AmzDateError> {
    let time = jiff::civil::DateTime::strptime("%Y%m%dT%H%M%SZ", value)
        .and_then(|civil| civil.to_zoned(jiff::tz::TimeZone::UTC))
        .map_err(|_| AmzDateError(value.to_string()))?;
    Ok(SystemTime::from(time.timestamp()))
}

/// A header value as the canonical request has it: trimmed, every run of spaces (and the
/// line breaks of a folded value) one space.
fn collapse(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Everything but `A-Z a-z 0-9 - _ . ~`.
const UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// The same, keeping `/`.
const PATH: &percent_encoding::AsciiSet = &UNRESERVED.remove(b'/');

/// The canonical URI (every service but S3): the path with its dot segments resolved and
/// empty segments dropped, then each byte outside the unreserved set encoded, once more than
/// the client sent it (the SDKs encode the path again when they sign).
fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            segment => segments.push(segment),
        }
    }
    let mut normalized = format!("/{}", segments.join("/"));
    if path.ends_with('/') && !segments.is_empty() {
        normalized.push('/');
    }
    percent_encoding::utf8_percent_encode(&normalized, PATH).to_string()
}

/// The canonical query: each name and value decoded and encoded again, sorted by name then
/// value, `name=value` joined by `&`.
fn canonical_query(raw: &str) -> String {
    let encode = |text: &str| {
        let decoded: Vec<u8> = percent_encoding::percent_decode_str(text).collect();
        percent_encoding::percent_encode(&decoded, UNRESERVED).to_string()
    };
    let pairs: Vec<(String, String)> = raw
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (encode(name), encode(value))
        })
        .collect();
    super::sorted_query(pairs)
}

fn hmac(key: &[u8], message: &[u8]) -> zeroize::Zeroizing<Vec<u8>> {
    use hmac::{KeyInit, Mac};
    // NB: HMAC takes keys of any length; new_from_slice cannot fail for it.
    let mut mac =
        hmac::Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    zeroize::Zeroizing::new(mac.finalize().into_bytes().to_vec())
}

/// The signing key: `AWS4` + secret, then HMAC over date, region, service, `aws4_request`.
fn signing_key(
    secret: &str,
    date: &str,
    region: &str,
    service: &str,
) -> zeroize::Zeroizing<Vec<u8>> {
    let prefixed = zeroize::Zeroizing::new(format!("AWS4{secret}"));
    let k_date = hmac(prefixed.as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_secret_and_the_token() {
        let credentials = AwsCredentials::new("AKIDEXAMPLE", "s3cr3t", Some("t0k3n".to_string()));
        let printed = format!("{credentials:?}");
        assert!(printed.contains("AKIDEXAMPLE"), "{printed}");
        assert!(
            !printed.contains("s3cr3t") && !printed.contains("t0k3n"),
            "{printed}"
        );
    }
}
