//! The answer parsers under fuzzing: no input makes them panic, and what they accept keeps
//! its invariants (spec: alibaba-rpc-tagging.md sections 5 and 7).

use proptest::prelude::*;

use super::tag_service::{ArnType, wire};
use super::{errors, list};
use crate::cloud::client::Admit;
use crate::cloud::fuzzing::body;
use crate::tags::{Tags, TagsByResource};

const VOCABULARY: &[&str] = &[
    "RequestId",
    "NextToken",
    "TagResources",
    "TagResource",
    "ResourceId",
    "ResourceType",
    "TagKey",
    "TagValue",
    "Code",
    "Message",
    "Recommend",
    "HostId",
    "ResourceARN",
    "Tags",
    "Key",
    "Value",
    "Category",
    "FailedResources",
    "FailedResource",
    "Result",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn list_pages_never_panic_and_only_fill_requested_resources(text in body(VOCABULARY)) {
        let requested = ["r-1", "r-2"];
        let mut observed: TagsByResource =
            requested.iter().map(|id| (id.to_string(), Tags::new())).collect();
        if let Ok(page) = list::Page::parse(&text) {
            if let Some(token) = page.next_token() {
                prop_assert!(!token.is_empty() && token != "-1");
            }
            page.merge_into(&mut observed, Admit::Requested);
        }
        prop_assert_eq!(observed.len(), requested.len());
    }

    #[test]
    fn error_answers_never_panic_and_keep_the_status(
        text in body(VOCABULARY),
        status in 100u16..600,
    ) {
        let error = errors::from_answer("ListTagResources", status, &text);
        prop_assert_eq!(error.http_status, Some(status));
        prop_assert!(!error.code.is_empty());
        prop_assert!(error.message.chars().count() <= 2 * text.chars().count() + 400);
    }

    #[test]
    fn tag_service_answers_never_panic_and_only_name_resources_of_the_call(
        text in body(VOCABULARY),
    ) {
        let kind = ArnType { product: "ecs", resource_type: "instance" };
        let requested = ["i-1".to_string(), "i-2".to_string()];
        let mut observed: TagsByResource =
            requested.iter().map(|id| (id.clone(), Tags::new())).collect();
        if let Ok(Some(token)) = wire::read_list(&kind, &text, &mut observed, Admit::Requested) {
            prop_assert!(!token.is_empty());
        }
        prop_assert_eq!(observed.len(), requested.len());
        if let Ok(result) = wire::read_write(&kind, &requested, &text) {
            prop_assert!(result.failed.keys().all(|id| requested.contains(id)));
        }
    }
}
