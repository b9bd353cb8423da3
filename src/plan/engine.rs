//! Planning one binding: a decision per resource and key (the rules of ownership, DESIGN.md
//! section 3), the quota check, the batches, and the ownership record after execution.

use std::collections::{BTreeMap, BTreeSet};

use super::batch::{tag_batches, untag_batches};
use super::validate::is_reserved_key;
use super::{BindingId, Claims, Confirmed, KeyDecision, Plan, PlanInput};
use crate::tags::{Limits, Ownership, Tags};

/// Decisions on one resource, by key.
pub(super) type ResourceDecisions = BTreeMap<String, KeyDecision>;

static NO_TAGS: Tags = Tags::new();

/// Plans one binding.
///
/// Resources considered: the declared ones and every resource where the binding owns a tag
/// (so a resource dropped from `resourceIds`, or every resource of a binding being deleted,
/// has its owned tags pruned). Keys considered on each: the declared ones (when the resource
/// is declared) and the owned ones; every other key is foreign and left alone.
///
/// A declared resource that would exceed `limits.tags_per_resource` is put in
/// [`Plan::blocked`] and gets no tag batch; its `Apply` decisions stay in
/// [`Plan::decisions`] so the caller can report what was not written, and its prunes still
/// happen.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    let declared: BTreeSet<&str> = input.resource_ids.iter().map(String::as_str).collect();
    let rivals = Rivals {
        binding: input.binding,
        claims: input.claims,
    };
    let mut plan = Plan::default();
    for id in considered(input, &declared) {
        let resource = Resource::of(input, id, declared.contains(id));
        let decisions = resource.decide(&rivals, input.limits);
        if let Some(message) = resource.quota_excess(&decisions, input.limits) {
            plan.blocked.insert(id.to_string(), message);
        }
        if !decisions.is_empty() {
            plan.decisions.insert(id.to_string(), decisions);
        }
    }
    let writable = declared
        .iter()
        .copied()
        .filter(|id| !plan.blocked.contains_key(*id));
    plan.tag_batches = tag_batches(&plan.decisions, writable, input.desired, input.limits);
    plan.untag_batches = untag_batches(&plan.decisions, input.limits);
    plan
}

impl Plan {
    /// The ownership record after executing this plan, given which writes the cloud confirmed.
    ///
    /// Only confirmed writes take or drop ownership of an applied or pruned key: a failed call
    /// never loses the record of what was applied. `Release` and `Conflict` drop ownership
    /// (the tag stays; for a conflict, the older binding's value wins).
    pub fn next_ownership(&self, owned: &Ownership, confirmed: &Confirmed) -> Ownership {
        let mut next = owned.clone();
        for (id, keys) in &self.decisions {
            for (key, decision) in keys {
                let pair = (id.clone(), key.clone());
                match decision {
                    KeyDecision::Apply { to, .. } if confirmed.written.contains(&pair) => {
                        next.own(id, key, to);
                    }
                    KeyDecision::Prune { .. } if confirmed.pruned.contains(&pair) => {
                        next.release(id, key);
                    }
                    KeyDecision::Release | KeyDecision::Conflict { .. } => next.release(id, key),
                    // NB: an unconfirmed write leaves the old record, whose value is still
                    // there. `Keep` never takes ownership: a tag that carried the declared
                    // value before this binding wrote anything may belong to someone else, and
                    // a tag this binding did not write is never pruned by it.
                    KeyDecision::Apply { .. } | KeyDecision::Prune { .. } | KeyDecision::Keep => {}
                }
            }
        }
        next
    }

    /// Cloud write calls when every batch succeeds: tag batches plus untag batches.
    pub fn write_calls(&self) -> usize {
        self.tag_batches.len() + self.untag_batches.len()
    }

    /// True when executing the plan writes to the cloud (any tag or untag batch).
    pub fn has_changes(&self) -> bool {
        self.write_calls() > 0
    }

    /// The decision on one key of one resource; `None` for a foreign key.
    pub fn decision(&self, resource_id: &str, key: &str) -> Option<&KeyDecision> {
        self.decisions.get(resource_id)?.get(key)
    }
}

/// The declared resources and every resource where the binding owns a tag, in order.
fn considered<'a>(input: &PlanInput<'a>, declared: &BTreeSet<&'a str>) -> BTreeSet<&'a str> {
    let owned = input.owned.resources().keys().map(String::as_str);
    declared.iter().copied().chain(owned).collect()
}

/// One resource as the plan sees it.
struct Resource<'a> {
    id: &'a str,
    /// Declared tags here: empty when the resource is not declared.
    desired: &'a Tags,
    observed: &'a Tags,
    owned: &'a Tags,
}

impl<'a> Resource<'a> {
    fn of(input: &PlanInput<'a>, id: &'a str, declared: bool) -> Self {
        Resource {
            id,
            desired: if declared { input.desired } else { &NO_TAGS },
            observed: input.observed.get(id).unwrap_or(&NO_TAGS),
            owned: input.owned.on(id).unwrap_or(&NO_TAGS),
        }
    }

