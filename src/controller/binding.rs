//! Reconciling one ResourceTagBinding: the same pass as the CLI, hosted by kube-runtime, with
//! the finalizer, the status write, events and the requeue policy.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{Patch, PatchParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder};
use kube::runtime::finalizer::{Event, finalizer};
use kube::runtime::reflector::Store;
use kube::{Api, Resource, ResourceExt};

use super::context::CloudClient;
use super::context::{ClientError, Context, jittered};
use super::{Error, FIELD_MANAGER, FINALIZER, status};
use crate::api::conditions::reason;
use crate::api::{
    AppliedRecord, DeletionPolicy, ResourceTagBinding, ResourceTagBindingStatus, TagProvider,
};
use crate::plan::{BindingId, Claim};
use crate::reconcile::{Mode, Outcome, PassInput, Readiness, run_pass};
use crate::tags::{Ownership, Tags};

/// Entry point of the controller: one binding, through the finalizer.
pub async fn reconcile(
    binding: Arc<ResourceTagBinding>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let started = Instant::now();
    let namespace = binding.namespace().unwrap_or_default();
    let api: Api<ResourceTagBinding> = Api::namespaced(ctx.client.clone(), &namespace);
    let key = binding_key(&binding);
    let result = finalizer(&api, FINALIZER, binding, |event| async {
        match event {
            Event::Apply(binding) => apply(&binding, &ctx).await,
            Event::Cleanup(binding) => cleanup(&binding, &ctx).await,
        }
    })
    .await
    .map_err(|error| Error::Finalizer(Box::new(error)));
    let label = match &result {
        Ok(_) => "ok",
        Err(error) => error.metric_label(),
    };
    ctx.metrics
        .reconciled(label, started.elapsed().as_secs_f64());
    tracing::debug!(binding = %key, result = label, "reconciled");
    result
}

