//! One CLI run: load, validate everything, (start the embedded cloud), reconcile each
//! binding, record ownership, report.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use super::CommonArgs;
use super::credentials::credentials;
use super::journal::{self, Journal, JournalHandle, JournalIntents};
use super::manifests::{self, Located, ManifestError, Manifests};
use super::output::{self, BindingReport, RemovedReport, Report};
use super::policy as cli_policy;
use super::progress::Progress;
use super::state::{BindingState, StateFile, StateLock, state_key};
use crate::api::{AppliedRecord, BindingMode, ResourceTagBinding, TagProviderSpec};
use crate::cloud::batcher::{Batcher, DEFAULT_WINDOW};
use crate::cloud::{CallObserver, TagApi};
use crate::emulator::{self, EmulatorConfig, RunningEmulator};
use crate::plan::bound::{FleetBinding, Paging, lower_bound};
use crate::plan::{BindingId, Claim, Claims as PlanClaims};
use crate::reconcile::checks::{self, Deletion};
use crate::reconcile::group::{Member, SharedClaims, considered, pass_group};
use crate::reconcile::identity::{ClaimIndex, Target, binding_id, canonical_ids};
use crate::reconcile::intent_log::IntentLog;
use crate::reconcile::provider::{
    ClientOptions, ProviderClient, client_for, http_client, rate_limiter,
};
use crate::reconcile::select::{self, Resolution, Selector};
use crate::reconcile::{Mode, Outcome};
use crate::render::{self, BindingMeta, Inputs, NamespaceMeta, NotFound, Rendered};
use crate::tags::{Ownership, Tags};

/// What the run does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Observe and plan only.
    Plan {
        /// Also show what `apply --prune-removed` would remove for bindings that left the
        /// files (read and planned, never written).
        prune_removed: bool,
    },
    /// Write, and record ownership.
    Apply {
        /// Prune the tags of bindings that left the files.
        prune_removed: bool,
    },
}

impl Command {
    /// `plan`: nothing is written, the state file is not saved.
    pub fn is_plan(self) -> bool {
        matches!(self, Command::Plan { .. })
    }

    /// Bindings that left the files are pruned (`apply`) or their prune is shown (`plan`).
    pub fn prunes_removed(self) -> bool {
        match self {
            Command::Plan { prune_removed } | Command::Apply { prune_removed } => prune_removed,
        }
    }
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
    /// Its declared tags: `tags`, `tagsFrom` rendered from the files' Namespace documents,
    /// its own metadata and `--cluster-name`, and its provider's `defaultTags`; or the
    /// required sources that are absent (an error of the files).
    rendered: Result<Rendered, NotFound>,
    /// The declared tags of the pass (and its claims): the rendering, or, when it failed, what
    /// could be rendered.
    desired: Tags,
    /// Its standing against the TagPolicies of the files (judged after the checks).
    verdict: crate::policy::Verdict,
}

/// Asked, before `apply` writes, with the plan of the same run (read under the same lock):
/// `true` to go on.
pub type Confirm<'a> = &'a (dyn Fn(&Report) -> bool + Sync);

/// Runs the command; `Err` holds one line per problem (nothing was written then). With
/// `confirm`, an `apply` first plans (reading the cloud, writing nothing), and writes only if
/// `confirm` says so.
pub async fn run(
    args: &CommonArgs,
    command: Command,
    confirm: Option<Confirm<'_>>,
) -> Result<Report, Vec<String>> {
    let mut manifests = manifests::load(&args.files, args.strict).map_err(lines)?;
    manifests.cluster_name = args.cluster_name.clone();
    for note in &manifests.skipped {
        eprintln!("note: {note}");
    }
    // NB: held until this function returns, after the state file is saved; `apply` also
    // checks here, before any cloud write, that the state file can be written.
    let _lock = match command {
        Command::Plan { .. } => StateLock::for_plan(&args.state, args.lock_timeout),
        Command::Apply { .. } => StateLock::for_apply(&args.state, args.lock_timeout).map(Some),
    }
    .map_err(|e| vec![e])?;
    let mut state = StateFile::load(&args.state).map_err(|e| vec![e])?;
    journal::load_pending(&args.state, &mut state).map_err(|e| vec![e])?;
    let cloud = match &args.embedded_cloud {
        Some(path) => Some(start_embedded_cloud(path, &manifests).await?),
        None => None,
    };
    let http = http_client().map_err(|e| vec![format!("cannot build the HTTP client: {e}")])?;
    let plain = args.no_color || std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let progress = Arc::new(Progress::new(args.progress, args.output, plain));
    let options = ClientOptions {
        http,
        endpoint_override: cloud.as_ref().map(RunningEmulator::url),
        retry: Default::default(),
        observer: progress
            .is_shown()
            .then(|| progress.clone() as Arc<dyn CallObserver>),
        default_rate_limit: true,
    };
    announce(&manifests, &options, command).map_err(lines)?;
    if let Some(confirm) = confirm.filter(|_| !command.is_plan()) {
        // NB: the plan runs on a copy of the state, with no journal: it records nothing; and
        // without progress, which belongs to the run that writes.
        let mut preview_state = state.clone();
        let preview_command = Command::Plan {
            prune_removed: command.prunes_removed(),
        };
        let preview_options = ClientOptions {
            observer: None,
            ..options.clone()
        };
        let preview = run_with(
            &manifests,
            &mut preview_state,
            &preview_options,
            preview_command,
            &Progress::hidden(),
        )
        .await?;
        if !confirm(&preview) {
            return Err(vec!["apply cancelled: nothing was written".to_string()]);
        }
    }
    if !command.is_plan() {
        let journal = Journal::open(&args.state, &state);
        state.journal = JournalHandle(Some(Arc::new(journal)));
    }
    let result = run_with(&manifests, &mut state, &options, command, &progress).await;
    progress.finish();
    if let Some(cloud) = cloud {
        cloud
            .shutdown()
            .await
            .map_err(|e| vec![format!("embedded cloud: cannot save its state: {e}")])?;
    }
    let mut report = result?;
    if !command.is_plan() {
        state.save(&args.state).map_err(|e| vec![e])?;
        journal::clear(&args.state).map_err(|e| vec![e])?;
    }
    report.embedded_cloud = args
        .embedded_cloud
        .as_ref()
        .map(|p| p.display().to_string());
    Ok(report)
}

