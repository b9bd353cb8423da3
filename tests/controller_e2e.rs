//! `tagbinder run`, the built binary, end to end: against an emulated Kubernetes API server
//! (`support/apiserver`) and tagbinder's cloud emulator (`tagbinder emulator`), driven with
//! kube's client as a user would drive a cluster.
//!
//! Most scenarios share one API server, one cloud and one controller (cluster-wide, with
//! leader election), each in its own namespace with its own provider and Secret; those that
//! need another controller mode or disturb the whole server get a server of their own. All run
//! at once (`harness = false`, see `support/runner.rs`).
//!
//! At the end, the union of the Kubernetes API calls that the tagbinder processes made is
//! written to `target/api-calls.json` (and the namespaced controller's alone to
//! `target/api-calls-namespaced.json`), which `.ci/check-rbac-coverage.sh` checks against the
//! chart's RBAC.

mod support;

#[path = "controller_e2e/aws.rs"]
mod aws;
#[path = "controller_e2e/converging.rs"]
mod converging;
#[path = "controller_e2e/crash.rs"]
mod crash;
#[path = "controller_e2e/crash_changes.rs"]
mod crash_changes;
#[path = "controller_e2e/deletion.rs"]
mod deletion;
#[path = "controller_e2e/faults.rs"]
mod faults;
#[path = "controller_e2e/fleet.rs"]
mod fleet;
#[path = "controller_e2e/observe.rs"]
mod observe;
#[path = "controller_e2e/operating.rs"]
mod operating;
#[path = "controller_e2e/policy.rs"]
mod policy;
#[path = "controller_e2e/prometheus.rs"]
mod prometheus;
#[path = "controller_e2e/selector.rs"]
mod selector;
#[path = "controller_e2e/stand_in.rs"]
mod stand_in;
#[path = "controller_e2e/tag_service.rs"]
mod tag_service;
#[path = "controller_e2e/tags_from.rs"]
mod tags_from;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::apiserver::{ApiServer, Call};
use support::fixtures::{self, Crds};
use support::processes::{CloudEmulator, Controller, ControllerOptions};
use support::runner;

use aws::*;
use converging::*;
use crash::*;
use crash_changes::*;
use deletion::*;
use faults::*;
use fleet::*;
use observe::*;
use operating::*;
use policy::*;
use prometheus::*;
use selector::*;
use stand_in::*;
use tag_service::*;
use tags_from::*;

/// The shared controller's user name (bearer token) and `POD_NAME`.
pub const OPERATOR: &str = "tagbinder-main";
/// The user the scenarios act as.
pub const TESTER: &str = "e2e-tester";
/// Users whose calls RBAC must allow: every tagbinder process.
const OPERATOR_PREFIX: &str = "tagbinder-";
/// The namespaced controller's user; its calls are also checked against namespaced RBAC.
pub const NAMESPACED_OPERATOR: &str = "tagbinder-scoped";
/// The namespace it watches (the chart's `watchNamespace` in `.ci/run`).
pub const WATCHED_NAMESPACE: &str = "e2e-scoped";

/// Cloud resources (apiGroups) and their tags at start, each used by one scenario.
const CLOUD: &[(&str, &[(&str, &str)])] = &[
    ("apply-g1", &[]),
    ("apply-g2", &[("team", "web")]),
    ("change-g1", &[]),
    ("delete-g1", &[("created-by", "console")]),
    ("orphan-g1", &[]),
    ("drift-g1", &[]),
    ("conflict-g1", &[]),
    ("suspend-g1", &[("env", "legacy")]),
    ("notallowed-g1", &[]),
    ("forbidden-g1", &[]),
    ("outside-g1", &[]),
    ("retry-g1", &[]),
    ("scoped-g1", &[]),
    ("elsewhere-g1", &[]),
    ("watch-g1", &[]),
    ("leader-g1", &[]),
    ("leader-g2", &[]),
    ("twoprov-g1", &[]),
    ("prompt-g1", &[]),
    ("suspdel-g1", &[]),
    ("blocked-g1", &[]),
    ("blockedns-g1", &[]),
    ("obsconflict-g1", &[]),
    ("expiry-g1", &[]),
    ("expiry-g2", &[]),
];

/// What the scenarios share.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub cloud: CloudEmulator,
    pub server: ApiServer,
    /// A client of `server` as [`TESTER`].
    pub client: kube::Client,
    pub controller: Controller,
    servers: Mutex<Vec<ApiServer>>,
}

