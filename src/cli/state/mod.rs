//! The CLI's ownership record (`--state`, default `.tagbinder/state.json`): what the
//! controller keeps in `status.appliedTags`, per binding, keyed by `namespace/name`.
//!
//! Version 1 files keyed records by `provider/namespace/name`, which was ambiguous while names
//! could hold `/`; they are read and rewritten as version 2. A run holds a lock on the state
//! ([`StateLock`]) from before it reads the file until after it writes it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::journal::{JournalHandle, PendingWrite};
use crate::api::{AppliedRecord, BindingMode, Cloud, DeletionPolicy};
use crate::input::{self, InputError};

mod error;
pub use error::{StateError, StateProblem};

/// Format version of the state file written.
const STATE_VERSION: u32 = 2;
/// The version keyed by `provider/namespace/name`, still read.
const STATE_VERSION_PROVIDER_KEYS: u32 = 1;
/// Largest state file read: 10,000 bindings of 1,000 resources each fit.
pub const MAX_STATE_BYTES: u64 = 256 * 1024 * 1024;

/// The whole state file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StateFile {
    /// Format version.
    pub version: u32,
    /// How many runs saved this file: a run that finds a higher number on disk than it read
    /// does not overwrite it.
    #[serde(default)]
    pub generation: u64,
    /// Bindings by `namespace/name`.
    pub bindings: BTreeMap<String, BindingState>,
    /// Where this run records its writes before making them (`apply` only).
    #[serde(skip)]
    pub journal: JournalHandle,
}

/// What one binding applied, and enough about it to prune after it left the files.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BindingState {
    /// Provider name.
    pub provider: String,
    /// Cloud the tags were applied in (absent in files of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<Cloud>,
    /// Region the tags were applied in (absent in files of older versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Namespace of the binding.
    pub namespace: String,
    /// Name of the binding.
    pub name: String,
    /// Resource type of the binding.
    pub resource_type: String,
    /// Deletion policy last declared.
    pub deletion_policy: DeletionPolicy,
    /// Mode last declared: an Observe binding's removal writes nothing.
    #[serde(default, skip_serializing_if = "is_enforce")]
    pub mode: BindingMode,
    /// The ownership record.
    #[serde(flatten)]
    pub applied: AppliedRecord,
    /// A selector binding's last successful selection: its claims while a later resolution
    /// fails (as the controller keeps them in its claim index), so that a younger binding
    /// cannot take its keys for one run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selected: Vec<String>,
    /// Writes a run recorded as intended but did not confirm (it was killed, or could not
    /// read the cloud back): the next run claims the keys whose values match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<PendingWrite>,
    /// When a run first recorded this binding: its age in conflicts, as `creationTimestamp`
    /// is in the cluster (a new binding is younger than every recorded one, whatever its
    /// name). Absent in files written before it was kept: such a binding counts as older than
    /// any that has it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_applied: Option<jiff::Timestamp>,
}

impl BindingState {
    /// Its age in conflicts, seconds since the epoch ([`BindingState::first_applied`]; 0 for
    /// a record older than that field).
    pub fn age_seconds(&self) -> i64 {
        self.first_applied.map_or(0, |t| t.as_second())
    }
}

fn is_enforce(mode: &BindingMode) -> bool {
    *mode == BindingMode::Enforce
}

/// The key of a binding in the state file: unambiguous because Kubernetes names hold no `/`
/// (the CLI refuses the names Kubernetes refuses).
pub fn state_key(namespace: &str, name: &str) -> String {
    format!("{namespace}/{name}")
}

impl StateFile {
    /// An empty state.
    pub fn empty() -> Self {
        StateFile {
            version: STATE_VERSION,
            ..StateFile::default()
        }
    }

    /// Reads the state file; a missing file is an empty state. Reads at most
    /// [`MAX_STATE_BYTES`], and migrates a version 1 file.
    pub fn load(path: &Path) -> Result<Self, StateError> {
        let fail = |problem| StateError::new(path, problem);
        let text = match read_regular_file(path) {
            Ok(text) => text,
            Err(InputError::Io(error)) if error.kind() == std::io::ErrorKind::NotFound => {
                return Ok(StateFile::empty());
            }
            Err(InputError::TooLarge { limit }) => {
                return Err(fail(StateProblem::TooLarge { limit }));
            }
            Err(error) => return Err(fail(StateProblem::Unreadable(error))),
        };
        let state: StateFile = serde_json::from_str(&text)
            .map_err(|error| fail(StateProblem::NotAStateFile(error)))?;
        // NB: refused rather than saturated: the next save must write a higher generation
        // than any run read (that is how a run finds that another saved meanwhile), and a
        // saturated counter would stop telling. Refused at load, before any cloud write, not
        // at the save after them. No run reaches it by counting: the file was edited.
        if state.generation == u64::MAX {
            return Err(fail(StateProblem::GenerationAtMax(state.generation)));
        }
        match state.version {
            STATE_VERSION | STATE_VERSION_PROVIDER_KEYS => state.rekeyed(path),
            version => Err(fail(StateProblem::Version(version))),
        }
    }

