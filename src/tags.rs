//! Domain types shared by every layer: tag sets and the ownership record.

use std::collections::BTreeMap;

/// Tag key to value. Ordered, so that batches, output and records are deterministic.
pub type Tags = BTreeMap<String, String>;

/// Resource id to its tags.
pub type TagsByResource = BTreeMap<String, Tags>;

/// What one binding applied and still owns: resource id to the tags it owns there.
///
/// This is the basis of pruning (DESIGN.md section 3): a key is pruned only where this record
/// says the binding applied it, with the value it applied.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ownership {
    by_resource: TagsByResource,
}

impl Ownership {
    /// Owned tags per resource (resources with nothing owned are absent).
    pub fn resources(&self) -> &TagsByResource {
        &self.by_resource
    }

    /// Owned tags on one resource.
    pub fn on(&self, resource_id: &str) -> Option<&Tags> {
        self.by_resource.get(resource_id)
    }

    /// Replaces the owned tags of one resource; an empty set removes the resource.
    pub fn set(&mut self, resource_id: &str, tags: Tags) {
        if tags.is_empty() {
            self.by_resource.remove(resource_id);
        } else {
            self.by_resource.insert(resource_id.to_string(), tags);
        }
    }

    /// Records that this binding now owns `key=value` on a resource.
    pub fn own(&mut self, resource_id: &str, key: &str, value: &str) {
        self.by_resource
            .entry(resource_id.to_string())
            .or_default()
            .insert(key.to_string(), value.to_string());
    }

    /// Drops the ownership of one key on one resource.
    pub fn release(&mut self, resource_id: &str, key: &str) {
        if let Some(tags) = self.by_resource.get_mut(resource_id) {
            tags.remove(key);
            if tags.is_empty() {
                self.by_resource.remove(resource_id);
            }
        }
    }

    /// True when nothing is owned.
    pub fn is_empty(&self) -> bool {
        self.by_resource.is_empty()
    }
}

impl FromIterator<(String, Tags)> for Ownership {
    fn from_iter<I: IntoIterator<Item = (String, Tags)>>(iter: I) -> Self {
        let mut ownership = Ownership::default();
        for (id, tags) in iter {
            ownership.set(&id, tags);
        }
        ownership
    }
}

/// The tag rules and batch limits of one cloud (or one product of it). Values come from
/// `spec/` (Alibaba section 6, JD Cloud section 5); the clients pick them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Most resources in one tag, untag or list call.
    pub resources_per_call: usize,
    /// Most resources in one list-by-id call, where it differs from `resources_per_call`
    /// (AWS: 20 per write, 100 per GetResources); `None`: `resources_per_call`.
    pub resources_per_read: Option<usize>,
    /// Most tags in one tag call.
    pub tags_per_call: usize,
    /// Most keys in one untag call.
    pub keys_per_untag_call: usize,
    /// Most tags one list-by-tag call accepts as its filter: the most `matchTags` of a
    /// `resourceSelector` on this API.
    pub selector_tags: usize,
    /// Most custom tags one resource may carry.
    pub tags_per_resource: usize,
    /// Longest key, in characters (Unicode scalar values).
    pub key_max_chars: usize,
    /// Shortest value, in characters: 0 where an empty value is allowed, 1 where it is not
    /// (the Alibaba Tag service).
    pub value_min_chars: usize,
    /// Longest value, in characters.
    pub value_max_chars: usize,
    /// Key prefixes the cloud reserves for itself (compared case-insensitively by tagbinder).
    pub reserved_key_prefixes: Vec<String>,
    /// Value prefixes the cloud reserves (compared case-insensitively by tagbinder).
    pub reserved_value_prefixes: Vec<String>,
    /// Substrings no key or value may contain.
    pub forbidden_substrings: Vec<String>,
    /// Whether the list-by-tag read filters by the cloud's reserved (system) keys too: the
    /// Tag service lists custom tags only (`Category=Custom`), so a selector on `acs:rm:rgId`
    /// there would select nothing, and is refused instead (issue 20, item 7).
    pub selects_reserved_keys: bool,
}

impl Limits {
    /// Alibaba Cloud product tag APIs (spec: alibaba-rpc-tagging.md section 6).
    pub fn alibaba() -> Self {
        Limits {
            resources_per_call: 50,
            resources_per_read: None,
            tags_per_call: 20,
            keys_per_untag_call: 20,
            // NB: ListTagResources takes `Tag.N.Key`/`Tag.N.Value` with N = 1..20 (spec
            // section 5) [sdk].
            selector_tags: 20,
            tags_per_resource: 20,
            key_max_chars: 128,
            value_min_chars: 0,
            value_max_chars: 128,
            reserved_key_prefixes: strings(&["aliyun", "acs:"]),
            reserved_value_prefixes: strings(&["aliyun", "acs:"]),
            forbidden_substrings: strings(&["http://", "https://"]),
            selects_reserved_keys: true,
        }
    }

    /// Alibaba Cloud's Tag service (spec: alibaba-rpc-tagging.md sections 5 and 6): the
    /// product rules, with 10 tags per TagResources, 10 keys per UntagResources, 10 pairs in
    /// the `Tags` filter of ListTagResources, and values of 1..128 characters.
    pub fn alibaba_tag_service() -> Self {
        Limits {
            tags_per_call: 10,
            keys_per_untag_call: 10,
            // NB: the `Tags` filter of ListTagResources holds 1..10 pairs [sdk: the official
            // SDK's ListTagResourcesRequest, alibabacloud-tag20180828].
            selector_tags: 10,
            value_min_chars: 1,
            selects_reserved_keys: false,
            ..Limits::alibaba()
        }
    }

