//! Classification of AWS error answers (spec section 1) and of per-ARN failures
//! (`FailedResourcesMap`, section 4).

use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::cloud::{CloudError, ErrorKind, ResourceError};

/// Throttling: `ThrottledException` in RGTA's model; `ThrottlingException` and the others as
/// other AWS services answer it.
const THROTTLING: [&str; 5] = [
    "ThrottledException",
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
];

/// Credentials or permissions: only a change of them helps.
const CREDENTIALS: [&str; 9] = [
    "UnrecognizedClientException",
    "InvalidSignatureException",
    "IncompleteSignatureException",
    "MissingAuthenticationTokenException",
    "ExpiredTokenException",
    "AccessDeniedException",
    "AccessDenied",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
];

/// True for a throttling code.
pub(super) fn is_throttling(code: &str) -> bool {
    THROTTLING.contains(&code)
}

/// The request id of an answer (`x-amzn-RequestId`).
pub(super) fn request_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get("x-amzn-requestid")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

/// The code of a JSON 1.1 error: `__type` after its last `#`, else the `x-amzn-ErrorType`
/// header before its first `:`.
fn code_of(headers: &HeaderMap, document: Option<&Value>) -> Option<String> {
    let from_body = document
        .and_then(|d| d.get("__type"))
        .and_then(Value::as_str)
        .map(|t| t.rsplit('#').next().unwrap_or(t).to_string());
    from_body.or_else(|| {
        headers
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(|t| t.split(':').next().unwrap_or(t).to_string())
    })
}

/// The error of a non-2xx answer, classified.
pub(super) fn from_answer(
    action: &'static str,
    status: u16,
    headers: &HeaderMap,
    body: &str,
) -> CloudError {
    let document: Option<Value> = serde_json::from_str(body).ok();
    let code = code_of(headers, document.as_ref()).unwrap_or_else(|| format!("HTTP{status}"));
    let message = document
        .as_ref()
        .and_then(|d| d.get("Message").or_else(|| d.get("message")))
        .and_then(Value::as_str)
        .map(str::to_string)
        .unwrap_or_else(|| crate::cloud::transport::excerpt(body.trim()));
    let kind = if is_throttling(&code) || status >= 500 || code == "InternalServiceException" {
        ErrorKind::Retryable
    } else if CREDENTIALS.contains(&code.as_str()) || status == 403 {
        ErrorKind::Credentials
    } else {
        ErrorKind::InvalidInput
    };
    let message = if kind == ErrorKind::Credentials {
        format!(
            "{message} (check the provider's AWS credentials: accessKeyId, secretAccessKey and, \
             for temporary credentials, sessionToken; and the IAM policy: tag:{action} and the \
             service's own tag permission, e.g. ec2:CreateTags)"
        )
    } else {
        message
    };
    CloudError {
        kind,
        action,
        code,
        message,
        http_status: Some(status),
        request_id: request_id(headers),
        attempts: 1,
    }
}

/// The error of a non-2xx STS answer (query protocol: `<ErrorResponse><Error><Code>` and
/// `<Message>` in XML), classified as the tagging API's.
pub(super) fn from_sts_answer(
    action: &'static str,
    status: u16,
    headers: &HeaderMap,
    body: &str,
) -> CloudError {
    let code = super::xml_element(body, "Code").unwrap_or_default();
    let message = super::xml_element(body, "Message").unwrap_or_default();
    let document = serde_json::json!({"__type": code, "Message": message});
    let mut error = from_answer(action, status, headers, &document.to_string());
    if code.is_empty() {
        error.code = format!("HTTP{status}");
    }
    if message.is_empty() {
        error.message = crate::cloud::transport::excerpt(body.trim());
    }
    error.message = format!(
        "{} (STS GetCallerIdentity, asked for the account because the provider has no \
         aws.accountId)",
        error.message
    );
    error
}

/// One `FailedResourcesMap` entry: `{StatusCode, ErrorCode, ErrorMessage}`.
pub(super) fn resource_error(info: &Value) -> ResourceError {
    let status = info.get("StatusCode").and_then(Value::as_u64).unwrap_or(0);
    let code = info.get("ErrorCode").and_then(Value::as_str).unwrap_or("");
    let message = info
        .get("ErrorMessage")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let lower = message.to_ascii_lowercase();
    // NB: AWS says an InternalServiceException may also mean the type does not support
    // tagging through this API; it is retried with the next pass.
    let kind = if code == "InternalServiceException" || status >= 500 || is_throttling(code) {
        ErrorKind::Retryable
    } else if status == 404 || lower.contains("not found") || lower.contains("does not exist") {
        ErrorKind::NotFound
    } else if lower.contains("taglimitexceeded") || lower.contains("tag limit") {
        ErrorKind::QuotaExceeded
    } else if status == 403 || lower.contains("access denied") || lower.contains("not authorized") {
        ErrorKind::Credentials
    } else {
        ErrorKind::InvalidInput
    };
    ResourceError {
        kind,
        message: format!("{code} ({status}): {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn per_arn_failures_are_classified() {
        let kind = |info: Value| resource_error(&info).kind;
        assert_eq!(
            kind(
                json!({"StatusCode": 404, "ErrorCode": "InvalidParameterException", "ErrorMessage": "x"})
            ),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind(json!({"StatusCode": 500, "ErrorCode": "InternalServiceException"})),
            ErrorKind::Retryable
        );
        assert_eq!(
            kind(
                json!({"StatusCode": 400, "ErrorCode": "InvalidParameterException", "ErrorMessage": "TagLimitExceeded: 51"})
            ),
            ErrorKind::QuotaExceeded
        );
        assert_eq!(
            kind(
                json!({"StatusCode": 400, "ErrorCode": "InvalidParameterException", "ErrorMessage": "bad"})
            ),
            ErrorKind::InvalidInput
        );
    }

    #[test]
    fn throttling_of_either_spelling_is_retryable() {
        let headers = HeaderMap::new();
        for code in ["ThrottledException", "ThrottlingException"] {
            let error = from_answer(
                "TagResources",
                400,
                &headers,
                &json!({"__type": code, "Message": "Rate exceeded"}).to_string(),
            );
            assert_eq!(error.kind, ErrorKind::Retryable, "{code}");
            assert!(is_throttling(&error.code));
        }
        let error = from_answer(
            "GetResources",
            400,
            &headers,
            r#"{"__type":"com.amazon.coral#UnrecognizedClientException","message":"bad"}"#,
        );
        assert_eq!(
            (error.kind, error.code.as_str()),
            (ErrorKind::Credentials, "UnrecognizedClientException")
        );
    }
}
