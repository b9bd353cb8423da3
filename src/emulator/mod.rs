//! The emulator: every cloud's tag APIs, server side, on one port (DESIGN.md section 6).
//!
//! It shares no request-building or response-parsing code with [`crate::cloud`]: only the
//! signing primitives of [`crate::cloud::sign`], pinned to the official-SDK vectors.
//!
//! # Endpoints
//! - `/`: Alibaba Cloud RPC (`GET` query or `POST` form), every product chosen by `Version`
//!   (or `x-acs-version`), V1 and V3 signatures, the Tag service (`2018-08-28`) by ARN
//!   ([`alibaba`] module docs say what is checked, in which order, with which codes).
//! - `POST /` with `X-Amz-Target: ResourceGroupsTaggingAPI_20170126.<Op>`, a SigV4
//!   signature, or an STS form (`Version=2011-06-15`): AWS's Resource Groups Tagging API and
//!   STS GetCallerIdentity / AssumeRoleWithWebIdentity (see the [`aws`] module docs).
//! - `/v1/regions/{regionId}/tags:<operation>`: JD Cloud's resource-tag service
//!   (tagResources, unTagResources, describeResources; JSON bodies, JDCLOUD2 or JDCLOUD3
//!   signatures, per-resource results; see the [`jdcloud`] module docs).
//! - `GET /_emulator/state`: every resource and its tags,
//!   `{"resources": {cloud: {type: {id: {"region": "..", "tags": {..}}}}}}`, sorted.
//! - `GET /_emulator/stats`: cloud API requests counted since start or the last reset,
//!   `{"total": N, "outcomes": {outcome: n}, "requests": {cloud: {action: {outcome: n}}}}`,
//!   where outcome is `ok` or the error code answered (`Throttling.User`, ...) and action is
//!   the `Action` parameter (`-` when absent).
//! - `POST /_emulator/stats/reset`: zeroes the counts (204).
//! - `GET /_emulator/gate`: `{"paused", "waiting", "inFlight", "admitted"}` of the gate in
//!   front of the cloud endpoints; `POST /_emulator/gate/pause` makes every cloud request wait
//!   before it is handled, `POST /_emulator/gate/admit` `{"requests": n}` lets n through,
//!   `POST /_emulator/gate/resume` opens it (204 each). For tests that stop a client between
//!   two given requests without timing.
//! - `POST /_emulator/tags`: `{"cloud", "type", "id", "set": {k: v}, "remove": [k]}` changes a
//!   resource's tags out of band, bypassing signatures and tag rules; answers the resource,
//!   or 404 when it does not exist.
//!
//! The `/_emulator/` endpoints need no signature: they are for tests and benchmarks, and the
//! emulator must never listen beyond loopback (`tagbinder emulator` warns when it does). They
//! refuse a request whose `Host` or `Origin` is not loopback (DNS rebinding, cross-site pages;
//! see [`control`]).
//!
//! # State
//! Resources come from the inventory, or from the state file when it exists at start
//! (accounts always come from the inventory). With a state file, the state is written
//! atomically after every successful change and at shutdown.

mod alibaba;
mod args;
mod aws;
mod control;
mod faults;
#[cfg(test)]
mod fuzz;
mod gate;
mod inventory;
mod jdcloud;
mod metadata;
mod nonce;
mod stats;
mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use alibaba::{
    API_GATEWAY_VERSION, AlibabaConfig, AlibabaLimits, ECS_VERSION,
    LIST_PAGE_ENTRIES as ALIBABA_LIST_PAGE_ENTRIES, Product, TAG_SERVICE_VERSION, TagServiceLimits,
};
pub use args::{EmulatorArgs, run};
pub use aws::{AwsConfig, AwsRates, DEFAULT_ACCOUNT as AWS_DEFAULT_ACCOUNT};
pub use faults::FaultConfig;
pub use inventory::{
    ALIBABA, AWS, Account, CLOUDS, INVENTORY_API_VERSION, INVENTORY_KIND, Inventory,
    InventoryResource, JDCLOUD, account_uid,
};
pub use jdcloud::{JdcloudConfig, JdcloudLimits};

pub use crate::http_server::ServerLimits;

use self::faults::Faults;
use self::inventory::Accounts;
use self::nonce::NonceCache;
use self::stats::Stats;
use self::store::{SharedStore, Store};

/// Byte comparison whose time does not depend on where the inputs differ (signatures).
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Largest clock offset (`--clock-offset-secs`, [`FaultConfig::clock_offset`]) either way:
/// 100 years. NB: an offset that takes the clock out of the timestamp range cannot be applied,
/// and one silently ignored would let every request's timestamp pass the skew check.
pub const MAX_CLOCK_OFFSET_SECS: i64 = 100 * 366 * 24 * 60 * 60;

