//! The three operations on the store, with JD Cloud's rules (spec: jdcloud-resource-tag.md
//! sections 3 to 5). Pure: a request in, the store changed and an answer out.
//!
//! Writes are not atomic across resources: each resource succeeds or is listed in
//! `failedResourcesMap` on its own (section 3); within one resource a write is all or
//! nothing (every tag of the call, or none).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use super::JdError;
use super::rules::JdcloudConfig;
use crate::emulator::inventory::JDCLOUD;
use crate::emulator::store::{ResourceKey, Store};

/// The region every `cdn` resource answers in (section 1).
pub(crate) const CDN_REGION: &str = "cn-all";

/// `{serviceCode, resourceId[]}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourcesVo {
    service_code: Option<String>,
    #[serde(default)]
    resource_id: Vec<String>,
}

/// `{key, value}`; both required by the API.
#[derive(Debug, Deserialize)]
struct TagVo {
    key: Option<String>,
    value: Option<String>,
}

/// TagResourcesReqVo and UnTagResourcesReqVo.
#[derive(Debug, Deserialize)]
struct WriteVo {
    resources: Option<Vec<ResourcesVo>>,
    tags: Option<Vec<TagVo>>,
}

/// A write, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct WriteRequest {
    /// The one product line of the call.
    pub service_code: String,
    /// Resource ids, without repeats, in the order sent.
    pub resource_ids: Vec<String>,
    /// Key to value, in the order sent.
    pub tags: Vec<(String, String)>,
}

/// Which write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Write {
    /// tagResources: bind every tag to every resource, replacing values of existing keys.
    Tag,
    /// unTagResources: remove every key whose value matches.
    Untag,
}

impl Write {
    /// The body member that holds the request.
    pub fn member(self) -> &'static str {
        match self {
            Write::Tag => "tagResources",
            Write::Untag => "unTagResources",
        }
    }
}

fn invalid(message: impl Into<String>) -> JdError {
    JdError::invalid_argument(message)
}

/// Reads and checks a write request of `body` (the whole JSON document) in `region`.
pub(crate) fn write_request(
    write: Write,
    body: &Value,
    region: &str,
    config: &JdcloudConfig,
) -> Result<WriteRequest, JdError> {
    let member = write.member();
    let vo = body
        .get(member)
        .ok_or_else(|| invalid(format!("Invalid parameter {member}: required")))?;
    let vo: WriteVo = serde_json::from_value(vo.clone())
        .map_err(|error| invalid(format!("Invalid parameter {member}: {error}")))?;
    let resources = vo
        .resources
        .filter(|resources| !resources.is_empty())
        .ok_or_else(|| invalid(format!("Invalid parameter {member}.resources: required")))?;
    // NB: all resources of one call belong to one product line (section 3, [doc]).
    let mut service_code: Option<String> = None;
    let mut resource_ids: Vec<String> = Vec::new();
    for (index, entry) in resources.into_iter().enumerate() {
        let code = entry
            .service_code
            .filter(|code| !code.is_empty())
            .ok_or_else(|| {
                invalid(format!(
                    "Invalid parameter {member}.resources[{index}].serviceCode: required"
                ))
            })?;
        match &service_code {
            Some(first) if *first != code => {
                return Err(invalid(format!(
                    "Invalid parameter {member}.resources: two product lines ({first} and \
                     {code}); all resources of one call must belong to one product line"
                )));
            }
            _ => service_code = Some(code),
        }
        for id in entry.resource_id {
            if id.is_empty() {
                return Err(invalid(format!(
                    "Invalid parameter {member}.resources[{index}].resourceId: empty id"
                )));
            }
            if !resource_ids.contains(&id) {
                resource_ids.push(id);
            }
        }
    }
    // NB: resources is non-empty, so the first entry set the code.
    let service_code = service_code.unwrap_or_default();
    config.check_service_code(member, &service_code, region)?;
    if resource_ids.is_empty() {
        return Err(invalid(format!(
            "Invalid parameter {member}.resources.resourceId: required"
        )));
    }
    let limits = &config.limits;
    if resource_ids.len() > limits.resources_per_call {
        return Err(invalid(format!(
            "Invalid parameter {member}.resources.resourceId: {} resources; at most {} per call",
            resource_ids.len(),
            limits.resources_per_call
        )));
    }
    let tags = vo
        .tags
        .filter(|tags| !tags.is_empty())
        .ok_or_else(|| invalid(format!("Invalid parameter {member}.tags: required")))?;
    if tags.len() > limits.tags_per_call {
        return Err(invalid(format!(
            "Invalid parameter {member}.tags: {} tags; at most {} per call",
            tags.len(),
            limits.tags_per_call
        )));
    }
    let mut checked: Vec<(String, String)> = Vec::new();
    for (index, tag) in tags.into_iter().enumerate() {
        let field = format!("{member}.tags[{index}]");
        let key = tag
            .key
            .ok_or_else(|| invalid(format!("Invalid parameter {field}.key: required")))?;
        let value = tag
            .value
            .ok_or_else(|| invalid(format!("Invalid parameter {field}.value: required")))?;
        config.check_tag(&field, &key, &value)?;
        if checked.iter().any(|(seen, _)| *seen == key) {
            return Err(invalid(format!(
                "Invalid parameter {field}.key: {key:?} appears twice in the call"
            )));
        }
        checked.push((key, value));
    }
    Ok(WriteRequest {
        service_code,
        resource_ids,
        tags: checked,
    })
}

