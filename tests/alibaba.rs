//! Alibaba Cloud over real HTTP on loopback: the client against the emulator. Its product
//! APIs are all-or-nothing (a call with one unknown id fails whole), so "one bad resource does
//! not block the others" rests on the client isolating the bad id (`cloud::isolate`): checked
//! here with the emulator's own answers, not a fake's.

use std::time::Duration;

use serde_json::Value;
use tagbinder::cloud::alibaba::{
    AlibabaClient, AlibabaConfig as ClientConfig, ProductApi, SignatureVersion,
};
use tagbinder::cloud::{AccessKey, ErrorKind, RetryPolicy, TagApi, Write, WriteOp};
use tagbinder::emulator::{
    Account, EmulatorConfig, Inventory, InventoryResource, RunningEmulator, start,
};
use tagbinder::tags::{Limits, Tags};

const KEY_ID: &str = "LTAI5tAlibabaClientTestKey";
const SECRET: &str = "alibaba-client-test-secret-0123456789";

fn resource(id: &str, tags: &[(&str, &str)]) -> InventoryResource {
    InventoryResource {
        cloud: "alibaba".to_string(),
        region: "cn-hangzhou".to_string(),
        resource_type: "apiGroup".to_string(),
        id: id.to_string(),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

async fn emulator() -> RunningEmulator {
    let config = EmulatorConfig {
        inventory: Inventory {
            accounts: vec![Account {
                access_key_id: KEY_ID.to_string(),
                access_key_secret: SECRET.to_string(),
            }],
            resources: vec![
                resource("g1", &[]),
                resource("g2", &[("team", "web")]),
                resource("g3", &[]),
            ],
        },
        ..EmulatorConfig::default()
    };
    start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .expect("the emulator starts")
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

fn client(url: &str) -> AlibabaClient {
    let config = ClientConfig {
        endpoint: url.to_string(),
        api_version: "2016-07-14".to_string(),
        region: "cn-hangzhou".to_string(),
        signature: SignatureVersion::V1,
        credentials: AccessKey::new(KEY_ID, SECRET).into(),
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        },
        timeout: Duration::from_secs(5),
        limits: Limits::alibaba(),
    };
    let protocol = ProductApi {
        config,
        resource_types: None,
    };
    AlibabaClient::new(protocol, http())
}

fn ids(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn control(emulator: &RunningEmulator, path: &str) -> Value {
    http()
        .get(format!("{}/_emulator/{path}", emulator.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn tags_in(state: &Value, id: &str) -> Value {
    state["resources"]["alibaba"]["apiGroup"][id]["tags"].clone()
}

#[tokio::test]
async fn an_unknown_id_fails_alone_and_the_others_are_tagged_and_untagged() {
    let emulator = emulator().await;
    let client = client(&emulator.url());
    let batch = ids(&["g1", "g-decommissioned", "g2", "g3"]);
    let env = tags(&[("env", "prod")]);
    let results = client
        .write_all(
            "apiGroup",
            &[Write {
                op: WriteOp::Tag,
                resource_ids: &batch,
                tags: &env,
            }],
        )
        .await;
    let [Ok(result)] = results.as_slice() else {
        panic!("one write, written but for the bad id: {results:?}");
    };
    let failed: Vec<&String> = result.failed.keys().collect();
    assert_eq!(failed, ["g-decommissioned"], "{result:?}");
    assert_eq!(result.failed["g-decommissioned"].kind, ErrorKind::NotFound);
    let state = control(&emulator, "state").await;
    for id in ["g1", "g2", "g3"] {
        assert_eq!(tags_in(&state, id)["env"], "prod", "{id} tagged");
    }
    assert_eq!(tags_in(&state, "g2")["team"], "web", "foreign tag kept");
    // NB: the emulator answered the whole call with the cloud's error first: the isolation
    // is the client's, not a property of the emulator.
    let stats = control(&emulator, "stats").await;
    let tag_calls = &stats["requests"]["alibaba"]["TagResources"];
    assert!(
        tag_calls["InvalidResourceId.NotFound"].as_u64() >= Some(2),
        "the whole call and then the bad id alone were refused: {stats}"
    );
    assert!(tag_calls["ok"].as_u64() >= Some(1), "{stats}");

    let results = client
        .write_all(
            "apiGroup",
            &[Write {
                op: WriteOp::Untag,
                resource_ids: &batch,
                tags: &env,
            }],
        )
        .await;
    let [Ok(result)] = results.as_slice() else {
        panic!("one untag, done but for the bad id: {results:?}");
    };
    assert_eq!(
        result.failed.keys().collect::<Vec<_>>(),
        ["g-decommissioned"]
    );
    let state = control(&emulator, "state").await;
    for id in ["g1", "g3"] {
        assert_eq!(tags_in(&state, id), serde_json::json!({}), "{id} untagged");
    }
    assert_eq!(tags_in(&state, "g2"), serde_json::json!({"team": "web"}));
}
