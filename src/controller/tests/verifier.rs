//! The mock API server of the controller's tests: it answers the requests a scenario expects,
//! in order, and fails the test on any other.

use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use serde_json::Value;

use super::{FINALIZER, KEY_SECRET, ResourceTagBinding, secret};
use crate::api::INTENT_ANNOTATION;

type ApiServerHandle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// The requests a test expects, in order.
pub(super) enum Scenario {
    /// A new binding whose provider is missing: a Warning event, the finalizer (no intent
    /// carried it), then the status.
    FinalizerBeforeStatus(ResourceTagBinding),
    /// No provider: a Warning event, then one status write saying ProviderNotFound.
    ProviderNotFound(ResourceTagBinding),
    /// The Secret is read, the intent is applied to the binding's annotation (with the
    /// finalizer), tags are written to the cloud, the status is patched (the intent
    /// superseded), and an event says tags were applied.
    IntentThenStatusPatched(ResourceTagBinding),
    /// The Secret is read and the cloud already matches the status: no write at all.
    NothingChanged,
    /// The Secret is read, owned tags are pruned, an event says so, the finalizer goes.
    CleanupOnDelete(ResourceTagBinding),
}

pub(super) struct ApiServerVerifier(pub(super) ApiServerHandle);

/// Fails the test when the scenario does not finish in time.
pub(super) async fn within_5s(
    handle: tokio::task::JoinHandle<ApiServerVerifier>,
) -> ApiServerVerifier {
    tokio::time::timeout(Duration::from_secs(5), handle)
        .await
        .expect("the scenario finishes in time")
        .expect("the scenario does not panic")
}

impl ApiServerVerifier {
    pub(super) fn run(self, scenario: Scenario) -> tokio::task::JoinHandle<ApiServerVerifier> {
        tokio::spawn(async move {
            match scenario {
                Scenario::FinalizerBeforeStatus(binding) => {
                    let verifier = self.handle_event("ProviderNotFound").await;
                    let verifier = verifier.handle_finalizer_creation(binding.clone()).await;
                    verifier
                        .handle_status_patch(binding, "ProviderNotFound", "False")
                        .await
                }
                Scenario::ProviderNotFound(binding) => {
                    let verifier = self.handle_event("ProviderNotFound").await;
                    verifier
                        .handle_status_patch(binding, "ProviderNotFound", "False")
                        .await
                }
                Scenario::IntentThenStatusPatched(binding) => {
                    let verifier = self.handle_secret_get().await;
                    let verifier = verifier.handle_intent_patch(binding.clone()).await.0;
                    let (verifier, patch) = verifier
                        .handle_status_patch_seen(binding, "Synced", "True")
                        .await;
                    assert!(
                        patch["status"].get("pendingResourceIds").is_none(),
                        "the intent is resolved: {patch}"
                    );
                    assert_eq!(
                        patch["status"]["recordSequence"], 1,
                        "the status supersedes the intent: {patch}"
                    );
                    verifier.handle_event("TagsApplied").await
                }
                Scenario::NothingChanged => self.handle_secret_get().await,
                Scenario::CleanupOnDelete(binding) => {
                    let verifier = self.handle_secret_get().await;
                    let verifier = verifier.handle_event("Pruned").await;
                    verifier.handle_finalizer_removal(binding).await
                }
            }
        })
    }

    pub(super) async fn next(
        &mut self,
    ) -> (
        Request<Body>,
        tower_test::mock::SendResponse<Response<Body>>,
    ) {
        self.0
            .next_request()
            .await
            .expect("a request to the API server")
    }

    pub(super) async fn body_json(request: Request<Body>) -> Value {
        let bytes = request
            .into_body()
            .collect_bytes()
            .await
            .expect("request body");
        serde_json::from_slice(&bytes).expect("JSON body")
    }

    pub(super) fn respond(
        send: tower_test::mock::SendResponse<Response<Body>>,
        value: &impl serde::Serialize,
    ) {
        let body = serde_json::to_vec(value).expect("serialisable response");
        send.send_response(
            Response::builder()
                .body(Body::from(body))
                .expect("response"),
        );
    }