/// How long [`RunningEmulator::shutdown`] waits for open connections before it cuts them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// How to run an emulator.
#[derive(Clone, Debug)]
pub struct EmulatorConfig {
    /// Accounts and initial resources.
    pub inventory: Inventory,
    /// Where tags persist across runs; loaded at start when it exists.
    pub state_file: Option<PathBuf>,
    /// Entries per ListTagResources page (default: Alibaba Cloud's documented 50,
    /// [`ALIBABA_LIST_PAGE_ENTRIES`]; smaller exercises pagination harder).
    pub page_size: usize,
    /// Accepted distance between a request's timestamp and the server clock; a nonce is
    /// remembered at least this long (default 15 minutes).
    pub clock_skew: Duration,
    /// Injected faults (default none).
    pub faults: FaultConfig,
    /// Alibaba Cloud products, limits and tag rules (default: spec section 1 and 6).
    pub alibaba: AlibabaConfig,
    /// JD Cloud product lines, signing service names, limits and tag rules (default: spec
    /// sections 1, 4 and 5).
    pub jdcloud: JdcloudConfig,
    /// AWS pagination-token lifetime and per-action rates (spec aws-resource-groups-tagging.md).
    pub aws: AwsConfig,
    /// Header and body timeouts and the connection limit of the HTTP server.
    pub server: ServerLimits,
    /// Lifetime of the temporary credentials it issues (STS, metadata service); default:
    /// what STS was asked for, six hours for the metadata service.
    pub credentials_ttl: Option<Duration>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        EmulatorConfig {
            inventory: Inventory::default(),
            state_file: None,
            page_size: ALIBABA_LIST_PAGE_ENTRIES,
            clock_skew: Duration::from_secs(15 * 60),
            faults: FaultConfig::default(),
            alibaba: AlibabaConfig::default(),
            jdcloud: JdcloudConfig::default(),
            aws: AwsConfig::default(),
            server: ServerLimits::default(),
            credentials_ttl: None,
        }
    }
}

