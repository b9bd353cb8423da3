//! Tag policies (issue 24): which bindings and resources a `TagPolicy` governs, and whether
//! their tags keep its rules.
//!
//! Pure: no I/O. Both hosts compile the policies they know ([`compile`]), judge each
//! binding's declared tags (rendered, issue 23) before its pass ([`judge_binding`]), and
//! count the resources the rounds observed ([`Tally`]). A binding must declare every
//! required key itself; a resource may carry it from any tool (foreign tags count).

pub mod admission;
pub mod ledger;
mod re2;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;
use kube::core::{Selector, SelectorExt};
use regex::Regex;

use crate::api::{Enforcement, MAX_NONCOMPLIANT_SAMPLES, NoncompliantResource, TagPolicy};
use crate::tags::Tags;

/// A policy ready to evaluate: its patterns compiled, its selector parsed.
#[derive(Clone, Debug)]
pub struct Policy {
    /// The TagPolicy's name.
    pub name: String,
    /// Deny or Warn.
    pub enforcement: Enforcement,
    /// The TagPolicy's `metadata.generation`: its spec's version.
    pub generation: Option<i64>,
    providers: BTreeSet<String>,
    resource_types: BTreeSet<String>,
    namespace_selector: Option<Selector>,
    required: Vec<String>,
    allowed: BTreeMap<String, BTreeSet<String>>,
    patterns: BTreeMap<String, (String, Regex)>,
}

/// A policy that cannot be evaluated: the field at fault and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidPolicy {
    /// The TagPolicy.
    pub policy: String,
    /// The field, e.g. `spec.rules.patterns["cost-center"]`.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for InvalidPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TagPolicy {:?}: {}: {}",
            self.policy, self.field, self.message
        )
    }
}

impl std::error::Error for InvalidPolicy {}

/// Compiles a TagPolicy: each pattern must be valid RE2 (what CEL and Go accept).
pub fn compile(policy: &TagPolicy) -> Result<Policy, InvalidPolicy> {
    let name = policy.name_any();
    let spec = &policy.spec;
    let invalid = |field: String, message: String| InvalidPolicy {
        policy: name.clone(),
        field,
        message,
    };
    let matching = spec.match_.clone().unwrap_or_default();
    let namespace_selector = matching
        .namespace_selector
        .map(|selector: LabelSelector| Selector::try_from(selector))
        .transpose()
        .map_err(|error| {
            invalid(
                "spec.match.namespaceSelector".to_string(),
                error.to_string(),
            )
        })?;
    let mut patterns = BTreeMap::new();
    for (key, pattern) in &spec.rules.patterns {
        let field = format!("spec.rules.patterns[{key:?}]");
        let regex = re2::compile(pattern).map_err(|error| invalid(field, error.to_string()))?;
        patterns.insert(key.clone(), (pattern.clone(), regex));
    }
    Ok(Policy {
        name: name.clone(),
        enforcement: spec.enforcement,
        generation: policy.metadata.generation,
        providers: matching.providers.into_iter().collect(),
        resource_types: matching.resource_types.into_iter().collect(),
        namespace_selector,
        required: spec.rules.required.clone(),
        allowed: spec
            .rules
            .allowed_values
            .iter()
            .map(|(key, values)| (key.clone(), values.iter().cloned().collect()))
            .collect(),
        patterns,
    })
}

/// Compiles every policy: the valid ones, and the refusals of the others (which govern
/// nothing until fixed, and report `Stalled`).
pub fn compile_all<'a>(
    policies: impl IntoIterator<Item = &'a TagPolicy>,
) -> (Vec<Policy>, Vec<InvalidPolicy>) {
    let mut valid = Vec::new();
    let mut invalid = Vec::new();
    for policy in policies {
        match compile(policy) {
            Ok(compiled) => valid.push(compiled),
            Err(refusal) => invalid.push(refusal),
        }
    }
    valid.sort_by(|a, b| a.name.cmp(&b.name));
    (valid, invalid)
}

/// Where a binding or a resource stands: its provider, its resource type, and (for a
/// binding) the labels of its namespace.
#[derive(Clone, Copy, Debug)]
pub struct Scope<'a> {
    /// The TagProvider's name.
    pub provider: &'a str,
    /// The resource type as the binding names it.
    pub resource_type: &'a str,
    /// The binding's namespace labels; `None` for a resource seen by a scan (the namespace
    /// selector governs bindings only).
    pub namespace_labels: Option<&'a BTreeMap<String, String>>,
}

impl Policy {
    /// Whether the policy governs what stands in `scope`.
    pub fn governs(&self, scope: &Scope<'_>) -> bool {
        (self.providers.is_empty() || self.providers.contains(scope.provider))
            && (self.resource_types.is_empty() || self.resource_types.contains(scope.resource_type))
            && match (&self.namespace_selector, scope.namespace_labels) {
                (Some(selector), Some(labels)) => selector.matches(labels),
                _ => true,
            }
    }

