//! The CRD schema's rules for the values of a [`TagProviderSpec`] that end up in a URL
//! (`spec.region`, `spec.endpoint`), restated in Rust for the hosts that have no apiserver in
//! front of them (the CLI). Keep in step with [`REGION_PATTERN`] and [`ENDPOINT_PATTERN`], the
//! attributes' patterns; the tests run both on the same samples.
//!
//! NB: the region becomes a path segment of JD Cloud's URL (`/v1/regions/{region}/...`) and
//! a label of Alibaba Cloud's preset host names (`apigateway.{region}.aliyuncs.com`), so
//! anything but lowercase letters, digits and inner hyphens could change where a signed request
//! goes (`cn-north-1/../../evil`, `x@127.0.0.1:18797/#`). The endpoint is a scheme, a host, a
//! port and a path: no user info, query or fragment, which would do the same.

use super::TagProviderSpec;

/// The CRD's pattern of `spec.region` (1 to 64 characters).
pub const REGION_PATTERN: &str = r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$";
/// Longest region the CRD accepts.
pub const MAX_REGION_CHARS: usize = 64;
/// The CRD's pattern of `spec.endpoint`: `http(s)://host[:port][/path]`, the host a DNS name,
/// an IPv4 address or a bracketed IPv6 address.
pub const ENDPOINT_PATTERN: &str = r"^https?://([A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$";
/// Longest endpoint the CRD accepts.
pub const MAX_ENDPOINT_CHARS: usize = 2048;

impl TagProviderSpec {
    /// What the apiserver would refuse at `kubectl apply` time in the values placed in URLs,
    /// as `field: rule` lines.
    pub fn schema_violations(&self) -> Vec<String> {
        let mut violations = Vec::new();
        if let Some(rule) = region_violation(&self.region) {
            violations.push(format!("spec.region: {rule}"));
        }
        if let Some(rule) = self.endpoint.as_deref().and_then(endpoint_violation) {
            violations.push(format!("spec.endpoint: {rule}"));
        }
        violations
    }
}

/// Why `region` is refused, if it is.
fn region_violation(region: &str) -> Option<String> {
    if region.is_empty() {
        return Some("must not be empty (e.g. cn-hangzhou, cn-north-1)".to_string());
    }
    if region.chars().count() > MAX_REGION_CHARS {
        return Some(format!(
            "longer than {MAX_REGION_CHARS} characters ({region:?})"
        ));
    }
    let allowed = region
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !allowed || region.starts_with('-') || region.ends_with('-') {
        return Some(format!(
            "{region:?} is not a region name: lowercase letters, digits and inner hyphens only \
             (e.g. cn-hangzhou, cn-north-1)"
        ));
    }
    None
}

