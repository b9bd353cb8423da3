//! The CLI against a hostile or careless user (issue 14): the state file's lock and
//! writability, name rules that keep state keys unambiguous, bounded input, secrets never
//! echoed, control characters escaped, and clear reports where the output misled.

#[allow(dead_code)]
#[path = "common/cli.rs"]
mod common;
use common::{stderr, stdout, tagbinder};

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const PROVIDER: &str = "apiVersion: tagbinder.io/v1alpha1
kind: TagProvider
metadata: {name: aliyun}
spec:
  cloud: alibaba
  region: cn-hangzhou
  alibaba: {product: apigateway}
  credentials: {secretRef: {namespace: ops, name: creds}}
---
apiVersion: v1
kind: Secret
metadata: {name: creds, namespace: ops}
stringData: {accessKeyId: LTAI5tHardeningKey, accessKeySecret: hardening-secret-value}
";

const INVENTORY: &str = "apiVersion: emulator.tagbinder.io/v1alpha1
kind: CloudInventory
accounts: [{accessKeyId: LTAI5tHardeningKey, accessKeySecret: hardening-secret-value}]
resources:
  - {cloud: alibaba, region: cn-hangzhou, type: apiGroup, id: g1, tags: {keep: me}}
  - {cloud: alibaba, region: cn-hangzhou, type: apiGroup, id: g2}
";

fn binding(namespace: &str, name: &str, ids: &str, tags: &str) -> String {
    format!(
        "apiVersion: tagbinder.io/v1alpha1
kind: ResourceTagBinding
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  providerRef: {{name: aliyun}}
  resourceType: apiGroup
  resourceIds: [{ids}]
  tags: {tags}
"
    )
}

/// A directory with `manifests/` holding the provider, the inventory and `bindings`.
fn setup(bindings: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let manifests = dir.path().join("manifests");
    std::fs::create_dir(&manifests).unwrap();
    std::fs::write(manifests.join("provider.yaml"), PROVIDER).unwrap();
    std::fs::write(manifests.join("inventory.yaml"), INVENTORY).unwrap();
    std::fs::write(manifests.join("bindings.yaml"), bindings).unwrap();
    dir
}

fn apply(dir: &Path, extra: &[&str]) -> Output {
    let mut args = vec!["apply", "-f", "manifests", "--embedded-cloud"];
    args.extend_from_slice(extra);
    tagbinder(dir, &args)
}

/// Tags of `id` in the embedded cloud's state file.
fn cloud_tags(dir: &Path, id: &str) -> Value {
    let text = std::fs::read_to_string(dir.join(".tagbinder/cloud.json")).unwrap_or_default();
    let state: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    let resources = state["resources"].as_array().cloned().unwrap_or_default();
    resources
        .into_iter()
        .find(|r| r["id"] == id)
        .map(|r| r["tags"].clone())
        .unwrap_or(Value::Null)
}

fn state_file(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join(".tagbinder/state.json")).expect("state file");
    serde_json::from_str(&text).unwrap()
}

