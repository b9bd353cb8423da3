use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;
use crate::api::{ClusterNameSource, FieldRef, ResourceTagBindingSpec, TagFrom, ValueSource};
use crate::tags::tags;

fn spec(literal: &[(&str, &str)], tags_from: Vec<TagFrom>) -> ResourceTagBindingSpec {
    let mut spec: ResourceTagBindingSpec = serde_json::from_value(serde_json::json!({
        "providerRef": {"name": "p"},
        "resourceType": "apiGroup",
        "resourceIds": ["g1"],
        "tags": {},
    }))
    .expect("a spec");
    spec.tags = tags(literal);
    spec.tags_from = tags_from;
    spec
}

fn from(key: &str, value_from: ValueSource, optional: bool) -> TagFrom {
    TagFrom {
        key: key.to_string(),
        value_from,
        optional,
    }
}

fn label(name: &str) -> ValueSource {
    ValueSource {
        namespace_label: Some(name.to_string()),
        ..ValueSource::default()
    }
}

fn annotation(name: &str) -> ValueSource {
    ValueSource {
        namespace_annotation: Some(name.to_string()),
        ..ValueSource::default()
    }
}

fn field(path: &str) -> ValueSource {
    ValueSource {
        field_ref: Some(FieldRef {
            field_path: path.to_string(),
        }),
        ..ValueSource::default()
    }
}

fn cluster() -> ValueSource {
    ValueSource {
        cluster_name: Some(ClusterNameSource {}),
        ..ValueSource::default()
    }
}

fn namespace(labels: &[(&str, &str)], annotations: &[(&str, &str)]) -> NamespaceMeta {
    NamespaceMeta {
        labels: tags(labels),
        annotations: tags(annotations),
    }
}

fn run(
    spec: &ResourceTagBindingSpec,
    ns: Option<&NamespaceMeta>,
    defaults: &Tags,
    cluster_name: Option<&str>,
) -> Result<Rendered, NotFound> {
    let labels = tags(&[("app", "web-api")]);
    let annotations = tags(&[("owner", "alice")]);
    render(
        &Inputs {
            spec,
            binding: BindingMeta {
                namespace: "team-web",
                name: "web-api",
                labels: Some(&labels),
                annotations: Some(&annotations),
            },
            namespace: ns,
            defaults,
            cluster_name,
        },
        "p",
    )
}

#[test]
fn every_source_renders_with_its_source() {
    let spec = spec(
        &[("env", "prod")],
        vec![
            from("team", label("team"), false),
            from(
                "cost-center",
                annotation("finance.example.com/cost-center"),
                false,
            ),
            from("k8s-binding", field("metadata.name"), false),
            from("k8s-namespace", field("metadata.namespace"), false),
            from("app", field("metadata.labels['app']"), false),
            from("owner", field("metadata.annotations['owner']"), false),
            from("cluster", cluster(), false),
        ],
    );
    let ns = namespace(
        &[("team", "web")],
        &[("finance.example.com/cost-center", "cc-42")],
    );
    let defaults = tags(&[("managed-by", "tagbinder")]);
    let rendered = run(&spec, Some(&ns), &defaults, Some("prod-eu-1")).expect("renders");
    assert_eq!(
        rendered.tags,
        tags(&[
            ("app", "web-api"),
            ("cluster", "prod-eu-1"),
            ("cost-center", "cc-42"),
            ("env", "prod"),
            ("k8s-binding", "web-api"),
            ("k8s-namespace", "team-web"),
            ("managed-by", "tagbinder"),
            ("owner", "alice"),
            ("team", "web"),
        ])
    );
    let shown: BTreeMap<&str, String> = rendered
        .sources
        .iter()
        .map(|(k, s)| (k.as_str(), s.to_string()))
        .collect();
    assert_eq!(shown["team"], "namespace team-web label team");
    assert_eq!(
        shown["cost-center"],
        "namespace team-web annotation finance.example.com/cost-center"
    );
    assert_eq!(shown["k8s-binding"], "binding field metadata.name");
    assert_eq!(shown["cluster"], "cluster name");
    assert_eq!(shown["managed-by"], "TagProvider p defaultTags");
    assert_eq!(shown["env"], "spec.tags");
}

#[test]
fn a_required_source_that_is_absent_fails_naming_the_namespace_and_label() {
    let spec = spec(&[], vec![from("team", label("team"), false)]);
    let error = run(&spec, Some(&namespace(&[], &[])), &Tags::new(), None).unwrap_err();
    assert_eq!(
        error.to_string(),
        "spec.tagsFrom[\"team\"]: namespace \"team-web\" has no label \"team\"; nothing is \
         written until the source returns or the spec changes"
    );
    let unknown = run(&spec, None, &Tags::new(), None).unwrap_err();
    assert!(
        unknown
            .to_string()
            .contains("namespace \"team-web\" is unknown")
    );
    let no_cluster = spec_with_cluster(false);
    let error = run(&no_cluster, None, &Tags::new(), None).unwrap_err();
    assert!(error.to_string().contains("--cluster-name"), "{error}");
}