    /// The records keyed by `namespace/name` (version 1 keyed them by provider too); two
    /// records of one binding cannot be merged safely, and are refused.
    fn rekeyed(self, path: &Path) -> Result<Self, StateError> {
        let mut bindings = BTreeMap::new();
        for (old_key, entry) in self.bindings {
            let key = state_key(&entry.namespace, &entry.name);
            if let Some(previous) = bindings.insert(key.clone(), entry) {
                return Err(StateError::new(
                    path,
                    StateProblem::TwoRecords {
                        first: previous.provider,
                        second: bindings[&key].provider.clone(),
                        key,
                        old_key,
                    },
                ));
            }
        }
        Ok(StateFile {
            version: STATE_VERSION,
            bindings,
            ..self
        })
    }

    /// Writes the state file atomically (a temporary file in the same directory, synced,
    /// renamed), as the next generation; refuses when the file on disk is newer than the one
    /// this run read (a run that does not take the lock wrote it meanwhile).
    pub fn save(&mut self, path: &Path) -> Result<(), StateError> {
        let fail = |error: std::io::Error| StateError::new(path, StateProblem::Unwritable(error));
        if let Ok(on_disk) = StateFile::load(path)
            && on_disk.generation > self.generation
        {
            return Err(StateError::new(
                path,
                StateProblem::Overtaken {
                    on_disk: on_disk.generation,
                    read: self.generation,
                },
            ));
        }
        let dir = state_dir(path);
        std::fs::create_dir_all(dir).map_err(fail)?;
        let mut next = self.clone();
        next.version = STATE_VERSION;
        next.generation = self
            .generation
            .checked_add(1)
            .ok_or_else(|| StateError::new(path, StateProblem::GenerationExhausted))?;
        let mut file = tempfile::NamedTempFile::new_in(dir).map_err(fail)?;
        let json = serde_json::to_string_pretty(&next).map_err(|e| fail(e.into()))?;
        file.write_all(json.as_bytes()).map_err(fail)?;
        file.write_all(b"\n").map_err(fail)?;
        file.as_file().sync_all().map_err(fail)?;
        file.persist(path).map_err(|e| fail(e.error))?;
        self.generation = next.generation;
        Ok(())
    }
}

/// The text of the state file, refused unless it is a regular file (opened without blocking,
/// so that a FIFO put in its place after [`resolve`] is refused, not waited on).
fn read_regular_file(path: &Path) -> Result<String, InputError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    let file_type = file.metadata()?.file_type();
    if !file_type.is_file() {
        return Err(InputError::Io(std::io::Error::other(format!(
            "it is {}, not a regular file",
            file_kind(&file_type)
        ))));
    }
    input::text_of(input::read_bounded(file, MAX_STATE_BYTES)?)
}

/// Most symbolic links followed to find the state file (as Linux's `ELOOP` limit).
const MAX_LINKS: usize = 40;

/// The state file a `--state` path names, resolved once for the whole run: every link
/// followed (a link to a file that does not exist yet names that file, in a directory that
/// must exist then), so that the lock, the journal and the saved file are the link's target:
/// a run through the link and one through the real path take the same lock, and a save
/// replaces the target, leaving the link a link. Anything but a regular file is refused (a
/// FIFO would block the run's read while it holds the lock). A path that does not exist yet
/// and involves no link is answered as given.
pub fn resolve(path: &Path) -> Result<PathBuf, StateError> {
    let fail = |problem| StateError::new(path, problem);
    let mut current = path.to_path_buf();
    for _ in 0..MAX_LINKS {
        let Ok(metadata) = std::fs::symlink_metadata(&current) else {
            // NB: not there yet (or not reachable): the lock and the load say why, if it
            // matters.
            return Ok(in_real_directory(&current));
        };
        if metadata.file_type().is_symlink() {
            let target = std::fs::read_link(&current).map_err(|e| fail(StateProblem::Link(e)))?;
            current = state_dir(&current).join(target);
            continue;
        }
        if !metadata.is_file() {
            let kind = file_kind(&metadata.file_type());
            let through = if current == path {
                String::new()
            } else {
                format!(" (through links, {})", current.display())
            };
            return Err(fail(StateProblem::NotRegular { kind, through }));
        }
        return std::fs::canonicalize(&current).map_err(|e| fail(StateProblem::Unresolvable(e)));
    }
    Err(fail(StateProblem::LinkLoop))
}

