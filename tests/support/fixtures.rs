//! What scenarios build and wait for: CRDs, namespaces, credentials, providers, bindings, and
//! polling with a generous limit (never a wall-clock assertion).

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, ObjectMeta};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client, CustomResourceExt};
use tagbinder::api::{
    AlibabaSettings, Cloud, Credentials, DeletionPolicy, ProviderRef, ResourceTagBinding,
    ResourceTagBindingSpec, SecretRef, TagPolicy, TagProvider, TagProviderSpec,
};

use super::apiserver::ApiServer;
use super::processes::{KEY_ID, KEY_SECRET, POD_NAMESPACE};

/// How long a condition may take to come true before the scenario fails.
const PATIENCE: Duration = Duration::from_secs(60);

/// Polls `probe` until it answers `Ok`; fails with its last `Err` after [`PATIENCE`].
pub async fn eventually<T, F, Fut>(what: &str, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    eventually_within(PATIENCE, what, probe).await
}

/// As [`eventually`], with a patience of its own: for what waits on a restarted server and
/// the watch backoff of its clients, which a loaded machine stretches.
pub async fn eventually_within<T, F, Fut>(patience: Duration, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let last = match probe().await {
            Ok(value) => return value,
            Err(last) => last,
        };
        if tokio::time::Instant::now() > deadline {
            panic!("{what}: not within {patience:?}; last seen: {last}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Which CRDs a server gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Crds {
    Both,
    OnlyProviders,
    OnlyBindings,
}

/// Installs CRDs and the controller's namespace, as `tagbinder crd | kubectl apply` and the
/// chart would.
pub async fn install(client: &Client, crds: Crds) {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let wanted = match crds {
        Crds::Both => vec![
            TagProvider::crd(),
            ResourceTagBinding::crd(),
            TagPolicy::crd(),
        ],
        Crds::OnlyProviders => vec![TagProvider::crd()],
        Crds::OnlyBindings => vec![ResourceTagBinding::crd()],
    };
    for crd in wanted {
        api.create(&PostParams::default(), &crd)
            .await
            .expect("create a CRD");
    }
    create_namespace(client, POD_NAMESPACE, &[]).await;
}

/// Creates a namespace with labels.
pub async fn create_namespace(client: &Client, name: &str, labels: &[(&str, &str)]) {
    let namespace = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
}

/// Creates the credentials Secret `name` in the controller's namespace.
pub async fn create_credentials(client: &Client, name: &str) {
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            ..ObjectMeta::default()
        },
        string_data: Some(BTreeMap::from([
            ("accessKeyId".to_string(), KEY_ID.to_string()),
            ("accessKeySecret".to_string(), KEY_SECRET.to_string()),
        ])),
        ..Secret::default()
    };
    Api::<Secret>::namespaced(client.clone(), POD_NAMESPACE)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap_or_else(|e| panic!("create Secret {name}: {e}"));
}

/// A provider of the cloud emulator's API Gateway, with its credentials in `secret`.
pub fn provider(name: &str, endpoint: &str, secret: &str) -> TagProvider {
    TagProvider::new(
        name,
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
                    namespace: POD_NAMESPACE.into(),
                    name: secret.to_string(),
                },
            }),
            rate_limit: None,
            allowed_namespaces: None,
            default_tags: Default::default(),
        },
    )
}

/// The same, limited to namespaces with these labels.
pub fn provider_for_labels(
    name: &str,
    endpoint: &str,
    secret: &str,
    labels: &[(&str, &str)],
) -> TagProvider {
    let mut provider = provider(name, endpoint, secret);
    provider.spec.allowed_namespaces = Some(LabelSelector {
        match_labels: Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        match_expressions: None,
    });
    provider
}

/// Creates a provider.
pub async fn create_provider(client: &Client, provider: &TagProvider) {
    Api::<TagProvider>::all(client.clone())
        .create(&PostParams::default(), provider)
        .await
        .expect("create the TagProvider");
}

