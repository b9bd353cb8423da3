//! What `plan` and `apply` print: text that reads like Terraform's plan, or JSON.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::api::{ConflictEntry, DriftCounts, DriftSample, ResourceFailure, SelectedResources};
use crate::plan::{KeyDecision, Plan};

mod text;

pub use text::{render_compliance, render_text};

/// The version of the JSON report's layout (`-o json`): a field's meaning never changes
/// within one version; new fields may appear.
pub const FORMAT_VERSION: u32 = 1;

/// The whole run.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// `plan` or `apply`.
    pub command: &'static str,
    /// The counts a person or a CI job reads first (filled by [`Report::finish`]).
    pub summary: Summary,
    /// Every failure once, grouped per provider (filled by [`Report::finish`]).
    pub errors: Vec<ErrorEntry>,
    /// One entry per declared binding, in precedence order.
    pub bindings: Vec<BindingReport>,
    /// Bindings in the state file that the files no longer declare.
    pub removed: Vec<RemovedReport>,
    /// Where the embedded cloud keeps its state, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedded_cloud: Option<String>,
    /// The TagPolicies of the files: their bindings and resources, counted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<super::policy::PolicyReport>,
    /// Every binding that breaks a TagPolicy.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policy_violations: Vec<super::policy::ViolationReport>,
}

/// The counts of a run: resources and tags, not (tag, resource) pairs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Bindings in the files.
    pub bindings: usize,
    /// Of them, Ready (after `apply`; after `plan`, those whose plan is complete).
    pub ready: usize,
    /// Of them, could not be read, planned or written (in full).
    pub failed: usize,
    /// Distinct resources with a tag to add, change or prune (`plan`), or written (`apply`).
    pub resources: usize,
    /// Tags to add (or added): one per key and resource.
    pub add: usize,
    /// Tags whose value changes.
    pub change: usize,
    /// Tags removed: of bindings' removed keys, and of bindings that left the files
    /// (`--prune-removed`).
    pub prune: usize,
    /// Write calls planned (`plan`) or made (`apply`).
    pub write_calls: usize,
    /// Bindings in the state file that the files no longer declare.
    pub removed_bindings: usize,
}

/// One failure, reported once: a provider-wide error with the bindings it stopped, or a
/// resource's failure with the bindings it concerns.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorEntry {
    /// The provider whose calls failed (empty for an input error).
    pub provider: String,
    /// Ready reason (`CredentialsInvalid`, `ProviderError`, ...) or the cloud's failure
    /// category for a resource (`NotFound`, `QuotaExceeded`, ...).
    pub reason: String,
    /// What went wrong.
    pub message: String,
    /// The bindings concerned (`namespace/name`).
    pub bindings: Vec<String>,
    /// The resources concerned (empty for a provider-wide error).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<String>,
}

/// One binding.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BindingReport {
    /// `namespace/name`.
    pub binding: String,
    /// Provider name.
    pub provider: String,
    /// Resource type.
    pub resource_type: String,
    /// `spec.suspend`.
    pub suspended: bool,
    /// `spec.mode: Observe`: nothing is written; the changes are the drift.
    pub observe_only: bool,
    /// Changes, grouped by key and values.
    pub changes: Vec<Change>,
    /// Write calls planned (plan) or made (apply).
    pub write_calls: usize,
    /// Ready condition status.
    pub ready: bool,
    /// Ready condition reason.
    pub reason: String,
    /// Ready condition message.
    pub message: String,
    /// Resources declared.
    pub total: u32,
    /// Resources carrying every declared tag.
    pub synced: u32,
    /// Failed resources.
    pub failures: Vec<ResourceFailure>,
    /// Keys yielded to older bindings.
    pub conflicts: Vec<ConflictEntry>,
    /// Observe bindings: what the resources lack or carry beyond the declared tags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftCounts>,
    /// Observe bindings: the first drifting keys (at most 10).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub drift_samples: Vec<DriftSample>,
    /// Selector bindings: `spec.resourceSelector.matchTags`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub match_tags: Option<crate::tags::Tags>,
    /// Selector bindings: what the selector matched (count and the first ids).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selected: Option<SelectedResources>,
    /// Breaches of `Warn` TagPolicies: the binding proceeded.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policy_warnings: Vec<String>,
    /// What a person should know about this binding's plan that is not an error.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// What happens to one key, on how many resources.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// `add`, `change`, `prune`, `release` or `conflict`.
    pub action: &'static str,
    /// Tag key.
    pub key: String,
    /// Value before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// Value after.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// The older binding that wins, for conflicts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub winner: Option<String>,
    /// Resources concerned.
    pub resources: Vec<String>,
    /// Where a declared value comes from when it is not `spec.tags` (`namespace team-web
    /// label team`, `TagProvider p defaultTags`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// A binding that left the files.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RemovedReport {
    /// `namespace/name`.
    pub binding: String,
    /// Provider name.
    pub provider: String,
    /// What happened: `kept`, `pruned`, `released` (record dropped, nothing left to remove),
    /// `orphaned`, or `failed`.
    pub action: &'static str,
    /// Changes made (pruned keys).
    pub changes: Vec<Change>,
    /// Write calls made.
    pub write_calls: usize,
    /// For people.
    pub message: String,
}

