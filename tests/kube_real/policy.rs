//! The admission policy of issue 24 on the real apiserver: `tagbinder policy admission`
//! installs with kubectl, its CEL type-checks against the TagPolicy and binding schemas, and
//! the server refuses a binding whose literal tags break a Deny TagPolicy (naming the policy
//! and the rule), admits a compliant one, and ignores Warn policies and other providers. On a
//! cluster of its own: the policy governs every binding of the cluster, and until the server's
//! informer of its parameters has filled, it refuses every binding's creation ("failed to
//! configure binding"), which the shared cluster's other scenarios met.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cluster::Cluster;
use crate::{Env, install_crds};

const NAMESPACE: &str = "real-admission";

fn policy(name: &str, enforcement: &str) -> String {
    format!(
        "apiVersion: tagbinder.io/v1alpha1\nkind: TagPolicy\nmetadata: {{name: {name}}}\n\
         spec:\n  match: {{providers: [admission-p]}}\n  rules:\n    \
         allowedValues: {{env: [prod, dev]}}\n    patterns: {{cost-center: '^CC-[0-9]{{4}}$'}}\n  \
         enforcement: {enforcement}\n"
    )
}

fn binding(name: &str, provider: &str, tags: &str) -> String {
    format!(
        "apiVersion: tagbinder.io/v1alpha1\nkind: ResourceTagBinding\nmetadata:\n  name: {name}\n  \
         namespace: {NAMESPACE}\nspec:\n  providerRef: {{name: {provider}}}\n  \
         resourceType: apiGroup\n  resourceIds: [g-1]\n  tags: {tags}\n"
    )
}

pub async fn the_admission_policy_refuses_a_binding_that_breaks_a_deny_policy(env: Arc<Env>) {
    let dir = env.dir.path().join("admission").join("cluster");
    let cluster = tokio::task::spawn_blocking(move || Cluster::start(&dir, false))
        .await
        .expect("the cluster starts");
    install_crds(&cluster).await;
    let cluster = &cluster;
    let printed = std::process::Command::new(env!("CARGO_BIN_EXE_tagbinder"))
        .args(["policy", "admission"])
        .output()
        .expect("tagbinder policy admission runs");
    assert!(printed.status.success());
    let manifests = String::from_utf8_lossy(&printed.stdout).into_owned();
    let applied = cluster
        .kubectl(&["apply", "-f", "-"], Some(&manifests))
        .await;
    assert!(
        applied.ok && applied.stderr.is_empty(),
        "{}\n{}",
        applied.stdout,
        applied.stderr
    );
    cluster
        .kubectl_ok(&["create", "namespace", NAMESPACE], None)
        .await;
    cluster
        .kubectl_ok(&["apply", "-f", "-"], Some(&policy("real-finops", "Deny")))
        .await;
    cluster
        .kubectl_ok(&["apply", "-f", "-"], Some(&policy("real-advice", "Warn")))
        .await;

    // NB: the server type-checks the policy's CEL in the background, and its informer of the
    // parameters fills after a moment: retry until the refusal shows.
    let dry_run = |text: String| async move {
        cluster
            .kubectl(&["apply", "--dry-run=server", "-f", "-"], Some(&text))
            .await
    };
    let bad = binding("bad", "admission-p", "{env: qa, cost-center: cc-1}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let refused = loop {
        let run = dry_run(bad.clone()).await;
        if !run.ok {
            break run;
        }
        assert!(
            Instant::now() < deadline,
            "the apiserver admitted a binding that breaks a Deny policy: {}",
            run.stdout
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    for expected in [
        r#"TagPolicy "real-finops" (Deny): rule allowedValues: env="qa" not allowed"#,
        "ValidatingAdmissionPolicy 'tagbinder-tag-policies'",
    ] {
        assert!(refused.stderr.contains(expected), "{}", refused.stderr);
    }
    assert!(
        !refused.stderr.contains("real-advice"),
        "{}",
        refused.stderr
    );
    // NB: the server names the first validation that fails; the pattern on its own.
    let run = dry_run(binding(
        "bad-pattern",
        "admission-p",
        "{env: prod, cost-center: cc-1}",
    ))
    .await;
    assert!(!run.ok, "admitted: {}", run.stdout);
    assert!(
        run.stderr.contains(
            r#"TagPolicy "real-finops" (Deny): rule patterns: cost-center="cc-1" does not match "^CC-[0-9]{4}$""#
        ),
        "{}",
        run.stderr
    );

    // A compliant binding, one of another provider, and one without tags are admitted.
    for (name, provider, tags) in [
        ("good", "admission-p", "{env: prod, cost-center: CC-1042}"),
        ("elsewhere", "other-p", "{env: qa}"),
        ("untagged", "admission-p", "{}"),
    ] {
        let run = dry_run(binding(name, provider, tags)).await;
        assert!(run.ok, "{name} refused: {}", run.stderr);
    }

    let checked = cluster
        .kubectl_ok(
            &[
                "get",
                "validatingadmissionpolicy",
                "tagbinder-tag-policies",
                "-o",
                "jsonpath={.status.typeChecking}",
            ],
            None,
        )
        .await;
    assert!(
        !checked.contains("warning"),
        "the policy's CEL type-checks with warnings: {checked}"
    );

    for name in ["real-finops", "real-advice"] {
        cluster
            .kubectl_ok(&["delete", "tagpolicy", name], None)
            .await;
    }
    cluster
        .kubectl_ok(&["delete", "-f", "-"], Some(&manifests))
        .await;
}
