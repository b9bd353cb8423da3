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
//! Then it checks the counts, which are deterministic: every binding Ready, exactly two
//! status writes per binding on first convergence (the intent before its tag writes, the
//! outcome after: issue 14's crash window), none on the resync, no cloud write and no
//! Secret GET on the resync, both phases within 1.1x the lower bound. It never checks a time
//! or a size; the README compares the times with their targets.
//!
//! ```text
//! cargo bench --bench controller_scale                       # 10,000 bindings, both rates
//! cargo bench --bench controller_scale -- --smoke            # 50 bindings, for CI
//! cargo bench --bench controller_scale -- --bindings 500 --resources-per-binding 4 --tag-sets 10
//! cargo bench --bench controller_scale -- --rate max         # one rate only: default | max
//! cargo bench --bench controller_scale -- --bindings 10000 --namespaces 100 --label-change
//! ```
//!
//! `--namespaces N` spreads the bindings over N namespaces, each labelled `team=team-K`, and
//! each binding takes its `team` tag from its namespace's label (`tagsFrom`, issue 23).
//! `--label-change` then, instead of the resync, changes the label of one namespace and
//! measures the time from the change to all of its bindings Ready with the new value, and the
//! cloud calls of that phase against their lower bound.

// NB: the bench uses part of the end-to-end suite's support; the rest is not dead code there.
#[allow(dead_code)]
#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::{BTreeMap, HashMap};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::{Api, Client};
use serde_json::{Value, json};
use tagbinder::api::ResourceTagBinding;
use tagbinder::plan::BindingId;
use tagbinder::plan::bound::{CallBound, FleetBinding, Paging, lower_bound};
use tagbinder::tags::{Limits, Tags, TagsByResource};

use support::apiserver::{ApiServer, RecordedCall};
use support::fixtures::{self, Crds};
use support::processes::{CloudEmulator, Controller, ControllerOptions, http};

/// Status writes of a binding whose first pass writes tags: its intent, then its outcome.
const FIRST_STATUS_WRITES: u64 = 2;

