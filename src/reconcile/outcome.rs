//! The result of a pass, in the words of `status` (DESIGN.md section 4).

use std::collections::{BTreeMap, BTreeSet};

use super::changes::{KeyChange, changes_of};
use super::execute::Executed;
use super::{Mode, PassError, PassInput};
use crate::api::conditions::reason;
use crate::api::{ConflictEntry, ResourceCounts, ResourceFailure, SelectedResources};
use crate::cloud::ErrorKind;
use crate::plan::{Drift, KeyDecision, Plan, drift};
use crate::tags::{Ownership, TagsByResource};

/// The Ready condition a pass arrives at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readiness {
    /// Ready=True.
    pub ready: bool,
    /// The reason (one of [`crate::api::conditions::reason`]).
    pub reason: &'static str,
    /// For people: what is wrong and what to do.
    pub message: String,
    /// Only a spec or provider change can help (kstatus `Stalled`).
    pub stalled: bool,
}

/// Counts of the writes a pass made.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteCounts {
    /// Cloud write calls made.
    pub calls: usize,
    /// Keys written (resource x key), confirmed by the cloud.
    pub applied: usize,
    /// Of those, keys this binding had applied before and that drifted.
    pub drift_corrected: usize,
    /// Keys pruned (resource x key), confirmed by the cloud.
    pub pruned: usize,
}

/// Everything a host needs to report one pass.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The plan, when the pass got that far.
    pub plan: Option<Plan>,
    /// The tags observed before any write, when the pass got that far.
    pub observed: Option<TagsByResource>,
    /// The ownership record after the pass (unchanged when nothing was confirmed).
    pub ownership: Ownership,
    /// Resource counts.
    pub counts: ResourceCounts,
    /// Every failed resource, sorted by id (status keeps the first ten).
    pub failures: Vec<ResourceFailure>,
    /// Every conflicting key, sorted (status keeps the first ten).
    pub conflicts: Vec<ConflictEntry>,
    /// The Ready condition.
    pub readiness: Readiness,
    /// Writes made.
    pub writes: WriteCounts,
    /// The error that ended the pass early, if any (never carries a secret).
    pub error: Option<PassError>,
    /// An Observe pass that got as far as a plan: what writing would change.
    pub drift: Option<Drift>,
    /// A selector binding: what its resolution selected (set by the host, which resolves).
    pub selected: Option<SelectedResources>,
    /// Tags this pass (or, when it did not observe the cloud, a previous one) set out to write
    /// whose outcome is unknown: the intent still to claim (see [`super::intent`]). Set by
    /// passes that keep intents ([`super::round::run_round`]); empty otherwise.
    pub pending: TagsByResource,
    /// What the cloud confirmed this pass changed, by key (for logs and events).
    pub changes: Vec<KeyChange>,
}

impl Outcome {
    /// Whether the pass should run again after a backoff rather than at the next sweep: it
    /// stopped on a retryable error, or resources failed for a retryable reason (a call that
    /// outlived its retries fails only its resources).
    pub fn retry_soon(&self) -> bool {
        self.error.as_ref().is_some_and(PassError::is_retryable)
            || self
                .failures
                .iter()
                .any(|failure| failure.reason == ErrorKind::Retryable.as_str())
    }

