//! The observed state of a ResourceTagBinding (`status`): conditions, the ownership record
//! and the crash window's intent in their compact forms, counts, drift, failures and
//! conflicts.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::tags::{Ownership, Tags, TagsByResource};

/// Observed state of a binding.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(transform = schemars::transform::RecursiveTransform(crate::api::int32_formats))]
pub struct ResourceTagBindingStatus {
    /// Generation of the spec that the last pass worked on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// kstatus conditions: Ready, Reconciling, Stalled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The tags the last pass declared: `tags`, `tagsFrom` rendered, and the provider's
    /// `defaultTags`, by precedence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_tags: Option<Tags>,
    /// The ownership record: what this binding applied and may prune.
    #[serde(flatten)]
    pub applied: AppliedRecord,
    /// Tags a pass set out to write and whose outcome it has not recorded yet (the crash
    /// window): the next pass takes ownership of those the cloud carries with that value.
    #[serde(flatten)]
    pub pending: PendingRecord,
    /// Resource counts of the last pass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceCounts>,
    /// A selector binding: what its last resolution selected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selected: Option<SelectedResources>,
    /// Resources that failed in the last pass (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub failures: Vec<ResourceFailure>,
    /// Keys this binding does not write because an older binding declares another value
    /// (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<ConflictEntry>,
    /// When the cloud last confirmed that the resources match (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<String>,
    /// Observe mode: what the resources lack or carry beyond the declared tags.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftCounts>,
    /// Observe mode: the first drifting keys (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift_samples: Vec<DriftSample>,
    /// Echo of the `reconcile.fluxcd.io/requestedAt` annotation last handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handled_reconcile_at: Option<String>,
    /// Sequence number of the ownership record above. An intent in the
    /// `tagbinder.io/intent` annotation with a higher number is newer than this status (a
    /// pass was stopped between its writes and this status write).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_sequence: Option<i64>,
}

/// The annotation in which the controller records a pass's intent before its cloud writes,
/// together with the finalizer in one write of the object (the crash window, issue 14): the
/// ownership record the pass starts from and the tags it is about to write. The status
/// written after the pass supersedes it (`status.recordSequence` at least its `sequence`).
pub const INTENT_ANNOTATION: &str = "tagbinder.io/intent";

/// The value of [`INTENT_ANNOTATION`] (JSON): a sequence number, an ownership record and an
/// intent, in the compact forms of `status`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct IntentRecord {
    /// Compared with `status.recordSequence`: the higher one is the newer record.
    pub sequence: i64,
    /// The ownership record the intent extends.
    #[serde(flatten)]
    pub applied: AppliedRecord,
    /// The tags about to be written.
    #[serde(flatten)]
    pub pending: PendingRecord,
}

impl IntentRecord {
    /// The intent recorded in `annotations`, if any and newer than `status` (an annotation
    /// that is not a record counts as none: a hand-edited annotation claims nothing).
    pub fn newer_than(
        annotations: &BTreeMap<String, String>,
        status: Option<&ResourceTagBindingStatus>,
    ) -> Option<Self> {
        let record: IntentRecord =
            serde_json::from_str(annotations.get(INTENT_ANNOTATION)?).ok()?;
        let recorded = status.and_then(|s| s.record_sequence).unwrap_or(0);
        (record.sequence > recorded).then_some(record)
    }
}

/// What a binding applied: the basis of pruning. The controller keeps it in `status`, the
/// CLI in its state file; both use this shape.
///
/// Usually every resource carries the same owned tags, and the record is just
/// `appliedTags` + `appliedResourceIds`. After a partial failure, resources whose owned tags
/// differ are listed with their full owned set in `appliedTagsPerResource`.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppliedRecord {
    /// Tags this binding applied and still owns.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub applied_tags: Tags,
    /// Resources on which this binding owns tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub applied_resource_ids: Vec<String>,
    /// Resources whose owned tags differ from `appliedTags`, with their full owned set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub applied_tags_per_resource: BTreeMap<String, Tags>,
}

impl AppliedRecord {
    /// The compact record of an ownership map: the most common owned set becomes
    /// `appliedTags`, the rest are listed per resource.
    pub fn from_ownership(ownership: &Ownership) -> Self {
        let (applied_tags, applied_resource_ids, applied_tags_per_resource) =
            compact(ownership.resources());
        AppliedRecord {
            applied_tags,
            applied_resource_ids,
            applied_tags_per_resource,
        }
    }

    /// The ownership map this record describes.
    pub fn to_ownership(&self) -> Ownership {
        let mut ownership = Ownership::default();
        for id in &self.applied_resource_ids {
            let tags = self
                .applied_tags_per_resource
                .get(id)
                .unwrap_or(&self.applied_tags);
            ownership.set(id, tags.clone());
        }
        ownership
    }

    /// True when the binding owns nothing.
    pub fn is_empty(&self) -> bool {
        self.applied_resource_ids.is_empty()
    }
}

/// The compact form of tags per resource: the most common set, every resource, and the
/// resources whose set differs from it with their full set.
fn compact(by_resource: &TagsByResource) -> (Tags, Vec<String>, BTreeMap<String, Tags>) {
    let mut counts: BTreeMap<&Tags, usize> = BTreeMap::new();
    for tags in by_resource.values() {
        *counts.entry(tags).or_default() += 1;
    }
    let common = counts
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(tags, _)| tags.clone())
        .unwrap_or_default();
    let differing = by_resource
        .iter()
        .filter(|(_, tags)| **tags != common)
        .map(|(id, tags)| (id.clone(), tags.clone()))
        .collect();
    (common, by_resource.keys().cloned().collect(), differing)
}