    /// The finalizer applied alone: by a field manager of its own, which never owns (so never
    /// removes) an intent annotation.
    pub(super) async fn handle_finalizer_creation(mut self, binding: ResourceTagBinding) -> Self {
        let (request, send) = self.next().await;
        assert_eq!(request.method(), http::Method::PATCH);
        assert_eq!(
            request.uri().path(),
            "/apis/tagbinder.io/v1alpha1/namespaces/team-web/resourcetagbindings/web"
        );
        let query = request.uri().query().unwrap_or_default().to_string();
        assert!(
            query.contains("fieldManager=tagbinder-finalizer"),
            "the finalizer's own manager: {query}"
        );
        let patch = Self::body_json(request).await;
        assert_eq!(
            patch["metadata"]["finalizers"],
            serde_json::json!([FINALIZER])
        );
        assert!(
            patch["metadata"].get("annotations").is_none(),
            "no annotation in {patch}"
        );
        Self::respond(send, &binding.finalized());
        self
    }

    pub(super) async fn handle_finalizer_removal(mut self, binding: ResourceTagBinding) -> Self {
        let (request, send) = self.next().await;
        assert_eq!(request.method(), http::Method::PATCH);
        assert_eq!(
            request.uri().path(),
            "/apis/tagbinder.io/v1alpha1/namespaces/team-web/resourcetagbindings/web"
        );
        let patch = Self::body_json(request).await.to_string();
        assert!(
            patch.contains("\"op\":\"remove\""),
            "finalizer removal in {patch}"
        );
        Self::respond(send, &binding);
        self
    }

    pub(super) async fn handle_secret_get(mut self) -> Self {
        let (request, send) = self.next().await;
        assert_eq!(request.method(), http::Method::GET);
        assert_eq!(
            request.uri().path(),
            "/api/v1/namespaces/tagbinder-system/secrets/aliyun-creds"
        );
        Self::respond(send, &secret());
        self
    }

    pub(super) async fn handle_event(mut self, reason: &str) -> Self {
        let (request, send) = self.next().await;
        assert_eq!(request.method(), http::Method::POST);
        assert_eq!(
            request.uri().path(),
            "/apis/events.k8s.io/v1/namespaces/team-web/events"
        );
        let event = Self::body_json(request).await;
        assert_eq!(event["reason"], reason, "{event}");
        let note = event["note"].as_str().unwrap_or_default();
        assert!(!note.contains(KEY_SECRET), "no secret in events");
        Self::respond(send, &event);
        self
    }

    pub(super) async fn handle_status_patch(
        self,
        binding: ResourceTagBinding,
        reason: &str,
        ready: &str,
    ) -> Self {
        self.handle_status_patch_seen(binding, reason, ready)
            .await
            .0
    }

