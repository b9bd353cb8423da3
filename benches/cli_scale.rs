//! The CLI at scale: converges a generated fleet with the CLI's reconcile (`cli::run_with`,
//! what `tagbinder apply` runs) against the emulator started in this process, twice (a first
//! convergence, then a pass with nothing to change), and prints as JSON the calls made by
//! action, the lower bound ([`tagbinder::plan::bound`]), their ratio, the wall time and the
//! peak RSS of each pass. `--strategy per-resource` measures instead the baseline of one call
//! per resource per change (the bench's own loop through the provider's client: tagbinder has
//! no such mode); `--compare` measures both in one run.
//!
//! The fleet: `--bindings N` bindings of one provider, each declaring `--tags T` tags on
//! `--resources-per-binding M` resources. Binding `i` uses tag set `i % --tag-sets` (sets
//! have disjoint keys, so bindings never conflict). With `--overlap F`, consecutive bindings
//! share `round(F * M / 2)` resources, so that a share `F` of each binding's resources is also
//! targeted by another binding.
//!
//! ```text
//! cargo bench --bench cli_scale -- --bindings 10000 --policies 3
//! cargo bench --bench cli_scale -- --bindings 100 --resources-per-binding 50 --compare
//! cargo bench --bench cli_scale -- --help
//! ```
//!
//! `cargo bench` builds it with the release profile (the shipped binary's optimisations and
//! allocator settings, so its memory is the binary's). `tests/bench.rs` includes this file
//! and runs it in a smoke size, asserting the call counts only.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Value, json};

use tagbinder::api::{Cloud, ResourceTagBinding, TagProvider};
use tagbinder::calls::tag_payloads;
use tagbinder::cli::manifests::{Located, Manifests, Source};
use tagbinder::cli::progress::Progress;
use tagbinder::cli::state::StateFile;
use tagbinder::cli::{Command, run_with};
use tagbinder::cloud::{AccessKey, TagApi};
use tagbinder::emulator::{self, Account, EmulatorConfig, Inventory, InventoryResource};
use tagbinder::plan::BindingId;
use tagbinder::plan::bound::{CallBound, FleetBinding, Paging, lower_bound};
use tagbinder::reconcile::provider::{ClientOptions, ProviderClient, client_for, http_client};
use tagbinder::tags::{Limits, Tags, TagsByResource};

const KEY_ID: &str = "BENCHACCESSKEYID0000000001";
const KEY_SECRET: &str = "bench-secret-not-for-production";
const NAMESPACE: &str = "bench";

/// `cargo bench --bench cli_scale -- [OPTIONS]`.
#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "cli_scale",
    about = "The CLI's calls, time and memory on a generated fleet"
)]
pub struct BenchArgs {
    /// Bindings in the fleet.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub bindings: u32,
    /// Resources each binding declares.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub resources_per_binding: u32,
    /// Tags each binding declares.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub tags: u32,
    /// Share (0 to 1) of each binding's resources that another binding also targets.
    #[arg(long, default_value_t = 0.0)]
    pub overlap: f64,
    /// Every binding declares the same resources (the first --resources-per-binding): many
    /// bindings on one resource.
    #[arg(long, conflicts_with = "overlap")]
    pub same_resources: bool,
    /// Distinct tag sets; binding i declares set i % tag-sets.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub tag_sets: u32,
    /// How calls are made: batched (tagbinder's CLI) or per-resource (the baseline: one call
    /// per resource per change, as Terraform's and Crossplane's per-resource models make them).
    #[arg(long, value_enum, default_value_t = BenchStrategy::Batched)]
    pub strategy: BenchStrategy,
    /// Measure both strategies in one run, with the ratio between them.
    #[arg(long)]
    pub compare: bool,
    /// Rate limit of the provider, calls per second (burst 1). Absent: no rate limit.
    #[arg(long)]
    pub qps: Option<f64>,
    /// Which cloud's tag API.
    #[arg(long, value_enum, default_value_t = BenchCloud::Alibaba)]
    pub cloud: BenchCloud,
    /// Count reads, not pages: the emulator answers every list call in one page (and the
    /// lower bound counts one page per call). Without it, list answers page at the cloud's
    /// documented size (50 entries for Alibaba Cloud), and every page is a call.
    #[arg(long)]
    pub one_page_per_read: bool,
    /// TagPolicies (Warn) that judge every binding and count every resource: their added
    /// CPU time and memory, at unchanged calls.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u32).range(0..=3))]
    pub policies: u32,
}

