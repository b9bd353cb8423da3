//! Test-only control endpoints under `/_emulator/`, with no signature: state, statistics, and
//! out-of-band tag changes. They are why the emulator must never listen beyond loopback.
//!
//! They refuse (403) a request whose `Host` is not loopback, so that a web page cannot reach
//! them by DNS rebinding (its requests carry the attacker's host name), and a request whose
//! `Origin` is not a loopback origin, so that a page of another site cannot send them
//! cross-site requests. Accepted hosts: `localhost`, a loopback address (`127.0.0.0/8`,
//! `::1`), and the address the emulator listens on when it is a specific one. The peer must
//! be a loopback address too, whatever the headers say: with `--listen 0.0.0.0`, any host of
//! the network could otherwise send `Host: localhost`.

use std::collections::BTreeMap;
use std::sync::Arc;

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::App;
use super::store::ResourceKey;

/// The routes under `/_emulator/`.
pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/_emulator/state", get(state))
        .route("/_emulator/stats", get(stats))
        .route("/_emulator/stats/reset", post(reset_stats))
        .route("/_emulator/tags", post(edit_tags))
        .route("/_emulator/gate", get(gate))
        .route("/_emulator/gate/pause", post(pause))
        .route("/_emulator/gate/admit", post(admit))
        .route("/_emulator/gate/resume", post(resume))
}

async fn gate(State(app): State<Arc<App>>) -> Response {
    Json(app.gate.snapshot()).into_response()
}

async fn pause(State(app): State<Arc<App>>) -> StatusCode {
    app.gate.pause();
    StatusCode::NO_CONTENT
}

/// Body of `POST /_emulator/gate/admit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Admit {
    requests: usize,
}

async fn admit(State(app): State<Arc<App>>, Json(admit): Json<Admit>) -> StatusCode {
    app.gate.admit(admit.requests);
    StatusCode::NO_CONTENT
}

async fn resume(State(app): State<Arc<App>>) -> StatusCode {
    app.gate.resume();
    StatusCode::NO_CONTENT
}

/// Middleware of the control routes: refuses a non-loopback `Host` or `Origin` (module docs).
pub(crate) async fn loopback_only(
    State(app): State<Arc<App>>,
    request: Request,
    next: Next,
) -> Response {
    // NB: the server puts the peer address in every request; a request without one is
    // refused rather than trusted.
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    match peer_refusal(peer).or_else(|| refusal(request.headers(), &app)) {
        Some(reason) => (
            StatusCode::FORBIDDEN,
            Json(json!({"error": format!(
                "{reason}: the /_emulator/ endpoints answer loopback clients only"
            )})),
        )
            .into_response(),
        None => next.run(request).await,
    }
}

/// Why the peer is refused, if it is: anything but a loopback address (an IPv4 peer of an
/// IPv6 socket included, `::ffff:127.0.0.1`).
fn peer_refusal(peer: Option<IpAddr>) -> Option<String> {
    match peer {
        Some(ip) if ip.to_canonical().is_loopback() => None,
        Some(ip) => Some(format!("the peer {ip} is not a loopback address")),
        None => Some("the peer address is unknown".to_string()),
    }
}

/// Why the headers are refused, if they are.
fn refusal(headers: &HeaderMap, app: &App) -> Option<String> {
    // NB: a request without Host (HTTP/1.0) comes from no browser; browsers always send one.
    if let Some(host) = headers.get(header::HOST) {
        let accepted = host.to_str().ok().and_then(host_name).is_some_and(|name| {
            let listening = app.addr.ip();
            is_loopback_name(name)
                || (!listening.is_unspecified() && name.parse::<IpAddr>().ok() == Some(listening))
        });
        if !accepted {
            return Some(format!("Host {host:?} is not a loopback address"));
        }
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let accepted = origin
            .to_str()
            .ok()
            .and_then(|origin| {
                origin
                    .strip_prefix("http://")
                    .or_else(|| origin.strip_prefix("https://"))
            })
            .and_then(host_name)
            .is_some_and(is_loopback_name);
        if !accepted {
            return Some(format!("Origin {origin:?} is not a loopback origin"));
        }
    }
    None
}

