//! Test-only control endpoints under `/_emulator/`, with no signature: state, statistics, and
//! out-of-band tag changes. They are why the emulator must never listen beyond loopback.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
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
