//! JSON bodies of the three operations and their answers (spec: jdcloud-resource-tag.md
//! section 3), and the error document of section 6.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cloud::client::Admit;
use crate::tags::{Tags, TagsByResource};

/// `{serviceCode, resourceId[]}`: the resources of one call, all of one product line.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Resources<'a> {
    service_code: &'a str,
    resource_id: &'a [String],
}

/// `{key, value}`.
#[derive(Debug, Serialize)]
struct Tag<'a> {
    key: &'a str,
    value: &'a str,
}

/// TagResourcesReqVo and UnTagResourcesReqVo have the same shape.
#[derive(Debug, Serialize)]
struct WriteVo<'a> {
    resources: [Resources<'a>; 1],
    tags: Vec<Tag<'a>>,
}

/// The body of tagResources (`member` = `tagResources`) or unTagResources
/// (`unTagResources`): every tag bound to (or removed from) every resource.
pub(super) fn write_body(
    member: &str,
    service_code: &str,
    resource_ids: &[String],
    tags: &Tags,
) -> String {
    let vo = WriteVo {
        resources: [Resources {
            service_code,
            resource_id: resource_ids,
        }],
        tags: tags.iter().map(|(key, value)| Tag { key, value }).collect(),
    };
    let mut body = serde_json::Map::new();
    // NB: plain data with string keys: serialising cannot fail.
    body.insert(
        member.to_string(),
        serde_json::to_value(vo).expect("write body serialises"),
    );
    serde_json::Value::Object(body).to_string()
}

/// ResourceReqVo: the resources whose tags to read, by id or by tag filter. Page fields stay
/// unset (the operation returns every match in one answer, section 3).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceVo<'a> {
    service_codes: [&'a str; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_ids: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    tag_filters: Vec<TagFilter<'a>>,
}

/// TagFilter: `eq` is an exact match on one of `values` (section 3).
#[derive(Debug, Serialize)]
struct TagFilter<'a> {
    key: &'a str,
    values: [&'a str; 1],
    operator: &'static str,
}

fn describe_vo(vo: ResourceVo<'_>) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Body<'a> {
        resource_vo: ResourceVo<'a>,
    }
    // NB: plain data with string keys: serialising cannot fail.
    serde_json::to_string(&Body { resource_vo: vo }).expect("describe body serialises")
}

/// The body of describeResources by ids.
pub(super) fn describe_body(service_code: &str, resource_ids: &[String]) -> String {
    describe_vo(ResourceVo {
        service_codes: [service_code],
        resource_ids: Some(resource_ids),
        tag_filters: Vec::new(),
    })
}

/// The body of describeResources by tag filter: no `resourceIds`, one `eq` filter per match
/// tag (every filter must hold).
pub(super) fn select_body(service_code: &str, match_tags: &Tags) -> String {
    describe_vo(ResourceVo {
        service_codes: [service_code],
        resource_ids: None,
        tag_filters: match_tags
            .iter()
            .map(|(key, value)| TagFilter {
                key,
                values: [value],
                operator: "eq",
            })
            .collect(),
    })
}

/// `{"requestId", "result": {"data": ...}}`: a success answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer<T> {
    #[serde(default)]
    request_id: Option<String>,
    result: Option<ResultVo<T>>,
}

#[derive(Debug, Deserialize)]
struct ResultVo<T> {
    data: Option<T>,
}

/// The `data` of a tagResources or unTagResources answer.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WriteData {
    #[serde(default)]
    failed_resources_map: Option<FailedResources>,
}

/// `failedResourcesMap`: documented as a list of `{resourceId, msg}`; a map from id to
/// message is accepted too, since the name suggests one and the semantics are the same.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FailedResources {
    List(Vec<FailedResource>),
    Map(BTreeMap<String, serde_json::Value>),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FailedResource {
    resource_id: String,
    #[serde(default)]
    msg: Option<String>,
}

/// A write answer: the request id and the resources that failed, with the cloud's message.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct WriteAnswer {
    pub request_id: Option<String>,
    pub failed: BTreeMap<String, String>,
}