impl Report {
    /// Fills [`Report::summary`] and [`Report::errors`] from the bindings.
    pub fn finish(&mut self) {
        self.format_version = FORMAT_VERSION;
        self.summary = summarize(self);
        self.errors = errors_of(self);
    }

    /// The JSON document of a run that stopped on input errors, before any cloud call.
    pub fn input_errors(command: &'static str, errors: &[String]) -> Report {
        Report {
            format_version: FORMAT_VERSION,
            command,
            errors: errors
                .iter()
                .map(|message| ErrorEntry {
                    provider: String::new(),
                    reason: "InvalidInput".to_string(),
                    message: clean(message).into_owned(),
                    bindings: Vec::new(),
                    resources: Vec::new(),
                })
                .collect(),
            ..Report::default()
        }
    }
}

/// Distinct resources that `changes` name.
pub fn distinct_resources<'a>(changes: impl Iterator<Item = &'a Change>) -> usize {
    changes
        .flat_map(|change| change.resources.iter())
        .collect::<std::collections::BTreeSet<_>>()
        .len()
}

fn summarize(report: &Report) -> Summary {
    // NB: a suspended binding's and an Observe binding's changes are shown, but they are not
    // pending and never written.
    // NB: after `apply`, a failed resource's changes were not made: they are not counted.
    let applying = report.command == "apply";
    let failed_ids = |failures: &[ResourceFailure]| -> std::collections::BTreeSet<String> {
        if applying {
            failures.iter().map(|f| f.resource_id.clone()).collect()
        } else {
            std::collections::BTreeSet::new()
        }
    };
    let pending: Vec<(&str, &str, &Vec<Change>, std::collections::BTreeSet<String>)> = report
        .bindings
        .iter()
        .filter(|b| !b.suspended && !b.observe_only)
        .map(|b| {
            (
                b.provider.as_str(),
                b.resource_type.as_str(),
                &b.changes,
                failed_ids(&b.failures),
            )
        })
        .chain(report.removed.iter().map(|r| {
            (
                r.provider.as_str(),
                "",
                &r.changes,
                std::collections::BTreeSet::new(),
            )
        }))
        .collect();
    let count = |action: &str| -> usize {
        pending
            .iter()
            .flat_map(|(_, _, changes, failed)| {
                changes
                    .iter()
                    .filter(|c| c.action == action)
                    .flat_map(|c| c.resources.iter())
                    .filter(|id| !failed.contains(*id))
            })
            .count()
    };
    let mut resources = std::collections::BTreeSet::new();
    for (provider, resource_type, changes, failed) in &pending {
        for change in changes.iter().filter(|c| is_write(c)) {
            for resource in change.resources.iter().filter(|id| !failed.contains(*id)) {
                resources.insert((*provider, *resource_type, resource.as_str()));
            }
        }
    }
    Summary {
        bindings: report.bindings.len(),
        ready: report.bindings.iter().filter(|b| b.ready).count(),
        failed: report.bindings.iter().filter(|b| b.failed()).count(),
        resources: resources.len(),
        add: count("add"),
        change: count("change"),
        prune: count("prune"),
        write_calls: report.bindings.iter().map(|b| b.write_calls).sum::<usize>()
            + report.removed.iter().map(|r| r.write_calls).sum::<usize>(),
        removed_bindings: report.removed.len(),
    }
}

/// A binding stopped as a whole by its provider: its reason is the provider's, and its
/// message is the same for every binding of that provider.
fn provider_wide(binding: &BindingReport) -> bool {
    use crate::api::conditions::reason;
    binding.reason == reason::PROVIDER_ERROR || binding.reason == reason::CREDENTIALS_INVALID
}

/// Provider, reason and message: what makes two failures the same failure.
type ErrorKey = (String, String, String);

fn errors_of(report: &Report) -> Vec<ErrorEntry> {
    let mut grouped: BTreeMap<ErrorKey, (Vec<String>, Vec<String>)> = BTreeMap::new();
    for binding in &report.bindings {
        if provider_wide(binding)
            || binding.reason == crate::api::conditions::reason::TOO_MANY_RESOURCES
            || binding.reason == crate::api::conditions::reason::POLICY_VIOLATION
        {
            let entry = grouped
                .entry((
                    binding.provider.clone(),
                    binding.reason.clone(),
                    binding.message.clone(),
                ))
                .or_default();
            entry.0.push(binding.binding.clone());
            continue;
        }
        if binding.observe_only {
            continue;
        }
        for failure in &binding.failures {
            let entry = grouped
                .entry((
                    binding.provider.clone(),
                    failure.reason.clone(),
                    failure.message.clone(),
                ))
                .or_default();
            if !entry.0.contains(&binding.binding) {
                entry.0.push(binding.binding.clone());
            }
            if !entry.1.contains(&failure.resource_id) {
                entry.1.push(failure.resource_id.clone());
            }
        }
    }
    for removed in report.removed.iter().filter(|r| r.action == "failed") {
        let entry = grouped
            .entry((
                removed.provider.clone(),
                "PruneFailed".to_string(),
                removed.message.clone(),
            ))
            .or_default();
        entry.0.push(removed.binding.clone());
    }
    grouped
        .into_iter()
        .map(
            |((provider, reason, message), (bindings, resources))| ErrorEntry {
                provider,
                reason,
                message,
                bindings,
                resources,
            },
        )
        .collect()
}

