//! The CRDs on the real apiserver: installed by `kubectl apply`, their schema and CEL rules
//! enforced by the server itself, and their printer columns as `kubectl get` shows them.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::crd_cases::{
    Refused, binding, binding_cases, provider, refused_updates, selector_binding, selector_cases,
    with,
};
use crate::{CRDS, Env};

pub async fn the_crds_install_with_kubectl_and_are_established(env: Arc<Env>) {
    let (applied, warnings) = &env.crd_apply;
    // NB: kubectl prints the apiserver's warnings (an unrecognized format, say) on stderr.
    assert_eq!(warnings, "", "no warning when the CRDs are applied");
    for crd in CRDS {
        let name = crd.trim_start_matches("crd/");
        assert!(
            applied.contains(&format!(
                "customresourcedefinition.apiextensions.k8s.io/{name} created"
            )),
            "{applied}"
        );
        let conditions = env
            .cluster
            .kubectl_ok(
                &[
                    "get",
                    crd,
                    "-o",
                    r#"jsonpath={range .status.conditions[*]}{.type}={.status} {end}"#,
                ],
                None,
            )
            .await;
        assert!(
            conditions.contains("NamesAccepted=True") && conditions.contains("Established=True"),
            "{crd}: {conditions}"
        );
    }
    // NB: applying the same CRDs again changes nothing (what `helm upgrade` and a GitOps
    // resync do).
    let again = std::process::Command::new(env!("CARGO_BIN_EXE_tagbinder"))
        .arg("crd")
        .output()
        .expect("tagbinder crd runs");
    let again = env
        .cluster
        .kubectl_ok(
            &["apply", "-f", "-"],
            Some(&String::from_utf8_lossy(&again.stdout)),
        )
        .await;
    assert_eq!(again.matches(" unchanged").count(), CRDS.len(), "{again}");
}

/// Gives a case's object a name and namespace of its own.
fn placed(mut object: Value, namespace: &str, index: usize) -> Value {
    object["metadata"]["namespace"] = json!(namespace);
    object["metadata"]["name"] = json!(format!("case-{index}"));
    object
}

pub async fn the_apiserver_refuses_each_bad_binding_with_the_schemas_message(env: Arc<Env>) {
    let namespace = "schema-refused";
    env.cluster
        .kubectl_ok(&["create", "namespace", namespace], None)
        .await;
    let cases: Vec<Refused> = binding_cases()
        .into_iter()
        .chain(selector_cases())
        .chain(apiserver_only_cases())
        .collect();
    let mut failures = Vec::new();
    for (index, case) in cases.iter().enumerate() {
        let mut object = placed(case.object.clone(), namespace, index);
        if case.name == "an uppercase name" {
            object["metadata"]["name"] = json!("Web");
        }
        let run = env
            .cluster
            .kubectl(&["apply", "-f", "-"], Some(&object.to_string()))
            .await;
        if run.ok {
            failures.push(format!("{}: admitted ({})", case.name, run.stdout.trim()));
        } else if !run.stderr.contains(case.apiserver) {
            failures.push(format!(
                "{}: refused with {:?}, wanted {:?}",
                case.name,
                run.stderr.trim(),
                case.apiserver
            ));
        } else if run.stderr.contains("evaluating rule") {
            // NB: a CEL rule that fails on a value instead of answering adds a confusing
            // error beside the refusal a user needs.
            failures.push(format!(
                "{}: a rule failed to evaluate: {:?}",
                case.name,
                run.stderr.trim()
            ));
        }
    }
    let stored = env
        .cluster
        .kubectl_ok(&["get", "rtb", "-n", namespace, "-o", "name"], None)
        .await;
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    assert_eq!(stored.trim(), "", "nothing refused is stored");
}

/// What the apiserver refuses before the schema's rules, and the CLI refuses too
/// (`tests/bad_input.rs`); the schema evaluated without an API server does not see these.
fn apiserver_only_cases() -> Vec<Refused> {
    let mut unknown_status = binding();
    unknown_status["status"] = json!({"appliedTags": {"env": "prod"}, "x": 1});
    vec![
        Refused {
            name: "an unknown field",
            object: with(&["spec", "tagz"], json!({"x": "y"})),
            interpreted: "",
            apiserver: "strict decoding error: unknown field \"spec.tagz\"",
        },
        Refused {
            name: "an unknown field under status",
            object: unknown_status,
            interpreted: "",
            apiserver: "strict decoding error: unknown field \"status.x\"",
        },
        Refused {
            name: "an uppercase name",
            object: binding(),
            interpreted: "",
            apiserver: "metadata.name: Invalid value: \"Web\": a lowercase RFC 1123 subdomain",
        },
    ]
}

