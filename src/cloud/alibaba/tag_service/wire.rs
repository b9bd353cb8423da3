//! The Tag service's answers (spec: alibaba-rpc-tagging.md section 5, "Tag service"):
//! ListTagResources grouped by ARN with each tag's `Category`, and the `FailedResources` of
//! TagResources and UntagResources.

use serde::Deserialize;

use super::arn::{ArnType, parse_arn};
use crate::cloud::client::{Admit, AnswerError};
use crate::cloud::{ResourceError, WriteResult};
use crate::tags::TagsByResource;

/// The category of the tags the cloud itself sets: never written, pruned or counted.
const SYSTEM: &str = "System";

/// A list that the answer may give as a plain array (the Tag service's JSON) or wrapped in an
/// object of one member (the XML-shaped JSON of older RPC answers).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Listed<T> {
    Plain(Vec<T>),
    Wrapped(std::collections::BTreeMap<String, Vec<T>>),
}

impl<T> Default for Listed<T> {
    fn default() -> Self {
        Listed::Plain(Vec::new())
    }
}

impl<T> Listed<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            Listed::Plain(items) => items,
            Listed::Wrapped(map) => map.into_values().flatten().collect(),
        }
    }
}

/// One page of a ListTagResources answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListPage {
    next_token: Option<String>,
    #[serde(default)]
    tag_resources: Option<Listed<TaggedResource>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TaggedResource {
    #[serde(rename = "ResourceARN")]
    resource_arn: String,
    #[serde(default)]
    tags: Option<Listed<Tag>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Tag {
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    category: Option<String>,
}

/// Reads one page into `observed` (resources of `kind` that `admit` keeps: the requested
/// ids, or every one listed; others are ignored) and says the next page's token: `None`
/// when absent or empty (the Tag service's end of listing). Tags of category `System` are
/// left out: tagbinder never writes, prunes or counts them.
pub(in crate::cloud::alibaba) fn read_list(
    kind: &ArnType<'_>,
    body: &str,
    observed: &mut TagsByResource,
    admit: Admit,
) -> Result<Option<String>, AnswerError> {
    let page: ListPage = serde_json::from_str(body)?;
    for resource in page.tag_resources.unwrap_or_default().into_vec() {
        let Some(arn) = parse_arn(&resource.resource_arn) else {
            tracing::debug!(arn = %resource.resource_arn, "an answer names an ARN it cannot read");
            continue;
        };
        if !arn.names_kind(kind) {
            continue;
        }
        let Some(tags) = admit.entry(observed, arn.id) else {
            continue;
        };
        for tag in resource.tags.unwrap_or_default().into_vec() {
            if tag.category.as_deref() == Some(SYSTEM) {
                continue;
            }
            tags.insert(tag.key, tag.value.unwrap_or_default());
        }
    }
    Ok(page
        .next_token
        .filter(|token| !token.is_empty() && token != "-1"))
}

/// A TagResources or UntagResources answer.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct WriteAnswer {
    #[serde(default)]
    failed_resources: Option<Listed<FailedResource>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FailedResource {
    #[serde(rename = "ResourceARN")]
    resource_arn: String,
    #[serde(default)]
    result: Option<FailureResult>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct FailureResult {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// Reads a write answer: the resources of the call (ids of `kind`) that failed, classified by
/// their code. A failure naming no resource of the call makes the answer unreadable: which
/// resource failed is unknown, and no write may be taken as confirmed on a guess.
pub(in crate::cloud::alibaba) fn read_write(
    kind: &ArnType<'_>,
    resource_ids: &[String],
    body: &str,
) -> Result<WriteResult, AnswerError> {
    let answer: WriteAnswer = serde_json::from_str(body)?;
    let mut result = WriteResult::default();
    for failed in answer.failed_resources.unwrap_or_default().into_vec() {
        let id = parse_arn(&failed.resource_arn)
            .filter(|arn| arn.names_kind(kind))
            .and_then(|arn| resource_ids.iter().find(|id| arn.id == id.as_str()))
            .ok_or_else(|| {
                AnswerError::Invalid(format!(
                    "FailedResources names {:?}, which is no resource of the call",
                    failed.resource_arn
                ))
            })?;
        let (code, message) = failed
            .result
            .map(|result| (result.code, result.message))
            .unwrap_or_default();
        let code = code.filter(|code| !code.is_empty());
        let kind = crate::cloud::alibaba::classify(code.as_deref().unwrap_or_default(), None);
        let message = match (code, message.filter(|message| !message.is_empty())) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code,
            (None, Some(message)) => message,
            (None, None) => {
                "the Tag service reported this resource as failed without a reason".to_string()
            }
        };
        result
            .failed
            .insert(id.clone(), ResourceError { kind, message });
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::ErrorKind;
    use crate::tags::Tags;

    const ECS: ArnType<'static> = ArnType {
        product: "ecs",
        resource_type: "instance",
    };

    fn observed(ids: &[&str]) -> TagsByResource {
        ids.iter().map(|id| (id.to_string(), Tags::new())).collect()
    }

    fn ids(items: &[&str]) -> Vec<String> {
        items.iter().map(|id| id.to_string()).collect()
    }

    #[test]
    fn lists_custom_tags_by_product_type_and_id_and_skips_system_tags() {
        let body = r#"{"RequestId":"R","NextToken":"n2","TagResources":[
            {"ResourceARN":"arn:acs:ecs:cn-hangzhou:1234567890123456:instance/i-1",
             "Tags":[{"Key":"env","Value":"prod","Category":"Custom"},
                     {"Key":"acs:rm:rgId","Value":"rg-1","Category":"System"},
                     {"Key":"flag","Value":""}]},
            {"ResourceARN":"arn:acs:ecs:cn-hangzhou:*:disk/i-2","Tags":[{"Key":"x","Value":"y"}]},
            {"ResourceARN":"arn:acs:ecs:cn-hangzhou:*:instance/i-other","Tags":[{"Key":"x","Value":"y"}]},
            {"ResourceARN":"not an arn","Tags":[]}]}"#;
        let mut tags = observed(&["i-1", "i-2"]);
        let next = read_list(&ECS, body, &mut tags, Admit::Requested).expect("parses");
        assert_eq!(next.as_deref(), Some("n2"));
        assert_eq!(tags.len(), 2);
        assert_eq!(tags["i-1"].len(), 2, "{tags:?}");
        assert_eq!(tags["i-1"]["env"], "prod");
        assert_eq!(tags["i-1"]["flag"], "");
        assert!(tags["i-2"].is_empty(), "a disk i-2 is not the instance i-2");
    }

    #[test]
    fn a_select_admits_every_listed_resource_of_the_kind_only() {
        let body = r#"{"RequestId":"R","NextToken":"","TagResources":[
            {"ResourceARN":"arn:acs:ecs:cn-hangzhou:1234567890123456:instance/i-1",
             "Tags":[{"Key":"team","Value":"web","Category":"Custom"},
                     {"Key":"acs:rm:rgId","Value":"rg-1","Category":"System"}]},
            {"ResourceARN":"arn:acs:ecs:cn-hangzhou:*:disk/d-1","Tags":[{"Key":"team","Value":"web"}]},
            {"ResourceARN":"arn:acs:rds:cn-hangzhou:*:instance/i-2","Tags":[{"Key":"team","Value":"web"}]},
            {"ResourceARN":"arn:acs:ecs:cn-hangzhou:*:instance/i-3","Tags":[{"Key":"team","Value":"web"}]}]}"#;
        let mut selected = TagsByResource::new();
        let next = read_list(&ECS, body, &mut selected, Admit::Listed).expect("parses");
        assert_eq!(next, None);
        assert_eq!(selected.keys().collect::<Vec<_>>(), ["i-1", "i-3"]);
        assert_eq!(selected["i-1"].len(), 1, "system tags are left out");
    }

    #[test]
    fn an_empty_or_absent_token_ends_the_listing() {
        for body in [
            r#"{"RequestId":"R","NextToken":"","TagResources":[]}"#,
            r#"{"RequestId":"R"}"#,
            r#"{"NextToken":null,"TagResources":{"TagResource":[]}}"#,
        ] {
            assert_eq!(
                read_list(&ECS, body, &mut observed(&["i-1"]), Admit::Requested).expect(body),
                None,
                "{body}"
            );
        }
        assert!(
            read_list(
                &ECS,
                "<Response/>",
                &mut observed(&["i-1"]),
                Admit::Requested
            )
            .is_err()
        );
    }

    #[test]
    fn failed_resources_are_classified_per_resource() {
        let body = r#"{"RequestId":"W","FailedResources":{"FailedResource":[
            {"ResourceARN":"arn:acs:ecs:cn-hangzhou:1234567890123456:instance/i-gone",
             "Result":{"Code":"InvalidResourceId.NotFound","Message":"not found"}},
            {"ResourceARN":"acs:ecs:cn-hangzhou:*:instance/i-full",
             "Result":{"Code":"OperationDenied.QuotaExceed","Message":"quota"}}]}}"#;
        let result = read_write(&ECS, &ids(&["i-ok", "i-gone", "i-full"]), body).expect("parses");
        assert_eq!(result.failed.len(), 2);
        assert_eq!(result.failed["i-gone"].kind, ErrorKind::NotFound);
        assert_eq!(
            result.failed["i-gone"].message,
            "InvalidResourceId.NotFound: not found"
        );
        assert_eq!(result.failed["i-full"].kind, ErrorKind::QuotaExceeded);
        let plain = r#"{"FailedResources":[{"ResourceARN":"arn:acs:ecs:r:*:instance/i-ok"}]}"#;
        let result = read_write(&ECS, &ids(&["i-ok"]), plain).expect("plain array");
        assert!(result.failed["i-ok"].message.contains("without a reason"));
    }

    #[test]
    fn success_has_no_failures_and_strangers_make_the_answer_unreadable() {
        for body in [
            r#"{"RequestId":"W"}"#,
            r#"{"RequestId":"W","FailedResources":null}"#,
            r#"{"RequestId":"W","FailedResources":{"FailedResource":[]}}"#,
        ] {
            assert_eq!(
                read_write(&ECS, &ids(&["i-1"]), body).expect(body),
                WriteResult::default()
            );
        }
        let stranger = r#"{"FailedResources":[{"ResourceARN":"arn:acs:ecs:r:*:instance/i-9"}]}"#;
        let error = read_write(&ECS, &ids(&["i-1"]), stranger)
            .expect_err("not in the call")
            .to_string();
        assert!(error.contains("i-9"), "{error}");
    }
}