impl BenchArgs {
    /// How the bench's list answers page.
    pub fn paging(&self) -> Paging {
        if self.one_page_per_read {
            Paging::OnePerCall
        } else {
            Paging::of(self.cloud.cloud())
        }
    }
}

/// `--strategy`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum BenchStrategy {
    /// tagbinder's coalesced calls.
    Batched,
    /// One call per resource per change.
    PerResource,
}

/// `--cloud`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchCloud {
    /// Alibaba Cloud API Gateway groups (`apiGroup`).
    Alibaba,
    /// JD Cloud virtual machines (`vm`).
    Jdcloud,
}

impl BenchCloud {
    fn cloud(self) -> Cloud {
        match self {
            BenchCloud::Alibaba => Cloud::Alibaba,
            BenchCloud::Jdcloud => Cloud::Jdcloud,
        }
    }

    fn resource_type(self) -> &'static str {
        match self {
            BenchCloud::Alibaba => "apiGroup",
            BenchCloud::Jdcloud => "vm",
        }
    }

    fn region(self) -> &'static str {
        match self {
            BenchCloud::Alibaba => "cn-hangzhou",
            BenchCloud::Jdcloud => "cn-north-1",
        }
    }

    fn limits(self) -> Limits {
        match self {
            BenchCloud::Alibaba => Limits::alibaba(),
            BenchCloud::Jdcloud => Limits::jdcloud(),
        }
    }
}

