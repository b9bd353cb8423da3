//! Alibaba Cloud error answers: HTTP status, `Code` and `Message` as in spec section 7.
//!
//! Codes the spec does not list, with where they come from:
//! - `InvalidVersion` (400): "Specified parameter Version is not valid." [seen in public bug
//!   reports; status inferred], for a `Version` the emulator does not serve;
//! - `InvalidAction.NotFound` (404): "Specified api is not found, please check your url and
//!   method." [seen], for an unknown `Action`;
//! - `InvalidTimeStamp.Format` (400): "Specified time stamp or date value is not well
//!   formatted." [inferred], for a `Timestamp` that is not RFC 3339;
//! - `NumberExceed.TagKeys` (400) for more than 20 `TagKey.N` [inferred by analogy with
//!   `NumberExceed.Tags`];
//! - `IncompleteSignature` (400) also answers a `SignatureMethod` other than `HMAC-SHA1` or a
//!   `SignatureVersion` other than `1.0` [inferred];
//! - `InvalidSecurityToken.MismatchWithAccessKey` and `InvalidSecurityToken.Expired` (400)
//!   for temporary credentials with a wrong or missing token, or expired [seen in public bug
//!   reports; status inferred].

use axum::http::StatusCode;

use crate::emulator::faults::Fault;

/// One error answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RpcError {
    /// HTTP status.
    pub status: StatusCode,
    /// The `Code` field, e.g. `SignatureDoesNotMatch`.
    pub code: String,
    /// The `Message` field.
    pub message: String,
    /// Seconds for the `x-acs-retry-after` header, when the answer carries one.
    pub retry_after: Option<u32>,
}

