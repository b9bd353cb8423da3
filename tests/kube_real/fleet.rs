//! The shared controller on the real apiserver, as a user sees it (`kubectl wait`, `kubectl
//! get -o jsonpath`, `kubectl get events`, the cloud's tags): two providers that reach the same
//! resource, a selector whose resources gain and lose its tags, an Observe binding, and a
//! reconcile requested with `reconcile.fluxcd.io/requestedAt`.

use std::sync::Arc;
use std::time::Duration;

use tagbinder::api::{BindingMode, ResourceSelector};

use crate::Env;
use crate::support::fixtures::{
    self, Tenant, create_credentials, create_provider, eventually, tags,
};
use crate::support::processes::{CloudEmulator, Controller, http};

/// `kubectl get rtb/NAME -n NS -o jsonpath=PATH`.
pub async fn field(env: &Env, namespace: &str, name: &str, path: &str) -> String {
    env.cluster
        .kubectl_ok(
            &[
                "get",
                &format!("rtb/{name}"),
                "-n",
                namespace,
                "-o",
                &format!("jsonpath={path}"),
            ],
            None,
        )
        .await
}

/// `kubectl wait --for=FOR rtb/NAME -n NS`.
pub async fn wait_for(env: &Env, namespace: &str, name: &str, condition: &str) {
    env.cluster
        .kubectl_ok(
            &[
                "wait",
                &format!("--for={condition}"),
                &format!("rtb/{name}"),
                "-n",
                namespace,
                "--timeout=90s",
            ],
            None,
        )
        .await;
}

/// The reasons of the events about one binding, as `kubectl get events` lists them.
pub async fn event_reasons(env: &Env, namespace: &str, name: &str) -> Vec<String> {
    let out = env
        .cluster
        .kubectl_ok(
            &[
                "get",
                "events",
                "-n",
                namespace,
                "--field-selector",
                &format!("involvedObject.name={name}"),
                "-o",
                "jsonpath={range .items[*]}{.reason}{\"\\n\"}{end}",
            ],
            None,
        )
        .await;
    out.lines().map(str::to_string).collect()
}

/// Waits until `kubectl get events` shows an event with `reason` about the binding.
async fn wait_event(env: &Env, namespace: &str, name: &str, reason: &str) -> Vec<String> {
    eventually(
        &format!("a {reason} event about {namespace}/{name}"),
        || async {
            let reasons = event_reasons(env, namespace, name).await;
            if reasons.iter().any(|r| r == reason) {
                Ok(reasons)
            } else {
                Err(format!("{reasons:?}"))
            }
        },
    )
    .await
}

/// Waits until the cloud tags of `id` are `want`.
async fn cloud_becomes(cloud: &CloudEmulator, id: &str, want: &[(&str, &str)]) {
    let want = tags(want);
    eventually(&format!("the tags of {id}"), || async {
        let now = cloud.tags(id).await;
        if now == want {
            Ok(())
        } else {
            Err(format!("{now:?}, wanted {want:?}"))
        }
    })
    .await;
}

