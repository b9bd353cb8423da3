//! What both hosts do around the pure plan (DESIGN.md section 2, layer 4): the bindings due
//! together pass through one entry point, [`group::pass_group`], and a pass is
//! observe -> plan -> execute -> outcome. Generic over the cloud's [`TagApi`]; knows nothing of
//! the Kubernetes client. The controller turns an [`Outcome`] into `status`, the CLI into its
//! output and state file.
//!
//! - [`checks`]: the checks before a pass (provider, namespace, spec), what a suspended
//!   binding reports, and what a deletion does ([`checks::deletion`]);
//! - [`identity`]: a resource is one thing however many providers reach it (canonical ids,
//!   [`identity::Target`]), and the claim index keyed by it;
//! - [`select`]: selectors resolved by list-by-tag, settled against the round's reads, and
//!   feeding cycles;
//! - [`group`]: the entry point for the bindings due together (claim lists shared by the
//!   resources they consider, refused selections, released resources);
//! - [`round`]: one read of every distinct resource, each binding's plan, the writes through
//!   the host's [`intent_log::IntentLog`] (the crash window, one mechanism in both hosts);
//! - [`changes`], `outcome`: what a pass did, as events, status and the CLI's report;
//! - [`provider`]: a TagProvider's client (credentials, endpoint, rate); [`secret`]: a
//!   credentials Secret's keys; [`scan`]: a tag policy's read of a resource type.

pub mod changes;
pub mod checks;
mod execute;
pub mod group;
pub mod identity;
pub mod intent_log;
mod outcome;
mod pass_error;
pub mod provider;
pub mod round;
pub mod scan;
pub mod secret;
pub mod select;

use std::collections::BTreeSet;

pub use outcome::{Outcome, Readiness};
pub use pass_error::PassError;

use crate::cloud::{AddressError, CallError, TagApi};
use crate::plan::{self, BindingId, Claims, PlanInput, SpecViolation};
use crate::tags::{Ownership, Tags, TagsByResource};

/// What a pass may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Observe and plan; no cloud writes (`tagbinder plan`, suspended bindings).
    PlanOnly,
    /// Observe, plan and write.
    Apply,
    /// An Observe binding (`spec.mode: Observe`): observe and plan, never write, and report
    /// the drift; Ready whenever the observation itself succeeded.
    Observe,
}

impl Mode {
    /// The pass mode of a binding's `spec.mode` when the host would write.
    pub fn of(binding_mode: crate::api::BindingMode) -> Self {
        match binding_mode {
            crate::api::BindingMode::Enforce => Mode::Apply,
            crate::api::BindingMode::Observe => Mode::Observe,
        }
    }
}

/// One binding as a pass sees it.
#[derive(Clone, Debug)]
pub struct PassInput<'a> {
    /// The binding.
    pub binding: &'a BindingId,
    /// Declared tags; empty when the binding is being deleted.
    pub desired: &'a Tags,
    /// Resource type (Alibaba `ResourceType`, JD `serviceCode`).
    pub resource_type: &'a str,
    /// Declared resources; empty when the binding is being deleted.
    pub resource_ids: &'a [String],
    /// The ownership record before the pass.
    pub owned: &'a Ownership,
    /// What other bindings of the same provider and resource type declare.
    pub claims: &'a Claims<'a>,
    /// Whether to write.
    pub mode: Mode,
    /// A selector binding: `resource_ids` are its list-by-tag answer, settled against the
    /// round's reads by id before planning ([`select::settle`]). `None` for an id list.
    pub selection: Option<select::Selection<'a>>,
}

/// Runs one pass of one binding against a cloud.
pub async fn run_pass<C: TagApi>(cloud: &C, input: &PassInput<'_>) -> Outcome {
    if let Some(outcome) = check_spec(cloud, input) {
        return outcome;
    }
    let observed = match observe(cloud, input).await {
        Ok(observed) => observed,
        Err(error) => return Outcome::observe_failed(input, error.into()),
    };
    let plan = plan::plan(&PlanInput {
        binding: input.binding,
        desired: input.desired,
        resource_ids: input.resource_ids,
        owned: input.owned,
        observed: &observed,
        claims: input.claims,
        limits: cloud.limits(),
    });
    match input.mode {
        Mode::PlanOnly | Mode::Observe => Outcome::planned(input, plan, observed),
        Mode::Apply => {
            let executed = execute::execute(cloud, input.resource_type, &plan).await;
            Outcome::executed(input, plan, observed, executed)
        }
    }
}

/// Checks what only the provider knows (key rules, resource types): `InvalidSpec` before
/// any cloud call.
pub fn spec_violations<C: TagApi>(
    cloud: &C,
    resource_type: &str,
    desired: &Tags,
) -> Vec<SpecViolation> {
    let mut violations = Vec::new();
    if let Err(error) = cloud.check_resource_type(resource_type) {
        violations.push(address_violation(error));
    }
    violations.extend(plan::validate(desired, cloud.limits()));
    violations
}

/// The field of the spec that an address the provider refuses comes from.
pub fn address_violation(error: AddressError) -> SpecViolation {
    let field = match error {
        AddressError::ResourceType(_) => "spec.resourceType",
        AddressError::ResourceIds { .. } => "spec.resourceIds",
    };
    SpecViolation {
        field: field.to_string(),
        rule: error.to_string(),
    }
}

fn check_spec<C: TagApi>(cloud: &C, input: &PassInput<'_>) -> Option<Outcome> {
    // NB: a binding being deleted (nothing declared) is never invalid: it only prunes.
    if input.resource_ids.is_empty() && input.desired.is_empty() {
        return None;
    }
    let mut violations = spec_violations(cloud, input.resource_type, input.desired);
    if let Err(error) = cloud.check_resource_ids(input.resource_type, input.resource_ids) {
        violations.push(address_violation(error));
    }
    let violations: Vec<String> = violations.iter().map(ToString::to_string).collect();
    (!violations.is_empty()).then(|| Outcome::invalid_spec(input, violations.join("; ")))
}

async fn observe<C: TagApi>(cloud: &C, input: &PassInput<'_>) -> Result<TagsByResource, CallError> {
    let ids: BTreeSet<&String> = input
        .resource_ids
        .iter()
        .chain(input.owned.resources().keys())
        .collect();
    let ids: Vec<String> = ids.into_iter().cloned().collect();
    if ids.is_empty() {
        return Ok(TagsByResource::new());
    }
    cloud.list_tags(input.resource_type, &ids).await
}
