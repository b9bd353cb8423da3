//! A provider's cloud client as the controller builds it: from the provider's Secret (read
//! from the credentials namespace only, through the Secrets' watch cache) or the credentials
//! chain, cached per provider until the provider's generation or the Secret's
//! resourceVersion changes.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use super::Context;
use crate::api::{Cloud, TagProvider};
use crate::cloud::alibaba::chain::alibaba_chain;
use crate::cloud::batcher::{Batcher, DEFAULT_WINDOW};
use crate::cloud::credentials::{self, Credentials};
use crate::controller::Error;
use crate::controller::fleet::CloudClient;
use crate::reconcile::provider::{ClientOptions, client_for};
use crate::reconcile::secret::{
    self, ACCESS_KEY_ID, ACCESS_KEY_SECRET, SECRET_ACCESS_KEY, SECURITY_TOKEN, SESSION_TOKEN,
};

/// How long a pass waits for the Secrets' cache to fill before it reads the Secret itself.
pub(super) const SECRETS_SYNC_PATIENCE: Duration = Duration::from_secs(10);

/// The "Secret version" of a client built from the credentials chain (no Secret).
const CHAIN: &str = "chain";

pub(super) struct CachedClient {
    /// Provider generation + Secret resourceVersion the client was built from.
    version: String,
    client: CloudClient,
}

/// Why a provider's client cannot be built: shown in the binding's Ready condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError {
    /// Secret missing, key missing, or not UTF-8: `CredentialsInvalid`.
    Credentials(String),
    /// The controller may not read the Secret (403): `CredentialsInvalid`, until RBAC changes.
    Forbidden(String),
    /// The provider's Secret is outside the credentials namespace, the only namespace whose
    /// Secrets the controller reads: `SecretNotInCredentialsNamespace`.
    OutsideCredentialsNamespace(String),
    /// Provider spec unusable: `InvalidSpec`.
    Spec(String),
}

impl Context {
    /// The resourceVersion of a Secret in the watch cache, once it is filled (`None`: not
    /// known there; the Secret is read).
    async fn cached_secret_version(&self, namespace: &str, name: &str) -> Option<String> {
        for synced in &self.secrets_synced {
            if synced.is_done() {
                continue;
            }
            // NB: a cache that cannot fill (no list/watch on Secrets) must not hold passes
            // back for ever: after a while (once) the Secret is read instead.
            if self.secrets_patience_spent.load(Ordering::Relaxed)
                || tokio::time::timeout(SECRETS_SYNC_PATIENCE, synced.wait())
                    .await
                    .is_err()
            {
                self.secrets_patience_spent.store(true, Ordering::Relaxed);
                return None;
            }
        }
        let reference = ObjectRef::new(name).within(namespace);
        self.secrets
            .iter()
            .find_map(|store| store.get(&reference))
            .and_then(|secret| secret.resource_version())
    }

    /// The cloud client of a provider, rebuilt when the provider or its Secret changed. The
    /// Secret is read only then: the watch cache tells its resourceVersion.
    pub async fn cloud_client(
        &self,
        provider: &TagProvider,
    ) -> Result<Result<CloudClient, ClientError>, Error> {
        let name = provider.name_any();
        if let Some(cached) = self.cached_client(provider).await {
            return Ok(Ok(cached));
        }
        // NB: one pass at a time reads a Secret and builds a client; the others then find it
        // cached (at start-up, every concurrent pass would read the Secret otherwise).
        let _building = self.building.lock().await;
        if let Some(cached) = self.cached_client(provider).await {
            return Ok(Ok(cached));
        }
        let (credentials, secret_version) = match self.credentials(provider).await? {
            Ok(found) => found,
            Err(error) => return Ok(Err(error)),
        };
        let version = format!(
            "{}/{}",
            provider.metadata.generation.unwrap_or_default(),
            secret_version
        );
        {
            // NB: the lock guards a map lookup only.
            let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(cached) = clients.get(&name).filter(|c| c.version == version) {
                return Ok(Ok(cached.client.clone()));
            }
        }
        let options = ClientOptions {
            observer: Some(self.metrics.of_provider(&name)),
            ..self.client_options.clone()
        };
        let client = match client_for(&provider.spec, credentials, &options) {
            Ok(client) => Batcher::new(client, DEFAULT_WINDOW),
            Err(error) => {
                return Ok(Err(ClientError::Spec(format!(
                    "TagProvider {name:?}: {error}"
                ))));
            }
        };
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.insert(
            name,
            CachedClient {
                version,
                client: client.clone(),
            },
        );
        Ok(Ok(client))
    }

    /// The AWS account of provider `name` as its cached client knows it (`aws.accountId`, or
    /// the one STS named); `None` before its client asked, and for the other clouds.
    pub fn known_aws_account(&self, name: &str) -> Option<String> {
        let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients.get(name)?.client.inner().known_aws_account()
    }