/// Why the emulator could not run.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The inventory file cannot be read or is invalid.
    #[error("inventory {}: {message}", path.display())]
    Inventory {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The emulator could not start (listen address, state file, invalid configuration).
    #[error("cannot start the emulator on {listen}: {source}")]
    Start {
        /// Address asked for.
        listen: SocketAddr,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The shutdown signal handler could not be installed.
    #[error("cannot wait for the shutdown signal: {0}")]
    Signal(#[source] std::io::Error),
    /// Stopping failed, e.g. the final state could not be written.
    #[error("emulator shutdown failed: {0}")]
    Shutdown(#[source] std::io::Error),
}

/// What every request handler shares.
#[derive(Debug)]
pub(crate) struct App {
    /// Where the emulator listens (the `HostId` of answers without a `Host` header).
    pub addr: SocketAddr,
    /// Access keys of every cloud.
    pub accounts: Accounts,
    /// Resources and tags.
    pub store: SharedStore,
    /// Signature nonces seen, scoped by cloud and access key.
    pub nonces: NonceCache,
    /// Injected faults.
    pub faults: Faults,
    /// Request counts.
    pub stats: Stats,
    /// Where cloud requests wait while a test holds them.
    pub gate: gate::Gate,
    /// Entries per list page.
    pub page_size: usize,
    /// Accepted timestamp distance.
    pub clock_skew: Duration,
    /// Alibaba Cloud rules.
    pub alibaba: AlibabaConfig,
    /// JD Cloud rules.
    pub jdcloud: JdcloudConfig,
    /// Lifetime of the temporary credentials it issues, when not the requested one.
    pub credentials_ttl: Option<Duration>,
    /// Metadata tokens issued (`PUT /latest/api/token`) and when they expire.
    pub metadata_tokens: std::sync::Mutex<std::collections::HashMap<String, jiff::Timestamp>>,
    /// AWS rules.
    pub aws: AwsConfig,
    /// The AWS side's issued credentials and rate buckets.
    pub aws_state: aws::AwsState,
    /// The one AWS account served (see the [`aws`] module docs).
    pub aws_account: String,
}

/// A running emulator. Dropping it stops serving without the final write of the state
/// (every change was already written); [`RunningEmulator::shutdown`] does both.
pub struct RunningEmulator {
    addr: SocketAddr,
    app: Arc<App>,
    stop: oneshot::Sender<()>,
    server: JoinHandle<std::io::Result<()>>,
    resumed: Option<Resumed>,
}

impl std::fmt::Debug for RunningEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningEmulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl RunningEmulator {
    /// How the emulator resumed from its state file, when it did.
    pub fn resumed(&self) -> Option<Resumed> {
        self.resumed
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The address it listens on (with the port picked when port 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops serving (open requests finish, for at most 10 seconds) and persists the state.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let RunningEmulator {
            app,
            stop,
            mut server,
            ..
        } = self;
        // NB: the server may have stopped on its own already; then nobody listens, and that
        // is the outcome wanted.
        let _ = stop.send(());
        let served = match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
            Ok(joined) => joined
                .map_err(std::io::Error::other)
                .and_then(|served| served),
            Err(_) => {
                tracing::warn!(
                    "emulator: connections still open after the grace period; closing them"
                );
                server.abort();
                Ok(())
            }
        };
        let persisted = app.store.persist().await;
        served.and(persisted)
    }
}

/// Starts serving on `listen` (port 0 picks a free port) in a background task.
///
/// Fails when the address cannot be bound, the inventory is invalid, the state file cannot
/// be read, or the page size is 0.
pub async fn start(listen: SocketAddr, config: EmulatorConfig) -> std::io::Result<RunningEmulator> {
    let invalid = |message: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, message);
    if config.page_size == 0 {
        return Err(invalid("the page size must be at least 1".to_string()));
    }
    config.server.check()?;
    if config.faults.clock_offset.as_secs().unsigned_abs() > MAX_CLOCK_OFFSET_SECS.unsigned_abs() {
        return Err(invalid(format!(
            "the clock offset of {} seconds is beyond the limit of {MAX_CLOCK_OFFSET_SECS} either way",
            config.faults.clock_offset.as_secs()
        )));
    }
    config
        .inventory
        .validate()
        .map_err(|error| invalid(format!("inventory: {error}")))?;
    let saved = match &config.state_file {
        Some(path) => store::load_state(path)?,
        None => None,
    };
    let (store, resumed) = match saved {
        Some(saved) => {
            inventory::validate_resources(&saved)
                .map_err(|error| invalid(format!("state file: {error}")))?;
            // NB: the saved state is the cloud's; the inventory's resources that it lacks are
            // added (a second example run in the same folder), the others keep their state.
            let (resources, resumed) = Resumed::merge(saved, &config.inventory.resources);
            (Store::from_resources(&resources), Some(resumed))
        }
        None => (Store::from_resources(&config.inventory.resources), None),
    };
    let aws_account = aws::account_of(&store.to_resources())
        .map_err(|error| invalid(format!("inventory: {error}")))?;
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let app = Arc::new(App {
        addr,
        accounts: Accounts::new(&config.inventory.accounts),
        store: SharedStore::new(store, config.state_file),
        nonces: NonceCache::new(nonce::DEFAULT_CAPACITY),
        faults: Faults::new(config.faults, Instant::now()),
        stats: Stats::default(),
        gate: gate::Gate::default(),
        page_size: config.page_size,
        clock_skew: config.clock_skew,
        alibaba: config.alibaba,
        jdcloud: config.jdcloud,
        credentials_ttl: config.credentials_ttl,
        metadata_tokens: std::sync::Mutex::default(),
        aws: config.aws,
        aws_state: aws::AwsState::default(),
        aws_account,
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(crate::http_server::serve(
        listener,
        router(Arc::clone(&app)),
        config.server,
        async move {
            // NB: a send and a dropped sender both mean "stop".
            let _ = stopped.await;
        },
    ));
    Ok(RunningEmulator {
        addr,
        app,
        stop,
        server,
        resumed,
    })
}

/// How a saved state and an inventory were merged at start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resumed {
    /// Resources of the saved state.
    pub saved: usize,
    /// Inventory resources the state lacked, added with their inventory tags.
    pub added: usize,
    /// Inventory resources the state holds already: their inventory tags are ignored.
    pub kept: usize,
}

impl Resumed {
    /// `saved` with the resources of `inventory` it lacks (by cloud, type and id).
    fn merge(
        mut saved: Vec<InventoryResource>,
        inventory: &[InventoryResource],
    ) -> (Vec<InventoryResource>, Resumed) {
        let key = |r: &InventoryResource| (r.cloud.clone(), r.resource_type.clone(), r.id.clone());
        let known: std::collections::BTreeSet<_> = saved.iter().map(key).collect();
        let mut resumed = Resumed {
            saved: saved.len(),
            ..Resumed::default()
        };
        for resource in inventory {
            if known.contains(&key(resource)) {
                resumed.kept += 1;
            } else {
                resumed.added += 1;
                saved.push(resource.clone());
            }
        }
        (saved, resumed)
    }
}

/// `/`: AWS (its target header, signature or STS form) or Alibaba Cloud's RPC.
async fn root(
    axum::extract::State(app): axum::extract::State<Arc<App>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    query: axum::extract::RawQuery,
    body: axum::body::Bytes,
) -> axum::response::Response {
    if aws::is_aws(&headers, &body) {
        aws::handle(&app, &method, &uri, &headers, &body).await
    } else {
        alibaba::rpc(axum::extract::State(app), method, uri, headers, query, body).await
    }
}

/// Every cloud's routes and the control endpoints, on one port.
fn router(app: Arc<App>) -> Router {
    let clouds = Router::new()
        .route("/", axum::routing::get(root).post(root))
        .merge(jdcloud::routes())
        .merge(metadata::routes())
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            faults::connection_faults,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&app),
            gate::gate,
        ));
    Router::new()
        .merge(clouds)
        .merge(
            control::routes().route_layer(axum::middleware::from_fn_with_state(
                Arc::clone(&app),
                control::loopback_only,
            )),
        )
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such emulator endpoint\n") })
        .with_state(app)
}
