//! The Tag service client over real HTTP on loopback, against the scripted mock: ARNs,
//! `Tags` as a JSON object, `Category=Custom` and `PageSize`, answers that carry the real
//! account id, per-resource failures, its limits, and V3 signatures.

use std::time::Duration;

use axum::http::Method;

use super::mock::{Mock, reply};
use super::{KEY_ID, SECRET, fast_retry, ids, tags};
use crate::cloud::alibaba::{AlibabaConfig, SignatureVersion, TagService, TagServiceClient};
use crate::cloud::{AccessKey, ErrorKind, RetryPolicy, TagApi, WriteResult};
use crate::tags::{Limits, Tags, TagsByResource};

pub(super) fn client(
    endpoint: &str,
    signature: SignatureVersion,
    retry: RetryPolicy,
) -> TagServiceClient {
    let _ = rustls::crypto::ring::default_provider().install_default();
    TagServiceClient::new(
        TagService {
            config: AlibabaConfig {
                endpoint: endpoint.to_string(),
                api_version: "2018-08-28".to_string(),
                region: "cn-hangzhou".to_string(),
                signature,
                credentials: AccessKey::new(KEY_ID, SECRET).into(),
                retry,
                timeout: Duration::from_secs(10),
                limits: Limits::alibaba_tag_service(),
            },
            account_id: "*".to_string(),
        },
        reqwest::Client::new(),
    )
}

const OK: &str = r#"{"RequestId":"OK-1"}"#;

#[tokio::test]
async fn tag_resources_sends_arns_and_tags_as_one_json_object() {
    let mock = Mock::start(vec![], reply(200, OK)).await;
    let client = client(&mock.endpoint, SignatureVersion::V1, fast_retry(1));
    let declared = tags(&[("env", "prod"), ("环境", "a b\"c")]);
    let written = client
        .tag_resources("ecs:instance", &ids(&["i-1", "i-2"]), &declared)
        .await;
    assert_eq!(written, Ok(WriteResult::default()));
    let received = mock.received();
    assert_eq!(received.len(), 1);
    let request = &received[0];
    assert_eq!(request.method, Method::POST);
    request.assert_signed_with(SECRET);
    assert_eq!(request.param("Action").as_deref(), Some("TagResources"));
    assert_eq!(request.param("Version").as_deref(), Some("2018-08-28"));
    assert_eq!(request.param("RegionId").as_deref(), Some("cn-hangzhou"));
    assert_eq!(
        request.param("ResourceARN.1").as_deref(),
        Some("arn:acs:ecs:cn-hangzhou:*:instance/i-1")
    );
    assert_eq!(
        request.param("ResourceARN.2").as_deref(),
        Some("arn:acs:ecs:cn-hangzhou:*:instance/i-2")
    );
    let sent: Tags = serde_json::from_str(&request.param("Tags").expect("Tags")).expect("JSON");
    assert_eq!(sent, declared);
    assert_eq!(request.param("ResourceType"), None);
    assert_eq!(request.param("Tag.1.Key"), None);
}

#[tokio::test]
async fn untag_sends_keys_only() {
    let mock = Mock::start(vec![], reply(200, OK)).await;
    let client = client(&mock.endpoint, SignatureVersion::V1, fast_retry(1));
    client
        .untag_resources(
            "rds:dbinstance",
            &ids(&["rm-1"]),
            &tags(&[("a", "1"), ("b", "2")]),
        )
        .await
        .expect("untag");
    let request = &mock.received()[0];
    assert_eq!(request.param("Action").as_deref(), Some("UntagResources"));
    assert_eq!(
        request.param("ResourceARN.1").as_deref(),
        Some("arn:acs:rds:cn-hangzhou:*:dbinstance/rm-1")
    );
    assert_eq!(request.param("TagKey.1").as_deref(), Some("a"));
    assert_eq!(request.param("TagKey.2").as_deref(), Some("b"));
    assert_eq!(request.param("All"), None);
    assert_eq!(request.param("Tags"), None);
}

#[tokio::test]
async fn list_reads_custom_tags_to_the_last_page_matching_the_real_account_id() {
    let first = reply(
        200,
        r#"{"RequestId":"L1","NextToken":"p2","TagResources":[
            {"ResourceARN":"arn:acs:oss:cn-hangzhou:1234567890123456:bucket/logs",
             "Tags":[{"Key":"env","Value":"prod","Category":"Custom"}]}]}"#,
    );
    let second = reply(
        200,
        r#"{"RequestId":"L2","NextToken":"","TagResources":[
            {"ResourceARN":"arn:acs:oss:cn-hangzhou:1234567890123456:bucket/logs",
             "Tags":[{"Key":"acs:rm:rgId","Value":"rg-1","Category":"System"},
                     {"Key":"owner","Value":"data","Category":"Custom"}]}]}"#,
    );
    let mock = Mock::start(vec![first, second], reply(500, "unexpected")).await;
    let client = client(&mock.endpoint, SignatureVersion::V1, fast_retry(1));
    let observed = client
        .list_tags("oss:bucket", &ids(&["logs", "media"]))
        .await
        .expect("list");
    let expected: TagsByResource = [
        (
            "logs".to_string(),
            tags(&[("env", "prod"), ("owner", "data")]),
        ),
        ("media".to_string(), Tags::new()),
    ]
    .into_iter()
    .collect();
    assert_eq!(observed, expected);
    let received = mock.received();
    assert_eq!(received.len(), 2, "an empty NextToken ends the listing");
    for request in &received {
        request.assert_signed_with(SECRET);
        assert_eq!(request.param("Category").as_deref(), Some("Custom"));
        assert_eq!(request.param("PageSize").as_deref(), Some("1000"));
        assert_eq!(
            request.param("ResourceARN.2").as_deref(),
            Some("arn:acs:oss:cn-hangzhou:*:bucket/media")
        );
    }
    assert_eq!(received[1].param("NextToken").as_deref(), Some("p2"));
}

