//! Selector bindings (issue 13): a binding that binds every resource carrying given tags,
//! resolved on every pass; resources that start and stop matching; the safety cap; and
//! conflicts with an id-list binding decided by the resource, as for two id lists.

use std::sync::Arc;

use serde_json::json;
use tagbinder::api::{DeletionPolicy, ResourceSelector, ResourceTagBinding};

use crate::Env;
use crate::support::fixtures::{Tenant, condition, tags};
use crate::support::processes::CloudEmulator;

fn selector(
    tenant: &Tenant,
    name: &str,
    match_tags: &[(&str, &str)],
    declared: &[(&str, &str)],
) -> ResourceTagBinding {
    let mut binding = tenant.binding(name, &[], declared);
    binding.spec.resource_selector = Some(ResourceSelector {
        match_tags: tags(match_tags),
    });
    binding
}

fn selected(binding: &ResourceTagBinding) -> Option<(u32, Vec<String>)> {
    let selected = binding.status.as_ref()?.selected.as_ref()?;
    Some((selected.count, selected.first_ids.clone()))
}

fn synced(binding: &ResourceTagBinding) -> bool {
    condition(binding, "Ready").is_some_and(|c| c.status == "True" && c.reason == "Synced")
}

pub async fn a_selector_binding_follows_the_resources_that_carry_its_tags(env: Arc<Env>) {
    // NB: a cloud of its own: a selector reads every resource of the type.
    let dir = env.scratch("selector");
    let bulk: Vec<String> = (0..30).map(|i| format!("sel-bulk-{i:02}")).collect();
    let mut resources: Vec<(&str, &[(&str, &str)])> = vec![
        ("sel-a", &[("team", "web"), ("env", "prod")]),
        ("sel-b", &[("team", "web"), ("env", "prod")]),
        ("sel-c", &[("team", "web"), ("env", "dev")]),
        ("sel-d", &[]),
        ("sel-e", &[("team", "ops")]),
        ("sel-f", &[("team", "ops")]),
    ];
    // 30 resources x 2 tags: 60 entries, more than one page of 50.
    resources.extend(
        bulk.iter()
            .map(|id| (id.as_str(), &[("fleet", "bulk"), ("env", "prod")][..])),
    );
    let cloud = CloudEmulator::start(&dir, &resources).await;
    let tenant = Tenant::new(&env.client, &cloud.url, "select").await;

    // 1. A selector converges on what matches, and says what it selected.
    tenant
        .create(&selector(
            &tenant,
            "web",
            &[("team", "web"), ("env", "prod")],
            &[("cost-center", "cc-1")],
        ))
        .await;
    let web = tenant.wait("web", "Synced", synced).await;
    assert_eq!(
        selected(&web),
        Some((2, vec!["sel-a".into(), "sel-b".into()]))
    );
    let status = web.status.as_ref().expect("a status");
    assert_eq!(status.resources.map(|r| (r.total, r.synced)), Some((2, 2)));
    assert_eq!(status.applied.applied_resource_ids, ["sel-a", "sel-b"]);
    for id in ["sel-a", "sel-b"] {
        assert_eq!(
            cloud.tags(id).await,
            tags(&[("cost-center", "cc-1"), ("env", "prod"), ("team", "web")])
        );
    }
    assert_eq!(
        cloud.tags("sel-c").await,
        tags(&[("env", "dev"), ("team", "web")])
    );

    // 2. sel-b stops matching (Delete: its owned tag is pruned), sel-d starts (tagged).
    cloud.edit("sel-b", &[], &["env"]).await;
    cloud
        .edit("sel-d", &[("team", "web"), ("env", "prod")], &[])
        .await;
    let moved = tenant
        .wait("web", "sel-d selected instead of sel-b", |b| {
            synced(b) && selected(b) == Some((2, vec!["sel-a".into(), "sel-d".into()]))
        })
        .await;
    assert_eq!(
        moved
            .status
            .as_ref()
            .expect("a status")
            .applied
            .applied_resource_ids,
        ["sel-a", "sel-d"]
    );
    assert_eq!(cloud.tags("sel-b").await, tags(&[("team", "web")]));
    assert_eq!(
        cloud.tags("sel-d").await,
        tags(&[("cost-center", "cc-1"), ("env", "prod"), ("team", "web")])
    );

    // 3. Orphan: a resource that stops matching keeps the tags, and leaves the record.
    let mut ops = selector(&tenant, "ops", &[("team", "ops")], &[("owner", "ops")]);
    ops.spec.deletion_policy = DeletionPolicy::Orphan;
    tenant.create(&ops).await;
    tenant
        .wait("ops", "Synced on both", |b| {
            synced(b) && selected(b).is_some_and(|(n, _)| n == 2)
        })
        .await;
    cloud.edit("sel-f", &[], &["team"]).await;
    let orphaned = tenant
        .wait("ops", "sel-f released", |b| {
            synced(b) && selected(b) == Some((1, vec!["sel-e".into()]))
        })
        .await;
    assert_eq!(
        orphaned
            .status
            .as_ref()
            .expect("a status")
            .applied
            .applied_resource_ids,
        ["sel-e"]
    );
    assert_eq!(cloud.tags("sel-f").await, tags(&[("owner", "ops")]));
    // A refused resolution releases nothing, Orphan or not: the record stays whole.
    tenant
        .bindings
        .patch(
            "ops",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&json!({"spec": {"maxResources": 1}})),
        )
        .await
        .expect("patch the binding");
    cloud.edit("sel-f", &[("team", "ops")], &[]).await;
    let refused = tenant.not_ready("ops", "TooManyResources").await;
    assert_eq!(
        refused
            .status
            .as_ref()
            .expect("a status")
            .applied
            .applied_resource_ids,
        ["sel-e"]
    );

    // 4. More than a page is selected whole; more than maxResources writes nothing.
    tenant
        .create(&selector(
            &tenant,
            "bulk",
            &[("fleet", "bulk")],
            &[("batch", "b1")],
        ))
        .await;
    let mut wide = selector(&tenant, "wide", &[("fleet", "bulk")], &[("other", "x")]);
    wide.spec.max_resources = Some(25);
    tenant.create(&wide).await;
    let bulk_binding = tenant.wait("bulk", "Synced", synced).await;
    assert_eq!(selected(&bulk_binding).map(|(n, _)| n), Some(30));
    assert_eq!(
        cloud.tags("sel-bulk-29").await,
        tags(&[("batch", "b1"), ("env", "prod"), ("fleet", "bulk")])
    );
    let stalled = tenant.not_ready("wide", "TooManyResources").await;
    let ready = condition(&stalled, "Ready").expect("Ready");
    assert!(
        ready
            .message
            .contains("matches 30 resources, more than maxResources (25)"),
        "{}",
        ready.message
    );
    assert!(
        condition(&stalled, "Stalled").is_some_and(|c| c.status == "True"),
        "kstatus Stalled"
    );
    let status = stalled.status.as_ref().expect("a status");
    assert!(status.applied.is_empty(), "nothing written, nothing owned");
    assert_eq!(
        selected(&stalled).map(|(n, ids)| (n, ids.len())),
        Some((30, 10))
    );
    for id in &bulk {
        assert!(!cloud.tags(id).await.contains_key("other"), "{id}");
    }

    // 5. A younger id-list binding yields to the older selector on a selected resource.
    tenant
        .create(&tenant.binding("late", &["sel-a"], &[("cost-center", "cc-9")]))
        .await;
    let late = tenant.not_ready("late", "Conflict").await;
    let conflicts = &late.status.as_ref().expect("a status").conflicts;
    assert_eq!(conflicts.len(), 1, "{conflicts:?}");
    assert_eq!(conflicts[0].resource_id, "sel-a");
    assert_eq!(conflicts[0].key, "cost-center");
    assert_eq!(conflicts[0].winner, "e2e-select/web");
    assert_eq!(cloud.tags("sel-a").await["cost-center"], "cc-1");

    // 6. Raising the cap is a spec change: the stalled binding converges.
    tenant
        .bindings
        .patch(
            "wide",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&json!({"spec": {"maxResources": 30}})),
        )
        .await
        .expect("patch the binding");
    tenant.wait("wide", "Synced", synced).await;
    assert_eq!(cloud.tags("sel-bulk-00").await["other"], "x");
}
