//! The client over real HTTP on loopback, against a scripted mock that records what it got.
//! Signatures are checked with the `sign` primitives on the decoded received parameters.

mod mock;
mod select;
mod tag_service;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::Method;

use self::mock::{Mock, error_reply, ok, reply};
use super::*;
use crate::cloud::client::Protocol;
use crate::cloud::{CallObserver, ErrorKind, TagApi};

const KEY_ID: &str = "LTAI5tMockKeyId";
const SECRET: &str = "MockSecret-never-in-a-log";

impl Mock {
    fn client(&self, retry: RetryPolicy) -> AlibabaClient {
        client_at(&self.endpoint, retry)
    }
}

fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    }
}

fn client_at(endpoint: &str, retry: RetryPolicy) -> AlibabaClient {
    client_with(endpoint, retry, |_| {})
}

/// An API Gateway client, its protocol changed by `change` first.
fn client_with(
    endpoint: &str,
    retry: RetryPolicy,
    change: impl FnOnce(&mut ProductApi),
) -> AlibabaClient {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut protocol = ProductApi {
        config: AlibabaConfig {
            endpoint: endpoint.to_string(),
            api_version: "2016-07-14".to_string(),
            region: "cn-hangzhou".to_string(),
            signature: SignatureVersion::V1,
            credentials: AccessKey::new(KEY_ID, SECRET).into(),
            retry,
            timeout: Duration::from_secs(10),
            limits: Limits::alibaba(),
        },
        resource_types: Some(
            APIGATEWAY
                .resource_types
                .iter()
                .map(|t| t.to_string())
                .collect(),
        ),
    };
    change(&mut protocol);
    AlibabaClient::new(protocol, reqwest::Client::new())
}

fn ids(items: &[&str]) -> Vec<String> {
    items.iter().map(|id| id.to_string()).collect()
}

use crate::tags::tags;

fn assert_no_secret(error: &crate::cloud::CallError) {
    assert!(!error.to_string().contains(SECRET));
    assert!(!format!("{error:?}").contains(SECRET));
}