/// Requeue policy of a failed reconcile: exponential backoff with jitter, per binding.
pub fn error_policy(binding: Arc<ResourceTagBinding>, error: &Error, ctx: Arc<Context>) -> Action {
    let key = binding_key(&binding);
    let delay = ctx.backoff(&key);
    tracing::warn!(binding = %key, %error, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

fn binding_key(binding: &ResourceTagBinding) -> String {
    format!(
        "{}/{}",
        binding.namespace().unwrap_or_default(),
        binding.name_any()
    )
}

fn binding_id(binding: &ResourceTagBinding) -> BindingId {
    BindingId {
        created: binding
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.as_second()),
        namespace: binding.namespace().unwrap_or_default(),
        name: binding.name_any(),
    }
}

/// Where a pass stops before the cloud, and why.
enum Gate {
    /// Go on with this client.
    Open(Box<CloudClient>),
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
    let provider_name = &binding.spec.provider_ref.name;
    let Some(provider) = ctx
        .providers
        .state()
        .into_iter()
        .find(|p| &p.name_any() == provider_name)
    else {
        return Ok(Gate::Closed(stalled(
            reason::PROVIDER_NOT_FOUND,
            format!("TagProvider {provider_name:?} does not exist"),
        )));
    };
    if let Some(refusal) = namespace_refusal(binding, &provider, ctx).await? {
        return Ok(Gate::Closed(stalled(
            reason::NAMESPACE_NOT_ALLOWED,
            refusal,
        )));
    }
    if let Some(violation) = binding.spec.schema_violations().into_iter().next() {
        return Ok(Gate::Closed(stalled(reason::INVALID_SPEC, violation)));
    }
    match ctx.cloud_client(&provider).await? {
        Ok(client) => Ok(Gate::Open(Box::new(client))),
        Err(ClientError::Credentials(message)) => {
            Ok(Gate::Closed(stalled(reason::CREDENTIALS_INVALID, message)))
        }
        Err(ClientError::Forbidden(message)) => Ok(Gate::Forbidden(stalled(
            reason::CREDENTIALS_INVALID,
            message,
        ))),
        Err(ClientError::Spec(message)) => Ok(Gate::Closed(stalled(reason::INVALID_SPEC, message))),
    }
}

async fn namespace_refusal(
    binding: &ResourceTagBinding,
    provider: &TagProvider,
    ctx: &Context,
) -> Result<Option<String>, Error> {
    let Some(selector) = &provider.spec.allowed_namespaces else {
        return Ok(None);
    };
    let provider_name = provider.name_any();
    let selector = match Selector::try_from(selector.clone()) {
        Ok(selector) => selector,
        Err(error) => {
            return Ok(Some(format!(
                "TagProvider {provider_name:?} has an invalid spec.allowedNamespaces: {error}"
            )));
        }
    };
    let namespace = binding.namespace().unwrap_or_default();
    let labels = ctx.namespace_labels(&namespace).await?;
    Ok((!selector.matches(&labels)).then(|| {
        format!("namespace {namespace:?} is not allowed by TagProvider {provider_name:?} (spec.allowedNamespaces: {selector})")
    }))
}

async fn apply(binding: &ResourceTagBinding, ctx: &Context) -> Result<Action, Error> {
    let key = binding_key(binding);
    let (readiness, next) = match gate(binding, ctx).await? {
        Gate::Open(client) => return converge(binding, &client, ctx).await,
        Gate::Closed(readiness) => (readiness, Action::await_change()),
        Gate::Forbidden(readiness) => (readiness, Action::requeue(jittered(interval(binding)))),
    };
    if previous_reason(binding) != Some(readiness.reason) {
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
    ctx.metrics.set_ready(&key, Some(false));
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
    if let Some(owned) = ctx.unrecorded(binding) {
        status.applied = AppliedRecord::from_ownership(&owned);
    }
    status
}

/// The pass proper, once the provider, the namespace, the spec and the credentials allow it.
async fn converge(
    binding: &ResourceTagBinding,
    client: &CloudClient,
    ctx: &Context,
) -> Result<Action, Error> {
    let key = binding_key(binding);
    if binding.spec.suspend {
        let readiness = Readiness {
            ready: false,
            reason: reason::SUSPENDED,
            message: "spec.suspend is true: no cloud writes until it is set back to false"
                .to_string(),
            stalled: false,
        };
        write_status(binding, status_without_pass(binding, &readiness, ctx), ctx).await?;
        ctx.metrics.set_ready(&key, Some(false));
        return Ok(Action::await_change());
    }
    let outcome = pass(
        binding,
        client,
        ctx,
        &binding.spec.tags,
        &binding.spec.resource_ids,
    )
    .await;
    ctx.metrics.drift_corrected(outcome.writes.drift_corrected);
    ctx.metrics.set_ready(&key, Some(outcome.is_ready()));
    write_status(
        binding,
        status::from_outcome(binding, &outcome, jiff::Timestamp::now()),
        ctx,
    )
    .await?;
    publish_events(binding, &outcome, ctx).await;
    if let Some(error) = outcome.error.as_ref().filter(|e| e.is_retryable()) {
        return Err(Error::Cloud(error.clone()));
    }
    ctx.reset_backoff(&key);
    if outcome.readiness.stalled {
        return Ok(Action::await_change());
    }
    Ok(Action::requeue(jittered(interval(binding))))
}

async fn cleanup(binding: &ResourceTagBinding, ctx: &Context) -> Result<Action, Error> {
    let key = binding_key(binding);
    ctx.metrics.set_ready(&key, None);
    if binding.spec.deletion_policy == DeletionPolicy::Orphan || ctx.owned(binding).is_empty() {
        ctx.ownership_recorded(binding);
        return Ok(Action::await_change());
    }
    let client = match gate(binding, ctx).await? {
        Gate::Open(client) => client,
        Gate::Closed(readiness) if readiness.reason == reason::PROVIDER_NOT_FOUND => {
            // NB: without its provider a binding can never prune; holding the finalizer would
            // block the deletion (and its namespace's) forever. Say so, and let go.
            publish(
                binding,
                EventType::Warning,
                "OrphanedTags",
                readiness.message.clone(),
                ctx,
            )
            .await;
            ctx.ownership_recorded(binding);
            return Ok(Action::await_change());
        }
        Gate::Closed(readiness) | Gate::Forbidden(readiness) => {
            return Err(Error::Cleanup(readiness.message));
        }
    };
    let outcome = pass(binding, &client, ctx, &Tags::new(), &[]).await;
    if outcome.ownership.is_empty() && outcome.failures.is_empty() && outcome.error.is_none() {
        ctx.ownership_recorded(binding);
        if outcome.writes.pruned > 0 {
            publish(
                binding,
                EventType::Normal,
                "Pruned",
                format!(
                    "removed {} tag(s) this binding applied",
                    outcome.writes.pruned
                ),
                ctx,
            )
            .await;
        }
        return Ok(Action::await_change());
    }
    write_status(
        binding,
        status::from_outcome(binding, &outcome, jiff::Timestamp::now()),
        ctx,
    )
    .await?;
    Err(Error::Cleanup(outcome.readiness.message))
}

async fn pass(
    binding: &ResourceTagBinding,
    client: &CloudClient,
    ctx: &Context,
    desired: &Tags,
    resource_ids: &[String],
) -> Outcome {
    let id = binding_id(binding);
    let owned = ctx.owned(binding);
    let others = rivals(binding, &id, &ctx.bindings, resource_ids, &owned);
    let claims: Vec<Claim<'_>> = others
        .iter()
        .map(|(other_id, ids, other)| Claim {
            binding: other_id,
            resource_ids: ids,
            tags: &other.spec.tags,
        })
        .collect();
    run_pass(
        client,
        &PassInput {
            binding: &id,
            desired,
            resource_type: &binding.spec.resource_type,
            resource_ids,
            owned: &owned,
            claims: &claims,
            mode: Mode::Apply,
        },
    )
    .await
}

/// The other bindings whose claims bear on this pass: same provider and resource type, not
/// being deleted, on at least one resource the pass considers (declared or owned; the plan
/// looks at no other).
///
/// NB: the filter runs under the cache's read lock and clones nothing but the few matches,
/// so that a pass costs O(bindings) comparisons, not O(bindings) copies of resource lists.
fn rivals(
    binding: &ResourceTagBinding,
    id: &BindingId,
    bindings: &Store<ResourceTagBinding>,
    resource_ids: &[String],
    owned: &Ownership,
) -> Vec<(BindingId, BTreeSet<String>, Arc<ResourceTagBinding>)> {
    let considered: HashSet<&str> = resource_ids
        .iter()
        .chain(owned.resources().keys())
        .map(String::as_str)
        .collect();
    if considered.is_empty() {
        return Vec::new();
    }
    bindings
        .state_filter(|other| {
            other.spec.provider_ref == binding.spec.provider_ref
                && other.spec.resource_type == binding.spec.resource_type
                && other.metadata.deletion_timestamp.is_none()
                && other
                    .spec
                    .resource_ids
                    .iter()
                    .any(|r| considered.contains(r.as_str()))
        })
        .into_iter()
        .map(|other| {
            (
                binding_id(&other),
                other.spec.resource_ids.iter().cloned().collect(),
                other,
            )
        })
        .filter(|(other_id, _, _)| other_id != id)
        .collect()
}

fn interval(binding: &ResourceTagBinding) -> Duration {
    // NB: the CRD pattern and the schema check in `gate` make the interval parse; the default
    // covers objects written before either existed.
    humantime::parse_duration(&binding.spec.interval).unwrap_or(Duration::from_secs(600))
}

/// Writes the status with server-side apply, only when it changed beyond timestamps. When the
/// write fails, the ownership record it carried is kept in memory for the next pass.
async fn write_status(
    binding: &ResourceTagBinding,
    status: ResourceTagBindingStatus,
    ctx: &Context,
) -> Result<(), Error> {
    if !status::differs(binding.status.as_ref(), &status) {
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
    let written = api
        .patch_status(
            &binding.name_any(),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await;
    match written {
        Ok(_) => {
            ctx.ownership_recorded(binding);
            Ok(())
        }
        Err(error) => {
            ctx.ownership_unrecorded(binding, status.applied.to_ownership());
            Err(Error::Kube(error))
        }
    }
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

async fn publish_events(binding: &ResourceTagBinding, outcome: &Outcome, ctx: &Context) {
    let previous_reason = previous_reason(binding);
    let writes = outcome.writes;
    if writes.drift_corrected > 0 {
        publish(
            binding,
            EventType::Normal,
            "DriftCorrected",
            format!(
                "rewrote {} tag(s) changed out of band",
                writes.drift_corrected
            ),
            ctx,
        )
        .await;
    }
    if writes.applied > writes.drift_corrected {
        publish(
            binding,
            EventType::Normal,
            "TagsApplied",
            format!("applied {} tag(s)", writes.applied - writes.drift_corrected),
            ctx,
        )
        .await;
    }
    if writes.pruned > 0 {
        publish(
            binding,
            EventType::Normal,
            "Pruned",
            format!("removed {} tag(s) no longer declared", writes.pruned),
            ctx,
        )
        .await;
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
        note: Some(note),
        action: "Reconcile".to_string(),
        secondary: None,
    };
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    if let Err(error) = recorder.publish(&event, &binding.object_ref(&())).await {
        tracing::warn!(%error, "cannot publish event");
    }
}
