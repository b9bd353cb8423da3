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

/// Starts `tagbinder emulator` with `args` on a loopback port it picks (port 0, so that no
/// other process can take the port between a look-up and the bind), and answers its
/// `http://127.0.0.1:PORT` as it prints it. Its further output is read and dropped.
pub async fn start_emulator(args: &[&std::ffi::OsStr], what: &str) -> (Child, String) {
    start_emulator_on("127.0.0.1:0", args, what).await
}

/// [`start_emulator`] listening on `listen`.
pub async fn start_emulator_on(
    listen: &str,
    args: &[&std::ffi::OsStr],
    what: &str,
) -> (Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tagbinder"))
        .args(["emulator", "--listen", listen])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{what} starts: {e}"));
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().expect("piped stdout"));
    let mut line = String::new();
    stdout
        .read_line(&mut line)
        .await
        .unwrap_or_else(|e| panic!("{what} prints where it serves: {e}"));
    let url = line
        .trim()
        .strip_prefix("tagbinder emulator: serving ")
        .unwrap_or_else(|| panic!("{what} says where it serves: {line:?}"))
        .to_string();
    // NB: a closed pipe would fail the emulator's next line of output.
    tokio::spawn(async move { tokio::io::copy(&mut stdout, &mut tokio::io::sink()).await });
    (child, url)
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
        Self::start_with(dir, resources, &[]).await
    }

    /// The same, with more arguments (fault flags).
    pub async fn start_with(
        dir: &Path,
        resources: &[(&str, &[(&str, &str)])],
        more: &[&str],
    ) -> Self {
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
        let mut args = vec!["--inventory".as_ref(), path.as_os_str()];
        args.extend(more.iter().map(std::ffi::OsStr::new));
        let (child, url) = start_emulator(&args, "the cloud emulator").await;
        CloudEmulator { _child: child, url }
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

    /// Calls of `action` the cloud answered so far (any outcome).
    pub async fn calls(&self, action: &str) -> u64 {
        let (code, body) = http("GET", &format!("{}/_emulator/stats", self.url), None).await;
        assert_eq!(code, 200, "{body}");
        let stats: Value = serde_json::from_str(&body).expect("JSON stats");
        stats["requests"]["alibaba"][action]
            .as_object()
            .map(|outcomes| outcomes.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0)
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
    /// Where `/metrics`, `/healthz` and `/readyz` answer, once the controller said so.
    metrics_url: std::sync::OnceLock<String>,
    logs: PathBuf,
}

/// The cluster's name every controller of the tests is given (`run --cluster-name`).
pub const CLUSTER_NAME: &str = "e2e-cluster";

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
        let mut command = Command::new(env!("CARGO_BIN_EXE_tagbinder"));
        // NB: port 0: the controller binds a port it picks and logs it.
        command
            .args(["run", "--metrics-addr", "127.0.0.1:0"])
            .args(["--cluster-name", CLUSTER_NAME])
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
            metrics_url: std::sync::OnceLock::new(),
            logs,
        }
    }

    /// Where `/metrics`, `/healthz` and `/readyz` answer: the address the controller logged
    /// when it bound it (`None` until then).
    pub fn metrics_url(&self) -> Option<String> {
        if let Some(url) = self.metrics_url.get() {
            return Some(url.clone());
        }
        let logs = self.logs();
        let line = logs
            .lines()
            .find(|line| line.contains("serving metrics and health"))?;
        let addr = strip_ansi(line)
            .split_whitespace()
            .find_map(|field| field.strip_prefix("addr=").map(str::to_string))?;
        Some(
            self.metrics_url
                .get_or_init(|| format!("http://{addr}"))
                .clone(),
        )
    }

    /// GET on the metrics address: status code and body (0 while it does not listen).
    pub async fn endpoint(&self, path: &str) -> (u16, String) {
        let Some(url) = self.metrics_url() else {
            return (0, String::new());
        };
        let host = url.trim_start_matches("http://");
        if tokio::net::TcpStream::connect(host).await.is_err() {
            return (0, String::new());
        }
        http("GET", &format!("{url}{path}"), None).await
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

/// One resource of an inventory: cloud, region, type, id, initial tags.
pub type Resource<'a> = (&'a str, &'a str, &'a str, &'a str, &'a [(&'a str, &'a str)]);

