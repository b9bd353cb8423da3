//! The bad-input catalogue: manifests and command lines a user gets wrong, each refused with
//! one specific error that names the file, the field and the rule, before any cloud write.
//!
//! Each case runs the built binary (`apply`, so that a write would happen if the input got
//! through) on the catalogue's base files plus the case's own, against the embedded cloud,
//! and checks the exit code, the error line and that the cloud's tags are unchanged.
//! Rules the CRD schema enforces in a cluster are restated by the CLI, so the same input
//! gets the same answer without a cluster; `src/api/validation.rs` tests that both agree.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

/// Providers, their credentials, and the embedded cloud's starting inventory.
const BASE: &str = r#"
apiVersion: tagbinder.io/v1alpha1
kind: TagProvider
metadata: {name: aliyun}
spec:
  cloud: alibaba
  region: cn-hangzhou
  alibaba: {product: apigateway}
  credentials: {secretRef: {namespace: tagbinder-system, name: aliyun-creds}}
---
apiVersion: tagbinder.io/v1alpha1
kind: TagProvider
metadata: {name: jd}
spec:
  cloud: jdcloud
  region: cn-north-1
  credentials: {secretRef: {namespace: tagbinder-system, name: jd-creds}}
---
apiVersion: tagbinder.io/v1alpha1
kind: TagProvider
metadata: {name: aliyun-data-only}
spec:
  cloud: alibaba
  region: cn-hangzhou
  alibaba: {product: apigateway}
  credentials: {secretRef: {namespace: tagbinder-system, name: aliyun-creds}}
  allowedNamespaces: {matchLabels: {team: data}}
---
apiVersion: v1
kind: Namespace
metadata: {name: team-web, labels: {team: web}}
---
apiVersion: v1
kind: Secret
metadata: {name: aliyun-creds, namespace: tagbinder-system}
stringData: {accessKeyId: LTAI5tCatalogueKey, accessKeySecret: catalogue-secret-alibaba}
---
apiVersion: v1
kind: Secret
metadata: {name: jd-creds, namespace: tagbinder-system}
stringData: {accessKeyId: JDCATALOGUEKEY, accessKeySecret: catalogue-secret-jdcloud}
---
apiVersion: emulator.tagbinder.io/v1alpha1
kind: CloudInventory
accounts:
  - {accessKeyId: LTAI5tCatalogueKey, accessKeySecret: catalogue-secret-alibaba}
  - {accessKeyId: JDCATALOGUEKEY, accessKeySecret: catalogue-secret-jdcloud}
resources:
  - {cloud: alibaba, region: cn-hangzhou, type: apiGroup, id: group-1, tags: {keep: me}}
  - {cloud: alibaba, region: cn-hangzhou, type: apiGroup, id: group-2}
"#;

/// A valid binding; cases edit it.
const BINDING: &str = "apiVersion: tagbinder.io/v1alpha1
kind: ResourceTagBinding
metadata: {name: web, namespace: team-web}
spec:
  providerRef: {name: aliyun}
  resourceType: apiGroup
  resourceIds: [group-1, group-2]
  tags: {env: prod}
";

/// The same binding on JD Cloud virtual machines.
const JD_BINDING: &str = "apiVersion: tagbinder.io/v1alpha1
kind: ResourceTagBinding
metadata: {name: web-vms, namespace: team-web}
spec:
  providerRef: {name: jd}
  resourceType: vm
  resourceIds: [i-1]
  tags: {env: prod}
";

/// One bad input.
struct Case {
    name: &'static str,
    /// `bindings.yaml`, as bytes (some cases are not UTF-8).
    bindings: Vec<u8>,
    /// Replaces the base file when set.
    base: Option<String>,
    /// Substrings the error line must hold: the place and the rule.
    expected: Vec<&'static str>,
}

fn case(name: &'static str, bindings: impl Into<Vec<u8>>, expected: &[&'static str]) -> Case {
    Case {
        name,
        bindings: bindings.into(),
        base: None,
        expected: expected.to_vec(),
    }
}

fn edit(from: &str, to: &str) -> String {
    assert!(BINDING.contains(from), "{from:?} in the binding");
    BINDING.replacen(from, to, 1)
}

fn edit_jd(from: &str, to: &str) -> String {
    assert!(JD_BINDING.contains(from), "{from:?} in the JD binding");
    JD_BINDING.replacen(from, to, 1)
}

