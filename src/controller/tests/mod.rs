//! The controller's conversation with the API server, in the kube-rs style: each test states
//! the exact requests it expects as a named scenario over a tower-test mock; an unexpected
//! extra request or a hang fails the test. Cloud calls go over real HTTP to the emulator.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::client::Body;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::Value;

use super::metrics::Metrics;
use super::{Context, FINALIZER, reconcile};
use crate::api::*;
use crate::emulator::{
    self, Account, EmulatorConfig, Inventory, InventoryResource, RunningEmulator,
};
use crate::reconcile::provider::{ClientOptions, http_client};

mod crash;
mod verifier;

use verifier::{ApiServerVerifier, Scenario, within_5s};

const KEY_ID: &str = "LTAI5tControllerTest";
const KEY_SECRET: &str = "controller-test-secret";

impl ResourceTagBinding {
    /// A binding in team-web declaring env=prod on two API groups.
    fn test() -> Self {
        let mut binding = ResourceTagBinding::new(
            "web",
            ResourceTagBindingSpec {
                provider_ref: ProviderRef {
                    name: "aliyun".into(),
                },
                resource_type: "apiGroup".into(),
                resource_ids: vec!["g1".into(), "g2".into()],
                tags: BTreeMap::from([("env".to_string(), "prod".to_string())]),
                tags_from: Vec::new(),
                deletion_policy: DeletionPolicy::Delete,
                interval: "10m".into(),
                suspend: false,
                mode: Default::default(),
                resource_selector: None,
                max_resources: None,
            },
        );
        binding.meta_mut().namespace = Some("team-web".into());
        binding.meta_mut().generation = Some(1);
        binding.meta_mut().resource_version = Some("1".into());
        binding.meta_mut().uid = Some("uid-web".into());
        binding.meta_mut().creation_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        binding
    }

    fn finalized(mut self) -> Self {
        self.finalizers_mut().push(FINALIZER.to_string());
        self
    }

    fn deleting(mut self) -> Self {
        self.meta_mut().deletion_timestamp = Some(Time(jiff::Timestamp::UNIX_EPOCH));
        self
    }

    fn with_status(mut self, status: ResourceTagBindingStatus) -> Self {
        self.status = Some(status);
        self
    }
}

fn provider(endpoint: &str) -> TagProvider {
    let mut provider = TagProvider::new(
        "aliyun",
        TagProviderSpec {
            cloud: Cloud::Alibaba,
            region: "cn-hangzhou".into(),
            alibaba: Some(AlibabaSettings {
                product: Some("apigateway".into()),
                ..AlibabaSettings::default()
            }),
            jdcloud: None,
            aws: None,
            endpoint: Some(endpoint.to_string()),
            credentials: Some(Credentials {
                secret_ref: SecretRef {
                    namespace: "tagbinder-system".into(),
                    name: "aliyun-creds".into(),
                },
            }),
            rate_limit: None,
            allowed_namespaces: None,
            default_tags: Default::default(),
        },
    );
    provider.meta_mut().generation = Some(1);
    provider
}

fn secret() -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some("aliyun-creds".into()),
            namespace: Some("tagbinder-system".into()),
            resource_version: Some("7".into()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([
            (
                "accessKeyId".to_string(),
                ByteString(KEY_ID.as_bytes().to_vec()),
            ),
            (
                "accessKeySecret".to_string(),
                ByteString(KEY_SECRET.as_bytes().to_vec()),
            ),
        ])),
        ..Secret::default()
    }
}