/// Parses the 200 answer of tagResources or unTagResources. An absent `data` or
/// `failedResourcesMap` means every resource succeeded (section 3).
pub(super) fn parse_write(body: &str) -> Result<WriteAnswer, serde_json::Error> {
    let answer: Answer<WriteData> = serde_json::from_str(body)?;
    let failed = answer
        .result
        .and_then(|result| result.data)
        .and_then(|data| data.failed_resources_map)
        .map(|failed| match failed {
            FailedResources::List(list) => list
                .into_iter()
                .map(|entry| (entry.resource_id, entry.msg.unwrap_or_default()))
                .collect(),
            FailedResources::Map(map) => map
                .into_iter()
                .map(|(id, msg)| {
                    let msg = match msg {
                        serde_json::Value::String(text) => text,
                        serde_json::Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    (id, msg)
                })
                .collect(),
        })
        .unwrap_or_default();
    Ok(WriteAnswer {
        request_id: answer.request_id,
        failed,
    })
}

/// The `data` of a describeResources answer.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DescribeData {
    #[serde(default)]
    resource_tag_mapping_list: Option<Vec<Mapping>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Mapping {
    #[serde(default)]
    service_code: Option<String>,
    resource_id: String,
    #[serde(default)]
    tags: Option<Vec<ObservedTag>>,
}

#[derive(Debug, Deserialize)]
struct ObservedTag {
    key: String,
    #[serde(default)]
    value: Option<String>,
}

/// Parses a describeResources answer into `observed`: tags of the resources `admit` keeps
/// (the requested ones, present there; or every one listed of `service_code`). A requested
/// resource that the answer omits carries no tags (section 3), and entries of other
/// resources are ignored.
pub(super) fn merge_describe(
    body: &str,
    service_code: &str,
    observed: &mut TagsByResource,
    admit: Admit,
) -> Result<(), serde_json::Error> {
    let answer: Answer<DescribeData> = serde_json::from_str(body)?;
    let mappings = answer
        .result
        .and_then(|result| result.data)
        .and_then(|data| data.resource_tag_mapping_list)
        .unwrap_or_default();
    for mapping in mappings {
        // NB: a select asked for one product line; a mapping that names another is not one
        // of its resources (the same id may exist on two product lines).
        let other_line = mapping
            .service_code
            .as_deref()
            .is_some_and(|code| code != service_code);
        if admit == Admit::Listed && other_line {
            continue;
        }
        if let Some(tags) = admit.entry(observed, &mapping.resource_id) {
            for tag in mapping.tags.unwrap_or_default() {
                tags.insert(tag.key, tag.value.unwrap_or_default());
            }
        }
    }
    Ok(())
}

/// The error document: `{"requestId", "error": {"code", "status", "message"}}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ErrorAnswer {
    #[serde(default)]
    pub request_id: Option<String>,
    pub error: ErrorVo,
}

/// `error` of the error document. Its `code` repeats the HTTP status, which is what is read.
#[derive(Debug, Deserialize)]
pub(super) struct ErrorVo {
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
}

