//! JD Cloud error answers and per-resource failures, classified into [`ErrorKind`]s
//! (spec: jdcloud-resource-tag.md section 6).

use super::wire::ErrorAnswer;
use crate::cloud::transport::excerpt;
use crate::cloud::{CloudError, ErrorKind, ResourceError};

/// The category of an error answer. Section 6's mapping: 401 and 403 are credential or
/// permission errors; 429, 500, 502, 503, 504 are retried (and 409, a concurrent change,
/// is worth another attempt too); other statuses are terminal for the request.
pub fn classify(http_status: u16, status: Option<&str>) -> ErrorKind {
    match (http_status, status) {
        (401 | 403, _) => ErrorKind::Credentials,
        (409 | 429 | 500 | 502 | 503 | 504, _) => ErrorKind::Retryable,
        (404, Some("RESOURCE_NOT_EXIST")) => ErrorKind::NotFound,
        _ => ErrorKind::InvalidInput,
    }
}

/// True for JD Cloud's throttling answers (`RATE_LIMIT_EXCEEDED`, or a 429 that is not a
/// quota): the rate limiter slows down on them.
pub fn is_throttling(error: &CloudError) -> bool {
    error.code == "RATE_LIMIT_EXCEEDED"
        || (error.http_status == Some(429) && error.code != "QUOTA_EXCEEDED")
}

/// What the user can do about a status whose message may not say it.
fn remedy(http_status: u16, status: Option<&str>) -> Option<&'static str> {
    match (http_status, status) {
        (401, _) => Some(
            "check the accessKeyId and accessKeySecret of the provider's credentials, the \
             provider's region and signingService, and the clock of this host (JD Cloud \
             refuses requests whose x-jdcloud-date is far off)",
        ),
        (403, _) => Some(
            "check the permissions of this access key on the resource-tag service: \
             docs/src/cloud/jdcloud.md#permissions (examples/permissions/)",
        ),
        (404, Some("NOT_FOUND")) | (404, None) => Some(
            "is the provider's endpoint a JD Cloud resource-tag endpoint \
             (default https://resource-tag.jdcloud-api.com)?",
        ),
        _ => None,
    }
}

/// The error of a non-2xx answer: classified by HTTP status and the document's symbolic
/// `status` when the body is a JD Cloud error document, by the HTTP status otherwise.
pub(super) fn from_answer(action: &'static str, http_status: u16, body: &str) -> CloudError {
    let parsed = serde_json::from_str::<ErrorAnswer>(body).ok();
    let (code, request_id, message) = match parsed {
        Some(answer) => {
            let status = answer.error.status.filter(|status| !status.is_empty());
            let mut message = answer
                .error
                .message
                .filter(|message| !message.is_empty())
                .unwrap_or_else(|| "no message given".to_string());
            if let Some(remedy) = remedy(http_status, status.as_deref()) {
                message.push_str(" (");
                message.push_str(remedy);
                message.push(')');
            }
            let code = status.unwrap_or_else(|| format!("HTTP{http_status}"));
            (code, answer.request_id, message)
        }
        None => {
            let trimmed = body.trim();
            let mut message = if trimmed.is_empty() {
                format!("HTTP {http_status} with an empty body")
            } else {
                format!(
                    "HTTP {http_status} without a JD Cloud error document; body starts: {}",
                    excerpt(trimmed)
                )
            };
            if let Some(remedy) = remedy(http_status, None) {
                message.push_str(" (");
                message.push_str(remedy);
                message.push(')');
            }
            (format!("HTTP{http_status}"), None, message)
        }
    };
    let kind = classify(http_status, Some(code.as_str()));
    CloudError {
        kind,
        action,
        code,
        message,
        http_status: Some(http_status),
        request_id,
        attempts: 1,
    }
}

