//! Bindings that left the files: what `apply --prune-removed` does with their tags (by
//! [`checks::deletion`]), and what `plan --prune-removed` says it would do.

use std::collections::BTreeMap;

use crate::api::AppliedRecord;
use crate::cli::journal::{self, JournalHandle, JournalIntents};
use crate::cli::output::{self, RemovedReport};
use crate::cli::state::{BindingState, StateFile, state_key};
use crate::plan::{BindingId, Claims as PlanClaims};
use crate::reconcile::Mode;
use crate::reconcile::checks::{self, Deletion};
use crate::reconcile::group::pass_leaving;
use crate::reconcile::provider::ProviderClient;
use crate::tags::Ownership;

use super::Command;

/// What `apply --prune-removed` says of a removed binding that removed nothing.
pub(super) const RELEASED: &str = "nothing removed: its tags were changed or removed since it applied \
                        them, or another binding declares them; record dropped";
/// What `plan --prune-removed` says of a removed binding that would remove nothing.
pub(super) const WOULD_RELEASE: &str = "apply --prune-removed would remove nothing (its tags were changed \
                             or removed since it applied them, or another binding declares \
                             them) and drop its record";

/// What removing `gone` from the files does with its tags ([`checks::deletion`]): a binding
/// that is gone from the files has no `suspend` to honour.
pub(super) fn deletion_of(gone: &BindingState) -> Deletion {
    let owns_nothing = gone.applied.is_empty() && gone.pending.is_empty();
    checks::deletion(gone.mode, gone.deletion_policy, false, owns_nothing)
}

/// A removed binding's identity (its age decides nothing: it declares nothing) and the
/// ownership record it leaves.
fn identity_and_record(gone: &BindingState) -> (BindingId, Ownership) {
    let id = BindingId {
        created: None,
        namespace: gone.namespace.clone(),
        name: gone.name.clone(),
    };
    (id, gone.applied.to_ownership())
}

pub(super) async fn handle_removed(
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
    let (id, owned) = identity_and_record(&gone);
    // NB: its unconfirmed intent is claimed (where the cloud carries it) and pruned with the
    // rest of what it owns.
    let mut intents = JournalIntents::new(&state.journal, &gone.resource_type);
    intents.push(key.clone(), &gone.provider, &gone.pending);
    let binding = (&id, gone.deletion_policy);
    let outcome = pass_leaving(
        client,
        &gone.resource_type,
        binding,
        &owned,
        claims,
        Mode::Apply,
        &intents,
    )
    .await;
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
pub(super) async fn preview_removed(
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
    let (id, owned) = identity_and_record(&gone);
    // NB: a plan records nothing: the intents of a plan are never kept.
    let intents = JournalIntents::new(&JournalHandle(None), &gone.resource_type);
    let binding = (&id, gone.deletion_policy);
    let outcome = pass_leaving(
        client,
        &gone.resource_type,
        binding,
        &owned,
        claims,
        Mode::PlanOnly,
        &intents,
    )
    .await;
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
