//! Unit tests of the plan engine: one behaviour per test, named after it. This module holds
//! the fixtures; the tests sit in one submodule per topic.

mod batches;
mod decisions;
mod intent;
mod ownership;
mod validation;

use std::collections::BTreeSet;

use super::*;
use crate::tags::{Limits, Ownership, Tags, TagsByResource};

use crate::tags::tags;

fn binding(namespace: &str, name: &str, created: Option<i64>) -> BindingId {
    BindingId {
        created,
        namespace: namespace.to_string(),
        name: name.to_string(),
    }
}

fn numbered(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}{i:03}")).collect()
}

struct Rival {
    binding: BindingId,
    resource_ids: BTreeSet<String>,
    tags: Tags,
}

/// One planning situation, built like prose: `Case::new().desired(..).resources(..)`.
struct Case {
    binding: BindingId,
    desired: Tags,
    resource_ids: Vec<String>,
    owned: Ownership,
    observed: TagsByResource,
    rivals: Vec<Rival>,
    limits: Limits,
}

impl Case {
    fn new() -> Self {
        Case {
            binding: binding("team-web", "web", Some(100)),
            desired: Tags::new(),
            resource_ids: Vec::new(),
            owned: Ownership::default(),
            observed: TagsByResource::new(),
            rivals: Vec::new(),
            limits: Limits::alibaba(),
        }
    }

    fn binding(mut self, binding: BindingId) -> Self {
        self.binding = binding;
        self
    }

    fn desired(mut self, pairs: &[(&str, &str)]) -> Self {
        self.desired = tags(pairs);
        self
    }

    fn resources(mut self, ids: &[&str]) -> Self {
        self.resource_ids = ids.iter().map(ToString::to_string).collect();
        self
    }

    fn observed(mut self, id: &str, pairs: &[(&str, &str)]) -> Self {
        self.observed.insert(id.to_string(), tags(pairs));
        self
    }

    /// Adds `count` foreign tags (`f000=x`, ...) to what a resource carries.
    fn carrying(mut self, id: &str, count: usize) -> Self {
        let foreign = numbered("f", count)
            .into_iter()
            .map(|key| (key, "x".to_string()));
        self.observed
            .entry(id.to_string())
            .or_default()
            .extend(foreign);
        self
    }

    fn owned(mut self, id: &str, pairs: &[(&str, &str)]) -> Self {
        self.owned.set(id, tags(pairs));
        self
    }

    fn rival(mut self, binding: BindingId, ids: &[&str], pairs: &[(&str, &str)]) -> Self {
        self.rivals.push(Rival {
            binding,
            resource_ids: ids.iter().map(ToString::to_string).collect(),
            tags: tags(pairs),
        });
        self
    }

    fn limits(mut self, change: impl FnOnce(&mut Limits)) -> Self {
        change(&mut self.limits);
        self
    }

    fn plan(&self) -> Plan {
        let claims: Vec<Claim<'_>> = self
            .rivals
            .iter()
            .map(|rival| Claim {
                binding: &rival.binding,
                resource_ids: &rival.resource_ids,
                tags: &rival.tags,
            })
            .collect();
        plan(&PlanInput {
            binding: &self.binding,
            desired: &self.desired,
            resource_ids: &self.resource_ids,
            owned: &self.owned,
            observed: &self.observed,
            claims: &crate::plan::Claims::new(claims),
            limits: &self.limits,
        })
    }
}

fn apply(from: Option<&str>, to: &str) -> KeyDecision {
    KeyDecision::Apply {
        from: from.map(ToString::to_string),
        to: to.to_string(),
    }
}

fn prune(value: &str) -> KeyDecision {
    KeyDecision::Prune {
        value: value.to_string(),
    }
}

fn tag_batch(ids: &[&str], pairs: &[(&str, &str)]) -> TagBatch {
    TagBatch {
        resource_ids: ids.iter().map(ToString::to_string).collect(),
        tags: tags(pairs),
    }
}

fn untag_batch(ids: &[&str], pairs: &[(&str, &str)]) -> UntagBatch {
    UntagBatch {
        resource_ids: ids.iter().map(ToString::to_string).collect(),
        tags: tags(pairs),
    }
}

fn confirmed(written: &[(&str, &str)], pruned: &[(&str, &str)]) -> Confirmed {
    let pairs = |items: &[(&str, &str)]| {
        items
            .iter()
            .map(|(id, key)| (id.to_string(), key.to_string()))
            .collect()
    };
    Confirmed {
        written: pairs(written),
        pruned: pairs(pruned),
    }
}