/// The `data` of a write answer: the resources that failed and the successful bindings.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct WriteOutcome {
    /// Resource id and message, in the order of the request.
    pub failed: Vec<(String, String)>,
    /// Resource-tag bindings made (or removed).
    pub success_count: usize,
}

/// Applies a validated write to the resources of `region`.
pub(crate) fn write(
    store: &mut Store,
    write: Write,
    request: &WriteRequest,
    region: &str,
    config: &JdcloudConfig,
) -> WriteOutcome {
    let mut outcome = WriteOutcome::default();
    for id in &request.resource_ids {
        let key = ResourceKey::new(JDCLOUD, &request.service_code, id);
        let resource = match store.get_mut(&key) {
            Some(resource) if resource.is_in(Some(region)) => resource,
            _ => {
                outcome
                    .failed
                    .push((id.clone(), "resource not found".to_string()));
                continue;
            }
        };
        let result = match write {
            Write::Tag => {
                let mut tags = resource.tags.clone();
                for (key, value) in &request.tags {
                    tags.insert(key.clone(), value.clone());
                }
                // NB: system tags (reserved prefixes) do not count toward the quota.
                let user_tags = tags.keys().filter(|key| !config.is_reserved(key)).count();
                if user_tags > config.limits.tags_per_resource {
                    Err(format!(
                        "tag quota exceeded: the resource would carry {user_tags} tags; at most \
                         {} per resource",
                        config.limits.tags_per_resource
                    ))
                } else {
                    Ok(tags)
                }
            }
            Write::Untag => {
                let mut tags = resource.tags.clone();
                let mismatch = request.tags.iter().find_map(|(key, value)| {
                    tags.get(key)
                        .filter(|current| *current != value)
                        .map(|current| (key, value, current))
                });
                match mismatch {
                    // NB: the value must match for the key to go (section 3, [inferred]).
                    Some((key, value, current)) => Err(format!(
                        "tag {key}: the value given ({value:?}) is not the resource's value \
                         ({current:?}); nothing was removed"
                    )),
                    None => {
                        for (key, _) in &request.tags {
                            tags.remove(key);
                        }
                        Ok(tags)
                    }
                }
            }
        };
        match result {
            Ok(tags) => {
                resource.tags = tags;
                outcome.success_count += request.tags.len();
            }
            Err(message) => outcome.failed.push((id.clone(), message)),
        }
    }
    outcome
}

/// ResourceReqVo.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceVo {
    service_codes: Option<Vec<String>>,
    resource_ids: Option<Vec<String>>,
    tag_filters: Option<Vec<TagFilter>>,
    show_tag_status: Option<u8>,
}

/// `{key, values[], operator}`; `eq` (the default) is exact match on one of the values.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub(crate) struct TagFilter {
    key: String,
    #[serde(default)]
    values: Vec<String>,
    #[serde(default)]
    operator: Option<String>,
}

