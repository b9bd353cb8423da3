//! Reconciling one ResourceTagBinding: the same pass as the CLI, hosted by kube-runtime, with
//! the finalizer, the status write, events and the requeue policy.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder};
use kube::runtime::finalizer::{Event, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};

use super::cache::{self, Meta};
use super::context::CloudClient;
use super::context::{ClientError, Context, Record, jittered};
use super::fleet::Submission;
use super::provider_status::{self, Health};
use super::{Error, FIELD_MANAGER, FINALIZER, status};
use crate::api::conditions::reason;
use crate::api::{
    AppliedRecord, BindingMode, DeletionPolicy, PendingRecord, ResourceTagBinding,
    ResourceTagBindingStatus,
};
use crate::cloud::TagApi;
use crate::plan::{BindingId, Claim};
use crate::reconcile::changes::{self, ChangeAction, KeyChange};
use crate::reconcile::fleet::{Target, binding_id, binding_key, canonical_ids};
use crate::reconcile::round::run_round;
use crate::reconcile::{Mode, Outcome, PassInput, Readiness, gate};
use crate::tags::{Ownership, Tags, TagsByResource};

/// Entry point of the controller: one binding, through the finalizer. A binding whose checks
/// pass is submitted to the fleet, whose next round runs its pass (see [`super::fleet`]).
pub async fn reconcile(
    binding: Arc<ResourceTagBinding>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let started = Instant::now();
    let namespace = binding.namespace().unwrap_or_default();
    let api: Api<ResourceTagBinding> = Api::namespaced(ctx.client.clone(), &namespace);
    let key = binding_key(&binding);
    // NB: a binding without the finalizer gets it in this reconcile, and nothing else: its
    // watch event brings the pass. The fleet's round keeps waiting for it meanwhile.
    let adds_finalizer = binding.metadata.deletion_timestamp.is_none()
        && !binding.finalizers().iter().any(|f| f == FINALIZER);
    // NB: a binding submitted to the fleet is counted when its pass ends, with its result.
    let submitted = AtomicBool::new(false);
    let result = finalizer(&api, FINALIZER, binding, |event| async {
        match event {
            Event::Apply(binding) => apply(binding, &ctx, &submitted).await,
            Event::Cleanup(binding) => cleanup(&binding, &ctx).await,
        }
    })
    .await
    .map_err(|error| Error::Finalizer(Box::new(error)));
    if !(adds_finalizer && result.is_ok()) {
        ctx.fleet.settled(&key);
    }
    let label = match &result {
        Ok(_) => "ok",
        Err(error) => error.metric_label(),
    };
    if !(submitted.load(Ordering::Relaxed) && result.is_ok()) {
        ctx.metrics
            .reconciled(label, started.elapsed().as_secs_f64());
    }
    tracing::debug!(binding = %key, result = label, "reconciled");
    result
}

/// What kube-runtime's controller calls: the binding its metadata names, decoded from the
/// compact cache, reconciled.
pub async fn reconcile_cached(meta: Arc<Meta>, ctx: Arc<Context>) -> Result<Action, Error> {
    let key = cache::key_of(&meta);
    let Some(binding) = ctx.bindings.get(&key) else {
        // NB: deleted since the event (the cache and kube-runtime's store follow one watch).
        ctx.fleet.settled(&key);
        return Ok(Action::await_change());
    };
    reconcile(binding, ctx).await
}