impl RpcError {
    fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        RpcError {
            status,
            code: code.into(),
            message: message.into(),
            retry_after: None,
        }
    }

    /// `MissingParameter.<Name>`, or plain `MissingParameter` when `code_suffix` is `None`.
    pub fn missing(code_suffix: Option<&str>, name: &str) -> Self {
        RpcError::new(
            StatusCode::BAD_REQUEST,
            suffixed("MissingParameter", code_suffix),
            format!(
                "The input parameter \"{name}\" that is mandatory for processing this request is not supplied."
            ),
        )
    }

    /// `InvalidParameter.<Suffix>`, or plain `InvalidParameter` when `code_suffix` is `None`.
    pub fn invalid(code_suffix: Option<&str>, name: &str) -> Self {
        RpcError::new(
            StatusCode::BAD_REQUEST,
            suffixed("InvalidParameter", code_suffix),
            format!("The specified value of parameter \"{name}\" is not valid."),
        )
    }

    /// `InvalidParameter.<Suffix>` with what is wrong with the value [detail inferred].
    pub fn invalid_detail(code_suffix: &str, name: &str, detail: &str) -> Self {
        RpcError::new(
            StatusCode::BAD_REQUEST,
            suffixed("InvalidParameter", Some(code_suffix)),
            format!("The specified value of parameter \"{name}\" is not valid. {detail}"),
        )
    }

    /// `InvalidParameter` for a name given twice in one part of the request [inferred].
    pub fn given_twice(name: &str, part: &str) -> Self {
        RpcError::new(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            format!(
                "The parameter \"{name}\" is given more than once in the {part}; give each parameter once."
            ),
        )
    }

    /// `IncompleteSignature` with what is wrong with a V3 `Authorization` [detail inferred].
    pub fn incomplete_v3_signature(detail: &str) -> Self {
        RpcError::new(
            StatusCode::BAD_REQUEST,
            "IncompleteSignature",
            format!("The request signature does not conform to Aliyun standards. {detail}"),
        )
    }

    /// `SignatureDoesNotMatch` of a V3 request: the server's string to sign (spec section 4,
    /// [seen]) and, to make the mismatch debuggable, its canonical request [inferred].
    pub fn v3_signature_mismatch(string_to_sign: &str, canonical_request: &str) -> Self {
        RpcError::new(
            StatusCode::BAD_REQUEST,
            "SignatureDoesNotMatch",
            format!(
                "Specified signature does not match our calculation. server StringToSign is \
                 [{string_to_sign}] server CanonicalRequest is [{canonical_request}]"
            ),
        )
    }

    /// `IncompleteSignature`.
    pub fn incomplete_signature() -> Self {
        RpcError::new(
            StatusCode::BAD_REQUEST,
            "IncompleteSignature",
            "The request signature does not conform to Aliyun standards.",
        )
    }

    /// `SignatureDoesNotMatch`, embedding the server's string to sign.
    pub fn signature_mismatch(string_to_sign: &str) -> Self {
        RpcError::new(
            StatusCode::BAD_REQUEST,
            "SignatureDoesNotMatch",
            format!(
                "Specified signature is not matched with our calculation. server string to sign is:{string_to_sign}"
            ),
        )
    }

    /// `SignatureNonceUsed`.
    pub fn nonce_used() -> Self {
        RpcError::new(
            StatusCode::BAD_REQUEST,
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
        )
    }

    /// `InvalidTimeStamp.Expired`.
    pub fn timestamp_expired() -> Self {
        RpcError::new(
            StatusCode::BAD_REQUEST,
            "InvalidTimeStamp.Expired",
            "Specified time stamp or date value is expired.",
        )
    }

    /// `InvalidTimeStamp.Format`.
    pub fn timestamp_format() -> Self {
        RpcError::new(
            StatusCode::BAD_REQUEST,
            "InvalidTimeStamp.Format",
            "Specified time stamp or date value is not well formatted.",
        )
    }

    /// `InvalidAccessKeyId.NotFound`.
    pub fn access_key_not_found() -> Self {
        RpcError::new(
            StatusCode::NOT_FOUND,
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found.",
        )
    }

    /// A key refused with its token: `InvalidAccessKeyId.NotFound`,
    /// `InvalidSecurityToken.MismatchWithAccessKey` or `InvalidSecurityToken.Expired`.
    pub fn refused_key(refusal: crate::emulator::inventory::KeyRefusal) -> Self {
        use crate::emulator::inventory::KeyRefusal;
        match refusal {
            KeyRefusal::Unknown => RpcError::access_key_not_found(),
            KeyRefusal::TokenMismatch => RpcError::new(
                StatusCode::BAD_REQUEST,
                "InvalidSecurityToken.MismatchWithAccessKey",
                "Specified SecurityToken mismatch with the AccessKey.",
            ),
            KeyRefusal::Expired => RpcError::new(
                StatusCode::BAD_REQUEST,
                "InvalidSecurityToken.Expired",
                "Specified SecurityToken is expired.",
            ),
        }
    }

    /// An STS error: `code` and `message` with `status`.
    pub fn sts(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        RpcError::new(status, code, message)
    }

    /// `InvalidVersion`.
    pub fn invalid_version() -> Self {
        RpcError::new(
            StatusCode::BAD_REQUEST,
            "InvalidVersion",
            "Specified parameter Version is not valid.",
        )
    }

    /// `InvalidAction.NotFound`.
    pub fn action_not_found() -> Self {
        RpcError::new(
            StatusCode::NOT_FOUND,
            "InvalidAction.NotFound",
            "Specified api is not found, please check your url and method.",
        )
    }

    /// `InvalidResourceId.NotFound`.
    pub fn resource_not_found() -> Self {
        RpcError::new(
            StatusCode::NOT_FOUND,
            "InvalidResourceId.NotFound",
            "The specified ResourceIds are not found in our records.",
        )
    }

    /// `InvalidResourceType.NotFound`.
    pub fn resource_type_not_found() -> Self {
        RpcError::new(
            StatusCode::NOT_FOUND,
            "InvalidResourceType.NotFound",
            "The ResourceType provided does not exist in our records.",
        )
    }

    /// `NumberExceed.<What>`, e.g. `NumberExceed.ResourceIds` with the limit.
    pub fn number_exceed(what: &str, limit: usize) -> Self {
        RpcError::new(
            StatusCode::BAD_REQUEST,
            format!("NumberExceed.{what}"),
            format!("The {what} parameter's number is exceed, Valid: {limit}"),
        )
    }

    /// `Duplicate.TagKey`.
    pub fn duplicate_tag_key() -> Self {
        RpcError::new(
            StatusCode::BAD_REQUEST,
            "Duplicate.TagKey",
            "The Tag.N.Key contain duplicate key.",
        )
    }

    /// `InvalidTagKey.Malformed`.
    pub fn malformed_key() -> Self {
        RpcError::new(
            StatusCode::BAD_REQUEST,
            "InvalidTagKey.Malformed",
            "The specified Tag.n.Key is not valid.",
        )
    }

    /// `InvalidTagValue.Malformed`.
    pub fn malformed_value() -> Self {
        RpcError::new(
            StatusCode::BAD_REQUEST,
            "InvalidTagValue.Malformed",
            "The specified Tag.n.Value is not valid.",
        )
    }

    /// `OperationDenied.QuotaExceed`.
    pub fn quota_exceeded() -> Self {
        RpcError::new(
            StatusCode::BAD_REQUEST,
            "OperationDenied.QuotaExceed",
            "The quota of tags on resource is beyond permitted range.",
        )
    }

    /// The answer to an injected fault. Only the rate limiter says when to retry.
    pub fn from_fault(fault: Fault) -> Self {
        let throttled = || {
            RpcError::new(
                StatusCode::BAD_REQUEST,
                "Throttling.User",
                "Request was denied due to user flow control.",
            )
        };
        match fault {
            Fault::RateLimited => RpcError {
                retry_after: Some(1),
                ..throttled()
            },
            Fault::Throttled => throttled(),
            Fault::InternalError => RpcError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "The request processing has failed due to some unknown error.",
            ),
            Fault::ServiceUnavailable => RpcError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                "The request has failed due to a temporary failure of the server.",
            ),
        }
    }
}

fn suffixed(code: &str, suffix: Option<&str>) -> String {
    match suffix {
        Some(suffix) => format!("{code}.{suffix}"),
        None => code.to_string(),
    }
}