fn main() -> ExitCode {
    use clap::Parser as _;
    // NB: `cargo bench` passes `--bench` to a bench without the standard harness.
    let args = BenchArgs::parse_from(std::env::args().filter(|arg| arg != "--bench"));
    tagbinder::allocator::tune();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cli_scale: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let _ = rustls::crypto::ring::default_provider().install_default();
    match runtime.block_on(run(&args)) {
        Ok(report) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("cli_scale: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The generated fleet.
pub struct Fleet {
    /// Each binding: identity, tags, resources.
    pub bindings: Vec<(BindingId, Tags, Vec<String>)>,
    /// Every distinct resource.
    pub resources: Vec<String>,
}

impl Fleet {
    /// The fleet of `args`, or why it cannot be made.
    pub fn generate(args: &BenchArgs) -> Result<Fleet, String> {
        if !(0.0..=1.0).contains(&args.overlap) {
            return Err(format!(
                "--overlap {}: must be between 0 and 1",
                args.overlap
            ));
        }
        let per_binding = args.resources_per_binding as usize;
        let shared = ((args.overlap * per_binding as f64) / 2.0).round() as usize;
        let own = per_binding - shared;
        let limits = args.cloud.limits();
        let tags = args.tags as usize;
        let sets_on_a_resource = if shared > 0 && args.tag_sets > 1 {
            2
        } else {
            1
        };
        if tags * sets_on_a_resource > limits.tags_per_resource {
            return Err(format!(
                "--tags {tags}: {} resources may carry at most {} tags, and with --overlap > 0 \
                 a shared resource carries the tags of two tag sets ({} tags)",
                args.cloud.cloud().as_str(),
                limits.tags_per_resource,
                tags * sets_on_a_resource
            ));
        }
        let count = args.bindings as usize;
        // NB: a ring of `count * own` resources; binding i declares `per_binding` of them from
        // `i * own`, so it shares its first `shared` with binding i - 1 and its last `shared`
        // with binding i + 1 (when shared > 0).
        let total = if args.same_resources {
            per_binding
        } else {
            count * own
        };
        let resources: Vec<String> = (0..total).map(|n| format!("res-{n:07}")).collect();
        let bindings = (0..count)
            .map(|i| {
                let set = i % args.tag_sets as usize;
                let tags: Tags = (0..tags)
                    .map(|k| (format!("set{set}-key{k}"), format!("value-{k}")))
                    .collect();
                let first = if args.same_resources { 0 } else { i * own };
                let mut ids: Vec<String> = (0..per_binding)
                    .map(|j| resources[(first + j) % total].clone())
                    .collect();
                ids.sort();
                ids.dedup();
                let id = BindingId {
                    created: Some(1_700_000_000 + i as i64),
                    namespace: NAMESPACE.to_string(),
                    name: format!("fleet-{i:06}"),
                };
                (id, tags, ids)
            })
            .collect();
        Ok(Fleet {
            bindings,
            resources,
        })
    }

    fn manifests(&self, args: &BenchArgs, url: &str) -> Result<Manifests, String> {
        let source = |document| Source {
            file: "bench".to_string(),
            document,
        };
        let mut provider = json!({
            "apiVersion": "tagbinder.io/v1alpha1",
            "kind": "TagProvider",
            "metadata": {"name": "bench"},
            "spec": {
                "cloud": args.cloud.cloud().as_str(),
                "region": args.cloud.region(),
                "endpoint": url,
                "credentials": {"secretRef": {"namespace": NAMESPACE, "name": "bench"}},
            },
        });
        if args.cloud == BenchCloud::Alibaba {
            provider["spec"]["alibaba"] = json!({"product": "apigateway"});
        }
        if let Some(qps) = args.qps {
            provider["spec"]["rateLimit"] = json!({"requestsPerSecond": qps, "burst": 1});
        }
        let provider: TagProvider = from_json(provider)?;
        let secret = from_json(json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "bench", "namespace": NAMESPACE},
            "stringData": {"accessKeyId": KEY_ID, "accessKeySecret": KEY_SECRET},
        }))?;
        let mut manifests = Manifests::default();
        manifests.providers.insert(
            "bench".to_string(),
            Located {
                source: source(1),
                value: provider,
            },
        );
        manifests.secrets.insert(
            (NAMESPACE.to_string(), "bench".to_string()),
            Located {
                source: source(2),
                value: secret,
            },
        );
        for policy in policies(args)? {
            manifests.policies.insert(
                policy.metadata.name.clone().unwrap_or_default(),
                Located {
                    source: source(0),
                    value: policy,
                },
            );
        }
        for (n, (id, tags, ids)) in self.bindings.iter().enumerate() {
            let created = jiff::Timestamp::from_second(id.created.unwrap_or_default())
                .map_err(|e| e.to_string())?;
            let binding: ResourceTagBinding = from_json(json!({
                "apiVersion": "tagbinder.io/v1alpha1",
                "kind": "ResourceTagBinding",
                "metadata": {
                    "name": id.name,
                    "namespace": id.namespace,
                    "creationTimestamp": created.to_string(),
                },
                "spec": {
                    "providerRef": {"name": "bench"},
                    "resourceType": args.cloud.resource_type(),
                    "resourceIds": ids,
                    "tags": tags,
                },
            }))?;
            manifests.bindings.push(Located {
                source: source(3 + n),
                value: binding,
            });
        }
        Ok(manifests)
    }

    fn inventory(&self, args: &BenchArgs) -> Inventory {
        Inventory {
            accounts: vec![Account {
                access_key_id: KEY_ID.to_string(),
                access_key_secret: KEY_SECRET.to_string(),
            }],
            resources: self
                .resources
                .iter()
                .map(|id| InventoryResource {
                    cloud: args.cloud.cloud().as_str().to_string(),
                    region: args.cloud.region().to_string(),
                    resource_type: args.cloud.resource_type().to_string(),
                    id: id.clone(),
                    tags: Default::default(),
                })
                .collect(),
        }
    }

    /// The lower bound of a pass starting from `observed`.
    pub fn bound(&self, args: &BenchArgs, observed: &TagsByResource) -> CallBound {
        let fleet: Vec<FleetBinding<'_>> = self
            .bindings
            .iter()
            .map(|(binding, tags, ids)| FleetBinding {
                binding,
                resource_type: args.cloud.resource_type(),
                tags,
                resource_ids: ids,
            })
            .collect();
        let observed = BTreeMap::from([(args.cloud.resource_type().to_string(), observed.clone())]);
        lower_bound(&fleet, &observed, &args.cloud.limits(), args.paging())
    }

    /// Every resource with the tags of every binding that declares it.
    pub fn converged(&self) -> TagsByResource {
        let mut state = TagsByResource::new();
        for (_, tags, ids) in &self.bindings {
            for id in ids {
                state
                    .entry(id.clone())
                    .or_default()
                    .extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        state
    }
}

/// `args.policies` TagPolicies over the generated tag sets (at most 64 keys each): a pattern
/// on each set's first key, the allowed values of each set's second key, and set 0's first
/// key required (the other sets break it: Warn, so that every binding still converges).
fn policies(args: &BenchArgs) -> Result<Vec<tagbinder::api::TagPolicy>, String> {
    let sets = args.tag_sets.min(64);
    let patterns: serde_json::Map<String, Value> = (0..sets)
        .map(|set| (format!("set{set}-key0"), json!("^value-[0-9]+$")))
        .collect();
    let allowed: serde_json::Map<String, Value> = (0..sets)
        .map(|set| (format!("set{set}-key1"), json!(["value-1", "value-2"])))
        .collect();
    let rules = [
        json!({"patterns": patterns}),
        json!({"allowedValues": allowed}),
        json!({"required": ["set0-key0"]}),
    ];
    rules
        .into_iter()
        .take(args.policies as usize)
        .enumerate()
        .map(|(n, rules)| {
            from_json(json!({
                "apiVersion": "tagbinder.io/v1alpha1",
                "kind": "TagPolicy",
                "metadata": {"name": format!("bench-{n}")},
                "spec": {"rules": rules, "enforcement": "Warn"},
            }))
        })
        .collect()
}

fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, String> {
    serde_json::from_value(value).map_err(|e| format!("bench: generated an invalid object: {e}"))
}

/// Calls of one pass by action, from the emulator's counts.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
struct Calls {
    list: u64,
    tag: u64,
    untag: u64,
    total: u64,
    /// Requests that the emulator did not answer with success (none expected).
    failed: u64,
    /// The same by the cloud's action names.
    by_action: BTreeMap<String, u64>,
}

fn calls_of(stats: &Value) -> Calls {
    let mut calls = Calls::default();
    let clouds = stats["requests"].as_object().cloned().unwrap_or_default();
    for actions in clouds.values() {
        for (action, outcomes) in actions.as_object().into_iter().flatten() {
            let outcomes = outcomes.as_object().cloned().unwrap_or_default();
            let all: u64 = outcomes.values().filter_map(Value::as_u64).sum();
            let ok = outcomes.get("ok").and_then(Value::as_u64).unwrap_or(0);
            calls.failed += all - ok;
            calls.total += all;
            *calls.by_action.entry(action.clone()).or_default() += all;
            let lower = action.to_ascii_lowercase();
            if lower.starts_with("list") || lower.starts_with("describe") {
                calls.list += all;
            } else if lower.starts_with("untag") {
                calls.untag += all;
            } else {
                calls.tag += all;
            }
        }
    }
    calls
}

/// Peak resident set of this process since the last reset, in MiB (Linux: `VmHWM`).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some((kib / 1024.0 * 10.0).round() / 10.0)
}

/// Resets the peak resident set to the current one (Linux >= 4.0); false when not possible.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// Runs the benchmark and returns its JSON report.
pub async fn run(args: &BenchArgs) -> Result<Value, String> {
    let fleet = Fleet::generate(args)?;
    let strategies = if args.compare {
        vec![BenchStrategy::Batched, BenchStrategy::PerResource]
    } else {
        vec![args.strategy]
    };
    let mut runs = Vec::new();
    for strategy in &strategies {
        runs.push(run_strategy(args, &fleet, *strategy).await?);
    }
    let mut report = json!({
        "fleet": {
            "cloud": args.cloud.cloud().as_str(),
            "resourceType": args.cloud.resource_type(),
            "bindings": args.bindings,
            "resourcesPerBinding": args.resources_per_binding,
            "tags": args.tags,
            "tagSets": args.tag_sets,
            "policies": args.policies,
            "overlap": args.overlap,
            "distinctResources": fleet.resources.len(),
            "paging": match args.paging() {
                Paging::OnePerCall => "one page per read".to_string(),
                Paging::Entries(n) => format!("{n} entries per page"),
            },
            "qps": args.qps,
        },
        "runs": runs,
    });
    if args.compare {
        let first_total = |run: &Value| {
            run["passes"][0]["calls"]["total"]
                .as_f64()
                .unwrap_or(f64::NAN)
        };
        let ratio = first_total(&report["runs"][1]) / first_total(&report["runs"][0]);
        report["comparison"] = json!({
            "perResourceToBatchedCalls": (ratio * 100.0).round() / 100.0,
        });
    }
    Ok(report)
}

async fn run_strategy(
    args: &BenchArgs,
    fleet: &Fleet,
    strategy: BenchStrategy,
) -> Result<Value, String> {
    let mut config = EmulatorConfig {
        inventory: fleet.inventory(args),
        ..EmulatorConfig::default()
    };
    if args.one_page_per_read {
        // NB: one page per list call (50 resources x 20 tags fit), so that list calls count
        // reads; otherwise the emulator pages at the cloud's documented size.
        config.page_size = 1000;
    }
    let emulator = emulator::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config)
        .await
        .map_err(|e| format!("bench: cannot start the emulator: {e}"))?;
    let url = emulator.url();
    let manifests = fleet.manifests(args, &url)?;
    let http = http_client().map_err(|e| format!("bench: cannot build the HTTP client: {e}"))?;
    let options = ClientOptions {
        http: http.clone(),
        endpoint_override: None,
        retry: Default::default(),
        observer: None,
        default_rate_limit: false,
    };
    // NB: the baseline's client, built as the CLI builds a provider's (its endpoint, rate
    // limit, retries and paging), with the key of the bench's Secret.
    let client = match strategy {
        BenchStrategy::Batched => None,
        BenchStrategy::PerResource => {
            let provider = manifests.providers.get("bench").map(|p| &p.value.spec);
            let provider = provider.ok_or("bench: the generated provider is missing")?;
            let key = AccessKey::new(KEY_ID, KEY_SECRET);
            let client = client_for(provider, key.into(), &options)
                .map_err(|e| format!("bench: cannot build the provider's client: {e}"))?;
            Some(client)
        }
    };
    let mut state = StateFile::default();
    let mut passes = Vec::new();
    let bounds = [
        ("first", fleet.bound(args, &TagsByResource::new())),
        ("no-change", fleet.bound(args, &fleet.converged())),
    ];
    for (name, bound) in bounds {
        reset_stats(&http, &url).await?;
        let rss_reset = reset_peak_rss();
        let started = Instant::now();
        let (ready, bindings) = match &client {
            None => {
                let report = run_with(
                    &manifests,
                    &mut state,
                    &options,
                    Command::Apply {
                        prune_removed: false,
                    },
                    &Progress::hidden(),
                )
                .await
                .map_err(|errors| errors.join("; "))?;
                let ready = report.bindings.iter().filter(|b| b.ready).count();
                if let Some(first) = report.bindings.iter().find(|b| !b.ready) {
                    return Err(format!(
                        "bench: {} of {} bindings did not converge ({strategy:?}, {name} pass); \
                         first: {:?}",
                        report.bindings.len() - ready,
                        report.bindings.len(),
                        (&first.binding, &first.reason, &first.message)
                    ));
                }
                (ready, report.bindings.len())
            }
            Some(client) => (
                per_resource_pass(client, args, fleet).await?,
                fleet.bindings.len(),
            ),
        };
        let wall = started.elapsed();
        let peak = peak_rss_mib();
        if ready != bindings {
            return Err(format!(
                "bench: {} of {bindings} bindings did not converge ({strategy:?}, {name} pass)",
                bindings - ready
            ));
        }
        let calls = calls_of(&stats(&http, &url).await?);
        passes.push(pass_report(
            name, &calls, &bound, wall, peak, rss_reset, args.qps, ready,
        ));
    }
    emulator
        .shutdown()
        .await
        .map_err(|e| format!("bench: emulator shutdown: {e}"))?;
    Ok(json!({"strategy": strategy, "passes": passes}))
}

