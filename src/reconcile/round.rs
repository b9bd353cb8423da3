//! Many bindings of one target (provider and resource type), one pass together: one read of
//! every distinct resource they consider, each binding planned from that one observation, and
//! every binding's writes handed to the client at once, so that identical payloads share
//! calls (the client coalesces them, see [`crate::cloud::batcher`]).
//!
//! The same decisions as [`run_pass`](super::run_pass) for each binding, without a future per
//! binding: at 10,000 bindings, 10,000 passes in flight at once took about 150 MiB of future
//! state, a round a few MiB of plans.

use std::collections::BTreeSet;

use super::execute::{Executed, writes_of};
use super::intent::{Intent, IntentLog};
use super::{Mode, Outcome, PassInput, check_spec};
use crate::cloud::{CloudError, TagApi, Write, stops_every_call};
use crate::plan::{self, PlanInput};
use crate::tags::{Ownership, TagsByResource};

/// Runs the passes of `inputs` (all of `resource_type`) together; one outcome per input, in
/// order.
///
/// The crash window (issue 14): once the round has observed the cloud, each input's
/// unresolved intent (from `intents`) is claimed where the cloud carries the intended value,
/// before planning; every new intent is handed to `intents` before any write is sent, and an
/// input whose intent could not be recorded sends nothing.
pub async fn run_round<C: TagApi, L: IntentLog>(
    cloud: &C,
    resource_type: &str,
    inputs: &[PassInput<'_>],
    intents: &L,
) -> Vec<Outcome> {
    let mut slots: Vec<Slot> = inputs
        .iter()
        .map(|input| match check_spec(cloud, input) {
            Some(outcome) => Slot::Done(Box::new(outcome)),
            None => Slot::Pending,
        })
        .collect();
    let observed = observe_all(cloud, resource_type, inputs, &slots, intents).await;
    let claimed: Vec<Option<Ownership>> = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let pending = intents.pending(index);
            if pending.is_empty() || !matches!(slots[index], Slot::Pending) {
                return None;
            }
            let observed = observed.of(index).ok()?;
            Some(plan::intent::claim(input.owned, pending, observed))
        })
        .collect();
    // NB: from here on, each input starts from its record with its previous intent claimed.
    let inputs: Vec<PassInput<'_>> = inputs
        .iter()
        .zip(&claimed)
        .map(|(input, claimed)| PassInput {
            owned: claimed.as_ref().unwrap_or(input.owned),
            ..input.clone()
        })
        .collect();
    for (index, input) in inputs.iter().enumerate() {
        if !matches!(slots[index], Slot::Pending) {
            continue;
        }
        let observed = match observed.of(index) {
            Ok(observed) => observed,
            Err(error) => {
                slots[index] = Slot::Done(Box::new(Outcome::observe_failed(input, error.clone())));
                continue;
            }
        };
        slots[index] = Slot::Planned(plan::plan(&PlanInput {
            binding: input.binding,
            desired: input.desired,
            resource_ids: input.resource_ids,
            owned: input.owned,
            observed,
            claims: input.claims,
            limits: cloud.limits(),
        }));
    }
    let recorded = record_intents(&inputs, &slots, intents).await;
    let mut executed = execute_all(cloud, resource_type, &inputs, &slots, &recorded).await;
    inputs
        .iter()
        .zip(slots)
        .zip(recorded)
        .enumerate()
        .map(|(index, ((input, slot), recorded))| {
            let plan = match slot {
                Slot::Done(mut outcome) => {
                    // NB: decided before the observation: the previous intent is unresolved.
                    outcome.pending = intents.pending(index).clone();
                    return *outcome;
                }
                Slot::Planned(plan) => plan,
                // NB: every slot is decided or planned above; a pending one has no answer.
                Slot::Pending => return Outcome::observe_failed(input, not_observed()),
            };
            let observed = observed.subset(index, input, intents.pending(index));
            match input.mode {
                Mode::PlanOnly | Mode::Observe => Outcome::planned(input, plan, observed),
                Mode::Apply => {
                    let done = executed[index].take().unwrap_or_default();
                    // NB: what the cloud did not confirm may have landed all the same (an
                    // answer lost after the retries): it stays pending for the next pass.
                    let pending = match recorded {
                        Recorded::Yes(intent) => {
                            plan::intent::unconfirmed(&intent, &done.confirmed.written)
                        }
                        Recorded::Nothing | Recorded::Failed(_) => TagsByResource::new(),
                    };
                    let mut outcome = Outcome::executed(input, plan, observed, done);
                    outcome.pending = pending;
                    outcome
                }
            }
        })
        .collect()
}

