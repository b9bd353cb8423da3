//! JD Cloud over real HTTP on loopback: the client against the emulator (partial failure,
//! untag with value, quota, throttling retry, bad credentials, cdn's region), and the
//! emulator's own checks on requests built and signed here by hand with the signing
//! primitives (JDCLOUD2 and JDCLOUD3, path encodings, clock skew, nonce reuse, product lines,
//! the error body).

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tagbinder::cloud::jdcloud::{
    DEFAULT_SIGNING_SERVICE, JdcloudClient, JdcloudConfig as ClientConfig,
};
use tagbinder::cloud::sign::jdcloud::{
    Algorithm, CanonicalInput, authorization, canonical_request, credential_scope, sha256_hex,
    signature, signed_headers, signing_key, string_to_sign,
};
use tagbinder::cloud::{AccessKey, ErrorKind, RetryPolicy, TagApi};
use tagbinder::emulator::{
    Account, EmulatorConfig, FaultConfig, Inventory, InventoryResource, RunningEmulator, start,
};
use tagbinder::tags::{Limits, Tags};

const KEY_ID: &str = "JDEMULATORTESTKEY0000000000000001";
const SECRET: &str = "jd-emulator-test-secret-0123456789";
const REGION: &str = "cn-north-1";

fn resource(region: &str, code: &str, id: &str, tags: &[(&str, &str)]) -> InventoryResource {
    InventoryResource {
        cloud: "jdcloud".to_string(),
        region: region.to_string(),
        resource_type: code.to_string(),
        id: id.to_string(),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn config() -> EmulatorConfig {
    EmulatorConfig {
        inventory: Inventory {
            accounts: vec![Account {
                access_key_id: KEY_ID.to_string(),
                access_key_secret: SECRET.to_string(),
            }],
            resources: vec![
                resource(REGION, "vm", "i-1", &[("backup", "daily")]),
                resource(REGION, "vm", "i-2", &[]),
                resource(REGION, "vm", "i-3", &[]),
                resource("cn-east-2", "vm", "i-east", &[]),
                resource(REGION, "disk", "vol-1", &[]),
                resource("cn-all", "cdn", "cdn-1", &[]),
            ],
        },
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

fn client_with(url: &str, secret: &str, retry: RetryPolicy) -> JdcloudClient {
    JdcloudClient::new(
        ClientConfig {
            endpoint: url.to_string(),
            region: REGION.to_string(),
            signing_service: DEFAULT_SIGNING_SERVICE.to_string(),
            service_codes: ClientConfig::service_codes_with(&[]),
            credentials: AccessKey::new(KEY_ID, secret).into(),
            retry,
            timeout: Duration::from_secs(5),
            limits: Limits::jdcloud(),
        },
        http(),
    )
}

fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    }
}

fn client(url: &str) -> JdcloudClient {
    client_with(url, SECRET, fast_retry(3))
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

fn tags_in(state: &Value, code: &str, id: &str) -> Value {
    state["resources"]["jdcloud"][code][id]["tags"].clone()
}

#[tokio::test]
async fn tags_are_written_and_read_back_leaving_foreign_tags() {
    let emulator = emulator(config()).await;
    let client = client(&emulator.url());
    let written = client
        .tag_resources(
            "vm",
            &ids(&["i-1", "i-2"]),
            &tags(&[("env", "prod"), ("team", "web")]),
        )
        .await
        .unwrap();
    assert!(written.failed.is_empty(), "{written:?}");
    let observed = client
        .list_tags("vm", &ids(&["i-1", "i-2", "i-3"]))
        .await
        .unwrap();
    assert_eq!(
        observed["i-1"],
        tags(&[("backup", "daily"), ("env", "prod"), ("team", "web")])
    );
    assert_eq!(observed["i-2"], tags(&[("env", "prod"), ("team", "web")]));
    assert!(
        observed["i-3"].is_empty(),
        "untagged resources read as no tags"
    );
    let counts = stats(&emulator).await;
    assert_eq!(counts["requests"]["jdcloud"]["tagResources"]["ok"], 1);
    assert_eq!(counts["requests"]["jdcloud"]["describeResources"]["ok"], 1);
}

#[tokio::test]
async fn a_missing_resource_fails_alone_and_the_others_are_written() {
    let emulator = emulator(config()).await;
    let client = client(&emulator.url());
    let result = client
        .tag_resources(
            "vm",
            &ids(&["i-1", "i-decommissioned", "i-2", "i-east"]),
            &tags(&[("env", "prod")]),
        )
        .await
        .unwrap();
    let failed: Vec<&String> = result.failed.keys().collect();
    assert_eq!(
        failed,
        ["i-decommissioned", "i-east"],
        "other regions are not found either"
    );
    assert_eq!(result.failed["i-decommissioned"].kind, ErrorKind::NotFound);
    let state = state(&emulator).await;
    assert_eq!(tags_in(&state, "vm", "i-1")["env"], "prod");
    assert_eq!(tags_in(&state, "vm", "i-2")["env"], "prod");
    assert_eq!(tags_in(&state, "vm", "i-east"), json!({}));
}

#[tokio::test]
async fn untag_sends_the_observed_value_and_a_changed_value_is_kept() {
    let emulator = emulator(config()).await;
    let client = client(&emulator.url());
    client
        .tag_resources("vm", &ids(&["i-2", "i-3"]), &tags(&[("env", "prod")]))
        .await
        .unwrap();
    // Someone changes i-3's value out of band: its key must stay.
    let edited = http()
        .post(format!("{}/_emulator/tags", emulator.url()))
        .json(&json!({"cloud": "jdcloud", "type": "vm", "id": "i-3", "set": {"env": "staging"}}))
        .send()
        .await
        .unwrap();
    assert!(edited.status().is_success());
    let result = client
        .untag_resources("vm", &ids(&["i-2", "i-3"]), &tags(&[("env", "prod")]))
        .await
        .unwrap();
    assert_eq!(result.failed.keys().collect::<Vec<_>>(), ["i-3"]);
    assert_eq!(result.failed["i-3"].kind, ErrorKind::InvalidInput);
    let state = state(&emulator).await;
    assert_eq!(tags_in(&state, "vm", "i-2"), json!({}));
    assert_eq!(tags_in(&state, "vm", "i-3"), json!({"env": "staging"}));
}

#[tokio::test]
async fn the_tag_quota_fails_the_full_resource_only() {
    let emulator = emulator(config()).await;
    let client = client(&emulator.url());
    let nine: Tags = (0..9).map(|i| (format!("k{i}"), "v".to_string())).collect();
    let result = client
        .tag_resources("vm", &ids(&["i-1", "i-2"]), &nine)
        .await
        .unwrap();
    assert!(result.failed.is_empty(), "1 + 9 = 10 fits: {result:?}");
    let result = client
        .tag_resources("vm", &ids(&["i-1", "i-3"]), &tags(&[("a", "b")]))
        .await
        .unwrap();
    assert_eq!(
        result.failed.keys().collect::<Vec<_>>(),
        ["i-1"],
        "the 11th tag"
    );
    assert_eq!(
        result.failed["i-1"].kind,
        ErrorKind::QuotaExceeded,
        "{result:?}"
    );
    let state = state(&emulator).await;
    assert_eq!(tags_in(&state, "vm", "i-1").as_object().unwrap().len(), 10);
    assert_eq!(tags_in(&state, "vm", "i-3"), json!({"a": "b"}));
}

#[tokio::test]
async fn throttling_and_server_errors_are_retried_until_they_pass() {
    let emulator = emulator(EmulatorConfig {
        faults: FaultConfig {
            throttle_ratio: 0.3,
            error_ratio: 0.2,
            seed: Some(7),
            ..FaultConfig::default()
        },
        ..config()
    })
    .await;
    let client = client_with(&emulator.url(), SECRET, fast_retry(20));
    for round in 0..6 {
        let value = format!("v{round}");
        let result = client
            .tag_resources("vm", &ids(&["i-2"]), &tags(&[("round", &value)]))
            .await
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert!(result.failed.is_empty());
    }
    let counts = stats(&emulator).await;
    let calls = &counts["requests"]["jdcloud"]["tagResources"];
    assert_eq!(calls["ok"], 6, "{counts}");
    let retried: u64 = ["RATE_LIMIT_EXCEEDED", "INTERNAL", "UNAVAILABLE"]
        .iter()
        .filter_map(|code| calls[*code].as_u64())
        .sum();
    assert!(retried > 0, "the seed injects faults: {counts}");
    assert_eq!(tags_in(&state(&emulator).await, "vm", "i-2")["round"], "v5");
}

#[tokio::test]
async fn a_wrong_secret_is_a_credentials_error_without_retry_or_write() {
    let emulator = emulator(config()).await;
    let client = client_with(&emulator.url(), "not-the-secret", fast_retry(5));
    let error = client
        .tag_resources("vm", &ids(&["i-2"]), &tags(&[("env", "prod")]))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Credentials);
    assert_eq!(error.code(), "UNAUTHENTICATED");
    assert_eq!(
        error.cloud().expect("the cloud's answer").http_status,
        Some(401)
    );
    assert_eq!(error.cloud().expect("the cloud's answer").attempts, 1);
    assert!(!error.to_string().contains("not-the-secret"));
    assert_eq!(tags_in(&state(&emulator).await, "vm", "i-2"), json!({}));
}

#[tokio::test]
async fn cdn_resources_are_reached_in_cn_all() {
    let emulator = emulator(config()).await;
    let client = client(&emulator.url());
    let result = client
        .tag_resources("cdn", &ids(&["cdn-1"]), &tags(&[("env", "prod")]))
        .await
        .unwrap();
    assert!(result.failed.is_empty(), "{result:?}");
    let observed = client.list_tags("cdn", &ids(&["cdn-1"])).await.unwrap();
    assert_eq!(observed["cdn-1"], tags(&[("env", "prod")]));
}

#[tokio::test]
async fn reads_are_chunked_by_fifty_ids() {
    let emulator = emulator(config()).await;
    let client = client(&emulator.url());
    let many: Vec<String> = (0..120).map(|i| format!("i-{i}")).collect();
    let observed = client.list_tags("vm", &many).await.unwrap();
    assert_eq!(observed.len(), 120);
    let counts = stats(&emulator).await;
    assert_eq!(counts["requests"]["jdcloud"]["describeResources"]["ok"], 3);
}

// The emulator's checks, on requests signed here with the primitives.

struct Signed {
    algorithm: Algorithm,
    date: String,
    nonce: String,
    signed: &'static [&'static str],
    secret: &'static str,
    service: &'static str,
}

impl Default for Signed {
    fn default() -> Self {
        Signed {
            algorithm: Algorithm::Jdcloud2,
            date: jiff::Timestamp::now()
                .strftime("%Y%m%dT%H%M%SZ")
                .to_string(),
            nonce: uuid::Uuid::new_v4().to_string(),
            signed: &["content-type", "host", "x-jdcloud-date", "x-jdcloud-nonce"],
            secret: SECRET,
            service: "resourcetag",
        }
    }
}

/// POSTs `body` to `path` (as sent on the wire) signed as `how` says.
async fn send(
    emulator: &RunningEmulator,
    path: &str,
    body: &Value,
    how: &Signed,
) -> (StatusCode, Value) {
    let host = emulator.addr().to_string();
    let body = body.to_string();
    let all = [
        ("content-type", "application/json"),
        ("host", host.as_str()),
        ("x-jdcloud-date", how.date.as_str()),
        ("x-jdcloud-nonce", how.nonce.as_str()),
    ];
    let headers: Vec<(&str, &str)> = all
        .iter()
        .filter(|(name, _)| how.signed.contains(name))
        .copied()
        .collect();
    let canonical = canonical_request(&CanonicalInput {
        method: "POST",
        path,
        query: "",
        headers: &headers,
        payload_hash: &sha256_hex(body.as_bytes()),
    });
    let scope = credential_scope(how.algorithm, &how.date, REGION, how.service);
    let key = signing_key(how.algorithm, how.secret, &how.date, REGION, how.service);
    let signature = signature(
        &key,
        &string_to_sign(how.algorithm, &how.date, &scope, &canonical),
    );
    let header = authorization(
        how.algorithm,
        KEY_ID,
        &scope,
        &signed_headers(&headers),
        &signature,
    );
    let response = http()
        .post(format!("{}{path}", emulator.url()))
        .header("content-type", "application/json")
        .header("x-jdcloud-date", &how.date)
        .header("x-jdcloud-nonce", &how.nonce)
        .header("authorization", header)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

const TAG_PATH: &str = "/v1/regions/cn-north-1/tags:tagResources";

fn tag_body(code: &str, id: &str) -> Value {
    json!({"tagResources": {"resources": [{"serviceCode": code, "resourceId": [id]}],
           "tags": [{"key": "env", "value": "prod"}]}, "regionId": REGION})
}

#[tokio::test]
async fn both_signature_versions_and_both_path_encodings_are_accepted() {
    let emulator = emulator(config()).await;
    let jd3 = Signed {
        algorithm: Algorithm::Jdcloud3,
        ..Signed::default()
    };
    let (status, answer) = send(&emulator, TAG_PATH, &tag_body("vm", "i-2"), &jd3).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["result"]["data"]["successCount"], 1);
    let encoded = "/v1/regions/cn-north-1/tags%3AtagResources";
    let (status, answer) = send(
        &emulator,
        encoded,
        &tag_body("vm", "i-3"),
        &Signed::default(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // The current Python SDK signs only content-type and host.
    let python = Signed {
        signed: &["content-type", "host"],
        ..Signed::default()
    };
    let (status, answer) = send(&emulator, TAG_PATH, &tag_body("vm", "i-1"), &python).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test]
async fn bad_signatures_stale_dates_and_replays_are_refused() {
    let emulator = emulator(config()).await;
    let body = tag_body("vm", "i-2");
    let cases = [
        (
            "a wrong secret",
            Signed {
                secret: "wrong",
                ..Signed::default()
            },
            401,
            "UNAUTHENTICATED",
        ),
        (
            "a date 20 minutes off",
            Signed {
                date: (jiff::Timestamp::now() - jiff::SignedDuration::from_mins(20))
                    .strftime("%Y%m%dT%H%M%SZ")
                    .to_string(),
                ..Signed::default()
            },
            401,
            "UNAUTHENTICATED",
        ),
        (
            "another service name",
            Signed {
                service: "vm",
                ..Signed::default()
            },
            401,
            "UNAUTHENTICATED",
        ),
        (
            "no host among the signed headers",
            Signed {
                signed: &["content-type", "x-jdcloud-date"],
                ..Signed::default()
            },
            401,
            "UNAUTHENTICATED",
        ),
    ];
    for (name, how, http, status) in &cases {
        let (code, answer) = send(&emulator, TAG_PATH, &body, how).await;
        assert_eq!(code.as_u16(), *http, "{name}: {answer}");
        assert_eq!(answer["error"]["status"], *status, "{name}");
        assert_eq!(answer["error"]["code"], *http, "{name}");
        assert!(answer["requestId"].is_string(), "{name}");
        assert!(!answer["error"]["message"].as_str().unwrap().is_empty());
    }
    let once = Signed::default();
    let (code, _) = send(&emulator, TAG_PATH, &body, &once).await;
    assert_eq!(code, StatusCode::OK);
    let (code, answer) = send(&emulator, TAG_PATH, &body, &once).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "the nonce is reused: {answer}");
    assert_eq!(answer["error"]["status"], "APIGW_NONCE_CONFLICT");
}

#[tokio::test]
async fn requests_that_break_the_rules_get_invalid_argument() {
    let emulator = emulator(config()).await;
    let mixed = json!({"tagResources": {"resources": [
        {"serviceCode": "vm", "resourceId": ["i-1"]},
        {"serviceCode": "disk", "resourceId": ["vol-1"]}],
        "tags": [{"key": "env", "value": "prod"}]}});
    let cases = [
        ("two product lines", mixed, "one product line"),
        ("an unknown serviceCode", tag_body("kafka", "k-1"), "kafka"),
        ("cdn outside cn-all", tag_body("cdn", "cdn-1"), "cn-all"),
        (
            "not the operation's member",
            json!({"resourceVo": {}}),
            "tagResources",
        ),
    ];
    for (name, body, needle) in cases {
        let (code, answer) = send(&emulator, TAG_PATH, &body, &Signed::default()).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{name}: {answer}");
        assert_eq!(answer["error"]["status"], "INVALID_ARGUMENT", "{name}");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{name}: {message}");
    }
    let (code, answer) = send(
        &emulator,
        "/v1/regions/cn-north-1/tags:describeKeys",
        &json!({}),
        &Signed::default(),
    )
    .await;
    assert_eq!(code, StatusCode::NOT_IMPLEMENTED, "{answer}");
    assert_eq!(answer["error"]["status"], "NOT_IMPLEMENTED");
    let state = state(&emulator).await;
    assert_eq!(
        tags_in(&state, "vm", "i-1"),
        json!({"backup": "daily"}),
        "nothing written"
    );
}

#[tokio::test]
async fn an_answer_slower_than_the_timeout_is_a_retried_timeout() {
    let emulator = emulator(EmulatorConfig {
        faults: FaultConfig {
            slow_ratio: 1.0,
            slow_answer: Duration::from_secs(5),
            ..FaultConfig::default()
        },
        ..config()
    })
    .await;
    let mut client_config = ClientConfig {
        endpoint: emulator.url(),
        region: REGION.to_string(),
        signing_service: DEFAULT_SIGNING_SERVICE.to_string(),
        service_codes: ClientConfig::service_codes_with(&[]),
        credentials: AccessKey::new(KEY_ID, SECRET).into(),
        retry: fast_retry(2),
        timeout: Duration::from_millis(200),
        limits: Limits::jdcloud(),
    };
    let client = JdcloudClient::new(client_config.clone(), http());
    let error = client.list_tags("vm", &ids(&["i-1"])).await.unwrap_err();
    assert_eq!(error.code(), "Timeout");
    assert_eq!(error.kind(), ErrorKind::Retryable);
    assert_eq!(error.cloud().expect("the cloud's answer").attempts, 2);
    // A skewed server clock is a clear credentials-side error, not a retry loop.
    let skewed = emulator_with_clock(jiff::SignedDuration::from_mins(-30)).await;
    client_config.endpoint = skewed.url();
    client_config.timeout = Duration::from_secs(5);
    let error = JdcloudClient::new(client_config, http())
        .list_tags("vm", &ids(&["i-1"]))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Credentials);
    assert!(error.message().contains("clock"), "{}", error.message());
}

async fn emulator_with_clock(offset: jiff::SignedDuration) -> RunningEmulator {
    emulator(EmulatorConfig {
        faults: FaultConfig {
            clock_offset: offset,
            ..FaultConfig::default()
        },
        ..config()
    })
    .await
}
