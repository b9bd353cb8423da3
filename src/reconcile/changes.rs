//! What a pass changed in the cloud, by key, in the words of a log line or an event: `rewrote
//! owner (x -> team-web) on 285bb...` (issue 25, item 0).

use std::collections::BTreeMap;

use crate::plan::{Confirmed, KeyDecision, Plan};
use crate::tags::Ownership;

/// How many resource ids a description names before it counts the rest.
pub const NAMED_RESOURCES: usize = 5;

/// What was done to a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeAction {
    /// Written where it was missing, or carried another value that this binding never wrote.
    Applied,
    /// Written again: it carried another value, and this binding had written the declared one
    /// before (drift corrected).
    Rewrote,
    /// Removed: no longer declared.
    Pruned,
}

impl ChangeAction {
    /// The verb of a description.
    pub fn verb(self) -> &'static str {
        match self {
            ChangeAction::Applied => "applied",
            ChangeAction::Rewrote => "rewrote",
            ChangeAction::Pruned => "removed",
        }
    }

    /// The write call that made the change, as the log line names it.
    pub fn call(self) -> &'static str {
        match self {
            ChangeAction::Applied | ChangeAction::Rewrote => "TagResources",
            ChangeAction::Pruned => "UntagResources",
        }
    }
}

/// One key changed the same way on some resources, confirmed by the cloud.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyChange {
    /// What was done.
    pub action: ChangeAction,
    /// The key.
    pub key: String,
    /// The value before (none for a key that was missing).
    pub from: Option<String>,
    /// The value after (none for a removed key).
    pub to: Option<String>,
    /// The resources, sorted.
    pub resources: Vec<String>,
}

impl KeyChange {
    /// `rewrote owner (x -> team-web) on 285bb, 3c1d`, naming at most [`NAMED_RESOURCES`]
    /// resources and counting the rest.
    pub fn describe(&self) -> String {
        let what = match (&self.from, &self.to) {
            (Some(from), Some(to)) => format!("{} ({from} -> {to})", self.key),
            (None, Some(to)) => format!("{}={to}", self.key),
            (Some(from), None) => format!("{}={from}", self.key),
            (None, None) => self.key.clone(),
        };
        let preposition = match self.action {
            ChangeAction::Pruned => "from",
            _ => "on",
        };
        format!(
            "{} {what} {preposition} {}",
            self.action.verb(),
            name_resources(&self.resources)
        )
    }
}

/// `a, b, c, d, e and 3 more`.
pub fn name_resources(ids: &[String]) -> String {
    let named = ids
        .iter()
        .take(NAMED_RESOURCES)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    match ids.len().saturating_sub(NAMED_RESOURCES) {
        0 => named,
        more => format!("{named} and {more} more"),
    }
}

/// The confirmed writes of `plan`, grouped by action, key and values.
pub fn changes_of(plan: &Plan, owned: &Ownership, confirmed: &Confirmed) -> Vec<KeyChange> {
    type Group = (ChangeAction, String, Option<String>, Option<String>);
    let mut groups: BTreeMap<Group, Vec<String>> = BTreeMap::new();
    let decision = |id: &str, key: &str| plan.decisions.get(id).and_then(|keys| keys.get(key));
    for (id, key) in &confirmed.written {
        if let Some(KeyDecision::Apply { from, to }) = decision(id, key) {
            let rewrote = from.is_some() && owned.on(id).and_then(|o| o.get(key)) == Some(to);
            let action = if rewrote {
                ChangeAction::Rewrote
            } else {
                ChangeAction::Applied
            };
            groups
                .entry((action, key.clone(), from.clone(), Some(to.clone())))
                .or_default()
                .push(id.clone());
        }
    }
    for (id, key) in &confirmed.pruned {
        let value = match decision(id, key) {
            Some(KeyDecision::Prune { value }) => Some(value.clone()),
            _ => None,
        };
        groups
            .entry((ChangeAction::Pruned, key.clone(), value, None))
            .or_default()
            .push(id.clone());
    }
    groups
        .into_iter()
        .map(|((action, key, from, to), mut resources)| {
            resources.sort();
            KeyChange {
                action,
                key,
                from,
                to,
                resources,
            }
        })
        .collect()
}

/// One sentence for an event: the changes of `action`, `; `-separated.
pub fn describe_all(changes: &[KeyChange], action: ChangeAction) -> Option<String> {
    let parts: Vec<String> = changes
        .iter()
        .filter(|change| change.action == action)
        .map(KeyChange::describe)
        .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("r{i}")).collect()
    }

    #[test]
    fn a_description_names_the_key_the_values_and_five_resources() {
        let change = KeyChange {
            action: ChangeAction::Rewrote,
            key: "owner".into(),
            from: Some("x".into()),
            to: Some("team-web".into()),
            resources: vec!["285bb759342649a1b70c2093a772e087".into()],
        };
        assert_eq!(
            change.describe(),
            "rewrote owner (x -> team-web) on 285bb759342649a1b70c2093a772e087"
        );
        let applied = KeyChange {
            action: ChangeAction::Applied,
            key: "env".into(),
            from: None,
            to: Some("prod".into()),
            resources: ids(8),
        };
        assert_eq!(
            applied.describe(),
            "applied env=prod on r0, r1, r2, r3, r4 and 3 more"
        );
        let pruned = KeyChange {
            action: ChangeAction::Pruned,
            key: "team".into(),
            from: Some("web".into()),
            to: None,
            resources: ids(2),
        };
        assert_eq!(pruned.describe(), "removed team=web from r0, r1");
    }
}
