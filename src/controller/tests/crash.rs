//! The crash window (issue 14): a binding whose `status` still carries the intent of a pass
//! that was killed after its writes.

use super::*;

/// The status a pass leaves when it is killed after recording its intent (env=prod on g1 and
/// g2) and before recording the outcome: nothing owned yet.
fn killed_after_the_intent() -> ResourceTagBindingStatus {
    ResourceTagBindingStatus {
        pending: PendingRecord {
            pending_tags: BTreeMap::from([("env".to_string(), "prod".to_string())]),
            pending_resource_ids: vec!["g1".into(), "g2".into()],
            ..PendingRecord::default()
        },
        ..ResourceTagBindingStatus::default()
    }
}

#[tokio::test]
async fn the_next_pass_claims_the_intended_keys_that_landed() {
    // g1 carries what the killed pass wrote; on g2 the write never landed and someone set
    // another value since.
    let cloud = cloud(&[("g1", &[("env", "prod")]), ("g2", &[("env", "dev")])]).await;
    let binding = ResourceTagBinding::test()
        .finalized()
        .with_status(killed_after_the_intent());
    let (ctx, verifier) = context(vec![binding.clone()], vec![provider(&cloud.url())]);
    let expected = binding.clone();
    let scenario = tokio::spawn(async move {
        let verifier = verifier.handle_secret_get().await;
        // The new intent: env=prod on g2 only (g1's is claimed, not written again).
        let (verifier, intent) = verifier.handle_intent_patch(expected.clone()).await;
        assert_eq!(intent["appliedTags"]["env"], "prod", "{intent}");
        assert_eq!(intent["appliedResourceIds"], serde_json::json!(["g1"]));
        assert_eq!(intent["pendingResourceIds"], serde_json::json!(["g2"]));
        let (verifier, patch) = verifier
            .handle_status_patch_seen(expected, "Synced", "True")
            .await;
        assert_eq!(patch["status"]["appliedTags"]["env"], "prod", "{patch}");
        assert_eq!(
            patch["status"]["appliedResourceIds"],
            serde_json::json!(["g1", "g2"])
        );
        assert!(patch["status"].get("pendingTags").is_none(), "{patch}");
        verifier.handle_event("TagsApplied").await
    });
    reconcile(Arc::new(binding), ctx).await.expect("reconcile");
    within_5s(scenario).await.no_more_requests().await;
    cloud.shutdown().await.expect("emulator stops");
}

/// A binding whose intent annotation (env=prod on g1 and g2, sequence `intent`) and status
/// (owning nothing, sequence `status`) a killed pass left.
fn with_intent_annotation(intent: i64, status: i64) -> ResourceTagBinding {
    let record = IntentRecord {
        sequence: intent,
        pending: killed_after_the_intent().pending,
        ..IntentRecord::default()
    };
    let mut binding =
        ResourceTagBinding::test()
            .finalized()
            .with_status(ResourceTagBindingStatus {
                record_sequence: Some(status),
                ..ResourceTagBindingStatus::default()
            });
    binding.metadata.annotations = Some(BTreeMap::from([(
        INTENT_ANNOTATION.to_string(),
        serde_json::to_string(&record).expect("JSON"),
    )]));
    binding
}

/// The crash window through the annotation (issue 19): a pass killed after writing its intent
/// annotation and its cloud writes, before its status write. The next pass claims what the
/// annotation names and the cloud carries.
#[tokio::test]
async fn the_next_pass_claims_what_the_intent_annotation_names() {
    let cloud = cloud(&[("g1", &[("env", "prod")]), ("g2", &[("env", "dev")])]).await;
    let binding = with_intent_annotation(4, 3);
    let (ctx, verifier) = context(vec![binding.clone()], vec![provider(&cloud.url())]);
    let expected = binding.clone();
    let scenario = tokio::spawn(async move {
        let verifier = verifier.handle_secret_get().await;
        let (verifier, intent) = verifier.handle_intent_patch(expected.clone()).await;
        assert_eq!(intent["sequence"], 5, "{intent}");
        assert_eq!(intent["appliedResourceIds"], serde_json::json!(["g1"]));
        assert_eq!(intent["pendingResourceIds"], serde_json::json!(["g2"]));
        let (verifier, patch) = verifier
            .handle_status_patch_seen(expected, "Synced", "True")
            .await;
        assert_eq!(
            patch["status"]["appliedResourceIds"],
            serde_json::json!(["g1", "g2"]),
            "{patch}"
        );
        assert_eq!(patch["status"]["recordSequence"], 5, "{patch}");
        verifier.handle_event("TagsApplied").await
    });
    reconcile(Arc::new(binding), ctx).await.expect("reconcile");
    within_5s(scenario).await.no_more_requests().await;
    cloud.shutdown().await.expect("emulator stops");
}