/// The baseline of one call per resource per change, as per-resource models (Terraform's and
/// Crossplane's managed resources) make them: each binding in turn reads each of its
/// resources alone, then writes to each resource, alone, every payload of the binding's tags
/// (cut as tagbinder cuts them, [`tagbinder::calls::tag_payloads`]) that the resource does
/// not carry yet. Returns the bindings whose every call succeeded. (The fleet has no
/// conflicts, so there is no ownership to weigh.)
async fn per_resource_pass(
    client: &ProviderClient,
    args: &BenchArgs,
    fleet: &Fleet,
) -> Result<usize, String> {
    let resource_type = args.cloud.resource_type();
    let mut ready = 0;
    for (_, tags, ids) in &fleet.bindings {
        let payloads = tag_payloads(tags, client.limits());
        let mut converged = true;
        for id in ids {
            let one = std::slice::from_ref(id);
            let Ok(observed) = client.list_tags(resource_type, one).await else {
                converged = false;
                continue;
            };
            let carried = observed.get(id);
            for payload in &payloads {
                let missing = payload
                    .iter()
                    .any(|(key, value)| carried.and_then(|tags| tags.get(*key)) != Some(*value));
                if !missing {
                    continue;
                }
                let payload: Tags = payload
                    .iter()
                    .map(|(key, value)| ((*key).clone(), (*value).clone()))
                    .collect();
                let written = client.tag_resources(resource_type, one, &payload).await;
                converged &= written.is_ok_and(|result| result.failed.is_empty());
            }
        }
        ready += usize::from(converged);
    }
    Ok(ready)
}