/// Why `endpoint` is refused, if it is.
fn endpoint_violation(endpoint: &str) -> Option<String> {
    let refuse = |why: &str| {
        Some(format!(
            "{endpoint:?} {why}; write http(s)://host[:port][/path] (no user, query or fragment)"
        ))
    };
    if endpoint.chars().count() > MAX_ENDPOINT_CHARS {
        return Some(format!("longer than {MAX_ENDPOINT_CHARS} characters"));
    }
    let Some(rest) = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
    else {
        return refuse("is not an http or https URL");
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = match authority.strip_prefix('[') {
        Some(bracketed) => match bracketed.split_once(']') {
            Some((address, after)) => {
                let valid = !address.is_empty()
                    && address
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
                if !valid {
                    return refuse("has an invalid IPv6 address");
                }
                (None, after)
            }
            None => return refuse("has an unclosed [ in its host"),
        },
        None => {
            let end = authority.find(':').unwrap_or(authority.len());
            (Some(&authority[..end]), &authority[end..])
        }
    };
    if let Some(host) = host {
        let valid = !host.is_empty()
            && host.split('.').all(|label| {
                !label.is_empty()
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
        if !valid {
            return refuse("has an invalid host");
        }
    }
    if !port.is_empty() {
        let digits = port.strip_prefix(':').unwrap_or("x");
        if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return refuse("has an invalid port");
        }
    }
    let path_valid = path
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._~/-".contains(&b));
    if !path_valid {
        return refuse("has characters outside a plain path");
    }
    None
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;
    use serde_json::{Value, json};

    use super::*;
    use crate::api::{Cloud, TagProvider};

    fn spec(region: &str, endpoint: Option<&str>) -> TagProviderSpec {
        serde_json::from_value(json!({
            "cloud": "jdcloud",
            "region": region,
            "endpoint": endpoint,
        }))
        .unwrap()
    }

    /// The CRD's schema of one `spec` field.
    fn field_schema(field: &str) -> Value {
        let crd = serde_json::to_value(TagProvider::crd()).unwrap();
        crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
            [field]
            .clone()
    }

    fn crd_accepts(field: &str, value: &str) -> bool {
        let mut schema = field_schema(field);
        // NB: the endpoint is optional (nullable); its value is a string here.
        schema.as_object_mut().unwrap().remove("nullable");
        jsonschema::validator_for(&schema)
            .unwrap()
            .is_valid(&json!(value))
    }

    const REGIONS: &[(&str, bool)] = &[
        ("cn-hangzhou", true),
        ("cn-north-1", true),
        ("ap-southeast-1", true),
        ("cn-shanghai-finance-1", true),
        ("x", true),
        ("", false),
        ("cn-north-1/../../../evil/path", false),
        ("x@127.0.0.1:18797/#", false),
        ("cn-north-1?", false),
        ("CN-NORTH-1", false),
        ("-cn", false),
        ("cn-", false),
        ("cn north", false),
        ("cn%2Fnorth", false),
        ("cn.hangzhou", false),
    ];

    const ENDPOINTS: &[(&str, bool)] = &[
        ("https://resource-tag.jdcloud-api.com", true),
        ("http://127.0.0.1:8780", true),
        ("http://127.0.0.1:8780/", true),
        ("https://tag.example.internal/prefix/v1", true),
        ("http://[::1]:8780", true),
        ("http://localhost", true),
        ("http://x@127.0.0.1:18797", false),
        ("http://127.0.0.1:8780/?a=b", false),
        ("http://127.0.0.1:8780/#frag", false),
        ("http://127.0.0.1:8780#", false),
        ("ftp://127.0.0.1", false),
        ("http://", false),
        ("http://host:", false),
        ("http://host:123456", false),
        ("http://-host", false),
        ("http://[::1", false),
        ("http://host/a b", false),
        ("http://host/%2e%2e", false),
        ("127.0.0.1:8780", false),
    ];

    #[test]
    fn regions_are_names_and_nothing_that_changes_a_url() {
        for (region, valid) in REGIONS {
            assert_eq!(region_violation(region).is_none(), *valid, "{region:?}");
            assert_eq!(crd_accepts("region", region), *valid, "CRD: {region:?}");
        }
        let long = "a".repeat(MAX_REGION_CHARS + 1);
        assert!(region_violation(&long).is_some());
        assert!(!crd_accepts("region", &long));
    }

    #[test]
    fn endpoints_are_a_scheme_a_host_a_port_and_a_path() {
        for (endpoint, valid) in ENDPOINTS {
            assert_eq!(
                endpoint_violation(endpoint).is_none(),
                *valid,
                "{endpoint:?}"
            );
            assert_eq!(
                crd_accepts("endpoint", endpoint),
                *valid,
                "CRD: {endpoint:?}"
            );
        }
    }

    #[test]
    fn the_patterns_are_the_crds() {
        assert_eq!(field_schema("region")["pattern"], REGION_PATTERN);
        assert_eq!(field_schema("region")["maxLength"], MAX_REGION_CHARS);
        assert_eq!(field_schema("endpoint")["pattern"], ENDPOINT_PATTERN);
        assert_eq!(field_schema("endpoint")["maxLength"], MAX_ENDPOINT_CHARS);
    }

    #[test]
    fn violations_name_the_field_and_the_value() {
        let bad = spec("cn-north-1/../evil", Some("http://x@127.0.0.1:1/#"));
        assert_eq!(bad.cloud, Cloud::Jdcloud);
        let violations = bad.schema_violations();
        assert_eq!(violations.len(), 2, "{violations:?}");
        assert!(violations[0].starts_with("spec.region: \"cn-north-1/../evil\" is not a region"));
        assert!(violations[1].starts_with("spec.endpoint: \"http://x@127.0.0.1:1/#\""));
        assert_eq!(
            spec("", None).schema_violations(),
            ["spec.region: must not be empty (e.g. cn-hangzhou, cn-north-1)"]
        );
        assert!(
            spec("cn-north-1", Some("http://127.0.0.1:8780"))
                .schema_violations()
                .is_empty()
        );
    }
}
