//! Unit tests of rounds of passes.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use super::*;
use crate::api::conditions::reason;
use crate::api::{AlibabaSettings, Cloud, TagProviderSpec};
use crate::cloud::batcher::{Batcher, DEFAULT_WINDOW};
use crate::cloud::{AccessKey, CloudError};
use crate::emulator::{self, Account, EmulatorConfig, Inventory, InventoryResource};
use crate::plan::{BindingId, Claim};
use crate::reconcile::intent_log::NoIntents;
use crate::reconcile::provider::{ClientOptions, ProviderClient, client_for, http_client};
use crate::tags::Ownership;

const KEY_ID: &str = "LTAI5tRoundTest";
const KEY_SECRET: &str = "round-test-secret";

use crate::tags::tags;

pub(crate) fn id(name: &str, created: i64) -> BindingId {
    BindingId {
        created: Some(created),
        namespace: "team".into(),
        name: name.into(),
    }
}

/// An emulator holding API Gateway groups `resources` (id, tags) in cn-hangzhou, and a
/// client of it.
pub(crate) async fn emulated(
    resources: &[(&str, &[(&str, &str)])],
) -> (emulator::RunningEmulator, ProviderClient) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let resources = resources
        .iter()
        .map(|(id, carried)| InventoryResource {
            cloud: "alibaba".into(),
            region: "cn-hangzhou".into(),
            resource_type: "apiGroup".into(),
            id: id.to_string(),
            tags: tags(carried),
        })
        .collect();
    let config = EmulatorConfig {
        inventory: Inventory {
            accounts: vec![Account {
                access_key_id: KEY_ID.into(),
                access_key_secret: KEY_SECRET.into(),
            }],
            resources,
        },
        ..EmulatorConfig::default()
    };
    let cloud = emulator::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config)
        .await
        .expect("emulator starts");
    let spec = TagProviderSpec {
        cloud: Cloud::Alibaba,
        region: "cn-hangzhou".into(),
        alibaba: Some(AlibabaSettings {
            product: Some("apigateway".into()),
            ..AlibabaSettings::default()
        }),
        jdcloud: None,
        aws: None,
        endpoint: Some(cloud.url()),
        credentials: None,
        rate_limit: None,
        allowed_namespaces: None,
        default_tags: Default::default(),
    };
    let options = ClientOptions {
        http: http_client().expect("HTTP client"),
        endpoint_override: None,
        retry: Default::default(),
        observer: None,
        default_rate_limit: false,
    };
    let client =
        client_for(&spec, AccessKey::new(KEY_ID, KEY_SECRET).into(), &options).expect("a client");
    (cloud, client)
}

async fn calls(url: &str) -> BTreeMap<String, u64> {
    let stats: serde_json::Value = reqwest::get(format!("{url}/_emulator/stats"))
        .await
        .expect("stats")
        .json()
        .await
        .expect("JSON stats");
    stats["requests"]["alibaba"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(action, outcomes)| {
            let count = outcomes
                .as_object()
                .map(|o| o.values().filter_map(|v| v.as_u64()).sum())
                .unwrap_or(0);
            (action.clone(), count)
        })
        .collect()
}

/// Three bindings of one target: two declare the same tags on different resources (one
/// write call between them), the youngest conflicts with the oldest on one resource.
#[tokio::test]
async fn one_read_one_shared_write_and_each_binding_its_own_outcome() {
    let (cloud, client) = emulated(&[("g1", &[]), ("g2", &[]), ("g3", &[])]).await;
    let batcher = Batcher::new(client, DEFAULT_WINDOW);

    let prod = tags(&[("env", "prod")]);
    let dev = tags(&[("env", "dev"), ("owner", "c")]);
    let (a, b, c) = (id("a", 1), id("b", 2), id("c", 3));
    let (ids_a, ids_b, ids_c) = (
        vec!["g1".to_string(), "g2".to_string()],
        vec!["g3".to_string()],
        vec!["g1".to_string()],
    );
    let set_a: std::collections::BTreeSet<String> = ids_a.iter().cloned().collect();
    let claims_c = crate::plan::Claims::new(vec![Claim {
        binding: &a,
        resource_ids: &set_a,
        tags: &prod,
    }]);
    let owned = Ownership::default();
    let input = |binding, desired, resource_ids, claims| PassInput {
        binding,
        desired,
        resource_type: "apiGroup",
        resource_ids,
        owned: &owned,
        claims,
        mode: Mode::Apply,
        selection: None,
    };
    let inputs = [
        input(&a, &prod, &ids_a, &crate::plan::NO_CLAIMS),
        input(&b, &prod, &ids_b, &crate::plan::NO_CLAIMS),
        input(&c, &dev, &ids_c, &claims_c),
    ];
    let participant = batcher.participant("apiGroup");
    let outcomes = run_round(&participant, "apiGroup", &inputs, &NoIntents).await;
    drop(participant);

    assert_eq!(outcomes.len(), 3);
    assert!(outcomes[0].is_ready(), "{:?}", outcomes[0].readiness);
    assert!(outcomes[1].is_ready(), "{:?}", outcomes[1].readiness);
    assert_eq!(outcomes[2].readiness.reason, reason::CONFLICT);
    assert!(outcomes[2].readiness.message.contains("team/a"));
    assert_eq!(
        calls(&cloud.url()).await,
        BTreeMap::from([
            ("ListTagResources".to_string(), 1),
            // {env: prod} on g1, g2, g3 in one call; {owner: c} on g1 in another.
            ("TagResources".to_string(), 2),
        ])
    );
    cloud.shutdown().await.expect("emulator stops");
}

