//! The declared bindings of a run: each rendered, its ids canonical, its selector resolved,
//! and the claims they make on each other; and the clients of the providers in use.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::{ResourceTagBinding, TagProviderSpec};
use crate::cli::credentials::credentials;
use crate::cli::manifests::{Located, ManifestError, Manifests};
use crate::cli::state::{BindingState, StateFile, state_key};
use crate::plan::{BindingId, Claim};
use crate::reconcile::identity::{ClaimIndex, Target, binding_id, canonical_ids};
use crate::reconcile::provider::{ClientOptions, ProviderClient, client_for};
use crate::reconcile::select::{self, Resolution, Selector};
use crate::render::{self, BindingMeta, Inputs, NamespaceMeta, NotFound, Rendered};
use crate::tags::Tags;

use super::Command;

/// A binding ready to run: its identity, provider, claims.
pub(super) struct Declared<'a> {
    pub(super) binding: &'a Located<ResourceTagBinding>,
    pub(super) id: BindingId,
    pub(super) provider: String,
    /// The resources of its pass: `resourceIds`, or what its selector resolved to.
    pub(super) resource_ids: Vec<String>,
    /// The same, for claims.
    pub(super) claimed: BTreeSet<String>,
    /// A selector binding's resolution (`None` for an id list).
    pub(super) resolution: Option<Resolution>,
    /// The cloud, region and resource type it reaches (`None`: its provider is missing).
    pub(super) target: Option<Target>,
    /// Its declared tags: `tags`, `tagsFrom` rendered from the files' Namespace documents,
    /// its own metadata and `--cluster-name`, and its provider's `defaultTags`; or the
    /// required sources that are absent (an error of the files).
    pub(super) rendered: Result<Rendered, NotFound>,
    /// The declared tags of the pass (and its claims): the rendering, or, when it failed, what
    /// could be rendered.
    pub(super) desired: Tags,
    /// Its standing against the TagPolicies of the files (judged after the checks).
    pub(super) verdict: crate::policy::Verdict,
}

/// Bindings in precedence order (older first, then namespace/name). A binding's age is its
/// `creationTimestamp` when the file gives one, else when a run first recorded it in the state
/// file, else this run's start: a binding new to the state file is younger than every
/// recorded one, whatever its name.
pub(super) fn declared_bindings<'m>(
    manifests: &'m Manifests,
    state: &StateFile,
    now: jiff::Timestamp,
) -> Vec<Declared<'m>> {
    let mut declared: Vec<Declared<'m>> = manifests
        .bindings
        .iter()
        .map(|binding| {
            let mut id = binding_id(&binding.value);
            if id.created.is_none() {
                let recorded = state.bindings.get(&state_key(&id.namespace, &id.name));
                id.created = Some(recorded.map_or(now.as_second(), BindingState::age_seconds));
            }
            let spec = &binding.value.spec;
            let provider = spec.provider_ref.name.clone();
            let target = manifests
                .providers
                .get(&provider)
                .map(|p| Target::of(&p.value.spec, &spec.resource_type));
            let no_defaults = Tags::new();
            let defaults = manifests
                .providers
                .get(&provider)
                .map_or(&no_defaults, |p| &p.value.spec.default_tags);
            let namespace = manifests
                .namespaces
                .get(&id.namespace)
                .map(|labels| NamespaceMeta {
                    labels: labels.clone(),
                    annotations: manifests
                        .namespace_annotations
                        .get(&id.namespace)
                        .cloned()
                        .unwrap_or_default(),
                });
            let inputs = Inputs {
                spec,
                binding: BindingMeta {
                    namespace: &id.namespace,
                    name: &id.name,
                    labels: binding.value.metadata.labels.as_ref(),
                    annotations: binding.value.metadata.annotations.as_ref(),
                },
                namespace: namespace.as_ref(),
                defaults,
                cluster_name: manifests.cluster_name.as_deref(),
            };
            let rendered = render::render(&inputs, &provider);
            let desired = match &rendered {
                Ok(rendered) => rendered.tags.clone(),
                Err(_) => render::render_lenient(&inputs, &provider),
            };
            // NB: one resource is one id whichever form names it (an AWS bare id and its ARN).
            let resource_ids = match manifests.providers.get(&provider) {
                Some(p) => {
                    canonical_ids(&p.value.spec, None, &spec.resource_type, &spec.resource_ids)
                        .into_owned()
                }
                None => spec.resource_ids.clone(),
            };
            Declared {
                binding,
                id,
                provider,
                claimed: resource_ids.iter().cloned().collect(),
                resource_ids,
                resolution: None,
                target,
                rendered,
                desired,
                verdict: Default::default(),
            }
        })
        .collect();
    declared.sort_by(|a, b| a.id.precedence().cmp(&b.id.precedence()));
    declared
}

