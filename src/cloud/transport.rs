//! What every cloud client shares about failures that are not the cloud's own error
//! documents: transport failures (and endpoints no request can be built for), and excerpts of
//! unexpected bodies.

use crate::cloud::{CallError, CloudError, ErrorKind, Refusal, RefusalReason};

/// Longest excerpt of an unparsable answer body kept in an error message, in characters.
pub(crate) const BODY_EXCERPT_CHARS: usize = 200;

/// At most [`BODY_EXCERPT_CHARS`] characters of `text`, marked when cut.
pub(crate) fn excerpt(text: &str) -> String {
    match text.char_indices().nth(BODY_EXCERPT_CHARS) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_string(),
    }
}

/// Why an endpoint cannot be a request's target.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// It does not parse as a URL.
    #[error("endpoint {endpoint:?} is not a URL: {error}")]
    NotAUrl {
        /// The endpoint.
        endpoint: String,
        /// What the parser says.
        error: String,
    },
    /// Its scheme is neither http nor https.
    #[error("endpoint {0:?} must be an http or https URL")]
    Scheme(String),
    /// It names no host.
    #[error("endpoint {0:?} has no host")]
    NoHost(String),
}

/// An endpoint's URL, and the `host` a request to it carries: the host, with `:port` only
/// when the port is not the scheme's default.
pub(crate) fn endpoint_url(endpoint: &str) -> Result<(reqwest::Url, String), EndpointError> {
    let url = reqwest::Url::parse(endpoint).map_err(|error| EndpointError::NotAUrl {
        endpoint: endpoint.to_string(),
        error: error.to_string(),
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(EndpointError::Scheme(endpoint.to_string()));
    }
    let name = url
        .host_str()
        .ok_or_else(|| EndpointError::NoHost(endpoint.to_string()))?;
    // NB: `Url::port` is None for the scheme's default port, as the Host header wants it.
    let host = match url.port() {
        Some(port) => format!("{name}:{port}"),
        None => name.to_string(),
    };
    Ok((url, host))
}

/// The error of a request that got no usable answer: the transport's failure to reach the
/// cloud, or the client's refusal of an endpoint it cannot build a request for. `endpoint`
/// names the target without any request parameter (the URL of the request carries the
/// signature).
pub(crate) fn from_transport(
    action: &'static str,
    endpoint: &str,
    timeout: std::time::Duration,
    error: reqwest::Error,
) -> CallError {
    // NB: `without_url` drops the request URL, whose query holds AccessKeyId and Signature.
    let error = error.without_url();
    if error.is_builder() {
        return Refusal::new(
            RefusalReason::InvalidEndpoint,
            action,
            format!(
                "could not build a request to {endpoint}: {}",
                error_chain(&error)
            ),
        )
        .into();
    }
    let (code, what) = if error.is_timeout() {
        ("Timeout", format!("no answer within {timeout:?} from"))
    } else {
        ("Network", "could not reach".to_string())
    };
    CloudError {
        kind: ErrorKind::Retryable,
        action,
        code: code.to_string(),
        message: format!("{what} {endpoint}: {}", error_chain(&error)),
        http_status: error.status().map(|status| status.as_u16()),
        request_id: None,
        attempts: 1,
    }
    .into()
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