/// The host of `host[:port]` or `[v6][:port]`, without brackets; `None` when malformed.
fn host_name(authority: &str) -> Option<&str> {
    if let Some(bracketed) = authority.strip_prefix('[') {
        let (address, rest) = bracketed.split_once(']')?;
        return (rest.is_empty() || rest.strip_prefix(':').is_some_and(is_port)).then_some(address);
    }
    match authority.split_once(':') {
        Some((name, port)) if is_port(port) => Some(name),
        Some(_) => None,
        None => Some(authority),
    }
}

fn is_port(text: &str) -> bool {
    text.parse::<u16>().is_ok()
}

/// `localhost` or a loopback IP address (not an unspecified or public one).
fn is_loopback_name(name: &str) -> bool {
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

async fn state(State(app): State<Arc<App>>) -> Response {
    Json(app.store.read(|store| store.to_state_json())).into_response()
}

async fn stats(State(app): State<Arc<App>>) -> Response {
    Json(app.stats.snapshot()).into_response()
}

async fn reset_stats(State(app): State<Arc<App>>) -> StatusCode {
    app.stats.reset();
    StatusCode::NO_CONTENT
}

/// Body of `POST /_emulator/tags`: tags to set and keys to remove on one resource, applied
/// without any of the cloud's rules (so tests can plant system tags or exceed quotas).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TagEdit {
    cloud: String,
    #[serde(rename = "type")]
    resource_type: String,
    id: String,
    #[serde(default)]
    set: BTreeMap<String, String>,
    #[serde(default)]
    remove: Vec<String>,
}

async fn edit_tags(State(app): State<Arc<App>>, Json(edit): Json<TagEdit>) -> Response {
    let key = ResourceKey::new(&edit.cloud, &edit.resource_type, &edit.id);
    let edited = app
        .store
        .change(|store| {
            let stored = store.get_mut(&key).ok_or(())?;
            for removed in &edit.remove {
                stored.tags.remove(removed);
            }
            stored.tags.extend(edit.set.clone());
            Ok::<_, ()>(stored.clone())
        })
        .await;
    match edited {
        Ok(stored) => Json(json!({
            "cloud": key.cloud,
            "type": key.resource_type,
            "id": key.id,
            "region": stored.region,
            "tags": stored.tags,
        }))
        .into_response(),
        Err(()) => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": format!(
                "no resource {}/{}/{} in the emulator",
                key.cloud, key.resource_type, key.id
            )})),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_peers_are_accepted() {
        for loopback in ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"] {
            assert_eq!(peer_refusal(loopback.parse().ok()), None, "{loopback}");
        }
        for other in [
            "192.0.2.2",
            "10.0.0.1",
            "0.0.0.0",
            "::",
            "fd00::2",
            "::ffff:10.0.0.1",
        ] {
            let refusal = peer_refusal(other.parse().ok());
            assert!(refusal.is_some_and(|r| r.contains(other)), "{other}");
        }
        assert!(peer_refusal(None).is_some());
    }

    #[test]
    fn host_names_are_split_from_ports_and_brackets() {
        assert_eq!(host_name("127.0.0.1:8780"), Some("127.0.0.1"));
        assert_eq!(host_name("[::1]:8780"), Some("::1"));
        assert_eq!(host_name("[::1]"), Some("::1"));
        assert_eq!(host_name("localhost"), Some("localhost"));
        assert_eq!(host_name("evil.example:80"), Some("evil.example"));
        assert_eq!(host_name("127.0.0.1:8780@evil"), None);
        assert_eq!(host_name("[::1]x"), None);
        for loopback in ["localhost", "LOCALHOST", "127.0.0.1", "127.1.2.3", "::1"] {
            assert!(is_loopback_name(loopback), "{loopback}");
        }
        for other in [
            "localhost.evil.example",
            "0.0.0.0",
            "::",
            "10.0.0.1",
            "evil.example",
            "",
        ] {
            assert!(!is_loopback_name(other), "{other}");
        }
    }
}
