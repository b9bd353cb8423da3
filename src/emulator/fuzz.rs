//! The emulator's request parsers under fuzzing: no query, form body or JSON body makes them
//! panic; a refusal is an error answer of the cloud's own kind.

use proptest::prelude::*;
use serde_json::Value;

use super::alibaba::fuzzing as alibaba;
use super::jdcloud::fuzzing as jdcloud;
use crate::cloud::fuzzing::body;

const JD_VOCABULARY: &[&str] = &[
    "tagResources",
    "unTagResources",
    "resourceVo",
    "resources",
    "serviceCode",
    "resourceId",
    "tags",
    "key",
    "value",
    "serviceCodes",
    "resourceIds",
    "tagFilters",
    "values",
    "operator",
    "regionId",
];

/// Query strings and form bodies from the RPC vocabulary: names with and without indexes,
/// encoded and broken escapes, repeats.
fn rpc_text() -> impl Strategy<Value = String> {
    let name = prop::sample::select(vec![
        "Action",
        "Version",
        "RegionId",
        "ResourceType",
        "ResourceId.1",
        "ResourceId.2",
        "ResourceId.0",
        "ResourceId.x",
        "ResourceId.51",
        "Tag.1.Key",
        "Tag.1.Value",
        "Tag.2.Key",
        "Tag.21.Key",
        "TagKey.1",
        "TagKey.21",
        "NextToken",
        "All",
        "MaxResult",
        "Format",
        "ResourceARN.1",
        "ResourceARN.2",
        "Tags",
        "Category",
        "PageSize",
    ]);
    let value = prop_oneof![
        Just("TagResources".to_string()),
        Just("UntagResources".to_string()),
        Just("ListTagResources".to_string()),
        Just("2016-07-14".to_string()),
        Just("apiGroup".to_string()),
        Just("arn%3Aacs%3Aecs%3A*%3A*%3Ainstance%2Fi-1".to_string()),
        Just("acs:rds::1:dbinstance/".to_string()),
        Just("%7B%22k%22%3A%22v%22%7D".to_string()),
        Just("Custom".to_string()),
        Just("1000".to_string()),
        Just("%".to_string()),
        Just("%zz".to_string()),
        Just("%E4%B8".to_string()),
        ".{0,10}",
    ];
    prop::collection::vec((name, value), 0..12).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("&")
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn alibaba_requests_never_panic(
        query in prop_oneof![rpc_text(), any::<String>()],
        body in prop_oneof![rpc_text().prop_map(String::into_bytes), prop::collection::vec(any::<u8>(), 0..64)],
    ) {
        alibaba::parse_every_operation(&query, &body);
    }

    #[test]
    fn jdcloud_bodies_never_panic(
        body in body(JD_VOCABULARY),
        region in prop::sample::select(vec!["cn-north-1", "cn-all", ""]),
    ) {
        if let Ok(document) = serde_json::from_str::<Value>(&body) {
            jdcloud::parse_every_operation(&document, region);
        }
    }
}