pub(super) fn removed_bindings(state: &StateFile, declared: &[Declared<'_>]) -> Vec<BindingState> {
    let present: BTreeSet<String> = declared
        .iter()
        .map(|d| state_key(&d.id.namespace, &d.id.name))
        .collect();
    state
        .bindings
        .iter()
        .filter(|(key, _)| !present.contains(key.as_str()))
        .map(|(_, entry)| entry.clone())
        .collect()
}

/// The ids of the bindings of AWS providers without `aws.accountId`, composed with the
/// account STS names (once per provider; a provider whose STS call fails keeps its bare ids,
/// and its passes report why).
pub(super) async fn canonical_with_accounts(
    manifests: &Manifests,
    declared: &mut [Declared<'_>],
    clients: &BTreeMap<String, ProviderClient>,
) {
    let mut accounts: BTreeMap<&str, Option<String>> = BTreeMap::new();
    for binding in declared.iter_mut() {
        let Some(provider) = manifests.providers.get(&binding.provider) else {
            continue;
        };
        let spec = &provider.value.spec;
        let named = spec.aws.as_ref().and_then(|aws| aws.account_id.as_ref());
        if spec.cloud != crate::api::Cloud::Aws || named.is_some() {
            continue;
        }
        let Some(client) = clients.get(&binding.provider) else {
            continue;
        };
        let account = match accounts.get(binding.provider.as_str()) {
            Some(account) => account.clone(),
            None => {
                let account = client.aws_account().await;
                let name = manifests
                    .providers
                    .get_key_value(&binding.provider)
                    .map_or("", |(name, _)| name.as_str());
                accounts.insert(name, account.clone());
                account
            }
        };
        let spec_ids = &binding.binding.value.spec.resource_ids;
        let ids = canonical_ids(
            spec,
            account.as_deref(),
            &binding.binding.value.spec.resource_type,
            spec_ids,
        )
        .into_owned();
        if binding.binding.value.spec.resource_selector.is_none() {
            binding.claimed = ids.iter().cloned().collect();
            binding.resource_ids = ids;
        }
    }
}

/// Resolves every selector binding (one list-by-tag read per provider, resource type and
/// distinct `matchTags`), before any claim is looked up: its selection is its claim.
pub(super) async fn resolve_selectors(
    declared: &mut [Declared<'_>],
    clients: &BTreeMap<String, ProviderClient>,
    state: &StateFile,
) {
    let mut groups: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (position, binding) in declared.iter().enumerate() {
        if binding.binding.value.spec.resource_selector.is_some() {
            let group = (
                binding.provider.clone(),
                binding.binding.value.spec.resource_type.clone(),
            );
            groups.entry(group).or_default().push(position);
        }
    }
    for ((provider, resource_type), positions) in groups {
        let Some(client) = clients.get(&provider) else {
            continue; // NB: check_bindings refused the run already.
        };
        let selectors: Vec<Selector<'_>> = positions
            .iter()
            .filter_map(|&position| {
                let spec = &declared[position].binding.value.spec;
                Some(Selector {
                    match_tags: &spec.resource_selector.as_ref()?.match_tags,
                    cap: spec.max_resources(),
                })
            })
            .collect();
        let resolutions = select::resolve_all(client, &resource_type, &selectors).await;
        for (position, resolution) in positions.into_iter().zip(resolutions) {
            let binding = &mut declared[position];
            binding.resource_ids = resolution.ids().map(<[String]>::to_vec).unwrap_or_default();
            binding.claimed = match resolution.ids() {
                Some(ids) => ids.iter().cloned().collect(),
                // NB: a refused resolution (a failed read, too many matches) keeps the claims
                // of the last selection, as the controller's claim index does.
                None => state
                    .bindings
                    .get(&state_key(&binding.id.namespace, &binding.id.name))
                    .map(|record| record.selected.iter().cloned().collect())
                    .unwrap_or_default(),
            };
            binding.resolution = Some(resolution);
        }
    }
}

/// The claim index of the declared bindings, by position.
pub(super) fn claim_index(declared: &[Declared<'_>]) -> ClaimIndex<usize> {
    let mut index = ClaimIndex::new();
    for (position, binding) in declared.iter().enumerate() {
        index.declare(
            position,
            &binding.provider,
            &binding.binding.value.spec.resource_type,
            binding.claimed.iter().map(String::as_str),
        );
    }
    index
}

/// One client per provider in use; a provider that cannot be used is an error of the files.
pub(super) fn build_clients(
    manifests: &Manifests,
    declared: &[Declared<'_>],
    removed: &[BindingState],
    command: Command,
    options: &ClientOptions,
) -> Result<BTreeMap<String, ProviderClient>, Vec<ManifestError>> {
    let mut needed: BTreeSet<&str> = declared.iter().map(|d| d.provider.as_str()).collect();
    // NB: the providers that policies' scans read through (issue 24).
    needed.extend(
        manifests
            .policies
            .values()
            .flat_map(|p| &p.value.spec.scan)
            .map(|scan| scan.provider_ref.name.as_str()),
    );
    if command.prunes_removed() {
        needed.extend(removed.iter().map(|r| r.provider.as_str()));
    }
    let mut clients = BTreeMap::new();
    let mut errors = Vec::new();
    for name in needed {
        let Some(provider) = manifests.providers.get(name) else {
            continue; // NB: reported per binding by check_bindings, or per removed binding.
        };
        let built = credentials(provider, manifests, options).and_then(|credentials| {
            client_for(&provider.value.spec, credentials, options)
                .map_err(|e| ManifestError::at(&provider.source, e.field, e.rule))
        });
        match built {
            Ok(client) => {
                clients.insert(name.to_string(), client);
            }
            Err(error) => errors.push(error),
        }
    }
    if errors.is_empty() {
        Ok(clients)
    } else {
        Err(errors)
    }
}

/// The claims of a run: the declared bindings by resource identity.
pub(super) struct Claims {
    pub(super) index: ClaimIndex<usize>,
    /// The providers in the files, by name: what each reaches.
    pub(super) providers: std::collections::HashMap<String, TagProviderSpec>,
}

impl Claims {
    /// The claims of `declared`, reaching resources through the providers of `manifests`.
    pub(super) fn of(declared: &[Declared<'_>], manifests: &Manifests) -> Self {
        Claims {
            index: claim_index(declared),
            providers: manifests
                .providers
                .iter()
                .map(|(name, p)| (name.clone(), p.value.spec.clone()))
                .collect(),
        }
    }

    /// The claims of the declared bindings (but `except`) on `resource_ids` of `target`,
    /// through whichever provider, in precedence order.
    pub(super) fn on<'d, 'i>(
        &self,
        declared: &'d [Declared<'_>],
        target: &Target,
        resource_ids: impl IntoIterator<Item = &'i str>,
        except: Option<&usize>,
    ) -> Vec<Claim<'d>> {
        self.index
            .claimants(
                target,
                |name, resource_type| {
                    let spec = self.providers.get(name)?;
                    Some(Target::of(spec, resource_type))
                },
                resource_ids,
                except,
            )
            .into_iter()
            .map(|position| &declared[position])
            .filter(|other| other.binding.value.spec.mode.claims())
            .map(|other| Claim {
                binding: &other.id,
                resource_ids: &other.claimed,
                tags: &other.desired,
            })
            .collect()
    }
}
