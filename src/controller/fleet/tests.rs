//! Unit tests of the fleet's queue and rounds.

use futures::{FutureExt, StreamExt};

use super::super::cache::tests::binding;
use super::*;
use crate::controller::rounds::{InFlight, by_group};
use crate::reconcile::identity::Target;
use kube::runtime::watcher;

fn handed(
    receiver: &mut futures::channel::mpsc::UnboundedReceiver<ObjectRef<super::super::cache::Meta>>,
) -> Vec<String> {
    let mut keys = Vec::new();
    while let Some(Some(reference)) = receiver.next().now_or_never() {
        keys.push(format!(
            "{}/{}",
            reference.namespace.unwrap_or_default(),
            reference.name
        ));
    }
    keys
}

#[test]
fn kube_runtime_is_handed_a_bounded_number_of_requests_and_a_round_waits_for_all() {
    let (triggers, mut receiver) = futures::channel::mpsc::unbounded();
    let fleet = Fleet::new(triggers);
    let keys: Vec<String> = (0..REQUESTS_IN_FLIGHT + 44)
        .map(|i| format!("ns/b{i:04}"))
        .collect();
    for key in &keys {
        fleet.request(key);
    }
    // NB: a key asked for again while it waits in kube-runtime is not handed again.
    fleet.request(&keys[0]);
    let first = handed(&mut receiver);
    assert_eq!(first, keys[..REQUESTS_IN_FLIGHT]);
    // NB: the round waits while requests wait, in kube-runtime or in the queue: one
    // binding's checks passed, but the round does not close without the others.
    fleet.submit(keys[0].clone(), submission("ns", "b0000", "p"));
    assert!(fleet.next(Instant::now()).is_err());
    for key in &first[1..10] {
        fleet.settled(key);
    }
    assert_eq!(
        handed(&mut receiver),
        keys[REQUESTS_IN_FLIGHT..REQUESTS_IN_FLIGHT + 10]
    );
    for key in &keys {
        fleet.settled(key);
    }
    assert_eq!(handed(&mut receiver), keys[REQUESTS_IN_FLIGHT + 10..]);
    for key in &keys[REQUESTS_IN_FLIGHT + 10..] {
        fleet.settled(key);
    }
    {
        let state = fleet.lock();
        assert!(state.queue.is_empty() && state.expected.is_empty());
    }
    let round = fleet
        .next(Instant::now())
        .expect("every request settled: the round closes");
    assert_eq!(round.keys().collect::<Vec<_>>(), [&keys[0]]);
}

/// A submission of `namespace/name` through `provider`, with a client that calls nothing.
fn submission(namespace: &str, name: &str, provider: &str) -> Submission {
    use crate::api::{AlibabaSettings, Cloud, TagProviderSpec};
    use crate::cloud::AccessKey;
    use crate::cloud::batcher::{Batcher, DEFAULT_WINDOW};
    use crate::reconcile::provider::{ClientOptions, client_for, http_client};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let spec = TagProviderSpec {
        cloud: Cloud::Alibaba,
        region: "cn-hangzhou".into(),
        alibaba: Some(AlibabaSettings {
            product: Some("apigateway".into()),
            ..AlibabaSettings::default()
        }),
        jdcloud: None,
        aws: None,
        endpoint: Some("http://127.0.0.1:9".into()),
        credentials: None,
        rate_limit: None,
        allowed_namespaces: None,
        default_tags: Default::default(),
    };
    let options = ClientOptions {
        http: http_client().expect("an HTTP client"),
        endpoint_override: None,
        retry: Default::default(),
        observer: None,
        default_rate_limit: false,
    };
    let client =
        client_for(&spec, AccessKey::new("id", "secret").into(), &options).expect("a client");
    let binding = Arc::new(binding(namespace, name, provider));
    Submission {
        desired: binding.spec.tags.clone(),
        binding,
        client: Batcher::new(client, DEFAULT_WINDOW),
    }
}

/// Each group (provider, resource type) has at most one round in flight, and a group's
/// round in flight holds up no other group's (issue 20: one hanging cloud stalled every
/// provider).
#[test]
fn a_group_in_flight_holds_up_only_its_own_next_round() {
    let (triggers, _receiver) = futures::channel::mpsc::unbounded();
    let fleet = Arc::new(Fleet::new(triggers));
    fleet.submit("ns/a1".into(), submission("ns", "a1", "slow"));
    fleet.submit("ns/b1".into(), submission("ns", "b1", "fast"));
    let first = fleet.next(Instant::now()).expect("a round");
    assert_eq!(first.len(), 2);
    let groups = by_group(first);
    let slow = groups
        .keys()
        .find(|(provider, _)| provider == "slow")
        .cloned()
        .expect("the slow group");
    let fast = groups
        .keys()
        .find(|(provider, _)| provider == "fast")
        .cloned()
        .expect("the fast group");
    let slow_in_flight = InFlight {
        fleet: fleet.clone(),
        group: slow,
    };
    drop(InFlight {
        fleet: fleet.clone(),
        group: fast,
    });

    fleet.submit("ns/a2".into(), submission("ns", "a2", "slow"));
    fleet.submit("ns/b2".into(), submission("ns", "b2", "fast"));
    let second = fleet.next(Instant::now()).expect("the fast group's round");
    assert_eq!(second.keys().collect::<Vec<_>>(), ["ns/b2"]);
    assert!(
        fleet.next(Instant::now()).is_err(),
        "the slow group's next round waits for its round in flight"
    );
    drop(slow_in_flight);
    let third = fleet.next(Instant::now()).expect("the slow group's round");
    assert_eq!(third.keys().collect::<Vec<_>>(), ["ns/a2"]);
}

