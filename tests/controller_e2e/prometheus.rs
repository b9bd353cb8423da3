//! A real Prometheus (Debian's `prometheus` package, on loopback) scrapes `tagbinder run`
//! and evaluates the shipped alerts (issue 25, item 4): every query of the shipped dashboard
//! returns series, and the not-Ready alert fires when a binding's provider is deleted and
//! clears when it is restored. The rules are deploy/prometheus/alerts.yaml with shorter `for:`
//! durations, evaluated every second; nothing else of them changes.

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;

use kube::Api;
use kube::api::DeleteParams;
use serde_json::Value;
use tagbinder::api::TagProvider;
use tokio::process::{Child, Command};

use crate::support::fixtures::{self, Crds, Tenant, eventually};
use crate::support::processes::{CloudEmulator, Controller, ControllerOptions};
use crate::{Env, OPERATOR};

/// The shipped rules, with every `for:` shortened to `short`.
fn rules_for_the_test(short: &str) -> String {
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/alerts.yaml"),
    )
    .expect("read deploy/prometheus/alerts.yaml");
    shipped
        .lines()
        .map(|line| match line.split_once("for: ") {
            Some((indent, _)) if indent.trim().is_empty() => format!("{indent}for: {short}"),
            _ => line.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The queries of the shipped dashboard, its `$job` variable set to `job`.
fn dashboard_queries(job: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/tagbinder.json"),
    )
    .expect("read deploy/grafana/tagbinder.json");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr").replace("$job", job);
            queries.push((panel["title"].as_str().unwrap_or("?").to_string(), expr));
        }
    }
    queries
}

/// A free loopback port (bound, then released for Prometheus to bind).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// `prometheus`, scraping `target` every second, with `rules`; killed when dropped.
struct Prometheus {
    _child: Child,
    url: String,
    http: reqwest::Client,
}

