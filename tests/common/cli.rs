//! The CLI as a user runs it, for the test crates that drive the built binary.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

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
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
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

/// `tagbinder emulator` in the background; killed on drop.
pub struct EmulatorProcess {
    child: std::process::Child,
    pub url: String,
}

impl EmulatorProcess {
    /// Starts it on a loopback port it picks (port 0: no other process can take the port
    /// between a look-up and the bind), and reads the address it prints.
    pub fn start(inventory: &Path) -> Self {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_tagbinder"))
            .args(["emulator", "--listen", "127.0.0.1:0", "--inventory"])
            .arg(inventory)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let Some(url) = line.trim().strip_prefix("tagbinder emulator: serving ") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the emulator did not say where it serves: {line:?}");
        };
        let url = url.to_string();
        // NB: a closed pipe would fail the emulator's next line of output.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        EmulatorProcess { child, url }
    }

    pub fn get(&self, path: &str) -> Value {
        let mut stream =
            std::net::TcpStream::connect(self.url.trim_start_matches("http://")).unwrap();
        use std::io::{Read, Write};
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or_default();
        serde_json::from_str(body).unwrap_or_else(|e| panic!("JSON from {path}: {e}: {body}"))
    }

    pub fn calls(&self, cloud: &str, action: &str) -> u64 {
        self.get("/_emulator/stats")["requests"][cloud][action]["ok"]
            .as_u64()
            .unwrap_or(0)
    }
}

impl Drop for EmulatorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