fn base_with(from: &str, to: &str) -> String {
    assert!(BASE.contains(from), "{from:?} in the base");
    BASE.replacen(from, to, 1)
}

fn base_edit_provider_ref() -> String {
    edit(
        "providerRef: {name: aliyun}",
        "providerRef: {name: \"Aliyun/x\"}",
    )
}

fn many_tags(count: usize) -> String {
    let tags: Vec<String> = (0..count).map(|i| format!("k{i}: v")).collect();
    format!("{{{}}}", tags.join(", "))
}

fn catalogue() -> Vec<Case> {
    let long_key = "k".repeat(129);
    let long_value = "v".repeat(129);
    let ids_1001: Vec<String> = (0..1001).map(|i| format!("g-{i}")).collect();
    let mut cases = vec![
        // Parser: the files themselves.
        case(
            "malformed YAML",
            "apiVersion: tagbinder.io/v1alpha1\nkind: [unclosed\n",
            &["bindings.yaml: document 1", "malformed YAML"],
        ),
        case(
            "a tab where YAML wants spaces",
            edit("  resourceType: apiGroup", "\tresourceType: apiGroup"),
            &["bindings.yaml: document 1", "malformed YAML"],
        ),
        case(
            "a wrong apiVersion",
            edit("tagbinder.io/v1alpha1", "tagbinder.io/v1"),
            &[
                "bindings.yaml: document 1",
                "apiVersion",
                "tagbinder.io/v1alpha1",
            ],
        ),
        case(
            "an unknown kind",
            edit("kind: ResourceTagBinding", "kind: ResourceTagBindings"),
            &["bindings.yaml: document 1", "kind", "ResourceTagBindings"],
        ),
        case(
            "a document without kind",
            "apiVersion: tagbinder.io/v1alpha1\nmetadata: {name: x}\n",
            &["bindings.yaml: document 1", "kind"],
        ),
        case(
            "an unknown field",
            edit("  tags: {env: prod}", "  tags: {env: prod}\n  tagz: {x: y}"),
            &["bindings.yaml: document 1", "spec.tagz", "unknown field"],
        ),
        case(
            "a duplicate key in a YAML mapping",
            edit("  tags: {env: prod}", "  tags: {env: prod, env: dev}"),
            &["bindings.yaml: document 1", "duplicate", "env"],
        ),
        case(
            "bytes that are not UTF-8",
            {
                let mut bytes = edit("{env: prod}", "{env: \"pr").into_bytes();
                bytes.extend_from_slice(&[0xff, 0xfe]);
                bytes.extend_from_slice(b"od\"}\n");
                bytes
            },
            &["bindings.yaml", "UTF-8"],
        ),
        case(
            "a 5 MB manifest",
            format!("# {}\n{BINDING}", "x".repeat(5 * 1024 * 1024)),
            &["bindings.yaml", "MiB"],
        ),
        case(
            "a binding without a name",
            edit(
                "metadata: {name: web, namespace: team-web}",
                "metadata: {namespace: team-web}",
            ),
            &["bindings.yaml: document 1", "metadata.name"],
        ),
        case(
            "a binding without resourceType",
            edit("  resourceType: apiGroup\n", ""),
            &["bindings.yaml: document 1", "resourceType"],
        ),
        case(
            "a deletionPolicy that does not exist",
            edit(
                "  tags: {env: prod}",
                "  tags: {env: prod}\n  deletionPolicy: Remove",
            ),
            &["bindings.yaml: document 1", "deletionPolicy", "Remove"],
        ),
        case(
            "a malformed interval",
            edit(
                "  tags: {env: prod}",
                "  tags: {env: prod}\n  interval: 10 minutes",
            ),
            &["bindings.yaml: document 1", "spec.interval", "10 minutes"],
        ),
        // Schema rules (the CRD's, restated by the CLI).
        case(
            "an empty key",
            edit("{env: prod}", "{\"\": prod}"),
            &["spec.tags[\"\"]", "empty"],
        ),
        case(
            "a key over 128 characters",
            edit("{env: prod}", &format!("{{{long_key}: prod}}")),
            &["spec.tags", "128"],
        ),
        case(
            "a value over 128 characters",
            edit("{env: prod}", &format!("{{env: {long_value}}}")),
            &["spec.tags[\"env\"]", "128"],
        ),
        case(
            "more than 64 tags",
            edit("{env: prod}", &many_tags(65)),
            &["spec.tags", "64"],
        ),
        case(
            "a duplicate resource id",
            edit("[group-1, group-2]", "[group-1, group-1]"),
            &["spec.resourceIds", "group-1", "duplicate"],
        ),
        case(
            "an empty resource id",
            edit("[group-1, group-2]", "[group-1, \"\"]"),
            &["spec.resourceIds", "empty"],
        ),
        case(
            "more than 1000 resource ids",
            edit("[group-1, group-2]", &format!("[{}]", ids_1001.join(", "))),
            &["spec.resourceIds", "1000"],
        ),
        // The provider's rules, known before any call.
        case(
            "a key with the acs: prefix",
            edit("{env: prod}", "{\"acs:env\": prod}"),
            &["spec.tags[\"acs:env\"]", "acs:"],
        ),
        case(
            "a key with the aliyun prefix, in any case",
            edit("{env: prod}", "{AliyunTeam: prod}"),
            &["spec.tags[\"AliyunTeam\"]", "aliyun"],
        ),
        case(
            "a key holding a URL",
            edit("{env: prod}", "{\"see-http://x\": prod}"),
            &["spec.tags[\"see-http://x\"]", "http://"],
        ),
        case(
            "a value holding a URL",
            edit("{env: prod}", "{env: \"https://example.com\"}"),
            &["spec.tags[\"env\"]", "https://"],
        ),
        case(
            "more tags than a resource may carry",
            edit("{env: prod}", &many_tags(21)),
            &["spec.tags", "20"],
        ),
        case(
            "an unknown Alibaba resource type",
            edit("resourceType: apiGroup", "resourceType: bucket"),
            &["spec.resourceType", "bucket", "apiGroup"],
        ),
        case(
            "an unknown JD Cloud serviceCode",
            edit_jd("resourceType: vm", "resourceType: kafka"),
            &["spec.resourceType", "kafka", "extraServiceCodes"],
        ),
        case(
            "a JD Cloud key with the jrn: prefix",
            edit_jd("{env: prod}", "{\"jrn:env\": prod}"),
            &["spec.tags[\"jrn:env\"]", "jrn:"],
        ),
        case(
            "more tags than a JD Cloud resource may carry",
            edit_jd("{env: prod}", &many_tags(11)),
            &["spec.tags", "10"],
        ),
        // Names: Kubernetes' rules, which keep the state file's keys unambiguous.
        case(
            "a namespace holding a slash",
            edit("namespace: team-web}", "namespace: \"team/web\"}"),
            &["metadata.namespace", "team/web", "RFC 1123 label"],
        ),
        case(
            "a name holding a slash",
            edit("{name: web,", "{name: \"web/api\","),
            &["metadata.name", "web/api", "RFC 1123 subdomain"],
        ),
        case(
            "an uppercase name",
            edit("{name: web,", "{name: Web,"),
            &["metadata.name", "\"Web\"", "lowercase"],
        ),
        case(
            "a name holding a space",
            edit("{name: web,", "{name: \"web api\","),
            &["metadata.name", "\"web api\""],
        ),
        case(
            "a providerRef that is not a valid name",
            base_edit_provider_ref(),
            &["spec.providerRef.name", "RFC 1123"],
        ),
        // Values the clouds do not allow, and that would rewrite a terminal's output.
        case(
            "a carriage return in a value",
            edit("{env: prod}", "{env: \"pr\\rod\"}"),
            &["spec.tags[\"env\"]", "control character"],
        ),
        case(
            "an escape sequence in a key",
            edit("{env: prod}", "{\"env\\e[2K\": prod}"),
            &["spec.tags[\"env\\u{1b}[2K\"]", "control character"],
        ),
        case(
            "a newline in a resource id",
            edit("[group-1, group-2]", "[group-1, \"group-2\\n\"]"),
            &["spec.resourceIds[1]", "control character"],
        ),
        case(
            "an interval of zero",
            edit("  tags: {env: prod}", "  tags: {env: prod}\n  interval: 0s"),
            &["spec.interval", "\"0s\"", "shorter than 1s"],
        ),
        case(
            "an unknown field under status",
            format!("{BINDING}status: {{appliedTags: {{env: prod}}, x: 1}}\n"),
            &["bindings.yaml: document 1", "status.x", "unknown field"],
        ),
        // Input that would exhaust memory or time before any rule applies.
        case(
            "aliases expanding a large string many times",
            format!(
                "a: &a {}\nb: [{}]\n",
                "x".repeat(1024 * 1024),
                vec!["*a"; 600].join(", ")
            ),
            &["bindings.yaml: document 1", "aliases expanded"],
        ),
        case(
            "nested aliases",
            {
                let mut text = String::from("a0: &a0 [x, x]\n");
                for level in 1..40 {
                    let previous = level - 1;
                    text.push_str(&format!(
                        "a{level}: &a{level} [*a{previous}, *a{previous}]\n"
                    ));
                }
                text
            },
            &["bindings.yaml: document 1", "nodes (aliases expanded)"],
        ),
        case(
            "3 MiB of nested brackets",
            "[".repeat(3 * 1024 * 1024 - 16),
            &["bindings.yaml: document 1", "deeper than 64"],
        ),
        // References.
        case(
            "an unknown provider",
            edit("providerRef: {name: aliyun}", "providerRef: {name: nope}"),
            &["spec.providerRef.name", "\"nope\""],
        ),
        case(
            "a namespace the provider does not allow",
            edit(
                "providerRef: {name: aliyun}",
                "providerRef: {name: aliyun-data-only}",
            ),
            &[
                "metadata.namespace",
                "team-web",
                "aliyun-data-only",
                "Namespace document",
            ],
        ),
    ];
    cases.extend([
        Case {
            name: "an unknown cloud",
            bindings: BINDING.into(),
            base: Some(base_with("cloud: jdcloud", "cloud: gcp")),
            expected: vec!["spec.cloud", "gcp"],
        },
        Case {
            name: "an unknown Alibaba product",
            bindings: BINDING.into(),
            base: Some(base_with("product: apigateway}", "product: oss}")),
            expected: vec!["spec.alibaba.product", "oss"],
        },
        Case {
            name: "a missing Secret and no environment",
            bindings: BINDING.into(),
            base: Some(base_with("name: aliyun-creds}}", "name: gone}}")),
            expected: vec!["tagbinder-system/gone", "ALIBABA_CLOUD_ACCESS_KEY_ID"],
        },
        Case {
            name: "a Secret without accessKeySecret",
            bindings: BINDING.into(),
            base: Some(base_with(
                "stringData: {accessKeyId: LTAI5tCatalogueKey, accessKeySecret: catalogue-secret-alibaba}",
                "stringData: {accessKeyId: LTAI5tCatalogueKey}",
            )),
            expected: vec!["aliyun-creds", "accessKeySecret"],
        },
        Case {
            name: "a Secret defined twice",
            bindings: format!(
                "{BINDING}---\napiVersion: v1\nkind: Secret\n\
                 metadata: {{name: aliyun-creds, namespace: tagbinder-system}}\n\
                 stringData: {{accessKeyId: other, accessKeySecret: other}}\n"
            )
            .into(),
            base: None,
            expected: vec![
                "bindings.yaml: document 2",
                "Secret tagbinder-system/aliyun-creds",
                "also defined at",
            ],
        },
        Case {
            name: "a Secret whose data is not base64",
            bindings: BINDING.into(),
            base: Some(base_with(
                "stringData: {accessKeyId: LTAI5tCatalogueKey, accessKeySecret: catalogue-secret-alibaba}",
                "data: {accessKeyId: \"not base64!\", accessKeySecret: \"also not\"}",
            )),
            expected: vec!["base.yaml: document 5", "data.accessKeyId", "base64"],
        },
    ]);
    cases
}

