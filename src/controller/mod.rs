//! `tagbinder run`: the operator. kube-runtime's `Controller` hosts the same reconcile pass as
//! the CLI, with a finalizer, status written by server-side apply, events, metrics, health
//! endpoints and leader election (DESIGN.md sections 4 and 7).

mod binding;
mod cache;
mod context;
mod events;
mod finish;
pub mod fleet;
mod intent_log;
mod leader;
pub mod metrics;
mod pass;
mod policies;
mod policy_scan;
mod policy_status;
mod provider_status;
mod rounds;
pub mod status;
#[cfg(test)]
mod tests;
mod watches;

use std::net::SocketAddr;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::ListParams;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Config as ControllerConfig, Controller};
use kube::runtime::reflector;
use kube::runtime::watcher::{self, watcher};
use kube::runtime::{WatchStreamExt, predicates};
use kube::{Api, Client, ResourceExt};

pub use binding::{error_policy, reconcile};
pub use cache::Synced;
pub use context::Context;
use watches::{
    after_first_list, announce_all, marks_synced, namespace_watch, pass_trigger, policy_watch,
    report_undecodable, secret_watch, strip_unused_metadata,
};

use crate::api::{ResourceTagBinding, TagPolicy, TagProvider};
use crate::reconcile::provider::{ClientOptions, http_client};

/// The finalizer that lets a binding prune before it goes.
pub const FINALIZER: &str = "tagbinder.io/cleanup";
/// Field manager of every write.
pub const FIELD_MANAGER: &str = "tagbinder";

/// Errors of a reconcile, with a category for metrics and messages.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kubernetes API failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[source] kube::Error),
    /// The finalizer machinery failed (adding/removing the finalizer, or the pass inside).
    #[error("{0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// Pruning on deletion did not finish.
    #[error("cleanup not finished: {0}")]
    Cleanup(String),
}

impl Error {
    /// The category as a metric label.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube_error",
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.metric_label(),
                _ => "finalizer_error",
            },
            Error::Cleanup(_) => "cleanup_error",
        }
    }
}

/// `tagbinder run` flags.
#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    /// Watch ResourceTagBindings in this namespace only (default: all namespaces).
    #[arg(long, value_name = "NS")]
    pub namespace: Option<String>,
    /// Address of `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, value_name = "ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: SocketAddr,
    /// Reconcile only while holding a Lease (for more than one replica).
    #[arg(long)]
    pub leader_election: bool,
    /// Name of the Lease.
    #[arg(long, default_value = "tagbinder-leader")]
    pub lease_name: String,
    /// Namespace of the Lease (default: the pod's namespace, from POD_NAMESPACE or the service
    /// account, else `default`).
    #[arg(long)]
    pub lease_namespace: Option<String>,
    /// The only namespace whose Secrets the controller reads: every TagProvider's
    /// `spec.credentials.secretRef` must name a Secret there (as cert-manager's cluster
    /// resource namespace). Default: the pod's namespace, from POD_NAMESPACE or the service
    /// account, else `default`.
    #[arg(long, value_name = "NS")]
    pub credentials_namespace: Option<String>,
    /// Bindings reconciled at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: u16,
    /// The kubeconfig file to use instead of the in-cluster config and `KUBECONFIG`.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<std::path::PathBuf>,
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
    /// The cluster's name, the value of `tagsFrom[].valueFrom.clusterName` (chart value
    /// `clusterName`).
    #[arg(long, value_name = "NAME")]
    pub cluster_name: Option<String>,
}

