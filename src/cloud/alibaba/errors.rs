//! Alibaba Cloud error answers, classified into [`ErrorKind`]s
//! (spec: alibaba-rpc-tagging.md section 7).

use serde::Deserialize;

use crate::cloud::transport::excerpt;
use crate::cloud::{CloudError, ErrorKind};

/// HTTP statuses that the official SDK retries whatever the error code.
const RETRYABLE_STATUSES: [u16; 4] = [500, 502, 503, 504];

/// True for the codes of Alibaba Cloud's flow control (`Throttling`, `Throttling.User`,
/// `Throttling.Api`, ...): the rate limiter slows down on them.
pub fn is_throttling(error: &CloudError) -> bool {
    error.code.starts_with("Throttling")
}

/// The category of an Alibaba Cloud error code, with the HTTP status as a fallback for codes
/// that do not say (the official SDK retries 500, 502, 503 and 504 whatever the code).
pub fn classify(code: &str, http_status: Option<u16>) -> ErrorKind {
    if code.starts_with("Throttling")
        || matches!(
            code,
            "InternalError" | "UnknownError" | "ServiceUnavailable"
        )
    {
        return ErrorKind::Retryable;
    }
    if code == "InvalidAccessKeyId"
        || code.starts_with("InvalidAccessKeyId.")
        || code.starts_with("Forbidden")
        || code.starts_with("InvalidSecurityToken")
        || matches!(code, "SignatureDoesNotMatch" | "IncompleteSignature")
    {
        return ErrorKind::Credentials;
    }
    if code == "OperationDenied.QuotaExceed" {
        return ErrorKind::QuotaExceeded;
    }
    if code.ends_with(".NotFound") {
        return ErrorKind::NotFound;
    }
    match http_status {
        Some(status) if RETRYABLE_STATUSES.contains(&status) => ErrorKind::Retryable,
        _ => ErrorKind::InvalidInput,
    }
}

/// What the user can do about codes whose server message does not say it.
fn remedy(code: &str) -> Option<&'static str> {
    match classify(code, None) {
        ErrorKind::Credentials => Some(
            "check the accessKeyId and accessKeySecret (and securityToken) of the provider's \
             credentials and the RAM permissions of that key; the least-privilege RAM policy \
             of each product: docs/src/cloud/alibaba.md#permissions (examples/permissions/)",
        ),
        _ if code.starts_with("InvalidTimeStamp") => Some(
            "check the clock of this host: Alibaba Cloud rejects requests whose Timestamp is \
             more than about 15 minutes off",
        ),
        _ if code == "SignatureNonceUsed" => Some(
            "a SignatureNonce was reused within 15 minutes; check the clock of this host and \
             that no proxy replays requests",
        ),
        _ => None,
    }
}

/// The JSON error body: `{RequestId, HostId, Code, Message, Recommend}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorBody {
    request_id: Option<String>,
    code: Option<String>,
    message: Option<String>,
    recommend: Option<String>,
}

/// The error of a non-2xx answer: classified by its `Code` when the body is an Alibaba error
/// document, by the HTTP status otherwise.
pub(crate) fn from_answer(action: &'static str, http_status: u16, body: &str) -> CloudError {
    let parsed = serde_json::from_str::<ErrorBody>(body)
        .ok()
        .map(|mut parsed| {
            // NB: an empty Code says nothing; fall back to the HTTP status.
            parsed.code = parsed.code.filter(|code| !code.trim().is_empty());
            parsed
        });
    let (code, request_id, message) = match parsed {
        Some(ErrorBody {
            request_id,
            code: Some(code),
            message,
            recommend,
        }) => {
            let message = describe(&code, message, recommend);
            (code, request_id, message)
        }
        Some(ErrorBody { request_id, .. }) => (
            format!("HTTP{http_status}"),
            request_id,
            unrecognized_answer(http_status, body),
        ),
        None => (
            format!("HTTP{http_status}"),
            None,
            unrecognized_answer(http_status, body),
        ),
    };
    CloudError {
        kind: classify(&code, Some(http_status)),
        action,
        code,
        message,
        http_status: Some(http_status),
        request_id,
        attempts: 1,
    }
}

fn describe(code: &str, message: Option<String>, recommend: Option<String>) -> String {
    let mut text = message
        .filter(|message| !message.is_empty())
        .unwrap_or_else(|| "no message given".to_string());
    if let Some(remedy) = remedy(code) {
        text.push_str(" (");
        text.push_str(remedy);
        text.push(')');
    }
    if let Some(recommend) = recommend.filter(|url| !url.is_empty()) {
        text.push_str("; see ");
        text.push_str(&recommend);
    }
    text
}