/// A cloud whose reads of a call with `reads_throttled`, and writes of a call with
/// `writes_throttled`, fail as a throttle that outlived the retries; the others answer.
/// Two resources a call.
struct Storm {
    limits: crate::tags::Limits,
    reads_throttled: &'static str,
    writes_throttled: &'static str,
    tags: std::sync::Mutex<TagsByResource>,
}

impl Storm {
    fn new(reads_throttled: &'static str, writes_throttled: &'static str) -> Self {
        Storm {
            limits: crate::tags::Limits {
                resources_per_call: 2,
                ..crate::tags::Limits::alibaba()
            },
            reads_throttled,
            writes_throttled,
            tags: Default::default(),
        }
    }
}

fn throttle(action: &'static str, ids: &[String], throttled: &str) -> Result<(), CallError> {
    if !ids.iter().any(|id| id == throttled) {
        return Ok(());
    }
    Err(CloudError {
        kind: crate::cloud::ErrorKind::Retryable,
        action,
        code: "Throttling.User".to_string(),
        message: "throttled, 5 attempts".to_string(),
        http_status: Some(400),
        request_id: None,
        attempts: 5,
    }
    .into())
}

impl TagApi for std::sync::Arc<Storm> {
    fn cloud_name(&self) -> &'static str {
        "storm"
    }

    fn limits(&self) -> &crate::tags::Limits {
        &self.limits
    }

    fn check_resource_type(&self, _: &str) -> Result<(), crate::cloud::AddressError> {
        Ok(())
    }

    async fn list_tags(&self, _: &str, ids: &[String]) -> Result<TagsByResource, CallError> {
        assert!(ids.len() <= 2, "a read over the limit: {ids:?}");
        throttle("ListTagResources", ids, self.reads_throttled)?;
        let tags = self.tags.lock().expect("tags");
        Ok(ids
            .iter()
            .map(|id| (id.clone(), tags.get(id).cloned().unwrap_or_default()))
            .collect())
    }

    async fn select_resources(
        &self,
        _: &str,
        _: &crate::tags::Tags,
    ) -> Result<TagsByResource, CallError> {
        Ok(TagsByResource::new())
    }

    async fn tag_resources(
        &self,
        _: &str,
        ids: &[String],
        tags: &crate::tags::Tags,
    ) -> Result<crate::cloud::WriteResult, CallError> {
        throttle("TagResources", ids, self.writes_throttled)?;
        let mut carried = self.tags.lock().expect("tags");
        for id in ids {
            carried.entry(id.clone()).or_default().extend(tags.clone());
        }
        Ok(crate::cloud::WriteResult::default())
    }

    async fn untag_resources(
        &self,
        _: &str,
        _: &[String],
        _: &crate::tags::Tags,
    ) -> Result<crate::cloud::WriteResult, CallError> {
        Ok(crate::cloud::WriteResult::default())
    }
}

/// A call that outlived its retries fails only the resources of that call: a read
/// (issue 20: one such read failed every binding of the round, and each backed off) and
/// a write (the binding's other write is confirmed and recorded).
#[tokio::test]
async fn a_throttled_call_fails_only_the_resources_of_that_call() {
    let prod = tags(&[("env", "prod")]);
    let (a, b, c, d) = (id("a", 1), id("b", 2), id("c", 3), id("d", 4));
    let owned = Ownership::default();
    let ids = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (ids_a, ids_b, ids_c) = (ids(&["r1", "r2"]), ids(&["r3", "r4"]), ids(&["r5", "r6"]));
    let input = |binding, resource_ids| PassInput {
        binding,
        desired: &prod,
        resource_type: "apiGroup",
        resource_ids,
        owned: &owned,
        claims: &crate::plan::NO_CLAIMS,
        mode: Mode::Apply,
        selection: None,
    };

    // The read of r3 and r4 (one call) fails: b alone fails.
    let batcher = Batcher::new(
        std::sync::Arc::new(Storm::new("r3", "none")),
        DEFAULT_WINDOW,
    );
    let participant = batcher.participant("apiGroup");
    let inputs = [input(&a, &ids_a), input(&b, &ids_b), input(&c, &ids_c)];
    let outcomes = run_round(&participant, "apiGroup", &inputs, &NoIntents).await;
    drop(participant);
    assert!(outcomes[0].is_ready(), "{:?}", outcomes[0].readiness);
    assert_eq!(outcomes[1].readiness.reason, reason::PROVIDER_ERROR);
    assert!(outcomes[1].retry_soon());
    assert!(outcomes[2].is_ready(), "{:?}", outcomes[2].readiness);

    // One binding, two write calls ({r1, r2}, {r5, r6}), the second throttled: the first
    // is confirmed and recorded; r5 and r6 fail and ask for a retry.
    let batcher = Batcher::new(
        std::sync::Arc::new(Storm::new("none", "r6")),
        DEFAULT_WINDOW,
    );
    let participant = batcher.participant("apiGroup");
    let ids_d = ids(&["r1", "r2", "r5", "r6"]);
    let outcomes = run_round(&participant, "apiGroup", &[input(&d, &ids_d)], &NoIntents).await;
    drop(participant);
    let outcome = &outcomes[0];
    assert_eq!(
        outcome.readiness.reason,
        reason::PARTIAL_FAILURE,
        "{:?}",
        outcome.readiness
    );
    let failed: Vec<&str> = outcome
        .failures
        .iter()
        .map(|f| f.resource_id.as_str())
        .collect();
    assert_eq!(failed, ["r5", "r6"]);
    assert!(outcome.retry_soon() && outcome.made_progress());
    assert_eq!(
        outcome.ownership.on("r1"),
        Some(&prod),
        "the confirmed write is recorded"
    );
    assert_eq!(outcome.ownership.on("r5"), None);
}

