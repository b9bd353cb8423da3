//! Why the state file, its lock or its journal could not be used: the file, and what went
//! wrong with it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{MAX_LINKS, STATE_VERSION};
use crate::input::{InputError, mib};

/// What went wrong with the state file, its lock or its journal: the file, and why.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", .path.display())]
pub struct StateError {
    /// The state file (the journal, for the journal's problems).
    pub path: PathBuf,
    /// Why.
    pub problem: StateProblem,
}

/// Why the state file, its lock or its journal cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateProblem {
    /// Larger than [`MAX_STATE_BYTES`](super::MAX_STATE_BYTES).
    #[error("cannot read the state file: larger than {} ({limit} bytes), the limit", mib(*limit))]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// It cannot be read.
    #[error("cannot read the state file: {0}")]
    Unreadable(InputError),
    /// It is no state file.
    #[error("not a tagbinder state file: {0}")]
    NotAStateFile(serde_json::Error),
    /// Its generation leaves no room for a save.
    #[error(
        "generation {0} is the largest a state file can hold, so no run could save after it; \
         the file was edited by hand: set \"generation\" to the number of saves (0 is safe \
         when no other run uses this file)"
    )]
    GenerationAtMax(u64),
    /// A version this build does not read.
    #[error("state file version {0} is not supported (expected {STATE_VERSION})")]
    Version(u32),
    /// Two records of one binding (version 1 keyed them by provider too).
    #[error(
        "the state file holds two records of binding {key} (providers {first:?} and \
         {second:?}, under {old_key:?}); keep the one of the provider the binding uses and \
         remove the other"
    )]
    TwoRecords {
        /// `namespace/name`.
        key: String,
        /// The first record's provider.
        first: String,
        /// The second's.
        second: String,
        /// The second's version 1 key.
        old_key: String,
    },
    /// Another run saved after this one read.
    #[error(
        "cannot write the state file: another run saved generation {on_disk} after this run \
         read generation {read}; not overwriting it (run again)"
    )]
    Overtaken {
        /// The generation on disk.
        on_disk: u64,
        /// The generation this run read.
        read: u64,
    },
    /// The generation counter cannot count one more save.
    #[error("cannot write the state file: the generation counter is at its largest value")]
    GenerationExhausted,
    /// Writing it failed.
    #[error("cannot write the state file: {0}")]
    Unwritable(std::io::Error),
    /// A symbolic link on the way cannot be read.
    #[error("cannot read the link: {0}")]
    Link(std::io::Error),
    /// It is not a regular file.
    #[error(
        "the state file is {kind}{through}, not a regular file; give --state a regular file's \
         path"
    )]
    NotRegular {
        /// What it is.
        kind: &'static str,
        /// ` (through links, PATH)` when links led there.
        through: String,
    },
    /// Its real path cannot be found.
    #[error("cannot resolve the state file's path: {0}")]
    Unresolvable(std::io::Error),
    /// Too many links.
    #[error("more than {MAX_LINKS} symbolic links to follow; is there a loop?")]
    LinkLoop,
    /// `apply` could not prepare its writes (before any cloud write).
    #[error("the state file cannot be written ({what}: {error}); nothing was changed")]
    NotWritable {
        /// Which step.
        what: &'static str,
        /// Why.
        error: std::io::Error,
    },
    /// Another run holds the lock.
    #[error(
        "another tagbinder run is using this state file (lock {}){}; wait for it to end, or \
         pass --lock-timeout=DURATION to wait",
        .lock.display(),
        waited(*.timeout)
    )]
    Locked {
        /// The lock file.
        lock: PathBuf,
        /// How long this run waited.
        timeout: Duration,
    },
    /// The lock cannot be taken.
    #[error("cannot lock the state file: {0}")]
    Lock(std::io::Error),
    /// The journal cannot be read.
    #[error("{0}")]
    Journal(InputError),
    /// The journal cannot be removed.
    #[error(
        "cannot remove the journal (the state file is saved; the next run ignores the \
         journal's lines): {0}"
    )]
    JournalNotRemoved(std::io::Error),
}

fn waited(timeout: Duration) -> String {
    if timeout.is_zero() {
        String::new()
    } else {
        format!(" after waiting {}", humantime::format_duration(timeout))
    }
}

impl StateError {
    pub(super) fn new(path: &Path, problem: StateProblem) -> Self {
        StateError {
            path: path.to_path_buf(),
            problem,
        }
    }
}
