//! Selects (issue 13's `spec.resourceSelector`) over real HTTP on loopback: the client's list
//! by tag against the emulator on the three tag APIs (Alibaba Cloud product APIs, its Tag
//! service, JD Cloud). Every resource of the type carrying all match tags is selected, and
//! none other, through every page; the calls are counted by the emulator's
//! `/_emulator/stats`.

use std::time::Duration;

use serde_json::Value;
use tagbinder::cloud::alibaba::{
    AlibabaClient, AlibabaConfig, ProductApi, SignatureVersion, TagService, TagServiceClient,
};
use tagbinder::cloud::jdcloud::{DEFAULT_SIGNING_SERVICE, JdcloudClient, JdcloudConfig};
use tagbinder::cloud::{AccessKey, ErrorKind, RetryPolicy, TagApi};
use tagbinder::emulator::{
    Account, EmulatorConfig, Inventory, InventoryResource, RunningEmulator, start,
};
use tagbinder::tags::{Limits, Tags, TagsByResource};

const ALIBABA_KEY: &str = "LTAI5tSelectTestKey";
const JD_KEY: &str = "JDSELECTTESTKEY00000000000000001";
const SECRET: &str = "select-test-secret-0123456789";
const ALIBABA_REGION: &str = "cn-hangzhou";
const JD_REGION: &str = "cn-north-1";
/// Resources carrying `team=web, env=prod` (and one more tag) on each API: more than a page.
const MANY: usize = 120;

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn resource(
    cloud: &str,
    region: &str,
    kind: &str,
    id: &str,
    pairs: &[(&str, &str)],
) -> InventoryResource {
    InventoryResource {
        cloud: cloud.to_string(),
        region: region.to_string(),
        resource_type: kind.to_string(),
        id: id.to_string(),
        tags: tags(pairs),
    }
}

/// On each API's type (`apiGroup`, `vpc:vpc` through the Tag service, JD `vm`):
/// - `web-NNN`: `team=web, env=prod, owner=o-NNN` ([`MANY`] of them);
/// - `dev-N`: `team=web, env=dev` (the key, another value: 5);
/// - `solo`: `only=one`;
/// - `db-1`: `team=db`.
///
/// And, never selected: `team=web, env=prod` on another type of the same API and in another
/// region.
fn inventory() -> Vec<InventoryResource> {
    let sets = [
        ("alibaba", ALIBABA_REGION, "apiGroup", "app", "cn-shanghai"),
        (
            "alibaba",
            ALIBABA_REGION,
            "vpc:vpc",
            "rds:dbinstance",
            "cn-beijing",
        ),
        ("jdcloud", JD_REGION, "vm", "disk", "cn-east-2"),
    ];
    let mut resources = Vec::new();
    for (cloud, region, kind, other_kind, other_region) in sets {
        let prefix = kind.replace(':', "-");
        for n in 0..MANY {
            let owner = format!("o-{n:03}");
            resources.push(resource(
                cloud,
                region,
                kind,
                &format!("{prefix}-web-{n:03}"),
                &[("team", "web"), ("env", "prod"), ("owner", &owner)],
            ));
        }
        for n in 0..5 {
            resources.push(resource(
                cloud,
                region,
                kind,
                &format!("{prefix}-dev-{n}"),
                &[("team", "web"), ("env", "dev")],
            ));
        }
        resources.push(resource(
            cloud,
            region,
            kind,
            &format!("{prefix}-solo"),
            &[("only", "one")],
        ));
        resources.push(resource(
            cloud,
            region,
            kind,
            &format!("{prefix}-db-1"),
            &[("team", "db")],
        ));
        resources.push(resource(
            cloud,
            region,
            other_kind,
            &format!("{prefix}-other-type"),
            &[("team", "web"), ("env", "prod"), ("only", "one")],
        ));
        resources.push(resource(
            cloud,
            other_region,
            kind,
            &format!("{prefix}-other-region"),
            &[("team", "web"), ("env", "prod"), ("only", "one")],
        ));
    }
    resources
}

async fn emulator() -> RunningEmulator {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let account = |key: &str| Account {
        access_key_id: key.to_string(),
        access_key_secret: SECRET.to_string(),
    };
    let config = EmulatorConfig {
        inventory: Inventory {
            accounts: vec![account(ALIBABA_KEY), account(JD_KEY)],
            resources: inventory(),
        },
        ..EmulatorConfig::default()
    };
    assert_eq!(config.page_size, 50, "Alibaba Cloud's documented page");
    start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .expect("the emulator starts")
}