    /// Whether the namespace selector needs the namespace's labels.
    pub fn selects_namespaces(&self) -> bool {
        self.namespace_selector.is_some()
    }

    /// Whether `tags` keep every rule ([`Policy::check`] without its findings: no allocation,
    /// for the counts of a fleet's resources).
    pub fn keeps(&self, tags: &Tags) -> bool {
        self.required.iter().all(|key| tags.contains_key(key))
            && tags.iter().all(|(key, value)| {
                self.allowed
                    .get(key)
                    .is_none_or(|allowed| allowed.contains(value))
                    && self
                        .patterns
                        .get(key)
                        .is_none_or(|(_, regex)| regex.is_match(value))
            })
    }

    /// What `tags` break of the rules.
    pub fn check(&self, tags: &Tags) -> Findings {
        let missing = self
            .required
            .iter()
            .filter(|key| !tags.contains_key(*key))
            .cloned()
            .collect();
        let mut invalid = Vec::new();
        for (key, value) in tags {
            if let Some(allowed) = self.allowed.get(key)
                && !allowed.contains(value)
            {
                invalid.push(Invalid {
                    key: key.clone(),
                    value: value.clone(),
                    rule: Rule::AllowedValues(allowed.iter().cloned().collect()),
                });
            }
            if let Some((pattern, regex)) = self.patterns.get(key)
                && !regex.is_match(value)
            {
                invalid.push(Invalid {
                    key: key.clone(),
                    value: value.clone(),
                    rule: Rule::Pattern(pattern.clone()),
                });
            }
        }
        Findings { missing, invalid }
    }
}

/// The rule a value breaks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// `rules.allowedValues`: the values allowed.
    AllowedValues(Vec<String>),
    /// `rules.patterns`: the pattern.
    Pattern(String),
}

/// A present key whose value breaks a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// The key.
    pub key: String,
    /// Its value.
    pub value: String,
    /// The rule it breaks.
    pub rule: Rule,
}

/// What a set of tags breaks of one policy's rules.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Findings {
    /// Required keys absent.
    pub missing: Vec<String>,
    /// Present keys with a value the rules refuse.
    pub invalid: Vec<Invalid>,
}

impl Findings {
    /// True when the tags keep every rule.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.invalid.is_empty()
    }
}

impl fmt::Display for Findings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if !self.missing.is_empty() {
            parts.push(format!(
                "rule required: missing key(s) {}",
                self.missing
                    .iter()
                    .map(|k| format!("{k:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for invalid in &self.invalid {
            parts.push(match &invalid.rule {
                Rule::AllowedValues(values) => format!(
                    "rule allowedValues: {}={:?} is not one of {}",
                    invalid.key,
                    invalid.value,
                    values.join(", ")
                ),
                Rule::Pattern(pattern) => format!(
                    "rule patterns: {}={:?} does not match {pattern:?}",
                    invalid.key, invalid.value
                ),
            });
        }
        f.write_str(&parts.join("; "))
    }
}

/// A policy that a binding's declared tags break.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Breach {
    /// The TagPolicy.
    pub policy: String,
    /// Its enforcement.
    pub enforcement: Enforcement,
    /// What breaks it.
    pub findings: Findings,
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "TagPolicy {:?} ({}): {}",
            self.policy,
            self.enforcement.as_str(),
            self.findings
        )
    }
}

/// A binding's standing against the policies that govern it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// The names of the policies that govern it.
    pub governed_by: Vec<String>,
    /// Breaches of `Deny` policies: the binding writes nothing.
    pub denied: Vec<Breach>,
    /// Breaches of `Warn` policies: it proceeds, and says so.
    pub warned: Vec<Breach>,
}

impl Verdict {
    /// The message of a refusal (or of a warning): every breach, in policy order.
    pub fn message(breaches: &[Breach]) -> String {
        breaches
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Judges a binding's declared tags against every policy that governs it.
pub fn judge_binding(policies: &[Policy], scope: &Scope<'_>, declared: &Tags) -> Verdict {
    let mut verdict = Verdict::default();
    for policy in policies.iter().filter(|policy| policy.governs(scope)) {
        verdict.governed_by.push(policy.name.clone());
        let findings = policy.check(declared);
        if findings.is_clean() {
            continue;
        }
        let breach = Breach {
            policy: policy.name.clone(),
            enforcement: policy.enforcement,
            findings,
        };
        match policy.enforcement {
            Enforcement::Deny => verdict.denied.push(breach),
            Enforcement::Warn => verdict.warned.push(breach),
        }
    }
    verdict
}

/// A resource as a round observed it.
#[derive(Clone, Copy, Debug)]
pub struct Observed<'a> {
    /// The TagProvider it was read through.
    pub provider: &'a str,
    /// Its type.
    pub resource_type: &'a str,
    /// Its id.
    pub resource_id: &'a str,
    /// All its tags: its own, foreign ones, other bindings' ones.
    pub tags: &'a Tags,
}

/// One policy's counts over the resources and bindings it governs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PolicyTally {
    /// Bindings evaluated.
    pub bindings_evaluated: u32,
    /// Bindings whose declared tags break it.
    pub bindings_violating: u32,
    /// Resources evaluated (each once).
    pub resources_evaluated: u32,
    /// Resources whose observed tags keep it.
    pub resources_compliant: u32,
    /// The first noncompliant resources, by provider, type and id (at most 20).
    pub noncompliant: Vec<NoncompliantResource>,
}

