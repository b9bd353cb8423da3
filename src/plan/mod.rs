//! The plan engine: pure functions, no I/O (DESIGN.md section 2, layer 2).
//!
//! Input: a binding's desired tags and resources, what it owns (its ownership record), what
//! the cloud carries now, the claims of other bindings on the same resources, and the
//! provider's limits. Output: a [`Plan`] of batched calls and a decision per resource and key,
//! implementing the ownership rules of DESIGN.md section 3.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::tags::{Limits, Ownership, Tags, TagsByResource};

/// Identity and age of a binding: decides conflicts (older wins, then namespace/name).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct BindingId {
    /// Creation time, seconds since the epoch; `None` (CLI manifests without one) sorts
    /// after every known time, so conflicts fall back to namespace/name.
    pub created: Option<i64>,
    /// Namespace of the binding.
    pub namespace: String,
    /// Name of the binding.
    pub name: String,
}

impl BindingId {
    /// Orders bindings by precedence: the smaller wins a conflict.
    pub fn precedence(&self) -> (bool, i64, &str, &str) {
        (
            self.created.is_none(),
            self.created.unwrap_or(0),
            &self.namespace,
            &self.name,
        )
    }
}

impl fmt::Display for BindingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What another binding of the same provider and resource type declares. A claim of the
/// planned binding itself (same namespace/name) is ignored.
#[derive(Clone, Debug)]
pub struct Claim<'a> {
    /// The other binding.
    pub binding: &'a BindingId,
    /// Its resources.
    pub resource_ids: &'a BTreeSet<String>,
    /// Its declared tags.
    pub tags: &'a Tags,
}

/// Everything the plan needs about one binding, for one pass.
#[derive(Clone, Debug)]
pub struct PlanInput<'a> {
    /// The binding being planned.
    pub binding: &'a BindingId,
    /// Declared tags (`spec.tags`); empty when the binding is being deleted.
    pub desired: &'a Tags,
    /// Declared resources (`spec.resourceIds`); empty when the binding is being deleted.
    pub resource_ids: &'a [String],
    /// What this binding applied and still owns.
    pub owned: &'a Ownership,
    /// Current tags of every declared and every owned resource.
    pub observed: &'a TagsByResource,
    /// Declarations of the other bindings on the same resources (its own may be among them).
    pub claims: &'a Claims<'a>,
    /// The provider's limits and tag rules.
    pub limits: &'a Limits,
}

/// One TagResources call: every tag to every resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagBatch {
    /// At most `limits.resources_per_call` ids.
    pub resource_ids: Vec<String>,
    /// At most `limits.tags_per_call` tags.
    pub tags: Tags,
}

/// One UntagResources call: every key from every resource, each carrying the given value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UntagBatch {
    /// At most `limits.resources_per_call` ids.
    pub resource_ids: Vec<String>,
    /// Key to the value it carries on each of these resources (the value this binding
    /// applied); at most `limits.keys_per_untag_call` keys.
    pub tags: Tags,
}

/// What happens to one key on one resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyDecision {
    /// Declared and already carried with the declared value.
    Keep,
    /// Declared and missing (`from: None`) or carried with another value: written.
    Apply {
        /// The value before, if any.
        from: Option<String>,
        /// The declared value.
        to: String,
    },
    /// Owned, no longer declared, unclaimed, unchanged: removed.
    Prune {
        /// The value it carries (the value this binding applied).
        value: String,
    },
    /// Owned, but not to be pruned (changed out of band, claimed by another binding, or
    /// already gone): ownership is released and the tag stays as it is. Also a declared key
    /// carried with the declared value while the record holds another one (changed out of
    /// band after this binding wrote it): nothing is written and the stale record goes.
    Release,
    /// Declared, but an older binding declares another value: not written.
    Conflict {
        /// The winning binding, `namespace/name`.
        winner: String,
        /// The winner's value.
        value: String,
    },
}

/// The outcome of planning one binding.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// TagResources calls, in order.
    pub tag_batches: Vec<TagBatch>,
    /// UntagResources calls, in order.
    pub untag_batches: Vec<UntagBatch>,
    /// Decision per resource and key (only keys that are declared or owned).
    pub decisions: BTreeMap<String, BTreeMap<String, KeyDecision>>,
    /// Resources that cannot take their declared tags without exceeding
    /// `limits.tags_per_resource`: left out of the tag batches, with why. Their `Apply`
    /// decisions stay in `decisions` (not written, so that they can be reported) and their
    /// prunes still happen.
    pub blocked: BTreeMap<String, String>,
}

/// Which writes of a plan the cloud confirmed, by (resource id, key).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Confirmed {
    /// Keys written by a confirmed TagResources call.
    pub written: BTreeSet<(String, String)>,
    /// Keys removed by a confirmed UntagResources call.
    pub pruned: BTreeSet<(String, String)>,
}

/// A rule of the provider that the spec breaks (reported as `InvalidSpec`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecViolation {
    /// The field, e.g. `spec.tags["acs:env"]`.
    pub field: String,
    /// The rule, e.g. `key "acs:env" starts with the reserved prefix "acs:"`.
    pub rule: String,
}

impl fmt::Display for SpecViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.rule)
    }
}

mod batch;
pub mod bound;
pub mod claims;
pub mod drift;
mod engine;
pub mod intent;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;
mod validate;

pub use claims::{Claims, NO_CLAIMS};
pub use drift::{Drift, drift};
pub use engine::plan;
pub use validate::{validate, validate_named};