impl Prometheus {
    async fn start(dir: &Path, target: &str, rules: &str) -> Self {
        let binary = which("prometheus").unwrap_or_else(|| {
            panic!(
                "no `prometheus` in PATH: install Debian's prometheus package \
                 (`apt-get install --no-install-recommends prometheus`), as .ci/run does"
            )
        });
        std::fs::write(dir.join("rules.yaml"), rules).expect("write the rules");
        let config = format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: [rules.yaml]\n\
             scrape_configs:\n  - job_name: tagbinder\n    static_configs: [{{targets: [\"{target}\"]}}]\n"
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("write the config");
        let port = free_port();
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("a log file");
        let child = Command::new(binary)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start prometheus");
        let prometheus = Prometheus {
            _child: child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let ready = format!("{}/-/ready", prometheus.url);
        eventually("Prometheus is ready", || async {
            match prometheus.http.get(&ready).send().await {
                Ok(answer) if answer.status().is_success() => Ok(()),
                other => Err(format!(
                    "{other:?}; log: {}",
                    std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
                )),
            }
        })
        .await;
        prometheus
    }

    /// The result of an instant query (fails on an error answer).
    async fn query(&self, expr: &str) -> Vec<Value> {
        let answer: Value = self
            .http
            .post(format!("{}/api/v1/query", self.url))
            .form(&[("query", expr)])
            .send()
            .await
            .expect("query Prometheus")
            .json()
            .await
            .expect("a JSON answer");
        assert_eq!(answer["status"], "success", "{expr}: {answer}");
        answer["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until `expr` answers with series (`present`) or without.
    async fn wait(&self, expr: &str, present: bool) -> Vec<Value> {
        let what = format!("{expr} {}", if present { "has series" } else { "has none" });
        eventually(&what, || async {
            let result = self.query(expr).await;
            if result.is_empty() != present {
                Ok(result)
            } else {
                Err(format!("{result:?}"))
            }
        })
        .await
    }
}

fn which(name: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|path| path.is_file())
    })
}

pub async fn a_real_prometheus_reads_every_panel_and_fires_the_not_ready_alert(env: Arc<Env>) {
    let dir = env.scratch("prometheus");
    // NB: an emulator of its own that throttles some calls, so that the throttling panel has
    // a series (the controller retries them).
    let cloud = CloudEmulator::start_with(
        &dir,
        &[
            ("prom-g1", &[]),
            ("prom-g2", &[]),
            ("prom-g3", &[]),
            ("prom-g4", &[]),
            ("prom-g5", &[]),
            ("prom-g6", &[]),
        ],
        &["--throttle-ratio", "0.2", "--seed", "25"],
    )
    .await;
    let (server, client) = env.own_server(Crds::Both).await;
    let controller = Controller::start(
        &server,
        &dir,
        ControllerOptions {
            identity: OPERATOR,
            leader_election: false,
            namespace: None,
        },
    );
    let tenant = Tenant::new(&client, &cloud.url, "prom").await;
    tenant
        .create(&tenant.binding("web", &["prom-g1", "prom-g2"], &[("env", "prod")]))
        .await;
    // NB: a resource the cloud does not have: its binding stays PartialFailure, which is
    // drift no pass corrects (the drift panel's series).
    tenant
        .create(&tenant.binding("missing", &["prom-gone"], &[("env", "prod")]))
        .await;
    tenant.ready("web").await;
    tenant.not_ready("missing", "PartialFailure").await;
    let target = eventually("the controller's metrics address", || async {
        controller.metrics_url().ok_or("not yet".to_string())
    })
    .await;
    let prometheus = Prometheus::start(
        &dir,
        target.trim_start_matches("http://"),
        &rules_for_the_test("3s"),
    )
    .await;

    for (panel, expr) in dashboard_queries("tagbinder") {
        let series = prometheus.wait(&expr, true).await;
        assert!(!series.is_empty(), "panel {panel:?}: {expr}");
    }

    let firing = "ALERTS{alertname=\"TagbinderBindingsNotReady\", alertstate=\"firing\", \
                  reason=\"ProviderNotFound\"}";
    assert!(prometheus.query(firing).await.is_empty(), "not before");
    let providers: Api<TagProvider> = Api::all(client.clone());
    let provider = providers.get(&tenant.provider).await.expect("the provider");
    providers
        .delete(&tenant.provider, &DeleteParams::default())
        .await
        .expect("delete the provider");
    tenant.not_ready("web", "ProviderNotFound").await;
    prometheus.wait(firing, true).await;

    let mut restored = provider.clone();
    restored.metadata = kube::api::ObjectMeta {
        name: provider.metadata.name.clone(),
        ..Default::default()
    };
    restored.status = None;
    fixtures::create_provider(&client, &restored).await;
    tenant.ready("web").await;
    prometheus.wait(firing, false).await;
    if let Some(path) = std::env::var_os("TAGBINDER_DASHBOARD_DATA") {
        record_dashboard(&prometheus, &tenant, &cloud, Path::new(&path)).await;
    }
    drop(prometheus);
    drop(controller);
    drop(cloud);
}

/// With `TAGBINDER_DASHBOARD_DATA=FILE` (not in CI): a few minutes more of a fleet's life
/// (bindings added, drift made in the cloud), then every panel's query over that time, as
/// JSON in FILE, for docs/tools/plot-dashboard.py (the picture in the observability page).
async fn record_dashboard(
    prometheus: &Prometheus,
    tenant: &Tenant,
    cloud: &CloudEmulator,
    path: &Path,
) {
    let started = jiff::Timestamp::now();
    // NB: within the harness's 150 s per scenario.
    for round in 0..14u32 {
        let id = format!("prom-g{}", 3 + round % 4);
        let name = format!("team-{round}");
        tenant
            .create(&tenant.binding(
                &name,
                &[id.as_str()],
                &[(format!("k{round}").as_str(), "v")],
            ))
            .await;
        if round % 5 == 4 {
            cloud.edit("prom-g1", &[("env", "tampered")], &[]).await;
        }
        tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    }
    let end = jiff::Timestamp::now();
    let mut panels = Vec::new();
    for (title, expr) in dashboard_queries("tagbinder") {
        let answer: Value = prometheus
            .http
            .post(format!("{}/api/v1/query_range", prometheus.url))
            .form(&[
                ("query", expr.as_str()),
                ("start", &started.as_second().to_string()),
                ("end", &end.as_second().to_string()),
                ("step", "2"),
            ])
            .send()
            .await
            .expect("query_range")
            .json()
            .await
            .expect("JSON");
        panels.push(
            serde_json::json!({"title": title, "expr": expr, "result": answer["data"]["result"]}),
        );
    }
    std::fs::write(path, serde_json::to_string_pretty(&panels).expect("JSON"))
        .expect("write the data");
}
