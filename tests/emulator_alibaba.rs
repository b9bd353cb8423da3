//! The emulator's Alibaba Cloud side over real HTTP on loopback. Requests are built and
//! signed here by hand (reqwest and the signing primitives), never through the client.

use std::collections::BTreeMap;
use std::path::PathBuf;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tagbinder::cloud::sign::{rpc_percent_encode, rpc_signature, rpc_string_to_sign};
use tagbinder::emulator::{
    Account, EmulatorConfig, FaultConfig, Inventory, InventoryResource, RunningEmulator, start,
};

const KEY_ID: &str = "LTAI5tEmulatorTestKey";
const SECRET: &str = "EmulatorTestSecret0123456789";

fn resource(resource_type: &str, id: &str, tags: &[(&str, &str)]) -> InventoryResource {
    InventoryResource {
        cloud: "alibaba".to_string(),
        region: "cn-hangzhou".to_string(),
        resource_type: resource_type.to_string(),
        id: id.to_string(),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn inventory() -> Inventory {
    Inventory {
        accounts: vec![Account {
            access_key_id: KEY_ID.to_string(),
            access_key_secret: SECRET.to_string(),
        }],
        resources: vec![
            resource("apiGroup", "g1", &[]),
            resource("apiGroup", "g2", &[("team", "web")]),
            resource("apiGroup", "g3", &[]),
            resource("app", "a1", &[]),
        ],
    }
}

fn config() -> EmulatorConfig {
    EmulatorConfig {
        inventory: inventory(),
        ..EmulatorConfig::default()
    }
}

async fn emulator(config: EmulatorConfig) -> RunningEmulator {
    start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .expect("the emulator starts")
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// Where the parameters travel.
#[derive(Clone, Copy, PartialEq)]
enum Transport {
    /// `GET /?all`.
    Get,
    /// `POST /` with everything in a form body (encoded by reqwest, `+` for space).
    PostForm,
    /// `POST /` with the common parameters in the query and the operation's in the body.
    PostSplit,
}

const COMMON: [&str; 8] = [
    "AccessKeyId",
    "Action",
    "Format",
    "SignatureMethod",
    "SignatureNonce",
    "SignatureVersion",
    "Timestamp",
    "Version",
];

/// One request, signed at send time over exactly its parameters.
struct Call {
    transport: Transport,
    params: Vec<(String, String)>,
    secret: String,
}

fn call(action: &str) -> Call {
    let timestamp = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let params = [
        ("AccessKeyId", KEY_ID),
        ("Action", action),
        ("Format", "JSON"),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureNonce", &uuid::Uuid::new_v4().to_string()),
        ("SignatureVersion", "1.0"),
        ("Timestamp", &timestamp),
        ("Version", "2016-07-14"),
    ];
    Call {
        transport: Transport::Get,
        params: params
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        secret: SECRET.to_string(),
    }
}

/// A parsed answer.
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["Code"].as_str().unwrap_or("")
    }
}

impl Call {
    fn param(mut self, name: &str, value: &str) -> Self {
        self.params.retain(|(n, _)| n != name);
        self.params.push((name.to_string(), value.to_string()));
        self
    }

    fn without(mut self, name: &str) -> Self {
        self.params.retain(|(n, _)| n != name);
        self
    }

    fn ids(self, ids: &[&str]) -> Self {
        ids.iter().enumerate().fold(self, |call, (n, id)| {
            call.param(&format!("ResourceId.{}", n + 1), id)
        })
    }

    fn tags(self, tags: &[(&str, &str)]) -> Self {
        tags.iter()
            .enumerate()
            .fold(self, |call, (n, (key, value))| {
                call.param(&format!("Tag.{}.Key", n + 1), key)
                    .param(&format!("Tag.{}.Value", n + 1), value)
            })
    }

    fn via(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    fn secret(mut self, secret: &str) -> Self {
        self.secret = secret.to_string();
        self
    }

    fn method(&self) -> &'static str {
        if self.transport == Transport::Get {
            "GET"
        } else {
            "POST"
        }
    }

    fn string_to_sign(&self) -> String {
        rpc_string_to_sign(
            self.method(),
            self.params.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        )
    }

    async fn send(self, emulator: &RunningEmulator) -> Answer {
        let (response, _) = self.send_raw(emulator).await;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.json().await.expect("a JSON answer");
        Answer {
            status,
            headers,
            body,
        }
    }

    /// Sends; answers the response and the signed parameters.
    async fn send_raw(
        self,
        emulator: &RunningEmulator,
    ) -> (reqwest::Response, Vec<(String, String)>) {
        let signature = rpc_signature(&self.secret, &self.string_to_sign());
        let mut signed = self.params.clone();
        signed.push(("Signature".to_string(), signature));
        let query = |pairs: &[(String, String)]| {
            pairs
                .iter()
                .map(|(n, v)| format!("{}={}", rpc_percent_encode(n), rpc_percent_encode(v)))
                .collect::<Vec<_>>()
                .join("&")
        };
        let client = http();
        let url = format!("{}/", emulator.url());
        let request = match self.transport {
            Transport::Get => client.get(format!("{url}?{}", query(&signed))),
            Transport::PostForm => client.post(url).form(&signed),
            Transport::PostSplit => {
                let (common, operation): (Vec<_>, Vec<_>) = signed
                    .iter()
                    .cloned()
                    .partition(|(n, _)| COMMON.contains(&n.as_str()) || n == "Signature");
                client
                    .post(format!("{url}?{}", query(&common)))
                    .form(&operation)
            }
        };
        (request.send().await.expect("the emulator answers"), signed)
    }
}

async fn state(emulator: &RunningEmulator) -> Value {
    http()
        .get(format!("{}/_emulator/state", emulator.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn stats(emulator: &RunningEmulator) -> Value {
    http()
        .get(format!("{}/_emulator/stats", emulator.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn tags_in(state: &Value, resource_type: &str, id: &str) -> BTreeMap<String, String> {
    serde_json::from_value(state["resources"]["alibaba"][resource_type][id]["tags"].clone())
        .expect("the resource is in the state")
}

/// Every (resource id, key, value) of ListTagResources, following NextToken; and the pages.
async fn list_all(
    emulator: &RunningEmulator,
    ids: &[&str],
) -> (Vec<(String, String, String)>, Vec<Value>) {
    let mut entries = Vec::new();
    let mut pages = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut call = call("ListTagResources")
            .param("ResourceType", "apiGroup")
            .ids(ids);
        if let Some(token) = &token {
            call = call.param("NextToken", token);
        }
        let answer = call.send(emulator).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        for entry in answer.body["TagResources"]["TagResource"]
            .as_array()
            .unwrap()
        {
            let field = |name: &str| entry[name].as_str().unwrap().to_string();
            entries.push((field("ResourceId"), field("TagKey"), field("TagValue")));
        }
        let next = answer.body["NextToken"].as_str().unwrap().to_string();
        pages.push(answer.body);
        if next == "-1" {
            return (entries, pages);
        }
        assert!(pages.len() < 50, "pagination does not end");
        token = Some(next);
    }
}

#[tokio::test]
async fn signed_get_and_post_requests_are_accepted() {
    let emulator = emulator(config()).await;
    for (transport, value) in [
        (Transport::Get, "a b*~/=&+%"),
        (Transport::PostForm, "环境 one+two"),
        (Transport::PostSplit, "split value"),
    ] {
        let answer = call("TagResources")
            .via(transport)
            .param("ResourceType", "apiGroup")
            .ids(&["g1"])
            .tags(&[("env", value)])
            .send(&emulator)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        let request_id = answer.body["RequestId"].as_str().unwrap();
        assert_eq!(request_id, request_id.to_uppercase());
        assert!(uuid::Uuid::parse_str(request_id).is_ok());
        assert_eq!(
            tags_in(&state(&emulator).await, "apiGroup", "g1")["env"],
            value
        );
    }
}

#[tokio::test]
async fn a_bad_signature_is_refused_with_the_server_string_to_sign() {
    let emulator = emulator(config()).await;
    let call = call("ListTagResources")
        .via(Transport::PostSplit)
        .param("ResourceType", "apiGroup")
        .ids(&["g1"])
        .secret("wrong-secret");
    let expected = call.string_to_sign();
    let answer = call.send(&emulator).await;
    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(answer.code(), "SignatureDoesNotMatch");
    let message = answer.body["Message"].as_str().unwrap();
    assert_eq!(
        message,
        format!(
            "Specified signature is not matched with our calculation. server string to sign is:{expected}"
        )
    );
    let request_id = answer.body["RequestId"].as_str().unwrap();
    assert_eq!(answer.body["HostId"], emulator.addr().to_string());
    assert_eq!(
        answer.body["Recommend"],
        format!(
            "https://api.aliyun.com/troubleshoot?q=SignatureDoesNotMatch&product=CloudAPI&requestId={request_id}"
        )
    );
}

#[tokio::test]
async fn a_tampered_parameter_breaks_the_signature() {
    let emulator = emulator(config()).await;
    let call = call("ListTagResources")
        .param("ResourceType", "apiGroup")
        .ids(&["g1"]);
    let signature = rpc_signature(SECRET, &call.string_to_sign());
    let mut query: Vec<String> = call
        .params
        .iter()
        .map(|(n, v)| format!("{}={}", rpc_percent_encode(n), rpc_percent_encode(v)))
        .collect();
    query.push(format!("Signature={}", rpc_percent_encode(&signature)));
    query.push("ResourceId.2=g2".to_string());
    let response = http()
        .get(format!("{}/?{}", emulator.url(), query.join("&")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["Code"], "SignatureDoesNotMatch");
}

#[tokio::test]
async fn credentials_nonces_and_timestamps_are_checked() {
    let emulator = emulator(config()).await;
    let unknown = call("ListTagResources")
        .param("AccessKeyId", "nobody")
        .ids(&["g1"])
        .send(&emulator)
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.code(), "InvalidAccessKeyId.NotFound");

    let first = call("ListTagResources")
        .param("ResourceType", "apiGroup")
        .ids(&["g1"])
        .param("SignatureNonce", "fixed-nonce");
    assert_eq!(first.send(&emulator).await.status, StatusCode::OK);
    let again = call("ListTagResources")
        .param("ResourceType", "apiGroup")
        .ids(&["g2"])
        .param("SignatureNonce", "fixed-nonce");
    let replay = again.send(&emulator).await;
    assert_eq!(replay.status, StatusCode::BAD_REQUEST);
    assert_eq!(replay.code(), "SignatureNonceUsed");

    let stale = (jiff::Timestamp::now() - jiff::SignedDuration::from_mins(16))
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let expired = call("ListTagResources")
        .param("ResourceType", "apiGroup")
        .ids(&["g1"])
        .param("Timestamp", &stale)
        .send(&emulator)
        .await;
    assert_eq!(expired.status, StatusCode::BAD_REQUEST);
    assert_eq!(expired.code(), "InvalidTimeStamp.Expired");
    assert_eq!(
        expired.body["Message"],
        "Specified time stamp or date value is expired."
    );

    let missing = call("ListTagResources")
        .without("SignatureNonce")
        .send(&emulator)
        .await;
    assert_eq!(missing.code(), "MissingParameter.SignatureNonce");
}

#[tokio::test]
async fn versions_actions_resource_types_and_repeated_names_are_checked() {
    let emulator = emulator(config()).await;
    let version = call("ListTagResources")
        .param("Version", "2099-01-01")
        .send(&emulator)
        .await;
    assert_eq!(
        (version.status, version.code()),
        (StatusCode::BAD_REQUEST, "InvalidVersion")
    );
    let action = call("DescribeRegions").send(&emulator).await;
    assert_eq!(
        (action.status, action.code()),
        (StatusCode::NOT_FOUND, "InvalidAction.NotFound")
    );
    let resource_type = call("ListTagResources")
        .param("ResourceType", "instance")
        .ids(&["g1"])
        .send(&emulator)
        .await;
    assert_eq!(
        (resource_type.status, resource_type.code()),
        (StatusCode::NOT_FOUND, "InvalidResourceType.NotFound")
    );
    let ecs = call("ListTagResources")
        .param("Version", "2014-05-26")
        .param("ResourceType", "instance")
        .ids(&["i-1"])
        .send(&emulator)
        .await;
    assert_eq!(
        ecs.status,
        StatusCode::OK,
        "ECS types are served under the ECS version"
    );

    // A name in both the query and the form body: the body's value counts, as the official
    // SDK signs it (aliyun-python-sdk-core adds RegionId to the query when a caller put it
    // in the body). g3 is in cn-hangzhou: the query's cn-beijing would not find it.
    let both = call("TagResources")
        .param("ResourceType", "apiGroup")
        .param("RegionId", "cn-hangzhou")
        .ids(&["g3"])
        .tags(&[("where", "body")])
        .via(Transport::PostForm);
    let signature = rpc_signature(SECRET, &both.string_to_sign());
    let mut body = both.params.clone();
    body.push(("Signature".to_string(), signature));
    let answer = http()
        .post(format!("{}/?RegionId=cn-beijing", emulator.url()))
        .form(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        answer.status(),
        StatusCode::OK,
        "{}",
        answer.text().await.unwrap()
    );
    assert_eq!(
        tags_in(&state(&emulator).await, "apiGroup", "g3")["where"],
        "body"
    );

    let twice = http()
        .get(format!(
            "{}/?Format=JSON&ResourceType=apiGroup&ResourceType=app",
            emulator.url()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(twice.status(), StatusCode::BAD_REQUEST);
    let body: Value = twice.json().await.unwrap();
    assert_eq!(body["Code"], "InvalidParameter");
    let message = body["Message"].as_str().unwrap();
    assert!(
        message.contains("\"ResourceType\"") && message.contains("more than once in the query"),
        "{message}"
    );
}

#[tokio::test]
async fn errors_default_to_xml_without_format() {
    let emulator = emulator(config()).await;
    let (response, _) = call("ListTagResources")
        .without("Format")
        .param("AccessKeyId", "nobody")
        .send_raw(&emulator)
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let xml = response.text().await.unwrap();
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(xml.contains("<Error><RequestId>"), "{xml}");
    assert!(
        xml.contains("<Code>InvalidAccessKeyId.NotFound</Code>"),
        "{xml}"
    );
}

#[tokio::test]
async fn tags_round_trip_and_overwrite() {
    let emulator = emulator(config()).await;
    let tag = |value: &'static str| {
        call("TagResources")
            .param("ResourceType", "apiGroup")
            .ids(&["g1", "g2"])
            .tags(&[("env", value), ("owner", "web")])
    };
    assert_eq!(tag("dev").send(&emulator).await.status, StatusCode::OK);
    assert_eq!(tag("prod").send(&emulator).await.status, StatusCode::OK);
    let (entries, _) = list_all(&emulator, &["g2", "g1", "unknown"]).await;
    let expected: Vec<(String, String, String)> = [
        ("g1", "env", "prod"),
        ("g1", "owner", "web"),
        ("g2", "env", "prod"),
        ("g2", "owner", "web"),
        ("g2", "team", "web"),
    ]
    .iter()
    .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    .collect();
    assert_eq!(entries, expected);
}

#[tokio::test]
async fn an_unknown_id_fails_the_whole_call_and_changes_nothing() {
    let emulator = emulator(config()).await;
    let before = state(&emulator).await;
    let answer = call("TagResources")
        .param("ResourceType", "apiGroup")
        .ids(&["g1", "missing", "g3"])
        .tags(&[("env", "prod")])
        .send(&emulator)
        .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.code(), "InvalidResourceId.NotFound");
    let other_region = call("TagResources")
        .param("ResourceType", "apiGroup")
        .param("RegionId", "cn-beijing")
        .ids(&["g1"])
        .tags(&[("env", "prod")])
        .send(&emulator)
        .await;
    assert_eq!(other_region.code(), "InvalidResourceId.NotFound");
    assert_eq!(state(&emulator).await, before);
}

#[tokio::test]
async fn the_quota_stops_at_twenty_tags_and_overwrites_do_not_count() {
    let emulator = emulator(config()).await;
    let twenty: Vec<(String, String)> = (1..=20)
        .map(|n| (format!("k{n}"), format!("v{n}")))
        .collect();
    let twenty: Vec<(&str, &str)> = twenty
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let filled = call("TagResources")
        .param("ResourceType", "apiGroup")
        .ids(&["g1"])
        .tags(&twenty)
        .send(&emulator)
        .await;
    assert_eq!(filled.status, StatusCode::OK, "{}", filled.body);
    let overwrite = call("TagResources")
        .param("ResourceType", "apiGroup")
        .ids(&["g1"])
        .tags(&[("k1", "new")])
        .send(&emulator)
        .await;
    assert_eq!(overwrite.status, StatusCode::OK, "{}", overwrite.body);
    let before = state(&emulator).await;
    let over = call("TagResources")
        .param("ResourceType", "apiGroup")
        .ids(&["g3", "g1"])
        .tags(&[("k21", "v")])
        .send(&emulator)
        .await;
    assert_eq!(over.status, StatusCode::BAD_REQUEST);
    assert_eq!(over.code(), "OperationDenied.QuotaExceed");
    let after = state(&emulator).await;
    assert_eq!(after, before, "g3 is not tagged either");
    assert_eq!(tags_in(&after, "apiGroup", "g1").len(), 20);
    assert_eq!(tags_in(&after, "apiGroup", "g1")["k1"], "new");
}

#[tokio::test]
async fn list_pages_hold_the_page_size_and_end_with_minus_one() {
    let emulator = emulator(EmulatorConfig {
        page_size: 2,
        ..config()
    })
    .await;
    let tagged = call("TagResources")
        .param("ResourceType", "apiGroup")
        .ids(&["g1", "g3"])
        .tags(&[("a", "1"), ("b", "2")])
        .send(&emulator)
        .await;
    assert_eq!(tagged.status, StatusCode::OK);
    let (entries, pages) = list_all(&emulator, &["g1", "g2", "g3"]).await;
    assert_eq!(entries.len(), 5);
    assert_eq!(pages.len(), 3);
    let sizes: Vec<usize> = pages
        .iter()
        .map(|p| p["TagResources"]["TagResource"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, [2, 2, 1]);
    assert_ne!(pages[0]["NextToken"], "-1");
    assert_eq!(pages[2]["NextToken"], "-1");
    assert_eq!(
        entries[2],
        ("g2".to_string(), "team".to_string(), "web".to_string())
    );
    let garbled = call("ListTagResources")
        .param("ResourceType", "apiGroup")
        .ids(&["g1"])
        .param("NextToken", "zz!")
        .send(&emulator)
        .await;
    assert_eq!(garbled.code(), "InvalidParameter.NextToken");
}

#[tokio::test]
async fn batch_limits_and_tag_rules_are_enforced() {
    let emulator = emulator(config()).await;
    let ids: Vec<String> = (1..=51).map(|n| format!("g{n}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let too_many = call("TagResources")
        .via(Transport::PostForm)
        .param("ResourceType", "apiGroup")
        .ids(&ids)
        .tags(&[("a", "b")])
        .send(&emulator)
        .await;
    assert_eq!(
        (too_many.status, too_many.code()),
        (StatusCode::BAD_REQUEST, "NumberExceed.ResourceIds")
    );
    let duplicate = call("TagResources")
        .param("ResourceType", "apiGroup")
        .ids(&["g1"])
        .tags(&[("env", "a"), ("env", "b")])
        .send(&emulator)
        .await;
    assert_eq!(duplicate.code(), "Duplicate.TagKey");
    let system = call("TagResources")
        .param("ResourceType", "apiGroup")
        .ids(&["g1"])
        .tags(&[("acs:env", "a")])
        .send(&emulator)
        .await;
    assert_eq!(
        (system.status, system.code()),
        (StatusCode::BAD_REQUEST, "InvalidTagKey.Malformed")
    );
    let no_key = call("TagResources")
        .param("ResourceType", "apiGroup")
        .ids(&["g1"])
        .param("Tag.1.Value", "v")
        .send(&emulator)
        .await;
    assert_eq!(no_key.code(), "InvalidParameter.TagKey");
    assert!(tags_in(&state(&emulator).await, "apiGroup", "g1").is_empty());
}

#[tokio::test]
async fn untag_ignores_absent_keys_and_all_removes_everything() {
    let emulator = emulator(config()).await;
    let absent = call("UntagResources")
        .param("ResourceType", "apiGroup")
        .ids(&["g1", "g2"])
        .param("TagKey.1", "nothing")
        .send(&emulator)
        .await;
    assert_eq!(absent.status, StatusCode::OK, "{}", absent.body);
    assert_eq!(
        tags_in(&state(&emulator).await, "apiGroup", "g2")["team"],
        "web"
    );
    let removed = call("UntagResources")
        .param("ResourceType", "apiGroup")
        .ids(&["g2"])
        .param("TagKey.1", "team")
        .send(&emulator)
        .await;
    assert_eq!(removed.status, StatusCode::OK);
    assert!(tags_in(&state(&emulator).await, "apiGroup", "g2").is_empty());
    let tagged = call("TagResources")
        .param("ResourceType", "app")
        .ids(&["a1"])
        .tags(&[("x", "1"), ("y", "2")])
        .send(&emulator)
        .await;
    assert_eq!(tagged.status, StatusCode::OK, "{}", tagged.body);
    // NB: All=true must have something to remove, or the check below proves nothing.
    assert_eq!(
        tags_in(&state(&emulator).await, "app", "a1").len(),
        2,
        "a1 carries x and y before the UntagResources All=true"
    );
    let all = call("UntagResources")
        .param("ResourceType", "app")
        .ids(&["a1"])
        .param("All", "true")
        .send(&emulator)
        .await;
    assert_eq!(all.status, StatusCode::OK);
    assert!(tags_in(&state(&emulator).await, "app", "a1").is_empty());
}

#[tokio::test]
async fn state_persists_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state_file: PathBuf = dir.path().join("deep/cloud.json");
    let first = emulator(EmulatorConfig {
        state_file: Some(state_file.clone()),
        ..config()
    })
    .await;
    let tagged = call("TagResources")
        .param("ResourceType", "apiGroup")
        .ids(&["g1"])
        .tags(&[("env", "prod")])
        .send(&first)
        .await;
    assert_eq!(tagged.status, StatusCode::OK);
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    assert!(
        written["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == "g1" && r["tags"]["env"] == "prod")
    );
    first.shutdown().await.unwrap();

    let mut changed_inventory = config();
    changed_inventory.inventory.resources.clear();
    let second = emulator(EmulatorConfig {
        state_file: Some(state_file),
        ..changed_inventory
    })
    .await;
    let state = state(&second).await;
    assert_eq!(tags_in(&state, "apiGroup", "g1")["env"], "prod");
    assert_eq!(
        tags_in(&state, "apiGroup", "g2")["team"],
        "web",
        "resources come from the state file"
    );
    let listed = call("ListTagResources")
        .param("ResourceType", "apiGroup")
        .ids(&["g1"])
        .send(&second)
        .await;
    assert_eq!(
        listed.status,
        StatusCode::OK,
        "accounts still come from the inventory"
    );
    second.shutdown().await.unwrap();
}

#[tokio::test]
async fn stats_count_by_cloud_action_and_outcome() {
    let emulator = emulator(config()).await;
    call("TagResources")
        .param("ResourceType", "apiGroup")
        .ids(&["g1"])
        .tags(&[("a", "b")])
        .send(&emulator)
        .await;
    call("TagResources")
        .param("ResourceType", "apiGroup")
        .ids(&["nope"])
        .tags(&[("a", "b")])
        .send(&emulator)
        .await;
    call("ListTagResources")
        .param("ResourceType", "apiGroup")
        .ids(&["g1"])
        .send(&emulator)
        .await;
    state(&emulator).await;
    let counts = stats(&emulator).await;
    assert_eq!(
        counts["total"], 3,
        "control endpoints are not counted: {counts}"
    );
    assert_eq!(counts["requests"]["alibaba"]["TagResources"]["ok"], 1);
    assert_eq!(
        counts["requests"]["alibaba"]["TagResources"]["InvalidResourceId.NotFound"],
        1
    );
    assert_eq!(counts["requests"]["alibaba"]["ListTagResources"]["ok"], 1);
    assert_eq!(counts["outcomes"]["ok"], 2);
    let reset = http()
        .post(format!("{}/_emulator/stats/reset", emulator.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert_eq!(stats(&emulator).await["total"], 0);
}

#[tokio::test]
async fn the_control_endpoint_edits_tags_out_of_band() {
    let emulator = emulator(config()).await;
    let edit = |body: Value| {
        let url = format!("{}/_emulator/tags", emulator.url());
        async move { http().post(url).json(&body).send().await.unwrap() }
    };
    let edited = edit(json!({"cloud": "alibaba", "type": "apiGroup", "id": "g2", "set": {"acs:rm:rgId": "rg-1"}, "remove": ["team"]})).await;
    assert_eq!(edited.status(), StatusCode::OK);
    assert_eq!(
        tags_in(&state(&emulator).await, "apiGroup", "g2"),
        BTreeMap::from([("acs:rm:rgId".to_string(), "rg-1".to_string())])
    );
    let missing =
        edit(json!({"cloud": "alibaba", "type": "apiGroup", "id": "none", "set": {"a": "b"}}))
            .await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_throttle_ratio_of_one_throttles_every_call() {
    let emulator = emulator(EmulatorConfig {
        faults: FaultConfig {
            throttle_ratio: 1.0,
            ..FaultConfig::default()
        },
        ..config()
    })
    .await;
    for _ in 0..5 {
        let answer = call("ListTagResources")
            .param("ResourceType", "apiGroup")
            .ids(&["g1"])
            .send(&emulator)
            .await;
        assert_eq!(
            (answer.status, answer.code()),
            (StatusCode::BAD_REQUEST, "Throttling.User")
        );
        assert_eq!(
            answer.body["Message"],
            "Request was denied due to user flow control."
        );
        assert!(answer.headers.get("x-acs-retry-after").is_none());
    }
    assert_eq!(
        stats(&emulator).await["requests"]["alibaba"]["ListTagResources"]["Throttling.User"],
        5
    );
}

#[tokio::test]
async fn the_rate_limit_throttles_with_a_retry_after() {
    let emulator = emulator(EmulatorConfig {
        faults: FaultConfig {
            throttle_above: Some(0.001),
            ..FaultConfig::default()
        },
        ..config()
    })
    .await;
    let first = call("ListTagResources")
        .param("ResourceType", "apiGroup")
        .ids(&["g1"])
        .send(&emulator)
        .await;
    assert_eq!(first.status, StatusCode::OK);
    let second = call("ListTagResources")
        .param("ResourceType", "apiGroup")
        .ids(&["g1"])
        .send(&emulator)
        .await;
    assert_eq!(second.code(), "Throttling.User");
    assert_eq!(second.headers["x-acs-retry-after"], "1");
}

#[tokio::test]
async fn a_seeded_error_ratio_repeats_its_sequence() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let emulator = emulator(EmulatorConfig {
            faults: FaultConfig {
                error_ratio: 0.5,
                seed: Some(42),
                ..FaultConfig::default()
            },
            ..config()
        })
        .await;
        let mut outcomes = Vec::new();
        for _ in 0..24 {
            let answer = call("ListTagResources")
                .param("ResourceType", "apiGroup")
                .ids(&["g1"])
                .send(&emulator)
                .await;
            outcomes.push((answer.status, answer.code().to_string()));
        }
        emulator.shutdown().await.unwrap();
        runs.push(outcomes);
    }
    assert_eq!(runs[0], runs[1]);
    assert!(runs[0].iter().any(|(status, _)| *status == StatusCode::OK));
    assert!(runs[0].iter().any(|(status, code)| status.is_server_error()
        && (code == "InternalError" || code == "ServiceUnavailable")));
}

#[tokio::test]
async fn an_invalid_configuration_does_not_start() {
    let mut twice = config();
    twice
        .inventory
        .resources
        .push(resource("apiGroup", "g1", &[]));
    let error = start("127.0.0.1:0".parse().unwrap(), twice)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
    assert!(error.to_string().contains("alibaba/apiGroup/g1"), "{error}");
    let no_pages = EmulatorConfig {
        page_size: 0,
        ..config()
    };
    let error = start("127.0.0.1:0".parse().unwrap(), no_pages)
        .await
        .unwrap_err();
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidInput);
}

/// Issue 13: ListTagResources with `Tag.N` filters and no `ResourceId.N` selects every
/// resource of the type that carries all of them, across pages.
#[tokio::test]
async fn listing_by_tag_filter_alone_selects_across_pages() {
    let emulator = emulator(EmulatorConfig {
        page_size: 1,
        ..config()
    })
    .await;
    let tagged = call("TagResources")
        .param("ResourceType", "apiGroup")
        .ids(&["g1", "g2", "g3"])
        .tags(&[("env", "prod")])
        .send(&emulator)
        .await;
    assert_eq!(tagged.status, StatusCode::OK, "{}", tagged.body);
    let mut selected = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut list = call("ListTagResources")
            .param("ResourceType", "apiGroup")
            .tags(&[("env", "prod"), ("team", "web")]);
        if let Some(token) = &token {
            list = list.param("NextToken", token);
        }
        let answer = list.send(&emulator).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
        pages += 1;
        for entry in answer.body["TagResources"]["TagResource"]
            .as_array()
            .unwrap()
        {
            selected.push(format!("{}:{}", entry["ResourceId"], entry["TagKey"]));
        }
        match answer.body["NextToken"].as_str() {
            Some("-1") | None => break,
            Some(next) => token = Some(next.to_string()),
        }
        assert!(pages < 20, "pagination does not end");
    }
    // g2 alone carries both; every tag of a selected resource is listed, one per page.
    assert_eq!(selected, ["\"g2\":\"env\"", "\"g2\":\"team\""]);
    assert_eq!(pages, 2);
}