    /// A status patch, answered as applied; returns the patch.
    pub(super) async fn handle_status_patch_seen(
        mut self,
        binding: ResourceTagBinding,
        reason: &str,
        ready: &str,
    ) -> (Self, Value) {
        let (patch, send) = self.next_status_patch().await;
        let ready_condition = patch["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .cloned()
            .unwrap_or_else(|| panic!("a Ready condition in {patch}"));
        assert_eq!(ready_condition["reason"], reason, "{patch}");
        assert_eq!(ready_condition["status"], ready, "{patch}");
        assert_eq!(ready_condition["observedGeneration"], 1);
        assert!(
            !patch.to_string().contains(KEY_SECRET),
            "no secret in status"
        );
        Self::answer_status(send, binding, &patch);
        (self, patch)
    }

    /// The next request, a status patch of the binding by the controller's field manager: its
    /// body, and where to answer it.
    async fn next_status_patch(
        &mut self,
    ) -> (Value, tower_test::mock::SendResponse<Response<Body>>) {
        let (request, send) = self.next().await;
        assert_eq!(request.method(), http::Method::PATCH);
        assert_eq!(
            request.uri().path(),
            "/apis/tagbinder.io/v1alpha1/namespaces/team-web/resourcetagbindings/web/status"
        );
        assert!(
            request
                .uri()
                .query()
                .unwrap_or_default()
                .contains("fieldManager=tagbinder")
        );
        (Self::body_json(request).await, send)
    }

    /// Answers a status patch as applied to `binding`.
    fn answer_status(
        send: tower_test::mock::SendResponse<Response<Body>>,
        binding: ResourceTagBinding,
        patch: &Value,
    ) {
        let mut updated = binding;
        updated.status = serde_json::from_value(patch["status"].clone()).expect("status");
        Self::respond(send, &updated);
    }

    /// The write of an intent (before the cloud writes): a server-side apply of the binding's
    /// intent annotation and its finalizer, answered as applied; returns the intent record.
    pub(super) async fn handle_intent_patch(
        mut self,
        binding: ResourceTagBinding,
    ) -> (Self, Value) {
        let (request, send) = self.next().await;
        assert_eq!(request.method(), http::Method::PATCH);
        assert_eq!(
            request.uri().path(),
            "/apis/tagbinder.io/v1alpha1/namespaces/team-web/resourcetagbindings/web"
        );
        let patch = Self::body_json(request).await;
        assert_eq!(
            patch["metadata"]["finalizers"],
            serde_json::json!([FINALIZER]),
            "the finalizer in {patch}"
        );
        let value = patch["metadata"]["annotations"][INTENT_ANNOTATION]
            .as_str()
            .unwrap_or_else(|| panic!("an intent annotation in {patch}"));
        let intent: Value = serde_json::from_str(value).expect("JSON intent");
        assert!(
            intent["pendingResourceIds"]
                .as_array()
                .is_some_and(|ids| !ids.is_empty()),
            "an intent in {intent}"
        );
        let mut updated = binding.finalized();
        updated
            .metadata
            .annotations
            .get_or_insert_default()
            .insert(INTENT_ANNOTATION.to_string(), value.to_string());
        Self::respond(send, &updated);
        (self, intent)
    }

    /// The status write of an intent too large for an annotation, answered as applied;
    /// returns the patch.
    pub(super) async fn handle_status_intent(
        mut self,
        binding: ResourceTagBinding,
    ) -> (Self, Value) {
        let (patch, send) = self.next_status_patch().await;
        Self::answer_status(send, binding, &patch);
        (self, patch)
    }

    /// The write of an intent, answered 409 Conflict.
    pub(super) async fn handle_intent_conflict(mut self) -> Self {
        let (request, send) = self.next().await;
        assert_eq!(request.method(), http::Method::PATCH);
        assert!(request.uri().path().ends_with("/resourcetagbindings/web"));
        Self::fail(send, 409, "Conflict");
        self
    }

    /// A status patch, answered 409 Conflict.
    pub(super) async fn handle_status_conflict(mut self) -> Self {
        let (request, send) = self.next().await;
        assert_eq!(request.method(), http::Method::PATCH);
        assert!(
            request
                .uri()
                .path()
                .ends_with("/resourcetagbindings/web/status")
        );
        Self::fail(send, 409, "Conflict");
        self
    }

    /// The Secret GET, answered 403 Forbidden.
    pub(super) async fn handle_secret_forbidden(mut self) -> Self {
        let (request, send) = self.next().await;
        assert_eq!(
            request.uri().path(),
            "/api/v1/namespaces/tagbinder-system/secrets/aliyun-creds"
        );
        Self::fail(send, 403, "Forbidden");
        self
    }

    pub(super) fn fail(
        send: tower_test::mock::SendResponse<Response<Body>>,
        code: u16,
        reason: &str,
    ) {
        let status = serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "reason": reason, "code": code,
            "message": format!("secrets \"aliyun-creds\" is {reason} (test)"),
        });
        send.send_response(
            Response::builder()
                .status(code)
                .body(Body::from(serde_json::to_vec(&status).expect("JSON")))
                .expect("response"),
        );
    }

    /// Asserts that no further request arrives.
    pub(super) async fn no_more_requests(mut self) {
        let next = tokio::time::timeout(Duration::from_millis(200), self.0.next_request()).await;
        assert!(
            matches!(next, Err(_) | Ok(None)),
            "an unexpected extra request"
        );
    }
}
