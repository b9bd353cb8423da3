//! The ECS metadata service's RAM role endpoints, as the credentials SDKs read them
//! (aliyun/credentials-python, `provider/ecs_ram_role.py`):
//!
//! - `PUT /latest/api/token` with `X-aliyun-ecs-metadata-token-ttl-seconds` (1 to 21600):
//!   a metadata token (the hardened mode);
//! - `GET /latest/meta-data/ram/security-credentials/`: the instance's role name;
//! - `GET /latest/meta-data/ram/security-credentials/ROLE`: `Code`, `AccessKeyId`,
//!   `AccessKeySecret`, `SecurityToken`, `Expiration`, `LastUpdated`.
//!
//! A GET may carry `X-aliyun-ecs-metadata-token`: it must then be one this emulator issued
//! and unexpired (401 otherwise); without one, it is answered (the normal mode). The role is
//! [`ROLE`], acting for the inventory's first account; its credentials last six hours, or
//! the emulator's `--credentials-ttl`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};

use super::App;

/// The instance RAM role's name.
pub const ROLE: &str = "tagbinder-emulator-ecs-role";
const TOKEN_HEADER: &str = "x-aliyun-ecs-metadata-token";
const TTL_HEADER: &str = "x-aliyun-ecs-metadata-token-ttl-seconds";
const CREDENTIALS_LIFETIME: Duration = Duration::from_secs(6 * 3600);

/// The routes.
pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/latest/api/token", put(token))
        .route(
            "/latest/meta-data/ram/security-credentials/",
            get(role_name),
        )
        .route(
            "/latest/meta-data/ram/security-credentials/{role}",
            get(role_credentials),
        )
}

async fn token(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let ttl = headers
        .get(TTL_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|ttl| (1..=21_600).contains(ttl));
    let Some(ttl) = ttl else {
        return (
            StatusCode::BAD_REQUEST,
            format!("{TTL_HEADER} must be between 1 and 21600\n"),
        )
            .into_response();
    };
    let token = uuid::Uuid::new_v4().simple().to_string();
    let now = app.faults.now();
    let mut tokens = app
        .metadata_tokens
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    tokens.retain(|_, expires| *expires > now);
    tokens.insert(token.clone(), now + jiff::SignedDuration::from_secs(ttl));
    token.into_response()
}

/// False for a metadata token that this emulator did not issue or that expired.
fn token_valid(app: &App, headers: &HeaderMap) -> bool {
    let Some(token) = headers.get(TOKEN_HEADER) else {
        return true;
    };
    let now = app.faults.now();
    let tokens = app
        .metadata_tokens
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    matches!(token.to_str().ok().and_then(|t| tokens.get(t)), Some(expires) if *expires > now)
}

fn token_refused() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        "invalid or expired metadata token\n",
    )
        .into_response()
}

async fn role_name(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if !token_valid(&app, &headers) {
        return token_refused();
    }
    if app.accounts.first().is_none() {
        return (
            StatusCode::NOT_FOUND,
            "no RAM role is attached (the inventory has no account)\n",
        )
            .into_response();
    }
    ROLE.into_response()
}

async fn role_credentials(
    State(app): State<Arc<App>>,
    Path(role): Path<String>,
    headers: HeaderMap,
) -> Response {
    if !token_valid(&app, &headers) {
        return token_refused();
    }
    let owner = match app.accounts.first() {
        Some(owner) if role == ROLE => owner.to_string(),
        _ => return (StatusCode::NOT_FOUND, "no such RAM role on this instance\n").into_response(),
    };
    let now = app.faults.now();
    let issued = app.accounts.issue(
        &owner,
        app.credentials_ttl.unwrap_or(CREDENTIALS_LIFETIME),
        now,
    );
    let time = |t: jiff::Timestamp| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    axum::Json(serde_json::json!({
        "AccessKeyId": issued.access_key_id,
        "AccessKeySecret": issued.access_key_secret,
        "Expiration": time(issued.expiration),
        "SecurityToken": issued.security_token,
        "LastUpdated": time(now),
        "Code": "Success",
    }))
    .into_response()
}