/// Requeue policy of a failed reconcile: exponential backoff with jitter, per binding.
pub fn error_policy(meta: Arc<Meta>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = cache::key_of(&meta);
    ctx.fleet.settled(&key);
    let delay = ctx.backoff(&key);
    tracing::warn!(binding = %key, %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// Where a pass stops before the cloud, and why.
enum Gate {
    /// Go on with this client, declaring these tags (rendered).
    Open(Box<CloudClient>, Tags),
    /// Stop: report this, and wait for a change of spec, provider or Secret.
    Closed(Readiness),
    /// Stop: report this, and look again after `spec.interval`. For a Secret the controller
    /// may not read: the fix is an RBAC change, which no watch of the controller sees.
    Forbidden(Readiness),
}

fn stalled(reason: &'static str, message: String) -> Readiness {
    Readiness {
        ready: false,
        reason,
        message,
        stalled: true,
    }
}

async fn gate(binding: &ResourceTagBinding, ctx: &Context) -> Result<Gate, Error> {
    // NB: the bindings' cache is complete before the first pass (kube-runtime holds passes
    // until then), the providers' is not: a pass that ran before it filled would report a
    // provider that exists as missing, and nothing would trigger the pass again.
    ctx.providers_synced.wait().await;
    let provider = ctx
        .providers
        .get(&ObjectRef::new(&binding.spec.provider_ref.name));
    let labels = match &provider {
        Some(provider) if gate::needs_namespace_labels(provider) => {
            ctx.namespace_labels(&binding.namespace().unwrap_or_default())
                .await?
        }
        _ => Default::default(),
    };
    if let Err(refusal) = gate::precheck(binding, provider.as_deref(), &labels) {
        return Ok(Gate::Closed(refusal.readiness));
    }
    let Some(provider) = provider else {
        return Ok(Gate::Closed(stalled(
            reason::PROVIDER_NOT_FOUND,
            format!(
                "TagProvider {:?} does not exist",
                binding.spec.provider_ref.name
            ),
        )));
    };
    // NB: a binding being deleted declares nothing: it only prunes what it applied.
    let rendered = if binding.metadata.deletion_timestamp.is_some() {
        crate::render::Rendered::default()
    } else {
        let namespace = if binding.spec.reads_namespace() {
            ctx.namespace_meta(&binding.namespace().unwrap_or_default())
                .await?
        } else {
            None
        };
        match ctx.render(binding, &provider, namespace.as_ref()) {
            Ok(rendered) => rendered,
            Err(missing) => {
                return Ok(Gate::Closed(stalled(
                    reason::VALUE_NOT_FOUND,
                    missing.to_string(),
                )));
            }
        }
    };
    // NB: a binding being deleted declares nothing: no policy stops its pruning.
    if binding.metadata.deletion_timestamp.is_none()
        && let Some(policies) = &ctx.policies
    {
        let policies = policies.current().await;
        if !policies.is_empty() {
            let labels = if super::policies::selects_namespaces(&policies) {
                ctx.namespace_meta(&binding.namespace().unwrap_or_default())
                    .await?
                    .map(|namespace| namespace.labels)
                    .unwrap_or_default()
            } else {
                Default::default()
            };
            let verdict = super::policies::judge(&policies, binding, &labels, &rendered.tags);
            ctx.metrics.policy_evaluated();
            ctx.policy_status
                .judged(&binding_key(binding), &policies, &verdict);
            if !verdict.denied.is_empty() {
                // NB: no round follows a denial: its count goes out on its own.
                ctx.policy_status.changed();
                return Ok(Gate::Closed(stalled(
                    reason::POLICY_VIOLATION,
                    format!(
                        "{}; nothing written",
                        crate::policy::Verdict::message(&verdict.denied)
                    ),
                )));
            }
        }
    }
    let gate = match ctx.cloud_client(&provider).await? {
        Ok(client) => {
            // NB: a rendered value (or a default) that breaks the cloud's rules names its
            // source; the pass's own check names `spec.tags` only.
            let match_tags = binding
                .spec
                .resource_selector
                .as_ref()
                .map(|s| &s.match_tags);
            let violations: Vec<String> = rendered
                .violations(client.limits(), match_tags)
                .iter()
                .map(ToString::to_string)
                .collect();
            if rendered.has_sources() && !violations.is_empty() {
                return Ok(Gate::Closed(stalled(
                    reason::INVALID_SPEC,
                    violations.join("; "),
                )));
            }
            return Ok(Gate::Open(Box::new(client), rendered.tags));
        }
        Err(ClientError::Credentials(message)) => {
            Gate::Closed(stalled(reason::CREDENTIALS_INVALID, message))
        }
        Err(ClientError::Forbidden(message)) => {
            Gate::Forbidden(stalled(reason::CREDENTIALS_INVALID, message))
        }
        Err(ClientError::OutsideCredentialsNamespace(message)) => Gate::Closed(stalled(
            reason::SECRET_NOT_IN_CREDENTIALS_NAMESPACE,
            message,
        )),
        Err(ClientError::Spec(message)) => Gate::Closed(stalled(reason::INVALID_SPEC, message)),
    };
    if let Gate::Closed(readiness) | Gate::Forbidden(readiness) = &gate {
        let health = Health::Failing {
            reason: readiness.reason,
            message: readiness.message.clone(),
        };
        provider_status::report(ctx, &binding.spec.provider_ref.name, health).await;
    }
    Ok(gate)
}

async fn apply(
    binding: Arc<ResourceTagBinding>,
    ctx: &Context,
    submitted: &AtomicBool,
) -> Result<Action, Error> {
    let key = binding_key(&binding);
    let (readiness, next) = match gate(&binding, ctx).await? {
        Gate::Open(..) if binding.spec.suspend => {
            ctx.fleet.unregister(&key);
            let readiness = gate::suspended();
            write_status(
                &binding,
                status_without_pass(&binding, &readiness, ctx),
                ctx,
            )
            .await?;
            ctx.metrics.set_ready(&key, Some((false, readiness.reason)));
            ctx.metrics.stopped(&key);
            return Ok(Action::await_change());
        }
        Gate::Open(client, desired) => {
            submitted.store(true, Ordering::Relaxed);
            if !ready_at_generation(&binding) {
                ctx.metrics.awaiting_ready(
                    &key,
                    binding.metadata.generation,
                    binding.metadata.creation_timestamp.as_ref().map(|t| t.0),
                );
            }
            ctx.fleet.submit(
                key,
                Submission {
                    binding,
                    client: *client,
                    desired,
                },
            );
            // NB: the fleet's round runs the pass, writes the status and asks for the next.
            return Ok(Action::await_change());
        }
        Gate::Closed(readiness) => (readiness, Action::await_change()),
        Gate::Forbidden(readiness) => (readiness, Action::requeue(jittered(interval(&binding)))),
    };
    ctx.fleet.unregister(&key);
    if previous_reason(&binding) != Some(readiness.reason) {
        publish(
            &binding,
            EventType::Warning,
            readiness.reason,
            readiness.message.clone(),
            ctx,
        )
        .await;
    }
    write_status(
        &binding,
        status_without_pass(&binding, &readiness, ctx),
        ctx,
    )
    .await?;
    ctx.metrics.set_ready(&key, Some((false, readiness.reason)));
    ctx.metrics.stopped(&key);
    ctx.reset_backoff(&key);
    Ok(next)
}

/// The status of a pass that stopped before the cloud: new conditions, the ownership record
/// unchanged (the one a failed status write could not record, if any).
fn status_without_pass(
    binding: &ResourceTagBinding,
    readiness: &Readiness,
    ctx: &Context,
) -> ResourceTagBindingStatus {
    let mut status = status::without_pass(binding, readiness, jiff::Timestamp::now());
    if let Some(kept) = ctx.unrecorded(binding) {
        status.applied = AppliedRecord::from_ownership(&kept.owned);
        status.pending = PendingRecord::from_intent(&kept.pending);
    }
    status
}

/// What the fleet does with a binding after its pass.
pub(super) enum Next {
    /// Sweeps cover it: look again within `spec.interval`.
    Sweep,
    /// Something failed that may pass: ask again after a backoff.
    Retry,
    /// Only a change can help (stalled).
    AwaitChange,
}

/// After a pass of a round that took `seconds`: metrics, the status (only when it changed),
/// events.
pub(super) async fn finish(
    binding: &ResourceTagBinding,
    outcome: &Outcome,
    desired: &Tags,
    seconds: f64,
    ctx: &Context,
) -> Next {
    let key = binding_key(binding);
    ctx.metrics.reconciled(pass_result(outcome), seconds);
    ctx.metrics.passed(&binding.spec.provider_ref.name);
    if let Some(health) = provider_status::health_of(&outcome.readiness) {
        provider_status::report(ctx, &binding.spec.provider_ref.name, health).await;
    }
    ctx.metrics.drift_corrected(outcome.writes.drift_corrected);
    ctx.metrics
        .set_ready(&key, Some((outcome.is_ready(), outcome.readiness.reason)));
    if outcome.is_ready() {
        ctx.metrics.became_ready(&key, binding.metadata.generation);
    }
    // NB: an Enforce binding's resources that still lack declared tags after its pass: drift
    // (or a first write) that no pass has corrected yet. Observe bindings report theirs in
    // tagbinder_drifted_resources.
    let uncorrected =
        binding.spec.mode == BindingMode::Enforce && outcome.counts.synced < outcome.counts.total;
    ctx.metrics.set_drift(
        &key,
        &binding.spec.provider_ref.name,
        uncorrected.then(|| interval(binding)),
    );
    ctx.metrics.set_intent(&key, !outcome.pending.is_empty());
    ctx.metrics.set_drifted(
        &binding.namespace().unwrap_or_default(),
        &binding.name_any(),
        outcome.drift.as_ref().map(|d| d.counts.resources),
    );
    let was_drifted = status::was_drifted(binding);
    let now = jiff::Timestamp::now();
    let mut new_status = status::from_outcome(binding, outcome, Some(desired), now);
    let verdict = policy_verdict(binding, desired, ctx);
    ctx.policy_status
        .judged(&key, &ctx.policies_now(), &verdict);
    let compliance = super::policies::compliant_condition(binding, &verdict, now);
    new_status.conditions.extend(compliance.clone());
    let written = write_status(binding, new_status, ctx).await;
    if let Err(error) = written {
        tracing::warn!(binding = %key, %error, "cannot write the status");
        return Next::Retry;
    }
    publish_events(binding, outcome, ctx).await;
    if let Some(condition) = compliance.filter(|c| c.status == "False")
        && !super::policies::was_violating(binding)
    {
        publish(
            binding,
            EventType::Warning,
            reason::POLICY_VIOLATION,
            condition.message,
            ctx,
        )
        .await;
    }
    if let Some(drift) = &outcome.drift
        && was_drifted != Some(drift.is_drifted())
        && (drift.is_drifted() || was_drifted.is_some())
    {
        let type_ = if drift.is_drifted() {
            EventType::Warning
        } else {
            EventType::Normal
        };
        publish(binding, type_, reason::DRIFTED, drift.message.clone(), ctx).await;
    }
    if outcome.retry_soon() {
        // NB: a pass that got some writes through is not failing: its retry waits the first
        // step of the backoff, not a step longer each time (issue 20: under a throttling
        // storm, backoffs grew to 41 s while every pass made progress).
        if outcome.made_progress() {
            ctx.reset_backoff(&key);
        }
        return Next::Retry;
    }
    ctx.reset_backoff(&key);
    // NB: too many matches may change with the cloud: the selector is resolved again on the
    // next sweep, not only after a spec change.
    if outcome.readiness.stalled && outcome.readiness.reason != reason::TOO_MANY_RESOURCES {
        return Next::AwaitChange;
    }
    Next::Sweep
}

/// The binding's standing against the TagPolicies after its pass (the namespace's labels
/// from the cache: a label change re-announces the namespace's bindings).
fn policy_verdict(
    binding: &ResourceTagBinding,
    desired: &Tags,
    ctx: &Context,
) -> crate::policy::Verdict {
    let policies = ctx.policies_now();
    if policies.is_empty() || binding.metadata.deletion_timestamp.is_some() {
        return Default::default();
    }
    let labels = if super::policies::selects_namespaces(&policies) {
        ctx.cached_namespace(&binding.namespace().unwrap_or_default())
            .map(|namespace| namespace.labels)
            .unwrap_or_default()
    } else {
        Default::default()
    };
    super::policies::judge(&policies, binding, &labels, desired)
}

/// The `result` label of a pass in `tagbinder_reconcile_total`: a pass that left resources
/// failed is not `ok`.
fn pass_result(outcome: &Outcome) -> &'static str {
    match outcome.readiness.reason {
        reason::PARTIAL_FAILURE => "partial_failure",
        reason::PROVIDER_ERROR | reason::CREDENTIALS_INVALID => "cloud_error",
        _ => "ok",
    }
}

async fn cleanup(binding: &ResourceTagBinding, ctx: &Context) -> Result<Action, Error> {
    let key = binding_key(binding);
    ctx.fleet.unregister(&key);
    ctx.policy_status.forget(&key);
    ctx.policy_status.changed();
    ctx.metrics.set_ready(&key, None);
    ctx.metrics.stopped(&key);
    ctx.metrics.set_drifted(
        &binding.namespace().unwrap_or_default(),
        &binding.name_any(),
        None,
    );
    // NB: an Observe binding never writes, not even to prune: it lets go at once. A binding
    // that owns nothing may still have an intent to claim (a pass killed after its writes).
    let record = ctx.record(binding);
    let owns_nothing = record.owned.is_empty() && record.pending.is_empty();
    if binding.spec.deletion_policy == DeletionPolicy::Orphan
        || binding.spec.mode == BindingMode::Observe
        || owns_nothing
    {
        ctx.ownership_recorded(binding);
        return Ok(Action::await_change());
    }
    // NB: as Flux does for a suspended object: suspend makes no cloud writes, not even the
    // prune of a deletion; the binding lets go as with `deletionPolicy: Orphan`.
    if binding.spec.suspend {
        publish(
            binding,
            EventType::Normal,
            reason::ORPHANED_TAGS,
            "deleted while suspended: the tags it applied are left in place, as with \
             deletionPolicy: Orphan (spec.suspend makes no cloud writes)"
                .to_string(),
            ctx,
        )
        .await;
        ctx.ownership_recorded(binding);
        return Ok(Action::await_change());
    }
    let client = match gate(binding, ctx).await? {
        Gate::Open(client, _) => client,
        Gate::Closed(readiness) if readiness.reason == reason::PROVIDER_NOT_FOUND => {
            // NB: without its provider a binding can never prune; holding the finalizer would
            // block the deletion (and its namespace's) forever. Say so, and let go.
            publish(
                binding,
                EventType::Warning,
                reason::ORPHANED_TAGS,
                readiness.message.clone(),
                ctx,
            )
            .await;
            ctx.ownership_recorded(binding);
            return Ok(Action::await_change());
        }
        Gate::Closed(readiness) | Gate::Forbidden(readiness) => {
            return cleanup_blocked(binding, readiness, ctx).await;
        }
    };
    let outcome = pass(binding, client.as_ref(), ctx, &Tags::new(), &[]).await;
    if outcome.ownership.is_empty()
        && outcome.pending.is_empty()
        && outcome.failures.is_empty()
        && outcome.error.is_none()
    {
        ctx.ownership_recorded(binding);
        log_writes(binding, &outcome.changes);
        if let Some(note) = changes::describe_all(&outcome.changes, ChangeAction::Pruned) {
            publish(
                binding,
                EventType::Normal,
                "Pruned",
                format!("on deletion, {note}"),
                ctx,
            )
            .await;
        }
        return Ok(Action::await_change());
    }
    write_status(
        binding,
        status::from_outcome(binding, &outcome, None, jiff::Timestamp::now()),
        ctx,
    )
    .await?;
    Err(Error::Cleanup(outcome.readiness.message))
}

/// The bindings whose claims bear on a pass (the pass's own binding among them: the plan
/// knows itself), with the resources each declares.
/// Each with the tags it declares, rendered ([`Context::claimed_tags`]).
pub(super) type Claimants = Vec<(BindingId, BTreeSet<String>, Tags)>;

/// Claimants already looked up in one group of passes, by the resources considered: bindings
/// that consider the same resources share one list (issue 20, item 8: 8,000 bindings on one
/// resource held 8,000 lists of 7,999).
pub(super) type SharedClaimants = std::collections::HashMap<Vec<String>, Arc<Claimants>>;

/// A deletion that cannot prune (no credentials, namespace no longer allowed): it says so
/// (Stalled with the reason, and a Warning event on the transition) instead of holding the
/// finalizer silently, and names the way out. The error keeps the finalizer (kube-runtime
/// removes it after a cleanup that succeeds); the pass is retried with the backoff.
async fn cleanup_blocked(
    binding: &ResourceTagBinding,
    mut readiness: Readiness,
    ctx: &Context,
) -> Result<Action, Error> {
    readiness.message = format!(
        "the deletion waits: it cannot remove the tags this binding applied: {}; restore \
         access (the Secret, the namespace), or set spec.deletionPolicy: Orphan to leave the \
         tags and let the binding go",
        readiness.message
    );
    readiness.stalled = true;
    readiness.ready = false;
    // NB: the same reason may stand from before the deletion (a pass that could not reach
    // the cloud either): the deletion's message is new, and the event says it once.
    if previous_message(binding) != Some(readiness.message.as_str()) {
        publish(
            binding,
            EventType::Warning,
            readiness.reason,
            readiness.message.clone(),
            ctx,
        )
        .await;
    }
    write_status(binding, status_without_pass(binding, &readiness, ctx), ctx).await?;
    Err(Error::Cleanup(readiness.message))
}

/// What a pass of one binding needs beside its spec: its identity, its ownership record, and
/// the bindings whose claims bear on it.
pub(super) struct Prepared {
    /// Identity and age.
    pub id: BindingId,
    /// The ownership record before the pass.
    pub owned: Ownership,
    /// The unresolved intent of a previous pass, claimed once the pass has observed the cloud.
    pub pending: TagsByResource,
    /// Shared with the passes of its group that consider the same resources.
    pub others: Arc<Claimants>,
}

impl Prepared {
    /// Prepares a pass of `binding` over `resource_ids` (and what it owns and intended), its
    /// claimants looked up in `shared` first (all passes of one provider and resource type).
    pub fn of(
        binding: &ResourceTagBinding,
        ctx: &Context,
        resource_ids: &[String],
        shared: &mut SharedClaimants,
    ) -> Self {
        let Record { owned, pending } = ctx.record(binding);
        // NB: a claimed key is planned like an owned one (and may be pruned): the claims of
        // other bindings on the intent's resources bear on the pass too.
        let considered: BTreeSet<&String> = resource_ids
            .iter()
            .chain(owned.resources().keys())
            .chain(pending.keys())
            .collect();
        let considered: Vec<String> = considered.into_iter().cloned().collect();
        let others = match shared.get(&considered) {
            Some(others) => others.clone(),
            None => {
                let others = Arc::new(claimants(binding, ctx, &considered));
                shared.insert(considered, others.clone());
                others
            }
        };
        Prepared {
            id: binding_id(binding),
            owned,
            pending,
            others,
        }
    }

    /// The claims of `others`, borrowed from them.
    pub fn claims_of(others: &Claimants) -> Vec<Claim<'_>> {
        others
            .iter()
            .map(|(other_id, ids, tags)| Claim {
                binding: other_id,
                resource_ids: ids,
                tags,
            })
            .collect()
    }
}