/// `path` (which does not exist) in its directory's real path, when the directory exists.
fn in_real_directory(path: &Path) -> PathBuf {
    match (std::fs::canonicalize(state_dir(path)), path.file_name()) {
        (Ok(dir), Some(name)) => dir.join(name),
        _ => path.to_path_buf(),
    }
}

/// What a file that is not a regular file is, for messages.
fn file_kind(file_type: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if file_type.is_socket() {
            return "a socket";
        }
        if file_type.is_char_device() || file_type.is_block_device() {
            return "a device";
        }
    }
    if file_type.is_dir() {
        "a directory"
    } else {
        "not a regular file"
    }
}

/// The directory of the state file.
pub(super) fn state_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// A path beside the state file: `state.json` -> `state.json.lock`.
pub(super) fn beside(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A lock on the state file, held for a whole run: exclusive for `apply`, shared for `plan`.
/// Kept in `STATE.lock` beside the state file (the state file itself is replaced by rename,
/// so a lock on it would not outlive the first save). The operating system releases it when
/// the process ends, however it ends.
#[derive(Debug)]
pub struct StateLock {
    _file: std::fs::File,
}

impl StateLock {
    /// Takes the exclusive lock for `apply`, waiting up to `timeout`, and checks that the state
    /// can be written (its directory, a temporary file in it): both before any cloud write.
    pub fn for_apply(state: &Path, timeout: Duration) -> Result<StateLock, StateError> {
        let dir = state_dir(state);
        let fail = |what: &'static str, error: std::io::Error| {
            StateError::new(state, StateProblem::NotWritable { what, error })
        };
        std::fs::create_dir_all(dir).map_err(|e| fail("cannot create its directory", e))?;
        let lock_path = beside(state, ".lock");
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|e| fail("cannot create the lock file", e))?;
        wait_for(&file, state, timeout, true)?;
        // NB: the lock file may have been created by another user, and the directory may
        // accept a lock file but not a new file: try the save's own first step.
        tempfile::NamedTempFile::new_in(dir)
            .map_err(|e| fail("cannot create a temporary file beside it", e))?;
        Ok(StateLock { _file: file })
    }

    /// Takes a shared lock for `plan`, waiting up to `timeout`: a plan does not read a state
    /// file that an `apply` is writing. No lock (and no error) where none can be taken: a
    /// state directory that does not exist yet or that this user cannot write.
    pub fn for_plan(state: &Path, timeout: Duration) -> Result<Option<StateLock>, StateError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(beside(state, ".lock"));
        let Ok(file) = file else {
            return Ok(None);
        };
        wait_for(&file, state, timeout, false)?;
        Ok(Some(StateLock { _file: file }))
    }
}