/// A host whose inputs carry these unresolved intents, and that records every new one.
struct Kept(Vec<TagsByResource>);

impl IntentLog for Kept {
    fn pending(&self, index: usize) -> &TagsByResource {
        &self.0[index]
    }

    async fn record(
        &self,
        intents: &[Intent<'_>],
    ) -> Vec<Result<(), crate::reconcile::intent_log::IntentError>> {
        intents.iter().map(|_| Ok(())).collect()
    }
}

/// A pass decided before it plans (an invalid spec, a failed read) leaves the previous
/// intent unresolved: it stays pending, to be claimed by a pass that reads the cloud.
#[tokio::test]
async fn a_pass_refused_before_planning_keeps_its_intent() {
    let prod = tags(&[("env", "prod")]);
    let invalid = tags(&[("acs:reserved", "x")]);
    let (a, b) = (id("a", 1), id("b", 2));
    let owned = Ownership::default();
    let (ids_a, ids_b) = (vec!["r1".to_string()], vec!["r3".to_string()]);
    let intent: TagsByResource = [("r9".to_string(), prod.clone())].into();
    let inputs = [
        PassInput {
            binding: &a,
            desired: &invalid,
            resource_type: "apiGroup",
            resource_ids: &ids_a,
            owned: &owned,
            claims: &crate::plan::NO_CLAIMS,
            mode: Mode::Apply,
            selection: None,
        },
        PassInput {
            binding: &b,
            desired: &prod,
            resource_type: "apiGroup",
            resource_ids: &ids_b,
            owned: &owned,
            claims: &crate::plan::NO_CLAIMS,
            mode: Mode::Apply,
            selection: None,
        },
    ];
    // NB: b's read (r3) is throttled past its retries.
    let cloud = std::sync::Arc::new(Storm::new("r3", "none"));
    let outcomes = run_round(
        &cloud,
        "apiGroup",
        &inputs,
        &Kept(vec![intent.clone(), intent.clone()]),
    )
    .await;
    assert_eq!(outcomes[0].readiness.reason, reason::INVALID_SPEC);
    assert_eq!(outcomes[0].pending, intent, "refused before the read");
    assert_eq!(outcomes[1].readiness.reason, reason::PROVIDER_ERROR);
    assert_eq!(outcomes[1].pending, intent, "the read failed");
}

/// What the cloud did not confirm may have landed (an answer lost after the retries): it
/// stays pending, the confirmed part is owned.
#[tokio::test]
async fn an_unconfirmed_part_of_the_intent_stays_pending() {
    let prod = tags(&[("env", "prod")]);
    let d = id("d", 4);
    let owned = Ownership::default();
    let ids: Vec<String> = ["r1", "r2", "r5", "r6"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let inputs = [PassInput {
        binding: &d,
        desired: &prod,
        resource_type: "apiGroup",
        resource_ids: &ids,
        owned: &owned,
        claims: &crate::plan::NO_CLAIMS,
        mode: Mode::Apply,
        selection: None,
    }];
    let cloud = std::sync::Arc::new(Storm::new("none", "r6"));
    let outcomes = run_round(
        &cloud,
        "apiGroup",
        &inputs,
        &Kept(vec![TagsByResource::new()]),
    )
    .await;
    let outcome = &outcomes[0];
    let unconfirmed: TagsByResource = [
        ("r5".to_string(), prod.clone()),
        ("r6".to_string(), prod.clone()),
    ]
    .into();
    assert_eq!(outcome.pending, unconfirmed);
    assert_eq!(outcome.ownership.on("r1"), Some(&prod));
    assert_eq!(outcome.ownership.on("r6"), None);
}