/// `tagbinder emulator` with any cloud's resources, its state kept in a file so that it can be
/// restarted where it left off (with faults, say).
pub struct PersistentCloud {
    child: Child,
    port: u16,
    inventory: PathBuf,
    state: PathBuf,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl PersistentCloud {
    /// Starts the emulator with `resources`, keeping its state in `dir`.
    pub async fn start(dir: &Path, resources: &[Resource<'_>]) -> Self {
        let resources: Vec<Value> = resources
            .iter()
            .map(|(cloud, region, kind, id, tags)| {
                let tags: BTreeMap<&str, &str> = tags.iter().copied().collect();
                json!({"cloud": cloud, "region": region, "type": kind, "id": id, "tags": tags})
            })
            .collect();
        let inventory = json!({
            "accounts": [{"accessKeyId": KEY_ID, "accessKeySecret": KEY_SECRET}],
            "resources": resources,
        });
        let inventory_path = dir.join("persistent-inventory.json");
        std::fs::write(&inventory_path, inventory.to_string()).expect("write the inventory");
        let state = dir.join("persistent-state.json");
        let (child, url) = start_emulator(
            &[
                "--inventory".as_ref(),
                inventory_path.as_os_str(),
                "--state".as_ref(),
                state.as_os_str(),
            ],
            "the cloud emulator",
        )
        .await;
        let port = url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("a port in the emulator's address");
        PersistentCloud {
            child,
            port,
            inventory: inventory_path,
            state,
            url,
        }
    }

    /// Stops the emulator (SIGKILL: its state is saved after every change) and starts it
    /// again from its state, with `faults` (emulator flags), on the same port: the providers
    /// name it. (The port was the killed emulator's a moment ago; nothing else here binds
    /// fixed ports.)
    pub async fn restart_with(&mut self, faults: &[&str]) {
        self.child.kill().await.expect("stop the emulator");
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "--inventory".as_ref(),
            self.inventory.as_os_str(),
            "--state".as_ref(),
            self.state.as_os_str(),
        ];
        args.extend(faults.iter().map(|f| std::ffi::OsStr::new(*f)));
        let listen = format!("127.0.0.1:{}", self.port);
        let (child, _) = start_emulator_on(&listen, &args, "the restarted cloud emulator").await;
        self.child = child;
    }

    /// The tags of one resource now.
    pub async fn tags(&self, cloud: &str, kind: &str, id: &str) -> BTreeMap<String, String> {
        let (code, body) = http("GET", &format!("{}/_emulator/state", self.url), None).await;
        assert_eq!(code, 200, "{body}");
        let state: Value = serde_json::from_str(&body).expect("JSON state");
        serde_json::from_value(state["resources"][cloud][kind][id]["tags"].clone())
            .unwrap_or_else(|e| panic!("tags of {cloud} {kind} {id} in {state}: {e}"))
    }

    /// Requests answered with a fault (anything but `ok`) since the emulator (re)started.
    pub async fn faulted(&self) -> u64 {
        let (code, body) = http("GET", &format!("{}/_emulator/stats", self.url), None).await;
        assert_eq!(code, 200, "{body}");
        let stats: Value = serde_json::from_str(&body).expect("JSON stats");
        stats["outcomes"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(outcome, _)| *outcome != "ok")
            .filter_map(|(_, count)| count.as_u64())
            .sum()
    }

    /// Calls of `action` on `cloud` answered since the emulator (re)started, any outcome.
    pub async fn calls(&self, cloud: &str, action: &str) -> u64 {
        let (code, body) = http("GET", &format!("{}/_emulator/stats", self.url), None).await;
        assert_eq!(code, 200, "{body}");
        let stats: Value = serde_json::from_str(&body).expect("JSON stats");
        stats["requests"][cloud][action]
            .as_object()
            .map(|outcomes| outcomes.values().filter_map(Value::as_u64).sum())
            .unwrap_or(0)
    }

    /// Changes tags out of band, as someone in the cloud console would.
    pub async fn edit(
        &self,
        cloud: &str,
        kind: &str,
        id: &str,
        set: &[(&str, &str)],
        remove: &[&str],
    ) {
        let set: BTreeMap<&str, &str> = set.iter().copied().collect();
        let edit = json!({"cloud": cloud, "type": kind, "id": id, "set": set, "remove": remove});
        let (code, body) = http("POST", &format!("{}/_emulator/tags", self.url), Some(&edit)).await;
        assert_eq!(code, 200, "{body}");
    }
}

/// `text` without terminal colour sequences (`ESC [ ... m`), as the text log format may hold.
fn strip_ansi(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}
