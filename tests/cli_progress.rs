//! Progress of a long `apply` (issue 25, item 5), seen as a user sees it: the built binary
//! under `script` (util-linux), whose pseudo-terminal is the binary's stderr. The bar shows the
//! calls made against the bound, the bindings passed, the rate and the time left; it stays out
//! of pipes, of `-o json` and of `--progress=never`, and `--progress=always` forces it.

use std::path::Path;
use std::process::Command;

/// A provider limited to 40 calls/s, and `bindings` bindings of one resource each with a tag
/// of their own (one write call each), with the embedded cloud's inventory.
fn fleet(dir: &Path, bindings: usize) -> std::path::PathBuf {
    let mut docs = vec![
        "apiVersion: tagbinder.io/v1alpha1\nkind: TagProvider\nmetadata: {name: p}\nspec:\n  \
         cloud: alibaba\n  region: cn-hangzhou\n  alibaba: {product: apigateway}\n  \
         rateLimit: {requestsPerSecond: 40, burst: 1}\n  credentials: {secretRef: {namespace: \
         tagbinder-system, name: creds}}"
            .to_string(),
        "apiVersion: v1\nkind: Secret\nmetadata: {name: creds, namespace: tagbinder-system}\n\
         stringData: {accessKeyId: LTAI5tProgressKey, accessKeySecret: progress-secret}"
            .to_string(),
    ];
    let mut inventory = "apiVersion: emulator.tagbinder.io/v1alpha1\nkind: CloudInventory\n\
                         accounts:\n  - {accessKeyId: LTAI5tProgressKey, accessKeySecret: \
                         progress-secret}\nresources:\n"
        .to_string();
    for i in 0..bindings {
        docs.push(format!(
            "apiVersion: tagbinder.io/v1alpha1\nkind: ResourceTagBinding\nmetadata: {{name: b{i}, \
             namespace: team}}\nspec:\n  providerRef: {{name: p}}\n  resourceType: apiGroup\n  \
             resourceIds: [g{i}]\n  tags: {{owner: team-{i}}}"
        ));
        inventory.push_str(&format!(
            "  - {{cloud: alibaba, region: cn-hangzhou, type: apiGroup, id: g{i}}}\n"
        ));
    }
    docs.push(inventory);
    let path = dir.join("fleet.yaml");
    std::fs::write(&path, docs.join("\n---\n")).expect("write the fleet");
    path
}

/// `tagbinder apply` of a fresh fleet in a scratch directory with `flags`, under a
/// pseudo-terminal (`script`) or with stderr piped: (exit success, stderr as seen).
fn apply(flags: &[&str], terminal: bool) -> (bool, String) {
    let dir = tempfile::tempdir().expect("a scratch directory");
    let manifests = fleet(dir.path(), 60);
    let mut args: Vec<String> = vec![
        env!("CARGO_BIN_EXE_tagbinder").to_string(),
        "apply".to_string(),
        "-f".to_string(),
        manifests.display().to_string(),
        "--embedded-cloud".to_string(),
    ];
    args.extend(flags.iter().map(|f| f.to_string()));
    if terminal {
        let typescript = dir.path().join("typescript");
        // NB: `script -e` exits as the command does; -f flushes; its terminal is 80 columns.
        let output = Command::new("script")
            .args(["-qefc", &args.join(" ")])
            .arg(&typescript)
            .current_dir(dir.path())
            .env("TERM", "xterm")
            .env("COLUMNS", "200")
            .output()
            .expect("run script (util-linux)");
        let seen = std::fs::read_to_string(&typescript).unwrap_or_default();
        (output.status.success(), seen)
    } else {
        let output = Command::new(&args[0])
            .args(&args[1..])
            .current_dir(dir.path())
            .output()
            .expect("run tagbinder");
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

const BAR: &str = "calls (bound)";

#[test]
fn a_terminal_shows_calls_against_the_bound_bindings_rate_and_time_left() {
    let (ok, seen) = apply(&[], true);
    assert!(ok, "{seen}");
    assert!(seen.contains(BAR), "the bar in:\n{seen}");
    // NB: 60 tag calls and two reads (50 resources a read): the bound, from the declarations.
    assert!(seen.contains("/62 calls (bound)"), "{seen}");
    assert!(seen.contains("bindings 0/60"), "{seen}");
    assert!(seen.contains("ETA 2s at 40/s"), "{seen}");
    assert!(seen.contains("/s |"), "the current rate in:\n{seen}");
    assert!(seen.contains("team/b59"), "the report follows:\n{seen}");
}

#[test]
fn no_progress_in_a_pipe_with_json_or_when_asked_for_none() {
    let (ok, piped) = apply(&[], false);
    assert!(ok && !piped.contains(BAR), "{piped}");
    let (ok, json) = apply(&["-o", "json"], true);
    assert!(ok && !json.contains(BAR), "{json}");
    let (ok, never) = apply(&["--progress=never"], true);
    assert!(ok && !never.contains(BAR), "{never}");
    let (ok, plain) = apply(&["--no-color"], true);
    assert!(ok && !plain.contains(BAR), "{plain}");
}

#[test]
fn always_shows_it_in_a_pipe_too() {
    let (ok, piped) = apply(&["--progress=always"], false);
    assert!(ok, "{piped}");
    assert!(piped.contains(BAR), "{piped}");
}