/// The run's header on standard error: what it runs against, per provider in the files,
/// and where each one's credentials come from (never the credentials themselves).
fn announce(
    manifests: &Manifests,
    options: &ClientOptions,
    command: Command,
) -> Result<(), Vec<ManifestError>> {
    use std::io::Write as _;
    let verb = if command.is_plan() { "plan" } else { "apply" };
    let mut header = match &options.endpoint_override {
        Some(url) => format!(
            "tagbinder {verb}: against the embedded cloud at {url} (no real cloud is called)\n"
        ),
        None => format!("tagbinder {verb}: against the clouds' endpoints below\n"),
    };
    for (name, provider) in &manifests.providers {
        let spec = &provider.value.spec;
        let credentials = super::credentials::source_of(provider, manifests);
        // NB: a client built with a placeholder key only to name its endpoint; the run's own
        // clients are built with the real key, which reports a missing key with its field.
        let key = crate::cloud::AccessKey::new("-".to_string(), "-".to_string());
        let endpoint = client_for(spec, key.into(), options)
            .map(|client| client.endpoint().to_string())
            .map_err(|e| vec![ManifestError::at(&provider.source, e.field, e.rule)])?;
        // NB: a wrong region reads like a cloud without the resources: say so before the run.
        if spec.endpoint.is_none()
            && let Some(closest) = crate::api::regions::unknown(spec.cloud, &spec.region)
        {
            let hint = match closest {
                Some(region) => format!(" (did you mean {region:?}?)"),
                None => String::new(),
            };
            let _ = writeln!(
                anstream::stderr(),
                "warning: {}: spec.region: {:?} is not a region of {} that tagbinder knows{hint}; a wrong \
                 region looks like resources that carry no tags, and their writes fail \
                 NotFound; set spec.endpoint to reach a region it does not list",
                provider.source,
                output::clean(&spec.region),
                match spec.cloud {
                    crate::api::Cloud::Alibaba => "Alibaba Cloud",
                    crate::api::Cloud::Jdcloud => "JD Cloud",
                    crate::api::Cloud::Aws => "AWS",
                },
            );
        }
        header.push_str(&format!(
            "  {name}: {cloud} {region} at {endpoint}, credentials from {credentials}\n",
            name = output::clean(name),
            cloud = spec.cloud.as_str(),
            region = output::clean(&spec.region),
        ));
    }
    let _ = write!(anstream::stderr(), "{header}");
    Ok(())
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
    let cloud = emulator::start(listen, config)
        .await
        .map_err(|e| vec![format!("embedded cloud: cannot start: {e}")])?;
    if let Some(resumed) = cloud.resumed().filter(|resumed| resumed.added > 0) {
        // NB: a second example run in the same folder: its resources join the saved cloud.
        eprintln!(
            "note: embedded cloud: resumed from {} ({} resource(s)); the inventory added {} it \
             lacked, and {} it already had keep their saved tags (delete the file to start \
             from the inventory alone)",
            path.display(),
            resumed.saved,
            resumed.added,
            resumed.kept
        );
    }
    Ok(cloud)
}

