//! The crash window of `apply`: a run killed after a cloud write and before it saves the state
//! file would not know, next time, that the tags it finds were written by it, and would never
//! prune them. So every pass's intent (the tags it is about to own, exactly as the controller
//! records in `status.pendingTags`: never the keys a tag batch carries along that the resource
//! already has) is recorded first, in `STATE.journal` beside the state file, one JSON line per
//! binding and round; the next run reads the lines of runs that did not save into the records'
//! `pending`, and the round claims each key whose value in the cloud still is the one intended
//! (see [`crate::plan::intent`]). What a saved run could not confirm stays `pending` in the
//! state file until a read confirms or refutes it.
//!
//! A line is written (not synced) before its call is sent: it survives the process being
//! killed at any point; it may not survive the machine losing power in the same instant.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::state::{StateError, StateFile, StateProblem, beside};
use crate::input::{self, InputError};
use crate::reconcile::intent_log::{Intent, IntentError, IntentLog, NOTHING_PENDING};
use crate::tags::{Tags, TagsByResource};

/// Tags a run set out to apply to resources, not yet confirmed in the state file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingWrite {
    /// Resource type of the write.
    pub resource_type: String,
    /// The resources.
    pub resource_ids: Vec<String>,
    /// The tags written to each.
    pub tags: Tags,
}

/// One journal line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Line {
    /// The generation of the state file the run will save (one more than it read).
    generation: u64,
    /// `namespace/name`.
    binding: String,
    provider: String,
    writes: Vec<PendingWrite>,
}

/// The journal of a run, created at its first line (a run that writes nothing leaves none).
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Mutex<Option<std::fs::File>>,
    generation: u64,
}

/// The journal a state file carries during a run; nothing outside `apply`.
#[derive(Clone, Debug, Default)]
pub struct JournalHandle(pub Option<Arc<Journal>>);

impl PartialEq for JournalHandle {
    fn eq(&self, _: &Self) -> bool {
        // NB: not part of the state's value.
        true
    }
}

impl Journal {
    /// The journal of the state file at `path` for a run that read `state`. Whether its
    /// directory can be written was checked with the lock ([`super::state::StateLock`]).
    pub fn open(path: &Path, state: &StateFile) -> Journal {
        Journal {
            path: beside(path, ".journal"),
            file: Mutex::new(None),
            generation: state.generation + 1,
        }
    }

    fn record(
        &self,
        binding: &str,
        provider: &str,
        writes: Vec<PendingWrite>,
    ) -> std::io::Result<()> {
        let line = Line {
            generation: self.generation,
            binding: binding.to_string(),
            provider: provider.to_string(),
            writes,
        };
        let mut text = serde_json::to_string(&line)?;
        text.push('\n');
        // NB: a poisoned lock means another pass panicked mid-write; the file is append-only
        // and a torn line is skipped when read, so writing on is safe.
        let mut guard = self.file.lock().unwrap_or_else(|e| e.into_inner());
        let file = match guard.take() {
            Some(file) => guard.insert(file),
            None => guard.insert(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            ),
        };
        file.write_all(text.as_bytes())
    }
}

/// Moves the journal's unconfirmed writes (lines of runs newer than the state file) into the
/// state's records as `pending`; a record is created for a binding that has none yet.
pub fn load_pending(path: &Path, state: &mut StateFile) -> Result<(), StateError> {
    let journal = beside(path, ".journal");
    let fail = |error| StateError {
        path: journal.clone(),
        problem: StateProblem::Journal(error),
    };
    let file = match std::fs::File::open(&journal) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(fail(InputError::Io(error))),
    };
    let bytes = input::read_bounded(file, super::state::MAX_STATE_BYTES).map_err(fail)?;
    for line in bytes.as_slice().lines() {
        // NB: a line cut short by a kill is the only malformed one possible; its write was
        // never sent.
        let Ok(text) = line else { continue };
        let Ok(line) = serde_json::from_str::<Line>(&text) else {
            continue;
        };
        if line.generation <= state.generation {
            continue; // NB: its run saved the state file afterwards.
        }
        let Some((namespace, name)) = line.binding.split_once('/') else {
            continue;
        };
        let entry = state
            .bindings
            .entry(line.binding.clone())
            .or_insert_with(|| super::state::BindingState {
                provider: line.provider.clone(),
                cloud: None,
                region: None,
                namespace: namespace.to_string(),
                name: name.to_string(),
                resource_type: line
                    .writes
                    .first()
                    .map(|w| w.resource_type.clone())
                    .unwrap_or_default(),
                deletion_policy: Default::default(),
                mode: Default::default(),
                applied: Default::default(),
                // NB: first recorded by the killed run; it counts as first applied now.
                first_applied: Some(jiff::Timestamp::now()),
                pending: Vec::new(),
                selected: Vec::new(),
            });
        entry.pending.extend(line.writes);
    }
    Ok(())
}

/// Empties the journal once the state file records everything in it.
pub fn clear(path: &Path) -> Result<(), StateError> {
    let journal = beside(path, ".journal");
    match std::fs::remove_file(&journal) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(StateError {
            path: journal,
            problem: StateProblem::JournalNotRemoved(error),
        }),
        _ => Ok(()),
    }
}

