//! The controller at scale (issues 6 and 11): N bindings in the controller's cache, against
//! the end-to-end suite's emulated API server and the cloud emulator (paging at Alibaba
//! Cloud's documented 50 entries), with the built binary.
//!
//! For each rate limit (the provider's default, 20 calls/s for Alibaba Cloud, and the highest
//! the CRD allows) it reports, as JSON on stdout: for the first convergence and the no-change
//! resync that follows (`spec.interval`), the cloud calls by action, the fleet's lower bound
//! (`plan::bound`, pages counted), their ratio (`ratioToLowerBound`), Secret GETs, status
//! writes, Kubernetes API calls, and when rate-limited the bound's calls / rate; the time from
//! the controller's start to every binding Ready; the controller's peak RSS (`VmHWM`).
//! Then, on the idle fleet, a lone spec change's time to Ready (20 changes, one after
//! another: p50 and p99). With `--apiserver real` the same runs against a real kube-apiserver
//! and etcd (`tests/kube/cluster.sh`, the binaries `tests/kube/build.sh` builds or reuses),
//! the controller as the chart's ServiceAccount user (bound to `cluster-admin` here), its
//! calls read from the apiserver's audit log; the report adds the apiserver's and etcd's CPU
//! seconds and peak RSS (from `/proc`), and the first convergence's writes from the audit log:
//! their rate, latency and concurrency (`first_convergence_writes`). Every run reports the
//! controller's CPU seconds.
//! Then it checks the counts, which are deterministic: every binding Ready, exactly one write
//! of the binding (its intent before its tag writes, with the finalizer: issue 14's crash
//! window) and one status write (the outcome after) per binding on first convergence, none on
//! the resync, no cloud write and no
//! Secret GET on the resync, both phases within 1.1x the lower bound. It never checks a time
//! or a size; the README compares the times with their targets.
//!
//! ```text
//! cargo bench --bench controller_scale                       # 10,000 bindings, both rates
//! cargo bench --bench controller_scale -- --smoke            # 50 bindings, for CI
//! cargo bench --bench controller_scale -- --bindings 500 --resources-per-binding 4 --tag-sets 10
//! cargo bench --bench controller_scale -- --rate max         # one rate only: default | max
//! cargo bench --bench controller_scale -- --apiserver real --bindings 1000
//! cargo bench --bench controller_scale -- --bindings 10000 --namespaces 100 --label-change
//! cargo bench --bench controller_scale -- --cloud aws --bindings 10000 --rate default
//! ```
//!
//! `--cloud aws` runs the fleet on AWS's Resource Groups Tagging API instead (issue 22): EC2
//! instances named by bare id, a provider without `spec.rateLimit` (AWS's fixed per-action
//! rates, GetResources 15/s, TagResources and UntagResources 5/s), the bound with AWS's limits
//! (100 ARNs a read, 20 ARNs and 50 tags a write) and its time at those rates.
//!
//! `--namespaces N` spreads the bindings over N namespaces, each labelled `team=team-K`, and
//! each binding takes its `team` tag from its namespace's label (`tagsFrom`, issue 23).
//! `--label-change` then, instead of the resync, changes the label of one namespace and
//! measures the time from the change to all of its bindings Ready with the new value, and the
//! cloud calls of that phase against their lower bound. `--default-change` instead adds a key
//! to the provider's `defaultTags` (every binding renders it) and measures the same for the
//! whole fleet:
//!
//! ```text
//! cargo bench --bench controller_scale -- --bindings 10000 --default-change
//! ```

// NB: the bench uses part of the end-to-end suite's support; the rest is not dead code there.
#[allow(dead_code)]
#[path = "../tests/kube_real/cluster.rs"]
mod cluster;
#[allow(dead_code)]
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::{Value, json};
use tagbinder::api::ResourceTagBinding;
use tagbinder::plan::BindingId;
use tagbinder::plan::bound::{CallBound, FleetBinding, Paging, lower_bound};
use tagbinder::tags::{Limits, Tags, TagsByResource};

use cluster::Cluster;
use support::apiserver::ApiServer;
use support::fixtures::{self, Crds};
use support::processes::{CloudEmulator, Controller, ControllerOptions, http};

/// Status writes of a binding whose first pass writes tags: its intent, then its outcome.
const FIRST_STATUS_WRITES: u64 = 1;
/// Writes of the binding itself per binding on first convergence: its intent annotation, with
/// the finalizer (issue 19).
const FIRST_OBJECT_WRITES: u64 = 1;

/// The user the bench acts as.
const USER: &str = "bench";
/// The controller's user name and `POD_NAME`.
const OPERATOR: &str = "tagbinder-bench";
/// Where the bindings live.
const NAMESPACE: &str = "bench";
const PROVIDER: &str = "bench-apigw";
const GROUP: &str = "tagbinder.io";
const SECRET: &str = "bench-creds";
const BINDINGS: &str = "resourcetagbindings";
/// Bindings created at once.
const CREATE_CONCURRENCY: usize = 64;
/// Lone spec changes timed on the idle fleet.
const LONE_CHANGES: usize = 20;

/// Which API server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ApiServerChoice {
    /// The end-to-end suite's stand-in (`tests/support/apiserver`), in process.
    StandIn,
    /// kube-apiserver and etcd, built from source (`tests/kube`).
    Real,
}

