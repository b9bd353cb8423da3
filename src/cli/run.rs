//! One CLI run: load, validate everything, (start the embedded cloud), reconcile each
//! binding, record ownership, report.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use super::CommonArgs;
use super::credentials::access_key;
use super::journal::{self, Journal, JournalHandle, Journaled};
use super::manifests::{self, Located, ManifestError, Manifests};
use super::output::{self, BindingReport, RemovedReport, Report};
use super::state::{BindingState, StateFile, StateLock, state_key};
use crate::api::{AppliedRecord, BindingMode, DeletionPolicy, ResourceTagBinding};
use crate::cloud::TagApi;
use crate::cloud::batcher::{Batcher, DEFAULT_WINDOW};
use crate::cloud::per_resource::PerResource;
use crate::emulator::{self, EmulatorConfig, RunningEmulator};
use crate::plan::{BindingId, Claim};
use crate::reconcile::fleet::{ClaimIndex, Reach, Target, binding_id};
use crate::reconcile::gate;
use crate::reconcile::provider::{ClientOptions, ProviderClient, client_for, http_client};
use crate::reconcile::select::{self, Resolution, Selector};
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
    /// The resources of its pass: `resourceIds`, or what its selector resolved to.
    resource_ids: Vec<String>,
    /// The same, for claims.
    claimed: BTreeSet<String>,
    /// A selector binding's resolution (`None` for an id list).
    resolution: Option<Resolution>,
    /// The cloud, region and resource type it reaches (`None`: its provider is missing).
    target: Option<Target>,
}

/// Runs the command; `Err` holds one line per problem (nothing was written then).
pub async fn run(args: &CommonArgs, command: Command) -> Result<Report, Vec<String>> {
    let manifests = manifests::load(&args.files).map_err(lines)?;
    // NB: held until this function returns, after the state file is saved; `apply` also
    // checks here, before any cloud write, that the state file can be written.
    let _lock = match command {
        Command::Plan => StateLock::for_plan(&args.state, args.lock_timeout),
        Command::Apply { .. } => StateLock::for_apply(&args.state, args.lock_timeout).map(Some),
    }
    .map_err(|e| vec![e])?;
    let mut state = StateFile::load(&args.state).map_err(|e| vec![e])?;
    journal::load_pending(&args.state, &mut state).map_err(|e| vec![e])?;
    if command != Command::Plan {
        let journal = Journal::open(&args.state, &state);
        state.journal = JournalHandle(Some(Arc::new(journal)));
    }
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
        journal::clear(&args.state).map_err(|e| vec![e])?;
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
    let mut declared = declared_bindings(manifests);
    let removed: Vec<BindingState> = removed_bindings(state, &declared);
    let clients = build_clients(manifests, &declared, &removed, command, options).map_err(lines)?;
    check_bindings(manifests, &declared, &clients, state).map_err(lines)?;
    // NB: writes a killed run recorded but did not confirm: claimed where the cloud carries
    // the intended values, before any pass plans from the record.
    journal::resolve_pending(state, |provider, resource_type, ids| {
        let client = clients.get(&provider).cloned();
        async move { client?.list_tags(&resource_type, &ids).await.ok() }
    })
    .await;
    resolve_selectors(&mut declared, &clients).await;
    let claims = Claims {
        index: claim_index(&declared),
        reaches: manifests
            .providers
            .iter()
            .map(|(name, p)| (name.clone(), Reach::of(&p.value.spec)))
            .collect(),
    };
    let removed: Vec<BindingState> = removed_bindings(state, &declared);
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
                let participant = batchers[&binding.provider]
                    .participant(&binding.binding.value.spec.resource_type);
                journaled(participant, binding, &state.journal)
            });
            reconcile_all(&declared, &claims, participants.collect(), state, command).await
        }
        Strategy::PerResource => {
            let clients = declared
                .iter()
                .map(|binding| {
                    let client = PerResource(clients[&binding.provider].clone());
                    journaled(client, binding, &state.journal)
                })
                .collect();
            reconcile_all(&declared, &claims, clients, state, command).await
        }
    };
    for (binding, outcome) in declared.iter().zip(outcomes) {
        if command != Command::Plan && !binding.binding.value.spec.suspend {
            record(state, manifests, binding, &outcome);
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

/// A binding's client, recording its tag writes in the run's journal first.
fn journaled<C>(client: C, binding: &Declared<'_>, journal: &JournalHandle) -> Journaled<C> {
    let key = state_key(&binding.id.namespace, &binding.id.name);
    Journaled::new(client, journal, key, binding.provider.clone())
}

/// Bindings in precedence order (older first, then namespace/name).
fn declared_bindings(manifests: &Manifests) -> Vec<Declared<'_>> {
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
            Declared {
                binding,
                id,
                provider,
                resource_ids: spec.resource_ids.clone(),
                claimed: spec.resource_ids.iter().cloned().collect(),
                resolution: None,
                target,
            }
        })
        .collect();
    declared.sort_by(|a, b| a.id.precedence().cmp(&b.id.precedence()));
    declared
}

