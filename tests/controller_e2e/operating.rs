//! Scenarios of running the operator: health and metrics, leader election, missing CRDs, a
//! namespaced install, watches that break, and a standby that takes over.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::json;

use crate::support::apiserver::{ApiServer, RecordedCall};
use crate::support::fixtures::{Crds, Tenant, eventually, tags, version};
use crate::support::processes::{Controller, ControllerOptions, POD_NAMESPACE};
use crate::{Env, NAMESPACED_OPERATOR, OPERATOR, WATCHED_NAMESPACE};

const LEASE: &str = "tagbinder-leader";

async fn holder(client: &kube::Client) -> Result<Option<String>, String> {
    let lease = Api::<Lease>::namespaced(client.clone(), POD_NAMESPACE)
        .get_opt(LEASE)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("no Lease yet")?;
    Ok(lease.spec.and_then(|s| s.holder_identity))
}

async fn wait_holder(client: &kube::Client, identity: &str) {
    eventually(&format!("{identity} holds the Lease"), || async {
        match holder(client).await? {
            Some(h) if h == identity => Ok(()),
            other => Err(format!("holder {other:?}")),
        }
    })
    .await;
}

async fn wait_endpoint(controller: &Controller, path: &str, code: u16, body: &str) -> String {
    eventually(&format!("{path} answers {code} with {body:?}"), || async {
        let (got, text) = controller.endpoint(path).await;
        if got == code && text.contains(body) {
            Ok(text)
        } else {
            Err(format!("{got} {text}"))
        }
    })
    .await
}

pub async fn health_and_metrics_endpoints_answer(env: Arc<Env>) {
    wait_endpoint(&env.controller, "/healthz", 200, "ok").await;
    wait_endpoint(&env.controller, "/readyz", 200, "ok").await;
    let metrics = wait_endpoint(
        &env.controller,
        "/metrics",
        200,
        "tagbinder_cloud_requests_total{cloud=\"alibaba\",action=\"TagResources\",outcome=\"ok\",provider=\"",
    )
    .await;
    for expected in [
        "tagbinder_reconcile_total{result=\"ok\"}",
        "tagbinder_reconcile_duration_seconds_count",
        "tagbinder_cloud_requests_total{cloud=\"alibaba\",action=\"ListTagResources\",outcome=\"ok\",provider=\"",
        "tagbinder_drift_corrections_total",
        "tagbinder_bindings{ready=\"true\",reason=\"Synced\"}",
        "tagbinder_cloud_rate_limit{provider=\"",
        "tagbinder_round_bindings_count{provider=\"",
        "tagbinder_time_to_ready_seconds_count",
        "tagbinder_pending_intents ",
    ] {
        // NB: the other scenarios' bindings are converging meanwhile.
        if !metrics.contains(expected) {
            wait_endpoint(&env.controller, "/metrics", 200, expected).await;
        }
    }
}

pub async fn the_leader_holds_a_lease_in_the_pod_namespace(env: Arc<Env>) {
    wait_holder(&env.client, OPERATOR).await;
    let lease = Api::<Lease>::namespaced(env.client.clone(), POD_NAMESPACE)
        .get(LEASE)
        .await
        .expect("the Lease");
    let spec = lease.spec.expect("a Lease spec");
    assert!(
        spec.renew_time.is_some() && spec.lease_duration_seconds.is_some(),
        "{spec:?}"
    );
    let created = env.server.calls().iter().any(|c| {
        c.is(OPERATOR, "create", "leases") && c.call.namespace.as_deref() == Some(POD_NAMESPACE)
    });
    assert!(
        created,
        "the controller created the Lease in {POD_NAMESPACE}"
    );
}

async fn run_to_exit(
    env: &Env,
    server: &ApiServer,
    identity: &str,
    namespace: Option<&str>,
) -> String {
    let mut controller = Controller::start(
        server,
        &env.scratch(identity),
        ControllerOptions {
            identity,
            leader_election: false,
            namespace,
        },
    );
    let status = controller.exited(Duration::from_secs(30)).await;
    assert_eq!(status.code(), Some(1), "{}", controller.logs());
    controller.logs()
}