/// Whether an input's intent was recorded before its writes.
enum Recorded {
    /// It has no intent (no write, or only writes of what it owns already).
    Nothing,
    /// Recorded: its writes go.
    Yes(TagsByResource),
    /// Not recorded: its writes do not go.
    Failed(CloudError),
}

/// Hands every planned input's intent to the host at once, before any write is sent.
async fn record_intents<L: IntentLog>(
    inputs: &[PassInput<'_>],
    slots: &[Slot],
    intents: &L,
) -> Vec<Recorded> {
    let intended: Vec<(usize, TagsByResource)> = inputs
        .iter()
        .zip(slots)
        .enumerate()
        .filter_map(|(index, (input, slot))| {
            let Slot::Planned(plan) = slot else {
                return None;
            };
            if input.mode != Mode::Apply {
                return None;
            }
            let intent = plan::intent::intent(plan, input.owned);
            (!intent.is_empty()).then_some((index, intent))
        })
        .collect();
    let mut recorded: Vec<Recorded> = inputs.iter().map(|_| Recorded::Nothing).collect();
    if intended.is_empty() {
        return recorded;
    }
    let records: Vec<Intent<'_>> = intended
        .iter()
        .map(|(index, pending)| Intent {
            index: *index,
            owned: inputs[*index].owned,
            pending,
        })
        .collect();
    let answers = intents.record(&records).await;
    drop(records);
    // NB: an intent the host did not answer for counts as not recorded.
    let answers = answers.into_iter().map(Some).chain(std::iter::repeat(None));
    for ((index, intent), answer) in intended.into_iter().zip(answers) {
        recorded[index] = match answer {
            Some(Ok(())) => Recorded::Yes(intent),
            Some(Err(message)) => Recorded::Failed(intent_not_recorded(message)),
            None => Recorded::Failed(intent_not_recorded("no answer".to_string())),
        };
    }
    recorded
}

fn intent_not_recorded(message: String) -> CloudError {
    CloudError {
        kind: crate::cloud::ErrorKind::Retryable,
        action: "TagResources",
        code: "IntentNotRecorded".to_string(),
        message: format!("no write was sent: the intent could not be recorded first: {message}"),
        http_status: None,
        request_id: None,
        attempts: 0,
    }
}

/// Where one input of a round is.
enum Slot {
    /// Not decided yet.
    Pending,
    /// Planned, to execute.
    Planned(plan::Plan),
    /// Decided before the writes (invalid spec, failed read).
    Done(Box<Outcome>),
}

fn not_observed() -> CloudError {
    CloudError {
        kind: crate::cloud::ErrorKind::Retryable,
        action: "ListTagResources",
        code: "NotObserved".to_string(),
        message: "the round did not read this binding's resources".to_string(),
        http_status: None,
        request_id: None,
        attempts: 0,
    }
}

/// What a round read: one read of every resource of the round, `resources_per_call` at a time
/// (one call each), and for each input, whether that read covers it.
struct Observed {
    /// The tags of every resource whose call answered.
    shared: TagsByResource,
    /// Per input: `Ok(None)` when `shared` holds its resources, `Ok(Some(..))` when it read
    /// its own, `Err` when a call of one of its resources failed.
    each: Vec<Result<Option<TagsByResource>, CloudError>>,
}

impl Observed {
    /// What input `index` observed, or why it could not.
    fn of(&self, index: usize) -> Result<&TagsByResource, &CloudError> {
        match &self.each[index] {
            Ok(None) => Ok(&self.shared),
            Ok(Some(own)) => Ok(own),
            Err(error) => Err(error),
        }
    }

    /// The tags of the resources input `index` considers, as far as they were read.
    fn subset(
        &self,
        index: usize,
        input: &PassInput<'_>,
        pending: &TagsByResource,
    ) -> TagsByResource {
        match &self.each[index] {
            Ok(None) => subset(&self.shared, input, pending),
            Ok(Some(own)) => own.clone(),
            Err(_) => TagsByResource::new(),
        }
    }
}

/// The resources an input considers: declared, owned, and named by its unresolved intent.
fn considered<'a>(
    input: &'a PassInput<'_>,
    pending: &'a TagsByResource,
) -> impl Iterator<Item = &'a String> {
    input
        .resource_ids
        .iter()
        .chain(input.owned.resources().keys())
        .chain(pending.keys())
}

