//! HTTP: one handler for every path. It logs each resource call with its RBAC verb, applies
//! the fault rules, and serves discovery, get, list, watch, create, update, patch and delete.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::errors::ApiError;
use super::patch::PatchKind;
use super::paths::{Route, Target};
use super::selectors::Selector;
use super::store::{self, Change, Part, PatchRequest};
use super::types::{self, ResourceType};
use super::{Call, RecordedCall, Shared};

/// The query parameters that matter here.
#[derive(Default)]
struct Query {
    watch: bool,
    resource_version: Option<String>,
    label_selector: Option<String>,
    field_selector: Option<String>,
    field_manager: Option<String>,
    timeout_seconds: Option<u64>,
    limit: Option<usize>,
    continue_token: Option<String>,
}

impl Query {
    fn parse(query: Option<&str>) -> Self {
        let mut parsed = Query::default();
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let value = value.into_owned();
            match key.as_ref() {
                "watch" => parsed.watch = value == "true" || value == "1",
                "resourceVersion" => parsed.resource_version = Some(value),
                "labelSelector" => parsed.label_selector = Some(value),
                "fieldSelector" => parsed.field_selector = Some(value),
                "fieldManager" => parsed.field_manager = Some(value),
                "timeoutSeconds" => parsed.timeout_seconds = value.parse().ok(),
                "limit" => parsed.limit = value.parse().ok().filter(|limit| *limit > 0),
                "continue" => parsed.continue_token = Some(value).filter(|v| !v.is_empty()),
                _ => {}
            }
        }
        parsed
    }

    fn since(&self) -> Option<u64> {
        self.resource_version
            .as_deref()
            .map(|rv| rv.parse().unwrap_or(0))
    }
}

fn reply(code: StatusCode, body: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn failure(error: &ApiError) -> Response {
    let code = StatusCode::from_u16(error.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    reply(code, &error.to_status())
}

fn user_of(headers: &HeaderMap) -> String {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("system:anonymous")
        .to_string()
}

/// Every request.
pub async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let route = super::paths::parse(uri.path(), &shared.core_namespaced);
    let discovery = |build: &dyn Fn(&[ResourceType]) -> Option<Value>| {
        let state = shared.lock();
        match build(state.types()) {
            Some(document) => reply(StatusCode::OK, &document),
            None => failure(&ApiError::no_such_resource()),
        }
    };
    match route {
        Route::Version => reply(
            StatusCode::OK,
            &json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-emulated", "platform": "linux/amd64"}),
        ),
        Route::CoreVersions => reply(StatusCode::OK, &types::core_versions(&shared.address)),
        Route::Groups => discovery(&|t| Some(types::group_list(t.iter()))),
        Route::Group(group) => discovery(&|t| {
            let list = types::group_list(t.iter());
            list["groups"]
                .as_array()
                .and_then(|groups| groups.iter().find(|g| g["name"] == group.as_str()))
                .map(|g| {
                    let mut g = g.clone();
                    g["kind"] = json!("APIGroup");
                    g["apiVersion"] = json!("v1");
                    g
                })
        }),
        Route::Resources { group, version } => {
            discovery(&|t| types::resource_list(&group, &version, t.iter()))
        }
        Route::Resource(target) => {
            let query = Query::parse(uri.query());
            let user = user_of(&headers);
            resource(&shared, &user, &method, target, &query, &headers, &body).await
        }
        Route::Unknown => failure(&ApiError::no_such_resource()),
    }
}

fn verb_of(method: &Method, target: &Target, query: &Query) -> Option<&'static str> {
    let named = target.name.is_some();
    Some(match *method {
        Method::GET if named => "get",
        Method::GET if query.watch => "watch",
        Method::GET => "list",
        Method::POST if !named => "create",
        Method::PUT if named => "update",
        Method::PATCH if named => "patch",
        Method::DELETE if named => "delete",
        Method::DELETE => "deletecollection",
        _ => return None,
    })
}

