//! Call shaping: how tags and resources become cloud calls within a cloud's [`Limits`], in
//! one place for the plan ([`crate::plan`]), the batcher that coalesces the calls of many
//! bindings ([`crate::cloud::batcher`]), the round's reads ([`crate::reconcile::round`]) and
//! the call bound ([`crate::plan::bound`]). Pure: no I/O.
//!
//! The rules, for every cloud:
//! - **Tag payloads.** The tags a binding may write on a group of resources are cut into
//!   chunks of `tags_per_call` tags *in key order*. Every binding's plan cuts the same tags
//!   into the same chunks, so two bindings that declare the same tags ask for the same
//!   payloads, and the batcher shares their calls by payload (`TagResources` overwrites, so a
//!   call may carry one payload to many resources). The bound counts calls the same way.
//! - **Untag payloads.** The keys a binding prunes from a group of resources (each with the
//!   value it removes) are cut into chunks of `keys_per_untag_call`, in key order.
//! - **Writes.** A payload goes to its resources `resources_per_call` at a time, in id order.
//! - **Reads.** The distinct resources of a round are read `resources_per_read` (else
//!   `resources_per_call`) at a time, in id order; where the cloud pages a read's answer,
//!   every page is a call ([`crate::plan::bound::Paging`]).
//!
//! A limit of 0 would be a bug in a client's limits: one item per call keeps every call
//! possible instead of panicking.

use crate::tags::{Limits, Tags};

/// `limit`, at least 1.
fn at_least_one(limit: usize) -> usize {
    limit.max(1)
}

/// The `TagResources` payloads of `tags`: `tags_per_call` tags a call, in key order.
pub fn tag_payloads<'t>(tags: &'t Tags, limits: &Limits) -> Vec<Vec<(&'t String, &'t String)>> {
    payloads(tags, at_least_one(limits.tags_per_call))
}

/// The `UntagResources` payloads of `prunes` (key to the value removed):
/// `keys_per_untag_call` keys a call, in key order.
pub fn untag_payloads<'t>(prunes: &'t Tags, limits: &Limits) -> Vec<Vec<(&'t String, &'t String)>> {
    payloads(prunes, at_least_one(limits.keys_per_untag_call))
}

fn payloads(tags: &Tags, per_call: usize) -> Vec<Vec<(&String, &String)>> {
    let pairs: Vec<(&String, &String)> = tags.iter().collect();
    pairs.chunks(per_call).map(<[_]>::to_vec).collect()
}

/// The resources of one payload, a write call's worth at a time (`resources_per_call`); `ids`
/// in the order they are sent (sorted by the callers).
pub fn write_chunks<'a, T>(ids: &'a [T], limits: &Limits) -> std::slice::Chunks<'a, T> {
    ids.chunks(at_least_one(limits.resources_per_call))
}

/// How many write calls carry one payload to `resources` resources.
pub fn write_calls(resources: usize, limits: &Limits) -> usize {
    resources.div_ceil(at_least_one(limits.resources_per_call))
}

/// The distinct resources of a round, a read call's worth at a time
/// ([`Limits::read_chunk`]); `ids` sorted and distinct.
pub fn read_chunks<'a, T>(ids: &'a [T], limits: &Limits) -> std::slice::Chunks<'a, T> {
    ids.chunks(limits.read_chunk())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tags::tags;

    #[test]
    fn payloads_are_cut_in_key_order_whatever_the_limits() {
        let declared = tags(&[("c", "3"), ("a", "1"), ("b", "2")]);
        let limits = Limits {
            tags_per_call: 2,
            keys_per_untag_call: 0,
            ..Limits::alibaba()
        };
        let keys = |payloads: Vec<Vec<(&String, &String)>>| -> Vec<Vec<String>> {
            payloads
                .into_iter()
                .map(|p| p.into_iter().map(|(k, _)| k.clone()).collect())
                .collect()
        };
        assert_eq!(
            keys(tag_payloads(&declared, &limits)),
            [vec!["a", "b"], vec!["c"]]
        );
        assert_eq!(
            keys(untag_payloads(&declared, &limits)),
            [vec!["a"], vec!["b"], vec!["c"]],
            "a limit of 0 is one key a call"
        );
    }

    #[test]
    fn writes_and_reads_follow_their_own_limits() {
        let ids: Vec<u32> = (0..250).collect();
        let aws = Limits::aws();
        assert_eq!(write_chunks(&ids, &aws).count(), 13, "20 ARNs a write");
        assert_eq!(write_calls(ids.len(), &aws), 13);
        assert_eq!(read_chunks(&ids, &aws).count(), 3, "100 ARNs a read");
        let alibaba = Limits::alibaba();
        assert_eq!(read_chunks(&ids, &alibaba).count(), 5);
        assert_eq!(write_calls(0, &alibaba), 0);
    }
}
