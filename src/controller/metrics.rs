//! Prometheus metrics (DESIGN.md section 7) and the HTTP endpoints `/metrics`, `/healthz` and
//! `/readyz`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::cloud::CallObserver;
use crate::http_server::ServerLimits;

/// Labels of `tagbinder_reconcile_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `ok` for a pass that ended without an error (whatever its Ready condition), else the
    /// error's category (`kube_error`, `cloud_error`, `cleanup_error`, `finalizer_error`).
    pub result: String,
}

/// Labels of `tagbinder_cloud_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloudLabels {
    /// `alibaba` or `jdcloud`.
    pub cloud: String,
    /// API action.
    pub action: String,
    /// `ok` or the error code.
    pub outcome: String,
}

/// Labels of `tagbinder_bindings`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReadyLabels {
    /// `true` or `false`.
    pub ready: String,
}

/// Labels of `tagbinder_drifted_resources`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BindingLabels {
    /// The binding's namespace.
    pub namespace: String,
    /// The binding's name.
    pub binding: String,
}

/// Labels of `tagbinder_passes_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabels {
    /// The TagProvider's name.
    pub provider: String,
}

/// Every metric of the controller.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    passes: Family<ProviderLabels, Counter>,
    reconcile_duration: Histogram,
    cloud_requests: Family<CloudLabels, Counter>,
    drift_corrections: Counter,
    policy_evaluations: Counter,
    bindings: Family<ReadyLabels, Gauge>,
    drifted: Family<BindingLabels, Gauge>,
    /// Each binding's Ready state, and how many are Ready.
    readiness: Mutex<(HashMap<String, bool>, usize)>,
    caches_synced: AtomicBool,
    /// The Lease a standby replica waits for.
    standby_for: Mutex<Option<String>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tagbinder");
        let reconciles = Family::<ResultLabels, Counter>::default();
        let passes = Family::<ProviderLabels, Counter>::default();
        let reconcile_duration = Histogram::new(exponential_buckets(0.01, 2.0, 12));
        let cloud_requests = Family::<CloudLabels, Counter>::default();
        let drift_corrections = Counter::default();
        let policy_evaluations = Counter::default();
        let bindings = Family::<ReadyLabels, Gauge>::default();
        let drifted = Family::<BindingLabels, Gauge>::default();
        registry.register(
            "reconcile",
            "Reconcile passes by result",
            reconciles.clone(),
        );
        registry.register(
            "passes",
            "Passes of bindings against the cloud (observe, plan, write), by TagProvider",
            passes.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of reconcile passes",
            reconcile_duration.clone(),
        );
        registry.register(
            "cloud_requests",
            "Cloud API requests by cloud, action and outcome",
            cloud_requests.clone(),
        );
        registry.register(
            "drift_corrections",
            "Tags rewritten after they drifted in the cloud",
            drift_corrections.clone(),
        );
        registry.register(
            "policy_evaluations",
            "Bindings judged against the TagPolicies (one per binding checked before its pass)",
            policy_evaluations.clone(),
        );
        registry.register("bindings", "Bindings by Ready status", bindings.clone());
        // NB: one series per Observe binding only (Enforce bindings have none): the
        // cardinality is that of the audits a cluster runs, and an alert can name the binding.
        registry.register(
            "drifted_resources",
            "Resources of an Observe binding that differ from its declared tags",
            drifted.clone(),
        );
        Metrics {
            registry,
            reconciles,
            passes,
            reconcile_duration,
            cloud_requests,
            drift_corrections,
            policy_evaluations,
            bindings,
            drifted,
            readiness: Mutex::new((HashMap::new(), 0)),
            caches_synced: AtomicBool::new(false),
            standby_for: Mutex::new(None),
        }
    }
}

impl Metrics {
    /// Counts one pass and its duration.
    pub fn reconciled(&self, result: &str, seconds: f64) {
        self.reconciles
            .get_or_create(&ResultLabels {
                result: result.to_string(),
            })
            .inc();
        self.reconcile_duration.observe(seconds);
    }

    /// Counts one binding's pass against the cloud through `provider`.
    pub fn passed(&self, provider: &str) {
        self.passes
            .get_or_create(&ProviderLabels {
                provider: provider.to_string(),
            })
            .inc();
    }

    /// Counts one binding judged against the TagPolicies.
    pub fn policy_evaluated(&self) {
        self.policy_evaluations.inc();
    }

    /// Counts corrected drift.
    pub fn drift_corrected(&self, keys: usize) {
        self.drift_corrections.inc_by(keys as u64);
    }