/// The request id of any answer, when it has one.
pub(super) fn request_id(body: &str) -> Option<String> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Envelope {
        request_id: Option<String>,
    }
    serde_json::from_str::<Envelope>(body).ok()?.request_id
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    use crate::tags::tags;

    fn ids(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn write_bodies_have_the_documented_shape() {
        let body = write_body(
            "tagResources",
            "vm",
            &ids(&["i-uvvtdzuxre", "i-ab12cd34ef"]),
            &tags(&[("env", "prod"), ("owner", "team-web")]),
        );
        let parsed: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            parsed,
            json!({"tagResources": {
                "resources": [{"serviceCode": "vm", "resourceId": ["i-uvvtdzuxre", "i-ab12cd34ef"]}],
                "tags": [{"key": "env", "value": "prod"}, {"key": "owner", "value": "team-web"}]}})
        );
        let body = write_body(
            "unTagResources",
            "disk",
            &ids(&["vol-abc123"]),
            &tags(&[("env", "prod")]),
        );
        let parsed: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            parsed["unTagResources"]["tags"],
            json!([{"key": "env", "value": "prod"}]),
            "untag sends the observed value of each key"
        );
    }

    #[test]
    fn describe_body_names_one_product_line_and_the_ids() {
        let body = describe_body("vm", &ids(&["i-1", "i-2"]));
        let parsed: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            parsed,
            json!({"resourceVo": {"serviceCodes": ["vm"], "resourceIds": ["i-1", "i-2"]}})
        );
    }

    #[test]
    fn select_body_filters_by_every_tag_without_ids() {
        let body = select_body("vm", &tags(&[("team", "web"), ("env", "prod")]));
        let parsed: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(
            parsed,
            json!({"resourceVo": {"serviceCodes": ["vm"], "tagFilters": [
                {"key": "env", "values": ["prod"], "operator": "eq"},
                {"key": "team", "values": ["web"], "operator": "eq"}]}})
        );
    }

    #[test]
    fn a_select_admits_every_listed_resource_of_its_product_line() {
        let body = r#"{"requestId": "r", "result": {"data": {"resourceTagMappingList": [
              {"serviceCode": "vm", "resourceId": "i-1", "tags": [{"key": "team", "value": "web"}]},
              {"resourceId": "i-2", "tags": [{"key": "team", "value": "web"}]},
              {"serviceCode": "disk", "resourceId": "i-3", "tags": [{"key": "team", "value": "web"}]}]}}}"#;
        let mut selected = TagsByResource::new();
        merge_describe(body, "vm", &mut selected, Admit::Listed).unwrap();
        assert_eq!(selected.keys().collect::<Vec<_>>(), ["i-1", "i-2"]);
        assert_eq!(selected["i-1"], tags(&[("team", "web")]));
    }

    #[test]
    fn reads_the_documented_partial_failure() {
        let body = r#"{"requestId": "c1ohtl1r6ev1rn6e1b2vh2pfrhu4k6rs",
            "result": {"data": {"pin": "jdcloud_user", "region": "cn-north-1",
              "failedResourcesMap": [{"resourceId": "i-ab12cd34ef", "msg": "resource not found"}],
              "successCount": 2}}}"#;
        let answer = parse_write(body).unwrap();
        assert_eq!(
            answer.request_id.as_deref(),
            Some("c1ohtl1r6ev1rn6e1b2vh2pfrhu4k6rs")
        );
        assert_eq!(
            answer.failed,
            BTreeMap::from([("i-ab12cd34ef".to_string(), "resource not found".to_string())])
        );
    }

    #[test]
    fn full_success_has_no_failures_whatever_the_shape() {
        for body in [
            r#"{"requestId": "r", "result": {"data": {"successCount": 2}}}"#,
            r#"{"requestId": "r", "result": {"data": {"failedResourcesMap": []}}}"#,
            r#"{"requestId": "r", "result": {"data": {"failedResourcesMap": null}}}"#,
            r#"{"requestId": "r", "result": {"data": null}}"#,
            r#"{"requestId": "r", "result": {}}"#,
            r#"{"requestId": "r"}"#,
        ] {
            assert_eq!(parse_write(body).unwrap().failed, BTreeMap::new(), "{body}");
        }
    }

    #[test]
    fn accepts_failed_resources_as_a_map_too() {
        let body = r#"{"result": {"data": {"failedResourcesMap": {"i-1": "quota exceeded", "i-2": null}}}}"#;
        let answer = parse_write(body).unwrap();
        assert_eq!(answer.failed["i-1"], "quota exceeded");
        assert_eq!(answer.failed["i-2"], "");
    }

    #[test]
    fn refuses_answers_that_are_not_documents() {
        assert!(parse_write("<html>").is_err());
        assert!(parse_write(r#"{"result": {"data": {"failedResourcesMap": 3}}}"#).is_err());
        let mut observed = TagsByResource::new();
        assert!(merge_describe("[]", "vm", &mut observed, Admit::Listed).is_err());
    }

    #[test]
    fn describe_fills_requested_resources_only() {
        let body = r#"{"requestId": "r", "result": {"data": {"pin": "p", "region": "cn-north-1",
            "resourceTagMappingList": [
              {"jrn": null, "serviceCode": "vm", "resourceId": "i-1",
               "tags": [{"key": "env", "value": "prod"}, {"key": "empty", "value": null}]},
              {"serviceCode": "vm", "resourceId": "i-2", "tags": []},
              {"serviceCode": "vm", "resourceId": "i-other", "tags": [{"key": "x", "value": "y"}]}]}}}"#;
        let mut observed: TagsByResource = ["i-1", "i-2", "i-3"]
            .iter()
            .map(|id| (id.to_string(), Tags::new()))
            .collect();
        merge_describe(body, "vm", &mut observed, Admit::Requested).unwrap();
        assert_eq!(observed["i-1"], tags(&[("env", "prod"), ("empty", "")]));
        assert!(observed["i-2"].is_empty());
        assert!(observed["i-3"].is_empty(), "omitted means no tags");
        assert!(!observed.contains_key("i-other"));
    }

    #[test]
    fn reads_the_error_document() {
        let body = r#"{"requestId": "bkrovrdrv8ewru46782326noreauvdsf",
            "error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "Invalid parameter tagResources.tags"}}"#;
        let answer: ErrorAnswer = serde_json::from_str(body).unwrap();
        assert_eq!(
            answer.request_id.as_deref(),
            Some("bkrovrdrv8ewru46782326noreauvdsf")
        );
        assert_eq!(answer.error.status.as_deref(), Some("INVALID_ARGUMENT"));
        assert_eq!(
            request_id(body).as_deref(),
            Some("bkrovrdrv8ewru46782326noreauvdsf")
        );
    }
}