pub async fn a_missing_crd_is_named_in_the_error(env: Arc<Env>) {
    let (no_bindings, _) = env.own_server(Crds::OnlyProviders).await;
    let logs = run_to_exit(
        &env,
        &no_bindings,
        "tagbinder-nocrd-bindings",
        Some("team-a"),
    )
    .await;
    assert!(
        logs.contains("the CRD resourcetagbindings.tagbinder.io is not installed"),
        "{logs}"
    );
    let probes: Vec<RecordedCall> = no_bindings
        .calls()
        .into_iter()
        .filter(|c| c.is("tagbinder-nocrd-bindings", "list", "resourcetagbindings"))
        .collect();
    assert!(
        !probes.is_empty()
            && probes
                .iter()
                .all(|c| c.call.namespace.as_deref() == Some("team-a")),
        "with --namespace, bindings are probed in that namespace only: {probes:?}"
    );

    let (no_providers, _) = env.own_server(Crds::OnlyBindings).await;
    let logs = run_to_exit(&env, &no_providers, "tagbinder-nocrd-providers", None).await;
    assert!(
        logs.contains("the CRD tagproviders.tagbinder.io is not installed"),
        "{logs}"
    );
}

/// What the chart's RBAC allows a controller that watches [`WATCHED_NAMESPACE`] (see the
/// chart's `watchNamespace`).
fn namespaced_rbac_allows(call: &RecordedCall) -> bool {
    let c = &call.call;
    let namespace = c.namespace.as_deref();
    match c.resource.as_str() {
        // NB: both cluster-scoped; the chart grants them by a ClusterRole in every mode.
        "tagproviders" | "tagpolicies" => {
            namespace.is_none() && matches!(c.verb.as_str(), "get" | "list" | "watch")
        }
        // NB: a list or watch by `metadata.name` names the namespace, as the chart's
        // resourceNames grant requires.
        "namespaces" => {
            matches!(c.verb.as_str(), "get" | "list" | "watch")
                && c.name.as_deref() == Some(WATCHED_NAMESPACE)
        }
        "resourcetagbindings" | "events" => namespace == Some(WATCHED_NAMESPACE),
        // NB: the credentials namespace only (the release namespace, by default).
        "secrets" => namespace == Some(POD_NAMESPACE),
        "leases" => namespace == Some(POD_NAMESPACE),
        _ => false,
    }
}

pub async fn a_namespaced_controller_needs_no_cluster_wide_access(env: Arc<Env>) {
    let (server, client) = env.own_server(Crds::Both).await;
    server.deny(|c| c.user == NAMESPACED_OPERATOR && !namespaced_rbac_allows(c));
    let elsewhere = Tenant::new(&client, &env.cloud.url, "elsewhere").await;
    elsewhere
        .create(&elsewhere.binding("web", &["elsewhere-g1"], &[("env", "prod")]))
        .await;
    let tenant = Tenant::new(&client, &env.cloud.url, "scoped").await;
    assert_eq!(tenant.namespace, WATCHED_NAMESPACE);
    tenant
        .create(&tenant.binding("web", &["scoped-g1"], &[("env", "prod")]))
        .await;
    let _controller = Controller::start(
        &server,
        &env.scratch(NAMESPACED_OPERATOR),
        ControllerOptions {
            identity: NAMESPACED_OPERATOR,
            leader_election: true,
            namespace: Some(WATCHED_NAMESPACE),
        },
    );

    tenant.ready("web").await;
    assert_eq!(env.cloud.tags("scoped-g1").await, tags(&[("env", "prod")]));
    let other = elsewhere
        .bindings
        .get("web")
        .await
        .expect("the other binding");
    assert!(
        other.status.is_none() && other.metadata.finalizers.is_none(),
        "another namespace is not touched"
    );
    assert_eq!(env.cloud.tags("elsewhere-g1").await, tags(&[]));
    let denied: Vec<RecordedCall> = server
        .calls()
        .into_iter()
        .filter(|c| c.user == NAMESPACED_OPERATOR && !namespaced_rbac_allows(c))
        .collect();
    assert!(
        denied.is_empty(),
        "calls namespaced RBAC would deny: {denied:?}"
    );
}

