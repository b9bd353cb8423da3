//! The bindings of one target due together, as both hosts run them (issue 21): the host
//! reads or watches the bindings, resolves their selectors, looks up their claims and keeps
//! their records; this runs what is common to both once: a refused selection keeps the
//! record and the previous intent, a selection releases what left it (by `deletionPolicy`),
//! and every other binding passes in one [`run_round`] with the host's [`IntentLog`], so
//! that the crash window is recorded the same way by both hosts (the intent of
//! [`crate::plan::intent::intent`], never a whole tag batch).

use super::intent_log::{Intent, IntentError, IntentLog};
use super::round::run_round;
use super::select::{Resolution, Selection};
use super::{Mode, Outcome, PassInput};
use crate::api::DeletionPolicy;
use crate::cloud::TagApi;
pub use crate::plan::claims::{SharedClaims, considered};
use crate::plan::{BindingId, Claims};
use crate::tags::{Ownership, Tags, TagsByResource};

/// One binding of a group, as its host prepared it.
#[derive(Clone, Debug)]
pub struct Member<'a> {
    /// Identity and age.
    pub binding: &'a BindingId,
    /// Declared tags; empty when the binding is being deleted.
    pub desired: &'a Tags,
    /// Its resources: `resourceIds`, or what its selector resolved to (empty when refused).
    pub resource_ids: &'a [String],
    /// A selector binding's resolution; `None` for an id list.
    pub resolution: Option<&'a Resolution>,
    /// A selector binding's `matchTags`; `None` for an id list.
    pub match_tags: Option<&'a Tags>,
    /// `spec.deletionPolicy`: what leaving a selection does.
    pub deletion_policy: DeletionPolicy,
    /// The ownership record before the pass.
    pub owned: &'a Ownership,
    /// The other bindings' claims on the resources it considers.
    pub claims: &'a Claims<'a>,
    /// Whether to write.
    pub mode: Mode,
}

/// Runs the passes of `members` (all of `resource_type`, through `cloud`) together; one
/// outcome per member, in order. `intents` is indexed by member.
pub async fn pass_group<C: TagApi, L: IntentLog>(
    cloud: &C,
    resource_type: &str,
    members: &[Member<'_>],
    intents: &L,
) -> Vec<Outcome> {
    // NB: a selection is settled against the round's reads by id, which release what left
    // it; a refused one (a failed read, too many matches) selects nothing and keeps the
    // record whole.
    let inputs: Vec<PassInput<'_>> = members
        .iter()
        .map(|member| PassInput {
            binding: member.binding,
            desired: member.desired,
            resource_type,
            resource_ids: member.resource_ids,
            owned: member.owned,
            claims: member.claims,
            mode: member.mode,
            selection: member.match_tags.map(|match_tags| Selection {
                match_tags,
                deletion_policy: member.deletion_policy,
            }),
        })
        .collect();
    let mut outcomes: Vec<Option<Outcome>> = members
        .iter()
        .zip(&inputs)
        .enumerate()
        .map(|(index, (member, input))| {
            let mut refused = member.resolution?.refusal(input)?;
            // NB: a pass refused before the cloud leaves an earlier intent to claim, as a
            // failed read does.
            refused.pending = intents.pending(index).clone();
            Some(refused)
        })
        .collect();
    let running: Vec<usize> = (0..members.len())
        .filter(|&index| outcomes[index].is_none())
        .collect();
    let running_inputs: Vec<PassInput<'_>> =
        running.iter().map(|&index| inputs[index].clone()).collect();
    let subset = Subset {
        inner: intents,
        members: &running,
    };
    let passed = run_round(cloud, resource_type, &running_inputs, &subset).await;
    for (index, outcome) in running.into_iter().zip(passed) {
        outcomes[index] = Some(outcome);
    }
    members
        .iter()
        .zip(outcomes)
        .map(|(member, outcome)| {
            // NB: run_round answers one outcome per input it was given, in order.
            let mut outcome = outcome.unwrap_or_else(|| unreachable!("every member is passed"));
            if let Some(resolution) = member.resolution
                && outcome.selected.is_none()
            {
                outcome.selected = resolution.status();
            }
            outcome
        })
        .collect()
}

/// The pass of a binding that is leaving (deleted in the cluster, or gone from the files
/// under `--prune-removed`), in a group of its own: it declares nothing, so it prunes what it
/// owns ([`Mode::Apply`]) or says what it would prune ([`Mode::PlanOnly`]), with the claims
/// of every other binding on those resources; its unresolved intent (`intents`, index 0) is
/// claimed where the cloud carries it and pruned with the rest.
pub async fn pass_leaving<C: TagApi, L: IntentLog>(
    cloud: &C,
    resource_type: &str,
    (binding, deletion_policy): (&BindingId, DeletionPolicy),
    owned: &Ownership,
    claims: &Claims<'_>,
    mode: Mode,
    intents: &L,
) -> Outcome {
    let member = Member {
        binding,
        desired: &Tags::new(),
        resource_ids: &[],
        resolution: None,
        match_tags: None,
        deletion_policy,
        owned,
        claims,
        mode,
    };
    pass_group(cloud, resource_type, &[member], intents)
        .await
        .pop()
        .unwrap_or_else(|| unreachable!("pass_group answers one outcome per member"))
}

/// The host's intents of the members that run, indexed as the round's inputs.
struct Subset<'a, L> {
    inner: &'a L,
    /// The member index of each input of the round.
    members: &'a [usize],
}

