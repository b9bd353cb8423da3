//! The batcher over an in-memory cloud that logs every call: rounds close when every
//! participant asked (or after the window), calls are shared, answers are each caller's own.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::cloud::{CloudError, ErrorKind, TagApi, Write, WriteOp};

/// A cloud of resources `r000`..: all-or-nothing writes (like Alibaba's product APIs), ids
/// listed in `missing` make a whole write call fail with `NotFound`; `credentials_broken`
/// fails every call.
#[derive(Clone)]
struct FakeCloud {
    state: Arc<Mutex<FakeState>>,
    limits: Limits,
}

#[derive(Default)]
struct FakeState {
    tags: BTreeMap<String, Tags>,
    calls: Vec<(&'static str, Vec<String>, Tags)>,
    missing: Vec<String>,
    credentials_broken: bool,
    /// How long a list call takes.
    latency: Duration,
    /// When set, a select waits for a notification before it answers.
    select_gate: Option<Arc<tokio::sync::Notify>>,
}

impl FakeCloud {
    fn new(per_call: usize) -> Self {
        FakeCloud {
            state: Arc::default(),
            limits: Limits {
                resources_per_call: per_call,
                ..Limits::alibaba()
            },
        }
    }

    fn calls(&self) -> Vec<(&'static str, Vec<String>, Tags)> {
        self.state.lock().unwrap().calls.clone()
    }

    fn count(&self, action: &str) -> usize {
        self.calls().iter().filter(|(a, ..)| *a == action).count()
    }

    fn failure(&self, action: &'static str, ids: &[String]) -> Option<CloudError> {
        let state = self.state.lock().unwrap();
        let (kind, code) = if state.credentials_broken {
            (ErrorKind::Credentials, "InvalidAccessKeyId.NotFound")
        } else if ids.iter().any(|id| state.missing.contains(id)) {
            (ErrorKind::NotFound, "NotFoundResourceId")
        } else {
            return None;
        };
        Some(CloudError {
            kind,
            action,
            code: code.to_string(),
            message: "fake".to_string(),
            http_status: Some(400),
            request_id: None,
            attempts: 1,
        })
    }

    fn log(&self, action: &'static str, ids: &[String], tags: &Tags) {
        let mut state = self.state.lock().unwrap();
        state.calls.push((action, ids.to_vec(), tags.clone()));
    }
}

impl TagApi for FakeCloud {
    fn cloud_name(&self) -> &'static str {
        "fake"
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }

    fn check_resource_type(&self, _: &str) -> Result<(), crate::cloud::AddressError> {
        Ok(())
    }

    async fn list_tags(&self, _: &str, ids: &[String]) -> Result<TagsByResource, CallError> {
        self.log("List", ids, &Tags::new());
        let latency = self.state.lock().unwrap().latency;
        tokio::time::sleep(latency).await;
        assert!(
            ids.len() <= self.limits.resources_per_call,
            "a list over the limit"
        );
        let state = self.state.lock().unwrap();
        if state.credentials_broken {
            drop(state);
            return Err(self.failure("List", ids).unwrap().into());
        }
        Ok(ids
            .iter()
            .map(|id| (id.clone(), state.tags.get(id).cloned().unwrap_or_default()))
            .collect())
    }

    async fn select_resources(
        &self,
        _: &str,
        match_tags: &Tags,
    ) -> Result<TagsByResource, CallError> {
        self.log("Select", &[], match_tags);
        let gate = self.state.lock().unwrap().select_gate.clone();
        if let Some(gate) = gate {
            gate.notified().await;
        }
        let state = self.state.lock().unwrap();
        Ok(state
            .tags
            .iter()
            .filter(|(_, carried)| {
                match_tags
                    .iter()
                    .all(|(key, value)| carried.get(key) == Some(value))
            })
            .map(|(id, carried)| (id.clone(), carried.clone()))
            .collect())
    }

    async fn tag_resources(
        &self,
        _: &str,
        ids: &[String],
        tags: &Tags,
    ) -> Result<WriteResult, CallError> {
        self.log("Tag", ids, tags);
        assert!(
            ids.len() <= self.limits.resources_per_call,
            "a write over the limit"
        );
        if let Some(error) = self.failure("Tag", ids) {
            return Err(error.into());
        }
        let mut state = self.state.lock().unwrap();
        for id in ids {
            state
                .tags
                .entry(id.clone())
                .or_default()
                .extend(tags.clone());
        }
        Ok(WriteResult::default())
    }

