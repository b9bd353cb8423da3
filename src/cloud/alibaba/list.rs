//! Product ListTagResources answers: parsing and grouping by resource (spec:
//! alibaba-rpc-tagging.md section 5).

use serde::Deserialize;

use crate::cloud::client::Admit;
use crate::tags::TagsByResource;

/// One page of a ListTagResources answer.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Page {
    /// The token of the next page, as sent.
    next_token: Option<String>,
    #[serde(default)]
    tag_resources: TagResources,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagResources {
    #[serde(default)]
    tag_resource: Vec<TagResource>,
}

/// One (resource, tag) pair. `ResourceType` is informational (`apiGroup` or
/// `ALIYUN::<PRODUCT>::<TYPE>`) and not read.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TagResource {
    resource_id: String,
    tag_key: String,
    tag_value: Option<String>,
}

impl Page {
    /// Parses a page from the JSON answer.
    pub(super) fn parse(body: &str) -> Result<Page, serde_json::Error> {
        serde_json::from_str(body)
    }

    /// The token of the next page; `None` when the answer says there is none (token absent,
    /// empty, or `-1`).
    pub(super) fn next_token(&self) -> Option<&str> {
        self.next_token
            .as_deref()
            .filter(|token| !token.is_empty() && *token != "-1")
    }

    /// Adds this page's tags to `observed`, for the resources `admit` keeps: those already
    /// present there (the ones requested), or every one listed (a select). A resource's
    /// entries may span pages; they add up.
    pub(super) fn merge_into(self, observed: &mut TagsByResource, admit: Admit) {
        for entry in self.tag_resources.tag_resource {
            if let Some(tags) = admit.entry(observed, &entry.resource_id) {
                tags.insert(entry.tag_key, entry.tag_value.unwrap_or_default());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tags::Tags;

    fn observed(ids: &[&str]) -> TagsByResource {
        ids.iter().map(|id| (id.to_string(), Tags::new())).collect()
    }

    #[test]
    fn groups_entries_by_resource_and_ignores_unrequested_ids() {
        let body = r#"{
            "RequestId": "74F02441",
            "NextToken": "1d2db86sca4384811e0b5e8707e68181f",
            "TagResources": {"TagResource": [
                {"ResourceId": "g1", "ResourceType": "apiGroup", "TagKey": "env", "TagValue": "prod"},
                {"ResourceId": "g1", "ResourceType": "ALIYUN::CLOUDAPI::GROUP", "TagKey": "owner", "TagValue": "web"},
                {"ResourceId": "g2", "ResourceType": "apiGroup", "TagKey": "flag", "TagValue": ""},
                {"ResourceId": "elsewhere", "ResourceType": "apiGroup", "TagKey": "env", "TagValue": "dev"}
            ]}
        }"#;
        let page = Page::parse(body).expect("the documented answer parses");
        assert_eq!(page.next_token(), Some("1d2db86sca4384811e0b5e8707e68181f"));
        let mut tags = observed(&["g1", "g2", "g3"]);
        page.merge_into(&mut tags, Admit::Requested);
        assert_eq!(tags.len(), 3);
        assert_eq!(tags["g1"]["env"], "prod");
        assert_eq!(tags["g1"]["owner"], "web");
        assert_eq!(tags["g2"]["flag"], "");
        assert!(tags["g3"].is_empty());
        assert!(!tags.contains_key("elsewhere"));
    }

    #[test]
    fn a_select_admits_every_listed_resource_and_adds_up_its_pages() {
        let first = r#"{"NextToken":"t2","TagResources":{"TagResource":[
            {"ResourceId": "g1", "TagKey": "team", "TagValue": "web"},
            {"ResourceId": "g2", "TagKey": "team", "TagValue": "web"}
        ]}}"#;
        let second = r#"{"NextToken":"-1","TagResources":{"TagResource":[
            {"ResourceId": "g2", "TagKey": "env", "TagValue": "prod"}
        ]}}"#;
        let mut selected = TagsByResource::new();
        Page::parse(first)
            .expect("parses")
            .merge_into(&mut selected, Admit::Listed);
        Page::parse(second)
            .expect("parses")
            .merge_into(&mut selected, Admit::Listed);
        assert_eq!(selected.len(), 2);
        assert_eq!(selected["g1"].len(), 1);
        assert_eq!(selected["g2"]["team"], "web");
        assert_eq!(selected["g2"]["env"], "prod");
    }

    #[test]
    fn absent_empty_and_minus_one_tokens_end_the_listing() {
        for body in [
            r#"{"RequestId":"R"}"#,
            r#"{"RequestId":"R","NextToken":null}"#,
            r#"{"RequestId":"R","NextToken":""}"#,
            r#"{"RequestId":"R","NextToken":"-1"}"#,
        ] {
            let page = Page::parse(body).expect("parses");
            assert_eq!(page.next_token(), None, "{body}");
        }
        let page = Page::parse(r#"{"NextToken":"abc"}"#).expect("parses");
        assert_eq!(page.next_token(), Some("abc"));
    }

    #[test]
    fn missing_or_empty_tag_lists_mean_no_tags() {
        for body in [
            r#"{"RequestId":"R"}"#,
            r#"{"RequestId":"R","TagResources":{}}"#,
            r#"{"RequestId":"R","TagResources":{"TagResource":[]}}"#,
        ] {
            let mut tags = observed(&["g1"]);
            Page::parse(body)
                .expect("parses")
                .merge_into(&mut tags, Admit::Requested);
            assert!(tags["g1"].is_empty(), "{body}");
        }
    }

    #[test]
    fn malformed_entries_are_an_error() {
        let body = r#"{"TagResources":{"TagResource":[{"ResourceId":"g1"}]}}"#;
        assert!(Page::parse(body).is_err());
        assert!(Page::parse("<Response/>").is_err());
    }
}