async fn cloud(tags: &[(&str, &[(&str, &str)])]) -> RunningEmulator {
    let resources = tags
        .iter()
        .map(|(id, tags)| InventoryResource {
            cloud: "alibaba".into(),
            region: "cn-hangzhou".into(),
            resource_type: "apiGroup".into(),
            id: id.to_string(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
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
    emulator::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config)
        .await
        .expect("emulator starts")
}

fn store<K>(objects: Vec<K>) -> Store<K>
where
    K: Resource + Clone + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone,
{
    let (reader, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Init);
    for object in objects {
        writer.apply_watcher_event(&watcher::Event::InitApply(object));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    reader
}

fn context(
    bindings: Vec<ResourceTagBinding>,
    providers: Vec<TagProvider>,
) -> (Arc<Context>, ApiServerVerifier) {
    let (mock, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = Client::new(mock, "default");
    let options = ClientOptions {
        http: http_client().expect("HTTP client"),
        endpoint_override: None,
        retry: crate::cloud::RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        },
        observer: None,
        default_rate_limit: true,
    };
    // NB: nobody hosts the passes that the fleet asks for (retries, sweeps): tests call
    // `reconcile` themselves.
    let (triggers, _) = futures::channel::mpsc::unbounded();
    let ctx = Arc::new(
        Context::new(
            client,
            Arc::new(super::cache::Bindings::of(bindings)),
            store(providers),
            super::Synced::done(),
            Arc::new(Metrics::default()),
            options,
            Arc::new(super::fleet::Fleet::new(triggers)),
        )
        .with_credentials_namespace("tagbinder-system".to_string()),
    );
    tokio::spawn(super::rounds::run(ctx.clone()));
    (ctx, ApiServerVerifier(handle))
}

fn synced_status() -> ResourceTagBindingStatus {
    let binding = ResourceTagBinding::test();
    let outcome_like = ResourceTagBindingStatus {
        observed_generation: Some(1),
        desired_tags: Some(BTreeMap::from([("env".to_string(), "prod".to_string())])),
        applied: AppliedRecord {
            applied_tags: BTreeMap::from([("env".to_string(), "prod".to_string())]),
            applied_resource_ids: vec!["g1".into(), "g2".into()],
            ..AppliedRecord::default()
        },
        resources: Some(ResourceCounts {
            total: 2,
            synced: 2,
            failed: 0,
        }),
        ..ResourceTagBindingStatus::default()
    };
    let readiness = crate::reconcile::Readiness {
        ready: true,
        reason: conditions::reason::SYNCED,
        message: "all 2 resources carry the declared tags".into(),
        stalled: false,
    };
    let with_conditions = super::status::without_pass(
        &binding.with_status(outcome_like),
        &readiness,
        jiff::Timestamp::UNIX_EPOCH,
    );
    ResourceTagBindingStatus {
        last_sync_time: Some(jiff::Timestamp::UNIX_EPOCH.to_string()),
        ..with_conditions
    }
}

/// A new binding that writes nothing (its provider is missing) gets the finalizer after its
/// status: its deletion must reach the controller, which forgets it.
#[tokio::test]
async fn a_new_binding_that_writes_nothing_gets_the_finalizer_after_its_status() {
    let binding = ResourceTagBinding::test();
    let (ctx, verifier) = context(vec![binding.clone()], vec![]);
    let scenario = verifier.run(Scenario::FinalizerAfterStatus(binding.clone()));
    reconcile(Arc::new(binding), ctx).await.expect("reconcile");
    within_5s(scenario).await.no_more_requests().await;
}

/// A new binding gets the finalizer in the write of its first intent, before its first cloud
/// write (issue 19: one write of the binding, not two).
#[tokio::test]
async fn a_new_binding_gets_the_finalizer_with_its_first_intent() {
    let cloud = cloud(&[("g1", &[]), ("g2", &[("team", "web")])]).await;
    let binding = ResourceTagBinding::test();
    let (ctx, verifier) = context(vec![binding.clone()], vec![provider(&cloud.url())]);
    let scenario = verifier.run(Scenario::IntentThenStatusPatched(binding.clone()));
    reconcile(Arc::new(binding), ctx).await.expect("reconcile");
    within_5s(scenario).await.no_more_requests().await;
    cloud.shutdown().await.expect("emulator stops");
}

#[tokio::test]
async fn a_missing_provider_is_reported_once_in_status() {
    let binding = ResourceTagBinding::test().finalized();
    let (ctx, verifier) = context(vec![binding.clone()], vec![]);
    let scenario = verifier.run(Scenario::ProviderNotFound(binding.clone()));
    reconcile(Arc::new(binding), ctx).await.expect("reconcile");
    within_5s(scenario).await.no_more_requests().await;
}

#[tokio::test]
async fn applies_tags_recording_the_intent_first() {
    let cloud = cloud(&[("g1", &[]), ("g2", &[("team", "web")])]).await;
    let binding = ResourceTagBinding::test().finalized();
    let (ctx, verifier) = context(vec![binding.clone()], vec![provider(&cloud.url())]);
    let scenario = verifier.run(Scenario::IntentThenStatusPatched(binding.clone()));
    reconcile(Arc::new(binding), ctx).await.expect("reconcile");
    within_5s(scenario).await.no_more_requests().await;
    cloud.shutdown().await.expect("emulator stops");
}

/// The emulator's apiGroups and their tags now.
async fn tags_of(cloud: &RunningEmulator) -> Value {
    reqwest::get(format!("{}/_emulator/state", cloud.url()))
        .await
        .expect("state")
        .json::<Value>()
        .await
        .expect("JSON state")["resources"]["alibaba"]["apiGroup"]
        .clone()
}

#[tokio::test]
async fn writes_nothing_when_nothing_changed() {
    let cloud = cloud(&[("g1", &[("env", "prod")]), ("g2", &[("env", "prod")])]).await;
    let binding = ResourceTagBinding::test()
        .finalized()
        .with_status(synced_status());
    let (ctx, verifier) = context(vec![binding.clone()], vec![provider(&cloud.url())]);
    let scenario = verifier.run(Scenario::NothingChanged);
    reconcile(Arc::new(binding), ctx).await.expect("reconcile");
    within_5s(scenario).await.no_more_requests().await;
    cloud.shutdown().await.expect("emulator stops");
}

#[tokio::test]
async fn cleanup_prunes_owned_tags_then_removes_the_finalizer() {
    let cloud = cloud(&[
        ("g1", &[("env", "prod"), ("team", "web")]),
        ("g2", &[("env", "prod")]),
    ])
    .await;
    let binding = ResourceTagBinding::test()
        .finalized()
        .deleting()
        .with_status(synced_status());
    let (ctx, verifier) = context(vec![binding.clone()], vec![provider(&cloud.url())]);
    let scenario = verifier.run(Scenario::CleanupOnDelete(binding.clone()));
    reconcile(Arc::new(binding), ctx).await.expect("reconcile");
    within_5s(scenario).await.no_more_requests().await;
    let text = tags_of(&cloud).await.to_string();
    assert!(
        text.contains("\"team\":\"web\""),
        "a foreign tag survives: {text}"
    );
    assert!(!text.contains("\"env\""), "owned tags are pruned: {text}");
    cloud.shutdown().await.expect("emulator stops");
}

#[test]
fn status_comparison_ignores_timestamps() {
    let status = synced_status();
    let mut later = status.clone();
    later.last_sync_time = Some("2030-01-01T00:00:00Z".into());
    for condition in &mut later.conditions {
        condition.last_transition_time = Time(jiff::Timestamp::now());
    }
    assert!(!super::status::differs(Some(&status), &later));
    later
        .applied
        .applied_tags
        .insert("owner".into(), "x".into());
    assert!(super::status::differs(Some(&status), &later));
}

#[tokio::test]
async fn orphan_policy_lets_go_without_touching_the_cloud() {
    let mut binding = ResourceTagBinding::test()
        .finalized()
        .deleting()
        .with_status(synced_status());
    binding.spec.deletion_policy = DeletionPolicy::Orphan;
    let (ctx, verifier) = context(vec![binding.clone()], vec![]);
    let scenario = tokio::spawn(async move {
        verifier
            .handle_finalizer_removal(binding_for_response())
            .await
    });
    reconcile(Arc::new(binding), ctx).await.expect("reconcile");
    within_5s(scenario).await.no_more_requests().await;
}

fn binding_for_response() -> ResourceTagBinding {
    ResourceTagBinding::test().deleting()
}

#[tokio::test]
async fn a_failed_status_write_keeps_the_ownership_record_for_the_next_pass() {
    let cloud = cloud(&[("g1", &[]), ("g2", &[])]).await;
    let binding = ResourceTagBinding::test().finalized();
    let (ctx, verifier) = context(vec![binding.clone()], vec![provider(&cloud.url())]);
    let intent_binding = binding.clone();
    let scenario = tokio::spawn(async move {
        let verifier = verifier.handle_secret_get().await;
        let (verifier, intent) = verifier.handle_intent_patch(intent_binding).await;
        assert_eq!(intent["pendingTags"]["env"], "prod", "{intent}");
        verifier.handle_status_conflict().await
    });
    reconcile(Arc::new(binding.clone()), ctx.clone())
        .await
        .expect("the binding is submitted");
    let verifier = within_5s(scenario).await;
    // NB: the fleet's round failed to write the status; it keeps the record (and asks for a
    // retry after a backoff, which this test makes itself).
    tokio::time::timeout(Duration::from_secs(5), async {
        while ctx.unrecorded(&binding).is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the confirmed record is kept");

    // NB: the cloud carries env=prod now; without the kept record the next pass would take
    // it for a tag that was there before, and never prune it.
    let expected = binding.clone();
    let scenario = tokio::spawn(async move {
        let verifier = verifier.handle_secret_get().await;
        let (verifier, patch) = verifier
            .handle_status_patch_seen(expected, "Synced", "True")
            .await;
        assert_eq!(patch["status"]["appliedTags"]["env"], "prod", "{patch}");
        assert_eq!(
            patch["status"]["appliedResourceIds"],
            serde_json::json!(["g1", "g2"])
        );
        verifier
    });
    reconcile(Arc::new(binding), ctx).await.expect("reconcile");
    within_5s(scenario).await.no_more_requests().await;
    cloud.shutdown().await.expect("emulator stops");
}

#[tokio::test]
async fn a_secret_the_controller_may_not_read_stalls_and_is_rechecked() {
    let binding = ResourceTagBinding::test().finalized();
    let (ctx, verifier) = context(vec![binding.clone()], vec![provider("http://127.0.0.1:9")]);
    let expected = binding.clone();
    let scenario = tokio::spawn(async move {
        let verifier = verifier.handle_secret_forbidden().await;
        let verifier = verifier.handle_event("CredentialsInvalid").await;
        let (verifier, patch) = verifier
            .handle_status_patch_seen(expected, "CredentialsInvalid", "False")
            .await;
        let message = patch["status"]["conditions"][0]["message"].to_string();
        assert!(
            message.contains("may not read Secret tagbinder-system/aliyun-creds"),
            "{message}"
        );
        verifier
    });
    let action = reconcile(Arc::new(binding), ctx).await.expect("reconcile");
    within_5s(scenario).await.no_more_requests().await;
    assert_ne!(
        action,
        kube::runtime::controller::Action::await_change(),
        "RBAC changes are not watched: the binding is looked at again"
    );
}

/// The namespace cache keeps of every namespace what bindings read (labels, annotations) and
/// what the cache needs, not `kubectl apply`'s copy of the object nor managed fields.
#[test]
fn the_namespace_cache_keeps_labels_and_annotations_only() {
    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
    let mut namespace: kube::core::PartialObjectMeta<Namespace> = kube::core::PartialObjectMeta {
        types: None,
        metadata: ObjectMeta {
            name: Some("team-web".into()),
            resource_version: Some("7".into()),
            labels: Some(BTreeMap::from([("team".into(), "web".into())])),
            annotations: Some(BTreeMap::from([
                ("cost".into(), "cc-1".into()),
                (
                    super::watches::LAST_APPLIED.into(),
                    "{\"apiVersion\":\"v1\"}".repeat(50),
                ),
            ])),
            managed_fields: Some(vec![ManagedFieldsEntry::default()]),
            finalizers: Some(vec!["example.com/keep".into()]),
            ..ObjectMeta::default()
        },
        _phantom: std::marker::PhantomData,
    };
    super::watches::strip_namespace(&mut namespace);
    assert_eq!(
        namespace.metadata,
        ObjectMeta {
            name: Some("team-web".into()),
            resource_version: Some("7".into()),
            labels: Some(BTreeMap::from([("team".into(), "web".into())])),
            annotations: Some(BTreeMap::from([("cost".into(), "cc-1".into())])),
            ..ObjectMeta::default()
        }
    );
}