/// `tagbinder_passes_total` of one provider.
async fn passes_of(controller: &Controller, provider: &str) -> usize {
    let (_, metrics) = controller.endpoint("/metrics").await;
    let series = format!("tagbinder_passes_total{{provider=\"{provider}\"}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&series))
        .and_then(|value| value.trim().parse::<f64>().ok())
        .unwrap_or(0.0) as usize
}

/// Tag and untag calls a cloud emulator answered so far (any outcome).
async fn cloud_writes(cloud: &CloudEmulator) -> u64 {
    let (code, body) = http("GET", &format!("{}/_emulator/stats", cloud.url), None).await;
    assert_eq!(code, 200, "{body}");
    let stats: serde_json::Value = serde_json::from_str(&body).expect("JSON stats");
    ["TagResources", "UntagResources"]
        .iter()
        .filter_map(|action| stats["requests"]["alibaba"][action].as_object())
        .flat_map(|outcomes| outcomes.values())
        .filter_map(serde_json::Value::as_u64)
        .sum()
}

const READY_REASON: &str = "{.status.conditions[?(@.type==\"Ready\")].reason}";

/// Two teams, a TagProvider each, both reaching the same account: a binding through each sets
/// `env` on the same API group to another value. The older binding wins; the younger says
/// Conflict, names the winner in its status and in one event; nothing flaps.
pub async fn two_providers_reaching_one_resource_decide_by_age_on_the_real_apiserver(
    env: Arc<Env>,
) {
    let team_a = Tenant::new(&env.client, &env.cloud.url, "conflict").await;
    let namespace = team_a.namespace.clone();
    let provider_b = "conflict-b";
    create_credentials(&env.client, "conflict-b-creds").await;
    create_provider(
        &env.client,
        &fixtures::provider(provider_b, &env.cloud.url, "conflict-b-creds"),
    )
    .await;
    // NB: the names sort the other way round, so that only age can decide.
    team_a
        .create(&team_a.binding("z-older", &["conflict-g1"], &[("env", "prod")]))
        .await;
    wait_for(&env, &namespace, "z-older", "condition=Ready").await;
    // NB: creation times have whole seconds: the younger one is made a second later.
    let created = field(&env, &namespace, "z-older", "{.metadata.creationTimestamp}").await;
    let created: jiff::Timestamp = created.parse().expect("an RFC 3339 creation time");
    while jiff::Timestamp::now().as_second() <= created.as_second() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    team_a
        .create(&fixtures::binding(
            "a-newer",
            provider_b,
            &["conflict-g1"],
            &[("env", "staging"), ("owner", "b")],
        ))
        .await;
    wait_for(
        &env,
        &namespace,
        "a-newer",
        &format!("jsonpath={READY_REASON}=Conflict"),
    )
    .await;
    let message = field(
        &env,
        &namespace,
        "a-newer",
        "{.status.conditions[?(@.type==\"Ready\")].message}",
    )
    .await;
    assert!(
        message.contains("e2e-conflict/z-older"),
        "the winner is named: {message}"
    );
    let conflicts = field(
        &env,
        &namespace,
        "a-newer",
        "{range .status.conflicts[*]}{.resourceId} {.key} {.winner}{\"\\n\"}{end}",
    )
    .await;
    assert_eq!(conflicts.trim(), "conflict-g1 env e2e-conflict/z-older");
    assert_eq!(
        env.cloud.tags("conflict-g1").await,
        tags(&[("env", "prod"), ("owner", "b")])
    );
    wait_event(&env, &namespace, "a-newer", "Conflict").await;

    // Three more passes through each provider: the value stays, no status is rewritten.
    let version = |name: &'static str| {
        let env = env.clone();
        let namespace = namespace.clone();
        async move { field(&env, &namespace, name, "{.metadata.resourceVersion}").await }
    };
    let (winner, loser) = (version("z-older").await, version("a-newer").await);
    let (a_since, b_since) = (
        passes_of(&env.controller, &team_a.provider).await,
        passes_of(&env.controller, provider_b).await,
    );
    eventually("three more passes through each provider", || async {
        let (a, b) = (
            passes_of(&env.controller, &team_a.provider).await,
            passes_of(&env.controller, provider_b).await,
        );
        if a >= a_since + 3 && b >= b_since + 3 {
            Ok(())
        } else {
            Err(format!("{a} and {b} passes, from {a_since} and {b_since}"))
        }
    })
    .await;
    assert_eq!(
        env.cloud.tags("conflict-g1").await,
        tags(&[("env", "prod"), ("owner", "b")])
    );
    assert_eq!(
        version("z-older").await,
        winner,
        "the winner is not rewritten"
    );
    assert_eq!(
        version("a-newer").await,
        loser,
        "the loser is not rewritten"
    );
    let reasons = event_reasons(&env, &namespace, "a-newer").await;
    assert_eq!(
        reasons.iter().filter(|r| *r == "Conflict").count(),
        1,
        "one Conflict event, however many passes: {reasons:?}"
    );

    // The winner goes (Delete): its tag is pruned, and the younger binding takes the key.
    env.cluster
        .kubectl_ok(
            &["delete", "rtb/z-older", "-n", &namespace, "--timeout=90s"],
            None,
        )
        .await;
    wait_for(&env, &namespace, "a-newer", "condition=Ready").await;
    cloud_becomes(
        &env.cloud,
        "conflict-g1",
        &[("env", "staging"), ("owner", "b")],
    )
    .await;
    assert_eq!(
        field(&env, &namespace, "a-newer", "{.status.conflicts}").await,
        "",
        "no conflict left"
    );
}

