//! How the CLI talks to a person and to a CI job (issue 26, section 4): the header that names
//! the target and the credentials' source, the confirmation before writing to a real cloud
//! on a terminal, colour only where it belongs, errors told once per provider, and the JSON
//! report's `formatVersion`, `summary` and `errors[]`, for input errors too. Terminals are
//! real: a pseudo-terminal from `script` (util-linux).

#[allow(dead_code)]
#[path = "common/cli.rs"]
mod common;
use common::{EmulatorProcess, copy_flat, stderr, stdout, tagbinder};

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
}

/// The quickstart in `dir/manifests`, its providers pointed at `emulator` (a cloud that is
/// not the embedded one, as a real cloud would be).
fn quickstart_against(dir: &Path, emulator: &EmulatorProcess) {
    let manifests = dir.join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    copy_flat(&example("quickstart"), &manifests);
    std::fs::remove_file(manifests.join("inventory.yaml")).unwrap();
    for provider in [
        "provider.yaml",
        "provider-jdcloud.yaml",
        "provider-aws.yaml",
    ] {
        let path = manifests.join(provider);
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replacen(
            "spec:\n",
            &format!("spec:\n  endpoint: {}\n", emulator.url),
            1,
        );
        std::fs::write(&path, text).unwrap();
    }
}

/// `tagbinder ARGS` on a pseudo-terminal (standard input, output and error), with `input`
/// typed at it; what the terminal showed.
fn on_terminal(dir: &Path, args: &[&str], input: &str, env: &[(&str, &str)]) -> (Output, String) {
    let mut command = String::from(env!("CARGO_BIN_EXE_tagbinder"));
    for arg in args {
        command.push(' ');
        command.push_str(arg);
    }
    // NB: `script -q -e -c CMD /dev/null` runs CMD on a new pseudo-terminal, copies what we
    // write to its standard input onto the terminal, and exits with CMD's status.
    let mut child = Command::new("script");
    child
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .current_dir(dir)
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_ID")
        .env_remove("ALIBABA_CLOUD_ACCESS_KEY_SECRET")
        .env_remove("JDCLOUD_ACCESS_KEY")
        .env_remove("JDCLOUD_SECRET_KEY")
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        child.env(key, value);
    }
    let mut child = child.spawn().expect("script(1) from util-linux runs");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        // NB: typed after a pause, as a person would, once the question is on the screen.
        std::thread::sleep(std::time::Duration::from_millis(1500));
        stdin.write_all(input.as_bytes()).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    let screen = String::from_utf8_lossy(&output.stdout).into_owned();
    (output, screen)
}

#[test]
fn apply_against_a_real_cloud_on_a_terminal_shows_the_plan_and_asks_first() {
    let emulator = EmulatorProcess::start(&example("quickstart").join("inventory/inventory.yaml"));
    let dir = tempfile::tempdir().unwrap();
    quickstart_against(dir.path(), &emulator);

    // Anything but `yes`: the plan is shown, nothing is written, exit 1.
    let (output, screen) = on_terminal(dir.path(), &["apply", "-f", "manifests"], "no\n", &[]);
    assert_eq!(output.status.code(), Some(1), "{screen}");
    assert!(
        screen.contains(" env=prod on plugin-auth-2b9c"),
        "the plan is shown first:\n{screen}"
    );
    assert!(screen.contains("Only 'yes' will be accepted"), "{screen}");
    assert!(
        screen.contains("apply cancelled: nothing was written"),
        "{screen}"
    );
    assert_eq!(emulator.calls("alibaba", "TagResources"), 0, "{screen}");
    assert_eq!(emulator.calls("jdcloud", "tagResources"), 0, "{screen}");
    // The header names the target and where the credentials came from, never the secret.
    assert!(
        screen.contains(&format!("alibaba cn-hangzhou at {}", emulator.url)),
        "{screen}"
    );
    assert!(
        screen.contains("credentials from Secret tagbinder-system/aliyun-creds"),
        "{screen}"
    );
    assert!(!screen.contains("quickstart-demo-secret"), "{screen}");

    // `yes`: written.
    let (output, screen) = on_terminal(dir.path(), &["apply", "-f", "manifests"], "yes\n", &[]);
    assert_eq!(output.status.code(), Some(0), "{screen}");
    assert_eq!(emulator.calls("alibaba", "TagResources"), 2, "{screen}");
    assert!(screen.contains("4 of 4 binding(s) Ready"), "{screen}");

    // Nothing left to write: no question.
    let (output, screen) = on_terminal(dir.path(), &["apply", "-f", "manifests"], "", &[]);
    assert_eq!(output.status.code(), Some(0), "{screen}");
    assert!(!screen.contains("Only 'yes'"), "{screen}");
}

