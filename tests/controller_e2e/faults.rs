//! The controller under faults (issue 20): a cloud that hangs, objects that cannot be decoded
//! (deletions that cannot proceed or must not write: `deletion.rs`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kube::Api;
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::json;
use tagbinder::api::ResourceTagBinding;

use crate::Env;
use crate::support::fixtures::{Crds, Tenant, eventually, is_true, tags};
use crate::support::processes::{CloudEmulator, Controller, ControllerOptions};

/// A cloud endpoint that accepts connections and never answers; counts the connections.
async fn hanging_endpoint() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("a local address"));
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::Relaxed);
            held.push(stream);
        }
    });
    (url, accepted)
}

/// One provider's endpoint hangs (every call waits out the client's timeout, 5 attempts):
/// another provider's lone spec change still reaches its cloud and is Ready at once, while the
/// hanging provider's round is in flight.
pub async fn a_hanging_cloud_does_not_hold_up_another_provider(env: Arc<Env>) {
    let (server, client) = env.own_server(Crds::Both).await;
    let dir = env.scratch("hang");
    let cloud = CloudEmulator::start(&dir, &[("healthy-g1", &[])]).await;
    let (hanging_url, accepted) = hanging_endpoint().await;
    let healthy = Tenant::new(&client, &cloud.url, "healthy").await;
    let hanging = Tenant::new(&client, &hanging_url, "hanging").await;
    let _controller = Controller::start(
        &server,
        &dir,
        ControllerOptions {
            identity: "tagbinder-hang",
            leader_election: false,
            namespace: None,
        },
    );
    let mut binding = healthy.binding("web", &["healthy-g1"], &[("env", "prod")]);
    binding.spec.interval = "1h".into();
    healthy.create(&binding).await;
    healthy.ready("web").await;

    hanging
        .create(&hanging.binding("stuck", &["hanging-g1"], &[("env", "prod")]))
        .await;
    eventually("the hanging provider's round calls its cloud", || async {
        match accepted.load(Ordering::Relaxed) {
            0 => Err("no connection yet".to_string()),
            _ => Ok(()),
        }
    })
    .await;

    healthy
        .bindings
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"tags": {"env": "staging"}}})),
        )
        .await
        .expect("patch the binding");
    // NB: about a second with the fix; before it, the change waited for the hanging round
    // (5 attempts x 30 s). The margin is generous and still far below that.
    let patience = Duration::from_secs(20);
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let web = healthy.bindings.get("web").await.expect("the binding");
        if web.status.as_ref().and_then(|s| s.observed_generation) == Some(2)
            && is_true(&web, "Ready")
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the healthy provider's change is not Ready within {patience:?} while another \
             provider's cloud hangs: {:?}",
            web.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(cloud.tags("healthy-g1").await, tags(&[("env", "staging")]));
    assert!(
        !is_true(
            &hanging.bindings.get("stuck").await.expect("the binding"),
            "Ready"
        ),
        "the hanging provider's binding is not Ready"
    );
}

/// A binding stored under an older schema (a boolean tag value, which the stand-in API server
/// keeps as a real one would keep an object written before a schema change) does not stop
/// the controller: the others are reconciled, `/readyz` answers 200, a Warning event names the
/// object, and SIGTERM ends the controller within its bound.
pub async fn an_object_that_does_not_decode_is_skipped_and_reported(env: Arc<Env>) {
    let (server, client) = env.own_server(Crds::Both).await;
    let dir = env.scratch("undecodable");
    let cloud = CloudEmulator::start(&dir, &[("ok-g1", &[]), ("bad-g1", &[])]).await;
    let tenant = Tenant::new(&client, &cloud.url, "undecodable").await;
    let mut bad =
        serde_json::to_value(tenant.binding("old", &["bad-g1"], &[("env", "prod")])).expect("JSON");
    bad["spec"]["tags"]["legacy"] = json!(true);
    let resource = ApiResource::erase::<ResourceTagBinding>(&());
    let dynamic: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), &tenant.namespace, &resource);
    let bad: DynamicObject = serde_json::from_value(bad).expect("a dynamic object");
    dynamic
        .create(&PostParams::default(), &bad)
        .await
        .expect("the stand-in stores the object");
    tenant
        .create(&tenant.binding("web", &["ok-g1"], &[("env", "prod")]))
        .await;

    let mut controller = Controller::start(
        &server,
        &dir,
        ControllerOptions {
            identity: "tagbinder-undecodable",
            leader_election: true,
            namespace: None,
        },
    );
    tenant.ready("web").await;
    assert_eq!(cloud.tags("ok-g1").await, tags(&[("env", "prod")]));
    eventually("/readyz answers 200", || async {
        match controller.endpoint("/readyz").await {
            (200, _) => Ok(()),
            (code, body) => Err(format!("{code} {body}")),
        }
    })
    .await;
    let events = tenant.wait_event(&client, "old", "Undecodable").await;
    assert!(
        events.iter().any(|(type_, r, note)| type_ == "Warning"
            && r == "Undecodable"
            && note.contains("does not decode")),
        "{events:?}"
    );
    assert_eq!(
        cloud.tags("bad-g1").await,
        tags(&[]),
        "the bad object is left alone"
    );

    controller.terminate();
    let status = controller.exited(Duration::from_secs(30)).await;
    assert!(status.success(), "{status}: {}", controller.logs());
}