/// Runs `command` over loaded manifests with clients built from `options`, recording
/// ownership in `state` (not saved). Every binding's reads and writes are coalesced per
/// provider and resource type: each round (all reads, then all writes) closes when every
/// binding has asked, so the calls made do not depend on timing.
pub async fn run_with(
    manifests: &Manifests,
    state: &mut StateFile,
    options: &ClientOptions,
    command: Command,
    progress: &Progress,
) -> Result<Report, Vec<String>> {
    // NB: one time for the run: the bindings it records first share it.
    let now = jiff::Timestamp::now();
    let mut declared = declared_bindings(manifests, state, now);
    let removed: Vec<BindingState> = removed_bindings(state, &declared);
    let clients = build_clients(manifests, &declared, &removed, command, options).map_err(lines)?;
    check_bindings(manifests, &declared, &clients, state).map_err(lines)?;
    canonical_with_accounts(manifests, &mut declared, &clients).await;
    let policies = cli_policy::policies_of(manifests);
    let mut tally = crate::policy::Tally::new(&policies);
    for binding in &mut declared {
        let spec = &binding.binding.value.spec;
        let scope = cli_policy::scope_of(
            manifests,
            &binding.provider,
            &spec.resource_type,
            &binding.id.namespace,
        );
        binding.verdict = cli_policy::judge(&policies, &scope, &binding.desired);
        tally.record_binding(&binding.verdict);
        // NB: counted. Only a Deny breach changes the run; the Warn breaches are judged again
        // for the report, after the reconcile: held through it, 10,000 bindings' verdicts
        // added 4.8 MiB to the run's peak (the bench's 9,000 breaching bindings).
        binding.verdict.governed_by = Vec::new();
        binding.verdict.warned = Vec::new();
    }
    resolve_selectors(&mut declared, &clients, state).await;
    warn_empty_tags(&declared, state, command);
    let claims = Claims::of(&declared, manifests);
    let removed: Vec<BindingState> = removed_bindings(state, &declared);
    progress.start(
        declared.len(),
        call_bound(manifests, &declared, &clients, command),
        rate_limit(manifests, &clients, options),
    );
    let mut report = Report {
        command: if command.is_plan() { "plan" } else { "apply" },
        ..Report::default()
    };
    let outcomes = reconcile_groups(&declared, &claims, &clients, state, command, progress).await;
    if !policies.is_empty() {
        // NB: sized once, after the reconcile's peak: at 100,000 resources, growing the set
        // held its old and new tables together.
        tally.expect_resources(declared.iter().map(|d| d.resource_ids.len()).sum());
    }
    let mut verdicts: Vec<(String, crate::policy::Verdict)> = Vec::new();
    for (binding, outcome) in declared.iter().zip(outcomes) {
        let denied = !binding.verdict.denied.is_empty();
        if !command.is_plan() && !binding.binding.value.spec.suspend && !denied {
            record(state, manifests, binding, &outcome);
        }
        let spec = &binding.binding.value.spec;
        let scope = cli_policy::scope_of(
            manifests,
            &binding.provider,
            &spec.resource_type,
            &binding.id.namespace,
        );
        // NB: after `apply`, the tags the resources carry now; after `plan`, or a pass that
        // wrote nothing, those read (borrowed: a fleet's steady state copies no tags).
        let borrowed = command.is_plan() || outcome.writes.calls == 0;
        if policies.is_empty() {
            // NB: nothing to count.
        } else if borrowed && let Some(observed) = &outcome.observed {
            cli_policy::record_pass(&mut tally, &policies, &scope, observed);
        } else if !borrowed && let Some(carried) = outcome.tags_after() {
            cli_policy::record_pass(&mut tally, &policies, &scope, &carried);
        }
        let warned = if policies.is_empty() {
            Vec::new()
        } else {
            cli_policy::judge(&policies, &scope, &binding.desired).warned
        };
        let mut entry = binding_report(binding, &outcome, &warned);
        if !denied && warned.is_empty() {
            // NB: nothing to report of it.
        } else {
            verdicts.push((
                binding.id.to_string(),
                crate::policy::Verdict {
                    governed_by: Vec::new(),
                    denied: binding.verdict.denied.clone(),
                    warned,
                },
            ));
        }
        explain_tie(&mut entry, binding, &outcome, &declared);
        if command.is_plan() {
            note_untagged(&mut entry, binding, &outcome);
        }
        report.bindings.push(entry);
    }
    if !policies.is_empty() {
        let scan_errors = cli_policy::scan(manifests, &policies, &clients, &mut tally).await;
        let verdicts: Vec<(String, &crate::policy::Verdict)> = verdicts
            .iter()
            .map(|(binding, verdict)| (binding.clone(), verdict))
            .collect();
        let compliance = cli_policy::report(&policies, &tally, &verdicts, &scan_errors);
        report.policies = compliance.policies;
        report.policy_violations = compliance.violations;
    }
    for gone in removed {
        let target = manifests
            .providers
            .get(&gone.provider)
            .map(|p| Target::of(&p.value.spec, &gone.resource_type));
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
            .push(handle_removed(gone, &PlanClaims::new(claims), &clients, state, command).await);
    }
    Ok(report)
}

/// The fewest calls of the run ([`crate::plan::bound`]) from its declarations alone, as if no
/// resource carried a tag yet: every binding's reads, and the writes of those that write.
fn call_bound(
    manifests: &Manifests,
    declared: &[Declared<'_>],
    clients: &BTreeMap<String, ProviderClient>,
    command: Command,
) -> usize {
    let mut by_provider: BTreeMap<&str, Vec<&Declared<'_>>> = BTreeMap::new();
    for binding in declared {
        by_provider
            .entry(binding.provider.as_str())
            .or_default()
            .push(binding);
    }
    let none = BTreeMap::new();
    by_provider
        .into_iter()
        .filter_map(|(name, bindings)| {
            let client = clients.get(name)?;
            let paging = Paging::of(manifests.providers.get(name)?.value.spec.cloud);
            let fleet = |writers: bool| -> Vec<FleetBinding<'_>> {
                bindings
                    .iter()
                    .filter(|b| {
                        let spec = &b.binding.value.spec;
                        !writers
                            || (matches!(command, Command::Apply { .. })
                                && !spec.suspend
                                && spec.mode != BindingMode::Observe)
                    })
                    .map(|b| FleetBinding {
                        binding: &b.id,
                        resource_type: &b.binding.value.spec.resource_type,
                        tags: &b.binding.value.spec.tags,
                        resource_ids: &b.resource_ids,
                    })
                    .collect()
            };
            let reads = lower_bound(&fleet(false), &none, client.limits(), paging).list;
            let writes = lower_bound(&fleet(true), &none, client.limits(), paging);
            Some(reads + writes.tag + writes.untag)
        })
        .sum()
}

/// The calls per second the run's providers allow in all (0: one of them is unlimited).
fn rate_limit(
    manifests: &Manifests,
    clients: &BTreeMap<String, ProviderClient>,
    options: &ClientOptions,
) -> f64 {
    let mut total = 0.0;
    for name in clients.keys() {
        let Some(provider) = manifests.providers.get(name) else {
            continue;
        };
        match rate_limiter(&provider.value.spec, options) {
            Some(limiter) => total += limiter.configured().per_second,
            None => return 0.0,
        }
    }
    total
}

