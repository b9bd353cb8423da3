//! Placeholder bodies, replaced by the plan engine.

use super::*;

/// Checks declared tags against the provider's rules; empty when valid.
pub fn validate(desired: &Tags, limits: &Limits) -> Vec<SpecViolation> {
    let _ = (desired, limits);
    Vec::new()
}

/// Plans one binding.
pub fn plan(input: &PlanInput<'_>) -> Plan {
    let _ = input;
    Plan::default()
}

impl Plan {
    /// The ownership record after executing this plan, given which writes the cloud confirmed.
    pub fn next_ownership(&self, owned: &Ownership, confirmed: &Confirmed) -> Ownership {
        let _ = confirmed;
        owned.clone()
    }
}
