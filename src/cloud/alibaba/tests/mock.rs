//! A scripted mock of an Alibaba Cloud RPC endpoint on 127.0.0.1 that records every request
//! it gets, raw, for the client tests to inspect.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::cloud::sign::{acs3, rpc_signature, rpc_string_to_sign};

/// One scripted answer.
#[derive(Clone)]
pub(super) struct Reply {
    pub status: u16,
    pub body: String,
    pub retry_after: Option<&'static str>,
    pub delay: Duration,
}

pub(super) fn reply(status: u16, body: &str) -> Reply {
    Reply {
        status,
        body: body.to_string(),
        retry_after: None,
        delay: Duration::ZERO,
    }
}

pub(super) fn ok() -> Reply {
    reply(200, r#"{"RequestId":"OK-1"}"#)
}

pub(super) fn error_reply(status: u16, code: &str) -> Reply {
    reply(
        status,
        &format!(
            r#"{{"RequestId":"ERR-1","HostId":"127.0.0.1","Code":"{code}","Message":"scripted {code}"}}"#
        ),
    )
}

/// One request as the mock received it.
#[derive(Clone, Debug)]
pub(super) struct Received {
    pub method: Method,
    pub query: String,
    pub content_type: Option<String>,
    pub headers: HeaderMap,
    pub body: String,
}

impl Received {
    pub(super) fn query_params(&self) -> BTreeMap<String, String> {
        form_urlencoded::parse(self.query.as_bytes())
            .into_owned()
            .collect()
    }

    pub(super) fn body_params(&self) -> BTreeMap<String, String> {
        form_urlencoded::parse(self.body.as_bytes())
            .into_owned()
            .collect()
    }

    pub(super) fn param(&self, name: &str) -> Option<String> {
        let mut all = self.query_params();
        all.extend(self.body_params());
        all.remove(name)
    }

    /// Verifies the signature exactly as the server does: over the decoded union of query
    /// and body parameters, without `Signature`.
    pub(super) fn assert_signed_with(&self, secret: &str) {
        let mut params: Vec<(String, String)> = form_urlencoded::parse(self.query.as_bytes())
            .into_owned()
            .collect();
        params.extend(form_urlencoded::parse(self.body.as_bytes()).into_owned());
        let names: Vec<&String> = params.iter().map(|(name, _)| name).collect();
        let unique: std::collections::BTreeSet<&&String> = names.iter().collect();
        assert_eq!(names.len(), unique.len(), "no parameter twice: {names:?}");
        let signature = self.param("Signature").expect("a Signature parameter");
        let string_to_sign = rpc_string_to_sign(
            self.method.as_str(),
            params
                .iter()
                .map(|(name, value)| (name.as_str(), value.as_str())),
        );
        assert_eq!(rpc_signature(secret, &string_to_sign), signature);
    }

    /// A header's value.
    pub(super) fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    }

    /// Verifies a V3 signature as the server does (spec section 4): the headers that
    /// `SignedHeaders` lists, the query, the hash of the body as received.
    pub(super) fn assert_v3_signed_with(&self, key_id: &str, secret: &str) {
        let authorization = self
            .header("authorization")
            .expect("an Authorization header");
        let parsed = acs3::parse_authorization(&authorization).expect("an ACS3 Authorization");
        assert_eq!(parsed.access_key_id, key_id);
        let signed: Vec<&str> = parsed.signed_headers.split(';').collect();
        for required in ["host", "x-acs-action", "x-acs-version", "x-acs-date"] {
            assert!(
                signed.contains(&required),
                "{required} is signed: {signed:?}"
            );
        }
        let values: Vec<(String, String)> = signed
            .iter()
            .map(|name| {
                (
                    name.to_string(),
                    self.header(name).expect("a signed header"),
                )
            })
            .collect();
        let (headers, signed_list) =
            acs3::canonical_headers(values.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        assert_eq!(signed_list, parsed.signed_headers);
        let hash = acs3::payload_hash(self.body.as_bytes());
        assert_eq!(self.header("x-acs-content-sha256"), Some(hash.clone()));
        let query: Vec<(String, String)> = form_urlencoded::parse(self.query.as_bytes())
            .into_owned()
            .collect();
        let query = acs3::canonical_query(query.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        let canonical = acs3::canonical_request(&acs3::CanonicalInput {
            method: self.method.as_str(),
            uri: "/",
            query: &query,
            headers: &headers,
            signed_headers: &signed_list,
            payload_hash: &hash,
        });
        assert_eq!(
            acs3::signature(secret, &acs3::string_to_sign(&canonical)),
            parsed.signature
        );
    }
}

#[derive(Default)]
struct Script {
    replies: VecDeque<Reply>,
    fallback: Option<Reply>,
    received: Vec<Received>,
}

/// A mock Alibaba endpoint on 127.0.0.1: answers from a script, then with the fallback.
#[derive(Clone)]
pub(super) struct Mock {
    script: Arc<Mutex<Script>>,
    pub endpoint: String,
}

impl Mock {
    pub(super) async fn start(replies: Vec<Reply>, fallback: Reply) -> Mock {
        let script = Arc::new(Mutex::new(Script {
            replies: replies.into(),
            fallback: Some(fallback),
            received: Vec::new(),
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let app = Router::new().fallback(answer).with_state(script.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Mock { script, endpoint }
    }

    pub(super) fn received(&self) -> Vec<Received> {
        self.script.lock().expect("mock lock").received.clone()
    }
}

async fn answer(
    State(script): State<Arc<Mutex<Script>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let reply = {
        let mut script = script.lock().expect("mock lock");
        script.received.push(Received {
            method,
            query: uri.query().unwrap_or_default().to_string(),
            content_type: headers
                .get("content-type")
                .and_then(|value| value.to_str().ok())
                .map(str::to_string),
            headers: headers.clone(),
            body,
        });
        let fallback = script.fallback.clone();
        script.replies.pop_front().or(fallback).expect("a reply")
    };
    tokio::time::sleep(reply.delay).await;
    let status = StatusCode::from_u16(reply.status).expect("a valid status");
    let mut headers = HeaderMap::new();
    headers.insert("content-type", "application/json".parse().expect("header"));
    if let Some(seconds) = reply.retry_after {
        headers.insert("x-acs-retry-after", seconds.parse().expect("header"));
    }
    (status, headers, reply.body).into_response()
}