#[tokio::test]
async fn tag_requests_are_signed_posts_with_a_form_body() {
    let mock = Mock::start(vec![], ok()).await;
    let client = mock.client(fast_retry(1));
    let unicode = tags(&[("env", "prod"), ("环境", "a b*c~/=&+%")]);
    let written = client
        .tag_resources("apiGroup", &ids(&["g1", "g2"]), &unicode)
        .await;
    assert_eq!(written, Ok(WriteResult::default()));
    client
        .tag_resources("apiGroup", &ids(&["g1"]), &unicode)
        .await
        .expect("second call");

    let received = mock.received();
    assert_eq!(received.len(), 2);
    let first = &received[0];
    assert_eq!(first.method, Method::POST);
    assert_eq!(
        first.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    first.assert_signed_with(SECRET);
    let query = first.query_params();
    assert_eq!(query["Action"], "TagResources");
    assert_eq!(query["Version"], "2016-07-14");
    assert_eq!(query["Format"], "JSON");
    assert_eq!(query["AccessKeyId"], KEY_ID);
    assert_eq!(query["SignatureMethod"], "HMAC-SHA1");
    assert_eq!(query["SignatureVersion"], "1.0");
    assert!(query["Timestamp"].parse::<jiff::Timestamp>().is_ok());
    let body = first.body_params();
    let expected: BTreeMap<String, String> = [
        ("RegionId", "cn-hangzhou"),
        ("ResourceType", "apiGroup"),
        ("ResourceId.1", "g1"),
        ("ResourceId.2", "g2"),
        ("Tag.1.Key", "env"),
        ("Tag.1.Value", "prod"),
        ("Tag.2.Key", "环境"),
        ("Tag.2.Value", "a b*c~/=&+%"),
    ]
    .iter()
    .map(|(name, value)| (name.to_string(), value.to_string()))
    .collect();
    assert_eq!(body, expected);
    assert!(
        !first.body.contains('+'),
        "space travels as %20: {}",
        first.body
    );

    received[1].assert_signed_with(SECRET);
    assert_ne!(
        first.param("SignatureNonce"),
        received[1].param("SignatureNonce")
    );
    for request in &received {
        assert!(!request.query.contains(SECRET) && !request.body.contains(SECRET));
    }
}

#[tokio::test]
async fn untag_sends_keys_only_and_never_all() {
    let mock = Mock::start(vec![], ok()).await;
    let client = mock.client(fast_retry(1));
    let observed = tags(&[("env", "prod"), ("owner", "web")]);
    client
        .untag_resources("app", &ids(&["a1"]), &observed)
        .await
        .expect("untag");
    let received = mock.received();
    assert_eq!(received.len(), 1);
    received[0].assert_signed_with(SECRET);
    assert_eq!(
        received[0].param("Action").as_deref(),
        Some("UntagResources")
    );
    let body = received[0].body_params();
    assert_eq!(body["TagKey.1"], "env");
    assert_eq!(body["TagKey.2"], "owner");
    assert!(
        body.keys().all(|name| !name.starts_with("Tag.")),
        "{body:?}"
    );
    assert_eq!(received[0].param("All"), None);
}

#[tokio::test]
async fn empty_writes_send_nothing() {
    let mock = Mock::start(vec![], ok()).await;
    let client = mock.client(fast_retry(1));
    let some = tags(&[("env", "prod")]);
    assert!(client.tag_resources("app", &[], &some).await.is_ok());
    assert!(
        client
            .untag_resources("app", &ids(&["a1"]), &Tags::new())
            .await
            .is_ok()
    );
    assert!(client.list_tags("app", &[]).await.expect("list").is_empty());
    assert!(mock.received().is_empty());
}

#[tokio::test]
async fn list_follows_next_token_and_reports_every_requested_id() {
    let page = |token: &str, entries: &str| {
        reply(
            200,
            &format!(
                r#"{{"RequestId":"L","NextToken":{token},"TagResources":{{"TagResource":[{entries}]}}}}"#
            ),
        )
    };
    let first = page(
        r#""page-2""#,
        r#"{"ResourceId":"g1","ResourceType":"apiGroup","TagKey":"env","TagValue":"prod"},
           {"ResourceId":"other","ResourceType":"apiGroup","TagKey":"env","TagValue":"dev"}"#,
    );
    let second = page(
        r#""-1""#,
        r#"{"ResourceId":"g1","ResourceType":"ALIYUN::CLOUDAPI::GROUP","TagKey":"owner","TagValue":"web"}"#,
    );
    let mock = Mock::start(vec![first, second], reply(500, "unexpected")).await;
    let client = mock.client(fast_retry(1));
    let observed = client
        .list_tags("apiGroup", &ids(&["g1", "g2", "g1"]))
        .await
        .expect("list");

    let expected: TagsByResource = [
        ("g1".to_string(), tags(&[("env", "prod"), ("owner", "web")])),
        ("g2".to_string(), Tags::new()),
    ]
    .into_iter()
    .collect();
    assert_eq!(observed, expected);
    let received = mock.received();
    assert_eq!(received.len(), 2);
    for request in &received {
        request.assert_signed_with(SECRET);
        assert_eq!(request.param("Action").as_deref(), Some("ListTagResources"));
        assert_eq!(request.param("ResourceId.1").as_deref(), Some("g1"));
        assert_eq!(request.param("ResourceId.2").as_deref(), Some("g2"));
        assert_eq!(request.param("ResourceId.3"), None, "ids are listed once");
    }
    assert_eq!(received[0].param("NextToken"), None);
    assert_eq!(received[1].param("NextToken").as_deref(), Some("page-2"));
}

#[tokio::test]
async fn list_chunks_ids_by_the_resource_limit() {
    let mock = Mock::start(vec![], reply(200, r#"{"RequestId":"L"}"#)).await;
    let client = client_with(&mock.endpoint, fast_retry(1), |api| {
        api.config.limits.resources_per_call = 2;
    });
    let observed = client
        .list_tags("app", &ids(&["a", "b", "c"]))
        .await
        .expect("list");
    assert_eq!(observed.len(), 3);
    let received = mock.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[1].param("ResourceId.1").as_deref(), Some("c"));
    assert_eq!(received[1].param("ResourceId.2"), None);
}

#[tokio::test]
async fn list_stops_when_the_server_repeats_a_token() {
    let same = reply(200, r#"{"RequestId":"L","NextToken":"again"}"#);
    let mock = Mock::start(vec![], same).await;
    let client = mock.client(fast_retry(1));
    let error = client
        .list_tags("app", &ids(&["a"]))
        .await
        .expect_err("endless pagination");
    assert_eq!(error.code(), "PaginationLoop");
    assert!(error.message().contains("again"), "{}", error.message());
    assert_eq!(mock.received().len(), 2);
}

#[tokio::test]
async fn list_rejects_an_answer_that_is_not_json() {
    let mock = Mock::start(vec![], reply(200, "<html>login page</html>")).await;
    let client = mock.client(fast_retry(3));
    let error = client
        .list_tags("app", &ids(&["a"]))
        .await
        .expect_err("not JSON");
    assert_eq!(error.kind(), ErrorKind::InvalidInput);
    assert_eq!(error.code(), "InvalidResponse");
    assert!(
        error.message().contains("login page"),
        "{}",
        error.message()
    );
}

#[tokio::test]
async fn throttling_is_retried_with_a_fresh_nonce_each_time() {
    let throttled = error_reply(400, "Throttling.User");
    let mock = Mock::start(vec![throttled.clone(), throttled], ok()).await;
    let client = mock.client(fast_retry(5));
    let written = client
        .tag_resources("app", &ids(&["a"]), &tags(&[("k", "v")]))
        .await;
    assert_eq!(written, Ok(WriteResult::default()));
    let received = mock.received();
    assert_eq!(received.len(), 3);
    let nonces: std::collections::BTreeSet<Option<String>> = received
        .iter()
        .map(|request| request.param("SignatureNonce"))
        .collect();
    assert_eq!(nonces.len(), 3, "{nonces:?}");
    for request in &received {
        request.assert_signed_with(SECRET);
    }
}

/// Records what the client reports per attempt.
#[derive(Default)]
struct Outcomes(Mutex<Vec<String>>);

impl CallObserver for Outcomes {
    fn observe(&self, cloud: &'static str, action: &'static str, outcome: &str) {
        let mut seen = self.0.lock().expect("outcomes lock");
        seen.push(format!("{cloud} {action} {outcome}"));
    }
}

#[tokio::test]
async fn every_attempt_is_reported_to_the_observer() {
    let throttled = error_reply(400, "Throttling.User");
    let mock = Mock::start(vec![throttled], ok()).await;
    let outcomes = Arc::new(Outcomes::default());
    let client = mock.client(fast_retry(3)).with_observer(outcomes.clone());
    let untagged = client
        .untag_resources("app", &ids(&["a"]), &tags(&[("k", "v")]))
        .await;
    assert_eq!(untagged, Ok(WriteResult::default()));
    let seen = outcomes.0.lock().expect("outcomes lock").clone();
    assert_eq!(
        seen,
        [
            "alibaba UntagResources Throttling.User",
            "alibaba UntagResources ok"
        ]
    );
}

#[tokio::test]
async fn credential_errors_are_not_retried() {
    let mock = Mock::start(vec![], error_reply(404, "InvalidAccessKeyId.NotFound")).await;
    let client = mock.client(fast_retry(5));
    let error = client
        .tag_resources("app", &ids(&["a"]), &tags(&[("k", "v")]))
        .await
        .expect_err("bad key");
    assert_eq!(error.kind(), ErrorKind::Credentials);
    assert_eq!(error.code(), "InvalidAccessKeyId.NotFound");
    assert_eq!(
        error
            .cloud()
            .expect("the cloud's answer")
            .request_id
            .as_deref(),
        Some("ERR-1")
    );
    assert_eq!(
        error.cloud().expect("the cloud's answer").http_status,
        Some(404)
    );
    assert_eq!(error.cloud().expect("the cloud's answer").attempts, 1);
    assert_eq!(mock.received().len(), 1);
    assert_no_secret(&error);
}

#[tokio::test]
async fn retries_stop_at_max_attempts() {
    let mock = Mock::start(vec![], error_reply(503, "ServiceUnavailable")).await;
    let client = mock.client(fast_retry(3));
    let error = client
        .list_tags("app", &ids(&["a"]))
        .await
        .expect_err("always down");
    assert_eq!(error.kind(), ErrorKind::Retryable);
    assert_eq!(error.cloud().expect("the cloud's answer").attempts, 3);
    assert!(error.to_string().contains("after 3 attempts"), "{error}");
    assert_eq!(mock.received().len(), 3);
}

#[tokio::test]
async fn not_found_and_quota_errors_are_terminal() {
    let cases = [
        ("InvalidResourceId.NotFound", 404, ErrorKind::NotFound),
        ("OperationDenied.QuotaExceed", 400, ErrorKind::QuotaExceeded),
        ("InvalidParameter.TagKey", 400, ErrorKind::InvalidInput),
    ];
    for (code, status, kind) in cases {
        let mock = Mock::start(vec![], error_reply(status, code)).await;
        let client = mock.client(fast_retry(4));
        let error = client
            .tag_resources("app", &ids(&["a"]), &tags(&[("k", "v")]))
            .await
            .expect_err(code);
        assert_eq!(
            (
                error.kind(),
                error.cloud().expect("the cloud's answer").attempts
            ),
            (kind, 1),
            "{code}"
        );
        assert_eq!(mock.received().len(), 1, "{code}");
    }
}

#[tokio::test]
async fn retry_after_header_becomes_the_retry_hint() {
    let mut throttled = error_reply(400, "Throttling");
    throttled.retry_after = Some("2");
    let mock = Mock::start(vec![], throttled).await;
    let client = mock.client(fast_retry(1));
    let call = client
        .protocol()
        .list_call("app", &ids(&["a"]), None)
        .expect("a call");
    let failure = client.send(LIST, &call, 1).await.expect_err("throttled");
    assert_eq!(failure.retry_after, Some(Duration::from_secs(2)));
    assert_eq!(failure.error.kind(), ErrorKind::Retryable);
}

#[tokio::test]
async fn writes_over_the_limits_are_refused_before_sending() {
    let mock = Mock::start(vec![], ok()).await;
    let client = mock.client(fast_retry(1));
    let too_many_ids: Vec<String> = (0..51).map(|n| format!("id-{n}")).collect();
    let one = tags(&[("k", "v")]);
    let many: Tags = (0..21)
        .map(|n| (format!("k{n}"), "v".to_string()))
        .collect();
    let refusals = [
        client.tag_resources("app", &too_many_ids, &one).await,
        client.tag_resources("app", &ids(&["a"]), &many).await,
        client.untag_resources("app", &too_many_ids, &one).await,
        client.untag_resources("app", &ids(&["a"]), &many).await,
    ];
    for refusal in refusals {
        let error = refusal.expect_err("over a limit");
        assert_eq!(error.kind(), ErrorKind::InvalidInput);
        assert!(error.message().contains("at most"), "{}", error.message());
    }
    assert!(mock.received().is_empty());
}

#[tokio::test]
async fn non_json_server_errors_are_retryable_by_status() {
    let mock = Mock::start(vec![reply(502, "<html>Bad Gateway</html>")], ok()).await;
    let client = mock.client(fast_retry(2));
    let written = client
        .tag_resources("app", &ids(&["a"]), &tags(&[("k", "v")]))
        .await;
    assert_eq!(written, Ok(WriteResult::default()));
    assert_eq!(mock.received().len(), 2);
}

#[tokio::test]
async fn slow_answers_time_out_as_retryable() {
    let mut slow = ok();
    slow.delay = Duration::from_secs(5);
    let mock = Mock::start(vec![], slow).await;
    let client = client_with(&mock.endpoint, fast_retry(1), |api| {
        api.config.timeout = Duration::from_millis(50);
    });
    let error = client
        .list_tags("app", &ids(&["a"]))
        .await
        .expect_err("too slow");
    assert_eq!(
        (error.kind(), error.code()),
        (ErrorKind::Retryable, "Timeout")
    );
    assert!(error.message().contains("50ms"), "{}", error.message());
}

#[tokio::test]
async fn unreachable_endpoints_are_retryable_and_leak_no_parameters() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    drop(listener);
    let client = client_at(&endpoint, fast_retry(2));
    let error = client
        .list_tags("app", &ids(&["a"]))
        .await
        .expect_err("nobody listens");
    assert_eq!(
        (error.kind(), error.code()),
        (ErrorKind::Retryable, "Network")
    );
    assert_eq!(error.cloud().expect("the cloud's answer").attempts, 2);
    assert!(error.message().contains(&endpoint), "{}", error.message());
    assert!(
        !error.message().contains("Signature"),
        "{}",
        error.message()
    );
    assert_no_secret(&error);
}

#[tokio::test]
async fn malformed_endpoints_are_refused_and_no_attempt_is_counted() {
    let outcomes = Arc::new(Outcomes::default());
    let client = client_at("not a url", fast_retry(3)).with_observer(outcomes.clone());
    let error = client
        .list_tags("app", &ids(&["a"]))
        .await
        .expect_err("bad endpoint");
    assert_eq!(
        (error.kind(), error.code()),
        (ErrorKind::InvalidInput, "InvalidEndpoint")
    );
    assert_eq!(
        error.cloud(),
        None,
        "the client's refusal, not the cloud's answer"
    );
    let seen = outcomes.0.lock().expect("outcomes lock").clone();
    assert!(seen.is_empty(), "no HTTP attempt was made: {seen:?}");
}

#[test]
fn resource_types_are_checked_against_the_preset() {
    let client = client_at("http://127.0.0.1:9", fast_retry(1));
    assert_eq!(client.check_resource_type("apiGroup"), Ok(()));
    let refusal = client
        .check_resource_type("instance")
        .expect_err("not API Gateway")
        .to_string();
    assert!(refusal.contains("apiGroup, plugin, app, api"), "{refusal}");

    let open = client_with("http://127.0.0.1:9", fast_retry(1), |api| {
        api.resource_types = None;
    });
    assert_eq!(open.check_resource_type("anything"), Ok(()));
}

#[test]
fn debug_output_hides_the_secret() {
    let client = client_at("http://127.0.0.1:9", fast_retry(1));
    let printed = format!("{client:?}");
    assert!(printed.contains(KEY_ID));
    assert!(!printed.contains(SECRET));
}