/// An intent annotation that a later status superseded claims nothing: g1's env=prod, set by
/// someone else since, stays foreign (never owned, never pruned).
#[tokio::test]
async fn a_superseded_intent_annotation_claims_nothing() {
    let cloud = cloud(&[("g1", &[("env", "prod")]), ("g2", &[])]).await;
    let binding = with_intent_annotation(3, 3);
    let (ctx, verifier) = context(vec![binding.clone()], vec![provider(&cloud.url())]);
    let expected = binding.clone();
    let scenario = tokio::spawn(async move {
        let verifier = verifier.handle_secret_get().await;
        let (verifier, intent) = verifier.handle_intent_patch(expected.clone()).await;
        assert_eq!(intent["sequence"], 4, "{intent}");
        assert!(intent.get("appliedResourceIds").is_none(), "{intent}");
        assert_eq!(intent["pendingResourceIds"], serde_json::json!(["g2"]));
        let (verifier, patch) = verifier
            .handle_status_patch_seen(expected, "Synced", "True")
            .await;
        assert_eq!(
            patch["status"]["appliedResourceIds"],
            serde_json::json!(["g2"]),
            "{patch}"
        );
        verifier.handle_event("TagsApplied").await
    });
    reconcile(Arc::new(binding), ctx).await.expect("reconcile");
    within_5s(scenario).await.no_more_requests().await;
    cloud.shutdown().await.expect("emulator stops");
}

/// An intent too large for an annotation (1,000 resources of 80-character ids: over 64 KiB)
/// goes to `status`, after the finalizer applied alone (both before the cloud writes).
#[tokio::test]
async fn an_intent_too_large_for_an_annotation_goes_to_status() {
    let ids: Vec<String> = (0..1000).map(|i| format!("g{i:079}")).collect();
    let inventory: Vec<(&str, &[(&str, &str)])> =
        ids.iter().map(|id| (id.as_str(), &[][..])).collect();
    let cloud = cloud(&inventory).await;
    let mut binding = ResourceTagBinding::test();
    binding.spec.resource_ids = ids;
    let (ctx, verifier) = context(vec![binding.clone()], vec![provider(&cloud.url())]);
    let expected = binding.clone();
    let scenario = tokio::spawn(async move {
        let verifier = verifier.handle_secret_get().await;
        let verifier = verifier.handle_finalizer_creation(expected.clone()).await;
        let (verifier, intent) = verifier
            .handle_status_intent(expected.clone().finalized())
            .await;
        assert_eq!(intent["status"]["recordSequence"], 1, "{intent}");
        assert_eq!(
            intent["status"]["pendingResourceIds"]
                .as_array()
                .map(Vec::len),
            Some(1000)
        );
        let (verifier, patch) = verifier
            .handle_status_patch_seen(expected, "Synced", "True")
            .await;
        assert_eq!(
            patch["status"]["appliedResourceIds"]
                .as_array()
                .map(Vec::len),
            Some(1000)
        );
        assert!(patch["status"].get("pendingResourceIds").is_none());
        verifier.handle_event("TagsApplied").await
    });
    reconcile(Arc::new(binding), ctx).await.expect("reconcile");
    within_5s(scenario).await.no_more_requests().await;
    cloud.shutdown().await.expect("emulator stops");
}