/// What to run.
#[derive(Debug)]
struct Options {
    bindings: usize,
    resources_per_binding: usize,
    /// Distinct tag sets: binding i declares `owner: team-{i % tag_sets}`.
    tag_sets: usize,
    /// Rate limits to run at.
    rates: Vec<RateChoice>,
    /// `spec.interval` of every binding: the resync measured. Longer than the first
    /// convergence, so that the two phases do not overlap.
    interval: Duration,
    smoke: bool,
    apiserver: ApiServerChoice,
    /// Namespaces the bindings are spread over (binding i in namespace i % namespaces).
    namespaces: usize,
    /// Change one namespace's label after the first convergence (instead of the resync).
    label_change: bool,
    /// The cloud: Alibaba Cloud's API Gateway, or AWS's tagging API.
    cloud: tagbinder::api::Cloud,
    /// Add a key to the provider's `defaultTags` after the first convergence (instead of the
    /// resync).
    default_change: bool,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let mut options = Options {
            bindings: 10_000,
            resources_per_binding: 1,
            tag_sets: 20,
            rates: vec![RateChoice::Default, RateChoice::Max],
            interval: Duration::from_secs(60),
            smoke: false,
            apiserver: ApiServerChoice::StandIn,
            namespaces: 1,
            label_change: false,
            cloud: tagbinder::api::Cloud::Alibaba,
            default_change: false,
        };
        let mut interval = None;
        let mut bindings = None;
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
            match arg.as_str() {
                "--smoke" => options.smoke = true,
                "--bindings" => bindings = Some(number(&value("--bindings")?)?),
                "--resources-per-binding" => {
                    options.resources_per_binding = number(&value("--resources-per-binding")?)?
                }
                "--tag-sets" => options.tag_sets = number(&value("--tag-sets")?)?,
                "--namespaces" => options.namespaces = number(&value("--namespaces")?)?,
                "--label-change" => options.label_change = true,
                "--cloud" => {
                    options.cloud = match value("--cloud")?.as_str() {
                        "alibaba" => tagbinder::api::Cloud::Alibaba,
                        "aws" => tagbinder::api::Cloud::Aws,
                        other => return Err(format!("--cloud {other}: alibaba or aws")),
                    }
                }
                "--default-change" => options.default_change = true,
                "--rate" => {
                    options.rates = match value("--rate")?.as_str() {
                        "default" => vec![RateChoice::Default],
                        "max" => vec![RateChoice::Max],
                        "both" => vec![RateChoice::Default, RateChoice::Max],
                        other => return Err(format!("--rate {other}: default, max or both")),
                    }
                }
                "--apiserver" => {
                    options.apiserver = match value("--apiserver")?.as_str() {
                        "stand-in" => ApiServerChoice::StandIn,
                        "real" => ApiServerChoice::Real,
                        other => return Err(format!("--apiserver {other}: stand-in or real")),
                    }
                }
                "--interval" => {
                    let text = value("--interval")?;
                    interval = Some(
                        humantime::parse_duration(&text)
                            .map_err(|e| format!("--interval {text}: {e}"))?,
                    );
                }
                // NB: `cargo bench` passes `--bench`; a filter may follow from the command line.
                "--bench" => {}
                other if !other.starts_with('-') => {}
                other => return Err(format!("unknown flag {other}")),
            }
        }
        if options.smoke {
            options.bindings = 50;
            options.interval = Duration::from_secs(5);
        }
        options.bindings = bindings.unwrap_or(options.bindings);
        if options.label_change && options.default_change {
            return Err("--label-change and --default-change: one change at a time".into());
        }
        // NB: no sweep may fall in the change's window.
        let default_interval = if options.changes() {
            Duration::from_secs(600)
        } else {
            options.interval
        };
        options.interval = interval.unwrap_or(default_interval);
        Ok(options)
    }

    /// Whether a change (of a label or of the defaults) replaces the resync.
    fn changes(&self) -> bool {
        self.label_change || self.default_change
    }

    /// How long every binding may take to become Ready before the bench fails.
    fn patience(&self) -> Duration {
        Duration::from_secs(60) + Duration::from_millis(100) * self.bindings as u32
    }
}

/// The provider's rate limit in a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RateChoice {
    /// No `spec.rateLimit`: the cloud's default (20 calls/s, burst 20, for Alibaba Cloud).
    Default,
    /// The highest the CRD allows: the controller is measured, not the limit.
    Max,
}

impl RateChoice {
    fn name(self) -> &'static str {
        match self {
            RateChoice::Default => "default",
            RateChoice::Max => "max",
        }
    }

    fn limit(self) -> Option<tagbinder::api::RateLimit> {
        match self {
            RateChoice::Default => None,
            RateChoice::Max => Some(tagbinder::api::RateLimit {
                requests_per_second: 10_000.0,
                burst: 10_000,
            }),
        }
    }

    /// Calls per second (on AWS without a limit: its slowest action's, the writes').
    fn per_second(self, cloud: tagbinder::api::Cloud) -> f64 {
        match self.limit() {
            Some(limit) => limit.requests_per_second,
            None => tagbinder::reconcile::provider::default_rate(cloud).per_second,
        }
    }

    /// Seconds that `reads` and `writes` take at this rate: on AWS without a limit, at its
    /// per-action rates (GetResources 15/s, TagResources and UntagResources 5/s).
    fn seconds(self, cloud: tagbinder::api::Cloud, reads: u64, writes: u64) -> f64 {
        use tagbinder::cloud::ratelimit::Rate;
        if cloud == tagbinder::api::Cloud::Aws && self.limit().is_none() {
            return reads as f64 / Rate::AWS_GET_RESOURCES.per_second
                + writes as f64 / Rate::AWS_WRITE.per_second;
        }
        (reads + writes) as f64 / self.per_second(cloud)
    }
}

/// The resource type of the bench's bindings.
fn resource_type(options: &Options) -> &'static str {
    match options.cloud {
        tagbinder::api::Cloud::Aws => "ec2:instance",
        _ => "apiGroup",
    }
}

/// The bench's limits and paging.
fn limits_and_paging(options: &Options) -> (Limits, Paging) {
    match options.cloud {
        tagbinder::api::Cloud::Aws => (Limits::aws(), Paging::of(tagbinder::api::Cloud::Aws)),
        _ => (
            Limits::alibaba(),
            Paging::of(tagbinder::api::Cloud::Alibaba),
        ),
    }
}

/// The AWS account and region of `--cloud aws`.
const AWS_ACCOUNT: &str = "123456789012";
const AWS_REGION: &str = "us-east-1";

fn number(text: &str) -> Result<usize, String> {
    text.parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or(format!("{text:?} is not a positive number"))
}

