//! Prometheus metrics (DESIGN.md section 7; issue 25, item 1) and the HTTP endpoints
//! `/metrics`, `/healthz` and `/readyz`. Every label set is bounded: results, clouds, actions,
//! outcomes (error codes), providers and reasons; never a binding or a resource, except
//! `tagbinder_drifted_resources`, which has one series per Observe binding (an audit). The
//! metrics reference (docs/src/reference/metrics.md) lists each; a test keeps it exact.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::cloud::CallObserver;

mod labels;
mod server;
mod tracked;

pub use labels::*;
pub use server::serve;
pub use tracked::Tracked;

type FloatGauge = Gauge<f64, AtomicU64>;
type Histograms = Family<ProviderLabels, Histogram, fn() -> Histogram>;

fn round_sizes() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 2.0, 15))
}

fn round_durations() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 16))
}

fn provider(name: &str) -> ProviderLabels {
    ProviderLabels {
        provider: name.to_string(),
    }
}

/// Every metric of the controller.
pub struct Metrics {
    registry: Registry,
    reconciles: Family<ResultLabels, Counter>,
    passes: Family<ProviderLabels, Counter>,
    reconcile_duration: Histogram,
    cloud_requests: Family<CloudLabels, Counter>,
    throttled: Family<ThrottleLabels, Counter>,
    rate: Family<ProviderLabels, FloatGauge>,
    drift_corrections: Counter,
    policy_evaluations: Counter,
    policy_resources: Family<PolicyResourceLabels, Gauge>,
    policy_bindings: Family<PolicyBindingLabels, Gauge>,
    bindings: Family<ReadyLabels, Gauge>,
    drifted: Family<BindingLabels, Gauge>,
    time_to_ready: Histogram,
    round_bindings: Histograms,
    round_duration: Histograms,
    drift_oldest: Family<ProviderLabels, FloatGauge>,
    drift_overdue: Family<ProviderLabels, Gauge>,
    intents_pending: Gauge,
    intent_oldest: FloatGauge,
    resident_memory: Gauge,
    tracked: Mutex<Tracked>,
    caches_synced: AtomicBool,
    /// The Lease a standby replica waits for.
    standby_for: Mutex<Option<String>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut root = Registry::default();
        let registry = root.sub_registry_with_prefix("tagbinder");
        let metrics = Metrics {
            registry: Registry::default(),
            reconciles: Family::default(),
            passes: Family::default(),
            reconcile_duration: Histogram::new(exponential_buckets(0.01, 2.0, 12)),
            cloud_requests: Family::default(),
            throttled: Family::default(),
            rate: Family::default(),
            drift_corrections: Counter::default(),
            policy_evaluations: Counter::default(),
            policy_resources: Family::default(),
            policy_bindings: Family::default(),
            bindings: Family::default(),
            drifted: Family::default(),
            time_to_ready: Histogram::new(exponential_buckets(0.5, 2.0, 15)),
            round_bindings: Family::new_with_constructor(round_sizes),
            round_duration: Family::new_with_constructor(round_durations),
            drift_oldest: Family::default(),
            drift_overdue: Family::default(),
            intents_pending: Gauge::default(),
            intent_oldest: FloatGauge::default(),
            resident_memory: Gauge::default(),
            tracked: Mutex::default(),
            caches_synced: AtomicBool::new(false),
            standby_for: Mutex::new(None),
        };
        registry.register(
            "reconcile",
            "Reconciles and passes by result",
            metrics.reconciles.clone(),
        );
        registry.register(
            "passes",
            "Passes of bindings against the cloud (observe, plan, write), by TagProvider",
            metrics.passes.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of reconcile passes",
            metrics.reconcile_duration.clone(),
        );
        registry.register(
            "cloud_requests",
            "Cloud API requests (HTTP attempts) by cloud, action, outcome and TagProvider",
            metrics.cloud_requests.clone(),
        );
        registry.register(
            "cloud_throttled",
            "Cloud API answers that throttled a request, by TagProvider and action",
            metrics.throttled.clone(),
        );
        registry.register(
            "cloud_rate_limit",
            "Calls per second a TagProvider's rate limiter allows now (lowered after throttling)",
            metrics.rate.clone(),
        );
        registry.register(
            "drift_corrections",
            "Tags rewritten after they drifted in the cloud",
            metrics.drift_corrections.clone(),
        );
        registry.register(
            "bindings",
            "Bindings by Ready status and reason",
            metrics.bindings.clone(),
        );
        registry.register(
            "policy_evaluations",
            "Bindings judged against the TagPolicies (one per binding checked before its pass)",
            metrics.policy_evaluations.clone(),
        );
        // NB: one series pair per TagPolicy, never per resource: the cardinality is that of
        // the policies a cluster has.
        registry.register(
            "policy_resources",
            "Resources a TagPolicy governs, by whether their observed tags keep its rules",
            metrics.policy_resources.clone(),
        );
        registry.register(
            "policy_bindings",
            "Bindings a TagPolicy governs, by whether their declared tags break its rules",
            metrics.policy_bindings.clone(),
        );
        // NB: one series per Observe binding only (Enforce bindings have none): the
        // cardinality is that of the audits a cluster runs, and an alert can name the binding.
        registry.register(
            "drifted_resources",
            "Resources of an Observe binding that differ from its declared tags",
            metrics.drifted.clone(),
        );
        registry.register(
            "time_to_ready_seconds",
            "Time from a binding's creation or spec change to Ready",
            metrics.time_to_ready.clone(),
        );
        registry.register(
            "round_bindings",
            "Bindings passed together in a round, by TagProvider",
            metrics.round_bindings.clone(),
        );
        registry.register(
            "round_duration_seconds",
            "Duration of a round's passes, by TagProvider",
            metrics.round_duration.clone(),
        );
        registry.register(
            "drift_oldest_seconds",
            "Age of the oldest drift no pass has corrected yet (resources that differ from an Enforce binding's tags), by TagProvider",
            metrics.drift_oldest.clone(),
        );
        registry.register(
            "drift_overdue_bindings",
            "Enforce bindings whose resources differ from their tags for longer than two of their intervals, by TagProvider",
            metrics.drift_overdue.clone(),
        );
        registry.register(
            "pending_intents",
            "Bindings whose crash-window intent (status.pendingTags) is still unresolved",
            metrics.intents_pending.clone(),
        );
        registry.register(
            "pending_intent_oldest_seconds",
            "Age of the oldest unresolved crash-window intent",
            metrics.intent_oldest.clone(),
        );
        // NB: the name every process collector uses, so that generic dashboards find it.
        root.register(
            "process_resident_memory_bytes",
            "Resident memory of the controller's process, in bytes",
            metrics.resident_memory.clone(),
        );
        Metrics {
            registry: root,
            ..metrics
        }
    }
}