    /// The provider's client, if it was built from its current spec and from the Secret's
    /// resourceVersion in the watch cache.
    async fn cached_client(&self, provider: &TagProvider) -> Option<CloudClient> {
        let secret_version = match &provider.spec.credentials {
            Some(credentials) => {
                let reference = &credentials.secret_ref;
                self.cached_secret_version(&reference.namespace, &reference.name)
                    .await?
            }
            // NB: the chain's client keeps its temporary credentials and renews them itself.
            None => CHAIN.to_string(),
        };
        let version = format!(
            "{}/{}",
            provider.metadata.generation.unwrap_or_default(),
            secret_version
        );
        // NB: the lock guards a map lookup only.
        let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .get(&provider.name_any())
            .filter(|c| c.version == version)
            .map(|c| c.client.clone())
    }

    /// The credentials of a provider without `spec.credentials`: Alibaba Cloud's chain (RRSA,
    /// then the ECS instance RAM role), from the controller's environment.
    fn chain(&self, provider: &TagProvider) -> Result<(Credentials, String), ClientError> {
        let name = provider.name_any();
        match provider.spec.cloud {
            Cloud::Jdcloud => Err(ClientError::Credentials(format!(
                "TagProvider {name:?} has no spec.credentials.secretRef: JD Cloud's access key \
                 comes from a Secret (keys {ACCESS_KEY_ID}, {ACCESS_KEY_SECRET}, optionally \
                 {SECURITY_TOKEN})"
            ))),
            // NB: the STS of web identity is the provider's one endpoint when it has one.
            Cloud::Aws => match crate::cloud::aws::chain::aws_chain(
                &credentials::process_var,
                self.client_options
                    .endpoint_override
                    .as_deref()
                    .or(provider.spec.endpoint.as_deref()),
                &provider.spec.region,
            ) {
                Ok(source) => Ok((
                    Credentials::Refreshing(Arc::new(credentials::Refreshing::new(
                        credentials::TemporarySource::Aws(source),
                        self.client_options.http.clone(),
                    ))),
                    CHAIN.to_string(),
                )),
                Err(error) => Err(ClientError::Credentials(format!(
                    "TagProvider {name:?} has no spec.credentials: {error} (a Secret holds \
                     keys {ACCESS_KEY_ID}, {SECRET_ACCESS_KEY}, optionally {SESSION_TOKEN})"
                ))),
            },
            Cloud::Alibaba => match alibaba_chain(&credentials::process_var, true) {
                Ok(source) => Ok((
                    Credentials::Refreshing(Arc::new(credentials::Refreshing::new(
                        source,
                        self.client_options.http.clone(),
                    ))),
                    CHAIN.to_string(),
                )),
                Err(error) => Err(ClientError::Credentials(format!(
                    "TagProvider {name:?} has no spec.credentials: {error}"
                ))),
            },
        }
    }

    /// Reads the provider's Secret, or takes the chain. The message of an unusable Secret names
    /// the Secret and the key, never a value.
    async fn credentials(
        &self,
        provider: &TagProvider,
    ) -> Result<Result<(Credentials, String), ClientError>, Error> {
        let name = provider.name_any();
        let Some(credentials) = &provider.spec.credentials else {
            return Ok(self.chain(provider));
        };
        let reference = &credentials.secret_ref;
        if reference.namespace != self.credentials_namespace {
            // NB: the Secret is not read: the controller has no access outside the credentials
            // namespace, and must not use any it was granted by mistake.
            return Ok(Err(ClientError::OutsideCredentialsNamespace(format!(
                "TagProvider {name:?} spec.credentials.secretRef names Secret {}/{}, but the \
                 controller reads credentials Secrets only in its credentials namespace {:?} \
                 (tagbinder run --credentials-namespace, Helm value credentialsNamespace): move \
                 the Secret to namespace {:?} and set secretRef.namespace to it",
                reference.namespace,
                reference.name,
                self.credentials_namespace,
                self.credentials_namespace
            ))));
        }
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &reference.namespace);
        let secret = match api.get_opt(&reference.name).await {
            Ok(Some(secret)) => secret,
            Ok(None) => {
                return Ok(Err(ClientError::Credentials(format!(
                    "Secret {}/{} (TagProvider {name:?} spec.credentials.secretRef) does not exist",
                    reference.namespace, reference.name
                ))));
            }
            // NB: the apiserver's message names the user and the Secret, never its data.
            Err(kube::Error::Api(status)) if status.code == 403 => {
                return Ok(Err(ClientError::Forbidden(format!(
                    "the controller may not read Secret {}/{} (TagProvider {name:?} spec.credentials.secretRef): {}; grant it get on secrets in namespace {}",
                    reference.namespace, reference.name, status.message, reference.namespace
                ))));
            }
            Err(error) => return Err(Error::Kube(error)),
        };
        let data = secret.data.as_ref();
        let key = match secret::access_key(|key| {
            let bytes = data?.get(key)?;
            Some(String::from_utf8(bytes.0.clone()).ok())
        }) {
            Ok(key) => key,
            Err(error) => {
                return Ok(Err(ClientError::Credentials(format!(
                    "Secret {}/{} {error}",
                    reference.namespace, reference.name
                ))));
            }
        };
        Ok(Ok((
            key.into(),
            secret.resource_version().unwrap_or_default(),
        )))
    }
}
