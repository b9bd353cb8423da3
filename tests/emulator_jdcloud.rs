//! The emulator's JD Cloud side over real HTTP on loopback. Requests are built and signed
//! here by hand (reqwest and the signing primitives of `cloud::sign::jdcloud`), never through
//! a client.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tagbinder::cloud::sign::jdcloud::{
    Algorithm, CanonicalInput, authorization, canonical_request, credential_scope, sha256_hex,
    signature, signed_headers, signing_key, string_to_sign,
};
use tagbinder::emulator::{
    Account, EmulatorConfig, FaultConfig, Inventory, InventoryResource, JdcloudConfig,
    JdcloudLimits, RunningEmulator, start,
};

const ACCESS_KEY: &str = "JDCTESTAK0123456789ABCDEF";
const SECRET: &str = "JDCTESTSK0123456789ABCDEF";
const REGION: &str = "cn-north-1";
const SERVICE: &str = "resourcetag";
/// What tagbinder signs (spec section 2 step 3).
const SIGNED: [&str; 4] = ["content-type", "host", "x-jdcloud-date", "x-jdcloud-nonce"];

fn resource(code: &str, id: &str, region: &str, tags: &[(&str, &str)]) -> InventoryResource {
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
                access_key_id: ACCESS_KEY.to_string(),
                access_key_secret: SECRET.to_string(),
            }],
            resources: vec![
                resource("vm", "i-1", REGION, &[]),
                resource("vm", "i-2", REGION, &[("team", "web")]),
                resource("vm", "i-east", "cn-east-2", &[]),
                resource("disk", "vol-1", REGION, &[]),
                resource("cdn", "cdn-1", "cn-all", &[]),
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

fn now_date() -> String {
    jiff::Timestamp::now()
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string()
}

/// One request, signed at send time.
#[derive(Clone)]
struct Call {
    method: reqwest::Method,
    region: String,
    /// Last path segment, e.g. `tags:tagResources`.
    operation: String,
    /// Send `:` as `%3A` (the Go SDK) rather than raw (the Python SDKs).
    encode_colon: bool,
    body: String,
    algorithm: Algorithm,
    access_key: String,
    secret: String,
    /// Region and service of the credential scope.
    scope_region: Option<String>,
    service: String,
    date: String,
    nonce: String,
    /// Header names listed in SignedHeaders.
    signed: Vec<String>,
    /// Headers sent besides content-type, date and nonce.
    extra: Vec<(String, String)>,
    /// Headers replaced after signing.
    tampered: Vec<(String, String)>,
    /// Body replacing the signed one after signing.
    tampered_body: Option<String>,
}

fn call(operation: &str, body: Value) -> Call {
    Call {
        method: reqwest::Method::POST,
        region: REGION.to_string(),
        operation: operation.to_string(),
        encode_colon: false,
        body: body.to_string(),
        algorithm: Algorithm::Jdcloud2,
        access_key: ACCESS_KEY.to_string(),
        secret: SECRET.to_string(),
        scope_region: None,
        service: SERVICE.to_string(),
        date: now_date(),
        nonce: uuid::Uuid::new_v4().to_string(),
        signed: SIGNED.iter().map(|s| s.to_string()).collect(),
        extra: Vec::new(),
        tampered: Vec::new(),
        tampered_body: None,
    }
}

fn tag(code: &str, ids: &[&str], tags: &[(&str, &str)]) -> Call {
    call(
        "tags:tagResources",
        change_body("tagResources", code, ids, tags),
    )
}

fn untag(code: &str, ids: &[&str], tags: &[(&str, &str)]) -> Call {
    call(
        "tags:unTagResources",
        change_body("unTagResources", code, ids, tags),
    )
}

fn describe(vo: Value) -> Call {
    call("tags:describeResources", json!({ "resourceVo": vo }))
}

fn change_body(member: &str, code: &str, ids: &[&str], tags: &[(&str, &str)]) -> Value {
    let tags: Vec<Value> = tags
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect();
    json!({ member: {"resources": [{"serviceCode": code, "resourceId": ids}], "tags": tags} })
}

/// A parsed answer.
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn error_status(&self) -> &str {
        self.body["error"]["status"].as_str().unwrap_or("")
    }

    fn data(&self) -> &Value {
        &self.body["result"]["data"]
    }

    fn failed(&self) -> Vec<(String, String)> {
        self.data()["failedResourcesMap"]
            .as_array()
            .expect("failedResourcesMap")
            .iter()
            .map(|f| {
                (
                    f["resourceId"].as_str().unwrap().to_string(),
                    f["msg"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// 200 with no failed resource.
    fn assert_full_success(&self) {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        assert!(self.failed().is_empty(), "{}", self.body);
    }

    /// 200 with a `result` and no `error`.
    fn assert_error_free(&self) {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        assert!(self.body["result"].is_object(), "{}", self.body);
        assert!(self.body.get("error").is_none(), "{}", self.body);
    }

    /// The spec section 6 error shape, with the HTTP status equal to `error.code`.
    fn assert_error(&self, status: StatusCode, name: &str) {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.error_status(), name, "{}", self.body);
        assert_eq!(self.body["error"]["code"], status.as_u16(), "{}", self.body);
        assert!(self.body["error"]["message"].is_string(), "{}", self.body);
        let mut keys: Vec<&str> = self
            .body
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(keys, ["error", "requestId"], "no result in an error");
        let request_id = self.body["requestId"].as_str().unwrap();
        assert_eq!(self.headers["x-jdcloud-request-id"], request_id);
    }
}

impl Call {
    fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    fn encoded_colon(mut self) -> Self {
        self.encode_colon = true;
        self
    }

    fn secret(mut self, secret: &str) -> Self {
        self.secret = secret.to_string();
        self
    }

    fn access_key(mut self, access_key: &str) -> Self {
        self.access_key = access_key.to_string();
        self
    }

    fn region(mut self, region: &str) -> Self {
        self.region = region.to_string();
        self
    }

    fn scope_region(mut self, region: &str) -> Self {
        self.scope_region = Some(region.to_string());
        self
    }

    fn service(mut self, service: &str) -> Self {
        self.service = service.to_string();
        self
    }

    fn date(mut self, date: &str) -> Self {
        self.date = date.to_string();
        self
    }

    fn nonce(mut self, nonce: &str) -> Self {
        self.nonce = nonce.to_string();
        self
    }

    fn signing(mut self, names: &[&str]) -> Self {
        self.signed = names.iter().map(|s| s.to_string()).collect();
        self
    }

    fn header(mut self, name: &str, value: &str) -> Self {
        self.extra.push((name.to_string(), value.to_string()));
        self
    }

    fn tamper(mut self, name: &str, value: &str) -> Self {
        self.tampered.push((name.to_string(), value.to_string()));
        self
    }

    fn tamper_body(mut self, body: &str) -> Self {
        self.tampered_body = Some(body.to_string());
        self
    }

    fn path(&self) -> String {
        let operation = if self.encode_colon {
            self.operation.replace(':', "%3A")
        } else {
            self.operation.clone()
        };
        format!("/v1/regions/{}/{operation}", self.region)
    }

    /// The headers sent (lowercase names), before tampering; `host` is the emulator's.
    fn headers(&self, host: &str) -> Vec<(String, String)> {
        let mut headers = vec![
            ("content-type".to_string(), "application/json".to_string()),
            ("host".to_string(), host.to_string()),
            ("x-jdcloud-date".to_string(), self.date.clone()),
            ("x-jdcloud-nonce".to_string(), self.nonce.clone()),
        ];
        headers.extend(self.extra.iter().cloned());
        headers
    }

    /// The Authorization header and the string to sign.
    fn sign(&self, host: &str) -> (String, String) {
        let headers = self.headers(host);
        let signed: Vec<(&str, &str)> = self
            .signed
            .iter()
            .map(|name| {
                let value = headers
                    .iter()
                    .find(|(n, _)| n == name)
                    .map_or("", |(_, v)| v.as_str());
                (name.as_str(), value)
            })
            .collect();
        let canonical = canonical_request(&CanonicalInput {
            method: self.method.as_str(),
            path: &self.path(),
            query: "",
            headers: &signed,
            payload_hash: &sha256_hex(self.body.as_bytes()),
        });
        let scope_region = self.scope_region.as_deref().unwrap_or(&self.region);
        let scope = credential_scope(self.algorithm, &self.date, scope_region, &self.service);
        let to_sign = string_to_sign(self.algorithm, &self.date, &scope, &canonical);
        let key = signing_key(
            self.algorithm,
            &self.secret,
            &self.date,
            scope_region,
            &self.service,
        );
        let header = authorization(
            self.algorithm,
            &self.access_key,
            &scope,
            &signed_headers(&signed),
            &signature(&key, &to_sign),
        );
        (header, to_sign)
    }

    async fn send(self, emulator: &RunningEmulator) -> Answer {
        let host = emulator.addr().to_string();
        let (authorization, _) = self.sign(&host);
        let mut request = http().request(
            self.method.clone(),
            format!("{}{}", emulator.url(), self.path()),
        );
        for (name, value) in self.headers(&host) {
            let replaced = self.tampered.iter().find(|(n, _)| *n == name);
            // NB: reqwest sets Host from the URL, which is the value signed.
            if name != "host" {
                request = request.header(&name, replaced.map_or(&value, |(_, v)| v));
            }
        }
        let body = self.tampered_body.clone().unwrap_or(self.body.clone());
        let response = request
            .header("authorization", authorization)
            .header("user-agent", "tagbinder-tests")
            .body(body)
            .send()
            .await
            .expect("the emulator answers");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.json().await.expect("a JSON answer");
        Answer {
            status,
            headers,
            body,
        }
    }
}

async fn get(emulator: &RunningEmulator, path: &str) -> Value {
    http()
        .get(format!("{}{path}", emulator.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn tags_of(emulator: &RunningEmulator, code: &str, id: &str) -> BTreeMap<String, String> {
    let state = get(emulator, "/_emulator/state").await;
    serde_json::from_value(state["resources"]["jdcloud"][code][id]["tags"].clone())
        .expect("the resource is in the state")
}

/// (serviceCode/resourceId, tags) of a describeResources answer.
fn mappings(answer: &Answer) -> Vec<(String, BTreeMap<String, String>)> {
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    answer.data()["resourceTagMappingList"]
        .as_array()
        .expect("resourceTagMappingList")
        .iter()
        .map(|m| {
            assert!(m["jrn"].is_null());
            let tags = m["tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    (
                        t["key"].as_str().unwrap().to_string(),
                        t["value"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            (
                format!(
                    "{}/{}",
                    m["serviceCode"].as_str().unwrap(),
                    m["resourceId"].as_str().unwrap()
                ),
                tags,
            )
        })
        .collect()
}

fn strings(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn jdcloud2_and_jdcloud3_signatures_are_accepted_with_raw_or_encoded_colons() {
    let emulator = emulator(config()).await;
    let cases = [
        (Algorithm::Jdcloud2, false, "a"),
        (Algorithm::Jdcloud2, true, "b"),
        (Algorithm::Jdcloud3, false, "c"),
        (Algorithm::Jdcloud3, true, "d"),
    ];
    for (algorithm, encoded, value) in cases {
        let mut call = tag("vm", &["i-1"], &[("env", value)]).algorithm(algorithm);
        if encoded {
            call = call.encoded_colon();
        }
        let answer = call.send(&emulator).await;
        answer.assert_full_success();
        assert_eq!(answer.data()["successCount"], 1);
        assert_eq!(answer.data()["region"], REGION);
        assert_eq!(answer.data()["pin"], "jdcloud_user");
        let request_id = answer.body["requestId"].as_str().unwrap();
        assert_eq!(request_id.len(), 32);
        assert_eq!(answer.headers["x-jdcloud-request-id"], request_id);
        assert!(answer.body.get("error").is_none());
        assert_eq!(tags_of(&emulator, "vm", "i-1").await["env"], value);
    }
}

#[tokio::test]
async fn the_python_sdk_minimal_signed_headers_are_accepted_but_host_is_required() {
    let emulator = emulator(config()).await;
    let minimal = tag("vm", &["i-1"], &[("env", "prod")])
        .algorithm(Algorithm::Jdcloud3)
        .signing(&["content-type", "host"])
        .send(&emulator)
        .await;
    minimal.assert_full_success();
    let without_host = tag("vm", &["i-1"], &[("env", "prod")])
        .signing(&["content-type", "x-jdcloud-date", "x-jdcloud-nonce"])
        .send(&emulator)
        .await;
    without_host.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
    assert!(
        without_host.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("host")
    );
}

#[tokio::test]
async fn a_wrong_secret_is_unauthenticated_and_names_the_string_to_sign() {
    let emulator = emulator(config()).await;
    let call = tag("vm", &["i-1"], &[("env", "prod")]).secret("not-the-secret");
    let (_, to_sign) = call.sign(&emulator.addr().to_string());
    let answer = call.send(&emulator).await;
    answer.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
    let message = answer.body["error"]["message"].as_str().unwrap();
    assert!(message.ends_with(&to_sign), "{message}");
    assert!(tags_of(&emulator, "vm", "i-1").await.is_empty());
}

#[tokio::test]
async fn changing_a_signed_header_or_the_body_after_signing_is_refused() {
    let emulator = emulator(config()).await;
    let changed_header = tag("vm", &["i-1"], &[("env", "prod")])
        .tamper("content-type", "application/json; charset=utf-8")
        .send(&emulator)
        .await;
    changed_header.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
    let other = change_body("tagResources", "vm", &["i-1"], &[("env", "dev")]).to_string();
    let changed_body = tag("vm", &["i-1"], &[("env", "prod")])
        .tamper_body(&other)
        .send(&emulator)
        .await;
    changed_body.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
    let absent = tag("vm", &["i-1"], &[("env", "prod")])
        .signing(&["content-type", "host", "x-jdcloud-date", "x-my-header"])
        .send(&emulator)
        .await;
    absent.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
    assert!(
        absent.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("x-my-header")
    );
    // NB: an unsigned header may change: only the signed ones are covered.
    let unsigned = tag("vm", &["i-1"], &[("env", "prod")])
        .header("x-extra", "one")
        .tamper("x-extra", "two")
        .send(&emulator)
        .await;
    unsigned.assert_full_success();
}

#[tokio::test]
async fn keys_scopes_and_missing_headers_are_unauthenticated() {
    let emulator = emulator(config()).await;
    let cases = [
        tag("vm", &["i-1"], &[("a", "b")]).access_key("nobody"),
        tag("vm", &["i-1"], &[("a", "b")]).scope_region("cn-east-2"),
        tag("vm", &["i-1"], &[("a", "b")]).service("vm"),
        tag("vm", &["i-1"], &[("a", "b")])
            .signing(&["content-type", "host"])
            .tamper("x-jdcloud-nonce", ""),
        tag("vm", &["i-1"], &[("a", "b")]).date("2026-01-15T08:30:00Z"),
        tag("vm", &["i-1"], &[("a", "b")])
            .header("x-jdcloud-security-token", "token")
            .signing(&[
                "content-type",
                "host",
                "x-jdcloud-date",
                "x-jdcloud-nonce",
                "x-jdcloud-security-token",
            ]),
    ];
    for call in cases {
        let answer = call.send(&emulator).await;
        answer.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
    }
    let no_authorization = http()
        .post(format!(
            "{}/v1/regions/{REGION}/tags:describeResources",
            emulator.url()
        ))
        .header("content-type", "application/json")
        .body(r#"{"resourceVo": {}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(no_authorization.status(), StatusCode::UNAUTHORIZED);
    assert!(tags_of(&emulator, "vm", "i-1").await.is_empty());
}

#[tokio::test]
async fn a_skewed_date_is_refused_either_way() {
    let emulator = emulator(config()).await;
    for minutes in [-16, 16] {
        let date = (jiff::Timestamp::now() + jiff::SignedDuration::from_mins(minutes))
            .strftime("%Y%m%dT%H%M%SZ")
            .to_string();
        let answer = tag("vm", &["i-1"], &[("env", "prod")])
            .date(&date)
            .send(&emulator)
            .await;
        answer.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
    }
    let within = (jiff::Timestamp::now() - jiff::SignedDuration::from_mins(14))
        .strftime("%Y%m%dT%H%M%SZ")
        .to_string();
    tag("vm", &["i-1"], &[("env", "prod")])
        .date(&within)
        .send(&emulator)
        .await
        .assert_full_success();
}

#[tokio::test]
async fn a_reused_nonce_is_refused_and_changes_nothing() {
    let emulator = emulator(config()).await;
    tag("vm", &["i-1"], &[("env", "prod")])
        .nonce("fixed-nonce")
        .send(&emulator)
        .await
        .assert_full_success();
    let replay = tag("vm", &["i-1"], &[("env", "dev")])
        .nonce("fixed-nonce")
        .send(&emulator)
        .await;
    replay.assert_error(StatusCode::FORBIDDEN, "APIGW_NONCE_CONFLICT");
    assert_eq!(tags_of(&emulator, "vm", "i-1").await["env"], "prod");
    let forged = tag("vm", &["i-1"], &[("env", "dev")])
        .nonce("unburnt")
        .secret("wrong")
        .send(&emulator)
        .await;
    forged.assert_error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
    tag("vm", &["i-1"], &[("env", "dev")])
        .nonce("unburnt")
        .send(&emulator)
        .await
        .assert_full_success();
}

#[tokio::test]
async fn tag_then_describe_reads_the_tags_back() {
    let emulator = emulator(config()).await;
    let tagged = tag("vm", &["i-1", "i-2"], &[("env", "prod"), ("owner", "ops")])
        .send(&emulator)
        .await;
    tagged.assert_full_success();
    assert_eq!(tagged.data()["successCount"], 4);
    let all = describe(json!({"serviceCodes": ["vm"], "resourceIds": ["i-1", "i-2", "i-east"]}))
        .send(&emulator)
        .await;
    assert_eq!(all.data()["region"], REGION);
    assert_eq!(
        mappings(&all),
        [
            (
                "vm/i-1".to_string(),
                strings(&[("env", "prod"), ("owner", "ops")])
            ),
            (
                "vm/i-2".to_string(),
                strings(&[("env", "prod"), ("owner", "ops"), ("team", "web")])
            ),
        ]
    );
    let filtered =
        describe(json!({"tagFilters": [{"key": "team", "values": ["web"], "operator": "eq"}]}))
            .algorithm(Algorithm::Jdcloud3)
            .send(&emulator)
            .await;
    let ids: Vec<String> = mappings(&filtered).into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, ["vm/i-2"]);
    let untagged = describe(json!({"resourceIds": ["vol-1"]}))
        .send(&emulator)
        .await;
    assert!(
        mappings(&untagged).is_empty(),
        "untagged resources are left out"
    );
}

#[tokio::test]
async fn an_unknown_id_fails_only_that_resource() {
    let emulator = emulator(config()).await;
    let answer = tag(
        "vm",
        &["i-1", "ghost", "i-2"],
        &[("env", "prod"), ("a", "b")],
    )
    .send(&emulator)
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let failed = answer.failed();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, "ghost");
    assert!(
        failed[0].1.starts_with("resource not found"),
        "{}",
        failed[0].1
    );
    assert_eq!(answer.data()["successCount"], 4);
    assert_eq!(tags_of(&emulator, "vm", "i-1").await["env"], "prod");
    assert_eq!(tags_of(&emulator, "vm", "i-2").await["env"], "prod");
}

#[tokio::test]
async fn a_resource_of_another_region_or_product_line_is_not_found() {
    let emulator = emulator(config()).await;
    let answer = tag("vm", &["i-east", "vol-1"], &[("env", "prod")])
        .send(&emulator)
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    let failed: Vec<String> = answer.failed().into_iter().map(|(id, _)| id).collect();
    assert_eq!(failed, ["i-east", "vol-1"]);
    assert_eq!(answer.data()["successCount"], 0);
    let east = tag("vm", &["i-east"], &[("env", "prod")])
        .region("cn-east-2")
        .send(&emulator)
        .await;
    east.assert_full_success();
    assert_eq!(east.data()["region"], "cn-east-2");
    assert!(tags_of(&emulator, "disk", "vol-1").await.is_empty());
}

#[tokio::test]
async fn untag_removes_only_matching_values_and_reports_mismatches_per_resource() {
    let emulator = emulator(config()).await;
    tag("vm", &["i-1"], &[("team", "web"), ("env", "prod")])
        .send(&emulator)
        .await
        .assert_full_success();
    tag("vm", &["i-2"], &[("env", "dev")])
        .send(&emulator)
        .await
        .assert_full_success();
    let answer = untag("vm", &["i-1", "i-2"], &[("team", "web"), ("env", "prod")])
        .algorithm(Algorithm::Jdcloud3)
        .send(&emulator)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let failed = answer.failed();
    assert_eq!(failed.len(), 1, "{}", answer.body);
    assert_eq!(failed[0].0, "i-2");
    assert!(failed[0].1.contains("\"dev\""), "{}", failed[0].1);
    assert_eq!(answer.data()["successCount"], 2);
    assert!(tags_of(&emulator, "vm", "i-1").await.is_empty());
    assert_eq!(
        tags_of(&emulator, "vm", "i-2").await,
        strings(&[("env", "dev"), ("team", "web")]),
        "a failed resource keeps every tag"
    );
    let no_value = call(
        "tags:unTagResources",
        json!({"unTagResources": {"resources": [{"serviceCode": "vm", "resourceId": ["i-2"]}],
                                  "tags": [{"key": "env"}]}}),
    )
    .send(&emulator)
    .await;
    no_value.assert_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT");
}

#[tokio::test]
async fn the_tag_quota_fails_per_resource_and_overwrites_do_not_count() {
    let emulator = emulator(config()).await;
    let ten: Vec<(String, String)> = (1..=10)
        .map(|n| (format!("k{n}"), format!("v{n}")))
        .collect();
    let ten: Vec<(&str, &str)> = ten.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    tag("vm", &["i-1"], &ten)
        .send(&emulator)
        .await
        .assert_full_success();
    tag("vm", &["i-1"], &[("k1", "new")])
        .send(&emulator)
        .await
        .assert_full_success();
    let over = tag("vm", &["i-1", "i-2"], &[("k11", "v")])
        .send(&emulator)
        .await;
    assert_eq!(over.status, StatusCode::OK);
    let failed = over.failed();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, "i-1");
    assert!(failed[0].1.contains("quota"), "{}", failed[0].1);
    let tags = tags_of(&emulator, "vm", "i-1").await;
    assert_eq!(tags.len(), 10);
    assert_eq!(tags["k1"], "new");
    assert_eq!(tags_of(&emulator, "vm", "i-2").await["k11"], "v");
}

#[tokio::test]
async fn mixed_product_lines_are_refused_whole() {
    let emulator = emulator(config()).await;
    let body = json!({"tagResources": {
        "resources": [{"serviceCode": "vm", "resourceId": ["i-1"]},
                      {"serviceCode": "disk", "resourceId": ["vol-1"]}],
        "tags": [{"key": "env", "value": "prod"}]}});
    let answer = call("tags:tagResources", body).send(&emulator).await;
    answer.assert_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT");
    assert!(
        answer.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("product lines")
    );
    assert!(tags_of(&emulator, "vm", "i-1").await.is_empty());
    let unknown_code = tag("kafka", &["k-1"], &[("env", "prod")])
        .send(&emulator)
        .await;
    unknown_code.assert_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT");
    let two_codes = describe(json!({"serviceCodes": ["vm", "disk"]}))
        .send(&emulator)
        .await;
    two_codes.assert_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT");
}

#[tokio::test]
async fn cdn_is_served_in_cn_all_only() {
    let emulator = emulator(config()).await;
    tag("cdn", &["cdn-1"], &[("env", "prod")])
        .region("cn-all")
        .send(&emulator)
        .await
        .assert_full_success();
    let elsewhere = tag("cdn", &["cdn-1"], &[("env", "dev")])
        .send(&emulator)
        .await;
    elsewhere.assert_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT");
    assert_eq!(tags_of(&emulator, "cdn", "cdn-1").await["env"], "prod");
}

/// Spec section 5, every default limit at and beyond its bound.
#[tokio::test]
async fn the_default_limits_of_section_five_hold() {
    let emulator = emulator(config()).await;
    let key127 = "k".repeat(127);
    let key128 = "k".repeat(128);
    let value255 = "v".repeat(255);
    let value256 = "v".repeat(256);
    let accepted = [
        tag("vm", &["i-1"], &[(key127.as_str(), "v")]),
        tag("vm", &["i-1"], &[("long", value255.as_str())]),
        tag("vm", &["i-1"], &[("empty", "")]),
    ];
    for call in accepted {
        call.send(&emulator).await.assert_full_success();
    }
    let ids: Vec<String> = (1..=51).map(|n| format!("i-{n}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let eleven: Vec<(String, String)> = (1..=11)
        .map(|n| (format!("t{n}"), "v".to_string()))
        .collect();
    let eleven: Vec<(&str, &str)> = eleven
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let refused = [
        ("key of 128", tag("vm", &["i-2"], &[(key128.as_str(), "v")])),
        ("empty key", tag("vm", &["i-2"], &[("", "v")])),
        (
            "value of 256",
            tag("vm", &["i-2"], &[("a", value256.as_str())]),
        ),
        ("jrn: prefix", tag("vm", &["i-2"], &[("jrn:x", "v")])),
        ("jdc- prefix", tag("vm", &["i-2"], &[("jdc-x", "v")])),
        ("jdc- untag", untag("vm", &["i-2"], &[("jdc-x", "v")])),
        ("51 resources", tag("vm", &ids, &[("a", "b")])),
        ("11 tags", tag("vm", &["i-2"], &eleven)),
        ("11 untags", untag("vm", &["i-2"], &eleven)),
        ("no tags", tag("vm", &["i-2"], &[])),
        ("51 ids to describe", describe(json!({"resourceIds": ids}))),
    ];
    for (name, call) in refused {
        let answer = call.send(&emulator).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{name}: {}",
            answer.body
        );
        answer.assert_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT");
    }
    let fifty = &ids[..50];
    let answer = tag("vm", fifty, &[("a", "b")]).send(&emulator).await;
    assert_eq!(answer.status, StatusCode::OK, "50 resources are one call");
    assert_eq!(answer.failed().len(), 48, "only i-1 and i-2 exist");
    tag("disk", &["vol-1"], &eleven[..10])
        .send(&emulator)
        .await
        .assert_full_success();
    assert_eq!(tags_of(&emulator, "disk", "vol-1").await.len(), 10);
}

#[tokio::test]
async fn the_limits_are_configurable() {
    let emulator = emulator(EmulatorConfig {
        jdcloud: JdcloudConfig {
            service_codes: vec!["vm".to_string(), "kafka".to_string()],
            limits: JdcloudLimits {
                tags_per_resource: 2,
                key_max_chars: 3,
                value_max_chars: 4,
                reserved_key_prefixes: vec!["sys".to_string()],
                resources_per_call: 2,
                tags_per_call: 3,
            },
            ..JdcloudConfig::default()
        },
        ..config()
    })
    .await;
    let refused = [
        tag("vm", &["i-1"], &[("long", "v")]),
        tag("vm", &["i-1"], &[("k", "12345")]),
        tag("vm", &["i-1"], &[("sy", "v"), ("sys", "v")]),
        tag("vm", &["i-1", "i-2", "i-3"], &[("k", "v")]),
        tag(
            "vm",
            &["i-1"],
            &[("a", "v"), ("b", "v"), ("c", "v"), ("d", "v")],
        ),
        tag("disk", &["vol-1"], &[("k", "v")]),
    ];
    for call in refused {
        let answer = call.send(&emulator).await;
        answer.assert_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT");
    }
    let answer = tag("vm", &["i-1"], &[("a", "1"), ("b", "2")])
        .send(&emulator)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let over = tag("vm", &["i-1"], &[("c", "3")]).send(&emulator).await;
    assert!(over.failed()[0].1.contains("quota"), "{}", over.body);
}

#[tokio::test]
async fn paths_methods_and_bodies_answer_the_error_shape() {
    let emulator = emulator(config()).await;
    let unknown = call("tags:nothing", json!({})).send(&emulator).await;
    unknown.assert_error(StatusCode::NOT_FOUND, "NOT_FOUND");
    let not_served = call("describeTags", json!({"tagKeysVo": {}}))
        .send(&emulator)
        .await;
    not_served.assert_error(StatusCode::NOT_IMPLEMENTED, "NOT_IMPLEMENTED");
    let mut get = describe(json!({}));
    get.method = reqwest::Method::GET;
    get.send(&emulator)
        .await
        .assert_error(StatusCode::NOT_IMPLEMENTED, "NOT_IMPLEMENTED");
    let mut garbled = describe(json!({}));
    garbled.body = "{not json".to_string();
    let garbled = garbled.send(&emulator).await;
    garbled.assert_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT");
    assert!(
        garbled.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let missing = call("tags:tagResources", json!({"unTagResources": {}}))
        .send(&emulator)
        .await;
    missing.assert_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT");
    assert!(
        missing.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("Invalid parameter tagResources")
    );
    let mut with_region = change_body("tagResources", "vm", &["i-1"], &[("env", "prod")]);
    with_region["regionId"] = json!("cn-south-1");
    call("tags:tagResources", with_region)
        .send(&emulator)
        .await
        .assert_full_success();
}

#[tokio::test]
async fn stats_count_jdcloud_calls_by_action_and_outcome() {
    let emulator = emulator(config()).await;
    tag("vm", &["i-1", "ghost"], &[("a", "b")])
        .send(&emulator)
        .await;
    tag("vm", &["i-1"], &[("a", "b")])
        .secret("wrong")
        .send(&emulator)
        .await;
    describe(json!({})).send(&emulator).await;
    untag("vm", &["i-1"], &[("jrn:x", "b")])
        .send(&emulator)
        .await;
    call("tags:nothing", json!({})).send(&emulator).await;
    let counts = get(&emulator, "/_emulator/stats").await;
    let jd = &counts["requests"]["jdcloud"];
    assert_eq!(jd["tagResources"]["ok"], 1, "{counts}");
    assert_eq!(jd["tagResources"]["UNAUTHENTICATED"], 1, "{counts}");
    assert_eq!(jd["describeResources"]["ok"], 1, "{counts}");
    assert_eq!(jd["unTagResources"]["INVALID_ARGUMENT"], 1, "{counts}");
    assert_eq!(jd["-"]["NOT_FOUND"], 1, "{counts}");
    assert_eq!(counts["total"], 5);
}

#[tokio::test]
async fn throttling_and_server_faults_use_the_jd_error_body() {
    let throttled = emulator(EmulatorConfig {
        faults: FaultConfig {
            throttle_ratio: 1.0,
            ..FaultConfig::default()
        },
        ..config()
    })
    .await;
    let answer = describe(json!({})).send(&throttled).await;
    answer.assert_error(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMIT_EXCEEDED");
    assert!(answer.headers.get("retry-after").is_none());
    assert_eq!(
        get(&throttled, "/_emulator/stats").await["requests"]["jdcloud"]["describeResources"]["RATE_LIMIT_EXCEEDED"],
        1
    );
    let failing = emulator(EmulatorConfig {
        faults: FaultConfig {
            error_ratio: 1.0,
            seed: Some(7),
            ..FaultConfig::default()
        },
        ..config()
    })
    .await;
    let mut seen = Vec::new();
    for _ in 0..16 {
        let answer = describe(json!({})).send(&failing).await;
        let name = answer.error_status().to_string();
        match answer.status {
            StatusCode::INTERNAL_SERVER_ERROR => assert_eq!(name, "INTERNAL"),
            StatusCode::SERVICE_UNAVAILABLE => assert_eq!(name, "UNAVAILABLE"),
            other => panic!("unexpected {other}: {}", answer.body),
        }
        answer.assert_error(answer.status, &name);
        seen.push(name);
    }
    assert!(seen.iter().any(|n| n == "INTERNAL") && seen.iter().any(|n| n == "UNAVAILABLE"));
}

#[tokio::test]
async fn a_rate_limited_call_says_when_to_retry_and_leaves_its_nonce_unused() {
    let emulator = emulator(EmulatorConfig {
        faults: FaultConfig {
            throttle_above: Some(1.0),
            ..FaultConfig::default()
        },
        ..config()
    })
    .await;
    // NB: one request per second, a burst of one: the first takes the only token, and the
    // next within the second is limited. A pair that a stalled scheduler spreads over more
    // than a second is tried again with a new nonce, so nothing depends on timing.
    let mut round = 0;
    let limited = loop {
        round += 1;
        assert!(round <= 20, "no request was rate limited in {round} rounds");
        describe(json!({}))
            .send(&emulator)
            .await
            .assert_error_free();
        let limited = tag("vm", &["i-1"], &[("env", "prod")]).nonce(&format!("retried-{round}"));
        let answer = limited.clone().send(&emulator).await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            answer.assert_error(StatusCode::TOO_MANY_REQUESTS, "RATE_LIMIT_EXCEEDED");
            assert_eq!(answer.headers["retry-after"], "1");
            break limited;
        }
        answer.assert_full_success();
    };
    // The limited request, sent again as it was (same nonce), goes through once a token is
    // back: its nonce was not used up. Each try before that is limited in turn.
    for attempt in 1.. {
        assert!(attempt <= 100, "still limited after {attempt} tries");
        let answer = limited.clone().send(&emulator).await;
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            // NB: waits for the bucket to refill (an event), asserting nothing on time.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        answer.assert_full_success();
        break;
    }
}

#[tokio::test]
async fn the_control_endpoints_see_and_edit_jdcloud_resources() {
    let emulator = emulator(config()).await;
    let edited = http()
        .post(format!("{}/_emulator/tags", emulator.url()))
        .json(&json!({"cloud": "jdcloud", "type": "vm", "id": "i-1",
                      "set": {"jrn:system": "s", "env": "dev"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(edited.status(), StatusCode::OK);
    let state = get(&emulator, "/_emulator/state").await;
    assert_eq!(state["resources"]["jdcloud"]["vm"]["i-1"]["region"], REGION);
    assert_eq!(
        state["resources"]["jdcloud"]["vm"]["i-1"]["tags"]["jrn:system"],
        "s"
    );
    let user = describe(json!({"resourceIds": ["i-1"]}))
        .send(&emulator)
        .await;
    assert_eq!(mappings(&user)[0].1, strings(&[("env", "dev")]));
    let system = describe(json!({"resourceIds": ["i-1"], "showTagStatus": 1}))
        .send(&emulator)
        .await;
    assert_eq!(
        mappings(&system)[0].1,
        strings(&[("env", "dev"), ("jrn:system", "s")])
    );
    let nine: Vec<(String, String)> = (1..=9)
        .map(|n| (format!("k{n}"), "v".to_string()))
        .collect();
    let nine: Vec<(&str, &str)> = nine.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    tag("vm", &["i-1"], &nine)
        .send(&emulator)
        .await
        .assert_full_success();
    assert_eq!(
        tags_of(&emulator, "vm", "i-1").await.len(),
        11,
        "system tags do not count against the quota"
    );
}

#[tokio::test]
async fn jdcloud_state_persists_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state_file: PathBuf = dir.path().join("jd/cloud.json");
    let first = emulator(EmulatorConfig {
        state_file: Some(state_file.clone()),
        ..config()
    })
    .await;
    tag("vm", &["i-1"], &[("env", "prod")])
        .send(&first)
        .await
        .assert_full_success();
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(&state_file).unwrap()).unwrap();
    assert!(
        written["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["cloud"] == "jdcloud" && r["id"] == "i-1" && r["tags"]["env"] == "prod")
    );
    first.shutdown().await.unwrap();
    let mut without_resources = config();
    without_resources.inventory.resources.clear();
    let second = emulator(EmulatorConfig {
        state_file: Some(state_file),
        ..without_resources
    })
    .await;
    let answer = describe(json!({"serviceCodes": ["vm"]}))
        .send(&second)
        .await;
    assert_eq!(
        mappings(&answer),
        [
            ("vm/i-1".to_string(), strings(&[("env", "prod")])),
            ("vm/i-2".to_string(), strings(&[("team", "web")])),
        ]
    );
    second.shutdown().await.unwrap();
}

/// The official SDK serialises every unset optional field as JSON `null` (a `TagFilter`
/// without `values`, a `ResourceReqVo` without `resourceIds`...); the cloud reads `null` as
/// absent, and so does the emulator.
#[tokio::test]
async fn null_fields_are_absent_as_the_sdk_sends_them() {
    let emulator = emulator(config()).await;
    let body = json!({"regionId": REGION, "tagResources": {
        "resources": [{"serviceCode": "vm", "resourceId": ["i-1"]}],
        "tags": [{"key": "env", "value": "prod"}]}});
    call("tags:tagResources", body)
        .send(&emulator)
        .await
        .assert_full_success();
    let sdk_shaped = json!({"regionId": REGION, "resourceVo": {
        "serviceCodes": ["vm"], "resourceIds": null, "showTagStatus": null,
        "orderCondition": null, "descOrAsc": null, "pageSize": null, "currentPage": null,
        "tagFilters": [{"key": "env", "values": null, "operator": null}]}});
    let answer = call("tags:describeResources", sdk_shaped)
        .send(&emulator)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    let ids: Vec<String> = mappings(&answer).into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, ["vm/i-1"], "a filter without values matches any value");
    let null_vo = call("tags:describeResources", json!({"resourceVo": null}))
        .send(&emulator)
        .await;
    assert_eq!(null_vo.status, StatusCode::OK, "{}", null_vo.body);
}
