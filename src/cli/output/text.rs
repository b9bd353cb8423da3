//! The text report: a plan that reads like Terraform's, the outcome of each binding, the
//! policies' compliance, errors and a summary line, styled when the terminal takes it.

use std::borrow::Cow;
use std::fmt::Write;

use super::{BindingReport, Change, ErrorEntry, Report, Summary, clean, provider_wide};
use crate::api::{DriftCounts, SelectedResources};

/// Terminal styles. Text is rendered with them always; `anstream` strips them where colour
/// is off (standard output not a terminal, `NO_COLOR`, `--no-color`).
mod style {
    use anstyle::{AnsiColor, Style};
    pub const ADD: Style = AnsiColor::Green.on_default();
    pub const CHANGE: Style = AnsiColor::Yellow.on_default();
    pub const PRUNE: Style = AnsiColor::Red.on_default();
    pub const BOLD: Style = Style::new().bold();
    pub const ERROR: Style = AnsiColor::Red.on_default().bold();
}

/// The most ids a line lists; past it, a count.
pub(super) const IDS_LISTED: usize = 5;

pub(super) fn on(resources: &[String]) -> String {
    if resources.len() <= IDS_LISTED {
        let ids: Vec<Cow<'_, str>> = resources.iter().map(|id| clean(id)).collect();
        format!("on {}", ids.join(", "))
    } else {
        format!("on {} resources", resources.len())
    }
}