    fn decide(&self, rivals: &Rivals<'_>, limits: &Limits) -> ResourceDecisions {
        let declared = self
            .desired
            .iter()
            .map(|(key, value)| (key.clone(), self.decide_declared(key, value, rivals)));
        let undeclared_owned = self
            .owned
            .iter()
            .filter(|(key, _)| !self.desired.contains_key(*key))
            .map(|(key, value)| (key.clone(), self.decide_owned(key, value, rivals, limits)));
        declared.chain(undeclared_owned).collect()
    }

    fn decide_declared(&self, key: &str, value: &str, rivals: &Rivals<'_>) -> KeyDecision {
        let carried = self.observed.get(key).map(String::as_str);
        if let Some((winner, theirs)) = rivals.winner_over(self.id, key, value, carried) {
            return KeyDecision::Conflict {
                winner: winner.to_string(),
                value: theirs.to_string(),
            };
        }
        match self.observed.get(key) {
            // NB: a record of another value than the one carried is stale (the value was
            // changed out of band after this binding wrote it): the binding no longer owns
            // what is there, so ownership is released rather than kept.
            Some(carried) if carried == value => match self.owned.get(key) {
                Some(owned) if owned != value => KeyDecision::Release,
                _ => KeyDecision::Keep,
            },
            carried => KeyDecision::Apply {
                from: carried.cloned(),
                to: value.to_string(),
            },
        }
    }

    /// An owned key that is no longer declared here: pruned only when it still carries the
    /// value this binding applied and no other binding declares it; otherwise released.
    fn decide_owned(
        &self,
        key: &str,
        owned: &str,
        rivals: &Rivals<'_>,
        limits: &Limits,
    ) -> KeyDecision {
        let unchanged = self
            .observed
            .get(key)
            .is_some_and(|carried| carried == owned);
        // NB: a cloud system key is never pruned, even if a tampered record claims it.
        if unchanged && !rivals.declare(self.id, key) && !is_reserved_key(key, limits) {
            KeyDecision::Prune {
                value: owned.to_string(),
            }
        } else {
            KeyDecision::Release
        }
    }

    /// Why the resource cannot take its new keys, if the pass would leave it with more
    /// custom tags than the provider allows. Cloud system keys do not count, prunes free
    /// room, and a resource that gets no new key is never blocked (overwrites need no room).
    fn quota_excess(&self, decisions: &ResourceDecisions, limits: &Limits) -> Option<String> {
        let count =
            |wanted: fn(&KeyDecision) -> bool| decisions.values().filter(|d| wanted(d)).count();
        let added = count(|d| matches!(d, KeyDecision::Apply { from: None, .. }));
        if added == 0 {
            return None;
        }
        let pruned = count(|d| matches!(d, KeyDecision::Prune { .. }));
        let carried = self
            .observed
            .keys()
            .filter(|key| !is_reserved_key(key, limits))
            .count();
        let kept = carried.saturating_sub(pruned);
        let after = kept + added;
        (after > limits.tags_per_resource).then(|| {
            format!(
                "resource {} would carry {after} tags ({kept} kept, {added} added); the limit is {}",
                self.id, limits.tags_per_resource
            )
        })
    }
}

/// The other bindings' declarations, as they bear on this binding.
struct Rivals<'a> {
    binding: &'a BindingId,
    claims: &'a Claims<'a>,
}

impl<'a> Rivals<'a> {
    /// True when another binding declares `key` on `id` (with any value).
    fn declare(&self, id: &str, key: &str) -> bool {
        self.claims
            .declaring(id, key)
            .iter()
            .any(|(other, _)| !is_same_binding(other, self.binding))
    }

    /// The binding that wins `key` on `id` against this one: the one of highest precedence
    /// among all that declare it (see [`rank`]; `carried` is the value the resource carries),
    /// when that is another binding wanting another value.
    ///
    /// NB: when the highest-precedence binding wants this binding's value, there is no
    /// conflict even if a binding in between wants another one: that one yields to the
    /// winner too, and the resource ends up carrying this binding's value.
    fn winner_over(
        &self,
        id: &str,
        key: &str,
        value: &str,
        carried: Option<&str>,
    ) -> Option<(&'a BindingId, &'a String)> {
        let declaring = self.claims.declaring(id, key);
        // NB: claimants come in precedence order, and a rank differs from it only inside a
        // group created in the same second (the tie rule): the winner is in the first group.
        let mut others = declaring
            .iter()
            .copied()
            .filter(|(other, _)| !is_same_binding(other, self.binding));
        let first = others.next()?;
        let group = |binding: &BindingId| binding.created;
        let (winner, theirs) = match first.0.created {
            // NB: untimed bindings rank by namespace/name alone: the first is the winner.
            None => first,
            Some(_) => others
                .take_while(|(other, _)| group(other) == group(first.0))
                .chain(std::iter::once(first))
                .min_by(|(a, x), (b, y)| rank(a, x, carried).cmp(&rank(b, y, carried)))?,
        };
        let wins = rank(winner, theirs, carried) < rank(self.binding, value, carried);
        (wins && theirs != value).then_some((winner, theirs))
    }
}