/// A binding of apiGroups, re-checked every 2 s.
pub fn binding(
    name: &str,
    provider: &str,
    ids: &[&str],
    tags: &[(&str, &str)],
) -> ResourceTagBinding {
    ResourceTagBinding::new(
        name,
        ResourceTagBindingSpec {
            provider_ref: ProviderRef {
                name: provider.to_string(),
            },
            resource_type: "apiGroup".into(),
            resource_ids: ids.iter().map(|id| id.to_string()).collect(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            tags_from: Vec::new(),
            deletion_policy: DeletionPolicy::Delete,
            interval: "2s".into(),
            suspend: false,
            mode: Default::default(),
            resource_selector: None,
            max_resources: None,
        },
    )
}

/// A scenario's corner of a server: a namespace, a provider and its own Secret (so that the
/// Secret reads in the request log count this scenario's passes).
pub struct Tenant {
    pub namespace: String,
    pub provider: String,
    pub secret: String,
    pub bindings: Api<ResourceTagBinding>,
}

impl Tenant {
    /// Creates namespace `e2e-{name}`, Secret `{name}-creds` and provider `{name}`.
    pub async fn new(client: &Client, endpoint: &str, name: &str) -> Self {
        Self::with_provider(
            client,
            name,
            provider(name, endpoint, &format!("{name}-creds")),
        )
        .await
    }

    /// The same with a provider of one's own.
    pub async fn with_provider(client: &Client, name: &str, provider: TagProvider) -> Self {
        let namespace = format!("e2e-{name}");
        create_namespace(client, &namespace, &[]).await;
        let secret = provider
            .spec
            .credentials
            .as_ref()
            .map(|c| c.secret_ref.name.clone())
            .expect("the provider names its Secret");
        create_credentials(client, &secret).await;
        create_provider(client, &provider).await;
        Tenant {
            bindings: Api::namespaced(client.clone(), &namespace),
            namespace,
            provider: name.to_string(),
            secret,
        }
    }

    /// A binding of this tenant's provider.
    pub fn binding(&self, name: &str, ids: &[&str], tags: &[(&str, &str)]) -> ResourceTagBinding {
        binding(name, &self.provider, ids, tags)
    }

    /// Creates a binding.
    pub async fn create(&self, binding: &ResourceTagBinding) -> ResourceTagBinding {
        self.bindings
            .create(&PostParams::default(), binding)
            .await
            .expect("create the binding")
    }

    /// Passes of this tenant's bindings against the cloud so far by `controller`
    /// (`tagbinder_passes_total` of the tenant's provider).
    pub async fn passes(&self, controller: &crate::support::processes::Controller) -> usize {
        let (_, metrics) = controller.endpoint("/metrics").await;
        let series = format!("tagbinder_passes_total{{provider=\"{}\"}} ", self.provider);
        metrics
            .lines()
            .find_map(|line| line.strip_prefix(&series))
            .and_then(|value| value.trim().parse::<f64>().ok())
            .unwrap_or(0.0) as usize
    }

    /// Reads of this tenant's Secret so far by `user`.
    pub fn secret_reads(&self, server: &ApiServer, user: &str) -> usize {
        server
            .calls()
            .iter()
            .filter(|c| c.is(user, "get", "secrets") && c.on(POD_NAMESPACE, &self.secret))
            .count()
    }

    /// Status writes on one binding by `user`.
    pub fn status_writes(&self, server: &ApiServer, user: &str, name: &str) -> usize {
        server
            .calls()
            .iter()
            .filter(|c| {
                c.is(user, "patch", "resourcetagbindings/status") && c.on(&self.namespace, name)
            })
            .count()
    }

    /// Writes (patches) of the binding `name` itself, not its status, by `user`: the intent
    /// annotation, the finalizer.
    pub fn object_writes(&self, server: &ApiServer, user: &str, name: &str) -> usize {
        server
            .calls()
            .iter()
            .filter(|c| c.is(user, "patch", "resourcetagbindings") && c.on(&self.namespace, name))
            .count()
    }

    /// Waits until the binding satisfies `check`.
    pub async fn wait(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&ResourceTagBinding) -> bool,
    ) -> ResourceTagBinding {
        eventually(&format!("{}/{name}: {what}", self.namespace), || async {
            match self.bindings.get_opt(name).await {
                Ok(Some(binding)) if check(&binding) => Ok(binding),
                Ok(Some(binding)) => {
                    Err(serde_json::to_string(&binding.status).unwrap_or_default())
                }
                other => Err(format!("{other:?}")),
            }
        })
        .await
    }

    /// Waits until the binding is Ready=True.
    pub async fn ready(&self, name: &str) -> ResourceTagBinding {
        self.wait(name, "Ready=True", |b| is_true(b, "Ready")).await
    }

    /// Waits until the binding is Ready=False with `reason`.
    pub async fn not_ready(&self, name: &str, reason: &str) -> ResourceTagBinding {
        self.wait(name, &format!("Ready=False, reason {reason}"), |b| {
            condition(b, "Ready").is_some_and(|c| c.status == "False" && c.reason == reason)
        })
        .await
    }

    /// Waits until the tenant's TagProvider is Ready with `status` ("True" or "False") and
    /// `reason`; returns it.
    pub async fn provider_ready(&self, client: &Client, status: &str, reason: &str) -> TagProvider {
        let api: Api<TagProvider> = Api::all(client.clone());
        eventually(
            &format!(
                "TagProvider {} Ready={status}, reason {reason}",
                self.provider
            ),
            || async {
                let provider = api.get(&self.provider).await.map_err(|e| e.to_string())?;
                let ready = provider
                    .status
                    .as_ref()
                    .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"));
                match ready {
                    Some(c) if c.status == status && c.reason == reason => Ok(provider),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await
    }

    /// Waits until the binding is gone.
    pub async fn gone(&self, name: &str) {
        eventually(&format!("{}/{name} is deleted", self.namespace), || async {
            match self.bindings.get_opt(name).await {
                Ok(None) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await
    }

    /// Events about one binding: (type, reason, note).
    pub async fn events(&self, client: &Client, name: &str) -> Vec<(String, String, String)> {
        let events = Api::<Event>::namespaced(client.clone(), &self.namespace)
            .list(&ListParams::default())
            .await
            .expect("list events");
        events
            .items
            .into_iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
            .map(|e| {
                (
                    e.type_.unwrap_or_default(),
                    e.reason.unwrap_or_default(),
                    e.note.unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Waits until an event with `reason` is there, and returns them all.
    pub async fn wait_event(
        &self,
        client: &Client,
        name: &str,
        reason: &str,
    ) -> Vec<(String, String, String)> {
        eventually(
            &format!("a {reason} event for {}/{name}", self.namespace),
            || async {
                let events = self.events(client, name).await;
                if events.iter().any(|(_, r, _)| r == reason) {
                    Ok(events)
                } else {
                    Err(format!("{events:?}"))
                }
            },
        )
        .await
    }
}

/// A condition of a binding.
pub fn condition<'a>(binding: &'a ResourceTagBinding, type_: &str) -> Option<&'a Condition> {
    binding
        .status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
}

/// True when the condition is there and True.
pub fn is_true(binding: &ResourceTagBinding, type_: &str) -> bool {
    condition(binding, type_).is_some_and(|c| c.status == "True")
}

/// Tags as a map, for comparisons.
pub fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The object's resourceVersion.
pub fn version(binding: &ResourceTagBinding) -> String {
    binding
        .metadata
        .resource_version
        .clone()
        .unwrap_or_default()
}
