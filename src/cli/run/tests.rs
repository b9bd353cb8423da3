//! Unit tests of a CLI run.

use super::passes::reconcile_group;
use super::*;
use crate::cloud::TagApi;
use crate::cloud::{CallError, CloudError, ErrorKind, Write, WriteResult};
use crate::reconcile::round::tests::emulated;
use crate::tags::Tags;
use crate::tags::{Limits, TagsByResource};

/// A cloud whose writes land but whose answers are all lost (every retry included).
struct LostAnswers<C>(C);

impl<C: TagApi> TagApi for LostAnswers<C> {
    fn cloud_name(&self) -> &'static str {
        self.0.cloud_name()
    }

    fn limits(&self) -> &Limits {
        self.0.limits()
    }

    fn check_resource_type(&self, resource_type: &str) -> Result<(), crate::cloud::AddressError> {
        self.0.check_resource_type(resource_type)
    }

    fn check_resource_ids(
        &self,
        resource_type: &str,
        resource_ids: &[String],
    ) -> Result<(), crate::cloud::AddressError> {
        self.0.check_resource_ids(resource_type, resource_ids)
    }

    async fn list_tags(
        &self,
        resource_type: &str,
        ids: &[String],
    ) -> Result<TagsByResource, CallError> {
        self.0.list_tags(resource_type, ids).await
    }

    async fn select_resources(
        &self,
        resource_type: &str,
        match_tags: &Tags,
    ) -> Result<TagsByResource, CallError> {
        self.0.select_resources(resource_type, match_tags).await
    }

    async fn tag_resources(
        &self,
        resource_type: &str,
        ids: &[String],
        tags: &Tags,
    ) -> Result<WriteResult, CallError> {
        self.0.tag_resources(resource_type, ids, tags).await?;
        Err(CloudError {
            kind: ErrorKind::Retryable,
            action: "TagResources",
            code: "AnswerLost".to_string(),
            message: "the connection dropped before the answer, 5 times".to_string(),
            http_status: None,
            request_id: None,
            attempts: 5,
        }
        .into())
    }

    async fn untag_resources(
        &self,
        resource_type: &str,
        ids: &[String],
        tags: &Tags,
    ) -> Result<WriteResult, CallError> {
        self.0.untag_resources(resource_type, ids, tags).await
    }

    async fn write_all(
        &self,
        resource_type: &str,
        writes: &[Write<'_>],
    ) -> Vec<Result<WriteResult, CallError>> {
        let mut results = Vec::new();
        for write in writes {
            results.push(
                self.tag_resources(resource_type, write.resource_ids, write.tags)
                    .await,
            );
        }
        results
    }
}

/// Issue 20, item 2: a write that landed but whose answers were all lost stays pending in
/// the state file, and the next run, reading the tag back, owns it (and so can prune it).
#[tokio::test]
async fn a_write_whose_answers_were_lost_stays_pending_until_a_read_confirms_it() {
    let (cloud, client) = emulated(&[("g1", &[("keep", "me")])]).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("binding.yaml"),
        format!(
            "apiVersion: tagbinder.io/v1alpha1\nkind: TagProvider\nmetadata: {{name: p}}\n\
             spec: {{cloud: alibaba, region: cn-hangzhou, alibaba: {{product: apigateway}}, \
             endpoint: '{}'}}\n---\napiVersion: tagbinder.io/v1alpha1\n\
             kind: ResourceTagBinding\nmetadata: {{name: web, namespace: team}}\n\
             spec: {{providerRef: {{name: p}}, resourceType: apiGroup, resourceIds: [g1], \
             tags: {{env: prod}}}}\n",
            cloud.url()
        ),
    )
    .unwrap();
    let manifests = manifests::load(&[dir.path().to_path_buf()], true).expect("manifests");
    let declared = declared_bindings(&manifests, &StateFile::empty(), jiff::Timestamp::now());
    let claims = Claims::of(&declared, &manifests);
    let apply = Command::Apply {
        prune_removed: false,
    };
    let mut state = StateFile::empty();
    let lost = LostAnswers(client.clone());
    let outcomes =
        reconcile_group((&lost, "apiGroup", &[0]), &declared, &claims, &state, apply).await;
    record(&mut state, &manifests, &declared[0], &outcomes[0]);
    let entry = &state.bindings["team/web"];
    assert!(entry.applied.is_empty(), "nothing confirmed: {entry:?}");
    assert_eq!(
        journal::intent_of(&entry.pending, "apiGroup")["g1"],
        crate::tags::tags(&[("env", "prod")])
    );

    let outcomes = reconcile_group(
        (&client, "apiGroup", &[0]),
        &declared,
        &claims,
        &state,
        apply,
    )
    .await;
    record(&mut state, &manifests, &declared[0], &outcomes[0]);
    let entry = &state.bindings["team/web"];
    assert!(entry.pending.is_empty(), "{entry:?}");
    let owned = entry.applied.to_ownership();
    assert_eq!(owned.on("g1"), Some(&crate::tags::tags(&[("env", "prod")])));
    assert_eq!(
        outcomes[0].writes.calls, 0,
        "the read confirmed it: nothing to write"
    );
    cloud.shutdown().await.expect("emulator stops");
}
