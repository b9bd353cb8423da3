//! The pure core of coalescing: which calls carry a round of requests, shaped by
//! [`crate::calls`]. No I/O.

use std::collections::{BTreeMap, BTreeSet};

use crate::calls;
use crate::cloud::WriteOp;
use crate::tags::{Limits, Tags};

/// The list calls that answer every request of a round: the distinct ids, sorted, a read's
/// worth at a time ([`calls::read_chunks`]: so `ceil(distinct / per_read)` calls, and no id
/// read twice).
pub fn list_calls<'a>(
    requests: impl IntoIterator<Item = &'a [String]>,
    limits: &Limits,
) -> Vec<Vec<String>> {
    let distinct: BTreeSet<&String> = requests.into_iter().flatten().collect();
    let distinct: Vec<String> = distinct.into_iter().cloned().collect();
    calls::read_chunks(&distinct, limits)
        .map(<[String]>::to_vec)
        .collect()
}

/// One write call of a round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteCall {
    /// Tag or untag.
    pub op: WriteOp,
    /// The payload every resource of the call gets.
    pub tags: Tags,
    /// At most `resources_per_call` ids, sorted.
    pub resource_ids: Vec<String>,
}

/// The write calls that carry every request of a round: requests with the same operation and
/// the same tags (an untag's keys with their values) share calls, a write's worth of
/// resources at a time ([`calls::write_chunks`]); an id asked for twice with the same payload
/// is written once. Ordered by operation, then tags, then ids.
pub fn write_calls<'a>(
    requests: impl IntoIterator<Item = (WriteOp, &'a Tags, &'a [String])>,
    limits: &Limits,
) -> Vec<WriteCall> {
    let mut groups: BTreeMap<(WriteOp, &Tags), BTreeSet<&String>> = BTreeMap::new();
    for (op, tags, ids) in requests {
        if ids.is_empty() || tags.is_empty() {
            continue;
        }
        groups.entry((op, tags)).or_default().extend(ids);
    }
    let mut calls = Vec::new();
    for ((op, tags), ids) in groups {
        let ids: Vec<&String> = ids.into_iter().collect();
        for chunk in calls::write_chunks(&ids, limits) {
            calls.push(WriteCall {
                op,
                tags: tags.clone(),
                resource_ids: chunk.iter().map(|id| (*id).clone()).collect(),
            });
        }
    }
    calls
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use std::collections::HashMap;

    use super::*;
    use crate::cloud::isolate::{IdOutcome, route_write};
    use crate::cloud::{CloudError, ErrorKind, ResourceError};

    fn ids(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    use crate::tags::tags;

    /// Limits of `n` resources a call, read or write.
    fn per_call(n: usize) -> Limits {
        Limits {
            resources_per_call: n,
            resources_per_read: None,
            ..Limits::alibaba()
        }
    }

    fn error(kind: ErrorKind, code: &str) -> CloudError {
        CloudError {
            kind,
            action: "TagResources",
            code: code.to_string(),
            message: "test".to_string(),
            http_status: Some(400),
            request_id: None,
            attempts: 1,
        }
    }

    #[test]
    fn list_calls_read_each_distinct_id_once_in_chunks() {
        let a = ids(&["r3", "r1", "r2"]);
        let b = ids(&["r2", "r4", "r5"]);
        let calls = list_calls([a.as_slice(), b.as_slice()], &per_call(2));
        assert_eq!(
            calls,
            vec![ids(&["r1", "r2"]), ids(&["r3", "r4"]), ids(&["r5"])]
        );
        assert!(
            list_calls([a.as_slice()], &per_call(0))
                .iter()
                .all(|c| c.len() == 1)
        );
    }

    #[test]
    fn writes_with_the_same_payload_share_calls_and_others_do_not() {
        let prod = tags(&[("env", "prod")]);
        let dev = tags(&[("env", "dev")]);
        let a = ids(&["a1", "a2", "shared"]);
        let b = ids(&["b1", "shared"]);
        let c = ids(&["c1"]);
        let calls = write_calls(
            [
                (WriteOp::Tag, &prod, a.as_slice()),
                (WriteOp::Tag, &prod, b.as_slice()),
                (WriteOp::Tag, &dev, c.as_slice()),
                (WriteOp::Untag, &prod, c.as_slice()),
            ],
            &per_call(3),
        );
        assert_eq!(
            calls,
            vec![
                WriteCall {
                    op: WriteOp::Tag,
                    tags: dev.clone(),
                    resource_ids: ids(&["c1"])
                },
                WriteCall {
                    op: WriteOp::Tag,
                    tags: prod.clone(),
                    resource_ids: ids(&["a1", "a2", "b1"])
                },
                WriteCall {
                    op: WriteOp::Tag,
                    tags: prod.clone(),
                    resource_ids: ids(&["shared"])
                },
                WriteCall {
                    op: WriteOp::Untag,
                    tags: prod,
                    resource_ids: ids(&["c1"])
                },
            ]
        );
    }

    #[test]
    fn empty_writes_make_no_call() {
        let none = Tags::new();
        let prod = tags(&[("env", "prod")]);
        let a = ids(&["a1"]);
        let calls = write_calls(
            [
                (WriteOp::Tag, &none, a.as_slice()),
                (WriteOp::Tag, &prod, &[][..]),
            ],
            &per_call(50),
        );
        assert!(calls.is_empty());
    }

    #[test]
    fn a_request_gets_its_own_failures_only() {
        let written = IdOutcome::Written;
        let refused = IdOutcome::Failed(ResourceError {
            kind: ErrorKind::NotFound,
            message: "no such group".into(),
        });
        let outcomes: HashMap<&str, &IdOutcome> =
            HashMap::from([("a1", &written), ("a2", &refused), ("b1", &refused)]);
        let result = route_write(&ids(&["a1", "a2"]), &outcomes).expect("accepted");
        assert_eq!(result.failed.keys().collect::<Vec<_>>(), ["a2"]);
        assert_eq!(result.failed["a2"].kind, ErrorKind::NotFound);
    }

    #[test]
    fn a_request_whose_every_resource_stopped_gets_the_error() {
        let stopped = IdOutcome::Stopped(error(ErrorKind::Retryable, "Throttling.User").into());
        let outcomes: HashMap<&str, &IdOutcome> =
            HashMap::from([("a1", &stopped), ("a2", &stopped)]);
        let error = route_write(&ids(&["a1", "a2"]), &outcomes).expect_err("stopped");
        assert_eq!(error.code(), "Throttling.User");
    }

    #[test]
    fn a_partly_stopped_request_keeps_what_was_confirmed() {
        let written = IdOutcome::Written;
        let stopped = IdOutcome::Stopped(error(ErrorKind::Retryable, "ServiceUnavailable").into());
        let outcomes: HashMap<&str, &IdOutcome> =
            HashMap::from([("a1", &written), ("a2", &stopped)]);
        let result = route_write(&ids(&["a1", "a2"]), &outcomes).expect("partly written");
        assert_eq!(result.failed.len(), 1);
        assert_eq!(result.failed["a2"].kind, ErrorKind::Retryable);
        assert!(result.failed["a2"].message.contains("ServiceUnavailable"));
    }

    #[test]
    fn a_missing_outcome_is_never_a_confirmed_write() {
        let outcomes: HashMap<&str, &IdOutcome> = HashMap::new();
        let result = route_write(&ids(&["a1"]), &outcomes).expect("reported per resource");
        assert!(result.failed.contains_key("a1"));
    }

    fn request_strategy() -> impl Strategy<Value = Vec<(bool, u8, Vec<u8>)>> {
        prop::collection::vec(
            (any::<bool>(), 0u8..3, prop::collection::vec(0u8..40, 0..30)),
            0..12,
        )
    }

    proptest! {
        #[test]
        fn every_requested_write_is_in_exactly_one_call_of_its_payload(
            raw in request_strategy(),
            per_call in 1usize..8,
        ) {
            let payloads: Vec<Tags> = (0..3)
                .map(|i| tags(&[("k", &format!("v{i}"))]))
                .collect();
            let requests: Vec<(WriteOp, usize, Vec<String>)> = raw
                .iter()
                .map(|(untag, payload, ids)| {
                    let op = if *untag { WriteOp::Untag } else { WriteOp::Tag };
                    let ids = ids.iter().map(|i| format!("r{i:02}")).collect();
                    (op, usize::from(*payload), ids)
                })
                .collect();
            let calls = write_calls(
                requests
                    .iter()
                    .map(|(op, payload, ids)| (*op, &payloads[*payload], ids.as_slice())),
                &self::per_call(per_call),
            );
            let mut expected: BTreeMap<(WriteOp, &Tags), BTreeSet<&String>> = BTreeMap::new();
            for (op, payload, ids) in &requests {
                if !ids.is_empty() {
                    expected.entry((*op, &payloads[*payload])).or_default().extend(ids);
                }
            }
            let mut seen: BTreeMap<(WriteOp, &Tags), Vec<&String>> = BTreeMap::new();
            for call in &calls {
                prop_assert!(!call.resource_ids.is_empty());
                prop_assert!(call.resource_ids.len() <= per_call);
                seen.entry((call.op, &call.tags)).or_default().extend(&call.resource_ids);
            }
            let expected_calls: usize = expected
                .values()
                .map(|ids| ids.len().div_ceil(per_call))
                .sum();
            prop_assert_eq!(calls.len(), expected_calls);
            for (key, ids) in &expected {
                let got = seen.get(key).cloned().unwrap_or_default();
                prop_assert_eq!(got.len(), ids.len(), "an id written twice or missed");
                prop_assert_eq!(got.into_iter().collect::<BTreeSet<_>>(), ids.clone());
            }
        }

        #[test]
        fn list_calls_cover_every_id_once_in_the_fewest_calls(
            raw in prop::collection::vec(prop::collection::vec(0u16..500, 0..80), 0..10),
            per_call in 1usize..60,
        ) {
            let requests: Vec<Vec<String>> = raw
                .iter()
                .map(|ids| ids.iter().map(|i| format!("r{i:03}")).collect())
                .collect();
            let calls = list_calls(requests.iter().map(Vec::as_slice), &self::per_call(per_call));
            let distinct: BTreeSet<&String> = requests.iter().flatten().collect();
            prop_assert_eq!(calls.len(), distinct.len().div_ceil(per_call));
            let listed: Vec<&String> = calls.iter().flatten().collect();
            prop_assert_eq!(listed.len(), distinct.len());
            prop_assert_eq!(listed.into_iter().collect::<BTreeSet<_>>(), distinct);
            prop_assert!(calls.iter().all(|c| !c.is_empty() && c.len() <= per_call));
        }
    }
}