fn retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 1,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    }
}

fn alibaba_config(url: &str, version: &str, limits: Limits) -> AlibabaConfig {
    AlibabaConfig {
        endpoint: url.to_string(),
        api_version: version.to_string(),
        region: ALIBABA_REGION.to_string(),
        signature: SignatureVersion::V1,
        credentials: AccessKey::new(ALIBABA_KEY, SECRET).into(),
        retry: retry(),
        timeout: Duration::from_secs(10),
        limits,
    }
}

/// One client of each API, with its type and the name of its list action.
struct Api {
    client: Box<dyn Select>,
    resource_type: &'static str,
    prefix: &'static str,
    cloud: &'static str,
    action: &'static str,
}

/// `select_resources` of a client, behind a box (the trait's futures are not object safe).
trait Select {
    fn select<'a>(
        &'a self,
        resource_type: &'a str,
        match_tags: &'a Tags,
    ) -> futures::future::BoxFuture<'a, Result<TagsByResource, tagbinder::cloud::CallError>>;
}

impl<C: TagApi> Select for C {
    fn select<'a>(
        &'a self,
        resource_type: &'a str,
        match_tags: &'a Tags,
    ) -> futures::future::BoxFuture<'a, Result<TagsByResource, tagbinder::cloud::CallError>> {
        Box::pin(self.select_resources(resource_type, match_tags))
    }
}

fn apis(url: &str) -> [Api; 3] {
    let http = reqwest::Client::new();
    let product = AlibabaClient::new(
        ProductApi {
            config: alibaba_config(url, "2016-07-14", Limits::alibaba()),
            resource_types: None,
        },
        http.clone(),
    );
    let tag_service = TagServiceClient::new(
        TagService {
            config: alibaba_config(url, "2018-08-28", Limits::alibaba_tag_service()),
            account_id: "*".to_string(),
        },
        http.clone(),
    );
    let jdcloud = JdcloudClient::new(
        JdcloudConfig {
            endpoint: url.to_string(),
            region: JD_REGION.to_string(),
            signing_service: DEFAULT_SIGNING_SERVICE.to_string(),
            service_codes: JdcloudConfig::service_codes_with(&[]),
            credentials: AccessKey::new(JD_KEY, SECRET).into(),
            retry: retry(),
            timeout: Duration::from_secs(10),
            limits: Limits::jdcloud(),
        },
        http,
    );
    [
        Api {
            client: Box::new(product),
            resource_type: "apiGroup",
            prefix: "apiGroup",
            cloud: "alibaba",
            action: "ListTagResources",
        },
        Api {
            client: Box::new(tag_service),
            resource_type: "vpc:vpc",
            prefix: "vpc-vpc",
            cloud: "alibaba",
            action: "ListTagResources",
        },
        Api {
            client: Box::new(jdcloud),
            resource_type: "vm",
            prefix: "vm",
            cloud: "jdcloud",
            action: "describeResources",
        },
    ]
}