#[test]
fn auto_approve_a_pipeline_and_the_embedded_cloud_never_ask() {
    let emulator = EmulatorProcess::start(&example("quickstart").join("inventory/inventory.yaml"));
    let dir = tempfile::tempdir().unwrap();
    quickstart_against(dir.path(), &emulator);
    let (output, screen) = on_terminal(
        dir.path(),
        &["apply", "-f", "manifests", "--auto-approve"],
        "",
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{screen}");
    assert!(!screen.contains("Only 'yes'"), "{screen}");
    assert_eq!(emulator.calls("alibaba", "TagResources"), 2, "{screen}");

    // A pipeline (no terminal) never asks: nobody could answer.
    let other = tempfile::tempdir().unwrap();
    quickstart_against(other.path(), &emulator);
    let piped = tagbinder(other.path(), &["plan", "-f", "manifests"]);
    assert!(piped.status.success(), "{}", stderr(&piped));

    // The embedded cloud is no real cloud: no question, and the header says so.
    let embedded = tempfile::tempdir().unwrap();
    let files = example("quickstart");
    let (output, screen) = on_terminal(
        embedded.path(),
        &["apply", "-f", files.to_str().unwrap(), "--embedded-cloud"],
        "",
        &[],
    );
    assert_eq!(output.status.code(), Some(0), "{screen}");
    assert!(!screen.contains("Only 'yes'"), "{screen}");
    assert!(
        screen.contains("against the embedded cloud at http://127.0.0.1:"),
        "{screen}"
    );
}

#[test]
fn colour_on_a_terminal_only_and_never_with_no_color() {
    let files = example("quickstart");
    let files = files.to_str().unwrap();
    let green_plus = "\u{1b}[32m+";
    let dir = tempfile::tempdir().unwrap();
    let (_, screen) = on_terminal(
        dir.path(),
        &["plan", "-f", files, "--embedded-cloud"],
        "",
        &[],
    );
    assert!(
        screen.contains(green_plus),
        "a terminal gets colour:\n{screen:?}"
    );
    let (_, screen) = on_terminal(
        dir.path(),
        &["plan", "-f", files, "--embedded-cloud"],
        "",
        &[("NO_COLOR", "1")],
    );
    assert!(!screen.contains('\u{1b}'), "NO_COLOR:\n{screen:?}");
    let (_, screen) = on_terminal(
        dir.path(),
        &["plan", "-f", files, "--embedded-cloud", "--no-color"],
        "",
        &[],
    );
    assert!(!screen.contains('\u{1b}'), "--no-color:\n{screen:?}");
    let piped = tagbinder(dir.path(), &["plan", "-f", files, "--embedded-cloud"]);
    assert!(!stdout(&piped).contains('\u{1b}'), "a pipe gets plain text");
    assert!(stdout(&piped).contains("+ env=prod"));
}

/// Two bindings of one provider whose key the cloud refuses, and one resource that fails.
fn broken_fleet(dir: &Path) {
    let manifests = dir.join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    copy_flat(&example("partial-failure"), &manifests);
    let path = manifests.join("manifests.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    // NB: the JD Cloud key becomes one the cloud does not know; Alibaba's stays valid.
    let text = text.replace(
        "accessKeyId: JDCPARTIALFAILUREDEMOACCESSKEY01",
        "accessKeyId: JDCUNKNOWNKEY0000000000000000001",
    );
    let second = "---\napiVersion: tagbinder.io/v1alpha1\nkind: ResourceTagBinding\n\
                  metadata: {name: more-vms, namespace: team-data}\n\
                  spec:\n  providerRef: {name: jdcloud-cn-north-1}\n  resourceType: vm\n  \
                  resourceIds: [i-batch0001]\n  tags: {tier: batch}\n";
    std::fs::write(&path, text + second).unwrap();
}

#[test]
fn each_failure_is_told_once_per_provider_and_an_unread_binding_is_not_planned() {
    let dir = tempfile::tempdir().unwrap();
    broken_fleet(dir.path());
    let plan = tagbinder(dir.path(), &["plan", "-f", "manifests", "--embedded-cloud"]);
    let out = stdout(&plan);
    assert_eq!(plan.status.code(), Some(1), "{out}");
    // The refused key stops both JD Cloud bindings: told once, naming both.
    let refusals = out.matches("CredentialsInvalid: ").count();
    assert_eq!(refusals, 1, "{out}");
    assert!(
        out.contains("(bindings: team-data/batch-vms, team-data/more-vms)"),
        "{out}"
    );
    assert_eq!(out.matches("not planned (read failed)").count(), 2, "{out}");
    assert!(!out.contains("  no changes"), "{out}");
    assert!(out.contains("provider jdcloud-cn-north-1:"), "{out}");
    assert!(out.contains("Plan incomplete: 2 binding(s)"), "{out}");
}

#[test]
fn the_json_report_has_a_format_version_a_summary_and_every_error() {
    let dir = tempfile::tempdir().unwrap();
    broken_fleet(dir.path());
    let apply = tagbinder(
        dir.path(),
        &["apply", "-f", "manifests", "--embedded-cloud", "-o", "json"],
    );
    assert_eq!(apply.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&apply.stdout).unwrap();
    assert_eq!(report["formatVersion"], 1);
    let summary = &report["summary"];
    assert_eq!(summary["bindings"], 3, "{summary}");
    assert_eq!(summary["ready"], 0, "{summary}");
    assert_eq!(summary["failed"], 3, "{summary}");
    // NB: g-retired is not in the cloud: of web-apis' 3 resources, 2 were written, with 2
    // tags each.
    assert_eq!(summary["resources"], 2, "{summary}");
    assert_eq!(summary["add"], 4, "{summary}");
    let errors = report["errors"].as_array().unwrap();
    let providers: Vec<&str> = errors
        .iter()
        .map(|e| e["provider"].as_str().unwrap())
        .collect();
    assert_eq!(
        providers,
        ["aliyun-apigw-hangzhou", "jdcloud-cn-north-1"],
        "{errors:?}"
    );
    assert_eq!(errors[0]["resources"], serde_json::json!(["g-retired"]));
    assert_eq!(errors[1]["reason"], "CredentialsInvalid");
    assert_eq!(
        errors[1]["bindings"],
        serde_json::json!(["team-data/batch-vms", "team-data/more-vms"])
    );

    // Input errors: the same document, with `errors[]` and nothing else done.
    std::fs::write(
        dir.path().join("manifests/bad.yaml"),
        "apiVersion: tagbinder.io/v1alpha1\nkind: ResourceTagBinding\n\
         metadata: {name: bad, namespace: team-web}\nspec:\n  providerRef: {name: nope}\n  \
         resourceType: vm\n  resourceIds: [x]\n  tags: {a: b}\n  colour: blue\n",
    )
    .unwrap();
    let refused = tagbinder(
        dir.path(),
        &["plan", "-f", "manifests", "--embedded-cloud", "-o", "json"],
    );
    assert_eq!(refused.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&refused.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", stdout(&refused)));
    assert_eq!(report["formatVersion"], 1);
    assert_eq!(report["command"], "plan");
    let messages: Vec<&str> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert!(
        messages.iter().any(|m| m.contains("spec.colour")),
        "{messages:?}"
    );
    assert!(!stderr(&refused).is_empty());
}

const TYPO_PROVIDER: &str = "apiVersion: tagbinder.io/v1alpha1
kind: TagProvider
metadata: {name: aliyun}
spec: {cloud: alibaba, region: cn-hangzou, alibaba: {product: apigateway}, credentials: {secretRef: {namespace: ops, name: creds}}}
---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: ops}
stringData: {accessKeyId: LTAI5tTypoKey, accessKeySecret: typo-secret-value}
---
apiVersion: emulator.tagbinder.io/v1alpha1
kind: CloudInventory
accounts: [{accessKeyId: LTAI5tTypoKey, accessKeySecret: typo-secret-value}]
resources:
  - {cloud: alibaba, region: cn-hangzhou, type: apiGroup, id: g1, tags: {team: web}}
";

fn typo_binding(extra: &str) -> String {
    format!(
        "apiVersion: tagbinder.io/v1alpha1\nkind: ResourceTagBinding\n\
         metadata: {{name: web, namespace: team}}\n\
         spec:\n  providerRef: {{name: aliyun}}\n  resourceType: apiGroup\n  \
         resourceIds: [g1]\n{extra}"
    )
}

#[test]
fn typos_get_the_closest_value_and_a_wrong_region_is_told_before_it_looks_like_no_resources() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("provider.yaml"), TYPO_PROVIDER).unwrap();
    let plan = |binding: &str| {
        std::fs::write(dir.path().join("binding.yaml"), binding).unwrap();
        tagbinder(
            dir.path(),
            &[
                "plan",
                "-f",
                "provider.yaml",
                "-f",
                "binding.yaml",
                "--embedded-cloud",
            ],
        )
    };
    // A field and an enum value with a typo: the closest, in the user's words.
    let refused = plan(&typo_binding("  tagz: {env: prod}\n"));
    let error = stderr(&refused);
    assert!(
        error.contains("spec.tagz: unknown field (did you mean \"tags\"?)"),
        "{error}"
    );
    let refused = plan(&typo_binding(
        "  tags: {env: prod}\n  deletionPolicy: delete\n",
    ));
    let error = stderr(&refused);
    assert!(
        error.contains(
            "spec.deletionPolicy: unknown value \"delete\": expected one of Delete, Orphan \
             (did you mean \"Delete\"?)"
        ),
        "{error}"
    );
    assert!(!error.contains("variant"), "{error}");

    // The region: warned with the one meant; the binding's resource reads as untagged (the
    // embedded cloud holds g1 in cn-hangzhou), and the plan says what that may mean.
    let planned = plan(&typo_binding("  tags: {env: prod}\n"));
    let error = stderr(&planned);
    assert!(
        error.contains("spec.region: \"cn-hangzou\" is not a region of Alibaba Cloud")
            && error.contains("(did you mean \"cn-hangzhou\"?)"),
        "{error}"
    );
    let out = stdout(&planned);
    assert!(
        out.contains("note: none of its 1 resource(s) carries a tag yet; a wrong region"),
        "{out}"
    );
    // The right region: no warning, and g1's foreign tag is seen.
    let fixed = TYPO_PROVIDER.replace("region: cn-hangzou", "region: cn-hangzhou");
    std::fs::write(dir.path().join("provider.yaml"), fixed).unwrap();
    let planned = plan(&typo_binding("  tags: {env: prod}\n"));
    assert!(
        !stderr(&planned).contains("warning"),
        "{}",
        stderr(&planned)
    );
    assert!(!stdout(&planned).contains("note:"), "{}", stdout(&planned));
}

