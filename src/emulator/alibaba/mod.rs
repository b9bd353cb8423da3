//! Alibaba Cloud RPC tag APIs at `/` (spec: alibaba-rpc-tagging.md).
//!
//! A request is `GET /?<params>` or `POST /` with parameters in the query and/or an
//! `application/x-www-form-urlencoded` body (another body is ignored); the parameters are the
//! union of both, decoded ([`params`]: a name in both takes the body's value, a name twice in
//! one part is `InvalidParameter`). Every product of [`AlibabaConfig::products`] is served on
//! the same path, chosen by its API version; so is the Tag service (`2018-08-28`,
//! [`tag_service`]).
//!
//! Two signatures are accepted, as the cloud does: V1 (`SignatureVersion=1.0`, HMAC-SHA1,
//! [`auth`]), with `Action` and `Version` as parameters, and V3 (`Authorization:
//! ACS3-HMAC-SHA256 ...`, [`v3`]), with the action and version in `x-acs-action` and
//! `x-acs-version`. A V1 answer is XML unless `Format=JSON`; a V3 answer is JSON unless
//! `Format` or an `Accept` without JSON asks for XML.
//!
//! Handling order: added latency, injected faults (before authentication, so a throttled or
//! failed request leaves its nonce unused, as a client retrying with a fresh nonce expects),
//! parameter parsing, signature and replay checks, version, action, the operation's
//! parameters, then the store. Only `TagResources`, `UntagResources` and `ListTagResources`
//! exist.

mod auth;
mod errors;
mod ops;
mod params;
mod render;
mod requests;
mod rules;
mod sts;
mod tag_service;
mod v3;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::Response;

pub use rules::{
    API_GATEWAY_VERSION, AlibabaConfig, AlibabaLimits, ECS_VERSION, LIST_PAGE_ENTRIES, Product,
};
pub use tag_service::{TAG_SERVICE_VERSION, TagServiceLimits};

use self::auth::Verifier;
use self::errors::RpcError;
use self::params::Received;
use self::render::{ErrorContext, Format, Node};
use self::requests::ListRequest;
use super::App;
use super::inventory::ALIBABA;
use super::stats::OK;

/// What a request is, before it is verified.
struct Call<'a> {
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    body: &'a [u8],
    /// Signed with V3 (else V1).
    v3: bool,
}