async fn stats(emulator: &RunningEmulator) -> Value {
    reqwest::Client::new()
        .get(format!("{}/_emulator/stats", emulator.url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn reset_stats(emulator: &RunningEmulator) {
    let answer = reqwest::Client::new()
        .post(format!("{}/_emulator/stats/reset", emulator.url()))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success());
}

/// Selects through `api`, and the list calls the emulator counted for it (all ok).
async fn select(
    emulator: &RunningEmulator,
    api: &Api,
    match_tags: &[(&str, &str)],
) -> (TagsByResource, u64) {
    reset_stats(emulator).await;
    let selected = api
        .client
        .select(api.resource_type, &tags(match_tags))
        .await
        .unwrap_or_else(|error| panic!("{} select: {error}", api.prefix));
    let counts = stats(emulator).await;
    let calls = counts["total"].as_u64().unwrap();
    assert_eq!(
        counts["requests"][api.cloud][api.action]["ok"].as_u64(),
        Some(calls),
        "{}: every call was a list, and ok: {counts}",
        api.prefix
    );
    (selected, calls)
}

fn ids(selected: &TagsByResource) -> Vec<&str> {
    selected.keys().map(String::as_str).collect()
}

#[tokio::test]
async fn a_selector_matching_nothing_selects_nothing() {
    let emulator = emulator().await;
    for api in apis(&emulator.url()) {
        let (selected, calls) = select(&emulator, &api, &[("team", "nobody")]).await;
        assert!(selected.is_empty(), "{}: {selected:?}", api.prefix);
        assert_eq!(calls, 1, "{}", api.prefix);
    }
}

#[tokio::test]
async fn a_selector_matching_one_resource_selects_it_alone_with_its_tags() {
    let emulator = emulator().await;
    for api in apis(&emulator.url()) {
        let (selected, calls) = select(&emulator, &api, &[("only", "one")]).await;
        let solo = format!("{}-solo", api.prefix);
        assert_eq!(
            ids(&selected),
            [solo.as_str()],
            "not of another type or region"
        );
        assert_eq!(selected[&solo], tags(&[("only", "one")]));
        assert_eq!(calls, 1, "{}", api.prefix);
    }
}

#[tokio::test]
async fn many_matches_are_selected_through_every_page_and_no_other_value() {
    let emulator = emulator().await;
    // Calls measured: the product API's pages hold 50 (resource, tag) entries (120 resources
    // x 3 tags = 360 entries: 8 pages). The Tag service's hold 50 resources, of every product
    // of the region that carries the filter (its ListTagResources takes no type: 120 API
    // groups, 120 VPCs and 2 others, 242 resources: 5 pages), and the client keeps the VPCs.
    // JD Cloud answers every match at once (spec section 3).
    let expected_calls = [8, 5, 1];
    for (api, expected) in apis(&emulator.url()).iter().zip(expected_calls) {
        let (selected, calls) = select(&emulator, api, &[("env", "prod")]).await;
        let expected_ids: Vec<String> = (0..MANY)
            .map(|n| format!("{}-web-{n:03}", api.prefix))
            .collect();
        assert_eq!(
            ids(&selected),
            expected_ids.iter().map(String::as_str).collect::<Vec<_>>(),
            "{}: env=dev and other types or regions are not selected",
            api.prefix
        );
        let last = &selected[&expected_ids[MANY - 1]];
        assert_eq!(
            *last,
            tags(&[("team", "web"), ("env", "prod"), ("owner", "o-119")]),
            "{}: every listed tag, across pages",
            api.prefix
        );
        assert_eq!(calls, expected, "{}: calls", api.prefix);
    }
}

#[tokio::test]
async fn two_match_tags_select_the_intersection() {
    let emulator = emulator().await;
    for api in apis(&emulator.url()) {
        let (web, _) = select(&emulator, &api, &[("team", "web")]).await;
        assert_eq!(web.len(), MANY + 5, "{}: prod and dev", api.prefix);
        let (dev, calls) = select(&emulator, &api, &[("team", "web"), ("env", "dev")]).await;
        let expected: Vec<String> = (0..5).map(|n| format!("{}-dev-{n}", api.prefix)).collect();
        assert_eq!(
            ids(&dev),
            expected.iter().map(String::as_str).collect::<Vec<_>>()
        );
        assert_eq!(calls, 1, "{}", api.prefix);
        let (none, _) = select(&emulator, &api, &[("team", "db"), ("env", "dev")]).await;
        assert!(none.is_empty(), "{}: {none:?}", api.prefix);
    }
}

#[tokio::test]
async fn empty_and_oversized_selectors_are_refused_without_a_call() {
    let emulator = emulator().await;
    for api in apis(&emulator.url()) {
        reset_stats(&emulator).await;
        let error = api
            .client
            .select(api.resource_type, &Tags::new())
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidInput, "{}", api.prefix);
        assert_eq!(error.code(), "EmptyMatchTags");
        let too_many: Tags = (0..=20)
            .map(|n| (format!("k{n}"), "v".to_string()))
            .collect();
        let error = api
            .client
            .select(api.resource_type, &too_many)
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::InvalidInput, "{}", api.prefix);
        assert_eq!(error.code(), "TooManyMatchTags");
        assert!(error.message().starts_with("21 matchTags"), "{error}");
        assert_eq!(
            stats(&emulator).await["total"],
            0,
            "{}: no call",
            api.prefix
        );
    }
}
