//! The crash window of `apply`: a run killed after a cloud write and before it saves the state
//! file would not know, next time, that the tags it finds were written by it, and would never
//! prune them. So every tag write is recorded first, in `STATE.journal` beside the state file,
//! one JSON line per binding and pass; the next run reads the lines of runs that did not save,
//! and claims each key whose value in the cloud still is the one the line intended.
//!
//! A line is written (not synced) before its call is sent: it survives the process being
//! killed at any point; it may not survive the machine losing power in the same instant.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::state::{StateFile, beside};
use crate::cloud::{CloudError, ErrorKind, TagApi, Write as CloudWrite, WriteOp, WriteResult};
use crate::input;
use crate::tags::{Limits, Tags, TagsByResource};

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
pub fn load_pending(path: &Path, state: &mut StateFile) -> Result<(), String> {
    let journal = beside(path, ".journal");
    let file = match std::fs::File::open(&journal) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(format!("{}: cannot read: {error}", journal.display())),
    };
    let bytes = input::read_bounded(file, super::state::MAX_STATE_BYTES)
        .map_err(|error| format!("{}: {error}", journal.display()))?;
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
                pending: Vec::new(),
            });
        entry.pending.extend(line.writes);
    }
    Ok(())
}

/// Empties the journal once the state file records everything in it.
pub fn clear(path: &Path) -> Result<(), String> {
    let journal = beside(path, ".journal");
    match std::fs::remove_file(&journal) {
        Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(format!(
            "{}: cannot remove the journal (the state file is saved; the next run ignores \
             the journal's lines): {error}",
            journal.display()
        )),
        _ => Ok(()),
    }
}

/// A binding's client that records its tag writes in the journal before sending them.
pub struct Journaled<C> {
    inner: C,
    journal: Option<Arc<Journal>>,
    binding: String,
    provider: String,
}

impl<C> Journaled<C> {
    /// `inner`, recording as `binding` (`namespace/name`) of `provider` when `journal` is set.
    pub fn new(inner: C, journal: &JournalHandle, binding: String, provider: String) -> Self {
        Journaled {
            inner,
            journal: journal.0.clone(),
            binding,
            provider,
        }
    }

    fn record(&self, resource_type: &str, writes: &[CloudWrite<'_>]) -> Result<(), CloudError> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        let pending: Vec<PendingWrite> = writes
            .iter()
            .filter(|w| w.op == WriteOp::Tag)
            .map(|w| PendingWrite {
                resource_type: resource_type.to_string(),
                resource_ids: w.resource_ids.to_vec(),
                tags: w.tags.clone(),
            })
            .collect();
        if pending.is_empty() {
            return Ok(());
        }
        journal
            .record(&self.binding, &self.provider, pending)
            .map_err(|error| CloudError {
                // NB: not sent; the next run retries, as after a retryable error.
                kind: ErrorKind::Retryable,
                action: "TagResources",
                code: "JournalWriteFailed".to_string(),
                message: format!("the write was not sent: cannot record it first: {error}"),
                http_status: None,
                request_id: None,
                attempts: 0,
            })
    }
}

impl<C: TagApi> TagApi for Journaled<C> {
    fn cloud_name(&self) -> &'static str {
        self.inner.cloud_name()
    }

    fn limits(&self) -> &Limits {
        self.inner.limits()
    }

    fn check_resource_type(&self, resource_type: &str) -> Result<(), String> {
        self.inner.check_resource_type(resource_type)
    }

    async fn list_tags(
        &self,
        resource_type: &str,
        resource_ids: &[String],
    ) -> Result<TagsByResource, CloudError> {
        self.inner.list_tags(resource_type, resource_ids).await
    }

    async fn select_resources(
        &self,
        resource_type: &str,
        match_tags: &Tags,
    ) -> Result<TagsByResource, CloudError> {
        self.inner.select_resources(resource_type, match_tags).await
    }

    async fn tag_resources(
        &self,
        resource_type: &str,
        resource_ids: &[String],
        tags: &Tags,
    ) -> Result<WriteResult, CloudError> {
        let write = CloudWrite {
            op: WriteOp::Tag,
            resource_ids,
            tags,
        };
        self.record(resource_type, &[write])?;
        self.inner
            .tag_resources(resource_type, resource_ids, tags)
            .await
    }

    async fn untag_resources(
        &self,
        resource_type: &str,
        resource_ids: &[String],
        tags: &Tags,
    ) -> Result<WriteResult, CloudError> {
        self.inner
            .untag_resources(resource_type, resource_ids, tags)
            .await
    }

    async fn write_all(
        &self,
        resource_type: &str,
        writes: &[CloudWrite<'_>],
    ) -> Vec<Result<WriteResult, CloudError>> {
        if let Err(error) = self.record(resource_type, writes) {
            return writes.iter().map(|_| Err(error.clone())).collect();
        }
        self.inner.write_all(resource_type, writes).await
    }
}

/// Claims, in each record, the keys of its pending writes whose value in the cloud is the one
/// intended, then drops the pending writes; `read` answers the current tags of resources (of
/// the record's provider), or `None` when it cannot (the pending writes are kept then).
pub async fn resolve_pending<F, Fut>(state: &mut StateFile, read: F)
where
    F: Fn(String, String, Vec<String>) -> Fut,
    Fut: Future<Output = Option<TagsByResource>>,
{
    for entry in state.bindings.values_mut() {
        if entry.pending.is_empty() {
            continue;
        }
        let mut ownership = entry.applied.to_ownership();
        let mut unresolved = Vec::new();
        for write in std::mem::take(&mut entry.pending) {
            if write.resource_type != entry.resource_type {
                continue; // NB: the binding's type changed; these resources are not its.
            }
            let read = read(
                entry.provider.clone(),
                write.resource_type.clone(),
                write.resource_ids.clone(),
            );
            let Some(observed) = read.await else {
                unresolved.push(write);
                continue;
            };
            for id in &write.resource_ids {
                let Some(carried) = observed.get(id) else {
                    continue;
                };
                for (key, value) in &write.tags {
                    if carried.get(key) == Some(value) {
                        ownership.own(id, key, value);
                    }
                }
            }
        }
        entry.applied = crate::api::AppliedRecord::from_ownership(&ownership);
        entry.pending = unresolved;
    }
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
    async fn claims_only_the_keys_that_still_carry_the_intended_value() {
        let mut state = StateFile::empty();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let journal = Journal::open(&path, &state);
        let tags = Tags::from([("env".into(), "prod".into()), ("tier".into(), "web".into())]);
        let write = PendingWrite {
            resource_type: "apiGroup".into(),
            resource_ids: vec!["g1".into(), "g2".into()],
            tags,
        };
        journal.record("ns/b", "p", vec![write]).unwrap();
        load_pending(&path, &mut state).unwrap();
        resolve_pending(&mut state, |_, _, _| async {
            let mut observed = TagsByResource::new();
            // g1: written; g2: the write never landed, someone else's tier is there.
            observed.insert(
                "g1".into(),
                Tags::from([("env".into(), "prod".into()), ("tier".into(), "web".into())]),
            );
            observed.insert("g2".into(), Tags::from([("tier".into(), "db".into())]));
            Some(observed)
        })
        .await;
        let entry = &state.bindings["ns/b"];
        assert!(entry.pending.is_empty());
        let owned = entry.applied.to_ownership();
        assert_eq!(owned.on("g1").unwrap().len(), 2);
        assert_eq!(owned.on("g2"), None);
    }
}
