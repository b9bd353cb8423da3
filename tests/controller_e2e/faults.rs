//! The controller under faults (issue 20): a cloud that hangs, deletions that cannot proceed
//! or must not write, objects that cannot be decoded.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kube::api::{Patch, PatchParams};
use serde_json::json;

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

