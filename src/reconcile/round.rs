//! Many bindings of one target (provider and resource type), one pass together: one read of
//! every distinct resource they consider, each binding planned from that one observation, and
//! every binding's writes handed to the client at once, so that identical payloads share
//! calls (the client coalesces them, see [`crate::cloud::batcher`]).
//!
//! The same decisions as [`run_pass`](super::run_pass) for each binding, without a future per
//! binding: at 10,000 bindings, 10,000 passes in flight at once took about 150 MiB of future
//! state, a round a few MiB of plans.

use std::collections::BTreeSet;

use super::execute::{Executed, writes_of};
use super::intent_log::{Intent, IntentError, IntentLog};
use super::{Mode, Outcome, PassError, PassInput, check_spec, select};
use crate::calls;
use crate::cloud::{CallError, TagApi, Write, stops_every_call};
use crate::plan::{self, PlanInput};
use crate::tags::{Ownership, TagsByResource};

/// Runs the passes of `inputs` (all of `resource_type`) together; one outcome per input, in
/// order.
///
/// The crash window (issue 14): once the round has observed the cloud, each input's
/// unresolved intent (from `intents`) is claimed where the cloud carries the intended value,
/// before planning; every new intent is handed to `intents` before any write is sent, and an
/// input whose intent could not be recorded sends nothing.
#[tracing::instrument(level = "debug", name = "round", skip_all, fields(resource_type = %resource_type, inputs = inputs.len()))]
pub async fn run_round<C: TagApi, L: IntentLog>(
    cloud: &C,
    resource_type: &str,
    inputs: &[PassInput<'_>],
    intents: &L,
) -> Vec<Outcome> {
    let mut slots: Vec<Slot> = inputs
        .iter()
        .map(|input| match check_spec(cloud, input) {
            Some(outcome) => Slot::Done(Box::new(outcome)),
            None => Slot::Pending,
        })
        .collect();
    let observed = observe_all(cloud, resource_type, inputs, &slots, intents).await;
    let claimed: Vec<Option<Ownership>> = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let pending = intents.pending(index);
            if pending.is_empty() || !matches!(slots[index], Slot::Pending) {
                return None;
            }
            let observed = observed.of(index).ok()?;
            Some(plan::intent::claim(input.owned, pending, observed))
        })
        .collect();
    // NB: from here on, each input starts from its record with its previous intent claimed.
    let inputs: Vec<PassInput<'_>> = inputs
        .iter()
        .zip(&claimed)
        .map(|(input, claimed)| PassInput {
            owned: claimed.as_ref().unwrap_or(input.owned),
            ..input.clone()
        })
        .collect();
    // NB: a selector input goes on with what the reads by id show selected (issue 20, item 4).
    let settled: Vec<Option<(Vec<String>, Ownership)>> = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let selection = input.selection?;
            if !matches!(slots[index], Slot::Pending) {
                return None;
            }
            let observed = observed.of(index).ok()?;
            match select::settle(selection, input.resource_ids, input.owned, observed) {
                select::Settled::Pass {
                    resource_ids,
                    owned,
                } => Some((resource_ids, owned)),
                select::Settled::Disagrees { dropped, held } => {
                    let error = PassError::SelectionDisagrees { dropped, held };
                    slots[index] = Slot::Done(Box::new(Outcome::observe_failed(input, error)));
                    None
                }
            }
        })
        .collect();
    let inputs: Vec<PassInput<'_>> = inputs
        .iter()
        .zip(&settled)
        .map(|(input, settled)| match settled {
            Some((resource_ids, owned)) => PassInput {
                resource_ids,
                owned,
                ..input.clone()
            },
            None => input.clone(),
        })
        .collect();
    for (index, input) in inputs.iter().enumerate() {
        if !matches!(slots[index], Slot::Pending) {
            continue;
        }
        let _pass = pass_span(input).entered();
        let observed = match observed.of(index) {
            Ok(observed) => observed,
            Err(error) => {
                tracing::debug!(%error, "not observed");
                slots[index] = Slot::Done(Box::new(Outcome::observe_failed(
                    input,
                    error.clone().into(),
                )));
                continue;
            }
        };
        let planned = plan::plan(&PlanInput {
            binding: input.binding,
            desired: input.desired,
            resource_ids: input.resource_ids,
            owned: input.owned,
            observed,
            claims: input.claims,
            limits: cloud.limits(),
        });
        tracing::debug!(
            tag_calls = planned.tag_batches.len(),
            untag_calls = planned.untag_batches.len(),
            blocked = planned.blocked.len(),
            "planned"
        );
        slots[index] = Slot::Planned(planned);
    }
    let recorded = record_intents(&inputs, &slots, intents).await;
    let mut executed = execute_all(cloud, resource_type, &inputs, &slots, &recorded).await;
    let mut outcomes: Vec<Outcome> = inputs
        .iter()
        .zip(slots)
        .zip(recorded)
        .enumerate()
        .map(|(index, ((input, slot), recorded))| {
            let _pass = pass_span(input).entered();
            let plan = match slot {
                Slot::Done(mut outcome) => {
                    // NB: decided before the observation: the previous intent is unresolved.
                    outcome.pending = intents.pending(index).clone();
                    return *outcome;
                }
                Slot::Planned(plan) => plan,
                // NB: every slot is decided or planned above; a pending one has no answer.
                Slot::Pending => return Outcome::observe_failed(input, PassError::NotObserved),
            };
            let observed = observed.subset(index, input, intents.pending(index));
            match input.mode {
                Mode::PlanOnly | Mode::Observe => Outcome::planned(input, plan, observed),
                Mode::Apply => {
                    let done = executed[index].take().unwrap_or_default();
                    // NB: what the cloud did not confirm may have landed all the same (an
                    // answer lost after the retries): it stays pending for the next pass.
                    let pending = match recorded {
                        Recorded::Yes(intent) => {
                            plan::intent::unconfirmed(&intent, &done.confirmed.written)
                        }
                        Recorded::Nothing | Recorded::Failed(_) => TagsByResource::new(),
                    };
                    let mut outcome = Outcome::executed(input, plan, observed, done);
                    outcome.pending = pending;
                    outcome
                }
            }
        })
        .collect();
    for (outcome, settled) in outcomes.iter_mut().zip(&settled) {
        if let Some((resource_ids, _)) = settled {
            outcome.selected = Some(select::status_of(resource_ids));
        }
    }
    outcomes
}