fn spec_with_cluster(optional: bool) -> ResourceTagBindingSpec {
    spec(&[], vec![from("cluster", cluster(), optional)])
}

#[test]
fn an_optional_source_that_is_absent_declares_nothing_and_leaves_a_default() {
    let spec = spec(
        &[],
        vec![
            from("team", label("team"), true),
            from("owner", field("metadata.labels['absent']"), true),
        ],
    );
    let defaults = tags(&[("team", "platform")]);
    let rendered = run(&spec, None, &defaults, None).expect("renders");
    assert_eq!(rendered.tags, tags(&[("team", "platform")]));
    assert!(
        run(&spec_with_cluster(true), None, &Tags::new(), None)
            .expect("renders")
            .tags
            .is_empty()
    );
}

#[test]
fn a_rendered_value_that_breaks_the_rules_names_its_source() {
    let spec = spec(&[], vec![from("team", label("team"), false)]);
    let long = "x".repeat(129);
    let ns = namespace(&[("team", &long)], &[]);
    let defaults = tags(&[("acs:owner", "x")]);
    let rendered = run(&spec, Some(&ns), &defaults, None).expect("renders");
    let violations: Vec<String> = rendered
        .violations(&Limits::alibaba(), None)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        violations,
        vec![
            "TagProvider p defaultTags[\"acs:owner\"]: key \"acs:owner\" starts with the \
             reserved prefix \"acs:\""
                .to_string(),
            "spec.tagsFrom[\"team\"] (namespace team-web label team): value is 129 \
             characters; the limit is 128"
                .to_string(),
        ]
    );
}

fn is_label(source: Option<&Source>) -> bool {
    matches!(source, Some(Source::NamespaceLabel { .. }))
}

fn is_default(source: Option<&Source>) -> bool {
    matches!(source, Some(Source::Default { .. }))
}

fn entry_strategy() -> impl Strategy<Value = (String, u8, bool)> {
    ("[a-d]", 0u8..4, any::<bool>())
}

proptest! {
    /// Precedence: `tags` > `tagsFrom` > `defaultTags`, whatever keys they share; an absent
    /// optional source leaves the key to the default; only absent required sources fail.
    #[test]
    fn precedence_holds_for_any_overlap(
        literal in proptest::collection::btree_map("[a-d]", "[l]{1,2}", 0..4),
        defaults in proptest::collection::btree_map("[a-d]", "[d]{1,2}", 0..4),
        entries in proptest::collection::vec(entry_strategy(), 0..4),
        labels in proptest::collection::btree_map("[a-d]", "[n]{1,2}", 0..4),
    ) {
        let mut seen = std::collections::BTreeSet::new();
        let tags_from: Vec<TagFrom> = entries
            .into_iter()
            .filter(|(key, _, _)| seen.insert(key.clone()))
            .map(|(key, source_label, optional)| {
                let name = ["a", "b", "c", "d"][usize::from(source_label)];
                from(&key, label(name), optional)
            })
            .collect();
        let mut spec = spec(&[], tags_from.clone());
        spec.tags = literal.clone();
        let ns = NamespaceMeta { labels: labels.clone(), annotations: BTreeMap::new() };
        let result = run(&spec, Some(&ns), &defaults, None);
        let value_of = |entry: &TagFrom| labels.get(entry.value_from.namespace_label.as_deref().unwrap_or_default());
        let required_missing = tags_from
            .iter()
            .any(|entry| !entry.optional && value_of(entry).is_none() );
        prop_assert_eq!(result.is_err(), required_missing);
        let Ok(rendered) = result else { return Ok(()) };
        let keys: std::collections::BTreeSet<&String> =
            literal.keys().chain(defaults.keys()).chain(tags_from.iter().map(|e| &e.key)).collect();
        for key in keys {
            let entry = tags_from.iter().find(|e| &e.key == key);
            let expected = literal
                .get(key)
                .or_else(|| entry.and_then(value_of))
                .or_else(|| defaults.get(key));
            prop_assert_eq!(rendered.tags.get(key), expected, "key {}", key);
            let source = rendered.sources.get(key);
            match (literal.contains_key(key), entry.and_then(value_of).is_some(), defaults.contains_key(key)) {
                (true, _, _) => prop_assert_eq!(source, Some(&Source::Literal)),
                (false, true, _) => prop_assert!(is_label(source), "{:?}", source),
                (false, false, true) => prop_assert!(is_default(source), "{:?}", source),
                (false, false, false) => prop_assert_eq!(source, None),
            }
        }
        prop_assert_eq!(rendered.tags.len(), rendered.sources.len());
    }
}

#[test]
fn a_default_that_is_a_match_tags_key_is_refused() {
    let spec = spec(&[("env", "prod")], vec![]);
    let defaults = tags(&[("team", "platform")]);
    let rendered = run(&spec, None, &defaults, None).expect("renders");
    let match_tags = tags(&[("team", "web")]);
    let violations: Vec<String> = rendered
        .violations(&Limits::alibaba(), Some(&match_tags))
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(
        violations[0].starts_with(
            "TagProvider p defaultTags[\"team\"]: \"team\" is also a resourceSelector.matchTags key"
        ),
        "{violations:?}"
    );
}