impl Metrics {
    fn tracked(&self) -> std::sync::MutexGuard<'_, Tracked> {
        // NB: every critical section leaves the state consistent; a poisoned lock is safe.
        self.tracked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one reconcile or pass and its duration.
    pub fn reconciled(&self, result: &str, seconds: f64) {
        self.reconciles
            .get_or_create(&ResultLabels {
                result: result.to_string(),
            })
            .inc();
        self.reconcile_duration.observe(seconds);
    }

    /// Counts one binding's pass against the cloud through `provider`.
    pub fn passed(&self, provider_name: &str) {
        self.passes.get_or_create(&provider(provider_name)).inc();
    }

    /// A round of `provider`'s bindings: how many, and how long their passes took.
    pub fn round(&self, provider_name: &str, bindings: usize, seconds: f64) {
        let labels = provider(provider_name);
        self.round_bindings
            .get_or_create(&labels)
            .observe(bindings as f64);
        self.round_duration.get_or_create(&labels).observe(seconds);
    }

    /// Counts one binding judged against the TagPolicies.
    pub fn policy_evaluated(&self) {
        self.policy_evaluations.inc();
    }

    /// Sets a TagPolicy's gauges (`None`: the policy is gone, its series too).
    pub fn set_policy(&self, policy: &str, figures: Option<&crate::policy::ledger::Figures>) {
        for flag in ["true", "false"] {
            let resources = PolicyResourceLabels {
                policy: policy.to_string(),
                compliant: flag.to_string(),
            };
            let bindings = PolicyBindingLabels {
                policy: policy.to_string(),
                violating: flag.to_string(),
            };
            let Some(figures) = figures else {
                self.policy_resources.remove(&resources);
                self.policy_bindings.remove(&bindings);
                continue;
            };
            let (resource_count, binding_count) = if flag == "true" {
                (figures.resources.compliant, figures.bindings.violating)
            } else {
                (
                    figures.resources.noncompliant,
                    figures.bindings.evaluated - figures.bindings.violating,
                )
            };
            self.policy_resources
                .get_or_create(&resources)
                .set(i64::from(resource_count));
            self.policy_bindings
                .get_or_create(&bindings)
                .set(i64::from(binding_count));
        }
    }