/// A selector binding (`resourceSelector.matchTags`) on a cloud of its own: it tags what
/// carries its tags; a resource that loses one is pruned and released, one that gains them is
/// tagged; deleting the binding prunes what it applied.
pub async fn a_selector_follows_the_resources_that_gain_and_lose_its_tags_on_the_real_apiserver(
    env: Arc<Env>,
) {
    let dir = env.dir.path().join("selector-cloud");
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let cloud = CloudEmulator::start(
        &dir,
        &[
            // NB: ids of its own: the stand-in suite's selector scenario, run here too, uses
            // `sel-*` in a cloud of its own, and one controller sees the same account and
            // region in both clouds, so the same id would be one resource to it.
            ("rsel-a", &[("team", "web"), ("env", "prod")]),
            ("rsel-b", &[("team", "web"), ("env", "prod")]),
            ("rsel-c", &[("team", "web"), ("env", "dev")]),
            ("rsel-d", &[]),
        ],
    )
    .await;
    let tenant = Tenant::new(&env.client, &cloud.url, "selector").await;
    let namespace = tenant.namespace.clone();
    let mut web = tenant.binding("web", &[], &[("cost-center", "cc-1")]);
    web.spec.resource_selector = Some(ResourceSelector {
        match_tags: tags(&[("team", "web"), ("env", "prod")]),
    });
    tenant.create(&web).await;
    wait_for(&env, &namespace, "web", "condition=Ready").await;
    let selected = || field(&env, &namespace, "web", "{.status.selected.firstIds}");
    assert_eq!(selected().await, r#"["rsel-a","rsel-b"]"#);
    assert_eq!(
        field(&env, &namespace, "web", "{.status.selected.count}").await,
        "2"
    );
    for id in ["rsel-a", "rsel-b"] {
        assert_eq!(
            cloud.tags(id).await,
            tags(&[("cost-center", "cc-1"), ("env", "prod"), ("team", "web")])
        );
    }
    assert_eq!(
        cloud.tags("rsel-c").await,
        tags(&[("env", "dev"), ("team", "web")])
    );

    // rsel-b loses a tag (Delete: what the binding applied there is pruned); rsel-d gains both.
    cloud.edit("rsel-b", &[], &["env"]).await;
    cloud
        .edit("rsel-d", &[("team", "web"), ("env", "prod")], &[])
        .await;
    eventually("rsel-d selected instead of rsel-b", || async {
        let now = selected().await;
        if now == r#"["rsel-a","rsel-d"]"# {
            Ok(())
        } else {
            Err(now)
        }
    })
    .await;
    wait_for(&env, &namespace, "web", "condition=Ready").await;
    cloud_becomes(&cloud, "rsel-b", &[("team", "web")]).await;
    cloud_becomes(
        &cloud,
        "rsel-d",
        &[("cost-center", "cc-1"), ("env", "prod"), ("team", "web")],
    )
    .await;
    assert_eq!(
        field(&env, &namespace, "web", "{.status.appliedResourceIds}").await,
        r#"["rsel-a","rsel-d"]"#
    );

    // Deleting the binding prunes what it applied, and only that.
    env.cluster
        .kubectl_ok(
            &["delete", "rtb/web", "-n", &namespace, "--timeout=90s"],
            None,
        )
        .await;
    assert_eq!(
        cloud.tags("rsel-a").await,
        tags(&[("env", "prod"), ("team", "web")])
    );
    assert_eq!(
        cloud.tags("rsel-d").await,
        tags(&[("env", "prod"), ("team", "web")])
    );
    assert_eq!(
        cloud.tags("rsel-c").await,
        tags(&[("env", "dev"), ("team", "web")])
    );
}