fn wait_for(
    file: &std::fs::File,
    state: &Path,
    timeout: Duration,
    exclusive: bool,
) -> Result<(), StateError> {
    let started = Instant::now();
    loop {
        let tried = if exclusive {
            file.try_lock()
        } else {
            file.try_lock_shared()
        };
        match tried {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < timeout => {
                // NB: a blocking sleep: the run has started nothing else yet, and waits for
                // the lock before anything else.
                std::thread::sleep(Duration::from_millis(100).min(timeout));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StateError::new(
                    state,
                    StateProblem::Locked {
                        lock: beside(state, ".lock"),
                        timeout,
                    },
                ));
            }
            Err(std::fs::TryLockError::Error(error)) => {
                return Err(StateError::new(state, StateProblem::Lock(error)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tags::Tags;

    fn entry(provider: &str, namespace: &str, name: &str) -> BindingState {
        BindingState {
            first_applied: None,
            provider: provider.into(),
            cloud: Some(Cloud::Alibaba),
            region: Some("cn-hangzhou".into()),
            namespace: namespace.into(),
            name: name.into(),
            resource_type: "apiGroup".into(),
            deletion_policy: DeletionPolicy::Delete,
            mode: BindingMode::Enforce,
            applied: AppliedRecord {
                applied_tags: Tags::from([("env".into(), "prod".into())]),
                applied_resource_ids: vec!["r1".into()],
                ..AppliedRecord::default()
            },
            pending: Vec::new(),
            selected: Vec::new(),
        }
    }

    #[test]
    fn saves_and_loads_atomically_as_the_next_generation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/state.json");
        let mut state = StateFile::load(&path).unwrap();
        assert!(state.bindings.is_empty());
        state
            .bindings
            .insert(state_key("ns", "b"), entry("p", "ns", "b"));
        state.save(&path).unwrap();
        assert_eq!(state.generation, 1);
        assert_eq!(StateFile::load(&path).unwrap(), state);
    }

    #[test]
    fn refuses_a_file_that_is_not_a_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        std::fs::write(&path, "{\"hello\": 1}").unwrap();
        let error = StateFile::load(&path).unwrap_err().to_string();
        assert!(error.contains("not a tagbinder state file"), "{error}");
    }

    #[test]
    fn reads_a_bounded_number_of_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        // NB: sparse: no disk space is used.
        let file = std::fs::File::create(&path).unwrap();
        file.set_len(MAX_STATE_BYTES + 1).unwrap();
        let error = StateFile::load(&path).unwrap_err().to_string();
        assert!(error.contains("256.0 MiB"), "{error}");
    }

    #[test]
    fn the_largest_generation_is_refused_at_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let state = serde_json::json!({"version": 2, "generation": u64::MAX, "bindings": {}});
        std::fs::write(&path, state.to_string()).unwrap();
        let error = StateFile::load(&path).unwrap_err().to_string();
        assert!(error.contains("generation 18446744073709551615"), "{error}");
        let mut edited = StateFile::empty();
        edited.generation = u64::MAX;
        let error = edited
            .save(&dir.path().join("other.json"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("largest"), "{error}");
    }

    #[test]
    fn migrates_provider_keys_and_refuses_two_records_of_one_binding() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let v1 = serde_json::json!({"version": 1, "bindings": {
            "p/ns/b": {"provider": "p", "namespace": "ns", "name": "b", "resourceType": "apiGroup",
                       "deletionPolicy": "Delete", "appliedTags": {"env": "prod"},
                       "appliedResourceIds": ["r1"]}}});
        std::fs::write(&path, v1.to_string()).unwrap();
        let state = StateFile::load(&path).unwrap();
        assert_eq!(state.version, 2);
        let record = &state.bindings["ns/b"];
        assert_eq!(record.provider, "p");
        assert_eq!(record.applied.applied_resource_ids, ["r1"]);
        let mut two = v1.clone();
        two["bindings"]["q/ns/b"] = two["bindings"]["p/ns/b"].clone();
        two["bindings"]["q/ns/b"]["provider"] = "q".into();
        std::fs::write(&path, two.to_string()).unwrap();
        let error = StateFile::load(&path).unwrap_err().to_string();
        assert!(error.contains("two records of binding ns/b"), "{error}");
    }

    #[test]
    fn does_not_overwrite_a_newer_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut slow = StateFile::load(&path).unwrap();
        let mut fast = StateFile::load(&path).unwrap();
        fast.save(&path).unwrap();
        slow.bindings
            .insert(state_key("ns", "b"), entry("p", "ns", "b"));
        let error = slow.save(&path).unwrap_err().to_string();
        assert!(error.contains("not overwriting"), "{error}");
    }

    #[test]
    fn a_second_apply_is_refused_at_once_or_waits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let first = StateLock::for_apply(&path, Duration::ZERO).unwrap();
        let error = StateLock::for_apply(&path, Duration::ZERO)
            .unwrap_err()
            .to_string();
        assert!(error.contains("another tagbinder run"), "{error}");
        assert!(error.contains("--lock-timeout"), "{error}");
        let error = StateLock::for_plan(&path, Duration::ZERO)
            .unwrap_err()
            .to_string();
        assert!(error.contains("another tagbinder run"), "{error}");
        let waiter = {
            let path = path.clone();
            std::thread::spawn(move || StateLock::for_apply(&path, Duration::from_secs(60)))
        };
        drop(first);
        waiter.join().unwrap().unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn an_unwritable_directory_is_found_before_anything_is_done() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let locked = dir.path().join("ro");
        std::fs::create_dir(&locked).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
        // NB: root ignores permissions; the check is meaningful only for other users.
        if std::fs::write(locked.join("probe"), "").is_ok() {
            return;
        }
        let error = StateLock::for_apply(&locked.join("state.json"), Duration::ZERO)
            .unwrap_err()
            .to_string();
        assert!(error.contains("cannot be written"), "{error}");
    }
}