/// Every rule a binding's tags break is reported in one run, not one per run: the CRD's
/// limits (a key and a value over 128 characters) together, and then the provider's (a
/// reserved prefix, more tags than a resource may carry) together.
#[test]
fn every_tag_limit_is_reported_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("provider.yaml"), TYPO_PROVIDER).unwrap();
    let long_key = "k".repeat(130);
    let long_value = "v".repeat(130);
    let binding = typo_binding(&format!("  tags: {{{long_key}: a, b: {long_value}}}\n"));
    std::fs::write(dir.path().join("binding.yaml"), binding).unwrap();
    let args = [
        "plan",
        "-f",
        "provider.yaml",
        "-f",
        "binding.yaml",
        "--embedded-cloud",
    ];
    let error = stderr(&tagbinder(dir.path(), &args));
    assert!(error.contains("value is 130 characters"), "{error}");
    assert!(error.contains("key is 130 characters"), "{error}");

    let many: Vec<String> = (0..21).map(|i| format!("t{i}: x")).collect();
    let binding = typo_binding(&format!("  tags: {{\"acs:x\": z, {}}}\n", many.join(", ")));
    std::fs::write(dir.path().join("binding.yaml"), binding).unwrap();
    let error = stderr(&tagbinder(dir.path(), &args));
    assert!(
        error.contains("22 tags declared; the limit is 20"),
        "{error}"
    );
    assert!(error.contains("acs:"), "{error}");
}

