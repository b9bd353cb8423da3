//! What `plan` and `apply` print: text that reads like Terraform's plan, or JSON.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::api::{ConflictEntry, DriftCounts, DriftSample, ResourceFailure, SelectedResources};
use crate::plan::{KeyDecision, Plan};

/// The whole run.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `plan` or `apply`.
    pub command: &'static str,
    /// One entry per declared binding, in precedence order.
    pub bindings: Vec<BindingReport>,
    /// Bindings in the state file that the files no longer declare.
    pub removed: Vec<RemovedReport>,
    /// Where the embedded cloud keeps its state, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedded_cloud: Option<String>,
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

fn on(resources: &[String]) -> String {
    match resources {
        [one] => format!("on {}", clean(one)),
        many => format!("on {} resources", many.len()),
    }
}

fn render_change(change: &Change) -> String {
    let to = clean(change.to.as_deref().unwrap_or_default());
    let from = clean(change.from.as_deref().unwrap_or_default());
    let key = clean(&change.key);
    let target = on(&change.resources);
    let source = change
        .source
        .as_deref()
        .map(|source| format!(" ({})", clean(source)))
        .unwrap_or_default();
    match change.action {
        "add" => format!("+ {key}={to}{source} {target}"),
        "change" => format!("~ {key}: {from} -> {to}{source} {target}"),
        "prune" => format!("- {key}={from} (pruned) {target}"),
        "release" => format!(". {key} (no longer owned; left as it is) {target}"),
        _ => format!(
            "! {key}: conflict, {} declares {to} and wins {target}",
            clean(change.winner.as_deref().unwrap_or_default())
        ),
    }
}

/// `selector team=web,env=prod matches 3 resources: a, b, c`.
fn render_selected(match_tags: &crate::tags::Tags, selected: Option<&SelectedResources>) -> String {
    let selector: Vec<String> = match_tags
        .iter()
        .map(|(key, value)| format!("{}={}", clean(key), clean(value)))
        .collect();
    let selector = selector.join(",");
    let Some(selected) = selected else {
        return format!("selector {selector}: not resolved");
    };
    let count = selected.count;
    let plural = if count == 1 { "" } else { "s" };
    if count == 0 {
        return format!("selector {selector} matches no resource");
    }
    let ids: Vec<Cow<'_, str>> = selected.first_ids.iter().map(|id| clean(id)).collect();
    let more = (count as usize).saturating_sub(selected.first_ids.len());
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    format!(
        "selector {selector} matches {count} resource{plural}: {}{more}",
        ids.join(", ")
    )
}

/// The text form of a report.
pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    let applying = report.command == "apply";
    for binding in &report.bindings {
        let _ = writeln!(
            out,
            "{} ({} {}, {} resource{})",
            clean(&binding.binding),
            clean(&binding.provider),
            clean(&binding.resource_type),
            binding.total,
            if binding.total == 1 { "" } else { "s" }
        );
        if binding.suspended {
            let _ = writeln!(
                out,
                "  suspended: no cloud writes until spec.suspend is false"
            );
        }
        if binding.observe_only {
            let _ = writeln!(
                out,
                "  observe only: never writes; the changes below are the drift"
            );
        }
        if let Some(match_tags) = &binding.match_tags {
            let _ = writeln!(
                out,
                "  {}",
                render_selected(match_tags, binding.selected.as_ref())
            );
        }
        if binding.changes.is_empty() {
            let _ = writeln!(out, "  no changes");
        }
        for change in &binding.changes {
            let _ = writeln!(out, "  {}", render_change(change));
        }
        if applying
            || !binding.failures.is_empty()
            || binding.reason != crate::api::conditions::reason::PROGRESSING
        {
            let state = if binding.ready { "Ready" } else { "NotReady" };
            let _ = writeln!(
                out,
                "  => {state} ({}): {}",
                clean(&binding.reason),
                clean(&binding.message)
            );
        }
        for failure in &binding.failures {
            let _ = writeln!(
                out,
                "     {}: {}: {}",
                clean(&failure.resource_id),
                clean(&failure.reason),
                clean(&failure.message)
            );
        }
    }
    for removed in &report.removed {
        let _ = writeln!(
            out,
            "{} ({}): no longer declared",
            clean(&removed.binding),
            clean(&removed.provider)
        );
        for change in &removed.changes {
            let _ = writeln!(out, "  {}", render_change(change));
        }
        let _ = writeln!(out, "  => {}", clean(&removed.message));
    }
    out.push_str(&summary(report));
    out.push('\n');
    if let Some(path) = &report.embedded_cloud {
        let _ = writeln!(out, "Embedded cloud state: {}", clean(path));
    }
    out
}

fn summary(report: &Report) -> String {
    let main = main_summary(report);
    let observed: Vec<&DriftCounts> = report
        .bindings
        .iter()
        .filter(|b| b.observe_only)
        .filter_map(|b| b.drift.as_ref())
        .collect();
    if observed.is_empty() {
        return main;
    }
    let drifted = observed.iter().filter(|d| d.resources > 0).count();
    let resources: u32 = observed.iter().map(|d| d.resources).sum();
    format!(
        "{main}\nObserve only: {drifted} of {} binding(s) drifted ({resources} resource(s)); \
         nothing written for them.",
        observed.len()
    )
}

fn main_summary(report: &Report) -> String {
    let calls: usize = report.bindings.iter().map(|b| b.write_calls).sum::<usize>()
        + report.removed.iter().map(|r| r.write_calls).sum::<usize>();
    let failed = report.bindings.iter().filter(|b| b.failed()).count();
    // NB: a suspended binding's changes are shown, but they are not pending.
    let count = |action: &str| -> usize {
        report
            .bindings
            .iter()
            .filter(|b| !b.suspended && !b.observe_only)
            .flat_map(|b| &b.changes)
            .filter(|c| c.action == action)
            .map(|c| c.resources.len())
            .sum()
    };
    let ready = report.bindings.iter().filter(|b| b.ready).count();
    let total = report.bindings.len();
    if report.command == "plan" {
        let (add, change, prune) = (count("add"), count("change"), count("prune"));
        if failed > 0 {
            format!(
                "Plan incomplete: {failed} binding(s) could not be read or planned (see above); \
                 for the others: {add} to add, {change} to change, {prune} to prune, in \
                 {calls} write call(s)."
            )
        } else if add + change + prune == 0 && report.bindings.iter().any(|b| b.observe_only) {
            // NB: an Observe binding's drift is reported below, not as pending changes.
            "No changes to write.".to_string()
        } else if add + change + prune == 0 {
            "No changes: the cloud matches the manifests.".to_string()
        } else {
            format!(
                "Plan: {add} to add, {change} to change, {prune} to prune, in {calls} write call(s)."
            )
        }
    } else {
        format!("Apply: {calls} write call(s); {ready} of {total} binding(s) Ready.")
    }
}

#[cfg(test)]
mod tests {
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
        assert!(summary(&report).starts_with("Plan incomplete: 1 binding(s)"));
        report.bindings[0].reason = "Ready".to_string();
        assert!(summary(&report).starts_with("No changes"));
    }
}
