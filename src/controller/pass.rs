//! What a pass of one binding needs beside its spec (its record, and the bindings whose claims
//! bear on it), and a deletion's pass.

use std::collections::BTreeSet;

use kube::runtime::reflector::ObjectRef;

use super::context::{Context, Record};
use crate::api::ResourceTagBinding;
use crate::cloud::TagApi;
use crate::plan::{BindingId, Claim, Claims};
use crate::reconcile::group::{SharedClaims, considered, pass_leaving};
use crate::reconcile::identity::{Target, binding_id, canonical_ids};
use crate::reconcile::{Mode, Outcome};
use crate::tags::{Ownership, Tags, TagsByResource};

/// The bindings whose claims bear on a pass (the pass's own binding among them: the plan
/// knows itself), with the resources each declares.
/// Each with the tags it declares, rendered ([`Context::claimed_tags`]).
pub(crate) type Claimants = Vec<(BindingId, BTreeSet<String>, Tags)>;

/// Claimants looked up in one group of passes, one list per distinct set of considered
/// resources ([`crate::reconcile::group::SharedClaims`]).
pub(crate) type SharedClaimants = SharedClaims<String, Claimants>;

/// What a pass of one binding needs beside its spec: its identity, its ownership record, and
/// the bindings whose claims bear on it.
pub(crate) struct Prepared {
    /// Identity and age.
    pub id: BindingId,
    /// The ownership record before the pass.
    pub owned: Ownership,
    /// The unresolved intent of a previous pass, claimed once the pass has observed the cloud.
    pub pending: TagsByResource,
    /// Its list of claimants in the group's [`SharedClaimants`], shared with the passes that
    /// consider the same resources.
    pub claims: usize,
}

impl Prepared {
    /// Prepares a pass of `binding` over `resource_ids` (and what it owns and intended), its
    /// claimants looked up in `shared` first (all passes of one provider and resource type).
    pub fn of(
        binding: &ResourceTagBinding,
        ctx: &Context,
        resource_ids: &[String],
        shared: &mut SharedClaimants,
    ) -> Self {
        let Record { owned, pending, .. } = ctx.record(binding);
        let considered: Vec<String> = considered(resource_ids, &owned, &pending)
            .into_iter()
            .map(str::to_string)
            .collect();
        let claims = shared.index_of(considered, |considered| claimants(binding, ctx, considered));
        Prepared {
            id: binding_id(binding),
            owned,
            pending,
            claims,
        }
    }
}

/// The claims of each list of claimants, borrowed from them.
pub(crate) fn claim_lists(lists: &[Claimants]) -> Vec<Claims<'_>> {
    lists
        .iter()
        .map(|claimants| {
            Claims::new(
                claimants
                    .iter()
                    .map(|(other_id, ids, tags)| Claim {
                        binding: other_id,
                        resource_ids: ids,
                        tags,
                    })
                    .collect(),
            )
        })
        .collect()
}

/// A deletion's pass: it declares nothing and prunes what the binding applied, with the
/// claims of every other binding on those resources, whichever provider they go through, in
/// a group of its own (due bindings pass together in the fleet's rounds).
// NB: a deletion's pass only untags (nothing is declared), so it records no intent: an untag
// killed before its status write leaves a key the next pass finds gone, and releases. It does
// claim the intent of a pass killed after its writes, so that it prunes those tags too.
pub(super) async fn prune<C: TagApi>(
    binding: &ResourceTagBinding,
    client: &C,
    ctx: &Context,
) -> Outcome {
    let mut shared = SharedClaimants::default();
    let prepared = Prepared::of(binding, ctx, &[], &mut shared);
    let lists = shared.into_lists();
    let claims = claim_lists(&lists);
    let intents =
        super::intent_log::StatusIntents::new(ctx, vec![binding], vec![&prepared.pending]);
    pass_leaving(
        client,
        &binding.spec.resource_type,
        (&prepared.id, binding.spec.deletion_policy),
        &prepared.owned,
        &claims[prepared.claims],
        Mode::Apply,
        &intents,
    )
    .await
}

/// The other bindings whose claims bear on this pass: on the same cloud, region and resource
/// type (through any provider), not being deleted, declaring at least one resource the pass
/// considers (declared or owned; the plan looks at no other). Found in the fleet's claim
/// index, which the watch keeps: a pass costs a lookup per resource, not a scan of the fleet.
fn claimants(binding: &ResourceTagBinding, ctx: &Context, considered: &[String]) -> Claimants {
    let Some(provider) = ctx
        .providers
        .get(&ObjectRef::new(&binding.spec.provider_ref.name))
    else {
        return Vec::new();
    };
    let target = Target::of(&provider.spec, &binding.spec.resource_type);
    let keys = ctx.fleet.claims().claimants(
        &target,
        |name, resource_type| {
            let provider = ctx.providers.get(&ObjectRef::new(name))?;
            Some(Target::of(&provider.spec, resource_type))
        },
        considered.iter().map(String::as_str),
        None,
    );
    let index = ctx.fleet.claims();
    keys.iter()
        .filter_map(|other| {
            let binding = ctx.bindings.get(other)?;
            // NB: what the index holds: the id list, or a selector's last selection; as the
            // canonical ids its own provider names them by (an AWS bare id is its ARN).
            let declared: Vec<String> = index.declared_ids(other)?.map(str::to_string).collect();
            let ids: BTreeSet<String> = match ctx
                .providers
                .get(&ObjectRef::new(&binding.spec.provider_ref.name))
            {
                Some(provider) => canonical_ids(
                    &provider.spec,
                    ctx.known_aws_account(&binding.spec.provider_ref.name)
                        .as_deref(),
                    &binding.spec.resource_type,
                    &declared,
                )
                .iter()
                .cloned()
                .collect(),
                None => declared.into_iter().collect(),
            };
            Some((binding, ids))
        })
        .filter(|(other, _)| other.metadata.deletion_timestamp.is_none())
        .filter(|(other, _)| other.spec.mode.claims())
        .map(|(other, ids)| (binding_id(&other), ids, ctx.claimed_tags(&other)))
        .collect()
}