fn count(server: &ApiServer, user: &str, verb: &str) -> usize {
    server
        .calls()
        .iter()
        .filter(|c| c.is(user, verb, "resourcetagbindings"))
        .count()
}

pub async fn a_dropped_watch_resumes_and_an_expired_one_lists_again(env: Arc<Env>) {
    const USER: &str = "tagbinder-watch";
    let (server, client) = env.own_server(Crds::Both).await;
    let tenant = Tenant::new(&client, &env.cloud.url, "watch").await;
    let _controller = Controller::start(
        &server,
        &env.scratch(USER),
        ControllerOptions {
            identity: USER,
            leader_election: false,
            namespace: None,
        },
    );
    tenant
        .create(&tenant.binding("web", &["watch-g1"], &[("env", "prod")]))
        .await;
    tenant.ready("web").await;
    let (watches, lists) = (count(&server, USER, "watch"), count(&server, USER, "list"));

    server.drop_watches();
    eventually("the watch of bindings resumes", || async {
        let now = count(&server, USER, "watch");
        if now > watches {
            Ok(())
        } else {
            Err(format!("{now} watches"))
        }
    })
    .await;
    let resumed = server
        .calls()
        .into_iter()
        .rev()
        .find(|c| c.is(USER, "watch", "resourcetagbindings"));
    let from = resumed.and_then(|c| c.resource_version).unwrap_or_default();
    assert!(
        from.parse::<u64>().is_ok_and(|rv| rv > 0),
        "resumed from a resourceVersion: {from:?}"
    );
    change_and_converge(&env, &tenant, "staging", 2).await;
    assert_eq!(
        count(&server, USER, "list"),
        lists,
        "a resumed watch needs no new list"
    );

    // A change the watch has not seen, then the history is compacted: 410, and a new list.
    let bump = Secret {
        metadata: ObjectMeta {
            name: Some("bump".into()),
            ..ObjectMeta::default()
        },
        ..Secret::default()
    };
    Api::<Secret>::namespaced(client.clone(), &tenant.namespace)
        .create(&PostParams::default(), &bump)
        .await
        .expect("create a Secret");
    server.compact();
    server.drop_watches();
    eventually("bindings are listed again after 410 Gone", || async {
        let now = count(&server, USER, "list");
        if now > lists {
            Ok(())
        } else {
            Err(format!("{now} lists"))
        }
    })
    .await;
    change_and_converge(&env, &tenant, "dev", 3).await;
}

async fn change_and_converge(env: &Env, tenant: &Tenant, value: &str, generation: i64) {
    let patch = json!({"spec": {"tags": {"env": value}}});
    tenant
        .bindings
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch");
    tenant
        .wait("web", &format!("Ready for generation {generation}"), |b| {
            b.status.as_ref().and_then(|s| s.observed_generation) == Some(generation)
                && crate::support::fixtures::is_true(b, "Ready")
        })
        .await;
    assert_eq!(env.cloud.tags("watch-g1").await, tags(&[("env", value)]));
}

fn writes_by(server: &ApiServer, user: &str) -> Vec<RecordedCall> {
    server
        .calls()
        .into_iter()
        .filter(|c| {
            c.user == user
                && matches!(
                    c.call.verb.as_str(),
                    "create" | "update" | "patch" | "delete"
                )
        })
        .filter(|c| c.call.resource != "leases")
        .collect()
}