async fn resource(
    shared: &Arc<Shared>,
    user: &str,
    method: &Method,
    target: Target,
    query: &Query,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let Some(verb) = verb_of(method, &target, query) else {
        return failure(&ApiError::method_not_allowed(method.as_str()));
    };
    let recorded = RecordedCall {
        user: user.to_string(),
        call: Call {
            group: target.group.clone(),
            resource: target.plural.clone(),
            subresource: target.subresource.clone(),
            verb: verb.to_string(),
            namespace: target.namespace.clone(),
            // NB: as kube-apiserver's RequestInfo: a list or watch whose field selector is
            // `metadata.name=NAME` names NAME, which RBAC checks against resourceNames.
            name: target.name.clone().or_else(|| {
                matches!(verb, "list" | "watch")
                    .then(|| selected_name(query.field_selector.as_deref()))
                    .flatten()
            }),
        },
        resource_version: query.resource_version.clone(),
    };
    shared.log(recorded.clone());
    if let Some(error) = shared.faults.check(&recorded) {
        return failure(&error);
    }
    if !shared.faults.hold(&recorded).await {
        return failure(&ApiError::injected(503));
    }
    let found = shared
        .lock()
        .find_type(&target.group, &target.version, &target.plural);
    let Some(ty) = found.filter(|t| t.namespaced || target.namespace.is_none()) else {
        return failure(&ApiError::no_such_resource());
    };
    let part = match target.subresource.as_deref() {
        None => Part::Main,
        Some("status") if ty.status => Part::Status,
        Some(_) => return failure(&ApiError::no_such_resource()),
    };
    let metadata_only = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("as=PartialObjectMetadata"));
    let selector = match Selector::parse(
        query.label_selector.as_deref(),
        query.field_selector.as_deref(),
    ) {
        Ok(selector) => selector,
        Err(error) => return failure(&error),
    };
    let namespace = target.namespace.as_deref();
    let name = target.name.as_deref().unwrap_or_default();
    let view = |object: Value| {
        if metadata_only {
            store::partial(&object)
        } else {
            object
        }
    };
    let result = match verb {
        "get" => shared.lock().get(&ty, namespace, name).map(view),
        "list" => return list(shared, &ty, namespace, &selector, query, metadata_only),
        "watch" => return watch(shared, &ty, namespace, selector, query, metadata_only),
        "create" => {
            parse_json(body).and_then(|object| shared.lock().create(&ty, namespace, object))
        }
        "update" => parse_json(body)
            .and_then(|object| shared.lock().update(&ty, namespace, name, part, object)),
        "patch" => patch_request(headers, body, query)
            .and_then(|request| shared.lock().patch(&ty, namespace, name, part, request)),
        "delete" => shared.lock().delete(&ty, namespace, name),
        other => Err(ApiError::method_not_allowed(other)),
    };
    match result {
        Ok(object) if verb == "create" => reply(StatusCode::CREATED, &object),
        Ok(object) => reply(StatusCode::OK, &object),
        Err(error) => failure(&error),
    }
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

fn patch_request(
    headers: &HeaderMap,
    body: &[u8],
    query: &Query,
) -> Result<PatchRequest, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let kind = PatchKind::of(content_type)?;
    Ok(PatchRequest {
        body: kind.parse_body(body)?,
        kind,
        field_manager: query.field_manager.clone(),
    })
}

/// A list, in pages of `limit` with a `continue` token, as etcd serves it; with
/// `resourceVersion=0` the whole list at once, as the watch cache serves it (it ignores
/// `limit`). Every page answers the resourceVersion of the first: a watch from there replays
/// what changed while the pages were read (a real apiserver serves a snapshot instead).
fn list(
    shared: &Shared,
    ty: &ResourceType,
    namespace: Option<&str>,
    selector: &Selector,
    query: &Query,
    metadata_only: bool,
) -> Response {
    let from_cache = query.resource_version.as_deref() == Some("0");
    let limit = query.limit.filter(|_| !from_cache);
    let (rv, after) = match query.continue_token.as_deref().map(parse_continue) {
        None => (None, None),
        Some(Ok((rv, ns, name))) => (Some(rv), Some((ns, name))),
        Some(Err(error)) => return failure(&error),
    };
    let (page, current) = {
        let state = shared.lock();
        let after = after
            .as_ref()
            .map(|(ns, name)| (ns.as_str(), name.as_str()));
        (
            state.list_page(ty, namespace, selector, limit, after),
            state.resource_version(),
        )
    };
    let rv = rv.unwrap_or(current);
    let (api_version, kind, items) = if metadata_only {
        let items: Vec<Value> = page.items.iter().map(store::partial).collect();
        (
            "meta.k8s.io/v1".to_string(),
            "PartialObjectMetadataList".to_string(),
            items,
        )
    } else {
        (ty.api_version(), format!("{}List", ty.kind), page.items)
    };
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if let Some((ns, name)) = page.next {
        metadata["continue"] = json!(format!("{rv}|{ns}|{name}"));
    }
    reply(
        StatusCode::OK,
        &json!({
            "apiVersion": api_version,
            "kind": kind,
            "metadata": metadata,
            "items": items,
        }),
    )
}

