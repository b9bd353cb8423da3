//! The answer parsers under fuzzing: no input makes them panic, and what they accept keeps
//! its invariants (spec: jdcloud-resource-tag.md sections 3 and 6).

use proptest::prelude::*;

use super::{errors, wire};
use crate::cloud::client::Admit;
use crate::cloud::fuzzing::body;
use crate::tags::{Tags, TagsByResource};

const VOCABULARY: &[&str] = &[
    "requestId",
    "result",
    "data",
    "pin",
    "region",
    "failedResourcesMap",
    "successCount",
    "resourceId",
    "msg",
    "resourceTagMappingList",
    "serviceCode",
    "jrn",
    "tags",
    "key",
    "value",
    "error",
    "code",
    "status",
    "message",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn write_answers_never_panic(text in body(VOCABULARY)) {
        if let Ok(answer) = wire::parse_write(&text) {
            for (id, message) in &answer.failed {
                let error = errors::resource_error(message);
                prop_assert!(!error.message.is_empty(), "{}", id);
            }
        }
    }

    #[test]
    fn describe_answers_never_panic_and_only_fill_requested_resources(text in body(VOCABULARY)) {
        let requested = ["i-1", "i-2"];
        let mut observed: TagsByResource =
            requested.iter().map(|id| (id.to_string(), Tags::new())).collect();
        let _ = wire::merge_describe(&text, "vm", &mut observed, Admit::Requested);
        prop_assert_eq!(observed.len(), requested.len());
    }

    #[test]
    fn error_answers_never_panic_and_keep_the_status(
        text in body(VOCABULARY),
        status in 100u16..600,
    ) {
        let error = errors::from_answer("tagResources", status, &text);
        prop_assert_eq!(error.http_status, Some(status));
        prop_assert!(!error.code.is_empty());
        let _ = wire::request_id(&text);
    }
}
