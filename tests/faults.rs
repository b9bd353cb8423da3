//! The fault suite: a mixed fleet (Alibaba Cloud API groups and JD Cloud virtual machines)
//! converged by the CLI binary against an emulator that throttles 30% of requests at random,
//! fails 5% with server errors, adds latency, drops connections, and loses answers of
//! requests it handled (so that retried writes repeat writes that already happened).
//!
//! Checked: every binding converges within a few passes (as the controller's next pass
//! would finish the job), no foreign tag changes, no owned tag is lost when the manifests
//! change under faults, and the retries stay within the retry policy's bound.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use serde_json::Value;
use tagbinder::emulator::{
    Account, EmulatorConfig, FaultConfig, Inventory, InventoryResource, RunningEmulator, start,
};

const ALIBABA_KEY: (&str, &str) = ("LTAI5tFaultSuiteKey", "fault-suite-alibaba-secret");
const JD_KEY: (&str, &str) = ("JDFAULTSUITEKEY", "fault-suite-jdcloud-secret");
/// Attempts per call of the CLI's retry policy (`RetryPolicy::default`).
const MAX_ATTEMPTS: u64 = 5;

/// One binding of the fleet.
struct Member {
    namespace: String,
    cloud: &'static str,
    provider: &'static str,
    resource_type: &'static str,
    ids: Vec<String>,
}

fn fleet() -> Vec<Member> {
    let mut fleet = Vec::new();
    for n in 0..6 {
        fleet.push(Member {
            namespace: format!("team-a{n}"),
            cloud: "alibaba",
            provider: "aliyun",
            resource_type: "apiGroup",
            ids: (0..8).map(|i| format!("group-{n}-{i}")).collect(),
        });
    }
    for n in 0..4 {
        fleet.push(Member {
            namespace: format!("team-j{n}"),
            cloud: "jdcloud",
            provider: "jd",
            resource_type: "vm",
            ids: (0..6).map(|i| format!("i-{n}x{i}")).collect(),
        });
    }
    fleet
}

fn inventory(fleet: &[Member]) -> Inventory {
    let mut resources = Vec::new();
    for member in fleet {
        for (index, id) in member.ids.iter().enumerate() {
            let mut tags = BTreeMap::from([("foreign".to_string(), format!("kept-{id}"))]);
            // NB: every other resource already carries a declared key with the declared value
            // (`owner`, as another tool set it): a tag batch that also carries a key the
            // resource lacks sends it along, but no pass may take ownership of it (issue 20,
            // item 1: a crash journal that recorded whole batches claimed it after a kill).
            if index % 2 == 0 {
                tags.insert("owner".to_string(), member.namespace.clone());
            }
            resources.push(InventoryResource {
                cloud: member.cloud.to_string(),
                region: if member.cloud == "alibaba" {
                    "cn-hangzhou".to_string()
                } else {
                    "cn-north-1".to_string()
                },
                resource_type: member.resource_type.to_string(),
                id: id.clone(),
                tags,
            });
        }
    }
    Inventory {
        accounts: [ALIBABA_KEY, JD_KEY]
            .iter()
            .map(|(id, secret)| Account {
                access_key_id: id.to_string(),
                access_key_secret: secret.to_string(),
            })
            .collect(),
        resources,
    }
}

/// Both providers, with `rate` as their `spec.rateLimit`.
fn providers(url: &str, rate: &str) -> String {
    let rate = format!("\n  rateLimit: {rate}");
    format!(
        "apiVersion: tagbinder.io/v1alpha1
kind: TagProvider
metadata: {{name: aliyun}}
spec:
  cloud: alibaba
  region: cn-hangzhou
  alibaba: {{product: apigateway}}
  endpoint: {url}
  credentials: {{secretRef: {{namespace: ops, name: aliyun}}}}{rate}
---
apiVersion: tagbinder.io/v1alpha1
kind: TagProvider
metadata: {{name: jd}}
spec:
  cloud: jdcloud
  region: cn-north-1
  endpoint: {url}
  credentials: {{secretRef: {{namespace: ops, name: jd}}}}{rate}
---
apiVersion: v1
kind: Secret
metadata: {{name: aliyun, namespace: ops}}
stringData: {{accessKeyId: {}, accessKeySecret: {}}}
---
apiVersion: v1
kind: Secret
metadata: {{name: jd, namespace: ops}}
stringData: {{accessKeyId: {}, accessKeySecret: {}}}
",
        ALIBABA_KEY.0, ALIBABA_KEY.1, JD_KEY.0, JD_KEY.1
    )
}