/// An Observe binding on a cloud of its own: Ready (Observed) and Drifted, a Drifted event, no
/// cloud write; switched to Enforce, it converges and Drifted turns False; deleted in Observe
/// mode, it writes nothing.
pub async fn an_observe_binding_reports_drift_and_writes_nothing_on_the_real_apiserver(
    env: Arc<Env>,
) {
    let dir = env.dir.path().join("observe-cloud");
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let cloud = CloudEmulator::start(
        &dir,
        &[
            ("obs-g1", &[]),
            ("obs-g2", &[("cost-center", "cc-9")]),
            ("obs-g3", &[("cost-center", "cc-1")]),
        ],
    )
    .await;
    let tenant = Tenant::new(&env.client, &cloud.url, "observe").await;
    let namespace = tenant.namespace.clone();
    let mut audit = tenant.binding(
        "audit",
        &["obs-g1", "obs-g2", "obs-g3"],
        &[("cost-center", "cc-1")],
    );
    audit.spec.mode = BindingMode::Observe;
    tenant.create(&audit).await;
    wait_for(&env, &namespace, "audit", "condition=Drifted").await;
    wait_for(&env, &namespace, "audit", "condition=Ready").await;
    assert_eq!(
        field(&env, &namespace, "audit", READY_REASON).await,
        "Observed"
    );
    assert_eq!(
        field(
            &env,
            &namespace,
            "audit",
            "{.status.drift.resources} {.status.drift.add} {.status.drift.change}"
        )
        .await,
        "2 1 1"
    );
    assert_eq!(
        field(
            &env,
            &namespace,
            "audit",
            "{range .status.driftSamples[*]}{.resourceId}/{.key} {end}"
        )
        .await
        .trim(),
        "obs-g1/cost-center obs-g2/cost-center"
    );
    wait_event(&env, &namespace, "audit", "Drifted").await;
    assert_eq!(cloud_writes(&cloud).await, 0, "Observe writes nothing");

    // Enforce: converges, and the drift is gone.
    tenant
        .bindings
        .patch(
            "audit",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&serde_json::json!({"spec": {"mode": "Enforce"}})),
        )
        .await
        .expect("patch the binding");
    wait_for(
        &env,
        &namespace,
        "audit",
        &format!("jsonpath={READY_REASON}=Synced"),
    )
    .await;
    wait_for(&env, &namespace, "audit", "condition=Ready").await;
    // NB: the status is applied server-side without the condition: the apiserver drops it.
    assert_eq!(
        field(
            &env,
            &namespace,
            "audit",
            "{.status.conditions[?(@.type==\"Drifted\")].status}"
        )
        .await,
        "",
        "Enforce has no Drifted condition"
    );
    for id in ["obs-g1", "obs-g2", "obs-g3"] {
        assert_eq!(
            cloud.tags(id).await,
            tags(&[("cost-center", "cc-1")]),
            "{id}"
        );
    }

    // A second Observe binding, deleted: nothing written for it, on creation or deletion.
    let writes = cloud_writes(&cloud).await;
    let mut watcher = tenant.binding("watcher", &["obs-g1"], &[("owner", "web")]);
    watcher.spec.mode = BindingMode::Observe;
    tenant.create(&watcher).await;
    wait_for(&env, &namespace, "watcher", "condition=Drifted").await;
    env.cluster
        .kubectl_ok(
            &["delete", "rtb/watcher", "-n", &namespace, "--timeout=90s"],
            None,
        )
        .await;
    assert_eq!(
        cloud_writes(&cloud).await,
        writes,
        "no write for an Observe binding"
    );
    assert_eq!(cloud.tags("obs-g1").await, tags(&[("cost-center", "cc-1")]));
}

/// A binding re-checked once an hour: drift in the cloud stays until someone asks, the way
/// Flux does, with `kubectl annotate ... reconcile.fluxcd.io/requestedAt=...`; then a pass
/// runs at once and the status echoes the request in `lastHandledReconcileAt`.
pub async fn a_requested_reconcile_runs_at_once_and_is_echoed_on_the_real_apiserver(env: Arc<Env>) {
    let tenant = Tenant::new(&env.client, &env.cloud.url, "reqat").await;
    let namespace = tenant.namespace.clone();
    let mut hourly = tenant.binding("hourly", &["reqat-g1"], &[("env", "prod")]);
    hourly.spec.interval = "1h".into();
    tenant.create(&hourly).await;
    wait_for(&env, &namespace, "hourly", "condition=Ready").await;
    assert_eq!(env.cloud.tags("reqat-g1").await, tags(&[("env", "prod")]));

    env.cloud.edit("reqat-g1", &[("env", "dev")], &[]).await;
    // NB: the next pass is an hour away: the drift stays.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(env.cloud.tags("reqat-g1").await, tags(&[("env", "dev")]));

    let requested = jiff::Timestamp::now().to_string();
    env.cluster
        .kubectl_ok(
            &[
                "annotate",
                "rtb/hourly",
                "-n",
                &namespace,
                "--overwrite",
                &format!("reconcile.fluxcd.io/requestedAt={requested}"),
            ],
            None,
        )
        .await;
    eventually("the request echoed in lastHandledReconcileAt", || async {
        let handled = field(
            &env,
            &namespace,
            "hourly",
            "{.status.lastHandledReconcileAt}",
        )
        .await;
        if handled == requested {
            Ok(())
        } else {
            Err(handled)
        }
    })
    .await;
    cloud_becomes(&env.cloud, "reqat-g1", &[("env", "prod")]).await;
    wait_for(&env, &namespace, "hourly", "condition=Ready").await;
}
