//! The crash window beyond a first apply (issue 20, item 14): a controller killed (SIGKILL)
//! during a value change, a prune, a deletion and a selector release, on the API Gateway,
//! the Tag service and JD Cloud, while its status writes are held (so that the kill falls
//! between a cloud write and its record), then restarted against a cloud that throttles,
//! fails and loses answers. Each ends with the tags and the ownership record of an
//! uninterrupted run, and every foreign tag in place.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kube::api::{DeleteParams, Patch, PatchParams};
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use tagbinder::api::{
    AlibabaSignatureVersion, Cloud, ResourceSelector, ResourceTagBinding, TagProvider,
};

use crate::Env;
use crate::support::fixtures::{Crds, Tenant, eventually, is_true, provider, tags};
use crate::support::processes::{Controller, ControllerOptions, PersistentCloud, Resource};

/// How long the killed controller's status writes are held (see `crash.rs`).
const STATUS_DELAY: Duration = Duration::from_millis(400);
/// The cloud after the restart: a third of the calls throttled, some failing, some answers
/// lost after the write happened.
const FAULTS: &[&str] = &[
    "--throttle-ratio",
    "0.3",
    "--error-ratio",
    "0.05",
    "--lost-answer-ratio",
    "0.05",
];

/// What the scenario does to the converged bindings.
enum Change {
    /// A merge patch of one binding's spec.
    Patch(&'static str, Value),
    /// Deletes one binding.
    Delete(&'static str),
    /// Removes a key from a resource out of band (a selector's match tag).
    Remove(&'static str, &'static str),
}

/// One crash case: a cloud, a provider, bindings, a change and what it must end with.
struct Case {
    name: &'static str,
    cloud: &'static str,
    kind: &'static str,
    resources: Vec<Resource<'static>>,
    bindings: Vec<ResourceTagBinding>,
    change: Change,
    /// The calls that write the change (the kill comes after the first of them).
    writes: &'static [&'static str],
    /// Every resource's tags at the end.
    expected: TagsOf,
    /// Each remaining binding's owned tags per resource at the end.
    owned: Vec<(&'static str, TagsOf)>,
}

/// Tags by resource id.
type TagsOf = Vec<(&'static str, BTreeMap<String, String>)>;

fn alibaba(id: &'static str, tags: &'static [(&'static str, &'static str)]) -> Resource<'static> {
    ("alibaba", "cn-hangzhou", "apiGroup", id, tags)
}

fn binding(name: &str, provider: &str, ids: &[&str], tags: &[(&str, &str)]) -> ResourceTagBinding {
    crate::support::fixtures::binding(name, provider, ids, tags)
}

/// The provider of `case` against `url`.
fn provider_of(case: &Case, url: &str) -> TagProvider {
    let mut provider = provider(case.name, url, &format!("{}-creds", case.name));
    match (case.cloud, case.kind) {
        ("jdcloud", _) => {
            provider.spec.cloud = Cloud::Jdcloud;
            provider.spec.region = "cn-north-1".into();
            provider.spec.alibaba = None;
        }
        (_, "ecs:instance") => {
            let settings = provider.spec.alibaba.as_mut().expect("Alibaba settings");
            settings.product = Some("tag".into());
            settings.signature_version = Some(AlibabaSignatureVersion::V3);
        }
        _ => {}
    }
    provider
}

async fn writes(cloud: &PersistentCloud, case: &Case) -> u64 {
    let mut total = 0;
    for action in case.writes {
        total += cloud.calls(case.cloud, action).await;
    }
    total
}

/// Every binding of the tenant Ready, with nothing pending and its generation observed.
async fn settled(tenant: &Tenant, count: usize) -> Vec<ResourceTagBinding> {
    eventually(
        &format!("{}: {count} bindings settled", tenant.namespace),
        || async {
            let list = tenant
                .bindings
                .list(&Default::default())
                .await
                .map_err(|e| e.to_string())?;
            let unsettled: Vec<String> = list
                .items
                .iter()
                .filter(|b| {
                    !is_true(b, "Ready")
                        || b.status.as_ref().is_none_or(|s| {
                            !s.pending.is_empty() || s.observed_generation != b.metadata.generation
                        })
                })
                .map(|b| serde_json::to_string(&b.status).unwrap_or_default())
                .collect();
            if list.items.len() == count && unsettled.is_empty() {
                Ok(list.items)
            } else {
                Err(format!(
                    "{} bindings; unsettled: {unsettled:?}",
                    list.items.len()
                ))
            }
        },
    )
    .await
}

/// Runs one case: whether the kill fell between the change's first write and its record, and
/// how many calls the cloud failed after the restart.
async fn run_case(env: &Env, case: Case, rng: &mut rand::rngs::StdRng) -> (bool, u64) {
    let (server, client) = env.own_server(Crds::Both).await;
    let dir = env.scratch(&format!("crash-{}", case.name));
    let mut cloud = PersistentCloud::start(&dir, &case.resources).await;
    let tenant = Tenant::with_provider(&client, case.name, provider_of(&case, &cloud.url)).await;
    for binding in &case.bindings {
        tenant.create(binding).await;
    }
    let identity = format!("tagbinder-crash-{}", case.name);
    let options = || ControllerOptions {
        identity: &identity,
        leader_election: false,
        namespace: None,
    };
    let mut controller = Controller::start(&server, &dir, options());
    settled(&tenant, case.bindings.len()).await;

    let user = identity.clone();
    // NB: a deletion ends with the finalizer's removal, a patch of the binding itself.
    let deleting = matches!(case.change, Change::Delete(_));
    server.delay(STATUS_DELAY, move |call| {
        call.is(&user, "patch", "resourcetagbindings/status")
            || deleting && call.is(&user, "patch", "resourcetagbindings")
    });
    let before = writes(&cloud, &case).await;
    match &case.change {
        Change::Patch(name, patch) => {
            tenant
                .bindings
                .patch(name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .expect("patch the binding");
        }
        Change::Delete(name) => {
            tenant
                .bindings
                .delete(name, &DeleteParams::default())
                .await
                .expect("delete the binding");
        }
        Change::Remove(id, key) => cloud.edit(case.cloud, case.kind, id, &[], &[key]).await,
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while writes(&cloud, &case).await == before {
        assert!(
            Instant::now() < deadline,
            "{}: the change was never written",
            case.name
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(STATUS_DELAY.mul_f64(rng.random_range(0.0..0.9))).await;
    controller.kill().await;
    server.abandon_held();
    // NB: whether the kill fell between the change's write and its record.
    let in_window =
        match &case.change {
            Change::Patch(name, _) => tenant.bindings.get(name).await.is_ok_and(|b| {
                b.status.and_then(|s| s.observed_generation) != b.metadata.generation
            }),
            Change::Delete(name) => tenant
                .bindings
                .get_opt(name)
                .await
                .is_ok_and(|b| b.is_some()),
            Change::Remove(..) => true,
        };

    let seed = rng.random::<u32>().to_string();
    let mut faults = FAULTS.to_vec();
    faults.extend(["--seed", &seed]);
    cloud.restart_with(&faults).await;
    let _controller = Controller::start(&server, &dir, options());
    // NB: a change the controller had recorded nothing of (a selector's release follows a
    // cloud edit) leaves the old status settled: wait for the expected end, not for quiet.
    eventually(
        &format!(
            "{}: the tags and records of an uninterrupted run",
            case.name
        ),
        || async {
            let bindings = settled(&tenant, case.owned.len()).await;
            for (id, expected) in &case.expected {
                let carried = cloud.tags(case.cloud, case.kind, id).await;
                if &carried != expected {
                    return Err(format!("{id} carries {carried:?}, not {expected:?}"));
                }
            }
            for (name, expected) in &case.owned {
                let owned = bindings
                    .iter()
                    .find(|b| b.metadata.name.as_deref() == Some(name))
                    .and_then(|b| b.status.as_ref())
                    .map(|s| s.applied.to_ownership())
                    .unwrap_or_default();
                for (id, tags) in expected {
                    let recorded = owned.on(id).cloned().unwrap_or_default();
                    if &recorded != tags {
                        return Err(format!("{name} records {recorded:?} on {id}, not {tags:?}"));
                    }
                }
            }
            Ok(())
        },
    )
    .await;
    (in_window, cloud.faulted().await)
}

fn cases() -> Vec<Case> {
    let console = &[("created-by", "console")][..];
    vec![
        Case {
            name: "crashvalue",
            cloud: "alibaba",
            kind: "apiGroup",
            resources: vec![alibaba("cv-1", console), alibaba("cv-2", &[])],
            bindings: vec![binding(
                "web",
                "crashvalue",
                &["cv-1", "cv-2"],
                &[("env", "prod")],
            )],
            change: Change::Patch("web", json!({"spec": {"tags": {"env": "staging"}}})),
            writes: &["TagResources"],
            expected: vec![
                (
                    "cv-1",
                    tags(&[("created-by", "console"), ("env", "staging")]),
                ),
                ("cv-2", tags(&[("env", "staging")])),
            ],
            owned: vec![(
                "web",
                vec![
                    ("cv-1", tags(&[("env", "staging")])),
                    ("cv-2", tags(&[("env", "staging")])),
                ],
            )],
        },
        Case {
            name: "crashprune",
            cloud: "alibaba",
            kind: "apiGroup",
            resources: vec![alibaba("cp-1", &[("team", "web")])],
            bindings: vec![binding(
                "web",
                "crashprune",
                &["cp-1"],
                &[("env", "prod"), ("cost", "c1")],
            )],
            change: Change::Patch("web", json!({"spec": {"tags": {"cost": null}}})),
            writes: &["UntagResources"],
            expected: vec![("cp-1", tags(&[("env", "prod"), ("team", "web")]))],
            owned: vec![("web", vec![("cp-1", tags(&[("env", "prod")]))])],
        },
        Case {
            name: "crashdelete",
            cloud: "alibaba",
            kind: "apiGroup",
            resources: vec![alibaba("cd-1", console), alibaba("cd-2", &[])],
            bindings: vec![binding(
                "web",
                "crashdelete",
                &["cd-1", "cd-2"],
                &[("env", "prod")],
            )],
            change: Change::Delete("web"),
            writes: &["UntagResources"],
            expected: vec![
                ("cd-1", tags(&[("created-by", "console")])),
                ("cd-2", tags(&[])),
            ],
            owned: vec![],
        },
        Case {
            name: "crashselect",
            cloud: "alibaba",
            kind: "apiGroup",
            resources: vec![
                alibaba("cs-1", &[("team", "web")]),
                alibaba("cs-2", &[("team", "web")]),
            ],
            bindings: vec![{
                let mut binding = binding("web", "crashselect", &[], &[("env", "prod")]);
                binding.spec.resource_selector = Some(ResourceSelector {
                    match_tags: tags(&[("team", "web")]),
                });
                binding
            }],
            change: Change::Remove("cs-2", "team"),
            writes: &["UntagResources"],
            expected: vec![
                ("cs-1", tags(&[("env", "prod"), ("team", "web")])),
                ("cs-2", tags(&[])),
            ],
            owned: vec![(
                "web",
                vec![("cs-1", tags(&[("env", "prod")])), ("cs-2", tags(&[]))],
            )],
        },
        Case {
            name: "crashtagsvc",
            cloud: "alibaba",
            kind: "ecs:instance",
            resources: vec![
                ("alibaba", "cn-hangzhou", "ecs:instance", "i-ct1", console),
                ("alibaba", "cn-hangzhou", "ecs:instance", "i-ct2", &[]),
            ],
            bindings: vec![{
                let mut binding = binding(
                    "web",
                    "crashtagsvc",
                    &["i-ct1", "i-ct2"],
                    &[("env", "prod"), ("cost", "c1")],
                );
                binding.spec.resource_type = "ecs:instance".into();
                binding
            }],
            change: Change::Patch(
                "web",
                json!({"spec": {"tags": {"env": "staging", "cost": null}}}),
            ),
            writes: &["TagResources", "UntagResources"],
            expected: vec![
                (
                    "i-ct1",
                    tags(&[("created-by", "console"), ("env", "staging")]),
                ),
                ("i-ct2", tags(&[("env", "staging")])),
            ],
            owned: vec![(
                "web",
                vec![
                    ("i-ct1", tags(&[("env", "staging")])),
                    ("i-ct2", tags(&[("env", "staging")])),
                ],
            )],
        },
        Case {
            name: "crashjd",
            cloud: "jdcloud",
            kind: "vm",
            resources: vec![
                ("jdcloud", "cn-north-1", "vm", "i-cj1", console),
                ("jdcloud", "cn-north-1", "vm", "i-cj2", &[]),
            ],
            bindings: vec![{
                let mut binding = binding(
                    "web",
                    "crashjd",
                    &["i-cj1", "i-cj2"],
                    &[("env", "prod"), ("cost", "c1")],
                );
                binding.spec.resource_type = "vm".into();
                binding
            }],
            change: Change::Patch(
                "web",
                json!({"spec": {"tags": {"env": "staging", "cost": null}}}),
            ),
            writes: &["tagResources", "unTagResources"],
            expected: vec![
                (
                    "i-cj1",
                    tags(&[("created-by", "console"), ("env", "staging")]),
                ),
                ("i-cj2", tags(&[("env", "staging")])),
            ],
            owned: vec![(
                "web",
                vec![
                    ("i-cj1", tags(&[("env", "staging")])),
                    ("i-cj2", tags(&[("env", "staging")])),
                ],
            )],
        },
    ]
}

/// Each case on a server, a cloud and a controller of its own: killed once while the change's
/// first write is unrecorded, restarted against a faulty cloud, and checked.
pub async fn a_controller_killed_during_changes_deletions_and_releases_loses_no_ownership(
    env: Arc<Env>,
) {
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random());
    println!("crash changes scenario: CRASH_SEED={seed}");
    let runs = cases().into_iter().enumerate().map(|(i, case)| {
        let env = env.clone();
        async move {
            let name = case.name;
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed.wrapping_add(i as u64));
            (name, run_case(&env, case, &mut rng).await)
        }
    });
    let ends = futures::future::join_all(runs).await;
    println!(
        "crash changes scenario: (killed between a write and its record, faulted calls after the restart): {ends:?}"
    );
    assert!(
        ends.iter().any(|(_, (in_window, _))| *in_window),
        "no kill fell between a write and its record: the scenario tested nothing"
    );
    assert!(
        ends.iter().map(|(_, (_, faulted))| faulted).sum::<u64>() > 0,
        "the cloud failed no call after the restarts"
    );
}