/// Tags a pass is about to write, recorded in `status` before the writes are sent and cleared
/// by the status write that records their outcome (DESIGN.md section 3: a failed call never
/// loses the record). Same compact shape as [`AppliedRecord`]: usually every resource gets the
/// same tags.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingRecord {
    /// Tags being written, and not yet owned.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pending_tags: Tags,
    /// Resources they are being written to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pending_resource_ids: Vec<String>,
    /// Resources whose pending tags differ from `pendingTags`, with their full pending set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pending_tags_per_resource: BTreeMap<String, Tags>,
}

impl PendingRecord {
    /// The compact record of an intent (resource id to the tags about to be written).
    pub fn from_intent(intent: &TagsByResource) -> Self {
        let intent: TagsByResource = intent
            .iter()
            .filter(|(_, tags)| !tags.is_empty())
            .map(|(id, tags)| (id.clone(), tags.clone()))
            .collect();
        let (pending_tags, pending_resource_ids, pending_tags_per_resource) = compact(&intent);
        PendingRecord {
            pending_tags,
            pending_resource_ids,
            pending_tags_per_resource,
        }
    }

    /// The intent this record describes.
    pub fn to_intent(&self) -> TagsByResource {
        self.pending_resource_ids
            .iter()
            .map(|id| {
                let tags = self
                    .pending_tags_per_resource
                    .get(id)
                    .unwrap_or(&self.pending_tags);
                (id.clone(), tags.clone())
            })
            .filter(|(_, tags)| !tags.is_empty())
            .collect()
    }

    /// True when no write is pending.
    pub fn is_empty(&self) -> bool {
        self.pending_resource_ids.is_empty()
    }
}

/// Resource counts of a pass.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct ResourceCounts {
    /// Resources listed in the spec, or selected by its selector.
    pub total: u32,
    /// Resources that carry every declared, non-conflicting tag.
    pub synced: u32,
    /// Resources whose last write or read failed.
    pub failed: u32,
}

/// What a selector binding's last resolution matched.
#[derive(Deserialize, Serialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SelectedResources {
    /// Resources that carry every `matchTags` (more than `maxResources` when Stalled).
    pub count: u32,
    /// The first selected ids, sorted (at most 10).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub first_ids: Vec<String>,
}

/// Drift an Observe binding found in its last pass: what writing would change.
#[derive(Deserialize, Serialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct DriftCounts {
    /// Resources with at least one key to add, change or prune.
    pub resources: u32,
    /// Keys (resource x key) declared and missing.
    pub add: u32,
    /// Keys (resource x key) carried with another value than the declared one.
    pub change: u32,
    /// Keys (resource x key) this binding owns, no longer declares, and would remove.
    pub prune: u32,
}

/// One drifting key of one resource.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DriftSample {
    /// The resource id.
    pub resource_id: String,
    /// The tag key.
    pub key: String,
    /// The value the resource carries; absent when the key is missing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<String>,
    /// The declared value; absent when the key would be pruned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<String>,
}

/// One resource that failed.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceFailure {
    /// The resource id.
    pub resource_id: String,
    /// Category, e.g. `NotFound`, `QuotaExceeded`, `ProviderError`.
    pub reason: String,
    /// What the cloud said.
    pub message: String,
}

/// One key this binding yields to an older binding.
#[derive(Deserialize, Serialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConflictEntry {
    /// The resource id.
    pub resource_id: String,
    /// The tag key.
    pub key: String,
    /// The winning binding, `namespace/name`.
    pub winner: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::tags::tags;

    #[test]
    fn applied_record_round_trips_partial_ownership() {
        let mut ownership = Ownership::default();
        ownership.set("a", tags(&[("env", "prod")]));
        ownership.set("b", tags(&[("env", "prod")]));
        ownership.set("c", tags(&[("env", "dev")]));
        let record = AppliedRecord::from_ownership(&ownership);
        assert_eq!(record.applied_tags, tags(&[("env", "prod")]));
        assert_eq!(record.applied_resource_ids, vec!["a", "b", "c"]);
        assert_eq!(record.applied_tags_per_resource.len(), 1);
        assert_eq!(record.to_ownership(), ownership);
    }

    #[test]
    fn pending_record_round_trips_and_is_compact() {
        let mut intent = TagsByResource::new();
        for id in ["a", "b", "c"] {
            intent.insert(id.into(), tags(&[("env", "prod"), ("tier", "web")]));
        }
        intent.insert("d".into(), tags(&[("env", "prod")]));
        let record = PendingRecord::from_intent(&intent);
        assert_eq!(
            record.pending_tags,
            tags(&[("env", "prod"), ("tier", "web")])
        );
        assert_eq!(record.pending_tags_per_resource.len(), 1);
        assert_eq!(record.to_intent(), intent);
        let json = serde_json::to_value(ResourceTagBindingStatus {
            pending: record,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            json["pendingResourceIds"],
            serde_json::json!(["a", "b", "c", "d"])
        );
        assert!(PendingRecord::from_intent(&TagsByResource::new()).is_empty());
    }

    #[test]
    fn empty_record_means_nothing_owned() {
        let record = AppliedRecord::from_ownership(&Ownership::default());
        assert!(record.is_empty());
        assert_eq!(
            serde_json::to_string(&ResourceTagBindingStatus::default()).unwrap(),
            "{}"
        );
    }
}