#[test]
fn a_second_apply_on_the_same_state_fails_at_once_or_waits_with_lock_timeout() {
    let dir = setup(&binding("team", "web", "g1, g2", "{env: prod}"));
    std::fs::create_dir(dir.path().join(".tagbinder")).unwrap();
    // This test holds the lock, as a running apply would.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.path().join(".tagbinder/state.json.lock"))
        .unwrap();
    lock.lock().unwrap();

    let refused = apply(dir.path(), &[]);
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    let error = stderr(&refused);
    assert!(error.contains("another tagbinder run"), "{error}");
    assert!(error.contains("--lock-timeout"), "{error}");
    assert_eq!(cloud_tags(dir.path(), "g2"), Value::Null, "nothing written");
    let plan = tagbinder(dir.path(), &["plan", "-f", "manifests"]);
    assert!(
        stderr(&plan).contains("another tagbinder run"),
        "{}",
        stderr(&plan)
    );

    let waiting = Command::new(env!("CARGO_BIN_EXE_tagbinder"))
        .args([
            "apply",
            "-f",
            "manifests",
            "--embedded-cloud",
            "--lock-timeout=2m",
        ])
        .current_dir(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    lock.unlock().unwrap();
    let waited = waiting.wait_with_output().unwrap();
    assert!(waited.status.success(), "{}", stderr(&waited));
    assert_eq!(cloud_tags(dir.path(), "g2")["env"], "prod");
}

#[test]
fn concurrent_applies_never_lose_a_record() {
    // NB: each run declares bindings of its own (from its own folder, on one state file and
    // one embedded cloud): a run that read the state while another was writing it would
    // save a state without the other's records, or refuse to save it.
    let dir = setup("");
    for run in 0..4 {
        let folder = dir.path().join(format!("run-{run}"));
        std::fs::create_dir(&folder).unwrap();
        std::fs::copy(
            dir.path().join("manifests/provider.yaml"),
            folder.join("provider.yaml"),
        )
        .unwrap();
        std::fs::copy(
            dir.path().join("manifests/inventory.yaml"),
            folder.join("inventory.yaml"),
        )
        .unwrap();
        let bindings: Vec<String> = (0..3)
            .map(|n| {
                let tags = format!("{{k{run}-{n}: v}}");
                binding(&format!("team-{run}-{n}"), "web", "g1", &tags)
            })
            .collect();
        std::fs::write(folder.join("bindings.yaml"), bindings.join("---\n")).unwrap();
    }
    let runs: Vec<_> = (0..4)
        .map(|run| {
            Command::new(env!("CARGO_BIN_EXE_tagbinder"))
                .args(["apply", "-f", &format!("run-{run}")])
                .args(["--embedded-cloud", "--lock-timeout=5m"])
                .current_dir(dir.path())
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for run in runs {
        let output = run.wait_with_output().unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
    }
    let state = state_file(dir.path());
    let records = state["bindings"].as_object().unwrap();
    assert_eq!(records.len(), 12, "{state}");
    let tags = cloud_tags(dir.path(), "g1");
    for run in 0..4 {
        for n in 0..3 {
            let record = &records[&format!("team-{run}-{n}/web")];
            assert_eq!(record["appliedTags"][format!("k{run}-{n}")], "v", "{state}");
            assert_eq!(tags[format!("k{run}-{n}")], "v", "{tags}");
        }
    }
}

#[test]
fn an_unwritable_state_is_found_before_any_cloud_write() {
    let dir = setup(&binding("team", "web", "g1, g2", "{env: prod}"));
    // A regular file where the state's directory should be: nothing can be created there.
    std::fs::write(dir.path().join("blocked"), "").unwrap();
    let output = apply(dir.path(), &["--state=blocked/state.json"]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let error = stderr(&output);
    assert!(error.contains("blocked/state.json"), "{error}");
    assert!(error.contains("cannot be written"), "{error}");
    assert_eq!(cloud_tags(dir.path(), "g2"), Value::Null, "nothing written");
}

/// Holds the exclusive lock of the state file at `state`, as a running apply would.
fn hold_lock(state: &Path) -> std::fs::File {
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(format!("{}.lock", state.display()))
        .unwrap();
    lock.lock().unwrap();
    lock
}

#[cfg(unix)]
#[test]
fn a_state_file_reached_through_a_link_is_locked_and_saved_as_its_target() {
    let dir = setup(&binding("team", "web", "g1", "{env: prod}"));
    std::fs::create_dir(dir.path().join("real")).unwrap();
    let real = dir.path().join("real/state.json");
    let output = apply(dir.path(), &["--state=real/state.json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    std::os::unix::fs::symlink("real/state.json", dir.path().join("link.json")).unwrap();

    // A run through the link and one through the real path exclude each other.
    let lock = hold_lock(&real);
    let refused = apply(dir.path(), &["--state=link.json"]);
    assert_eq!(refused.status.code(), Some(1), "{}", stdout(&refused));
    assert!(
        stderr(&refused).contains("another tagbinder run"),
        "{}",
        stderr(&refused)
    );
    drop(lock);

    // A save through the link writes the target and leaves the link a link.
    std::fs::write(
        dir.path().join("manifests/bindings.yaml"),
        binding("team", "web", "g1", "{env: prod, tier: web}"),
    )
    .unwrap();
    let output = apply(dir.path(), &["--state=link.json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let link = std::fs::symlink_metadata(dir.path().join("link.json")).unwrap();
    assert!(link.file_type().is_symlink(), "the link is still a link");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&real).unwrap()).unwrap();
    assert_eq!(saved["bindings"]["team/web"]["appliedTags"]["tier"], "web");

    // A link to a state file not created yet: the file is created where the link points.
    std::os::unix::fs::symlink("real/new.json", dir.path().join("new-link.json")).unwrap();
    let output = apply(dir.path(), &["--state=new-link.json"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(dir.path().join("real/new.json").is_file());
    let link = std::fs::symlink_metadata(dir.path().join("new-link.json")).unwrap();
    assert!(
        link.file_type().is_symlink(),
        "the new link is still a link"
    );
}

#[cfg(unix)]
#[test]
fn a_state_file_that_is_not_a_regular_file_is_refused_at_once() {
    let dir = setup(&binding("team", "web", "g1", "{env: prod}"));
    let fifo = dir.path().join("fifo.json");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    for state in ["--state=fifo.json", "--state=manifests"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tagbinder"))
            .args(["apply", "-f", "manifests", "--embedded-cloud", state])
            .current_dir(dir.path())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // NB: a hang detector, not a speed check: a run blocked on the FIFO fails the test.
        let mut waited = 0;
        while child.try_wait().unwrap().is_none() {
            if waited == 600 {
                let _ = child.kill();
                panic!("{state}: the run hangs");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
            waited += 1;
        }
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{state}");
        let error = stderr(&output);
        assert!(error.contains("not a regular file"), "{state}: {error}");
        assert_eq!(
            cloud_tags(dir.path(), "g1")["env"],
            Value::Null,
            "nothing written"
        );
    }
    assert!(
        stderr(&tagbinder(
            dir.path(),
            &["plan", "-f", "manifests", "--state=fifo.json"]
        ))
        .contains("a FIFO (named pipe)")
    );
}

#[test]
fn the_largest_state_generation_is_refused_before_any_cloud_write() {
    let dir = setup(&binding("team", "web", "g1", "{env: prod}"));
    std::fs::create_dir(dir.path().join(".tagbinder")).unwrap();
    std::fs::write(
        dir.path().join(".tagbinder/state.json"),
        format!(
            "{{\"version\": 2, \"generation\": {}, \"bindings\": {{}}}}",
            u64::MAX
        ),
    )
    .unwrap();
    let output = apply(dir.path(), &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let error = stderr(&output);
    assert!(error.contains("generation 18446744073709551615"), "{error}");
    assert!(error.contains("edited by hand"), "{error}");
    assert_eq!(
        cloud_tags(dir.path(), "g1")["env"],
        Value::Null,
        "nothing written"
    );
}

#[test]
fn names_that_would_collide_in_the_state_are_refused() {
    // `a`/`b/c` and `a/b`/`c` would both be `a/b/c`.
    for (namespace, name) in [
        ("a", "\"b/c\""),
        ("\"a/b\"", "c"),
        ("Team", "web"),
        ("team", "\"we b\""),
    ] {
        let dir = setup(&binding(namespace, name, "g1", "{env: prod}"));
        let output = apply(dir.path(), &[]);
        assert_eq!(output.status.code(), Some(1), "{namespace} {name}");
        let error = stderr(&output);
        assert!(error.contains("RFC 1123"), "{error}");
        assert_eq!(cloud_tags(dir.path(), "g1"), Value::Null);
    }
}

#[test]
fn an_old_state_file_keyed_by_provider_is_migrated_and_still_prunes() {
    let dir = setup(&binding("team", "web", "g1", "{env: prod, tier: web}"));
    assert!(apply(dir.path(), &[]).status.success());
    // Rewrite the state as version 1 wrote it.
    let mut state = state_file(dir.path());
    let record = state["bindings"]["team/web"].clone();
    state["version"] = 1.into();
    state["bindings"] = serde_json::json!({"aliyun/team/web": record});
    state.as_object_mut().unwrap().remove("generation");
    std::fs::write(dir.path().join(".tagbinder/state.json"), state.to_string()).unwrap();
    std::fs::write(
        dir.path().join("manifests/bindings.yaml"),
        binding("team", "web", "g1", "{env: prod}"),
    )
    .unwrap();
    let output = apply(dir.path(), &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("- tier=web (pruned)"),
        "{}",
        stdout(&output)
    );
    assert_eq!(state_file(dir.path())["version"], 2);
    assert!(state_file(dir.path())["bindings"]["team/web"].is_object());
}

#[test]
fn apply_twice_from_the_manifests_folder_does_not_read_its_own_state() {
    let dir = setup(&binding("team", "web", "g1", "{env: prod}"));
    let manifests = dir.path().join("manifests");
    for _ in 0..2 {
        let output = tagbinder(&manifests, &["apply", "-f", ".", "--embedded-cloud"]);
        assert!(output.status.success(), "{}", stderr(&output));
    }
    assert!(manifests.join(".tagbinder/state.json").exists());
}

#[test]
fn a_byte_order_mark_is_not_an_error() {
    let dir = setup(&format!(
        "\u{feff}{}",
        binding("team", "web", "g1", "{env: prod}")
    ));
    let output = apply(dir.path(), &[]);
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn input_is_bounded_by_the_bytes_read() {
    let dir = setup(&binding("team", "web", "g1", "{env: prod}"));
    if Path::new("/dev/zero").exists() {
        let output = tagbinder(dir.path(), &["plan", "-f", "/dev/zero"]);
        assert!(
            stderr(&output).contains("larger than 3.0 MiB"),
            "{}",
            stderr(&output)
        );
        let output = tagbinder(
            dir.path(),
            &[
                "plan",
                "-f",
                "manifests",
                "--embedded-cloud",
                "--state=/dev/zero",
            ],
        );
        // NB: a device is no state file (issue 20, item 10).
        assert!(
            stderr(&output).contains("not a regular file"),
            "{}",
            stderr(&output)
        );
    }
    // A state file larger than the limit (sparse: no disk space is used).
    std::fs::File::create(dir.path().join("big.json"))
        .unwrap()
        .set_len(256 * 1024 * 1024 + 1)
        .unwrap();
    let output = tagbinder(
        dir.path(),
        &[
            "plan",
            "-f",
            "manifests",
            "--embedded-cloud",
            "--state=big.json",
        ],
    );
    assert!(stderr(&output).contains("256.0 MiB"), "{}", stderr(&output));
    // An endless standard input (`yes | tagbinder plan -f -`).
    let mut child = Command::new(env!("CARGO_BIN_EXE_tagbinder"))
        .args(["plan", "-f", "-"])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        use std::io::Write;
        let line = vec![b'y'; 64 * 1024];
        // NB: ends when tagbinder closes its standard input.
        while stdin.write_all(&line).is_ok() {}
    });
    let output = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("larger than 3.0 MiB"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_numeric_secret_is_never_echoed() {
    let secret = "918273645546372819";
    for (what, provider) in [
        (
            "stringData",
            PROVIDER.replace("accessKeySecret: hardening-secret-value", &format!("accessKeySecret: {secret}")),
        ),
        (
            "data",
            PROVIDER.replace(
                "stringData: {accessKeyId: LTAI5tHardeningKey, accessKeySecret: hardening-secret-value}",
                &format!("data: {{accessKeyId: TFRBSTV0, accessKeySecret: {secret}}}"),
            ),
        ),
    ] {
        let dir = setup(&binding("team", "web", "g1", "{env: prod}"));
        std::fs::write(dir.path().join("manifests/provider.yaml"), provider).unwrap();
        let output = apply(dir.path(), &[]);
        assert_eq!(output.status.code(), Some(1), "{what}");
        let error = stderr(&output);
        assert!(error.contains(&format!("{what}.accessKeySecret")), "{error}");
        assert!(!error.contains(secret), "{what}: {error}");
    }
    let dir = setup(&binding("team", "web", "g1", "{env: prod}"));
    std::fs::write(
        dir.path().join("manifests/inventory.yaml"),
        INVENTORY.replace(
            "accessKeySecret: hardening-secret-value",
            &format!("accessKeySecret: {secret}"),
        ),
    )
    .unwrap();
    let output = apply(dir.path(), &[]);
    assert_eq!(output.status.code(), Some(1));
    assert!(!stderr(&output).contains(secret), "{}", stderr(&output));
}

#[test]
fn a_long_numeric_secret_is_never_echoed_whatever_its_length() {
    // NB: beyond u64 (20 digits and more) serde_yaml's own errors quote the digits; by the
    // position of the value (a Secret's data, an inventory's accounts), never shown at all.
    for secret in [
        "98765432109876543210",
        "123456789012345678901234",
        "923456789012345678901234567890123456789",
    ] {
        let shown = |text: &str| text.contains(&secret[1..9]);
        let stringdata = "stringData: {accessKeyId: LTAI5tHardeningKey, accessKeySecret: hardening-secret-value}";
        for (what, replacement) in [
            (
                "stringData.accessKeySecret",
                format!(
                    "stringData: {{accessKeyId: LTAI5tHardeningKey, accessKeySecret: {secret}}}"
                ),
            ),
            (
                "stringData.accessKeyId",
                format!("stringData: {{accessKeyId: {secret}, accessKeySecret: x}}"),
            ),
            (
                "data.accessKeySecret",
                format!("data: {{accessKeyId: TFRBSTV0, accessKeySecret: {secret}}}"),
            ),
        ] {
            let dir = setup(&binding("team", "web", "g1", "{env: prod}"));
            std::fs::write(
                dir.path().join("manifests/provider.yaml"),
                PROVIDER.replace(stringdata, &replacement),
            )
            .unwrap();
            let output = apply(dir.path(), &[]);
            assert_eq!(output.status.code(), Some(1), "{what}");
            let error = stderr(&output);
            assert!(error.contains(what), "{what}: {error}");
            assert!(error.contains("not shown"), "{what}: {error}");
            assert!(!shown(&error), "{what}: {error}");
        }
        for field in ["accessKeySecret", "accessKeyId"] {
            let inventory = INVENTORY.replace(
                &format!(
                    "{field}: {}",
                    if field == "accessKeyId" {
                        "LTAI5tHardeningKey"
                    } else {
                        "hardening-secret-value"
                    }
                ),
                &format!("{field}: {secret}"),
            );
            let dir = setup(&binding("team", "web", "g1", "{env: prod}"));
            std::fs::write(dir.path().join("manifests/inventory.yaml"), &inventory).unwrap();
            let output = apply(dir.path(), &[]);
            assert_eq!(output.status.code(), Some(1), "{field}");
            assert!(!shown(&stderr(&output)), "{field}: {}", stderr(&output));
            // The emulator's own inventory file, in YAML and in JSON.
            std::fs::write(dir.path().join("inventory.yaml"), &inventory).unwrap();
            let json = format!(
                "{{\"accounts\": [{{\"accessKeyId\": {}, \"accessKeySecret\": {}}}]}}",
                if field == "accessKeyId" {
                    secret.to_string()
                } else {
                    "\"k\"".to_string()
                },
                if field == "accessKeySecret" {
                    secret.to_string()
                } else {
                    "\"s\"".to_string()
                },
            );
            std::fs::write(dir.path().join("inventory.json"), json).unwrap();
            for file in ["inventory.yaml", "inventory.json"] {
                let output = tagbinder(
                    dir.path(),
                    &["emulator", "--listen", "127.0.0.1:0", "--inventory", file],
                );
                assert_eq!(output.status.code(), Some(1), "{file} {field}");
                let error = stderr(&output);
                assert!(error.contains("not shown"), "{file} {field}: {error}");
                assert!(!shown(&error), "{file} {field}: {error}");
            }
        }
    }
}

#[test]
fn control_characters_from_the_cloud_are_printed_escaped() {
    let dir = setup(&binding("team", "web", "g1", "{env: prod}"));
    std::fs::write(
        dir.path().join("manifests/inventory.yaml"),
        INVENTORY.replace(
            "tags: {keep: me}",
            "tags: {keep: me, env: \"old\\r\\u001b[2KNo changes\"}",
        ),
    )
    .unwrap();
    let output = tagbinder(dir.path(), &["plan", "-f", "manifests", "--embedded-cloud"]);
    let out = stdout(&output);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!out.contains('\r') && !out.contains('\u{1b}'), "{out:?}");
    assert!(
        out.contains("~ env: old\\u{d}\\u{1b}[2KNo changes -> prod"),
        "{out}"
    );
}

/// Invisible characters of issue 20, item 11, as YAML double-quoted escapes, and their
/// code points: zero-width space, soft hyphen, word joiner, byte-order mark, left-to-right
/// mark, Hangul filler, a tag character, line and paragraph separators.
const INVISIBLE: [(&str, &str); 9] = [
    ("\\u200B", "U+200B"),
    ("\\u00AD", "U+00AD"),
    ("\\u2060", "U+2060"),
    ("\\uFEFF", "U+FEFF"),
    ("\\u200E", "U+200E"),
    ("\\u3164", "U+3164"),
    ("\\U000E0041", "U+E0041"),
    ("\\u2028", "U+2028"),
    ("\\u2029", "U+2029"),
];

#[test]
fn invisible_characters_from_the_cloud_are_printed_escaped() {
    let dir = setup(&binding("team", "web", "g1", "{env: prod}"));
    let value: String = INVISIBLE.iter().map(|(escape, _)| *escape).collect();
    std::fs::write(
        dir.path().join("manifests/inventory.yaml"),
        INVENTORY.replace(
            "tags: {keep: me}",
            &format!("tags: {{keep: me, env: \"o{value}ld\"}}"),
        ),
    )
    .unwrap();
    let output = tagbinder(dir.path(), &["plan", "-f", "manifests", "--embedded-cloud"]);
    let out = stdout(&output);
    assert!(output.status.success(), "{}", stderr(&output));
    let escaped: String = INVISIBLE
        .iter()
        .map(|(_, code)| {
            format!(
                "\\u{{{}}}",
                code[2..].trim_start_matches('0').to_lowercase()
            )
        })
        .collect();
    assert!(
        out.contains(&format!("~ env: o{escaped}ld -> prod")),
        "{out}"
    );
    for c in [
        '\u{200b}',
        '\u{ad}',
        '\u{2060}',
        '\u{feff}',
        '\u{200e}',
        '\u{3164}',
        '\u{e0041}',
        '\u{2028}',
        '\u{2029}',
    ] {
        assert!(!out.contains(c), "{c:?} printed raw: {out:?}");
    }
}

#[test]
fn a_tag_key_with_an_invisible_character_is_refused_naming_the_code_point() {
    for (escape, code) in INVISIBLE {
        let dir = setup(&binding(
            "team",
            "web",
            "g1",
            &format!("{{\"en{escape}v\": prod}}"),
        ));
        for command in ["plan", "apply"] {
            let output = tagbinder(
                dir.path(),
                &[command, "-f", "manifests", "--embedded-cloud"],
            );
            assert_eq!(
                output.status.code(),
                Some(1),
                "{code} {command}: {}",
                stdout(&output)
            );
            let error = stderr(&output) + &stdout(&output);
            assert!(error.contains("spec.tags["), "{code}: {error}");
            assert!(
                error.contains(&format!("invisible character {code}")),
                "{code}: {error}"
            );
        }
        assert_eq!(
            cloud_tags(dir.path(), "g1")["env"],
            Value::Null,
            "{code}: nothing written"
        );
        // A selector's key, which no resource can carry.
        let selector = binding("team", "web", "g1", "{env: prod}").replace(
            "resourceIds: [g1]",
            &format!("resourceSelector: {{matchTags: {{\"te{escape}am\": web}}}}"),
        );
        let dir = setup(&selector);
        let output = tagbinder(dir.path(), &["plan", "-f", "manifests", "--embedded-cloud"]);
        assert_eq!(output.status.code(), Some(1), "{code} in matchTags");
        let error = stderr(&output) + &stdout(&output);
        assert!(
            error.contains("spec.resourceSelector.matchTags"),
            "{code}: {error}"
        );
        assert!(
            error.contains(&format!("invisible character {code}")),
            "{code}: {error}"
        );
    }
}

#[test]
fn yaml_1_1_scalars_that_kubectl_reads_otherwise_are_refused() {
    // NB: kubectl reads these unquoted as booleans or numbers (YAML 1.1), and the CRD then
    // refuses them where a string is expected: so does the CLI, naming the field.
    for scalar in [
        "yes", "no", "on", "off", "y", "010", "0x1F", "1_000", "0b101", "1e3",
    ] {
        for (field, ids, tags) in [
            (
                "spec.tags.env",
                "g1".to_string(),
                format!("{{env: {scalar}}}"),
            ),
            ("spec.tags", "g1".to_string(), format!("{{{scalar}: prod}}")),
            (
                "spec.resourceIds",
                format!("g1, {scalar}"),
                "{env: prod}".to_string(),
            ),
        ] {
            let dir = setup(&binding("team", "web", &ids, &tags));
            let output = tagbinder(dir.path(), &["plan", "-f", "manifests", "--embedded-cloud"]);
            assert_eq!(output.status.code(), Some(1), "{scalar} in {field}");
            let error = stderr(&output);
            assert!(error.contains(field), "{scalar} in {field}: {error}");
            assert!(error.contains("quote it"), "{scalar} in {field}: {error}");
        }
    }
    // Quoted, each is a string to both; `12:30:00` is a string to kubectl too (go-yaml v2
    // reads no base-60 numbers); a date stays a string as well.
    let dir = setup(&binding(
        "team",
        "web",
        "g1",
        "{env: \"yes\", code: '010', at: 12:30:00, day: 2024-01-02}",
    ));
    let output = tagbinder(dir.path(), &["plan", "-f", "manifests", "--embedded-cloud"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stdout(&output).contains("+ at=12:30:00"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn a_tag_key_with_leading_or_trailing_spaces_is_refused_quoted() {
    for key in [" env", "env ", "\\tenv"] {
        let dir = setup(&binding(
            "team",
            "web",
            "g1",
            &format!("{{\"{key}\": prod}}"),
        ));
        let output = tagbinder(dir.path(), &["plan", "-f", "manifests", "--embedded-cloud"]);
        assert_eq!(output.status.code(), Some(1), "{key:?}");
        let error = stderr(&output);
        assert!(
            error.contains("leading or trailing spaces") || error.contains("control character"),
            "{key:?}: {error}"
        );
        if !key.starts_with('\\') {
            assert!(error.contains(&format!("{key:?}")), "{key:?}: {error}");
        }
    }
}

#[test]
fn a_failed_read_is_not_reported_as_no_changes() {
    let dir = setup(&binding("team", "web", "g1", "{env: prod}"));
    std::fs::write(
        dir.path().join("manifests/provider.yaml"),
        PROVIDER.replace(
            "accessKeySecret: hardening-secret-value",
            "accessKeySecret: wrong",
        ),
    )
    .unwrap();
    let output = tagbinder(
        dir.path(),
        &[
            "plan",
            "-f",
            "manifests",
            "--embedded-cloud",
            "--detailed-exitcode",
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let out = stdout(&output);
    assert!(out.contains("CredentialsInvalid"), "{out}");
    assert!(!out.contains("No changes"), "{out}");
    assert!(out.contains("Plan incomplete: 1 binding(s)"), "{out}");
}

#[test]
fn a_suspended_binding_leaves_nothing_pending() {
    let dir = setup(&binding("team", "web", "g1", "{env: prod}"));
    assert!(apply(dir.path(), &[]).status.success());
    let suspended = binding("team", "web", "g1", "{env: staging}") + "  suspend: true\n";
    std::fs::write(dir.path().join("manifests/bindings.yaml"), suspended).unwrap();
    let output = tagbinder(
        dir.path(),
        &[
            "plan",
            "-f",
            "manifests",
            "--embedded-cloud",
            "--detailed-exitcode",
        ],
    );
    let out = stdout(&output);
    assert_eq!(output.status.code(), Some(0), "{out}");
    assert!(out.contains("suspended"), "{out}");
}

#[test]
fn prune_removed_says_what_it_removed_and_counts_its_calls() {
    let two = [
        binding("team", "web", "g1", "{env: prod}"),
        binding("team", "old", "g2", "{tier: web}"),
    ]
    .join("---\n");
    let dir = setup(&two);
    assert!(apply(dir.path(), &[]).status.success());
    std::fs::write(
        dir.path().join("manifests/bindings.yaml"),
        binding("team", "web", "g1", "{env: prod}"),
    )
    .unwrap();
    // `plan --prune-removed` shows the prune key by key, as pending, and writes nothing;
    // plain `plan` only says the binding is no longer declared.
    let plan = |extra: &[&str]| {
        let mut args = vec![
            "plan",
            "-f",
            "manifests",
            "--embedded-cloud",
            "--detailed-exitcode",
        ];
        args.extend_from_slice(extra);
        tagbinder(dir.path(), &args)
    };
    let preview = plan(&["--prune-removed"]);
    let out = stdout(&preview);
    assert_eq!(
        preview.status.code(),
        Some(2),
        "{out}\n{}",
        stderr(&preview)
    );
    assert!(
        out.contains("team/old (aliyun): no longer declared"),
        "{out}"
    );
    assert!(out.contains("- tier=web (pruned) on g2"), "{out}");
    assert!(
        out.contains("apply --prune-removed would remove its tags from 1 resource(s)"),
        "{out}"
    );
    assert!(
        out.contains("Plan: 1 resource(s) to update: 0 tag(s) to add, 0 to change, 1 to prune."),
        "{out}"
    );
    assert_eq!(cloud_tags(dir.path(), "g2")["tier"], "web");
    let plain = plan(&[]);
    let out = stdout(&plain);
    assert_eq!(plain.status.code(), Some(0), "{out}");
    assert!(!out.contains("(pruned)"), "{out}");
    assert!(out.contains("`plan --prune-removed` shows"), "{out}");

    let output = apply(dir.path(), &["--prune-removed"]);
    let out = stdout(&output);
    assert!(output.status.success(), "{out}");
    assert!(out.contains("- tier=web (pruned) on g2"), "{out}");
    assert!(
        out.contains("Apply: 1 resource(s) updated: 0 tag(s) added, 0 changed, 1 pruned"),
        "{out}"
    );
    assert_eq!(cloud_tags(dir.path(), "g2"), serde_json::json!({}));

    // A removed binding whose tag someone changed since: nothing is removed, and it says so.
    let dir = setup(&two);
    assert!(apply(dir.path(), &[]).status.success());
    let cloud = dir.path().join(".tagbinder/cloud.json");
    let text = std::fs::read_to_string(&cloud).unwrap();
    std::fs::write(
        &cloud,
        text.replace("\"tier\": \"web\"", "\"tier\": \"by-hand\""),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("manifests/bindings.yaml"),
        binding("team", "web", "g1", "{env: prod}"),
    )
    .unwrap();
    let output = apply(dir.path(), &["--prune-removed"]);
    let out = stdout(&output);
    assert!(output.status.success(), "{out}");
    assert!(out.contains("nothing removed"), "{out}");
    assert!(!out.contains("were removed"), "{out}");
    assert!(out.contains("Apply: nothing changed"), "{out}");
    assert_eq!(cloud_tags(dir.path(), "g2")["tier"], "by-hand");
}

#[test]
fn a_binding_moved_to_a_provider_reaching_the_same_cloud_and_region_keeps_its_record() {
    let dir = setup(&binding("team", "web", "g1", "{env: prod, tier: web}"));
    assert!(apply(dir.path(), &[]).status.success());
    // The provider renamed, the binding pointed at the new name, `tier` no longer declared.
    std::fs::write(
        dir.path().join("manifests/provider.yaml"),
        PROVIDER.replace("metadata: {name: aliyun}", "metadata: {name: aliyun-hz}"),
    )
    .unwrap();
    let moved = binding("team", "web", "g1", "{env: prod}").replace(
        "providerRef: {name: aliyun}",
        "providerRef: {name: aliyun-hz}",
    );
    std::fs::write(dir.path().join("manifests/bindings.yaml"), &moved).unwrap();
    let output = apply(dir.path(), &[]);
    let out = stdout(&output);
    assert!(output.status.success(), "{out}\n{}", stderr(&output));
    assert!(out.contains("- tier=web (pruned) on g1"), "{out}");
    assert_eq!(
        state_file(dir.path())["bindings"]["team/web"]["provider"],
        "aliyun-hz"
    );

    // Another region: the record would mean nothing there.
    std::fs::write(
        dir.path().join("manifests/provider.yaml"),
        PROVIDER
            .replace("metadata: {name: aliyun}", "metadata: {name: aliyun-sh}")
            .replace("region: cn-hangzhou", "region: cn-shanghai"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("manifests/bindings.yaml"),
        moved.replace("aliyun-hz", "aliyun-sh"),
    )
    .unwrap();
    let output = apply(dir.path(), &[]);
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let error = stderr(&output);
    assert!(error.contains("spec.providerRef.name"), "{error}");
    assert!(error.contains("alibaba cn-hangzhou"), "{error}");
}

/// A binding's age in the CLI is when a run first recorded it (kept in the state file), not
/// its name: a new binding whose name sorts first does not take a key from an established
/// one (before: `team/alpha`, "older by name", rewrote `team/zeta`'s value). Between two
/// bindings new to the same run, the message says that names decided.
#[test]
fn an_established_binding_keeps_its_key_against_a_new_one_that_sorts_first() {
    let dir = setup(&binding("team", "zeta", "g2", "{env: prod}"));
    let first = apply(dir.path(), &[]);
    assert!(first.status.success(), "{}", stdout(&first));
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join(".tagbinder/state.json")).unwrap(),
    )
    .unwrap();
    assert!(
        state["bindings"]["team/zeta"]["firstApplied"].is_string(),
        "{state}"
    );
    // NB: creation times have a second's granularity.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let both = [
        binding("team", "zeta", "g2", "{env: prod}"),
        binding("team", "alpha", "g2", "{env: dev}"),
        binding("team", "beta", "g1", "{owner: b}"),
        binding("team", "gamma", "g1", "{owner: g}"),
    ]
    .join("---\n");
    std::fs::write(dir.path().join("manifests/bindings.yaml"), both).unwrap();
    let second = apply(dir.path(), &["-o", "json"]);
    let report: Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(cloud_tags(dir.path(), "g2")["env"], "prod", "{report}");
    let by_name = |name: &str| {
        report["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["binding"] == name)
            .cloned()
            .unwrap()
    };
    let alpha = by_name("team/alpha");
    assert_eq!(alpha["reason"], "Conflict", "{alpha}");
    assert!(
        alpha["message"]
            .as_str()
            .unwrap()
            .contains("team/zeta wins"),
        "{alpha}"
    );
    assert!(
        !alpha["message"].as_str().unwrap().contains("as old as"),
        "{alpha}"
    );
    // Two bindings new to one run are as old as each other: names decide, and it is said.
    assert_eq!(cloud_tags(dir.path(), "g1")["owner"], "b", "{report}");
    let gamma = by_name("team/gamma");
    assert_eq!(gamma["reason"], "Conflict", "{gamma}");
    assert!(
        gamma["message"]
            .as_str()
            .unwrap()
            .contains("team/beta is as old as this binding"),
        "{gamma}"
    );
}