fn bindings(fleet: &[Member], tags: &dyn Fn(&Member) -> BTreeMap<String, String>) -> String {
    fleet
        .iter()
        .map(|member| {
            let tags: Vec<String> = tags(member)
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            format!(
                "apiVersion: tagbinder.io/v1alpha1
kind: ResourceTagBinding
metadata: {{name: fleet, namespace: {}}}
spec:
  providerRef: {{name: {}}}
  resourceType: {}
  resourceIds: [{}]
  tags: {{{}}}
",
                member.namespace,
                member.provider,
                member.resource_type,
                member.ids.join(", "),
                tags.join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("---\n")
}

fn first_tags(member: &Member) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("env".to_string(), "prod".to_string()),
        ("owner".to_string(), member.namespace.clone()),
        ("cost-center".to_string(), "cc-1".to_string()),
    ])
}

fn second_tags(member: &Member) -> BTreeMap<String, String> {
    // `cost-center` is no longer declared (pruned), `env` changes, `tier` is new.
    BTreeMap::from([
        ("env".to_string(), "staging".to_string()),
        ("owner".to_string(), member.namespace.clone()),
        ("tier".to_string(), "web".to_string()),
    ])
}

fn apply(dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tagbinder"))
        .args(["apply", "-f", "manifests"])
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .output()
        .expect("the tagbinder binary runs")
}

