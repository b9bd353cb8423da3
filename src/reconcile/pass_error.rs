//! Why a pass stopped, typed: what a call answered, or what the round found itself.

use crate::cloud::{CallError, ErrorKind};

/// Why a pass stopped: what a call answered ([`CallError`]: the cloud's answer or the client's
/// refusal, classified), or what the round itself found before or instead of a call. The
/// status shows its kind as the reason of the failures it leaves, and its text (which starts
/// with its code) as their message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PassError {
    /// What the cloud answered (or its transport), or what the client refused to send.
    #[error(transparent)]
    Call(#[from] CallError),
    /// The host could not record the pass's intent (the crash window) before its writes: no
    /// write was sent; the next pass tries again.
    #[error("IntentNotRecorded: no write was sent: the intent could not be recorded first: {0}")]
    IntentNotRecorded(#[source] super::intent_log::IntentError),
    /// A selector's list-by-tag answer dropped resources that reads by id show still
    /// selected: the answer is not believed, nothing is released or written.
    #[error(
        "SelectionDisagrees: the list-by-tag answer dropped {dropped} of the {held} resources \
         this binding holds, but reading them by id shows they still carry every matchTags \
         tag: the answer is not believed, nothing is released or written"
    )]
    SelectionDisagrees {
        /// Resources the answer dropped.
        dropped: usize,
        /// Resources the binding held.
        held: usize,
    },
    /// The round did not read this binding's resources.
    #[error("NotObserved: the round did not read this binding's resources")]
    NotObserved,
}

impl PassError {
    /// The kind: the cloud's classification, or a retryable failure of the round.
    pub fn kind(&self) -> ErrorKind {
        match self {
            PassError::Call(error) => error.kind(),
            _ => ErrorKind::Retryable,
        }
    }

    /// Whether a later pass may succeed without a change.
    pub fn is_retryable(&self) -> bool {
        match self {
            PassError::Call(error) => error.is_retryable(),
            _ => true,
        }
    }
}