/// The CLI's [`IntentLog`] for the members of one group: an intent (exactly what
/// [`crate::plan::intent::intent`] says a pass is about to own) goes to the journal as one
/// line before the round sends its writes; `pending` answers a binding's unconfirmed intent
/// from the state file (lines of killed runs, and what a saved run could not confirm).
pub struct JournalIntents<'a> {
    journal: Option<&'a Journal>,
    resource_type: &'a str,
    /// Per member: its state key (`namespace/name`), provider, and unresolved intent.
    members: Vec<(String, &'a str, TagsByResource)>,
}

impl<'a> JournalIntents<'a> {
    /// The intents of a group of `resource_type`; `journal` is absent under `plan`.
    pub fn new(journal: &'a JournalHandle, resource_type: &'a str) -> Self {
        JournalIntents {
            journal: journal.0.as_deref(),
            resource_type,
            members: Vec::new(),
        }
    }

    /// Adds the next member: `binding` (`namespace/name`) of `provider`, whose record holds
    /// `pending` (writes intended and never confirmed).
    pub fn push(&mut self, binding: String, provider: &'a str, pending: &[PendingWrite]) {
        let intent = intent_of(pending, self.resource_type);
        self.members.push((binding, provider, intent));
    }
}

impl IntentLog for JournalIntents<'_> {
    fn pending(&self, index: usize) -> &TagsByResource {
        self.members
            .get(index)
            .map(|(_, _, pending)| pending)
            .unwrap_or(&NOTHING_PENDING)
    }

    async fn record(&self, intents: &[Intent<'_>]) -> Vec<Result<(), IntentError>> {
        intents
            .iter()
            .map(|intent| {
                let Some(journal) = self.journal else {
                    return Ok(());
                };
                let Some((binding, provider, _)) = self.members.get(intent.index) else {
                    return Err(IntentError::NoSuchInput(intent.index));
                };
                let writes = pending_writes(self.resource_type, intent.pending);
                journal
                    .record(binding, provider, writes)
                    .map_err(|error| IntentError::Journal(error.to_string()))
            })
            .collect()
    }
}

/// An intent (per resource, the tags about to be owned) as journal lines store it: one write
/// per distinct set of tags.
pub fn pending_writes(resource_type: &str, intent: &TagsByResource) -> Vec<PendingWrite> {
    let mut by_tags: std::collections::BTreeMap<&Tags, Vec<String>> = Default::default();
    for (id, tags) in intent {
        by_tags.entry(tags).or_default().push(id.clone());
    }
    by_tags
        .into_iter()
        .map(|(tags, resource_ids)| PendingWrite {
            resource_type: resource_type.to_string(),
            resource_ids,
            tags: tags.clone(),
        })
        .collect()
}

/// The intent that `pending` writes of `resource_type` add up to (writes of another type are
/// not the binding's any more: its type changed).
pub fn intent_of(pending: &[PendingWrite], resource_type: &str) -> TagsByResource {
    let mut intent = TagsByResource::new();
    for write in pending.iter().filter(|w| w.resource_type == resource_type) {
        for id in &write.resource_ids {
            let tags = intent.entry(id.clone()).or_default();
            tags.extend(write.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
    }
    intent
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::state::state_key;

    #[test]
    fn lines_of_runs_that_did_not_save_become_pending() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut state = StateFile::load(&path).unwrap();
        let journal = Journal::open(&path, &state);
        let write = PendingWrite {
            resource_type: "apiGroup".into(),
            resource_ids: vec!["g1".into(), "g2".into()],
            tags: Tags::from([("env".into(), "prod".into())]),
        };
        journal.record("ns/b", "p", vec![write.clone()]).unwrap();
        // A torn last line, as a kill mid-write leaves it.
        journal
            .file
            .lock()
            .unwrap()
            .as_mut()
            .unwrap()
            .write_all(b"{\"generation\": 1, \"bin")
            .unwrap();
        load_pending(&path, &mut state).unwrap();
        assert_eq!(state.bindings[&state_key("ns", "b")].pending, [write]);

        // Once a run saved, its lines are spent.
        let mut saved = StateFile::load(&path).unwrap();
        saved.save(&path).unwrap();
        let mut again = StateFile::load(&path).unwrap();
        load_pending(&path, &mut again).unwrap();
        assert!(again.bindings.is_empty());
    }

    #[tokio::test]
    async fn the_journal_records_the_intent_and_answers_it_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut state = StateFile::empty();
        let handle = JournalHandle(Some(Arc::new(Journal::open(&path, &state))));
        let mut intent = TagsByResource::new();
        intent.insert(
            "g1".into(),
            crate::tags::tags(&[("env", "prod"), ("tier", "web")]),
        );
        intent.insert(
            "g2".into(),
            crate::tags::tags(&[("env", "prod"), ("tier", "web")]),
        );
        intent.insert("g3".into(), crate::tags::tags(&[("env", "prod")]));
        let mut log = JournalIntents::new(&handle, "apiGroup");
        log.push("ns/b".into(), "p", &[]);
        let owned = crate::tags::Ownership::default();
        let answers = log
            .record(&[Intent {
                index: 0,
                owned: &owned,
                pending: &intent,
            }])
            .await;
        assert_eq!(answers, [Ok(())]);
        load_pending(&path, &mut state).unwrap();
        let pending = &state.bindings["ns/b"].pending;
        assert_eq!(
            pending.len(),
            2,
            "one write per distinct tag set: {pending:?}"
        );
        assert_eq!(intent_of(pending, "apiGroup"), intent);
        assert!(intent_of(pending, "instance").is_empty());
    }
}