/// A describeResources request, validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct DescribeRequest {
    /// The product line, when given.
    pub service_code: Option<String>,
    /// The ids, when given.
    pub resource_ids: Option<Vec<String>>,
    /// Tag filters, all of which must hold.
    pub tag_filters: Vec<TagFilter>,
    /// `showTagStatus` 1: system tags (reserved prefixes) too; 0, the default: user tags.
    pub system_tags: bool,
}

/// Reads and checks a describeResources request.
pub(crate) fn describe_request(
    body: &Value,
    region: &str,
    config: &JdcloudConfig,
) -> Result<DescribeRequest, JdError> {
    let vo: ResourceVo = match body.get("resourceVo") {
        None | Some(Value::Null) => ResourceVo::default(),
        Some(vo) => serde_json::from_value(vo.clone())
            .map_err(|error| invalid(format!("Invalid parameter resourceVo: {error}")))?,
    };
    let codes = vo.service_codes.unwrap_or_default();
    if codes.len() > 1 {
        return Err(invalid(format!(
            "Invalid parameter resourceVo.serviceCodes: one product line per call; got {}",
            codes.join(", ")
        )));
    }
    let service_code = codes.into_iter().next();
    if let Some(code) = &service_code {
        config.check_service_code("resourceVo", code, region)?;
    }
    if let Some(ids) = &vo.resource_ids
        && ids.len() > config.limits.resources_per_call
    {
        return Err(invalid(format!(
            "Invalid parameter resourceVo.resourceIds: {} ids; at most {} per call",
            ids.len(),
            config.limits.resources_per_call
        )));
    }
    let tag_filters = vo.tag_filters.unwrap_or_default();
    for (index, filter) in tag_filters.iter().enumerate() {
        match filter.operator.as_deref() {
            None | Some("eq") => {}
            Some(other) => {
                return Err(invalid(format!(
                    "Invalid parameter resourceVo.tagFilters[{index}].operator: {other:?}; \
                     this emulator serves eq"
                )));
            }
        }
    }
    let system_tags = match vo.show_tag_status {
        None | Some(0) => false,
        Some(1) => true,
        Some(other) => {
            return Err(invalid(format!(
                "Invalid parameter resourceVo.showTagStatus: {other}; 0 (user tags) or 1 (also \
                 system tags)"
            )));
        }
    };
    Ok(DescribeRequest {
        service_code,
        resource_ids: vo.resource_ids,
        tag_filters,
        system_tags,
    })
}

/// `resourceTagMappingList`: the tagged resources of `region` that match, by service code
/// and id; untagged resources are omitted (section 3).
pub(crate) fn describe(
    store: &Store,
    request: &DescribeRequest,
    region: &str,
    config: &JdcloudConfig,
) -> Vec<Value> {
    let codes: Vec<String> = match &request.service_code {
        Some(code) => vec![code.clone()],
        None => store.jdcloud_types(),
    };
    let mut list = Vec::new();
    for code in &codes {
        for (id, resource) in store.of_type(JDCLOUD, code) {
            let wanted = request
                .resource_ids
                .as_ref()
                .is_none_or(|ids| ids.iter().any(|wanted| wanted == id));
            if !wanted || !resource.is_in(Some(region)) {
                continue;
            }
            let shown: BTreeMap<String, String> = resource
                .tags
                .iter()
                .filter(|(key, _)| request.system_tags || !config.is_reserved(key))
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect();
            let matches = request.tag_filters.iter().all(|filter| {
                shown
                    .get(&filter.key)
                    .is_some_and(|value| filter.values.is_empty() || filter.values.contains(value))
            });
            if !shown.is_empty() && matches {
                list.push(mapping(code, id, &shown));
            }
        }
    }
    list
}

