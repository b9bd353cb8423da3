//! The emulator's V3 signatures (ACS3-HMAC-SHA256, spec alibaba-rpc-tagging.md section 4) and
//! its Tag service (2018-08-28, section 5) over real HTTP on loopback. Requests are built and
//! signed here by hand (reqwest and the signing primitives), never through the client.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use serde_json::{Value, json};
use tagbinder::cloud::sign::{acs3, rpc_percent_encode, rpc_signature, rpc_string_to_sign};
use tagbinder::emulator::{
    Account, EmulatorConfig, Inventory, InventoryResource, RunningEmulator, account_uid, start,
};

const KEY_ID: &str = "LTAI5tTagServiceKey";
const SECRET: &str = "TagServiceSecret0123456789";
const TAG: &str = "2018-08-28";
const REGION: &str = "cn-hangzhou";

fn resource(kind: &str, id: &str, tags: &[(&str, &str)]) -> InventoryResource {
    InventoryResource {
        cloud: "alibaba".to_string(),
        region: REGION.to_string(),
        resource_type: kind.to_string(),
        id: id.to_string(),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

async fn emulator() -> RunningEmulator {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut resources = vec![
        resource("apiGroup", "g1", &[]),
        resource("instance", "i-1", &[("team", "web")]),
        resource("rds:dbinstance", "rm-1", &[("acs:rm:rgId", "rg-1")]),
        resource("rds:dbinstance", "rm-2", &[]),
        resource("oss:bucket", "b-1", &[]),
    ];
    for n in 1..=5 {
        resources.push(resource("vpc:vpc", &format!("vpc-{n}"), &[("team", "net")]));
    }
    let config = EmulatorConfig {
        inventory: Inventory {
            accounts: vec![Account {
                access_key_id: KEY_ID.to_string(),
                access_key_secret: SECRET.to_string(),
            }],
            resources,
        },
        page_size: 2,
        ..EmulatorConfig::default()
    };
    start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .expect("the emulator starts")
}

/// One V3 request, signed at send time.
struct V3 {
    method: &'static str,
    action: String,
    version: String,
    query: Vec<(String, String)>,
    form: Option<Vec<(String, String)>>,
    secret: String,
    nonce: String,
    date: String,
    accept: Option<&'static str>,
    /// Headers sent but left out of SignedHeaders.
    unsigned: Vec<(&'static str, &'static str)>,
}

fn v3(version: &str, action: &str) -> V3 {
    V3 {
        method: "POST",
        action: action.to_string(),
        version: version.to_string(),
        query: Vec::new(),
        form: None,
        secret: SECRET.to_string(),
        nonce: uuid::Uuid::new_v4().simple().to_string(),
        date: jiff::Timestamp::now()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string(),
        accept: None,
        unsigned: Vec::new(),
    }
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn arns(list: &[&str]) -> Vec<(String, String)> {
    list.iter()
        .enumerate()
        .map(|(n, arn)| (format!("ResourceARN.{}", n + 1), arn.to_string()))
        .collect()
}

struct Answer {
    status: StatusCode,
    content_type: String,
    text: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }

    fn code(&self) -> String {
        self.json()["Code"].as_str().unwrap_or_default().to_string()
    }
}

impl V3 {
    fn query(mut self, list: Vec<(String, String)>) -> Self {
        self.query.extend(list);
        self
    }

    async fn send(&self, emulator: &RunningEmulator) -> Answer {
        let body = self
            .form
            .as_ref()
            .map(|form| {
                form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(form)
                    .finish()
            })
            .unwrap_or_default();
        let host = emulator.addr().to_string();
        let hash = acs3::payload_hash(body.as_bytes());
        let mut headers: Vec<(&str, &str)> = vec![
            ("host", &host),
            ("x-acs-action", &self.action),
            ("x-acs-version", &self.version),
            ("x-acs-date", &self.date),
            ("x-acs-signature-nonce", &self.nonce),
            ("x-acs-content-sha256", &hash),
        ];
        if self.form.is_some() {
            headers.push(("content-type", "application/x-www-form-urlencoded"));
        }
        let query = acs3::canonical_query(self.query.iter().map(|(n, v)| (n.as_str(), v.as_str())));
        let (canonical_headers, signed) = acs3::canonical_headers(headers.iter().copied());
        let request = acs3::canonical_request(&acs3::CanonicalInput {
            method: self.method,
            uri: "/",
            query: &query,
            headers: &canonical_headers,
            signed_headers: &signed,
            payload_hash: &hash,
        });
        let signature = acs3::signature(&self.secret, &acs3::string_to_sign(&request));
        let client = reqwest::Client::new();
        let url = format!("{}/?{query}", emulator.url());
        let mut builder = match self.method {
            "GET" => client.get(url),
            _ => client.post(url),
        };
        for (name, value) in headers.iter().chain(&self.unsigned) {
            if *name != "host" {
                builder = builder.header(*name, *value);
            }
        }
        if let Some(accept) = self.accept {
            builder = builder.header("accept", accept);
        }
        let response = builder
            .header(
                "authorization",
                acs3::authorization(KEY_ID, &signed, &signature),
            )
            .body(body)
            .send()
            .await
            .expect("the emulator answers");
        Answer {
            status: response.status(),
            content_type: response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string(),
            text: response.text().await.unwrap(),
        }
    }
}

async fn tags_of(emulator: &RunningEmulator, kind: &str, id: &str) -> BTreeMap<String, String> {
    let state: Value = reqwest::get(format!("{}/_emulator/state", emulator.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    serde_json::from_value(state["resources"]["alibaba"][kind][id]["tags"].clone()).unwrap()
}

fn tag_call(targets: &[&str], tags: Value) -> V3 {
    let mut query = pairs(&[("RegionId", REGION), ("Tags", &tags.to_string())]);
    query.extend(arns(targets));
    v3(TAG, "TagResources").query(query)
}

#[tokio::test]
async fn v3_is_accepted_for_every_product_and_answers_json() {
    let emulator = emulator().await;
    // API Gateway, everything in the query (as the typed SDK sends it).
    let answer = v3("2016-07-14", "TagResources")
        .query(pairs(&[
            ("ResourceType", "apiGroup"),
            ("ResourceId.1", "g1"),
            ("Tag.1.Key", "env"),
            ("Tag.1.Value", "prod*~ /"),
        ]))
        .send(&emulator)
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert!(answer.content_type.starts_with("application/json"));
    assert!(answer.json()["RequestId"].is_string());
    assert_eq!(
        tags_of(&emulator, "apiGroup", "g1").await["env"],
        "prod*~ /"
    );
    // ECS, parameters in a form body (covered by the body hash, not the canonical query).
    let mut form = v3("2014-05-26", "UntagResources");
    form.form = Some(pairs(&[
        ("RegionId", REGION),
        ("ResourceType", "instance"),
        ("ResourceId.1", "i-1"),
        ("TagKey.1", "team"),
    ]));
    let answer = form.send(&emulator).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert!(tags_of(&emulator, "instance", "i-1").await.is_empty());
    // XML when the Accept header asks for it alone.
    let mut xml = v3("2016-07-14", "ListTagResources").query(pairs(&[
        ("ResourceType", "apiGroup"),
        ("ResourceId.1", "g1"),
    ]));
    xml.method = "GET";
    xml.accept = Some("application/xml");
    let answer = xml.send(&emulator).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        answer.text.contains("<TagKey>env</TagKey>"),
        "{}",
        answer.text
    );
}

#[tokio::test]
async fn v3_checks_signature_headers_dates_and_nonces() {
    let emulator = emulator().await;
    let list = || {
        v3("2016-07-14", "ListTagResources").query(pairs(&[
            ("ResourceType", "apiGroup"),
            ("ResourceId.1", "g1"),
        ]))
    };
    let mut forged = list();
    forged.secret = "not-the-secret".to_string();
    let answer = forged.send(&emulator).await;
    assert_eq!(
        (answer.status, answer.code()),
        (StatusCode::BAD_REQUEST, "SignatureDoesNotMatch".to_string())
    );
    let message = answer.json()["Message"].as_str().unwrap().to_string();
    assert!(
        message.starts_with(
            "Specified signature does not match our calculation. server StringToSign is \
             [ACS3-HMAC-SHA256\n"
        ) && message.contains("x-acs-action:ListTagResources\n"),
        "{message}"
    );
    // The forged request did not burn its nonce; the genuine one may use it once.
    let mut genuine = list();
    genuine.nonce = forged.nonce.clone();
    assert_eq!(genuine.send(&emulator).await.status, StatusCode::OK);
    assert_eq!(genuine.send(&emulator).await.code(), "SignatureNonceUsed");
    let mut stale = list();
    stale.date = "2020-01-01T00:00:00Z".to_string();
    assert_eq!(
        stale.send(&emulator).await.code(),
        "InvalidTimeStamp.Expired"
    );
    let mut unsigned = list();
    unsigned.unsigned = vec![("x-acs-extra", "1")];
    let answer = unsigned.send(&emulator).await;
    assert_eq!(answer.code(), "IncompleteSignature");
    assert!(answer.text.contains("x-acs-extra"), "{}", answer.text);
    let mut unknown_action = list();
    unknown_action.action = "DescribeRegions".to_string();
    assert_eq!(
        unknown_action.send(&emulator).await.code(),
        "InvalidAction.NotFound"
    );
}

#[tokio::test]
async fn the_tag_service_writes_per_resource_and_never_touches_system_tags() {
    let emulator = emulator().await;
    let uid = account_uid(KEY_ID);
    let foreign = "arn:acs:rds:cn-hangzhou:1000000000000001:dbinstance/rm-2";
    let unknown = "arn:acs:rds:*:*:dbinstance/rm-404";
    let elsewhere = "arn:acs:rds:cn-beijing:*:dbinstance/rm-2";
    let answer = tag_call(
        &[
            "arn:acs:rds:cn-hangzhou:*:dbinstance/rm-1",
            &format!("arn:acs:oss:*:{uid}:bucket/b-1"),
            "acs:ecs:*:*:instance/i-1",
            foreign,
            unknown,
            elsewhere,
        ],
        json!({"env": "prod"}),
    )
    .send(&emulator)
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let failed: Vec<(String, String)> = answer.json()["FailedResources"]["FailedResource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["ResourceARN"].as_str().unwrap().to_string(),
                f["Result"]["Code"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let not_found = "InvalidResourceId.NotFound".to_string();
    assert_eq!(
        failed,
        [
            (foreign.to_string(), not_found.clone()),
            (unknown.to_string(), not_found.clone()),
            (elsewhere.to_string(), not_found),
        ]
    );
    assert_eq!(
        tags_of(&emulator, "rds:dbinstance", "rm-1").await,
        BTreeMap::from([
            ("acs:rm:rgId".to_string(), "rg-1".to_string()),
            ("env".to_string(), "prod".to_string())
        ])
    );
    assert_eq!(tags_of(&emulator, "oss:bucket", "b-1").await["env"], "prod");
    assert_eq!(tags_of(&emulator, "instance", "i-1").await["env"], "prod");
    assert!(
        tags_of(&emulator, "rds:dbinstance", "rm-2")
            .await
            .is_empty()
    );

    // Quota: 20 custom tags; the system tag does not count.
    let rm1 = "arn:acs:rds:*:*:dbinstance/rm-1";
    for batch in ["a", "b"] {
        let tags: serde_json::Map<String, Value> = (0..10)
            .map(|n| (format!("{batch}{n}"), json!("v")))
            .collect();
        let answer = tag_call(&[rm1], Value::Object(tags)).send(&emulator).await;
        let codes = answer.json()["FailedResources"]["FailedResource"].clone();
        if batch == "a" {
            assert!(codes.is_null(), "{}", answer.text);
        } else {
            assert_eq!(codes[0]["Result"]["Code"], "OperationDenied.QuotaExceed");
        }
    }
    assert_eq!(tags_of(&emulator, "rds:dbinstance", "rm-1").await.len(), 12);

    // Whole-call refusals.
    let cases = [
        (
            tag_call(&[rm1], json!({"acs:rm:rgId": "mine"})),
            "InvalidTagKey.Malformed",
        ),
        (
            tag_call(&[rm1], json!({"empty": ""})),
            "InvalidTagValue.Malformed",
        ),
        (
            tag_call(&[rm1], json!(["not", "an", "object"])),
            "InvalidParameter.Tags",
        ),
        (
            tag_call(&["arn:acs:rds:dbinstance/x"], json!({"k": "v"})),
            "InvalidParameter.ResourceARN",
        ),
        (
            tag_call(
                &[rm1],
                Value::Object((0..11).map(|n| (format!("k{n}"), json!("v"))).collect()),
            ),
            "NumberExceed.Tags",
        ),
        (
            tag_call(
                &(0..51)
                    .map(|n| format!("arn:acs:rds:*:*:dbinstance/r{n}"))
                    .collect::<Vec<_>>()
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>(),
                json!({"k": "v"}),
            ),
            "NumberExceed.ResourceARN",
        ),
        (
            v3(TAG, "UntagResources").query(
                [
                    pairs(&[("RegionId", REGION)]),
                    arns(&[rm1]),
                    (1..=11)
                        .map(|n| (format!("TagKey.{n}"), format!("k{n}")))
                        .collect(),
                ]
                .concat(),
            ),
            "NumberExceed.TagKeys",
        ),
        (
            v3(TAG, "UntagResources").query(
                [
                    pairs(&[("RegionId", REGION), ("TagKey.1", "acs:rm:rgId")]),
                    arns(&[rm1]),
                ]
                .concat(),
            ),
            "InvalidTagKey.Malformed",
        ),
        (
            v3(TAG, "TagResources")
                .query([pairs(&[("Tags", "{\"k\":\"v\"}")]), arns(&[rm1])].concat()),
            "MissingParameter.RegionId",
        ),
    ];
    for (call, code) in cases {
        let answer = call.send(&emulator).await;
        assert_eq!(answer.code(), code, "{}", answer.text);
    }
    assert_eq!(
        tags_of(&emulator, "rds:dbinstance", "rm-1").await["acs:rm:rgId"],
        "rg-1"
    );

    // Untag through V1 as well: the service takes either signature.
    let timestamp = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let nonce = uuid::Uuid::new_v4().to_string();
    let mut params: Vec<(&str, &str)> = vec![
        ("AccessKeyId", KEY_ID),
        ("Action", "UntagResources"),
        ("Format", "JSON"),
        ("RegionId", REGION),
        ("ResourceARN.1", rm1),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureNonce", &nonce),
        ("SignatureVersion", "1.0"),
        ("TagKey.1", "env"),
        ("Timestamp", &timestamp),
        ("Version", TAG),
    ];
    let signature = rpc_signature(SECRET, &rpc_string_to_sign("GET", params.clone()));
    params.push(("Signature", &signature));
    let query: Vec<String> = params
        .iter()
        .map(|(n, v)| format!("{n}={}", rpc_percent_encode(v)))
        .collect();
    let answer = reqwest::get(format!("{}/?{}", emulator.url(), query.join("&")))
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(
        !tags_of(&emulator, "rds:dbinstance", "rm-1")
            .await
            .contains_key("env")
    );
}

/// Every (ARN, tags) of ListTagResources with `extra` parameters, following NextToken; and
/// the number of pages.
async fn list_all(
    emulator: &RunningEmulator,
    extra: &[(&str, &str)],
) -> (Vec<(String, Vec<(String, String, String)>)>, usize) {
    let mut listed = Vec::new();
    let mut pages = 0;
    let mut token = String::new();
    loop {
        let mut query = pairs(&[("RegionId", REGION)]);
        query.extend(pairs(extra));
        if !token.is_empty() {
            query.push(("NextToken".to_string(), token.clone()));
        }
        let answer = v3(TAG, "ListTagResources")
            .query(query)
            .send(emulator)
            .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        let body = answer.json();
        pages += 1;
        for resource in body["TagResources"].as_array().unwrap() {
            let tags = resource["Tags"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    let field = |name: &str| t[name].as_str().unwrap().to_string();
                    (field("Key"), field("Value"), field("Category"))
                })
                .collect();
            listed.push((resource["ResourceARN"].as_str().unwrap().to_string(), tags));
        }
        token = body["NextToken"].as_str().unwrap().to_string();
        if token.is_empty() {
            return (listed, pages);
        }
        assert!(pages < 50, "pagination does not end");
    }
}

#[tokio::test]
async fn the_tag_service_lists_by_arn_or_tag_filter_across_pages() {
    let emulator = emulator().await;
    let uid = account_uid(KEY_ID);
    // By tag filter alone: every resource of the region carrying team=net, 2 per page.
    let (listed, pages) = list_all(&emulator, &[("Tags", "{\"team\":\"net\"}")]).await;
    assert_eq!(pages, 3);
    let expected: Vec<String> = (1..=5)
        .map(|n| format!("arn:acs:vpc:{REGION}:{uid}:vpc/vpc-{n}"))
        .collect();
    assert_eq!(
        listed.iter().map(|(a, _)| a.clone()).collect::<Vec<_>>(),
        expected
    );
    // By ARN, with categories; a product resource appears under its product's code.
    let targets = [
        ("ResourceARN.1", "arn:acs:rds:*:*:dbinstance/rm-1"),
        ("ResourceARN.2", "arn:acs:ecs:*:*:instance/i-1"),
        ("ResourceARN.3", "arn:acs:rds:*:*:dbinstance/rm-404"),
    ];
    let (all, _) = list_all(&emulator, &targets).await;
    assert_eq!(
        all,
        [
            (
                format!("arn:acs:ecs:{REGION}:{uid}:instance/i-1"),
                vec![("team".to_string(), "web".to_string(), "Custom".to_string())]
            ),
            (
                format!("arn:acs:rds:{REGION}:{uid}:dbinstance/rm-1"),
                vec![(
                    "acs:rm:rgId".to_string(),
                    "rg-1".to_string(),
                    "System".to_string()
                )]
            ),
        ]
    );
    let (custom, _) = list_all(&emulator, &[targets[0], ("Category", "Custom")]).await;
    assert!(
        custom.is_empty(),
        "rm-1 carries only a system tag: {custom:?}"
    );
    for (name, value, code) in [
        ("PageSize", "0", "InvalidParameter.PageSize"),
        ("PageSize", "1001", "InvalidParameter.PageSize"),
        ("Category", "custom", "InvalidParameter.Category"),
        ("NextToken", "not-a-token", "InvalidParameter.NextToken"),
        ("Tags", "{\"team\":1}", "InvalidParameter.Tags"),
        ("Tags", "{\"team\":\"\"}", "InvalidTagValue.Malformed"),
        ("Tags", "{\"\":\"net\"}", "InvalidParameter.TagKey"),
    ] {
        let answer = v3(TAG, "ListTagResources")
            .query(pairs(&[("RegionId", REGION), (name, value)]))
            .send(&emulator)
            .await;
        assert_eq!(answer.code(), code, "{name}={value}: {}", answer.text);
    }
    let answer = v3(TAG, "ListTagResources")
        .query(pairs(&[("RegionId", REGION), ("PageSize", "1000")]))
        .send(&emulator)
        .await;
    assert_eq!(
        answer.status,
        StatusCode::OK,
        "PageSize up to 1000 is accepted"
    );
}