/// The span of one binding's pass within the round: its plan and its outcome.
fn pass_span(input: &PassInput<'_>) -> tracing::Span {
    tracing::debug_span!(
        "pass",
        binding = %input.binding,
        resources = input.resource_ids.len(),
        mode = ?input.mode,
    )
}

/// Whether an input's intent was recorded before its writes.
enum Recorded {
    /// It has no intent (no write, or only writes of what it owns already).
    Nothing,
    /// Recorded: its writes go.
    Yes(TagsByResource),
    /// Not recorded: its writes do not go.
    Failed(PassError),
}

/// Hands every planned input's intent to the host at once, before any write is sent.
async fn record_intents<L: IntentLog>(
    inputs: &[PassInput<'_>],
    slots: &[Slot],
    intents: &L,
) -> Vec<Recorded> {
    let intended: Vec<(usize, TagsByResource)> = inputs
        .iter()
        .zip(slots)
        .enumerate()
        .filter_map(|(index, (input, slot))| {
            let Slot::Planned(plan) = slot else {
                return None;
            };
            if input.mode != Mode::Apply {
                return None;
            }
            let intent = plan::intent::intent(plan, input.owned);
            (!intent.is_empty()).then_some((index, intent))
        })
        .collect();
    let mut recorded: Vec<Recorded> = inputs.iter().map(|_| Recorded::Nothing).collect();
    if intended.is_empty() {
        return recorded;
    }
    let records: Vec<Intent<'_>> = intended
        .iter()
        .map(|(index, pending)| Intent {
            index: *index,
            owned: inputs[*index].owned,
            pending,
        })
        .collect();
    let answers = intents.record(&records).await;
    drop(records);
    // NB: an intent the host did not answer for counts as not recorded.
    let answers = answers.into_iter().map(Some).chain(std::iter::repeat(None));
    for ((index, intent), answer) in intended.into_iter().zip(answers) {
        recorded[index] = match answer {
            Some(Ok(())) => Recorded::Yes(intent),
            Some(Err(message)) => Recorded::Failed(PassError::IntentNotRecorded(message)),
            None => Recorded::Failed(PassError::IntentNotRecorded(IntentError::NoAnswer)),
        };
    }
    recorded
}

/// Where one input of a round is.
enum Slot {
    /// Not decided yet.
    Pending,
    /// Planned, to execute.
    Planned(plan::Plan),
    /// Decided before the writes (invalid spec, failed read).
    Done(Box<Outcome>),
}

/// What a round read: one read of every resource of the round, `resources_per_call` at a time
/// (one call each), and for each input, whether that read covers it.
struct Observed {
    /// The tags of every resource whose call answered.
    shared: TagsByResource,
    /// Per input: `Ok(None)` when `shared` holds its resources, `Ok(Some(..))` when it read
    /// its own, `Err` when a call of one of its resources failed.
    each: Vec<Result<Option<TagsByResource>, CallError>>,
}

impl Observed {
    /// What input `index` observed, or why it could not.
    fn of(&self, index: usize) -> Result<&TagsByResource, &CallError> {
        match &self.each[index] {
            Ok(None) => Ok(&self.shared),
            Ok(Some(own)) => Ok(own),
            Err(error) => Err(error),
        }
    }

    /// The tags of the resources input `index` considers, as far as they were read.
    fn subset(
        &self,
        index: usize,
        input: &PassInput<'_>,
        pending: &TagsByResource,
    ) -> TagsByResource {
        match &self.each[index] {
            Ok(None) => subset(&self.shared, input, pending),
            Ok(Some(own)) => own.clone(),
            Err(_) => TagsByResource::new(),
        }
    }
}

/// The resources an input considers ([`crate::plan::claims::considered`]): declared, owned,
/// and named by its unresolved intent; sorted, distinct.
fn considered<'a>(input: &'a PassInput<'_>, pending: &'a TagsByResource) -> Vec<&'a str> {
    crate::plan::claims::considered(input.resource_ids, input.owned, pending)
}