fn mapping(code: &str, id: &str, tags: &BTreeMap<String, String>) -> Value {
    let tags: Vec<Value> = tags
        .iter()
        .map(|(key, value)| json!({"key": key, "value": value}))
        .collect();
    json!({"jrn": null, "serviceCode": code, "resourceId": id, "tags": tags})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::emulator::inventory::InventoryResource;

    fn store() -> Store {
        let resource =
            |id: &str, region: &str, code: &str, tags: &[(&str, &str)]| InventoryResource {
                cloud: JDCLOUD.to_string(),
                region: region.to_string(),
                resource_type: code.to_string(),
                id: id.to_string(),
                tags: tags
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            };
        Store::from_resources(&[
            resource("i-1", "cn-north-1", "vm", &[("env", "dev")]),
            resource("i-2", "cn-north-1", "vm", &[]),
            resource("i-east", "cn-east-2", "vm", &[("env", "prod")]),
            resource("cdn-1", "cn-all", "cdn", &[]),
        ])
    }

    fn body(member: &str, code: &str, ids: &[&str], tags: &[(&str, &str)]) -> Value {
        let tags: Vec<Value> = tags
            .iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect();
        json!({member: {"resources": [{"serviceCode": code, "resourceId": ids}], "tags": tags},
               "regionId": "ignored"})
    }

    fn tag(store: &mut Store, ids: &[&str], tags: &[(&str, &str)]) -> WriteOutcome {
        let config = JdcloudConfig::default();
        let request = write_request(
            Write::Tag,
            &body("tagResources", "vm", ids, tags),
            "cn-north-1",
            &config,
        )
        .unwrap();
        write(store, Write::Tag, &request, "cn-north-1", &config)
    }

    fn tags_of(store: &Store, code: &str, id: &str) -> BTreeMap<String, String> {
        store
            .get(&ResourceKey::new(JDCLOUD, code, id))
            .unwrap()
            .tags
            .clone()
    }

    #[test]
    fn tagging_overwrites_and_reports_unknown_or_foreign_region_resources_alone() {
        let mut store = store();
        let outcome = tag(
            &mut store,
            &["i-1", "i-2", "i-gone", "i-east"],
            &[("env", "prod")],
        );
        assert_eq!(
            outcome.failed,
            vec![
                ("i-gone".to_string(), "resource not found".to_string()),
                ("i-east".to_string(), "resource not found".to_string()),
            ]
        );
        assert_eq!(outcome.success_count, 2);
        assert_eq!(tags_of(&store, "vm", "i-1")["env"], "prod");
        assert_eq!(tags_of(&store, "vm", "i-2")["env"], "prod");
        assert_eq!(tags_of(&store, "vm", "i-east")["env"], "prod", "untouched");
    }

    #[test]
    fn the_tag_quota_fails_that_resource_only_and_whole() {
        let mut store = store();
        let nine: Vec<(String, String)> = (0..9).map(|i| (format!("k{i}"), "v".into())).collect();
        let nine: Vec<(&str, &str)> = nine.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert!(
            tag(&mut store, &["i-1"], &nine).failed.is_empty(),
            "1 + 9 = 10 fits"
        );
        let outcome = tag(&mut store, &["i-1", "i-2"], &[("a", "1"), ("b", "2")]);
        assert_eq!(outcome.failed.len(), 1);
        assert_eq!(outcome.failed[0].0, "i-1");
        assert!(
            outcome.failed[0].1.contains("quota"),
            "{}",
            outcome.failed[0].1
        );
        assert!(
            !tags_of(&store, "vm", "i-1").contains_key("a"),
            "nothing of the call"
        );
        assert_eq!(tags_of(&store, "vm", "i-2").len(), 2);
    }

    #[test]
    fn untag_removes_only_keys_whose_value_matches() {
        let mut store = store();
        tag(&mut store, &["i-2"], &[("env", "prod"), ("team", "web")]);
        let config = JdcloudConfig::default();
        let untag = |store: &mut Store, tags: &[(&str, &str)]| {
            let request = write_request(
                Write::Untag,
                &body("unTagResources", "vm", &["i-1", "i-2"], tags),
                "cn-north-1",
                &config,
            )
            .unwrap();
            write(store, Write::Untag, &request, "cn-north-1", &config)
        };
        let outcome = untag(&mut store, &[("env", "prod"), ("team", "web")]);
        assert_eq!(outcome.failed.len(), 1, "{outcome:?}");
        assert_eq!(outcome.failed[0].0, "i-1");
        assert!(outcome.failed[0].1.contains("is not the resource's value"));
        assert_eq!(tags_of(&store, "vm", "i-1")["env"], "dev", "kept");
        assert!(tags_of(&store, "vm", "i-2").is_empty());
        let outcome = untag(&mut store, &[("absent", "x")]);
        assert!(outcome.failed.is_empty(), "absent keys are no failure");
    }

    #[test]
    fn requests_break_the_documented_rules_with_invalid_argument() {
        let config = JdcloudConfig::default();
        let refuse = |body: Value, region: &str, needle: &str| {
            let error = write_request(Write::Tag, &body, region, &config).unwrap_err();
            assert_eq!(error.http, 400, "{needle}");
            assert_eq!(error.status, "INVALID_ARGUMENT");
            assert!(
                error.message.contains(needle),
                "{needle:?} in {}",
                error.message
            );
        };
        refuse(json!({}), "cn-north-1", "tagResources: required");
        refuse(
            json!({"tagResources": {"resources": [
                {"serviceCode": "vm", "resourceId": ["i-1"]},
                {"serviceCode": "disk", "resourceId": ["vol-1"]}],
                "tags": [{"key": "a", "value": "b"}]}}),
            "cn-north-1",
            "one product line",
        );
        refuse(
            body("tagResources", "kafka", &["k-1"], &[("a", "b")]),
            "cn-north-1",
            "kafka",
        );
        refuse(
            body("tagResources", "cdn", &["cdn-1"], &[("a", "b")]),
            "cn-north-1",
            "cn-all",
        );
        refuse(
            body("tagResources", "vm", &["i-1"], &[("a", "b")]),
            "cn-all",
            "cn-all",
        );
        let ids: Vec<String> = (0..51).map(|i| format!("i-{i}")).collect();
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        refuse(
            body("tagResources", "vm", &ids, &[("a", "b")]),
            "cn-north-1",
            "at most 50",
        );
        let many: Vec<(String, String)> = (0..11).map(|i| (format!("k{i}"), "v".into())).collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        refuse(
            body("tagResources", "vm", &["i-1"], &many),
            "cn-north-1",
            "at most 10",
        );
        refuse(
            body("tagResources", "vm", &["i-1"], &[("", "v")]),
            "cn-north-1",
            "key",
        );
        let long_key = "k".repeat(128);
        refuse(
            body("tagResources", "vm", &["i-1"], &[(&long_key, "v")]),
            "cn-north-1",
            "127",
        );
        let long_value = "v".repeat(256);
        refuse(
            body("tagResources", "vm", &["i-1"], &[("k", &long_value)]),
            "cn-north-1",
            "255",
        );
        refuse(
            body("tagResources", "vm", &["i-1"], &[("jrn:x", "v")]),
            "cn-north-1",
            "jrn:",
        );
        refuse(
            body("tagResources", "vm", &["i-1"], &[("JDC-x", "v")]),
            "cn-north-1",
            "jdc-",
        );
        refuse(
            body("tagResources", "vm", &["i-1"], &[("a", "1"), ("a", "2")]),
            "cn-north-1",
            "twice",
        );
        refuse(
            json!({"tagResources": {"resources": [{"serviceCode": "vm", "resourceId": ["i-1"]}],
                   "tags": [{"key": "a"}]}}),
            "cn-north-1",
            "value: required",
        );
        let ok = write_request(
            Write::Tag,
            &body("tagResources", "cdn", &["cdn-1"], &[("a", "")]),
            "cn-all",
            &config,
        );
        assert!(ok.is_ok(), "cdn in cn-all, empty value: {ok:?}");
    }

    #[test]
    fn describe_lists_tagged_resources_of_the_region_only() {
        let store = store();
        let config = JdcloudConfig::default();
        let request = describe_request(
            &json!({"resourceVo": {"serviceCodes": ["vm"], "resourceIds": ["i-1", "i-2", "i-east"]}}),
            "cn-north-1",
            &config,
        )
        .unwrap();
        let list = describe(&store, &request, "cn-north-1", &config);
        assert_eq!(
            list,
            vec![
                json!({"jrn": null, "serviceCode": "vm", "resourceId": "i-1",
                        "tags": [{"key": "env", "value": "dev"}]})
            ]
        );
        let filtered = describe_request(
            &json!({"resourceVo": {"tagFilters": [{"key": "env", "values": ["prod"]}]}}),
            "cn-east-2",
            &config,
        )
        .unwrap();
        assert_eq!(describe(&store, &filtered, "cn-east-2", &config).len(), 1);
        assert!(
            describe_request(
                &json!({"resourceVo": {"serviceCodes": ["vm", "disk"]}}),
                "cn-north-1",
                &config
            )
            .is_err()
        );
    }
}
