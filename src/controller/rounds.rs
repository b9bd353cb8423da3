//! The fleet's rounds: every submitted binding of a group (provider and resource type) passes
//! at once, through a participant of its provider's [`Batcher`](crate::cloud::batcher::Batcher),
//! so that the round's reads are one read of every distinct resource in full pages and its
//! writes share calls by payload, exactly as in the CLI; then each binding's status is written
//! (only when it changed), its events published, and its retry scheduled.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::reflector::ObjectRef;
use tokio::time::Instant;
use tracing::Instrument;

use super::context::Context;
use super::fleet::{Fleet, Submission, Ticket};
use super::pass::{Prepared, SharedClaimants, claim_lists};
use crate::api::ResourceTagBinding;
use crate::reconcile::group::Member;
use crate::reconcile::identity::Target;
use crate::reconcile::select::{self, Resolution, Selector};
use crate::reconcile::{Mode, Outcome};

/// Most bindings of one provider and resource type passed together (see [`run_group`]).
const CHUNK: usize = 500;

/// Runs the rounds until [`Fleet::stop`] (or until the task is dropped, which stops the
/// rounds in flight too). Each group (provider and resource type) has at most one round in
/// flight, and groups do not wait for each other: a provider whose cloud hangs holds up its
/// own bindings only.
pub async fn run(ctx: Arc<Context>) {
    let mut rounds = tokio::task::JoinSet::new();
    loop {
        if ctx.fleet.stopping() {
            break;
        }
        match ctx.fleet.next(Instant::now()) {
            Ok(round) => {
                tracing::debug!(bindings = round.len(), "round");
                for (group, members) in by_group(round) {
                    let ctx = ctx.clone();
                    rounds.spawn(async move {
                        // NB: dropped when the round ends, panics or is aborted alike.
                        let _in_flight = InFlight {
                            fleet: ctx.fleet.clone(),
                            group: group.clone(),
                        };
                        run_group(&ctx, group.1, members).await;
                    });
                }
            }
            Err(until) => {
                tokio::select! {
                    _ = ctx.fleet.wake().notified() => {}
                    _ = tokio::time::sleep_until(until) => {}
                    Some(_) = rounds.join_next(), if !rounds.is_empty() => {}
                }
            }
        }
    }
    // NB: the rounds in flight finish (their writes recorded in status); the host bounds this.
    while rounds.join_next().await.is_some() {}
}

/// A group's round in flight: when it ends, the group's next round may start.
pub(super) struct InFlight {
    pub(super) fleet: Arc<Fleet>,
    pub(super) group: (String, String),
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.fleet.round_ended(&self.group);
    }
}

/// A round's submissions by group (provider and resource type).
pub(super) fn by_group(
    round: BTreeMap<String, Ticket>,
) -> BTreeMap<(String, String), Vec<(String, Ticket)>> {
    let mut groups: BTreeMap<(String, String), Vec<(String, Ticket)>> = BTreeMap::new();
    for (key, ticket) in round {
        groups
            .entry(ticket.group.clone())
            .or_default()
            .push((key, ticket));
    }
    groups
}

/// The bindings of one provider and resource type, [`CHUNK`] at a time: ordered by their
/// tags, so that bindings with the same payload share a chunk (and its write calls). A chunk
/// boundary costs at most one partial read and one partial write call; the working set
/// (decoded bindings, plans, outcomes) stays that of two chunks: a chunk's status writes and
/// events go on while the next chunk passes.
// NB: at 10,000 bindings on a real API server, the writes are the bound (issue 19): one
// chunk's after the other's cloud calls left the API server idle during those calls.
async fn run_group(ctx: &Arc<Context>, resource_type: String, mut members: Vec<(String, Ticket)>) {
    members.sort_by(|(a_key, a), (b_key, b)| (a.payload, a_key).cmp(&(b.payload, b_key)));
    let mut members = members.into_iter().peekable();
    let mut finishing: Option<futures::future::BoxFuture<'_, ()>> = None;
    while members.peek().is_some() {
        let chunk: Vec<(String, Submission)> = members
            .by_ref()
            .take(CHUNK)
            .filter_map(|(key, ticket)| {
                let submission = ticket.redeem(&key, &ctx.bindings)?;
                Some((key, submission))
            })
            .collect();
        let provider = chunk
            .first()
            .map(|(_, s)| s.binding.spec.provider_ref.name.clone());
        let bindings = chunk.len();
        let span = tracing::debug_span!(
            "group",
            provider = provider.as_deref().unwrap_or_default(),
            resource_type = %resource_type,
            bindings,
        );
        let pass = async {
            let started = Instant::now();
            let passed = pass_chunk(ctx, &resource_type, chunk)
                .instrument(span)
                .await;
            (passed, started.elapsed().as_secs_f64())
        };
        let (passed, seconds) = match finishing.take() {
            Some(previous) => futures::future::join(previous, pass).await.1,
            None => pass.await,
        };
        if let Some(provider) = provider {
            ctx.metrics.round(&provider, bindings, seconds);
        }
        finishing = Some(Box::pin(finish_chunk(ctx, passed, seconds)));
    }
    if let Some(previous) = finishing {
        previous.await;
    }
    ctx.policy_status.changed();
}