impl BindingReport {
    /// True when the binding could not be planned or written: the cloud failed, refused the
    /// credentials, or failed some resources.
    pub fn failed(&self) -> bool {
        use crate::api::conditions::reason;
        // NB: an Observe binding's failures are findings (e.g. a resource whose tag quota
        // would block the declared tags): only a failed observation fails it.
        (!self.failures.is_empty() && !self.observe_only)
            || self.reason == reason::PROVIDER_ERROR
            || self.reason == reason::CREDENTIALS_INVALID
            || self.reason == reason::TOO_MANY_RESOURCES
            || self.reason == reason::POLICY_VIOLATION
    }
}

/// `text` made safe to print on a terminal: control characters (a carriage return or an
/// escape sequence could overwrite what was printed before) and invisible characters
/// (bidirectional overrides, zero-width and other format characters, separators but the
/// ASCII space: [`crate::tags::is_invisible`]) are shown escaped, as `\u{1b}` or `\u{200b}`.
/// Everything printed that came from the files or the cloud passes through here.
pub fn clean(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() || crate::tags::is_invisible(c);
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Action, key, from, to, winner: what makes two resources' changes the same change.
type ChangeKey = (
    &'static str,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// Groups a plan's decisions into changes a person can read.
pub fn changes_of(plan: &Plan) -> Vec<Change> {
    let mut grouped: BTreeMap<ChangeKey, Vec<String>> = BTreeMap::new();
    for (resource, keys) in &plan.decisions {
        for (key, decision) in keys {
            let group = match decision {
                KeyDecision::Keep => continue,
                KeyDecision::Apply { from: None, to } => {
                    ("add", key.clone(), None, Some(to.clone()), None)
                }
                KeyDecision::Apply {
                    from: Some(from),
                    to,
                } => (
                    "change",
                    key.clone(),
                    Some(from.clone()),
                    Some(to.clone()),
                    None,
                ),
                KeyDecision::Prune { value } => {
                    ("prune", key.clone(), Some(value.clone()), None, None)
                }
                KeyDecision::Release => ("release", key.clone(), None, None, None),
                KeyDecision::Conflict { winner, value } => (
                    "conflict",
                    key.clone(),
                    None,
                    Some(value.clone()),
                    Some(winner.clone()),
                ),
            };
            grouped.entry(group).or_default().push(resource.clone());
        }
    }
    let mut changes: Vec<Change> = grouped
        .into_iter()
        .map(|((action, key, from, to, winner), resources)| Change {
            action,
            key,
            from,
            to,
            winner,
            resources,
            source: None,
        })
        .collect();
    changes.sort_by_key(|change| (action_order(change.action), change.key.clone()));
    changes
}

fn action_order(action: &str) -> u8 {
    match action {
        "add" => 0,
        "change" => 1,
        "prune" => 2,
        "release" => 3,
        _ => 4,
    }
}

/// True when the change writes to the cloud.
pub fn is_write(change: &Change) -> bool {
    matches!(change.action, "add" | "change" | "prune")
}

#[cfg(test)]
mod tests {
    use super::text::summary;
    use super::*;

    #[test]
    fn control_characters_and_bidi_overrides_are_escaped() {
        assert!(matches!(clean("team-web/env=prod"), Cow::Borrowed(_)));
        assert_eq!(clean("a\rb\u{1b}[2Kc\n"), "a\\u{d}b\\u{1b}[2Kc\\u{a}");
        assert_eq!(clean("x\u{202e}y\u{85}"), "x\\u{202e}y\\u{85}");
        assert_eq!(clean("环境"), "环境");
        assert_eq!(
            clean("en\u{200b}v \u{ad}\u{2060}\u{feff}\u{200e}\u{3164}\u{e0041}\u{2028}\u{2029}"),
            "en\\u{200b}v \\u{ad}\\u{2060}\\u{feff}\\u{200e}\\u{3164}\\u{e0041}\\u{2028}\\u{2029}"
        );
    }

    #[test]
    fn a_plan_with_a_failed_binding_is_not_no_changes() {
        let mut report = Report {
            command: "plan",
            bindings: vec![BindingReport {
                reason: crate::api::conditions::reason::PROVIDER_ERROR.to_string(),
                ..BindingReport::default()
            }],
            ..Report::default()
        };
        report.finish();
        assert!(summary(&report).starts_with("Plan incomplete: 1 binding(s)"));
        report.bindings[0].reason = "Ready".to_string();
        report.finish();
        assert!(summary(&report).starts_with("No changes"));
    }
}
