//! The CLI as a user runs it, for the test crates that drive the built binary.

use std::path::Path;
use std::process::{Command, Output};

/// Runs the built `tagbinder` in `dir` with `args`, without any cloud credentials from the
/// environment (each test says which it uses) and with warnings only in the logs.
pub fn tagbinder(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tagbinder"))
        .args(args)
        .current_dir(dir)
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_ID")
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
        .env_remove("JDCLOUD_ACCESS_KEY")
        .env_remove("JDCLOUD_SECRET_KEY")
        .env("RUST_LOG", "warn")
        .output()
        .expect("the tagbinder binary runs")
}

/// What the run printed on standard output.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What the run printed on standard error.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Copies every file under `from` (its subfolders too, such as an example's `inventory/`)
/// into the one folder `to`, which must exist.
pub fn copy_flat(from: &Path, to: &Path) {
    let mut folders = vec![from.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
            }
        }
    }
}