fn removed_bindings(state: &StateFile, declared: &[Declared<'_>]) -> Vec<BindingState> {
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

/// Resolves every selector binding (one list-by-tag read per provider, resource type and
/// distinct `matchTags`), before any claim is looked up: its selection is its claim.
async fn resolve_selectors(
    declared: &mut [Declared<'_>],
    clients: &BTreeMap<String, ProviderClient>,
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
            binding.claimed = binding.resource_ids.iter().cloned().collect();
            binding.resolution = Some(resolution);
        }
    }
}

/// The claim index of the declared bindings, by position.
fn claim_index(declared: &[Declared<'_>]) -> ClaimIndex<usize> {
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
            let selector = spec
                .resource_selector
                .as_ref()
                .and_then(|s| select::violation(client, &s.match_tags));
            for violation in spec_violations(client, &spec.resource_type, &spec.tags)
                .into_iter()
                .chain(selector)
            {
                let (field, rule) = violation
                    .split_once(": ")
                    .unwrap_or(("spec", violation.as_str()));
                errors.push(ManifestError::at(source, field, rule));
            }
        }
        let key = state_key(&binding.id.namespace, &binding.id.name);
        if let Some(previous) = state.bindings.get(&key)
            && let Some(rule) = target_change(manifests, previous, &binding.provider)
        {
            errors.push(ManifestError::at(source, "spec.providerRef.name", rule));
        }
        if let Some(previous) = state.bindings.get(&key)
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

/// Why a binding that applied tags through one provider cannot go on through `provider`: the
/// other reaches another cloud or region, where its record means nothing. A provider renamed
/// or replaced by one reaching the same cloud and region keeps the record.
fn target_change(manifests: &Manifests, previous: &BindingState, provider: &str) -> Option<String> {
    if previous.provider == provider || previous.applied.is_empty() {
        return None;
    }
    let new = &manifests.providers.get(provider)?.value.spec;
    let old = match (&previous.cloud, &previous.region) {
        (Some(cloud), Some(region)) => Some((*cloud, region.clone())),
        _ => manifests
            .providers
            .get(&previous.provider)
            .map(|p| (p.value.spec.cloud, p.value.spec.region.clone())),
    };
    if old == Some((new.cloud, new.region.clone())) {
        return None;
    }
    let through = match &old {
        Some((cloud, region)) => format!("{} {region}", cloud.as_str()),
        None => "a cloud and region not recorded".to_string(),
    };
    Some(format!(
        "changed from {:?} ({through}) to {provider:?} ({} {}), which would orphan the tags \
         applied through {:?}; remove the binding (apply --prune-removed) before reusing its \
         name",
        previous.provider,
        new.cloud.as_str(),
        new.region,
        previous.provider
    ))
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
    let mut owned = state
        .bindings
        .get(&state_key(&binding.id.namespace, &binding.id.name))
        .map(|entry| entry.applied.to_ownership())
        .unwrap_or_default();
    if binding
        .resolution
        .as_ref()
        .and_then(Resolution::ids)
        .is_some()
    {
        owned = select::released(&owned, spec.deletion_policy, &binding.resource_ids);
    }
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
        // NB: an Observe binding plans and reports drift under `plan` as under `apply`.
        _ if spec.mode == BindingMode::Observe => Mode::Observe,
        Command::Apply { .. } if !spec.suspend => Mode::Apply,
        _ => Mode::PlanOnly,
    };
    let input = PassInput {
        binding: &binding.id,
        desired: &spec.tags,
        resource_type: &spec.resource_type,
        resource_ids: &binding.resource_ids,
        owned: &owned,
        claims: &claims,
        mode,
    };
    let Some(resolution) = &binding.resolution else {
        return run_pass(client, &input).await;
    };
    if let Some(refused) = resolution.refusal(&input) {
        return refused;
    }
    let mut outcome = run_pass(client, &input).await;
    outcome.selected = resolution.status();
    outcome
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
            // NB: an Observe binding writes nothing, so it claims nothing (as in the
            // controller).
            .filter(|other| other.binding.value.spec.mode != BindingMode::Observe)
            .map(|other| Claim {
                binding: &other.id,
                resource_ids: &other.claimed,
                tags: &other.binding.value.spec.tags,
            })
            .collect()
    }
}