/// One binding's pass against the cloud, with the claims of every other binding on the same
/// resources, whichever provider they go through (a deletion's pass; due bindings pass
/// together in the fleet's rounds).
// NB: a deletion's pass only untags (nothing is declared), so it records no intent: an untag
// killed before its status write leaves a key the next pass finds gone, and releases. It does
// claim the intent of a pass killed after its writes, so that it prunes those tags too.
async fn pass<C: TagApi>(
    binding: &ResourceTagBinding,
    client: &C,
    ctx: &Context,
    desired: &Tags,
    resource_ids: &[String],
) -> Outcome {
    let prepared = Prepared::of(binding, ctx, resource_ids, &mut SharedClaimants::new());
    let claims = crate::plan::Claims::new(Prepared::claims_of(&prepared.others));
    let input = PassInput {
        binding: &prepared.id,
        desired,
        resource_type: &binding.spec.resource_type,
        resource_ids,
        owned: &prepared.owned,
        claims: &claims,
        mode: Mode::Apply,
        selection: None,
    };
    let intents = super::intents::StatusIntents::new(ctx, vec![binding], vec![&prepared.pending]);
    run_round(
        client,
        &binding.spec.resource_type,
        std::slice::from_ref(&input),
        &intents,
    )
    .await
    .pop()
    .expect("run_round answers one outcome per input")
}

