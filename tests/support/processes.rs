//! The built binary in the background: `tagbinder emulator` (the cloud) and `tagbinder run`
//! (the controller), each killed when dropped, and a tiny HTTP client for their endpoints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

use super::apiserver::ApiServer;

/// The access key the cloud emulator accepts.
pub const KEY_ID: &str = "LTAI5tE2eControllerKey";
/// Its secret: must never appear in a status, an event or a log.
pub const KEY_SECRET: &str = "e2e-controller-secret-value";

/// A free loopback port (the process binds it right after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// One HTTP/1.1 request on loopback: the status code and the body.
pub async fn http(method: &str, url: &str, body: Option<&Value>) -> (u16, String) {
    let rest = url.trim_start_matches("http://");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .unwrap_or_else(|e| panic!("connect to {host}: {e}"));
    let body = body.map(Value::to_string).unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .await
        .expect("read the response");
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("an HTTP status line from {url}: {head}"));
    (code, body.to_string())
}

async fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    for _ in 0..400 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited before listening: {status}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what} did not listen on port {port}");
}

/// `tagbinder emulator`: Alibaba Cloud's tag API.
pub struct CloudEmulator {
    _child: Child,
    /// `http://127.0.0.1:PORT`, the providers' `spec.endpoint`.
    pub url: String,
}

impl CloudEmulator {
    /// Starts the emulator with these apiGroup resources and their initial tags.
    pub async fn start(dir: &Path, resources: &[(&str, &[(&str, &str)])]) -> Self {
        let resources: Vec<Value> = resources
            .iter()
            .map(|(id, tags)| {
                let tags: BTreeMap<&str, &str> = tags.iter().copied().collect();
                json!({"cloud": "alibaba", "region": "cn-hangzhou", "type": "apiGroup", "id": id, "tags": tags})
            })
            .collect();
        let inventory = json!({
            "accounts": [{"accessKeyId": KEY_ID, "accessKeySecret": KEY_SECRET}],
            "resources": resources,
        });
        let path = dir.join("inventory.json");
        std::fs::write(&path, inventory.to_string()).expect("write the inventory");
        let port = free_port();
        let mut child = Command::new(env!("CARGO_BIN_EXE_tagbinder"))
            .args([
                "emulator",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--inventory",
            ])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the emulator starts");
        wait_for_port(port, &mut child, "the cloud emulator").await;
        CloudEmulator {
            _child: child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// The tags of an apiGroup resource now.
    pub async fn tags(&self, id: &str) -> BTreeMap<String, String> {
        let (code, body) = http("GET", &format!("{}/_emulator/state", self.url), None).await;
        assert_eq!(code, 200, "{body}");
        let state: Value = serde_json::from_str(&body).expect("JSON state");
        let tags = &state["resources"]["alibaba"]["apiGroup"][id]["tags"];
        serde_json::from_value(tags.clone())
            .unwrap_or_else(|e| panic!("tags of {id} in {state}: {e}"))
    }

    /// Changes tags out of band, as someone in the cloud console would.
    pub async fn edit(&self, id: &str, set: &[(&str, &str)], remove: &[&str]) {
        let set: BTreeMap<&str, &str> = set.iter().copied().collect();
        let edit =
            json!({"cloud": "alibaba", "type": "apiGroup", "id": id, "set": set, "remove": remove});
        let (code, body) = http("POST", &format!("{}/_emulator/tags", self.url), Some(&edit)).await;
        assert_eq!(code, 200, "{body}");
    }
}

/// How to start `tagbinder run`.
pub struct ControllerOptions<'a> {
    /// The user name (bearer token) it authenticates as, and its `POD_NAME`.
    pub identity: &'a str,
    pub leader_election: bool,
    pub namespace: Option<&'a str>,
}

/// `tagbinder run`, in the background.
pub struct Controller {
    child: Child,
    /// Where `/metrics`, `/healthz` and `/readyz` answer.
    pub metrics_url: String,
    logs: PathBuf,
}

/// The controller's `POD_NAMESPACE`: where the Lease is, and the chart's release namespace.
pub const POD_NAMESPACE: &str = "tagbinder-system";

impl Controller {
    /// Starts the controller; its logs go to a file in `dir`.
    pub fn start(server: &ApiServer, dir: &Path, options: ControllerOptions<'_>) -> Self {
        let kubeconfig = dir.join(format!("{}.kubeconfig", options.identity));
        server.write_kubeconfig(&kubeconfig, options.identity);
        Self::start_with_kubeconfig(&kubeconfig, dir, options)
    }

    /// Starts the controller on any API server that `kubeconfig` reaches (a real one, say);
    /// `options.identity` is then its `POD_NAME` only.
    pub fn start_with_kubeconfig(
        kubeconfig: &Path,
        dir: &Path,
        options: ControllerOptions<'_>,
    ) -> Self {
        let identity = options.identity;
        let logs = dir.join(format!("{identity}.log"));
        let log_file = std::fs::File::create(&logs).expect("create the log file");
        let port = free_port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_tagbinder"));
        command
            .args(["run", "--metrics-addr", &format!("127.0.0.1:{port}")])
            .env("KUBECONFIG", kubeconfig)
            .env("POD_NAMESPACE", POD_NAMESPACE)
            .env("POD_NAME", identity)
            .env("RUST_LOG", "warn,tagbinder=debug")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBERNETES_SERVICE_PORT")
            .env_remove("ALIBABA_CLOUD_ACCESS_KEY_ID")
            .env_remove("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
            .stdout(Stdio::null())
            .stderr(log_file)
            .kill_on_drop(true);
        if options.leader_election {
            command.arg("--leader-election");
        }
        if let Some(namespace) = options.namespace {
            command.args(["--namespace", namespace]);
        }
        let child = command.spawn().expect("tagbinder run starts");
        Controller {
            child,
            metrics_url: format!("http://127.0.0.1:{port}"),
            logs,
        }
    }

    /// GET on the metrics address: status code and body (0 while it does not listen).
    pub async fn endpoint(&self, path: &str) -> (u16, String) {
        let host = self.metrics_url.trim_start_matches("http://");
        if tokio::net::TcpStream::connect(host).await.is_err() {
            return (0, String::new());
        }
        http("GET", &format!("{}{path}", self.metrics_url), None).await
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.child.id().expect("the controller is running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "SIGTERM delivered");
    }

    /// Kills the process (SIGKILL: no handler runs, nothing is flushed) and waits for it.
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("kill the controller");
    }

    /// Waits for the process to exit.
    pub async fn exited(&mut self, within: Duration) -> ExitStatus {
        tokio::time::timeout(within, self.child.wait())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the controller did not exit in {within:?}:\n{}",
                    self.logs()
                )
            })
            .expect("wait for the controller")
    }

    /// Everything it logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.logs).unwrap_or_default()
    }
}