/// Reads every resource the round's undecided inputs consider, once. A call that fails (a
/// throttle that outlived the retries, say) fails only the inputs that consider one of its
/// resources (issue 20: one such call failed every binding of the round); an input whose call
/// failed for a reason of its own kind (a bad id among others') reads its resources alone.
async fn observe_all<C: TagApi, L: IntentLog>(
    cloud: &C,
    resource_type: &str,
    inputs: &[PassInput<'_>],
    slots: &[Slot],
    intents: &L,
) -> Observed {
    let undecided = |index: usize| matches!(slots[index], Slot::Pending);
    let ids: BTreeSet<&String> = inputs
        .iter()
        .enumerate()
        .filter(|(index, _)| undecided(*index))
        .flat_map(|(index, input)| considered(input, intents.pending(index)))
        .collect();
    let ids: Vec<String> = ids.into_iter().cloned().collect();
    // NB: the calls a read of them all would make, in the same order: no call more.
    let reads: Vec<Vec<String>> = ids
        .chunks(cloud.limits().resources_per_call.max(1))
        .map(<[String]>::to_vec)
        .collect();
    let answers = if reads.is_empty() {
        Vec::new()
    } else {
        cloud.list_tags_each(resource_type, &reads).await
    };
    let mut shared = TagsByResource::new();
    let mut errors: Vec<CloudError> = Vec::new();
    let mut failed: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (read, answer) in reads.iter().zip(answers) {
        match answer {
            Ok(tags) => shared.extend(tags),
            Err(error) => {
                failed.extend(read.iter().map(|id| (id.as_str(), errors.len())));
                errors.push(error);
            }
        }
    }
    let mut each = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.iter().enumerate() {
        let error = undecided(index)
            .then(|| {
                considered(input, intents.pending(index))
                    .find_map(|id| failed.get(id.as_str()).map(|&e| &errors[e]))
            })
            .flatten();
        each.push(match error {
            None => Ok(None),
            Some(error) if stops_every_call(error) || inputs.len() == 1 => Err(error.clone()),
            // NB: one input's bad id must not fail the others' reads: each reads its own.
            Some(_) => {
                let ids: BTreeSet<&String> = considered(input, intents.pending(index)).collect();
                let ids: Vec<String> = ids.into_iter().cloned().collect();
                cloud.list_tags(resource_type, &ids).await.map(Some)
            }
        });
    }
    Observed { shared, each }
}

/// The observed tags of the resources one input considers.
fn subset(
    observed: &TagsByResource,
    input: &PassInput<'_>,
    pending: &TagsByResource,
) -> TagsByResource {
    considered(input, pending)
        .filter_map(|id| observed.get(id).map(|tags| (id.clone(), tags.clone())))
        .collect()
}

/// Every plan's writes, handed to the client at once (it shares calls between identical
/// payloads and isolates failing resources); each input gets what its writes confirmed.
async fn execute_all<'a, C: TagApi>(
    cloud: &C,
    resource_type: &str,
    inputs: &[PassInput<'_>],
    slots: &'a [Slot],
    recorded: &[Recorded],
) -> Vec<Option<Executed>> {
    let mut executed: Vec<Option<Executed>> = (0..inputs.len()).map(|_| None).collect();
    let mut owners: Vec<usize> = Vec::new();
    let mut writes: Vec<Write<'a>> = Vec::new();
    for (index, (input, slot)) in inputs.iter().zip(slots).enumerate() {
        let Slot::Planned(plan) = slot else { continue };
        if input.mode != Mode::Apply {
            continue;
        }
        if let Recorded::Failed(error) = &recorded[index] {
            executed[index] = Some(Executed {
                stopped_by: Some(error.clone()),
                ..Executed::default()
            });
            continue;
        }
        for write in writes_of(plan) {
            owners.push(index);
            writes.push(write);
        }
    }
    if writes.is_empty() {
        return executed;
    }
    let results = cloud.write_all(resource_type, &writes).await;
    let mut by_input: Vec<Vec<(Write<'a>, Result<_, CloudError>)>> =
        (0..inputs.len()).map(|_| Vec::new()).collect();
    for ((owner, write), result) in owners.into_iter().zip(writes).zip(results) {
        by_input[owner].push((write, result));
    }
    for (index, pairs) in by_input.into_iter().enumerate() {
        if pairs.is_empty() {
            continue;
        }
        let (writes, results): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
        executed[index] = Some(Executed::from_results(&writes, results));
    }
    executed
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::net::{Ipv4Addr, SocketAddr};

    use super::*;
    use crate::api::conditions::reason;
    use crate::api::{AlibabaSettings, Cloud, TagProviderSpec};
    use crate::cloud::AccessKey;
    use crate::cloud::batcher::{Batcher, DEFAULT_WINDOW};
    use crate::emulator::{self, Account, EmulatorConfig, Inventory, InventoryResource};
    use crate::plan::{BindingId, Claim};
    use crate::reconcile::intent::NoIntents;
    use crate::reconcile::provider::{ClientOptions, client_for, http_client};
    use crate::tags::Ownership;

    const KEY_ID: &str = "LTAI5tRoundTest";
    const KEY_SECRET: &str = "round-test-secret";

    use crate::tags::tags;

    fn id(name: &str, created: i64) -> BindingId {
        BindingId {
            created: Some(created),
            namespace: "team".into(),
            name: name.into(),
        }
    }

    async fn calls(url: &str) -> BTreeMap<String, u64> {
        let stats: serde_json::Value = reqwest::get(format!("{url}/_emulator/stats"))
            .await
            .expect("stats")
            .json()
            .await
            .expect("JSON stats");
        stats["requests"]["alibaba"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(action, outcomes)| {
                let count = outcomes
                    .as_object()
                    .map(|o| o.values().filter_map(|v| v.as_u64()).sum())
                    .unwrap_or(0);
                (action.clone(), count)
            })
            .collect()
    }

    /// Three bindings of one target: two declare the same tags on different resources (one
    /// write call between them), the youngest conflicts with the oldest on one resource.
    #[tokio::test]
    async fn one_read_one_shared_write_and_each_binding_its_own_outcome() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let resources = ["g1", "g2", "g3"]
            .iter()
            .map(|id| InventoryResource {
                cloud: "alibaba".into(),
                region: "cn-hangzhou".into(),
                resource_type: "apiGroup".into(),
                id: id.to_string(),
                tags: BTreeMap::new(),
            })
            .collect();
        let config = EmulatorConfig {
            inventory: Inventory {
                accounts: vec![Account {
                    access_key_id: KEY_ID.into(),
                    access_key_secret: KEY_SECRET.into(),
                }],
                resources,
            },
            ..EmulatorConfig::default()
        };
        let cloud = emulator::start(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), config)
            .await
            .expect("emulator starts");
        let spec = TagProviderSpec {
            cloud: Cloud::Alibaba,
            region: "cn-hangzhou".into(),
            alibaba: Some(AlibabaSettings {
                product: Some("apigateway".into()),
                ..AlibabaSettings::default()
            }),
            jdcloud: None,
            endpoint: Some(cloud.url()),
            credentials: None,
            rate_limit: None,
            allowed_namespaces: None,
        };
        let options = ClientOptions {
            http: http_client().expect("HTTP client"),
            endpoint_override: None,
            retry: Default::default(),
            observer: None,
            default_rate_limit: false,
        };
        let client =
            client_for(&spec, AccessKey::new(KEY_ID, KEY_SECRET), &options).expect("a client");
        let batcher = Batcher::new(client, DEFAULT_WINDOW);

        let prod = tags(&[("env", "prod")]);
        let dev = tags(&[("env", "dev"), ("owner", "c")]);
        let (a, b, c) = (id("a", 1), id("b", 2), id("c", 3));
        let (ids_a, ids_b, ids_c) = (
            vec!["g1".to_string(), "g2".to_string()],
            vec!["g3".to_string()],
            vec!["g1".to_string()],
        );
        let set_a: std::collections::BTreeSet<String> = ids_a.iter().cloned().collect();
        let claims_c = [Claim {
            binding: &a,
            resource_ids: &set_a,
            tags: &prod,
        }];
        let owned = Ownership::default();
        let input = |binding, desired, resource_ids, claims| PassInput {
            binding,
            desired,
            resource_type: "apiGroup",
            resource_ids,
            owned: &owned,
            claims,
            mode: Mode::Apply,
        };
        let inputs = [
            input(&a, &prod, &ids_a, &[]),
            input(&b, &prod, &ids_b, &[]),
            input(&c, &dev, &ids_c, &claims_c),
        ];
        let participant = batcher.participant("apiGroup");
        let outcomes = run_round(&participant, "apiGroup", &inputs, &NoIntents).await;
        drop(participant);

        assert_eq!(outcomes.len(), 3);
        assert!(outcomes[0].is_ready(), "{:?}", outcomes[0].readiness);
        assert!(outcomes[1].is_ready(), "{:?}", outcomes[1].readiness);
        assert_eq!(outcomes[2].readiness.reason, reason::CONFLICT);
        assert!(outcomes[2].readiness.message.contains("team/a"));
        assert_eq!(
            calls(&cloud.url()).await,
            BTreeMap::from([
                ("ListTagResources".to_string(), 1),
                // {env: prod} on g1, g2, g3 in one call; {owner: c} on g1 in another.
                ("TagResources".to_string(), 2),
            ])
        );
        cloud.shutdown().await.expect("emulator stops");
    }

    /// A cloud whose reads of a call with `reads_throttled`, and writes of a call with
    /// `writes_throttled`, fail as a throttle that outlived the retries; the others answer.
    /// Two resources a call.
    struct Storm {
        limits: crate::tags::Limits,
        reads_throttled: &'static str,
        writes_throttled: &'static str,
        tags: std::sync::Mutex<TagsByResource>,
    }

    impl Storm {
        fn new(reads_throttled: &'static str, writes_throttled: &'static str) -> Self {
            Storm {
                limits: crate::tags::Limits {
                    resources_per_call: 2,
                    ..crate::tags::Limits::alibaba()
                },
                reads_throttled,
                writes_throttled,
                tags: Default::default(),
            }
        }
    }

    fn throttle(action: &'static str, ids: &[String], throttled: &str) -> Result<(), CloudError> {
        if !ids.iter().any(|id| id == throttled) {
            return Ok(());
        }
        Err(CloudError {
            kind: crate::cloud::ErrorKind::Retryable,
            action,
            code: "Throttling.User".to_string(),
            message: "throttled, 5 attempts".to_string(),
            http_status: Some(400),
            request_id: None,
            attempts: 5,
        })
    }

    impl TagApi for std::sync::Arc<Storm> {
        fn cloud_name(&self) -> &'static str {
            "storm"
        }

        fn limits(&self) -> &crate::tags::Limits {
            &self.limits
        }

        fn check_resource_type(&self, _: &str) -> Result<(), String> {
            Ok(())
        }

        async fn list_tags(&self, _: &str, ids: &[String]) -> Result<TagsByResource, CloudError> {
            assert!(ids.len() <= 2, "a read over the limit: {ids:?}");
            throttle("ListTagResources", ids, self.reads_throttled)?;
            let tags = self.tags.lock().expect("tags");
            Ok(ids
                .iter()
                .map(|id| (id.clone(), tags.get(id).cloned().unwrap_or_default()))
                .collect())
        }

        async fn select_resources(
            &self,
            _: &str,
            _: &crate::tags::Tags,
        ) -> Result<TagsByResource, CloudError> {
            Ok(TagsByResource::new())
        }

        async fn tag_resources(
            &self,
            _: &str,
            ids: &[String],
            tags: &crate::tags::Tags,
        ) -> Result<crate::cloud::WriteResult, CloudError> {
            throttle("TagResources", ids, self.writes_throttled)?;
            let mut carried = self.tags.lock().expect("tags");
            for id in ids {
                carried.entry(id.clone()).or_default().extend(tags.clone());
            }
            Ok(crate::cloud::WriteResult::default())
        }

        async fn untag_resources(
            &self,
            _: &str,
            _: &[String],
            _: &crate::tags::Tags,
        ) -> Result<crate::cloud::WriteResult, CloudError> {
            Ok(crate::cloud::WriteResult::default())
        }
    }

    /// A call that outlived its retries fails only the resources of that call: a read
    /// (issue 20: one such read failed every binding of the round, and each backed off) and
    /// a write (the binding's other write is confirmed and recorded).
    #[tokio::test]
    async fn a_throttled_call_fails_only_the_resources_of_that_call() {
        let prod = tags(&[("env", "prod")]);
        let (a, b, c, d) = (id("a", 1), id("b", 2), id("c", 3), id("d", 4));
        let owned = Ownership::default();
        let ids = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let (ids_a, ids_b, ids_c) = (ids(&["r1", "r2"]), ids(&["r3", "r4"]), ids(&["r5", "r6"]));
        let input = |binding, resource_ids| PassInput {
            binding,
            desired: &prod,
            resource_type: "apiGroup",
            resource_ids,
            owned: &owned,
            claims: &[],
            mode: Mode::Apply,
        };

        // The read of r3 and r4 (one call) fails: b alone fails.
        let batcher = Batcher::new(
            std::sync::Arc::new(Storm::new("r3", "none")),
            DEFAULT_WINDOW,
        );
        let participant = batcher.participant("apiGroup");
        let inputs = [input(&a, &ids_a), input(&b, &ids_b), input(&c, &ids_c)];
        let outcomes = run_round(&participant, "apiGroup", &inputs, &NoIntents).await;
        drop(participant);
        assert!(outcomes[0].is_ready(), "{:?}", outcomes[0].readiness);
        assert_eq!(outcomes[1].readiness.reason, reason::PROVIDER_ERROR);
        assert!(outcomes[1].retry_soon());
        assert!(outcomes[2].is_ready(), "{:?}", outcomes[2].readiness);

        // One binding, two write calls ({r1, r2}, {r5, r6}), the second throttled: the first
        // is confirmed and recorded; r5 and r6 fail and ask for a retry.
        let batcher = Batcher::new(
            std::sync::Arc::new(Storm::new("none", "r6")),
            DEFAULT_WINDOW,
        );
        let participant = batcher.participant("apiGroup");
        let ids_d = ids(&["r1", "r2", "r5", "r6"]);
        let outcomes = run_round(&participant, "apiGroup", &[input(&d, &ids_d)], &NoIntents).await;
        drop(participant);
        let outcome = &outcomes[0];
        assert_eq!(
            outcome.readiness.reason,
            reason::PARTIAL_FAILURE,
            "{:?}",
            outcome.readiness
        );
        let failed: Vec<&str> = outcome
            .failures
            .iter()
            .map(|f| f.resource_id.as_str())
            .collect();
        assert_eq!(failed, ["r5", "r6"]);
        assert!(outcome.retry_soon() && outcome.made_progress());
        assert_eq!(
            outcome.ownership.on("r1"),
            Some(&prod),
            "the confirmed write is recorded"
        );
        assert_eq!(outcome.ownership.on("r5"), None);
    }

    /// A host whose inputs carry these unresolved intents, and that records every new one.
    struct Kept(Vec<TagsByResource>);

    impl IntentLog for Kept {
        fn pending(&self, index: usize) -> &TagsByResource {
            &self.0[index]
        }

        async fn record(&self, intents: &[Intent<'_>]) -> Vec<Result<(), String>> {
            intents.iter().map(|_| Ok(())).collect()
        }
    }

    /// A pass decided before it plans (an invalid spec, a failed read) leaves the previous
    /// intent unresolved: it stays pending, to be claimed by a pass that reads the cloud.
    #[tokio::test]
    async fn a_pass_refused_before_planning_keeps_its_intent() {
        let prod = tags(&[("env", "prod")]);
        let invalid = tags(&[("acs:reserved", "x")]);
        let (a, b) = (id("a", 1), id("b", 2));
        let owned = Ownership::default();
        let (ids_a, ids_b) = (vec!["r1".to_string()], vec!["r3".to_string()]);
        let intent: TagsByResource = [("r9".to_string(), prod.clone())].into();
        let inputs = [
            PassInput {
                binding: &a,
                desired: &invalid,
                resource_type: "apiGroup",
                resource_ids: &ids_a,
                owned: &owned,
                claims: &[],
                mode: Mode::Apply,
            },
            PassInput {
                binding: &b,
                desired: &prod,
                resource_type: "apiGroup",
                resource_ids: &ids_b,
                owned: &owned,
                claims: &[],
                mode: Mode::Apply,
            },
        ];
        // NB: b's read (r3) is throttled past its retries.
        let cloud = std::sync::Arc::new(Storm::new("r3", "none"));
        let outcomes = run_round(
            &cloud,
            "apiGroup",
            &inputs,
            &Kept(vec![intent.clone(), intent.clone()]),
        )
        .await;
        assert_eq!(outcomes[0].readiness.reason, reason::INVALID_SPEC);
        assert_eq!(outcomes[0].pending, intent, "refused before the read");
        assert_eq!(outcomes[1].readiness.reason, reason::PROVIDER_ERROR);
        assert_eq!(outcomes[1].pending, intent, "the read failed");
    }

    /// What the cloud did not confirm may have landed (an answer lost after the retries): it
    /// stays pending, the confirmed part is owned.
    #[tokio::test]
    async fn an_unconfirmed_part_of_the_intent_stays_pending() {
        let prod = tags(&[("env", "prod")]);
        let d = id("d", 4);
        let owned = Ownership::default();
        let ids: Vec<String> = ["r1", "r2", "r5", "r6"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let inputs = [PassInput {
            binding: &d,
            desired: &prod,
            resource_type: "apiGroup",
            resource_ids: &ids,
            owned: &owned,
            claims: &[],
            mode: Mode::Apply,
        }];
        let cloud = std::sync::Arc::new(Storm::new("none", "r6"));
        let outcomes = run_round(
            &cloud,
            "apiGroup",
            &inputs,
            &Kept(vec![TagsByResource::new()]),
        )
        .await;
        let outcome = &outcomes[0];
        let unconfirmed: TagsByResource = [
            ("r5".to_string(), prod.clone()),
            ("r6".to_string(), prod.clone()),
        ]
        .into();
        assert_eq!(outcome.pending, unconfirmed);
        assert_eq!(outcome.ownership.on("r1"), Some(&prod));
        assert_eq!(outcome.ownership.on("r6"), None);
    }
}