impl<L: IntentLog> IntentLog for Subset<'_, L> {
    fn pending(&self, index: usize) -> &TagsByResource {
        self.inner.pending(self.members[index])
    }

    async fn record(&self, intents: &[Intent<'_>]) -> Vec<Result<(), IntentError>> {
        let mapped: Vec<Intent<'_>> = intents
            .iter()
            .map(|intent| Intent {
                index: self.members[intent.index],
                ..*intent
            })
            .collect();
        self.inner.record(&mapped).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::reason;
    use crate::reconcile::intent_log::NoIntents;
    use crate::reconcile::round::tests::{emulated, id};
    use crate::tags::tags;

    /// Issue 20, item 4: a selector binding that owns `cost` on g1 and g2, both still carrying
    /// its match tag, is handed a list-by-tag answer that drops them.
    #[tokio::test]
    async fn an_answer_that_drops_a_selection_its_reads_contradict_prunes_nothing() {
        let carried: &[(&str, &str)] = &[("env", "prod"), ("cost", "1")];
        let (cloud, client) = emulated(&[("g1", carried), ("g2", carried)]).await;
        let binding = id("sel", 1);
        let (match_tags, desired) = (tags(&[("env", "prod")]), tags(&[("cost", "1")]));
        let mut owned = Ownership::default();
        owned.set("g1", desired.clone());
        owned.set("g2", desired.clone());
        let run = |answer: Vec<String>| {
            let (client, binding, match_tags, desired, owned) =
                (&client, &binding, &match_tags, &desired, &owned);
            async move {
                let resolution = Resolution::Selected(answer);
                let member = Member {
                    binding,
                    desired,
                    resource_ids: resolution.ids().unwrap_or_default(),
                    resolution: Some(&resolution),
                    match_tags: Some(match_tags),
                    deletion_policy: DeletionPolicy::Delete,
                    owned,
                    claims: &crate::plan::NO_CLAIMS,
                    mode: Mode::Apply,
                };
                let mut outcomes = pass_group(client, "apiGroup", &[member], &NoIntents).await;
                outcomes.pop().expect("one outcome")
            }
        };

        let empty = run(Vec::new()).await;
        assert_eq!(empty.readiness.reason, reason::PROVIDER_ERROR);
        assert!(
            empty.readiness.message.contains("not believed"),
            "{}",
            empty.readiness.message
        );
        assert_eq!(empty.writes.calls, 0);
        assert_eq!(empty.ownership, owned);

        // One of two dropped: g2's own read still matches, so it stays selected.
        let short = run(vec!["g1".to_string()]).await;
        assert!(short.is_ready(), "{:?}", short.readiness);
        assert_eq!(short.writes.calls, 0);
        assert_eq!(short.selected.map(|s| s.count), Some(2));

        let ids = vec!["g1".to_string(), "g2".to_string()];
        let observed = client.list_tags("apiGroup", &ids).await.expect("a read");
        for id in &ids {
            assert_eq!(
                observed[id].get("cost").map(String::as_str),
                Some("1"),
                "{id}"
            );
        }
        cloud.shutdown().await.expect("emulator stops");
    }
}
