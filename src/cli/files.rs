//! Which files `-f` names, and their text, within bounds: a directory is walked for regular
//! `.yaml`, `.yml` and `.json` files (hidden entries such as `.tagbinder/` skipped, symbolic
//! links followed once, loops ignored); every input is read up to [`MAX_FILE_BYTES`], counted
//! as read, not as reported.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::manifests::ManifestError;
use crate::input::{self, InputError, MAX_FILE_BYTES, mib};

/// The text of every input, with its name, in the order given (a directory's files in name
/// order). Problems are added to `errors`.
pub(super) fn read_inputs(
    paths: &[PathBuf],
    errors: &mut Vec<ManifestError>,
) -> Vec<(String, String)> {
    let mut files = Vec::new();
    let mut seen = BTreeSet::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let read = input::read_bounded(std::io::stdin().lock(), MAX_FILE_BYTES)
                .and_then(input::text_of);
            push("-", read, &mut files, errors);
        } else if path.is_dir() {
            let found = manifest_files_in(path, errors);
            if found.is_empty() {
                errors.push(ManifestError::of_file(
                    &path.display().to_string(),
                    "directory holds no .yaml, .yml or .json files",
                ));
            }
            for file in found {
                // NB: a file reached twice (through a link, or named twice) is read once.
                let key = std::fs::canonicalize(&file).unwrap_or_else(|_| file.clone());
                if seen.insert(key) {
                    let read = input::read_text_file(&file, MAX_FILE_BYTES);
                    push(&file.display().to_string(), read, &mut files, errors);
                }
            }
        } else {
            let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.clone());
            if seen.insert(key) {
                let read = input::read_text_file(path, MAX_FILE_BYTES);
                push(&path.display().to_string(), read, &mut files, errors);
            }
        }
    }
    files
}

fn push(
    name: &str,
    read: Result<String, InputError>,
    files: &mut Vec<(String, String)>,
    errors: &mut Vec<ManifestError>,
) {
    match read {
        Ok(text) => files.push((name.to_string(), text)),
        Err(InputError::TooLarge { limit }) => errors.push(ManifestError::of_file(
            name,
            format!(
                "input is larger than {} ({limit} bytes), the limit per file, as the Kubernetes \
                 API server's request limit",
                mib(limit)
            ),
        )),
        Err(error) => errors.push(ManifestError::of_file(name, error.to_string())),
    }
}

/// Regular manifest files under a directory, recursively, in name order. Hidden entries
/// (`.tagbinder/`, `.git/`) are skipped, and so is what is not a regular file (a FIFO would
/// block the read forever). Links are followed; a link back to a directory being walked is
/// skipped, not followed again.
fn manifest_files_in(dir: &Path, errors: &mut Vec<ManifestError>) -> Vec<PathBuf> {
    let walk = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|entry| entry.depth() == 0 || !is_hidden(entry.file_name()));
    let mut found = Vec::new();
    for entry in walk {
        match entry {
            Ok(entry) => {
                let manifest = matches!(
                    entry.path().extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml" | "json")
                );
                if manifest && entry.file_type().is_file() {
                    found.push(entry.into_path());
                }
            }
            // NB: walkdir reports a link to an ancestor instead of following it.
            Err(error) if error.loop_ancestor().is_some() => {}
            Err(error) => {
                let name = error.path().unwrap_or(dir).display().to_string();
                let cause = error
                    .io_error()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| error.to_string());
                errors.push(ManifestError::of_file(
                    &name,
                    format!("cannot read: {cause}"),
                ));
            }
        }
    }
    found
}

fn is_hidden(name: &std::ffi::OsStr) -> bool {
    name.to_str().is_some_and(|name| name.starts_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(files: &[(String, String)], root: &Path) -> Vec<String> {
        files
            .iter()
            .map(|(name, _)| {
                Path::new(name)
                    .strip_prefix(root)
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect()
    }

    #[cfg(unix)]
    #[test]
    fn walks_regular_files_once_skipping_hidden_fifos_and_loops() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("a.yaml"), "a: 1\n").unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/b.yml"), "b: 1\n").unwrap();
        std::fs::write(root.join("notes.txt"), "not a manifest").unwrap();
        std::fs::create_dir(root.join(".tagbinder")).unwrap();
        std::fs::write(root.join(".tagbinder/state.json"), "{}").unwrap();
        // A link loop, a link to a file already found, and a FIFO named like a manifest.
        std::os::unix::fs::symlink(root, root.join("sub/loop")).unwrap();
        std::os::unix::fs::symlink(root.join("a.yaml"), root.join("sub/again.yaml")).unwrap();
        let fifo = root.join("pipe.yaml");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(status.success());
        let mut errors = Vec::new();
        let files = read_inputs(&[root.to_path_buf()], &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(names(&files, root), ["a.yaml", "sub/b.yml"]);
    }

    #[test]
    fn a_large_input_is_refused_by_the_bytes_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.yaml");
        std::fs::write(&path, vec![b'#'; MAX_FILE_BYTES as usize + 1]).unwrap();
        let mut errors = Vec::new();
        assert!(read_inputs(&[path], &mut errors).is_empty());
        assert!(errors[0].rule.contains("3.0 MiB"), "{errors:?}");
        if Path::new("/dev/zero").exists() {
            let mut errors = Vec::new();
            assert!(read_inputs(&[PathBuf::from("/dev/zero")], &mut errors).is_empty());
            assert!(errors[0].rule.contains("larger than"), "{errors:?}");
        }
    }
}
