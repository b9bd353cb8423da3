//! What every cloud client shares about failures that are not the cloud's own error
//! documents: transport failures, local refusals, and excerpts of unexpected bodies.

use crate::cloud::{CloudError, ErrorKind};

/// Longest excerpt of an unparsable answer body kept in an error message, in characters.
pub(crate) const BODY_EXCERPT_CHARS: usize = 200;

/// At most [`BODY_EXCERPT_CHARS`] characters of `text`, marked when cut.
pub(crate) fn excerpt(text: &str) -> String {
    match text.char_indices().nth(BODY_EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// The error of a request that got no usable answer. `endpoint` names the target without
/// any request parameter (the URL of the request carries the signature).
pub(crate) fn from_transport(
    action: &'static str,
    endpoint: &str,
    timeout: std::time::Duration,
    error: reqwest::Error,
) -> CloudError {
    // NB: `without_url` drops the request URL, whose query holds AccessKeyId and Signature.
    let error = error.without_url();
    let (kind, code, what) = if error.is_builder() {
        (
            ErrorKind::InvalidInput,
            "InvalidEndpoint",
            "could not build a request to".to_string(),
        )
    } else if error.is_timeout() {
        (
            ErrorKind::Retryable,
            "Timeout",
            format!("no answer within {timeout:?} from"),
        )
    } else {
        (
            ErrorKind::Retryable,
            "Network",
            "could not reach".to_string(),
        )
    };
    CloudError {
        kind,
        action,
        code: code.to_string(),
        message: format!("{what} {endpoint}: {}", error_chain(&error)),
        http_status: error.status().map(|status| status.as_u16()),
        request_id: None,
        attempts: 1,
    }
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// An error found before or after the conversation with the server (limits, answers that
/// make no sense): never retried by the retry loop.
pub(crate) fn local(
    kind: ErrorKind,
    action: &'static str,
    code: &str,
    message: String,
    attempts: u32,
) -> CloudError {
    CloudError {
        kind,
        action,
        code: code.to_string(),
        message,
        http_status: None,
        request_id: None,
        attempts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn excerpt_cuts_on_character_boundaries() {
        let text = "环".repeat(BODY_EXCERPT_CHARS + 5);
        let cut = excerpt(&text);
        assert_eq!(cut.chars().count(), BODY_EXCERPT_CHARS + 3);
        assert!(cut.ends_with("环..."));
        assert_eq!(excerpt("short"), "short");
    }
}