/// `a, b and c`, or the first ten and `and N more`.
pub(super) fn some_of(items: &[String]) -> String {
    const LISTED: usize = 10;
    let shown: Vec<Cow<'_, str>> = items.iter().take(LISTED).map(|item| clean(item)).collect();
    let more = items.len().saturating_sub(LISTED);
    if more > 0 {
        format!("{} and {more} more", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

pub(super) fn styled(style: anstyle::Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

pub(super) fn render_change(change: &Change) -> String {
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
        "add" => format!("{} {key}={to}{source} {target}", styled(style::ADD, "+")),
        "change" => format!(
            "{} {key}: {from} -> {to}{source} {target}",
            styled(style::CHANGE, "~")
        ),
        "prune" => format!(
            "{} {key}={from} (pruned) {target}",
            styled(style::PRUNE, "-")
        ),
        "release" => format!(". {key} (no longer owned; left as it is) {target}"),
        _ => format!(
            "{} {key}: conflict, {} declares {to} and wins {target}",
            styled(style::CHANGE, "!"),
            clean(change.winner.as_deref().unwrap_or_default())
        ),
    }
}

/// `selector team=web,env=prod matches 3 resources: a, b, c`.
pub(super) fn render_selected(
    match_tags: &crate::tags::Tags,
    selected: Option<&SelectedResources>,
) -> String {
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

/// Why a binding shows no change: it could not be planned, or nothing differs.
pub(super) fn no_change_line(binding: &BindingReport) -> &'static str {
    use crate::api::conditions::reason;
    if provider_wide(binding) {
        "not planned (read failed)"
    } else if binding.reason == reason::TOO_MANY_RESOURCES {
        "not planned (too many resources)"
    } else {
        "no changes"
    }
}

/// The `=>` line's message: a provider-wide error and resource failures are told once, under
/// "Errors", so the line only points there.
pub(super) fn outcome_message(binding: &BindingReport) -> String {
    if provider_wide(binding) {
        return format!(
            "see provider {} under Errors below",
            clean(&binding.provider)
        );
    }
    if !binding.failures.is_empty() && !binding.observe_only {
        return format!(
            "{} of {} resource(s) failed (see Errors below)",
            binding.failures.len(),
            binding.total
        );
    }
    clean(&binding.message).into_owned()
}

/// The text form of a report.
pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    let applying = report.command == "apply";
    for binding in &report.bindings {
        let _ = writeln!(
            out,
            "{} ({} {}, {} resource{})",
            styled(style::BOLD, &clean(&binding.binding)),
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
        for warning in &binding.policy_warnings {
            let _ = writeln!(
                out,
                "  {}: {}",
                styled(style::ERROR, "policy warning"),
                clean(warning)
            );
        }
        if binding.changes.is_empty() {
            let _ = writeln!(out, "  {}", no_change_line(binding));
        }
        for change in &binding.changes {
            let _ = writeln!(out, "  {}", render_change(change));
        }
        for note in &binding.notes {
            let _ = writeln!(out, "  note: {}", clean(note));
        }
        if applying
            || !binding.failures.is_empty()
            || binding.reason != crate::api::conditions::reason::PROGRESSING
        {
            let state = if binding.ready {
                styled(style::ADD, "Ready")
            } else {
                styled(style::ERROR, "NotReady")
            };
            let _ = writeln!(
                out,
                "  => {state} ({}): {}",
                clean(&binding.reason),
                outcome_message(binding)
            );
        }
    }
    let previewing = report.command == "plan";
    for removed in &report.removed {
        let _ = writeln!(
            out,
            "{} ({}): no longer declared",
            styled(style::BOLD, &clean(&removed.binding)),
            clean(&removed.provider)
        );
        for change in &removed.changes {
            let _ = writeln!(out, "  {}", render_change(change));
        }
        if previewing && removed.action == "kept" {
            let _ = writeln!(
                out,
                "  => its tags are kept; `plan --prune-removed` shows what `apply --prune-removed` \
                 would remove"
            );
        } else {
            let _ = writeln!(out, "  => {}", clean(&removed.message));
        }
    }
    render_policies(&mut out, &report.policies);
    render_errors(&mut out, &report.errors);
    out.push_str(&summary(report));
    out.push('\n');
    if let Some(path) = &report.embedded_cloud {
        let _ = writeln!(out, "Embedded cloud state: {}", clean(path));
    }
    out
}

/// `plan --policy-report` as text: each policy's figures, then every binding that breaks one.
pub fn render_compliance(compliance: &crate::cli::policy::ComplianceReport) -> String {
    let mut out = String::new();
    if compliance.policies.is_empty() {
        out.push_str("No TagPolicy in the files.\n");
    }
    render_policies(&mut out, &compliance.policies);
    for violation in &compliance.violations {
        let _ = writeln!(
            out,
            "{}: TagPolicy {} ({}): {}",
            clean(&violation.binding),
            clean(&violation.policy),
            violation.enforcement,
            clean(&violation.message)
        );
    }
    out
}

/// Each TagPolicy's counts and its noncompliant resources (at most 20 each).
pub(super) fn render_policies(out: &mut String, policies: &[crate::cli::policy::PolicyReport]) {
    for policy in policies {
        let _ = writeln!(
            out,
            "{} ({}): bindings {} evaluated, {} violating; resources {} evaluated, {} compliant, {} noncompliant",
            styled(style::BOLD, &format!("TagPolicy {}", clean(&policy.policy))),
            policy.enforcement,
            policy.bindings.evaluated,
            policy.bindings.violating,
            policy.resources.evaluated,
            policy.resources.compliant,
            policy.resources.noncompliant,
        );
        for resource in &policy.noncompliant {
            let mut what = Vec::new();
            if !resource.missing.is_empty() {
                what.push(format!("missing {}", clean(&resource.missing.join(", "))));
            }
            for (key, value) in &resource.invalid {
                what.push(format!("invalid {}={}", clean(key), clean(value)));
            }
            let _ = writeln!(
                out,
                "  ! {} ({} {}): {}",
                clean(&resource.resource_id),
                clean(&resource.provider),
                clean(&resource.resource_type),
                what.join("; ")
            );
        }
        let more = policy.resources.noncompliant as usize - policy.noncompliant.len();
        if more > 0 {
            let _ = writeln!(out, "  and {more} more noncompliant resource(s)");
        }
        for error in &policy.scan_errors {
            let _ = writeln!(out, "  scan failed: {}", clean(error));
        }
    }
}

/// Every failure once, grouped per provider, at most ten per provider.
pub(super) fn render_errors(out: &mut String, errors: &[ErrorEntry]) {
    const LISTED: usize = 10;
    if errors.is_empty() {
        return;
    }
    let _ = writeln!(out, "{}", styled(style::ERROR, "Errors:"));
    let mut providers: Vec<&str> = errors.iter().map(|e| e.provider.as_str()).collect();
    providers.dedup();
    for provider in providers {
        let of_provider: Vec<&ErrorEntry> =
            errors.iter().filter(|e| e.provider == provider).collect();
        let _ = writeln!(out, "  provider {}:", clean(provider));
        for error in of_provider.iter().take(LISTED) {
            let whom = if error.resources.is_empty() {
                format!("bindings: {}", some_of(&error.bindings))
            } else {
                format!(
                    "on {} (bindings: {})",
                    some_of(&error.resources),
                    some_of(&error.bindings)
                )
            };
            let _ = writeln!(
                out,
                "    {}: {} ({whom})",
                clean(&error.reason),
                clean(&error.message)
            );
        }
        let more = of_provider.len().saturating_sub(LISTED);
        if more > 0 {
            let _ = writeln!(out, "    and {more} more (all of them in `-o json`)");
        }
    }
}

pub(super) fn summary(report: &Report) -> String {
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

pub(super) fn main_summary(report: &Report) -> String {
    let Summary {
        bindings,
        ready,
        failed,
        resources,
        add,
        change,
        prune,
        ..
    } = report.summary;
    let tags = format!("{add} tag(s) to add, {change} to change, {prune} to prune");
    if report.command == "plan" {
        if failed > 0 {
            format!(
                "Plan incomplete: {failed} binding(s) could not be read or planned (see above); \
                 for the others: {resources} resource(s) to update: {tags}."
            )
        } else if add + change + prune == 0 && report.bindings.iter().any(|b| b.observe_only) {
            // NB: an Observe binding's drift is reported below, not as pending changes.
            "No changes to write.".to_string()
        } else if add + change + prune == 0 {
            "No changes: the cloud matches the manifests.".to_string()
        } else {
            format!("Plan: {resources} resource(s) to update: {tags}.")
        }
    } else if add + change + prune == 0 {
        format!("Apply: nothing changed; {ready} of {bindings} binding(s) Ready.")
    } else {
        format!(
            "Apply: {resources} resource(s) updated: {add} tag(s) added, {change} changed, \
             {prune} pruned; {ready} of {bindings} binding(s) Ready."
        )
    }
}