/// The other bindings whose claims bear on this pass: on the same cloud, region and resource
/// type (through any provider), not being deleted, declaring at least one resource the pass
/// considers (declared or owned; the plan looks at no other). Found in the fleet's claim
/// index, which the watch keeps: a pass costs a lookup per resource, not a scan of the fleet.
fn claimants(binding: &ResourceTagBinding, ctx: &Context, considered: &[String]) -> Claimants {
    let Some(provider) = ctx
        .providers
        .get(&ObjectRef::new(&binding.spec.provider_ref.name))
    else {
        return Vec::new();
    };
    let target = Target::of(&provider.spec, &binding.spec.resource_type);
    let keys = ctx.fleet.claims().claimants(
        &target,
        |name, resource_type| {
            let provider = ctx.providers.get(&ObjectRef::new(name))?;
            Some(Target::of(&provider.spec, resource_type))
        },
        considered.iter().map(String::as_str),
        None,
    );
    let index = ctx.fleet.claims();
    keys.iter()
        .filter_map(|other| {
            let binding = ctx.bindings.get(other)?;
            // NB: what the index holds: the id list, or a selector's last selection; as the
            // canonical ids its own provider names them by (an AWS bare id is its ARN).
            let declared: Vec<String> = index.declared_ids(other)?.map(str::to_string).collect();
            let ids: BTreeSet<String> = match ctx
                .providers
                .get(&ObjectRef::new(&binding.spec.provider_ref.name))
            {
                Some(provider) => canonical_ids(
                    &provider.spec,
                    ctx.known_aws_account(&binding.spec.provider_ref.name)
                        .as_deref(),
                    &binding.spec.resource_type,
                    &declared,
                )
                .iter()
                .cloned()
                .collect(),
                None => declared.into_iter().collect(),
            };
            Some((binding, ids))
        })
        .filter(|(other, _)| other.metadata.deletion_timestamp.is_none())
        // NB: an Observe binding writes nothing, so it claims nothing: an audit neither wins
        // a conflict against a binding that writes nor keeps its tags from being pruned.
        .filter(|(other, _)| other.spec.mode != BindingMode::Observe)
        .map(|(other, ids)| (binding_id(&other), ids, ctx.claimed_tags(&other)))
        .collect()
}

