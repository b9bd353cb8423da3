//! The emulator's AWS side (spec aws-resource-groups-tagging.md) over real HTTP on loopback.
//! Requests are built here by hand and signed with `cloud::sign::aws` (the `aws-sigv4` crate),
//! never through tagbinder's client.

use std::time::{Duration, SystemTime};

use base64::Engine;
use serde_json::{Value, json};
use tagbinder::cloud::sign::aws::{AwsCredentials, Unsigned, sign_headers};
use tagbinder::emulator::{
    Account, AwsConfig, EmulatorConfig, FaultConfig, Inventory, InventoryResource, RunningEmulator,
    start,
};

const KEY: &str = "AKIAEMULATORTEST0001";
const SECRET: &str = "emulator/secret/key/aws0000000000000000";
const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

fn instance(id: &str) -> String {
    format!("arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{id}")
}

fn resource(
    resource_type: &str,
    arn: &str,
    region: &str,
    tags: &[(&str, &str)],
) -> InventoryResource {
    InventoryResource {
        cloud: "aws".to_string(),
        region: region.to_string(),
        resource_type: resource_type.to_string(),
        id: arn.to_string(),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn config() -> EmulatorConfig {
    let mut resources = vec![
        resource("ec2:instance", &instance("i-1"), REGION, &[("env", "prod")]),
        resource(
            "ec2:instance",
            &instance("i-2"),
            REGION,
            &[("env", "prod"), ("aws:cloudformation:stack-name", "web")],
        ),
        resource("ec2:instance", &instance("i-3"), REGION, &[("env", "dev")]),
        resource("ec2:instance", &instance("i-untagged"), REGION, &[]),
        resource(
            "ec2:volume",
            &format!("arn:aws:ec2:{REGION}:{ACCOUNT}:volume/vol-1"),
            REGION,
            &[("env", "prod")],
        ),
        resource("s3", "arn:aws:s3:::my-bucket", REGION, &[("env", "prod")]),
        resource(
            "ec2:instance",
            &format!("arn:aws:ec2:eu-west-1:{ACCOUNT}:instance/i-eu"),
            "eu-west-1",
            &[("env", "prod")],
        ),
    ];
    // NB: 48 user tags and two aws: tags: the aws: ones do not count against the 50.
    let mut full: Vec<(String, String)> = (0..48)
        .map(|i| (format!("k{i}"), "v".to_string()))
        .collect();
    full.push(("aws:a".to_string(), "x".to_string()));
    full.push(("aws:b".to_string(), "x".to_string()));
    let full: Vec<(&str, &str)> = full.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    resources.push(resource("ec2:instance", &instance("i-full"), REGION, &full));
    EmulatorConfig {
        inventory: Inventory {
            accounts: vec![Account {
                access_key_id: KEY.to_string(),
                access_key_secret: SECRET.to_string(),
            }],
            resources,
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

struct Signer {
    credentials: AwsCredentials,
    region: String,
    service: &'static str,
    time: Option<SystemTime>,
}

fn signer() -> Signer {
    Signer {
        credentials: AwsCredentials::new(KEY, SECRET, None),
        region: REGION.to_string(),
        service: "tagging",
        time: None,
    }
}

/// One POST / with `headers` and `body`, signed by `signer`: the status and the body.
async fn post(
    emulator: &RunningEmulator,
    signer: &Signer,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let url = format!("{}/", emulator.url());
    let host = emulator.addr().to_string();
    let mut all: Vec<(&str, &str)> = vec![("host", host.as_str())];
    all.extend_from_slice(headers);
    let signed = sign_headers(
        &signer.credentials,
        &signer.region,
        signer.service,
        signer.time.unwrap_or_else(SystemTime::now),
        Unsigned {
            method: "POST",
            url: &url,
            headers: &all,
            body: body.as_bytes(),
        },
    )
    .expect("signed");
    let mut request = http().post(&url).body(body.to_string());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    for (name, value) in signed {
        request = request.header(name, value);
    }
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    (status, response.text().await.expect("a body"))
}

async fn tagging(
    emulator: &RunningEmulator,
    signer: &Signer,
    operation: &str,
    input: Value,
) -> (u16, Value) {
    let target = format!("ResourceGroupsTaggingAPI_20170126.{operation}");
    let (status, body) = post(
        emulator,
        signer,
        &[
            ("content-type", "application/x-amz-json-1.1"),
            ("x-amz-target", &target),
        ],
        &input.to_string(),
    )
    .await;
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|_| panic!("JSON: {body}")),
    )
}

fn error_code(answer: &(u16, Value)) -> (u16, &str) {
    (answer.0, answer.1["__type"].as_str().unwrap_or("-"))
}

fn arns_of(page: &Value) -> Vec<String> {
    page["ResourceTagMappingList"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|m| m["ResourceARN"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn get_resources_pages_to_an_empty_token_and_filters_by_type_and_tags() {
    let emulator = emulator(config()).await;
    let signer = signer();
    let mut token: Option<String> = None;
    let mut listed = Vec::new();
    let mut pages = 0;
    loop {
        let mut input =
            json!({"ResourcesPerPage": 2, "TagFilters": [{"Key": "env", "Values": ["prod"]}]});
        if let Some(token) = &token {
            input["PaginationToken"] = json!(token);
        }
        let (status, page) = tagging(&emulator, &signer, "GetResources", input).await;
        assert_eq!(status, 200, "{page}");
        pages += 1;
        listed.extend(arns_of(&page));
        // NB: the last page carries "", not an absent token.
        let next = page["PaginationToken"]
            .as_str()
            .expect("a token on every page");
        if next.is_empty() {
            break;
        }
        token = Some(next.to_string());
    }
    assert_eq!(pages, 2);
    // NB: us-east-1 only (the S3 bucket has no region in its ARN); the untagged one is not listed.
    assert_eq!(listed.len(), 4, "{listed:?}");
    assert!(
        !listed
            .iter()
            .any(|arn| arn.contains("eu-west-1") || arn.contains("i-untagged"))
    );
    let (_, page) = tagging(
        &emulator,
        &signer,
        "GetResources",
        json!({"ResourceTypeFilters": ["ec2:instance"], "TagFilters": [{"Key": "env"}]}),
    )
    .await;
    assert_eq!(arns_of(&page).len(), 3, "i-1 to i-3: {page}");
    let (_, page) = tagging(
        &emulator,
        &signer,
        "GetResources",
        json!({"ResourceTypeFilters": ["ec2"], "TagFilters": [{"Key": "env", "Values": ["prod"]}]}),
    )
    .await;
    assert_eq!(arns_of(&page).len(), 3, "instances and the volume: {page}");
    // NB: aws: tags are listed with the others.
    let (_, page) = tagging(
        &emulator,
        &signer,
        "GetResources",
        json!({"ResourceARNList": [instance("i-2")]}),
    )
    .await;
    let tags = &page["ResourceTagMappingList"][0]["Tags"];
    assert!(
        tags.as_array()
            .unwrap()
            .iter()
            .any(|t| t["Key"] == "aws:cloudformation:stack-name"),
        "{page}"
    );
}

#[tokio::test]
async fn resource_arn_list_excludes_filters_and_paging_and_takes_at_most_100() {
    let emulator = emulator(config()).await;
    let signer = signer();
    for other in [
        json!({"TagFilters": [{"Key": "env"}]}),
        json!({"ResourceTypeFilters": ["ec2"]}),
        json!({"ResourcesPerPage": 10}),
        json!({"TagsPerPage": 100}),
        json!({"PaginationToken": "x"}),
    ] {
        let mut input = other.clone();
        input["ResourceARNList"] = json!([instance("i-1")]);
        let answer = tagging(&emulator, &signer, "GetResources", input).await;
        assert_eq!(
            error_code(&answer),
            (400, "InvalidParameterException"),
            "{other}"
        );
    }
    let many: Vec<String> = (0..101).map(|i| instance(&format!("i-{i}"))).collect();
    let answer = tagging(
        &emulator,
        &signer,
        "GetResources",
        json!({"ResourceARNList": many}),
    )
    .await;
    assert_eq!(error_code(&answer), (400, "InvalidParameterException"));
    // NB: unknown and untagged resources are simply not listed.
    let (status, page) = tagging(
        &emulator,
        &signer,
        "GetResources",
        json!({"ResourceARNList": [instance("i-1"), instance("i-untagged"), instance("i-nope")]}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(arns_of(&page), vec![instance("i-1")]);
    for (input, what) in [
        (json!({"ResourcesPerPage": 101}), "ResourcesPerPage"),
        (json!({"TagsPerPage": 99}), "TagsPerPage"),
        (
            json!({"TagFilters": (0..51).map(|i| json!({"Key": format!("k{i}")})).collect::<Vec<_>>()}),
            "TagFilters",
        ),
        (
            json!({"TagFilters": [{"Key": "k", "Values": (0..21).map(|i| i.to_string()).collect::<Vec<_>>()}]}),
            "Values",
        ),
    ] {
        let answer = tagging(&emulator, &signer, "GetResources", input).await;
        assert_eq!(
            error_code(&answer),
            (400, "InvalidParameterException"),
            "{what}"
        );
    }
}

#[tokio::test]
async fn writes_keep_to_the_limits_and_report_per_resource_failures() {
    let emulator = emulator(config()).await;
    let signer = signer();
    let many: Vec<String> = (0..21).map(|i| instance(&format!("i-{i}"))).collect();
    let answer = tagging(
        &emulator,
        &signer,
        "TagResources",
        json!({"ResourceARNList": many, "Tags": {"a": "b"}}),
    )
    .await;
    assert_eq!(
        error_code(&answer),
        (400, "InvalidParameterException"),
        "21 ARNs"
    );
    let tags: serde_json::Map<String, Value> =
        (0..51).map(|i| (format!("k{i}"), json!("v"))).collect();
    let answer = tagging(
        &emulator,
        &signer,
        "TagResources",
        json!({"ResourceARNList": [instance("i-1")], "Tags": tags}),
    )
    .await;
    assert_eq!(
        error_code(&answer),
        (400, "InvalidParameterException"),
        "51 tags"
    );
    let long_key = "k".repeat(129);
    let answer = tagging(
        &emulator,
        &signer,
        "TagResources",
        json!({"ResourceARNList": [instance("i-1")], "Tags": {long_key: "v"}}),
    )
    .await;
    assert_eq!(
        error_code(&answer),
        (400, "InvalidParameterException"),
        "129-character key"
    );
    let answer = tagging(
        &emulator,
        &signer,
        "TagResources",
        json!({"ResourceARNList": [instance("i-1")], "Tags": {"k": "v".repeat(257)}}),
    )
    .await;
    assert_eq!(
        error_code(&answer),
        (400, "InvalidParameterException"),
        "257-character value"
    );
    for operation in ["TagResources", "UntagResources"] {
        let input = if operation == "TagResources" {
            json!({"ResourceARNList": [instance("i-2")], "Tags": {"aws:cloudformation:stack-name": "x"}})
        } else {
            json!({"ResourceARNList": [instance("i-2")], "TagKeys": ["aws:cloudformation:stack-name"]})
        };
        let answer = tagging(&emulator, &signer, operation, input).await;
        assert_eq!(
            error_code(&answer),
            (400, "InvalidParameterException"),
            "{operation} aws:"
        );
    }
    let answer = tagging(&emulator, &signer, "TagResources", json!({"ResourceARNList": [format!("arn:aws-cn:ec2:cn-north-1:{ACCOUNT}:instance/i-1")], "Tags": {"a": "b"}})).await;
    assert_eq!(
        error_code(&answer),
        (400, "InvalidParameterException"),
        "another partition"
    );

    // NB: one call, four fates: written, unknown, over the quota (48 + 3 new > 50; its two
    // aws: tags do not count, so 2 new would fit), another region.
    let (status, answer) = tagging(
        &emulator,
        &signer,
        "TagResources",
        json!({"ResourceARNList": [instance("i-1"), instance("i-nope"), instance("i-full"), format!("arn:aws:ec2:eu-west-1:{ACCOUNT}:instance/i-eu")],
               "Tags": {"team": "web", "cost": "1", "owner": "me"}}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let failed = answer["FailedResourcesMap"].as_object().expect("a map");
    assert_eq!(failed.len(), 3, "{answer}");
    assert_eq!(failed[&instance("i-nope")]["StatusCode"], 404);
    assert_eq!(
        failed[&instance("i-nope")]["ErrorCode"],
        "InvalidParameterException"
    );
    assert!(
        failed[&instance("i-full")]["ErrorMessage"]
            .as_str()
            .unwrap()
            .contains("TagLimitExceeded")
    );
    let (_, page) = tagging(
        &emulator,
        &signer,
        "GetResources",
        json!({"ResourceARNList": [instance("i-1")]}),
    )
    .await;
    assert_eq!(
        page["ResourceTagMappingList"][0]["Tags"]
            .as_array()
            .unwrap()
            .len(),
        4,
        "{page}"
    );
    let (_, answer) = tagging(
        &emulator,
        &signer,
        "TagResources",
        json!({"ResourceARNList": [instance("i-full")], "Tags": {"a": "1", "b": "2"}}),
    )
    .await;
    assert_eq!(
        answer["FailedResourcesMap"],
        json!({}),
        "aws: tags do not count: {answer}"
    );

    let (status, answer) = tagging(&emulator, &signer, "UntagResources", json!({"ResourceARNList": [instance("i-1"), instance("i-nope")], "TagKeys": ["team", "never-there"]})).await;
    assert_eq!(status, 200);
    assert_eq!(
        answer["FailedResourcesMap"].as_object().unwrap().len(),
        1,
        "{answer}"
    );
    let (_, page) = tagging(
        &emulator,
        &signer,
        "GetResources",
        json!({"ResourceARNList": [instance("i-1")]}),
    )
    .await;
    assert_eq!(
        page["ResourceTagMappingList"][0]["Tags"]
            .as_array()
            .unwrap()
            .len(),
        3,
        "{page}"
    );
}

#[tokio::test]
async fn pagination_tokens_expire_and_belong_to_their_request() {
    let emulator = emulator(EmulatorConfig {
        aws: AwsConfig {
            pagination_token_ttl: Duration::from_millis(300),
            ..AwsConfig::default()
        },
        ..config()
    })
    .await;
    let signer = signer();
    let (_, page) = tagging(
        &emulator,
        &signer,
        "GetResources",
        json!({"ResourcesPerPage": 1}),
    )
    .await;
    let token = page["PaginationToken"].as_str().unwrap().to_string();
    assert!(!token.is_empty());
    let answer = tagging(
        &emulator,
        &signer,
        "GetResources",
        json!({"ResourcesPerPage": 2, "PaginationToken": token}),
    )
    .await;
    assert_eq!(
        error_code(&answer),
        (400, "InvalidParameterException"),
        "another request's token"
    );
    let (status, _) = tagging(
        &emulator,
        &signer,
        "GetResources",
        json!({"ResourcesPerPage": 1, "PaginationToken": token}),
    )
    .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let answer = tagging(
        &emulator,
        &signer,
        "GetResources",
        json!({"ResourcesPerPage": 1, "PaginationToken": token}),
    )
    .await;
    assert_eq!(
        error_code(&answer),
        (400, "PaginationTokenExpiredException")
    );
}

#[tokio::test]
async fn signatures_are_checked_as_aws_checks_them() {
    let emulator = emulator(EmulatorConfig {
        faults: FaultConfig {
            clock_offset: jiff::SignedDuration::from_secs(0),
            ..FaultConfig::default()
        },
        ..config()
    })
    .await;
    let input = json!({"ResourcesPerPage": 1});
    let wrong_secret = Signer {
        credentials: AwsCredentials::new(KEY, "not-the-secret", None),
        ..signer()
    };
    let answer = tagging(&emulator, &wrong_secret, "GetResources", input.clone()).await;
    assert_eq!(error_code(&answer), (400, "InvalidSignatureException"));
    let unknown = Signer {
        credentials: AwsCredentials::new("AKIAUNKNOWN000000000", SECRET, None),
        ..signer()
    };
    let answer = tagging(&emulator, &unknown, "GetResources", input.clone()).await;
    assert_eq!(error_code(&answer), (400, "UnrecognizedClientException"));
    let stale = Signer {
        time: Some(SystemTime::now() - Duration::from_secs(16 * 60)),
        ..signer()
    };
    let answer = tagging(&emulator, &stale, "GetResources", input.clone()).await;
    assert_eq!(error_code(&answer), (400, "InvalidSignatureException"));
    assert!(
        answer.1["Message"]
            .as_str()
            .unwrap()
            .contains("Signature expired")
    );
    let other_service = Signer {
        service: "ec2",
        ..signer()
    };
    let answer = tagging(&emulator, &other_service, "GetResources", input.clone()).await;
    assert_eq!(error_code(&answer), (400, "InvalidSignatureException"));
    let invented_token = Signer {
        credentials: AwsCredentials::new(KEY, SECRET, Some("invented".to_string())),
        ..signer()
    };
    let answer = tagging(&emulator, &invented_token, "GetResources", input.clone()).await;
    assert_eq!(error_code(&answer), (400, "UnrecognizedClientException"));
    let (status, body) = post(
        &emulator,
        &signer(),
        &[
            ("content-type", "application/x-amz-json-1.1"),
            (
                "x-amz-target",
                "ResourceGroupsTaggingAPI_20170126.GetComplianceSummary",
            ),
        ],
        "{}",
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("UnknownOperationException"), "{body}");
}

fn xml_field<'a>(xml: &'a str, name: &str) -> &'a str {
    let start = xml
        .find(&format!("<{name}>"))
        .unwrap_or_else(|| panic!("{name} in {xml}"))
        + name.len()
        + 2;
    let end = xml[start..].find(&format!("</{name}>")).unwrap() + start;
    &xml[start..end]
}

fn web_identity_token(exp: u64) -> String {
    let part =
        |value: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string());
    format!(
        "{}.{}.c2ln",
        part(json!({"alg": "RS256"})),
        part(json!({"sub": "system:serviceaccount:tagbinder-system:tagbinder", "exp": exp}))
    )
}

async fn sts_unsigned(emulator: &RunningEmulator, form: &[(&str, &str)]) -> (u16, String) {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    let response = http()
        .post(format!("{}/", emulator.url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .expect("an answer");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn sts_answers_the_caller_and_issues_web_identity_credentials_the_tagging_api_accepts() {
    let emulator = emulator(config()).await;
    let sts = Signer {
        service: "sts",
        ..signer()
    };
    let form = "Action=GetCallerIdentity&Version=2011-06-15";
    let (status, xml) = post(
        &emulator,
        &sts,
        &[(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )],
        form,
    )
    .await;
    assert_eq!(status, 200, "{xml}");
    assert_eq!(xml_field(&xml, "Account"), ACCOUNT);
    assert_eq!(
        xml_field(&xml, "Arn"),
        format!("arn:aws:iam::{ACCOUNT}:user/{KEY}")
    );

    let later = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let role = format!("arn:aws:iam::{ACCOUNT}:role/tagbinder");
    let token = web_identity_token(later);
    let (status, xml) = sts_unsigned(
        &emulator,
        &[
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", &role),
            ("RoleSessionName", "tagbinder"),
            ("WebIdentityToken", &token),
        ],
    )
    .await;
    assert_eq!(status, 200, "{xml}");
    let key = xml_field(&xml, "AccessKeyId").to_string();
    let secret = xml_field(&xml, "SecretAccessKey").to_string();
    let session = xml_field(&xml, "SessionToken").to_string();
    assert!(key.starts_with("ASIA"));
    let temporary = Signer {
        credentials: AwsCredentials::new(&key, &secret, Some(session)),
        ..signer()
    };
    let (status, page) = tagging(
        &emulator,
        &temporary,
        "GetResources",
        json!({"ResourcesPerPage": 1}),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let without_token = Signer {
        credentials: AwsCredentials::new(&key, &secret, None),
        ..signer()
    };
    let answer = tagging(&emulator, &without_token, "GetResources", json!({})).await;
    assert_eq!(error_code(&answer), (400, "UnrecognizedClientException"));

    let expired = web_identity_token(1);
    let (status, xml) = sts_unsigned(
        &emulator,
        &[
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", &role),
            ("RoleSessionName", "tagbinder"),
            ("WebIdentityToken", &expired),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(xml_field(&xml, "Code"), "ExpiredTokenException");
    let other_account = "arn:aws:iam::999999999999:role/tagbinder";
    let (status, xml) = sts_unsigned(
        &emulator,
        &[
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", other_account),
            ("RoleSessionName", "tagbinder"),
            ("WebIdentityToken", &token),
        ],
    )
    .await;
    assert_eq!((status, xml_field(&xml, "Code")), (403, "AccessDenied"));
}

#[tokio::test]
async fn per_action_rates_throttle_under_the_fault_flag() {
    let emulator = emulator(EmulatorConfig {
        aws: AwsConfig {
            enforce_rates: true,
            ..AwsConfig::default()
        },
        ..config()
    })
    .await;
    let signer = signer();
    let mut codes = Vec::new();
    for _ in 0..6 {
        let answer = tagging(
            &emulator,
            &signer,
            "TagResources",
            json!({"ResourceARNList": [instance("i-1")], "Tags": {"a": "b"}}),
        )
        .await;
        codes.push(error_code(&answer).1.to_string());
    }
    assert_eq!(codes.iter().filter(|c| *c == "-").count(), 5, "{codes:?}");
    assert_eq!(codes[5], "ThrottledException");
    // NB: GetResources has its own rate.
    let (status, _) = tagging(&emulator, &signer, "GetResources", json!({})).await;
    assert_eq!(status, 200);
}