    /// Counts corrected drift.
    pub fn drift_corrected(&self, keys: usize) {
        self.drift_corrections.inc_by(keys as u64);
    }

    /// Records a binding's Ready state and reason (`None`: the binding is gone).
    pub fn set_ready(&self, binding: &str, state: Option<(bool, &'static str)>) {
        let changed = self.tracked().set_ready(binding, state);
        for ((ready, reason), count) in changed {
            self.bindings
                .get_or_create(&ReadyLabels {
                    ready: ready.to_string(),
                    reason: reason.to_string(),
                })
                .set(i64::try_from(count).unwrap_or(i64::MAX));
        }
    }

    /// A binding not Ready at `generation` takes part in passes: its time to Ready runs from
    /// its creation (generation 1) or from now.
    pub fn awaiting_ready(
        &self,
        binding: &str,
        generation: Option<i64>,
        created: Option<jiff::Timestamp>,
    ) {
        self.tracked()
            .awaiting_ready(binding, generation, created, jiff::Timestamp::now());
    }

    /// The binding's pass left it Ready at `generation`.
    pub fn became_ready(&self, binding: &str, generation: Option<i64>) {
        let seconds = self
            .tracked()
            .became_ready(binding, generation, jiff::Timestamp::now());
        if let Some(seconds) = seconds {
            self.time_to_ready.observe(seconds);
        }
    }

    /// After an Enforce binding's pass: `Some(interval)` when its resources still differ from
    /// its declared tags, `None` when they carry them.
    pub fn set_drift(&self, binding: &str, provider: &str, drifted: Option<Duration>) {
        self.tracked()
            .drift(binding, provider, drifted, jiff::Timestamp::now());
    }

    /// After a pass: whether the binding keeps an unresolved crash-window intent.
    pub fn set_intent(&self, binding: &str, pending: bool) {
        self.tracked()
            .intent(binding, pending, jiff::Timestamp::now());
    }

    /// The binding stopped passing (stalled, suspended, deleted).
    pub fn stopped(&self, binding: &str) {
        self.tracked().stopped(binding);
    }

    /// Records an Observe binding's drifted resources; `None` (an Enforce binding, or one
    /// that is gone) removes its series.
    pub fn set_drifted(&self, namespace: &str, binding: &str, resources: Option<u32>) {
        let labels = BindingLabels {
            namespace: namespace.to_string(),
            binding: binding.to_string(),
        };
        match resources {
            Some(resources) => {
                self.drifted
                    .get_or_create(&labels)
                    .set(i64::from(resources));
            }
            None => {
                self.drifted.remove(&labels);
            }
        }
    }

    /// Marks the caches as synced (`/readyz` answers 200 from then on).
    pub fn set_caches_synced(&self) {
        self.caches_synced.store(true, Ordering::Relaxed);
    }

    /// Marks this replica as a standby waiting for `lease` (`None`: it holds the lease now).
    /// `/readyz` answers 503 while it waits, saying so: only the leader is ready (the chart's
    /// Recreate strategy and PodDisruptionBudget are built on that).
    pub fn set_standby(&self, lease: Option<String>) {
        *self.standby_for.lock().unwrap_or_else(|e| e.into_inner()) = lease;
    }

    /// `/readyz`: 200 once the caches synced; 503 before, naming the Lease a standby waits for.
    fn readiness_probe(&self) -> (StatusCode, String) {
        if self.caches_synced.load(Ordering::Relaxed) {
            return (StatusCode::OK, "ok".to_string());
        }
        let standby = self.standby_for.lock().unwrap_or_else(|e| e.into_inner());
        match standby.as_ref() {
            Some(lease) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("standby: waiting for the Lease {lease}"),
            ),
            None => (
                StatusCode::SERVICE_UNAVAILABLE,
                "caches not synced".to_string(),
            ),
        }
    }

