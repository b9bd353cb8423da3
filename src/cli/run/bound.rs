//! The run's call bound and rate, for the progress line: the fewest calls of the run
//! ([`crate::plan::bound`]) from its declarations alone, and the calls per second its
//! providers allow.

use std::collections::BTreeMap;

use crate::api::BindingMode;
use crate::cli::manifests::Manifests;
use crate::cloud::TagApi;
use crate::plan::bound::{FleetBinding, Paging, lower_bound};
use crate::reconcile::provider::{ClientOptions, ProviderClient, rate_limiter};

use super::Command;
use super::declare::Declared;

/// The fewest calls of the run ([`crate::plan::bound`]) from its declarations alone, as if no
/// resource carried a tag yet: every binding's reads, and the writes of those that write.
pub(super) fn call_bound(
    manifests: &Manifests,
    declared: &[Declared<'_>],
    clients: &BTreeMap<String, ProviderClient>,
    command: Command,
) -> usize {
    let mut by_provider: BTreeMap<&str, Vec<&Declared<'_>>> = BTreeMap::new();
    for binding in declared {
        by_provider
            .entry(binding.provider.as_str())
            .or_default()
            .push(binding);
    }
    let none = BTreeMap::new();
    by_provider
        .into_iter()
        .filter_map(|(name, bindings)| {
            let client = clients.get(name)?;
            let paging = Paging::of(manifests.providers.get(name)?.value.spec.cloud);
            let fleet = |writers: bool| -> Vec<FleetBinding<'_>> {
                bindings
                    .iter()
                    .filter(|b| {
                        let spec = &b.binding.value.spec;
                        !writers
                            || (matches!(command, Command::Apply { .. })
                                && !spec.suspend
                                && spec.mode != BindingMode::Observe)
                    })
                    .map(|b| FleetBinding {
                        binding: &b.id,
                        resource_type: &b.binding.value.spec.resource_type,
                        tags: &b.binding.value.spec.tags,
                        resource_ids: &b.resource_ids,
                    })
                    .collect()
            };
            let reads = lower_bound(&fleet(false), &none, client.limits(), paging).list;
            let writes = lower_bound(&fleet(true), &none, client.limits(), paging);
            Some(reads + writes.tag + writes.untag)
        })
        .sum()
}

/// The calls per second the run's providers allow in all (0: one of them is unlimited).
pub(super) fn rate_limit(
    manifests: &Manifests,
    clients: &BTreeMap<String, ProviderClient>,
    options: &ClientOptions,
) -> f64 {
    let mut total = 0.0;
    for name in clients.keys() {
        let Some(provider) = manifests.providers.get(name) else {
            continue;
        };
        match rate_limiter(&provider.value.spec, options) {
            Some(limiter) => total += limiter.configured().per_second,
            None => return 0.0,
        }
    }
    total
}
