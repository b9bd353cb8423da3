//! The provider's tag rules on declared tags.

use super::*;

/// One validation case: a name, the declared tags, and the expected (field, rule) pairs.
type ValidationCase = (&'static str, Tags, Vec<(&'static str, String)>);

#[test]
fn validate_applies_the_provider_rules() {
    let cjk = |n: usize| "標".repeat(n);
    let cases: Vec<ValidationCase> = vec![
        (
            "accepts ordinary tags",
            tags(&[("env", "prod"), ("team", "")]),
            vec![],
        ),
        (
            "rejects a reserved key prefix",
            tags(&[("acs:env", "x")]),
            vec![(
                r#"spec.tags["acs:env"]"#,
                r#"key "acs:env" starts with the reserved prefix "acs:""#.into(),
            )],
        ),
        (
            "rejects a reserved key prefix in upper case",
            tags(&[("ACS:env", "x")]),
            vec![(
                r#"spec.tags["ACS:env"]"#,
                r#"key "ACS:env" starts with the reserved prefix "acs:""#.into(),
            )],
        ),
        (
            "rejects the aliyun prefix in mixed case",
            tags(&[("Aliyun-x", "x")]),
            vec![(
                r#"spec.tags["Aliyun-x"]"#,
                r#"key "Aliyun-x" starts with the reserved prefix "aliyun""#.into(),
            )],
        ),
        (
            "rejects a reserved value prefix",
            tags(&[("owner", "Acs:me")]),
            vec![(
                r#"spec.tags["owner"]"#,
                r#"value "Acs:me" starts with the reserved prefix "acs:""#.into(),
            )],
        ),
        (
            "rejects a url in a value",
            tags(&[("url", "see HTTP://example.com")]),
            vec![(
                r#"spec.tags["url"]"#,
                r#"value "see HTTP://example.com" contains the forbidden "http://""#.into(),
            )],
        ),
        (
            "rejects a url in a key",
            tags(&[("https://x", "v")]),
            vec![(
                r#"spec.tags["https://x"]"#,
                r#"key "https://x" contains the forbidden "https://""#.into(),
            )],
        ),
        (
            "accepts a 128-character CJK key",
            tags(&[(&cjk(128), "v")]),
            vec![],
        ),
        (
            "rejects a 129-character CJK key",
            tags(&[(&cjk(129), "v")]),
            vec![("", "key is 129 characters; the limit is 128".into())],
        ),
        (
            "rejects a long value",
            tags(&[("k", &"v".repeat(200))]),
            vec![(
                r#"spec.tags["k"]"#,
                "value is 200 characters; the limit is 128".into(),
            )],
        ),
        (
            "rejects an empty key",
            tags(&[("", "v")]),
            vec![(r#"spec.tags[""]"#, "key is empty".into())],
        ),
        (
            "rejects too many tags",
            (0..21)
                .map(|i| (format!("k{i:02}"), "v".to_string()))
                .collect(),
            vec![("spec.tags", "21 tags declared; the limit is 20".into())],
        ),
        (
            "reports every violation in key order",
            tags(&[("b", "http://x"), ("acs:a", "v")]),
            vec![
                (
                    r#"spec.tags["acs:a"]"#,
                    r#"key "acs:a" starts with the reserved prefix "acs:""#.into(),
                ),
                (
                    r#"spec.tags["b"]"#,
                    r#"value "http://x" contains the forbidden "http://""#.into(),
                ),
            ],
        ),
    ];
    for (name, desired, expected) in cases {
        let found: Vec<(String, String)> = validate(&desired, &Limits::alibaba())
            .into_iter()
            .map(|violation| (violation.field, violation.rule))
            .collect();
        let expected: Vec<(String, String)> = expected
            .into_iter()
            .map(|(field, rule)| {
                // An empty expected field stands for the single key's field (too long to spell).
                let field = match field {
                    "" => format!(
                        "spec.tags[{:?}]",
                        desired.keys().next().map_or("", String::as_str)
                    ),
                    field => field.to_string(),
                };
                (field, rule)
            })
            .collect();
        assert_eq!(found, expected, "case: {name}");
    }
}

#[test]
fn validate_uses_the_clouds_own_prefixes() {
    let found = validate(
        &tags(&[("JDC-env", "v"), ("acs:ok", "v")]),
        &Limits::jdcloud(),
    );
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0].rule,
        r#"key "JDC-env" starts with the reserved prefix "jdc-""#
    );
}

#[test]
fn the_tag_service_refuses_empty_values_that_products_accept() {
    let desired = tags(&[("flag", ""), ("env", "prod")]);
    assert!(validate(&desired, &Limits::alibaba()).is_empty());
    let found = validate(&desired, &Limits::alibaba_tag_service());
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].field, r#"spec.tags["flag"]"#);
    assert_eq!(
        found[0].rule,
        "value is 0 characters; this provider needs at least 1"
    );
}
