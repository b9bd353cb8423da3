//! What every reconcile shares: the Kubernetes client, the caches, clients per provider,
//! metrics, events, and the retry state of each binding.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::core::PartialObjectMeta;
use kube::runtime::events::Reporter;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};
use rand::Rng;

mod clients;

pub use clients::ClientError;
use clients::{CachedClient, SECRETS_SYNC_PATIENCE};

use super::Error;
use super::cache::{Bindings, Synced};
use super::fleet::Fleet;
use super::metrics::Metrics;
use crate::api::{
    AppliedRecord, IntentRecord, PendingRecord, ResourceTagBinding, ResourceTagBindingStatus,
    TagProvider,
};
use crate::reconcile::provider::ClientOptions;

use crate::render::{BindingMeta, Inputs, NamespaceMeta, NotFound, Rendered};
use crate::tags::{Ownership, TagsByResource};

/// The labels and annotations of a namespace's metadata.
fn meta_of(metadata: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> NamespaceMeta {
    NamespaceMeta {
        labels: metadata.labels.clone().unwrap_or_default(),
        annotations: metadata.annotations.clone().unwrap_or_default(),
    }
}

/// Shared state of the controller.
pub struct Context {
    /// Kubernetes client.
    pub client: Client,
    /// Every binding the controller watches (for conflicts and claims), compact.
    pub bindings: Arc<Bindings>,
    /// Every provider.
    pub providers: Store<TagProvider>,
    /// Whether `providers` has been filled once.
    pub providers_synced: Synced,
    /// Who publishes events.
    // NB: not a shared `Recorder`: its cache of every event published in the last six minutes
    // (for series) was the largest memory consumer at 10,000 bindings, and a table that never
    // shrinks; events here are published on transitions only, so series are rare anyway.
    pub reporter: Reporter,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// How cloud clients are built.
    pub client_options: ClientOptions,
    /// The fleet: claim index and rounds.
    pub fleet: Arc<Fleet>,
    /// Metadata of the Secrets that providers may reference (the watch cache): a provider's
    /// client is rebuilt, and its Secret read, only when the Secret's resourceVersion changed.
    pub secrets: Vec<Store<PartialObjectMeta<Secret>>>,
    /// Whether every store of `secrets` has been filled once.
    pub secrets_synced: Vec<Synced>,
    secrets_patience_spent: AtomicBool,
    /// The only namespace whose Secrets providers may reference (`--credentials-namespace`).
    pub credentials_namespace: String,
    /// Held while a client is built (its Secret read).
    building: tokio::sync::Mutex<()>,
    clients: Mutex<HashMap<String, CachedClient>>,
    failures: Mutex<HashMap<String, u32>>,
    /// Ownership records (and intents) written to `status` that the cache's copy of the
    /// binding does not show yet, or whose status write failed.
    unrecorded: Arc<Unrecorded>,
    /// The providers' health last written to their status.
    pub(super) provider_health: super::provider_status::ProviderHealth,
    /// Metadata of the namespaces (the watch cache), for `tagsFrom` and `allowedNamespaces`;
    /// `None`: each is read from the API server (hosts without the watch).
    namespaces: Option<(Store<PartialObjectMeta<Namespace>>, Synced)>,
    namespaces_patience_spent: AtomicBool,
    /// The cluster's name (`run --cluster-name`), for `valueFrom.clusterName`.
    pub cluster_name: Option<String>,
    /// The TagPolicies (`None`: their CRD is not installed, or the controller may not list
    /// them: no policy is enforced).
    pub policies: Option<Arc<super::policies::Policies>>,
    /// The TagPolicies' figures, for their status and gauges.
    pub(super) policy_status: super::policy_status::PolicyStatus,
}

/// Records written to `status` that the cache's copy of the binding does not show yet, or
/// whose status write failed, by binding uid. The bindings' watch forgets each as soon as the
/// cache carries it ([`Unrecorded::seen`]): at 10,000 bindings, keeping every record until the
/// binding's next pass held some 6 MiB.
#[derive(Debug, Default)]
pub struct Unrecorded(Mutex<HashMap<String, Record>>);

impl Unrecorded {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Record>> {
        // NB: every critical section leaves the map consistent; a poisoned lock is safe.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The watch delivered `binding`: its kept record, if its status carries it now, is
    /// forgotten.
    pub fn seen(&self, binding: &ResourceTagBinding) {
        let Some(uid) = binding.uid() else { return };
        let mut kept = self.lock();
        // NB: the status is decoded only for a binding with a kept record, a few per round. An
        // intent kept in memory goes once the status carries the outcome that supersedes it,
        // not when the annotation shows up: until then it is the newest record.
        if let Some(record) = kept.get(&uid)
            && binding.status.as_ref().map(Record::of).as_ref() == Some(record)
        {
            kept.remove(&uid);
        }
    }
}

/// What a binding records of its passes: what it owns, and what a pass set out to write whose
/// outcome is not recorded yet (the crash window, see [`crate::plan::intent`]), in `status`
/// or, newer, in the intent annotation.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Record {
    /// The ownership record (`status.appliedTags`, ...).
    pub owned: Ownership,
    /// The unresolved intent (`status.pendingTags`, ...).
    pub pending: TagsByResource,
    /// Its sequence number (`status.recordSequence`, the annotation's `sequence`): a record
    /// with a higher number is newer.
    pub sequence: i64,
}

impl Record {
    /// The record a status carries.
    pub fn of(status: &ResourceTagBindingStatus) -> Self {
        Record {
            owned: status.applied.to_ownership(),
            pending: status.pending.to_intent(),
            sequence: status.record_sequence.unwrap_or(0),
        }
    }

    /// The newest record this copy of the binding carries: the intent annotation's when it is
    /// newer than `status`, else the status's (`None`: neither).
    pub fn of_binding(binding: &ResourceTagBinding) -> Option<Self> {
        let status = binding.status.as_ref();
        if let Some(intent) = binding
            .metadata
            .annotations
            .as_ref()
            .and_then(|annotations| IntentRecord::newer_than(annotations, status))
        {
            return Some(Record {
                owned: intent.applied.to_ownership(),
                pending: intent.pending.to_intent(),
                sequence: intent.sequence,
            });
        }
        status.map(Record::of)
    }

    /// True when the binding owns nothing and intends nothing.
    pub fn is_empty(&self) -> bool {
        self.owned.is_empty() && self.pending.is_empty()
    }

    /// Copies this record into `status`.
    pub fn write_to(&self, status: &mut ResourceTagBindingStatus) {
        status.applied = AppliedRecord::from_ownership(&self.owned);
        status.pending = PendingRecord::from_intent(&self.pending);
        status.record_sequence = (self.sequence > 0).then_some(self.sequence);
    }
}

impl Context {
    /// A context over the caches. Add the Secrets' cache with [`Context::with_secrets`].
    pub fn new(
        client: Client,
        bindings: Arc<Bindings>,
        providers: Store<TagProvider>,
        providers_synced: Synced,
        metrics: Arc<Metrics>,
        client_options: ClientOptions,
        fleet: Arc<Fleet>,
    ) -> Self {
        let reporter = Reporter {
            controller: "tagbinder".into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Context {
            reporter,
            client,
            bindings,
            providers,
            providers_synced,
            metrics,
            client_options,
            fleet,
            secrets: Vec::new(),
            secrets_synced: Vec::new(),
            secrets_patience_spent: AtomicBool::new(false),
            credentials_namespace: super::leader::pod_namespace(),
            building: tokio::sync::Mutex::new(()),
            clients: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            unrecorded: Arc::default(),
            provider_health: Default::default(),
            namespaces: None,
            namespaces_patience_spent: AtomicBool::new(false),
            cluster_name: None,
            policies: None,
            policy_status: Default::default(),
        }
    }

    /// The namespaces' metadata cache and when it is filled.
    pub fn with_namespaces(
        mut self,
        namespaces: Store<PartialObjectMeta<Namespace>>,
        synced: Synced,
    ) -> Self {
        self.namespaces = Some((namespaces, synced));
        self
    }

    /// The cluster's name (`run --cluster-name`).
    pub fn with_cluster_name(mut self, cluster_name: Option<String>) -> Self {
        self.cluster_name = cluster_name;
        self
    }

    /// With the TagPolicies' cache.
    pub fn with_policies(mut self, policies: Arc<super::policies::Policies>) -> Self {
        self.policies = Some(policies);
        self
    }

    /// The valid TagPolicies now, without waiting (none when they are not watched).
    pub fn policies_now(&self) -> Arc<Vec<crate::policy::Policy>> {
        self.policies
            .as_ref()
            .map(|policies| policies.now())
            .unwrap_or_default()
    }

    /// Labels and annotations of a namespace: from the watch cache once it is filled, else
    /// read from the API server (`None`: no such namespace).
    pub async fn namespace_meta(&self, namespace: &str) -> Result<Option<NamespaceMeta>, Error> {
        if let Some((store, synced)) = &self.namespaces {
            // NB: a cache that cannot fill (no list/watch on namespaces) must not hold passes
            // back for ever: after a while (once) the namespace is read instead.
            let filled = synced.is_done()
                || (!self.namespaces_patience_spent.load(Ordering::Relaxed)
                    && tokio::time::timeout(SECRETS_SYNC_PATIENCE, synced.wait())
                        .await
                        .is_ok());
            if filled {
                return Ok(store
                    .get(&ObjectRef::new(namespace))
                    .map(|ns| meta_of(&ns.metadata)));
            }
            self.namespaces_patience_spent
                .store(true, Ordering::Relaxed);
        }
        let api: Api<PartialObjectMeta<Namespace>> = Api::all(self.client.clone());
        Ok(api
            .get_metadata_opt(namespace)
            .await
            .map_err(Error::Kube)?
            .map(|ns| meta_of(&ns.metadata)))
    }

    /// A namespace's labels and annotations as the cache holds them now, without waiting or
    /// reading (what other bindings' claims are rendered from).
    pub fn cached_namespace(&self, namespace: &str) -> Option<NamespaceMeta> {
        let (store, _) = self.namespaces.as_ref()?;
        store
            .get(&ObjectRef::new(namespace))
            .map(|ns| meta_of(&ns.metadata))
    }

    /// The tags `binding` declares, rendered (`tagsFrom`, the provider's `defaultTags`) from
    /// `namespace`, the metadata of its namespace.
    pub fn render(
        &self,
        binding: &ResourceTagBinding,
        provider: &TagProvider,
        namespace: Option<&NamespaceMeta>,
    ) -> Result<Rendered, NotFound> {
        crate::render::render(
            &self.render_inputs(binding, provider, namespace),
            &provider.name_any(),
        )
    }

    /// What another binding claims: its tags rendered from the caches as they are, an absent
    /// source leaving its key out (see [`crate::render::render_lenient`]).
    pub fn claimed_tags(&self, binding: &ResourceTagBinding) -> crate::tags::Tags {
        let provider = self
            .providers
            .get(&ObjectRef::new(&binding.spec.provider_ref.name));
        if binding.spec.tags_from.is_empty()
            && provider
                .as_ref()
                .is_none_or(|p| p.spec.default_tags.is_empty())
        {
            return binding.spec.tags.clone();
        }
        let Some(provider) = provider else {
            return binding.spec.tags.clone();
        };
        let namespace = binding
            .spec
            .reads_namespace()
            .then(|| self.cached_namespace(&binding.namespace().unwrap_or_default()))
            .flatten();
        crate::render::render_lenient(
            &self.render_inputs(binding, &provider, namespace.as_ref()),
            &provider.name_any(),
        )
    }

    fn render_inputs<'a>(
        &'a self,
        binding: &'a ResourceTagBinding,
        provider: &'a TagProvider,
        namespace: Option<&'a NamespaceMeta>,
    ) -> Inputs<'a> {
        Inputs {
            spec: &binding.spec,
            binding: BindingMeta {
                namespace: binding.metadata.namespace.as_deref().unwrap_or_default(),
                name: binding.metadata.name.as_deref().unwrap_or_default(),
                labels: binding.metadata.labels.as_ref(),
                annotations: binding.metadata.annotations.as_ref(),
            },
            namespace,
            defaults: &provider.spec.default_tags,
            cluster_name: self.cluster_name.as_deref(),
        }
    }

    /// Writes `TagProvider.status` from the passes (cluster-wide mode only: a namespaced
    /// controller sees some of a provider's bindings, and another one may see others).
    pub fn with_provider_status(mut self) -> Self {
        self.provider_health = super::provider_status::ProviderHealth::enabled();
        self
    }

    /// Shares the kept records with the bindings' watch, which forgets each once the cache
    /// carries it ([`Unrecorded::seen`]).
    pub fn with_unrecorded(mut self, unrecorded: Arc<Unrecorded>) -> Self {
        self.unrecorded = unrecorded;
        self
    }

    /// The only namespace whose Secrets providers may reference (default: the pod's).
    pub fn with_credentials_namespace(mut self, namespace: String) -> Self {
        self.credentials_namespace = namespace;
        self
    }

    /// The Secrets' metadata cache and when it is filled.
    pub fn with_secrets(
        mut self,
        secrets: Vec<(Store<PartialObjectMeta<Secret>>, Synced)>,
    ) -> Self {
        (self.secrets, self.secrets_synced) = secrets.into_iter().unzip();
        self
    }

    /// Labels of a namespace (for `allowedNamespaces`), with the automatic name label: from
    /// the namespaces' watch cache (issue 23: before, every pass read its namespace).
    pub async fn namespace_labels(
        &self,
        namespace: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, Error> {
        let mut labels = self
            .namespace_meta(namespace)
            .await?
            .map(|ns| ns.labels)
            .unwrap_or_default();
        labels.insert(
            "kubernetes.io/metadata.name".to_string(),
            namespace.to_string(),
        );
        Ok(labels)
    }

    /// The next retry delay of a binding that failed: exponential with full jitter, 5 s to
    /// 5 min.
    pub fn backoff(&self, binding: &str) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let count = failures.entry(binding.to_string()).or_default();
        *count = count.saturating_add(1);
        let ceiling = Duration::from_secs(5)
            .saturating_mul(1 << (*count - 1).min(6))
            .min(Duration::from_secs(300));
        let floor = ceiling / 2;
        floor + ceiling.mul_f64(rand::rng().random_range(0.0..0.5))
    }

    /// The ownership record a pass starts from: the one kept in memory, if any (it is newer
    /// than what this copy of the binding carries), else the newer of the intent annotation's
    /// and the status's. A kept record is forgotten once the cached copy's status carries it.
    // NB: a status write that succeeded is not yet in the cache's copy of the binding, and a
    // pass of the same binding may start from that copy before the watch delivers the new
    // one; starting from its stale record, that pass would take the tags the binding wrote
    // for tags that were already there and drop them from the record.
    pub fn owned(&self, binding: &ResourceTagBinding) -> Ownership {
        self.record(binding).owned
    }

    /// The ownership record and the unresolved intent a pass starts from, as [`Context::owned`]
    /// chooses them (both from the same write).
    pub fn record(&self, binding: &ResourceTagBinding) -> Record {
        let in_status = binding.status.as_ref().map(Record::of);
        let mut unrecorded = self.unrecorded.lock();
        if let Some(uid) = binding.uid()
            && let Some(kept) = unrecorded.get(&uid)
        {
            let kept = kept.clone();
            if in_status.as_ref() == Some(&kept) {
                unrecorded.remove(&uid);
            }
            return kept;
        }
        Record::of_binding(binding).unwrap_or_default()
    }

    /// The record written last whose status the cache does not show yet (or whose write
    /// failed), if any.
    pub fn unrecorded(&self, binding: &ResourceTagBinding) -> Option<Record> {
        let unrecorded = self.unrecorded.lock();
        binding.uid().and_then(|uid| unrecorded.get(&uid).cloned())
    }

    /// Keeps a record being written to `status` until `status` (as the cache shows it) carries
    /// it, so that the next pass does not mistake the tags this binding wrote for tags that
    /// were already there (which it would then never prune).
    pub fn ownership_unrecorded(&self, binding: &ResourceTagBinding, record: Record) {
        if let Some(uid) = binding.uid() {
            self.unrecorded.lock().insert(uid, record);
        }
    }

    /// The record is in `status` now (or the binding is gone).
    pub fn ownership_recorded(&self, binding: &ResourceTagBinding) {
        if let Some(uid) = binding.uid() {
            self.unrecorded.lock().remove(&uid);
        }
    }

    /// Forgets the failures of a binding after a pass without retryable errors.
    pub fn reset_backoff(&self, binding: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(binding);
    }
}