/// `rv|namespace|name` (neither may contain `|`).
fn parse_continue(token: &str) -> Result<(u64, String, String), ApiError> {
    let mut parts = token.splitn(3, '|');
    match (
        parts.next().and_then(|rv| rv.parse().ok()),
        parts.next(),
        parts.next(),
    ) {
        (Some(rv), Some(ns), Some(name)) => Ok((rv, ns.to_string(), name.to_string())),
        _ => Err(ApiError::bad_request(format!(
            "invalid continue token {token:?}"
        ))),
    }
}

/// A watch in progress.
struct Watch {
    replay: VecDeque<Bytes>,
    live: broadcast::Receiver<Arc<Change>>,
    dropped: tokio::sync::watch::Receiver<u64>,
    ty: ResourceType,
    namespace: Option<String>,
    selector: Selector,
    after: u64,
    deadline: tokio::time::Instant,
    metadata_only: bool,
}

impl Watch {
    fn line(&self, change: &Change) -> Bytes {
        let object = if self.metadata_only {
            store::partial(&change.object)
        } else {
            change.object.clone()
        };
        let mut line = json!({"type": change.event, "object": object}).to_string();
        line.push('\n');
        Bytes::from(line)
    }

    /// The next line, or `None` when the watch ends (timeout, dropped, lagging behind).
    async fn next(&mut self) -> Option<Bytes> {
        if let Some(line) = self.replay.pop_front() {
            return Some(line);
        }
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(self.deadline) => return None,
                _ = self.dropped.changed() => return None,
                received = self.live.recv() => {
                    // NB: a lagging receiver ends the watch; the client resumes from its last
                    // resourceVersion, as after any closed watch.
                    let change = received.ok()?;
                    if change.rv > self.after
                        && store::watched(&change, &self.ty, self.namespace.as_deref(), &self.selector)
                    {
                        self.after = change.rv;
                        return Some(self.line(&change));
                    }
                }
            }
        }
    }
}

fn watch(
    shared: &Shared,
    ty: &ResourceType,
    namespace: Option<&str>,
    selector: Selector,
    query: &Query,
    metadata_only: bool,
) -> Response {
    let dropped = shared.drops.subscribe();
    let started = shared.lock().watch(ty, namespace, &selector, query.since());
    let watch = match started {
        Ok(start) => Watch {
            replay: VecDeque::new(),
            live: start.live,
            dropped,
            ty: ty.clone(),
            namespace: namespace.map(str::to_string),
            selector,
            after: start.after,
            deadline: tokio::time::Instant::now()
                + Duration::from_secs(query.timeout_seconds.unwrap_or(1800)),
            metadata_only,
        }
        .with_replay(&start.replay),
        Err(error) => {
            let mut line = json!({"type": "ERROR", "object": error.to_status()}).to_string();
            line.push('\n');
            return reply_stream(futures::stream::once(async move { Ok(Bytes::from(line)) }));
        }
    };
    reply_stream(futures::stream::unfold(watch, |mut watch| async move {
        watch.next().await.map(|line| (Ok(line), watch))
    }))
}

impl Watch {
    fn with_replay(mut self, replay: &[Arc<Change>]) -> Self {
        let lines: VecDeque<Bytes> = replay.iter().map(|c| self.line(c)).collect();
        self.replay = lines;
        self
    }
}

fn reply_stream(
    stream: impl futures::Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

/// The name a field selector `metadata.name=NAME` (alone) selects.
fn selected_name(field_selector: Option<&str>) -> Option<String> {
    let selector = field_selector?;
    let name = selector
        .strip_prefix("metadata.name==")
        .or_else(|| selector.strip_prefix("metadata.name="))?;
    (!name.contains(',')).then(|| name.to_string())
}