/// Alibaba Cloud's RPC on `/` (the emulator's root dispatches between it and AWS).
pub(crate) async fn rpc(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let form_body = is_form(&headers).then_some(&body[..]);
    let received = Received::decode(query.as_deref(), form_body);
    let v3 = v3::is_v3(&headers);
    let (action, version) = if v3 {
        v3::action_and_version(&headers)
    } else {
        (received.first("Action"), received.first("Version"))
    };
    let format = match received.first("Format") {
        Some(format) => Format::of(Some(format)),
        None if v3 => Format::of_accept(headers.get(header::ACCEPT)),
        None => Format::Xml,
    };
    let action = action.unwrap_or("-").to_string();
    let product_code = match version {
        Some(TAG_SERVICE_VERSION) => tag_service::PRODUCT_CODE,
        Some(version) => app
            .alibaba
            .products
            .get(version)
            .map_or(rules::DEFAULT_PRODUCT_CODE, |product| product.code.as_str()),
        None => rules::DEFAULT_PRODUCT_CODE,
    }
    .to_string();
    let request_id = uuid::Uuid::new_v4().to_string().to_uppercase();
    let call = Call {
        method: &method,
        uri: &uri,
        headers: &headers,
        body: &body,
        v3,
    };
    match handle(&app, &call, received).await {
        Ok(fields) => {
            app.stats.record(ALIBABA, &action, OK);
            tracing::debug!(cloud = ALIBABA, %action, outcome = OK, "emulator request");
            render::success(format, &action, &request_id, fields)
        }
        Err(error) => {
            app.stats.record(ALIBABA, &action, &error.code);
            tracing::debug!(cloud = ALIBABA, %action, outcome = %error.code, "emulator request");
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map_or_else(|| app.addr.to_string(), str::to_string);
            let context = ErrorContext {
                request_id: &request_id,
                host: &host,
                product_code: &product_code,
            };
            render::error(format, &context, &error)
        }
    }
}

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|mime| {
            mime.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// The answer's fields after `RequestId`, or the error.
async fn handle(
    app: &App,
    call: &Call<'_>,
    received: Received,
) -> Result<Vec<(&'static str, Node)>, RpcError> {
    let latency = app.faults.latency();
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    if let Some(fault) = app.faults.decide(Instant::now()) {
        return Err(RpcError::from_fault(fault));
    }
    let query: Vec<(String, String)> = received
        .query_pairs()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let params = received.into_params()?;
    if !call.v3
        && params.get("Version") == Some(sts::VERSION)
        && params.get("Action") == Some(sts::ASSUME_ROLE_WITH_OIDC)
    {
        // NB: anonymous: the OIDC token is the proof.
        return sts::assume_role_with_oidc(app, &params);
    }
    let verifier = Verifier {
        accounts: &app.accounts,
        nonces: &app.nonces,
        clock_skew: app.clock_skew,
    };
    let (access_key_id, action, version) = if call.v3 {
        let request = v3::V3Request {
            method: call.method.as_str(),
            path: call.uri.path(),
            headers: call.headers,
            query: query
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect(),
            body: call.body,
        };
        let key = verifier.verify_v3(&request, app.faults.now(), Instant::now())?;
        let (action, version) = v3::action_and_version(call.headers);
        // NB: verify_v3 required both headers.
        (key, action.unwrap_or_default(), version.unwrap_or_default())
    } else {
        let key = verifier.verify(
            call.method.as_str(),
            &params,
            app.faults.now(),
            Instant::now(),
        )?;
        (key, params.require("Action")?, params.require("Version")?)
    };
    if version == TAG_SERVICE_VERSION {
        // NB: the key was just verified, so it has a UID.
        let uid = app.accounts.uid(&access_key_id).unwrap_or_default();
        return tag_service::handle(app, action, &params, &uid).await;
    }
    let product = app
        .alibaba
        .products
        .get(version)
        .ok_or_else(RpcError::invalid_version)?;
    let limits = &app.alibaba.limits;
    match action {
        "TagResources" => {
            let request = requests::tag_request(&params, product, limits)?;
            app.store
                .change(|store| ops::tag_resources(store, &request, limits))
                .await?;
            Ok(Vec::new())
        }
        "UntagResources" => {
            let request = requests::untag_request(&params, product, limits)?;
            app.store
                .change(|store| ops::untag_resources(store, &request, limits))
                .await?;
            Ok(Vec::new())
        }
        "ListTagResources" => {
            let request = requests::list_request(&params, product, limits)?;
            let page = app
                .store
                .read(|store| ops::list_tag_resources(store, &request, app.page_size))?;
            Ok(list_fields(&request, page))
        }
        _ => Err(RpcError::action_not_found()),
    }
}

/// `NextToken` and `TagResources.TagResource[]` (spec section 5).
fn list_fields(request: &ListRequest, page: ops::Page) -> Vec<(&'static str, Node)> {
    let resource_type = &request.target.resource_type;
    let entries = page
        .entries
        .into_iter()
        .map(|entry| {
            Node::Fields(vec![
                ("ResourceId", Node::Text(entry.resource_id)),
                ("ResourceType", Node::text(resource_type)),
                ("TagKey", Node::Text(entry.key)),
                ("TagValue", Node::Text(entry.value)),
            ])
        })
        .collect();
    vec![
        ("NextToken", Node::Text(page.next_token)),
        (
            "TagResources",
            Node::Fields(vec![("TagResource", Node::List(entries))]),
        ),
    ]
}

/// Every parser of a request, for the fuzz tests.
#[cfg(test)]
pub(crate) mod fuzzing {
    use super::*;

    /// Decodes `query` and `body` and parses them as each operation of each product.
    pub(crate) fn parse_every_operation(query: &str, body: &[u8]) {
        let received = Received::decode(Some(query), Some(body));
        let _ = received.first("Action");
        let Ok(params) = received.into_params() else {
            return;
        };
        let config = AlibabaConfig::default();
        for product in config.products.values() {
            let _ = requests::tag_request(&params, product, &config.limits);
            let _ = requests::untag_request(&params, product, &config.limits);
            let _ = requests::list_request(&params, product, &config.limits);
        }
        tag_service::parse_every_operation(&params);
    }
}