/// A binding's rank for one key of one resource, where it wants `value`: the smaller wins.
/// Older first ([`BindingId::precedence`]); on a tie of creation times (they have a second's
/// granularity), the binding whose value the resource carries keeps the key, so that a key
/// once written does not move to a binding created in the same second whose name sorts first
/// (issue 20); only then namespace/name. Bindings without a creation time (files in the CLI)
/// are decided by namespace/name alone.
pub(super) fn rank<'b>(
    binding: &'b BindingId,
    value: &str,
    carried: Option<&str>,
) -> (bool, i64, bool, &'b str, &'b str) {
    let (untimed, created, namespace, name) = binding.precedence();
    let yields_on_tie = !untimed && carried != Some(value);
    (untimed, created, yields_on_tie, namespace, name)
}

/// A binding is known by namespace and name; the caller may pass its own claim along with
/// the others', and it is no rival to itself.
fn is_same_binding(a: &BindingId, b: &BindingId) -> bool {
    a.namespace == b.namespace && a.name == b.name
}

#[cfg(test)]
mod tie_tests {
    //! The tie rule: two bindings created in the same second that declare one key with two
    //! values on one resource.

    use proptest::prelude::*;

    use super::*;
    use crate::tags::{Limits, TagsByResource, tags};

    fn id(name: &str, created: Option<i64>) -> BindingId {
        BindingId {
            created,
            namespace: "team".to_string(),
            name: name.to_string(),
        }
    }

    /// The decision on `env` of `r1` for `me`, against `other`, with `carried` on it.
    fn decide(
        me: &BindingId,
        mine: &str,
        other: &BindingId,
        theirs: &str,
        carried: Option<&str>,
    ) -> KeyDecision {
        let desired = tags(&[("env", mine)]);
        let their_tags = tags(&[("env", theirs)]);
        let ids = vec!["r1".to_string()];
        let their_ids: BTreeSet<String> = ids.iter().cloned().collect();
        let claims = Claims::new(vec![super::super::Claim {
            binding: other,
            resource_ids: &their_ids,
            tags: &their_tags,
        }]);
        let observed: TagsByResource = carried
            .map(|value| ("r1".to_string(), tags(&[("env", value)])))
            .into_iter()
            .collect();
        let plan = plan(&PlanInput {
            binding: me,
            desired: &desired,
            resource_ids: &ids,
            owned: &Ownership::default(),
            observed: &observed,
            claims: &claims,
            limits: &Limits::alibaba(),
        });
        plan.decision("r1", "env")
            .cloned()
            .expect("a decision on env")
    }

    fn concedes(decision: &KeyDecision) -> bool {
        matches!(decision, KeyDecision::Conflict { .. })
    }

    #[test]
    fn on_a_tie_the_binding_whose_value_is_carried_keeps_the_key() {
        let (a, b) = (id("a", Some(100)), id("b", Some(100)));
        // NB: "b" wrote prod before "a" (created in the same second) was seen.
        assert_eq!(
            decide(&b, "prod", &a, "dev", Some("prod")),
            KeyDecision::Keep
        );
        assert!(concedes(&decide(&a, "dev", &b, "prod", Some("prod"))));
        // Nothing carried (or a third value): name order.
        assert!(concedes(&decide(&b, "prod", &a, "dev", None)));
        assert!(concedes(&decide(&b, "prod", &a, "dev", Some("qa"))));
        // Older still wins, whatever is carried; without creation times, names decide.
        assert!(concedes(&decide(
            &id("b", Some(101)),
            "prod",
            &a,
            "dev",
            Some("prod")
        )));
        assert!(concedes(&decide(
            &id("b", None),
            "prod",
            &id("a", None),
            "dev",
            Some("prod")
        )));
    }

    proptest! {
        /// For any creation times, names, values and carried value: exactly one of the two
        /// bindings keeps the key; once the winner's value is carried, it still wins (nothing
        /// moves); and the older binding always wins.
        #[test]
        fn exactly_one_keeps_the_key_and_the_written_value_stays(
            created_a in proptest::option::of(0i64..2),
            created_b in proptest::option::of(0i64..2),
            carried in proptest::option::of(prop::sample::select(vec!["x", "y", "z"])),
        ) {
            let (a, b) = (id("a", created_a), id("b", created_b));
            let (for_a, for_b) = (
                decide(&a, "x", &b, "y", carried),
                decide(&b, "y", &a, "x", carried),
            );
            prop_assert!(concedes(&for_a) != concedes(&for_b), "{:?} {:?}", for_a, for_b);
            let (winner, value) = if concedes(&for_a) { ("b", "y") } else { ("a", "x") };
            prop_assert_eq!(concedes(&decide(&a, "x", &b, "y", Some(value))), winner != "a");
            prop_assert_eq!(concedes(&decide(&b, "y", &a, "x", Some(value))), winner != "b");
            if let (Some(ca), Some(cb)) = (created_a, created_b) {
                if ca != cb {
                    prop_assert_eq!(winner, if ca < cb { "a" } else { "b" });
                } else if carried == Some("y") {
                    prop_assert_eq!(winner, "b", "a tie: the carried value keeps the key");
                }
            }
        }
    }
}