pub async fn a_standby_takes_over_when_the_leader_stops(env: Arc<Env>) {
    const FIRST: &str = "tagbinder-leader-a";
    const SECOND: &str = "tagbinder-leader-b";
    let (server, client) = env.own_server(Crds::Both).await;
    let tenant = Tenant::new(&client, &env.cloud.url, "leader").await;
    let start = |identity: &str| {
        Controller::start(
            &server,
            &env.scratch(identity),
            ControllerOptions {
                identity,
                leader_election: true,
                namespace: None,
            },
        )
    };
    let mut leader = start(FIRST);
    wait_holder(&client, FIRST).await;
    tenant
        .create(&tenant.binding("first", &["leader-g1"], &[("env", "prod")]))
        .await;
    let converged = tenant.ready("first").await;

    let standby = start(SECOND);
    wait_endpoint(
        &standby,
        "/readyz",
        503,
        "standby: waiting for the Lease tagbinder-system/tagbinder-leader",
    )
    .await;
    wait_endpoint(&leader, "/readyz", 200, "ok").await;
    let writes = writes_by(&server, SECOND);
    assert!(writes.is_empty(), "a standby writes nothing: {writes:?}");

    leader.terminate();
    let status = leader.exited(Duration::from_secs(30)).await;
    assert!(
        status.success(),
        "SIGTERM stops the leader cleanly: {status}\n{}",
        leader.logs()
    );
    wait_holder(&client, SECOND).await;
    wait_endpoint(&standby, "/readyz", 200, "ok").await;

    tenant
        .create(&tenant.binding("second", &["leader-g2"], &[("env", "prod")]))
        .await;
    tenant.ready("second").await;
    assert_eq!(env.cloud.tags("leader-g2").await, tags(&[("env", "prod")]));
    assert!(
        tenant.status_writes(&server, SECOND, "second") >= 1,
        "the new leader reconciles"
    );
    // The new leader re-checks the converged binding without rewriting it.
    eventually("the new leader passes over both bindings twice", || async {
        let passes = tenant.passes(&standby).await;
        if passes >= 4 {
            Ok(())
        } else {
            Err(format!("{passes} passes"))
        }
    })
    .await;
    let first = tenant
        .bindings
        .get("first")
        .await
        .expect("the first binding");
    assert_eq!(
        version(&first),
        version(&converged),
        "no status rewrite after the takeover"
    );
}

/// A leader killed with SIGKILL releases nothing: the standby takes over once the Lease
/// expires (15 s without renewal), and reconciles.
pub async fn a_standby_takes_over_when_a_killed_leaders_lease_expires(env: Arc<Env>) {
    const FIRST: &str = "tagbinder-expiry-a";
    const SECOND: &str = "tagbinder-expiry-b";
    let (server, client) = env.own_server(Crds::Both).await;
    let tenant = Tenant::new(&client, &env.cloud.url, "expiry").await;
    let start = |identity: &str| {
        Controller::start(
            &server,
            &env.scratch(identity),
            ControllerOptions {
                identity,
                leader_election: true,
                namespace: None,
            },
        )
    };
    let mut leader = start(FIRST);
    wait_holder(&client, FIRST).await;
    tenant
        .create(&tenant.binding("first", &["expiry-g1"], &[("env", "prod")]))
        .await;
    tenant.ready("first").await;
    let standby = start(SECOND);
    wait_endpoint(
        &standby,
        "/readyz",
        503,
        "standby: waiting for the Lease tagbinder-system/tagbinder-leader",
    )
    .await;

    leader.kill().await;
    // NB: the Lease still names the killed leader until it expires.
    tenant
        .create(&tenant.binding("second", &["expiry-g2"], &[("env", "prod")]))
        .await;
    wait_holder(&client, SECOND).await;
    wait_endpoint(&standby, "/readyz", 200, "ok").await;
    tenant.ready("second").await;
    assert_eq!(env.cloud.tags("expiry-g2").await, tags(&[("env", "prod")]));
    assert!(
        tenant.status_writes(&server, SECOND, "second") >= 1,
        "the new leader reconciles"
    );
    assert_eq!(
        tenant.status_writes(&server, FIRST, "second"),
        0,
        "the killed leader wrote nothing"
    );
}
