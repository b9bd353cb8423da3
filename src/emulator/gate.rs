//! A gate in front of the cloud endpoints, for tests that must stop a client between two
//! given requests without relying on timing: while paused, every cloud request waits before
//! it is handled until the test admits it (`/_emulator/gate` endpoints, [`super::control`]).
//! Open by default; it then costs one atomic load per request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

use super::App;

/// Whether cloud requests wait, and how many do.
#[derive(Debug)]
pub(crate) struct Gate {
    paused: AtomicBool,
    /// Admissions granted and not yet used.
    admits: Semaphore,
    /// Requests waiting at the gate.
    waiting: AtomicU64,
    /// Requests past the gate and not yet answered.
    in_flight: AtomicU64,
    /// Requests admitted one by one since the last pause.
    admitted: AtomicU64,
}

impl Default for Gate {
    fn default() -> Self {
        Gate {
            paused: AtomicBool::new(false),
            admits: Semaphore::new(0),
            waiting: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            admitted: AtomicU64::new(0),
        }
    }
}

/// Takes one off a count when dropped (a request answered, admitted, or abandoned by its
/// client).
struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Gate {
    /// From now on, cloud requests wait until admitted.
    pub fn pause(&self) {
        // NB: admissions left over from before are void.
        self.admits.forget_permits(usize::MAX);
        self.admitted.store(0, Ordering::SeqCst);
        self.paused.store(true, Ordering::SeqCst);
    }

    /// Lets `count` requests through, waiting ones first.
    pub fn admit(&self, count: usize) {
        let count = count.min(Semaphore::MAX_PERMITS / 2);
        self.admitted.fetch_add(count as u64, Ordering::SeqCst);
        self.admits.add_permits(count);
    }

    /// Opens the gate: every request, waiting or to come, goes through.
    pub fn resume(&self) {
        self.paused.store(false, Ordering::SeqCst);
        self.admits.add_permits(Semaphore::MAX_PERMITS / 2);
    }

    /// `{"paused", "waiting", "inFlight", "admitted"}`.
    pub fn snapshot(&self) -> Value {
        json!({
            "paused": self.paused.load(Ordering::SeqCst),
            "waiting": self.waiting.load(Ordering::SeqCst),
            "inFlight": self.in_flight.load(Ordering::SeqCst),
            "admitted": self.admitted.load(Ordering::SeqCst),
        })
    }

    async fn pass(&self) {
        if !self.paused.load(Ordering::SeqCst) {
            return;
        }
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = InFlight(&self.waiting);
        // NB: the semaphore is never closed, so `acquire` only fails if it were; the request
        // then goes through rather than waiting forever.
        if let Ok(permit) = self.admits.acquire().await {
            permit.forget();
        }
    }
}

/// Middleware of the cloud routes: waits at the gate, and counts the request in flight until
/// it is answered.
pub(crate) async fn gate(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    app.gate.pass().await;
    app.gate.in_flight.fetch_add(1, Ordering::SeqCst);
    let _in_flight = InFlight(&app.gate.in_flight);
    next.run(request).await
}
