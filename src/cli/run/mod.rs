//! One CLI run: load, validate everything, (start the embedded cloud), reconcile each
//! binding, record ownership, report.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use super::CommonArgs;
use super::journal::{self, Journal, JournalHandle};
use super::manifests::{self, ManifestError, Manifests};
use super::output::{self, Report};
use super::policy as cli_policy;
use super::progress::Progress;
use super::state::{BindingState, StateFile, StateLock, state_key};
use crate::api::BindingMode;
use crate::cloud::CallObserver;
use crate::emulator::{self, EmulatorConfig, RunningEmulator};
use crate::plan::Claims as PlanClaims;
use crate::reconcile::identity::Target;
use crate::reconcile::provider::{ClientOptions, client_for, http_client};

mod bound;
mod check;
mod declare;
mod passes;
mod removed;
mod report;

use bound::{call_bound, rate_limit};
use check::check_bindings;
use declare::{
    Claims, Declared, build_clients, canonical_with_accounts, declared_bindings, removed_bindings,
    resolve_selectors,
};
use passes::{reconcile_groups, record};
use removed::handle_removed;
use report::{binding_report, explain_tie, note_untagged};

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
    .map_err(|e| vec![e.to_string()])?;
    let mut state = StateFile::load(&args.state).map_err(|e| vec![e.to_string()])?;
    journal::load_pending(&args.state, &mut state).map_err(|e| vec![e.to_string()])?;
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
        state.save(&args.state).map_err(|e| vec![e.to_string()])?;
        journal::clear(&args.state).map_err(|e| vec![e.to_string()])?;
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

#[cfg(test)]
mod tests;