/// `spec.interval`: how often the binding's resources are read at least.
pub(super) fn interval(binding: &ResourceTagBinding) -> Duration {
    // NB: the CRD pattern and the schema check in `gate` make the interval parse; the default
    // covers objects written before either existed.
    humantime::parse_duration(&binding.spec.interval).unwrap_or(Duration::from_secs(600))
}

/// Writes the status with server-side apply, only when it changed beyond timestamps. The
/// ownership record it carries is kept in memory until the cached binding shows it (or, when
/// the write fails, until a later write succeeds).
pub(super) async fn write_status(
    binding: &ResourceTagBinding,
    status: ResourceTagBindingStatus,
    ctx: &Context,
) -> Result<(), Error> {
    let record = Record::of(&status);
    // NB: a record kept in memory is newer than the cache's status: a status equal to the
    // cache's is still written when it differs from the kept one.
    let kept_differs = ctx.unrecorded(binding).is_some_and(|kept| kept != record);
    if !status::differs(binding.status.as_ref(), &status) && !kept_differs {
        ctx.ownership_recorded(binding);
        return Ok(());
    }
    let api: Api<ResourceTagBinding> =
        Api::namespaced(ctx.client.clone(), &binding.namespace().unwrap_or_default());
    let patch = serde_json::json!({
        "apiVersion": ResourceTagBinding::api_version(&()),
        "kind": ResourceTagBinding::kind(&()),
        "status": status,
    });
    // NB: kept in memory until the cache's copy of the binding carries it (`Context::owned`),
    // whether the write succeeds or not.
    ctx.ownership_unrecorded(binding, record);
    api.patch_status(
        &binding.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(drop)
    .map_err(Error::Kube)
}

/// Whether the binding's status says Ready=True for its current generation.
fn ready_at_generation(binding: &ResourceTagBinding) -> bool {
    binding.status.as_ref().is_some_and(|status| {
        status.observed_generation == binding.metadata.generation
            && status
                .conditions
                .iter()
                .any(|c| c.type_ == crate::api::conditions::READY && c.status == "True")
    })
}

/// Events on transitions only: tags applied, drift corrected, pruned, conflict, stalled.
fn previous_reason(binding: &ResourceTagBinding) -> Option<&str> {
    binding
        .status
        .as_ref()
        .and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == crate::api::conditions::READY)
        })
        .map(|c| c.reason.as_str())
}

