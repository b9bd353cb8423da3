//! An emulated Kubernetes API server for end-to-end tests: in memory, over HTTP on loopback,
//! enough of the API for kube-rs clients and controllers (discovery, CRDs, namespaced and
//! cluster-scoped resources, status subresources, the four patch types, finalizers, watches
//! that resume or expire), with a request log and fault injection.
//!
//! Clients are told apart by their bearer token (the user name): each kubeconfig that
//! [`ApiServer::write_kubeconfig`] writes carries its own.
//!
//! What it does not check is listed in the README ("Testing against an emulated API server").

mod errors;
mod faults;
mod handlers;
mod patch;
mod paths;
mod selectors;
mod store;
mod types;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

/// One call as RBAC sees it (the format of `.ci/check-rbac.py`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Call {
    pub group: String,
    pub resource: String,
    pub subresource: Option<String>,
    /// The RBAC verb: get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    /// `None`: a cluster-scoped resource, or a list or watch across namespaces.
    pub namespace: Option<String>,
    /// `None` for collections (list, watch, create).
    pub name: Option<String>,
}

/// A call, who made it, and the `resourceVersion` it asked for.
#[derive(Clone, Debug)]
pub struct RecordedCall {
    pub user: String,
    pub call: Call,
    pub resource_version: Option<String>,
}

impl RecordedCall {
    /// True for `verb` on `resource` (`resource/subresource`) by `user`.
    pub fn is(&self, user: &str, verb: &str, resource: &str) -> bool {
        let named = match &self.call.subresource {
            Some(sub) => format!("{}/{sub}", self.call.resource),
            None => self.call.resource.clone(),
        };
        self.user == user && self.call.verb == verb && named == resource
    }

    /// True when the call names this object.
    pub fn on(&self, namespace: &str, name: &str) -> bool {
        self.call.namespace.as_deref() == Some(namespace) && self.call.name.as_deref() == Some(name)
    }
}

/// What the handlers share.
struct Shared {
    state: Mutex<store::State>,
    log: Mutex<Vec<RecordedCall>>,
    faults: faults::Faults,
    drops: tokio::sync::watch::Sender<u64>,
    core_namespaced: Vec<String>,
    address: String,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, store::State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn log(&self, call: RecordedCall) {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(call);
    }
}

/// A running server; clones share it. It serves until the runtime stops.
#[derive(Clone)]
pub struct ApiServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
}

impl ApiServer {
    /// Starts a server with only the built-in types and the `default` namespace.
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("a local address");
        let (changes, _) = tokio::sync::broadcast::channel(4096);
        let shared = Arc::new(Shared {
            state: Mutex::new(store::State::new(changes)),
            log: Mutex::new(Vec::new()),
            faults: faults::Faults::default(),
            drops: tokio::sync::watch::channel(0).0,
            core_namespaced: types::core_namespaced_plurals(),
            address: addr.to_string(),
        });
        let app = axum::Router::new()
            .fallback(handlers::handle)
            .with_state(shared.clone());
        tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                eprintln!("emulated API server stopped: {error}");
            }
        });
        ApiServer { shared, addr }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client that authenticates as `user`.
    pub fn client(&self, user: &str) -> kube::Client {
        let mut config = kube::Config::new(self.url().parse().expect("a valid URL"));
        config.headers.push((
            http::header::AUTHORIZATION,
            format!("Bearer {user}").parse().expect("a valid header"),
        ));
        kube::Client::try_from(config).expect("a kube client")
    }

    /// Writes a kubeconfig that reaches this server as `user`.
    pub fn write_kubeconfig(&self, path: &Path, user: &str) {
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: emulated\n  cluster: {{server: \"{url}\"}}\n\
             users:\n- name: {user}\n  user: {{token: {user}}}\n\
             contexts:\n- name: emulated\n  context: {{cluster: emulated, user: {user}, namespace: default}}\n\
             current-context: emulated\n",
            url = self.url()
        );
        std::fs::write(path, text).expect("write the kubeconfig");
    }

    /// Every resource call so far, in order.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many objects of a resource (`group`, `plural`) satisfy `matches`: for benchmarks
    /// that poll thousands of objects, without listing them over HTTP.
    pub fn count(
        &self,
        group: &str,
        plural: &str,
        matches: impl Fn(&serde_json::Value) -> bool,
    ) -> usize {
        self.shared.lock().count(group, plural, matches)
    }

    /// The next `times` calls that `matches` accepts answer `code` (a `Status` with the
    /// matching reason), and do nothing else.
    pub fn fail_next(
        &self,
        times: usize,
        code: u16,
        matches: impl Fn(&RecordedCall) -> bool + Send + Sync + 'static,
    ) {
        self.shared.faults.add(Box::new(matches), Some(times), code);
    }

    /// Every call that `matches` accepts answers 403 Forbidden, as missing RBAC would.
    pub fn deny(&self, matches: impl Fn(&RecordedCall) -> bool + Send + Sync + 'static) {
        self.shared.faults.add(Box::new(matches), None, 403);
    }

    /// Every call that `matches` accepts is held for `delay` before it is served (and not
    /// served at all if [`ApiServer::abandon_held`] is called meanwhile).
    pub fn delay(
        &self,
        delay: std::time::Duration,
        matches: impl Fn(&RecordedCall) -> bool + Send + Sync + 'static,
    ) {
        self.shared.faults.add_delay(Box::new(matches), delay);
    }

    /// The calls being held now are answered 503 and never served: what a call in flight
    /// when its client is killed amounts to, had the client died just before sending it.
    pub fn abandon_held(&self) {
        self.shared.faults.abandon_held();
    }

    /// Ends every open watch, as an apiserver restart or a load balancer would.
    pub fn drop_watches(&self) {
        self.shared.drops.send_modify(|epoch| *epoch += 1);
    }

    /// Forgets the change history: a watch resumed from an older resourceVersion gets an
    /// ERROR event 410 Expired, and the client must list again.
    pub fn compact(&self) {
        self.shared.lock().compact();
    }
}
