//! `tagbinder emulator` facing clients that open connections and send half a request: with
//! few file descriptors, or more of them than it serves at once, they must not block the
//! other clients (issue 14, item 8; issue 20, item 13), and the `/_emulator/` endpoints answer
//! loopback clients only (issue 14, item 12; issue 20, item 13: by the peer address too).

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
        Emulator::start_on("127.0.0.1:0", fds, flags)
    }

    /// [`Emulator::start`] on `listen`.
    fn start_on(listen: &str, fds: Option<u32>, flags: &[&str]) -> Emulator {
        let binary = env!("CARGO_BIN_EXE_tagbinder");
        let limit = fds
            .map(|n| format!("ulimit -n {n} && "))
            .unwrap_or_default();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "{limit}exec \"$0\" emulator --listen {listen} \"$@\""
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

/// Opens `count` connections that each send half a request's headers, and never the rest.
fn half_sent(emulator: &Emulator, count: usize) -> Vec<TcpStream> {
    (0..count)
        .map(|_| {
            let mut stream = emulator.connect();
            stream
                .write_all(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
                .unwrap();
            stream
        })
        .collect()
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
    let slow = half_sent(&emulator, 200);
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
fn more_half_sent_requests_than_connections_served_do_not_block_a_prompt_client() {
    // NB: the default limit of 512 connections, and a header timeout longer than the test's
    // hang detector: a client that sends its request at once must be answered while 1,100
    // slow ones are open, not when their header timeout frees the connections they hold
    // (it waited in the listen backlog behind them).
    let emulator = Emulator::start(None, &["--header-timeout-ms", "600000"]);
    let slow = half_sent(&emulator, 1100);
    for _ in 0..3 {
        let answer = emulator.ask(&get("/_emulator/stats", ""));
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    }
    drop(slow);
}

/// A non-loopback IPv4 address of this machine, if it has one: the source address of a
/// datagram socket routed beyond loopback (nothing is sent).
fn non_loopback_address() -> Option<std::net::IpAddr> {
    [
        "192.0.2.1:9",
        "10.255.255.254:9",
        "172.31.255.254:9",
        "8.8.8.8:9",
    ]
    .into_iter()
    .find_map(|target| {
        let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
        socket.connect(target).ok()?;
        let ip = socket.local_addr().ok()?.ip();
        (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
    })
}

#[test]
fn control_endpoints_refuse_a_peer_beyond_loopback_whatever_its_host_header() {
    let Some(address) = non_loopback_address() else {
        // NB: the decision itself is unit-tested (`only_loopback_peers_are_accepted`).
        eprintln!("no non-loopback address on this machine; skipped");
        return;
    };
    let emulator = Emulator::start_on("0.0.0.0:0", None, &[]);
    let port = emulator.addr.rsplit(':').next().unwrap().to_string();
    let request = "GET /_emulator/state HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let ask_from = |ip: std::net::IpAddr| {
        let mut stream = TcpStream::connect((ip, port.parse::<u16>().unwrap())).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    };
    // NB: a connection to the machine's own address comes from that address.
    let remote = ask_from(address);
    assert!(remote.starts_with("HTTP/1.1 403 Forbidden"), "{remote}");
    assert!(remote.contains("is not a loopback address"), "{remote}");
    assert!(!remote.contains("\"resources\""), "{remote}");
    let local = ask_from("127.0.0.1".parse().unwrap());
    assert!(local.starts_with("HTTP/1.1 200 OK"), "{local}");
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
        (
            "an opaque origin",
            get("/_emulator/state", "Origin: null\r\n"),
        ),
        ("a cross-site tag change", {
            let edit =
                r#"{"cloud":"alibaba","type":"apiGroup","id":"g1","set":{"owner":"attacker"}}"#;
            format!(
                "POST /_emulator/tags HTTP/1.1\r\nHost: 127.0.0.1\r\nOrigin: http://attacker.example\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{edit}",
                edit.len()
            )
        }),
    ] {
        let answer = emulator.ask(&request);
        assert!(
            answer.starts_with("HTTP/1.1 403 Forbidden"),
            "{what}: {answer}"
        );
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
