//! Everything the controller would report as `Stalled` is an error of the files here, found
//! before any cloud call: unknown provider, namespace not allowed, rendering, provider rules,
//! a changed target, feeding cycles.

use std::collections::BTreeMap;

use crate::cli::manifests::{ManifestError, Manifests};
use crate::cli::state::{BindingState, StateFile, state_key};
use crate::cloud::TagApi;
use crate::reconcile::checks::{self};
use crate::reconcile::identity::Target;
use crate::reconcile::provider::ProviderClient;
use crate::reconcile::select::{self};

use super::declare::Declared;

/// Everything the reconciler would report as `Stalled` is an error of the files here, found
/// before any cloud call: unknown provider, namespace not allowed, provider rules broken.
pub(super) fn check_bindings(
    manifests: &Manifests,
    declared: &[Declared<'_>],
    clients: &BTreeMap<String, ProviderClient>,
    state: &StateFile,
) -> Result<(), Vec<ManifestError>> {
    let mut errors = Vec::new();
    for binding in declared {
        let source = &binding.binding.source;
        let spec = &binding.binding.value.spec;
        let Some(provider) = manifests.providers.get(&binding.provider) else {
            errors.push(ManifestError::at(
                source,
                "spec.providerRef.name",
                unknown_provider(&binding.provider, manifests),
            ));
            continue;
        };
        let labels = manifests
            .namespaces
            .get(&binding.id.namespace)
            .cloned()
            .unwrap_or_default();
        if let Err(refusal) =
            checks::precheck(&binding.binding.value, Some(&provider.value), &labels)
        {
            let mut message = refusal.readiness.message;
            if refusal.readiness.reason == crate::api::conditions::reason::NAMESPACE_NOT_ALLOWED {
                // NB: in a cluster the labels are the Namespace object's; here, a document's.
                let namespace = &binding.id.namespace;
                message.push_str(&if manifests.namespaces.contains_key(namespace) {
                    format!(
                        "; the CLI read the labels of {namespace:?} from its Namespace document \
                         among the files"
                    )
                } else {
                    format!(
                        "; the CLI learns a namespace's labels from a Namespace document among \
                         the files (kind: Namespace, metadata.labels), and they hold none for \
                         {namespace:?}"
                    )
                });
            }
            errors.push(ManifestError::at(source, refusal.field, message));
            continue;
        }
        let rendered = match &binding.rendered {
            Ok(rendered) => rendered,
            Err(missing) => {
                // NB: in a cluster the namespace is the Namespace object; here, a document.
                for entry in &missing.0 {
                    let mut message = format!(
                        "{} ({})",
                        entry.what,
                        crate::api::conditions::reason::VALUE_NOT_FOUND
                    );
                    if !manifests.namespaces.contains_key(&binding.id.namespace) {
                        message.push_str(&format!(
                            "; the CLI reads a namespace's labels and annotations from a \
                             Namespace document among the files (kind: Namespace), and they \
                             hold none for {:?}",
                            binding.id.namespace
                        ));
                    }
                    errors.push(ManifestError::at(
                        source,
                        format!("spec.tagsFrom[{:?}]", entry.key),
                        message,
                    ));
                }
                continue;
            }
        };
        if let Some(client) = clients.get(&binding.provider) {
            let selector = spec
                .resource_selector
                .as_ref()
                .and_then(|s| select::violation(client, &s.match_tags));
            let rendered_violations = rendered.violations(
                client.limits(),
                spec.resource_selector.as_ref().map(|s| &s.match_tags),
            );
            let resource_type = client
                .check_resource_type(&spec.resource_type)
                .err()
                .map(crate::reconcile::address_violation);
            for violation in resource_type
                .into_iter()
                .chain(rendered_violations)
                .chain(selector)
            {
                errors.push(ManifestError::at(source, violation.field, violation.rule));
            }
        }
        let key = state_key(&binding.id.namespace, &binding.id.name);
        if let Some(previous) = state.bindings.get(&key)
            && let Some(rule) = target_change(manifests, previous, &binding.provider)
        {
            errors.push(ManifestError::at(source, "spec.providerRef.name", rule));
        }
        if let Some(previous) = state.bindings.get(&key)
            && previous.resource_type != spec.resource_type
            && !previous.applied.is_empty()
        {
            errors.push(ManifestError::at(
                source,
                "spec.resourceType",
                format!(
                    "changed from {:?} to {:?}, which would orphan the tags applied to {:?} resources; \
                     remove the binding (apply --prune-removed) before reusing its name",
                    previous.resource_type, spec.resource_type, previous.resource_type
                ),
            ));
        }
    }
    errors.extend(feeding_cycles(declared));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Selector bindings whose selections feed each other (see [`select::feeding_cycles`]), per
/// target: each is refused, naming its cycle.
pub(super) fn feeding_cycles(declared: &[Declared<'_>]) -> Vec<ManifestError> {
    let mut by_target: std::collections::HashMap<&Target, Vec<select::Feeder<'_, usize>>> =
        std::collections::HashMap::new();
    for (position, binding) in declared.iter().enumerate() {
        let spec = &binding.binding.value.spec;
        if let (Some(target), Some(selector)) = (&binding.target, &spec.resource_selector) {
            by_target.entry(target).or_default().push(select::Feeder {
                key: position,
                declared: &binding.desired,
                match_tags: &selector.match_tags,
            });
        }
    }
    let mut cycles: Vec<(usize, Vec<usize>)> = by_target
        .values()
        .flat_map(|feeders| select::feeding_cycles(feeders))
        .collect();
    cycles.sort();
    cycles
        .into_iter()
        .map(|(position, members)| {
            let names: Vec<String> = members
                .iter()
                .map(|&m| declared[m].id.to_string())
                .collect();
            ManifestError::at(
                &declared[position].binding.source,
                "spec.resourceSelector.matchTags",
                select::cycle_rule(&names),
            )
        })
        .collect()
}

/// Says that `name` is no TagProvider of the files: the closest name when one is close, and
/// the providers the files define.
pub(super) fn unknown_provider(name: &str, manifests: &Manifests) -> String {
    let known: Vec<&str> = manifests.providers.keys().map(String::as_str).collect();
    let mut message = format!("TagProvider {name:?} is not among the given files");
    let closest = known
        .iter()
        .map(|candidate| {
            (
                strsim::normalized_damerau_levenshtein(name, candidate),
                candidate,
            )
        })
        .filter(|(score, _)| *score >= 0.6)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    if let Some((_, candidate)) = closest {
        message.push_str(&format!("; did you mean {candidate:?}?"));
    }
    match known.len() {
        0 => message.push_str(" (they define no TagProvider)"),
        n if n <= 10 => message.push_str(&format!(" (they define {})", known.join(", "))),
        n => message.push_str(&format!(
            " (they define {} and {} more)",
            known[..10].join(", "),
            n - 10
        )),
    }
    message
}

/// Why a binding that applied tags through one provider cannot go on through `provider`: the
/// other reaches another cloud or region, where its record means nothing. A provider renamed
/// or replaced by one reaching the same cloud and region keeps the record.
pub(super) fn target_change(
    manifests: &Manifests,
    previous: &BindingState,
    provider: &str,
) -> Option<String> {
    if previous.provider == provider || previous.applied.is_empty() {
        return None;
    }
    let new = &manifests.providers.get(provider)?.value.spec;
    let old = match (&previous.cloud, &previous.region) {
        (Some(cloud), Some(region)) => Some((*cloud, region.clone())),
        _ => manifests
            .providers
            .get(&previous.provider)
            .map(|p| (p.value.spec.cloud, p.value.spec.region.clone())),
    };
    if old == Some((new.cloud, new.region.clone())) {
        return None;
    }
    let through = match &old {
        Some((cloud, region)) => format!("{} {region}", cloud.as_str()),
        None => "a cloud and region not recorded".to_string(),
    };
    Some(format!(
        "changed from {:?} ({through}) to {provider:?} ({} {}), which would orphan the tags \
         applied through {:?}; remove the binding (apply --prune-removed) before reusing its \
         name",
        previous.provider,
        new.cloud.as_str(),
        new.region,
        previous.provider
    ))
}
