//! tagbinder against a real kube-apiserver and etcd (issue 19), built here from the Go module
//! proxy by `tests/kube/build.sh` and started by `tests/kube/cluster.sh`; driven with the
//! matching `kubectl`, as a user drives a cluster.
//!
//! One cluster serves every scenario, each in namespaces of its own (those that restart the
//! apiserver and compact etcd, install the chart's `watchNamespace` RBAC, `helm upgrade` its
//! CRDs, `kubectl apply -k`, or run controllers of their own for leader election, have a
//! cluster of their own); all run at once
//! (`harness = false`, `support/runner.rs`): `cargo test --test kube_real -- NAME` runs those
//! whose name holds NAME. Set up once, before them: the CRDs from `tagbinder crd | kubectl
//! apply -f -`, the chart's RBAC (`helm template`, applied unchanged), `tagbinder emulator` as
//! the cloud, and `tagbinder run` authenticated as the chart's ServiceAccount, so that it has
//! exactly what the chart grants; kube-controller-manager runs too (no kubelet), for the
//! chart's Deployment. At the end, every request the controller made is read from
//! the apiserver's audit log: one that RBAC refused fails the suite, named with its verb and
//! resource.

#[allow(dead_code)]
mod support;

#[allow(dead_code)]
#[path = "common/crd_cases.rs"]
mod crd_cases;

#[path = "kube_real/chart.rs"]
mod chart;
#[path = "kube_real/cluster.rs"]
mod cluster;
#[path = "kube_real/controller.rs"]
mod controller;
#[path = "kube_real/examples.rs"]
mod examples;
#[path = "kube_real/fleet.rs"]
mod fleet;
#[path = "kube_real/helm_upgrade.rs"]
mod helm_upgrade;
#[path = "kube_real/kustomize.rs"]
mod kustomize;
#[path = "kube_real/leader.rs"]
mod leader;
#[path = "kube_real/policy.rs"]
mod policy;
#[path = "kube_real/rbac.rs"]
mod rbac;
#[path = "kube_real/relist.rs"]
mod relist;
#[path = "kube_real/schema.rs"]
mod schema;
#[path = "kube_real/tags_from.rs"]
mod tags_from;
// NB: scenarios of the stand-in suite that need nothing of the stand-in's own (a held write,
// an injected error), run here as they are, on the real server (`crate::Env` is this file's).
#[path = "controller_e2e/deletion.rs"]
mod e2e_deletion;
#[allow(dead_code)] // NB: its first scenario has a real-server version of its own (fleet.rs).
#[path = "controller_e2e/observe.rs"]
mod e2e_observe;
#[path = "controller_e2e/selector.rs"]
mod e2e_selector;
#[path = "controller_e2e/tag_service.rs"]
mod e2e_tag_service;
#[path = "controller_e2e/tags_from.rs"]
mod e2e_tags_from;
#[path = "kube_real/watch_namespace.rs"]
mod watch_namespace;

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use cluster::Cluster;
use support::processes::{CloudEmulator, Controller, ControllerOptions, POD_NAMESPACE};
use support::runner;

use chart::*;
use controller::*;
use e2e_deletion::*;
use e2e_observe::an_observe_binding_that_loses_a_conflict_reports_the_drift;
use e2e_selector::*;
use e2e_tag_service::*;
use e2e_tags_from::*;
use examples::*;
use fleet::*;
use helm_upgrade::*;
use kustomize::*;
use leader::*;
use policy::*;
use rbac::*;
use relist::*;
use schema::*;
use tags_from::*;
use watch_namespace::*;

/// The CRDs, by name.
pub const CRDS: [&str; 3] = [
    "crd/tagproviders.tagbinder.io",
    "crd/resourcetagbindings.tagbinder.io",
    "crd/tagpolicies.tagbinder.io",
];

/// Cloud resources (apiGroups) and their tags at start, each used by one scenario.
const CLOUD: &[(&str, &[(&str, &str)])] = &[
    ("ready-g1", &[]),
    ("ready-g2", &[("team", "web")]),
    ("columns-g1", &[]),
    ("drift-g1", &[]),
    ("orphan-g1", &[]),
    ("suspend-g1", &[("env", "legacy")]),
    ("relist-g1", &[]),
    ("relist-g2", &[]),
    ("watchns-g1", &[]),
    ("tagsfrom-g1", &[]),
    ("obsconflict-g1", &[]),
    ("suspdel-g1", &[]),
    ("blocked-g1", &[]),
    ("blockedns-g1", &[]),
    ("conflict-g1", &[]),
    ("reqat-g1", &[]),
    ("leader-g1", &[]),
    ("leader-g2", &[]),
    ("leader-g3", &[]),
];

/// What the scenarios share.
pub struct Env {
    // NB: fields drop in order: the controller before the cluster, the cluster (which stops
    // the servers) before the directory that holds their files.
    pub controller: Controller,
    pub cloud: CloudEmulator,
    pub cluster: Cluster,
    /// A client of the cluster as its admin.
    pub client: kube::Client,
    /// What `tagbinder crd | kubectl apply -f -` printed: standard output, and the
    /// apiserver's warnings on standard error.
    pub crd_apply: (String, String),
    pub dir: tempfile::TempDir,
}