/// The message of the Ready condition in the binding's status.
fn previous_message(binding: &ResourceTagBinding) -> Option<&str> {
    binding
        .status
        .as_ref()
        .and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.type_ == crate::api::conditions::READY)
        })
        .map(|c| c.message.as_str())
}

async fn publish_events(binding: &ResourceTagBinding, outcome: &Outcome, ctx: &Context) {
    let previous_reason = previous_reason(binding);
    log_writes(binding, &outcome.changes);
    for (action, reason) in [
        (ChangeAction::Rewrote, "DriftCorrected"),
        (ChangeAction::Applied, "TagsApplied"),
        (ChangeAction::Pruned, "Pruned"),
    ] {
        if let Some(note) = changes::describe_all(&outcome.changes, action) {
            publish(binding, EventType::Normal, reason, note, ctx).await;
        }
    }
    let reason = outcome.readiness.reason;
    if previous_reason != Some(reason)
        && (reason == reason::CONFLICT
            || outcome.readiness.stalled
            || reason == reason::PARTIAL_FAILURE)
    {
        publish(
            binding,
            EventType::Warning,
            reason,
            outcome.readiness.message.clone(),
            ctx,
        )
        .await;
    }
}

/// One info line per write call of the pass (tag, untag): the binding, its provider, the call,
/// the keys and how many resources. Tag values stay in the events and at debug level.
fn log_writes(binding: &ResourceTagBinding, changes: &[KeyChange]) {
    for call in ["TagResources", "UntagResources"] {
        let of_call: Vec<&KeyChange> = changes.iter().filter(|c| c.action.call() == call).collect();
        if of_call.is_empty() {
            continue;
        }
        let keys: BTreeSet<&str> = of_call.iter().map(|c| c.key.as_str()).collect();
        let resources: BTreeSet<&str> = of_call
            .iter()
            .flat_map(|c| c.resources.iter().map(String::as_str))
            .collect();
        tracing::info!(
            binding = %binding_key(binding),
            provider = %binding.spec.provider_ref.name,
            action = call,
            keys = %keys.into_iter().collect::<Vec<_>>().join(","),
            resources = resources.len(),
            "wrote tags"
        );
        for change in of_call {
            tracing::debug!(binding = %binding_key(binding), "{}", change.describe());
        }
    }
}

/// The longest event note the API server takes (events.k8s.io/v1 `note`: 1 kB).
const NOTE_LIMIT: usize = 1024;

/// `note` cut to [`NOTE_LIMIT`] bytes at a character boundary, saying it was cut.
fn within_note_limit(mut note: String) -> String {
    const CUT: &str = " ...";
    if note.len() <= NOTE_LIMIT {
        return note;
    }
    let mut end = NOTE_LIMIT - CUT.len();
    while !note.is_char_boundary(end) {
        end -= 1;
    }
    note.truncate(end);
    note.push_str(CUT);
    note
}

async fn publish(
    binding: &ResourceTagBinding,
    type_: EventType,
    reason: &str,
    note: String,
    ctx: &Context,
) {
    let event = KubeEvent {
        type_,
        reason: reason.to_string(),
        note: Some(within_note_limit(note)),
        action: "Reconcile".to_string(),
        secondary: None,
    };
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    if let Err(error) = recorder.publish(&event, &binding.object_ref(&())).await {
        tracing::warn!(%error, "cannot publish event");
    }
}
