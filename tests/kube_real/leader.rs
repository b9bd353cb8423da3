//! Leader election on the real apiserver, on a cluster of the scenario's own (the shared
//! cluster's controller holds the chart's Lease there): two controllers, as the chart's
//! ServiceAccount with the chart's RBAC (`leaderElection.enabled=true`), one Lease. The standby
//! reconciles nothing; SIGTERM hands the Lease over within seconds (a standby reads the Lease
//! every second, and takes it once released: before, it slept until the released term ran
//! out, 5 to 15 s); after a SIGKILL the standby takes over once the Lease expires (15 s
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

/// Waits until `/readyz` answers `code`.
async fn wait_readyz(controller: &Controller, code: u16) -> String {
    eventually(&format!("/readyz answers {code}"), || async {
        let (now, body) = controller.endpoint("/readyz").await;
        if now == code {
            Ok(body)
        } else {
            Err(format!("{now} {body}"))
        }
    })
    .await
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
    let body = wait_readyz(&second, 503).await;
    assert!(
        body.contains("standby: waiting for the Lease tagbinder-system/tagbinder-leader"),
        "{body}"
    );
    wait_readyz(&first, 200).await;
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

    // SIGTERM: the leader releases the Lease and exits 0; the standby takes over at once.
    let mut first = first;
    first.terminate();
    let stopped = Instant::now();
    let status = first.exited(Duration::from_secs(30)).await;
    assert!(
        status.success(),
        "SIGTERM stops the leader cleanly: {status}\n{}",
        first.logs()
    );
    let exited = stopped.elapsed();
    wait_holder(&cluster, "tagbinder-leader-b").await;
    let handover = stopped.elapsed();
    assert!(
        handover < Duration::from_secs(5),
        "a released Lease is taken without waiting for it to expire: {handover:?} (the leader exited after {exited:?})\n{}\n{}",
        first.logs(),
        second.logs()
    );
    wait_readyz(&second, 200).await;
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
    wait_readyz(&third, 503).await;
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
