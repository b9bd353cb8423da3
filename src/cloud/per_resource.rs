//! One call per resource per change, as per-resource models (Terraform's and Crossplane's
//! managed resources) make them: the baseline `tagbinder bench --strategy per-resource`
//! compares batching against. Not used by the operator.

use super::{CloudError, ResourceError, TagApi, WriteResult, stops_every_call};
use crate::tags::{Limits, Tags, TagsByResource};

/// A client that splits every call into one call per resource.
#[derive(Clone, Debug)]
pub struct PerResource<C>(pub C);

impl<C: TagApi> PerResource<C> {
    /// Sends `call` for each resource alone. A failure of one resource is that resource's;
    /// an error that stops every call stops the rest (they fail with it), and is the answer
    /// when no resource was written.
    async fn each<F, Fut>(
        &self,
        resource_ids: &[String],
        call: F,
    ) -> Result<WriteResult, CloudError>
    where
        F: Fn(Vec<String>) -> Fut,
        Fut: Future<Output = Result<WriteResult, CloudError>>,
    {
        let mut result = WriteResult::default();
        let mut stopped: Option<CloudError> = None;
        let mut written = 0;
        for id in resource_ids {
            if let Some(error) = &stopped {
                result.failed.insert(id.clone(), resource_error(error));
                continue;
            }
            match call(vec![id.clone()]).await {
                Ok(answer) => {
                    written += usize::from(answer.failed.is_empty());
                    result.failed.extend(answer.failed);
                }
                Err(error) if stops_every_call(&error) => {
                    result.failed.insert(id.clone(), resource_error(&error));
                    stopped = Some(error);
                }
                Err(error) => {
                    result.failed.insert(id.clone(), resource_error(&error));
                }
            }
        }
        match stopped {
            Some(error) if written == 0 => Err(error),
            _ => Ok(result),
        }
    }
}

fn resource_error(error: &CloudError) -> ResourceError {
    ResourceError {
        kind: error.kind,
        message: error.to_string(),
    }
}

impl<C: TagApi> TagApi for PerResource<C> {
    fn cloud_name(&self) -> &'static str {
        self.0.cloud_name()
    }

    fn limits(&self) -> &Limits {
        self.0.limits()
    }

    fn check_resource_type(&self, resource_type: &str) -> Result<(), String> {
        self.0.check_resource_type(resource_type)
    }

    fn check_resource_ids(
        &self,
        resource_type: &str,
        resource_ids: &[String],
    ) -> Result<(), String> {
        self.0.check_resource_ids(resource_type, resource_ids)
    }

    async fn list_tags(
        &self,
        resource_type: &str,
        resource_ids: &[String],
    ) -> Result<TagsByResource, CloudError> {
        let mut tags = TagsByResource::new();
        for id in resource_ids {
            let answer = self
                .0
                .list_tags(resource_type, std::slice::from_ref(id))
                .await?;
            tags.extend(answer);
        }
        Ok(tags)
    }

    async fn select_resources(
        &self,
        resource_type: &str,
        match_tags: &Tags,
    ) -> Result<TagsByResource, CloudError> {
        // NB: a list by tag names no resource: there is nothing to split.
        self.0.select_resources(resource_type, match_tags).await
    }

    async fn tag_resources(
        &self,
        resource_type: &str,
        resource_ids: &[String],
        tags: &Tags,
    ) -> Result<WriteResult, CloudError> {
        self.each(resource_ids, |ids| async move {
            self.0.tag_resources(resource_type, &ids, tags).await
        })
        .await
    }

    async fn untag_resources(
        &self,
        resource_type: &str,
        resource_ids: &[String],
        tags: &Tags,
    ) -> Result<WriteResult, CloudError> {
        self.each(resource_ids, |ids| async move {
            self.0.untag_resources(resource_type, &ids, tags).await
        })
        .await
    }
}
