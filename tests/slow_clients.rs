//! `tagbinder emulator` facing clients that open connections and send half a request: with
//! few file descriptors, they must not block the other clients (issue 14, item 8), and the
//! `/_emulator/` endpoints answer loopback clients only (item 12).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The emulator binary, killed when dropped.
struct Emulator {
    child: Child,
    addr: String,
}

impl Emulator {
    /// Starts `tagbinder emulator` on a free loopback port, under `sh -c 'ulimit -n FDS'`
    /// when `fds` is set.
    fn start(fds: Option<u32>, flags: &[&str]) -> Emulator {
        let binary = env!("CARGO_BIN_EXE_tagbinder");
        let limit = fds
            .map(|n| format!("ulimit -n {n} && "))
            .unwrap_or_default();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{limit}exec \"$0\" emulator --listen 127.0.0.1:0 \"$@\""
            ))
            .arg(binary)
            .args(flags)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the tagbinder binary runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("tagbinder emulator: serving http://")
            .unwrap_or_else(|| panic!("the emulator says where it serves: {line:?}"))
            .to_string();
        Emulator { child, addr }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(&self.addr).unwrap();
        // NB: a hang detector, not a speed check: a blocked client fails instead of hanging.
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        stream
    }

    /// Sends `request` on a new connection; the whole answer.
    fn ask(&self, request: &str) -> String {
        let mut stream = self.connect();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .expect("an answer within a minute");
        answer
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn get(path: &str, headers: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Connection: close\r\n\r\n")
}

#[test]
fn many_half_sent_requests_do_not_block_other_clients() {
    // NB: 48 file descriptors and 200 half-sent requests: without a connection limit and a
    // header timeout, the emulator runs out of descriptors and never answers again.
    let emulator = Emulator::start(
        Some(48),
        &["--max-connections", "16", "--header-timeout-ms", "300"],
    );
    let slow: Vec<TcpStream> = (0..200)
        .map(|_| {
            let mut stream = emulator.connect();
            stream
                .write_all(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
                .unwrap();
            stream
        })
        .collect();
    let answer = emulator.ask(&get("/_emulator/stats", ""));
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    for mut stream in slow {
        let mut rest = Vec::new();
        // NB: closed by the server (EOF, or a reset): never answered, never left hanging.
        match stream.read_to_end(&mut rest) {
            Ok(_) => assert!(rest.is_empty() || !rest.starts_with(b"HTTP/1.1 2")),
            Err(error) => assert_eq!(error.kind(), std::io::ErrorKind::ConnectionReset),
        }
    }
}

#[test]
fn control_endpoints_refuse_a_foreign_host_or_origin() {
    let emulator = Emulator::start(None, &[]);
    let loopback = emulator.ask(&get("/_emulator/state", ""));
    assert!(loopback.starts_with("HTTP/1.1 200 OK"), "{loopback}");
    let same_origin = emulator.ask(&get(
        "/_emulator/stats",
        &format!("Origin: http://{}\r\n", emulator.addr),
    ));
    assert!(same_origin.starts_with("HTTP/1.1 200 OK"), "{same_origin}");
    for (what, request) in [
        (
            "a rebound host name",
            format!(
                "GET /_emulator/state HTTP/1.1\r\nHost: attacker.example:{}\r\nConnection: close\r\n\r\n",
                emulator.addr.rsplit(':').next().unwrap()
            ),
        ),
        (
            "a cross-site origin",
            get("/_emulator/state", "Origin: https://attacker.example\r\n"),
        ),
        ("an opaque origin", get("/_emulator/state", "Origin: null\r\n")),
        (
            "a cross-site tag change",
            "POST /_emulator/stats/reset HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://attacker.example\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                .to_string(),
        ),
    ] {
        let answer = emulator.ask(&request);
        assert!(answer.starts_with("HTTP/1.1 403 Forbidden"), "{what}: {answer}");
        assert!(answer.contains("loopback clients only"), "{what}: {answer}");
    }
}

#[test]
fn a_listen_address_beyond_loopback_is_warned_about() {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("exec \"$0\" emulator --listen 0.0.0.0:0 2>&1")
        .arg(env!("CARGO_BIN_EXE_tagbinder"))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let serving = line.starts_with("tagbinder emulator: serving");
        seen.push(line);
        if serving {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        seen.iter().any(|l| l.contains("beyond loopback")),
        "{seen:?}"
    );
}

#[test]
fn a_clock_offset_beyond_a_century_is_refused() {
    for offset in ["9223372036854775807", "-9223372036854775808", "3200000000"] {
        let output = Command::new(env!("CARGO_BIN_EXE_tagbinder"))
            .args(["emulator", "--clock-offset-secs", offset])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{offset}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("--clock-offset-secs") && stderr.contains(offset),
            "{offset}: {stderr}"
        );
    }
}