/// `RUST_LOG=tagbinder=debug` tells what a round did (issue 21, item 6): its span, what it
/// read, each binding's plan, what it wrote, and each cloud call's outcome.
#[test]
fn debug_logs_tell_what_a_round_did() {
    let dir = tempfile::tempdir().unwrap();
    let files = example("quickstart");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tagbinder"))
        .args(["apply", "-f", files.to_str().unwrap(), "--embedded-cloud"])
        .current_dir(dir.path())
        .env("RUST_LOG", "tagbinder=debug")
        .env("NO_COLOR", "1")
        .output()
        .expect("the tagbinder binary runs");
    let logs = stderr(&output);
    assert!(output.status.success(), "{logs}");
    for expected in [
        "group{provider=\"aliyun-apigw-hangzhou\" resource_type=\"apiGroup\" bindings=1}:round{resource_type=apiGroup inputs=",
        "reading every resource the round considers, once resources=",
        "pass{binding=team-web/web-api-groups resources=3 mode=Apply}",
        "planned tag_calls=1 untag_calls=0",
        "writing every plan's batches at once",
        "cloud_call{action=\"TagResources\" resources=3 cloud=\"alibaba\"}:attempt{attempt=1}",
        "call succeeded",
    ] {
        assert!(logs.contains(expected), "no {expected:?} in:\n{logs}");
    }
}