    async fn untag_resources(
        &self,
        _: &str,
        ids: &[String],
        tags: &Tags,
    ) -> Result<WriteResult, CallError> {
        self.log("Untag", ids, tags);
        if let Some(error) = self.failure("Untag", ids) {
            return Err(error.into());
        }
        let mut state = self.state.lock().unwrap();
        for id in ids {
            if let Some(carried) = state.tags.get_mut(id) {
                carried.retain(|key, _| !tags.contains_key(key));
            }
        }
        Ok(WriteResult::default())
    }
}

fn ids(range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("r{i:03}")).collect()
}

use crate::tags::tags;

fn tag<'a>(resource_ids: &'a [String], tags: &'a Tags) -> Write<'a> {
    Write {
        op: WriteOp::Tag,
        resource_ids,
        tags,
    }
}

#[tokio::test]
async fn participants_reads_are_one_read_of_each_distinct_resource() {
    let cloud = FakeCloud::new(10);
    let batcher = Batcher::new(cloud.clone(), Duration::from_secs(3600));
    let requests = [ids(0..8), ids(5..15), ids(14..22)];
    let participants: Vec<_> = requests
        .iter()
        .map(|_| batcher.participant("apiGroup"))
        .collect();
    let answers = futures::future::join_all(
        participants
            .iter()
            .zip(&requests)
            .map(|(participant, ids)| participant.list_tags("apiGroup", ids)),
    )
    .await;
    assert_eq!(cloud.count("List"), 3, "22 distinct ids, 10 a call");
    let listed: Vec<String> = cloud
        .calls()
        .into_iter()
        .flat_map(|(_, ids, _)| ids)
        .collect();
    assert_eq!(listed, ids(0..22), "each id read once");
    for (answer, ids) in answers.into_iter().zip(&requests) {
        let answer = answer.expect("read");
        assert_eq!(
            answer.keys().cloned().collect::<Vec<_>>(),
            *ids,
            "its own ids only"
        );
    }
}

#[tokio::test]
async fn identical_writes_share_calls_and_a_resource_is_written_once() {
    let cloud = FakeCloud::new(50);
    let batcher = Batcher::new(cloud.clone(), Duration::from_secs(3600));
    let prod = tags(&[("env", "prod")]);
    let dev = tags(&[("env", "dev")]);
    let (a, b, c) = (ids(0..30), ids(25..45), ids(45..50));
    let (pa, pb, pc) = (
        batcher.participant("apiGroup"),
        batcher.participant("apiGroup"),
        batcher.participant("apiGroup"),
    );
    let (wa, wb, wc) = ([tag(&a, &prod)], [tag(&b, &prod)], [tag(&c, &dev)]);
    let results = futures::join!(
        pa.write_all("apiGroup", &wa),
        pb.write_all("apiGroup", &wb),
        pc.write_all("apiGroup", &wc),
    );
    for result in [results.0, results.1, results.2].into_iter().flatten() {
        assert_eq!(result, Ok(WriteResult::default()));
    }
    let calls = cloud.calls();
    assert_eq!(calls.len(), 2, "one call per payload: {calls:?}");
    assert_eq!(calls[0].2, dev);
    assert_eq!(calls[1].1, ids(0..45), "25..30 written once");
}

#[tokio::test]
async fn a_bad_resource_fails_its_own_caller_only() {
    let cloud = FakeCloud::new(50);
    cloud.state.lock().unwrap().missing = vec!["r007".to_string()];
    let batcher = Batcher::new(cloud.clone(), Duration::from_secs(3600));
    let prod = tags(&[("env", "prod")]);
    let (a, b) = (ids(0..10), ids(10..20));
    let (pa, pb) = (
        batcher.participant("apiGroup"),
        batcher.participant("apiGroup"),
    );
    let (ra, rb) = futures::join!(
        pa.tag_resources("apiGroup", &a, &prod),
        pb.tag_resources("apiGroup", &b, &prod),
    );
    let ra = ra.expect("the call is answered per resource");
    assert_eq!(ra.failed.keys().collect::<Vec<_>>(), ["r007"]);
    assert_eq!(ra.failed["r007"].kind, ErrorKind::NotFound);
    assert_eq!(
        rb,
        Ok(WriteResult::default()),
        "the other binding is untouched"
    );
    let state = cloud.state.lock().unwrap();
    assert_eq!(state.tags.len(), 19, "every other resource written");
    assert!(!state.tags.contains_key("r007"));
}

