//! Leader election on the real apiserver, on a cluster of the scenario's own (the shared
//! cluster's controller holds the chart's Lease there): two controllers, as the chart's
//! ServiceAccount with the chart's RBAC (`leaderElection.enabled=true`), one Lease. The standby
//! reconciles nothing; SIGTERM hands the Lease over before its term would have run out (a
//! standby reads the Lease every second, and takes it once released: before, it looked again
//! only when its last view of the term ran out, up to 10 s later; this check passes either
//! way); after a SIGKILL the standby takes over once the Lease expires (15 s
//! without renewal).

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cluster::Cluster;
use crate::support::fixtures::{Tenant, eventually, tags};
use crate::support::processes::{Controller, ControllerOptions, POD_NAMESPACE};
use crate::{Env, admin_client, install_chart_rbac, install_crds};

/// The Lease's holder now, as `kubectl get lease` shows it.
async fn holder(cluster: &Cluster) -> String {
    let run = cluster
        .kubectl(
            &[
                "get",
                "lease/tagbinder-leader",
                "-n",
                POD_NAMESPACE,
                "-o",
                "jsonpath={.spec.holderIdentity}",
            ],
            None,
        )
        .await;
    if run.ok { run.stdout } else { String::new() }
}

async fn wait_holder(cluster: &Cluster, identity: &str) {
    eventually(&format!("{identity} holds the Lease"), || async {
        let now = holder(cluster).await;
        if now == identity {
            Ok(())
        } else {
            Err(format!("held by {now:?}"))
        }
    })
    .await;
}

/// The body of `/readyz` on a standby.
const STANDBY: &str = "standby: waiting for the Lease tagbinder-system/tagbinder-leader";

/// The Lease's `renewTime` as written, and when its term runs out.
async fn lease_term(cluster: &Cluster) -> (String, jiff::Timestamp) {
    let text = cluster
        .kubectl_ok(
            &[
                "get",
                "lease/tagbinder-leader",
                "-n",
                POD_NAMESPACE,
                "-o",
                "jsonpath={.spec.renewTime} {.spec.leaseDurationSeconds}",
            ],
            None,
        )
        .await;
    let (renewed, term) = text.split_once(' ').expect("renewTime and duration");
    let expiry = renewed
        .parse::<jiff::Timestamp>()
        .expect("an RFC 3339 renewTime")
        + jiff::SignedDuration::from_secs(term.parse().expect("leaseDurationSeconds"));
    (renewed.to_string(), expiry)
}

/// Waits until `/readyz` answers `code` with a body that holds `body` (before its caches
/// are synced, a controller answers 503 for that reason).
async fn wait_readyz(controller: &Controller, code: u16, body: &str) {
    eventually(&format!("/readyz answers {code} {body}"), || async {
        let (now, text) = controller.endpoint("/readyz").await;
        if now == code && text.contains(body) {
            Ok(())
        } else {
            Err(format!("{now} {text}"))
        }
    })
    .await;
}

async fn ready(cluster: &Cluster, namespace: &str, name: &str) {
    cluster
        .kubectl_ok(
            &[
                "wait",
                "--for=condition=Ready",
                &format!("rtb/{name}"),
                "-n",
                namespace,
                "--timeout=90s",
            ],
            None,
        )
        .await;
}