fn main() -> ExitCode {
    let options = match Options::parse() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("controller_scale: {error}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let result = runtime.block_on(run(&options));
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("controller_scale: FAILED: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The namespace of binding `index`.
fn namespace_of(index: usize, options: &Options) -> String {
    if options.namespaces == 1 {
        NAMESPACE.to_string()
    } else {
        format!("{NAMESPACE}-{:03}", index % options.namespaces)
    }
}

/// The `team` label of namespace `k` (of binding `index`): what its bindings render.
fn team_label(index: usize, options: &Options) -> String {
    format!("team-ns{:03}", index % options.namespaces)
}

/// The value of the label after the change.
const RELABELLED: &str = "relabelled";

/// The resource ids of binding `index` (bare ids: on AWS, of EC2 instances).
fn resource_ids(index: usize, per_binding: usize) -> Vec<String> {
    (0..per_binding)
        .map(|j| format!("bench{index:05}x{j}"))
        .collect()
}

/// The cloud emulator of a run.
enum BenchCloud {
    Alibaba(CloudEmulator),
    /// The emulator (stopped when dropped) and its URL.
    Aws {
        _child: tokio::process::Child,
        url: String,
    },
}

impl BenchCloud {
    async fn start(dir: &std::path::Path, options: &Options, ids: &[String]) -> Self {
        if options.cloud != tagbinder::api::Cloud::Aws {
            let resources: Vec<(&str, &[(&str, &str)])> =
                ids.iter().map(|id| (id.as_str(), &[][..])).collect();
            return BenchCloud::Alibaba(CloudEmulator::start(dir, &resources).await);
        }
        let resources: Vec<Value> = ids
            .iter()
            .map(|id| {
                json!({"cloud": "aws", "region": AWS_REGION, "type": "ec2:instance",
                       "id": format!("arn:aws:ec2:{AWS_REGION}:{AWS_ACCOUNT}:instance/{id}")})
            })
            .collect();
        let inventory = json!({
            "accounts": [{"accessKeyId": support::processes::KEY_ID,
                          "accessKeySecret": support::processes::KEY_SECRET}],
            "resources": resources,
        });
        let path = dir.join("aws-inventory.json");
        std::fs::write(&path, inventory.to_string()).expect("write the inventory");
        let (child, url) = support::processes::start_emulator(
            &["--inventory".as_ref(), path.as_os_str()],
            "the AWS emulator",
        )
        .await;
        BenchCloud::Aws { _child: child, url }
    }

    fn url(&self) -> &str {
        match self {
            BenchCloud::Alibaba(cloud) => &cloud.url,
            BenchCloud::Aws { url, .. } => url,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            BenchCloud::Alibaba(_) => "alibaba",
            BenchCloud::Aws { .. } => "aws",
        }
    }
}

async fn run(options: &Options) -> Result<(), String> {
    let mut reports = Vec::new();
    let mut problems = Vec::new();
    for rate in &options.rates {
        let (report, checked) = run_at(options, *rate).await?;
        reports.push(report);
        if let Err(problem) = checked {
            problems.push(format!("rate {}: {problem}", rate.name()));
        }
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({
            "bench": "controller_scale",
            "mode": if options.smoke { "smoke" } else { "full" },
            "apiserver": match options.apiserver {
                ApiServerChoice::StandIn => "stand-in (tests/support/apiserver)",
                ApiServerChoice::Real => "kube-apiserver and etcd (tests/kube)",
            },
            "bindings": options.bindings,
            "resources_per_binding": options.resources_per_binding,
            "tag_sets": options.tag_sets,
            "namespaces": options.namespaces,
            "label_change": options.label_change,
            "default_change": options.default_change,
            "interval": humantime::format_duration(options.interval).to_string(),
            "cloud": options.cloud.as_str(),
            "paging": match options.cloud {
                tagbinder::api::Cloud::Aws => "GetResources by ResourceARNList: 100 ARNs a call, no paging",
                _ => "50 (tag, resource) entries per ListTagResources page",
            },
            "runs": reports,
        }))
        .unwrap_or_default()
    );
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

/// The API server of a run, and what the bench reads from it.
enum Backend {
    StandIn(ApiServer),
    Real(Cluster),
}

/// One Kubernetes API call of the controller.
struct ApiCall {
    verb: String,
    resource: String,
    subresource: Option<String>,
    name: Option<String>,
}

impl Backend {
    async fn start(
        choice: ApiServerChoice,
        dir: &std::path::Path,
    ) -> Result<(Self, Client), String> {
        match choice {
            ApiServerChoice::StandIn => {
                let server = ApiServer::start().await;
                let client = server.client(USER);
                fixtures::install(&client, Crds::Both).await;
                Ok((Backend::StandIn(server), client))
            }
            ApiServerChoice::Real => {
                let cluster_dir = dir.join("cluster");
                let cluster =
                    tokio::task::spawn_blocking(move || Cluster::start(&cluster_dir, false))
                        .await
                        .map_err(|e| format!("the cluster starts: {e}"))?;
                // The CRDs as the README installs them, and the controller's user bound to
                // cluster-admin (the RBAC authorizer still decides every call).
                let crds = std::process::Command::new(env!("CARGO_BIN_EXE_tagbinder"))
                    .arg("crd")
                    .output()
                    .map_err(|e| format!("tagbinder crd: {e}"))?;
                let crds = String::from_utf8_lossy(&crds.stdout).into_owned();
                cluster.kubectl_ok(&["apply", "-f", "-"], Some(&crds)).await;
                cluster
                    .kubectl_ok(
                        &[
                            "wait",
                            "--for",
                            "condition=established",
                            "--timeout=60s",
                            "crd/tagproviders.tagbinder.io",
                            "crd/resourcetagbindings.tagbinder.io",
                        ],
                        None,
                    )
                    .await;
                cluster
                    .kubectl_ok(
                        &["create", "namespace", support::processes::POD_NAMESPACE],
                        None,
                    )
                    .await;
                let user = cluster.controller_user.clone();
                cluster
                    .kubectl_ok(
                        &[
                            "create",
                            "clusterrolebinding",
                            "tagbinder-bench",
                            "--clusterrole=cluster-admin",
                            &format!("--user={user}"),
                        ],
                        None,
                    )
                    .await;
                let kubeconfig = kube::config::Kubeconfig::read_from(&cluster.admin)
                    .map_err(|e| format!("admin.kubeconfig: {e}"))?;
                let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                    .await
                    .map_err(|e| format!("admin.kubeconfig: {e}"))?;
                let client = Client::try_from(config).map_err(|e| format!("a kube client: {e}"))?;
                Ok((Backend::Real(cluster), client))
            }
        }
    }

    fn start_controller(&self, dir: &std::path::Path) -> Controller {
        let options = ControllerOptions {
            identity: OPERATOR,
            leader_election: false,
            namespace: None,
        };
        match self {
            Backend::StandIn(server) => Controller::start(server, dir, options),
            Backend::Real(cluster) => {
                Controller::start_with_kubeconfig(&cluster.controller, dir, options)
            }
        }
    }

    /// The controller's Kubernetes API calls so far.
    fn calls(&self) -> Vec<ApiCall> {
        match self {
            Backend::StandIn(server) => server
                .calls()
                .into_iter()
                .filter(|c| c.user == OPERATOR)
                .map(|c| ApiCall {
                    verb: c.call.verb,
                    resource: c.call.resource,
                    subresource: c.call.subresource,
                    name: c.call.name,
                })
                .collect(),
            // NB: the audit log holds the controller's requests only; a watch is counted when
            // its answer starts, any other call when it is complete.
            Backend::Real(cluster) => cluster
                .audit_events()
                .into_iter()
                .filter(|e| {
                    (e["verb"] == "watch") == (e["stage"] == "ResponseStarted")
                        && e["stage"] != "RequestReceived"
                })
                .map(|e| {
                    let text = |v: &Value| v.as_str().map(str::to_string);
                    ApiCall {
                        verb: text(&e["verb"]).unwrap_or_default(),
                        resource: text(&e["objectRef"]["resource"])
                            .unwrap_or_else(|| text(&e["requestURI"]).unwrap_or_default()),
                        subresource: text(&e["objectRef"]["subresource"]),
                        name: text(&e["objectRef"]["name"]),
                    }
                })
                .collect(),
        }
    }

    /// The controller's writes to the API server (create, patch, update, delete) so far, from
    /// the audit log: when each was received and answered (`None` on the stand-in).
    fn writes(&self) -> Option<Vec<(f64, f64)>> {
        let Backend::Real(cluster) = self else {
            return None;
        };
        let seconds = |v: &Value| {
            v.as_str()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .map(|t| t.as_microsecond() as f64 / 1e6)
        };
        Some(
            cluster
                .audit_events()
                .iter()
                .filter(|e| e["stage"] == "ResponseComplete")
                .filter(|e| {
                    matches!(
                        e["verb"].as_str(),
                        Some("create" | "patch" | "update" | "delete")
                    )
                })
                .filter_map(|e| {
                    Some((
                        seconds(&e["requestReceivedTimestamp"])?,
                        seconds(&e["stageTimestamp"])?,
                    ))
                })
                .collect(),
        )
    }

    /// CPU seconds and peak RSS of kube-apiserver and etcd (`None` on the stand-in, which
    /// runs in the bench's own process).
    fn servers(&self) -> Option<Servers> {
        match self {
            Backend::StandIn(_) => None,
            Backend::Real(cluster) => {
                let env = std::fs::read_to_string(cluster.dir().join("env")).ok()?;
                let pid = |key: &str| {
                    env.lines()
                        .find_map(|line| line.strip_prefix(key))
                        .and_then(|p| p.parse::<u32>().ok())
                };
                Some(Servers {
                    apiserver: Usage::of(pid("APISERVER_PID=")?),
                    etcd: Usage::of(pid("ETCD_PID=")?),
                })
            }
        }
    }
}

/// A process's CPU time and memory, from `/proc`.
#[derive(Clone, Copy, Debug, Default)]
struct Usage {
    cpu_seconds: f64,
    peak_rss_kib: u64,
}

impl Usage {
    fn of(pid: u32) -> Usage {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // NB: fields after the command name (which may hold spaces), in parentheses: utime
        // and stime are the 14th and 15th of the line, in clock ticks (100 a second).
        let rest = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let memory = memory_of(pid);
        Usage {
            cpu_seconds: (ticks(11) + ticks(12)) / 100.0,
            peak_rss_kib: memory.peak_kib.unwrap_or(0),
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct Servers {
    apiserver: Usage,
    etcd: Usage,
}

impl Servers {
    /// CPU seconds between `earlier` and this; peak RSS so far.
    fn json_since(&self, earlier: &Servers) -> Value {
        let mib = |kib: u64| (kib as f64 / 1024.0 * 10.0).round() / 10.0;
        let cpu = |now: f64, then: f64| ((now - then) * 100.0).round() / 100.0;
        json!({
            "apiserver_cpu_seconds": cpu(self.apiserver.cpu_seconds, earlier.apiserver.cpu_seconds),
            "etcd_cpu_seconds": cpu(self.etcd.cpu_seconds, earlier.etcd.cpu_seconds),
            "apiserver_peak_rss_mib": mib(self.apiserver.peak_rss_kib),
            "etcd_peak_rss_mib": mib(self.etcd.peak_rss_kib),
        })
    }
}

/// The writes of a phase (received, answered; seconds): how many, how fast, how long each
/// took (p50, p99), and how many were in flight (mean: their summed latency over the phase's
/// span; peak).
fn write_stats(writes: &[(f64, f64)]) -> Value {
    let (Some(first), Some(last)) = (
        writes.iter().map(|w| w.0).reduce(f64::min),
        writes.iter().map(|w| w.1).reduce(f64::max),
    ) else {
        return Value::Null;
    };
    let span = (last - first).max(1e-3);
    let mut latencies: Vec<Duration> = writes
        .iter()
        .map(|(received, answered)| Duration::from_secs_f64((answered - received).max(0.0)))
        .collect();
    latencies.sort();
    let busy: f64 = latencies.iter().map(Duration::as_secs_f64).sum();
    let mut edges: Vec<(f64, i64)> = writes
        .iter()
        .flat_map(|(received, answered)| [(*received, 1), (*answered, -1)])
        .collect();
    edges.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let peak = edges
        .iter()
        .scan(0i64, |in_flight, (_, step)| {
            *in_flight += step;
            Some(*in_flight)
        })
        .max()
        .unwrap_or(0);
    let round = |x: f64| (x * 10.0).round() / 10.0;
    json!({
        "writes": writes.len(),
        "span_seconds": round(span),
        "writes_per_second": round(writes.len() as f64 / span),
        "latency_p50_seconds": percentile(&latencies, 0.50),
        "latency_p99_seconds": percentile(&latencies, 0.99),
        "in_flight_mean": round(busy / span),
        "in_flight_peak": peak,
    })
}

/// What the bench's own watch of the bindings has seen: per binding, its generation, the
/// generation its status answers, and whether it is Ready.
#[derive(Clone, Default)]
struct Fleet(Arc<Mutex<HashMap<String, Seen>>>);

/// A binding's generation, the generation its status answers, and whether it is Ready.
type Seen = (i64, i64, bool);

impl Fleet {
    fn watch(client: &Client) -> Self {
        let fleet = Fleet::default();
        let seen = fleet.clone();
        // NB: binding names are unique across the bench's namespaces.
        let api: Api<ResourceTagBinding> = Api::all(client.clone());
        tokio::spawn(async move {
            let mut events = std::pin::pin!(watcher(api, watcher::Config::default()));
            while let Some(event) = events.next().await {
                let objects = match event {
                    Ok(watcher::Event::Apply(object) | watcher::Event::InitApply(object)) => {
                        vec![object]
                    }
                    _ => continue,
                };
                let mut map = seen.0.lock().unwrap_or_else(|e| e.into_inner());
                for binding in objects {
                    let value = serde_json::to_value(&binding).unwrap_or_default();
                    let name = binding.metadata.name.clone().unwrap_or_default();
                    let generation = binding.metadata.generation.unwrap_or(0);
                    let observed = binding
                        .status
                        .as_ref()
                        .and_then(|s| s.observed_generation)
                        .unwrap_or(0);
                    map.insert(name, (generation, observed, is_ready(&value)));
                }
            }
        });
        fleet
    }

    fn ready(&self) -> usize {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.values().filter(|(_, _, ready)| *ready).count()
    }

    /// True once `name` is Ready at `generation`.
    fn ready_at(&self, name: &str, generation: i64) -> bool {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(name).is_some_and(|(g, observed, ready)| {
            *g >= generation && *observed >= generation && *ready
        })
    }
}

async fn run_at(
    options: &Options,
    rate: RateChoice,
) -> Result<(Value, Result<(), String>), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("a scratch directory: {e}"))?;
    let ids: Vec<String> = (0..options.bindings)
        .flat_map(|i| resource_ids(i, options.resources_per_binding))
        .collect();
    let cloud = BenchCloud::start(dir.path(), options, &ids).await;
    let (backend, client) = Backend::start(options.apiserver, dir.path()).await?;
    for k in 0..options.namespaces {
        let team = team_label(k, options);
        let labels: Vec<(&str, &str)> = if options.namespaces > 1 {
            vec![("team", team.as_str())]
        } else {
            Vec::new()
        };
        fixtures::create_namespace(&client, &namespace_of(k, options), &labels).await;
    }
    fixtures::create_credentials(&client, SECRET).await;
    let mut provider = fixtures::provider(PROVIDER, cloud.url(), SECRET);
    provider.spec.rate_limit = rate.limit();
    if options.cloud == tagbinder::api::Cloud::Aws {
        provider.spec.cloud = tagbinder::api::Cloud::Aws;
        provider.spec.region = AWS_REGION.into();
        provider.spec.alibaba = None;
        provider.spec.aws = Some(tagbinder::api::AwsSettings {
            account_id: Some(AWS_ACCOUNT.into()),
            partition: None,
        });
    }
    fixtures::create_provider(&client, &provider).await;
    let created = Instant::now();
    let servers_at_start = backend.servers();
    create_bindings(&client, options).await?;
    let fleet = Fleet::watch(&client);
    eprintln!(
        "controller_scale: {} bindings created in {:.1}s; starting the controller",
        options.bindings,
        created.elapsed().as_secs_f64()
    );

    let servers_before = backend.servers();
    let started = Instant::now();
    let mut controller = backend.start_controller(dir.path());
    let pid = controller.pid().ok_or("the controller is not running")?;
    wait_all_ready(&fleet, &controller, options, started).await?;
    let to_ready = started.elapsed();
    // NB: a binding's events are published after its status write: a short pause lets them
    // land in the phase they belong to.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let first = Phase::measure(&backend, &cloud, &controller).await;
    let servers_ready = backend.servers();
    let controller_cpu_ready = Usage::of(pid).cpu_seconds;
    let first_writes = backend.writes();
    if options.changes() {
        eprintln!(
            "controller_scale: all Ready in {:.1}s; changing a label or the defaults",
            to_ready.as_secs_f64()
        );
    } else {
        eprintln!(
            "controller_scale: all Ready in {:.1}s; waiting for the resync ({:?})",
            to_ready.as_secs_f64(),
            options.interval
        );
    }

    let label_change = if options.changes() {
        let Backend::StandIn(server) = &backend else {
            return Err("--label-change and --default-change run on the stand-in only".into());
        };
        let changed = if options.default_change {
            change_defaults(&client, server, options).await?
        } else {
            relabel(&client, server, options).await?
        };
        let after = Phase::measure(&backend, &cloud, &controller).await;
        Some((changed, after.since(&first)))
    } else {
        None
    };
    let resync = if options.changes() {
        Phase::default()
    } else {
        wait_resync(&controller, options, first.passes).await?;
        // NB: a pass counts as reconciled after its status write; a short pause lets the calls
        // of a pass that may still be under way land in the window they belong to.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = Phase::measure(&backend, &cloud, &controller).await;
        after.since(&first)
    };
    let servers_resynced = backend.servers();
    let controller_cpu_resynced = Usage::of(pid).cpu_seconds;
    let lone = if options.changes() {
        Vec::new()
    } else {
        lone_changes(&client, &fleet, options).await?
    };
    let memory = memory_of(pid);
    controller.terminate();
    controller.exited(Duration::from_secs(30)).await;

    let report = Report {
        options,
        rate,
        to_ready,
        memory,
        first: &first,
        resync: &resync,
        bounds: bounds(options),
        lone,
        controller_cpu_seconds: json!({
            "first_convergence": (controller_cpu_ready * 100.0).round() / 100.0,
            "resync": ((controller_cpu_resynced - controller_cpu_ready) * 100.0).round() / 100.0,
        }),
        first_writes: first_writes.as_deref().map(write_stats),
        servers: match (
            servers_at_start,
            servers_before,
            servers_ready,
            servers_resynced,
        ) {
            (Some(start), Some(before), Some(ready), Some(resynced)) => Some(json!({
                "creating_the_bindings": before.json_since(&start),
                "first_convergence": ready.json_since(&before),
                "resync": resynced.json_since(&ready),
            })),
            _ => None,
        },
        label_change: label_change
            .as_ref()
            .map(|(time, phase)| (*time, phase, change_bound(options))),
    };
    Ok((report.to_json(), report.check()))
}

/// On the idle fleet, one binding's spec changed at a time ([`LONE_CHANGES`] of them, spread
/// over the fleet): the time from the change to the bench's watch seeing it Ready at the new
/// generation, sorted.
async fn lone_changes(
    client: &Client,
    fleet: &Fleet,
    options: &Options,
) -> Result<Vec<Duration>, String> {
    let mut times = Vec::new();
    for k in 0..LONE_CHANGES {
        let index = k * options.bindings / LONE_CHANGES;
        let name = binding_name(index);
        let api: Api<ResourceTagBinding> =
            Api::namespaced(client.clone(), &namespace_of(index, options));
        let patch = json!({"spec": {"tags": {"owner": format!("lone-{k}")}}});
        let changed = Instant::now();
        let binding = api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| format!("change {name}: {e}"))?;
        let generation = binding.metadata.generation.unwrap_or(0);
        loop {
            if fleet.ready_at(&name, generation) {
                break;
            }
            if changed.elapsed() > Duration::from_secs(60) {
                return Err(format!(
                    "{name} not Ready at generation {generation} within 60 s"
                ));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        times.push(changed.elapsed());
    }
    times.sort();
    Ok(times)
}

/// The fleet's lower bound: first convergence (no tags yet), and the no-change resync (every
/// resource carries its binding's tags).
fn bounds(options: &Options) -> (CallBound, CallBound) {
    let declared: Vec<(BindingId, Tags, Vec<String>)> = (0..options.bindings)
        .map(|index| {
            let binding = manifest(index, options, "1m");
            (
                BindingId {
                    created: None,
                    namespace: NAMESPACE.to_string(),
                    name: binding_name(index),
                },
                rendered_tags(index, options, None),
                binding.spec.resource_ids.clone(),
            )
        })
        .collect();
    let fleet: Vec<FleetBinding<'_>> = declared
        .iter()
        .map(|(binding, tags, ids)| FleetBinding {
            binding,
            resource_type: resource_type(options),
            tags,
            resource_ids: ids,
        })
        .collect();
    let converged: TagsByResource = declared
        .iter()
        .flat_map(|(_, tags, ids)| ids.iter().map(move |id| (id.clone(), tags.clone())))
        .collect();
    let (limits, paging) = limits_and_paging(options);
    let first = lower_bound(&fleet, &BTreeMap::new(), &limits, paging);
    let observed = BTreeMap::from([(resource_type(options).to_string(), converged)]);
    (first, lower_bound(&fleet, &observed, &limits, paging))
}

/// The tags binding `index` declares: its own, and with namespaces, its namespace's `team`
/// label (`relabelled` for the changed namespace's bindings once `team` is given).
fn rendered_tags(index: usize, options: &Options, team: Option<&str>) -> Tags {
    let mut tags = manifest(index, options, "1m").spec.tags;
    if options.namespaces > 1 {
        let label = team_label(index, options);
        tags.insert("team".into(), team.unwrap_or(&label).to_string());
    }
    tags
}

/// The bindings that the change concerns: with `--label-change` those of the relabelled
/// namespace 0, with `--default-change` every binding.
fn relabelled_bindings(options: &Options) -> Vec<usize> {
    (0..options.bindings)
        .filter(|i| options.default_change || i % options.namespaces == 0)
        .collect()
}

/// The key and value that `--default-change` adds to the provider's `defaultTags`.
const ADDED_DEFAULT: (&str, &str) = ("managed-by", "tagbinder");

/// What binding `index` declares after the change.
fn changed_tags(index: usize, options: &Options) -> Tags {
    if options.default_change {
        let mut tags = rendered_tags(index, options, None);
        tags.insert(ADDED_DEFAULT.0.into(), ADDED_DEFAULT.1.into());
        tags
    } else {
        rendered_tags(index, options, Some(RELABELLED))
    }
}

/// The lower bound of the change: the bindings it concerns, their resources carrying the old
/// tags, declaring the new ones.
fn change_bound(options: &Options) -> CallBound {
    let affected = relabelled_bindings(options);
    let declared: Vec<(BindingId, Tags, Vec<String>, Tags)> = affected
        .iter()
        .map(|&index| {
            (
                BindingId {
                    created: None,
                    namespace: namespace_of(index, options),
                    name: binding_name(index),
                },
                changed_tags(index, options),
                resource_ids(index, options.resources_per_binding),
                rendered_tags(index, options, None),
            )
        })
        .collect();
    let fleet: Vec<FleetBinding<'_>> = declared
        .iter()
        .map(|(binding, tags, ids, _)| FleetBinding {
            binding,
            resource_type: resource_type(options),
            tags,
            resource_ids: ids,
        })
        .collect();
    let carried: TagsByResource = declared
        .iter()
        .flat_map(|(_, _, ids, old)| ids.iter().map(move |id| (id.clone(), old.clone())))
        .collect();
    let observed = BTreeMap::from([(resource_type(options).to_string(), carried)]);
    let (limits, paging) = limits_and_paging(options);
    lower_bound(&fleet, &observed, &limits, paging)
}

/// Adds [`ADDED_DEFAULT`] to the provider's `defaultTags` and waits until every binding is
/// Ready with it: the time that took.
async fn change_defaults(
    client: &Client,
    server: &ApiServer,
    options: &Options,
) -> Result<Duration, String> {
    use tagbinder::api::TagProvider;
    let (key, value) = ADDED_DEFAULT;
    let patch = json!({"spec": {"defaultTags": {key: value}}});
    let changed = Instant::now();
    Api::<TagProvider>::all(client.clone())
        .patch(PROVIDER, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| format!("patch the provider's defaultTags: {e}"))?;
    let with_default =
        |binding: &Value| is_ready(binding) && binding["status"]["desiredTags"][key] == value;
    loop {
        let done = server.count(GROUP, BINDINGS, with_default);
        if done >= options.bindings {
            let took = changed.elapsed();
            eprintln!(
                "controller_scale: {done} bindings Ready with the new default in {:.2}s",
                took.as_secs_f64()
            );
            return Ok(took);
        }
        if changed.elapsed() > options.patience() {
            return Err(format!(
                "{done} of {} bindings Ready with the new default after {:?}",
                options.bindings,
                options.patience()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Changes the `team` label of the first namespace and waits until every binding of it is
/// Ready with the new value: the time that took.
async fn relabel(
    client: &Client,
    server: &ApiServer,
    options: &Options,
) -> Result<Duration, String> {
    use k8s_openapi::api::core::v1::Namespace;
    use kube::api::{Patch, PatchParams};
    let affected = relabelled_bindings(options).len();
    let namespace = namespace_of(0, options);
    let patch = json!({"metadata": {"labels": {"team": RELABELLED}}});
    let changed = Instant::now();
    Api::<Namespace>::all(client.clone())
        .patch(&namespace, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| format!("relabel {namespace}: {e}"))?;
    let relabelled = |binding: &Value| {
        is_ready(binding) && binding["status"]["desiredTags"]["team"] == RELABELLED
    };
    loop {
        let done = server.count(GROUP, BINDINGS, relabelled);
        if done >= affected {
            let took = changed.elapsed();
            eprintln!(
                "controller_scale: {affected} bindings of {namespace} Ready with the new label in {:.2}s",
                took.as_secs_f64()
            );
            return Ok(took);
        }
        if changed.elapsed() > options.patience() {
            return Err(format!(
                "{done} of {affected} bindings of {namespace} Ready with the new label after {:?}",
                options.patience()
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Creates the bindings as `kubectl apply` would: with the last-applied annotation (a copy of
/// the object, which the controller's cache has no use for) and a label.
async fn create_bindings(client: &Client, options: &Options) -> Result<(), String> {
    let api: Api<ResourceTagBinding> = Api::namespaced(client.clone(), NAMESPACE);
    let interval = humantime::format_duration(options.interval).to_string();
    futures::stream::iter(0..options.bindings)
        .map(|index| {
            let api = api.clone();
            let interval = interval.clone();
            async move {
                let binding = manifest(index, options, &interval);
                let api: Api<ResourceTagBinding> = if options.namespaces > 1 {
                    Api::namespaced(api.into_client(), &namespace_of(index, options))
                } else {
                    api
                };
                api.create(&PostParams::default(), &binding)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("create binding {index}: {e}"))
            }
        })
        .buffer_unordered(CREATE_CONCURRENCY)
        .try_collect::<()>()
        .await
}

fn binding_name(index: usize) -> String {
    format!("b{index:05}")
}

fn manifest(index: usize, options: &Options, interval: &str) -> ResourceTagBinding {
    let ids = resource_ids(index, options.resources_per_binding);
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let team = format!("team-{}", index % options.tag_sets);
    let mut binding = fixtures::binding(
        &binding_name(index),
        PROVIDER,
        &ids,
        &[
            ("env", "bench"),
            ("owner", &team),
            ("cost-center", "cc-1234"),
        ],
    );
    binding.spec.interval = interval.to_string();
    binding.spec.resource_type = resource_type(options).into();
    if options.namespaces > 1 {
        binding.spec.tags_from = vec![tagbinder::api::TagFrom {
            key: "team".into(),
            value_from: tagbinder::api::ValueSource {
                namespace_label: Some("team".into()),
                ..Default::default()
            },
            optional: false,
        }];
    }
    let applied = serde_json::to_string(&binding).unwrap_or_default();
    binding.metadata = ObjectMeta {
        namespace: Some(namespace_of(index, options)),
        labels: Some(BTreeMap::from([(
            "app.kubernetes.io/part-of".to_string(),
            "bench".to_string(),
        )])),
        annotations: Some(BTreeMap::from([(
            "kubectl.kubernetes.io/last-applied-configuration".to_string(),
            applied,
        )])),
        ..binding.metadata
    };
    binding
}

fn is_ready(binding: &Value) -> bool {
    binding["status"]["conditions"]
        .as_array()
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

async fn wait_all_ready(
    fleet: &Fleet,
    controller: &Controller,
    options: &Options,
    started: Instant,
) -> Result<(), String> {
    let mut last_report = Instant::now();
    loop {
        let ready = fleet.ready();
        if ready == options.bindings {
            return Ok(());
        }
        if started.elapsed() > options.patience() {
            let logs = controller.logs();
            let tail: Vec<&str> = logs.lines().rev().take(40).collect();
            return Err(format!(
                "{ready} of {} bindings Ready after {:?}; the controller's last log lines:\n{}",
                options.bindings,
                options.patience(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            ));
        }
        if last_report.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "controller_scale: {ready} of {} Ready after {:.0}s",
                options.bindings,
                started.elapsed().as_secs_f64()
            );
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the controller has passed once more per binding than at the end of the first
/// convergence (`tagbinder_passes_total`): with `spec.interval` longer than the first
/// convergence, that is every binding's first resync.
async fn wait_resync(controller: &Controller, options: &Options, since: u64) -> Result<(), String> {
    let wanted = since + options.bindings as u64;
    let deadline = Instant::now() + options.interval.mul_f64(1.2) + options.patience();
    loop {
        let passes = passes(controller).await;
        if passes >= wanted {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "{} of {} resync passes done",
                passes - since,
                options.bindings
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `tagbinder_passes_total`, every provider.
async fn passes(controller: &Controller) -> u64 {
    let (_, metrics) = controller.endpoint("/metrics").await;
    metrics
        .lines()
        .filter(|line| line.starts_with("tagbinder_passes_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// `tagbinder_reconcile_total`, every result.
async fn reconciles(controller: &Controller) -> u64 {
    let (_, metrics) = controller.endpoint("/metrics").await;
    metrics
        .lines()
        .filter(|line| line.starts_with("tagbinder_reconcile_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Counts at the end of a phase (or, after [`Phase::since`], during it).
#[derive(Debug, Default)]
struct Phase {
    /// Status writes (patch or update of `status`) by binding name.
    status_writes: HashMap<String, u64>,
    /// Writes (patch or update) of the binding itself, not its status, by binding name.
    object_writes: HashMap<String, u64>,
    /// The controller's Kubernetes API calls, by `verb resource[/subresource]`.
    api_calls: BTreeMap<String, u64>,
    /// Cloud API calls, by action.
    cloud_calls: BTreeMap<String, u64>,
    reconciles: u64,
    passes: u64,
}

impl Phase {
    async fn measure(backend: &Backend, cloud: &BenchCloud, controller: &Controller) -> Self {
        let mut phase = Phase {
            reconciles: reconciles(controller).await,
            passes: passes(controller).await,
            ..Phase::default()
        };
        for call in &backend.calls() {
            if is_status_write(call) {
                let name = call.name.clone().unwrap_or_default();
                *phase.status_writes.entry(name).or_default() += 1;
            }
            if is_object_write(call) {
                let name = call.name.clone().unwrap_or_default();
                *phase.object_writes.entry(name).or_default() += 1;
            }
            *phase.api_calls.entry(describe(call)).or_default() += 1;
        }
        let (_, stats) = http("GET", &format!("{}/_emulator/stats", cloud.url()), None).await;
        let stats: Value = serde_json::from_str(&stats).unwrap_or_default();
        if let Some(actions) = stats["requests"][cloud.name()].as_object() {
            for (action, outcomes) in actions {
                let count = outcomes
                    .as_object()
                    .map(|o| o.values().filter_map(Value::as_u64).sum())
                    .unwrap_or(0);
                phase.cloud_calls.insert(action.clone(), count);
            }
        }
        phase
    }

    /// What happened between `earlier` and this.
    fn since(&self, earlier: &Phase) -> Phase {
        let minus = |now: &BTreeMap<String, u64>, then: &BTreeMap<String, u64>| {
            now.iter()
                .map(|(k, v)| (k.clone(), v - then.get(k).copied().unwrap_or(0)))
                .filter(|(_, v)| *v > 0)
                .collect()
        };
        let minus_by_name = |now: &HashMap<String, u64>, then: &HashMap<String, u64>| {
            now.iter()
                .map(|(k, v)| (k.clone(), v - then.get(k).copied().unwrap_or(0)))
                .filter(|(_, v)| *v > 0)
                .collect()
        };
        Phase {
            status_writes: minus_by_name(&self.status_writes, &earlier.status_writes),
            object_writes: minus_by_name(&self.object_writes, &earlier.object_writes),
            api_calls: minus(&self.api_calls, &earlier.api_calls),
            cloud_calls: minus(&self.cloud_calls, &earlier.cloud_calls),
            reconciles: self.reconciles - earlier.reconciles,
            passes: self.passes - earlier.passes,
        }
    }

    fn secret_gets(&self) -> u64 {
        self.api_calls.get("get secrets").copied().unwrap_or(0)
    }

    fn cloud_total(&self) -> u64 {
        self.cloud_calls.values().sum()
    }

    fn cloud_writes(&self) -> u64 {
        self.cloud_calls
            .iter()
            // NB: reads are ListTagResources (Alibaba Cloud) and GetResources (AWS).
            .filter(|(action, _)| !action.starts_with("List") && !action.starts_with("Get"))
            .map(|(_, count)| count)
            .sum()
    }

    fn status_writes_total(&self) -> u64 {
        self.status_writes.values().sum()
    }

    fn object_writes_total(&self) -> u64 {
        self.object_writes.values().sum()
    }

    fn to_json(
        &self,
        bindings: usize,
        bound: &CallBound,
        rate: RateChoice,
        cloud: tagbinder::api::Cloud,
    ) -> Value {
        let writes_made = self.cloud_writes();
        let reads_made = self.cloud_total() - writes_made;
        let per_binding = |count: u64| count as f64 / bindings as f64;
        let writes: Vec<u64> = (0..bindings)
            .map(|i| {
                self.status_writes
                    .get(&binding_name(i))
                    .copied()
                    .unwrap_or(0)
            })
            .collect();
        let ratio = self.cloud_total() as f64 / bound.total().max(1) as f64;
        let rate_limited = rate == RateChoice::Default;
        json!({
            "reconciles": self.reconciles,
            "passes": self.passes,
            "lowerBound": {
                "list": bound.list,
                "tag": bound.tag,
                "untag": bound.untag,
                "total": bound.total(),
            },
            "ratioToLowerBound": (ratio * 1000.0).round() / 1000.0,
            "secretGets": self.secret_gets(),
            "cloudWrites": self.cloud_writes(),
            "rateLimit": {
                "callsPerSecond": rate.per_second(cloud),
                "callsOverRateSeconds": rate_limited.then(|| {
                    (rate.seconds(cloud, reads_made, writes_made) * 10.0).round() / 10.0
                }),
                "boundOverRateSeconds": rate_limited.then(|| {
                    let (reads, writes) = (bound.list as u64, (bound.tag + bound.untag) as u64);
                    (rate.seconds(cloud, reads, writes) * 10.0).round() / 10.0
                }),
            },
            "status_writes": {
                "total": self.status_writes_total(),
                "per_binding": per_binding(self.status_writes_total()),
                "min_per_binding": writes.iter().min(),
                "max_per_binding": writes.iter().max(),
            },
            "object_writes": {
                "total": self.object_writes_total(),
                "per_binding": per_binding(self.object_writes_total()),
            },
            "kubernetes_api_calls": {
                "total": self.api_calls.values().sum::<u64>(),
                "by_call": self.api_calls,
            },
            "cloud_calls": {
                "total": self.cloud_calls.values().sum::<u64>(),
                "per_binding": per_binding(self.cloud_calls.values().sum()),
                "by_action": self.cloud_calls,
            },
        })
    }
}

/// The `q` quantile of sorted durations (nearest rank), in seconds.
fn percentile(sorted: &[Duration], q: f64) -> Option<f64> {
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted
        .get(rank - 1)
        .map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0)
}

fn is_status_write(call: &ApiCall) -> bool {
    call.resource == BINDINGS
        && call.subresource.as_deref() == Some("status")
        && matches!(call.verb.as_str(), "patch" | "update")
}

fn is_object_write(call: &ApiCall) -> bool {
    call.resource == BINDINGS
        && call.subresource.is_none()
        && call.name.is_some()
        && matches!(call.verb.as_str(), "patch" | "update")
}

fn describe(call: &ApiCall) -> String {
    match &call.subresource {
        Some(sub) => format!("{} {}/{sub}", call.verb, call.resource),
        None => format!("{} {}", call.verb, call.resource),
    }
}

/// The controller's memory, from `/proc/PID/status`: peak and current resident set, in KiB.
#[derive(Debug, Default)]
struct Memory {
    peak_kib: Option<u64>,
    current_kib: Option<u64>,
}

fn memory_of(pid: u32) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Memory {
        peak_kib: field("VmHWM:"),
        current_kib: field("VmRSS:"),
    }
}

struct Report<'a> {
    options: &'a Options,
    rate: RateChoice,
    /// Lower bounds of the first convergence and of the resync.
    bounds: (CallBound, CallBound),
    to_ready: Duration,
    memory: Memory,
    first: &'a Phase,
    resync: &'a Phase,
    /// A lone spec change's time to Ready on the idle fleet, sorted.
    lone: Vec<Duration>,
    /// The controller's CPU seconds by phase.
    controller_cpu_seconds: Value,
    /// The controller's writes to the API server on first convergence ([`write_stats`]; a
    /// real apiserver only).
    first_writes: Option<Value>,
    /// kube-apiserver's and etcd's CPU and memory by phase (a real apiserver only).
    servers: Option<Value>,
    /// With `--label-change`: the time from the change to all its bindings Ready, the phase's
    /// counts, and its lower bound.
    label_change: Option<(Duration, &'a Phase, CallBound)>,
}

impl Report<'_> {
    fn to_json(&self) -> Value {
        let mib = |kib: Option<u64>| kib.map(|k| (k as f64 / 1024.0 * 10.0).round() / 10.0);
        let cloud = self.options.cloud;
        let at_rate = |bound: &CallBound| {
            self.rate
                .seconds(cloud, bound.list as u64, (bound.tag + bound.untag) as u64)
        };
        let target = at_rate(&self.bounds.0) * 1.2 + 5.0;
        let label_change = self.label_change.as_ref().map(|(took, phase, bound)| {
            let calls_at_rate = at_rate(bound);
            json!({
                "bindings": relabelled_bindings(self.options).len(),
                "seconds_to_all_ready": (took.as_secs_f64() * 100.0).round() / 100.0,
                "target_seconds_to_all_ready": ((2.0 + calls_at_rate) * 100.0).round() / 100.0,
                "calls": phase.to_json(self.options.bindings, bound, self.rate, cloud),
            })
        });
        json!({
            "rate": self.rate.name(),
            "seconds_to_all_ready": (self.to_ready.as_secs_f64() * 100.0).round() / 100.0,
            "target_seconds_to_all_ready": (self.rate == RateChoice::Default)
                .then(|| (target * 10.0).round() / 10.0),
            "controller_peak_rss_mib": mib(self.memory.peak_kib),
            "controller_rss_at_end_mib": mib(self.memory.current_kib),
            "lone_change_seconds_to_ready": {
                "changes": self.lone.len(),
                "p50": percentile(&self.lone, 0.50),
                "p99": percentile(&self.lone, 0.99),
                "max": self.lone.last().map(|d| (d.as_secs_f64() * 1000.0).round() / 1000.0),
            },
            "servers": self.servers,
            "controller_cpu_seconds": self.controller_cpu_seconds,
            "first_convergence_writes": self.first_writes,
            "first_convergence": self.first.to_json(self.options.bindings, &self.bounds.0, self.rate, cloud),
            "resync": (!self.options.changes())
                .then(|| self.resync.to_json(self.options.bindings, &self.bounds.1, self.rate, cloud)),
            (if self.options.default_change { "default_change" } else { "label_change" }): label_change,
        })
    }

    /// The deterministic counts: one write of the binding (its intent, with the finalizer)
    /// and one status write (its outcome) per binding on first convergence, none on the
    /// resync. Never a time or a size.
    fn check(&self) -> Result<(), String> {
        let bindings = self.options.bindings;
        let mut problems = Vec::new();
        for (what, writes, expected) in [
            (
                "status writes",
                &self.first.status_writes,
                FIRST_STATUS_WRITES,
            ),
            (
                "writes of the binding",
                &self.first.object_writes,
                FIRST_OBJECT_WRITES,
            ),
        ] {
            let off: Vec<String> = (0..bindings)
                .map(binding_name)
                .filter_map(|name| {
                    let count = writes.get(&name).copied().unwrap_or(0);
                    (count != expected).then(|| format!("{name}: {count}"))
                })
                .collect();
            if !off.is_empty() {
                problems.push(format!(
                    "{} binding(s) without exactly {expected} {what} on first convergence (e.g. {})",
                    off.len(),
                    off.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
                ));
            }
        }
        if let Some((_, phase, bound)) = &self.label_change {
            let affected = relabelled_bindings(self.options).len() as u64;
            if phase.cloud_total() as f64 > bound.total() as f64 * 1.1 {
                problems.push(format!(
                    "the change: {} cloud calls, more than 1.1 x the lower bound {}",
                    phase.cloud_total(),
                    bound.total()
                ));
            }
            // NB: its bindings only: an intent and an outcome each.
            if phase.status_writes_total() > affected * FIRST_STATUS_WRITES
                || phase.object_writes_total() > affected * FIRST_OBJECT_WRITES
            {
                problems.push(format!(
                    "the change: {} status writes and {} writes of the bindings for {affected} bindings",
                    phase.status_writes_total(),
                    phase.object_writes_total()
                ));
            }
        }
        if self.resync.status_writes_total() + self.resync.object_writes_total() > 0 {
            problems.push(format!(
                "{} status write(s) and {} write(s) of the bindings on the no-change resync",
                self.resync.status_writes_total(),
                self.resync.object_writes_total()
            ));
        }
        if self.resync.cloud_writes() > 0 {
            problems.push(format!(
                "{} cloud write(s) on the no-change resync",
                self.resync.cloud_writes()
            ));
        }
        if self.resync.secret_gets() > 0 {
            problems.push(format!(
                "{} Secret GET(s) on the resync",
                self.resync.secret_gets()
            ));
        }
        for (phase, calls, bound) in [
            (
                "first convergence",
                self.first.cloud_total(),
                &self.bounds.0,
            ),
            ("resync", self.resync.cloud_total(), &self.bounds.1),
        ] {
            if calls as f64 > bound.total() as f64 * 1.1 {
                problems.push(format!(
                    "{phase}: {calls} cloud calls, more than 1.1 x the lower bound {}",
                    bound.total()
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems.join("; "))
        }
    }
}
