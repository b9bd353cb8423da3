//! Selects (list by tag) over real HTTP on loopback, against the scripted mock: the product
//! APIs' `Tag.N` without `ResourceId.N`, the Tag service's `Tags` filter without ARNs, every
//! page followed (retried and observed as every call), and what the answer names beyond the
//! filter dropped.

use std::sync::Arc;

use super::mock::{Mock, error_reply, reply};
use super::tag_service;
use super::{Outcomes, SECRET, client_with, fast_retry, tags};
use crate::cloud::alibaba::SignatureVersion;
use crate::cloud::{ErrorKind, TagApi};
use crate::tags::Tags;

fn product_page(token: &str, entries: &[(&str, &str, &str)]) -> super::mock::Reply {
    let entries: Vec<String> = entries
        .iter()
        .map(|(id, key, value)| {
            format!(
                r#"{{"ResourceId":"{id}","ResourceType":"apiGroup","TagKey":"{key}","TagValue":"{value}"}}"#
            )
        })
        .collect();
    reply(
        200,
        &format!(
            r#"{{"RequestId":"S","NextToken":"{token}","TagResources":{{"TagResource":[{}]}}}}"#,
            entries.join(",")
        ),
    )
}

#[tokio::test]
async fn a_product_select_filters_by_tag_n_alone_and_follows_every_page() {
    let first = product_page(
        "page-2",
        &[
            ("g1", "env", "prod"),
            ("g1", "team", "web"),
            ("g2", "env", "prod"),
        ],
    );
    let second = product_page("-1", &[("g2", "team", "web"), ("g2", "owner", "x")]);
    let throttled = error_reply(400, "Throttling.User");
    let mock = Mock::start(vec![first, throttled, second], reply(500, "unexpected")).await;
    let outcomes = Arc::new(Outcomes::default());
    let client = client_with(&mock.endpoint, fast_retry(3), |_| {}).with_observer(outcomes.clone());
    let match_tags = tags(&[("team", "web"), ("env", "prod")]);
    let selected = client
        .select_resources("apiGroup", &match_tags)
        .await
        .expect("select");
    assert_eq!(selected.keys().collect::<Vec<_>>(), ["g1", "g2"]);
    assert_eq!(
        selected["g2"],
        tags(&[("env", "prod"), ("team", "web"), ("owner", "x")]),
        "a resource's entries add up across pages"
    );

    let seen = outcomes.0.lock().expect("outcomes lock").clone();
    assert_eq!(
        seen,
        [
            "alibaba ListTagResources ok",
            "alibaba ListTagResources Throttling.User",
            "alibaba ListTagResources ok"
        ],
        "every attempt observed, the throttled page retried"
    );
    let received = mock.received();
    assert_eq!(received.len(), 3);
    for request in &received {
        request.assert_signed_with(SECRET);
        assert_eq!(request.param("Action").as_deref(), Some("ListTagResources"));
        assert_eq!(request.param("ResourceType").as_deref(), Some("apiGroup"));
        assert_eq!(request.param("RegionId").as_deref(), Some("cn-hangzhou"));
        assert_eq!(request.param("ResourceId.1"), None, "no resource ids");
        assert_eq!(request.param("Tag.1.Key").as_deref(), Some("env"));
        assert_eq!(request.param("Tag.1.Value").as_deref(), Some("prod"));
        assert_eq!(request.param("Tag.2.Key").as_deref(), Some("team"));
        assert_eq!(request.param("Tag.2.Value").as_deref(), Some("web"));
        assert_eq!(request.param("Tag.3.Key"), None);
    }
    assert_eq!(received[0].param("NextToken"), None);
    assert_eq!(received[1].param("NextToken").as_deref(), Some("page-2"));
    assert_eq!(received[2].param("NextToken").as_deref(), Some("page-2"));
}

#[tokio::test]
async fn resources_a_server_listed_beyond_the_filter_are_not_selected() {
    // A server that ignored the filter and listed everything of the type.
    let unfiltered = product_page(
        "",
        &[
            ("g1", "team", "web"),
            ("g2", "team", "db"),
            ("g3", "owner", "x"),
            ("g4", "TEAM", "web"),
        ],
    );
    let mock = Mock::start(vec![unfiltered], reply(500, "unexpected")).await;
    let client = client_with(&mock.endpoint, fast_retry(1), |_| {});
    let selected = client
        .select_resources("apiGroup", &tags(&[("team", "web")]))
        .await
        .expect("select");
    assert_eq!(selected.keys().collect::<Vec<_>>(), ["g1"]);
    assert_eq!(mock.received().len(), 1);
}