impl Env {
    /// A scratch directory of a scenario's own.
    pub fn scratch(&self, name: &str) -> std::path::PathBuf {
        let path = self.dir.path().join("scratch").join(name);
        std::fs::create_dir_all(&path).expect("a scratch directory");
        path
    }

    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("a scratch directory");
        // NB: with kube-controller-manager, so that the chart's Deployment gets its Pod.
        let cluster = Cluster::start(&dir.path().join("cluster"), true);
        let crd_apply = install_crds(&cluster).await;
        install_chart_rbac(&cluster).await;
        let client = admin_client(&cluster).await;
        let cloud = CloudEmulator::start(dir.path(), CLOUD).await;
        let controller = Controller::start_with_kubeconfig(
            &cluster.controller,
            dir.path(),
            ControllerOptions {
                identity: "tagbinder-real",
                leader_election: true,
                namespace: None,
            },
        );
        Env {
            controller,
            cloud,
            cluster,
            client,
            crd_apply,
            dir,
        }
    }
}

/// `tagbinder crd | kubectl apply -f -`, then `kubectl wait --for condition=established`, as
/// the README says; what the apply printed (standard output and error).
async fn install_crds(cluster: &Cluster) -> (String, String) {
    let crds = std::process::Command::new(env!("CARGO_BIN_EXE_tagbinder"))
        .arg("crd")
        .output()
        .expect("tagbinder crd runs");
    assert!(crds.status.success(), "tagbinder crd");
    let crds = String::from_utf8(crds.stdout).expect("UTF-8 CRDs");
    let applied = cluster.kubectl(&["apply", "-f", "-"], Some(&crds)).await;
    assert!(
        applied.ok,
        "the real apiserver refuses the CRDs of `tagbinder crd`:\n{}",
        applied.stderr
    );
    let mut wait = vec!["wait", "--for", "condition=established", "--timeout=60s"];
    wait.extend(CRDS);
    cluster.kubectl_ok(&wait, None).await;
    (applied.stdout, applied.stderr)
}

/// A kube client as the admin, from the cluster's kubeconfig.
async fn admin_client(cluster: &Cluster) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(&cluster.admin).expect("admin.kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .expect("a client configuration from admin.kubeconfig");
    kube::Client::try_from(config).expect("a kube client")
}

fn main() -> ExitCode {
    let scenarios = vec![
        scenario!(the_crds_install_with_kubectl_and_are_established),
        scenario!(the_admission_policy_refuses_a_binding_that_breaks_a_deny_policy),
        scenario!(the_apiserver_refuses_each_bad_binding_with_the_schemas_message),
        scenario!(the_apiserver_admits_valid_objects_and_refuses_immutable_changes),
        scenario!(printer_columns_read_as_the_readme_shows),
        scenario!(the_chart_grants_the_controller_exactly_its_verbs),
        scenario!(a_binding_becomes_ready_on_the_real_apiserver),
        scenario!(drift_is_corrected_and_a_changed_spec_prunes_on_the_real_apiserver),
        scenario!(orphan_and_suspend_leave_the_cloud_alone_on_the_real_apiserver),
        scenario!(the_chart_installs_and_its_pod_is_admitted_as_restricted),
        scenario!(the_kustomization_applies_and_its_pod_is_admitted_as_restricted),
        scenario!(the_watch_namespace_install_grants_the_namespaced_controller_enough),
        scenario!(helm_upgrade_changes_the_crds_and_uninstall_keeps_them_and_the_bindings),
        scenario!(a_restarted_apiserver_breaks_the_watches_and_the_controller_carries_on),
        scenario!(two_providers_reaching_one_resource_decide_by_age_on_the_real_apiserver),
        scenario!(
            a_selector_follows_the_resources_that_gain_and_lose_its_tags_on_the_real_apiserver
        ),
        scenario!(an_observe_binding_reports_drift_and_writes_nothing_on_the_real_apiserver),
        scenario!(a_requested_reconcile_runs_at_once_and_is_echoed_on_the_real_apiserver),
        scenario!(a_standby_takes_over_after_sigterm_and_after_sigkill_on_the_real_apiserver),
        scenario!(every_example_folder_applies_with_kubectl),
        scenario!(namespace_labels_and_provider_defaults_render_on_the_real_apiserver),
        scenario!(a_selector_binding_follows_the_resources_that_carry_its_tags),
        scenario!(an_observe_binding_that_loses_a_conflict_reports_the_drift),
        scenario!(deleting_a_suspended_binding_leaves_its_tags),
        scenario!(a_deletion_without_credentials_is_stalled_until_orphaned),
        scenario!(a_deletion_in_a_namespace_no_longer_allowed_is_stalled_until_allowed),
        scenario!(the_tag_service_converges_prunes_and_reports_a_missing_resource),
        scenario!(tags_from_kubernetes_follow_their_sources_in_both_hosts),
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
        let mut passed =
            runner::run(env.clone(), scenarios, filtered_out, Duration::from_secs(150)).await;
        let refused = forbidden_calls(&env.cluster);
        if !refused.is_empty() {
            println!("RBAC refused calls of the controller (the chart's grants are short):");
            for call in &refused {
                println!("    {call}");
            }
            passed = false;
        }
        let calls = write_calls(
            &env.cluster,
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("target/api-calls-real.json"),
        );
        println!(
            "{calls} distinct API calls of the controller on the real apiserver written to target/api-calls-real.json"
        );
        if !passed {
            println!("--- last lines of the controller's log:");
            let logs = env.controller.logs();
            let lines: Vec<&str> = logs.lines().collect();
            for line in &lines[lines.len().saturating_sub(100)..] {
                println!("{line}");
            }
            println!(
                "--- last lines of kube-apiserver's log:\n{}",
                env.cluster.log_tail("kube-apiserver", 40)
            );
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
