//! The CLI's bench (`cargo bench --bench cli_scale`, benches/cli_scale.rs, included here) in a
//! smoke size: the call counts are deterministic (every round of the batcher waits for every
//! binding), so they are asserted exactly; times and memory never are.

// NB: the bench's `main` and its allocator settings are not used here.
#[allow(dead_code)]
#[path = "../benches/cli_scale.rs"]
mod cli_scale;

use clap::Parser as _;
use cli_scale::{BenchArgs, BenchCloud, BenchStrategy, Fleet};
use serde_json::Value;
use tagbinder::tags::TagsByResource;

fn args(bindings: u32, per_binding: u32) -> BenchArgs {
    BenchArgs {
        bindings,
        resources_per_binding: per_binding,
        tags: 5,
        overlap: 0.0,
        same_resources: false,
        tag_sets: 10,
        strategy: BenchStrategy::Batched,
        compare: false,
        qps: None,
        cloud: BenchCloud::Alibaba,
        one_page_per_read: false,
        policies: 0,
    }
}

async fn run(args: BenchArgs) -> Value {
    let _ = rustls::crypto::ring::default_provider().install_default();
    cli_scale::run(&args).await.expect("the fleet converges")
}

fn count(pass: &Value, path: &[&str]) -> u64 {
    let mut value = pass;
    for key in path {
        value = &value[*key];
    }
    value
        .as_u64()
        .unwrap_or_else(|| panic!("{path:?} in {pass}"))
}

/// Every pass of every run: the calls made equal the lower bound, and a no-change pass
/// makes no write.
fn assert_at_the_bound(report: &Value, strategy: &str) {
    let run = report["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|run| run["strategy"] == strategy)
        .expect("the run");
    for pass in run["passes"].as_array().unwrap() {
        assert_eq!(pass["calls"]["failed"], 0, "{pass}");
        assert_eq!(
            count(pass, &["calls", "total"]),
            count(pass, &["lowerBound", "total"]),
            "{pass}"
        );
        assert_eq!(pass["ratioToLowerBound"], 1.0, "{pass}");
    }
    assert_eq!(run["passes"][1]["pass"], "no-change");
    assert_eq!(run["passes"][1]["writes"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batched_calls_meet_the_lower_bound_and_per_resource_calls_are_fifty_times_more() {
    let mut a = args(20, 50);
    a.compare = true;
    let report = run(a).await;
    assert_at_the_bound(&report, "batched");
    let first = &report["runs"][0]["passes"][0];
    // 1,000 resources: 20 reads; 10 tag sets on 100 resources each: 2 writes per set.
    assert_eq!(count(first, &["calls", "list"]), 20);
    assert_eq!(count(first, &["calls", "tag"]), 20);
    let per_resource = &report["runs"][1]["passes"][0];
    assert_eq!(count(per_resource, &["calls", "list"]), 1000);
    assert_eq!(count(per_resource, &["calls", "tag"]), 1000);
    assert_eq!(report["comparison"]["perResourceToBatchedCalls"], 50.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_bindings_read_and_write_each_resource_once() {
    let mut a = args(60, 10);
    a.overlap = 0.6;
    a.tag_sets = 3;
    let report = run(a).await;
    assert_at_the_bound(&report, "batched");
    let first = &report["runs"][0]["passes"][0];
    // Each binding shares 3 of its 10 resources with the next one (of another tag set):
    // 60 x 7 = 420 distinct resources, each read once: ceil(420 / 50) = 9 reads.
    assert_eq!(report["fleet"]["distinctResources"], 420);
    assert_eq!(count(first, &["calls", "list"]), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jd_cloud_calls_meet_the_lower_bound_too() {
    let mut a = args(30, 20);
    a.cloud = BenchCloud::Jdcloud;
    a.overlap = 0.2;
    a.tags = 4;
    let report = run(a).await;
    assert_at_the_bound(&report, "batched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_run_makes_the_same_calls() {
    let mut a = args(10, 10);
    a.qps = Some(50.0);
    let report = run(a).await;
    assert_at_the_bound(&report, "batched");
    let first = &report["runs"][0]["passes"][0];
    assert!(first["rateLimitSeconds"].as_f64().is_some(), "{first}");
}

/// Issue 24: three TagPolicies judge every binding and count every resource from the reads
/// the run makes anyway: the calls are those of the same fleet without policies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_policies_add_no_cloud_call() {
    let without = run(args(40, 10)).await;
    let mut with = args(40, 10);
    with.policies = 3;
    let with = run(with).await;
    assert_at_the_bound(&with, "batched");
    for pass in 0..2 {
        assert_eq!(
            with["runs"][0]["passes"][pass]["calls"], without["runs"][0]["passes"][pass]["calls"],
            "pass {pass}"
        );
    }
    assert_eq!(with["fleet"]["policies"], 3, "{with}");
}

#[test]
fn overlap_shares_resources_between_consecutive_bindings() {
    let a = BenchArgs::parse_from(
        ["cli_scale", "--bindings=4", "--resources-per-binding=10"]
            .into_iter()
            .chain(["--overlap=0.4", "--tag-sets=2"]),
    );
    let fleet = Fleet::generate(&a).unwrap();
    assert_eq!(
        fleet.resources.len(),
        4 * 8,
        "2 of 10 shared with the next binding"
    );
    let (_, _, first) = &fleet.bindings[0];
    let (_, _, second) = &fleet.bindings[1];
    let shared: Vec<_> = first.iter().filter(|id| second.contains(id)).collect();
    assert_eq!(shared.len(), 2);
    let multi = fleet
        .converged()
        .values()
        .filter(|tags| tags.len() == 10)
        .count();
    assert_eq!(multi, 4 * 2, "shared resources carry both tag sets");
}

#[test]
fn the_bound_of_a_fleet_without_overlap() {
    let a = BenchArgs::parse_from(["cli_scale", "--bindings=100", "--resources-per-binding=10"]);
    let fleet = Fleet::generate(&a).unwrap();
    let first = fleet.bound(&a, &TagsByResource::new());
    // 1,000 resources: 20 reads; 10 tag sets of 100 resources each: 2 calls each.
    assert_eq!((first.list, first.tag, first.untag), (20, 20, 0));
    let again = fleet.bound(&a, &fleet.converged());
    // NB: 1,000 resources x 5 tags = 5,000 entries: 100 pages of 50.
    assert_eq!((again.list, again.tag), (100, 0));
}

#[test]
fn too_many_tags_for_shared_resources_is_refused() {
    let mut a = BenchArgs::parse_from(
        ["cli_scale", "--bindings=10", "--resources-per-binding=10"]
            .into_iter()
            .chain(["--overlap=0.5", "--tag-sets=2", "--tags=11"]),
    );
    let error = Fleet::generate(&a).err().expect("refused");
    assert!(
        error.contains("--tags 11") && error.contains("at most 20"),
        "{error}"
    );
    a.overlap = 1.5;
    assert!(Fleet::generate(&a).err().unwrap().contains("--overlap 1.5"));
}