    /// Records a binding's Ready state (`None`: the binding is gone).
    pub fn set_ready(&self, binding: &str, ready: Option<bool>) {
        // NB: the lock is held for a map update only; a panic cannot happen inside it.
        let mut readiness = self.readiness.lock().unwrap_or_else(|e| e.into_inner());
        let (states, ready_count) = &mut *readiness;
        // NB: counted as they change: recounting the map on every pass made a fleet's start-up
        // quadratic.
        let before = match (ready, states.get_mut(binding)) {
            (Some(ready), Some(state)) => Some(std::mem::replace(state, ready)),
            (Some(ready), None) => states.insert(binding.to_string(), ready),
            (None, _) => states.remove(binding),
        };
        if before == Some(true) {
            *ready_count -= 1;
        }
        if ready == Some(true) {
            *ready_count += 1;
        }
        let ready = *ready_count;
        let not_ready = states.len() - ready;
        drop(readiness);
        for (label, count) in [("true", ready), ("false", not_ready)] {
            self.bindings
                .get_or_create(&ReadyLabels {
                    ready: label.to_string(),
                })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    /// Records an Observe binding's drifted resources; `None` (an Enforce binding, or one
    /// that is gone) removes its series.
    pub fn set_drifted(&self, namespace: &str, binding: &str, resources: Option<u32>) {
        let labels = BindingLabels {
            namespace: namespace.to_string(),
            binding: binding.to_string(),
        };
        match resources {
            Some(resources) => {
                self.drifted
                    .get_or_create(&labels)
                    .set(i64::from(resources));
            }
            None => {
                self.drifted.remove(&labels);
            }
        }
    }

    /// Marks the caches as synced (`/readyz` answers 200 from then on).
    pub fn set_caches_synced(&self) {
        self.caches_synced.store(true, Ordering::Relaxed);
    }

    /// Marks this replica as a standby waiting for `lease` (`None`: it holds the lease now).
    /// `/readyz` answers 503 while it waits, saying so: only the leader is ready (the chart's
    /// Recreate strategy and PodDisruptionBudget are built on that).
    pub fn set_standby(&self, lease: Option<String>) {
        *self.standby_for.lock().unwrap_or_else(|e| e.into_inner()) = lease;
    }

    /// `/readyz`: 200 once the caches synced; 503 before, naming the Lease a standby waits for.
    fn readiness_probe(&self) -> (StatusCode, String) {
        if self.caches_synced.load(Ordering::Relaxed) {
            return (StatusCode::OK, "ok".to_string());
        }
        let standby = self.standby_for.lock().unwrap_or_else(|e| e.into_inner());
        match standby.as_ref() {
            Some(lease) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("standby: waiting for the Lease {lease}"),
            ),
            None => (
                StatusCode::SERVICE_UNAVAILABLE,
                "caches not synced".to_string(),
            ),
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // NB: encoding into a String cannot fail (fmt::Write on String is infallible).
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl CallObserver for Metrics {
    fn observe(&self, cloud: &'static str, action: &'static str, outcome: &str) {
        self.cloud_requests
            .get_or_create(&CloudLabels {
                cloud: cloud.to_string(),
                action: action.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }
}

/// Limits of the metrics server: Prometheus and the kubelet's probes need a few connections;
/// the rest of the process keeps its file descriptors (the Kubernetes API, the clouds).
const METRICS_SERVER: ServerLimits = ServerLimits {
    header_read_timeout: Duration::from_secs(10),
    body_read_timeout: Duration::from_secs(10),
    max_connections: 64,
};

/// Serves `/metrics`, `/healthz` and `/readyz` until the task is dropped.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    // NB: the address bound (with the port picked for port 0), for whoever reads the logs.
    let addr = listener.local_addr()?;
    tracing::info!(%addr, "serving metrics and health");
    serve_on(listener, metrics, METRICS_SERVER, std::future::pending()).await
}

/// Serves the endpoints on `listener` within `limits` until `shutdown` completes.
async fn serve_on(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(metrics);
    crate::http_server::serve(listener, app, limits, shutdown).await
}

async fn metrics_handler(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}

async fn readyz(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    metrics.readiness_probe()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bindings_gauge_follows_each_binding_through_its_changes() {
        let metrics = Metrics::default();
        let gauge = |metrics: &Metrics| {
            let text = metrics.encode();
            ["true", "false"].map(|label| {
                let prefix = format!("tagbinder_bindings{{ready=\"{label}\"}} ");
                text.lines()
                    .find_map(|line| line.strip_prefix(prefix.as_str()))
                    .map(str::to_string)
            })
        };
        let steps: [(&str, Option<bool>, [&str; 2]); 7] = [
            ("ns/a", Some(true), ["1", "0"]),
            ("ns/b", Some(false), ["1", "1"]),
            ("ns/a", Some(true), ["1", "1"]),
            ("ns/a", Some(false), ["0", "2"]),
            ("ns/b", Some(true), ["1", "1"]),
            ("ns/b", None, ["0", "1"]),
            ("ns/gone", None, ["0", "1"]),
        ];
        for (binding, ready, [want_ready, want_not]) in steps {
            metrics.set_ready(binding, ready);
            assert_eq!(
                gauge(&metrics),
                [Some(want_ready.to_string()), Some(want_not.to_string())],
                "after {binding} {ready:?}"
            );
        }
    }

    #[test]
    fn exposes_the_metric_names_of_the_design() {
        let metrics = Metrics::default();
        metrics.reconciled("ready", 0.2);
        metrics.observe("alibaba", "TagResources", "ok");
        metrics.drift_corrected(2);
        metrics.set_ready("ns/a", Some(true));
        metrics.set_ready("ns/b", Some(false));
        let text = metrics.encode();
        for expected in [
            "tagbinder_reconcile_total{result=\"ready\"} 1",
            "tagbinder_reconcile_duration_seconds_count 1",
            "tagbinder_cloud_requests_total{cloud=\"alibaba\",action=\"TagResources\",outcome=\"ok\"} 1",
            "tagbinder_drift_corrections_total 2",
            "tagbinder_bindings{ready=\"true\"} 1",
            "tagbinder_bindings{ready=\"false\"} 1",
        ] {
            assert!(text.contains(expected), "{expected} in\n{text}");
        }
        metrics.set_ready("ns/b", None);
        metrics.set_drifted("ns", "audit", Some(3));
        assert!(
            metrics
                .encode()
                .contains("tagbinder_drifted_resources{namespace=\"ns\",binding=\"audit\"} 3")
        );
        metrics.set_drifted("ns", "audit", None);
        assert!(!metrics.encode().contains("tagbinder_drifted_resources{"));
        assert!(
            metrics
                .encode()
                .contains("tagbinder_bindings{ready=\"false\"} 0")
        );
    }

    #[test]
    fn a_standby_is_not_ready_and_says_why() {
        let metrics = Metrics::default();
        assert_eq!(metrics.readiness_probe().0, StatusCode::SERVICE_UNAVAILABLE);
        metrics.set_standby(Some("tagbinder-system/tagbinder-leader".into()));
        let (code, body) = metrics.readiness_probe();
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body,
            "standby: waiting for the Lease tagbinder-system/tagbinder-leader"
        );
        metrics.set_standby(None);
        metrics.set_caches_synced();
        assert_eq!(
            metrics.readiness_probe(),
            (StatusCode::OK, "ok".to_string())
        );
    }

    /// A listener and a server on it with `limits`, stopped when the test ends.
    async fn server(limits: ServerLimits) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve_on(
            listener,
            Arc::new(Metrics::default()),
            limits,
            std::future::pending(),
        ));
        addr
    }

    /// A connection that sent the start of a request and then nothing.
    async fn half_sent(addr: SocketAddr) -> tokio::net::TcpStream {
        use tokio::io::AsyncWriteExt;
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            .await
            .unwrap();
        stream
    }

    /// Sends a whole `GET /healthz` on a new connection; the answer's status line.
    async fn healthz(addr: SocketAddr) -> tokio::task::JoinHandle<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        tokio::spawn(async move {
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await.unwrap();
            String::from_utf8_lossy(&answer)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
    }

    /// Fails the test instead of hanging it when `future` never completes.
    async fn eventually<T>(future: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(60), future)
            .await
            .expect("still waiting after a minute")
    }

    #[tokio::test]
    async fn half_sent_requests_are_cut_off_and_do_not_block_other_clients() {
        let addr = server(ServerLimits {
            header_read_timeout: Duration::from_millis(200),
            body_read_timeout: Duration::from_secs(10),
            max_connections: 4,
        })
        .await;
        let mut slow = Vec::new();
        for _ in 0..12 {
            slow.push(half_sent(addr).await);
        }
        let answer = eventually(healthz(addr).await).await.unwrap();
        assert_eq!(answer, "HTTP/1.1 200 OK");
        for mut stream in slow {
            use tokio::io::AsyncReadExt;
            // NB: the server closes the connection (EOF, or a reset when it had unread bytes).
            let mut rest = Vec::new();
            let read = eventually(stream.read_to_end(&mut rest)).await;
            assert!(
                read.is_err() || !String::from_utf8_lossy(&rest).contains("200 OK"),
                "a half-sent request was answered: {read:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_connection_beyond_the_limit_closes_the_oldest_one_not_in_a_request() {
        use tokio::io::AsyncReadExt;
        let addr = server(ServerLimits {
            header_read_timeout: Duration::from_secs(600),
            body_read_timeout: Duration::from_secs(600),
            max_connections: 2,
        })
        .await;
        let mut first = half_sent(addr).await;
        let mut second = half_sent(addr).await;
        // NB: both connections are held by half-sent requests for longer than the test: a
        // server that made the third wait for one of them would never answer it.
        let answer = eventually(healthz(addr).await).await.unwrap();
        assert_eq!(answer, "HTTP/1.1 200 OK");
        let mut rest = Vec::new();
        let read = eventually(first.read_to_end(&mut rest)).await;
        assert!(
            read.is_err() || rest.is_empty(),
            "the oldest is closed, unanswered"
        );
        let mut byte = [0u8; 1];
        let still_open =
            tokio::time::timeout(Duration::from_millis(300), second.read(&mut byte)).await;
        assert!(still_open.is_err(), "the second is kept: {still_open:?}");
    }

    #[tokio::test]
    async fn limits_that_serve_nobody_are_refused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let refused = serve_on(
            listener,
            Arc::new(Metrics::default()),
            ServerLimits {
                max_connections: 0,
                ..METRICS_SERVER
            },
            std::future::pending(),
        )
        .await;
        assert_eq!(
            refused.unwrap_err().kind(),
            std::io::ErrorKind::InvalidInput
        );
    }
}
