//! Tag policies in the CLI (issue 24): the TagPolicies of the files judge each binding's
//! declared tags before the run (a `Deny` breach stops that binding alone), and count the
//! resources the run observed, from the reads it made anyway.

use serde::Serialize;

use super::manifests::Manifests;
use super::output::FORMAT_VERSION;
use crate::api::{NoncompliantResource, PolicyBindingCounts, PolicyResourceCounts};
use crate::policy::{self, Observed, Policy, Scope, Tally, Verdict};
use crate::tags::{Tags, TagsByResource};

/// The policies of the files, compiled (the files were refused at load when one did not
/// compile).
pub fn policies_of(manifests: &Manifests) -> Vec<Policy> {
    policy::compile_all(manifests.policies.values().map(|located| &located.value)).0
}

/// Where a binding stands, for matching.
pub fn scope_of<'a>(
    manifests: &'a Manifests,
    provider: &'a str,
    resource_type: &'a str,
    namespace: &str,
) -> Scope<'a> {
    static NO_LABELS: std::sync::LazyLock<std::collections::BTreeMap<String, String>> =
        std::sync::LazyLock::new(Default::default);
    Scope {
        provider,
        resource_type,
        // NB: a namespace without a Namespace document among the files has no labels, as
        // for `allowedNamespaces`.
        namespace_labels: Some(manifests.namespaces.get(namespace).unwrap_or(&NO_LABELS)),
    }
}

/// Counts the resources of one pass under the policies that govern its binding.
pub fn record_pass(
    tally: &mut Tally,
    policies: &[Policy],
    scope: &Scope<'_>,
    tags: &TagsByResource,
) {
    for (id, carried) in tags {
        tally.record_observed(
            policies,
            scope,
            &Observed {
                provider: scope.provider,
                resource_type: scope.resource_type,
                resource_id: id,
                tags: carried,
            },
        );
    }
}

/// Reads every scan of the files' policies (with the calls of an Observe selector, never a
/// write) and counts the resources no binding counted; answers the failures per policy.
pub async fn scan(
    manifests: &Manifests,
    policies: &[Policy],
    clients: &std::collections::BTreeMap<String, crate::reconcile::provider::ProviderClient>,
    tally: &mut Tally,
) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut failures: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for policy in policies {
        let Some(located) = manifests.policies.get(&policy.name) else {
            continue;
        };
        for (index, scan) in located.value.spec.scan.iter().enumerate() {
            let provider = &scan.provider_ref.name;
            let read = match clients.get(provider) {
                Some(client) => {
                    crate::reconcile::scan::read(client, &scan.resource_type, &scan.match_tags)
                        .await
                        .map_err(|error| error.to_string())
                }
                None => Err(format!(
                    "TagProvider {provider:?} is not among the files (or has no client)"
                )),
            };
            match read {
                Ok(found) => {
                    for (id, tags) in &found {
                        tally.record_scanned(
                            policy,
                            &Observed {
                                provider,
                                resource_type: &scan.resource_type,
                                resource_id: id,
                                tags,
                            },
                        );
                    }
                }
                Err(error) => failures
                    .entry(policy.name.clone())
                    .or_default()
                    .push(format!("spec.scan[{index}]: {error}")),
            }
        }
    }
    failures
}

/// A policy's figures in the report.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyReport {
    /// The TagPolicy.
    pub policy: String,
    /// `Deny` or `Warn`.
    pub enforcement: &'static str,
    /// The bindings it governs.
    pub bindings: PolicyBindingCounts,
    /// The resources it governs, by the tags they carry after the run (`plan`: before).
    pub resources: PolicyResourceCounts,
    /// The first noncompliant resources (at most 20).
    pub noncompliant: Vec<NoncompliantResource>,
    /// Scans that read nothing, and why (their resources are not counted).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub scan_errors: Vec<String>,
}

/// One binding that breaks a policy.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ViolationReport {
    /// `namespace/name`.
    pub binding: String,
    /// The TagPolicy.
    pub policy: String,
    /// `Deny` (nothing written) or `Warn`.
    pub enforcement: &'static str,
    /// The rules broken.
    pub message: String,
}

/// What `plan --policy-report` prints: the figures a CI job archives.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComplianceReport {
    /// The report's layout version (that of the plan report).
    pub format_version: u32,
    /// Per policy, by name.
    pub policies: Vec<PolicyReport>,
    /// Every binding that breaks a policy.
    pub violations: Vec<ViolationReport>,
}

impl ComplianceReport {
    /// True when some binding breaks a `Deny` policy.
    pub fn denies(&self) -> bool {
        self.violations.iter().any(|v| v.enforcement == "Deny")
    }
}

/// The report of `tally`, with the verdicts of the bindings (by `namespace/name`).
pub fn report(
    policies: &[Policy],
    tally: &Tally,
    verdicts: &[(String, &Verdict)],
    scan_errors: &std::collections::BTreeMap<String, Vec<String>>,
) -> ComplianceReport {
    let policies = policies
        .iter()
        .map(|policy| {
            let row = tally
                .policies
                .get(&policy.name)
                .cloned()
                .unwrap_or_default();
            PolicyReport {
                policy: policy.name.clone(),
                enforcement: policy.enforcement.as_str(),
                bindings: PolicyBindingCounts {
                    evaluated: row.bindings_evaluated,
                    violating: row.bindings_violating,
                },
                resources: PolicyResourceCounts {
                    evaluated: row.resources_evaluated,
                    compliant: row.resources_compliant,
                    noncompliant: row.resources_noncompliant(),
                },
                noncompliant: row.noncompliant,
                scan_errors: scan_errors.get(&policy.name).cloned().unwrap_or_default(),
            }
        })
        .collect();
    let violations = verdicts
        .iter()
        .flat_map(|(binding, verdict)| {
            verdict
                .denied
                .iter()
                .chain(&verdict.warned)
                .map(move |breach| ViolationReport {
                    binding: binding.clone(),
                    policy: breach.policy.clone(),
                    enforcement: breach.enforcement.as_str(),
                    message: breach.findings.to_string(),
                })
        })
        .collect();
    ComplianceReport {
        format_version: FORMAT_VERSION,
        policies,
        violations,
    }
}

/// A binding's declared tags, for the verdict.
pub fn judge(policies: &[Policy], scope: &Scope<'_>, declared: &Tags) -> Verdict {
    policy::judge_binding(policies, scope, declared)
}
