//! One signed JD Cloud request (spec: jdcloud-resource-tag.md sections 1 and 2): `POST /v1/regions/{regionId}/tags:<operation>` with a JSON body, signed with
//! JDCLOUD2-HMAC-SHA256 over `content-type;host;x-jdcloud-date;x-jdcloud-nonce`, with a
//! fresh date, nonce and signature on every attempt (section 2, "Clock and replay").

use crate::cloud::AccessKey;
use crate::cloud::sign::jdcloud::{
    Algorithm, CanonicalInput, authorization, canonical_request, credential_scope, sha256_hex,
    signature, signed_headers, signing_key, string_to_sign,
};
use crate::cloud::transport::{EndpointError, endpoint_url};

/// The HTTP method of every tag operation (section 1).
const METHOD: &str = "POST";
const JSON_CONTENT_TYPE: &str = "application/json";
const DATE_HEADER: &str = "x-jdcloud-date";
const NONCE_HEADER: &str = "x-jdcloud-nonce";
const TOKEN_HEADER: &str = "x-jdcloud-security-token";
/// tagbinder signs with JDCLOUD2 (section 2, "JDCLOUD3-HMAC-SHA256": the service accepts both).
const ALGORITHM: Algorithm = Algorithm::Jdcloud2;

/// What makes one attempt unique: its date and its nonce.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Freshness {
    /// `x-jdcloud-date`: now, UTC, `yyyyMMddTHHmmssZ`.
    pub date: String,
    /// `x-jdcloud-nonce`: a UUID v4, never reused, not even by a retry.
    pub nonce: String,
}

impl Freshness {
    /// A new nonce and the current time.
    pub(super) fn now() -> Self {
        Freshness {
            date: jiff::Timestamp::now()
                .strftime("%Y%m%dT%H%M%SZ")
                .to_string(),
            nonce: uuid::Uuid::new_v4().to_string(),
        }
    }
}

/// Where one request goes: the URL, and the `host` value it is signed with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Target {
    /// Full URL, e.g. `https://resource-tag.jdcloud-api.com/v1/regions/cn-north-1/tags:tagResources`.
    pub url: String,
    /// Path as sent, e.g. `/v1/regions/cn-north-1/tags:tagResources`.
    pub path: String,
    /// `Host` header: host, with `:port` only when the port is not the scheme's default.
    pub host: String,
}

/// The target of `operation` (`tags:tagResources`, ...) in `region` at `endpoint`.
pub(super) fn target(
    endpoint: &str,
    region: &str,
    operation: &str,
) -> Result<Target, EndpointError> {
    let (base, host) = endpoint_url(endpoint)?;
    // NB: the region is a path segment, inserted as written: `Url::set_path` keeps `/` and
    // resolves `..`, so a region such as `cn-north-1/../../evil` would move the request. The
    // CRD's pattern on `spec.region` and the CLI's restatement of it
    // (`TagProviderSpec::schema_violations`) refuse anything but lowercase letters, digits
    // and hyphens before a region gets here; this function does not check it again.
    let path = format!(
        "{}/v1/regions/{region}/{operation}",
        base.path().trim_end_matches('/')
    );
    let mut url = base.clone();
    url.set_path(&path);
    url.set_query(None);
    Ok(Target {
        url: url.to_string(),
        path: url.path().to_string(),
        host,
    })
}

