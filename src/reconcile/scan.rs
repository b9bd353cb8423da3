//! A TagPolicy's `scan` (issue 24): resources that no binding needs to cover, read to be
//! counted, never written. Both hosts read a scan with the calls of an Observe selector: one
//! list-by-tag read of `matchTags` (every page), then one read of the matching resources' tags
//! (the list-by-tag answer is not taken as their tags, as for a selector: the clouds do not
//! document that a filtered answer lists every tag), and the same cap: at most
//! [`MAX_SELECTED_RESOURCES`] resources, else nothing is counted.

use super::select::{self, Resolution, Selector};
use crate::api::MAX_SELECTED_RESOURCES;
use crate::cloud::{CallError, TagApi};
use crate::tags::{Tags, TagsByResource};

/// Why a scan read nothing.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScanError {
    /// `matchTags` matches more resources than a selector may.
    #[error(
        "matchTags matches {count} resources, more than {cap} (the cap of a selector): narrow it"
    )]
    TooMany {
        /// Resources matched.
        count: usize,
        /// The cap.
        cap: u32,
    },
    /// `matchTags` breaks a rule of the provider's API (a `field: rule` line).
    #[error("matchTags: {0}")]
    Invalid(String),
    /// A read failed.
    #[error(transparent)]
    Call(#[from] CallError),
}

/// Reads the resources of `resource_type` that carry `match_tags`, with all their tags; the
/// error says why nothing was read (the field, the cap, the cloud's error).
pub async fn read<C: TagApi>(
    cloud: &C,
    resource_type: &str,
    match_tags: &Tags,
) -> Result<TagsByResource, ScanError> {
    let selector = Selector {
        match_tags,
        cap: MAX_SELECTED_RESOURCES,
    };
    let resolution = select::resolve_all(cloud, resource_type, &[selector])
        .await
        .into_iter()
        .next();
    let ids = match resolution {
        Some(Resolution::Selected(ids)) => ids,
        Some(Resolution::TooMany { count, cap, .. }) => {
            return Err(ScanError::TooMany { count, cap });
        }
        Some(Resolution::Failed(error)) => return Err(error.into()),
        Some(Resolution::Invalid(rule)) => return Err(ScanError::Invalid(rule)),
        None => return Ok(TagsByResource::new()),
    };
    if ids.is_empty() {
        return Ok(TagsByResource::new());
    }
    Ok(cloud.list_tags(resource_type, &ids).await?)
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::cloud::{CallError, WriteResult};
    use crate::tags::Limits;

    /// A cloud that records each call by action.
    struct Recording {
        limits: Limits,
        tags: TagsByResource,
        calls: Mutex<Vec<&'static str>>,
    }

    impl TagApi for Recording {
        fn cloud_name(&self) -> &'static str {
            "recording"
        }

        fn limits(&self) -> &Limits {
            &self.limits
        }

        fn check_resource_type(&self, _: &str) -> Result<(), crate::cloud::AddressError> {
            Ok(())
        }

        async fn list_tags(&self, _: &str, ids: &[String]) -> Result<TagsByResource, CallError> {
            self.calls.lock().unwrap().push("ListTags");
            Ok(ids
                .iter()
                .map(|id| (id.clone(), self.tags.get(id).cloned().unwrap_or_default()))
                .collect())
        }

        async fn select_resources(
            &self,
            _: &str,
            match_tags: &Tags,
        ) -> Result<TagsByResource, CallError> {
            self.calls.lock().unwrap().push("SelectResources");
            Ok(self
                .tags
                .iter()
                .filter(|(_, carried)| match_tags.iter().all(|(k, v)| carried.get(k) == Some(v)))
                .map(|(id, carried)| (id.clone(), carried.clone()))
                .collect())
        }

        async fn tag_resources(
            &self,
            _: &str,
            _: &[String],
            _: &Tags,
        ) -> Result<WriteResult, CallError> {
            self.calls.lock().unwrap().push("TagResources");
            Ok(WriteResult::default())
        }

        async fn untag_resources(
            &self,
            _: &str,
            _: &[String],
            _: &Tags,
        ) -> Result<WriteResult, CallError> {
            self.calls.lock().unwrap().push("UntagResources");
            Ok(WriteResult::default())
        }
    }

    fn tags(pairs: &[(&str, &str)]) -> Tags {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn cloud(resources: usize) -> Recording {
        Recording {
            limits: Limits::alibaba(),
            tags: (0..resources)
                .map(|i| {
                    let carried = if i % 2 == 0 {
                        tags(&[("env", "prod"), ("owner", "web")])
                    } else {
                        tags(&[("env", "prod")])
                    };
                    (format!("i-{i:04}"), carried)
                })
                .collect(),
            calls: Mutex::default(),
        }
    }

    #[tokio::test]
    async fn a_scan_reads_the_selection_and_its_tags_and_writes_nothing() {
        let cloud = cloud(4);
        let read = read(&cloud, "instance", &tags(&[("env", "prod")]))
            .await
            .unwrap();
        assert_eq!(read.len(), 4);
        assert_eq!(read["i-0001"], tags(&[("env", "prod")]));
        assert_eq!(
            *cloud.calls.lock().unwrap(),
            vec!["SelectResources", "ListTags"],
            "the calls of an Observe selector, reads only"
        );
    }

    #[tokio::test]
    async fn a_scan_over_the_cap_reads_no_tags_and_says_so() {
        let cloud = cloud(MAX_SELECTED_RESOURCES as usize + 1);
        let refused = read(&cloud, "instance", &tags(&[("env", "prod")]))
            .await
            .unwrap_err();
        assert_eq!(
            refused,
            ScanError::TooMany {
                count: 1001,
                cap: 1000
            }
        );
        assert!(
            refused
                .to_string()
                .contains("matches 1001 resources, more than 1000"),
            "{refused}"
        );
        assert_eq!(*cloud.calls.lock().unwrap(), vec!["SelectResources"]);
    }
}