#[test]
fn a_deleted_binding_leaves_the_queue() {
    let (triggers, mut receiver) = futures::channel::mpsc::unbounded();
    let fleet = Fleet::new(triggers);
    let keys: Vec<String> = (0..=REQUESTS_IN_FLIGHT)
        .map(|i| format!("ns/b{i:04}"))
        .collect();
    for key in &keys {
        fleet.request(key);
    }
    assert_eq!(handed(&mut receiver).len(), REQUESTS_IN_FLIGHT);
    let last = &keys[REQUESTS_IN_FLIGHT];
    let (namespace, name) = last.split_once('/').unwrap_or_default();
    fleet.watched(&watcher::Event::Delete(binding(namespace, name, "p")));
    fleet.settled(&keys[0]);
    assert!(handed(&mut receiver).is_empty(), "{last} is gone");
    assert!(fleet.lock().queue.is_empty());
}

/// A binding's declared tags as its spec gives them (no `tagsFrom`, no provider defaults).
fn spec_tags(binding: &ResourceTagBinding) -> crate::tags::Tags {
    binding.spec.tags.clone()
}

/// Issue 20, item 5, in the controller: the fleet keeps the selector bindings it watches, and
/// finds those whose selections feed each other on one target, whichever provider of it.
#[test]
fn selections_that_feed_each_other_are_found_across_providers_of_one_target() {
    use crate::api::{Cloud, ResourceSelector, TagProviderSpec};
    let (triggers, _receiver) = futures::channel::mpsc::unbounded();
    let fleet = Fleet::new(triggers);
    let selector = |name: &str, provider: &str, declared: &[(&str, &str)], by: &[(&str, &str)]| {
        let mut binding = binding("team", name, provider);
        binding.spec.resource_ids.clear();
        binding.spec.tags = crate::tags::tags(declared);
        binding.spec.resource_selector = Some(ResourceSelector {
            match_tags: crate::tags::tags(by),
        });
        binding
    };
    let a = selector("a", "p1", &[("team", "web")], &[("env", "prod")]);
    let b = selector("b", "p2", &[("env", "prod")], &[("team", "web")]);
    let c = selector("c", "p1", &[("cost", "1")], &[("env", "prod")]);
    for binding in [&a, &b, &c] {
        fleet.watched(&watcher::Event::Apply(binding.clone()));
    }
    let spec: TagProviderSpec =
        serde_json::from_value(serde_json::json!({"cloud": "alibaba", "region": "cn-hangzhou"}))
            .expect("a provider spec");
    assert_eq!(spec.cloud, Cloud::Alibaba);
    let target_of = |_: &str, resource_type: &str| Some(Target::of(&spec, resource_type));
    let target = Target::of(&spec, "apigateway");
    let cycles = fleet.feeding_cycles(&target, target_of, spec_tags);
    let cycle = vec!["team/a".to_string(), "team/b".to_string()];
    assert_eq!(
        cycles,
        BTreeMap::from([
            ("team/a".to_string(), cycle.clone()),
            ("team/b".to_string(), cycle)
        ])
    );
    // A status write (the same spec again) asks for nothing; a change of a, or b deleted,
    // asks for passes of the other selector bindings (a refused one is looked at again), and
    // no cycle is left.
    let (triggers, mut receiver) = futures::channel::mpsc::unbounded();
    let fleet = Fleet::new(triggers);
    for binding in [&a, &b, &c] {
        fleet.watched(&watcher::Event::Apply(binding.clone()));
    }
    fleet.watched(&watcher::Event::Apply(b.clone()));
    assert!(handed(&mut receiver).is_empty());
    let mut moved = a.clone();
    moved.spec.tags = crate::tags::tags(&[("tier", "web")]);
    fleet.watched(&watcher::Event::Apply(moved));
    let mut requested = handed(&mut receiver);
    requested.sort();
    assert_eq!(requested, ["team/b", "team/c"]);
    for key in &requested {
        fleet.settled(key);
    }
    fleet.watched(&watcher::Event::Delete(b));
    let mut requested = handed(&mut receiver);
    requested.sort();
    assert_eq!(requested, ["team/a", "team/c"]);
    assert!(
        fleet
            .feeding_cycles(&target, target_of, spec_tags)
            .is_empty()
    );
}