#[tokio::test]
async fn empty_or_oversized_selectors_are_refused_unsent() {
    let mock = Mock::start(vec![], reply(500, "unexpected")).await;
    let client = client_with(&mock.endpoint, fast_retry(1), |_| {});
    let error = client
        .select_resources("apiGroup", &Tags::new())
        .await
        .unwrap_err();
    assert_eq!(
        (error.kind(), error.code()),
        (ErrorKind::InvalidInput, "EmptyMatchTags")
    );
    let many: Tags = (1..=21)
        .map(|i| (format!("k{i}"), "v".to_string()))
        .collect();
    let error = client
        .select_resources("apiGroup", &many)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "TooManyMatchTags");
    assert!(error.message().contains("21 matchTags"), "{error}");
    assert!(error.message().contains("at most 20"), "{error}");

    let service = tag_service::client(&mock.endpoint, SignatureVersion::V1, fast_retry(1));
    let eleven: Tags = many.into_iter().take(11).collect();
    let error = service
        .select_resources("ecs:instance", &eleven)
        .await
        .unwrap_err();
    assert_eq!(error.code(), "TooManyMatchTags");
    assert!(error.message().contains("at most 10"), "{error}");
    assert!(mock.received().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn a_tag_service_select_sends_the_tags_filter_and_keeps_the_bindings_kind() {
    let first = reply(
        200,
        r#"{"RequestId":"S","NextToken":"n2","TagResources":[
            {"ResourceARN":"arn:acs:ecs:cn-hangzhou:1234567890123456:instance/i-1",
             "Tags":[{"Key":"team","Value":"web","Category":"Custom"}]},
            {"ResourceARN":"arn:acs:ecs:cn-hangzhou:1234567890123456:disk/d-1",
             "Tags":[{"Key":"team","Value":"web","Category":"Custom"}]},
            {"ResourceARN":"arn:acs:rds:cn-hangzhou:1234567890123456:instance/rm-1",
             "Tags":[{"Key":"team","Value":"web","Category":"Custom"}]}]}"#,
    );
    let second = reply(
        200,
        r#"{"RequestId":"S","NextToken":"","TagResources":[
            {"ResourceARN":"arn:acs:ecs:cn-hangzhou:1234567890123456:instance/i-2",
             "Tags":[{"Key":"team","Value":"web","Category":"Custom"},
                     {"Key":"acs:rm:rgId","Value":"rg-1","Category":"System"}]},
            {"ResourceARN":"arn:acs:ecs:cn-hangzhou:1234567890123456:instance/i-3",
             "Tags":[{"Key":"team","Value":"db","Category":"Custom"}]}]}"#,
    );
    let mock = Mock::start(vec![first, second], reply(500, "unexpected")).await;
    let client = tag_service::client(&mock.endpoint, SignatureVersion::V1, fast_retry(1));
    let selected = client
        .select_resources("ecs:instance", &tags(&[("team", "web")]))
        .await
        .expect("select");
    assert_eq!(selected.keys().collect::<Vec<_>>(), ["i-1", "i-2"]);
    assert_eq!(
        selected["i-2"],
        tags(&[("team", "web")]),
        "custom tags only"
    );

    let received = mock.received();
    assert_eq!(received.len(), 2);
    for request in &received {
        request.assert_signed_with(SECRET);
        assert_eq!(request.param("Action").as_deref(), Some("ListTagResources"));
        assert_eq!(request.param("Version").as_deref(), Some("2018-08-28"));
        assert_eq!(request.param("RegionId").as_deref(), Some("cn-hangzhou"));
        assert_eq!(request.param("Tags").as_deref(), Some(r#"{"team":"web"}"#));
        assert_eq!(request.param("Category").as_deref(), Some("Custom"));
        assert_eq!(request.param("PageSize").as_deref(), Some("1000"));
        assert_eq!(request.param("ResourceARN.1"), None, "no ARNs");
    }
    assert_eq!(received[1].param("NextToken").as_deref(), Some("n2"));

    let error = client
        .select_resources("instance", &tags(&[("team", "web")]))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "InvalidResourceType");
    assert_eq!(mock.received().len(), 2, "a bad type is refused unsent");
}

#[tokio::test]
async fn a_select_stops_when_the_server_repeats_a_token() {
    let looping = product_page("again", &[("g1", "team", "web")]);
    let mock = Mock::start(vec![], looping).await;
    let client = client_with(&mock.endpoint, fast_retry(1), |_| {});
    let error = client
        .select_resources("apiGroup", &tags(&[("team", "web")]))
        .await
        .unwrap_err();
    assert_eq!(error.code(), "PaginationLoop");
    assert_eq!(
        mock.received().len(),
        2,
        "the repeated token is not followed"
    );
}