    /// JD Cloud resource-tag service (spec: jdcloud-resource-tag.md section 5; [inferred]
    /// defaults, kept configurable).
    pub fn jdcloud() -> Self {
        Limits {
            resources_per_call: 50,
            resources_per_read: None,
            tags_per_call: 10,
            keys_per_untag_call: 10,
            // NB: [inferred] no page or SDK model found states how many `tagFilters` one
            // describeResources accepts; a resource carries at most `tags_per_resource` (10)
            // tags, so more filters could never all match.
            selector_tags: 10,
            tags_per_resource: 10,
            key_max_chars: 127,
            value_min_chars: 0,
            value_max_chars: 255,
            reserved_key_prefixes: strings(&["jrn:", "jdc-"]),
            reserved_value_prefixes: Vec::new(),
            forbidden_substrings: Vec::new(),
            selects_reserved_keys: true,
        }
    }

    /// AWS's Resource Groups Tagging API (spec: aws-resource-groups-tagging.md sections 3 to
    /// 5): 20 ARNs and 50 tags (or keys) per write, 100 ARNs per GetResources by ARN, 50
    /// tag filters, 50 user tags per resource, keys of 1..128 and values of 0..256
    /// characters, `aws:` reserved.
    pub fn aws() -> Self {
        Limits {
            resources_per_call: 20,
            resources_per_read: Some(100),
            tags_per_call: 50,
            keys_per_untag_call: 50,
            selector_tags: 50,
            tags_per_resource: 50,
            key_max_chars: 128,
            value_min_chars: 0,
            value_max_chars: 256,
            reserved_key_prefixes: strings(&["aws:"]),
            reserved_value_prefixes: Vec::new(),
            forbidden_substrings: Vec::new(),
            // NB: GetResources lists aws: tags with the others, and TagFilters match them.
            selects_reserved_keys: true,
        }
    }

    /// Most resources in one list-by-id call.
    pub fn read_chunk(&self) -> usize {
        self.resources_per_read
            .unwrap_or(self.resources_per_call)
            .max(1)
    }

    /// The reserved prefix `key` starts with (compared case-insensitively), if any.
    pub fn reserved_key_prefix(&self, key: &str) -> Option<&str> {
        reserved_prefix(key, &self.reserved_key_prefixes)
    }

    /// The reserved prefix `value` starts with (compared case-insensitively), if any.
    pub fn reserved_value_prefix(&self, value: &str) -> Option<&str> {
        reserved_prefix(value, &self.reserved_value_prefixes)
    }
}

fn reserved_prefix<'a>(text: &str, prefixes: &'a [String]) -> Option<&'a str> {
    let text = text.to_lowercase();
    prefixes
        .iter()
        .find(|prefix| text.starts_with(&prefix.to_lowercase()))
        .map(String::as_str)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// A tag set from `(key, value)` pairs, for tests.
/// True for a character that prints as nothing, or as a blank that is not the ASCII space:
/// Unicode's Default_Ignorable_Code_Point (zero-width space, soft hyphen, word joiner, the
/// byte-order mark, U+3164, the tag characters...), format characters (Cf: direction marks
/// and overrides), and the separators (Zl, Zp, and Zs but the ASCII space). Printed raw, such
/// a character makes `en\u{200b}v` look like `env`; no cloud accepts one in a tag key.
pub fn is_invisible(c: char) -> bool {
    use icu_properties::props::{DefaultIgnorableCodePoint, GeneralCategory};
    use icu_properties::{CodePointMapData, CodePointSetData};
    if c.is_ascii() {
        return false;
    }
    CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
        || matches!(
            CodePointMapData::<GeneralCategory>::new().get(c),
            GeneralCategory::Format
                | GeneralCategory::LineSeparator
                | GeneralCategory::ParagraphSeparator
                | GeneralCategory::SpaceSeparator
        )
}

/// The first invisible character of `text` ([`is_invisible`]), if any.
pub fn invisible_char(text: &str) -> Option<char> {
    text.chars().find(|&c| is_invisible(c))
}

/// `U+200B`: how messages name a character that cannot be shown.
pub fn code_point(c: char) -> String {
    format!("U+{:04X}", c as u32)
}

#[cfg(test)]
pub(crate) fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_characters_are_the_ignorable_format_and_separator_ones() {
        for c in [
            '\u{200b}',
            '\u{ad}',
            '\u{2060}',
            '\u{feff}',
            '\u{200e}',
            '\u{3164}',
            '\u{e0041}',
            '\u{2028}',
            '\u{2029}',
            '\u{a0}',
            '\u{3000}',
            '\u{202e}',
            '\u{180e}',
            '\u{fe0f}',
        ] {
            assert!(is_invisible(c), "{}", code_point(c));
        }
        for c in [' ', 'a', '-', '环', 'é', '\u{1F600}'] {
            assert!(!is_invisible(c), "{}", code_point(c));
        }
        assert_eq!(invisible_char("en\u{200b}v"), Some('\u{200b}'));
        assert_eq!(code_point('\u{e0041}'), "U+E0041");
        assert_eq!(code_point('\u{ad}'), "U+00AD");
    }
}
