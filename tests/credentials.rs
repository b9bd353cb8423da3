//! Credentials other than a long-lived access key, through the binary and the emulator: an
//! STS token in the Secret (Alibaba Cloud V1 and V3, JD Cloud), RRSA (STS
//! AssumeRoleWithOIDC), the ECS instance RAM role (metadata service), and temporary
//! credentials renewed before they expire; none of the secrets or tokens ever printed.

#[allow(dead_code)]
#[path = "common/cli.rs"]
mod common;
use common::{stderr, stdout};

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::Value;

const KEY_ID: &str = "LTAI5tCredentialsKey";
const KEY_SECRET: &str = "credentials-test-secret-value";

const INVENTORY: &str = "apiVersion: emulator.tagbinder.io/v1alpha1
kind: CloudInventory
accounts: [{accessKeyId: LTAI5tCredentialsKey, accessKeySecret: credentials-test-secret-value}]
resources:
  - {cloud: alibaba, region: cn-hangzhou, type: apiGroup, id: g1}
  - {cloud: alibaba, region: cn-hangzhou, type: apiGroup, id: g2}
  - {cloud: jdcloud, region: cn-north-1, type: vm, id: i-1}
";

/// `tagbinder emulator` in the background with `extra` flags; killed on drop.
struct Emulator {
    child: std::process::Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Emulator {
    fn start(extra: &[&str]) -> Self {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let inventory = dir.path().join("inventory.yaml");
        std::fs::write(&inventory, INVENTORY).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_tagbinder"))
            .args(["emulator", "--listen", "127.0.0.1:0", "--inventory"])
            .arg(&inventory)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let Some(url) = line.trim().strip_prefix("tagbinder emulator: serving ") else {
            let _ = child.kill();
            panic!("the emulator did not say where it serves: {line:?}");
        };
        let url = url.to_string();
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        Emulator {
            child,
            url,
            _dir: dir,
        }
    }

    fn request(&self, method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let mut stream =
            std::net::TcpStream::connect(self.url.trim_start_matches("http://")).unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        let status = response[9..12].parse().unwrap();
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    fn calls(&self, cloud: &str, action: &str, outcome: &str) -> u64 {
        let (_, body) = self.request("GET", "/_emulator/stats", "", "");
        let stats: Value = serde_json::from_str(&body).unwrap();
        stats["requests"][cloud][action][outcome]
            .as_u64()
            .unwrap_or(0)
    }

    /// Tags of resource `id` (`cloud/type/id`).
    fn tags(&self, id: &str) -> Value {
        let (_, body) = self.request("GET", "/_emulator/state", "", "");
        let state: Value = serde_json::from_str(&body).unwrap();
        let resource = &state["resources"].pointer(&format!("/{id}")).cloned();
        resource
            .as_ref()
            .map(|r| r.get("tags").cloned().unwrap_or(r.clone()))
            .unwrap_or(Value::Null)
    }

    /// Temporary credentials from the emulator's STS: (id, secret, token, expiration).
    fn assume_role(&self) -> (String, String, String, String) {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("Action", "AssumeRoleWithOIDC"),
                ("Version", "2015-04-01"),
                ("Format", "JSON"),
                ("RoleArn", &role_arn()),
                ("OIDCProviderArn", &provider_arn()),
                ("OIDCToken", &oidc_token()),
                ("RoleSessionName", "credentials-test"),
                ("DurationSeconds", "900"),
            ])
            .finish();
        let (status, answer) = self.request(
            "POST",
            "/",
            "Content-Type: application/x-www-form-urlencoded\r\n",
            &body,
        );
        assert_eq!(status, 200, "{answer}");
        let answer: Value = serde_json::from_str(&answer).unwrap();
        let c = &answer["Credentials"];
        let text = |name: &str| c[name].as_str().unwrap().to_string();
        (
            text("AccessKeyId"),
            text("AccessKeySecret"),
            text("SecurityToken"),
            text("Expiration"),
        )
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn uid() -> String {
    tagbinder::emulator::account_uid(KEY_ID)
}

fn role_arn() -> String {
    format!("acs:ram::{}:role/tagbinder-controller", uid())
}

fn provider_arn() -> String {
    format!("acs:ram::{}:oidc-provider/ack-rrsa-c1", uid())
}

/// A projected service account token's shape: a JWT that expires in an hour.
fn oidc_token() -> String {
    let encode = |json: String| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    let exp = jiff::Timestamp::now().as_second() + 3600;
    format!(
        "{}.{}.c2lnbmF0dXJl",
        encode(r#"{"alg":"RS256","kid":"k"}"#.to_string()),
        encode(format!(
            r#"{{"iss":"https://oidc-ack.example","sub":"system:serviceaccount:tagbinder-system:tagbinder","aud":["sts.aliyuncs.com"],"exp":{exp}}}"#
        ))
    )
}

fn alibaba_provider(name: &str, endpoint: &str, signature: &str, secret: Option<&str>) -> String {
    let credentials = secret
        .map(|s| format!("  credentials: {{secretRef: {{namespace: ops, name: {s}}}}}\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: tagbinder.io/v1alpha1
kind: TagProvider
metadata: {{name: {name}}}
spec:
  cloud: alibaba
  region: cn-hangzhou
  endpoint: {endpoint}
  alibaba: {{product: apigateway, signatureVersion: {signature}}}
{credentials}---
apiVersion: tagbinder.io/v1alpha1
kind: ResourceTagBinding
metadata: {{name: {name}, namespace: ops}}
spec:
  providerRef: {{name: {name}}}
  resourceType: apiGroup
  resourceIds: [{id}]
  tags: {{env: prod}}
",
        id = if signature == "v1" { "g1" } else { "g2" }
    )
}

fn jdcloud_provider(endpoint: &str, secret: &str) -> String {
    format!(
        "apiVersion: tagbinder.io/v1alpha1
kind: TagProvider
metadata: {{name: jd}}
spec:
  cloud: jdcloud
  region: cn-north-1
  endpoint: {endpoint}
  credentials: {{secretRef: {{namespace: ops, name: {secret}}}}}
---
apiVersion: tagbinder.io/v1alpha1
kind: ResourceTagBinding
metadata: {{name: jd, namespace: ops}}
spec:
  providerRef: {{name: jd}}
  resourceType: vm
  resourceIds: [i-1]
  tags: {{env: prod}}
"
    )
}

fn secret(name: &str, id: &str, key_secret: &str, token: Option<&str>) -> String {
    let token = token
        .map(|t| format!(", securityToken: {t}"))
        .unwrap_or_default();
    format!(
        "apiVersion: v1
kind: Secret
metadata: {{name: {name}, namespace: ops}}
stringData: {{accessKeyId: {id}, accessKeySecret: {key_secret}{token}}}
"
    )
}

/// Runs `tagbinder apply -f manifests` in `dir` with `env`, and no access key in the
/// environment.
fn apply(dir: &Path, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tagbinder"));
    command
        .args(["apply", "-f", "manifests"])
        .current_dir(dir)
        .env("RUST_LOG", "debug");
    for name in [
        "ALIBABA_CLOUD_ACCESS_KEY_ID",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
        "ALIBABA_CLOUD_SECURITY_TOKEN",
        "ALIBABA_CLOUD_ROLE_ARN",
        "ALIBABA_CLOUD_OIDC_PROVIDER_ARN",
        "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
        "ALIBABA_CLOUD_ECS_METADATA",
        "JDCLOUD_ACCESS_KEY",
        "JDCLOUD_SECRET_KEY",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    command.output().expect("the tagbinder binary runs")
}

fn manifests(files: &[(&str, String)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    for (name, text) in files {
        std::fs::write(manifests.join(name), text).unwrap();
    }
    dir
}

fn assert_hidden(output: &Output, secrets: &[&str]) {
    let everything = format!("{}{}", stdout(output), stderr(output));
    for secret in secrets {
        assert!(
            !everything.contains(secret),
            "a secret or token was printed: {everything}"
        );
    }
}

#[test]
fn rrsa_assumes_the_role_with_the_oidc_token_and_signs_v1_and_v3_with_its_sts_token() {
    let emulator = Emulator::start(&[]);
    let dir = manifests(&[
        (
            "v1.yaml",
            alibaba_provider("rrsa-v1", &emulator.url, "v1", None),
        ),
        (
            "v3.yaml",
            alibaba_provider("rrsa-v3", &emulator.url, "v3", None),
        ),
    ]);
    let token_file = dir.path().join("token");
    let token = oidc_token();
    std::fs::write(&token_file, &token).unwrap();
    let output = apply(
        dir.path(),
        &[
            ("ALIBABA_CLOUD_ROLE_ARN", &role_arn()),
            ("ALIBABA_CLOUD_OIDC_PROVIDER_ARN", &provider_arn()),
            (
                "ALIBABA_CLOUD_OIDC_TOKEN_FILE",
                token_file.to_str().unwrap(),
            ),
            ("ALIBABA_CLOUD_STS_ENDPOINT", &emulator.url),
        ],
    );
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    assert_eq!(
        emulator.tags("alibaba/apiGroup/g1"),
        serde_json::json!({"env": "prod"})
    );
    assert_eq!(
        emulator.tags("alibaba/apiGroup/g2"),
        serde_json::json!({"env": "prod"})
    );
    // One STS call per provider, however many calls each makes.
    assert_eq!(emulator.calls("alibaba", "AssumeRoleWithOIDC", "ok"), 2);
    assert_eq!(emulator.calls("alibaba", "TagResources", "ok"), 2);
    assert_hidden(&output, &[&token, KEY_SECRET]);
}

#[test]
fn a_half_configured_rrsa_is_named() {
    let emulator = Emulator::start(&[]);
    let dir = manifests(&[(
        "v1.yaml",
        alibaba_provider("rrsa", &emulator.url, "v1", None),
    )]);
    let output = apply(dir.path(), &[("ALIBABA_CLOUD_ROLE_ARN", &role_arn())]);
    assert!(!output.status.success());
    let text = format!("{}{}", stdout(&output), stderr(&output));
    assert!(
        text.contains("RRSA is half configured: ALIBABA_CLOUD_ROLE_ARN set")
            && text.contains("ALIBABA_CLOUD_OIDC_TOKEN_FILE not set"),
        "{text}"
    );
}

#[test]
fn the_ecs_instance_ram_role_comes_from_the_metadata_service_with_a_token() {
    let emulator = Emulator::start(&[]);
    let dir = manifests(&[(
        "v3.yaml",
        alibaba_provider("ecs", &emulator.url, "v3", None),
    )]);
    let output = apply(
        dir.path(),
        &[
            ("ALIBABA_CLOUD_ECS_METADATA", "tagbinder-emulator-ecs-role"),
            ("ALIBABA_CLOUD_ECS_METADATA_ENDPOINT", &emulator.url),
            // NB: the hardened mode: without a metadata token, nothing is read.
            ("ALIBABA_CLOUD_IMDSV1_DISABLED", "true"),
        ],
    );
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    assert_eq!(
        emulator.tags("alibaba/apiGroup/g2"),
        serde_json::json!({"env": "prod"})
    );
    assert_hidden(&output, &[KEY_SECRET]);
}

#[test]
fn an_sts_token_in_the_secret_signs_alibaba_v1_v3_and_jdcloud_and_a_missing_one_is_refused() {
    let emulator = Emulator::start(&[]);
    let (id, key_secret, token, _) = emulator.assume_role();
    let dir = manifests(&[
        (
            "v1.yaml",
            alibaba_provider("sts-v1", &emulator.url, "v1", Some("sts")),
        ),
        (
            "v3.yaml",
            alibaba_provider("sts-v3", &emulator.url, "v3", Some("sts")),
        ),
        ("jd.yaml", jdcloud_provider(&emulator.url, "sts")),
        ("secret.yaml", secret("sts", &id, &key_secret, Some(&token))),
    ]);
    let output = apply(dir.path(), &[]);
    assert!(
        output.status.success(),
        "{}{}",
        stdout(&output),
        stderr(&output)
    );
    assert_eq!(
        emulator.tags("alibaba/apiGroup/g1"),
        serde_json::json!({"env": "prod"})
    );
    assert_eq!(
        emulator.tags("alibaba/apiGroup/g2"),
        serde_json::json!({"env": "prod"})
    );
    assert_eq!(
        emulator.tags("jdcloud/vm/i-1"),
        serde_json::json!({"env": "prod"})
    );
    assert_hidden(&output, &[&token, &key_secret]);

    // The same temporary key without its token is refused by both clouds.
    std::fs::write(
        dir.path().join("manifests/secret.yaml"),
        secret("sts", &id, &key_secret, None),
    )
    .unwrap();
    let output = apply(dir.path(), &[]);
    assert!(!output.status.success());
    let text = format!("{}{}", stdout(&output), stderr(&output));
    assert!(
        text.contains("InvalidSecurityToken.MismatchWithAccessKey"),
        "{text}"
    );
    assert!(text.contains("CredentialsInvalid"), "{text}");
    // The message points at the least-privilege policies.
    assert!(
        text.contains("docs/src/cloud/alibaba.md#permissions"),
        "{text}"
    );
    assert_hidden(&output, &[&token, &key_secret]);
}

#[test]
fn expired_temporary_credentials_are_refused() {
    let emulator = Emulator::start(&["--credentials-ttl", "1"]);
    let (id, key_secret, token, _) = emulator.assume_role();
    std::thread::sleep(Duration::from_millis(2100));
    let dir = manifests(&[
        (
            "v1.yaml",
            alibaba_provider("late", &emulator.url, "v1", Some("sts")),
        ),
        ("secret.yaml", secret("sts", &id, &key_secret, Some(&token))),
    ]);
    let output = apply(dir.path(), &[]);
    assert!(!output.status.success());
    let text = format!("{}{}", stdout(&output), stderr(&output));
    assert!(text.contains("InvalidSecurityToken.Expired"), "{text}");
    assert_eq!(emulator.tags("alibaba/apiGroup/g1"), serde_json::json!({}));
}

#[test]
fn temporary_credentials_are_renewed_before_they_expire() {
    use tagbinder::cloud::TagApi;
    use tagbinder::cloud::alibaba::chain::OidcRole;
    use tagbinder::cloud::credentials::{Credentials, Refreshing, TemporarySource};

    let emulator = Emulator::start(&["--credentials-ttl", "4"]);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, oidc_token()).unwrap();
    let http = tagbinder::reconcile::provider::http_client().unwrap();
    let credentials = Credentials::Refreshing(std::sync::Arc::new(Refreshing::new(
        TemporarySource::Oidc(OidcRole {
            role_arn: role_arn(),
            oidc_provider_arn: provider_arn(),
            token_file,
            session_name: "renewal".into(),
            sts_endpoint: emulator.url.clone(),
            duration_seconds: 900,
        }),
        http.clone(),
    )));
    let spec: tagbinder::api::TagProviderSpec = serde_yaml::from_str(&format!(
        "{{cloud: alibaba, region: cn-hangzhou, endpoint: '{}', alibaba: {{product: apigateway}}}}",
        emulator.url
    ))
    .unwrap();
    let options = tagbinder::reconcile::provider::ClientOptions {
        http,
        endpoint_override: None,
        retry: Default::default(),
        observer: None,
        default_rate_limit: false,
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let first = credentials.current().await.unwrap();
        assert!(first.id.starts_with("STS."), "{}", first.id);
        assert_eq!(credentials.current().await.unwrap().id, first.id, "cached");
        // Four seconds of life: renewed once three have passed (a quarter left), before expiry.
        tokio::time::sleep(Duration::from_millis(3200)).await;
        let second = credentials.current().await.unwrap();
        assert_ne!(second.id, first.id, "renewed before expiry");
        assert_eq!(emulator.calls("alibaba", "AssumeRoleWithOIDC", "ok"), 2);

        let client =
            tagbinder::reconcile::provider::client_for(&spec, credentials.clone(), &options)
                .unwrap();
        let ids = vec!["g1".to_string()];
        client
            .list_tags("apiGroup", &ids)
            .await
            .expect("the renewed key works");
        // The first key expires; a client still holding it is refused.
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let stale =
            tagbinder::reconcile::provider::client_for(&spec, first.into(), &options).unwrap();
        let error = stale
            .list_tags("apiGroup", &ids)
            .await
            .expect_err("expired");
        assert_eq!(error.code(), "InvalidSecurityToken.Expired");
        assert_eq!(error.kind(), tagbinder::cloud::ErrorKind::Credentials);
    });
}
