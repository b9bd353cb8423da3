//! The HTTP endpoints `/metrics`, `/healthz` and `/readyz`, within their own connection
//! limits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use super::Metrics;
use crate::http_server::ServerLimits;

/// Limits of the metrics server: Prometheus and the kubelet's probes need a few connections;
/// the rest of the process keeps its file descriptors (the Kubernetes API, the clouds).
pub(super) const METRICS_SERVER: ServerLimits = ServerLimits {
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
pub(super) async fn serve_on(
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