#[tokio::test]
async fn failed_resources_fail_alone() {
    let answer = reply(
        200,
        r#"{"RequestId":"W","FailedResources":{"FailedResource":[
            {"ResourceARN":"arn:acs:ecs:cn-hangzhou:1234567890123456:instance/i-gone",
             "Result":{"Code":"InvalidResourceId.NotFound","Message":"The resource is not found."}}]}}"#,
    );
    let mock = Mock::start(vec![answer], reply(500, "unexpected")).await;
    let client = client(&mock.endpoint, SignatureVersion::V1, fast_retry(1));
    let result = client
        .tag_resources(
            "ecs:instance",
            &ids(&["i-1", "i-gone"]),
            &tags(&[("env", "prod")]),
        )
        .await
        .expect("the call was accepted");
    assert_eq!(result.failed.len(), 1);
    let failure = &result.failed["i-gone"];
    assert_eq!(failure.kind, ErrorKind::NotFound);
    assert!(
        failure.message.contains("InvalidResourceId.NotFound"),
        "{}",
        failure.message
    );
    assert_eq!(mock.received().len(), 1, "no retry, no split");
}

#[tokio::test]
async fn its_limits_are_ten_tags_and_ten_keys_per_call() {
    let mock = Mock::start(vec![], reply(200, OK)).await;
    let client = client(&mock.endpoint, SignatureVersion::V1, fast_retry(1));
    assert_eq!(client.limits().tags_per_call, 10);
    assert_eq!(client.limits().keys_per_untag_call, 10);
    let eleven: Tags = (0..11)
        .map(|n| (format!("k{n}"), "v".to_string()))
        .collect();
    for refusal in [
        client
            .tag_resources("ecs:instance", &ids(&["i-1"]), &eleven)
            .await,
        client
            .untag_resources("ecs:instance", &ids(&["i-1"]), &eleven)
            .await,
    ] {
        let error = refusal.expect_err("over the limit");
        assert_eq!((error.code(), error.cloud()), ("BatchTooLarge", None));
        assert!(
            error.message().contains("at most 10"),
            "{}",
            error.message()
        );
    }
    let ten: Tags = eleven.into_iter().take(10).collect();
    assert!(
        client
            .tag_resources("ecs:instance", &ids(&["i-1"]), &ten)
            .await
            .is_ok()
    );
    assert_eq!(mock.received().len(), 1);
}

#[tokio::test]
async fn v3_requests_are_verifiable_and_carry_the_action_in_headers() {
    let mock = Mock::start(vec![], reply(200, OK)).await;
    let client = client(&mock.endpoint, SignatureVersion::V3, fast_retry(1));
    client
        .tag_resources("vpc:vpc", &ids(&["vpc-1"]), &tags(&[("env", "a b*~")]))
        .await
        .expect("tag");
    client
        .list_tags("vpc:vpc", &ids(&["vpc-1"]))
        .await
        .expect("list");
    let received = mock.received();
    assert_eq!(received.len(), 2);
    for request in &received {
        request.assert_v3_signed_with(KEY_ID, SECRET);
        assert_eq!(
            request.header("x-acs-version").as_deref(),
            Some("2018-08-28")
        );
        assert!(
            request.query.is_empty(),
            "no parameter in the query: {}",
            request.query
        );
        assert_eq!(request.param("Signature"), None);
        assert_eq!(request.param("AccessKeyId"), None);
        assert!(!request.body.contains(SECRET));
    }
    assert_eq!(
        received[0].header("x-acs-action").as_deref(),
        Some("TagResources")
    );
    assert_eq!(
        received[0].param("ResourceARN.1").as_deref(),
        Some("arn:acs:vpc:cn-hangzhou:*:vpc/vpc-1")
    );
    assert_eq!(
        received[1].header("x-acs-action").as_deref(),
        Some("ListTagResources")
    );
    assert_ne!(
        received[0].header("x-acs-signature-nonce"),
        received[1].header("x-acs-signature-nonce")
    );
}

#[test]
fn resource_types_are_product_and_type() {
    let client = client("http://127.0.0.1:9", SignatureVersion::V1, fast_retry(1));
    assert_eq!(client.check_resource_type("slb:instance"), Ok(()));
    let refusal = client
        .check_resource_type("instance")
        .expect_err("no product")
        .to_string();
    assert!(refusal.contains("PRODUCT:TYPE"), "{refusal}");
    let printed = format!("{client:?}");
    assert!(
        printed.contains(KEY_ID) && !printed.contains(SECRET),
        "{printed}"
    );
}
