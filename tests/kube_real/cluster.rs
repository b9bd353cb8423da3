//! A real control plane for the suite: the servers that `tests/kube/build.sh` builds (or
//! reuses from its cache), started by `tests/kube/cluster.sh`, and `kubectl` against them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::Value;
use tokio::io::AsyncWriteExt;

const BINARIES: [&str; 4] = [
    "kube-apiserver",
    "kubectl",
    "kube-controller-manager",
    "etcd",
];

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/kube")
        .join(name)
}

/// The directory of the four binaries: `TAGBINDER_KUBE_BIN`, or what `build.sh` builds or
/// reuses. Never skips: without them the suite fails and says how to get them.
pub fn binaries() -> PathBuf {
    let bin = match std::env::var_os("TAGBINDER_KUBE_BIN") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let output = std::process::Command::new("bash")
                .arg(script("build.sh"))
                .stderr(Stdio::inherit())
                .output()
                .expect("bash runs tests/kube/build.sh");
            assert!(
                output.status.success(),
                "tests/kube/build.sh could not build the Kubernetes servers (its error is above). \
                 The real-server suite needs Go and the Go module proxy, or TAGBINDER_KUBE_BIN \
                 set to a directory holding {}",
                BINARIES.join(", ")
            );
            let stdout = String::from_utf8_lossy(&output.stdout);
            PathBuf::from(
                stdout
                    .lines()
                    .last()
                    .expect("build.sh prints the bin directory"),
            )
        }
    };
    for name in BINARIES {
        assert!(
            bin.join(name).is_file(),
            "{} is missing (TAGBINDER_KUBE_BIN or tests/kube/build.sh)",
            bin.join(name).display()
        );
    }
    bin
}

/// What a kubectl run printed.
#[derive(Debug)]
pub struct Run {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

/// etcd and kube-apiserver (and kube-controller-manager when asked), stopped when dropped:
/// on a panic too, and, through `cluster.sh --owner`, when the test process dies without
/// unwinding.
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    /// `admin.kubeconfig`: user `admin`, group `system:masters`.
    pub admin: PathBuf,
    /// `controller.kubeconfig`: the chart's ServiceAccount's user, nothing granted but RBAC.
    pub controller: PathBuf,
    /// The controller's user name, as RBAC and the audit log see it.
    pub controller_user: String,
    /// The apiserver's audit log: the controller's requests and their answers.
    pub audit_log: PathBuf,
}

impl Cluster {
    /// Starts a cluster whose files live in `dir`.
    pub fn start(dir: &Path, with_controller_manager: bool) -> Self {
        let bin = binaries();
        let mut command = std::process::Command::new("bash");
        command
            .arg(script("cluster.sh"))
            .arg("start")
            .arg(dir)
            .args(["--owner", &std::process::id().to_string()])
            .env("TAGBINDER_KUBE_BIN", &bin);
        if with_controller_manager {
            command.arg("--with-controller-manager");
        }
        // NB: a guard before the start, so that whatever started is stopped if it fails.
        let mut cluster = Cluster {
            dir: dir.to_path_buf(),
            bin,
            admin: PathBuf::new(),
            controller: PathBuf::new(),
            controller_user: String::new(),
            audit_log: PathBuf::new(),
        };
        let status = command.status().expect("bash runs tests/kube/cluster.sh");
        assert!(
            status.success(),
            "tests/kube/cluster.sh start failed (above)"
        );
        let env = std::fs::read_to_string(dir.join("env")).expect("cluster.sh writes DIR/env");
        let env: BTreeMap<&str, &str> = env.lines().filter_map(|l| l.split_once('=')).collect();
        cluster.admin = PathBuf::from(env["ADMIN_KUBECONFIG"]);
        cluster.controller = PathBuf::from(env["CONTROLLER_KUBECONFIG"]);
        cluster.controller_user = env["CONTROLLER_USER"].to_string();
        cluster.audit_log = PathBuf::from(env["AUDIT_LOG"]);
        cluster
    }

    /// The directory of its files (`env`, the logs, the audit log).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `kubectl ARGS` as the admin, with `stdin` as its input.
    pub async fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Run {
        self.kubectl_with(&self.admin, args, stdin).await
    }