impl Env {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("a scratch directory");
        let cloud = CloudEmulator::start(dir.path(), CLOUD).await;
        let server = ApiServer::start().await;
        let client = server.client(TESTER);
        fixtures::install(&client, Crds::Both).await;
        let controller = Controller::start(
            &server,
            dir.path(),
            ControllerOptions {
                identity: OPERATOR,
                leader_election: true,
                namespace: None,
            },
        );
        Env {
            dir,
            cloud,
            servers: Mutex::new(vec![server.clone()]),
            server,
            client,
            controller,
        }
    }

    /// A server of a scenario's own, with `crds` and the controller's namespace; its calls
    /// count for RBAC too.
    pub async fn own_server(&self, crds: Crds) -> (ApiServer, kube::Client) {
        let server = ApiServer::start().await;
        let client = server.client(TESTER);
        fixtures::install(&client, crds).await;
        self.servers.lock().expect("servers").push(server.clone());
        (server, client)
    }

    /// A scratch directory of a scenario's own.
    pub fn scratch(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::create_dir_all(&path).expect("a scratch directory");
        path
    }

    /// Writes the calls of the tagbinder processes that `include` accepts, deduplicated and
    /// sorted, as `.ci/check-rbac.py` reads them.
    fn write_calls(&self, path: &Path, include: impl Fn(&str) -> bool) -> usize {
        let servers = self.servers.lock().expect("servers");
        let calls: BTreeSet<Call> = servers
            .iter()
            .flat_map(ApiServer::calls)
            .filter(|c| include(&c.user))
            .map(|c| c.call)
            .collect();
        let calls: Vec<&Call> = calls.iter().collect();
        let text = serde_json::to_string_pretty(&calls).expect("calls serialise");
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("target/ exists");
        std::fs::write(path, text + "\n").expect("write the API calls");
        calls.len()
    }
}

fn main() -> ExitCode {
    let scenarios = vec![
        scenario!(applies_tags_and_writes_status_once),
        scenario!(a_changed_spec_rewrites_and_prunes),
        scenario!(deleting_with_policy_delete_prunes_what_it_applied),
        scenario!(deleting_with_policy_orphan_leaves_the_tags),
        scenario!(drift_in_the_cloud_is_corrected_on_the_next_interval),
        scenario!(the_older_of_two_conflicting_bindings_wins_without_flapping),
        scenario!(a_suspended_binding_makes_no_cloud_writes),
        scenario!(two_providers_of_one_account_decide_conflicts_by_age),
        scenario!(a_lone_spec_change_is_applied_without_waiting_for_a_sweep),
        scenario!(a_fleet_larger_than_a_chunk_converges_in_the_fewest_calls),
        scenario!(a_namespace_the_provider_does_not_allow_is_stalled),
        scenario!(a_forbidden_secret_is_reported_without_its_data),
        scenario!(a_secret_outside_the_credentials_namespace_is_stalled_unread),
        scenario!(a_conflict_on_a_status_write_is_retried_and_ownership_is_kept),
        scenario!(health_and_metrics_endpoints_answer),
        scenario!(a_real_prometheus_reads_every_panel_and_fires_the_not_ready_alert),
        scenario!(the_leader_holds_a_lease_in_the_pod_namespace),
        scenario!(a_missing_crd_is_named_in_the_error),
        scenario!(a_namespaced_controller_needs_no_cluster_wide_access),
        scenario!(a_dropped_watch_resumes_and_an_expired_one_lists_again),
        scenario!(a_standby_takes_over_when_the_leader_stops),
        scenario!(a_standby_takes_over_when_a_killed_leaders_lease_expires),
        scenario!(the_stand_in_serves_discovery_and_apiserver_semantics),
        scenario!(the_tag_service_converges_prunes_and_reports_a_missing_resource),
        scenario!(an_observe_binding_reports_drift_and_never_writes),
        scenario!(an_observe_binding_that_loses_a_conflict_reports_the_drift),
        scenario!(a_selector_binding_follows_the_resources_that_carry_its_tags),
        scenario!(a_controller_killed_during_a_first_apply_loses_no_ownership),
        scenario!(a_controller_killed_during_changes_deletions_and_releases_loses_no_ownership),
        scenario!(a_hanging_cloud_does_not_hold_up_another_provider),
        scenario!(deleting_a_suspended_binding_leaves_its_tags),
        scenario!(a_deletion_without_credentials_is_stalled_until_orphaned),
        scenario!(a_deletion_in_a_namespace_no_longer_allowed_is_stalled_until_allowed),
        scenario!(an_object_that_does_not_decode_is_skipped_and_reported),
        scenario!(tags_from_kubernetes_follow_their_sources_in_both_hosts),
        scenario!(a_deny_policy_stalls_its_breaker_alone_and_a_warn_policy_warns),
        scenario!(a_policy_scan_counts_unbound_resources_and_writes_nothing),
        scenario!(aws_converges_and_a_bare_id_and_its_arn_are_one_resource),
    ];
    let (scenarios, filtered_out, list) = runner::selected(scenarios);
    if list {
        for scenario in &scenarios {
            println!("{}: test", scenario.name);
        }
        return ExitCode::SUCCESS;
    }
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    let passed = runtime.block_on(async {
        let env = Arc::new(Env::start().await);
        let passed = runner::run(env.clone(), scenarios, filtered_out, Duration::from_secs(150)).await;
        let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        let all = env.write_calls(&target.join("api-calls.json"), |u| u.starts_with(OPERATOR_PREFIX));
        let scoped = env.write_calls(&target.join("api-calls-namespaced.json"), |u| u == NAMESPACED_OPERATOR);
        println!("{all} distinct API calls of tagbinder written to target/api-calls.json ({scoped} of the namespaced controller to target/api-calls-namespaced.json)");
        if !passed {
            let logs = env.controller.logs();
            let tail: Vec<&str> = logs.lines().rev().take(200).collect();
            println!("--- last lines of the shared controller's log ({OPERATOR}):");
            for line in tail.iter().rev() {
                println!("{line}");
            }
        }
        passed
    });
    runtime.shutdown_timeout(Duration::from_secs(1));
    if passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(101)
    }
}