fn unrecognized_answer(http_status: u16, body: &str) -> String {
    let trimmed = body.trim();
    if trimmed.is_empty() {
        return format!("HTTP {http_status} with an empty body");
    }
    format!(
        "HTTP {http_status} without an Alibaba Cloud error document; body starts: {}",
        excerpt(trimmed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::transport::BODY_EXCERPT_CHARS;

    #[test]
    fn classifies_error_codes_as_the_spec_says() {
        let cases: &[(&str, u16, ErrorKind)] = &[
            ("Throttling", 400, ErrorKind::Retryable),
            ("Throttling.User", 400, ErrorKind::Retryable),
            ("Throttling.Api", 400, ErrorKind::Retryable),
            ("InternalError", 500, ErrorKind::Retryable),
            ("UnknownError", 500, ErrorKind::Retryable),
            ("ServiceUnavailable", 503, ErrorKind::Retryable),
            ("SomethingNew", 500, ErrorKind::Retryable),
            ("SomethingNew", 502, ErrorKind::Retryable),
            ("SomethingNew", 503, ErrorKind::Retryable),
            ("SomethingNew", 504, ErrorKind::Retryable),
            ("SomethingNew", 501, ErrorKind::InvalidInput),
            ("InvalidAccessKeyId.NotFound", 404, ErrorKind::Credentials),
            ("InvalidAccessKeyId.Inactive", 400, ErrorKind::Credentials),
            ("InvalidAccessKeyId", 400, ErrorKind::Credentials),
            ("SignatureDoesNotMatch", 400, ErrorKind::Credentials),
            ("IncompleteSignature", 400, ErrorKind::Credentials),
            ("Forbidden", 403, ErrorKind::Credentials),
            ("Forbidden.RAM", 403, ErrorKind::Credentials),
            ("InvalidSecurityToken.Expired", 400, ErrorKind::Credentials),
            ("InvalidResourceId.NotFound", 404, ErrorKind::NotFound),
            ("InvalidResourceType.NotFound", 404, ErrorKind::NotFound),
            ("InvalidRegionId.NotFound", 404, ErrorKind::NotFound),
            ("OperationDenied.QuotaExceed", 400, ErrorKind::QuotaExceeded),
            ("InvalidParameter", 400, ErrorKind::InvalidInput),
            ("InvalidParameter.TagKey", 400, ErrorKind::InvalidInput),
            (
                "MissingParameter.ResourceType",
                400,
                ErrorKind::InvalidInput,
            ),
            ("NumberExceed.ResourceIds", 400, ErrorKind::InvalidInput),
            ("NumberExceed.Tags", 400, ErrorKind::InvalidInput),
            ("Duplicate.TagKey", 400, ErrorKind::InvalidInput),
            ("InvalidTagKey.Malformed", 400, ErrorKind::InvalidInput),
            ("InvalidTagValue.Malformed", 400, ErrorKind::InvalidInput),
            ("SignatureNonceUsed", 400, ErrorKind::InvalidInput),
            ("InvalidTimeStamp.Expired", 400, ErrorKind::InvalidInput),
        ];
        for (code, status, kind) in cases {
            assert_eq!(
                classify(code, Some(*status)),
                *kind,
                "{code} with HTTP {status}"
            );
        }
    }

    #[test]
    fn known_codes_win_over_a_server_error_status() {
        assert_eq!(
            classify("InvalidAccessKeyId.NotFound", Some(503)),
            ErrorKind::Credentials
        );
        assert_eq!(classify("Throttling", None), ErrorKind::Retryable);
    }

    #[test]
    fn reads_code_message_and_request_id_of_an_error_document() {
        let body = r#"{"RequestId":"1DD9FD9A","HostId":"apigateway.cn-hangzhou.aliyuncs.com",
            "Code":"InvalidResourceId.NotFound",
            "Message":"The specified ResourceIds are not found in our records.",
            "Recommend":"https://api.aliyun.com/troubleshoot?q=InvalidResourceId.NotFound"}"#;
        let error = from_answer("TagResources", 404, body);
        assert_eq!(error.kind, ErrorKind::NotFound);
        assert_eq!(error.code, "InvalidResourceId.NotFound");
        assert_eq!(error.request_id.as_deref(), Some("1DD9FD9A"));
        assert_eq!(error.http_status, Some(404));
        assert!(error.message.starts_with("The specified ResourceIds"));
        assert!(
            error
                .message
                .contains("https://api.aliyun.com/troubleshoot")
        );
    }

    #[test]
    fn expired_timestamp_points_at_the_clock() {
        let body = r#"{"Code":"InvalidTimeStamp.Expired",
            "Message":"Specified time stamp or date value is expired."}"#;
        let error = from_answer("ListTagResources", 400, body);
        assert_eq!(error.kind, ErrorKind::InvalidInput);
        assert!(error.message.contains("clock"), "{}", error.message);
    }

    #[test]
    fn credential_errors_say_what_to_check() {
        let body = r#"{"Code":"SignatureDoesNotMatch","Message":"Specified signature is not matched with our calculation. server string to sign is:POST&%2F&AccessKeyId%3Dkey"}"#;
        let error = from_answer("TagResources", 400, body);
        assert_eq!(error.kind, ErrorKind::Credentials);
        assert!(error.message.contains("server string to sign"));
        assert!(
            error.message.contains("accessKeySecret"),
            "{}",
            error.message
        );
    }

    #[test]
    fn unparsable_bodies_fall_back_to_the_status_with_an_excerpt() {
        let html = format!("<html><body>{}</body></html>", "Bad gateway ".repeat(50));
        let error = from_answer("TagResources", 502, &html);
        assert_eq!(error.kind, ErrorKind::Retryable);
        assert_eq!(error.code, "HTTP502");
        assert!(error.message.contains("<html><body>Bad gateway"));
        assert!(error.message.ends_with("..."), "{}", error.message);
        assert!(error.message.chars().count() < BODY_EXCERPT_CHARS + 100);

        let error = from_answer("TagResources", 400, "not json");
        assert_eq!(error.kind, ErrorKind::InvalidInput);
        assert!(error.message.contains("not json"));

        let error = from_answer("TagResources", 404, r#"{"RequestId":"R1"}"#);
        assert_eq!(error.kind, ErrorKind::InvalidInput);
        assert_eq!(error.request_id.as_deref(), Some("R1"));

        let error = from_answer("TagResources", 503, "");
        assert_eq!(error.kind, ErrorKind::Retryable);
        assert!(error.message.contains("empty body"));
    }
}