#[tokio::test]
async fn an_error_that_stops_every_call_reaches_every_caller() {
    let cloud = FakeCloud::new(50);
    cloud.state.lock().unwrap().credentials_broken = true;
    let batcher = Batcher::new(cloud.clone(), Duration::from_secs(3600));
    let prod = tags(&[("env", "prod")]);
    let (a, b) = (ids(0..10), ids(10..20));
    let (pa, pb) = (
        batcher.participant("apiGroup"),
        batcher.participant("apiGroup"),
    );
    let (ra, rb) = futures::join!(
        pa.tag_resources("apiGroup", &a, &prod),
        pb.tag_resources("apiGroup", &b, &prod),
    );
    assert_eq!(ra.expect_err("stopped").kind(), ErrorKind::Credentials);
    assert_eq!(rb.expect_err("stopped").kind(), ErrorKind::Credentials);
    assert_eq!(cloud.count("Tag"), 1, "not split: splitting cannot help");
}

#[tokio::test]
async fn a_round_waits_for_every_participant_and_closes_when_one_leaves() {
    let cloud = FakeCloud::new(50);
    let batcher = Batcher::new(cloud.clone(), Duration::from_secs(3600));
    let first = batcher.participant("apiGroup");
    let second = batcher.participant("apiGroup");
    let elsewhere = batcher.participant("vm");
    let read = tokio::spawn(async move { first.list_tags("apiGroup", &ids(0..3)).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(
        cloud.count("List"),
        0,
        "the round waits for the second participant"
    );
    drop(second);
    let answer = tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("the round closed when the other participant left")
        .expect("task");
    assert_eq!(answer.expect("read").len(), 3);
    assert_eq!(cloud.count("List"), 1);
    drop(elsewhere);
}

#[tokio::test(start_paused = true)]
async fn without_participants_callers_within_the_window_share_a_round() {
    let cloud = FakeCloud::new(50);
    let batcher = Batcher::new(cloud.clone(), Duration::from_millis(20));
    let prod = tags(&[("env", "prod")]);
    let (a, b) = (ids(0..5), ids(5..9));
    let late = ids(9..10);
    let start = tokio::time::Instant::now();
    let (ra, rb) = futures::join!(batcher.tag_resources("apiGroup", &a, &prod), async {
        tokio::time::sleep(Duration::from_millis(10)).await;
        batcher.tag_resources("apiGroup", &b, &prod).await
    },);
    assert!(ra.is_ok() && rb.is_ok());
    assert_eq!(cloud.count("Tag"), 1, "both inside the window");
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(20),
        "bounded by the window"
    );
    batcher
        .tag_resources("apiGroup", &late, &prod)
        .await
        .expect("a later caller gets a round of its own");
    assert_eq!(cloud.count("Tag"), 2);
}

#[tokio::test]
async fn untags_go_before_tags_in_a_round() {
    let cloud = FakeCloud::new(50);
    let batcher = Batcher::new(cloud.clone(), Duration::from_secs(3600));
    let old = tags(&[("team", "web")]);
    let new = tags(&[("env", "prod")]);
    let a = ids(0..2);
    let participant = batcher.participant("apiGroup");
    let results = participant
        .write_all(
            "apiGroup",
            &[
                tag(&a, &new),
                Write {
                    op: WriteOp::Untag,
                    resource_ids: &a,
                    tags: &old,
                },
            ],
        )
        .await;
    assert!(results.iter().all(Result::is_ok));
    let actions: Vec<&str> = cloud.calls().iter().map(|(a, ..)| *a).collect();
    assert_eq!(actions, ["Untag", "Tag"]);
}

#[tokio::test(start_paused = true)]
async fn while_a_round_is_in_flight_the_next_one_gathers() {
    let cloud = FakeCloud::new(50);
    cloud.state.lock().unwrap().latency = Duration::from_millis(100);
    let batcher = Batcher::new(cloud.clone(), Duration::from_millis(20));
    let read = |range: std::ops::Range<usize>, after: u64| {
        let batcher = batcher.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(after)).await;
            batcher.list_tags("apiGroup", &ids(range)).await
        }
    };
    let start = tokio::time::Instant::now();
    let answers = futures::join!(
        read(0..2, 0),
        read(2..4, 30),
        read(4..6, 40),
        read(6..8, 80)
    );
    for answer in [answers.0, answers.1, answers.2, answers.3] {
        assert_eq!(answer.expect("read").len(), 2);
    }
    assert_eq!(
        cloud.count("List"),
        2,
        "the first round alone, then the three that came while it was in flight"
    );
    assert_eq!(
        start.elapsed(),
        Duration::from_millis(220),
        "round 1 at 20 ms, done at 120; round 2 right then, done at 220"
    );
}