fn record(state: &mut StateFile, manifests: &Manifests, binding: &Declared<'_>, outcome: &Outcome) {
    let spec = &binding.binding.value.spec;
    let target = manifests
        .providers
        .get(&binding.provider)
        .map(|p| &p.value.spec);
    state.bindings.insert(
        state_key(&binding.id.namespace, &binding.id.name),
        BindingState {
            provider: binding.provider.clone(),
            cloud: target.map(|t| t.cloud),
            region: target.map(|t| t.region.clone()),
            namespace: binding.id.namespace.clone(),
            name: binding.id.name.clone(),
            resource_type: spec.resource_type.clone(),
            deletion_policy: spec.deletion_policy,
            mode: spec.mode,
            applied: AppliedRecord::from_ownership(&outcome.ownership),
            pending: Vec::new(),
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
    let observe_only = spec.mode == BindingMode::Observe;
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
        observe_only,
        changes,
        // NB: a suspended binding's plan shows what it would change, but nothing is pending:
        // no write will happen until it is resumed.
        write_calls: if spec.suspend || observe_only {
            0
        } else if applied {
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
        drift: outcome.drift.as_ref().map(|d| d.counts),
        drift_samples: outcome
            .drift
            .as_ref()
            .map(|d| d.samples.clone())
            .unwrap_or_default(),
        match_tags: spec
            .resource_selector
            .as_ref()
            .map(|selector| selector.match_tags.clone()),
        selected: outcome.selected.clone(),
    }
}

async fn handle_removed(
    gone: BindingState,
    claims: &[Claim<'_>],
    clients: &BTreeMap<String, ProviderClient>,
    state: &mut StateFile,
    command: Command,
) -> RemovedReport {
    let key = state_key(&gone.namespace, &gone.name);
    let mut report = RemovedReport {
        binding: format!("{}/{}", gone.namespace, gone.name),
        provider: gone.provider.clone(),
        action: "kept",
        changes: Vec::new(),
        write_calls: 0,
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
    if gone.mode == BindingMode::Observe {
        state.bindings.remove(&key);
        report.action = "orphaned";
        report.message =
            "mode Observe: nothing is written; its tags stay on the resources; record dropped"
                .to_string();
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
    report.write_calls = outcome.writes.calls;
    let pruned: usize = report
        .changes
        .iter()
        .filter(|c| c.action == "prune")
        .map(|c| c.resources.len())
        .sum();
    if outcome.ownership.is_empty() && outcome.error.is_none() && outcome.failures.is_empty() {
        state.bindings.remove(&key);
        if pruned == 0 {
            report.action = "released";
            report.message = "nothing removed: its tags were changed or removed since it \
                              applied them, or another binding declares them; record dropped"
                .to_string();
        } else {
            report.action = "pruned";
            report.message =
                format!("its tags were removed from {pruned} resource(s); record dropped");
        }
    } else {
        let mut entry = gone;
        entry.applied = AppliedRecord::from_ownership(&outcome.ownership);
        state.bindings.insert(key, entry);
        report.action = "failed";
        report.message = format!("pruning failed: {}", outcome.readiness.message);
    }
    report
}
