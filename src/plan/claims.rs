//! The claims of other bindings that bear on a set of passes, shared by every plan that reads
//! them (issue 20, item 8): a host builds one list per distinct set of resources its bindings
//! consider, the planned binding's own claim among them (a plan knows itself), and a long list
//! is indexed once by resource and key, so that a plan's look-up costs the claimants of one
//! key, and mostly the first of them: 8,000 bindings on one resource plan in linear time and
//! memory, where a scan per look-up made both quadratic.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};

use super::{BindingId, Claim};
use crate::tags::{Ownership, TagsByResource};

/// Below this many claims, a scan is cheaper than an index.
const INDEXED_FROM: usize = 32;

/// The claimants of one key on one resource: binding and value, in precedence order.
type Declaring<'a> = Vec<(&'a BindingId, &'a String)>;

/// Resource id -> key -> its claimants.
type Index<'a> = HashMap<&'a str, HashMap<&'a str, Declaring<'a>>>;

/// Claims, with their index by resource id and key when there are many.
#[derive(Debug, Default)]
pub struct Claims<'a> {
    list: Vec<Claim<'a>>,
    index: Option<Index<'a>>,
}

/// No claims.
pub static NO_CLAIMS: Claims<'static> = Claims {
    list: Vec::new(),
    index: None,
};

impl<'a> Claims<'a> {
    /// The claims of `list`.
    pub fn new(list: Vec<Claim<'a>>) -> Self {
        let index = (list.len() >= INDEXED_FROM).then(|| index_of(&list));
        Claims { list, index }
    }

    /// Every claim.
    pub fn as_slice(&self) -> &[Claim<'a>] {
        &self.list
    }

    /// The bindings that declare `key` on `id`, with their values, in precedence order
    /// ([`BindingId::precedence`]).
    pub fn declaring(&self, id: &str, key: &str) -> Cow<'_, [(&'a BindingId, &'a String)]> {
        let Some(index) = &self.index else {
            let mut found: Declaring<'a> = self
                .list
                .iter()
                .filter(|claim| claim.resource_ids.contains(id))
                .filter_map(|claim| claim.tags.get(key).map(|value| (claim.binding, value)))
                .collect();
            found.sort_by(|(a, _), (b, _)| a.precedence().cmp(&b.precedence()));
            return Cow::Owned(found);
        };
        match index.get(id).and_then(|keys| keys.get(key)) {
            Some(found) => Cow::Borrowed(found),
            None => Cow::Owned(Vec::new()),
        }
    }
}

fn index_of<'a>(list: &[Claim<'a>]) -> Index<'a> {
    let mut index: Index<'a> = HashMap::new();
    for claim in list {
        for id in claim.resource_ids {
            let keys = index.entry(id.as_str()).or_default();
            for (key, value) in claim.tags {
                keys.entry(key.as_str())
                    .or_default()
                    .push((claim.binding, value));
            }
        }
    }
    for found in index.values_mut().flat_map(HashMap::values_mut) {
        found.sort_by(|(a, _), (b, _)| a.precedence().cmp(&b.precedence()));
    }
    index
}

/// The resources a pass considers, sorted and distinct: those it declares, those it owns tags
/// on, and those of its unresolved intent. A claimed key is planned like an owned one (and may
/// be pruned), so the claims of other bindings on all of them bear on the pass.
pub fn considered<'a>(
    resource_ids: &'a [String],
    owned: &'a Ownership,
    pending: &'a TagsByResource,
) -> Vec<&'a str> {
    let considered: BTreeSet<&str> = resource_ids
        .iter()
        .chain(owned.resources().keys())
        .chain(pending.keys())
        .map(String::as_str)
        .collect();
    considered.into_iter().collect()
}

/// Lists of claims looked up once per distinct set of [`considered`] resources: the passes of
/// a group that consider the same resources share one list, their own claims among them (the
/// plan knows itself). Issue 20, item 8: 8,000 bindings on one resource held 8,000 lists of
/// 7,999 claims; now one list of 8,000.
/// `K` is the host's form of the considered ids (borrowed where the host's data outlives the
/// group, owned where it does not).
#[derive(Debug)]
pub struct SharedClaims<K, L> {
    lists: Vec<L>,
    by_considered: HashMap<Vec<K>, usize>,
}

impl<K, L> Default for SharedClaims<K, L> {
    fn default() -> Self {
        SharedClaims {
            lists: Vec::new(),
            by_considered: HashMap::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq, L> SharedClaims<K, L> {
    /// The index of the list for `considered`, looked up with `look_up` the first time.
    pub fn index_of(&mut self, considered: Vec<K>, look_up: impl FnOnce(&[K]) -> L) -> usize {
        if let Some(&index) = self.by_considered.get(&considered) {
            return index;
        }
        self.lists.push(look_up(&considered));
        self.by_considered.insert(considered, self.lists.len() - 1);
        self.lists.len() - 1
    }

    /// The list at `index`.
    pub fn get(&self, index: usize) -> Option<&L> {
        self.lists.get(index)
    }

    /// The lists, by index.
    pub fn into_lists(self) -> Vec<L> {
        self.lists
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use proptest::prelude::*;

    use super::*;
    use crate::tags::Tags;

    proptest! {
        /// The index answers what a scan answers, in the same order.
        #[test]
        fn the_index_answers_as_a_scan(
            claims in prop::collection::vec(
                (
                    prop::option::of(0i64..3),
                    0usize..40,
                    prop::collection::btree_set(0usize..4, 0..3),
                    prop::collection::btree_map(0usize..3, 0usize..2, 0..3),
                ),
                INDEXED_FROM..INDEXED_FROM + 20,
            ),
        ) {
            let bindings: Vec<BindingId> = claims
                .iter()
                .map(|(created, name, _, _)| BindingId {
                    created: *created,
                    namespace: "ns".into(),
                    name: format!("b{name:02}"),
                })
                .collect();
            let ids: Vec<BTreeSet<String>> = claims
                .iter()
                .map(|(_, _, ids, _)| ids.iter().map(|i| format!("r{i}")).collect())
                .collect();
            let tags: Vec<Tags> = claims
                .iter()
                .map(|(_, _, _, tags)| {
                    tags.iter().map(|(k, v)| (format!("k{k}"), format!("v{v}"))).collect()
                })
                .collect();
            let list: Vec<Claim<'_>> = (0..claims.len())
                .map(|i| Claim {
                    binding: &bindings[i],
                    resource_ids: &ids[i],
                    tags: &tags[i],
                })
                .collect();
            let indexed = Claims::new(list.clone());
            prop_assert!(indexed.index.is_some());
            for id in (0..4).map(|i| format!("r{i}")) {
                for key in (0..3).map(|k| format!("k{k}")) {
                    let mut scanned: Declaring<'_> = list
                        .iter()
                        .filter(|c| c.resource_ids.contains(&id))
                        .filter_map(|c| c.tags.get(&key).map(|v| (c.binding, v)))
                        .collect();
                    scanned.sort_by(|(a, _), (b, _)| a.precedence().cmp(&b.precedence()));
                    let found = indexed.declaring(&id, &key);
                    let named = |d: &[(&BindingId, &String)]| -> Vec<String> {
                        d.iter().map(|(b, v)| format!("{b}={v}@{:?}", b.created)).collect()
                    };
                    prop_assert_eq!(named(&found), named(&scanned));
                }
            }
        }
    }
}