/// Why `tagbinder run` could not start, or stopped: the flag, the CRD or the Lease, and
/// what the API server or the library said.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// `--kubeconfig` cannot be read or used.
    #[error("--kubeconfig {}: {error}", .path.display())]
    Kubeconfig {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        error: kube::config::KubeconfigError,
    },
    /// `--context` cannot be used.
    #[error("--context {context}: {error}")]
    Context {
        /// The context.
        context: String,
        /// Why.
        #[source]
        error: kube::config::KubeconfigError,
    },
    /// Neither the in-cluster config nor a kubeconfig.
    #[error("cannot reach the Kubernetes API (in-cluster config, then KUBECONFIG): {0}")]
    Infer(#[source] kube::config::InferConfigError),
    /// The client cannot be built from the config.
    #[error("cannot build the Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// A CRD is not installed.
    #[error(
        "the CRD {0} is not installed; install the CRDs with `tagbinder crd | kubectl apply -f -`"
    )]
    CrdMissing(&'static str),
    /// A CRD's objects cannot be listed.
    #[error("cannot list {crd}: {error}")]
    CrdUnlisted {
        /// The CRD.
        crd: &'static str,
        /// Why.
        #[source]
        error: kube::Error,
    },
    /// The leader-election Lease cannot be used.
    #[error("leader election: cannot use Lease {namespace}/{name}: {error}")]
    Lease {
        /// The Lease's namespace.
        namespace: String,
        /// The Lease's name.
        name: String,
        /// Why.
        #[source]
        error: kube_lease_manager::LeaseManagerError,
    },
    /// Another replica took the Lease.
    #[error("lost the lease; stopped reconciling so that the new leader alone writes")]
    LeaseLost,
    /// The Lease could not be renewed.
    #[error("leader election: cannot renew the lease: {0}")]
    LeaseRenewal(#[source] kube_lease_manager::LeaseManagerError),
}

/// The Kubernetes client: from `--kubeconfig` and `--context` when given, else the
/// in-cluster config, then `KUBECONFIG` (or `~/.kube/config`), as kubectl finds it.
async fn client(args: &RunArgs) -> Result<Client, RunError> {
    use kube::config::{Config, KubeConfigOptions, Kubeconfig};
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = match (&args.kubeconfig, &args.context) {
        (Some(path), _) => {
            let kubeconfig = |error| RunError::Kubeconfig {
                path: path.clone(),
                error,
            };
            Config::from_custom_kubeconfig(
                Kubeconfig::read_from(path).map_err(kubeconfig)?,
                &options,
            )
            .await
            .map_err(kubeconfig)?
        }
        (None, Some(context)) => {
            Config::from_kubeconfig(&options)
                .await
                .map_err(|error| RunError::Context {
                    context: context.clone(),
                    error,
                })?
        }
        (None, None) => Config::infer().await.map_err(RunError::Infer)?,
    };
    Client::try_from(config).map_err(RunError::Client)
}

/// Runs the operator until SIGTERM or Ctrl-C.
pub async fn run(args: RunArgs) -> Result<(), RunError> {
    let client = client(&args).await?;
    check_crds(&client, args.namespace.as_deref()).await?;
    let metrics = Arc::new(metrics::Metrics::default());
    let metrics_server = tokio::spawn(metrics::serve(args.metrics_addr, metrics.clone()));
    let result = if args.leader_election {
        leader::run_as_leader(&client, &args, metrics.clone()).await
    } else {
        run_controller(client, &args, metrics, shutdown_signal()).await;
        Ok(())
    };
    metrics_server.abort();
    result
}

/// Fails with a clear message when a CRD is missing. With `--namespace`, bindings are probed in
/// that namespace only: a namespaced install has no cluster-wide access to them.
async fn check_crds(client: &Client, namespace: Option<&str>) -> Result<(), RunError> {
    let probe = ListParams::default().limit(1);
    let bindings: Api<ResourceTagBinding> = match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let providers: Api<TagProvider> = Api::all(client.clone());
    for (crd, result) in [
        (
            "resourcetagbindings.tagbinder.io",
            bindings.list_metadata(&probe).await.map(|_| ()),
        ),
        (
            "tagproviders.tagbinder.io",
            providers.list_metadata(&probe).await.map(|_| ()),
        ),
    ] {
        match result {
            Ok(()) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {
                return Err(RunError::CrdMissing(crd));
            }
            Err(error) => return Err(RunError::CrdUnlisted { crd, error }),
        }
    }
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(term) => term,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops the controller");
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Runs the controller until `shutdown` resolves.
pub async fn run_controller(
    client: Client,
    args: &RunArgs,
    metrics: Arc<metrics::Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let bindings_api: Api<cache::Watched> = match &args.namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    };
    let (triggers, triggered) = futures::channel::mpsc::unbounded();
    let fleet = Arc::new(fleet::Fleet::new(triggers));
    let bindings = Arc::new(cache::Bindings::default());
    let (meta_store, meta_writer) = reflector::store::<cache::Meta>();
    let bindings_synced = Synced::default();
    let mark_synced = marks_synced(&bindings_synced);
    let (cache_feed, fleet_feed) = (bindings.clone(), fleet.clone());
    let unrecorded = Arc::new(context::Unrecorded::default());
    let unrecorded_feed = unrecorded.clone();
    let announcer = fleet.clone();
    let (undecodable, undecodable_reports) = futures::channel::mpsc::unbounded();
    let (forget_cached, forget_claimed) = (bindings.clone(), fleet.clone());
    // NB: one watch of full objects, stripped, feeds the compact cache, the claim index and the
    // kept records; kube-runtime's controller and its store get only the metadata. An object
    // that does not decode is set aside (and reported), never the watch's failure.
    let bindings_stream = reflector::reflector(
        meta_writer,
        watcher(bindings_api, watcher::Config::default().any_semantic())
            .try_filter_map(move |event| {
                let event = match cache::decoded(event) {
                    Ok(event) => Some(event),
                    Err(bad) => {
                        forget_cached.forget(&bad.key);
                        forget_claimed.forget(&bad.key);
                        let _ = undecodable.unbounded_send(*bad);
                        None
                    }
                };
                futures::future::ready(Ok(event))
            })
            .modify(strip_unused_metadata)
            .inspect_ok(move |event| {
                cache_feed.apply(event);
                fleet_feed.watched(event);
                if let watcher::Event::Apply(binding) | watcher::Event::InitApply(binding) = event {
                    unrecorded_feed.seen(binding);
                }
            })
            .inspect_ok(mark_synced)
            .map_ok(cache::metadata_event),
    )
    .default_backoff()
    .applied_objects()
    .predicate_filter(pass_trigger, Default::default())
    .try_filter_map(move |meta| {
        let key = cache::key_of(&meta);
        // NB: a (re)list's bindings go through the fleet's queue, a few hundred at a time;
        // a change goes to kube-runtime at once.
        let handed = if announcer.listing() {
            announcer.request(&key);
            None
        } else {
            announcer.announce(key);
            Some(meta)
        };
        futures::future::ready(Ok(handed))
    });

    let (providers_store, providers_writer) = reflector::store();
    let providers_synced = Synced::default();
    let providers_stream = reflector::reflector(
        providers_writer,
        watcher(
            Api::<TagProvider>::all(client.clone()),
            watcher::Config::default().any_semantic(),
        ),
    )
    .default_backoff()
    .inspect_ok(marks_synced(&providers_synced))
    .applied_objects()
    .predicate_filter(predicates::generation, Default::default())
    .try_filter(after_first_list(&providers_synced));

    let (policies, policies_stream) = policy_watch(&client).await;

    let credentials_namespace = args
        .credentials_namespace
        .clone()
        .unwrap_or_else(leader::pod_namespace);
    tracing::info!(namespace = %credentials_namespace, "credentials Secrets are read in this namespace only");
    let (secrets_stream, secret_stores) = secret_watch(&client, &credentials_namespace);
    let (namespaces_stream, namespaces_store, namespaces_synced) =
        namespace_watch(&client, args.namespace.as_deref());

    let http = match http_client() {
        Ok(http) => http,
        Err(error) => {
            tracing::error!(%error, "cannot build the HTTP client");
            return;
        }
    };
    let options = ClientOptions {
        http,
        endpoint_override: None,
        retry: Default::default(),
        // NB: each provider's clients get an observer with its name (`Context::cloud_client`).
        observer: None,
        default_rate_limit: true,
    };
    let mut ctx = Context::new(
        client,
        bindings.clone(),
        providers_store.clone(),
        providers_synced.clone(),
        metrics.clone(),
        options,
        fleet.clone(),
    )
    .with_credentials_namespace(credentials_namespace)
    .with_secrets(secret_stores)
    .with_unrecorded(unrecorded)
    .with_namespaces(namespaces_store, namespaces_synced)
    .with_cluster_name(args.cluster_name.clone());
    if let Some(policies) = &policies {
        ctx = ctx.with_policies(policies.clone());
    }
    if args.namespace.is_none() {
        ctx = ctx.with_provider_status();
    }
    let ctx = Arc::new(ctx);
    let rounds = tokio::spawn(rounds::run(ctx.clone()));
    let reports = tokio::spawn(report_undecodable(ctx.clone(), undecodable_reports));
    let policy_writes = tokio::spawn(policy_status::run(ctx.clone()));
    let policy_scans = tokio::spawn(policy_scan::run(ctx.clone()));

    let by_provider = bindings.clone();
    let providers_for_secrets = providers_store.clone();
    let by_secret = bindings.clone();
    let ready_metrics = metrics.clone();
    let (provider_fleet, secret_fleet) = (fleet.clone(), fleet.clone());
    let (by_namespace, namespace_fleet) = (bindings.clone(), fleet.clone());
    let providers_for_namespaces = providers_store.clone();
    let policies_for_namespaces = policies.clone();
    let (by_policy, policy_fleet) = (bindings.clone(), fleet.clone());
    let policy_ctx = ctx.clone();
    let matched_before: std::sync::Mutex<std::collections::HashMap<String, Option<Vec<String>>>> =
        Default::default();
    tokio::spawn(async move {
        bindings_synced.wait().await;
        providers_synced.wait().await;
        ready_metrics.set_caches_synced();
    });
    // NB: when the signal came, so that everything after it shares one bound.
    let signalled = Arc::new(std::sync::OnceLock::new());
    let mark_signalled = signalled.clone();
    let shutdown = futures::FutureExt::shared(async move {
        shutdown.await;
        let _ = mark_signalled.set(tokio::time::Instant::now());
    });
    let controller = Controller::for_stream(bindings_stream, meta_store)
        .with_config(ControllerConfig::default().concurrency(args.concurrency))
        .watches_stream(providers_stream, move |provider: TagProvider| {
            let keys = by_provider.of_providers(&[provider.name_any()]);
            announce_all(&provider_fleet, &keys)
        })
        .watches_stream(secrets_stream, move |secret: PartialObjectMeta<Secret>| {
            let (namespace, name) = (secret.namespace().unwrap_or_default(), secret.name_any());
            let providers: Vec<String> = providers_for_secrets
                .state()
                .into_iter()
                .filter(|p| {
                    p.spec.credentials.as_ref().is_some_and(|c| {
                        c.secret_ref.namespace == namespace && c.secret_ref.name == name
                    })
                })
                .map(|p| p.name_any())
                .collect();
            announce_all(&secret_fleet, &by_secret.of_providers(&providers))
        })
        .watches_stream(
            namespaces_stream,
            move |namespace: PartialObjectMeta<Namespace>| {
                // NB: the bindings whose tagsFrom reads the namespace, and those whose
                // provider selects namespaces by label; announced together, they pass in one
                // round.
                let selecting: Vec<String> = providers_for_namespaces
                    .state()
                    .into_iter()
                    .filter(|p| p.spec.allowed_namespaces.is_some())
                    .map(|p| p.name_any())
                    .collect();
                let every = policies_for_namespaces
                    .as_ref()
                    .is_some_and(|policies| policies::selects_namespaces(&policies.now()));
                let keys = by_namespace.of_namespace(&namespace.name_any(), &selecting, every);
                announce_all(&namespace_fleet, &keys)
            },
        )
        // NB: the bindings of the providers the policy matches now or matched before (all,
        // when either match names none) are judged again; the others are not its concern,
        // and a pass of theirs would cost reads.
        .watches_stream(policies_stream, move |policy: TagPolicy| {
            let now = policies::matched_providers(&policy);
            // NB: the lock guards plain data; a panic while holding it cannot leave it torn.
            let mut seen = matched_before.lock().unwrap_or_else(|e| e.into_inner());
            // NB: a policy seen for the first time (`None` before) concerns its match only.
            let before = seen.insert(policy.name_any(), now.clone());
            let keys = match (now, before) {
                (Some(now), None) => by_policy.of_providers(&now),
                (Some(now), Some(Some(before))) => {
                    let providers: Vec<String> = now.into_iter().chain(before).collect();
                    by_policy.of_providers(&providers)
                }
                _ => by_policy.keys(),
            };
            // NB: a new, changed or deleted policy's status (its conditions at least) is news.
            policy_ctx.policy_status.changed();
            announce_all(&policy_fleet, &keys)
        })
        .reconcile_on(triggered)
        .graceful_shutdown_on(shutdown.clone())
        .run(binding::reconcile_cached, error_policy, ctx)
        .for_each(|result| async move {
            if let Err(error) = result {
                tracing::debug!(%error, "reconcile error");
            }
        });
    // NB: the passes in flight, then the rounds in flight, finish (their writes recorded in
    // status) within one bound from the signal, whatever they wait for.
    let bound = async {
        shutdown.await;
        tokio::time::sleep(SHUTDOWN_PATIENCE).await;
    };
    tokio::select! {
        () = controller => {}
        () = bound => {
            tracing::warn!("in-flight passes did not finish in {SHUTDOWN_PATIENCE:?}; abandoning them");
        }
    }
    reports.abort();
    policy_writes.abort();
    policy_scans.abort();
    fleet.stop();
    let deadline = signalled
        .get()
        .copied()
        .unwrap_or_else(tokio::time::Instant::now)
        + SHUTDOWN_PATIENCE;
    let mut rounds = rounds;
    if tokio::time::timeout_at(deadline, &mut rounds)
        .await
        .is_err()
    {
        tracing::warn!("a round did not finish in time; stopping it");
        rounds.abort();
    }
}

/// How long shutdown waits for the passes and rounds in flight.
const SHUTDOWN_PATIENCE: std::time::Duration = std::time::Duration::from_secs(20);