#[tokio::test]
async fn identical_selects_in_flight_share_one_call() {
    let cloud = FakeCloud::new(50);
    let gate = Arc::new(tokio::sync::Notify::new());
    {
        let mut state = cloud.state.lock().unwrap();
        state.select_gate = Some(Arc::clone(&gate));
        state.tags.insert("r001".into(), tags(&[("team", "web")]));
        state
            .tags
            .insert("r002".into(), tags(&[("team", "web"), ("env", "prod")]));
        state.tags.insert("r003".into(), tags(&[("team", "db")]));
    }
    let batcher = Batcher::new(cloud.clone(), Duration::from_secs(3600));
    let (pa, pb) = (
        batcher.participant("apiGroup"),
        batcher.participant("apiGroup"),
    );
    let web = tags(&[("team", "web")]);
    // NB: join polls in order: both selects are in flight (each call waits at the gate)
    // before the third future opens it for every call waiting there.
    let (a, b, ()) = tokio::join!(
        pa.select_resources("apiGroup", &web),
        pb.select_resources("apiGroup", &web),
        async { gate.notify_waiters() },
    );
    assert_eq!(
        cloud.count("Select"),
        1,
        "two participants, the calls of one"
    );
    let a = a.expect("selected");
    assert_eq!(a.keys().collect::<Vec<_>>(), ["r001", "r002"]);
    assert_eq!(b.expect("selected"), a, "both get the same answer");

    // Different match tags, or a select after the answer came, are calls of their own.
    let prod = tags(&[("team", "web"), ("env", "prod")]);
    let (c, d, ()) = tokio::join!(
        pa.select_resources("apiGroup", &web),
        pb.select_resources("apiGroup", &prod),
        async { gate.notify_waiters() },
    );
    assert_eq!(cloud.count("Select"), 3);
    assert_eq!(c.expect("selected").len(), 2);
    assert_eq!(d.expect("selected").keys().collect::<Vec<_>>(), ["r002"]);
}

#[tokio::test]
async fn a_select_neither_joins_nor_waits_for_a_round() {
    let cloud = FakeCloud::new(50);
    cloud
        .state
        .lock()
        .unwrap()
        .tags
        .insert("r001".into(), tags(&[("team", "web")]));
    let batcher = Batcher::new(cloud.clone(), Duration::from_secs(3600));
    let (pa, _idle) = (
        batcher.participant("apiGroup"),
        batcher.participant("apiGroup"),
    );
    // NB: the round of apiGroup waits for the idle participant, which never asks: a select
    // that joined it would never answer. The timeout only turns such a hang into a failure.
    let selected = tokio::time::timeout(
        Duration::from_secs(30),
        pa.select_resources("apiGroup", &tags(&[("team", "web")])),
    )
    .await
    .expect("a select does not wait for a round")
    .expect("selected");
    assert_eq!(selected.keys().collect::<Vec<_>>(), ["r001"]);
    assert_eq!(cloud.count("Select"), 1);
    assert_eq!(cloud.count("List"), 0, "no read round was sent");
}
