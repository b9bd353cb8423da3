//! One CLI run: load, validate everything, (start the embedded cloud), reconcile each
//! binding, record ownership, report.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};

use super::CommonArgs;
use super::credentials::access_key;
use super::manifests::{self, Located, ManifestError, Manifests};
use super::output::{self, BindingReport, RemovedReport, Report};
use super::state::{BindingState, StateFile, state_key};
use crate::api::{AppliedRecord, DeletionPolicy, ResourceTagBinding};
use crate::cloud::TagApi;
use crate::cloud::batcher::{Batcher, DEFAULT_WINDOW};
use crate::cloud::per_resource::PerResource;
use crate::emulator::{self, EmulatorConfig, RunningEmulator};
use crate::plan::{BindingId, Claim};
use crate::reconcile::fleet::{ClaimIndex, Reach, Target, binding_id};
use crate::reconcile::gate;
use crate::reconcile::provider::{ClientOptions, ProviderClient, client_for, http_client};
use crate::reconcile::{Mode, Outcome, PassInput, run_pass, spec_violations};
use crate::tags::{Ownership, Tags};

/// What the run does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Observe and plan only.
    Plan,
    /// Write, and record ownership.
    Apply {
        /// Prune the tags of bindings that left the files.
        prune_removed: bool,
    },
}

/// A binding ready to run: its identity, provider, claims.
struct Declared<'a> {
    binding: &'a Located<ResourceTagBinding>,
    id: BindingId,
    provider: String,
    resource_ids: BTreeSet<String>,
    /// The cloud, region and resource type it reaches (`None`: its provider is missing).
    target: Option<Target>,
    /// The state key its ownership record is under: its own, or the key of the record it
    /// carries over from another provider of the same target (a binding moved to another
    /// provider keeps what it applied).
    state_key: String,
}

/// Runs the command; `Err` holds one line per problem (nothing was written then).
pub async fn run(args: &CommonArgs, command: Command) -> Result<Report, Vec<String>> {
    let manifests = manifests::load(&args.files).map_err(lines)?;
    let mut state = StateFile::load(&args.state).map_err(|e| vec![e])?;
    let cloud = match &args.embedded_cloud {
        Some(path) => Some(start_embedded_cloud(path, &manifests).await?),
        None => None,
    };
    let http = http_client().map_err(|e| vec![format!("cannot build the HTTP client: {e}")])?;
    let options = ClientOptions {
        http,
        endpoint_override: cloud.as_ref().map(RunningEmulator::url),
        retry: Default::default(),
        observer: None,
        default_rate_limit: true,
    };
    let result = run_with(&manifests, &mut state, &options, command, Strategy::Batched).await;
    if let Some(cloud) = cloud {
        cloud
            .shutdown()
            .await
            .map_err(|e| vec![format!("embedded cloud: cannot save its state: {e}")])?;
    }
    let mut report = result?;
    if command != Command::Plan {
        state.save(&args.state).map_err(|e| vec![e])?;
    }
    report.embedded_cloud = args
        .embedded_cloud
        .as_ref()
        .map(|p| p.display().to_string());
    Ok(report)
}

fn lines(errors: Vec<ManifestError>) -> Vec<String> {
    errors.iter().map(ToString::to_string).collect()
}

async fn start_embedded_cloud(
    path: &std::path::Path,
    manifests: &Manifests,
) -> Result<RunningEmulator, Vec<String>> {
    let config = EmulatorConfig {
        inventory: manifests
            .inventory
            .as_ref()
            .map(|i| i.value.clone())
            .unwrap_or_default(),
        state_file: Some(path.to_path_buf()),
        ..EmulatorConfig::default()
    };
    let listen = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    emulator::start(listen, config)
        .await
        .map_err(|e| vec![format!("embedded cloud: cannot start: {e}")])
}

/// How a run's cloud calls are made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Every binding's reads and writes coalesced per provider and resource type: each round
    /// (all reads, then all writes) closes when every binding has asked, so the calls made do
    /// not depend on timing.
    Batched,
    /// One call per resource per change, as per-resource models (Terraform, Crossplane) do:
    /// for comparison in `tagbinder bench`.
    PerResource,
}