/// A binding that declares no tags (`tags: {}`) while it owns some: the run says how many it
/// removes (or would), before the plan.
fn warn_empty_tags(declared: &[Declared<'_>], state: &StateFile, command: Command) {
    for binding in declared {
        let spec = &binding.binding.value.spec;
        if !spec.tags.is_empty() || spec.mode == BindingMode::Observe {
            continue;
        }
        let key = state_key(&binding.id.namespace, &binding.id.name);
        let Some(record) = state.bindings.get(&key) else {
            continue;
        };
        let owned = record.applied.to_ownership();
        // NB: what tagsFrom or the provider's defaults still declare stays.
        let tags: usize = owned
            .resources()
            .values()
            .map(|tags| {
                tags.keys()
                    .filter(|key| !binding.desired.contains_key(*key))
                    .count()
            })
            .sum();
        if tags == 0 {
            continue;
        }
        let verb = if command.is_plan() {
            "apply would remove"
        } else {
            "this apply removes"
        };
        eprintln!(
            "warning: {}: spec.tags is empty (tags: {{}}): {verb} the {tags} tag(s) it applied \
             on {} resource(s) (by the ownership rules)",
            binding.binding.source,
            owned.resources().len()
        );
    }
}

/// Bindings in precedence order (older first, then namespace/name). A binding's age is its
/// `creationTimestamp` when the file gives one, else when a run first recorded it in the state
/// file, else this run's start: a binding new to the state file is younger than every
/// recorded one, whatever its name.
fn declared_bindings<'m>(
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

/// The ids of the bindings of AWS providers without `aws.accountId`, composed with the
/// account STS names (once per provider; a provider whose STS call fails keeps its bare ids,
/// and its passes report why).
async fn canonical_with_accounts(
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
async fn resolve_selectors(
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
                unknown_provider(&binding.provider, manifests),
            ));
            continue;
        };
        let labels = manifests
            .namespaces
            .get(&binding.id.namespace)
            .cloned()
            .unwrap_or_default();
        if let Err(refusal) =
            checks::precheck(&binding.binding.value, Some(&provider.value), &labels)
        {
            let mut message = refusal.readiness.message;
            if refusal.readiness.reason == crate::api::conditions::reason::NAMESPACE_NOT_ALLOWED {
                // NB: in a cluster the labels are the Namespace object's; here, a document's.
                let namespace = &binding.id.namespace;
                message.push_str(&if manifests.namespaces.contains_key(namespace) {
                    format!(
                        "; the CLI read the labels of {namespace:?} from its Namespace document \
                         among the files"
                    )
                } else {
                    format!(
                        "; the CLI learns a namespace's labels from a Namespace document among \
                         the files (kind: Namespace, metadata.labels), and they hold none for \
                         {namespace:?}"
                    )
                });
            }
            errors.push(ManifestError::at(source, refusal.field, message));
            continue;
        }
        let rendered = match &binding.rendered {
            Ok(rendered) => rendered,
            Err(missing) => {
                // NB: in a cluster the namespace is the Namespace object; here, a document.
                for entry in &missing.0 {
                    let mut message = format!(
                        "{} ({})",
                        entry.what,
                        crate::api::conditions::reason::VALUE_NOT_FOUND
                    );
                    if !manifests.namespaces.contains_key(&binding.id.namespace) {
                        message.push_str(&format!(
                            "; the CLI reads a namespace's labels and annotations from a \
                             Namespace document among the files (kind: Namespace), and they \
                             hold none for {:?}",
                            binding.id.namespace
                        ));
                    }
                    errors.push(ManifestError::at(
                        source,
                        format!("spec.tagsFrom[{:?}]", entry.key),
                        message,
                    ));
                }
                continue;
            }
        };
        if let Some(client) = clients.get(&binding.provider) {
            let selector = spec
                .resource_selector
                .as_ref()
                .and_then(|s| select::violation(client, &s.match_tags));
            let rendered_violations = rendered
                .violations(
                    client.limits(),
                    spec.resource_selector.as_ref().map(|s| &s.match_tags),
                )
                .into_iter()
                .map(|violation| violation.to_string());
            let resource_type = client
                .check_resource_type(&spec.resource_type)
                .err()
                .map(|rule| format!("spec.resourceType: {rule}"));
            for violation in resource_type
                .into_iter()
                .chain(rendered_violations)
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
    errors.extend(feeding_cycles(declared));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Selector bindings whose selections feed each other (see [`select::feeding_cycles`]), per
/// target: each is refused, naming its cycle.
fn feeding_cycles(declared: &[Declared<'_>]) -> Vec<ManifestError> {
    let mut by_target: std::collections::HashMap<&Target, Vec<select::Feeder<'_, usize>>> =
        std::collections::HashMap::new();
    for (position, binding) in declared.iter().enumerate() {
        let spec = &binding.binding.value.spec;
        if let (Some(target), Some(selector)) = (&binding.target, &spec.resource_selector) {
            by_target.entry(target).or_default().push(select::Feeder {
                key: position,
                declared: &binding.desired,
                match_tags: &selector.match_tags,
            });
        }
    }
    let mut cycles: Vec<(usize, Vec<usize>)> = by_target
        .values()
        .flat_map(|feeders| select::feeding_cycles(feeders))
        .collect();
    cycles.sort();
    cycles
        .into_iter()
        .map(|(position, members)| {
            let names: Vec<String> = members
                .iter()
                .map(|&m| declared[m].id.to_string())
                .collect();
            ManifestError::at(
                &declared[position].binding.source,
                "spec.resourceSelector.matchTags",
                select::cycle_rule(&names),
            )
        })
        .collect()
}

/// Says that `name` is no TagProvider of the files: the closest name when one is close, and
/// the providers the files define.
fn unknown_provider(name: &str, manifests: &Manifests) -> String {
    let known: Vec<&str> = manifests.providers.keys().map(String::as_str).collect();
    let mut message = format!("TagProvider {name:?} is not among the given files");
    let closest = known
        .iter()
        .map(|candidate| {
            (
                strsim::normalized_damerau_levenshtein(name, candidate),
                candidate,
            )
        })
        .filter(|(score, _)| *score >= 0.6)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    if let Some((_, candidate)) = closest {
        message.push_str(&format!("; did you mean {candidate:?}?"));
    }
    match known.len() {
        0 => message.push_str(" (they define no TagProvider)"),
        n if n <= 10 => message.push_str(&format!(" (they define {})", known.join(", "))),
        n => message.push_str(&format!(
            " (they define {} and {} more)",
            known[..10].join(", "),
            n - 10
        )),
    }
    message
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

/// Runs every binding's pass: the bindings of each provider and resource type together, in
/// one round (one read of their resources, their writes shared by payload), the groups at once.
async fn reconcile_groups(
    declared: &[Declared<'_>],
    claims: &Claims,
    clients: &BTreeMap<String, ProviderClient>,
    state: &StateFile,
    command: Command,
    progress: &Progress,
) -> Vec<Outcome> {
    let mut groups: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
    let mut outcomes: Vec<Option<Outcome>> = declared.iter().map(|_| None).collect();
    for (position, binding) in declared.iter().enumerate() {
        let spec = &binding.binding.value.spec;
        if !binding.verdict.denied.is_empty() {
            // NB: refused alone, before any read or write of its own; the others go on.
            outcomes[position] = Some(policy_refusal(binding, state));
            continue;
        }
        groups
            .entry((binding.provider.as_str(), spec.resource_type.as_str()))
            .or_default()
            .push(position);
    }
    let rounds = groups
        .into_iter()
        .filter_map(|((provider, resource_type), positions)| {
            // NB: check_bindings refused the run when a binding's provider has no client.
            let client = clients.get(provider)?.clone();
            Some(async move {
                let batcher = Batcher::new(client, DEFAULT_WINDOW);
                let participant = batcher.participant(resource_type);
                let group = (&participant, resource_type, &positions[..]);
                let outcomes = reconcile_group(group, declared, claims, state, command).await;
                progress.passed(positions.len());
                positions.into_iter().zip(outcomes).collect::<Vec<_>>()
            })
        });
    for (position, outcome) in futures::future::join_all(rounds)
        .await
        .into_iter()
        .flatten()
    {
        outcomes[position] = Some(outcome);
    }
    outcomes
        .into_iter()
        .map(|outcome| outcome.unwrap_or_else(|| unreachable!("every binding has a group")))
        .collect()
}

/// The outcome of a binding that breaks a `Deny` TagPolicy: Stalled, `PolicyViolation`,
/// naming the policy and the rule; its ownership record unchanged.
fn policy_refusal(binding: &Declared<'_>, state: &StateFile) -> Outcome {
    let owned = state
        .bindings
        .get(&state_key(&binding.id.namespace, &binding.id.name))
        .map(|record| record.applied.to_ownership())
        .unwrap_or_default();
    let readiness = crate::reconcile::Readiness {
        ready: false,
        reason: crate::api::conditions::reason::POLICY_VIOLATION,
        message: format!(
            "{}; nothing written",
            crate::policy::Verdict::message(&binding.verdict.denied)
        ),
        stalled: true,
    };
    Outcome::stopped(owned, binding.resource_ids.len(), readiness)
}

/// The bindings at `positions` of `declared` (one provider and resource type), in one round.
async fn reconcile_group<C: TagApi>(
    (cloud, resource_type, positions): (&C, &str, &[usize]),
    declared: &[Declared<'_>],
    claims: &Claims,
    state: &StateFile,
    command: Command,
) -> Vec<Outcome> {
    let records: Vec<Option<&BindingState>> = positions
        .iter()
        .map(|&position| {
            let id = &declared[position].id;
            state.bindings.get(&state_key(&id.namespace, &id.name))
        })
        .collect();
    let owned: Vec<Ownership> = records
        .iter()
        .map(|record| record.map(|r| r.applied.to_ownership()).unwrap_or_default())
        .collect();
    let mut intents = JournalIntents::new(&state.journal, resource_type);
    for (&position, record) in positions.iter().zip(&records) {
        let binding = &declared[position];
        intents.push(
            state_key(&binding.id.namespace, &binding.id.name),
            &binding.provider,
            record.map(|r| &r.pending[..]).unwrap_or_default(),
        );
    }
    let mut shared = SharedClaims::default();
    let member_claims: Vec<usize> = positions
        .iter()
        .zip(&owned)
        .enumerate()
        .map(|(index, (&position, owned))| {
            let binding = &declared[position];
            let considered = considered(&binding.resource_ids, owned, intents.pending(index));
            shared.index_of(considered, |considered| {
                PlanClaims::new(match &binding.target {
                    Some(target) => claims.on(declared, target, considered.iter().copied(), None),
                    None => Vec::new(),
                })
            })
        })
        .collect();
    let claim_lists = shared.into_lists();
    let members: Vec<Member<'_>> = positions
        .iter()
        .zip(&owned)
        .zip(&member_claims)
        .map(|((&position, owned), &list)| {
            let binding = &declared[position];
            let spec = &binding.binding.value.spec;
            let mode = match command {
                // NB: an Observe binding plans and reports drift under `plan` as under `apply`.
                _ if spec.mode == BindingMode::Observe => Mode::Observe,
                Command::Apply { .. } if !spec.suspend => Mode::Apply,
                _ => Mode::PlanOnly,
            };
            Member {
                binding: &binding.id,
                desired: &binding.desired,
                resource_ids: &binding.resource_ids,
                resolution: binding.resolution.as_ref(),
                match_tags: spec.resource_selector.as_ref().map(|s| &s.match_tags),
                deletion_policy: spec.deletion_policy,
                owned,
                claims: &claim_lists[list],
                mode,
            }
        })
        .collect();
    pass_group(cloud, resource_type, &members, &intents).await
}

/// The claims of a run: the declared bindings by resource identity.
struct Claims {
    index: ClaimIndex<usize>,
    /// The providers in the files, by name: what each reaches.
    providers: std::collections::HashMap<String, TagProviderSpec>,
}

impl Claims {
    /// The claims of `declared`, reaching resources through the providers of `manifests`.
    fn of(declared: &[Declared<'_>], manifests: &Manifests) -> Self {
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

fn record(state: &mut StateFile, manifests: &Manifests, binding: &Declared<'_>, outcome: &Outcome) {
    let spec = &binding.binding.value.spec;
    let key = state_key(&binding.id.namespace, &binding.id.name);
    // NB: kept once set; a record older than the field keeps none (the oldest age).
    let first_applied = match state.bindings.get(&key) {
        Some(recorded) => recorded.first_applied,
        None => binding
            .id
            .created
            .and_then(|s| jiff::Timestamp::from_second(s).ok()),
    };
    let target = manifests
        .providers
        .get(&binding.provider)
        .map(|p| &p.value.spec);
    state.bindings.insert(
        key,
        BindingState {
            first_applied,
            provider: binding.provider.clone(),
            cloud: target.map(|t| t.cloud),
            region: target.map(|t| t.region.clone()),
            namespace: binding.id.namespace.clone(),
            name: binding.id.name.clone(),
            resource_type: spec.resource_type.clone(),
            deletion_policy: spec.deletion_policy,
            mode: spec.mode,
            applied: AppliedRecord::from_ownership(&outcome.ownership),
            // NB: what the cloud did not confirm stays until a read confirms or refutes it.
            pending: journal::pending_writes(&spec.resource_type, &outcome.pending),
            selected: match binding.resolution.as_ref() {
                Some(resolution) => match resolution.ids() {
                    Some(ids) => ids.to_vec(),
                    None => binding.claimed.iter().cloned().collect(),
                },
                None => Vec::new(),
            },
        },
    );
}

/// A binding none of whose listed resources carries any tag: a wrong region or resource id
/// reads the same (the clouds answer a read of a resource they do not have with no tags), so
/// the plan says so before `apply` finds out with NotFound.
fn note_untagged(entry: &mut BindingReport, binding: &Declared<'_>, outcome: &Outcome) {
    let spec = &binding.binding.value.spec;
    let Some(observed) = &outcome.observed else {
        return;
    };
    if spec.resource_selector.is_some() || binding.resource_ids.is_empty() {
        return;
    }
    let untagged = binding
        .resource_ids
        .iter()
        .all(|id| observed.get(id).is_none_or(|tags| tags.is_empty()));
    if untagged {
        entry.notes.push(format!(
            "none of its {} resource(s) carries a tag yet; a wrong region or resource id looks \
             the same to the cloud (check spec.resourceIds and the provider's region)",
            binding.resource_ids.len()
        ));
    }
}

/// A conflict lost to a binding of the same age (both first recorded by one run, or in one
/// second) was decided by the value the resource carried, then by namespace/name: the
/// message says so, since an age would not explain it.
fn explain_tie(
    entry: &mut BindingReport,
    binding: &Declared<'_>,
    outcome: &Outcome,
    declared: &[Declared<'_>],
) {
    if entry.reason != crate::api::conditions::reason::CONFLICT {
        return;
    }
    let Some(first) = outcome.conflicts.first() else {
        return;
    };
    let same_age = declared.iter().any(|other| {
        other.id.to_string() == first.winner && other.id.created == binding.id.created
    });
    if same_age {
        entry.message.push_str(&format!(
            " ({} is as old as this binding, first applied in the same second: the value the \
             resource already carried, then the order of namespace/name, decided)",
            first.winner
        ));
    }
}

fn binding_report(
    binding: &Declared<'_>,
    outcome: &Outcome,
    warned: &[crate::policy::Breach],
) -> BindingReport {
    let spec = &binding.binding.value.spec;
    let mut changes = outcome
        .plan
        .as_ref()
        .map(output::changes_of)
        .unwrap_or_default();
    // NB: a value from elsewhere than spec.tags says where it comes from (issue 23).
    if let Ok(rendered) = &binding.rendered {
        for change in &mut changes {
            if matches!(change.action, "add" | "change" | "conflict")
                && let Some(source) = rendered.sources.get(&change.key)
                && *source != render::Source::Literal
            {
                change.source = Some(source.to_string());
            }
        }
    }
    let planned_calls = outcome
        .plan
        .as_ref()
        .map(|p| p.tag_batches.len() + p.untag_batches.len())
        .unwrap_or(0);
    let applied = outcome.writes.calls > 0 || outcome.error.is_some();
    let observe_only = spec.mode == BindingMode::Observe;
    let (reason, message) = if spec.suspend {
        let suspended = checks::suspended();
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
        policy_warnings: warned.iter().map(ToString::to_string).collect(),
        notes: Vec::new(),
    }
}

/// What `apply --prune-removed` says of a removed binding that removed nothing.
const RELEASED: &str = "nothing removed: its tags were changed or removed since it applied \
                        them, or another binding declares them; record dropped";
/// What `plan --prune-removed` says of a removed binding that would remove nothing.
const WOULD_RELEASE: &str = "apply --prune-removed would remove nothing (its tags were changed \
                             or removed since it applied them, or another binding declares \
                             them) and drop its record";

/// What removing `gone` from the files does with its tags ([`checks::deletion`]): a binding
/// that is gone from the files has no `suspend` to honour.
fn deletion_of(gone: &BindingState) -> Deletion {
    let owns_nothing = gone.applied.is_empty() && gone.pending.is_empty();
    checks::deletion(gone.mode, gone.deletion_policy, false, owns_nothing)
}

async fn handle_removed(
    gone: BindingState,
    claims: &PlanClaims<'_>,
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
    if !command.prunes_removed() {
        return report;
    }
    if command.is_plan() {
        return preview_removed(gone, claims, clients, report).await;
    }
    match deletion_of(&gone) {
        Deletion::Prune => {}
        Deletion::Observe => {
            state.bindings.remove(&key);
            report.action = "orphaned";
            report.message =
                "mode Observe: nothing is written; its tags stay on the resources; record dropped"
                    .to_string();
            return report;
        }
        Deletion::Orphan | Deletion::Suspended => {
            state.bindings.remove(&key);
            report.action = "orphaned";
            report.message =
                "deletionPolicy Orphan: its tags stay on the resources; record dropped".to_string();
            return report;
        }
        Deletion::OwnsNothing => {
            state.bindings.remove(&key);
            report.action = "released";
            report.message = RELEASED.to_string();
            return report;
        }
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
    // NB: its unconfirmed intent is claimed (where the cloud carries it) and pruned with the
    // rest of what it owns.
    let mut intents = JournalIntents::new(&state.journal, &gone.resource_type);
    intents.push(key.clone(), &gone.provider, &gone.pending);
    let member = Member {
        binding: &id,
        desired: &Tags::new(),
        resource_ids: &[],
        resolution: None,
        match_tags: None,
        deletion_policy: gone.deletion_policy,
        owned: &owned,
        claims,
        mode: Mode::Apply,
    };
    let outcome = pass_group(client, &gone.resource_type, &[member], &intents)
        .await
        .pop()
        .unwrap_or_else(|| unreachable!("pass_group answers one outcome per member"));
    drop(intents);
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
    if outcome.ownership.is_empty()
        && outcome.pending.is_empty()
        && outcome.error.is_none()
        && outcome.failures.is_empty()
    {
        state.bindings.remove(&key);
        if pruned == 0 {
            report.action = "released";
            report.message = RELEASED.to_string();
        } else {
            report.action = "pruned";
            report.message =
                format!("its tags were removed from {pruned} resource(s); record dropped");
        }
    } else {
        let mut entry = gone;
        entry.applied = AppliedRecord::from_ownership(&outcome.ownership);
        entry.pending = journal::pending_writes(&entry.resource_type, &outcome.pending);
        state.bindings.insert(key, entry);
        report.action = "failed";
        report.message = format!("pruning failed: {}", outcome.readiness.message);
    }
    report
}

/// `plan --prune-removed`: what `apply --prune-removed` would do for a binding that left the
/// files, key by key, from a read of its resources; nothing is written and its record stays.
async fn preview_removed(
    gone: BindingState,
    claims: &PlanClaims<'_>,
    clients: &BTreeMap<String, ProviderClient>,
    mut report: RemovedReport,
) -> RemovedReport {
    match deletion_of(&gone) {
        Deletion::Prune => {}
        Deletion::Observe => {
            report.action = "orphaned";
            report.message = "apply --prune-removed would drop its record without a write (mode \
                              Observe): its tags stay on the resources"
                .to_string();
            return report;
        }
        Deletion::Orphan | Deletion::Suspended => {
            report.action = "orphaned";
            report.message = "apply --prune-removed would leave its tags on the resources \
                              (deletionPolicy Orphan) and drop its record"
                .to_string();
            return report;
        }
        Deletion::OwnsNothing => {
            report.action = "released";
            report.message = WOULD_RELEASE.to_string();
            return report;
        }
    }
    let Some(client) = clients.get(&gone.provider) else {
        report.action = "failed";
        report.message = format!(
            "TagProvider {:?} is not among the given files; apply --prune-removed could not \
             prune",
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
    // NB: a plan records nothing: the intents of a plan are never kept.
    let intents = JournalIntents::new(&JournalHandle(None), &gone.resource_type);
    let member = Member {
        binding: &id,
        desired: &Tags::new(),
        resource_ids: &[],
        resolution: None,
        match_tags: None,
        deletion_policy: gone.deletion_policy,
        owned: &owned,
        claims,
        mode: Mode::PlanOnly,
    };
    let outcome = pass_group(client, &gone.resource_type, &[member], &intents)
        .await
        .pop()
        .unwrap_or_else(|| unreachable!("pass_group answers one outcome per member"));
    if let Some(error) = &outcome.error {
        report.action = "failed";
        report.message = format!("not planned (read failed): {}", error);
        return report;
    }
    report.changes = outcome
        .plan
        .as_ref()
        .map(output::changes_of)
        .unwrap_or_default();
    report.write_calls = outcome
        .plan
        .as_ref()
        .map(|p| p.untag_batches.len())
        .unwrap_or(0);
    let pruned = output::distinct_resources(report.changes.iter().filter(|c| c.action == "prune"));
    if pruned == 0 {
        report.action = "released";
        report.message = WOULD_RELEASE.to_string();
    } else {
        report.action = "pruned";
        report.message = format!(
            "apply --prune-removed would remove its tags from {pruned} resource(s) and drop its \
             record"
        );
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::{CloudError, ErrorKind, Write, WriteResult};
    use crate::reconcile::round::tests::emulated;
    use crate::tags::{Limits, TagsByResource};

    /// A cloud whose writes land but whose answers are all lost (every retry included).
    struct LostAnswers<C>(C);

    impl<C: TagApi> TagApi for LostAnswers<C> {
        fn cloud_name(&self) -> &'static str {
            self.0.cloud_name()
        }

        fn limits(&self) -> &Limits {
            self.0.limits()
        }

        fn check_resource_type(&self, resource_type: &str) -> Result<(), String> {
            self.0.check_resource_type(resource_type)
        }

        fn check_resource_ids(
            &self,
            resource_type: &str,
            resource_ids: &[String],
        ) -> Result<(), String> {
            self.0.check_resource_ids(resource_type, resource_ids)
        }

        async fn list_tags(
            &self,
            resource_type: &str,
            ids: &[String],
        ) -> Result<TagsByResource, CloudError> {
            self.0.list_tags(resource_type, ids).await
        }

        async fn select_resources(
            &self,
            resource_type: &str,
            match_tags: &Tags,
        ) -> Result<TagsByResource, CloudError> {
            self.0.select_resources(resource_type, match_tags).await
        }

        async fn tag_resources(
            &self,
            resource_type: &str,
            ids: &[String],
            tags: &Tags,
        ) -> Result<WriteResult, CloudError> {
            self.0.tag_resources(resource_type, ids, tags).await?;
            Err(CloudError {
                kind: ErrorKind::Retryable,
                action: "TagResources",
                code: "AnswerLost".to_string(),
                message: "the connection dropped before the answer, 5 times".to_string(),
                http_status: None,
                request_id: None,
                attempts: 5,
            })
        }

        async fn untag_resources(
            &self,
            resource_type: &str,
            ids: &[String],
            tags: &Tags,
        ) -> Result<WriteResult, CloudError> {
            self.0.untag_resources(resource_type, ids, tags).await
        }

        async fn write_all(
            &self,
            resource_type: &str,
            writes: &[Write<'_>],
        ) -> Vec<Result<WriteResult, CloudError>> {
            let mut results = Vec::new();
            for write in writes {
                results.push(
                    self.tag_resources(resource_type, write.resource_ids, write.tags)
                        .await,
                );
            }
            results
        }
    }

    /// Issue 20, item 2: a write that landed but whose answers were all lost stays pending in
    /// the state file, and the next run, reading the tag back, owns it (and so can prune it).
    #[tokio::test]
    async fn a_write_whose_answers_were_lost_stays_pending_until_a_read_confirms_it() {
        let (cloud, client) = emulated(&[("g1", &[("keep", "me")])]).await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("binding.yaml"),
            format!(
                "apiVersion: tagbinder.io/v1alpha1\nkind: TagProvider\nmetadata: {{name: p}}\n\
                 spec: {{cloud: alibaba, region: cn-hangzhou, alibaba: {{product: apigateway}}, \
                 endpoint: '{}'}}\n---\napiVersion: tagbinder.io/v1alpha1\n\
                 kind: ResourceTagBinding\nmetadata: {{name: web, namespace: team}}\n\
                 spec: {{providerRef: {{name: p}}, resourceType: apiGroup, resourceIds: [g1], \
                 tags: {{env: prod}}}}\n",
                cloud.url()
            ),
        )
        .unwrap();
        let manifests = manifests::load(&[dir.path().to_path_buf()], true).expect("manifests");
        let declared = declared_bindings(&manifests, &StateFile::empty(), jiff::Timestamp::now());
        let claims = Claims::of(&declared, &manifests);
        let apply = Command::Apply {
            prune_removed: false,
        };
        let mut state = StateFile::empty();
        let lost = LostAnswers(client.clone());
        let outcomes =
            reconcile_group((&lost, "apiGroup", &[0]), &declared, &claims, &state, apply).await;
        record(&mut state, &manifests, &declared[0], &outcomes[0]);
        let entry = &state.bindings["team/web"];
        assert!(entry.applied.is_empty(), "nothing confirmed: {entry:?}");
        assert_eq!(
            journal::intent_of(&entry.pending, "apiGroup")["g1"],
            crate::tags::tags(&[("env", "prod")])
        );

        let outcomes = reconcile_group(
            (&client, "apiGroup", &[0]),
            &declared,
            &claims,
            &state,
            apply,
        )
        .await;
        record(&mut state, &manifests, &declared[0], &outcomes[0]);
        let entry = &state.bindings["team/web"];
        assert!(entry.pending.is_empty(), "{entry:?}");
        let owned = entry.applied.to_ownership();
        assert_eq!(owned.on("g1"), Some(&crate::tags::tags(&[("env", "prod")])));
        assert_eq!(
            outcomes[0].writes.calls, 0,
            "the read confirmed it: nothing to write"
        );
        cloud.shutdown().await.expect("emulator stops");
    }
}