/// Applies until every binding is Ready, at most `passes` times; answers the passes made.
fn converge(dir: &Path, passes: usize) -> usize {
    for pass in 1..=passes {
        let output = apply(dir);
        if output.status.success() {
            return pass;
        }
        assert_eq!(
            output.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    panic!("the fleet did not converge in {passes} passes");
}

/// [`converge`], with the cloud clients' debug events as JSON lines: the passes made and the
/// events of every pass.
fn converge_traced(dir: &Path, passes: usize) -> (usize, Vec<Value>) {
    let mut events = Vec::new();
    for pass in 1..=passes {
        let output = Command::new(env!("CARGO_BIN_EXE_tagbinder"))
            .args(["--log-format", "json", "apply", "-f", "manifests"])
            .current_dir(dir)
            .env("RUST_LOG", "warn,tagbinder::cloud=debug")
            .output()
            .expect("the tagbinder binary runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        events.extend(
            stderr
                .lines()
                .filter_map(|line| serde_json::from_str(line).ok()),
        );
        if output.status.success() {
            return (pass, events);
        }
        assert_eq!(output.status.code(), Some(1), "{stderr}");
    }
    panic!("the fleet did not converge in {passes} passes");
}

/// What the clients' events say of their calls: how many calls, how many attempts in all,
/// and the most attempts one call made. A call ends with one `call succeeded` or `call failed`
/// event; each attempt it retries logs `retrying cloud call` with that attempt's number.
struct Attempts {
    calls: u64,
    attempts: u64,
    most_in_one_call: u64,
}

fn attempts(events: &[Value]) -> Attempts {
    let mut counted = Attempts {
        calls: 0,
        attempts: 0,
        most_in_one_call: 0,
    };
    for event in events {
        let fields = &event["fields"];
        match fields["message"].as_str() {
            Some("call succeeded") => {
                counted.calls += 1;
                counted.attempts += 1;
            }
            Some("call failed") => {
                counted.calls += 1;
                counted.attempts += 1;
                let made = fields["attempts"]
                    .as_u64()
                    .expect("attempts of a failed call");
                counted.most_in_one_call = counted.most_in_one_call.max(made);
            }
            Some("retrying cloud call") => {
                counted.attempts += 1;
                let failed = fields["attempt"].as_u64().expect("the attempt retried");
                // NB: attempt N failed and is retried: the call makes at least N + 1.
                counted.most_in_one_call = counted.most_in_one_call.max(failed + 1);
            }
            _ => {}
        }
    }
    counted.most_in_one_call = counted.most_in_one_call.max(u64::from(counted.calls > 0));
    counted
}

async fn get(emulator: &RunningEmulator, path: &str) -> Value {
    reqwest::get(format!("{}{path}", emulator.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// `POST /_emulator/{path}`, expecting 204.
async fn control(emulator: &RunningEmulator, path: &str, body: Option<Value>) {
    let request = reqwest::Client::new().post(format!("{}/_emulator/{path}", emulator.url()));
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    let answer = request.send().await.unwrap();
    assert_eq!(answer.status(), reqwest::StatusCode::NO_CONTENT, "{path}");
}

async fn assert_fleet_carries(
    emulator: &RunningEmulator,
    fleet: &[Member],
    tags: &dyn Fn(&Member) -> BTreeMap<String, String>,
) {
    let state = get(emulator, "/_emulator/state").await;
    for member in fleet {
        let mut expected = tags(member);
        for id in &member.ids {
            expected.insert("foreign".to_string(), format!("kept-{id}"));
            let actual = &state["resources"][member.cloud][member.resource_type][id]["tags"];
            let actual: BTreeMap<String, String> =
                serde_json::from_value(actual.clone()).unwrap_or_default();
            assert_eq!(actual, expected, "{} {id}", member.namespace);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_fleet_converges_under_faults_without_losing_or_clobbering_a_tag() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fleet = fleet();
    let emulator = start(
        "127.0.0.1:0".parse().unwrap(),
        EmulatorConfig {
            inventory: inventory(&fleet),
            faults: FaultConfig {
                throttle_ratio: 0.3,
                error_ratio: 0.05,
                latency: Duration::from_millis(2),
                drop_ratio: 0.02,
                lost_answer_ratio: 0.05,
                seed: Some(20261123),
                ..FaultConfig::default()
            },
            ..EmulatorConfig::default()
        },
    )
    .await
    .expect("the emulator starts");
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    std::fs::write(
        manifests.join("providers.yaml"),
        // NB: 30% of the answers throttle at random, and the rate limiter halves its rate on
        // each: from the default rate it would crawl. A provider that expects this sets a
        // higher rate.
        providers(&emulator.url(), "{requestsPerSecond: 200, burst: 20}"),
    )
    .unwrap();
    std::fs::write(
        manifests.join("bindings.yaml"),
        bindings(&fleet, &first_tags),
    )
    .unwrap();

    let root = dir.path().to_path_buf();
    let (passes, mut events) = tokio::task::spawn_blocking(move || converge_traced(&root, 4))
        .await
        .unwrap();
    assert_fleet_carries(&emulator, &fleet, &first_tags).await;

    std::fs::write(
        manifests.join("bindings.yaml"),
        bindings(&fleet, &second_tags),
    )
    .unwrap();
    let root = dir.path().to_path_buf();
    let (more, more_events) = tokio::task::spawn_blocking(move || converge_traced(&root, 4))
        .await
        .unwrap();
    events.extend(more_events);
    assert_fleet_carries(&emulator, &fleet, &second_tags).await;

    let stats = get(&emulator, "/_emulator/stats").await;
    let outcomes = stats["outcomes"].as_object().unwrap();
    let count = |outcome: &str| outcomes.get(outcome).and_then(Value::as_u64).unwrap_or(0);
    let total = stats["total"].as_u64().unwrap();
    let faults: u64 = outcomes
        .iter()
        .filter(|(outcome, _)| outcome.as_str() != "ok")
        .map(|(_, n)| n.as_u64().unwrap())
        .sum();
    assert!(faults > 0, "the faults were injected: {stats}");
    assert!(count("answerLost") > 0, "some answers were lost: {stats}");
    // NB: attempts are counted per call from the clients' own events; the emulator
    // cross-checks the sum: it saw no request the calls do not account for (fewer when a
    // connection broke before a request reached it).
    let counted = attempts(&events);
    assert!(counted.calls > 0, "the clients logged their calls");
    assert!(
        counted.attempts > counted.calls,
        "some calls were retried: {stats}"
    );
    assert!(
        counted.most_in_one_call <= MAX_ATTEMPTS,
        "a call made {} attempts; the policy allows {MAX_ATTEMPTS}",
        counted.most_in_one_call
    );
    // NB: the emulator counts a lost answer twice (the handled action, then `answerLost`).
    let requests = total - count("answerLost");
    assert!(
        requests <= counted.attempts,
        "the emulator saw {requests} requests; the {} calls made {} attempts: {stats}",
        counted.calls,
        counted.attempts
    );
    println!("passes: {passes} then {more}; stats: {stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pass_killed_midway_is_finished_by_the_next_without_pruning_what_should_stay() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fleet = fleet();
    let emulator = start(
        "127.0.0.1:0".parse().unwrap(),
        EmulatorConfig {
            inventory: inventory(&fleet),
            faults: FaultConfig {
                latency: Duration::from_millis(100),
                ..FaultConfig::default()
            },
            ..EmulatorConfig::default()
        },
    )
    .await
    .expect("the emulator starts");
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    // NB: the six Alibaba bindings declare six different tag sets: six TagResources calls.
    // The emulator's gate holds every cloud request until the test admits it, one at a time,
    // so that the run is killed after exactly two of them, whatever the scheduling.
    std::fs::write(
        manifests.join("providers.yaml"),
        providers(&emulator.url(), "{requestsPerSecond: 4, burst: 1}"),
    )
    .unwrap();
    std::fs::write(
        manifests.join("bindings.yaml"),
        bindings(&fleet, &first_tags),
    )
    .unwrap();
    control(&emulator, "gate/pause", None).await;

    let mut child = Command::new(env!("CARGO_BIN_EXE_tagbinder"))
        .args(["apply", "-f", "manifests"])
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Admit one request at a time; once it is answered (none in flight), read the writes.
    let written = loop {
        let gate = get(&emulator, "/_emulator/gate").await;
        if gate["inFlight"] != 0 || gate["waiting"] == 0 {
            assert!(
                child.try_wait().unwrap().is_none(),
                "the pass ended before it was cut"
            );
            // NB: waits for the next event (an answer, a new request), not for a time.
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        }
        let stats = get(&emulator, "/_emulator/stats").await;
        let written = stats["requests"]["alibaba"]["TagResources"]["ok"]
            .as_u64()
            .unwrap_or(0);
        if written >= 2 {
            break written;
        }
        control(
            &emulator,
            "gate/admit",
            Some(serde_json::json!({"requests": 1})),
        )
        .await;
    };
    child.kill().unwrap();
    child.wait().unwrap();
    control(&emulator, "gate/resume", None).await;
    assert_eq!(
        written, 2,
        "the pass was cut after two of six Alibaba writes"
    );

    let root = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || converge(&root, 1))
        .await
        .unwrap();
    assert_fleet_carries(&emulator, &fleet, &first_tags).await;

    // The next change prunes what the record proves this binding applied, and keeps the
    // rest: nothing declared is lost, no foreign tag is touched.
    std::fs::write(
        manifests.join("bindings.yaml"),
        bindings(&fleet, &second_tags),
    )
    .unwrap();
    let root = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || converge(&root, 1))
        .await
        .unwrap();
    // NB: exactly the second tags and the foreign one: `cost-center`, applied by the
    // killed pass on some resources and by the next one on the rest, is pruned from all.
    assert_fleet_carries(&emulator, &fleet, &second_tags).await;
}

/// The ownership records of a state file (`bindings`), without the run counter.
/// The ownership records of the state file, without `firstApplied` (the time a run first
/// recorded each binding, which differs between runs), which every record must carry.
fn records(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join(".tagbinder/state.json")).expect("a state file");
    let state: Value = serde_json::from_str(&text).unwrap();
    let mut bindings = state["bindings"].clone();
    for (key, record) in bindings.as_object_mut().into_iter().flatten() {
        let first_applied = record
            .as_object_mut()
            .and_then(|r| r.remove("firstApplied"));
        assert!(
            first_applied.is_some_and(|t| t.is_string()),
            "{key}: no firstApplied in its record"
        );
    }
    bindings
}

/// A fresh emulator holding the fleet, and a directory with its manifests, paced so that the
/// writes of one apply spread over most of its run.
async fn paced_fleet(fleet: &[Member]) -> (RunningEmulator, tempfile::TempDir) {
    let emulator = start(
        "127.0.0.1:0".parse().unwrap(),
        EmulatorConfig {
            inventory: inventory(fleet),
            faults: FaultConfig {
                latency: Duration::from_millis(10),
                ..FaultConfig::default()
            },
            ..EmulatorConfig::default()
        },
    )
    .await
    .expect("the emulator starts");
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    std::fs::write(
        manifests.join("providers.yaml"),
        providers(&emulator.url(), "{requestsPerSecond: 20, burst: 1}"),
    )
    .unwrap();
    std::fs::write(
        manifests.join("bindings.yaml"),
        bindings(fleet, &first_tags),
    )
    .unwrap();
    (emulator, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_killed_at_random_points_ends_with_the_ownership_of_an_uninterrupted_run() {
    use rand::{Rng, SeedableRng};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let fleet = fleet();

    let (_reference_cloud, reference_dir) = paced_fleet(&fleet).await;
    let root = reference_dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || converge(&root, 1))
        .await
        .unwrap();
    let reference = records(reference_dir.path());
    assert_eq!(reference.as_object().map(|r| r.len()), Some(fleet.len()));

    // NB: each kill waits for a random number of tag writes to have been answered, then a
    // random few milliseconds: points before, between and after writes, found by the cloud's
    // counts rather than by the clock.
    let mut rng = rand::rngs::StdRng::seed_from_u64(20261130);
    let mut cut_after_a_write = 0;
    for round in 0..24 {
        let (emulator, dir) = paced_fleet(&fleet).await;
        let mut child = Command::new(env!("CARGO_BIN_EXE_tagbinder"))
            .args(["apply", "-f", "manifests"])
            .current_dir(dir.path())
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let wait_for_writes = rng.random_range(0..10u64);
        let then = Duration::from_millis(rng.random_range(0..40));
        let mut writes = tag_writes(&emulator).await;
        while writes < wait_for_writes && child.try_wait().unwrap().is_none() {
            tokio::time::sleep(Duration::from_millis(5)).await;
            writes = tag_writes(&emulator).await;
        }
        tokio::time::sleep(then).await;
        child.kill().unwrap();
        let status = child.wait().unwrap();
        let writes = tag_writes(&emulator).await;
        if !status.success() && writes > 0 {
            cut_after_a_write += 1;
        }
        let root = dir.path().to_path_buf();
        tokio::task::spawn_blocking(move || converge(&root, 2))
            .await
            .unwrap();
        assert_fleet_carries(&emulator, &fleet, &first_tags).await;
        assert_eq!(
            records(dir.path()),
            reference,
            "round {round}: killed after {writes} tag write(s) (waited for {wait_for_writes}, \
             then {then:?})"
        );
    }
    assert!(
        cut_after_a_write >= 12,
        "only {cut_after_a_write} of 24 kills landed after a write"
    );
}

/// Tag writes the emulator answered, both clouds.
async fn tag_writes(emulator: &RunningEmulator) -> u64 {
    let stats = get(emulator, "/_emulator/stats").await;
    let ok =
        |cloud: &str, action: &str| stats["requests"][cloud][action]["ok"].as_u64().unwrap_or(0);
    ok("alibaba", "TagResources") + ok("jdcloud", "tagResources")
}
