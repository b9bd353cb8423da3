//! The passes of a run: the bindings of each provider and resource type together, through
//! [`pass_group`] (the entry point the controller uses too), and each outcome recorded in the
//! state file.

use std::collections::BTreeMap;

use crate::api::{AppliedRecord, BindingMode};
use crate::cli::journal::{self, JournalIntents};
use crate::cli::manifests::Manifests;
use crate::cli::progress::Progress;
use crate::cli::state::{BindingState, StateFile, state_key};
use crate::cloud::TagApi;
use crate::cloud::batcher::{Batcher, DEFAULT_WINDOW};
use crate::plan::Claims as PlanClaims;
use crate::reconcile::group::{Member, SharedClaims, considered, pass_group};
use crate::reconcile::intent_log::IntentLog;
use crate::reconcile::provider::ProviderClient;
use crate::reconcile::{Mode, Outcome};
use crate::tags::Ownership;
use tracing::Instrument;

use super::Command;
use super::declare::{Claims, Declared};

/// Runs every binding's pass: the bindings of each provider and resource type together, in
/// one round (one read of their resources, their writes shared by payload), the groups at once.
pub(super) async fn reconcile_groups(
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
            let span =
                tracing::debug_span!("group", provider, resource_type, bindings = positions.len());
            Some(
                async move {
                    let batcher = Batcher::new(client, DEFAULT_WINDOW);
                    let participant = batcher.participant(resource_type);
                    let group = (&participant, resource_type, &positions[..]);
                    let outcomes = reconcile_group(group, declared, claims, state, command).await;
                    progress.passed(positions.len());
                    positions.into_iter().zip(outcomes).collect::<Vec<_>>()
                }
                .instrument(span),
            )
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
pub(super) fn policy_refusal(binding: &Declared<'_>, state: &StateFile) -> Outcome {
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
pub(super) async fn reconcile_group<C: TagApi>(
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

pub(super) fn record(
    state: &mut StateFile,
    manifests: &Manifests,
    binding: &Declared<'_>,
    outcome: &Outcome,
) {
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
