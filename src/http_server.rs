//! The HTTP server of the emulator and of the controller's `/metrics`, `/healthz` and
//! `/readyz`: HTTP/1.1 with a bounded header read, a bounded request-body read and a
//! connection limit, so that slow, idle or half-sent requests cannot hold every file
//! descriptor of the process and block the other clients.
//!
//! Built from hyper's HTTP/1 connection builder (its `header_read_timeout`), a
//! [`tokio::sync::Semaphore`] of connection permits, tower-http's request-body timeout and
//! hyper-util's graceful shutdown; `axum::serve` offers none of the limits.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower_http::timeout::RequestBodyTimeoutLayer;

/// How long the server waits for a client before it gives up on it, and how many clients it
/// serves at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// Longest a client may take to send a request's line and headers, counted from when the
    /// server starts waiting for them (a new connection, or a kept-alive one between
    /// requests). The connection is closed when it runs out.
    pub header_read_timeout: Duration,
    /// Longest a request's body may take to arrive once its headers are in; a late body
    /// fails the request.
    pub body_read_timeout: Duration,
    /// Connections served at once. Further ones wait in the listen backlog until one closes
    /// (the header timeout bounds that wait), so the process keeps file descriptors for the
    /// rest of its work.
    pub max_connections: usize,
}

impl Default for ServerLimits {
    /// 10 seconds for the headers, 30 for a body, 512 connections.
    fn default() -> Self {
        ServerLimits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 512,
        }
    }
}

impl ServerLimits {
    /// Refuses limits that would serve nobody: no connection, or a zero timeout.
    pub fn check(&self) -> std::io::Result<()> {
        if self.max_connections == 0
            || self.header_read_timeout.is_zero()
            || self.body_read_timeout.is_zero()
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "the HTTP server needs at least one connection and non-zero timeouts: {self:?}"
                ),
            ));
        }
        Ok(())
    }
}

/// How long to wait after `accept` failed (out of file descriptors, say) before trying again.
const ACCEPT_RETRY: Duration = Duration::from_secs(1);

/// Serves `router` on `listener` within `limits` until `shutdown` completes, then stops
/// accepting and waits for the open connections to finish their requests.
///
/// Fails at once when the limits serve nobody ([`ServerLimits::check`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    limits.check()?;
    let router = router.layer(RequestBodyTimeoutLayer::new(limits.body_read_timeout));
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        // NB: the permit is taken before `accept`, so that at the limit new connections wait
        // in the kernel's backlog rather than in this process's file descriptors.
        let permit = tokio::select! {
            permit = Arc::clone(&permits).acquire_owned() => match permit {
                Ok(permit) => permit,
                // NB: the semaphore is never closed; should it be, stop serving.
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection; retrying in 1 s");
                    tokio::select! {
                        () = tokio::time::sleep(ACCEPT_RETRY) => continue,
                        () = &mut shutdown => break,
                    }
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let connection = graceful.watch(http.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        ));
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(error) = connection.await {
                // NB: a header timeout or a client gone mid-request ends up here; the client
                // is the one to tell, and it already knows.
                tracing::debug!(%error, "HTTP connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}
