//! tagbinder's AWS client (`cloud: aws`) against the emulator's Resource Groups Tagging API:
//! ARN composition and refusals, reads of 100 ARNs a call, writes with per-ARN failures,
//! selects paged to the end, the per-action rates.

use std::time::Duration;

use serde_json::Value;
use tagbinder::api::TagProviderSpec;
use tagbinder::cloud::aws::chain::{AwsSource, ContainerEndpoint, ContainerToken, WebIdentityRole};
use tagbinder::cloud::credentials::{Credentials, Refreshing, TemporarySource};
use tagbinder::cloud::{AccessKey, ErrorKind, RetryPolicy, TagApi};
use tagbinder::emulator::{
    Account, AwsConfig, EmulatorConfig, Inventory, InventoryResource, RunningEmulator, start,
};
use tagbinder::reconcile::provider::{ClientOptions, ProviderClient, client_for, http_client};
use tagbinder::tags::Tags;

const KEY: &str = "AKIACLIENTTEST000001";
const SECRET: &str = "client/test/secret/aws00000000000000000";
const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

fn instance(id: &str) -> String {
    format!("arn:aws:ec2:{REGION}:{ACCOUNT}:instance/{id}")
}

fn resource(resource_type: &str, arn: &str, tags: &[(&str, &str)]) -> InventoryResource {
    InventoryResource {
        cloud: "aws".to_string(),
        region: REGION.to_string(),
        resource_type: resource_type.to_string(),
        id: arn.to_string(),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn config(instances: usize) -> EmulatorConfig {
    let mut resources: Vec<InventoryResource> = (0..instances)
        .map(|i| {
            resource(
                "ec2:instance",
                &instance(&format!("i-{i:04}")),
                &[("env", "prod")],
            )
        })
        .collect();
    resources.push(resource(
        "ec2:instance",
        &instance("i-stack"),
        &[("env", "prod"), ("aws:cloudformation:stack-name", "web")],
    ));
    resources.push(resource("s3", "arn:aws:s3:::logs-bucket", &[]));
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

fn client(emulator: &RunningEmulator, extra: &str, default_rate_limit: bool) -> ProviderClient {
    let spec: TagProviderSpec = serde_yaml::from_str(&format!(
        "{{cloud: aws, region: {REGION}, endpoint: '{}', aws: {{accountId: '{ACCOUNT}'}}{extra}}}",
        emulator.url()
    ))
    .expect("a provider spec");
    client_for(
        &spec,
        AccessKey::new(KEY, SECRET).into(),
        &ClientOptions {
            http: http_client().expect("HTTP client"),
            endpoint_override: None,
            retry: RetryPolicy::default(),
            observer: None,
            default_rate_limit,
        },
    )
    .expect("a client")
}

async fn stats(emulator: &RunningEmulator) -> Value {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::get(format!("{}/_emulator/stats", emulator.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn calls(stats: &Value, action: &str, outcome: &str) -> u64 {
    stats["requests"]["aws"][action][outcome]
        .as_u64()
        .unwrap_or(0)
}

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn reads_bare_ids_and_arns_100_a_call_without_aws_tags() {
    let emulator = emulator(config(150)).await;
    let client = client(&emulator, "", false);
    let mut ids: Vec<String> = (0..149).map(|i| format!("i-{i:04}")).collect();
    ids.push(instance("i-0149"));
    ids.push("i-stack".to_string());
    ids.push("i-absent".to_string());
    let observed = client.list_tags("ec2:instance", &ids).await.expect("read");
    assert_eq!(observed.len(), 152);
    assert_eq!(observed["i-0000"], tags(&[("env", "prod")]));
    assert_eq!(observed[&instance("i-0149")], tags(&[("env", "prod")]));
    // NB: aws: tags are AWS's own: never read into a decision.
    assert_eq!(observed["i-stack"], tags(&[("env", "prod")]));
    assert_eq!(observed["i-absent"], Tags::new());
    let stats = stats(&emulator).await;
    assert_eq!(
        calls(&stats, "GetResources", "ok"),
        2,
        "ceil(152 / 100): {stats}"
    );
}

#[tokio::test]
async fn writes_fail_per_arn_and_never_carry_aws_keys() {
    let emulator = emulator(config(3)).await;
    let client = client(&emulator, "", false);
    let ids = vec![
        "i-0000".to_string(),
        "i-nope".to_string(),
        instance("i-0001"),
    ];
    let result = client
        .tag_resources("ec2:instance", &ids, &tags(&[("team", "web")]))
        .await
        .expect("a 200 answer");
    assert_eq!(result.failed.len(), 1, "{result:?}");
    assert_eq!(result.failed["i-nope"].kind, ErrorKind::NotFound);
    let observed = client.list_tags("ec2:instance", &ids).await.unwrap();
    assert_eq!(observed["i-0000"]["team"], "web");
    assert_eq!(observed[&instance("i-0001")]["team"], "web");
    let error = client
        .tag_resources("ec2:instance", &ids[..1], &tags(&[("aws:x", "y")]))
        .await
        .expect_err("an aws: key");
    // NB: refused by the client, not answered by the cloud: nothing was sent.
    assert_eq!(
        (error.kind(), error.cloud()),
        (ErrorKind::InvalidInput, None)
    );
    let result = client
        .untag_resources("ec2:instance", &ids[..1], &tags(&[("team", "web")]))
        .await
        .unwrap();
    assert!(result.failed.is_empty());
    let observed = client.list_tags("ec2:instance", &ids[..1]).await.unwrap();
    assert_eq!(observed["i-0000"], tags(&[("env", "prod")]));
    let ids: Vec<String> = (0..21).map(|i| format!("i-{i}")).collect();
    let error = client
        .tag_resources("ec2:instance", &ids, &tags(&[("a", "b")]))
        .await
        .expect_err("21 ARNs");
    assert_eq!(error.code(), "BatchTooLarge");
}

#[tokio::test]
async fn ids_of_another_region_account_or_type_and_bare_ids_of_unknown_types_are_refused() {
    let emulator = emulator(config(1)).await;
    let client = client(&emulator, "", false);
    assert_eq!(
        client.check_resource_ids("ec2:instance", &["i-1".to_string(), instance("i-2")]),
        Ok(())
    );
    for (resource_type, id, word) in [
        (
            "ec2:instance",
            "arn:aws:ec2:eu-west-1:123456789012:instance/i-1",
            "region",
        ),
        (
            "ec2:instance",
            "arn:aws:ec2:us-east-1:999999999999:instance/i-1",
            "account",
        ),
        (
            "ec2:instance",
            "arn:aws-cn:ec2:us-east-1:123456789012:instance/i-1",
            "partition",
        ),
        (
            "ec2:volume",
            "arn:aws:ec2:us-east-1:123456789012:instance/i-1",
            "not a ec2:volume",
        ),
        ("kafka:cluster", "c-1", "give the ARN"),
    ] {
        let error = client
            .check_resource_ids(resource_type, &[id.to_string()])
            .expect_err(id)
            .to_string();
        assert!(error.contains(word), "{id}: {error}");
    }
    let error = client
        .list_tags("kafka:cluster", &["c-1".to_string()])
        .await
        .expect_err("no ARN");
    assert_eq!((error.code(), error.cloud()), ("InvalidResourceId", None));
    assert_eq!(stats(&emulator).await["total"], 0, "nothing was sent");
}

#[tokio::test]
async fn selects_page_to_the_empty_token_and_keep_the_binding_type() {
    let emulator = emulator(config(230)).await;
    let client = client(&emulator, "", false);
    let selected = client
        .select_resources("ec2:instance", &tags(&[("env", "prod")]))
        .await
        .expect("a select");
    assert_eq!(selected.len(), 231);
    assert!(selected.keys().all(|arn| arn.starts_with("arn:aws:ec2:")));
    let stats = stats(&emulator).await;
    assert_eq!(
        calls(&stats, "GetResources", "ok"),
        3,
        "100 a page: {stats}"
    );
}

#[tokio::test]
async fn the_client_keeps_to_the_per_action_rates_which_a_rate_limit_may_only_lower() {
    let emulator = emulator(EmulatorConfig {
        aws: AwsConfig {
            enforce_rates: true,
            ..AwsConfig::default()
        },
        ..config(12)
    })
    .await;
    // NB: asks for 100 calls/s; AWS allows 5 TagResources a second, and so does the client.
    let client = client(
        &emulator,
        ", rateLimit: {requestsPerSecond: 100, burst: 100}",
        false,
    );
    let started = std::time::Instant::now();
    for i in 0..8 {
        let ids = vec![format!("i-{i:04}")];
        client
            .tag_resources("ec2:instance", &ids, &tags(&[("n", "1")]))
            .await
            .expect("within the rate");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    let stats = stats(&emulator).await;
    assert_eq!(
        calls(&stats, "TagResources", "ThrottledException"),
        0,
        "{stats}"
    );
    assert_eq!(calls(&stats, "TagResources", "ok"), 8, "{stats}");
}

/// Issue 22: an `InternalServiceException` for an ARN in `FailedResourcesMap` is retried once
/// and, when the retry fails the same way, verified with a read (GetResources by ARN).
#[tokio::test]
async fn an_internal_service_exception_is_retried_once_then_verified_with_a_read() {
    let ids = vec!["i-0000".to_string(), instance("i-0001")];
    let team = tags(&[("team", "web")]);
    // (injected errors per ARN, applied anyway) -> (failed, TagResources, GetResources)
    let cases = [
        ((1, false), (0, 2, 0)),
        ((2, true), (0, 2, 1)),
        ((2, false), (2, 2, 1)),
    ];
    for ((errors, applies), (failed, tag_calls, reads)) in cases {
        let mut config = config(3);
        config.aws = AwsConfig {
            internal_errors: errors,
            internal_error_applies: applies,
            ..AwsConfig::default()
        };
        let emulator = emulator(config).await;
        let client = client(&emulator, "", false);
        let result = client
            .tag_resources("ec2:instance", &ids, &team)
            .await
            .expect("a 200 answer");
        let case = format!("{errors} injected, applied {applies}: {result:?}");
        assert_eq!(result.failed.len(), failed, "{case}");
        for error in result.failed.values() {
            assert_eq!(error.kind, ErrorKind::Retryable, "{case}");
            assert!(error.message.contains("was not applied"), "{case}");
        }
        let stats = stats(&emulator).await;
        assert_eq!(
            calls(&stats, "TagResources", "ok"),
            tag_calls,
            "{case}: {stats}"
        );
        assert_eq!(
            calls(&stats, "GetResources", "ok"),
            reads,
            "{case}: {stats}"
        );
        let observed = client.list_tags("ec2:instance", &ids).await.unwrap();
        for id in &ids {
            assert_eq!(
                observed[id].contains_key("team"),
                failed == 0,
                "{case}: {observed:?}"
            );
        }
    }
}

/// A listing whose `PaginationToken` expired starts again from its first page once, not
/// forever: with every token expired, two first pages and two refused tokens, then the error.
#[tokio::test]
async fn an_expired_pagination_token_restarts_the_listing_once() {
    let mut config = config(150);
    config.aws = AwsConfig {
        pagination_token_ttl: Duration::ZERO,
        ..AwsConfig::default()
    };
    // NB: the token outlives a zero lifetime by the added latency at least.
    config.faults.latency = Duration::from_millis(5);
    let emulator = emulator(config).await;
    let client = client(&emulator, "", false);
    let error = client
        .select_resources("ec2:instance", &tags(&[("env", "prod")]))
        .await
        .expect_err("every token expires");
    assert_eq!(error.code(), "PaginationTokenExpiredException");
    let stats = stats(&emulator).await;
    assert_eq!(calls(&stats, "GetResources", "ok"), 2, "{stats}");
    assert_eq!(
        calls(&stats, "GetResources", "PaginationTokenExpiredException"),
        2,
        "{stats}"
    );
}

/// Issue 22: a provider without `aws.accountId` asks STS GetCallerIdentity for the account,
/// once per client, and composes bare ids with it.
#[tokio::test]
async fn without_an_account_id_sts_names_the_account_once() {
    let emulator = emulator(config(3)).await;
    let spec: TagProviderSpec = serde_yaml::from_str(&format!(
        "{{cloud: aws, region: {REGION}, endpoint: '{}'}}",
        emulator.url()
    ))
    .expect("a provider spec");
    let client = client_for(
        &spec,
        AccessKey::new(KEY, SECRET).into(),
        &ClientOptions {
            http: http_client().expect("HTTP client"),
            endpoint_override: None,
            retry: RetryPolicy::default(),
            observer: None,
            default_rate_limit: false,
        },
    )
    .expect("a client");
    assert_eq!(client.known_aws_account(), None);
    let ids = vec!["i-0000".to_string(), instance("i-0001")];
    let reads = futures::future::join_all((0..3).map(|_| client.list_tags("ec2:instance", &ids)));
    for observed in reads.await {
        assert_eq!(
            observed.expect("a read")["i-0000"],
            tags(&[("env", "prod")])
        );
    }
    let result = client
        .tag_resources("ec2:instance", &ids, &tags(&[("team", "web")]))
        .await
        .expect("a write");
    assert!(result.failed.is_empty(), "{result:?}");
    assert_eq!(client.known_aws_account().as_deref(), Some(ACCOUNT));
    assert_eq!(client.aws_account().await.as_deref(), Some(ACCOUNT));
    let stats = stats(&emulator).await;
    assert_eq!(calls(&stats, "GetCallerIdentity", "ok"), 1, "{stats}");
    assert_eq!(calls(&stats, "GetResources", "ok"), 3, "{stats}");
}

/// A JWT-shaped web identity token (the emulator checks its shape and `exp`).
fn web_identity_token() -> String {
    use base64::Engine;
    let part = |json: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    let exp = jiff::Timestamp::now().as_second() + 3600;
    format!(
        "{}.{}.{}",
        part(r#"{"alg":"RS256"}"#),
        part(&format!(
            r#"{{"sub":"system:serviceaccount:tagbinder-system:tagbinder","exp":{exp}}}"#
        )),
        part("signature")
    )
}

fn chain_client(emulator: &RunningEmulator, source: AwsSource) -> ProviderClient {
    let spec: TagProviderSpec = serde_yaml::from_str(&format!(
        "{{cloud: aws, region: {REGION}, endpoint: '{}', aws: {{accountId: '{ACCOUNT}'}}}}",
        emulator.url()
    ))
    .expect("a provider spec");
    let http = http_client().expect("HTTP client");
    let credentials = Credentials::Refreshing(std::sync::Arc::new(Refreshing::new(
        TemporarySource::Aws(source),
        http.clone(),
    )));
    client_for(
        &spec,
        credentials,
        &ClientOptions {
            http,
            endpoint_override: None,
            retry: RetryPolicy::default(),
            observer: None,
            default_rate_limit: false,
        },
    )
    .expect("a client")
}

/// Issue 22: web identity (IRSA) through the emulator's STS AssumeRoleWithWebIdentity; the
/// temporary credentials are fetched again before they expire (the emulator issues them for
/// 4 s here: a call after 4.5 s would fail with credentials fetched once).
#[tokio::test]
async fn web_identity_credentials_are_assumed_and_renewed_before_they_expire() {
    let mut config = config(3);
    config.credentials_ttl = Some(Duration::from_secs(4));
    let emulator = emulator(config).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, web_identity_token()).unwrap();
    let client = chain_client(
        &emulator,
        AwsSource::WebIdentity(WebIdentityRole {
            role_arn: format!("arn:aws:iam::{ACCOUNT}:role/tagbinder"),
            token_file,
            session_name: "tagbinder-test".to_string(),
            sts_endpoint: emulator.url(),
        }),
    );
    let ids = vec!["i-0000".to_string()];
    let observed = client
        .list_tags("ec2:instance", &ids)
        .await
        .expect("a read");
    assert_eq!(observed["i-0000"], tags(&[("env", "prod")]));
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let result = client
        .tag_resources("ec2:instance", &ids, &tags(&[("team", "web")]))
        .await
        .expect("a write with renewed credentials");
    assert!(result.failed.is_empty(), "{result:?}");
    let stats = stats(&emulator).await;
    assert_eq!(
        calls(&stats, "AssumeRoleWithWebIdentity", "ok"),
        2,
        "{stats}"
    );
    assert_eq!(calls(&stats, "TagResources", "ok"), 1, "{stats}");
}

/// Issue 22: EKS Pod Identity: the container credentials endpoint, asked with the token of
/// AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE as `Authorization`, hands out temporary credentials
/// (here the emulator's STS issued them).
#[tokio::test]
async fn pod_identity_credentials_come_from_the_container_endpoint_with_its_token() {
    let emulator = emulator(config(3)).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("web-token");
    std::fs::write(&token_file, web_identity_token()).unwrap();
    // The agent's credentials: assumed once from the emulator's STS.
    let (key, expiration) = AwsSource::WebIdentity(WebIdentityRole {
        role_arn: format!("arn:aws:iam::{ACCOUNT}:role/pod"),
        token_file,
        session_name: "pod-identity-agent".to_string(),
        sts_endpoint: emulator.url(),
    })
    .fetch(&http_client().unwrap())
    .await
    .expect("STS issues credentials");
    let answer = serde_json::json!({
        "AccessKeyId": key.id,
        "SecretAccessKey": key.secret(),
        "Token": key.session_token(),
        "Expiration": expiration.to_string(),
    });
    let asked = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = {
        let asked = asked.clone();
        axum::Router::new().route(
            "/v1/credentials",
            axum::routing::get(move |headers: axum::http::HeaderMap| {
                let (asked, answer) = (asked.clone(), answer.clone());
                async move {
                    asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
                        Some("pod-identity-token") => Ok(axum::Json(answer)),
                        _ => Err(axum::http::StatusCode::UNAUTHORIZED),
                    }
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent = format!("http://{}/v1/credentials", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let agent_token = dir.path().join("eks-pod-identity-token");
    std::fs::write(&agent_token, "pod-identity-token\n").unwrap();
    let client = chain_client(
        &emulator,
        AwsSource::Container(ContainerEndpoint {
            uri: agent.clone(),
            token: Some(ContainerToken::File(agent_token)),
        }),
    );
    let observed = client
        .list_tags("ec2:instance", &["i-0000".to_string()])
        .await
        .expect("a read with Pod Identity credentials");
    assert_eq!(observed["i-0000"], tags(&[("env", "prod")]));
    assert_eq!(asked.load(std::sync::atomic::Ordering::SeqCst), 1);
    // A wrong token is refused by the agent, and said so without the token.
    let refused = chain_client(
        &emulator,
        AwsSource::Container(ContainerEndpoint {
            uri: agent,
            token: Some(ContainerToken::Value("wrong-token".to_string())),
        }),
    );
    let error = refused
        .list_tags("ec2:instance", &["i-0000".to_string()])
        .await
        .expect_err("the agent refuses");
    assert_eq!(error.kind(), ErrorKind::Credentials, "{error:?}");
    assert!(!error.message().contains("wrong-token"), "{error:?}");
}

/// Issue 22: the EC2 instance profile, last in the chain, from the instance metadata service
/// (IMDSv2: a session token first, then the role, then its credentials, each GET with the
/// token); off EC2 nothing answers and the error names every source of the chain.
#[tokio::test]
async fn the_instance_profile_comes_from_the_metadata_service_with_a_session_token() {
    use tagbinder::cloud::aws::chain::InstanceMetadata;
    let emulator = emulator(config(3)).await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("web-token");
    std::fs::write(&token_file, web_identity_token()).unwrap();
    // The instance profile's credentials: assumed once from the emulator's STS.
    let (key, expiration) = AwsSource::WebIdentity(WebIdentityRole {
        role_arn: format!("arn:aws:iam::{ACCOUNT}:role/node"),
        token_file,
        session_name: "instance-profile".to_string(),
        sts_endpoint: emulator.url(),
    })
    .fetch(&http_client().unwrap())
    .await
    .expect("STS issues credentials");
    let answer = serde_json::json!({
        "Code": "Success",
        "Type": "AWS-HMAC",
        "AccessKeyId": key.id,
        "SecretAccessKey": key.secret(),
        "Token": key.session_token(),
        "Expiration": expiration.to_string(),
    });
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    const SESSION: &str = "imds-session-token";
    let with_session = |headers: &axum::http::HeaderMap| {
        headers
            .get("x-aws-ec2-metadata-token")
            .and_then(|v| v.to_str().ok())
            == Some(SESSION)
    };
    let app = {
        let (a, b, c) = (asked.clone(), asked.clone(), asked.clone());
        axum::Router::new()
            .route(
                "/latest/api/token",
                axum::routing::put(move |headers: axum::http::HeaderMap| async move {
                    a.lock().unwrap().push("PUT token".into());
                    match headers.get("x-aws-ec2-metadata-token-ttl-seconds") {
                        Some(_) => Ok(SESSION),
                        None => Err(axum::http::StatusCode::BAD_REQUEST),
                    }
                }),
            )
            .route(
                "/latest/meta-data/iam/security-credentials/",
                axum::routing::get(move |headers: axum::http::HeaderMap| async move {
                    b.lock().unwrap().push("GET role".into());
                    if with_session(&headers) {
                        Ok("tagbinder-node\n")
                    } else {
                        Err(axum::http::StatusCode::UNAUTHORIZED)
                    }
                }),
            )
            .route(
                "/latest/meta-data/iam/security-credentials/tagbinder-node",
                axum::routing::get(move |headers: axum::http::HeaderMap| {
                    let answer = answer.clone();
                    async move {
                        c.lock().unwrap().push("GET credentials".into());
                        if with_session(&headers) {
                            Ok(axum::Json(answer))
                        } else {
                            Err(axum::http::StatusCode::UNAUTHORIZED)
                        }
                    }
                }),
            )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let imds = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = chain_client(
        &emulator,
        AwsSource::Instance(InstanceMetadata {
            endpoint: imds.clone(),
        }),
    );
    let observed = client
        .list_tags("ec2:instance", &["i-0000".to_string()])
        .await
        .expect("a read with the instance profile's credentials");
    assert_eq!(observed["i-0000"], tags(&[("env", "prod")]));
    assert_eq!(
        *asked.lock().unwrap(),
        ["PUT token", "GET role", "GET credentials"]
    );

    // Off EC2: nothing answers at the address; the error says which sources were tried.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let nowhere = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let error = chain_client(
        &emulator,
        AwsSource::Instance(InstanceMetadata { endpoint: nowhere }),
    )
    .list_tags("ec2:instance", &["i-0000".to_string()])
    .await
    .expect_err("no metadata service");
    assert_eq!(error.kind(), ErrorKind::Credentials, "{error:?}");
    for named in [
        "spec.credentials.secretRef",
        "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "instance profile",
        "AWS_EC2_METADATA_DISABLED=true",
    ] {
        assert!(
            error.message().contains(named),
            "{named}: {}",
            error.message()
        );
    }
}
