//! The HTTP server of the emulator and of the controller's `/metrics`, `/healthz` and
//! `/readyz`: HTTP/1.1 with a bounded header read, a bounded request-body read and a
//! connection limit, so that slow, idle or half-sent requests cannot hold every file
//! descriptor of the process and block the other clients.
//!
//! At the connection limit, the server accepts the next connection anyway and closes the
//! oldest one that is not in a request (still waiting for its headers, or idle between
//! requests) to make room: slow clients that hold every connection cannot keep a client that
//! sends its request at once waiting behind them in the listen backlog until their header
//! timeout runs out. Only when every connection is in a request does the new one wait for a
//! connection to end. Handlers see the peer address as [`axum::extract::ConnectInfo`].
//!
//! Built from hyper's HTTP/1 connection builder (its `header_read_timeout`), a
//! [`tokio::sync::Semaphore`] of connection permits, tower-http's request-body timeout and
//! hyper-util's graceful shutdown; `axum::serve` offers none of the limits.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use http_body_util::BodyExt;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tower::ServiceExt;
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
    /// Connections served at once: at the limit, the oldest connection not in a request is
    /// closed for a new one; when all are in a request, new ones wait in the listen backlog
    /// until one closes. The process keeps file descriptors for the rest of its work.
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
    let open = Arc::new(OpenConnections::default());
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
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
        // NB: at the limit, one connection more than the limit is open for as long as the
        // closed one takes to let go of its permit (or, when every connection is in a
        // request, until one ends); further ones wait in the kernel's backlog.
        let permit = match Arc::clone(&permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                open.close_oldest_idle();
                tokio::select! {
                    permit = Arc::clone(&permits).acquire_owned() => match permit {
                        Ok(permit) => permit,
                        // NB: the semaphore is never closed; should it be, stop serving.
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "cannot set TCP_NODELAY");
        }
        let (id, state) = open.add();
        let connection = graceful.watch(http.serve_connection(
            TokioIo::new(stream),
            hyper::service::service_fn(serve_request(router.clone(), peer, Arc::clone(&state))),
        ));
        let open = Arc::clone(&open);
        tokio::spawn(async move {
            let _permit = permit;
            tokio::select! {
                ended = connection => if let Err(error) = ended {
                    // NB: a header timeout or a client gone mid-request ends up here; the
                    // client is the one to tell, and it already knows.
                    tracing::debug!(%error, "HTTP connection ended with an error");
                },
                () = state.close.notified() => {
                    tracing::debug!(%peer, "closed a connection not in a request, to make room");
                }
            }
            open.remove(id);
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// One request of a connection: the peer address in the request's extensions, and the
/// connection counted as in a request until the answer's body is sent (or dropped).
fn serve_request(
    router: Router,
    peer: SocketAddr,
    connection: Arc<Connection>,
) -> impl Fn(hyper::Request<hyper::body::Incoming>) -> Answer {
    move |mut request| {
        request.extensions_mut().insert(ConnectInfo(peer));
        let busy = InRequest::enter(Arc::clone(&connection));
        let router = router.clone();
        Box::pin(async move {
            let response = router.oneshot(request).await?;
            Ok(response.map(|body| {
                axum::body::Body::new(body.map_frame(move |frame| {
                    // NB: the body holds the mark until it is sent or dropped.
                    let _ = &busy;
                    frame
                }))
            }))
        })
    }
}

/// The answer to one request, as hyper awaits it.
type Answer =
    std::pin::Pin<Box<dyn Future<Output = Result<axum::response::Response, Infallible>> + Send>>;

/// What the accept loop knows of one open connection.
#[derive(Debug, Default)]
struct Connection {
    /// Requests being answered.
    requests: AtomicUsize,
    /// Told when the connection is to be closed to make room.
    close: Notify,
}

/// A request being answered on a connection, until dropped.
struct InRequest(Arc<Connection>);

impl InRequest {
    fn enter(connection: Arc<Connection>) -> Self {
        connection.requests.fetch_add(1, Ordering::SeqCst);
        InRequest(connection)
    }
}

impl Drop for InRequest {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The open connections, oldest first.
#[derive(Debug, Default)]
struct OpenConnections {
    inner: Mutex<(u64, BTreeMap<u64, Arc<Connection>>)>,
}

impl OpenConnections {
    fn add(&self) -> (u64, Arc<Connection>) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let id = inner.0;
        inner.0 += 1;
        let connection = Arc::new(Connection::default());
        inner.1.insert(id, Arc::clone(&connection));
        (id, connection)
    }

    fn remove(&self, id: u64) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.1.remove(&id);
    }

    /// Tells the oldest connection that is not in a request to close; false when every
    /// connection is in one.
    fn close_oldest_idle(&self) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let idle = inner
            .1
            .iter()
            .find(|(_, c)| c.requests.load(Ordering::SeqCst) == 0)
            .map(|(&id, c)| (id, Arc::clone(c)));
        match idle {
            Some((id, connection)) => {
                // NB: removed now, so that the next new connection closes another one.
                inner.1.remove(&id);
                connection.close.notify_one();
                true
            }
            None => false,
        }
    }
}
