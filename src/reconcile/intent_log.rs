//! The crash window (issue 14): what a round's host keeps of the writes a pass is about to
//! make, so that a pass killed after a write and before its outcome is recorded loses no
//! ownership. The round asks its host for each input's unresolved intent (claimed after the
//! observation, see [`crate::plan::intent::claim`]) and hands it every new intent before any
//! write is sent; the host makes them durable (the controller in an annotation of the binding,
//! the CLI in its journal) and the outcome's [`pending`](super::Outcome::pending) says what is
//! still unresolved afterwards.

use std::future::Future;

use crate::tags::{Ownership, TagsByResource};

/// No unresolved intent: what [`IntentLog::pending`] answers for an input without one.
pub static NOTHING_PENDING: TagsByResource = TagsByResource::new();

/// One input's intent, to record before its writes are sent.
#[derive(Clone, Copy, Debug)]
pub struct Intent<'a> {
    /// The input (its index in the round).
    pub index: usize,
    /// Its ownership record once the previous intent was claimed: recorded along with the new
    /// intent, which replaces the previous one.
    pub owned: &'a Ownership,
    /// Per resource, the tags it is about to write that it does not own yet.
    pub pending: &'a TagsByResource,
}

/// Why an intent was not recorded: the input sends no write in this pass, and reports
/// `IntentNotRecorded` with this.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IntentError {
    /// The controller's write of the binding (its intent annotation, or `status` for an
    /// intent too large for an annotation) failed.
    #[error("cannot write the binding: {0}")]
    Status(String),
    /// The CLI's journal could not be written.
    #[error("cannot write the journal: {0}")]
    Journal(String),
    /// The round asked for an input the host does not hold (a bug in the round).
    #[error("no binding at index {0} of the round")]
    NoSuchInput(usize),
    /// The host gave no answer for this intent (a bug in the host).
    #[error("the host did not answer")]
    NoAnswer,
}

/// Where a round's host keeps intents.
pub trait IntentLog {
    /// The intent that a previous pass of input `index` recorded and whose outcome was never
    /// recorded (empty when there is none).
    fn pending(&self, index: usize) -> &TagsByResource;

    /// Records `intents` durably, before any of their writes is sent; one answer per intent,
    /// in order. An input whose intent could not be recorded sends no write in this pass.
    fn record(&self, intents: &[Intent<'_>]) -> impl Future<Output = Vec<Result<(), IntentError>>>;
}

/// A host that keeps no intent (a pass whose record is saved with its writes, or tests).
#[derive(Clone, Copy, Debug, Default)]
pub struct NoIntents;

impl IntentLog for NoIntents {
    fn pending(&self, _: usize) -> &TagsByResource {
        &NOTHING_PENDING
    }

    async fn record(&self, intents: &[Intent<'_>]) -> Vec<Result<(), IntentError>> {
        intents.iter().map(|_| Ok(())).collect()
    }
}