/// `spec.interval` with ±10% jitter, so that many bindings do not resync in the same second.
pub fn jittered(interval: Duration) -> Duration {
    interval.mul_f64(rand::rng().random_range(0.9..1.1))
}

#[cfg(test)]
mod unrecorded_tests {
    use super::*;
    use crate::api::{AppliedRecord, ResourceTagBindingSpec};

    fn binding(status: Option<ResourceTagBindingStatus>) -> ResourceTagBinding {
        let spec: ResourceTagBindingSpec = serde_json::from_value(serde_json::json!({
            "providerRef": {"name": "p"}, "resourceType": "apiGroup",
            "resourceIds": ["g1"], "tags": {"env": "prod"}
        }))
        .expect("a spec");
        let mut binding = ResourceTagBinding::new("web", spec);
        binding.metadata.uid = Some("uid-1".into());
        binding.status = status;
        binding
    }

    #[test]
    fn the_watch_forgets_a_kept_record_once_the_cache_carries_it() {
        let mut owned = Ownership::default();
        owned.set("g1", [("env".to_string(), "prod".to_string())].into());
        let written = ResourceTagBindingStatus {
            applied: AppliedRecord::from_ownership(&owned),
            ..ResourceTagBindingStatus::default()
        };
        let unrecorded = Unrecorded::default();
        unrecorded
            .lock()
            .insert("uid-1".into(), Record::of(&written));
        unrecorded.seen(&binding(None));
        assert_eq!(unrecorded.lock().len(), 1, "a stale copy keeps it");
        unrecorded.seen(&binding(Some(written)));
        assert!(unrecorded.lock().is_empty(), "the written copy releases it");
    }
}
