//! What the report says of each binding: its changes (with the source of a rendered value),
//! its readiness, and notes a user needs (an untagged listing, a tie decided by order).

use crate::api::BindingMode;
use crate::cli::output::{self, BindingReport};
use crate::reconcile::Outcome;
use crate::reconcile::checks::{self};
use crate::render::{self};

use super::declare::Declared;

/// A binding none of whose listed resources carries any tag: a wrong region or resource id
/// reads the same (the clouds answer a read of a resource they do not have with no tags), so
/// the plan says so before `apply` finds out with NotFound.
pub(super) fn note_untagged(entry: &mut BindingReport, binding: &Declared<'_>, outcome: &Outcome) {
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
pub(super) fn explain_tie(
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

pub(super) fn binding_report(
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