pub async fn the_apiserver_admits_valid_objects_and_refuses_immutable_changes(env: Arc<Env>) {
    let namespace = "schema-admitted";
    env.cluster
        .kubectl_ok(&["create", "namespace", namespace], None)
        .await;
    let mut capped = selector_binding(json!({"team": "web"}));
    capped["spec"]["maxResources"] = json!(500);
    let mut provider = provider();
    provider["metadata"]["name"] = json!("schema-admitted");
    let valid = [
        placed(binding(), namespace, 0),
        placed(selector_binding(json!({"team": "web"})), namespace, 1),
        placed(capped, namespace, 2),
        provider,
    ];
    for object in &valid {
        env.cluster.apply(std::slice::from_ref(object)).await;
    }
    // The defaults of the schema are applied by the server.
    let stored = env
        .cluster
        .kubectl_ok(
            &[
                "get",
                "rtb",
                "case-0",
                "-n",
                namespace,
                "-o",
                "jsonpath={.spec}",
            ],
            None,
        )
        .await;
    let spec: Value = serde_json::from_str(&stored).expect("the spec as JSON");
    for (field, default) in [
        ("deletionPolicy", json!("Delete")),
        ("interval", json!("10m")),
        ("mode", json!("Enforce")),
        ("suspend", json!(false)),
    ] {
        assert_eq!(spec[field], default, "{field} defaulted in {spec}");
    }

    for (what, new, message) in refused_updates() {
        let run = env
            .cluster
            .kubectl(
                &["apply", "-f", "-"],
                Some(&placed(new, namespace, 0).to_string()),
            )
            .await;
        assert!(
            !run.ok && run.stderr.contains(message),
            "{what}: wanted a refusal with {message:?}, got {run:?}"
        );
    }
    let retagged = placed(
        with(&["spec", "tags"], json!({"env": "dev", "team": "web"})),
        namespace,
        0,
    );
    let out = env.cluster.apply(&[retagged]).await;
    assert!(
        out.contains("configured"),
        "a tag change is admitted: {out}"
    );
}

/// A `kubectl get` table as a user reads it: each row's cells cut at the columns of the
/// header above it (a blank cell stays in its column), tables separated by blank lines.
pub fn tables(text: &str) -> Vec<Vec<Vec<String>>> {
    text.split("\n\n")
        .filter(|block| !block.trim().is_empty())
        .map(|block| {
            let mut lines = block.lines();
            let header = lines.next().unwrap_or_default();
            let starts: Vec<usize> = header
                .char_indices()
                .filter(|&(i, c)| c != ' ' && (i == 0 || header.as_bytes()[i - 1] == b' '))
                .map(|(i, _)| i)
                .collect();
            std::iter::once(header)
                .chain(lines)
                .map(|line| {
                    starts
                        .iter()
                        .enumerate()
                        .map(|(n, &start)| {
                            let end = starts.get(n + 1).copied().unwrap_or(line.len());
                            line.get(start..end.min(line.len()))
                                .unwrap_or("")
                                .trim()
                                .to_string()
                        })
                        .collect()
                })
                .collect()
        })
        .collect()
}

pub async fn printer_columns_read_as_the_readme_shows(env: Arc<Env>) {
    let tenant =
        crate::support::fixtures::Tenant::new(&env.client, &env.cloud.url, "columns").await;
    tenant
        .create(&tenant.binding("web", &["columns-g1"], &[("env", "prod")]))
        .await;
    env.cluster
        .kubectl_ok(
            &[
                "wait",
                "--for=condition=Ready",
                "rtb/web",
                "-n",
                &tenant.namespace,
                "--timeout=90s",
            ],
            None,
        )
        .await;
    let rtb = tables(
        &env.cluster
            .kubectl_ok(&["get", "rtb", "-n", &tenant.namespace], None)
            .await,
    );
    assert_eq!(
        rtb[0][0],
        [
            "NAME", "READY", "REASON", "SYNCED", "TOTAL", "DRIFTED", "AGE"
        ],
        "{rtb:?}"
    );
    // NB: DRIFTED stays blank in Enforce mode, which sets no Drifted condition.
    assert_eq!(
        rtb[0][1][..6],
        ["web", "True", "Synced", "1", "1", ""],
        "{rtb:?}"
    );
    assert!(!rtb[0][1][6].is_empty(), "an AGE: {rtb:?}");

    let tp = tables(
        &env.cluster
            .kubectl_ok(&["get", "tp", &tenant.provider], None)
            .await,
    );
    assert_eq!(
        tp[0][0],
        [
            "NAME",
            "CLOUD",
            "REGION",
            "READY",
            "REASON",
            "LAST-CALL",
            "AGE"
        ],
        "{tp:?}"
    );
    assert_eq!(
        tp[0][1][..3],
        [tenant.provider.as_str(), "alibaba", "cn-hangzhou"]
    );

    // Both kinds under their category, one table each, as the README's `kubectl get tagging -A`.
    let all = tables(
        &env.cluster
            .kubectl_ok(&["get", "tagging", "-A"], None)
            .await,
    );
    let provider = format!("tagprovider.tagbinder.io/{}", tenant.provider);
    assert!(
        all.iter().any(|table| table[0]
            == [
                "NAMESPACE",
                "NAME",
                "CLOUD",
                "REGION",
                "READY",
                "REASON",
                "LAST-CALL",
                "AGE"
            ]
            && table
                .iter()
                .any(|row| row[..4] == ["", provider.as_str(), "alibaba", "cn-hangzhou"])),
        "{all:?}"
    );
    assert!(
        all.iter().any(|table| table[0]
            == [
                "NAMESPACE",
                "NAME",
                "READY",
                "REASON",
                "SYNCED",
                "TOTAL",
                "DRIFTED",
                "AGE"
            ]
            && table.iter().any(|row| row[..7]
                == [
                    tenant.namespace.as_str(),
                    "resourcetagbinding.tagbinder.io/web",
                    "True",
                    "Synced",
                    "1",
                    "1",
                    ""
                ])),
        "{all:?}"
    );
}
