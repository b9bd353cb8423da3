//! Scenarios of the fleet view (issue 11): claims by resource identity across providers, a
//! lone spec change applied without waiting for the next sweep.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use tagbinder::api::ConflictEntry;

use crate::support::fixtures::{
    self, Tenant, condition, create_credentials, create_provider, is_true, tags, version,
};
use crate::{Env, OPERATOR};

/// `tagbinder_passes_total` of one provider.
async fn passes_of(env: &Env, provider: &str) -> usize {
    let (_, metrics) = env.controller.endpoint("/metrics").await;
    let series = format!("tagbinder_passes_total{{provider=\"{provider}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as usize
}

/// Two teams, one TagProvider each, both reaching the same account and region (with their
/// own Secrets): a binding through each declares `env` on the same API group with another
/// value. The older wins; the younger reports the conflict naming it; nothing flaps.
pub async fn two_providers_of_one_account_decide_conflicts_by_age(env: Arc<Env>) {
    let team_a = Tenant::new(&env.client, &env.cloud.url, "twoprov").await;
    let provider_b = "twoprov-b";
    create_credentials(&env.client, "twoprov-b-creds").await;
    create_provider(
        &env.client,
        &fixtures::provider(provider_b, &env.cloud.url, "twoprov-b-creds"),
    )
    .await;

    // NB: the names sort the other way round, so that only age can decide.
    let older = team_a
        .create(&team_a.binding("z-older", &["twoprov-g1"], &[("env", "prod")]))
        .await;
    team_a.ready("z-older").await;
    let created = older
        .metadata
        .creation_timestamp
        .map(|Time(t)| t.as_second())
        .expect("a creation time");
    while jiff::Timestamp::now().as_second() <= created {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    team_a
        .create(&fixtures::binding(
            "a-newer",
            provider_b,
            &["twoprov-g1"],
            &[("env", "staging"), ("owner", "b")],
        ))
        .await;

    let loser = team_a.not_ready("a-newer", "Conflict").await;
    let message = &condition(&loser, "Ready").expect("Ready").message;
    assert!(
        message.contains("e2e-twoprov/z-older"),
        "the winner is named: {message}"
    );
    let status = loser.status.clone().expect("a status");
    assert_eq!(
        status.conflicts,
        vec![ConflictEntry {
            resource_id: "twoprov-g1".into(),
            key: "env".into(),
            winner: "e2e-twoprov/z-older".into()
        }]
    );
    assert_eq!(
        env.cloud.tags("twoprov-g1").await,
        tags(&[("env", "prod"), ("owner", "b")])
    );

    // Several intervals of both providers: the value stays, nothing is rewritten.
    let winner = team_a.bindings.get("z-older").await.expect("the winner");
    let (a_since, b_since) = (
        passes_of(&env, &team_a.provider).await,
        passes_of(&env, provider_b).await,
    );
    fixtures::eventually("three more passes through each provider", || async {
        let (a, b) = (
            passes_of(&env, &team_a.provider).await,
            passes_of(&env, provider_b).await,
        );
        if a >= a_since + 3 && b >= b_since + 3 {
            Ok(())
        } else {
            Err(format!("{a} and {b} passes, from {a_since} and {b_since}"))
        }
    })
    .await;
    assert_eq!(
        env.cloud.tags("twoprov-g1").await,
        tags(&[("env", "prod"), ("owner", "b")])
    );
    assert_eq!(
        version(&team_a.bindings.get("z-older").await.expect("winner")),
        version(&winner)
    );
    assert_eq!(
        version(&team_a.bindings.get("a-newer").await.expect("loser")),
        version(&loser)
    );
    let events = team_a.events(&env.client, "a-newer").await;
    assert_eq!(
        events.iter().filter(|(_, r, _)| r == "Conflict").count(),
        1,
        "{events:?}"
    );
    assert!(
        team_a.status_writes(&env.server, OPERATOR, "z-older") >= 1,
        "the winner was written by the controller"
    );
}

/// A binding re-checked once an hour: a change of its spec is applied by a pass of its own,
/// not at the next sweep.
pub async fn a_lone_spec_change_is_applied_without_waiting_for_a_sweep(env: Arc<Env>) {
    let tenant = Tenant::new(&env.client, &env.cloud.url, "prompt").await;
    let mut binding = tenant.binding("web", &["prompt-g1"], &[("env", "prod")]);
    binding.spec.interval = "1h".into();
    tenant.create(&binding).await;
    tenant.ready("web").await;

    tenant
        .bindings
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"tags": {"env": "staging"}}})),
        )
        .await
        .expect("patch the binding");
    let changed = tenant
        .wait("web", "Ready for generation 2", |b| {
            b.status.as_ref().and_then(|s| s.observed_generation) == Some(2) && is_true(b, "Ready")
        })
        .await;
    assert_eq!(
        env.cloud.tags("prompt-g1").await,
        tags(&[("env", "staging")])
    );
    assert_eq!(
        changed.status.expect("a status").applied.applied_tags,
        tags(&[("env", "staging")])
    );
    let events = tenant.wait_event(&env.client, "web", "TagsApplied").await;
    assert!(
        events.iter().filter(|(_, r, _)| r == "TagsApplied").count() >= 1,
        "{events:?}"
    );
}

/// Bindings of one provider that a start-up round passes together, more than kube-runtime is
/// handed at once (256) and more than one chunk of a round (500).
const LARGE_FLEET: usize = 600;

/// A fleet larger than the requests handed to kube-runtime at once and than a round's chunk,
/// at start-up: every binding converges, in the calls of the lower bound (one read and one
/// write of every 50 resources: the chunk boundary at 500 falls on a call boundary).
pub async fn a_fleet_larger_than_a_chunk_converges_in_the_fewest_calls(env: Arc<Env>) {
    let (server, client) = env.own_server(fixtures::Crds::Both).await;
    let dir = env.scratch("large");
    let ids: Vec<String> = (0..LARGE_FLEET).map(|i| format!("large-{i:04}")).collect();
    let inventory: Vec<(&str, &[(&str, &str)])> =
        ids.iter().map(|id| (id.as_str(), &[][..])).collect();
    let cloud = crate::support::processes::CloudEmulator::start(&dir, &inventory).await;
    let tenant = Tenant::new(&client, &cloud.url, "large").await;
    for id in &ids {
        let mut binding = tenant.binding(id, &[id], &[("env", "prod")]);
        binding.spec.interval = "1h".into();
        tenant.create(&binding).await;
    }
    let _controller = crate::support::processes::Controller::start(
        &server,
        &dir,
        crate::support::processes::ControllerOptions {
            identity: "tagbinder-large",
            leader_election: false,
            namespace: None,
        },
    );
    fixtures::eventually("every binding Ready", || async {
        let list = tenant
            .bindings
            .list(&Default::default())
            .await
            .map_err(|e| e.to_string())?;
        let ready = list.items.iter().filter(|b| is_true(b, "Ready")).count();
        if ready == LARGE_FLEET {
            Ok(())
        } else {
            Err(format!("{ready} of {LARGE_FLEET} Ready"))
        }
    })
    .await;
    for id in ids.iter().step_by(97) {
        assert_eq!(cloud.tags(id).await, tags(&[("env", "prod")]), "{id}");
    }
    let bound = LARGE_FLEET.div_ceil(50) as u64;
    assert_eq!(
        (
            cloud.calls("ListTagResources").await,
            cloud.calls("TagResources").await
        ),
        (bound, bound),
        "reads and writes at the lower bound"
    );
}