/// Reads every resource the round's undecided inputs consider, once. A call that fails (a
/// throttle that outlived the retries, say) fails only the inputs that consider one of its
/// resources (issue 20: one such call failed every binding of the round); an input whose call
/// failed for a reason of its own kind (a bad id among others') reads its resources alone.
async fn observe_all<C: TagApi, L: IntentLog>(
    cloud: &C,
    resource_type: &str,
    inputs: &[PassInput<'_>],
    slots: &[Slot],
    intents: &L,
) -> Observed {
    let undecided = |index: usize| matches!(slots[index], Slot::Pending);
    let ids: BTreeSet<&str> = inputs
        .iter()
        .enumerate()
        .filter(|(index, _)| undecided(*index))
        .flat_map(|(index, input)| considered(input, intents.pending(index)))
        .collect();
    let ids: Vec<String> = ids.into_iter().map(str::to_string).collect();
    // NB: the calls a read of them all would make, in the same order: no call more.
    let reads: Vec<Vec<String>> = calls::read_chunks(&ids, cloud.limits())
        .map(<[String]>::to_vec)
        .collect();
    tracing::debug!(
        resources = ids.len(),
        reads = reads.len(),
        "reading every resource the round considers, once"
    );
    let answers = if reads.is_empty() {
        Vec::new()
    } else {
        cloud.list_tags_each(resource_type, &reads).await
    };
    let mut shared = TagsByResource::new();
    let mut errors: Vec<CallError> = Vec::new();
    let mut failed: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (read, answer) in reads.iter().zip(answers) {
        match answer {
            Ok(tags) => shared.extend(tags),
            Err(error) => {
                failed.extend(read.iter().map(|id| (id.as_str(), errors.len())));
                errors.push(error);
            }
        }
    }
    let mut each = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.iter().enumerate() {
        let error = undecided(index)
            .then(|| {
                considered(input, intents.pending(index))
                    .into_iter()
                    .find_map(|id| failed.get(id).map(|&e| &errors[e]))
            })
            .flatten();
        each.push(match error {
            None => Ok(None),
            Some(error) if stops_every_call(error) || inputs.len() == 1 => Err(error.clone()),
            // NB: one input's bad id must not fail the others' reads: each reads its own.
            Some(_) => {
                let ids: Vec<String> = considered(input, intents.pending(index))
                    .into_iter()
                    .map(str::to_string)
                    .collect();
                cloud.list_tags(resource_type, &ids).await.map(Some)
            }
        });
    }
    Observed { shared, each }
}

/// The observed tags of the resources one input considers.
fn subset(
    observed: &TagsByResource,
    input: &PassInput<'_>,
    pending: &TagsByResource,
) -> TagsByResource {
    considered(input, pending)
        .into_iter()
        .filter_map(|id| observed.get(id).map(|tags| (id.to_string(), tags.clone())))
        .collect()
}

/// Every plan's writes, handed to the client at once (it shares calls between identical
/// payloads and isolates failing resources); each input gets what its writes confirmed.
async fn execute_all<'a, C: TagApi>(
    cloud: &C,
    resource_type: &str,
    inputs: &[PassInput<'_>],
    slots: &'a [Slot],
    recorded: &[Recorded],
) -> Vec<Option<Executed>> {
    let mut executed: Vec<Option<Executed>> = (0..inputs.len()).map(|_| None).collect();
    let mut owners: Vec<usize> = Vec::new();
    let mut writes: Vec<Write<'a>> = Vec::new();
    for (index, (input, slot)) in inputs.iter().zip(slots).enumerate() {
        let Slot::Planned(plan) = slot else { continue };
        if input.mode != Mode::Apply {
            continue;
        }
        if let Recorded::Failed(error) = &recorded[index] {
            executed[index] = Some(Executed {
                stopped_by: Some(error.clone()),
                ..Executed::default()
            });
            continue;
        }
        for write in writes_of(plan) {
            owners.push(index);
            writes.push(write);
        }
    }
    if writes.is_empty() {
        return executed;
    }
    tracing::debug!(
        writes = writes.len(),
        "writing every plan's batches at once (identical payloads share calls)"
    );
    let results = cloud.write_all(resource_type, &writes).await;
    let mut by_input: Vec<Vec<(Write<'a>, Result<_, CallError>)>> =
        (0..inputs.len()).map(|_| Vec::new()).collect();
    for ((owner, write), result) in owners.into_iter().zip(writes).zip(results) {
        by_input[owner].push((write, result));
    }
    for (index, pairs) in by_input.into_iter().enumerate() {
        if pairs.is_empty() {
            continue;
        }
        let (writes, results): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
        executed[index] = Some(Executed::from_results(&writes, results));
    }
    executed
}

#[cfg(test)]
pub(crate) mod tests;