/// The user the bench acts as.
const USER: &str = "bench";
/// The controller's user name and `POD_NAME`.
const OPERATOR: &str = "tagbinder-bench";
/// Where the bindings live.
const NAMESPACE: &str = "bench";
const PROVIDER: &str = "bench-apigw";
const SECRET: &str = "bench-creds";
const GROUP: &str = "tagbinder.io";
const BINDINGS: &str = "resourcetagbindings";
/// Bindings created at once.
const CREATE_CONCURRENCY: usize = 64;

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
    /// Namespaces the bindings are spread over (binding i in namespace i % namespaces).
    namespaces: usize,
    /// Change one namespace's label after the first convergence (instead of the resync).
    label_change: bool,
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
            namespaces: 1,
            label_change: false,
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
                "--rate" => {
                    options.rates = match value("--rate")?.as_str() {
                        "default" => vec![RateChoice::Default],
                        "max" => vec![RateChoice::Max],
                        "both" => vec![RateChoice::Default, RateChoice::Max],
                        other => return Err(format!("--rate {other}: default, max or both")),
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
        // NB: no sweep may fall in the label change's window.
        let default_interval = if options.label_change {
            Duration::from_secs(600)
        } else {
            options.interval
        };
        options.interval = interval.unwrap_or(default_interval);
        Ok(options)
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

    /// Calls per second.
    fn per_second(self) -> f64 {
        match self.limit() {
            Some(limit) => limit.requests_per_second,
            None => {
                tagbinder::reconcile::provider::default_rate(tagbinder::api::Cloud::Alibaba)
                    .per_second
            }
        }
    }
}

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

/// The resource ids of binding `index`.
fn resource_ids(index: usize, per_binding: usize) -> Vec<String> {
    (0..per_binding)
        .map(|j| format!("bench{index:05}x{j}"))
        .collect()
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
            "bindings": options.bindings,
            "resources_per_binding": options.resources_per_binding,
            "tag_sets": options.tag_sets,
            "namespaces": options.namespaces,
            "label_change": options.label_change,
            "interval": humantime::format_duration(options.interval).to_string(),
            "paging": "50 (tag, resource) entries per ListTagResources page",
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

async fn run_at(
    options: &Options,
    rate: RateChoice,
) -> Result<(Value, Result<(), String>), String> {
    let dir = tempfile::tempdir().map_err(|e| format!("a scratch directory: {e}"))?;
    let ids: Vec<String> = (0..options.bindings)
        .flat_map(|i| resource_ids(i, options.resources_per_binding))
        .collect();
    let resources: Vec<(&str, &[(&str, &str)])> =
        ids.iter().map(|id| (id.as_str(), &[][..])).collect();
    let cloud = CloudEmulator::start(dir.path(), &resources).await;
    let server = ApiServer::start().await;
    let client = server.client(USER);
    fixtures::install(&client, Crds::Both).await;
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
    let mut provider = fixtures::provider(PROVIDER, &cloud.url, SECRET);
    provider.spec.rate_limit = rate.limit();
    fixtures::create_provider(&client, &provider).await;
    let created = Instant::now();
    create_bindings(&client, options).await?;
    eprintln!(
        "controller_scale: {} bindings created in {:.1}s; starting the controller",
        options.bindings,
        created.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let mut controller = Controller::start(
        &server,
        dir.path(),
        ControllerOptions {
            identity: OPERATOR,
            leader_election: false,
            namespace: None,
        },
    );
    let pid = controller.pid().ok_or("the controller is not running")?;
    wait_all_ready(&server, &controller, options, started).await?;
    let to_ready = started.elapsed();
    let first = Phase::measure(&server, &cloud, &controller).await;
    if options.label_change {
        eprintln!(
            "controller_scale: all Ready in {:.1}s; relabelling one namespace",
            to_ready.as_secs_f64()
        );
    } else {
        eprintln!(
            "controller_scale: all Ready in {:.1}s; waiting for the resync ({:?})",
            to_ready.as_secs_f64(),
            options.interval
        );
    }

    let label_change = if options.label_change {
        let changed = relabel(&client, &server, options).await?;
        let after = Phase::measure(&server, &cloud, &controller).await;
        Some((changed, after.since(&first)))
    } else {
        None
    };
    let resync = if options.label_change {
        Phase::default()
    } else {
        wait_resync(&controller, options, first.passes).await?;
        // NB: a pass counts as reconciled after its status write; a short pause lets the calls
        // of a pass that may still be under way land in the window they belong to.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after = Phase::measure(&server, &cloud, &controller).await;
        after.since(&first)
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
        label_change: label_change
            .as_ref()
            .map(|(time, phase)| (*time, phase, label_change_bound(options))),
    };
    Ok((report.to_json(), report.check()))
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
            resource_type: "apiGroup",
            tags,
            resource_ids: ids,
        })
        .collect();
    let converged: TagsByResource = declared
        .iter()
        .flat_map(|(_, tags, ids)| ids.iter().map(move |id| (id.clone(), tags.clone())))
        .collect();
    let limits = Limits::alibaba();
    let paging = Paging::of(tagbinder::api::Cloud::Alibaba);
    let first = lower_bound(&fleet, &BTreeMap::new(), &limits, paging);
    let observed = BTreeMap::from([("apiGroup".to_string(), converged)]);
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

/// The bindings of the namespace whose label changes: those of namespace 0.
fn relabelled_bindings(options: &Options) -> Vec<usize> {
    (0..options.bindings)
        .filter(|i| i % options.namespaces == 0)
        .collect()
}

/// The lower bound of the label change: the changed namespace's bindings, their resources
/// carrying the old value, declaring the new one.
fn label_change_bound(options: &Options) -> CallBound {
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
                rendered_tags(index, options, Some(RELABELLED)),
                resource_ids(index, options.resources_per_binding),
                rendered_tags(index, options, None),
            )
        })
        .collect();
    let fleet: Vec<FleetBinding<'_>> = declared
        .iter()
        .map(|(binding, tags, ids, _)| FleetBinding {
            binding,
            resource_type: "apiGroup",
            tags,
            resource_ids: ids,
        })
        .collect();
    let carried: TagsByResource = declared
        .iter()
        .flat_map(|(_, _, ids, old)| ids.iter().map(move |id| (id.clone(), old.clone())))
        .collect();
    let observed = BTreeMap::from([("apiGroup".to_string(), carried)]);
    lower_bound(
        &fleet,
        &observed,
        &Limits::alibaba(),
        Paging::of(tagbinder::api::Cloud::Alibaba),
    )
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
    server: &ApiServer,
    controller: &Controller,
    options: &Options,
    started: Instant,
) -> Result<(), String> {
    let mut last_report = Instant::now();
    loop {
        let ready = server.count(GROUP, BINDINGS, is_ready);
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
        tokio::time::sleep(Duration::from_millis(100)).await;
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
    /// The controller's Kubernetes API calls, by `verb resource[/subresource]`.
    api_calls: BTreeMap<String, u64>,
    /// Cloud API calls, by action.
    cloud_calls: BTreeMap<String, u64>,
    reconciles: u64,
    passes: u64,
}

impl Phase {
    async fn measure(server: &ApiServer, cloud: &CloudEmulator, controller: &Controller) -> Self {
        let mut phase = Phase {
            reconciles: reconciles(controller).await,
            passes: passes(controller).await,
            ..Phase::default()
        };
        for call in server.calls().iter().filter(|c| c.user == OPERATOR) {
            if is_status_write(call) {
                let name = call.call.name.clone().unwrap_or_default();
                *phase.status_writes.entry(name).or_default() += 1;
            }
            *phase.api_calls.entry(describe(call)).or_default() += 1;
        }
        let (_, stats) = http("GET", &format!("{}/_emulator/stats", cloud.url), None).await;
        let stats: Value = serde_json::from_str(&stats).unwrap_or_default();
        if let Some(actions) = stats["requests"]["alibaba"].as_object() {
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
        Phase {
            status_writes: self
                .status_writes
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v - earlier.status_writes.get(k).copied().unwrap_or(0),
                    )
                })
                .filter(|(_, v)| *v > 0)
                .collect(),
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
            .filter(|(action, _)| !action.starts_with("List"))
            .map(|(_, count)| count)
            .sum()
    }

    fn status_writes_total(&self) -> u64 {
        self.status_writes.values().sum()
    }

    fn to_json(&self, bindings: usize, bound: &CallBound, rate: RateChoice) -> Value {
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
                "callsPerSecond": rate.per_second(),
                "callsOverRateSeconds": rate_limited
                    .then(|| (self.cloud_total() as f64 / rate.per_second() * 10.0).round() / 10.0),
                "boundOverRateSeconds": rate_limited
                    .then(|| (bound.total() as f64 / rate.per_second() * 10.0).round() / 10.0),
            },
            "status_writes": {
                "total": self.status_writes_total(),
                "per_binding": per_binding(self.status_writes_total()),
                "min_per_binding": writes.iter().min(),
                "max_per_binding": writes.iter().max(),
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

fn is_status_write(call: &RecordedCall) -> bool {
    call.call.resource == BINDINGS
        && call.call.subresource.as_deref() == Some("status")
        && matches!(call.call.verb.as_str(), "patch" | "update")
}

fn describe(call: &RecordedCall) -> String {
    match &call.call.subresource {
        Some(sub) => format!("{} {}/{sub}", call.call.verb, call.call.resource),
        None => format!("{} {}", call.call.verb, call.call.resource),
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
    /// With `--label-change`: the time from the change to all its bindings Ready, the phase's
    /// counts, and its lower bound.
    label_change: Option<(Duration, &'a Phase, CallBound)>,
}

impl Report<'_> {
    fn to_json(&self) -> Value {
        let mib = |kib: Option<u64>| kib.map(|k| (k as f64 / 1024.0 * 10.0).round() / 10.0);
        let target = self.bounds.0.total() as f64 / self.rate.per_second() * 1.2 + 5.0;
        let label_change = self.label_change.as_ref().map(|(took, phase, bound)| {
            let calls_at_rate = bound.total() as f64 / self.rate.per_second();
            json!({
                "bindings": relabelled_bindings(self.options).len(),
                "seconds_to_all_ready": (took.as_secs_f64() * 100.0).round() / 100.0,
                "target_seconds_to_all_ready": ((2.0 + calls_at_rate) * 100.0).round() / 100.0,
                "calls": phase.to_json(self.options.bindings, bound, self.rate),
            })
        });
        json!({
            "rate": self.rate.name(),
            "seconds_to_all_ready": (self.to_ready.as_secs_f64() * 100.0).round() / 100.0,
            "target_seconds_to_all_ready": (self.rate == RateChoice::Default)
                .then(|| (target * 10.0).round() / 10.0),
            "controller_peak_rss_mib": mib(self.memory.peak_kib),
            "controller_rss_at_end_mib": mib(self.memory.current_kib),
            "first_convergence": self.first.to_json(self.options.bindings, &self.bounds.0, self.rate),
            "resync": (!self.options.label_change)
                .then(|| self.resync.to_json(self.options.bindings, &self.bounds.1, self.rate)),
            "label_change": label_change,
        })
    }

    /// The deterministic counts: two status writes per binding on first convergence (its
    /// intent, then its outcome), none on the resync. Never a time or a size.
    fn check(&self) -> Result<(), String> {
        let bindings = self.options.bindings;
        let mut problems = Vec::new();
        let off: Vec<String> = (0..bindings)
            .map(binding_name)
            .filter_map(|name| {
                let count = self.first.status_writes.get(&name).copied().unwrap_or(0);
                (count != FIRST_STATUS_WRITES).then(|| format!("{name}: {count}"))
            })
            .collect();
        if !off.is_empty() {
            problems.push(format!(
                "{} binding(s) without exactly {FIRST_STATUS_WRITES} status writes on first convergence (e.g. {})",
                off.len(),
                off.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        if let Some((_, phase, bound)) = &self.label_change {
            let affected = relabelled_bindings(self.options).len() as u64;
            if phase.cloud_total() as f64 > bound.total() as f64 * 1.1 {
                problems.push(format!(
                    "label change: {} cloud calls, more than 1.1 x the lower bound {}",
                    phase.cloud_total(),
                    bound.total()
                ));
            }
            // NB: its bindings only: an intent and an outcome each.
            if phase.status_writes_total() > affected * FIRST_STATUS_WRITES {
                problems.push(format!(
                    "label change: {} status writes for {affected} bindings",
                    phase.status_writes_total()
                ));
            }
        }
        if self.resync.status_writes_total() > 0 {
            problems.push(format!(
                "{} status write(s) on the no-change resync",
                self.resync.status_writes_total()
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