    /// The tags of the pass's resources after it: what it observed, with the writes it made
    /// on the resources that did not fail (`None`: it observed nothing). What tag policies
    /// count, with no call of their own.
    pub fn tags_after(&self) -> Option<TagsByResource> {
        let mut tags = self.observed.clone()?;
        let Some(plan) = self.plan.as_ref().filter(|_| self.writes.calls > 0) else {
            return Some(tags);
        };
        let failed: BTreeSet<&str> = self
            .failures
            .iter()
            .map(|failure| failure.resource_id.as_str())
            .collect();
        for batch in &plan.tag_batches {
            for id in batch
                .resource_ids
                .iter()
                .filter(|id| !failed.contains(id.as_str()))
            {
                let carried = tags.entry(id.clone()).or_default();
                carried.extend(batch.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
        }
        for batch in &plan.untag_batches {
            for id in batch
                .resource_ids
                .iter()
                .filter(|id| !failed.contains(id.as_str()))
            {
                if let Some(carried) = tags.get_mut(id) {
                    carried.retain(|key, _| !batch.tags.contains_key(key));
                }
            }
        }
        Some(tags)
    }

    /// Whether the pass changed something in the cloud (it made progress, even if some of it
    /// failed).
    pub fn made_progress(&self) -> bool {
        self.writes.applied + self.writes.pruned > 0
    }

    pub(super) fn base(input: &PassInput<'_>, readiness: Readiness) -> Self {
        Outcome {
            plan: None,
            observed: None,
            ownership: input.owned.clone(),
            counts: ResourceCounts {
                total: count(input.resource_ids.len()),
                ..ResourceCounts::default()
            },
            failures: Vec::new(),
            conflicts: Vec::new(),
            readiness,
            writes: WriteCounts::default(),
            error: None,
            drift: None,
            selected: None,
            pending: TagsByResource::new(),
            changes: Vec::new(),
        }
    }

    /// A binding stopped before its pass (a `Deny` TagPolicy): nothing read or written, its
    /// ownership record unchanged.
    pub fn stopped(owned: Ownership, resources: usize, readiness: Readiness) -> Self {
        Outcome {
            plan: None,
            observed: None,
            ownership: owned,
            counts: ResourceCounts {
                total: count(resources),
                ..ResourceCounts::default()
            },
            failures: Vec::new(),
            conflicts: Vec::new(),
            readiness,
            writes: WriteCounts::default(),
            error: None,
            drift: None,
            selected: None,
            pending: TagsByResource::new(),
            changes: Vec::new(),
        }
    }

    pub(super) fn invalid_spec(input: &PassInput<'_>, message: String) -> Self {
        Outcome::base(
            input,
            Readiness {
                ready: false,
                reason: reason::INVALID_SPEC,
                message,
                stalled: true,
            },
        )
    }

    pub(super) fn observe_failed(input: &PassInput<'_>, error: PassError) -> Self {
        let mut outcome = Outcome::base(input, readiness_of_error(&error));
        outcome.error = Some(error);
        outcome
    }

    pub(super) fn planned(input: &PassInput<'_>, plan: Plan, observed: TagsByResource) -> Self {
        debug_assert_ne!(input.mode, Mode::Apply);
        Outcome::assemble(input, plan, observed, Executed::default())
    }

    pub(super) fn executed(
        input: &PassInput<'_>,
        plan: Plan,
        observed: TagsByResource,
        executed: Executed,
    ) -> Self {
        Outcome::assemble(input, plan, observed, executed)
    }

    fn assemble(
        input: &PassInput<'_>,
        plan: Plan,
        observed: TagsByResource,
        mut executed: Executed,
    ) -> Self {
        let applying = input.mode == Mode::Apply;
        if let Some(error) = executed.stopped_by.clone() {
            fail_unconfirmed(&plan, &mut executed, &error);
        }
        let failures = failures_of(&plan, &executed);
        let failed: BTreeSet<&str> = failures.iter().map(|f| f.resource_id.as_str()).collect();
        let synced = input
            .resource_ids
            .iter()
            .filter(|id| !failed.contains(id.as_str()))
            .filter(|id| pending_keys(&plan, id, &executed, applying) == 0)
            .count();
        let conflicts = conflicts_of(&plan);
        let writes = write_counts(input, &plan, &executed);
        let changes = if applying {
            changes_of(&plan, input.owned, &executed.confirmed)
        } else {
            Vec::new()
        };
        let ownership = if applying {
            plan.next_ownership(input.owned, &executed.confirmed)
        } else {
            input.owned.clone()
        };
        let drift = (input.mode == Mode::Observe)
            .then(|| drift(&plan, input.desired, &observed, input.resource_ids.len()));
        let readiness = match &drift {
            // NB: an audit is healthy when it could look: drift is its finding, not a failure
            // (GitOps health must not block on it). Drifted says what it found.
            Some(drift) => Readiness {
                ready: true,
                reason: reason::OBSERVED,
                message: format!("observe only: {}", drift.message),
                stalled: false,
            },
            None => readiness_of(input, &plan, &executed, &failures, &conflicts, synced),
        };
        Outcome {
            counts: ResourceCounts {
                total: count(input.resource_ids.len()),
                synced: count(synced),
                failed: count(failed.len()),
            },
            plan: Some(plan),
            observed: Some(observed),
            ownership,
            failures,
            conflicts,
            readiness,
            writes,
            error: executed.stopped_by,
            drift,
            selected: None,
            pending: TagsByResource::new(),
            changes,
        }
    }

    /// True when the pass left every resource as declared (Ready=True).
    pub fn is_ready(&self) -> bool {
        self.readiness.ready
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Keys of a resource still waiting for a write after the pass.
fn pending_keys(plan: &Plan, id: &str, executed: &Executed, applied: bool) -> usize {
    let Some(decisions) = plan.decisions.get(id) else {
        return 0;
    };
    decisions
        .iter()
        .filter(|(key, decision)| {
            matches!(decision, KeyDecision::Apply { .. })
                && !(applied
                    && executed
                        .confirmed
                        .written
                        .contains(&(id.to_string(), key.to_string())))
        })
        .count()
}

/// When a pass stops early, every resource with an unconfirmed write failed with that error.
fn fail_unconfirmed(plan: &Plan, executed: &mut Executed, error: &PassError) {
    let writes = plan
        .tag_batches
        .iter()
        .map(|b| (&b.resource_ids, &b.tags, &executed.confirmed.written))
        .chain(
            plan.untag_batches
                .iter()
                .map(|b| (&b.resource_ids, &b.tags, &executed.confirmed.pruned)),
        );
    let mut unconfirmed = BTreeSet::new();
    for (ids, tags, confirmed) in writes {
        for id in ids {
            if tags
                .keys()
                .any(|key| !confirmed.contains(&(id.clone(), key.clone())))
            {
                unconfirmed.insert(id.clone());
            }
        }
    }
    for id in unconfirmed {
        executed
            .failures
            .entry(id)
            .or_insert_with(|| crate::cloud::ResourceError {
                kind: error.kind(),
                message: error.to_string(),
            });
    }
}

fn failures_of(plan: &Plan, executed: &Executed) -> Vec<ResourceFailure> {
    let mut failures: BTreeMap<&str, ResourceFailure> = BTreeMap::new();
    for (id, message) in &plan.blocked {
        failures.insert(
            id,
            ResourceFailure {
                resource_id: id.clone(),
                reason: ErrorKind::QuotaExceeded.as_str().to_string(),
                message: message.clone(),
            },
        );
    }
    for (id, error) in &executed.failures {
        failures.entry(id).or_insert_with(|| ResourceFailure {
            resource_id: id.clone(),
            reason: error.kind.as_str().to_string(),
            message: error.message.clone(),
        });
    }
    failures.into_values().collect()
}

fn conflicts_of(plan: &Plan) -> Vec<ConflictEntry> {
    plan.decisions
        .iter()
        .flat_map(|(id, keys)| {
            keys.iter()
                .filter_map(move |(key, decision)| match decision {
                    KeyDecision::Conflict { winner, .. } => Some(ConflictEntry {
                        resource_id: id.clone(),
                        key: key.clone(),
                        winner: winner.clone(),
                    }),
                    _ => None,
                })
        })
        .collect()
}

fn write_counts(input: &PassInput<'_>, plan: &Plan, executed: &Executed) -> WriteCounts {
    let mut counts = WriteCounts {
        calls: executed.calls,
        pruned: executed.confirmed.pruned.len(),
        ..WriteCounts::default()
    };
    for (id, key) in &executed.confirmed.written {
        let decision = plan.decisions.get(id).and_then(|keys| keys.get(key));
        if let Some(KeyDecision::Apply { to, .. }) = decision {
            counts.applied += 1;
            if input.owned.on(id).and_then(|owned| owned.get(key)) == Some(to) {
                counts.drift_corrected += 1;
            }
        }
    }
    counts
}

fn readiness_of_error(error: &PassError) -> Readiness {
    match error.kind() {
        ErrorKind::Credentials => Readiness {
            ready: false,
            reason: reason::CREDENTIALS_INVALID,
            message: format!("the cloud rejected the provider's credentials: {error}"),
            stalled: true,
        },
        _ => Readiness {
            ready: false,
            reason: reason::PROVIDER_ERROR,
            message: error.to_string(),
            stalled: false,
        },
    }
}

fn readiness_of(
    input: &PassInput<'_>,
    plan: &Plan,
    executed: &Executed,
    failures: &[ResourceFailure],
    conflicts: &[ConflictEntry],
    synced: usize,
) -> Readiness {
    if let Some(error) = &executed.stopped_by {
        return readiness_of_error(error);
    }
    let total = input.resource_ids.len();
    if !failures.is_empty() {
        let listed: Vec<String> = failures
            .iter()
            .take(3)
            .map(|f| format!("{}: {}: {}", f.resource_id, f.reason, f.message))
            .collect();
        let more = failures.len().saturating_sub(3);
        let more = if more > 0 {
            format!("; and {more} more")
        } else {
            String::new()
        };
        return Readiness {
            ready: false,
            reason: reason::PARTIAL_FAILURE,
            message: format!(
                "{} of {total} resources failed: {}{more}",
                failures.len(),
                listed.join("; ")
            ),
            stalled: false,
        };
    }
    if synced < total {
        return Readiness {
            ready: false,
            reason: reason::PROGRESSING,
            message: format!("{} of {total} resources need tag changes", total - synced),
            stalled: false,
        };
    }
    if let Some(first) = conflicts.first() {
        return Readiness {
            ready: false,
            reason: reason::CONFLICT,
            message: conflict_message(conflicts, first),
            stalled: false,
        };
    }
    let pending_prunes = input.mode == Mode::PlanOnly && !plan.untag_batches.is_empty();
    Readiness {
        ready: true,
        reason: reason::SYNCED,
        message: if pending_prunes {
            format!("all {total} resources carry the declared tags; owned tags are pending removal")
        } else {
            format!("all {total} resources carry the declared tags")
        },
        stalled: false,
    }
}

fn conflict_message(conflicts: &[ConflictEntry], first: &ConflictEntry) -> String {
    let keys: BTreeSet<&str> = conflicts.iter().map(|c| c.key.as_str()).collect();
    let resources: BTreeSet<&str> = conflicts.iter().map(|c| c.resource_id.as_str()).collect();
    format!(
        "{} key(s) ({}) on {} resource(s) are declared with another value by an older binding; \
         {} wins (first: key {:?} on {})",
        keys.len(),
        keys.into_iter().collect::<Vec<_>>().join(", "),
        resources.len(),
        first.winner,
        first.key,
        first.resource_id
    )
}
