//! Leader election on a `coordination.k8s.io/v1` Lease: only the holder reconciles; a lost
//! lease stops reconciling at once; SIGTERM stops the controller and releases the lease.

use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use kube_lease_manager::LeaseManagerBuilder;

use super::metrics::Metrics;
use super::{RunArgs, run_controller, shutdown_signal};

/// Lease validity without renewal, seconds.
const LEASE_DURATION: u64 = 15;
/// Renew this long before expiry, seconds (also the clock skew tolerated between nodes).
const LEASE_GRACE: u64 = 5;
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
) -> Result<(), String> {
    let namespace = args.lease_namespace.clone().unwrap_or_else(pod_namespace);
    let manager = LeaseManagerBuilder::new(client.clone(), &args.lease_name)
        .with_namespace(&namespace)
        .with_identity(identity())
        .with_duration(LEASE_DURATION)
        .with_grace(LEASE_GRACE)
        .build()
        .await
        .map_err(|e| {
            format!(
                "leader election: cannot use Lease {namespace}/{}: {e}",
                args.lease_name
            )
        })?;
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    tracing::info!(lease = %args.lease_name, %namespace, "waiting for the lease");
    metrics.set_standby(Some(format!("{namespace}/{}", args.lease_name)));
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            state = manager.changed() => match state {
                Ok(true) => break,
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "leader election: lease not acquired"),
            },
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
                Ok(false) => break Err("lost the lease; stopped reconciling so that the new leader alone writes".to_string()),
                Err(error) => break Err(format!("leader election: cannot renew the lease: {error}")),
            },
        }
    };
    if let Err(error) = manager.release().await {
        tracing::warn!(%error, "cannot release the lease; it expires in {LEASE_DURATION}s");
    }
    result
}