/// `tagbinder_passes_total`, all providers.
async fn passes(controller: &Controller) -> f64 {
    let (_, metrics) = controller.endpoint("/metrics").await;
    metrics
        .lines()
        .filter(|line| line.starts_with("tagbinder_passes_total{"))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub async fn a_standby_takes_over_after_sigterm_and_after_sigkill_on_the_real_apiserver(
    env: Arc<Env>,
) {
    let dir = env.dir.path().join("leader");
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let cluster_dir = dir.join("cluster");
    let cluster = tokio::task::spawn_blocking(move || Cluster::start(&cluster_dir, false))
        .await
        .expect("the cluster starts");
    install_crds(&cluster).await;
    install_chart_rbac(&cluster).await;
    let client = admin_client(&cluster).await;
    let start = |identity: &str| {
        Controller::start_with_kubeconfig(
            &cluster.controller,
            &dir,
            ControllerOptions {
                identity,
                leader_election: true,
                namespace: None,
            },
        )
    };
    let tenant = Tenant::new(&client, &env.cloud.url, "leader").await;
    let namespace = tenant.namespace.clone();

    let first = start("tagbinder-leader-a");
    wait_holder(&cluster, "tagbinder-leader-a").await;
    tenant
        .create(&tenant.binding("one", &["leader-g1"], &[("env", "prod")]))
        .await;
    ready(&cluster, &namespace, "one").await;
    let second = start("tagbinder-leader-b");
    wait_readyz(&second, 503, STANDBY).await;
    wait_readyz(&first, 200, "ok").await;
    // Two intervals of the leader: the standby has made no pass.
    let since = passes(&first).await;
    eventually("two more passes of the leader", || async {
        let now = passes(&first).await;
        if now >= since + 2.0 {
            Ok(())
        } else {
            Err(format!("{now} passes from {since}"))
        }
    })
    .await;
    assert_eq!(passes(&second).await, 0.0, "a standby reconciles nothing");
    let converged = cluster
        .kubectl_ok(
            &[
                "get",
                "rtb/one",
                "-n",
                &namespace,
                "-o",
                "jsonpath={.metadata.resourceVersion}",
            ],
            None,
        )
        .await;

    // SIGTERM: the leader releases the Lease and exits 0; the standby takes over before the
    // released term would have run out. NB: SIGTERM just after a renewal, so that the term
    // has about 15 s left.
    let renewed = lease_term(&cluster).await;
    let expiry = eventually("the leader renews the Lease", || async {
        let now = lease_term(&cluster).await;
        if now.0 != renewed.0 {
            Ok(now.1)
        } else {
            Err(format!("{now:?}"))
        }
    })
    .await;
    let mut first = first;
    first.terminate();
    let stopped = Instant::now();
    let status = first.exited(Duration::from_secs(30)).await;
    assert!(
        status.success(),
        "SIGTERM stops the leader cleanly: {status}\n{}",
        first.logs()
    );
    wait_holder(&cluster, "tagbinder-leader-b").await;
    let handover = stopped.elapsed();
    assert!(
        jiff::Timestamp::now() < expiry,
        "a released Lease is taken before its term would have run out ({expiry}): {handover:?} after SIGTERM\n{}",
        second.logs()
    );
    wait_readyz(&second, 200, "ok").await;
    tenant
        .create(&tenant.binding("two", &["leader-g2"], &[("env", "prod")]))
        .await;
    ready(&cluster, &namespace, "two").await;
    assert_eq!(env.cloud.tags("leader-g2").await, tags(&[("env", "prod")]));
    // The new leader passes over the converged binding without rewriting its status.
    let since = passes(&second).await;
    eventually("the new leader passes over both bindings", || async {
        let now = passes(&second).await;
        if now >= since + 2.0 {
            Ok(())
        } else {
            Err(format!("{now} passes from {since}"))
        }
    })
    .await;
    let after = cluster
        .kubectl_ok(
            &[
                "get",
                "rtb/one",
                "-n",
                &namespace,
                "-o",
                "jsonpath={.metadata.resourceVersion}",
            ],
            None,
        )
        .await;
    assert_eq!(after, converged, "no status rewrite after the takeover");

    // SIGKILL: nothing is released; a third replica takes over once the Lease expires.
    let third = start("tagbinder-leader-c");
    wait_readyz(&third, 503, STANDBY).await;
    let mut second = second;
    second.kill().await;
    // NB: the killed leader's term runs 15 s from its last renewal (every 10 s).
    let renewed = cluster
        .kubectl_ok(
            &[
                "get",
                "lease/tagbinder-leader",
                "-n",
                POD_NAMESPACE,
                "-o",
                "jsonpath={.spec.renewTime} {.spec.leaseDurationSeconds}",
            ],
            None,
        )
        .await;
    let (renewed, term) = renewed.split_once(' ').expect("renewTime and duration");
    let expiry = renewed
        .parse::<jiff::Timestamp>()
        .expect("an RFC 3339 renewTime")
        + jiff::SignedDuration::from_secs(term.parse().expect("leaseDurationSeconds"));
    tenant
        .create(&tenant.binding("three", &["leader-g3"], &[("env", "prod")]))
        .await;
    let before_expiry =
        expiry.duration_since(jiff::Timestamp::now()) - jiff::SignedDuration::from_secs(1);
    if before_expiry.is_positive() {
        tokio::time::sleep(before_expiry.unsigned_abs()).await;
    }
    assert_eq!(
        holder(&cluster).await,
        "tagbinder-leader-b",
        "the Lease names the killed leader until it expires"
    );
    assert_eq!(
        env.cloud.tags("leader-g3").await,
        tags(&[]),
        "nobody reconciles meanwhile"
    );
    wait_holder(&cluster, "tagbinder-leader-c").await;
    let late = jiff::Timestamp::now().duration_since(expiry);
    assert!(
        !late.is_negative() && late < jiff::SignedDuration::from_secs(10),
        "the standby takes over once the killed leader's term has run out: {late} after it"
    );
    ready(&cluster, &namespace, "three").await;
    assert_eq!(env.cloud.tags("leader-g3").await, tags(&[("env", "prod")]));
}