/// The headers of one signed request, Authorization last.
pub(super) fn sign(
    key: &AccessKey,
    region: &str,
    service: &str,
    target: &Target,
    body: &str,
    freshness: &Freshness,
) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        ("content-type", JSON_CONTENT_TYPE),
        ("host", target.host.as_str()),
        (DATE_HEADER, freshness.date.as_str()),
        (NONCE_HEADER, freshness.nonce.as_str()),
    ];
    // NB: temporary credentials: the token header must be signed (spec section 2).
    if let Some(token) = key.security_token() {
        headers.push((TOKEN_HEADER, token));
    }
    let payload_hash = sha256_hex(body.as_bytes());
    // NB: the path is sent with a raw `:` (as the official Python SDK does) and signed with
    // `%3A`: canonical_uri percent-encodes every byte outside the unreserved set (section 2,
    // step 2.2).
    let canonical = canonical_request(&CanonicalInput {
        method: METHOD,
        path: &target.path,
        query: "",
        headers: &headers,
        payload_hash: &payload_hash,
    });
    let scope = credential_scope(ALGORITHM, &freshness.date, region, service);
    let to_sign = string_to_sign(ALGORITHM, &freshness.date, &scope, &canonical);
    let key_bytes = signing_key(ALGORITHM, key.secret(), &freshness.date, region, service);
    let signature = signature(&key_bytes, &to_sign);
    let mut sent: Vec<(&'static str, String)> = vec![
        ("content-type", JSON_CONTENT_TYPE.to_string()),
        ("host", target.host.clone()),
        (DATE_HEADER, freshness.date.clone()),
        (NONCE_HEADER, freshness.nonce.clone()),
    ];
    if let Some(token) = key.security_token() {
        sent.push((TOKEN_HEADER, token.to_string()));
    }
    sent.push((
        "authorization",
        authorization(
            ALGORITHM,
            &key.id,
            &scope,
            &signed_headers(&headers),
            &signature,
        ),
    ));
    sent
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn vectors() -> Vec<Value> {
        let path = format!(
            "{}/spec/vectors/jdcloud_jdcloud2.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let parsed: Value = serde_json::from_str(&text).expect("vector JSON");
        parsed["vectors"].as_array().expect("vectors").clone()
    }

    /// The vectors of requests shaped like tagbinder's: POST, no query, the four signed
    /// headers. The client's own signing reproduces their Authorization header exactly.
    #[test]
    fn signs_the_official_sdk_vectors_of_tag_operations() {
        let mut checked = Vec::new();
        for vector in vectors() {
            let canonical = vector["canonical_request"].as_str().unwrap();
            let signed_line = canonical.lines().rev().nth(1).unwrap();
            let url = vector["url"].as_str().unwrap();
            if vector["http_method"] != "POST"
                || url.contains('?')
                || signed_line != "content-type;host;x-jdcloud-date;x-jdcloud-nonce"
            {
                continue;
            }
            let name = vector["name"].as_str().unwrap();
            let (endpoint, path) = {
                let after = url.split_once("://").unwrap().1;
                let slash = after.find('/').unwrap();
                (&url[..url.len() - after.len() + slash], &after[slash..])
            };
            let region = vector["region"].as_str().unwrap();
            let operation = path
                .strip_prefix(&format!("/v1/regions/{region}/"))
                .unwrap_or_else(|| panic!("{name}: path {path}"));
            let target = target(endpoint, region, operation).unwrap();
            assert_eq!(target.url, url, "{name}");
            let key = AccessKey::new(
                vector["access_key"].as_str().unwrap(),
                vector["secret_key"].as_str().unwrap(),
            );
            let freshness = Freshness {
                date: vector["x-jdcloud-date"].as_str().unwrap().to_string(),
                nonce: vector["x-jdcloud-nonce"].as_str().unwrap().to_string(),
            };
            let headers = sign(
                &key,
                region,
                vector["service"].as_str().unwrap(),
                &target,
                vector["body"].as_str().unwrap(),
                &freshness,
            );
            let authorization = headers
                .iter()
                .find(|(name, _)| *name == "authorization")
                .map(|(_, value)| value.as_str());
            assert_eq!(
                authorization,
                vector["authorization"].as_str(),
                "{name}: Authorization"
            );
            checked.push(name.to_string());
        }
        assert!(
            checked.len() >= 4,
            "the tag-operation vectors were all checked: {checked:?}"
        );
    }

    #[test]
    fn targets_keep_non_default_ports_in_the_host_only() {
        let t = target(
            "https://resource-tag.jdcloud-api.com",
            "cn-north-1",
            "tags:tagResources",
        )
        .unwrap();
        assert_eq!(t.host, "resource-tag.jdcloud-api.com");
        assert_eq!(t.path, "/v1/regions/cn-north-1/tags:tagResources");
        let t = target("http://127.0.0.1:8443/", "cn-all", "tags:describeResources").unwrap();
        assert_eq!(t.host, "127.0.0.1:8443");
        assert_eq!(
            t.url,
            "http://127.0.0.1:8443/v1/regions/cn-all/tags:describeResources"
        );
        let t = target("https://example.com:443/prefix/", "cn-east-2", "tags:x").unwrap();
        assert_eq!(t.host, "example.com");
        assert_eq!(t.path, "/prefix/v1/regions/cn-east-2/tags:x");
        assert!(target("resource-tag.jdcloud-api.com", "cn-north-1", "tags:x").is_err());
        assert!(target("ftp://example.com", "cn-north-1", "tags:x").is_err());
    }

    #[test]
    fn every_attempt_gets_a_new_nonce_and_a_utc_date() {
        let first = Freshness::now();
        let second = Freshness::now();
        assert_ne!(first.nonce, second.nonce);
        assert_eq!(first.date.len(), "20260115T083000Z".len());
        assert!(first.date.ends_with('Z'));
        assert_eq!(&first.date[8..9], "T");
    }

    #[test]
    fn signed_headers_never_carry_the_secret() {
        let key = AccessKey::new("AK", "the-secret-value");
        let target = target("https://h", "cn-north-1", "tags:tagResources").unwrap();
        let headers = sign(
            &key,
            "cn-north-1",
            "resourcetag",
            &target,
            "{}",
            &Freshness::now(),
        );
        assert!(headers.iter().all(|(_, v)| !v.contains("the-secret-value")));
        let names: Vec<&str> = headers.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "content-type",
                "host",
                DATE_HEADER,
                NONCE_HEADER,
                "authorization"
            ]
        );
    }
}
