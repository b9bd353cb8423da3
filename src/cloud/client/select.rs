//! Selects (issue 13's `spec.resourceSelector`): every resource of a type that carries given
//! tags, through the API's list-by-tag read, paginated to the end, with the rate limiter,
//! retries, observer and pagination guard of every other call.
//!
//! Two rules make a select safe whatever the server does: a selector without tags, or with
//! more than the API filters by, is refused before anything is sent (a select never lists a
//! whole account); and a listed resource that does not carry every match tag, as the answer
//! shows it, is dropped (a server that ignored the filter never selects everything).

use super::{Admit, Client, Operation, Protocol};
use crate::cloud::{CallError, Refusal, RefusalReason};
use crate::tags::{Limits, Tags, TagsByResource};

impl<P: Protocol> Client<P> {
    /// Every resource of `resource_type` carrying all of `match_tags`, with its listed
    /// custom tags.
    pub(super) async fn select(
        &self,
        resource_type: &str,
        match_tags: &Tags,
    ) -> Result<TagsByResource, CallError> {
        let action = self.protocol.action(Operation::List);
        check_match_tags(action, match_tags, self.protocol.settings().limits)?;
        let mut selected = TagsByResource::new();
        self.read_pages(resource_type, 0, &mut selected, Admit::Listed, |token| {
            self.protocol.select_call(resource_type, match_tags, token)
        })
        .await?;
        let dropped = keep_matching(&mut selected, match_tags);
        if dropped > 0 {
            tracing::warn!(
                cloud = self.protocol.cloud_name(),
                action,
                resource_type,
                dropped,
                "a list-by-tag answer named resources that do not carry every match tag; \
                 they are not selected"
            );
        }
        Ok(selected)
    }
}

/// Refuses, before sending, a selector that would list a whole account (no tags), that the
/// API cannot filter by in one call (more than `selector_tags` tags), or whose tag no
/// resource can carry (an empty key, a value shorter than the API allows).
pub(crate) fn check_match_tags(
    action: &'static str,
    match_tags: &Tags,
    limits: &Limits,
) -> Result<(), Refusal> {
    let limit = limits.selector_tags;
    if match_tags.is_empty() {
        return Err(Refusal::new(
            RefusalReason::EmptyMatchTags,
            action,
            "a resource selector needs at least one matchTags entry: selecting without a tag \
             filter would list every resource of the account (nothing was sent)"
                .to_string(),
        ));
    }
    if match_tags.len() > limit {
        return Err(Refusal::new(
            RefusalReason::TooManyMatchTags,
            action,
            format!(
                "{} matchTags; {action} on this API filters by at most {limit} tags per call \
                 (nothing was sent)",
                match_tags.len()
            ),
        ));
    }
    let system = match_tags.keys().find_map(|key| {
        let prefix = limits.reserved_key_prefix(key)?;
        (!limits.selects_reserved_keys).then_some((key, prefix))
    });
    if let Some((key, prefix)) = system {
        return Err(Refusal::new(
            RefusalReason::UnfilterableMatchTags,
            action,
            format!(
                "matchTags {key:?} is a system tag (prefix {prefix:?}); this API's list-by-tag \
                 read filters custom tags only, so it would select nothing: select by a custom \
                 tag, or through the product's own API (alibaba.product ecs, ...) (nothing was \
                 sent)"
            ),
        ));
    }
    let unmatchable = match_tags.iter().find_map(|(key, value)| {
        if key.is_empty() {
            Some("a matchTags key is empty".to_string())
        } else if let Some(c) = crate::tags::invisible_char(key) {
            Some(format!(
                "matchTags key {key:?} holds the invisible character {}, which no cloud \
                 accepts in a key",
                crate::tags::code_point(c)
            ))
        } else if value.chars().count() < limits.value_min_chars {
            Some(format!(
                "matchTags {key:?} has an empty value; this API's values have at least {} \
                 character(s)",
                limits.value_min_chars
            ))
        } else {
            None
        }
    });
    match unmatchable {
        Some(rule) => Err(Refusal::new(
            RefusalReason::InvalidMatchTags,
            action,
            format!("{rule}: no resource can carry it (nothing was sent)"),
        )),
        None => Ok(()),
    }
}

