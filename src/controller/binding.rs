//! Reconciling one ResourceTagBinding: the same pass as the CLI, hosted by kube-runtime, with
//! the finalizer, the status write, events and the requeue policy.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};

use super::cache::{self, Meta};
use super::context::{ClientError, Context, jittered};
use super::fleet::{CloudClient, Submission};
use super::provider_status::{self, Health};
use super::{Error, FINALIZER, events, status};
use crate::api::conditions::reason;
use crate::api::{ResourceTagBinding, ResourceTagBindingStatus};
use crate::cloud::TagApi;
use crate::reconcile::changes::{self, ChangeAction};
use crate::reconcile::checks::Deletion;
use crate::reconcile::identity::binding_key;
use crate::reconcile::{Readiness, checks};
use crate::tags::Tags;

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
    // NB: a binding without the finalizer gets it in the write of its first intent, before
    // its first cloud write (`intent_log`), or at the end of a first pass that writes nothing,
    // before its status (`finish`, `apply`): one write fewer than a finalizer of its own. One
    // that records something and lacks it (removed by hand) gets it here, before its pass.
    let lacks_finalizer = binding.metadata.deletion_timestamp.is_none()
        && !super::intent_log::has_finalizer(&binding);
    // NB: a binding submitted to the fleet is counted when its pass ends, with its result.
    let submitted = AtomicBool::new(false);
    let result = if lacks_finalizer {
        if ctx.record(&binding).is_empty() {
            apply(binding, &ctx, &submitted).await
        } else {
            match super::intent_log::add_finalizer(&binding, &ctx).await {
                Ok(()) => apply(binding, &ctx, &submitted).await,
                Err(error) => Err(error),
            }
        }
    } else {
        finalizer(&api, FINALIZER, binding, |event| async {
            match event {
                Event::Apply(binding) => apply(binding, &ctx, &submitted).await,
                Event::Cleanup(binding) => cleanup(&binding, &ctx).await,
            }
        })
        .await
        .map_err(|error| Error::Finalizer(Box::new(error)))
    };
    ctx.fleet.settled(&key);
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
enum Checked {
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

async fn check(binding: &ResourceTagBinding, ctx: &Context) -> Result<Checked, Error> {
    // NB: the bindings' cache is complete before the first pass (kube-runtime holds passes
    // until then), the providers' is not: a pass that ran before it filled would report a
    // provider that exists as missing, and nothing would trigger the pass again.
    ctx.providers_synced.wait().await;
    let provider = ctx
        .providers
        .get(&ObjectRef::new(&binding.spec.provider_ref.name));
    let labels = match &provider {
        Some(provider) if checks::needs_namespace_labels(provider) => {
            ctx.namespace_labels(&binding.namespace().unwrap_or_default())
                .await?
        }
        _ => Default::default(),
    };
    if let Err(refusal) = checks::precheck(binding, provider.as_deref(), &labels) {
        return Ok(Checked::Closed(refusal.readiness));
    }
    let Some(provider) = provider else {
        return Ok(Checked::Closed(stalled(
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
                return Ok(Checked::Closed(stalled(
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
                return Ok(Checked::Closed(stalled(
                    reason::POLICY_VIOLATION,
                    format!(
                        "{}; nothing written",
                        crate::policy::Verdict::message(&verdict.denied)
                    ),
                )));
            }
        }
    }
    let checked = match ctx.cloud_client(&provider).await? {
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
                return Ok(Checked::Closed(stalled(
                    reason::INVALID_SPEC,
                    violations.join("; "),
                )));
            }
            return Ok(Checked::Open(Box::new(client), rendered.tags));
        }
        Err(ClientError::Credentials(message)) => {
            Checked::Closed(stalled(reason::CREDENTIALS_INVALID, message))
        }
        Err(ClientError::Forbidden(message)) => {
            Checked::Forbidden(stalled(reason::CREDENTIALS_INVALID, message))
        }
        Err(ClientError::OutsideCredentialsNamespace(message)) => Checked::Closed(stalled(
            reason::SECRET_NOT_IN_CREDENTIALS_NAMESPACE,
            message,
        )),
        Err(ClientError::Spec(message)) => Checked::Closed(stalled(reason::INVALID_SPEC, message)),
    };
    if let Checked::Closed(readiness) | Checked::Forbidden(readiness) = &checked {
        let health = Health::Failing {
            reason: readiness.reason,
            message: readiness.message.clone(),
        };
        provider_status::report(ctx, &binding.spec.provider_ref.name, health).await;
    }
    Ok(checked)
}

async fn apply(
    binding: Arc<ResourceTagBinding>,
    ctx: &Context,
    submitted: &AtomicBool,
) -> Result<Action, Error> {
    let key = binding_key(&binding);
    // NB: a suspended binding says so in status, with no event: it is not a failure.
    let (readiness, next, warn) = match check(&binding, ctx).await? {
        Checked::Open(..) if binding.spec.suspend => {
            (checks::suspended(), Action::await_change(), false)
        }
        Checked::Open(client, desired) => {
            submitted.store(true, Ordering::Relaxed);
            if !status::ready_at_generation(&binding) {
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
        Checked::Closed(readiness) => (readiness, Action::await_change(), true),
        Checked::Forbidden(readiness) => (
            readiness,
            Action::requeue(jittered(binding.spec.resync_interval())),
            true,
        ),
    };
    ctx.fleet.unregister(&key);
    if warn && status::previous_reason(&binding) != Some(readiness.reason) {
        events::publish(
            &binding,
            EventType::Warning,
            readiness.reason,
            readiness.message.clone(),
            ctx,
        )
        .await;
    }
    let status = status_without_pass(&binding, &readiness, ctx);
    let records_something = !(status.applied.is_empty() && status.pending.is_empty());
    super::intent_log::ensure_finalizer(&binding, records_something, ctx).await;
    status::write(&binding, status, ctx).await?;
    ctx.metrics.set_ready(&key, Some((false, readiness.reason)));
    ctx.metrics.stopped(&key);
    ctx.reset_backoff(&key);
    Ok(next)
}

/// The status of a pass that stopped before the cloud: new conditions, the ownership record
/// unchanged (the newest: one a failed status write could not record, or an intent's).
fn status_without_pass(
    binding: &ResourceTagBinding,
    readiness: &Readiness,
    ctx: &Context,
) -> ResourceTagBindingStatus {
    let mut status = status::without_pass(binding, readiness, jiff::Timestamp::now());
    ctx.record(binding).write_to(&mut status);
    status
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
    // NB: a binding that owns nothing may still have an intent to claim (a pass killed
    // after its writes).
    let record = ctx.record(binding);
    let owns_nothing = record.owned.is_empty() && record.pending.is_empty();
    let spec = &binding.spec;
    match checks::deletion(spec.mode, spec.deletion_policy, spec.suspend, owns_nothing) {
        Deletion::Prune => {}
        Deletion::Observe | Deletion::Orphan | Deletion::OwnsNothing => {
            ctx.ownership_recorded(binding);
            return Ok(Action::await_change());
        }
        Deletion::Suspended => {
            events::publish(
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
    }
    let client = match check(binding, ctx).await? {
        Checked::Open(client, _) => client,
        Checked::Closed(readiness) if readiness.reason == reason::PROVIDER_NOT_FOUND => {
            // NB: without its provider a binding can never prune; holding the finalizer would
            // block the deletion (and its namespace's) forever. Say so, and let go.
            events::publish(
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
        Checked::Closed(readiness) | Checked::Forbidden(readiness) => {
            return cleanup_blocked(binding, readiness, ctx).await;
        }
    };
    let outcome = super::pass::prune(binding, client.as_ref(), ctx).await;
    if outcome.ownership.is_empty()
        && outcome.pending.is_empty()
        && outcome.failures.is_empty()
        && outcome.error.is_none()
    {
        ctx.ownership_recorded(binding);
        events::log_writes(binding, &outcome.changes);
        if let Some(note) = changes::describe_all(&outcome.changes, ChangeAction::Pruned) {
            events::publish(
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
    status::write(
        binding,
        status::from_outcome(
            binding,
            &outcome,
            None,
            ctx.record(binding).sequence,
            jiff::Timestamp::now(),
        ),
        ctx,
    )
    .await?;
    Err(Error::Cleanup(outcome.readiness.message))
}

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
    if status::previous_message(binding) != Some(readiness.message.as_str()) {
        events::publish(
            binding,
            EventType::Warning,
            readiness.reason,
            readiness.message.clone(),
            ctx,
        )
        .await;
    }
    status::write(binding, status_without_pass(binding, &readiness, ctx), ctx).await?;
    Err(Error::Cleanup(readiness.message))
}