/// Runs `command` over loaded manifests with clients built from `options`, recording
/// ownership in `state` (not saved).
pub async fn run_with(
    manifests: &Manifests,
    state: &mut StateFile,
    options: &ClientOptions,
    command: Command,
    strategy: Strategy,
) -> Result<Report, Vec<String>> {
    let declared = declared_bindings(manifests, state);
    let claims = Claims {
        index: claim_index(&declared),
        reaches: manifests
            .providers
            .iter()
            .map(|(name, p)| (name.clone(), Reach::of(&p.value.spec)))
            .collect(),
    };
    let removed: Vec<BindingState> = removed_bindings(state, &declared);
    let clients = build_clients(manifests, &declared, &removed, command, options).map_err(lines)?;
    check_bindings(manifests, &declared, &clients, state).map_err(lines)?;
    let mut report = Report {
        command: if command == Command::Plan {
            "plan"
        } else {
            "apply"
        },
        ..Report::default()
    };
    let outcomes = match strategy {
        Strategy::Batched => {
            let batchers: BTreeMap<&String, Batcher<ProviderClient>> = clients
                .iter()
                .map(|(name, client)| (name, Batcher::new(client.clone(), DEFAULT_WINDOW)))
                .collect();
            // NB: every binding joins the rounds of its provider and resource type before any
            // pass starts, so that each round waits for all of them.
            let participants = declared.iter().map(|binding| {
                batchers[&binding.provider].participant(&binding.binding.value.spec.resource_type)
            });
            reconcile_all(&declared, &claims, participants.collect(), state, command).await
        }
        Strategy::PerResource => {
            let clients = declared
                .iter()
                .map(|binding| PerResource(clients[&binding.provider].clone()))
                .collect();
            reconcile_all(&declared, &claims, clients, state, command).await
        }
    };
    for (binding, outcome) in declared.iter().zip(outcomes) {
        if command != Command::Plan && !binding.binding.value.spec.suspend {
            record(state, binding, &outcome);
        }
        report.bindings.push(binding_report(binding, &outcome));
    }
    for gone in removed {
        let target = manifests.providers.get(&gone.provider).map(|p| Target {
            reach: Reach::of(&p.value.spec),
            resource_type: gone.resource_type.clone(),
        });
        let owned = gone.applied.to_ownership();
        let claims = match &target {
            Some(target) => claims.on(
                &declared,
                target,
                owned.resources().keys().map(String::as_str),
                None,
            ),
            None => Vec::new(),
        };
        report
            .removed
            .push(handle_removed(gone, &claims, &clients, state, command).await);
    }
    Ok(report)
}

/// Bindings in precedence order (older first, then namespace/name).
fn declared_bindings<'a>(manifests: &'a Manifests, state: &StateFile) -> Vec<Declared<'a>> {
    let reach_of = |name: &str| {
        manifests
            .providers
            .get(name)
            .map(|p| Reach::of(&p.value.spec))
    };
    let mut declared: Vec<Declared<'_>> = manifests
        .bindings
        .iter()
        .map(|binding| {
            let id = binding_id(&binding.value);
            let spec = &binding.value.spec;
            let provider = spec.provider_ref.name.clone();
            let target = reach_of(&provider).map(|reach| Target {
                reach,
                resource_type: spec.resource_type.clone(),
            });
            let own_key = state_key(&provider, &id.namespace, &id.name);
            let state_key = if state.bindings.contains_key(&own_key) {
                own_key
            } else {
                carried_over(state, &id, target.as_ref(), reach_of).unwrap_or(own_key)
            };
            Declared {
                binding,
                id,
                provider,
                resource_ids: spec.resource_ids.iter().cloned().collect(),
                target,
                state_key,
            }
        })
        .collect();
    declared.sort_by(|a, b| a.id.precedence().cmp(&b.id.precedence()));
    declared
}

/// The state key of the record that a binding moved from another provider carries over:
/// the same namespace/name, reaching the same cloud, region and resource type.
fn carried_over(
    state: &StateFile,
    id: &BindingId,
    target: Option<&Target>,
    reach_of: impl Fn(&str) -> Option<Reach>,
) -> Option<String> {
    let target = target?;
    state
        .bindings
        .iter()
        .find(|(_, entry)| {
            entry.namespace == id.namespace
                && entry.name == id.name
                && entry.resource_type == target.resource_type
                && reach_of(&entry.provider).as_ref() == Some(&target.reach)
        })
        .map(|(key, _)| key.clone())
}