impl PolicyTally {
    /// Resources whose observed tags break it.
    pub fn resources_noncompliant(&self) -> u32 {
        self.resources_evaluated - self.resources_compliant
    }
}

/// Counts, per policy, the bindings judged and the resources observed.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    /// Per policy name.
    pub policies: BTreeMap<String, PolicyTally>,
    /// The resources counted, by a hash of their identity (8 bytes each: at 100,000
    /// resources, string keys per policy took several MiB).
    seen: std::collections::HashSet<u64>,
}

impl Tally {
    /// An empty tally with a row for each policy (so that a policy that governs nothing
    /// reports zeros).
    pub fn new(policies: &[Policy]) -> Self {
        Tally {
            policies: policies
                .iter()
                .map(|policy| (policy.name.clone(), PolicyTally::default()))
                .collect(),
            seen: Default::default(),
        }
    }

    /// Makes room for `resources` distinct resources at once.
    pub fn expect_resources(&mut self, resources: usize) {
        self.seen.reserve(resources);
    }

    /// Counts a binding's verdict.
    pub fn record_binding(&mut self, verdict: &Verdict) {
        for name in &verdict.governed_by {
            let row = self.policies.entry(name.clone()).or_default();
            row.bindings_evaluated += 1;
            if verdict
                .denied
                .iter()
                .chain(&verdict.warned)
                .any(|breach| &breach.policy == name)
            {
                row.bindings_violating += 1;
            }
        }
    }

    /// Counts a resource under `policy`.
    fn record_resource(&mut self, policy: &Policy, resource: &Observed<'_>) {
        let row = self.policies.entry(policy.name.clone()).or_default();
        row.resources_evaluated += 1;
        if policy.keeps(resource.tags) {
            row.resources_compliant += 1;
            return;
        }
        // NB: the findings only for a resource that enters the first 20 (at 90,000
        // noncompliant resources, building each one's sample cost more than the checks).
        let key = (
            resource.provider,
            resource.resource_type,
            resource.resource_id,
        );
        let position = row
            .noncompliant
            .binary_search_by(|s| sample_order(s).cmp(&key))
            .unwrap_or_else(|at| at);
        if position >= MAX_NONCOMPLIANT_SAMPLES {
            return;
        }
        let findings = policy.check(resource.tags);
        let sample = NoncompliantResource {
            provider: resource.provider.to_string(),
            resource_type: resource.resource_type.to_string(),
            resource_id: resource.resource_id.to_string(),
            missing: findings.missing,
            invalid: findings
                .invalid
                .into_iter()
                .map(|invalid| (invalid.key, invalid.value))
                .collect(),
        };
        row.noncompliant.insert(position, sample);
        row.noncompliant.truncate(MAX_NONCOMPLIANT_SAMPLES);
    }

    /// Counts a resource a scan of `policy` read, under that policy alone, unless a binding's
    /// pass counted it already (a scan adds the resources no binding covers).
    pub fn record_scanned(&mut self, policy: &Policy, resource: &Observed<'_>) {
        if self.seen.insert(identity_of(resource)) {
            self.record_resource(policy, resource);
        }
    }

    /// Counts a resource under every policy in `policies` that governs `scope`, once however
    /// many bindings observed it (the first one's scope decides).
    pub fn record_observed(
        &mut self,
        policies: &[Policy],
        scope: &Scope<'_>,
        resource: &Observed<'_>,
    ) {
        if !self.seen.insert(identity_of(resource)) {
            return;
        }
        for policy in policies.iter().filter(|policy| policy.governs(scope)) {
            self.record_resource(policy, resource);
        }
    }
}

fn identity_of(resource: &Observed<'_>) -> u64 {
    ledger::identity(
        resource.provider,
        resource.resource_type,
        resource.resource_id,
    )
}

fn sample_order(sample: &NoncompliantResource) -> (&str, &str, &str) {
    (&sample.provider, &sample.resource_type, &sample.resource_id)
}