#[allow(clippy::too_many_arguments)]
fn pass_report(
    name: &str,
    calls: &Calls,
    bound: &CallBound,
    wall: Duration,
    peak: Option<f64>,
    rss_reset: bool,
    qps: Option<f64>,
    ready: usize,
) -> Value {
    let ratio = if bound.total() == 0 {
        if calls.total == 0 { 1.0 } else { f64::INFINITY }
    } else {
        calls.total as f64 / bound.total() as f64
    };
    let wall_seconds = (wall.as_secs_f64() * 1000.0).round() / 1000.0;
    let mut pass = json!({
        "pass": name,
        "calls": calls,
        "lowerBound": {
            "list": bound.list,
            "tag": bound.tag,
            "untag": bound.untag,
            "total": bound.total(),
        },
        "ratioToLowerBound": (ratio * 1000.0).round() / 1000.0,
        "writes": calls.tag + calls.untag,
        "wallSeconds": wall_seconds,
        "peakRssMiB": peak,
        "peakRssSince": if rss_reset { "pass start" } else { "process start" },
        "readyBindings": ready,
    });
    if let Some(qps) = qps {
        // NB: with burst 1, n calls need (n - 1) / qps seconds at least.
        let floor = calls.total.saturating_sub(1) as f64 / qps;
        pass["rateLimitSeconds"] = json!((floor * 1000.0).round() / 1000.0);
        pass["wallToRateLimit"] = json!(if floor > 0.0 {
            ((wall.as_secs_f64() / floor) * 1000.0).round() / 1000.0
        } else {
            f64::NAN
        });
    }
    pass
}

/// The emulator's request counts so far.
async fn stats(http: &reqwest::Client, url: &str) -> Result<Value, String> {
    let address = format!("{url}/_emulator/stats");
    let response = http.get(&address).send().await;
    let response = response.map_err(|e| format!("bench: {address}: {e}"))?;
    response
        .json()
        .await
        .map_err(|e| format!("bench: {address}: {e}"))
}

/// Starts the emulator's request counts from zero.
async fn reset_stats(http: &reqwest::Client, url: &str) -> Result<(), String> {
    let address = format!("{url}/_emulator/stats/reset");
    let response = http.post(&address).send().await;
    response
        .and_then(reqwest::Response::error_for_status)
        .map(drop)
        .map_err(|e| format!("bench: {address}: {e}"))
}
