//! The stand-in itself, on a server of its own with no controller: the apiserver behaviour
//! that the other scenarios rely on (what they assert is only as good as this).

use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{
    DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::core::GroupVersionKind;
use kube::discovery::{Discovery, Scope};
use kube::{Api, ResourceExt};
use serde_json::json;
use tagbinder::api::ResourceTagBinding;

use crate::Env;
use crate::support::fixtures::{Crds, binding, create_namespace, version};

fn api_error(result: Result<impl std::fmt::Debug, kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(status)) => (status.code, status.reason.clone()),
        other => panic!("an API error, not {other:?}"),
    }
}

pub async fn the_stand_in_serves_discovery_and_apiserver_semantics(env: Arc<Env>) {
    let (server, client) = env.own_server(Crds::Both).await;

    let discovery = Discovery::new(client.clone())
        .run()
        .await
        .expect("discovery");
    let gvk = GroupVersionKind::gvk("tagbinder.io", "v1alpha1", "ResourceTagBinding");
    let (resource, capabilities) = discovery.resolve_gvk(&gvk).expect("the CRD is discovered");
    assert_eq!(resource.plural, "resourcetagbindings");
    assert_eq!(capabilities.scope, Scope::Namespaced);
    assert!(
        capabilities
            .subresources
            .iter()
            .any(|(r, _)| r.plural == "status")
    );
    let lease = GroupVersionKind::gvk("coordination.k8s.io", "v1", "Lease");
    assert!(discovery.resolve_gvk(&lease).is_some());

    create_namespace(&client, "e2e-semantics", &[("team", "web")]).await;
    let namespaces = Api::<Namespace>::all(client.clone())
        .list(&ListParams::default().labels("team=web"))
        .await
        .expect("list namespaces");
    assert_eq!(
        namespaces
            .items
            .iter()
            .map(|n| n.name_any())
            .collect::<Vec<_>>(),
        vec!["e2e-semantics"]
    );

    let secrets: Api<Secret> = Api::namespaced(client.clone(), "e2e-semantics");
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some("s".into()),
            ..ObjectMeta::default()
        },
        string_data: Some([("k".to_string(), "v".to_string())].into()),
        ..Secret::default()
    };
    let created = secrets
        .create(&PostParams::default(), &secret)
        .await
        .expect("create a Secret");
    assert_eq!(
        created.namespace().as_deref(),
        Some("e2e-semantics"),
        "the namespace comes from the URL"
    );
    assert_eq!(created.data.expect("data")["k"].0, b"v");
    assert!(created.string_data.is_none());
    assert_eq!(
        api_error(secrets.create(&PostParams::default(), &secret).await),
        (409, "AlreadyExists".into())
    );
    assert!(secrets.get_opt("missing").await.expect("get_opt").is_none());
    let by_name = secrets
        .list(&ListParams::default().fields("metadata.name=s"))
        .await
        .expect("list");
    assert_eq!(by_name.items.len(), 1);
    assert!(
        secrets
            .list(&ListParams::default().fields("metadata.name=t"))
            .await
            .expect("list")
            .items
            .is_empty()
    );
    for name in ["s2", "s3"] {
        let mut more = secret.clone();
        more.metadata.name = Some(name.into());
        secrets
            .create(&PostParams::default(), &more)
            .await
            .expect("create a Secret");
    }
    let mut paged = Vec::new();
    let mut page = ListParams::default().limit(2);
    loop {
        let list = secrets.list(&page).await.expect("a page");
        paged.extend(list.items.iter().map(|s| s.name_any()));
        match list.metadata.continue_ {
            Some(token) if !token.is_empty() => page = page.continue_token(&token),
            _ => break,
        }
    }
    assert_eq!(paged, ["s", "s2", "s3"], "pages of `limit`, in order");
    let strategic = json!({"metadata": {"labels": {"merged": "yes"}}});
    let merged = secrets
        .patch("s", &PatchParams::default(), &Patch::Strategic(&strategic))
        .await
        .expect("a strategic merge patch");
    assert_eq!(
        merged.labels().get("merged").map(String::as_str),
        Some("yes")
    );
    assert_eq!(
        api_error(secrets.get("missing").await),
        (404, "NotFound".into())
    );

    let bindings: Api<ResourceTagBinding> = Api::namespaced(client.clone(), "e2e-semantics");
    let mut web = binding("web", "p", &["g1"], &[("env", "prod")]);
    web.status = Some(Default::default());
    web.status.as_mut().expect("status").observed_generation = Some(7);
    let web = bindings
        .create(&PostParams::default(), &web)
        .await
        .expect("create a binding");
    assert_eq!(web.metadata.generation, Some(1));
    assert!(web.uid().is_some() && web.metadata.creation_timestamp.is_some());
    assert!(web.status.is_none(), "status is not set on create");

    let (list_rv, mut watch) = {
        let list = bindings.list(&ListParams::default()).await.expect("list");
        let rv = list
            .metadata
            .resource_version
            .expect("a list resourceVersion");
        let watch = bindings
            .watch(&WatchParams::default(), &rv)
            .await
            .expect("watch")
            .boxed();
        (rv, watch)
    };

    let status_patch = json!({"status": {"observedGeneration": 1}, "spec": {"interval": "9m"}});
    let after_status = bindings
        .patch_status("web", &PatchParams::default(), &Patch::Merge(&status_patch))
        .await
        .expect("patch the status");
    assert_eq!(
        after_status.metadata.generation,
        Some(1),
        "status writes keep the generation"
    );
    assert_eq!(
        after_status.spec.interval, "2s",
        "a status write ignores the spec"
    );
    assert!(version(&after_status).parse::<u64>().unwrap() > version(&web).parse::<u64>().unwrap());
    match watch.try_next().await.expect("a watch event") {
        Some(WatchEvent::Modified(modified)) => {
            assert_eq!(version(&modified), version(&after_status))
        }
        other => panic!("a MODIFIED event after {list_rv}, not {other:?}"),
    }

    let main_patch =
        json!({"metadata": {"labels": {"a": "b"}}, "status": {"observedGeneration": 5}});
    let labelled = bindings
        .patch("web", &PatchParams::default(), &Patch::Merge(&main_patch))
        .await
        .expect("label");
    assert_eq!(
        labelled.metadata.generation,
        Some(1),
        "metadata changes keep the generation"
    );
    assert_eq!(
        labelled.status.as_ref().and_then(|s| s.observed_generation),
        Some(1),
        "the main resource ignores status"
    );
    let again = bindings
        .patch("web", &PatchParams::default(), &Patch::Merge(&main_patch))
        .await
        .expect("no-op");
    assert_eq!(
        version(&again),
        version(&labelled),
        "a no-op write keeps the resourceVersion"
    );

    let spec_patch = json!({"spec": {"interval": "5m"}});
    let respecced = bindings
        .patch("web", &PatchParams::default(), &Patch::Merge(&spec_patch))
        .await
        .expect("spec");
    assert_eq!(
        respecced.metadata.generation,
        Some(2),
        "spec changes bump the generation"
    );
    assert_eq!(
        api_error(
            bindings
                .replace("web", &PostParams::default(), &labelled)
                .await
        ),
        (409, "Conflict".into()),
        "a stale resourceVersion conflicts"
    );
    let failing = json_patch::Patch(
        serde_json::from_value(json!([
            {"op": "test", "path": "/metadata/finalizers", "value": ["x"]},
            {"op": "add", "path": "/metadata/finalizers", "value": ["y"]},
        ]))
        .expect("a JSON patch"),
    );
    assert_eq!(
        api_error(
            bindings
                .patch("web", &PatchParams::default(), &Patch::<()>::Json(failing))
                .await
        ),
        (422, "Invalid".into())
    );

    let applied = json!({"apiVersion": "tagbinder.io/v1alpha1", "kind": "ResourceTagBinding",
                         "status": {"observedGeneration": 2, "conflicts": [{"resourceId": "g1", "key": "k", "winner": "w"}]}});
    let ssa = PatchParams::apply("tester").force();
    bindings
        .patch_status("web", &ssa, &Patch::Apply(&applied))
        .await
        .expect("apply the status");
    let applied = json!({"apiVersion": "tagbinder.io/v1alpha1", "kind": "ResourceTagBinding", "status": {"observedGeneration": 2}});
    let reapplied = bindings
        .patch_status("web", &ssa, &Patch::Apply(&applied))
        .await
        .expect("apply again");
    assert!(
        reapplied.status.expect("status").conflicts.is_empty(),
        "a field its manager no longer applies is removed"
    );

    server.compact();
    let mut expired = bindings
        .watch(&WatchParams::default(), &list_rv)
        .await
        .expect("watch")
        .boxed();
    match expired.try_next().await {
        Ok(Some(WatchEvent::Error(status))) => assert_eq!(status.code, 410),
        other => panic!("410 Gone for a compacted resourceVersion, not {other:?}"),
    }

    let finalizer = json!({"metadata": {"finalizers": ["example.com/hold"]}});
    bindings
        .patch("web", &PatchParams::default(), &Patch::Merge(&finalizer))
        .await
        .expect("add a finalizer");
    bindings
        .delete("web", &DeleteParams::default())
        .await
        .expect("delete");
    let held = bindings.get("web").await.expect("held by its finalizer");
    assert!(held.metadata.deletion_timestamp.is_some());
    let release = json!({"metadata": {"finalizers": null}});
    bindings
        .patch("web", &PatchParams::default(), &Patch::Merge(&release))
        .await
        .expect("remove the finalizer");
    assert!(
        bindings.get_opt("web").await.expect("get_opt").is_none(),
        "gone once its finalizers are"
    );
}