/// One entry of `failedResourcesMap`. The message is free text meant for people
/// (section 3), so the category is a best reading of it: a missing resource and a full tag
/// quota are told apart from other refusals, which are taken as terminal input errors.
pub(super) fn resource_error(message: &str) -> ResourceError {
    let lower = message.to_ascii_lowercase();
    let kind = if ["not found", "not exist", "notfound", "no such"]
        .iter()
        .any(|needle| lower.contains(needle))
    {
        ErrorKind::NotFound
    } else if lower.contains("quota") || lower.contains("too many tags") {
        ErrorKind::QuotaExceeded
    } else {
        ErrorKind::InvalidInput
    };
    let message = if message.trim().is_empty() {
        "JD Cloud reported this resource as failed without a message".to_string()
    } else {
        message.to_string()
    };
    ResourceError { kind, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_statuses_as_the_spec_maps_them() {
        let cases: &[(u16, Option<&str>, ErrorKind)] = &[
            (401, Some("UNAUTHENTICATED"), ErrorKind::Credentials),
            (403, Some("HTTP_FORBIDDEN"), ErrorKind::Credentials),
            (400, Some("INVALID_ARGUMENT"), ErrorKind::InvalidInput),
            (400, Some("FAILED_PRECONDITION"), ErrorKind::InvalidInput),
            (404, Some("NOT_FOUND"), ErrorKind::InvalidInput),
            (404, Some("RESOURCE_NOT_EXIST"), ErrorKind::NotFound),
            (409, Some("ABORTED"), ErrorKind::Retryable),
            (429, Some("RATE_LIMIT_EXCEEDED"), ErrorKind::Retryable),
            (429, Some("QUOTA_EXCEEDED"), ErrorKind::Retryable),
            (500, Some("INTERNAL"), ErrorKind::Retryable),
            (501, Some("NOT_IMPLEMENTED"), ErrorKind::InvalidInput),
            (502, None, ErrorKind::Retryable),
            (503, Some("UNAVAILABLE"), ErrorKind::Retryable),
            (504, Some("DEADLINE_EXCEEDED"), ErrorKind::Retryable),
        ];
        for (http, status, kind) in cases {
            assert_eq!(classify(*http, *status), *kind, "{http} {status:?}");
        }
    }

    #[test]
    fn reads_status_message_and_request_id_of_an_error_document() {
        let body = r#"{"requestId": "bkrovrdrv8ewru46782326noreauvdsf",
            "error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "Invalid parameter tagResources.tags"}}"#;
        let error = from_answer("tagResources", 400, body);
        assert_eq!(error.kind, ErrorKind::InvalidInput);
        assert_eq!(error.code, "INVALID_ARGUMENT");
        assert_eq!(error.message, "Invalid parameter tagResources.tags");
        assert_eq!(
            error.request_id.as_deref(),
            Some("bkrovrdrv8ewru46782326noreauvdsf")
        );
        assert_eq!(error.http_status, Some(400));
    }

    #[test]
    fn credential_errors_say_what_to_check() {
        let body = r#"{"requestId": "r", "error": {"code": 401, "status": "UNAUTHENTICATED", "message": "signature mismatch"}}"#;
        let error = from_answer("describeResources", 401, body);
        assert_eq!(error.kind, ErrorKind::Credentials);
        assert!(error.message.starts_with("signature mismatch ("));
        assert!(error.message.contains("clock of this host"));
    }

    #[test]
    fn unparsable_bodies_fall_back_to_the_status() {
        let error = from_answer("tagResources", 503, "<html>busy</html>");
        assert_eq!(error.kind, ErrorKind::Retryable);
        assert_eq!(error.code, "HTTP503");
        assert!(error.message.contains("<html>busy</html>"));
        let error = from_answer("tagResources", 404, "");
        assert_eq!(error.kind, ErrorKind::InvalidInput);
        assert!(error.message.contains("empty body"));
        assert!(error.message.contains("resource-tag endpoint"));
    }

    #[test]
    fn per_resource_failures_are_read_from_their_message() {
        assert_eq!(
            resource_error("resource not found").kind,
            ErrorKind::NotFound
        );
        assert_eq!(
            resource_error("Resource i-1 does not exist").kind,
            ErrorKind::NotFound
        );
        assert_eq!(
            resource_error("resource i-1 not exist").kind,
            ErrorKind::NotFound
        );
        assert_eq!(
            resource_error("tag quota exceeded: at most 10 tags").kind,
            ErrorKind::QuotaExceeded
        );
        assert_eq!(
            resource_error("value of key env does not match").kind,
            ErrorKind::InvalidInput
        );
        assert!(resource_error("").message.contains("without a message"));
    }
}