/// The claim index of the declared bindings, by position.
fn claim_index(declared: &[Declared<'_>]) -> ClaimIndex<usize> {
    let mut index = ClaimIndex::new();
    for (position, binding) in declared.iter().enumerate() {
        index.declare(
            position,
            &binding.provider,
            &binding.binding.value.spec.resource_type,
            binding.resource_ids.iter().map(String::as_str),
        );
    }
    index
}

fn removed_bindings(state: &StateFile, declared: &[Declared<'_>]) -> Vec<BindingState> {
    let present: BTreeSet<&str> = declared.iter().map(|d| d.state_key.as_str()).collect();
    state
        .bindings
        .iter()
        .filter(|(key, _)| !present.contains(key.as_str()))
        .map(|(_, entry)| entry.clone())
        .collect()
}

/// One client per provider in use; a provider that cannot be used is an error of the files.
fn build_clients(
    manifests: &Manifests,
    declared: &[Declared<'_>],
    removed: &[BindingState],
    command: Command,
    options: &ClientOptions,
) -> Result<BTreeMap<String, ProviderClient>, Vec<ManifestError>> {
    let mut needed: BTreeSet<&str> = declared.iter().map(|d| d.provider.as_str()).collect();
    if command
        == (Command::Apply {
            prune_removed: true,
        })
    {
        needed.extend(removed.iter().map(|r| r.provider.as_str()));
    }
    let mut clients = BTreeMap::new();
    let mut errors = Vec::new();
    for name in needed {
        let Some(provider) = manifests.providers.get(name) else {
            continue; // NB: reported per binding by check_bindings, or per removed binding.
        };
        let built = access_key(provider, manifests).and_then(|key| {
            client_for(&provider.value.spec, key, options)
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

/// Everything the reconciler would report as `Stalled` is an error of the files here, found
/// before any cloud call: unknown provider, namespace not allowed, provider rules broken.
fn check_bindings(
    manifests: &Manifests,
    declared: &[Declared<'_>],
    clients: &BTreeMap<String, ProviderClient>,
    state: &StateFile,
) -> Result<(), Vec<ManifestError>> {
    let mut errors = Vec::new();
    for binding in declared {
        let source = &binding.binding.source;
        let spec = &binding.binding.value.spec;
        let Some(provider) = manifests.providers.get(&binding.provider) else {
            errors.push(ManifestError::at(
                source,
                "spec.providerRef.name",
                format!(
                    "TagProvider {:?} is not among the given files",
                    binding.provider
                ),
            ));
            continue;
        };
        let labels = manifests
            .namespaces
            .get(&binding.id.namespace)
            .cloned()
            .unwrap_or_default();
        if let Err(refusal) = gate::precheck(&binding.binding.value, Some(&provider.value), &labels)
        {
            errors.push(ManifestError::at(
                source,
                refusal.field,
                refusal.readiness.message,
            ));
            continue;
        }
        if let Some(client) = clients.get(&binding.provider) {
            for violation in spec_violations(client, &spec.resource_type, &spec.tags) {
                let (field, rule) = violation
                    .split_once(": ")
                    .unwrap_or(("spec", violation.as_str()));
                errors.push(ManifestError::at(source, field, rule));
            }
        }
        if let Some(previous) = state.bindings.get(&binding.state_key)
            && previous.resource_type != spec.resource_type
            && !previous.applied.is_empty()
        {
            errors.push(ManifestError::at(
                source,
                "spec.resourceType",
                format!(
                    "changed from {:?} to {:?}, which would orphan the tags applied to {:?} resources; \
                     remove the binding (apply --prune-removed) before reusing its name",
                    previous.resource_type, spec.resource_type, previous.resource_type
                ),
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Runs every binding's pass at once, each with its own client (dropped when its pass ends).
async fn reconcile_all<C: TagApi>(
    declared: &[Declared<'_>],
    claims: &Claims,
    clients: Vec<C>,
    state: &StateFile,
    command: Command,
) -> Vec<Outcome> {
    let passes = clients
        .into_iter()
        .enumerate()
        .map(|(position, client)| async move {
            let outcome =
                reconcile_declared(position, declared, claims, &client, state, command).await;
            drop(client);
            outcome
        });
    futures::future::join_all(passes).await
}

async fn reconcile_declared<C: TagApi>(
    position: usize,
    declared: &[Declared<'_>],
    claims: &Claims,
    client: &C,
    state: &StateFile,
    command: Command,
) -> Outcome {
    let binding = &declared[position];
    let spec = &binding.binding.value.spec;
    let owned = state
        .bindings
        .get(&binding.state_key)
        .map(|entry| entry.applied.to_ownership())
        .unwrap_or_default();
    let claims = match &binding.target {
        Some(target) => claims.on(
            declared,
            target,
            binding
                .resource_ids
                .iter()
                .chain(owned.resources().keys())
                .map(String::as_str),
            Some(&position),
        ),
        None => Vec::new(),
    };
    let mode = match command {
        Command::Apply { .. } if !spec.suspend => Mode::Apply,
        _ => Mode::PlanOnly,
    };
    run_pass(
        client,
        &PassInput {
            binding: &binding.id,
            desired: &spec.tags,
            resource_type: &spec.resource_type,
            resource_ids: &spec.resource_ids,
            owned: &owned,
            claims: &claims,
            mode,
        },
    )
    .await
}

/// The claims of a run: the declared bindings by resource identity.
struct Claims {
    index: ClaimIndex<usize>,
    /// The cloud and region of each provider in the files.
    reaches: std::collections::HashMap<String, Reach>,
}

impl Claims {
    /// The claims of the declared bindings (but `except`) on `resource_ids` of `target`,
    /// through whichever provider, in precedence order.
    fn on<'d, 'i>(
        &self,
        declared: &'d [Declared<'_>],
        target: &Target,
        resource_ids: impl IntoIterator<Item = &'i str>,
        except: Option<&usize>,
    ) -> Vec<Claim<'d>> {
        self.index
            .claimants(
                target,
                |name| self.reaches.get(name).cloned(),
                resource_ids,
                except,
            )
            .into_iter()
            .map(|position| &declared[position])
            .map(|other| Claim {
                binding: &other.id,
                resource_ids: &other.resource_ids,
                tags: &other.binding.value.spec.tags,
            })
            .collect()
    }
}

fn record(state: &mut StateFile, binding: &Declared<'_>, outcome: &Outcome) {
    let spec = &binding.binding.value.spec;
    // NB: a record carried over from another provider moves to this one's key.
    state.bindings.remove(&binding.state_key);
    state.bindings.insert(
        state_key(&binding.provider, &binding.id.namespace, &binding.id.name),
        BindingState {
            provider: binding.provider.clone(),
            namespace: binding.id.namespace.clone(),
            name: binding.id.name.clone(),
            resource_type: spec.resource_type.clone(),
            deletion_policy: spec.deletion_policy,
            applied: AppliedRecord::from_ownership(&outcome.ownership),
        },
    );
}

fn binding_report(binding: &Declared<'_>, outcome: &Outcome) -> BindingReport {
    let spec = &binding.binding.value.spec;
    let changes = outcome
        .plan
        .as_ref()
        .map(output::changes_of)
        .unwrap_or_default();
    let planned_calls = outcome
        .plan
        .as_ref()
        .map(|p| p.tag_batches.len() + p.untag_batches.len())
        .unwrap_or(0);
    let applied = outcome.writes.calls > 0 || outcome.error.is_some();
    let (reason, message) = if spec.suspend {
        let suspended = gate::suspended();
        (suspended.reason.to_string(), suspended.message)
    } else {
        (
            outcome.readiness.reason.to_string(),
            outcome.readiness.message.clone(),
        )
    };
    BindingReport {
        binding: binding.id.to_string(),
        provider: binding.provider.clone(),
        resource_type: spec.resource_type.clone(),
        suspended: spec.suspend,
        changes,
        write_calls: if applied {
            outcome.writes.calls
        } else {
            planned_calls
        },
        ready: outcome.readiness.ready && !spec.suspend,
        reason,
        message,
        total: outcome.counts.total,
        synced: outcome.counts.synced,
        failures: outcome.failures.clone(),
        conflicts: outcome.conflicts.clone(),
    }
}

async fn handle_removed(
    gone: BindingState,
    claims: &[Claim<'_>],
    clients: &BTreeMap<String, ProviderClient>,
    state: &mut StateFile,
    command: Command,
) -> RemovedReport {
    let key = state_key(&gone.provider, &gone.namespace, &gone.name);
    let mut report = RemovedReport {
        binding: format!("{}/{}", gone.namespace, gone.name),
        provider: gone.provider.clone(),
        action: "kept",
        changes: Vec::new(),
        message: "its tags are kept; `apply --prune-removed` removes them (by its deletionPolicy)"
            .to_string(),
    };
    if command
        != (Command::Apply {
            prune_removed: true,
        })
    {
        return report;
    }
    if gone.deletion_policy == DeletionPolicy::Orphan {
        state.bindings.remove(&key);
        report.action = "orphaned";
        report.message =
            "deletionPolicy Orphan: its tags stay on the resources; record dropped".to_string();
        return report;
    }
    let Some(client) = clients.get(&gone.provider) else {
        report.action = "failed";
        report.message = format!(
            "TagProvider {:?} is not among the given files; cannot prune",
            gone.provider
        );
        return report;
    };
    let id = BindingId {
        created: None,
        namespace: gone.namespace.clone(),
        name: gone.name.clone(),
    };
    let owned: Ownership = gone.applied.to_ownership();
    let outcome = run_pass(
        client,
        &PassInput {
            binding: &id,
            desired: &Tags::new(),
            resource_type: &gone.resource_type,
            resource_ids: &[],
            owned: &owned,
            claims,
            mode: Mode::Apply,
        },
    )
    .await;
    report.changes = outcome
        .plan
        .as_ref()
        .map(output::changes_of)
        .unwrap_or_default();
    if outcome.ownership.is_empty() && outcome.error.is_none() && outcome.failures.is_empty() {
        state.bindings.remove(&key);
        report.action = "pruned";
        report.message = "its tags were removed; record dropped".to_string();
    } else {
        let mut entry = gone;
        entry.applied = AppliedRecord::from_ownership(&outcome.ownership);
        state.bindings.insert(key, entry);
        report.action = "failed";
        report.message = format!("pruning failed: {}", outcome.readiness.message);
    }
    report
}