/// Keeps the resources whose listed tags include every match tag (same key, same value);
/// answers how many were dropped.
pub(crate) fn keep_matching(selected: &mut TagsByResource, match_tags: &Tags) -> usize {
    let before = selected.len();
    selected.retain(|_, tags| {
        match_tags
            .iter()
            .all(|(key, value)| tags.get(key) == Some(value))
    });
    before - selected.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::cloud::ErrorKind;
    use crate::tags::tags;

    #[test]
    fn an_empty_selector_is_refused_without_a_call() {
        let error =
            check_match_tags("ListTagResources", &Tags::new(), &Limits::alibaba()).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidInput);
        assert_eq!(error.reason, RefusalReason::EmptyMatchTags);
        assert!(error.message.contains("nothing was sent"), "{error}");
    }

    #[test]
    fn a_selector_over_the_limit_names_the_count_and_the_limit() {
        let many: Tags = (0..11)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        let limits = Limits::alibaba_tag_service();
        let error = check_match_tags("ListTagResources", &many, &limits).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidInput);
        assert_eq!(error.reason, RefusalReason::TooManyMatchTags);
        assert!(error.message.starts_with("11 matchTags"), "{error}");
        assert!(error.message.contains("at most 10"), "{error}");
        assert_eq!(
            check_match_tags("ListTagResources", &many, &Limits::alibaba()),
            Ok(())
        );
    }

    #[test]
    fn a_tag_no_resource_can_carry_is_refused() {
        let empty_value = tags(&[("team", "")]);
        assert_eq!(
            check_match_tags("ListTagResources", &empty_value, &Limits::alibaba()),
            Ok(()),
            "product APIs allow empty values"
        );
        let error = check_match_tags(
            "ListTagResources",
            &empty_value,
            &Limits::alibaba_tag_service(),
        )
        .unwrap_err();
        assert_eq!(error.reason, RefusalReason::InvalidMatchTags);
        assert!(error.message.contains("\"team\""), "{error}");
        let error = check_match_tags("describeResources", &tags(&[("", "x")]), &Limits::jdcloud())
            .unwrap_err();
        assert_eq!(error.reason, RefusalReason::InvalidMatchTags);
    }

    #[test]
    fn a_system_tag_is_refused_where_the_read_filters_custom_tags_only() {
        let system = tags(&[("acs:rm:rgId", "rg-1")]);
        assert_eq!(
            check_match_tags("ListTagResources", &system, &Limits::alibaba()),
            Ok(()),
            "the product APIs filter by system tags"
        );
        let error = check_match_tags("ListTagResources", &system, &Limits::alibaba_tag_service())
            .unwrap_err();
        assert_eq!(error.reason, RefusalReason::UnfilterableMatchTags);
        assert!(error.message.contains("\"acs:rm:rgId\""), "{error}");
        assert!(error.message.contains("custom tags only"), "{error}");
    }

    #[test]
    fn only_resources_carrying_every_match_tag_are_kept() {
        let mut selected: TagsByResource = [
            (
                "both",
                tags(&[("team", "web"), ("env", "prod"), ("x", "1")]),
            ),
            ("other-value", tags(&[("team", "web"), ("env", "dev")])),
            ("one-key", tags(&[("team", "web")])),
            ("untagged", Tags::new()),
            ("case", tags(&[("team", "Web"), ("env", "prod")])),
        ]
        .into_iter()
        .map(|(id, tags)| (id.to_string(), tags))
        .collect();
        let dropped = keep_matching(&mut selected, &tags(&[("team", "web"), ("env", "prod")]));
        assert_eq!(dropped, 4);
        assert_eq!(selected.keys().collect::<Vec<_>>(), ["both"]);
        assert_eq!(selected["both"].len(), 3, "the listed tags are kept whole");
    }
}