    /// `kubectl ARGS` as the user of `kubeconfig`.
    pub async fn kubectl_with(&self, kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> Run {
        let mut child = tokio::process::Command::new(self.bin.join("kubectl"))
            .args(args)
            .env("KUBECONFIG", kubeconfig)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("kubectl runs");
        let mut input = child.stdin.take().expect("kubectl's stdin");
        if let Some(text) = stdin {
            input
                .write_all(text.as_bytes())
                .await
                .expect("write kubectl's input");
        }
        drop(input);
        let output = child.wait_with_output().await.expect("kubectl ends");
        Run {
            ok: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// `kubectl ARGS` as the admin, which must succeed; its standard output.
    pub async fn kubectl_ok(&self, args: &[&str], stdin: Option<&str>) -> String {
        let run = self.kubectl(args, stdin).await;
        assert!(run.ok, "kubectl {}: {}", args.join(" "), run.stderr);
        run.stdout
    }

    /// `kubectl apply -f -` of `objects` as the admin, which must succeed.
    pub async fn apply(&self, objects: &[Value]) -> String {
        let text: Vec<String> = objects.iter().map(Value::to_string).collect();
        self.kubectl_ok(&["apply", "-f", "-"], Some(&text.join("\n---\n")))
            .await
    }

    /// Stops kube-apiserver and starts it again on the same port over the same etcd
    /// (`cluster.sh restart-apiserver`): every watch breaks.
    pub async fn restart_apiserver(&self) {
        self.control("restart-apiserver", &[]).await;
    }

    /// Stops kube-apiserver (`cluster.sh stop-apiserver`); etcd runs on.
    pub async fn stop_apiserver(&self) {
        self.control("stop-apiserver", &[]).await;
    }

    /// Starts the stopped kube-apiserver again on its port, with `flags` besides its own
    /// (`cluster.sh start-apiserver`).
    pub async fn start_apiserver_with(&self, flags: &[&str]) {
        self.control("start-apiserver", flags).await;
    }

    async fn control(&self, command: &str, flags: &[&str]) {
        let status = tokio::process::Command::new("bash")
            .arg(script("cluster.sh"))
            .arg(command)
            .arg(&self.dir)
            .args(flags)
            .status()
            .await
            .expect("bash runs tests/kube/cluster.sh");
        assert!(status.success(), "cluster.sh {command} failed (above)");
    }

    /// etcd's client URL (`http://127.0.0.1:PORT`).
    fn etcd_url(&self) -> String {
        let env = std::fs::read_to_string(self.dir.join("env")).expect("cluster.sh writes DIR/env");
        env.lines()
            .find_map(|line| line.strip_prefix("ETCD_URL="))
            .expect("ETCD_URL in DIR/env")
            .to_string()
    }

    /// One call of etcd's JSON gateway (what `etcdctl` does over gRPC): its answer.
    async fn etcd(&self, call: &str, body: Value) -> Value {
        use crate::support::processes::http;
        let (code, answer) = http(
            "POST",
            &format!("{}/v3/{call}", self.etcd_url()),
            Some(&body),
        )
        .await;
        assert_eq!(code, 200, "etcd {call}: {answer}");
        serde_json::from_str(&answer).expect("JSON from etcd")
    }

    /// Writes a key of no Kubernetes object into etcd `times` times (each a new revision),
    /// then compacts etcd at its current revision, as `etcdctl compact` would: every
    /// resourceVersion before it is gone. Answers that revision.
    pub async fn bump_and_compact_etcd(&self, times: usize) -> u64 {
        use base64::Engine;
        let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        let mut revision = 0;
        for i in 0..times {
            let answer = self
                .etcd(
                    "kv/put",
                    serde_json::json!({"key": encode("/tagbinder-test/filler"), "value": encode(&i.to_string())}),
                )
                .await;
            revision = answer["header"]["revision"]
                .as_str()
                .and_then(|r| r.parse().ok())
                .unwrap_or_else(|| panic!("a revision in etcd's answer: {answer}"));
        }
        self.etcd(
            "kv/compaction",
            serde_json::json!({"revision": revision.to_string(), "physical": true}),
        )
        .await;
        revision
    }

    /// The audit log's events so far (each a request of the controller's user).
    pub fn audit_events(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.audit_log).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect()
    }

    /// The end of a server's log (`kube-apiserver`, `etcd`, ...), for failure messages.
    pub fn log_tail(&self, server: &str, lines: usize) -> String {
        let text =
            std::fs::read_to_string(self.dir.join(format!("{server}.log"))).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let stopped = std::process::Command::new("bash")
            .arg(script("cluster.sh"))
            .arg("stop")
            .arg(&self.dir)
            .status();
        if !matches!(stopped, Ok(status) if status.success()) {
            eprintln!("cluster.sh stop {} failed: {stopped:?}", self.dir.display());
        }
    }
}