/// After a chunk's passes: each binding's status, events and what the fleet does next.
async fn finish_chunk(
    ctx: &Context,
    passed: Vec<(String, Arc<ResourceTagBinding>, crate::tags::Tags, Outcome)>,
    seconds: f64,
) {
    futures::stream::iter(passed)
        .map(|(key, binding, desired, outcome)| async move {
            let next = super::finish::finish(&binding, &outcome, &desired, seconds, ctx).await;
            match next {
                super::finish::Next::Sweep => ctx.fleet.register(key, &binding),
                super::finish::Next::Retry => {
                    ctx.fleet.register(key.clone(), &binding);
                    let delay = ctx.backoff(&key);
                    tracing::warn!(binding = %key, retry_in = ?delay, "pass failed");
                    ctx.fleet.request_after(key, delay);
                }
                super::finish::Next::AwaitChange => ctx.fleet.unregister(&key),
            }
        })
        .buffer_unordered(super::status::WRITES_IN_FLIGHT)
        .collect::<()>()
        .await;
}

/// The passes of one provider's bindings of one resource type, together. Selector bindings
/// are resolved first (one list-by-tag read per distinct `matchTags`), and their selections
/// enter the claim index before any binding's claims are looked up.
async fn pass_chunk(
    ctx: &Context,
    resource_type: &str,
    members: Vec<(String, Submission)>,
) -> Vec<(String, Arc<ResourceTagBinding>, crate::tags::Tags, Outcome)> {
    // NB: the newest submission carries the newest client (a Secret may have changed).
    let Some(client) = members.last().map(|(_, s)| s.client.clone()) else {
        return Vec::new();
    };
    // NB: the round's only participant: its calls go at once, not after a window.
    let participant = client.participant(resource_type);
    let mut resolutions = resolve_selectors(ctx, &participant, resource_type, &members).await;
    refuse_feeding_cycles(ctx, resource_type, &members, &mut resolutions);
    // NB: one resource is one id whichever form names it (an AWS bare id and its ARN); an
    // AWS provider without aws.accountId has its account named by STS, once per client.
    let account = client.inner().aws_account().await;
    let resource_ids: Vec<std::borrow::Cow<'_, [String]>> = members
        .iter()
        .zip(&resolutions)
        .map(|((_, s), resolution)| match resolution {
            Some(resolution) => std::borrow::Cow::Borrowed(resolution.ids().unwrap_or_default()),
            None => match ctx
                .providers
                .get(&ObjectRef::new(&s.binding.spec.provider_ref.name))
            {
                Some(provider) => crate::reconcile::identity::canonical_ids(
                    &provider.spec,
                    account.as_deref(),
                    resource_type,
                    &s.binding.spec.resource_ids,
                ),
                None => std::borrow::Cow::Borrowed(&s.binding.spec.resource_ids[..]),
            },
        })
        .collect();
    let mut shared = SharedClaimants::default();
    let prepared: Vec<Prepared> = members
        .iter()
        .zip(&resource_ids)
        .map(|((_, s), ids)| Prepared::of(&s.binding, ctx, ids, &mut shared))
        .collect();
    let claimants = shared.into_lists();
    let lists = claim_lists(&claimants);
    let group: Vec<Member<'_>> = members
        .iter()
        .zip(&prepared)
        .zip(&resource_ids)
        .zip(&resolutions)
        .map(|((((_, s), prepared), ids), resolution)| {
            let spec = &s.binding.spec;
            Member {
                binding: &prepared.id,
                desired: &s.desired,
                resource_ids: ids,
                resolution: resolution.as_ref(),
                match_tags: spec.resource_selector.as_ref().map(|s| &s.match_tags),
                deletion_policy: spec.deletion_policy,
                owned: &prepared.owned,
                claims: &lists[prepared.claims],
                mode: Mode::of(spec.mode),
            }
        })
        .collect();
    // NB: intents (issue 14) go to each binding's status before the round's writes.
    let intents = super::intent_log::StatusIntents::new(
        ctx,
        members.iter().map(|(_, s)| s.binding.as_ref()).collect(),
        prepared.iter().map(|p| &p.pending).collect(),
    );
    let outcomes =
        crate::reconcile::group::pass_group(&participant, resource_type, &group, &intents).await;
    drop(intents);
    drop(group);
    drop(participant);
    members
        .into_iter()
        .zip(outcomes)
        .map(|((key, submission), mut outcome)| {
            // NB: the tag policies count the resources on what the pass read (issue 24).
            super::policy_status::observed(ctx, &key, &submission.binding, &outcome);
            // NB: the controller reports neither the plan nor the observation.
            outcome.plan = None;
            outcome.observed = None;
            (key, submission.binding, submission.desired, outcome)
        })
        .collect()
}

