//! AWS as a user runs it: the built binary on `examples/aws` with the embedded cloud. EC2
//! instances (one by bare id, one by ARN), an RDS instance, an S3 bucket and a selector
//! converge through the Resource Groups Tagging API; a second run changes nothing; a prune
//! removes only what tagbinder applied; aws: tags and foreign tags stay; bare ids of a type
//! tagbinder cannot compose, and declared aws: keys, are InvalidSpec.

#[allow(dead_code)]
#[path = "common/cli.rs"]
mod common;
use common::tagbinder;

use std::path::{Path, PathBuf};

use serde_json::Value;

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn example() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/aws")
}

/// A scratch copy of the example in `dir/manifests`, to edit.
fn example_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    common::copy_flat(&example(), &manifests);
    dir
}

fn apply(dir: &Path) -> (bool, String) {
    let output = tagbinder(dir, &["apply", "-f", "manifests", "--embedded-cloud"]);
    (
        output.status.success(),
        format!("{}\n{}", text(&output.stdout), text(&output.stderr)),
    )
}

/// Tags of the resource with ARN `arn` in the embedded cloud's state file.
fn tags_of(dir: &Path, arn: &str) -> Value {
    let state = std::fs::read_to_string(dir.join(".tagbinder/cloud.json"))
        .expect("the embedded cloud saved its state");
    let state: Value = serde_json::from_str(&state).unwrap();
    state["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == arn)
        .map(|r| r["tags"].clone())
        .unwrap_or_else(|| panic!("{arn} in {state}"))
}

const WEB1: &str = "arn:aws:ec2:us-east-1:123456789012:instance/i-0webfront000000001";
const WEB2: &str = "arn:aws:ec2:us-east-1:123456789012:instance/i-0webfront000000002";
const DB: &str = "arn:aws:rds:us-east-1:123456789012:db:orders-prod";
const MEDIA: &str = "arn:aws:s3:::tagbinder-demo-media";
const LOGS: &str = "arn:aws:s3:::tagbinder-demo-logs";

#[test]
fn the_example_converges_then_changes_nothing_then_prunes() {
    let dir = example_copy();
    let (ok, out) = apply(dir.path());
    assert!(ok, "{out}");
    assert!(out.contains("4 of 4 binding(s) Ready"), "{out}");
    assert!(
        out.contains("selector team=web matches 2 resources"),
        "{out}"
    );
    let web1 = tags_of(dir.path(), WEB1);
    assert_eq!(
        (&web1["env"], &web1["owner"]),
        (&"prod".into(), &"team-web".into())
    );
    assert_eq!(web1["cost-center"], "cc-1234", "by the selector");
    assert_eq!(web1["created-by"], "terraform", "a foreign tag stays");
    assert_eq!(
        web1["aws:cloudformation:stack-name"], "web-front",
        "an aws: tag stays"
    );
    assert_eq!(tags_of(dir.path(), WEB2)["cost-center"], "cc-1234");
    assert_eq!(tags_of(dir.path(), DB)["backup"], "daily");
    assert_eq!(tags_of(dir.path(), MEDIA)["owner"], "team-media");
    assert_eq!(tags_of(dir.path(), LOGS)["owner"], "someone-else");

    let (ok, out) = apply(dir.path());
    assert!(ok, "{out}");
    assert!(
        out.contains("Apply: nothing changed; 4 of 4 binding(s) Ready."),
        "{out}"
    );

    let bindings = dir.path().join("manifests/bindings.yaml");
    let text = std::fs::read_to_string(&bindings).unwrap();
    std::fs::write(&bindings, text.replace("    backup: daily\n", "")).unwrap();
    let (ok, out) = apply(dir.path());
    assert!(ok, "{out}");
    assert!(
        out.contains(&format!("- backup=daily (pruned) on {DB}")),
        "{out}"
    );
    let db = tags_of(dir.path(), DB);
    assert!(db.get("backup").is_none(), "{db}");
    assert_eq!(db["owner"], "team-orders");
}

#[test]
fn bare_ids_of_unknown_types_and_ids_of_other_regions_are_invalid_specs() {
    let dir = example_copy();
    let bindings = dir.path().join("manifests/bindings.yaml");
    let text = std::fs::read_to_string(&bindings).unwrap();
    let text = text
        .replace(
            "resourceType: rds:db\n  resourceIds:\n    - orders-prod",
            "resourceType: kafka:cluster\n  resourceIds:\n    - orders-prod",
        )
        .replace(
            "    - arn:aws:ec2:us-east-1:123456789012:instance/i-0webfront000000002",
            "    - arn:aws:ec2:eu-west-1:123456789012:instance/i-0webfront000000002",
        );
    std::fs::write(&bindings, text).unwrap();
    let (_, out) = apply(dir.path());
    assert!(out.contains("give the ARN"), "{out}");
    assert!(out.contains("is in region eu-west-1"), "{out}");
    assert!(out.contains("InvalidSpec"), "{out}");
    // NB: nothing was written on the instance of the refused binding.
    assert!(tags_of(dir.path(), WEB1).get("owner").is_none());
}

#[test]
fn a_declared_aws_key_is_refused() {
    let dir = example_copy();
    let bindings = dir.path().join("manifests/bindings.yaml");
    let text = std::fs::read_to_string(&bindings).unwrap();
    std::fs::write(
        &bindings,
        text.replace(
            "    owner: team-media\n",
            "    owner: team-media\n    aws:owner: me\n",
        ),
    )
    .unwrap();
    let (ok, out) = apply(dir.path());
    assert!(!ok, "{out}");
    assert!(out.contains("spec.tags[\"aws:owner\"]"), "{out}");
    assert!(out.contains("reserved prefix \"aws:\""), "{out}");
}

/// A binding older than the example's, naming WEB1 by its ARN (the example names it `i-...1`).
fn by_arn(owner: &str) -> String {
    format!(
        "---\napiVersion: tagbinder.io/v1alpha1\nkind: ResourceTagBinding\nmetadata: \
         {{name: web-by-arn, namespace: team-web, creationTimestamp: \"2026-01-01T00:00:00Z\"}}\n\
         spec:\n  providerRef: {{name: aws-use1}}\n  resourceType: ec2:instance\n  \
         resourceIds: [\"{WEB1}\"]\n  tags: {{owner: {owner}}}\n"
    )
}

/// Issue 22 ("a resource is one thing"): `i-0webfront000000001` and its ARN are one resource
/// for conflicts; with the same value, removing the binding that names it by ARN prunes
/// nothing the other still declares.
#[test]
fn a_bare_id_and_its_arn_are_one_resource_for_conflicts_and_prunes() {
    let dir = example_copy();
    let extra = dir.path().join("manifests/zz-by-arn.yaml");
    std::fs::write(&extra, by_arn("platform")).unwrap();
    for run in 1..=2 {
        let output = tagbinder(
            dir.path(),
            &["apply", "-f", "manifests", "--embedded-cloud", "-o", "json"],
        );
        let report: Value = serde_json::from_str(&text(&output.stdout))
            .unwrap_or_else(|e| panic!("{e}: {}", text(&output.stderr)));
        let outcome = |name: &str| {
            report["bindings"]
                .as_array()
                .unwrap()
                .iter()
                .find(|b| b["binding"] == format!("team-web/{name}"))
                .cloned()
                .unwrap_or_else(|| panic!("{name} in {report}"))
        };
        assert_eq!(outcome("web-by-arn")["ready"], true, "run {run}: {report}");
        let lost = outcome("web-instances");
        assert_eq!(lost["reason"], "Conflict", "run {run}: {lost}");
        assert!(
            lost["message"]
                .as_str()
                .unwrap()
                .contains("team-web/web-by-arn"),
            "run {run}: names the winner: {lost}"
        );
        assert_eq!(tags_of(dir.path(), WEB1)["owner"], "platform", "run {run}");
        assert_eq!(tags_of(dir.path(), WEB2)["owner"], "team-web", "run {run}");
    }

    let dir = example_copy();
    let extra = dir.path().join("manifests/zz-by-arn.yaml");
    std::fs::write(&extra, by_arn("team-web")).unwrap();
    let (ok, out) = apply(dir.path());
    assert!(ok, "{out}");
    assert!(out.contains("5 of 5 binding(s) Ready"), "{out}");
    std::fs::remove_file(&extra).unwrap();
    let output = tagbinder(
        dir.path(),
        &[
            "apply",
            "-f",
            "manifests",
            "--embedded-cloud",
            "--prune-removed",
        ],
    );
    let out = format!("{}\n{}", text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{out}");
    assert!(
        out.contains("team-web/web-by-arn"),
        "the removed binding ran: {out}"
    );
    assert_eq!(
        tags_of(dir.path(), WEB1)["owner"],
        "team-web",
        "the other binding still declares it: {out}"
    );
}

/// Issue 22: without `aws.accountId`, STS names the account: bare ids are composed with it,
/// and are still one resource with their ARNs.
#[test]
fn without_an_account_id_sts_names_the_account() {
    let dir = example_copy();
    let provider = dir.path().join("manifests/provider.yaml");
    let original = std::fs::read_to_string(&provider).unwrap();
    let edited = original.replace("  aws:\n    accountId: \"123456789012\"", "");
    assert_ne!(edited, original, "the example names its account");
    std::fs::write(&provider, edited).unwrap();
    std::fs::write(
        dir.path().join("manifests/zz-by-arn.yaml"),
        by_arn("platform"),
    )
    .unwrap();
    let output = tagbinder(
        dir.path(),
        &["apply", "-f", "manifests", "--embedded-cloud", "-o", "json"],
    );
    let report: Value = serde_json::from_str(&text(&output.stdout))
        .unwrap_or_else(|e| panic!("{e}: {}", text(&output.stderr)));
    let outcome = |name: &str| {
        report["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["binding"] == format!("team-web/{name}"))
            .cloned()
            .unwrap_or_else(|| panic!("{name} in {report}"))
    };
    assert_eq!(outcome("web-by-arn")["ready"], true, "{report}");
    assert_eq!(outcome("web-instances")["reason"], "Conflict", "{report}");
    assert_eq!(tags_of(dir.path(), WEB1)["owner"], "platform");
    assert_eq!(tags_of(dir.path(), WEB2)["owner"], "team-web");
    assert_eq!(
        tags_of(dir.path(), DB)["backup"],
        "daily",
        "a bare id: {report}"
    );
}

/// Issue 22: without a Secret or the environment's keys, the CLI reads the AWS profile
/// (`AWS_PROFILE`) from `~/.aws/credentials`; a profile that is not there is named.
#[test]
fn the_cli_reads_an_aws_profile() {
    let dir = example_copy();
    let provider = dir.path().join("manifests/provider.yaml");
    let original = std::fs::read_to_string(&provider).unwrap();
    let edited = original.replace(
        "  credentials:\n    secretRef:\n      namespace: tagbinder-system\n      name: aws-creds\n",
        "",
    );
    assert_ne!(edited, original, "the example references its Secret");
    std::fs::write(&provider, edited).unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir_all(home.join(".aws")).unwrap();
    std::fs::write(
        home.join(".aws/credentials"),
        "[default]\naws_access_key_id = AKIAWRONGWRONGWRONG0\naws_secret_access_key = wrong\n\n\
         [tagbinder-demo]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n\
         aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n",
    )
    .unwrap();
    let run = |profile: &str| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_tagbinder"))
            .args(["apply", "-f", "manifests", "--embedded-cloud"])
            .current_dir(dir.path())
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_SHARED_CREDENTIALS_FILE")
            .env_remove("AWS_CONFIG_FILE")
            .env_remove("AWS_ROLE_ARN")
            .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
            .env_remove("AWS_CONTAINER_CREDENTIALS_FULL_URI")
            .env("HOME", &home)
            .env("AWS_PROFILE", profile)
            .env("RUST_LOG", "warn")
            .output()
            .unwrap();
        (
            output.status.success(),
            format!("{}\n{}", text(&output.stdout), text(&output.stderr)),
        )
    };
    let (ok, out) = run("tagbinder-demo");
    assert!(ok, "{out}");
    assert!(out.contains("4 of 4 binding(s) Ready"), "{out}");
    assert!(out.contains("the AWS profile \"tagbinder-demo\""), "{out}");
    assert!(
        !out.contains("wJalrXUtnFEMI"),
        "no secret in the output: {out}"
    );
    let (ok, out) = run("nope");
    assert!(!ok, "{out}");
    assert!(
        out.contains("AWS_PROFILE is \"nope\"") && out.contains("spec.credentials"),
        "{out}"
    );
}

/// Issue 22: web identity in the CLI: with `AWS_ROLE_ARN` and `AWS_WEB_IDENTITY_TOKEN_FILE`,
/// STS AssumeRoleWithWebIdentity (the embedded cloud's) issues the credentials; the token is
/// never printed.
#[test]
fn web_identity_assumes_the_role_with_the_token_file() {
    use base64::Engine;
    let dir = example_copy();
    let provider = dir.path().join("manifests/provider.yaml");
    let original = std::fs::read_to_string(&provider).unwrap();
    let edited = original.replace(
        "  credentials:\n    secretRef:\n      namespace: tagbinder-system\n      name: aws-creds\n",
        "",
    );
    std::fs::write(&provider, edited).unwrap();
    let part = |json: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
    let token = format!(
        "{}.{}.{}",
        part(r#"{"alg":"RS256"}"#),
        part(r#"{"sub":"system:serviceaccount:tagbinder-system:tagbinder"}"#),
        part("web-identity-signature")
    );
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, &token).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tagbinder"))
        .args(["apply", "-f", "manifests", "--embedded-cloud"])
        .current_dir(dir.path())
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_STS")
        .env("HOME", dir.path())
        .env("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/tagbinder")
        .env("AWS_WEB_IDENTITY_TOKEN_FILE", &token_file)
        .env("RUST_LOG", "debug")
        .output()
        .unwrap();
    let out = format!("{}\n{}", text(&output.stdout), text(&output.stderr));
    assert!(output.status.success(), "{out}");
    assert!(out.contains("4 of 4 binding(s) Ready"), "{out}");
    assert!(
        out.contains("web identity: role arn:aws:iam::123456789012:role/tagbinder"),
        "{out}"
    );
    let signature = part("web-identity-signature");
    assert!(
        !out.contains(&token) && !out.contains(&signature),
        "the token leaked: {out}"
    );
}
