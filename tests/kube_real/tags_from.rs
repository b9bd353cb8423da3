//! Tags from Kubernetes (issue 23) on the real apiserver, with the chart's RBAC and nothing
//! more: a binding takes a tag from its namespace's label (the controller's metadata watch of
//! Namespaces, as the chart grants it) and from its own name, the provider adds a default;
//! `kubectl label` rewrites the value in the cloud; a required label removed stalls the
//! binding with `ValueNotFound` and writes nothing; `kubectl patch` of the provider's
//! `defaultTags` reaches the resource.

use std::sync::Arc;

use tagbinder::api::{FieldRef, TagFrom, ValueSource};

use crate::Env;
use crate::support::fixtures::{Tenant, eventually, provider, tags};

fn tag_from(key: &str, value_from: ValueSource) -> TagFrom {
    TagFrom {
        key: key.into(),
        value_from,
        optional: false,
    }
}

/// Waits until the cloud tags of `id` are `want`.
async fn cloud_tags_become(env: &Env, id: &str, want: &[(&str, &str)]) {
    let want = tags(want);
    eventually(&format!("the tags of {id}"), || async {
        let now = env.cloud.tags(id).await;
        if now == want {
            Ok(())
        } else {
            Err(format!("{now:?}, wanted {want:?}"))
        }
    })
    .await;
}

pub async fn namespace_labels_and_provider_defaults_render_on_the_real_apiserver(env: Arc<Env>) {
    let mut spec = provider("realtags", &env.cloud.url, "realtags-creds");
    spec.spec.default_tags = tags(&[("managed-by", "tagbinder")]);
    let tenant = Tenant::with_provider(&env.client, "realtags", spec).await;
    let namespace = tenant.namespace.clone();
    let kubectl = |args: Vec<String>| {
        let env = env.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            env.cluster.kubectl_ok(&args, None).await
        }
    };
    let owned = |args: &[&str]| args.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    kubectl(owned(&["label", "namespace", &namespace, "team=web"])).await;

    let mut binding = tenant.binding("web", &["tagsfrom-g1"], &[("env", "prod")]);
    // NB: no sweep within the scenario: only the watches of the namespace and the provider
    // bring the passes after the first.
    binding.spec.interval = "1h".into();
    binding.spec.tags_from = vec![
        tag_from(
            "team",
            ValueSource {
                namespace_label: Some("team".into()),
                ..ValueSource::default()
            },
        ),
        tag_from(
            "k8s-binding",
            ValueSource {
                field_ref: Some(FieldRef {
                    field_path: "metadata.name".into(),
                }),
                ..ValueSource::default()
            },
        ),
    ];
    tenant.create(&binding).await;
    kubectl(owned(&[
        "wait",
        "--for=condition=Ready",
        "rtb/web",
        "-n",
        &namespace,
        "--timeout=90s",
    ]))
    .await;
    let desired = kubectl(owned(&[
        "get",
        "rtb/web",
        "-n",
        &namespace,
        "-o",
        "jsonpath={.status.desiredTags}",
    ]))
    .await;
    let desired: serde_json::Value = serde_json::from_str(&desired).expect("desiredTags JSON");
    assert_eq!(
        desired,
        serde_json::json!({"env": "prod", "team": "web", "k8s-binding": "web", "managed-by": "tagbinder"})
    );
    let mut expected = vec![
        ("env", "prod"),
        ("k8s-binding", "web"),
        ("managed-by", "tagbinder"),
        ("team", "web"),
    ];
    cloud_tags_become(&env, "tagsfrom-g1", &expected).await;

    // A relabelled namespace: the owned value is rewritten.
    kubectl(owned(&[
        "label",
        "namespace",
        &namespace,
        "team=payments",
        "--overwrite",
    ]))
    .await;
    expected[3] = ("team", "payments");
    cloud_tags_become(&env, "tagsfrom-g1", &expected).await;

    // A required label removed: Stalled, ValueNotFound, naming the namespace and the label;
    // the cloud keeps what it had.
    kubectl(owned(&["label", "namespace", &namespace, "team-"])).await;
    kubectl(owned(&[
        "wait",
        "--for=jsonpath={.status.conditions[?(@.type==\"Ready\")].reason}=ValueNotFound",
        "rtb/web",
        "-n",
        &namespace,
        "--timeout=90s",
    ]))
    .await;
    let message = kubectl(owned(&[
        "get",
        "rtb/web",
        "-n",
        &namespace,
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].message}",
    ]))
    .await;
    assert!(
        message.contains(&namespace) && message.contains("team"),
        "{message}"
    );
    assert_eq!(env.cloud.tags("tagsfrom-g1").await, tags(&expected));

    // The label back, and a provider default changed with `kubectl patch`.
    kubectl(owned(&["label", "namespace", &namespace, "team=web"])).await;
    kubectl(owned(&[
        "patch",
        "tagprovider/realtags",
        "--type=merge",
        "-p",
        r#"{"spec":{"defaultTags":{"managed-by":"platform"}}}"#,
    ]))
    .await;
    cloud_tags_become(
        &env,
        "tagsfrom-g1",
        &[
            ("env", "prod"),
            ("k8s-binding", "web"),
            ("managed-by", "platform"),
            ("team", "web"),
        ],
    )
    .await;
}