#[tokio::test]
async fn a_deleted_binding_prunes_what_its_killed_pass_wrote() {
    let cloud = cloud(&[
        ("g1", &[("env", "prod"), ("team", "web")]),
        ("g2", &[("env", "dev")]),
    ])
    .await;
    let binding = ResourceTagBinding::test()
        .finalized()
        .deleting()
        .with_status(killed_after_the_intent());
    let (ctx, verifier) = context(vec![binding.clone()], vec![provider(&cloud.url())]);
    let scenario = verifier.run(Scenario::CleanupOnDelete(binding.clone()));
    reconcile(Arc::new(binding), ctx).await.expect("reconcile");
    within_5s(scenario).await.no_more_requests().await;
    let tags = tags_of(&cloud).await;
    assert_eq!(
        tags["g1"]["tags"],
        serde_json::json!({"team": "web"}),
        "{tags}"
    );
    assert_eq!(
        tags["g2"]["tags"],
        serde_json::json!({"env": "dev"}),
        "a value the binding did not write stays: {tags}"
    );
    cloud.shutdown().await.expect("emulator stops");
}

#[tokio::test]
async fn an_intent_that_cannot_be_recorded_sends_no_write() {
    let cloud = cloud(&[("g1", &[]), ("g2", &[])]).await;
    let binding = ResourceTagBinding::test().finalized();
    let (ctx, verifier) = context(vec![binding.clone()], vec![provider(&cloud.url())]);
    let expected = binding.clone();
    let scenario = tokio::spawn(async move {
        let verifier = verifier.handle_secret_get().await;
        let verifier = verifier.handle_intent_conflict().await;
        let (verifier, patch) = verifier
            .handle_status_patch_seen(expected, "ProviderError", "False")
            .await;
        let message = patch["status"]["conditions"][0]["message"].to_string();
        assert!(message.contains("IntentNotRecorded"), "{message}");
        assert!(patch["status"].get("appliedTags").is_none(), "{patch}");
        verifier
    });
    reconcile(Arc::new(binding), ctx).await.expect("reconcile");
    within_5s(scenario).await.no_more_requests().await;
    let tags = tags_of(&cloud).await;
    assert_eq!(tags["g1"]["tags"], serde_json::json!({}), "{tags}");
    assert_eq!(tags["g2"]["tags"], serde_json::json!({}), "{tags}");
    cloud.shutdown().await.expect("emulator stops");
}

/// A selector pass refused before the cloud writes (it selects more than `maxResources`) does
/// not resolve a previous intent: the intent stays in status for a pass that reads the cloud
/// (issue 20, item 14: `fleet::pass_group` keeps it).
#[tokio::test]
async fn a_refused_selector_pass_keeps_its_intent() {
    let cloud = cloud(&[("g1", &[("team", "web")]), ("g2", &[("team", "web")])]).await;
    let mut binding = ResourceTagBinding::test()
        .finalized()
        .with_status(killed_after_the_intent());
    binding.spec.resource_ids.clear();
    binding.spec.resource_selector = Some(ResourceSelector {
        match_tags: BTreeMap::from([("team".to_string(), "web".to_string())]),
    });
    binding.spec.max_resources = Some(1);
    let (ctx, verifier) = context(vec![binding.clone()], vec![provider(&cloud.url())]);
    let expected = binding.clone();
    let scenario = tokio::spawn(async move {
        let verifier = verifier.handle_secret_get().await;
        let (verifier, patch) = verifier
            .handle_status_patch_seen(expected, "TooManyResources", "False")
            .await;
        assert_eq!(
            patch["status"]["pendingTags"],
            serde_json::json!({"env": "prod"}),
            "{patch}"
        );
        assert_eq!(
            patch["status"]["pendingResourceIds"],
            serde_json::json!(["g1", "g2"]),
            "{patch}"
        );
        verifier.handle_event("TooManyResources").await
    });
    reconcile(Arc::new(binding), ctx).await.expect("reconcile");
    within_5s(scenario).await.no_more_requests().await;
    let tags = tags_of(&cloud).await;
    assert_eq!(
        tags["g1"]["tags"],
        serde_json::json!({"team": "web"}),
        "{tags}"
    );
    cloud.shutdown().await.expect("emulator stops");
}
