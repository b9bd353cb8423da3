//! The client's own refusals: a call it would not send (over the cloud's limits, a selector
//! that breaks its rules, an id it cannot address, an endpoint it cannot sign for, a token
//! file it cannot read), an answer it would not use (not the document it should be, a
//! pagination that never ends, credentials it cannot read), or a coalesced call dropped
//! unsent. Decided here, not by the cloud: a [`super::CloudError`] is
//! only what the cloud (or the transport to it) answered.

use super::ErrorKind;

/// Why the client refused: the code its messages and logs show, and its [`ErrorKind`] (the
/// status reason of the resources it fails).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RefusalReason {
    /// A write over the cloud's batch limits (a caller's bug: it must split the batch).
    BatchTooLarge,
    /// A selector without `matchTags`: it would list the whole account.
    EmptyMatchTags,
    /// More `matchTags` than the API filters by in one call.
    TooManyMatchTags,
    /// A `matchTags` entry no resource can carry (empty key, invisible character, empty value).
    InvalidMatchTags,
    /// A `matchTags` key the API's list-by-tag read cannot filter by (a system tag).
    UnfilterableMatchTags,
    /// A resource id the provider cannot address (AWS: an ARN of another partition, region,
    /// account or type).
    InvalidResourceId,
    /// A resource type the API does not know.
    InvalidResourceType,
    /// A tag key the cloud reserves for itself (AWS's `aws:` prefix).
    ReservedTagKey,
    /// Tags that do not encode as the API's document.
    InvalidTags,
    /// An endpoint no request can be built for.
    InvalidEndpoint,
    /// A request the signer could not sign.
    SigningFailed,
    /// A 2xx answer that is not the document it should be.
    InvalidResponse,
    /// A listing whose pages never end (a token seen before, or too many pages).
    PaginationLoop,
    /// A coalesced call dropped before an answer came (shutting down).
    Dropped,
    /// AWS web identity's token file cannot be read.
    WebIdentityTokenFileUnreadable,
    /// The container credentials endpoint's authorization token file cannot be read.
    AuthorizationTokenFileUnreadable,
    /// RRSA's OIDC token file cannot be read.
    OidcTokenFileUnreadable,
    /// STS or a metadata service answered without usable credentials.
    InvalidAnswer,
}

impl RefusalReason {
    /// The code, as messages and logs show it.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::BatchTooLarge => "BatchTooLarge",
            RefusalReason::EmptyMatchTags => "EmptyMatchTags",
            RefusalReason::TooManyMatchTags => "TooManyMatchTags",
            RefusalReason::InvalidMatchTags => "InvalidMatchTags",
            RefusalReason::UnfilterableMatchTags => "UnfilterableMatchTags",
            RefusalReason::InvalidResourceId => "InvalidResourceId",
            RefusalReason::InvalidResourceType => "InvalidResourceType",
            RefusalReason::ReservedTagKey => "ReservedTagKey",
            RefusalReason::InvalidTags => "InvalidTags",
            RefusalReason::InvalidEndpoint => "InvalidEndpoint",
            RefusalReason::SigningFailed => "SigningFailed",
            RefusalReason::InvalidResponse => "InvalidResponse",
            RefusalReason::PaginationLoop => "PaginationLoop",
            RefusalReason::Dropped => "Dropped",
            RefusalReason::WebIdentityTokenFileUnreadable => "WebIdentityTokenFileUnreadable",
            RefusalReason::AuthorizationTokenFileUnreadable => "AuthorizationTokenFileUnreadable",
            RefusalReason::OidcTokenFileUnreadable => "OIDCTokenFileUnreadable",
            RefusalReason::InvalidAnswer => "InvalidAnswer",
        }
    }

    /// The kind: a pagination loop, a dropped call and credentials answered unusable may
    /// pass later (`Retryable`, reason `ProviderError`); an unreadable token file needs the
    /// credentials set up (`Credentials`); everything else needs a change of input or
    /// configuration (`InvalidInput`).
    pub fn kind(self) -> ErrorKind {
        match self {
            RefusalReason::PaginationLoop
            | RefusalReason::Dropped
            | RefusalReason::InvalidAnswer => ErrorKind::Retryable,
            RefusalReason::WebIdentityTokenFileUnreadable
            | RefusalReason::AuthorizationTokenFileUnreadable
            | RefusalReason::OidcTokenFileUnreadable => ErrorKind::Credentials,
            _ => ErrorKind::InvalidInput,
        }
    }
}

impl std::fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A call the client refused to send, or an answer it refused to use. Never retried by the
/// retry loop; never carries a secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{action} failed: {reason}: {message}")]
pub struct Refusal {
    /// Why.
    pub reason: RefusalReason,
    /// The API action, e.g. `TagResources`.
    pub action: &'static str,
    /// What was wrong, with the value and the limit.
    pub message: String,
}

impl Refusal {
    /// A refusal of `action` for `reason`.
    pub fn new(reason: RefusalReason, action: &'static str, message: impl Into<String>) -> Self {
        Refusal {
            reason,
            action,
            message: message.into(),
        }
    }

    /// The kind ([`RefusalReason::kind`]).
    pub fn kind(&self) -> ErrorKind {
        self.reason.kind()
    }
}

/// A binding's resource type or ids that this provider cannot address, found before any
/// call: the host reports it as a rule of the spec that the binding breaks (`InvalidSpec`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The resource type: the rule it breaks, and which values are accepted.
    #[error("{0}")]
    ResourceType(String),
    /// Resource ids: how many are refused, and why the first is.
    #[error("{}", ids_refused(*.refused, .first))]
    ResourceIds {
        /// How many ids are refused.
        refused: usize,
        /// Why the first one is.
        first: String,
    },
}

fn ids_refused(refused: usize, first: &str) -> String {
    if refused == 1 {
        first.to_string()
    } else {
        format!("{refused} ids refused; the first: {first}")
    }
}
