//! Leader election on a `coordination.k8s.io/v1` Lease: only the holder reconciles; a lost
//! lease stops reconciling at once; SIGTERM stops the controller and releases the lease, and a
//! standby takes a released lease within a second (a killed leader's, once it expires).

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::{Api, Client};
use kube_lease_manager::LeaseManagerBuilder;

use super::metrics::Metrics;
use super::{RunArgs, run_controller, shutdown_signal};

/// Lease validity without renewal, seconds.
const LEASE_DURATION: u64 = 15;
/// Renew this long before expiry, seconds (also the clock skew tolerated between nodes).
const LEASE_GRACE: u64 = 5;
/// How often a standby reads the Lease to see whether its holder released it (a leader that
/// stopped cleanly): without it, a standby waits for the released term to run out, as for a
/// leader that died.
const RELEASE_POLL: Duration = Duration::from_secs(1);
/// How long in-flight passes may take to finish on shutdown.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(20);

/// The namespace of this pod: `POD_NAMESPACE`, else the service account's, else `default`.
pub(super) fn pod_namespace() -> String {
    std::env::var("POD_NAMESPACE")
        .ok()
        .or_else(|| {
            std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace").ok()
        })
        .map(|ns| ns.trim().to_string())
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| "default".to_string())
}

/// True when the Lease exists and nobody holds it (its holder released it on shutdown).
async fn released_lease(leases: &Api<Lease>, name: &str) -> bool {
    match leases.get_opt(name).await {
        Ok(Some(lease)) => lease
            .spec
            .is_some_and(|spec| spec.holder_identity.is_none()),
        _ => false,
    }
}

/// This replica's identity in the Lease: `POD_NAME`, else a random id.
fn identity() -> String {
    std::env::var("POD_NAME")
        .unwrap_or_else(|_| format!("tagbinder-{}", uuid::Uuid::new_v4().simple()))
}

/// Waits for the lease, reconciles while holding it, and releases it on shutdown.
pub async fn run_as_leader(
    client: &Client,
    args: &RunArgs,
    metrics: Arc<Metrics>,
) -> Result<(), super::RunError> {
    let namespace = args.lease_namespace.clone().unwrap_or_else(pod_namespace);
    let identity = identity();
    let build = || async {
        LeaseManagerBuilder::new(client.clone(), &args.lease_name)
            .with_namespace(&namespace)
            .with_identity(identity.clone())
            .with_duration(LEASE_DURATION)
            .with_grace(LEASE_GRACE)
            .build()
            .await
            .map_err(|error| super::RunError::Lease {
                namespace: namespace.clone(),
                name: args.lease_name.clone(),
                error,
            })
    };
    let mut manager = build().await?;
    let leases: Api<Lease> = Api::namespaced(client.clone(), &namespace);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    tracing::info!(lease = %args.lease_name, %namespace, "waiting for the lease");
    metrics.set_standby(Some(format!("{namespace}/{}", args.lease_name)));
    let mut released = tokio::time::interval(RELEASE_POLL);
    released.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let free = tokio::select! {
            () = &mut shutdown => return Ok(()),
            state = manager.changed() => match state {
                Ok(true) => break,
                Ok(false) => false,
                Err(error) => {
                    tracing::warn!(%error, "leader election: lease not acquired");
                    false
                }
            },
            _ = released.tick() => released_lease(&leases, &args.lease_name).await,
        };
        if free {
            // NB: the manager sleeps until the old term expires before it looks again; a
            // new one reads the Lease now, and takes it.
            tracing::debug!("the lease was released; taking it");
            match build().await {
                Ok(fresh) => manager = fresh,
                Err(error) => tracing::warn!(%error, "leader election: lease not acquired"),
            }
        }
    }
    tracing::info!("lease acquired; reconciling");
    metrics.set_standby(None);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = run_controller(client.clone(), args, metrics, async move {
        let _ = stopped.await;
    });
    tokio::pin!(controller);
    let result = loop {
        tokio::select! {
            () = &mut controller => break Ok(()),
            () = &mut shutdown => {
                let _ = stop.send(());
                if tokio::time::timeout(SHUTDOWN_BOUND, &mut controller).await.is_err() {
                    tracing::warn!("in-flight passes did not finish in {SHUTDOWN_BOUND:?}; abandoning them");
                }
                break Ok(());
            }
            state = manager.changed() => match state {
                Ok(true) => {}
                Ok(false) => break Err(super::RunError::LeaseLost),
                Err(error) => break Err(super::RunError::LeaseRenewal(error)),
            },
        }
    };
    if let Err(error) = manager.release().await {
        tracing::warn!(%error, "cannot release the lease; it expires in {LEASE_DURATION}s");
    }
    result
}