/// Refuses, as an invalid spec, the selector bindings among `members` whose selections feed
/// another selector binding's in a cycle (issue 20, item 5), naming the cycle.
fn refuse_feeding_cycles(
    ctx: &Context,
    resource_type: &str,
    members: &[(String, Submission)],
    resolutions: &mut [Option<Resolution>],
) {
    let target_of = |provider: &str, resource_type: &str| {
        let spec = ctx.providers.get(&ObjectRef::new(provider))?;
        Some(Target::of(&spec.spec, resource_type))
    };
    let Some(target) = members
        .first()
        .and_then(|(_, s)| target_of(&s.binding.spec.provider_ref.name, resource_type))
    else {
        return;
    };
    // NB: the keys each declares as its claims render them (an absent source: no key).
    let cycles = ctx
        .fleet
        .feeding_cycles(&target, target_of, |b| ctx.claimed_tags(b));
    if cycles.is_empty() {
        return;
    }
    for ((key, _), resolution) in members.iter().zip(resolutions.iter_mut()) {
        if let Some(cycle) = cycles.get(key) {
            *resolution = Some(Resolution::Invalid(format!(
                "spec.resourceSelector.matchTags: {}",
                select::cycle_rule(cycle)
            )));
        }
    }
}

/// Resolves the selector bindings among `members` (`None` for an id-list binding), and
/// records each selection in the claim index. A binding whose resolution failed or matched
/// too many keeps the claims of its last selection.
async fn resolve_selectors<C: crate::cloud::TagApi>(
    ctx: &Context,
    cloud: &C,
    resource_type: &str,
    members: &[(String, Submission)],
) -> Vec<Option<Resolution>> {
    let selectors: Vec<Selector<'_>> = members
        .iter()
        .filter_map(|(_, s)| {
            let selector = s.binding.spec.resource_selector.as_ref()?;
            Some(Selector {
                match_tags: &selector.match_tags,
                cap: s.binding.spec.max_resources(),
            })
        })
        .collect();
    if selectors.is_empty() {
        return members.iter().map(|_| None).collect();
    }
    let mut resolved = select::resolve_all(cloud, resource_type, &selectors)
        .await
        .into_iter();
    members
        .iter()
        .map(|(key, s)| {
            s.binding.spec.resource_selector.as_ref()?;
            let resolution = resolved.next()?;
            if let Some(ids) = resolution.ids() {
                ctx.fleet.claims_mut().declare(
                    key.clone(),
                    &s.binding.spec.provider_ref.name,
                    &s.binding.spec.resource_type,
                    ids.iter().map(String::as_str),
                );
            }
            Some(resolution)
        })
        .collect()
}
