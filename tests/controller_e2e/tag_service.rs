//! The shared controller on Alibaba Cloud's Tag service: a provider with `alibaba.product:
//! tag` (V3 signatures) against a cloud emulator of its own whose inventory holds ECS
//! instances and OSS buckets by `PRODUCT:TYPE`. Bindings converge by ARN, leave foreign and
//! system tags alone, report a missing bucket alone, and prune.

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};
use tokio::process::Child;

use crate::Env;
use crate::support::fixtures::{Tenant, eventually, provider, tags};
use crate::support::processes::{KEY_ID, KEY_SECRET, http, start_emulator};
use tagbinder::api::AlibabaSignatureVersion;

/// One resource of the inventory: `PRODUCT:TYPE`, id, tags.
type CloudResource<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);

/// `tagbinder emulator` with Tag-service resources.
async fn tag_service_cloud(env: &Env, resources: &[CloudResource<'_>]) -> (Child, String) {
    let resources: Vec<Value> = resources
        .iter()
        .map(|(kind, id, tags)| {
            let tags: BTreeMap<&str, &str> = tags.iter().copied().collect();
            json!({"cloud": "alibaba", "region": "cn-hangzhou", "type": kind, "id": id, "tags": tags})
        })
        .collect();
    let inventory = json!({
        "accounts": [{"accessKeyId": KEY_ID, "accessKeySecret": KEY_SECRET}],
        "resources": resources,
    });
    let path = env.scratch("tag-service").join("inventory.json");
    std::fs::write(&path, inventory.to_string()).expect("write the inventory");
    start_emulator(
        &["--inventory".as_ref(), path.as_os_str()],
        "the Tag-service emulator",
    )
    .await
}

/// The tags of one resource in the emulator now.
async fn cloud_tags(url: &str, kind: &str, id: &str) -> BTreeMap<String, String> {
    let (code, body) = http("GET", &format!("{url}/_emulator/state"), None).await;
    assert_eq!(code, 200, "{body}");
    let state: Value = serde_json::from_str(&body).expect("JSON state");
    serde_json::from_value(state["resources"]["alibaba"][kind][id]["tags"].clone())
        .unwrap_or_else(|e| panic!("tags of {kind} {id} in {state}: {e}"))
}

pub async fn the_tag_service_converges_prunes_and_reports_a_missing_resource(env: Arc<Env>) {
    let system = ("acs:rm:rgId", "rg-e2e");
    let (_cloud, url) = tag_service_cloud(
        &env,
        &[
            (
                "ecs:instance",
                "i-e2e1",
                &[("created-by", "console"), system],
            ),
            ("ecs:instance", "i-e2e2", &[]),
            ("oss:bucket", "e2e-bucket", &[]),
        ],
    )
    .await;
    let mut tag_provider = provider("tagsvc", &url, "tagsvc-creds");
    let settings = tag_provider
        .spec
        .alibaba
        .as_mut()
        .expect("Alibaba settings");
    settings.product = Some("tag".into());
    settings.signature_version = Some(AlibabaSignatureVersion::V3);
    let tenant = Tenant::with_provider(&env.client, "tagsvc", tag_provider).await;

    let mut instances = tenant.binding(
        "instances",
        &["i-e2e1", "i-e2e2"],
        &[("env", "prod"), ("owner", "team-web")],
    );
    instances.spec.resource_type = "ecs:instance".into();
    tenant.create(&instances).await;
    let mut buckets = tenant.binding(
        "buckets",
        &["e2e-bucket", "e2e-gone"],
        &[("retention", "30d")],
    );
    buckets.spec.resource_type = "oss:bucket".into();
    tenant.create(&buckets).await;

    tenant.ready("instances").await;
    let first = cloud_tags(&url, "ecs:instance", "i-e2e1").await;
    assert_eq!(
        first,
        tags(&[
            ("env", "prod"),
            ("owner", "team-web"),
            ("created-by", "console"),
            system
        ])
    );
    assert_eq!(
        cloud_tags(&url, "ecs:instance", "i-e2e2").await,
        tags(&[("env", "prod"), ("owner", "team-web")])
    );

    let partial = tenant.not_ready("buckets", "PartialFailure").await;
    let status = partial.status.expect("a status");
    assert_eq!(status.failures.len(), 1, "{:?}", status.failures);
    assert_eq!(status.failures[0].resource_id, "e2e-gone");
    assert_eq!(status.failures[0].reason, "NotFound");
    assert_eq!(
        cloud_tags(&url, "oss:bucket", "e2e-bucket").await,
        tags(&[("retention", "30d")]),
        "the other bucket converged"
    );

    tenant
        .bindings
        .patch(
            "instances",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"tags": {"owner": null}}})),
        )
        .await
        .expect("patch the binding");
    eventually("owner pruned from i-e2e1", || async {
        let now = cloud_tags(&url, "ecs:instance", "i-e2e1").await;
        if now.contains_key("owner") {
            Err(format!("{now:?}"))
        } else {
            Ok(())
        }
    })
    .await;
    tenant.ready("instances").await;
    assert_eq!(
        cloud_tags(&url, "ecs:instance", "i-e2e1").await,
        tags(&[("env", "prod"), ("created-by", "console"), system]),
        "the foreign and the system tag are kept"
    );
    assert_eq!(
        cloud_tags(&url, "ecs:instance", "i-e2e2").await,
        tags(&[("env", "prod")])
    );
}