    /// Sets the gauges that are ages (they grow between passes) as of now.
    fn refresh_ages(&self) {
        let now = jiff::Timestamp::now();
        let tracked = self.tracked();
        let drift = tracked.drift_ages(now);
        let (intents, oldest_intent) = tracked.intents(now);
        drop(tracked);
        for (name, ages) in drift {
            let labels = provider(&name);
            self.drift_oldest
                .get_or_create(&labels)
                .set(ages.oldest_seconds);
            self.drift_overdue
                .get_or_create(&labels)
                .set(i64::try_from(ages.overdue).unwrap_or(i64::MAX));
        }
        self.intents_pending
            .set(i64::try_from(intents).unwrap_or(i64::MAX));
        self.intent_oldest.set(oldest_intent);
        if let Some(bytes) = resident_memory() {
            self.resident_memory
                .set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        self.refresh_ages();
        let mut out = String::new();
        // NB: encoding into a String cannot fail (fmt::Write on String is infallible).
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The observer of one provider's clients: `tagbinder_cloud_requests_total`,
    /// `tagbinder_cloud_throttled_total` and `tagbinder_cloud_rate_limit` with its name.
    pub fn of_provider(self: &Arc<Self>, provider: &str) -> Arc<dyn CallObserver> {
        Arc::new(ProviderCalls {
            metrics: self.clone(),
            provider: provider.to_string(),
        })
    }
}

/// The process's resident memory (`VmRSS` of `/proc/self/status`), where the OS tells it.
fn resident_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// See [`Metrics::of_provider`].
struct ProviderCalls {
    metrics: Arc<Metrics>,
    provider: String,
}

impl CallObserver for ProviderCalls {
    fn observe(&self, cloud: &'static str, action: &'static str, outcome: &str) {
        self.metrics
            .cloud_requests
            .get_or_create(&CloudLabels {
                cloud: cloud.to_string(),
                action: action.to_string(),
                outcome: outcome.to_string(),
                provider: self.provider.clone(),
            })
            .inc();
    }

    fn throttled(&self, _cloud: &'static str, action: &'static str) {
        self.metrics
            .throttled
            .get_or_create(&ThrottleLabels {
                provider: self.provider.clone(),
                action: action.to_string(),
            })
            .inc();
    }

    fn rate(&self, per_second: f64) {
        self.metrics
            .rate
            .get_or_create(&provider(&self.provider))
            .set(per_second);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use std::net::SocketAddr;

    use super::server::{METRICS_SERVER, serve_on};
    use super::*;
    use crate::http_server::ServerLimits;

    /// The value of the series `name{labels}` (exactly those labels), if exported.
    fn value(text: &str, series: &str) -> Option<String> {
        let prefix = format!("{series} ");
        text.lines()
            .find_map(|line| line.strip_prefix(prefix.as_str()))
            .map(str::to_string)
    }

    #[test]
    fn the_bindings_gauge_follows_each_binding_through_its_changes() {
        let metrics = Metrics::default();
        let gauge = |metrics: &Metrics| {
            let text = metrics.encode();
            [("true", "Synced"), ("false", "PartialFailure")].map(|(ready, reason)| {
                // NB: a (Ready, reason) no binding had yet has no series.
                value(
                    &text,
                    &format!("tagbinder_bindings{{ready=\"{ready}\",reason=\"{reason}\"}}"),
                )
                .or(Some("0".to_string()))
            })
        };
        let synced = Some((true, "Synced"));
        let failed = Some((false, "PartialFailure"));
        type Step = (
            &'static str,
            Option<(bool, &'static str)>,
            [&'static str; 2],
        );
        let steps: [Step; 7] = [
            ("ns/a", synced, ["1", "0"]),
            ("ns/b", failed, ["1", "1"]),
            ("ns/a", synced, ["1", "1"]),
            ("ns/a", failed, ["0", "2"]),
            ("ns/b", synced, ["1", "1"]),
            ("ns/b", None, ["0", "1"]),
            ("ns/gone", None, ["0", "1"]),
        ];
        for (binding, state, [want_ready, want_not]) in steps {
            metrics.set_ready(binding, state);
            assert_eq!(
                gauge(&metrics),
                [Some(want_ready.to_string()), Some(want_not.to_string())],
                "after {binding} {state:?}"
            );
        }
    }

    #[test]
    fn exposes_the_metric_names_of_the_design() {
        let metrics = Arc::new(Metrics::default());
        metrics.reconciled("ok", 0.2);
        let calls = metrics.of_provider("aliyun");
        calls.observe("alibaba", "TagResources", "ok");
        calls.observe("alibaba", "TagResources", "Throttling.User");
        calls.throttled("alibaba", "TagResources");
        calls.rate(7.5);
        metrics.drift_corrected(2);
        metrics.set_ready("ns/a", Some((true, "Synced")));
        metrics.set_ready("ns/b", Some((false, "ProviderError")));
        metrics.round("aliyun", 3, 0.5);
        let text = metrics.encode();
        for expected in [
            "tagbinder_reconcile_total{result=\"ok\"} 1",
            "tagbinder_reconcile_duration_seconds_count 1",
            "tagbinder_cloud_requests_total{cloud=\"alibaba\",action=\"TagResources\",outcome=\"ok\",provider=\"aliyun\"} 1",
            "tagbinder_cloud_throttled_total{provider=\"aliyun\",action=\"TagResources\"} 1",
            "tagbinder_cloud_rate_limit{provider=\"aliyun\"} 7.5",
            "tagbinder_drift_corrections_total 2",
            "tagbinder_bindings{ready=\"true\",reason=\"Synced\"} 1",
            "tagbinder_bindings{ready=\"false\",reason=\"ProviderError\"} 1",
            "tagbinder_round_bindings_count{provider=\"aliyun\"} 1",
            "tagbinder_round_duration_seconds_sum{provider=\"aliyun\"} 0.5",
            "tagbinder_pending_intents 0",
        ] {
            assert!(text.contains(expected), "{expected} in\n{text}");
        }
        metrics.set_ready("ns/b", None);
        metrics.set_drifted("ns", "audit", Some(3));
        assert!(
            metrics
                .encode()
                .contains("tagbinder_drifted_resources{namespace=\"ns\",binding=\"audit\"} 3")
        );
        metrics.set_drifted("ns", "audit", None);
        assert!(!metrics.encode().contains("tagbinder_drifted_resources{"));
        assert!(
            metrics
                .encode()
                .contains("tagbinder_bindings{ready=\"false\",reason=\"ProviderError\"} 0")
        );
    }

    #[test]
    fn time_to_ready_is_observed_once_per_change() {
        let metrics = Metrics::default();
        metrics.awaiting_ready("ns/a", Some(2), None);
        metrics.became_ready("ns/a", Some(2));
        metrics.became_ready("ns/a", Some(2));
        let text = metrics.encode();
        assert_eq!(
            value(&text, "tagbinder_time_to_ready_seconds_count").as_deref(),
            Some("1"),
            "{text}"
        );
    }

    #[test]
    fn drift_and_intents_are_exported_per_provider_and_in_all() {
        let metrics = Metrics::default();
        metrics.set_drift("ns/a", "aliyun", Some(Duration::from_secs(600)));
        metrics.set_intent("ns/a", true);
        let text = metrics.encode();
        assert!(text.contains("tagbinder_drift_oldest_seconds{provider=\"aliyun\"} "));
        assert_eq!(
            value(
                &text,
                "tagbinder_drift_overdue_bindings{provider=\"aliyun\"}"
            )
            .as_deref(),
            Some("0")
        );
        assert_eq!(
            value(&text, "tagbinder_pending_intents").as_deref(),
            Some("1")
        );
        metrics.stopped("ns/a");
        let text = metrics.encode();
        assert_eq!(
            value(&text, "tagbinder_drift_oldest_seconds{provider=\"aliyun\"}").as_deref(),
            Some("0.0")
        );
        assert_eq!(
            value(&text, "tagbinder_pending_intents").as_deref(),
            Some("0")
        );
    }

    /// Every metric family the encoding declares, as users query it, with its type and its
    /// label names (from the series).
    fn exported(text: &str) -> BTreeMap<String, (String, BTreeSet<String>)> {
        let mut families = BTreeMap::new();
        for line in text.lines() {
            let Some(declared) = line.strip_prefix("# TYPE ") else {
                continue;
            };
            let (name, kind) = declared.split_once(' ').expect("# TYPE name type");
            let queried = match kind {
                "counter" => format!("{name}_total"),
                _ => name.to_string(),
            };
            families.insert(queried, (kind.to_string(), BTreeSet::new()));
        }
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, labels)) = line.split_once('{') else {
                continue;
            };
            let family = families
                .keys()
                .filter(|name| series.starts_with(name.as_str()))
                .max_by_key(|name| name.len())
                .cloned()
                .expect("a series of a declared family");
            let labels = labels.split('}').next().unwrap_or_default();
            for pair in labels.split(',').filter(|p| !p.is_empty()) {
                let name = pair.split('=').next().unwrap_or_default();
                if name != "le" {
                    families
                        .get_mut(&family)
                        .unwrap()
                        .1
                        .insert(name.to_string());
                }
            }
        }
        families
    }

    /// The rows of the metrics reference: name, type, label names.
    fn documented() -> BTreeMap<String, (String, BTreeSet<String>)> {
        let page = include_str!("../../docs/src/reference/metrics.md");
        page.lines()
            .filter(|line| line.starts_with("| `"))
            .map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                let labels = cells[3]
                    .split(',')
                    .map(|l| l.trim().trim_matches('`').to_string())
                    .filter(|l| !l.is_empty())
                    .collect();
                (
                    cells[1].trim_matches('`').to_string(),
                    (cells[2].to_string(), labels),
                )
            })
            .collect()
    }