fn run(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tagbinder"))
        .args(args)
        .current_dir(dir)
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_ID")
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
        .env_remove("JDCLOUD_ACCESS_KEY")
        .env_remove("JDCLOUD_SECRET_KEY")
        .env("RUST_LOG", "warn")
        .output()
        .expect("the tagbinder binary runs")
}

/// Every resource's tags in the embedded cloud's state file; `None` when it was never written.
fn cloud_tags(dir: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(dir.join(".tagbinder/cloud.json")).ok()?;
    let state: Value = serde_json::from_str(&text).expect("cloud state JSON");
    let mut tags = serde_json::Map::new();
    collect(&state, &mut tags);
    Some(Value::Object(tags))
}

fn collect(value: &Value, out: &mut serde_json::Map<String, Value>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(id)) = map.get("id") {
                out.insert(id.clone(), map.get("tags").cloned().unwrap_or(Value::Null));
            }
            map.values().for_each(|v| collect(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
        _ => {}
    }
}

fn check(case: &Case) -> Result<(), String> {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    std::fs::write(
        manifests.join("base.yaml"),
        case.base.as_deref().unwrap_or(BASE),
    )
    .unwrap();
    std::fs::write(manifests.join("bindings.yaml"), &case.bindings).unwrap();
    let output = run(
        dir.path(),
        &["apply", "-f", "manifests", "--embedded-cloud"],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    let stdout = String::from_utf8_lossy(&output.stdout);
    if output.status.code() != Some(1) {
        return Err(format!(
            "exit {:?}, not 1\nstdout: {stdout}\nstderr: {stderr}",
            output.status.code()
        ));
    }
    let Some(line) = stderr.lines().find(|line| line.starts_with("error: ")) else {
        return Err(format!(
            "no `error: ` line\nstdout: {stdout}\nstderr: {stderr}"
        ));
    };
    let missing: Vec<&&str> = case
        .expected
        .iter()
        .filter(|part| !line.contains(**part))
        .collect();
    if !missing.is_empty() {
        return Err(format!("{missing:?} not in {line:?}"));
    }
    if let Some(tags) = cloud_tags(dir.path()) {
        let expected = serde_json::json!({"group-1": {"keep": "me"}, "group-2": {}});
        let changed = ["group-1", "group-2"].iter().any(|id| {
            tags.get(*id)
                .is_some_and(|t| !t.is_null() && *t != expected[*id])
        });
        if changed {
            return Err(format!("the cloud was written: {tags}"));
        }
    }
    if dir.path().join(".tagbinder/state.json").exists() {
        let state = std::fs::read_to_string(dir.path().join(".tagbinder/state.json")).unwrap();
        if state.contains("\"env\"") {
            return Err(format!("the state records an applied tag: {state}"));
        }
    }
    Ok(())
}

#[test]
fn every_bad_input_gets_a_specific_error_and_no_cloud_write() {
    let cases = catalogue();
    assert!(
        cases.len() >= 50,
        "the catalogue holds {} cases",
        cases.len()
    );
    let failures: Vec<String> = std::thread::scope(|scope| {
        let handles: Vec<_> = cases
            .iter()
            .map(|case| scope.spawn(move || check(case).map_err(|e| format!("{}: {e}", case.name))))
            .collect();
        handles
            .into_iter()
            .filter_map(|handle| handle.join().expect("case thread").err())
            .collect()
    });
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

#[test]
fn the_valid_base_converges_so_the_catalogue_tests_only_its_edits() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    std::fs::write(manifests.join("base.yaml"), BASE).unwrap();
    std::fs::write(manifests.join("bindings.yaml"), BINDING).unwrap();
    let output = run(
        dir.path(),
        &["apply", "-f", "manifests", "--embedded-cloud"],
    );
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let tags = cloud_tags(dir.path()).expect("the cloud state");
    assert_eq!(
        tags["group-1"],
        serde_json::json!({"keep": "me", "env": "prod"})
    );
    assert_eq!(tags["group-2"], serde_json::json!({"env": "prod"}));
}

#[test]
fn wrong_credentials_stop_the_pass_without_a_write_and_without_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    let base = BASE.replacen(
        "accessKeySecret: catalogue-secret-alibaba}\n---\napiVersion: v1",
        "accessKeySecret: wrong-secret-value-0451}\n---\napiVersion: v1",
        1,
    );
    assert_ne!(base, BASE);
    std::fs::write(manifests.join("base.yaml"), &base).unwrap();
    std::fs::write(manifests.join("bindings.yaml"), BINDING).unwrap();
    let output = run(
        dir.path(),
        &["apply", "-f", "manifests", "--embedded-cloud"],
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("CredentialsInvalid"), "{stdout}");
    for secret in ["wrong-secret-value-0451", "catalogue-secret-alibaba"] {
        assert!(!stdout.contains(secret) && !stderr.contains(secret));
    }
    let tags = cloud_tags(dir.path()).expect("the cloud state");
    assert_eq!(tags["group-1"], serde_json::json!({"keep": "me"}));
    assert_eq!(tags["group-2"], serde_json::json!({}));
}

#[test]
fn a_path_that_does_not_exist_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let output = run(dir.path(), &["plan", "-f", "no-such-dir"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("no-such-dir"), "{stderr}");
}