    #[test]
    fn a_policy_has_two_series_per_gauge_and_none_once_gone() {
        use crate::api::{PolicyBindingCounts, PolicyResourceCounts};
        let metrics = Metrics::default();
        let figures = crate::policy::ledger::Figures {
            bindings: PolicyBindingCounts {
                evaluated: 120,
                violating: 2,
            },
            resources: PolicyResourceCounts {
                evaluated: 5400,
                compliant: 5391,
                noncompliant: 9,
            },
            noncompliant: vec![],
        };
        metrics.set_policy("finops", Some(&figures));
        let text = metrics.encode();
        for (series, expected) in [
            (
                r#"tagbinder_policy_resources{policy="finops",compliant="true"}"#,
                "5391",
            ),
            (
                r#"tagbinder_policy_resources{policy="finops",compliant="false"}"#,
                "9",
            ),
            (
                r#"tagbinder_policy_bindings{policy="finops",violating="true"}"#,
                "2",
            ),
            (
                r#"tagbinder_policy_bindings{policy="finops",violating="false"}"#,
                "118",
            ),
        ] {
            assert_eq!(value(&text, series).as_deref(), Some(expected), "{series}");
        }
        metrics.set_policy("finops", None);
        assert!(!metrics.encode().contains("policy=\"finops\""));
    }

    #[test]
    fn the_metrics_reference_lists_exactly_what_is_exported() {
        let metrics = Arc::new(Metrics::default());
        // NB: every family with a series, so that its labels show.
        metrics.reconciled("ok", 0.1);
        metrics.passed("p");
        let calls = metrics.of_provider("p");
        calls.observe("alibaba", "TagResources", "ok");
        calls.throttled("alibaba", "TagResources");
        calls.rate(10.0);
        metrics.drift_corrected(1);
        metrics.set_ready("ns/a", Some((true, "Synced")));
        metrics.set_drifted("ns", "audit", Some(1));
        metrics.round("p", 1, 0.1);
        metrics.set_drift("ns/b", "p", Some(Duration::from_secs(60)));
        metrics.set_policy("finops", Some(&Default::default()));
        let exported = exported(&metrics.encode());
        let documented = documented();
        assert_eq!(
            exported, documented,
            "docs/src/reference/metrics.md differs from /metrics (left: exported)"
        );
    }

    #[test]
    fn a_standby_is_not_ready_and_says_why() {
        let metrics = Metrics::default();
        assert_eq!(metrics.readiness_probe().0, StatusCode::SERVICE_UNAVAILABLE);
        metrics.set_standby(Some("tagbinder-system/tagbinder-leader".into()));
        let (code, body) = metrics.readiness_probe();
        assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body,
            "standby: waiting for the Lease tagbinder-system/tagbinder-leader"
        );
        metrics.set_standby(None);
        metrics.set_caches_synced();
        assert_eq!(
            metrics.readiness_probe(),
            (StatusCode::OK, "ok".to_string())
        );
    }

    /// A listener and a server on it with `limits`, stopped when the test ends.
    async fn server(limits: ServerLimits) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve_on(
            listener,
            Arc::new(Metrics::default()),
            limits,
            std::future::pending(),
        ));
        addr
    }

    /// A connection that sent the start of a request and then nothing.
    async fn half_sent(addr: SocketAddr) -> tokio::net::TcpStream {
        use tokio::io::AsyncWriteExt;
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            .await
            .unwrap();
        stream
    }

    /// Sends a whole `GET /healthz` on a new connection; the answer's status line.
    async fn healthz(addr: SocketAddr) -> tokio::task::JoinHandle<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        tokio::spawn(async move {
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).await.unwrap();
            String::from_utf8_lossy(&answer)
                .lines()
                .next()
                .unwrap_or("")
                .to_string()
        })
    }

    /// Fails the test instead of hanging it when `future` never completes.
    async fn eventually<T>(future: impl Future<Output = T>) -> T {
        tokio::time::timeout(Duration::from_secs(60), future)
            .await
            .expect("still waiting after a minute")
    }

    #[tokio::test]
    async fn half_sent_requests_are_cut_off_and_do_not_block_other_clients() {
        let addr = server(ServerLimits {
            header_read_timeout: Duration::from_millis(200),
            body_read_timeout: Duration::from_secs(10),
            max_connections: 4,
        })
        .await;
        let mut slow = Vec::new();
        for _ in 0..12 {
            slow.push(half_sent(addr).await);
        }
        let answer = eventually(healthz(addr).await).await.unwrap();
        assert_eq!(answer, "HTTP/1.1 200 OK");
        for mut stream in slow {
            use tokio::io::AsyncReadExt;
            // NB: the server closes the connection (EOF, or a reset when it had unread bytes).
            let mut rest = Vec::new();
            let read = eventually(stream.read_to_end(&mut rest)).await;
            assert!(
                read.is_err() || !String::from_utf8_lossy(&rest).contains("200 OK"),
                "a half-sent request was answered: {read:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_connection_beyond_the_limit_closes_the_oldest_one_not_in_a_request() {
        use tokio::io::AsyncReadExt;
        let addr = server(ServerLimits {
            header_read_timeout: Duration::from_secs(600),
            body_read_timeout: Duration::from_secs(600),
            max_connections: 2,
        })
        .await;
        let mut first = half_sent(addr).await;
        let mut second = half_sent(addr).await;
        // NB: both connections are held by half-sent requests for longer than the test: a
        // server that made the third wait for one of them would never answer it.
        let answer = eventually(healthz(addr).await).await.unwrap();
        assert_eq!(answer, "HTTP/1.1 200 OK");
        let mut rest = Vec::new();
        let read = eventually(first.read_to_end(&mut rest)).await;
        assert!(
            read.is_err() || rest.is_empty(),
            "the oldest is closed, unanswered"
        );
        let mut byte = [0u8; 1];
        let still_open =
            tokio::time::timeout(Duration::from_millis(300), second.read(&mut byte)).await;
        assert!(still_open.is_err(), "the second is kept: {still_open:?}");
    }

    #[tokio::test]
    async fn limits_that_serve_nobody_are_refused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let refused = serve_on(
            listener,
            Arc::new(Metrics::default()),
            ServerLimits {
                max_connections: 0,
                ..METRICS_SERVER
            },
            std::future::pending(),
        )
        .await;
        assert_eq!(
            refused.unwrap_err().kind(),
            std::io::ErrorKind::InvalidInput
        );
    }
}
